"""A fixed architecture as a trainable graph and as the inference graph users load.

:class:`ChildNet` is what fixed-architecture training binds (per-sample CE and the
logits; no theta, no noise, no latency term) and what it ships:
:meth:`ChildNet.export_deploy` writes the inference graph — class probabilities for the
softmax head; for margin heads the embedding sub-graph (as InsightFace ships), the
classifier weights travelling in the same ``.params`` file. Beside it,
``prefix-input.json`` says what the graph expects (:func:`input_description`), and
:meth:`ChildNet.export_fc1` writes the face-recognition export InsightFace's own code loads.
"""
import json

import mxnet as mx

from ..checkpoint import save_params
from ..fileio import atomic_write, atomic_write_json
from .architecture import load_architecture
from .heads import CLASSIFIER, build_head
from .network import (DATA_NAME, LABEL_NAME, SAMPLE_WEIGHT, build_architecture_trunk,
                      check_num_classes, cross_entropy, padding_weights)
from .spaces import PIXEL_MEAN, PIXEL_SCALE


class ChildNet:
    def __init__(self, arch, num_classes, image_shape=None):
        check_num_classes(num_classes)
        self.arch = load_architecture(arch)
        self.num_classes = num_classes
        self.layout = self.arch.layout(image_shape)
        self._symbol = None

    def _features(self):
        return build_architecture_trunk(mx.sym.Variable(DATA_NAME), self.arch, self.layout)

    @property
    def symbol(self):
        """Training graph: per-sample CE (times the padding weight), logits, CE, and the
        embedding (last output, for face verification)."""
        if self._symbol is None:
            features, dim = self._features()
            label = mx.sym.Variable(LABEL_NAME)
            train, plain = build_head(features, label, self.num_classes, dim, self.arch.head)
            ce = cross_entropy(train, label)
            loss = mx.sym.MakeLoss(ce * mx.sym.Variable(SAMPLE_WEIGHT), name="loss")
            self._symbol = mx.sym.Group([loss, mx.sym.BlockGrad(plain, name="logits_out"),
                                         mx.sym.BlockGrad(ce, name="ce_out"),
                                         mx.sym.BlockGrad(features, name="embedding_out")])
        return self._symbol

    @property
    def input_names(self):
        return [DATA_NAME, SAMPLE_WEIGHT]

    def input_descs(self, batch_size):
        c, h, w = self.layout.image_shape
        return [mx.io.DataDesc(DATA_NAME, (batch_size, c, h, w), layout="NCHW"),
                mx.io.DataDesc(SAMPLE_WEIGHT, (batch_size,), layout="N")]

    def label_descs(self, batch_size):
        return [mx.io.DataDesc(LABEL_NAME, (batch_size,), layout="N")]

    def batch(self, data, label, valid=None):
        """A DataBatch for one step. ``valid``: rows that are real (the rest is padding)."""
        n = data.shape[0]
        valid = n if valid is None else valid
        return mx.io.DataBatch(data=[data, mx.nd.array(padding_weights(n, valid))],
                               label=[label], pad=n - valid)

    # ------------------------------------------------------------ what ships
    def deploy_symbol(self):
        """The inference graph users load: softmax probabilities, or the embedding."""
        features, dim = self._features()
        if self.arch.head.type != "softmax":
            return features
        _, plain = build_head(features, mx.sym.Variable(LABEL_NAME), self.num_classes, dim,
                              self.arch.head)
        return mx.sym.softmax(plain, axis=1, name="prob")

    def deploy_params(self, arg_params, aux_params):
        """Parameters of the deploy graph (plus the classifier weights for margin heads)."""
        names = set(self.deploy_symbol().list_arguments()) | {
            n for n in arg_params if n.startswith(CLASSIFIER)}
        arg = {k: v for k, v in arg_params.items() if k in names}
        aux_names = set(self.deploy_symbol().list_auxiliary_states())
        return arg, {k: v for k, v in aux_params.items() if k in aux_names}

    def export_deploy(self, arg_params, aux_params, prefix, epoch):
        """Write the inference graph as ``prefix-symbol.json`` / ``prefix-%04d.params``
        (``mx.model.load_checkpoint(prefix, epoch)``) and ``prefix-input.json``,
        atomically; returns ``prefix``."""
        arg, aux = self.deploy_params(arg_params, aux_params)
        atomic_write(prefix + "-symbol.json", self.deploy_symbol().tojson())
        save_params("%s-%04d.params" % (prefix, epoch), arg, aux)
        output = "embedding" if self.arch.head.type != "softmax" else "probabilities"
        atomic_write_json(prefix + "-input.json", input_description(
            self.layout.image_shape, output, normalised_inside=False))
        return prefix

    def export_fc1(self, arg_params, aux_params, prefix, epoch):
        """InsightFace's shipping form: input ``data`` of raw 0-255 RGB at the training size,
        the normalisation inside the graph, output ``fc1`` (the embedding), so its
        verification and deployment code (``sym.get_internals()['fc1_output']``) load it
        unchanged. Writes ``prefix-symbol.json``/``-%04d.params``/``-input.json``."""
        data = mx.sym.Variable(DATA_NAME)
        scaled = (data - PIXEL_MEAN) * (1.0 / PIXEL_SCALE)
        features, _ = build_architecture_trunk(scaled, self.arch, self.layout)
        symbol = mx.sym.identity(features, name="fc1")
        names = set(symbol.list_arguments())
        aux_names = set(symbol.list_auxiliary_states())
        atomic_write(prefix + "-symbol.json", symbol.tojson())
        save_params("%s-%04d.params" % (prefix, epoch),
                    {k: v for k, v in arg_params.items() if k in names},
                    {k: v for k, v in aux_params.items() if k in aux_names})
        atomic_write_json(prefix + "-input.json", input_description(
            self.layout.image_shape, "fc1", normalised_inside=True))
        return prefix


def input_description(image_shape, output, normalised_inside):
    """What a stock client needs to feed a shipped graph (``prefix-input.json``)."""
    c, h, w = image_shape
    return {"input": DATA_NAME, "shape": [1, c, h, w], "layout": "NCHW", "channels": "RGB",
            "normalisation": "inside the graph: feed raw 0-255 pixels" if normalised_inside
            else "(x - %g) / %g per channel, before the graph" % (PIXEL_MEAN, PIXEL_SCALE),
            "mean": None if normalised_inside else PIXEL_MEAN,
            "scale": None if normalised_inside else PIXEL_SCALE, "output": output}


def read_input_description(prefix):
    """``prefix-input.json`` as a dict, or None for a graph shipped before it existed."""
    try:
        with open(prefix + "-input.json") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
