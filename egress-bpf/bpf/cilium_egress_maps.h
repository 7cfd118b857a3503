/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cilium_egress_maps.h — Cilium's egress gateway maps, byte for byte (SEMANTICS A.4), for the
 * BPF programs of this repository: egress-bpf's test datapath (bpf/egress_datapath.c) and
 * the lab's (egress-lab/bpf/lab_datapath.c). egress-core/src/maps.rs writes the same bytes;
 * egress-bpf's tests compare the sizes the compiled object declares with its.
 */
#ifndef CILIUM_EGRESS_MAPS_H
#define CILIUM_EGRESS_MAPS_H

#include <linux/bpf.h>
#include <linux/types.h>

/* Cilium's default capacity of each map. */
#define EGRESS_MAX_ENTRIES 16384

/* The flags Cilium 1.20's agent creates `_v4_v2` and the IPv6 map with (egress-bpf's
 * map_flags of the v4v2 and dual layouts). Both programs reuse the live maps (libbpf takes
 * the kernel's type, sizes and flags then); the declarations say what those maps are. */
#define EGRESS_MAP_FLAGS (BPF_F_NO_PREALLOC | BPF_F_RDONLY_PROG)

/* The LPM key: prefixlen = the source's bits (32 or 128) + the destination's prefix length. */
struct egress_key4 {
	__u32 prefixlen;
	__be32 saddr;
	__be32 daddr;
};

/* `cilium_egress_gw_policy_v4_v2`'s value (the legacy map's holds the first two fields). */
struct egress_val4 {
	__be32 egress_ip;
	__be32 gateway_ip; /* 0.0.0.0: no gateway (drop); 0.0.0.1: excluded CIDR */
	__u32 reserved[3];
	__u32 egress_ifindex;
	__u32 reserved2;
};

struct egress_key6 {
	__u32 prefixlen;
	__u8 saddr[16];
	__u8 daddr[16];
};

struct egress_val6 {
	__u8 egress_ip[16];
	__be32 gateway_ip;
	__u32 reserved[3];
	__u32 egress_ifindex;
	__u32 reserved2;
};

/* The declaration of one of Cilium's maps, as a program that reuses the pinned map declares
 * it (`__uint` and `__type` as libbpf's bpf_helpers.h spells them):
 *   EGRESS_MAP(struct egress_key4, struct egress_val4) cilium_egress_gw_policy_v4_v2 SEC(".maps"); */
#define EGRESS_MAP(key_type, value_type)                                                      \
	struct {                                                                              \
		__uint(type, BPF_MAP_TYPE_LPM_TRIE);                                          \
		__type(key, key_type);                                                        \
		__type(value, value_type);                                                    \
		__uint(max_entries, EGRESS_MAX_ENTRIES);                                      \
		__uint(map_flags, EGRESS_MAP_FLAGS);                                          \
	}

#endif /* CILIUM_EGRESS_MAPS_H */
