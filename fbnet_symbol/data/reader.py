"""One reader for every RecordIO file the package trains, evaluates or studies on.

:class:`RecordReader` serves batches of a checked file of either indexing (a flat
:class:`~fbnet_symbol.data.recordio.RecordInfo` or an identity-indexed
:class:`~fbnet_symbol.data.insightface.FaceRecords`): it reads records with positioned reads
(``pread``, thread-safe), decodes, flips and normalises them in worker threads (OpenCV and
numpy release the GIL) one batch ahead, and yields ``mx.io.DataBatch``es.

Why not ``mx.io.ImageRecordIter``: one alive in the process slows every multi-threaded
MXNet operator (docs/mxnet-notes.md), so the loop could not use a second core. Its
conventions are kept, and a test compares the pixels on the same file:
RGB, shorter side resized to the input (bicubic, InsightFace's choice; the
iterator's ``inter_method=2``) and centre-cropped, ``(x - 127.5) /
127.5``; the order and the mirror flags are a pure function of ``seed`` (so a resumed run
sees the same batches, and :meth:`RecordReader.batches` starts at any batch without
decoding the ones before); a worker's shard is a contiguous part of the file's images; the
last batch is filled from the start with ``pad`` rows.

A split whose decoded images fit in :data:`MEMORY_CACHE_BYTES` (the embedded digits,
small face sets, most validation splits) is decoded once per process and input size and
then served from memory, every epoch.
"""
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..errors import FBNetError
from ..space.spaces import PIXEL_MEAN, PIXEL_SCALE
from ..threads import cores
from .recordio import decode_bgr, read_record

# decoded (uint8) images kept per process, all splits and sizes together; the variable
# FBNET_READER_CACHE_BYTES changes it (0: decode every batch)
MEMORY_CACHE_BYTES = int(os.environ.get("FBNET_READER_CACHE_BYTES", 1 << 30))
_memory = {}  # cache key -> (images N x H x W x 3 uint8 RGB, labels float32)


def decode_image(payload, height, width):
    """Encoded image bytes -> RGB uint8 HxWx3: shorter side resized to the input, centre crop.
    Resized bicubically, as InsightFace resizes both its training images and its ``.bin``
    pairs: ``mx.image.resize_short(..., interp=2)``, and MXNet's code 2 is OpenCV's
    ``INTER_CUBIC`` (not area, code 3). Bilinear scored 0.57 where InsightFace's resize
    scored 0.61 on the same 112x112 pairs at a 32x32 input."""
    import cv2

    img = decode_bgr(payload)
    if img is None:
        raise FBNetError("an image does not decode")  # callers name the file and record
    h, w = img.shape[:2]
    if (h, w) != (height, width):
        scale = max(height / h, width / w)
        img = cv2.resize(img, (max(width, round(w * scale)), max(height, round(h * scale))),
                         interpolation=cv2.INTER_CUBIC)
        top, left = (img.shape[0] - height) // 2, (img.shape[1] - width) // 2
        img = img[top:top + height, left:left + width]
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)  # contiguous, unlike img[:, :, ::-1]


def normalise(images, data):
    """uint8 N x H x W x 3 RGB -> ``data``, float32 N x 3 x H x W, (x - mean) / scale."""
    np.subtract(images.transpose(0, 3, 1, 2), PIXEL_MEAN, out=data, dtype=np.float32)
    data *= 1.0 / PIXEL_SCALE


def default_decode_threads():
    return min(8, cores())


class RecordReader:
    """Batches of one epoch over ``source``'s images (see the module docstring).

    ``source``: a checked file (``check_data``); anything with ``rec``, ``num_classes``
    and ``image_records()`` -> (keys, byte offsets) of its images, in file order.
    ``threads``: decode threads (default: the cores, at most 8). ``cache_bytes``: decode
    the shard once and keep it in memory if its images take at most this many bytes.
    """

    def __init__(self, source, image_shape, batch_size, shuffle=True, seed=0, num_parts=1,
                 part_index=0, rand_mirror=False, threads=None, cache_bytes=None):
        self.source, self.batch_size = source, batch_size
        self.channels, self.height, self.width = image_shape
        if self.channels != 3:
            raise FBNetError("the data reader gives 3-channel (RGB) images; use --image-shape "
                             "3,H,W, not %s" % ",".join(map(str, image_shape)))
        keys, offsets = source.image_records()
        rows = np.array_split(np.arange(len(keys)), num_parts)[part_index]
        self.keys, self.offsets = np.asarray(keys)[rows], np.asarray(offsets)[rows]
        rng = np.random.RandomState(seed)
        self.order = rng.permutation(len(rows)) if shuffle else np.arange(len(rows))
        self.mirror = (rng.rand(len(rows)) < 0.5) if rand_mirror else np.zeros(len(rows), bool)
        self.threads = threads or default_decode_threads()
        # kept in memory if it fits beside what this process keeps already (splits are not
        # evicted: the weight and theta splits would push each other out every epoch)
        limit = MEMORY_CACHE_BYTES if cache_bytes is None else cache_bytes
        size = len(rows) * 3 * self.height * self.width
        self._key = self._cache_key() if size <= limit else None
        kept = sum(images.nbytes for images, _ in _memory.values())
        self.cached = self._key is not None and (self._key in _memory or size + kept <= limit)
        self.provide_data = [("data", (batch_size,) + tuple(image_shape))]
        self.provide_label = [("softmax_label", (batch_size,))]

    def __len__(self):
        return -(-len(self.order) // self.batch_size)

    def __iter__(self):
        return self.batches()

    # ------------------------------------------------------------ decoding
    def _decode(self, fd, size, row, out, flip=False):
        """Decode image ``row`` of this shard into ``out`` (H x W x 3 uint8); its label."""
        import cv2

        s = self.source
        key, offset = int(self.keys[row]), int(self.offsets[row])
        label, payload = read_record(fd, offset, size, s.rec, key)
        if not 0 <= label[0] < s.num_classes:
            raise FBNetError("%s: image record %d has class %g, outside the file's %d classes; "
                             "re-pack the data" % (s.rec, key, label[0], s.num_classes))
        try:
            img = decode_image(payload, self.height, self.width)
        except FBNetError:
            raise FBNetError("%s: record %d is not a decodable image; re-pack the data"
                             % (s.rec, key)) from None
        if flip:
            cv2.flip(img, 1, dst=out)
        else:
            out[...] = img
        return label[0]

    def _cache_key(self):
        st = os.stat(self.source.rec)
        digest = hashlib.sha1(np.ascontiguousarray(self.offsets, np.int64).tobytes()).hexdigest()
        return (os.path.abspath(self.source.rec), st.st_size, st.st_mtime_ns, digest,
                self.height, self.width)

    def _memory(self, pool, fd, size):
        """The whole shard decoded (from the process's cache when it was decoded before)."""
        if self._key in _memory:
            return _memory[self._key]
        images = np.empty((len(self.keys), self.height, self.width, 3), np.uint8)
        labels = np.empty(len(self.keys), np.float32)

        def part(rows):
            for r in rows:
                labels[r] = self._decode(fd, size, r, images[r])

        list(pool.map(part, np.array_split(np.arange(len(self.keys)), self.threads * 4)))
        _memory[self._key] = images, labels
        return images, labels

    # ------------------------------------------------------------ batches
    def _rows(self, b):
        positions = np.arange(b * self.batch_size, (b + 1) * self.batch_size)
        pad = int(max(0, positions[-1] + 1 - len(self.order)))
        return self.order[positions % len(self.order)], pad

    def _load(self, pool, fd, size, memory, b):
        rows, pad = self._rows(b)
        data = np.empty((len(rows), 3, self.height, self.width), np.float32)
        flips = self.mirror[rows]
        if memory is not None:
            images = memory[0][rows]
            images[flips] = images[flips, :, ::-1]
            normalise(images, data)
            return data, memory[1][rows], pad
        labels = np.empty(len(rows), np.float32)

        def part(span):  # one worker reads, decodes, flips and normalises a slice of rows
            images = np.empty((span.stop - span.start, self.height, self.width, 3), np.uint8)
            for i, r in enumerate(range(span.start, span.stop)):
                labels[r] = self._decode(fd, size, rows[r], images[i], flips[r])
            normalise(images, data[span])

        step = -(-len(rows) // self.threads)
        list(pool.map(part, [slice(i, min(i + step, len(rows)))
                             for i in range(0, len(rows), step)]))
        return data, labels, pad

    def batches(self, first=0):
        """``DataBatch``es from batch ``first`` (the ones before are not read)."""
        import mxnet as mx

        fd = os.open(self.source.rec, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            with ThreadPoolExecutor(self.threads) as pool, ThreadPoolExecutor(1) as ahead:
                memory = self._memory(pool, fd, size) if self.cached and first < len(self) \
                    else None
                pending = ahead.submit(self._load, pool, fd, size, memory, first) \
                    if first < len(self) else None
                for b in range(first, len(self)):
                    data, label, pad = pending.result()
                    if b + 1 < len(self):
                        pending = ahead.submit(self._load, pool, fd, size, memory, b + 1)
                    # the arrays are this batch's own: MXNet takes them without a copy
                    yield mx.io.DataBatch([mx.nd.from_numpy(data)], [mx.nd.from_numpy(label)],
                                          pad=pad,
                                          provide_data=self.provide_data,
                                          provide_label=self.provide_label)
        finally:
            os.close(fd)

    def empty_batch(self):
        """A batch of zeros whose every row is padding (a worker whose shard ended early)."""
        import mxnet as mx

        shape = self.provide_data[0][1]
        return mx.io.DataBatch([mx.nd.zeros(shape)], [mx.nd.zeros((self.batch_size,))],
                               pad=self.batch_size, provide_data=self.provide_data,
                               provide_label=self.provide_label)
