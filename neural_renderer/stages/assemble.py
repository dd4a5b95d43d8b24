"""assemble: `tracking.h5` = cropped frames cut from the decoded video + every stage's datasets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from neural_renderer.crop import crop_frame
from neural_renderer.stages.ingest import load_probe
from neural_renderer.storage import assemble_tracking, read_attrs, read_stage
from neural_renderer.video import iter_frames


def run(
    video_path: str | Path,
    probe_json: str | Path,
    stage_files: dict[str, str | Path],
    out_h5: str | Path,
    *,
    ffmpeg: str | None = None,
) -> int:
    info, _ = load_probe(probe_json)
    boxes = read_stage(stage_files["crop"], "crop")["boxes"]
    resolution = int(read_attrs(stage_files["crop"])["resolution"])

    def cropped() -> Iterator[np.ndarray]:
        for box, frame in zip(boxes, iter_frames(video_path, info, ffmpeg=ffmpeg)):
            yield crop_frame(frame, box, resolution)

    fps = float(read_attrs(stage_files["track"])["fps"])
    return assemble_tracking(out_h5, stage_files, cropped(), len(boxes), resolution, {"fps": fps})
