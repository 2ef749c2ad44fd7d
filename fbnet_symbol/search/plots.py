"""PNG plots of a search: P_theta, its path over the epochs, expected latency and accuracy."""
import numpy as np

from ..fileio import pyplot, save_figure


def plot_distribution(layout, probabilities, path, title="", chosen=None):
    """Heat map of P_theta: one row per layer, one column per candidate of the space.

    ``probabilities``: {layer name: vector over that layer's offered candidates};
    ``chosen``: optional {layer name: candidate} marked with a box.
    """
    plt = pyplot()
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
    save_figure(fig, path)


def plot_latency(history, path, title=""):
    """Expected latency of P_theta per epoch, and the accuracies known per epoch."""
    plt = pyplot()
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(epochs, [h["expected_latency_ms"] for h in history], "o-",
            label="expected latency E[LAT] (ms)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("ms")
    ax2 = ax.twinx()
    # verification accuracies are recorded as <pair set>_acc (evaluation.py)
    verification = sorted({k for h in history for k in h if k.endswith("_acc")}
                          - {"weight_acc", "theta_acc", "val_acc"})
    curves = [("theta_acc", "s--", "top-1, theta split (training)"),
              ("val_acc", "^--", "top-1, validation split")] + [
        (k, "d-.", "verification, %s" % k[:-len("_acc")]) for k in verification]
    for key, style, label in curves:
        points = [(h["epoch"], h[key]) for h in history if h.get(key) is not None]
        if points:
            ax2.plot(*zip(*points), style, label=label)
    ax2.set_ylabel("accuracy")
    if ax2.get_legend_handles_labels()[0]:
        ax2.legend(loc="upper right", fontsize=8)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def plot_theta_history(layout, history, path, title=""):
    """P_theta of every layer over the epochs: one small panel per layer, a line per
    candidate (the records' ``probabilities``)."""
    plt = pyplot()
    records = [h for h in history if h.get("probabilities")]
    if not records:
        return
    epochs = [h["epoch"] for h in records]
    names = list(layout.space.candidate_names)
    colours = plt.get_cmap("tab10")
    cols = 6
    rows = (layout.num_layers + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 1.6 * rows + 0.8), sharex=True,
                             sharey=True, squeeze=False)
    for ax in axes.ravel()[layout.num_layers:]:
        ax.axis("off")
    for layer, ax in zip(layout.layers, axes.ravel()):
        for i, c in enumerate(layer.candidates):
            ax.plot(epochs, [h["probabilities"][layer.name][i] for h in records],
                    color=colours(names.index(c) % 10), lw=1.2, label=c)
        ax.set_title(layer.name, fontsize=8)
        ax.set_ylim(0, 1)
        ax.tick_params(labelsize=7)
    handles = [plt.Line2D([], [], color=colours(i % 10), label=n) for i, n in enumerate(names)]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(names), 9), fontsize=8)
    fig.suptitle(title, fontsize=9)
    # fixed margins: tight_layout on 24 panels costs about a second per epoch
    fig.subplots_adjust(left=0.04, right=0.99, top=0.9, bottom=0.14, wspace=0.15, hspace=0.45)
    save_figure(fig, path)
