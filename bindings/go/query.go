package egressgw

/*
#include <stdlib.h>
#include "egress_gateway.h"
#include "shim.h"
*/
import "C"

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"unsafe"
)

// VerdictKind is what the datapath does with a packet.
type VerdictKind uint32

const (
	// VerdictNoEntry: no entry matches; the normal path.
	VerdictNoEntry VerdictKind = 0
	// VerdictDropNoGateway: dropped, the policy has no gateway.
	VerdictDropNoGateway VerdictKind = 1
	// VerdictDropNoEgressIP: dropped, this node is the gateway but has no egress IP of the family.
	VerdictDropNoEgressIP VerdictKind = 2
	// VerdictExcluded: an excluded destination; the normal path, no SNAT.
	VerdictExcluded VerdictKind = 3
	// VerdictForward: tunnelled to the gateway node GatewayIP.
	VerdictForward VerdictKind = 4
	// VerdictMasquerade: SNATed here to EgressIP, out of Ifindex (0: route lookup).
	VerdictMasquerade VerdictKind = 5
)

var verdictNames = [...]string{"no_entry", "drop_no_gateway", "drop_no_egress_ip", "excluded", "forward", "masquerade"}

// String is the kind's name as every binding spells it: "no_entry", "drop_no_gateway",
// "drop_no_egress_ip", "excluded", "forward", "masquerade".
func (k VerdictKind) String() string {
	if int(k) < len(verdictNames) {
		return verdictNames[k]
	}
	return fmt.Sprintf("VerdictKind(%d)", uint32(k))
}

// Verdict is the answer of a lookup. GatewayIP is set for VerdictForward, EgressIP and
// Ifindex for VerdictMasquerade; the other fields are zero.
type Verdict struct {
	Kind      VerdictKind
	GatewayIP netip.Addr
	EgressIP  netip.Addr
	Ifindex   uint32
}

func (v Verdict) String() string {
	switch v.Kind {
	case VerdictForward:
		return fmt.Sprintf("forward to %s", v.GatewayIP)
	case VerdictMasquerade:
		return fmt.Sprintf("masquerade as %s (ifindex %d)", v.EgressIP, v.Ifindex)
	}
	return v.Kind.String()
}

// Lookup is the verdict for a packet from src to dst, as the datapath would find it in the
// desired maps. Addresses are read as every binding reads values (the library decides,
// SEMANTICS B.6): an IPv4-mapped IPv6 address (what netip.AddrFromSlice makes of a 16-byte
// net.IP) is its IPv4 address, and a source and destination of different families are
// ErrInvalidArgument naming "dst"; the zero Addr and addresses with a zone are refused. It
// allocates nothing when it answers and may run concurrently with other queries.
func (e *Engine) Lookup(src, dst netip.Addr) (Verdict, error) {
	if err := checkAddr("src", src); err != nil {
		return Verdict{}, err
	}
	if err := checkAddr("dst", dst); err != nil {
		return Verdict{}, err
	}
	v4 := src.Is4() && dst.Is4()
	if e == nil {
		return Verdict{}, ErrClosed
	}
	e.mu.RLock()
	ptr := e.ptr
	if ptr == nil {
		e.mu.RUnlock()
		return Verdict{}, ErrClosed
	}
	// The engine goes as an integer (C memory, untracked by Go's collector) and the
	// addresses by value: no pointer crosses, so nothing is checked or moved to the heap.
	engine := C.uintptr_t(uintptr(unsafe.Pointer(ptr)))
	var r C.egw_lookup
	if v4 {
		r = C.egw_lookup_v4(engine, v4Arg(src), v4Arg(dst))
	} else {
		r = C.egw_lookup_v6(engine, v6Arg(src), v6Arg(dst))
	}
	e.mu.RUnlock()
	runtime.KeepAlive(e)
	if r.result == C.EGRESS_RESULT_INVALID_ARGUMENT {
		if err := queryCheck("", src, dst); err != nil {
			return Verdict{}, err
		}
	}
	if r.result != C.EGRESS_RESULT_OK {
		return Verdict{}, failure(r.result, nil)
	}
	return verdictFrom(&r.verdict, answeredAs4(src)), nil
}

// answeredAs4 says how the library answered a lookup from src: as an IPv4 source (egress
// IP in 4 bytes) when src is IPv4 or IPv4-mapped, the library's reading of values (B.6).
func answeredAs4(src netip.Addr) bool { return src.Unmap().Is4() }

// queryCheck is the library's reason for refusing a lookup of src and dst, its paths under
// prefix (nil when it accepts them), from egress_query_check: lookups return only a code.
func queryCheck(prefix string, src, dst netip.Addr) error {
	s, d := cAddr(src), cAddr(dst)
	var cerr *C.egress_error
	err := failure(C.egress_query_check(&s, &d, nil, nil, &cerr), cerr)
	var ge *Error
	if prefix != "" && errors.As(err, &ge) {
		ge.Message = prefix + "." + ge.Message
		for i := range ge.Fields {
			ge.Fields[i].Path = prefix + "." + ge.Fields[i].Path
		}
	}
	return err
}

// Query is one packet of a batch lookup.
type Query struct {
	Src, Dst netip.Addr
}

// batchChunk is how many queries go to C per call.
const batchChunk = 256

// batchScratch is the memory of one LookupBatch call, reused through a pool: the queries
// of each family and the verdicts in C memory (so that the calls pass no Go pointer and
// allocate nothing), and where each answer goes. A finalizer frees the C memory of a
// scratch the pool drops.
type batchScratch struct {
	mem      unsafe.Pointer
	q4       *[batchChunk]C.egress_query_v4
	q6       *[batchChunk]C.egress_query_v6
	verdicts *[batchChunk]C.egress_verdict
	at4, at6 [batchChunk]int
}

var scratchPool = sync.Pool{New: func() any {
	q4 := unsafe.Sizeof([batchChunk]C.egress_query_v4{})
	q6 := unsafe.Sizeof([batchChunk]C.egress_query_v6{})
	v := unsafe.Sizeof([batchChunk]C.egress_verdict{})
	mem := C.malloc(C.size_t(q4 + q6 + v))
	s := &batchScratch{
		mem:      mem,
		q4:       (*[batchChunk]C.egress_query_v4)(mem),
		q6:       (*[batchChunk]C.egress_query_v6)(unsafe.Add(mem, q4)),
		verdicts: (*[batchChunk]C.egress_verdict)(unsafe.Add(mem, q4+q6)),
	}
	runtime.SetFinalizer(s, func(s *batchScratch) { C.free(s.mem) })
	return s
}}

// LookupBatch answers many packets: out[i] is Lookup(queries[i].Src, queries[i].Dst). It
// crosses into C once per 256 queries instead of once per query, so it costs a fraction of
// a Lookup per query. out must be at least as long as queries; an address Lookup refuses is
// an error naming queries[i], and then nothing is answered. It allocates nothing and may
// run concurrently with other queries.
func (e *Engine) LookupBatch(queries []Query, out []Verdict) error {
	if len(out) < len(queries) {
		return argumentError("out", fmt.Sprintf("Invalid value: %d verdicts for %d queries", len(out), len(queries)))
	}
	for i := range queries {
		q := &queries[i]
		if !q.Src.IsValid() || q.Src.Zone() != "" {
			return checkAddr(fmt.Sprintf("queries[%d].Src", i), q.Src)
		}
		if !q.Dst.IsValid() || q.Dst.Zone() != "" {
			return checkAddr(fmt.Sprintf("queries[%d].Dst", i), q.Dst)
		}
	}
	if e == nil {
		return ErrClosed
	}
	s := scratchPool.Get().(*batchScratch)
	defer scratchPool.Put(s)
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.ptr == nil {
		return ErrClosed
	}
	engine := C.uintptr_t(uintptr(unsafe.Pointer(e.ptr)))
	for start := 0; start < len(queries); start += batchChunk {
		chunk := queries[start:]
		if len(chunk) > batchChunk {
			chunk = chunk[:batchChunk]
		}
		n4, n6 := 0, 0
		for i := range chunk {
			src, dst := chunk[i].Src, chunk[i].Dst
			switch {
			case src.Is4() && dst.Is4():
				c := &s.q4[n4]
				*(*[4]byte)(unsafe.Pointer(&c.src)) = src.As4()
				*(*[4]byte)(unsafe.Pointer(&c.dst)) = dst.As4()
				s.at4[n4] = start + i
				n4++
			default:
				c := &s.q6[n6]
				*(*[16]byte)(unsafe.Pointer(&c.src)) = src.As16()
				*(*[16]byte)(unsafe.Pointer(&c.dst)) = dst.As16()
				s.at6[n6] = start + i
				n6++
			}
		}
		if n4 > 0 {
			code := C.egw_lookup_batch_v4(engine, &s.q4[0], C.size_t(n4), &s.verdicts[0])
			if code != C.EGRESS_RESULT_OK {
				return failure(code, nil)
			}
			for k := 0; k < n4; k++ {
				out[s.at4[k]] = verdictFrom(&s.verdicts[k], true)
			}
		}
		if n6 > 0 {
			code := C.egw_lookup_batch_v6(engine, &s.q6[0], C.size_t(n6), &s.verdicts[0])
			if code == C.EGRESS_RESULT_INVALID_ARGUMENT {
				// The library refused a query of two families: say which, and why.
				for k := 0; k < n6; k++ {
					q := queries[s.at6[k]]
					if err := queryCheck(fmt.Sprintf("queries[%d]", s.at6[k]), q.Src, q.Dst); err != nil {
						return err
					}
				}
			}
			if code != C.EGRESS_RESULT_OK {
				return failure(code, nil)
			}
			for k := 0; k < n6; k++ {
				out[s.at6[k]] = verdictFrom(&s.verdicts[k], answeredAs4(queries[s.at6[k]].Src))
			}
		}
	}
	runtime.KeepAlive(e)
	return nil
}

func v4Arg(ip netip.Addr) C.egw_v4 {
	b := ip.As4()
	return *(*C.egw_v4)(unsafe.Pointer(&b))
}

func v6Arg(ip netip.Addr) C.egw_v6 {
	b := ip.As16()
	return *(*C.egw_v6)(unsafe.Pointer(&b))
}

func verdictFrom(v *C.egress_verdict, v4 bool) Verdict {
	out := Verdict{Kind: VerdictKind(v.kind)}
	switch out.Kind {
	case VerdictForward:
		out.GatewayIP = netip.AddrFrom4(*(*[4]byte)(unsafe.Pointer(&v.gateway_ip)))
	case VerdictMasquerade:
		if v4 {
			out.EgressIP = netip.AddrFrom4(*(*[4]byte)(unsafe.Pointer(&v.egress_ip)))
		} else {
			out.EgressIP = netip.AddrFrom16(*(*[16]byte)(unsafe.Pointer(&v.egress_ip)))
		}
		out.Ifindex = uint32(v.ifindex)
	}
	return out
}

// Entry is one desired map entry, decoded.
type Entry struct {
	// Source is the endpoint IP (the key's exact source).
	Source netip.Addr
	// Destination is the destination prefix as stored (host bits kept).
	Destination netip.Prefix
	// EgressIP is the egress IP, of the source's family (the unspecified address: none).
	EgressIP netip.Addr
	// GatewayIP is the gateway node's IPv4: 0.0.0.0 no gateway (drop), 0.0.0.1 excluded.
	GatewayIP netip.Addr
	// EgressIfindex is the egress interface index (0: route lookup).
	EgressIfindex uint32
}

// Entries are the desired entries of both maps, IPv4 first, each map in `egressctl list`
// order.
func (e *Engine) Entries() ([]Entry, error) {
	var out []Entry
	err := e.read(func(ptr *C.egress_engine) error {
		var err error
		out, err = readEntries(func(buf *C.egress_entry, n C.size_t, count *C.size_t, cerr **C.egress_error) C.egress_result {
			return C.egress_engine_entries(ptr, buf, n, count, cerr)
		})
		return err
	})
	return out, err
}

// entriesCall is one of the exports that fill (buf, buf_len, count_out) with entries.
type entriesCall func(buf *C.egress_entry, n C.size_t, count *C.size_t, cerr **C.egress_error) C.egress_result

// readEntries asks call for the count, then for the entries (again while the count grows:
// live maps may change between two calls).
func readEntries(call entriesCall) ([]Entry, error) {
	var buf []C.egress_entry
	for {
		var count C.size_t
		var cerr *C.egress_error
		var p *C.egress_entry
		if len(buf) > 0 {
			p = &buf[0]
		}
		code := call(p, C.size_t(len(buf)), &count, &cerr)
		if code == C.EGRESS_RESULT_INSUFFICIENT_SIZE {
			C.egress_error_free(cerr)
			buf = make([]C.egress_entry, count)
			continue
		}
		if err := failure(code, cerr); err != nil {
			return nil, err
		}
		out := make([]Entry, count)
		for i := range out {
			out[i] = entryFrom(&buf[i])
		}
		return out, nil
	}
}

func entryFrom(c *C.egress_entry) Entry {
	return Entry{
		Source:        goAddr(&c.source),
		Destination:   netip.PrefixFrom(goAddr(&c.destination), int(c.destination_len)),
		EgressIP:      goAddr(&c.egress_ip),
		GatewayIP:     netip.AddrFrom4(*(*[4]byte)(unsafe.Pointer(&c.gateway_ip))),
		EgressIfindex: uint32(c.egress_ifindex),
	}
}

func goAddr(a *C.egress_ip_addr) netip.Addr {
	if a.family == C.EGRESS_FAMILY_IPV4 {
		return netip.AddrFrom4(*(*[4]byte)(unsafe.Pointer(&a.bytes)))
	}
	return netip.AddrFrom16(*(*[16]byte)(unsafe.Pointer(&a.bytes)))
}

// jsonCall is one of the exports that write a document into (buf, buf_len, written_out).
type jsonCall func(ptr *C.egress_engine, buf *C.uint8_t, n C.size_t, written *C.size_t, cerr **C.egress_error) C.egress_result

// document asks call for its size, then for the document.
func (e *Engine) document(call jsonCall) ([]byte, error) {
	var out []byte
	err := e.read(func(ptr *C.egress_engine) error {
		var size C.size_t
		var cerr *C.egress_error
		code := call(ptr, nil, 0, &size, &cerr)
		if code != C.EGRESS_RESULT_INSUFFICIENT_SIZE {
			if err := failure(code, cerr); err != nil {
				return err
			}
			out = []byte{}
			return nil
		}
		C.egress_error_free(cerr)
		buf := make([]byte, size)
		cerr = nil
		if err := failure(call(ptr, (*C.uint8_t)(unsafe.Pointer(&buf[0])), size, &size, &cerr), cerr); err != nil {
			return err
		}
		out = buf[:size]
		return nil
	})
	return out, err
}

// MapsJSON is the node's maps as JSON: byte for byte what `egressctl list -o json` prints
// for the same snapshot, node and selection.
func (e *Engine) MapsJSON() ([]byte, error) {
	return e.document(func(ptr *C.egress_engine, buf *C.uint8_t, n C.size_t, written *C.size_t, cerr **C.egress_error) C.egress_result {
		return C.egress_engine_maps_json(ptr, buf, n, written, cerr)
	})
}

// Explain says why a packet from src to dst (addresses as Lookup takes them) gets its
// verdict: byte for byte the JSON document `egressctl explain -o json` prints (the entry,
// the policy and selector that produced it, the gateway entry and node and why it was
// chosen, conflicts lost).
func (e *Engine) Explain(src, dst netip.Addr) ([]byte, error) {
	if err := checkAddr("src", src); err != nil {
		return nil, err
	}
	if err := checkAddr("dst", dst); err != nil {
		return nil, err
	}
	s, d := cAddr(src), cAddr(dst) // the library reads them as Lookup's
	return e.document(func(ptr *C.egress_engine, buf *C.uint8_t, n C.size_t, written *C.size_t, cerr **C.egress_error) C.egress_result {
		return C.egress_engine_explain_json(ptr, &s, &d, buf, n, written, cerr)
	})
}

// ConflictsJSON lists the keys several producers want with different bytes, and who wins
// (SEMANTICS B.1): [{"winner": producer, "overridden": [producer, ...]}].
func (e *Engine) ConflictsJSON() ([]byte, error) {
	return e.document(func(ptr *C.egress_engine, buf *C.uint8_t, n C.size_t, written *C.size_t, cerr **C.egress_error) C.egress_result {
		return C.egress_engine_conflicts_json(ptr, buf, n, written, cerr)
	})
}

// DiagnosticsJSON is what the engine's loads reported (SEMANTICS B.7), the facts
// `egressctl list` prints on stderr: {"invalidPolicies": [{"policy", "errors": [{"path",
// "reason"}]}], "warnings": [...], "skipped": [...], "conflicts": [...]}.
func (e *Engine) DiagnosticsJSON() ([]byte, error) {
	return e.document(func(ptr *C.egress_engine, buf *C.uint8_t, n C.size_t, written *C.size_t, cerr **C.egress_error) C.egress_result {
		return C.egress_engine_diagnostics_json(ptr, buf, n, written, cerr)
	})
}

// GatewayNode is a node the policies may choose as gateway, with the readiness and weight
// the engine uses.
type GatewayNode struct {
	Name   string      `json:"name"`
	IPv4   *netip.Addr `json:"ipv4"`
	IPv6   *netip.Addr `json:"ipv6"`
	Ready  bool        `json:"ready"`
	Weight int         `json:"weight"`
}

// GatewayNodes are the nodes the valid policies may choose as gateways, whatever their
// health (SEMANTICS B.3): what an agent's health probes watch, by name.
func (e *Engine) GatewayNodes() ([]GatewayNode, error) {
	doc, err := e.document(func(ptr *C.egress_engine, buf *C.uint8_t, n C.size_t, written *C.size_t, cerr **C.egress_error) C.egress_result {
		return C.egress_engine_gateway_nodes_json(ptr, buf, n, written, cerr)
	})
	if err != nil {
		return nil, err
	}
	var nodes []GatewayNode
	if err := json.Unmarshal(doc, &nodes); err != nil {
		return nil, fmt.Errorf("egressgw: gateway nodes: %w", err)
	}
	return nodes, nil
}

// InvalidPolicy is a policy left out of the maps, with every error.
type InvalidPolicy struct {
	Policy string       `json:"policy"` // its name, or #index when it has none
	Errors []FieldError `json:"errors"`
}

// Diagnostics is DiagnosticsJSON decoded.
type Diagnostics struct {
	InvalidPolicies []InvalidPolicy   `json:"invalidPolicies"`
	Warnings        []string          `json:"warnings"`
	Skipped         []string          `json:"skipped"`
	Conflicts       []json.RawMessage `json:"conflicts"` // as ConflictsJSON's items
}

// Diagnostics is what the engine's loads reported, decoded.
func (e *Engine) Diagnostics() (Diagnostics, error) {
	var d Diagnostics
	doc, err := e.DiagnosticsJSON()
	if err != nil {
		return d, err
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return d, fmt.Errorf("egressgw: diagnostics: %w", err)
	}
	return d, nil
}

// Stats are an engine's counts and sizes.
type Stats struct {
	DesiredV4      int // desired entries of the IPv4 map
	DesiredV6      int // desired entries of the IPv6 map
	ProgrammedV4   int // acknowledged or adopted entries of the IPv4 map
	ProgrammedV6   int // acknowledged or adopted entries of the IPv6 map
	MaxEntries     int // capacity of the IPv4 map
	MaxEntriesV6   int // capacity of the IPv6 map (the IPv4 map's unless opened with their own)
	PendingSources int // sources whose programmed entries differ from the desired ones
	Policies       int // valid policies
	Endpoints      int
	Nodes          int
	MemoryBytes    int // heap held by the engine's state, estimated
}

// Stats returns the engine's counts and sizes.
func (e *Engine) Stats() (Stats, error) {
	var s C.egress_stats
	err := e.read(func(ptr *C.egress_engine) error {
		return failure(C.egress_engine_stats(ptr, &s), nil)
	})
	return Stats{
		DesiredV4:      int(s.desired_v4),
		DesiredV6:      int(s.desired_v6),
		ProgrammedV4:   int(s.programmed_v4),
		ProgrammedV6:   int(s.programmed_v6),
		MaxEntries:     int(s.max_entries),
		PendingSources: int(s.pending_sources),
		Policies:       int(s.policies),
		Endpoints:      int(s.endpoints),
		Nodes:          int(s.nodes),
		MemoryBytes:    int(s.memory_bytes),
		MaxEntriesV6:   int(s.max_entries_v6),
	}, err
}

// crossing calls a C function that does nothing: what one cgo call costs before any work
// (BenchmarkCgoCrossing).
func crossing(x uintptr) uint32 { return uint32(C.egw_nothing(C.uintptr_t(x))) }

// Version is the linked library's version, "MAJOR.MINOR.PATCH" (the package checks at
// startup that it is the version of its own header).
func Version() string { return C.GoString(C.egress_version()) }
