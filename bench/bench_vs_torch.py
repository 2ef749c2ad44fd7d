"""Our supernet step beside the same supernet in PyTorch, interleaved (a benchmark that prints figures).

    make torch-env                  # once: .venv-torch with a CPU build of torch
    python bench/bench_vs_torch.py --preset paper --image-shape 3,32,32
    python bench/bench_vs_torch.py --preset seed --image-shape 3,108,108 --rounds 1

Each round runs, in fresh processes one after the other, ``bench/bench_supernet.py`` (our
search Modules on one random batch, at ``--threads``: auto, one per core) and
``bench/torch_supernet.py`` in the PyTorch environment (the same space, layers and
candidates from the package's description, as public PyTorch FBNet supernets compute it,
at PyTorch's default threads), alternating which goes first. Both time with the search
loop's clock (``fbnet_symbol.train.meter.StepClock``) and keep OpenMP's threads spinning
between operators (``OMP_WAIT_POLICY=ACTIVE`` unless set), so the two figures mean the same
thing. It prints both weight- and theta-step figures per round, the medians, our weight
step over theirs, and both peak resident memories.

``--data rec`` times the two loops instead, on the same two ``.rec`` files of JPEGs
(scikit-learn's digits at the input size, written once; or ``--train-rec``/``--theta-rec``):
ours is ``test.py``'s search for one epoch (``bench/bench_loop.py``'s loop, its reader
decoding every batch), theirs the same epoch through PyTorch's ``DataLoader`` (one worker
process decoding ahead, ``--loader-workers``; the images decoded as our reader decodes
them). Each stage's figure runs from the end of its first step, data waits included.
"""
import json
import os
import subprocess
import sys
import tempfile
from statistics import median

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))  # bench_loop


def run_ours(args):
    if args.data == "rec":
        from bench_loop import run_loop
        return run_loop(args)
    cmd = [sys.executable, os.path.join(ROOT, "bench", "bench_supernet.py"), "--preset",
           args.preset, "--image-shape", ",".join(map(str, args.image_shape)), "--batch-size",
           str(args.batch_size), "--width-mult", str(args.width_mult), "--threads",
           str(args.threads), "--steps", str(args.steps), "--json"]
    return _last_json(cmd)


def run_theirs(args):
    cmd = [args.torch_python, os.path.join(ROOT, "bench", "torch_supernet.py"), "--preset",
           args.preset, "--image-shape", ",".join(map(str, args.image_shape)), "--batch-size",
           str(args.batch_size), "--width-mult", str(args.width_mult), "--steps",
           str(args.steps), "--json"]
    if args.data == "rec":
        cmd += ["--train-rec", args.train_rec, "--theta-rec", args.theta_rec,
                "--loader-workers", str(args.loader_workers)]
    return _last_json(cmd)


def _last_json(cmd):
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit("error: %s failed: %s" % (" ".join(cmd[:2]),
                                                   done.stderr.strip().splitlines()[-1:]))
    return json.loads(done.stdout.strip().splitlines()[-1])


def parse_args(argv=None):
    from fbnet_symbol.cli import ArgumentParser
    from fbnet_symbol.settings import add_settings

    p = ArgumentParser(description=__doc__.split("\n")[0])
    add_settings(p, ["preset", "image_shape", "batch_size", "width_mult", "threads",
                     "train_rec", "theta_rec"],
                 title="as test.py (ours)", preset="search",
                 defaults={"preset": "paper", "image_shape": "3,32,32"},
                 helps={"train_rec": "with --data rec: this .rec instead of generated JPEGs",
                        "theta_rec": "with --train-rec (the two imply --data rec)"})
    p.add_argument("--data", choices=("random", "rec"), default="random",
                   help="random: each side's step on one random batch (default); rec: each "
                        "side's loop reading the same .rec files")
    p.add_argument("--loader-workers", type=int, default=1,
                   help="PyTorch DataLoader processes with --data rec (default 1)")
    p.add_argument("--steps", type=int, default=5, help="timed steps per stage and run")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    p.add_argument("--torch-python", default=os.environ.get(
        "FBNET_TORCH_PYTHON", os.path.join(ROOT, ".venv-torch", "bin", "python")),
        help="the Python with torch (make torch-env; FBNET_TORCH_PYTHON)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if not os.path.isfile(args.torch_python):
        p.error("no PyTorch environment at %s: run make torch-env, or give --torch-python"
                % args.torch_python)
    if bool(args.train_rec) != bool(args.theta_rec):
        p.error("give --train-rec and --theta-rec together")
    if args.train_rec:
        args.data = "rec"  # files to read are given: the loops read them
        from fbnet_symbol.data.recordio import check_recordio
        from fbnet_symbol.errors import FBNetError
        try:  # before either side starts: a bad file is one line, not a child's traceback
            for rec in (args.train_rec, args.theta_rec):
                check_recordio(rec)
        except FBNetError as e:
            p.error(str(e))
    # what bench_loop's loop reads besides these flags: the space PyTorch's supernet builds,
    # the CPU, every batch decoded (as PyTorch's loader does)
    args.space, args.gpu, args.stream = "fbnet", None, True
    return args


def main(argv=None):
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        if args.data == "rec" and not args.train_rec:  # one pair of files read by both
            from bench_loop import write_bench_pair
            args.train_rec, args.theta_rec = write_bench_pair(folder, args)
        rounds = run_rounds(args)
    report(args, rounds)
    return 0


def run_rounds(args):
    rounds = []
    for r in range(args.rounds):
        first, second = (run_ours, run_theirs) if r % 2 == 0 else (run_theirs, run_ours)
        a = first(args)
        b = second(args)
        ours, theirs = (a, b) if first is run_ours else (b, a)
        rounds.append({"ours": ours, "pytorch": theirs})
        if not args.json:
            print("round %d: ours %.1f samples/s weight, %.1f theta (%d threads); PyTorch %.1f "
                  "weight, %.1f theta (%d threads)" % (
                      r + 1, ours["weight_samples_per_s"], ours["theta_samples_per_s"],
                      ours["omp_threads"], theirs["weight_samples_per_s"],
                      theirs["theta_samples_per_s"], theirs["threads"]), flush=True)
    return rounds


def report(args, rounds):
    med = {"%s_%s" % (who, stage): median([r[who]["%s_samples_per_s" % stage] for r in rounds])
           for who in ("ours", "pytorch") for stage in ("weight", "theta")}
    result = dict(preset=args.preset, image_shape=list(args.image_shape),
                  batch_size=args.batch_size, width_mult=args.width_mult, rounds=rounds,
                  median=med, weight_ratio=med["ours_weight"] / med["pytorch_weight"],
                  theta_ratio=med["ours_theta"] / med["pytorch_theta"],
                  peak_rss_mib_ours=max(r["ours"]["peak_rss_mib"] for r in rounds),
                  peak_rss_mib_pytorch=max(r["pytorch"]["peak_rss_mib"] for r in rounds),
                  pytorch=rounds[0]["pytorch"]["framework"], data=args.data)
    if args.json:
        print(json.dumps(result))
    else:
        print("%s %s batch %d, %s data, median of %d rounds: weight step ours %.1f / "
              "PyTorch %.1f samples/s = %.2fx; theta %.1f / %.1f = %.2fx; peak RSS %.0f / %.0f MiB"
              % (args.preset, "x".join(map(str, args.image_shape)), args.batch_size,
                 args.data, args.rounds, med["ours_weight"], med["pytorch_weight"],
                 result["weight_ratio"], med["ours_theta"], med["pytorch_theta"],
                 result["theta_ratio"], result["peak_rss_mib_ours"],
                 result["peak_rss_mib_pytorch"]))


if __name__ == "__main__":
    sys.exit(main())
