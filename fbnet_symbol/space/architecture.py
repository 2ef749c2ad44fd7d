"""Architecture JSON (a space, a preset, one candidate per layer), and the architecture a network description names.

The format (written by the sampler, read by the network builder, the latency sum and
the MAC counter)::

    {
      "name": "fbnet_b",                    # optional, informative
      "space": "fbnet",
      "preset": "paper",
      "blocks": ["k3_e1", "k3_e6", ...],    # one per searchable layer, layer 1 first
      "width_mult": 1.0,                    # optional
      "last_channels": 1984,                # optional, fbnet only (FBNet-A: 1504)
      "head": {"type": "softmax", "feature_dim": 192, "s": 30.0, "m": 0.3}  # optional
    }

An architecture may use any block of its space wherever it is shape-compatible (``skip``
only where input and output shapes match); the preset's per-layer candidate lists
restrict what the *search* offers, not what can be built.
"""
import json
import os
from dataclasses import dataclass, field, replace
from typing import Optional, Tuple

from ..errors import FBNetError
from ..fileio import read_text
from .heads import HeadConfig
from .spaces import PRESETS, SPACES, decode_space, get_preset, get_space

ARCH_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "archs")
_KNOWN_KEYS = {"name", "space", "preset", "blocks", "width_mult", "last_channels", "head"}


def _named_architectures():
    return sorted(f[:-5] for f in os.listdir(ARCH_DIR) if f.endswith(".json"))


NAMED_ARCHITECTURES = tuple(_named_architectures())


@dataclass(frozen=True)
class Architecture:
    space: str
    preset: str
    blocks: Tuple[str, ...]
    head: HeadConfig = field(default_factory=HeadConfig)
    width_mult: float = 1.0
    last_channels: Optional[int] = None
    name: Optional[str] = None

    # ------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, d, source="architecture"):
        if not isinstance(d, dict):
            raise FBNetError("%s: expected a JSON object with 'space', 'preset' and "
                             "'blocks'" % source)
        unknown = set(d) - _KNOWN_KEYS
        if unknown:
            raise FBNetError("%s: unknown key(s) %s; allowed keys: %s"
                             % (source, ", ".join(sorted(unknown)),
                                ", ".join(sorted(_KNOWN_KEYS))))
        for key in ("space", "blocks"):
            if key not in d:
                raise FBNetError("%s: missing %r; an architecture needs 'space' and "
                                 "'blocks' (one candidate name per layer)" % (source, key))
        blocks = d["blocks"]
        if not isinstance(blocks, list) or not all(isinstance(b, str) for b in blocks):
            raise FBNetError("%s: 'blocks' must be a list of candidate names" % source)
        head = d.get("head") or {}
        if not isinstance(head, dict):
            raise FBNetError("%s: 'head' must be an object like {\"type\": \"arcface\"}"
                             % source)
        unknown = set(head) - {"type", "feature_dim", "s", "m"}
        if unknown:
            raise FBNetError("%s: unknown head key(s) %s; allowed: type, feature_dim, s, m"
                             % (source, ", ".join(sorted(unknown))))
        try:
            arch = cls(space=d["space"], preset=d.get("preset", "seed"),
                       blocks=tuple(blocks), head=HeadConfig(**head),
                       width_mult=float(d.get("width_mult", 1.0)),
                       last_channels=d.get("last_channels"), name=d.get("name"))
        except FBNetError as e:
            raise FBNetError("%s: %s" % (source, e)) from None
        arch.validate(source)
        return arch

    def to_dict(self):
        d = {"space": self.space, "preset": self.preset, "blocks": list(self.blocks)}
        if self.name:
            d = {"name": self.name, **d}
        if self.width_mult != 1.0:
            d["width_mult"] = self.width_mult
        if self.last_channels is not None:
            d["last_channels"] = self.last_channels
        d["head"] = self.head.to_dict()
        return d

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def replace(self, **changes):
        """A copy with some fields changed (e.g. another preset or head), re-validated."""
        if "head" in changes and isinstance(changes["head"], dict):
            changes["head"] = HeadConfig(**changes["head"])
        arch = replace(self, **changes)
        arch.validate()
        return arch

    def overridden(self, preset=None, width_mult=None, head_type=None, feature_dim=None,
                   s=None, m=None):
        """A copy with the settings a user gave explicitly (``None``: keep this one's).

        A new head type starts from that head's defaults; the other head keys apply on top.
        """
        changes = {}
        if preset is not None:
            changes["preset"] = preset
        if width_mult is not None:
            changes["width_mult"] = width_mult
        head = {"type": head_type} if head_type else self.head.to_dict()
        for key, value in (("feature_dim", feature_dim), ("s", s), ("m", m)):
            if value is not None:
                head[key] = value
        if head != self.head.to_dict():
            changes["head"] = head
        return self.replace(**changes) if changes else self

    # ------------------------------------------------------------ checks
    def layout(self, image_shape=None):
        return decode_space(self.space, self.preset, image_shape, self.width_mult,
                            self.last_channels)

    @property
    def feature_dim(self):
        """Embedding size (0: none), resolving the preset default."""
        if self.head.feature_dim is not None:
            return self.head.feature_dim
        return PRESETS[self.preset].feature_dim or 0

    def validate(self, source="architecture"):
        """Check space, preset, length, names and shape compatibility; one-line errors."""
        try:
            space = get_space(self.space)
            get_preset(self.preset)
            layout = self.layout()
        except FBNetError as e:
            raise FBNetError("%s: %s" % (source, e)) from None
        n = layout.num_layers
        valid = space.candidate_names
        if self.blocks and not set(self.blocks) & set(valid):
            for other in SPACES.values():
                if set(self.blocks) <= set(other.candidate_names):
                    raise FBNetError("%s: says space %r but its blocks are %r candidates; "
                                     "set \"space\": \"%s\"" % (source, self.space,
                                                                other.name, other.name))
        if len(self.blocks) != n:
            raise FBNetError("%s: %d blocks given but space %r has %d searchable layers; "
                             "list exactly one candidate name per layer"
                             % (source, len(self.blocks), self.space, n))
        for layer, block in zip(layout.layers, self.blocks):
            if block not in valid:
                raise FBNetError("%s: layer %d: unknown candidate %r for space %r; "
                                 "valid names: %s" % (source, layer.index + 1, block,
                                                      self.space, ", ".join(valid)))
            if space.candidate(block).identity and not layer.shapes_match:
                raise FBNetError(
                    "%s: layer %d: %r needs equal input and output shapes, but this layer "
                    "maps %d to %d channels with stride %d; choose another candidate"
                    % (source, layer.index + 1, block, layer.in_channels,
                       layer.out_channels, layer.stride))


def named_architectures_of(layout):
    """The shipped architectures (FBNet-A/B/C) a ``layout`` can build: ``(kept, left_out)``,
    ``kept`` as ``[(name, Architecture)]``, ``left_out`` as ``[(name, why)]`` for those of
    its space whose blocks or last conv the layout does not offer."""
    kept, left_out = [], []
    for name in NAMED_ARCHITECTURES:
        arch = load_architecture(name)
        if arch.space != layout.space.name:
            continue
        if len(arch.blocks) != layout.num_layers or not all(
                b in layer.candidates for b, layer in zip(arch.blocks, layout.layers)):
            left_out.append((name, "the %s preset does not offer all its blocks"
                             % layout.preset.name))
        elif arch.last_channels not in (None, layout.space.last_channels):
            left_out.append((name, "its last conv (%d channels) is not the table's"
                             % arch.last_channels))
        else:
            kept.append((name, arch))
    return kept, left_out


def distinct_blocks(draw, count, max_tries):
    """Up to ``count`` distinct block lists from calls of ``draw()`` (at most
    ``max_tries``), in the order first drawn."""
    found = {}
    for _ in range(max_tries):
        if len(found) >= count:
            break
        found.setdefault(tuple(draw()), None)
    return list(found)


def load_architecture(spec, expect_space=None):
    """Load an architecture from a shipped name, a ``.json`` path, a JSON string or a dict.

    ``expect_space``: refuse an architecture of another space (e.g. when it is given to a
    search or a latency table of a different space).
    """
    if isinstance(spec, Architecture):
        arch = spec
    elif isinstance(spec, dict):
        arch = Architecture.from_dict(spec)
    else:
        spec = str(spec)
        if spec in NAMED_ARCHITECTURES:
            path, text = os.path.join(ARCH_DIR, spec + ".json"), None
        elif spec.lstrip().startswith("{"):
            path, text = None, spec
        elif os.path.isfile(spec):
            path, text = spec, None
        else:
            raise FBNetError("architecture %r is neither a shipped name (%s) nor an "
                             "existing .json file" % (spec, ", ".join(NAMED_ARCHITECTURES)))
        source = path or "architecture JSON"
        if text is None:
            text = read_text(path, "an architecture (--arch takes a shipped name, a .json "
                                   "file such as a search's arch.json, or a JSON string)")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise FBNetError("%s is not valid JSON (line %d, column %d: %s); fix the file "
                             "or write it with fbnet sample (sample.py)" % (source, e.lineno, e.colno, e.msg))
        arch = Architecture.from_dict(data, source)
    if expect_space is not None and arch.space != expect_space:
        raise FBNetError("architecture %s is for space %r but space %r is in use; pass an "
                         "architecture of that space or change --space"
                         % (arch.name or "", arch.space, expect_space))
    return arch


def _get(network, key):
    return network.get(key) if isinstance(network, dict) else getattr(network, key, None)


def architecture_described(network, blocks, name=None):
    """The architecture of ``blocks`` in the network ``network`` describes — a mapping or
    object with ``space``, ``preset``, ``width_mult`` and the head's ``model_type``,
    ``feature_dim``, ``margin_s``, ``margin_m`` (a run's ``args.json``, a table's
    :meth:`LatencyTable.settings`, a search's network)."""
    head = {"type": _get(network, "model_type") or "softmax"}
    for key, setting in (("feature_dim", "feature_dim"), ("s", "margin_s"), ("m", "margin_m")):
        if _get(network, setting) is not None:
            head[key] = _get(network, setting)
    return Architecture(space=_get(network, "space"), preset=_get(network, "preset"),
                        blocks=tuple(blocks), head=HeadConfig(**head),
                        width_mult=_get(network, "width_mult") or 1.0, name=name)


def layout_described(network, image_shape=None):
    """The decoded space ``network`` describes (see :func:`architecture_described`; its
    ``image_shape``, or ``image_shape`` given here)."""
    shape = image_shape or _get(network, "image_shape")
    return decode_space(_get(network, "space"), _get(network, "preset"),
                        tuple(shape) if shape else None, _get(network, "width_mult") or 1.0)
