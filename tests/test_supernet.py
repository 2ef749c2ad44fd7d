"""The supernet's loss and theta gradient against an independent numpy computation."""
import mxnet as mx
import numpy as np
import pytest

from fbnet_symbol.latency.table import load_table
from fbnet_symbol.search.supernet import Supernet
from fbnet_symbol.space.network import freeze_batchnorm
from tests.conftest import synthetic_lut

B = 4
SHAPE = (3, 8, 8)


def make(tmp_path, alpha=0.2, loss_form="add", noise="batch", lut_scale=1.0, space="fbnet",
         preset="seed", frozen_bn=False):
    width = 0.25 if space == "fbnet" else 0.125
    table = load_table(synthetic_lut(tmp_path / "lut.txt", space=space, width_mult=width,
                                     preset=preset, image_shape=SHAPE))
    table.values = [[v * lut_scale for v in row] for row in table.values]
    net = Supernet(3, table, preset, SHAPE, width, alpha=alpha, beta=0.6, loss_form=loss_form,
                   noise_mode=noise, theta_init=1.0, space=space)
    sym = freeze_batchnorm(net.symbol) if frozen_bn else net.symbol
    mod = mx.mod.Module(sym, data_names=net.input_names, label_names=["softmax_label"])
    mod.bind(net.input_descs(B), net.label_descs(B))
    mx.random.seed(0)
    mod.init_params(mx.init.Xavier(magnitude=2))
    arg, aux = mod.get_params()
    rng = np.random.RandomState(1)
    for name in net.theta_names:  # a non-uniform theta
        arg[name][:] = rng.normal(0, 1, arg[name].shape)
    mod.set_params(arg, aux)
    return net, mod


def run(net, mod, noise, temperature=2.0, names=None):
    rng = np.random.RandomState(5)
    batch = net.batch(mx.nd.array(rng.uniform(-1, 1, (B,) + SHAPE)), mx.nd.array([0, 1, 2, 0]),
                      noise, temperature)
    mod.forward_backward(batch)
    outs = [o.asnumpy() for o in mod.get_outputs()]
    assert len(outs) == 5 and outs[4].shape[0] == B  # ..., embedding_out (verification)
    outs = outs[:4]  # loss, logits, CE, latency
    grads = {n: mod._exec_group.grad_arrays[mod._param_names.index(n)][0].asnumpy()
             for n in (names or net.theta_names)}
    return outs, grads


def np_latency_term(net, theta, noise, temperature, alpha=0.2, beta=0.6, loss_form="add"):
    lat = 0.0
    for l in net.layout.layers:
        k0, k1 = net.offsets[l.index], net.offsets[l.index + 1]
        z = (theta[l.name] + noise[0, k0:k1]) / temperature
        m = np.exp(z - z.max())
        m /= m.sum()
        lat += float(np.dot(m, net.lut.values[l.index]))
    if loss_form == "relative":  # reference: E[LAT] of the uniform distribution
        uniform = sum(np.mean(row) for row in net.lut.values)
        return lat, alpha * np.log(lat / uniform)
    return lat, alpha * np.log1p(lat) ** beta


@pytest.mark.parametrize("loss_form", ["add", "relative"])
def test_latency_and_its_theta_gradient_match_numpy(tmp_path, loss_form):
    net, mod = make(tmp_path, loss_form=loss_form)
    noise = np.random.RandomState(3).gumbel(size=net.noise_shape(B))
    theta = net.split_theta(mod.get_params()[0])
    outs, grads = run(net, mod, noise)
    loss, logits, ce, latency = outs
    lat, term = np_latency_term(net, theta, noise, 2.0, loss_form=loss_form)
    np.testing.assert_allclose(latency, lat, rtol=1e-5)
    # CE is the ordinary softmax cross-entropy of the (plain, softmax-head) logits
    ref_ce = -(logits - np.log(np.exp(logits).sum(1, keepdims=True)))[np.arange(B), [0, 1, 2, 0]]
    np.testing.assert_allclose(ce, ref_ce, rtol=1e-5)
    np.testing.assert_allclose(loss, ce + term, rtol=1e-5)

    # d(latency term)/d theta: the gradient with alpha = 0.2 minus the one with alpha = 0
    _, mod0 = make(tmp_path, alpha=0.0, loss_form=loss_form)
    mod0.set_params(*mod.get_params())
    _, grads0 = run(net, mod0, noise)
    h = 1e-6
    for l in net.layout.layers[::5]:
        got = (grads["theta_" + l.name] - grads0["theta_" + l.name]).ravel()
        num = np.zeros_like(theta[l.name])
        for i in range(len(num)):
            tp = {k: v.astype(np.float64).copy() for k, v in theta.items()}
            tm = {k: v.astype(np.float64).copy() for k, v in theta.items()}
            tp[l.name][i] += h
            tm[l.name][i] -= h
            num[i] = (np_latency_term(net, tp, noise, 2.0, loss_form=loss_form)[1]
                      - np_latency_term(net, tm, noise, 2.0, loss_form=loss_form)[1]) / (2 * h)
        # the module sums per-sample gradients: B copies of the batch's latency term
        np.testing.assert_allclose(got / B, num, rtol=1e-3, atol=1e-6)


def test_relative_loss_form_does_not_depend_on_the_tables_unit(tmp_path):
    """The same table in ms and in µs (x1000) gives the same theta gradient with the
    relative form, and a different one with the seed's additive form."""
    noise = np.random.RandomState(3).gumbel(size=(1, 200))
    grads = {}
    for form in ("relative", "add"):
        for scale in (1.0, 1000.0):
            net, mod = make(tmp_path / ("%s%d" % (form, scale)), loss_form=form,
                            lut_scale=scale)
            _, g = run(net, mod, noise[:, :net.num_choices])
            grads[form, scale] = np.concatenate([g[n].ravel() for n in net.theta_names])
    np.testing.assert_allclose(grads["relative", 1.0], grads["relative", 1000.0], rtol=1e-4,
                               atol=1e-7)
    assert not np.allclose(grads["add", 1.0], grads["add", 1000.0], rtol=1e-2)


@pytest.mark.parametrize("preset", ["seed", "paper"])
def test_folded_mixture_weights_equal_the_weighted_sum(tmp_path, preset):
    """Per-batch noise folds m_i into each candidate's last conv (seed) or last BN (paper)
    and adds the residual once; per-sample noise multiplies whole feature maps. With every
    sample given the same noise row the two graphs compute the same function: the same
    outputs and the same gradient for every parameter, theta included (the shared residual
    only adds a constant to dL/dm, which the softmax removes). The paper preset's BN uses
    its moving statistics here: at 8x8 its last layers normalise over 4 values, which
    turns float rounding into different gradients."""
    frozen = preset == "paper"
    folded, mod_f = make(tmp_path, noise="batch", preset=preset, frozen_bn=frozen)
    plain, mod_p = make(tmp_path, noise="sample", preset=preset, frozen_bn=frozen)
    scaled = "layer1_k3_e1_pw2_bn_gamma_scaled" if frozen else "layer1_k3_e1_pw2_weight_scaled"
    weighted_map = '"layer1_mix_b0_dot"'  # a candidate's feature map times its weight
    assert scaled in folded.symbol.tojson() and weighted_map not in folded.symbol.tojson()
    assert weighted_map in plain.symbol.tojson()
    mod_p.set_params(*mod_f.get_params())
    row = np.random.RandomState(6).gumbel(size=folded.noise_shape(B))
    names = mod_f._param_names
    outs_f, grads_f = run(folded, mod_f, row, names=names)
    outs_p, grads_p = run(plain, mod_p, np.repeat(row, B, axis=0), names=names)
    for a, b in zip(outs_f, outs_p):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    # float32 sums in another order: compare against the largest gradient of the model
    # (biases before a BN have ~1e-7 gradients, i.e. rounding noise)
    atol = 1e-4 * max(np.abs(g).max() for g in grads_p.values())
    for name in names:
        np.testing.assert_allclose(grads_f[name], grads_p[name], rtol=1e-3, atol=atol,
                                   err_msg=name)
    assert all(np.abs(grads_f[n]).max() > 1e-6 for n in folded.theta_names)


def test_mul_form_and_per_sample_noise(tmp_path):
    net, mod = make(tmp_path, loss_form="mul", noise="sample")
    noise = np.random.RandomState(4).gumbel(size=net.noise_shape(B))
    assert noise.shape == (B, net.num_choices)
    theta = net.split_theta(mod.get_params()[0])
    (loss, _, ce, latency), _ = run(net, mod, noise)
    for i in range(B):
        lat, term = np_latency_term(net, theta, noise[i:i + 1], 2.0)
        assert latency[i] == pytest.approx(lat, rel=1e-5)
        assert loss[i] == pytest.approx(ce[i] * term, rel=1e-5)


def test_loss_finite_for_a_table_under_one_millisecond(tmp_path):
    net, mod = make(tmp_path, lut_scale=1e-4)
    assert sum(max(r) for r in net.lut.values) < 1.0
    for form in ("add", "mul"):
        net, mod = make(tmp_path, lut_scale=1e-4, loss_form=form)
        (loss, _, _, latency), grads = run(net, mod, np.zeros(net.noise_shape(B)))
        assert (latency < 1.0).all()
        assert np.isfinite(loss).all()
        assert all(np.isfinite(g).all() for g in grads.values())


def test_fbnet_se_supernet_builds_and_runs(tmp_path):
    net, mod = make(tmp_path, space="fbnet_se")
    (loss, _, _, _), grads = run(net, mod, np.zeros(net.noise_shape(B)))
    assert np.isfinite(loss).all() and len(grads) == 16
    assert "deform_bottleneck" in net.layout.layers[-1].candidates


def test_the_graphs_outputs_have_the_names_the_loop_reads(tmp_path):
    from fbnet_symbol.space.child import ChildNet
    from fbnet_symbol.space.network import output_names
    net, _ = make(tmp_path)
    assert output_names(net.symbol) == ["loss", "logits", "ce", "latency", "embedding"]
    child = ChildNet({"space": "fbnet", "preset": "seed", "width_mult": 0.25,
                      "blocks": ["k3_e1"] * 22}, 3, SHAPE)
    assert output_names(child.symbol) == ["loss", "logits", "ce", "embedding"]
