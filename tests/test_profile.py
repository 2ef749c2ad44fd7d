import json
import os
import subprocess
import sys

import mxnet as mx
import pytest

from fbnet_symbol.space.profile import count_symbol, profile_architecture
from tests.conftest import ROOT


@pytest.mark.parametrize("cin,cout,k,stride,group,hw", [
    (3, 16, 3, 2, 1, 224), (32, 64, 5, 1, 2, 13), (48, 48, 3, 2, 48, 15)])
def test_single_convolution_macs_closed_form(cin, cout, k, stride, group, hw):
    sym = mx.sym.Convolution(mx.sym.Variable("data"), num_filter=cout, kernel=(k, k),
                             stride=(stride, stride), pad=(k // 2, k // 2),
                             num_group=group, name="conv")
    g = count_symbol(sym, (cin, hw, hw))["conv"]
    out_hw = (hw + 2 * (k // 2) - k) // stride + 1
    assert g.macs == out_hw * out_hw * cout * (cin // group) * k * k
    assert g.params == cout * (cin // group) * k * k + cout
    assert g.out_shape == (cout, out_hw, out_hw)


def test_fully_connected_macs():
    sym = mx.sym.FullyConnected(mx.sym.Variable("data"), num_hidden=10, name="fc")
    g = count_symbol(sym, (7, 2, 2))["fc"]
    assert g.macs == 10 * 28 and g.params == 10 * 28 + 10


# The paper (Table 2 / section 4.1): FBNet-A 249M multiply-adds and 4.3M parameters,
# FBNet-B 295M, FBNet-C 375M and 5.5M parameters, at 224x224 with 1000 classes.
@pytest.mark.parametrize("name,macs,params,tol", [
    ("fbnet_a", 249e6, 4.3e6, 0.01), ("fbnet_b", 295e6, None, 0.01),
    ("fbnet_c", 375e6, 5.5e6, 0.03)])
def test_named_architectures_near_paper_counts(name, macs, params, tol):
    prof = profile_architecture(name, 1000, (3, 224, 224))
    assert abs(prof["macs"] - macs) / macs < tol
    if params:
        assert abs(prof["params"] - params) / params < 0.02
    assert prof["rows"][0]["part"] == "stem" and prof["rows"][-1]["part"] == "classifier"
    assert sum(r["macs"] for r in prof["rows"]) == prof["macs"]


def run_sample(*args):
    env = {k: v for k, v in os.environ.items() if k != "MXNET_ENGINE_TYPE"}  # as a user runs it
    return subprocess.run([sys.executable, "sample.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_sample_cli_json():
    res = run_sample("--arch", "fbnet_b", "--preset", "paper", "--image-shape", "3,224,224",
                     "--num-classes", "1000", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert len(out["blocks"]) == 22 and out["blocks"][11] == "skip"
    assert out["macs"] == profile_architecture("fbnet_b", 1000, (3, 224, 224))["macs"]
    assert out["params"] > 4e6 and len(out["layers"]) == 22 + 3


def test_sample_cli_table_and_error():
    res = run_sample("--arch", "fbnet_a", "--image-shape", "3,32,32", "--num-classes", "10")
    assert res.returncode == 0, res.stderr
    assert "layer22" in res.stdout and "total" in res.stdout
    res = run_sample("--arch", '{"space": "fbnet", "blocks": ["skip"]}')
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and res.stderr.startswith("error: ")
    assert "Traceback" not in res.stderr
