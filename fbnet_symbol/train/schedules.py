"""The weight learning-rate schedules: the seed's cosine with a linear rise after each restart, cosine, steps."""
import math
from dataclasses import dataclass

import mxnet as mx

from ..errors import FBNetError


class CosineWithLinearRise(mx.lr_scheduler.LRScheduler):
    """Cosine decay with warm restarts whose restarts *rise* linearly (the seed's schedule).

    Period ``k`` (k = 0, 1, ...) lasts ``T_k = first_decay_step * t_mul**k`` updates, has
    the peak ``P_k = base_lr * m_mul**k`` and the floor ``F_k = alpha * P_k``. Period 0 is a
    plain cosine from ``P_0`` down to ``F_0``. Every later period first rises linearly
    from ``F_k`` to ``P_k`` over ``rise_region`` updates (capped at half the period),
    instead of jumping to the peak, then decays by a cosine to ``F_k`` over the rest.

    The rate is a pure function of ``num_update``, so a resumed run continues the same
    curve. (The seed kept mutable counters and divided the cosine by ``T_k - rise_region``
    even in period 0, which makes the rate climb back before the first restart; that is
    not reproduced.)
    """

    def __init__(self, first_decay_step, t_mul=2.0, m_mul=0.9, alpha=0.001, base_lr=0.01,
                 rise_region=100):
        super().__init__(base_lr)
        if int(first_decay_step) < 1:
            raise ValueError("first_decay_step must be a positive number of updates")
        if t_mul < 1:
            raise ValueError("t_mul must be >= 1")
        self.first_decay_step = int(first_decay_step)
        self.t_mul = float(t_mul)
        self.m_mul = float(m_mul)
        self.alpha = float(alpha)
        self.peak_lr = float(base_lr)
        self.rise_region = int(rise_region)

    def period_of(self, num_update):
        """(period index, start update, length) of the period containing ``num_update``."""
        k, start, length = 0, 0, self.first_decay_step
        while num_update >= start + length:
            start += length
            k += 1
            length = max(1, int(round(self.first_decay_step * self.t_mul ** k)))
        return k, start, length

    def __call__(self, num_update):
        k, start, length = self.period_of(max(0, int(num_update)))
        t = num_update - start
        peak = self.peak_lr * self.m_mul ** k
        floor = self.alpha * peak
        rise = 0 if k == 0 else min(self.rise_region, length // 2)
        if t < rise:
            lr = floor + (peak - floor) * t / rise
        else:
            progress = (t - rise) / max(1, length - rise)
            lr = floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * progress))
        self.base_lr = lr
        return lr


# the seed's name, which its users import (``from util import CosineDecayScheduler_Grad``)
CosineDecayScheduler_Grad = CosineWithLinearRise


class CosineScheduler(mx.lr_scheduler.LRScheduler):
    """Plain cosine from ``base_lr`` to ``final_lr`` over ``max_update`` updates."""

    def __init__(self, max_update, base_lr=0.01, final_lr=0.0):
        super().__init__(base_lr)
        self.max_update = max(1, int(max_update))
        self.peak_lr = float(base_lr)
        self.final_lr = float(final_lr)

    def __call__(self, num_update):
        p = min(1.0, num_update / self.max_update)
        self.base_lr = self.final_lr + (self.peak_lr - self.final_lr) * 0.5 * (1 + math.cos(math.pi * p))
        return self.base_lr


class StepScheduler(mx.lr_scheduler.LRScheduler):
    """Multiply the rate by ``factor`` at each update count in ``steps``."""

    def __init__(self, steps, factor=0.1, base_lr=0.01):
        super().__init__(base_lr)
        self.steps = sorted(int(s) for s in steps)
        self.factor = float(factor)
        self.peak_lr = float(base_lr)

    def __call__(self, num_update):
        n = sum(1 for s in self.steps if num_update >= s)
        self.base_lr = self.peak_lr * self.factor ** n
        return self.base_lr


@dataclass(frozen=True)
class ScheduleConfig:
    """The weight learning-rate schedule: ``kind`` (``--lr-scheduler``) and what it needs."""
    kind: str
    lr: float
    epochs: int
    lr_floor: float = 0.001      # the floor, a fraction of the peak
    t_mul: float = 2.0           # cosine_grad: period growth, peak decay, linear rise
    m_mul: float = 0.9
    rise_region: int = 100
    cosine_decay_step: int = None  # cosine_grad's first period in updates (None: an epoch)
    lr_step_epochs: str = None   # step: "30,60"


def make_scheduler(config, batches_per_epoch):
    """The weight learning-rate schedule ``config`` names, in updates."""
    c = config
    if c.kind == "cosine_grad":
        return CosineWithLinearRise(c.cosine_decay_step or batches_per_epoch, c.t_mul,
                                    c.m_mul, c.lr_floor, c.lr, c.rise_region)
    if c.kind == "cosine":
        return CosineScheduler(batches_per_epoch * c.epochs, c.lr, c.lr * c.lr_floor)
    if c.kind == "step":
        try:
            epochs = [int(e) for e in (c.lr_step_epochs or "").split(",") if e.strip()]
        except ValueError:
            epochs = None
        if not epochs:
            raise FBNetError("--lr-scheduler step needs --lr-step-epochs like 30,60")
        return StepScheduler([e * batches_per_epoch for e in epochs], 0.1, c.lr)
    raise FBNetError("unknown --lr-scheduler %r; choose cosine_grad, cosine or step" % c.kind)
