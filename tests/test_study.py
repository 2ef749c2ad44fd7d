"""The validity study on a tiny budget: every stage runs, the numbers add up, resume skips."""
import csv
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from fbnet_symbol.latency.timing import QUICK
from fbnet_symbol.search.study import run_study
from fbnet_symbol.search.study_stats import pareto_front, summarise
from tests.conftest import ROOT
from tests.test_cli_search import ENV
from tests.test_faults import finish, one_line, wait_for


def test_pareto_front_and_summary_on_known_numbers():
    points = [(1.0, 0.5), (2.0, 0.7), (1.5, 0.4), (3.0, 0.7), (0.5, 0.3)]
    assert sorted(pareto_front(points)) == [0, 1, 4]
    nets = [dict(kind="searched", name="s%d" % a, key="s", variant="", alpha=a, latency_ms=m,
                 accs=[v, v], expected_latency_ms=m, log_p={"s": 0.0})
            for a, m, v in ((0, 3.0, 0.9), (1, 2.0, 0.8), (3, 1.0, 0.6))]
    # a variant's network: counted apart, not in the headline
    nets.append(dict(kind="searched", name="v1", key="v", variant="long", alpha=1,
                     latency_ms=2.05, accs=[0.85, 0.85], expected_latency_ms=2.0,
                     log_p={"v": 0.0}))
    nets += [dict(kind="random", name="r%d" % i, latency_ms=m, accs=[v - 0.01, v + 0.01],
                  log_p={"s": lp})
             for i, (m, v, lp) in enumerate(((2.1, 0.7, -3), (1.0, 0.7, -2), (3.5, 0.95, -1),
                                              (2.0, 0.75, -4)))]
    for n in nets[-4:]:
        n["log_p"]["v"] = -n["log_p"]["s"]
    s = summarise(nets)
    assert s["spearman_alpha_vs_latency_ms"] == pytest.approx(-1.0)
    assert s["random_acc"]["median"] == pytest.approx(0.725)
    by_name = {p["name"]: p for p in s["per_searched"]}
    # s1 (2.0 ms, 0.8): neighbours 2.1 and 2.0 ms (0.7, 0.75); dominates both of them
    assert by_name["s1"]["neighbours"] == 2
    assert by_name["s1"]["difference"] == pytest.approx(0.8 - 0.725)
    assert by_name["s1"]["dominated_share"] == pytest.approx(0.5)
    # s3 (1.0 ms, 0.6) is beaten by its one neighbour (1.0 ms, 0.7), without spread enough
    assert by_name["s3"]["difference"] == pytest.approx(-0.1)
    assert by_name["s3"]["high"] < 0
    h = s["headline"]
    assert (h["with_neighbours"], h["better_than_neighbours"], h["worse_than_neighbours"]) \
        == (2, 1, 1)
    assert s["searched"] == 3 and s["variants"]["long"]["searched"] == 1
    assert s["variants"]["long"]["mean_difference"] == pytest.approx(0.85 - 0.725)
    # log P -3 -2 -1 -4 (ranks 2 3 4 1) against accuracy .7 .7 .95 .75 (ranks 1.5 1.5 4 3):
    # rho = 1.5 / sqrt(5 * 4.5), by hand
    assert s["rank_agreement"]["s"]["rho"] == pytest.approx(1.5 / np.sqrt(22.5))
    assert s["rank_agreement"]["v"]["rho"] == pytest.approx(-1.5 / np.sqrt(22.5))
    assert h["median_rank_agreement"] == pytest.approx(1.5 / np.sqrt(22.5))
    # at equal latency (latency ranks 3 1 4 2): with the rank correlations r(logP, lat) 0.4
    # and r(acc, lat) 3 / sqrt(22.5), the partial correlation by its textbook formula
    # (r_xy - r_xz r_yz) / sqrt((1 - r_xz^2)(1 - r_yz^2)) = 0.3 / sqrt(22.5 * 0.504)
    assert s["rank_agreement"]["s"]["partial_rho"] == pytest.approx(0.3 / np.sqrt(22.5 * 0.504))


def _study_flags(data, out, epochs):
    return ["--train-rec", data["train"], "--theta-rec", data["theta"], "--val-rec",
            data["val"], "--lut", data["lut"], "--image-shape", "3,8,8", "--width-mult", "0.25",
            "--batch-size", "8", "--search-epochs", str(epochs), "--alphas", "0,2", "--seeds",
            "0", "--random", "2", "--train-seeds", "1", "--train-epochs", "1", "--train-lr",
            "0.02", "--jobs", "2", "--quick", "--out", str(out), "--no-progress"]


def _as_at_a_terminal():
    """SIGINT handled as in a terminal's foreground job: a test suite started in the
    background (``make test &``, nohup) has it ignored, and a child keeps that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _stop_while_both_search(flags, out, ctrl_c):
    """``fbnet study`` as a user runs it, stopped while both workers search: by SIGTERM to
    the study, or by Ctrl-C (SIGINT to the terminal's whole process group)."""
    proc = subprocess.Popen([sys.executable, "-m", "fbnet_symbol", "study", *flags], cwd=ROOT,
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=ctrl_c, preexec_fn=_as_at_a_terminal)
    wait_for(out / "search" / "alpha0_seed0" / "study-run.log", "epoch 0 done", proc)
    if ctrl_c:
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGTERM)
    code, _, err = finish(proc, timeout=300)
    stopped = [d for d in (out / "search").iterdir() if not (d / "result.json").exists()]
    # each run under way stopped at a step with a checkpoint, the study with one line
    assert stopped and all(list((d / "checkpoints").glob("*.params")) for d in stopped), err
    return code, err, stopped


@pytest.mark.slow
def test_study_stops_on_sigterm_then_resumes_and_ends(tiny_data, tmp_path):
    from fbnet_symbol.search.study import _parser, study_plan
    out = tmp_path / "study"
    flags = _study_flags(tiny_data, out, epochs=4)
    code, err, stopped = _stop_while_both_search(flags, out, ctrl_c=False)
    assert code == 143 and one_line(err, "stopped: ") == "stopped: SIGTERM", err[-3000:]
    # run again (here in-process, with a variant): the stopped searches resume
    base, plan = study_plan(_parser().parse_args(flags))
    plan["variants"] = [("short", {"epochs": 1, "warmup_epochs": 0}, [2.0], [1])]
    summary = run_study(base, str(out), progress=False, policy=QUICK, **plan)
    assert all("resumed from" in (d / "study-run.log").read_text() for d in stopped)
    rows = list(csv.DictReader(open(out / "study.csv")))
    kinds = [r["kind"] for r in rows]
    assert kinds[:5] == ["searched"] * 3 + ["random"] * 2
    assert set(kinds[5:]) == {"baseline"}  # all k3_e6, all k3_e1 (FBNet-A/B/C: not in seed)
    assert rows[2]["name"] == "searched_short_alpha2_seed1"
    assert summary["variants"]["short"]["searched"] == 1
    assert all(float(r["latency_ms"]) > 0 and 0 <= float(r["acc_mean"]) <= 1 for r in rows)
    # one seed each, two for the searched networks and their latency neighbours
    seeds = {r["name"]: len(r["accs"].split()) for r in rows}
    assert seeds["searched_alpha0_seed0"] == 2 and set(seeds.values()) <= {1, 2}
    assert summary["searched"] == 2 and summary["random"] == 2
    assert -1 <= summary["spearman_alpha_vs_expected_latency_ms"] <= 1
    assert set(summary["rank_agreement"]) == {"alpha0_seed0", "alpha2_seed0",
                                              "short_alpha2_seed1"}
    assert (out / "study.png").is_file() and json.loads((out / "summary.json").read_text())
    # the random networks cover the searched networks' predicted latency range
    picks = json.loads((out / "random.json").read_text())
    assert len(picks) == 2 and len({tuple(p) for p in picks}) == 2
    # run again: every finished run is skipped, the same numbers come back
    stamps = {p: p.stat().st_mtime for p in out.rglob("result.json")}
    again = run_study(base, str(out), progress=False, policy=QUICK, **dict(plan, workers=1))
    assert {p: p.stat().st_mtime for p in out.rglob("result.json")} == stamps
    assert again["per_searched"] == summary["per_searched"]


@pytest.mark.slow
def test_ctrl_c_stops_a_study_once_with_a_checkpoint_in_each_search(tiny_data, tmp_path):
    # the workers do not see the terminal's SIGINT: the study forwards one SIGTERM, so no
    # worker takes it for a second signal and stops without its checkpoint
    out = tmp_path / "study"
    code, err, _ = _stop_while_both_search(_study_flags(tiny_data, out, epochs=4), out,
                                           ctrl_c=True)
    assert code == 130 and one_line(err, "interrupted") == "interrupted", err[-3000:]


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


def test_a_task_sets_the_searches_and_trainings_unless_a_flag_is_given():
    from fbnet_symbol.search.study import _parser, study_plan

    def plan(*flags):
        return study_plan(_parser().parse_args([
            "--task", "cluttered-digits", "--train-rec", "a.rec", "--theta-rec", "b.rec",
            "--val-rec", "c.rec"] + list(flags)))

    base, p = plan()
    assert (base.lr, base.image_shape, base.width_mult) == (0.02, (3, 16, 16), 0.5)
    assert base.epochs == 6 and base.temperature_decay == 0.956
    assert p["train"]["lr"] == 0.01
    assert [v[0] for v in p["variants"]] == ["annealed"]
    base, p = plan("--search-lr", "0.05", "--train-lr", "0.03", "--search-epochs", "4",
                   "--quick")
    assert base.lr == 0.05 and p["train"]["lr"] == 0.03 and base.epochs == 4
    assert p["variants"] == []
    assert base.train_rec == "a.rec"  # the user's data, not the task's


def test_random_networks_reach_the_nearly_all_skip_networks_a_large_alpha_finds():
    from fbnet_symbol.latency.table import LatencyTable
    from fbnet_symbol.search.study import random_networks
    from fbnet_symbol.space.spaces import decode_space
    layout = decode_space("fbnet", "seed", (3, 16, 16), 0.5)
    rng = np.random.RandomState(0)
    # as measured: skip costs next to nothing, every other block more
    values = [[0.001 if c == "skip" else rng.uniform(0.02, 0.1) for c in l.candidates]
              for l in layout.layers]
    table = LatencyTable(values, [list(l.candidates) for l in layout.layers], {})
    lightest = sum(min(v) for v in values)
    heavy = sum(max(v) for v in values)
    picks = random_networks(layout, table, lightest, 0.6 * heavy, 10)
    lat = sorted(table.blocks_latency(layout, b) for b in picks)
    assert len(set(picks)) == 10
    # within a third of the lightest network (a pool of 400 uniform-preference draws: 2.3x)
    assert lat[0] <= 1.35 * lightest
    assert lat[-1] >= 0.55 * heavy  # and the range covered up to the top


def test_the_plot_names_the_score_it_compares():
    from fbnet_symbol.search.study_report import metric_label
    assert metric_label("val_acc") == "validation top-1"
    assert metric_label("pairs_acc") == "verification accuracy (pairs.bin)"
