"""The one search loop, for both spaces (paper, section 3.3; DESIGN.md section 2).

Only this module knows about warm-up, alternation, temperature, checkpoints and resume.
Per epoch: ``--warmup-epochs`` of weight training only, then one pass of weight training
on the weight split followed by one pass of theta training on the theta split; the
Gumbel temperature is ``T0 * decay**epoch``.

Two optimizers over one graph (MXNET_NOTES.md): a *master* Module owns the parameters;
a weight Module (theta fixed, SGD) and a theta Module (weights fixed, Adam) are bound
with ``shared_module=master`` so all three see the same parameter memory. Gradients from
several devices are summed by the kvstore and each Module updates locally
(``MXNET_UPDATE_ON_KVSTORE=0``), which keeps every optimizer's state — Adam's step
counts, the learning-rate schedule — in an updater that is saved whole.

Everything random is a pure function of (seed, epoch, step): the data order of an epoch
(the iterator is created with a seed derived from both) and the Gumbel noise of a step
(:func:`~fbnet_symbol.util.step_rng`). So a run killed at any moment and resumed from
its last checkpoint retraces the uninterrupted run.
"""
import hashlib
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Optional

os.environ.setdefault("MXNET_UPDATE_ON_KVSTORE", "0")

import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402

from .architecture import Architecture, load_architecture  # noqa: E402
from .child import ChildNet  # noqa: E402
from .checkpoint import CheckpointFolder, find_checkpoint, save_params  # noqa: E402
from .data import check_recordio, embedded_digits, record_iter  # noqa: E402
from .devices import parse_devices  # noqa: E402
from .distributed import (Collective, HandReducedModule, check_kvstore_type,  # noqa: E402
                          create_kvstore, rank_and_size)
from .errors import FBNetError  # noqa: E402
from .fileio import atomic_write, atomic_write_json  # noqa: E402
from .heads import HeadConfig  # noqa: E402
from .latency import LatencyTable, cached_table, load_table  # noqa: E402
from .network import LABEL_NAME  # noqa: E402
from .search_space import decode_space, parse_image_shape  # noqa: E402
from .supernet import THETA_PREFIX, supernet_class  # noqa: E402
from .util import (CosineDecayScheduler_Grad, CosineScheduler, StepScheduler,  # noqa: E402
                   add_log_file, gumbel_noise, step_rng)

logger = logging.getLogger(__name__)

EMBEDDED_IMAGE_SHAPE = (3, 16, 16)
STAGES = ("weight", "theta")
# settings a resumed run must share with the run that wrote the checkpoint
RESUME_KEYS = ("space", "preset", "image_shape", "width_mult", "model_type", "feature_dim",
               "noise", "loss_form", "alpha", "beta", "batch_size", "seed", "warmup_epochs",
               "lr", "lr_scheduler", "temperature", "temperature_decay")


@dataclass
class SearchConfig:
    """Every setting of a search; the command line of ``test.py`` maps onto it 1:1."""

    space: str = "fbnet"
    preset: str = "seed"
    image_shape: Optional[tuple] = None
    width_mult: float = 1.0
    model_type: str = "softmax"
    feature_dim: Optional[int] = None
    margin_s: Optional[float] = None
    margin_m: Optional[float] = None
    gpu: Optional[str] = None
    batch_size: int = 32
    epochs: int = 90
    warmup_epochs: int = 10
    train_rec: Optional[str] = None
    theta_rec: Optional[str] = None
    val_rec: Optional[str] = None
    lut: Optional[str] = None
    lut_batch_size: int = 1
    alpha: float = 0.2
    beta: float = 0.6
    loss_form: str = "add"
    noise: str = "batch"
    theta_init: float = 1.0
    lr: float = 0.05
    wd: float = 1e-4
    momentum: float = 0.9
    lr_scheduler: str = "cosine_grad"
    cosine_decay_step: Optional[int] = None
    t_mul: float = 2.0
    m_mul: float = 0.9
    lr_floor: float = 0.001
    rise_region: int = 100
    lr_step_epochs: str = ""
    theta_lr: float = 0.01
    theta_wd: float = 5e-4
    temperature: float = 5.0
    temperature_decay: float = 0.956
    save_model_path: str = "./model"
    save_frequence: int = 2000
    load_model_path: Optional[str] = None
    kv_store: str = "local"
    seed: int = 0
    log_frequence: int = 50
    rand_mirror: bool = False
    keep_checkpoints: int = 3
    progress: bool = True
    freeze_bn: bool = False  # BN uses moving statistics (device-equivalence tests)
    arch: Optional[object] = None  # train this fixed architecture from scratch instead
    extra: dict = field(default_factory=dict)

    def to_dict(self):
        d = asdict(self)
        d["image_shape"] = list(self.image_shape) if self.image_shape else None
        if self.arch is not None and not isinstance(self.arch, (str, dict)):
            d["arch"] = self.arch.to_dict()
        return d


class StopRequested(Exception):
    """Raised by the test hook ``stop_after_steps`` to simulate a killed run."""


def _exactly(batches, count):
    """``(batch, valid rows)`` exactly ``count`` times: every worker must take part in every
    step of a dist_sync run although the shards MXNet cuts from the index differ by one image.
    A shard that ends early adds steps with no valid row (zero gradient); one that is
    longer loses its last images this epoch (the shuffle differs each epoch)."""
    last = None
    for batch in batches:
        if count == 0:
            return
        yield batch, batch.data[0].shape[0] - batch.pad
        last, count = batch, count - 1
    for _ in range(count):
        yield last, 0


def _derived_seed(*parts):
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0] % (2 ** 31))


class SearchRun:
    """One search: data, table, supernet, the three Modules, the loop and its files."""

    def __init__(self, cfg: SearchConfig):
        self.cfg = cfg
        self.out = os.path.abspath(cfg.save_model_path)
        self.contexts = parse_devices(cfg.gpu)
        self._check_settings()
        # one kvstore per process, created before anything that must agree across workers
        self.kv = create_kvstore(cfg.kv_store, len(self.contexts))
        self.cluster = Collective(self.kv)
        self.rank, self.num_workers = self.cluster.rank, self.cluster.size
        self.writer = self.rank == 0  # only rank 0 writes files of record
        if self.cluster.distributed:
            if self.writer:  # the other workers log to their console only
                add_log_file(os.path.join(self.out, "search.log"))
            else:
                cfg.progress = False
            logger.info("worker %d of %d (kvstore %s)", self.rank, self.num_workers,
                        cfg.kv_store)
        self.fixed = cfg.arch is not None
        if self.fixed:  # the architecture decides space, preset, width and head
            self.arch = load_architecture(cfg.arch)
            cfg.space, cfg.preset, cfg.width_mult = (self.arch.space, self.arch.preset,
                                                     self.arch.width_mult)
            cfg.model_type = self.arch.head.type
        self._resolve_data()
        if self.fixed:
            self.net = ChildNet(self.arch, self.num_classes, self.image_shape)
            self.layout, self.table, self.table_path = self.net.layout, None, None
        else:
            self.layout = decode_space(cfg.space, cfg.preset, self.image_shape, cfg.width_mult)
            self.table, self.table_path = self._latency_table()
            head = HeadConfig(type=cfg.model_type, s=cfg.margin_s, m=cfg.margin_m)
            self.net = supernet_class(cfg.space)(
                self.num_classes, self.table, cfg.preset, self.image_shape, cfg.width_mult,
                head, cfg.feature_dim, cfg.alpha, cfg.beta, cfg.loss_form, cfg.noise,
                cfg.theta_init)
        self.prefix = "model" if self.fixed else "supernet"
        self.checkpoints = CheckpointFolder(os.path.join(self.out, "checkpoints"), self.prefix,
                                            keep=cfg.keep_checkpoints)
        self.history = []
        self.global_step = 0
        self.position = (0, "weight", 0)  # (epoch, stage, batches done in that stage)
        self.last_checkpoint = None

    # ------------------------------------------------------------ set-up
    def _check_settings(self):
        cfg = self.cfg
        n = len(self.contexts)
        if cfg.batch_size < 1 or cfg.batch_size % n:
            raise FBNetError("--batch-size %d is not divisible by the %d devices of --gpu %s; "
                             "use a multiple of %d" % (cfg.batch_size, n, cfg.gpu, n))
        check_kvstore_type(cfg.kv_store)
        if cfg.epochs < 1 or cfg.warmup_epochs < 0:
            raise FBNetError("--epochs must be >= 1 and --warmup-epochs >= 0")
        if cfg.arch is None and cfg.warmup_epochs >= cfg.epochs:
            logger.warning("--warmup-epochs %d >= --epochs %d: theta will never be trained",
                           cfg.warmup_epochs, cfg.epochs)

    def _resolve_data(self):
        cfg = self.cfg
        if not cfg.train_rec and not cfg.theta_rec:
            paths = embedded_digits()
            self.train_rec, self.theta_rec = paths["train"], paths["theta"]
            self.val_rec = cfg.val_rec or paths["val"]
            self.embedded = True
            shape = cfg.image_shape or EMBEDDED_IMAGE_SHAPE
            logger.info("no --train-rec given: using the embedded digits data set "
                        "(%s)", os.path.dirname(self.train_rec))
        elif cfg.train_rec and cfg.theta_rec:
            self.train_rec, self.theta_rec, self.val_rec = cfg.train_rec, cfg.theta_rec, cfg.val_rec
            self.embedded = False
            shape = cfg.image_shape
        else:
            raise FBNetError("give both --train-rec (weight split) and --theta-rec (theta "
                             "split); to split one file 80/20 run: python -m fbnet_symbol.data "
                             "split FILE.rec --out-a train --out-b theta")
        self.image_shape = tuple(parse_image_shape(shape)) if shape else None
        if self.image_shape is None:
            from .search_space import get_preset
            self.image_shape = get_preset(cfg.preset).image_shape
        self.train_info = check_recordio(self.train_rec, what="--train-rec")
        self.theta_info = check_recordio(self.theta_rec, what="--theta-rec")
        # validation runs on rank 0 only: the other workers need no copy of --val-rec
        self.val_info = check_recordio(self.val_rec, what="--val-rec") \
            if self.val_rec and self.writer else None
        self.num_classes = max(self.train_info.num_classes, self.theta_info.num_classes)
        if self.num_classes < 2:
            raise FBNetError("%s has a single class; a classifier needs at least two"
                             % self.train_rec)
        step = self.num_workers * cfg.batch_size
        for flag, info in (("--train-rec", self.train_info), ("--theta-rec", self.theta_info)):
            if self.num_workers > 1 and info.num_records < step:
                raise FBNetError("%s %s has %d images, fewer than one step of %d workers x "
                                 "--batch-size %d; use a smaller --batch-size"
                                 % (flag, info.rec, info.num_records, self.num_workers,
                                    cfg.batch_size))

    def _latency_table(self):
        """The table of rank 0 (read, cached or measured there), on every worker."""
        cfg = self.cfg
        if self.writer:
            if cfg.lut:
                table, path = load_table(cfg.lut).check(self.layout, cfg.lut_batch_size), cfg.lut
            else:
                table, path = cached_table(self.layout, self.contexts[0], cfg.lut_batch_size,
                                           progress=cfg.progress)
        if not self.cluster.distributed:
            return table, path
        shape = [len(l.candidates) for l in self.layout.layers]
        flat = np.concatenate([np.asarray(r, dtype=np.float32) for r in table.values]) \
            if self.writer else np.zeros(sum(shape), np.float32)
        flat = self.cluster.broadcast(flat, "lut")
        if self.writer:
            return table, path
        rows = np.split(flat, np.cumsum(shape)[:-1])
        logger.info("using the latency table of worker 0")
        return LatencyTable(rows, [l.candidates for l in self.layout.layers],
                            source="worker 0's table"), "worker 0's table"

    def _scheduler(self, batches_per_epoch):
        cfg = self.cfg
        total = batches_per_epoch * cfg.epochs
        if cfg.lr_scheduler == "cosine_grad":
            first = cfg.cosine_decay_step or batches_per_epoch
            return CosineDecayScheduler_Grad(first, cfg.t_mul, cfg.m_mul, cfg.lr_floor, cfg.lr,
                                             cfg.rise_region)
        if cfg.lr_scheduler == "cosine":
            return CosineScheduler(total, cfg.lr, cfg.lr * cfg.lr_floor)
        if cfg.lr_scheduler == "step":
            try:
                epochs = [int(e) for e in cfg.lr_step_epochs.split(",") if e.strip()]
            except ValueError:
                epochs = None
            if not epochs:
                raise FBNetError("--lr-scheduler step needs --lr-step-epochs like 30,60")
            return StepScheduler([e * batches_per_epoch for e in epochs], 0.1, cfg.lr)
        raise FBNetError("unknown --lr-scheduler %r; choose cosine_grad, cosine or step"
                         % cfg.lr_scheduler)

    def _bind(self):
        cfg = self.cfg
        batches = self.steps_per_stage(self.train_info)
        self.master, self.weight_mod, self.theta_mod = bind_search_modules(
            self.net, self.contexts, cfg.batch_size, self.kv, cfg.seed,
            weight_optimizer={"learning_rate": cfg.lr, "momentum": cfg.momentum, "wd": cfg.wd,
                              "lr_scheduler": self._scheduler(batches)},
            theta_optimizer={"learning_rate": cfg.theta_lr, "wd": cfg.theta_wd},
            freeze_bn=cfg.freeze_bn)

    def steps_per_stage(self, info):
        """Steps of one pass over a split: the same on every worker (a dist_sync step
        needs all of them), each worker taking ``--batch-size`` images of its shard."""
        return math.ceil(info.num_records / (self.cfg.batch_size * self.num_workers))

    # ------------------------------------------------------------ parameters
    def params(self):
        """Fresh (arg, aux) parameter dicts; safe after either Module updated."""
        mx.nd.waitall()
        self.master._exec_group.get_params(self.master._arg_params, self.master._aux_params)
        return self.master._arg_params, self.master._aux_params

    def theta(self):
        return self.net.split_theta(self.params()[0])

    def temperature(self, epoch):
        return self.cfg.temperature * self.cfg.temperature_decay ** epoch

    # ------------------------------------------------------------ checkpoints
    def _save(self, average=True):
        """A checkpoint of the current position (rank 0 writes; every worker calls it, as
        BN statistics are first averaged over workers unless ``average`` is False)."""
        if self.cluster.distributed:
            if average:
                self._average_batchnorm_statistics()
            if not self.writer:
                return
        arg, aux = self.params()
        epoch, stage, batch = self.position
        meta = {"epoch": epoch, "stage": stage, "batch": batch,
                "global_step": self.global_step, "temperature": self.temperature(epoch),
                "num_classes": self.num_classes, "history": self.history,
                "config": self.cfg.to_dict(), "theta_names": self.net.theta_names,
                "num_workers": self.num_workers}
        if self.fixed:
            meta["arch"] = self.arch.to_dict()
        states = {"weight": self.weight_mod._updater.get_states(dump_optimizer=True)}
        if self.theta_mod is not None:
            states["theta"] = self.theta_mod._updater.get_states(dump_optimizer=True)
        self.last_checkpoint = self.checkpoints.save(self.global_step, self.net.symbol, arg,
                                                     aux, states, meta)

    def _resume(self, path):
        try:
            ckpt = find_checkpoint(path, self.prefix)
        except FBNetError as e:
            if not self.cluster.distributed:
                raise
            raise FBNetError("worker %d: %s (every worker reads --load-model-path: put the "
                             "folder on a shared filesystem or copy rank 0's folder to each "
                             "machine)" % (self.rank, e)) from None
        if ckpt.meta:
            self._check_resumable(ckpt)
        arg, aux = ckpt.load_params()
        try:
            self.master.set_params(arg, aux, allow_missing=False, force_init=True,
                                   allow_extra=True)
        except (RuntimeError, mx.base.MXNetError, AssertionError, ValueError) as e:
            raise FBNetError("%s does not fit this %s (%s); resume with the settings of the run "
                             "that wrote it" % (ckpt.params_path,
                                                "network" if self.fixed else "supernet",
                                                str(e).splitlines()[0])) from None
        if not ckpt.meta:
            logger.info("loaded parameters from %s; starting at epoch 0", ckpt.params_path)
            return
        for name, mod in (("weight", self.weight_mod), ("theta", self.theta_mod)):
            if mod is None:
                continue
            states = ckpt.read_states(name)
            if states is None:
                raise FBNetError("%s lacks the %s optimizer state; pass the folder to use "
                                 "another checkpoint" % (ckpt.params_path, name))
            mod._updater.set_states(states)
        self.global_step = ckpt.meta["global_step"]
        self.position = (ckpt.meta["epoch"], ckpt.meta["stage"], ckpt.meta["batch"])
        self.history = ckpt.meta.get("history", [])
        self.last_checkpoint = ckpt.params_path
        logger.info("resumed from %s: epoch %d, %s stage, batch %d (step %d)",
                    ckpt.params_path, *self.position, self.global_step)

    def _average_batchnorm_statistics(self):
        """Every worker's BN moving statistics replaced by their mean over workers (the
        dist counterpart of Module averaging them over devices), so rank 0's checkpoint
        speaks for all the data and a resumed run continues from the same numbers."""
        group = self.master._exec_group
        if not group.aux_arrays:
            return
        mine = np.concatenate([sum(a.asnumpy() for a in devs).ravel() / len(devs)
                               for devs in group.aux_arrays])
        mean = self.cluster.allreduce(mine, "batchnorm_statistics") / self.num_workers
        start = 0
        for devs in group.aux_arrays:
            size = devs[0].size
            value = mx.nd.array(mean[start:start + size].reshape(devs[0].shape))
            for a in devs:
                value.copyto(a)
            start += size

    def _check_workers_agree(self, when):
        """Stop every worker unless all hold the same settings, step and parameters."""
        if not self.cluster.distributed:
            return
        config = self.cfg.to_dict()
        settings = json.dumps({k: config[k] for k in RESUME_KEYS + ("epochs",)},
                              sort_keys=True).encode()
        self.cluster.check_agreement(
            np.frombuffer(hashlib.sha256(settings).digest()[:6], np.uint8), "their settings")
        epoch, stage, batch = self.position
        self.cluster.check_agreement(
            [self.train_info.num_records, self.theta_info.num_records, self.num_classes],
            "the size of their data files")
        self.cluster.check_agreement([self.global_step % (1 << 24), epoch,
                                      STAGES.index(stage), batch], "the position in the run")
        arg = self.params()[0]
        self.cluster.check_agreement(
            np.concatenate([arg[n].asnumpy().ravel() for n in sorted(arg)]),
            "theta and weights " + when, key="parameters")

    def _check_resumable(self, ckpt):
        """Refuse a checkpoint written with settings that shape the run differently."""
        old = ckpt.meta.get("config", {})
        new = self.cfg.to_dict()
        if old.get("image_shape") is None:
            old = dict(old, image_shape=list(self.image_shape))
        new["image_shape"] = list(self.image_shape)
        if self.fixed and tuple(ckpt.meta.get("arch", {}).get("blocks", ())) != \
                tuple(self.arch.blocks):
            raise FBNetError("checkpoint %s trained another architecture; resume with the same "
                             "--arch or use another --save-model-path" % ckpt.params_path)
        workers = ckpt.meta.get("num_workers", 1)
        if workers != self.num_workers:
            raise FBNetError("checkpoint %s was written by a run of %d worker(s), this one has "
                             "%d; resume with the same number of workers (launch.py -n %d)"
                             % (ckpt.params_path, workers, self.num_workers, workers))
        for key in RESUME_KEYS:
            if key in old and old[key] != new[key]:
                raise FBNetError("checkpoint %s was written with %s=%s but this run has %s=%s; "
                                 "resume with the same settings, or use another "
                                 "--save-model-path for a new search"
                                 % (ckpt.params_path, key, old[key], key, new[key]))

    # ------------------------------------------------------------ the loop
    def run(self, stop_after_steps=None):
        """Search; returns a summary dict. ``stop_after_steps`` simulates a kill (tests)."""
        cfg = self.cfg
        if self.writer:
            os.makedirs(self.out, exist_ok=True)
            settings = self.cfg.to_dict()
            settings.update(image_shape=list(self.image_shape), num_classes=self.num_classes,
                            train_rec=self.train_rec, theta_rec=self.theta_rec,
                            val_rec=self.val_rec, num_workers=self.num_workers)
            atomic_write_json(os.path.join(self.out, "args.json"), settings)
            if self.table is not None:
                self.table.save(os.path.join(self.out, "lut.txt"))
            else:
                atomic_write(os.path.join(self.out, "arch.json"), self.arch.to_json())
        self._bind()
        if cfg.load_model_path:
            self._resume(cfg.load_model_path)
        self._check_workers_agree("at the start")
        self._stop_at = None if stop_after_steps is None else self.global_step + stop_after_steps
        logger.info("%s %s/%s at %s on %s: %d classes, batch %d, %d epochs (%d warm-up), "
                    "%d weight / %d theta images",
                    "training %s from scratch:" % (self.arch.name or "the architecture")
                    if self.fixed else "searching", cfg.space, cfg.preset,
                    "x".join(map(str, self.image_shape)),
                    ",".join(str(c) for c in self.contexts), self.num_classes, cfg.batch_size,
                    cfg.epochs, cfg.warmup_epochs, self.train_info.num_records,
                    self.theta_info.num_records)
        start_epoch, start_stage, start_batch = self.position
        for epoch in range(start_epoch, cfg.epochs):
            stages = ["weight"] if self.fixed or epoch < cfg.warmup_epochs else list(STAGES)
            record = {"epoch": epoch, "temperature": self.temperature(epoch)}
            for stage in stages:
                if epoch == start_epoch and STAGES.index(stage) < STAGES.index(start_stage):
                    continue  # finished before the checkpoint we resumed from
                first = start_batch if (epoch == start_epoch and stage == start_stage) else 0
                record.update(self._run_stage(epoch, stage, first))
            self._end_epoch(epoch, record)
        return self._finish()

    def _run_stage(self, epoch, stage, start_batch):
        from tqdm import tqdm

        cfg = self.cfg
        info = self.train_info if stage == "weight" else self.theta_info
        mod = self.weight_mod if stage == "weight" else self.theta_mod
        it = record_iter(info.rec, self.image_shape, cfg.batch_size, shuffle=True,
                         seed=_derived_seed(cfg.seed, epoch, 0 if stage == "weight" else 1),
                         rand_mirror=cfg.rand_mirror and stage == "weight",
                         num_parts=self.num_workers, part_index=self.rank)
        total = self.steps_per_stage(info)
        temperature = self.temperature(epoch)
        sums = {"ce": 0.0, "correct": 0, "latency": 0.0, "n": 0}
        bar = tqdm(total=total, initial=start_batch, disable=not cfg.progress, leave=False,
                   desc="epoch %d/%d %s" % (epoch + 1, cfg.epochs, stage), unit="batch")
        tick, tick_samples = time.time(), 0
        for b, (batch, valid) in enumerate(_exactly(it, total)):
            if b < start_batch:
                continue  # already trained before the checkpoint we resumed from
            noise = self._noise()
            mod.forward_backward(self.net.batch(batch.data[0], batch.label[0], noise,
                                                temperature, valid))
            logits, ce, lat = [o.asnumpy()[:valid] for o in mod.get_outputs()[1:4]]
            if not (np.isfinite(ce).all() and np.isfinite(lat).all()):
                raise FBNetError(
                    "the loss became %s at epoch %d, %s stage, batch %d (step %d); stopped "
                    "before applying it. Last good checkpoint: %s. Lower --lr (or --theta-lr) "
                    "and resume with --load-model-path %s"
                    % ("NaN" if np.isnan(ce).any() or np.isnan(lat).any() else "infinite",
                       epoch, stage, b, self.global_step, self.last_checkpoint or "none yet",
                       self.out))
            mod.update()
            self.global_step += 1
            self.position = (epoch, stage, b + 1)
            label = batch.label[0].asnumpy()[:valid]
            sums["ce"] += float(ce.sum())
            sums["correct"] += int((logits.argmax(axis=1) == label).sum())
            sums["latency"] += float(lat.sum())
            sums["n"] += valid
            tick_samples += valid
            lr = mod._updater.optimizer._get_lr(0) if stage == "weight" else cfg.theta_lr
            bar.set_postfix(loss="%.3f" % (sums["ce"] / sums["n"]),
                            acc="%.3f" % (sums["correct"] / sums["n"]),
                            lat="%.2fms" % (sums["latency"] / sums["n"]), lr="%.2g" % lr,
                            T="%.2f" % temperature, refresh=False)
            bar.update()
            if cfg.log_frequence and (b + 1) % cfg.log_frequence == 0:
                now = time.time()
                logger.info("epoch %d %s batch %d/%d: CE %.4f acc %.4f latency %.3f ms lr %.3g "
                            "T %.3f, %.1f samples/s", epoch, stage, b + 1, total,
                            sums["ce"] / sums["n"], sums["correct"] / sums["n"],
                            sums["latency"] / sums["n"], lr, temperature,
                            tick_samples / max(now - tick, 1e-9))
                tick, tick_samples = now, 0
            if cfg.save_frequence and self.global_step % cfg.save_frequence == 0:
                self._save()
            if self._stop_at is not None and self.global_step >= self._stop_at:
                bar.close()
                raise StopRequested(self.global_step)
        bar.close()
        if self.cluster.distributed:  # the logs of record speak for every worker's images
            keys = sorted(sums)
            sums = dict(zip(keys, self.cluster.allreduce([sums[k] for k in keys],
                                                         "stage_sums").tolist()))
        n = max(sums["n"], 1)
        return {"%s_ce" % stage: sums["ce"] / n, "%s_acc" % stage: sums["correct"] / n,
                "%s_latency_ms" % stage: sums["latency"] / n}

    def _noise(self):
        """This step's Gumbel noise: drawn for the whole step of all workers (the same on
        each), this worker keeping its own rows when there is one draw per sample."""
        batch = self.cfg.batch_size
        noise = gumbel_noise(step_rng(self.cfg.seed, self.global_step),
                             self.net.noise_shape(batch * self.num_workers))
        if noise.shape[0] == 1:
            return noise
        return noise[self.rank * batch:(self.rank + 1) * batch]

    def _end_epoch(self, epoch, record):
        self.position = (epoch + 1, "weight", 0)
        if self.cluster.distributed:
            self._average_batchnorm_statistics()
            self._check_workers_agree("after epoch %d" % epoch)
        if self.fixed:
            return self._end_fixed_epoch(epoch, record)
        theta = self.theta()
        probs = self.net.probabilities(theta)
        blocks = self.net.argmax_blocks(theta)
        record.update({"expected_latency_ms": self.net.expected_latency(theta),
                       "argmax_latency_ms": sum(self.table.cost(self.layout, i, b)
                                                for i, b in enumerate(blocks)),
                       "lr": float(self.weight_mod._updater.optimizer._get_lr(0)),
                       "blocks": blocks, "global_step": self.global_step})
        if self.val_info is not None and self.writer:
            record["val_acc"] = self.evaluate(self.val_info.rec, self.temperature(epoch))
        self.history = [h for h in self.history if h["epoch"] != epoch] + [record]
        if not self.writer:
            return self._save(average=False)
        write_theta(os.path.join(self.out, "theta-result", "epoch_%d_theta.txt" % epoch),
                    self.net, theta)
        arch = self.architecture(blocks)
        atomic_write(os.path.join(self.out, "arch.json"), arch.to_json())
        atomic_write(os.path.join(self.out, "theta-result", "epoch_%d_arch.json" % epoch),
                     arch.to_json())
        atomic_write_json(os.path.join(self.out, "history.json"), self.history)
        self._plots(probs, blocks)
        logger.info("epoch %d done: T %.3f, expected latency %.3f ms (argmax %.3f ms)%s%s",
                    epoch, record["temperature"], record["expected_latency_ms"],
                    record["argmax_latency_ms"],
                    ", theta CE %.4f" % record["theta_ce"] if "theta_ce" in record else "",
                    ", val acc %.4f" % record["val_acc"] if "val_acc" in record else "")
        self._save(average=False)

    def _end_fixed_epoch(self, epoch, record):
        record.update({"lr": float(self.weight_mod._updater.optimizer._get_lr(0)),
                       "global_step": self.global_step})
        if self.val_info is not None and self.writer:
            record["val_acc"] = self.evaluate(self.val_info.rec, 1.0)
        self.history = [h for h in self.history if h["epoch"] != epoch] + [record]
        if not self.writer:
            return self._save(average=False)
        atomic_write_json(os.path.join(self.out, "history.json"), self.history)
        self.deploy_prefix = export_deploy(self.net, *self.params(),
                                           os.path.join(self.out, "model"), epoch + 1)
        logger.info("epoch %d done: train CE %.4f acc %.4f%s; saved %s-%04d.params", epoch,
                    record.get("weight_ce", float("nan")), record.get("weight_acc", float("nan")),
                    ", val top-1 %.4f" % record["val_acc"] if "val_acc" in record else "",
                    self.deploy_prefix, epoch + 1)
        self._save(average=False)

    def architecture(self, blocks):
        cfg = self.cfg
        head = {"type": cfg.model_type}
        if cfg.feature_dim is not None:
            head["feature_dim"] = cfg.feature_dim
        if cfg.margin_s is not None:
            head["s"] = cfg.margin_s
        if cfg.margin_m is not None:
            head["m"] = cfg.margin_m
        return Architecture(space=cfg.space, preset=cfg.preset, blocks=tuple(blocks),
                            head=HeadConfig(**head), width_mult=cfg.width_mult,
                            name="searched")

    def evaluate(self, rec, temperature):
        """Top-1 of the supernet (no noise) on ``rec``: plain logits, padding dropped."""
        correct = n = 0
        it = record_iter(rec, self.image_shape, self.cfg.batch_size, shuffle=False)
        zeros = np.zeros(self.net.noise_shape(self.cfg.batch_size))
        for batch in it:
            valid = self.cfg.batch_size - batch.pad
            self.weight_mod.forward(self.net.batch(batch.data[0], batch.label[0], zeros,
                                                   temperature, valid), is_train=False)
            logits = self.weight_mod.get_outputs()[1].asnumpy()[:valid]
            correct += int((logits.argmax(1) == batch.label[0].asnumpy()[:valid]).sum())
            n += valid
        return correct / max(n, 1)

    def _plots(self, probs, blocks):
        from .plots import plot_distribution, plot_latency
        cfg = self.cfg
        chosen = {l.name: b for l, b in zip(self.layout.layers, blocks)}
        plot_distribution(self.layout, probs, os.path.join(self.out, "distribution.png"),
                          "P_theta after epoch %d (%s/%s); boxes: argmax"
                          % (self.history[-1]["epoch"], cfg.space, cfg.preset), chosen)
        plot_latency(self.history, os.path.join(self.out, "latency.png"),
                     "expected latency of P_theta (table: %s)" % os.path.basename(self.table_path))

    def _finish(self):
        last = self.history[-1] if self.history else {}
        common = {"save_model_path": self.out, "checkpoint": self.last_checkpoint,
                  "arch": os.path.join(self.out, "arch.json"), "val_acc": last.get("val_acc"),
                  "rank": self.rank, "num_workers": self.num_workers}
        if self.fixed:
            return dict(common, deploy_prefix=getattr(self, "deploy_prefix", None),
                        epoch=len(self.history), train_acc=last.get("weight_acc"))
        return dict(common, theta=os.path.join(self.out, "theta-result"),
                    epochs=len(self.history), blocks=last.get("blocks"),
                    expected_latency_ms=last.get("expected_latency_ms"))


def bind_search_modules(net, contexts, batch_size, kv=None, seed=0,
                        weight_optimizer=None, theta_optimizer=None, freeze_bn=False):
    """The master Module and the weight (SGD) and theta (Adam) Modules sharing its memory.

    Returns ``(master, weight_mod, theta_mod)`` with parameters initialised (Xavier for
    weights, the variables' own initialisers for theta and offsets) and both optimizers
    created — before any step, since a late ``init_optimizer`` can push stale parameters.
    ``kv`` (see :func:`~fbnet_symbol.distributed.create_kvstore`) is owned by the weight
    Module; theta gradients are summed through it by hand. ``batch_size`` is per worker;
    gradients are averaged over all workers' samples.
    """
    total_batch = batch_size * rank_and_size(kv)[1]
    sym = freeze_batchnorm(net.symbol) if freeze_bn else net.symbol
    names = dict(data_names=net.input_names, label_names=[LABEL_NAME], context=contexts)
    descs = (net.input_descs(batch_size), net.label_descs(batch_size))
    master = mx.mod.Module(sym, **names)
    master.bind(*descs)
    mx.random.seed(seed)
    np.random.seed(seed)
    master.init_params(mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2))
    theta = set(net.theta_names)
    weights = [n for n in master._param_names if n not in theta]
    weight_mod = mx.mod.Module(sym, fixed_param_names=sorted(theta), **names)
    weight_mod.bind(*descs, shared_module=master)
    weight_mod.init_optimizer(kvstore=kv, optimizer="sgd", optimizer_params=dict(
        {"learning_rate": 0.05, "momentum": 0.9, "wd": 1e-4}, **(weight_optimizer or {}),
        rescale_grad=1.0 / total_batch))
    theta_mod = None
    if theta:  # a fixed architecture has none
        theta_mod = HandReducedModule(sym, fixed_param_names=weights, reducer=kv, **names)
        theta_mod.bind(*descs, shared_module=master)
        theta_mod.init_optimizer(kvstore=None, optimizer="adam", optimizer_params=dict(
            {"learning_rate": 0.01, "wd": 5e-4}, **(theta_optimizer or {}),
            rescale_grad=1.0 / total_batch))
    return master, weight_mod, theta_mod


def export_deploy(net, arg_params, aux_params, prefix, epoch):
    """Write the inference graph as an MXNet checkpoint ``prefix-symbol.json`` /
    ``prefix-%04d.params`` (``mx.model.load_checkpoint(prefix, epoch)``), atomically."""
    sym = net.deploy_symbol()
    arg, aux = net.deploy_params(arg_params, aux_params)
    atomic_write(prefix + "-symbol.json", sym.tojson())
    save_params("%s-%04d.params" % (prefix, epoch), arg, aux)
    return prefix


def write_theta(path, net, theta):
    """The seed's text format: one line per layer, ``name: v1 v2 ...``."""
    lines = ["%s%s: %s\n" % (THETA_PREFIX, l.name, " ".join("%.8g" % v for v in theta[l.name]))
             for l in net.layout.layers]
    atomic_write(path, "".join(lines))


def freeze_batchnorm(sym):
    """The same graph with every BatchNorm using its moving statistics."""
    graph = json.loads(sym.tojson())
    for node in graph["nodes"]:
        if node["op"] == "BatchNorm":
            node.setdefault("attrs", {})["use_global_stats"] = "True"
    return mx.sym.load_json(json.dumps(graph))
