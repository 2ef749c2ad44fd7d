"""Files on disk: atomic writes, checksums, the cache folder, image folders, PNG figures — a crash never leaves a half-written file that is trusted."""
import errno
import hashlib
import json
import os
import shutil
import tempfile

from .errors import FBNetError, WriteFailed

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


def read_text(path, expects):
    """The text of ``path``; a binary file where text is expected (a ``.bin`` pair set, an
    image, ``.params``) is one :class:`FBNetError` saying what the flag takes."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError:
        raise FBNetError("%s is a binary file, not %s" % (path, expects)) from None


def umask():
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_failed(path, err):
    """:class:`WriteFailed` for ``path`` from an ``OSError`` or MXNet's error (which carries
    no errno: its ``FileStream.Write incomplete`` is a full disk or a file-size limit)."""
    folder = os.path.dirname(os.path.abspath(path))
    if isinstance(err, OSError) and err.strerror:
        reason = err.strerror
    else:  # MXNet's message opens with its C++ stack; the check that failed says it
        lines = [l.strip() for l in str(err).splitlines() if l.strip()] or ["no message"]
        said = next((l for l in lines if "Check failed" in l or "incomplete" in l), lines[-1])
        reason = "the write stopped short (MXNet: %s)" % said[-120:]
    try:
        free = "%.0f MiB free there" % (shutil.disk_usage(folder).free / 2 ** 20)
    except OSError:
        free = "its free space unknown"
    fix = "make room in %s" % folder if not isinstance(err, OSError) or err.errno in (
        errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else "check %s" % folder
    return WriteFailed("cannot write %s: %s (%s); %s" % (path, reason, free, fix))


def write_file(path, write):
    """Create ``path`` by ``write(tmp)`` on a temp file in the same folder, then rename: a
    failed write (disk full, ...) leaves the old file as it was and no temp file behind, and
    raises :class:`WriteFailed`. The file gets the permissions ``open()`` would give it
    (0644 under umask 022), not the temp file's 0600: a shared checkpoint or export must be
    readable by its reader."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-",
                                   suffix="-" + os.path.basename(path))
    except OSError as e:
        raise write_failed(path, e) from None
    try:
        os.fchmod(fd, 0o666 & ~umask())
        os.close(fd)
        write(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) or type(e).__name__ == "MXNetError":  # MXNet's writer
            raise write_failed(path, e) from None
        raise


def atomic_write(path, data, mode="w"):
    """Write ``data`` (str or bytes) to ``path`` atomically (:func:`write_file`)."""
    def write(tmp):
        with open(tmp, mode) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    write_file(path, write)


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


def cached_folder(folder, build, prefix=".build-"):
    """``folder`` made once: ``build(tmp)`` fills a temporary folder beside it, which is
    marked complete (``complete.json``, from what ``build`` returns) and renamed into place,
    so a folder that has its marker is whole. A leftover without its marker is replaced; if
    another process (a second worker on this machine) renames its copy first, that one is
    kept untouched while it may be read. Returns whether this call built it."""
    marker = os.path.join(folder, "complete.json")
    if os.path.isfile(marker):
        return False
    parent = os.path.dirname(os.path.abspath(folder))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=prefix)
    os.chmod(tmp, 0o777 & ~umask())  # as os.makedirs would make it, not mkdtemp's 0700
    try:
        done = build(tmp)
        with open(os.path.join(tmp, "complete.json"), "w") as f:
            json.dump(done, f)
        if os.path.isdir(folder) and not os.path.isfile(marker):
            shutil.rmtree(folder, ignore_errors=True)
        try:
            os.replace(tmp, folder)
        except OSError:
            if not os.path.isfile(marker):
                raise
            return False
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp)
    return True


class FolderLock:
    """One run per output folder: an exclusive ``flock`` on ``FOLDER/.lock``, held while the
    run lives. The kernel drops it when the process ends, however it ends, so the lock of a
    dead run is simply taken over; the file names the holder for the refusal message."""

    NAME = ".lock"

    def __init__(self, folder, flag="--save-model-path"):
        self.folder, self.flag = os.path.abspath(folder), flag
        self.path = os.path.join(self.folder, self.NAME)
        self.fd, self.created_folder = None, False

    def acquire(self):
        import fcntl
        import socket
        import sys
        import time

        self.created_folder = not os.path.isdir(self.folder)
        try:
            os.makedirs(self.folder, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666 & ~umask())
        except OSError as e:
            raise write_failed(self.path, e) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 4096).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise FBNetError("%s %s is in use by a running run (%s); wait for it to end or "
                             "stop it, or give another %s" % (self.flag, self.folder, holder,
                                                              self.flag)) from None
        previous = os.read(fd, 4096).decode("utf-8", "replace").strip()
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.write(fd, ("pid %d on %s, started %s: %s" % (
            os.getpid(), socket.gethostname(), time.strftime("%Y-%m-%d %H:%M:%S"),
            " ".join(sys.argv)[:300])).encode())
        self.fd = fd
        return previous  # the holder of a lock taken over (its process is gone), or ""

    def release(self, tidy=False):
        """Let the folder go; ``tidy``: a refused start also takes back the folder it made
        (when nothing else was written in it)."""
        if self.fd is None:
            return
        os.ftruncate(self.fd, 0)  # ended, not crashed: nobody to name when the next run takes it
        os.close(self.fd)
        self.fd = None
        if tidy and self.created_folder and os.listdir(self.folder) == [self.NAME]:
            os.unlink(self.path)
            os.rmdir(self.folder)


def pyplot():
    """matplotlib's pyplot on the file-only backend (no display needed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path):
    """Write ``fig`` as a PNG, atomically, and free it."""
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    pyplot().close(fig)
    atomic_write(path, buf.getvalue(), mode="wb")
