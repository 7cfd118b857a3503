/*
 * check.h — the minimal harness of the C ABI tests. A failed CHECK prints where and what,
 * and the run goes on, so one run shows every broken check; a group prints one line.
 * The counters belong to the main thread: threads count their own mismatches and the
 * main thread CHECKs the totals.
 */
#ifndef EGRESS_TEST_CHECK_H
#define EGRESS_TEST_CHECK_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int checks_run;    /* in the current group */
static int checks_failed; /* in the current group */

static inline bool check_at(bool ok, const char *what, const char *file, int line)
{
    checks_run++;
    if (!ok) {
        checks_failed++;
        fprintf(stderr, "%s:%d: check failed: %s\n", file, line, what);
    }
    return ok;
}

/* The condition holds. */
#define CHECK(cond) check_at((cond), #cond, __FILE__, __LINE__)

static inline bool check_u64_at(uint64_t actual, uint64_t expected, const char *what,
                                const char *file, int line)
{
    bool ok = check_at(actual == expected, what, file, line);
    if (!ok)
        fprintf(stderr, "    got %llu, expected %llu\n", (unsigned long long)actual,
                (unsigned long long)expected);
    return ok;
}

/* Two integers (results, sizes, counts) are equal; both are printed when not. */
#define CHECK_EQ(actual, expected)                                                           \
    check_u64_at((uint64_t)(actual), (uint64_t)(expected), #actual " == " #expected,        \
                 __FILE__, __LINE__)

static inline bool check_str_at(const char *actual, const char *expected, const char *what,
                                const char *file, int line)
{
    bool ok = (actual == NULL || expected == NULL) ? actual == expected
                                                    : strcmp(actual, expected) == 0;
    check_at(ok, what, file, line);
    if (!ok)
        fprintf(stderr, "    got %s%s%s, expected %s%s%s\n", actual ? "\"" : "",
                actual ? actual : "NULL", actual ? "\"" : "", expected ? "\"" : "",
                expected ? expected : "NULL", expected ? "\"" : "");
    return ok;
}

/* A string that may be NULL equals `expected` (NULL: must be NULL). */
#define CHECK_STR(actual, expected)                                                          \
    check_str_at((actual), (expected), #actual " == " #expected, __FILE__, __LINE__)

/* Runs one group and prints its line; returns whether every check passed. */
static inline bool run_group(const char *name, void (*group)(void))
{
    checks_run = 0;
    checks_failed = 0;
    group();
    if (checks_failed == 0)
        printf("ok    %-28s %4d checks\n", name, checks_run);
    else
        printf("FAIL  %-28s %4d of %d checks failed\n", name, checks_failed, checks_run);
    fflush(stdout);
    return checks_failed == 0;
}

#endif /* EGRESS_TEST_CHECK_H */
