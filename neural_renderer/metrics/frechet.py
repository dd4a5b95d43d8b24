"""Fréchet distance between two Gaussians fitted to feature sets: FID (Inception features), FVD (I3D features)."""

from __future__ import annotations

import numpy as np

from neural_renderer.errors import PipelineInputError


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a) + Tr(S_b) - 2 Tr(sqrt(S_a S_b)).

    Tr(sqrt(S_a S_b)) is computed exactly as the nuclear norm of A B^T / sqrt((n-1)(m-1)) (A, B the centred feature
    sets): the non-zero eigenvalues of S_a S_b are those of (A B^T)(A B^T)^T / ((n-1)(m-1)). That is an n x m SVD
    instead of a 2048 x 2048 `sqrtm` (seconds, and complex round-off, on a CPU), and it needs no eps offset when the
    covariances are singular, as they are with fewer samples than dimensions. With more samples than dimensions,
    Tr(sqrt(S_a S_b)) = Tr(sqrt(R S_b R)), R = S_a^(1/2) from `eigh`: symmetric PSD throughout, so it stays real and
    finite where pytorch-fid's `sqrtm(S_a S_b)` needs its eps offset."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sets must be (N, D) and (M, D), got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("feature sets contain NaN or inf")
    if len(a) < 2 or len(b) < 2:
        raise PipelineInputError(None, f"Fréchet distance needs >= 2 samples per set, got {len(a)} and {len(b)}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    ca, cb = a - mu_a, b - mu_b
    na, nb = len(a) - 1, len(b) - 1
    if min(len(a), len(b)) < a.shape[1]:
        cross = np.linalg.svd(ca @ cb.T, compute_uv=False).sum() / np.sqrt(na * nb)
    else:  # more samples than dimensions: the D x D route is the smaller one
        s_a, s_b = ca.T @ ca / na, cb.T @ cb / nb
        w, v = np.linalg.eigh(s_a)
        root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
        cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ s_b @ root_a), 0, None)).sum()
    diff = mu_a - mu_b
    trace = (ca * ca).sum() / na + (cb * cb).sum() / nb
    return float(max(diff @ diff + trace - 2.0 * cross, 0.0))


def fid(real: np.ndarray, fake: np.ndarray) -> float:
    """FID from (N, 2048) Inception pool features."""
    return frechet_distance(real, fake)


def fvd(real: np.ndarray, fake: np.ndarray) -> float:
    """FVD from (N, 400) I3D logits of 16-frame clips."""
    return frechet_distance(real, fake)
