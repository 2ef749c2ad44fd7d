"""fbnet_symbol: FBNet (Wu et al., CVPR 2019) on the MXNet 1.9.1 symbol API."""

__version__ = "0.1.0"

from .errors import FBNetError  # noqa: F401
from .search_space import SPACES, PRESETS, decode_space, get_space  # noqa: F401
from .architecture import Architecture, load_architecture, NAMED_ARCHITECTURES  # noqa: F401
from .network import build_network  # noqa: F401
