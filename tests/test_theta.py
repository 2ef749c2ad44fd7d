"""θ in one module: the seed's text format, P_θ, argmax, E[LAT] and how concentrated P_θ is."""
import numpy as np
import pytest

from fbnet_symbol.errors import FBNetError
from fbnet_symbol.latency.table import LatencyTable
from fbnet_symbol.search import theta as theta_
from fbnet_symbol.space.spaces import decode_space


@pytest.fixture
def layout():
    return decode_space("fbnet", "seed", (3, 8, 8), 0.25)


def test_text_round_trip_and_bad_files(layout, tmp_path):
    rng = np.random.RandomState(0)
    theta = {l.name: rng.normal(size=len(l.candidates)) for l in layout.layers}
    path = tmp_path / "epoch_0_theta.txt"
    theta_.write_theta_text(str(path), layout, theta)
    assert path.read_text().splitlines()[0].startswith("theta_layer1: ")
    back = theta_.read_theta_text(str(path), layout)
    for name in theta:
        np.testing.assert_allclose(back[name], theta[name], rtol=1e-7)
    path.write_text("\n".join(path.read_text().splitlines()[:3]))
    with pytest.raises(FBNetError, match="has 3 layers but space fbnet"):
        theta_.read_theta_text(str(path), layout)


def test_probabilities_argmax_expected_latency_and_concentration(layout):
    theta = {l.name: np.zeros(len(l.candidates)) for l in layout.layers}
    table = LatencyTable([np.arange(1, len(l.candidates) + 1) for l in layout.layers])
    uniform = theta_.concentration(layout, theta)
    assert uniform["entropy"] == pytest.approx(1.0) and uniform["decided_layers"] == 0
    assert uniform["argmax_probability"] == pytest.approx(uniform["uniform_probability"])
    assert theta_.expected_latency(layout, table, theta) == pytest.approx(
        sum(np.mean(np.arange(1, len(l.candidates) + 1)) for l in layout.layers))
    # one layer certain, one layer split between two blocks, the rest uniform
    first, second = layout.layers[0], layout.layers[1]
    theta[first.name][2] = 50.0
    theta[second.name][:2] = 50.0
    c = theta_.concentration(layout, theta)
    k1, k2 = len(first.candidates), len(second.candidates)
    assert c["entropy_per_layer"][0] == pytest.approx(0.0, abs=1e-6)
    assert c["entropy_per_layer"][1] == pytest.approx(np.log(2) / np.log(k2))
    assert c["argmax_probability_per_layer"][:2] == pytest.approx([1.0, 0.5])
    assert c["decided_layers"] == 2
    assert theta_.argmax_blocks(layout, theta)[0] == first.candidates[2]
    p = theta_.probabilities(theta)[first.name]
    assert p.sum() == pytest.approx(1.0) and p[2] == pytest.approx(1.0) and k1 == len(p)
