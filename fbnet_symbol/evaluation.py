"""Evaluations the trainer runs at every epoch end (rank 0): each returns metrics for the record.

An evaluation is a callable ``(trainer, epoch) -> dict``; it reads the graph's outputs
through :meth:`Trainer.infer <fbnet_symbol.trainer.Trainer.infer>` on batches the task
builds for inference (:meth:`Task.eval_batch`: the supernet without noise at the epoch's
temperature). Add one by passing it to the trainer; the loop does not change.
"""
from .data import record_iter


def top1_evaluation(split="val"):
    """An evaluation: top-1 of the plain logits on ``split`` (no augmentation, padding dropped)."""
    def evaluate(trainer, epoch):
        env, task = trainer.env, trainer.task
        if split not in env.data:
            return {}
        correct = n = 0
        batch_size = trainer.settings.batch_size
        for batch in record_iter(env.data[split].rec, env.image_shape, batch_size,
                                 shuffle=False):
            valid = batch_size - batch.pad
            logits = trainer.infer(task.eval_batch(batch.data[0], batch.label[0], valid,
                                                   epoch))[1].asnumpy()[:valid]
            correct += int((logits.argmax(1) == batch.label[0].asnumpy()[:valid]).sum())
            n += valid
        return {"%s_acc" % split: correct / max(n, 1)}
    return evaluate
