"""The FBNet search as a trainer task: supernet, latency table, theta by Adam, Gumbel noise, θ files.

Per epoch (paper, section 3.3): ``--warmup-epochs`` of weight training only, then one
pass of weight training on the weight split followed by one pass of theta training on the
theta split; the Gumbel temperature is ``T0 * decay**epoch``. The Gumbel noise of a step
is a pure function of (seed, global step) (:func:`~fbnet_symbol.util.step_rng`), drawn
for the whole step of all workers, so every worker and a resumed run see the same noise.
Files: ``theta-result/epoch_N_theta.txt`` (the seed's format), ``arch.json`` (argmax),
``lut.txt``/``lut.json``, ``distribution.png`` and ``latency.png``.
"""
import logging
import os

import numpy as np

from . import theta as theta_
from .architecture import architecture_from_settings, layout_from_settings
from .fileio import atomic_write
from .latency import LatencyTable, load_table
from .latency_measure import cached_table
from .supernet import supernet_class
from .trainer import WEIGHT, ParamGroup, Task
from .util import gumbel_noise, step_rng

logger = logging.getLogger(__name__)

THETA = "theta"


def theta_group(net, settings):
    """Theta trained by Adam in a stage of its own (not by the weights' SGD: a seed bug)."""
    return ParamGroup(THETA, list(net.theta_names), "adam",
                      {"learning_rate": settings.theta_lr, "wd": settings.theta_wd})


def shared_latency_table(env, layout):
    """The table of rank 0 (read, cached or measured there), on every worker."""
    s = env.settings
    if env.writer:
        if s.lut:
            table, path = load_table(s.lut).check(layout, s.lut_batch_size), s.lut
        else:
            table, path = cached_table(layout, env.contexts[0], s.lut_batch_size,
                                       progress=env.progress)
    if not env.cluster.distributed:
        return table, path
    shape = [len(l.candidates) for l in layout.layers]
    flat = np.concatenate([np.asarray(r, dtype=np.float32) for r in table.values]) \
        if env.writer else np.zeros(sum(shape), np.float32)
    flat = env.cluster.broadcast(flat, "lut")
    if env.writer:
        return table, path
    rows = np.split(flat, np.cumsum(shape)[:-1])
    logger.info("using the latency table of worker 0")
    return LatencyTable(rows, [l.candidates for l in layout.layers],
                        source="worker 0's table"), "worker 0's table"


class SearchTask(Task):
    checkpoint_prefix = "supernet"
    extra_outputs = (("latency_ms", "latency %.3f ms"),)

    def __init__(self, env):
        self.env = env
        s = self.settings = env.settings
        self.layout = layout_from_settings(s)
        self.table, self.table_path = shared_latency_table(env, self.layout)
        self.net = supernet_class(s.space).from_settings(s, env.num_classes, self.table)

    def temperature(self, epoch):
        return self.settings.temperature * self.settings.temperature_decay ** epoch

    # ------------------------------------------------------------ the loop's hooks
    def param_groups(self):
        return [theta_group(self.net, self.settings)]

    def stages(self, epoch):
        return [WEIGHT] if epoch < self.settings.warmup_epochs else [WEIGHT, THETA]

    def split(self, stage):
        return "train" if stage == WEIGHT else "theta"

    def noise(self, step):
        """This step's Gumbel noise: drawn for the whole step of all workers (the same on
        each), this worker keeping its own rows when there is one draw per sample."""
        batch, env = self.settings.batch_size, self.env
        noise = gumbel_noise(step_rng(self.settings.seed, step),
                             self.net.noise_shape(batch * env.num_workers))
        if noise.shape[0] == 1:
            return noise
        return noise[env.rank * batch:(env.rank + 1) * batch]

    def batch(self, data, label, valid, epoch, step):
        return self.net.batch(data, label, self.noise(step), self.temperature(epoch), valid)

    def eval_batch(self, data, label, valid, epoch):
        """The supernet without noise at the epoch's temperature."""
        zeros = np.zeros(self.net.noise_shape(data.shape[0]))
        return self.net.batch(data, label, zeros, self.temperature(epoch), valid)

    def status(self, epoch):
        return {"T": self.temperature(epoch)}

    def describe(self):
        return "searching"

    def start(self):
        self.table.save(os.path.join(self.env.out, "lut.txt"))

    def epoch_start_record(self, epoch):
        return {"temperature": self.temperature(epoch)}

    def epoch_record(self, arg_params):
        theta = self.net.split_theta(arg_params)
        blocks = theta_.argmax_blocks(self.layout, theta)
        spread = theta_.concentration(self.layout, theta)
        probs = theta_.probabilities(theta)
        return {"expected_latency_ms": theta_.expected_latency(self.layout, self.table, theta),
                "argmax_latency_ms": self.table.blocks_latency(self.layout, blocks),
                "blocks": blocks, "entropy": spread["entropy"],
                "argmax_probability": spread["argmax_probability"],
                "decided_layers": spread["decided_layers"],
                "probabilities": {k: [round(float(x), 6) for x in v] for k, v in probs.items()}}

    def write_epoch(self, trainer, epoch, record):
        out = self.env.out
        theta = self.net.split_theta(trainer.params()[0])
        theta_.write_theta_text(os.path.join(out, "theta-result", "epoch_%d_theta.txt" % epoch),
                                self.layout, theta)
        arch = architecture_from_settings(self.settings, record["blocks"], "searched")
        atomic_write(os.path.join(out, "arch.json"), arch.to_json())
        atomic_write(os.path.join(out, "theta-result", "epoch_%d_arch.json" % epoch),
                     arch.to_json())
        self._plots(theta_.probabilities(theta), record["blocks"], trainer.state.history)
        logger.info("epoch %d done: T %.3f, expected latency %.3f ms (argmax %.3f ms), "
                    "P_theta entropy %.3f of uniform%s%s",
                    epoch, record["temperature"], record["expected_latency_ms"],
                    record["argmax_latency_ms"], record["entropy"],
                    ", theta CE %.4f" % record["theta_ce"] if "theta_ce" in record else "",
                    ", val acc %.4f" % record["val_acc"] if "val_acc" in record else "")

    def _plots(self, probs, blocks, history):
        from .plots import plot_distribution, plot_latency, plot_theta_history
        s, out = self.settings, self.env.out
        chosen = {l.name: b for l, b in zip(self.layout.layers, blocks)}
        plot_distribution(self.layout, probs, os.path.join(out, "distribution.png"),
                          "P_theta after epoch %d (%s/%s); boxes: argmax"
                          % (history[-1]["epoch"], s.space, s.preset), chosen)
        plot_latency(history, os.path.join(out, "latency.png"),
                     "expected latency of P_theta (table: %s)"
                     % os.path.basename(self.table_path))
        plot_theta_history(self.layout, history, os.path.join(out, "theta.png"),
                           "P_theta per layer over the epochs (%s/%s)" % (s.space, s.preset))

    def checkpoint_meta(self, epoch):
        return {"temperature": self.temperature(epoch), "theta_names": self.net.theta_names}

    def summary(self, history):
        last = history[-1] if history else {}
        return {"theta": os.path.join(self.env.out, "theta-result"), "epochs": len(history),
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
            l.name: np.full(len(l.candidates), self.settings.theta_init)
            for l in self.layout.layers})
