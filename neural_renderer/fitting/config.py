"""Fit configuration: one typed dataclass, so a run's settings can be logged and compared as a whole."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Literal

__all__ = ["FitConfig", "GazeConfig", "resolved_fit_config"]


@dataclass(frozen=True)
class FitConfig:
    """Settings of ``fit_sequence_refined``.

    Loss weights are relative to the landmark term, which is the weighted mean squared reprojection error in pixels
    of a 512 px crop (residuals are rescaled by 512 / image_size), so the same weights work at every resolution.
    Priors and smoothness terms are means over frames; the identity prior is per sequence.
    """

    # model
    n_identity: int = 80
    """leading identity components optimised (the rest stay 0); ICT's later components are tiny and unconstrained."""
    n_expression: int | None = None
    """leading expression components optimised; None = all."""

    # camera
    focal_factor: float = 2.0
    """fx = fy = focal_factor * image_size (2.0 ~ 28 degree field of view)."""
    optimize_focal: bool = False
    """optimise one focal shared by all frames; weakly observable from landmarks (trades off against depth)."""

    # schedule (Levenberg-Marquardt, see solver.py and fit.py)
    identity_frames: int = 150
    """key frames (evenly spaced valid frames) on which identity is fitted; <= 0 means all frames."""
    iterations_identity: int = 20
    """stage 2: identity + key-frame pose and expression."""
    iterations_sequence: int = 15
    """stage 3: all frames' pose and expression, identity fixed."""
    tolerance: float = 1e-3
    """stop a stage when an accepted step lowers the cost by less than this fraction."""
    refine_radius: float = 0.5
    """How far (model units, cm for ICT) a correspondence may slide on the mesh; 0 = off."""
    refine_rounds: int = 2
    """Refinement / key-frame refit rounds."""

    # weights (cost terms in solver.py)
    w_landmark: float = 1.0
    w_identity_prior: float = 0.05
    """squared norm of the identity coefficients (a Gaussian prior; ICT's coefficients are O(1) per component)."""
    w_expression_prior: float = 0.05
    """mean over frames of the squared expression coefficients: resolves blendshapes that move landmarks alike."""
    w_expression_prior_extra: dict[str, float] = field(
        default_factory=lambda: {"mouthLowerDown_L": 2.0, "mouthLowerDown_R": 2.0, "mouthFunnel": 2.0}
    )
    """extra squared-coefficient prior per named expression shape, on top of w_expression_prior: {name: weight}.
    Names the model lacks are ignored; a mapping given in the config replaces this one ({} = none). Default: the
    shapes that otherwise take part of the mouth's opening from jawOpen (lower lip pulled down, funnel), so jawOpen
    follows the opening (issue 26; tuned on d18 and d6, docs/TRACKING.md)."""
    w_blendshape_prior: float = 0.5
    """pull of the expression coefficients towards the tracker's blendshapes of the same ARKit name (per frame, mean
    over frames; needs init_from_blendshapes): makes what landmarks barely see (eyeLook, eyeWide, brows) as
    left/right-consistent as MediaPipe's scores. 0 = off."""
    w_expression_smooth: float = 0.0
    """first temporal difference of the expression coefficients (penalises fast changes)."""
    w_expression_smooth2: float = 0.5
    """second temporal difference (penalises jitter, not steady motion)."""
    w_rotation_smooth: float = 200.0
    """first difference of the head rotation (radians^2; 1 degree = 3e-4 rad^2)."""
    w_translation_smooth: float = 0.5
    """first difference of the translation (model units^2, cm for ICT)."""
    expression_bounds: tuple[float, float] | None = (0.0, 1.0)
    """ICT/ARKit blendshape weights live in [0, 1] (an active-set method keeps them there); None: unbounded."""

    # init / runtime
    init_from_blendshapes: bool = True
    """start expressions from MediaPipe blendshapes mapped by ARKit name (when given)."""
    device: str = "auto"
    """torch device of the Jacobian products: auto (cuda when a GPU is visible) | cpu | cuda."""
    jacobian_dtype: Literal["float32", "float64"] = "float32"
    """dtype of the big Jacobian products (the solve is always float64); float32 halves the time."""
    window_frames: int = 1000
    """stage 3 solves overlapping windows of at most this many frames (identity fixed), so the fit's memory does not
    grow with the video: about 0.2 MB per window frame. A video this short or shorter is solved whole."""
    window_overlap: int = 100
    """frames shared by consecutive windows; the result fades from one window's solution to the next across them."""
    chunk_frames: int = 256
    """frames per Jacobian chunk: bounds memory to ~chunk * L * 2 * (6 + Ke + Ki) floats."""
    num_threads: int | None = None
    """torch intra-op threads for the fit; None leaves torch's setting alone."""

    def __post_init__(self) -> None:
        if self.n_identity < 0 or (self.n_expression is not None and self.n_expression < 0):
            raise ValueError("n_identity / n_expression must be >= 0")
        if self.focal_factor <= 0:
            raise ValueError("focal_factor must be > 0")
        for name in ("identity_frames", "iterations_identity", "iterations_sequence", "refine_rounds"):
            if not isinstance(getattr(self, name), int) or (getattr(self, name) < 0 and name != "identity_frames"):
                raise ValueError(f"{name} must be an integer >= 0")
        if not 0 <= self.window_overlap < self.window_frames // 2:
            raise ValueError("window_overlap must be >= 0 and less than half of window_frames")
        if self.tolerance < 0 or self.refine_radius < 0 or self.chunk_frames < 1:
            raise ValueError("tolerance and refine_radius must be >= 0, chunk_frames >= 1")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.jacobian_dtype not in ("float32", "float64"):
            raise ValueError(f"jacobian_dtype must be 'float32' or 'float64', got {self.jacobian_dtype!r}")
        for name in (
            "w_landmark",
            "w_identity_prior",
            "w_expression_prior",
            "w_blendshape_prior",
            "w_expression_smooth",
            "w_expression_smooth2",
            "w_rotation_smooth",
            "w_translation_smooth",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if any(w < 0 for w in self.w_expression_prior_extra.values()):
            raise ValueError("w_expression_prior_extra weights must be >= 0")
        if self.expression_bounds is not None:
            lo, hi = self.expression_bounds
            if not lo < hi:
                raise ValueError("expression_bounds must be (low, high) with low < high")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FitConfig:
        """Build from a config mapping (e.g. the workflow's YAML); unknown keys raise."""
        d = _checked(cls, d)
        if d.get("expression_bounds") is not None:
            d["expression_bounds"] = tuple(float(v) for v in d["expression_bounds"])
        if d.get("w_expression_prior_extra") is not None:
            d["w_expression_prior_extra"] = {str(k): float(v) for k, v in d["w_expression_prior_extra"].items()}
        return cls(**d)


def resolved_fit_config(section: dict[str, Any]) -> FitConfig:
    """The `fit:` section as the stage runs it: typed, with `device` resolved (auto -> cuda or cpu), so the file's
    provenance records the device that ran. Shared by the fit stage and the metrics' re-extracted motion."""
    from neural_renderer.device import resolve_device
    from neural_renderer.errors import PipelineInputError

    try:
        cfg = FitConfig.from_dict(section)
    except (TypeError, ValueError) as exc:
        raise PipelineInputError(None, f"invalid fit configuration: {exc}") from None
    return replace(cfg, device=str(resolve_device(cfg.device)))


def _checked(cls: type, d: dict[str, Any]) -> dict[str, Any]:
    """Copy of ``d`` after checking its keys: a typo must not silently fall back to a default."""
    unknown = set(d) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
    return dict(d)


@dataclass(frozen=True)
class GazeConfig:
    """Settings of ``gaze_from_fit``: where the eyeballs come from and when the eyes count as closed."""

    eyeballs: Literal["auto", "model", "corners"] = "auto"
    """eyeball spheres: 'model' = the model file's (ICT converter), 'corners' = ICT's offset from the fitted eye
    corners (morphable/eyes.py), 'auto' = the model's when the file has them, else the corners fallback."""
    eyeball_radius_cm: float | None = None
    """override of the eyeball radius; None = the eyeball model's (ICT sclera sphere: 1.58 cm)."""
    blink_threshold: float = 0.5
    """frames whose larger eyeBlink blendshape score exceeds this are eyes-closed: invalid, gaze interpolated."""

    def __post_init__(self) -> None:
        if self.eyeballs not in ("auto", "model", "corners"):
            raise ValueError(f"eyeballs must be auto, model or corners, got {self.eyeballs!r}")
        if self.eyeball_radius_cm is not None and self.eyeball_radius_cm <= 0:
            raise ValueError("eyeball_radius_cm must be > 0")
        if not 0.0 < self.blink_threshold <= 1.0:
            raise ValueError("blink_threshold must be in (0, 1]")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GazeConfig:
        return cls(**_checked(cls, d))
