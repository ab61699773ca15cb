"""The digit classifier that the simulator's "tf" and "torch" processors run.

The model is softmax regression over 28x28 images flattened to 784 values in
0..1, trained on handwritten digits from the UCI optical digits data as
scikit-learn ships it (``data/README.md`` describes how). A client can call
``DigitModel().predict`` on the same images to check the server's responses.
"""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np

#: Pixels of one image, the second dimension of the model's input.
IMAGE_SIZE = 784
#: Number of classes, the digits 0 to 9.
CLASS_COUNT = 10


def _load_npz(name: str) -> dict[str, np.ndarray]:
    data_file = resources.files("easfast.testing").joinpath("data", name)
    with data_file.open("rb") as stream, np.load(stream) as archive:
        return {key: archive[key] for key in archive.files}


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """Return the bundled handwritten digits as ``(images, labels)``.

    ``images`` is float32 [N, 784] with values in 0..1 (row-major 28x28) and
    ``labels`` is int64 [N]. N is 64. The model never saw these images in
    training, and it classifies about 95 % of them correctly.
    """
    arrays = _load_npz("digits.npz")
    images = arrays["images"].reshape(len(arrays["images"]), IMAGE_SIZE)
    return images.astype(np.float32) / np.float32(255), arrays["labels"].astype(
        np.int64
    )


@functools.lru_cache(maxsize=1)
def _parameters() -> tuple[np.ndarray, np.ndarray]:
    arrays = _load_npz("digit_model.npz")
    weights = np.ascontiguousarray(arrays["weights"], dtype=np.float32)
    bias = np.ascontiguousarray(arrays["bias"], dtype=np.float32)
    weights.flags.writeable = False
    bias.flags.writeable = False
    return weights, bias


class DigitModel:
    """Softmax regression from 784 pixels to 10 digit classes, in numpy."""

    def __init__(self) -> None:
        self.weights, self.bias = _parameters()

    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Classify images and return ``(scores, classes)``.

        ``images`` is [N, 784] or [N, 28, 28] of any real dtype, with pixel
        values in 0..1; it is cast to float32. ``scores`` is float32 [N, 10]
        (softmax probabilities, each row sums to 1) and ``classes`` is int64
        [N], the index of each row's largest score.

        Raises ValueError when the shape does not hold N images of 784 pixels.
        """
        batch = np.asarray(images)
        if batch.ndim == 0 or batch.size != len(batch) * IMAGE_SIZE:
            raise ValueError(
                f"images must have shape [N, {IMAGE_SIZE}] or [N, 28, 28], "
                f"got {list(batch.shape)}; reshape to (-1, {IMAGE_SIZE})"
            )
        batch = batch.reshape(len(batch), IMAGE_SIZE).astype(np.float32, copy=False)

        logits = batch @ self.weights + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        scores = np.exp(logits)
        scores /= scores.sum(axis=1, keepdims=True)
        classes = np.argmax(scores, axis=1).astype(np.int64)
        return scores, classes
