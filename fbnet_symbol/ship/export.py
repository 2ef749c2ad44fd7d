"""Export a trained network to ONNX, or to InsightFace's MXNet form.

    python -m fbnet_symbol.ship.export --load-model-path model/ --output fbnet.onnx
    python -m fbnet_symbol.ship.export --load-model-path model/model-0010.params --output fbnet.onnx
    python -m fbnet_symbol.ship.export --load-model-path model/ --insightface model-fc1/

``--insightface``: raw 0-255 RGB in, the normalisation inside the graph, the embedding
out as ``fc1`` (:meth:`~fbnet_symbol.space.child.ChildNet.export_fc1`), for InsightFace's
verification and deployment code.

Reads the inference graph ``model-symbol.json`` / ``model-NNNN.params`` written by
``test.py --arch`` (a folder: the highest NNNN), exports it with ``mx.onnx.export_model``
and writes ``<output>.reference.npz`` (a random input and MXNet's output for it). With
``--check`` (or ``FBNET_ORT_PYTHON`` set) the ONNX model is run in onnxruntime in a
separate Python (see requirements-onnxruntime.txt) and compared with MXNet's output.
A graph the exporter cannot express (deformable convolution) is refused before any file
is written.
"""
import glob
import json
import os
import re
import subprocess
import sys

import numpy as np

from ..errors import FBNetError

UNSUPPORTED = {"_contrib_DeformableConvolution": "deformable convolution (deform_bottleneck)"}
# run by path in the onnxruntime environment, which need not have this package installed
ORT_CHECK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "onnx_check.py")


def find_deploy(path, prefix="model"):
    """(prefix, epoch) of the newest inference checkpoint in a folder, or of a .params."""
    if os.path.isdir(path):
        found = []
        for f in glob.glob(os.path.join(glob.escape(path), prefix + "-*.params")):
            m = re.fullmatch(r".*-(\d+)\.params", f)
            if m:
                found.append(int(m.group(1)))
        if not found:
            raise FBNetError("no %s-NNNN.params in %s; train a network with test.py --arch "
                             "first (its --save-model-path)" % (prefix, path))
        return os.path.join(path, prefix), max(found)
    m = re.fullmatch(r"(.*)-(\d+)\.params", path)
    if not m or not os.path.isfile(path):
        raise FBNetError("%s is not an existing PREFIX-NNNN.params file or folder" % path)
    if not os.path.isfile(m.group(1) + "-symbol.json"):
        raise FBNetError("%s-symbol.json is missing beside %s" % (m.group(1), path))
    return m.group(1), int(m.group(2))


def input_shape_of(prefix):
    """C,H,W of a shipped graph: its ``-input.json``, else the training run's settings."""
    from ..space.child import read_input_description

    shape = (read_input_description(prefix) or {}).get("shape")
    if shape:
        return tuple(shape[1:])
    folder = os.path.dirname(prefix)
    for name in ("args.json", "arch.json"):
        p = os.path.join(folder, name)
        if os.path.isfile(p):
            with open(p) as f:
                d = json.load(f)
            if d.get("image_shape"):
                return tuple(d["image_shape"])
    return None


def unsupported_ops(sym):
    nodes = json.loads(sym.tojson())["nodes"]
    return sorted({"%s (%s)" % (UNSUPPORTED[n["op"]], n["name"]) for n in nodes
                   if n["op"] in UNSUPPORTED})


def export(path, output, image_shape=None, seed=0):
    import mxnet as mx

    prefix, epoch = find_deploy(path)
    sym, arg, aux = mx.model.load_checkpoint(prefix, epoch)
    bad = unsupported_ops(sym)
    if bad:
        raise FBNetError("cannot export to ONNX: MXNet 1.9.1's exporter has no %s; train an "
                         "architecture without it" % ", ".join(bad))
    shape = image_shape or input_shape_of(prefix)
    if shape is None:
        raise FBNetError("input size unknown: pass --image-shape C,H,W")
    used = set(sym.list_arguments()) | set(sym.list_auxiliary_states())
    params = {k: v for k, v in {**arg, **aux}.items() if k in used}
    os.makedirs(os.path.dirname(os.path.abspath(output)) or ".", exist_ok=True)
    tmp = output + ".tmp"
    try:
        mx.onnx.export_model(sym, params, in_shapes=[(1,) + tuple(shape)],
                             in_types=[np.float32], onnx_file_path=tmp)
    except Exception as e:  # the exporter raises bare AttributeError/NotImplementedError
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise FBNetError("ONNX export of %s-%04d failed: %s; the graph uses an operator form "
                         "the exporter does not support (retrain with this version if the "
                         "model is older)" % (prefix, epoch, str(e).splitlines()[0][:200])) from None
    os.replace(tmp, output)
    # MXNet's answer on a fixed random input, for checking the export elsewhere
    x = np.random.RandomState(seed).uniform(-1, 1, (1,) + tuple(shape)).astype(np.float32)
    mod = mx.mod.Module(sym, data_names=["data"], label_names=None, context=mx.cpu())
    mod.bind(data_shapes=[("data", x.shape)], for_training=False)
    mod.set_params(arg, aux, allow_extra=True)
    mod.forward(mx.io.DataBatch([mx.nd.array(x)]), is_train=False)
    y = mod.get_outputs()[0].asnumpy()
    reference = output + ".reference.npz"
    np.savez(reference, input=x, output=y)
    return {"onnx": output, "reference": reference, "params": "%s-%04d.params" % (prefix, epoch),
            "input_shape": list(shape), "output_shape": list(y.shape)}


def export_insightface(path, folder):
    """Write ``folder/model-symbol.json`` / ``-NNNN.params`` / ``-input.json`` in InsightFace's
    form from a ``test.py --arch`` output (its ``arch.json`` says what the graph is)."""
    import mxnet as mx

    from ..space.architecture import load_architecture
    from ..space.child import ChildNet
    from ..space.heads import CLASSIFIER

    prefix, epoch = find_deploy(path)
    arch_json = os.path.join(os.path.dirname(prefix), "arch.json")
    if not os.path.isfile(arch_json):
        raise FBNetError("no arch.json beside %s-symbol.json: --insightface needs the folder "
                         "fbnet search --arch (test.py --arch) wrote" % prefix)
    shape = input_shape_of(prefix)
    if not shape:
        raise FBNetError("input size of %s unknown (no model-input.json or args.json)" % prefix)
    _, arg, aux = mx.model.load_checkpoint(prefix, epoch)
    classes = [v.shape[0] for k, v in arg.items() if k.startswith(CLASSIFIER)]
    net = ChildNet(load_architecture(arch_json), max(classes + [2]), tuple(shape))
    out = net.export_fc1(arg, aux, os.path.join(folder, "model"), epoch)
    return {"prefix": out, "epoch": epoch, "params": "%s-%04d.params" % (prefix, epoch),
            "input_shape": list(shape)}


def check_with_onnxruntime(onnx_path, reference, python, tol=1e-4):
    """Run :mod:`fbnet_symbol.ship.onnx_check` in another Python that has onnxruntime (``-I``:
    this package's folder must not shadow that Python's modules); returns its report."""
    res = subprocess.run([python, "-I", ORT_CHECK, onnx_path, reference, "--tol", str(tol)],
                         capture_output=True, text=True, timeout=600)
    try:
        report = json.loads(res.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise FBNetError("the onnxruntime check failed to run with %s: %s" % (
            python, (res.stderr.strip().splitlines() or ["no output"])[-1])) from None
    return report


def main(argv=None):
    from ..cli import ArgumentParser, add_threads_flag, start
    from ..space.spaces import parse_image_shape

    p = ArgumentParser(prog="fbnet export", description="export to ONNX")
    p.add_argument("--load-model-path", required=True,
                   help="a test.py --arch output folder or a model-NNNN.params")
    p.add_argument("--output", help="the .onnx file to write")
    p.add_argument("--insightface", metavar="FOLDER",
                   help="instead of ONNX: write InsightFace's form (raw RGB in, fc1 out) here")
    p.add_argument("--image-shape", help="C,H,W (default: the training run's)")
    p.add_argument("--check", action="store_true",
                   help="compare with onnxruntime (needs --ort-python or FBNET_ORT_PYTHON)")
    p.add_argument("--ort-python", default=os.environ.get("FBNET_ORT_PYTHON"),
                   help="a Python with onnxruntime (see requirements-onnxruntime.txt)")
    add_threads_flag(p)
    args = p.parse_args(argv)
    start(args.threads, announce=False)
    if bool(args.output) == bool(args.insightface):
        raise FBNetError("give one of --output FILE.onnx or --insightface FOLDER")
    if args.insightface:
        info = export_insightface(args.load_model_path, args.insightface)
        print("wrote %s-symbol.json and %s-%04d.params from %s: input data 1x%s raw 0-255 "
              "RGB, output fc1 (see %s-input.json)" % (
                  info["prefix"], info["prefix"], info["epoch"], info["params"],
                  "x".join(map(str, info["input_shape"])), info["prefix"]))
        return 0
    shape = parse_image_shape(args.image_shape) if args.image_shape else None
    info = export(args.load_model_path, args.output, shape)
    print("wrote %s from %s (input 1x%s, output %s)" % (
        info["onnx"], info["params"], "x".join(map(str, info["input_shape"])),
        "x".join(map(str, info["output_shape"]))))
    if args.check or args.ort_python:
        if not args.ort_python:
            raise FBNetError("--check needs a Python with onnxruntime: --ort-python PATH")
        report = check_with_onnxruntime(info["onnx"], info["reference"], args.ort_python)
        verdict = "OK" if report["ok"] else "MISMATCH"
        print("onnxruntime %s: max |ONNX - MXNet| = %.2e, %.1e of the output's largest value "
              "(tolerance %.0e): %s" % (report["onnxruntime"], report["max_abs_diff"],
                                        report["max_rel_diff"], report["tolerance"], verdict))
        return 0 if report["ok"] else 1
    return 0


if __name__ == "__main__":
    from ..cli import run
    run(main, sys.argv[1:])
