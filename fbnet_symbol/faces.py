"""InsightFace's identity-indexed RecordIO layout: detect, check, split and read it.

The training sets face-recognition users download (faces_emore / MS1M-ArcFace, CASIA,
anything made with InsightFace's ``face2rec2.py`` or ``rec_builder.py``) are one
``train.rec``/``train.idx`` whose *keys* (not file order) carry the structure:

* key 0: a header, empty payload, label ``[first_identity_key, end_identity_key]``;
* keys ``1 .. first_identity_key - 1``: the images, label a class or ``[class, aligned]``;
* keys ``first_identity_key .. end_identity_key - 1``: one record per identity, empty
  payload, label ``[start, end)``: the image keys of that identity.

A ``property`` file beside it reads ``num_classes,H,W`` on its first line. The *flat*
layout (every record an image with a scalar label) is read by ``mx.io.ImageRecordIter``;
this layout is read by :class:`FaceRecordIter`, through the index, with the flat
iterator's conventions (see :func:`~fbnet_symbol.data.record_iter`): RGB, shorter side
resized to the input, centre crop, ``(x - 127.5) / 127.5``, seeded shuffle and mirror,
shards by worker, the last batch filled from the start with ``pad`` rows.

Theta split: by image, inside each identity (the 2nd, 7th, 12th... image of each identity goes to
theta; an identity with one image keeps it for the weights). The weights and theta share one classifier over identities, so
theta's cross-entropy needs images of identities the weights learn; a split by identity
would score theta on classes whose classifier rows were never trained. The split is a
list of keys: the 5.8 M-image file is read in place, never rewritten. Writing these
files: :mod:`fbnet_symbol.face_files`.
"""
import logging
import os
import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .errors import FBNetError
from .recordio import LENGTH_MASK, PIXEL_MEAN, PIXEL_SCALE, RECORD_MAGIC, idx_path
from .threads import cores

logger = logging.getLogger(__name__)

THETA_EVERY = 5  # every fifth image of an identity goes to the theta split (80/20)
PROPERTY = "property"


# ---------------------------------------------------------------- reading records

def read_keyed_index(idx, rec):
    """``{key: offset}`` of an ``.idx`` (InsightFace's files are not in key order)."""
    if not os.path.isfile(idx):
        raise FBNetError("no index %s beside %s; build it with: python -m fbnet_symbol.data "
                         "index %s" % (idx, rec, rec))
    index = {}
    with open(idx) as f:
        for n, line in enumerate(f, start=1):
            parts = line.split()
            if not parts:
                continue
            try:
                index[int(parts[0])] = int(parts[1])
            except (IndexError, ValueError):
                raise FBNetError("%s line %d is not 'key<TAB>offset'; rebuild it with: "
                                 "python -m fbnet_symbol.data index %s" % (idx, n, rec)) from None
    return index


def read_record(fd, offset, size, rec, key):
    """(label array, payload bytes) of the record at ``offset``; thread-safe (``pread``)."""
    head = os.pread(fd, 8, offset) if offset + 8 <= size else b""
    if len(head) < 8:
        raise FBNetError("%s: record %d points past the end of the file (byte %d of %d); the "
                         ".idx belongs to another file: rebuild it or re-pack" % (rec, key,
                                                                                  offset, size))
    magic, lrec = struct.unpack("<II", head)
    length = lrec & LENGTH_MASK
    if magic != RECORD_MAGIC or lrec >> 29 != 0 or length < 24 or offset + 8 + length > size:
        raise FBNetError("%s: record %d (byte %d) is corrupt or truncated; re-pack the data "
                         "(python -m fbnet_symbol.data pack-faces)" % (rec, key, offset))
    body = os.pread(fd, length, offset + 8)
    flag, label, _, _ = struct.unpack("<IfQQ", body[:24])
    if flag > 0:
        if length < 24 + 4 * flag:
            raise FBNetError("%s: record %d (byte %d) has a bad label header; re-pack the "
                             "data" % (rec, key, offset))
        labels = np.frombuffer(body[24:24 + 4 * flag], dtype=np.float32)
        return labels, body[24 + 4 * flag:]
    return np.array([label], dtype=np.float32), body[24:]


def read_property(folder):
    """(num_classes, height, width) from ``folder/property``, or None if there is none."""
    path = os.path.join(folder, PROPERTY)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        first = f.readline().strip()
    try:
        classes, h, w = (int(v) for v in first.split(","))
    except ValueError:
        raise FBNetError("%s: the first line must read num_classes,H,W (e.g. 85742,112,112), "
                         "not %r; fix or delete it" % (path, first)) from None
    return classes, h, w


def is_identity_indexed(rec, index=None):
    """True when key 0 of ``rec`` is InsightFace's header (two labels, no image).
    ``index``: its ``{key: offset}`` if already read. A damaged record 0 answers False:
    the flat layout's own check then names the fault."""
    index = read_keyed_index(idx_path(rec), rec) if index is None else index
    if 0 not in index:
        return False
    try:
        with open(rec, "rb") as f:
            labels, payload = read_record(f.fileno(), index[0], os.path.getsize(rec), rec, 0)
    except FBNetError:
        return False
    return len(labels) == 2 and len(payload) == 0


@dataclass
class FaceRecords:
    """An identity-indexed file, checked: its image keys, their classes, its identities."""
    rec: str
    idx: str
    offsets: dict              # key -> byte offset
    image_keys: np.ndarray     # keys of the images of this split
    labels: np.ndarray         # identity of each image (its identity record); batches carry
                               # label[0] of the image record itself, as InsightFace reads
    identities: int            # classes (from the header)
    layout: str = "identity-indexed"

    @property
    def num_records(self):
        return len(self.image_keys)

    @property
    def num_classes(self):
        return self.identities

    def subset(self, mask):
        return FaceRecords(self.rec, self.idx, self.offsets, self.image_keys[mask],
                           self.labels[mask], self.identities)

    def split(self):
        """(weight split, theta split): by image inside each identity (module docstring)."""
        order = np.lexsort((self.image_keys, self.labels))  # by class, then key
        rank = np.empty(len(order), dtype=np.int64)
        classes = self.labels[order]
        starts = np.r_[0, np.flatnonzero(np.diff(classes)) + 1]
        sizes = np.diff(np.r_[starts, len(order)])
        rank[order] = np.arange(len(order)) - np.repeat(starts, sizes)
        theta = rank % THETA_EVERY == 1  # an identity with one image keeps it for the weights
        return self.subset(~theta), self.subset(theta)


def check_face_records(rec, index=None, decode_samples=16, what="data"):
    """Read and validate an identity-indexed file's structure; one-line errors.
    ``index``: its ``{key: offset}`` if already read."""
    import cv2

    idx = idx_path(rec)
    if not os.path.isfile(rec):
        raise FBNetError("%s file %s does not exist" % (what, rec))
    index = read_keyed_index(idx, rec) if index is None else index
    size = os.path.getsize(rec)
    fd = os.open(rec, os.O_RDONLY)
    try:
        header, _ = read_record(fd, index[0], size, rec, 0)
        first, end = int(header[0]), int(header[1])
        if not 1 < first < end:
            raise FBNetError("%s: the header (record 0) reads identities [%d, %d), not a range "
                             "after the images; the file is not InsightFace's layout or is "
                             "corrupt: re-pack it" % (rec, first, end))
        missing = [k for k in (first, end - 1) if k not in index]
        if missing:
            raise FBNetError("%s: the header points to identity record %d, which %s does not "
                             "list (the file or its index is cut short); re-download or "
                             "re-pack it" % (rec, missing[0], idx))
        keys, labels = [], []
        for identity, key in enumerate(range(first, end)):
            if key not in index:
                raise FBNetError("%s: identity record %d is missing from %s; re-pack the data"
                                 % (rec, key, idx))
            span, payload = read_record(fd, index[key], size, rec, key)
            if len(span) < 2 or len(payload):
                raise FBNetError("%s: record %d should be an identity record (label [start, "
                                 "end), no image); re-pack the data" % (rec, key))
            start, stop = int(span[0]), int(span[1])
            if not 1 <= start < stop <= first:
                raise FBNetError("%s: identity record %d has an %s range [%d, %d); re-pack the "
                                 "data" % (rec, key, "empty" if start == stop else "invalid",
                                           start, stop))
            keys.append(np.arange(start, stop))
            labels.append(np.full(stop - start, identity))
        keys, labels = np.concatenate(keys), np.concatenate(labels)
        absent = [int(k) for k in keys if int(k) not in index][:1]
        if absent:
            raise FBNetError("%s: image record %d is not in %s; re-pack the data"
                             % (rec, absent[0], idx))
        sample = keys[np.linspace(0, len(keys) - 1, min(decode_samples, len(keys))).astype(int)]
        for key in sample:
            label, payload = read_record(fd, index[int(key)], size, rec, int(key))
            if cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR) is None:
                raise FBNetError("%s: record %d is not a decodable image; re-pack the data"
                                 % (rec, key))
    finally:
        os.close(fd)
    found = read_property(os.path.dirname(os.path.abspath(rec)))
    if found and found[0] != end - first:
        raise FBNetError("%s says %d classes but %s's header has %d identities; fix the "
                         "property file's first line (%d,%d,%d)" % (
                             os.path.join(os.path.dirname(rec) or ".", PROPERTY), found[0],
                             rec, end - first, end - first, found[1], found[2]))
    return FaceRecords(rec, idx, index, keys, labels, end - first)


# ---------------------------------------------------------------- the iterator

def decode_image(payload, height, width):
    """Encoded image bytes -> RGB uint8 HxWx3: shorter side resized to the input, centre crop."""
    import cv2

    img = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise FBNetError("an image does not decode")  # callers name the file and record
    h, w = img.shape[:2]
    if (h, w) != (height, width):
        scale = max(height / h, width / w)
        img = cv2.resize(img, (max(width, round(w * scale)), max(height, round(h * scale))),
                         interpolation=cv2.INTER_LINEAR)
        top, left = (img.shape[0] - height) // 2, (img.shape[1] - width) // 2
        img = img[top:top + height, left:left + width]
    return img[:, :, ::-1]


class FaceRecordIter:
    """Batches of one epoch over ``records`` (a :class:`FaceRecords`), as ``DataBatch``es.

    The order, the mirror flags and this worker's shard are pure functions of ``seed``,
    ``num_parts`` and ``part_index`` (so a resumed run sees the same batches); images
    are decoded by ``threads`` threads (OpenCV and numpy release the GIL; default: the
    cores, at most 8) one batch ahead.
    """

    def __init__(self, records, image_shape, batch_size, shuffle=True, seed=0, num_parts=1,
                 part_index=0, rand_mirror=False, threads=None):
        self.records, self.batch_size = records, batch_size
        self.channels, self.height, self.width = image_shape
        keys = np.array_split(np.arange(records.num_records), num_parts)[part_index]
        rng = np.random.RandomState(seed)
        self.order = rng.permutation(keys) if shuffle else keys
        self.mirror = (rng.rand(len(self.order)) < 0.5) if rand_mirror else \
            np.zeros(len(self.order), bool)
        self.threads = threads or min(8, cores())
        self.provide_data = [("data", (batch_size,) + tuple(image_shape))]
        self.provide_label = [("softmax_label", (batch_size,))]

    def __len__(self):
        return -(-len(self.order) // self.batch_size)

    def _rows(self, b):
        rows = np.arange(b * self.batch_size, (b + 1) * self.batch_size)
        pad = int(max(0, rows[-1] + 1 - len(self.order)))
        return rows % len(self.order), pad

    def _load(self, pool, fd, b):
        rows, pad = self._rows(b)
        r = self.records
        size = os.path.getsize(r.rec)
        items = self.order[rows]

        data = np.empty((len(rows), self.channels, self.height, self.width), np.float32)
        labels = np.empty(len(rows), np.float32)
        flips = self.mirror[rows]

        def one(row):  # decoded, flipped and normalised in the worker (numpy frees the GIL)
            key = int(r.image_keys[items[row]])
            label, payload = read_record(fd, r.offsets[key], size, r.rec, key)
            if not 0 <= label[0] < r.identities:
                raise FBNetError("%s: image record %d has class %g, outside the header's %d "
                                 "identities; re-pack the data" % (r.rec, key, label[0],
                                                                   r.identities))
            try:
                img = decode_image(payload, self.height, self.width).transpose(2, 0, 1)
            except FBNetError:
                raise FBNetError("%s: record %d is not a decodable image; re-pack the data"
                                 % (r.rec, key)) from None
            if flips[row]:
                img = img[:, :, ::-1]
            np.subtract(img, PIXEL_MEAN, out=data[row], dtype=np.float32)
            data[row] *= 1.0 / PIXEL_SCALE
            labels[row] = label[0]

        list(pool.map(one, range(len(rows))))
        return data, labels, pad

    def __iter__(self):
        import mxnet as mx

        fd = os.open(self.records.rec, os.O_RDONLY)
        try:
            with ThreadPoolExecutor(self.threads) as pool, ThreadPoolExecutor(1) as ahead:
                pending = ahead.submit(self._load, pool, fd, 0) if len(self) else None
                for b in range(len(self)):
                    data, label, pad = pending.result()
                    if b + 1 < len(self):
                        pending = ahead.submit(self._load, pool, fd, b + 1)
                    yield mx.io.DataBatch([mx.nd.array(data)], [mx.nd.array(label)], pad=pad,
                                          provide_data=self.provide_data,
                                          provide_label=self.provide_label)
        finally:
            os.close(fd)
