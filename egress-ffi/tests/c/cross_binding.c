/*
 * The cross-binding table (tests/cross-binding/table.txt) through the C ABI: writes its
 * transcript to stdout; scripts/test-c.sh compares it with tests/cross-binding/expected.txt,
 * as the Rust, Go and Python runs compare theirs.
 *
 * usage: cross_binding TABLE SEED_SNAPSHOT
 */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "egress_gateway.h"

#define MAX_WORDS 8
#define MAX_ITEMS 4
#define MAX_PLANS 16

static void die(const char *what)
{
    fprintf(stderr, "cross_binding: %s\n", what);
    exit(2);
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        die(path);
    char *buf = NULL;
    size_t cap = 0;
    *len = 0;
    for (;;) {
        if (*len + 4096 + 1 > cap) {
            cap = (cap + 4096) * 2;
            buf = realloc(buf, cap);
            if (buf == NULL)
                die("out of memory");
        }
        size_t n = fread(buf + *len, 1, 4096, f);
        *len += n;
        if (n == 0)
            break;
    }
    fclose(f);
    buf[*len] = '\0';
    return buf;
}

/* `-` is an empty field. */
static const char *field(const char *s)
{
    return strcmp(s, "-") == 0 ? "" : s;
}

static const uint8_t *bytes(const char *s)
{
    return (const uint8_t *)s;
}

/* Splits a comma-separated list in place (`-`: none); returns how many. */
static size_t items(char *s, char **out)
{
    size_t n = 0;
    if (strcmp(s, "-") == 0)
        return 0;
    for (char *tok = strtok(s, ","); tok != NULL && n < MAX_ITEMS; tok = strtok(NULL, ","))
        out[n++] = tok;
    return n;
}

static egress_ip_addr address(const char *text)
{
    egress_ip_addr ip = {0};
    if (inet_pton(AF_INET, text, ip.bytes) == 1) {
        ip.family = EGRESS_FAMILY_IPV4;
    } else if (inet_pton(AF_INET6, text, ip.bytes) == 1) {
        ip.family = EGRESS_FAMILY_IPV6;
    } else {
        die(text);
    }
    return ip;
}

/* Labels `k=v,...` split in place into egress_label values; returns how many. */
static size_t labels(char *s, egress_label *out)
{
    char *kv[MAX_ITEMS];
    size_t n = items(s, kv);
    for (size_t i = 0; i < n; i++) {
        char *eq = strchr(kv[i], '=');
        if (eq == NULL)
            die(kv[i]);
        *eq = '\0';
        out[i] = (egress_label){bytes(kv[i]), strlen(kv[i]), bytes(eq + 1), strlen(eq + 1)};
    }
    return n;
}

/* The first field error, without the ABI's own argument name ("endpoint."), then freed. */
static void print_error(egress_error *error)
{
    if (error == NULL || egress_error_field_count(error) == 0)
        die("an error without a field");
    const char *path = egress_error_field_path(error, 0);
    if (strncmp(path, "endpoint.", 9) == 0)
        path += 9;
    printf("error %s %s\n", path, egress_error_field_reason(error, 0));
    egress_error_free(error);
}

static void print_address(const uint8_t *b, bool v4)
{
    char text[INET6_ADDRSTRLEN];
    inet_ntop(v4 ? AF_INET : AF_INET6, b, text, sizeof text);
    printf("%s", text);
}

static const char *kind_name(uint32_t kind)
{
    const char *name = egress_verdict_kind_name(kind);
    return name != NULL ? name : "unknown";
}

/* The lookup as the ABI reads values: egress_query_check says the family the lookup uses
 * (an IPv4-mapped source is IPv4) or why it refuses the pair. */
static void lookup(const egress_engine *engine, const char *src_text, const char *dst_text)
{
    egress_ip_addr src = address(src_text), dst = address(dst_text), used_src;
    egress_error *error = NULL;
    if (egress_query_check(&src, &dst, &used_src, NULL, &error) != EGRESS_RESULT_OK) {
        print_error(error);
        return;
    }
    egress_verdict v;
    egress_result r;
    if (src.family == EGRESS_FAMILY_IPV4 && dst.family == EGRESS_FAMILY_IPV4) {
        r = egress_engine_lookup_v4(engine, src.bytes, dst.bytes, &v);
    } else {
        /* 16 bytes each, an IPv4 address in its mapped form. */
        uint8_t s[16] = {0}, d[16] = {0};
        const egress_ip_addr *in[2] = {&src, &dst};
        uint8_t *to[2] = {s, d};
        for (int i = 0; i < 2; i++) {
            if (in[i]->family == EGRESS_FAMILY_IPV4) {
                to[i][10] = to[i][11] = 0xff;
                memcpy(to[i] + 12, in[i]->bytes, 4);
            } else {
                memcpy(to[i], in[i]->bytes, 16);
            }
        }
        r = egress_engine_lookup_v6(engine, s, d, &v);
    }
    if (r != EGRESS_RESULT_OK)
        die("lookup refused a pair egress_query_check accepted");
    printf("verdict %s ", kind_name(v.kind));
    if (v.kind == EGRESS_VERDICT_KIND_FORWARD)
        print_address(v.gateway_ip, true);
    else
        printf("-");
    printf(" ");
    if (v.kind == EGRESS_VERDICT_KIND_MASQUERADE) {
        print_address(v.egress_ip, used_src.family == EGRESS_FAMILY_IPV4);
        printf(" %u\n", v.ifindex);
    } else {
        printf("- -\n");
    }
}

/* The string value after `"key": "` in a JSON document, copied to out. */
static void json_string(const char *doc, const char *key, char *out, size_t out_len)
{
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\": \"", key);
    const char *at = strstr(doc, pattern);
    if (at == NULL)
        die(key);
    at += strlen(pattern);
    size_t n = strcspn(at, "\"");
    if (n >= out_len)
        die(key);
    memcpy(out, at, n);
    out[n] = '\0';
}

static void explain(const egress_engine *engine, const char *src_text, const char *dst_text)
{
    egress_ip_addr src = address(src_text), dst = address(dst_text);
    egress_error *error = NULL;
    size_t needed = 0;
    egress_result r = egress_engine_explain_json(engine, &src, &dst, NULL, 0, &needed, &error);
    if (r != EGRESS_RESULT_INSUFFICIENT_SIZE) {
        print_error(error);
        return;
    }
    char *doc = malloc(needed + 1);
    if (doc == NULL)
        die("out of memory");
    if (egress_engine_explain_json(engine, &src, &dst, (uint8_t *)doc, needed, &needed, NULL) !=
        EGRESS_RESULT_OK)
        die("explain");
    doc[needed] = '\0';
    char source[64], kind[32];
    json_string(doc, "source", source, sizeof source);
    const char *verdict = strstr(doc, "\"verdict\"");
    if (verdict == NULL)
        die("verdict");
    json_string(verdict, "kind", kind, sizeof kind);
    const char *entries = strstr(doc, "\"sourceEntries\": ");
    if (entries == NULL)
        die("sourceEntries");
    printf("explain %s %s %ld\n", source, kind, strtol(entries + 17, NULL, 10));
    free(doc);
}

/* `ok`, or the error the call left in *error (read after the call: an argument list's
 * evaluation order is unspecified). */
static void print_result(egress_result r, egress_error **error)
{
    if (r == EGRESS_RESULT_OK)
        printf("ok\n");
    else
        print_error(*error);
}

/* endpoint UID NS NODE IPS LABELS: the typed struct. */
static void endpoint(egress_engine *engine, char **args)
{
    char *ip_text[MAX_ITEMS];
    size_t n_ips = items(args[3], ip_text);
    egress_ip_addr ips[MAX_ITEMS];
    for (size_t i = 0; i < n_ips; i++)
        ips[i] = address(ip_text[i]);
    egress_label ls[MAX_ITEMS];
    size_t n_labels = labels(args[4], ls);
    const char *uid = field(args[0]), *ns = field(args[1]), *node = field(args[2]);
    egress_endpoint ep = {
        .uid = bytes(uid),
        .uid_len = strlen(uid),
        .namespace_name = bytes(ns),
        .namespace_name_len = strlen(ns),
        .labels = ls,
        .labels_len = n_labels,
        .ips = ips,
        .ips_len = n_ips,
        .node = bytes(node),
        .node_len = strlen(node),
    };
    egress_error *error = NULL;
    print_result(egress_engine_upsert_endpoint(engine, &ep, &error), &error);
}

/* endpoint-doc UID NS NODE IPS LABELS: the JSON document. */
static void endpoint_doc(egress_engine *engine, char **args)
{
    char doc[2048], *ip_text[MAX_ITEMS];
    egress_label ls[MAX_ITEMS];
    size_t n_ips = items(args[3], ip_text);
    size_t n_labels = labels(args[4], ls);
    int len = snprintf(doc, sizeof doc, "{\"uid\": \"%s\", \"namespace\": \"%s\", \"node\": \"%s\", \"ips\": [",
                       field(args[0]), field(args[1]), field(args[2]));
    for (size_t i = 0; i < n_ips; i++)
        len += snprintf(doc + len, sizeof doc - (size_t)len, "%s\"%s\"", i ? ", " : "", ip_text[i]);
    len += snprintf(doc + len, sizeof doc - (size_t)len, "], \"labels\": {");
    for (size_t i = 0; i < n_labels; i++)
        len += snprintf(doc + len, sizeof doc - (size_t)len, "%s\"%.*s\": \"%.*s\"", i ? ", " : "",
                        (int)ls[i].key_len, (const char *)ls[i].key, (int)ls[i].value_len,
                        (const char *)ls[i].value);
    len += snprintf(doc + len, sizeof doc - (size_t)len, "}}");
    if (len <= 0 || (size_t)len >= sizeof doc)
        die("endpoint document too long");
    egress_error *error = NULL;
    print_result(egress_engine_upsert_endpoint_json(engine, bytes(doc), (size_t)len, &error), &error);
}

struct plan {
    char name[16];
    egress_plan_id id;
    size_t len;
};

static size_t take(egress_engine *engine)
{
    size_t needed = 0;
    egress_result r = egress_engine_take_plan(engine, NULL, 0, &needed, NULL);
    if (r != EGRESS_RESULT_OK && r != EGRESS_RESULT_INSUFFICIENT_SIZE)
        die("take_plan");
    egress_plan_op *ops = calloc(needed + 1, sizeof *ops);
    size_t count = 0;
    if (ops == NULL || egress_engine_take_plan(engine, ops, needed + 1, &count, NULL) != EGRESS_RESULT_OK)
        die("take_plan");
    free(ops);
    return count;
}

int main(int argc, char **argv)
{
    if (argc != 3)
        die("usage: cross_binding TABLE SEED_SNAPSHOT");
    size_t table_len, seed_len;
    char *table = read_all(argv[1], &table_len);
    char *seed = read_all(argv[2], &seed_len);
    egress_engine *engine = NULL, *other = NULL;
    if (egress_engine_from_snapshot(bytes(seed), seed_len, NULL, 0, EGRESS_SELECTION_CILIUM, &engine, NULL) != EGRESS_RESULT_OK ||
        egress_engine_from_snapshot(bytes(seed), seed_len, NULL, 0, EGRESS_SELECTION_CILIUM, &other, NULL) != EGRESS_RESULT_OK)
        die("the seed snapshot");
    struct plan plans[MAX_PLANS];
    size_t n_plans = 0;

    char *save = NULL;
    for (char *line = strtok_r(table, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '\0' || line[0] == '#')
            continue;
        printf("%s\n=> ", line);
        char *words[MAX_WORDS];
        size_t n = 0;
        char *wsave = NULL;
        for (char *w = strtok_r(line, " ", &wsave); w != NULL && n < MAX_WORDS; w = strtok_r(NULL, " ", &wsave))
            words[n++] = w;
        const char *op = words[0];
        char **args = words + 1;
        egress_error *error = NULL;
        if (strcmp(op, "lookup") == 0) {
            lookup(engine, args[0], args[1]);
        } else if (strcmp(op, "explain") == 0) {
            explain(engine, args[0], args[1]);
        } else if (strcmp(op, "endpoint") == 0) {
            endpoint(engine, args);
        } else if (strcmp(op, "endpoint-doc") == 0) {
            endpoint_doc(engine, args);
        } else if (strcmp(op, "namespace") == 0) {
            egress_label ls[MAX_ITEMS];
            size_t count = labels(args[1], ls);
            print_result(egress_engine_upsert_namespace(engine, bytes(args[0]), strlen(args[0]), ls, count, &error), &error);
        } else if (strcmp(op, "take") == 0 || strcmp(op, "take-other") == 0) {
            egress_engine *from = strcmp(op, "take") == 0 ? engine : other;
            if (n_plans == MAX_PLANS)
                die("too many plans");
            struct plan *p = &plans[n_plans++];
            snprintf(p->name, sizeof p->name, "%s", args[0]);
            p->len = take(from);
            if (egress_engine_plan_id(from, &p->id, NULL) != EGRESS_RESULT_OK)
                die("plan_id");
            printf("plan %zu\n", p->len);
        } else if (strcmp(op, "ack") == 0) {
            struct plan *p = NULL;
            for (size_t i = 0; i < n_plans; i++)
                if (strcmp(plans[i].name, args[0]) == 0)
                    p = &plans[i];
            if (p == NULL)
                die(args[0]);
            size_t applied = strcmp(args[1], "all") == 0 ? p->len : strtoul(args[1], NULL, 10);
            print_result(egress_engine_ack_plan(engine, p->id, applied, &error), &error);
        } else if (strcmp(op, "adopt-empty") == 0) {
            print_result(egress_engine_adopt(engine, NULL, 0, &error), &error);
        } else if (strcmp(op, "stats") == 0) {
            egress_stats s;
            if (egress_engine_stats(engine, &s) != EGRESS_RESULT_OK)
                die("stats");
            printf("stats %zu %zu %zu %zu\n", s.desired_v4, s.desired_v6, s.programmed_v4, s.programmed_v6);
        } else {
            die(op);
        }
    }
    egress_engine_free(engine);
    egress_engine_free(other);
    free(table);
    free(seed);
    return 0;
}
