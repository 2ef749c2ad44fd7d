"""The ``fbnet_se`` space's candidate blocks under the seed's file name (defined in :mod:`fbnet_symbol.space.blocks_se`)."""
from .space.blocks_se import *  # noqa: F401,F403
