"""Evaluations the trainer runs at every epoch end (rank 0): each returns metrics for the record.

An evaluation is a callable ``(epoch, model) -> dict``; ``model`` is the trainer's
:class:`~fbnet_symbol.train.trainer.EpochModel`, the network at that epoch end run forward
on the task's evaluation batches (the supernet: no noise, the epoch's temperature), its
outputs by name. Add one by passing it to the trainer; the loop does not change.

* :func:`top1_evaluation`: top-1 on a held-out split (``--val-rec``).
* :func:`~fbnet_symbol.faces.verify.verification_evaluation`: InsightFace's face
  verification on ``.bin`` pair sets (``--verify``).
"""
from ..data.check import data_iter


def top1_evaluation(info, image_shape, split="val"):
    """An evaluation: top-1 of the plain logits on a checked file (no augmentation,
    padding dropped), recorded as ``<split>_acc``."""
    def evaluate(epoch, model):
        correct = n = 0
        size = model.batch_size
        for batch in data_iter(info, image_shape, size, shuffle=False):
            valid = size - batch.pad
            logits = model.outputs(batch.data[0], batch.label[0], valid)["logits"]
            logits = logits.asnumpy()[:valid]
            correct += int((logits.argmax(1) == batch.label[0].asnumpy()[:valid]).sum())
            n += valid
        return {"%s_acc" % split: correct / max(n, 1)}
    return evaluate
