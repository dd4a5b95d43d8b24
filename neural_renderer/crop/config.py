"""Crop parameters (the `crop:` section of the workflow config), validated on construction."""

from __future__ import annotations

from dataclasses import dataclass

RESOLUTIONS: tuple[int, ...] = (256, 512, 1024)
SMOOTHING_METHODS: tuple[str, ...] = ("savgol", "one_euro", "none")


@dataclass(frozen=True)
class CropConfig:
    """Square crop around the face, smoothed over time.

    The box side is `face_size * (1 + margin)`, face_size = max(width, height) of the 468-point mesh's bounding box
    (forehead to chin; MediaPipe's mesh stops mid-forehead, hence a generous default margin). `vertical_offset`
    shifts the centre by that fraction of the side (positive = down, negative = up to include more hair).

    Smoothing of (centre x, centre y, side) over time:
    - 'savgol': Savitzky-Golay, zero-lag (offline), window in frames (odd) and polynomial order;
    - 'one_euro': Casiez et al. 2012 filter, causal; cutoffs in Hz (needs the fps), beta in 1/(face sizes per second)
      because the signal is divided by the median face size first (so it does not depend on the video resolution);
    - 'none': raw per-frame boxes (invalid frames still interpolated).
    """

    resolution: int = 512
    margin: float = 0.6
    vertical_offset: float = 0.0
    smoothing: str = "savgol"
    savgol_window: int = 15
    savgol_polyorder: int = 2
    one_euro_min_cutoff: float = 0.5
    one_euro_beta: float = 2.0
    one_euro_d_cutoff: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.resolution, bool) or self.resolution not in RESOLUTIONS:
            raise ValueError(f"resolution must be one of {RESOLUTIONS}, got {self.resolution!r}")
        if not 0.0 <= self.margin <= 5.0:
            raise ValueError(f"margin must be in [0, 5] (fraction of the face size), got {self.margin!r}")
        if not -1.0 <= self.vertical_offset <= 1.0:
            raise ValueError(
                f"vertical_offset must be in [-1, 1] (fraction of the box side), got {self.vertical_offset!r}"
            )
        if self.smoothing not in SMOOTHING_METHODS:
            raise ValueError(f"smoothing must be one of {SMOOTHING_METHODS}, got {self.smoothing!r}")
        if self.savgol_window < 3 or self.savgol_window % 2 == 0:
            raise ValueError(f"savgol_window must be an odd number of frames >= 3, got {self.savgol_window!r}")
        if not 0 <= self.savgol_polyorder < self.savgol_window:
            raise ValueError(f"savgol_polyorder must be in [0, savgol_window), got {self.savgol_polyorder!r}")
        if self.one_euro_min_cutoff <= 0 or self.one_euro_d_cutoff <= 0:
            raise ValueError("one_euro_min_cutoff and one_euro_d_cutoff must be > 0 (Hz)")
        if self.one_euro_beta < 0:
            raise ValueError(f"one_euro_beta must be >= 0, got {self.one_euro_beta!r}")
