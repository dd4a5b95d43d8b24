"""Entry point of rules `real_features`, `rendered_features`, `driving_features` (param `frames` says which set).

Logic: neural_renderer.stages.metric_features.
"""

import sys

sm = snakemake  # noqa: F821 - injected by Snakemake's script directive
sys.path.insert(0, sm.scriptdir + "/..")  # the package without installing it (e.g. in conda envs)

from neural_renderer.threads import limit_threads

limit_threads(sm.threads)  # before numpy/torch/cv2 load: their thread pools read the limit once

from neural_renderer.metrics.features import MotionModels
from neural_renderer.stages import metric_features
from neural_renderer.workflow import run_stage

models = MotionModels(sm.input.landmarker, sm.input.model, sm.input.correspondence)
common = dict(cfg=sm.params.cfg, name=sm.wildcards.video, models=models)
jobs = {
    "real_test": lambda: metric_features.run_real(sm.input.tracking, sm.input.renderer, sm.output[0], **common),
    "rendered": lambda: metric_features.run_rendered(sm.input.rendered, sm.output[0], **common),
    "driving": lambda: metric_features.run_driving(sm.input.tracking, sm.input.rendered, sm.output[0], **common),
}
run_stage(sm, sm.rule, jobs[sm.params.frames])
