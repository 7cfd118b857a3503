/* Small C helpers of package egressgw for the lookups: they take the engine as an integer
 * (it is C memory, which Go's collector does not track), the addresses by value and the
 * batches in C memory, so that a Go caller passes no Go pointer: cgo then neither checks
 * pointers nor moves anything to the heap, and a lookup allocates nothing. */
#ifndef EGRESSGW_SHIM_H
#define EGRESSGW_SHIM_H

#include <stdint.h>
#include <string.h>
#include "egress_gateway.h"

typedef struct egw_v4 { uint8_t b[4]; } egw_v4;
typedef struct egw_v6 { uint8_t b[16]; } egw_v6;

typedef struct egw_lookup {
    egress_result result;
    egress_verdict verdict;
} egw_lookup;

static inline egw_lookup egw_lookup_v4(uintptr_t engine, egw_v4 src, egw_v4 dst) {
    egw_lookup r;
    memset(&r, 0, sizeof r);
    r.result = egress_engine_lookup_v4((const egress_engine *)engine, src.b, dst.b, &r.verdict);
    return r;
}

static inline egw_lookup egw_lookup_v6(uintptr_t engine, egw_v6 src, egw_v6 dst) {
    egw_lookup r;
    memset(&r, 0, sizeof r);
    r.result = egress_engine_lookup_v6((const egress_engine *)engine, src.b, dst.b, &r.verdict);
    return r;
}

static inline egress_result egw_lookup_batch_v4(uintptr_t engine, const egress_query_v4 *queries,
                                                size_t count, egress_verdict *verdicts) {
    return egress_engine_lookup_batch_v4((const egress_engine *)engine, queries, count, verdicts);
}

static inline egress_result egw_lookup_batch_v6(uintptr_t engine, const egress_query_v6 *queries,
                                                size_t count, egress_verdict *verdicts) {
    return egress_engine_lookup_batch_v6((const egress_engine *)engine, queries, count, verdicts);
}

/* Does nothing: BenchmarkCgoCrossing times a call of it, the floor of every call. */
static inline uint32_t egw_nothing(uintptr_t x) { return (uint32_t)x; }

#endif
