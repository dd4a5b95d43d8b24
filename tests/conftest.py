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
