//! Names of the C ABI's numbers, for logs and messages: static, NUL-terminated, never freed;
//! NULL for a number that is none of the enum's.

use std::ffi::c_char;

/// A static C string.
macro_rules! c {
    ($text:literal) => {
        concat!($text, "\0").as_ptr().cast::<c_char>()
    };
}

/// The name of an `egress_result` (`"EGRESS_RESULT_INVALID_ARGUMENT"`), NULL for another
/// value.
#[unsafe(no_mangle)]
pub extern "C" fn egress_result_name(result: u32) -> *const c_char {
    match result {
        0 => c!("EGRESS_RESULT_OK"),
        1 => c!("EGRESS_RESULT_PANIC"),
        2 => c!("EGRESS_RESULT_NULL_PARAMETER"),
        3 => c!("EGRESS_RESULT_INVALID_UTF8"),
        4 => c!("EGRESS_RESULT_INVALID_ENUM"),
        5 => c!("EGRESS_RESULT_INSUFFICIENT_SIZE"),
        6 => c!("EGRESS_RESULT_PARSE"),
        7 => c!("EGRESS_RESULT_INPUT"),
        8 => c!("EGRESS_RESULT_POLICY"),
        9 => c!("EGRESS_RESULT_CAPACITY"),
        10 => c!("EGRESS_RESULT_DECODE"),
        11 => c!("EGRESS_RESULT_INVALID_ARGUMENT"),
        12 => c!("EGRESS_RESULT_KERNEL"),
        13 => c!("EGRESS_RESULT_OUT_OF_MEMORY"),
        _ => std::ptr::null(),
    }
}

/// The pinned map an `egress_map` names (`"cilium_egress_gw_policy_v4_v2"`), NULL for
/// another value.
#[unsafe(no_mangle)]
pub extern "C" fn egress_map_name(map: u32) -> *const c_char {
    match map {
        0 => c!("cilium_egress_gw_policy_v4_v2"),
        1 => c!("cilium_egress_gw_policy_v4"),
        2 => c!("cilium_egress_gw_policy_v6"),
        _ => std::ptr::null(),
    }
}

/// The name of an `egress_verdict_kind` as every binding spells it (`"no_entry"`,
/// `"drop_no_gateway"`, `"drop_no_egress_ip"`, `"excluded"`, `"forward"`, `"masquerade"`),
/// NULL for another value.
#[unsafe(no_mangle)]
pub extern "C" fn egress_verdict_kind_name(kind: u32) -> *const c_char {
    match kind {
        0 => c!("no_entry"),
        1 => c!("drop_no_gateway"),
        2 => c!("drop_no_egress_ip"),
        3 => c!("excluded"),
        4 => c!("forward"),
        5 => c!("masquerade"),
        _ => std::ptr::null(),
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::CStr;

    use egress_core::lookup::VerdictKind;
    use egress_core::maps::MapId;

    use super::*;
    use crate::types::egress_map;

    fn text(p: *const c_char) -> Option<String> {
        // SAFETY: NULL or a static NUL-terminated string.
        (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned())
    }

    #[test]
    fn every_number_has_the_name_the_core_and_the_header_give_it() {
        for kind in VerdictKind::ALL {
            assert_eq!(
                text(egress_verdict_kind_name(kind as u32)).as_deref(),
                Some(kind.name())
            );
        }
        for (number, map) in [
            (egress_map::V4, MapId::V4),
            (egress_map::V4Legacy, MapId::V4Legacy),
            (egress_map::V6, MapId::V6),
        ] {
            assert_eq!(
                text(egress_map_name(number as u32)).as_deref(),
                Some(map.name())
            );
        }
        let header = include_str!("../../include/egress_gateway.h");
        for code in 0..=13 {
            let name = text(egress_result_name(code)).unwrap();
            assert!(
                header.contains(&format!("{name} = {code},")),
                "{name} = {code}"
            );
        }
        assert_eq!(text(egress_result_name(14)), None);
        assert_eq!(text(egress_map_name(3)), None);
        assert_eq!(text(egress_verdict_kind_name(6)), None);
    }
}
