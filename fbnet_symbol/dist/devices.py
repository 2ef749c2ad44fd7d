"""Device strings of the command line -> MXNet contexts.

``--gpu 0,1,2,3`` (the seed's flag) means GPUs 0-3; ``--gpu cpu`` or ``cpu:0,cpu:1`` means
CPU contexts (several CPU contexts run the same data-parallel code path as several GPUs).
"""
import contextlib
import logging
import os
import platform
import re

import mxnet as mx

from ..errors import FBNetError
from ..threads import omp_threads

logger = logging.getLogger(__name__)


def num_gpus():
    try:
        return mx.context.num_gpus()
    except mx.base.MXNetError:  # a CPU build, or no driver
        return 0


def parse_devices(spec, notice=True):
    """Parse ``"0,1"``, ``"cpu"``, ``"cpu:0,cpu:1"`` or ``None`` into a list of contexts.

    ``None`` on a machine without GPUs means the CPU (with a one-line notice); a GPU that
    does not exist is an error.
    """
    if spec is None or str(spec).strip() == "":
        if num_gpus() > 0:
            return [mx.gpu(0)]
        if notice:
            logger.info("no --gpu given and no GPU found: running on the CPU")
        return [mx.cpu(0)]
    contexts = []
    available = None
    for item in str(spec).split(","):
        item = item.strip().lower()
        if item == "cpu":
            contexts.append(mx.cpu(0))
            continue
        if item.startswith("cpu:"):
            index = item[4:]
            kind = "cpu"
        else:
            index = item[4:] if item.startswith("gpu:") else item
            kind = "gpu"
        if not index.isdigit():
            raise FBNetError("bad device %r in --gpu %s: use GPU numbers like 0,1 or "
                             "cpu, cpu:0,cpu:1" % (item, spec))
        if kind == "cpu":
            contexts.append(mx.cpu(int(index)))
            continue
        if available is None:
            available = num_gpus()
        if int(index) >= available:
            raise FBNetError("GPU %s does not exist: this machine has %d GPU(s)%s; use "
                             "--gpu cpu or a GPU number below %d"
                             % (index, available,
                                " (CPU build of MXNet)" if not gpu_build() else "",
                                max(available, 1)))
        contexts.append(mx.gpu(int(index)))
    if len(set(map(str, contexts))) != len(contexts):
        raise FBNetError("--gpu %s lists a device twice; list each device once" % spec)
    return contexts


def context_from_string(text):
    """``"cpu(0)"`` / ``"gpu(1)"`` (``str(ctx)``, as stored in metadata) -> context."""
    m = re.fullmatch(r"(cpu|gpu)\((\d+)\)", str(text).strip())
    if not m:
        raise FBNetError("unknown device %r; expected cpu(N) or gpu(N)" % (text,))
    return parse_devices(("cpu:" if m.group(1) == "cpu" else "") + m.group(2), notice=False)[0]


def gpu_build():
    return mx.runtime.Features().is_enabled("CUDA")


def device_name(ctx):
    """A human-readable name of the device behind a context (for table metadata)."""
    if ctx.device_type == "gpu":
        import subprocess
        with contextlib.suppress(OSError, subprocess.SubprocessError):  # no nvidia-smi
            out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader",
                                  "-i", str(ctx.device_id)], capture_output=True, text=True,
                                 timeout=10)
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip()
        return "gpu %d" % ctx.device_id
    with contextlib.suppress(OSError):  # no /proc/cpuinfo: a generic name below
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def runtime_info():
    """Backend facts that change timings: MXNet version, MKLDNN/CUDA, threads, engine."""
    feats = mx.runtime.Features()
    return {
        "mxnet_version": mx.__version__,
        "backend": {name.lower(): feats.is_enabled(name) for name in ("MKLDNN", "CUDA", "CUDNN")},
        "omp_threads": omp_threads(),
        "engine": os.environ.get("MXNET_ENGINE_TYPE", "ThreadedEnginePerDevice"),
    }
