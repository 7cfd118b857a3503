// SPDX-License-Identifier: Apache-2.0
//
// egress-lab's datapath: Cilium's egress gateway decision (SEMANTICS A.6) on
// Cilium's map layout — or on the compact layout (egress-core's Layout::Compact: endpoint
// blocks -> set ids, (set, destination) rules), chosen by lab_config.compact — plus the SNAT /
// reverse-SNAT and the tunnel to the gateway that Cilium does around it, small enough to
// read in one sitting. IPv4 only.
//
// One object, three tc (clsact, direct-action) programs. The same object is loaded once
// PER NODE network namespace, against that node's own maps pinned in
// <bpffs>/<node>/ by egress-lab (every node's engine computes its own entries, and only the
// gateway itself holds a non-zero egress_ip for an endpoint):
//
//   from_pod      tc INGRESS of the node-side veth of every local pod (lxc-<pod>).
//                 It sees each packet a pod sends before the node's stack does, which is
//                 where Cilium's bpf_lxc makes the same decision (handle_ipv4_from_lxc):
//                   destination inside the VPC (cluster)   -> TC_ACT_OK, kernel routing, no NAT
//                   no policy entry, or gateway 0.0.0.1    -> normal path: SNAT to the node IP
//                                                             (our own BPF masquerade) and
//                                                             redirect out of the FIB's device
//                   gateway 0.0.0.0                        -> drop (no gateway)
//                   gateway == this node                   -> SNAT to egress_ip (drop if 0) and
//                                                             redirect to egress_ifindex (or FIB)
//                   gateway == another node                -> VXLAN-encapsulate, unchanged, to
//                                                             the gateway IP (collect_md tunnel)
//   from_overlay  tc INGRESS of the node's lab_vxlan device (VXLAN, "external"/collect_md):
//                 packets the kernel has just decapsulated.
//                   inner destination is a local pod       -> a reply the gateway already
//                                                             reverse-NATed: redirect to the pod
//                   else, this node's own map says gateway == this node and egress_ip != 0
//                                                          -> SNAT to egress_ip, remember the
//                                                             source node (outer source IP),
//                                                             redirect out egress_ifindex / FIB
//                   anything else                          -> drop (counted)
//   from_netdev   tc INGRESS of eth0 (the node's VPC interface, where egress_ifindex points):
//                 replies from outside. A hit in the reverse-NAT map rewrites the destination
//                 back to the pod and delivers it: redirect to the local pod's veth, or
//                 encapsulate to the pod's node (the outer source recorded above). Everything
//                 else (VXLAN itself, ARP, the node's own traffic) -> TC_ACT_OK.
//
// Why tc and not XDP: the veth/VXLAN paths need skb metadata (tunnel keys via
// bpf_skb_set_tunnel_key / bpf_skb_get_tunnel_key, checksum state, GSO), bpf_redirect_neigh
// and bpf_fib_lookup with L2 resolution; XDP on a veth only works in native mode with the
// peer's NAPI/XDP set up, and XDP has no tunnel-key helpers. Cilium uses tc for the same.
//
// NAT state: two LRU hashes per node (lab_nat_fwd: pod tuple -> nat ip/port; lab_nat_rev:
// reply tuple -> pod ip/port + where to deliver). The port is always re-allocated from
// [port_min, port_max] (the lab: 41000-65535, its nodes' ip_local_port_range set below it, so it
// never collides with the node's own sockets, which share the node IP when egressIP = node IP
// as in the seed). Two pods using the same source port to the same destination get different
// NAT ports: the reverse entry is claimed atomically with BPF_NOEXIST.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* Cilium's map structs and flags (egress-bpf/bpf/, written beside this file when compiled). */
#include "cilium_egress_maps.h"

#define AF_INET 2
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff
#define ICMP_ECHOREPLY 0
#define ICMP_ECHO 8

/* ------------------------------------------------------------------ maps ---- */

/* Created by egress-bpf (EgressMaps, flags BPF_F_NO_PREALLOC | BPF_F_RDONLY_PROG, as Cilium's
 * agent creates it) and reused here: the flags below must match for the loader to reuse it. */
EGRESS_MAP(struct egress_key4, struct egress_val4) cilium_egress_gw_policy_v4_v2 SEC(".maps");

/* The compact layout's IPv4 maps (egress-bpf creates them for that layout; with Cilium's, the
 * loader makes them empty and nothing reads them). */
EGRESS_COMPACT_ENDPOINTS(__be32) egress_gw_compact_endpoints_v4 SEC(".maps");
EGRESS_MAP(struct egress_compact_key4, struct egress_val4) egress_gw_compact_rules_v4 SEC(".maps");

#define EGRESS_GATEWAY_NO_GATEWAY 0
#define EGRESS_GATEWAY_EXCLUDED_CIDR bpf_htonl(1)

/* Per-node settings, written by egress-lab when the node's programs are loaded. */
struct lab_config {
	__be32 node_ip;        /* this node's IPv4 = the gateway IP other nodes tunnel to */
	__u32 vxlan_ifindex;   /* lab_vxlan's ifindex in this node's namespace */
	__be32 native_net;     /* the VPC / cluster CIDR (ipv4NativeRoutingCIDR): never */
	__be32 native_mask;    /* masqueraded nor sent to a gateway (Cilium: ipcache check) */
	__u16 port_min;        /* NAT port range, host order */
	__u16 port_max;
	__u32 vni;             /* VNI put on tunnelled packets (Cilium: the source identity) */
	__u32 compact;         /* 1: the compact layout's maps hold the policy, else Cilium's */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct lab_config);
	__uint(max_entries, 1);
} lab_config SEC(".maps");

/* Local pods: pod IPv4 -> ifindex of its node-side veth (Cilium: cilium_lxc). */
struct endpoint {
	__u32 ifindex;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __be32);
	__type(value, struct endpoint);
	__uint(max_entries, 256);
} lab_endpoints SEC(".maps");

/* The pod's original tuple (ICMP echo: sport = id, dport = 0). */
struct nat_fwd_key {
	__be32 saddr;
	__be32 daddr;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 pad[3];
};

struct nat_fwd_val {
	__be32 nat_ip;
	__be16 nat_port;
	__u16 pad;
};

/* The reply's tuple as seen on the NAT node: remote -> (nat_ip, nat_port). */
struct nat_rev_key {
	__be32 raddr;
	__be32 nat_ip;
	__be16 rport;
	__be16 nat_port;
	__u8 proto;
	__u8 pad[3];
};

struct nat_rev_val {
	__be32 pod_ip;
	__be16 pod_port;
	__u16 pad;
	__be32 tunnel_remote;  /* the pod's node (outer source of the request); 0 = local pod */
	__u32 ifindex;         /* local pod: its veth; else 0 */
	__u64 last_seen;       /* bpf_ktime_get_ns() of the last packet, either direction */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct nat_fwd_key);
	__type(value, struct nat_fwd_val);
	__uint(max_entries, 65536);
} lab_nat_fwd SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct nat_rev_key);
	__type(value, struct nat_rev_val);
	__uint(max_entries, 65536);
} lab_nat_rev SEC(".maps");

/* Counters (per CPU), read by egress-lab after each experiment. */
enum {
	ST_POD_CLUSTER = 0,     /* from_pod: destination in the VPC, untouched */
	ST_POD_MASQ,            /* from_pod: normal path, SNAT to node IP */
	ST_POD_EXCLUDED,        /* from_pod: entry with gateway 0.0.0.1 (also counted in MASQ) */
	ST_POD_DROP_NO_GW,      /* from_pod: gateway 0.0.0.0 */
	ST_POD_LOCAL_GW,        /* from_pod: this node is the gateway, SNAT to egress_ip */
	ST_POD_DROP_NO_EGRESS_IP,
	ST_POD_TO_TUNNEL,       /* from_pod: encapsulated to another gateway node */
	ST_OVL_TO_POD,          /* from_overlay: reply delivered to a local pod */
	ST_OVL_GW_SNAT,         /* from_overlay: request SNATed as the gateway */
	ST_OVL_DROP_NO_POLICY,  /* from_overlay: no entry naming this node with an egress IP */
	ST_NET_REVNAT_LOCAL,    /* from_netdev: reply reverse-NATed to a local pod */
	ST_NET_REVNAT_TUNNEL,   /* from_netdev: reply reverse-NATed and tunnelled to the pod's node */
	ST_NAT_ALLOC,           /* a new NAT port was claimed */
	ST_DROP_NAT_EXHAUSTED,  /* no free port in the range after NAT_TRIES tries */
	ST_DROP_UNSUPPORTED,    /* NAT needed on a fragment / protocol we cannot NAT */
	ST_DROP_FIB,            /* bpf_fib_lookup failed */
	ST_DROP_TUNNEL,         /* set/get tunnel key failed */
	ST_MAX = 32,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, ST_MAX);
} lab_stats SEC(".maps");

static __always_inline void count(__u32 what)
{
	__u64 *c = bpf_map_lookup_elem(&lab_stats, &what);
	if (c)
		*c += 1;
}

/* ---------------------------------------------------------- packet parsing ---- */

#define IP_OFF ETH_HLEN
#define IP_CSUM_OFF (IP_OFF + offsetof(struct iphdr, check))
#define IP_SRC_OFF (IP_OFF + offsetof(struct iphdr, saddr))
#define IP_DST_OFF (IP_OFF + offsetof(struct iphdr, daddr))

struct pkt {
	__be32 saddr;
	__be32 daddr;
	__u8 proto;
	__u8 natable;      /* TCP, UDP or ICMP echo / echo-reply, not a fragment */
	__u8 icmp_type;
	__be16 sport;      /* ICMP echo: id; echo reply: 0 */
	__be16 dport;      /* ICMP echo: 0; echo reply: id */
	__u32 l4_off;
	__u32 csum_off;    /* L4 checksum offset */
	__u32 sport_off;   /* where the source-side port/id lives */
	__u32 dport_off;   /* where the destination-side port/id lives */
	__u8 tos;
};

/* Returns 0 for IPv4 (fills p), -1 otherwise. */
static __always_inline int parse(struct __sk_buff *skb, struct pkt *p)
{
	struct iphdr ip;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return -1;
	if (bpf_skb_load_bytes(skb, IP_OFF, &ip, sizeof(ip)) < 0)
		return -1;
	if (ip.version != 4 || ip.ihl < 5)
		return -1;
	p->saddr = ip.saddr;
	p->daddr = ip.daddr;
	p->proto = ip.protocol;
	p->tos = ip.tos;
	p->l4_off = IP_OFF + ip.ihl * 4;
	p->natable = 0;
	p->sport = p->dport = 0;
	if (ip.frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return 0;
	if (ip.protocol == IPPROTO_TCP || ip.protocol == IPPROTO_UDP) {
		__be16 ports[2];
		if (bpf_skb_load_bytes(skb, p->l4_off, ports, sizeof(ports)) < 0)
			return 0;
		p->sport = ports[0];
		p->dport = ports[1];
		p->sport_off = p->l4_off;
		p->dport_off = p->l4_off + 2;
		p->csum_off = p->l4_off + (ip.protocol == IPPROTO_TCP ? 16 : 6);
		p->natable = 1;
	} else if (ip.protocol == IPPROTO_ICMP) {
		__u8 hdr[8]; /* type, code, csum, id, seq */
		if (bpf_skb_load_bytes(skb, p->l4_off, hdr, sizeof(hdr)) < 0)
			return 0;
		p->icmp_type = hdr[0];
		p->csum_off = p->l4_off + 2;
		__be16 id = *(__be16 *)&hdr[4];
		if (hdr[0] == ICMP_ECHO) {
			p->sport = id;
			p->sport_off = p->l4_off + 4;
			p->dport_off = p->l4_off + 4; /* unused */
			p->natable = 1;
		} else if (hdr[0] == ICMP_ECHOREPLY) {
			p->dport = id;
			p->dport_off = p->l4_off + 4;
			p->sport_off = p->l4_off + 4; /* unused */
			p->natable = 1;
		}
	}
	return 0;
}

static __always_inline int in_native(const struct lab_config *cfg, __be32 addr)
{
	return cfg->native_mask && (addr & cfg->native_mask) == cfg->native_net;
}

/* ------------------------------------------------------- rewriting helpers ---- */

/* Rewrites one address (src or dst) and fixes the IP checksum and, for TCP/UDP, the
 * pseudo-header part of the L4 checksum. bpf_l4_csum_replace handles CHECKSUM_PARTIAL
 * (pod veth / GRO packets: only the pseudo-header sum is in the field) and
 * CHECKSUM_COMPLETE; BPF_F_MARK_MANGLED_0 keeps a UDP checksum of 0 ("none") as 0. */
static __always_inline int rewrite_addr(struct __sk_buff *skb, const struct pkt *p, __u32 off,
					__be32 old, __be32 new)
{
	if (p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP) {
		__u64 flags = BPF_F_PSEUDO_HDR | sizeof(new);
		if (p->proto == IPPROTO_UDP)
			flags |= BPF_F_MARK_MANGLED_0;
		if (bpf_l4_csum_replace(skb, p->csum_off, old, new, flags) < 0)
			return -1;
	}
	if (bpf_l3_csum_replace(skb, IP_CSUM_OFF, old, new, sizeof(new)) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, off, &new, sizeof(new), 0);
}

/* Rewrites a port (or ICMP id) and the L4 checksum (no pseudo-header involved). */
static __always_inline int rewrite_port(struct __sk_buff *skb, const struct pkt *p, __u32 off,
					__be16 old, __be16 new)
{
	if (old == new)
		return 0;
	__u64 flags = sizeof(new);
	if (p->proto == IPPROTO_UDP)
		flags |= BPF_F_MARK_MANGLED_0;
	if (bpf_l4_csum_replace(skb, p->csum_off, old, new, flags) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, off, &new, sizeof(new), 0);
}

/* ---------------------------------------------------------------- SNAT ---- */

#define NAT_TRIES 16
#define SEC_NS 1000000000ULL

/* Idle time after which a NAT entry's port may be given to another flow. No FIN/RST
 * tracking in the prototype: entries otherwise live until the LRU evicts them. */
static __always_inline __u64 nat_timeout(__u8 proto)
{
	if (proto == IPPROTO_TCP)
		return 7440 * SEC_NS; /* RFC 5382: >= 2 h 4 min for established TCP */
	if (proto == IPPROTO_UDP)
		return 300 * SEC_NS;  /* RFC 4787: >= 2 min */
	return 60 * SEC_NS;
}

/* Source-NATs p to nat_ip, keeping (or allocating) a port; records how replies get back:
 * tunnel_remote != 0 -> encapsulate to that node, else redirect to veth `ifindex`.
 * Returns 0 on success, a ST_DROP_* counter index on failure. */
static __always_inline int snat(struct __sk_buff *skb, const struct lab_config *cfg, struct pkt *p,
				__be32 nat_ip, __be32 tunnel_remote, __u32 ifindex)
{
	struct nat_fwd_key fk = {
		.saddr = p->saddr, .daddr = p->daddr,
		.sport = p->sport, .dport = p->dport, .proto = p->proto,
	};
	struct nat_rev_key rk = {
		.raddr = p->daddr, .nat_ip = nat_ip, .rport = p->dport, .proto = p->proto,
	};
	struct nat_rev_val rv = {
		.pod_ip = p->saddr, .pod_port = p->sport,
		.tunnel_remote = tunnel_remote, .ifindex = ifindex,
	};
	__u64 now = bpf_ktime_get_ns();
	__be16 port = 0;

	if (!p->natable)
		return ST_DROP_UNSUPPORTED;

	struct nat_fwd_val *fv = bpf_map_lookup_elem(&lab_nat_fwd, &fk);
	if (fv && fv->nat_ip == nat_ip) {
		rk.nat_port = fv->nat_port;
		struct nat_rev_val *old = bpf_map_lookup_elem(&lab_nat_rev, &rk);
		if (old && old->pod_ip == p->saddr && old->pod_port == p->sport) {
			old->last_seen = now;
			old->tunnel_remote = tunnel_remote;
			old->ifindex = ifindex;
			port = fv->nat_port;
		}
	}
	if (!port) {
		/* New flow (or its reverse entry was evicted / taken after a timeout). */
		__u32 range = (__u32)cfg->port_max - cfg->port_min + 1;
		__u32 start = bpf_get_prandom_u32();
		rv.last_seen = now;
		if (range == 0 || range > 65536)
			return ST_DROP_NAT_EXHAUSTED;
		for (int i = 0; i < NAT_TRIES; i++) {
			__be16 cand = bpf_htons((__u16)(cfg->port_min + (start + i) % range));
			rk.nat_port = cand;
			if (bpf_map_update_elem(&lab_nat_rev, &rk, &rv, BPF_NOEXIST) == 0) {
				port = cand;
				break;
			}
			/* Taken: reusable only if idle for longer than the timeout. */
			struct nat_rev_val *old = bpf_map_lookup_elem(&lab_nat_rev, &rk);
			if (old && now - old->last_seen > nat_timeout(p->proto)) {
				if (bpf_map_update_elem(&lab_nat_rev, &rk, &rv, BPF_ANY) == 0) {
					port = cand;
					break;
				}
			}
		}
		if (!port)
			return ST_DROP_NAT_EXHAUSTED;
		struct nat_fwd_val nfv = { .nat_ip = nat_ip, .nat_port = port };
		bpf_map_update_elem(&lab_nat_fwd, &fk, &nfv, BPF_ANY);
		count(ST_NAT_ALLOC);
	}

	if (rewrite_addr(skb, p, IP_SRC_OFF, p->saddr, nat_ip) < 0)
		return ST_DROP_UNSUPPORTED;
	if (rewrite_port(skb, p, p->sport_off, p->sport, port) < 0)
		return ST_DROP_UNSUPPORTED;
	p->saddr = nat_ip;
	p->sport = port;
	return 0;
}

/* ------------------------------------------------------------ forwarding ---- */

/* Sends the (already rewritten) packet towards p->daddr using the node's FIB: on success
 * write the MACs and bpf_redirect; if the neighbour is not resolved yet let
 * bpf_redirect_neigh resolve it (queues the packet, sends ARP). A lookup without
 * BPF_FIB_LOOKUP_OUTPUT is a forwarding lookup: it needs forwarding enabled on the input
 * device (else BPF_FIB_LKUP_RET_FWD_DISABLED, counted as a FIB drop; seen in the lab with
 * ip_forward=0 on a gateway). */
static __always_inline int fib_redirect(struct __sk_buff *skb, const struct pkt *p)
{
	/* tot_len stays 0: then the kernel checks the egress MTU against the skb itself
	 * (is_skb_forwardable, GSO-aware). With tot_len = the IP header's length, a GSO/GRO
	 * packet (a pod's TSO send, a VXLAN-GRO'd packet on the gateway) gets
	 * BPF_FIB_LKUP_RET_FRAG_NEEDED and would be dropped: the first version of this lab
	 * stalled every bulk transfer that way. */
	struct bpf_fib_lookup fib = {
		.family = AF_INET,
		.l4_protocol = p->proto,
		.tos = p->tos,
		.ifindex = skb->ingress_ifindex ? skb->ingress_ifindex : skb->ifindex,
		.ipv4_src = p->saddr,
		.ipv4_dst = p->daddr,
	};
	long ret = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);

	if (ret == BPF_FIB_LKUP_RET_SUCCESS) {
		if (bpf_skb_store_bytes(skb, 0, fib.dmac, ETH_ALEN, 0) < 0 ||
		    bpf_skb_store_bytes(skb, ETH_ALEN, fib.smac, ETH_ALEN, 0) < 0)
			return TC_ACT_SHOT;
		return bpf_redirect(fib.ifindex, 0);
	}
	if (ret == BPF_FIB_LKUP_RET_NO_NEIGH) {
		struct bpf_redir_neigh nh = { .nh_family = AF_INET, .ipv4_nh = fib.ipv4_dst };
		return bpf_redirect_neigh(fib.ifindex, &nh, sizeof(nh), 0);
	}
	count(ST_DROP_FIB);
	return TC_ACT_SHOT;
}

/* Out of the gateway's egress interface: straight there when the entry names one (Cilium
 * does the same when the kernel can resolve neighbours without a next hop), else FIB. */
static __always_inline int egress_redirect(struct __sk_buff *skb, const struct pkt *p, __u32 egress_ifindex)
{
	if (egress_ifindex)
		return bpf_redirect_neigh(egress_ifindex, NULL, 0, 0);
	return fib_redirect(skb, p);
}

/* Encapsulates to `remote` (network order) through the collect_md VXLAN device. The inner
 * frame keeps its Ethernet header; the receiving node's from_overlay consumes the packet
 * before the stack would look at the inner MACs. */
static __always_inline int to_tunnel(struct __sk_buff *skb, const struct lab_config *cfg, __be32 remote)
{
	struct bpf_tunnel_key key = {
		.tunnel_id = cfg->vni,
		.remote_ipv4 = bpf_ntohl(remote), /* the helper wants host order */
		.tunnel_ttl = 64,
	};
	if (bpf_skb_set_tunnel_key(skb, &key, sizeof(key), 0) < 0) {
		count(ST_DROP_TUNNEL);
		return TC_ACT_SHOT;
	}
	return bpf_redirect(cfg->vxlan_ifindex, 0);
}

static __always_inline const struct lab_config *config(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&lab_config, &zero);
}

static __always_inline const struct egress_val4 *policy(const struct lab_config *cfg,
							 __be32 saddr, __be32 daddr)
{
	if (cfg->compact)
		return egress_compact_lookup4(&egress_gw_compact_endpoints_v4,
					      &egress_gw_compact_rules_v4, saddr, daddr);
	struct egress_key4 key = { .prefixlen = 64, .saddr = saddr, .daddr = daddr };
	return bpf_map_lookup_elem(&cilium_egress_gw_policy_v4_v2, &key);
}

/* ----------------------------------------------------------------- programs ---- */

SEC("tc")
int from_pod(struct __sk_buff *skb)
{
	const struct lab_config *cfg = config();
	struct pkt p = {};
	int err;

	if (!cfg || parse(skb, &p) < 0)
		return TC_ACT_OK;
	if (in_native(cfg, p.daddr)) {
		/* Cluster-internal: never egress-gatewayed (A.6), never masqueraded. */
		count(ST_POD_CLUSTER);
		return TC_ACT_OK;
	}

	const struct egress_val4 *v = policy(cfg, p.saddr, p.daddr);
	if (!v || v->gateway_ip == EGRESS_GATEWAY_EXCLUDED_CIDR) {
		/* Normal path: masquerade to the node IP (Cilium: BPF masquerade in to-netdev). */
		if (v)
			count(ST_POD_EXCLUDED);
		count(ST_POD_MASQ);
		err = snat(skb, cfg, &p, cfg->node_ip, 0, skb->ifindex);
		if (err) {
			count(err);
			return TC_ACT_SHOT;
		}
		return fib_redirect(skb, &p);
	}
	if (v->gateway_ip == EGRESS_GATEWAY_NO_GATEWAY) {
		count(ST_POD_DROP_NO_GW);
		return TC_ACT_SHOT;
	}
	if (v->gateway_ip == cfg->node_ip) {
		/* This node is the pod's gateway: SNAT here, no tunnel. */
		__be32 egress_ip = v->egress_ip;
		__u32 egress_ifindex = v->egress_ifindex;
		if (!egress_ip) {
			count(ST_POD_DROP_NO_EGRESS_IP);
			return TC_ACT_SHOT;
		}
		count(ST_POD_LOCAL_GW);
		err = snat(skb, cfg, &p, egress_ip, 0, skb->ifindex);
		if (err) {
			count(err);
			return TC_ACT_SHOT;
		}
		return egress_redirect(skb, &p, egress_ifindex);
	}
	/* Another node is the gateway: the packet travels unchanged inside VXLAN. */
	count(ST_POD_TO_TUNNEL);
	return to_tunnel(skb, cfg, v->gateway_ip);
}

SEC("tc")
int from_overlay(struct __sk_buff *skb)
{
	const struct lab_config *cfg = config();
	struct pkt p = {};
	int err;

	if (!cfg || parse(skb, &p) < 0)
		return TC_ACT_SHOT;

	/* A reply the gateway already reverse-NATed, for one of our pods. */
	struct endpoint *ep = bpf_map_lookup_elem(&lab_endpoints, &p.daddr);
	if (ep) {
		count(ST_OVL_TO_POD);
		return bpf_redirect_neigh(ep->ifindex, NULL, 0, 0);
	}

	/* A request from a pod on another node: only if OUR map makes us its gateway. */
	const struct egress_val4 *v = policy(cfg, p.saddr, p.daddr);
	if (!v || v->gateway_ip != cfg->node_ip || !v->egress_ip) {
		count(ST_OVL_DROP_NO_POLICY);
		return TC_ACT_SHOT;
	}
	__be32 egress_ip = v->egress_ip;
	__u32 egress_ifindex = v->egress_ifindex;

	struct bpf_tunnel_key key = {};
	if (bpf_skb_get_tunnel_key(skb, &key, sizeof(key), 0) < 0) {
		count(ST_DROP_TUNNEL);
		return TC_ACT_SHOT;
	}
	count(ST_OVL_GW_SNAT);
	err = snat(skb, cfg, &p, egress_ip, bpf_htonl(key.remote_ipv4), 0);
	if (err) {
		count(err);
		return TC_ACT_SHOT;
	}
	return egress_redirect(skb, &p, egress_ifindex);
}

SEC("tc")
int from_netdev(struct __sk_buff *skb)
{
	const struct lab_config *cfg = config();
	struct pkt p = {};

	if (!cfg || parse(skb, &p) < 0 || !p.natable)
		return TC_ACT_OK;
	if (p.proto == IPPROTO_ICMP && p.icmp_type != ICMP_ECHOREPLY)
		return TC_ACT_OK;
	__u16 dport = bpf_ntohs(p.dport);
	if (dport < cfg->port_min || dport > cfg->port_max)
		return TC_ACT_OK; /* not a NAT port: VXLAN (8472), the node's own sockets */

	struct nat_rev_key rk = {
		.raddr = p.saddr, .nat_ip = p.daddr, .rport = p.sport,
		.nat_port = p.dport, .proto = p.proto,
	};
	struct nat_rev_val *rv = bpf_map_lookup_elem(&lab_nat_rev, &rk);
	if (!rv)
		return TC_ACT_OK;
	rv->last_seen = bpf_ktime_get_ns();
	__be32 pod_ip = rv->pod_ip;
	__be16 pod_port = rv->pod_port;
	__be32 remote = rv->tunnel_remote;
	__u32 ifindex = rv->ifindex;

	if (rewrite_addr(skb, &p, IP_DST_OFF, p.daddr, pod_ip) < 0 ||
	    rewrite_port(skb, &p, p.dport_off, p.dport, pod_port) < 0) {
		count(ST_DROP_UNSUPPORTED);
		return TC_ACT_SHOT;
	}
	if (remote) {
		count(ST_NET_REVNAT_TUNNEL);
		return to_tunnel(skb, cfg, remote);
	}
	count(ST_NET_REVNAT_LOCAL);
	return bpf_redirect_neigh(ifindex, NULL, 0, 0);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
