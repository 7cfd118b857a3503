use super::*;
use crate::document::parse_documents;

fn config(yaml: &str) -> CiliumConfig {
    CiliumConfig::from_document(&parse_documents(yaml).unwrap()[0]).unwrap()
}

fn statuses(c: &CiliumConfig) -> Vec<(&'static str, Status)> {
    c.check().into_iter().map(|f| (f.check, f.status)).collect()
}

/// The ConfigMap the seed's `helm upgrade --install` renders (the keys that matter).
const SEED_CONFIG_MAP: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: cilium-config, namespace: kube-system}
data:
  enable-egress-gateway: "true"
  kube-proxy-replacement: "true"
  enable-bpf-masquerade: "true"
  enable-ipv4-masquerade: "true"
  routing-mode: native
  ipv4-native-routing-cidr: 172.22.0.0/16
  identity-allocation-mode: crd
  cluster-name: default
  cluster-id: "0"
"#;

#[test]
fn the_seeds_configuration_passes_every_check() {
    let c = config(SEED_CONFIG_MAP);
    assert_eq!(c.source(), Source::ConfigMap);
    let findings = c.check();
    assert_eq!(findings.len(), 8);
    assert!(
        findings
            .iter()
            .all(|f| f.status == Status::Ok && f.fix.is_empty()),
        "{findings:#?}"
    );
    assert_eq!(fix_command(&findings), None);
    assert_eq!(findings[0].detail, r#"enable-egress-gateway: "true""#);
}

#[test]
fn a_default_install_fails_with_the_fixes() {
    // What a default chart renders: no egress gateway key, kube-proxy and iptables.
    let c = config(
        "kind: ConfigMap\ndata:\n  kube-proxy-replacement: \"false\"\n  enable-bpf-masquerade: \"false\"\n  \
         enable-ipv4-masquerade: \"true\"\n  routing-mode: tunnel\n  identity-allocation-mode: crd\n  cluster-id: \"0\"\n",
    );
    let findings = c.check();
    let failed: Vec<&str> = findings
        .iter()
        .filter(|f| f.status == Status::Fail)
        .map(|f| f.check)
        .collect();
    assert_eq!(
        failed,
        ["egress gateway", "kube-proxy replacement", "BPF masquerade"]
    );
    assert_eq!(
        findings[0].detail,
        "enable-egress-gateway not set (default \"false\"): the feature is off, so no policy is programmed"
    );
    let fix = fix_command(&findings).unwrap();
    for set in [
        "--set egressGateway.enabled=true",
        "--set kubeProxyReplacement=true --set k8sServiceHost=API_SERVER_IP --set k8sServicePort=API_SERVER_PORT",
        "--set bpf.masquerade=true",
    ] {
        assert!(fix.contains(set), "{fix}");
    }
    assert!(fix.starts_with(
        "helm upgrade cilium cilium/cilium --version CHART_VERSION --namespace kube-system --reuse-values"
    ));
    assert!(fix.contains("kubectl rollout restart ds cilium -n kube-system"));
}

#[test]
fn the_older_egress_gateway_key_and_strict_kube_proxy_replacement_count() {
    let c = config(
        "kind: ConfigMap\ndata:\n  enable-ipv4-egress-gateway: \"true\"\n  kube-proxy-replacement: strict\n  enable-bpf-masquerade: \"true\"\n",
    );
    let s = statuses(&c);
    assert_eq!(s[0], ("egress gateway", Status::Ok));
    assert_eq!(s[1], ("kube-proxy replacement", Status::Ok));
}

#[test]
fn native_routing_needs_its_cidr_and_incompatible_features_fail() {
    let c = config(
        "kind: ConfigMap\ndata:\n  enable-egress-gateway: \"true\"\n  kube-proxy-replacement: \"true\"\n  \
         enable-bpf-masquerade: \"true\"\n  routing-mode: native\n  identity-allocation-mode: kvstore\n  \
         enable-cilium-endpoint-slice: \"true\"\n  cluster-id: \"3\"\n",
    );
    let findings = c.check();
    let by = |check: &str| findings.iter().find(|f| f.check == check).unwrap();
    assert_eq!(by("native-routing CIDR").status, Status::Fail);
    assert_eq!(
        by("native-routing CIDR").fix,
        ["ipv4NativeRoutingCIDR=VPC_CIDR"]
    );
    assert_eq!(by("identity allocation").status, Status::Fail);
    assert_eq!(
        by("CiliumEndpointSlice").fix,
        ["ciliumEndpointSlice.enabled=false"]
    );
    // A non-zero cluster id only suggests a mesh: a warning without a fix.
    assert_eq!(by("Cluster Mesh").status, Status::Warn);
    assert!(by("Cluster Mesh").fix.is_empty());
    // Cilium's agent refuses slices with the egress gateway whoever programs the maps: the
    // finding says so, and what egressctl still does with slices.
    let slices = by("CiliumEndpointSlice");
    assert_eq!(slices.status, Status::Fail);
    assert!(
        slices.detail.contains("NewEgressGatewayManager")
            && slices.detail.contains("gateway hash key"),
        "{}",
        slices.detail
    );
}

#[test]
fn helm_values_are_read_with_the_charts_defaults() {
    // The seed's --set flags as `helm get values` prints them.
    let seed = config(
        "routingMode: native\nkubeProxyReplacement: true\negressGateway: {enabled: true}\n\
         enableIPv4Masquerade: true\nipv4NativeRoutingCIDR: 172.22.0.0/16\nbpf: {masquerade: true}\n",
    );
    assert_eq!(seed.source(), Source::HelmValues);
    assert!(
        seed.check().iter().all(|f| f.status == Status::Ok),
        "{:#?}",
        seed.check()
    );
    // Nothing set: the chart's defaults.
    let empty = config("{}");
    let failed: Vec<&str> = empty
        .check()
        .into_iter()
        .filter(|f| f.status == Status::Fail)
        .map(|f| f.check)
        .collect();
    assert_eq!(
        failed,
        ["egress gateway", "kube-proxy replacement", "BPF masquerade"]
    );
    // Cluster Mesh by its Helm values: a failure with the fix.
    let meshed = config(
        "egressGateway: {enabled: true}\nclustermesh: {useAPIServer: true, config: {enabled: true}}\ncluster: {id: 2, name: east}\n",
    );
    let mesh = meshed
        .check()
        .into_iter()
        .find(|f| f.check == "Cluster Mesh")
        .unwrap();
    assert_eq!(mesh.status, Status::Fail);
    assert_eq!(
        mesh.fix,
        [
            "clustermesh.useAPIServer=false",
            "clustermesh.config.enabled=false"
        ]
    );
}

#[test]
fn other_inputs_are_refused_naming_the_field() {
    let err = |yaml: &str| {
        CiliumConfig::from_document(&parse_documents(yaml).unwrap()[0])
            .unwrap_err()
            .to_string()
    };
    assert!(err("kind: ConfigMap\nmetadata: {name: x}\n").contains("data: Required value"));
    assert!(err("kind: Deployment\nspec: {}\n").starts_with("kind: Invalid value"));
    assert!(err("- a\n- b\n").contains("want a mapping"));
    assert!(
        err("localNode: a\nnodes: [{name: a}]\n")
            .contains("a snapshot, not Cilium's configuration")
    );
}
