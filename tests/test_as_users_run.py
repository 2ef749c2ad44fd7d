"""Every command as users run it, from a scratch working directory: (a) a clone that is not
installed, scripts by path; (b) a wheel installed (not editable) into a fresh environment,
no sources in sight; (c) under launch.py with two workers and a server.

The fresh environments borrow the test environment's dependencies (a ``.pth`` line to its
site-packages, whose own ``.pth`` files, the editable install's among them, are not read),
so neither can import ``fbnet_symbol`` except from the clone's path or from the wheel.
"""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig

import pytest

from tests.conftest import ROOT, make_rec, separate_python, synthetic_lut

pytestmark = pytest.mark.slow

DEPENDENCIES = sysconfig.get_paths()["purelib"]  # where mxnet & co. live in this environment
SHAPE = ["--image-shape", "3,8,8", "--width-mult", "0.25"]


def fresh_environment(folder):
    """A new venv that sees this environment's dependencies but not its fbnet_symbol."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True)
    python = os.path.join(str(folder), "bin", "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], capture_output=True, text=True, check=True)
    with open(os.path.join(site.stdout.strip(), "dependencies.pth"), "w") as f:
        f.write(DEPENDENCIES + "\n")
    return python


def build_wheel(out):
    """A wheel built from a copy of the sources (the clone is left as it is)."""
    src = os.path.join(str(out), "src")
    def skip(folder, names):  # the clone's own clutter, at its top only (fbnet_symbol/dist stays)
        if os.path.abspath(folder) != ROOT:
            return [n for n in names if n == "__pycache__"]
        return [n for n in names if n.startswith((".git", ".venv", ".pytest")) or n in
                ("build", "dist") or n.endswith(".egg-info")]

    shutil.copytree(ROOT, src, ignore=skip)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", os.path.join(str(out), "dist"), src], check=True)
    shutil.rmtree(src)
    return glob.glob(os.path.join(str(out), "dist", "fbnet_symbol-*.whl"))[0]


class Way:
    """How a user starts each command in one of the three set-ups."""

    def __init__(self, python, work, cache, clone=None):
        self.python, self.work, self.clone = python, str(work), clone
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("MXNET_ENGINE_TYPE", "PYTHONPATH")}
        self.env["FBNET_SYMBOL_CACHE"] = str(cache)  # empty: tables and data made anew
        self.env["OMP_NUM_THREADS"] = "1"

    def argv(self, command, *args):
        scripts = {"search": "test.py", "sample": "sample.py", "measure": "block_speed_test.py",
                   "launch": "launch.py"}
        if self.clone:  # the seed's scripts by path; module commands from the clone's folder
            if command in scripts:
                return [self.python, os.path.join(self.clone, scripts[command]), *args]
            return [self.python, "-m", "fbnet_symbol", command, *args]
        return [os.path.join(os.path.dirname(self.python), "fbnet"), command, *args]

    def run(self, argv, timeout=600):
        env = dict(self.env, PYTHONPATH=self.clone) if self.clone and "-m" in argv else self.env
        res = subprocess.run([str(a) for a in argv], cwd=self.work, env=env,
                             capture_output=True, text=True, timeout=timeout)
        assert res.returncode == 0, "%s\n%s" % (" ".join(map(str, argv)), res.stderr[-3000:])
        assert "Traceback" not in res.stderr, res.stderr[-3000:]
        return res

    def __call__(self, command, *args, timeout=600):
        return self.run(self.argv(command, *args), timeout=timeout)

    def path(self, *parts):
        return os.path.join(self.work, *parts)


@pytest.fixture(scope="module")
def clone_way(tmp_path_factory):
    python = fresh_environment(tmp_path_factory.mktemp("bare-env"))
    res = subprocess.run([python, "-c", "import fbnet_symbol"], capture_output=True,
                         cwd=str(tmp_path_factory.mktemp("elsewhere")))
    assert res.returncode != 0  # the environment really lacks the package
    return Way(python, tmp_path_factory.mktemp("work"), tmp_path_factory.mktemp("cache"), ROOT)


@pytest.fixture(scope="module")
def wheel_way(tmp_path_factory):
    wheel = build_wheel(tmp_path_factory.mktemp("wheel"))
    python = fresh_environment(tmp_path_factory.mktemp("wheel-env"))
    subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "-q",
                    "--no-deps", wheel], check=True)
    work = tmp_path_factory.mktemp("work")
    where = subprocess.run([python, "-c", "import fbnet_symbol; print(fbnet_symbol.__file__)"],
                           cwd=str(work), capture_output=True, text=True, check=True).stdout
    assert not where.startswith(ROOT)  # the wheel's copy, not the clone
    return Way(python, work, tmp_path_factory.mktemp("cache"))


def small_data(way):
    """Train/theta/val RecordIO files and a face folder made in the working directory."""
    for name, n, seed in (("train", 24, 1), ("theta", 16, 2), ("val", 12, 3)):
        make_rec(way.path(name), n, seed=seed)
    way("data", "synthetic-faces", "faces", "--identities", "6", "--per-identity", "4",
        "--size", "8")
    return ["--train-rec", "train.rec", "--theta-rec", "theta.rec", "--val-rec", "val.rec"]


def pipeline(way, measure_in_search):
    """measure -> search -> sample -> train -> export -> validate -> study, then faces ->
    verify, each command started from the working directory with relative paths."""
    data = small_data(way)
    way("measure", "--space", "fbnet", "--preset", "seed", *SHAPE, "--gpu", "cpu",
        "--output", "speed.txt", "--quick")
    assert os.path.isfile(way.path("speed.json"))
    # without --lut the search measures its table in a child process (what broke from
    # another folder); quick timing keeps it to seconds
    lut = ["--lut-timing", "quick"] if measure_in_search else ["--lut", "speed.json"]
    common = ["--epochs", "2", "--warmup-epochs", "1", "--batch-size", "8", "--no-progress"]
    res = way("search", *data, *SHAPE, *lut, *common, "--save-model-path", "model")
    assert "search finished" in res.stdout
    if measure_in_search:  # the table a search measures itself, in a child process
        assert glob.glob(os.path.join(way.env["FBNET_SYMBOL_CACHE"], "lut", "*-quick.json"))
    way("sample", "--load-model-path", "model", "--output", "archs")
    res = way("search", "--arch", "archs/argmax.json", *data, *SHAPE, *common,
              "--save-model-path", "trained")
    assert "training finished" in res.stdout and os.path.isfile(way.path("trained",
                                                                         "model-0002.params"))
    way("export", "--load-model-path", "trained", "--output", "net.onnx")
    assert os.path.getsize(way.path("net.onnx")) > 0
    way("measure", "--validate", "speed.json", "--arch", "archs/argmax.json", "--quick")
    way("study", "--quick", "--alphas", "0", "--seeds", "0", "--random", "1",
        "--search-epochs", "2", "--train-epochs", "1", *data, *SHAPE, "--lut", "speed.json",
        "--batch-size", "8", "--no-progress", "--out", "study")
    assert os.path.isfile(way.path("study", "summary.json"))
    with open(way.path("study", "study.log")) as f:  # its progress, without a terminal
        log = f.read()
    counts = [(int(k), int(n)) for k, n in re.findall(r"finished .* \((\d+) of (\d+)\)", log)]
    assert counts[0] == (1, 1) and counts[-1][0] == counts[-1][1] >= 4, log  # search, trainings
    face = ["--data-dir", "faces", "--model-type", "arcface", "--margin-s", "16", *SHAPE,
            "--lut", "speed.json", *common]
    way("search", *face, "--save-model-path", "face_search")
    way("search", "--arch", "face_search/arch.json", *face[:-len(common)], "--epochs", "1",
        "--no-progress", "--batch-size", "8", "--save-model-path", "face_model")
    res = way("verify", "--load-model-path", "face_model", "--bin", "faces/pairs.bin")
    assert "pairs" in res.stdout and "MXNet operators run" in res.stderr


def test_a_clone_not_installed_runs_every_command_from_another_folder(clone_way):
    pipeline(clone_way, measure_in_search=True)
    # the seed's way of running a module of the clone: python -m with the clone on the path
    clone_way("data", "check", "train.rec")


def test_a_wheel_is_a_complete_install(wheel_way):
    pipeline(wheel_way, measure_in_search=False)
    # python -m fbnet_symbol COMMAND is the same command as fbnet COMMAND
    res = wheel_way.run([wheel_way.python, "-m", "fbnet_symbol", "data", "check", "train.rec"])
    assert "train.rec" in res.stdout + res.stderr
    res = wheel_way.run([wheel_way.argv("search")[0], "--help"])
    assert all(c in res.stdout for c in ("search", "sample", "measure", "launch", "export",
                                         "verify", "study", "data"))
    archs = glob.glob(os.path.join(os.path.dirname(wheel_way.python), "..", "lib", "python*",
                                   "site-packages", "fbnet_symbol", "space", "archs", "*.json"))
    assert len(archs) == 3  # the named architectures ship in the wheel
    wheel_way("sample", "--arch", "fbnet_c", "--image-shape", "3,32,32")
    # the onnxruntime check script ships in the wheel and runs from it
    ort = separate_python("FBNET_ORT_PYTHON", ".venv-ort", "onnxruntime")
    res = wheel_way("export", "--load-model-path", "trained", "--output", "checked.onnx",
                    "--check", "--ort-python", ort)
    assert ": OK" in res.stdout


@pytest.mark.parametrize("old,new", [("export", "export"), ("verify", "verify"),
                                     ("study", "study")])
def test_the_old_command_names_forward_with_a_notice(clone_way, old, new):
    res = clone_way.run([clone_way.python, "-m", "fbnet_symbol." + old, "--help"])
    assert "python -m fbnet_symbol.%s is now `fbnet %s`" % (old, new) in res.stderr
    assert "usage: fbnet %s" % new in res.stdout


def test_the_old_export_name_exports(clone_way):
    make_rec(clone_way.path("otrain"), 16, seed=4)
    make_rec(clone_way.path("otheta"), 8, seed=5)
    synthetic_lut(clone_way.path("ospeed.txt"))
    clone_way("search", "--arch", '{"space": "fbnet", "blocks": %s}' % json.dumps(["k3_e1"] * 22),
              "--train-rec", "otrain.rec", "--theta-rec", "otheta.rec", *SHAPE, "--lut", "ospeed.json", "--epochs", "1",
              "--batch-size", "8", "--no-progress", "--save-model-path", "old_export")
    res = clone_way.run([clone_way.python, "-m", "fbnet_symbol.export", "--load-model-path",
                         "old_export", "--output", "old.onnx"])
    assert "is now `fbnet export`" in res.stderr and "wrote" in res.stdout
    assert os.path.isfile(clone_way.path("old.onnx"))


@pytest.mark.parametrize("way_name", ["clone_way", "wheel_way"])
def test_launch_two_workers_and_a_server_from_another_folder(way_name, request):
    way = request.getfixturevalue(way_name)
    for name, n, seed in (("ltrain", 24, 1), ("ltheta", 16, 2)):
        make_rec(way.path(name), n, seed=seed)
    synthetic_lut(way.path("lspeed.txt"))
    search = way.argv("search", "--kv-store", "dist_sync", "--train-rec", "ltrain.rec",
                      "--theta-rec", "ltheta.rec", "--lut", "lspeed.json", *SHAPE, "--epochs",
                      "2", "--warmup-epochs", "1", "--batch-size", "4", "--no-progress",
                      "--save-model-path", "dist_model")
    res = way("launch", "-n", "2", "-s", "1", "--launcher", "local", *search)
    assert os.path.isfile(way.path("dist_model", "arch.json"))
    assert "worker 1 of 2 finished" in res.stdout + res.stderr
