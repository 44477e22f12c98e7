"""mmengine's ``Runner`` with a console for people: progress and warnings on the screen, the full
log (environment, config, hook tables, per-parameter optimiser settings) in the work dir's file.

mmengine prints all of it to the console too: about 1,100 lines for the tiny demo. The filter sits
on the logger's console handler only, so the log file under ``WORK_DIR/<timestamp>/`` keeps every
line. ``console_output='full'`` in the config gives mmengine's console back.
"""
import logging

from mmengine.logging import MMLogger
from mmengine.runner import Runner

#: (module, function) of mmengine's log calls that the console keeps at level INFO: the progress
#: line per logging interval, validation and test results, where checkpoints go, a resume.
CONSOLE_INFO_SOURCES = frozenset({
    ('logger_hook', 'after_train_iter'), ('logger_hook', 'after_val_epoch'),
    ('logger_hook', 'after_test_epoch'), ('checkpoint_hook', 'before_train'),
    ('runner', 'resume')})


#: mmengine's notices about its own internals (``FileClient``, ``HardDiskBackend``): nothing for
#: a user to act on; they stay in the log file.
_INTERNAL_NOTICES = ('will be deprecated', 'is the alias of')


class ProgressOnlyFilter(logging.Filter):
    """Let warnings and errors through (but mmengine's notices about its internals), and INFO
    records from :data:`CONSOLE_INFO_SOURCES`."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            return record.levelno > logging.WARNING or not any(
                n in message for n in _INTERNAL_NOTICES)
        return ((record.module, record.funcName) in CONSOLE_INFO_SOURCES
                and not message.startswith('Exp name:'))


def quiet_console(logger: logging.Logger) -> None:
    """Add :class:`ProgressOnlyFilter` to the console handlers of ``logger`` (not its files)."""
    for handler in logger.handlers:
        if isinstance(handler, logging.StreamHandler) and not isinstance(
                handler, logging.FileHandler):
            handler.addFilter(ProgressOnlyFilter())


class MMARunner(Runner):
    """``Runner`` whose console shows progress, results and warnings only (module doc).

    Config key ``console_output``: ``'progress'`` (default) or ``'full'`` (mmengine's console).
    """

    def build_logger(self, *args, **kwargs) -> MMLogger:
        logger = super().build_logger(*args, **kwargs)
        mode = self.cfg.get('console_output', 'progress')
        if mode not in ('progress', 'full'):
            raise ValueError(f"console_output={mode!r}: expected 'progress' or 'full'")
        if mode == 'progress':
            quiet_console(logger)
        return logger
