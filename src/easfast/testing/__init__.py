"""A local PAI-EAS simulator for tests, demos and benchmarks.

``LocalEAS`` runs a service's instances, its discovery server and a gateway
on 127.0.0.1, with a real digit classifier behind the "tf" and "torch"
processors and faults that can be switched on while traffic flows::

    from easfast.testing import DigitModel, Fault, LocalEAS, load_digits

    with LocalEAS(instances=3, weights=[5, 1, 1], processor="tf") as eas:
        eas.instances[0].set_fault(Fault.status(503, times=2))
        ...  # point a client at eas.endpoint (direct) or eas.gateway_endpoint

The "string" processor responds with the request body's bytes reversed,
which ``string_response`` computes.
"""

from __future__ import annotations

from easfast.testing._discovery import UPSTREAM_PREFIXES, Discovery
from easfast.testing._faults import Fault
from easfast.testing._instances import INSTANCE_HEADER, Gateway, Instance
from easfast.testing._local_eas import DEFAULT_WEIGHT, LocalEAS
from easfast.testing._processors import SIGNATURE_NAME, string_response
from easfast.testing.model import DigitModel, load_digits

__all__ = [
    "DEFAULT_WEIGHT",
    "INSTANCE_HEADER",
    "SIGNATURE_NAME",
    "UPSTREAM_PREFIXES",
    "DigitModel",
    "Discovery",
    "Fault",
    "Gateway",
    "Instance",
    "LocalEAS",
    "load_digits",
    "string_response",
]
