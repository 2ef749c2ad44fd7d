"""The graph a CPU trains: BatchNorm through MXNet's own kernel instead of oneDNN's.

MXNet 1.9.1 hands a BatchNorm to oneDNN when its input is 4-D, normalised over axis 1,
with a multiple of 8 channels — every BatchNorm of the paper preset's blocks. In the
supernet that costs more than the arithmetic: MXNet's own kernel makes the steps faster
and the peak memory lower, although oneDNN's is faster in a lone block (figures:
docs/measurements.md, "BatchNorm on MXNet's own kernel").

:func:`native_batchnorm` rewrites each such BatchNorm to normalise the same values seen as
``(N, C, H*W)`` — a 3-D input, which MXNet keeps on its own kernel — then restores the
shape and copies the result into an array of its own (``slice_axis`` over the whole
axis): a oneDNN convolution reading a reshaped view stops MXNet 1.9.1 in its backward pass
(``Check failed: !is_view``). The arithmetic is the same normalisation per channel
(``bench/check_blocks.py`` compares every candidate with PyTorch in float64); parameter,
auxiliary-state and output names do not change, so checkpoints and exports never see the
rewrite. GPUs keep cuDNN's BatchNorm: the trainer applies this to CPU contexts only.
"""
import json

import mxnet as mx

ONEDNN_CHANNEL_MULTIPLE = 8  # MXNet 1.9.1 src/operator/nn/batch_norm.cc, SupportMKLDNNBN


def on_cpus(contexts):
    """Whether a graph bound on ``contexts`` should take the rewrite: only when all are CPUs
    (a GPU runs cuDNN's BatchNorm, which this does not concern)."""
    return all(c.device_type == "cpu" for c in contexts)


def takes_onednn(attrs, shape):
    """Whether MXNet 1.9.1 runs a BatchNorm with these attributes and input shape on oneDNN."""
    axis = int(attrs.get("axis", 1))
    return len(shape) == 4 and axis == 1 and shape[1] % ONEDNN_CHANNEL_MULTIPLE == 0


def native_batchnorm(sym, input_shapes):
    """``sym`` with every BatchNorm oneDNN would run on MXNet's own kernel instead.

    ``input_shapes``: ``{input name: shape}``, to know each BatchNorm's input shape.
    Returns ``(symbol, count)``: the rewritten graph and how many BatchNorms moved.
    """
    internals = sym.get_internals()
    _, shapes, _ = internals.infer_shape_partial(**input_shapes)
    shape_of = dict(zip(internals.list_outputs(), shapes))
    graph = json.loads(sym.tojson())
    nodes, moved = [], 0
    new_id = {}  # old node -> new node, for nodes kept as they are
    moved_outputs = {}  # (old BatchNorm, output) -> (new node, output)

    def add(node):
        nodes.append(node)
        return len(nodes) - 1

    def entry(old):
        node, index = moved_outputs.get((old[0], old[1]), (new_id.get(old[0]), old[1]))
        return [node, index, old[2]]

    for old_id, node in enumerate(graph["nodes"]):  # in topological order
        node = dict(node, inputs=[entry(e) for e in node["inputs"]])
        shape = shape_of.get(node["name"] + "_output")
        if node["op"] != "BatchNorm" or not shape or not takes_onednn(node.get("attrs", {}),
                                                                      shape):
            new_id[old_id] = add(node)
            continue
        name = node["name"]
        flat = add({"op": "Reshape", "name": name + "_flat", "attrs": {"shape": "(0, 0, -1)"},
                    "inputs": [node["inputs"][0]]})
        norm = add(dict(node, inputs=[[flat, 0, 0]] + node["inputs"][1:]))
        back = add({"op": "Reshape", "name": name + "_unflat",
                    "attrs": {"shape": str((0, 0) + tuple(shape[2:]))},
                    "inputs": [[norm, 0, 0]]})
        fresh = add({"op": "slice_axis", "name": name + "_fresh",
                     "attrs": {"axis": "1", "begin": "0", "end": "None"},
                     "inputs": [[back, 0, 0]]})
        moved_outputs.update({(old_id, 0): (fresh, 0), (old_id, 1): (norm, 1),
                              (old_id, 2): (norm, 2)})
        moved += 1
    if not moved:
        return sym, 0
    graph.pop("node_row_ptr", None)  # MXNet recomputes it on load
    graph.update(nodes=nodes, heads=[entry(e) for e in graph["heads"]],
                 arg_nodes=[i for i, n in enumerate(nodes) if n["op"] == "null"])
    return mx.sym.load_json(json.dumps(graph)), moved
