"""Where a run is (epoch, phase, batch, step, history) and its checkpoints: save, resume, resume checks.

A checkpoint holds the parameters, every optimizer's whole state and this position, so a
run killed at any moment and resumed from its last checkpoint retraces the uninterrupted
run (everything random is a function of seed, epoch and step). A checkpoint written with
settings that shape the run differently (:data:`~fbnet_symbol.settings.RESUME_KEYS`) or
by another number of workers is refused with the fix.
"""
import logging
import os

import mxnet as mx

from ..checkpoint import CheckpointFolder, find_checkpoint
from ..errors import FBNetError

logger = logging.getLogger(__name__)


class RunState:
    """Position, history and the checkpoint folder of one run."""

    def __init__(self, out, prefix, keep):
        self.prefix = prefix
        self.checkpoints = CheckpointFolder(os.path.join(out, "checkpoints"), prefix, keep=keep)
        self.global_step = 0
        self.position = (0, "weight", 0)  # (epoch, phase, batches done in that phase)
        self.history = []
        self.last_checkpoint = None

    def advance(self, epoch, phase, batch):
        """One step done: ``batch`` batches of ``phase`` in ``epoch``."""
        self.global_step += 1
        self.position = (epoch, phase, batch)

    def record_epoch(self, record):
        """Add (or replace, after a resume inside that epoch) an epoch's record."""
        self.history = [h for h in self.history if h["epoch"] != record["epoch"]] + [record]

    def save(self, symbol, arg_params, aux_params, modules, meta):
        """Write a checkpoint of the current position; ``modules``: {phase: Module}."""
        epoch, phase, batch = self.position
        # "stage": the key checkpoints have always had for the phase (files users keep)
        meta = dict(meta, epoch=epoch, stage=phase, batch=batch, global_step=self.global_step,
                    history=self.history)
        states = {name: mod._updater.get_states(dump_optimizer=True)
                  for name, mod in modules.items()}
        self.last_checkpoint = self.checkpoints.save(self.global_step, symbol, arg_params,
                                                     aux_params, states, meta)
        return self.last_checkpoint

    def resume(self, path, master, modules, expect, worker=None):
        """Load ``path`` (a folder: its newest good checkpoint) into the Modules.

        ``expect``: ``(settings_view, num_workers, check)``, where ``check(meta, path)``
        raises on a checkpoint of another run; ``worker``: this worker's rank in a
        distributed run (for the message when it cannot read the folder).
        """
        try:
            ckpt = find_checkpoint(path, self.prefix)
        except FBNetError as e:
            if worker is None:
                raise
            raise FBNetError("worker %d: %s (every worker reads --load-model-path: put the "
                             "folder on a shared filesystem or copy rank 0's folder to each "
                             "machine)" % (worker, e)) from None
        if ckpt.meta:
            check_resumable(ckpt, *expect)
        arg, aux = ckpt.load_params()
        try:
            master.set_params(arg, aux, allow_missing=False, force_init=True, allow_extra=True)
        except (RuntimeError, mx.base.MXNetError, AssertionError, ValueError) as e:
            raise FBNetError("%s does not fit this network (%s); resume with the settings of "
                             "the run that wrote it" % (ckpt.params_path,
                                                        str(e).splitlines()[0])) from None
        if not ckpt.meta:
            logger.info("loaded parameters from %s; starting at epoch 0", ckpt.params_path)
            return
        for name, mod in modules.items():
            states = ckpt.read_states(name)
            if states is None:
                raise FBNetError("%s lacks the %s optimizer state; pass the folder to use "
                                 "another checkpoint" % (ckpt.params_path, name))
            mod._updater.set_states(states)
        self.global_step = ckpt.meta["global_step"]
        self.position = (ckpt.meta["epoch"], ckpt.meta["stage"], ckpt.meta["batch"])
        self.history = ckpt.meta.get("history", [])
        self.last_checkpoint = ckpt.params_path
        logger.info("resumed from %s: epoch %d, %s phase, batch %d (step %d)",
                    ckpt.params_path, *self.position, self.global_step)


def check_resumable(ckpt, settings_view, num_workers, check=None):
    """Refuse a checkpoint written with settings that shape the run differently."""
    old = ckpt.meta.get("config", {})
    if old.get("image_shape") is None:  # written before image shapes were resolved
        old = dict(old, image_shape=settings_view["image_shape"])
    if check is not None:
        check(ckpt.meta, ckpt.params_path)
    workers = ckpt.meta.get("num_workers", 1)
    if workers != num_workers:
        raise FBNetError("checkpoint %s was written by a run of %d worker(s), this one has "
                         "%d; resume with the same number of workers (fbnet launch -n %d)"
                         % (ckpt.params_path, workers, num_workers, workers))
    for key, value in settings_view.items():
        if key in old and old[key] != value:
            raise FBNetError("checkpoint %s was written with %s=%s but this run has %s=%s; "
                             "resume with the same settings, or use another "
                             "--save-model-path for a new search"
                             % (ckpt.params_path, key, old[key], key, value))
