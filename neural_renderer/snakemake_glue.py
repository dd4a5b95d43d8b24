"""Glue between Snakemake's `script:` object and the stage runners: logging and clear failure messages."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from neural_renderer.errors import PipelineInputError
from neural_renderer.threads import apply_thread_limits, thread_report


def run_stage(snakemake: Any, stage: str, fn: Callable[[], Any]) -> Any:
    """Run `fn` with logging to the rule's log file; bad input exits non-zero with a one-line reason.

    The reason goes to both the log and the job's stderr, so `snakemake --keep-going` shows which video failed and why
    while the other videos finish.
    """
    log_path = snakemake.log[0] if len(snakemake.log) else None
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        handlers.append(logging.FileHandler(log_path, mode="w"))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", handlers=handlers, force=True
    )
    log = logging.getLogger(f"neural_renderer.{stage}")
    wildcards = dict(snakemake.wildcards.items()) if hasattr(snakemake.wildcards, "items") else {}
    log.info("stage %s %s: inputs %s", stage, wildcards, list(snakemake.input))
    start = time.perf_counter()
    threads = int(getattr(snakemake, "threads", 1) or 1)
    apply_thread_limits(threads)  # the pools already loaded; the env set by `limit_threads` covers later imports
    try:
        result = fn()
    except PipelineInputError as exc:
        log.error("stage %s failed on bad input: %s", stage, exc)
        sys.exit(1)
    report = " ".join(f"{k}={v}" for k, v in thread_report().items())
    log.info("stage %s threads: rule=%d %s", stage, threads, report)
    log.info("stage %s done in %.1f s -> %s", stage, time.perf_counter() - start, list(snakemake.output))
    return result
