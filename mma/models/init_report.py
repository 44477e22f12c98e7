"""mmengine's per-parameter ``init_weights`` report: into the log file, not onto the console."""
import contextlib
import logging

from mmengine.logging import MMLogger


@contextlib.contextmanager
def init_report_to_log_file_only():
    """mmengine's ``init_weights`` writes a per-parameter report into the log file of a Runner,
    and without one (chat, merging, benchmarks) prints it, a few lines per parameter, to the
    console. Keep the log-file report; drop the console one (and other INFO lines of the call)."""
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)
