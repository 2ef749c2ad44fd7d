"""Image data: RecordIO files checked in Python, the one threaded reader of both indexings, data tools (``python -m fbnet_symbol.data``), the embedded digits.

Both indexings — flat ``.rec``/``.idx`` and InsightFace's identity-indexed one
(:mod:`fbnet_symbol.faces`) — are checked by :func:`.check.check_data` and read by
:class:`.reader.RecordReader`.
"""
