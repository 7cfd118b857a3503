/*
 * seed_gateway_group.c — the egress-gateway C API in one small program.
 *
 * What a CNI plugin (or a node agent) does with the library, step by step:
 *   1. load a cluster snapshot and compute this node's egress gateway maps;
 *   2. read those maps: as JSON (what `egressctl list -o json` prints) and as decoded entries;
 *   3. take the plan that makes the kernel maps equal to them, write it, acknowledge it;
 *   4. on CNI ADD, upsert the new pod from a typed struct and program only the difference;
 *   5. ask what the datapath does with one of the new pod's packets.
 * "Write it" in step 3 is a printout here; a library built with feature `bpf` also has
 * egress_maps_program(), which writes a plan to Cilium's pinned maps itself.
 *
 * Build and run from the repository root, after `cargo build --release -p egress-ffi`
 * (scripts/test-c.sh prints the exact lines it uses):
 *   cc -std=c11 -Iinclude examples/c/seed_gateway_group.c target/release/libegress_ffi.a \
 *      -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc -o seed_gateway_group
  *   ./seed_gateway_group examples/snapshots/seed-gateway-group.yaml
 */
#define _POSIX_C_SOURCE 200809L /* inet_ntop under -std=c11 */

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "egress_gateway.h"

/* Text goes to the library as (pointer, length), UTF-8, no NUL needed. For a literal: */
#define TEXT(literal) (const uint8_t *)(literal), sizeof(literal) - 1

/* ---- small helpers ------------------------------------------------------------------- */

/*
 * Checks a call's result. On failure, prints the error's message (every field error, one
 * per line) when there is an error object, and frees it: the caller owns every egress_error
 * it is handed. On success the library has set *error_out to NULL: nothing to free.
 */
static bool succeeded(egress_result result, egress_error *error, const char *call)
{
    if (result == EGRESS_RESULT_OK)
        return true;
    fprintf(stderr, "%s failed (result %u)%s%s\n", call, (unsigned)result,
            error != NULL ? ":\n" : "", egress_error_message(error));
    egress_error_free(error);
    return false;
}

/* Reads a whole file into a malloc'ed buffer; NULL (with a message) on failure. */
static uint8_t *read_file(const char *path, size_t *len_out)
{
    FILE *file = fopen(path, "rb");
    if (file == NULL) {
        perror(path);
        return NULL;
    }
    uint8_t *text = NULL;
    size_t len = 0, capacity = 0;
    for (;;) {
        if (len == capacity) {
            capacity = capacity ? 2 * capacity : 4096;
            uint8_t *grown = realloc(text, capacity);
            if (grown == NULL) {
                free(text);
                fclose(file);
                fputs("out of memory\n", stderr);
                return NULL;
            }
            text = grown;
        }
        size_t n = fread(text + len, 1, capacity - len, file);
        len += n;
        if (n == 0)
            break;
    }
    bool failed = ferror(file);
    fclose(file);
    if (failed) {
        perror(path);
        free(text);
        return NULL;
    }
    *len_out = len;
    return text;
}

/* An egress_ip_addr as text (inet_ntop; the family says how many bytes count). */
static const char *ip_text(const egress_ip_addr *ip, char out[static INET6_ADDRSTRLEN])
{
    int af = ip->family == EGRESS_FAMILY_IPV4 ? AF_INET : AF_INET6;
    return inet_ntop(af, ip->bytes, out, INET6_ADDRSTRLEN) ? out : "?";
}

/* Four IPv4 bytes (a gateway, a verdict's addresses) as text. */
static const char *ipv4_text(const uint8_t bytes[static 4], char out[static INET6_ADDRSTRLEN])
{
    return inet_ntop(AF_INET, bytes, out, INET6_ADDRSTRLEN) ? out : "?";
}

static const char *map_name(uint32_t map)
{
    switch (map) {
    case EGRESS_MAP_V4:
        return "cilium_egress_gw_policy_v4_v2";
    case EGRESS_MAP_V4_LEGACY:
        return "cilium_egress_gw_policy_v4";
    case EGRESS_MAP_V6:
        return "cilium_egress_gw_policy_v6";
    default:
        return "?";
    }
}

static void print_hex(const uint8_t *bytes, uint32_t len)
{
    for (uint32_t i = 0; i < len; i++)
        printf("%02x", bytes[i]);
}

/* ---- the steps ------------------------------------------------------------------------ */

/* Step 2a: the maps as JSON, with the two-call size pattern (ask the size, then fill). */
static bool print_maps_json(const egress_engine *engine)
{
    size_t len = 0;
    /* buf NULL, buf_len 0: only *written_out is set. No details wanted: error_out NULL. */
    egress_result result = egress_engine_maps_json(engine, NULL, 0, &len, NULL);
    if (result != EGRESS_RESULT_OK && result != EGRESS_RESULT_INSUFFICIENT_SIZE)
        return succeeded(result, NULL, "egress_engine_maps_json (size)");

    uint8_t *json = malloc(len ? len : 1);
    if (json == NULL) {
        fputs("out of memory\n", stderr);
        return false;
    }
    egress_error *error = NULL;
    result = egress_engine_maps_json(engine, json, len, &len, &error);
    if (succeeded(result, error, "egress_engine_maps_json")) {
        /* No NUL terminator: write exactly len bytes. */
        fwrite(json, 1, len, stdout);
        if (len == 0 || json[len - 1] != '\n')
            putchar('\n');
    }
    free(json);
    return result == EGRESS_RESULT_OK;
}

/* Step 2b: each pod's gateway, from the decoded entries of both maps. */
static bool print_gateways(const egress_engine *engine)
{
    size_t count = 0;
    egress_result result = egress_engine_entries(engine, NULL, 0, &count, NULL);
    if (result != EGRESS_RESULT_OK && result != EGRESS_RESULT_INSUFFICIENT_SIZE)
        return succeeded(result, NULL, "egress_engine_entries (count)");

    egress_entry *entries = calloc(count ? count : 1, sizeof *entries);
    if (entries == NULL) {
        fputs("out of memory\n", stderr);
        return false;
    }
    egress_error *error = NULL;
    result = egress_engine_entries(engine, entries, count, &count, &error);
    if (succeeded(result, error, "egress_engine_entries")) {
        /*
         * Entries come sorted by source, then destination: a pod with several destination
         * CIDRs has consecutive entries, and the first one stands for it here.
         */
        for (size_t i = 0; i < count; i++) {
            const egress_entry *e = &entries[i];
            if (i > 0 && memcmp(&e->source, &entries[i - 1].source, sizeof e->source) == 0)
                continue;
            static const uint8_t no_gateway[4] = {0, 0, 0, 0}, excluded[4] = {0, 0, 0, 1};
            static const uint8_t zero[16] = {0};
            char source[INET6_ADDRSTRLEN], gateway[INET6_ADDRSTRLEN], egress[INET6_ADDRSTRLEN];
            printf("  %-15s -> ", ip_text(&e->source, source));
            if (memcmp(e->gateway_ip, no_gateway, 4) == 0)
                printf("no gateway (dropped)\n");
            else if (memcmp(e->gateway_ip, excluded, 4) == 0)
                printf("excluded destination (not SNATed)\n");
            else if (memcmp(e->egress_ip.bytes, zero, sizeof zero) == 0)
                /* Only the gateway node's own map holds the egress IP. */
                printf("gateway %s / egress IP (set on that node)\n",
                       ipv4_text(e->gateway_ip, gateway));
            else
                printf("gateway %s / egress IP %s (SNATed here)\n",
                       ipv4_text(e->gateway_ip, gateway), ip_text(&e->egress_ip, egress));
        }
    }
    free(entries);
    return result == EGRESS_RESULT_OK;
}

/*
 * Step 3: takes the engine's plan into *ops, growing the buffer when the plan is larger.
 * Taking changes nothing in the engine, so a second take after growing gets the same plan.
 * An agent keeps the buffer from one plan to the next.
 */
static bool take_plan(egress_engine *engine, egress_plan_op **ops, size_t *capacity,
                      size_t *count)
{
    for (;;) {
        egress_error *error = NULL;
        egress_result result = egress_engine_take_plan(engine, *ops, *capacity, count, &error);
        if (result != EGRESS_RESULT_INSUFFICIENT_SIZE)
            return succeeded(result, error, "egress_engine_take_plan");
        egress_error_free(error);

        /* *count is the number of operations needed; nothing was written to *ops. */
        egress_plan_op *grown = realloc(*ops, *count * sizeof **ops);
        if (grown == NULL) {
            fputs("out of memory\n", stderr);
            return false;
        }
        *ops = grown;
        *capacity = *count;
    }
}

/* Prints a plan's operations with the exact key and value bytes an agent writes. */
static void print_plan(const egress_plan_op *ops, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        const egress_plan_op *op = &ops[i];
        bool upsert = op->action == EGRESS_ACTION_UPSERT;
        printf("  %-6s %s key=", upsert ? "upsert" : "delete", map_name(op->map));
        print_hex(op->key, op->key_len);
        if (upsert) {
            printf(" value=");
            print_hex(op->value, op->value_len);
        }
        putchar('\n');
    }
}

/* Takes, "writes" (prints) and acknowledges a plan; *count is its number of operations. */
static bool program(egress_engine *engine, egress_plan_op **ops, size_t *capacity,
                    size_t *count)
{
    if (!take_plan(engine, ops, capacity, count))
        return false;
    print_plan(*ops, *count);
    /*
     * Here an agent writes ops[0..count) to the pinned maps, in order, then acknowledges
     * how many it wrote; unacknowledged operations come back in the next plan.
     */
    egress_error *error = NULL;
    return succeeded(egress_engine_ack(engine, *count, &error), error, "egress_engine_ack");
}

/* Step 5: what happens to a packet, in words. */
static void print_verdict(const egress_verdict *v)
{
    char ip[INET6_ADDRSTRLEN];
    switch (v->kind) {
    case EGRESS_VERDICT_KIND_NO_ENTRY:
        printf("no entry: the normal path\n");
        break;
    case EGRESS_VERDICT_KIND_DROP_NO_GATEWAY:
        printf("dropped: the policy has no gateway\n");
        break;
    case EGRESS_VERDICT_KIND_DROP_NO_EGRESS_IP:
        printf("dropped: this gateway has no egress IP\n");
        break;
    case EGRESS_VERDICT_KIND_EXCLUDED:
        printf("excluded destination: the normal path, no SNAT\n");
        break;
    case EGRESS_VERDICT_KIND_FORWARD:
        printf("forwarded to gateway %s\n", ipv4_text(v->gateway_ip, ip));
        break;
    case EGRESS_VERDICT_KIND_MASQUERADE:
        /* IPv4 source: the egress IP is the first 4 bytes. */
        printf("SNATed here to %s (ifindex %u%s)\n", ipv4_text(v->egress_ip, ip),
               (unsigned)v->ifindex, v->ifindex == 0 ? ": route lookup" : "");
        break;
    default:
        printf("unknown verdict kind %u\n", (unsigned)v->kind);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s SNAPSHOT.yaml\n", argv[0]);
        return 2;
    }
    /* The library linked is the one this header describes (a stale .so is refused). */
    if (egress_abi_version() != EGRESS_ABI_VERSION) {
        fprintf(stderr, "libegress_ffi %s does not match egress_gateway.h %d.%d.%d\n",
                egress_version(), EGRESS_VERSION_MAJOR, EGRESS_VERSION_MINOR,
                EGRESS_VERSION_PATCH);
        return 1;
    }
    int status = EXIT_FAILURE;
    egress_engine *engine = NULL;
    egress_plan_op *ops = NULL;
    size_t capacity = 4, count = 0; /* small on purpose: the first plan makes it grow */
    egress_error *error = NULL;

    printf("egress-gateway library %s\n\n", egress_version());

    /* Step 1: load the snapshot; local node NULL = its localNode, Cilium's selection. */
    size_t text_len = 0;
    uint8_t *text = read_file(argv[1], &text_len);
    if (text == NULL)
        goto done;
    egress_result result = egress_engine_from_snapshot(text, text_len, NULL, 0,
                                                       EGRESS_SELECTION_CILIUM, &engine, &error);
    free(text); /* the engine keeps nothing of the text */
    if (!succeeded(result, error, "egress_engine_from_snapshot"))
        goto done;

    /* Step 2: the maps. */
    printf("Maps (as `egressctl list -o json`):\n");
    if (!print_maps_json(engine))
        goto done;
    printf("\nEach pod's gateway:\n");
    if (!print_gateways(engine))
        goto done;

    /* Step 3: the first plan writes every entry (nothing is programmed yet). */
    ops = malloc(capacity * sizeof *ops);
    if (ops == NULL)
        goto done;
    printf("\nFirst plan:\n");
    if (!program(engine, &ops, &capacity, &count))
        goto done;
    printf("  (%zu operation%s written and acknowledged)\n", count, count == 1 ? "" : "s");

    /*
     * Step 4: CNI ADD of a new nginx replica on node 172.22.48.48. The seed's policy
     * `egress-test` selects app=nginx in namespace default: the namespace gives the pod its
     * io.kubernetes.pod.namespace label, so it gets one entry per destination CIDR.
     */
    static const egress_label pod_labels[] = {
        {TEXT("app"), TEXT("nginx")},
        {TEXT("pod-template-hash"), TEXT("54c98b4f84")},
    };
    static const egress_label namespace_labels[] = {
        {TEXT("kubernetes.io/metadata.name"), TEXT("default")},
    };
    const egress_ip_addr pod_ip = {.family = EGRESS_FAMILY_IPV4, .bytes = {172, 22, 48, 50}};
    static const char uid[] = "d6b3e0a2-4f1c-4c8e-9a57-2e1f0b7c9d31";
    static const char namespace_name[] = "default";
    static const char node[] = "172.22.48.48";
    const egress_endpoint pod = {
        .uid = (const uint8_t *)uid,
        .uid_len = strlen(uid),
        .namespace_name = (const uint8_t *)namespace_name,
        .namespace_name_len = strlen(namespace_name),
        .labels = pod_labels,
        .labels_len = sizeof pod_labels / sizeof pod_labels[0],
        .namespace_labels = namespace_labels,
        .namespace_labels_len = sizeof namespace_labels / sizeof namespace_labels[0],
        .service_account = NULL, /* optional: "default" */
        .service_account_len = 0,
        .ips = &pod_ip,
        .ips_len = 1,
        .node = (const uint8_t *)node,
        .node_len = strlen(node),
    };
    char ip[INET6_ADDRSTRLEN];
    printf("\nCNI ADD: pod %s (app=nginx, namespace default) on node %s\n",
           ip_text(&pod_ip, ip), node);
    result = egress_engine_upsert_endpoint(engine, &pod, &error);
    if (!succeeded(result, error, "egress_engine_upsert_endpoint"))
        goto done;

    /* Only the new pod's entries are written: the plan is the difference. */
    printf("Plan after the CNI ADD:\n");
    if (!program(engine, &ops, &capacity, &count))
        goto done;
    if (count == 0) {
        fputs("error: the new pod's plan is empty: the policy did not select it\n", stderr);
        goto done;
    }
    printf("  (%zu operation%s written and acknowledged)\n", count, count == 1 ? "" : "s");

    /* Step 5: the new pod talks to 8.8.8.8. Lookups allocate nothing and need no lock. */
    static const uint8_t destination[4] = {8, 8, 8, 8};
    egress_verdict verdict;
    result = egress_engine_lookup_v4(engine, pod_ip.bytes, destination, &verdict);
    if (!succeeded(result, NULL, "egress_engine_lookup_v4"))
        goto done;
    printf("\nLookup %s -> 8.8.8.8: ", ip_text(&pod_ip, ip));
    print_verdict(&verdict);

    status = EXIT_SUCCESS;
done:
    free(ops);
    egress_engine_free(engine); /* NULL is a no-op */
    return status;
}
