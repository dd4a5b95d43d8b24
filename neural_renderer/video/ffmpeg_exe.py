"""Which ffmpeg binary to run (audio extraction, encoding, muxing), and small helpers for its calls.

The default ffmpeg is imageio-ffmpeg's static binary, so the pipeline needs no system ffmpeg. Probing and decoding
do not run it: they use PyAV in-process (`source.py`).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from neural_renderer.errors import PipelineInputError

# Options put in front of every ffmpeg call: never read the terminal (a Snakemake job has none, and a waiting ffmpeg
# would hang), no banner noise in the stderr we quote in error messages.
QUIET = ("-nostdin", "-hide_banner")


def resolve_ffmpeg(configured: str | None = None) -> str:
    """The configured ffmpeg (a path, or a name looked up on PATH), else imageio-ffmpeg's bundled binary."""
    if configured:
        if os.sep in configured or (os.altsep and os.altsep in configured):
            path = Path(configured).expanduser()
            if path.is_file() and os.access(path, os.X_OK):
                return str(path)
            raise PipelineInputError(configured, "configured ffmpeg is not an executable file")
        found = shutil.which(configured)
        if found is None:
            raise PipelineInputError(configured, "configured ffmpeg not found on PATH")
        return found
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def input_url(path: str | Path) -> str:
    """`path` as an ffmpeg input that cannot be mistaken for an option ('-x.mp4') or a protocol ('a:b.mp4')."""
    return "file:" + str(Path(path).absolute())


def check_readable(path: str | Path) -> Path:
    """Fail early, naming the file, for the cases where ffmpeg's own message would be cryptic."""
    path = Path(path)
    if not path.exists():
        raise PipelineInputError(path, "file does not exist")
    if not path.is_file():
        raise PipelineInputError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise PipelineInputError(path, "file is empty (0 bytes)")
    if not os.access(path, os.R_OK):
        raise PipelineInputError(path, "file is not readable")
    return path


_CONTEXT_PREFIX = re.compile(r"^(?:\[[^\]]*@ 0x[0-9a-fA-F]+\]\s*)+")


def stderr_tail(stderr: bytes | str | None, n_lines: int = 6) -> str:
    """ffmpeg's last distinct stderr lines, without '[h264 @ 0x55..]' prefixes, joined for a one-line message."""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else (stderr or "")
    lines: list[str] = []
    for raw in text.replace("\r", "\n").splitlines():
        line = _CONTEXT_PREFIX.sub("", raw.strip())
        if line and not line.startswith(("frame=", "size=", "Press [q]")) and line not in lines:
            lines.append(line)
    return " | ".join(lines[-n_lines:]) if lines else "(no ffmpeg output)"
