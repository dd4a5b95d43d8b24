"""Entry point of the model download rules (logic: neural_renderer.assets)."""

import sys
from pathlib import Path

sm = snakemake  # noqa: F821 - injected by Snakemake's script directive
sys.path.insert(0, sm.scriptdir + "/..")  # the package without installing it (e.g. in conda envs)

from neural_renderer.threads import limit_threads

limit_threads(sm.threads)  # before numpy/torch/cv2 load: their thread pools read the limit once

from neural_renderer.assets import ensure_asset
from neural_renderer.workflow import run_stage

out = Path(sm.output[0])
run_stage(sm, "download", lambda: ensure_asset(sm.params.name, out.parent))
