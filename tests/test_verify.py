"""Face verification: InsightFace's protocol against an independent computation, pair-set
files, and shipped models (the deploy graph and the fc1 export) scored end to end."""
import pickle
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT


def _reference_accuracy(dist, issame):
    """InsightFace's calculate_roc accuracy, written out with loops (no shared code)."""
    n, k = len(dist), 10
    bounds, start = [], 0
    for f in range(k):
        size = n // k + (1 if f < n % k else 0)
        bounds.append((start, start + size))
        start += size
    thresholds = [t / 100.0 for t in range(400)]
    accs = []
    for lo, hi in bounds:
        train = [i for i in range(n) if not lo <= i < hi]
        best, best_acc = None, -1.0
        for t in thresholds:
            right = sum(1 for i in train if (dist[i] < t) == issame[i])
            if right / len(train) > best_acc:
                best, best_acc = t, right / len(train)
        accs.append(sum(1 for i in range(lo, hi) if (dist[i] < best) == issame[i]) / (hi - lo))
    return float(np.mean(accs)), float(np.std(accs))


def test_kfold_threshold_search_matches_an_independent_computation():
    from fbnet_symbol.faces.verify import fold_slices, verification_accuracy
    rng = np.random.RandomState(0)
    n = 605  # folds of 61 and 60: the uneven split scikit-learn's KFold makes
    issame = rng.rand(n) < 0.5
    dist = np.where(issame, rng.normal(0.9, 0.35, n), rng.normal(1.7, 0.35, n)).clip(0, 4)
    ours = verification_accuracy(dist, issame)
    acc, std = _reference_accuracy(list(dist), list(issame))
    assert ours["acc"] == pytest.approx(acc, abs=1e-12)
    assert ours["acc_std"] == pytest.approx(std, abs=1e-12)
    assert 0.8 < ours["acc"] < 0.95
    from sklearn.model_selection import KFold
    theirs = [(t[0], t[-1] + 1) for _, t in KFold(10, shuffle=False).split(np.arange(n))]
    assert [(s.start, s.stop) for s in fold_slices(n)] == theirs


def test_known_distances_give_known_scores():
    from fbnet_symbol.faces.verify import (flip_add_normalize, pair_distances, tar_at_far,
                                           verification_accuracy)

    # separable at any threshold in (0.5, 1.5]: the search must find one of those
    dist = np.array([0.2, 1.6] * 50)
    issame = np.array([True, False] * 50)
    r = verification_accuracy(dist, issame)
    assert r["acc"] == 1.0 and all(0.2 < t <= 1.6 for t in r["thresholds"])
    # 1000 negatives: FAR 1e-3 allows 1 false accept -> threshold = 2nd smallest negative
    neg = np.linspace(1.0, 3.0, 1000)
    pos = np.array([0.5, 1.0, 1.001, 1.5])
    tar, thr = tar_at_far(np.r_[pos, neg], np.r_[[True] * 4, [False] * 1000])
    assert thr == pytest.approx(neg[1]) and tar == pytest.approx(0.75)  # 0.5, 1.0, 1.001
    # flip-add-normalise and squared L2 on hand-made vectors
    e = flip_add_normalize([[3, 0], [0, 1]], [[1, 0], [0, 1]])
    assert np.allclose(e, [[1, 0], [0, 1]]) and pair_distances(e) == pytest.approx([2.0])


@pytest.mark.parametrize("content,message", [
    (b"not a pickle", "is not a pickled (bins, issame) pair set"),
    (pickle.dumps(([b"a", b"b", b"c"], [True, False])), "has 3 images for 2 pair labels"),
    (pickle.dumps({"bins": []}), "holds a dict, not a (bins, issame) pair"),
    (pickle.dumps(([b"x", b"y"], [True])), "image 0 (pair 0) does not decode"),
])
def test_bad_pair_sets_get_one_line(tmp_path, content, message):
    from fbnet_symbol.errors import FBNetError
    from fbnet_symbol.faces.verify import decode_pairs, load_pairs
    path = tmp_path / "lfw.bin"
    path.write_bytes(content)
    with pytest.raises(FBNetError) as e:
        decode_pairs(load_pairs(str(path)), (3, 8, 8), str(path))
    assert message in str(e.value) and "lfw.bin" in str(e.value)


def test_python2_pickles_load_as_bytes(tmp_path):
    """Old InsightFace .bin files were pickled by Python 2, whose str holds the JPEG bytes:
    protocol-0 opcodes as Python 2 writes them (unreadable without encoding='bytes')."""
    from fbnet_symbol.faces.verify import load_pairs
    path = tmp_path / "old.bin"
    path.write_bytes(b"((S'\\xff\\xd8'\nS'\\xff\\xd9'\nl(I01\nlt.")
    with pytest.raises(UnicodeDecodeError):
        pickle.loads(path.read_bytes())
    pairs = load_pairs(str(path))
    assert pairs.bins == [b"\xff\xd8", b"\xff\xd9"] and list(pairs.issame) == [True]


def test_a_shipped_model_and_its_fc1_export_score_the_same(tmp_path):
    """A (random-weight) arcface network exported both ways: the stock deploy graph fed
    normalised pixels, and the fc1 export fed raw pixels by a plain MXNet script, embed
    alike; the CLI scores a pair set with InsightFace's protocol."""
    import json

    import mxnet as mx

    from fbnet_symbol.faces.files import write_synthetic_faces
    from fbnet_symbol.faces.verify import Embedder
    from fbnet_symbol.space.architecture import load_architecture
    from fbnet_symbol.space.child import ChildNet

    paths = write_synthetic_faces(str(tmp_path / "faces"), identities=4, per_identity=2,
                                  size=16, pairs=20)
    arch = load_architecture("fbnet_b").overridden("seed", 0.25, "arcface", 16, None, None)
    net = ChildNet(arch, 4, (3, 16, 16))
    mod = mx.mod.Module(net.symbol, data_names=net.input_names, label_names=["softmax_label"])
    mod.bind(net.input_descs(2), net.label_descs(2))
    mod.init_params(mx.init.Xavier())
    arg, aux = mod.get_params()
    net.export_deploy(arg, aux, str(tmp_path / "ship" / "model"), 3)
    net.export_fc1(arg, aux, str(tmp_path / "fc1" / "model"), 3)
    assert json.load(open(tmp_path / "ship" / "model-input.json"))["shape"] == [1, 3, 16, 16]
    assert json.load(open(tmp_path / "fc1" / "model-input.json"))["output"] == "fc1"

    # a plain MXNet script, as InsightFace's verification.py loads a model
    sym, a, x = mx.model.load_checkpoint(str(tmp_path / "fc1" / "model"), 3)
    fc1 = sym.get_internals()["fc1_output"]
    plain = mx.mod.Module(fc1, data_names=["data"], label_names=None)
    plain.bind(data_shapes=[("data", (2, 3, 16, 16))], for_training=False)
    plain.set_params(a, x)
    raw = np.random.RandomState(0).randint(0, 256, (2, 3, 16, 16)).astype(np.float32)
    plain.forward(mx.io.DataBatch([mx.nd.array(raw)]), is_train=False)
    theirs = plain.get_outputs()[0].asnumpy()
    ours = Embedder(str(tmp_path / "ship"), batch_size=2)(raw)
    assert theirs.shape == (2, 16) and np.allclose(ours, theirs, atol=1e-4)

    scores = []
    for model in ("ship", "fc1"):
        res = subprocess.run([sys.executable, "-m", "fbnet_symbol.faces.verify", "--load-model-path",
                              str(tmp_path / model), "--bin", paths["pairs"], "--json",
                              "--batch-size", "8"],
                             cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        scores.append(json.loads(res.stdout)["pairs"])
    assert scores[0]["pairs"] == 20 and 0 <= scores[0]["acc"] <= 1
    assert scores[0]["acc"] == pytest.approx(scores[1]["acc"])


def test_pairs_below_the_threshold_grid_are_not_called_collapsed():
    """Distances all under 0.01 read 0.5 in the 10-fold protocol; they are a collapse only
    if they do not separate the pairs either."""
    from fbnet_symbol.faces.verify import format_result, score
    rng = np.random.RandomState(0)
    pairs, issame, rows = 100, [], []
    for i in range(pairs):
        same = i % 2 == 0
        base = np.r_[1.0, np.zeros(7)]
        step = rng.normal(size=8) * (0.01 if same else 0.05) / np.sqrt(8)
        rows += [base, base + step]
        issame.append(same)
    emb = np.array(rows)
    r = score(emb, emb, issame)
    assert r["acc"] == pytest.approx(0.5) and r["tar_at_far"] > 0.9
    assert not r["collapsed"] and r["below_threshold_grid"]
    assert "TAR shows the pairs separate" in format_result("tiny", r)
    flat = np.tile(np.r_[1.0, np.zeros(7)], (2 * pairs, 1))  # every embedding the same
    r = score(flat, flat, issame)
    assert r["collapsed"] and not r["below_threshold_grid"]
    assert "have collapsed" in format_result("flat", r)
