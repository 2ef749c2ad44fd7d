"""What every entry script shares: one-line errors, the one logging set-up, common parsing."""
import argparse
import errno
import logging
import os
import sys

from .errors import FBNetError

# the folder that holds this copy of the package (a clone's root, or site-packages)
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def module_command(module, *args):
    """``(argv, env)`` that run ``python -m module args`` on this interpreter with this copy
    of the package, from any working directory, installed or not."""
    path = [PACKAGE_PARENT] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
                               if p and os.path.abspath(p) != PACKAGE_PARENT]
    return ([sys.executable, "-m", module] + [str(a) for a in args],
            dict(os.environ, PYTHONPATH=os.pathsep.join(path)))


class Terminated(KeyboardInterrupt):
    """SIGTERM outside the training loop (which checkpoints first: train/interrupt.py)."""


def _terminate(signum, frame):
    raise Terminated


def run(main, argv=None):
    """Run ``main(argv)``; a :class:`FBNetError` becomes one line on stderr and exit 2 (or
    its own code), Ctrl-C and SIGTERM one line and 130 / 143, a full disk one line."""
    import signal

    if not logging.getLogger().handlers:  # a script may have set up its log file already
        setup_logging()
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN:  # ignored by choice: stays so
        signal.signal(signal.SIGTERM, _terminate)  # unwind (temp files, locks), not vanish
    try:
        code = main(argv)
    except FBNetError as e:
        _close_progress_bars()  # the error gets a line of its own, not the end of a bar's
        print("%s: %s" % (getattr(e, "label", "error"), e), file=sys.stderr)
        code = getattr(e, "exit_code", 2)
    except Terminated:
        _close_progress_bars()
        print("stopped: SIGTERM", file=sys.stderr)
        code = 143
    except KeyboardInterrupt:
        _close_progress_bars()
        print("interrupted", file=sys.stderr)
        code = 130
    except OSError as e:  # a write outside the package's own writers, e.g. a full disk
        if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise
        _close_progress_bars()
        print("error: cannot write %s: %s; make room there and run again"
              % (e.filename or "a file", e.strerror), file=sys.stderr)
        code = 2
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


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults in the help, except for on/off flags and settings whose default is decided
    per run (``None``; their help says how)."""

    def _get_help_string(self, action):
        if action.nargs == 0 or action.default is None:
            return action.help
        return super()._get_help_string(action)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line error (``error: ...``, exit 2) instead of usage + error,
    and defaults in the help."""

    def __init__(self, *args, **kw):
        kw.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kw)

    def error(self, message):
        self.exit(2, "error: %s (see %s --help)\n" % (message, self.prog))


def as_argument(parse):
    """argparse's ``type`` for a parser of the package: its :class:`FBNetError` becomes
    argparse's one-line usage error."""
    def parse_argument(text):
        try:
            return parse(text)
        except FBNetError as e:  # argparse shows an ArgumentTypeError's own message
            raise argparse.ArgumentTypeError(str(e)) from None
    return parse_argument


def add_threads_flag(parser):
    """``--threads`` (default auto) for a command whose parser is not built from the
    Settings (the same help and parsing as the search's field)."""
    from .threads import THREADS_HELP, parse_threads
    parser.add_argument("--threads", default="auto", type=as_argument(parse_threads),
                        help=THREADS_HELP)


# a run's log, for a search and a fixed training (--arch) alike: the name of the first
# release, kept because users' scripts read it (files users keep do not change names)
RUN_LOG = "search.log"


def start(threads="auto", log_file=None, chosen=None, announce=True):
    """The start of every command, right after its flags are read and before MXNet loads:
    MXNet's thread count (``--threads``, or ``chosen`` as ``(count, why)``; None for a
    command that runs no MXNet operator itself, e.g. the launcher, whose children choose
    their own), the log (stderr, and ``log_file`` once the run starts) and a line saying
    how many threads run (``announce=False``: only in a debug log, for a short command
    whose output is its answer or its one-line error). Returns the count (None without)."""
    count = None
    if threads is not None or chosen is not None:
        from .threads import choose_threads, use_threads
        count, why = chosen or choose_threads(threads)
        count = use_threads(count)
    setup_logging(log_file)
    if count is not None:
        logging.getLogger(__name__).log(logging.INFO if announce else logging.DEBUG,
                                        "MXNet operators run %d threads (%s)", count, why)
    return count


def setup_logging(log_file=None, level=logging.INFO):
    """Console (and optional file) logging for entry scripts; the library only uses loggers.
    Replaces the handlers an earlier call added (a second run in one process logs to its
    own file only) and leaves everyone else's alone (a caller's, pytest's); adds no console
    of its own where one already writes to stderr or stdout. The file is only created when
    a run starts training (:func:`open_log_files`, called by the trainer): a run refused at
    its checks leaves nothing on disk; the records logged until then are kept and written
    first."""
    root = logging.getLogger()
    root.setLevel(level)
    for h in [h for h in root.handlers if getattr(h, "fbnet_owned", False)]:
        root.removeHandler(h)
        h.close()
    if not any(getattr(h, "stream", None) in (sys.stderr, sys.stdout) for h in root.handlers):
        console = _Console(sys.stderr)
        console.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s",
                                               "%H:%M:%S"))
        _own(console)
    if log_file:
        add_log_file(log_file)


def _own(handler):
    """Add ``handler`` to the root logger as one :func:`setup_logging` may replace."""
    handler.fbnet_owned = True
    logging.getLogger().addHandler(handler)


class _Console(logging.StreamHandler):
    """Log lines on the console that get a line of their own while a progress bar is drawn
    (tqdm lifts the bar, prints, redraws it), instead of being glued to the bar's end."""

    def emit(self, record):
        try:
            from tqdm import tqdm
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # as logging does: a broken console must not stop the run
            self.handleError(record)


class _LogFile(logging.FileHandler):
    """A log file that, once it cannot be written (a full disk), says so in one line and
    stops, instead of printing a traceback for every record."""
    failed = False

    def emit(self, record):
        if not self.failed:
            super().emit(record)

    def handleError(self, record):
        if not self.failed:
            self.failed = True
            print("warning: cannot write the log file %s (%s); logging to the console only"
                  % (self.baseFilename, sys.exc_info()[1]), file=sys.stderr)


class _PendingFileHandler(logging.Handler):
    """Keeps records in memory until :meth:`open`, then appends them and every later one
    to ``path`` (its folder created then)."""

    def __init__(self, path):
        super().__init__()
        self.path, self.pending, self.file = path, [], None
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))

    def open(self):
        if self.file is None:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            self.file = _LogFile(self.path, mode="a", encoding="utf-8")
            self.file.setFormatter(self.formatter)
            for record in self.pending:
                self.file.emit(record)
            self.pending = []

    def emit(self, record):
        if self.file is None:
            self.pending.append(record)
        else:
            self.file.emit(record)

    def close(self):
        if self.file is not None:
            self.file.close()
        super().close()


def add_log_file(log_file):
    """Also log every record to ``log_file``, from when :func:`open_log_files` is called."""
    _own(_PendingFileHandler(log_file))


def open_log_files():
    """The run passed its checks: create the log files and write what was logged so far."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, _PendingFileHandler):
            handler.open()
