"""How many CPU threads MXNet runs its operators with, and how many cores there are.

MXNet 1.9.1 decides at import: ``MXNET_OMP_MAX_THREADS`` or ``OMP_NUM_THREADS`` if set,
else half the processors on x86 (it assumes hyper-threads) — one thread on a 2-core
machine. The package does not change that choice: on this 2-core machine more threads
made the supernet's steps 1.5-2x faster at 32x32 and above (batch 32) but 3-10x slower at
the embedded demo's 16x16, width 0.5, and latency tables at batch 1 came out up to 6x
slower (docs/mxnet-notes.md, "Timing"). Set ``MXNET_OMP_MAX_THREADS`` before starting a
command to use more. The count is recorded with every run and latency table
(:func:`omp_threads`), so a table of another count is not reused silently.
This module must not import MXNet.
"""
import os

USER_VARIABLES = ("MXNET_OMP_MAX_THREADS", "OMP_NUM_THREADS")


def cores():
    """The cores this process may run on (its CPU affinity; all cores where unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def omp_threads(env=None):
    """The OpenMP threads MXNet 1.9.1 runs its operators with, by its own rule."""
    env = os.environ if env is None else env
    for name in USER_VARIABLES:
        value = env.get(name, "").split(",")[0].strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return max(1, (os.cpu_count() or 1) // 2)
