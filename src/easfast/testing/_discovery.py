"""The simulated service discovery server of the direct endpoint type."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from easfast.testing._faults import DISCOVERY_KINDS
from easfast.testing._http import Outcome, Request, Response
from easfast.testing._server import HTTPServer, LoopThread

#: The two URL forms of the instance list, each followed by the service name.
UPSTREAM_PREFIXES = (
    "/api/v1/servicediscovery/upstreams/",
    "/exported/apis/eas.alibaba-inc.k8s.io/v1/upstreams/",
)


def upstream_document(
    app: str, items: Sequence[tuple[str, int, int]]
) -> dict[str, object]:
    """Return the discovery JSON for ``(ip, port, weight)`` items."""
    return {
        "correlative": [],
        "endpoints": {
            "items": [
                {"app": app, "ip": ip, "port": port, "weight": weight}
                for ip, port, weight in items
            ]
        },
    }


class Discovery(HTTPServer):
    """Serves the instance list of one service at both upstream URL forms.

    The service is known by the part of its name before the first ``/``.
    The query string (``?internal=true``) is accepted and ignored.
    ``request_count`` counts GET requests to an upstream URL, whatever
    their outcome, and ``last_target`` is the latest one's path and query.
    """

    fault_kinds = DISCOVERY_KINDS
    role = "discovery server"

    def __init__(
        self,
        loop_thread: LoopThread,
        service_name: str,
        list_items: Callable[[], Sequence[tuple[str, int, int]]],
        max_body_size: int,
    ) -> None:
        super().__init__(loop_thread, max_body_size)
        self.upstream_name = service_name.split("/", 1)[0]
        self._list_items = list_items
        #: Path and query of the latest upstream request, or None before one.
        self.last_target: str | None = None

    def __repr__(self) -> str:
        return f"<Discovery {self.address} service={self.upstream_name!r} fault={self.fault!r}>"

    def handle(self, request: Request) -> Outcome:
        name = None
        for prefix in UPSTREAM_PREFIXES:
            if request.path.startswith(prefix):
                name = request.path[len(prefix) :]
                break
        if name is None:
            return Response.text(
                404,
                f"no route for {request.path!r}; the instance list is at "
                f"{UPSTREAM_PREFIXES[0]}<service> or {UPSTREAM_PREFIXES[1]}<service>",
            )
        if request.method != "GET":
            return Response.text(
                405,
                f"method {request.method} not allowed; use GET",
                headers={"Allow": "GET"},
            )

        self.request_count += 1
        self.last_target = request.target
        fault = self._faults.take()
        if fault is not None and fault.kind == "empty":
            return self._respond(name, [])
        return self.apply_fault(fault, lambda: self._respond(name, None))

    def _respond(
        self, name: str, items: Sequence[tuple[str, int, int]] | None
    ) -> Response:
        if name != self.upstream_name:
            return Response.text(
                404,
                f"service {name!r} not found; this server lists {self.upstream_name!r}",
            )
        if items is None:
            items = self._list_items()
        body = json.dumps(upstream_document(self.upstream_name, items)).encode("utf-8")
        return Response(200, body, "application/json")
