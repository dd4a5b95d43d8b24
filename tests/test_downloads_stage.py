"""Model preparation on users' machines, without network: archive extraction + conversion, and the asset registry."""

from __future__ import annotations

import gzip
import os
import zipfile

import numpy as np
import pytest
import yaml
from test_workflow import dry_run_jobs

from neural_renderer.assets import ASSETS, ICT_FACEKIT_COMMIT
from neural_renderer.errors import PipelineInputError
from neural_renderer.morphable import convert_ict_objs
from neural_renderer.stages.downloads import ICT_MODEL_FILES, extract_facexmodel

MODEL_RULES = {"download_face_landmarker", "build_ict_model", "fetch_arcface"}
TWO = {k: ICT_MODEL_FILES[k] for k in ("FaceXModel/generic_neutral_mesh.obj", "FaceXModel/jawOpen.obj")}


def _fake_repo_archive(shared_dir, path, edit: bytes = b""):
    """A zip laid out like GitHub's archive of the pinned ICT-FaceKit commit, holding the two real upstream OBJs."""
    top = f"ICT-FaceKit-{ICT_FACEKIT_COMMIT}"
    with zipfile.ZipFile(path, "w") as z:
        for name in ("generic_neutral_mesh", "jawOpen"):
            data = gzip.decompress((shared_dir / "models" / "ict_raw" / f"{name}.obj.gz").read_bytes())
            z.writestr(f"{top}/FaceXModel/{name}.obj", data + (edit if name == "jawOpen" else b""))
        z.writestr(f"{top}/README.md", "readme")
    return path


def test_archive_extraction_feeds_the_converter(shared_dir, ict_model_npz, tmp_path):
    archive = _fake_repo_archive(shared_dir, tmp_path / "ict.zip")
    objs = extract_facexmodel(archive, tmp_path / "objs", pinned=TWO)  # the real pinned sha256 of these two files
    assert sorted(p.name for p in objs.iterdir()) == ["generic_neutral_mesh.obj", "jawOpen.obj"]
    model = convert_ict_objs(objs, tmp_path / "ict.npz")
    with np.load(ict_model_npz) as ref:
        np.testing.assert_allclose(model.neutral, ref["neutral"], atol=1e-5)
        jaw = list(ref["expression_names"]).index("jawOpen")
        np.testing.assert_allclose(model.expression_basis[0], ref["expression_basis"][jaw], atol=1e-5)


def test_archive_without_models_is_refused(tmp_path):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("something/README.md", "x")
    with pytest.raises(PipelineInputError, match="158 of 158 pinned files missing: FaceXModel/PupilDilate_L.obj"):
        extract_facexmodel(path, tmp_path / "out")


def test_edited_model_file_is_refused(shared_dir, tmp_path):
    archive = _fake_repo_archive(shared_dir, tmp_path / "ict.zip", edit=b"v 0 0 0\n")
    expected = TWO["FaceXModel/jawOpen.obj"]
    with pytest.raises(PipelineInputError, match=f"FaceXModel/jawOpen.obj: sha256 mismatch: expected {expected}"):
        extract_facexmodel(archive, tmp_path / "objs", pinned=TWO)
    assert not (tmp_path / "objs" / "FaceXModel" / "jawOpen.obj").exists()


@pytest.mark.slow
def test_snakemake_plans_the_model_rules_when_their_files_are_missing(tmp_path, shared_dir):
    """A fresh project (model paths at their defaults under resources/, ArcFace CSIM asked for): Snakemake's own plan
    (dry run with profiles/slurm) downloads and builds each model once, before the jobs that need it. That they run
    on the login node (localrules) is checked on a real SLURM cluster: tests/test_slurm.py."""
    (tmp_path / "data" / "raw").mkdir(parents=True)
    os.symlink(shared_dir / "testdata" / "videos" / "d0.mp4", tmp_path / "data" / "raw" / "d0.mp4")
    config = {
        "raw_dir": "data/raw",
        "results_dir": "results",
        "renderer": {"enabled": True},
        "metrics": {"enabled": True, "csim_backend": "arcface"},
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    jobs = dry_run_jobs(tmp_path)
    models = {job["rule"]: job for job in jobs if job["rule"] in MODEL_RULES}
    assert {rule: job["output"] for rule, job in models.items()} == {
        "download_face_landmarker": ["resources/models/face_landmarker.task"],
        "build_ict_model": ["resources/models/ict_face_light_face.npz"],
        "fetch_arcface": ["resources/models/w600k_r50.onnx"],
    }
    assert [job["rule"] for job in jobs].count("download_face_landmarker") == 1
    assert all(job["log"] and "gpu" not in job["resources"] for job in models.values())
    # the jobs that read the models come after them (the plan is printed in an order that respects dependencies)
    order = [job["rule"] for job in jobs]
    for rule, needs in (("track", "download_face_landmarker"), ("correspondence", "build_ict_model")):
        assert order.index(needs) < order.index(rule), order
    assert order.index("fetch_arcface") < min(i for i, r in enumerate(order) if r.endswith("_features"))
    assert ASSETS["face_landmarker"].sha256 == "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
    asset = ASSETS["insightface_buffalo_l"]
    assert asset.url.endswith("/v0.7/buffalo_l.zip") and len(asset.sha256) == 64


# --------------------------------------------------------------------------------- eyeballs through the converter


def test_converter_stores_eyeballs_moved_by_identity(shared_dir, tmp_path):
    """Identity shapes move the eyeballs too: an identity OBJ whose eyes sit 0.3 cm higher gives that offset."""
    from neural_renderer.morphable import load_morphable_model
    from neural_renderer.morphable.eyes import ICT_EYEBALL_RANGES
    from neural_renderer.morphable.ict import read_obj

    src = tmp_path / "objs"
    src.mkdir()
    verts, _ = read_obj(shared_dir / "models" / "ict_raw" / "generic_neutral_mesh.obj.gz")
    (src / "generic_neutral_mesh.obj.gz").write_bytes(
        (shared_dir / "models" / "ict_raw" / "generic_neutral_mesh.obj.gz").read_bytes()
    )
    moved = verts.copy()
    moved[ICT_EYEBALL_RANGES[0][0] : ICT_EYEBALL_RANGES[1][1], 1] += 0.3
    (src / "identity000.obj").write_text("".join(f"v {x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in moved))
    model = convert_ict_objs(src, tmp_path / "ict.npz")
    back = load_morphable_model(tmp_path / "ict.npz")
    assert back.eyeballs is not None and back.eyeballs.identity_basis.shape == (1, 2, 3)
    np.testing.assert_allclose(back.eyeballs.identity_basis[0], [[0, 0.3, 0], [0, 0.3, 0]], atol=1e-4)
    np.testing.assert_allclose(back.eyeballs.centers_for([2.0]) - back.eyeballs.centers, [[0, 0.6, 0]] * 2, atol=2e-4)
    np.testing.assert_allclose(back.eyeballs.centers, model.eyeballs.centers, atol=1e-5)
    assert model.subset(np.arange(10)).eyeballs is model.eyeballs  # the fitter's subset keeps them


# ------------------------------------------------------------------------------------------- ArcFace for CSIM


def _buffalo_zip(path, payload: bytes, member: str = "w600k_r50.onnx"):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(member, payload)
        z.writestr("det_10g.onnx", b"detector")
    return path


def test_arcface_is_extracted_from_the_buffalo_pack_and_verified(tmp_path):
    import hashlib

    from neural_renderer.stages.downloads import ARCFACE_SHA256, extract_arcface

    payload = b"stand-in for the 174 MB ONNX file"
    out = extract_arcface(
        _buffalo_zip(tmp_path / "b.zip", payload),
        tmp_path / "m" / "w600k_r50.onnx",
        expected_sha256=hashlib.sha256(payload).hexdigest(),
    )
    assert out.read_bytes() == payload
    # with the published checksum the stand-in is refused, and nothing that looks finished is left behind
    with pytest.raises(PipelineInputError, match="sha256 mismatch"):
        extract_arcface(tmp_path / "b.zip", tmp_path / "n" / "w600k_r50.onnx")
    assert not (tmp_path / "n" / "w600k_r50.onnx").exists() and len(ARCFACE_SHA256) == 64
    with pytest.raises(PipelineInputError, match="no w600k_r50.onnx"):
        extract_arcface(_buffalo_zip(tmp_path / "c.zip", payload, "other.onnx"), tmp_path / "x.onnx")
    (tmp_path / "d.zip").write_bytes(b"not a zip")
    with pytest.raises(PipelineInputError, match="not a zip"):
        extract_arcface(tmp_path / "d.zip", tmp_path / "x.onnx")
