"""The data tools: ``fbnet data pack | split | index | check | digits | cluttered-digits | pack-faces | make-pairs | synthetic-faces``."""
import os
import sys

from ..cli import ArgumentParser, run
from ..errors import FBNetError
from ..faces.files import (draw_pairs, pack_faces, pairs_from_lfw_list, write_pair_set,
                           write_synthetic_faces)
from ..space.spaces import parse_image_shape
from .check import check_data, describe
from .digits import cluttered_digits, embedded_digits
from .files import build_index, pack_folder, split_records
from .recordio import idx_path


def main(argv=None):
    p = ArgumentParser(prog="fbnet data",
                       description="RecordIO data tools")
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("pack", help="pack DIR/<class>/<image> into OUT.rec/.idx")
    a.add_argument("folder")
    a.add_argument("out", help="output prefix (writes OUT.rec, OUT.idx, OUT.classes.txt)")
    a.add_argument("--resize", type=int, help="resize the shorter side to this many pixels")
    a.add_argument("--quality", type=int, default=95, help="JPEG quality (default 95)")
    b = sub.add_parser("split", help="split one .rec into a weight and a theta split")
    b.add_argument("rec")
    b.add_argument("--out-a", required=True, help="prefix of the first part (e.g. train)")
    b.add_argument("--out-b", required=True, help="prefix of the second part (e.g. theta)")
    b.add_argument("--ratio", type=float, default=0.8, help="share of the first part (0.8)")
    b.add_argument("--seed", type=int, default=0)
    c = sub.add_parser("index", help="rebuild REC's .idx")
    c.add_argument("rec")
    d = sub.add_parser("check", help="validate a .rec/.idx pair")
    d.add_argument("rec")
    e = sub.add_parser("digits", help="build the embedded digits data set in the cache")
    e.add_argument("--cache-dir")
    e2 = sub.add_parser("cluttered-digits", help="build the cluttered digits task in the cache "
                        "(32x32 digits under affine maps, noise, tint and clutter)")
    e2.add_argument("--cache-dir")
    e2.add_argument("--seed", type=int, default=0)
    f = sub.add_parser("pack-faces", help="pack DIR/<identity>/<image> into InsightFace's "
                       "identity-indexed OUT.rec/.idx + property")
    f.add_argument("folder")
    f.add_argument("out", help="output prefix, e.g. faces/train (property goes beside it)")
    f.add_argument("--size", help="H,W: resize every image (default: keep; aligned face "
                   "crops are usually 112,112)")
    g = sub.add_parser("make-pairs", help="write a verification pair set (.bin) from LFW's "
                       "pairs.txt or drawn from DIR/<identity>/<image>")
    g.add_argument("out", help="the .bin to write")
    g.add_argument("--pairs-txt", help="LFW-style pairs list (name i j / name1 i name2 j)")
    g.add_argument("--images", help="with --pairs-txt: the folder of name/name_NNNN.jpg")
    g.add_argument("--folder", help="draw pairs from DIR/<identity>/<image> instead")
    g.add_argument("--num-pairs", type=int, default=6000, help="with --folder (6000)")
    g.add_argument("--seed", type=int, default=0)
    h = sub.add_parser("synthetic-faces", help="write the offline face-like demo set: "
                       "OUT/train.rec (identity-indexed) + property, OUT/flat/ and "
                       "OUT/pairs.bin (identities not in train)")
    h.add_argument("out")
    h.add_argument("--identities", type=int, default=200)
    h.add_argument("--per-identity", type=int, default=10)
    h.add_argument("--size", type=int, default=32)
    h.add_argument("--pairs", type=int, default=600)
    h.add_argument("--seed", type=int, default=0)
    h.add_argument("--variation", type=float, default=1.0,
                   help="jitter of pose, light and noise, times the demo's (the study's "
                        "faces task: see fbnet study --task synthetic-faces)")
    args = p.parse_args(argv)
    if args.cmd == "pack":
        n, classes = pack_folder(args.folder, args.out, args.resize, args.quality)
        print("packed %d images of %d classes into %s.rec" % (n, len(classes), args.out))
    elif args.cmd == "split":
        na, nb = split_records(args.rec, args.out_a, args.out_b, args.ratio, args.seed)
        print("wrote %s.rec (%d records) and %s.rec (%d records)" % (args.out_a, na, args.out_b, nb))
    elif args.cmd == "index":
        print("indexed %d records into %s" % (build_index(args.rec), idx_path(args.rec)))
    elif args.cmd == "check":
        print(describe(check_data(args.rec)))
    elif args.cmd == "pack-faces":
        size = tuple(parse_image_shape("3," + args.size)[1:]) if args.size else None
        n, ids = pack_faces(args.folder, args.out, size)
        print("packed %d images of %d identities into %s.rec (identity-indexed) and %s"
              % (n, ids, args.out, os.path.join(os.path.dirname(args.out) or ".", "property")))
    elif args.cmd == "make-pairs":
        if bool(args.pairs_txt) == bool(args.folder) or bool(args.pairs_txt) != bool(args.images):
            raise FBNetError("give either --pairs-txt FILE --images DIR, or --folder DIR")
        pairs = (pairs_from_lfw_list(args.pairs_txt, args.images) if args.pairs_txt
                 else draw_pairs(args.folder, args.num_pairs, args.seed))
        print("wrote %d pairs to %s" % (write_pair_set(args.out, pairs), args.out))
    elif args.cmd == "synthetic-faces":
        for k, v in write_synthetic_faces(args.out, args.identities, args.per_identity,
                                          args.size, args.pairs, args.seed,
                                          args.variation).items():
            print("%s: %s" % (k, v))
    elif args.cmd in ("digits", "cluttered-digits"):
        paths = embedded_digits(args.cache_dir) if args.cmd == "digits" else \
            cluttered_digits(args.cache_dir, seed=args.seed)
        print("\n".join("%s: %s" % kv for kv in paths.items()))
    return 0


if __name__ == "__main__":
    run(main, sys.argv[1:])
