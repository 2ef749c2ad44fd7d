"""Run a command on an MXNet parameter-server cluster (MXNet's launch.py convention).

    python launch.py -n 2 -s 1 --launcher local python test.py --kv-store dist_sync
    python launch.py -n 4 -s 2 --launcher ssh -H hosts.txt python test.py --kv-store dist_sync

See README.md ("Several machines") and ``python launch.py --help``.
"""
import sys

from fbnet_symbol.cli import run
from fbnet_symbol.dist.launch import main

if __name__ == "__main__":
    run(main, sys.argv[1:])
