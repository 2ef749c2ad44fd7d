"""Multiply-adds and parameter counts read off a built symbol's inferred shapes.

Nothing here knows how a block is built: every Convolution / DeformableConvolution /
FullyConnected node contributes ``prod(output[1:]) * prod(weight[1:])`` multiply-adds
per sample (for a conv: output elements x input channels per group x kernel area; for an
FC: outputs x inputs), and every learnable argument contributes its size. Element-wise
operators (BN, ReLU, adds, pooling, SE scaling) are not counted, as in the paper's
"multiply-adds" figures. Nodes are grouped by the first ``_``-separated token of their
name (``stem``, ``layer7``, ``tail``, ``embedding``, ``classifier``).
"""
import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Tuple

import numpy as np

from .architecture import load_architecture
from .network import DATA_NAME, LABEL_NAME, build_network

MAC_OPS = ("Convolution", "_contrib_DeformableConvolution", "FullyConnected")


def group_of(name):
    return name.split("_", 1)[0]


@dataclass
class GroupCount:
    macs: int = 0
    params: int = 0
    out_shape: Tuple[int, ...] = ()


def count_symbol(sym, data_shape, input_names=(DATA_NAME, LABEL_NAME)):
    """Count multiply-adds and parameters of ``sym`` for one sample.

    Parameters
    ----------
    sym : Symbol
    data_shape : tuple
        ``(C, H, W)`` of one sample.

    Returns
    -------
    OrderedDict group -> GroupCount, in graph order.
    """
    internals = sym.get_internals()
    shapes = {DATA_NAME: (1,) + tuple(data_shape)}
    if LABEL_NAME in sym.list_arguments():
        shapes[LABEL_NAME] = (1,)
    arg_shapes, out_shapes, _ = internals.infer_shape(**shapes)
    args = dict(zip(internals.list_arguments(), arg_shapes))
    outs = dict(zip(internals.list_outputs(), out_shapes))
    nodes = json.loads(sym.tojson())["nodes"]

    def entry_shape(entry):
        node = nodes[entry[0]]
        if node["op"] == "null":
            return args[node["name"]]
        return outs[node["name"] + "_output"]

    groups = OrderedDict()
    for node in nodes:
        if node["op"] == "null":
            continue
        g = groups.setdefault(group_of(node["name"]), GroupCount())
        out = outs[node["name"] + "_output"]
        g.out_shape = tuple(out[1:])
        if node["op"] in MAC_OPS:
            weight = entry_shape(node["inputs"][1])
            g.macs += int(np.prod(out[1:])) * int(np.prod(weight[1:]))
    for name, shape in args.items():
        if name in input_names:
            continue
        groups.setdefault(group_of(name), GroupCount()).params += int(np.prod(shape))
    return groups


def profile_architecture(arch, num_classes, image_shape=None):
    """Per-layer table of an architecture's inference graph.

    Returns
    -------
    dict with ``rows`` (one per part: stem, each searchable layer, tail, embedding,
    classifier — each with ``part``, ``block``, ``out_shape``, ``macs``, ``params``) and
    the totals ``macs`` and ``params``.
    """
    arch = load_architecture(arch)
    layout = arch.layout(image_shape)
    sym = build_network(arch, num_classes, layout.image_shape, mode="logits")
    groups = count_symbol(sym, layout.image_shape)

    parts = [("stem", "conv3x3")]
    parts += [(layer.name, arch.blocks[layer.index]) for layer in layout.layers]
    parts += [("tail", "last conv + pool" if layout.last_channels else "bn-relu + pool")]
    if arch.feature_dim:
        parts.append(("embedding", "fc %d" % arch.feature_dim))
    parts.append(("classifier", arch.head.type))

    rows, shape = [], tuple(layout.image_shape)
    for part, block in parts:
        g = groups.pop(part, GroupCount(out_shape=shape))  # a bare skip has no nodes
        shape = g.out_shape or shape
        rows.append({"part": part, "block": block, "out_shape": list(shape),
                     "macs": g.macs, "params": g.params})
    if groups:  # every node must belong to a known part: names are part of the contract
        raise AssertionError("nodes outside any part: %s" % ", ".join(groups))
    return {"rows": rows, "macs": sum(r["macs"] for r in rows),
            "params": sum(r["params"] for r in rows)}
