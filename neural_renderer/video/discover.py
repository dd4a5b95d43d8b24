"""Find the raw videos of a run: `{raw_dir}/{name}.{mp4,mov,avi,mkv,webm}` -> {name: path}.

`name` becomes the Snakemake `{video}` wildcard and a results folder, so it is restricted to
`VIDEO_NAME_PATTERN`: letters, digits, '_' and '-', starting with a letter or digit. No dots, so a name can never be
confused with an extension ('a.b.mp4') and the wildcard never has to match across a '.'; no spaces or '/', so it is
safe in paths and shell commands. A video file with another name is skipped with a warning that names it, states the
rule and suggests a safe name (the file is never renamed for the user: results would no longer match the file they
know); every other video runs. Hidden files ('.name', which includes the pipeline's own temporary files) are ignored.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from neural_renderer.errors import PipelineInputError

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".mov", ".avi", ".mkv", ".webm")
AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".mp3", ".flac", ".m4a", ".ogg", ".aac", ".opus")
VIDEO_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_-]*"
_NAME_RE = re.compile(VIDEO_NAME_PATTERN)
NAME_RULE = f"names must match {VIDEO_NAME_PATTERN} (letters, digits, '_' and '-', starting with a letter or digit)"

log = logging.getLogger(__name__)


def safe_name(name: str) -> str:
    """A name that follows the rule: every other character becomes '_', leading '_'/'-' are dropped."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "_", name).lstrip("_-")
    return cleaned or "video"


def discover_audio(audio_dir: str | Path) -> dict[str, Path]:
    """Audio clips (or videos, whose sound track is used) for audio-driven renders; same naming rules as videos."""
    return discover_videos(audio_dir, AUDIO_EXTENSIONS + VIDEO_EXTENSIONS, what="audio clip")


def discover_videos(
    raw_dir: str | Path, extensions: tuple[str, ...] = VIDEO_EXTENSIONS, what: str = "video"
) -> dict[str, Path]:
    """`scan_videos`, logging each skipped file as a warning."""
    found, skipped = scan_videos(raw_dir, extensions, what)
    for message in skipped:
        log.warning("%s", message)
    return found


def scan_videos(
    raw_dir: str | Path, extensions: tuple[str, ...] = VIDEO_EXTENSIONS, what: str = "video"
) -> tuple[dict[str, Path], list[str]]:
    """({name: path} of the usable videos directly in `raw_dir`, sorted by name; one message per skipped file).

    Extensions match case-insensitively; a missing folder has none. Skipped: names breaking the rule, and files whose
    names differ only in extension or letter case ('a.mp4', 'a.MOV', 'A.mkv'), which would share results (all of
    them are skipped: which one is meant is the user's call).
    """
    raw_dir = Path(raw_dir)
    if not raw_dir.exists():
        return {}, []
    if not raw_dir.is_dir():
        raise PipelineInputError(raw_dir, f"{what} folder is not a directory")
    groups: dict[str, list[Path]] = {}
    skipped: list[str] = []
    for path in sorted(raw_dir.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in extensions or not path.is_file():
            continue
        name = path.stem
        if not _NAME_RE.fullmatch(name):
            skipped.append(
                f"{path}: skipped: {what} name {name!r} is not allowed; {NAME_RULE}. "
                f"Rename it (e.g. to {safe_name(name)}{path.suffix}) to include it"
            )
            continue
        groups.setdefault(name.lower(), []).append(path)
    found: dict[str, Path] = {}
    for paths in groups.values():
        if len(paths) > 1:
            listed = " and ".join(p.name for p in paths)
            skipped.append(f"{raw_dir}: skipped {listed}: several files for the same {what} name (keep one)")
        else:
            found[paths[0].stem] = paths[0]
    return dict(sorted(found.items())), skipped
