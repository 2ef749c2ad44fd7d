"""Latency lookup tables: measure, save, read, check, predict, cache.

Files (DESIGN.md section 7):

* ``speed.txt`` — the seed's format: one line per searchable layer, one latency in ms
  per offered candidate, in candidate order, space-separated.
* ``speed.json`` — its twin with the metadata needed to trust it (space, preset, input
  shape, batch, width, device and its name, MXNet version and backend, threads, engine,
  timing policy) and, per entry, the median, the spread and the raw timing.

What a table entry means. Each candidate is bound and timed *alone* at its layer's input
shape, and every separately timed graph pays a fixed per-graph cost (engine dispatch,
synchronisation, reading a cold input) that a whole network pays only once. That cost is
measured, not assumed: for a few same-shape layers, a block ``B`` is timed alone (``t1``)
and twice in a row in one graph (``t2``); ``t2 - t1`` is what ``B`` adds inside a network,
so ``2*t1 - t2`` is the per-graph overhead (``overhead_ms``: the median over those
layers, and never less than the time of an empty graph, ``call_overhead_ms``). The table
stores each block's time net of it, floored at ``MIN_MS``; a network is predicted as
``overhead + stem + sum(blocks) + tail + head`` (all net). In the seed preset a block's
entry includes the BatchNorm that precedes its layer, since every child network has it.
"""
import datetime
import hashlib
import json
import logging
import os
import time

import mxnet as mx
import numpy as np

from .data import default_cache_dir
from .errors import FBNetError
from .fileio import atomic_write, atomic_write_json
from .heads import HeadConfig, build_head
from .network import (LABEL_NAME, build_block, build_embedding, space_module,
                      tail_channels)
from .timing import TimingPolicy, overhead_symbol, time_symbols
from .devices import device_name, runtime_info

logger = logging.getLogger(__name__)

FORMAT = "fbnet_symbol.latency/1"
MIN_MS = 1e-3
FIXED_PARTS = ("stem", "tail", "head")
METHOD = "in-context difference/1"  # part of the cache key: a new method re-measures
MATCH_KEYS = ("space", "preset", "image_shape", "batch_size", "width_mult")


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
                             "networks need the .json written by block_speed_test.py"
                             % self.source)
        layout = layout or arch.layout(tuple(self.meta["image_shape"]))
        total = self.meta["overhead_ms"] + sum(self.fixed[p]["median_ms"] for p in FIXED_PARTS)
        for layer in layout.layers:
            total += self.cost(layout, layer.index, arch.blocks[layer.index])
        return total


def _fmt(v):
    return "x".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)


def load_table(path):
    """Read a ``.json`` table (with metadata) or a seed-format ``.txt`` table."""
    if not os.path.isfile(path):
        raise FBNetError("latency table %s does not exist; measure one with "
                         "block_speed_test.py or leave --lut out to measure automatically"
                         % path)
    source = "latency table %s" % path
    with open(path) as f:
        text = f.read()
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


# ---------------------------------------------------------------- measuring

def block_symbol(layout, layer, candidate, data=None):
    """What one table entry times: (pre-layer BN) + the candidate block, on ``data``."""
    data = mx.sym.Variable("data") if data is None else data
    module = space_module(layout.space.name)
    x = build_block(module.before_layer(data, layer, layout), layout, layer, candidate)
    if x is data:  # a bare skip: time the copy that stands for it
        x = mx.sym.identity(data, name="%s_skip" % layer.name)
    return x


def _head_on(layout, x, num_classes, head, feature_dim):
    """Embedding + classifier (plain logits) on the pooled features ``x``."""
    features, dim = build_embedding(x, tail_channels(layout), feature_dim)
    return build_head(features, mx.sym.Variable(LABEL_NAME), num_classes, dim, head)[1]


def fixed_symbols(layout, num_classes, head, feature_dim):
    """(name, symbol, input shape without batch) of the parts outside the searchable layers,
    each on its own input."""
    module = space_module(layout.space.name)
    return [("stem", module.stem(mx.sym.Variable("data"), layout), tuple(layout.image_shape)),
            ("tail", module.tail(mx.sym.Variable("data"), layout), layout.layers[-1].out_shape),
            ("head", _head_on(layout, mx.sym.Variable("data"), num_classes, head, feature_dim),
             (tail_channels(layout),))]


def reference_network(layout, num_classes, head, feature_dim):
    """The graph that gauges the device's speed: the whole network of every layer's first
    candidate with the table's head (``head``: a dict). Timed beside the blocks when a
    table is measured and beside the networks when it is validated; a whole network moves
    with the machine's speed the way the networks being predicted do."""
    from .architecture import Architecture
    from .network import build_network
    config = HeadConfig(**dict(head or {"type": "softmax"}, feature_dim=feature_dim))
    arch = Architecture(space=layout.space.name, preset=layout.preset.name,
                        blocks=tuple(l.candidates[0] for l in layout.layers), head=config,
                        width_mult=layout.width_mult, name="reference")
    return build_network(arch, num_classes, layout.image_shape, mode="logits"), \
        tuple(layout.image_shape)


def _shape_key(layout, layer, candidate):
    return (layer.in_shape, layer.out_channels, layer.stride, layer.shapes_match, candidate,
            layout.preset.bn_inside_blocks)


def _predecessor(layout, layer):
    """The graph that produces a layer's input in context: the stem, or the previous
    layer's first candidate. Returns (key, symbol, input shape without batch)."""
    if layer.index == 0:
        return "stem", space_module(layout.space.name).stem(mx.sym.Variable("data"), layout), \
            tuple(layout.image_shape)
    prev = layout.layers[layer.index - 1]
    c = prev.candidates[0]
    return _shape_key(layout, prev, c), block_symbol(layout, prev, c), prev.in_shape


def measure_table(layout, ctx, batch_size=1, num_classes=1000, head=None, feature_dim=None,
                  policy=TimingPolicy(), progress=True):
    """Time every offered candidate of every layer *in context*, and the fixed parts.

    An entry is ``t(P -> B) - t(P)``: the time of the block ``B`` run right after ``P``,
    the graph that produces its input (the stem, or the previous layer's first
    candidate), minus the time of ``P`` alone. What a block costs inside a network —
    its input just written, the per-graph cost paid once — is what the difference
    keeps; timing ``B`` alone was measured to overstate it by 15-20%, more for heavy
    blocks. The tail and the head are measured the same way after their predecessors;
    the stem alone, minus the cost of an empty graph (``overhead_ms``).
    """
    from tqdm import tqdm

    head = head or HeadConfig()
    if feature_dim is None:
        feature_dim = layout.preset.feature_dim or 0
    started = time.time()
    items, index = [], {}

    def add(key, sym, shape):
        if key not in index:
            index[key] = len(items)
            items.append((sym, (batch_size,) + tuple(shape)))
        return index[key]

    call_sym, call_shape = overhead_symbol()
    add("call", call_sym, call_shape[1:])
    entries = {}
    for layer in layout.layers:
        pkey, psym, pshape = _predecessor(layout, layer)
        add(("alone", pkey), psym, pshape)
        for c in layer.candidates:
            key = (_shape_key(layout, layer, c), pkey)
            if key not in entries:
                _, chain_pred, _ = _predecessor(layout, layer)
                add(("chain",) + key, block_symbol(layout, layer, c, data=chain_pred), pshape)
                entries[key] = (layer, c)
    last = layout.layers[-1]
    # the tail's predecessor: the last layer's first candidate
    lkey = _shape_key(layout, last, last.candidates[0])
    lsym, lshape = block_symbol(layout, last, last.candidates[0]), last.in_shape
    module = space_module(layout.space.name)
    add(("alone", lkey), lsym, lshape)
    add("tail_chain", module.tail(block_symbol(layout, last, last.candidates[0]), layout), lshape)
    alone = fixed_symbols(layout, num_classes, head, feature_dim)
    for name, sym, shape in alone:
        add(("fixed", name), sym, shape)
    add("head_chain", _head_on(layout, module.tail(mx.sym.Variable("data"), layout),
                               num_classes, head, feature_dim), last.out_shape)
    ref = add("reference", *reference_network(layout, num_classes, head.to_dict(), feature_dim))
    anchor = items[ref]  # timed in every group if there are several
    factors = []
    with tqdm(total=len(items), desc="timing blocks", unit="graph", disable=not progress) as bar:
        results = time_symbols(items, ctx, policy, progress=bar.update, anchor=anchor,
                               factors=factors)
    t = {key: results[i] for key, i in index.items()}
    call = t["call"].median_ms

    def net(chain, pred):
        return chain.median_ms - pred.median_ms

    fixed = {
        "stem": {"median_ms": max(t[("fixed", "stem")].median_ms - call, MIN_MS)},
        "tail": {"median_ms": max(net(t["tail_chain"], t[("alone", lkey)]), MIN_MS)},
        "head": {"median_ms": max(net(t["head_chain"], t[("fixed", "tail")]), MIN_MS)},
    }
    for name, _, _ in alone:  # each part timed alone: the reference for validation
        fixed[name].update(raw_ms=t[("fixed", name)].median_ms,
                           spread_ms=t[("fixed", name)].spread_ms)
    values, spread, raw = [], [], []
    for layer in layout.layers:
        pkey = _predecessor(layout, layer)[0]
        row_raw = [net(t[("chain", _shape_key(layout, layer, c), pkey)], t[("alone", pkey)])
                   for c in layer.candidates]
        values.append([max(v, MIN_MS) for v in row_raw])
        raw.append(row_raw)
        spread.append([t[("chain", _shape_key(layout, layer, c), pkey)].spread_ms
                       for c in layer.candidates])
    meta = table_key(layout, batch_size, ctx)
    meta.update({
        "device_name": device_name(ctx),
        "num_classes": num_classes, "head": head.to_dict(), "feature_dim": feature_dim,
        "timing": policy.to_dict(), "overhead_ms": call,
        "unique_measurements": len(entries), "graphs_timed": len(items),
        "group_speed_factors": factors, "reference_ms": t["reference"].median_ms,
        "seconds": round(time.time() - started, 1),
        "measured_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    })
    return LatencyTable(values, [list(l.candidates) for l in layout.layers], meta, spread, raw,
                        fixed, source="measured latency table")


def table_key(layout, batch_size, ctx):
    """The settings a table is valid for (also the cache key)."""
    return {"space": layout.space.name, "preset": layout.preset.name,
            "image_shape": list(layout.image_shape), "batch_size": batch_size,
            "width_mult": layout.width_mult, "device": str(ctx),
            "device_name": device_name(ctx), "method": METHOD, **runtime_info()}


# ---------------------------------------------------------------- cache

def cached_table(layout, ctx, batch_size=1, policy=TimingPolicy(), progress=True):
    """A table for (space, preset, shape, batch, device, MXNet build): cached or measured."""
    key = table_key(layout, batch_size, ctx)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    path = os.path.join(default_cache_dir(), "lut", "%s-%s-%s-b%d-%s.json" % (
        layout.space.name, layout.preset.name, "x".join(map(str, layout.image_shape)),
        batch_size, digest))
    if os.path.isfile(path):
        try:
            table = load_table(path).check(layout, batch_size)
            logger.info("using cached latency table %s", path)
            return table, path
        except FBNetError as e:
            logger.warning("ignoring cached latency table: %s", e)
    logger.info("no latency table for this device and shape yet: measuring one (cached "
                "in %s)", path)
    table = measure_table(layout, ctx, batch_size, policy=policy, progress=progress)
    table.save(path)
    return table, path
