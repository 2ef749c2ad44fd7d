"""The FBNet search as a trainer task: the supernet, its latency table, θ by Adam, the Gumbel noise.

Per epoch (paper, section 3.3): ``--warmup-epochs`` of weight training only, then one
pass of weight training on the weight split followed by one pass of theta training on the
theta split; the Gumbel temperature is ``T0 * decay**epoch``. The Gumbel noise of a step
is a pure function of (seed, global step)
(:func:`~fbnet_symbol.search.supernet.step_rng`), drawn for the whole step of all
workers, so every worker and a resumed run see the same noise. What the search writes and
reports each epoch: :class:`~fbnet_symbol.search.report.SearchReport`.
"""
import logging

import numpy as np

from ..latency.measure import cached_table
from ..latency.timing import QUICK, TimingPolicy
from ..latency.table import LatencyTable, load_table
from ..space.architecture import layout_from_settings
from ..train.trainer import WEIGHT, ParamGroup, Task
from .supernet import Supernet, gumbel_noise, step_rng

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
                                       QUICK if s.lut_timing == "quick" else TimingPolicy(),
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
    averaged_outputs = {"latency_ms": "latency"}

    def __init__(self, env):
        self.env = env
        s = self.settings = env.settings
        self.layout = layout_from_settings(s)
        self.table, self.table_path = shared_latency_table(env, self.layout)
        self.net = Supernet.from_settings(s, env.num_classes, self.table)

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

    def epoch_values(self, epoch):
        return {"temperature": self.temperature(epoch)}

    def checkpoint_meta(self, epoch):
        return {"temperature": self.temperature(epoch), "theta_names": self.net.theta_names}
