"""Entry point of rule `metrics` (logic: neural_renderer.stages.metrics)."""

import sys

sm = snakemake  # noqa: F821 - injected by Snakemake's script directive
sys.path.insert(0, sm.scriptdir + "/..")  # the package without installing it (e.g. in conda envs)

from neural_renderer.threads import limit_threads

limit_threads(sm.threads)  # before numpy/torch/cv2 load: their thread pools read the limit once

from neural_renderer.snakemake_glue import run_stage
from neural_renderer.stages import metrics

run_stage(
    sm,
    "metrics",
    lambda: metrics.run(
        sm.params.kind,
        sm.input.rendered,
        sm.input.generated,
        sm.input.real,
        sm.output[0],
        cfg=sm.params.cfg,
        target=sm.wildcards.video,
        method=sm.params.method,
        real_tracking=sm.input.get("tracking"),
        driving_features=sm.input.get("driving"),
    ),
)
