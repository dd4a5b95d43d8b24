"""Entry point of rule `train_audio` (logic: neural_renderer.stages.train_audio)."""

import sys

sm = snakemake  # noqa: F821 - injected by Snakemake's script directive
sys.path.insert(0, sm.scriptdir + "/..")  # the package without installing it (e.g. in conda envs)

from neural_renderer.threads import limit_threads

limit_threads(sm.threads)  # before numpy/torch/cv2 load: their thread pools read the limit once

from neural_renderer.snakemake_glue import run_stage
from neural_renderer.stages import train_audio

run_stage(
    sm,
    "train_audio",
    lambda: train_audio.run(
        sm.input.tracking,
        sm.input.audio,
        sm.output.model,
        cfg=sm.params.cfg,
        renderer_cfg=sm.params.renderer,
        probe_json=sm.input.probe,
    ),
)
