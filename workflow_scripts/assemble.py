"""Entry point of rule `assemble` (logic: neural_renderer.stages.assemble)."""

import sys

sm = snakemake  # noqa: F821 - injected by Snakemake's script directive
sys.path.insert(0, sm.scriptdir + "/..")  # the package without installing it (e.g. in conda envs)

from neural_renderer.threads import limit_threads

limit_threads(sm.threads)  # before numpy/torch/cv2 load: their thread pools read the limit once

from neural_renderer.snakemake_glue import run_stage
from neural_renderer.stages import assemble

stage_files = {stage: sm.input[stage] for stage in ("track", "crop", "fit", "gaze")}
run_stage(
    sm,
    "assemble",
    lambda: assemble.run(sm.input.video, sm.input.probe, stage_files, sm.output.h5, ffmpeg=sm.params.ffmpeg),
)
