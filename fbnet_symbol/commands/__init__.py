"""Every command of the package behind one entry: ``fbnet COMMAND`` or ``python -m fbnet_symbol COMMAND``.

A clone keeps the seed's scripts (``test.py``, ``sample.py``, ``block_speed_test.py``,
``launch.py``) as thin shims over the same commands, so a wheel and a clone run the same
code with the same flags.
"""
import importlib
import sys

from ..cli import run

# name: (module whose main(argv) runs it, what it does, the clone's script of the same command)
COMMANDS = {
    "search": ("fbnet_symbol.commands.search",
               "search a network on your data (with --arch: train one from scratch)", "test.py"),
    "sample": ("fbnet_symbol.commands.sample",
               "turn a search's theta into architectures, or describe one", "sample.py"),
    "measure": ("fbnet_symbol.commands.measure",
                "measure a latency table on this device, or validate one",
                "block_speed_test.py"),
    "launch": ("fbnet_symbol.dist.launch",
               "run a command on a parameter-server cluster (dist_sync)", "launch.py"),
    "export": ("fbnet_symbol.ship.export", "export a trained network to ONNX or InsightFace",
               None),
    "verify": ("fbnet_symbol.faces.verify", "face verification of a trained network on .bin "
                                            "pair sets", None),
    "study": ("fbnet_symbol.search.study",
              "searched against random and hand-designed networks, end to end",
              None),
    "data": ("fbnet_symbol.data.__main__", "pack, split, check and index RecordIO files; "
                                           "synthetic faces", None),
}


def usage():
    lines = ["usage: fbnet COMMAND [flags]   (or: python -m fbnet_symbol COMMAND [flags])", "",
             "commands:"]
    for name, (_, what, script) in COMMANDS.items():
        lines.append("  %-8s %s%s" % (name, what, " (the clone's %s)" % script if script else ""))
    lines.append("\n`fbnet COMMAND --help` lists a command's flags.")
    return "\n".join(lines)


def command_main(name):
    """The ``main(argv)`` of command ``name``."""
    return importlib.import_module(COMMANDS[name][0]).main


def main(argv=None):
    """``fbnet COMMAND ...``: run the command (one-line errors, exit 2, as every script)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        sys.exit(0 if argv else 2)
    name = argv[0]
    if name not in COMMANDS:
        print("error: unknown command %r; the commands are %s (see fbnet --help)"
              % (name, ", ".join(COMMANDS)), file=sys.stderr)
        sys.exit(2)
    sys.argv = ["fbnet " + name] + argv[1:]  # argparse's usage names the command as typed
    run(command_main(name), argv[1:])


def forward(name):
    """An earlier release's ``python -m fbnet_symbol.NAME``: one line naming the command it
    is now, then that command."""
    print("note: python -m fbnet_symbol.%s is now `fbnet %s` (python -m fbnet_symbol %s); "
          "the old name works for this release" % (name, name, name), file=sys.stderr)
    sys.argv[0] = "fbnet " + name
    run(command_main(name), sys.argv[1:])
