"""Mirror averaging of the tracker (tracking/mirror.py) on real frames of d18 and their mirror images."""

from __future__ import annotations

import numpy as np
import pytest

from neural_renderer.tracking import track_frames
from neural_renderer.tracking.mirror import (
    IRIS_MIRROR,
    average_tracks,
    landmark_mirror_permutation,
    mirror_averaged,
    mirror_track,
)


@pytest.fixture(scope="module")
def tracks(face_frames, landmarker_model):
    frames = face_frames["d18"][:16]
    flipped = np.ascontiguousarray(frames[:, :, ::-1])
    return track_frames(iter(frames), 30.0, landmarker_model), track_frames(iter(flipped), 30.0, landmarker_model)


def test_permutation_is_the_mesh_symmetry(landmarker_model):
    perm = landmark_mirror_permutation(landmarker_model)
    assert perm.shape == (478,) and np.array_equal(perm[perm], np.arange(478))
    assert all(perm[a] == b and perm[b] == a for a, b in IRIS_MIRROR.items())
    assert perm[1] == 1 and perm[33] == 263 and perm[133] == 362  # nose tip on the midline; eye corners swap


def test_unmirrored_track_of_the_flipped_frames_matches_the_original(tracks, landmarker_model):
    a, b = tracks
    assert a.valid.all() and b.valid.all()
    back = mirror_track(b, 256, landmark_mirror_permutation(landmarker_model))
    err = np.linalg.norm(back.landmarks[..., :2] - a.landmarks[..., :2], axis=-1)
    assert np.median(err) < 1.5 and err[:, 468:].mean() < 3.0  # same points (irises included), a few px of noise
    names = a.blendshape_names
    blink_l, blink_r = names.index("eyeBlinkLeft"), names.index("eyeBlinkRight")
    assert np.abs(back.blendshapes[:, blink_l] - a.blendshapes[:, blink_l]).mean() < 0.1
    assert np.abs(back.blendshapes[:, blink_l] - back.blendshapes[:, blink_r]).max() < 1.0
    rot_a, rot_b = a.transforms[:, :3, :3], back.transforms[:, :3, :3]
    cos = (np.trace(rot_a @ np.swapaxes(rot_b, 1, 2), axis1=1, axis2=2) - 1) / 2
    assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() < 3.0  # the head pose un-mirrors too


def test_mirror_average_is_exactly_mirror_equivariant(tracks, landmarker_model):
    a, b = tracks
    avg = mirror_averaged(a, b, 256, landmarker_model)
    avg_of_flipped = mirror_averaged(b, a, 256, landmarker_model)
    back = mirror_track(avg_of_flipped, 256, landmark_mirror_permutation(landmarker_model))
    np.testing.assert_allclose(back.landmarks, avg.landmarks, atol=1e-3)
    np.testing.assert_allclose(back.blendshapes, avg.blendshapes, atol=1e-6)
    np.testing.assert_allclose(back.transforms, avg.transforms, atol=1e-4)
    # a frame only one pass found keeps that pass's values
    missing = b.__class__(
        b.landmarks.copy(), b.blendshapes.copy(), b.blendshape_names, b.transforms.copy(), b.valid.copy()
    )
    missing.valid[3] = False
    one = average_tracks(a, missing)
    assert one.valid.all() and np.array_equal(one.landmarks[3], a.landmarks[3])
