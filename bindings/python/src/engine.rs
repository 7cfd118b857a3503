//! `egress_gateway.Engine`: one node's engine behind a read-write lock, so that lookups and
//! queries from many threads run together and events take turns. A call never waits for the
//! lock while holding the GIL: it takes the lock at once when it is free, else releases the
//! GIL and waits; parsing and converting inputs happen before the lock is taken.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{PoisonError, RwLock, TryLockError};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};

use egress_core::cluster::NodeHealth;
use egress_core::engine::{Engine as CoreEngine, EngineConfig};
use egress_core::gateway::Selection;
use egress_core::lookup::{VerdictRecord, query_addresses};
use egress_core::maps::{DEFAULT_MAX_ENTRIES, Layout};
use egress_core::version::CiliumVersion;
use egress_core::{render, snapshot};

use crate::errors::{IntoPy, from_core};
use crate::values::{Entry, Explanation, Plan, Verdict, ip_arg, ip_object, json_object};

/// How `json.dumps` writes what JSON has no type for: an `ipaddress` address as the value it
/// is ([`address_value`]: SEMANTICS B.6, an IPv4-mapped one is the IPv4 address — a string
/// stays text, read as Cilium reads it), a `datetime` as RFC 3339 (what the API server
/// writes; a naive one is taken as UTC), a `date` as ISO 8601; anything else is a
/// `TypeError`, never a silent `str()`. `check_keys` refuses a mapping key that is not a
/// `str` (`json.dumps` would write `1`, `None`, `True` as the strings "1", "null", "true").
const JSON_DEFAULT: &std::ffi::CStr = c"
import datetime

def check_keys(value):
    stack = [(value, 'data')]
    while stack:
        item, path = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise TypeError(f'{path}: the key {key!r} is a {type(key).__name__}, not a str')
                stack.append((child, f'{path}.{key}'))
        elif isinstance(item, (list, tuple)):
            stack.extend((child, f'{path}[{i}]') for i, child in enumerate(item))

def default(value):
    if hasattr(value, 'packed') and hasattr(value, 'version'):
        return address_value(value)
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        text = value.isoformat()
        return text[:-6] + 'Z' if text.endswith('+00:00') else text
    if isinstance(value, datetime.date):
        return value.isoformat()
    raise TypeError(f'{type(value).__name__} is not a JSON value')
";

static JSON_MODULE: pyo3::sync::PyOnceLock<Py<PyModule>> = pyo3::sync::PyOnceLock::new();

/// The IPv4 maps Cilium `version` writes (CILIUM-VERSIONS.md §5), as the core says:
/// `"legacy"` for 1.18 and 1.19, `"dual"` for 1.20 — what `Maps.open` needs named for an
/// engine of the version's own layout. An unknown version is a `ValueError` naming it.
#[pyfunction]
pub(crate) fn cilium_version_layout(py: Python<'_>, version: &str) -> PyResult<&'static str> {
    Ok(cilium_version(py, version)?.layout().name())
}

/// An `ipaddress` address as the core reads a value (`egress_core::netip::address_value`),
/// as text.
#[pyfunction]
fn address_value(ip: &Bound<'_, PyAny>) -> PyResult<String> {
    Ok(egress_core::netip::address_value(ip_arg(ip, "address")?).to_string())
}

/// JSON text of a mapping or list (through `json.dumps` with [`JSON_DEFAULT`]), every
/// mapping key checked to be a `str` first.
fn json_dumps(value: &Bound<'_, PyAny>) -> PyResult<String> {
    let py = value.py();
    let module = JSON_MODULE.get_or_try_init(py, || {
        PyModule::from_code(
            py,
            JSON_DEFAULT,
            c"egress_gateway_json.py",
            c"egress_gateway_json",
        )
        .and_then(|module| {
            module.setattr("address_value", wrap_pyfunction!(address_value, py)?)?;
            Ok(module.unbind())
        })
    })?;
    let module = module.bind(py);
    module.getattr("check_keys")?.call1((value,))?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("default", module.getattr("default")?)?;
    py.import("json")?
        .call_method("dumps", (value,), Some(&kwargs))?
        .extract()
}

/// What a document argument may be besides text.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lists {
    /// A list is refused (one object is expected).
    Refused,
    /// A list is the value itself (a device list).
    Value,
    /// A list holds objects: it becomes a Kubernetes `List`.
    Objects,
}

/// Text from what callers hold: `str`, UTF-8 `bytes`, or a mapping (what PyYAML or the
/// Kubernetes client give) turned into JSON; a list as `lists` says.
pub(crate) fn text_of(value: &Bound<'_, PyAny>, name: &str, lists: Lists) -> PyResult<String> {
    if value.is_instance_of::<PyString>() {
        return value.extract();
    }
    if let Ok(bytes) = value.cast::<PyBytes>() {
        return String::from_utf8(bytes.as_bytes().to_vec())
            .map_err(|e| PyValueError::new_err(format!("{name}: not UTF-8 ({e})")));
    }
    let py = value.py();
    if value.is_instance_of::<PyDict>() {
        return json_dumps(value);
    }
    if value.is_instance(&py.import("collections.abc")?.getattr("Mapping")?)? {
        return json_dumps(&py.get_type::<PyDict>().call1((value,))?);
    }
    if value.is_instance_of::<PyList>() && lists != Lists::Refused {
        if lists == Lists::Objects {
            let wrapped = PyDict::new(py);
            wrapped.set_item("kind", "List")?;
            wrapped.set_item("items", value)?;
            return json_dumps(&wrapped.into_any());
        }
        return json_dumps(value);
    }
    let expected = if lists == Lists::Refused {
        "str, bytes or a mapping"
    } else {
        "str, bytes, a mapping or a list"
    };
    Err(PyTypeError::new_err(format!(
        "{name}: expected {expected}, got {}",
        value.get_type().name()?
    )))
}

/// `from_snapshot`'s data: a path-like names a file; anything else as [`text_of`].
fn snapshot_text(py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<String> {
    if data.hasattr("__fspath__")? {
        let path: std::path::PathBuf = data.call_method0("__fspath__")?.extract()?;
        let bytes = py.detach(|| std::fs::read(&path)).map_err(|e| {
            let errno = e.raw_os_error().unwrap_or(0);
            pyo3::exceptions::PyOSError::new_err((errno, e.to_string(), path.display().to_string()))
        })?;
        return String::from_utf8(bytes)
            .map_err(|e| PyValueError::new_err(format!("{}: not UTF-8 ({e})", path.display())));
    }
    text_of(data, "data", Lists::Refused)
}

/// A named choice (`selection`, `layout`, `cilium_version`) read as the core reads it.
fn choice<T: std::str::FromStr<Err = egress_core::field::FieldError>>(
    py: Python<'_>,
    name: &str,
) -> PyResult<T> {
    name.parse()
        .map_err(|e| from_core(py, &egress_core::Error::InvalidArgument(e)))
}

fn selection(py: Python<'_>, name: &str) -> PyResult<Selection> {
    choice(py, name)
}

pub(crate) fn layout(py: Python<'_>, name: &str) -> PyResult<Layout> {
    choice(py, name)
}

fn cilium_version(py: Python<'_>, name: &str) -> PyResult<CiliumVersion> {
    choice(py, name)
}

/// The engine configuration of the keyword arguments: `layout` `None` is the Cilium
/// version's own maps.
fn config_of(
    py: Python<'_>,
    local_node: &str,
    selection: &str,
    cilium_version: &str,
    layout: Option<&str>,
) -> PyResult<EngineConfig> {
    let base = EngineConfig::new(local_node)
        .with_cilium_version(self::cilium_version(py, cilium_version)?);
    Ok(EngineConfig {
        selection: self::selection(py, selection)?,
        layout: match layout {
            Some(name) => self::layout(py, name)?,
            None => base.layout,
        },
        ..base
    })
}

/// One node's egress gateway engine: events in (policies, nodes, endpoints, namespaces,
/// devices), the node's maps, lookups, explanations and two-phase plans out.
///
/// Safe to share between threads: lookups and queries run concurrently, events and `ack`
/// take turns; no call holds the GIL while it waits for another thread's event.
#[pyclass(frozen, module = "egress_gateway")]
pub(crate) struct Engine {
    inner: RwLock<CoreEngine>,
}

impl Engine {
    fn wrap(engine: CoreEngine) -> Self {
        Engine {
            inner: RwLock::new(engine),
        }
    }

    /// Runs `f` on the engine under the read lock: at once when the lock is free, else
    /// waiting with the GIL released. (A panic in an earlier call leaves the engine whole:
    /// events change nothing before they succeed; the poison is ignored.)
    pub(crate) fn reading<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&CoreEngine) -> T + Send,
    ) -> T {
        match self.inner.try_read() {
            Ok(engine) => f(&engine),
            Err(TryLockError::Poisoned(poisoned)) => f(&poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => {
                py.detach(|| f(&self.inner.read().unwrap_or_else(PoisonError::into_inner)))
            }
        }
    }

    /// [`Engine::reading`] under the write lock.
    pub(crate) fn writing<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut CoreEngine) -> T + Send,
    ) -> T {
        match self.inner.try_write() {
            Ok(mut engine) => f(&mut engine),
            Err(TryLockError::Poisoned(poisoned)) => f(&mut poisoned.into_inner()),
            Err(TryLockError::WouldBlock) => {
                py.detach(|| f(&mut self.inner.write().unwrap_or_else(PoisonError::into_inner)))
            }
        }
    }

    /// Heavy work under the write lock, with the GIL released throughout.
    pub(crate) fn writing_detached<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut CoreEngine) -> T + Send,
    ) -> T {
        py.detach(|| f(&mut self.inner.write().unwrap_or_else(PoisonError::into_inner)))
    }

    /// Heavy work on the engine with the GIL released throughout.
    fn reading_detached<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&CoreEngine) -> T + Send,
    ) -> T {
        py.detach(|| f(&self.inner.read().unwrap_or_else(PoisonError::into_inner)))
    }

    /// Parses text with `parse` (GIL released, no lock held) and applies the result with
    /// `apply` under the write lock.
    fn event<T: Send>(
        &self,
        py: Python<'_>,
        text: String,
        parse: impl FnOnce(&str) -> Result<T, egress_core::Error> + Send,
        apply: impl FnOnce(&mut CoreEngine, T) -> Result<(), egress_core::Error> + Send,
    ) -> PyResult<()> {
        let value = py.detach(|| parse(&text)).py_err(py)?;
        self.writing(py, |engine| apply(engine, value)).py_err(py)
    }
}

#[pymethods]
impl Engine {
    /// An empty engine computing the maps of `local_node`.
    #[new]
    #[pyo3(signature = (local_node, selection="cilium", layout=None, max_entries=None, cluster=None, *, cilium_version="1.18"))]
    fn new(
        py: Python<'_>,
        local_node: &str,
        selection: &str,
        layout: Option<&str>,
        max_entries: Option<u32>,
        cluster: Option<String>,
        cilium_version: &str,
    ) -> PyResult<Self> {
        let config = EngineConfig {
            max_entries: max_entries.unwrap_or(DEFAULT_MAX_ENTRIES),
            cluster,
            ..config_of(py, local_node, selection, cilium_version, layout)?
        };
        Ok(Engine::wrap(CoreEngine::try_new(config).py_err(py)?))
    }

    /// An engine holding a snapshot's objects, as `egressctl list -f` reads them. `data` is
    /// snapshot text (`str`/`bytes`: a snapshot or a Kubernetes dump), a parsed snapshot (a
    /// mapping), or a path (`os.PathLike`; a `str` is text, never a path). `local_node`
    /// (default: the snapshot's `localNode`) is the node whose maps are computed. Invalid
    /// policies are left out, as `egressctl list` does.
    #[staticmethod]
    #[pyo3(signature = (data, *, local_node=None, selection="cilium", layout=None, max_entries=None, cilium_version="1.18"))]
    fn from_snapshot(
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        local_node: Option<&str>,
        selection: &str,
        layout: Option<&str>,
        max_entries: Option<u32>,
        cilium_version: &str,
    ) -> PyResult<Self> {
        let text = snapshot_text(py, data)?;
        let config = EngineConfig {
            max_entries: max_entries.unwrap_or(DEFAULT_MAX_ENTRIES),
            ..config_of(py, "", selection, cilium_version, layout)?
        };
        let local_node = local_node.map(str::to_owned);
        let loaded = py.detach(|| {
            CoreEngine::load_snapshot(&text, local_node.as_deref(), "local_node", config)
        });
        match loaded {
            Ok(loaded) => Ok(Engine::wrap(loaded.engine)),
            Err(e) => {
                let err = from_core(py, &e);
                // A file name given as a str is read as (one-line) text: say so.
                let one_line = !text.contains('\n') && std::path::Path::new(text.trim()).is_file();
                if one_line {
                    let value = err.value(py);
                    let note = format!(
                        "{value} (a str is snapshot text; for the file {:?} pass pathlib.Path)",
                        text.trim()
                    );
                    let _ = value.setattr("args", (note,));
                }
                Err(err)
            }
        }
    }

    /// The node whose maps are computed.
    #[getter]
    fn local_node(&self, py: Python<'_>) -> String {
        self.reading(py, |e| e.config().local_node.clone())
    }

    /// `"cilium"` or `"consistent"`.
    #[getter]
    fn selection(&self, py: Python<'_>) -> &'static str {
        self.reading(py, |e| e.config().selection.name())
    }

    /// `"v4v2"` or `"legacy"`.
    #[getter]
    fn layout(&self, py: Python<'_>) -> &'static str {
        self.reading(py, |e| e.config().layout.name())
    }

    /// The Cilium version reproduced: `"1.18"`, `"1.19"` or `"1.20"`.
    #[getter]
    fn cilium_version(&self, py: Python<'_>) -> &'static str {
        self.reading(py, |e| e.config().cilium_version.name())
    }

    /// The maps as JSON: exactly what `egressctl list -o json` prints.
    fn maps_json(&self, py: Python<'_>) -> String {
        self.reading_detached(py, |e| render::to_json(&e.entries()))
    }

    /// The maps as the engine's Cilium version's `cilium-dbg bpf egress list` prints them
    /// (`""` when they are empty).
    fn format_table(&self, py: Python<'_>) -> String {
        self.reading_detached(py, |e| {
            render::to_table_for(&e.entries(), e.config().cilium_version).unwrap_or_default()
        })
    }

    /// The desired entries, IPv4 first, each map in `list` order.
    fn entries(&self, py: Python<'_>) -> Vec<Entry> {
        let maps = self.reading_detached(py, CoreEngine::entries);
        maps.iter().map(|&entry| Entry { entry }).collect()
    }

    /// The verdict for a packet from `src` to `dst` (`str` or `ipaddress` addresses). As
    /// every binding reads addresses given as values (SEMANTICS B.6): an IPv4-mapped address
    /// is the IPv4 address; a source and destination of different families raise
    /// `ValueError` naming `dst`.
    fn lookup(
        &self,
        py: Python<'_>,
        src: &Bound<'_, PyAny>,
        dst: &Bound<'_, PyAny>,
    ) -> PyResult<Verdict> {
        let (src, dst) = (ip_arg(src, "src")?, ip_arg(dst, "dst")?);
        let (src, dst) = query_addresses(src, dst).py_err(py)?;
        Ok(Verdict {
            record: self.reading(py, |e| e.lookup_record(src, dst)),
            ipv4: src.is_ipv4(),
        })
    }

    /// Many lookups at once, without a Python object per query. `queries` holds packed
    /// (source, destination) pairs in network order — 8 bytes each for `family=4`, 32 for
    /// `family=6` — in any C-contiguous buffer of bytes (`bytes`, `bytearray`, `memoryview`,
    /// `array.array('B')`, a NumPy `uint8` array). Returns `bytes`: one 28-byte record per
    /// query, `struct` format `"<I4s16sI"` (kind number — an index of `VERDICT_KINDS` —,
    /// gateway IPv4, egress IP, ifindex; the egress IP in the first 4 bytes for an IPv4
    /// source). With `family=6`, addresses are read as `lookup` reads them: an IPv4-mapped
    /// source is IPv4, and a query of two families raises `ValueError` naming `queries[i]`
    /// (nothing is answered). The GIL is released while it runs.
    #[pyo3(signature = (queries, *, family=4))]
    fn lookup_many<'py>(
        &self,
        py: Python<'py>,
        queries: &Bound<'py, PyAny>,
        family: u8,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let width = match family {
            4 => 4,
            6 => 16,
            other => {
                return Err(PyValueError::new_err(format!(
                    "family: {other} is not 4 or 6"
                )));
            }
        };
        let owned;
        let bytes: &[u8] = if let Ok(b) = queries.cast::<PyBytes>() {
            b.as_bytes()
        } else {
            // A buffer of bytes only: a memoryview says what the buffer holds, and other
            // formats (words, floats, objects) are refused rather than reinterpreted.
            let view = py
                .get_type::<pyo3::types::PyMemoryView>()
                .call1((queries,))
                .map_err(|_| PyTypeError::new_err("queries: expected a bytes-like object"))?;
            let format: String = view.getattr("format")?.extract()?;
            let contiguous: bool = view.getattr("c_contiguous")?.extract()?;
            if !matches!(format.as_str(), "B" | "b" | "c") || !contiguous {
                return Err(PyTypeError::new_err(format!(
                    "queries: expected a C-contiguous buffer of bytes, got format {format:?}{}",
                    if contiguous { "" } else { ", not contiguous" }
                )));
            }
            owned = view.call_method0("tobytes")?;
            owned.cast::<PyBytes>()?.as_bytes()
        };
        if !bytes.len().is_multiple_of(2 * width) {
            return Err(PyValueError::new_err(format!(
                "queries: {} bytes is not a whole number of {}-byte queries",
                bytes.len(),
                2 * width
            )));
        }
        let count = bytes.len() / (2 * width);
        let ip = |b: &[u8]| -> IpAddr {
            let v6: [u8; 16] = b.try_into().unwrap_or([0; 16]);
            IpAddr::from(v6)
        };
        const CHUNK: usize = 256;
        const SIZE: usize = VerdictRecord::ENCODED_SIZE;
        // The records are written straight into the new bytes object (not yet visible to any
        // other thread), in chunks, with the GIL released.
        PyBytes::new_with(py, count * SIZE, |out| {
            let refused = py.detach(|| {
                let engine = self.inner.read().unwrap_or_else(PoisonError::into_inner);
                let mut pairs = [(IpAddr::from([0u8; 4]), IpAddr::from([0u8; 4])); CHUNK];
                let mut pairs_v4 = [(Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED); CHUNK];
                let mut records = [VerdictRecord::NO_ENTRY; CHUNK];
                let mut done = 0;
                for (qs, out) in bytes
                    .chunks(2 * width * CHUNK)
                    .zip(out.chunks_mut(SIZE * CHUNK))
                {
                    let n = qs.len() / (2 * width);
                    if width == 4 {
                        // IPv4 as values, no `IpAddr`: building one per address went through
                        // the stack at odd offsets (a store-forwarding stall per query).
                        for (pair, q) in pairs_v4.iter_mut().zip(qs.chunks_exact(8)) {
                            *pair = (
                                Ipv4Addr::new(q[0], q[1], q[2], q[3]),
                                Ipv4Addr::new(q[4], q[5], q[6], q[7]),
                            );
                        }
                        engine.lookup_many_records_v4(&pairs_v4[..n], &mut records[..n]);
                    } else {
                        for (i, (pair, q)) in pairs.iter_mut().zip(qs.chunks_exact(32)).enumerate()
                        {
                            // Values (SEMANTICS B.6): IPv4-mapped is IPv4, one family a pair.
                            *pair = query_addresses(ip(&q[..16]), ip(&q[16..]))
                                .map_err(|e| (done + i, e))?;
                        }
                        engine.lookup_many_records(&pairs[..n], &mut records[..n]);
                    }
                    for (slot, r) in out.chunks_exact_mut(SIZE).zip(&records[..n]) {
                        slot.copy_from_slice(&r.encode());
                    }
                    done += n;
                }
                Ok(())
            });
            refused.map_err(|(i, e)| PyValueError::new_err(format!("queries[{i}].{e}")))
        })
    }

    /// Why a packet from `src` to `dst` gets its verdict.
    fn explain(
        &self,
        py: Python<'_>,
        src: &Bound<'_, PyAny>,
        dst: &Bound<'_, PyAny>,
    ) -> PyResult<Explanation> {
        let (src, dst) = (ip_arg(src, "src")?, ip_arg(dst, "dst")?);
        let (src, dst) = query_addresses(src, dst).py_err(py)?;
        Ok(self.reading_detached(py, |e| Explanation::new(&e.explain(src, dst))))
    }

    /// The keys several producers want with different bytes, and who wins: a list of
    /// `{"winner": producer, "overridden": [producer, ...]}`.
    fn conflicts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let json = self.reading_detached(py, |e| render::conflicts_json(&e.conflicts()));
        json_object(py, &json)
    }

    /// Where each selected endpoint's traffic leaves, per policy, from this node's view (as
    /// `egressctl pods`): a list of dicts sorted by namespace, uid, policy — `namespace`,
    /// `uid` (the engine keeps no pod names), `ips`, `policy`, `gateway_node` (None: no
    /// gateway, dropped), `gateway_ip`, and `egress_ipv4`/`egress_ipv6`: known when this node
    /// is the gateway (an egress IP is derived on its gateway), else None.
    fn pods<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let routes = self.reading_detached(py, CoreEngine::pod_routes);
        let opt_ip = |ip: Option<IpAddr>| ip.map(|ip| ip_object(py, ip)).transpose();
        routes
            .into_iter()
            .map(|r| {
                let dict = PyDict::new(py);
                dict.set_item("namespace", r.namespace)?;
                dict.set_item("uid", r.uid)?;
                let ips: Vec<_> = r
                    .ips
                    .into_iter()
                    .map(|ip| ip_object(py, ip))
                    .collect::<PyResult<_>>()?;
                dict.set_item("ips", ips)?;
                dict.set_item("policy", r.policy)?;
                dict.set_item("gateway_node", r.gateway_node)?;
                dict.set_item("gateway_ip", opt_ip(r.gateway_ip.map(IpAddr::V4))?)?;
                dict.set_item("egress_ipv4", opt_ip(r.egress_ipv4.map(IpAddr::V4))?)?;
                dict.set_item("egress_ipv6", opt_ip(r.egress_ipv6.map(IpAddr::V6))?)?;
                Ok(dict)
            })
            .collect()
    }

    /// What the engine's loads reported (SEMANTICS B.7), the facts `egressctl list` prints on
    /// stderr: `{"invalidPolicies": [{"policy", "errors": [{"path", "reason"}]}], "warnings":
    /// [...], "skipped": [...], "conflicts": [...]}`.
    fn diagnostics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let json = self.reading_detached(py, |e| {
            render::diagnostics_json(e.diagnostics(), &e.conflicts())
        });
        json_object(py, &json)
    }

    /// The nodes the valid policies may choose as gateways, whatever their health (what health
    /// probes watch): `[{"name", "ipv4", "ipv6", "ready", "weight"}]`, by name.
    fn gateway_nodes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let text = self.reading(py, render::gateway_nodes_json);
        py.import("json")?.call_method1("loads", (text,))
    }

    /// Counts and sizes: desired and programmed entries per map, capacity, pending sources,
    /// policies, endpoints, nodes, memory.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (s, memory) = self.reading(py, |e| (e.stats(), e.memory()));
        let dict = PyDict::new(py);
        dict.set_item("desired_v4", s.desired_v4)?;
        dict.set_item("desired_v6", s.desired_v6)?;
        dict.set_item("programmed_v4", s.programmed_v4)?;
        dict.set_item("programmed_v6", s.programmed_v6)?;
        dict.set_item("max_entries", s.max_entries)?;
        dict.set_item("max_entries_v6", s.max_entries_v6)?;
        dict.set_item("pending_sources", s.pending_sources)?;
        dict.set_item("policies", s.policies)?;
        dict.set_item("endpoints", s.endpoints)?;
        dict.set_item("nodes", s.nodes)?;
        dict.set_item("memory_bytes", memory.total())?;
        Ok(dict)
    }

    /// Applies Kubernetes objects as updates (`CiliumEgressGatewayPolicy`, `CiliumNode`,
    /// `CiliumEndpoint`, `Namespace`, core `Pod` and `Node`, `CiliumEndpointSlice` and
    /// `CiliumIdentity` — B.10's precedence across events —: one, a `List`, a `---` stream,
    /// or a list of objects).
    /// Invalid policies keep their previous version and are returned as `PolicyError`s (not
    /// raised); any other input error raises `SnapshotError` and applies nothing. A
    /// `CiliumEndpoint` finds its node by address among the nodes known when it is applied
    /// (the engine's and the text's): apply `CiliumNode`s first or together, else the
    /// endpoint is kept without a node (a warning says so). Returns a dict of counts
    /// (`policies`, `nodes`, `endpoints`, `namespaces`), `invalid_policies` and `warnings`.
    fn apply<'py>(
        &self,
        py: Python<'py>,
        text: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let text = text_of(text, "text", Lists::Objects)?;
        // Parse and convert under the read lock (other readers go on), then apply.
        let prepared = self
            .reading_detached(py, |e| {
                egress_core::snapshot::kubernetes::read_objects(&text)
                    .and_then(|objects| e.prepare_objects(&objects))
            })
            .map_err(|e| from_core(py, &e))?;
        let applied = self.writing_detached(py, |e| e.apply_prepared(prepared));
        let dict = PyDict::new(py);
        dict.set_item("policies", applied.policies)?;
        dict.set_item("nodes", applied.nodes)?;
        dict.set_item("endpoints", applied.endpoints)?;
        dict.set_item("namespaces", applied.namespaces)?;
        let invalid: Vec<Bound<'py, PyAny>> = applied
            .invalid_policies
            .into_iter()
            .map(|p| {
                from_core(py, &p.into())
                    .into_value(py)
                    .into_bound(py)
                    .into_any()
            })
            .collect();
        dict.set_item("invalid_policies", invalid)?;
        dict.set_item("warnings", applied.warnings)?;
        Ok(dict)
    }

    /// Upserts policies (a mapping, or YAML/JSON text of one or more). All or none: an invalid
    /// policy raises `PolicyError` with every field error, and previous versions stay.
    fn upsert_policy(&self, py: Python<'_>, policy: &Bound<'_, PyAny>) -> PyResult<()> {
        let text = text_of(policy, "policy", Lists::Refused)?;
        self.writing(py, |e| e.upsert_policy_text(&text).map(drop))
            .py_err(py)
    }

    /// Deletes a policy by name; whether it existed.
    fn delete_policy(&self, py: Python<'_>, name: &str) -> bool {
        self.writing(py, |e| e.delete_policy(name))
    }

    /// Upserts a node: a mapping (or text) in the snapshot's `nodes[]` shape, a `CiliumNode`
    /// or a core `Node`.
    fn upsert_node(&self, py: Python<'_>, node: &Bound<'_, PyAny>) -> PyResult<()> {
        let text = text_of(node, "node", Lists::Refused)?;
        self.event(py, text, snapshot::parse_node, |engine, node| {
            engine.upsert_node(node);
            Ok(())
        })
    }

    /// Deletes a node by name; whether it existed.
    fn delete_node(&self, py: Python<'_>, name: &str) -> bool {
        self.writing(py, |e| e.delete_node(name))
    }

    /// Sets what the embedding agent's health probes or an operator say of a node (SEMANTICS
    /// B.3) over its objects: `ready`, `weight` (0-100); `None` keeps the objects' value. Kept
    /// across the node's object events; compat mode ignores it. Whether the node is known.
    #[pyo3(signature = (name, *, ready=None, weight=None))]
    fn set_node_health(
        &self,
        py: Python<'_>,
        name: &str,
        ready: Option<bool>,
        weight: Option<i64>,
    ) -> PyResult<bool> {
        let health = NodeHealth::checked(ready, weight)
            .map_err(egress_core::Error::Input)
            .py_err(py)?;
        self.writing(py, |e| e.set_node_health(name, health))
            .py_err(py)
    }

    /// Upserts an endpoint: a mapping (or text) in the snapshot's `endpoints[]` shape.
    fn upsert_endpoint(&self, py: Python<'_>, endpoint: &Bound<'_, PyAny>) -> PyResult<()> {
        let text = text_of(endpoint, "endpoint", Lists::Refused)?;
        self.event(
            py,
            text,
            snapshot::parse_endpoint,
            CoreEngine::upsert_read_endpoint,
        )
    }

    /// Deletes an endpoint by uid; whether it existed.
    fn delete_endpoint(&self, py: Python<'_>, uid: &str) -> bool {
        self.writing(py, |e| e.delete_endpoint(uid))
    }

    /// Sets a namespace's labels on its endpoints: `{"name": ..., "labels": {...}}` or a
    /// Kubernetes `Namespace` object (mapping or text).
    fn upsert_namespace(&self, py: Python<'_>, namespace: &Bound<'_, PyAny>) -> PyResult<()> {
        let text = text_of(namespace, "namespace", Lists::Refused)?;
        self.event(py, text, snapshot::parse_namespace, |engine, ns| {
            engine.upsert_namespace(&ns.name, ns.labels)
        })
    }

    /// Sets the local node's devices: a list (or text) in the snapshot's `interfaces` shape.
    fn set_devices(&self, py: Python<'_>, devices: &Bound<'_, PyAny>) -> PyResult<()> {
        let text = text_of(devices, "devices", Lists::Value)?;
        self.event(py, text, snapshot::parse_interfaces, |engine, devices| {
            engine.set_devices(devices);
            Ok(())
        })
    }

    /// The operations that make the programmed maps equal the desired ones. Raises
    /// `CapacityError` when a map would overflow `max_entries`.
    fn take_plan(&self, py: Python<'_>) -> PyResult<Plan> {
        let plan = self
            .reading_detached(py, CoreEngine::take_plan)
            .py_err(py)?;
        Ok(Plan { plan })
    }

    /// Records that the first `applied` operations of `plan` (all by default) were written;
    /// the rest come back in the next plan. Only the last plan taken from this engine is
    /// acknowledged, once, and only up to its length (`ValueError` naming `plan` or
    /// `applied` otherwise, nothing recorded).
    #[pyo3(signature = (plan, applied=None))]
    fn ack(&self, py: Python<'_>, plan: &Plan, applied: Option<usize>) -> PyResult<()> {
        let applied = applied.unwrap_or(plan.plan.len());
        self.writing(py, |e| e.ack(&plan.plan, applied)).py_err(py)
    }

    /// Makes these entries (a dump of the live maps, any iterable of `Entry`) the programmed
    /// baseline. An engine of the compact layout refuses entries (`ValueError` naming
    /// `entries`: its maps' set ids are not in them); `Maps.adopt` adopts its maps.
    fn adopt(&self, py: Python<'_>, entries: &Bound<'_, PyAny>) -> PyResult<()> {
        let entries: Vec<_> = entries
            .try_iter()?
            .map(|e| Ok(e?.cast::<Entry>()?.get().entry))
            .collect::<PyResult<_>>()?;
        self.writing(py, |e| e.adopt(entries)).py_err(py)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        self.reading(py, |e| {
            let config = e.config();
            format!(
                "Engine(local_node={:?}, selection={:?}, layout={:?})",
                config.local_node,
                config.selection.name(),
                config.layout.name()
            )
        })
    }
}
