"""Linear 3D morphable models (ICT-FaceKit; FLAME and BFM2017 when the user supplies them) and their
correspondence with MediaPipe's face mesh."""

from .correspondence import (
    CanonicalAlignment,
    Correspondence,
    align_canonical_to_model,
    build_correspondence,
    dense_pairs,
    load_correspondence,
    save_correspondence,
)
from .eyes import Eyeballs, eyeballs_from_corners, fit_sphere, ict_eyeballs
from .geometry import Similarity, umeyama
from .ict import ICT_LANDMARKS_68, convert_ict_objs, read_obj
from .io import load_morphable_model, save_morphable_model
from .mediapipe_mesh import (
    MEDIAPIPE_68,
    MULTIPIE_68_MIRROR,
    CanonicalFaceGeometry,
    load_mediapipe_canonical_mesh,
    parse_geometry_metadata,
    read_canonical_geometry,
)
from .model import LinearMorphableModel

__all__ = [
    "CanonicalAlignment",
    "CanonicalFaceGeometry",
    "Correspondence",
    "Eyeballs",
    "eyeballs_from_corners",
    "fit_sphere",
    "ict_eyeballs",
    "ICT_LANDMARKS_68",
    "LinearMorphableModel",
    "MEDIAPIPE_68",
    "MULTIPIE_68_MIRROR",
    "align_canonical_to_model",
    "build_correspondence",
    "convert_ict_objs",
    "dense_pairs",
    "load_correspondence",
    "load_mediapipe_canonical_mesh",
    "load_morphable_model",
    "parse_geometry_metadata",
    "read_canonical_geometry",
    "read_obj",
    "save_correspondence",
    "save_morphable_model",
    "Similarity",
    "umeyama",
]
