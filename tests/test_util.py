import os

import numpy as np
import pytest

from fbnet_symbol.search.supernet import gumbel_noise, step_rng
from fbnet_symbol.train.schedules import CosineDecayScheduler_Grad


def test_cosine_with_linear_rise_after_restarts():
    s = CosineDecayScheduler_Grad(first_decay_step=100, t_mul=2.0, m_mul=0.5, alpha=0.01,
                                  base_lr=1.0, rise_region=10)
    assert s(0) == pytest.approx(1.0)
    assert s(50) == pytest.approx(0.01 + 0.99 * 0.5)        # half-way down the first cosine
    assert s(99) == pytest.approx(0.01, abs=1e-3)          # floor at the end of period 0
    # period 1 (200 updates, peak 0.5, floor 0.005) starts at the floor and rises linearly
    assert s(100) == pytest.approx(0.005)
    assert s(105) == pytest.approx(0.005 + (0.5 - 0.005) * 0.5)
    assert s(110) == pytest.approx(0.5)
    rise = [s(t) for t in range(100, 111)]
    assert np.all(np.diff(rise) > 0) and np.allclose(np.diff(rise), np.diff(rise)[0])
    fall = [s(t) for t in range(110, 300)]
    assert np.all(np.diff(fall) <= 0)
    assert s(299) == pytest.approx(0.005, rel=0.01)
    # period 2 starts at 300 with peak 0.25 and lasts 400
    assert s(300) == pytest.approx(0.0025) and s(310) == pytest.approx(0.25)
    assert s.period_of(699) == (2, 300, 400) and s.period_of(700)[0] == 3
    # a pure function of the update count (an exact resume continues the same curve)
    assert [s(t) for t in (250, 40, 250)] == [s(250), s(40), s(250)]


def test_gumbel_noise_distribution_and_determinism():
    a = gumbel_noise(step_rng(7, 3), (20000,))
    b = gumbel_noise(step_rng(7, 3), (20000,))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, gumbel_noise(step_rng(7, 4), (20000,)))
    assert a.mean() == pytest.approx(0.5772, abs=0.03)        # Euler-Mascheroni
    assert a.var() == pytest.approx(np.pi ** 2 / 6, rel=0.05)


def test_the_thread_count_follows_mxnets_rule():
    from fbnet_symbol import threads
    for user in ({"OMP_NUM_THREADS": "1"}, {"MXNET_OMP_MAX_THREADS": "3"},
                 {"MXNET_OMP_MAX_THREADS": "3", "OMP_NUM_THREADS": "1"}):
        assert threads.omp_threads(user) == (3 if "MXNET_OMP_MAX_THREADS" in user else 1)
    # nothing set: half the processors (MXNet assumes hyper-threads on x86)
    assert threads.omp_threads({}) == max(1, (os.cpu_count() or 1) // 2)
    assert threads.cores() >= 1


def test_threads_are_chosen_before_mxnet_loads():
    import subprocess
    import sys

    from fbnet_symbol import threads as threads_module
    from fbnet_symbol.errors import FBNetError
    from fbnet_symbol.threads import choose_threads, parse_threads
    assert choose_threads("2", env={"MXNET_OMP_MAX_THREADS": "3"}) == (2, "--threads")
    assert choose_threads("auto", env={"OMP_NUM_THREADS": "3"})[0] == 3
    # nothing set: every core the process may run on (not MXNet's half)
    assert choose_threads("auto", env={})[0] == threads_module.cores()
    for bad in ("0", "-1", "two"):
        with pytest.raises(FBNetError, match="--threads must be auto or a positive number"):
            parse_threads(bad)
    # the CLIs parse their settings (test.py's parser included) without loading MXNet, so
    # that use_threads can still set its count
    code = ("import sys, fbnet_symbol, fbnet_symbol.settings as s, fbnet_symbol.cli as c, "
            "fbnet_symbol.space.architecture, fbnet_symbol.latency.table;"
            "s.build_parser(c.ArgumentParser).parse_args(['--threads', '3']);"
            "assert 'mxnet' not in sys.modules, 'mxnet loaded';"
            "from fbnet_symbol.threads import use_threads; use_threads(3);"
            "from fbnet_symbol.dist.devices import runtime_info; print(runtime_info()['omp_threads'])")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS",
                                                            "MXNET_OMP_MAX_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.stdout.split() == ["3"], out.stderr[-500:]


def test_a_run_records_its_thread_count(tmp_path):
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS",)}
    code = ("from fbnet_symbol.dist.devices import runtime_info; print(runtime_info()['omp_threads'])")
    out = subprocess.run([sys.executable, "-c", code], env=dict(env, MXNET_OMP_MAX_THREADS="3"),
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["3"], out.stderr[-500:]


def test_an_error_gets_a_line_of_its_own_after_a_progress_bar(capsys):
    import sys

    from tqdm import tqdm

    from fbnet_symbol.cli import run
    from fbnet_symbol.errors import FBNetError

    def main(argv):
        for i in tqdm(range(10), file=sys.stderr, leave=False, mininterval=0):
            if i == 3:
                raise FBNetError("record 3 does not decode")

    with pytest.raises(SystemExit) as stop:
        run(main, [])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "3/10" in err  # the bar was drawn, then cleared before the error line
    assert err.split("\r")[-1].lstrip("\n").startswith("error: record 3 does not decode")


def test_files_written_atomically_get_the_permissions_open_would_give():
    """Not mkstemp's 0600: an exported model shared with a colleague must be readable."""
    import stat
    import tempfile

    from fbnet_symbol.fileio import atomic_write

    old = os.umask(0o022)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model-symbol.json")
            atomic_write(path, "{}")
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
            os.umask(0o027)
            atomic_write(path, "{}")
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    finally:
        os.umask(old)


def test_the_start_up_keeps_other_handlers_and_replaces_its_own(tmp_path, caplog):
    import logging

    from fbnet_symbol.cli import open_log_files, start
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        start(threads=None, log_file=str(tmp_path / "a.log"))
        open_log_files()
        logging.getLogger("t").info("first run")
        start(threads=None, log_file=str(tmp_path / "b.log"))  # a second run, one process
        open_log_files()
        logging.getLogger("t").info("second run")
        assert caplog.handler in root.handlers  # pytest's (a caller's) handler is kept
        assert "first run" in caplog.text and "second run" in caplog.text
        assert "second run" not in (tmp_path / "a.log").read_text()
        assert "second run" in (tmp_path / "b.log").read_text()
        consoles = [h for h in root.handlers if getattr(h, "fbnet_owned", False)
                    and not hasattr(h, "path")]
        assert len(consoles) <= 1
    finally:
        for h in [h for h in root.handlers if h not in before]:
            root.removeHandler(h)
            h.close()


def test_a_log_line_during_a_progress_bar_gets_a_line_of_its_own():
    """`--log-frequence` lines and the study's "finished" lines print while a bar is drawn;
    each must start its own line, not follow the bar's text."""
    import re
    import subprocess
    import sys

    from tests.conftest import ROOT
    program = ("import logging, sys; sys.path.insert(0, %r); from tqdm import tqdm; "
               "from fbnet_symbol.cli import setup_logging; setup_logging(); "
               "bar = tqdm(total=3, file=sys.stderr, mininterval=0); bar.update(); "
               "logging.getLogger('t').info('hello'); bar.update(); bar.close()" % ROOT)
    err = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                         timeout=60).stderr
    lines = [line.split("\r")[-1] for line in err.split("\n") if "hello" in line]
    assert len(lines) == 1 and re.fullmatch(r"\d\d:\d\d:\d\d INFO hello", lines[0]), err
