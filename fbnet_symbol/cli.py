"""What every entry script shares: error handling, logging set-up, common parsing."""
import argparse
import logging
import sys

from .errors import FBNetError


def run(main, argv=None):
    """Run ``main(argv)``; a :class:`FBNetError` becomes one line on stderr and exit 2."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        code = main(argv)
    except FBNetError as e:
        _close_progress_bars()  # the error gets a line of its own, not the end of a bar's
        print("error: %s" % e, file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    sys.exit(code or 0)


def _close_progress_bars():
    """Close the progress bars an exception left open (leave=False bars clear their line)."""
    try:
        from tqdm import tqdm
    except ImportError:
        return
    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()
    sys.stderr.flush()


def format_count(n):
    """1234567 -> '1.23M'."""
    for unit, div in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= div:
            return "%.2f%s" % (n / div, unit)
    return str(n)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line error (``error: ...``, exit 2) instead of usage + error."""

    def error(self, message):
        self.exit(2, "error: %s (see %s --help)\n" % (message, self.prog))
