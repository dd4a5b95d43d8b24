"""The `rendered` file of every render path (self-reenactment, cross-identity, audio, `portrait render`).

One writer, so the four paths stamp the same attributes the same way and the metrics read them alike; the schema
(`schema.py`, stage `rendered`) checks the arrays and the attributes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from neural_renderer.assets import sha256_file
from neural_renderer.storage.h5io import write_stage


def write_rendered(
    path: str | Path,
    frames: np.ndarray,
    frame_index: np.ndarray,
    *,
    kind: str,
    video: str,
    source_path: str | Path,
    stage_config: dict[str, Any],
    fps: float,
    driver: str,
    target: str,
    **extra: Any,
) -> None:
    """Frames (T, R, R, 3) uint8 and the driving frame each shows (T,), atomically, with provenance.

    kind: an `outputs.OutputKind`'s name; source_path: what drove the render (hashed into the provenance);
    extra: further attributes of the kind (e.g. target_model, test_latent).
    """
    frames = np.asarray(frames)
    write_stage(
        path,
        "rendered",
        {"frames": frames, "frame_index": np.asarray(frame_index, dtype=np.int64)},
        video=video,
        source_path=str(source_path),
        source_sha256=sha256_file(source_path),
        stage_config=stage_config,
        attrs={"fps": fps, "resolution": int(frames.shape[1]), "kind": kind, "driver": driver, "target": target}
        | extra,
    )
