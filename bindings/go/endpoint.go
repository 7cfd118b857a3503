package egressgw

/*
#include <stdlib.h>
#include "egress_gateway.h"
*/
import "C"

import (
	"fmt"
	"net/netip"
	"sort"
	"unsafe"
)

// Endpoint is a pod's endpoint as a CNI ADD knows it (the typed egress_endpoint of the C
// ABI): no JSON on the hot path.
type Endpoint struct {
	// UID is the unique id (required): the pod's UID or the CiliumEndpoint's metadata.uid.
	UID string
	// Namespace is the pod's namespace ("" : none, and no namespace labels are derived).
	Namespace string
	// Labels are the pod's labels.
	Labels map[string]string
	// NamespaceLabels are the namespace's labels, as this endpoint carries them.
	NamespaceLabels map[string]string
	// ServiceAccount is the pod's service account ("" : default).
	ServiceAccount string
	// IPs are the endpoint's addresses. An IPv4-mapped IPv6 address (::ffff:a.b.c.d, what
	// netip.AddrFromSlice makes of a 16-byte net.IP) is taken as its IPv4 address.
	IPs []netip.Addr
	// Node is the hosting node's name ("" : unknown).
	Node string
}

// UpsertEndpoint upserts ep: the CNI ADD path. Its map operations are in the next plan at
// once. Errors name the field (endpoint.uid, endpoint.ips[0], endpoint.labels[2].key, ...);
// nothing changes then.
func (e *Engine) UpsertEndpoint(ep Endpoint) error {
	for i, ip := range ep.IPs {
		if err := checkAddr(fmt.Sprintf("endpoint.ips[%d]", i), ip); err != nil {
			return err
		}
	}
	return e.write(func(ptr *C.egress_engine) error {
		// Everything the struct points at, and the struct itself, in one C allocation: cgo
		// forbids handing C Go memory that holds Go pointers.
		size := unsafe.Sizeof(C.egress_endpoint{}) +
			labelsSize(ep.Labels) + labelsSize(ep.NamespaceLabels) +
			uintptr(len(ep.IPs))*unsafe.Sizeof(C.egress_ip_addr{}) +
			uintptr(len(ep.UID)+len(ep.Namespace)+len(ep.ServiceAccount)+len(ep.Node))
		var a arena
		a.init(size)
		defer a.free()
		cep := (*C.egress_endpoint)(a.alloc(unsafe.Sizeof(C.egress_endpoint{})))
		*cep = C.egress_endpoint{} // malloc'd memory: every field absent until set
		cep.uid, cep.uid_len = a.text(ep.UID)
		cep.namespace_name, cep.namespace_name_len = a.text(ep.Namespace)
		cep.labels, cep.labels_len = a.labels(ep.Labels)
		cep.namespace_labels, cep.namespace_labels_len = a.labels(ep.NamespaceLabels)
		cep.service_account, cep.service_account_len = a.text(ep.ServiceAccount)
		cep.node, cep.node_len = a.text(ep.Node)
		if len(ep.IPs) > 0 {
			ips := unsafe.Slice((*C.egress_ip_addr)(a.alloc(uintptr(len(ep.IPs))*unsafe.Sizeof(C.egress_ip_addr{}))), len(ep.IPs))
			for i, ip := range ep.IPs {
				ips[i] = cAddr(ip)
			}
			cep.ips, cep.ips_len = &ips[0], C.size_t(len(ips))
		}
		var cerr *C.egress_error
		return failure(C.egress_engine_upsert_endpoint(ptr, cep, &cerr), cerr)
	})
}

// UpsertNamespace sets the labels of namespace name on every endpoint currently in it (as
// re-upserting each would).
func (e *Engine) UpsertNamespace(name string, labels map[string]string) error {
	return e.write(func(ptr *C.egress_engine) error {
		var a arena
		a.init(labelsSize(labels) + uintptr(len(name)))
		defer a.free()
		n, nLen := a.text(name)
		l, lLen := a.labels(labels)
		var cerr *C.egress_error
		return failure(C.egress_engine_upsert_namespace(ptr, n, nLen, l, lLen, &cerr), cerr)
	})
}

// checkAddr refuses the zero netip.Addr and addresses with a zone, naming path.
func checkAddr(path string, ip netip.Addr) error {
	switch {
	case !ip.IsValid():
		return argumentError(path, "Invalid value: the zero netip.Addr is not an address")
	case ip.Zone() != "":
		return argumentError(path, fmt.Sprintf("Invalid value: %q: an address with a zone", ip.String()))
	}
	return nil
}

// cAddr is ip as an egress_ip_addr, as given: the library reads an IPv4-mapped address
// as IPv4 (SEMANTICS B.6).
func cAddr(ip netip.Addr) C.egress_ip_addr {
	var out C.egress_ip_addr
	if ip.Is4() {
		out.family = C.EGRESS_FAMILY_IPV4
		b := ip.As4()
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&out.bytes[0])), 4), b[:])
	} else {
		out.family = C.EGRESS_FAMILY_IPV6
		b := ip.As16()
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&out.bytes[0])), 16), b[:])
	}
	return out
}

// labelsSize is what arena.labels takes for labels.
func labelsSize(labels map[string]string) uintptr {
	size := uintptr(len(labels)) * unsafe.Sizeof(C.egress_label{})
	for k, v := range labels {
		size += uintptr(len(k) + len(v))
	}
	return size
}

// arena is one C allocation handed out front to back: the structs first (each aligned),
// then text. Sized exactly by the caller; alloc past the end panics (a bug here).
type arena struct {
	base       unsafe.Pointer
	off, limit uintptr
}

// structAlign is enough for every struct of the header (pointers, size_t, uint32_t).
const structAlign = unsafe.Alignof(C.size_t(0))

func (a *arena) init(size uintptr) {
	// Room for the alignment padding of up to 4 struct blocks.
	a.limit = size + 4*structAlign
	a.base = C.malloc(C.size_t(a.limit)) // cgo's malloc aborts rather than return NULL
}

func (a *arena) free() { C.free(a.base) }

func (a *arena) alloc(n uintptr) unsafe.Pointer {
	return a.take(n, structAlign)
}

func (a *arena) take(n, align uintptr) unsafe.Pointer {
	a.off = (a.off + align - 1) &^ (align - 1)
	if a.off+n > a.limit {
		panic("egressgw: arena overflow")
	}
	p := unsafe.Add(a.base, a.off)
	a.off += n
	return p
}

// text copies s into the arena (nil for "").
func (a *arena) text(s string) (*C.uint8_t, C.size_t) {
	if s == "" {
		return nil, 0
	}
	p := a.take(uintptr(len(s)), 1)
	copy(unsafe.Slice((*byte)(p), len(s)), s)
	return (*C.uint8_t)(p), C.size_t(len(s))
}

// labels copies labels into the arena as an egress_label array sorted by key (nil when
// empty), so that an error's labels[i] names the same label every time.
func (a *arena) labels(labels map[string]string) (*C.egress_label, C.size_t) {
	if len(labels) == 0 {
		return nil, 0
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := unsafe.Slice((*C.egress_label)(a.alloc(uintptr(len(labels))*unsafe.Sizeof(C.egress_label{}))), len(labels))
	for i, k := range keys {
		out[i].key, out[i].key_len = a.text(k)
		out[i].value, out[i].value_len = a.text(labels[k])
	}
	return &out[0], C.size_t(len(out))
}
