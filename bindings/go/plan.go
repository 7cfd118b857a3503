package egressgw

/*
#include "egress_gateway.h"
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// MapID names one of Cilium's egress gateway maps or one of the compact layout's.
type MapID uint32

const (
	// MapV4 is cilium_egress_gw_policy_v4_v2: key 12 bytes, value 28.
	MapV4 MapID = 0
	// MapV4Legacy is cilium_egress_gw_policy_v4: key 12 bytes, value 8.
	MapV4Legacy MapID = 1
	// MapV6 is cilium_egress_gw_policy_v6: key 36 bytes, value 40.
	MapV6 MapID = 2
	// MapCompactEndpointsV4 is egress_gw_compact_endpoints_v4 (hash): key 4 bytes (a block's
	// first address, the low three bits zero), value 32 (its 8 addresses' set ids).
	MapCompactEndpointsV4 MapID = 3
	// MapCompactEndpointsV6 is egress_gw_compact_endpoints_v6 (hash): key 16 bytes, value 32.
	MapCompactEndpointsV6 MapID = 4
	// MapCompactRulesV4 is egress_gw_compact_rules_v4 (LPM trie): key 12 bytes, value 28.
	MapCompactRulesV4 MapID = 5
	// MapCompactRulesV6 is egress_gw_compact_rules_v6 (LPM trie): key 24 bytes, value 40.
	MapCompactRulesV6 MapID = 6
)

// String is the map's pinned name.
func (m MapID) String() string {
	switch m {
	case MapV4:
		return "cilium_egress_gw_policy_v4_v2"
	case MapV4Legacy:
		return "cilium_egress_gw_policy_v4"
	case MapV6:
		return "cilium_egress_gw_policy_v6"
	case MapCompactEndpointsV4:
		return "egress_gw_compact_endpoints_v4"
	case MapCompactEndpointsV6:
		return "egress_gw_compact_endpoints_v6"
	case MapCompactRulesV4:
		return "egress_gw_compact_rules_v4"
	case MapCompactRulesV6:
		return "egress_gw_compact_rules_v6"
	}
	return fmt.Sprintf("MapID(%d)", uint32(m))
}

// Action is what a plan operation does.
type Action uint32

const (
	// ActionUpsert creates or overwrites the key with the value.
	ActionUpsert Action = 0
	// ActionDelete deletes the key.
	ActionDelete Action = 1
)

func (a Action) String() string {
	switch a {
	case ActionUpsert:
		return "upsert"
	case ActionDelete:
		return "delete"
	}
	return fmt.Sprintf("Action(%d)", uint32(a))
}

// PlanOp is one map operation with the kernel's exact bytes: write Key and, for an upsert,
// Value (empty for a delete) to the pinned map Map.
type PlanOp struct {
	Map    MapID
	Action Action
	Key    []byte
	Value  []byte
}

// Plan is what makes the maps equal the desired state: every upsert, then every delete, no
// key twice — or the deletes first, when upserting first would take a map past its max
// entries and the desired state fits. Write its operations in order, then Ack how many were
// written.
type Plan struct {
	Ops []PlanOp
	id  C.egress_plan_id // which plan of which engine, for Ack
}

// Len is the number of operations.
func (p Plan) Len() int { return len(p.Ops) }

// TakePlan returns the operations that make the maps equal the desired state (none when
// nothing changed). ErrCapacity when a map's desired state exceeds its max entries (counted
// before anything is built), ErrOutOfMemory when the operations cannot be allocated: nothing
// is handed out then. Only the last plan taken can be acknowledged, once (SEMANTICS B.8).
func (e *Engine) TakePlan() (Plan, error) {
	var plan Plan
	err := e.write(func(ptr *C.egress_engine) error {
		for {
			var count C.size_t
			var cerr *C.egress_error
			var ops *C.egress_plan_op
			if len(e.opsBuf) > 0 {
				ops = &e.opsBuf[0]
			}
			code := C.egress_engine_take_plan(ptr, ops, C.size_t(len(e.opsBuf)), &count, &cerr)
			if code == C.EGRESS_RESULT_INSUFFICIENT_SIZE {
				C.egress_error_free(cerr)
				e.opsBuf = make([]C.egress_plan_op, int(count)+int(count)/4)
				continue
			}
			if err := failure(code, cerr); err != nil {
				return err
			}
			plan = Plan{Ops: planOps(e.opsBuf[:count])}
			if err := failure(C.egress_engine_plan_id(ptr, &plan.id, &cerr), cerr); err != nil {
				return err
			}
			if len(e.opsBuf) > 1024 {
				e.opsBuf = nil // a large plan's buffer is not kept
			}
			return nil
		}
	})
	return plan, err
}

// planOps copies C plan operations into Go values sharing one byte array.
func planOps(ops []C.egress_plan_op) []PlanOp {
	if len(ops) == 0 {
		return nil
	}
	total := 0
	for i := range ops {
		total += clamp(int(ops[i].key_len), len(ops[i].key)) + clamp(int(ops[i].value_len), len(ops[i].value))
	}
	bytes := make([]byte, total)
	out := make([]PlanOp, len(ops))
	for i := range ops {
		op := &ops[i]
		k := copy(bytes, cArray(&op.key[0], clamp(int(op.key_len), len(op.key))))
		v := copy(bytes[k:], cArray(&op.value[0], clamp(int(op.value_len), len(op.value))))
		out[i] = PlanOp{
			Map:    MapID(op._map),
			Action: Action(op.action),
			Key:    bytes[:k:k],
			Value:  bytes[k : k+v : k+v],
		}
		bytes = bytes[k+v:]
	}
	return out
}

// clamp is n, at most limit (a length the library gives, never trusted past its array).
func clamp(n, limit int) int {
	if n > limit {
		return limit
	}
	return n
}

// Ack records that the first applied operations of plan were written (all: plan.Len();
// none: 0). The rest come back in the next plan. The library refuses, recording nothing
// (ErrInvalidArgument naming "plan" or "applied"): a plan of another engine, one
// acknowledged already, one older than the last plan taken or taken before an Adopt, and
// applied past its length (SEMANTICS B.8).
func (e *Engine) Ack(plan Plan, applied int) error {
	if applied < 0 {
		return argumentError("applied", fmt.Sprintf("Invalid value: %d: must be at least 0", applied))
	}
	return e.write(func(ptr *C.egress_engine) error {
		var cerr *C.egress_error
		return failure(C.egress_engine_ack_plan(ptr, plan.id, C.size_t(applied), &cerr), cerr)
	})
}

// MapElement is one element of a live map, as an agent that dumps the maps itself reads it.
type MapElement struct {
	Map   MapID
	Key   []byte
	Value []byte
}

// Adopt makes elements (what the live maps hold) the programmed baseline: the next plan
// writes only the difference, never a flush. Every element must be of a map of the engine's
// layout with that map's key and value sizes; otherwise nothing is adopted and the error
// names elements[i].
func (e *Engine) Adopt(elements []MapElement) error {
	buf := make([]C.egress_map_element, len(elements))
	for i, el := range elements {
		c := &buf[i]
		if len(el.Key) > len(c.key) {
			return argumentError(fmt.Sprintf("elements[%d].key", i), fmt.Sprintf("Invalid value: %d bytes: longer than any key (%d)", len(el.Key), len(c.key)))
		}
		if len(el.Value) > len(c.value) {
			return argumentError(fmt.Sprintf("elements[%d].value", i), fmt.Sprintf("Invalid value: %d bytes: longer than any value (%d)", len(el.Value), len(c.value)))
		}
		c._map = C.uint32_t(el.Map)
		c.key_len = C.uint32_t(len(el.Key))
		c.value_len = C.uint32_t(len(el.Value))
		copy(cArray(&c.key[0], len(el.Key)), el.Key)
		copy(cArray(&c.value[0], len(el.Value)), el.Value)
	}
	return e.write(func(ptr *C.egress_engine) error {
		var p *C.egress_map_element
		if len(buf) > 0 {
			p = &buf[0]
		}
		var cerr *C.egress_error
		return failure(C.egress_engine_adopt(ptr, p, C.size_t(len(buf)), &cerr), cerr)
	})
}

// cArray views n bytes of a C uint8_t array as a Go slice.
func cArray(p *C.uint8_t, n int) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(p)), n)
}
