"""What a search records and writes each epoch: P_θ's figures, θ files, the argmax architecture, plots.

A :class:`~fbnet_symbol.train.trainer.Callback` of the search: it reads θ from the
parameters the trainer hands it, never the trainer. Files (rank 0):
``theta-result/epoch_N_theta.txt`` (the seed's format) and ``epoch_N_arch.json``,
``arch.json`` (the argmax architecture), ``lut.txt``/``lut.json`` (the table searched
with), ``distribution.png``, ``latency.png`` and ``theta.png``.
"""
import logging
import os

import numpy as np

from ..fileio import atomic_write
from ..space.architecture import architecture_described
from ..train.trainer import Callback
from . import theta as theta_

logger = logging.getLogger(__name__)


class SearchReport(Callback):
    """``task``: the :class:`~fbnet_symbol.search.task.SearchTask` (its supernet, layout
    and latency table); ``out``: the run's folder."""

    def __init__(self, task, out):
        self.task, self.out = task, out
        self.layout, self.table, self.network = task.layout, task.table, task.config.network
        self.theta_init = task.config.theta_init

    def on_start(self):
        self.table.save(os.path.join(self.out, "lut.txt"))

    def epoch_figures(self, epoch, arg_params):
        theta = self.task.net.split_theta(arg_params)
        blocks = theta_.argmax_blocks(self.layout, theta)
        spread = theta_.concentration(self.layout, theta)
        probs = theta_.probabilities(theta)
        return {"expected_latency_ms": theta_.expected_latency(self.layout, self.table, theta),
                "argmax_latency_ms": self.table.blocks_latency(self.layout, blocks),
                "blocks": blocks, "entropy": spread["entropy"],
                "argmax_probability": spread["argmax_probability"],
                "decided_layers": spread["decided_layers"],
                "probabilities": {k: [round(float(x), 6) for x in v] for k, v in probs.items()}}

    def on_epoch_end(self, epoch, record, history, arg_params, aux_params):
        theta = self.task.net.split_theta(arg_params)
        theta_.write_theta_text(
            os.path.join(self.out, "theta-result", "epoch_%d_theta.txt" % epoch), self.layout,
            theta)
        arch = architecture_described(self.network, record["blocks"], "searched")
        atomic_write(os.path.join(self.out, "arch.json"), arch.to_json())
        atomic_write(os.path.join(self.out, "theta-result", "epoch_%d_arch.json" % epoch),
                     arch.to_json())
        self._plots(theta_.probabilities(theta), record["blocks"], history)
        logger.info("epoch %d done: T %.3f, expected latency %.3f ms (argmax %.3f ms), "
                    "P_theta entropy %.3f of uniform%s%s",
                    epoch, record["temperature"], record["expected_latency_ms"],
                    record["argmax_latency_ms"], record["entropy"],
                    ", theta CE %.4f" % record["theta_ce"] if "theta_ce" in record else "",
                    ", val acc %.4f" % record["val_acc"] if "val_acc" in record else "")

    def _plots(self, probs, blocks, history):
        from .plots import plot_distribution, plot_latency, plot_theta_history
        s, out = self.network, self.out
        chosen = {l.name: b for l, b in zip(self.layout.layers, blocks)}
        plot_distribution(self.layout, probs, os.path.join(out, "distribution.png"),
                          "P_theta after epoch %d (%s/%s); boxes: argmax"
                          % (history[-1]["epoch"], s["space"], s["preset"]), chosen)
        plot_latency(history, os.path.join(out, "latency.png"),
                     "expected latency of P_theta (table: %s)"
                     % os.path.basename(self.task.table_path))
        plot_theta_history(self.layout, history, os.path.join(out, "theta.png"),
                           "P_theta per layer over the epochs (%s/%s)" % (s["space"], s["preset"]))

    def summary(self, history):
        last = history[-1] if history else {}
        return {"theta": os.path.join(self.out, "theta-result"), "epochs": len(history),
                "blocks": last.get("blocks"),
                "expected_latency_ms": last.get("expected_latency_ms"),
                "initial_expected_latency_ms": self.initial_expected_latency(),
                "argmax_latency_ms": last.get("argmax_latency_ms"),
                "entropy": last.get("entropy"),
                "argmax_probability": last.get("argmax_probability"),
                "uniform_probability": float(np.mean([1.0 / len(l.candidates)
                                                      for l in self.layout.layers])),
                "decided_layers": last.get("decided_layers"),
                "num_layers": self.layout.num_layers}

    def initial_expected_latency(self):
        """E[LAT] under the initial θ (every entry ``--theta-init``: uniform)."""
        return theta_.expected_latency(self.layout, self.table, {
            l.name: np.full(len(l.candidates), self.theta_init)
            for l in self.layout.layers})
