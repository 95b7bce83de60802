"""Identity similarity (higher is better) and IFC, its distance form (lower is better): dlib's face embedding.

Per generated frame, dlib's 128-d face descriptor (`dlib_face_recognition_resnet_model_v1.dat`, a ResNet
trained for face verification, shipped by face_recognition_models: offline) is compared with the identity
reference's by cosine similarity; a video's value is the mean over its scored frames, the dataset's the mean
over videos. `ifc = 1 - cosine`, the paper's "identity feature distance" form, is reported beside it: being
linear in the cosine, its video and dataset means are exactly one minus those of the similarity.

Conventions:
- The reference (default: the ground-truth crops of the same clip) is paired frame by frame
  (`reference_mode="paired"`: generated frame t against reference frame t; a single reference frame or
  embedding serves every frame), or summarised by the re-normalised mean of its unit embeddings
  (`reference_mode="mean"`, for a reference of another length, e.g. a few identity images).
- dlib's descriptor needs the face's landmarks to align it to a 150x150 chip. As for LMD, the crops are
  already face-aligned, so the shape predictor is given the whole crop as the face rectangle. The 5-point
  predictor is the default (the pairing dlib trained and documents the embedding with); `points=68` uses
  the 68-point one. dlib's default chip padding (0.25) and no jitter.
- `every=k` scores frames 0, k, 2k, ... (and embeds only those reference frames): dlib's network runs on
  the CPU at about 0.2 s per crop here (the dlib-bin wheel is built without BLAS), so long videos may want
  k > 1; the default is every frame.
- Scale: dlib's embeddings of any two images lie in a narrow cone, so unrelated faces (or even noise) still
  score a cosine of about 0.85 and a shifted or mirrored copy of a face above 0.98 (measured on scikit-image's
  astronaut); compare numbers within this convention only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor

from tfbench.data.landmarks import PREDICTOR_FILE, predictor_path
from tfbench.errors import TfbenchError
from tfbench.metrics.landmark_distance import dlib_images
from tfbench.metrics.visual import VideoMeanMetric

__all__ = [
    "DESCRIPTOR_FILE",
    "EMBEDDING_DIM",
    "FaceEmbedder",
    "IdentityResult",
    "IdentitySimilarity",
    "ReferenceMode",
    "identity_for_clip",
    "identity_per_frame",
    "model_file",
]

DESCRIPTOR_FILE = "dlib_face_recognition_resnet_model_v1.dat"
SHAPE_FILES = {5: "shape_predictor_5_face_landmarks.dat", 68: PREDICTOR_FILE}
EMBEDDING_DIM = 128
CHIP_PADDING = 0.25  # dlib's default margin around the aligned face chip
DEFAULT_BATCH_SIZE = 16

ReferenceMode = Literal["paired", "mean"]


def model_file(name: str) -> Path:
    """A model file of face_recognition_models, beside the 68-point predictor that `tfbench.data.landmarks`
    locates (without importing the package); a clear error when it is not there."""
    path = predictor_path().parent / name
    if not path.is_file():
        raise TfbenchError(f"dlib model {name} not found in {path.parent}: reinstall face_recognition_models")
    return path


@cache
def _dlib_models(shape_path: str, descriptor_path: str) -> tuple[Any, Any]:
    import dlib

    return dlib.shape_predictor(shape_path), dlib.face_recognition_model_v1(descriptor_path)


class FaceEmbedder:
    """dlib's 128-d face descriptor of whole-crop faces, models loaded once per process.

    Args:
        points: 5 (default) or 68: which shape predictor aligns the face chip.
        batch_size: crops per call of dlib's batched descriptor (memory only; the values do not change).
    """

    def __init__(self, points: Literal[5, 68] = 5, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        if points not in SHAPE_FILES:
            raise TfbenchError(f"identity: points must be 5 or 68, got {points!r}")
        if batch_size < 1:
            raise TfbenchError(f"identity: batch_size must be at least 1, got {batch_size}")
        self.points = points
        self.batch_size = batch_size
        self._shape, self._descriptor = _dlib_models(
            str(model_file(SHAPE_FILES[points])), str(model_file(DESCRIPTOR_FILE))
        )

    def embed(self, frames: Tensor | np.ndarray) -> Tensor:
        """(N, 128) float64 descriptors of N uint8 RGB crops ((N, H, W, 3) or (N, 3, H, W)), each crop the
        face rectangle."""
        import dlib

        images = dlib_images(frames, "identity")
        height, width = images.shape[1:3]
        rect = dlib.rectangle(0, 0, width - 1, height - 1)  # dlib rectangles are inclusive
        out = np.empty((len(images), EMBEDDING_DIM), dtype=np.float64)
        for start in range(0, len(images), self.batch_size):
            batch = list(images[start : start + self.batch_size])
            shapes = []
            for image in batch:
                detections = dlib.full_object_detections()
                detections.append(self._shape(image, rect))
                shapes.append(detections)
            vectors = self._descriptor.compute_face_descriptor(batch, shapes, 0, CHIP_PADDING)
            out[start : start + len(batch)] = [np.asarray(faces[0]) for faces in vectors]
        return torch.from_numpy(out)


def _reference_embeddings(
    reference: Tensor | np.ndarray,
    index: np.ndarray,
    n_frames: int,
    every: int,
    mode: ReferenceMode,
    embedder: FaceEmbedder,
) -> Tensor:
    """The reference's descriptors for the generated frames `index`: (len(index), 128) or (1, 128)."""
    ref = torch.from_numpy(np.asarray(reference)) if isinstance(reference, np.ndarray) else reference
    if not isinstance(ref, Tensor):
        raise TfbenchError(f"identity: reference must be a tensor or array, got {type(reference).__name__}")
    is_embedding = ref.is_floating_point() and ref.ndim in (1, 2) and ref.shape[-1] == EMBEDDING_DIM
    if not is_embedding and ref.ndim != 4:
        raise TfbenchError(
            "identity: reference must be uint8 crops (R, H, W, 3) / (R, 3, H, W) or float embeddings "
            f"(R, 128) / (128,), got {ref.dtype} {tuple(ref.shape)}"
        )
    if is_embedding:
        ref = ref.reshape(-1, EMBEDDING_DIM)
    n_ref = ref.shape[0]
    if n_ref == 1:
        rows = np.zeros(1, dtype=np.int64)
    elif mode == "mean":
        rows = np.arange(0, n_ref, every)
    elif n_ref == n_frames:
        rows = index  # paired: only the reference frames that are compared are embedded
    else:
        raise TfbenchError(
            f"identity: a paired reference needs 1 frame or one per generated frame, got {tuple(ref.shape)}; "
            "use reference_mode='mean' for a reference of another length"
        )
    picked = ref[torch.from_numpy(rows)]
    emb = picked.to(torch.float64).cpu() if is_embedding else embedder.embed(picked)
    if mode == "mean":
        emb = torch.nn.functional.normalize(emb, dim=1).mean(0, keepdim=True)
    return emb


def identity_per_frame(
    preds: Tensor | np.ndarray,
    reference: Tensor | np.ndarray,
    every: int = 1,
    reference_mode: ReferenceMode = "paired",
    embedder: FaceEmbedder | None = None,
) -> tuple[Tensor, Tensor]:
    """Cosine similarity of each scored generated frame's descriptor with the reference's.

    Args:
        preds: generated uint8 RGB crops, (T, H, W, 3) or (T, 3, H, W).
        reference: uint8 crops of the reference ((R, H', W', 3) or (R, 3, H', W'), any crop size), or its
            float descriptors ((R, 128) or (128,), e.g. cached); R = T or 1 for the paired mode.
        every: score frames 0, every, 2 * every, ...
        reference_mode: "paired" or "mean" (see the module docstring).
        embedder: a `FaceEmbedder`; default the 5-point one.

    Returns:
        (cosines (n,) float64, frame indices (n,) long).

    Raises:
        TfbenchError: naming identity and the shapes, for bad crops, a reference of the wrong length, an
            unknown mode or `every` < 1.
    """
    if reference_mode not in ("paired", "mean"):
        raise TfbenchError(f"identity: reference_mode must be 'paired' or 'mean', got {reference_mode!r}")
    if every < 1:
        raise TfbenchError(f"identity: every must be at least 1, got {every}")
    images = dlib_images(preds, "identity")
    index = np.arange(0, len(images), every)
    embedder = embedder or FaceEmbedder()
    ref = _reference_embeddings(reference, index, len(images), every, reference_mode, embedder)
    pred = embedder.embed(images[index])
    cos = torch.nn.functional.cosine_similarity(pred, ref, dim=1)
    return cos, torch.from_numpy(index)


@dataclass(frozen=True)
class IdentityResult:
    """Identity similarity and IFC of one video, with the per-frame cosines and the frames scored."""

    idsim: float
    ifc: float
    n_frames: int
    n_scored: int
    every: int
    reference_mode: ReferenceMode
    per_frame: tuple[float, ...]

    def as_dict(self) -> dict[str, Any]:
        """A plain dict for a results row (the tuple becomes a list)."""
        row = asdict(self)
        row["per_frame"] = list(self.per_frame)
        return row


def identity_for_clip(
    preds: Tensor | np.ndarray,
    reference: Tensor | np.ndarray,
    every: int = 1,
    reference_mode: ReferenceMode = "paired",
    embedder: FaceEmbedder | None = None,
) -> IdentityResult:
    """Identity similarity (mean cosine) and IFC (1 - it) of one video; arguments as `identity_per_frame`."""
    cos, _ = identity_per_frame(preds, reference, every, reference_mode, embedder)
    mean = float(cos.mean())
    n_frames = int(preds.shape[0])
    return IdentityResult(mean, 1.0 - mean, n_frames, cos.numel(), every, reference_mode, tuple(cos.tolist()))


class IdentitySimilarity(VideoMeanMetric):
    """Identity similarity (higher is better) and IFC = 1 - similarity (lower is better) over videos.

    `update(preds, reference)` scores one video with `identity_for_clip` (the reference is usually the
    ground-truth crops); `update(result)` adds an `IdentityResult` computed elsewhere. The state is the
    base class's (sum of per-video means, count, frames, per-video means); IFC is derived in `compute`.
    One metric returns two numbers with opposite directions: `DIRECTIONS` declares each, and
    `higher_is_better` is None (mixed), as for LSE.

    Args:
        every, reference_mode: passed to `identity_for_clip`.
        points: the shape predictor aligning dlib's face chip (5 or 68).
        embedder: a `FaceEmbedder` to share (default: one built on the first update).
    """

    key = "idsim"
    higher_is_better: bool | None = None
    DIRECTIONS: ClassVar[dict[str, bool]] = {"idsim": True, "ifc": False}
    plot_lower_bound = -1.0
    plot_upper_bound = 1.0

    def __init__(
        self,
        every: int = 1,
        reference_mode: ReferenceMode = "paired",
        points: Literal[5, 68] = 5,
        embedder: FaceEmbedder | None = None,
        **kwargs: Any,
    ) -> None:
        if every < 1:
            raise TfbenchError(f"identity: every must be at least 1, got {every}")
        if reference_mode not in ("paired", "mean"):
            raise TfbenchError(f"identity: reference_mode must be 'paired' or 'mean', got {reference_mode!r}")
        super().__init__(**kwargs)
        self.every = every
        self.reference_mode: ReferenceMode = reference_mode
        self.points: Literal[5, 68] = points
        self.embedder = embedder

    def update(self, preds: Tensor | IdentityResult, reference: Tensor | None = None) -> None:
        """Add one video: generated uint8 crops and the identity reference, or an `IdentityResult`."""
        if isinstance(preds, IdentityResult):
            result = preds
        else:
            if reference is None:
                raise TfbenchError(
                    "identity similarity needs a reference (the ground-truth crops) beside the video"
                )
            if self.embedder is None:
                self.embedder = FaceEmbedder(self.points)
            result = identity_for_clip(preds, reference, self.every, self.reference_mode, self.embedder)
        mean = torch.tensor(result.idsim, dtype=torch.float64, device=self.value_sum.device)
        self.value_sum += mean
        self.count += 1
        self.n_frames += result.n_scored
        self.values.append(mean.reshape(1))

    def compute(self) -> dict[str, Tensor]:
        """{"idsim": mean over videos, "ifc": 1 - idsim, "n": videos}; NaN when no video was added."""
        out = super().compute()
        out["ifc"] = 1.0 - out["idsim"]
        return out
