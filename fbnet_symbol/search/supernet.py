"""The FBNet supernet: every searchable layer is a Gumbel-softmax mixture of its candidates.

For layer ``l`` with candidates ``i`` (paper, section 3.3):

    m_l = softmax((theta_l + g_l) / T)          g_l ~ Gumbel(0, 1)
    x_{l+1} = sum_i m_{l,i} * block_{l,i}(x_l)
    LAT = sum_l sum_i m_{l,i} * LUT[l][i]

Loss per sample (``add`` is the seed's form, ``mul`` the paper's, ``relative`` ours):

    add:       CE + alpha * log(1 + LAT) ** beta
    mul:       CE * alpha * log(1 + LAT) ** beta
    relative:  CE + alpha * log(LAT / LAT_ref)

``relative`` does not depend on the table's unit or scale: its gradient is ``alpha *
dLAT / LAT``, so ``alpha`` is the cross-entropy (nats) traded for an e-fold change of the
expected latency (``alpha * ln 2`` per halving) on a phone, a GPU or this CPU alike.
``LAT_ref`` — the expected latency of the uniform distribution — only makes the term 0 at
the start (it does not change the gradient).

The paper writes ``log(LAT)``; with a table whose total is under 1 ms ``log(LAT) <= 0`` and
``log(LAT) ** 0.6`` is NaN. ``log(1 + LAT)`` is positive and smooth for every positive
table, and within 2% of ``log(LAT)`` from 20 ms up, so it is used everywhere.

With one noise draw per batch (the default) the weighting is folded into the blocks:
``m_i * (f_i(x) + x)`` summed over the candidates equals ``sum_i f_i(x; m_i) + x``, where
``f_i(x; m_i)`` is the block without its residual add and with ``m_i`` multiplying the
parameters of its last linear step (:data:`~fbnet_symbol.space.blocks.SCALABLE_OPS`), and the
identity candidate costs nothing. The θ gradient is unchanged (the shared residual adds the
same constant to every ``dL/dm_i``, which the softmax's Jacobian removes); no feature map is
multiplied, and none is kept for that product's backward pass. Blocks that cannot take the
weight (SE gates are not linear) and per-sample noise use the plain weighted sum.

The graph's inputs besides ``data``/``softmax_label`` are fed by the search loop:
``gumbel`` (noise for all layers, one row per batch or one per sample), ``temperature``,
``lut`` (the table, flattened) and ``sample_weight`` (0 for the padding rows of a last,
partial batch). Noise and table have no batch axis in per-batch mode, so every device
gets the same copy and 1 or N devices compute the same thing. Architecture parameters are
the variables named ``theta_<layer>`` (:data:`THETA_PREFIX`).
"""
import mxnet as mx
import numpy as np

from ..errors import FBNetError
from ..space.blocks import residual_add
from ..space.heads import HeadConfig, build_head
from ..space.network import (DATA_NAME, LABEL_NAME, SAMPLE_WEIGHT, build_block, build_trunk,
                             can_fold_weights, check_num_classes, cross_entropy, padding_weights)
from ..space.spaces import decode_space
from ..train.run_env import derived_seed
from . import theta as theta_

THETA_PREFIX = theta_.THETA_PREFIX
GUMBEL, TEMPERATURE, LUT = "gumbel", "temperature", "lut"
LOSS_FORMS = ("add", "mul", "relative")
NOISE_MODES = ("batch", "sample")


def gumbel_noise(rng, shape, eps=1e-10):
    """Standard Gumbel samples ``-log(-log(u))``, ``u ~ U(eps, 1 - eps)``."""
    u = rng.uniform(eps, 1.0 - eps, size=shape)
    return -np.log(-np.log(u))


def step_rng(seed, step, stream=0):
    """The NumPy generator of a step's noise: a pure function of (run seed, global step,
    stream), the same in an uninterrupted and a resumed run."""
    return np.random.RandomState(derived_seed(seed, step, stream))


class Supernet:
    """Builds the supernet symbol of any registered space (``space``); :class:`FBNet` and
    :class:`FBNet_SE` are the seed's names for the two shipped ones.

    Parameters
    ----------
    num_classes : int
    lut : LatencyTable
        Checked against the decoded space.
    preset, image_shape, width_mult : see :func:`~fbnet_symbol.space.spaces.decode_space`
    head : HeadConfig
    feature_dim : int, optional
        Embedding size; ``None``: the preset's; ``0``: none.
    alpha, beta : float
        Latency-loss parameters (paper: 0.2, 0.6).
    loss_form : {'add', 'mul', 'relative'}
    noise_mode : {'batch', 'sample'}
        One Gumbel draw per layer per batch or per sample.
    theta_init : float
        Initial value of every theta entry (the seed's: 1.0, i.e. uniform).
    space : str
        A name of :data:`~fbnet_symbol.space.spaces.SPACES` (set by the subclasses).

    A search's values of these parameters are its settings
    (:class:`~fbnet_symbol.settings.Settings`), passed on by
    :func:`fbnet_symbol.search.task.build_supernet`.
    """

    space = None

    def __init__(self, num_classes, lut, preset, image_shape=None, width_mult=1.0,
                 head=None, feature_dim=None, *, alpha, beta, loss_form, noise_mode, theta_init,
                 space=None):
        self.space = space or self.space
        check_num_classes(num_classes)
        if loss_form not in LOSS_FORMS:
            raise FBNetError("unknown --loss-form %r; choose add (the seed's), mul (the "
                             "paper's) or relative" % (loss_form,))
        if noise_mode not in NOISE_MODES:
            raise FBNetError("unknown Gumbel noise mode %r; choose batch or sample"
                             % (noise_mode,))
        self.layout = decode_space(self.space, preset, image_shape, width_mult)
        self.num_classes = num_classes
        self.head = head or HeadConfig()
        self.feature_dim = (self.layout.preset.feature_dim or 0) if feature_dim is None \
            else feature_dim
        self.alpha, self.beta = float(alpha), float(beta)
        self.loss_form, self.noise_mode = loss_form, noise_mode
        self.theta_init = float(theta_init)
        self.lut = lut.check(self.layout)
        sizes = [len(l.candidates) for l in self.layout.layers]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        self.lut_vector = np.concatenate([np.asarray(r, dtype=np.float32)
                                          for r in self.lut.values])[None, :]
        # E[LAT] of the uniform distribution: the scale of the relative loss form
        self.reference_latency = float(sum(np.mean(r) for r in self.lut.values))
        self._symbol = None

    # ------------------------------------------------------------ names
    @property
    def theta_names(self):
        return theta_.theta_names(self.layout)

    @property
    def input_names(self):
        return [DATA_NAME, GUMBEL, TEMPERATURE, LUT, SAMPLE_WEIGHT]

    @property
    def num_choices(self):
        return int(self.offsets[-1])

    # ------------------------------------------------------------ graph
    @property
    def symbol(self):
        if self._symbol is None:
            self._symbol = self._build()
        return self._symbol

    def _build(self):
        layout = self.layout
        data = mx.sym.Variable(DATA_NAME)
        label = mx.sym.Variable(LABEL_NAME)
        gumbel = mx.sym.Variable(GUMBEL)
        temperature = mx.sym.Variable(TEMPERATURE)
        lut = mx.sym.Variable(LUT)
        weight = mx.sym.Variable(SAMPLE_WEIGHT)
        layer_latency = []

        def mixture(x, layer):
            k, start = len(layer.candidates), int(self.offsets[layer.index])
            p = layer.name + "_mix"
            theta = mx.sym.Variable(THETA_PREFIX + layer.name, shape=(1, k), dtype="float32",
                                    init=mx.init.Constant(self.theta_init))
            noise = mx.sym.slice_axis(gumbel, axis=1, begin=start, end=start + k,
                                      name=p + "_noise")
            logits = mx.sym.broadcast_div(mx.sym.broadcast_add(theta, noise, name=p + "_perturb"),
                                          temperature, name=p + "_anneal")
            m = mx.sym.softmax(logits, axis=1, name=p + "_weights")  # (1 or N, k)
            costs = mx.sym.slice_axis(lut, axis=1, begin=start, end=start + k, name=p + "_lut")
            layer_latency.append(mx.sym.sum(mx.sym.broadcast_mul(m, costs), axis=1,
                                            name=p + "_latency"))
            weights = [mx.sym.slice_axis(m, axis=1, begin=i, end=i + 1, name="%s_w%d" % (p, i))
                       for i in range(k)]
            if self.noise_mode == "batch" and can_fold_weights(layout, layer):
                # sum_i m_i * (f_i(x) + x) + m_skip * x  =  sum_i f_i(x; m_i) + x
                # (the m sum to 1); the identity's share is the residual x
                branches = [build_block(x, layout, layer, name, scale=w)
                            for name, w in zip(layer.candidates, weights)
                            if not layout.space.candidate(name).identity]
                out = mx.sym.add_n(*branches, name=p + "_sum")
                return residual_add(out, x, p + "_add") if layer.shapes_match else out
            branches = [self._weighted(build_block(x, layout, layer, name), w, "%s_b%d" % (p, i))
                        for i, (name, w) in enumerate(zip(layer.candidates, weights))]
            return mx.sym.add_n(*branches, name=p + "_sum")

        features, dim = build_trunk(data, layout, mixture, self.feature_dim)
        train_logits, plain_logits = build_head(features, label, self.num_classes, dim, self.head)
        ce = cross_entropy(train_logits, label)
        latency = mx.sym.add_n(*layer_latency, name="latency")  # (1,) or (N,)
        if self.loss_form == "relative":
            lat_term = self.alpha * mx.sym.log(latency / self.reference_latency)
        else:
            lat_term = self.alpha * mx.sym.pow(mx.sym.log1p(latency), self.beta)
        if self.noise_mode == "batch":
            # one value per sample, so the gradient is exact for any device count
            lat_term = mx.sym.broadcast_like(lat_term, ce)
            latency = mx.sym.broadcast_like(latency, ce)
        loss = ce * lat_term if self.loss_form == "mul" else ce + lat_term
        loss = mx.sym.MakeLoss(loss * weight, name="loss")
        return mx.sym.Group([loss, mx.sym.BlockGrad(plain_logits, name="logits_out"),
                             mx.sym.BlockGrad(ce, name="ce_out"),
                             mx.sym.BlockGrad(latency, name="latency_out"),
                             mx.sym.BlockGrad(features, name="embedding_out")])

    def _weighted(self, out, w, name):
        """``w * out`` as a matrix product, so that the backward pass — the gradient of
        ``w`` is a dot product over the whole feature map — runs in BLAS; a broadcast
        multiply reduces it with a slow generic kernel (measured: a third of a step)."""
        if self.noise_mode == "batch":  # w: (1, 1)
            flat = mx.sym.reshape(out, shape=(-1, 1), name=name + "_flat")
            prod = mx.sym.dot(flat, w, name=name + "_dot")
        else:  # w: (N, 1), one weight per sample
            flat = mx.sym.reshape(out, shape=(0, -1, 1), name=name + "_flat")
            prod = mx.sym.batch_dot(flat, mx.sym.reshape(w, shape=(0, 1, 1)), name=name + "_dot")
        return mx.sym.reshape_like(prod, out, name=name)

    # ------------------------------------------------------------ feeding
    def input_descs(self, batch_size):
        """Data descriptors: only ``data``, ``sample_weight`` (and per-sample noise) are split."""
        c, h, w = self.layout.image_shape
        noise_shape = self.noise_shape(batch_size)
        return [
            mx.io.DataDesc(DATA_NAME, (batch_size, c, h, w), layout="NCHW"),
            mx.io.DataDesc(GUMBEL, noise_shape, layout="CX" if self.noise_mode == "batch" else "NC"),
            mx.io.DataDesc(TEMPERATURE, (1, 1), layout="CX"),
            mx.io.DataDesc(LUT, (1, self.num_choices), layout="CX"),
            mx.io.DataDesc(SAMPLE_WEIGHT, (batch_size,), layout="N"),
        ]

    def label_descs(self, batch_size):
        return [mx.io.DataDesc(LABEL_NAME, (batch_size,), layout="N")]

    def batch(self, data, label, noise, temperature, valid=None):
        """A DataBatch for one step. ``valid``: rows that are real (the rest is padding)."""
        n = data.shape[0]
        valid = n if valid is None else valid
        return mx.io.DataBatch(
            data=[data, mx.nd.array(noise), mx.nd.array([[temperature]]),
                  mx.nd.array(self.lut_vector), mx.nd.array(padding_weights(n, valid))],
            label=[label], pad=n - valid)

    def noise_shape(self, batch_size):
        return (1 if self.noise_mode == "batch" else batch_size, self.num_choices)

    # ------------------------------------------------------------ reading theta
    def split_theta(self, arg_params):
        """{layer name: theta vector} from parameters."""
        return theta_.theta_from_params(arg_params, self.layout)


class FBNet(Supernet):
    """The paper's space: 22 searchable layers, 9 candidates (``skip`` where shapes match)."""
    space = "fbnet"


class FBNet_SE(Supernet):  # noqa: N801 (the seed's name)
    """The SE-ResNet-50 shaped space of the seed's FBNet_SE."""
    space = "fbnet_se"
