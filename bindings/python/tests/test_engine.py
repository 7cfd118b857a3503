"""Events, entries, lookups (single, and packed in every buffer type), explanations, plans,
and the engine shared between threads."""

import array
import ipaddress
import json
import struct
import subprocess
import threading

import numpy
import pytest

import egress_gateway as egw

RECORD = struct.Struct("<I4s16sI")


def seed(examples, **kw):
    return egw.Engine.from_snapshot(examples / "seed-gateway-group.yaml", **kw)


def test_entries_are_typed_immutable_values(examples):
    engine = egw.Engine.from_snapshot(examples / "dual-stack-excluded.yaml")
    entries = engine.entries()
    rows = json.loads(engine.maps_json())
    assert [e.to_dict() for e in entries] == rows["ipv4"] + rows["ipv6"]
    families = {type(e.source) for e in entries}
    assert families == {ipaddress.IPv4Address, ipaddress.IPv6Address}
    for e in entries:
        assert isinstance(e.destination, (ipaddress.IPv4Interface, ipaddress.IPv6Interface))
        assert str(e.destination) == e.to_dict()["destCIDR"]
        assert isinstance(e.gateway_ip, ipaddress.IPv4Address)
        with pytest.raises(AttributeError):
            e.egress_ifindex = 3
    assert entries[0] == engine.entries()[0] and hash(entries[0]) == hash(engine.entries()[0])


def test_lookups_answer_as_the_entries_say(examples):
    engine = seed(examples)
    masq = engine.lookup("172.22.48.4", "8.8.8.8")
    assert masq.kind == "masquerade"
    assert masq.egress_ip == ipaddress.IPv4Address("172.22.49.119")
    assert (masq.gateway_ip, masq.ifindex) == (None, 0)
    fwd = engine.lookup(ipaddress.ip_address("172.22.48.10"), ipaddress.ip_address("8.8.8.8"))
    assert (fwd.kind, fwd.gateway_ip, fwd.egress_ip) == ("forward", ipaddress.IPv4Address("172.22.49.147"), None)
    assert engine.lookup("10.9.9.9", "8.8.8.8").kind == "no_entry"
    assert fwd == engine.lookup("172.22.48.10", "1.1.1.1") and fwd != masq
    # Equal when they show the same: a miss is a miss in either family.
    v4_miss, v6_miss = engine.lookup("10.9.9.9", "8.8.8.8"), engine.lookup("fd00::9", "2001:db8::1")
    assert v4_miss == v6_miss and hash(v4_miss) == hash(v6_miss)
    assert fwd.to_dict() == {"kind": "forward", "gateway_ip": "172.22.49.147", "egress_ip": None, "ifindex": None}
    assert egw.VERDICT_KINDS[RECORD.unpack(engine.lookup_many(b"\xac\x16\x30\x04\x08\x08\x08\x08"))[0]] == "masquerade"


def test_addresses_given_as_values(examples):
    """SEMANTICS B.6: an IPv4-mapped address given as a value is the IPv4 address; a lookup
    of two families is an argument error; text keeps Cilium's reading."""
    engine = seed(examples)
    direct = engine.lookup("172.22.48.4", "8.8.8.8")
    assert engine.lookup("::ffff:172.22.48.4", "::ffff:8.8.8.8") == direct
    assert engine.lookup(ipaddress.ip_address("::ffff:172.22.48.4"), "8.8.8.8") == direct
    assert engine.lookup("::ffff:172.22.48.4", "8.8.8.8").egress_ip == ipaddress.IPv4Address("172.22.49.119")
    for src, dst in (("::1", "1.1.1.1"), ("172.22.48.4", "2001:db8::1")):
        with pytest.raises(ValueError, match=r"^dst: Invalid value: .* a lookup's source and destination are of one family"):
            engine.lookup(src, dst)
        with pytest.raises(ValueError, match="^dst: "):
            engine.explain(src, dst)
    assert engine.explain("::ffff:172.22.48.4", "8.8.8.8").to_dict() == engine.explain("172.22.48.4", "8.8.8.8").to_dict()
    # Packed IPv6 queries read alike: a mapped pair is IPv4; a pair of two families refuses.
    mapped = ipaddress.ip_address("::ffff:172.22.48.4").packed + ipaddress.ip_address("::ffff:8.8.8.8").packed
    assert RECORD.unpack(engine.lookup_many(mapped, family=6)) == RECORD.unpack(
        engine.lookup_many(b"\xac\x16\x30\x04\x08\x08\x08\x08"))
    two = ipaddress.ip_address("::ffff:172.22.48.4").packed + ipaddress.ip_address("2001:db8::1").packed
    with pytest.raises(ValueError, match=r"^queries\[1\]\.dst: Invalid value"):
        engine.lookup_many(mapped + two, family=6)
    # An endpoint's address as an ipaddress value is unmapped; as text it stays as Cilium
    # reads text (IPv6).
    pod = {"namespace": "default", "labels": {"app": "nginx"}, "node": "172.22.48.48"}
    engine.upsert_endpoint({**pod, "uid": "value", "ips": [ipaddress.ip_address("::ffff:172.22.48.201")]})
    engine.upsert_endpoint({**pod, "uid": "text", "ips": ["::ffff:172.22.48.202"]})
    sources = {e.source for e in engine.entries()}
    assert ipaddress.IPv4Address("172.22.48.201") in sources
    assert ipaddress.IPv6Address("::ffff:172.22.48.202") in sources


def test_pods_say_what_egressctl_pods_says(examples, egressctl):
    """Engine.pods(): per endpoint and policy, the gateway node (and the egress IP where this
    node is the gateway), as `egressctl pods` shows for the same node."""
    snapshot = examples / "seed-gateway-group.yaml"
    out = subprocess.run([str(egressctl), "pods", "-f", str(snapshot)], check=True,
                         capture_output=True, text=True).stdout.splitlines()[1:]
    shown = {}
    for line in out:
        _pod, ip, policy, gateway, egress, _public = line.split()
        shown[(ipaddress.ip_address(ip), policy)] = (gateway, egress)
    engine = seed(examples)
    rows = engine.pods()
    assert len(rows) == len(shown) == 10
    local = engine.local_node
    for row in rows:
        (ip,) = row["ips"]
        gateway, egress = shown[(ip, row["policy"])]
        assert row["namespace"] == "default" and row["uid"]
        assert row["gateway_node"] == gateway and str(row["gateway_ip"]) == gateway
        if gateway == local:
            assert str(row["egress_ipv4"]) == egress
        else:
            assert row["egress_ipv4"] is None, "derived on its own gateway, not here"
    assert rows == sorted(rows, key=lambda r: (r["namespace"], r["uid"], r["policy"]))


def queries_of(engine):
    """Every entry's source to an address inside and one outside its destination."""
    pairs = []
    for e in engine.entries():
        net = e.destination.network
        pairs.append((e.source, net.network_address))
        pairs.append((e.source, net.broadcast_address))
        pairs.append((e.source, ipaddress.ip_address("8.8.8.8" if e.source.version == 4 else "2001:4860::8888")))
    pairs.append((ipaddress.ip_address("10.200.0.1"), ipaddress.ip_address("8.8.8.8")))
    return pairs


def record_of(verdict: "egw.Verdict", v4: bool):
    egress = verdict.egress_ip.packed if verdict.egress_ip else b""
    return (
        egw.VERDICT_KINDS.index(verdict.kind),
        verdict.gateway_ip.packed if verdict.gateway_ip else bytes(4),
        egress + bytes(16 - len(egress)),
        verdict.ifindex or 0,
    )


@pytest.mark.parametrize("example", ["dual-stack-excluded.yaml", "selectors-and-conflicts.yaml"])
def test_lookup_many_over_every_buffer_type_equals_lookup(examples, example):
    engine = egw.Engine.from_snapshot(examples / example)
    pairs = queries_of(engine)
    kinds = set()
    families = {s.version for s, _ in pairs}
    assert 4 in families and (example != "dual-stack-excluded.yaml" or 6 in families)
    for family in sorted(families):
        mine = [(s, d) for s, d in pairs if s.version == family and d.version == family]
        packed = b"".join(s.packed + d.packed for s, d in mine)
        want = [record_of(engine.lookup(s, d), family == 4) for s, d in mine]
        kinds.update(w[0] for w in want)
        for buffer in (packed, bytearray(packed), memoryview(packed), array.array("B", packed),
                       numpy.frombuffer(packed, dtype=numpy.uint8)):
            out = engine.lookup_many(buffer, family=family)
            assert len(out) == RECORD.size * len(mine)
            assert [RECORD.unpack_from(out, i * RECORD.size) for i in range(len(mine))] == want
    assert len(kinds) >= 3, kinds


def test_explain_is_egressctls_document(examples, egressctl):
    snapshot = examples / "selectors-and-conflicts.yaml"
    engine = egw.Engine.from_snapshot(snapshot)
    for src, dst in (("172.22.48.10", "1.2.3.4"), ("172.22.48.4", "8.8.8.8"), ("10.1.1.1", "8.8.8.8")):
        x = engine.explain(src, dst)
        cli = subprocess.run(
            [egressctl, "explain", "-f", snapshot, "--src", src, "--dst", dst, "-o", "json"],
            check=True, capture_output=True, text=True,
        ).stdout
        assert x.to_dict() == json.loads(cli)
        assert (x.source, x.destination, x.source_entries) == (src, dst, x.to_dict()["sourceEntries"])
        assert x.verdict == engine.lookup(src, dst)
        assert x.match == x.to_dict()["match"]


def test_events_plans_acks_and_adoption(examples):
    engine = seed(examples)
    plan = engine.take_plan()
    assert (len(plan), plan.upserts, plan.deletes, bool(plan)) == (10, 10, 0, True)
    op = plan.ops[0]
    # Cilium 1.18 (the default): the legacy IPv4 map, 8-byte values.
    assert (op.map, op.action, len(op.key), len(op.value)) == ("cilium_egress_gw_policy_v4", "upsert", 12, 8)
    assert op.entry == engine.entries()[0]
    engine.ack(plan, 4)
    assert len(engine.take_plan()) == 6
    engine.ack(engine.take_plan())
    assert not engine.take_plan()

    # A CNI ADD, as a dict; the plan holds exactly its entry.
    engine.upsert_endpoint({"uid": "new", "namespace": "default", "labels": {"app": "nginx"},
                            "namespaceLabels": {"kubernetes.io/metadata.name": "default"},
                            "ips": ["172.22.48.99"], "node": "172.22.48.125"})
    plan = engine.take_plan()
    assert [str(o.entry.source) for o in plan.ops] == ["172.22.48.99"]
    engine.ack(plan)
    assert engine.delete_endpoint("new") and not engine.delete_endpoint("new")
    deletes = engine.take_plan()
    assert [o.action for o in deletes.ops] == ["delete"] and deletes.ops[0].value == b""

    # A restarted engine adopting what is programmed (any iterable) writes nothing.
    restarted = seed(examples)
    restarted.adopt(e for e in seed(examples).entries())
    assert not restarted.take_plan()
    stats = restarted.stats()
    assert (stats["desired_v4"], stats["programmed_v4"], stats["pending_sources"]) == (10, 10, 0)


def test_apply_a_dump_and_a_new_policy(examples):
    dump = (examples / "dumps" / "tke-dump.yaml").read_text()
    engine = egw.Engine("172.22.49.119")
    applied = engine.apply(dump)
    assert applied["nodes"] > 0 and applied["endpoints"] > 0 and applied["policies"] > 0
    extra = """apiVersion: cilium.io/v2
kind: CiliumEgressGatewayPolicy
metadata: {name: broken}
spec: {destinationCIDRs: [1.2.3.0/99]}
"""
    applied = engine.apply(extra)
    assert applied["policies"] == 0
    [invalid] = applied["invalid_policies"]
    assert isinstance(invalid, egw.PolicyError) and invalid.policy == "broken"
    # A list of objects, and an empty relist, are accepted too.
    assert engine.apply([yaml_node := {"apiVersion": "cilium.io/v2", "kind": "CiliumNode",
                                       "metadata": {"name": "late"}, "spec": {}}])["nodes"] == 1
    assert yaml_node["metadata"]["name"] == "late"
    assert engine.apply({"kind": "List", "items": []})["nodes"] == 0
    assert engine.delete_node("late")
    # The same cluster from the dump as a snapshot gives the same maps.
    loaded = egw.Engine.from_snapshot(dump, local_node="172.22.49.119")
    assert engine.maps_json() == loaded.maps_json()


def test_nodes_namespaces_devices_and_deletes(examples):
    engine = egw.Engine.from_snapshot(examples / "seed-namespace-and-label.yaml")
    prod = [e for e in engine.entries() if str(e.source).startswith("172.22.48.")]
    assert prod
    engine.upsert_node({"name": "extra", "ipv4": "192.0.2.1"})
    stats = engine.stats()
    assert stats["nodes"] == 6
    assert (stats["max_entries"], stats["max_entries_v6"]) == (16384, 16384)
    assert engine.delete_node("extra") and not engine.delete_node("extra")
    # The gateway's devices decide its egress IPs and ifindex (dual-stack-excluded: the policy
    # names interface eth0, whose first addresses are the egress IPs; Cilium 1.20 stores the
    # ifindex in both maps, 1.18 derives none).
    assert {e.egress_ifindex for e in egw.Engine.from_snapshot(examples / "dual-stack-excluded.yaml").entries()} == {0}
    gateway = egw.Engine.from_snapshot(examples / "dual-stack-excluded.yaml", cilium_version="1.20")
    gateway.set_devices([])
    assert {str(e.egress_ip) for e in gateway.entries()} == {"0.0.0.0", "::"}
    gateway.set_devices([{"name": "eth0", "index": 7, "defaultRoute": True,
                          "addresses": ["172.22.49.119/20", "2402:4e00:1::3/64"]}])
    masq = [e for e in gateway.entries() if str(e.egress_ip) not in ("0.0.0.0", "::")]
    assert {e.source.version for e in masq} == {4, 6}
    assert {e.egress_ifindex for e in masq} == {7}
    # Relabelling namespace prod keeps its pods: the policy selects by the namespace's name.
    before = len(engine.entries())
    engine.upsert_namespace({"kind": "Namespace", "metadata": {"name": "prod", "labels": {"team": "x"}}})
    assert len(engine.entries()) == before
    assert engine.delete_policy("egress-prod") and not engine.delete_policy("egress-prod")
    assert engine.delete_policy("egress-mall")
    assert engine.entries() == [] and engine.maps_json() == '{\n "ipv4": [],\n "ipv6": []\n}\n'


def test_node_health_is_the_snapshot_saying_so(examples):
    """set_node_health gives the entries of the snapshot with ready/weight written in it
    (consistent mode), keeps compat mode's, and refuses a bad weight naming it."""
    path = examples / "egress-pool-consistent.yaml"
    text = path.read_text()
    said = text.replace("- name: 172.22.49.147\n", "- name: 172.22.49.147\n  ready: false\n", 1)
    assert said != text
    for selection in ("consistent", "cilium"):
        engine = egw.Engine.from_snapshot(path, selection=selection)
        before = engine.entries()
        assert engine.set_node_health("172.22.49.147", ready=False)
        want = egw.Engine.from_snapshot(said.encode(), selection=selection).entries()
        assert engine.entries() == want
        assert (engine.entries() != before) == (selection == "consistent")
        watched = engine.gateway_nodes()
        assert [n["name"] for n in watched] == ["172.22.49.119", "172.22.49.147", "172.22.49.20"]
        assert [n["ready"] for n in watched] == [True, False, True]
        for weight in (-1, 101):
            with pytest.raises(egw.EgressError) as refused:
                engine.set_node_health("172.22.49.147", weight=weight)
            assert refused.value.path == "weight"
        assert not engine.set_node_health("no-such-node", ready=False)
        assert engine.set_node_health("172.22.49.147")
        assert engine.entries() == before


def test_one_engine_shared_by_threads(examples):
    """Lookups from several threads while another thread upserts and deletes endpoints."""
    engine = seed(examples)
    pinned = engine.lookup("172.22.48.4", "8.8.8.8")
    errors = []
    stop = threading.Event()

    def look():
        try:
            packed = b"\xac\x16\x30\x04\x08\x08\x08\x08" * 64
            while not stop.is_set():
                assert engine.lookup("172.22.48.4", "8.8.8.8") == pinned
                out = engine.lookup_many(packed)
                assert out[:28] == out[-28:]
                engine.maps_json()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    def churn():
        try:
            for i in range(300):
                engine.upsert_endpoint({"uid": f"churn-{i}", "namespace": "default",
                                        "labels": {"app": "nginx"},
                                        "ips": [f"10.77.{i // 250}.{i % 250 + 1}"]})
                if i % 3 == 0:
                    engine.delete_endpoint(f"churn-{i}")
                engine.ack(engine.take_plan())
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    readers = [threading.Thread(target=look) for _ in range(4)]
    writer = threading.Thread(target=churn)
    for t in readers + [writer]:
        t.start()
    writer.join()
    stop.set()
    for t in readers:
        t.join()
    assert not errors, errors
    assert engine.stats()["endpoints"] == 10 + 200
    assert not engine.take_plan()


def record_skip(test, why):
    """Records that the kernel test `test` skips, and why, as one line `python TEST: WHY`
    appended (O_APPEND) to the file EGRESS_SKIP_LOG names, when it is set (the test command
    counts the lines)."""
    import os

    log = os.environ.get("EGRESS_SKIP_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(f"python {test}: {' '.join(why.split())}\n")


@pytest.fixture
def bpffs(tmp_path, request):
    """A private bpffs (root only): skipped with the reason, or failed under EGRESS_REQUIRE_BPF=1."""
    import os

    where = tmp_path / "bpffs"
    where.mkdir()
    mounted = subprocess.run(["mount", "-t", "bpf", "bpf", str(where)], capture_output=True, text=True)
    if mounted.returncode != 0:
        why = f"mount -t bpf failed: {mounted.stderr.strip()}"
        if os.environ.get("EGRESS_REQUIRE_BPF") == "1":
            pytest.fail(f"BPF is required (EGRESS_REQUIRE_BPF=1): {why}")
        record_skip(request.node.name, why)
        pytest.skip(why)
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


def test_the_kernel_maps_are_programmed_dumped_and_adopted(examples, bpffs):
    assert egw.KERNEL, "the wheel must be built with --features bpf"
    engine = seed(examples)
    with pytest.raises(ValueError, match="^max_entries: Invalid value: 0"):
        egw.Maps(bpffs, create=True, max_entries=0)
    maps = egw.Maps(bpffs, create=True)  # the legacy IPv4 map: Cilium 1.18's, the default
    assert maps.program(engine) == 10
    assert maps.program(engine) == 0
    assert maps.dump() == engine.entries()
    restarted = seed(examples)
    restarted.adopt(egw.Maps(bpffs).dump())
    assert not restarted.take_plan()
    # The whole cycle under the writer lock: an engine of an empty cluster reads the maps as
    # its baseline and deletes their 10 entries; the seed's engine writes them again.
    bare = egw.Engine.from_snapshot("localNode: n\nnodes: [{name: n, ipv4: 10.0.0.1}]\n")
    assert maps.reconcile(bare) == (10, 0)
    assert maps.dump() == []
    cycled = seed(examples)
    assert maps.reconcile(cycled) == (10, 0)
    assert maps.reconcile(cycled) == (0, 0)
    assert maps.dump() == engine.entries()
    with pytest.raises(ValueError):
        egw.Maps(bpffs, layout="v4v2", create=True).program(seed(examples))
    # Cilium 1.20: the legacy map and _v4_v2, every IPv4 entry in both.
    v120 = egw.Engine.from_snapshot(examples / "seed-gateway-group.yaml", cilium_version="1.20")
    dual = egw.Maps(bpffs, layout="dual", create=True)
    assert dual.program(v120) == 20
    assert dual.dump() == v120.entries()
    # A restarted 1.20 agent adopts both IPv4 maps: nothing to write.
    again = egw.Engine.from_snapshot(examples / "seed-gateway-group.yaml", cilium_version="1.20")
    dual.adopt(again)
    assert not again.take_plan()
    # The legacy map alone rewritten by 1.18's engine: its 5 entries of pods on the local
    # gateway hold egress IP 172.22.49.119 there (1.20: 0.0.0.0, cilium#48660). The 1.20
    # agent that adopts both maps writes those 5 keys again, to both maps.
    assert egw.Maps(bpffs, layout="legacy").program(seed(examples)) == 10
    stale = egw.Engine.from_snapshot(examples / "seed-gateway-group.yaml", cilium_version="1.20")
    dual.adopt(stale)
    plan = stale.take_plan()
    assert len(plan) == 10
    assert {op.map for op in plan.ops} == {"cilium_egress_gw_policy_v4", "cilium_egress_gw_policy_v4_v2"}



def test_the_compact_layout_is_programmed_dumped_and_adopted(examples, bpffs):
    # Ours, not Cilium's: endpoint -> set hashes and (set, destination) rule tries. The same
    # entries read back (each endpoint joined with its set's rules); a restart writes nothing.
    snapshot = examples / "seed-gateway-group.yaml"
    engine = egw.Engine.from_snapshot(snapshot, layout="compact")
    assert engine.layout == "compact"
    plan = engine.take_plan()
    assert {op.map for op in plan.ops} <= {
        "egress_gw_compact_endpoints_v4", "egress_gw_compact_endpoints_v6",
        "egress_gw_compact_rules_v4", "egress_gw_compact_rules_v6",
    }
    assert all(op.entry is None and ("set" in op.subject) for op in plan.ops)
    maps = egw.Maps(bpffs, layout="compact", create=True)
    assert maps.program(engine) == len(plan)
    assert maps.dump() == engine.entries()
    restarted = egw.Engine.from_snapshot(snapshot, layout="compact")
    # Entries do not say the maps' set ids: refused, naming them; the maps adopt themselves.
    with pytest.raises(ValueError, match="^entries: Forbidden: the compact layout"):
        restarted.adopt(maps.dump())
    maps.adopt(restarted)
    assert not restarted.take_plan()


def test_each_cilium_versions_layout():
    # The same answer as C's egress_cilium_version_layout and Go's CiliumVersion.Layout.
    assert [egw.cilium_version_layout(v) for v in ("1.18", "1.19", "1.20")] == ["legacy", "legacy", "dual"]
    assert egw.cilium_version_layout("1.20") == egw.Engine("n", cilium_version="1.20").layout
    with pytest.raises(ValueError, match="1.21"):
        egw.cilium_version_layout("1.21")
