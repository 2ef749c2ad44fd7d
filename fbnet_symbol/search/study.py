"""The study: does the search beat random search, at equal latency, beyond the spread of training?

    fbnet study --task cluttered-digits --out study-digits      # an embedded task, its budget
    fbnet study --quick --task cluttered-digits --out quick     # the headline, smaller
    fbnet study --alphas 0,1,3 --seeds 0,1 --random 20 --out study \\
        --train-rec train.rec --theta-rec theta.rec --val-rec val.rec --lut speed.json

1. a search per (α, search seed); 2. the networks: each search's argmax, ``--random``
networks of the space drawn over the searched networks' predicted latency range, and the
space's hand-designed baselines (all ``k3_e6``, all ``k3_e1``, FBNet-A/B/C where the
preset offers their blocks); 3. every network timed whole on this device, interleaved
(as ``fbnet measure --validate``); 4. every network trained from scratch with the same
budget and ``--train-seeds`` seeds (one more for the searched networks and the random
networks within ±10% of a searched one's latency), ``--jobs`` at a time; 5.
``study.csv``, ``study.png`` and ``summary.json`` (:mod:`.study_stats`). Finished runs are
skipped when the command is run again.
"""
import itertools
import json
import logging
import os
import sys
from dataclasses import replace

import numpy as np

from ..errors import FBNetError
from ..fileio import atomic_write_json
from . import study_stats as stats
from .study_jobs import run_jobs, score
from .study_tasks import STUDY_TASKS

logger = logging.getLogger(__name__)

# every run of a study logs to its folder only, without bars (the study shows its own)
QUIET = dict(progress=False, log_frequence=0, save_frequence=0)


def _floats(text):
    return [float(v) for v in str(text).split(",") if v.strip()]


def random_networks(layout, table, low, high, count, seed=0, pool=4000):
    """``count`` distinct random block lists whose predicted latencies spread evenly over
    ``[low, high]``, from a pool drawn as ``fbnet measure --validate`` draws (each network
    its own Dirichlet preference over the candidates), half of it with a concentration of
    0.1: such networks are mostly one or two kinds of block, so the pool reaches the nearly
    all-skip networks a large alpha finds (4,000 draws at 0.5 alone came no closer than
    10% to them)."""
    from ..latency.validate import DIRICHLET_CONCENTRATION, random_blocks
    from ..space.architecture import distinct_blocks
    rng = np.random.RandomState(seed)
    concentrations = itertools.cycle([0.1, DIRICHLET_CONCENTRATION])
    drawn = {b: table.blocks_latency(layout, b) for b in distinct_blocks(
        lambda: random_blocks(layout, rng, next(concentrations)), pool, pool)}
    chosen = []
    for target in np.linspace(low, high, count):
        left = [b for b in drawn if b not in chosen]
        if not left:
            break
        chosen.append(min(left, key=lambda b: abs(drawn[b] - target)))
    return chosen


def baseline_networks(layout):
    """The hand-designed networks of the space the layout offers: every layer one block
    (``k3_e6``: MobileNetV2-like, ``k3_e1``), and the named architectures (FBNet-A/B/C)."""
    from ..space.architecture import named_architectures_of
    out = []
    for block in ("k3_e6", "k3_e1"):
        if all(block in l.candidates for l in layout.layers):
            out.append(("all_" + block, tuple([block] * layout.num_layers)))
    return out + [(name, tuple(arch.blocks)) for name, arch in named_architectures_of(layout)[0]]


def _searches(base, out, plan, workers, progress):
    """Every search of ``plan``: ``[(variant, settings changes, alphas, seeds)]``; the main
    variant's name is empty."""
    from tqdm import tqdm
    jobs, keys = [], []
    for variant, changes, alphas, seeds in plan:
        for alpha in alphas:
            for seed in seeds:
                key = "%salpha%g_seed%d" % (variant + "_" if variant else "", alpha, seed)
                folder = os.path.join(out, "search", key)
                jobs.append((replace(base, alpha=alpha, seed=seed, save_model_path=folder,
                                     **dict(changes, **QUIET)), folder, "search"))
                keys.append(dict(key=key, variant=variant, alpha=alpha, seed=seed))
    bar = tqdm(total=len(jobs), desc="study: searches", unit="run", disable=not progress)
    results = run_jobs(jobs, workers, bar)
    bar.close()
    return [dict(r, **k) for k, r in zip(keys, results)]


def _networks(out, searched, main, layout, table, num_random):
    """Every network of the study: ``{"kind", "name", "blocks", ...}``; the random ones
    cover the predicted latency range of the ``main`` searches' networks."""
    nets = [dict(kind="searched", name="searched_" + r["key"], key=r["key"],
                 variant=r["variant"],
                 blocks=list(r["blocks"]), alpha=r["alpha"], search_seed=r["seed"],
                 expected_latency_ms=r["expected_latency_ms"], entropy=r["entropy"])
            for r in searched]
    picks_path = os.path.join(out, "random.json")
    if os.path.isfile(picks_path):
        with open(picks_path) as f:
            picks = [tuple(b) for b in json.load(f)]
    else:
        lat = [table.blocks_latency(layout, r["blocks"]) for r in main]
        low, high = min(lat), max(lat)
        pad = 0.25 * max(high - low, 0.1 * high)
        picks = random_networks(layout, table, low - pad, high + pad, num_random)
        atomic_write_json(picks_path, [list(b) for b in picks])
    nets += [dict(kind="random", name="random_%02d" % i, blocks=list(b))
             for i, b in enumerate(picks)]
    nets += [dict(kind="baseline", name=name, blocks=list(b))
             for name, b in baseline_networks(layout)]
    return nets


def _time_networks(out, nets, template, table, device, policy):
    """Each network's latency timed whole, all interleaved (cached in ``latency.json``)."""
    from ..latency.validate import validate_table
    path = os.path.join(out, "latency.json")
    timed = {}
    if os.path.isfile(path):
        with open(path) as f:
            timed = json.load(f)
    if set(timed) != {n["name"] for n in nets}:
        archs = [template.replace(blocks=tuple(n["blocks"]), name=n["name"]) for n in nets]
        logger.info("timing %d networks whole on %s, interleaved", len(archs), device)
        report = validate_table(table, device, archs=archs, progress=False,
                                **({"policy": policy} if policy else {}))
        timed = {n["name"]: n["measured_ms"] for n in report["networks"]}
        atomic_write_json(path, timed)
    return timed


def _training_seeds(nets, train_seeds):
    """Seeds per network: ``train_seeds``; one more for the searched networks and their
    latency neighbours, whose comparison is the study's question."""
    searched = [n for n in nets if n["kind"] == "searched"]
    for n in nets:
        near = n["kind"] == "searched" or (n["kind"] == "random" and any(
            n in stats.neighbours(s, [n]) for s in searched))
        n["train_seeds"] = list(range(train_seeds + (1 if near else 0)))


def _log_probabilities(nets, searched, layout):
    """log P_θ of every network under each search's final θ (the supernet's ranking)."""
    from .theta import log_probability, read_theta_text
    thetas = {r["key"]: read_theta_text(r["theta"], layout) for r in searched}
    for n in nets:
        n["log_p"] = {k: log_probability(layout, t, n["blocks"]) for k, t in thetas.items()}


def run_study(base, out, alphas, seeds, num_random, train=None, train_seeds=2, workers=1,
              progress=True, policy=None, metric="val_acc", variants=()):
    """The whole study (see the module's docstring); returns the summary dict. ``train``:
    the settings every training from scratch changes (``epochs``, ``lr``, ...); ``metric``:
    the score compared, a key of the last epoch's record (``val_acc``: top-1 on
    ``--val-rec``; ``NAME_acc``: verification on pair set ``NAME.bin``); ``variants``:
    other search settings tried, ``[(name, settings changes, alphas, seeds)]``, whose
    argmax networks are compared with the same random networks. With ``workers`` > 1 the
    runs go to spawned processes: a script calling this needs Python's
    ``if __name__ == "__main__":`` guard."""
    from ..dist.devices import parse_devices
    from ..latency.table import load_table
    from ..space.architecture import load_architecture

    os.makedirs(out, exist_ok=True)
    device = parse_devices(base.gpu, notice=False)[0]
    base = _with_table(base, device, policy, progress)
    searched = _searches(base, out, [("", {}, alphas, seeds)] + [tuple(v) for v in variants],
                         workers, progress)
    table = load_table(searched[0]["lut"])
    if not table.fixed:
        raise FBNetError("%s has no fixed-part timings; the study needs a table measured by "
                         "fbnet measure (its .json)" % searched[0]["lut"])
    template = load_architecture(searched[0]["arch"])
    layout = template.layout(tuple(table.meta["image_shape"]))
    main = [r for r in searched if not r["variant"]]
    nets = _networks(out, searched, main, layout, table, num_random)
    timed = _time_networks(out, nets, template, table, device, policy)
    for n in nets:
        n["latency_ms"] = timed[n["name"]]
        n["predicted_ms"] = table.blocks_latency(layout, n["blocks"])
    _training_seeds(nets, train_seeds)
    _log_probabilities(nets, searched, layout)
    _trainings(base, out, nets, template, train, workers, progress, metric)
    summary = dict(stats.summarise(nets), metric=metric)
    _write_results(out, nets, summary, "%d searches (alpha %s%s)" % (
        len(searched), ",".join("%g" % a for a in alphas),
        "; variants: " + ", ".join(v[0] for v in variants) if variants else ""))
    return summary


def _with_table(base, device, policy, progress):
    """``base`` with a latency table: one for every search, measured here (not by each
    worker, which would race and disturb each other's timing) unless given."""
    if base.lut:
        return base
    from ..latency.measure import cached_table
    from ..latency.timing import TimingPolicy
    from ..space.architecture import layout_described
    return replace(base, lut=cached_table(layout_described(base), device,
                                          base.lut_batch_size, policy or TimingPolicy(),
                                          progress)[1])


def _trainings(base, out, nets, template, train, workers, progress, metric):
    """Every network trained from scratch with each of its seeds; its scores go to
    ``n["accs"]``. A fixed training keeps its own defaults (no warm-up, its learning rate)
    unless ``train`` sets them."""
    from tqdm import tqdm
    train_base = replace(base, **dict(dict(warmup_epochs=None, lr=None), **dict(train or {}),
                                      **QUIET))
    jobs = []
    for n in nets:
        arch = template.replace(blocks=tuple(n["blocks"]), name=n["name"])
        for seed in n["train_seeds"]:
            folder = os.path.join(out, "train", n["name"], "seed%d" % seed)
            jobs.append((replace(train_base, seed=seed, save_model_path=folder, arch=arch),
                         folder, "train"))
    bar = tqdm(total=len(jobs), desc="study: trainings", unit="run", disable=not progress)
    results = iter(run_jobs(jobs, workers, bar))
    bar.close()
    for n in nets:
        n["accs"] = [score(next(results), metric) for _ in n["train_seeds"]]


def _write_results(out, nets, summary, searches):
    from .study_report import plot, write_csv
    write_csv(nets, os.path.join(out, "study.csv"))
    plot(nets, summary, os.path.join(out, "study.png"),
         "%s vs %d random networks and %d baselines"
         % (searches, summary["random"], summary["baselines"]))
    atomic_write_json(os.path.join(out, "summary.json"), dict(summary, networks=nets))


def study_plan(args):
    """The searches' settings (resolved) and the study's plan from the parsed command line:
    ``--task``'s (``--quick``: its smaller plan), then the flags given."""
    from ..settings import from_args
    from .run import resolve_run
    base = from_args(args)
    task = dict(STUDY_TASKS[args.task]) if args.task else {}
    if args.quick and task:
        task.update(task["quick"])
    if task and not (base.train_rec or base.data_dir):
        base = replace(base, **task["data"]())
    if args.search_lr:
        base = replace(base, lr=args.search_lr)
    if task:  # the task's network and search settings (epochs: below) unless given
        given = dict(task["network"], **{k: v for k, v in task.get("search", {}).items()
                                         if k != "epochs"})
        base = replace(base, **{k: v for k, v in given.items() if getattr(base, k) is None})

    def pick(name, default):
        given = getattr(args, name)
        return given if given is not None else task.get(name, default)

    train = dict(task.get("train", {}))
    if args.train_epochs:
        train["epochs"] = args.train_epochs
    if args.train_lr:
        train["lr"] = args.train_lr
    train.setdefault("epochs", 10)
    plan = dict(alphas=pick("alphas", (0.0, 1.0, 3.0)), seeds=pick("seeds", (0, 1)),
                num_random=pick("random", 20), train_seeds=pick("train_seeds", 2),
                train=train, workers=args.jobs, variants=task.get("variants", []),
                metric=args.metric or task.get("metric", "val_acc"))
    epochs = args.search_epochs or task.get("search", {}).get("epochs")
    base = resolve_run(replace(base, epochs=epochs or base.epochs))
    if not (base.val_rec or base.verify):
        raise FBNetError("the study compares networks on held-out data: give --val-rec (top-1) "
                         "or --verify pair sets (verification)")
    return base, plan


def _parser():
    from ..cli import ArgumentParser
    from ..settings import add_settings

    p = ArgumentParser(prog="fbnet study", description=__doc__.split("\n")[0])
    p.add_argument("--task", choices=sorted(STUDY_TASKS),
                   help="an embedded task with its data and budget (fbnet data %s makes its "
                        "data; README: The study)" % "|".join(sorted(STUDY_TASKS)))
    p.add_argument("--out", default="./study", help="folder of every run and the results")
    p.add_argument("--alphas", type=_floats, help="latency weights to search with (default: "
                   "the task's, or 0,1,3)")
    p.add_argument("--seeds", type=lambda t: [int(v) for v in _floats(t)],
                   help="search seeds per alpha (default: the task's, or 0,1)")
    p.add_argument("--random", type=int, help="random networks (default: the task's, or 20)")
    p.add_argument("--train-seeds", type=int, help="trainings per network (one more for the "
                   "searched ones and their latency neighbours; default: the task's, or 2)")
    p.add_argument("--search-epochs", type=int, help="budget of each search (default: the "
                   "task's, or the run preset's)")
    p.add_argument("--train-epochs", type=int, help="budget of each training from scratch "
                   "(default: the task's, or 10)")
    p.add_argument("--search-lr", type=float, help="SGD learning rate of the supernet's "
                   "weights (default: the task's, or the run preset's)")
    p.add_argument("--train-lr", type=float, help="SGD learning rate of each training from "
                   "scratch (default: the task's, or the run preset's)")
    p.add_argument("--jobs", type=int, default=2, help="runs at a time, each with its share "
                   "of the cores (default 2)")
    p.add_argument("--metric", help="the score compared: val_acc (top-1 on --val-rec) or "
                   "NAME_acc (verification on pair set NAME.bin; default: the task's, or "
                   "val_acc)")
    p.add_argument("--quick", action="store_true",
                   help="the task's smaller plan and few timing repeats: the headline, sooner")
    # every run's settings: the search command's flags (fbnet_symbol.settings); the unit-free
    # loss form, so that one alpha grid means the same on any device
    add_settings(p, ["loss_form", "train_rec", "theta_rec", "val_rec", "data_dir", "verify",
                     "lut", "gpu", "space", "preset", "image_shape", "width_mult",
                     "model_type", "margin_s", "margin_m", "batch_size", "threads",
                     "progress"], title="every run", defaults={"loss_form": "relative"})
    return p


def main(argv=None):
    from ..cli import open_log_files, start
    from ..settings import from_args

    args = _parser().parse_args(argv)
    start(from_args(args).threads, os.path.join(args.out, "study.log"))
    from ..latency.timing import QUICK  # loads MXNet: after the thread count is set
    base, plan = study_plan(args)
    open_log_files()  # the plan passed its checks (the runs log to their own folders)
    summary = run_study(base, args.out, progress=base.progress,
                        policy=QUICK if args.quick else None, **plan)
    print(json.dumps(dict(summary["headline"], variants=summary["variants"]), indent=1))
    print("wrote study.csv, study.png and summary.json to %s" % args.out)
    return 0


if __name__ == "__main__":
    from ..cli import run
    run(main, sys.argv[1:])
