"""Classifier heads from stock MXNet operators: softmax (FC), AM-Softmax, ArcFace.

Each head returns two logit symbols: ``train`` (with the margin on the target class, used
by the loss) and ``plain`` (no margin, no label; used for accuracy and deployment). For
the softmax head they are the same FC output.

* AM-Softmax (Wang et al., 2018, eq. 4): ``s * (cos(theta_j) - m * [j == y])``.
* ArcFace (Deng et al., 2019, eq. 3): ``s * cos(theta_y + m)`` for the target class and
  ``s * cos(theta_j)`` elsewhere. The cosine is clipped to ``[-1 + eps, 1 - eps]`` before
  ``arccos``, whose derivative is infinite at +-1 (docs/mxnet-notes.md).
"""
from dataclasses import asdict, dataclass
from typing import Optional

from ..errors import FBNetError

HEAD_DEFAULTS = {
    "softmax": {},
    "amsoftmax": {"s": 30.0, "m": 0.3},
    "arcface": {"s": 64.0, "m": 0.5},
}
ARCCOS_EPS = 1e-5
CLASSIFIER = "classifier"  # name prefix of every head operator and parameter


@dataclass(frozen=True)
class HeadConfig:
    """Head settings carried in an architecture JSON.

    ``feature_dim``: size of the embedding FC before the head; ``None`` uses the
    preset's default (192 for ``seed``, none for ``paper``); ``0`` means no embedding.
    ``s``/``m``: scale and margin of the margin heads (``None``: the head's default).
    """

    type: str = "softmax"
    feature_dim: Optional[int] = None
    s: Optional[float] = None
    m: Optional[float] = None

    def __post_init__(self):
        if self.type not in HEAD_DEFAULTS:
            raise FBNetError("unknown head (model type) %r; choose one of: %s"
                             % (self.type, ", ".join(HEAD_DEFAULTS)))
        if self.feature_dim is not None and (not isinstance(self.feature_dim, int)
                                             or self.feature_dim < 0):
            raise FBNetError("feature_dim must be a non-negative integer (0: no embedding), "
                             "got %r" % (self.feature_dim,))
        if self.type == "softmax" and (self.s is not None or self.m is not None):
            raise FBNetError("the softmax head has no scale or margin; remove s/m or "
                             "choose amsoftmax or arcface")

    @property
    def scale(self):
        return HEAD_DEFAULTS[self.type].get("s") if self.s is None else float(self.s)

    @property
    def margin(self):
        return HEAD_DEFAULTS[self.type].get("m") if self.m is None else float(self.m)

    def to_dict(self):
        return {k: v for k, v in asdict(self).items() if v is not None or k == "type"}


def _mul_scalar(x, scalar, name):
    import mxnet as mx
    return mx.sym._internal._mul_scalar(x, scalar=float(scalar), name=name)


def build_head(features, label, num_classes, in_dim, config):
    """Build the head on ``features`` (N, in_dim).

    Returns
    -------
    (train_logits, plain_logits) : tuple of Symbol
    """
    # MXNet is imported here, not above: the settings read HEAD_DEFAULTS before a command
    # has chosen MXNet's thread count, which must happen before MXNet loads (threads.py)
    import mxnet as mx
    if config.type == "softmax":
        logits = mx.sym.FullyConnected(features, num_hidden=num_classes, name=CLASSIFIER)
        return logits, logits

    s, m = config.scale, config.margin
    p = CLASSIFIER
    emb = mx.sym.L2Normalization(features, mode="instance", name=p + "_emb_norm")
    weight = mx.sym.Variable(p + "_weight", shape=(num_classes, in_dim), dtype="float32",
                             init=mx.init.Xavier(magnitude=2))
    weight = mx.sym.L2Normalization(weight, mode="instance", name=p + "_weight_norm")
    cos = mx.sym.FullyConnected(emb, weight=weight, no_bias=True, num_hidden=num_classes,
                                name=p + "_cos")
    plain = _mul_scalar(cos, s, p + "_logits")
    onehot = mx.sym.one_hot(label, depth=num_classes, name=p + "_onehot")
    if config.type == "amsoftmax":
        margined = mx.sym.elemwise_sub(cos, _mul_scalar(onehot, m, p + "_margin"),
                                       name=p + "_cos_m")
    else:  # arcface
        clipped = mx.sym.clip(cos, -1.0 + ARCCOS_EPS, 1.0 - ARCCOS_EPS, name=p + "_clip")
        angle = mx.sym.arccos(clipped, name=p + "_angle")
        angle = mx.sym._internal._plus_scalar(angle, scalar=float(m), name=p + "_angle_m")
        target = mx.sym.cos(angle, name=p + "_target")
        delta = mx.sym.elemwise_mul(onehot, mx.sym.elemwise_sub(target, cos, name=p + "_diff"),
                                    name=p + "_delta")
        margined = mx.sym.elemwise_add(cos, delta, name=p + "_cos_m")
    train = _mul_scalar(margined, s, p + "_train_logits")
    return train, plain
