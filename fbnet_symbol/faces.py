"""InsightFace's identity-indexed RecordIO layout: detect, check, split, read and write it.

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
list of keys: the 5.8 M-image file is read in place, never rewritten.
"""
import logging
import os
import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .errors import FBNetError
from .fileio import atomic_write
from .recordio import IMAGE_EXTENSIONS, LENGTH_MASK, PIXEL_MEAN, PIXEL_SCALE, RECORD_MAGIC, idx_path

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


def is_identity_indexed(rec, idx=None):
    """True when key 0 of ``rec`` is InsightFace's header (two labels, no image)."""
    idx = idx or idx_path(rec)
    index = read_keyed_index(idx, rec)
    if 0 not in index:
        return False
    with open(rec, "rb") as f:
        labels, payload = read_record(f.fileno(), index[0], os.path.getsize(rec), rec, 0)
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


def check_face_records(rec, idx=None, decode_samples=16, what="data"):
    """Read and validate an identity-indexed file's structure; one-line errors."""
    import cv2

    idx = idx or idx_path(rec)
    if not os.path.isfile(rec):
        raise FBNetError("%s file %s does not exist" % (what, rec))
    index = read_keyed_index(idx, rec)
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
        raise FBNetError("an image record does not decode; re-pack the data")
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
    are decoded by ``threads`` threads (OpenCV releases the GIL) one batch ahead.
    """

    def __init__(self, records, image_shape, batch_size, shuffle=True, seed=0, num_parts=1,
                 part_index=0, rand_mirror=False, threads=2):
        self.records, self.batch_size = records, batch_size
        self.channels, self.height, self.width = image_shape
        keys = np.array_split(np.arange(records.num_records), num_parts)[part_index]
        rng = np.random.RandomState(seed)
        self.order = rng.permutation(keys) if shuffle else keys
        self.mirror = (rng.rand(len(self.order)) < 0.5) if rand_mirror else \
            np.zeros(len(self.order), bool)
        self.threads = threads
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
            img = decode_image(payload, self.height, self.width).transpose(2, 0, 1)
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


# ---------------------------------------------------------------- writing

def write_face_records(prefix, identities, quality=95, header_last=True, aligned_labels=True,
                       image_size=None, progress=False):
    """Write InsightFace's layout and its ``property`` file. ``identities``: one list per
    class of BGR uint8 images (JPEG-encoded here) or already encoded image bytes; an
    iterable is streamed. Keys as the module docstring; the header record goes last in the
    file (as ``rec_builder.py`` writes it) unless ``header_last`` is False. Written to
    temporary names, renamed at the end: nothing is left half-written."""
    import mxnet as mx
    from tqdm import tqdm

    os.makedirs(os.path.dirname(os.path.abspath(prefix)) or ".", exist_ok=True)
    tmp_rec, tmp_idx = prefix + ".rec.tmp", prefix + ".idx.tmp"
    w = mx.recordio.MXIndexedRecordIO(tmp_idx, tmp_rec, "w")
    try:
        if not header_last:  # the header's key range must be known before the images
            identities = list(identities)
            _write_header(w, sum(len(i) for i in identities) + 1, len(identities))
        key, spans = 1, []
        for label, images in enumerate(tqdm(identities, desc="packing", unit="identity",
                                            disable=not progress)):
            start = key
            for img in images:
                lab = [float(label), 1.0] if aligned_labels else float(label)
                header = mx.recordio.IRHeader(0, lab, key, 0)
                if isinstance(img, np.ndarray):
                    image_size = image_size or img.shape[:2]
                    record = mx.recordio.pack_img(header, img, quality=quality, img_fmt=".jpg")
                else:
                    record = mx.recordio.pack(header, bytes(img))
                w.write_idx(key, record)
                key += 1
            spans.append((start, key))
        first = key
        for identity, (start, stop) in enumerate(spans):
            w.write_idx(first + identity, mx.recordio.pack(
                mx.recordio.IRHeader(0, [start, stop], first + identity, 0), b""))
        if header_last:
            _write_header(w, first, len(spans))
        w.close()
    except BaseException:
        w.close()
        for tmp in (tmp_rec, tmp_idx):
            if os.path.exists(tmp):
                os.remove(tmp)
        raise
    os.replace(tmp_rec, prefix + ".rec")
    os.replace(tmp_idx, prefix + ".idx")
    if image_size:
        atomic_write(os.path.join(os.path.dirname(os.path.abspath(prefix)), PROPERTY),
                     "%d,%d,%d\n" % (len(spans), image_size[0], image_size[1]))
    return first - 1, len(spans)


def _write_header(writer, first, count):
    import mxnet as mx
    writer.write_idx(0, mx.recordio.pack(mx.recordio.IRHeader(0, [first, first + count], 0, 0),
                                         b""))


def _identity_folders(folder):
    if not os.path.isdir(folder):
        raise FBNetError("image folder %s does not exist" % folder)
    names = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))
    if len(names) < 2:
        raise FBNetError("%s needs one sub-folder per identity (at least two); found %d"
                         % (folder, len(names)))
    return names


def _image_files(folder):
    return [os.path.join(folder, f) for f in sorted(os.listdir(folder))
            if f.lower().endswith(IMAGE_EXTENSIONS)]


def _encoded(path, size=None, quality=95):
    """A file's image bytes (re-encoded as JPEG when resized), or None if it does not decode."""
    import cv2

    with open(path, "rb") as f:
        payload = f.read()
    img = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        return None, None
    if size and img.shape[:2] != tuple(size):
        img = cv2.resize(img, (size[1], size[0]), interpolation=cv2.INTER_AREA)
        payload = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()
    return payload, img.shape[:2]


def pack_faces(folder, prefix, size=None):
    """``folder/<identity>/*.jpg`` -> InsightFace's layout at ``prefix.rec``/``.idx`` +
    ``property`` (identities sorted by name; ``size`` (H, W) resizes). Unreadable images
    are skipped with a warning; identities left without images are dropped."""
    names = _identity_folders(folder)
    shape = []

    def identities():
        for name in names:
            images = []
            for path in _image_files(os.path.join(folder, name)):
                payload, hw = _encoded(path, size)
                if payload is None:
                    logger.warning("skipping unreadable image %s", path)
                    continue
                shape.append(hw)
                images.append(payload)
            if images:
                yield images

    count, classes = write_face_records(prefix, identities(), progress=True,
                                        image_size=size or None)
    if not size and shape:
        write_property(prefix, classes, shape[0])
    if len(set(shape)) > 1:
        logger.warning("images of several sizes (%s ...): the reader resizes each to the "
                       "network input; --size H,W packs them at one", sorted(set(shape))[:3])
    return count, classes


def write_property(prefix, classes, image_size):
    atomic_write(os.path.join(os.path.dirname(os.path.abspath(prefix)), PROPERTY),
                 "%d,%d,%d\n" % (classes, image_size[0], image_size[1]))


# ---------------------------------------------------------------- pair sets (.bin)

def write_pair_set(path, pairs):
    """``pairs``: (image path a, image path b, same) -> InsightFace's ``.bin``."""
    import pickle

    bins, issame = [], []
    for a, b, same in pairs:
        for p in (a, b):
            payload, _ = _encoded(p)
            if payload is None:
                raise FBNetError("%s does not decode as an image; fix the pairs list" % p)
            bins.append(payload)
        issame.append(bool(same))
    if not issame:
        raise FBNetError("no pairs to write to %s" % path)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        pickle.dump((bins, issame), f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)
    return len(issame)


def pairs_from_lfw_list(pairs_txt, images):
    """LFW's ``pairs.txt``: an optional 'sets count' line, then ``name i j`` (same person)
    or ``name1 i name2 j`` (different); images at ``images/name/name_%04d.jpg``."""
    def image(name, n):
        return os.path.join(images, name, "%s_%04d.jpg" % (name, int(n)))

    pairs = []
    with open(pairs_txt) as f:
        for n, line in enumerate(f, start=1):
            parts = line.split()
            if len(parts) == 3:
                pairs.append((image(parts[0], parts[1]), image(parts[0], parts[2]), True))
            elif len(parts) == 4:
                pairs.append((image(parts[0], parts[1]), image(parts[2], parts[3]), False))
            elif len(parts) not in (0, 2) or n > 1:
                raise FBNetError("%s line %d is not 'name i j' or 'name1 i name2 j' (LFW's "
                                 "pairs.txt)" % (pairs_txt, n))
    missing = [p for pair in pairs for p in pair[:2] if not os.path.isfile(p)]
    if missing:
        raise FBNetError("%s names %s, which does not exist (%d missing); give the folder of "
                         "LFW's images with --images" % (pairs_txt, missing[0], len(missing)))
    return pairs


def draw_pairs(folder, num_pairs, seed=0):
    """``num_pairs`` pairs from ``folder/<identity>/``: half same identity, half different,
    alternating, drawn with ``seed``."""
    rng = np.random.RandomState(seed)
    names = _identity_folders(folder)
    files = {n: _image_files(os.path.join(folder, n)) for n in names}
    names = [n for n in names if files[n]]
    several = [n for n in names if len(files[n]) >= 2]
    if not several:
        raise FBNetError("%s has no identity with two images; same-identity pairs need them"
                         % folder)
    pairs = []
    for i in range(num_pairs):
        if i % 2 == 0:
            name = several[rng.randint(len(several))]
            a, b = rng.choice(len(files[name]), 2, replace=False)
            pairs.append((files[name][a], files[name][b], True))
        else:
            x, y = rng.choice(len(names), 2, replace=False)
            pairs.append((files[names[x]][rng.randint(len(files[names[x]]))],
                          files[names[y]][rng.randint(len(files[names[y]]))], False))
    return pairs


# ---------------------------------------------------------------- a synthetic face set

def synthetic_faces(num_identities, per_identity, size=32, seed=0):
    """Face-like images for tests and the offline demo: per identity a parametric face
    (skin and hair tone, face shape, eye spacing and size, nose, mouth width), per image
    a jitter of position, scale, rotation, light and sensor noise. Lists of BGR uint8."""
    import cv2

    rng = np.random.RandomState(seed)
    out = []
    for _ in range(num_identities):
        p = dict(skin=rng.uniform(90, 230, 3), hair=rng.uniform(10, 120, 3),
                 face=rng.uniform(0.30, 0.42, 2), eye_dx=rng.uniform(0.12, 0.2),
                 eye_y=rng.uniform(-0.12, 0.0), eye_r=rng.uniform(0.03, 0.06),
                 nose=rng.uniform(0.04, 0.12), mouth=rng.uniform(0.08, 0.2),
                 mouth_y=rng.uniform(0.16, 0.26), brow=rng.uniform(-0.15, 0.15))
        images = []
        for _ in range(per_identity):
            s = 4 * size  # draw large, then shrink (anti-aliased)
            img = np.full((s, s, 3), rng.uniform(40, 200, 3), np.float32)
            c = np.array([s / 2, s / 2]) + rng.normal(0, 0.03 * s, 2)

            def pt(x, y):
                return int(c[0] + x * s), int(c[1] + y * s)

            cv2.ellipse(img, pt(0, -0.1), (int(p["face"][0] * s * 1.05),
                                           int(p["face"][1] * s * 0.8)), 0, 180, 360,
                        p["hair"].tolist(), -1)
            cv2.ellipse(img, pt(0, 0.02), (int(p["face"][0] * s), int(p["face"][1] * s)), 0,
                        0, 360, p["skin"].tolist(), -1)
            for side in (-1, 1):
                eye = pt(side * p["eye_dx"], p["eye_y"])
                cv2.circle(img, eye, max(1, int(p["eye_r"] * s)), (30, 30, 30), -1)
                cv2.line(img, pt(side * p["eye_dx"] - 0.06, p["eye_y"] - 0.08),
                         pt(side * p["eye_dx"] + 0.06, p["eye_y"] - 0.08 + side * p["brow"]
                            * 0.2), p["hair"].tolist(), max(1, s // 40))
            cv2.line(img, pt(0, p["eye_y"] + 0.05), pt(0.02, p["eye_y"] + 0.05 + p["nose"]),
                     (p["skin"] * 0.7).tolist(), max(1, s // 40))
            cv2.ellipse(img, pt(0, p["mouth_y"]), (int(p["mouth"] * s), max(1, s // 40)), 0,
                        0, 360, (60, 60, 160), -1)
            angle, scale = rng.normal(0, 6), rng.uniform(0.92, 1.08)
            m = cv2.getRotationMatrix2D((s / 2, s / 2), angle, scale)
            img = cv2.warpAffine(img, m, (s, s), borderMode=cv2.BORDER_REFLECT)
            img = img * rng.uniform(0.75, 1.25) + rng.uniform(-20, 20)
            img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
            img += rng.normal(0, 6, img.shape)
            images.append(np.clip(img, 0, 255).astype(np.uint8))
        out.append(images)
    return out
