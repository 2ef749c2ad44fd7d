"""PNG plots of a search: the architecture distribution and the expected latency."""
import io

import numpy as np

from .fileio import atomic_write


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path):
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write(path, buf.getvalue(), mode="wb")


def plot_distribution(layout, probabilities, path, title="", chosen=None):
    """Heat map of P_theta: one row per layer, one column per candidate of the space.

    ``probabilities``: {layer name: vector over that layer's offered candidates};
    ``chosen``: optional {layer name: candidate} marked with a box.
    """
    plt = _pyplot()
    names = list(layout.space.candidate_names)
    grid = np.full((layout.num_layers, len(names)), np.nan)
    for layer in layout.layers:
        for p, c in zip(probabilities[layer.name], layer.candidates):
            grid[layer.index, names.index(c)] = p
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * len(names), 1.2 + 0.3 * layout.num_layers))
    im = ax.imshow(np.ma.masked_invalid(grid), aspect="auto", cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(layout.num_layers))
    ax.set_yticklabels([l.name for l in layout.layers], fontsize=7)
    if chosen:
        for layer in layout.layers:
            if layer.name in chosen:
                x = names.index(chosen[layer.name])
                ax.add_patch(plt.Rectangle((x - 0.5, layer.index - 0.5), 1, 1, fill=False,
                                           edgecolor="red", lw=1.5))
    fig.colorbar(im, ax=ax, label="probability (blank: not offered)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)


def plot_latency(history, path, title=""):
    """Expected latency of P_theta per epoch (and the theta-split CE where known)."""
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    lat = [h["expected_latency_ms"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(epochs, lat, "o-", label="expected latency E[LAT] (ms)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("ms")
    ce = [(h["epoch"], h["theta_ce"]) for h in history if h.get("theta_ce") is not None]
    if ce:
        ax2 = ax.twinx()
        ax2.plot(*zip(*ce), "s--", color="tab:orange", label="CE on the theta split")
        ax2.set_ylabel("cross-entropy")
        ax2.legend(loc="upper right", fontsize=8)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    _save(fig, path)
