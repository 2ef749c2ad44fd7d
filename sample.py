"""Turn theta into architectures, or describe one architecture. The seed's script name; the
command is ``fbnet sample`` (fbnet_symbol/commands/sample.py), which a wheel installs too.

    python sample.py --load-model-path model --output archs
"""
import sys

from fbnet_symbol.cli import run
from fbnet_symbol.commands.sample import main, parse_args  # noqa: F401  (tests and scripts call these)

if __name__ == "__main__":
    run(main, sys.argv[1:])
