"""Entry point of rule `gaze` (logic: neural_renderer.stages.gaze)."""

import sys

sm = snakemake  # noqa: F821 - injected by Snakemake's script directive
sys.path.insert(0, sm.scriptdir + "/..")  # the package without installing it (e.g. in conda envs)

from neural_renderer.threads import limit_threads

limit_threads(sm.threads)  # before numpy/torch/cv2 load: their thread pools read the limit once

from neural_renderer.snakemake_glue import run_stage
from neural_renderer.stages import gaze

run_stage(
    sm,
    "gaze",
    lambda: gaze.run(
        sm.input.crop,
        sm.input.fit,
        sm.input.model,
        sm.output.h5,
        cfg=sm.params.cfg,
        kind=sm.params.kind,
        track_h5=sm.input.track,
    ),
)
