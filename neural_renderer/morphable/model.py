"""The linear 3D morphable model every loader produces and the fitter consumes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .eyes import Eyeballs

if TYPE_CHECKING:  # torch is only needed by as_torch(); importing it costs seconds
    import torch


def _frozen(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class LinearMorphableModel:
    """vertices = neutral + sum_i identity[i] * identity_basis[i] + sum_j expression[j] * expression_basis[j].

    Arrays are copied and made read-only on construction, so a model can be shared between stages (and threads)
    without defensive copies. `landmarks_68` is None for models shipped without a Multi-PIE landmark embedding
    (FLAME, BFM without a user file): they still work with dense correspondence only after the caller supplies an
    initial alignment. `units` is the length unit of neutral and the bases; every loader converts to 'cm'.
    """

    name: str
    neutral: np.ndarray  # (V, 3) float32
    faces: np.ndarray  # (F, 3) or (F, 4) int64
    identity_basis: np.ndarray  # (Ki, V, 3) float32, offsets from neutral per unit coefficient
    expression_basis: np.ndarray  # (Ke, V, 3) float32
    identity_names: list[str] = field(default_factory=list)
    expression_names: list[str] = field(default_factory=list)
    landmarks_68: np.ndarray | None = None  # (68,) int64 vertex indices
    units: str = "cm"
    eyeballs: Eyeballs | None = None
    """eyeball spheres (``eyes.py``); None when the file has none (gaze then uses the documented fallback)."""

    def __post_init__(self) -> None:
        neutral = np.array(self.neutral, dtype=np.float32)
        if neutral.ndim != 2 or neutral.shape[1] != 3 or len(neutral) == 0:
            raise ValueError(f"{self.name}: neutral must be (V, 3), got {neutral.shape}")
        v = len(neutral)
        ident = np.array(self.identity_basis, dtype=np.float32)
        expr = np.array(self.expression_basis, dtype=np.float32)
        for label, basis in (("identity_basis", ident), ("expression_basis", expr)):
            if basis.ndim != 3 or basis.shape[1:] != (v, 3):
                raise ValueError(f"{self.name}: {label} must be (K, {v}, 3), got {basis.shape}")
        faces = np.array(self.faces)
        if faces.size == 0:
            faces = faces.reshape(0, 3)
        if faces.ndim != 2 or faces.shape[1] not in (3, 4) or not np.issubdtype(faces.dtype, np.integer):
            raise ValueError(f"{self.name}: faces must be integer (F, 3|4), got {faces.dtype} {faces.shape}")
        faces = faces.astype(np.int64)
        if faces.size and (faces.min() < 0 or faces.max() >= v):
            raise ValueError(f"{self.name}: face indices outside [0, {v})")
        id_names = [str(s) for s in self.identity_names] or [f"identity{i:03d}" for i in range(len(ident))]
        ex_names = [str(s) for s in self.expression_names] or [f"expression{i:03d}" for i in range(len(expr))]
        if len(id_names) != len(ident):
            raise ValueError(f"{self.name}: {len(id_names)} identity names for {len(ident)} identity shapes")
        if len(ex_names) != len(expr):
            raise ValueError(f"{self.name}: {len(ex_names)} expression names for {len(expr)} expression shapes")
        if len(set(ex_names)) != len(ex_names):
            raise ValueError(f"{self.name}: duplicate expression names")
        lm = None
        if self.landmarks_68 is not None:
            lm = np.array(self.landmarks_68)
            if lm.shape != (68,) or not np.issubdtype(lm.dtype, np.integer):
                raise ValueError(f"{self.name}: landmarks_68 must be 68 integer indices, got {lm.dtype} {lm.shape}")
            lm = lm.astype(np.int64)
            if lm.min() < 0 or lm.max() >= v:
                raise ValueError(f"{self.name}: landmarks_68 outside [0, {v})")
            lm = _frozen(lm)
        for label, arr in (("neutral", neutral), ("identity_basis", ident), ("expression_basis", expr)):
            if not np.isfinite(arr).all():
                raise ValueError(f"{self.name}: {label} has non-finite values")
        set_ = object.__setattr__
        set_(self, "neutral", _frozen(neutral))
        set_(self, "faces", _frozen(faces))
        set_(self, "identity_basis", _frozen(ident))
        set_(self, "expression_basis", _frozen(expr))
        set_(self, "identity_names", id_names)
        set_(self, "expression_names", ex_names)
        set_(self, "landmarks_68", lm)
        set_(self, "units", str(self.units))
        if self.eyeballs is not None and len(self.eyeballs.identity_basis) not in (0, len(ident)):
            raise ValueError(
                f"{self.name}: eyeball identity_basis has {len(self.eyeballs.identity_basis)} components, "
                f"the model {len(ident)}"
            )

    @property
    def n_vertices(self) -> int:
        return int(self.neutral.shape[0])

    @property
    def n_identity(self) -> int:
        return int(self.identity_basis.shape[0])

    @property
    def n_expression(self) -> int:
        return int(self.expression_basis.shape[0])

    def expression_index(self, name: str) -> int:
        """Position of a named expression shape (e.g. 'jawOpen'); KeyError lists what exists."""
        try:
            return self.expression_names.index(name)
        except ValueError:
            raise KeyError(f"{self.name}: no expression {name!r}; have {self.expression_names}") from None

    def vertices(self, identity: np.ndarray | None = None, expression: np.ndarray | None = None) -> np.ndarray:
        """(V, 3) float32 mesh for one coefficient set; None means all zeros (the neutral mean face)."""
        out = self.neutral.astype(np.float64)
        for label, coeffs, basis in (
            ("identity", identity, self.identity_basis),
            ("expression", expression, self.expression_basis),
        ):
            if coeffs is None:
                continue
            c = np.asarray(coeffs, dtype=np.float64)
            if c.shape != (basis.shape[0],):
                raise ValueError(f"{self.name}: {label} must be ({basis.shape[0]},), got {c.shape}")
            out += np.tensordot(c, basis, axes=1)
        return out.astype(np.float32)

    def subset(self, vertex_indices: Sequence[int] | np.ndarray) -> LinearMorphableModel:
        """The model restricted to these vertices, in this order (duplicates allowed).

        The fitter evaluates only the correspondence vertices, so this keeps it O(L) instead of O(V). Faces whose
        corners all survive are kept (re-indexed to the first occurrence); landmarks_68 is re-indexed when all 68
        survive, else None. The eyeballs (not vertices) are kept.
        """
        idx = np.asarray(vertex_indices, dtype=np.int64).ravel()
        if idx.size == 0:
            raise ValueError(f"{self.name}: subset needs at least one vertex")
        if idx.min() < 0 or idx.max() >= self.n_vertices:
            raise ValueError(f"{self.name}: subset indices outside [0, {self.n_vertices})")
        new_of_old = np.full(self.n_vertices, -1, dtype=np.int64)
        first = np.unique(idx, return_index=True)[1]
        new_of_old[idx[first]] = first
        remapped = new_of_old[self.faces] if self.faces.size else self.faces
        faces = remapped[(remapped >= 0).all(axis=1)] if self.faces.size else self.faces
        lm = None
        if self.landmarks_68 is not None and (new_of_old[self.landmarks_68] >= 0).all():
            lm = new_of_old[self.landmarks_68]
        return LinearMorphableModel(
            name=self.name,
            neutral=self.neutral[idx],
            faces=faces,
            identity_basis=self.identity_basis[:, idx],
            expression_basis=self.expression_basis[:, idx],
            identity_names=list(self.identity_names),
            expression_names=list(self.expression_names),
            landmarks_68=lm,
            units=self.units,
            eyeballs=self.eyeballs,
        )

    def as_torch(
        self, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(neutral (V, 3), identity_basis (Ki, V, 3), expression_basis (Ke, V, 3)) as tensors (float32 default)."""
        import torch

        dt = torch.float32 if dtype is None else dtype
        # np.array(...) copies: torch.from_numpy refuses read-only arrays without a warning-free path.
        return tuple(
            torch.as_tensor(np.array(a), dtype=dt, device=device)  # type: ignore[return-value]
            for a in (self.neutral, self.identity_basis, self.expression_basis)
        )
