"""Entry point of rule `correspondence` (logic: neural_renderer.stages.correspondence)."""

import sys

sm = snakemake  # noqa: F821 - injected by Snakemake's script directive
sys.path.insert(0, sm.scriptdir + "/..")  # the package without installing it (e.g. in conda envs)

from neural_renderer.threads import limit_threads

limit_threads(sm.threads)  # before numpy/torch/cv2 load: their thread pools read the limit once

from neural_renderer.snakemake_glue import run_stage
from neural_renderer.stages import correspondence

run_stage(
    sm,
    "correspondence",
    lambda: correspondence.run(sm.input.model, sm.input.landmarker, sm.output[0], kind=sm.params.kind),
)
