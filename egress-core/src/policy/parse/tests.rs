use super::*;

const BASE: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumEgressGatewayPolicy
metadata:
  name: p
  creationTimestamp: "2026-11-20T08:00:00Z"
  labels: {team: a}
  uid: 0f6a
spec:
  selectors:
  - podSelector:
      matchLabels: {app: nginx}
      matchExpressions:
      - {key: tier, operator: In, values: [web]}
  destinationCIDRs: ["0.0.0.0/0", "::/0"]
  excludedCIDRs: ["10.0.0.0/8"]
  egressGateway:
    nodeSelector: {matchLabels: {egress: "true"}}
    egressIP: 10.0.0.1
status: {conditions: []}
"#;

fn doc(yaml: &str) -> Value {
    document::parse_documents(yaml).unwrap().remove(0)
}

/// Parses BASE with `from` replaced by `to` and returns the error lines.
fn errors_of(from: &str, to: &str) -> Vec<String> {
    errors_on(from, to, CiliumVersion::default())
}

fn errors_on(from: &str, to: &str, version: CiliumVersion) -> Vec<String> {
    assert!(BASE.contains(from), "{from}");
    let text = BASE.replacen(from, to, 1);
    match parse_policy_for(&doc(&text), version) {
        Ok(_) => Vec::new(),
        Err(e) => e.errors.iter().map(ToString::to_string).collect(),
    }
}

fn assert_one(from: &str, to: &str, want: &str) {
    assert_eq!(
        errors_of(from, to),
        vec![want.to_owned()],
        "replacing {from:?} by {to:?}"
    );
}

#[test]
fn the_base_policy_is_valid() {
    let p = parse_policy(&doc(BASE)).unwrap();
    assert_eq!(p.name, "p");
    assert_eq!(p.destination_cidrs.len(), 2);
    assert_eq!(p.excluded_cidrs[0].to_string(), "10.0.0.0/8");
    assert_eq!(
        p.egress_gateway.egress_ip,
        Some("10.0.0.1".parse().unwrap())
    );
    assert_eq!(
        p.selectors[0]
            .pod_selector
            .as_ref()
            .unwrap()
            .match_expressions[0]
            .operator,
        Operator::In
    );
    assert!(p.creation_timestamp.is_some());
    assert!(p.needs_family(true) && p.needs_family(false));
}

#[test]
fn required_values() {
    assert_one("  name: p\n", "", "metadata.name: Required value");
    assert_one(
        "  name: p\n",
        "  name: \"\"\n",
        "metadata.name: Required value",
    );
    assert_one(
        "  destinationCIDRs: [\"0.0.0.0/0\", \"::/0\"]\n",
        "",
        "spec.destinationCIDRs: Required value",
    );
    assert_one(
        "  selectors:\n  - podSelector:\n      matchLabels: {app: nginx}\n      matchExpressions:\n      - {key: tier, operator: In, values: [web]}\n",
        "",
        "spec.selectors: Required value",
    );
    assert_one(
        "    nodeSelector: {matchLabels: {egress: \"true\"}}\n",
        "",
        "spec.egressGateway.nodeSelector: Required value",
    );
    assert_one(
        "{key: tier, operator: In, values: [web]}",
        "{operator: In, values: [web]}",
        "spec.selectors[0].podSelector.matchExpressions[0].key: Required value",
    );
    assert_one(
        "{key: tier, operator: In, values: [web]}",
        "{key: tier, values: [web]}",
        "spec.selectors[0].podSelector.matchExpressions[0].operator: Required value",
    );
    let no_gateway = BASE.split("  egressGateway:").next().unwrap().to_owned();
    let err = parse_policy(&doc(&no_gateway)).unwrap_err();
    assert_eq!(err.to_string(), "p: spec.egressGateway: Required value");
    let no_spec = BASE.split("spec:").next().unwrap().to_owned();
    assert_eq!(
        parse_policy(&doc(&no_spec)).unwrap_err().to_string(),
        "p: spec: Required value"
    );
}

#[test]
fn explicit_empty_destinations_and_nulls() {
    assert!(errors_of("[\"0.0.0.0/0\", \"::/0\"]", "[]").is_empty());
    assert_one(
        "[\"0.0.0.0/0\", \"::/0\"]",
        "null",
        "spec.destinationCIDRs: Required value",
    );
    assert!(
        errors_of(
            "  excludedCIDRs: [\"10.0.0.0/8\"]\n",
            "  excludedCIDRs: null\n"
        )
        .is_empty()
    );
}

#[test]
fn too_many_gateways() {
    let items: String = (0..65)
        .map(|i| format!("  - nodeSelector: {{matchLabels: {{n: \"{i}\"}}}}\n"))
        .collect();
    let list = format!("  egressGateways:\n{items}status:");
    // `maxItems: 64` is in the CRD from 1.20 (commit 8177e96d6f, PR #44524, line 275);
    // 1.18 and 1.19 set no limit.
    let errors = errors_on("status:", &list, CiliumVersion::V1_20);
    assert_eq!(
        errors,
        vec!["spec.egressGateways: Too many: 65: must have at most 64 items"]
    );
    assert!(errors_on("status:", &list, CiliumVersion::V1_18).is_empty());
    assert!(errors_on("status:", &list, CiliumVersion::V1_19).is_empty());
    // A policy built in code is held to the same limit by the engine's version check.
    let mut p = parse_policy(&doc(&BASE.replacen("status:", &list, 1))).unwrap();
    assert!(version_errors(&p, CiliumVersion::V1_18).is_empty());
    let typed: Vec<String> = version_errors(&p, CiliumVersion::V1_20)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(typed, errors);
    p.egress_gateways.truncate(64);
    assert!(version_errors(&p, CiliumVersion::V1_20).is_empty());
    let items: String = (0..64)
        .map(|i| format!("  - nodeSelector: {{matchLabels: {{n: \"{i}\"}}}}\n"))
        .collect();
    assert!(errors_of("status:", &format!("  egressGateways:\n{items}status:")).is_empty());
}

#[test]
fn egress_ip_must_be_an_ip() {
    // 1.20: `maxLength: 39` and the CEL rule `self == '' || isIP(self)` (CRD lines 84 and
    // 197, commit 8177e96d6f).
    for bad in [
        "10.0.0.256",
        "::ffff:10.0.0.1",
        "fe80::1%eth0",
        "10.0.0.01",
        "eth0",
    ] {
        assert_eq!(
            errors_on(
                "egressIP: 10.0.0.1",
                &format!("egressIP: \"{bad}\""),
                CiliumVersion::V1_20
            ),
            vec![format!(
                "spec.egressGateway.egressIP: Invalid value: \"{bad}\": egressIP must be a valid IP address"
            )]
        );
    }
    assert!(errors_on("egressIP: 10.0.0.1", "egressIP: \"\"", CiliumVersion::V1_20).is_empty());
    assert!(
        errors_on(
            "egressIP: 10.0.0.1",
            "egressIP: \"2001:db8::1\"",
            CiliumVersion::V1_20
        )
        .is_empty()
    );
}

/// 1.18 and 1.19: the CRD's `format: ipv4` (lines 76 and 182 at the branch points), which
/// kube-openapi checks as `ParseIPSloppy(s) != nil && strings.Contains(s, ".")`, refused with
/// `<path> in body must be of type ipv4: "<value>"` (IPv6 text and "" included); then the
/// agent's `netip.ParseAddr` (ParseCEGP, policy.go line 298 at v1.18.3), which refuses the
/// leading zero the sloppy parse let through: `failed to parse egress IP <v>: <Go's error>`.
#[test]
fn egress_ip_is_ipv4_only_up_to_1_19() {
    for version in [CiliumVersion::V1_18, CiliumVersion::V1_19] {
        for bad in [
            "2001:db8::1",
            "10.0.0.256",
            "10.0.0",
            "eth0",
            "fe80::1%eth0",
            "",
        ] {
            assert_eq!(
                errors_on(
                    "egressIP: 10.0.0.1",
                    &format!("egressIP: \"{bad}\""),
                    version
                ),
                vec![format!(
                    "spec.egressGateway.egressIP: Invalid value: \"{bad}\": spec.egressGateway.egressIP in body must be of type ipv4: \"{bad}\""
                )],
                "{version}"
            );
        }
        assert_eq!(
            errors_on("egressIP: 10.0.0.1", "egressIP: \"10.0.0.01\"", version),
            vec![
                "spec.egressGateway.egressIP: Invalid value: \"10.0.0.01\": failed to parse egress IP 10.0.0.01: ParseAddr(\"10.0.0.01\"): IPv4 field has octet with leading zero"
            ],
            "{version}"
        );
        assert!(errors_on("egressIP: 10.0.0.1", "egressIP: 10.0.0.2", version).is_empty());
        // IPv4-mapped text passes both: the agent keeps an IPv6 address, which its IPv4-only
        // derivation then finds on no device.
        let mapped = BASE.replacen("egressIP: 10.0.0.1", "egressIP: \"::ffff:10.0.0.2\"", 1);
        let p = parse_policy_for(&doc(&mapped), version).unwrap();
        assert!(p.egress_gateway.egress_ip.is_some_and(|ip| ip.is_ipv6()));
        assert!(
            version_errors(&p, version).is_empty(),
            "the engine accepts it as parsed"
        );
    }
    // The same rule for a policy built in code, checked by the engine.
    let mut p = parse_policy(&doc(BASE)).unwrap();
    p.egress_gateway.egress_ip = Some("2001:db8::1".parse().unwrap());
    let typed: Vec<String> = version_errors(&p, CiliumVersion::V1_19)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        typed,
        [
            "spec.egressGateway.egressIP: Invalid value: \"2001:db8::1\": spec.egressGateway.egressIP in body must be of type ipv4: \"2001:db8::1\""
        ]
    );
    assert!(version_errors(&p, CiliumVersion::V1_20).is_empty());
}

#[test]
fn interface_and_egress_ip_in_use() {
    assert_one(
        "egressIP: 10.0.0.1",
        "egressIP: 10.0.0.1\n    interface: eth1",
        "spec.egressGateway: Forbidden: interface and egressIP are mutually exclusive",
    );
    // Beside a non-empty egressGateways, egressGateway is not in use: no error.
    let list = "  egressGateways:\n  - nodeSelector: {}\n    interface: eth1\n  - nodeSelector: {}\n    interface: eth1\n    egressIP: 10.0.0.2\nstatus:";
    assert_eq!(
        errors_of(
            "egressIP: 10.0.0.1",
            "egressIP: 10.0.0.1\n    interface: eth1"
        )
        .into_iter()
        .chain(errors_of("status:", list))
        .collect::<Vec<_>>(),
        vec![
            "spec.egressGateway: Forbidden: interface and egressIP are mutually exclusive"
                .to_owned(),
            "spec.egressGateways[1]: Forbidden: interface and egressIP are mutually exclusive"
                .to_owned(),
        ]
    );
    let text = BASE
        .replacen(
            "egressIP: 10.0.0.1",
            "egressIP: 10.0.0.1\n    interface: eth1",
            1,
        )
        .replacen(
            "status:",
            "  egressGateways:\n  - nodeSelector: {}\n    interface: eth1\nstatus:",
            1,
        );
    assert!(parse_policy(&doc(&text)).is_ok());
}

#[test]
fn cidrs_follow_go_netip() {
    assert_one(
        "\"0.0.0.0/0\", \"::/0\"",
        "\"0.0.0.0/0\", \"10.0.0.0/024\"",
        "spec.destinationCIDRs[1]: Invalid value: \"10.0.0.0/024\": bad bits after slash: \"024\"",
    );
    assert_one(
        "[\"10.0.0.0/8\"]",
        "[\"10.0.0.0\"]",
        "spec.excludedCIDRs[0]: Invalid value: \"10.0.0.0\": no '/'",
    );
    assert_one(
        "[\"10.0.0.0/8\"]",
        "[\"10.0.0.0/33\"]",
        "spec.excludedCIDRs[0]: Invalid value: \"10.0.0.0/33\": prefix length out of range",
    );
    assert_one(
        "[\"10.0.0.0/8\"]",
        "[\"010.0.0.0/8\"]",
        "spec.excludedCIDRs[0]: Invalid value: \"010.0.0.0/8\": ParseAddr(\"010.0.0.0\"): IPv4 field has octet with leading zero",
    );
    // Host bits are kept, not refused.
    let p = parse_policy(&doc(&BASE.replacen(
        "[\"10.0.0.0/8\"]",
        "[\"1.1.1.1/24\"]",
        1,
    )))
    .unwrap();
    assert_eq!(p.excluded_cidrs[0].to_string(), "1.1.1.1/24");
}

#[test]
fn selector_items_and_operators() {
    assert_one(
        "  - podSelector:\n      matchLabels: {app: nginx}\n      matchExpressions:\n      - {key: tier, operator: In, values: [web]}\n",
        "  - nodeSelector: {}\n",
        "spec.selectors[0]: Required value: podSelector or namespaceSelector",
    );
    assert!(
        errors_of(
            "  - podSelector:\n",
            "  - namespaceSelector: {}\n    podSelector:\n"
        )
        .is_empty()
    );
    assert_one(
        "operator: In",
        "operator: Equals",
        "spec.selectors[0].podSelector.matchExpressions[0].operator: Unsupported value: \"Equals\": supported values: \"In\", \"NotIn\", \"Exists\", \"DoesNotExist\"",
    );
    assert_one(
        "matchLabels: {app: nginx}",
        "matchLabels: {app: \"-nginx\"}",
        &format!(
            "spec.selectors[0].podSelector.matchLabels.app: Invalid value: \"-nginx\": {}",
            labels::LABEL_VALUE_RULE
        ),
    );
    assert_one(
        "matchLabels: {egress: \"true\"}",
        &format!("matchLabels: {{egress: \"{}\"}}", "a".repeat(64)),
        &format!(
            "spec.egressGateway.nodeSelector.matchLabels.egress: Invalid value: \"{}\": must be no more than 63 characters",
            "a".repeat(64)
        ),
    );
    // Values of In that are not label values are a warning (the selector matches nothing), not an error.
    assert!(errors_of("values: [web]", "values: [\"no good\"]").is_empty());
}

#[test]
fn timestamps() {
    assert_one(
        "\"2026-11-20T08:00:00Z\"",
        "\"2026-11-20 08:00\"",
        "metadata.creationTimestamp: Invalid value: \"2026-11-20 08:00\": not an RFC 3339 date-time",
    );
    assert!(
        errors_of(
            "\"2026-11-20T08:00:00Z\"",
            "\"2026-11-20T08:00:00.123+08:00\""
        )
        .is_empty()
    );
    assert!(errors_of("\"2026-11-20T08:00:00Z\"", "null").is_empty());
}

#[test]
fn unknown_fields_everywhere_in_spec() {
    assert_one("status:", "extra: 1\nstatus:", "extra: unknown field");
    assert_one(
        "  excludedCIDRs:",
        "  destinationCIDR: []\n  excludedCIDRs:",
        "spec.destinationCIDR: unknown field",
    );
    assert_one(
        "  - podSelector:\n",
        "  - podselector: {}\n    podSelector:\n",
        "spec.selectors[0].podselector: unknown field",
    );
    assert_one(
        "matchLabels: {app: nginx}",
        "matchLabels: {app: nginx}\n      matchLabel: {}",
        "spec.selectors[0].podSelector.matchLabel: unknown field",
    );
    assert_one(
        "{key: tier, operator: In, values: [web]}",
        "{key: tier, operator: In, value: [web]}",
        "spec.selectors[0].podSelector.matchExpressions[0].value: unknown field",
    );
    assert_one(
        "egressIP: 10.0.0.1",
        "egressIP: 10.0.0.1\n    egressIp: 10.0.0.2",
        "spec.egressGateway.egressIp: unknown field",
    );
}

#[test]
fn wrong_types_are_not_stringified() {
    assert_one(
        "egressIP: 10.0.0.1",
        "egressIP: 17",
        "spec.egressGateway.egressIP: Invalid value: \"integer\": must be of type string",
    );
    assert_one(
        "matchLabels: {egress: \"true\"}",
        "matchLabels: {egress: true}",
        "spec.egressGateway.nodeSelector.matchLabels.egress: Invalid value: \"boolean\": must be of type string",
    );
    assert_one(
        "[\"0.0.0.0/0\", \"::/0\"]",
        "\"0.0.0.0/0\"",
        "spec.destinationCIDRs: Invalid value: \"string\": must be of type array",
    );
    assert_one(
        "kind: CiliumEgressGatewayPolicy",
        "kind: CiliumEgressNATPolicy",
        "kind: Unsupported value: \"CiliumEgressNATPolicy\": supported values: \"CiliumEgressGatewayPolicy\"",
    );
}

#[test]
fn all_errors_of_a_policy_are_reported() {
    let text = r#"
metadata: {name: broken, creationTimestamp: nope}
spec:
  selectors: [{nodeSelector: {}}]
  destinationCIDRs: ["1.2.3.4", "10.0.0.0/8"]
  excludedCIDRs: ["::/200"]
  egressGateway:
    egressIP: not-an-ip
    interface: eth0
  bogus: true
"#;
    let err = parse_policy(&doc(text)).unwrap_err();
    let lines: Vec<String> = err.to_string().lines().map(str::to_owned).collect();
    assert_eq!(
        lines,
        vec![
            "broken: metadata.creationTimestamp: Invalid value: \"nope\": not an RFC 3339 date-time",
            "broken: spec.selectors[0]: Required value: podSelector or namespaceSelector",
            "broken: spec.destinationCIDRs[0]: Invalid value: \"1.2.3.4\": no '/'",
            "broken: spec.excludedCIDRs[0]: Invalid value: \"::/200\": prefix length out of range",
            "broken: spec.egressGateway.nodeSelector: Required value",
            "broken: spec.egressGateway.egressIP: Invalid value: \"not-an-ip\": spec.egressGateway.egressIP in body must be of type ipv4: \"not-an-ip\"",
            "broken: spec.bogus: unknown field",
        ]
    );
}

#[test]
fn lists_and_streams() {
    let list = format!(
        "apiVersion: v1\nkind: List\nitems:\n- {}\n",
        BASE.trim().replace('\n', "\n  ")
    );
    let parsed = parse_policy_text(&list).unwrap();
    assert_eq!(parsed.len(), 1);
    assert!(parsed[0].is_ok());
    let stream = format!("{BASE}\n---\n{}", BASE.replace("name: p", "name: q"));
    let parsed = parse_policy_text(&stream).unwrap();
    assert_eq!(
        parsed
            .iter()
            .map(|p| p.as_ref().unwrap().name.as_str())
            .collect::<Vec<_>>(),
        ["p", "q"]
    );
    let json = r#"{"metadata":{"name":"j"},"spec":{"selectors":[{"podSelector":{}}],"destinationCIDRs":[],"egressGateway":{"nodeSelector":{}}}}"#;
    assert!(parse_policy_text(json).unwrap()[0].is_ok());
}

/// 16,384 destination (or excluded) CIDRs are read; one more is a field error, the list
/// left unread.
#[test]
fn too_many_cidrs() {
    let list = |n: usize| -> String {
        let items: Vec<String> = (0..n)
            .map(|i| format!("\"10.{}.{}.0/24\"", i / 256 % 256, i % 256))
            .collect();
        format!("[{}]", items.join(", "))
    };
    for (field, from) in [
        (
            "destinationCIDRs",
            "destinationCIDRs: [\"0.0.0.0/0\", \"::/0\"]",
        ),
        ("excludedCIDRs", "excludedCIDRs: [\"10.0.0.0/8\"]"),
    ] {
        assert!(errors_of(from, &format!("{field}: {}", list(MAX_CIDRS))).is_empty());
        assert_one(
            from,
            &format!("{field}: {}", list(MAX_CIDRS + 1)),
            &format!("spec.{field}: Too many: 16385: must have at most 16384 items"),
        );
    }
}
