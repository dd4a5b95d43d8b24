"""Downloads tested for real: a plain HTTP server on 127.0.0.1 serves copies of the model files as a mirror
(`PORTRAIT_ASSET_MIRROR`, as users set it for air-gapped clusters), and the real `models` rules run through Snakemake.

Checked: the files arrive; a corrupted file is refused with a one-line reason and nothing half-written is left; a
server that drops the connection mid-file leaves no partial file and a rerun completes; an ICT-FaceKit archive
whose files do not match the pinned checksums is refused and deleted. The test-data lookup (`neural_renderer.testdata`)
fetches from the same kind of mirror, and without data or network pytest stops with one line.
"""

from __future__ import annotations

import gzip
import http.server
import os
import shutil
import socket
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest
import yaml

from neural_renderer.assets import ASSETS, ICT_FACEKIT_COMMIT, MIRROR_ENV, ensure_asset, sha256_file
from neural_renderer.testdata import DATA_ENV, ICT_NPZ, ICT_RAW_FILES, TEST_VIDEOS, TestDataUnavailable, check, resolve

REPO = Path(__file__).resolve().parents[1]
LANDMARKER_SHA = ASSETS["face_landmarker"].sha256
NO_PROXY = {"NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}  # a proxy configured for the internet must not step in


class Mirror:
    """A folder served over HTTP on 127.0.0.1; files named in `drop` are cut off after half their bytes."""

    def __init__(self, root: Path):
        self.root, self.drop, self.requests = root, set(), []
        mirror = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(mirror.root), **kwargs)

            def do_GET(self):  # noqa: N802 - http.server's naming
                name = self.path.lstrip("/")
                mirror.requests.append(name)
                if name not in mirror.drop:
                    return super().do_GET()
                data = (mirror.root / name).read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))  # announces the whole file ...
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])  # ... sends half, then the connection drops
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def ict_archive(shared_dir: Path, path: Path, jaw_edit: bytes = b"") -> Path:
    """A zip laid out like GitHub's archive of the pinned ICT-FaceKit commit, holding the two OBJs ../shared has."""
    top = f"ICT-FaceKit-{ICT_FACEKIT_COMMIT}"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name in ("generic_neutral_mesh", "jawOpen"):
            data = gzip.decompress((shared_dir / "models" / "ict_raw" / f"{name}.obj.gz").read_bytes())
            z.writestr(f"{top}/FaceXModel/{name}.obj", data + (jaw_edit if name == "jawOpen" else b""))
        z.writestr(f"{top}/LICENSE", (shared_dir / "models" / "ict_raw" / "LICENSE").read_bytes())
    return path


@pytest.fixture()
def mirror(tmp_path, shared_dir, landmarker_model):
    root = tmp_path / "mirror"
    root.mkdir()
    shutil.copyfile(landmarker_model, root / "face_landmarker.task")
    ict_archive(shared_dir, root / ASSETS["ict_facekit"].filename)
    with Mirror(root) as m:
        yield m


def snakemake(workdir: Path, mirror_url: str, *targets: str) -> subprocess.CompletedProcess:
    workdir.mkdir(exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump({"raw_dir": "data/raw", "results_dir": "results"}))
    env = {**os.environ, "PYTHONPATH": str(REPO), MIRROR_ENV: mirror_url, **NO_PROXY}
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), *targets, "--cores", "1"]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env, timeout=300)


def leftovers(workdir: Path) -> list[str]:
    """Files under resources/ (temporary ones included)."""
    return sorted(str(p.relative_to(workdir)) for p in (workdir / "resources").rglob("*") if p.is_file())


def error_line(workdir: Path, log: str) -> str:
    lines = [line for line in (workdir / log).read_text().splitlines() if "failed on bad input" in line]
    assert len(lines) == 1, (workdir / log).read_text()
    return lines[0]


def test_models_rule_downloads_from_the_mirror(tmp_path, mirror):
    proc = snakemake(tmp_path / "wd", mirror.url, "resources/models/face_landmarker.task")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sha256_file(tmp_path / "wd" / "resources/models/face_landmarker.task") == LANDMARKER_SHA
    assert leftovers(tmp_path / "wd") == ["resources/models/face_landmarker.task"]
    assert mirror.requests == ["face_landmarker.task"]


def test_corrupted_file_is_refused_and_nothing_is_left(tmp_path, mirror):
    data = bytearray((mirror.root / "face_landmarker.task").read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    (mirror.root / "face_landmarker.task").write_bytes(bytes(data))
    wd = tmp_path / "wd"
    proc = snakemake(wd, mirror.url, "resources/models/face_landmarker.task")
    assert proc.returncode != 0
    line = error_line(wd, "logs/models/face_landmarker.log")
    assert f"{mirror.url}/face_landmarker.task: asset 'face_landmarker': downloaded file is corrupt" in line
    served = sha256_file(mirror.root / "face_landmarker.task")
    assert f"sha256 mismatch: expected {LANDMARKER_SHA}, got {served}" in line
    assert "sha256 mismatch" in proc.stderr and "Traceback" not in proc.stderr
    assert leftovers(wd) == []


def test_dropped_connection_leaves_no_partial_file_and_a_rerun_completes(tmp_path, mirror):
    wd = tmp_path / "wd"
    mirror.drop.add("face_landmarker.task")
    proc = snakemake(wd, mirror.url, "resources/models/face_landmarker.task")
    assert proc.returncode != 0
    size = (mirror.root / "face_landmarker.task").stat().st_size
    assert f"download interrupted: got {size // 2} of {size} bytes" in error_line(wd, "logs/models/face_landmarker.log")
    assert leftovers(wd) == []
    mirror.drop.clear()
    proc = snakemake(wd, mirror.url, "resources/models/face_landmarker.task")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sha256_file(wd / "resources/models/face_landmarker.task") == LANDMARKER_SHA
    assert mirror.requests == ["face_landmarker.task", "face_landmarker.task"]


def test_ict_archive_without_the_pinned_files_is_refused_and_deleted(tmp_path, mirror):
    """The served archive holds 2 of the 158 pinned OBJs (all ../shared has): the build names what is missing."""
    wd = tmp_path / "wd"
    proc = snakemake(wd, mirror.url, "resources/models/ict_face_light_face.npz")
    assert proc.returncode != 0
    line = error_line(wd, "logs/models/ict_face_light_face.log")
    archive = f"ICT-FaceKit-{ICT_FACEKIT_COMMIT[:8]}.zip"
    assert f"{archive}: 156 of 158 pinned files missing: FaceXModel/PupilDilate_L" in line
    assert mirror.requests == [ASSETS["ict_facekit"].filename]
    assert leftovers(wd) == []  # the refused archive is deleted: the next run downloads it again


def test_fetched_folder_serves_as_a_mirror(tmp_path, mirror, monkeypatch):
    """`python -m neural_renderer.assets fetch DIR` on a machine with internet; DIR then is a mirror (a folder)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), MIRROR_ENV: mirror.url, **NO_PROXY}
    cmd = [sys.executable, "-m", "neural_renderer.assets", "fetch", str(tmp_path / "dir"), "face_landmarker"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == str(tmp_path / "dir" / "face_landmarker.task"), proc.stderr
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "dir"))
    path = ensure_asset("face_landmarker", tmp_path / "models")
    assert sha256_file(path) == LANDMARKER_SHA and mirror.requests == ["face_landmarker.task"]


# ------------------------------------------------------------------------------------------- test data lookup


def test_test_data_is_fetched_from_a_mirror_into_portrait_test_data(tmp_path, shared_dir, monkeypatch):
    """$PORTRAIT_TEST_DATA comes first; what it lacks (here the videos and MediaPipe's model) is downloaded."""
    served = tmp_path / "mirror"
    served.mkdir()
    for asset in TEST_VIDEOS.values():
        shutil.copyfile(shared_dir / "testdata" / "videos" / asset.filename, served / asset.filename)
    shutil.copyfile(shared_dir / "models" / "face_landmarker.task", served / "face_landmarker.task")
    data = tmp_path / "data"
    for rel in (ICT_NPZ, *ICT_RAW_FILES):  # already there: the ICT archive is not needed
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared_dir / rel, data / rel)
    monkeypatch.setenv(DATA_ENV, str(data))
    for key, value in NO_PROXY.items():
        monkeypatch.setenv(key, value)
    with Mirror(served) as m:
        monkeypatch.setenv(MIRROR_ENV, m.url)
        missing = [f"testdata/videos/{n}.mp4" for n in TEST_VIDEOS] + ["models/face_landmarker.task"]
        assert sorted(check(data)) == sorted(missing)
        assert resolve(REPO) == (data, "$PORTRAIT_TEST_DATA (downloaded)")
        assert check(data) == {} and len(m.requests) == 5
        assert resolve(REPO) == (data, "$PORTRAIT_TEST_DATA") and len(m.requests) == 5  # once only
    assert sha256_file(data / "testdata/videos/d6.mp4") == TEST_VIDEOS["d6"].sha256
    with open(data / "testdata/videos/d18.mp4", "r+b") as f:  # a damaged file is named, not used or overwritten
        f.write(b"X")
    with pytest.raises(TestDataUnavailable, match=r"d18\.mp4: sha256 mismatch \(delete it to download it again\)"):
        resolve(REPO)


def test_without_data_or_network_pytest_stops_with_one_line(tmp_path, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on: as good as no network
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    env = {**os.environ, "PYTHONPATH": str(REPO), DATA_ENV: str(tmp_path / "empty"), MIRROR_ENV: dead, **NO_PROXY}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_video.py"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if "test data not available" in line]
    assert len(lines) == 1 and "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    assert "testdata/videos/d0.mp4" in lines[0] and "download failed" in lines[0]
    assert "python -m neural_renderer.testdata --dest DIR" in lines[0] and MIRROR_ENV in lines[0]
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "empty"))
    with pytest.raises(TestDataUnavailable, match=r"not available: testdata/videos/d0\.mp4.*downloads disabled"):
        resolve(REPO, download=False)
