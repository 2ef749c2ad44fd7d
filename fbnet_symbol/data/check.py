"""Checking a RecordIO file of either indexing, and reading it: the one door from a path to batches.

``.rec`` + ``.idx`` is the format of MXNet's im2rec and InsightFace. :func:`check_data`
validates a file in Python — the flat indexing by :mod:`.recordio`, InsightFace's
identity-indexed one by :mod:`fbnet_symbol.data.insightface` — before any batch is read;
:func:`data_iter` hands the checked file to the package's one reader
(:class:`~fbnet_symbol.data.reader.RecordReader`).
"""
import os

from ..space.spaces import PIXEL_MEAN, PIXEL_SCALE
from .recordio import check_recordio, idx_path


def data_iter(info, image_shape, batch_size, shuffle=True, seed=0, num_parts=1, part_index=0,
              rand_mirror=False):
    """The batches of a checked file of either indexing (:func:`check_data`), read by the
    package's one reader (:class:`~fbnet_symbol.data.reader.RecordReader`)."""
    from .reader import RecordReader
    return RecordReader(info, image_shape, batch_size, shuffle, seed, num_parts, part_index,
                        rand_mirror)


def image_record_iter(rec, image_shape, batch_size, shuffle=False, seed=0, rand_mirror=False,
                      threads=1):
    """MXNet's ``ImageRecordIter`` set to the reader's conventions: the reference the reader
    is tested and benchmarked against, never used by the loops (one alive in the process
    slows MXNet's multi-threaded operators: :mod:`fbnet_symbol.data.reader`)."""
    import mxnet as mx

    c, h, w = image_shape
    return mx.io.ImageRecordIter(
        path_imgrec=rec, path_imgidx=idx_path(rec), data_shape=(c, h, w),
        batch_size=batch_size, shuffle=shuffle, seed=int(seed) % (2 ** 31),
        round_batch=True, resize=min(h, w), inter_method=2, rand_mirror=rand_mirror,
        mean_r=PIXEL_MEAN, mean_g=PIXEL_MEAN, mean_b=PIXEL_MEAN, std_r=PIXEL_SCALE,
        std_g=PIXEL_SCALE, std_b=PIXEL_SCALE, preprocess_threads=threads, prefetch_buffer=2,
        label_width=1, data_name="data", label_name="softmax_label", verbose=False)


def check_data(rec, what="data"):
    """Validate a ``.rec``/``.idx`` pair of either indexing: flat (every record an image,
    :class:`~fbnet_symbol.data.recordio.RecordInfo`) or InsightFace's identity-indexed one
    (:class:`~fbnet_symbol.data.insightface.FaceRecords`), told apart by record 0."""
    from .insightface import check_face_records, is_identity_indexed, read_keyed_index

    if not (rec and os.path.isfile(rec) and os.path.isfile(idx_path(rec))):
        return check_recordio(rec, what=what)  # its errors name what is missing
    index = read_keyed_index(idx_path(rec), rec)  # read once, for either check
    if is_identity_indexed(rec, index):
        return check_face_records(rec, index, what=what)
    return check_recordio(rec, what=what, offsets=list(index.values()))


def describe(info):
    """One line on a checked file: indexing, images, classes and ids, image size, property."""
    size = "x".join(map(str, info.image_size)) if info.image_size else "of several sizes"
    text = "%s: %s, %d images, %d classes" % (info.rec, info.indexing, info.num_records,
                                                     info.num_classes)
    if info.indexing == "flat":
        ids = (int(info.labels.min()), int(info.labels.max())) if info.num_records else (0, 0)
        return text + ", class ids %d..%d, images %s" % (ids[0], ids[1], size)
    from .insightface import LABEL_SAMPLES
    prop = info.property_file
    return text + " (%d identity records), class ids %d..%d (%d sampled), images %s, %s" % (
        info.identities, info.class_ids[0], info.class_ids[1],
        min(info.num_records, LABEL_SAMPLES), size,
        "property %d,%d,%d" % prop if prop else "no property file (the images' size is used)")
