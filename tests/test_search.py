"""The search loop: outputs, device equivalence, exact resume, bad input."""
import logging
import os

import mxnet as mx
import numpy as np
import pytest

from fbnet_symbol.errors import FBNetError
from fbnet_symbol.search.run import SearchConfig, SearchRun, StopRequested
from fbnet_symbol.search.theta import probabilities


def config(tiny_data, out, **kw):
    base = dict(space="fbnet", preset="seed", image_shape=(3, 8, 8), width_mult=0.25,
                batch_size=8, epochs=3, warmup_epochs=1, train_rec=tiny_data["train"],
                theta_rec=tiny_data["theta"], lut=tiny_data["lut"], save_model_path=str(out),
                save_frequence=2, progress=False, log_frequence=0, seed=3, lr=0.05)
    base.update(kw)
    return SearchConfig(**base)


def final_params(run):
    arg, aux = run.trainer.params()
    return {k: v.asnumpy().copy() for k, v in arg.items()}


@pytest.mark.slow
def test_search_writes_its_outputs(tiny_data, tmp_path):
    out = tmp_path / "model"
    run = SearchRun(config(tiny_data, out, val_rec=tiny_data["val"]))
    summary = run.run()
    assert summary["epochs"] == 3 and len(summary["blocks"]) == 22
    for name in ("args.json", "arch.json", "history.json", "distribution.png", "latency.png",
                 "theta.png", "lut.txt", "lut.json"):
        assert (out / name).is_file(), name
    lines = (out / "theta-result" / "epoch_2_theta.txt").read_text().splitlines()
    assert len(lines) == 22 and lines[0].startswith("theta_layer1: ")
    assert len(lines[0].split(":")[1].split()) == 8  # the seed preset: no skip in layer 1
    np.testing.assert_allclose([float(v) for v in lines[0].split(":")[1].split()],
                               run.task.net.split_theta(run.trainer.params()[0])["layer1"], rtol=1e-6)
    # theta moved (warm-up epoch 0 leaves it alone; epochs 1-2 train it)
    hist = summary and __import__("json").loads((out / "history.json").read_text())
    assert [h["epoch"] for h in hist] == [0, 1, 2]
    assert "theta_ce" not in hist[0] and "theta_ce" in hist[1] and "val_acc" in hist[2]
    # the loop's own throughput per stage (24 weight images: 3 steps, the last 2 timed)
    assert hist[1]["weight_samples_per_s"] > 0 and hist[1]["theta_samples_per_s"] > 0
    # how concentrated P_theta is, every epoch, and the summary that reports it
    probs = probabilities(run.task.net.split_theta(run.trainer.params()[0]))
    assert hist[2]["probabilities"]["layer5"] == pytest.approx(list(probs["layer5"]), abs=1e-5)
    assert 0 < hist[2]["entropy"] < 1 and hist[0]["entropy"] == pytest.approx(1.0)
    assert summary["entropy"] == hist[2]["entropy"]
    assert summary["initial_expected_latency_ms"] == pytest.approx(hist[0]["expected_latency_ms"])
    assert not np.allclose(run.task.net.split_theta(run.trainer.params()[0])["layer5"], 1.0)
    ckpts = sorted(os.listdir(out / "checkpoints"))
    assert "supernet-symbol.json" in ckpts and any(c.endswith(".theta.states") for c in ckpts)
    record = [c for c in ckpts if c.endswith(".json") and c != "supernet-symbol.json"][-1]
    # the files users keep carry a fixed tag, whatever the module is called now
    assert __import__("json").loads((out / "checkpoints" / record).read_text())["format"] \
        == "fbnet_symbol.checkpoint/1"
    sym, arg, aux = mx.model.load_checkpoint(str(out / "checkpoints" / "supernet"),
                                             run.trainer.state.global_step)
    assert "theta_layer1" in arg


@pytest.mark.slow
def test_one_and_two_devices_give_the_same_updates(tiny_data, tmp_path):
    """Same global batch on cpu(0) vs cpu(0)+cpu(1), BN statistics frozen."""
    results = []
    for gpu in ("cpu:0", "cpu:0,cpu:1"):
        run = SearchRun(config(tiny_data, tmp_path / gpu.replace(",", "_").replace(":", ""),
                               gpu=gpu, epochs=2, warmup_epochs=1, freeze_bn=True,
                               save_frequence=0))
        run.run()
        results.append(final_params(run))
    one, two = results
    assert set(one) == set(two)
    moved = 0
    for name in one:
        np.testing.assert_allclose(one[name], two[name], rtol=2e-4, atol=2e-5, err_msg=name)
        moved += name.startswith("theta_") and not np.allclose(one[name], 1.0)
    assert moved == 22  # the theta phase ran, latency term included


@pytest.mark.slow
def test_resume_after_a_kill_ends_with_the_same_theta(tiny_data, tmp_path):
    full = SearchRun(config(tiny_data, tmp_path / "full"))
    full.run()
    want = final_params(full)
    for kill_at in (3, 7):  # inside epoch 1's weight phase / inside a theta phase
        out = tmp_path / ("killed%d" % kill_at)
        with pytest.raises(StopRequested):
            SearchRun(config(tiny_data, out)).run(stop_after_steps=kill_at)
        resumed = SearchRun(config(tiny_data, out, load_model_path=str(out)))
        resumed.run()
        got = final_params(resumed)
        for name in want:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6,
                                       err_msg="%s (killed at step %d)" % (name, kill_at))


@pytest.mark.slow
def test_damaged_checkpoint_is_skipped(tiny_data, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    out = tmp_path / "model"
    SearchRun(config(tiny_data, out, epochs=2)).run()
    folder = out / "checkpoints"
    newest = sorted(p for p in os.listdir(folder) if p.endswith(".params"))[-1]
    with open(folder / newest, "r+b") as f:
        f.seek(200)
        f.write(b"\x00" * 16)
    with pytest.raises(FBNetError, match="does not match its checksum"):
        SearchRun(config(tiny_data, out, epochs=2, load_model_path=str(folder / newest))).run()
    SearchRun(config(tiny_data, out, epochs=2, load_model_path=str(out))).run()
    assert "does not match its checksum" in caplog.text
    resumed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("resumed from")]
    assert len(resumed) == 1 and ".params" in resumed[0] and newest not in resumed[0]


@pytest.mark.parametrize("change,fragment", [
    ({"batch_size": 9, "gpu": "cpu:0,cpu:1"}, "--batch-size 9 is not divisible by the 2 devices"),
    ({"gpu": "3"}, "GPU 3 does not exist"),
    ({"model_type": "cosface"}, "unknown head"),
    ({"space": "darts"}, "unknown search space 'darts'"),
    ({"train_rec": "/nonexistent/train.rec"}, "--train-rec file /nonexistent/train.rec does not exist"),
    ({"theta_rec": None}, "give both --train-rec"),
    ({"preset": "paper"}, "measured for preset=seed but this run uses preset=paper"),
    ({"kv_store": "dist_sync"}, "DMLC_ROLE"),
    ({"kv_store": "dist_async"}, "use dist_sync"),
])
def test_bad_settings_give_one_line(tiny_data, tmp_path, change, fragment):
    with pytest.raises(FBNetError) as err:
        SearchRun(config(tiny_data, tmp_path / "m", **change)).run()
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_corrupt_rec_is_an_error_not_a_crash(tiny_data, tmp_path):
    rec = tiny_data["train"]
    size = os.path.getsize(rec)
    with open(rec, "r+b") as f:
        f.truncate(size - 100)
    with pytest.raises(FBNetError, match="truncated"):
        SearchRun(config(tiny_data, tmp_path / "m")).run()
    with open(tiny_data["theta"], "r+b") as f:  # a zeroed record header
        f.write(b"\x00" * 8)
    with pytest.raises(FBNetError, match="corrupt"):
        SearchRun(config(tiny_data, tmp_path / "m", train_rec=tiny_data["val"])).run()


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tiny_data, tmp_path):
    out = tmp_path / "m"
    with pytest.raises(FBNetError) as err:
        SearchRun(config(tiny_data, out, lr=1e12, save_frequence=1)).run()
    msg = str(err.value)
    assert "the loss became" in msg and "epoch 0, weight phase" in msg
    assert "Last good checkpoint: " in msg and "none yet" not in msg
    good = msg.split("Last good checkpoint: ")[1].split(". ")[0]
    assert os.path.isfile(good)
    from fbnet_symbol.checkpoint import verify
    arg, _ = verify(good).load_params()
    assert all(np.isfinite(v.asnumpy()).all() for v in arg.values())


def test_a_new_evaluation_and_callback_need_no_change_to_the_loop(tiny_data, tmp_path):
    """Evaluations see the network at an epoch end (outputs by name); callbacks see the
    epoch's figures and parameters; neither is handed the trainer."""
    from fbnet_symbol.train.trainer import Callback, EpochModel

    seen = []

    def batch_size_and_logit_shape(epoch, model):
        assert isinstance(model, EpochModel) and not hasattr(model, "modules")
        data = mx.nd.zeros((model.batch_size, 3, 8, 8))
        out = model.outputs(data, mx.nd.zeros((model.batch_size,)), model.batch_size)
        assert set(out) == {"loss", "logits", "ce", "latency", "embedding"}
        return {"logit_columns": int(out["logits"].shape[1])}

    class Recorder(Callback):
        def on_start(self):
            seen.append("start")

        def epoch_figures(self, epoch, arg_params):
            return {"theta_entries": sum(v.size for k, v in arg_params.items()
                                         if k.startswith("theta_"))}

        def on_epoch_end(self, epoch, record, history, arg_params, aux_params):
            seen.append((epoch, record["logit_columns"], record["theta_entries"],
                         "expected_latency_ms" in record, len(history)))

    run = SearchRun(config(tiny_data, tmp_path / "m", epochs=2),
                    evaluations=[batch_size_and_logit_shape])
    run.trainer.callbacks.append(Recorder())
    run.run()
    entries = sum(len(l.candidates) for l in run.task.layout.layers)
    assert seen == ["start", (0, 3, entries, True, 1), (1, 3, entries, True, 2)]
