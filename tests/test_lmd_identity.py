"""LMD and identity similarity on a real photograph (scikit-image's astronaut), with dlib's offline models."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage import data
from skimage.transform import resize

from tfbench.data.landmarks import Landmarker
from tfbench.data.synthetic_face import draw_face, sample_identity
from tfbench.errors import TfbenchError
from tfbench.metrics.identity import FaceEmbedder, IdentityResult, IdentitySimilarity, identity_for_clip
from tfbench.metrics.landmark_distance import (
    LMD,
    LMDResult,
    lmd_for_clip,
    lmd_from_landmarks,
    mouth_landmarks,
)

SIZE = 128
FULL = (0, 0, SIZE, SIZE)


def _shifted(image: np.ndarray, dx: int, dy: int, rows: int | None = None) -> np.ndarray:
    """The crop's content moved by (dx, dy) px (rows `:rows` only, if given), borders edge-padded."""
    pad = 16
    out = image.copy()
    part = image[:rows] if rows is not None else image
    big = np.pad(part, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    moved = np.roll(big, (dy, dx), axis=(0, 1))[pad : pad + part.shape[0], pad : pad + part.shape[1]]
    out[: part.shape[0]] = moved
    return out


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    """A 128x128 face-aligned crop of the astronaut (dlib's HOG box is about (175, 76)-(265, 166))."""
    crop = resize(data.astronaut()[60:180, 160:280], (SIZE, SIZE), order=1, anti_aliasing=True)
    return (crop * 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def cartoon() -> np.ndarray:
    """Another face: the synthetic generator's speaker 1, cropped around the face."""
    ident = sample_identity(0, 1)
    canvas = np.empty((256, 256, 3), dtype=np.uint8)
    canvas[:] = ident.background
    draw_face(canvas, ident, (128, 118), 80, 0.2, 1.0)
    return (resize(canvas[30:226, 30:226], (SIZE, SIZE), anti_aliasing=True) * 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def noise() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def landmarker() -> Landmarker:
    return Landmarker()


@pytest.fixture(scope="module")
def embedder() -> FaceEmbedder:
    return FaceEmbedder()


def clip(*frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.stack(frames))


# --------------------------------------------------------------------------------------------- LMD


def test_lmd_of_a_crop_against_itself_is_zero(face, landmarker) -> None:
    result = lmd_for_clip(clip(face, face), clip(face, face), landmarker=landmarker)
    assert result.lmd == 0.0 and result.n_used == 2 and result.n_excluded == 0 and result.skipped is None


@pytest.mark.parametrize(("dx", "dy"), [(3, 4), (-2, 3)])
def test_lmd_of_a_shifted_crop_is_the_shift(face, landmarker, dx: int, dy: int) -> None:
    result = lmd_for_clip(clip(_shifted(face, dx, dy)), clip(face), landmarker=landmarker)
    assert result.lmd == pytest.approx(math.hypot(dx, dy), abs=1.0)
    # the same in crop units: divided by the crop side
    crop_units = lmd_for_clip(clip(_shifted(face, dx, dy)), clip(face), units="crop", landmarker=landmarker)
    assert crop_units.lmd == pytest.approx(result.lmd / SIZE, rel=1e-12) and crop_units.units == "crop"
    # cached ground-truth landmarks (e.g. from the crop cache) give the same number
    cached = mouth_landmarks(clip(face), landmarker=landmarker)
    assert cached.shape == (1, 20, 2)
    again = lmd_for_clip(
        clip(_shifted(face, dx, dy)), clip(face), landmarker=landmarker, target_landmarks=cached
    )
    assert again.lmd == result.lmd


def test_lmd_uses_the_mouth_points_48_to_67(face, landmarker) -> None:
    """Moving only the upper part of the face (eyes, brows) moves their points, not the mouth's."""
    upper = _shifted(face, 6, 0, rows=55)
    before, after = landmarker.predict(face, FULL), landmarker.predict(upper, FULL)
    moved = np.linalg.norm(after - before, axis=1)
    assert moved[36:48].mean() > 4.0  # the eyes followed the shift
    result = lmd_for_clip(clip(upper), clip(face), landmarker=landmarker)
    assert result.lmd == pytest.approx(float(moved[48:68].mean()), abs=1e-6)
    assert result.lmd < 1.0 < float(moved.mean())
    # lmd_from_landmarks takes the 68 points and keeps 48-67
    full = lmd_from_landmarks(after[None], before[None])
    assert float(full[0]) == pytest.approx(result.lmd, abs=1e-6)


def test_frames_without_a_face_are_excluded_and_counted(face, noise, landmarker) -> None:
    shifted = _shifted(face, 3, 4)
    result = lmd_for_clip(clip(face, noise, shifted), clip(face, face, face), landmarker=landmarker)
    assert (result.n_frames, result.n_used, result.n_excluded) == (3, 2, 1)
    assert (result.n_no_face_pred, result.n_no_face_target) == (1, 0)
    assert math.isnan(result.per_frame[1])
    alone = lmd_for_clip(clip(shifted), clip(face), landmarker=landmarker)
    assert result.lmd == pytest.approx(alone.lmd / 2)  # frames 0 (zero) and 2, frame 1 left out
    # with no usable frame the video is NaN with a reason, not a crash
    none = lmd_for_clip(clip(noise), clip(face), landmarker=landmarker)
    assert math.isnan(none.lmd) and none.n_used == 0 and "no frame with a face" in (none.skipped or "")
    # face_check="none" scores every frame
    forced = lmd_for_clip(clip(noise), clip(face), face_check="none", landmarker=landmarker)
    assert forced.n_used == 1 and forced.lmd > 0


def _result(lmd: float, n_used: int, n_excluded: int) -> LMDResult:
    skipped = None if n_used else "no frame with a face in both crops"
    per_frame = (lmd,) * n_used + (math.nan,) * n_excluded
    return LMDResult(lmd, n_used + n_excluded, n_used, n_excluded, n_excluded, 0, per_frame, skipped=skipped)


def test_lmd_metric_state_merges_and_counts(face, landmarker) -> None:
    results = [_result(1.0, 4, 1), _result(math.nan, 0, 3), _result(2.5, 2, 0)]
    one_pass = LMD(landmarker=landmarker)
    for result in results:
        one_pass.update(result)
    first, second = LMD(), LMD()
    first.update(results[0])
    for result in results[1:]:
        second.update(result)
    second.merge_state(first)
    for metric in (one_pass, second):
        out = metric.compute()
        assert float(out["lmd"]) == pytest.approx(1.75)
        assert (int(out["n"]), int(out["n_frames"]), int(out["n_excluded"]), int(out["n_unscored"])) == (
            2,
            6,
            4,
            1,
        )
    assert one_pass.per_video_excluded().tolist() == [1, 3, 0]
    assert torch.isnan(one_pass.per_video()[1])
    # frames in: the same as the functional core
    metric = LMD(landmarker=landmarker)
    metric.update(clip(_shifted(face, 3, 4)), clip(face))
    expected = lmd_for_clip(clip(_shifted(face, 3, 4)), clip(face), landmarker=landmarker).lmd
    assert float(metric.compute()["lmd"]) == pytest.approx(expected)
    assert LMD.higher_is_better is False and LMD.DIRECTIONS == {"lmd": False}


def test_lmd_rejects_bad_input(face) -> None:
    with pytest.raises(TfbenchError, match=r"LMD: .*frame count"):
        lmd_for_clip(clip(face, face), clip(face))
    with pytest.raises(TfbenchError, match="LMD: frames must be uint8"):
        lmd_for_clip(clip(face).float(), clip(face).float())
    with pytest.raises(TfbenchError, match="units"):
        LMD(units="mm")  # type: ignore[arg-type]
    with pytest.raises(TfbenchError, match=r"LMD: .*\(T, 68, 2\)"):
        lmd_from_landmarks(np.zeros((2, 10, 2)), np.zeros((2, 10, 2)))


# ---------------------------------------------------------------------------------------- identity


@pytest.fixture(scope="module")
def descriptors(embedder, face, cartoon, noise) -> dict[str, torch.Tensor]:
    flipped = np.ascontiguousarray(face[:, ::-1])
    frames = {"face": face, "shifted": _shifted(face, 3, 4), "flipped": flipped, "cartoon": cartoon}
    frames["noise"] = noise
    emb = embedder.embed(np.stack(list(frames.values())))
    return dict(zip(frames, emb, strict=True))


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


def test_identity_same_face_is_near_one_and_other_faces_lower(descriptors) -> None:
    d = descriptors
    assert d["face"].shape == (128,) and d["face"].dtype == torch.float64
    assert _cos(d["face"], d["shifted"]) > 0.99
    assert _cos(d["face"], d["flipped"]) > 0.97  # a mirror image is still the same person
    assert _cos(d["face"], d["cartoon"]) < 0.92
    assert _cos(d["face"], d["noise"]) < 0.92


def test_identity_for_clip_pairs_frames_and_reports_ifc(face, cartoon, embedder, descriptors) -> None:
    same = identity_for_clip(clip(face), clip(face), embedder=embedder)
    assert same.idsim == pytest.approx(1.0, abs=1e-9) and same.ifc == pytest.approx(0.0, abs=1e-9)
    other = identity_for_clip(clip(cartoon), clip(face), embedder=embedder)
    assert other.idsim == pytest.approx(_cos(descriptors["cartoon"], descriptors["face"]), abs=1e-9)
    assert other.ifc == 1.0 - other.idsim and other.idsim < same.idsim - 0.05
    # precomputed reference embeddings give the same numbers as the reference frames
    cached = identity_for_clip(clip(cartoon), descriptors["face"], embedder=embedder)
    assert cached.per_frame == pytest.approx(other.per_frame, abs=1e-12)


def test_identity_every_k_and_reference_modes(face, cartoon, embedder, descriptors) -> None:
    d = descriptors
    preds = clip(face, cartoon, cartoon, face, cartoon)
    reference = torch.stack([d["face"]] * 5)  # one (cached) embedding per frame
    result = identity_for_clip(preds, reference, every=2, embedder=embedder)
    assert (result.n_frames, result.n_scored, result.every) == (5, 3, 2)  # frames 0, 2, 4
    c = _cos(d["cartoon"], d["face"])
    assert result.per_frame == pytest.approx((1.0, c, c), abs=1e-9)
    # "mean": the reference summarised by its mean unit embedding; any length
    ref = torch.stack([d["face"], d["shifted"], d["flipped"]])
    mean = identity_for_clip(clip(face), ref, reference_mode="mean", embedder=embedder)
    centre = torch.nn.functional.normalize(ref, dim=1).mean(0)
    assert mean.idsim == pytest.approx(_cos(d["face"], centre), abs=1e-9)
    with pytest.raises(TfbenchError, match=r"identity: a paired reference needs 1 frame or one per"):
        identity_for_clip(preds, ref, embedder=embedder)
    with pytest.raises(TfbenchError, match="identity: every"):
        identity_for_clip(preds, ref, every=0, embedder=embedder)


def test_identity_metric_means_ifc_and_merge(descriptors) -> None:
    results = [
        IdentityResult(0.99, 0.01, 10, 10, 1, "paired", (0.99,) * 10),
        IdentityResult(0.85, 0.15, 4, 2, 2, "paired", (0.85,) * 2),
        IdentityResult(0.90, 0.10, 6, 6, 1, "paired", (0.9,) * 6),
    ]
    one_pass, first, second = IdentitySimilarity(), IdentitySimilarity(), IdentitySimilarity()
    for result in results:
        one_pass.update(result)
    first.update(results[0])
    second.update(results[1])
    second.update(results[2])
    second.merge_state(first)
    for metric in (one_pass, second):
        out = metric.compute()
        assert float(out["idsim"]) == pytest.approx(0.9133333333, abs=1e-9)
        assert float(out["ifc"]) == pytest.approx(1 - float(out["idsim"]), abs=1e-12)
        assert int(out["n"]) == 3 and int(metric.n_frames) == 18
    assert IdentitySimilarity.DIRECTIONS == {"idsim": True, "ifc": False}
    with pytest.raises(TfbenchError, match="reference"):
        IdentitySimilarity().update(torch.zeros(1, 8, 8, 3, dtype=torch.uint8))
