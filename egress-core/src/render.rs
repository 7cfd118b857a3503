//! The output formats of a node's maps: `cilium-dbg bpf egress list`'s table (SEMANTICS
//! A.8) and its `-o json`, and the JSON of `egressctl list -o json` (ARCHITECTURE.md).

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Write as _};

use serde::{Serialize, Serializer as _};

use crate::engine::{Explanation, GatewayReason};
use crate::entries::{EXCLUDED_GATEWAY, Entry, MapEntries, NO_GATEWAY};
use crate::version::CiliumVersion;

/// One JSON row, field names and order as specified.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct JsonRow {
    /// Source address.
    #[serde(rename = "sourceIP")]
    pub source_ip: String,
    /// Destination CIDR as stored (host bits kept).
    #[serde(rename = "destCIDR")]
    pub dest_cidr: String,
    /// Egress IP (raw: `0.0.0.0` / `::` when none).
    #[serde(rename = "egressIP")]
    pub egress_ip: String,
    /// Gateway IP (raw: `0.0.0.0`, `0.0.0.1` as such).
    #[serde(rename = "gatewayIP")]
    pub gateway_ip: String,
    /// Egress interface index.
    #[serde(rename = "egressIfindex")]
    pub egress_ifindex: u32,
}

impl From<&Entry> for JsonRow {
    fn from(e: &Entry) -> Self {
        Self {
            source_ip: e.source.to_string(),
            dest_cidr: e.destination.to_string(),
            egress_ip: e.egress_ip.to_string(),
            gateway_ip: e.gateway_ip.to_string(),
            egress_ifindex: e.egress_ifindex,
        }
    }
}

/// The JSON document: `{"ipv4": [...], "ipv6": [...]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct JsonMaps {
    /// IPv4 rows.
    pub ipv4: Vec<JsonRow>,
    /// IPv6 rows.
    pub ipv6: Vec<JsonRow>,
}

impl From<&MapEntries> for JsonMaps {
    fn from(m: &MapEntries) -> Self {
        Self {
            ipv4: m.ipv4.iter().map(JsonRow::from).collect(),
            ipv6: m.ipv6.iter().map(JsonRow::from).collect(),
        }
    }
}

/// What `write` writes, as text (the `to_*` forms of the `write_*` functions: writing into a
/// Vec cannot fail, and every writer here writes UTF-8).
fn text_of(write: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> String {
    let mut out = Vec::new();
    if write(&mut out).is_err() {
        return String::new();
    }
    String::from_utf8(out).unwrap_or_default()
}

/// The maps as JSON, indented by one space per level, with a final newline.
pub fn to_json(maps: &MapEntries) -> String {
    text_of(|out| write_json(maps, out))
}

/// [`to_json`] written to `out` row by row: only the row being written is held, so a
/// million entries cost no more than their maps (the whole text would be ~150 B an entry).
pub fn write_json<W: io::Write>(maps: &MapEntries, out: W) -> io::Result<()> {
    write_json_rows(maps.ipv4.iter().copied(), maps.ipv6.iter().copied(), out)
}

/// [`write_json`] of entries given in output order, each family as an iterator (an engine's
/// [`entries_streamed`](crate::engine::Engine::entries_streamed)): no entry is held but the
/// one being written.
pub fn write_json_rows<W: io::Write>(
    ipv4: impl IntoIterator<Item = Entry>,
    ipv6: impl IntoIterator<Item = Entry>,
    mut out: W,
) -> io::Result<()> {
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b" ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    StreamedMaps {
        ipv4: Rows(std::cell::Cell::new(Some(ipv4.into_iter()))),
        ipv6: Rows(std::cell::Cell::new(Some(ipv6.into_iter()))),
    }
    .serialize(&mut ser)?;
    out.write_all(b"\n")
}

/// Rows serialized once, as they come (`Serialize` takes `&self`: the iterator is taken
/// out of the cell).
struct Rows<I>(std::cell::Cell<Option<I>>);

impl<I: Iterator<Item = Entry>> Serialize for Rows<I> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let rows = self.0.take().into_iter().flatten();
        serializer.collect_seq(rows.map(|e| JsonRow::from(&e)))
    }
}

/// `{"ipv4": [...], "ipv6": [...]}` as [`JsonMaps`] serializes it, each row made as it is
/// written.
struct StreamedMaps<A, B> {
    ipv4: Rows<A>,
    ipv6: Rows<B>,
}

impl<A: Iterator<Item = Entry>, B: Iterator<Item = Entry>> Serialize for StreamedMaps<A, B> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut doc = serializer.serialize_struct("JsonMaps", 2)?;
        doc.serialize_field("ipv4", &self.ipv4)?;
        doc.serialize_field("ipv6", &self.ipv6)?;
        doc.end()
    }
}

/// One row of `cilium-dbg bpf egress list -o json`: Cilium's field names, its gateway cells
/// (`Not Found`, `Excluded CIDR`), and from 1.20 the ifindex.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
struct CiliumRow {
    #[serde(rename = "SourceIP")]
    source_ip: String,
    #[serde(rename = "DestCIDR")]
    dest_cidr: String,
    #[serde(rename = "EgressIP")]
    egress_ip: String,
    #[serde(rename = "GatewayIP")]
    gateway_ip: String,
    #[serde(rename = "Ifindex", skip_serializing_if = "Option::is_none")]
    ifindex: Option<u32>,
}

/// The maps exactly as Cilium 1.18's `cilium-dbg bpf egress list -o json` prints them
/// ([`to_cilium_json_for`] for another version).
pub fn to_cilium_json(maps: &MapEntries) -> String {
    to_cilium_json_for(maps, CiliumVersion::default())
}

/// The maps exactly as `version`'s `cilium-dbg bpf egress list -o json` prints them
/// (SEMANTICS A.8's rows, IPv4 first, in our order): one array of `{SourceIP, DestCIDR,
/// EgressIP, GatewayIP}` (1.20: and `Ifindex`), indented by two spaces as Go's
/// `json.MarshalIndent`, then the two newlines Cilium's printer writes (`[]` when both maps
/// are empty).
pub fn to_cilium_json_for(maps: &MapEntries, version: CiliumVersion) -> String {
    text_of(|out| write_cilium_json_for(maps, version, out))
}

/// [`to_cilium_json`] written to `out` row by row.
pub fn write_cilium_json<W: io::Write>(maps: &MapEntries, out: W) -> io::Result<()> {
    write_cilium_json_for(maps, CiliumVersion::default(), out)
}

/// [`to_cilium_json_for`] written to `out` row by row.
pub fn write_cilium_json_for<W: io::Write>(
    maps: &MapEntries,
    version: CiliumVersion,
    mut out: W,
) -> io::Result<()> {
    let rows = maps.iter().map(|e| CiliumRow {
        source_ip: e.source.to_string(),
        dest_cidr: e.destination.to_string(),
        egress_ip: e.egress_ip.to_string(),
        gateway_ip: gateway_cell(e),
        ifindex: version.lists_ifindex().then_some(e.egress_ifindex),
    });
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"  ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    ser.collect_seq(rows)?;
    out.write_all(b"\n\n")
}

/// The gateway as `cilium-dbg` prints it: `Not Found` (0.0.0.0), `Excluded CIDR` (0.0.0.1),
/// else the address.
pub fn gateway_cell(e: &Entry) -> String {
    match e.gateway_ip {
        NO_GATEWAY => "Not Found".to_owned(),
        EXCLUDED_GATEWAY => "Excluded CIDR".to_owned(),
        gw => gw.to_string(),
    }
}

/// The maps as Cilium 1.18's `cilium-dbg bpf egress list` prints them, or `None` when both
/// are empty (the caller prints `No entries found.` on stderr).
pub fn to_table(maps: &MapEntries) -> Option<String> {
    to_table_for(maps, CiliumVersion::default())
}

/// The maps as `version`'s `cilium-dbg bpf egress list` prints them — four columns up to
/// 1.19, a fifth `Egress Ifindex` from 1.20 —, or `None` when both are empty.
pub fn to_table_for(maps: &MapEntries, version: CiliumVersion) -> Option<String> {
    if maps.is_empty() {
        return None;
    }
    Some(text_of(|out| write_table_for(maps, version, out)))
}

/// [`to_table`] written to `out`.
pub fn write_table<W: io::Write>(maps: &MapEntries, out: W) -> io::Result<()> {
    write_table_for(maps, CiliumVersion::default(), out)
}

/// [`to_table_for`] written to `out` (nothing when both maps are empty): one pass measures
/// the columns, a second formats and writes each row, so no row is held.
pub fn write_table_for<W: io::Write>(
    maps: &MapEntries,
    version: CiliumVersion,
    out: W,
) -> io::Result<()> {
    if maps.is_empty() {
        return Ok(());
    }
    let cells = |e: &Entry| {
        [
            e.source.to_string(),
            e.destination.to_string(),
            e.egress_ip.to_string(),
            gateway_cell(e),
        ]
    };
    let header = ["Source IP", "Destination CIDR", "Egress IP", "Gateway IP"].map(str::to_owned);
    if version.lists_ifindex() {
        let [a, b, c, d] = header;
        let header = [a, b, c, d, "Egress Ifindex".to_owned()];
        let rows = || {
            std::iter::once(header.clone()).chain(maps.iter().map(|e| {
                let [a, b, c, d] = cells(e);
                [a, b, c, d, e.egress_ifindex.to_string()]
            }))
        };
        return write_tabulated(rows, out);
    }
    let rows = || std::iter::once(header.clone()).chain(maps.iter().map(cells));
    write_tabulated(rows, out)
}

/// A cell or name as one line of human output: control characters (newline and tab
/// included) and the bidirectional overrides written as `\u{..}`, so that no input name can
/// start a line, move a column or reach the terminal as an escape sequence.
pub fn escape_cell(text: &str) -> Cow<'_, str> {
    escape_controls(text, false)
}

/// `text` with its control characters and bidirectional overrides written as `\u{..}`
/// escapes; with `keep_lines`, newline and tab stay as they are (a multi-line report).
pub fn escape_controls(text: &str, keep_lines: bool) -> Cow<'_, str> {
    let unsafe_char = |c: char| {
        (c.is_control() && !(keep_lines && matches!(c, '\n' | '\t')))
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Go `tabwriter` with minwidth 5, padding 3, space padding; the last cell is not padded.
/// Cells are escaped first ([`escape_cell`]) and measured as printed.
pub fn tabulate<const N: usize>(rows: &[[String; N]]) -> String {
    text_of(|out| write_tabulated(|| rows.iter(), out))
}

/// [`tabulate`] over rows made twice by `rows` (once to measure the columns, once to write),
/// owned or borrowed, written to `out` through a buffer.
pub fn write_tabulated<const N: usize, R, I, W>(rows: impl Fn() -> I, out: W) -> io::Result<()>
where
    R: std::borrow::Borrow<[String; N]>,
    I: Iterator<Item = R>,
    W: io::Write,
{
    const MIN_WIDTH: usize = 5;
    const PADDING: usize = 3;
    let mut widths = [0usize; N];
    for row in rows() {
        for (w, cell) in widths.iter_mut().zip(row.borrow()) {
            *w = (*w)
                .max(escape_cell(cell).chars().count() + PADDING)
                .max(MIN_WIDTH);
        }
    }
    let mut out = io::BufWriter::new(out);
    let mut line = String::new();
    for row in rows() {
        line.clear();
        for (i, cell) in row.borrow().iter().enumerate() {
            let cell = escape_cell(cell);
            line.push_str(&cell);
            if i + 1 < N {
                line.extend(std::iter::repeat_n(' ', widths[i] - cell.chars().count()));
            }
        }
        line.push('\n');
        out.write_all(line.as_bytes())?;
    }
    out.flush()
}

/// A JSON document as the CLI prints it and the bindings return it: serde_json's pretty
/// form, then a newline.
pub fn json_text(value: &serde_json::Value) -> String {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

/// One producer of an entry as JSON: `{policy, endpoint, list, index, entry}`.
fn producer_json(p: &crate::entries::Producer) -> serde_json::Value {
    serde_json::json!({
        "policy": &*p.policy,
        "endpoint": &*p.endpoint,
        "list": p.kind.to_string(),
        "index": p.cidr_index,
        "entry": JsonRow::from(&p.entry),
    })
}

/// Conflicts as JSON: `[{"winner": producer, "overridden": [producer, ...]}, ...]`, each
/// producer shaped as in `egressctl explain -o json`'s `overrides`.
pub fn conflicts_json(conflicts: &[crate::entries::Conflict]) -> serde_json::Value {
    conflicts
        .iter()
        .map(|c| {
            serde_json::json!({
                "winner": producer_json(&c.winner),
                "overridden": c.losers.iter().map(producer_json).collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// [`json_text`] of [`conflicts_json`] written row by row from conflicts in key order (an
/// engine's [`conflicts_streamed`](crate::engine::Engine::conflicts_streamed)): the same
/// bytes, with only the conflict being written held.
pub fn write_conflicts_json<W: io::Write>(
    conflicts: impl IntoIterator<Item = crate::entries::Conflict>,
    mut out: W,
) -> io::Result<()> {
    let rows = conflicts.into_iter().map(|c| {
        serde_json::json!({
            "winner": producer_json(&c.winner),
            "overridden": c.losers.iter().map(producer_json).collect::<Vec<_>>(),
        })
    });
    let mut ser = serde_json::Serializer::pretty(&mut out);
    ser.collect_seq(rows)?;
    out.write_all(b"\n")
}

/// Diagnostics and conflicts as the conformance surface's document: `{"invalidPolicies":
/// [{"policy", "errors": [{"path", "reason"}]}], "warnings": [..], "skipped": [..],
/// "conflicts": [..]}` (conflicts as [`conflicts_json`]).
pub fn diagnostics_json(
    diagnostics: &crate::engine::Diagnostics,
    conflicts: &[crate::entries::Conflict],
) -> serde_json::Value {
    let invalid: Vec<serde_json::Value> = diagnostics
        .invalid_policies
        .iter()
        .map(|p| {
            let errors: Vec<serde_json::Value> = p
                .errors
                .iter()
                .map(|e| serde_json::json!({"path": e.path, "reason": e.reason.to_string()}))
                .collect();
            serde_json::json!({"policy": p.policy, "errors": errors})
        })
        .collect();
    serde_json::json!({
        "invalidPolicies": invalid,
        "warnings": diagnostics.warnings,
        "skipped": diagnostics.skipped,
        "conflicts": conflicts_json(conflicts),
    })
}

/// An engine's [`diagnostics`](crate::engine::Engine::diagnostics) with its conflicts as one
/// JSON document: `{"invalidPolicies": [{"policy", "errors": [{"path", "reason"}]}],
/// "warnings", "skipped", "conflicts"}` (the conformance surface's diagnostics, as every
/// binding hands it out).
pub fn engine_diagnostics_json(engine: &crate::engine::Engine) -> String {
    json_text(&diagnostics_json(engine.diagnostics(), &engine.conflicts()))
}

/// [`Engine::gateway_nodes`](crate::engine::Engine::gateway_nodes) as JSON: `[{"name",
/// "ipv4", "ipv6" (null when none), "ready", "weight"}]`, by name.
pub fn gateway_nodes_json(engine: &crate::engine::Engine) -> String {
    let nodes: Vec<serde_json::Value> = engine
        .gateway_nodes()
        .into_iter()
        .map(|n| {
            serde_json::json!({
                "name": n.name,
                "ipv4": n.ipv4.map(|ip| ip.to_string()),
                "ipv6": n.ipv6.map(|ip| ip.to_string()),
                "ready": n.ready,
                "weight": n.weight,
            })
        })
        .collect();
    json_text(&serde_json::Value::Array(nodes))
}

/// An explanation as JSON (the `egressctl explain -o json` document).
pub fn explanation_json(x: &crate::engine::Explanation) -> serde_json::Value {
    use crate::engine::GatewayReason;
    use crate::lookup::{DropReason, Verdict};
    use serde_json::json;
    let verdict = match x.verdict {
        Verdict::NoEntry => json!({"kind": "noEntry"}),
        Verdict::Drop(DropReason::NoGateway) => json!({"kind": "drop", "reason": "noGateway"}),
        Verdict::Drop(DropReason::NoEgressIp) => json!({"kind": "drop", "reason": "noEgressIP"}),
        Verdict::Excluded => json!({"kind": "excluded"}),
        Verdict::Forward { gateway } => {
            json!({"kind": "forward", "gatewayIP": gateway.to_string()})
        }
        Verdict::Masquerade { egress_ip, ifindex } => {
            json!({"kind": "masquerade", "egressIP": egress_ip.to_string(), "egressIfindex": ifindex})
        }
    };
    let producer = producer_json;
    let matched = x.matched.as_ref().map(|m| {
        let reason = match m.reason {
            GatewayReason::NotFound => json!({"kind": "notFound"}),
            GatewayReason::Cilium {
                hash,
                resolved,
                index,
            } => {
                json!({"kind": "cilium", "fnv1a32": hash, "resolved": resolved, "index": index})
            }
            GatewayReason::Consistent { score, candidates } => {
                json!({"kind": "consistent", "score": score, "candidates": candidates})
            }
        };
        let egress = m.gateway.egress.as_ref().map(|e| {
            json!({
                "ipv4": e.ipv4.to_string(),
                "ipv6": e.ipv6.to_string(),
                "ifindex": e.ifindex,
                "failure": e.failure.as_ref().map(ToString::to_string),
            })
        });
        json!({
            "entry": JsonRow::from(&m.entry),
            "producer": producer(&m.producer),
            "selectorIndex": m.selector_index,
            "gateway": {
                "node": m.gateway.node,
                "gatewayIP": m.gateway.gateway_ip.to_string(),
                "entryIndex": m.gateway.entry_index,
                "entryKey": m.gateway.entry_key.as_ref().map(ToString::to_string),
                "reason": reason,
                "egress": egress,
            },
            "overrides": m.losers.iter().map(producer).collect::<Vec<_>>(),
        })
    });
    let mut doc = json!({
        "source": x.source.to_string(),
        "destination": x.destination.to_string(),
        "verdict": verdict,
        "sourceEntries": x.source_entries,
        "match": matched,
    });
    // The compact layout only: the document of Cilium's layouts is unchanged.
    if let (Some(c), Some(map)) = (x.compact, doc.as_object_mut()) {
        map.insert(
            "compact".into(),
            json!({"block": c.block.to_string(), "index": c.index, "set": c.set}),
        );
    }
    doc
}

// ----- the text of an explanation (`egressctl explain`) ----------------------------------

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_text(f, &|_| None)
    }
}

impl Explanation {
    /// The text form, naming endpoints with `name_of(uid)` (e.g. `namespace/pod`) where the
    /// caller knows them: the engine keeps uids, not pod names.
    pub fn render(&self, name_of: &dyn Fn(&str) -> Option<String>) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = self.write_text(&mut out, name_of);
        out
    }

    fn write_text(
        &self,
        f: &mut dyn fmt::Write,
        name_of: &dyn Fn(&str) -> Option<String>,
    ) -> fmt::Result {
        self.write_decision(f, name_of)?;
        if let Some(c) = self.compact {
            writeln!(
                f,
                "  compact maps: endpoint block {} index {} -> set {} (its rules decide)",
                c.block, c.index, c.set
            )?;
        }
        Ok(())
    }

    fn write_decision(
        &self,
        f: &mut dyn fmt::Write,
        name_of: &dyn Fn(&str) -> Option<String>,
    ) -> fmt::Result {
        writeln!(
            f,
            "{} -> {}: {}",
            self.source, self.destination, self.verdict
        )?;
        let Some(m) = &self.matched else {
            let family = if self.source.is_ipv4() {
                "IPv4"
            } else {
                "IPv6"
            };
            return match (self.source_entries, self.selected_without_entry.as_slice()) {
                (0, []) => writeln!(f, "  no policy selects source {}", self.source),
                (0, [one]) => writeln!(
                    f,
                    "  policy {} selects source {} but names no {family} destinationCIDR, so it has no entry",
                    escape_cell(one),
                    self.source
                ),
                (0, names) => writeln!(
                    f,
                    "  policies {} select source {} but name no {family} destinationCIDR, so it has no entry",
                    escape_cell(&names.join(", ")),
                    self.source
                ),
                (count, _) => writeln!(
                    f,
                    "  none of the source's {count} entries covers {}",
                    self.destination
                ),
            };
        };
        let e = &m.entry;
        writeln!(
            f,
            "  entry: {} {} -> egress IP {}, gateway IP {}, ifindex {}",
            e.source, e.destination, e.egress_ip, e.gateway_ip, e.egress_ifindex
        )?;
        writeln!(f, "  from: {}", m.producer)?;
        let uid = &m.producer.endpoint;
        let who =
            name_of(uid).map_or_else(|| format!("endpoint {uid}"), |name| format!("pod {name}"));
        match m.selector_index {
            Some(i) => writeln!(f, "  selected by: spec.selectors[{i}] of {who}")?,
            None => writeln!(f, "  selected: {who}")?,
        }
        match (&m.gateway.node, &m.reason) {
            (None, _) | (_, GatewayReason::NotFound) => writeln!(
                f,
                "  gateway: none found (no gateway entry matches an eligible node: one with an IPv4 address, and in consistent mode ready with a weight above 0)"
            )?,
            (
                Some(node),
                GatewayReason::Cilium {
                    hash,
                    resolved,
                    index,
                },
            ) => writeln!(
                f,
                "  gateway: {node} ({}), entry {}: FNV-1a({}) = {hash} mod {resolved} = {index} among the entries sorted by gateway IP",
                m.gateway.gateway_ip,
                m.gateway.entry_index.unwrap_or(0),
                m.producer.endpoint
            )?,
            (Some(node), GatewayReason::Consistent { score, candidates }) => writeln!(
                f,
                "  gateway: {node} ({}), entry key {} (first listed at entry {}): highest rendezvous score {score:#018x} of {candidates} (node, entry key) candidates",
                m.gateway.gateway_ip,
                m.gateway.entry_key.as_ref().map_or("route", |k| k.as_str()),
                m.gateway.entry_index.unwrap_or(0)
            )?,
        }
        if let Some(egress) = &m.gateway.egress {
            match &egress.failure {
                Some(why) => writeln!(f, "  egress IP: not derived on this node: {why}")?,
                None => writeln!(
                    f,
                    "  egress IP: derived on this node (ifindex {})",
                    egress.ifindex
                )?,
            }
        }
        for loser in &m.losers {
            writeln!(f, "  overrides: {}", loser)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netip::parse_prefix;

    fn entry(src: &str, dst: &str, egress: &str, gw: &str) -> Entry {
        Entry {
            source: src.parse().unwrap(),
            destination: parse_prefix(dst).unwrap(),
            egress_ip: egress.parse().unwrap(),
            gateway_ip: gw.parse().unwrap(),
            egress_ifindex: 0,
        }
    }

    #[test]
    fn the_cilium_dbg_example() {
        let maps = MapEntries::from_entries([
            entry("10.0.0.1", "1.1.1.0/24", "192.168.101.1", "192.168.1.1"),
            entry("10.0.0.1", "1.1.1.22/32", "192.168.101.1", "0.0.0.1"),
            entry("10.0.0.2", "1.1.1.0/24", "0.0.0.0", "192.168.1.2"),
            entry("10.0.0.3", "1.1.3.0/24", "0.0.0.0", "0.0.0.0"),
            entry("fd00::1", "2001:db8::/64", "2001:db8:101::1", "192.168.1.1"),
            entry("fd00::1", "2001:db8::22/128", "2001:db8:101::1", "0.0.0.1"),
            entry("fd00::2", "2001:db8::/64", "::", "192.168.1.2"),
        ]);
        let want = "\
Source IP   Destination CIDR   Egress IP         Gateway IP
10.0.0.1    1.1.1.0/24         192.168.101.1     192.168.1.1
10.0.0.1    1.1.1.22/32        192.168.101.1     Excluded CIDR
10.0.0.2    1.1.1.0/24         0.0.0.0           192.168.1.2
10.0.0.3    1.1.3.0/24         0.0.0.0           Not Found
fd00::1     2001:db8::/64      2001:db8:101::1   192.168.1.1
fd00::1     2001:db8::22/128   2001:db8:101::1   Excluded CIDR
fd00::2     2001:db8::/64      ::                192.168.1.2
";
        assert_eq!(to_table(&maps).unwrap(), want);
        assert_eq!(to_table(&MapEntries::default()), None);
    }

    /// Cilium 1.20's five columns (CILIUM-VERSIONS.md §6, laid out with Go's
    /// `text/tabwriter` there): the Gateway IP column is padded now that it is not last.
    #[test]
    fn the_cilium_dbg_example_of_1_20() {
        let with_ifindex = |mut e: Entry, i| {
            e.egress_ifindex = i;
            e
        };
        let maps = MapEntries::from_entries([
            with_ifindex(
                entry("10.0.0.1", "1.1.1.0/24", "192.168.101.1", "192.168.1.1"),
                2,
            ),
            with_ifindex(
                entry("10.0.0.1", "1.1.1.22/32", "192.168.101.1", "0.0.0.1"),
                2,
            ),
            entry("10.0.0.3", "1.1.3.0/24", "0.0.0.0", "0.0.0.0"),
            with_ifindex(
                entry("fd00::1", "2001:db8::/64", "2001:db8:101::1", "192.168.1.1"),
                2,
            ),
        ]);
        let want = "\
Source IP   Destination CIDR   Egress IP         Gateway IP      Egress Ifindex
10.0.0.1    1.1.1.0/24         192.168.101.1     192.168.1.1     2
10.0.0.1    1.1.1.22/32        192.168.101.1     Excluded CIDR   2
10.0.0.3    1.1.3.0/24         0.0.0.0           Not Found       0
fd00::1     2001:db8::/64      2001:db8:101::1   192.168.1.1     2
";
        assert_eq!(to_table_for(&maps, CiliumVersion::V1_20).unwrap(), want);
        // 1.18 and 1.19 print four columns whatever the entries hold.
        assert!(
            !to_table_for(&maps, CiliumVersion::V1_19)
                .unwrap()
                .contains("Ifindex")
        );
        let json = to_cilium_json_for(&maps, CiliumVersion::V1_20);
        assert!(json.starts_with("[\n  {\n    \"SourceIP\": \"10.0.0.1\",\n    \"DestCIDR\": \"1.1.1.0/24\",\n    \"EgressIP\": \"192.168.101.1\",\n    \"GatewayIP\": \"192.168.1.1\",\n    \"Ifindex\": 2\n  },"), "{json}");
        assert!(!to_cilium_json(&maps).contains("Ifindex"));
    }

    #[test]
    fn json_shape() {
        let maps = MapEntries::from_entries([entry("::ffff:10.0.0.1", "::/0", "::", "0.0.0.1")]);
        let json = to_json(&maps);
        assert_eq!(
            json,
            "{\n \"ipv4\": [],\n \"ipv6\": [\n  {\n   \"sourceIP\": \"::ffff:10.0.0.1\",\n   \"destCIDR\": \"::/0\",\n   \"egressIP\": \"::\",\n   \"gatewayIP\": \"0.0.0.1\",\n   \"egressIfindex\": 0\n  }\n ]\n}\n"
        );
        assert_eq!(
            to_json(&MapEntries::default()),
            "{\n \"ipv4\": [],\n \"ipv6\": []\n}\n"
        );
    }

    #[test]
    fn min_width_applies_to_short_columns() {
        let rows = [
            ["a".to_owned(), "b".to_owned()],
            ["cc".to_owned(), "d".to_owned()],
        ];
        assert_eq!(tabulate(&rows), "a    b\ncc   d\n");
    }
}
