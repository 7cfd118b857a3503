package egressgw

/*
#include <stdlib.h>
#include "egress_gateway.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"sync"
	"unsafe"
)

// Selection is how a gateway node is chosen among those a policy's entry matches.
type Selection uint32

const (
	// SelectionCilium is Cilium's: the first node by name per entry, FNV-1a-32(uid) mod n.
	SelectionCilium Selection = 0
	// SelectionConsistent is weighted rendezvous hashing over the eligible (node, entry)
	// pairs: a gateway joining or leaving moves only the endpoints it must.
	SelectionConsistent Selection = 1
)

func (s Selection) String() string {
	switch s {
	case SelectionCilium:
		return "cilium"
	case SelectionConsistent:
		return "consistent"
	}
	return fmt.Sprintf("Selection(%d)", uint32(s))
}

// Layout is the maps plans are made for: Cilium's IPv4 maps of a version, or ours
// (LayoutCompact).
type Layout uint32

const (
	// LayoutVersion is the Cilium version's own maps: 1.18 and 1.19 LayoutLegacy, 1.20
	// LayoutDual. An engine's only: OpenMaps and CreateMaps need the maps named.
	LayoutVersion Layout = C.EGRESS_LAYOUT_VERSION
	// LayoutV4V2 is cilium_egress_gw_policy_v4_v2 alone (28-byte value with the egress
	// ifindex).
	LayoutV4V2 Layout = C.EGRESS_LAYOUT_V4V2
	// LayoutLegacy is cilium_egress_gw_policy_v4 (the legacy 8-byte value): Cilium 1.18
	// and 1.19.
	LayoutLegacy Layout = C.EGRESS_LAYOUT_LEGACY
	// LayoutDual is both, legacy first, as Cilium 1.20 writes them.
	LayoutDual Layout = C.EGRESS_LAYOUT_DUAL
	// LayoutCompact is ours, not Cilium's: per family an endpoint hash (blocks of 8
	// addresses -> their set ids) and a rule trie ((set id, destination) -> value).
	// Endpoints selected alike share a set, so a new endpoint is one map write.
	LayoutCompact Layout = C.EGRESS_LAYOUT_COMPACT
)

func (l Layout) String() string {
	switch l {
	case LayoutVersion:
		return "version"
	case LayoutV4V2:
		return "v4v2"
	case LayoutLegacy:
		return "legacy"
	case LayoutDual:
		return "dual"
	case LayoutCompact:
		return "compact"
	}
	return fmt.Sprintf("Layout(%d)", uint32(l))
}

// CiliumVersion is the Cilium version whose behaviour the engine reproduces: its policy
// schema, gateway and egress IP rules, and the maps it writes.
type CiliumVersion uint32

const (
	// CiliumV1_18 is Cilium 1.18 (v1.18.3, the seed's): the default.
	CiliumV1_18 CiliumVersion = C.EGRESS_CILIUM_1_18
	// CiliumV1_19 is Cilium 1.19.
	CiliumV1_19 CiliumVersion = C.EGRESS_CILIUM_1_19
	// CiliumV1_20 is Cilium 1.20.
	CiliumV1_20 CiliumVersion = C.EGRESS_CILIUM_1_20
)

func (v CiliumVersion) String() string {
	switch v {
	case CiliumV1_18:
		return "1.18"
	case CiliumV1_19:
		return "1.19"
	case CiliumV1_20:
		return "1.20"
	}
	return fmt.Sprintf("CiliumVersion(%d)", uint32(v))
}

// Layout is the IPv4 maps Cilium v writes (CILIUM-VERSIONS.md §5), as the library says:
// LayoutLegacy for 1.18 and 1.19, LayoutDual for 1.20 — what OpenMaps and CreateMaps need
// named for an engine of LayoutVersion. An unknown version is ErrInvalidEnum.
func (v CiliumVersion) Layout() (Layout, error) {
	var layout C.uint32_t
	var cerr *C.egress_error
	code := C.egress_cilium_version_layout(C.uint32_t(v), &layout, &cerr)
	if err := failure(code, cerr); err != nil {
		return 0, err
	}
	return Layout(layout), nil
}

// Config says how to build an engine. The zero value of every field but LocalNode is the
// default: Cilium's selection on Cilium 1.18 with its maps (the legacy IPv4 map), 16384
// entries per map, the snapshot's cluster name (else "default").
type Config struct {
	// LocalNode is the node whose maps are computed. Required by NewEngine; for
	// FromSnapshot, "" means the snapshot's localNode.
	LocalNode string
	// Selection is the gateway selection mode.
	Selection Selection
	// CiliumVersion is the Cilium version reproduced (CiliumV1_18, the zero value, is the
	// default).
	CiliumVersion CiliumVersion
	// Layout overrides the IPv4 maps plans are made for (LayoutVersion, the zero value: the
	// Cilium version's own).
	Layout Layout
	// MaxEntries is each map's capacity; plans that would exceed it are refused. The zero
	// value is unset: 16384, Cilium's default (a capacity of 0 does not exist).
	MaxEntries uint32
	// Cluster is the name for io.cilium.k8s.policy.cluster ("" : the snapshot's, else
	// "default").
	Cluster string
}

// Engine is one node's egress gateway state — policies, nodes, endpoints, the local node's
// devices — its desired maps and what it knows is programmed.
//
// Concurrency mirrors the C ABI's rules, enforced by a read-write mutex: the queries
// (Lookup, MapsJSON, Entries, Explain, ConflictsJSON, Stats) may run concurrently with each
// other from any goroutines; the events (Upsert*, Delete*, SetDevices), TakePlan, Ack,
// Adopt and Close wait for every other call on the engine to finish and run alone.
//
// Close frees the engine's memory; a finalizer frees it too if an Engine is dropped
// without Close, but only as a backstop: call Close. After ErrPanic (a bug in the library)
// the engine's state is unreliable: Close it and build another.
type Engine struct {
	mu  sync.RWMutex
	ptr *C.egress_engine // nil once closed

	// The buffer plans are read into (under mu held for writing).
	opsBuf []C.egress_plan_op
}

// NewEngine makes an empty engine for cfg.LocalNode.
func NewEngine(cfg Config) (*Engine, error) {
	return newEngine(cfg, func(config *C.egress_engine_config, out **C.egress_engine, cerr **C.egress_error) C.egress_result {
		return C.egress_engine_new(config, out, cerr)
	})
}

// FromSnapshot loads snapshot text as `egressctl list -f` does — a snapshot (YAML or JSON)
// or a Kubernetes dump — and computes the maps of cfg.LocalNode ("" : the snapshot's
// localNode). Invalid policies are left out, as `egressctl list` does without --strict;
// loading fails only for unreadable input (ErrParse, ErrInput) or a node that is not in
// it (ErrInvalidArgument, path "config.local_node").
func FromSnapshot(data []byte, cfg Config) (*Engine, error) {
	text, textLen := bytesArg(data)
	return newEngine(cfg, func(config *C.egress_engine_config, out **C.egress_engine, cerr **C.egress_error) C.egress_result {
		return C.egress_engine_from_snapshot_config(text, textLen, config, out, cerr)
	})
}

type makeFunc func(*C.egress_engine_config, **C.egress_engine, **C.egress_error) C.egress_result

func newEngine(cfg Config, construct makeFunc) (*Engine, error) {
	// The config holds pointers, so its strings live in C memory (cgo forbids handing C Go
	// memory that holds Go pointers).
	node, nodeLen := cBytes(cfg.LocalNode)
	defer C.free(unsafe.Pointer(node))
	cluster, clusterLen := cBytes(cfg.Cluster)
	defer C.free(unsafe.Pointer(cluster))
	config := C.egress_engine_config{
		local_node:     node,
		local_node_len: nodeLen,
		selection:      C.uint32_t(cfg.Selection),
		layout:         C.uint32_t(cfg.Layout),
		max_entries:    C.uint32_t(cfg.MaxEntries),
		cluster:        cluster,
		cluster_len:    clusterLen,
		cilium_version: C.uint32_t(cfg.CiliumVersion),
	}
	var ptr *C.egress_engine
	var cerr *C.egress_error
	if err := failure(construct(&config, &ptr, &cerr), cerr); err != nil {
		return nil, err
	}
	e := &Engine{ptr: ptr}
	runtime.SetFinalizer(e, (*Engine).finalize)
	return e, nil
}

// Close frees the engine. It waits for calls in progress; later calls return ErrClosed.
// Closing twice is not an error.
func (e *Engine) Close() error {
	if e == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ptr != nil {
		C.egress_engine_free(e.ptr)
		e.ptr = nil
		runtime.SetFinalizer(e, nil)
	}
	return nil
}

// finalize frees an engine nobody closed (nobody else can hold it then).
func (e *Engine) finalize() {
	if e.ptr != nil {
		C.egress_engine_free(e.ptr)
		e.ptr = nil
	}
}

// write runs f with exclusive access to the live engine.
func (e *Engine) write(f func(*C.egress_engine) error) error {
	if e == nil {
		return ErrClosed
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ptr == nil {
		return ErrClosed
	}
	err := f(e.ptr)
	runtime.KeepAlive(e)
	return err
}

// read runs f with shared access to the live engine.
func (e *Engine) read(f func(*C.egress_engine) error) error {
	if e == nil {
		return ErrClosed
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.ptr == nil {
		return ErrClosed
	}
	err := f(e.ptr)
	runtime.KeepAlive(e)
	return err
}

// textEvent runs one of the exports that take (engine, text, error_out).
func (e *Engine) textEvent(text []byte, call func(*C.egress_engine, *C.uint8_t, C.size_t, **C.egress_error) C.egress_result) error {
	return e.write(func(ptr *C.egress_engine) error {
		p, n := bytesArg(text)
		var cerr *C.egress_error
		return failure(call(ptr, p, n, &cerr), cerr)
	})
}

// deleteByName runs one of the exports that take (engine, name, found_out, error_out).
func (e *Engine) deleteByName(name string, call func(*C.egress_engine, *C.uint8_t, C.size_t, *C.bool, **C.egress_error) C.egress_result) (bool, error) {
	var found C.bool
	err := e.write(func(ptr *C.egress_engine) error {
		b := []byte(name)
		p, n := bytesArg(b)
		var cerr *C.egress_error
		return failure(call(ptr, p, n, &found, &cerr), cerr)
	})
	return bool(found), err
}

// NodeHealth is what the embedding agent's health probes or an operator say of a node
// (SEMANTICS B.3), over what its objects say: a nil field keeps the objects' value.
type NodeHealth struct {
	// Ready: consistent mode leaves an unready node out of the candidates.
	Ready *bool
	// Weight 0-100: 0 drains the node (consistent mode).
	Weight *int
}

// SetNodeHealth sets h for the node named name, kept across the node's object events (a
// Kubernetes Node carries neither field) until set again; a node not known yet takes it when
// it arrives. Compat mode ignores it, as Cilium does. Whether the node is known. A weight
// outside 0-100 is refused naming "weight" (ErrInvalidArgument below 0, ErrInput above 100),
// nothing changed.
func (e *Engine) SetNodeHealth(name string, h NodeHealth) (bool, error) {
	ready, weight := C.int32_t(-1), C.int32_t(-1)
	if h.Ready != nil {
		ready = 0
		if *h.Ready {
			ready = 1
		}
	}
	if h.Weight != nil {
		switch w := *h.Weight; {
		case w < 0:
			return false, argumentError("weight", fmt.Sprintf("%d: want 0 to 100", w))
		case w > 1<<30:
			weight = 1 << 30 // refused by the library, naming the field
		default:
			weight = C.int32_t(w)
		}
	}
	var found C.bool
	err := e.write(func(ptr *C.egress_engine) error {
		p, n := bytesArg([]byte(name))
		var cerr *C.egress_error
		return failure(C.egress_engine_set_node_health(ptr, p, n, ready, weight, &found, &cerr), cerr)
	})
	return bool(found), err
}

// UpsertPolicy upserts the policies of text (YAML or JSON: one CiliumEgressGatewayPolicy,
// a List, or a --- stream). All or nothing: when any policy is invalid, none is applied and
// the error is a *PolicyError with every field error of the first invalid one; the previous
// versions stay in force.
func (e *Engine) UpsertPolicy(text []byte) error {
	return e.textEvent(text, func(ptr *C.egress_engine, p *C.uint8_t, n C.size_t, cerr **C.egress_error) C.egress_result {
		return C.egress_engine_upsert_policy(ptr, p, n, cerr)
	})
}

// UpsertPolicyJSON is UpsertPolicy, under the name ARCHITECTURE.md gives it (JSON is YAML).
func (e *Engine) UpsertPolicyJSON(text []byte) error { return e.UpsertPolicy(text) }

// DeletePolicy deletes the policy named name and says whether it existed.
func (e *Engine) DeletePolicy(name string) (bool, error) {
	return e.deleteByName(name, func(ptr *C.egress_engine, p *C.uint8_t, n C.size_t, found *C.bool, cerr **C.egress_error) C.egress_result {
		return C.egress_engine_delete_policy(ptr, p, n, found, cerr)
	})
}

// UpsertNode upserts a node: JSON or YAML in the snapshot's nodes[] shape, or a CiliumNode or
// core Node object. Input errors (ErrInput) name each field; nothing changes then.
func (e *Engine) UpsertNode(text []byte) error {
	return e.textEvent(text, func(ptr *C.egress_engine, p *C.uint8_t, n C.size_t, cerr **C.egress_error) C.egress_result {
		return C.egress_engine_upsert_node(ptr, p, n, cerr)
	})
}

// DeleteNode deletes the node named name and says whether it existed.
func (e *Engine) DeleteNode(name string) (bool, error) {
	return e.deleteByName(name, func(ptr *C.egress_engine, p *C.uint8_t, n C.size_t, found *C.bool, cerr **C.egress_error) C.egress_result {
		return C.egress_engine_delete_node(ptr, p, n, found, cerr)
	})
}

// Applied says what Apply applied: counts of the objects taken, and of those that were not.
type Applied struct {
	Policies   int // valid policies upserted
	Nodes      int // nodes upserted (CiliumNodes and core Nodes)
	Endpoints  int // pods whose endpoint was upserted (CiliumEndpoints, slice entries, Pods)
	Namespaces int // namespaces whose labels were set
	// InvalidPolicies are left out, each keeping its previous version; Diagnostics() has
	// every field error of each (InvalidPolicies).
	InvalidPolicies int
	// Skipped counts the objects skipped and conversion notes: Diagnostics().Skipped says
	// which.
	Skipped int
}

// Apply applies Kubernetes objects as updates — CiliumEgressGatewayPolicy, CiliumNode,
// CiliumEndpoint, Namespace, core Pod and Node, CiliumEndpointSlice and CiliumIdentity
// (SEMANTICS B.10: a CiliumEndpoint beats a slice entry of its pod, which beats its Pod,
// across events whatever their order; an identity updates every slice endpoint naming it):
// one, a List, or a --- stream of JSON or YAML — as egressctl
// reads a dump and Python's Engine.apply does: nodes and namespaces first, then policies,
// then endpoints (a CiliumEndpoint finds its node by address among the nodes known then:
// apply CiliumNodes first or together). Invalid policies are not an error: they keep their
// previous version, are counted, and their errors are in Diagnostics(). Any other input
// error (ErrParse, ErrInput, paths objects[i]...) applies nothing.
func (e *Engine) Apply(text []byte) (Applied, error) {
	var applied C.egress_applied
	err := e.textEvent(text, func(ptr *C.egress_engine, p *C.uint8_t, n C.size_t, cerr **C.egress_error) C.egress_result {
		return C.egress_engine_apply(ptr, p, n, &applied, cerr)
	})
	if err != nil {
		return Applied{}, err
	}
	return Applied{
		Policies:        int(applied.policies),
		Nodes:           int(applied.nodes),
		Endpoints:       int(applied.endpoints),
		Namespaces:      int(applied.namespaces),
		InvalidPolicies: int(applied.invalid_policies),
		Skipped:         int(applied.skipped),
	}, nil
}

// UpsertEndpointJSON upserts an endpoint from JSON or YAML in the snapshot's endpoints[]
// shape. Input errors name each field; nothing changes then.
func (e *Engine) UpsertEndpointJSON(text []byte) error {
	return e.textEvent(text, func(ptr *C.egress_engine, p *C.uint8_t, n C.size_t, cerr **C.egress_error) C.egress_result {
		return C.egress_engine_upsert_endpoint_json(ptr, p, n, cerr)
	})
}

// DeleteEndpoint deletes the endpoint with uid and says whether it existed.
func (e *Engine) DeleteEndpoint(uid string) (bool, error) {
	return e.deleteByName(uid, func(ptr *C.egress_engine, p *C.uint8_t, n C.size_t, found *C.bool, cerr **C.egress_error) C.egress_result {
		return C.egress_engine_delete_endpoint(ptr, p, n, found, cerr)
	})
}

// UpsertNamespaceJSON sets a namespace's labels on every endpoint in it, from a Kubernetes
// Namespace object or {"name": ..., "labels": {...}} (JSON or YAML).
func (e *Engine) UpsertNamespaceJSON(text []byte) error {
	return e.textEvent(text, func(ptr *C.egress_engine, p *C.uint8_t, n C.size_t, cerr **C.egress_error) C.egress_result {
		return C.egress_engine_upsert_namespace_json(ptr, p, n, cerr)
	})
}

// SetDevices sets the local node's devices: JSON or YAML in the snapshot's interfaces shape
// (a list of {name, index, altNames, addresses, defaultRoute}).
func (e *Engine) SetDevices(text []byte) error {
	return e.textEvent(text, func(ptr *C.egress_engine, p *C.uint8_t, n C.size_t, cerr **C.egress_error) C.egress_result {
		return C.egress_engine_set_devices(ptr, p, n, cerr)
	})
}

// bytesArg is b as a (pointer, length) argument: Go memory without Go pointers, which cgo
// lets C read during the call. nil for an empty slice.
func bytesArg(b []byte) (*C.uint8_t, C.size_t) {
	if len(b) == 0 {
		return nil, 0
	}
	return (*C.uint8_t)(unsafe.Pointer(&b[0])), C.size_t(len(b))
}

// cBytes copies s into C memory (nil for ""): free it with C.free.
func cBytes(s string) (*C.uint8_t, C.size_t) {
	if s == "" {
		return nil, 0
	}
	return (*C.uint8_t)(C.CBytes([]byte(s))), C.size_t(len(s))
}
