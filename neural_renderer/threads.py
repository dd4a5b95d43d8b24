"""Size every thread pool of a job from the threads Snakemake gave it.

Without this, torch, OpenCV, OpenBLAS/MKL (through numpy and scipy) and the video decoder each start one thread per
core of the machine: with `--cores 2` a 250-frame fit took 70 s inside the workflow and 12 s alone, and on a shared
SLURM node the job would steal other jobs' cores. The BLAS/OpenMP libraries read their limit from environment
variables once, when they load, so `limit_threads` must run before numpy/torch/cv2 are imported: every
`workflow_scripts/*.py` calls it first thing. Pools that can be resized later (torch, OpenCV) are set again by
`apply_thread_limits` once the stage's imports are done, and `thread_report` says what each library really uses (the
stage log records it; tests/test_workflow.py reads it from real jobs).

MediaPipe's TFLite interpreter has no thread setting in the Tasks API; it runs the graph on its own small pool.
"""

from __future__ import annotations

import os
import sys

# OpenMP (torch, OpenBLAS built with OpenMP), OpenBLAS, MKL, BLIS, Apple Accelerate, numexpr, OpenCV's own pool.
THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "OPENCV_FOR_THREADS_NUM",
)
JOB_THREADS_ENV = "PORTRAIT_JOB_THREADS"  # read by the video decoder (`job_threads`)


def limit_threads(n: int) -> int:
    """Set every thread-count variable to `n` (>= 1) for this process and its children; call before heavy imports."""
    n = max(1, int(n))
    for name in (*THREAD_ENV_VARS, JOB_THREADS_ENV):
        os.environ[name] = str(n)
    apply_thread_limits(n)
    return n


def apply_thread_limits(n: int) -> None:
    """Resize the pools of torch and OpenCV if they are already imported (the env variables cover later imports)."""
    n = max(1, int(n))
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)
    if "cv2" in sys.modules:
        sys.modules["cv2"].setNumThreads(n)


def job_threads(default: int = 0) -> int:
    """The job's thread budget as set by `limit_threads`, else `default` (0 = let the library choose)."""
    try:
        return max(0, int(os.environ.get(JOB_THREADS_ENV, default)))
    except ValueError:
        return default


def thread_report() -> dict[str, int | None]:
    """Threads each loaded library would use now (None: not loaded), for logs and tests."""
    report: dict[str, int | None] = {"job": job_threads() or None, "torch": None, "cv2": None, "blas": None}
    if "torch" in sys.modules:
        report["torch"] = int(sys.modules["torch"].get_num_threads())
    if "cv2" in sys.modules:
        report["cv2"] = int(sys.modules["cv2"].getNumThreads())
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return report
    blas = [int(p["num_threads"]) for p in threadpool_info() if p.get("user_api") in ("blas", "openmp")]
    report["blas"] = max(blas) if blas else None
    return report
