//! The C ABI with what a careless C caller passes: NULL or misaligned pointers, lengths up to
//! each buffer's, any `uint32_t` where an enum belongs, output buffers of any size, text that
//! is not UTF-8, calls in any order. Memory the caller does not own is never passed (that is
//! the caller's promise in the header, not something the library can check).
//!
//! After every call: no panic reached C (`EGRESS_RESULT_PANIC` is a finding); the code is
//! one of the header's; a failure with an `error_out` carries an error object of the same
//! code whose message and field strings are readable, a success none; a buffer too small
//! says how large it must be (with no error object), and that size then succeeds; a lookup
//! equals the same query in a batch. And every call — the engine's creation, events,
//! adoptions, queries into a caller buffer (plans, maps, entries, conflicts, explanations) —
//! allocates no more than its budget (issue 21): 1 MiB, plus 256 bytes per byte of the fuzz
//! input, plus twice the buffer the caller gave; a size query of an amplifying input (a few
//! CIDRs times a few endpoints) counts, never renders or builds.
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ffi::CStr;
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicUsize, Ordering};

use egress_ffi::*;
use libfuzzer_sys::fuzz_target;

/// The system allocator, counting the bytes live and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

impl Counting {
    fn grew(size: usize) {
        let live = LIVE.fetch_add(size, Ordering::Relaxed) + size;
        PEAK.fetch_max(live, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded to the system allocator unchanged; only counters change.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            Self::grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            Self::grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            Self::grew(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

thread_local! {
    /// The fuzz input's length: the budget of every call grows with it.
    static INPUT_LEN: Cell<usize> = const { Cell::new(0) };
}

/// Runs `call`, which was given an output buffer of `given` bytes, and checks that the memory
/// it allocated at its peak stays within its budget.
fn within_budget<R>(what: &str, given: usize, call: impl FnOnce() -> R) -> R {
    let budget = (1 << 20) + 256 * INPUT_LEN.with(Cell::get) + 2 * given;
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let result = call();
    let peak = PEAK.load(Ordering::Relaxed) - before;
    assert!(
        peak <= budget,
        "{what} allocated {peak} bytes at its peak, over its budget of {budget}"
    );
    result
}

const TEXTS: [&str; 8] = [
    "metadata: {name: a}\nspec: {selectors: [{podSelector: {matchLabels: {app: a}}}], destinationCIDRs: [0.0.0.0/0, '::/0'], excludedCIDRs: [10.9.0.0/16], egressGateway: {nodeSelector: {matchLabels: {egress: 'true'}}}}",
    "metadata: {name: b}\nspec: {selectors: [{podSelector: {}}], destinationCIDRs: [10.9.0.0/16], egressGateway: {nodeSelector: {}, egressIP: 10.0.0.1}}",
    "{\"name\": \"n0\", \"labels\": {\"egress\": \"true\"}, \"ipv4\": \"10.0.0.1\", \"interfaces\": [{\"name\": \"eth0\", \"index\": 2, \"addresses\": [\"10.0.0.1/24\"], \"defaultRoute\": true}]}",
    "{\"name\": \"n1\", \"labels\": {\"egress\": \"true\"}, \"ipv4\": \"10.0.0.2\"}",
    "{\"uid\": \"u1\", \"namespace\": \"d\", \"labels\": {\"app\": \"a\"}, \"ips\": [\"10.1.0.1\", \"fd00::1\"], \"node\": \"n1\"}",
    "{\"name\": \"d\", \"labels\": {\"team\": \"x\"}}",
    "[{\"name\": \"eth0\", \"index\": 2, \"addresses\": [\"10.0.0.1/24\", \"fd00::9/64\"], \"defaultRoute\": true}]",
    "localNode: n0\nnodes: [{name: n0, labels: {egress: 'true'}, ipv4: 10.0.0.1}]\nendpoints: [{uid: u0, labels: {app: a}, ips: [10.1.0.9]}]\npolicies: []\n",
];

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// Bytes of text: a template, or up to 64 fuzzed bytes (not necessarily UTF-8).
    fn text(&mut self) -> Vec<u8> {
        let pick = self.u8();
        if pick < 128 {
            return TEXTS[usize::from(pick) % TEXTS.len()].as_bytes().to_vec();
        }
        let n = usize::from(self.u8() % 64).min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head.to_vec()
    }

    fn done(&self) -> bool {
        self.0.is_empty()
    }
}

/// How a pointer argument is passed: NULL, valid, or (for types with alignment > 1)
/// misaligned into memory the caller owns.
#[derive(Clone, Copy, PartialEq)]
enum Ptr {
    Null,
    Valid,
    Misaligned,
}

fn ptr_kind(b: &mut Bytes<'_>) -> Ptr {
    match b.u8() % 16 {
        0 => Ptr::Null,
        1 => Ptr::Misaligned,
        _ => Ptr::Valid,
    }
}

/// A pointer to `items` as `how` says; misaligned pointers point one byte into a copy that
/// owns one more element, so even a wrong read would stay in owned memory.
fn ptr_to<T: Copy>(items: &[T], how: Ptr, spare: &mut Vec<u8>) -> *const T {
    match how {
        Ptr::Null => null(),
        Ptr::Valid => items.as_ptr(),
        Ptr::Misaligned if std::mem::align_of::<T>() == 1 => items.as_ptr(),
        Ptr::Misaligned => {
            let bytes = std::mem::size_of_val(items) + std::mem::size_of::<T>() + 1;
            spare.clear();
            spare.resize(bytes, 0);
            // SAFETY: `spare` holds `bytes` bytes, more than one byte past `items`' size.
            unsafe {
                let at = spare.as_mut_ptr().add(1);
                std::ptr::copy_nonoverlapping(
                    items.as_ptr().cast::<u8>(),
                    at,
                    std::mem::size_of_val(items),
                );
                at.cast::<T>()
            }
        }
    }
}

fn mut_ptr_to<T>(item: &mut T, how: Ptr, spare: &mut Vec<u8>) -> *mut T {
    match how {
        Ptr::Null => null_mut(),
        Ptr::Misaligned if std::mem::align_of::<T>() > 1 => {
            spare.clear();
            spare.resize(2 * std::mem::size_of::<T>() + 2, 0);
            // SAFETY: one byte into a buffer of more than twice T's size.
            unsafe { spare.as_mut_ptr().add(1).cast::<T>() }
        }
        _ => item,
    }
}

/// Checks a call's code and the error object it left, and frees it. `spare`: where a
/// misaligned `error_out` pointed, which must be left as it was (zero).
fn check(code: egress_result, error_out: Ptr, error: &mut *mut egress_error, spare: &[u8]) {
    assert_ne!(code, egress_result::Panic, "a panic reached C");
    assert!(untouched(spare), "written through a misaligned error_out");
    if code == egress_result::Ok
        || code == egress_result::InsufficientSize
        || error_out != Ptr::Valid
    {
        assert!(error.is_null(), "an error object after {code:?}");
        return;
    }
    assert!(!error.is_null(), "{code:?} without an error object");
    // SAFETY: a live error object made by the library; strings are NUL-terminated and live
    // as long as it.
    unsafe {
        assert_eq!(egress_error_code(*error), code);
        let message = CStr::from_ptr(egress_error_message(*error));
        assert!(
            !message.to_bytes().is_empty(),
            "{code:?} with an empty message"
        );
        assert!(message.to_str().is_ok());
        for i in 0..egress_error_field_count(*error) {
            for text in [
                egress_error_field_path(*error, i),
                egress_error_field_reason(*error, i),
            ] {
                assert!(!text.is_null());
                assert!(CStr::from_ptr(text).to_str().is_ok());
            }
        }
        assert!(egress_error_field_path(*error, usize::MAX).is_null());
        egress_error_free(*error);
    }
    *error = null_mut();
}

/// Whether a spare buffer behind a misaligned out pointer is still all zero.
fn untouched(spare: &[u8]) -> bool {
    spare.iter().all(|&b| b == 0)
}

/// A `(pointer, length)` text argument: NULL with a length of 0 or not, or a valid pointer
/// with any length up to the text's.
fn text_arg(b: &mut Bytes<'_>, text: &[u8]) -> (*const u8, usize) {
    match b.u8() % 8 {
        0 => (null(), 0),
        1 => (null(), usize::from(b.u8()) + 1),
        2 => (text.as_ptr(), usize::from(b.u8()).min(text.len())),
        _ => (text.as_ptr(), text.len()),
    }
}

fn ip_addr(b: &mut Bytes<'_>) -> egress_ip_addr {
    let family = match b.u8() % 8 {
        0 => b.u32(),
        k => u32::from(k % 2),
    };
    let mut bytes = [0u8; 16];
    if b.u8() % 2 == 0 {
        bytes[..4].copy_from_slice(&[10, 1, 0, b.u8() % 4]);
    } else {
        bytes = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, b.u8() % 4];
    }
    egress_ip_addr { family, bytes }
}

/// Calls a query that writes into a caller buffer of elements `T`, with a buffer of the
/// fuzzed size; when too small, the size it asks for must then succeed.
fn sized<T: Copy>(
    b: &mut Bytes<'_>,
    zero: T,
    mut call: impl FnMut(*mut T, usize, *mut usize, *mut *mut egress_error) -> egress_result,
) -> Option<Vec<T>> {
    let mut spare = Vec::new();
    let capacity = usize::from(b.u8() % 32);
    let mut buf = vec![zero; capacity];
    let buf_ptr = match ptr_kind(b) {
        Ptr::Null => null_mut(),
        Ptr::Misaligned => ptr_to(&buf, Ptr::Misaligned, &mut spare).cast_mut(),
        Ptr::Valid => buf.as_mut_ptr(),
    };
    let len = if buf_ptr.is_null() && b.u8() % 2 == 0 {
        0
    } else {
        capacity
    };
    let mut count = usize::MAX;
    let count_how = ptr_kind(b);
    let mut count_spare = Vec::new();
    let count_ptr = mut_ptr_to(&mut count, count_how, &mut count_spare);
    let error_how = ptr_kind(b);
    let mut error = null_mut();
    let mut error_spare = Vec::new();
    let error_ptr = mut_ptr_to(&mut error, error_how, &mut error_spare);
    let size = std::mem::size_of::<T>();
    let code = within_budget("a query", len * size, || {
        call(buf_ptr, len, count_ptr, error_ptr)
    });
    check(code, error_how, &mut error, &error_spare);
    assert!(
        untouched(&count_spare),
        "written through a misaligned count pointer"
    );
    let own = buf.as_mut_ptr();
    let valid = |p: *mut T| !p.is_null() && p == own;
    if !buf_ptr.is_null() && !valid(buf_ptr) && len > 0 {
        assert_ne!(code, egress_result::Ok, "a misaligned buffer was written");
    }
    if code == egress_result::InsufficientSize && count_how == Ptr::Valid {
        assert!(count > len, "asked for {count} with {len}");
        let mut big = vec![zero; count];
        let mut again = usize::MAX;
        let mut error = null_mut();
        let code = within_budget("a query of the size asked for", count * size, || {
            call(big.as_mut_ptr(), big.len(), &mut again, &mut error)
        });
        check(code, Ptr::Valid, &mut error, &[]);
        assert_eq!(code, egress_result::Ok, "the size asked for");
        assert_eq!(again, big.len());
        return Some(big);
    }
    if code == egress_result::Ok && count_how == Ptr::Valid && valid(buf_ptr) {
        assert!(count <= len);
        buf.truncate(count);
        return Some(buf);
    }
    None
}

fuzz_target!(|data: &[u8]| {
    INPUT_LEN.with(|n| n.set(data.len()));
    let mut b = Bytes(data);
    let mut spare = Vec::new();
    let node = b.text();
    let cluster = b.text();
    let (local_node, local_node_len) = text_arg(&mut b, &node);
    let (cluster, cluster_len) = text_arg(&mut b, &cluster);
    let enum_value = |b: &mut Bytes<'_>| match b.u8() % 8 {
        0 => b.u32(),
        k => u32::from(k % 2),
    };
    let config = egress_engine_config {
        local_node,
        local_node_len,
        selection: enum_value(&mut b),
        layout: enum_value(&mut b),
        max_entries: u32::from(b.u8()) * 4,
        cluster,
        cluster_len,
        cilium_version: enum_value(&mut b),
    };
    let config_ptr = ptr_to(std::slice::from_ref(&config), ptr_kind(&mut b), &mut spare);
    let mut engine: *mut egress_engine = null_mut();
    let engine_how = ptr_kind(&mut b);
    let mut engine_spare = Vec::new();
    let engine_ptr = mut_ptr_to(&mut engine, engine_how, &mut engine_spare);
    let error_how = ptr_kind(&mut b);
    let mut error = null_mut();
    let mut error_spare = Vec::new();
    let error_ptr = mut_ptr_to(&mut error, error_how, &mut error_spare);
    let snapshot = b.u8() % 2 == 0;
    let code = within_budget("making the engine", 0, || {
        if snapshot {
            let text = b.text();
            let (text, text_len) = text_arg(&mut b, &text);
            // SAFETY: every pointer is NULL, misaligned into owned memory, or valid, and every
            // length within its buffer.
            unsafe {
                egress_engine_from_snapshot_config(
                    text, text_len, config_ptr, engine_ptr, error_ptr,
                )
            }
        } else {
            // SAFETY: as above.
            unsafe { egress_engine_new(config_ptr, engine_ptr, error_ptr) }
        }
    });
    check(code, error_how, &mut error, &error_spare);
    assert!(
        untouched(&engine_spare),
        "written through a misaligned engine_out"
    );
    if engine_how != Ptr::Valid || code != egress_result::Ok {
        assert!(engine.is_null());
        return;
    }
    assert!(!engine.is_null());

    for _ in 0..64 {
        if b.done() {
            break;
        }
        let op = b.u8() % 16;
        let text = b.text();
        let (text_ptr, text_len) = text_arg(&mut b, &text);
        let error_how = ptr_kind(&mut b);
        let mut error = null_mut();
        let mut error_spare = Vec::new();
        let error_ptr = mut_ptr_to(&mut error, error_how, &mut error_spare);
        let mut found = false;
        let found_ptr: *mut bool = if b.u8() % 8 == 0 {
            null_mut()
        } else {
            &mut found
        };
        // SAFETY (every call below): the engine is live; every pointer is NULL, misaligned
        // into owned memory, or valid, and every length within its buffer. Events and
        // adoptions within the budget too (nothing given: the input's share alone); the
        // buffer queries (10, 12, 13) check their own, with their buffers.
        let budgeted = !matches!(op, 10 | 12 | 13);
        let code = within_budget(
            if budgeted { "an event" } else { "queries" },
            usize::MAX / 4 * usize::from(!budgeted),
            || unsafe {
                match op {
                    0 => egress_engine_upsert_policy(engine, text_ptr, text_len, error_ptr),
                    1 => egress_engine_delete_policy(
                        engine, text_ptr, text_len, found_ptr, error_ptr,
                    ),
                    2 => egress_engine_upsert_node(engine, text_ptr, text_len, error_ptr),
                    3 => {
                        egress_engine_delete_node(engine, text_ptr, text_len, found_ptr, error_ptr)
                    }
                    4 => egress_engine_upsert_endpoint_json(engine, text_ptr, text_len, error_ptr),
                    5 => egress_engine_delete_endpoint(
                        engine, text_ptr, text_len, found_ptr, error_ptr,
                    ),
                    6 => egress_engine_upsert_namespace_json(engine, text_ptr, text_len, error_ptr),
                    7 => egress_engine_set_devices(engine, text_ptr, text_len, error_ptr),
                    8 | 9 => {
                        // A typed endpoint or namespace: labels and addresses as arrays.
                        let value = b.text();
                        let labels: Vec<egress_label> = (0..b.u8() % 4)
                            .map(|_| {
                                let (key, key_len) = text_arg(&mut b, &text);
                                let (value, value_len) = text_arg(&mut b, &value);
                                egress_label {
                                    key,
                                    key_len,
                                    value,
                                    value_len,
                                }
                            })
                            .collect();
                        let ips: Vec<egress_ip_addr> =
                            (0..b.u8() % 3).map(|_| ip_addr(&mut b)).collect();
                        let mut label_spare = Vec::new();
                        let labels_ptr = ptr_to(&labels, ptr_kind(&mut b), &mut label_spare);
                        let labels_len = if labels_ptr.is_null() && b.u8() % 2 == 0 {
                            0
                        } else {
                            labels.len()
                        };
                        if op == 8 {
                            let mut ip_spare = Vec::new();
                            let ips_ptr = ptr_to(&ips, ptr_kind(&mut b), &mut ip_spare);
                            let ips_len = if ips_ptr.is_null() && b.u8() % 2 == 0 {
                                0
                            } else {
                                ips.len()
                            };
                            let (node, node_len) = text_arg(&mut b, &value);
                            let endpoint = egress_endpoint {
                                uid: text_ptr,
                                uid_len: text_len,
                                namespace_name: value.as_ptr(),
                                namespace_name_len: value.len(),
                                labels: labels_ptr,
                                labels_len,
                                namespace_labels: null(),
                                namespace_labels_len: 0,
                                service_account: null(),
                                service_account_len: 0,
                                ips: ips_ptr,
                                ips_len,
                                node,
                                node_len,
                            };
                            let mut endpoint_spare = Vec::new();
                            let endpoint_ptr = ptr_to(
                                std::slice::from_ref(&endpoint),
                                ptr_kind(&mut b),
                                &mut endpoint_spare,
                            );
                            egress_engine_upsert_endpoint(engine, endpoint_ptr, error_ptr)
                        } else {
                            egress_engine_upsert_namespace(
                                engine, text_ptr, text_len, labels_ptr, labels_len, error_ptr,
                            )
                        }
                    }
                    10 => {
                        let ops = sized(
                            &mut b,
                            egress_plan_op::default(),
                            |buf, len, count, error| {
                                egress_engine_take_plan(engine, buf, len, count, error)
                            },
                        );
                        let applied = match ops {
                            Some(ops) => {
                                ops.len().saturating_sub(usize::from(b.u8() % 3))
                                    + usize::from(b.u8() % 2)
                            }
                            None => usize::from(b.u8() % 4),
                        };
                        egress_engine_ack(engine, applied, error_ptr)
                    }
                    11 => {
                        let elements: Vec<egress_map_element> = (0..b.u8() % 4)
                            .map(|_| {
                                let mut e = egress_map_element::default();
                                e.map = enum_value(&mut b);
                                e.key_len = u32::from(b.u8() % 48);
                                e.value_len = u32::from(b.u8() % 48);
                                for (i, byte) in e.key.iter_mut().enumerate() {
                                    *byte = if i < 4 { b.u8() } else { b.u8() % 2 };
                                }
                                e
                            })
                            .collect();
                        let mut element_spare = Vec::new();
                        let ptr = ptr_to(&elements, ptr_kind(&mut b), &mut element_spare);
                        let len = if ptr.is_null() && b.u8() % 2 == 0 {
                            0
                        } else {
                            elements.len()
                        };
                        egress_engine_adopt(engine, ptr, len, error_ptr)
                    }
                    12 => {
                        let json = sized(&mut b, 0u8, |buf, len, written, error| {
                            egress_engine_maps_json(engine, buf, len, written, error)
                        });
                        if let Some(json) = json {
                            let text = std::str::from_utf8(&json).expect("maps JSON is UTF-8");
                            assert!(text.starts_with('{') && text.ends_with('\n'), "{text}");
                        }
                        let _ = sized(&mut b, 0u8, |buf, len, written, error| {
                            egress_engine_conflicts_json(engine, buf, len, written, error)
                        });
                        let _ = sized(&mut b, egress_entry::default(), |buf, len, count, error| {
                            egress_engine_entries(engine, buf, len, count, error)
                        });
                        egress_result::Ok
                    }
                    13 => {
                        let src = ip_addr(&mut b);
                        let dst = ip_addr(&mut b);
                        let mut src_spare = Vec::new();
                        let mut dst_spare = Vec::new();
                        let src_ptr =
                            ptr_to(std::slice::from_ref(&src), ptr_kind(&mut b), &mut src_spare);
                        let dst_ptr =
                            ptr_to(std::slice::from_ref(&dst), ptr_kind(&mut b), &mut dst_spare);
                        let _ = sized(&mut b, 0u8, |buf, len, written, error| {
                            egress_engine_explain_json(
                                engine, src_ptr, dst_ptr, buf, len, written, error,
                            )
                        });
                        egress_result::Ok
                    }
                    14 => {
                        lookups(&mut b, engine);
                        egress_result::Ok
                    }
                    _ => {
                        let mut stats = egress_stats::default();
                        let mut stats_spare = Vec::new();
                        let stats_how = ptr_kind(&mut b);
                        let code = egress_engine_stats(
                            engine,
                            mut_ptr_to(&mut stats, stats_how, &mut stats_spare),
                        );
                        assert_eq!(code == egress_result::Ok, stats_how == Ptr::Valid);
                        assert!(
                            untouched(&stats_spare),
                            "written through a misaligned stats_out"
                        );
                        egress_result::Ok
                    }
                }
            },
        );
        check(code, error_how, &mut error, &error_spare);
    }
    // SAFETY: the engine made above, freed once; freeing NULL is allowed.
    unsafe {
        egress_engine_free(engine);
        egress_engine_free(null_mut());
    }
});

/// A lookup of a fuzzed query equals the same query in a batch (both families).
fn lookups(b: &mut Bytes<'_>, engine: *const egress_engine) {
    let zero = egress_verdict {
        kind: u32::MAX,
        gateway_ip: [0; 4],
        egress_ip: [0; 16],
        ifindex: 0,
    };
    let src = [10, 1, 0, b.u8() % 4];
    let dst = [b.u8(), b.u8(), 0, 1];
    let mut one = zero;
    let mut many = [zero; 2];
    let mut spare = Vec::new();
    let queries = [egress_query_v4 { src, dst }; 2];
    let how = ptr_kind(b);
    // SAFETY: the engine is live; pointers NULL, misaligned into owned memory, or valid.
    unsafe {
        let code = egress_engine_lookup_v4(engine, src.as_ptr(), dst.as_ptr(), &mut one);
        assert_eq!(code, egress_result::Ok);
        let queries_ptr = ptr_to(&queries, how, &mut spare);
        let code = egress_engine_lookup_batch_v4(engine, queries_ptr, 2, many.as_mut_ptr());
        // The query structs hold bytes only: no pointer to them can be misaligned.
        if how != Ptr::Null {
            assert_eq!(code, egress_result::Ok);
            assert_eq!(many[0], one);
            assert_eq!(many[1], one);
        } else {
            assert_ne!(code, egress_result::Ok);
            assert_ne!(code, egress_result::Panic);
        }
        let code = egress_engine_lookup_v4(engine, null(), dst.as_ptr(), &mut one);
        assert_eq!(code, egress_result::NullParameter);
        let src6 = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, b.u8() % 4];
        let dst6 = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, b.u8()];
        let code = egress_engine_lookup_v6(engine, src6.as_ptr(), dst6.as_ptr(), &mut one);
        assert_eq!(code, egress_result::Ok);
        let queries6 = [egress_query_v6 {
            src: src6,
            dst: dst6,
        }];
        let code = egress_engine_lookup_batch_v6(engine, queries6.as_ptr(), 1, many.as_mut_ptr());
        assert_eq!(code, egress_result::Ok);
        assert_eq!(many[0], one);
    }
}
