"""Every exception type, with its attributes; wrong argument types and values."""

import pathlib

import pytest

import egress_gateway as egw

POLICY = {
    "apiVersion": "cilium.io/v2",
    "kind": "CiliumEgressGatewayPolicy",
    "metadata": {"name": "web"},
    "spec": {
        "selectors": [{"podSelector": {"matchLabels": {"app": "nginx"}}}],
        "destinationCIDRs": ["0.0.0.0/0"],
        "egressGateway": {"nodeSelector": {"matchLabels": {"egress-node": "true"}}},
    },
}


def test_the_hierarchy():
    for error in (egw.PolicyError, egw.SnapshotError, egw.CapacityError, egw.KernelError):
        assert issubclass(error, egw.EgressError)
    assert issubclass(egw.EgressError, Exception)


def test_a_policy_error_carries_every_field_error(examples):
    engine = egw.Engine.from_snapshot(examples / "seed-gateway-group.yaml")
    before = engine.maps_json()
    broken = {**POLICY, "metadata": {"name": "web"}, "spec": {"destinationCIDRs": ["10.0.0.0/99"], "bogus": 1}}
    with pytest.raises(egw.PolicyError) as caught:
        engine.upsert_policy(broken)
    err = caught.value
    assert err.policy == "web"
    assert len(err.errors) >= 3
    assert err.path == err.errors[0][0]
    paths = [p for p, _ in err.errors]
    assert "spec.destinationCIDRs[0]" in paths and "spec.bogus" in paths
    assert all(isinstance(r, str) and r for _, r in err.errors)
    assert engine.maps_json() == before, "a rejected update changes nothing"


def test_a_snapshot_error_names_its_paths():
    with pytest.raises(egw.SnapshotError) as caught:
        egw.Engine.from_snapshot("nodes: [{name: a, ipv4: fd00::1}]\nextra: 1\n")
    assert [p for p, _ in caught.value.errors] == ["extra", "nodes[0].ipv4"]
    assert caught.value.path == "extra" and caught.value.policy is None
    with pytest.raises(egw.SnapshotError) as caught:
        egw.Engine.from_snapshot("nodes: [")
    assert caught.value.path is None and caught.value.errors == []


def test_a_plan_over_capacity(examples):
    engine = egw.Engine.from_snapshot(examples / "seed-gateway-group.yaml", max_entries=3)
    with pytest.raises(egw.CapacityError) as caught:
        engine.take_plan()
    assert "cilium_egress_gw_policy_v4:" in str(caught.value)  # Cilium 1.18's legacy map
    assert caught.value.errors == [] and caught.value.path is None


def test_a_full_map_deletes_first_and_a_state_past_it_is_refused(examples):
    """Issue 21: at 10 of 10, moving a pod to a new address deletes its stale entry first
    (upserting first would need 11); a desired state past the capacity is refused."""
    engine = egw.Engine.from_snapshot(examples / "seed-gateway-group.yaml", max_entries=10)
    first = engine.take_plan()
    assert not first.deletes_first
    engine.ack(first, len(first))
    pod = {"uid": "5f48eab5-b251-555b-94c0-7481bd903033", "namespace": "default",
           "labels": {"app": "nginx"}, "node": "172.22.48.125", "ips": ["172.22.48.250"]}
    engine.upsert_endpoint(pod)
    plan = engine.take_plan()
    assert plan.deletes_first and (plan.upserts, plan.deletes) == (1, 1)
    assert [op.action for op in plan.ops] == ["delete", "upsert"]
    assert repr(plan) == "Plan(1 upserts, 1 deletes, deletes first)"
    engine.ack(plan, len(plan))
    engine.upsert_endpoint({**pod, "uid": "another", "ips": ["172.22.48.251"]})
    with pytest.raises(egw.CapacityError, match="the plan needs 11 entries, more than max_entries 10"):
        engine.take_plan()


def test_a_kernel_error_has_its_errno(tmp_path):
    if not egw.KERNEL:
        pytest.fail("this build has no kernel calls: build the wheel with --features bpf")
    with pytest.raises(egw.KernelError) as caught:
        egw.Maps("/sys/fs/bpf/no-such-dir-of-egress-gateway")
    assert caught.value.errno > 0
    with pytest.raises(ValueError):
        egw.Maps(tmp_path, create=True)  # not on a bpffs


def test_wrong_values_and_types(examples):
    with pytest.raises(ValueError, match="selection"):
        egw.Engine("n", selection="fastest")
    with pytest.raises(ValueError, match="layout"):
        egw.Engine("n", layout="v4_v2")
    with pytest.raises(ValueError, match="^local_node: Required value"):
        egw.Engine("")
    # One meaning of a capacity of 0 everywhere (the core's): refused; unset is 16384.
    with pytest.raises(ValueError, match="^max_entries: Invalid value: 0: a map holds at least 1"):
        egw.Engine("n", max_entries=0)
    with pytest.raises(ValueError, match="^max_entries: Invalid value: 0"):
        egw.Engine.from_snapshot(examples / "seed-gateway-group.yaml", max_entries=0)
    assert egw.Engine("n").stats()["max_entries"] == 16384
    with pytest.raises(ValueError, match="^cluster: Invalid value"):
        egw.Engine("n", cluster="")
    with pytest.raises(ValueError, match="local_node"):
        egw.Engine.from_snapshot(examples / "seed-gateway-group.yaml", local_node="nope")
    with pytest.raises(TypeError):
        egw.Engine.from_snapshot(42)
    engine = egw.Engine("n")
    with pytest.raises(ValueError, match="src"):
        engine.lookup("10.0.0.300", "1.1.1.1")
    with pytest.raises(TypeError, match="dst"):
        engine.lookup("10.0.0.1", 17)
    with pytest.raises(ValueError, match="queries"):
        engine.lookup_many(b"\x00" * 7)
    with pytest.raises(ValueError, match="family"):
        engine.lookup_many(b"", family=5)
    with pytest.raises(TypeError):
        engine.lookup_many(3.5)
    with pytest.raises(ValueError, match="UTF-8"):
        engine.upsert_policy(b"\xff\xfe")
    with pytest.raises(OSError):
        egw.Engine.from_snapshot(pathlib.Path("/no/such/snapshot.yaml"))
    plan = engine.take_plan()
    with pytest.raises(ValueError, match="applied"):
        engine.ack(plan, 1)


def test_input_errors_of_one_object(examples):
    engine = egw.Engine.from_snapshot(examples / "seed-gateway-group.yaml")
    with pytest.raises(egw.SnapshotError) as caught:
        engine.upsert_node({"name": "x", "ipv4": "fd00::1", "weight": 300})
    assert [p for p, _ in caught.value.errors] == ["ipv4", "weight"]
    with pytest.raises(egw.SnapshotError) as caught:
        engine.upsert_endpoint({"uid": "u", "ips": ["10.0.0.300"]})
    assert caught.value.path == "ips[0]"
    with pytest.raises(egw.SnapshotError):
        engine.apply("kind: CiliumNode\nmetadata: {}\n")


def test_user_made_exceptions_have_the_attributes():
    err = egw.PolicyError("made by hand")
    assert (err.path, list(err.errors), err.policy) == (None, [], None)
    assert egw.KernelError("x").errno == 0


def test_files_fail_as_python_does(tmp_path):
    with pytest.raises(FileNotFoundError):
        egw.Engine.from_snapshot(tmp_path / "missing.yaml")
    with pytest.raises(IsADirectoryError):
        egw.Engine.from_snapshot(tmp_path)
    (tmp_path / "latin1.yaml").write_bytes(b"localNode: \xe9\n")
    with pytest.raises(ValueError, match="UTF-8"):
        egw.Engine.from_snapshot(tmp_path / "latin1.yaml")
    snapshot = tmp_path / "s.yaml"
    snapshot.write_text("localNode: a\nnodes: [{name: a}]\n")
    with pytest.raises(egw.SnapshotError, match="pathlib.Path"):
        egw.Engine.from_snapshot(str(snapshot))


def test_a_plan_belongs_to_its_engine(examples):
    one = egw.Engine.from_snapshot(examples / "seed-gateway-group.yaml")
    other = egw.Engine.from_snapshot(examples / "seed-gateway-group.yaml")
    plan = one.take_plan()
    with pytest.raises(ValueError, match="another engine"):
        other.ack(plan)
    assert len(other.take_plan()) == len(plan), "nothing was recorded"
    one.ack(plan)
    with pytest.raises(ValueError, match="acknowledged already") as caught:
        one.ack(plan)  # once only (SEMANTICS B.8)
    assert str(caught.value).startswith("plan: Forbidden")
    assert not one.take_plan()


def test_only_the_last_plan_taken_is_acknowledged(examples):
    engine = egw.Engine.from_snapshot(examples / "seed-gateway-group.yaml")
    older = engine.take_plan()
    last = engine.take_plan()
    assert len(older) == len(last) == 10
    with pytest.raises(ValueError, match="older than the last plan taken"):
        engine.ack(older)
    with pytest.raises(ValueError, match=r"^applied: Invalid value: 11: more than the plan's 10"):
        engine.ack(last, 11)
    engine.ack(last, 4)
    rest = engine.take_plan()
    assert len(rest) == 6
    engine.adopt([])
    with pytest.raises(ValueError, match="adopted after plan"):
        engine.ack(rest)
    assert len(engine.take_plan()) == 10, "the adopted (empty) baseline, nothing recorded since"


def test_lookup_many_takes_bytes_only(examples):
    import array

    import numpy

    engine = egw.Engine.from_snapshot(examples / "seed-gateway-group.yaml")
    for wrong in (10**6, [1, 2, 3], range(8), numpy.zeros(2, dtype=numpy.float64),
                  numpy.array([0xAC163004, 0x08080808], dtype=numpy.uint32), array.array("I", [1, 2])):
        with pytest.raises(TypeError):
            engine.lookup_many(wrong)
    strided = numpy.zeros(16, dtype=numpy.uint8)[::2]
    with pytest.raises(TypeError, match="contiguous"):
        engine.lookup_many(strided)
