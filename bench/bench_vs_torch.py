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
"""
import json
import os
import subprocess
import sys
from statistics import median

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def run_ours(args):
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
    return _last_json(cmd)


def _last_json(cmd):
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit("error: %s failed: %s" % (" ".join(cmd[:2]),
                                                   done.stderr.strip().splitlines()[-1:]))
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    from fbnet_symbol.cli import ArgumentParser
    from fbnet_symbol.settings import add_settings

    p = ArgumentParser(description=__doc__.split("\n")[0])
    add_settings(p, ["preset", "image_shape", "batch_size", "width_mult", "threads"],
                 title="as test.py (ours)", preset="search",
                 defaults={"preset": "paper", "image_shape": "3,32,32"})
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
    med = {"%s_%s" % (who, stage): median([r[who]["%s_samples_per_s" % stage] for r in rounds])
           for who in ("ours", "pytorch") for stage in ("weight", "theta")}
    result = dict(preset=args.preset, image_shape=list(args.image_shape),
                  batch_size=args.batch_size, width_mult=args.width_mult, rounds=rounds,
                  median=med, weight_ratio=med["ours_weight"] / med["pytorch_weight"],
                  theta_ratio=med["ours_theta"] / med["pytorch_theta"],
                  peak_rss_mib_ours=max(r["ours"]["peak_rss_mib"] for r in rounds),
                  peak_rss_mib_pytorch=max(r["pytorch"]["peak_rss_mib"] for r in rounds),
                  pytorch=rounds[0]["pytorch"]["framework"])
    if args.json:
        print(json.dumps(result))
    else:
        print("%s %s batch %d, median of %d rounds: weight step ours %.1f / PyTorch %.1f "
              "samples/s = %.2fx; theta %.1f / %.1f = %.2fx; peak RSS %.0f / %.0f MiB"
              % (args.preset, "x".join(map(str, args.image_shape)), args.batch_size,
                 args.rounds, med["ours_weight"], med["pytorch_weight"],
                 result["weight_ratio"], med["ours_theta"], med["pytorch_theta"],
                 result["theta_ratio"], result["peak_rss_mib_ours"],
                 result["peak_rss_mib_pytorch"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
