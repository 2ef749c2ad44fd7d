"""Face verification on InsightFace's pair sets (``lfw.bin``, ``cfp_fp.bin``, ``agedb_30.bin``).

A ``.bin`` is ``pickle((bins, issame))``: 2·P encoded images in pair order (bytes or uint8
arrays; files pickled by Python 2 need ``encoding='bytes'``) and P booleans.

InsightFace's protocol, reproduced: embed every image and its horizontal flip, add the
two, L2-normalise; the squared L2 distance of each pair; 10 contiguous folds (no
shuffle; the first ``P % 10`` folds one pair larger); on 9 folds the threshold of
``0.00, 0.01, ..., 3.99`` with the highest accuracy (the first, on ties), measured on the
10th; accuracy = mean ± std over the folds. Also reported, on the same distances: TAR at
FAR = 1e-3, from one threshold over all pairs (the largest distance that accepts at most
0.1% of the different-identity pairs).

    python -m fbnet_symbol.faces.verify --load-model-path model/ --bin lfw.bin [--bin cfp_fp.bin]
"""
import logging
import os
import pickle
import sys
import time
from dataclasses import dataclass

import numpy as np

from ..errors import FBNetError
from ..space.spaces import PIXEL_MEAN, PIXEL_SCALE

logger = logging.getLogger(__name__)

THRESHOLDS = np.arange(0, 400) / 100.0  # 0.00 .. 3.99 (squared L2 of unit vectors: 0..4)
NUM_FOLDS = 10
FAR_TARGET = 1e-3


# ---------------------------------------------------------------- pair sets

@dataclass
class PairSet:
    name: str
    bins: list        # 2P encoded images
    issame: np.ndarray

    @property
    def num_pairs(self):
        return len(self.issame)


def load_pairs(path):
    """A ``.bin`` pair set, checked: one-line errors naming the file and the fix."""
    if not os.path.isfile(path):
        raise FBNetError("pair set %s does not exist; give InsightFace's lfw.bin (or make one "
                         "with python -m fbnet_symbol.data make-pairs)" % path)
    try:
        with open(path, "rb") as f:
            obj = pickle.load(f, encoding="bytes")
    except Exception as e:  # any unpickling failure means: not a pair set
        raise FBNetError("%s is not a pickled (bins, issame) pair set (%s); re-download it or "
                         "make one with python -m fbnet_symbol.data make-pairs"
                         % (path, type(e).__name__)) from None
    if not (isinstance(obj, (tuple, list)) and len(obj) == 2):
        raise FBNetError("%s holds a %s, not a (bins, issame) pair; re-make it with python -m "
                         "fbnet_symbol.data make-pairs" % (path, type(obj).__name__))
    bins, issame = list(obj[0]), np.asarray(obj[1]).astype(bool).ravel()
    if len(bins) != 2 * len(issame) or not len(issame):
        raise FBNetError("%s has %d images for %d pair labels; a pair set needs 2 images per "
                         "label: re-make it" % (path, len(bins), len(issame)))
    name = os.path.splitext(os.path.basename(path))[0]
    return PairSet(name, bins, issame)


def decode_pairs(pairs, image_shape, path="", progress=False):
    """All images of a pair set as RGB uint8, N x 3 x H x W, at the network's input size
    (shorter side resized, centre crop: as the training reader)."""
    from tqdm import tqdm

    from ..data.reader import decode_image

    _, h, w = image_shape
    out = np.empty((len(pairs.bins), 3, h, w), np.uint8)
    for i, b in enumerate(tqdm(pairs.bins, desc="decoding %s" % pairs.name, unit="img",
                               disable=not progress, leave=False)):
        payload = bytes(b) if not isinstance(b, np.ndarray) else b.tobytes()
        try:
            out[i] = decode_image(payload, h, w).transpose(2, 0, 1)
        except FBNetError:
            raise FBNetError("%s: image %d (pair %d) does not decode; re-make the pair set"
                             % (path or pairs.name, i, i // 2)) from None
    return out


# ---------------------------------------------------------------- the protocol

def flip_add_normalize(embeddings, flipped):
    """InsightFace's test-time flip: add the two embeddings, then L2-normalise each row."""
    e = np.asarray(embeddings, np.float64) + np.asarray(flipped, np.float64)
    return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)


def pair_distances(embeddings):
    """Squared L2 distance of each pair (rows 0-1, 2-3, ...)."""
    diff = embeddings[0::2] - embeddings[1::2]
    return np.sum(diff * diff, axis=1)


def fold_slices(n, folds=NUM_FOLDS):
    """Contiguous folds as scikit-learn's unshuffled KFold cuts them."""
    sizes = np.full(folds, n // folds)
    sizes[:n % folds] += 1
    ends = np.cumsum(sizes)
    return [slice(e - s, e) for s, e in zip(sizes, ends)]


def _accuracies(dist, issame, thresholds):
    """Accuracy at every threshold (a pair is 'same' when its distance is below it)."""
    accept = dist[None, :] < thresholds[:, None]
    return (accept == issame[None, :]).mean(axis=1)


def verification_accuracy(dist, issame, thresholds=THRESHOLDS, folds=NUM_FOLDS):
    """InsightFace's k-fold accuracy: ``{"acc", "acc_std", "thresholds", "fold_acc"}``."""
    dist, issame = np.asarray(dist, np.float64), np.asarray(issame, bool)
    if len(dist) < folds:
        raise FBNetError("%d pairs cannot make %d folds; use a pair set of at least %d pairs"
                         % (len(dist), folds, folds))
    accs, chosen = [], []
    for test in fold_slices(len(dist), folds):
        train = np.ones(len(dist), bool)
        train[test] = False
        best = thresholds[int(np.argmax(_accuracies(dist[train], issame[train], thresholds)))]
        chosen.append(float(best))
        accs.append(float(np.mean((dist[test] < best) == issame[test])))
    return {"acc": float(np.mean(accs)), "acc_std": float(np.std(accs)),
            "thresholds": chosen, "fold_acc": accs}


def tar_at_far(dist, issame, far=FAR_TARGET):
    """(TAR, threshold): accept pairs closer than the threshold that lets at most ``far``
    of the different-identity pairs through."""
    dist, issame = np.asarray(dist, np.float64), np.asarray(issame, bool)
    negatives = np.sort(dist[~issame])
    if not len(negatives) or not issame.any():
        return float("nan"), float("nan")
    allowed = int(np.floor(far * len(negatives)))  # false accepts we may make
    threshold = negatives[allowed]  # accepting d < threshold admits `allowed` negatives
    return float(np.mean(dist[issame] < threshold)), float(threshold)


def score(embeddings, flipped, issame):
    """Everything reported for one pair set, from the raw embeddings of images and flips."""
    dist = pair_distances(flip_add_normalize(embeddings, flipped))
    result = verification_accuracy(dist, issame)
    tar, thr = tar_at_far(dist, issame)
    # every pair closer than the threshold grid's first step: the 10-fold accuracy can only
    # read 0.5. Collapsed only if the distances do not separate the pairs either (TAR takes
    # its threshold from the distances themselves, at any scale)
    below_grid = bool(np.max(dist) < THRESHOLDS[1])
    collapsed = below_grid and not tar > 0.01
    return {"acc": result["acc"], "acc_std": result["acc_std"], "tar_at_far": tar,
            "far": FAR_TARGET, "far_threshold": thr, "pairs": int(len(issame)),
            "collapsed": collapsed, "below_threshold_grid": below_grid and not collapsed}


def padded_batch(batch, size, mean, scale):
    """A bound graph's full batch of ``size`` rows: ``batch`` normalised, zeros after it."""
    full = np.zeros((size,) + batch.shape[1:], np.float32)
    full[:len(batch)] = (batch - mean) / scale
    return full


def embed_pairs(embed, images, batch_size, progress=False, name=""):
    """(embeddings, embeddings of the flips) of uint8 N x 3 x H x W images; ``embed``
    maps a float32 batch of raw 0-255 RGB to an (n, d) array."""
    from tqdm import tqdm

    out, flipped = [], []
    for start in tqdm(range(0, len(images), batch_size), desc="embedding %s" % name,
                      unit="batch", disable=not progress, leave=False):
        batch = images[start:start + batch_size].astype(np.float32)
        out.append(embed(batch))
        flipped.append(embed(batch[:, :, :, ::-1].copy()))
    return np.concatenate(out), np.concatenate(flipped)


# ---------------------------------------------------------------- a shipped model

def embedding_output(symbol):
    """The embedding of a shipped graph: ``fc1`` (InsightFace export), the graph itself (a
    margin head's embedding), or for a softmax graph what its classifier reads."""
    from ..space.heads import CLASSIFIER

    internals = symbol.get_internals()
    names = internals.list_outputs()
    if "fc1_output" in names:
        return internals["fc1_output"]
    if symbol.list_outputs() != ["prob_output"]:
        return symbol
    if "embedding_output" in names:
        return internals["embedding_output"]
    return internals[CLASSIFIER + "_output"].get_children()[0]


class Embedder:
    """``embed(batch)``: raw 0-255 RGB float32 N x 3 x H x W -> (N, d) embeddings of a
    shipped graph, normalised as its ``-input.json`` says (the package's convention if
    there is none)."""

    def __init__(self, path, ctx=None, batch_size=64, image_shape=None):
        import mxnet as mx

        from ..ship.export import find_deploy, input_shape_of
        from ..space.child import read_input_description

        self.prefix, self.epoch = find_deploy(path)
        symbol, arg, aux = mx.model.load_checkpoint(self.prefix, self.epoch)
        desc = read_input_description(self.prefix) or {}
        shape = tuple(image_shape or input_shape_of(self.prefix) or ())
        if len(shape) != 3:
            raise FBNetError("the input size of %s-symbol.json is unknown (no %s-input.json or "
                             "args.json beside it); give --image-shape C,H,W"
                             % (self.prefix, os.path.basename(self.prefix)))
        self.image_shape, self.batch_size = shape, batch_size
        raw = desc.get("normalisation", "").startswith("inside")
        self.mean, self.scale = (0.0, 1.0) if raw else (PIXEL_MEAN, PIXEL_SCALE)
        self.module = mx.mod.Module(embedding_output(symbol), data_names=["data"],
                                    label_names=None, context=ctx or mx.cpu())
        self.module.bind(data_shapes=[("data", (batch_size,) + shape)], for_training=False)
        self.module.set_params(arg, aux, allow_missing=False, allow_extra=True)

    def __call__(self, batch):
        import mxnet as mx

        full = padded_batch(batch, self.batch_size, self.mean, self.scale)
        self.module.forward(mx.io.DataBatch([mx.nd.array(full)]), is_train=False)
        out = self.module.get_outputs()[0].asnumpy()
        return out.reshape(self.batch_size, -1)[:len(batch)]


def verify_model(embed, paths, image_shape, batch_size, progress=True):
    """Score ``embed`` on each pair set: ``{name: score dict}`` (and seconds per set)."""
    results = {}
    for path in paths:
        pairs = load_pairs(path)
        start = time.time()
        images = decode_pairs(pairs, image_shape, path, progress)
        emb, flipped = embed_pairs(embed, images, batch_size, progress, pairs.name)
        results[pairs.name] = dict(score(emb, flipped, pairs.issame),
                                   seconds=time.time() - start)
    return results


def format_result(name, r):
    return ("%s: accuracy %.5f +- %.5f, TAR %.4f at FAR %g (%d pairs, %.1f s)%s"
            % (name, r["acc"], r["acc_std"], r["tar_at_far"], r["far"], r["pairs"],
               r.get("seconds", float("nan")),
               "; the embeddings have collapsed (every pair closer than 0.01 and no separation "
               "at FAR %g): on small data lower --margin-s/--margin-m or train longer"
               % r["far"] if r.get("collapsed") else
               "; every pair is closer than the protocol's threshold step 0.01, so its "
               "accuracy reads 0.5, though TAR shows the pairs separate: train longer"
               if r.get("below_threshold_grid") else ""))


def verification_evaluation(paths, image_shape, progress=True):
    """An evaluation for the trainer (:mod:`fbnet_symbol.train.evaluation`): accuracy
    (10-fold, InsightFace's protocol) and TAR at FAR 1e-3 on each pair set. The sets are
    read and decoded now, so a bad file stops the run before it trains (one-line error),
    not at the first epoch end."""
    sets = []
    for path in paths:
        pairs = load_pairs(path)
        sets.append((pairs.name, decode_pairs(pairs, image_shape, path, progress),
                     pairs.issame))

    def evaluate(epoch, model):
        import mxnet as mx

        size = model.batch_size

        def embed(batch):  # raw 0-255 RGB -> the graph's embedding output
            full = padded_batch(batch, size, PIXEL_MEAN, PIXEL_SCALE)
            outputs = model.outputs(mx.nd.array(full), mx.nd.zeros((size,)), len(batch))
            return outputs["embedding"].asnumpy().reshape(size, -1)[:len(batch)]

        record = {}
        for name, images, issame in sets:
            start = time.time()
            result = score(*embed_pairs(embed, images, size, progress, name), issame)
            result["seconds"] = time.time() - start
            logger.info("epoch %d verification %s", epoch, format_result(name, result))
            record.update({"%s_acc" % name: result["acc"], "%s_acc_std" % name: result["acc_std"],
                           "%s_tar_at_far" % name: result["tar_at_far"]})
        return record
    return evaluate


def main(argv=None):
    import json

    from ..cli import ArgumentParser, add_threads_flag, start
    from ..space.spaces import parse_image_shape

    p = ArgumentParser(prog="fbnet verify",
                       description="Face verification accuracy of a shipped model on "
                                   "InsightFace pair sets (10-fold protocol, TAR@FAR=1e-3)")
    p.add_argument("--load-model-path", required=True,
                   help="the folder test.py --arch (or export --insightface) wrote, or a "
                        "model-NNNN.params file")
    p.add_argument("--bin", action="append", required=True,
                   help="a pair set (lfw.bin, cfp_fp.bin, agedb_30.bin, ...); repeatable")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--gpu", help="one device: a GPU number or cpu (default: the CPU)")
    p.add_argument("--image-shape", help="C,H,W, for a graph without PREFIX-input.json")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_threads_flag(p)
    args = p.parse_args(argv)
    start(args.threads)
    from ..dist.devices import parse_devices
    ctx = parse_devices(args.gpu or "cpu", notice=False)[0]
    shape = parse_image_shape(args.image_shape) if args.image_shape else None
    embed = Embedder(args.load_model_path, ctx, args.batch_size, shape)
    results = verify_model(embed, args.bin, embed.image_shape, args.batch_size,
                           progress=not args.json)
    if args.json:
        print(json.dumps(results))
    else:
        print("%s-%04d.params:" % (embed.prefix, embed.epoch))
        for name, r in results.items():
            print("  " + format_result(name, r))
    return 0


if __name__ == "__main__":
    from ..cli import run
    run(main, sys.argv[1:])
