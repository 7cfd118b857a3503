//! The snapshot format's reader (ARCHITECTURE.md): every input error collected, each
//! naming its path.

use super::*;

pub(super) const TOP: &[&str] = &[
    "localNode",
    "cluster",
    "nodes",
    "endpoints",
    "policies",
    "interfaces",
];
pub(super) const NODE: &[&str] = &[
    "name",
    "labels",
    "ipv4",
    "ipv6",
    "ready",
    "weight",
    "interfaces",
];
pub(super) const ENDPOINT: &[&str] = &[
    "uid",
    "namespace",
    "name",
    "labels",
    "namespaceLabels",
    "serviceAccount",
    "identityLabels",
    "ips",
    "node",
];
pub(super) const NAMESPACE: &[&str] = &["name", "labels"];
pub(super) const DEVICE: &[&str] = &["name", "index", "altNames", "addresses", "defaultRoute"];

/// `endpoints`: the document's `endpoints` value, taken out of it to be read and dropped
/// item by item (see [`Snapshot::from_document_owned`]).
pub(super) fn read_snapshot(
    doc: &Value,
    endpoints: Option<Value>,
    version: CiliumVersion,
    errors: &mut Vec<FieldError>,
) -> Option<Snapshot> {
    let top = Fields::open(doc, "", errors)?;
    top.finish(TOP, errors);
    let mut snap = Snapshot {
        local_node: top
            .get("localNode")
            .and_then(|n| read_str(n, "localNode", errors))
            .map(str::to_owned),
        cluster: top
            .get("cluster")
            .and_then(|n| read_str(n, "cluster", errors))
            .map(str::to_owned),
        cilium_version: version,
        ..Snapshot::default()
    };
    if let Some(nodes) = top.get("nodes").and_then(|n| read_seq(n, "nodes", errors)) {
        for (i, n) in nodes.iter().enumerate() {
            let path = field::item("nodes", i);
            if let Some(node) = read_node(n, &path, errors) {
                if snap.nodes.contains_key(&node.name) {
                    errors.push(FieldError::new(
                        field::child(&path, "name"),
                        Reason::Duplicate(field::quote(&node.name)),
                    ));
                } else {
                    snap.nodes.insert(node.name.clone(), node);
                }
            }
        }
    }
    if let Some(local) = &snap.local_node
        && !snap.nodes.contains_key(local)
    {
        errors.push(FieldError::new(
            "localNode",
            Reason::NotFound(field::quote(local)),
        ));
    }
    let mut uids = HashSet::new();
    let mut add_endpoint =
        |i: usize, e: &Value, snap: &mut Snapshot, errors: &mut Vec<FieldError>| {
            let path = field::item("endpoints", i);
            if let Some(ep) = read_endpoint(e, &path, errors) {
                if !uids.insert(ep.uid.clone()) {
                    errors.push(FieldError::new(
                        field::child(&path, "uid"),
                        Reason::Duplicate(field::quote(&ep.uid)),
                    ));
                }
                snap.endpoints.push(ep);
            }
        };
    match endpoints {
        // Each endpoint's document dropped once read: the tree and the endpoints are not
        // held whole at once.
        Some(Value::Seq(items)) => {
            snap.endpoints.reserve_exact(items.len());
            for (i, e) in items.into_iter().enumerate() {
                add_endpoint(i, &e, &mut snap, errors);
            }
        }
        Some(other) => {
            read_seq(&other, "endpoints", errors);
        }
        None => {
            if let Some(eps) = top
                .get("endpoints")
                .and_then(|n| read_seq(n, "endpoints", errors))
            {
                snap.endpoints.reserve_exact(eps.len());
                for (i, e) in eps.iter().enumerate() {
                    add_endpoint(i, e, &mut snap, errors);
                }
            }
        }
    }
    if let Some(policies) = top
        .get("policies")
        .and_then(|n| read_seq(n, "policies", errors))
    {
        // Counted before any is parsed: the items, then the policies of `List` items once
        // flattened (flattening copies no more than the list holds).
        if policies.len() > MAX_POLICIES {
            errors.push(too_many_policies(policies.len()));
        } else {
            let docs = document::flatten_lists(policies.to_vec());
            if docs.len() > MAX_POLICIES {
                errors.push(too_many_policies(docs.len()));
            } else {
                let mut names = HashSet::new();
                for (i, p) in docs.iter().enumerate() {
                    let path = field::item("policies", i);
                    if !matches!(p, Value::Map(_)) {
                        errors.push(type_error(&path, p, "object"));
                        continue;
                    }
                    snap.add_policy(p, &path, &mut names, errors);
                }
            }
        }
    }
    match top.get_raw("interfaces") {
        None => {}
        Some(node) => snap.interfaces = read_devices(node, "interfaces", errors),
    }
    Some(snap)
}

pub(super) fn read_name(
    fields: &Fields<'_>,
    key: &str,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    match fields.get(key) {
        None => {
            errors.push(FieldError::required(fields.path_of(key)));
            None
        }
        Some(n) => match read_str(n, &fields.path_of(key), errors) {
            Some("") => {
                errors.push(FieldError::required(fields.path_of(key)));
                None
            }
            other => other.map(str::to_owned),
        },
    }
}

pub(super) fn read_labels(
    fields: &Fields<'_>,
    key: &str,
    errors: &mut Vec<FieldError>,
) -> BTreeMap<String, String> {
    let limits = if key == "identityLabels" {
        LabelLimits::Identity
    } else {
        LabelLimits::Kubernetes
    };
    fields
        .get(key)
        .map(|n| {
            document::read_labels(n, &fields.path_of(key), limits, errors)
                .into_iter()
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn read_addr(
    node: &Value,
    path: &str,
    want_v4: Option<bool>,
    errors: &mut Vec<FieldError>,
) -> Option<IpAddr> {
    let s = read_str(node, path, errors)?;
    let parsed = netip::parse_addr(s)
        .ok()
        .filter(|a| a.zone.is_none())
        .map(|a| a.addr);
    let family_ok = |ip: &IpAddr| want_v4.is_none_or(|v4| ip.is_ipv4() == v4);
    match parsed {
        Some(ip) if family_ok(&ip) => Some(ip),
        _ => {
            let what = match want_v4 {
                Some(true) => "not an IPv4 address",
                Some(false) => "not an IPv6 address",
                None => "not an IP address",
            };
            errors.push(FieldError::invalid_str(path, s, what));
            None
        }
    }
}

pub(super) fn read_node(doc: &Value, path: &str, errors: &mut Vec<FieldError>) -> Option<Node> {
    let f = Fields::open(doc, path, errors)?;
    f.finish(NODE, errors);
    let name = read_name(&f, "name", errors);
    let labels: Labels = read_labels(&f, "labels", errors).into();
    let ipv4 = f
        .get("ipv4")
        .and_then(|n| read_addr(n, &f.path_of("ipv4"), Some(true), errors));
    let ipv6 = f
        .get("ipv6")
        .and_then(|n| read_addr(n, &f.path_of("ipv6"), Some(false), errors));
    let ready = match f.get("ready") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            errors.push(type_error(&f.path_of("ready"), other, "boolean"));
            true
        }
    };
    let weight = match f.get("weight") {
        None => 1,
        Some(Value::Int(w)) if (0..=100).contains(w) => *w as u8,
        Some(other) => {
            let detail = match other {
                Value::Float(_) => {
                    "must be an integer from 0 to 100, written without a decimal point"
                }
                _ => "must be an integer from 0 to 100",
            };
            errors.push(FieldError::new(
                f.path_of("weight"),
                Reason::Invalid {
                    value: other.render(),
                    detail: detail.to_owned(),
                },
            ));
            1
        }
    };
    let interfaces = f
        .get_raw("interfaces")
        .and_then(|n| read_devices(n, &f.path_of("interfaces"), errors));
    Some(Node {
        name: name?,
        labels,
        ipv4: ipv4.and_then(netip::as_v4),
        ipv6: ipv6.and_then(netip::as_v6),
        ready,
        weight,
        interfaces,
        external_ips: Vec::new(),
    })
}

pub(super) fn read_endpoint(
    doc: &Value,
    path: &str,
    errors: &mut Vec<FieldError>,
) -> Option<Endpoint> {
    let f = Fields::open(doc, path, errors)?;
    f.finish(ENDPOINT, errors);
    let uid = read_name(&f, "uid", errors);
    let opt_str = |key: &str, errors: &mut Vec<FieldError>| {
        f.get(key)
            .and_then(|n| read_str(n, &f.path_of(key), errors))
            .map(str::to_owned)
    };
    let namespace = opt_str("namespace", errors);
    if let Some(ns) = namespace.as_deref().filter(|ns| !ns.is_empty())
        && let Some(problem) = crate::labels::namespace_name_problem(ns)
    {
        errors.push(FieldError::invalid_str(f.path_of("namespace"), ns, problem));
    }
    let name = opt_str("name", errors);
    let service_account = opt_str("serviceAccount", errors);
    let node = opt_str("node", errors);
    let labels = read_labels(&f, "labels", errors);
    let namespace_labels = read_labels(&f, "namespaceLabels", errors);
    let identity_labels = f
        .get("identityLabels")
        .map(|_| read_labels(&f, "identityLabels", errors));
    let mut ips = Vec::new();
    if let Some(list) = f
        .get("ips")
        .and_then(|n| read_seq(n, &f.path_of("ips"), errors))
    {
        for (i, ip) in list.iter().enumerate() {
            if let Some(ip) = read_addr(ip, &field::item(&f.path_of("ips"), i), None, errors) {
                ips.push(ip);
            }
        }
    }
    Some(Endpoint {
        uid: uid?,
        namespace,
        name,
        labels: labels.into(),
        namespace_labels: namespace_labels.into(),
        service_account,
        identity_labels: identity_labels.map(Into::into),
        ips,
        node,
    })
}

/// Reads a device list; `null` is refused (an empty list means "no devices").
pub(super) fn read_devices(
    node: &Value,
    path: &str,
    errors: &mut Vec<FieldError>,
) -> Option<Vec<Device>> {
    if *node == Value::Null {
        errors.push(FieldError::new(
            path,
            Reason::Invalid {
                value: "null".to_owned(),
                detail: "must be a list of interfaces".to_owned(),
            },
        ));
        return None;
    }
    let items = read_seq(node, path, errors)?;
    let mut devices: Vec<Device> = Vec::with_capacity(items.len());
    let mut names: HashSet<String> = HashSet::new();
    let mut indexes: HashSet<u32> = HashSet::new();
    let mut routes = Families::empty();
    for (i, item) in items.iter().enumerate() {
        let dpath = field::item(path, i);
        let Some(dev) = read_device(item, &dpath, errors) else {
            continue;
        };
        // Names and altnames share one namespace on Linux.
        for (key, name) in std::iter::once(("name", &dev.name))
            .chain(dev.alt_names.iter().map(|a| ("altNames", a)))
        {
            if !names.insert(name.clone()) {
                errors.push(FieldError::new(
                    field::child(&dpath, key),
                    Reason::Duplicate(field::quote(name)),
                ));
            }
        }
        if !indexes.insert(dev.index) {
            errors.push(FieldError::new(
                field::child(&dpath, "index"),
                Reason::Duplicate(dev.index.to_string()),
            ));
        }
        let shared = routes & dev.default_route;
        if !shared.is_empty() {
            let fam = if shared.contains(Families::IPV4) {
                "ipv4"
            } else {
                "ipv6"
            };
            errors.push(FieldError::new(
                field::child(&dpath, "defaultRoute"),
                Reason::Invalid {
                    value: field::quote(fam),
                    detail: "another interface already carries this family's default route"
                        .to_owned(),
                },
            ));
        }
        routes |= dev.default_route;
        devices.push(dev);
    }
    Some(devices)
}

pub(super) fn read_device(doc: &Value, path: &str, errors: &mut Vec<FieldError>) -> Option<Device> {
    let f = Fields::open(doc, path, errors)?;
    f.finish(DEVICE, errors);
    let name = read_name(&f, "name", errors);
    let index = match f.get("index") {
        None => {
            errors.push(FieldError::required(f.path_of("index")));
            None
        }
        Some(Value::Int(i)) if (1..=i128::from(u32::MAX)).contains(i) => Some(*i as u32),
        Some(other) => {
            errors.push(FieldError::new(
                f.path_of("index"),
                Reason::Invalid {
                    value: other.render(),
                    detail: "must be a positive 32-bit integer".to_owned(),
                },
            ));
            None
        }
    };
    let mut alt_names = Vec::new();
    if let Some(list) = f
        .get("altNames")
        .and_then(|n| read_seq(n, &f.path_of("altNames"), errors))
    {
        for (i, a) in list.iter().enumerate() {
            if let Some(s) = read_str(a, &field::item(&f.path_of("altNames"), i), errors) {
                alt_names.push(s.to_owned());
            }
        }
    }
    let mut addresses = Vec::new();
    if let Some(list) = f
        .get("addresses")
        .and_then(|n| read_seq(n, &f.path_of("addresses"), errors))
    {
        for (i, a) in list.iter().enumerate() {
            let apath = field::item(&f.path_of("addresses"), i);
            let Some(s) = read_str(a, &apath, errors) else {
                continue;
            };
            match netip::parse_interface_address(s) {
                Some((addr, prefix_len)) => addresses.push(DeviceAddress { addr, prefix_len }),
                None => errors.push(FieldError::invalid_str(
                    apath,
                    s,
                    "must be an address with its prefix length (addr/len)",
                )),
            }
        }
    }
    let default_route = match f.get("defaultRoute") {
        None | Some(Value::Bool(false)) => Families::empty(),
        Some(Value::Bool(true)) => Families::all(),
        Some(Value::Seq(items)) => {
            let mut fams = Families::empty();
            for (i, item) in items.iter().enumerate() {
                let ipath = field::item(&f.path_of("defaultRoute"), i);
                match read_str(item, &ipath, errors) {
                    Some("ipv4") => fams |= Families::IPV4,
                    Some("ipv6") => fams |= Families::IPV6,
                    Some(other) => errors.push(FieldError::new(
                        ipath,
                        Reason::Unsupported {
                            value: field::quote(other),
                            supported: &["ipv4", "ipv6"],
                        },
                    )),
                    None => {}
                }
            }
            fams
        }
        Some(other) => {
            errors.push(type_error(
                &f.path_of("defaultRoute"),
                other,
                "boolean or array",
            ));
            Families::empty()
        }
    };
    Some(Device {
        name: name?,
        index: index?,
        alt_names,
        addresses,
        default_route,
    })
}
