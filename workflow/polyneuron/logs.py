"""Logging for the workflow's scripts: progress to the job's log, warnings and user errors to
both."""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

from polyneuron import PolyneuronError


@contextmanager
def script_log(path: str) -> Iterator[logging.Logger]:
    """Send stderr (progress bars, warnings) to ``path``; a :class:`PolyneuronError` ends the
    job with its one-line message on the console and in the log, without a traceback."""
    console = sys.stderr
    with open(path, "w", buffering=1, encoding="utf-8") as log:
        sys.stderr = log
        logger = logging.getLogger("polyneuron")
        handler = logging.StreamHandler(log)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        # warnings (skipped lines, dropped prompts) also reach the console, not only the log
        warnings = logging.StreamHandler(console)
        warnings.setLevel(logging.WARNING)
        warnings.setFormatter(logging.Formatter("polyneuron warning: %(message)s"))
        logger.addHandler(warnings)
        logger.setLevel(logging.INFO)
        try:
            yield logger
            metered = sys.modules.get("polyneuron.model.work")
            if metered is not None:  # a model job under POLYNEURON_WORK_RATIO: its work line
                metered.finish(logger)
        except PolyneuronError as err:
            print(f"error: {err}", file=log)
            print(f"polyneuron error: {err}", file=console)
            raise SystemExit(1) from None
        except BaseException:
            traceback.print_exc(file=log)  # an unexpected failure: keep the trace in the log
            raise
        finally:
            logger.removeHandler(handler)
            logger.removeHandler(warnings)
            sys.stderr = console
