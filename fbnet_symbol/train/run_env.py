"""What a run stands on: devices, the kvstore and this worker's rank, and the checked data files.

Set up once from an :class:`EnvConfig` (the run layer builds it from the resolved
settings), before any network is built, and shared by the trainer and its task. Only rank 0 writes files of record
(:attr:`RunEnv.writer`); every worker reads its own shard of each split.
"""
import logging
import math
import os
from dataclasses import dataclass

import numpy as np

from ..cli import RUN_LOG, add_log_file
from ..data.check import check_data, data_iter
from ..dist.cluster import Collective, check_kvstore_type, create_kvstore
from ..dist.devices import parse_devices
from ..errors import FBNetError

logger = logging.getLogger(__name__)


def derived_seed(*parts):
    """A 32-bit seed that is a pure function of ``parts`` (e.g. run seed, epoch, stream):
    the one way the package derives the seed of data order, mirror flags and Gumbel noise,
    so that every worker and a resumed run draw the same."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


@dataclass(frozen=True)
class EnvConfig:
    """What a run stands on, given explicitly."""
    out: str                   # the run's folder (--save-model-path)
    train_rec: str
    image_shape: tuple
    batch_size: int            # per worker
    seed: int
    theta_rec: str = None
    # theta's images taken from train_rec, every 5th image of each identity (InsightFace's
    # folder, or --theta-rec naming the --train-rec file)
    theta_from_train: bool = False
    from_data_dir: bool = False  # train_rec is --data-dir's train.rec
    val_rec: str = None
    gpu: str = None            # --gpu's devices (None: the CPU)
    kv_store: str = "device"
    progress: bool = True
    embedded: bool = False     # the embedded digits (a log line says so)


class RunEnv:
    """Devices, kvstore, rank and data of one run.

    ``splits``: the splits the task trains on (``train``, and for a search ``theta``);
    ``val_rec`` adds ``val`` on rank 0.
    """

    def __init__(self, config, splits=("train", "theta")):
        s = self.config = config
        self.splits = tuple(splits)
        self.out = os.path.abspath(s.out)
        self.contexts = parse_devices(s.gpu)
        n = len(self.contexts)
        if s.batch_size < 1 or s.batch_size % n:
            raise FBNetError("--batch-size %d is not divisible by the %d devices of --gpu %s; "
                             "use a multiple of %d" % (s.batch_size, n, s.gpu, n))
        check_kvstore_type(s.kv_store)
        # one kvstore per process, created before anything that must agree across workers
        self.kv = create_kvstore(s.kv_store, n)
        self.collective = Collective(self.kv)  # sums and checks across workers
        self.rank, self.num_workers = self.collective.rank, self.collective.size
        self.writer = self.rank == 0  # only rank 0 writes files of record
        self.progress = s.progress
        if self.collective.distributed:
            if self.writer:  # the other workers log to their console only
                add_log_file(os.path.join(self.out, RUN_LOG))
            else:
                self.progress = False
            logger.info("worker %d of %d (kvstore %s)", self.rank, self.num_workers, s.kv_store)
        if s.embedded:
            logger.info("no --train-rec given: using the embedded digits data set (%s)",
                        os.path.dirname(s.train_rec))
        self.data = self._check_data()
        self.num_classes = max(self.data[split].num_classes for split in self.splits)
        if self.num_classes < 2:
            raise FBNetError("%s has a single class; a classifier needs at least two"
                             % s.train_rec)

    @property
    def image_shape(self):
        return tuple(self.config.image_shape)

    def _check_data(self):
        s = self.config
        data = {"train": check_data(s.train_rec, what="--train-rec")}
        if "theta" not in self.splits:
            pass  # nothing trains theta: the weights get every image of --train-rec
        elif not s.theta_from_train:
            data["theta"] = check_data(s.theta_rec, what="--theta-rec")
        elif data["train"].indexing == "flat" and not s.from_data_dir:
            raise FBNetError("--train-rec and --theta-rec are the same flat file %s; split it "
                             "with python -m fbnet_symbol.data split %s --out-a train --out-b "
                             "theta" % (s.train_rec, s.train_rec))
        else:  # --data-dir (either layout): theta split off by image, the file read in place
            data["train"], data["theta"] = data["train"].split()
            logger.info("%s (%s): %d classes; weight split %d images, theta split %d (every "
                        "5th image of each class)", s.train_rec, data["train"].indexing,
                        data["train"].num_classes, data["train"].num_records,
                        data["theta"].num_records)
        # validation runs on rank 0 only: the other workers need no copy of --val-rec
        if s.val_rec and self.writer:
            data["val"] = check_data(s.val_rec, what="--val-rec")
        step = self.num_workers * s.batch_size
        for split in self.splits:
            info = data[split]
            if self.num_workers > 1 and info.num_records < step:
                raise FBNetError("--%s-rec %s has %d images, fewer than one step of %d workers "
                                 "x --batch-size %d; use a smaller --batch-size"
                                 % (split, info.rec, info.num_records, self.num_workers,
                                    s.batch_size))
        return data

    def steps_per_pass(self, split):
        """Steps of one pass over a split: the same on every worker (a dist_sync step
        needs all of them), each worker taking ``--batch-size`` images of its shard."""
        return math.ceil(self.data[split].num_records
                         / (self.config.batch_size * self.num_workers))

    def iterator(self, split, epoch, stream, mirror=False):
        """This worker's shard of ``split`` in epoch ``epoch``'s order (a pure function of
        the run seed, the epoch and ``stream``, so a resumed run sees the same batches)."""
        s = self.config
        return data_iter(self.data[split], self.image_shape, s.batch_size, shuffle=True,
                         seed=derived_seed(s.seed, epoch, stream), rand_mirror=mirror,
                         num_parts=self.num_workers, part_index=self.rank)

    def data_sizes(self):
        return [self.data[split].num_records for split in self.splits] + [self.num_classes]
