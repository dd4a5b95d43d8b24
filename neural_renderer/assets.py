"""Downloadable model assets: where they come from, their checksums, and a verified, atomic download.

Every asset is pinned, so a download is reproducible and a corrupt, truncated or changed file is refused:
- a plain file by its own sha256 (MediaPipe's `face_landmarker.task`);
- the ICT-FaceKit repository, downloaded as the archive of commit da5f95a6 (the repository has not changed since
  2020-12-01), by the sha256 of every member the pipeline uses (`members`, from `ict_facekit.sha256`), checked as
  they are extracted (`extract_verified`). The archive's own bytes are not pinned: GitHub does not promise to keep
  them stable, only the files inside.

Mirrors: `PORTRAIT_ASSET_MIRROR` (a base URL, or a folder) replaces each asset's upstream URL by
`{mirror}/{filename}`, for compute nodes without internet, air-gapped clusters or a local cache; the checksums are
verified all the same. `python -m neural_renderer.assets fetch DIR` fills such a folder on a machine with internet.

Every download goes to a temporary file beside its target and is renamed only once complete and verified: a dropped
connection (fewer bytes than the server announced) or a checksum mismatch leaves nothing behind and fails with one
line. Dropped approach: pooch (installed via librosa) downloads and verifies too, but raises its own errors with
stack traces and cannot verify archive members; this module is small and uses the pipeline's error type.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import logging
import os
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import MappingProxyType

from neural_renderer.atomic import atomic_path
from neural_renderer.errors import PipelineInputError

log = logging.getLogger(__name__)

MIRROR_ENV = "PORTRAIT_ASSET_MIRROR"
ICT_FACEKIT_COMMIT = "da5f95a607f5e6b37755b38d3385d7f2853732e5"
_CHUNK = 1 << 20


def read_sha256_manifest(path: str | Path) -> Mapping[str, str]:
    """{relative path: sha256} from a file in `sha256sum` format (`#` lines are comments)."""
    out = {}
    for line in Path(path).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            digest, name = line.split(maxsplit=1)
            out[name.strip().lstrip("*")] = digest.lower()
    return MappingProxyType(out)


@dataclass(frozen=True)
class Asset:
    """One downloadable file, saved as `filename` (also its name on a mirror).

    sha256: of the file itself, or None when only `members` (paths inside an archive -> sha256) are pinned.
    """

    name: str
    url: str
    sha256: str | None
    filename: str
    description: str = ""
    members: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


ICT_FACEKIT_FILES = read_sha256_manifest(Path(__file__).with_name("ict_facekit.sha256"))

ASSETS: Mapping[str, Asset] = MappingProxyType(
    {
        "face_landmarker": Asset(
            name="face_landmarker",
            url="https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/float16/1/face_landmarker.task",
            sha256="64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff",
            filename="face_landmarker.task",
            description="MediaPipe FaceLandmarker v2 bundle (478 landmarks, 52 blendshapes), Apache-2.0, 3.8 MB",
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
            url=f"https://github.com/ICT-VGL/ICT-FaceKit/archive/{ICT_FACEKIT_COMMIT}.zip",
            sha256=None,  # GitHub's archive bytes are not stable; the files used inside are pinned
            filename=f"ICT-FaceKit-{ICT_FACEKIT_COMMIT[:8]}.zip",
            description="ICT-FaceKit repository archive at commit da5f95a6 (FaceXModel OBJs), MIT, 133 MB",
            members=ICT_FACEKIT_FILES,
        ),
    }
)


def sha256_file(path: str | Path, chunk_size: int = _CHUNK) -> str:
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


def asset_url(asset: Asset, mirror: str | None = None) -> str:
    """Where to download `asset` from: `{mirror}/{filename}` when a mirror is given or set in PORTRAIT_ASSET_MIRROR."""
    mirror = mirror if mirror is not None else os.environ.get(MIRROR_ENV, "").strip()
    if not mirror:
        return asset.url
    if "://" not in mirror:  # a folder
        mirror = Path(mirror).expanduser().resolve().as_uri()
    return f"{mirror.rstrip('/')}/{asset.filename}"


def download(url: str, target: str | Path, sha256: str | None = None, *, timeout_s: float = 60.0) -> Path:
    """Download `url` to `target` atomically; refuse a truncated transfer or a sha256 mismatch (nothing is left).

    A server that closes the connection early is detected by the Content-Length it announced (urllib returns the
    short body without an error).
    """
    target = Path(target)
    start = time.perf_counter()
    with atomic_path(target) as tmp:
        digest, size, expected_size = hashlib.sha256(), 0, None
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response, open(tmp, "wb") as out:
                length = response.headers.get("Content-Length")
                expected_size = int(length) if length and length.isdigit() else None
                for chunk in iter(lambda: response.read(_CHUNK), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            raise PipelineInputError(url, f"download failed ({exc})") from None
        if expected_size is not None and size != expected_size:
            raise PipelineInputError(url, f"download interrupted: got {size} of {expected_size} bytes")
        if size == 0:
            raise PipelineInputError(url, "download returned no data")
        if sha256 is not None and digest.hexdigest() != sha256.lower():
            raise PipelineInputError(url, f"downloaded file is corrupt or changed upstream (sha256 mismatch: "
                                          f"expected {sha256.lower()}, got {digest.hexdigest()})")  # fmt: skip
    log.info("downloaded %s: %.1f MB in %.1f s", target.name, size / 1e6, time.perf_counter() - start)
    return target


def ensure_asset(
    name: str,
    dest_dir: str | Path,
    *,
    registry: Mapping[str, Asset] = ASSETS,
    timeout_s: float = 60.0,
    mirror: str | None = None,
) -> Path:
    """Return `dest_dir/filename` of asset `name`, downloading it first if missing (see `download`).

    An existing file with a wrong checksum raises (it is left alone: it may be a deliberate local replacement; delete
    it to download it again). `mirror` overrides PORTRAIT_ASSET_MIRROR (see `asset_url`).
    """
    if name not in registry:
        raise KeyError(f"unknown asset {name!r}; known: {sorted(registry)}")
    asset = registry[name]
    target = Path(dest_dir) / asset.filename
    if target.exists():
        try:
            verify_sha256(target, asset.sha256)
        except PipelineInputError as exc:
            raise PipelineInputError(target, f"existing file does not match the pinned checksum ({exc.reason}); "
                                             "delete it to download it again") from None  # fmt: skip
        return target
    url = asset_url(asset, mirror)
    log.info("downloading %s from %s", name, url)
    try:
        download(url, target, asset.sha256, timeout_s=timeout_s)
    except PipelineInputError as exc:
        raise PipelineInputError(url, f"asset {name!r}: {exc.reason}") from None
    return target


def extract_verified(archive: str | Path, members: Mapping[str, str], dest: str | Path) -> Path:
    """Extract the pinned `members` of a zip archive into `dest` (same relative paths), each verified by sha256.

    Members are looked up under the archive's single top folder (GitHub's `{repo}-{commit}/`) or at its root. Each
    file is written atomically; on a missing or mismatching member nothing of that member is left and the error
    names it (and how many others are missing).
    """
    dest = Path(dest)
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise PipelineInputError(archive, f"not a readable zip archive ({exc})") from None
    with zf:
        names = {}
        for info in zf.infolist():
            parts = PurePosixPath(info.filename).parts
            if not info.is_dir() and parts:
                names.setdefault("/".join(parts[1:]), info)  # below the top folder
                names.setdefault("/".join(parts), info)
        missing = sorted(m for m in members if m not in names)
        if missing:
            shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
            raise PipelineInputError(archive, f"{len(missing)} of {len(members)} pinned files missing: {shown}")
        for member, expected in members.items():
            target = dest / member
            with atomic_path(target) as tmp:
                digest = hashlib.sha256()
                with zf.open(names[member]) as src, open(tmp, "wb") as out:
                    for chunk in iter(lambda: src.read(_CHUNK), b""):
                        out.write(chunk)
                        digest.update(chunk)
                if digest.hexdigest() != expected.lower():
                    raise PipelineInputError(archive, f"{member}: sha256 mismatch: expected {expected.lower()}, "
                                                      f"got {digest.hexdigest()}")  # fmt: skip
    return dest


def main(argv: list[str] | None = None) -> None:
    """`list`: the assets, their URLs and checksums; `fetch DIR`: download them into DIR (a mirror folder)."""
    parser = argparse.ArgumentParser(prog="python -m neural_renderer.assets", description=main.__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list")
    fetch = sub.add_parser("fetch")
    fetch.add_argument("dest", type=Path)
    fetch.add_argument("names", nargs="*", help=f"assets to fetch (default: all of {sorted(ASSETS)})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "list":
        for a in ASSETS.values():
            pinned = a.sha256 or f"{len(a.members)} members pinned"
            print(f"{a.name}\t{a.filename}\t{asset_url(a)}\t{pinned}\t{a.description}")
        return
    try:
        for name in args.names or list(ASSETS):
            print(ensure_asset(name, args.dest))
    except (PipelineInputError, KeyError) as exc:
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
