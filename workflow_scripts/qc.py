"""Entry point of rule `qc` (logic: neural_renderer.stages.qc)."""

import sys

sm = snakemake  # noqa: F821 - injected by Snakemake's script directive
sys.path.insert(0, sm.scriptdir + "/..")  # the package without installing it (e.g. in conda envs)

from neural_renderer.threads import limit_threads

limit_threads(sm.threads)  # before numpy/torch/cv2 load: their thread pools read the limit once

from neural_renderer.snakemake_glue import run_stage
from neural_renderer.stages import qc

run_stage(
    sm,
    "qc",
    lambda: qc.run(
        sm.input.tracking, sm.input.model, sm.output.sheet, sm.output.stats, cfg=sm.params.cfg, kind=sm.params.kind
    ),
)
