"""Ctrl-C and SIGTERM during training: stop at the next step boundary, after a checkpoint.

A scheduler sends SIGTERM before it preempts a job; a user presses Ctrl-C. Either way the
step under way finishes, the trainer writes a checkpoint of that position and the run ends
with a line that says how to resume (an exact resume: docs/design.md). A second signal
stops at once, as before (the steps since the last checkpoint are lost).
"""
import logging
import signal
import threading

from ..errors import RunInterrupted

logger = logging.getLogger(__name__)

NAMES = {signal.SIGINT: "Ctrl-C (SIGINT)", signal.SIGTERM: "SIGTERM"}


class StopSignals:
    """While entered, SIGINT and SIGTERM set :attr:`received` instead of stopping the
    process. Off when ``enabled`` is False (several workers cannot agree on the step) or
    outside the main thread (Python delivers signals there only). A signal the process was
    started to ignore stays ignored (``cmd &`` in a script, ``nohup``-style launchers): the
    caller chose that run to outlive a Ctrl-C."""

    def __init__(self, enabled=True):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.received = None
        self._previous = {}

    def __enter__(self):
        if self.enabled:
            for sig in NAMES:
                if signal.getsignal(sig) is not signal.SIG_IGN:
                    self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def _handle(self, signum, frame):
        if self.received is not None:  # asked twice: stop now
            self.__exit__()
            raise KeyboardInterrupt
        self.received = signum
        logger.warning("%s: stopping after this step, once a checkpoint is written (send it "
                       "again to stop at once)", NAMES[signum])

    @property
    def name(self):
        return NAMES.get(self.received, "a signal")

    @property
    def exit_code(self):
        """The shell's code for death by this signal (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + int(self.received)

    def stopped(self, position, step, checkpoint, out):
        """The :class:`RunInterrupted` a run raises once its checkpoint is written."""
        epoch, phase, batch = position
        return RunInterrupted(
            "%s at epoch %d, %s phase, batch %d (step %d); checkpoint %s written: resume with "
            "--load-model-path %s" % (self.name, epoch, phase, batch, step, checkpoint, out),
            self.exit_code)
