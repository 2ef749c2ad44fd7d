"""How many CPU threads MXNet runs its operators with: chosen per command, before MXNet loads.

MXNet 1.9.1 fixes the count when it is imported: ``MXNET_OMP_MAX_THREADS`` or
``OMP_NUM_THREADS`` if set, else half the processors on x86 (it assumes hyper-threads) —
one thread on a 2-core machine. Neither the variable nor ``MXSetNumOMPThreads`` changes
the speed afterwards, so every command decides (``--threads``) before its first
``import mxnet``:

* a number: that many threads;
* ``auto`` (the default): the user's variables if set, else every core this process may
  run on — faster at every shape measured once the loop reads its data with the
  package's own reader (docs/measurements.md, "The search loop").

The count is recorded with every run and latency table (:func:`omp_threads`), so a table
of another count is not reused silently. This module must not import MXNet.
"""
import logging
import os
import sys

from .errors import FBNetError

logger = logging.getLogger(__name__)

USER_VARIABLES = ("MXNET_OMP_MAX_THREADS", "OMP_NUM_THREADS")


def cores():
    """The cores this process may run on (its CPU affinity; all cores where unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def user_threads(env):
    """The count the user set in ``env`` (MXNet's variables), or None."""
    for name in USER_VARIABLES:
        value = env.get(name, "").split(",")[0].strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


def omp_threads(env=None):
    """The OpenMP threads MXNet 1.9.1 runs (or will run) its operators with, by its rule."""
    env = os.environ if env is None else env
    return user_threads(env) or max(1, (os.cpu_count() or 1) // 2)


def parse_threads(text):
    """``--threads``: ``auto`` or a positive number."""
    text = str(text).strip().lower()
    if text == "auto":
        return "auto"
    if text.isdigit() and int(text) > 0:
        return int(text)
    raise FBNetError("--threads must be auto or a positive number, not %r" % text)


# ``--threads`` of every command that runs MXNet operators (the search's Settings field and
# cli.add_threads_flag read it)
THREADS_HELP = ("CPU threads of MXNet's operators: a number, or auto: MXNET_OMP_MAX_THREADS / "
                "OMP_NUM_THREADS if set, else one per core (the fastest search loop at every "
                "shape measured: docs/measurements.md)")


def choose_threads(setting, env=None):
    """(count, why) for ``--threads setting``."""
    env = os.environ if env is None else env
    setting = parse_threads(setting)
    if setting != "auto":
        return setting, "--threads"
    if user_threads(env):
        return user_threads(env), "from the environment"
    return cores(), "one per core; --threads N to change"


def use_threads(count, env=None):
    """Make MXNet run ``count`` threads and return the count it will run with: once MXNet
    is loaded (a caller that imported it first) its count can no longer change."""
    env = os.environ if env is None else env
    if "mxnet" in sys.modules:
        if omp_threads(env) != count:
            logger.warning("MXNet was loaded before the thread count was chosen: it keeps "
                           "%d threads instead of %d (set MXNET_OMP_MAX_THREADS before "
                           "importing it)", omp_threads(env), count)
        return omp_threads(env)
    env["MXNET_OMP_MAX_THREADS"] = str(count)
    return count
