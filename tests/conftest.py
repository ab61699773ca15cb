"""Fixtures shared by the test files: the local EAS simulator and its data."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from easfast import Client
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


@pytest.fixture
def make_client() -> Iterator[Callable[..., Client]]:
    """Return a factory of direct-type Clients, closed at teardown.

    The clients use a 2 s timeout and refresh discovery every 0.1 s, so tests
    see instance list changes quickly; keyword arguments override both.
    """
    made: list[Client] = []

    def make(eas: LocalEAS, **kwargs: Any) -> Client:
        options: dict[str, Any] = {"endpoint": eas.endpoint, "timeout": 2.0,
                                   "discovery_interval": 0.1}
        options.update(kwargs)
        client = Client(eas.service_name, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
