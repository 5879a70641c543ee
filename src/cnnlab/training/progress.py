"""What the user sees while training: a Rich progress bar, one summary line per epoch, a log file.

The bar (loss, accuracy, images/s) is drawn only on a terminal; in a pipe or a log the epoch
summaries alone are printed. Every line printed also goes to the run's ``train.log``.
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path


def open_log(path: Path) -> logging.Logger:
    """A logger writing timestamped lines to ``path`` (appending: a resumed run continues its log)."""
    logger = logging.getLogger(f"cnnlab.run.{path.parent.resolve()}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for handler in list(logger.handlers):
        handler.close()
        logger.removeHandler(handler)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    logger.addHandler(handler)
    return logger


def close_log(logger: logging.Logger) -> None:
    for handler in list(logger.handlers):
        handler.close()
        logger.removeHandler(handler)


class Reporter:
    """Progress bar + epoch lines on the console, the same lines in the log."""

    def __init__(self, logger: logging.Logger, verbose: bool = True):
        self.logger = logger
        self.verbose = verbose
        self._progress = None
        self._task = None
        self._images = 0
        self._started = 0.0
        if verbose and sys.stdout.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[metrics]}"),
                TimeRemainingColumn(),
                transient=True,
            )

    def say(self, message: str, level: int = logging.INFO) -> None:
        """A line for the user and the log."""
        self.logger.log(level, message)
        if self.verbose or level >= logging.WARNING:
            if self._progress is not None and self._progress.live.is_started:
                self._progress.console.print(message, highlight=False, markup=False)
            else:
                print(message, file=sys.stdout if level < logging.WARNING else sys.stderr, flush=True)

    def start_epoch(self, epoch: int, total_epochs: int, batches: int, done: int) -> None:
        self._images, self._started = 0, time.perf_counter()
        if self._progress is None:
            return
        if not self._progress.live.is_started:
            self._progress.start()
        if self._task is not None:
            self._progress.remove_task(self._task)
        self._task = self._progress.add_task(f"epoch {epoch}/{total_epochs}", total=batches, completed=done, metrics="")

    def batches_done(self, batches: int, images: int, loss: float, accuracy: float) -> None:
        """``batches`` more steps done; ``loss`` and ``accuracy`` are the epoch's running means."""
        self._images += images
        if self._progress is None:
            return
        rate = self._images / max(time.perf_counter() - self._started, 1e-9)
        self._progress.update(
            self._task, advance=batches, metrics=f"loss {loss:.4f}  acc {accuracy:.4f}  {rate:,.0f} img/s"
        )

    def images_per_second(self) -> float:
        return self._images / max(time.perf_counter() - self._started, 1e-9)

    def close(self) -> None:
        if self._progress is not None and self._progress.live.is_started:
            self._progress.stop()
