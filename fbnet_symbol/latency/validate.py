"""Check a latency table against whole networks: predicted vs measured.

Random architectures (see :func:`random_blocks`) plus FBNet-A/B/C
where the table covers them are built, timed exactly as the table's blocks were (same
device, engine, policy), and compared with the table's prediction. Reported: per-network
error, median |error| in %, and the Spearman rank correlation — the number that matters
for a search, which only needs the table to *order* architectures correctly.
"""
import csv
import logging

import numpy as np
from scipy import stats

from ..errors import FBNetError
from ..fileio import atomic_write, pyplot, save_figure
from ..space.architecture import (architecture_described, distinct_blocks,
                                  layout_described, named_architectures_of)
from ..space.heads import HeadConfig
from ..space.network import build_network
from .measure import fixed_symbols, reference_network
from .timing import TimingPolicy, time_symbols

logger = logging.getLogger(__name__)

DIRICHLET_CONCENTRATION = 0.5


def error_stats(predicted, measured):
    """Per-network error in %, the median of its absolute value, and Spearman's rho."""
    predicted = np.asarray(predicted, dtype=float)
    measured = np.asarray(measured, dtype=float)
    errors = (predicted - measured) / measured * 100.0
    rho = float(stats.spearmanr(predicted, measured).correlation) if len(predicted) > 1 else float("nan")
    return {"errors_pct": errors.tolist(),
            "median_abs_error_pct": float(np.median(np.abs(errors))),
            "spearman": rho}


def table_layout(table):
    return layout_described(table.settings())


def table_architecture(table, blocks, name):
    return architecture_described(table.settings(), blocks, name)


def random_blocks(layout, rng, concentration=DIRICHLET_CONCENTRATION):
    """One random architecture.

    Each network first draws its own preference over the space's candidates from a
    symmetric Dirichlet prior, then samples every layer from that preference (restricted
    to the layer's offered candidates). Independent uniform choices per layer would give
    networks within a few percent of each other in latency — useless for checking that a
    table *ranks* networks — while this spans light to heavy networks without looking at
    the table.
    """
    names = layout.space.candidate_names
    preference = rng.dirichlet([concentration] * len(names))
    blocks = []
    for layer in layout.layers:
        p = np.array([preference[names.index(c)] for c in layer.candidates]) + 1e-12
        blocks.append(layer.candidates[rng.choice(len(p), p=p / p.sum())])
    return tuple(blocks)


def candidate_architectures(table, num_archs, seed=0):
    """``num_archs`` distinct random architectures, then the named ones the table covers."""
    layout = table_layout(table)
    rng = np.random.RandomState(seed)
    archs = [table_architecture(table, blocks, "random_%02d" % i) for i, blocks in enumerate(
        distinct_blocks(lambda: random_blocks(layout, rng), num_archs,
                        100 * max(num_archs, 1)))]
    kept, left_out = named_architectures_of(layout)  # the shipped networks of its space
    for name, why in left_out:
        logger.info("%s left out: %s", name, why)
    archs += [table_architecture(table, named.blocks, name) for name, named in kept]
    return archs


def validate_table(table, ctx, num_archs=10, seed=0, policy=TimingPolicy(), progress=True,
                   archs=None):
    """Time each architecture whole and compare with the table's prediction.

    ``archs``: specific architectures (e.g. the one you trained) instead of random ones;
    they are timed with the table's head settings, which the table's fixed parts measured.
    """
    from tqdm import tqdm

    layout = table_layout(table)
    batch = table.meta["batch_size"]
    num_classes = table.meta.get("num_classes", 1000)
    archs = _table_archs(table, archs) if archs else candidate_architectures(table, num_archs,
                                                                              seed)
    items = [(build_network(a, num_classes, layout.image_shape, mode="logits"),
              (batch,) + tuple(layout.image_shape)) for a in archs]
    reference, then, anchor = _speed_reference(table, layout, num_classes)
    items += [(sym, (batch,) + tuple(shape)) for _, sym, shape in reference]
    factors = []
    with tqdm(total=len(items), desc="timing networks", unit="net", disable=not progress) as bar:
        timings = time_symbols(items, ctx, policy, progress=bar.update, anchor=anchor,
                               factors=factors)
    now = sum(t.median_ms for t in timings[len(archs):])
    rows = [{"name": a.name, "predicted_ms": table.predict(a, layout),
             "measured_ms": t.median_ms, "spread_ms": t.spread_ms, "blocks": " ".join(a.blocks)}
            for a, t in zip(archs, timings)]
    summary = error_stats([r["predicted_ms"] for r in rows], [r["measured_ms"] for r in rows])
    for r, e in zip(rows, summary.pop("errors_pct")):
        r["error_pct"] = e
    # a diagnostic, not a correction: the same error if every prediction is scaled by how
    # much faster or slower the device runs the table's own fixed parts now
    summary["device_speed_ratio"] = now / then
    summary["median_abs_error_pct_at_current_speed"] = error_stats(
        [r["predicted_ms"] * now / then for r in rows],
        [r["measured_ms"] for r in rows])["median_abs_error_pct"]
    summary.update(group_speed_factors=factors, num_networks=len(rows), networks=rows)
    return summary


def _table_archs(table, archs):
    """The given architectures with the table's head settings, refused if built for
    another space, preset or width."""
    m = table.meta
    for a in archs:
        if (a.space, a.preset, a.width_mult) != (m["space"], m["preset"], m["width_mult"]):
            raise FBNetError("architecture %s is %s/%s at width %s but the table is for "
                             "%s/%s at width %s; measure a table for its settings"
                             % (a.name or "", a.space, a.preset, a.width_mult, m["space"],
                                m["preset"], m["width_mult"]))
    out = [table_architecture(table, a.blocks, a.name or "arch_%d" % i)
           for i, a in enumerate(archs)]
    for a in out:
        a.validate()
    return out


def _speed_reference(table, layout, num_classes):
    """How fast is the device now compared with when the table was measured? The graphs
    to time again (the table's reference network; older tables: its fixed parts, each
    alone), their time then, and the anchor timed in every group."""
    ref_sym, ref_shape = reference_network(table.settings(), num_classes)
    anchor = (ref_sym, (table.meta["batch_size"],) + ref_shape)
    if "reference_ms" in table.meta:
        return [("reference", ref_sym, ref_shape)], table.meta["reference_ms"], anchor
    reference = fixed_symbols(layout, num_classes, HeadConfig(**table.meta.get("head", {})),
                              table.meta.get("feature_dim", 0))
    then = sum(table.fixed.get(name, {}).get("raw_ms", float("nan"))
               for name, _, _ in reference)
    return reference, then, anchor


def write_report(summary, csv_path, png_path, title=""):
    """CSV of every network and a predicted-vs-measured scatter plot (PNG)."""
    import io

    plt = pyplot()
    buf = io.StringIO()
    fields = ["name", "predicted_ms", "measured_ms", "error_pct", "spread_ms", "blocks"]
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    for r in summary["networks"]:
        writer.writerow({k: r[k] for k in fields})
    atomic_write(csv_path, buf.getvalue())

    pred = np.array([r["predicted_ms"] for r in summary["networks"]])
    meas = np.array([r["measured_ms"] for r in summary["networks"]])
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.scatter(meas, pred, s=25)
    for r in summary["networks"]:
        if not r["name"].startswith("random"):
            ax.annotate(r["name"], (r["measured_ms"], r["predicted_ms"]), fontsize=8)
    lo, hi = min(pred.min(), meas.min()) * 0.95, max(pred.max(), meas.max()) * 1.05
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="predicted = measured")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("predicted from table (ms)")
    ax.set_title("%s\nmedian |error| %.1f%%, Spearman %.3f" % (
        title, summary["median_abs_error_pct"], summary["spearman"]), fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    save_figure(fig, png_path)
