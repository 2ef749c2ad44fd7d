"""The architecture parameters θ: names, reading and writing them, and what P_θ says.

θ lives in the supernet's parameters as one ``(1, K)`` variable per searchable layer,
named ``theta_<layer>`` (:data:`THETA_PREFIX`; each training phase freezes the other
group by this prefix). On disk it is the seed's text format, one line per layer,
``theta_layer1: v1 v2 ...``, written every epoch (docs/design.md).

P_θ is ``softmax(θ_l)`` per layer, independently — the distribution the Gumbel-softmax
relaxes (paper, section 3.3); the search temperature plays no part in it.
"""
import os

import numpy as np

from ..errors import FBNetError
from ..fileio import atomic_write, read_text

THETA_PREFIX = "theta_"


def theta_names(layout):
    return [THETA_PREFIX + l.name for l in layout.layers]


def theta_from_params(arg_params, layout):
    """{layer name: θ vector} from a parameter dict (NDArrays)."""
    theta = {}
    for layer in layout.layers:
        key = THETA_PREFIX + layer.name
        if key not in arg_params:
            raise FBNetError("the checkpoint has no %s: it is not a supernet of space %s"
                             % (key, layout.space.name))
        theta[layer.name] = arg_params[key].asnumpy().ravel()
    return theta


def probabilities(theta):
    """P_θ per layer: softmax of each layer's θ."""
    out = {}
    for name, t in theta.items():
        e = np.exp(t - t.max())
        out[name] = e / e.sum()
    return out


def log_probability(layout, theta, blocks, probs=None):
    """log P_θ(blocks): the sum over layers of the log-probability of the layer's block
    (``probs``: θ's :func:`probabilities`, when already computed)."""
    probs = probabilities(theta) if probs is None else probs
    return float(sum(np.log(probs[l.name][l.candidates.index(b)])
                     for l, b in zip(layout.layers, blocks)))


def argmax_blocks(layout, theta):
    """The most likely architecture: the argmax candidate of every layer."""
    return [l.candidates[int(np.argmax(theta[l.name]))] for l in layout.layers]


def expected_latency(layout, table, theta):
    """E[LAT] under P_θ, in the table's unit."""
    probs = probabilities(theta)
    return float(sum(np.dot(probs[l.name], table.values[l.index]) for l in layout.layers))


def concentration(layout, theta):
    """How far P_θ has moved from uniform, layer by layer.

    ``entropy``: H(P_l) / log(K_l), 1 for uniform and 0 for one certain block (mean over
    layers, and per layer); ``argmax_probability``: the probability of each layer's most
    likely block (uniform: 1/K_l); ``decided_layers``: layers whose most likely block has
    at least half the probability.
    """
    probs = probabilities(theta)
    entropy, top, uniform = [], [], []
    for l in layout.layers:
        p = probs[l.name]
        entropy.append(float(-(p * np.log(np.maximum(p, 1e-30))).sum() / np.log(len(p))))
        top.append(float(p.max()))
        uniform.append(1.0 / len(p))
    return {"entropy": float(np.mean(entropy)), "entropy_per_layer": entropy,
            "argmax_probability": float(np.mean(top)), "argmax_probability_per_layer": top,
            "uniform_probability": float(np.mean(uniform)),
            "decided_layers": int(sum(t >= 0.5 for t in top))}


def write_theta_text(path, layout, theta):
    """The seed's text format: one line per layer, ``theta_<layer>: v1 v2 ...``."""
    lines = ["%s%s: %s\n" % (THETA_PREFIX, l.name, " ".join("%.8g" % v for v in theta[l.name]))
             for l in layout.layers]
    atomic_write(path, "".join(lines))


def read_theta_text(path, layout):
    """θ in the seed's text format (any layer names; one line per layer, in order)."""
    if not os.path.isfile(path):
        raise FBNetError("theta file %s does not exist; pass a theta-result/epoch_N_theta.txt "
                         "written by a search (fbnet search / test.py)" % path)
    rows = []
    text = read_text(path, "a theta file (--theta takes a search's "
                           "theta-result/epoch_N_theta.txt)")
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        _, _, values = line.partition(":")
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
