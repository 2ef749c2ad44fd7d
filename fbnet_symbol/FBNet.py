"""The ``fbnet`` supernet (the paper's 22-layer, 9-candidate space)."""
from .supernet import Supernet


class FBNet(Supernet):
    space = "fbnet"
