"""Measure a latency lookup table on this device, or validate one against whole networks.

    python block_speed_test.py --space fbnet --preset seed --image-shape 3,108,108 \\
        --gpu cpu --batch-size 1 --output speed.txt
    python block_speed_test.py --validate speed.json --num-archs 12 [--json]

Writes the seed's ``speed.txt`` (one line per searchable layer, one ms value per candidate)
and its ``speed.json`` twin with metadata; validation writes ``<stem>_validation.csv`` and
``<stem>_validation.png`` beside the table.
"""
import json
import logging
import os

from ..cli import ArgumentParser, start
from ..errors import FBNetError
from ..settings import add_settings
from ..space.heads import HeadConfig
from ..space.spaces import decode_space
from ..threads import choose_threads

logger = logging.getLogger("block_speed_test")


def parse_args(argv):
    p = ArgumentParser(description=__doc__.split("\n")[0])
    # the network and device flags are test.py's own (one definition: fbnet_symbol.settings)
    m = add_settings(p, ["space", "preset", "image_shape", "width_mult", "gpu", "lut_batch_size",
                         "model_type", "feature_dim", "seed", "threads"], title="measure",
                     preset="search", flags={"lut_batch_size": ("--batch-size",)},
                     helps={"gpu": "one device: a GPU number, or cpu (default: GPU 0 if any, "
                                   "else the CPU)",
                            "lut_batch_size": "batch size of the timed blocks (the seed's: 1)",
                            "model_type": "head timed as a fixed part",
                            "seed": "--validate: seed of the random architectures",
                            "threads": "CPU threads of MXNet's operators: a number, or auto: "
                                       "for --validate the table's own count, else as test.py"})
    m.add_argument("--num-classes", type=int, default=1000,
                   help="classes of the head timed as a fixed part (default: 1000)")
    m.add_argument("--output", default="speed.txt",
                   help="the .txt table; its .json twin gets the same stem (default speed.txt)")
    v = p.add_argument_group("validate")
    v.add_argument("--validate", metavar="SPEED_JSON",
                   help="compare the table's predictions with timed whole networks")
    v.add_argument("--num-archs", type=int, default=10,
                   help="random architectures to time (FBNet-A/B/C are added where the "
                        "table covers them; default 10)")
    v.add_argument("--arch", action="append",
                   help="time this architecture (JSON or shipped name) instead of random "
                        "ones; repeatable")
    v.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quick", action="store_true",
                   help="few repeats: a rough table in seconds (for tests and smoke runs)")
    return p.parse_args(argv)


def single_device(spec):
    from ..dist.devices import parse_devices
    contexts = parse_devices(spec)
    if len(contexts) != 1:
        raise FBNetError("latency is measured on one device; give one, e.g. --gpu 0 or --gpu cpu")
    return contexts[0]


def measure(args, policy):
    from ..latency.measure import measure_table

    if args.lut_batch_size < 1:
        raise FBNetError("--batch-size must be at least 1")
    shape = args.image_shape
    layout = decode_space(args.space, args.preset, shape, args.width_mult)
    ctx = single_device(args.gpu)
    entries = sum(len(l.candidates) for l in layout.layers)
    logger.info("measuring %s/%s at %s, batch %d, on %s: %d layers, %d entries",
                layout.space.name, layout.preset.name,
                "x".join(map(str, layout.image_shape)), args.lut_batch_size, ctx,
                layout.num_layers, entries)
    table = measure_table(layout, ctx, args.lut_batch_size, args.num_classes,
                          HeadConfig(type=args.model_type), args.feature_dim, policy)
    txt, js = table.save(args.output)
    print("wrote %s and %s (%d unique blocks timed in %.0f s; per-call overhead %.3f ms)"
          % (txt, js, table.meta["unique_measurements"], table.meta["seconds"],
             table.meta["overhead_ms"]))
    return 0


def validate(args, policy):
    from ..latency.table import load_table
    from ..latency.validate import table_layout, validate_table, write_report

    table = load_table(args.validate)
    if not table.meta:
        raise FBNetError("%s has no metadata; validation needs the .json twin written by "
                         "fbnet measure (block_speed_test.py)" % args.validate)
    table.check(table_layout(table))
    from ..dist.devices import context_from_string
    ctx = (single_device(args.gpu) if args.gpu is not None
           else context_from_string(table.meta["device"]))
    if str(ctx) != table.meta["device"]:
        logger.warning("table measured on %s, validating on %s", table.meta["device"], ctx)
    archs = None
    if args.arch:
        from ..space.architecture import load_architecture
        archs = [load_architecture(a, expect_space=table.meta["space"]) for a in args.arch]
    summary = validate_table(table, ctx, args.num_archs, args.seed, policy,
                             progress=not args.json, archs=archs)
    stem = os.path.splitext(args.validate)[0]
    csv_path, png_path = stem + "_validation.csv", stem + "_validation.png"
    write_report(summary, csv_path, png_path, title="%s/%s %s batch %d on %s" % (
        table.meta["space"], table.meta["preset"],
        "x".join(map(str, table.meta["image_shape"])), table.meta["batch_size"],
        table.meta.get("device_name", table.meta["device"])))
    summary["csv"], summary["png"] = csv_path, png_path
    if args.json:
        print(json.dumps(summary))
        return 0
    fmt = "%-10s %12s %12s %9s"
    print(fmt % ("network", "predicted", "measured", "error"))
    for r in summary["networks"]:
        print(fmt % (r["name"], "%.3f ms" % r["predicted_ms"], "%.3f ms" % r["measured_ms"],
                     "%+.1f%%" % r["error_pct"]))
    print("%d network%s: median |error| %.1f%%%s" % (
        summary["num_networks"], "s" if summary["num_networks"] > 1 else "",
        summary["median_abs_error_pct"], ", Spearman %.3f" % summary["spearman"]
        if summary["num_networks"] > 1 else ""))
    print("device speed now / when the table was measured (its reference network): %.2f; "
          "median |error| at the current speed: %.1f%%" % (
              summary["device_speed_ratio"], summary["median_abs_error_pct_at_current_speed"]))
    if len(summary["group_speed_factors"]) > 1:
        print("timed in %d groups; scaled to the fastest group's speed by %s (a reference "
              "graph timed in every group)" % (len(summary["group_speed_factors"]), ", ".join(
                  "%.3f" % f for f in summary["group_speed_factors"])))
    print("wrote %s and %s" % (csv_path, png_path))
    return 0


def _threads(args):
    """(count, why): a table is validated with the threads it was measured with, unless
    --threads says otherwise."""
    if args.validate and args.threads == "auto":
        from ..latency.table import load_table
        measured_with = load_table(args.validate).meta.get("omp_threads")
        if measured_with:
            return measured_with, "the table's"
    return choose_threads(args.threads)


def main(argv=None):
    args = parse_args(argv)
    start(chosen=_threads(args))
    from ..latency.timing import QUICK, TimingPolicy
    policy = QUICK if args.quick else TimingPolicy()
    if args.validate:
        if args.num_archs < 2 and not args.arch:
            raise FBNetError("--num-archs must be at least 2 (a rank correlation needs two)")
        return validate(args, policy)
    return measure(args, policy)

