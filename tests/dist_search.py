"""A search run through the library (not a test module): ``python tests/dist_search.py
CONFIG_JSON OUT_DIR`` runs ``SearchRun(SearchConfig(**config))`` and saves this process's
parameters as ``OUT_DIR/params-rank<R>.npz``, so a test can compare what every worker of a
distributed run holds with a single-process run."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from fbnet_symbol.cli import run  # noqa: E402
from fbnet_symbol.search.run import SearchConfig, SearchRun  # noqa: E402
from fbnet_symbol.cli import setup_logging  # noqa: E402


def main(argv):
    setup_logging()
    search = SearchRun(SearchConfig(**json.loads(argv[0])))
    search.run()
    arg, _ = search.trainer.params()
    os.makedirs(argv[1], exist_ok=True)
    np.savez(os.path.join(argv[1], "params-rank%d.npz" % search.env.rank),
             **{name: value.asnumpy() for name, value in arg.items()})
    return 0


if __name__ == "__main__":
    run(main, sys.argv[1:])
