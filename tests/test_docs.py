"""docs/ARCHITECTURE.md's generated tables (rules -> entry scripts -> outputs from the workflow as Snakemake loads it,
the kinds of rendered output, the HDF5 files) are what `python docs/generate.py` makes from the current code."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_generated_parts_of_the_architecture_doc_are_current():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "generate.py"), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    # the tables are really there, filled from the workflow and the package
    for needle in ("| metrics_summary | `workflow_scripts/metrics_summary.py`", "| cross | reenact |", "| rendered |"):
        assert needle in text, needle
