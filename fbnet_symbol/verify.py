"""An earlier release's name of ``fbnet_symbol.faces.verify`` (``fbnet verify``), kept for one release."""
from .faces.verify import *  # noqa: F401,F403  (scripts importing the old module keep working)

if __name__ == "__main__":
    from .commands import forward
    forward("verify")
