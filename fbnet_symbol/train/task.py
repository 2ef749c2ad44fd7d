"""Training one fixed architecture from scratch as a trainer task, and shipping its inference graph.

The same data, heads, devices, schedule and checkpoints as the search (paper, section
3.3: sampled architectures are trained from scratch). After every epoch the inference
graph is written as ``model-symbol.json`` / ``model-NNNN.params``
(:meth:`~fbnet_symbol.space.child.ChildNet.export_deploy`), the file ``export`` and users load.
"""
import logging
import os

from ..errors import FBNetError
from ..fileio import atomic_write
from ..space.child import ChildNet
from .trainer import Callback, Task

logger = logging.getLogger(__name__)

DEPLOY_NAME = "model"


class TrainTask(Task):
    checkpoint_prefix = "model"

    def __init__(self, arch, env):
        self.arch = arch
        self.net = ChildNet(self.arch, env.num_classes, env.image_shape)

    def batch(self, data, label, valid, epoch, step):
        return self.net.batch(data, label, valid)

    def checkpoint_meta(self, epoch):
        return {"arch": self.arch.to_dict()}

    def check_resume(self, meta, path):
        if tuple(meta.get("arch", {}).get("blocks", ())) != tuple(self.arch.blocks):
            raise FBNetError("checkpoint %s trained another architecture; resume with the same "
                             "--arch or use another --save-model-path" % path)


class TrainReport(Callback):
    """Fixed training's files: ``arch.json`` at the start, the deployable inference graph
    after every epoch."""

    def __init__(self, task, out):
        self.task, self.arch, self.out = task, task.arch, out
        self.deploy_prefix = os.path.join(out, DEPLOY_NAME)

    def on_start(self):
        atomic_write(os.path.join(self.out, "arch.json"), self.arch.to_json())

    def on_epoch_end(self, epoch, record, history, arg_params, aux_params):
        self.task.net.export_deploy(arg_params, aux_params, self.deploy_prefix, epoch + 1)
        logger.info("epoch %d done: train CE %.4f acc %.4f%s; saved %s-%04d.params", epoch,
                    record.get("weight_ce", float("nan")), record.get("weight_acc", float("nan")),
                    ", val top-1 %.4f" % record["val_acc"] if "val_acc" in record else "",
                    self.deploy_prefix, epoch + 1)

    def summary(self, history):
        last = history[-1] if history else {}
        return {"deploy_prefix": self.deploy_prefix, "epoch": len(history),
                "train_acc": last.get("weight_acc")}
