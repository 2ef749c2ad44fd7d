import os
import sys

# tests import the package and the entry scripts from the repository root
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
os.environ.setdefault("MXNET_ENGINE_TYPE", "NaiveEngine")


import numpy as np  # noqa: E402
import pytest  # noqa: E402


def separate_python(env_var, venv, what):
    """The Python of a second environment ``make test`` builds (``venv``, or ``env_var``):
    onnxruntime and torch cannot live beside MXNet 1.9.1's numpy. Missing: a failure under
    CI (its .ci/run must build it), a skip elsewhere."""
    for path in (os.environ.get(env_var), os.path.join(ROOT, venv, "bin", "python")):
        if path and os.path.isfile(path):
            return path
    if os.environ.get("CI"):
        pytest.fail("no %s environment: .ci/run must build %s (make test)" % (what, venv))
    pytest.skip("no %s environment; `make test` builds %s" % (what, venv))


def make_rec(prefix, n, classes=3, size=8, seed=0):
    """A small learnable RecordIO file: each class is a colour (the same in every file)
    with noise (``seed``)."""
    from fbnet_symbol.data.files import write_images
    rng = np.random.RandomState(seed)
    labels = np.arange(n) % classes
    colours = np.random.RandomState(1234).randint(0, 255, size=(classes, 3))
    images = [np.clip(colours[l] + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)
              for l in labels]
    write_images(str(prefix), images, labels)
    return str(prefix) + ".rec"


def synthetic_lut(path, space="fbnet", preset="seed", image_shape=(3, 8, 8), width_mult=0.25,
                  batch_size=1, seed=0):
    """A latency table with metadata (as block_speed_test.py writes), made-up numbers."""
    from fbnet_symbol.latency.table import FIXED_PARTS, LatencyTable
    from fbnet_symbol.space.spaces import decode_space
    layout = decode_space(space, preset, image_shape, width_mult)
    rng = np.random.RandomState(seed)
    values = [list(rng.uniform(0.05, 1.0, len(l.candidates))) for l in layout.layers]
    meta = {"space": space, "preset": preset, "image_shape": list(image_shape),
            "batch_size": batch_size, "width_mult": width_mult, "device": "cpu(0)",
            "overhead_ms": 0.05}
    table = LatencyTable(values, [list(l.candidates) for l in layout.layers], meta,
                         fixed={p: {"median_ms": 0.1, "raw_ms": 0.15} for p in FIXED_PARTS})
    return table.save(str(path))[1]


@pytest.fixture
def tiny_data(tmp_path):
    return {"train": make_rec(tmp_path / "train", 24, seed=1),
            "theta": make_rec(tmp_path / "theta", 16, seed=2),
            "val": make_rec(tmp_path / "val", 12, seed=3),
            "lut": synthetic_lut(tmp_path / "speed.txt")}
