"""Shared fixtures: the real test videos and models, found (or fetched once) by `neural_renderer.testdata`.

Lookup order: $PORTRAIT_TEST_DATA, ../shared beside the checkout, the per-user cache (downloaded into, verified).
The folder is resolved once per session, and only when a collected test needs it; when the data is neither there nor
downloadable, the session stops with one line saying what is missing and how to get it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from neural_renderer.testdata import TestDataUnavailable, resolve

REPO = Path(__file__).resolve().parents[1]
DATA_FIXTURES = {"shared_dir", "videos_dir", "landmarker_model", "ict_model_npz", "face_frames"}
_DATA_ROOT = pytest.StashKey[Path]()


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    if not any(DATA_FIXTURES & set(getattr(item, "fixturenames", ())) for item in items):
        return
    try:
        root, source = resolve(REPO)
    except TestDataUnavailable as exc:
        pytest.exit(str(exc), returncode=pytest.ExitCode.USAGE_ERROR)
    config.stash[_DATA_ROOT] = root
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"test data: {root} ({source})")


@pytest.fixture(scope="session")
def repo_dir() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_dir(pytestconfig: pytest.Config) -> Path:
    """The test-data folder (layout of ../shared: testdata/videos/*.mp4, models/...)."""
    return pytestconfig.stash[_DATA_ROOT]


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
