"""LocalEAS: a whole simulated EAS service on 127.0.0.1."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING

from easfast.testing._discovery import Discovery
from easfast.testing._instances import Gateway, Instance
from easfast.testing._processors import Predictor, ProcessorSpec
from easfast.testing._server import DEFAULT_MAX_BODY_SIZE, LoopThread

if TYPE_CHECKING:
    from typing_extensions import Self

log = logging.getLogger(__name__)

#: Weight of an instance when none is given, as EAS lists instances.
DEFAULT_WEIGHT = 100

_SERVICE_NAME = re.compile(r"[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*")


def _check_weight(weight: object, name: str) -> int:
    if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
        raise ValueError(f"{name} must be an int >= 0, got {weight!r}")
    return weight


class LocalEAS:
    """A simulated EAS service: instances, a discovery server and a gateway.

    Every server listens on its own 127.0.0.1 port, chosen by the system,
    and one daemon thread runs them all. Use it as a context manager, or
    call ``start()`` and ``stop()``::

        with LocalEAS(instances=3, weights=[5, 1, 1], processor="tf") as eas:
            client = PredictClient(eas.endpoint, "mnist")  # direct type
            ...

    ``processor`` is "tf", "torch", "string" (see ``easfast.testing``) or a
    function from request body to response body; a ValueError it raises
    becomes a 400 response. With a ``token``, predict requests must carry it
    or an EAS signature made with it, else they get 401. Methods are safe
    to call from any thread except the simulator's own.
    """

    def __init__(
        self,
        instances: int = 1,
        weights: Sequence[int] | None = None,
        service_name: str = "mnist",
        processor: ProcessorSpec = "tf",
        token: str | None = None,
        *,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    ) -> None:
        if (
            isinstance(instances, bool)
            or not isinstance(instances, int)
            or instances < 0
        ):
            raise ValueError(f"instances must be an int >= 0, got {instances!r}")
        if weights is None:
            weights = [DEFAULT_WEIGHT] * instances
        weights = [_check_weight(weight, "each weight") for weight in weights]
        if len(weights) != instances:
            raise ValueError(
                f"got {len(weights)} weights for {instances} instances; give one weight each"
            )
        if not isinstance(service_name, str) or not _SERVICE_NAME.fullmatch(
            service_name
        ):
            raise ValueError(
                f"invalid service name {service_name!r}; use letters, digits, '-', '_', '.' "
                "and '/' between parts"
            )
        if token is not None and not isinstance(token, str):
            raise TypeError(f"token must be a str or None, got {type(token).__name__}")

        self._service_name = service_name
        self._token = token or None
        self._max_body_size = max_body_size
        self._initial_weights = weights
        self._predictor = Predictor(service_name, processor, self._token)
        self._lock = threading.Lock()
        self._instances: list[Instance] = []
        self._extra: list[tuple[str, int, int]] = []
        self._loop_thread: LoopThread | None = None
        self._discovery: Discovery | None = None
        self._gateway: Gateway | None = None

    # Life cycle.

    def start(self) -> Self:
        """Start every server; return self."""
        if self._loop_thread is not None:
            raise RuntimeError("this LocalEAS was already started; create a new one")
        loop_thread = LoopThread(f"easfast-LocalEAS-{self._service_name}")
        self._loop_thread = loop_thread
        loop_thread.start()
        self._discovery = Discovery(
            loop_thread, self._service_name, self._endpoint_items, self._max_body_size
        )
        self._gateway = Gateway(
            loop_thread, self._predictor, self._instance_snapshot, self._max_body_size
        )
        try:
            loop_thread.run(self._discovery._open(0))
            loop_thread.run(self._gateway._open(0))
            for weight in self._initial_weights:
                self.add_instance(weight)
        except BaseException:
            self.stop()
            raise
        log.info(
            "LocalEAS %r started: discovery %s, gateway %s, %d instances",
            self._service_name,
            self.endpoint,
            self.gateway_endpoint,
            len(self._instances),
        )
        return self

    def stop(self) -> None:
        """Close every port and connection and end the thread; safe to repeat."""
        loop_thread = self._loop_thread
        if loop_thread is None or loop_thread.loop.is_closed():
            return
        servers = [self._discovery, self._gateway, *self._instances]
        try:
            loop_thread.run(_shutdown_all([server for server in servers if server]))
        finally:
            loop_thread.stop()
        log.info("LocalEAS %r stopped", self._service_name)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        if self._discovery is None:
            return f"<LocalEAS {self._service_name!r} not started>"
        return (
            f"<LocalEAS {self._service_name!r} discovery={self.endpoint} "
            f"gateway={self.gateway_endpoint} instances={len(self._instances)}>"
        )

    # Addresses and parts.

    @property
    def service_name(self) -> str:
        return self._service_name

    @property
    def token(self) -> str | None:
        return self._token

    @property
    def processor(self) -> str:
        """ "tf", "torch", "string", or "custom" for a function."""
        return self._predictor.processor_name

    @property
    def discovery(self) -> Discovery:
        if self._discovery is None:
            raise RuntimeError(
                "LocalEAS is not started; call start() or use it in a with block"
            )
        return self._discovery

    @property
    def gateway(self) -> Gateway:
        if self._gateway is None:
            raise RuntimeError(
                "LocalEAS is not started; call start() or use it in a with block"
            )
        return self._gateway

    @property
    def endpoint(self) -> str:
        """``127.0.0.1:<port>`` of the discovery server, for the direct type."""
        return self.discovery.address

    @property
    def gateway_endpoint(self) -> str:
        """``127.0.0.1:<port>`` of the gateway, for the default type."""
        return self.gateway.address

    @property
    def predict_url(self) -> str:
        """The gateway's full predict URL, for a custom-URL client."""
        return f"http://{self.gateway_endpoint}/api/predict/{self._service_name}"

    @property
    def instances(self) -> list[Instance]:
        """The running instances, in the order discovery lists them."""
        with self._lock:
            return list(self._instances)

    def _instance_snapshot(self) -> list[Instance]:
        return self.instances

    def _endpoint_items(self) -> list[tuple[str, int, int]]:
        with self._lock:
            items = [
                ("127.0.0.1", instance.port, instance.weight)
                for instance in self._instances
            ]
            return items + self._extra

    # Changes to the instance list.

    def add_instance(self, weight: int = DEFAULT_WEIGHT) -> Instance:
        """Start one more instance and list it in discovery; return it."""
        _check_weight(weight, "weight")
        loop_thread = self._running_loop()
        instance = Instance(loop_thread, self._predictor, weight, self._max_body_size)
        loop_thread.run(instance._open(0))
        with self._lock:
            self._instances.append(instance)
        log.info("LocalEAS %r: instance %s added", self._service_name, instance.address)
        return instance

    def remove_instance(self, instance: Instance) -> None:
        """Stop ``instance`` and unlist it; connections to its port are refused."""
        loop_thread = self._running_loop()
        with self._lock:
            if instance not in self._instances:
                raise ValueError(f"{instance!r} is not an instance of this LocalEAS")
            self._instances.remove(instance)
        loop_thread.run(instance._shutdown())
        log.info(
            "LocalEAS %r: instance %s removed", self._service_name, instance.address
        )

    def set_weight(self, instance: Instance, weight: int) -> None:
        """Make discovery and the gateway use ``weight`` for ``instance``."""
        _check_weight(weight, "weight")
        with self._lock:
            if instance not in self._instances:
                raise ValueError(f"{instance!r} is not an instance of this LocalEAS")
            instance._weight = weight

    def advertise(self, extra: Iterable[tuple[str, int, int]]) -> None:
        """List ``(ip, port, weight)`` items after the instances in discovery.

        The items need not be instances, so a test can list addresses where
        nothing listens. Each call replaces the previous items; ``[]``
        removes them. The gateway never sends to these addresses.
        """
        items = []
        for item in extra:
            if not isinstance(item, tuple) or len(item) != 3:
                raise TypeError(f"expected (ip, port, weight) tuples, got {item!r}")
            ip, port, weight = item
            if (
                not isinstance(ip, str)
                or isinstance(port, bool)
                or not isinstance(port, int)
            ):
                raise TypeError(
                    f"expected (str ip, int port, int weight), got {item!r}"
                )
            items.append((ip, port, _check_weight(weight, "weight")))
        with self._lock:
            self._extra = items

    def _running_loop(self) -> LoopThread:
        if self._loop_thread is None or self._loop_thread.loop.is_closed():
            raise RuntimeError(
                "LocalEAS is not running; call start() or use it in a with block"
            )
        return self._loop_thread


async def _shutdown_all(servers: Sequence[Discovery | Gateway | Instance]) -> None:
    for server in servers:
        await server._shutdown()
