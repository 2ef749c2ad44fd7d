"""fbnet_symbol: FBNet (Wu et al., CVPR 2019) on the MXNet 1.9.1 symbol API."""

import os

__version__ = "0.1.0"

# Set before MXNet is first used: MXNet prints a line per bind when its MKLDNN subgraph
# backend is on (keep CLIs quiet); and every Module updates its parameters locally, the
# kvstore only sums gradients, so each optimizer's state lives in an updater a checkpoint
# saves whole and theta, whose gradients are summed by hand, can share the kvstore
# (docs/mxnet-notes.md, "Two optimizers over one graph").
os.environ.setdefault("MXNET_SUBGRAPH_VERBOSE", "0")
os.environ.setdefault("MXNET_UPDATE_ON_KVSTORE", "0")

from .errors import FBNetError  # noqa: F401,E402
from .space.architecture import (NAMED_ARCHITECTURES, Architecture,  # noqa: F401,E402
                                 load_architecture)
from .space.spaces import PRESETS, SPACES, decode_space, get_space  # noqa: F401,E402


def __getattr__(name):
    # Importing the package must not load MXNet: a command chooses MXNet's thread count
    # first (threads.py). build_network, the one MXNet export, loads on first use.
    if name == "build_network":
        from .space.network import build_network
        return build_network
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
