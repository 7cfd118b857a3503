"""The cross-binding table (tests/cross-binding/table.txt) through the Python module: its
transcript must equal tests/cross-binding/expected.txt, as the Rust, C and Go runs must."""

import ipaddress

import egress_gateway as egw


def field(s):
    return "" if s == "-" else s


def items(s):
    return [x for x in field(s).split(",") if x]


def labels(s):
    return dict(kv.split("=", 1) for kv in items(s))


def error_line(err):
    """The first field error: from `.errors` where the exception has them, else from the
    message, `path: reason` (a ValueError: an argument)."""
    fields = getattr(err, "errors", None)
    if fields:
        path, reason = fields[0]
    else:
        path, reason = str(err).split(": ", 1)
    return f"error {path} {reason}"


def verdict_line(v):
    gateway = v.gateway_ip if v.gateway_ip is not None else "-"
    egress = v.egress_ip if v.egress_ip is not None else "-"
    ifindex = v.ifindex if v.kind == "masquerade" else "-"
    return f"verdict {v.kind} {gateway} {egress} {ifindex}"


def endpoint(args, value):
    """An endpoint step as a mapping: addresses as ipaddress values (the typed path: values,
    SEMANTICS B.6) or as strings (a document's text)."""
    ips = [ipaddress.ip_address(ip) if value else ip for ip in items(args[3])]
    return {"uid": field(args[0]), "namespace": field(args[1]), "node": field(args[2]),
            "ips": ips, "labels": labels(args[4])}


def run(table, seed):
    engine = egw.Engine.from_snapshot(seed)
    other = egw.Engine.from_snapshot(seed)
    plans = {}
    out = []
    for line in table.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        op, *args = line.split(" ")
        try:
            if op == "lookup":
                result = verdict_line(engine.lookup(args[0], args[1]))
            elif op == "explain":
                x = engine.explain(args[0], args[1])
                result = f"explain {x.source} {x.verdict.kind} {x.source_entries}"
            elif op in ("endpoint", "endpoint-doc"):
                engine.upsert_endpoint(endpoint(args, op == "endpoint"))
                result = "ok"
            elif op == "namespace":
                engine.upsert_namespace({"name": args[0], "labels": labels(args[1])})
                result = "ok"
            elif op in ("take", "take-other"):
                plan = (engine if op == "take" else other).take_plan()
                plans[args[0]] = plan
                result = f"plan {len(plan)}"
            elif op == "ack":
                plan = plans[args[0]]
                engine.ack(plan, len(plan) if args[1] == "all" else int(args[1]))
                result = "ok"
            elif op == "adopt-empty":
                engine.adopt([])
                result = "ok"
            elif op == "stats":
                s = engine.stats()
                result = f"stats {s['desired_v4']} {s['desired_v6']} {s['programmed_v4']} {s['programmed_v6']}"
            else:
                raise AssertionError(f"unknown step {op!r}")
        except (egw.EgressError, ValueError) as err:
            result = error_line(err)
        out.append(f"{line}\n=> {result}\n")
    return "".join(out)


def test_the_cross_binding_table_gives_the_expected_transcript(repo, examples):
    table = (repo / "tests" / "cross-binding" / "table.txt").read_text()
    expected = (repo / "tests" / "cross-binding" / "expected.txt").read_text()
    got = run(table, examples / "seed-gateway-group.yaml")
    diff = [(w, g) for w, g in zip(expected.splitlines(), got.splitlines()) if w != g]
    assert got == expected, f"differs from expected.txt: {diff[:5]}"
