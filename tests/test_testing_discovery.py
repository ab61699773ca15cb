"""The simulated discovery server: both URL forms, list changes and faults."""

from __future__ import annotations

import http.client
import json
import socket

import pytest

from easfast.testing import UPSTREAM_PREFIXES, Fault
from easfast.testing._faults import MALFORMED_BODY

SDK_FORM = "/api/v1/servicediscovery/upstreams/"
DOCUMENTED_FORM = "/exported/apis/eas.alibaba-inc.k8s.io/v1/upstreams/"


def get(address: str, path: str, timeout: float = 10.0, method: str = "GET"):
    """Send one request on a fresh connection; return (status, body, headers)."""
    host, port = address.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, path)
        response = conn.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        conn.close()


def listed(eas, form: str = SDK_FORM) -> list[tuple[str, int, int]]:
    status, body, _ = get(eas.endpoint, form + eas.service_name.split("/")[0])
    assert status == 200
    items = json.loads(body)["endpoints"]["items"]
    return [(item["ip"], item["port"], item["weight"]) for item in items]


@pytest.fixture
def eas(local_eas):
    return local_eas(instances=3, weights=[5, 1, 0], processor="string")


class TestUpstreamList:
    @pytest.mark.parametrize(
        "form", [SDK_FORM, DOCUMENTED_FORM], ids=["sdk", "documented"]
    )
    def test_lists_every_instance_with_weight(self, eas, form):
        status, body, headers = get(eas.endpoint, form + "mnist")
        assert status == 200
        assert headers["Content-Type"] == "application/json"
        document = json.loads(body)
        assert document["correlative"] == []
        assert document["endpoints"]["items"] == [
            {"app": "mnist", "ip": "127.0.0.1", "port": instance.port, "weight": weight}
            for instance, weight in zip(eas.instances, [5, 1, 0])
        ]

    def test_prefixes_are_exported(self):
        assert UPSTREAM_PREFIXES == (SDK_FORM, DOCUMENTED_FORM)

    def test_internal_query_is_accepted(self, eas):
        status, _, _ = get(eas.endpoint, SDK_FORM + "mnist?internal=true")
        assert status == 200
        assert eas.discovery.last_target == SDK_FORM + "mnist?internal=true"
        assert eas.discovery.request_count == 1

    def test_service_with_version_is_listed_by_first_part(self, local_eas):
        eas = local_eas(instances=1, service_name="bert/v2", processor="string")
        assert eas.discovery.upstream_name == "bert"
        assert listed(eas) == [("127.0.0.1", eas.instances[0].port, 100)]
        assert eas.predict_url.endswith("/api/predict/bert/v2")

    def test_unknown_service_gets_404_text(self, eas):
        status, body, headers = get(eas.endpoint, SDK_FORM + "other")
        assert status == 404
        assert headers["Content-Type"].startswith("text/plain")
        assert b"service 'other' not found" in body

    def test_other_path_gets_404(self, eas):
        status, body, _ = get(eas.endpoint, "/api/predict/mnist")
        assert status == 404
        assert SDK_FORM.encode() in body
        assert eas.discovery.request_count == 0

    def test_post_gets_405(self, eas):
        status, _, headers = get(eas.endpoint, SDK_FORM + "mnist", method="POST")
        assert status == 405
        assert headers["Allow"] == "GET"


class TestListChanges:
    def test_added_instance_is_listed(self, eas):
        instance = eas.add_instance(weight=3)
        assert listed(eas)[-1] == ("127.0.0.1", instance.port, 3)
        assert len(listed(eas)) == 4

    def test_removed_instance_is_unlisted(self, eas):
        removed = eas.instances[0]
        eas.remove_instance(removed)
        ports = [port for _, port, _ in listed(eas)]
        assert removed.port not in ports
        assert len(ports) == 2

    def test_new_weight_is_listed(self, eas):
        eas.set_weight(eas.instances[2], 9)
        assert listed(eas)[2][2] == 9
        assert eas.instances[2].weight == 9

    def test_set_weight_rejects_negative(self, eas):
        with pytest.raises(ValueError, match="weight must be an int >= 0"):
            eas.set_weight(eas.instances[0], -3)

    def test_advertised_addresses_follow_instances(self, eas):
        eas.advertise([("127.0.0.1", 1, 100), ("127.0.0.2", 2, 7)])
        items = listed(eas)
        assert items[3:] == [("127.0.0.1", 1, 100), ("127.0.0.2", 2, 7)]
        eas.advertise([])
        assert len(listed(eas)) == 3

    @pytest.mark.parametrize(
        ("extra", "error"),
        [
            ([("127.0.0.1", 1)], TypeError),
            ([(1, 1, 1)], TypeError),
            ([("127.0.0.1", 1, -1)], ValueError),
            (["127.0.0.1:1"], TypeError),
        ],
        ids=["short", "ip-type", "weight", "string"],
    )
    def test_advertise_rejects_bad_item(self, eas, extra, error):
        with pytest.raises(error):
            eas.advertise(extra)
        assert len(listed(eas)) == 3

    def test_dead_instance_stays_listed(self, eas):
        eas.instances[1].set_fault(Fault.dead())
        assert len(listed(eas)) == 3


class TestDiscoveryFaults:
    def test_down_refuses_then_serves_on_same_port(self, eas):
        port = eas.discovery.port
        eas.discovery.set_fault(Fault.down())
        with pytest.raises(ConnectionRefusedError):
            get(eas.endpoint, SDK_FORM + "mnist")
        eas.discovery.set_fault(None)
        assert eas.discovery.port == port
        assert len(listed(eas)) == 3

    def test_empty_lists_no_item(self, eas):
        eas.discovery.set_fault(Fault.empty(times=1))
        status, body, _ = get(eas.endpoint, SDK_FORM + "mnist")
        assert status == 200
        assert json.loads(body) == {"correlative": [], "endpoints": {"items": []}}
        assert len(listed(eas)) == 3

    def test_malformed_is_not_json(self, eas):
        eas.discovery.set_fault(Fault.malformed())
        status, body, _ = get(eas.endpoint, DOCUMENTED_FORM + "mnist")
        assert status == 200
        assert body == MALFORMED_BODY
        with pytest.raises(json.JSONDecodeError):
            json.loads(body)

    def test_malformed_custom_body(self, eas):
        wrong_shape = b'{"endpoints": {"items": [{"ip": "127.0.0.1", "port": "x"}]}}'
        eas.discovery.set_fault(Fault.malformed(wrong_shape))
        assert get(eas.endpoint, SDK_FORM + "mnist")[1] == wrong_shape

    def test_hang_times_out_short_client(self, eas):
        eas.discovery.set_fault(Fault.hang(30))
        with pytest.raises(socket.timeout):
            get(eas.endpoint, SDK_FORM + "mnist", timeout=0.3)

    def test_status_then_healthy(self, eas):
        eas.discovery.set_fault(Fault.status(500, times=1))
        status, body, _ = get(eas.endpoint, SDK_FORM + "mnist")
        assert status == 500
        assert b"simulated fault: status 500 from discovery server" in body
        assert len(listed(eas)) == 3
        assert eas.discovery.request_count == 2

    def test_reset_is_seen(self, eas):
        eas.discovery.set_fault(Fault.reset())
        with pytest.raises(ConnectionResetError):
            get(eas.endpoint, SDK_FORM + "mnist")

    def test_rejects_instance_only_fault(self, eas):
        with pytest.raises(ValueError, match="cannot show a 'garbage' fault"):
            eas.discovery.set_fault(Fault.garbage())
