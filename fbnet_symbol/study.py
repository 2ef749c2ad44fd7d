"""An earlier release's name of ``fbnet_symbol.search.study`` (``fbnet study``), kept for one release."""
from .search.study import *  # noqa: F401,F403  (scripts importing the old module keep working)

if __name__ == "__main__":
    from .commands import forward
    forward("study")
