"""Measuring latency tables: what each entry times, the measurement itself, and the cache.

See :mod:`fbnet_symbol.latency.table` for what an entry means; docs/measurements.md for how
the timing copes with a machine whose speed drifts (interleaved rounds, a reference
network timed in every group).
"""
import datetime
import hashlib
import json
import logging
import os
import time

import mxnet as mx

from ..dist.devices import device_name, runtime_info
from ..cli import module_command
from ..errors import FBNetError
from ..fileio import default_cache_dir
from ..space.architecture import architecture_described, layout_described
from ..space.heads import HeadConfig, build_head
from ..space.network import LABEL_NAME, build_block, build_embedding, build_network, tail_channels
from ..space.spaces import block_module
from .table import MIN_MS, LatencyTable, load_table, settings_of
from .timing import QUICK, TimingPolicy, overhead_symbol, time_symbols

logger = logging.getLogger(__name__)

METHOD = "in-context difference/1"  # part of the cache key: a new method re-measures


def block_symbol(layout, layer, candidate, data=None):
    """What one table entry times: (pre-layer BN) + the candidate block, on ``data``."""
    data = mx.sym.Variable("data") if data is None else data
    module = block_module(layout.space)
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
    module = block_module(layout.space)
    return [("stem", module.stem(mx.sym.Variable("data"), layout), tuple(layout.image_shape)),
            ("tail", module.tail(mx.sym.Variable("data"), layout), layout.layers[-1].out_shape),
            ("head", _head_on(layout, mx.sym.Variable("data"), num_classes, head, feature_dim),
             (tail_channels(layout),))]


def reference_network(network, num_classes):
    """The graph that gauges the device's speed: the whole network of every layer's first
    candidate with the table's head (``network``: :func:`settings_of` a table). Timed beside
    the blocks when a table is measured and beside the networks when it is validated; a
    whole network moves with the machine's speed the way the networks being predicted do."""
    layout = layout_described(network)
    arch = architecture_described(network, [l.candidates[0] for l in layout.layers],
                                      "reference")
    return build_network(arch, num_classes, layout.image_shape, mode="logits"), \
        tuple(layout.image_shape)


def _shape_key(layout, layer, candidate):
    return (layer.in_shape, layer.out_channels, layer.stride, layer.shapes_match, candidate,
            layout.preset.bn_inside_blocks)


def _predecessor(layout, layer):
    """The graph that produces a layer's input in context: the stem, or the previous
    layer's first candidate. Returns (key, symbol, input shape without batch)."""
    if layer.index == 0:
        return "stem", block_module(layout.space).stem(mx.sym.Variable("data"), layout), \
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
    graphs = _Graphs(batch_size)
    alone = _add_graphs(graphs, layout, ctx, num_classes, head, feature_dim)
    anchor = graphs.items[graphs.index["reference"]]  # timed in every group if several
    factors = []
    with tqdm(total=len(graphs.items), desc="timing blocks", unit="graph",
              disable=not progress) as bar:
        results = time_symbols(graphs.items, ctx, policy, progress=bar.update, anchor=anchor,
                               factors=factors)
    t = {key: results[i] for key, i in graphs.index.items()}
    values, spread, raw, fixed = _entries(layout, t, alone, graphs.tail_pred)
    meta = table_key(layout, batch_size, ctx)
    meta.update({
        "device_name": device_name(ctx),
        "num_classes": num_classes, "head": head.to_dict(), "feature_dim": feature_dim,
        "timing": policy.to_dict(), "overhead_ms": t["call"].median_ms,
        "unique_measurements": graphs.blocks, "graphs_timed": len(graphs.items),
        "group_speed_factors": factors, "reference_ms": t["reference"].median_ms,
        "seconds": round(time.time() - started, 1),
        "measured_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    })
    return LatencyTable(values, [list(l.candidates) for l in layout.layers], meta, spread, raw,
                        fixed, source="measured latency table")


class _Graphs:
    """The graphs to time, each once: ``items`` ``[(symbol, input shape)]``, ``index``
    ``{key: position}``; ``blocks``: how many distinct block entries."""

    def __init__(self, batch_size):
        self.batch_size, self.items, self.index, self.blocks = batch_size, [], {}, 0
        self.tail_pred = None  # the key of the tail's predecessor timed alone

    def add(self, key, sym, shape):
        if key not in self.index:
            self.index[key] = len(self.items)
            self.items.append((sym, (self.batch_size,) + tuple(shape)))
        return self.index[key]


def _add_graphs(graphs, layout, ctx, num_classes, head, feature_dim):
    """Every graph :func:`measure_table` times: the empty graph, each block after its
    predecessor and each predecessor alone, the tail and head after theirs, the fixed parts
    alone and a reference network. Returns the fixed parts ``[(name, symbol, shape)]``."""
    call_sym, call_shape = overhead_symbol()
    graphs.add("call", call_sym, call_shape[1:])
    for layer in layout.layers:
        pkey, psym, pshape = _predecessor(layout, layer)
        graphs.add(("alone", pkey), psym, pshape)
        for c in layer.candidates:
            key = ("chain", _shape_key(layout, layer, c), pkey)
            if key not in graphs.index:
                graphs.blocks += 1
                chain_pred = _predecessor(layout, layer)[1]  # a graph of its own
                graphs.add(key, block_symbol(layout, layer, c, data=chain_pred), pshape)
    last = layout.layers[-1]  # the tail's predecessor: the last layer's first candidate
    lkey = _shape_key(layout, last, last.candidates[0])
    module = block_module(layout.space)
    graphs.add(("alone", lkey), block_symbol(layout, last, last.candidates[0]), last.in_shape)
    graphs.add("tail_chain", module.tail(block_symbol(layout, last, last.candidates[0]), layout),
               last.in_shape)
    alone = fixed_symbols(layout, num_classes, head, feature_dim)
    for name, sym, shape in alone:
        graphs.add(("fixed", name), sym, shape)
    graphs.tail_pred = ("alone", lkey)
    graphs.add("head_chain", _head_on(layout, module.tail(mx.sym.Variable("data"), layout),
                                      num_classes, head, feature_dim), last.out_shape)
    graphs.add("reference", *reference_network(settings_of(dict(
        table_key(layout, graphs.batch_size, ctx), head=head.to_dict(),
        feature_dim=feature_dim)), num_classes))
    return alone


def _entries(layout, t, alone, tail_pred):
    """The table from the timings ``t`` (``{graph key: timing}``): each block's and fixed
    part's time after its predecessor minus the predecessor's alone (the stem: minus the
    empty graph's), at least :data:`MIN_MS`; the raw differences and the spreads."""
    def net(chain, pred):
        return t[chain].median_ms - t[pred].median_ms

    fixed = {
        "stem": {"median_ms": max(t[("fixed", "stem")].median_ms - t["call"].median_ms,
                                  MIN_MS)},
        "tail": {"median_ms": max(net("tail_chain", tail_pred), MIN_MS)},
        "head": {"median_ms": max(net("head_chain", ("fixed", "tail")), MIN_MS)},
    }
    for name, _, _ in alone:  # each part timed alone: the reference for validation
        fixed[name].update(raw_ms=t[("fixed", name)].median_ms,
                           spread_ms=t[("fixed", name)].spread_ms)
    values, spread, raw = [], [], []
    for layer in layout.layers:
        pkey = _predecessor(layout, layer)[0]
        keys = [("chain", _shape_key(layout, layer, c), pkey) for c in layer.candidates]
        raw.append([net(k, ("alone", pkey)) for k in keys])
        values.append([max(v, MIN_MS) for v in raw[-1]])
        spread.append([t[k].spread_ms for k in keys])
    return values, spread, raw, fixed


def table_key(layout, batch_size, ctx):
    """The settings a table is valid for (also the cache key)."""
    return {"space": layout.space.name, "preset": layout.preset.name,
            "image_shape": list(layout.image_shape), "batch_size": batch_size,
            "width_mult": layout.width_mult, "device": str(ctx),
            "device_name": device_name(ctx), "method": METHOD, **runtime_info()}


def cached_table(layout, ctx, batch_size=1, policy=TimingPolicy(), progress=True):
    """A table for (space, preset, shape, batch, device, MXNet build): cached or measured."""
    key = table_key(layout, batch_size, ctx)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    quick = "-quick" if policy == QUICK else ""  # a rough table never stands in for a full one
    path = os.path.join(default_cache_dir(), "lut", "%s-%s-%s-b%d-%s%s.json" % (
        layout.space.name, layout.preset.name, "x".join(map(str, layout.image_shape)),
        batch_size, digest, quick))
    if os.path.isfile(path):
        try:
            table = load_table(path).check(layout, batch_size)
            logger.info("using cached latency table %s", path)
            return table, path
        except FBNetError as e:
            logger.warning("ignoring cached latency table: %s", e)
    logger.info("no latency table for this device and shape yet: measuring one in a fresh "
                "process (cached in %s)", path)
    measure_in_fresh_process(layout, ctx, batch_size, path, policy, progress)
    return load_table(path).check(layout, batch_size), path


def measure_in_fresh_process(layout, ctx, batch_size, path, policy=TimingPolicy(),
                             progress=True):
    """:func:`measure_table` in a new Python process (same interpreter, environment and
    thread count) that writes ``path``. Timing hundreds of batch-1 graphs leaves a process
    slow at training with several threads (measured: the 3x16x16 supernet's weight step
    104-122 samples/s before, 42-51 after a quick table in the same process; the cause
    inside MXNet/oneDNN was not found), so a search never times its table in-process."""
    import subprocess

    job = {"space": layout.space.name, "preset": layout.preset.name,
           "image_shape": list(layout.image_shape), "width_mult": layout.width_mult,
           "device": str(ctx), "batch_size": batch_size, "path": path,
           "policy": policy.to_dict(), "progress": progress}
    argv, env = module_command(__name__, json.dumps(job))
    done = subprocess.run(argv, env=env)
    if done.returncode != 0:
        raise FBNetError("measuring the latency table failed (exit %d, see the lines above); "
                         "measure it with fbnet measure (block_speed_test.py) and pass it with --lut"
                         % done.returncode)


def _main(argv):
    """``python -m fbnet_symbol.latency.measure JOB``: :func:`measure_in_fresh_process`'s
    child (``JOB``: its JSON)."""
    from ..dist.devices import context_from_string
    from ..space.spaces import decode_space

    job = json.loads(argv[0])
    layout = decode_space(job["space"], job["preset"], tuple(job["image_shape"]),
                          job["width_mult"])
    table = measure_table(layout, context_from_string(job["device"]), job["batch_size"],
                          policy=TimingPolicy(**job["policy"]), progress=job["progress"])
    table.save(job["path"])
    return 0


if __name__ == "__main__":
    import sys

    from ..cli import run
    run(_main, sys.argv[1:])
