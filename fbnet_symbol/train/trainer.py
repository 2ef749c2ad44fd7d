"""The training loop shared by the search and fixed-architecture training; a task says what is trained.

Per epoch the trainer runs the task's phases (:meth:`Task.phases`: the search runs
``weight`` then ``theta``; a fixed network only ``weight``), one pass over each phase's
split, then averages BN statistics over workers, checks that they agree, asks the
callbacks for the epoch's figures, runs the evaluations, hands the record to the callbacks
and checkpoints. Only the trainer knows about alternation, checkpoints and resume; only
the task knows what is trained; only the callbacks write reports (:class:`Callback`).
Graph outputs are read by name (``logits``, ``ce``, ...), looked up once at bind time.

Several optimizers over one graph (docs/mxnet-notes.md): a *master* Module owns the
parameters; one Module per phase is bound with ``shared_module=master`` and trains its
parameter group with the others fixed. The ``weight`` Module owns the kvstore; the other
groups' gradients are summed through it by hand. Every Module updates locally
(``MXNET_UPDATE_ON_KVSTORE=0``, set by the package), so every optimizer's state lives in
an updater that a checkpoint saves whole.
"""
import abc
import logging
import os
from dataclasses import dataclass, field

import mxnet as mx
import numpy as np

from ..cli import open_log_files
from ..dist.cluster import (HandReducedModule, average_batchnorm_statistics, check_workers_agree,
                            exactly, rank_and_size)
from ..errors import FBNetError, WriteFailed
from ..fileio import atomic_write_json
from ..space.cpu_graph import native_batchnorm, on_cpus
from ..space.network import LABEL_NAME, freeze_batchnorm, output_names
from ..threads import omp_threads
from .interrupt import StopSignals
from .meter import PhaseMeter
from .run_state import RunState
from .schedules import ScheduleConfig, make_scheduler

logger = logging.getLogger(__name__)

WEIGHT = "weight"


class StopRequested(Exception):
    """Raised after ``run(stop_after_steps=N)`` steps, to simulate a killed run."""


@dataclass
class ParamGroup:
    """Parameters trained in their own phase with their own optimizer (e.g. theta by Adam)."""
    name: str
    names: list
    optimizer: str
    params: dict


@dataclass(frozen=True)
class LoopConfig:
    """What the loop needs of a run, given explicitly (the run layer builds it from the
    settings: :func:`fbnet_symbol.search.parts.loop_config`)."""
    epochs: int
    batch_size: int             # per worker
    seed: int
    schedule: ScheduleConfig    # the weights' SGD rate
    momentum: float = 0.9
    wd: float = 1e-4
    freeze_bn: bool = False     # BN on moving statistics
    rand_mirror: bool = False   # random flips in the weight phase
    log_frequence: int = 0      # a log line every N batches (0: none)
    save_frequence: int = 0     # a checkpoint every N steps too (0: epoch ends only)
    keep_checkpoints: int = 3
    load_model_path: str = None  # resume from this folder or .params
    record: dict = field(default_factory=dict)       # args.json's and checkpoints' settings
    resume_view: dict = field(default_factory=dict)  # what a resumed run must share


def weight_optimizer_params(config, batches_per_epoch):
    """SGD for the network weights, with the config's schedule."""
    return {"learning_rate": config.schedule.lr, "momentum": config.momentum, "wd": config.wd,
            "lr_scheduler": make_scheduler(config.schedule, batches_per_epoch)}


def bind_modules(net, contexts, batch_size, kv, seed, weight_params, groups=(),
                 freeze_bn=False, native_bn=None):
    """The master Module and one Module per phase sharing its memory: ``(master, modules)``.

    ``modules[WEIGHT]`` trains every parameter no group claims, by SGD with
    ``weight_params``, and owns ``kv``; each :class:`ParamGroup` gets a Module whose
    gradients are summed through ``kv`` by hand. Parameters are initialised (Xavier; the
    variables' own initialisers for theta and offsets) and every optimizer created before
    any step — a late ``init_optimizer`` can push stale parameters. ``batch_size`` is per
    worker; gradients are averaged over all workers' samples. ``native_bn``: run BatchNorm
    on MXNet's own kernel (:mod:`fbnet_symbol.space.cpu_graph`); default: on CPUs only.
    """
    rescale = 1.0 / (batch_size * rank_and_size(kv)[1])
    sym = freeze_batchnorm(net.symbol) if freeze_bn else net.symbol
    names = dict(data_names=net.input_names, label_names=[LABEL_NAME], context=contexts)
    descs = (net.input_descs(batch_size), net.label_descs(batch_size))
    if native_bn is None:
        native_bn = on_cpus(contexts)
    if native_bn:
        sym, _ = native_batchnorm(sym, {d.name: d.shape for d in descs[0] + descs[1]})
    master = mx.mod.Module(sym, **names)
    master.bind(*descs)
    mx.random.seed(seed)
    np.random.seed(seed)
    master.init_params(mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2))
    claimed = {n for g in groups for n in g.names}
    modules = {WEIGHT: mx.mod.Module(sym, fixed_param_names=sorted(claimed), **names)}
    modules[WEIGHT].bind(*descs, shared_module=master)
    modules[WEIGHT].init_optimizer(kvstore=kv, optimizer="sgd",
                                   optimizer_params=dict(weight_params, rescale_grad=rescale))
    for g in groups:
        others = [n for n in master._param_names if n not in set(g.names)]
        mod = HandReducedModule(sym, fixed_param_names=others, reducer=kv, **names)
        mod.bind(*descs, shared_module=master)
        mod.init_optimizer(kvstore=None, optimizer=g.optimizer,
                           optimizer_params=dict(g.params, rescale_grad=rescale))
        modules[g.name] = mod
    return master, modules


class Task(abc.ABC):
    """What is trained: the graph, its parameter groups, the phases of an epoch and the split
    each reads, the batches. Subclasses: the FBNet search (:mod:`fbnet_symbol.search.task`)
    and fixed-architecture training (:mod:`fbnet_symbol.train.task`); what a run reports or
    writes is a :class:`Callback`'s job."""

    checkpoint_prefix = "model"
    net = None  # symbol, input_names, input_descs(batch), label_descs(batch)
    # graph outputs averaged per phase besides logits and CE: {record key: output name}
    averaged_outputs = {}

    def param_groups(self):
        """Parameter groups trained in phases of their own (the rest: the ``weight`` phase)."""
        return []

    def phases(self, epoch):
        return [WEIGHT]

    def split(self, phase):
        """The data split a phase trains on."""
        return "train"

    @abc.abstractmethod
    def batch(self, data, label, valid, epoch, step):
        """The DataBatch of one training step."""

    def eval_batch(self, data, label, valid, epoch):
        return self.batch(data, label, valid, epoch, 0)

    def epoch_values(self, epoch):
        """Values the epoch trains with, e.g. ``{"temperature": T}``: recorded, and shown
        with every progress line."""
        return {}

    def checkpoint_meta(self, epoch):
        return {}

    def check_resume(self, meta, path):
        """Raise :class:`FBNetError` if a checkpoint belongs to another job."""


class Callback:
    """Reporting around the loop (as MXNet ``fit``'s callbacks): it receives an epoch's
    figures and parameters, never the trainer. Every method is optional."""

    def on_start(self):
        """Rank 0, bound and resumed, before the first step: files that describe the run."""

    def epoch_figures(self, epoch, arg_params):
        """Every worker, each epoch end: figures computed from the parameters, recorded."""
        return {}

    def on_epoch_end(self, epoch, record, history, arg_params, aux_params):
        """Rank 0, each epoch end, after the record is in ``history``: write files, log."""

    def summary(self, history):
        """What the run returns, from the history."""
        return {}


class EpochModel:
    """What an evaluation sees: the network at an epoch end, run forward in inference mode
    on the task's evaluation batches; outputs by name (``logits``, ``embedding``, ...)."""

    def __init__(self, trainer, epoch):
        self._trainer, self.epoch = trainer, epoch
        self.batch_size = trainer.config.batch_size

    def outputs(self, data, label, valid):
        t = self._trainer
        return t.named(t.infer(t.task.eval_batch(data, label, valid, self.epoch)))


class Trainer:
    """Runs a :class:`Task` on a :class:`~fbnet_symbol.train.run_env.RunEnv` as a
    :class:`LoopConfig` says.

    ``evaluations``: callables ``(epoch, EpochModel) -> dict`` run on rank 0 at every epoch
    end; their results go into the epoch's record (``history.json``). ``callbacks``:
    :class:`Callback` objects, called in order.
    """

    def __init__(self, config, env, task, evaluations=(), callbacks=()):
        self.config, self.env, self.task = config, env, task
        self.evaluations, self.callbacks = list(evaluations), list(callbacks)
        self.state = RunState(env.out, task.checkpoint_prefix, config.keep_checkpoints)
        self.master = self.modules = self.output_index = self.data_streams = None
        self._signals = StopSignals(enabled=False)  # SIGINT/SIGTERM seen during run()

    # ------------------------------------------------------------ parameters
    def bind(self):
        s, env = self.config, self.env
        self.master, self.modules = bind_modules(
            self.task.net, env.contexts, s.batch_size, env.kv, s.seed,
            weight_optimizer_params(s, env.steps_per_pass("train")),
            self.task.param_groups(), s.freeze_bn)
        # the graph's outputs by name, looked up once (their order is the graph's business)
        self.output_index = {n: i for i, n in enumerate(output_names(self.task.net.symbol))}
        # each phase's data-order stream (with the seed and the epoch, its batch order): the
        # weight phase 0, the task's parameter groups 1, 2, ... — resumes depend on it
        self.data_streams = {phase: i for i, phase in enumerate(self.modules)}

    def params(self):
        """Fresh (arg, aux) parameter dicts; safe after any Module updated."""
        mx.nd.waitall()
        self.master._exec_group.get_params(self.master._arg_params, self.master._aux_params)
        return self.master._arg_params, self.master._aux_params

    def learning_rate(self, phase=WEIGHT):
        return float(self.modules[phase]._updater.optimizer._get_lr(0))

    def infer(self, batch):
        """Forward a batch in inference mode; returns the graph's outputs."""
        self.modules[WEIGHT].forward(batch, is_train=False)
        return self.modules[WEIGHT].get_outputs()

    def named(self, outputs):
        """``{output name: NDArray}`` of a list of the graph's outputs."""
        return {name: outputs[i] for name, i in self.output_index.items()}

    # ------------------------------------------------------------ checkpoints
    def save(self, average=True):
        """A checkpoint of the current position (rank 0 writes; every worker calls it, as
        BN statistics are first averaged over workers unless ``average`` is False)."""
        env = self.env
        if average:
            average_batchnorm_statistics(env.collective, self.master._exec_group)
        if not env.writer:
            return
        arg, aux = self.params()
        meta = dict(self.task.checkpoint_meta(self.state.position[0]),
                    num_classes=env.num_classes, config=self.config.record,
                    num_workers=env.num_workers)
        self.state.save(self.task.net.symbol, arg, aux, self.modules, meta)

    def _check_workers_agree(self, when):
        epoch, phase, batch = self.state.position
        check_workers_agree(
            self.env.collective, dict(self.config.resume_view, epochs=self.config.epochs),
            self.env.data_sizes(), [self.state.global_step % (1 << 24), epoch,
                                    list(self.modules).index(phase), batch],
            self.params()[0], when)

    # ------------------------------------------------------------ the loop
    def run(self, stop_after_steps=None):
        """Train; returns the task's summary. ``stop_after_steps`` simulates a kill (tests)."""
        s, env, task, state = self.config, self.env, self.task, self.state
        self.bind()
        if s.load_model_path:
            self.state.resume(s.load_model_path, self.master, self.modules,
                              (s.resume_view, env.num_workers, task.check_resume),
                              env.rank if env.collective.distributed else None)
        open_log_files()  # bound and resumed: from here the run writes (a refused start did not)
        if env.writer:
            os.makedirs(env.out, exist_ok=True)
            atomic_write_json(os.path.join(env.out, "args.json"), dict(
                s.record, num_classes=env.num_classes, num_workers=env.num_workers,
                omp_threads=omp_threads()))
            for callback in self.callbacks:
                callback.on_start()
        self._check_workers_agree("at the start")
        self._stop_at = None if stop_after_steps is None else state.global_step + stop_after_steps
        # several workers would stop at different steps: under a cluster a signal ends the
        # process as before (the last periodic checkpoint is kept)
        with StopSignals(enabled=not env.collective.distributed) as self._signals:
            try:
                self._epochs(*state.position)
            except WriteFailed as e:
                raise FBNetError("%s; the last complete checkpoint is %s: resume from it with "
                                 "--load-model-path %s" % (e, state.last_checkpoint or
                                                           "none yet", env.out)) from None
        summary = dict(save_model_path=env.out, checkpoint=state.last_checkpoint,
                       rank=env.rank, num_workers=env.num_workers)
        for callback in self.callbacks:
            summary.update(callback.summary(state.history))
        return summary

    def _epochs(self, start_epoch, start_phase, start_batch):
        task = self.task
        for epoch in range(start_epoch, self.config.epochs):
            record = dict(epoch=epoch, **task.epoch_values(epoch))
            phases = task.phases(epoch)
            for phase in phases:
                if epoch == start_epoch and phases.index(phase) < phases.index(start_phase):
                    continue  # finished before the checkpoint we resumed from
                first = start_batch if (epoch == start_epoch and phase == start_phase) else 0
                record.update(self._run_phase(epoch, phase, first))
            self._end_epoch(epoch, record)

    def _stop_if_asked(self, bar):
        """At a step boundary: after SIGINT/SIGTERM, checkpoint this position and stop."""
        state = self.state
        if self._signals.received is None:
            return
        bar.close()
        if not (state.last_checkpoint or "").endswith("-%04d.params" % state.global_step):
            self.save()
        raise self._signals.stopped(state.position, state.global_step, state.last_checkpoint,
                                    self.env.out)

    def _run_phase(self, epoch, phase, start_batch):
        from tqdm import tqdm

        s, env, task, state = self.config, self.env, self.task, self.state
        split = task.split(phase)
        mod = self.modules[phase]
        it = env.iterator(split, epoch, self.data_streams[phase],
                          mirror=s.rand_mirror and phase == WEIGHT)
        total = env.steps_per_pass(split)
        meter = PhaseMeter(task.averaged_outputs, task.epoch_values(epoch))
        positions = [self.output_index[name] for name in meter.read]
        bar = tqdm(total=total, initial=start_batch, disable=not env.progress, leave=False,
                   desc="epoch %d/%d %s" % (epoch + 1, s.epochs, phase), unit="batch")
        # the batches trained before the checkpoint we resumed from are not even read
        for b, (batch, valid) in enumerate(exactly(it.batches(start_batch), total - start_batch,
                                                   it.empty_batch), start=start_batch):
            mod.forward_backward(task.batch(batch.data[0], batch.label[0], valid, epoch,
                                            state.global_step))
            all_outputs = mod.get_outputs()
            outputs = [all_outputs[i].asnumpy()[:valid] for i in positions]
            self._check_finite(outputs[1:], epoch, phase, b)
            mod.update()
            state.advance(epoch, phase, b + 1)
            meter.add(outputs, batch.label[0].asnumpy()[:valid], valid)
            lr = self.learning_rate(phase)
            bar.set_postfix_str(meter.postfix(lr), refresh=False)
            bar.update()
            if s.log_frequence and (b + 1) % s.log_frequence == 0:
                logger.info("epoch %d %s batch %d/%d: %s", epoch, phase, b + 1, total,
                            meter.log_line(lr))
            self._after_step(bar)
        bar.close()
        return meter.result(phase, env)

    def _check_finite(self, losses, epoch, phase, b):
        """Stop before a non-finite loss is applied, naming the last good checkpoint."""
        if all(np.isfinite(v).all() for v in losses):
            return
        state = self.state
        raise FBNetError(
            "the loss became %s at epoch %d, %s phase, batch %d (step %d); stopped "
            "before applying it. Last good checkpoint: %s. Lower --lr (or --theta-lr) "
            "and resume with --load-model-path %s"
            % ("NaN" if any(np.isnan(v).any() for v in losses) else "infinite",
               epoch, phase, b, state.global_step,
               state.last_checkpoint or "none yet", self.env.out))

    def _after_step(self, bar):
        """A checkpoint every ``--save-frequence`` steps; a stop when a signal or
        ``stop_after_steps`` asks for one."""
        s, state = self.config, self.state
        if s.save_frequence and state.global_step % s.save_frequence == 0:
            self.save()
        self._stop_if_asked(bar)
        if self._stop_at is not None and state.global_step >= self._stop_at:
            bar.close()
            raise StopRequested(state.global_step)

    def _end_epoch(self, epoch, record):
        env, state = self.env, self.state
        state.position = (epoch + 1, WEIGHT, 0)
        if env.collective.distributed:
            average_batchnorm_statistics(env.collective, self.master._exec_group)
            self._check_workers_agree("after epoch %d" % epoch)
        arg, aux = self.params()
        for callback in self.callbacks:
            record.update(callback.epoch_figures(epoch, arg))
        record.update(lr=self.learning_rate(), global_step=state.global_step)
        if env.writer:
            model = EpochModel(self, epoch)
            for evaluate in self.evaluations:
                record.update(evaluate(epoch, model))
        state.record_epoch(record)
        if env.writer:
            atomic_write_json(os.path.join(env.out, "history.json"), state.history)
            for callback in self.callbacks:
                callback.on_epoch_end(epoch, record, state.history, *self.params())
        self.save(average=False)
