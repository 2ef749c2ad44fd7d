import os
import sys

# tests import the package and the entry scripts from the repository root
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
os.environ.setdefault("MXNET_ENGINE_TYPE", "NaiveEngine")
