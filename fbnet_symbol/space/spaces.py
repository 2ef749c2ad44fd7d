"""Search spaces and presets as data, and the one function that decodes them.

A *space* is a stem, a list of stages of searchable layers and a list of candidate
blocks. A *preset* fixes the parts the seed implementation changed with respect to the
paper (input size, stem stride, where BatchNorm sits, the last conv, the embedding).
:func:`decode_space` turns (space, preset, input shape, width multiplier) into a flat
list of :class:`Layer` records — index, stage, channels, stride, input/output size and
the candidates the search may choose there. Every other part of the package (network
builder, supernet, latency tables, sampler, MAC counter) reads this list; nothing else
derives shapes by hand.

This module deliberately does not import MXNet, so tools that only read tables stay fast.
"""
import math
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

from ..errors import FBNetError


@dataclass(frozen=True)
class Candidate:
    """One candidate block of a space.

    ``op`` selects the block function in the space's block registry and ``params`` are
    its keyword arguments. ``identity`` marks ``skip``, which only exists where input and
    output shapes match. ``stages``/``last_n`` restrict where the search offers a block
    (e.g. the deformable block only in the last two layers of the last stage).
    """

    name: str
    op: str
    params: Dict = field(default_factory=dict)
    identity: bool = False
    stages: Optional[Tuple[int, ...]] = None
    last_n: Optional[int] = None


@dataclass(frozen=True)
class Stage:
    out_channels: int
    num_layers: int
    first_stride: int


@dataclass(frozen=True)
class SpaceDef:
    """A search space: an entry of :data:`SPACES`, the one registry every part reads."""
    name: str
    description: str
    stem_channels: int
    stages: Tuple[Stage, ...]
    candidates: Tuple[Candidate, ...]
    last_channels: Optional[int]  # channels of the last conv; None: the space has none
    blocks: str  # the module of its blocks (the contract: fbnet_symbol.space's docstring)
    stem_downsample: int = 1  # the stem's own extra stride (a max-pool), after its conv

    @property
    def candidate_names(self):
        return tuple(c.name for c in self.candidates)

    def candidate(self, name):
        for c in self.candidates:
            if c.name == name:
                return c
        raise FBNetError("unknown candidate %r for space %r; valid names: %s"
                         % (name, self.name, ", ".join(self.candidate_names)))


@dataclass(frozen=True)
class Preset:
    """What differs between the seed implementation and the paper.

    ``bn_inside_blocks`` applies to ``fbnet`` only: the seed put one BatchNorm before each
    searchable layer and none inside the blocks; the paper has conv-BN(-ReLU) everywhere.
    ``fbnet_se`` blocks are pre-activation residual blocks (BN inside) in both presets.
    """

    name: str
    description: str
    image_shape: Tuple[int, int, int]
    stem_stride: int
    bn_inside_blocks: bool
    last_conv_kernel: int
    feature_dim: Optional[int]  # embedding size before the head; None: FC on pooled features
    skip_in_first_layer: bool   # may `skip` be offered in the first layer of a stage?


PRESETS = {
    "seed": Preset(
        name="seed",
        description="the seed's layout: 3x108x108 face crops, stride-1 stem, BN between "
                    "searchable layers, 3x3 last conv, embedding of feature_dim",
        image_shape=(3, 108, 108), stem_stride=1, bn_inside_blocks=False,
        last_conv_kernel=3, feature_dim=192, skip_in_first_layer=False),
    "paper": Preset(
        name="paper",
        description="the paper's layout: 224x224, stride-2 stem, BN inside blocks, "
                    "1x1 last conv, plain FC classifier",
        image_shape=(3, 224, 224), stem_stride=2, bn_inside_blocks=True,
        last_conv_kernel=1, feature_dim=None, skip_in_first_layer=True),
}


def _ir(kernel, expansion, group=1):
    return {"kernel": kernel, "expansion": expansion, "group": group}


# The paper's candidate order is the LUT column order (paper, Fig. 2 / Table 2).
FBNET = SpaceDef(
    name="fbnet",
    description="the paper's space: 22 searchable layers, 9 candidates "
                "(inverted residual k3/k5, expansion 1/3/6, group 1/2, skip)",
    stem_channels=16,
    stages=(
        Stage(16, 1, 1),
        Stage(24, 4, 2),
        Stage(32, 4, 2),
        Stage(64, 4, 2),
        Stage(112, 4, 1),
        Stage(184, 4, 2),
        Stage(352, 1, 1),
    ),
    candidates=(
        Candidate("k3_e1", "ir", _ir(3, 1)),
        Candidate("k3_e1_g2", "ir", _ir(3, 1, 2)),
        Candidate("k3_e3", "ir", _ir(3, 3)),
        Candidate("k3_e6", "ir", _ir(3, 6)),
        Candidate("k5_e1", "ir", _ir(5, 1)),
        Candidate("k5_e1_g2", "ir", _ir(5, 1, 2)),
        Candidate("k5_e3", "ir", _ir(5, 3)),
        Candidate("k5_e6", "ir", _ir(5, 6)),
        Candidate("skip", "skip", identity=True),
    ),
    last_channels=1984,
    blocks="fbnet_symbol.space.blocks",
)

# SE-ResNet-50 shaped space of the seed's FBNet_SE (docs/design.md, section 2).
FBNET_SE = SpaceDef(
    name="fbnet_se",
    description="SE-ResNet-50 shaped space: 16 searchable layers of pre-activation "
                "bottleneck/basic blocks, with SE, grouped+shuffle, and a deformable "
                "bottleneck in the last two layers",
    stem_channels=64,
    stages=(
        Stage(256, 3, 1),
        Stage(512, 4, 2),
        Stage(1024, 6, 2),
        Stage(2048, 3, 2),
    ),
    candidates=(
        Candidate("bottleneck", "bottleneck", {"group": 1}),
        Candidate("bottleneck_g2", "bottleneck", {"group": 2}),
        Candidate("basic", "basic", {"group": 1, "se": False}),
        Candidate("basic_se", "basic", {"group": 1, "se": True}),
        Candidate("basic_g2", "basic", {"group": 2, "se": False}),
        Candidate("deform_bottleneck", "bottleneck", {"group": 1, "deformable": True},
                  stages=(4,), last_n=2),
    ),
    last_channels=None,
    blocks="fbnet_symbol.space.blocks_se",
    stem_downsample=2,  # the SE-ResNet stem ends with a 3x3/2 max-pool
)

SPACES = {s.name: s for s in (FBNET, FBNET_SE)}
BLOCK_MODULE_API = ("OPS", "SCALABLE_OPS", "stem", "before_layer", "tail", "tail_channels")

CHANNEL_DIVISOR = 8


def get_space(name):
    try:
        return SPACES[name]
    except KeyError:
        raise FBNetError("unknown search space %r; choose one of: %s"
                         % (name, ", ".join(SPACES))) from None


def block_module(space):
    """The block module of a space (name or :class:`SpaceDef`), checked against the
    contract written in :mod:`fbnet_symbol.space`: an op for every candidate, and
    ``SCALABLE_OPS``, ``stem``, ``before_layer``, ``tail``, ``tail_channels``."""
    import importlib

    space = get_space(space) if isinstance(space, str) else space
    module = importlib.import_module(space.blocks)
    missing = [name for name in BLOCK_MODULE_API if not hasattr(module, name)]
    missing += ["OPS[%r]" % c.op for c in space.candidates
                if not c.identity and c.op not in getattr(module, "OPS", {})]
    if missing:
        raise FBNetError("block module %s of space %r lacks %s (the contract is in "
                         "fbnet_symbol/space/__init__.py)" % (space.blocks, space.name,
                                                              ", ".join(missing)))
    return module


def get_preset(name):
    try:
        return PRESETS[name]
    except KeyError:
        raise FBNetError("unknown preset %r; choose one of: %s"
                         % (name, ", ".join(PRESETS))) from None


def scale_channels(channels, width_mult, divisor=CHANNEL_DIVISOR):
    """Scale a channel count and round it to a multiple of ``divisor``.

    The MobileNet rounding rule: nearest multiple, at least ``divisor``, and never more
    than 10% below the exact value. ``width_mult == 1`` returns the count unchanged.
    """
    if width_mult == 1.0:
        return int(channels)
    exact = channels * width_mult
    rounded = max(divisor, int(exact + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * exact:
        rounded += divisor
    return int(rounded)


# A network's input, the package's one pixel convention in training, evaluation and export:
# RGB, (x - 127.5) / 127.5 (InsightFace divides by 128; exports taking raw pixels carry ours)
PIXEL_MEAN, PIXEL_SCALE = 127.5, 127.5


def parse_image_shape(text):
    """``"3,224,224"`` -> ``(3, 224, 224)`` with a clear error for anything else."""
    if isinstance(text, (tuple, list)):
        parts = list(text)
    else:
        parts = [p.strip() for p in str(text).split(",")]
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise FBNetError("bad image shape %r: give channels,height,width as positive "
                         "integers, e.g. --image-shape 3,108,108" % (text,))
    return shape


def strided_size(size, stride):
    """Output size of a 'same'-padded conv/pool with odd kernel: ceil(size / stride)."""
    return int(math.ceil(size / float(stride)))


@dataclass(frozen=True)
class Layer:
    """One searchable layer as decoded from a space and a preset."""

    index: int              # 0-based position among searchable layers
    stage: int              # 1-based stage number
    position: int           # 0-based position inside the stage
    in_channels: int
    out_channels: int
    stride: int
    in_hw: Tuple[int, int]
    out_hw: Tuple[int, int]
    shapes_match: bool      # identity is possible (same channels before scaling, stride 1)
    candidates: Tuple[str, ...]  # what the search offers here, in LUT column order

    @property
    def name(self):
        return "layer%d" % (self.index + 1)

    @property
    def in_shape(self):
        return (self.in_channels,) + tuple(self.in_hw)

    @property
    def out_shape(self):
        return (self.out_channels,) + tuple(self.out_hw)


@dataclass(frozen=True)
class Layout:
    """A decoded space: everything a builder needs, in one place."""

    space: SpaceDef
    preset: Preset
    image_shape: Tuple[int, int, int]
    width_mult: float
    stem_channels: int
    stem_out_hw: Tuple[int, int]
    layers: Tuple[Layer, ...]
    last_channels: Optional[int]

    @property
    def num_layers(self):
        return len(self.layers)


def _offered(candidate, stage_no, position, num_in_stage, shapes_match, preset):
    if candidate.identity:
        if not shapes_match:
            return False
        if position == 0 and not preset.skip_in_first_layer:
            return False
    if candidate.stages is not None and stage_no not in candidate.stages:
        return False
    if candidate.last_n is not None and position < num_in_stage - candidate.last_n:
        return False
    return True


def _layers(space, preset, stem_channels, hw, width_mult):
    """Every searchable layer: its channels, stride, input and output sizes and the
    candidates the preset offers there."""
    layers = []
    in_base, in_channels = space.stem_channels, stem_channels
    for stage_no, stage in enumerate(space.stages, start=1):
        out_channels = scale_channels(stage.out_channels, width_mult)
        for position in range(stage.num_layers):
            stride = stage.first_stride if position == 0 else 1
            out_hw = tuple(strided_size(s, stride) for s in hw)
            shapes_match = stride == 1 and in_base == stage.out_channels
            offered = tuple(
                c.name for c in space.candidates
                if _offered(c, stage_no, position, stage.num_layers, shapes_match, preset))
            layers.append(Layer(index=len(layers), stage=stage_no, position=position,
                                in_channels=in_channels, out_channels=out_channels,
                                stride=stride, in_hw=hw, out_hw=out_hw,
                                shapes_match=shapes_match, candidates=offered))
            in_base, in_channels, hw = stage.out_channels, out_channels, out_hw
    return layers


def _last_channels(space, last_channels, width_mult):
    """Channels of the last conv (scaled), or None for a space without one."""
    if space.last_channels is None:
        if last_channels is not None:
            raise FBNetError("space %r has no last conv, so last_channels cannot be set; "
                             "remove it from the architecture" % space.name)
        return None
    base_last = space.last_channels if last_channels is None else int(last_channels)
    if base_last < 1:
        raise FBNetError("last_channels must be a positive integer, e.g. 1984")
    return scale_channels(base_last, width_mult)


def decode_space(space, preset="seed", image_shape=None, width_mult=1.0,
                 last_channels=None):
    """Decode a space and preset into a :class:`Layout`.

    Parameters
    ----------
    space : str or SpaceDef
    preset : str or Preset
    image_shape : tuple of int or str, optional
        ``(C, H, W)``; defaults to the preset's.
    width_mult : float
        Multiplies every conv's channels (rounded to a multiple of 8).
    last_channels : int, optional
        Channels of the last conv before pooling (``fbnet`` only; FBNet-A uses 1504).
    """
    space = get_space(space) if isinstance(space, str) else space
    preset = get_preset(preset) if isinstance(preset, str) else preset
    image_shape = preset.image_shape if image_shape is None else parse_image_shape(image_shape)
    try:
        width_mult = float(width_mult)
    except (TypeError, ValueError):
        width_mult = -1.0
    if not width_mult > 0:
        raise FBNetError("width multiplier must be a positive number, e.g. 1.0 or 0.5")

    stem_channels = scale_channels(space.stem_channels, width_mult)
    hw = tuple(strided_size(s, preset.stem_stride) for s in image_shape[1:])
    if space.stem_downsample > 1:
        hw = tuple(strided_size(s, space.stem_downsample) for s in hw)
    stem_hw = hw
    layers = _layers(space, preset, stem_channels, hw, width_mult)
    last = _last_channels(space, last_channels, width_mult)
    return Layout(space=space, preset=preset, image_shape=image_shape,
                  width_mult=width_mult, stem_channels=stem_channels, stem_out_hw=stem_hw,
                  layers=tuple(layers), last_channels=last)
