"""Heads against an independent numpy computation of the logits and their gradients."""
import mxnet as mx
import numpy as np
import pytest

from fbnet_symbol.errors import FBNetError
from fbnet_symbol.space.heads import ARCCOS_EPS, HeadConfig, build_head

N, D, C = 4, 6, 5


def np_logits(kind, x, w, label, s, m, b=None):
    if kind == "softmax":
        out = x @ w.T + b
        return out, out
    cos = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ \
        (w / np.linalg.norm(w, axis=1, keepdims=True)).T
    onehot = np.eye(C)[label]
    if kind == "amsoftmax":
        margined = cos - m * onehot
    else:
        target = np.cos(np.arccos(np.clip(cos, -1 + ARCCOS_EPS, 1 - ARCCOS_EPS)) + m)
        margined = cos + onehot * (target - cos)
    return s * margined, s * cos


def bind_head(kind, s=None, m=None):
    cfg = HeadConfig(type=kind, s=s, m=m)
    train, plain = build_head(mx.sym.Variable("data"), mx.sym.Variable("softmax_label"),
                              C, D, cfg)
    sym = mx.sym.Group([train, mx.sym.BlockGrad(plain)])
    grad_req = {name: "null" if name == "softmax_label" else "write"
                for name in sym.list_arguments()}
    shapes = {"data": (N, D)}
    if kind != "softmax":
        shapes["softmax_label"] = (N,)
    exe = sym.simple_bind(mx.cpu(), grad_req=grad_req, **shapes)
    return cfg, exe


@pytest.mark.parametrize("kind", ["softmax", "amsoftmax", "arcface"])
def test_logits_and_gradient_match_numpy(kind):
    rng = np.random.RandomState(0)
    cfg, exe = bind_head(kind)
    x = rng.normal(size=(N, D))
    w = rng.normal(size=(C, D))
    b = rng.normal(size=(C,))
    label = np.array([0, 3, 1, 4])
    exe.arg_dict["data"][:] = x
    exe.arg_dict["classifier_weight"][:] = w
    if kind == "softmax":  # the plain FC does not read the label
        exe.arg_dict["classifier_bias"][:] = b
    else:
        exe.arg_dict["softmax_label"][:] = label
    train, plain = [o.asnumpy() for o in exe.forward(is_train=True)]
    want_train, want_plain = np_logits(kind, x, w, label, cfg.scale, cfg.margin, b)
    np.testing.assert_allclose(train, want_train, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(plain, want_plain, rtol=1e-4, atol=1e-4)
    if kind != "softmax":
        # the margin touches the target class only
        off_target = np.eye(C)[label] == 0
        np.testing.assert_allclose(train[off_target], plain[off_target], rtol=1e-5)
        assert (train[~off_target] < plain[~off_target]).all()

    # d(sum(R * train))/dx against central differences of the numpy function
    r = rng.normal(size=(N, C))
    exe.backward([mx.nd.array(r), mx.nd.zeros((N, C))])
    got = exe.grad_dict["data"].asnumpy()
    num = np.zeros_like(x)
    h = 1e-6
    for idx in np.ndindex(*x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        fp = (r * np_logits(kind, xp, w, label, cfg.scale, cfg.margin, b)[0]).sum()
        fm = (r * np_logits(kind, xm, w, label, cfg.scale, cfg.margin, b)[0]).sum()
        num[idx] = (fp - fm) / (2 * h)
    np.testing.assert_allclose(got, num, rtol=2e-3, atol=2e-3 * np.abs(num).max())


def test_defaults_and_settable():
    assert (HeadConfig("amsoftmax").scale, HeadConfig("amsoftmax").margin) == (30.0, 0.3)
    assert (HeadConfig("arcface").scale, HeadConfig("arcface").margin) == (64.0, 0.5)
    cfg = HeadConfig("arcface", s=32, m=0.2)
    assert (cfg.scale, cfg.margin) == (32.0, 0.2)


@pytest.mark.parametrize("kind", ["amsoftmax", "arcface"])
def test_gradient_finite_at_cos_plus_minus_one(kind):
    _, exe = bind_head(kind)
    w = np.random.RandomState(1).normal(size=(C, D))
    label = np.array([2, 2, 0, 1])
    x = np.stack([w[2], -w[2], w[0] * 3.0, -w[1]])  # cos = 1, -1, 1, -1 on the target
    exe.arg_dict["data"][:] = x
    exe.arg_dict["classifier_weight"][:] = w
    exe.arg_dict["softmax_label"][:] = label
    train = exe.forward(is_train=True)[0].asnumpy()
    exe.backward([mx.nd.ones((N, C)), mx.nd.zeros((N, C))])
    assert np.isfinite(train).all()
    for name in ("data", "classifier_weight"):
        assert np.isfinite(exe.grad_dict[name].asnumpy()).all(), name


@pytest.mark.parametrize("kwargs,fragment", [
    ({"type": "cosface"}, "unknown head"),
    ({"type": "softmax", "m": 0.3}, "no scale or margin"),
    ({"type": "arcface", "feature_dim": -1}, "feature_dim"),
])
def test_bad_head_config(kwargs, fragment):
    with pytest.raises(FBNetError, match=fragment):
        HeadConfig(**kwargs)
