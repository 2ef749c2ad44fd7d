"""The study's files: ``study.csv`` (a row per network) and ``study.png`` (latency vs accuracy)."""
import csv
import io

import numpy as np

from ..fileio import atomic_write
from .study_stats import mean_acc, pareto_front

FIELDS = ["kind", "name", "alpha", "search_seed", "predicted_ms", "latency_ms", "acc_mean",
          "acc_sd", "accs", "expected_latency_ms", "entropy", "blocks"]


def write_csv(nets, path):
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FIELDS, extrasaction="ignore")
    writer.writeheader()
    for n in nets:
        writer.writerow(dict(n, acc_mean="%.4f" % mean_acc(n), acc_sd="%.4f" % np.std(n["accs"]),
                             accs=" ".join("%.4f" % a for a in n["accs"]),
                             blocks=" ".join(n["blocks"])))
    atomic_write(path, buf.getvalue())


def _points(ax, nets, **style):
    """Mean accuracy over training seeds, bars from the lowest to the highest seed."""
    x = [n["latency_ms"] for n in nets]
    y = [mean_acc(n) for n in nets]
    err = [[m - min(n["accs"]) for m, n in zip(y, nets)],
           [max(n["accs"]) - m for m, n in zip(y, nets)]]
    ax.errorbar(x, y, yerr=err, fmt="none", ecolor=style.pop("ecolor", "0.6"), lw=0.8,
                capsize=2)
    return ax.scatter(x, y, zorder=3, **style)


def metric_label(metric):
    """``val_acc`` -> "validation top-1"; ``lfw_acc`` -> "verification accuracy (lfw.bin)"."""
    if metric == "val_acc":
        return "validation top-1"
    return "verification accuracy (%s.bin)" % metric[:-len("_acc")]


def plot(nets, summary, path, title):
    from ..fileio import pyplot, save_figure
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 4.8))
    randoms = [n for n in nets if n["kind"] == "random"]
    if randoms:
        _points(ax, randoms, c="0.6", marker="s", s=22, label="random networks")
    baselines = [n for n in nets if n["kind"] == "baseline"]
    if baselines:
        _points(ax, baselines, c="tab:orange", marker="^", s=46, edgecolors="k",
                label="hand-designed baselines")
        for n in baselines:
            ax.annotate(n["name"], (n["latency_ms"], mean_acc(n)), fontsize=7,
                        xytext=(4, -9), textcoords="offset points")
    for variant in sorted({n.get("variant") for n in nets if n.get("variant")}):
        _points(ax, [n for n in nets if n.get("variant") == variant], c="tab:red", marker="D",
                s=40, edgecolors="k", ecolor="tab:red",
                label="searched, variant %s (alpha %s)" % (variant, ",".join(sorted(
                    {"%g" % n["alpha"] for n in nets if n.get("variant") == variant}))))
    searched = [n for n in nets if n["kind"] == "searched" and not n.get("variant")]
    if searched:
        sc = _points(ax, searched, c=[n["alpha"] for n in searched], cmap="viridis",
                     marker="o", s=56, edgecolors="k", ecolor="k",
                     label="searched (argmax); colour: alpha")
        fig.colorbar(sc, ax=ax, label="alpha")
    points = [(n["latency_ms"], mean_acc(n)) for n in nets]
    front = pareto_front(points)
    ax.step([points[i][0] for i in front], [points[i][1] for i in front], "r--",
            where="post", lw=1, label="Pareto front (means)")
    h = summary.get("headline", {})
    if h.get("with_neighbours"):
        ax.text(0.01, 0.99, "searched vs random neighbours (±10%% latency): mean %+.3f; "
                "better %d, worse %d of %d (95%% interval)"
                % (h["mean_difference"], h["better_than_neighbours"],
                   h["worse_than_neighbours"], h["with_neighbours"]),
                transform=ax.transAxes, fontsize=7, va="top")
    ax.set_xlabel("measured latency of the whole network (ms)")
    ax.set_ylabel("%s, trained from scratch\n(mean; bars: lowest to highest seed)"
                  % metric_label(summary.get("metric", "val_acc")))
    ax.set_title(title, fontsize=9)
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
