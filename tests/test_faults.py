"""Faults users meet, nothing lost: a full disk, two runs into one folder, Ctrl-C and SIGTERM."""
import logging
import os
import resource
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from fbnet_symbol.checkpoint import CheckpointFolder, save_params
from fbnet_symbol.errors import FBNetError
from fbnet_symbol.fileio import FolderLock
from tests.conftest import ROOT
from tests.test_cli_search import ENV, common, read_theta

RUN = ["--batch-size", "8", "--epochs", "4", "--warmup-epochs", "1", "--seed", "5",
       "--log-frequence", "1"]


def start(tiny_data, out, *extra, limit_bytes=None):
    """test.py as a user starts it (``limit_bytes``: the largest file it may write, as when
    a disk fills up: writes beyond it fail)."""
    def as_a_foreground_job():
        # a terminal's foreground job takes Ctrl-C; the suite itself may run with SIGINT
        # ignored (`.ci/run &`), which the run would inherit and, rightly, keep
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        if limit_bytes:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.Popen([sys.executable, "test.py", *RUN, *common(tiny_data, out), *extra],
                            cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=as_a_foreground_job)


def finish(proc, timeout=600):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def wait_for(path, text, proc, timeout=300):
    """Until ``text`` is in the file ``path`` (the run's log)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.isfile(path) and text in open(path).read():
            return
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.05)
    raise AssertionError("%s never showed %r" % (path, text))


def assert_same_theta(out, want):
    """θ after the last epoch equals the uninterrupted run's (1e-5)."""
    got = read_theta(out / "theta-result" / "epoch_3_theta.txt")
    for layer in want:
        np.testing.assert_allclose(got[layer], want[layer], rtol=1e-5, atol=1e-6)


def start_mid_run(data, out, when="epoch 1 weight batch 1/", *extra):
    """test.py started into ``out``, returned once its log shows ``when`` (mid-stage)."""
    proc = start(data, out, *extra)
    wait_for(out / "search.log", when, proc)
    return proc


def one_line(err, prefix):
    lines = [l for l in err.splitlines() if l.startswith(prefix)]
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    return lines[0]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """θ after the last epoch of the run every interrupted one must retrace."""
    from tests.conftest import make_rec, synthetic_lut
    folder = tmp_path_factory.mktemp("data")
    data = {"train": make_rec(folder / "train", 24, seed=1),
            "theta": make_rec(folder / "theta", 16, seed=2),
            "lut": synthetic_lut(folder / "speed.txt")}
    code, _, err = finish(start(data, folder / "full"))
    assert code == 0, err[-2000:]
    return data, read_theta(folder / "full" / "theta-result" / "epoch_3_theta.txt")


@pytest.mark.slow
@pytest.mark.parametrize("sig,code,name", [(signal.SIGTERM, 143, "SIGTERM"),
                                           (signal.SIGINT, 130, "Ctrl-C (SIGINT)")])
def test_a_signal_stops_at_a_step_with_a_checkpoint_and_resume_retraces(
        uninterrupted, tmp_path, sig, code, name):
    data, want = uninterrupted
    out = tmp_path / "run"
    proc = start_mid_run(data, out)
    proc.send_signal(sig)
    got_code, _, err = finish(proc)
    line = one_line(err, "stopped: ")
    assert got_code == code and line.startswith("stopped: %s at epoch 1" % name), err[-2000:]
    assert "resume with --load-model-path %s" % out in line
    # the checkpoint of the step it stopped at: newer than epoch 0's, and verified
    step = int(line.split("(step ")[1].split(")")[0])
    assert CheckpointFolder(str(out / "checkpoints")).latest().number == step
    assert not (out / "theta-result" / "epoch_3_theta.txt").exists()
    if sig == signal.SIGINT:
        return  # the same stop as SIGTERM's; its resume is proven there
    proc = start(data, out, "--load-model-path", str(out))
    resumed, _, err = finish(proc)
    assert resumed == 0, err[-2000:]
    assert "resumed from %s" % (out / "checkpoints" / ("supernet-%04d.params" % step)) in err
    assert_same_theta(out, want)


@pytest.mark.slow
def test_a_second_run_into_the_same_folder_is_refused_and_the_first_goes_on(
        uninterrupted, tmp_path):
    data, want = uninterrupted
    out = tmp_path / "run"
    first = start_mid_run(data, out, "epoch 0 weight batch 1/")
    second = start(data, out)
    code, _, err = finish(second, timeout=120)
    line = one_line(err, "error: ")
    assert code == 2 and "in use by a running run (pid %d on" % first.pid in line, err[-2000:]
    assert first.poll() is None  # refused at once, while the first still runs
    code, _, err = finish(first)
    assert code == 0, err[-2000:]
    log = (out / "search.log").read_text()
    assert log.count("arguments:") == 1  # the second wrote nothing into the folder
    assert_same_theta(out, want)


def test_the_lock_names_its_holder_and_a_dead_holders_lock_is_taken_over(tmp_path):
    folder = tmp_path / "model"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; sys.path.insert(0, %r); "
                               "from fbnet_symbol.fileio import FolderLock; "
                               "FolderLock(%r).acquire(); print('held', flush=True); "
                               "time.sleep(60)" % (ROOT, str(folder))],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(FBNetError, match="in use by a running run \\(pid %d on" % holder.pid):
        FolderLock(str(folder)).acquire()
    holder.kill()  # a crash: the lock file stays, the kernel drops the lock
    holder.wait()
    assert (folder / ".lock").is_file()
    lock = FolderLock(str(folder))
    assert lock.acquire().startswith("pid %d on" % holder.pid)  # taken over, holder named
    lock.release(tidy=True)
    assert folder.is_dir()  # not made by this lock: left in place
    fresh = FolderLock(str(tmp_path / "new"))
    fresh.acquire()
    fresh.release(tidy=True)
    assert not (tmp_path / "new").exists()  # a refused start takes back the folder it made


def limited(limit_bytes, code):
    """Run python ``code`` in a process whose files may not grow past ``limit_bytes``."""
    return subprocess.run(
        [sys.executable, "-c", "import sys; sys.path.insert(0, %r); %s" % (ROOT, code)],
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes,) * 2),
        capture_output=True, text=True, env=ENV)


def test_a_write_that_fails_midway_leaves_the_old_file_and_no_temp_file(tmp_path):
    target = tmp_path / "a.params"
    save_params(str(target), {"w": __import__("mxnet").nd.ones((64, 64))}, {})
    before = target.read_bytes()
    res = limited(4096, "import mxnet as mx; from fbnet_symbol.checkpoint import save_params; "
                        "from fbnet_symbol.errors import WriteFailed\n"
                        "try:\n    save_params(%r, {'w': mx.nd.zeros((64, 64))}, {})\n"
                        "except WriteFailed as e:\n    print(e)" % str(target))
    assert res.returncode == 0 and "cannot write %s: " % target in res.stdout, res.stderr
    assert "free there" in res.stdout
    assert target.read_bytes() == before and os.listdir(tmp_path) == ["a.params"]


@pytest.mark.slow
def test_a_full_disk_during_a_search_stops_in_one_line_and_the_last_checkpoint_resumes(
        uninterrupted, tmp_path):
    data, want = uninterrupted
    out = tmp_path / "run"
    proc = start_mid_run(data, out)
    proc.send_signal(signal.SIGTERM)  # a checkpoint mid-run, to resume from
    assert finish(proc)[0] == 143
    ckpts = CheckpointFolder(str(out / "checkpoints"))
    last = ckpts.latest()
    limit = os.path.getsize(last.params_path) // 2  # the next checkpoint cannot fit
    code, _, err = finish(start(data, out, "--load-model-path", str(out), limit_bytes=limit))
    line = one_line(err, "error: ")
    assert code == 2 and "cannot write %s" % out in line, err[-2000:]
    assert "resume from it with --load-model-path %s" % out in line
    leftovers = [f for _, _, files in os.walk(out) for f in files
                 if f.startswith(".tmp-") or f.endswith(".tmp")]
    assert leftovers == []
    assert ckpts.latest().params_path == last.params_path  # intact, verified, still the newest
    code, _, err = finish(start(data, out, "--load-model-path", str(out)))
    assert code == 0, err[-2000:]
    assert_same_theta(out, want)


@pytest.fixture(scope="module")
def wrong_files(tmp_path_factory):
    """Files of the wrong kind: a pair set, an image, a JSON of another kind, plain text."""
    import cv2
    import pickle
    folder = tmp_path_factory.mktemp("wrong")
    with open(folder / "lfw.bin", "wb") as f:
        pickle.dump(([b"\x89PNG"] * 2, [True]), f, protocol=4)
    cv2.imwrite(str(folder / "face.png"), np.zeros((8, 8, 3), np.uint8))
    (folder / "history.json").write_text('[{"epoch": 0}]\n')
    (folder / "notes.txt").write_text("hello\n")
    return folder


@pytest.fixture(scope="module")
def face_model(tmp_path_factory):
    """A tiny trained ArcFace network (test.py --arch's output folder)."""
    import json
    from fbnet_symbol.faces.files import write_synthetic_faces
    from fbnet_symbol.search.run import SearchRun
    from fbnet_symbol.settings import Settings
    folder = tmp_path_factory.mktemp("face")
    write_synthetic_faces(str(folder / "faces"), identities=3, per_identity=4, size=8, pairs=20)
    arch = {"space": "fbnet", "blocks": ["k3_e1"] * 22, "width_mult": 0.25,
            "head": {"type": "arcface"}}
    SearchRun(Settings(arch=json.dumps(arch), data_dir=str(folder / "faces"), epochs=1,
                       batch_size=4, progress=False,
                       save_model_path=str(folder / "model"))).run()
    return str(folder / "model")


# every flag that takes a file, with what else its command needs to reach that file
FILE_FLAGS = [
    ("search", "--lut", []), ("search", "--train-rec", ["--theta-rec", "{rec}"]),
    ("search", "--theta-rec", ["--train-rec", "{rec}"]),
    ("search", "--val-rec", ["--train-rec", "{rec}", "--theta-rec", "{theta_rec}"]),
    ("search", "--load-model-path", []), ("search", "--arch", []),
    ("search", "--verify", ["--data-dir", "{faces}"]), ("search", "--data-dir", []),
    ("sample", "--theta", ["--output", "{out}"]),
    ("sample", "--load-model-path", ["--output", "{out}"]),
    ("sample", "--lut", ["--theta", "{theta}", "--output", "{out}"]), ("sample", "--arch", []),
    ("measure", "--validate", []), ("measure", "--arch", ["--validate", "{lut}"]),
    ("export", "--load-model-path", ["--output", "{out}/x.onnx"]),
    ("verify", "--load-model-path", ["--bin", "{bin}"]),
    ("verify", "--bin", ["--load-model-path", "{model}"]),
    ("data", "check", []), ("data", "index", []),
]


@pytest.mark.parametrize("kind", ["lfw.bin", "face.png", "history.json", "notes.txt"])
@pytest.mark.parametrize("command,flag,needs", FILE_FLAGS,
                         ids=["%s %s" % (c, f) for c, f, _ in FILE_FLAGS])
def test_a_file_of_the_wrong_kind_is_one_line_naming_it(
        wrong_files, tiny_data, tmp_path, capsys, command, flag, needs, kind, request):
    from fbnet_symbol.cli import run
    from fbnet_symbol.commands import command_main
    for handler in list(logging.getLogger().handlers):  # bound to an earlier test's stderr
        logging.getLogger().removeHandler(handler)
    if kind == "lfw.bin" and flag in ("--verify", "--bin"):
        kind = "history.json"  # a pair set is what these flags take
    face_model = request.getfixturevalue("face_model") if flag == "--bin" else None
    wrong = str(wrong_files / kind)
    fill = {"rec": tiny_data["train"], "theta_rec": tiny_data["theta"], "faces": str(wrong_files / "none"), "out": str(tmp_path),
            "theta": str(wrong_files / "notes.txt"), "lut": tiny_data["lut"],
            "bin": str(wrong_files / "lfw.bin"), "model": str(tmp_path / "none")}
    if flag == "--verify":  # a real face folder, so that the pair set is what is read
        from fbnet_symbol.faces.files import write_synthetic_faces
        write_synthetic_faces(str(tmp_path / "faces"), identities=3, per_identity=4, size=8,
                              pairs=4)
        fill["faces"] = str(tmp_path / "faces")
    if flag == "--bin":  # a real model, so that the pair set is what is read
        fill["model"] = face_model
    argv = [flag, wrong]
    argv += [a.format(**fill) for a in needs]
    if command == "search":
        argv += ["--image-shape", "3,8,8", "--width-mult", "0.25", "--epochs", "1",
                 "--no-progress", "--save-model-path", str(tmp_path / "m")]
    with pytest.raises(SystemExit) as stop:
        run(command_main(command), argv)
    err = capsys.readouterr().err
    errors = [l for l in err.splitlines() if l.startswith("error: ")]
    assert stop.value.code == 2 and len(errors) == 1 and "Traceback" not in err, err[-2000:]
    assert kind in errors[0], errors[0]  # the line names the file given


@pytest.mark.slow
def test_sigterm_during_fixed_training_checkpoints_and_resumes(uninterrupted, tmp_path):
    import json
    data, _ = uninterrupted
    out = tmp_path / "trained"
    arch = ["--arch", json.dumps({"space": "fbnet", "blocks": ["k3_e1"] * 22,
                                  "width_mult": 0.25})]
    proc = start_mid_run(data, out, "epoch 1 weight batch 1/", *arch)
    proc.send_signal(signal.SIGTERM)
    code, _, err = finish(proc)
    line = one_line(err, "stopped: ")
    # an epoch is three tiny steps: the signal may land an epoch later than the line it
    # answered; what matters is a stop before the end, at a checkpoint of that very step
    assert code == 143 and line.startswith(("stopped: SIGTERM at epoch 1",
                                            "stopped: SIGTERM at epoch 2")), err[-2000:]
    step = int(line.split("(step ")[1].split(")")[0])
    assert CheckpointFolder(str(out / "checkpoints"), "model").latest().number == step
    code, out_text, err = finish(start(data, out, *arch, "--load-model-path", str(out)))
    assert code == 0 and "training finished: 4 epochs" in out_text, err[-2000:]


def test_signals_the_process_was_started_to_ignore_stay_ignored():
    """`cmd &` in a script starts a run with SIGINT ignored: a Ctrl-C meant for the shell's
    foreground job must not stop it (the trainer used to replace the ignored handler, so
    such a search stopped at the next Ctrl-C sent to its process group)."""
    from fbnet_symbol.train.interrupt import StopSignals
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    previous_term = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        with StopSignals() as stop:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            assert signal.getsignal(signal.SIGTERM) == stop._handle  # not ignored: handled
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            assert stop.received is None
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_term)
    # every command's wrapper: an ignored SIGTERM stays ignored, a default one unwinds
    program = ("import os, signal, sys; sys.path.insert(0, %r); from fbnet_symbol.cli import run; "
               "signal.signal(signal.SIGTERM, signal.%s); "
               "run(lambda argv: os.kill(os.getpid(), signal.SIGTERM))")
    for disposition, code in (("SIG_IGN", 0), ("SIG_DFL", 143)):
        done = subprocess.run([sys.executable, "-c", program % (ROOT, disposition)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == code, (disposition, done.stderr)
