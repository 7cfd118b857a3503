//! Issue 21: an input that asks for 256,000 entries through the C ABI. The size queries
//! (`maps_json`, `entries`, `take_plan` with a buffer of 0) count without building — their
//! peak memory stays flat where the entries and the document would take ~50 MB — and a state past the
//! capacity is refused before a plan is built. (Its own test binary: the process's peak
//! resident size is this test's alone.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ptr;

use egress_ffi::*;

#[path = "../../tests/support/amplifying.rs"]
mod amplifying;
use amplifying::amplifying_snapshot;

/// The process's peak resident size since the last [`reset_peak`], in KiB.
fn peak_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The current resident size, in KiB.
fn current_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Sets the peak to the current size (`clear_refs` 5, Linux 4.0+).
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

/// How much a call raised the peak over the size before it, in KiB.
fn growth(call: impl FnOnce()) -> u64 {
    reset_peak();
    let before = current_kib();
    call();
    peak_kib().saturating_sub(before)
}

fn new_engine(text: &str, max_entries: u32) -> *mut egress_engine {
    let config = egress_engine_config {
        local_node: ptr::null(),
        local_node_len: 0,
        selection: 0,
        layout: 0,
        max_entries,
        cluster: ptr::null(),
        cluster_len: 0,
        cilium_version: 0,
    };
    let mut engine = ptr::null_mut();
    let mut error = ptr::null_mut();
    // SAFETY: valid pointers for the call.
    let code = unsafe {
        egress_engine_from_snapshot_config(
            text.as_ptr(),
            text.len(),
            &config,
            &mut engine,
            &mut error,
        )
    };
    assert_eq!(code, egress_result::Ok);
    engine
}

#[test]
fn size_queries_count_without_building_and_a_plan_past_capacity_is_refused_first() {
    // 1,024 CIDRs x 250 pods: 256,000 entries from 51 KB.
    let text = amplifying_snapshot(1_024, 250);
    assert!(text.len() < 60_000, "{}", text.len());
    let engine = new_engine(&text, 1 << 30);
    let mut error = ptr::null_mut();
    // Entries: counted.
    let mut count = 0;
    let grew = growth(|| {
        // SAFETY: a valid engine; a size query (NULL, 0).
        let code =
            unsafe { egress_engine_entries(engine, ptr::null_mut(), 0, &mut count, &mut error) };
        assert_eq!(code, egress_result::InsufficientSize);
    });
    assert_eq!(count, 256_000);
    assert!(error.is_null(), "a size query hands out no error object");
    assert!(
        grew < 2048,
        "the entries size query grew the peak by {grew} KiB"
    );
    // The maps document: rendered to a counter, nothing held.
    let mut size = 0;
    let grew = growth(|| {
        // SAFETY: as above.
        let code =
            unsafe { egress_engine_maps_json(engine, ptr::null_mut(), 0, &mut size, &mut error) };
        assert_eq!(code, egress_result::InsufficientSize);
    });
    assert!(size > 25_000_000, "{size}");
    assert!(
        grew < 4096,
        "the maps_json size query grew the peak by {grew} KiB for a {} MB document",
        size / 1_000_000
    );
    // ... and written into the caller's buffer with nothing more than the buffer itself.
    let mut buf = vec![0u8; size];
    let mut written = 0;
    let grew = growth(|| {
        // SAFETY: `buf` holds `size` writable bytes.
        let code = unsafe {
            egress_engine_maps_json(
                engine,
                buf.as_mut_ptr(),
                buf.len(),
                &mut written,
                &mut error,
            )
        };
        assert_eq!(code, egress_result::Ok);
    });
    assert_eq!(written, size);
    // The buffer's pages are touched by the call itself: its size, and little more.
    assert!(
        grew < (size / 1024) as u64 + 4096,
        "maps_json into the buffer grew the peak by {grew} KiB"
    );
    let doc: serde_json::Value = serde_json::from_slice(&buf).unwrap();
    assert_eq!(doc["ipv4"].as_array().unwrap().len(), 256_000);
    assert_eq!(doc["ipv4"][0]["sourceIP"], "10.1.0.0");
    drop(buf);
    // The plan: counted, and only the count handed out for a buffer of 0.
    let grew = growth(|| {
        // SAFETY: a valid engine; a size query.
        let code =
            unsafe { egress_engine_take_plan(engine, ptr::null_mut(), 0, &mut count, &mut error) };
        assert_eq!(code, egress_result::InsufficientSize);
    });
    assert_eq!(count, 256_000);
    assert!(
        grew < 2048,
        "the plan size query grew the peak by {grew} KiB"
    );
    // SAFETY: made above, freed once.
    unsafe { egress_engine_free(engine) };
    // Cilium's default capacity: refused before any operation is built.
    let engine = new_engine(&text, 0);
    let grew = growth(|| {
        let mut ops = vec![egress_plan_op::default(); 16];
        // SAFETY: `ops` holds 16 writable ops.
        let code = unsafe {
            egress_engine_take_plan(engine, ops.as_mut_ptr(), ops.len(), &mut count, &mut error)
        };
        assert_eq!(code, egress_result::Capacity);
    });
    assert_eq!(count, 0);
    assert!(grew < 2048, "the refused plan grew the peak by {grew} KiB");
    // SAFETY: the error object of the failed call; made above, freed once.
    unsafe {
        let message = std::ffi::CStr::from_ptr(egress_error_message(error));
        assert!(
            message.to_str().unwrap().contains(
                "the plan needs 256000 entries, more than max_entries 16384, even with the stale keys deleted first"
            ),
            "{message:?}"
        );
        egress_error_free(error);
        egress_engine_free(engine);
    }
}
