"""The conformance surface: every shared example gives the maps `egressctl list -o json`
prints (the *.expected.json files), in both modes, from every kind of input."""

import json
import pathlib

import pytest
import yaml

import egress_gateway as egw

from conftest import EXAMPLES as EXAMPLES_DIR

EXAMPLES = sorted(EXAMPLES_DIR.glob("*.yaml"))


def expected(example: pathlib.Path, selection: str) -> "str | None":
    suffix = ".expected.json" if selection == "cilium" else ".consistent.expected.json"
    path = example.with_name(example.stem + suffix)
    return path.read_text() if path.exists() else None


def test_the_examples_are_there():
    assert len(EXAMPLES) >= 6


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
@pytest.mark.parametrize("selection", ["cilium", "consistent"])
def test_every_example_gives_the_expected_maps(example, selection):
    want = expected(example, selection)
    engine = egw.Engine.from_snapshot(example, selection=selection)
    assert engine.selection == selection
    if want is None:
        # No expected file for this mode: the maps still parse as the documented shape.
        doc = json.loads(engine.maps_json())
        assert set(doc) == {"ipv4", "ipv6"}
    else:
        assert engine.maps_json() == want


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
@pytest.mark.parametrize("selection", ["cilium", "consistent"])
@pytest.mark.parametrize("version", ["1.18", "1.19", "1.20"])
def test_every_example_on_every_cilium_version(example, selection, version):
    """cilium_version= gives that version's expected maps (*.cilium-1.19/1.20.expected.json;
    the unsuffixed files are 1.18's), and its own maps and cilium-dbg columns."""
    mode = "" if selection == "cilium" else ".consistent"
    infix = "" if version == "1.18" else f".cilium-{version}"
    path = example.with_name(f"{example.stem}{mode}{infix}.expected.json")
    engine = egw.Engine.from_snapshot(example, selection=selection, cilium_version=version)
    assert engine.cilium_version == version
    assert engine.layout == ("dual" if version == "1.20" else "legacy")
    if path.exists():
        assert engine.maps_json() == path.read_text()
    table = engine.format_table()
    if table:
        assert ("Egress Ifindex" in table.splitlines()[0]) == (version == "1.20")


def test_an_unknown_cilium_version_is_refused_naming_the_argument(examples):
    with pytest.raises(ValueError, match="cilium_version"):
        egw.Engine.from_snapshot(examples / "seed-gateway-group.yaml", cilium_version="1.17")
    with pytest.raises(ValueError, match="cilium_version"):
        egw.Engine("n", cilium_version="2")


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_text_bytes_dict_and_path_inputs_agree(example):
    text = example.read_text()
    want = egw.Engine.from_snapshot(example).maps_json()
    assert egw.Engine.from_snapshot(text).maps_json() == want
    assert egw.Engine.from_snapshot(text.encode()).maps_json() == want
    # A dict, as PyYAML gives it (timestamps become datetime objects: passed on as text).
    assert egw.Engine.from_snapshot(yaml.safe_load(text)).maps_json() == want


def test_a_dump_with_a_node_and_its_devices(examples):
    dumps = examples / "dumps"
    engine = egw.Engine.from_snapshot(dumps / "tke-dump.yaml", local_node="172.22.49.119")
    engine.set_devices((dumps / "tke-dump.172.22.49.119.devices.yaml").read_text())
    assert engine.maps_json() == (dumps / "tke-dump.172.22.49.119.expected.json").read_text()


@pytest.mark.parametrize(
    "stem,selection",
    [("tke-dump", "cilium")]
    + [(f"seed-gateway-group.{form}", mode) for form in ("pods", "slices") for mode in ("cilium", "consistent")],
)
def test_every_dump_shape_loaded_and_applied(examples, stem, selection):
    """B.10: the CiliumEndpoint dump, core Pods/Nodes and CiliumEndpointSlices with
    CiliumIdentities give their expected maps loaded and applied as events."""
    dumps = examples / "dumps"
    node = "172.22.49.119"
    suffix = ".consistent" if selection == "consistent" else ""
    expected = dumps / f"{stem}.{node}{suffix}.expected.json"
    devices = (dumps / f"{stem}.{node}.devices.yaml").read_text()
    text = (dumps / f"{stem}.yaml").read_text()
    loaded = egw.Engine.from_snapshot(text, local_node=node, selection=selection)
    loaded.set_devices(devices)
    assert loaded.maps_json() == expected.read_text()
    applied_engine = egw.Engine(node, selection=selection)
    applied = applied_engine.apply(text)
    assert applied["endpoints"] >= 10 and applied["nodes"] == 5, applied
    applied_engine.set_devices(devices)
    assert applied_engine.maps_json() == expected.read_text()


def test_the_table_is_cilium_dbgs(examples):
    engine = egw.Engine.from_snapshot(examples / "seed-gateway-group.yaml")
    lines = engine.format_table().splitlines()
    assert lines[0].split() == ["Source", "IP", "Destination", "CIDR", "Egress", "IP", "Gateway", "IP"]
    assert len(lines) == 1 + len(engine.entries())
    assert egw.Engine("n").format_table() == ""


def test_dates_in_a_dict_are_rfc3339_and_other_foreign_values_are_refused(examples):
    """PyYAML turns an unquoted creationTimestamp into a datetime: it must stay a timestamp."""
    text = (examples / "selectors-and-conflicts.yaml").read_text()
    unquoted = text.replace("creationTimestamp: '", "creationTimestamp: ").replace("Z'", "Z")
    data = yaml.safe_load(unquoted)
    stamps = [p["metadata"].get("creationTimestamp") for p in data["policies"]]
    assert any(s is not None and not isinstance(s, str) for s in stamps), "the test needs datetimes"
    assert egw.Engine.from_snapshot(data).maps_json() == egw.Engine.from_snapshot(text).maps_json()
    engine = egw.Engine("n")
    with pytest.raises(TypeError, match="bytes"):
        engine.upsert_node({"name": b"raw"})
    with pytest.raises(TypeError, match="set"):
        engine.upsert_node({"name": "n", "labels": {"a": {1, 2}}})
    # A key that is not a str is refused, naming where (json.dumps would write "1", "null").
    for key, kind in [(1, "int"), (None, "NoneType"), (True, "bool")]:
        with pytest.raises(TypeError, match=rf"data\.labels: the key {key!r} is a {kind}, not a str"):
            engine.upsert_node({"name": "n", "labels": {key: "web"}})
    with pytest.raises(TypeError, match=r"data\.nodes\[0\]\.labels: the key 7"):
        egw.Engine.from_snapshot({"localNode": "n", "nodes": [{"name": "n", "labels": {7: "x"}}]})
    assert engine.stats()["nodes"] == 0, "nothing was applied"


def test_an_upgrade_is_two_engines_maps(examples):
    """What `egressctl diff --to-cilium-version 1.20` shows for the seed: the same five rows
    differ between a 1.18 engine's entries and a 1.20 engine's (their egress IP, cilium#48660)."""
    path = examples / "seed-gateway-group.yaml"
    old = {(e.source, e.destination): e for e in egw.Engine.from_snapshot(path).entries()}
    new = {(e.source, e.destination): e for e in egw.Engine.from_snapshot(path, cilium_version="1.20").entries()}
    assert old.keys() == new.keys()
    changed = sorted(str(k[0]) for k in old if old[k] != new[k])
    assert changed == ["172.22.48.14", "172.22.48.39", "172.22.48.4", "172.22.48.42", "172.22.48.43"]
    assert all(str(new[k].egress_ip) == "0.0.0.0" for k in old if old[k] != new[k])


def test_every_load_reports_its_diagnostics(examples):
    """SEMANTICS B.7: a dump's skipped endpoint, an invalid policy with every error, warnings
    and conflicts, as egressctl list prints them; nothing for a clean input."""
    dumps = examples / "dumps"
    d = egw.Engine.from_snapshot(dumps / "tke-dump.yaml", local_node="172.22.49.119").diagnostics()
    assert set(d) == {"invalidPolicies", "warnings", "skipped", "conflicts"}
    assert d["skipped"] == ["objects[16] (default/nginx-7f6d8b9c5d-q4zkm): no status.identity labels: endpoint skipped"]
    assert d["warnings"][0].startswith("egress-test: spec.egressGateway: ignored:")
    text = (examples / "selectors-and-conflicts.yaml").read_text() + (
        "- metadata: {name: broken}\n  spec: {selectors: [{nodeSelector: {}}], destinationCIDRs: [\"10.0.0.0/99\"]}\n"
    )
    d = egw.Engine.from_snapshot(text).diagnostics()
    assert d["invalidPolicies"] == [{"policy": "broken", "errors": [
        {"path": "spec.selectors[0]", "reason": "Required value: podSelector or namespaceSelector"},
        {"path": "spec.destinationCIDRs[0]", "reason": 'Invalid value: "10.0.0.0/99": prefix length out of range'},
        {"path": "spec.egressGateway", "reason": "Required value"},
    ]}]
    assert d["conflicts"] == egw.Engine.from_snapshot(text).conflicts() != []
    assert egw.Engine("n").diagnostics() == {"invalidPolicies": [], "warnings": [], "skipped": [], "conflicts": []}
