"""assemble: `tracking.h5` = cropped frames cut from the decoded video + every stage's datasets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from neural_renderer.crop import crop_frame
from neural_renderer.errors import PipelineInputError
from neural_renderer.storage import assemble_tracking, read_attrs, read_stage
from neural_renderer.video import decode_frames, load_probe


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
    timestamps = read_stage(stage_files["track"], "track")["timestamps_s"]
    resolution = int(read_attrs(stage_files["crop"])["resolution"])

    def cropped() -> Iterator[np.ndarray]:
        for i, (box, (t, frame)) in enumerate(zip(boxes, decode_frames(video_path, info))):
            if t != timestamps[i]:  # the same plan decodes the same frames: anything else means the file changed
                raise PipelineInputError(
                    video_path, f"frame {i} is at {t:.6f} s now but was tracked at {timestamps[i]:.6f} s"
                )
            yield crop_frame(frame, box, resolution)

    fps = float(read_attrs(stage_files["track"])["fps"])
    return assemble_tracking(out_h5, stage_files, cropped(), len(boxes), resolution, {"fps": fps}, timestamps)
