"""Several machines, on loopback: launch.py with a scheduler, servers and workers.

Every cluster here is real MXNet parameter-server processes talking over 127.0.0.1.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from fbnet_symbol.dist.cluster import Collective, exactly
from fbnet_symbol.search.run import SearchConfig, SearchRun
from tests.conftest import ROOT, synthetic_lut

# the workers use MXNet's default threaded engine, like users do
ENV = {k: v for k, v in os.environ.items() if k != "MXNET_ENGINE_TYPE"}
PY = sys.executable
BATCH = 8  # per worker


def write_split(prefix, n, seed):
    """A learnable split whose records all have the same size (BMP), 3 classes."""
    from fbnet_symbol.data.files import write_images
    rng = np.random.RandomState(seed)
    labels = np.arange(n) % 3
    colours = np.random.RandomState(1234).randint(0, 255, size=(3, 3))
    images = [np.clip(colours[l] + rng.normal(0, 20, (8, 8, 3)), 0, 255).astype(np.uint8)
              for l in labels]
    write_images(str(prefix), images, labels, fmt=".bmp")
    return str(prefix) + ".rec"


@pytest.fixture
def dist_data(tmp_path):
    # one step per stage holds every image of a split: 2 workers x 8 or 1 process x 16
    return {"train": write_split(tmp_path / "train", 2 * BATCH, 1),
            "theta": write_split(tmp_path / "theta", 2 * BATCH, 2),
            "lut": synthetic_lut(tmp_path / "speed.txt")}


def search_config(data, out, **changes):
    cfg = dict(train_rec=data["train"], theta_rec=data["theta"], lut=data["lut"],
               image_shape=[3, 8, 8], width_mult=0.25, batch_size=BATCH, epochs=3,
               warmup_epochs=1, save_model_path=str(out), progress=False, log_frequence=0,
               save_frequence=0, seed=3, freeze_bn=True, kv_store="dist_sync")
    cfg.update(changes)
    return cfg


class Launch:
    """launch.py as a subprocess whose merged output is collected line by line."""

    def __init__(self, *args, cwd=ROOT):
        self.lines = []
        self.proc = subprocess.Popen([PY, "launch.py", *args], cwd=cwd, env=ENV,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait(self, timeout):
        code = self.proc.wait(timeout=timeout)
        self.reader.join(timeout=5)
        return code

    def wait_for(self, fragment, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for line in list(self.lines):
                if fragment in line:
                    return line
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError("no line with %r in:\n%s" % (fragment, self.text[-3000:]))

    @property
    def text(self):
        return "\n".join(self.lines)


@pytest.mark.slow
@pytest.mark.parametrize("devices", ["cpu", "cpu:0,cpu:1"])
def test_two_workers_equal_one_process_on_the_combined_batch(dist_data, tmp_path, devices):
    """2 workers + 1 server (each worker on one or two devices): both end with the same
    theta and weights, equal to one process that sees both workers' images in each step
    (BN statistics frozen, so the result does not depend on how a step's images are
    split)."""
    dist = tmp_path / "dist"
    launch = Launch("-n", "2", "-s", "1", "--launcher", "local", PY, "tests/dist_search.py",
                    json.dumps(search_config(dist_data, tmp_path / "m", gpu=devices)),
                    str(dist))
    assert launch.wait(timeout=300) == 0, launch.text[-3000:]
    single = tmp_path / "single"
    res = subprocess.run([PY, "tests/dist_search.py", json.dumps(search_config(
        dist_data, tmp_path / "s", kv_store="local", batch_size=2 * BATCH)), str(single)],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    ranks = [dict(np.load(dist / ("params-rank%d.npz" % r))) for r in (0, 1)]
    reference = dict(np.load(single / "params-rank0.npz"))
    assert sorted(ranks[0]) == sorted(ranks[1]) == sorted(reference)
    thetas = [n for n in reference if n.startswith("theta_")]
    assert len(thetas) == 22
    moved = 0
    for name, value in reference.items():
        np.testing.assert_array_equal(ranks[0][name], ranks[1][name], err_msg=name)
        np.testing.assert_allclose(ranks[0][name], value, rtol=1e-4, atol=1e-6, err_msg=name)
        moved += name in thetas and not np.allclose(value, 1.0)
    assert moved == 22  # theta was trained (two theta steps), not just compared at init
    # only rank 0 wrote the files of record
    assert (tmp_path / "m" / "checkpoints").is_dir() and (tmp_path / "m" / "search.log").is_file()
    assert "worker 1 of 2" in launch.text


@pytest.mark.slow
def test_search_cli_resume_and_fixed_training_on_two_workers(dist_data, tmp_path):
    """test.py as users run it under launch.py: search, resume, then the fixed network."""
    out = tmp_path / "model"
    common = ["--kv-store", "dist_sync", "--train-rec", dist_data["train"], "--theta-rec",
              dist_data["theta"], "--lut", dist_data["lut"], "--image-shape", "3,8,8",
              "--width-mult", "0.25", "--batch-size", "4", "--warmup-epochs", "1",
              "--no-progress", "--save-model-path", str(out)]
    launch = Launch("-n", "2", "-s", "1", PY, "test.py", "--epochs", "2", *common)
    assert launch.wait(timeout=300) == 0, launch.text[-3000:]
    assert "search finished: 2 epochs" in launch.text
    assert "worker 1 of 2 finished; worker 0 wrote the results" in launch.text
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [0, 1]
    # 16 images, 2 workers x batch 4 -> 2 steps per stage: warm-up 2, then 2 + 2
    assert history[-1]["global_step"] == 6
    log = (out / "search.log").read_text()
    assert "worker 0 of 2" in log and "worker 1 of 2" not in log  # rank 0's log only
    # --threads auto: the two local workers split this machine's cores between them
    from fbnet_symbol.threads import cores, user_threads
    if not user_threads(ENV):
        args = json.loads((out / "args.json").read_text())
        assert args["omp_threads"] == max(1, cores() // 2)

    resumed = Launch("-n", "2", "-s", "1", PY, "test.py", "--epochs", "3",
                     "--load-model-path", str(out), *common)
    assert resumed.wait(timeout=300) == 0, resumed.text[-3000:]
    assert resumed.text.count("resumed from") == 2  # both workers read the checkpoint
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [0, 1, 2] and history[-1]["global_step"] == 10

    other = Launch("-n", "1", "-s", "1", PY, "test.py", "--epochs", "3",
                   "--load-model-path", str(out), *common)
    assert other.wait(timeout=300) == 2
    assert "written by a run of 2 worker(s), this one has 1" in other.text

    missing = Launch("-n", "2", "-s", "1", PY, "test.py", "--epochs", "3",
                     "--load-model-path", str(tmp_path / "elsewhere"), *common)
    assert missing.wait(timeout=300) == 2
    assert "every worker reads --load-model-path" in missing.text

    trained = tmp_path / "trained"
    fixed = Launch("-n", "2", "-s", "1", PY, "test.py", "--arch", str(out / "arch.json"),
                   "--epochs", "1", *[a if a != str(out) else str(trained) for a in common])
    assert fixed.wait(timeout=300) == 0, fixed.text[-3000:]
    assert (trained / "model-symbol.json").is_file() and (trained / "model-0001.params").is_file()


@pytest.mark.slow
def test_a_killed_worker_stops_everything(dist_data, tmp_path):
    launch = Launch("-n", "2", "-s", "1", PY, "test.py", "--kv-store", "dist_sync",
                    "--train-rec", dist_data["train"], "--theta-rec", dist_data["theta"],
                    "--lut", dist_data["lut"], "--image-shape", "3,8,8", "--width-mult",
                    "0.25", "--batch-size", "2", "--epochs", "50", "--log-frequence", "1",
                    "--no-progress", "--save-model-path", str(tmp_path / "m"))
    pid = int(launch.wait_for("worker 1 on", 60).rsplit("pid", 1)[1])
    launch.wait_for("epoch 0 weight batch 2/", 120)  # mid-run
    killed_at = time.time()
    os.kill(pid, signal.SIGKILL)
    assert launch.wait(timeout=60) == 1
    assert time.time() - killed_at < 30
    assert "worker 1 was killed by SIGKILL; stopped the other 3 process(es)" in launch.text
    assert "last lines of worker 1" in launch.text
    pids = [int(l.rsplit("pid", 1)[1]) for l in launch.lines if ": pid " in l]
    assert len(pids) == 4
    for p in pids:  # nothing of the group is left running
        with pytest.raises(ProcessLookupError):
            os.kill(p, 0)


def test_a_port_in_use_is_a_clear_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        res = subprocess.run([PY, "launch.py", "-n", "1", "--port", str(port), PY, "-c",
                              "print(1)"], cwd=ROOT, env=ENV, capture_output=True, text=True,
                             timeout=60)
    assert res.returncode == 2
    assert res.stderr.strip() == ("error: port %d on 127.0.0.1 is already in use (Address "
                                  "already in use); pick another with --port, or leave --port "
                                  "out to use a free one" % port)


@pytest.mark.parametrize("args,fragment", [
    (["-n", "2"], "no command given"),
    (["-n", "2", "--launcher", "ssh", "python"], "--launcher ssh needs -H HOSTFILE"),
    (["-n", "2", "--launcher", "ssh", "-H", "/nonexistent/hosts", "python"],
     "cannot read the host file /nonexistent/hosts"),
    (["-n", "0", "python"], "must be at least 1"),
])
def test_launcher_bad_input(args, fragment):
    res = subprocess.run([PY, "launch.py", *args], cwd=ROOT, env=ENV, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 2 and fragment in res.stderr and res.stderr.count("\n") == 1


WORKER_PROBE = ("import os, sys; open(os.path.join(sys.argv[1], 'pid-%d' % os.getpid()), "
                "'w').write(str(os.getpid())); import mxnet as mx; kv = mx.kv.create('dist_sync'); "
                "print('rank', kv.rank, 'of', kv.num_workers, 'role', os.environ['DMLC_ROLE'], "
                "flush=True); import time; time.sleep(float(sys.argv[2]))")


@pytest.mark.slow
def test_ssh_launcher_runs_remote_commands_and_tears_them_down(tmp_path):
    """The ssh path with a stand-in ssh client (no sshd here): environment, working folder,
    placement over the host file, and remote processes ended when a worker fails."""
    hosts = tmp_path / "hosts"
    hosts.write_text("# two machines\nlocalhost\n127.0.0.1\n")
    ssh = "%s %s" % (PY, os.path.join(ROOT, "tests", "fake_ssh.py"))
    base = ["-n", "2", "-s", "1", "--launcher", "ssh", "-H", str(hosts), "--ssh-command", ssh]
    ok = Launch(*base, PY, "-c", WORKER_PROBE, str(tmp_path), "0")
    assert ok.wait(timeout=120) == 0, ok.text[-3000:]
    assert "rank 0 of 2 role worker" in ok.text and "rank 1 of 2 role worker" in ok.text
    assert "server 0 on localhost" in ok.text and "worker 0 on 127.0.0.1" in ok.text

    # one worker fails at once, the other would sleep 600 s: the launcher must end it
    for f in tmp_path.glob("pid-*"):
        f.unlink()
    # (the failing one waits until the other has written its pid, so there is one to check)
    fail = Launch(*base, "sh", "-c", 'mkdir %s/first 2>/dev/null || { until ls %s/pid-* '
                  '>/dev/null 2>&1; do sleep 0.1; done; exit 3; }; exec %s -c "%s" %s 600'
                  % (tmp_path, tmp_path, PY, WORKER_PROBE, tmp_path))
    started = time.time()
    assert fail.wait(timeout=120) == 3, fail.text[-3000:]
    assert time.time() - started < 60
    assert "exited with code 3; stopped the other 3 process(es)" in fail.text
    time.sleep(1)
    assert len(list(tmp_path.glob("pid-*"))) == 1
    for f in tmp_path.glob("pid-*"):  # the sleeping "remote" worker is gone too
        with pytest.raises(ProcessLookupError):
            os.kill(int(f.read_text()), 0)


def test_exactly_gives_every_worker_the_same_number_of_steps():
    class Batch:
        def __init__(self, pad):
            self.pad = pad
            self.data = [np.zeros((4, 1))]
    short = list(exactly([Batch(0), Batch(3)], 4, lambda: Batch(4)))
    assert [v for _, v in short] == [4, 1, 0, 0]
    assert [v for _, v in exactly([Batch(0)] * 5, 2, lambda: Batch(4))] == [4, 4]
    # resumed past the end of a short shard: steps of an empty batch, no valid row
    resumed = list(exactly([], 2, lambda: Batch(4)))
    assert [v for _, v in resumed] == [0, 0] and resumed[0][0].pad == 4


def test_single_process_collectives_are_identities():
    c = Collective(None)
    assert not c.distributed and (c.rank, c.size) == (0, 1)
    np.testing.assert_array_equal(c.allreduce([1.5, 2]), [1.5, 2])
    assert c.check_agreement([1, 2, 3], "anything") == 0.0


def test_dist_kvstore_without_launcher_is_refused(dist_data, tmp_path):
    from fbnet_symbol.errors import FBNetError
    with pytest.raises(FBNetError, match="launch.py -n 2 -s 1"):
        SearchRun(SearchConfig(**dict(search_config(dist_data, tmp_path), image_shape=None)))


@pytest.mark.slow
def test_workers_started_differently_stop_together_with_one_error(dist_data, tmp_path):
    """The first worker to start uses seed 1, the other seed 2: different initial weights.
    Both must stop with the same error (none may hang waiting for the other)."""
    marker = tmp_path / "first"
    configs = [json.dumps(search_config(dist_data, tmp_path / "m", seed=s)) for s in (1, 2)]
    # mkdir is atomic: exactly one of the two workers creates the marker
    script = ("if mkdir {m} 2>/dev/null; then c='{c1}'; else c='{c2}'; fi; "
              "exec {py} tests/dist_search.py \"$c\" {out}").format(
        m=marker, c1=configs[0], c2=configs[1], py=PY, out=tmp_path / "params")
    launch = Launch("-n", "2", "-s", "1", "sh", "-c", script)
    assert launch.wait(timeout=300) == 2, launch.text[-3000:]
    assert "the 2 workers disagree on their settings" in launch.text


@pytest.mark.slow
def test_a_cluster_that_never_forms_is_stopped_after_start_timeout():
    """A worker that never joins (here: never creates a kvstore) would leave scheduler and
    server waiting forever; the launcher gives up after --start-timeout."""
    started = time.time()
    res = subprocess.run([PY, "launch.py", "-n", "1", "-s", "1", "--start-timeout", "5", PY,
                          "-c", "import time; time.sleep(120)"], cwd=ROOT, env=ENV,
                         capture_output=True, text=True, timeout=90)
    assert res.returncode == 1
    assert time.time() - started < 30
    assert "the cluster did not form within 5 s (--start-timeout)" in res.stderr
