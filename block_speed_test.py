"""Measure a latency lookup table on this device, or validate one. The seed's script name;
the command is ``fbnet measure`` (fbnet_symbol/commands/measure.py), which a wheel installs.

    python block_speed_test.py --space fbnet --preset seed --image-shape 3,108,108 \\
        --gpu cpu --batch-size 1 --output speed.txt
"""
import sys

from fbnet_symbol.cli import run
from fbnet_symbol.commands.measure import main, parse_args  # noqa: F401  (tests and scripts call these)

if __name__ == "__main__":
    run(main, sys.argv[1:])
