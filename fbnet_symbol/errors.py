"""The one exception type users see.

Library code raises :class:`FBNetError` with a single line that names the problem and
the fix; entry scripts print it as ``error: ...`` and exit non-zero without a traceback.
"""


class FBNetError(ValueError):
    """A user-facing error: one line, says what is wrong and how to mend it."""
