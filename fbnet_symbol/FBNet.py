"""The ``fbnet`` supernet under the seed's file name (defined in :mod:`fbnet_symbol.supernet`)."""
from .supernet import FBNet  # noqa: F401
