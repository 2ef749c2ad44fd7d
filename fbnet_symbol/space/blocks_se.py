"""The ``fbnet_se`` space's blocks, stem and tail (SE-ResNet-50 shaped, pre-activation).

All blocks are pre-activation residual blocks (He et al., "Identity Mappings in Deep
Residual Networks"): BN -> ReLU before each conv, and a 1x1 projection of the
pre-activated input where the shapes change. Grouped candidates shuffle channels after
each grouped conv that feeds another grouped conv, so information crosses the groups
(the seed meant to and shuffled the wrong tensor).
"""
import mxnet as mx

from .blocks import batchnorm, channel_shuffle, conv, global_avg_pool, relu, residual_add

BOTTLENECK_RATIO = 0.25   # bottleneck width = out_channels * 0.25 (ResNet-50)
SE_RATIO = 0.125          # SE reduction: hidden units = channels * 0.125
DEFORM_GROUPS = 1


def _bn_relu(x, name):
    return relu(batchnorm(x, name + "_bn"), name + "_relu")


def squeeze_excite(data, channels, prefix):
    """SE (Hu et al.): global pool -> 1x1 conv (x0.125) -> ReLU -> 1x1 conv -> sigmoid -> scale."""
    s = mx.sym.Pooling(data=data, global_pool=True, kernel=(1, 1), pool_type="avg",
                       name=prefix + "_se_pool")
    s = conv(s, prefix + "_se_reduce", max(1, int(channels * SE_RATIO)), 1, no_bias=False)
    s = relu(s, prefix + "_se_relu")
    s = conv(s, prefix + "_se_expand", channels, 1, no_bias=False)
    s = mx.sym.Activation(s, act_type="sigmoid", name=prefix + "_se_sigmoid")
    return mx.sym.broadcast_mul(data, s, name=prefix + "_se_scale")


def _shortcut(data, pre, layer, prefix):
    if layer.shapes_match:
        return data
    return conv(pre, prefix + "_sc", layer.out_channels, 1, layer.stride)


def bottleneck(data, layer, prefix, bn_inside, group=1, deformable=False):
    """Pre-activation bottleneck: 1x1 -> 3x3 (stride) -> 1x1, width out*0.25.

    ``group=2`` groups all three convs with a shuffle between them; ``deformable``
    replaces the 3x3 by a deformable conv whose offsets start at zero (so it starts as
    a plain conv).
    """
    mid = max(group, int(layer.out_channels * BOTTLENECK_RATIO))
    pre = _bn_relu(data, prefix + "_pre")
    x = conv(pre, prefix + "_conv1", mid, 1, group=group)
    if group > 1:
        x = channel_shuffle(x, group, prefix + "_shuffle1", mid, layer.in_hw)
    x = _bn_relu(x, prefix + "_conv1")
    if deformable:
        offset = conv(x, prefix + "_offset", 2 * 3 * 3 * DEFORM_GROUPS, 3, layer.stride,
                      no_bias=False,
                      weight=mx.sym.Variable(prefix + "_offset_weight", init=mx.init.Zero()),
                      bias=mx.sym.Variable(prefix + "_offset_bias", init=mx.init.Zero()))
        x = mx.sym.contrib.DeformableConvolution(
            data=x, offset=offset, num_filter=mid, kernel=(3, 3),
            stride=(layer.stride, layer.stride), pad=(1, 1),
            num_deformable_group=DEFORM_GROUPS, no_bias=True, name=prefix + "_conv2")
    else:
        x = conv(x, prefix + "_conv2", mid, 3, layer.stride, group=group)
        if group > 1:
            x = channel_shuffle(x, group, prefix + "_shuffle2", mid, layer.out_hw)
    x = _bn_relu(x, prefix + "_conv2")
    x = conv(x, prefix + "_conv3", layer.out_channels, 1, group=group)
    return residual_add(x, _shortcut(data, pre, layer, prefix), prefix + "_add")


def basic(data, layer, prefix, bn_inside, group=1, se=False):
    """Pre-activation basic block: two 3x3 convs (first with the stride), optional SE."""
    pre = _bn_relu(data, prefix + "_pre")
    x = conv(pre, prefix + "_conv1", layer.out_channels, 3, layer.stride, group=group)
    if group > 1:
        x = channel_shuffle(x, group, prefix + "_shuffle1", layer.out_channels, layer.out_hw)
    x = _bn_relu(x, prefix + "_conv1")
    x = conv(x, prefix + "_conv2", layer.out_channels, 3, group=group)
    if se:
        x = squeeze_excite(x, layer.out_channels, prefix)
    return residual_add(x, _shortcut(data, pre, layer, prefix), prefix + "_add")


OPS = {
    "bottleneck": bottleneck,
    "basic": basic,
}
# no op takes a folded mixture weight: SE gates are not linear in the block's last conv
SCALABLE_OPS = frozenset()


def stem(data, layout):
    """3x3 conv to 64 channels (stride 1 seed / 2 paper) -> BN -> ReLU -> 3x3/2 max-pool."""
    x = conv(data, "stem_conv", layout.stem_channels, 3, layout.preset.stem_stride)
    x = relu(batchnorm(x, "stem_bn"), "stem_relu")
    return mx.sym.Pooling(data=x, kernel=(3, 3), stride=(2, 2), pad=(1, 1),
                          pool_type="max", name="stem_pool")


def before_layer(data, layer, layout):
    return data  # pre-activation blocks normalise their own input


def tail(data, layout):
    """Final BN -> ReLU of a pre-activation network, then global pooling."""
    x = _bn_relu(data, "tail")
    return global_avg_pool(x, "tail_pool")


def tail_channels(layout):
    return layout.layers[-1].out_channels
