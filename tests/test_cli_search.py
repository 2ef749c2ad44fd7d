"""test.py as users run it: the seed's command line (on two CPU contexts), resume, errors."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import ROOT

ENV = {k: v for k, v in os.environ.items() if k != "MXNET_ENGINE_TYPE"}


def run_test_py(*args, timeout=600):
    return subprocess.run([sys.executable, "test.py", *args], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def common(tiny_data, out):
    return ["--train-rec", tiny_data["train"], "--theta-rec", tiny_data["theta"],
            "--lut", tiny_data["lut"], "--image-shape", "3,8,8", "--width-mult", "0.25",
            "--save-model-path", str(out), "--no-progress"]


@pytest.mark.slow
@pytest.mark.parametrize("head", ["softmax", "amsoftmax", "arcface"])
def test_seed_command_line_on_two_cpu_contexts(tiny_data, tmp_path, head):
    out = tmp_path / head
    res = run_test_py("--gpu", "cpu:0,cpu:1", "--log-frequence", "50", "--model-type", head,
                  "--batch-size", "32", "--epochs", "2", "--warmup-epochs", "1",
                  *common(tiny_data, out))
    assert res.returncode == 0, res.stderr[-2000:]
    assert "results in" in res.stdout
    arch = json.loads((out / "arch.json").read_text())
    assert arch["head"]["type"] == head and len(arch["blocks"]) == 22
    assert (out / "theta-result" / "epoch_1_theta.txt").is_file()
    log = (out / "search.log").read_text()
    assert json.loads((out / "args.json").read_text()) and "24 train / 16 theta images" in log
    assert "arguments:" in log  # logged before the checks, written once the run started


def read_theta(path):
    return {l.split(":")[0]: np.array(l.split(":")[1].split(), float)
            for l in open(path).read().splitlines()}


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted_run(tiny_data, tmp_path):
    args = ["--batch-size", "8", "--epochs", "4", "--warmup-epochs", "1", "--save-frequence",
            "1", "--seed", "5"]
    full = tmp_path / "full"
    res = run_test_py(*args, *common(tiny_data, full))
    assert res.returncode == 0, res.stderr[-2000:]
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "test.py", *args, *common(tiny_data, killed)],
                            cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline:  # kill it once a few checkpoints exist, mid-run
        folder = killed / "checkpoints"
        if folder.is_dir() and len([f for f in os.listdir(folder) if f.endswith(".json")]) >= 2 \
                and any(f.startswith("supernet-0009") for f in os.listdir(folder)):
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "theta-result" / "epoch_3_theta.txt").exists()
    res = run_test_py(*args, *common(tiny_data, killed), "--load-model-path", str(killed))
    assert res.returncode == 0, res.stderr[-2000:]
    want = read_theta(full / "theta-result" / "epoch_3_theta.txt")
    got = read_theta(killed / "theta-result" / "epoch_3_theta.txt")
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("extra,fragment", [
    (["--gpu", "0,1,2,3"], "GPU 0 does not exist"),
    (["--gpu", "cpu:0,cpu:1", "--batch-size", "7"], "not divisible by the 2 devices"),
    (["--lut", "/nope/speed.txt"], "does not exist"),
    (["--load-model-path", "/nope/model"], "--load-model-path /nope/model does not exist"),
    (["--model-type", "cosface"], "invalid choice: 'cosface'"),
    (["--space", "darts"], "invalid choice: 'darts'"),
])
def test_bad_input_one_line_no_traceback(tiny_data, tmp_path, extra, fragment):
    res = run_test_py(*common(tiny_data, tmp_path / "m"), "--epochs", "1", *extra)
    assert res.returncode == 2
    assert fragment in res.stderr and "Traceback" not in res.stderr
    errors = [l for l in res.stderr.splitlines() if l.startswith("error: ")]
    assert len(errors) == 1 and "usage:" not in res.stderr
    assert not (tmp_path / "m").exists()  # a refused start leaves no output folder


def test_train_fixed_architecture_on_two_cpu_contexts(tiny_data, tmp_path):
    out = tmp_path / "trained"
    args = ["--train-rec", tiny_data["train"], "--theta-rec", tiny_data["theta"],
            "--val-rec", tiny_data["val"], "--image-shape", "3,8,8", "--save-model-path", str(out),
            "--no-progress", "--gpu", "cpu:0,cpu:1", "--batch-size", "8", "--epochs", "2"]
    arch = '{"space": "fbnet", "blocks": %s, "width_mult": 0.25, "head": {"type": "amsoftmax"}}' \
        % json.dumps(["k3_e1"] * 22)
    res = run_test_py("--arch", arch, *args)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "validation top-1" in res.stdout
    assert (out / "model-symbol.json").is_file() and (out / "model-0002.params").is_file()
    hist = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in hist] == [0, 1] and all("val_acc" in h for h in hist)
    log = (out / "search.log").read_text()
    assert "24 train images" in log and "theta images" not in log  # no theta split trained
    # every file of the export is readable as the .params MXNet writes (not mkstemp's 0600)
    mode = os.stat(out / "model-0002.params").st_mode & 0o777
    for name in ("model-symbol.json", "model-input.json", "arch.json", "args.json",
                 "history.json"):
        assert os.stat(out / name).st_mode & 0o777 == mode, name
    bad = run_test_py("--arch", '{"space": "fbnet", "blocks": ["skip"]}', *args)
    assert bad.returncode == 2 and "1 blocks given" in bad.stderr and "Traceback" not in bad.stderr
