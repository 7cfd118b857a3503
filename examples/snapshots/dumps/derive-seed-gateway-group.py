#!/usr/bin/env python3
"""Derives the expected maps of the seed gateway-group dumps (seed-gateway-group.pods.yaml,
seed-gateway-group.slices.yaml) for node 172.22.49.119 from the rules, without the engine:

- SEMANTICS A.3: the policy's egressGateways (.147 and .119, each with its egressIP; the
  single egressGateway .20 is ignored because the list is not empty) sorted by gateway IP,
  an endpoint uses entry FNV-1a-32(uid) mod 2;
- SEMANTICS B.2 (consistent mode): the candidate of the highest
  mix64(fnv1a64(uid 0 node 0 "ip=<egressIP>" 0 "0"));
- on the local gateway (.119) the entry's egressIP is the egress IP — except on Cilium 1.20,
  where a dual-stack policy (0.0.0.0/0 and ::/0) with an IPv4 egressIP on a device without
  IPv6 gives 0.0.0.0 (CILIUM-VERSIONS, #48660);
- SEMANTICS B.10: the Pod form keeps the pods' uids (so its maps are the snapshot's,
  seed-gateway-group.yaml); the slice form has no Pods, so each entry's uid is
  "<namespace>/<name>" and the hash picks other gateways.

The pods (uid, name, IP) are read from ../seed-gateway-group.yaml. Run with --check to
compare with the files (the test command does), without it to write them.
"""
import ipaddress
import json
import pathlib
import re
import sys

HERE = pathlib.Path(__file__).resolve().parent
LOCAL = "172.22.49.119"
# (gateway node = its IP, entry key), sorted by gateway IP.
GATEWAYS = [("172.22.49.119", "ip=172.22.49.119"), ("172.22.49.147", "ip=172.22.49.147")]
M64 = (1 << 64) - 1


def fnv1a32(data: bytes) -> int:
    h = 2166136261
    for c in data:
        h = ((h ^ c) * 16777619) & 0xFFFFFFFF
    return h


def fnv1a64(data: bytes) -> int:
    h = 14695981039346656037
    for c in data:
        h = ((h ^ c) * 1099511628211) & M64
    return h


def mix64(z: int) -> int:
    z ^= z >> 30
    z = (z * 0xBF58476D1CE4E5B9) & M64
    z ^= z >> 27
    z = (z * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def gateway(uid: str, mode: str) -> str:
    if mode == "cilium":
        return GATEWAYS[fnv1a32(uid.encode()) % len(GATEWAYS)][0]

    def score(candidate):
        node, key = candidate
        s = mix64(fnv1a64(b"\0".join([uid.encode(), node.encode(), key.encode(), b"0"])))
        # Highest score; ties to the smaller node name, then the smaller entry key.
        return (s, [-c for c in node.encode()], [-c for c in key.encode()])

    return max(GATEWAYS, key=score)[0]


def maps(pods, mode: str, version: str) -> str:
    rows = []
    for uid, ip in sorted(pods, key=lambda p: ipaddress.ip_address(p[1])):
        gw = gateway(uid, mode)
        egress = LOCAL if gw == LOCAL and version != "1.20" else "0.0.0.0"
        rows.append(
            {"sourceIP": ip, "destCIDR": "0.0.0.0/0", "egressIP": egress,
             "gatewayIP": gw, "egressIfindex": 0}
        )
    return json.dumps({"ipv4": rows, "ipv6": []}, indent=1) + "\n"


def main() -> int:
    snapshot = (HERE.parent / "seed-gateway-group.yaml").read_text()
    pods = re.findall(
        r"- uid: (\S+)\n  namespace: default\n  name: (\S+)\n(?:.*\n)*?  ips:\n  - (\S+)\n", snapshot
    )
    assert len(pods) == 10, pods
    forms = {
        "pods": [(uid, ip) for uid, _, ip in pods],
        "slices": [(f"default/{name}", ip) for _, name, ip in pods],
    }
    check = "--check" in sys.argv[1:]
    differ = []
    for form, uids in forms.items():
        for mode in ("cilium", "consistent"):
            for version in ("1.18", "1.19", "1.20"):
                name = f"seed-gateway-group.{form}.{LOCAL}"
                name += ".consistent" if mode == "consistent" else ""
                name += "" if version == "1.18" else f".cilium-{version}"
                path = HERE / f"{name}.expected.json"
                text = maps(uids, mode, version)
                if not check:
                    path.write_text(text)
                elif not path.is_file() or path.read_text() != text:
                    differ.append(path.name)
    if differ:
        print("derived maps differ from: " + ", ".join(differ), file=sys.stderr)
        return 1
    print(f"{'checked' if check else 'wrote'} 12 expected files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
