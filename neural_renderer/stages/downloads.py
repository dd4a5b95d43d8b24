"""Model downloads on users' machines (rules/models.smk): a pinned file as it is (`download`); the ICT-FaceKit
archive (MIT), converted to the face-region npz; insightface's buffalo_l pack, of which the ArcFace model
(w600k_r50.onnx) is kept for CSIM.

The ICT archive is that of a pinned commit; the OBJ files used are verified by sha256 as they are extracted (see
`neural_renderer.assets`). An archive whose files do not verify is deleted, so the next run downloads it again.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

from neural_renderer.assets import ASSETS, ensure_asset, extract_verified, verify_sha256
from neural_renderer.atomic import atomic_path
from neural_renderer.errors import PipelineInputError
from neural_renderer.morphable import convert_ict_objs

ICT_MODEL_FILES: Mapping[str, str] = {
    k: v for k, v in ASSETS["ict_facekit"].members.items() if k.startswith("FaceXModel/") and k.endswith(".obj")
}


def download(name: str, out: str | Path) -> Path:
    """The pinned asset `name` (neural_renderer.assets: URL, sha256) as `out`, downloaded and verified if missing."""
    return ensure_asset(name, Path(out).parent)


def extract_facexmodel(archive: str | Path, dest: str | Path, pinned: Mapping[str, str] = ICT_MODEL_FILES) -> Path:
    """Unpack the pinned `FaceXModel/*.obj` files of the ICT-FaceKit archive into `dest`/FaceXModel, verified."""
    extract_verified(archive, pinned, dest)
    return Path(dest) / "FaceXModel"


def build_ict_model(out_npz: str | Path, download_dir: str | Path) -> Path:
    archive = ensure_asset("ict_facekit", download_dir)
    with tempfile.TemporaryDirectory(dir=Path(out_npz).parent) as tmp:
        try:
            objs = extract_facexmodel(archive, tmp)
        except PipelineInputError:
            archive.unlink(missing_ok=True)  # a damaged or wrong archive: the next run downloads it again
            raise
        convert_ict_objs(objs, out_npz)
    return Path(out_npz)


ARCFACE_MEMBER = "w600k_r50.onnx"
ARCFACE_SHA256 = "4c06341c33c2ca1f86781dab0e829f88ad5b64be9fba56e56bc9ebdefc619e43"
"""sha256 of w600k_r50.onnx inside insightface's v0.7 buffalo_l.zip (174383860 bytes), as published by its users."""


def extract_arcface(archive: str | Path, out_onnx: str | Path, expected_sha256: str | None = ARCFACE_SHA256) -> Path:
    """Copy w600k_r50.onnx out of a buffalo_l zip (any folder inside it), verified, atomically."""
    out = Path(out_onnx)
    try:
        with zipfile.ZipFile(archive) as z:
            members = [m for m in z.namelist() if Path(m).name == ARCFACE_MEMBER]
            if not members:
                raise PipelineInputError(archive, f"no {ARCFACE_MEMBER} inside: not insightface's buffalo_l pack")
            out.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(out) as tmp:
                with z.open(members[0]) as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst, length=1 << 20)
                try:
                    verify_sha256(tmp, expected_sha256)
                except PipelineInputError as exc:
                    raise PipelineInputError(archive, f"{ARCFACE_MEMBER}: {exc.reason}") from None
    except zipfile.BadZipFile as exc:
        raise PipelineInputError(archive, f"not a zip archive ({exc})") from None
    return out


def fetch_arcface(out_onnx: str | Path, download_dir: str | Path) -> Path:
    """Download (verified) insightface's buffalo_l pack and extract its ArcFace model; the pack is kept in
    download_dir so a re-run does not download it again."""
    return extract_arcface(ensure_asset("insightface_buffalo_l", download_dir), out_onnx)
