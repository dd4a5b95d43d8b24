"""Face crops: smoothed square boxes from landmarks, the pixel crop, and crop <-> source coordinate maps."""

from neural_renderer.crop.boxes import (
    compute_crop_boxes,
    crop_frame,
    crop_to_source,
    landmarks_to_crop,
    raw_face_boxes,
)
from neural_renderer.crop.config import RESOLUTIONS, SMOOTHING_METHODS, CropConfig
from neural_renderer.crop.smoothing import interpolate_invalid, one_euro_filter, savgol_smooth

__all__ = [
    "RESOLUTIONS",
    "SMOOTHING_METHODS",
    "CropConfig",
    "compute_crop_boxes",
    "crop_frame",
    "crop_to_source",
    "interpolate_invalid",
    "landmarks_to_crop",
    "one_euro_filter",
    "raw_face_boxes",
    "savgol_smooth",
]
