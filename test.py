"""Search: train the FBNet supernet (weights and theta alternately) and write theta.
With --arch: train that fixed architecture from scratch instead (same data, heads,
devices, schedule, checkpoints) and save its inference graph.

    python test.py                                   # a real search on the embedded digits
    python test.py --arch model/arch.json            # train the searched network
    python test.py --gpu 0,1,2,3 --log-frequence 50 --model-type softmax --batch-size 32 \\
        --train-rec train.rec --theta-rec theta.rec
    python test.py --load-model-path ./model         # resume the newest good checkpoint

See README.md for every flag and output file.
"""
import argparse
import logging
import os
import sys

from fbnet_symbol.cli import ArgumentParser, run
from fbnet_symbol.heads import HEAD_DEFAULTS
from fbnet_symbol.search_space import PRESETS, SPACES

logger = logging.getLogger("test")

# the embedded default is a ~5-minute demonstration on 2 CPU cores; real data gets the
# paper's schedule and the full width
EMBEDDED_EPOCHS, EMBEDDED_WARMUP, EMBEDDED_WIDTH = 6, 2, 0.5
EMBEDDED_TRAIN_EPOCHS = 10


def build_parser():
    p = ArgumentParser(description="FBNet supernet search (MXNet symbol API)",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("space and network")
    g.add_argument("--space", choices=sorted(SPACES), default="fbnet")
    g.add_argument("--preset", choices=sorted(PRESETS), help="default: seed")
    g.add_argument("--image-shape", help="C,H,W (default: the preset's; 3,16,16 on the "
                                         "embedded data)")
    g.add_argument("--width-mult", type=float,
                   help="channel multiplier (default 1.0; %.1f on the embedded data)"
                        % EMBEDDED_WIDTH)
    g.add_argument("--model-type", choices=sorted(HEAD_DEFAULTS),
                   help="classifier head (default: softmax; with --arch: the architecture's)")
    g.add_argument("--arch", help="train this architecture from scratch instead of searching: "
                                  "a shipped name (fbnet_a/b/c), an architecture .json or JSON")
    g.add_argument("--feature-dim", type=int,
                   help="embedding size before the head (default: the preset's; 0: none)")
    g.add_argument("--margin-s", type=float, help="scale of amsoftmax/arcface (30 / 64)")
    g.add_argument("--margin-m", type=float, help="margin of amsoftmax/arcface (0.3 / 0.5)")
    d = p.add_argument_group("devices and data")
    d.add_argument("--gpu", "--gpus", dest="gpu",
                   help="devices: 0,1,2,3 for GPUs, cpu or cpu:0,cpu:1 for CPU contexts "
                        "(default: GPU 0 if any, else the CPU)")
    d.add_argument("--batch-size", type=int, default=32, help="global batch, split over devices")
    d.add_argument("--train-rec", help="weight split (.rec with .idx beside it); with "
                                       "--theta-rec. Neither: the embedded digits data set")
    d.add_argument("--theta-rec", help="theta split (.rec)")
    d.add_argument("--val-rec", help="held-out split: top-1 of the supernet each epoch")
    d.add_argument("--rand-mirror", action="store_true", help="random horizontal flips")
    d.add_argument("--kv-store", default="local",
                   help="local or device (one machine); dist_sync: several machines, started "
                        "with launch.py (--batch-size is then per worker)")
    s = p.add_argument_group("search")
    s.add_argument("--epochs", type=int, help="default 90 (%d on the embedded data; with "
                   "--arch %d)" % (EMBEDDED_EPOCHS, EMBEDDED_TRAIN_EPOCHS))
    s.add_argument("--warmup-epochs", type=int, help="weights only; default 10 (%d on the "
                   "embedded data)" % EMBEDDED_WARMUP)
    s.add_argument("--lut", help="latency table (.txt or .json); default: a cached table "
                                 "measured on the first device")
    s.add_argument("--lut-batch-size", type=int, default=1,
                   help="batch size the latency table is for")
    s.add_argument("--alpha", type=float, default=0.2)
    s.add_argument("--beta", type=float, default=0.6)
    s.add_argument("--loss-form", choices=["add", "mul"], default="add",
                   help="CE + a*log(1+LAT)^b (seed) or CE * a*log(1+LAT)^b (paper)")
    s.add_argument("--gumbel-noise", dest="noise", choices=["batch", "sample"], default="batch",
                   help="one Gumbel draw per batch or per sample")
    s.add_argument("--theta-init", type=float, default=1.0)
    s.add_argument("--theta-lr", type=float, default=0.01, help="Adam")
    s.add_argument("--theta-wd", type=float, default=5e-4)
    s.add_argument("--temperature", type=float, default=5.0)
    s.add_argument("--temperature-decay", type=float, default=0.956, help="per epoch")
    o = p.add_argument_group("weight optimizer (SGD)")
    o.add_argument("--lr", type=float, help="default 0.05 for the search, 0.01 with --arch "
                   "(a single network without the supernet's averaging needs a smaller step)")
    o.add_argument("--wd", type=float, default=1e-4)
    o.add_argument("--momentum", type=float, default=0.9)
    o.add_argument("--lr-scheduler", choices=["cosine_grad", "cosine", "step"],
                   default="cosine_grad")
    o.add_argument("--cosine-decay-step", type=int,
                   help="first cosine period in updates (default: one epoch)")
    o.add_argument("--rise-region", type=int, default=100,
                   help="updates of linear rise after each restart")
    o.add_argument("--lr-step-epochs", default="", help="for --lr-scheduler step: 30,60")
    c = p.add_argument_group("checkpoints and logging")
    c.add_argument("--save-model-path", default="./model")
    c.add_argument("--save-frequence", type=int, default=2000,
                   help="also checkpoint every N batches (0: epoch ends only)")
    c.add_argument("--load-model-path", help="resume: a folder (newest good checkpoint) or "
                                             "a .params file")
    c.add_argument("--log-frequence", type=int, default=50, help="log every N batches")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def resolve_arch(args):
    """The --arch architecture, with any explicitly given preset/width/head flags applied."""
    from fbnet_symbol.architecture import load_architecture
    return load_architecture(args.arch).overridden(
        args.preset if args.preset_given else None, args.width_mult, args.model_type,
        args.feature_dim, args.margin_s, args.margin_m)


def main(argv=None):
    args = build_parser().parse_args(argv)
    args.preset_given = args.preset is not None
    args.preset = args.preset or "seed"
    from fbnet_symbol.search import SearchConfig, SearchRun
    from fbnet_symbol.search_space import parse_image_shape
    from fbnet_symbol.util import setup_logging

    # under launch.py, rank 0 (known only once the kvstore is up) adds the log file itself
    setup_logging(None if os.environ.get("DMLC_ROLE") else
                  os.path.join(args.save_model_path, "search.log"))
    embedded = not args.train_rec and not args.theta_rec
    arch = resolve_arch(args) if args.arch else None
    epochs = args.epochs if args.epochs is not None else (
        (EMBEDDED_TRAIN_EPOCHS if arch else EMBEDDED_EPOCHS) if embedded else 90)
    warmup = args.warmup_epochs if args.warmup_epochs is not None else (
        0 if arch else EMBEDDED_WARMUP if embedded else 10)
    cfg = SearchConfig(
        space=args.space, preset=args.preset,
        image_shape=parse_image_shape(args.image_shape) if args.image_shape else None,
        width_mult=args.width_mult if args.width_mult is not None else (
            EMBEDDED_WIDTH if embedded else 1.0), model_type=args.model_type or "softmax",
        arch=arch, feature_dim=args.feature_dim,
        margin_s=args.margin_s, margin_m=args.margin_m, gpu=args.gpu,
        batch_size=args.batch_size, epochs=epochs, warmup_epochs=warmup,
        train_rec=args.train_rec, theta_rec=args.theta_rec, val_rec=args.val_rec,
        lut=args.lut, lut_batch_size=args.lut_batch_size, alpha=args.alpha, beta=args.beta,
        loss_form=args.loss_form, noise=args.noise, theta_init=args.theta_init,
        lr=args.lr if args.lr is not None else (0.01 if arch else 0.05), wd=args.wd, momentum=args.momentum, lr_scheduler=args.lr_scheduler,
        cosine_decay_step=args.cosine_decay_step, rise_region=args.rise_region,
        lr_step_epochs=args.lr_step_epochs, theta_lr=args.theta_lr, theta_wd=args.theta_wd,
        temperature=args.temperature, temperature_decay=args.temperature_decay,
        save_model_path=args.save_model_path, save_frequence=args.save_frequence,
        load_model_path=args.load_model_path, kv_store=args.kv_store, seed=args.seed,
        log_frequence=args.log_frequence, rand_mirror=args.rand_mirror,
        progress=not args.no_progress)
    logger.info("arguments: %s", vars(args))
    summary = SearchRun(cfg).run()
    if summary["rank"] != 0:
        print("worker %d of %d finished; worker 0 wrote the results" % (
            summary["rank"], summary["num_workers"]))
        return 0
    if arch is not None:
        print("training finished: %d epochs, train top-1 %.3f%s" % (
            summary["epoch"], summary["train_acc"] or float("nan"),
            ", validation top-1 %.3f" % summary["val_acc"] if summary.get("val_acc") is not None
            else ""))
        print("results in %s:" % summary["save_model_path"])
        print("  model-symbol.json, model-NNNN.params   the inference graph per epoch "
              "(mx.model.load_checkpoint('%s', N))" % summary["deploy_prefix"])
        print("  arch.json, history.json, search.log, args.json")
        print("  checkpoints/       resume with --load-model-path %s" % summary["save_model_path"])
        return 0
    print("search finished: %d epochs, expected latency %.3f ms%s" % (
        summary["epochs"], summary["expected_latency_ms"] or float("nan"),
        ", supernet val top-1 %.3f" % summary["val_acc"] if summary.get("val_acc") is not None
        else ""))
    print("results in %s:" % summary["save_model_path"])
    print("  arch.json          most likely architecture (argmax of theta)")
    print("  theta-result/      theta of every epoch (epoch_N_theta.txt)")
    print("  distribution.png   P_theta per layer; latency.png  expected latency per epoch")
    print("  history.json, search.log, args.json, lut.txt/lut.json")
    print("  checkpoints/       resume with --load-model-path %s" % summary["save_model_path"])
    return 0


if __name__ == "__main__":
    run(main, sys.argv[1:])
