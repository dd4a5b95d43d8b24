"""The one HDF5 schema every stage writes and reads.

Each stage writes one file per video (`results/{video}/{stage}.h5`); the `assemble` stage merges them into
`tracking.h5`, one group per stage plus the cropped frames. Declaring every dataset here (dtype, symbolic shape,
unit, meaning) lets `write_stage` reject a malformed array before it reaches disk, and lets the schema's
tables (docs/SCHEMA.md) be generated from the same source (`python -m neural_renderer.storage`).

Symbolic dimensions: T frames, R crop resolution, Ki identity and Ke expression coefficients, L correspondences,
B blendshapes (52). Dimensions with the same symbol must agree within a file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SCHEMA_VERSION = 1

Dim = int | str


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset: dtype kind, symbolic shape, unit and meaning."""

    dtype: str  # numpy dtype name, or "str" for variable-length UTF-8 strings
    shape: tuple[Dim, ...]
    description: str
    unit: str = ""
    per_frame: bool = True  # first axis is T: chunked along time for random access
    optional: bool = False  # may be absent (e.g. fit/landmarks_68 for a model without a 68-point embedding)

    def check(self, name: str, array: np.ndarray, dims: dict[str, int]) -> None:
        """Raise ValueError when `array` does not match; binds symbolic dims into `dims` on first sight."""
        if self.dtype == "str":
            if array.dtype.kind not in "UOS":
                raise ValueError(f"dataset {name!r}: expected strings, got dtype {array.dtype}")
        elif array.dtype != np.dtype(self.dtype):
            raise ValueError(f"dataset {name!r}: expected dtype {self.dtype}, got {array.dtype}")
        if array.ndim != len(self.shape):
            raise ValueError(f"dataset {name!r}: expected {len(self.shape)} dims {self.shape}, got shape {array.shape}")
        for axis, (want, got) in enumerate(zip(self.shape, array.shape)):
            if isinstance(want, int):
                if want != got:
                    raise ValueError(f"dataset {name!r}: axis {axis} must be {want}, got shape {array.shape}")
            elif dims.setdefault(want, got) != got:
                raise ValueError(
                    f"dataset {name!r}: axis {axis} ({want}) is {got} but another dataset has {want}={dims[want]}"
                )


@dataclass(frozen=True)
class StageSchema:
    """The datasets and attributes of one stage's file."""

    stage: str
    description: str
    datasets: dict[str, DatasetSpec]
    attrs: dict[str, str] = field(default_factory=dict)  # stage-specific required attributes -> meaning
    filename: str = ""  # the file name(s) when not `{stage}.h5`


# Attributes every file carries, so any file can be traced to its input, code and configuration.
COMMON_ATTRS: dict[str, str] = {
    "schema_version": "integer version of this schema",
    "stage": "name of the stage that wrote the file",
    "video": "video name (the wildcard)",
    "software_version": "neural_renderer version that wrote the file",
    "source_path": "path of the raw video",
    "source_sha256": "sha256 of the raw video",
    "stage_config": "JSON of the stage's configuration",
    "created_utc": "ISO time of writing",
}

F32 = "float32"

TRACK = StageSchema(
    stage="track",
    description="MediaPipe FaceLandmarker output per decoded frame (source-image pixels)",
    datasets={
        "landmarks": DatasetSpec(
            F32,
            ("T", 478, 3),
            "478 landmarks (468 mesh + 10 iris); x, y pixels; z = MediaPipe z * width; NaN where not valid",
            "px",
        ),
        "blendshapes": DatasetSpec(F32, ("T", "B"), "ARKit blendshape scores in [0, 1]; NaN where not valid"),
        "blendshape_names": DatasetSpec("str", ("B",), "blendshape names (MediaPipe order)", per_frame=False),
        "transforms": DatasetSpec(
            F32, ("T", 4, 4), "MediaPipe facial transformation matrix (canonical face -> camera, cm)"
        ),
        "valid": DatasetSpec("bool", ("T",), "a face was detected in the frame"),
        "timestamps_s": DatasetSpec(
            "float64",
            ("T",),
            "presentation time of each frame since the start of the file (the audio track's clock); "
            "steps of exactly 1/fps when `timeline` is resampled",
            "s",
        ),
    },
    attrs={
        "fps": "frames per second of the frame timeline",
        "width": "decoded frame width: square pixels, after rotation (px)",
        "height": "decoded frame height: square pixels, after rotation (px)",
        "detection_rate": "fraction of frames with a face",
        "model_sha256": "sha256 of face_landmarker.task",
        "timeline": "`source` (the video's own frames) or `resampled` (constant rate: variable frame rate source or "
        "`ingest.fps` set)",
        "sar": "sample aspect ratio of the stored frames, e.g. `15:16` (frames are decoded at square pixels)",
        "damage": "why the video's later frames are missing (`ingest.allow_partial`, truncated file); empty if none",
        "n_faces_max": "most faces seen in one frame (the tracked one is chosen by `track.face`)",
    },
)

CROP = StageSchema(
    stage="crop",
    description="temporally smoothed square crop boxes and landmarks in crop pixels",
    datasets={
        "boxes": DatasetSpec(
            "float64",
            ("T", 3),
            "crop box (centre x, centre y, side) in source pixels; interpolated where not valid",
            "px",
        ),
        "landmarks": DatasetSpec(
            F32, ("T", 478, 3), "landmarks in crop pixels (z scaled like x); NaN where not valid", "px"
        ),
        "valid": DatasetSpec("bool", ("T",), "a face was detected in the frame"),
    },
    attrs={"resolution": "crop side in pixels (256, 512 or 1024)"},
)

FIT = StageSchema(
    stage="fit",
    description=(
        "linear 3D morphable model fitted to the crop-space landmarks (OpenCV camera: x right, y down, z forward)"
    ),
    datasets={
        "identity": DatasetSpec(F32, ("Ki",), "identity coefficients shared by all frames", per_frame=False),
        "expression": DatasetSpec(F32, ("T", "Ke"), "expression coefficients per frame (ARKit-named for ICT)"),
        "expression_names": DatasetSpec("str", ("Ke",), "expression basis names", per_frame=False),
        "rotation": DatasetSpec(F32, ("T", 3, 3), "model -> camera rotation matrix"),
        "axis_angle": DatasetSpec(F32, ("T", 3), "the same rotation as an axis-angle vector", "rad"),
        "translation": DatasetSpec(F32, ("T", 3), "model -> camera translation", "model units"),
        "intrinsics": DatasetSpec(F32, (4,), "fx, fy, cx, cy of the crop camera", "px", per_frame=False),
        "reprojection_error_px": DatasetSpec(
            F32, ("T",), "mean landmark reprojection error; NaN where not valid", "px"
        ),
        "valid": DatasetSpec("bool", ("T",), "frame had landmarks (others are interpolated)"),
        "correspondence_mediapipe": DatasetSpec(
            "int32", ("L",), "MediaPipe landmark index of each correspondence", per_frame=False
        ),
        "correspondence_vertex": DatasetSpec(
            "int32", ("L",), "model vertex index of each correspondence", per_frame=False
        ),
        "landmarks_68": DatasetSpec(
            F32,
            ("T", 68, 2),
            "the fitted model's 68 Multi-PIE landmarks projected with the fitted pose and camera, x, y crop pixels, in "
            "Multi-PIE order (0-16 jaw from the image's left, 36 = outer corner of the subject's right eye); ICT: the "
            "dlib-aligned vertices `ICT_LANDMARKS_68_DLIB`, other models their file's `landmarks_68`; every frame "
            "(interpolated ones too); absent when the model has no 68-point embedding",
            "px",
            optional=True,
        ),
    },
    attrs={
        "model_name": "morphable model name",
        "model_sha256": "sha256 of the model file",
        "resolution": "crop side (px)",
    },
)

GAZE = StageSchema(
    stage="gaze",
    description="gaze from iris landmarks and the fitted head (eye order: subject's right, left)",
    datasets={
        "eye_vectors": DatasetSpec(F32, ("T", 2, 3), "unit gaze vector per eye, camera coordinates"),
        "vector": DatasetSpec(F32, ("T", 3), "combined unit gaze vector, camera coordinates"),
        "eye_pitch_yaw_deg": DatasetSpec(F32, ("T", 2, 2), "pitch, yaw per eye (0, 0 = looking at the camera)", "deg"),
        "pitch_yaw_deg": DatasetSpec(F32, ("T", 2), "combined pitch, yaw", "deg"),
        "head_vector": DatasetSpec(F32, ("T", 3), "combined gaze in head (model) coordinates"),
        "head_pitch_yaw_deg": DatasetSpec(F32, ("T", 2), "combined pitch, yaw relative to the head", "deg"),
        "valid": DatasetSpec("bool", ("T",), "frame had iris landmarks and open eyes (others are interpolated)"),
        "eyes_closed": DatasetSpec("bool", ("T",), "blink score above gaze.blink_threshold (invalid, interpolated)"),
        "blink_score": DatasetSpec(F32, ("T",), "larger of MediaPipe's eyeBlinkLeft / eyeBlinkRight; NaN: no face"),
    },
)

FRAMES = DatasetSpec("uint8", ("T", "R", "R", 3), "cropped RGB frames, one frame per chunk, gzip-compressed")

ASSEMBLED = StageSchema(
    stage="tracking",
    description="everything a renderer needs: /frames and their /timestamps_s plus one group per stage (/track, "
    "/crop, /fit, /gaze) holding that stage's datasets and attributes unchanged",
    datasets={"frames": FRAMES, "timestamps_s": TRACK.datasets["timestamps_s"]},
    attrs={"fps": "frames per second", "resolution": "crop side (px)", "n_frames": "T"},
)

RENDERED = StageSchema(
    stage="rendered",
    description="generated frames (self-reenactment of the test frames, cross-identity reenactment or audio-driven); "
    "the input of the metrics",
    datasets={
        "frames": FRAMES,
        "frame_index": DatasetSpec(
            "int64", ("T",), "driving frame's index in the driver's tracking.h5 (audio-driven: output frame number)"
        ),
    },
    attrs={
        "fps": "frames per second",
        "resolution": "crop side (px)",
        "kind": "self | cross | audio",
        "driver": "driving video (or audio file) name",
        "target": "identity whose renderer produced the frames",
    },
    filename="renderer/test_render.h5`, `reenact/{driver}/reenacted.h5`, `audio_render/{clip}/audio_render.h5",
)

FEATURES = StageSchema(
    stage="features",
    description="cached metric features of one set of frames (real test frames, rendered frames or driving frames), "
    "so a new method or video only computes what is new",
    datasets={
        "frame_index": DatasetSpec("int64", ("T",), "frame index the features belong to (as in the frames' source)"),
        "inception": DatasetSpec(F32, ("T", 2048), "InceptionV3 pool features (TF weights), for FID"),
        "i3d": DatasetSpec(
            F32, ("C", 400), "I3D Kinetics-400 logits of consecutive 16-frame clips at 224 px, for FVD", per_frame=False
        ),
        "identity": DatasetSpec(F32, ("T", "D"), "face-identity embedding, for CSIM; NaN where no face"),
        "identity_valid": DatasetSpec("bool", ("T",), "a face was found for the identity embedding"),
        "expression": DatasetSpec(
            F32, ("T", "Ke"), "expression coefficients re-extracted with the project's tracker and fitter"
        ),
        "rotation": DatasetSpec(F32, ("T", 3, 3), "re-extracted model -> camera rotation"),
        "gaze_pitch_yaw_deg": DatasetSpec(F32, ("T", 2), "re-extracted gaze relative to the head", "deg"),
        "motion_valid": DatasetSpec("bool", ("T",), "the tracker found a face (motion features valid)"),
    },
    attrs={
        "source": "rendered | real (frames read from tracking.h5)",
        "identity_backend": "face-identity network (dlib_resnet_v1 | arcface)",
        "clip_len": "frames per I3D clip",
    },
    filename="metrics/real_test.features.h5`, `{rendered}.features.h5`, `reenact/{driver}/driving.features.h5",
)

STAGES: dict[str, StageSchema] = {s.stage: s for s in (TRACK, CROP, FIT, GAZE, ASSEMBLED, RENDERED, FEATURES)}
MERGED_STAGES = ("track", "crop", "fit", "gaze")


def schema_for(stage: str) -> StageSchema:
    try:
        return STAGES[stage]
    except KeyError:
        raise KeyError(f"unknown stage {stage!r}; known: {sorted(STAGES)}") from None


def validate_arrays(stage: str, arrays: dict[str, np.ndarray]) -> dict[str, int]:
    """Check a stage's arrays against the schema; return the bound symbolic dimensions."""
    schema = schema_for(stage)
    missing = {n for n, spec in schema.datasets.items() if not spec.optional} - set(arrays)
    extra = set(arrays) - set(schema.datasets)
    if missing or extra:
        raise ValueError(f"stage {stage!r}: missing datasets {sorted(missing)}, unexpected {sorted(extra)}")
    dims: dict[str, int] = {}
    for name, spec in schema.datasets.items():
        if name in arrays:
            spec.check(name, np.asarray(arrays[name]), dims)
    return dims


def markdown() -> str:
    """The schema as Markdown tables (docs/SCHEMA.md, written by docs/generate.py; a test keeps it current)."""
    lines = ["Attributes on every file: " + ", ".join(f"`{k}`" for k in COMMON_ATTRS) + "."]
    for schema in STAGES.values():
        filename = schema.filename or f"{schema.stage}.h5"
        lines += [
            "",
            f"**`{filename}`**: {schema.description}.",
            "",
            "| dataset | dtype | shape | unit | meaning |",
            "|---|---|---|---|---|",
        ]
        for name, spec in schema.datasets.items():
            shape = "(" + ", ".join(str(d) for d in spec.shape) + ")"
            lines.append(f"| `{name}` | {spec.dtype} | {shape} | {spec.unit} | {spec.description} |")
        if schema.attrs:
            lines.append("")
            lines.append("Attributes: " + "; ".join(f"`{k}` ({v})" for k, v in schema.attrs.items()) + ".")
    return "\n".join(lines)
