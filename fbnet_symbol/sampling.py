"""From theta to architectures (paper, section 3.3: sample from P_theta, train from scratch).

P_theta is ``softmax(theta_l)`` for every layer, independently — the distribution the
Gumbel-softmax relaxes. The temperature of the search shapes only the relaxation used in
training and plays no part here (equivalently: sampling uses temperature 1).

``argmax`` gives the single most likely architecture; ``sample`` draws N *distinct*
architectures from P_theta (rejecting repeats), reported most likely first.
"""
import json
import logging
import os

import numpy as np

from .architecture import Architecture
from .errors import FBNetError
from .heads import HeadConfig
from .search_space import decode_space

logger = logging.getLogger(__name__)


def read_theta_text(path, layout):
    """θ in the seed's text format (``name: v1 v2 ...``, one line per layer, in order)."""
    if not os.path.isfile(path):
        raise FBNetError("theta file %s does not exist; pass a theta-result/epoch_N_theta.txt "
                         "written by test.py" % path)
    rows = []
    for n, line in enumerate(open(path).read().splitlines(), start=1):
        if not line.strip():
            continue
        name, _, values = line.partition(":")
        try:
            rows.append(np.array([float(v) for v in values.split()]))
        except ValueError:
            raise FBNetError("%s line %d is not 'name: v1 v2 ...'" % (path, n)) from None
    if len(rows) != layout.num_layers:
        raise FBNetError("%s has %d layers but space %s (preset %s) has %d; pass the --space "
                         "and --preset of the search" % (path, len(rows), layout.space.name,
                                                         layout.preset.name, layout.num_layers))
    theta = {}
    for layer, row in zip(layout.layers, rows):
        if len(row) != len(layer.candidates):
            raise FBNetError("%s: layer %d has %d values but the space offers %d candidates "
                             "there; pass the --space and --preset of the search"
                             % (path, layer.index + 1, len(row), len(layer.candidates)))
        theta[layer.name] = row
    return theta


def theta_from_params(arg_params, layout):
    theta = {}
    for layer in layout.layers:
        key = "theta_" + layer.name
        if key not in arg_params:
            raise FBNetError("the checkpoint has no %s: it is not a supernet of space %s"
                             % (key, layout.space.name))
        theta[layer.name] = arg_params[key].asnumpy().ravel()
    return theta


def probabilities(theta):
    out = {}
    for name, t in theta.items():
        e = np.exp(t - t.max())
        out[name] = e / e.sum()
    return out


def log_probability(layout, probs, blocks):
    return float(sum(np.log(probs[l.name][l.candidates.index(b)])
                     for l, b in zip(layout.layers, blocks)))


def choose(layout, theta, mode="argmax", num=1, seed=0, max_tries=100000):
    """Block lists: the argmax, or ``num`` distinct samples from P_theta (most likely first)."""
    probs = probabilities(theta)
    if mode == "argmax":
        return [tuple(l.candidates[int(np.argmax(probs[l.name]))] for l in layout.layers)]
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
    found, tries = {}, 0
    while len(found) < num and tries < max_tries:
        tries += 1
        blocks = tuple(l.candidates[rng.choice(len(l.candidates), p=probs[l.name])]
                       for l in layout.layers)
        found.setdefault(blocks, log_probability(layout, probs, blocks))
    if len(found) < num:
        logger.warning("P_theta is concentrated: only %d distinct architectures in %d draws",
                       len(found), tries)
    return sorted(found, key=lambda b: -found[b])


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


def architecture_for(cfg, blocks, name):
    head = {"type": cfg.get("model_type") or "softmax"}
    for key, cfg_key in (("feature_dim", "feature_dim"), ("s", "margin_s"), ("m", "margin_m")):
        if cfg.get(cfg_key) is not None:
            head[key] = cfg[cfg_key]
    return Architecture(space=cfg["space"], preset=cfg["preset"], blocks=tuple(blocks),
                        head=HeadConfig(**head), width_mult=cfg.get("width_mult") or 1.0,
                        name=name)


def layout_for(cfg, image_shape):
    return decode_space(cfg["space"], cfg["preset"], image_shape, cfg.get("width_mult") or 1.0)
