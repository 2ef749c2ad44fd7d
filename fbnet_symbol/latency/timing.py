"""Time symbols' inference forward passes on a device.

One function serves both the per-block table and the whole-network validation, so the
two are measured the same way: bind for inference (no gradients), fill parameters with
random values, warm up, then time synchronous forwards (``outputs[0].wait_to_read()``)
until every median moves by less than ``rel_tol`` between rounds, or a cap on repeats
or seconds is reached. The spread is the inter-quartile range.

Graphs are timed *interleaved*: each round runs every graph once, in turn. On a shared
2-core machine the speed drifts by 20-30% over seconds (seen here: the same network at
14 ms, then 19 ms); timing one graph after another turns that drift into differences
between graphs, interleaving spreads it evenly over all of them. It also keeps a graph's
weights from staying hot in cache between its runs, as in a whole network.
"""
import time
from dataclasses import asdict, dataclass

import mxnet as mx
import numpy as np


@dataclass(frozen=True)
class TimingPolicy:
    warmup: int = 10
    round_size: int = 20
    min_repeats: int = 40
    max_repeats: int = 1000
    rel_tol: float = 0.02
    max_seconds: float = 3.0
    min_seconds: float = 30.0  # per group: long enough to see the machine's fast state

    def to_dict(self):
        return asdict(self)


FAST_STATE_TOLERANCE = 1.08
QUICK = TimingPolicy(warmup=2, round_size=5, min_repeats=5, max_repeats=20, max_seconds=0.5,
                     min_seconds=0.0)


@dataclass(frozen=True)
class Timing:
    median_ms: float
    spread_ms: float  # inter-quartile range
    repeats: int


def bind_for_inference(sym, data_shape, ctx, seed=0):
    """Bind ``sym`` (input ``data``) for inference with random parameters."""
    exe = sym.simple_bind(ctx, grad_req="null", data=data_shape)
    rng = np.random.RandomState(seed)
    for name, arr in exe.arg_dict.items():
        if name != "data":
            arr[:] = rng.normal(0, 0.05, arr.shape)
    for name, arr in exe.aux_dict.items():
        arr[:] = 1.0 if name.endswith("var") else 0.0
    exe.arg_dict["data"][:] = rng.uniform(-1, 1, data_shape)
    return exe


def _run_once(exe):
    t0 = time.perf_counter()
    exe.forward(is_train=False)
    exe.outputs[0].wait_to_read()
    return time.perf_counter() - t0


def time_executors(exes, policy=TimingPolicy()):
    """Time several bound executors interleaved; one :class:`Timing` each.

    A round runs every executor once. Only rounds in the machine's fast state count
    (see :func:`_fast_rounds`): on this kind of shared machine the speed flips between
    two states for seconds at a time (a network at 13 ms, then 17.5 ms, then 13 ms
    again), and a round lies in one state. Keeping the fast-state rounds makes tables
    and networks measured minutes apart comparable; the median over the kept rounds is
    what is reported, and it is that median which must be stable.
    """
    for _ in range(policy.warmup):
        for exe in exes:
            _run_once(exe)
    rounds = []  # one row per round: a time per executor
    previous = None
    start = time.perf_counter()
    budget = max(policy.max_seconds * len(exes), policy.min_seconds)
    while True:
        for _ in range(policy.round_size):
            rounds.append([_run_once(exe) for exe in exes])
        kept = _fast_rounds(np.array(rounds))
        medians = np.median(kept, axis=0)
        n = len(rounds)
        stable = previous is not None and bool(
            (np.abs(medians - previous) <= policy.rel_tol * previous).all())
        elapsed = time.perf_counter() - start
        if n >= policy.max_repeats or elapsed > budget:
            break
        if n >= policy.min_repeats and stable and elapsed >= policy.min_seconds:
            break
        previous = medians
    q1, med, q3 = np.percentile(kept, [25, 50, 75], axis=0)
    return [Timing(median_ms=float(m) * 1e3, spread_ms=float(hi - lo) * 1e3, repeats=n)
            for m, lo, hi in zip(med, q1, q3)]


def _fast_rounds(rounds):
    """Rounds in the machine's fast state: total within 8% of the 5th-percentile total."""
    totals = rounds.sum(axis=1)
    return rounds[totals <= FAST_STATE_TOLERANCE * np.percentile(totals, 5)]


def activation_bytes(sym, data_shape):
    """Rough memory of a bound inference graph: every internal output plus arguments."""
    internals = sym.get_internals()
    args, outs, aux = internals.infer_shape(data=data_shape)
    return 4 * sum(int(np.prod(s)) for s in list(args) + list(outs) + list(aux or []))


def plan_groups(items, memory_budget, reserved=0):
    """Consecutive index groups of ``items`` whose bound graphs fit ``memory_budget``."""
    groups, group, used = [], [], reserved
    for i, (sym, shape) in enumerate(items):
        size = activation_bytes(sym, shape)
        if group and used + size > memory_budget:
            groups.append(group)
            group, used = [], reserved
        group.append(i)
        used += size
    if group:
        groups.append(group)
    return groups


def time_symbols(items, ctx, policy=TimingPolicy(), memory_budget=2 << 30, progress=None,
                 anchor=None, factors=None):
    """Time ``[(symbol, data_shape), ...]`` interleaved, in groups that fit ``memory_budget``.

    Groups are timed one after another, possibly in different speed states of the
    machine (seen here: one group of networks 17% slower than the next). With ``anchor``
    (a ``(symbol, data_shape)``), that graph is timed inside every group as well and each
    group's times are scaled by ``anchor in the fastest group / anchor in this group``,
    so all results are at one speed. ``factors`` (a list) receives each group's scale.
    ``progress``: optional callable(number_done) after each group.
    """
    results = [None] * len(items)
    reserved = activation_bytes(*anchor) if anchor is not None else 0
    groups = plan_groups(items, memory_budget, reserved)
    use_anchor = anchor is not None and len(groups) > 1
    raw, anchor_ms = [], []
    for g in groups:
        exes = [bind_for_inference(items[i][0], items[i][1], ctx, seed=i) for i in g]
        if use_anchor:
            exes.append(bind_for_inference(anchor[0], anchor[1], ctx, seed=len(items)))
        timings = time_executors(exes, policy)
        del exes
        if use_anchor:
            anchor_ms.append(timings.pop().median_ms)
        raw.append(timings)
        if progress:
            progress(len(g))
    scales = [min(anchor_ms) / a for a in anchor_ms] if use_anchor else [1.0] * len(groups)
    for g, timings, scale in zip(groups, raw, scales):
        for i, t in zip(g, timings):
            results[i] = Timing(median_ms=t.median_ms * scale, spread_ms=t.spread_ms * scale,
                                repeats=t.repeats)
    if factors is not None:
        factors.extend(scales)
    return results


def overhead_symbol():
    """An (almost) empty graph: timing it gives the cost of one synchronous forward call.

    Every separately timed block pays that cost once; a whole network pays it once.
    """
    return mx.sym.identity(mx.sym.Variable("data"), name="overhead"), (1, 1)
