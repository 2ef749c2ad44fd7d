"""Writing RecordIO files: pack an image folder, split one file in two, rebuild a lost index."""
import logging
import os
import struct

import numpy as np

from ..errors import FBNetError
from ..fileio import IMAGE_EXTENSIONS, atomic_write, class_folders, image_files
from .recordio import check_recordio, idx_path, read_header, read_index

logger = logging.getLogger(__name__)


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
    (an identity-indexed file's order lives in its keys: the header is key 0, wherever it
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
