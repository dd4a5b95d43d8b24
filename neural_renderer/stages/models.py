"""Model preparation on users' machines: fetch the ICT-FaceKit archive (MIT) and convert it to the face-region npz.

The archive is that of a pinned commit; the OBJ files used are verified by sha256 as they are extracted (see
`neural_renderer.assets`). An archive whose files do not verify is deleted, so the next run downloads it again.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

from neural_renderer.assets import ASSETS, ensure_asset, extract_verified
from neural_renderer.errors import PipelineInputError
from neural_renderer.morphable import convert_ict_objs

ICT_MODEL_FILES: Mapping[str, str] = {
    k: v for k, v in ASSETS["ict_facekit"].members.items() if k.startswith("FaceXModel/") and k.endswith(".obj")
}


def extract_facexmodel(archive: str | Path, dest: str | Path, pinned: Mapping[str, str] = ICT_MODEL_FILES) -> Path:
    """Unpack the pinned `FaceXModel/*.obj` files of the ICT-FaceKit archive into `dest`/FaceXModel, verified."""
    extract_verified(archive, pinned, dest)
    return Path(dest) / "FaceXModel"


def build_ict_model(out_npz: str | Path, download_dir: str | Path) -> Path:
    archive = ensure_asset("ict_facekit", download_dir)
    with tempfile.TemporaryDirectory(dir=Path(out_npz).parent) as tmp:
        try:
            objs = extract_facexmodel(archive, tmp)
        except PipelineInputError:
            archive.unlink(missing_ok=True)  # a damaged or wrong archive: the next run downloads it again
            raise
        convert_ict_objs(objs, out_npz)
    return Path(out_npz)
