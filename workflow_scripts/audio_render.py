"""Entry point of rule `audio_render` (logic: neural_renderer.stages.audio_render)."""

import sys

sm = snakemake  # noqa: F821 - injected by Snakemake's script directive
sys.path.insert(0, sm.scriptdir + "/..")  # the package without installing it (e.g. in conda envs)

from neural_renderer.threads import limit_threads

limit_threads(sm.threads)  # before numpy/torch/cv2 load: their thread pools read the limit once

from neural_renderer.snakemake_glue import run_stage
from neural_renderer.stages import audio_render

run_stage(
    sm,
    "audio_render",
    lambda: audio_render.run(
        sm.input.audio,
        sm.input.tracking,
        sm.input.renderer,
        sm.input.audio_model,
        sm.output.mp4,
        sm.output.h5,
        cfg=sm.params.cfg,
        clip=sm.wildcards.clip,
        target=sm.wildcards.video,
        ffmpeg=sm.params.ffmpeg,
    ),
)
