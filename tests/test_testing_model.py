"""The bundled digits and the classifier the simulator runs."""

from __future__ import annotations

import numpy as np
import pytest

from easfast.testing import DigitModel, load_digits


class TestLoadDigits:
    def test_shapes_and_dtypes(self, digits):
        images, labels = digits
        assert images.shape == (64, 784)
        assert images.dtype == np.float32
        assert labels.shape == (64,)
        assert labels.dtype == np.int64

    def test_values_are_pixels_and_digits(self, digits):
        images, labels = digits
        assert images.min() == 0.0
        assert images.max() == 1.0
        assert set(labels.tolist()) == set(range(10))

    def test_each_call_returns_fresh_arrays(self):
        first, _ = load_digits()
        first[0, 0] = 7.0
        second, _ = load_digits()
        assert second[0, 0] != 7.0


class TestDigitModel:
    def test_classifies_most_bundled_digits(self, digits, digit_model):
        images, labels = digits
        _, classes = digit_model.predict(images)
        assert np.mean(classes == labels) > 0.9

    def test_scores_are_probabilities(self, digits, digit_model):
        scores, classes = digit_model.predict(digits[0][:10])
        assert scores.shape == (10, 10)
        assert scores.dtype == np.float32
        assert classes.dtype == np.int64
        assert np.all(scores >= 0)
        np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-5)
        np.testing.assert_array_equal(classes, scores.argmax(axis=1))

    def test_matches_softmax_of_stored_weights(self, digits, digit_model):
        images = digits[0][:5].astype(np.float64)
        logits = images @ digit_model.weights.astype(np.float64) + digit_model.bias
        expected = np.exp(logits - logits.max(axis=1, keepdims=True))
        expected /= expected.sum(axis=1, keepdims=True)
        scores, _ = digit_model.predict(digits[0][:5])
        np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-6)

    def test_accepts_square_images_and_ints(self, digits, digit_model):
        images = digits[0][:4]
        square = images.reshape(4, 28, 28)
        scores, _ = digit_model.predict(images)
        np.testing.assert_array_equal(digit_model.predict(square)[0], scores)
        _, classes = digit_model.predict((images > 0.5).astype(np.uint8))
        assert classes.shape == (4,)

    def test_empty_batch(self, digit_model):
        scores, classes = digit_model.predict(np.zeros((0, 784), np.float32))
        assert scores.shape == (0, 10)
        assert classes.shape == (0,)

    @pytest.mark.parametrize(
        "shape",
        [(784,), (2, 783), (), (3, 28, 27)],
        ids=["flat", "short", "scalar", "square"],
    )
    def test_wrong_shape_raises(self, digit_model, shape):
        with pytest.raises(ValueError, match=r"images must have shape \[N, 784\]"):
            digit_model.predict(np.zeros(shape, np.float32))

    def test_weights_are_read_only(self):
        model = DigitModel()
        with pytest.raises(ValueError):
            model.weights[0, 0] = 1.0
