"""The search loop's own throughput beside the data-free supernet step (a benchmark that prints figures).

    python bench/bench_loop.py --preset paper --image-shape 3,32,32
    python bench/bench_loop.py --preset paper --image-shape 3,64,64 --threads 1 --rounds 3
    python bench/bench_loop.py --preset seed --image-shape 3,108,108 --steps 3 --rounds 1

Each round runs, in fresh processes one after the other:

* the **data-free step**: ``bench/bench_supernet.py`` (the search Modules on one random
  batch, each step done and timed as the loop does it — the same clock,
  ``fbnet_symbol.train.meter.StepClock`` — without reading data);
* the **search loop**: ``test.py``'s trainer for one epoch on a real ``.rec`` — JPEG
  images (scikit-learn's digits at the input size, or ``--train-rec``) read by the
  package's reader — of ``--steps`` timed weight steps and as many θ steps; the samples/s
  the trainer records per stage (``history.json``: from the end of the first step, data
  waits, logging and bookkeeping included).

It prints both figures per round, their medians and the ratio loop / data-free, so a loss
inside the loop (a slow reader, a data iterator that slows MXNet's operators) shows. Each
round alternates which goes first, as this machine's speed drifts within minutes. ``--stream`` makes the
reader decode every batch instead of serving the small bench set from memory (what a data
set larger than the reader's memory cache gets).
"""
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def write_bench_data(folder, size, count, seed=0):
    """``count`` JPEG images of scikit-learn's digits at ``size``, as a flat ``.rec``."""
    import cv2
    import numpy as np
    from sklearn.datasets import load_digits

    from fbnet_symbol.data.files import write_images

    digits = load_digits()
    rng = np.random.RandomState(seed)
    picks = rng.randint(len(digits.images), size=count)
    images = [cv2.cvtColor(cv2.resize(np.clip(digits.images[i] * 16, 0, 255).astype(np.uint8),
                                      (size, size), interpolation=cv2.INTER_CUBIC),
                           cv2.COLOR_GRAY2BGR) for i in picks]
    prefix = os.path.join(folder, "bench-%d" % seed)
    write_images(prefix, images, digits.target[picks], fmt=".jpg")
    return prefix + ".rec"


def write_bench_pair(folder, args):
    """(train .rec, theta .rec) in ``folder``: enough images for ``args.steps`` timed steps
    and the untimed first one, at the input size."""
    count = (args.steps + 1) * args.batch_size
    return tuple(write_bench_data(folder, args.image_shape[1], count, seed) for seed in (0, 1))


def loop_argv(args, folder):
    """test.py's flags for one epoch of the search on a real .rec written in ``folder``
    (``--steps`` timed weight steps and as many θ steps)."""
    from fbnet_symbol.space.spaces import decode_space

    shape = args.image_shape
    train, theta = (args.train_rec, args.theta_rec) if args.train_rec else \
        write_bench_pair(folder, args)
    layout = decode_space(args.space, args.preset, shape, args.width_mult)
    lut = os.path.join(folder, "lut.txt")  # latencies do not change the work of a step
    with open(lut, "w") as f:
        f.write("".join(" ".join(["1.0"] * len(l.candidates)) + "\n" for l in layout.layers))
    argv = ["--space", args.space, "--preset", args.preset, "--image-shape", shape_text(args),
            "--width-mult", str(args.width_mult), "--batch-size", str(args.batch_size),
            "--epochs", "1", "--warmup-epochs", "0", "--train-rec", train, "--theta-rec", theta,
            "--lut", lut, "--save-model-path", os.path.join(folder, "out"),
            "--log-frequence", "0", "--threads", str(args.threads), "--no-progress"]
    return argv + (["--gpu", args.gpu] if args.gpu else [])


def loop_figures(out):
    """The per-phase figures the trainer recorded in ``out``."""
    with open(os.path.join(out, "history.json")) as f:
        record = json.load(f)[0]
    with open(os.path.join(out, "args.json")) as f:
        threads = json.load(f)["omp_threads"]
    return {"weight_samples_per_s": record["weight_samples_per_s"],
            "theta_samples_per_s": record["theta_samples_per_s"], "omp_threads": threads}


def run_loop(args):
    """One epoch of the search on a real .rec in a child process; the trainer's figures."""
    with tempfile.TemporaryDirectory() as tmp:
        argv = loop_argv(args, tmp)
        env = dict(os.environ)
        if args.stream:
            env["FBNET_READER_CACHE_BYTES"] = "0"
        # test.py's main in a child that reports its own peak memory afterwards
        code = ("import json, resource, runpy, sys; sys.path.insert(0, %r); "
                "main = runpy.run_path(%r)['main']; sys.stdout = open(%r, 'w'); "
                "main(sys.argv[1:]); sys.stdout = sys.__stdout__; "
                "print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0))"
                % (ROOT, os.path.join(ROOT, "test.py"), os.devnull))
        out = subprocess.run([sys.executable, "-c", code] + argv, check=True, env=env,
                             capture_output=True, text=True).stdout
        figures = loop_figures(os.path.join(tmp, "out"))
    return dict(figures, peak_rss_mib=json.loads(out.strip().splitlines()[-1]))


def run_step(args):
    cmd = [sys.executable, os.path.join(ROOT, "bench", "bench_supernet.py"), "--space",
           args.space, "--preset", args.preset, "--image-shape", shape_text(args),
           "--batch-size", str(args.batch_size), "--width-mult", str(args.width_mult),
           "--threads", str(args.threads), "--steps", str(args.steps), "--warmup", "0",
           "--json"]  # the loop's own count: its first step is its only warm-up
    if args.gpu:
        cmd += ["--gpu", args.gpu]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def shape_text(args):
    return ",".join(map(str, args.image_shape))


def parse_args(argv=None):
    from fbnet_symbol.cli import ArgumentParser
    from fbnet_symbol.settings import add_settings

    p = ArgumentParser(description=__doc__.split("\n")[0])
    # the network, device and data flags are test.py's (fbnet_symbol.settings)
    add_settings(p, ["space", "preset", "image_shape", "batch_size", "width_mult", "threads",
                     "gpu", "train_rec", "theta_rec"], title="as test.py", preset="search",
                 defaults={"preset": "paper", "image_shape": "3,32,32"},
                 helps={"gpu": "devices, as test.py (default: the CPU)",
                        "train_rec": "time the loop on this .rec instead of generated JPEGs",
                        "theta_rec": "with --train-rec"})
    p.add_argument("--steps", type=int, default=10, help="timed weight steps of the loop")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds (default 2)")
    p.add_argument("--stream", action="store_true",
                   help="decode every batch (no memory cache), as a large data set is read")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if bool(args.train_rec) != bool(args.theta_rec):
        p.error("give --train-rec and --theta-rec together")
    return args


def main(argv=None):
    import numpy as np

    args = parse_args(argv)

    rounds = []
    for r in range(args.rounds):
        if r % 2 == 0:  # which goes first alternates: a drift within a round cancels
            step, loop = run_step(args), run_loop(args)
        else:
            loop, step = run_loop(args), run_step(args)
        rounds.append({"step": step, "loop": loop})
        if not args.json:
            print("round %d: data-free step %.1f samples/s (weight), %.1f (theta); search "
                  "loop %.1f (weight), %.1f (theta); %d threads" % (
                      r + 1, step["weight_samples_per_s"], step["theta_samples_per_s"],
                      loop["weight_samples_per_s"], loop["theta_samples_per_s"],
                      loop["omp_threads"]), flush=True)
    med = {"%s_%s" % (kind, stage): float(np.median([r[kind]["%s_samples_per_s" % stage]
                                                     for r in rounds]))
           for kind in ("step", "loop") for stage in ("weight", "theta")}
    result = dict(space=args.space, preset=args.preset, image_shape=shape_text(args),
                  batch_size=args.batch_size, width_mult=args.width_mult, threads=args.threads,
                  omp_threads=rounds[0]["loop"]["omp_threads"], stream=args.stream,
                  rounds=rounds, median=med,
                  loop_over_step=med["loop_weight"] / med["step_weight"],
                  loop_over_step_per_round=[r["loop"]["weight_samples_per_s"] /
                                            r["step"]["weight_samples_per_s"] for r in rounds],
                  peak_rss_mib_step=max(r["step"]["peak_rss_mib"] for r in rounds),
                  peak_rss_mib_loop=max(r["loop"]["peak_rss_mib"] for r in rounds))
    if args.json:
        print(json.dumps(result))
    else:
        print("%s/%s %s batch %d, %d threads, median of %d rounds: weight step data-free "
              "%.1f samples/s, in the search loop %.1f (%.2fx; rounds %s); theta %.1f / %.1f; "
              "peak RSS %.0f / %.0f MiB"
              % (args.space, args.preset, shape_text(args), args.batch_size,
                 result["omp_threads"], args.rounds, med["step_weight"], med["loop_weight"],
                 result["loop_over_step"],
                 " ".join("%.2f" % x for x in result["loop_over_step_per_round"]),
                 med["step_theta"], med["loop_theta"],
                 result["peak_rss_mib_step"], result["peak_rss_mib_loop"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
