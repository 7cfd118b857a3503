/*
 * amplification.c — issue 21's amplifying input through the C ABI: one valid policy with
 * 16,384 CIDRs over 2,000 pods, 0.56 MB of JSON, asks for 32,768,000 entries. Counted, never
 * built: the entries' size query answers the count, the plan is refused for the map's
 * capacity (Cilium's 16,384) before an operation is built, the conflicts' size query renders
 * to a counter; the process's peak resident size stays within 10 x the input plus 64 MiB
 * (the entries would take ~10 GB). Usage: amplification
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "check.h"
#include "egress_gateway.h"

#define CIDRS 16384
#define PODS 2000

/* Appends to a growing buffer. */
static void put(char **buf, size_t *len, size_t *cap, const char *text)
{
    size_t n = strlen(text);
    if (*len + n + 1 > *cap) {
        *cap = (*len + n + 1) * 2;
        *buf = realloc(*buf, *cap);
        if (*buf == NULL)
            abort();
    }
    memcpy(*buf + *len, text, n + 1);
    *len += n;
}

static void amplification(void)
{
    char *text = NULL;
    size_t len = 0, cap = 0;
    char item[256];
    put(&text, &len, &cap, "{\"localNode\":\"n0\",\"nodes\":[");
    for (int i = 0; i < 4; i++) {
        snprintf(item, sizeof item,
                 "%s{\"name\":\"n%d\",\"labels\":{\"egress\":\"%s\"},\"ipv4\":\"10.0.0.%d\"}",
                 i ? "," : "", i, i < 2 ? "true" : "false", i + 1);
        put(&text, &len, &cap, item);
    }
    put(&text, &len, &cap, "],\"endpoints\":[");
    for (int i = 0; i < PODS; i++) {
        snprintf(item, sizeof item,
                 "%s{\"uid\":\"00000000-0000-4000-8000-%012d\",\"namespace\":\"default\","
                 "\"name\":\"p%d\",\"labels\":{\"app\":\"a\"},\"ips\":[\"10.%d.%d.%d\"],"
                 "\"node\":\"n%d\"}",
                 i ? "," : "", i, i, 1 + i / 65536, (i / 256) % 256, i % 256, i % 4);
        put(&text, &len, &cap, item);
    }
    put(&text, &len, &cap,
        "],\"policies\":[{\"metadata\":{\"name\":\"amp\"},\"spec\":{\"selectors\":[{"
        "\"podSelector\":{\"matchLabels\":{\"app\":\"a\"}}}],\"destinationCIDRs\":[");
    for (int i = 0; i < CIDRS; i++) {
        snprintf(item, sizeof item, "%s\"%d.%d.%d.0/24\"", i ? "," : "", 100 + (i >> 16),
                 (i >> 8) & 255, i & 255);
        put(&text, &len, &cap, item);
    }
    put(&text, &len, &cap,
        "],\"egressGateway\":{\"nodeSelector\":{\"matchLabels\":{\"egress\":\"true\"}}}}}]}");
    CHECK(len > 500000 && len < 800000);

    egress_engine *engine = NULL;
    egress_error *error = NULL;
    CHECK_EQ(egress_engine_from_snapshot((const uint8_t *)text, len, NULL, 0,
                                         EGRESS_SELECTION_CILIUM, &engine, &error),
             EGRESS_RESULT_OK);
    /* The entries: counted. */
    size_t count = 0;
    CHECK_EQ(egress_engine_entries(engine, NULL, 0, &count, &error),
             EGRESS_RESULT_INSUFFICIENT_SIZE);
    CHECK_EQ(count, 32768000);
    CHECK(error == NULL);
    /* The plan: refused for Cilium's capacity before an operation is built. */
    egress_plan_op ops[16];
    CHECK_EQ(egress_engine_take_plan(engine, ops, 16, &count, &error), EGRESS_RESULT_CAPACITY);
    CHECK_EQ(count, 0);
    CHECK(error != NULL &&
          strstr(egress_error_message(error),
                 "the plan needs 32768000 entries, more than max_entries 16384") != NULL);
    egress_error_free(error);
    error = NULL;
    /* The conflicts (none): their size rendered to a counter. */
    size_t written = 0;
    CHECK_EQ(egress_engine_conflicts_json(engine, NULL, 0, &written, &error),
             EGRESS_RESULT_INSUFFICIENT_SIZE);
    CHECK_EQ(written, 3); /* "[]\n" */
    CHECK(error == NULL);
    egress_engine_free(engine);

    struct rusage usage;
    CHECK(getrusage(RUSAGE_SELF, &usage) == 0);
    long bound_kib = (long)(10 * len / 1024) + 64 * 1024;
    printf("amplification: %zu bytes of input, 32768000 entries counted, peak %ld KiB "
           "(bound %ld KiB)\n",
           len, usage.ru_maxrss, bound_kib);
    CHECK(usage.ru_maxrss < bound_kib);
    free(text);
}

int main(void)
{
    return run_group("amplification", amplification) ? 0 : 1;
}
