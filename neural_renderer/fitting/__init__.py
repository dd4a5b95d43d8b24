"""Morphable-model fit to landmark tracks (structured Levenberg-Marquardt) and gaze from the iris landmarks.

Camera / pose convention (``camera.py``): OpenCV camera, X_cam = rotation @ X_model + translation, where rotation is
the full model -> camera rotation, FLIP_YZ = diag(1, -1, -1) included (rotation = FLIP_YZ @ R_head).
"""

from .camera import (
    FLIP_YZ,
    camera_to_head_rotation,
    default_intrinsics,
    head_to_camera_rotation,
    pixel_rays,
    project_points,
    project_points_np,
    transform_points,
)
from .config import FitConfig, GazeConfig, resolved_fit_config
from .fit import (
    FitResult,
    blendshapes_to_expression,
    fit_sequence_refined,
    fit_tracked_landmarks,
    fitted_landmarks_68,
    interpolate_invalid,
    project_model_points,
    refine_correspondence,
    select_keyframes,
)
from .gaze import (
    IRIS_CENTERS,
    GazeResult,
    blink_scores,
    estimate_gaze,
    eyeball_centers_model,
    eyeball_model,
    gaze_from_fit,
    order_iris_points,
    pitch_yaw_from_vectors,
    ray_sphere_intersection,
    vectors_from_pitch_yaw,
)
from .rotation import (
    axis_angle_to_matrix,
    axis_angle_to_matrix_np,
    matrix_to_axis_angle,
    matrix_to_axis_angle_np,
    rotation_6d_to_matrix,
)

__all__ = [
    "FLIP_YZ",
    "FitConfig",
    "resolved_fit_config",
    "FitResult",
    "GazeConfig",
    "blink_scores",
    "eyeball_model",
    "GazeResult",
    "IRIS_CENTERS",
    "axis_angle_to_matrix",
    "axis_angle_to_matrix_np",
    "blendshapes_to_expression",
    "camera_to_head_rotation",
    "default_intrinsics",
    "estimate_gaze",
    "eyeball_centers_model",
    "fit_sequence_refined",
    "fit_tracked_landmarks",
    "fitted_landmarks_68",
    "gaze_from_fit",
    "head_to_camera_rotation",
    "interpolate_invalid",
    "matrix_to_axis_angle",
    "matrix_to_axis_angle_np",
    "order_iris_points",
    "pitch_yaw_from_vectors",
    "pixel_rays",
    "project_model_points",
    "project_points",
    "project_points_np",
    "ray_sphere_intersection",
    "refine_correspondence",
    "rotation_6d_to_matrix",
    "select_keyframes",
    "transform_points",
    "vectors_from_pitch_yaw",
]
