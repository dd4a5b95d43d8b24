"""Shared fixtures: the real test videos and models beside the checkout (../shared)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def repo_dir() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"shared test data not found at {SHARED} (expected beside the checkout)")
    return SHARED


@pytest.fixture(scope="session")
def videos_dir(shared_dir: Path) -> Path:
    return shared_dir / "testdata" / "videos"


@pytest.fixture(scope="session")
def landmarker_model(shared_dir: Path) -> Path:
    return shared_dir / "models" / "face_landmarker.task"


@pytest.fixture(scope="session")
def ict_model_npz(shared_dir: Path) -> Path:
    return shared_dir / "models" / "ict_face_light_face.npz"


def read_face_frames(videos_dir: Path, name: str, n: int, size: int = 256, start: int = 0):
    """The first frames of a shared test video, resized to size x size (the portraits are roughly centred squares)."""
    import cv2
    import numpy as np

    from neural_renderer.video import iter_frames, probe_video

    path = videos_dir / f"{name}.mp4"
    frames = [f for i, f in zip(range(start + n), iter_frames(path, probe_video(path))) if i >= start]
    return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in frames])


@pytest.fixture(scope="session")
def face_frames(videos_dir: Path):
    """{video: (32, 256, 256, 3) uint8}: 32 real frames of d0, d6, d12 and d18, decoded once per test session."""
    return {name: read_face_frames(videos_dir, name, 32) for name in ("d0", "d6", "d12", "d18")}
