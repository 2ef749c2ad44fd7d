"""The validity study on a tiny budget: every stage runs, the numbers add up, resume skips."""
import csv
import json

import numpy as np
import pytest

from fbnet_symbol.latency.timing import QUICK
from fbnet_symbol.search.study import pareto_front, run_study, summarise
from fbnet_symbol.settings import Settings, resolve


def test_pareto_front_and_summary_on_known_numbers():
    points = [(1.0, 0.5), (2.0, 0.7), (1.5, 0.4), (3.0, 0.7), (0.5, 0.3)]
    assert sorted(pareto_front(points)) == [0, 1, 4]
    rows = [dict(kind="searched", alpha=a, measured_ms=m, val_acc=v, expected_latency_ms=m,
                 entropy=0.5) for a, m, v in ((0, 3.0, 0.9), (1, 2.0, 0.8), (3, 1.0, 0.6))]
    rows += [dict(kind="random", measured_ms=m, val_acc=v)
             for m, v in ((2.5, 0.7), (1.0, 0.7), (3.5, 0.95), (2.0, 0.8))]
    s = summarise(rows)
    assert s["spearman_alpha_vs_measured_ms"] == pytest.approx(-1.0)
    # beaten or matched: (2.5, .7) by (2.0, .8); (2.0, .8) matched; not (1.0, .7), (3.5, .95)
    assert s["random_matched_or_beaten"] == pytest.approx(0.5)


@pytest.mark.slow
def test_study_runs_end_to_end_and_resumes(tiny_data, tmp_path):
    base = resolve(Settings(train_rec=tiny_data["train"], theta_rec=tiny_data["theta"],
                            val_rec=tiny_data["val"], lut=tiny_data["lut"], image_shape=(3, 8, 8),
                            width_mult=0.25, batch_size=8, epochs=2, warmup_epochs=1,
                            loss_form="relative"))
    out = tmp_path / "study"
    summary = run_study(base, str(out), [0.0, 2.0], [0], 2, train_epochs=1, progress=False,
                        policy=QUICK)
    rows = list(csv.DictReader(open(out / "study.csv")))
    assert [r["kind"] for r in rows] == ["searched", "searched", "random", "random"]
    assert all(float(r["measured_ms"]) > 0 and 0 <= float(r["val_acc"]) <= 1 for r in rows)
    assert summary["searched"] == 2 and summary["random"] == 2
    assert -1 <= summary["spearman_alpha_vs_expected_latency_ms"] <= 1
    assert 0 <= summary["random_matched_or_beaten"] <= 1
    assert (out / "study.png").is_file() and json.loads((out / "summary.json").read_text())
    # the random networks cover the searched networks' predicted latency range
    picks = json.loads((out / "random.json").read_text())
    assert len(picks) == 2 and len({tuple(p) for p in picks}) == 2
    # run again: every finished run is skipped, the same numbers come back
    stamps = {p: p.stat().st_mtime for p in out.rglob("result.json")}
    again = run_study(base, str(out), [0.0, 2.0], [0], 2, train_epochs=1, progress=False,
                      policy=QUICK)
    assert {p: p.stat().st_mtime for p in out.rglob("result.json")} == stamps
    assert np.isclose(again["random_matched_or_beaten"], summary["random_matched_or_beaten"])


def test_study_statistics_on_a_hand_computed_example():
    from fbnet_symbol.search import study_stats as st
    searched = {"latency_ms": 10.0, "accs": [0.80, 0.84]}                  # mean 0.82
    randoms = [{"latency_ms": 9.5, "accs": [0.70, 0.74]},                 # neighbour, 0.72
               {"latency_ms": 10.8, "accs": [0.78, 0.78]},                # neighbour, 0.78
               {"latency_ms": 12.0, "accs": [0.90, 0.86]},                # 20% slower, 0.88
               {"latency_ms": 8.0, "accs": [0.60, 0.62]}]                 # 20% faster, 0.61
    assert st.neighbours(searched, randoms) == randoms[:2]
    d = st.neighbour_difference(searched, randoms, draws=4000)
    assert d["neighbours"] == 2 and d["difference"] == pytest.approx(0.82 - 0.75)
    # every bootstrap draw lies between the extremes 0.80 - 0.78 and 0.84 - 0.70
    assert 0.02 - 1e-12 <= d["low"] < 0.07 < d["high"] <= 0.14 + 1e-12
    # no spread in either: the interval is the difference itself
    flat = st.neighbour_difference({"latency_ms": 1.0, "accs": [0.8, 0.8]},
                                   [{"latency_ms": 1.05, "accs": [0.7, 0.7]}])
    assert flat["low"] == pytest.approx(0.1) and flat["high"] == pytest.approx(0.1)
    assert st.neighbour_difference(searched, randoms[2:])["difference"] is None
    # dominated: only the 10.8 ms network (slower and less accurate)
    assert st.dominated_share(searched, randoms) == pytest.approx(0.25)
    assert not st.dominates(searched, dict(searched))  # a tie dominates nothing
    # Spearman by hand: ranks 1 2 3 4 against 1 3 2 4, sum d^2 = 2, rho = 1 - 12/60
    assert st.rank_agreement([1, 2, 3, 4], [0.1, 0.3, 0.2, 0.4])["rho"] == pytest.approx(0.8)
