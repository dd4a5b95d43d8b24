"""MediaPipe's canonical face mesh, read from the FaceLandmarker .task bundle, and its Multi-PIE 68 subset.

The canonical mesh is the 3D template the 468 tracked landmarks are defined on; reading it from the very bundle the
tracker runs keeps the correspondence consistent with the tracker (no separately downloaded OBJ to drift).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neural_renderer.errors import PipelineInputError

from . import protobuf
from .geometry import boundary_loops

METADATA_MEMBER = "geometry_pipeline_metadata_landmarks.binarypb"
N_CANONICAL = 468

# mediapipe/modules/face_geometry/protos/geometry_pipeline_metadata.proto and mesh_3d.proto (checked against the
# bundled file: canonical_mesh is field 1, the procrustes basis field 2, input_source field 3).
_META_CANONICAL_MESH, _META_PROCRUSTES, _META_INPUT_SOURCE = 1, 2, 3
_LMREF_ID, _LMREF_WEIGHT = 1, 2
_MESH_VERTEX_TYPE, _MESH_PRIMITIVE_TYPE, _MESH_VERTEX_BUFFER, _MESH_INDEX_BUFFER = 1, 2, 3, 4
_VERTEX_PT, _TRIANGLE = 0, 0

# Multi-PIE 68 points as MediaPipe face-mesh indices. Starts from the list widely used to derive dlib-style points
# from MediaPipe, with the picks that sat on the wrong spot of their contour corrected against ICT-FaceKit's 68
# landmarks after fitting the canonical mesh to ICT geometrically (similarity + identity ICP, no landmark term):
#   0/16 162/389 -> 127/356 (1.4 -> 0.8 cm), 3/13 58/288 -> 132/361 (frontal-view 1.6 -> 0.4 cm),
#   17/26 71/301 -> 70/300 (0.9 -> 0.6), 29 5 -> 195 (0.5 -> 0.3), 31/35 75/305 -> 98/327 (0.8 -> 0.4),
#   55/59 405/181 -> 321/91 (0.6 -> 0.2), 61/63 82/312 -> 81/311 (0.5 -> 0.3), 65/67 317/87 -> 402/178 (0.6 -> 0.1).
# Inner points then agree to < 0.6 cm; the jaw (0-16) stays 0.5-1.5 cm off: Multi-PIE's jaw is a view-dependent
# contour, MediaPipe's oval a fixed ring of vertices, so the jaw is weighted down downstream.
MEDIAPIPE_68: tuple[int, ...] = (
    # 0-16 jaw, subject's right (x < 0) to left
    127,
    234,
    93,
    132,
    172,
    136,
    149,
    148,
    152,
    377,
    378,
    365,
    397,
    361,
    323,
    454,
    356,
    # 17-21 right brow, 22-26 left brow
    70,
    63,
    105,
    66,
    107,
    336,
    296,
    334,
    293,
    300,
    # 27-30 nose bridge, 31-35 nose base
    168,
    197,
    195,
    4,
    98,
    97,
    2,
    326,
    327,
    # 36-41 right eye, 42-47 left eye
    33,
    160,
    158,
    133,
    153,
    144,
    362,
    385,
    387,
    263,
    373,
    380,
    # 48-59 outer lips, 60-67 inner lips
    61,
    39,
    37,
    0,
    267,
    269,
    291,
    321,
    314,
    17,
    84,
    91,
    78,
    81,
    13,
    311,
    308,
    402,
    14,
    178,
)
# Multi-PIE index of each point's mirror image (left <-> right), for symmetry checks and flipping.
MULTIPIE_68_MIRROR: tuple[int, ...] = (
    *range(16, -1, -1),
    *range(26, 16, -1),
    27,
    28,
    29,
    30,
    *range(35, 30, -1),
    45,
    44,
    43,
    42,
    47,
    46,
    39,
    38,
    37,
    36,
    41,
    40,
    *range(54, 47, -1),
    *range(59, 54, -1),
    *range(64, 59, -1),
    67,
    66,
    65,
)
JAW_68 = slice(0, 17)


@dataclass(frozen=True, eq=False)
class CanonicalFaceGeometry:
    """Everything the geometry metadata holds: canonical mesh (cm, y up, face towards +z) and procrustes basis."""

    vertices: np.ndarray  # (468, 3) float32
    uv: np.ndarray  # (468, 2) float32 texture coordinates
    triangles: np.ndarray  # (898, 3) int64
    procrustes_ids: np.ndarray  # (P,) int64 landmark ids MediaPipe uses to estimate the head pose
    procrustes_weights: np.ndarray  # (P,) float32
    input_source: int

    @property
    def face_oval(self) -> np.ndarray:
        """The mesh's outer boundary loop: the silhouette points that slide along the face contour."""
        return boundary_loops(self.triangles)[0]


def parse_geometry_metadata(data: bytes) -> CanonicalFaceGeometry:
    """Decode a serialized GeometryPipelineMetadata message (pure: bytes in, arrays out)."""
    meta = protobuf.parse_message(data)
    meshes = protobuf.submessages(meta, _META_CANONICAL_MESH)
    if len(meshes) != 1:
        raise ValueError(f"expected one canonical_mesh, found {len(meshes)}")
    mesh = meshes[0]
    vertex_type = protobuf.single_varint(mesh, _MESH_VERTEX_TYPE)
    primitive = protobuf.single_varint(mesh, _MESH_PRIMITIVE_TYPE)
    if vertex_type != _VERTEX_PT or primitive != _TRIANGLE:
        raise ValueError(f"unsupported canonical mesh (vertex_type {vertex_type}, primitive_type {primitive})")
    vb = protobuf.repeated_floats(mesh, _MESH_VERTEX_BUFFER)
    ib = protobuf.repeated_varints(mesh, _MESH_INDEX_BUFFER)
    if vb.size % 5 or ib.size % 3:
        raise ValueError(f"vertex buffer of {vb.size} floats / index buffer of {ib.size} is not VERTEX_PT / TRIANGLE")
    vpt = vb.reshape(-1, 5)
    tris = ib.reshape(-1, 3)
    if tris.size and tris.max() >= len(vpt):
        raise ValueError("triangle index beyond the vertex buffer")
    refs = protobuf.submessages(meta, _META_PROCRUSTES)
    ids = np.array([protobuf.single_varint(r, _LMREF_ID) for r in refs], dtype=np.int64)
    weights = np.array([protobuf.single_float(r, _LMREF_WEIGHT) for r in refs], dtype=np.float32)
    return CanonicalFaceGeometry(
        vertices=np.ascontiguousarray(vpt[:, :3], dtype=np.float32),
        uv=np.ascontiguousarray(vpt[:, 3:], dtype=np.float32),
        triangles=tris,
        procrustes_ids=ids,
        procrustes_weights=weights,
        input_source=protobuf.single_varint(meta, _META_INPUT_SOURCE),
    )


def read_canonical_geometry(task_path: str | Path) -> CanonicalFaceGeometry:
    """The geometry metadata of a FaceLandmarker .task bundle (a zip)."""
    p = Path(task_path)
    try:
        with zipfile.ZipFile(p) as zf:
            data = zf.read(METADATA_MEMBER)
    except KeyError:
        raise PipelineInputError(p, f"no {METADATA_MEMBER} in the bundle (not a FaceLandmarker v2 .task?)") from None
    except (OSError, zipfile.BadZipFile) as exc:
        raise PipelineInputError(p, f"cannot open the .task bundle: {exc}") from exc
    try:
        geo = parse_geometry_metadata(data)
    except ValueError as exc:
        raise PipelineInputError(p, f"bad geometry metadata: {exc}") from exc
    if len(geo.vertices) != N_CANONICAL:
        raise PipelineInputError(p, f"canonical mesh has {len(geo.vertices)} vertices, expected {N_CANONICAL}")
    return geo


def load_mediapipe_canonical_mesh(task_path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(vertices (468, 3) float32 cm, triangles (898, 3) int64) of MediaPipe's canonical face model."""
    geo = read_canonical_geometry(task_path)
    return geo.vertices, geo.triangles
