"""Downloadable model assets: where they come from, their checksums, and a verified, atomic download.

A pinned sha256 makes a download reproducible and detects corruption or a changed upstream file. The ICT-FaceKit
asset is a GitHub *branch* archive, whose bytes change whenever the branch moves (and GitHub does not promise stable
archive bytes), so it cannot be pinned: its sha256 is None and it is not verified; the converter that reads it checks
the content it needs instead.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from neural_renderer.atomic import atomic_path
from neural_renderer.errors import PipelineInputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Asset:
    """One downloadable file: `filename` is its name in the destination folder; sha256 None = not pinned."""

    name: str
    url: str
    sha256: str | None
    filename: str
    description: str = ""


ASSETS: Mapping[str, Asset] = MappingProxyType(
    {
        "face_landmarker": Asset(
            name="face_landmarker",
            url="https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/float16/1/face_landmarker.task",
            sha256="64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff",
            filename="face_landmarker.task",
            description="MediaPipe FaceLandmarker v2 bundle (478 landmarks, 52 blendshapes), Apache-2.0",
        ),
        "insightface_buffalo_l": Asset(
            name="insightface_buffalo_l",
            url="https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip",
            sha256="80ffe37d8a5940d59a7384c201a2a38d4741f2f3c51eef46ebb28218a7b0ca2f",
            filename="buffalo_l.zip",
            description="insightface buffalo_l model pack (ArcFace w600k_r50.onnx), non-commercial research only",
        ),
        "ict_facekit": Asset(
            name="ict_facekit",
            url="https://github.com/ICT-VGL/ICT-FaceKit/archive/refs/heads/master.zip",
            sha256=None,  # branch archive: changes with the branch, cannot be pinned
            filename="ICT-FaceKit-master.zip",
            description="ICT-FaceKit repository archive (FaceXModel OBJs), MIT",
        ),
    }
)


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks (model and video files can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: str | Path, expected: str | None) -> None:
    """Raise PipelineInputError naming the file if its sha256 differs from `expected` (None = nothing to check)."""
    if expected is None:
        return
    actual = sha256_file(path)
    if actual.lower() != expected.lower():
        raise PipelineInputError(path, f"sha256 mismatch: expected {expected.lower()}, got {actual}")


def ensure_asset(
    name: str,
    dest_dir: str | Path,
    *,
    registry: Mapping[str, Asset] = ASSETS,
    timeout_s: float = 60.0,
) -> Path:
    """Return `dest_dir/filename` of asset `name`, downloading it first if missing.

    The download goes to a temporary file in `dest_dir`, is verified when the asset is pinned, then renamed into
    place, so an interrupted or corrupt download never leaves a file that looks complete. An existing file with a
    wrong checksum raises (it is left alone: it may be a deliberate local replacement; delete it to re-download).
    """
    if name not in registry:
        raise KeyError(f"unknown asset {name!r}; known: {sorted(registry)}")
    asset = registry[name]
    dest_dir = Path(dest_dir)
    target = dest_dir / asset.filename
    if target.exists():
        try:
            verify_sha256(target, asset.sha256)
        except PipelineInputError as exc:
            raise PipelineInputError(target, f"existing file does not match the pinned checksum ({exc.reason}); "
                                             "delete it to download it again") from None  # fmt: skip
        return target
    with atomic_path(target) as tmp:
        log.info("downloading %s from %s", name, asset.url)
        with open(tmp, "wb") as out:
            try:
                with urllib.request.urlopen(asset.url, timeout=timeout_s) as response:
                    shutil.copyfileobj(response, out, length=1 << 20)
            except (urllib.error.URLError, OSError, ValueError) as exc:
                raise PipelineInputError(asset.url, f"download of asset {name!r} failed ({exc})") from None
        if tmp.stat().st_size == 0:
            raise PipelineInputError(asset.url, f"download of asset {name!r} returned no data")
        try:
            verify_sha256(tmp, asset.sha256)
        except PipelineInputError as exc:
            raise PipelineInputError(asset.url, f"downloaded asset {name!r} is corrupt or changed upstream ({exc.reason})") from None
        if asset.sha256 is None:
            log.warning("asset %s is not pinned; downloaded sha256 %s", name, sha256_file(tmp))
    return target
