"""The embedded data sets, made from scikit-learn's bundled 8x8 digits (1,797 images, 10 classes; no download) and packed once into a cache folder: the plain digits, and cluttered digits that do not saturate."""
import json
import logging
import os

import numpy as np

from ..fileio import cached_folder, default_cache_dir
from .files import write_images

logger = logging.getLogger(__name__)

DIGITS_SIZE = 32


def _digit_splits(labels, copies=1):
    """Stratified, fixed-seed splits by source digit: 20% held-out validation, the rest 80/20
    into the weight and theta splits. With ``copies`` images per source digit (image ``i``'s
    copies at ``i * copies + k``), all copies go to the split of their source."""
    rng = np.random.RandomState(2019)
    split = {"train": [], "theta": [], "val": []}
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        rng.shuffle(members)
        n_val = int(round(0.2 * len(members)))
        rest = members[n_val:]
        n_train = int(round(0.8 * len(rest)))
        for name, chosen in (("val", members[:n_val]), ("train", rest[:n_train]),
                             ("theta", rest[n_train:])):
            split[name].extend(i * copies + k for i in chosen for k in range(copies))
    return split


def _pack_cached(folder, images, labels, split, what):
    """Pack ``split`` ({name: indices}) into ``folder`` once (:func:`cached_folder`):
    ``{"train": rec, "theta": rec, "val": rec}``."""
    labels = np.asarray(labels)

    def build(tmp):
        for name, members in split.items():
            members = sorted(members)
            write_images(os.path.join(tmp, name), [images[i] for i in members],
                         labels[members])
        return {k: len(v) for k, v in split.items()}

    if cached_folder(folder, build, ".digits-"):
        logger.info("packed %s into %s", what, folder)
    return {s: os.path.join(folder, s + ".rec") for s in ("train", "theta", "val")}


def embedded_digits(cache_dir=None, size=DIGITS_SIZE):
    """scikit-learn's 8x8 digits, upscaled to ``size`` and packed into RecordIO once.

    Splits (stratified, fixed seed): 20% held-out validation, and the remaining 80%
    split 80/20 into the weight split and the theta split. Returns
    ``{"train": rec, "theta": rec, "val": rec}``.
    """
    import cv2
    from sklearn.datasets import load_digits

    folder = os.path.join(cache_dir or default_cache_dir(), "digits-%d" % size)
    if os.path.isfile(os.path.join(folder, "complete.json")):
        return {s: os.path.join(folder, s + ".rec") for s in ("train", "theta", "val")}
    digits = load_digits()
    images = []
    for img in digits.images:  # values 0..16
        g = np.clip(img * (255.0 / 16.0), 0, 255).astype(np.uint8)
        g = cv2.resize(g, (size, size), interpolation=cv2.INTER_CUBIC)
        images.append(cv2.cvtColor(g, cv2.COLOR_GRAY2BGR))
    return _pack_cached(folder, images, digits.target, _digit_splits(digits.target),
                        "the embedded digits data set")


# The cluttered digits: the same source digits, each drawn COPIES times under a random
# affine map (scaled to 18-26 px of 32, turned up to 8 degrees, sheared a little), on a
# noisy background of random brightness, in a random tint (fragments of other digits are
# possible but off). Plain digits saturate, so they cannot tell a searched network from a
# random one; harder settings (fragments, 12-35 degrees) left the deep networks and the
# supernet near chance at the study's budget (docs/reference.md: The study).
CLUTTER = {"copies": 3, "scale": (18, 26), "rotate_deg": 8.0, "shear": 0.05,
           "fragments": (0, 0), "fragment_px": (4, 7), "noise": (2.0, 8.0)}


def _draw_digit(img8, rng, size, c):
    """One 8x8 digit (0..1 floats) as a ``size`` x ``size`` mask under a random affine map."""
    import cv2
    side = rng.randint(c["scale"][0], c["scale"][1] + 1)
    g = cv2.resize(img8, (side, side), interpolation=cv2.INTER_CUBIC)
    angle, shear = rng.uniform(-1, 1) * c["rotate_deg"], rng.uniform(-1, 1) * c["shear"]
    m = cv2.getRotationMatrix2D((side / 2.0, side / 2.0), angle, 1.0)
    m[0, 1] += shear
    x, y = rng.randint(0, size - side + 1, size=2)
    m[:, 2] += (x, y)
    return np.clip(cv2.warpAffine(g, m, (size, size), flags=cv2.INTER_LINEAR), 0, 1)


def cluttered_image(sources, index, rng, size=DIGITS_SIZE, clutter=None):
    """Image ``index`` of ``sources`` (8x8 digits scaled to 0..1) drawn with clutter: BGR
    uint8. Every random choice comes from ``rng``."""
    c = dict(CLUTTER, **(clutter or {}))
    background = rng.uniform(0, 110)
    canvas = np.full((size, size), background, np.float32)
    for _ in range(rng.randint(c["fragments"][0], c["fragments"][1] + 1)):
        other = _draw_digit(sources[rng.randint(len(sources))], rng, size, c)
        px = rng.randint(c["fragment_px"][0], c["fragment_px"][1] + 1)
        x, y = rng.randint(0, size - px + 1, size=2)
        keep = np.zeros_like(other)
        keep[y:y + px, x:x + px] = other[y:y + px, x:x + px]  # a piece, not a whole digit
        canvas += keep * rng.uniform(60, 200)
    canvas += _draw_digit(sources[index], rng, size, c) * rng.uniform(110, 230)
    canvas += rng.normal(0, rng.uniform(*c["noise"]), canvas.shape)
    tint = rng.uniform(0.55, 1.0, size=3)
    return np.clip(canvas[:, :, None] * tint[None, None, :], 0, 255).astype(np.uint8)


def cluttered_digits(cache_dir=None, size=DIGITS_SIZE, seed=0, clutter=None):
    """The cluttered digits task packed into RecordIO once (``digits-cluttered-...`` in the
    cache): ``copies`` images per source digit, split by source digit as the plain set, so
    that no validation digit was seen in training. Deterministic in ``seed``."""
    import hashlib
    from sklearn.datasets import load_digits

    c = dict(CLUTTER, **(clutter or {}))
    key = hashlib.sha256(json.dumps([size, seed, sorted(c.items())]).encode()).hexdigest()[:8]
    folder = os.path.join(cache_dir or default_cache_dir(),
                          "digits-cluttered-%d-%s" % (size, key))
    if os.path.isfile(os.path.join(folder, "complete.json")):
        return {s: os.path.join(folder, s + ".rec") for s in ("train", "theta", "val")}
    digits = load_digits()
    sources = (digits.images / 16.0).astype(np.float32)
    rng = np.random.RandomState(seed)
    images = [cluttered_image(sources, i, rng, size, c)
              for i in range(len(sources)) for _ in range(c["copies"])]
    labels = np.repeat(digits.target, c["copies"])
    return _pack_cached(folder, images, labels, _digit_splits(digits.target, c["copies"]),
                        "the cluttered digits task")
