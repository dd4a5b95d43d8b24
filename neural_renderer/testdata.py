"""The tests' real videos and models: where they are found, and how a fresh machine gets them.

Lookup order (first match wins):
1. `$PORTRAIT_TEST_DATA`, a folder: what is missing is downloaded into it;
2. `../shared` beside the checkout, when it holds every file (CI: read-only, no network);
3. a per-user cache, `$XDG_CACHE_HOME/portrait-pipeline/testdata` (default `~/.cache/...`): downloaded into.

Every folder has the same layout, and every file is verified before use:

    testdata/videos/{d0,d6,d12,d18}.mp4     LivePortrait's example driving clips (MIT), pinned sha256
    models/face_landmarker.task             MediaPipe's model (Apache-2.0), pinned sha256 (`assets.ASSETS`)
    models/ict_face_light_face.npz          built from ICT-FaceKit's pinned OBJs by the pipeline's own converter
    models/ict_raw/{generic_neutral_mesh,jawOpen}.obj.gz, LICENSE   two of those OBJs (MIT), pinned sha256

Downloads honour `PORTRAIT_ASSET_MIRROR` (a mirror holds the files under their names: d0.mp4, ...,
face_landmarker.task, the ICT-FaceKit archive). When a file is missing and cannot be downloaded, `TestDataUnavailable`
says in one line what is missing and how to get it. `python -m neural_renderer.testdata` fetches everything (about
140 MB of downloads, 25 MB kept) and prints the folder.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from neural_renderer.assets import ASSETS, ICT_FACEKIT_FILES, MIRROR_ENV, Asset, ensure_asset, extract_verified
from neural_renderer.atomic import atomic_path
from neural_renderer.errors import PipelineInputError

DATA_ENV = "PORTRAIT_TEST_DATA"
LIVEPORTRAIT_COMMIT = "3c1a866b6befdfd1d731624dc2a4adb549d7e686"  # last change of the clips (2024-07-10)
_CLIPS_URL = f"https://raw.githubusercontent.com/KwaiVGI/LivePortrait/{LIVEPORTRAIT_COMMIT}/assets/examples/driving"
_CLIP_SHA256 = {
    "d0": "63f6f9962e1fdf6e6722172e7a18155204858d5d5ce3b1e0646c150360c33bed",
    "d6": "00e3ea79bbf28cbdc4fbb67ec655d9a0fe876e880ec45af55ae481348d0c0fff",
    "d12": "2895169e5aa2a882d39dfc80a17a3eab1cf6ec23b9b6f6be76bae48deda15219",
    "d18": "1dc94c1fec7ef7dc831c8a49f0e1788ae568812cb68e62f6875d9070f573d02a",
}
TEST_VIDEOS: Mapping[str, Asset] = MappingProxyType(
    {
        name: Asset(name, f"{_CLIPS_URL}/{name}.mp4", sha, f"{name}.mp4", "LivePortrait example driving clip, MIT")
        for name, sha in _CLIP_SHA256.items()
    }
)
ICT_RAW = ("generic_neutral_mesh", "jawOpen")

VIDEOS_DIR = "testdata/videos"
LANDMARKER = "models/face_landmarker.task"
ICT_NPZ = "models/ict_face_light_face.npz"
ICT_RAW_FILES = tuple(f"models/ict_raw/{n}.obj.gz" for n in ICT_RAW) + ("models/ict_raw/LICENSE",)


class TestDataUnavailable(RuntimeError):
    """The test data is incomplete and could not be downloaded; the message is one line."""

    __test__ = False  # not a pytest test class


def cache_dir() -> Path:
    """The per-user cache folder of the test data."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "portrait-pipeline" / "testdata"


def _sha256(path: Path, gzipped: bool = False) -> str:
    digest = hashlib.sha256()
    with (gzip.open if gzipped else open)(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _expected() -> dict[str, tuple[str | None, bool]]:
    """{relative path: (sha256 of the (decompressed) content or None = existence only, gzipped)}."""
    out: dict[str, tuple[str | None, bool]] = {
        f"{VIDEOS_DIR}/{a.filename}": (a.sha256, False) for a in TEST_VIDEOS.values()
    }
    out[LANDMARKER] = (ASSETS["face_landmarker"].sha256, False)
    out[ICT_NPZ] = (None, False)  # derived from verified OBJs; written atomically
    for name in ICT_RAW:
        out[f"models/ict_raw/{name}.obj.gz"] = (ICT_FACEKIT_FILES[f"FaceXModel/{name}.obj"], True)
    out["models/ict_raw/LICENSE"] = (ICT_FACEKIT_FILES["LICENSE"], False)
    return out


def check(root: str | Path) -> dict[str, str]:
    """{relative path: problem} of the files missing in `root` or failing their checksum (empty: complete)."""
    root = Path(root)
    problems = {}
    for rel, (sha, gzipped) in _expected().items():
        path = root / rel
        if not path.is_file():
            problems[rel] = "missing"
        elif sha is not None and _sha256(path, gzipped) != sha:
            problems[rel] = "sha256 mismatch (delete it to download it again)"
    return problems


def fill(root: str | Path, *, mirror: str | None = None) -> Path:
    """Download what `root` lacks (verified, atomic); raises PipelineInputError on the first failure."""
    root = Path(root)
    problems = check(root)
    bad = [f"{rel}: {why}" for rel, why in problems.items() if why != "missing"]
    if bad:
        raise PipelineInputError(root, "; ".join(bad))
    for name, asset in TEST_VIDEOS.items():
        if f"{VIDEOS_DIR}/{asset.filename}" in problems:
            ensure_asset(name, root / VIDEOS_DIR, registry=TEST_VIDEOS, mirror=mirror)
    if LANDMARKER in problems:
        ensure_asset("face_landmarker", root / "models", mirror=mirror)
    if problems.keys() & {ICT_NPZ, *ICT_RAW_FILES}:
        _build_ict(root / "models", mirror)
    return root


def _build_ict(models: Path, mirror: str | None) -> None:
    """The ICT-FaceKit archive -> verified OBJs -> the face-region npz and the two raw OBJs (gzip, like ../shared)."""
    from neural_renderer.morphable import convert_ict_objs  # numpy and the converter only when needed

    models.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=models, prefix=".ict-") as tmp:
        archive = ensure_asset("ict_facekit", tmp, mirror=mirror)
        files = extract_verified(archive, ICT_FACEKIT_FILES, Path(tmp) / "files")
        archive.unlink()
        if not (models / Path(ICT_NPZ).name).is_file():
            convert_ict_objs(files / "FaceXModel", models / Path(ICT_NPZ).name)
        raw = models / "ict_raw"
        for name in ICT_RAW:
            with atomic_path(raw / f"{name}.obj.gz") as out, gzip.GzipFile(out, "wb", mtime=0) as gz:
                gz.write((files / "FaceXModel" / f"{name}.obj").read_bytes())
        with atomic_path(raw / "LICENSE") as out:
            out.write_bytes((files / "LICENSE").read_bytes())


def resolve(repo: str | Path, *, download: bool = True) -> tuple[Path, str]:
    """(folder, where it came from) of the complete test data, in the lookup order of the module docstring.

    Raises TestDataUnavailable (one line: what is missing, why, how to get it) when no folder is complete and the
    download fails or `download` is False.
    """
    env = os.environ.get(DATA_ENV, "").strip()
    shared = Path(repo).resolve().parent / "shared"
    if env:
        root, source, looked = Path(env).expanduser(), f"${DATA_ENV}", f"${DATA_ENV}={env}"
    elif shared.is_dir() and not check(shared):
        return shared, "../shared beside the checkout"
    else:
        root, source = cache_dir(), "the per-user cache"
        looked = f"${DATA_ENV} (unset), {shared} ({'incomplete' if shared.is_dir() else 'absent'}), {root}"
    problems = check(root)
    if not problems:
        return root, source
    reason = "downloads disabled"
    if download:
        try:
            fill(root)
            return root, f"{source} (downloaded)"
        except (PipelineInputError, OSError) as exc:  # OSError: e.g. a read-only folder
            reason = str(exc)
            problems = check(root)
    missing = ", ".join(rel if why == "missing" else f"{rel} (damaged)" for rel, why in problems.items())
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    raise TestDataUnavailable(
        f"test data not available: {missing} missing in {root} (looked in {looked}; {reason}). To get it: run "
        f"`python -m neural_renderer.testdata --dest DIR` on a machine with internet, copy DIR to this one and set "
        f"{DATA_ENV}=DIR; or set {MIRROR_ENV} to a mirror (URL or folder) holding d0.mp4, d6.mp4, d12.mp4, d18.mp4, "
        f"face_landmarker.task and {ASSETS['ict_facekit'].filename}" + (f" (now: {mirror})" if mirror else "")
    )


def main(argv: list[str] | None = None) -> None:
    """Fetch the test data (into --dest, else in the lookup order) and print its folder."""
    parser = argparse.ArgumentParser(prog="python -m neural_renderer.testdata", description=main.__doc__)
    parser.add_argument("--dest", type=Path, help="fill this folder (default: as the tests look it up)")
    args = parser.parse_args(argv)
    if args.dest:
        os.environ[DATA_ENV] = str(args.dest)
    try:
        root, source = resolve(Path(__file__).resolve().parents[1])
    except TestDataUnavailable as exc:
        raise SystemExit(f"error: {exc}") from None
    print(f"{root}\t({source})")


if __name__ == "__main__":
    main()
