"""Turn theta into architectures, or describe one architecture.

    python sample.py --theta model/theta-result/epoch_5_theta.txt --output archs/
    python sample.py --load-model-path model --mode sample --num 5 --output archs/
    python sample.py --arch fbnet_b --preset paper --image-shape 3,224,224 --num-classes 1000

With --theta / --load-model-path: the most likely architecture (argmax of P_theta =
softmax(theta) per layer) or N distinct samples from P_theta, each with its predicted
latency (from the search's latency table), multiply-adds, parameters and probability;
one architecture JSON per network in --output, a summary, and a PNG of P_theta.
With --arch: a per-layer table of one architecture. Counts are read off the built
symbol's inferred shapes (fbnet_symbol.space.profile).
"""
import json
import logging
import os

import numpy as np

from ..cli import ArgumentParser, format_count, start
from ..errors import FBNetError
from ..settings import add_settings, search_default
from ..space.architecture import NAMED_ARCHITECTURES, load_architecture

logger = logging.getLogger("sample")


def parse_args(argv):
    p = ArgumentParser(description=__doc__.split("\n")[0])
    add_settings(p, ["arch", "load_model_path", "seed", "lut", "space", "preset", "image_shape",
                     "width_mult"], title="source and network",
                 defaults={"space": None, "preset": None, "width_mult": None},
                 helps={"arch": "describe this architecture: a shipped name (%s), an "
                                "architecture .json file or a JSON string"
                                % ", ".join(NAMED_ARCHITECTURES),
                        "load_model_path": "a search's folder or supernet .params",
                        "seed": "seed of --mode sample",
                        "lut": "latency table (default: the search's lut.json)",
                        "space": "with a theta file outside a search folder: the search's "
                                 "space (default: %s)" % search_default("space"),
                        "preset": "build in this preset instead of the architecture's own",
                        "image_shape": "C,H,W (default: the search's, else the preset's)",
                        "width_mult": "override the width multiplier"})
    p.add_argument("--theta", help="a theta text file (theta-result/epoch_N_theta.txt)")
    p.add_argument("--mode", choices=["argmax", "sample"], default="argmax")
    p.add_argument("--num", type=int, default=5, help="distinct samples (--mode sample)")
    p.add_argument("--output", help="folder for the architecture JSONs, summary and plot")
    p.add_argument("--num-classes", type=int,
                   help="default: the search's class count, else 1000")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    add_settings(p, ["threads"])
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    start(args.threads, announce=False)
    given = [n for n in ("arch", "theta", "load_model_path") if getattr(args, n)]
    if len(given) != 1:
        raise FBNetError("give exactly one of --arch, --theta or --load-model-path")
    if args.arch:
        return describe(args)
    return sample_theta(args)


def sample_theta(args):
    from ..fileio import atomic_write_json
    from ..search import sampling
    from ..search import theta as theta_
    from ..search.plots import plot_distribution

    if not args.output:
        raise FBNetError("give --output DIR for the architecture JSONs")
    source = args.theta or args.load_model_path
    cfg, lut_path, layout, theta = _theta_and_layout(args, source)
    num_classes = args.num_classes or cfg.get("num_classes") or 1000
    table = _table(lut_path, layout)
    chosen = sampling.choose(layout, theta, args.mode, args.num, args.seed)
    rows = [_architecture_row(args, cfg, layout, theta, table, num_classes, i, blocks)
            for i, blocks in enumerate(chosen)]
    summary = {"source": os.path.abspath(source), "mode": args.mode, "seed": args.seed,
               "space": layout.space.name, "preset": layout.preset.name,
               "image_shape": list(layout.image_shape), "num_classes": num_classes,
               "lut": lut_path, "temperature": 1.0, "architectures": rows}
    atomic_write_json(os.path.join(args.output, "summary.json"), summary)
    plot_distribution(layout, theta_.probabilities(theta),
                      os.path.join(args.output, "distribution.png"),
                      "P_theta = softmax(theta); boxes: %s" % rows[0]["name"],
                      {l.name: b for l, b in zip(layout.layers, chosen[0])})
    if args.json:
        print(json.dumps(summary))
    else:
        _print_rows(rows, args.output, table)
    return 0


def _theta_and_layout(args, source):
    """The search's settings (its args.json, or the flags), its latency table's path, the
    layout and θ read from ``source`` (a θ text file or a checkpoint)."""
    from ..checkpoint import find_checkpoint
    from ..latency.table import load_table
    from ..search import sampling
    from ..search import theta as theta_
    from ..space.architecture import layout_described

    cfg, lut_path = sampling.run_settings(source)
    if cfg is None:
        cfg = {name: getattr(args, name, None) or search_default(name)
               for name in ("space", "preset", "width_mult", "model_type")}
        logger.warning("no args.json of a search found near %s: assuming space %s, preset %s",
                       source, cfg["space"], cfg["preset"])
    else:
        cfg = dict(cfg)
        if args.preset or args.space or args.width_mult:
            raise FBNetError("%s belongs to a search with its own settings (args.json); do not "
                             "pass --space/--preset/--width-mult" % source)
    lut_path = args.lut or lut_path
    shape = args.image_shape or (
        tuple(cfg["image_shape"]) if cfg.get("image_shape") else None)
    if shape is None and lut_path:  # the table knows the search's input size
        shape = tuple(load_table(lut_path).meta.get("image_shape") or ()) or None
    layout = layout_described(cfg, shape)
    if args.theta:
        theta = theta_.read_theta_text(args.theta, layout)
    else:
        theta = theta_.theta_from_params(find_checkpoint(args.load_model_path).load_params()[0],
                                         layout)
    return cfg, lut_path, layout, theta


def _table(lut_path, layout):
    from ..latency.table import load_table
    table = load_table(lut_path).check(layout) if lut_path else None
    if table is None:
        logger.warning("no latency table (--lut): predicted latencies are left out")
    return table


def _architecture_row(args, cfg, layout, theta, table, num_classes, i, blocks):
    """One chosen architecture written to its JSON, described by a row of the summary."""
    from ..fileio import atomic_write
    from ..search import theta as theta_
    from ..space.architecture import architecture_described

    name = "argmax" if args.mode == "argmax" else "sample_%02d" % i
    arch = architecture_described(cfg, blocks, name)
    from ..space.profile import profile_architecture  # loads MXNet: after start()

    prof = profile_architecture(arch, num_classes, layout.image_shape)
    row = {"name": name, "blocks": list(blocks), "macs": prof["macs"],
           "params": prof["params"],
           "log_probability": theta_.log_probability(layout, theta, blocks),
           "file": os.path.join(args.output, name + ".json")}
    row["probability"] = float(np.exp(row["log_probability"]))
    if table is not None:
        row["latency_blocks_ms"] = table.blocks_latency(layout, blocks)
        if table.fixed and "overhead_ms" in table.meta:
            row["latency_ms"] = table.predict(arch, layout)
    atomic_write(row["file"], arch.to_json())
    return row


def _print_rows(rows, output, table):
    fmt = "%-10s %12s %10s %9s %12s  %s"
    print(fmt % ("network", "latency", "MACs", "params", "probability", "blocks"))
    for r in rows:
        lat = r.get("latency_ms", r.get("latency_blocks_ms"))
        print(fmt % (r["name"], "%.3f ms" % lat if lat is not None else "n/a",
                     format_count(r["macs"]), format_count(r["params"]),
                     "%.3g" % r["probability"], " ".join(r["blocks"])))
    print("wrote %d architecture JSON(s), summary.json and distribution.png to %s"
          % (len(rows), output))
    if rows and "latency_ms" not in rows[0] and table is not None:
        print("(latency: sum of the searchable layers only — the table has no fixed parts)")


def describe(args):
    if args.num_classes is None:
        args.num_classes = 1000
    arch = load_architecture(args.arch).overridden(args.preset, args.width_mult)
    image_shape = args.image_shape
    if args.num_classes < 2:
        raise FBNetError("--num-classes must be at least 2")
    layout = arch.layout(image_shape)
    from ..space.profile import profile_architecture  # loads MXNet: after start()

    prof = profile_architecture(arch, args.num_classes, layout.image_shape)
    if args.json:
        print(json.dumps({
            "arch": arch.name, "space": arch.space, "preset": arch.preset,
            "image_shape": list(layout.image_shape), "num_classes": args.num_classes,
            "width_mult": arch.width_mult, "head": arch.head.type,
            "blocks": list(arch.blocks), "macs": prof["macs"], "params": prof["params"],
            "layers": prof["rows"]}))
        return 0
    print("%s  space=%s preset=%s input=%s classes=%d head=%s" % (
        arch.name or "architecture", arch.space, arch.preset,
        "x".join(map(str, layout.image_shape)), args.num_classes, arch.head.type))
    fmt = "%-11s %-18s %-14s %10s %10s"
    print(fmt % ("part", "block", "output", "MACs", "params"))
    for r in prof["rows"]:
        print(fmt % (r["part"], r["block"], "x".join(map(str, r["out_shape"])),
                     format_count(r["macs"]), format_count(r["params"])))
    print(fmt % ("total", "", "", format_count(prof["macs"]), format_count(prof["params"])))
    return 0

