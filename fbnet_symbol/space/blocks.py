"""Symbol primitives and the ``fbnet`` space's blocks, stem and tail.

Every function is pure: ``(symbol, layer spec, prefix, ...) -> symbol``. Names are
derived from ``prefix`` (``layer<N>_<candidate>``), so the same layer and candidate get the
same parameter names in the supernet and in a child network, and checkpoints stay
loadable across versions.

Block registry: ``OPS`` maps the ``op`` of a :class:`~fbnet_symbol.space.spaces.Candidate`
to its function; the candidate's ``params`` are passed as keyword arguments.
"""
import mxnet as mx

BN_EPS = 2e-5
BN_MOMENTUM = 0.9


# ---------------------------------------------------------------- primitives

def conv(data, name, num_filter, kernel=1, stride=1, group=1, no_bias=True,
         weight=None, bias=None):
    """Square 'same'-padded convolution (odd kernels), named ``name``."""
    kwargs = {}
    if weight is not None:
        kwargs["weight"] = weight
    if bias is not None:
        kwargs["bias"] = bias
    return mx.sym.Convolution(data=data, num_filter=num_filter, kernel=(kernel, kernel),
                              stride=(stride, stride), pad=(kernel // 2, kernel // 2),
                              num_group=group, no_bias=no_bias, name=name, **kwargs)


def batchnorm(data, name, gamma=None, beta=None):
    kwargs = {}
    if gamma is not None:
        kwargs.update(gamma=gamma, beta=beta)
    return mx.sym.BatchNorm(data=data, fix_gamma=False, eps=BN_EPS, momentum=BN_MOMENTUM,
                            name=name, **kwargs)


def relu(data, name):
    return mx.sym.Activation(data=data, act_type="relu", name=name)


def channel_shuffle(data, groups, name, channels=None, hw=None):
    """ShuffleNet channel shuffle: (N, g*c, H, W) -> view (N, g, c, H, W) -> swap -> flatten.

    With ``channels`` and ``hw`` known the reshapes are written with explicit sizes, which
    the ONNX exporter understands; without them ``reshape(0, -4, g, -1, -2)`` splits the
    channel axis (the shorter ``reshape(0, g, -1, -2)`` does not give that shape, and
    the exporter does not support ``-4``; docs/mxnet-notes.md).
    """
    if channels is not None and hw is not None:
        split = (0, groups, channels // groups) + tuple(hw)
        merged = (0, channels) + tuple(hw)
    else:
        split, merged = (0, -4, groups, -1, -2), (0, -3, -2)
    x = mx.sym.reshape(data, shape=split, name=name + "_split")
    x = mx.sym.swapaxes(x, dim1=1, dim2=2, name=name + "_swap")
    return mx.sym.reshape(x, shape=merged, name=name + "_merge")


def residual_add(branch, shortcut, name):
    return mx.sym.elemwise_add(branch, shortcut, name=name)


def global_avg_pool(data, name):
    x = mx.sym.Pooling(data=data, global_pool=True, kernel=(1, 1), pool_type="avg",
                       name=name)
    return mx.sym.flatten(x, name=name + "_flatten")


# ---------------------------------------------------------------- fbnet blocks

def inverted_residual(data, layer, prefix, bn_inside, kernel, expansion, group, scale=None):
    """The FBNet candidate block (paper, Fig. 3).

    1x1 (group) conv expanding by ``expansion`` -> ReLU -> shuffle if grouped -> kxk
    depthwise conv with the layer's stride -> ReLU -> 1x1 (group) conv to the output
    channels (no ReLU) -> shuffle if grouped; residual add when shapes match. The first
    1x1 conv exists also at expansion 1, as in the paper's count. With ``bn_inside``
    (paper preset) each conv is followed by BN; the seed preset has none inside.

    ``scale`` (a ``(1, 1)`` symbol; see :data:`SCALABLE_OPS`): return ``scale`` times the
    block *without* its residual add. The scale multiplies the parameters of the last
    linear step — the last conv's weight and bias, or the last BN's gamma and beta — so
    the supernet weights a candidate without multiplying (and keeping for the backward
    pass) a whole feature map.
    """
    mid = layer.in_channels * expansion
    use_bias = not bn_inside  # a conv not followed by BN keeps its bias

    def conv_bn(x, suffix, channels, k, stride, groups, act, last=False):
        name = prefix + suffix
        scaled = scale is not None and last  # only the last step takes the scale
        weight = bias = None
        if scaled and not bn_inside:  # the last conv reads the `mid` channels
            weight = _scaled(name + "_weight", (channels, mid // groups, k, k), scale)
            bias = _scaled(name + "_bias", (channels,), scale)
        x = conv(x, name, channels, k, stride, groups, no_bias=not use_bias,
                 weight=weight, bias=bias)
        if bn_inside:
            gamma = beta = None
            if scaled:
                gamma = _scaled(name + "_bn_gamma", (channels,), scale)
                beta = _scaled(name + "_bn_beta", (channels,), scale)
            x = batchnorm(x, name + "_bn", gamma=gamma, beta=beta)
        return relu(x, name + "_relu") if act else x

    x = conv_bn(data, "_pw1", mid, 1, 1, group, act=True)
    if group > 1:
        x = channel_shuffle(x, group, prefix + "_shuffle1", mid, layer.in_hw)
    x = conv_bn(x, "_dw", mid, kernel, layer.stride, mid, act=True)
    x = conv_bn(x, "_pw2", layer.out_channels, 1, 1, group, act=False, last=True)
    if group > 1:
        x = channel_shuffle(x, group, prefix + "_shuffle2", layer.out_channels, layer.out_hw)
    if layer.shapes_match and scale is None:
        x = residual_add(x, data, prefix + "_add")
    return x


def _scaled(name, shape, scale):
    """The parameter ``name`` (declared with its shape) times the ``(1, 1)`` symbol ``scale``.

    Written as a (n, 1) x (1, 1) matrix product: its backward pass is two tiny BLAS calls,
    where a broadcast multiply's reduction took ~0.3 ms per parameter (measured).
    """
    var = mx.sym.Variable(name, shape=shape)
    column = mx.sym.reshape(var, shape=(-1, 1), name=name + "_column")
    product = mx.sym.dot(column, scale, name=name + "_dot")
    return mx.sym.reshape(product, shape=shape, name=name + "_scaled")


def skip(data, layer, prefix, bn_inside):
    """Identity; only offered where input and output shapes match."""
    return data


OPS = {
    "ir": inverted_residual,
    "skip": skip,
}

# Ops whose function takes ``scale`` and then returns ``scale * (block - residual)``:
# the supernet folds a candidate's mixture weight into its parameters (exact: every
# operation after the scaled step is linear). Identity candidates need no op at all.
SCALABLE_OPS = frozenset({"ir"})


# ---------------------------------------------------------------- fixed parts

def stem(data, layout):
    """3x3 conv to 16 channels (stride 2 in the paper, 1 in the seed)."""
    x = conv(data, "stem_conv", layout.stem_channels, 3, layout.preset.stem_stride,
             no_bias=layout.preset.bn_inside_blocks)
    if layout.preset.bn_inside_blocks:
        x = batchnorm(x, "stem_bn")
    return relu(x, "stem_relu")


def before_layer(data, layer, layout):
    """The seed preset's BatchNorm in front of every searchable layer."""
    if layout.preset.bn_inside_blocks:
        return data
    return batchnorm(data, layer.name + "_prebn")


def tail(data, layout):
    """Last conv and global pooling.

    Paper: 1x1 conv -> BN -> ReLU. Seed: BN -> ReLU -> 3x3 conv (pre-activation, like
    its searchable layers). The 3x3 conv is padded so any input size works (the seed's
    was unpadded, which needs at least 3x3 maps).
    """
    k = layout.preset.last_conv_kernel
    if layout.preset.bn_inside_blocks:
        x = conv(data, "tail_conv", layout.last_channels, k)
        x = relu(batchnorm(x, "tail_bn"), "tail_relu")
    else:
        x = relu(batchnorm(data, "tail_bn"), "tail_relu")
        x = conv(x, "tail_conv", layout.last_channels, k, no_bias=False)
    return global_avg_pool(x, "tail_pool")


def tail_channels(layout):
    return layout.last_channels
