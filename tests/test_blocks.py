"""Every candidate of both spaces: shape inference and forward/backward on a tiny input."""
import mxnet as mx
import numpy as np
import pytest

from fbnet_symbol.space import blocks, blocks_se
from fbnet_symbol.space.network import block_prefix, build_block
from fbnet_symbol.space.spaces import Layer, decode_space, get_space

BATCH = 2


def tiny_layer(in_c, out_c, stride, hw=8):
    out_hw = (-(-hw // stride),) * 2
    return Layer(index=0, stage=1, position=0, in_channels=in_c, out_channels=out_c,
                 stride=stride, in_hw=(hw, hw), out_hw=out_hw,
                 shapes_match=(stride == 1 and in_c == out_c), candidates=())


SHAPES = {"down": tiny_layer(8, 16, 2), "same": tiny_layer(16, 16, 1)}
CASES = [(space, preset, cand.name, shape)
         for space in ("fbnet", "fbnet_se")
         for preset in (("seed", "paper") if space == "fbnet" else ("seed",))
         for cand in get_space(space).candidates
         for shape in SHAPES
         if not (cand.identity and shape == "down")]


def run_forward_backward(sym, data_shape, seed=0):
    rng = np.random.RandomState(seed)
    exe = sym.simple_bind(mx.cpu(), data=data_shape, grad_req="write")
    for name, arr in exe.arg_dict.items():
        arr[:] = rng.normal(0, 1 if name == "data" else 0.3, arr.shape)
        if name.endswith("_bias"):  # keep ReLUs after biased convs (SE) alive
            arr[:] = 0.5 + abs(arr)
    for name, arr in exe.aux_dict.items():
        arr[:] = 1.0 if name.endswith("moving_var") else 0.0
    out = exe.forward(is_train=True)[0]
    exe.backward(mx.nd.ones(out.shape))
    return exe, out.asnumpy()


@pytest.mark.parametrize("space,preset,candidate,shape", CASES,
                         ids=["%s-%s-%s-%s" % c for c in CASES])
def test_candidate_shape_forward_backward(space, preset, candidate, shape):
    layout = decode_space(space, preset)
    layer = SHAPES[shape]
    data = mx.sym.Variable("data")
    sym = build_block(data, layout, layer, candidate)
    data_shape = (BATCH, layer.in_channels) + layer.in_hw
    _, out_shapes, _ = sym.infer_shape(data=data_shape)
    assert out_shapes[0] == (BATCH,) + layer.out_shape
    if candidate == "skip":
        return
    exe, out = run_forward_backward(sym, data_shape)
    assert np.isfinite(out).all()
    prefix = block_prefix(layer, candidate)
    for name, grad in exe.grad_dict.items():
        if name == "data":
            continue
        assert name.startswith(prefix + "_"), name  # stable, derived names
        g = grad.asnumpy()
        assert np.isfinite(g).all(), name
        assert np.abs(g).sum() > 0, "no gradient reaches %s" % name


def test_skip_is_identity():
    layout = decode_space("fbnet", "paper")
    data = mx.sym.Variable("data")
    assert build_block(data, layout, SHAPES["same"], "skip") is data


def test_seed_preset_has_no_bn_inside_and_paper_has():
    data = mx.sym.Variable("data")
    seed = build_block(data, decode_space("fbnet", "seed"), SHAPES["same"], "k3_e3")
    paper = build_block(data, decode_space("fbnet", "paper"), SHAPES["same"], "k3_e3")
    assert not [a for a in seed.list_auxiliary_states()]
    assert len(paper.list_auxiliary_states()) == 6  # three BNs x (mean, var)


def test_channel_shuffle_matches_numpy():
    x = np.arange(2 * 6 * 2 * 3, dtype=np.float32).reshape(2, 6, 2, 3)
    for g in (2, 3):
        sym = blocks.channel_shuffle(mx.sym.Variable("data"), g, "s")
        got = sym.eval(ctx=mx.cpu(), data=mx.nd.array(x))[0].asnumpy()
        n, c, h, w = x.shape
        want = x.reshape(n, g, c // g, h, w).transpose(0, 2, 1, 3, 4).reshape(n, c, h, w)
        np.testing.assert_array_equal(got, want)
        # the explicit-shape form (what the ONNX exporter understands) is the same
        explicit = blocks.channel_shuffle(mx.sym.Variable("data"), g, "e", c, (h, w))
        np.testing.assert_array_equal(
            explicit.eval(ctx=mx.cpu(), data=mx.nd.array(x))[0].asnumpy(), want)
    # channel order after shuffling 6 channels in 2 groups: 0 3 1 4 2 5
    got = blocks.channel_shuffle(mx.sym.Variable("data"), 2, "s").eval(
        ctx=mx.cpu(), data=mx.nd.array(x))[0].asnumpy()
    np.testing.assert_array_equal(got[0, :, 0, 0], x[0, [0, 3, 1, 4, 2, 5], 0, 0])


def test_deformable_bottleneck_starts_as_plain_bottleneck():
    layer = tiny_layer(16, 32, 2)
    data = mx.sym.Variable("data")
    plain = blocks_se.bottleneck(data, layer, "b", False)
    deform = blocks_se.bottleneck(data, layer, "b", False, deformable=True)
    shape = (BATCH, 16, 8, 8)
    rng = np.random.RandomState(1)
    args = {n: mx.nd.array(rng.normal(0, 0.3, s)) for n, s in
            zip(plain.list_arguments(), plain.infer_shape(data=shape)[0])}
    aux = {n: mx.nd.ones(s) if n.endswith("var") else mx.nd.zeros(s)
           for n, s in zip(plain.list_auxiliary_states(), plain.infer_shape(data=shape)[2])}
    # the offset conv is initialised to zero: a deformable conv with zero offsets is a conv
    init = {}
    for name in deform.list_arguments():
        if "offset" in name:
            arr = mx.nd.ones((1,))
            mx.init.create(deform.attr_dict()[name]["__init__"])(mx.init.InitDesc(name), arr)
            init[name] = arr
    assert all((v.asnumpy() == 0).all() for v in init.values()) and len(init) == 2
    dshapes = dict(zip(deform.list_arguments(), deform.infer_shape(data=shape)[0]))
    dargs = dict(args)
    for name in init:
        dargs[name] = mx.nd.zeros(dshapes[name])
    a = plain.bind(mx.cpu(), args, aux_states=aux).forward()[0].asnumpy()
    b = deform.bind(mx.cpu(), dargs, aux_states=dict(aux)).forward()[0].asnumpy()
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
