"""Model preparation on users' machines, without network: archive extraction + conversion, and the asset registry."""

from __future__ import annotations

import gzip
import re
import zipfile

import numpy as np
import pytest

from neural_renderer.assets import ASSETS, ICT_FACEKIT_COMMIT
from neural_renderer.errors import PipelineInputError
from neural_renderer.morphable import convert_ict_objs
from neural_renderer.stages.models import ICT_MODEL_FILES, extract_facexmodel

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


def test_rules_download_the_registered_assets(repo_dir):
    text = (repo_dir / "rules" / "models.smk").read_text()
    # downloads run where Snakemake runs (a cluster's login node), not on compute nodes that may lack internet
    assert re.search(r"localrules:\s+download_face_landmarker,\s+build_ict_model,", text)
    for name in ("face_landmarker", "ict_facekit"):
        assert f'name="{name}"' in text and name in ASSETS
    assert ASSETS["face_landmarker"].sha256 == "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"
