"""Find the raw videos of a run: `{raw_dir}/{name}.{mp4,mov,avi,mkv,webm}` -> {name: path}.

`name` becomes the Snakemake `{video}` wildcard and a results folder, so it is restricted to
`VIDEO_NAME_PATTERN`: letters, digits, '_' and '-', starting with a letter or digit. No dots, so a name can never be
confused with an extension ('a.b.mp4') and the wildcard never has to match across a '.'; no spaces or '/', so it is
safe in paths and shell commands. A video file with another name is an error (rename it) rather than silently skipped;
hidden files ('.name') are ignored.
"""

from __future__ import annotations

import re
from pathlib import Path

from neural_renderer.errors import PipelineInputError

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".mov", ".avi", ".mkv", ".webm")
AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".mp3", ".flac", ".m4a", ".ogg", ".aac", ".opus")
VIDEO_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_-]*"
_NAME_RE = re.compile(VIDEO_NAME_PATTERN)


def discover_audio(audio_dir: str | Path) -> dict[str, Path]:
    """Audio clips (or videos, whose sound track is used) for audio-driven renders; same naming rules as videos."""
    return discover_videos(audio_dir, AUDIO_EXTENSIONS + VIDEO_EXTENSIONS, what="audio clip")


def discover_videos(raw_dir: str | Path, extensions: tuple[str, ...] = VIDEO_EXTENSIONS, what: str = "video") -> dict[str, Path]:
    """Videos directly in `raw_dir` (not recursive), sorted by name; a missing folder has none.

    Extensions match case-insensitively. Two files whose names differ only in extension or letter case ('a.mp4',
    'a.MOV', 'A.mkv') would share results, so they raise PipelineInputError naming all of them.
    """
    raw_dir = Path(raw_dir)
    if not raw_dir.exists():
        return {}
    if not raw_dir.is_dir():
        raise PipelineInputError(raw_dir, f"{what} folder is not a directory")
    groups: dict[str, list[Path]] = {}
    for path in sorted(raw_dir.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in extensions or not path.is_file():
            continue
        name = path.stem
        if not _NAME_RE.fullmatch(name):
            raise PipelineInputError(
                path, f"{what} name {name!r} is not allowed; rename the file to match {VIDEO_NAME_PATTERN} (letters, digits, '_', '-')"
            )
        groups.setdefault(name.lower(), []).append(path)
    clashes = [paths for paths in groups.values() if len(paths) > 1]
    if clashes:
        listed = "; ".join(" and ".join(p.name for p in paths) for paths in clashes)
        raise PipelineInputError(raw_dir, f"several files for the same {what} name: {listed} (keep one of each)")
    return {paths[0].stem: paths[0] for _, paths in sorted(groups.items(), key=lambda kv: kv[1][0].stem)}
