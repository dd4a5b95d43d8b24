"""Loading the `.pt` files the pipeline writes: tensors and plain containers only, never code.

`torch.load(weights_only=False)` unpickles arbitrary objects, and a pickle's `__reduce__` runs whatever it names on
load, so a model file from elsewhere could run code. Every loader goes through `load_weights`; what it refuses
becomes one line naming the file (torch's own message is a page that suggests loading the file unsafely).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from neural_renderer.errors import PipelineInputError

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def load_error_reason(exc: BaseException) -> str:
    """One line saying why torch refused a file: the unpickler's verdict when there is one, else the first line."""
    text = _ANSI.sub("", str(exc))
    if "WeightsUnpickler error:" in text:
        verdict = text.split("WeightsUnpickler error:", 1)[1].split("Check the documentation", 1)[0]
        return "not plain weights, refused unread: " + " ".join(verdict.split(" Please use", 1)[0].split())
    return next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)


def load_weights(path: str | Path, what: str, map_location: Any = "cpu") -> Any:
    """`torch.load` with `weights_only=True`; a file it cannot or will not load is a PipelineInputError (one line)."""
    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is "not such a file"
        raise PipelineInputError(path, f"cannot load {what} ({load_error_reason(exc)})") from None
