"""Entry point of rule `crop` (logic: neural_renderer.stages.crop)."""

import sys

sm = snakemake  # noqa: F821 - injected by Snakemake's script directive
sys.path.insert(0, sm.scriptdir + "/..")  # the package without installing it (e.g. in conda envs)

from neural_renderer.threads import limit_threads

limit_threads(sm.threads)  # before numpy/torch/cv2 load: their thread pools read the limit once

from neural_renderer.snakemake_glue import run_stage
from neural_renderer.stages import crop

run_stage(sm, "crop", lambda: crop.run(sm.input.track, sm.output.h5, cfg=sm.params.cfg))
