"""Converter from the upstream ICT-FaceKit OBJ files (FaceXModel/) to the npz layout `load_morphable_model` reads.

Users download the MIT-licensed OBJs; the pipeline works from one compact npz of the face region only (the full
head has 26719 vertices incl. eyeballs, teeth and back of the head, which the fitter never sees). The eyeballs enter
the npz as spheres (``eyes.py``): centres of the neutral mesh, their offset per identity shape, and the radius.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from neural_renderer.errors import PipelineInputError

from .eyes import ICT_EYEBALL_RANGES, Eyeballs, ict_eyeballs
from .io import save_morphable_model
from .model import LinearMorphableModel

NEUTRAL_STEM = "generic_neutral_mesh"
FACE_VERTEX_COUNT = 9409  # ICT-FaceKit: vertices 0..9408 are the face skin (material M_Face)
_IDENTITY_RE = re.compile(r"^identity\d+$")

# Multi-PIE 68 landmark vertices on ICT-FaceKit's face region (the embedding carried by the shared
# ict_face_light_face.npz; all < 9409). Subject's right side first (x < 0), as in Multi-PIE.
ICT_LANDMARKS_68: tuple[int, ...] = (
    1225,
    1888,
    1052,
    367,
    1719,
    1722,
    2199,
    1447,
    966,
    3661,
    4390,
    3927,
    3924,
    2608,
    3272,
    4088,
    3443,
    268,
    493,
    1914,
    2044,
    1401,
    3615,
    4240,
    4114,
    2734,
    2509,
    978,
    4527,
    4942,
    4857,
    1140,
    2075,
    1147,
    4269,
    3360,
    1507,
    1542,
    1537,
    1528,
    1518,
    1511,
    3742,
    3751,
    3756,
    3721,
    3725,
    3732,
    5708,
    5695,
    2081,
    0,
    4275,
    6200,
    6213,
    6346,
    6461,
    5518,
    5957,
    5841,
    5702,
    5711,
    5533,
    6216,
    6207,
    6470,
    5517,
    5966,
)


# The same 68 points re-chosen to follow dlib's 68-point predictor (the iBUG 300-W annotation most 68-point tools
# expect): each vertex within 1 cm of ICT's whose projection under the fit is closest on average to dlib's point, on
# d6 (benchmarks/bench_landmarks68.py; d0, d12 and d18 held out: inner-51 NME against dlib 0.038 -> 0.024,
# 0.056 -> 0.043, 0.041 -> 0.025, docs/BENCHMARKS.md). ICT's own brows sit lower and its jaw further in than dlib's.
# Used only for the fit's 68-point output (`fit/landmarks_68`); the correspondence keeps ICT_LANDMARKS_68.
ICT_LANDMARKS_68_DLIB: tuple[int, ...] = (
    1884,
    1242,
    1895,
    369,
    757,
    782,
    1675,
    1446,
    965,
    3660,
    4390,
    3022,
    2999,
    2610,
    4095,
    3460,
    4084,
    993,
    349,
    122,
    2034,
    2028,
    4203,
    4230,
    2363,
    2590,
    2627,
    978,
    4526,
    4941,
    4858,
    4584,
    2088,
    129,
    2349,
    5029,
    6590,
    1575,
    1536,
    622,
    1518,
    1552,
    2874,
    3786,
    3789,
    6548,
    3766,
    3732,
    5733,
    5692,
    2069,
    5525,
    4263,
    6197,
    6238,
    6367,
    6507,
    5520,
    6003,
    5862,
    5900,
    5762,
    5532,
    6526,
    6404,
    6518,
    5521,
    5986,
)


def output_landmarks_68(model: LinearMorphableModel) -> np.ndarray | None:
    """The vertices whose projection is the fit's `landmarks_68`: ICT_LANDMARKS_68_DLIB for a model carrying ICT's
    embedding (ICT-FaceKit's vertex order), else the model's own embedding (None: the model has none)."""
    lm = model.landmarks_68
    if lm is not None and np.array_equal(lm, ICT_LANDMARKS_68) and model.n_vertices >= FACE_VERTEX_COUNT:
        return np.asarray(ICT_LANDMARKS_68_DLIB, dtype=np.int64)
    return lm


def read_obj(path: str | Path) -> tuple[np.ndarray, list[list[int]]]:
    """Vertices (N, 3) float64 and 0-based polygon vertex lists of an OBJ (optionally .gz); uv/normals ignored."""
    p = Path(path)
    opener = gzip.open if p.suffix == ".gz" else open
    try:
        with opener(p, "rt", encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except (OSError, EOFError) as exc:
        raise PipelineInputError(p, f"cannot read OBJ: {exc}") from exc
    coords: list[str] = []
    polys: list[list[int]] = []
    for line in lines:
        if line.startswith("v "):
            coords.append(line[2:])
        elif line.startswith("f "):
            polys.append([int(tok.split("/", 1)[0]) for tok in line.split()[1:]])
    if not coords:
        raise PipelineInputError(p, "OBJ has no vertices")
    flat = np.array(" ".join(coords).split(), dtype=np.float64)
    n = len(coords)
    if flat.size < 3 * n:
        raise PipelineInputError(p, "OBJ has vertex lines with fewer than 3 coordinates")
    if flat.size != 3 * n:  # 'v x y z w' or colours: keep x y z
        flat = np.concatenate([np.array(c.split()[:3], dtype=np.float64) for c in coords])
    verts = flat.reshape(n, 3)
    faces = [[i - 1 if i > 0 else n + i for i in poly] for poly in polys]  # OBJ: 1-based, negatives are relative
    return verts, faces


def _find_objs(src: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for f in sorted(src.iterdir()):
        name = f.name
        for suffix in (".obj.gz", ".obj"):
            if name.endswith(suffix):
                stem = name[: -len(suffix)]
                if stem in found and found[stem].name.endswith(".obj"):
                    continue  # prefer the uncompressed file when both exist
                found[stem] = f
    return found


def region_faces(polys: Sequence[Sequence[int]], n_keep: int) -> np.ndarray:
    """Polygons whose corners all lie in the first n_keep vertices: (F, 4) if all quads, (F, 3) if all triangles,
    else quads split into two triangles so the array stays rectangular."""
    kept = [p for p in polys if max(p) < n_keep and min(p) >= 0]
    sizes = {len(p) for p in kept}
    if not kept:
        return np.zeros((0, 3), dtype=np.int64)
    if sizes == {4} or sizes == {3}:
        return np.asarray(kept, dtype=np.int64)
    tris: list[list[int]] = []
    for p in kept:  # fan triangulation for any polygon
        tris.extend([p[0], p[i], p[i + 1]] for i in range(1, len(p) - 1))
    return np.asarray(tris, dtype=np.int64)


def convert_ict_objs(
    src_dir: str | Path,
    out_npz: str | Path,
    identity_names: Sequence[str] | None = None,
    expression_names: Sequence[str] | None = None,
    face_vertex_count: int | None = FACE_VERTEX_COUNT,
    landmarks_68: Sequence[int] | np.ndarray | None = None,
    name: str = "ict_face_light",
) -> LinearMorphableModel:
    """Read ICT-FaceKit OBJs from src_dir and write the npz; returns the model written.

    generic_neutral_mesh.obj is the neutral; every other OBJ becomes an offset from it: `identityNNN` files are
    identity shapes, all others (ARKit-named, e.g. jawOpen) expression shapes, each sorted by name unless the
    names are given. Only the first face_vertex_count vertices are kept (None keeps all), with the polygons inside
    them. landmarks_68 defaults to ICT_LANDMARKS_68. When the neutral OBJ is ICT's full mesh (it has the eyeball
    vertices), the eyeball spheres are fitted to it and to every identity OBJ and stored too.
    """
    src = Path(src_dir)
    if not src.is_dir():
        raise PipelineInputError(src, "ICT-FaceKit source folder not found")
    objs = _find_objs(src)
    if NEUTRAL_STEM not in objs:
        raise PipelineInputError(src, f"no {NEUTRAL_STEM}.obj(.gz) in the folder")
    others = sorted(s for s in objs if s != NEUTRAL_STEM)
    id_names = list(identity_names) if identity_names is not None else [s for s in others if _IDENTITY_RE.match(s)]
    ex_names = (
        list(expression_names) if expression_names is not None else [s for s in others if not _IDENTITY_RE.match(s)]
    )
    missing = [s for s in id_names + ex_names if s not in objs]
    if missing:
        raise PipelineInputError(src, f"missing OBJ files for {missing}")

    neutral_full, polys = read_obj(objs[NEUTRAL_STEM])
    n_keep = len(neutral_full) if face_vertex_count is None else int(face_vertex_count)
    if not 0 < n_keep <= len(neutral_full):
        raise PipelineInputError(src, f"face_vertex_count {n_keep} outside 1..{len(neutral_full)}")
    neutral = neutral_full[:n_keep]
    has_eyes = len(neutral_full) >= ICT_EYEBALL_RANGES[1][1]
    eye_centres, eye_radius = ict_eyeballs(neutral_full) if has_eyes else (None, 0.0)
    eye_offsets: list[np.ndarray] = []

    def offsets(names: list[str], eyes: bool = False) -> np.ndarray:
        out = np.empty((len(names), n_keep, 3), dtype=np.float32)
        for k, stem in enumerate(names):
            verts, _ = read_obj(objs[stem])
            if len(verts) != len(neutral_full):
                raise PipelineInputError(objs[stem], f"{len(verts)} vertices, the neutral mesh has {len(neutral_full)}")
            out[k] = verts[:n_keep] - neutral  # difference in float64, then stored as float32
            if eyes:
                eye_offsets.append(ict_eyeballs(verts)[0] - eye_centres)
        return out

    lm = np.asarray(ICT_LANDMARKS_68 if landmarks_68 is None else landmarks_68, dtype=np.int64)
    if lm.max() >= n_keep:
        raise PipelineInputError(src, f"landmark vertex {int(lm.max())} lies outside the kept {n_keep} vertices")
    model = LinearMorphableModel(
        name=name,
        neutral=neutral,
        faces=region_faces(polys, n_keep),
        identity_basis=offsets(id_names, eyes=has_eyes),
        expression_basis=offsets(ex_names),
        identity_names=id_names,
        expression_names=ex_names,
        landmarks_68=lm,
        units="cm",
        eyeballs=(
            Eyeballs(centers=eye_centres, radius=eye_radius, identity_basis=np.asarray(eye_offsets).reshape(-1, 2, 3))
            if has_eyes
            else None
        ),
    )
    save_morphable_model(model, out_npz)
    return model
