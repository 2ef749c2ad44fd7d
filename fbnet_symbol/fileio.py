"""Files on disk: atomic writes, checksums, the cache folder, image folders — a crash never leaves a half-written file that is trusted."""
import hashlib
import json
import os
import tempfile

from .errors import FBNetError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


def class_folders(folder, what="class"):
    """The sub-folders of an image folder, one per class (identity), sorted by name."""
    if not os.path.isdir(folder):
        raise FBNetError("image folder %s does not exist" % folder)
    names = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))
    if len(names) < 2:
        raise FBNetError("%s needs one sub-folder per %s (at least two); found %d"
                         % (folder, what, len(names)))
    return names


def image_files(folder):
    """The image files of a folder (by extension), sorted by name."""
    return [os.path.join(folder, f) for f in sorted(os.listdir(folder))
            if f.lower().endswith(IMAGE_EXTENSIONS)]


def umask():
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path, data, mode="w"):
    """Write ``data`` (str or bytes) to ``path`` via a temp file in the same folder + rename.
    The file gets the permissions ``open()`` would give it (0644 under umask 022), not the
    temp file's 0600: a shared checkpoint or export must be readable by its reader."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix="-" + os.path.basename(path))
    os.fchmod(fd, 0o666 & ~umask())
    try:
        with os.fdopen(fd, mode) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path, obj):
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def sha256_file(path, chunk=1 << 20):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def default_cache_dir():
    """Where measured latency tables and the embedded data set are kept between runs
    (``FBNET_SYMBOL_CACHE`` overrides)."""
    return os.environ.get("FBNET_SYMBOL_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "fbnet_symbol")
