"""Making InsightFace's files: the identity-indexed ``.rec``/``.idx`` + ``property``
(``pack-faces``), ``.bin`` verification pair sets (``make-pairs``), and synthetic faces
for tests and the offline demo. The layout itself is described (and read) in
:mod:`fbnet_symbol.data.insightface`.
"""
import logging
import os

import numpy as np

from ..data.files import write_images
from ..data.insightface import PROPERTY
from ..data.recordio import decode_bgr
from ..errors import FBNetError
from ..fileio import atomic_write, class_folders, image_files

logger = logging.getLogger(__name__)


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


def _encoded(path, size=None, quality=95):
    """A file's image bytes (re-encoded as JPEG when resized), or None if it does not decode."""
    import cv2

    with open(path, "rb") as f:
        payload = f.read()
    img = decode_bgr(payload)
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
    names = class_folders(folder, "identity")
    shape = []

    def identities():
        for name in names:
            images = []
            for path in image_files(os.path.join(folder, name)):
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
    names = class_folders(folder, "identity")
    files = {n: image_files(os.path.join(folder, n)) for n in names}
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

def synthetic_faces(num_identities, per_identity, size=32, seed=0, variation=1.0):
    """Face-like images for tests and the offline demo: per identity a parametric face
    (skin and hair tone, face shape, eye spacing and size, nose, mouth width), per image
    a jitter of position, scale, rotation, light and sensor noise, each ``variation``
    times the demo's (a harder task above 1). Lists of BGR uint8."""
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
            c = np.array([s / 2, s / 2]) + rng.normal(0, 0.03 * s * variation, 2)

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
            v = variation
            angle, scale = rng.normal(0, 6 * v), 1 + rng.uniform(-0.08, 0.08) * v
            m = cv2.getRotationMatrix2D((s / 2, s / 2), angle, scale)
            img = cv2.warpAffine(img, m, (s, s), borderMode=cv2.BORDER_REFLECT)
            img = img * (1 + rng.uniform(-0.25, 0.25) * v) + rng.uniform(-20, 20) * v
            img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
            img += rng.normal(0, 6 * v, img.shape)
            images.append(np.clip(img, 0, 255).astype(np.uint8))
        out.append(images)
    return out


def write_synthetic_faces(out, identities=200, per_identity=10, size=32, pairs=600, seed=0,
                          variation=1.0):
    """The offline face demo: ``out/train.rec`` (identity-indexed) + ``property``, the same
    images flat in ``out/flat/train.rec``, and ``out/pairs.bin`` of identities not in
    train. Returns the paths."""
    import pickle

    import cv2

    faces = synthetic_faces(identities, per_identity, size, seed, variation)
    write_face_records(os.path.join(out, "train"), faces)
    write_images(os.path.join(out, "flat", "train"), [i for f in faces for i in f],
                 [c for c, f in enumerate(faces) for _ in f], fmt=".jpg")
    # pair identities are new people (another seed), as LFW's are to MS1M
    unseen = synthetic_faces(max(2, pairs // 10), 4, size, seed + 7919, variation)
    rng = np.random.RandomState(seed)
    encoded = [[cv2.imencode(".jpg", img)[1].tobytes() for img in f] for f in unseen]
    bins, issame = [], []
    for i in range(pairs):
        if i % 2 == 0:
            f = encoded[rng.randint(len(encoded))]
            a, b = rng.choice(len(f), 2, replace=False)
            bins += [f[a], f[b]]
        else:
            x, y = rng.choice(len(encoded), 2, replace=False)
            bins += [encoded[x][rng.randint(4)], encoded[y][rng.randint(4)]]
        issame.append(i % 2 == 0)
    atomic_write(os.path.join(out, "pairs.bin"), pickle.dumps((bins, issame)), mode="wb")
    return {"train": os.path.join(out, "train.rec"), "flat": os.path.join(out, "flat",
                                                                          "train.rec"),
            "pairs": os.path.join(out, "pairs.bin")}


def cached_synthetic_faces(cache_dir=None, identities=200, per_identity=10, size=32,
                           pairs=600, seed=0, variation=1.0):
    """:func:`write_synthetic_faces` made once into the cache (``faces-SIZE-KEY``, a key of
    its parameters; written in a temporary folder renamed into place): the folder, which
    ``--data-dir`` takes."""
    import hashlib
    import json

    from ..fileio import cached_folder, default_cache_dir
    params = [identities, per_identity, size, pairs, seed, variation]
    key = hashlib.sha256(json.dumps(params).encode()).hexdigest()[:8]
    folder = os.path.join(cache_dir or default_cache_dir(), "faces-%d-%s" % (size, key))

    def build(tmp):
        write_synthetic_faces(tmp, identities, per_identity, size, pairs, seed, variation)
        return params

    cached_folder(folder, build, ".faces-")
    return folder
