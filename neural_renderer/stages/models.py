"""Model preparation on users' machines: fetch the ICT-FaceKit archive (MIT) and convert it to the face-region npz."""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path

from neural_renderer.assets import ensure_asset
from neural_renderer.errors import PipelineInputError
from neural_renderer.morphable import convert_ict_objs


def extract_facexmodel(archive: str | Path, dest: str | Path) -> Path:
    """Unpack the `FaceXModel/*.obj` files of the ICT-FaceKit repository archive into `dest`."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive) as z:
        members = [m for m in z.namelist() if "/FaceXModel/" in m and m.endswith(".obj")]
        if not members:
            raise PipelineInputError(archive, "no FaceXModel/*.obj inside: not an ICT-FaceKit archive")
        for member in members:
            with z.open(member) as src, open(dest / Path(member).name, "wb") as dst:
                shutil.copyfileobj(src, dst)
    return dest


def build_ict_model(out_npz: str | Path, download_dir: str | Path) -> Path:
    archive = ensure_asset("ict_facekit", download_dir)
    with tempfile.TemporaryDirectory(dir=Path(out_npz).parent) as tmp:
        convert_ict_objs(extract_facexmodel(archive, tmp), out_npz)
    return Path(out_npz)
