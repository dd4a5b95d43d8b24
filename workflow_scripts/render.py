"""Entry point of rule `render` (logic: neural_renderer.stages.render)."""

import sys

sm = snakemake  # noqa: F821 - injected by Snakemake's script directive
sys.path.insert(0, sm.scriptdir + "/..")  # the package without installing it (e.g. in conda envs)

from neural_renderer.threads import limit_threads

limit_threads(sm.threads)  # before numpy/torch/cv2 load: their thread pools read the limit once

from neural_renderer.snakemake_glue import run_stage
from neural_renderer.stages import render

run_stage(
    sm,
    "render",
    lambda: render.run(
        sm.input.tracking,
        sm.input.model,
        sm.output.mp4,
        sm.output.h5,
        sm.output.side_by_side,
        cfg=sm.params.cfg,
        probe_json=sm.input.probe,
        raw_video=sm.input.video,
        ffmpeg=sm.params.ffmpeg,
        video=sm.wildcards.video,
    ),
)
