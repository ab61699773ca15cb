"""Both clients' compat API, set up the same way for every benchmark."""

from __future__ import annotations

import logging

import eas_prediction

import easfast


def official_client(endpoint: str, service: str) -> eas_prediction.PredictClient:
    """Return an initialised direct-type eas_prediction client."""
    client = eas_prediction.PredictClient(endpoint, service)
    client.set_endpoint_type(eas_prediction.ENDPOINT_TYPE_DIRECT)
    # The official client logs every sync error to stdout; keep its logger quiet.
    client.set_log_level(logging.CRITICAL)
    client.init()
    return client


def easfast_client(endpoint: str, service: str) -> easfast.PredictClient:
    """Return an initialised direct-type easfast client."""
    client = easfast.PredictClient(endpoint, service)
    client.set_endpoint_type(easfast.ENDPOINT_TYPE_DIRECT)
    client.init()
    return client


#: Client factory and TFRequest class of each implementation, by name.
CLIENTS = {
    "eas_prediction": (official_client, eas_prediction.TFRequest),
    "easfast": (easfast_client, easfast.TFRequest),
}
