"""Entry point of rule `build_ict_model` (logic: neural_renderer.stages.downloads)."""

import sys
from pathlib import Path

sm = snakemake  # noqa: F821 - injected by Snakemake's script directive
sys.path.insert(0, sm.scriptdir + "/..")  # the package without installing it (e.g. in conda envs)

from neural_renderer.threads import limit_threads

limit_threads(sm.threads)  # before numpy/torch/cv2 load: their thread pools read the limit once

from neural_renderer.snakemake_glue import run_stage
from neural_renderer.stages.downloads import build_ict_model

out = Path(sm.output[0])
run_stage(sm, "build_ict_model", lambda: build_ict_model(out, out.parent / "downloads"))
