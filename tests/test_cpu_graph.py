"""The CPU training graph: BatchNorm moved to MXNet's own kernel computes what the graph as
built computes, under the same names."""
import json
import os
import sys

import mxnet as mx
import numpy as np

from fbnet_symbol.latency.table import LatencyTable
from fbnet_symbol.search.supernet import Supernet
from fbnet_symbol.space.cpu_graph import native_batchnorm, on_cpus
from fbnet_symbol.space.spaces import decode_space
from tests.conftest import ROOT

SHAPE = (3, 16, 16)


def supernet(preset, width=0.5):
    layout = decode_space("fbnet", preset, SHAPE, width)
    table = LatencyTable([[1.0] * len(layer.candidates) for layer in layout.layers])
    return Supernet(10, table, preset, SHAPE, width, alpha=0.2, beta=0.6, loss_form="add",
                    noise_mode="batch", theta_init=1.0, space="fbnet")


def input_shapes(net, batch=4):
    return {d.name: d.shape for d in net.input_descs(batch) + net.label_descs(batch)}


def batchnorm_inputs(sym, shapes):
    """{BatchNorm name: (its input's shape, the op that feeds it)}."""
    internals = sym.get_internals()
    shape_of = dict(zip(internals.list_outputs(), internals.infer_shape_partial(**shapes)[1]))
    nodes = json.loads(sym.tojson())["nodes"]
    return {n["name"]: (tuple(shape_of[n["name"] + "_output"]), nodes[n["inputs"][0][0]]["op"])
            for n in nodes if n["op"] == "BatchNorm"}


def test_only_the_batchnorms_onednn_takes_move_and_every_name_stays():
    for preset in ("paper", "seed"):
        net = supernet(preset, width=0.25)
        shapes = input_shapes(net)
        before = batchnorm_inputs(net.symbol, shapes)
        rewritten, moved = native_batchnorm(net.symbol, shapes)
        after = batchnorm_inputs(rewritten, shapes)
        assert set(after) == set(before)
        # MXNet 1.9.1 gives oneDNN the 4-D, axis-1 BatchNorms with channels a multiple of 8
        onednn = {name for name, (shape, _) in before.items() if shape[1] % 8 == 0}
        assert moved == len(onednn) > 0, preset
        for name, (shape, op) in after.items():
            assert op == ("Reshape" if name in onednn else before[name][1]), name
        assert rewritten.list_arguments() == net.symbol.list_arguments()
        assert rewritten.list_auxiliary_states() == net.symbol.list_auxiliary_states()
        assert rewritten.list_outputs() == net.symbol.list_outputs()
        assert rewritten.infer_shape(**shapes)[1] == net.symbol.infer_shape(**shapes)[1]
    # what MXNet's own kernel runs already is left alone: 12 channels, a 2-D input
    x = mx.sym.Variable("x")
    twelve = mx.sym.BatchNorm(mx.sym.Convolution(x, num_filter=12, kernel=(1, 1), name="c"),
                              name="bn12")
    flat = mx.sym.BatchNorm(mx.sym.flatten(twelve), name="bn2d")
    assert native_batchnorm(flat, {"x": (2, 3, 4, 4)}) == (flat, 0)


def test_every_candidate_computes_the_same_with_either_batchnorm_kernel():
    """Output, every gradient and the moving statistics of each paper-preset candidate, with
    oneDNN's BatchNorm (the graph as built) and with MXNet's own (the rewrite)."""
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    try:
        from check_blocks import run_blocks
    finally:
        sys.path.pop(0)
    layout = decode_space("fbnet", "paper", (3, 32, 32), 0.5)
    built = run_blocks(layout, [0, 1, 6, 21], 8, native_bn=False)
    native = run_blocks(layout, [0, 1, 6, 21], 8, native_bn=True)
    assert built.keys() == native.keys() and len(built) > 32 * 10
    for key, value in built.items():
        scale = max(np.abs(value).max(), 1e-12)
        # gradients that are sums over every sample and pixel (BatchNorm's gamma and beta,
        # the mixture weight) differ by float32's summation order; the rest by less
        sums = key.endswith(("_gamma", "_beta", "grad:mix"))
        assert np.abs(native[key] - value).max() / scale < (1e-4 if sums else 1e-5), key


def test_a_run_on_cpus_binds_the_rewritten_graph_and_gpus_keep_the_graph_as_built():
    from fbnet_symbol.dist.cluster import create_kvstore
    from fbnet_symbol.train.trainer import WEIGHT, bind_modules
    net = supernet("paper", width=0.25)
    ops = {}
    for native in (None, False):
        _, modules = bind_modules(net, [mx.cpu(0), mx.cpu(1)], 4, create_kvstore("local", 2), 0,
                                  {"learning_rate": 0.1}, native_bn=native)
        nodes = json.loads(modules[WEIGHT].symbol.tojson())["nodes"]
        ops[native] = {n["name"] for n in nodes if n["name"].endswith("_fresh")}
    assert ops[None] and not ops[False]
    assert on_cpus([mx.cpu(0), mx.cpu(1)])
    assert not on_cpus([mx.gpu(0)]) and not on_cpus([mx.cpu(0), mx.gpu(0)])
