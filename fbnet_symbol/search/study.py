"""The validity study: does α steer latency, and do searched networks beat random ones?

    python -m fbnet_symbol.search.study --out study                       # the embedded digits
    python -m fbnet_symbol.search.study --alphas 0,1,3 --seeds 0,1 --random 6 --out study \\
        --train-rec train.rec --theta-rec theta.rec --val-rec val.rec --lut speed.json

1. a search per (α, seed); 2. its argmax network trained from scratch, and ``--random``
networks of the space, drawn to cover the searched networks' predicted latency range,
trained with the same budget; 3. every trained network's validation top-1 and its
whole-network latency timed on this device (all networks interleaved, as
``block_speed_test.py --validate`` does); 4. ``study.csv``, ``study.png`` (latency vs
top-1, searched vs random, the Pareto front) and ``summary.json``: Spearman's ρ of α with
latency, and the share of random networks that some searched network matches or beats at
equal or lower latency. Finished runs are skipped when the command is run again.
"""
import csv
import io
import json
import logging
import os
import sys

import numpy as np

from ..errors import FBNetError
from ..fileio import atomic_write, atomic_write_json

logger = logging.getLogger(__name__)


def _floats(text):
    return [float(v) for v in str(text).split(",") if v.strip()]


def _done(folder):
    path = os.path.join(folder, "result.json")
    if os.path.isfile(path):
        with open(path) as f:
            return json.load(f)
    return None


def _run(settings, folder, extract):
    """One search or training in ``folder`` unless it already finished there."""
    from .run import SearchRun
    found = _done(folder)
    if found is not None:
        return found
    run = SearchRun(settings)
    summary = run.run()
    result = extract(run, summary)
    atomic_write_json(os.path.join(folder, "result.json"), result)
    return result


def random_networks(layout, table, low, high, count, seed=0, pool=400):
    """``count`` distinct random block lists whose predicted latencies spread evenly over
    ``[low, high]`` (drawn as ``block_speed_test.py --validate`` draws them)."""
    from ..latency.validate import random_blocks
    rng = np.random.RandomState(seed)
    drawn = {}
    for _ in range(pool):
        blocks = random_blocks(layout, rng)
        drawn.setdefault(blocks, table.blocks_latency(layout, blocks))
    chosen = []
    for target in np.linspace(low, high, count):
        left = [b for b in drawn if b not in chosen]
        if not left:
            break
        chosen.append(min(left, key=lambda b: abs(drawn[b] - target)))
    return chosen


def pareto_front(points):
    """Indices of the points no other point beats (lower latency and higher accuracy)."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -np.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def summarise(rows):
    """Spearman's ρ of α with latency; the share of random networks some searched network
    matches or beats (top-1 at least as high at equal or lower measured latency)."""
    from scipy import stats
    searched = [r for r in rows if r["kind"] == "searched"]
    random_ = [r for r in rows if r["kind"] == "random"]
    out = {"searched": len(searched), "random": len(random_)}
    if len({r["alpha"] for r in searched}) > 1:
        alphas = [r["alpha"] for r in searched]
        for key in ("measured_ms", "expected_latency_ms"):
            out["spearman_alpha_vs_%s" % key] = float(
                stats.spearmanr(alphas, [r[key] for r in searched]).correlation)
    if searched and random_:
        beaten = [any(s["measured_ms"] <= r["measured_ms"] and s["val_acc"] >= r["val_acc"]
                      for s in searched) for r in random_]
        out["random_matched_or_beaten"] = float(np.mean(beaten))
    by_alpha = {}
    for r in searched:
        by_alpha.setdefault(r["alpha"], []).append(r)
    out["by_alpha"] = [{"alpha": a, "expected_latency_ms": float(np.mean(
        [r["expected_latency_ms"] for r in rs])), "measured_ms": float(np.mean(
            [r["measured_ms"] for r in rs])), "val_acc": float(np.mean(
                [r["val_acc"] for r in rs])), "entropy": float(np.mean(
                    [r["entropy"] for r in rs]))} for a, rs in sorted(by_alpha.items())]
    return out


def plot(rows, path, title):
    from .plots import _pyplot, _save
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    random_ = [r for r in rows if r["kind"] == "random"]
    if random_:
        ax.scatter([r["measured_ms"] for r in random_], [r["val_acc"] for r in random_],
                   c="0.6", marker="s", label="random networks")
    searched = [r for r in rows if r["kind"] == "searched"]
    if searched:
        sc = ax.scatter([r["measured_ms"] for r in searched], [r["val_acc"] for r in searched],
                        c=[r["alpha"] for r in searched], cmap="viridis", marker="o", s=50,
                        edgecolors="k", label="searched (argmax), colour: alpha")
        fig.colorbar(sc, ax=ax, label="alpha")
    points = [(r["measured_ms"], r["val_acc"]) for r in rows]
    front = pareto_front(points)
    ax.step([points[i][0] for i in front], [points[i][1] for i in front], "r--", where="post",
            lw=1, label="Pareto front")
    ax.set_xlabel("measured latency of the whole network (ms)")
    ax.set_ylabel("validation top-1 (trained from scratch)")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def write_csv(rows, path):
    fields = ["kind", "name", "alpha", "seed", "predicted_ms", "measured_ms", "val_acc",
              "expected_latency_ms", "entropy", "blocks"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow(dict(r, blocks=" ".join(r["blocks"])))
    atomic_write(path, buf.getvalue())


def run_study(base, out, alphas, seeds, num_random, search_epochs=None, train_epochs=None,
              progress=True, policy=None):
    """The whole study (see the module's docstring); returns the summary dict."""
    from dataclasses import replace

    from tqdm import tqdm

    from ..dist.devices import parse_devices
    from ..latency.table import load_table
    from ..latency.validate import validate_table
    from ..space.architecture import architecture_from_settings, load_architecture

    os.makedirs(out, exist_ok=True)
    quiet = dict(progress=False, log_frequence=0, save_frequence=0)
    total = len(alphas) * len(seeds) * 2 + num_random + 1
    bar = tqdm(total=total, desc="study", unit="run", disable=not progress)
    searched = []
    for alpha in alphas:
        for seed in seeds:
            folder = os.path.join(out, "search", "alpha%g_seed%d" % (alpha, seed))
            settings = replace(base, alpha=alpha, seed=seed, save_model_path=folder,
                               epochs=search_epochs or base.epochs, **quiet)
            res = _run(settings, folder, lambda run, s: dict(
                alpha=alpha, seed=seed, blocks=s["blocks"], lut=os.path.join(s["save_model_path"],
                                                                             "lut.json"),
                expected_latency_ms=s["expected_latency_ms"], entropy=s["entropy"],
                arch=architecture_from_settings(run.settings, s["blocks"],
                                                "searched").to_dict()))
            searched.append(res)
            bar.update()
    table = load_table(searched[0]["lut"])
    if not table.fixed:
        raise FBNetError("%s has no fixed-part timings; the study needs a table measured by "
                         "block_speed_test.py (its .json)" % searched[0]["lut"])
    template = load_architecture(searched[0]["arch"])
    layout = template.layout(tuple(table.meta["image_shape"]))
    picks_path = os.path.join(out, "random.json")
    if os.path.isfile(picks_path):
        with open(picks_path) as f:
            picks = [tuple(b) for b in json.load(f)]
    else:
        lat = [table.blocks_latency(layout, r["blocks"]) for r in searched]
        low, high = min(lat), max(lat)
        pad = 0.25 * max(high - low, 0.1 * high)
        picks = random_networks(layout, table, low - pad, high + pad, num_random)
        atomic_write_json(picks_path, [list(b) for b in picks])
    networks = [("searched", "searched_alpha%g_seed%d" % (r["alpha"], r["seed"]), r["blocks"], r)
                for r in searched]
    networks += [("random", "random_%02d" % i, list(b), {}) for i, b in enumerate(picks)]
    train_base = replace(base, epochs=train_epochs or base.epochs, warmup_epochs=None, lr=None,
                         seed=0, **quiet)
    rows = []
    for kind, name, blocks, extra in networks:
        if kind == "random":
            bar.update()
        folder = os.path.join(out, "train", name)
        arch = template.replace(blocks=tuple(blocks), name=name)
        res = _run(replace(train_base, arch=arch, save_model_path=folder), folder,
                   lambda run, s: {"val_acc": s["val_acc"], "epochs": s["epoch"]})
        rows.append(dict(kind=kind, name=name, blocks=list(blocks), val_acc=res["val_acc"],
                         alpha=extra.get("alpha"), seed=extra.get("seed"),
                         expected_latency_ms=extra.get("expected_latency_ms"),
                         entropy=extra.get("entropy"),
                         predicted_ms=table.predict(arch, layout)))
        if kind == "searched":
            bar.update()
    timed_path = os.path.join(out, "latency.json")
    timed = {}
    if os.path.isfile(timed_path):
        with open(timed_path) as f:
            timed = json.load(f)
    if set(timed) != {r["name"] for r in rows}:
        archs = [template.replace(blocks=tuple(r["blocks"]), name=r["name"]) for r in rows]
        report = validate_table(table, parse_devices(base.gpu, notice=False)[0], archs=archs,
                                progress=False, **({"policy": policy} if policy else {}))
        timed = {n["name"]: n["measured_ms"] for n in report["networks"]}
        atomic_write_json(timed_path, timed)
    bar.update()
    bar.close()
    for r in rows:
        r["measured_ms"] = timed[r["name"]]
    write_csv(rows, os.path.join(out, "study.csv"))
    summary = summarise(rows)
    plot(rows, os.path.join(out, "study.png"), "%d searches (alpha %s) vs %d random networks"
         % (len(searched), ",".join("%g" % a for a in alphas), num_random))
    atomic_write_json(os.path.join(out, "summary.json"), dict(summary, rows=rows))
    return summary


def main(argv=None):
    from ..cli import ArgumentParser
    from ..latency.timing import QUICK
    from ..settings import RUN_PRESETS, add_settings, from_args
    from ..threads import choose_threads, use_threads

    p = ArgumentParser(prog="fbnet study",
                       description=__doc__.split("\n")[0])
    p.add_argument("--out", default="./study", help="folder of every run and the results")
    p.add_argument("--alphas", default="0,1,3", help="latency weights to search with")
    p.add_argument("--seeds", default="0,1", help="search seeds per alpha")
    p.add_argument("--random", type=int, default=6, help="random networks to train")
    p.add_argument("--search-epochs", type=int, help="budget of each search (default: the "
                   "run preset's)")
    p.add_argument("--train-epochs", type=int, help="budget of each training from scratch "
                   "(default: the run preset's)")
    p.add_argument("--quick", action="store_true",
                   help="time the networks with few repeats: rough latencies, for smoke runs")
    # every run's settings: test.py's flags (fbnet_symbol.settings); the unit-free loss form,
    # so that one alpha grid means the same on any device
    add_settings(p, ["loss_form", "train_rec", "theta_rec", "val_rec", "lut", "gpu", "space",
                     "preset", "image_shape", "width_mult", "batch_size", "threads",
                     "progress"], title="every run", defaults={"loss_form": "relative"})
    args = p.parse_args(argv)
    base = from_args(args)
    threads, why = choose_threads(base.threads)
    threads = use_threads(threads)  # before MXNet loads
    from ..cli import setup_logging
    from .run import resolve_run
    setup_logging(os.path.join(args.out, "study.log"))
    logger.info("MXNet operators run %d threads (%s)", threads, why)
    base = resolve_run(base)
    if not base.val_rec:
        raise FBNetError("the study compares validation accuracy: give --val-rec")
    # trained from scratch with the budget of test.py --arch on the same data
    train_epochs = args.train_epochs or RUN_PRESETS[
        "train-embedded" if base.embedded else "train"]["epochs"]
    summary = run_study(base, args.out, _floats(args.alphas), [int(s) for s in
                                                               _floats(args.seeds)],
                        args.random, args.search_epochs, train_epochs,
                        progress=base.progress, policy=QUICK if args.quick else None)
    print(json.dumps({k: v for k, v in summary.items()}, indent=1))
    print("wrote study.csv, study.png and summary.json to %s" % args.out)
    return 0


if __name__ == "__main__":
    from ..cli import run
    run(main, sys.argv[1:])
