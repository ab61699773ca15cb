"""Fixtures shared by the test files: the local EAS simulator and its data."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from easfast.testing import DigitModel, LocalEAS, load_digits


@pytest.fixture
def local_eas() -> Iterator[Callable[..., LocalEAS]]:
    """Return a factory that starts a LocalEAS; every one is stopped at teardown.

    It takes LocalEAS's arguments::

        def test_x(local_eas):
            eas = local_eas(instances=3, weights=[5, 1, 1], processor="string")
    """
    started: list[LocalEAS] = []

    def start(*args: Any, **kwargs: Any) -> LocalEAS:
        eas = LocalEAS(*args, **kwargs)
        started.append(eas)
        return eas.start()

    yield start
    for eas in reversed(started):
        eas.stop()


@pytest.fixture(scope="session")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """The bundled digits: float32 images [64, 784] in 0..1 and int64 labels."""
    images, labels = load_digits()
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


@pytest.fixture(scope="session")
def digit_model() -> DigitModel:
    """The classifier the simulator's "tf" and "torch" processors run."""
    return DigitModel()
