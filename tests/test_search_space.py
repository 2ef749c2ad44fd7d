import pytest

from fbnet_symbol.errors import FBNetError
from fbnet_symbol.space.spaces import decode_space, get_space, parse_image_shape, scale_channels

# DESIGN.md section 2: (input H, input C, out C, stride) of the 22 TBS layers at 224x224
PAPER_TABLE = (
    [(112, 16, 16, 1)]
    + [(112, 16, 24, 2)] + [(56, 24, 24, 1)] * 3
    + [(56, 24, 32, 2)] + [(28, 32, 32, 1)] * 3
    + [(28, 32, 64, 2)] + [(14, 64, 64, 1)] * 3
    + [(14, 64, 112, 1)] + [(14, 112, 112, 1)] * 3
    + [(14, 112, 184, 2)] + [(7, 184, 184, 1)] * 3
    + [(7, 184, 352, 1)]
)
FBNET_NAMES = ["k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3",
               "k5_e6", "skip"]


def test_fbnet_paper_layout_equals_design_table():
    layout = decode_space("fbnet", "paper", (3, 224, 224))
    got = [(l.in_hw[0], l.in_channels, l.out_channels, l.stride) for l in layout.layers]
    assert got == PAPER_TABLE
    assert [l.stage for l in layout.layers] == [1] + [2] * 4 + [3] * 4 + [4] * 4 + [5] * 4 \
        + [6] * 4 + [7]
    assert layout.stem_out_hw == (112, 112) and layout.last_channels == 1984
    assert layout.layers[-1].out_hw == (7, 7)
    # paper preset: skip wherever shapes match, including layer 1 (FBNet-A uses it)
    for layer in layout.layers:
        assert layer.candidates[:8] == tuple(FBNET_NAMES[:8])
        assert ("skip" in layer.candidates) == (layer.stride == 1 and
                                                layer.in_channels == layer.out_channels)
    assert "skip" in layout.layers[0].candidates


def test_fbnet_seed_layout_candidate_counts():
    layout = decode_space("fbnet", "seed")
    assert layout.image_shape == (3, 108, 108) and layout.stem_out_hw == (108, 108)
    counts = [len(l.candidates) for l in layout.layers]
    # the seed's speed.txt: 8 values in the first layer of every stage, 9 elsewhere
    assert counts == [8] + [8, 9, 9, 9] * 5 + [8]
    assert [l.out_hw[0] for l in layout.layers][-1] == 7


def test_fbnet_se_layout():
    layout = decode_space("fbnet_se", "seed", (3, 32, 32))
    assert layout.num_layers == 16
    assert layout.stem_out_hw == (16, 16)  # stride-1 stem, then the 3x3/2 max-pool
    assert [l.out_channels for l in layout.layers] == [256] * 3 + [512] * 4 + [1024] * 6 \
        + [2048] * 3
    assert [l.stride for l in layout.layers] == [1, 1, 1, 2, 1, 1, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1]
    deform = [l.index for l in layout.layers if "deform_bottleneck" in l.candidates]
    assert deform == [14, 15]
    assert all(len(l.candidates) == 5 for l in layout.layers[:14])
    assert get_space("fbnet_se").last_channels is None


@pytest.mark.parametrize("shape,last_hw", [((3, 32, 32), 2), ((1, 28, 28), 2),
                                           ((3, 108, 108), 7), ((3, 17, 9), (2, 1))])
def test_any_input_size(shape, last_hw):
    layout = decode_space("fbnet", "seed", shape)
    want = last_hw if isinstance(last_hw, tuple) else (last_hw, last_hw)
    assert layout.layers[-1].out_hw == want


def test_width_multiplier_scales_and_rounds():
    assert scale_channels(16, 1.0) == 16
    assert scale_channels(24, 0.5) == 16  # 12 -> nearest multiple of 8 not below 90%
    assert scale_channels(1984, 0.25) == 496
    assert scale_channels(16, 0.1) == 8   # never below the divisor
    layout = decode_space("fbnet", "paper", (3, 32, 32), width_mult=0.5)
    assert all(l.in_channels % 8 == 0 and l.out_channels % 8 == 0 for l in layout.layers)
    # which layers may skip is structural, it does not change with the width
    full = decode_space("fbnet", "paper", (3, 32, 32))
    assert [l.candidates for l in layout.layers] == [l.candidates for l in full.layers]


@pytest.mark.parametrize("kwargs,fragment", [
    ({"space": "resnet"}, "unknown search space 'resnet'"),
    ({"space": "fbnet", "preset": "mobile"}, "unknown preset 'mobile'"),
    ({"space": "fbnet", "width_mult": 0}, "width multiplier"),
    ({"space": "fbnet_se", "last_channels": 1504}, "has no last conv"),
])
def test_decode_errors(kwargs, fragment):
    with pytest.raises(FBNetError, match=fragment):
        decode_space(**kwargs)


@pytest.mark.parametrize("text", ["3,224", "a,b,c", "3,0,32", ""])
def test_bad_image_shape(text):
    with pytest.raises(FBNetError, match="image shape"):
        parse_image_shape(text)


def test_one_registry_names_each_spaces_blocks_and_checks_their_contract():
    import dataclasses

    from fbnet_symbol.space import blocks, blocks_se
    from fbnet_symbol.space.spaces import SPACES, block_module
    assert block_module("fbnet") is blocks and block_module(SPACES["fbnet_se"]) is blocks_se
    # a block module missing part of the contract is refused with what it lacks
    broken = dataclasses.replace(SPACES["fbnet"], name="broken",
                                 blocks="fbnet_symbol.space.heads")
    with pytest.raises(FBNetError, match="lacks OPS, SCALABLE_OPS, stem"):
        block_module(broken)
    # so is one without an op for a candidate
    odd = dataclasses.replace(SPACES["fbnet_se"], name="odd", candidates=SPACES["fbnet"].candidates)
    with pytest.raises(FBNetError, match=r"OPS\['ir'\]"):
        block_module(odd)


def test_a_registered_space_is_built_by_the_shared_code(monkeypatch):
    """A new space is a SpaceDef and a block module: the child builder needs nothing else."""
    import dataclasses

    from fbnet_symbol.space import spaces
    from fbnet_symbol.space.network import build_network, output_names
    small = dataclasses.replace(spaces.FBNET, name="tiny", stages=spaces.FBNET.stages[:2])
    monkeypatch.setitem(spaces.SPACES, "tiny", small)
    layout = decode_space("tiny", "seed", (3, 8, 8), 0.25)
    assert layout.num_layers == 5
    arch = {"space": "tiny", "preset": "seed", "width_mult": 0.25, "blocks": ["k3_e1"] * 5}
    sym = build_network(arch, 3, (3, 8, 8), mode="logits")
    assert sym.infer_shape(data=(2, 3, 8, 8))[1] == [(2, 3)]
    assert output_names(build_network(arch, 3, (3, 8, 8))) == ["softmax"]
