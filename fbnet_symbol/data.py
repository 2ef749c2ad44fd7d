"""Image data in RecordIO: the iterator, the packing tools, and the embedded digits.

``.rec`` + ``.idx`` is the format of MXNet's im2rec and InsightFace. Files are checked in
Python by :mod:`fbnet_symbol.recordio` (and the faces' layout by :mod:`fbnet_symbol.faces`)
before any batch is read.

* :func:`data_iter`: the batches of a checked file, read by
  :class:`~fbnet_symbol.reader.RecordReader` (both layouts).
* Tools (``python -m fbnet_symbol.data ...``): ``pack`` an image folder (one sub-folder
  per class) into ``.rec``/``.idx``; ``split`` one file 80/20 into a weight split and a
  theta split, deterministically; ``index`` rebuild a missing ``.idx``; ``digits`` build
  the embedded default data set.
* :func:`embedded_digits`: scikit-learn's bundled 8x8 handwritten digits (1,797 images,
  10 classes; no download), upscaled and packed once into a cache folder.
"""
import json
import logging
import os
import shutil
import struct
import sys
import tempfile

import numpy as np

from .errors import FBNetError
from .fileio import (IMAGE_EXTENSIONS, atomic_write, class_folders, default_cache_dir,
                     image_files, umask)
from .recordio import PIXEL_MEAN, PIXEL_SCALE, check_recordio, idx_path, read_header, read_index

logger = logging.getLogger(__name__)



def data_iter(info, image_shape, batch_size, shuffle=True, seed=0, num_parts=1, part_index=0,
              rand_mirror=False):
    """The batches of a checked file of either layout (:func:`check_data`), read by the
    package's one reader (:class:`~fbnet_symbol.reader.RecordReader`)."""
    from .reader import RecordReader
    return RecordReader(info, image_shape, batch_size, shuffle, seed, num_parts, part_index,
                        rand_mirror)


def image_record_iter(rec, image_shape, batch_size, shuffle=False, seed=0, rand_mirror=False,
                      threads=1):
    """MXNet's ``ImageRecordIter`` set to the reader's conventions: the reference the reader
    is tested and benchmarked against, never used by the loops (one alive in the process
    slows MXNet's multi-threaded operators: :mod:`fbnet_symbol.reader`)."""
    import mxnet as mx

    c, h, w = image_shape
    return mx.io.ImageRecordIter(
        path_imgrec=rec, path_imgidx=idx_path(rec), data_shape=(c, h, w),
        batch_size=batch_size, shuffle=shuffle, seed=int(seed) % (2 ** 31),
        round_batch=True, resize=min(h, w), inter_method=2, rand_mirror=rand_mirror,
        mean_r=PIXEL_MEAN, mean_g=PIXEL_MEAN, mean_b=PIXEL_MEAN, std_r=PIXEL_SCALE,
        std_g=PIXEL_SCALE, std_b=PIXEL_SCALE, preprocess_threads=threads, prefetch_buffer=2,
        label_width=1, data_name="data", label_name="softmax_label", verbose=False)


# ---------------------------------------------------------------- writing

def _writer(prefix):
    import mxnet as mx
    os.makedirs(os.path.dirname(os.path.abspath(prefix)) or ".", exist_ok=True)
    return mx.recordio.MXIndexedRecordIO(prefix + ".idx", prefix + ".rec", "w")


def write_images(prefix, images, labels, fmt=".png", quality=95):
    """Pack BGR/gray uint8 images with integer labels into ``prefix.rec``/``prefix.idx``."""
    import mxnet as mx
    w = _writer(prefix)
    for i, (img, label) in enumerate(zip(images, labels)):
        header = mx.recordio.IRHeader(0, float(label), i, 0)
        w.write_idx(i, mx.recordio.pack_img(header, img, quality=quality, img_fmt=fmt))
    w.close()


def pack_folder(folder, prefix, resize=None, quality=95):
    """Pack ``folder/<class>/<image>`` into ``prefix.rec``/``.idx`` (classes sorted by name)."""
    import cv2
    import mxnet as mx
    from tqdm import tqdm

    classes = class_folders(folder)
    items = [(path, label) for label, name in enumerate(classes)
             for path in image_files(os.path.join(folder, name))]
    if not items:
        raise FBNetError("no images (%s) under %s" % (" ".join(IMAGE_EXTENSIONS), folder))
    w = _writer(prefix)
    skipped = 0
    for i, (path, label) in enumerate(tqdm(items, desc="packing", unit="img")):
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        if img is None:
            skipped += 1
            logger.warning("skipping unreadable image %s", path)
            continue
        if resize:
            s = float(resize) / min(img.shape[:2])
            img = cv2.resize(img, (max(1, round(img.shape[1] * s)), max(1, round(img.shape[0] * s))),
                             interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        header = mx.recordio.IRHeader(0, float(label), i, 0)
        w.write_idx(i, mx.recordio.pack_img(header, img, quality=quality, img_fmt=".jpg"))
    w.close()
    with open(prefix + ".classes.txt", "w") as f:
        f.write("".join("%d\t%s\n" % (i, c) for i, c in enumerate(classes)))
    return len(items) - skipped, classes


def _copy_records(src_rec, offsets, prefix):
    """Copy raw records (no re-encoding) into a new indexed file."""
    size = os.path.getsize(src_rec)
    w = _writer(prefix)
    with open(src_rec, "rb") as f:
        for i, off in enumerate(offsets):
            _, length, _ = read_header(f, off, size, src_rec)
            f.seek(off + 8)
            payload = f.read(length)
            flag, label, _, id2 = struct.unpack("<IfQQ", payload[:24])
            w.write_idx(i, struct.pack("<IfQQ", flag, label, i, id2) + payload[24:])
    w.close()


def split_records(rec, prefix_a, prefix_b, ratio=0.8, seed=0):
    """Split ``rec`` into two files (``ratio`` / ``1 - ratio``), per class, deterministically."""
    info = check_recordio(rec)
    if not 0 < ratio < 1:
        raise FBNetError("--ratio must be between 0 and 1, e.g. 0.8")
    offsets = np.array(read_index(info.idx, rec))
    rng = np.random.RandomState(seed)
    first, second = [], []
    for c in np.unique(info.labels):  # stratified: every class on both sides
        members = np.flatnonzero(info.labels == c)
        rng.shuffle(members)
        cut = int(round(len(members) * ratio))
        if len(members) > 1:
            cut = min(max(cut, 1), len(members) - 1)
        first.extend(members[:cut])
        second.extend(members[cut:])
    _copy_records(rec, offsets[sorted(first)], prefix_a)
    _copy_records(rec, offsets[sorted(second)], prefix_b)
    return len(first), len(second)


def build_index(rec):
    """Rebuild ``.idx`` by walking the records of ``rec`` (4-byte aligned).

    Keys are the ids in the record headers, as InsightFace's and im2rec's writers set them
    (an identity-indexed file's layout lives in its keys: the header is key 0, wherever it
    lies in the file). Where the ids repeat (a writer that left them 0), the file order —
    except that an InsightFace header (first or last record, two labels, no image, its
    range ending at the record count) keeps key 0 and the others count from 1.
    """
    size = os.path.getsize(rec)
    offsets, ids, headers, off = [], [], [], 0
    with open(rec, "rb") as f:
        while off < size:
            _, length, _ = read_header(f, off, size, rec)
            f.seek(off + 8)
            flag, _, rid, _ = struct.unpack("<IfQQ", f.read(24))
            labels = struct.unpack("<2f", f.read(8)) if flag == 2 and length == 32 else None
            ids.append(rid)
            headers.append(labels)
            offsets.append(off)
            off += 8 + ((length + 3) // 4) * 4
    n = len(offsets)
    if len(set(ids)) == n:
        keys = ids
    else:
        keys, found = list(range(n)), ""
        for pos in (n - 1, 0):  # rec_builder.py writes its header last; others first
            h = headers[pos] if n else None
            if h and 1 < h[0] < h[1] == n:
                keys = [0 if i == pos else i + (pos != 0) for i in range(n)]
                found = ", InsightFace's header as key 0"
                break
        logger.warning("%s: record ids repeat; the index is keyed in file order%s", rec, found)
    atomic_write(idx_path(rec), "".join("%d\t%d\n" % kv for kv in zip(keys, offsets)))
    return n


# ---------------------------------------------------------------- embedded default

DIGITS_SIZE = 32


def embedded_digits(cache_dir=None, size=DIGITS_SIZE):
    """scikit-learn's 8x8 digits, upscaled to ``size`` and packed into RecordIO once.

    Splits (stratified, fixed seed): 20% held-out validation, and the remaining 80%
    split 80/20 into the weight split and the theta split. Returns
    ``{"train": rec, "theta": rec, "val": rec}``.
    """
    import cv2
    from sklearn.datasets import load_digits

    folder = os.path.join(cache_dir or default_cache_dir(), "digits-%d" % size)
    paths = {s: os.path.join(folder, s + ".rec") for s in ("train", "theta", "val")}
    marker = os.path.join(folder, "complete.json")
    if os.path.isfile(marker):
        return paths
    digits = load_digits()
    images = []
    for img in digits.images:  # values 0..16
        g = np.clip(img * (255.0 / 16.0), 0, 255).astype(np.uint8)
        g = cv2.resize(g, (size, size), interpolation=cv2.INTER_CUBIC)
        images.append(cv2.cvtColor(g, cv2.COLOR_GRAY2BGR))
    labels = digits.target
    rng = np.random.RandomState(2019)
    split = {"train": [], "theta": [], "val": []}
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        rng.shuffle(members)
        n_val = int(round(0.2 * len(members)))
        rest = members[n_val:]
        n_train = int(round(0.8 * len(rest)))
        split["val"].extend(members[:n_val])
        split["train"].extend(rest[:n_train])
        split["theta"].extend(rest[n_train:])
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    tmp = tempfile.mkdtemp(dir=os.path.dirname(folder), prefix=".digits-")
    os.chmod(tmp, 0o777 & ~umask())  # as os.makedirs would make it, not mkdtemp's 0700
    try:
        for name, members in split.items():
            members = sorted(members)
            write_images(os.path.join(tmp, name), [images[i] for i in members],
                         labels[members])
        with open(os.path.join(tmp, "complete.json"), "w") as f:
            json.dump({k: len(v) for k, v in split.items()}, f)
        if os.path.isdir(folder) and not os.path.isfile(marker):
            shutil.rmtree(folder, ignore_errors=True)  # a leftover without its marker
        try:
            os.replace(tmp, folder)
        except OSError:
            # another process (e.g. a second worker on this machine) got there first: the
            # contents are the same, keep its folder untouched while it may be read
            if not os.path.isfile(marker):
                raise
            return paths
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp)
    logger.info("packed the embedded digits data set into %s", folder)
    return paths


def check_data(rec, what="data"):
    """Validate a ``.rec``/``.idx`` pair of either layout: flat (every record an image,
    :class:`~fbnet_symbol.recordio.RecordInfo`) or InsightFace's identity-indexed one
    (:class:`~fbnet_symbol.faces.FaceRecords`), told apart by record 0."""
    from .faces import check_face_records, is_identity_indexed, read_keyed_index

    if not (rec and os.path.isfile(rec) and os.path.isfile(idx_path(rec))):
        return check_recordio(rec, what=what)  # its errors name what is missing
    index = read_keyed_index(idx_path(rec), rec)  # read once, for either check
    if is_identity_indexed(rec, index):
        return check_face_records(rec, index, what=what)
    return check_recordio(rec, what=what, offsets=list(index.values()))


def describe(info):
    """One line on a checked file: layout, images, classes and ids, image size, property."""
    size = "x".join(map(str, info.image_size)) if info.image_size else "of several sizes"
    text = "%s: %s layout, %d images, %d classes" % (info.rec, info.layout, info.num_records,
                                                     info.num_classes)
    if info.layout == "flat":
        ids = (int(info.labels.min()), int(info.labels.max())) if info.num_records else (0, 0)
        return text + ", class ids %d..%d, images %s" % (ids[0], ids[1], size)
    from .faces import LABEL_SAMPLES
    prop = info.property_file
    return text + " (%d identity records), class ids %d..%d (%d sampled), images %s, %s" % (
        info.identities, info.class_ids[0], info.class_ids[1],
        min(info.num_records, LABEL_SAMPLES), size,
        "property %d,%d,%d" % prop if prop else "no property file (the images' size is used)")


def write_synthetic_faces(out, identities=200, per_identity=10, size=32, pairs=600, seed=0):
    """The offline face demo: ``out/train.rec`` (identity-indexed) + ``property``, the same
    images flat in ``out/flat/train.rec``, and ``out/pairs.bin`` of identities not in
    train. Returns the paths."""
    import pickle

    import cv2

    from .face_files import synthetic_faces, write_face_records

    faces = synthetic_faces(identities, per_identity, size, seed)
    write_face_records(os.path.join(out, "train"), faces)
    write_images(os.path.join(out, "flat", "train"), [i for f in faces for i in f],
                 [c for c, f in enumerate(faces) for _ in f], fmt=".jpg")
    # pair identities are new people (another seed), as LFW's are to MS1M
    unseen = synthetic_faces(max(2, pairs // 10), 4, size, seed + 7919)
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


# ---------------------------------------------------------------- command line

def main(argv=None):
    from .cli import ArgumentParser
    p = ArgumentParser(prog="python -m fbnet_symbol.data",
                                description="RecordIO data tools")
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("pack", help="pack DIR/<class>/<image> into OUT.rec/.idx")
    a.add_argument("folder")
    a.add_argument("out", help="output prefix (writes OUT.rec, OUT.idx, OUT.classes.txt)")
    a.add_argument("--resize", type=int, help="resize the shorter side to this many pixels")
    a.add_argument("--quality", type=int, default=95, help="JPEG quality (default 95)")
    b = sub.add_parser("split", help="split one .rec into a weight and a theta split")
    b.add_argument("rec")
    b.add_argument("--out-a", required=True, help="prefix of the first part (e.g. train)")
    b.add_argument("--out-b", required=True, help="prefix of the second part (e.g. theta)")
    b.add_argument("--ratio", type=float, default=0.8, help="share of the first part (0.8)")
    b.add_argument("--seed", type=int, default=0)
    c = sub.add_parser("index", help="rebuild REC's .idx")
    c.add_argument("rec")
    d = sub.add_parser("check", help="validate a .rec/.idx pair")
    d.add_argument("rec")
    e = sub.add_parser("digits", help="build the embedded digits data set in the cache")
    e.add_argument("--cache-dir")
    f = sub.add_parser("pack-faces", help="pack DIR/<identity>/<image> into InsightFace's "
                       "identity-indexed OUT.rec/.idx + property")
    f.add_argument("folder")
    f.add_argument("out", help="output prefix, e.g. faces/train (property goes beside it)")
    f.add_argument("--size", help="H,W: resize every image (default: keep; aligned face "
                   "crops are usually 112,112)")
    g = sub.add_parser("make-pairs", help="write a verification pair set (.bin) from LFW's "
                       "pairs.txt or drawn from DIR/<identity>/<image>")
    g.add_argument("out", help="the .bin to write")
    g.add_argument("--pairs-txt", help="LFW-style pairs list (name i j / name1 i name2 j)")
    g.add_argument("--images", help="with --pairs-txt: the folder of name/name_NNNN.jpg")
    g.add_argument("--folder", help="draw pairs from DIR/<identity>/<image> instead")
    g.add_argument("--num-pairs", type=int, default=6000, help="with --folder (6000)")
    g.add_argument("--seed", type=int, default=0)
    h = sub.add_parser("synthetic-faces", help="write the offline face-like demo set: "
                       "OUT/train.rec (identity-indexed) + property, OUT/flat/ and "
                       "OUT/pairs.bin (identities not in train)")
    h.add_argument("out")
    h.add_argument("--identities", type=int, default=200)
    h.add_argument("--per-identity", type=int, default=10)
    h.add_argument("--size", type=int, default=32)
    h.add_argument("--pairs", type=int, default=600)
    h.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.cmd == "pack":
        n, classes = pack_folder(args.folder, args.out, args.resize, args.quality)
        print("packed %d images of %d classes into %s.rec" % (n, len(classes), args.out))
    elif args.cmd == "split":
        na, nb = split_records(args.rec, args.out_a, args.out_b, args.ratio, args.seed)
        print("wrote %s.rec (%d records) and %s.rec (%d records)" % (args.out_a, na, args.out_b, nb))
    elif args.cmd == "index":
        print("indexed %d records into %s" % (build_index(args.rec), idx_path(args.rec)))
    elif args.cmd == "check":
        print(describe(check_data(args.rec)))
    elif args.cmd == "pack-faces":
        from .face_files import pack_faces
        from .search_space import parse_image_shape
        size = tuple(parse_image_shape("3," + args.size)[1:]) if args.size else None
        n, ids = pack_faces(args.folder, args.out, size)
        print("packed %d images of %d identities into %s.rec (identity-indexed) and %s"
              % (n, ids, args.out, os.path.join(os.path.dirname(args.out) or ".", "property")))
    elif args.cmd == "make-pairs":
        from .face_files import draw_pairs, pairs_from_lfw_list, write_pair_set
        if bool(args.pairs_txt) == bool(args.folder) or bool(args.pairs_txt) != bool(args.images):
            raise FBNetError("give either --pairs-txt FILE --images DIR, or --folder DIR")
        pairs = (pairs_from_lfw_list(args.pairs_txt, args.images) if args.pairs_txt
                 else draw_pairs(args.folder, args.num_pairs, args.seed))
        print("wrote %d pairs to %s" % (write_pair_set(args.out, pairs), args.out))
    elif args.cmd == "synthetic-faces":
        for k, v in write_synthetic_faces(args.out, args.identities, args.per_identity,
                                          args.size, args.pairs, args.seed).items():
            print("%s: %s" % (k, v))
    elif args.cmd == "digits":
        paths = embedded_digits(args.cache_dir)
        print("\n".join("%s: %s" % kv for kv in paths.items()))
    return 0


if __name__ == "__main__":
    from .cli import run
    run(main, sys.argv[1:])
