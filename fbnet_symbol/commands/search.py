"""Search: train the FBNet supernet (weights and theta alternately) and write theta.
With --arch: train that fixed architecture from scratch instead (same data, heads,
devices, schedule, checkpoints) and save its inference graph.

    python test.py                                   # a real search on the embedded digits
    python test.py --arch model/arch.json            # train the searched network
    python test.py --gpu 0,1,2,3 --log-frequence 50 --model-type softmax --batch-size 32 \\
        --train-rec train.rec --theta-rec theta.rec
    python test.py --load-model-path ./model         # resume the newest good checkpoint

Every flag is a field of fbnet_symbol.settings.Settings; see README.md for the outputs.
"""
import logging
import os

from ..cli import RUN_LOG, ArgumentParser, start
from ..settings import build_parser, from_args

logger = logging.getLogger("test")
DESCRIPTION = ("FBNet supernet search (MXNet symbol API); with --arch, training of one "
               "architecture. Settings left unset are filled by a run preset: 'search' or "
               "'train' (--arch) on your data, 'search-embedded' or 'train-embedded' when no "
               "--train-rec is given (the embedded digits).")


def main(argv=None):
    args = build_parser(ArgumentParser, description=DESCRIPTION).parse_args(argv)
    settings = from_args(args)
    # under launch.py, rank 0 (known only once the kvstore is up) adds the log file itself
    start(settings.threads, None if os.environ.get("DMLC_ROLE") else
          os.path.join(args.save_model_path, RUN_LOG))
    logger.info("arguments: %s", vars(args))
    from ..search.run import SearchRun
    search = SearchRun(settings)
    summary = search.run()
    if summary["rank"] != 0:
        print("worker %d of %d finished; worker 0 wrote the results" % (
            summary["rank"], summary["num_workers"]))
        return 0
    val = summary.get("val_acc")
    if search.settings.fixed:
        print("training finished: %d epochs, train top-1 %.3f%s" % (
            summary["epoch"], summary["train_acc"] or float("nan"),
            ", validation top-1 %.3f" % val if val is not None else ""))
        print("results in %s:" % summary["save_model_path"])
        print("  model-symbol.json, model-NNNN.params   the inference graph per epoch "
              "(mx.model.load_checkpoint('%s', N))" % summary["deploy_prefix"])
        print("  arch.json, history.json, %s, args.json" % RUN_LOG)
        print("  checkpoints/       resume with --load-model-path %s" % summary["save_model_path"])
        return 0
    print("search finished: %d epochs, expected latency %.3f ms%s" % (
        summary["epochs"], summary["expected_latency_ms"] or float("nan"),
        ", supernet val top-1 %.3f" % val if val is not None else ""))
    if summary.get("entropy") is not None:
        print("  P_theta: entropy %.2f of uniform's (mean over %d layers; 1 = uniform, 0 = one "
              "block each); the argmax blocks hold %.2f of their layer's probability on "
              "average (uniform: %.2f); %d layers decided (>= 0.5)"
              % (summary["entropy"], summary["num_layers"], summary["argmax_probability"],
                 summary["uniform_probability"], summary["decided_layers"]))
        print("  expected latency %.3f ms at the start -> %.3f ms at the end (%+.1f%%); argmax "
              "network's blocks %.3f ms (searchable layers only, as E[LAT]; sample.py adds the "
              "fixed parts)" % (summary["initial_expected_latency_ms"],
                                   summary["expected_latency_ms"],
                                   100 * (summary["expected_latency_ms"]
                                          / summary["initial_expected_latency_ms"] - 1),
                                   summary["argmax_latency_ms"]))
    print("results in %s:" % summary["save_model_path"])
    print("  arch.json          most likely architecture (argmax of theta)")
    print("  theta-result/      theta of every epoch (epoch_N_theta.txt)")
    print("  distribution.png   P_theta per layer; theta.png  P_theta per layer over the epochs")
    print("  latency.png        expected latency and accuracies per epoch")
    print("  history.json, %s, args.json, lut.txt/lut.json" % RUN_LOG)
    print("  checkpoints/       resume with --load-model-path %s" % summary["save_model_path"])
    return 0

