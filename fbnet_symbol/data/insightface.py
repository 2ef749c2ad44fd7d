"""InsightFace's identity-indexed RecordIO files: detect, check, split and read it.

The training sets face-recognition users download (faces_emore / MS1M-ArcFace, CASIA,
anything made with InsightFace's ``face2rec2.py`` or ``rec_builder.py``) are one
``train.rec``/``train.idx`` whose *keys* (not file order) carry the structure:

* key 0: a header, empty payload, label ``[first_identity_key, end_identity_key]``;
* keys ``1 .. first_identity_key - 1``: the images, label a class or ``[class, aligned]``;
* keys ``first_identity_key .. end_identity_key - 1``: one record per identity, empty
  payload, label ``[start, end)``: the image keys of that identity.

A ``property`` file beside it reads ``num_classes,H,W`` on its first line. Both this
indexing and the *flat* one (every record an image) are read by the package's one reader,
:class:`~fbnet_symbol.data.reader.RecordReader`; :meth:`FaceRecords.image_records` tells it
which records are this split's images.

Theta split: by image, inside each identity (the 2nd, 7th, 12th... image of each identity
goes to theta; an identity with one image keeps it for the weights). The weights and theta
share one classifier over identities, so theta's cross-entropy needs images of identities
the weights learn; a split by identity would score theta on classes whose classifier rows
were never trained. The split is a
list of keys: the 5.8 M-image file is read in place, never rewritten. Writing these
files: :mod:`fbnet_symbol.faces.files`.
"""
import logging
import os
from dataclasses import dataclass, replace

import numpy as np

from ..errors import FBNetError
from .recordio import decode_bgr, idx_path, read_index_entries, read_record, theta_images

logger = logging.getLogger(__name__)

PROPERTY = "property"
LABEL_SAMPLES = 1024  # image records whose class id a check reads (16 of them it decodes)


# ---------------------------------------------------------------- reading records

def read_keyed_index(idx, rec):
    """``{key: offset}`` of an ``.idx`` (InsightFace's files are not in key order)."""
    return dict(read_index_entries(idx, rec))


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


def first_image_size(rec):
    """(H, W) of the image record with the lowest key in ``rec`` (either indexing), or None."""
    index = read_keyed_index(idx_path(rec), rec)
    size = os.path.getsize(rec)
    fd = os.open(rec, os.O_RDONLY)
    try:
        for key in sorted(index)[:64]:  # past the header (and a few damaged records)
            try:
                _, payload = read_record(fd, index[key], size, rec, key)
            except FBNetError:
                continue
            img = decode_bgr(payload)
            if img is not None:
                return img.shape[:2]
    finally:
        os.close(fd)
    return None


def data_folder(folder, verify=()):
    """InsightFace's data folder: ``(train.rec, [pair sets])`` — ``verify`` names looked up
    in ``folder`` (a path that exists is kept), or every ``*.bin`` in it when none is named."""
    import glob

    train = os.path.join(folder, "train.rec")
    if not os.path.isfile(train):
        raise FBNetError("--data-dir %s has no train.rec; give InsightFace's data folder "
                         "(train.rec, train.idx, property, *.bin) or pack one with python "
                         "-m fbnet_symbol.data pack-faces" % folder)
    pairs = [v if os.path.isfile(v) else os.path.join(folder, v) for v in verify] \
        or sorted(glob.glob(os.path.join(glob.escape(folder), "*.bin")))
    return train, pairs


def folder_image_shape(folder):
    """(3, H, W): the size the folder's faces were cut at, from its property file; without
    one, the size of its images (InsightFace's are all cut at one size); None if unknown."""
    found = read_property(folder)
    if found:
        return (3, found[1], found[2])
    size = first_image_size(os.path.join(folder, "train.rec"))
    if size:
        logging.getLogger(__name__).warning(
            "--data-dir %s has no property file: training at its images' size %dx%d (give "
            "--image-shape to change it)", folder, size[0], size[1])
        return (3,) + tuple(size)
    return None


def is_identity_indexed(rec, index=None):
    """True when key 0 of ``rec`` is InsightFace's header (two labels, no image).
    ``index``: its ``{key: offset}`` if already read. A damaged record 0 answers False:
    the flat file's own check then names the fault."""
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
    identities: int            # identity records (from the header)
    classes: int = None        # the classifier's size: property's count (may exceed the
                               # identities when class ids are sparse), else the identities
    class_ids: tuple = None    # (lowest, highest) label[0] of the sampled image records
    image_size: tuple = None   # (H, W) of the sampled images, if they all agree
    property_file: tuple = None  # (num_classes, H, W) of the property file, if any
    indexing: str = "identity-indexed"

    @property
    def num_records(self):
        return len(self.image_keys)

    @property
    def num_classes(self):
        return self.classes or self.identities

    def image_records(self):
        """(keys, byte offsets) of this split's images, for the reader (looked up once:
        a reader is made for every epoch and phase)."""
        if getattr(self, "_image_offsets", None) is None:
            self._image_offsets = np.array([self.offsets[int(k)] for k in self.image_keys],
                                           np.int64)
        return self.image_keys, self._image_offsets

    def subset(self, mask):
        return replace(self, image_keys=self.image_keys[mask], labels=self.labels[mask])

    def split(self):
        """(weight split, theta split): by image inside each identity (module docstring)."""
        theta = theta_images(self.labels, self.image_keys)
        return self.subset(~theta), self.subset(theta)


def check_face_records(rec, index=None, decode_samples=16, what="data"):
    """Read and validate an identity-indexed file's structure; one-line errors.
    ``index``: its ``{key: offset}`` if already read."""
    idx = idx_path(rec)
    if not os.path.isfile(rec):
        raise FBNetError("%s file %s does not exist" % (what, rec))
    index = read_keyed_index(idx, rec) if index is None else index
    records = _Records(rec, idx, index)
    try:
        first, end, keys, labels = _identities(records)
        sizes, class_ids = _probe_images(records, keys, decode_samples)
    finally:
        os.close(records.fd)
    image_size = sizes.pop() if len(sizes) == 1 else None
    lowest, highest = float(min(class_ids)), float(max(class_ids))
    classes, found = _classes(rec, end - first, image_size, lowest, highest)
    return FaceRecords(rec, idx, index, keys, labels, end - first, classes,
                       (int(lowest), int(highest)), image_size, found)


class _Records:
    """An open ``.rec`` and its index: ``read(key)`` -> (label, payload)."""

    def __init__(self, rec, idx, index):
        self.rec, self.idx, self.index = rec, idx, index
        self.size = os.path.getsize(rec)
        self.fd = os.open(rec, os.O_RDONLY)

    def read(self, key):
        return read_record(self.fd, self.index[key], self.size, self.rec, key)


def _identities(records):
    """The header's identity range and every image key with its identity, checked."""
    rec, idx, index = records.rec, records.idx, records.index
    header, _ = records.read(0)
    first, end = int(header[0]), int(header[1])
    if not 1 < first < end:
        raise FBNetError("%s: the header (record 0) reads identities [%d, %d), not a range "
                         "after the images; the file is not InsightFace's indexing or is "
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
        span, payload = records.read(key)
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
    return first, end, keys, labels


def _probe_images(records, keys, decode_samples):
    """Decode a few images (their sizes) and read the class of more (``label[0]``, as the
    reader takes it): what training would otherwise stop on, caught now."""
    sizes, class_ids = set(), []
    probe = spread(keys, max(decode_samples, LABEL_SAMPLES))
    decode = set(spread(np.arange(len(probe)), decode_samples))
    for n, key in enumerate(probe):
        label, payload = records.read(int(key))
        class_ids.append(label[0])
        if n not in decode:
            continue
        img = decode_bgr(payload)
        if img is None:
            raise FBNetError("%s: record %d is not a decodable image; re-pack the data"
                             % (records.rec, key))
        sizes.add(img.shape[:2])
    return sizes, class_ids


def _classes(rec, identities, image_size, lowest, highest):
    """The class count (the ``property`` file's where there is one, checked against the
    header and the images) and the property read (or None)."""
    prop_path = os.path.join(os.path.dirname(rec) or ".", PROPERTY)
    found = read_property(os.path.dirname(os.path.abspath(rec)))
    classes = identities
    if found:
        if found[0] < classes:
            raise FBNetError("%s says %d classes but %s's header has %d identities; write at "
                             "least %d (the highest class id + 1 where ids are sparse) on its "
                             "first line" % (prop_path, found[0], rec, classes, classes))
        classes = found[0]
        if image_size and tuple(found[1:]) != image_size:
            raise FBNetError("%s says the images are %dx%d but %s's are %dx%d; fix its first "
                             "line (%d,%d,%d)" % (prop_path, found[1], found[2], rec,
                                                  image_size[0], image_size[1], found[0],
                                                  image_size[0], image_size[1]))
    if lowest < 0 or highest != int(highest) or highest >= classes:
        bad = lowest if lowest < 0 or lowest != int(lowest) else highest
        fix = ("write %d (the highest class id + 1) as its class count" % (int(highest) + 1)
               if found else "add a property file beside it reading %d,H,W (the highest "
               "class id + 1, the image size)" % (int(highest) + 1)) \
            if highest == int(highest) and lowest >= 0 else "re-pack the data"
        raise FBNetError("%s: an image record has class %g, outside the %d classes %s; %s"
                         % (rec, bad, classes, "%s gives" % prop_path if found else
                            "of its header's identities", fix))
    return classes, found


def spread(keys, count):
    """Up to ``count`` of ``keys``, evenly spread (first and last included)."""
    return keys[np.linspace(0, len(keys) - 1, min(count, len(keys))).astype(int)]
