"""Entry point of rule `fetch_arcface` (logic: neural_renderer.stages.downloads)."""

import sys
from pathlib import Path

sm = snakemake  # noqa: F821 - injected by Snakemake's script directive
sys.path.insert(0, sm.scriptdir + "/..")  # the package without installing it (e.g. in conda envs)

from neural_renderer.snakemake_glue import run_stage
from neural_renderer.stages.downloads import fetch_arcface

out = Path(sm.output[0])
run_stage(sm, "fetch_arcface", lambda: fetch_arcface(out, out.parent / "downloads"))
