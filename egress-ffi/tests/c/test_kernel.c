/*
 * test_kernel.c — the kernel calls of the C ABI (library built with `--features bpf`):
 * open/create Cilium's pinned maps in a bpffs directory, program an engine's plan into them,
 * dump them, adopt them after a restart — and every error path of those calls.
 *
 * Usage: test_kernel BPFFS_DIR EXAMPLES_DIR. BPFFS_DIR must be an empty directory on a
 * mounted bpffs (scripts/test-c.sh mounts a private one); the test creates maps in it.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef EGRESS_FEATURE_BPF
#define EGRESS_FEATURE_BPF
#endif
#include "egress_gateway.h"

#include "check.h"

#define COUNT(array) (sizeof(array) / sizeof((array)[0]))
#define STR(s) (const uint8_t *)(s), strlen(s)

static const char *bpffs_dir;
static const char *examples_dir;

/* The call fails with `code`; when `path` is not NULL the error's path is `path`. */
#define EXPECT_FAILURE(code, path, call)                                                     \
    do {                                                                                     \
        egress_error *error = NULL;                                                          \
        CHECK_EQ((call), (code));                                                            \
        CHECK(error != NULL);                                                                \
        CHECK_EQ(egress_error_code(error), (code));                                          \
        if ((path) != NULL)                                                                  \
            CHECK_STR(egress_error_path(error), (const char *)(path));                       \
        egress_error_free(error);                                                            \
    } while (0)

static char *read_file(const char *dir, const char *name, size_t *len_out)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *file = fopen(path, "rb");
    if (file == NULL) {
        perror(path);
        return NULL;
    }
    char *text = malloc(1 << 20);
    size_t len = text ? fread(text, 1, 1 << 20, file) : 0;
    fclose(file);
    *len_out = len;
    return text;
}

static egress_engine *seed_engine(void)
{
    size_t len = 0;
    char *text = read_file(examples_dir, "seed-gateway-group.yaml", &len);
    egress_engine *engine = NULL;
    if (text != NULL)
        CHECK_EQ(egress_engine_from_snapshot((const uint8_t *)text, len, NULL, 0,
                                             EGRESS_SELECTION_CILIUM, &engine, NULL),
                 EGRESS_RESULT_OK);
    free(text);
    return engine;
}

static void test_open_errors(void)
{
    egress_maps *maps = NULL;
    const uint8_t bad_utf8[] = {'/', 0xff};
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_ENUM, "flags",
                   egress_maps_open(STR(bpffs_dir), EGRESS_LAYOUT_V4V2, 0, 2, &maps, &error));
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_ENUM, "layout",
                   egress_maps_open(STR(bpffs_dir), 9, 0, EGRESS_MAPS_FLAG_CREATE, &maps, &error));
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "dir",
                   egress_maps_open(NULL, 5, EGRESS_LAYOUT_V4V2, 0, 0, &maps, &error));
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_UTF8, "dir",
                   egress_maps_open(bad_utf8, sizeof bad_utf8, EGRESS_LAYOUT_V4V2, 0, 0, &maps,
                                    &error));
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "maps_out",
                   egress_maps_open(STR(bpffs_dir), EGRESS_LAYOUT_V4V2, 0,
                                    EGRESS_MAPS_FLAG_CREATE, NULL, &error));
    /* Maps that are not there, without CREATE: the kernel's ENOENT. */
    {
        egress_error *error = NULL;
        CHECK_EQ(egress_maps_open(STR(bpffs_dir), EGRESS_LAYOUT_V4V2, 0, 0, &maps, &error),
                 EGRESS_RESULT_KERNEL);
        CHECK_EQ(egress_error_errno(error), ENOENT);
        egress_error_free(error);
    }
    /* A directory that is not on a bpffs: refused as an argument, nothing created. */
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_ARGUMENT, NULL,
                   egress_maps_open(STR("/proc"), EGRESS_LAYOUT_V4V2, 0,
                                    EGRESS_MAPS_FLAG_CREATE, &maps, &error));
    CHECK(maps == NULL);
    egress_maps_free(NULL); /* a no-op */
}

static size_t dump(const egress_maps *maps, egress_entry **entries_out)
{
    size_t count = 0;
    CHECK_EQ(egress_maps_dump(maps, NULL, 0, &count, NULL), EGRESS_RESULT_INSUFFICIENT_SIZE);
    egress_entry *entries = calloc(count + 1, sizeof *entries);
    size_t written = 0;
    if (count > 0) {
        /* One short: the count needed, nothing written. */
        memset(entries, 0xA5, (count + 1) * sizeof *entries);
        CHECK_EQ(egress_maps_dump(maps, entries, count - 1, &written, NULL),
                 EGRESS_RESULT_INSUFFICIENT_SIZE);
        CHECK_EQ(written, count);
        const uint8_t *bytes = (const uint8_t *)entries;
        bool untouched = true;
        for (size_t i = 0; i < (count + 1) * sizeof *entries; i++)
            untouched &= bytes[i] == 0xA5;
        CHECK(untouched);
    }
    CHECK_EQ(egress_maps_dump(maps, entries, count, &written, NULL), EGRESS_RESULT_OK);
    CHECK_EQ(written, count);
    *entries_out = entries;
    return count;
}

static void test_program_dump_adopt(void)
{
    /* The seed's engine is Cilium 1.18's (the conformance call's): the legacy IPv4 map. */
    egress_maps *maps = NULL;
    CHECK_EQ(egress_maps_open(STR(bpffs_dir), EGRESS_LAYOUT_LEGACY, 0, EGRESS_MAPS_FLAG_CREATE,
                              &maps, NULL),
             EGRESS_RESULT_OK);
    egress_engine *engine = seed_engine();
    if (maps == NULL || engine == NULL) {
        CHECK(false);
        egress_maps_free(maps);
        egress_engine_free(engine);
        return;
    }
    size_t applied = 99;
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "maps",
                   egress_maps_program(NULL, engine, &applied, &error));
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "engine",
                   egress_maps_program(maps, NULL, &applied, &error));

    /* The seed's node programs its 10 entries; a second program writes nothing. */
    CHECK_EQ(egress_maps_program(maps, engine, &applied, NULL), EGRESS_RESULT_OK);
    CHECK_EQ(applied, 10);
    CHECK_EQ(egress_maps_program(maps, engine, NULL, NULL), EGRESS_RESULT_OK);
    CHECK_EQ(egress_maps_program(maps, engine, &applied, NULL), EGRESS_RESULT_OK);
    CHECK_EQ(applied, 0);

    /* The kernel holds exactly the engine's entries. */
    egress_entry *dumped = NULL;
    size_t count = dump(maps, &dumped);
    CHECK_EQ(count, 10);
    egress_entry desired[16];
    size_t desired_count = 0;
    CHECK_EQ(egress_engine_entries(engine, desired, COUNT(desired), &desired_count, NULL),
             EGRESS_RESULT_OK);
    CHECK_EQ(desired_count, count);
    CHECK(dumped != NULL && memcmp(dumped, desired, count * sizeof *dumped) == 0);
    free(dumped);
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "count_out",
                   egress_maps_dump(maps, NULL, 0, NULL, &error));
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "maps",
                   egress_maps_dump(NULL, NULL, 0, &count, &error));

    /* A restarted agent adopts the live maps: its first plan is empty, nothing rewritten. */
    egress_engine *restarted = seed_engine();
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "maps",
                   egress_engine_adopt_maps(restarted, NULL, &error));
    CHECK_EQ(egress_engine_adopt_maps(restarted, maps, NULL), EGRESS_RESULT_OK);
    size_t ops = 99;
    CHECK_EQ(egress_engine_take_plan(restarted, NULL, 0, &ops, NULL), EGRESS_RESULT_OK);
    CHECK_EQ(ops, 0);

    /* The whole cycle under the writer lock (read, adopt, program): an engine of an empty
       cluster takes the live maps as its baseline and deletes their 10 entries; the seed's
       engine writes them again, then nothing. */
    const char *empty = "localNode: n\nnodes: [{name: n, ipv4: 10.0.0.1}]\n";
    egress_engine *bare = NULL;
    CHECK_EQ(egress_engine_from_snapshot((const uint8_t *)empty, strlen(empty), NULL, 0,
                                         EGRESS_SELECTION_CILIUM, &bare, NULL),
             EGRESS_RESULT_OK);
    size_t deleted = 99;
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "maps",
                   egress_maps_reconcile(NULL, bare, &applied, &deleted, &error));
    EXPECT_FAILURE(EGRESS_RESULT_NULL_PARAMETER, "engine",
                   egress_maps_reconcile(maps, NULL, &applied, &deleted, &error));
    CHECK_EQ(egress_maps_reconcile(maps, bare, &applied, &deleted, NULL), EGRESS_RESULT_OK);
    CHECK_EQ(applied, 10);
    CHECK_EQ(deleted, 0);
    egress_engine *cycled = seed_engine();
    CHECK_EQ(egress_maps_reconcile(maps, cycled, &applied, NULL, NULL), EGRESS_RESULT_OK);
    CHECK_EQ(applied, 10);
    CHECK_EQ(egress_maps_reconcile(maps, cycled, &applied, &deleted, NULL), EGRESS_RESULT_OK);
    CHECK_EQ(applied, 0);
    egress_engine_free(cycled);
    egress_engine_free(bare);

    /* The v4_v2 layout's maps refuse an engine made for the legacy one: nothing written. */
    egress_maps *legacy = NULL;
    CHECK_EQ(egress_maps_open(STR(bpffs_dir), EGRESS_LAYOUT_V4V2, 0, EGRESS_MAPS_FLAG_CREATE,
                              &legacy, NULL),
             EGRESS_RESULT_OK);
    egress_engine *fresh = seed_engine();
    applied = 99;
    EXPECT_FAILURE(EGRESS_RESULT_INVALID_ARGUMENT, NULL,
                   egress_maps_program(legacy, fresh, &applied, &error));
    CHECK_EQ(applied, 0);

    /* Existing maps open without CREATE. */
    egress_maps *again = NULL;
    CHECK_EQ(egress_maps_open(STR(bpffs_dir), EGRESS_LAYOUT_LEGACY, 0, 0, &again, NULL),
             EGRESS_RESULT_OK);
    egress_entry *reread = NULL;
    CHECK_EQ(dump(again, &reread), 10);
    free(reread);

    egress_maps_free(again);
    egress_maps_free(legacy);
    egress_maps_free(maps);
    egress_engine_free(fresh);
    egress_engine_free(restarted);
    egress_engine_free(engine);
}

/* The compact layout (ours): the seed's plan goes to its four maps only; the maps read back
 * joined are the engine's entries; an engine adopting them (set ids and all) writes
 * nothing. */
static void test_compact_layout(void)
{
    egress_maps *maps = NULL;
    CHECK_EQ(egress_maps_open(STR(bpffs_dir), EGRESS_LAYOUT_COMPACT, 0, EGRESS_MAPS_FLAG_CREATE,
                              &maps, NULL),
             EGRESS_RESULT_OK);
    size_t len = 0;
    char *text = read_file(examples_dir, "seed-gateway-group.yaml", &len);
    egress_engine_config config = {.layout = EGRESS_LAYOUT_COMPACT};
    egress_engine *engine = NULL, *restarted = NULL;
    if (text != NULL) {
        CHECK_EQ(egress_engine_from_snapshot_config((const uint8_t *)text, len, &config, &engine,
                                                    NULL),
                 EGRESS_RESULT_OK);
        CHECK_EQ(egress_engine_from_snapshot_config((const uint8_t *)text, len, &config,
                                                    &restarted, NULL),
                 EGRESS_RESULT_OK);
    }
    free(text);
    if (maps == NULL || engine == NULL || restarted == NULL) {
        CHECK(false);
        egress_maps_free(maps);
        egress_engine_free(engine);
        egress_engine_free(restarted);
        return;
    }
    egress_plan_op ops[64];
    size_t count = 0;
    CHECK_EQ(egress_engine_take_plan(engine, ops, COUNT(ops), &count, NULL), EGRESS_RESULT_OK);
    CHECK(count > 0);
    for (size_t i = 0; i < count; i++)
        CHECK(ops[i].map >= EGRESS_MAP_COMPACT_ENDPOINTS_V4 &&
              ops[i].map <= EGRESS_MAP_COMPACT_RULES_V6);
    size_t applied = 0;
    CHECK_EQ(egress_maps_program(maps, engine, &applied, NULL), EGRESS_RESULT_OK);
    CHECK_EQ(applied, count);
    egress_entry *dumped = NULL;
    size_t dumped_count = dump(maps, &dumped);
    egress_entry desired[16];
    size_t desired_count = 0;
    CHECK_EQ(egress_engine_entries(engine, desired, COUNT(desired), &desired_count, NULL),
             EGRESS_RESULT_OK);
    CHECK_EQ(dumped_count, desired_count);
    for (size_t i = 0; i < desired_count && i < dumped_count; i++)
        CHECK(memcmp(&dumped[i], &desired[i], sizeof desired[i]) == 0);
    free(dumped);
    CHECK_EQ(egress_engine_adopt_maps(restarted, maps, NULL), EGRESS_RESULT_OK);
    CHECK_EQ(egress_engine_take_plan(restarted, ops, COUNT(ops), &count, NULL), EGRESS_RESULT_OK);
    CHECK_EQ(count, 0);
    egress_maps_free(maps);
    egress_engine_free(engine);
    egress_engine_free(restarted);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s BPFFS_DIR EXAMPLES_DIR\n", argv[0]);
        return 2;
    }
    bpffs_dir = argv[1];
    examples_dir = argv[2];
    bool ok = run_group("kernel: open errors", test_open_errors);
    ok &= run_group("kernel: program, dump, adopt", test_program_dump_adopt);
    ok &= run_group("kernel: the compact layout", test_compact_layout);
    return ok ? 0 : 1;
}
