"""dlib's 68-point facial landmarks, from the model file the `face_recognition_models` package ships.

The package's own `__init__` imports `pkg_resources` (deprecated, absent from new setuptools), so the file
is located through `importlib.util.find_spec`, which finds a package without running it. Points 48-67 are
the mouth (outer lip 48-59, inner lip 60-67): LMD compares them between generated and ground-truth crops.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

import numpy as np

from tfbench.errors import TfbenchError

PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"
MOUTH = slice(48, 68)
"""The mouth points of the 68-point scheme (indices 48-67)."""


def predictor_path() -> Path:
    """Where face_recognition_models keeps the 68-point predictor; a clear error if it is not installed."""
    spec = importlib.util.find_spec("face_recognition_models")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / "models" / PREDICTOR_FILE
        if path.is_file():
            return path
    raise TfbenchError(
        f"dlib's landmark model {PREDICTOR_FILE} was not found: install the face_recognition_models package "
        f"(pip install face_recognition_models; searched {', '.join(locations) or 'no installed copy'})"
    )


@cache
def _predictor(path: str) -> object:
    import dlib

    return dlib.shape_predictor(path)


class Landmarker:
    """68 landmarks per face with dlib's shape predictor, loaded once per process and file."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or predictor_path()
        self._predict = _predictor(str(self.path))

    def predict(self, image: np.ndarray, box: np.ndarray | tuple[float, float, float, float]) -> np.ndarray:
        """(68, 2) float32 (x, y) in pixels of `image` ((H, W, 3) uint8 RGB) for the face in `box`
        (x1, y1, x2, y2, end-exclusive: dlib's inclusive rectangle is (x1, y1, x2 - 1, y2 - 1))."""
        import dlib

        x1, y1, x2, y2 = (round(float(v)) for v in box[:4])
        rect = dlib.rectangle(x1, y1, max(x1, x2 - 1), max(y1, y2 - 1))
        shape = self._predict(np.ascontiguousarray(image), rect)  # type: ignore[operator]
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)

    def predict_many(self, images: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """(N, 68, 2) landmarks of N images, each with its own box (N, 4)."""
        out = np.zeros((len(images), 68, 2), dtype=np.float32)
        for i, (image, box) in enumerate(zip(images, boxes, strict=True)):
            out[i] = self.predict(image, box)
        return out
