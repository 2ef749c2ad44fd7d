"""Supernet training throughput and peak memory (a benchmark that prints figures).

    python bench/bench_supernet.py --image-shape 3,32,32 --batch-size 32
    python bench/bench_supernet.py --preset seed --image-shape 3,108,108 --batch-size 32 --json
    python bench/bench_supernet.py --image-shape 3,32,32 --profile weight   # where the time goes

Times the weight step (SGD) and the theta step (Adam) of the real search Modules on
random data — every candidate of every layer computed, as in the search — and reports
samples/s (as the search loop defines it: ``fbnet_symbol.train.meter.StepClock``) and the
process's peak resident memory. OpenMP's threads spin between operators, as they
effectively do in the loop (``OMP_WAIT_POLICY=PASSIVE`` to see a lone step's sleep).
"""
import dataclasses
import json
import os
import resource
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def spin_between_operators():
    """Keep OpenMP's threads spinning between operators (unless ``OMP_WAIT_POLICY`` is
    set): in the search loop the reader and the loop's own work keep the cores awake, and
    a step timed alone, whose threads fall asleep between operators, ran 1.3-1.4x slower
    than the same step in the loop (docs/measurements.md, "Speed, part 3"). Before MXNet
    (or torch) loads."""
    os.environ.setdefault("OMP_WAIT_POLICY", "ACTIVE")


def main(argv=None):
    from fbnet_symbol.cli import ArgumentParser
    from fbnet_symbol.settings import add_settings, from_args

    p = ArgumentParser(description=__doc__.split("\n")[0])
    # the network and device flags are test.py's (fbnet_symbol.settings), a search's defaults
    add_settings(p, ["space", "preset", "image_shape", "batch_size", "width_mult", "gpu",
                     "threads"], title="network and devices", preset="search",
                 helps={"gpu": "devices, as test.py (default: the CPU)"})
    p.add_argument("--steps", type=int, default=5, help="timed steps per stage (default 5)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--batchnorm", choices=("auto", "onednn"), default="auto",
                   help="auto: as a run does it (on CPUs, MXNet's own BatchNorm kernel: "
                        "fbnet_symbol.space.cpu_graph); onednn: the graph as built, for a "
                        "before/after comparison")
    p.add_argument("--json", action="store_true")
    p.add_argument("--profile", choices=("weight", "theta"),
                   help="after timing, profile one more step of this stage and print the "
                        "operators that took the most time (MXNet's profiler, with "
                        "operator bulking off so that each operator is timed on its own)")
    args = p.parse_args(argv)
    from fbnet_symbol.cli import start
    spin_between_operators()
    start(args.threads)  # before MXNet loads
    if args.profile:  # must be set before MXNet builds its executors
        os.environ["MXNET_EXEC_BULK_EXEC_TRAIN"] = "0"

    import mxnet as mx
    import numpy as np
    from fbnet_symbol.dist.devices import parse_devices
    from fbnet_symbol.dist.cluster import create_kvstore
    from fbnet_symbol.latency.table import LatencyTable
    from fbnet_symbol.search.parts import loop_config, search_task_config
    from fbnet_symbol.search.task import build_supernet, theta_group
    from fbnet_symbol.space.spaces import decode_space
    from fbnet_symbol.threads import omp_threads
    from fbnet_symbol.train.trainer import WEIGHT, bind_modules, weight_optimizer_params

    # a search's settings on real data, with this command's network and devices
    settings = from_args(args, preset="search")
    shape = settings.image_shape or decode_space(settings.space, settings.preset).image_shape
    settings = dataclasses.replace(settings, image_shape=shape)
    layout = decode_space(settings.space, settings.preset, shape, settings.width_mult)
    table = LatencyTable([[1.0] * len(l.candidates) for l in layout.layers])
    search = search_task_config(settings)
    net = build_supernet(search, 10, table)
    contexts = parse_devices(args.gpu, notice=False)
    rss_before = peak_rss_mib()
    kv = create_kvstore("local", len(contexts))  # what a search on these devices uses
    # the search's default optimizers (the schedule's period: one epoch of 1000 steps)
    _, modules = bind_modules(net, contexts, args.batch_size, kv, settings.seed,
                              weight_optimizer_params(loop_config(settings), 1000),
                              [theta_group(net, search.theta_lr, search.theta_wd)],
                              native_bn=None if args.batchnorm == "auto" else False)
    weight_mod, theta_mod = modules[WEIGHT], modules["theta"]
    rng = np.random.RandomState(0)
    batch = net.batch(mx.nd.array(rng.uniform(-1, 1, (args.batch_size,) + shape)),
                      mx.nd.array(rng.randint(0, 10, args.batch_size)),
                      rng.gumbel(size=net.noise_shape(args.batch_size)), 5.0)
    result = {"space": args.space, "preset": args.preset, "image_shape": list(shape),
              "batch_size": args.batch_size, "width_mult": args.width_mult,
              "devices": [str(c) for c in contexts],
              "engine": os.environ.get("MXNET_ENGINE_TYPE", "ThreadedEnginePerDevice"),
              "batchnorm": args.batchnorm,
              "omp_wait_policy": os.environ["OMP_WAIT_POLICY"],
              "omp_threads": omp_threads()}
    for stage, mod in (("weight", weight_mod), ("theta", theta_mod)):
        speed = time_steps(mod, batch, args.batch_size, args.warmup, args.steps)
        result["%s_samples_per_s" % stage] = speed
        result["%s_step_ms" % stage] = 1e3 * args.batch_size / speed
    result["peak_rss_mib"] = peak_rss_mib()
    if args.profile:
        result["profile"] = profile_step(mx, weight_mod if args.profile == "weight" else theta_mod,
                                         batch)
    result["rss_before_bind_mib"] = rss_before
    if args.json:
        print(json.dumps(result))
    else:
        print("%s/%s %s batch %d on %s, %d threads: weight step %.1f samples/s (%.0f ms), "
              "theta step %.1f samples/s (%.0f ms), peak RSS %.0f MiB"
              % (args.space, args.preset, "x".join(map(str, shape)), args.batch_size,
                 ",".join(result["devices"]), result["omp_threads"],
                 result["weight_samples_per_s"],
                 result["weight_step_ms"], result["theta_samples_per_s"],
                 result["theta_step_ms"], result["peak_rss_mib"]))
    if args.profile and not args.json:
        print("%s step, time per operator type (one step):" % args.profile)
        for row in result["profile"]:
            print("  %-32s %6d calls %9.1f ms %5.1f%%" % (row["operator"], row["calls"],
                                                        row["ms"], row["percent"]))
    return 0


def time_steps(mod, batch, batch_size, warmup, steps):
    """Samples/s of ``steps`` steps after ``warmup``, each step done as the search loop does
    it (outputs read, then the update issued) and timed by the loop's own clock
    (:class:`~fbnet_symbol.train.meter.StepClock`): the same figure as ``history.json``'s."""
    from fbnet_symbol.train.meter import StepClock
    clock = StepClock()
    for i in range(warmup + 1 + steps):  # the first stamp starts the clock
        mod.forward_backward(batch)
        [out.asnumpy() for out in mod.get_outputs()[:2]]  # the loop reads logits and loss
        mod.update()
        if i >= warmup:
            clock.stamp(batch_size)
    return clock.samples_per_s()


def profile_step(mx, mod, batch, top=15):
    """The operator types that took the most time in one step, from MXNet's profiler."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        mx.profiler.set_config(profile_all=True, aggregate_stats=True,
                               filename=os.path.join(tmp, "profile.json"))
        mx.profiler.set_state("run")
        mod.forward_backward(batch)
        mod.update()
        mx.nd.waitall()
        mx.profiler.set_state("stop")
        table = mx.profiler.dumps(format="json", reset=True)
    stats = json.loads(table).get("Time", {}).get("operator", {})
    total = sum(v["Total"] for v in stats.values()) or 1.0
    rows = sorted(({"operator": name, "calls": v["Count"], "ms": v["Total"],
                    "percent": 100.0 * v["Total"] / total} for name, v in stats.items()),
                  key=lambda r: -r["ms"])
    return rows[:top]


if __name__ == "__main__":
    sys.exit(main())
