"""Every bad record of a data file in one error: a loader checks all its records, then names the
first few in the message and writes the full list to a file (so a file with many bad records
is fixed in one pass, not one run per record)."""
import logging
import os
import tempfile
from contextlib import contextmanager
from typing import Iterator, List

from mma.errors import MMAUserError


class DataValidationError(MMAUserError):
    """A data set has samples that would fail (or silently go wrong) during training."""


#: What a bad record raises while it is read: a message of ours, a missing field, a wrong type.
RECORD_ERRORS = (MMAUserError, KeyError, TypeError, AttributeError)


def report_dir() -> str:
    """Where full lists of bad records go: the folder of the current run's log file (the work
    dir's timestamped folder under ``tools/train.py`` / ``tools/test.py``), else
    ``<temp dir>/mma``."""
    from mmengine.logging import MMLogger
    if MMLogger._instance_dict:
        for handler in MMLogger.get_current_instance().handlers:
            if isinstance(handler, logging.FileHandler):
                return os.path.dirname(handler.baseFilename)
    return os.path.join(tempfile.gettempdir(), 'mma')


class RecordErrors:
    """Collects the bad records of one data file; :meth:`raise_if_any` reports them together.

    Args:
        source: The file (named in the message and in the report's name).
        max_shown: How many records the message lists; the report file lists all.
    """

    def __init__(self, source: str, max_shown: int = 10):
        self.source, self.max_shown = source, max_shown
        self.errors: List[str] = []

    @contextmanager
    def record(self, name: str) -> Iterator[None]:
        """Run one record's checks; a failure is noted (``name`` says which record if the
        error does not) and the loader goes on with the next record."""
        try:
            yield
        except RECORD_ERRORS as err:
            if isinstance(err, MMAUserError):  # already names the file and the record
                self.errors.append(str(err))
            elif isinstance(err, KeyError) and err.args:
                self.errors.append(f'{self.source}: {name}: missing field {err.args[0]!r}')
            else:  # a wrong type: name the record and the exception
                self.errors.append(f'{self.source}: {name}: {type(err).__name__}: {err}')

    def raise_if_any(self, total: int) -> None:
        """Raise one :class:`DataValidationError` for every noted record (of ``total``)."""
        if not self.errors:
            return
        n = len(self.errors)
        folder = report_dir()
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f'bad_records_{os.path.basename(self.source)}.txt')
        with open(path, 'w') as f:
            f.write(f'{n} bad records of {total} in {self.source}:\n' +
                    '\n'.join(self.errors) + '\n')
        more = f'\n  ... and {n - self.max_shown} more' if n > self.max_shown else ''
        raise DataValidationError(
            f'{self.source}: {n} of {total} records are bad (fix them all, then run again; the '
            f'full list is in {path}):\n  ' + '\n  '.join(self.errors[:self.max_shown]) + more)
