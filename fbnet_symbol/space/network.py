"""Build networks from a decoded space: one trunk builder shared by every consumer.

:func:`build_trunk` walks a :class:`~fbnet_symbol.space.spaces.Layout` — stem, then each
searchable layer through a caller-supplied ``layer_fn``, then the tail and the embedding.
A child network passes a ``layer_fn`` that builds its one chosen block; the supernet
passes one that builds the Gumbel-softmax mixture of all candidates. Shapes and names
therefore agree between the two by construction.
"""
import json

import mxnet as mx
import numpy as np

from ..errors import FBNetError
from .architecture import load_architecture
from .heads import build_head
from .spaces import block_module

DATA_NAME = "data"
LABEL_NAME = "softmax_label"
SAMPLE_WEIGHT = "sample_weight"  # per-row loss weight: 0 for the padding of a last batch
MODES = ("train", "logits", "embedding")


def block_prefix(layer, candidate_name):
    """Stable name prefix of a candidate block: ``layer<N>_<candidate>``."""
    return "%s_%s" % (layer.name, candidate_name)


def build_block(data, layout, layer, candidate_name, scale=None):
    """Build one candidate block at one layer (dispatch through the space's registry).

    ``scale``: only for ops in the space's ``SCALABLE_OPS`` (see :func:`can_fold_weights`).
    """
    candidate = layout.space.candidate(candidate_name)
    fn = block_module(layout.space).OPS[candidate.op]
    extra = {} if scale is None else {"scale": scale}
    return fn(data, layer, block_prefix(layer, candidate_name),
              layout.preset.bn_inside_blocks, **dict(candidate.params, **extra))


def can_fold_weights(layout, layer):
    """Can every candidate of ``layer`` take its mixture weight into its parameters?

    True when each candidate is an identity or an op of the space's ``SCALABLE_OPS``.
    """
    scalable = block_module(layout.space).SCALABLE_OPS
    return all(c.identity or c.op in scalable
               for c in (layout.space.candidate(n) for n in layer.candidates))


def build_trunk(data, layout, layer_fn, feature_dim):
    """Stem -> searchable layers -> tail -> pooled features -> optional embedding.

    Parameters
    ----------
    data : Symbol
    layout : Layout
    layer_fn : callable(Symbol, Layer) -> Symbol
        Builds what sits at one searchable layer.
    feature_dim : int
        Units of the embedding FC (``0``: none, features are the pooled tail).

    Returns
    -------
    (features, dim) : (Symbol, int)
    """
    module = block_module(layout.space)
    x = module.stem(data, layout)
    for layer in layout.layers:
        x = module.before_layer(x, layer, layout)
        x = layer_fn(x, layer)
    x = module.tail(x, layout)
    return build_embedding(x, module.tail_channels(layout), feature_dim)


def build_architecture_trunk(data, arch, layout):
    """:func:`build_trunk` of a fixed architecture: its one chosen block at each layer."""
    return build_trunk(
        data, layout, lambda x, layer: build_block(x, layout, layer, arch.blocks[layer.index]),
        arch.feature_dim)


def build_embedding(features, dim, feature_dim):
    """The seed's embedding FC of ``feature_dim`` units on pooled features (0: none)."""
    if not feature_dim:
        return features, dim
    return mx.sym.FullyConnected(features, num_hidden=feature_dim, name="embedding"), feature_dim


def tail_channels(layout):
    """Width of the pooled features the embedding (or head) reads."""
    return block_module(layout.space).tail_channels(layout)


def padding_weights(n, valid):
    """Per-row loss weights: ``n / valid`` for real rows, 0 for the fill of a last batch,
    so the loss is the mean over the real rows whatever the padding."""
    weight = np.zeros((n,), dtype=np.float32)
    weight[:valid] = float(n) / valid
    return weight


def cross_entropy(train_logits, label):
    """Per-sample softmax cross-entropy (the seed's per-class binary CE is not repeated)."""
    return -mx.sym.pick(mx.sym.log_softmax(train_logits, axis=1), label, axis=1)


def check_num_classes(num_classes):
    if not isinstance(num_classes, int) or num_classes < 2:
        raise FBNetError("number of classes must be an integer >= 2, got %r"
                         % (num_classes,))


def build_network(arch, num_classes, image_shape=None, mode="train"):
    """Build the plain (child) network of an architecture.

    Parameters
    ----------
    arch : Architecture, str or dict
        Anything :func:`~fbnet_symbol.space.architecture.load_architecture` accepts.
    num_classes : int
    image_shape : tuple or str, optional
        ``(C, H, W)``; defaults to the preset's.
    mode : {'train', 'logits', 'embedding'}
        ``train``: ``SoftmaxOutput`` over the margin logits, label ``softmax_label``.
        ``logits``: plain logits (no margin, no label) — the inference graph.
        ``embedding``: the features the head reads (what a margin-head model ships).
    """
    arch = load_architecture(arch)
    if mode not in MODES:
        raise FBNetError("unknown network mode %r; choose one of: %s"
                         % (mode, ", ".join(MODES)))
    check_num_classes(num_classes)
    layout = arch.layout(image_shape)
    features, dim = build_architecture_trunk(mx.sym.Variable(DATA_NAME), arch, layout)
    if mode == "embedding":
        return features
    label = mx.sym.Variable(LABEL_NAME)
    train_logits, plain_logits = build_head(features, label, num_classes, dim, arch.head)
    if mode == "logits":
        return plain_logits
    return mx.sym.SoftmaxOutput(train_logits, label=label, name="softmax")


def output_names(symbol):
    """The graph's outputs by short name, in order: ``logits_out_output`` -> ``logits``,
    ``loss_output`` -> ``loss``. The trainer and the evaluations read outputs by these
    names, never by position."""
    names = []
    for full in symbol.list_outputs():
        name = full[:-len("_output")] if full.endswith("_output") else full
        names.append(name[:-len("_out")] if name.endswith("_out") else name)
    return names


def freeze_batchnorm(sym):
    """The same graph with every BatchNorm using its moving statistics."""
    graph = json.loads(sym.tojson())
    for node in graph["nodes"]:
        if node["op"] == "BatchNorm":
            node.setdefault("attrs", {})["use_global_stats"] = "True"
    return mx.sym.load_json(json.dumps(graph))
