"""Asset registry, checksums on the real model file, and the download path (file:// URLs: no network here)."""

from __future__ import annotations

import hashlib
import shutil

import pytest

from neural_renderer.assets import ASSETS, Asset, ensure_asset, sha256_file, verify_sha256
from neural_renderer.errors import PipelineInputError

PINNED = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"


def test_registry():
    lm = ASSETS["face_landmarker"]
    assert lm.sha256 == PINNED and lm.filename == "face_landmarker.task"
    assert lm.url.startswith("https://storage.googleapis.com/mediapipe-models/face_landmarker/")
    ict = ASSETS["ict_facekit"]
    assert ict.sha256 is None  # a branch archive cannot be pinned
    assert ict.url == "https://github.com/ICT-VGL/ICT-FaceKit/archive/refs/heads/master.zip"
    with pytest.raises(TypeError):
        ASSETS["x"] = lm  # read-only registry


def test_sha256_of_the_shared_model(landmarker_model):
    assert sha256_file(landmarker_model) == PINNED
    assert sha256_file(landmarker_model, chunk_size=4096) == hashlib.sha256(landmarker_model.read_bytes()).hexdigest()
    verify_sha256(landmarker_model, PINNED)
    verify_sha256(landmarker_model, PINNED.upper())
    verify_sha256(landmarker_model, None)
    with pytest.raises(PipelineInputError, match="sha256 mismatch") as exc:
        verify_sha256(landmarker_model, "0" * 64)
    assert str(landmarker_model) in str(exc.value) and PINNED in str(exc.value)


@pytest.fixture()
def source(tmp_path, landmarker_model):
    """A local copy of the model served through a file:// URL."""
    src = tmp_path / "server" / "face_landmarker.task"
    src.parent.mkdir()
    shutil.copyfile(landmarker_model, src)
    return src


def _registry(url: str, sha256: str | None) -> dict[str, Asset]:
    return {"face_landmarker": Asset("face_landmarker", url, sha256, "face_landmarker.task")}


def test_download_verifies_and_renames_atomically(tmp_path, source):
    dest = tmp_path / "models"
    path = ensure_asset("face_landmarker", dest, registry=_registry(source.as_uri(), PINNED))
    assert path == dest / "face_landmarker.task"
    assert sha256_file(path) == PINNED
    assert sorted(p.name for p in dest.iterdir()) == ["face_landmarker.task"]  # no temp file left
    source.unlink()  # present and valid: no second download
    assert ensure_asset("face_landmarker", dest, registry=_registry(source.as_uri(), PINNED)) == path


def test_download_with_wrong_checksum_is_rejected(tmp_path, source):
    dest = tmp_path / "models"
    with pytest.raises(PipelineInputError, match="corrupt or changed upstream.*sha256 mismatch"):
        ensure_asset("face_landmarker", dest, registry=_registry(source.as_uri(), "1" * 64))
    assert list(dest.iterdir()) == []


def test_existing_file_with_wrong_checksum_raises_and_is_kept(tmp_path, source):
    dest = tmp_path / "models"
    dest.mkdir()
    stale = dest / "face_landmarker.task"
    stale.write_bytes(b"an older or edited model")
    with pytest.raises(PipelineInputError, match="delete it to download it again") as exc:
        ensure_asset("face_landmarker", dest, registry=_registry(source.as_uri(), PINNED))
    assert str(stale) in str(exc.value)
    assert stale.read_bytes() == b"an older or edited model"


def test_unpinned_asset_downloads_without_verification(tmp_path, source):
    path = ensure_asset("face_landmarker", tmp_path / "m", registry=_registry(source.as_uri(), None))
    assert path.read_bytes() == source.read_bytes()


def test_failed_download_leaves_nothing(tmp_path):
    dest = tmp_path / "models"
    missing = (tmp_path / "nowhere" / "face_landmarker.task").as_uri()
    with pytest.raises(PipelineInputError, match="download of asset 'face_landmarker' failed"):
        ensure_asset("face_landmarker", dest, registry=_registry(missing, PINNED))
    assert list(dest.iterdir()) == []
    with pytest.raises(KeyError, match="unknown asset"):
        ensure_asset("no_such_asset", dest)
