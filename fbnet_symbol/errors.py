"""The one exception type users see.

Library code raises :class:`FBNetError` with a single line that names the problem and
the fix; entry scripts print it as ``error: ...`` and exit non-zero without a traceback.
"""


class FBNetError(ValueError):
    """A user-facing error: one line, says what is wrong and how to mend it."""


class RunInterrupted(FBNetError):
    """A run stopped by SIGINT or SIGTERM after writing a checkpoint; the message says how to
    resume. Exits with the shell's code for the signal (130, 143)."""
    label = "stopped"

    def __init__(self, message, exit_code):
        super().__init__(message)
        self.exit_code = exit_code


class WriteFailed(FBNetError):
    """A file could not be written (a full disk, a quota, permissions); nothing half-written
    is left under its name."""
