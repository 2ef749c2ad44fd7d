"""fbnet_symbol: FBNet (Wu et al., CVPR 2019) on the MXNet 1.9.1 symbol API."""

import os

__version__ = "0.1.0"

# MXNet prints a line per bind when its MKLDNN subgraph backend is on; keep CLIs quiet.
os.environ.setdefault("MXNET_SUBGRAPH_VERBOSE", "0")

from .errors import FBNetError  # noqa: F401
from .search_space import SPACES, PRESETS, decode_space, get_space  # noqa: F401
from .architecture import Architecture, load_architecture, NAMED_ARCHITECTURES  # noqa: F401
from .network import build_network  # noqa: F401
