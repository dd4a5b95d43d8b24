"""The README's demo from one command (`portrait demo`): the whole workflow on the shipped sample clip, then the report.

It runs exactly what the README says (`snakemake --cores all`, then `snakemake --report report.html`) with the
shipped Snakefile and config, in the repository checkout (or a working directory laid out like one), so the demo and
the documented commands cannot drift apart.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from neural_renderer.config import REPO_ROOT
from neural_renderer.errors import PipelineInputError

REPORT = "report.html"


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    snakefile = workdir / "Snakefile" if (workdir / "Snakefile").is_file() else REPO_ROOT / "Snakefile"
    if not snakefile.is_file():
        raise PipelineInputError(snakefile, "the demo needs the repository checkout (Snakefile not found)")
    return [sys.executable, "-m", "snakemake", "-s", str(snakefile), "--directory", str(workdir), *args]


def run_demo(workdir: str | Path = REPO_ROOT, *, cores: str = "all", dry_run: bool = False) -> Path:
    """Run (or with `dry_run`, plan) the demo in `workdir`; returns the report's path. Snakemake's output streams
    through; a failed step raises PipelineInputError naming it."""
    workdir = Path(workdir).resolve()
    if not (workdir / "config.yaml").is_file():
        raise PipelineInputError(workdir, "no config.yaml here: run the demo in the repository checkout (--directory)")
    if dry_run:
        steps = [["--cores", cores, "--dry-run"]]
    else:
        steps = [["--cores", cores], ["--cores", cores, "--report", REPORT]]
    for args in steps:
        cmd = snakemake_command(workdir, *args)
        if subprocess.run(cmd, cwd=workdir).returncode != 0:
            raise PipelineInputError(workdir, f"`snakemake {' '.join(args)}` failed (see its output above)")
    return workdir / REPORT
