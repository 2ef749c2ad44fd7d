"""Checkpoints in MXNet's layout, written atomically and verified before they are trusted.

A checkpoint ``N`` in a folder is:

* ``<prefix>-symbol.json``           the graph (``mx.model.load_checkpoint`` reads it)
* ``<prefix>-NNNN.params``           parameters (``arg:``/``aux:`` keys, MXNet's format)
* ``<prefix>-NNNN.<name>.states``    optimizer states, one file per optimizer, pickled
                                     with the optimizer so Adam's step counts and the
                                     learning-rate schedule survive a resume
* ``<prefix>-NNNN.json``             what an exact resume needs (epoch, the phase under
                                     key ``stage``, batch, step, temperature, history...)
                                     and the SHA-256 of every file above. Written last: a checkpoint without
                                     it, or whose files do not match their checksums, is
                                     incomplete or damaged and is skipped with a warning.

``NNNN`` counts optimisation steps (``%04d``, more digits when needed), so
``mx.model.load_checkpoint(prefix, N)`` loads checkpoint ``N``.
"""
import errno
import glob
import json
import logging
import os
import re

from .errors import FBNetError, WriteFailed
from .fileio import atomic_write, atomic_write_json, sha256_file, write_file

logger = logging.getLogger(__name__)
FORMAT = "fbnet_symbol.checkpoint/1"


def save_params(path, arg_params, aux_params):
    """MXNet's ``.params`` layout (``arg:``/``aux:`` keys), written via a temp file + rename."""
    import mxnet as mx
    blob = {"arg:" + k: v for k, v in arg_params.items()}
    blob.update({"aux:" + k: v for k, v in aux_params.items()})

    def write(tmp):
        mx.nd.save(tmp, blob)
        # MXNet's writer drops an error on its last buffered bytes (fclose): a full disk can
        # leave a short file that would still get a checksum. Flush it and read it back.
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        if sorted(mx.nd.load(tmp)) != sorted(blob):
            raise OSError(errno.EIO, "the file read back differs from what was written", tmp)

    write_file(path, write)
    return path


class Checkpoint:
    def __init__(self, params_path, meta):
        self.params_path = params_path
        self.meta = meta
        self.prefix, self.number = split_params_path(params_path)

    def states_path(self, name):
        return "%s-%04d.%s.states" % (self.prefix, self.number, name)

    def load_params(self):
        import mxnet as mx
        loaded = mx.nd.load(self.params_path)
        arg = {k[4:]: v for k, v in loaded.items() if k.startswith("arg:")}
        aux = {k[4:]: v for k, v in loaded.items() if k.startswith("aux:")}
        if not arg and loaded:  # a plain dict without prefixes
            arg = dict(loaded)
        return arg, aux

    def read_states(self, name):
        path = self.states_path(name)
        if not os.path.isfile(path):
            return None
        with open(path, "rb") as f:
            return f.read()


def split_params_path(path):
    m = re.fullmatch(r"(.*)-(\d+)\.params", path)
    if not m:
        raise FBNetError("%s is not named PREFIX-NNNN.params (MXNet's checkpoint naming); "
                         "pass the folder or a file like model/checkpoints/supernet-0120.params"
                         % path)
    return m.group(1), int(m.group(2))


class CheckpointFolder:
    def __init__(self, folder, prefix="supernet", keep=3):
        self.folder = folder
        self.prefix = os.path.join(folder, prefix)
        self.keep = keep

    def save(self, number, symbol, arg_params, aux_params, states, meta):
        """Write checkpoint ``number``; ``states``: {optimizer name: bytes}."""
        files = {}
        sym_path = self.prefix + "-symbol.json"
        params_path = "%s-%04d.params" % (self.prefix, number)
        try:
            atomic_write(sym_path, symbol.tojson())
            files[os.path.basename(sym_path)] = sha256_file(sym_path)
            save_params(params_path, arg_params, aux_params)
            files[os.path.basename(params_path)] = sha256_file(params_path)
            for name, data in states.items():
                path = "%s-%04d.%s.states" % (self.prefix, number, name)
                atomic_write(path, data, mode="wb")
                files[os.path.basename(path)] = sha256_file(path)
            record = {"format": FORMAT, "number": number, "files": files, **meta}
            atomic_write_json("%s-%04d.json" % (self.prefix, number), record)
        except WriteFailed:
            self._remove(number)  # a part-written checkpoint: the space back, the older kept
            raise
        self._prune()
        return params_path

    def _remove(self, number):
        for path in glob.glob("%s-%04d.*" % (glob.escape(self.prefix), number)):
            os.unlink(path)

    def _numbers(self):
        out = []
        for path in glob.glob(glob.escape(self.prefix) + "-*.json"):
            m = re.fullmatch(re.escape(self.prefix) + r"-(\d+)\.json", path)
            if m:
                out.append(int(m.group(1)))
        return sorted(out)

    def _prune(self):
        numbers = self._numbers()
        for n in numbers[:-self.keep] if self.keep else []:
            self._remove(n)

    def latest(self):
        """The newest complete, verified checkpoint, or ``None``; damaged ones are skipped."""
        for n in reversed(self._numbers()):
            params = "%s-%04d.params" % (self.prefix, n)
            try:
                return verify(params)
            except FBNetError as e:
                logger.warning("skipping checkpoint %d: %s", n, e)
        return None


def verify(params_path):
    """Load the metadata beside ``params_path`` and check every file's checksum."""
    prefix, number = split_params_path(params_path)
    meta_path = "%s-%04d.json" % (prefix, number)
    if not os.path.isfile(meta_path):
        raise FBNetError("%s has no %s beside it, so it is incomplete or not one of ours"
                         % (params_path, os.path.basename(meta_path)))
    try:
        with open(meta_path) as f:
            meta = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise FBNetError("%s is unreadable (%s)" % (meta_path, e)) from None
    folder = os.path.dirname(params_path)
    for name, digest in meta.get("files", {}).items():
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            raise FBNetError("%s is missing" % path)
        if sha256_file(path) != digest:
            raise FBNetError("%s does not match its checksum (damaged)" % path)
    return Checkpoint(params_path, meta)


def find_checkpoint(path, prefix="supernet"):
    """``--load-model-path``: a folder (newest verified checkpoint) or a ``.params`` file.

    Returns a :class:`Checkpoint`; for a ``.params`` without our metadata, a checkpoint
    whose ``meta`` is empty (weights only).
    """
    if os.path.isdir(path):
        for folder in (os.path.join(path, "checkpoints"), path):
            found = CheckpointFolder(folder, prefix).latest()
            if found:
                return found
        raise FBNetError("no complete checkpoint named %s-NNNN.params in %s; pass the "
                         "--save-model-path of an earlier run or a .params file" % (prefix, path))
    if not os.path.isfile(path):
        raise FBNetError("--load-model-path %s does not exist; pass a folder or a .params file"
                         % path)
    try:
        return verify(path)
    except FBNetError as e:
        if os.path.isfile("%s-%04d.json" % split_params_path(path)):
            raise FBNetError("cannot resume from %s: %s; pass the folder to use the newest "
                             "good checkpoint" % (path, e)) from None
        logger.warning("%s has no resume metadata: loading its parameters only", path)
        return Checkpoint(path, {})
