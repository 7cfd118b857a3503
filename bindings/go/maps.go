//go:build egressgw_bpf

package egressgw

/*
#include <stdlib.h>
#include "egress_gateway.h"
*/
import "C"

import (
	"runtime"
	"sync"
)

// Maps is Cilium's pinned egress gateway maps in one bpffs directory (the layout's IPv4 map
// and the IPv6 map), for an agent that programs the kernel through this package. Built with
// the tag egressgw_bpf, against the library built with `--features bpf` (libelf and zlib
// are linked too). Needs the privileges of BPF map syscalls (CAP_BPF or root).
//
// Program and Dump may run concurrently with each other and with the queries of the engine
// they read; Program needs the engine to itself (it waits, as an event does). Close waits
// for calls in progress.
type Maps struct {
	mu  sync.RWMutex
	ptr *C.egress_maps
}

// OpenMaps opens the maps pinned in dir (e.g. /sys/fs/bpf/tc/globals), checking their type,
// key and value sizes against layout. Nothing is created or mounted. Maps that are not what
// the layout needs, or a dir not on a bpffs, are ErrInvalidArgument; a refused syscall is
// ErrKernel with its errno (errors.Is(err, fs.ErrNotExist) for a missing map).
func OpenMaps(dir string, layout Layout) (*Maps, error) {
	return openMaps(dir, layout, 0, 0)
}

// CreateMaps is OpenMaps that first creates the maps missing from dir, with maxEntries
// entries each (0: 16384). An existing map keeps its own size.
func CreateMaps(dir string, layout Layout, maxEntries uint32) (*Maps, error) {
	return openMaps(dir, layout, maxEntries, C.EGRESS_MAPS_FLAG_CREATE)
}

func openMaps(dir string, layout Layout, maxEntries uint32, flags C.uint32_t) (*Maps, error) {
	d := []byte(dir)
	p, n := bytesArg(d)
	var ptr *C.egress_maps
	var cerr *C.egress_error
	code := C.egress_maps_open(p, n, C.uint32_t(layout), C.uint32_t(maxEntries), flags, &ptr, &cerr)
	if err := failure(code, cerr); err != nil {
		return nil, err
	}
	m := &Maps{ptr: ptr}
	runtime.SetFinalizer(m, (*Maps).finalize)
	return m, nil
}

// Close closes the maps (they stay pinned). Closing twice is not an error.
func (m *Maps) Close() error {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ptr != nil {
		C.egress_maps_free(m.ptr)
		m.ptr = nil
		runtime.SetFinalizer(m, nil)
	}
	return nil
}

func (m *Maps) finalize() {
	if m.ptr != nil {
		C.egress_maps_free(m.ptr)
		m.ptr = nil
	}
}

// use runs f with the live maps (shared).
func (m *Maps) use(f func(*C.egress_maps) error) error {
	if m == nil {
		return ErrClosed
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.ptr == nil {
		return ErrClosed
	}
	err := f(m.ptr)
	runtime.KeepAlive(m)
	return err
}

// Program takes e's plan, writes it to the maps in order (batched) and acknowledges
// what was written: the maps then hold e's desired entries. applied is the number of
// operations written — on a kernel failure too, where the written prefix is acknowledged
// and the rest comes back in the next plan (ErrKernel, with the errno). Refused before
// anything is written: an engine of another layout (ErrInvalidArgument), a desired state
// that does not fit a map (ErrCapacity), operations the machine cannot allocate
// (ErrOutOfMemory). One writer per pin directory (an advisory lock on it that every writer of
// this library takes, in any process): another writer holding it for longer than 10 s is
// ErrKernel with errno EWOULDBLOCK. A plan taken with TakePlan before is no longer the one Ack
// acknowledges.
func (m *Maps) Program(e *Engine) (applied int, err error) {
	if e == nil {
		return 0, argumentError("engine", "Required value")
	}
	err = m.use(func(maps *C.egress_maps) error {
		return e.write(func(ptr *C.egress_engine) error {
			var n C.size_t
			var cerr *C.egress_error
			err := failure(C.egress_maps_program(maps, ptr, &n, &cerr), cerr)
			applied = int(n)
			return err
		})
	})
	return applied, err
}

// Reconcile is a writer's whole cycle under the pin directory's writer lock (no other
// writer, in any process, reads or writes between its steps): it reads what the maps hold,
// makes it e's programmed baseline (as AdoptMaps), then programs the difference (as
// Program). Elements e cannot read (another writer's) are deleted, before the plan when they
// take the room it needs, else after it. applied is the number of plan operations written
// (on a kernel failure too); unreadableDeleted the number of such elements deleted.
// Failures as Program.
func (m *Maps) Reconcile(e *Engine) (applied, unreadableDeleted int, err error) {
	if e == nil {
		return 0, 0, argumentError("engine", "Required value")
	}
	err = m.use(func(maps *C.egress_maps) error {
		return e.write(func(ptr *C.egress_engine) error {
			var n, deleted C.size_t
			var cerr *C.egress_error
			err := failure(C.egress_maps_reconcile(maps, ptr, &n, &deleted, &cerr), cerr)
			applied, unreadableDeleted = int(n), int(deleted)
			return err
		})
	})
	return applied, unreadableDeleted, err
}

// Dump reads both maps' entries (IPv4 first, each in `egressctl list` order). A legacy
// IPv4 map stores no ifindex: its entries have 0.
func (m *Maps) Dump() ([]Entry, error) {
	var out []Entry
	err := m.use(func(maps *C.egress_maps) error {
		var err error
		out, err = readEntries(func(buf *C.egress_entry, n C.size_t, count *C.size_t, cerr **C.egress_error) C.egress_result {
			return C.egress_maps_dump(maps, buf, n, count, cerr)
		})
		return err
	})
	return out, err
}

// AdoptMaps makes what the maps hold e's programmed baseline: a restarted agent then writes
// only the difference, never a flush.
func (e *Engine) AdoptMaps(m *Maps) error {
	if m == nil {
		return argumentError("maps", "Required value")
	}
	// The maps' lock first, then the engine's: the order Program takes them in.
	return m.use(func(maps *C.egress_maps) error {
		return e.write(func(ptr *C.egress_engine) error {
			var cerr *C.egress_error
			return failure(C.egress_engine_adopt_maps(ptr, maps, &cerr), cerr)
		})
	})
}
