import json
import os
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest

from fbnet_symbol.errors import FBNetError
from fbnet_symbol.latency import measure as latency_measure
from fbnet_symbol.latency import table as latency
from fbnet_symbol.latency.measure import cached_table, measure_table
from fbnet_symbol.latency.table import LatencyTable, load_table
from fbnet_symbol.latency.timing import QUICK
from fbnet_symbol.latency.validate import candidate_architectures, error_stats
from fbnet_symbol.space.architecture import load_architecture
from fbnet_symbol.space.spaces import decode_space
from tests.conftest import ROOT, synthetic_lut

SEED = decode_space("fbnet", "seed")


def synthetic_table(layout, batch_size=1):
    rng = np.random.RandomState(0)
    values = [list(rng.uniform(0.1, 2.0, len(l.candidates))) for l in layout.layers]
    meta = {"space": layout.space.name, "preset": layout.preset.name,
            "image_shape": list(layout.image_shape), "batch_size": batch_size,
            "width_mult": layout.width_mult, "device": "cpu(0)", "overhead_ms": 0.05}
    fixed = {p: {"median_ms": 0.5 + i} for i, p in enumerate(latency.FIXED_PARTS)}
    return LatencyTable(values, [list(l.candidates) for l in layout.layers], meta,
                        fixed=fixed)


def test_round_trip_txt_and_json(tmp_path):
    table = synthetic_table(SEED)
    txt, js = table.save(str(tmp_path / "speed.txt"))
    assert os.path.basename(js) == "speed.json"
    from_json = load_table(js).check(SEED, 1)
    from_txt = load_table(txt).check(SEED)
    np.testing.assert_allclose(np.concatenate(from_json.values), np.concatenate(table.values))
    np.testing.assert_allclose(np.concatenate(from_txt.values), np.concatenate(table.values),
                               rtol=1e-5)
    assert from_json.meta == table.meta and from_json.candidates == table.candidates
    assert from_txt.meta == {}
    assert len(open(txt).read().splitlines()) == 22
    # the files users keep carry a fixed tag, whatever the module is called now
    import json
    assert json.load(open(js))["format"] == "fbnet_symbol.latency/1"


def test_reads_seed_format_table(tmp_path):
    # the seed's layout: 22 lines, 8 values in a stage's first layer, 9 elsewhere
    counts = [8] + [8, 9, 9, 9] * 5 + [8]
    lines = [" ".join("%.12f" % (0.1 + 0.01 * i + 0.001 * l) for i in range(n))
             for l, n in enumerate(counts)]
    path = tmp_path / "speed.txt"
    path.write_text("\n".join(lines) + "\n")
    table = load_table(str(path)).check(SEED)
    assert [len(r) for r in table.values] == counts
    assert table.cost(SEED, 2, "skip") == pytest.approx(0.1 + 0.08 + 0.002)
    # a seed table has 8 columns in layer 1, the paper preset offers 9 there
    with pytest.raises(FBNetError, match="row 1 has 8 values but layer 1 .* has 9 candidates"):
        table.check(decode_space("fbnet", "paper", (3, 108, 108)))


def test_refuses_mismatched_tables(tmp_path):
    table = synthetic_table(SEED)
    js = table.save(str(tmp_path / "speed.txt"))[1]
    loaded = load_table(js)
    with pytest.raises(FBNetError, match="measured for preset=seed but this run uses preset=paper"):
        loaded.check(decode_space("fbnet", "paper", (3, 108, 108)))
    with pytest.raises(FBNetError, match="image_shape=3x108x108 but this run uses image_shape=3x32x32"):
        loaded.check(decode_space("fbnet", "seed", (3, 32, 32)))
    with pytest.raises(FBNetError, match="batch_size=1 but this run uses batch_size=8"):
        loaded.check(SEED, batch_size=8)
    with pytest.raises(FBNetError, match="measured for space=fbnet but this run uses space=fbnet_se"):
        loaded.check(decode_space("fbnet_se", "seed"))
    short = tmp_path / "short.txt"
    short.write_text("".join(table.to_txt().splitlines(True)[:21]))
    with pytest.raises(FBNetError, match="has 21 rows but space 'fbnet' has 22"):
        load_table(str(short)).check(SEED)
    bad = tmp_path / "bad.txt"
    bad.write_text(table.to_txt().replace(table.to_txt().split()[0], "-1.0", 1))
    with pytest.raises(FBNetError, match="non-positive"):
        load_table(str(bad)).check(SEED)
    garbage = tmp_path / "garbage.txt"
    garbage.write_text("0.1 0.2 abc\n")
    with pytest.raises(FBNetError, match="line 1 is not a list of numbers"):
        load_table(str(garbage))
    with pytest.raises(FBNetError, match="does not exist"):
        load_table(str(tmp_path / "missing.txt"))
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(FBNetError, match="is not valid JSON"):
        load_table(str(broken))


def test_predict_sums_overhead_fixed_and_blocks():
    table = synthetic_table(SEED)
    arch = load_architecture("fbnet_b").replace(preset="seed")
    want = 0.05 + 0.5 + 1.5 + 2.5 + sum(
        table.values[l.index][l.candidates.index(arch.blocks[l.index])] for l in SEED.layers)
    assert table.predict(arch, SEED) == pytest.approx(want)
    with pytest.raises(FBNetError, match="no entry for 'skip' at layer 1"):
        table.predict(load_architecture("fbnet_a").replace(preset="seed"), SEED)


@pytest.mark.parametrize("space,width", [("fbnet", 0.25), ("fbnet_se", 0.125)])
def test_measuring_a_tiny_space(space, width):
    layout = decode_space(space, "seed", (3, 16, 16), width)
    table = measure_table(layout, mx.cpu(), 1, num_classes=10, policy=QUICK, progress=False)
    table.check(layout, 1)
    values = np.concatenate(table.values)
    assert np.isfinite(values).all() and (values > 0).all()
    assert set(table.fixed) == set(latency.FIXED_PARTS)
    assert table.meta["overhead_ms"] > 0 and table.meta["unique_measurements"] < sum(
        len(l.candidates) for l in layout.layers)  # identical layers measured once
    arch = candidate_architectures(table, 1)[0]
    assert table.predict(arch) > table.meta["overhead_ms"]


def test_cached_table_measures_once(tmp_path, monkeypatch):
    monkeypatch.setenv("FBNET_SYMBOL_CACHE", str(tmp_path))
    layout = decode_space("fbnet", "seed", (3, 16, 16), 0.25)
    # measured in a fresh process (timing in-process slows the training that follows)
    monkeypatch.setattr(latency_measure, "measure_table", None)
    first, path = cached_table(layout, mx.cpu(), 1, policy=QUICK, progress=False)
    assert os.path.isfile(path) and path.startswith(str(tmp_path))
    assert first.check(layout, 1) and first.meta["device"] == "cpu(0)"

    def fail(*a, **k):
        raise AssertionError("measured again")
    monkeypatch.setattr(latency_measure, "measure_in_fresh_process", fail)
    second, path2 = cached_table(layout, mx.cpu(), 1, policy=QUICK, progress=False)
    assert path2 == path and second.values == first.values
    # another shape is another table
    with pytest.raises(AssertionError, match="measured again"):
        cached_table(decode_space("fbnet", "seed", (3, 8, 8), 0.25), mx.cpu(), 1)
    # so is another thread count: the cache does not hand it over silently
    monkeypatch.setenv("MXNET_OMP_MAX_THREADS", str(first.meta["omp_threads"] + 1))
    with pytest.raises(AssertionError, match="measured again"):
        cached_table(layout, mx.cpu(), 1)


def test_a_failed_measuring_process_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("FBNET_SYMBOL_CACHE", str(tmp_path))
    layout = decode_space("fbnet", "seed", (3, 8, 8), 0.25)
    with pytest.raises(FBNetError, match="measuring the latency table failed .* --lut"):
        latency_measure.measure_in_fresh_process(layout, "gpu(7)", 1, str(tmp_path / "t.json"),
                                                 QUICK, False)
    assert not (tmp_path / "t.json").exists()


def test_a_table_of_another_thread_count_is_named(tmp_path, monkeypatch, caplog):
    layout = decode_space("fbnet", "seed", (3, 8, 8), 0.25)
    table = load_table(synthetic_lut(tmp_path / "t.txt"))
    monkeypatch.setenv("MXNET_OMP_MAX_THREADS", "2")
    table.meta["omp_threads"] = 2
    table.check(layout, 1)
    assert "threads" not in caplog.text
    table.meta["omp_threads"] = 1
    table.check(layout, 1)
    table.check(layout, 1)  # a search checks its table twice: one warning
    assert caplog.text.count("measured with 1 MXNet threads, this run uses 2") == 1


def test_validation_arithmetic_on_known_numbers():
    s = error_stats([110.0, 90.0, 200.0, 50.0], [100.0, 100.0, 100.0, 50.0])
    np.testing.assert_allclose(s["errors_pct"], [10.0, -10.0, 100.0, 0.0])
    assert s["median_abs_error_pct"] == pytest.approx(10.0)
    # ranks (1,2,3,4) vs (1,2,4,3): rho = 1 - 6*2/(4*15) = 0.8
    assert error_stats([1, 2, 3, 4], [10, 20, 40, 30])["spearman"] == pytest.approx(0.8)
    assert error_stats([1, 2, 3], [3, 2, 1])["spearman"] == pytest.approx(-1.0)


@pytest.mark.slow
def test_cli_measure_and_validate(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("MXNET_ENGINE_TYPE", "MXNET_OMP_MAX_THREADS", "OMP_NUM_THREADS")}
    out = tmp_path / "speed.txt"
    res = subprocess.run([sys.executable, "block_speed_test.py", "--space", "fbnet",
                          "--image-shape", "3,16,16", "--width-mult", "0.25", "--gpu", "cpu",
                          "--output", str(out), "--quick", "--num-classes", "10",
                          "--threads", "2"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert out.exists() and (tmp_path / "speed.json").exists()
    assert json.loads((tmp_path / "speed.json").read_text())["omp_threads"] == 2
    # validated with the threads it was measured with
    res = subprocess.run([sys.executable, "block_speed_test.py", "--validate",
                          str(tmp_path / "speed.json"), "--num-archs", "3", "--json", "--quick"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "run 2 threads (the table's)" in res.stderr
    summary = json.loads(res.stdout)
    assert {"median_abs_error_pct", "spearman"} <= set(summary)
    assert summary["num_networks"] == 3 + 2  # 3 random + FBNet-B/C (A needs skip in layer 1)
    assert os.path.isfile(summary["csv"]) and os.path.isfile(summary["png"])
    res = subprocess.run([sys.executable, "block_speed_test.py", "--gpu", "7", "--output",
                          str(out)], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 2 and "GPU 7 does not exist" in res.stderr


def test_groups_timed_at_different_speeds_are_brought_to_one_speed(monkeypatch):
    """Two groups, the second timed while the machine ran 25% slower: the reference graph
    timed in both scales the second group's times back to the first group's speed."""
    import mxnet as mx

    from fbnet_symbol.latency import timing

    def sym(name):
        return mx.sym.relu(mx.sym.Variable("data"), name=name)

    items = [(sym("a%d" % i), (1, 4, 8, 8)) for i in range(4)]
    anchor = (sym("anchor"), (1, 4, 8, 8))
    true_ms = [1.0, 2.0, 3.0, 4.0]
    calls = []

    def fake_time_executors(exes, policy):
        slow = 1.25 if calls else 1.0  # the second group runs slower
        calls.append(len(exes))
        names = [list(e.output_dict)[0].split("_")[0] for e in exes]
        times = [(10.0 if n == "anchor" else true_ms[int(n[1:])]) * slow for n in names]
        return [timing.Timing(t, 0.1 * slow, 40) for t in times]

    monkeypatch.setattr(timing, "time_executors", fake_time_executors)
    size = timing.activation_bytes(*items[0])
    factors = []
    out = timing.time_symbols(items, mx.cpu(), memory_budget=3 * size, anchor=anchor,
                              factors=factors)
    assert calls == [3, 3]  # two items + the anchor per group
    np.testing.assert_allclose([t.median_ms for t in out], true_ms)
    np.testing.assert_allclose(factors, [1.0, 0.8])
    # without an anchor the drift stays in the results
    calls.clear()
    plain = timing.time_symbols(items, mx.cpu(), memory_budget=2 * size)
    assert [t.median_ms for t in plain][2] == pytest.approx(3.0 * 1.25)


def test_a_quick_table_is_cached_apart_from_a_full_one(tmp_path, monkeypatch):
    from fbnet_symbol.latency import measure
    from fbnet_symbol.latency.timing import QUICK, TimingPolicy
    from fbnet_symbol.space.spaces import decode_space
    from tests.conftest import synthetic_lut
    import mxnet as mx
    monkeypatch.setenv("FBNET_SYMBOL_CACHE", str(tmp_path))
    made = []

    def fake_measure(layout, ctx, batch_size, path, policy, progress):
        made.append((path, policy))
        synthetic_lut(path[:-5] + ".txt")

    monkeypatch.setattr(measure, "measure_in_fresh_process", fake_measure)
    layout = decode_space("fbnet", "seed", (3, 8, 8), 0.25)
    _, quick = measure.cached_table(layout, mx.cpu(), 1, QUICK, progress=False)
    _, full = measure.cached_table(layout, mx.cpu(), 1, TimingPolicy(), progress=False)
    assert quick.endswith("-quick.json") and full != quick and not full.endswith("-quick.json")
    assert [p for _, p in made] == [QUICK, TimingPolicy()]  # the quick one did not stand in
    measure.cached_table(layout, mx.cpu(), 1, QUICK, progress=False)
    assert len(made) == 2  # each is reused from the cache
