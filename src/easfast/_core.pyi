"""Type stubs for easfast._core, the compiled selector and codec."""

from collections.abc import Container, Iterable, Iterator

class Endpoint:
    """One service instance: host, port and weight, immutable."""

    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def weight(self) -> int: ...
    @property
    def address(self) -> str:
        """``host:port``, with an IPv6 host in brackets."""
    def __init__(self, host: str, port: int, weight: int = 100) -> None: ...

class EndpointSnapshot:
    """An immutable endpoint list; empty or all-zero lists raise NoEndpointsError."""

    @property
    def endpoints(self) -> tuple[Endpoint, ...]: ...
    @property
    def total_weight(self) -> int: ...
    def __init__(self, endpoints: Iterable[Endpoint]) -> None: ...
    @classmethod
    def from_tuples(
        cls, items: Iterable[tuple[str, int, int]]
    ) -> EndpointSnapshot: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[Endpoint]: ...

class SmoothWeightedRoundRobin:
    """nginx's smooth weighted round robin over an EndpointSnapshot."""

    def __init__(self, snapshot: EndpointSnapshot | Iterable[Endpoint]) -> None: ...
    @property
    def snapshot(self) -> EndpointSnapshot: ...
    def pick(self, exclude: Container[str] | None = None) -> Endpoint:
        """Return the next endpoint, avoiding addresses in ``exclude`` if possible."""
    def update(self, snapshot: EndpointSnapshot | Iterable[Endpoint]) -> None:
        """Swap in a new list; surviving addresses keep their running weight."""
