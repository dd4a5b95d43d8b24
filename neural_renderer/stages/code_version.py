"""A hash of the code each stage runs, passed to its rule as a param so code changes rerun what they affect.

Snakemake's own `code` rerun trigger sees only the rule's script, not the package it imports; hashing the
sub-packages a stage depends on closes that gap without rerunning everything on any edit.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]

# Paths relative to the package that each stage's output depends on (beyond storage and errors, always included).
STAGE_CODE: dict[str, tuple[str, ...]] = {
    "ingest": ("video", "stages/ingest.py"),
    "track": ("video", "tracking", "morphable/mediapipe_mesh.py", "assets.py", "stages/track.py"),
    "crop": ("crop", "stages/crop.py"),
    "correspondence": ("morphable", "stages/correspondence.py"),
    "fit": ("fitting", "morphable", "device.py", "stages/fit.py"),
    "gaze": ("fitting", "morphable", "stages/gaze.py"),
    "assemble": ("video", "crop", "stages/assemble.py"),
    "qc": ("qc.py", "fitting", "morphable", "stages/qc.py"),
    "train_renderer": (
        "renderer",
        "presets.py",
        "metrics/lpips.py",
        "metrics/weights.py",
        "assets.py",
        "device.py",
        "fitting/camera.py",
        "config.py",
        "stages/train_renderer.py",
    ),
    "render": (
        "renderer",
        "presets.py",
        "device.py",
        "fitting/camera.py",
        "video/ffmpeg_exe.py",
        "video/mp4.py",
        "config.py",
        "assets.py",
        "stages/render.py",
    ),
    "reenact": (
        "reenact",
        "renderer",
        "presets.py",
        "device.py",
        "fitting/camera.py",
        "video/ffmpeg_exe.py",
        "video/mp4.py",
        "assets.py",
        "config.py",
        "stages/reenact.py",
    ),
    "train_audio": (
        "audio",
        "reenact",
        "renderer",
        "presets.py",
        "fitting/rotation.py",
        "fitting/camera.py",
        "video/ffmpeg_exe.py",
        "video/mp4.py",
        "device.py",
        "assets.py",
        "config.py",
        "stages/train_audio.py",
    ),
    "audio_render": (
        "audio",
        "reenact",
        "renderer",
        "presets.py",
        "fitting/rotation.py",
        "fitting/camera.py",
        "video/ffmpeg_exe.py",
        "video/mp4.py",
        "device.py",
        "assets.py",
        "config.py",
        "stages/audio_render.py",
    ),
    # metric features re-run the project's tracker and fitter on frames, so their code is part of the features' code
    "metric_features": (
        "metrics",
        "tracking",
        "fitting",
        "morphable",
        "renderer/data.py",
        "device.py",
        "config.py",
        "assets.py",
        "stages/metric_features.py",
    ),
    "metrics": ("metrics", "outputs.py", "device.py", "config.py", "stages/metrics.py"),
}
ALWAYS = ("storage", "atomic.py", "errors.py", "__init__.py")


def _files(package_dir: Path, rel: str) -> list[Path]:
    path = package_dir / rel
    if path.is_dir():
        return sorted(p for p in path.rglob("*.py") if "__pycache__" not in p.parts)
    return [path] if path.is_file() else []


def code_hash(stage: str, package_dir: Path = PACKAGE_DIR) -> str:
    """Short sha256 over the stage's source files (path + content), stable across machines."""
    if stage not in STAGE_CODE:
        raise KeyError(f"unknown stage {stage!r}; known: {sorted(STAGE_CODE)}")
    digest = hashlib.sha256()
    for rel in sorted(set(STAGE_CODE[stage] + ALWAYS)):
        for path in _files(package_dir, rel):
            digest.update(str(path.relative_to(package_dir)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
