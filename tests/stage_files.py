"""Stage files (`track.h5`, `crop.h5`, `fit.h5`) of synthetic heads, written through the real schema
(`storage.write_stage`), so a test can run one stage on inputs whose right answer it knows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from neural_renderer.storage import write_stage

PROV = {"video": "synthetic", "source_path": "synthetic.mp4", "source_sha256": "0" * 64, "stage_config": {}}
BLINK_NAMES = ("_neutral", "eyeBlinkLeft", "eyeBlinkRight", "jawOpen")
F32 = np.float32


def write_track(
    path: Path,
    landmarks: np.ndarray,
    *,
    blendshapes: np.ndarray | None = None,
    size: tuple[int, int] = (512, 512),
    fps: float = 25.0,
) -> None:
    """track.h5: (T, 478, 3) source-pixel landmarks, every frame with a face; blendshapes (T, 4) in BLINK_NAMES."""
    n = len(landmarks)
    bs = np.zeros((n, len(BLINK_NAMES))) if blendshapes is None else blendshapes
    arrays = {
        "landmarks": np.asarray(landmarks, F32),
        "blendshapes": np.asarray(bs, F32),
        "blendshape_names": np.asarray(BLINK_NAMES),
        "transforms": np.tile(np.eye(4, dtype=F32), (n, 1, 1)),
        "valid": np.ones(n, bool),
        "timestamps_s": np.arange(n) / fps,
    }
    attrs = {
        "fps": fps,
        "width": size[0],
        "height": size[1],
        "detection_rate": 1.0,
        "model_sha256": "0" * 64,
        "timeline": "source",
        "sar": "1:1",
        "damage": "",
        "n_faces_max": 1,
    }
    write_stage(path, "track", arrays, **PROV, attrs=attrs)


def write_crop(path: Path, landmarks: np.ndarray, resolution: int = 512) -> None:
    """crop.h5: (T, 478, 3) crop-pixel landmarks, every frame valid."""
    n = len(landmarks)
    arrays = {
        "boxes": np.tile([256.0, 256.0, 300.0], (n, 1)),
        "landmarks": np.asarray(landmarks, F32),
        "valid": np.ones(n, bool),
    }
    write_stage(path, "crop", arrays, **PROV, attrs={"resolution": resolution})


def write_fit(
    path: Path,
    model,
    identity: np.ndarray,
    rotation: np.ndarray,
    translation: np.ndarray,
    intrinsics: np.ndarray,
    resolution: int = 512,
) -> None:
    """fit.h5 of `model` (a MorphableModel): the given pose and camera, neutral expression."""
    n = len(rotation)
    arrays = {
        "identity": np.asarray(identity, F32),
        "expression": np.zeros((n, model.expression_basis.shape[0]), F32),
        "expression_names": np.asarray(model.expression_names, str),
        "rotation": np.asarray(rotation, F32),
        "axis_angle": Rotation.from_matrix(rotation).as_rotvec().astype(F32),
        "translation": np.asarray(translation, F32),
        "intrinsics": np.asarray(intrinsics, F32),
        "reprojection_error_px": np.zeros(n, F32),
        "valid": np.ones(n, bool),
        "correspondence_mediapipe": np.zeros(1, np.int32),
        "correspondence_vertex": np.zeros(1, np.int32),
    }
    attrs = {"model_name": model.name, "model_sha256": "0" * 64, "resolution": resolution}
    write_stage(path, "fit", arrays, **PROV, attrs=attrs)
