"""Describe an architecture: per-layer output shapes, multiply-adds and parameters.

    python sample.py --arch fbnet_b --preset paper --image-shape 3,224,224 --num-classes 1000
    python sample.py --arch my_arch.json --json

Counts are read off the built symbol's inferred shapes (fbnet_symbol.profile).
"""
import json

from fbnet_symbol.architecture import NAMED_ARCHITECTURES, load_architecture
from fbnet_symbol.cli import ArgumentParser, format_count, run
from fbnet_symbol.errors import FBNetError
from fbnet_symbol.profile import profile_architecture
from fbnet_symbol.search_space import PRESETS, parse_image_shape


def parse_args(argv):
    p = ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", required=True,
                   help="a shipped name (%s), an architecture .json file or a JSON string"
                        % ", ".join(NAMED_ARCHITECTURES))
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help="build in this preset instead of the architecture's own")
    p.add_argument("--image-shape", help="C,H,W (default: the preset's)")
    p.add_argument("--num-classes", type=int, default=1000, help="default: 1000")
    p.add_argument("--width-mult", type=float, help="override the width multiplier")
    p.add_argument("--json", action="store_true", help="print one JSON object instead")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    arch = load_architecture(args.arch)
    changes = {}
    if args.preset:
        changes["preset"] = args.preset
    if args.width_mult is not None:
        changes["width_mult"] = args.width_mult
    if changes:
        arch = arch.replace(**changes)
    image_shape = parse_image_shape(args.image_shape) if args.image_shape else None
    if args.num_classes < 2:
        raise FBNetError("--num-classes must be at least 2")
    layout = arch.layout(image_shape)
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


if __name__ == "__main__":
    run(main)
