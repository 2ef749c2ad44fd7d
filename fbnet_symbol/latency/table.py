"""Latency lookup tables: the files, reading them, checking them against a space, predicting.

Files (docs/design.md, "Principles"; the user keeps them):

* ``speed.txt`` — the seed's format: one line per searchable layer, one latency in ms
  per offered candidate, in candidate order, space-separated.
* ``speed.json`` — its twin with the metadata needed to trust it (space, preset, input
  shape, batch, width, device and its name, MXNet version and backend, threads, engine,
  timing policy) and, per entry, the median, the spread and the raw timing.

What an entry means: the time a block adds *inside a network*. Each candidate is timed in
context — run right after the graph that produces its input (the stem, or the previous
layer's first candidate), minus that graph alone — so the per-graph cost a network pays
once (dispatch, synchronisation, a cold input) is not counted per block; timed alone,
heavy blocks came out 15-20% slower (docs/measurements.md). The tail and head are
measured after their predecessors the same way, the stem alone minus an empty graph
(``overhead_ms``). A network is predicted as ``overhead + stem + sum(blocks) + tail +
head``. In the seed preset a block's entry includes the BatchNorm before its layer.
Measuring and caching: :mod:`fbnet_symbol.latency.measure`.
"""
import json
import logging
import os

import numpy as np

from ..errors import FBNetError
from ..fileio import atomic_write, atomic_write_json, read_text
from ..threads import omp_threads

logger = logging.getLogger(__name__)

FORMAT = "fbnet_symbol.latency/1"  # the tag of files users keep: not renamed with modules
MIN_MS = 1e-3
FIXED_PARTS = ("stem", "tail", "head")


def twin_paths(path):
    """``speed.txt`` -> (``speed.txt``, ``speed.json``); same for a ``.json`` path."""
    stem, ext = os.path.splitext(path)
    if ext not in (".txt", ".json"):
        stem = path
    return stem + ".txt", stem + ".json"


class LatencyTable:
    """Per-layer, per-candidate latencies (ms) plus optional metadata.

    ``values[l][i]`` is the cost of candidate ``candidates[l][i]`` at layer ``l``.
    A table read from a seed-format ``.txt`` has ``meta == {}`` and no candidate names.
    """

    def __init__(self, values, candidates=None, meta=None, spread=None, raw=None,
                 fixed=None, source="latency table"):
        self.values = [list(map(float, row)) for row in values]
        self.candidates = [list(c) for c in candidates] if candidates else None
        self.meta = dict(meta or {})
        self.spread = spread
        self.raw = raw
        self.fixed = fixed or {}
        self.source = source
        self._threads_warned = set()  # (then, now): each thread-count warning once

    # ------------------------------------------------------------ files
    def to_txt(self):
        return "".join(" ".join("%.6f" % v for v in row) + "\n" for row in self.values)

    def to_json_obj(self):
        layers = []
        for l, row in enumerate(self.values):
            entry = {"layer": "layer%d" % (l + 1), "median_ms": row}
            if self.candidates:
                entry["candidates"] = self.candidates[l]
            if self.spread:
                entry["spread_ms"] = self.spread[l]
            if self.raw:
                entry["raw_ms"] = self.raw[l]
            layers.append(entry)
        return {"format": FORMAT, **self.meta, "unit": "ms", "layers": layers,
                "fixed": self.fixed}

    def save(self, path):
        """Write the seed-format ``.txt`` and its ``.json`` twin (atomically)."""
        txt, js = twin_paths(path)
        atomic_write(txt, self.to_txt())
        atomic_write_json(js, self.to_json_obj())
        return txt, js

    # ------------------------------------------------------------ checks
    def check(self, layout, batch_size=None):
        """Refuse a table that does not fit ``layout`` (and ``batch_size``), in one line."""
        hint = ("measure one with: python block_speed_test.py --space %s --preset %s "
                "--image-shape %s --output speed.txt"
                % (layout.space.name, layout.preset.name,
                   ",".join(map(str, layout.image_shape))))
        if self.meta:
            want = {"space": layout.space.name, "preset": layout.preset.name,
                    "image_shape": list(layout.image_shape),
                    "width_mult": layout.width_mult}
            if batch_size is not None:
                want["batch_size"] = batch_size
            for key, value in want.items():
                have = self.meta.get(key)
                if have != value:
                    raise FBNetError("%s was measured for %s=%s but this run uses %s=%s; %s"
                                     % (self.source, key, _fmt(have), key, _fmt(value), hint))
        if self.meta:
            self._warn_if_other_threads()
        if len(self.values) != layout.num_layers:
            raise FBNetError("%s has %d rows but space %r has %d searchable layers; %s"
                             % (self.source, len(self.values), layout.space.name,
                                layout.num_layers, hint))
        for layer, row in zip(layout.layers, self.values):
            if len(row) != len(layer.candidates):
                raise FBNetError(
                    "%s row %d has %d values but layer %d of %s (preset %s) has %d "
                    "candidates (%s); %s" % (self.source, layer.index + 1, len(row),
                                             layer.index + 1, layout.space.name,
                                             layout.preset.name, len(layer.candidates),
                                             " ".join(layer.candidates), hint))
            if self.candidates and list(self.candidates[layer.index]) != list(layer.candidates):
                raise FBNetError("%s row %d lists candidates %s but the space offers %s; %s"
                                 % (self.source, layer.index + 1,
                                    " ".join(self.candidates[layer.index]),
                                    " ".join(layer.candidates), hint))
            bad = [v for v in row if not (np.isfinite(v) and v > 0)]
            if bad:
                raise FBNetError("%s row %d has a non-positive or non-finite latency (%s); "
                                 "re-measure the table" % (self.source, layer.index + 1, bad[0]))
        return self

    def _warn_if_other_threads(self):
        """A table measured with another thread count ranks blocks differently (heavy
        blocks gain more from threads); say so rather than reuse it silently."""
        now = omp_threads()
        then = self.meta.get("omp_threads")
        if then != now and (then, now) not in self._threads_warned:
            self._threads_warned.add((then, now))
            logger.warning("%s was measured with %s MXNet threads, this run uses %d; "
                           "re-measure it with fbnet measure (block_speed_test.py) for "
                           "predictions that match this run", self.source,
                           then if then is not None else "an unrecorded number of", now)

    # ------------------------------------------------------------ use
    def cost(self, layout, layer_index, candidate):
        layer = layout.layers[layer_index]
        if candidate not in layer.candidates:
            raise FBNetError("%s has no entry for %r at layer %d (measured: %s)"
                             % (self.source, candidate, layer_index + 1,
                                " ".join(layer.candidates)))
        return self.values[layer_index][layer.candidates.index(candidate)]

    def predict(self, arch, layout=None):
        """Predicted latency (ms) of a whole child network: overhead + fixed + blocks."""
        if not self.fixed or "overhead_ms" not in self.meta:
            raise FBNetError("%s has no fixed-part timings (a seed-format .txt?); whole "
                             "networks need the .json written by fbnet measure (block_speed_test.py)"
                             % self.source)
        layout = layout or arch.layout(tuple(self.meta["image_shape"]))
        return self.meta["overhead_ms"] + sum(self.fixed[p]["median_ms"] for p in FIXED_PARTS) \
            + self.blocks_latency(layout, arch.blocks)

    def blocks_latency(self, layout, blocks):
        """Sum of the searchable layers' entries for one block per layer (ms)."""
        return sum(self.cost(layout, l.index, b) for l, b in zip(layout.layers, blocks))

    def settings(self):
        """The run settings the table was measured for, as an ``args.json``-style dict."""
        return settings_of(self.meta)


def settings_of(meta):
    """Table metadata (space, preset, shape, width, head, feature_dim) as run settings, for
    :func:`~fbnet_symbol.space.architecture.architecture_described` and its layout twin."""
    head = meta.get("head") or {}
    return {"space": meta["space"], "preset": meta["preset"], "width_mult": meta["width_mult"],
            "image_shape": meta["image_shape"], "model_type": head.get("type", "softmax"),
            "margin_s": head.get("s"), "margin_m": head.get("m"),
            "feature_dim": meta.get("feature_dim", 0)}


def _fmt(v):
    return "x".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)


def load_table(path):
    """Read a ``.json`` table (with metadata) or a seed-format ``.txt`` table."""
    if not os.path.isfile(path):
        raise FBNetError("latency table %s does not exist; measure one with "
                         "fbnet measure (block_speed_test.py) or leave --lut out to measure automatically"
                         % path)
    source = "latency table %s" % path
    text = read_text(path, "a latency table (--lut and --validate take block_speed_test.py's "
                           "speed.txt or speed.json)")
    if path.endswith(".json"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise FBNetError("%s is not valid JSON (line %d: %s); re-measure it or pass "
                             "its .txt twin" % (source, e.lineno, e.msg)) from None
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise FBNetError("%s is not a %s file; write tables with block_speed_test.py"
                             % (source, FORMAT))
        try:
            layers = obj["layers"]
            meta = {k: v for k, v in obj.items() if k not in ("format", "layers", "fixed", "unit")}
            return LatencyTable([l["median_ms"] for l in layers],
                                [l["candidates"] for l in layers] if all(
                                    "candidates" in l for l in layers) else None,
                                meta, [l.get("spread_ms") for l in layers],
                                [l.get("raw_ms") for l in layers], obj.get("fixed"), source)
        except (KeyError, TypeError) as e:
            raise FBNetError("%s lacks %s; re-measure it with block_speed_test.py"
                             % (source, e)) from None
    rows = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            rows.append([float(v) for v in line.split()])
        except ValueError:
            raise FBNetError("%s line %d is not a list of numbers: %r; the format is one "
                             "line per layer, one ms value per candidate"
                             % (source, n, line.strip()[:60])) from None
    if not rows:
        raise FBNetError("%s is empty; measure a table with block_speed_test.py" % source)
    return LatencyTable(rows, source=source)
