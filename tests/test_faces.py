"""InsightFace's identity-indexed RecordIO: reading, splitting, writing, bad input."""
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT, synthetic_lut


def _faces(ids=5, per=4, size=16, seed=0):
    from fbnet_symbol.faces.files import synthetic_faces
    return synthetic_faces(ids, per, size, seed)


@pytest.mark.parametrize("header_last", [True, False])
def test_written_as_insightface_writes_it_and_read_back(tmp_path, header_last):
    import mxnet as mx

    from fbnet_symbol.data.check import check_data
    from fbnet_symbol.data.insightface import is_identity_indexed
    faces = [f[:n] for f, n in zip(_faces(5, 5), [3, 1, 4, 2, 5])]
    from fbnet_symbol.faces.files import write_face_records
    write_face_records(str(tmp_path / "train"), faces, header_last=header_last)
    # the file as mx.recordio sees it: record 0 a 2-label header with no image, last in the file
    reader = mx.recordio.MXIndexedRecordIO(str(tmp_path / "train.idx"),
                                           str(tmp_path / "train.rec"), "r")
    header, payload = mx.recordio.unpack(reader.read_idx(0))
    assert list(header.label) == [16, 21] and payload == b""
    assert (max(reader.idx.values()) == reader.idx[0]) == header_last
    image_header, _ = mx.recordio.unpack(reader.read_idx(1))
    assert list(image_header.label) == [0, 1]  # [class, aligned]
    assert list(mx.recordio.unpack(reader.read_idx(17))[0].label) == [4, 5]  # identity 1
    assert is_identity_indexed(str(tmp_path / "train.rec"))
    info = check_data(str(tmp_path / "train.rec"))
    assert info.indexing == "identity-indexed" and info.num_classes == 5
    assert info.num_records == 15 and list(info.image_keys) == list(range(1, 16))
    assert list(info.labels) == [0, 0, 0, 1, 2, 2, 2, 2, 3, 3, 4, 4, 4, 4, 4]
    assert open(tmp_path / "property").read().strip() == "5,16,16"


def test_a_flat_file_keeps_its_layout(tmp_path):
    from fbnet_symbol.data.check import check_data
    from fbnet_symbol.data.insightface import is_identity_indexed
    from tests.conftest import make_rec
    rec = make_rec(tmp_path / "flat", 12)
    assert not is_identity_indexed(rec)
    assert check_data(rec).indexing == "flat"


def test_theta_split_is_by_image_inside_each_identity(tmp_path):
    from fbnet_symbol.data.insightface import check_face_records
    from fbnet_symbol.faces.files import write_face_records
    faces = [f[:n] for f, n in zip(_faces(4, 12, size=8), [1, 2, 6, 12])]
    write_face_records(str(tmp_path / "t"), faces)
    records = check_face_records(str(tmp_path / "t.rec"))
    weight, theta = records.split()
    assert sorted(np.r_[weight.image_keys, theta.image_keys]) == list(range(1, 22))
    assert not set(weight.image_keys) & set(theta.image_keys)
    assert set(weight.labels) == {0, 1, 2, 3}  # every identity is trained
    # the 2nd, 7th, 12th image of each identity: 0 of 1, 1 of 2, 1 of 6, 3 of 12 (keys 1..21)
    assert list(theta.image_keys) == [3, 5, 11, 16, 21]
    again = check_face_records(str(tmp_path / "t.rec")).split()[1]
    assert list(again.image_keys) == list(theta.image_keys)


def _write(tmp_path, records):
    """Write raw (key, label, payload) records as an indexed file."""
    import mxnet as mx
    w = mx.recordio.MXIndexedRecordIO(str(tmp_path / "bad.idx"), str(tmp_path / "bad.rec"), "w")
    for key, label, payload in records:
        w.write_idx(key, mx.recordio.pack(mx.recordio.IRHeader(0, label, key, 0), payload))
    w.close()
    return str(tmp_path / "bad.rec")


@pytest.mark.parametrize("case,message", [
    ("past", "points to identity record 5, which"),
    ("empty", "identity record 4 has an empty range [2, 2)"),
    ("reversed", "identity record 4 has an invalid range [2, 1)"),
    ("property", "says 1 classes but"),  # fewer than its identities (more: sparse ids)
    ("undecodable", "record 1 is not a decodable image"),
])
def test_bad_identity_indexed_files_get_one_line(tmp_path, case, message):
    import cv2
    jpg = cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    images = [(1, [0.0, 1.0], jpg), (2, [1.0, 1.0], jpg)]
    spans = {"past": [[1, 2], [2, 3]], "empty": [[1, 2], [2, 2]],
             "reversed": [[1, 2], [2, 1]]}.get(case, [[1, 2], [2, 3]])
    end = 6 if case == "past" else 5
    if case == "undecodable":
        images[0] = (1, [0.0, 1.0], b"not an image")
    rec = _write(tmp_path, images + [(3, spans[0], b""), (4, spans[1], b""),
                                     (0, [3.0, float(end)], b"")])
    if case == "property":
        (tmp_path / "property").write_text("1,8,8\n")
    res = subprocess.run([sys.executable, "-m", "fbnet_symbol.data", "check", rec], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    lines = [l for l in res.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and message in lines[0] and "bad.rec" in lines[0], res.stderr


def test_pack_faces_and_make_pairs_tools(tmp_path):
    import cv2

    from fbnet_symbol.data.check import check_data
    from fbnet_symbol.faces.verify import load_pairs
    for n, images in enumerate(_faces(3, 3, size=20)):
        os.makedirs(tmp_path / "in" / ("person%d" % n))
        for k, img in enumerate(images):
            cv2.imwrite(str(tmp_path / "in" / ("person%d" % n) / ("person%d_%04d.jpg" % (n, k + 1))),
                        img)
    (tmp_path / "in" / "person0" / "broken.jpg").write_bytes(b"nope")
    run = lambda *a: subprocess.run([sys.executable, "-m", "fbnet_symbol.data", *a], cwd=ROOT,
                                    capture_output=True, text=True, timeout=120)
    res = run("pack-faces", str(tmp_path / "in"), str(tmp_path / "out" / "train"),
              "--size", "16,16")
    assert res.returncode == 0, res.stderr
    info = check_data(str(tmp_path / "out" / "train.rec"))
    assert (info.indexing, info.num_records, info.num_classes) == ("identity-indexed", 9, 3)
    assert (tmp_path / "out" / "property").read_text().strip() == "3,16,16"
    res = run("make-pairs", str(tmp_path / "drawn.bin"), "--folder", str(tmp_path / "in"),
              "--num-pairs", "10")
    assert res.returncode == 2 and "broken.jpg does not decode" in res.stderr
    assert not (tmp_path / "drawn.bin").exists()  # nothing written half
    os.remove(tmp_path / "in" / "person0" / "broken.jpg")
    res = run("make-pairs", str(tmp_path / "drawn.bin"), "--folder", str(tmp_path / "in"),
              "--num-pairs", "10")
    assert res.returncode == 0, res.stderr
    pairs = load_pairs(str(tmp_path / "drawn.bin"))
    assert len(pairs.bins) == 20 and list(pairs.issame) == [True, False] * 5
    (tmp_path / "pairs.txt").write_text("1\t2\nperson0\t1\t2\nperson1\t1\tperson2\t3\n")
    res = run("make-pairs", str(tmp_path / "lfw.bin"), "--pairs-txt", str(tmp_path / "pairs.txt"),
              "--images", str(tmp_path / "in"))
    assert res.returncode == 0, res.stderr
    assert list(load_pairs(str(tmp_path / "lfw.bin")).issame) == [True, False]


@pytest.fixture
def face_dir(tmp_path):
    """InsightFace's folder, synthetic: train.rec/.idx (identity-indexed), property, a .bin."""
    from fbnet_symbol.faces.files import write_synthetic_faces
    from tests.conftest import synthetic_lut
    paths = write_synthetic_faces(str(tmp_path / "faces"), identities=6, per_identity=5,
                                  size=8, pairs=20)
    os.replace(paths["pairs"], str(tmp_path / "faces" / "synth.bin"))
    return {"dir": str(tmp_path / "faces"), "lut": synthetic_lut(tmp_path / "speed.txt")}


@pytest.mark.slow
def test_search_on_insightface_data_verifies_each_epoch(face_dir, tmp_path):
    """--data-dir: train.rec read in place (theta split by image), the property's size,
    the .bin found and scored at every epoch end, in history.json; then resumed exactly."""
    import json

    from fbnet_symbol.search.run import SearchConfig, SearchRun
    cfg = dict(data_dir=face_dir["dir"], model_type="arcface", width_mult=0.25, batch_size=8,
               epochs=2, warmup_epochs=1, lut=face_dir["lut"], progress=False, log_frequence=0,
               save_frequence=2, seed=3)
    run = SearchRun(SearchConfig(save_model_path=str(tmp_path / "full"), **cfg))
    assert run.settings.image_shape == (3, 8, 8)  # from property
    assert run.env.data["train"].num_records + run.env.data["theta"].num_records == 30
    assert run.env.num_classes == 6
    run.run()
    history = json.load(open(tmp_path / "full" / "history.json"))
    records = history if isinstance(history, list) else history["epochs"]
    assert all(0 <= r["synth_acc"] <= 1 and "synth_tar_at_far" in r for r in records)
    want = {k: v.asnumpy() for k, v in run.trainer.params()[0].items()}
    from fbnet_symbol.search.run import StopRequested
    with pytest.raises(StopRequested):
        SearchRun(SearchConfig(save_model_path=str(tmp_path / "cut"), **cfg)).run(
            stop_after_steps=3)
    resumed = SearchRun(SearchConfig(save_model_path=str(tmp_path / "cut"),
                                     load_model_path=str(tmp_path / "cut"), **cfg))
    resumed.run()
    for name, value in resumed.trainer.params()[0].items():
        np.testing.assert_allclose(value.asnumpy(), want[name], rtol=1e-5, atol=1e-6,
                                   err_msg=name)


@pytest.mark.slow
def test_train_export_and_verify_a_face_model_from_the_command_line(face_dir, tmp_path):
    """test.py --arch --data-dir trains and verifies; export --insightface writes fc1; the
    verify CLI scores both the shipped graph and the fc1 export alike."""
    import json
    env = {k: v for k, v in os.environ.items() if k != "MXNET_ENGINE_TYPE"}

    def run(*args, module=None):
        cmd = [sys.executable] + (["-m", module] if module else ["test.py"]) + list(args)
        return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=600)

    out = tmp_path / "trained"
    res = run("--arch", "fbnet_b", "--width-mult", "0.25", "--model-type", "arcface",
              "--data-dir", face_dir["dir"], "--verify", "synth.bin", "--epochs", "2",
              "--batch-size", "8", "--save-model-path", str(out), "--no-progress")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "epoch 1 verification synth: accuracy" in res.stderr
    assert json.load(open(out / "model-input.json"))["shape"] == [1, 3, 8, 8]
    res = run("--load-model-path", str(out), "--insightface", str(tmp_path / "fc1"),
              module="fbnet_symbol.ship.export")
    assert res.returncode == 0, res.stderr[-2000:]
    assert (tmp_path / "fc1" / "model-0002.params").is_file()
    scores = []
    for model in (out, tmp_path / "fc1"):
        res = run("--load-model-path", str(model), "--bin",
                  os.path.join(face_dir["dir"], "synth.bin"), "--json", module="fbnet_symbol.faces.verify")
        assert res.returncode == 0, res.stderr[-2000:]
        scores.append(json.loads(res.stdout)["synth"])
    assert scores[0]["acc"] == pytest.approx(scores[1]["acc"])
    # bad input: one line, exit 2, before any training
    res = run("--data-dir", str(tmp_path), "--save-model-path", str(tmp_path / "x"))
    assert res.returncode == 2 and "has no train.rec" in res.stderr
    res = run("--data-dir", face_dir["dir"], "--verify", "missing.bin", "--save-model-path",
              str(tmp_path / "x"))
    assert res.returncode == 2 and "missing.bin does not exist" in res.stderr


def _insightface_folder(folder, faces, ids=True, size=16):
    """InsightFace's train.rec/.idx + property, written with mx.recordio as its tools do:
    images first (label [class, 0]), then identity records, the header (key 0) last.
    ``ids``: record ids equal to the keys (False: left 0, as some writers do)."""
    import mxnet as mx
    os.makedirs(folder, exist_ok=True)
    w = mx.recordio.MXIndexedRecordIO(os.path.join(folder, "train.idx"),
                                      os.path.join(folder, "train.rec"), "w")
    key, spans = 1, []
    for label, images in enumerate(faces):
        start = key
        for img in images:
            w.write_idx(key, mx.recordio.pack_img(
                mx.recordio.IRHeader(0, [float(label), 0.0], key if ids else 0, 0), img,
                quality=95, img_fmt=".jpg"))
            key += 1
        spans.append((start, key))
    first = key
    for n, span in enumerate(spans):
        w.write_idx(first + n, mx.recordio.pack(
            mx.recordio.IRHeader(0, list(map(float, span)), first + n if ids else 0, 0), b""))
    w.write_idx(0, mx.recordio.pack(
        mx.recordio.IRHeader(0, [float(first), float(first + len(spans))], 0, 0), b""))
    w.close()
    with open(os.path.join(folder, "property"), "w") as f:
        f.write("%d,%d,%d\n" % (len(faces), size, size))
    return os.path.join(folder, "train.rec")


@pytest.mark.parametrize("ids", [True, False])
def test_a_lost_index_is_rebuilt_with_insightfaces_keys(tmp_path, ids):
    """Case 1: `data index` keys by the record ids (or, where they repeat, finds the header),
    so the identity layout survives; then `data check` reads it."""
    from fbnet_symbol.data.check import check_data
    from fbnet_symbol.data.files import build_index
    rec = _insightface_folder(str(tmp_path / "d"), _faces(4, 3), ids=ids)
    original = check_data(rec)
    os.remove(tmp_path / "d" / "train.idx")
    assert build_index(rec) == 12 + 4 + 1
    again = check_data(rec)
    assert again.indexing == original.indexing == "identity-indexed"
    assert again.num_records == 12 and again.num_classes == 4
    assert list(again.image_keys) == list(original.image_keys)
    res = subprocess.run([sys.executable, "-m", "fbnet_symbol.data", "check", rec], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "identity-indexed, 12 images, 4 classes" in res.stdout


def test_an_index_filtered_to_the_images_reads_as_a_flat_file(tmp_path):
    """Case 2: an .idx holding only the image keys (a common workaround) is a flat file whose
    labels are each record's label[0]; the reader trains on it."""
    from fbnet_symbol.data.check import check_data, data_iter
    rec = _insightface_folder(str(tmp_path / "d"), _faces(3, 4))
    lines = open(tmp_path / "d" / "train.idx").read().splitlines()
    with open(tmp_path / "d" / "train.idx", "w") as f:
        f.write("".join(l + "\n" for l in lines if 1 <= int(l.split()[0]) <= 12))
    info = check_data(rec)
    assert (info.indexing, info.num_records, info.num_classes) == ("flat", 12, 3)
    labels = np.concatenate([b.label[0].asnumpy()[:4 - b.pad]
                             for b in data_iter(info, (3, 16, 16), 4, shuffle=False)])
    assert list(labels) == [0] * 4 + [1] * 4 + [2] * 4


def test_data_dir_reads_a_flat_folder(tmp_path):
    """Case 3: --data-dir on a flat train.rec (im2rec, PyTorch-era InsightFace folders):
    theta is split off by image inside each class, as for the identity-indexed layout."""
    import mxnet as mx

    from fbnet_symbol.search.run import SearchConfig, SearchRun
    os.makedirs(tmp_path / "flat")
    w = mx.recordio.MXIndexedRecordIO(str(tmp_path / "flat" / "train.idx"),
                                      str(tmp_path / "flat" / "train.rec"), "w")
    images = [(c, img) for c, f in enumerate(_faces(3, 5, size=8)) for img in f]
    for key, (label, img) in enumerate(images):  # im2rec's way: key = id, from 0
        w.write_idx(key, mx.recordio.pack_img(mx.recordio.IRHeader(0, [float(label), 0.0],
                                                                   key, 0), img, img_fmt=".jpg"))
    w.close()
    run = SearchRun(SearchConfig(data_dir=str(tmp_path / "flat"), image_shape=(3, 8, 8),
                                 width_mult=0.25, batch_size=4, epochs=1, warmup_epochs=0,
                                 lut=synthetic_lut(tmp_path / "lut.json"),
                                 save_model_path=str(tmp_path / "m"), progress=False,
                                 log_frequence=0))
    train, theta = run.env.data["train"], run.env.data["theta"]
    assert (train.num_records, theta.num_records) == (12, 3)  # the 2nd image of each class
    assert sorted(theta.labels) == [0, 1, 2] and train.num_classes == theta.num_classes == 3
    assert not set(theta.image_records()[0]) & set(train.image_records()[0])
    assert run.run()["epochs"] == 1


@pytest.mark.parametrize("prop,error", [
    (None, None),                       # case 4: no property: the images' own size
    ("4,16,16", None),
    ("4,12,12", "says the images are 12x12 but .* are 16x16; fix its first line \\(4,16,16\\)"),
    ("3,16,16", "says 3 classes but .* has 4 identities; write at least 4"),
])
def test_property_is_checked_against_the_images(tmp_path, prop, error):
    from fbnet_symbol.data.check import check_data
    from fbnet_symbol.errors import FBNetError
    from fbnet_symbol.search.run import resolve_run
    from fbnet_symbol.settings import Settings
    folder = tmp_path / "d"
    rec = _insightface_folder(str(folder), _faces(4, 3, size=16))
    if prop is None:
        os.remove(folder / "property")
    else:
        (folder / "property").write_text(prop + "\n")
    if error:
        with pytest.raises(FBNetError, match=error):
            check_data(rec)
        return
    info = check_data(rec)
    assert info.image_size == (16, 16) and info.num_classes == 4
    # the input size defaults to the images' (property's, or without one, the images')
    assert resolve_run(Settings(data_dir=str(folder))).image_shape == (3, 16, 16)


def test_sparse_class_ids_train_with_propertys_count(tmp_path):
    """Case 5: ids 0, 2, 4, 6 (filtered sets) with property = highest id + 1 = 7, as
    InsightFace trains them; a property of 4 is caught at check time with the right advice."""
    import mxnet as mx

    from fbnet_symbol.data.check import check_data, describe
    from fbnet_symbol.errors import FBNetError
    from fbnet_symbol.search.run import SearchConfig, SearchRun
    folder = tmp_path / "d"
    rec = _insightface_folder(str(folder), _faces(4, 5, size=8), size=8)
    reader = mx.recordio.MXIndexedRecordIO(str(folder / "train.idx"), rec, "r")
    w = mx.recordio.MXIndexedRecordIO(str(tmp_path / "s.idx"), str(tmp_path / "s.rec"), "w")
    for key in sorted(reader.keys):  # the same file with every class id doubled
        header, payload = mx.recordio.unpack(reader.read_idx(key))
        if 1 <= key <= 20:
            header = header._replace(label=[2 * header.label[0], 0.0])
        w.write_idx(key, mx.recordio.pack(header, payload))
    w.close()
    for ext in (".rec", ".idx"):
        os.replace(tmp_path / ("s" + ext), folder / ("train" + ext))
    (folder / "property").write_text("4,8,8\n")
    with pytest.raises(FBNetError, match="class 6, outside the 4 classes .*write 7 "):
        check_data(rec)
    (folder / "property").write_text("7,8,8\n")
    info = check_data(rec)
    assert (info.identities, info.num_classes, info.class_ids) == (4, 7, (0, 6))
    assert "7 classes (4 identity records), class ids 0..6" in describe(info)
    run = SearchRun(SearchConfig(data_dir=str(folder), width_mult=0.25, batch_size=4,
                                 epochs=1, warmup_epochs=0,
                                 lut=synthetic_lut(tmp_path / "lut.json"),
                                 save_model_path=str(tmp_path / "m"), progress=False,
                                 log_frequence=0))
    assert run.env.num_classes == 7 and run.run()["epochs"] == 1


def test_the_synthetic_faces_task_is_deterministic_and_cached(tmp_path):
    """The study's faces task: the same bytes from the same parameters in two caches, made
    once, another seed another set; InsightFace's layout, which --data-dir takes."""
    from fbnet_symbol.data.insightface import data_folder
    from fbnet_symbol.faces.files import cached_synthetic_faces
    kw = dict(identities=6, per_identity=3, size=16, pairs=20)
    a = cached_synthetic_faces(str(tmp_path / "a"), **kw)
    b = cached_synthetic_faces(str(tmp_path / "b"), **kw)
    for name in ("train.rec", "train.idx", "property", "pairs.bin"):
        assert open(os.path.join(a, name), "rb").read() == open(os.path.join(b, name),
                                                                "rb").read()
    stamp = os.path.getmtime(os.path.join(a, "train.rec"))
    assert cached_synthetic_faces(str(tmp_path / "a"), **kw) == a
    assert os.path.getmtime(os.path.join(a, "train.rec")) == stamp
    other = cached_synthetic_faces(str(tmp_path / "a"), seed=1, **kw)
    assert other != a and open(os.path.join(other, "train.rec"), "rb").read() != \
        open(os.path.join(a, "train.rec"), "rb").read()
    train, pairs = data_folder(a)
    assert train == os.path.join(a, "train.rec") and pairs == [os.path.join(a, "pairs.bin")]
    assert not [f for f in os.listdir(str(tmp_path / "a")) if f.startswith(".faces-")]


def test_settings_resolved_from_a_data_dir_resolve_again_as_a_studys_runs_do(face_dir):
    from fbnet_symbol.errors import FBNetError
    from fbnet_symbol.search.run import resolve_run
    from fbnet_symbol.settings import Settings
    once = resolve_run(Settings(data_dir=face_dir["dir"]))
    twice = resolve_run(once)  # each study run resolves the study's resolved settings
    assert (twice.train_rec, twice.theta_rec, twice.verify) == \
        (once.train_rec, once.theta_rec, once.verify)
    with pytest.raises(FBNetError, match="not both"):
        resolve_run(Settings(data_dir=face_dir["dir"], train_rec="other.rec",
                             theta_rec="other.rec"))
