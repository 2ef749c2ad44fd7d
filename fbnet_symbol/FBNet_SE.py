"""The ``fbnet_se`` supernet (SE-ResNet-50 shaped space of the seed's FBNet_SE)."""
from .supernet import Supernet


class FBNet_SE(Supernet):  # noqa: N801 (the seed's name)
    space = "fbnet_se"
