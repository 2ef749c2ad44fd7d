"""From theta to a shipped network: sample, train from scratch, deploy, export."""
import json
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

from fbnet_symbol.errors import FBNetError
from fbnet_symbol.search.run import SearchConfig, SearchRun
from fbnet_symbol.search.theta import argmax_blocks, probabilities
from fbnet_symbol.ship.export import check_with_onnxruntime, export
from fbnet_symbol.space.architecture import load_architecture
from tests.conftest import ROOT, separate_python

ENV = {k: v for k, v in os.environ.items() if k != "MXNET_ENGINE_TYPE"}


def ort_python():
    """The separate Python with onnxruntime (``make test`` builds .venv-ort)."""
    return separate_python("FBNET_ORT_PYTHON", ".venv-ort", "onnxruntime")


def searched(tiny_data, tmp_path):
    out = tmp_path / "search"
    cfg = SearchConfig(image_shape=(3, 8, 8), width_mult=0.25, batch_size=8, epochs=2,
                       warmup_epochs=1, train_rec=tiny_data["train"], theta_rec=tiny_data["theta"],
                       lut=tiny_data["lut"], save_model_path=str(out), progress=False,
                       log_frequence=0, save_frequence=0)
    run = SearchRun(cfg)
    run.run()
    return out, run


def sample(*args):
    return subprocess.run([sys.executable, "sample.py", *args], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_sample_argmax_and_distinct_samples(tiny_data, tmp_path):
    out, run = searched(tiny_data, tmp_path)
    theta_file = out / "theta-result" / "epoch_1_theta.txt"
    res = sample("--theta", str(theta_file), "--output", str(tmp_path / "a"), "--json")
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    top = summary["architectures"][0]
    theta = run.task.net.split_theta(run.trainer.params()[0])
    assert top["blocks"] == argmax_blocks(run.task.layout, theta)
    # the table's prediction and an independent sum over P_theta's chosen entries
    want = sum(run.task.table.cost(run.task.layout, l.index, b) for l, b in zip(run.task.layout.layers, top["blocks"]))
    assert top["latency_blocks_ms"] == pytest.approx(want)
    assert top["latency_ms"] == pytest.approx(run.task.table.predict(
        load_architecture(top["file"]), run.task.layout))
    probs = probabilities(theta)
    p = np.prod([probs[l.name][l.candidates.index(b)] for l, b in zip(run.task.layout.layers, top["blocks"])])
    assert top["probability"] == pytest.approx(p, rel=1e-4)
    assert load_architecture(top["file"]).blocks == tuple(top["blocks"])
    assert (tmp_path / "a" / "distribution.png").is_file()

    res = sample("--load-model-path", str(out), "--mode", "sample", "--num", "4", "--seed", "1",
                 "--output", str(tmp_path / "s"), "--json")
    assert res.returncode == 0, res.stderr
    archs = json.loads(res.stdout)["architectures"]
    assert len({tuple(a["blocks"]) for a in archs}) == 4
    logp = [a["log_probability"] for a in archs]
    assert logp == sorted(logp, reverse=True)
    res = sample("--theta", str(theta_file))
    assert res.returncode == 2 and "--output" in res.stderr


@pytest.mark.slow
@pytest.mark.parametrize("head", ["softmax", "arcface"])
def test_train_fixed_architecture_deploy_and_export(tiny_data, tmp_path, head):
    arch = load_architecture("fbnet_c").replace(preset="seed", width_mult=0.25,
                                                head={"type": head})
    out = tmp_path / ("train_" + head)
    # 15 epochs at lr 0.02: above chance for each of 5 seeds tried (10 at 0.05: 1 of 4)
    cfg = SearchConfig(arch=arch, image_shape=(3, 8, 8), batch_size=4, epochs=15,
                       train_rec=tiny_data["train"], theta_rec=tiny_data["theta"],
                       val_rec=tiny_data["val"], save_model_path=str(out), progress=False,
                       log_frequence=0, save_frequence=2, lr=0.02, seed=1)
    summary = SearchRun(cfg).run()
    assert summary["val_acc"] is not None
    if head == "softmax":  # 3 classes: chance is 1/3 (margin heads learn slower on 24 images)
        assert summary["train_acc"] > 0.45
    # the deployable checkpoint: a user's own script, MXNet's API only
    sym, arg, aux = mx.model.load_checkpoint(str(out / "model"), 15)
    assert not [n for n in sym.list_arguments() if n.startswith("theta") or "label" in n]
    assert all(n.split("_")[0] != "loss" for n in sym.list_outputs())
    mod = mx.mod.Module(sym, data_names=["data"], label_names=None)
    mod.bind(data_shapes=[("data", (2, 3, 8, 8))], for_training=False)
    mod.set_params(arg, aux, allow_extra=True)
    mod.forward(mx.io.DataBatch([mx.nd.random.uniform(-1, 1, (2, 3, 8, 8))]), is_train=False)
    out_arr = mod.get_outputs()[0].asnumpy()
    if head == "softmax":
        assert out_arr.shape == (2, 3)
        np.testing.assert_allclose(out_arr.sum(1), 1.0, rtol=1e-5)
    else:  # the embedding, and the classifier weights beside it
        assert out_arr.shape == (2, 192) and arg["classifier_weight"].shape == (3, 192)
    # ONNX, checked in onnxruntime against MXNet's output
    info = export(str(out), str(tmp_path / "net.onnx"))
    report = check_with_onnxruntime(info["onnx"], info["reference"], ort_python())
    assert report["ok"] and report["max_rel_diff"] < 1e-4, report


def test_resume_fixed_architecture(tiny_data, tmp_path):
    from fbnet_symbol.search.run import StopRequested
    arch = load_architecture("fbnet_b").replace(preset="seed", width_mult=0.25)

    def cfg(out, **kw):
        return SearchConfig(arch=arch, image_shape=(3, 8, 8), batch_size=8, epochs=3,
                            train_rec=tiny_data["train"], theta_rec=tiny_data["theta"],
                            save_model_path=str(out), progress=False, log_frequence=0,
                            save_frequence=1, lr=0.01, **kw)
    full = SearchRun(cfg(tmp_path / "full"))
    full.run()
    with pytest.raises(StopRequested):
        SearchRun(cfg(tmp_path / "k")).run(stop_after_steps=4)
    resumed = SearchRun(cfg(tmp_path / "k", load_model_path=str(tmp_path / "k")))
    resumed.run()
    a, b = full.trainer.params()[0], resumed.trainer.params()[0]
    for name in a:
        np.testing.assert_allclose(a[name].asnumpy(), b[name].asnumpy(), rtol=1e-5, atol=1e-6)
    other = load_architecture("fbnet_c").replace(preset="seed", width_mult=0.25)
    with pytest.raises(FBNetError, match="trained another architecture"):
        run = SearchRun(SearchConfig(**{**cfg(tmp_path / "k").__dict__, "arch": other,
                                        "load_model_path": str(tmp_path / "k")}))
        run.run()


def test_deformable_network_is_refused_by_the_exporter(tiny_data, tmp_path):
    blocks = ["basic"] * 15 + ["deform_bottleneck"]
    arch = load_architecture({"space": "fbnet_se", "blocks": blocks, "width_mult": 0.125})
    out = tmp_path / "se"
    SearchRun(SearchConfig(arch=arch, image_shape=(3, 8, 8), batch_size=8, epochs=1,
                           train_rec=tiny_data["train"], theta_rec=tiny_data["theta"],
                           save_model_path=str(out), progress=False, log_frequence=0,
                           save_frequence=0, lr=0.01)).run()
    with pytest.raises(FBNetError, match="deformable convolution"):
        export(str(out), str(tmp_path / "x.onnx"))
    assert not (tmp_path / "x.onnx").exists()
    res = subprocess.run([sys.executable, "-m", "fbnet_symbol.ship.export", "--load-model-path",
                          str(out), "--output", str(tmp_path / "x.onnx")], cwd=ROOT, env=ENV,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "deformable" in res.stderr and "Traceback" not in res.stderr


def test_sample_reads_a_seed_format_theta_file(tmp_path):
    from fbnet_symbol.space.spaces import decode_space
    layout = decode_space("fbnet", "seed")
    rng = np.random.RandomState(0)
    rows = [rng.normal(0, 3, len(l.candidates)) for l in layout.layers]
    lines = ["layer_%d_%d_theta_arc: %s" % (l.stage, l.position, " ".join(map(str, r)))
             for l, r in zip(layout.layers, rows)]
    path = tmp_path / "softmax_epoch_9_theta.txt"
    path.write_text("\n".join(lines) + "\n")
    res = sample("--theta", str(path), "--space", "fbnet", "--preset", "seed",
                 "--num-classes", "10", "--output", str(tmp_path / "o"), "--json")
    assert res.returncode == 0, res.stderr
    top = json.loads(res.stdout)["architectures"][0]
    assert top["blocks"] == [l.candidates[int(np.argmax(r))] for l, r in zip(layout.layers, rows)]
    assert "latency_ms" not in top  # no table given: no made-up latency
    bad = tmp_path / "bad.txt"
    bad.write_text("\n".join(lines[:20]) + "\n")
    res = sample("--theta", str(bad), "--space", "fbnet", "--output", str(tmp_path / "o2"))
    assert res.returncode == 2 and "has 20 layers but space fbnet" in res.stderr
