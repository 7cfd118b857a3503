"""The Python module's lookups beside Rust's, on one W-lookup-shaped workload, in one run.

W-lookup (PERFORMANCE.md): 10,000 endpoints with distinct IPv4 addresses in 10.0.0.0/8, each
with 4 entries (0.0.0.0/0 and 3 excluded prefixes of length /8-/28 drawn from a pool of 64);
queries: random (src, dst), 90 % known sources, half of those inside one of the source's
excluded prefixes. Built here as a snapshot through the public format (every policy valid:
the 64 excluding policies also name 0.0.0.0/0, whose key the default-route policy wins by
B.1, so each endpoint still has exactly 4 entries), written to a temporary directory with
the packed queries. The Rust side (`lookup_file`, built from benches/) loads the same file
with `Engine::load_snapshot` and measures `Engine::lookup_many` and `Engine::lookup`; this
script measures `Engine.lookup_many` (one call per batch of `--batch` queries) and
`Engine.lookup`, checks that both sides gave the same answers (a checksum over the records),
and prints one JSON object. Exit status 1 if the answers differ.

Usage: python benches/python/lookup_many.py [--quick] [--lookup-file PATH]
"""

import argparse
import ipaddress
import json
import pathlib
import random
import struct
import subprocess
import sys
import tempfile
import time

import egress_gateway as egw

ROOT = pathlib.Path(__file__).resolve().parents[2]


def workload(seed: int, endpoints: int, queries: int):
    rng = random.Random(seed)
    pool = []
    while len(pool) < 64:
        length = 8 + rng.randrange(21)
        net = ipaddress.ip_network((rng.getrandbits(32) >> (32 - length) << (32 - length), length))
        if net not in pool:
            pool.append(net)
    nodes = [
        {
            "name": f"node-{n:02}",
            "labels": {"egress": "true" if n < 8 else "false", "kubernetes.io/hostname": f"node-{n:02}"},
            "ipv4": f"192.168.0.{n + 1}",
        }
        for n in range(50)
    ]
    nodes[0]["interfaces"] = [
        {"name": "eth0", "index": 2, "addresses": ["192.168.0.1/24"], "defaultRoute": True},
        {"name": "eth1", "index": 3, "addresses": ["172.16.0.1/24"]},
    ]
    gateways = [
        {"nodeSelector": {"matchLabels": {"kubernetes.io/hostname": f"node-{n:02}"}}, "interface": "eth1"}
        for n in range(8)
    ]

    def policy(name, labels, excluded, gws):
        spec = {
            "selectors": [{"podSelector": {"matchLabels": labels}}],
            "destinationCIDRs": ["0.0.0.0/0"],
            "egressGateway": {"nodeSelector": {"matchLabels": {"egress": "true"}}},
        }
        if excluded:
            spec["excludedCIDRs"] = excluded
        if gws:
            spec["egressGateways"] = gws
        return {
            "apiVersion": "cilium.io/v2",
            "kind": "CiliumEgressGatewayPolicy",
            "metadata": {"name": name, "creationTimestamp": "2026-01-01T00:00:00Z" if name == "a-default-route" else "2026-01-02T00:00:00Z"},
            "spec": spec,
        }

    policies = [policy("a-default-route", {}, [], gateways)]
    policies += [policy(f"exclude-{k:02}", {f"x{k}": "true"}, [str(c)], []) for k, c in enumerate(pool)]
    eps, excluded_of = [], []
    for i in range(endpoints):
        picks = rng.sample(range(64), 3)
        eps.append(
            {
                "uid": f"ep-{i:05}",
                "identityLabels": {f"x{k}": "true" for k in picks},
                "ips": [str(ipaddress.IPv4Address(0x0A000001 + i))],
                "node": f"node-{8 + i % 42:02}",
            }
        )
        excluded_of.append([pool[k] for k in picks])
    snapshot = {"localNode": "node-00", "nodes": nodes, "endpoints": eps, "policies": policies}

    packed = bytearray()
    for _ in range(queries):
        known = rng.randrange(10) < 9
        i = rng.randrange(endpoints)
        src = 0x0A000001 + (i if known else endpoints + 1 + rng.randrange(1_000_000))
        if known and rng.randrange(2) == 0:
            net = excluded_of[i][rng.randrange(3)]
            dst = int(net.network_address) + rng.randrange(net.num_addresses)
        else:
            dst = rng.getrandbits(32)
        packed += struct.pack("!II", src, dst)
    return snapshot, bytes(packed)


def fnv64(data: bytes) -> str:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def per_query(run, count: int, min_time: float) -> float:
    rounds, start = 0, time.perf_counter()
    while True:
        run()
        rounds += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return elapsed * 1e9 / (rounds * count)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--lookup-file", default=str(ROOT / "target" / "release" / "lookup_file"))
    parser.add_argument("--batch", type=int, default=4096)
    args = parser.parse_args()
    queries = 200_000 if args.quick else 1_000_000
    min_time = 0.3 if args.quick else 2.0

    snapshot, packed = workload(3, 10_000, queries)
    with tempfile.TemporaryDirectory() as tmp:
        snap_path, query_path = pathlib.Path(tmp, "w-lookup.json"), pathlib.Path(tmp, "queries.bin")
        snap_path.write_text(json.dumps(snapshot))
        query_path.write_bytes(packed)
        rust = json.loads(
            subprocess.run(
                [args.lookup_file, snap_path, query_path, "4", str(int(min_time * 1000))],
                check=True, capture_output=True, text=True,
            ).stdout
        )
        engine = egw.Engine.from_snapshot(snap_path, max_entries=1 << 20)

    entries = engine.stats()["desired_v4"]
    if entries != 40_000 or rust["entries"] != entries:
        print(f"lookup_many.py: error: {entries} entries here, {rust['entries']} in Rust, not 40,000", file=sys.stderr)
        return 1
    records = engine.lookup_many(packed)
    if fnv64(records) != rust["checksum"]:
        print("lookup_many.py: error: the Python and Rust answers differ", file=sys.stderr)
        return 1

    step = args.batch * 8
    batches = [packed[i:i + step] for i in range(0, len(packed), step)]
    batched = per_query(lambda: [engine.lookup_many(b) for b in batches], queries, min_time)
    whole = per_query(lambda: engine.lookup_many(packed), queries, min_time)
    sample = 20_000
    pairs = [
        (str(ipaddress.IPv4Address(packed[i:i + 4])), str(ipaddress.IPv4Address(packed[i + 4:i + 8])))
        for i in range(0, sample * 8, 8)
    ]
    objects = [(ipaddress.ip_address(s), ipaddress.ip_address(d)) for s, d in pairs]
    single_str = per_query(lambda: [engine.lookup(s, d) for s, d in pairs], sample, min_time)
    single_obj = per_query(lambda: [engine.lookup(s, d) for s, d in objects], sample, min_time)

    report = {
        "queries": queries,
        "entries": entries,
        "rust_lookup_many_ns": rust["lookup_many_ns"],
        "rust_lookup_ns": rust["lookup_ns"],
        "python_lookup_many_ns": round(batched, 1),
        "python_lookup_many_batch": args.batch,
        "python_lookup_many_whole_buffer_ns": round(whole, 1),
        "python_lookup_str_ns": round(single_str, 1),
        "python_lookup_ipaddress_ns": round(single_obj, 1),
        "ratio_lookup_many": round(batched / rust["lookup_many_ns"], 2),
    }
    print(json.dumps(report, indent=1))
    print(
        f"Python lookup_many / Rust lookup_many: {report['ratio_lookup_many']} (target <= 2); "
        f"single Python lookup {report['python_lookup_str_ns']} ns (str arguments)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
