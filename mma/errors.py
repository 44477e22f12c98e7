"""The errors a user can fix (data, files, config) and how the tools report them.

Every error mma raises for bad input is an :class:`MMAUserError` (a ``ValueError``; the ``KeyError``
flavour for a missing key or qid) whose message names the file, qid or config key and says what to
do. ``tools/train.py`` and ``tools/test.py`` print such an error (and a missing file) as one
paragraph and exit with status 2 (:func:`report_user_errors`); ``--debug`` or ``MMA_DEBUG=1`` shows
the traceback. Any other exception is a bug and keeps its traceback.
"""
import os
import sys
from contextlib import contextmanager
from typing import Iterator

EXIT_USER_ERROR = 2


class MMAUserError(ValueError):
    """Bad data, a bad file or a bad config value: the message says where and what to do."""


class MMAKeyError(MMAUserError, KeyError):
    """A missing key, split or qid (also a ``KeyError``, for callers that catch that)."""

    __str__ = BaseException.__str__  # the message as written, not KeyError's repr()


class CorruptFileError(MMAUserError):
    """A file exists but cannot be read as what it should be (truncated, corrupt, wrong kind)."""


USER_ERRORS = (MMAUserError, FileNotFoundError)


def debug_requested(flag: bool = False) -> bool:
    """``--debug`` or ``MMA_DEBUG`` set to anything but ``''``/``0``."""
    return flag or os.environ.get('MMA_DEBUG', '0') not in ('', '0')


@contextmanager
def report_user_errors(tool: str, debug: bool = False) -> Iterator[None]:
    """Turn a user error raised inside the block into one paragraph on stderr and exit status 2.

    Args:
        tool: Named at the start of the paragraph (e.g. ``'tools/train.py'``).
        debug: Re-raise instead (the full traceback), as does ``MMA_DEBUG=1``.
    """
    try:
        yield
    except USER_ERRORS as err:
        if debug_requested(debug):
            raise
        msg = str(err).strip() or type(err).__name__
        print(f'{tool}: error: {msg}\n(exit status {EXIT_USER_ERROR}; run with --debug or '
              'MMA_DEBUG=1 for the traceback)', file=sys.stderr, flush=True)
        raise SystemExit(EXIT_USER_ERROR) from None
