"""Validating RecordIO files in Python, before MXNet's C++ reader sees them.

A truncated or corrupt ``.rec`` makes that reader abort the whole process (exit 134) or
segfault (docs/mxnet-notes.md), so :func:`check_recordio` reads every record header of a
``.rec``/``.idx`` pair (and decodes a sample of images) and turns any fault into a
one-line :class:`~fbnet_symbol.errors.FBNetError` naming the file, the record and the fix.
"""
import os
import struct
from dataclasses import dataclass, replace

import numpy as np

from ..errors import FBNetError

RECORD_MAGIC = 0xCED7230A
LENGTH_MASK = (1 << 29) - 1


THETA_EVERY = 5  # one image in five of each class goes to the theta split (80/20)


def theta_images(labels, keys):
    """The theta split of a file read in place (``--data-dir``): the 2nd, 7th, 12th...
    image of each class, by key (a class with one image keeps it for the weights). By
    image, not by class: the weights and theta share one classifier, so theta's
    cross-entropy needs images of classes the weights learn. Returns a boolean mask."""
    order = np.lexsort((keys, labels))  # by class, then key
    classes = labels[order]
    starts = np.r_[0, np.flatnonzero(np.diff(classes)) + 1]
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    return rank % THETA_EVERY == 1


@dataclass
class RecordInfo:
    """A checked flat file (every record an image), or a split of it read in place."""
    rec: str
    idx: str
    num_records: int
    labels: np.ndarray
    offsets: np.ndarray = None  # byte offset of each image, in file order
    indexing: str = "flat"  # how records are keyed: flat, or identity-indexed
    keys: np.ndarray = None     # record numbers of these images (None: 0, 1, 2, ...)
    classes: int = None         # classes of the whole file (a split may miss some)
    image_size: tuple = None    # (H, W) of the decoded sample, if its images all agree

    @property
    def num_classes(self):
        if self.classes is not None:
            return self.classes
        return int(self.labels.max()) + 1 if len(self.labels) else 0

    def image_records(self):
        """(keys, byte offsets) of the images, for the reader."""
        keys = np.arange(self.num_records) if self.keys is None else self.keys
        return keys, self.offsets

    def split(self):
        """(weight split, theta split) by image inside each class (:func:`theta_images`)."""
        keys = self.image_records()[0]
        theta = theta_images(self.labels, keys)
        return tuple(replace(self, num_records=int(m.sum()), labels=self.labels[m],
                             offsets=self.offsets[m], keys=keys[m], classes=self.num_classes)
                     for m in (~theta, theta))


def decode_bgr(payload):
    """Encoded image bytes -> BGR uint8 HxWx3, or None where they do not decode."""
    import cv2
    if not len(payload):
        return None
    return cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR)


def idx_path(rec):
    return os.path.splitext(rec)[0] + ".idx"


def _parse_record(fd, offset, size, rec, where, with_payload):
    """``(labels, payload length, header size, payload or None)`` of the record at
    ``offset`` of the open file ``fd`` (``pread``: thread-safe); ``where`` names the record
    in errors, each a line naming the fix. The one parser of a record's header."""
    head = os.pread(fd, 8, offset) if offset + 8 <= size else b""
    if len(head) < 8:
        raise FBNetError("%s is truncated: %s points past the end of the file (%d bytes); "
                         "re-pack the data, or if the .idx belongs to another file rebuild it "
                         "(python -m fbnet_symbol.data index %s)" % (rec, where, size, rec))
    magic, lrec = struct.unpack("<II", head)
    if magic != RECORD_MAGIC:
        raise FBNetError("%s is corrupt: no record starts at %s (the .idx may belong to "
                         "another file); re-pack the data or rebuild the index with "
                         "python -m fbnet_symbol.data index %s" % (rec, where, rec))
    length = lrec & LENGTH_MASK
    if lrec >> 29 != 0:
        raise FBNetError("%s has a multi-part record at %s, which is not supported; re-pack "
                         "the data with python -m fbnet_symbol.data pack" % (rec, where))
    if offset + 8 + length > size:
        raise FBNetError("%s is truncated: %s needs %d bytes but the file ends at %d; re-pack "
                         "the data" % (rec, where, length, size))
    if length < 24:
        raise FBNetError("%s is corrupt: %s is too short for an image header; re-pack the "
                         "data" % (rec, where))
    body = os.pread(fd, length if with_payload else 24, offset + 8)
    flag, label, _, _ = struct.unpack("<IfQQ", body[:24])
    header = 24 + 4 * flag
    if length < header:
        raise FBNetError("%s is corrupt: %s has a bad label header; re-pack the data"
                         % (rec, where))
    if flag == 0:
        labels = np.array([label], dtype=np.float32)
    else:  # a label array follows the fixed header; the first entry is the class
        raw = body[24:header] if with_payload else os.pread(fd, 4 * flag, offset + 32)
        labels = np.frombuffer(raw, dtype=np.float32)
    return labels, length, header, body[header:] if with_payload else None


def read_header(f, offset, size, rec):
    """(label, payload length, header size) of the record at ``offset`` of the open file
    ``f``, its payload not read."""
    labels, length, header, _ = _parse_record(f.fileno(), offset, size, rec,
                                              "the record at byte %d" % offset, False)
    return float(labels[0]), length, header


def read_index_entries(idx, rec):
    """``[(key, offset)]`` of an ``.idx`` in file order; one-line errors naming the fix."""
    if not os.path.isfile(idx):
        raise FBNetError("no index %s beside %s; build it with: python -m fbnet_symbol.data "
                         "index %s" % (idx, rec, rec))
    entries = []
    with open(idx) as f:
        for n, line in enumerate(f, start=1):
            parts = line.split()
            if not parts:
                continue
            try:
                entries.append((int(parts[0]), int(parts[1])))
            except (IndexError, ValueError):
                raise FBNetError("%s line %d is not 'key<TAB>offset'; rebuild it with: "
                                 "python -m fbnet_symbol.data index %s" % (idx, n, rec)) from None
    return entries


def read_index(idx, rec):
    """The offsets of an ``.idx``, in file order."""
    return [offset for _, offset in read_index_entries(idx, rec)]


def check_recordio(rec, idx=None, decode_samples=16, what="data", offsets=None):
    """Validate a ``.rec``/``.idx`` pair and return its labels. Raises :class:`FBNetError`.
    ``offsets``: the index's offsets in file order, if already read."""
    if not rec or not os.path.isfile(rec):
        raise FBNetError("%s file %s does not exist; give an existing .rec (pack an image "
                         "folder with python -m fbnet_symbol.data pack DIR OUT)" % (what, rec))
    idx = idx or idx_path(rec)
    offsets = read_index(idx, rec) if offsets is None else offsets
    if not offsets:
        raise FBNetError("%s %s has no records; pack some images into it" % (what, rec))
    size = os.path.getsize(rec)
    labels = np.empty(len(offsets), dtype=np.float64)
    sample = set(np.linspace(0, len(offsets) - 1, min(decode_samples, len(offsets))).astype(int))
    sizes = set()
    with open(rec, "rb") as f:
        for i, off in enumerate(offsets):
            if off < 0 or off >= size:
                raise FBNetError("%s points past the end of %s (offset %d of %d bytes); the two "
                                 "files do not match: rebuild the index" % (idx, rec, off, size))
            label, length, header = read_header(f, off, size, rec)
            labels[i] = label
            if i in sample:
                f.seek(off + 8 + header)
                img = decode_bgr(f.read(length - header))
                if img is None:
                    raise FBNetError("%s: record %d (byte %d) is not a decodable image; "
                                     "re-pack the data" % (rec, i, off))
                sizes.add(img.shape[:2])
    if not np.all(np.isfinite(labels)) or (labels < 0).any() or \
            not np.all(labels == np.round(labels)):
        raise FBNetError("%s has labels that are not non-negative integers; labels must be "
                         "class indices 0..C-1" % rec)
    return RecordInfo(rec, idx, len(offsets), labels.astype(np.int64),
                      np.asarray(offsets, np.int64),
                      image_size=sizes.pop() if len(sizes) == 1 else None)


def read_record(fd, offset, size, rec, key):
    """(label array, payload bytes) of record ``key`` at ``offset``; thread-safe."""
    labels, _, _, payload = _parse_record(fd, offset, size, rec,
                                          "record %d (byte %d)" % (key, offset), True)
    return labels, payload
