/*
 * test_errors.c — the C ABI seen from C: every error path of every export (NULL pointers,
 * invalid UTF-8, invalid enum values, short buffers, parse/input/policy/argument errors),
 * the error accessors, the maps JSON of every example snapshot byte for byte against its
 * expected file, and lookups from several threads on one const engine.
 *
 * Usage: test_errors EXAMPLES_DIR   (the shared examples: *.yaml, *.expected.json)
 * Prints one line per test group; exits non-zero when any check failed.
 */
#define _POSIX_C_SOURCE 200809L /* opendir, pthreads under -std=c11 */

#include <dirent.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "egress_gateway.h"

/* A literal as a (pointer, length) text argument. */
#define TEXT(literal) (const uint8_t *)(literal), sizeof(literal) - 1
#define COUNT(array) (sizeof(array) / sizeof((array)[0]))

static const char *examples_dir;

/* Not UTF-8: a lone continuation byte and an invalid lead byte. */
static const uint8_t bad_utf8[] = {'a', 0x80, 0xff, 'b'};
#define BAD_UTF8 bad_utf8, sizeof bad_utf8

/* ---- fixtures ------------------------------------------------------------------------- */

/* The whole file at dir/name (malloc'ed, NUL-terminated for convenience), or NULL. */
static char *read_file(const char *dir, const char *name, size_t *len_out)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return NULL;
    FILE *file = fopen(path, "rb");
    if (file == NULL)
        return NULL;
    char *text = NULL;
    size_t len = 0, capacity = 0;
    bool failed = false;
    for (;;) {
        if (capacity - len < 2) { /* room for at least one byte and the NUL */
            size_t larger = capacity ? 2 * capacity : 8192;
            char *grown = realloc(text, larger);
            if (grown == NULL) {
                failed = true;
                break;
            }
            text = grown;
            capacity = larger;
        }
        size_t n = fread(text + len, 1, capacity - len - 1, file);
        len += n;
        if (n == 0)
            break;
    }
    failed = failed || ferror(file);
    fclose(file);
    if (failed) {
        free(text);
        return NULL;
    }
    text[len] = '\0';
    *len_out = len;
    return text;
}

/* An engine loaded from an example snapshot; NULL (a failed check) when it cannot be. */
static egress_engine *load_example(const char *name, uint32_t selection)
{
    size_t len = 0;
    char *text = read_file(examples_dir, name, &len);
    if (!CHECK(text != NULL)) {
        fprintf(stderr, "    cannot read %s/%s\n", examples_dir, name);
        return NULL;
    }
    egress_engine *engine = NULL;
    egress_error *error = NULL;
    egress_result result = egress_engine_from_snapshot((const uint8_t *)text, len, NULL, 0,
                                                       selection, &engine, &error);
    if (!CHECK_EQ(result, EGRESS_RESULT_OK))
        fprintf(stderr, "    %s: %s\n", name, egress_error_message(error));
    egress_error_free(error);
    free(text);
    return engine;
}

static egress_engine *load_seed(void)
{
    return load_example("seed-gateway-group.yaml", EGRESS_SELECTION_CILIUM);
}

/* The maps JSON (malloc'ed, NUL added after the `*len_out` bytes), or NULL. */
static char *maps_json(const egress_engine *engine, size_t *len_out)
{
    size_t len = 0;
    egress_result result = egress_engine_maps_json(engine, NULL, 0, &len, NULL);
    if (!CHECK(result == EGRESS_RESULT_INSUFFICIENT_SIZE || result == EGRESS_RESULT_OK))
        return NULL;
    char *json = malloc(len + 1);
    if (!CHECK(json != NULL))
        return NULL;
    size_t written = 0;
    egress_error *error = NULL;
    result = egress_engine_maps_json(engine, (uint8_t *)json, len, &written, &error);
    egress_error_free(error);
    if (!CHECK_EQ(result, EGRESS_RESULT_OK) || !CHECK_EQ(written, len)) {
        free(json);
        return NULL;
    }
    json[len] = '\0';
    if (len_out != NULL)
        *len_out = len;
    return json;
}

/* Whether the engine's maps JSON is still `before`. */
static bool maps_unchanged(const egress_engine *engine, const char *before)
{
    char *after = maps_json(engine, NULL);
    bool same = after != NULL && before != NULL && strcmp(after, before) == 0;
    free(after);
    return same;
}

static egress_stats stats_of(const egress_engine *engine)
{
    egress_stats stats;
    memset(&stats, 0, sizeof stats);
    CHECK_EQ(egress_engine_stats(engine, &stats), EGRESS_RESULT_OK);
    return stats;
}

/*
 * Checks a failure: the result, an error object with the same code, a message, the path of
 * its first field error (`path` NULL: not checked), every field's path and reason present.
 * Frees the error.
 */
static void expect_failure_at(egress_result result, egress_error *error, egress_result code,
                              const char *path, const char *call, const char *file, int line)
{
    char what[512];
    snprintf(what, sizeof what, "%s fails with result %u", call, (unsigned)code);
    if (!check_u64_at(result, code, what, file, line) || error == NULL) {
        if (error == NULL)
            check_at(false, "an error object was handed out", file, line);
        else
            fprintf(stderr, "    message: %s\n", egress_error_message(error));
        egress_error_free(error);
        return;
    }
    check_at(egress_error_code(error) == code, "egress_error_code(error) == the result", file,
             line);
    const char *message = egress_error_message(error);
    check_at(message != NULL && message[0] != '\0', "the error has a message", file, line);
    if (path != NULL) {
        snprintf(what, sizeof what, "egress_error_path of %s == \"%s\"", call, path);
        check_str_at(egress_error_path(error), path, what, file, line);
    }
    size_t fields = egress_error_field_count(error);
    for (size_t i = 0; i < fields; i++) {
        check_at(egress_error_field_path(error, i) != NULL, "field path present", file, line);
        check_at(egress_error_field_reason(error, i) != NULL, "field reason present", file,
                 line);
    }
    check_at(egress_error_field_path(error, fields) == NULL, "field path past the end is NULL",
             file, line);
    check_at(egress_error_field_reason(error, fields) == NULL,
             "field reason past the end is NULL", file, line);
    check_at(egress_error_errno(error) == 0, "no errno outside kernel errors", file, line);
    if (code != EGRESS_RESULT_POLICY)
        check_at(egress_error_policy(error) == NULL, "no policy name outside policy errors",
                 file, line);
    egress_error_free(error);
}

/*
 * EXPECT_FAILURE(code, path, call): runs `call`, which passes `&error` as its error_out (the
 * macro declares `error`), and checks the failure as expect_failure_at does.
 */
/* A buffer too small: the code, and no error object (a size query allocates nothing). */
#define EXPECT_TOO_SMALL(call)                                                               \
    do {                                                                                     \
        egress_error *error = NULL;                                                          \
        CHECK_EQ((call), EGRESS_RESULT_INSUFFICIENT_SIZE);                                   \
        CHECK(error == NULL);                                                                \
        egress_error_free(error);                                                            \
    } while (0)

#define EXPECT_FAILURE(code, path, call)                                                     \
    do {                                                                                     \
        egress_error *error = NULL;                                                          \
        egress_result result_ = (call);                                                      \
        expect_failure_at(result_, error, (code), (path), #call, __FILE__, __LINE__);        \
    } while (0)

/* Policies as JSON (what a Go CNI holds). */
#define POLICY_EXTRA                                                                         \
    "{\"apiVersion\":\"cilium.io/v2\",\"kind\":\"CiliumEgressGatewayPolicy\","             \
    "\"metadata\":{\"name\":\"extra\"},\"spec\":{"                                          \
    "\"selectors\":[{\"podSelector\":{\"matchLabels\":{\"app\":\"nginx\"}}}],"              \
    "\"destinationCIDRs\":[\"1.1.1.1/32\"],"                                                \
    "\"egressGateway\":{\"nodeSelector\":{\"matchLabels\":"                                 \
    "{\"kubernetes.io/hostname\":\"172.22.49.147\"}}}}}"

/* The seed's policy `egress-test` with five errors. */
#define POLICY_INVALID                                                                       \
    "{\"apiVersion\":\"cilium.io/v2\",\"kind\":\"CiliumEgressGatewayPolicy\","             \
    "\"metadata\":{\"name\":\"egress-test\"},\"spec\":{"                                    \
    "\"selectors\":[{\"podSelector\":{\"matchLabels\":{\"app\":\"nginx\"}}}],"              \
    "\"destinationCIDRs\":[\"0.0.0.0/33\",\"not-a-cidr\"],"                                 \
    "\"egressGateway\":{\"egressIP\":\"1.2.3\"},"                                           \
    "\"bogus\":true}}"

/* A valid new version of `egress-test`: 8.8.8.0/24 only, through 172.22.49.147. */
#define POLICY_UPDATED                                                                       \
    "{\"apiVersion\":\"cilium.io/v2\",\"kind\":\"CiliumEgressGatewayPolicy\","             \
    "\"metadata\":{\"name\":\"egress-test\"},\"spec\":{"                                    \
    "\"selectors\":[{\"podSelector\":{\"matchLabels\":{\"app\":\"nginx\"}}}],"              \
    "\"destinationCIDRs\":[\"8.8.8.0/24\"],"                                                \
    "\"egressGateway\":{\"nodeSelector\":{\"matchLabels\":"                                 \
    "{\"kubernetes.io/hostname\":\"172.22.49.147\"}}}}}"

static const char small_snapshot[] =
    "{\"localNode\":\"n1\",\"nodes\":[{\"name\":\"n1\",\"ipv4\":\"10.0.0.1\"}]}";

/* ---- groups --------------------------------------------------------------------------- */

static void test_version(void)
{
    char expected[64];
    snprintf(expected, sizeof expected, "%d.%d.%d", EGRESS_VERSION_MAJOR, EGRESS_VERSION_MINOR,
             EGRESS_VERSION_PATCH);
    const char *version = egress_version();
    CHECK_STR(version, expected);
    CHECK(egress_version() == version); /* static: the same pointer every time */
    /* The startup check a C program makes against the header it was compiled with. */
    CHECK_EQ(egress_abi_version(), EGRESS_ABI_VERSION);
    CHECK_EQ(EGRESS_ABI_VERSION, ((uint32_t)EGRESS_VERSION_MAJOR << 16) |
                                     ((uint32_t)EGRESS_VERSION_MINOR << 8) |
                                     (uint32_t)EGRESS_VERSION_PATCH);
    /* Names for logs: the header's constant names, the maps' pin names, the verdict kinds
       as every binding spells them; NULL past the enums. */
    CHECK_STR(egress_result_name(EGRESS_RESULT_OK), "EGRESS_RESULT_OK");
    CHECK_STR(egress_result_name(EGRESS_RESULT_INSUFFICIENT_SIZE),
              "EGRESS_RESULT_INSUFFICIENT_SIZE");
    CHECK_STR(egress_result_name(EGRESS_RESULT_KERNEL), "EGRESS_RESULT_KERNEL");
    CHECK_STR(egress_result_name(EGRESS_RESULT_OUT_OF_MEMORY), "EGRESS_RESULT_OUT_OF_MEMORY");
    CHECK(egress_result_name(EGRESS_RESULT_OUT_OF_MEMORY + 1) == NULL);
    CHECK_STR(egress_map_name(EGRESS_MAP_V4_LEGACY), "cilium_egress_gw_policy_v4");
    CHECK_STR(egress_map_name(EGRESS_MAP_V6), "cilium_egress_gw_policy_v6");
    CHECK(egress_map_name(3) == NULL);
    CHECK_STR(egress_verdict_kind_name(EGRESS_VERDICT_KIND_MASQUERADE), "masquerade");
    CHECK(egress_verdict_kind_name(6) == NULL);
}

static void test_null_frees_and_accessors(void)
{
    egress_engine_free(NULL);
    egress_error_free(NULL);
    CHECK_EQ(egress_error_code(NULL), EGRESS_RESULT_NULL_PARAMETER);
    CHECK_STR(egress_error_message(NULL), "");
    CHECK(egress_error_path(NULL) == NULL);
    CHECK_EQ(egress_error_field_count(NULL), 0);
    CHECK(egress_error_field_path(NULL, 0) == NULL);
    CHECK(egress_error_field_reason(NULL, 0) == NULL);
    CHECK(egress_error_field_path(NULL, SIZE_MAX) == NULL);
    CHECK(egress_error_field_reason(NULL, SIZE_MAX) == NULL);
    CHECK(egress_error_policy(NULL) == NULL);
    CHECK_EQ(egress_error_errno(NULL), 0);
}

/* NULL for every pointer parameter of every export (the others valid). */
static void test_null_parameters(void)
{
    egress_engine *engine = load_seed();
    if (engine == NULL)
        return;
    char *before = maps_json(engine, NULL);
    egress_stats stats_before = stats_of(engine);
    size_t snapshot_len = 0;
    char *snapshot = read_file(examples_dir, "seed-gateway-group.yaml", &snapshot_len);
    CHECK(snapshot != NULL);
    const uint8_t *text = (const uint8_t *)snapshot;
    egress_engine *made = NULL;

    /* Creation. */
    egress_engine_config config = {
        .local_node = (const uint8_t *)"n1",
        .local_node_len = 2,
        .selection = EGRESS_SELECTION_CILIUM,
        .layout = EGRESS_LAYOUT_V4V2,
    };
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "config", egress_engine_new(NULL, &made, &error));
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "engine_out",
                   egress_engine_new(&config, NULL, &error));
    egress_engine_config bad = config;
    bad.local_node = NULL;
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "config.local_node",
                   egress_engine_new(&bad, &made, &error));
    bad = config;
    bad.cluster = NULL;
    bad.cluster_len = 3;
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "config.cluster",
                   egress_engine_new(&bad, &made, &error));

    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "text",
                   egress_engine_from_snapshot(NULL, 5, NULL, 0, EGRESS_SELECTION_CILIUM, &made,
                                               &error));
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "local_node", egress_engine_from_snapshot(text, snapshot_len, NULL, 3,
                                                          EGRESS_SELECTION_CILIUM, &made,
                                                          &error));
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "engine_out",
                   egress_engine_from_snapshot(text, snapshot_len, NULL, 0,
                                               EGRESS_SELECTION_CILIUM, NULL, &error));

    egress_engine_config snapshot_config = {.selection = EGRESS_SELECTION_CILIUM};
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "text",
                   egress_engine_from_snapshot_config(NULL, 5, &snapshot_config, &made, &error));
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "config",
                   egress_engine_from_snapshot_config(text, snapshot_len, NULL, &made, &error));
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "engine_out",
                   egress_engine_from_snapshot_config(text, snapshot_len, &snapshot_config, NULL,
                                                      &error));
    bad = snapshot_config;
    bad.local_node_len = 4;
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "config.local_node",
                   egress_engine_from_snapshot_config(text, snapshot_len, &bad, &made, &error));
    bad = snapshot_config;
    bad.cluster_len = 4;
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "config.cluster",
                   egress_engine_from_snapshot_config(text, snapshot_len, &bad, &made, &error));
    CHECK(made == NULL); /* no failed call handed out an engine */

    /* Events. */
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "engine",
                   egress_engine_upsert_policy(NULL, TEXT(POLICY_EXTRA), &error));
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "text",
                   egress_engine_upsert_policy(engine, NULL, 5, &error));
    bool found = true;
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "engine",
                   egress_engine_delete_policy(NULL, TEXT("egress-test"), &found, &error));
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "name",
                   egress_engine_delete_policy(engine, NULL, 11, &found, &error));
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "engine",
                   egress_engine_upsert_node(NULL, TEXT("{\"name\":\"n9\"}"), &error));
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "text",
                   egress_engine_upsert_node(engine, NULL, 5, &error));
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "engine",
                   egress_engine_delete_node(NULL, TEXT("172.22.48.48"), &found, &error));
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "name",
                   egress_engine_delete_node(engine, NULL, 12, &found, &error));
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "engine",
                   egress_engine_upsert_endpoint_json(NULL, TEXT("{\"uid\":\"u9\"}"), &error));
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "text",
                   egress_engine_upsert_endpoint_json(engine, NULL, 5, &error));
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "engine",
                   egress_engine_delete_endpoint(NULL, TEXT("u9"), &found, &error));
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "uid",
                   egress_engine_delete_endpoint(engine, NULL, 2, &found, &error));
    CHECK(found); /* untouched by the failed deletes */

    static const egress_label labels[] = {{TEXT("team"), TEXT("web")}};
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "engine",
                   egress_engine_upsert_namespace(NULL, TEXT("default"), labels, 1, &error));
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "name",
                   egress_engine_upsert_namespace(engine, NULL, 7, labels, 1, &error));
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "labels",
                   egress_engine_upsert_namespace(engine, TEXT("default"), NULL, 1, &error));
    egress_label null_key = {NULL, 4, TEXT("web")};
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "labels[0].key",
                   egress_engine_upsert_namespace(engine, TEXT("default"), &null_key, 1,
                                                  &error));
    egress_label null_value = {TEXT("team"), NULL, 3};
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "labels[0].value",
                   egress_engine_upsert_namespace(engine, TEXT("default"), &null_value, 1,
                                                  &error));
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "engine",
                   egress_engine_upsert_namespace_json(NULL, TEXT("{\"name\":\"x\"}"), &error));
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "text",
                   egress_engine_upsert_namespace_json(engine, NULL, 5, &error));
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "engine",
                   egress_engine_set_devices(NULL, TEXT("[]"), &error));
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "text",
                   egress_engine_set_devices(engine, NULL, 2, &error));

    /* The typed endpoint: the struct and each of its pointers. */
    const egress_ip_addr ip = {.family = EGRESS_FAMILY_IPV4, .bytes = {172, 22, 48, 99}};
    const egress_endpoint valid = {
        .uid = (const uint8_t *)"u9",
        .uid_len = 2,
        .namespace_name = (const uint8_t *)"default",
        .namespace_name_len = 7,
        .labels = labels,
        .labels_len = 1,
        .namespace_labels = labels,
        .namespace_labels_len = 1,
        .service_account = (const uint8_t *)"sa",
        .service_account_len = 2,
        .ips = &ip,
        .ips_len = 1,
        .node = (const uint8_t *)"172.22.48.48",
        .node_len = 12,
    };
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "engine",
                   egress_engine_upsert_endpoint(NULL, &valid, &error));
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "endpoint",
                   egress_engine_upsert_endpoint(engine, NULL, &error));
    egress_endpoint ep = valid;
    ep.uid = NULL;
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "endpoint.uid",
                   egress_engine_upsert_endpoint(engine, &ep, &error));
    ep = valid;
    ep.namespace_name = NULL;
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "endpoint.namespace_name",
                   egress_engine_upsert_endpoint(engine, &ep, &error));
    ep = valid;
    ep.labels = NULL;
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "endpoint.labels",
                   egress_engine_upsert_endpoint(engine, &ep, &error));
    ep = valid;
    ep.labels = &null_key;
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "endpoint.labels[0].key",
                   egress_engine_upsert_endpoint(engine, &ep, &error));
    ep = valid;
    ep.labels = &null_value;
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "endpoint.labels[0].value",
                   egress_engine_upsert_endpoint(engine, &ep, &error));
    ep = valid;
    ep.namespace_labels = NULL;
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "endpoint.namespace_labels",
                   egress_engine_upsert_endpoint(engine, &ep, &error));
    ep = valid;
    ep.namespace_labels = &null_key;
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "endpoint.namespace_labels[0].key",
                   egress_engine_upsert_endpoint(engine, &ep, &error));
    ep = valid;
    ep.service_account = NULL;
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "endpoint.service_account",
                   egress_engine_upsert_endpoint(engine, &ep, &error));
    ep = valid;
    ep.ips = NULL;
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "endpoint.ips",
                   egress_engine_upsert_endpoint(engine, &ep, &error));
    ep = valid;
    ep.node = NULL;
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "endpoint.node",
                   egress_engine_upsert_endpoint(engine, &ep, &error));

    /* Plans. */
    size_t count = 0;
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "engine",
                   egress_engine_take_plan(NULL, NULL, 0, &count, &error));
    egress_plan_op ops[16];
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "count_out",
                   egress_engine_take_plan(engine, ops, COUNT(ops), NULL, &error));
    /* ops NULL with room claimed for the whole plan (10 operations). */
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "ops", egress_engine_take_plan(engine, NULL, 1000, &count, &error));
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "engine", egress_engine_ack(NULL, 0, &error));
    egress_map_element element;
    memset(&element, 0, sizeof element);
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "engine",
                   egress_engine_adopt(NULL, &element, 1, &error));
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "elements",
                   egress_engine_adopt(engine, NULL, 1, &error));

    /* Queries with an error object. */
    size_t written = 0;
    uint8_t buf[1];
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "engine",
                   egress_engine_maps_json(NULL, buf, 1, &written, &error));
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "written_out",
                   egress_engine_maps_json(engine, buf, 1, NULL, &error));
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "buf",
                   egress_engine_maps_json(engine, NULL, 1 << 20, &written, &error));
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "engine",
                   egress_engine_conflicts_json(NULL, buf, 1, &written, &error));
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "written_out",
                   egress_engine_conflicts_json(engine, buf, 1, NULL, &error));
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "buf",
                   egress_engine_conflicts_json(engine, NULL, 1 << 20, &written, &error));
    const egress_ip_addr src = {.family = EGRESS_FAMILY_IPV4, .bytes = {172, 22, 48, 4}};
    const egress_ip_addr dst = {.family = EGRESS_FAMILY_IPV4, .bytes = {8, 8, 8, 8}};
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "engine",
                   egress_engine_explain_json(NULL, &src, &dst, buf, 1, &written, &error));
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "src",
                   egress_engine_explain_json(engine, NULL, &dst, buf, 1, &written, &error));
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "dst",
                   egress_engine_explain_json(engine, &src, NULL, buf, 1, &written, &error));
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "written_out",
                   egress_engine_explain_json(engine, &src, &dst, buf, 1, NULL, &error));
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "buf",
                   egress_engine_explain_json(engine, &src, &dst, NULL, 1 << 20, &written,
                                              &error));
    egress_entry entries[16];
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "engine",
                   egress_engine_entries(NULL, entries, COUNT(entries), &count, &error));
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "count_out",
                   egress_engine_entries(engine, entries, COUNT(entries), NULL, &error));
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "buf",
                   egress_engine_entries(engine, NULL, 1000, &count, &error));

    /* Lookups and stats: a result code only. */
    const uint8_t s4[4] = {172, 22, 48, 4}, d4[4] = {8, 8, 8, 8};
    const uint8_t s6[16] = {0xfd}, d6[16] = {0x20, 0x01};
    egress_verdict verdict;
    CHECK_EQ(egress_engine_lookup_v4(NULL, s4, d4, &verdict), EGRESS_RESULT_NULL_PARAMETER);
    CHECK_EQ(egress_engine_lookup_v4(engine, NULL, d4, &verdict), EGRESS_RESULT_NULL_PARAMETER);
    CHECK_EQ(egress_engine_lookup_v4(engine, s4, NULL, &verdict), EGRESS_RESULT_NULL_PARAMETER);
    CHECK_EQ(egress_engine_lookup_v4(engine, s4, d4, NULL), EGRESS_RESULT_NULL_PARAMETER);
    CHECK_EQ(egress_engine_lookup_v6(NULL, s6, d6, &verdict), EGRESS_RESULT_NULL_PARAMETER);
    CHECK_EQ(egress_engine_lookup_v6(engine, NULL, d6, &verdict), EGRESS_RESULT_NULL_PARAMETER);
    CHECK_EQ(egress_engine_lookup_v6(engine, s6, NULL, &verdict), EGRESS_RESULT_NULL_PARAMETER);
    CHECK_EQ(egress_engine_lookup_v6(engine, s6, d6, NULL), EGRESS_RESULT_NULL_PARAMETER);
    egress_query_v4 q4 = {{172, 22, 48, 4}, {8, 8, 8, 8}};
    egress_query_v6 q6;
    memset(&q6, 0, sizeof q6);
    CHECK_EQ(egress_engine_lookup_batch_v4(NULL, &q4, 1, &verdict), EGRESS_RESULT_NULL_PARAMETER);
    CHECK_EQ(egress_engine_lookup_batch_v4(engine, NULL, 1, &verdict),
             EGRESS_RESULT_NULL_PARAMETER);
    CHECK_EQ(egress_engine_lookup_batch_v4(engine, &q4, 1, NULL), EGRESS_RESULT_NULL_PARAMETER);
    CHECK_EQ(egress_engine_lookup_batch_v4(engine, NULL, 0, NULL), EGRESS_RESULT_OK);
    CHECK_EQ(egress_engine_lookup_batch_v6(NULL, &q6, 1, &verdict), EGRESS_RESULT_NULL_PARAMETER);
    CHECK_EQ(egress_engine_lookup_batch_v6(engine, NULL, 1, &verdict),
             EGRESS_RESULT_NULL_PARAMETER);
    CHECK_EQ(egress_engine_lookup_batch_v6(engine, &q6, 1, NULL), EGRESS_RESULT_NULL_PARAMETER);
    CHECK_EQ(egress_engine_lookup_batch_v6(engine, NULL, 0, NULL), EGRESS_RESULT_OK);
    egress_stats stats;
    CHECK_EQ(egress_engine_stats(NULL, &stats), EGRESS_RESULT_NULL_PARAMETER);
    CHECK_EQ(egress_engine_stats(engine, NULL), EGRESS_RESULT_NULL_PARAMETER);

    /* Optional outputs may be NULL. */
    CHECK_EQ(egress_engine_delete_policy(engine, TEXT("no-such-policy"), NULL, NULL),
             EGRESS_RESULT_OK);

    /* None of the failed calls changed the engine. */
    CHECK(maps_unchanged(engine, before));
    egress_stats stats_after = stats_of(engine);
    CHECK(memcmp(&stats_before, &stats_after, sizeof stats_after) == 0);
    free(before);
    free(snapshot);
    egress_engine_free(engine);
}

/* Text that is not UTF-8, in every text parameter and field. */
static void test_invalid_utf8(void)
{
    egress_engine *engine = load_seed();
    if (engine == NULL)
        return;
    char *before = maps_json(engine, NULL);
    egress_engine *made = NULL;

    EXPECT_FAILURE(EGRESS_RESULT_INVALID_UTF8, "text",
                   egress_engine_from_snapshot(BAD_UTF8, NULL, 0, EGRESS_SELECTION_CILIUM,
                                               &made, &error));
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_UTF8, "local_node", egress_engine_from_snapshot(TEXT(small_snapshot), BAD_UTF8,
                                                          EGRESS_SELECTION_CILIUM, &made,
                                                          &error));
    egress_engine_config config = {.local_node = bad_utf8, .local_node_len = sizeof bad_utf8};
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_UTF8, "config.local_node",
                   egress_engine_new(&config, &made, &error));
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_UTF8, "config.local_node",
                   egress_engine_from_snapshot_config(TEXT(small_snapshot), &config, &made,
                                                      &error));
    config = (egress_engine_config){.local_node = (const uint8_t *)"n1",
                                    .local_node_len = 2,
                                    .cluster = bad_utf8,
                                    .cluster_len = sizeof bad_utf8};
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_UTF8, "config.cluster",
                   egress_engine_new(&config, &made, &error));
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_UTF8, "config.cluster",
                   egress_engine_from_snapshot_config(TEXT(small_snapshot), &config, &made,
                                                      &error));
    CHECK(made == NULL);

    EXPECT_FAILURE(EGRESS_RESULT_INVALID_UTF8, "text",
                   egress_engine_upsert_policy(engine, BAD_UTF8, &error));
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_UTF8, "name",
                   egress_engine_delete_policy(engine, BAD_UTF8, NULL, &error));
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_UTF8, "text",
                   egress_engine_upsert_node(engine, BAD_UTF8, &error));
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_UTF8, "name",
                   egress_engine_delete_node(engine, BAD_UTF8, NULL, &error));
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_UTF8, "text",
                   egress_engine_upsert_endpoint_json(engine, BAD_UTF8, &error));
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_UTF8, "uid",
                   egress_engine_delete_endpoint(engine, BAD_UTF8, NULL, &error));
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_UTF8, "text",
                   egress_engine_upsert_namespace_json(engine, BAD_UTF8, &error));
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_UTF8, "text",
                   egress_engine_set_devices(engine, BAD_UTF8, &error));
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_UTF8, "name",
                   egress_engine_upsert_namespace(engine, BAD_UTF8, NULL, 0, &error));
    const egress_label bad_key = {BAD_UTF8, TEXT("web")};
    const egress_label bad_value = {TEXT("team"), BAD_UTF8};
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_UTF8, "labels[0].key",
                   egress_engine_upsert_namespace(engine, TEXT("default"), &bad_key, 1, &error));
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_UTF8, "labels[0].value",
                   egress_engine_upsert_namespace(engine, TEXT("default"), &bad_value, 1,
                                                  &error));

    static const egress_label labels[] = {{TEXT("app"), TEXT("nginx")}};
    const egress_ip_addr ip = {.family = EGRESS_FAMILY_IPV4, .bytes = {172, 22, 48, 99}};
    const egress_endpoint valid = {
        .uid = (const uint8_t *)"u9",
        .uid_len = 2,
        .namespace_name = (const uint8_t *)"default",
        .namespace_name_len = 7,
        .labels = labels,
        .labels_len = 1,
        .ips = &ip,
        .ips_len = 1,
    };
    egress_endpoint ep = valid;
    ep.uid = bad_utf8;
    ep.uid_len = sizeof bad_utf8;
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_UTF8, "endpoint.uid",
                   egress_engine_upsert_endpoint(engine, &ep, &error));
    ep = valid;
    ep.namespace_name = bad_utf8;
    ep.namespace_name_len = sizeof bad_utf8;
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_UTF8, "endpoint.namespace_name",
                   egress_engine_upsert_endpoint(engine, &ep, &error));
    ep = valid;
    ep.labels = &bad_key;
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_UTF8, "endpoint.labels[0].key",
                   egress_engine_upsert_endpoint(engine, &ep, &error));
    ep = valid;
    ep.labels = &bad_value;
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_UTF8, "endpoint.labels[0].value",
                   egress_engine_upsert_endpoint(engine, &ep, &error));
    ep = valid;
    ep.namespace_labels = &bad_value;
    ep.namespace_labels_len = 1;
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_UTF8, "endpoint.namespace_labels[0].value",
                   egress_engine_upsert_endpoint(engine, &ep, &error));
    ep = valid;
    ep.service_account = bad_utf8;
    ep.service_account_len = sizeof bad_utf8;
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_UTF8, "endpoint.service_account",
                   egress_engine_upsert_endpoint(engine, &ep, &error));
    ep = valid;
    ep.node = bad_utf8;
    ep.node_len = sizeof bad_utf8;
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_UTF8, "endpoint.node",
                   egress_engine_upsert_endpoint(engine, &ep, &error));

    CHECK(maps_unchanged(engine, before));
    free(before);
    egress_engine_free(engine);
}

/* uint32_t enum arguments and fields holding values the enums do not have. */
static void test_invalid_enums(void)
{
    egress_engine *engine = load_seed();
    if (engine == NULL)
        return;
    char *before = maps_json(engine, NULL);
    egress_engine *made = NULL;

    EXPECT_FAILURE(EGRESS_RESULT_INVALID_ENUM, "selection",
                   egress_engine_from_snapshot(TEXT(small_snapshot), NULL, 0, 7, &made, &error));
    egress_engine_config config = {.local_node = (const uint8_t *)"n1",
                                   .local_node_len = 2,
                                   .selection = 7};
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_ENUM, "config.selection",
                   egress_engine_new(&config, &made, &error));
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_ENUM, "config.selection",
                   egress_engine_from_snapshot_config(TEXT(small_snapshot), &config, &made,
                                                      &error));
    config.selection = EGRESS_SELECTION_CONSISTENT;
    config.layout = 9;
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_ENUM, "config.layout",
                   egress_engine_new(&config, &made, &error));
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_ENUM, "config.layout",
                   egress_engine_from_snapshot_config(TEXT(small_snapshot), &config, &made,
                                                      &error));
    config.layout = EGRESS_LAYOUT_VERSION;
    config.cilium_version = 3;
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_ENUM, "config.cilium_version",
                   egress_engine_new(&config, &made, &error));
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_ENUM, "config.cilium_version",
                   egress_engine_from_snapshot_config(TEXT(small_snapshot), &config, &made,
                                                      &error));
    CHECK(made == NULL);

    /* An address family 5: in a typed endpoint, in explain's addresses. */
    const egress_ip_addr ips[] = {
        {.family = EGRESS_FAMILY_IPV4, .bytes = {172, 22, 48, 99}},
        {.family = 5, .bytes = {172, 22, 48, 98}},
    };
    const egress_endpoint ep = {
        .uid = (const uint8_t *)"u9", .uid_len = 2, .ips = ips, .ips_len = 2};
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_ENUM, "endpoint.ips[1].family",
                   egress_engine_upsert_endpoint(engine, &ep, &error));
    uint8_t buf[64];
    size_t written = 0;
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_ENUM, "src.family",
                   egress_engine_explain_json(engine, &ips[1], &ips[0], buf, sizeof buf,
                                              &written, &error));
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_ENUM, "dst.family",
                   egress_engine_explain_json(engine, &ips[0], &ips[1], buf, sizeof buf,
                                              &written, &error));

    /* A map element of map 7 (no such map). */
    egress_map_element element;
    memset(&element, 0, sizeof element);
    element.map = 7;
    element.key_len = 12;
    element.value_len = 28;
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_ENUM, "elements[0].map",
                   egress_engine_adopt(engine, &element, 1, &error));

    CHECK(maps_unchanged(engine, before));
    free(before);
    egress_engine_free(engine);
}

static bool all_bytes(const void *buf, size_t len, uint8_t value)
{
    const uint8_t *bytes = buf;
    for (size_t i = 0; i < len; i++)
        if (bytes[i] != value)
            return false;
    return true;
}

#define CANARY 0xA5

typedef egress_result (*json_query)(const egress_engine *, uint8_t *, size_t, size_t *,
                                    egress_error **);

static egress_result explain_query(const egress_engine *engine, uint8_t *buf, size_t len,
                                   size_t *written_out, egress_error **error_out)
{
    const egress_ip_addr src = {.family = EGRESS_FAMILY_IPV4, .bytes = {172, 22, 48, 4}};
    const egress_ip_addr dst = {.family = EGRESS_FAMILY_IPV4, .bytes = {8, 8, 8, 8}};
    return egress_engine_explain_json(engine, &src, &dst, buf, len, written_out, error_out);
}

/* One byte short, then exactly the size, then one byte more, for a JSON query. */
static void check_json_sizes(const egress_engine *engine, json_query query, const char *name)
{
    size_t needed = 0;
    CHECK_EQ(query(engine, NULL, 0, &needed, NULL), EGRESS_RESULT_INSUFFICIENT_SIZE);
    if (!CHECK(needed > 1)) {
        fprintf(stderr, "    %s\n", name);
        return;
    }
    uint8_t *buf = malloc(needed + 1);
    if (!CHECK(buf != NULL))
        return;

    memset(buf, CANARY, needed + 1);
    size_t written = 0;
    EXPECT_TOO_SMALL(query(engine, buf, needed - 1, &written, &error));
    CHECK_EQ(written, needed);
    if (!CHECK(all_bytes(buf, needed + 1, CANARY)))
        fprintf(stderr, "    %s wrote into a short buffer\n", name);

    written = 0;
    CHECK_EQ(query(engine, buf, needed, &written, NULL), EGRESS_RESULT_OK);
    CHECK_EQ(written, needed);
    CHECK(buf[needed] == CANARY);                /* nothing past the document */
    CHECK(buf[0] == '{' || buf[0] == '[');       /* a JSON document, no NUL added */
    CHECK(memchr(buf, '\0', needed) == NULL);

    memset(buf, CANARY, needed + 1);
    CHECK_EQ(query(engine, buf, needed + 1, &written, NULL), EGRESS_RESULT_OK);
    CHECK_EQ(written, needed);
    CHECK(buf[needed] == CANARY);
    free(buf);
}

/* Buffers one short (INSUFFICIENT_SIZE, size reported, untouched) and exact (OK). */
static void test_buffer_sizes(void)
{
    egress_engine *engine = load_seed();
    if (engine == NULL)
        return;

    check_json_sizes(engine, egress_engine_maps_json, "maps_json");
    check_json_sizes(engine, egress_engine_conflicts_json, "conflicts_json");
    check_json_sizes(engine, explain_query, "explain_json");
    check_json_sizes(engine, egress_engine_diagnostics_json, "diagnostics_json");

    /* Entries: 10 in the seed. */
    size_t needed = 0;
    CHECK_EQ(egress_engine_entries(engine, NULL, 0, &needed, NULL),
             EGRESS_RESULT_INSUFFICIENT_SIZE);
    CHECK_EQ(needed, 10);
    egress_entry entries[11];
    memset(entries, CANARY, sizeof entries);
    size_t count = 0;
    EXPECT_TOO_SMALL(egress_engine_entries(engine, entries, needed - 1, &count, &error));
    CHECK_EQ(count, needed);
    CHECK(all_bytes(entries, sizeof entries, CANARY));
    count = 0;
    CHECK_EQ(egress_engine_entries(engine, entries, needed, &count, NULL), EGRESS_RESULT_OK);
    CHECK_EQ(count, needed);
    CHECK(all_bytes(&entries[needed], sizeof entries[0], CANARY));
    CHECK_EQ(entries[0].source.family, EGRESS_FAMILY_IPV4);
    CHECK(memcmp(entries[0].source.bytes, (const uint8_t[]){172, 22, 48, 4}, 4) == 0);
    CHECK_EQ(entries[0].destination_len, 0);

    /* The plan: 10 upserts on a fresh engine. */
    CHECK_EQ(egress_engine_take_plan(engine, NULL, 0, &needed, NULL),
             EGRESS_RESULT_INSUFFICIENT_SIZE);
    CHECK_EQ(needed, 10);
    egress_plan_op ops[11];
    memset(ops, CANARY, sizeof ops);
    count = 0;
    EXPECT_TOO_SMALL(egress_engine_take_plan(engine, ops, needed - 1, &count, &error));
    CHECK_EQ(count, needed);
    CHECK(all_bytes(ops, sizeof ops, CANARY));
    /* A short take takes nothing: no plan was taken before, so none to acknowledge. */
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_ARGUMENT, "plan", egress_engine_ack(engine, 1, &error));
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_ARGUMENT, "plan", egress_engine_ack(engine, 0, &error));
    count = 0;
    CHECK_EQ(egress_engine_take_plan(engine, ops, needed, &count, NULL), EGRESS_RESULT_OK);
    CHECK_EQ(count, needed);
    CHECK(all_bytes(&ops[needed], sizeof ops[0], CANARY));
    /* Cilium 1.18 (the conformance call's): the legacy IPv4 map, 8-byte values. */
    for (size_t i = 0; i < count; i++) {
        CHECK_EQ(ops[i].map, EGRESS_MAP_V4_LEGACY);
        CHECK_EQ(ops[i].action, EGRESS_ACTION_UPSERT);
        CHECK_EQ(ops[i].key_len, 12);
        CHECK_EQ(ops[i].value_len, 8);
    }
    CHECK_EQ(egress_engine_ack(engine, count, NULL), EGRESS_RESULT_OK);
    /* Nothing left: an empty plan fits in no buffer at all. */
    CHECK_EQ(egress_engine_take_plan(engine, NULL, 0, &count, NULL), EGRESS_RESULT_OK);
    CHECK_EQ(count, 0);
    egress_engine_free(engine);
}

static bool field_paths_contain(const egress_error *error, const char *path)
{
    for (size_t i = 0; i < egress_error_field_count(error); i++) {
        const char *p = egress_error_field_path(error, i);
        if (p != NULL && strcmp(p, path) == 0)
            return true;
    }
    return false;
}

/* An invalid policy: every field error reported, the previous version kept. */
static void test_policy_errors(void)
{
    egress_engine *engine = load_seed();
    if (engine == NULL)
        return;
    char *before = maps_json(engine, NULL);
    CHECK_EQ(stats_of(engine).policies, 1);

    egress_error *error = NULL;
    CHECK_EQ(egress_engine_upsert_policy(engine, TEXT(POLICY_INVALID), &error),
             EGRESS_RESULT_POLICY);
    CHECK(error != NULL);
    CHECK_EQ(egress_error_code(error), EGRESS_RESULT_POLICY);
    CHECK_STR(egress_error_policy(error), "egress-test");
    size_t fields = egress_error_field_count(error);
    if (!CHECK(fields >= 2))
        fprintf(stderr, "    message: %s\n", egress_error_message(error));
    for (size_t i = 0; i < fields; i++) {
        CHECK(egress_error_field_path(error, i) != NULL);
        CHECK(egress_error_field_reason(error, i) != NULL);
    }
    CHECK(egress_error_field_path(error, fields) == NULL);
    CHECK(egress_error_field_reason(error, fields) == NULL);
    CHECK_STR(egress_error_path(error), egress_error_field_path(error, 0));
    CHECK(field_paths_contain(error, "spec.destinationCIDRs[0]"));
    CHECK(field_paths_contain(error, "spec.destinationCIDRs[1]"));
    CHECK(field_paths_contain(error, "spec.egressGateway.nodeSelector"));
    CHECK(field_paths_contain(error, "spec.egressGateway.egressIP"));
    CHECK(field_paths_contain(error, "spec.bogus"));
    /* The message has a line per field error. */
    const char *message = egress_error_message(error);
    size_t lines = 1;
    for (const char *c = message; *c; c++)
        lines += *c == '\n' && c[1] != '\0';
    CHECK(lines >= fields);
    CHECK(strstr(message, "spec.destinationCIDRs[1]") != NULL);
    egress_error_free(error);

    /* The previous valid version stays in force. */
    CHECK(maps_unchanged(engine, before));
    CHECK_EQ(stats_of(engine).policies, 1);

    /* All or nothing: a List of a valid new policy and the invalid one applies neither. */
    static const char list[] = "{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":[" POLICY_EXTRA
                               "," POLICY_INVALID "]}";
    error = NULL;
    CHECK_EQ(egress_engine_upsert_policy(engine, TEXT(list), &error), EGRESS_RESULT_POLICY);
    CHECK_STR(egress_error_policy(error), "egress-test");
    egress_error_free(error);
    CHECK(maps_unchanged(engine, before));
    CHECK_EQ(stats_of(engine).policies, 1);

    /* The check above is not vacuous: a valid update does change the maps. */
    CHECK_EQ(egress_engine_upsert_policy(engine, TEXT(POLICY_UPDATED), NULL), EGRESS_RESULT_OK);
    CHECK(!maps_unchanged(engine, before));
    char *updated = maps_json(engine, NULL);
    CHECK(updated != NULL && strstr(updated, "\"destCIDR\": \"8.8.8.0/24\"") != NULL);

    /* ... and a later invalid update keeps that version. */
    CHECK_EQ(egress_engine_upsert_policy(engine, TEXT(POLICY_INVALID), NULL),
             EGRESS_RESULT_POLICY);
    CHECK(maps_unchanged(engine, updated));
    free(updated);
    free(before);
    egress_engine_free(engine);
}

/* Snapshots that cannot be loaded. */
static void test_snapshot_errors(void)
{
    size_t len = 0;
    char *seed = read_file(examples_dir, "seed-gateway-group.yaml", &len);
    if (!CHECK(seed != NULL))
        return;
    egress_engine *made = NULL;

    /* An unknown local node. */
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_ARGUMENT, "local_node",
                   egress_engine_from_snapshot((const uint8_t *)seed, len, TEXT("no-such-node"),
                                               EGRESS_SELECTION_CILIUM, &made, &error));
    egress_engine_config config = {.local_node = (const uint8_t *)"no-such-node",
                                   .local_node_len = 12};
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_ARGUMENT, NULL,
                   egress_engine_from_snapshot_config((const uint8_t *)seed, len, &config, &made,
                                                      &error));
    /* Another node of the snapshot is fine. */
    CHECK_EQ(egress_engine_from_snapshot((const uint8_t *)seed, len, TEXT("172.22.49.147"),
                                         EGRESS_SELECTION_CONSISTENT, &made, NULL),
             EGRESS_RESULT_OK);
    CHECK(made != NULL);
    if (made != NULL)
        CHECK_EQ(stats_of(made).max_entries, 16384); /* Cilium's default */
    egress_engine_free(made);
    made = NULL;

    /* The snapshot's own localNode not among its nodes is an input error of the snapshot. */
    EXPECT_FAILURE(EGRESS_RESULT_INPUT, "localNode",
                   egress_engine_from_snapshot(
                       TEXT("{\"localNode\":\"nope\",\"nodes\":[{\"name\":\"n1\"}]}"), NULL, 0,
                       EGRESS_SELECTION_CILIUM, &made, &error));

    /* Unparsable text; no text at all. */
    EXPECT_FAILURE(EGRESS_RESULT_PARSE, NULL,
                   egress_engine_from_snapshot(NULL, 0, NULL, 0, EGRESS_SELECTION_CILIUM, &made,
                                               &error));
    EXPECT_FAILURE(EGRESS_RESULT_PARSE, NULL,
                   egress_engine_from_snapshot(TEXT("localNode: [unclosed\n"), NULL, 0,
                                               EGRESS_SELECTION_CILIUM, &made, &error));
    EXPECT_FAILURE(EGRESS_RESULT_PARSE, NULL,
                   egress_engine_from_snapshot(TEXT("{\"localNode\": \"n1\", "), NULL, 0,
                                               EGRESS_SELECTION_CILIUM, &made, &error));

    /* Input errors, each naming its path. */
    EXPECT_FAILURE(EGRESS_RESULT_INPUT, "endpoints[0].ips[0]",
                   egress_engine_from_snapshot(
                       TEXT("{\"localNode\":\"n1\",\"nodes\":[{\"name\":\"n1\"}],"
                            "\"endpoints\":[{\"uid\":\"u1\",\"ips\":[\"not-an-ip\"]}]}"),
                       NULL, 0, EGRESS_SELECTION_CILIUM, &made, &error));
    EXPECT_FAILURE(EGRESS_RESULT_INPUT, "nodes[1].name",
                   egress_engine_from_snapshot(TEXT("{\"localNode\":\"n1\",\"nodes\":"
                                                    "[{\"name\":\"n1\"},{\"name\":\"n1\"}]}"),
                                               NULL, 0, EGRESS_SELECTION_CILIUM, &made, &error));
    EXPECT_FAILURE(EGRESS_RESULT_INPUT, "bogus",
                   egress_engine_from_snapshot(
                       TEXT("{\"localNode\":\"n1\",\"nodes\":[{\"name\":\"n1\"}],\"bogus\":1}"),
                       NULL, 0, EGRESS_SELECTION_CILIUM, &made, &error));
    CHECK(made == NULL);

    /* An invalid policy is not a loading error: it is left out of the maps, as `list` does. */
    static const char with_invalid[] =
        "{\"localNode\":\"n1\",\"nodes\":[{\"name\":\"n1\",\"ipv4\":\"10.0.0.1\","
        "\"labels\":{\"kubernetes.io/hostname\":\"n1\"}}],"
        "\"endpoints\":[{\"uid\":\"u1\",\"labels\":{\"app\":\"nginx\"},\"ips\":[\"10.1.0.1\"]}],"
        "\"policies\":[" POLICY_INVALID "]}";
    egress_error *error = NULL;
    CHECK_EQ(egress_engine_from_snapshot(TEXT(with_invalid), NULL, 0, EGRESS_SELECTION_CILIUM,
                                         &made, &error),
             EGRESS_RESULT_OK);
    CHECK(error == NULL);
    if (made != NULL) {
        char *json = maps_json(made, NULL);
        CHECK_STR(json, "{\n \"ipv4\": [],\n \"ipv6\": []\n}\n");
        CHECK_EQ(stats_of(made).policies, 0);
        free(json);
        egress_engine_free(made);
    }
    free(seed);
}

/* Events whose input is refused: nothing changes. */
static void test_event_errors(void)
{
    egress_engine *engine = load_seed();
    if (engine == NULL)
        return;
    char *before = maps_json(engine, NULL);
    egress_stats stats_before = stats_of(engine);

    /* An engine needs its local node. */
    egress_engine *made = NULL;
    egress_engine_config config = {.selection = EGRESS_SELECTION_CILIUM};
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_ARGUMENT, "config.local_node",
                   egress_engine_new(&config, &made, &error));
    CHECK(made == NULL);

    EXPECT_FAILURE(EGRESS_RESULT_PARSE, NULL,
                   egress_engine_upsert_node(engine, TEXT("{\"name\": ["), &error));
    EXPECT_FAILURE(EGRESS_RESULT_INPUT, "ipv4",
                   egress_engine_upsert_node(engine, TEXT("{\"name\":\"n9\",\"ipv4\":\"bogus\"}"),
                                             &error));
    EXPECT_FAILURE(EGRESS_RESULT_INPUT, "ips[0]",
                   egress_engine_upsert_endpoint_json(
                       engine, TEXT("{\"uid\":\"u9\",\"ips\":[\"bogus\"]}"), &error));
    EXPECT_FAILURE(EGRESS_RESULT_INPUT, "interfaces[0].addresses[0]",
                   egress_engine_set_devices(engine,
                                             TEXT("[{\"name\":\"eth9\",\"index\":9,"
                                                  "\"addresses\":[\"10.0.0.1\"]}]"),
                                             &error));
    EXPECT_FAILURE(EGRESS_RESULT_PARSE, NULL,
                   egress_engine_upsert_namespace_json(engine, TEXT("{\"name\": "), &error));
    EXPECT_FAILURE(EGRESS_RESULT_PARSE, NULL,
                   egress_engine_upsert_policy(engine, TEXT("kind: [unclosed"), &error));

    /* The typed endpoint: a required uid, labels without duplicate keys. */
    static const egress_label twice[] = {{TEXT("app"), TEXT("nginx")}, {TEXT("app"), TEXT("db")}};
    const egress_ip_addr ip = {.family = EGRESS_FAMILY_IPV4, .bytes = {172, 22, 48, 99}};
    const egress_endpoint no_uid = {.uid = NULL, .uid_len = 0, .ips = &ip, .ips_len = 1};
    EXPECT_FAILURE(EGRESS_RESULT_INPUT, "endpoint.uid",
                   egress_engine_upsert_endpoint(engine, &no_uid, &error));
    const egress_endpoint duplicate = {
        .uid = (const uint8_t *)"u9", .uid_len = 2, .labels = twice, .labels_len = 2};
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_ARGUMENT, "endpoint.labels[1].key",
                   egress_engine_upsert_endpoint(engine, &duplicate, &error));
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_ARGUMENT, "labels[1].key",
                   egress_engine_upsert_namespace(engine, TEXT("default"), twice, 2, &error));

    /* Deleting what does not exist is not an error. */
    bool found = true;
    CHECK_EQ(egress_engine_delete_endpoint(engine, TEXT("no-such-uid"), &found, NULL),
             EGRESS_RESULT_OK);
    CHECK(!found);
    found = true;
    CHECK_EQ(egress_engine_delete_node(engine, TEXT("no-such-node"), &found, NULL),
             EGRESS_RESULT_OK);
    CHECK(!found);
    found = true;
    CHECK_EQ(egress_engine_delete_policy(engine, TEXT("no-such-policy"), &found, NULL),
             EGRESS_RESULT_OK);
    CHECK(!found);

    CHECK(maps_unchanged(engine, before));
    egress_stats stats_after = stats_of(engine);
    CHECK(memcmp(&stats_before, &stats_after, sizeof stats_after) == 0);
    free(before);
    egress_engine_free(engine);
}

/* Acknowledging past the plan, without a plan; a plan over capacity. */
static void test_plan_errors(void)
{
    egress_engine *engine = load_seed();
    if (engine == NULL)
        return;
    egress_plan_op ops[16];
    size_t count = 0;

    /* No plan taken: nothing to acknowledge, not even 0 operations (SEMANTICS B.8). */
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_ARGUMENT, "plan", egress_engine_ack(engine, 1, &error));
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_ARGUMENT, "plan", egress_engine_ack(engine, 0, &error));
    egress_plan_id none = {0};
    CHECK_EQ(egress_engine_plan_id(engine, &none, NULL), EGRESS_RESULT_OK);
    CHECK(none.engine != 0);
    CHECK_EQ(none.sequence, 0);

    CHECK_EQ(egress_engine_take_plan(engine, ops, COUNT(ops), &count, NULL), EGRESS_RESULT_OK);
    CHECK_EQ(count, 10);
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_ARGUMENT, "applied",
                   egress_engine_ack(engine, count + 1, &error));
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_ARGUMENT, "applied",
                   egress_engine_ack(engine, SIZE_MAX, &error));
    /* The refused ack kept the plan: a partial ack works, the rest comes back. */
    CHECK_EQ(egress_engine_ack(engine, 4, NULL), EGRESS_RESULT_OK);
    CHECK_EQ(stats_of(engine).programmed_v4, 4);
    /* That plan is used up: acknowledged once. */
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_ARGUMENT, "plan", egress_engine_ack(engine, 1, &error));
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_ARGUMENT, "plan", egress_engine_ack(engine, 0, &error));
    CHECK_EQ(egress_engine_take_plan(engine, ops, COUNT(ops), &count, NULL), EGRESS_RESULT_OK);
    CHECK_EQ(count, 6);
    /* By id: an older plan, or another engine's, is refused; the last one is acknowledged. */
    egress_plan_id last = {0};
    CHECK_EQ(egress_engine_plan_id(engine, &last, NULL), EGRESS_RESULT_OK);
    CHECK_EQ(last.sequence, 2);
    egress_plan_id older = last, foreign = last;
    older.sequence = 1;
    foreign.engine += 1000;
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_ARGUMENT, "plan",
                   egress_engine_ack_plan(engine, older, 0, &error));
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_ARGUMENT, "plan",
                   egress_engine_ack_plan(engine, foreign, 0, &error));
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_ARGUMENT, "applied",
                   egress_engine_ack_plan(engine, last, count + 1, &error));
    CHECK_EQ(egress_engine_ack_plan(engine, last, count, NULL), EGRESS_RESULT_OK);
    CHECK_EQ(egress_engine_take_plan(engine, ops, COUNT(ops), &count, NULL), EGRESS_RESULT_OK);
    CHECK_EQ(count, 0);
    egress_engine_free(engine);

    /* A plan over max_entries is refused and hands nothing out. */
    size_t len = 0;
    char *seed = read_file(examples_dir, "seed-gateway-group.yaml", &len);
    if (!CHECK(seed != NULL))
        return;
    egress_engine_config config = {.selection = EGRESS_SELECTION_CILIUM,
                                   .layout = EGRESS_LAYOUT_V4V2,
                                   .max_entries = 5};
    engine = NULL;
    CHECK_EQ(egress_engine_from_snapshot_config((const uint8_t *)seed, len, &config, &engine,
                                                NULL),
             EGRESS_RESULT_OK);
    free(seed);
    if (engine == NULL)
        return;
    CHECK_EQ(stats_of(engine).max_entries, 5);
    CHECK_EQ(stats_of(engine).desired_v4, 10);
    memset(ops, CANARY, sizeof ops);
    EXPECT_FAILURE(EGRESS_RESULT_CAPACITY, NULL,
                   egress_engine_take_plan(engine, ops, COUNT(ops), &count, &error));
    CHECK(all_bytes(ops, sizeof ops, CANARY));
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_ARGUMENT, "plan", egress_engine_ack(engine, 1, &error));
    egress_engine_free(engine);
}

/* Adopting elements that do not fit the engine's maps; nothing is adopted then. */
static void test_adopt_errors(void)
{
    egress_engine *engine = load_seed();
    if (engine == NULL)
        return;
    egress_plan_op ops[16];
    size_t count = 0;
    CHECK_EQ(egress_engine_take_plan(engine, ops, COUNT(ops), &count, NULL), EGRESS_RESULT_OK);
    CHECK_EQ(count, 10);

    /* What the kernel would hold after the plan: its upserts as map elements. */
    egress_map_element elements[16];
    memset(elements, 0, sizeof elements);
    for (size_t i = 0; i < count && i < COUNT(elements); i++) {
        elements[i].map = ops[i].map;
        elements[i].key_len = ops[i].key_len;
        elements[i].value_len = ops[i].value_len;
        memcpy(elements[i].key, ops[i].key, sizeof elements[i].key);
        memcpy(elements[i].value, ops[i].value, sizeof elements[i].value);
    }
    egress_map_element wrong[2] = {elements[0], elements[1]};

    wrong[1].key_len = 11;
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_ARGUMENT, "elements[1]",
                   egress_engine_adopt(engine, wrong, 2, &error));
    wrong[1] = elements[1];
    wrong[1].value_len = 28; /* the seed's engine is Cilium 1.18's: legacy, 8-byte values */
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_ARGUMENT, "elements[1]",
                   egress_engine_adopt(engine, wrong, 2, &error));
    wrong[1] = elements[1];
    wrong[1].key_len = EGRESS_MAX_KEY_SIZE + 1; /* past the array: refused, never read */
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_ARGUMENT, "elements[1]",
                   egress_engine_adopt(engine, wrong, 2, &error));
    wrong[1] = elements[1];
    wrong[1].map = EGRESS_MAP_V4; /* not a map of Cilium 1.18's layout */
    wrong[1].value_len = 28;
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_ARGUMENT, "elements[1].map",
                   egress_engine_adopt(engine, wrong, 2, &error));
    wrong[1] = elements[1];
    wrong[1].map = 7;
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_ENUM, "elements[1].map",
                   egress_engine_adopt(engine, wrong, 2, &error));
    /* Bytes that are no entry: an LPM prefix length shorter than the source address. */
    wrong[1] = elements[1];
    wrong[1].key[0] = 16;
    EXPECT_FAILURE(EGRESS_RESULT_DECODE, NULL, egress_engine_adopt(engine, wrong, 2, &error));
    CHECK_EQ(stats_of(engine).programmed_v4, 0); /* nothing adopted */

    /* The refused adopts left the taken plan alone; acknowledge nothing of it. */
    CHECK_EQ(egress_engine_ack(engine, 0, NULL), EGRESS_RESULT_OK);

    /* Adopting what the maps hold makes the plan empty (no flush, no rewrite). */
    CHECK_EQ(egress_engine_adopt(engine, elements, count, NULL), EGRESS_RESULT_OK);
    CHECK_EQ(stats_of(engine).programmed_v4, 10);
    CHECK_EQ(egress_engine_take_plan(engine, ops, COUNT(ops), &count, NULL), EGRESS_RESULT_OK);
    CHECK_EQ(count, 0);
    /* Adopting nothing (an empty dump) makes every entry pending again. */
    CHECK_EQ(egress_engine_adopt(engine, NULL, 0, NULL), EGRESS_RESULT_OK);
    CHECK_EQ(egress_engine_take_plan(engine, ops, COUNT(ops), &count, NULL), EGRESS_RESULT_OK);
    CHECK_EQ(count, 10);
    egress_engine_free(engine);
}

/* error_out is optional; on success it is set to NULL. */
static void test_error_out(void)
{
    egress_engine *made = NULL;
    CHECK_EQ(egress_engine_from_snapshot(TEXT("{"), NULL, 0, EGRESS_SELECTION_CILIUM, &made,
                                         NULL),
             EGRESS_RESULT_PARSE);
    CHECK_EQ(egress_engine_upsert_policy(NULL, TEXT("x"), NULL), EGRESS_RESULT_NULL_PARAMETER);
    CHECK(made == NULL);

    /* A stale pointer in *error_out is overwritten with NULL on success (never freed). */
    egress_error *error = (egress_error *)(uintptr_t)0x1;
    CHECK_EQ(egress_engine_from_snapshot(TEXT(small_snapshot), NULL, 0, EGRESS_SELECTION_CILIUM,
                                         &made, &error),
             EGRESS_RESULT_OK);
    CHECK(error == NULL);
    CHECK(made != NULL);
    error = (egress_error *)(uintptr_t)0x1;
    CHECK_EQ(egress_engine_delete_policy(made, TEXT("none"), NULL, &error), EGRESS_RESULT_OK);
    CHECK(error == NULL);

    /* Error objects are independent: two at once, freed in any order. */
    egress_error *first = NULL, *second = NULL;
    CHECK_EQ(egress_engine_ack(made, 1, &first), EGRESS_RESULT_INVALID_ARGUMENT);
    CHECK_EQ(egress_engine_upsert_node(made, TEXT("["), &second), EGRESS_RESULT_PARSE);
    CHECK(first != NULL && second != NULL && first != second);
    egress_error_free(first);
    CHECK_EQ(egress_error_code(second), EGRESS_RESULT_PARSE);
    egress_error_free(second);
    egress_engine_free(made);
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool ends_with(const char *text, const char *suffix)
{
    size_t n = strlen(text), m = strlen(suffix);
    return n >= m && strcmp(text + n - m, suffix) == 0;
}

/* The library's maps JSON against an expected file, byte for byte. */
static void compare_with_file(const char *snapshot, uint32_t selection, const char *expected_name,
                              bool required)
{
    size_t expected_len = 0;
    char *expected = read_file(examples_dir, expected_name, &expected_len);
    if (expected == NULL) {
        if (required)
            CHECK(expected != NULL);
        return;
    }
    egress_engine *engine = load_example(snapshot, selection);
    size_t len = 0;
    char *json = engine ? maps_json(engine, &len) : NULL;
    if (json != NULL) {
        bool same = len == expected_len && memcmp(json, expected, len) == 0;
        if (!CHECK(same)) {
            bool newline_only = (len + 1 == expected_len && expected[len] == '\n' &&
                                 memcmp(json, expected, len) == 0) ||
                                (expected_len + 1 == len && json[expected_len] == '\n' &&
                                 memcmp(json, expected, expected_len) == 0);
            fprintf(stderr, "    %s (selection %u) vs %s: %zu bytes from the library, %zu in the "
                    "file%s\n",
                    snapshot, (unsigned)selection, expected_name, len, expected_len,
                    newline_only ? ": they differ only by a trailing newline" : "");
        }
    }
    free(json);
    free(expected);
    egress_engine_free(engine);
}

/* Every example snapshot's maps JSON equals its expected file(s). */
/* Kubernetes objects applied as updates: counts out, invalid policies and skipped objects
 * in the diagnostics (not an error); any other input error applies nothing. */
static void test_apply(void)
{
    const egress_engine_config config = {.local_node = (const uint8_t *)"172.22.49.119",
                                         .local_node_len = 13};
    egress_engine *engine = NULL;
    if (!CHECK_EQ(egress_engine_new(&config, &engine, NULL), EGRESS_RESULT_OK))
        return;
    size_t len = 0;
    char *dump = read_file(examples_dir, "dumps/tke-dump.yaml", &len);
    if (!CHECK(dump != NULL)) {
        egress_engine_free(engine);
        return;
    }
    egress_applied applied;
    memset(&applied, 0xAB, sizeof applied);
    CHECK_EQ(egress_engine_apply(engine, (const uint8_t *)dump, len, &applied, NULL),
             EGRESS_RESULT_OK);
    free(dump);
    CHECK_EQ(applied.policies, 1);
    CHECK_EQ(applied.nodes, 5);
    CHECK_EQ(applied.invalid_policies, 0);
    CHECK_EQ(applied.skipped, 1); /* the endpoint without identity labels */
    CHECK(applied.endpoints > 0 && applied.namespaces > 0);
    egress_stats stats;
    CHECK_EQ(egress_engine_stats(engine, &stats), EGRESS_RESULT_OK);
    CHECK(stats.desired_v4 > 0);

    /* An invalid policy: not an error, counted, its errors in the diagnostics. */
    CHECK_EQ(egress_engine_apply(engine, TEXT("{apiVersion: cilium.io/v2, kind: CiliumEgressGatewayPolicy, "
                                              "metadata: {name: broken}, spec: {selectors: [], "
                                              "destinationCIDRs: []}}"),
                                 &applied, NULL),
             EGRESS_RESULT_OK);
    CHECK_EQ(applied.invalid_policies, 1);
    CHECK_EQ(applied.policies, 0);
    char diagnostics[4096];
    size_t written = 0;
    CHECK_EQ(egress_engine_diagnostics_json(engine, (uint8_t *)diagnostics, sizeof diagnostics - 1,
                                            &written, NULL),
             EGRESS_RESULT_OK);
    diagnostics[written] = '\0';
    CHECK(strstr(diagnostics, "\"policy\": \"broken\"") != NULL);
    CHECK(strstr(diagnostics, "no status.identity labels: endpoint skipped") != NULL);

    /* Other input errors apply nothing. */
    EXPECT_FAILURE(EGRESS_RESULT_PARSE, NULL,
                   egress_engine_apply(engine, TEXT("kind: [unclosed"), &applied, &error));
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "text",
                   egress_engine_apply(engine, NULL, 3, NULL, &error));
    egress_stats after;
    CHECK_EQ(egress_engine_stats(engine, &after), EGRESS_RESULT_OK);
    CHECK_EQ(after.desired_v4, stats.desired_v4);
    egress_engine_free(engine);
}

static void test_maps_json_conformance(void)
{
    DIR *dir = opendir(examples_dir);
    if (!CHECK(dir != NULL))
        return;
    char *names[256];
    size_t n = 0;
    for (struct dirent *e; (e = readdir(dir)) != NULL;)
        if (ends_with(e->d_name, ".yaml") && n < COUNT(names))
            names[n++] = strdup(e->d_name);
    closedir(dir);
    qsort(names, n, sizeof names[0], compare_names);
    CHECK(n >= 5); /* the shared examples are there */

    for (size_t i = 0; i < n; i++) {
        char stem[512], expected[600];
        size_t len = strlen(names[i]) - strlen(".yaml");
        if (len >= sizeof stem)
            len = sizeof stem - 1;
        memcpy(stem, names[i], len);
        stem[len] = '\0';
        snprintf(expected, sizeof expected, "%s.expected.json", stem);
        compare_with_file(names[i], EGRESS_SELECTION_CILIUM, expected, true);
        snprintf(expected, sizeof expected, "%s.consistent.expected.json", stem);
        compare_with_file(names[i], EGRESS_SELECTION_CONSISTENT, expected, false);
        free(names[i]);
    }
}

/* ---- concurrency ------------------------------------------------------------------------ */

#define THREADS 4
#define ROUNDS 40
#define MAX_QUERIES 512

struct lookup_work {
    const egress_engine *engine;
    const egress_query_v4 *queries;
    const egress_verdict *expected;
    size_t count;
    const egress_query_v6 *queries6;
    const egress_verdict *expected6;
    size_t count6;
    size_t mismatches; /* written by its thread only */
    size_t lookups;
};

static bool same_verdict(const egress_verdict *a, const egress_verdict *b)
{
    return a->kind == b->kind && memcmp(a->gateway_ip, b->gateway_ip, 4) == 0 &&
           memcmp(a->egress_ip, b->egress_ip, 16) == 0 && a->ifindex == b->ifindex;
}

static void *lookup_thread(void *arg)
{
    struct lookup_work *work = arg;
    egress_verdict batch[MAX_QUERIES];
    for (int round = 0; round < ROUNDS; round++) {
        /* Single lookups, in an order that differs per round. */
        for (size_t k = 0; k < work->count; k++) {
            size_t i = (k * 7 + (size_t)round) % work->count;
            egress_verdict v;
            if (egress_engine_lookup_v4(work->engine, work->queries[i].src,
                                        work->queries[i].dst, &v) != EGRESS_RESULT_OK ||
                !same_verdict(&v, &work->expected[i]))
                work->mismatches++;
            work->lookups++;
        }
        /* The whole set as one batch. */
        memset(batch, 0, sizeof batch);
        if (egress_engine_lookup_batch_v4(work->engine, work->queries, work->count, batch) !=
            EGRESS_RESULT_OK)
            work->mismatches++;
        for (size_t i = 0; i < work->count; i++)
            work->mismatches += !same_verdict(&batch[i], &work->expected[i]);
        work->lookups += work->count;
        if (work->count6 > 0) {
            if (egress_engine_lookup_batch_v6(work->engine, work->queries6, work->count6,
                                              batch) != EGRESS_RESULT_OK)
                work->mismatches++;
            for (size_t i = 0; i < work->count6; i++)
                work->mismatches += !same_verdict(&batch[i], &work->expected6[i]);
            work->lookups += work->count6;
        }
    }
    return NULL;
}

/* Several threads look up on one const engine; every verdict equals the one-thread answer. */
static void test_concurrent_lookups(void)
{
    egress_engine *engine = load_example("dual-stack-excluded.yaml", EGRESS_SELECTION_CILIUM);
    if (engine == NULL)
        return;
    size_t n = 0;
    CHECK_EQ(egress_engine_entries(engine, NULL, 0, &n, NULL), EGRESS_RESULT_INSUFFICIENT_SIZE);
    egress_entry *entries = calloc(n ? n : 1, sizeof *entries);
    if (!CHECK(entries != NULL))
        return;
    CHECK_EQ(egress_engine_entries(engine, entries, n, &n, NULL), EGRESS_RESULT_OK);

    /*
     * Queries: every source against destinations that hit each kind of entry (each entry's
     * own destination, just past it, 8.8.8.8), after sources with no entry at all.
     */
    static egress_query_v4 queries[MAX_QUERIES];
    static egress_verdict expected[MAX_QUERIES];
    static egress_query_v6 queries6[MAX_QUERIES];
    static egress_verdict expected6[MAX_QUERIES];
    static const egress_query_v4 strangers[] = {
        {{10, 99, 99, 99}, {8, 8, 8, 8}}, {{172, 22, 48, 250}, {1, 1, 1, 1}},
        {{0, 0, 0, 0}, {0, 0, 0, 0}},     {{255, 255, 255, 255}, {255, 255, 255, 255}}};
    size_t count = 0, count6 = 0;
    for (size_t i = 0; i < COUNT(strangers); i++)
        queries[count++] = strangers[i];
    for (size_t i = 0; i < n; i++) {
        /* Entries are sorted by source: each source once. */
        const egress_ip_addr *source = &entries[i].source;
        if (i > 0 && memcmp(source, &entries[i - 1].source, sizeof *source) == 0)
            continue;
        for (size_t j = 0; j < n; j++) {
            const egress_entry *s = &entries[i], *d = &entries[j];
            if (s->source.family != d->destination.family)
                continue;
            for (int variant = 0; variant < 3; variant++) {
                uint8_t dst[16];
                memcpy(dst, d->destination.bytes, 16);
                if (variant == 1)
                    dst[s->source.family == EGRESS_FAMILY_IPV4 ? 3 : 15] ^= 1;
                if (variant == 2) {
                    memset(dst, 0, 16);
                    dst[0] = dst[1] = dst[2] = dst[3] = 8;
                }
                if (s->source.family == EGRESS_FAMILY_IPV4 && count < MAX_QUERIES) {
                    memcpy(queries[count].src, s->source.bytes, 4);
                    memcpy(queries[count].dst, dst, 4);
                    count++;
                } else if (s->source.family == EGRESS_FAMILY_IPV6 && count6 < MAX_QUERIES) {
                    memcpy(queries6[count6].src, s->source.bytes, 16);
                    memcpy(queries6[count6].dst, dst, 16);
                    count6++;
                }
            }
        }
    }
    free(entries);

    /* The one-thread answers; the batch agrees with single lookups. */
    size_t kinds[6] = {0};
    for (size_t i = 0; i < count; i++) {
        CHECK_EQ(egress_engine_lookup_v4(engine, queries[i].src, queries[i].dst, &expected[i]),
                 EGRESS_RESULT_OK);
        if (expected[i].kind < 6)
            kinds[expected[i].kind]++;
    }
    for (size_t i = 0; i < count6; i++) {
        CHECK_EQ(egress_engine_lookup_v6(engine, queries6[i].src, queries6[i].dst, &expected6[i]),
                 EGRESS_RESULT_OK);
        if (expected6[i].kind < 6)
            kinds[expected6[i].kind]++;
    }
    static egress_verdict batch[MAX_QUERIES];
    CHECK_EQ(egress_engine_lookup_batch_v4(engine, queries, count, batch), EGRESS_RESULT_OK);
    size_t differ = 0;
    for (size_t i = 0; i < count; i++)
        differ += !same_verdict(&batch[i], &expected[i]);
    CHECK_EQ(differ, 0);
    /* The queries cover several verdict kinds, not just "no entry". */
    CHECK(kinds[EGRESS_VERDICT_KIND_NO_ENTRY] > 0);
    CHECK(kinds[EGRESS_VERDICT_KIND_MASQUERADE] > 0);
    CHECK(kinds[EGRESS_VERDICT_KIND_EXCLUDED] > 0);
    CHECK(count6 > 0);
    CHECK(count < MAX_QUERIES && count6 < MAX_QUERIES); /* none left out */

    const egress_engine *shared = engine; /* the threads get the const engine only */
    struct lookup_work work[THREADS];
    pthread_t threads[THREADS];
    size_t started = 0;
    for (size_t t = 0; t < THREADS; t++) {
        work[t] = (struct lookup_work){shared, queries, expected, count, queries6, expected6,
                                       count6, 0, 0};
        if (CHECK(pthread_create(&threads[t], NULL, lookup_thread, &work[t]) == 0))
            started++;
    }
    size_t mismatches = 0, lookups = 0;
    for (size_t t = 0; t < started; t++) {
        CHECK(pthread_join(threads[t], NULL) == 0);
        mismatches += work[t].mismatches;
        lookups += work[t].lookups;
    }
    CHECK_EQ(mismatches, 0);
    CHECK_EQ(lookups, (size_t)THREADS * ROUNDS * (2 * count + count6));
    egress_engine_free(engine);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s EXAMPLES_DIR\n", argv[0]);
        return 2;
    }
    examples_dir = argv[1];

    static const struct {
        const char *name;
        void (*run)(void);
    } groups[] = {
        {"version", test_version},
        {"null frees and accessors", test_null_frees_and_accessors},
        {"null parameters", test_null_parameters},
        {"invalid utf-8", test_invalid_utf8},
        {"invalid enums", test_invalid_enums},
        {"buffer sizes", test_buffer_sizes},
        {"policy errors", test_policy_errors},
        {"snapshot errors", test_snapshot_errors},
        {"event errors", test_event_errors},
        {"plan errors", test_plan_errors},
        {"adopt errors", test_adopt_errors},
        {"optional error_out", test_error_out},
        {"apply", test_apply},
        {"maps json conformance", test_maps_json_conformance},
        {"concurrent lookups", test_concurrent_lookups},
    };
    size_t failed = 0;
    for (size_t i = 0; i < COUNT(groups); i++)
        failed += !run_group(groups[i].name, groups[i].run);
    if (failed > 0) {
        printf("%zu of %zu groups failed\n", failed, COUNT(groups));
        return 1;
    }
    printf("all %zu groups passed\n", COUNT(groups));
    return 0;
}
