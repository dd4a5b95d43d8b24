"""tqdm progress bars for the long stages (track, fit, render, reenact, metric features, training).

Bars go to stderr, which a Snakemake job's `log:` captures; in a log file (no terminal) they refresh every 10 s
instead of every second, so logs stay short. `PORTRAIT_PROGRESS=0` turns them off.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any


def progress(
    iterable: Iterable[Any] | None = None, *, total: int | None = None, desc: str, unit: str = "it", **kwargs: Any
):
    from tqdm import tqdm

    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        dynamic_ncols=True,
        mininterval=1.0 if sys.stderr.isatty() else 10.0,
        disable=os.environ.get("PORTRAIT_PROGRESS", "1") == "0",
        **kwargs,
    )
