"""Entry point of rules `real_features`, `rendered_features`, `driving_features` (param `frames` says which set).

Logic: neural_renderer.stages.metric_features.
"""

import sys

sm = snakemake  # noqa: F821 - injected by Snakemake's script directive
sys.path.insert(0, sm.scriptdir + "/..")  # the package without installing it (e.g. in conda envs)

from neural_renderer.threads import limit_threads

limit_threads(sm.threads)  # before numpy/torch/cv2 load: their thread pools read the limit once

from neural_renderer.snakemake_glue import run_stage
from neural_renderer.stages import metric_features

inputs = {key: str(value) for key, value in sm.input.items()}
run_stage(
    sm,
    sm.rule,
    lambda: metric_features.run(
        sm.params.frames, inputs, sm.output[0], cfg=sm.params.cfg, motion_cfg=sm.params.motion, name=sm.wildcards.video
    ),
)
