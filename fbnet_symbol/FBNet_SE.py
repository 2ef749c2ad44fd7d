"""The ``fbnet_se`` supernet under the seed's file name (defined in :mod:`fbnet_symbol.search.supernet`)."""
from .search.supernet import FBNet_SE  # noqa: F401
