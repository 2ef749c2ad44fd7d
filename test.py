"""Search: train the FBNet supernet (weights and theta alternately) and write theta; with
--arch, train one architecture from scratch. The seed's script name; the command is
``fbnet search`` (fbnet_symbol/commands/search.py), which a wheel installs too.

    python test.py --gpu 0,1,2,3 --log-frequence 50 --model-type softmax --batch-size 32
    python test.py --load-model-path ./model         # resume the newest good checkpoint
"""
import sys

from fbnet_symbol.cli import run
from fbnet_symbol.commands.search import main

if __name__ == "__main__":
    run(main, sys.argv[1:])
