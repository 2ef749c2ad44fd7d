"""``python -m fbnet_symbol COMMAND``: the package's commands (see :mod:`fbnet_symbol.commands`)."""
from .commands import main

main()
