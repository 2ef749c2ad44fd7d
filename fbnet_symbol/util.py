"""Learning-rate schedules, Gumbel noise and logging helpers."""
import logging
import math
import os
import sys

import mxnet as mx
import numpy as np


class CosineDecayScheduler_Grad(mx.lr_scheduler.LRScheduler):  # noqa: N801 (the seed's name)
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


def make_scheduler(settings, batches_per_epoch):
    """The weight learning-rate schedule ``--lr-scheduler`` names, in updates."""
    from .errors import FBNetError
    s = settings
    if s.lr_scheduler == "cosine_grad":
        return CosineDecayScheduler_Grad(s.cosine_decay_step or batches_per_epoch, s.t_mul,
                                         s.m_mul, s.lr_floor, s.lr, s.rise_region)
    if s.lr_scheduler == "cosine":
        return CosineScheduler(batches_per_epoch * s.epochs, s.lr, s.lr * s.lr_floor)
    if s.lr_scheduler == "step":
        try:
            epochs = [int(e) for e in (s.lr_step_epochs or "").split(",") if e.strip()]
        except ValueError:
            epochs = None
        if not epochs:
            raise FBNetError("--lr-scheduler step needs --lr-step-epochs like 30,60")
        return StepScheduler([e * batches_per_epoch for e in epochs], 0.1, s.lr)
    raise FBNetError("unknown --lr-scheduler %r; choose cosine_grad, cosine or step"
                     % s.lr_scheduler)


def gumbel_noise(rng, shape, eps=1e-10):
    """Standard Gumbel samples ``-log(-log(u))``, ``u ~ U(eps, 1 - eps)``."""
    u = rng.uniform(eps, 1.0 - eps, size=shape)
    return -np.log(-np.log(u))


def step_rng(seed, step, stream=0):
    """A NumPy generator that is a pure function of (run seed, global step, stream).

    Noise drawn from it is the same in an uninterrupted and a resumed run.
    """
    return np.random.RandomState(np.random.SeedSequence([seed, step, stream]).generate_state(1)[0])


def setup_logging(log_file=None, level=logging.INFO):
    """Console (and optional file) logging for entry scripts; the library only uses loggers.
    The file is only created when a run starts training (:func:`open_log_files`, called by
    the trainer): a run refused at its checks leaves nothing on disk; the records logged
    until then are kept and written first."""
    root = logging.getLogger()
    root.setLevel(level)
    for h in list(root.handlers):
        root.removeHandler(h)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(fmt)
    root.addHandler(console)
    if log_file:
        add_log_file(log_file)


class _PendingFileHandler(logging.Handler):
    """Keeps records in memory until :meth:`open`, then appends them and every later one
    to ``path`` (its folder created then)."""

    def __init__(self, path):
        super().__init__()
        self.path, self.pending, self.file = path, [], None
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))

    def open(self):
        if self.file is None:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            self.file = logging.FileHandler(self.path, mode="a", encoding="utf-8")
            self.file.setFormatter(self.formatter)
            for record in self.pending:
                self.file.emit(record)
            self.pending = []

    def emit(self, record):
        if self.file is None:
            self.pending.append(record)
        else:
            self.file.emit(record)

    def close(self):
        if self.file is not None:
            self.file.close()
        super().close()


def add_log_file(log_file):
    """Also log every record to ``log_file``, from when :func:`open_log_files` is called."""
    logging.getLogger().addHandler(_PendingFileHandler(log_file))


def open_log_files():
    """The run passed its checks: create the log files and write what was logged so far."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, _PendingFileHandler):
            handler.open()
