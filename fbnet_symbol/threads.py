"""How many CPU threads MXNet runs with: every core this process is given, unless the user chose.

MXNet 1.9.1 starts half the processors' count of OpenMP threads on x86 when nothing is
set (it assumes hyper-threads): one thread on a 2-core machine, which ran the supernet's
weight step at 18.1 samples/s against 26.9 with ``MXNET_OMP_MAX_THREADS=2``
(docs/mxnet-notes.md, "Timing"). :func:`use_cores` sets that variable before MXNet loads
(the package calls it first thing); a value the user set in ``MXNET_OMP_MAX_THREADS`` or
``OMP_NUM_THREADS`` is left alone. This module must not import MXNet.
"""
import os

USER_VARIABLES = ("MXNET_OMP_MAX_THREADS", "OMP_NUM_THREADS")
_state = {"set_here": False}


def cores():
    """The cores this process may run on (its CPU affinity; all cores where unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def use_cores(env=None):
    """Give MXNet every core unless the user set a thread count; True if set here."""
    env = os.environ if env is None else env
    if any(v in env for v in USER_VARIABLES):
        return False
    env["MXNET_OMP_MAX_THREADS"] = str(cores())
    if env is os.environ:
        _state["set_here"] = True
    return True


def set_here():
    """Did this process choose the thread count (rather than the user)?"""
    return _state["set_here"]


def omp_threads(env=None):
    """The OpenMP threads MXNet 1.9.1 runs its operators with, by its own rule."""
    env = os.environ if env is None else env
    for name in USER_VARIABLES:
        value = env.get(name, "").split(",")[0].strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return max(1, (os.cpu_count() or 1) // 2)
