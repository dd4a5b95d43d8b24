"""Formatting and lint are enforced by tools (ruff, snakefmt, `snakemake --lint`), configured in pyproject.toml."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / cmd[0]), *cmd[1:]], cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    "cmd",
    [("ruff", "check", "."), ("ruff", "format", "--check", "."), ("snakefmt", "--check", ".")],
    ids=["ruff-check", "ruff-format", "snakefmt"],
)
def test_code_is_formatted_and_linted(cmd):
    out = _run(*cmd)
    assert out.returncode == 0, f"`{' '.join(cmd)}` failed (run it without --check to fix):\n{out.stdout}{out.stderr}"


def test_snakemake_lint_is_clean():
    out = _run("snakemake", "--lint", "text")
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "Lints for" not in text, text
