"""Shipping a trained network: ONNX and InsightFace (fc1) exports, the onnxruntime check."""
