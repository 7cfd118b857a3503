//! Issue 21's amplifying input, shared by the Rust tests of egressctl and the C ABI (the C
//! test builds the same text itself): one valid policy with `cidrs` distinct /24
//! destinations over `endpoints` pods on four nodes (two gateways) — a few hundred KB that
//! ask for `cidrs × endpoints` entries.

/// The snapshot text (JSON).
pub(crate) fn amplifying_snapshot(cidrs: usize, endpoints: usize) -> String {
    let pods: Vec<String> = (0..endpoints)
        .map(|i| {
            format!(
                r#"{{"uid":"00000000-0000-4000-8000-{i:012}","namespace":"default","name":"p{i}","labels":{{"app":"a"}},"ips":["10.{}.{}.{}"],"node":"n{}"}}"#,
                1 + i / 65536,
                (i / 256) % 256,
                i % 256,
                i % 4
            )
        })
        .collect();
    let destinations: Vec<String> = (0..cidrs)
        .map(|i| {
            format!(
                r#""{}.{}.{}.0/24""#,
                100 + (i >> 16),
                (i >> 8) & 255,
                i & 255
            )
        })
        .collect();
    let nodes: Vec<String> = (0..4)
        .map(|i| {
            format!(
                r#"{{"name":"n{i}","labels":{{"egress":"{}"}},"ipv4":"10.0.0.{}"}}"#,
                i < 2,
                i + 1
            )
        })
        .collect();
    format!(
        r#"{{"localNode":"n0","nodes":[{}],"endpoints":[{}],"policies":[{{"apiVersion":"cilium.io/v2","kind":"CiliumEgressGatewayPolicy","metadata":{{"name":"amp"}},"spec":{{"selectors":[{{"podSelector":{{"matchLabels":{{"app":"a"}}}}}}],"destinationCIDRs":[{}],"egressGateway":{{"nodeSelector":{{"matchLabels":{{"egress":"true"}}}}}}}}}}]}}"#,
        nodes.join(","),
        pods.join(","),
        destinations.join(",")
    )
}
