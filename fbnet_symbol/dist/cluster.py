"""Several devices and machines: the kvstore, hand-reduced theta, collectives, worker consistency.

One kvstore serves the whole search (docs/mxnet-notes.md, "Several machines": a second dist
kvstore in a process hangs, and one kvstore cannot be handed to two Modules). The weight
Module owns it (``init_optimizer(kvstore=kv)``); the theta Module has none and its
gradients are summed by hand through the same kvstore (:class:`HandReducedModule`)
before its local update. With ``MXNET_UPDATE_ON_KVSTORE=0`` the servers only add
gradients; every worker runs the same optimizer on the same sums and so keeps identical
weights and theta — checked, not assumed (:func:`check_agreement`).

Processes are started by ``launch.py`` with the ``DMLC_*`` variables; ranks come from the
scheduler.
"""
import hashlib
import json
import os

import mxnet as mx
import numpy as np

from ..errors import FBNetError

LOCAL_TYPES = ("local", "device")
DIST_TYPES = ("dist_sync", "dist_device_sync")
DMLC_VARIABLES = ("DMLC_ROLE", "DMLC_PS_ROOT_URI", "DMLC_PS_ROOT_PORT", "DMLC_NUM_SERVER",
                  "DMLC_NUM_WORKER")
# relative tolerance for "every worker holds the same numbers": they run the same float
# operations on the same sums, so anything above rounding noise is a real divergence
AGREEMENT_RTOL = 1e-5


def check_kvstore_type(kind):
    """Refuse kvstore types the search cannot use, with the fix."""
    if kind in LOCAL_TYPES or kind in DIST_TYPES:
        return
    if kind.startswith("dist"):
        raise FBNetError("--kv-store %s is not supported: asynchronous updates would leave "
                         "every worker with a different theta; use dist_sync" % kind)
    raise FBNetError("unknown --kv-store %r; use local or device (one machine) or dist_sync "
                     "(several machines, started with fbnet launch / launch.py)" % kind)


def create_kvstore(kind, num_devices):
    """The process's kvstore, or None when one device on one machine needs no summing."""
    check_kvstore_type(kind)
    if kind in DIST_TYPES:
        missing = [v for v in DMLC_VARIABLES if not os.environ.get(v)]
        if missing:
            raise FBNetError("--kv-store %s needs the cluster variables %s, which launch.py "
                             "sets: python launch.py -n 2 -s 1 --launcher local python test.py "
                             "--kv-store %s ..." % (kind, ", ".join(missing), kind))
        if os.environ["DMLC_ROLE"] != "worker":
            raise FBNetError("DMLC_ROLE=%s: only workers run the search; launch.py starts the "
                             "scheduler and servers itself" % os.environ["DMLC_ROLE"])
        return mx.kv.create(kind)
    return mx.kv.create(kind) if num_devices > 1 else None


def is_distributed(kv):
    return kv is not None and kv.type.startswith("dist")


def rank_and_size(kv):
    """(this worker's rank, number of workers); (0, 1) without a dist kvstore."""
    return (kv.rank, kv.num_workers) if is_distributed(kv) else (0, 1)


class HandReducedModule(mx.mod.Module):
    """A Module whose gradients are summed by hand through a kvstore it does not own.

    ``update()`` first replaces every gradient by its sum over devices (and workers) with
    ``kv.pushpull`` on the parameter's own key — the key the owning Module initialised —
    then applies the local optimizer exactly as a Module without kvstore does.
    """

    def __init__(self, *args, reducer=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._reducer = reducer

    def update(self):
        if self._reducer is not None:
            group = self._exec_group
            for index, (name, grads) in enumerate(zip(group.param_names, group.grad_arrays)):
                if grads[0] is not None:
                    self._reducer.pushpull(name, grads, priority=-index)
        super().update()


class Collective:
    """Small collective operations over a dist kvstore, each on a key of its own.

    A key is created once per purpose (``what``) and reused, so a check run every epoch
    does not grow the servers' memory. With the servers only adding (no optimizer on
    them), a ``pushpull`` returns the sum over workers.
    """

    def __init__(self, kv):
        self.kv = kv
        self.rank, self.size = rank_and_size(kv)
        self._shapes = {}

    @property
    def distributed(self):
        return is_distributed(self.kv)

    def _key(self, what, shape):
        key = "__fbnet_" + what
        if key not in self._shapes:
            self.kv.init(key, mx.nd.zeros(shape))  # collective: every worker calls it
            self._shapes[key] = shape
        elif self._shapes[key] != shape:
            raise ValueError("collective key %s reused with shape %s, was %s"
                             % (key, shape, self._shapes[key]))
        return key

    def allreduce(self, array, what="sum"):
        """The sum of ``array`` over workers (float32 on the wire)."""
        value = np.asarray(array, dtype=np.float32)
        if not self.distributed:
            return value
        key = self._key(what, value.shape)
        out = mx.nd.zeros(value.shape)
        self.kv.pushpull(key, mx.nd.array(value), out=out)
        return out.asnumpy()

    def broadcast(self, array, what="broadcast"):
        """Rank 0's ``array`` on every worker (every worker passes the same shape)."""
        value = np.asarray(array, dtype=np.float32)
        if not self.distributed:
            return value
        return self.allreduce(value if self.rank == 0 else np.zeros_like(value), what)

    def check_agreement(self, vector, what, key=None):
        """Raise on every worker unless all of them hold the same ``vector``.

        Rank 0's vector is broadcast, each worker measures its largest relative deviation
        from it, and the deviations are summed, so all workers reach the same verdict and
        stop together instead of some of them hanging. Returns that sum. Calls with the
        same ``key`` (default: from ``what``) must pass vectors of the same size.
        """
        if not self.distributed:
            return 0.0
        mine = np.asarray(vector, dtype=np.float32).ravel()
        reference = self.broadcast(mine, "agree_" + (key or what.replace(" ", "_")))
        scale = max(float(np.abs(reference).max()) if reference.size else 0.0, 1e-12)
        deviation = float(np.abs(mine - reference).max()) / scale if mine.size else 0.0
        if not np.isfinite(deviation):
            deviation = np.inf
        total = float(self.allreduce([min(deviation, 1e30)], "agree_verdict")[0])
        if not total <= AGREEMENT_RTOL:
            raise FBNetError("the %d workers disagree on %s (largest relative difference "
                             "%.3g): they were started with different settings or files; "
                             "start every worker with the same command through fbnet launch (launch.py)"
                             % (self.size, what, total))
        return total


def exactly(batches, count, empty_batch):
    """``(batch, valid rows)`` exactly ``count`` times: every worker must take part in every
    step of a dist_sync run although the shards cut from the file differ by one image.
    A shard that ends early adds steps with no valid row (zero gradient; ``empty_batch()``
    when it gave none); one that is longer loses its last images this epoch (the shuffle
    differs each epoch)."""
    last = None
    for batch in batches:
        if count == 0:
            return
        yield batch, batch.data[0].shape[0] - batch.pad
        last, count = batch, count - 1
    for _ in range(count):
        last = last if last is not None else empty_batch()
        yield last, 0


def average_batchnorm_statistics(collective, exec_group):
    """Every worker's BN moving statistics replaced by their mean over workers (the dist
    counterpart of Module averaging them over devices), so rank 0's checkpoint speaks for
    all the data and a resumed run continues from the same numbers."""
    if not collective.distributed or not exec_group.aux_arrays:
        return
    mine = np.concatenate([sum(a.asnumpy() for a in devs).ravel() / len(devs)
                           for devs in exec_group.aux_arrays])
    mean = collective.allreduce(mine, "batchnorm_statistics") / collective.size
    start = 0
    for devs in exec_group.aux_arrays:
        size = devs[0].size
        value = mx.nd.array(mean[start:start + size].reshape(devs[0].shape))
        for a in devs:
            value.copyto(a)
        start += size


def check_workers_agree(collective, run_view, data_sizes, position, arg_params, when):
    """Stop every worker unless all hold the same settings (``run_view``, a JSON-ready
    dict), data sizes, position (list of ints) and parameters."""
    if not collective.distributed:
        return
    encoded = json.dumps(run_view, sort_keys=True).encode()
    collective.check_agreement(np.frombuffer(hashlib.sha256(encoded).digest()[:6], np.uint8),
                            "their settings")
    collective.check_agreement(data_sizes, "the size of their data files")
    collective.check_agreement(position, "the position in the run")
    collective.check_agreement(np.concatenate([arg_params[n].asnumpy().ravel()
                                            for n in sorted(arg_params)]),
                            "theta and weights " + when, key="parameters")
