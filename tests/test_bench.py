"""The supernet benchmark prints its figures (and, asked to, where the time went)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT, separate_python


def test_bench_supernet_json_with_profile():
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bench", "bench_supernet.py"), "--image-shape",
         "3,8,8", "--batch-size", "2", "--width-mult", "0.25", "--steps", "1", "--warmup", "0",
         "--json", "--profile", "theta"],
        capture_output=True, text=True, timeout=300, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    for key in ("weight_samples_per_s", "theta_samples_per_s", "peak_rss_mib"):
        assert result[key] > 0
    ops = {row["operator"]: row for row in result["profile"]}
    assert "Convolution" in ops and "_backward_Convolution" in ops  # ops timed one by one
    assert all(row["calls"] > 0 and row["ms"] >= 0 for row in result["profile"])
    assert sum(row["percent"] for row in result["profile"]) <= 100.0 + 1e-6


def test_bench_faces_json():
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bench", "bench_faces.py"), "--images", "40",
         "--batch-size", "16", "--rounds", "1", "--pairs", "10", "--width-mult", "0.25", "--json"],
        capture_output=True, text=True, timeout=300, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    for size in ("112x112", "32x32"):
        speeds = result["reader_images_per_s"][size]
        assert speeds["identity_indexed"] > 0 and speeds["flat"] > 0
        assert speeds["flat_image_record_iter"] > 0
    assert result["verification"]["pairs"] == 10 and result["verification"]["seconds"] > 0


def test_bench_loop_reports_the_loop_beside_the_data_free_step():
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bench", "bench_loop.py"), "--preset", "seed",
         "--image-shape", "3,8,8", "--width-mult", "0.25", "--batch-size", "4", "--steps", "2",
         "--rounds", "1", "--threads", "1", "--json"],
        capture_output=True, text=True, timeout=300, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    for key in ("step_weight", "step_theta", "loop_weight", "loop_theta"):
        assert result["median"][key] > 0, key
    assert result["omp_threads"] == 1 and result["loop_over_step"] > 0


def test_the_pytorch_reference_is_the_same_supernet_and_is_timed_beside_ours():
    python = separate_python("FBNET_TORCH_PYTHON", ".venv-torch", "PyTorch")
    count = ("import sys; sys.path[:0] = [%r, %r]; from torch_supernet import Supernet; "
             "from fbnet_symbol.space.spaces import decode_space; "
             "net = Supernet(decode_space('fbnet', sys.argv[1], (3, 16, 16), 0.5)); "
             "print(sum(p.numel() for n, p in net.named_parameters() "
             "if not n.startswith('theta')))" % (os.path.join(ROOT, "bench"), ROOT))
    from fbnet_symbol.latency.table import LatencyTable
    from fbnet_symbol.search.supernet import Supernet
    from fbnet_symbol.space.spaces import decode_space
    for preset in ("paper", "seed"):  # the same layers, candidates and parameters as ours
        theirs = int(subprocess.run([python, "-c", count, preset], capture_output=True,
                                    text=True, check=True).stdout.split()[-1])
        layout = decode_space("fbnet", preset, (3, 16, 16), 0.5)
        table = LatencyTable([[1.0] * len(l.candidates) for l in layout.layers])
        ours = Supernet(10, table, preset, (3, 16, 16), 0.5, alpha=0.2, beta=0.6,
                        loss_form="add", noise_mode="batch", theta_init=1.0, space="fbnet")
        descs = {d.name: d.shape for d in ours.input_descs(2) + ours.label_descs(2)}
        shapes = dict(zip(ours.symbol.list_arguments(), ours.symbol.infer_shape(**descs)[0]))
        mine = sum(int(__import__("numpy").prod(s)) for k, s in shapes.items()
                   if k not in descs and not k.startswith("theta_"))
        assert theirs == mine, preset
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bench", "bench_vs_torch.py"), "--image-shape",
         "3,8,8", "--width-mult", "0.25", "--batch-size", "2", "--steps", "1", "--rounds", "1",
         "--torch-python", python, "--json"],
        capture_output=True, text=True, timeout=600, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    for key in ("ours_weight", "ours_theta", "pytorch_weight", "pytorch_theta"):
        assert result["median"][key] > 0, key
    assert result["weight_ratio"] > 0 and result["peak_rss_mib_pytorch"] > 0
    assert result["rounds"][0]["pytorch"]["data"] == "random"


def test_the_two_loops_read_the_same_rec_each_its_own_way(tmp_path, monkeypatch):
    """``--data rec``: PyTorch's DataLoader gets the images our reader gives (same pixels,
    same labels), and both loops report their figures."""
    python = separate_python("FBNET_TORCH_PYTHON", ".venv-torch", "PyTorch")
    monkeypatch.syspath_prepend(os.path.join(ROOT, "bench"))
    from bench_loop import write_bench_data
    from fbnet_symbol.data.reader import RecordReader
    from fbnet_symbol.data.recordio import check_recordio
    rec = write_bench_data(str(tmp_path), 12, 6, 0)
    theirs_npy = str(tmp_path / "theirs.npy")
    dump = ("import sys, numpy; sys.path[:0] = [%r, %r]; from torch_supernet import "
            "RecordImages; d = RecordImages(sys.argv[1], (3, 12, 12)); items = [d[i] for i in "
            "range(len(d))]; numpy.save(sys.argv[2], numpy.stack([x.numpy() for x, _ in "
            "items])); print(' '.join(str(y) for _, y in items))"
            % (os.path.join(ROOT, "bench"), ROOT))
    labels = subprocess.run([python, "-c", dump, rec, theirs_npy], capture_output=True,
                            text=True, check=True).stdout.split()
    batch = next(iter(RecordReader(check_recordio(rec), (3, 12, 12), 6, shuffle=False)))
    np.testing.assert_allclose(np.load(theirs_npy), batch.data[0].asnumpy(), atol=1e-6)
    assert [int(v) for v in labels] == batch.label[0].asnumpy().astype(int).tolist()
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bench", "bench_vs_torch.py"), "--data", "rec",
         "--image-shape", "3,8,8", "--width-mult", "0.25", "--batch-size", "2", "--steps", "2",
         "--rounds", "1", "--threads", "1", "--torch-python", python, "--json"],
        capture_output=True, text=True, timeout=600, check=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert result["data"] == "rec" and result["rounds"][0]["pytorch"]["data"] == "rec"
    bad = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bench", "bench_vs_torch.py"), "--train-rec",
         str(tmp_path / "missing.rec"), "--theta-rec", rec, "--torch-python", python],
        capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "missing.rec does not exist" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) <= 2  # usage line and the one error
    for key in ("ours_weight", "ours_theta", "pytorch_weight", "pytorch_theta"):
        assert result["median"][key] > 0, key


def test_every_candidate_block_computes_what_pytorch_computes_in_float64():
    """bench/check_blocks.py: each candidate's output, gradients and BatchNorm statistics
    beside PyTorch in float64 (both presets: BN inside, or conv biases), and its comparison
    notices a wrong array."""
    python = separate_python("FBNET_TORCH_PYTHON", ".venv-torch", "PyTorch")
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    try:
        from check_blocks import KINK, compare
    finally:
        sys.path.pop(0)
    for preset in ("paper", "seed"):
        out = subprocess.run(
            [sys.executable, os.path.join(ROOT, "bench", "check_blocks.py"), "--preset", preset,
             "--image-shape", "3,16,16", "--width-mult", "0.25", "--batch-size", "8",
             "--layers", "0,1,21", "--torch-python", python, "--json"],
            capture_output=True, text=True, timeout=600, check=True).stdout
        blocks = json.loads(out.strip().splitlines()[-1])
        assert len(blocks) == 24, preset  # 8 candidates (skip has nothing to check) x 3
        clean = {b: v for b, v in blocks.items() if v["kink"] > KINK}
        assert len(clean) >= 12, preset
        assert max(v["worst"] for v in clean.values()) < 1e-4, (preset, clean)
    import numpy as np
    ours = {"b|out:grad:w": np.array([1.0, 2.0]), "b|out:output": np.array([3.0])}
    reference = {"b|out:grad:w": np.array([1.0, 2.01]), "b|out:output": np.array([3.0]),
                 "b|out:kink": np.array([0.5])}
    (worst, array, kink), = compare(ours, reference).values()
    assert abs(worst - 0.01 / 2.01) < 1e-9 and array == "grad:w" and kink == 0.5


def test_the_bench_and_the_loop_define_their_figures_alike(tmp_path, monkeypatch, capsys):
    """On a clock that only a step moves (0.2 s a weight step, 0.5 s a θ step, 3 s more for
    a Module's first: its warm-up) the data-free bench and the search loop must report the
    same samples/s, whatever their step counts or bookkeeping: they time alike."""
    import mxnet as mx

    import fbnet_symbol.train.meter as meter
    from fbnet_symbol.commands import search
    from fbnet_symbol.dist.cluster import HandReducedModule
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    try:
        import bench_loop
        import bench_supernet
    finally:
        sys.path.pop(0)
    elapsed = [0.0]
    backward = mx.mod.Module.backward

    def costed_backward(self, *a, **kw):  # one backward per step, forward_backward included
        elapsed[0] += (0.5 if isinstance(self, HandReducedModule) else 0.2) + \
            (0 if getattr(self, "warm", False) else 3.0)
        self.warm = True
        return backward(self, *a, **kw)
    monkeypatch.setattr(mx.mod.Module, "backward", costed_backward)
    monkeypatch.setattr(meter, "now", lambda: elapsed[0])
    flags = ["--preset", "seed", "--image-shape", "3,8,8", "--width-mult", "0.25",
             "--batch-size", "4", "--threads", "1"]
    bench_supernet.main(flags + ["--steps", "3", "--warmup", "0", "--json"])
    step = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    search.main(bench_loop.loop_argv(bench_loop.parse_args(flags + ["--steps", "2"]),
                                     str(tmp_path)))
    loop = bench_loop.loop_figures(str(tmp_path / "out"))
    for phase, seconds in (("weight", 0.2), ("theta", 0.5)):
        assert step["%s_samples_per_s" % phase] == pytest.approx(4 / seconds), phase
        assert loop["%s_samples_per_s" % phase] == pytest.approx(4 / seconds), phase
