"""Run code under a file-size limit: RLIMIT_FSIZE (EFBIG) stands in for a full disk or a quota, the same OSError
path, without a small file system to fill."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def errors_under_file_size_limit(code: str, limit_bytes: int) -> list[str]:
    """Run ``code`` in a fresh Python whose files may not grow past ``limit_bytes`` (SIGXFSZ ignored, so a write
    beyond it fails with EFBIG); the messages of the PipelineInputErrors it raised, one line each."""
    script = "\n".join(
        [
            "import resource, signal",
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)",
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit_bytes}, {limit_bytes}))",
            "from neural_renderer.errors import PipelineInputError",
            "try:",
            textwrap.indent(textwrap.dedent(code).strip(), "    "),
            "except PipelineInputError as exc:",
            "    print('ERROR', exc)",
        ]
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [line for line in proc.stdout.splitlines() if line.startswith("ERROR")]
