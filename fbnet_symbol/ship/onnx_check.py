"""Run an ONNX model in onnxruntime and compare with MXNet's saved outputs.

Runs in a separate environment (onnxruntime for Python 3.11 needs numpy >= 1.24, MXNet
1.9.1 needs numpy < 1.24), so it imports only numpy and onnxruntime and is run by path
(``fbnet_symbol.ship.export`` does this):

    .venv-ort/bin/python -I fbnet_symbol/ship/onnx_check.py model.onnx reference.npz [--tol 1e-4]

``reference.npz`` holds ``input`` and ``output`` arrays written by the exporter. Prints
one JSON object with ``max_abs_diff`` and ``max_rel_diff`` (over the output's largest
magnitude, at least 1: an embedding trained without normalisation can reach 1e4, where
float32 itself differs by 1e-3) and exits 1 when the relative one exceeds the tolerance.
"""
import argparse
import json
import sys

import numpy as np
import onnxruntime as ort


def main():
    p = argparse.ArgumentParser()
    p.add_argument("onnx")
    p.add_argument("reference")
    p.add_argument("--tol", type=float, default=1e-4)
    args = p.parse_args()
    ref = np.load(args.reference)
    sess = ort.InferenceSession(args.onnx, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    out = sess.run(None, {name: ref["input"].astype(np.float32)})[0]
    diff = float(np.abs(out - ref["output"]).max())
    relative = diff / max(1.0, float(np.abs(ref["output"]).max()))
    print(json.dumps({"max_abs_diff": diff, "max_rel_diff": relative, "tolerance": args.tol,
                      "shape": list(out.shape), "onnxruntime": ort.__version__,
                      "ok": relative <= args.tol}))
    return 0 if relative <= args.tol else 1


if __name__ == "__main__":
    sys.exit(main())
