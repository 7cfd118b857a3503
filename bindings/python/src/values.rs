//! The immutable values the engine hands to Python: verdicts, entries, plans and their
//! operations, explanations; and the conversions of addresses both ways.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};

use egress_core::engine::{Action, PlanOp as CorePlanOp};
use egress_core::entries::Entry as CoreEntry;
use egress_core::lookup::{VerdictKind, VerdictRecord};
use egress_core::render;

/// An `ipaddress.IPv4Address` / `IPv6Address`.
pub(crate) fn ip_object(py: Python<'_>, ip: IpAddr) -> PyResult<Bound<'_, PyAny>> {
    let ipaddress = py.import("ipaddress")?;
    match ip {
        IpAddr::V4(a) => ipaddress.call_method1("IPv4Address", (PyBytes::new(py, &a.octets()),)),
        IpAddr::V6(a) => ipaddress.call_method1("IPv6Address", (PyBytes::new(py, &a.octets()),)),
    }
}

/// An address argument: a `str` or an `ipaddress` address (anything with `.packed`).
pub(crate) fn ip_arg(value: &Bound<'_, PyAny>, name: &str) -> PyResult<IpAddr> {
    if value.is_instance_of::<PyString>() {
        let text: String = value.extract()?;
        return text
            .parse()
            .map_err(|_| PyValueError::new_err(format!("{name}: {text:?} is not an IP address")));
    }
    let packed = value.getattr("packed").map_err(|_| {
        PyTypeError::new_err(format!(
            "{name}: expected a str or an ipaddress address, got {}",
            value
                .get_type()
                .name()
                .map_or_else(|_| "?".to_owned(), |n| n.to_string())
        ))
    })?;
    let bytes: Vec<u8> = packed.extract()?;
    match <[u8; 4]>::try_from(bytes.as_slice()) {
        Ok(v4) => Ok(IpAddr::V4(Ipv4Addr::from(v4))),
        Err(_) => <[u8; 16]>::try_from(bytes.as_slice())
            .map(|v6| IpAddr::V6(Ipv6Addr::from(v6)))
            .map_err(|_| PyValueError::new_err(format!("{name}: not an IP address"))),
    }
}

/// What the datapath does with a packet: `.kind` is one of `"no_entry"`,
/// `"drop_no_gateway"`, `"drop_no_egress_ip"`, `"excluded"`, `"forward"`, `"masquerade"`;
/// `.gateway_ip` is set for `forward`, `.egress_ip` and `.ifindex` for `masquerade`.
#[pyclass(frozen, eq, hash, module = "egress_gateway")]
#[derive(Clone, Eq)]
pub(crate) struct Verdict {
    pub(crate) record: VerdictRecord,
    /// The source's family: it says how to read `egress_ip` (masquerade only).
    pub(crate) ipv4: bool,
}

impl Verdict {
    /// What the object shows: the record, and the family where it decides the egress IP.
    fn visible(&self) -> (VerdictRecord, bool) {
        let masquerade = self.record.kind == VerdictKind::Masquerade;
        (self.record, masquerade && self.ipv4)
    }
}

impl PartialEq for Verdict {
    fn eq(&self, other: &Self) -> bool {
        self.visible() == other.visible()
    }
}

impl std::hash::Hash for Verdict {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.visible().hash(state);
    }
}

#[pymethods]
impl Verdict {
    /// The kind's name.
    #[getter]
    fn kind(&self) -> &'static str {
        self.record.kind.name()
    }

    /// Forward: the gateway node's `IPv4Address`; otherwise `None`.
    #[getter]
    fn gateway_ip<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        (self.record.kind == VerdictKind::Forward)
            .then(|| ip_object(py, IpAddr::V4(Ipv4Addr::from(self.record.gateway_ip))))
            .transpose()
    }

    /// Masquerade: the egress IP (the source's family); otherwise `None`.
    #[getter]
    fn egress_ip<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        if self.record.kind != VerdictKind::Masquerade {
            return Ok(None);
        }
        let bytes = self.record.egress_ip;
        let ip = if self.ipv4 {
            IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
        } else {
            IpAddr::V6(Ipv6Addr::from(bytes))
        };
        ip_object(py, ip).map(Some)
    }

    /// Masquerade: the egress interface index (0: route lookup); otherwise `None`.
    #[getter]
    fn ifindex(&self) -> Option<u32> {
        (self.record.kind == VerdictKind::Masquerade).then_some(self.record.ifindex)
    }

    /// `{"kind": ..., "gateway_ip": str | None, "egress_ip": str | None, "ifindex": int | None}`.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        dict.set_item("kind", self.kind())?;
        let text =
            |o: Option<Bound<'py, PyAny>>| o.map(|o| o.str().map(|s| s.to_string())).transpose();
        dict.set_item("gateway_ip", text(self.gateway_ip(py)?)?)?;
        dict.set_item("egress_ip", text(self.egress_ip(py)?)?)?;
        dict.set_item("ifindex", self.ifindex())?;
        Ok(dict)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!("Verdict({})", self.to_dict(py)?.repr()?))
    }
}

/// One map entry: `source` (the endpoint IP), `destination` (an `ipaddress` interface: the
/// stored address, host bits kept, and its prefix length), `egress_ip`, `gateway_ip`
/// (`0.0.0.0`: no gateway, drop; `0.0.0.1`: excluded), `egress_ifindex`.
#[pyclass(frozen, eq, hash, module = "egress_gateway")]
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct Entry {
    pub(crate) entry: CoreEntry,
}

#[pymethods]
impl Entry {
    /// The endpoint IP (the key's exact source).
    #[getter]
    fn source<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        ip_object(py, self.entry.source)
    }

    /// The destination prefix as an `IPv4Interface` / `IPv6Interface`: `.ip` is the address as
    /// stored, `.network` the prefix.
    #[getter]
    fn destination<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        py.import("ipaddress")?
            .call_method1("ip_interface", (self.entry.destination.to_string(),))
    }

    /// The egress IP, of the source's family (unspecified: none).
    #[getter]
    fn egress_ip<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        ip_object(py, self.entry.egress_ip)
    }

    /// The gateway IPv4.
    #[getter]
    fn gateway_ip<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        ip_object(py, IpAddr::V4(self.entry.gateway_ip))
    }

    /// The egress interface index (0: route lookup).
    #[getter]
    fn egress_ifindex(&self) -> u32 {
        self.entry.egress_ifindex
    }

    /// The row of `egressctl list -o json`: `sourceIP`, `destCIDR`, `egressIP`, `gatewayIP`,
    /// `egressIfindex`.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        dict.set_item("sourceIP", self.entry.source.to_string())?;
        dict.set_item("destCIDR", self.entry.destination.to_string())?;
        dict.set_item("egressIP", self.entry.egress_ip.to_string())?;
        dict.set_item("gatewayIP", self.entry.gateway_ip.to_string())?;
        dict.set_item("egressIfindex", self.entry.egress_ifindex)?;
        Ok(dict)
    }

    fn __repr__(&self) -> String {
        format!(
            "Entry(source={}, destination={}, egress_ip={}, gateway_ip={}, egress_ifindex={})",
            self.entry.source,
            self.entry.destination,
            self.entry.egress_ip,
            self.entry.gateway_ip,
            self.entry.egress_ifindex
        )
    }
}

/// One map operation of a plan, with the kernel's exact bytes: `map` (the pinned map's
/// name), `action` (`"upsert"` or `"delete"`), `key`, `value` (empty for a delete), `entry`.
#[pyclass(frozen, module = "egress_gateway")]
pub(crate) struct PlanOp {
    op: CorePlanOp,
}

#[pymethods]
impl PlanOp {
    /// The pinned map's name.
    #[getter]
    fn map(&self) -> &'static str {
        self.op.map().name()
    }

    /// `"upsert"` or `"delete"`.
    #[getter]
    fn action(&self) -> &'static str {
        match self.op.action() {
            Action::Upsert => "upsert",
            Action::Delete => "delete",
        }
    }

    /// The key's bytes.
    #[getter]
    fn key<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.op.key())
    }

    /// The value's bytes (empty for a delete).
    #[getter]
    fn value<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.op.value())
    }

    /// The entry written, or the programmed entry deleted (`None` for the compact layout's
    /// operations, which write endpoints and rules: `subject` says which).
    #[getter]
    fn entry(&self) -> Option<Entry> {
        self.op.entry().map(|e| Entry { entry: *e })
    }

    /// What the operation writes, as text: the entry, the endpoint and its set, or the
    /// set's rule.
    #[getter]
    fn subject(&self) -> String {
        self.op.subject().to_string()
    }

    fn __repr__(&self) -> String {
        let subject = match self.op.entry() {
            Some(e) => Entry { entry: *e }.__repr__(),
            None => self.subject(),
        };
        format!("PlanOp({} {} {})", self.action(), self.map(), subject)
    }
}

/// What to write: `ops` (every upsert, then every delete — the deletes first when
/// `deletes_first` — no key twice), acknowledged with `Engine.ack(plan, applied)`.
#[pyclass(frozen, module = "egress_gateway")]
pub(crate) struct Plan {
    pub(crate) plan: egress_core::engine::Plan,
}

#[pymethods]
impl Plan {
    /// The operations, in order.
    #[getter]
    fn ops(&self) -> Vec<PlanOp> {
        self.plan
            .ops()
            .iter()
            .map(|op| PlanOp { op: op.clone() })
            .collect()
    }

    /// How many operations are upserts (they come first, unless `deletes_first`).
    #[getter]
    fn upserts(&self) -> usize {
        self.plan.upserts().len()
    }

    /// Whether the deletes come first: upserting first would take a map past its
    /// `max_entries`, and the desired state fits.
    #[getter]
    fn deletes_first(&self) -> bool {
        self.plan.deletes_first()
    }

    /// How many operations are deletes.
    #[getter]
    fn deletes(&self) -> usize {
        self.plan.deletes().len()
    }

    fn __len__(&self) -> usize {
        self.plan.len()
    }

    fn __bool__(&self) -> bool {
        !self.plan.is_empty()
    }

    fn __repr__(&self) -> String {
        format!(
            "Plan({} upserts, {} deletes{})",
            self.plan.upserts().len(),
            self.plan.deletes().len(),
            if self.plan.deletes_first() {
                ", deletes first"
            } else {
                ""
            }
        )
    }
}

/// Why a packet gets its verdict: the fields of `egressctl explain -o json` — `source`,
/// `destination`, `verdict`, `source_entries`, `match` (the entry, its producer, the gateway
/// choice and the overridden producers, or `None`); `to_dict()` gives that document exactly.
#[pyclass(frozen, module = "egress_gateway")]
pub(crate) struct Explanation {
    pub(crate) json: serde_json::Value,
    pub(crate) verdict: Verdict,
}

impl Explanation {
    pub(crate) fn new(x: &egress_core::engine::Explanation) -> Self {
        Explanation {
            json: render::explanation_json(x),
            verdict: Verdict {
                record: x.verdict.into(),
                ipv4: x.source.is_ipv4(),
            },
        }
    }

    fn field<'py>(&self, py: Python<'py>, key: &str) -> PyResult<Bound<'py, PyAny>> {
        json_object(py, &self.json[key])
    }
}

/// A JSON value as Python objects (through the `json` module: dicts, lists, str, int, None).
pub(crate) fn json_object<'py>(
    py: Python<'py>,
    value: &serde_json::Value,
) -> PyResult<Bound<'py, PyAny>> {
    py.import("json")?
        .call_method1("loads", (value.to_string(),))
}

#[pymethods]
impl Explanation {
    /// The source address, as given.
    #[getter]
    fn source<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.field(py, "source")
    }

    /// The destination address, as given.
    #[getter]
    fn destination<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.field(py, "destination")
    }

    /// The verdict.
    #[getter]
    fn verdict(&self) -> Verdict {
        self.verdict.clone()
    }

    /// How many entries the source has.
    #[getter]
    fn source_entries<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.field(py, "sourceEntries")
    }

    /// The matching entry and why it is there (a dict shaped as in the JSON), or `None`.
    #[getter]
    #[pyo3(name = "match")]
    fn matched<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.field(py, "match")
    }

    /// The `egressctl explain -o json` document.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json_object(py, &self.json)
    }

    fn __repr__(&self) -> String {
        format!("Explanation({})", self.json)
    }
}
