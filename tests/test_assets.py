"""Asset registry, checksums on the real model file, mirrors, verified archive extraction and the download path
(file:// URLs here; tests/test_model_downloads.py downloads over HTTP from a local server)."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import zipfile

import pytest

from neural_renderer.assets import (
    ASSETS,
    ICT_FACEKIT_COMMIT,
    MIRROR_ENV,
    Asset,
    asset_url,
    ensure_asset,
    extract_verified,
    sha256_file,
    verify_sha256,
)
from neural_renderer.errors import PipelineInputError

PINNED = "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"


@pytest.fixture(autouse=True)
def _no_mirror(monkeypatch):
    """A mirror set in the user's environment would replace the file:// URLs these tests serve."""
    monkeypatch.delenv(MIRROR_ENV, raising=False)


def test_registry():
    lm = ASSETS["face_landmarker"]
    assert lm.sha256 == PINNED and lm.filename == "face_landmarker.task"
    assert lm.url.startswith("https://storage.googleapis.com/mediapipe-models/face_landmarker/")
    ict = ASSETS["ict_facekit"]
    assert ict.sha256 is None  # GitHub's archive bytes are not stable: the files inside are pinned instead
    assert ict.url == f"https://github.com/ICT-VGL/ICT-FaceKit/archive/{ICT_FACEKIT_COMMIT}.zip"
    assert ICT_FACEKIT_COMMIT == "da5f95a607f5e6b37755b38d3385d7f2853732e5"
    objs = [m for m in ict.members if m.startswith("FaceXModel/") and m.endswith(".obj")]
    assert len(objs) == 158 and "LICENSE" in ict.members  # neutral + 100 identities + 57 expressions
    assert sum(m.startswith("FaceXModel/identity") for m in objs) == 100
    assert all(len(h) == 64 and int(h, 16) >= 0 for h in ict.members.values())
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
    with pytest.raises(PipelineInputError, match="asset 'face_landmarker': download failed"):
        ensure_asset("face_landmarker", dest, registry=_registry(missing, PINNED))
    assert list(dest.iterdir()) == []
    with pytest.raises(KeyError, match="unknown asset"):
        ensure_asset("no_such_asset", dest)


def test_pinned_ict_files_match_the_shared_copies(shared_dir):
    """The two upstream OBJs in ../shared (gzip) have the pinned sha256 of commit da5f95a6's files."""
    members = ASSETS["ict_facekit"].members
    for name in ("generic_neutral_mesh", "jawOpen"):
        data = gzip.decompress((shared_dir / "models" / "ict_raw" / f"{name}.obj.gz").read_bytes())
        assert hashlib.sha256(data).hexdigest() == members[f"FaceXModel/{name}.obj"]
    assert sha256_file(shared_dir / "models" / "ict_raw" / "LICENSE") == members["LICENSE"]


def test_mirror_replaces_the_upstream_url(tmp_path, monkeypatch, source):
    lm = ASSETS["face_landmarker"]
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    assert asset_url(lm) == lm.url
    monkeypatch.setenv(MIRROR_ENV, "https://mirror.example.org/models/")
    assert asset_url(lm) == "https://mirror.example.org/models/face_landmarker.task"
    assert asset_url(lm, mirror="http://10.0.0.1:8000") == "http://10.0.0.1:8000/face_landmarker.task"
    monkeypatch.setenv(MIRROR_ENV, str(source.parent))  # a folder works too
    assert asset_url(lm) == source.as_uri()
    path = ensure_asset("face_landmarker", tmp_path / "m", registry=_registry("https://unreachable.invalid/x", PINNED))
    assert sha256_file(path) == PINNED


def _zip(path, files):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(f"Repo-{ICT_FACEKIT_COMMIT}/{name}", data)
    return path


def test_extract_verified(tmp_path):
    files = {"A/a.obj": b"vertices", "LICENSE": b"MIT"}
    pinned = {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}
    archive = _zip(tmp_path / "ok.zip", {**files, "README.md": b"not pinned, not extracted"})
    out = extract_verified(archive, pinned, tmp_path / "out")
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == ["A/a.obj", "LICENSE"]
    assert (out / "A" / "a.obj").read_bytes() == b"vertices"

    bad = _zip(tmp_path / "bad.zip", {**files, "A/a.obj": b"vertices, edited"})
    with pytest.raises(PipelineInputError, match=r"bad\.zip: A/a\.obj: sha256 mismatch: expected " + pinned["A/a.obj"]):
        extract_verified(bad, pinned, tmp_path / "out2")
    assert not (tmp_path / "out2" / "A" / "a.obj").exists() and not list((tmp_path / "out2").rglob("*.tmp-*"))

    short = _zip(tmp_path / "short.zip", {"LICENSE": b"MIT"})
    with pytest.raises(PipelineInputError, match=r"1 of 2 pinned files missing: A/a\.obj"):
        extract_verified(short, pinned, tmp_path / "out3")
    (tmp_path / "junk.zip").write_bytes(b"half a zip")
    with pytest.raises(PipelineInputError, match="not a readable zip archive"):
        extract_verified(tmp_path / "junk.zip", pinned, tmp_path / "out4")
