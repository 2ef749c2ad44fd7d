"""The data tools: ``fbnet data pack | split | index | check | digits | cluttered-digits | pack-faces | make-pairs | synthetic-faces``."""
import os
import sys

from ..cli import ArgumentParser, add_threads_flag, run, start
from ..errors import FBNetError
from ..faces.files import (draw_pairs, pack_faces, pairs_from_lfw_list, write_pair_set,
                           write_synthetic_faces)
from ..space.spaces import parse_image_shape
from .check import check_data, describe
from .digits import cluttered_digits, embedded_digits
from .files import build_index, pack_folder, split_records
from .recordio import idx_path


def _record_commands(sub):
    a = sub.add_parser("pack", help="pack DIR/<class>/<image> into OUT.rec/.idx")
    a.add_argument("folder")
    a.add_argument("out", help="output prefix (writes OUT.rec, OUT.idx, OUT.classes.txt)")
    a.add_argument("--resize", type=int, help="resize the shorter side to this many pixels")
    a.add_argument("--quality", type=int, default=95, help="JPEG quality (default 95)")
    a.set_defaults(run=_pack)
    a = sub.add_parser("split", help="split one .rec into a weight and a theta split")
    a.add_argument("rec")
    a.add_argument("--out-a", required=True, help="prefix of the first part (e.g. train)")
    a.add_argument("--out-b", required=True, help="prefix of the second part (e.g. theta)")
    a.add_argument("--ratio", type=float, default=0.8, help="share of the first part (0.8)")
    a.add_argument("--seed", type=int, default=0)
    a.set_defaults(run=_split)
    a = sub.add_parser("index", help="rebuild REC's .idx")
    a.add_argument("rec")
    a.set_defaults(run=lambda args: print("indexed %d records into %s" % (
        build_index(args.rec), idx_path(args.rec))))
    a = sub.add_parser("check", help="validate a .rec/.idx pair")
    a.add_argument("rec")
    a.set_defaults(run=lambda args: print(describe(check_data(args.rec))))
    a = sub.add_parser("digits", help="build the embedded digits data set in the cache")
    a.add_argument("--cache-dir")
    a.set_defaults(run=lambda args: _print_paths(embedded_digits(args.cache_dir)))
    a = sub.add_parser("cluttered-digits", help="build the cluttered digits task in the "
                       "cache (32x32 digits under affine maps, noise and tint)")
    a.add_argument("--cache-dir")
    a.add_argument("--seed", type=int, default=0)
    a.set_defaults(run=lambda args: _print_paths(cluttered_digits(args.cache_dir,
                                                                  seed=args.seed)))


def _face_commands(sub):
    a = sub.add_parser("pack-faces", help="pack DIR/<identity>/<image> into InsightFace's "
                       "identity-indexed OUT.rec/.idx + property")
    a.add_argument("folder")
    a.add_argument("out", help="output prefix, e.g. faces/train (property goes beside it)")
    a.add_argument("--size", help="H,W: resize every image (default: keep; aligned face "
                   "crops are usually 112,112)")
    a.set_defaults(run=_pack_faces)
    a = sub.add_parser("make-pairs", help="write a verification pair set (.bin) from LFW's "
                       "pairs.txt or drawn from DIR/<identity>/<image>")
    a.add_argument("out", help="the .bin to write")
    a.add_argument("--pairs-txt", help="LFW-style pairs list (name i j / name1 i name2 j)")
    a.add_argument("--images", help="with --pairs-txt: the folder of name/name_NNNN.jpg")
    a.add_argument("--folder", help="draw pairs from DIR/<identity>/<image> instead")
    a.add_argument("--num-pairs", type=int, default=6000, help="with --folder (6000)")
    a.add_argument("--seed", type=int, default=0)
    a.set_defaults(run=_make_pairs)
    a = sub.add_parser("synthetic-faces", help="write the offline face-like demo set: "
                       "OUT/train.rec (identity-indexed) + property, OUT/flat/ and "
                       "OUT/pairs.bin (identities not in train)")
    a.add_argument("out")
    a.add_argument("--identities", type=int, default=200)
    a.add_argument("--per-identity", type=int, default=10)
    a.add_argument("--size", type=int, default=32)
    a.add_argument("--pairs", type=int, default=600)
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--variation", type=float, default=1.0,
                   help="jitter of pose, light and noise, times the demo's (the study's "
                        "faces task: see fbnet study --task synthetic-faces)")
    a.set_defaults(run=lambda args: _print_paths(write_synthetic_faces(
        args.out, args.identities, args.per_identity, args.size, args.pairs, args.seed,
        args.variation)))


def _print_paths(paths):
    print("\n".join("%s: %s" % kv for kv in paths.items()))


def _pack(args):
    n, classes = pack_folder(args.folder, args.out, args.resize, args.quality)
    print("packed %d images of %d classes into %s.rec" % (n, len(classes), args.out))


def _split(args):
    na, nb = split_records(args.rec, args.out_a, args.out_b, args.ratio, args.seed)
    print("wrote %s.rec (%d records) and %s.rec (%d records)" % (args.out_a, na, args.out_b, nb))


def _pack_faces(args):
    size = tuple(parse_image_shape("3," + args.size)[1:]) if args.size else None
    n, ids = pack_faces(args.folder, args.out, size)
    print("packed %d images of %d identities into %s.rec (identity-indexed) and %s"
          % (n, ids, args.out, os.path.join(os.path.dirname(args.out) or ".", "property")))


def _make_pairs(args):
    if bool(args.pairs_txt) == bool(args.folder) or bool(args.pairs_txt) != bool(args.images):
        raise FBNetError("give either --pairs-txt FILE --images DIR, or --folder DIR")
    pairs = (pairs_from_lfw_list(args.pairs_txt, args.images) if args.pairs_txt
             else draw_pairs(args.folder, args.num_pairs, args.seed))
    print("wrote %d pairs to %s" % (write_pair_set(args.out, pairs), args.out))


def main(argv=None):
    p = ArgumentParser(prog="fbnet data", description="RecordIO data tools")
    add_threads_flag(p)
    sub = p.add_subparsers(dest="cmd", required=True)
    _record_commands(sub)
    _face_commands(sub)
    args = p.parse_args(argv)
    start(args.threads, announce=False)  # before MXNet loads: check, pack, index decode
    args.run(args)
    return 0


if __name__ == "__main__":
    run(main, sys.argv[1:])
