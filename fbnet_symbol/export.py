"""An earlier release's name of ``fbnet_symbol.ship.export`` (``fbnet export``), kept for one release."""
from .ship.export import *  # noqa: F401,F403  (scripts importing the old module keep working)

if __name__ == "__main__":
    from .commands import forward
    forward("export")
