"""Entry point of rule `train_renderer` (logic: neural_renderer.stages.train_renderer)."""

import sys

sm = snakemake  # noqa: F821 - injected by Snakemake's script directive
sys.path.insert(0, sm.scriptdir + "/..")  # the package without installing it (e.g. in conda envs)

from neural_renderer.threads import limit_threads

limit_threads(sm.threads)  # before numpy/torch/cv2 load: their thread pools read the limit once

from neural_renderer.snakemake_glue import run_stage
from neural_renderer.stages import train_renderer

run_stage(
    sm,
    "train_renderer",
    lambda: train_renderer.run(sm.input.tracking, sm.output.model, cfg=sm.params.cfg, work_dir=sm.params.work_dir),
)
