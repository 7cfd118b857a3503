//! Read-only calls on a `const egress_engine *`: lookups, maps, entries, explain, conflicts,
//! stats. Any number may run concurrently on one engine.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use egress_core::engine::Engine;
use egress_core::lookup::{VerdictRecord, query_addresses};
use egress_core::render;

use crate::boundary::{
    checked_out, copy_out, fill, reference, run, run_code, slice, slice_mut, stream_out,
};
use crate::engine::egress_engine;
use crate::error::{Failure, egress_error, egress_result};
use crate::types::{
    egress_entry, egress_ip_addr, egress_query_v4, egress_query_v6, egress_verdict,
};

/// The body of the JSON queries: `text` of the engine copied to the caller's buffer.
///
/// # Safety
/// As the JSON exports.
unsafe fn text_out(
    engine: *const egress_engine,
    (buf, buf_len, written_out): (*mut u8, usize, *mut usize),
    error_out: *mut *mut egress_error,
    text: impl FnOnce(&Engine) -> Result<String, Failure>,
) -> egress_result {
    // SAFETY: the caller's promises.
    unsafe {
        run(error_out, || {
            let text = text(&reference(engine, "engine")?.engine)?;
            copy_out(text.as_bytes(), buf, buf_len, written_out)
        })
    }
}

/// The dumped entries into the caller's array: the body of `egress_maps_dump`.
///
/// # Safety
/// As that export.
#[cfg(feature = "bpf")]
pub(crate) unsafe fn fill_entries(
    entries: &egress_core::entries::MapEntries,
    buf: *mut egress_entry,
    buf_len: usize,
    count_out: *mut usize,
) -> Result<(), Failure> {
    // SAFETY: forwarded.
    unsafe {
        fill(
            entries.len(),
            entries.iter().map(egress_entry::from),
            (buf, "buf"),
            (buf_len, "buf_len"),
            count_out,
        )
    }
}

/// The node's maps as JSON: byte for byte what `egressctl list -o json` prints for the same
/// snapshot, node and selection. UTF-8, no terminating NUL.
///
/// `*written_out` is the document's length. `EGRESS_RESULT_INSUFFICIENT_SIZE` when
/// `buf_len` is smaller: `*written_out` is the size needed and `buf` is untouched (`buf`
/// may be NULL when `buf_len` is 0, to ask for the size).
///
/// # Safety
/// `engine` is NULL or a valid engine; `buf` points at `buf_len` writable bytes (NULL only
/// when 0); `written_out` is NULL or valid for a write; `error_out` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_engine_maps_json(
    engine: *const egress_engine,
    buf: *mut u8,
    buf_len: usize,
    written_out: *mut usize,
    error_out: *mut *mut egress_error,
) -> egress_result {
    // SAFETY: the caller's promises.
    unsafe {
        run(error_out, || {
            let e = &reference(engine, "engine")?.engine;
            stream_out(
                |out| {
                    render::write_json_rows(
                        e.entries_streamed(false),
                        e.entries_streamed(true),
                        out,
                    )
                },
                buf,
                buf_len,
                written_out,
            )
        })
    }
}

/// What the engine's loads reported (SEMANTICS B.7), the same facts `egressctl list` prints
/// on stderr, as one JSON document: `{"invalidPolicies": [{"policy": str, "errors":
/// [{"path": str, "reason": str}]}], "warnings": [str], "skipped": [str], "conflicts":
/// [...]}` (conflicts as `egress_engine_conflicts_json`). UTF-8, no terminating NUL.
///
/// The buffer protocol of `egress_engine_maps_json`: `EGRESS_RESULT_INSUFFICIENT_SIZE` with
/// `*written_out` the size needed, `buf` untouched and no error object (`buf` may be NULL
/// when `buf_len` is 0).
///
/// # Safety
/// `engine` is NULL or a valid engine; `buf` points at `buf_len` writable bytes (NULL only
/// when 0); `written_out` is NULL or valid for a write; `error_out` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_engine_diagnostics_json(
    engine: *const egress_engine,
    buf: *mut u8,
    buf_len: usize,
    written_out: *mut usize,
    error_out: *mut *mut egress_error,
) -> egress_result {
    // SAFETY: the caller's promises.
    unsafe {
        text_out(engine, (buf, buf_len, written_out), error_out, |e| {
            Ok(render::engine_diagnostics_json(e))
        })
    }
}

/// The nodes the valid policies may choose as gateways, whatever their health — what an
/// embedding agent's health probes watch (SEMANTICS B.3) — as JSON: `[{"name": str, "ipv4":
/// str, "ipv6": str or null, "ready": bool, "weight": int}]`, by name, each once, with the
/// readiness and weight the engine uses (after `egress_engine_set_node_health`). UTF-8, no
/// terminating NUL; the buffer protocol of `egress_engine_maps_json`.
///
/// # Safety
/// As `egress_engine_diagnostics_json`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_engine_gateway_nodes_json(
    engine: *const egress_engine,
    buf: *mut u8,
    buf_len: usize,
    written_out: *mut usize,
    error_out: *mut *mut egress_error,
) -> egress_result {
    // SAFETY: the caller's promises.
    unsafe {
        text_out(engine, (buf, buf_len, written_out), error_out, |e| {
            Ok(render::gateway_nodes_json(e))
        })
    }
}

/// An address family as the lookups take it: `N` bytes, network order.
trait Family<const N: usize> {
    fn ip(bytes: &[u8; N]) -> IpAddr;

    /// A query's addresses as the core reads values (SEMANTICS B.6): for 16-byte addresses
    /// IPv4-mapped ones are IPv4, and a pair of different families is refused.
    #[inline(always)]
    fn pair(src: &[u8; N], dst: &[u8; N]) -> Result<(IpAddr, IpAddr), egress_result> {
        Ok((Self::ip(src), Self::ip(dst)))
    }

    /// The lookups of a chunk of at most `CHUNK` queries into `found`.
    #[inline(always)]
    fn lookup_chunk<Q: Query<N>>(
        engine: &Engine,
        queries: &[Q],
        found: &mut [VerdictRecord],
    ) -> Result<(), egress_result> {
        let mut pairs = [(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        ); CHUNK];
        for (pair, q) in pairs.iter_mut().zip(queries) {
            let (src, dst) = q.addresses();
            *pair = Self::pair(src, dst)?;
        }
        engine.lookup_many_records(&pairs[..queries.len()], found);
        Ok(())
    }

    /// One lookup of the query's addresses.
    #[inline(always)]
    fn lookup(
        engine: &Engine,
        src: &[u8; N],
        dst: &[u8; N],
    ) -> Result<VerdictRecord, egress_result> {
        let (src, dst) = Self::pair(src, dst)?;
        Ok(engine.lookup_record(src, dst))
    }
}

struct V4;
struct V6;

impl Family<4> for V4 {
    #[inline(always)]
    fn ip(bytes: &[u8; 4]) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(*bytes))
    }

    /// Without an `IpAddr`: building one from the bytes went through the stack at odd
    /// offsets, a store-forwarding stall that tripled the call's time.
    #[inline(always)]
    fn lookup(
        engine: &Engine,
        src: &[u8; 4],
        dst: &[u8; 4],
    ) -> Result<VerdictRecord, egress_result> {
        Ok(engine.lookup_record_v4(Ipv4Addr::from(*src), Ipv4Addr::from(*dst)))
    }

    /// Without `IpAddr`s, as [`V4::lookup`].
    #[inline(always)]
    fn lookup_chunk<Q: Query<4>>(
        engine: &Engine,
        queries: &[Q],
        found: &mut [VerdictRecord],
    ) -> Result<(), egress_result> {
        let mut pairs = [(Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED); CHUNK];
        for (pair, q) in pairs.iter_mut().zip(queries) {
            let (src, dst) = q.addresses();
            *pair = (Ipv4Addr::from(*src), Ipv4Addr::from(*dst));
        }
        engine.lookup_many_records_v4(&pairs[..queries.len()], found);
        Ok(())
    }
}

impl Family<16> for V6 {
    #[inline(always)]
    fn ip(bytes: &[u8; 16]) -> IpAddr {
        IpAddr::V6(Ipv6Addr::from(*bytes))
    }

    #[inline(always)]
    fn pair(src: &[u8; 16], dst: &[u8; 16]) -> Result<(IpAddr, IpAddr), egress_result> {
        query_addresses(Self::ip(src), Self::ip(dst)).map_err(|_| egress_result::InvalidArgument)
    }
}

/// One lookup of `N`-byte addresses: the body of both single-lookup exports.
///
/// # Safety
/// As the exports: `engine` NULL or valid; `src`, `dst` NULL or `N` readable bytes;
/// `verdict_out` NULL or valid for a write.
#[inline(always)]
unsafe fn lookup_one<F: Family<N>, const N: usize>(
    engine: *const egress_engine,
    src: *const u8,
    dst: *const u8,
    verdict_out: *mut egress_verdict,
) -> egress_result {
    run_code(|| {
        if engine.is_null() || src.is_null() || dst.is_null() || verdict_out.is_null() {
            return Err(egress_result::NullParameter);
        }
        if !verdict_out.is_aligned() || !engine.is_aligned() {
            return Err(egress_result::InvalidArgument);
        }
        // SAFETY: not NULL and aligned; the caller promises an engine and `N` bytes at each
        // address (`[u8; N]` has alignment 1).
        let (engine, src, dst) = unsafe {
            (
                &(*engine).engine,
                &*src.cast::<[u8; N]>(),
                &*dst.cast::<[u8; N]>(),
            )
        };
        let verdict = F::lookup(engine, src, dst)?;
        // SAFETY: not NULL, aligned; the caller promises it is valid for a write.
        unsafe { verdict_out.write(verdict.into()) };
        Ok(())
    })
}

/// The verdict for an IPv4 packet from `src` to `dst` (4 bytes each, network order), as the
/// datapath would find it in the desired maps. Allocates nothing.
/// `EGRESS_RESULT_NULL_PARAMETER` when a pointer is NULL, `EGRESS_RESULT_INVALID_ARGUMENT`
/// when `engine` or `verdict_out` is not aligned.
///
/// # Safety
/// `engine` is NULL or a valid engine; `src` and `dst` are NULL or point at 4 readable
/// bytes; `verdict_out` is NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_engine_lookup_v4(
    engine: *const egress_engine,
    src: *const u8,
    dst: *const u8,
    verdict_out: *mut egress_verdict,
) -> egress_result {
    // SAFETY: forwarded.
    unsafe { lookup_one::<V4, 4>(engine, src, dst, verdict_out) }
}

/// The verdict for an IPv6 packet (16-byte addresses, network order). Allocates nothing.
/// Addresses are values (SEMANTICS B.6): an IPv4-mapped address (`::ffff:a.b.c.d`) is the
/// IPv4 address, and a pair of different families then (one mapped, one not) is
/// `EGRESS_RESULT_INVALID_ARGUMENT` (`egress_query_check` says why).
///
/// # Safety
/// As `egress_engine_lookup_v4`, with 16 bytes at `src` and `dst`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_engine_lookup_v6(
    engine: *const egress_engine,
    src: *const u8,
    dst: *const u8,
    verdict_out: *mut egress_verdict,
) -> egress_result {
    // SAFETY: forwarded.
    unsafe { lookup_one::<V6, 16>(engine, src, dst, verdict_out) }
}

/// A batch query: its source and destination, `N` bytes each.
trait Query<const N: usize> {
    fn addresses(&self) -> (&[u8; N], &[u8; N]);
}

impl Query<4> for egress_query_v4 {
    fn addresses(&self) -> (&[u8; 4], &[u8; 4]) {
        (&self.src, &self.dst)
    }
}

impl Query<16> for egress_query_v6 {
    fn addresses(&self) -> (&[u8; 16], &[u8; 16]) {
        (&self.src, &self.dst)
    }
}

/// Queries converted per chunk on the stack: batches allocate nothing.
const CHUNK: usize = 64;

/// `count` lookups through the engine's `lookup_many_records`, `CHUNK` queries at a time: the
/// body of both batch exports.
///
/// # Safety
/// As the exports.
unsafe fn lookup_batch<F: Family<N>, Q: Query<N>, const N: usize>(
    engine: *const egress_engine,
    queries: *const Q,
    count: usize,
    verdicts_out: *mut egress_verdict,
) -> egress_result {
    run_code(|| {
        // SAFETY: the caller's promises.
        let (engine, queries, verdicts) = unsafe {
            (
                &reference(engine, "engine").map_err(|f| f.code)?.engine,
                slice(queries, count, "queries").map_err(|f| f.code)?,
                slice_mut(verdicts_out, count, "verdicts_out").map_err(|f| f.code)?,
            )
        };
        let mut found = [VerdictRecord::NO_ENTRY; CHUNK];
        // A refused query refuses the batch before anything is answered.
        for q in queries {
            let (src, dst) = q.addresses();
            F::pair(src, dst)?;
        }
        for (qs, vs) in queries.chunks(CHUNK).zip(verdicts.chunks_mut(CHUNK)) {
            let n = qs.len();
            F::lookup_chunk(engine, qs, &mut found[..n])?;
            for (v, f) in vs.iter_mut().zip(&found[..n]) {
                *v = (*f).into();
            }
        }
        Ok(())
    })
}

/// `count` IPv4 lookups: `verdicts_out[i]` answers `queries[i]`. Allocates nothing; faster
/// per query than single lookups (the memory accesses of a group overlap). The two arrays
/// must not overlap.
///
/// # Safety
/// `engine` NULL or valid; `queries` points at `count` queries and `verdicts_out` at `count`
/// writable verdicts (either NULL only when `count` is 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_engine_lookup_batch_v4(
    engine: *const egress_engine,
    queries: *const egress_query_v4,
    count: usize,
    verdicts_out: *mut egress_verdict,
) -> egress_result {
    // SAFETY: forwarded.
    unsafe { lookup_batch::<V4, _, 4>(engine, queries, count, verdicts_out) }
}

/// `count` IPv6 lookups. Allocates nothing. The two arrays must not overlap. Addresses as
/// `egress_engine_lookup_v6` reads them: a query of two families refuses the batch
/// (`EGRESS_RESULT_INVALID_ARGUMENT`, nothing answered).
///
/// # Safety
/// As `egress_engine_lookup_batch_v4`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_engine_lookup_batch_v6(
    engine: *const egress_engine,
    queries: *const egress_query_v6,
    count: usize,
    verdicts_out: *mut egress_verdict,
) -> egress_result {
    // SAFETY: forwarded.
    unsafe { lookup_batch::<V6, _, 16>(engine, queries, count, verdicts_out) }
}

/// The desired entries of both maps, IPv4 first, each map in `list` order. `*count_out` is
/// the number of entries; `EGRESS_RESULT_INSUFFICIENT_SIZE` when `buf_len` is smaller
/// (`*count_out` is the count needed, `buf` untouched; `buf` may be NULL when `buf_len` is 0).
///
/// # Safety
/// `engine` NULL or valid; `buf` points at `buf_len` writable entries (NULL only when 0);
/// `count_out` NULL or valid for a write; `error_out` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_engine_entries(
    engine: *const egress_engine,
    buf: *mut egress_entry,
    buf_len: usize,
    count_out: *mut usize,
    error_out: *mut *mut egress_error,
) -> egress_result {
    // SAFETY: the caller's promises.
    unsafe {
        run(error_out, || {
            // Counted, then streamed into the caller's array: never all of them in memory.
            let e = &reference(engine, "engine")?.engine;
            let [v4, v6] = e.entry_counts();
            fill(
                v4 + v6,
                e.entries_streamed(false)
                    .chain(e.entries_streamed(true))
                    .map(|entry| egress_entry::from(&entry)),
                (buf, "buf"),
                (buf_len, "buf_len"),
                count_out,
            )
        })
    }
}

/// Why a packet from `src` to `dst` gets its verdict: byte for byte the JSON document
/// `egressctl explain -o json` prints (UTF-8, no NUL). Sizes as `egress_engine_maps_json`.
///
/// # Safety
/// `engine` NULL or valid; `src`, `dst` NULL or valid addresses; `buf` points at `buf_len`
/// writable bytes (NULL only when 0); `written_out` and `error_out` NULL or valid.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_engine_explain_json(
    engine: *const egress_engine,
    src: *const egress_ip_addr,
    dst: *const egress_ip_addr,
    buf: *mut u8,
    buf_len: usize,
    written_out: *mut usize,
    error_out: *mut *mut egress_error,
) -> egress_result {
    // SAFETY: the caller's promises.
    unsafe {
        text_out(engine, (buf, buf_len, written_out), error_out, |e| {
            let src = reference(src, "src")?.to_ip("src")?;
            let dst = reference(dst, "dst")?.to_ip("dst")?;
            let (src, dst) = query_addresses(src, dst)?;
            Ok(render::json_text(&render::explanation_json(
                &e.explain(src, dst),
            )))
        })
    }
}

/// Whether `src` and `dst` make one lookup, as every binding reads addresses given as
/// values (SEMANTICS B.6): IPv4-mapped addresses are IPv4; different families are
/// `EGRESS_RESULT_INVALID_ARGUMENT` (path `dst`), the error saying why — what a lookup that
/// returned that code without a message refused. `src_out`/`dst_out` (optional: NULL) get
/// the addresses the lookup uses.
///
/// # Safety
/// `src`, `dst` NULL or valid addresses; `src_out`, `dst_out`, `error_out` NULL or valid for
/// a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_query_check(
    src: *const egress_ip_addr,
    dst: *const egress_ip_addr,
    src_out: *mut egress_ip_addr,
    dst_out: *mut egress_ip_addr,
    error_out: *mut *mut egress_error,
) -> egress_result {
    // SAFETY: the caller's promises.
    unsafe {
        run(error_out, || {
            let src = reference(src, "src")?.to_ip("src")?;
            let dst = reference(dst, "dst")?.to_ip("dst")?;
            let (src, dst) = query_addresses(src, dst)?;
            for (ptr, ip) in [(src_out, src), (dst_out, dst)] {
                if !ptr.is_null() {
                    ptr.write(ip.into());
                }
            }
            Ok(())
        })
    }
}

/// The keys several producers want with different bytes, and who wins (SEMANTICS B.1), as
/// JSON: `[{"winner": producer, "overridden": [producer, ...]}]`, a producer being
/// `{"policy", "endpoint", "list", "index", "entry"}`. Sizes as `egress_engine_maps_json`.
///
/// # Safety
/// As `egress_engine_maps_json`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_engine_conflicts_json(
    engine: *const egress_engine,
    buf: *mut u8,
    buf_len: usize,
    written_out: *mut usize,
    error_out: *mut *mut egress_error,
) -> egress_result {
    // SAFETY: the caller's promises.
    unsafe {
        run(error_out, || {
            let e = &reference(engine, "engine")?.engine;
            stream_out(
                |out| render::write_conflicts_json(e.conflicts_streamed(), out),
                buf,
                buf_len,
                written_out,
            )
        })
    }
}

/// Counts and sizes of an engine.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct egress_stats {
    /// Desired entries of the IPv4 map.
    pub desired_v4: usize,
    /// Desired entries of the IPv6 map.
    pub desired_v6: usize,
    /// Programmed (acknowledged or adopted) entries of the IPv4 map.
    pub programmed_v4: usize,
    /// Programmed entries of the IPv6 map.
    pub programmed_v6: usize,
    /// Capacity of the IPv4 map.
    pub max_entries: usize,
    /// Sources whose programmed entries differ from the desired ones (the next plan's).
    pub pending_sources: usize,
    /// Valid policies.
    pub policies: usize,
    /// Endpoints.
    pub endpoints: usize,
    /// Nodes.
    pub nodes: usize,
    /// Heap held by the engine's state, estimated from its tables' capacities.
    pub memory_bytes: usize,
    /// Capacity of the IPv6 map (the IPv4 map's unless the maps were opened with their own).
    pub max_entries_v6: usize,
}

/// Fills `*stats_out`.
///
/// # Safety
/// `engine` NULL or valid; `stats_out` NULL or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn egress_engine_stats(
    engine: *const egress_engine,
    stats_out: *mut egress_stats,
) -> egress_result {
    run_code(|| {
        let stats_out = checked_out(stats_out, "stats_out").map_err(|f| f.code)?;
        // SAFETY: the caller's promise.
        let engine = &unsafe { reference(engine, "engine") }
            .map_err(|f| f.code)?
            .engine;
        let s = engine.stats();
        let memory = engine.memory();
        let stats = egress_stats {
            desired_v4: s.desired_v4,
            desired_v6: s.desired_v6,
            programmed_v4: s.programmed_v4,
            programmed_v6: s.programmed_v6,
            max_entries: s.max_entries as usize,
            pending_sources: s.pending_sources,
            policies: s.policies,
            endpoints: s.endpoints,
            nodes: s.nodes,
            memory_bytes: memory.total(),
            max_entries_v6: s.max_entries_v6 as usize,
        };
        // SAFETY: checked for NULL; the caller's promise.
        unsafe { stats_out.write(stats) };
        Ok(())
    })
}
