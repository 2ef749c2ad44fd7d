"""Every candidate block's outputs and gradients beside PyTorch in float64 (a correctness check).

    python bench/check_blocks.py --preset paper --image-shape 3,32,32
    python bench/check_blocks.py --preset seed --image-shape 3,16,16 --layers 0,21 --json

A faster formulation of a block is only worth having if it computes the same thing; MXNet
1.9.1 mixes oneDNN's kernels with its own, and the two have disagreed in ways no single
operator's test shows (docs/measurements.md, "Speed, part 2"). This runs each candidate of
the chosen layers as the supernet trains it on a CPU — training-mode BatchNorm, the mixture weight
folded into the last step — forward and backward on one random batch, then computes the
same block in float64 with ``bench/torch_blocks.py`` in the PyTorch environment, and
reports the largest difference of the output, every gradient (input, weights, the mixture
weight) and the BatchNorm statistics, relative to that array's largest value. A block in
which some ReLU input lies within ``KINK`` of 0 is marked: float32 may put that element on
the other side of the kink than float64 does, and the gradients before it then differ by
construction (seen: 2.7e-2 at one channel, from an input 5.5e-7 from 0).
"""
import json
import os
import subprocess
import sys
import tempfile

# ReLU inputs this close to 0 can change side between float32 and float64 (rounding of the
# BatchNorm before them): one element's gradient then flips, which is not an error
KINK = 1e-6
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def run_blocks(layout, layers, batch_size, seed=0, native_bn=True):
    """{key: array} for every non-identity candidate of ``layers``: its inputs and parameters
    (``<block>|in:<name>``) and what MXNet computed (``<block>|out:<name>``), with the
    graph a CPU trains (``native_bn``: :mod:`fbnet_symbol.space.cpu_graph`) or as built."""
    import mxnet as mx
    import numpy as np
    from fbnet_symbol.space.cpu_graph import native_batchnorm
    from fbnet_symbol.space.network import block_prefix, build_block

    arrays = {}
    rng = np.random.RandomState(seed)
    for index in layers:
        layer = layout.layers[index]
        for name in layer.candidates:
            if layout.space.candidate(name).identity:
                continue
            block = block_prefix(layer, name)
            x, mix = mx.sym.Variable("x"), mx.sym.Variable("mix", shape=(1, 1))
            y = build_block(x, layout, layer, name, scale=mix)
            # a random projection of the output: every element's gradient differs (a sum of
            # squares after BatchNorm would have near-zero gradients made of rounding)
            loss = mx.sym.Group([
                mx.sym.MakeLoss(mx.sym.sum(y * mx.sym.Variable("probe")) / batch_size),
                mx.sym.BlockGrad(y)])
            shapes = dict(mix=(1, 1), probe=(batch_size, layer.out_channels) + tuple(layer.out_hw),
                          x=(batch_size, layer.in_channels) + tuple(layer.in_hw))
            if native_bn:
                loss, _ = native_batchnorm(loss, shapes)
            ex = loss.simple_bind(mx.cpu(), grad_req="write", **shapes)
            for key in sorted(ex.arg_dict):
                value = ex.arg_dict[key]
                if key in ("x", "probe"):
                    value[:] = rng.normal(0, 1, value.shape)
                elif key == "mix":
                    value[:] = 0.3
                elif key.endswith("_weight"):  # He-like, so that activations stay O(1)
                    value[:] = rng.normal(0, (2.0 / np.prod(value.shape[1:])) ** 0.5,
                                          value.shape)
                elif key.endswith("_gamma"):
                    value[:] = rng.uniform(0.8, 1.2, value.shape)
                else:  # BatchNorm beta, conv bias
                    value[:] = rng.uniform(-0.1, 0.1, value.shape)
                arrays["%s|in:%s" % (block, key)] = value.asnumpy()
            for key, value in ex.aux_dict.items():  # as the initializer sets them
                value[:] = 1.0 if key.endswith("_moving_var") else 0.0
            ex.forward(is_train=True)
            ex.backward()
            arrays["%s|out:output" % block] = ex.outputs[1].asnumpy()
            for key, grad in ex.grad_dict.items():
                if key != "probe":
                    arrays["%s|out:grad:%s" % (block, key)] = grad.asnumpy()
            for key, value in ex.aux_dict.items():
                arrays["%s|out:aux:%s" % (block, key)] = value.asnumpy()
    return arrays


def compare(ours, reference):
    """{block: (worst relative difference, the array it is in, smallest ReLU input)} over
    every computed array."""
    import numpy as np
    worst, kinks = {}, {}
    for key, ref in reference.items():
        block, name = key.split("|out:")
        if name == "kink":
            kinks[block] = float(ref[0])
        if name == "kink" or name.startswith("scale:"):
            continue
        # an array's own largest value, or for a sum the size of its terms (given as scale:)
        scale = reference.get("%s|out:scale:%s" % (block, name), np.abs(ref)).max()
        diff = float(np.abs(ours[key] - ref).max() / max(scale, 1e-12))
        if diff >= worst.get(block, (-1.0, ""))[0]:
            worst[block] = (diff, name)
    return {block: (w, name, kinks[block]) for block, (w, name) in worst.items()}


def main(argv=None):
    from fbnet_symbol.cli import ArgumentParser
    from fbnet_symbol.settings import add_settings

    p = ArgumentParser(description=__doc__.split("\n")[0])
    add_settings(p, ["space", "preset", "image_shape", "width_mult", "threads"],
                 title="network", preset="search",
                 defaults={"image_shape": "3,32,32"})
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--batchnorm", choices=("auto", "onednn"), default="auto",
                   help="auto: the graph a CPU trains (MXNet's own BatchNorm kernel, "
                        "fbnet_symbol.space.cpu_graph); onednn: the graph as built")
    p.add_argument("--layers", default="all", help="layer indices (0-based), or all")
    p.add_argument("--torch-python", default=os.environ.get(
        "FBNET_TORCH_PYTHON", os.path.join(ROOT, ".venv-torch", "bin", "python")),
        help="the Python with torch (make torch-env; FBNET_TORCH_PYTHON)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if args.space != "fbnet":
        p.error("only the fbnet space has a PyTorch twin (bench/torch_supernet.py)")
    if not os.path.isfile(args.torch_python):
        p.error("no PyTorch environment at %s: run make torch-env, or give --torch-python"
                % args.torch_python)
    from fbnet_symbol.cli import start
    start(args.threads)  # before MXNet loads

    import numpy as np
    from fbnet_symbol.space.blocks import BN_EPS, BN_MOMENTUM
    from fbnet_symbol.space.spaces import decode_space

    layout = decode_space(args.space, args.preset, args.image_shape, args.width_mult)
    layers = (range(len(layout.layers)) if args.layers == "all"
              else [int(v) for v in args.layers.split(",")])
    ours = run_blocks(layout, layers, args.batch_size, native_bn=args.batchnorm == "auto")
    with tempfile.TemporaryDirectory() as tmp:
        given, computed = os.path.join(tmp, "blocks.npz"), os.path.join(tmp, "reference.npz")
        np.savez(given, **{k: v for k, v in ours.items() if "|in:" in k})
        subprocess.run([args.torch_python, os.path.join(ROOT, "bench", "torch_blocks.py"),
                        given, computed, "--preset", args.preset,
                        "--image-shape", ",".join(map(str, args.image_shape)),
                        "--width-mult", str(args.width_mult), "--bn-eps", str(BN_EPS),
                        "--bn-momentum", str(BN_MOMENTUM)], check=True)
        with np.load(computed) as f:
            reference = {k: f[k] for k in f.files}
    worst = compare(ours, reference)
    if args.json:
        print(json.dumps({block: {"worst": w, "array": a, "kink": k}
                          for block, (w, a, k) in worst.items()}))
    else:
        for block, (w, a, k) in worst.items():
            print("%-22s largest difference %.1e (relative, in %s)%s" % (
                block, w, a, "" if k > KINK else
                "; a ReLU input %.0e from 0 (float32 may take the other side)" % k))
        clean = [w for w, _, k in worst.values() if k > KINK]
        print("%d blocks; the largest difference %.1e (%.1e where no ReLU input lies within "
              "%.0e of 0)" % (len(worst), max(w for w, _, _ in worst.values()),
                              max(clean) if clean else float("nan"), KINK))
    return 0


if __name__ == "__main__":
    sys.exit(main())
