"""crop: smoothed square crop boxes from the landmarks, and the landmarks in crop pixels (`crop.h5`).

Pixels are not stored here: `assemble` cuts them straight from the decoded video, so the crop boxes are the only
thing a change of crop parameters has to recompute before the frames are rewritten once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from neural_renderer.config import build_dataclass
from neural_renderer.crop import CropConfig, compute_crop_boxes, landmarks_to_crop
from neural_renderer.errors import PipelineInputError
from neural_renderer.storage import provenance, read_attrs, read_stage, write_stage


def run(track_h5: str | Path, out_h5: str | Path, *, cfg: dict[str, Any]) -> None:
    crop_cfg = build_dataclass(CropConfig, cfg)
    track = read_stage(track_h5, "track")
    attrs = read_attrs(track_h5)
    prov = provenance(track_h5)
    valid = track["valid"]
    if not valid.any():
        raise PipelineInputError(prov["source_path"], "no frame with a face to crop around")
    boxes = compute_crop_boxes(
        track["landmarks"],
        valid,
        (int(attrs["width"]), int(attrs["height"])),
        crop_cfg,
        fps=float(attrs["fps"]),
        source=prov["source_path"],
    )
    landmarks = landmarks_to_crop(track["landmarks"], boxes, crop_cfg.resolution).astype(np.float32)
    landmarks[~valid] = np.nan
    write_stage(
        out_h5,
        "crop",
        {"boxes": boxes.astype(np.float64), "landmarks": landmarks, "valid": valid},
        **prov,
        stage_config=cfg,
        attrs={"resolution": crop_cfg.resolution},
    )
