"""``csv/metrics.csv`` that survives ``resume=``: Lightning's CSVLogger deletes the file when it
opens a log dir that has one, so a resumed run used to lose the earlier epochs' rows."""
from __future__ import annotations

import csv
from typing import Any

from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment

from localize.tracking.atomic import atomic_file


class _AppendingWriter(ExperimentWriter):
    """Keeps an existing ``metrics.csv``: its header seeds the keys, new rows are appended (the
    writer's own code rewrites the file, old rows included, when a new key needs a wider header)."""

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as f:
                self.metrics_keys = list(next(csv.reader(f), []))

    def drop_after(self, step: int, epoch: int) -> int:
        """Drop the rows the interrupted part logged after its last checkpoint (that work is
        redone, and logged again, by the resumed run): rows of epochs >= ``epoch`` and rows without
        an epoch (learning rates, parameter counts) at steps >= ``step``. Returns how many."""
        if not self._fs.isfile(self.metrics_file_path):
            return 0
        with self._fs.open(self.metrics_file_path, "r", newline="") as f:
            reader = csv.DictReader(f)
            header, rows = list(reader.fieldnames or []), list(reader)

        def kept(row: dict[str, str]) -> bool:
            if row.get("epoch") not in (None, ""):
                return float(row["epoch"]) < epoch
            return row.get("step") in (None, "") or float(row["step"]) < step

        keep = [r for r in rows if kept(r)]
        if len(keep) < len(rows):
            with atomic_file(self.metrics_file_path) as f:
                writer = csv.DictWriter(f, fieldnames=header)
                writer.writeheader()
                writer.writerows(keep)
        return len(rows) - len(keep)


class ResumableCSVLogger(CSVLogger):
    """Lightning's ``CSVLogger``; with ``resume`` set (``resume=<run dir>``) it appends to the run
    dir's ``metrics.csv`` instead of deleting it. ``RunStatsCallback`` then drops the rows logged
    after the checkpoint the run resumes from (``resumed_at``).

    Args:
        resume: the run dir being resumed (``${resume}``), or None for a fresh log.
        *args, **kwargs: see ``CSVLogger``.
    """

    def __init__(self, *args: Any, resume: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._append = bool(resume)

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is not None:
            return self._experiment
        self._fs.makedirs(self.root_dir, exist_ok=True)
        self._experiment = (_AppendingWriter if self._append else ExperimentWriter)(log_dir=self.log_dir)
        return self._experiment

    def resumed_at(self, step: int, epoch: int) -> None:
        """The run continues from a checkpoint at ``step`` that starts ``epoch``: drop later rows."""
        writer = self.experiment
        if isinstance(writer, _AppendingWriter):
            writer.drop_after(step, epoch)


__all__ = ["ResumableCSVLogger"]
