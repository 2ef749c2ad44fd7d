import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from fbnet_symbol.data.check import data_iter
from fbnet_symbol.data.digits import embedded_digits
from fbnet_symbol.data.files import build_index, pack_folder, split_records
from fbnet_symbol.data.recordio import check_recordio
from fbnet_symbol.errors import FBNetError
from tests.conftest import ROOT, make_rec


def test_pack_folder_and_read_back(tmp_path):
    for c, colour in (("cat", 40), ("dog", 200)):
        os.makedirs(tmp_path / "imgs" / c)
        for i in range(5):
            cv2.imwrite(str(tmp_path / "imgs" / c / ("%d.png" % i)),
                        np.full((20, 30, 3), colour + i, np.uint8))
    (tmp_path / "imgs" / "dog" / "notes.txt").write_text("not an image")
    n, classes = pack_folder(str(tmp_path / "imgs"), str(tmp_path / "packed"), resize=10)
    assert n == 10 and classes == ["cat", "dog"]
    info = check_recordio(str(tmp_path / "packed.rec"))
    assert info.num_records == 10 and info.num_classes == 2
    assert sorted(np.bincount(info.labels)) == [5, 5]
    it = data_iter(info, (3, 8, 8), 4, shuffle=False)
    batches = list(it)
    assert len(batches) == 3 and batches[-1].pad == 2
    assert "0\tcat" in (tmp_path / "packed.classes.txt").read_text()


def test_split_is_deterministic_stratified_and_complete(tmp_path):
    rec = make_rec(tmp_path / "all", 50, classes=5)
    a1, b1 = split_records(rec, str(tmp_path / "a1"), str(tmp_path / "b1"), 0.8, seed=0)
    a2, b2 = split_records(rec, str(tmp_path / "a2"), str(tmp_path / "b2"), 0.8, seed=0)
    assert (a1, b1) == (a2, b2) == (40, 10)
    assert open(tmp_path / "a1.rec", "rb").read() == open(tmp_path / "a2.rec", "rb").read()
    la = check_recordio(str(tmp_path / "a1.rec")).labels
    lb = check_recordio(str(tmp_path / "b1.rec")).labels
    assert list(np.bincount(la)) == [8] * 5 and list(np.bincount(lb)) == [2] * 5


def test_index_rebuild(tmp_path):
    rec = make_rec(tmp_path / "x", 7)
    original = open(tmp_path / "x.idx").read()
    os.unlink(tmp_path / "x.idx")
    with pytest.raises(FBNetError, match="no index .* build it with"):
        check_recordio(rec)
    assert build_index(rec) == 7
    assert open(tmp_path / "x.idx").read() == original  # keys (the header ids) and offsets


@pytest.mark.parametrize("damage,fragment", [
    ("truncate", "truncated"), ("zero_header", "corrupt"), ("bad_idx", "points past the end"),
    ("garbage_image", "not a decodable image")])
def test_damaged_files_are_caught_in_python(tmp_path, damage, fragment):
    rec = make_rec(tmp_path / "d", 6)
    offsets = [int(l.split()[1]) for l in open(tmp_path / "d.idx")]
    if damage == "truncate":
        with open(rec, "r+b") as f:
            f.truncate(os.path.getsize(rec) - 40)
    elif damage == "zero_header":
        with open(rec, "r+b") as f:
            f.seek(offsets[3])
            f.write(b"\x00" * 8)
    elif damage == "bad_idx":
        with open(tmp_path / "d.idx", "a") as f:
            f.write("6\t999999\n")
    else:
        with open(rec, "r+b") as f:
            f.seek(offsets[0] + 8 + 24)
            f.write(b"\xff" * 40)
    with pytest.raises(FBNetError, match=fragment):
        check_recordio(rec)
    # and through the command line: one line, exit 2, no traceback
    res = subprocess.run([sys.executable, "-m", "fbnet_symbol.data", "check", rec], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr and fragment in res.stderr


def test_embedded_digits_is_cached_and_split(tmp_path):
    paths = embedded_digits(str(tmp_path))
    counts = {k: check_recordio(v).num_records for k, v in paths.items()}
    assert sum(counts.values()) == 1797 and counts["val"] == 359
    assert all(check_recordio(v).num_classes == 10 for v in paths.values())
    stamp = os.path.getmtime(paths["train"])
    assert embedded_digits(str(tmp_path)) == paths and os.path.getmtime(paths["train"]) == stamp


def test_the_cluttered_digits_task_is_deterministic_cached_and_split_by_source(tmp_path):
    from fbnet_symbol.data.digits import cluttered_digits
    a = cluttered_digits(str(tmp_path / "a"))
    b = cluttered_digits(str(tmp_path / "b"))
    for split in a:  # the same bytes from the same seed, anywhere
        assert open(a[split], "rb").read() == open(b[split], "rb").read()
    stamp = os.path.getmtime(a["train"])
    assert cluttered_digits(str(tmp_path / "a")) == a and os.path.getmtime(a["train"]) == stamp
    other = cluttered_digits(str(tmp_path / "a"), seed=1)
    assert other["train"] != a["train"]  # another seed: another task, cached apart
    assert open(other["train"], "rb").read() != open(a["train"], "rb").read()
    sizes = {s: check_recordio(a[s]).num_records for s in a}
    plain = embedded_digits(str(tmp_path / "plain"))  # the same source digits per split
    assert sizes == {s: 3 * check_recordio(plain[s]).num_records for s in plain}
