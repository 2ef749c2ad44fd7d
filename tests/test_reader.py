"""The package's one reader (fbnet_symbol.data.reader): the same pixels as MXNet's ImageRecordIter,
both indexings, order / mirror / shards / padding, memory and streamed paths alike, resume."""
import numpy as np
import pytest

from tests.conftest import make_rec


def _faces(ids=5, per=4, size=16, seed=0):
    from fbnet_symbol.faces.files import synthetic_faces
    return synthetic_faces(ids, per, size, seed)


def _arrays(batches):
    return (np.concatenate([b.data[0].asnumpy() for b in batches]),
            np.concatenate([b.label[0].asnumpy() for b in batches]), [b.pad for b in batches])


@pytest.fixture
def both_indexings(tmp_path):
    """The same 20 images as InsightFace's identity-indexed file and as a flat file."""
    from fbnet_symbol.data.check import check_data
    from fbnet_symbol.data.files import write_images
    from fbnet_symbol.faces.files import write_face_records
    faces = _faces(4, 5, size=16)
    write_face_records(str(tmp_path / "faces"), faces)
    write_images(str(tmp_path / "flat"), [i for f in faces for i in f],
                 [c for c, f in enumerate(faces) for _ in f], fmt=".jpg")
    return check_data(str(tmp_path / "faces.rec")), check_data(str(tmp_path / "flat.rec"))


@pytest.mark.parametrize("cache_bytes", [None, 0])  # decoded once in memory / streamed
def test_same_pixels_as_image_record_iter_for_both_indexings(both_indexings, cache_bytes):
    from fbnet_symbol.data.check import image_record_iter
    from fbnet_symbol.data.reader import RecordReader
    faces, flat = both_indexings
    assert (faces.indexing, flat.indexing) == ("identity-indexed", "flat")
    def arrays(batches):  # copied as they come: an iterator may reuse its buffers
        return [(b.data[0].asnumpy().copy(), b.label[0].asnumpy().copy(), b.pad)
                for b in batches]

    for shape in [(3, 16, 16), (3, 12, 12)]:  # as stored; resized and centre-cropped
        theirs = arrays(image_record_iter(flat.rec, shape, 8))
        for info in (faces, flat):
            ours = arrays(RecordReader(info, shape, 8, shuffle=False, cache_bytes=cache_bytes))
            assert [b[2] for b in ours] == [b[2] for b in theirs] == [0, 0, 4]
            for a, b in zip(ours, theirs):
                assert np.array_equal(a[1], b[1])
                diff = np.abs(a[0] - b[0])
                tol = 1e-6 if shape[1] == 16 else 2.0 / 127.5  # cubic kernels may round apart
                assert diff.max() <= tol, (info.indexing, shape, diff.max())


@pytest.mark.parametrize("layout", ["identity-indexed", "flat"])
def test_order_mirror_shards_and_padding(tmp_path, layout):
    from fbnet_symbol.data.check import check_data
    from fbnet_symbol.data.files import write_images
    from fbnet_symbol.data.reader import RecordReader
    from fbnet_symbol.faces.files import write_face_records
    faces = _faces(3, 7, size=8)
    if layout == "flat":
        write_images(str(tmp_path / "f"), [i for f in faces for i in f],
                     [c for c, f in enumerate(faces) for _ in f])
    else:
        write_face_records(str(tmp_path / "f"), faces)
    info = check_data(str(tmp_path / "f.rec"))
    assert info.indexing == layout

    def epoch(**kw):
        return _arrays(list(RecordReader(info, (3, 8, 8), 4, **kw)))

    a, b = epoch(seed=5, rand_mirror=True), epoch(seed=5, rand_mirror=True)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])  # a function of the seed
    assert not np.array_equal(a[1], epoch(seed=6)[1])
    assert a[2][-1] == 3  # 21 images in batches of 4: the last holds 1 real row and 3 of fill
    plain = epoch(shuffle=False)
    mirrored = epoch(shuffle=False, rand_mirror=True, seed=1)
    flipped = [i for i in range(21) if not np.array_equal(plain[0][i], mirrored[0][i])]
    assert 3 <= len(flipped) <= 18
    for i in flipped:
        assert np.array_equal(plain[0][i][:, :, ::-1], mirrored[0][i])
    assert np.array_equal(plain[1][:21], np.repeat([0, 1, 2], 7))
    parts = [epoch(shuffle=False, num_parts=2, part_index=k)[1] for k in (0, 1)]
    assert sorted(np.r_[parts[0][:11], parts[1][:10]]) == sorted(plain[1][:21])
    # the memory path and the streamed one give the same batches, mirror and shuffle on
    for kw in (dict(seed=3, rand_mirror=True), dict(seed=3, num_parts=2, part_index=1)):
        streamed, kept = epoch(cache_bytes=0, **kw), epoch(**kw)
        assert np.array_equal(streamed[0], kept[0]) and np.array_equal(streamed[1], kept[1])


@pytest.mark.parametrize("cache_bytes", [None, 0])
def test_batches_from_the_middle_equal_the_full_epoch(tmp_path, cache_bytes):
    """A resumed run starts at its batch without reading the ones before: same batches."""
    from fbnet_symbol.data.check import check_data
    from fbnet_symbol.data.reader import RecordReader
    info = check_data(make_rec(tmp_path / "r", 22, classes=3))
    reader = RecordReader(info, (3, 8, 8), 4, seed=9, rand_mirror=True, cache_bytes=cache_bytes)
    assert reader.cached == (cache_bytes is None)  # 22 tiny images fit; 0 bytes: streamed
    full = list(reader)
    assert len(full) == len(reader) == 6
    tail = list(reader.batches(4))
    for a, b in zip(full[4:], tail):
        assert np.array_equal(a.data[0].asnumpy(), b.data[0].asnumpy())
        assert np.array_equal(a.label[0].asnumpy(), b.label[0].asnumpy()) and a.pad == b.pad
    assert len(tail) == 2 and list(reader.batches(6)) == []
    empty = reader.empty_batch()
    assert empty.pad == 4 and empty.data[0].shape == (4, 3, 8, 8)


def test_bad_records_found_while_reading_give_one_line(tmp_path):
    """A record damaged after the check (or past the sampled ones) stops with the file and
    the record named, in both paths."""
    from fbnet_symbol.data.check import check_data
    from fbnet_symbol.data.reader import RecordReader
    from fbnet_symbol.errors import FBNetError
    rec = make_rec(tmp_path / "d", 40)
    info = check_data(rec)
    offsets = [int(line.split()[1]) for line in open(tmp_path / "d.idx")]
    with open(rec, "r+b") as f:  # record 5's image bytes, not checked (16 of 40 sampled)
        f.seek(offsets[5] + 8 + 24 + 4)
        f.write(b"\0" * 16)
    for cache_bytes in (None, 0):
        with pytest.raises(FBNetError, match=r"d\.rec: record 5 is not a decodable image"):
            list(RecordReader(info, (3, 8, 8), 8, shuffle=False, cache_bytes=cache_bytes))
    with pytest.raises(FBNetError, match="3-channel"):
        RecordReader(info, (1, 8, 8), 8)


def test_the_loops_never_create_an_image_record_iter(tiny_data, tmp_path, monkeypatch):
    """One alive in the process slows MXNet's multi-threaded operators (module docstring)."""
    import mxnet as mx

    from fbnet_symbol.search.run import SearchConfig, SearchRun

    def refuse(*args, **kwargs):
        raise AssertionError("mx.io.ImageRecordIter was created")

    monkeypatch.setattr(mx.io, "ImageRecordIter", refuse)
    summary = SearchRun(SearchConfig(
        train_rec=tiny_data["train"], theta_rec=tiny_data["theta"], val_rec=tiny_data["val"],
        lut=tiny_data["lut"], image_shape=(3, 8, 8), width_mult=0.25, batch_size=8, epochs=2,
        warmup_epochs=1, save_model_path=str(tmp_path / "m"), progress=False,
        log_frequence=0, gpu="cpu")).run()
    assert summary["val_acc"] is not None


def test_images_are_resized_as_insightface_resizes_them():
    """Bicubic, as mx.image.resize_short(..., interp=2) in InsightFace's iterator and .bin
    loader (not bilinear); non-square images: shorter side, then a centre crop."""
    import cv2
    import mxnet as mx

    from fbnet_symbol.data.reader import decode_image
    rng = np.random.RandomState(0)
    for h, w in [(112, 112), (120, 96)]:
        img = cv2.GaussianBlur(rng.randint(0, 255, (h, w, 3)).astype(np.uint8), (5, 5), 2)
        payload = cv2.imencode(".png", img)[1].tobytes()
        ours = decode_image(payload, 32, 32)
        theirs = mx.image.resize_short(mx.image.imdecode(payload), 32, interp=2)
        theirs = mx.image.center_crop(theirs, (32, 32))[0].asnumpy()
        assert ours.shape == theirs.shape == (32, 32, 3)
        assert np.abs(ours.astype(int) - theirs).max() <= 1, (h, w)
        bilinear = cv2.resize(img, (32, 32), interpolation=cv2.INTER_LINEAR)[:, :, ::-1]
        if (h, w) == (112, 112):
            assert np.abs(ours.astype(int) - bilinear).max() > 1  # the kernels differ
