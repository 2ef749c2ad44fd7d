import json

import mxnet as mx
import numpy as np
import pytest

from fbnet_symbol.errors import FBNetError
from fbnet_symbol.space.architecture import NAMED_ARCHITECTURES, Architecture, load_architecture
from fbnet_symbol.space.network import build_network
from fbnet_symbol.space.profile import count_symbol

FBNET_B = load_architecture("fbnet_b")


def test_named_architectures_shipped():
    assert set(NAMED_ARCHITECTURES) >= {"fbnet_a", "fbnet_b", "fbnet_c"}
    a = load_architecture("fbnet_a")
    assert a.blocks[0] == "skip" and a.blocks[11] == "k5_e1_g2" and a.last_channels == 1504
    assert FBNET_B.blocks[11] == "skip" and FBNET_B.blocks[21] == "k3_e6"
    assert load_architecture("fbnet_c").blocks[2] == "skip"


@pytest.mark.parametrize("name", ["fbnet_a", "fbnet_b", "fbnet_c"])
@pytest.mark.parametrize("preset,shape", [("paper", (3, 224, 224)), ("seed", (3, 108, 108))])
def test_named_build_in_both_presets(name, preset, shape):
    arch = load_architecture(name).replace(preset=preset)
    for mode in ("train", "logits"):
        sym = build_network(arch, 1000, shape, mode=mode)
        shapes = {"data": (2,) + shape}
        if mode == "train":
            shapes["softmax_label"] = (2,)
        _, out, _ = sym.infer_shape(**shapes)
        assert out == [(2, 1000)]


def test_built_layer_shapes_equal_decoded_layout():
    arch = FBNET_B.replace(preset="seed")
    layout = arch.layout((3, 32, 32))
    groups = count_symbol(build_network(arch, 10, (3, 32, 32), mode="logits"), (3, 32, 32))
    for layer in layout.layers:
        assert groups[layer.name].out_shape == layer.out_shape, layer.name


def test_json_round_trip(tmp_path):
    arch = FBNET_B.replace(head={"type": "arcface", "feature_dim": 64, "s": 32.0},
                           width_mult=0.5)
    path = tmp_path / "arch.json"
    path.write_text(arch.to_json())
    again = load_architecture(str(path))
    assert again == arch
    assert load_architecture(arch.to_json()) == arch
    assert json.loads(arch.to_json())["head"] == {"type": "arcface", "feature_dim": 64, "s": 32.0}


def _variant(**changes):
    d = FBNET_B.to_dict()
    d.update(changes)
    return json.dumps(d)


@pytest.mark.parametrize("spec,fragment", [
    (_variant(blocks=FBNET_B.to_dict()["blocks"][:21]),
     "21 blocks given but space 'fbnet' has 22 searchable layers; list exactly one"),
    (_variant(blocks=["k7_e6"] + FBNET_B.to_dict()["blocks"][1:]),
     "layer 1: unknown candidate 'k7_e6' for space 'fbnet'; valid names: k3_e1"),
    (_variant(blocks=FBNET_B.to_dict()["blocks"][:1] + ["skip"] + FBNET_B.to_dict()["blocks"][2:]),
     "layer 2: 'skip' needs equal input and output shapes, but this layer maps 16 to 24 "
     "channels with stride 2; choose another candidate"),
    (_variant(space="mobilenet"), "unknown search space 'mobilenet'; choose one of"),
    (_variant(space="fbnet_se", last_channels=None), "says space 'fbnet_se' but its blocks are 'fbnet' candidates"),
    (_variant(preset="mobile"), "unknown preset 'mobile'"),
    (_variant(head={"type": "cosface"}), "unknown head"),
    (_variant(colour="red"), "unknown key"),
    ('{"space": "fbnet", "blocks": [', "is not valid JSON (line 1, column"),
    ("no_such_arch", "neither a shipped name"),
])
def test_invalid_architecture_one_line_error(spec, fragment):
    with pytest.raises(FBNetError) as err:
        load_architecture(spec)
    msg = str(err.value)
    assert fragment in msg
    assert "\n" not in msg


def test_wrong_space_for_the_task():
    with pytest.raises(FBNetError, match="is for space 'fbnet' but space 'fbnet_se' is in use"):
        load_architecture("fbnet_b", expect_space="fbnet_se")


def test_architecture_may_use_skip_outside_the_search_candidates():
    # the seed preset does not *search* skip in layer 1, but FBNet-A still builds there
    arch = load_architecture("fbnet_a").replace(preset="seed")
    assert "skip" not in arch.layout().layers[0].candidates
    build_network(arch, 10, (3, 32, 32))


@pytest.mark.parametrize("head", ["softmax", "amsoftmax", "arcface"])
@pytest.mark.parametrize("space", ["fbnet", "fbnet_se"])
def test_child_network_trains_one_step(space, head):
    if space == "fbnet":
        arch = FBNET_B.replace(preset="seed", width_mult=0.25, head={"type": head})
    else:
        blocks = ["bottleneck", "bottleneck_g2", "basic", "basic_se", "basic_g2"] * 3
        arch = Architecture.from_dict({"space": "fbnet_se", "preset": "seed",
                                       "blocks": blocks + ["deform_bottleneck"],
                                       "width_mult": 0.125, "head": {"type": head}})
    sym = build_network(arch, 4, (3, 16, 16), mode="train")
    mod = mx.mod.Module(sym, context=mx.cpu())
    mod.bind(data_shapes=[("data", (4, 3, 16, 16))], label_shapes=[("softmax_label", (4,))])
    mod.init_params(mx.init.Xavier())
    mod.init_optimizer(optimizer="sgd", optimizer_params={"learning_rate": 0.01})
    batch = mx.io.DataBatch([mx.nd.random.normal(shape=(4, 3, 16, 16))],
                            [mx.nd.array([0, 1, 2, 3])])
    mod.forward_backward(batch)
    mod.update()
    prob = mod.get_outputs()[0].asnumpy()
    assert prob.shape == (4, 4) and np.isfinite(prob).all()
    np.testing.assert_allclose(prob.sum(axis=1), 1.0, rtol=1e-5)


def test_overridden_applies_only_what_was_given():
    a = FBNET_B.replace(head={"type": "arcface", "s": 32.0})
    assert a.overridden() is a
    b = a.overridden(preset="seed", width_mult=0.5, m=0.4)
    assert (b.preset, b.width_mult, b.head.type, b.head.scale, b.head.margin) == \
        ("seed", 0.5, "arcface", 32.0, 0.4)
    c = a.overridden(head_type="amsoftmax")  # a new head starts from its own defaults
    assert (c.head.type, c.head.scale, c.head.margin) == ("amsoftmax", 30.0, 0.3)
