"""The ``fbnet`` supernet under the seed's file name (defined in :mod:`fbnet_symbol.search.supernet`)."""
from .search.supernet import FBNet  # noqa: F401
