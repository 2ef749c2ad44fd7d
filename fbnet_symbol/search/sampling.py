"""From P_theta to architectures: the argmax or distinct samples (paper, section 3.3).

P_theta is ``softmax(theta_l)`` per layer (:mod:`fbnet_symbol.search.theta`); the temperature of
the search shapes only the relaxation used in training and plays no part here.

``argmax`` gives the single most likely architecture; ``sample`` draws N *distinct*
architectures from P_theta (rejecting repeats), reported most likely first.
"""
import json
import logging
import os

import numpy as np

from ..errors import FBNetError
from ..space.architecture import distinct_blocks
from .theta import argmax_blocks, log_probability, probabilities

logger = logging.getLogger(__name__)


def choose(layout, theta, mode="argmax", num=1, seed=0, max_tries=100000):
    """Block lists: the argmax, or ``num`` distinct samples from P_theta (most likely first)."""
    probs = probabilities(theta)
    if mode == "argmax":
        return [tuple(argmax_blocks(layout, theta))]
    if mode != "sample":
        raise FBNetError("unknown --mode %r; choose argmax or sample" % mode)
    if num < 1:
        raise FBNetError("--num must be at least 1")
    total = 1
    for l in layout.layers:
        total *= len(l.candidates)
    if num > total:
        raise FBNetError("--num %d is more than the %d architectures of the space" % (num, total))
    rng = np.random.RandomState(seed)
    found = distinct_blocks(lambda: [l.candidates[rng.choice(len(l.candidates),
                                                             p=probs[l.name])]
                                     for l in layout.layers], num, max_tries)
    if len(found) < num:
        logger.warning("P_theta is concentrated: only %d distinct architectures in %d draws",
                       len(found), max_tries)
    return sorted(found, key=lambda b: -log_probability(layout, theta, b, probs))


def run_settings(path):
    """Settings of the search that wrote ``path`` (a theta file, a run folder, a .params)."""
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    for candidate in (folder, os.path.dirname(folder), os.path.dirname(os.path.dirname(folder))):
        args = os.path.join(candidate, "args.json")
        if os.path.isfile(args):
            with open(args) as f:
                cfg = json.load(f)
            lut = os.path.join(candidate, "lut.json")
            return cfg, lut if os.path.isfile(lut) else None
    return None, None
