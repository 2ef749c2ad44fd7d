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
from dataclasses import dataclass

import numpy as np

from ..latency.measure import cached_table
from ..latency.timing import QUICK, TimingPolicy
from ..latency.table import LatencyTable, load_table
from ..space.architecture import layout_described
from ..space.heads import HeadConfig
from ..train.trainer import WEIGHT, ParamGroup, Task
from .supernet import Supernet, gumbel_noise, step_rng

logger = logging.getLogger(__name__)

THETA = "theta"


@dataclass(frozen=True)
class SearchTaskConfig:
    """What the search needs of a run, given explicitly (the run layer builds it from the
    settings: :func:`fbnet_symbol.search.parts.search_task_config`)."""
    network: dict            # space, preset, image_shape, width_mult and head, as args.json
    alpha: float             # the latency loss (paper: 0.2, 0.6)
    beta: float
    loss_form: str
    noise_mode: str          # one Gumbel draw per batch or per sample
    theta_init: float
    temperature: float       # T of epoch e: temperature * temperature_decay ** e
    temperature_decay: float
    warmup_epochs: int       # weight-only epochs first
    theta_lr: float          # theta's Adam
    theta_wd: float
    batch_size: int          # per worker
    seed: int
    lut: str = None          # the latency table's file (None: the cached or measured one)
    lut_batch_size: int = 1
    lut_timing: str = "full"


def build_supernet(config, num_classes, table):
    """The supernet ``config`` describes, over ``num_classes`` with latency ``table``."""
    n = config.network
    head = HeadConfig(type=n["model_type"], s=n["margin_s"], m=n["margin_m"])
    return Supernet(num_classes, table, n["preset"], n["image_shape"], n["width_mult"], head,
                    n["feature_dim"], alpha=config.alpha, beta=config.beta,
                    loss_form=config.loss_form, noise_mode=config.noise_mode,
                    theta_init=config.theta_init, space=n["space"])


def theta_group(net, lr, wd):
    """Theta trained by Adam in a phase of its own (not by the weights' SGD: a seed bug)."""
    return ParamGroup(THETA, list(net.theta_names), "adam", {"learning_rate": lr, "wd": wd})


def shared_latency_table(env, layout, s):
    """The table of rank 0 (read, cached or measured there as the :class:`SearchTaskConfig`
    ``s`` says), on every worker."""
    if env.writer:
        if s.lut:
            table, path = load_table(s.lut).check(layout, s.lut_batch_size), s.lut
        else:
            table, path = cached_table(layout, env.contexts[0], s.lut_batch_size,
                                       QUICK if s.lut_timing == "quick" else TimingPolicy(),
                                       progress=env.progress)
    if not env.collective.distributed:
        return table, path
    shape = [len(l.candidates) for l in layout.layers]
    flat = np.concatenate([np.asarray(r, dtype=np.float32) for r in table.values]) \
        if env.writer else np.zeros(sum(shape), np.float32)
    flat = env.collective.broadcast(flat, "lut")
    if env.writer:
        return table, path
    rows = np.split(flat, np.cumsum(shape)[:-1])
    logger.info("using the latency table of worker 0")
    return LatencyTable(rows, [l.candidates for l in layout.layers],
                        source="worker 0's table"), "worker 0's table"


class SearchTask(Task):
    checkpoint_prefix = "supernet"
    averaged_outputs = {"latency_ms": "latency"}

    def __init__(self, config, env):
        self.config, self.env = config, env
        self.layout = layout_described(config.network)
        self.table, self.table_path = shared_latency_table(env, self.layout, config)
        self.net = build_supernet(config, env.num_classes, self.table)

    def temperature(self, epoch):
        return self.config.temperature * self.config.temperature_decay ** epoch

    # ------------------------------------------------------------ the loop's hooks
    def param_groups(self):
        return [theta_group(self.net, self.config.theta_lr, self.config.theta_wd)]

    def phases(self, epoch):
        return [WEIGHT] if epoch < self.config.warmup_epochs else [WEIGHT, THETA]

    def split(self, phase):
        return "train" if phase == WEIGHT else "theta"

    def step_noise(self, step):
        """This step's Gumbel noise: drawn for the whole step of all workers (the same on
        each), this worker keeping its own rows when there is one draw per sample."""
        batch, env = self.config.batch_size, self.env
        noise = gumbel_noise(step_rng(self.config.seed, step),
                             self.net.noise_shape(batch * env.num_workers))
        if noise.shape[0] == 1:
            return noise
        return noise[env.rank * batch:(env.rank + 1) * batch]

    def batch(self, data, label, valid, epoch, step):
        return self.net.batch(data, label, self.step_noise(step), self.temperature(epoch), valid)

    def eval_batch(self, data, label, valid, epoch):
        """The supernet without noise at the epoch's temperature."""
        zeros = np.zeros(self.net.noise_shape(data.shape[0]))
        return self.net.batch(data, label, zeros, self.temperature(epoch), valid)

    def epoch_values(self, epoch):
        return {"temperature": self.temperature(epoch)}

    def checkpoint_meta(self, epoch):
        return {"temperature": self.temperature(epoch), "theta_names": self.net.theta_names}
