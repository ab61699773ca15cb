"""Simulated service instances and the gateway in front of them."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from easfast.testing._faults import PREDICT_KINDS
from easfast.testing._http import RESET, Deferred, Outcome, Request, Response
from easfast.testing._processors import Predictor
from easfast.testing._server import HTTPServer, LoopThread

#: Response header that names the instance that computed the response.
INSTANCE_HEADER = "X-Easfast-Instance"


class Instance(HTTPServer):
    """One service instance: it serves ``POST /api/predict/<service>``.

    ``request_count`` counts predict requests whatever their outcome, the
    ones that reach it through the gateway included. The weight that
    discovery lists is changed with ``LocalEAS.set_weight``.
    """

    fault_kinds = PREDICT_KINDS
    role = "instance"

    def __init__(
        self,
        loop_thread: LoopThread,
        predictor: Predictor,
        weight: int,
        max_body_size: int,
    ) -> None:
        super().__init__(loop_thread, max_body_size)
        self._predictor = predictor
        self._weight = weight

    @property
    def weight(self) -> int:
        return self._weight

    def __repr__(self) -> str:
        return f"<Instance {self.address} weight={self._weight} fault={self.fault!r}>"

    def handle(self, request: Request) -> Outcome:
        error = self._predictor.route(request)
        if error is not None:
            return error
        return self.serve_predict(request)

    def serve_predict(self, request: Request) -> Outcome:
        """Count and respond to one predict request, showing the fault if one is set."""
        self.request_count += 1
        return self.apply_fault(self._faults.take(), lambda: self._respond(request))

    def _respond(self, request: Request) -> Response:
        response = self._predictor.predict(request)
        response.headers[INSTANCE_HEADER] = self.address
        return response


class Gateway(HTTPServer):
    """The fixed address that balances predict requests over the instances.

    It passes each request to a live instance picked by smooth weighted
    round robin, in process, so the instance's counters and faults apply.
    An instance's ``reset`` fault reaches the client as 502, and with no
    live instance of weight above 0 the gateway responds 503.
    ``request_count`` counts predict requests, whatever their outcome.
    """

    fault_kinds = PREDICT_KINDS
    role = "gateway"

    def __init__(
        self,
        loop_thread: LoopThread,
        predictor: Predictor,
        list_instances: Callable[[], Sequence[Instance]],
        max_body_size: int,
    ) -> None:
        super().__init__(loop_thread, max_body_size)
        self._predictor = predictor
        self._list_instances = list_instances
        self._current_weights: dict[Instance, int] = {}

    def __repr__(self) -> str:
        return f"<Gateway {self.address} fault={self.fault!r}>"

    def handle(self, request: Request) -> Outcome:
        error = self._predictor.route(request)
        if error is not None:
            return error
        self.request_count += 1
        return self.apply_fault(self._faults.take(), lambda: self._forward(request))

    def _forward(self, request: Request) -> Outcome:
        instance = self._pick()
        if instance is None:
            return Response.text(
                503, f"no live instance of service {self._predictor.service_name!r}"
            )
        return self._relay(instance, instance.serve_predict(request))

    def _relay(self, instance: Instance, outcome: Outcome) -> Outcome:
        if outcome is RESET:
            return Response.text(
                502, f"instance {instance.address} reset the connection"
            )
        if isinstance(outcome, Deferred):
            deferred = outcome
            return Deferred(
                deferred.seconds, lambda: self._relay(instance, deferred.resume())
            )
        return outcome

    def _pick(self) -> Instance | None:
        # Smooth weighted round robin, as nginx balances upstreams.
        candidates = [
            instance
            for instance in self._list_instances()
            if instance.weight > 0 and not instance.is_dead
        ]
        total = sum(instance.weight for instance in candidates)
        if total == 0:
            return None
        current = {
            instance: self._current_weights.get(instance, 0) + instance.weight
            for instance in candidates
        }
        chosen = max(candidates, key=current.__getitem__)
        current[chosen] -= total
        self._current_weights = current
        return chosen
