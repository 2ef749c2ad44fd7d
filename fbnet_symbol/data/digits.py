"""The embedded default data set: scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes; no download), upscaled and packed once into a cache folder."""
import json
import logging
import os
import shutil
import tempfile

import numpy as np

from ..fileio import default_cache_dir, umask
from .files import write_images

logger = logging.getLogger(__name__)

DIGITS_SIZE = 32


def embedded_digits(cache_dir=None, size=DIGITS_SIZE):
    """scikit-learn's 8x8 digits, upscaled to ``size`` and packed into RecordIO once.

    Splits (stratified, fixed seed): 20% held-out validation, and the remaining 80%
    split 80/20 into the weight split and the theta split. Returns
    ``{"train": rec, "theta": rec, "val": rec}``.
    """
    import cv2
    from sklearn.datasets import load_digits

    folder = os.path.join(cache_dir or default_cache_dir(), "digits-%d" % size)
    paths = {s: os.path.join(folder, s + ".rec") for s in ("train", "theta", "val")}
    marker = os.path.join(folder, "complete.json")
    if os.path.isfile(marker):
        return paths
    digits = load_digits()
    images = []
    for img in digits.images:  # values 0..16
        g = np.clip(img * (255.0 / 16.0), 0, 255).astype(np.uint8)
        g = cv2.resize(g, (size, size), interpolation=cv2.INTER_CUBIC)
        images.append(cv2.cvtColor(g, cv2.COLOR_GRAY2BGR))
    labels = digits.target
    rng = np.random.RandomState(2019)
    split = {"train": [], "theta": [], "val": []}
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        rng.shuffle(members)
        n_val = int(round(0.2 * len(members)))
        rest = members[n_val:]
        n_train = int(round(0.8 * len(rest)))
        split["val"].extend(members[:n_val])
        split["train"].extend(rest[:n_train])
        split["theta"].extend(rest[n_train:])
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    tmp = tempfile.mkdtemp(dir=os.path.dirname(folder), prefix=".digits-")
    os.chmod(tmp, 0o777 & ~umask())  # as os.makedirs would make it, not mkdtemp's 0700
    try:
        for name, members in split.items():
            members = sorted(members)
            write_images(os.path.join(tmp, name), [images[i] for i in members],
                         labels[members])
        with open(os.path.join(tmp, "complete.json"), "w") as f:
            json.dump({k: len(v) for k, v in split.items()}, f)
        if os.path.isdir(folder) and not os.path.isfile(marker):
            shutil.rmtree(folder, ignore_errors=True)  # a leftover without its marker
        try:
            os.replace(tmp, folder)
        except OSError:
            # another process (e.g. a second worker on this machine) got there first: the
            # contents are the same, keep its folder untouched while it may be read
            if not os.path.isfile(marker):
                raise
            return paths
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp)
    logger.info("packed the embedded digits data set into %s", folder)
    return paths
