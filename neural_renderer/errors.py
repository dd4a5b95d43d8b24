"""Errors raised on bad input: one type, so the workflow scripts can report them uniformly."""

from __future__ import annotations

from pathlib import Path


class PipelineInputError(ValueError):
    """Bad input (corrupt video, no face, wrong config): the message names the file and the reason."""

    def __init__(self, path: str | Path | None, reason: str):
        self.path = None if path is None else str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}" if self.path else reason)
