"""Errors raised while reading or validating data."""
from __future__ import annotations

import re
from collections.abc import Sequence


class DataError(ValueError):
    """Raised when input data or its configuration is invalid; the message names the file and the fix."""


class LabelsUnknownToModel(DataError):
    """Evaluation data with labels a trained model has no output for; ``problem`` is what the data holds
    (without the fix), e.g. for a continual sequence to record why a cell was not measured."""

    def __init__(self, message: str, problem: str) -> None:
        super().__init__(message)
        self.problem = problem


def label_override(labels: Sequence[str]) -> str:
    """``data.labels=[O,B-LOC,I-LOC]`` as typed on a command line (the fix of a label-set error; quote it
    for the shell)."""
    def one(x: str) -> str:
        plain = re.fullmatch(r"[A-Za-z_][\w.-]*", x) and x.lower() not in ("null", "true", "false")
        return x if plain else "'" + x.replace("'", "\\'") + "'"

    return "data.labels=[" + ",".join(one(x) for x in labels) + "]"
