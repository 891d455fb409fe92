/*
 * Tests for `tarheel connect` meeting Qoyod's rate limit, run through
 * cli_main against the Qoyod and Salla emulators with stdout and stderr
 * captured: a 429 (with Retry-After) on the key's check, the inventory
 * lookup, the chart of accounts or a category create is waited out as
 * Qoyod asks, saying so, and the connect goes on to the end; a wait past
 * the command's patience (QOYOD_PATIENCE_MS) gives up at once with a
 * message naming the wait and what to do. The waits here are Qoyod's
 * Retry-After of 1 s (real sleeps; nothing is timed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <jansson.h>

#include "cli/cli.h"
#include "core/xmalloc.h"
#include "sim/qoyod_sim.h"
#include "sim/salla_sim.h"
#include "store/store.h"
#include "th_test.h"

#define KEY "qk"

struct fx {
    char dir[64];
    char db[96];
    struct sim *qoyod, *shop;
    char qurl[128], api[128];
    char *token;
};

struct run {
    int rc;
    char *out, *err;
};

static int setup(void **state)
{
    struct fx *f = xcalloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/th_cliconnXXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->db, sizeof f->db, "%s/c.db", f->dir);
    f->qoyod = tt_sim_start(&qoyod_sim_ops, (const char *[]){"api-key", KEY, NULL});
    f->shop = tt_sim_start(&salla_sim_ops, (const char *[]){"rate-limit-plan", "off", NULL});
    snprintf(f->qurl, sizeof f->qurl, "%s/2.0", sim_base_url(f->qoyod));
    snprintf(f->api, sizeof f->api, "%s/admin/v2", sim_base_url(f->shop));
    struct tt_resp r;
    tt_http("POST", tt_url(f->shop, "/_sim/salla/install"), NULL, "{\"store_id\":4242}", &r);
    assert_int_equal(r.status, 200);
    f->token = xstrdup(json_string_value(json_object_get(r.json, "access_token")));
    tt_resp_release(&r);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    tt_sim_stop(f->shop);
    tt_sim_stop(f->qoyod);
    char *cmd = xasprintf("rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(f->token);
    free(f);
    return 0;
}

/* Runs `tarheel <args...>` (NULL-terminated), capturing stdout and stderr. */
static void run(struct fx *f, struct run *r, ...)
{
    char *argv[40] = {"tarheel"};
    int argc = 1;
    va_list ap;
    va_start(ap, r);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && argc < 39)
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    r->rc = tt_cli_run(f->dir, argc, argv, &r->out, &r->err);
}

static void run_release(struct run *r)
{
    free(r->out);
    free(r->err);
}

static void has(const char *text, const char *want)
{
    if (!strstr(text, want)) fail_msg("want \"%s\" in:\n%s", want, text);
}

static size_t occurrences(const char *text, const char *what)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, what)) != NULL; p += strlen(what)) n++;
    return n;
}

/* `connect qoyod` (the key's check): one 429 is waited out. Before, the
 * command failed on it. */
static void test_connect_qoyod_waits_out_429(void **state)
{
    struct fx *f = *state;
    tt_faults(f->qoyod, "{\"match\":\"GET /2.0/inventories*\",\"mode\":\"rate_limit\","
                        "\"retry_after\":1,\"count\":1}");
    struct run r;
    run(f, &r, "connect", "qoyod", "--api-key", KEY, "--qoyod-url", f->qurl, NULL);
    if (r.rc != CLI_OK) fail_msg("exit %d: %s", r.rc, r.err);
    has(r.out, "The API key works");
    has(r.err, "asks to wait 1 s before it will list the inventories; waiting");
    assert_int_equal(tt_count_requests(f->qoyod, "GET", "/2.0/inventories*", 429), 1);
    assert_int_equal(tt_count_requests(f->qoyod, "GET", "/2.0/inventories*", 200), 1);
    run_release(&r);
}

/* `connect salla` with tokens: 429s on the inventory check, the chart of
 * accounts and a category create are each waited out, and the store ends
 * connected with its accounts and categories set up, as without them. */
static void test_connect_store_waits_out_429s(void **state)
{
    struct fx *f = *state;
    tt_faults(f->qoyod, "{\"faults\":["
                        "{\"match\":\"GET /2.0/inventories*\",\"mode\":\"rate_limit\","
                        "\"retry_after\":1,\"count\":1},"
                        "{\"match\":\"GET /2.0/accounts*\",\"mode\":\"rate_limit\","
                        "\"retry_after\":1,\"count\":1},"
                        "{\"match\":\"POST /2.0/categories*\",\"mode\":\"rate_limit\","
                        "\"retry_after\":1,\"count\":1}]}");
    struct run r;
    run(f, &r, "connect", "salla", "--db", f->db, "--store", "4242", "--access-token", f->token,
        "--api-base", f->api, "--webhook-secret", "ws", "--qoyod-key", KEY, "--qoyod-url", f->qurl,
        "--inventory", "1", NULL);
    if (r.rc != CLI_OK) fail_msg("exit %d: %s\n%s", r.rc, r.out, r.err);
    if (occurrences(r.err, "; waiting") != 3) fail_msg("stderr:\n%s\nstdout:\n%s", r.err, r.out);
    has(r.out, "(1 found, 2 created)");
    has(r.out, "Store categories: 4, in Qoyod as product categories (0 found, 4 created)");
    assert_int_equal(tt_count_requests(f->qoyod, NULL, "/2.0/*", 429), 3);
    run_release(&r);
}

/* Qoyod asks for a wait longer than the command's patience: the command
 * gives up at once (no point waiting part of it), naming the wait and
 * what to do, and exits "temporary" (CLI_TEMP). */
static void test_connect_gives_up_past_patience(void **state)
{
    struct fx *f = *state;
    tt_faults(f->qoyod, "{\"match\":\"GET /2.0/inventories*\",\"mode\":\"rate_limit\","
                        "\"retry_after\":200}");
    struct run r;
    run(f, &r, "connect", "qoyod", "--api-key", KEY, "--qoyod-url", f->qurl, NULL);
    assert_int_equal(r.rc, CLI_TEMP);
    has(r.err, "asked to wait 200 s before it will list the inventories");
    has(r.err, "waits at most 120 s in all");
    has(r.err, "what to do: wait a few minutes, then run the command again");
    assert_int_equal(occurrences(r.err, "; waiting"), 0);
    assert_int_equal(tt_count_requests(f->qoyod, "GET", "/2.0/inventories*", -2), 1);
    run_release(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_connect_qoyod_waits_out_429, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_store_waits_out_429s, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_gives_up_past_patience, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
