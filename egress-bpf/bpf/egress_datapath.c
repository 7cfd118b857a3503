// SPDX-License-Identifier: Apache-2.0
//
// The egress gateway decision of SEMANTICS A.6, made in the kernel on Cilium's maps and on
// the compact layout's (the pinned maps of the layout loaded are reused by the loader; the
// other layout's maps are created empty). Tests run `egress_verdict` / `compact_verdict`
// with BPF_PROG_TEST_RUN on built packets and compare their verdicts with Engine::lookup
// and with each other; the report binary times the decisions with `lookups_*` and
// `compact_lookups_*` against the identical `baseline_*` loops without lookups.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;

#include "cilium_egress_maps.h"

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define be16(x) __builtin_bswap16(x)
#define be32(x) __builtin_bswap32(x)
#else
#define be16(x) (x)
#define be32(x) (x)
#endif

EGRESS_MAP(struct egress_key4, struct egress_val4) egress_v4 SEC(".maps");

EGRESS_MAP(struct egress_key6, struct egress_val6) egress_v6 SEC(".maps");

EGRESS_COMPACT_ENDPOINTS(__be32) compact_endpoints_v4 SEC(".maps");
EGRESS_COMPACT_ENDPOINTS(struct egress_addr6) compact_endpoints_v6 SEC(".maps");
EGRESS_MAP(struct egress_compact_key4, struct egress_val4) compact_rules_v4 SEC(".maps");
EGRESS_MAP(struct egress_compact_key6, struct egress_val6) compact_rules_v6 SEC(".maps");

/* The local node's IPv4, network order; set by the loader before loading. */
const volatile __u32 local_ipv4 = 0;

/* Written by egress_verdict right after the packet's IP header. */
struct result {
	__u32 verdict;
	__u32 gateway_ip;
	__u32 ifindex;
	__u8 egress_ip[16];
};

enum {
	NO_ENTRY = 0,
	DROP_NO_GATEWAY = 1,
	DROP_NO_EGRESS_IP = 2,
	EXCLUDED = 3,
	FORWARD = 4,
	MASQUERADE = 5,
};

/* Gateway 0.0.0.1 marks an excluded destination. */
#define EXCLUDED_GATEWAY be32(1)

static __always_inline void decide(struct result *res, __u32 gateway, int no_egress_ip, __u32 ifindex)
{
	res->gateway_ip = gateway;
	res->ifindex = 0;
	if (gateway == 0)
		res->verdict = DROP_NO_GATEWAY;
	else if (gateway == EXCLUDED_GATEWAY)
		res->verdict = EXCLUDED;
	else if (gateway == local_ipv4) {
		if (no_egress_ip) {
			res->verdict = DROP_NO_EGRESS_IP;
		} else {
			res->verdict = MASQUERADE;
			res->ifindex = ifindex;
		}
	} else
		res->verdict = FORWARD;
}

/* The verdict of one packet, written right after its IP header; `compact` picks the maps. */
static __always_inline int verdict(struct xdp_md *ctx, int compact)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > end)
		return XDP_ABORTED;
	if (eth->h_proto == be16(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		struct result *res = (void *)(ip + 1);
		if ((void *)(res + 1) > end)
			return XDP_ABORTED;
		struct egress_val4 *v;
		if (compact) {
			v = egress_compact_lookup4(&compact_endpoints_v4, &compact_rules_v4, ip->saddr,
						   ip->daddr);
		} else {
			/* The full-length key: exact source, then the longest destination prefix. */
			struct egress_key4 key = { .prefixlen = 64, .saddr = ip->saddr, .daddr = ip->daddr };
			v = bpf_map_lookup_elem(&egress_v4, &key);
		}
		res->verdict = NO_ENTRY;
		if (!v)
			return XDP_PASS;
		decide(res, v->gateway_ip, v->egress_ip == 0, v->egress_ifindex);
		__builtin_memcpy(res->egress_ip, &v->egress_ip, 4);
		return XDP_PASS;
	}
	if (eth->h_proto == be16(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		struct result *res = (void *)(ip6 + 1);
		if ((void *)(res + 1) > end)
			return XDP_ABORTED;
		struct egress_val6 *v;
		if (compact) {
			v = egress_compact_lookup6(&compact_endpoints_v6, &compact_rules_v6,
						   (const __u8 *)&ip6->saddr, (const __u8 *)&ip6->daddr);
		} else {
			struct egress_key6 key = { .prefixlen = 256 };
			__builtin_memcpy(key.saddr, &ip6->saddr, 16);
			__builtin_memcpy(key.daddr, &ip6->daddr, 16);
			v = bpf_map_lookup_elem(&egress_v6, &key);
		}
		res->verdict = NO_ENTRY;
		if (!v)
			return XDP_PASS;
		__u32 *words = (__u32 *)v->egress_ip;
		int zero = (words[0] | words[1] | words[2] | words[3]) == 0;
		decide(res, v->gateway_ip, zero, v->egress_ifindex);
		__builtin_memcpy(res->egress_ip, v->egress_ip, 16);
		return XDP_PASS;
	}
	return XDP_PASS;
}

SEC("xdp")
int egress_verdict(struct xdp_md *ctx)
{
	return verdict(ctx, 0);
}

SEC("xdp")
int compact_verdict(struct xdp_md *ctx)
{
	return verdict(ctx, 1);
}

/* Timing: BATCH lookups on (source, destination) pairs packed in the packet, and the same
 * loop without the lookups. The lookups' results are not branched on: a branch per lookup
 * would make the verifier explore 2^BATCH paths. The empty asm keeps the key's stores in
 * the baseline, so that the two loops differ by the lookups only. */
#define KEEP(x) asm volatile("" : : "r"(x) : "memory")
#define BATCH4 64
#define BATCH6 32

struct pair4 {
	__u32 saddr;
	__u32 daddr;
};

struct pair6 {
	__u8 saddr[16];
	__u8 daddr[16];
};

SEC("xdp")
int lookups_v4(struct xdp_md *ctx)
{
	struct pair4 *p = (void *)(long)ctx->data;
	if ((void *)(p + BATCH4) > (void *)(long)ctx->data_end)
		return XDP_ABORTED;
	for (int i = 0; i < BATCH4; i++) {
		struct egress_key4 key = { .prefixlen = 64, .saddr = p[i].saddr, .daddr = p[i].daddr };
		bpf_map_lookup_elem(&egress_v4, &key);
	}
	return XDP_PASS;
}

SEC("xdp")
int baseline_v4(struct xdp_md *ctx)
{
	struct pair4 *p = (void *)(long)ctx->data;
	if ((void *)(p + BATCH4) > (void *)(long)ctx->data_end)
		return XDP_ABORTED;
	for (int i = 0; i < BATCH4; i++) {
		struct egress_key4 key = { .prefixlen = 64, .saddr = p[i].saddr, .daddr = p[i].daddr };
		KEEP(&key);
	}
	return XDP_PASS;
}

SEC("xdp")
int lookups_v6(struct xdp_md *ctx)
{
	struct pair6 *p = (void *)(long)ctx->data;
	if ((void *)(p + BATCH6) > (void *)(long)ctx->data_end)
		return XDP_ABORTED;
	for (int i = 0; i < BATCH6; i++) {
		struct egress_key6 key = { .prefixlen = 256 };
		__builtin_memcpy(key.saddr, p[i].saddr, 16);
		__builtin_memcpy(key.daddr, p[i].daddr, 16);
		bpf_map_lookup_elem(&egress_v6, &key);
	}
	return XDP_PASS;
}

/* The compact decision: the endpoint block in the hash, then the rule trie with the set found
 * (0, which no rule has, when the source is no endpoint: no branch on it, so that the
 * verifier's paths stay few). */
SEC("xdp")
int compact_lookups_v4(struct xdp_md *ctx)
{
	struct pair4 *p = (void *)(long)ctx->data;
	if ((void *)(p + BATCH4) > (void *)(long)ctx->data_end)
		return XDP_ABORTED;
	for (int i = 0; i < BATCH4; i++) {
		__u32 set = egress_compact_set4(&compact_endpoints_v4, p[i].saddr);
		struct egress_compact_key4 key = { .prefixlen = 64, .set = EGRESS_HTONL(set), .daddr = p[i].daddr };
		bpf_map_lookup_elem(&compact_rules_v4, &key);
	}
	return XDP_PASS;
}

SEC("xdp")
int compact_lookups_v6(struct xdp_md *ctx)
{
	struct pair6 *p = (void *)(long)ctx->data;
	if ((void *)(p + BATCH6) > (void *)(long)ctx->data_end)
		return XDP_ABORTED;
	for (int i = 0; i < BATCH6; i++) {
		__u32 set = egress_compact_set6(&compact_endpoints_v6, p[i].saddr);
		struct egress_compact_key6 key = { .prefixlen = 160, .set = EGRESS_HTONL(set) };
		__builtin_memcpy(key.daddr, p[i].daddr, 16);
		bpf_map_lookup_elem(&compact_rules_v6, &key);
	}
	return XDP_PASS;
}

SEC("xdp")
int baseline_v6(struct xdp_md *ctx)
{
	struct pair6 *p = (void *)(long)ctx->data;
	if ((void *)(p + BATCH6) > (void *)(long)ctx->data_end)
		return XDP_ABORTED;
	for (int i = 0; i < BATCH6; i++) {
		struct egress_key6 key = { .prefixlen = 256 };
		__builtin_memcpy(key.saddr, p[i].saddr, 16);
		__builtin_memcpy(key.daddr, p[i].daddr, 16);
		KEEP(&key);
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
