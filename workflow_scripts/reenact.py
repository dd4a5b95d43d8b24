"""Entry point of rule `reenact` (logic: neural_renderer.stages.reenact)."""

import sys

sm = snakemake  # noqa: F821 - injected by Snakemake's script directive
sys.path.insert(0, sm.scriptdir + "/..")  # the package without installing it (e.g. in conda envs)

from neural_renderer.threads import limit_threads

limit_threads(sm.threads)  # before numpy/torch/cv2 load: their thread pools read the limit once

from neural_renderer.snakemake_glue import run_stage
from neural_renderer.stages import reenact

run_stage(
    sm,
    "reenact",
    lambda: reenact.run(
        sm.input.driver_tracking,
        sm.input.target_tracking,
        sm.input.model,
        sm.output.mp4,
        sm.output.h5,
        cfg=sm.params.cfg,
        driver=sm.wildcards.driver,
        target=sm.wildcards.video,
        driver_video=sm.input.driver_video,
        driver_probe=sm.input.driver_probe,
        ffmpeg=sm.params.ffmpeg,
    ),
)
