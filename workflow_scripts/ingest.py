"""Entry point of rule `ingest` (logic: neural_renderer.stages.ingest)."""

import sys

sm = snakemake  # noqa: F821 - injected by Snakemake's script directive
sys.path.insert(0, sm.scriptdir + "/..")  # the package without installing it (e.g. in conda envs)

from neural_renderer.threads import limit_threads

limit_threads(sm.threads)  # before numpy/torch/cv2 load: their thread pools read the limit once

from neural_renderer.snakemake_glue import run_stage
from neural_renderer.stages import ingest

run_stage(
    sm,
    "ingest",
    lambda: ingest.run(sm.input.video, sm.output.probe, sm.output.audio, ffmpeg=sm.params.ffmpeg, cfg=sm.params.cfg),
)
