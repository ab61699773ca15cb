"""Plain-Python reference of the smooth weighted round robin, for tests.

It follows nginx's description of the algorithm line by line, so the
compiled selector can be checked against something obviously correct.
"""

from __future__ import annotations

from collections.abc import Container, Sequence


class ReferenceRoundRobin:
    """Smooth weighted round robin over ``(address, weight)`` pairs."""

    def __init__(self, items: Sequence[tuple[str, int]]):
        if not items or not any(weight for _, weight in items):
            raise ValueError("no endpoint with a positive weight")
        self.items = list(items)
        self.current = {address: 0 for address, _ in items}

    def pick(self, exclude: Container[str] = ()) -> str:
        chosen = self._pick(exclude)
        if chosen is None:
            chosen = self._pick(())
        assert chosen is not None
        return chosen

    def _pick(self, exclude: Container[str]) -> str | None:
        best = None
        total = 0
        for address, weight in self.items:
            if weight == 0 or address in exclude:
                continue
            self.current[address] += weight
            total += weight
            if best is None or self.current[address] > self.current[best]:
                best = address
        if best is not None:
            self.current[best] -= total
        return best

    def update(self, items: Sequence[tuple[str, int]]) -> None:
        kept = {a: self.current.get(a, 0) for a, _ in items}
        self.items = list(items)
        self.current = kept
