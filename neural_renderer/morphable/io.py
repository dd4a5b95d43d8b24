"""Readers (ICT npz, FLAME pickle/npz, BFM2017 h5) and the npz writer for LinearMorphableModel.

Every reader converts to centimetres so that regularisation weights and thresholds downstream mean the same thing
whatever the model. Only the ICT npz can be tested against a real file here; the FLAME and BFM readers follow the
published file layouts and are tested on small synthetic files written in those layouts.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from neural_renderer.atomic import atomic_path
from neural_renderer.errors import PipelineInputError

from .eyes import Eyeballs
from .model import LinearMorphableModel

KINDS = ("auto", "ict", "flame", "bfm")
FLAME_N_EXPRESSION = 100  # FLAME (2017, 2020, 2023) stores 300 shape + 100 expression columns in `shapedirs`
_M_TO_CM = 100.0
_MM_TO_CM = 0.1


def load_morphable_model(
    path: str | Path,
    kind: str = "auto",
    *,
    landmarks_68: np.ndarray | str | Path | None = None,
    name: str | None = None,
) -> LinearMorphableModel:
    """Load a morphable model file into a LinearMorphableModel in cm.

    kind: 'ict' (npz: ours or the converter's), 'flame' (generic_model.pkl / FLAME2020 pickle, or an npz with the
    same keys), 'bfm' (Basel Face Model 2017 .h5), or 'auto' (by suffix, and for .npz by its keys).
    landmarks_68: 68 Multi-PIE vertex indices (array or .npy/.txt path); FLAME and BFM ship none, so pass the
    embedding you use; for ICT it overrides the file's own.
    """
    p = Path(path)
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if not p.is_file():
        raise PipelineInputError(p, "morphable model file not found")
    if kind == "auto":
        kind = _detect_kind(p)
    lm = _read_landmarks(landmarks_68)
    try:
        if kind == "ict":
            model = _load_ict_npz(p, lm, name)
        elif kind == "flame":
            model = _load_flame(p, lm, name)
        else:
            model = _load_bfm2017(p, lm, name)
    except PipelineInputError:
        raise
    except (ValueError, KeyError, OSError, pickle.UnpicklingError, EOFError) as exc:
        raise PipelineInputError(p, f"cannot read {kind} morphable model: {exc}") from exc
    return model


def save_morphable_model(model: LinearMorphableModel, path: str | Path) -> Path:
    """Write the model in the ICT npz layout (plus `name`, `units`), atomically, so a crash never leaves half a file."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {
        "neutral": model.neutral,
        "faces": model.faces.astype(np.int32),
        "identity_basis": model.identity_basis,
        "identity_names": np.asarray(model.identity_names, dtype=str),
        "expression_basis": model.expression_basis,
        "expression_names": np.asarray(model.expression_names, dtype=str),
        "name": np.asarray(model.name),
        "units": np.asarray(model.units),
    }
    if model.landmarks_68 is not None:
        arrays["landmarks_68"] = model.landmarks_68.astype(np.int32)
    if model.eyeballs is not None:
        arrays["eyeball_centers"] = model.eyeballs.centers.astype(np.float32)
        arrays["eyeball_radius"] = np.float32(model.eyeballs.radius)
        arrays["eyeball_identity_basis"] = model.eyeballs.identity_basis.astype(np.float32)
    with atomic_path(out) as tmp, open(tmp, "wb") as fh:  # a file object: np.savez would append .npz to a name
        np.savez_compressed(fh, **arrays)
    return out


# ----------------------------------------------------------------------------------------------------------- helpers


def _detect_kind(p: Path) -> str:
    suffix = p.suffix.lower()
    if suffix in (".pkl", ".pickle"):
        return "flame"
    if suffix in (".h5", ".hdf5"):
        return "bfm"
    if suffix == ".npz":
        with np.load(p, allow_pickle=False) as z:
            keys = set(z.files)
        if {"neutral", "identity_basis", "expression_basis"} <= keys:
            return "ict"
        if {"v_template", "shapedirs"} <= keys:
            return "flame"
        raise PipelineInputError(p, f"npz is neither the ICT layout nor FLAME's (keys: {sorted(keys)})")
    raise PipelineInputError(p, f"cannot tell the model kind from the suffix {suffix!r}; pass kind=")


def _read_landmarks(landmarks: np.ndarray | str | Path | None) -> np.ndarray | None:
    if landmarks is None:
        return None
    if isinstance(landmarks, (str, Path)):
        lp = Path(landmarks)
        try:
            arr = np.load(lp, allow_pickle=False) if lp.suffix == ".npy" else np.loadtxt(lp)
        except (OSError, ValueError) as exc:
            raise PipelineInputError(lp, f"cannot read landmark indices: {exc}") from exc
    else:
        arr = np.asarray(landmarks)
    arr = np.asarray(arr).ravel()
    if arr.shape != (68,) or not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
        raise PipelineInputError(
            None if not isinstance(landmarks, (str, Path)) else landmarks,
            f"landmarks_68 must be 68 integer vertex indices, got shape {arr.shape}",
        )
    return arr.astype(np.int64)


def _load_ict_npz(p: Path, lm: np.ndarray | None, name: str | None) -> LinearMorphableModel:
    with np.load(p, allow_pickle=False) as z:
        missing = {"neutral", "faces", "identity_basis", "expression_basis"} - set(z.files)
        if missing:
            raise PipelineInputError(p, f"ICT npz lacks {sorted(missing)}")
        ident = z["identity_basis"]
        expr = z["expression_basis"]
        return LinearMorphableModel(
            name=name or (str(z["name"]) if "name" in z.files else p.stem.removesuffix(".npz")),
            neutral=z["neutral"],
            faces=z["faces"],
            identity_basis=ident,
            expression_basis=expr,
            identity_names=[str(s) for s in z["identity_names"]] if "identity_names" in z.files else [],
            expression_names=[str(s) for s in z["expression_names"]] if "expression_names" in z.files else [],
            landmarks_68=lm if lm is not None else (z["landmarks_68"] if "landmarks_68" in z.files else None),
            units=str(z["units"]) if "units" in z.files else "cm",
            eyeballs=_ict_eyeballs(z),
        )


def _ict_eyeballs(z: Any) -> Eyeballs | None:
    """The converter's eyeball arrays, or None for files written without them (e.g. the face-region npz)."""
    if "eyeball_centers" not in z.files:
        return None
    basis = z["eyeball_identity_basis"] if "eyeball_identity_basis" in z.files else np.zeros((0, 2, 3))
    return Eyeballs(centers=z["eyeball_centers"], radius=float(z["eyeball_radius"]), identity_basis=basis)


class _ChumpyStub:
    """Stands in for chumpy.Ch (and any other chumpy class) while unpickling: keeps the state, exposes `.x`.

    FLAME's official pickles store v_template/shapedirs as chumpy objects whose pickled state holds the plain
    ndarray under 'x'; chumpy itself is unmaintained and does not import on current numpy.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    @property
    def array(self) -> np.ndarray:
        st = self.state
        if isinstance(st, dict):
            for key in ("x", "_x", "a"):
                if key in st:
                    val = st[key]
                    return val.array if isinstance(val, _ChumpyStub) else np.asarray(val)
        raise ValueError("chumpy object without an 'x' array (a derived expression, not a stored array)")


class _Opaque:
    """Placeholder for classes we do not need (scipy.sparse J_regressor and friends): swallows any state."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


class _FlameUnpickler(pickle.Unpickler):
    """Restricted unpickler: numpy arrays and plain containers only; chumpy/scipy become stubs; anything else fails.

    Unpickling a user-supplied file must not be able to import and call arbitrary code.
    """

    _ALLOWED = {
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy._core.numeric", "_frombuffer"),
        ("copyreg", "_reconstructor"),
        ("builtins", "object"),
        ("collections", "OrderedDict"),
        ("_codecs", "encode"),  # how Python 3 writes bytes at protocol <= 2 (re-saved FLAME pickles)
    }

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("chumpy"):
            return _ChumpyStub
        if module.startswith("scipy.sparse"):
            return _Opaque
        if module.startswith("numpy.core"):  # pickles written before numpy 2 renamed numpy.core
            module = "numpy._core" + module[len("numpy.core") :]
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a model pickle")


def _as_array(value: Any) -> np.ndarray:
    return value.array if isinstance(value, _ChumpyStub) else np.asarray(value)


def _load_flame(p: Path, lm: np.ndarray | None, name: str | None) -> LinearMorphableModel:
    """FLAME: v_template (5023, 3) m, shapedirs (5023, 3, 300 + 100), f (9976, 3).

    Only the linear part is kept: FLAME's jaw, neck and eyeball rotations are skinning (pose), not blendshapes, so
    this model opens the mouth only as far as the expression PCA can. Coefficients keep FLAME's unit-variance scale.
    """
    if p.suffix.lower() == ".npz":
        with np.load(p, allow_pickle=False) as z:
            data: dict[str, Any] = {k: z[k] for k in z.files}
    else:
        with open(p, "rb") as fh:
            data = _FlameUnpickler(fh, encoding="latin1").load()
        if not isinstance(data, dict):
            raise PipelineInputError(p, f"FLAME pickle holds a {type(data).__name__}, expected a dict")
    for key in ("v_template", "shapedirs", "f"):
        if key not in data:
            raise PipelineInputError(p, f"FLAME model lacks '{key}'")
    v_template = _as_array(data["v_template"]).astype(np.float64)
    shapedirs = _as_array(data["shapedirs"]).astype(np.float64)
    faces = _as_array(data["f"]).astype(np.int64)
    n_v = v_template.shape[0]
    if v_template.shape != (n_v, 3) or shapedirs.ndim != 3 or shapedirs.shape[:2] != (n_v, 3):
        raise PipelineInputError(
            p, f"FLAME shapes disagree: v_template {v_template.shape}, shapedirs {shapedirs.shape}"
        )
    n_comp = shapedirs.shape[2]
    if n_comp <= FLAME_N_EXPRESSION:
        raise PipelineInputError(p, f"FLAME shapedirs has {n_comp} columns, expected shape + {FLAME_N_EXPRESSION}")
    n_shape = n_comp - FLAME_N_EXPRESSION
    bases = np.transpose(shapedirs, (2, 0, 1)) * _M_TO_CM
    if lm is None and "landmarks_68" in data:
        lm = np.asarray(_as_array(data["landmarks_68"]), dtype=np.int64)
    return LinearMorphableModel(
        name=name or p.stem,
        neutral=v_template * _M_TO_CM,
        faces=faces,
        identity_basis=bases[:n_shape],
        expression_basis=bases[n_shape:],
        identity_names=[f"flame_shape_{i:03d}" for i in range(n_shape)],
        expression_names=[f"flame_exp_{i:03d}" for i in range(FLAME_N_EXPRESSION)],
        landmarks_68=lm,
        units="cm",
    )


def _load_bfm2017(p: Path, lm: np.ndarray | None, name: str | None) -> LinearMorphableModel:
    """Basel Face Model 2017 (statismo h5, mm): mean + orthonormal pcaBasis * sqrt(pcaVariance) per component.

    The expression model's mean is a deformation of the shape mean (BFM2017 builds it from expression-minus-neutral
    scans), so the neutral face is shape mean + expression mean, as in eos' BFM2017 converter.
    """
    import h5py

    with h5py.File(p, "r") as h5:
        for key in ("shape/model/mean", "shape/model/pcaBasis", "shape/model/pcaVariance", "shape/representer/cells"):
            if key not in h5:
                raise PipelineInputError(p, f"BFM h5 lacks '{key}'")
        shape_mean = np.asarray(h5["shape/model/mean"], dtype=np.float64).ravel()
        shape_basis = _bfm_basis(p, h5, "shape", shape_mean.size)
        cells = np.asarray(h5["shape/representer/cells"], dtype=np.int64)
        if "expression/model/mean" in h5:
            expr_mean = np.asarray(h5["expression/model/mean"], dtype=np.float64).ravel()
            if expr_mean.size != shape_mean.size:
                raise PipelineInputError(p, "BFM expression and shape models have different vertex counts")
            expr_basis = _bfm_basis(p, h5, "expression", shape_mean.size)
        else:
            expr_mean = np.zeros_like(shape_mean)
            expr_basis = np.zeros((0, shape_mean.size))
    if shape_mean.size % 3:
        raise PipelineInputError(p, f"BFM mean has {shape_mean.size} values, not a multiple of 3")
    n_v = shape_mean.size // 3
    faces = cells.T if cells.shape[0] == 3 and cells.shape[1] != 3 else cells
    return LinearMorphableModel(
        name=name or p.stem,
        neutral=((shape_mean + expr_mean) * _MM_TO_CM).reshape(n_v, 3),
        faces=faces,
        identity_basis=(shape_basis * _MM_TO_CM).reshape(-1, n_v, 3),
        expression_basis=(expr_basis * _MM_TO_CM).reshape(-1, n_v, 3),
        identity_names=[f"bfm_shape_{i:03d}" for i in range(shape_basis.shape[0])],
        expression_names=[f"bfm_exp_{i:03d}" for i in range(expr_basis.shape[0])],
        landmarks_68=lm,
        units="cm",
    )


def _bfm_basis(p: Path, h5: Any, group: str, n: int) -> np.ndarray:
    """(K, 3N) components scaled to one standard deviation per unit coefficient."""
    basis = np.asarray(h5[f"{group}/model/pcaBasis"], dtype=np.float64)
    var = np.asarray(h5[f"{group}/model/pcaVariance"], dtype=np.float64).ravel()
    if basis.shape != (n, var.size):
        raise PipelineInputError(p, f"BFM {group} pcaBasis is {basis.shape}, expected ({n}, {var.size})")
    if np.any(var < 0):
        raise PipelineInputError(p, f"BFM {group} pcaVariance has negative values")
    return (basis * np.sqrt(var)[None, :]).T
