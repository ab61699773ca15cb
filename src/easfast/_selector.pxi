# Endpoints, immutable endpoint snapshots and the smooth weighted round robin.

from cpython.mem cimport PyMem_Free, PyMem_Malloc

# Largest weight accepted; keeps every running sum far from int64 overflow.
cdef long long _MAX_WEIGHT = 1 << 31


# ---------------------------------------------------------------- Endpoint --

@cython.final
cdef class Endpoint:
    """One service instance: host, port and weight, immutable."""

    cdef:
        readonly str host
        readonly int port
        readonly long long weight
        readonly str address

    def __init__(self, host, port, weight=100):
        if not isinstance(host, str) or not host:
            raise ValueError(f"endpoint host must be a non-empty str, got {host!r}")
        if isinstance(port, bool) or not isinstance(port, int):
            raise ValueError(f"endpoint port must be an int, got {port!r}")
        if not 0 < port < 65536:
            raise ValueError(f"endpoint port {port} is outside 1..65535")
        if isinstance(weight, bool) or not isinstance(weight, int):
            raise ValueError(f"endpoint weight must be an int, got {weight!r}")
        if not 0 <= weight <= _MAX_WEIGHT:
            raise ValueError(
                f"endpoint weight {weight} for {host}:{port} is outside "
                f"0..{_MAX_WEIGHT}"
            )
        self.host = host
        self.port = port
        self.weight = weight
        if ":" in host and not host.startswith("["):
            self.address = f"[{host}]:{port}"
        else:
            self.address = f"{host}:{port}"

    def __repr__(self):
        return f"Endpoint({self.host!r}, {self.port}, weight={self.weight})"

    def __eq__(self, other):
        if not isinstance(other, Endpoint):
            return NotImplemented
        cdef Endpoint o = other
        return (
            self.host == o.host and self.port == o.port and self.weight == o.weight
        )

    def __hash__(self):
        return hash((self.host, self.port, self.weight))

    def __reduce__(self):
        return (Endpoint, (self.host, self.port, self.weight))


# -------------------------------------------------------- EndpointSnapshot --

@cython.final
cdef class EndpointSnapshot:
    """An immutable list of endpoints that discovery swaps in as a whole.

    An empty list, or one whose weights are all zero, raises
    ``NoEndpointsError`` here, so a selector never holds such a list. Two
    entries for the same address are merged by adding their weights.
    """

    cdef:
        readonly tuple endpoints
        readonly long long total_weight

    def __init__(self, endpoints):
        cdef dict merged = {}
        cdef Endpoint ep
        cdef long long total = 0

        for item in endpoints:
            if not isinstance(item, Endpoint):
                raise TypeError(
                    f"EndpointSnapshot takes Endpoint objects, got {item!r}"
                )
            ep = item
            previous = merged.get(ep.address)
            if previous is not None:
                ep = Endpoint(ep.host, ep.port,
                              (<Endpoint>previous).weight + ep.weight)
            merged[ep.address] = ep
            total += (<Endpoint>item).weight

        if not merged:
            raise NoEndpointsError("the endpoint list is empty")
        if total == 0:
            raise NoEndpointsError(
                "every endpoint has weight 0, so none can be picked: "
                + ", ".join(merged)
            )
        self.endpoints = tuple(merged.values())
        self.total_weight = total

    @classmethod
    def from_tuples(cls, items):
        """Build a snapshot from ``(host, port, weight)`` tuples."""
        return cls([Endpoint(*item) for item in items])

    def __len__(self):
        return len(self.endpoints)

    def __iter__(self):
        return iter(self.endpoints)

    def __eq__(self, other):
        if not isinstance(other, EndpointSnapshot):
            return NotImplemented
        return (
            sorted(self.endpoints, key=_endpoint_key)
            == sorted((<EndpointSnapshot>other).endpoints, key=_endpoint_key)
        )

    def __hash__(self):
        return hash(frozenset(self.endpoints))

    def __repr__(self):
        return f"EndpointSnapshot({list(self.endpoints)!r})"


def _endpoint_key(Endpoint ep):
    return (ep.address, ep.weight)


# ------------------------------------------------------ _SelectorState --

@cython.final
cdef class _SelectorState:
    # One snapshot plus the running weight of each of its endpoints. A
    # selector replaces its state object in one assignment, so a pick sees
    # either the old list or the new one, never a mix.
    cdef:
        EndpointSnapshot snapshot
        tuple endpoints
        Py_ssize_t count
        long long total
        long long *weights
        long long *current

    def __cinit__(self, EndpointSnapshot snapshot):
        cdef Py_ssize_t i
        cdef Endpoint ep

        self.snapshot = snapshot
        self.endpoints = snapshot.endpoints
        self.count = len(self.endpoints)
        self.total = snapshot.total_weight
        self.weights = <long long *>PyMem_Malloc(self.count * sizeof(long long))
        self.current = <long long *>PyMem_Malloc(self.count * sizeof(long long))
        if self.weights == NULL or self.current == NULL:
            raise MemoryError()
        for i in range(self.count):
            ep = self.endpoints[i]
            self.weights[i] = ep.weight
            self.current[i] = 0

    def __dealloc__(self):
        PyMem_Free(self.weights)
        PyMem_Free(self.current)


# ------------------------------------------------- SmoothWeightedRoundRobin --

@cython.final
cdef class SmoothWeightedRoundRobin:
    """Pick endpoints in proportion to their weights, spread evenly.

    This is the smooth weighted round robin of nginx's upstream module. Each
    endpoint keeps a running weight ``current``. On every pick, each
    candidate's ``current`` grows by its own weight; the candidate with the
    largest ``current`` wins and gives back the sum of the candidates'
    weights. Over any run of ``total_weight`` picks with no exclusions each
    endpoint is chosen exactly ``weight`` times, and the choices interleave:
    weights 5, 1, 1 give A A B A C A A rather than five As in a row.

    ``pick(exclude)`` leaves out the addresses in ``exclude`` (the instances
    a call has already tried) while any other endpoint with a positive
    weight remains, and falls back to the whole list otherwise. Endpoints of
    weight 0 are never picked.

    ``update(snapshot)`` swaps in a new list. Endpoints whose address stays
    keep their running weight, so a refresh that changes nothing does not
    restart the cycle. A pick never waits for an update: both run with the
    GIL held and without calling back into Python code, so each one is
    atomic with respect to the other.
    """

    cdef:
        _SelectorState _state

    def __init__(self, snapshot):
        if not isinstance(snapshot, EndpointSnapshot):
            snapshot = EndpointSnapshot(snapshot)
        self._state = _SelectorState(snapshot)

    cdef Py_ssize_t _next_index(self, _SelectorState state, object exclude):
        cdef Py_ssize_t i, best = -1
        cdef long long total = 0
        cdef long long *current = state.current
        cdef long long *weights = state.weights

        for i in range(state.count):
            if weights[i] == 0:
                continue
            if exclude is not None and (
                (<Endpoint>state.endpoints[i]).address in exclude
            ):
                continue
            current[i] += weights[i]
            total += weights[i]
            if best < 0 or current[i] > current[best]:
                best = i
        if best >= 0:
            current[best] -= total
        return best

    # -- public API --

    @property
    def snapshot(self):
        """The ``EndpointSnapshot`` picks are made from."""
        return self._state.snapshot

    def pick(self, exclude=None):
        """Return the next ``Endpoint``, avoiding addresses in ``exclude``."""
        cdef _SelectorState state = self._state
        cdef Py_ssize_t index = -1

        if exclude:
            index = self._next_index(state, exclude)
        if index < 0:
            index = self._next_index(state, None)
        return state.endpoints[index]

    def update(self, snapshot):
        """Replace the endpoint list, keeping the running weight of survivors."""
        if not isinstance(snapshot, EndpointSnapshot):
            snapshot = EndpointSnapshot(snapshot)

        cdef _SelectorState old = self._state
        cdef _SelectorState new = _SelectorState(snapshot)
        cdef dict old_index = {}
        cdef Py_ssize_t i

        for i in range(old.count):
            old_index[(<Endpoint>old.endpoints[i]).address] = i
        for i in range(new.count):
            j = old_index.get((<Endpoint>new.endpoints[i]).address)
            if j is not None:
                new.current[i] = old.current[<Py_ssize_t>j]
        self._state = new

    def __repr__(self):
        return f"SmoothWeightedRoundRobin({list(self._state.endpoints)!r})"
