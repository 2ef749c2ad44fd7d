"""Candidate blocks in PyTorch, float64: what ``check_blocks.py`` compares ours with.

    .venv-torch/bin/python bench/torch_blocks.py BLOCKS.npz OUT.npz --preset paper \
        --image-shape 3,32,32 --bn-eps 2e-5 --bn-momentum 0.9

Runs in the PyTorch environment (.venv-torch). Reads the inputs and parameters
``check_blocks.py`` gave each block (``<block>|in:<name>``), loads them into
``torch_supernet.InvertedResidual`` (the PyTorch twin of the package's candidate) with the
package's BatchNorm epsilon, computes ``y = mix * (block(x) - residual)`` in training mode
and the gradients of ``sum(y * probe) / N``, and writes them as ``<block>|out:<name>``,
with the BatchNorm moving statistics after one update as MXNet makes it (from mean 0 and
variance 1, with the batch's biased variance); ``kink``: the smallest distance of a ReLU
input from 0; ``scale:grad:mix``: the size of the terms the mixture weight's gradient sums.
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path[:0] = [os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                os.path.dirname(os.path.abspath(__file__))]

from fbnet_symbol.space.spaces import decode_space  # noqa: E402
from torch_supernet import InvertedResidual  # noqa: E402


def reference(layout, layer, name, given, eps, momentum):
    """{out name: array} for one block from its ``given`` inputs and parameters; ``eps``
    and ``momentum``: the BatchNorm's, as MXNet takes them (given by check_blocks.py from
    fbnet_symbol/space/blocks.py, which this environment cannot import: it needs MXNet)."""
    c = layout.space.candidate(name)
    bn_inside = layout.preset.bn_inside_blocks
    block = InvertedResidual(layer, c.params["kernel"], c.params["expansion"],
                             c.params["group"], bn_inside).double().train()
    prefix = "%s_%s" % (layer.name, name)
    for step in ("pw1", "dw", "pw2"):
        conv = getattr(block, step)[0]
        conv.weight.data = torch.from_numpy(given["%s_%s_weight" % (prefix, step)])
        if conv.bias is not None:
            conv.bias.data = torch.from_numpy(given["%s_%s_bias" % (prefix, step)])
        if bn_inside:
            bn = getattr(block, step)[1]
            bn.eps, bn.momentum = eps, 1 - momentum  # PyTorch weights the new value
            bn.weight.data = torch.from_numpy(given["%s_%s_bn_gamma" % (prefix, step)])
            bn.bias.data = torch.from_numpy(given["%s_%s_bn_beta" % (prefix, step)])
    seen = {}  # each BatchNorm's input, for MXNet's moving statistics
    if bn_inside:
        for step in ("pw1", "dw", "pw2"):
            getattr(block, step)[1].register_forward_pre_hook(
                lambda module, inputs, step=step: seen.__setitem__(step, inputs[0].detach()))
    kinks = []  # how close any ReLU input came to 0, where float32 may pick the other side
    for step in ("pw1", "dw"):
        getattr(block, step)[-1].register_forward_pre_hook(
            lambda module, inputs: kinks.append(float(inputs[0].detach().abs().min())))
    x = torch.from_numpy(given["x"]).requires_grad_(True)
    mix = torch.from_numpy(given["mix"]).requires_grad_(True)
    y = block(x)
    if block.residual:  # the supernet's folded form leaves the residual to the layer
        y = y - x
    y = y * mix[0, 0]
    terms = y * torch.from_numpy(given["probe"]) / x.shape[0]
    terms.sum().backward()
    # the mixture weight's gradient is one sum of terms of both signs: its rounding is
    # judged against the sum of their sizes, not against the (possibly cancelled) result
    size = terms.detach().abs().sum() / mix.detach().abs()[0, 0]
    out = {"output": y.detach().numpy(), "grad:x": x.grad.numpy(),
           "grad:mix": mix.grad.numpy(), "scale:grad:mix": size.numpy().reshape(1),
           "kink": np.array([min(kinks)])}
    for step in ("pw1", "dw", "pw2"):
        conv = getattr(block, step)[0]
        out["grad:%s_%s_weight" % (prefix, step)] = conv.weight.grad.numpy()
        if conv.bias is not None:
            out["grad:%s_%s_bias" % (prefix, step)] = conv.bias.grad.numpy()
        if bn_inside:
            bn, key = getattr(block, step)[1], "%s_%s_bn" % (prefix, step)
            out["grad:%s_gamma" % key] = bn.weight.grad.numpy()
            out["grad:%s_beta" % key] = bn.bias.grad.numpy()
            # MXNet's update from mean 0, var 1, with the batch's biased variance
            # (PyTorch's running_var takes the unbiased one)
            batch = seen[step]
            out["aux:%s_moving_mean" % key] = ((1 - momentum) * batch.mean((0, 2, 3))).numpy()
            out["aux:%s_moving_var" % key] = (
                momentum + (1 - momentum) * batch.var((0, 2, 3), unbiased=False)).numpy()
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("blocks")
    p.add_argument("out")
    p.add_argument("--preset", default="paper")
    p.add_argument("--image-shape", default="3,32,32")
    p.add_argument("--width-mult", type=float, default=1.0)
    p.add_argument("--bn-eps", type=float, required=True)
    p.add_argument("--bn-momentum", type=float, required=True)
    args = p.parse_args(argv)
    shape = tuple(int(v) for v in args.image_shape.split(","))
    layout = decode_space("fbnet", args.preset, shape, args.width_mult)
    layers = {layer.name: layer for layer in layout.layers}
    given = {}
    with np.load(args.blocks) as f:
        for key in f.files:
            block, name = key.split("|in:")
            given.setdefault(block, {})[name] = f[key].astype(np.float64)
    out = {}
    for block, arrays in given.items():
        layer_name, candidate = block.split("_", 1)
        computed = reference(layout, layers[layer_name], candidate, arrays, args.bn_eps,
                             args.bn_momentum)
        for name, value in computed.items():
            out["%s|out:%s" % (block, name)] = value.astype(np.float64)
    np.savez(args.out, **out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
