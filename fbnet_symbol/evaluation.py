"""Evaluations the trainer runs at every epoch end (rank 0): each returns metrics for the record.

An evaluation is a callable ``(trainer, epoch) -> dict``; it reads the graph's outputs
through :meth:`Trainer.infer <fbnet_symbol.trainer.Trainer.infer>` on batches the task
builds for inference (:meth:`Task.eval_batch`: the supernet without noise at the epoch's
temperature). Add one by passing it to the trainer; the loop does not change.

* :func:`top1_evaluation`: top-1 on a held-out split (``--val-rec``).
* :func:`verification_evaluation`: InsightFace's face verification on ``.bin`` pair sets
  (``--verify``), embedding with the graph's ``embedding_out`` (the features the head
  reads; for the supernet: at the epoch's temperature, no noise).
"""
import logging

from .data import data_iter
from .recordio import PIXEL_MEAN, PIXEL_SCALE

logger = logging.getLogger(__name__)


def top1_evaluation(split="val"):
    """An evaluation: top-1 of the plain logits on ``split`` (no augmentation, padding dropped)."""
    def evaluate(trainer, epoch):
        env, task = trainer.env, trainer.task
        if split not in env.data:
            return {}
        correct = n = 0
        batch_size = trainer.settings.batch_size
        for batch in data_iter(env.data[split], env.image_shape, batch_size, shuffle=False):
            valid = batch_size - batch.pad
            logits = trainer.infer(task.eval_batch(batch.data[0], batch.label[0], valid,
                                                   epoch))[1].asnumpy()[:valid]
            correct += int((logits.argmax(1) == batch.label[0].asnumpy()[:valid]).sum())
            n += valid
        return {"%s_acc" % split: correct / max(n, 1)}
    return evaluate


def verification_evaluation(paths, image_shape, progress=True):
    """An evaluation: accuracy (10-fold, InsightFace's protocol) and TAR at FAR 1e-3 on each
    pair set. The sets are read and decoded now, so a bad file stops the run before it
    trains (one-line error), not at the first epoch end."""
    from .verify import decode_pairs, embed_pairs, format_result, load_pairs, padded_batch, score

    sets = []
    for path in paths:
        pairs = load_pairs(path)
        sets.append((pairs.name, decode_pairs(pairs, image_shape, path, progress),
                     pairs.issame))

    def evaluate(trainer, epoch):
        import time

        import mxnet as mx

        task, size = trainer.task, trainer.settings.batch_size

        def embed(batch):  # raw 0-255 RGB -> the graph's embedding output
            full = padded_batch(batch, size, PIXEL_MEAN, PIXEL_SCALE)
            outputs = trainer.infer(task.eval_batch(mx.nd.array(full), mx.nd.zeros((size,)),
                                                    len(batch), epoch))
            return outputs[-1].asnumpy().reshape(size, -1)[:len(batch)]

        record = {}
        for name, images, issame in sets:
            start = time.time()
            result = score(*embed_pairs(embed, images, size, progress and trainer.env.progress,
                                        name), issame)
            result["seconds"] = time.time() - start
            logger.info("epoch %d verification %s", epoch, format_result(name, result))
            record.update({"%s_acc" % name: result["acc"], "%s_acc_std" % name: result["acc_std"],
                           "%s_tar_at_far" % name: result["tar_at_far"]})
        return record
    return evaluate
