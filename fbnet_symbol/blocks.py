"""The ``fbnet`` space's candidate blocks under the seed's file name (defined in :mod:`fbnet_symbol.space.blocks`)."""
from .space.blocks import *  # noqa: F401,F403
