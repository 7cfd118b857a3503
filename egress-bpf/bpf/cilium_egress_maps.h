/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cilium_egress_maps.h — Cilium's egress gateway maps, byte for byte (SEMANTICS A.4), and the
 * compact layout's (ours, issue 27), for the BPF programs of this repository: egress-bpf's
 * test datapath (bpf/egress_datapath.c) and the lab's (egress-lab/bpf/lab_datapath.c).
 * egress-core/src/maps.rs and compact.rs write the same bytes; egress-bpf's tests compare
 * the sizes the compiled object declares with its.
 *
 * A program that uses egress_compact_lookup4/6 declares bpf_map_lookup_elem before including
 * this header (libbpf's bpf_helpers.h, or its own declaration).
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

/*
 * The compact layout (egress-core's Layout::Compact): per family an endpoint hash and a rule
 * trie keyed by (set id, destination) whose values are Cilium's _v4_v2 / IPv6 values. The
 * hash holds endpoints in blocks of EGRESS_COMPACT_BLOCK consecutive addresses: key the
 * block's first address (the low three bits zero), value each address's set id (a
 * native-endian __u32; 0: no endpoint). Endpoints selected alike share a set: a new
 * endpoint is one hash write (its block's).
 */
#define EGRESS_COMPACT_BLOCK 8

struct egress_compact_block {
	__u32 sets[EGRESS_COMPACT_BLOCK];
};

struct egress_compact_key4 {
	__u32 prefixlen; /* 32 (the set id) + the destination's prefix length */
	__be32 set;      /* the set id, big-endian: the trie matches it first */
	__be32 daddr;
};

struct egress_compact_key6 {
	__u32 prefixlen;
	__be32 set;
	__u8 daddr[16];
};

struct egress_addr6 {
	__u8 addr[16];
};

/* The endpoint hash's declaration: EGRESS_COMPACT_ENDPOINTS(__be32) egress_gw_compact_endpoints_v4 SEC(".maps"); */
#define EGRESS_COMPACT_ENDPOINTS(key_type)                                                    \
	struct {                                                                              \
		__uint(type, BPF_MAP_TYPE_HASH);                                              \
		__type(key, key_type);                                                        \
		__type(value, struct egress_compact_block);                                   \
		__uint(max_entries, EGRESS_MAX_ENTRIES);                                      \
		__uint(map_flags, EGRESS_MAP_FLAGS);                                          \
	}

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define EGRESS_HTONL(x) __builtin_bswap32(x)
#else
#define EGRESS_HTONL(x) (x)
#endif

/* The set id of an IPv4 source: its block's entry at its index; 0 when it is no endpoint. */
static __always_inline __u32 egress_compact_set4(void *endpoints, __be32 saddr)
{
	__be32 base = saddr & EGRESS_HTONL(~(__u32)(EGRESS_COMPACT_BLOCK - 1));
	struct egress_compact_block *block = bpf_map_lookup_elem(endpoints, &base);
	if (!block)
		return 0;
	return block->sets[EGRESS_HTONL(saddr) & (EGRESS_COMPACT_BLOCK - 1)];
}

static __always_inline __u32 egress_compact_set6(void *endpoints, const __u8 *saddr)
{
	struct egress_addr6 base;
	__builtin_memcpy(base.addr, saddr, 16);
	base.addr[15] &= (__u8)~(EGRESS_COMPACT_BLOCK - 1);
	struct egress_compact_block *block = bpf_map_lookup_elem(endpoints, &base);
	if (!block)
		return 0;
	return block->sets[saddr[15] & (EGRESS_COMPACT_BLOCK - 1)];
}

/*
 * The compact layout's decision — the same verdict as Cilium's maps for every flow
 * (egress-bpf's kernel differential checks it): the source's set, then the longest
 * destination prefix among that set's rules. NULL: no entry (the source is no selected
 * endpoint, or no rule of its set holds the destination).
 */
static __always_inline struct egress_val4 *egress_compact_lookup4(void *endpoints, void *rules,
								   __be32 saddr, __be32 daddr)
{
	__u32 set = egress_compact_set4(endpoints, saddr);
	if (!set)
		return 0;
	struct egress_compact_key4 key = { .prefixlen = 64, .set = EGRESS_HTONL(set), .daddr = daddr };
	return bpf_map_lookup_elem(rules, &key);
}

static __always_inline struct egress_val6 *egress_compact_lookup6(void *endpoints, void *rules,
								   const __u8 *saddr, const __u8 *daddr)
{
	__u32 set = egress_compact_set6(endpoints, saddr);
	if (!set)
		return 0;
	struct egress_compact_key6 key = { .prefixlen = 160, .set = EGRESS_HTONL(set) };
	__builtin_memcpy(key.daddr, daddr, 16);
	return bpf_map_lookup_elem(rules, &key);
}

#endif /* CILIUM_EGRESS_MAPS_H */
