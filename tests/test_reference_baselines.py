"""Reference baselines: each produces exactly the frames its definition says, through the model registry."""

from __future__ import annotations

import numpy as np
import pytest

import tfbench.baselines  # noqa: F401  (registers the baselines)
from tfbench.errors import TfbenchError
from tfbench.models.protocol import MODELS, GenerationRequest


@pytest.fixture
def request_() -> GenerationRequest:
    faces = np.stack([np.full((96, 96, 3), 10 * i, np.uint8) for i in range(12)])
    reference = np.full((1, 96, 96, 3), 200, np.uint8)
    return GenerationRequest("clip", faces, reference, np.zeros(16000 * 12 // 25, np.float32))


def test_gt_static_reference_copy(request_: GenerationRequest) -> None:
    assert np.array_equal(MODELS.get("gt").load().generate(request_), request_.faces)
    static = MODELS.get("static").load().generate(request_)
    assert np.array_equal(static, np.repeat(request_.faces[:1], 12, axis=0))
    copy = MODELS.get("reference-copy").load().generate(request_)
    assert copy.shape == request_.faces.shape and np.all(copy == 200)


def test_shifted_moves_video_behind_audio(request_: GenerationRequest) -> None:
    shifted = MODELS.get("shifted").load().generate(request_)
    levels = shifted[:, 0, 0, 0] // 10
    assert list(levels) == [0] * 9 + [1, 2, 3]  # frame i shows ground truth i - 8, clamped at the start
    from tfbench.baselines.reference import ShiftedGroundTruth

    with pytest.raises(TfbenchError, match="shift of 0"):
        ShiftedGroundTruth(0)
    back = ShiftedGroundTruth(-2).generate(request_)[:, 0, 0, 0] // 10
    assert list(back) == [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 11, 11]


def test_registry_lists_all_baselines() -> None:
    assert {"gt", "static", "shifted", "reference-copy", "wav2lip", "wav2lip_gan"} <= set(MODELS.names())
    assert MODELS.canonical("ground-truth") == "gt"
