/*
 * Tests for worker/pull, against the Salla, Zid and Qoyod emulators run in
 * process: a pull of a sub-range records exactly the orders created inside
 * it, as not transferred, with no job and no invoice; a known order keeps
 * its state; a finished range says so and asks nothing; an interrupted pull
 * (a fetch that fails for the whole run, a page limit, a failing listing)
 * resumes without fetching any order twice; a 429 waits its Retry-After;
 * a range transfer queues the not-transferred and failed orders and the
 * worker makes exactly that many invoices; background pulls report their
 * progress. Dates: pull_range_parse, table-driven.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "sim/qoyod_sim.h"
#include "sim/salla_sim.h"
#include "sim/zid_sim.h"
#include "th_test.h"
#include "worker/pull.h"
#include "worker/worker.h"

#define KEY "qk"
#define SALLA_STORE 4242
#define ZID_STORE 251073

struct fx {
    char dir[64];
    struct store *store;
    struct sim *qoyod, *shop;
    struct httpc *hc;
    struct store_conn conn;
    /* what the progress callback saw */
    int64_t max_wait_s;
    int calls;
};

static void must(int rc, const struct th_err *err)
{
    if (rc != 0) fail_msg("call failed: %s: %s", th_err_name(rc), err->msg);
}

static void start(struct fx *f, const struct sim_ops *shop_ops, const char *const *opts)
{
    snprintf(f->dir, sizeof f->dir, "/tmp/th_pullXXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char *url = xasprintf("sqlite:%s/t.db", f->dir);
    struct th_err err;
    must(store_open(&f->store, url, &err), &err);
    free(url);
    f->qoyod = tt_sim_start(&qoyod_sim_ops, (const char *[]){"api-key", KEY, NULL});
    f->shop = tt_sim_start(shop_ops, opts);
    f->hc = httpc_new(NULL);
    struct store_conn *c = &f->conn;
    c->status = xstrdup("active");
    c->qoyod_base = xasprintf("%s/2.0", sim_base_url(f->qoyod));
    c->qoyod_api_key = xstrdup(KEY);
    c->inventory_id = 1;
    c->trigger = MODEL_STATUS_NEW;
    c->customer_per_invoice = 1;
    c->number_by_order = 1;
    c->financial_invoice = 1;
    c->webhook_secret = xstrdup("unused");
    c->connected_at = time(NULL) - 60; /* every generated order is older */
}

static int setup_salla(void **state)
{
    struct fx *f = xcalloc(1, sizeof *f);
    start(f, &salla_sim_ops, (const char *[]){"rate-limit-plan", "off", NULL});
    struct tt_resp r;
    tt_http("POST", tt_url(f->shop, "/_sim/salla/install"), NULL, "{\"store_id\":4242}", &r);
    assert_int_equal(r.status, 200);
    f->conn.platform = MODEL_PLATFORM_SALLA;
    f->conn.store_id = SALLA_STORE;
    f->conn.access_token = xstrdup(json_string_value(json_object_get(r.json, "access_token")));
    f->conn.api_base = xasprintf("%s/admin/v2", sim_base_url(f->shop));
    tt_resp_release(&r);
    struct th_err err;
    must(store_conn_put(f->store, &f->conn, &err), &err);
    *state = f;
    return 0;
}

static int setup_zid(void **state)
{
    struct fx *f = xcalloc(1, sizeof *f);
    start(f, &zid_sim_ops, (const char *[]){"rate-limit", "0", NULL});
    struct tt_resp r;
    tt_http("POST", tt_url(f->shop, "/_sim/zid/install"), NULL, "{\"store_id\":251073}", &r);
    assert_int_equal(r.status, 200);
    f->conn.platform = MODEL_PLATFORM_ZID;
    f->conn.store_id = ZID_STORE;
    f->conn.access_token = xstrdup(json_string_value(json_object_get(r.json, "authorization")));
    f->conn.manager_token = xstrdup(json_string_value(json_object_get(r.json, "access_token")));
    f->conn.api_base = xasprintf("%s/v1", sim_base_url(f->shop));
    f->conn.webhook_strategy = xstrdup("basic");
    tt_resp_release(&r);
    struct th_err err;
    must(store_conn_put(f->store, &f->conn, &err), &err);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    httpc_free(f->hc);
    tt_sim_stop(f->shop);
    tt_sim_stop(f->qoyod);
    store_conn_release(&f->conn);
    store_close(f->store);
    char *cmd = xasprintf("rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(f);
    return 0;
}

/* Generated order ids (new reference). */
static json_t *generate(struct fx *f, int count, const char *from, const char *to)
{
    int zid = f->conn.platform == MODEL_PLATFORM_ZID;
    char body[256];
    snprintf(body, sizeof body, "{\"store_id\":%d,\"count\":%d,\"from\":\"%s\",\"to\":\"%s\"}",
             zid ? ZID_STORE : SALLA_STORE, count, from, to);
    struct tt_resp r;
    tt_http("POST", tt_url(f->shop, zid ? "/_sim/zid/generate" : "/_sim/salla/generate"), NULL,
            body, &r);
    if (r.status != 201) fail_msg("generate: %ld %s", r.status, r.body);
    json_t *ids = json_incref(json_object_get(r.json, "orders"));
    tt_resp_release(&r);
    assert_int_equal(json_array_size(ids), count);
    return ids;
}

static void on_progress(void *arg, const struct pull_progress *p)
{
    struct fx *f = arg;
    f->calls++;
    if (p->wait_s > f->max_wait_s) f->max_wait_s = p->wait_s;
}

static int pull(struct fx *f, const char *from, const char *to, int again, int max_pages,
                struct pull_progress *out, struct th_err *err)
{
    struct pull_config cfg = {.store = f->store,
                              .http = f->hc,
                              .conn_id = f->conn.id,
                              .again = again,
                              .max_pages = max_pages,
                              .retry_base_ms = 1,
                              .progress = on_progress,
                              .arg = f};
    must(pull_range_parse(from, to, &cfg.range, err), err);
    return pull_run(&cfg, out, err);
}

/* The order's transfer state; -1 when tarheel does not know it. */
static int xfer_of(struct fx *f, int64_t id)
{
    struct store_order so;
    struct th_err err;
    int rc = store_order_get(f->store, f->conn.id, id, &so, &err);
    if (rc == TH_ENOTFOUND) return -1;
    must(rc, &err);
    int x = (int)so.xfer;
    store_order_release(&so);
    return x;
}

/* Every id in ids is known as not transferred (want 1) or unknown (0). */
static void all_known(struct fx *f, const json_t *ids, int want)
{
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v)
    {
        int x = xfer_of(f, json_integer_value(v));
        if (want && x != STORE_XFER_NOT_TRANSFERRED)
            fail_msg("order %lld: state %d, want not transferred", (long long)json_integer_value(v),
                     x);
        if (!want && x != -1)
            fail_msg("order %lld is outside the range but was recorded (state %d)",
                     (long long)json_integer_value(v), x);
    }
}

static int64_t jobs(struct fx *f)
{
    int64_t n = -1;
    struct th_err err;
    must(store_job_count(f->store, &n, &err), &err);
    return n;
}

static int fetches(struct fx *f, int status)
{
    if (f->conn.platform == MODEL_PLATFORM_ZID)
        return tt_count_requests(f->shop, "GET", "/v1/managers/store/orders/*/view", status);
    return tt_count_requests(f->shop, "GET", "/admin/v2/orders/[0-9]*", status);
}

static int lists(struct fx *f)
{
    if (f->conn.platform == MODEL_PLATFORM_ZID)
        return tt_count_requests(f->shop, "GET", "/v1/managers/store/orders", -2);
    return tt_count_requests(f->shop, "GET", "/admin/v2/orders", -2);
}

static int64_t map_of(struct fx *f, const char *key)
{
    int64_t v = -1;
    struct th_err err;
    int rc = store_map_get(f->store, f->conn.id, "pull", key, &v, &err);
    if (rc == TH_ENOTFOUND) return -1;
    must(rc, &err);
    return v;
}

/* ---------------------------------------------------------------------- */

static void test_range_parse(void **state)
{
    static const struct {
        const char *from, *to;
        int rc;
        int64_t lo, hi; /* unix seconds when rc == 0 */
        const char *text;
    } cases[] = {
        /* Riyadh days: 2023-11-01 00:00 +03 is 2023-10-31 21:00 UTC */
        {"2023-11-01", "2024-02-01", 0, 1698786000, 1706821199, "2023-11-01..2024-02-01"},
        {"2024-02-29", "2024-02-29", 0, 1709154000, 1709240399, "2024-02-29..2024-02-29"},
        {"2024-02-02", "2024-02-01", TH_EINVAL, 0, 0, NULL},
        {"2023-02-29", "2023-03-01", TH_EINVAL, 0, 0, NULL},
        {"2023-11-1", "2024-02-01", TH_EINVAL, 0, 0, NULL},
        {"2023-11-01", "2024-02-01T00:00", TH_EINVAL, 0, 0, NULL},
        {"", "2024-02-01", TH_EINVAL, 0, 0, NULL},
        {"2023-11-01", NULL, TH_EINVAL, 0, 0, NULL},
        {"2023-13-01", "2024-02-01", TH_EINVAL, 0, 0, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct pull_range r;
        struct th_err err = {0};
        int rc = pull_range_parse(cases[i].from, cases[i].to, &r, &err);
        if (rc != cases[i].rc)
            fail_msg("case %zu (%s, %s): want %d got %d (%s)", i, cases[i].from,
                     cases[i].to ? cases[i].to : "NULL", cases[i].rc, rc, err.msg);
        if (rc) {
            if (strncmp(err.msg, "from", 4) && strncmp(err.msg, "to", 2))
                fail_msg("case %zu: the message names neither from nor to: %s", i, err.msg);
            continue;
        }
        if (r.from != cases[i].lo || r.to != cases[i].hi)
            fail_msg("case %zu: want [%lld, %lld] got [%lld, %lld]", i, (long long)cases[i].lo,
                     (long long)cases[i].hi, (long long)r.from, (long long)r.to);
        assert_string_equal(r.text, cases[i].text);
    }
}

/* Orders on both sides of the range and on its first and last second: a
 * pull records exactly those inside, as not transferred, queues nothing and
 * sends nothing; an order tarheel knows keeps its state; a finished range
 * asks nothing more; --again lists again and fetches nothing known. */
static void test_salla_pull_records_exactly_the_range(void **state)
{
    struct fx *f = *state;
    json_t *before = generate(f, 30, "2023-10-01", "2023-10-31 23:59:59");
    json_t *inside = generate(f, 130, "2023-11-01", "2024-02-01");
    json_t *after = generate(f, 25, "2024-02-02", "2024-02-20");
    /* one of them was transferred already (a webhook brought it) */
    int64_t done_id = json_integer_value(json_array_get(inside, 64));
    struct store_order so = {.conn_id = f->conn.id,
                             .order_id = done_id,
                             .status = MODEL_STATUS_COMPLETED,
                             .xfer = STORE_XFER_TRANSFERRED,
                             .qoyod_invoice_id = 77,
                             .total = 1,
                             .created_at = 1700000000};
    struct th_err err;
    must(store_order_put(f->store, &so, &err), &err);

    struct pull_progress p;
    must(pull(f, "2023-11-01", "2024-02-01", 0, 0, &p, &err), &err);
    assert_int_equal(p.phase, PULL_DONE);
    assert_int_equal(p.total, 130);
    assert_int_equal(p.pulled, 130);
    assert_int_equal(p.added, 129);
    assert_int_equal(p.known, 1);
    assert_int_equal(p.gone, 0);
    assert_int_equal(p.resumed, 0);
    assert_int_equal(p.finished_before, 0);
    assert_true(f->calls >= 130);
    all_known(f, before, 0);
    all_known(f, after, 0);
    /* the transferred one kept its state and its invoice id */
    struct store_order got;
    must(store_order_get(f->store, f->conn.id, done_id, &got, &err), &err);
    assert_int_equal(got.xfer, STORE_XFER_TRANSFERRED);
    assert_int_equal(got.qoyod_invoice_id, 77);
    store_order_release(&got);
    /* the others: not transferred, with the store's number, total and date */
    size_t i;
    json_t *v;
    json_array_foreach(inside, i, v)
    {
        if (json_integer_value(v) == done_id) continue;
        must(store_order_get(f->store, f->conn.id, json_integer_value(v), &got, &err), &err);
        if (got.xfer != STORE_XFER_NOT_TRANSFERRED) fail_msg("order %zu: state %d", i, got.xfer);
        assert_true(got.number && *got.number);
        assert_true(got.total > 0);
        assert_int_equal(got.status, MODEL_STATUS_NEW);
        if (got.created_at < 1698786000 || got.created_at > 1706821199)
            fail_msg("order %zu created %lld, outside the range", i, (long long)got.created_at);
        store_order_release(&got);
    }
    assert_int_equal(jobs(f), 0);
    assert_int_equal(fetches(f, 200), 129);
    assert_int_equal(tt_count_requests(f->qoyod, NULL, "*", -2), 0);
    assert_int_equal(map_of(f, "2023-11-01..2024-02-01:seen"), 130);
    assert_int_equal(map_of(f, "2023-11-01..2024-02-01:page"), 3); /* 60 a page */
    assert_true(map_of(f, "2023-11-01..2024-02-01:done") > 0);

    /* finished: says so, asks nothing */
    int listed = lists(f);
    must(pull(f, "2023-11-01", "2024-02-01", 0, 0, &p, &err), &err);
    assert_int_equal(p.phase, PULL_DONE);
    assert_int_equal(p.finished_before, 1);
    assert_int_equal(p.total, 130);
    assert_int_equal(p.added, 0);
    assert_int_equal(lists(f), listed);
    assert_int_equal(fetches(f, -2), 129);

    /* again: lists the range again; every order is known, none fetched */
    must(pull(f, "2023-11-01", "2024-02-01", 1, 0, &p, &err), &err);
    assert_int_equal(p.phase, PULL_DONE);
    assert_int_equal(p.finished_before, 0);
    assert_int_equal(p.total, 130);
    assert_int_equal(p.known, 130);
    assert_int_equal(p.added, 0);
    assert_int_equal(lists(f), listed + 3);
    assert_int_equal(fetches(f, -2), 129);
    assert_int_equal(jobs(f), 0);

    /* a range that overlaps: only its new orders are fetched */
    must(pull(f, "2024-01-15", "2024-02-05", 0, 0, &p, &err), &err);
    assert_int_equal(p.phase, PULL_DONE);
    assert_true(p.known > 0);
    /* of the 25 spread 1641599 s / 24 apart from 02-02 00:00, those up to
     * 02-05 23:59:59 (345599 s): i = 0 .. 5 */
    assert_int_equal(p.added, 6);
    assert_int_equal(fetches(f, -2), 129 + 6);
    json_decref(before);
    json_decref(inside);
    json_decref(after);
}

/* A fetch that fails for the whole run stops it part-way; the next run
 * continues: every order ends recorded and was fetched exactly once. */
static void test_salla_interrupted_pull_resumes(void **state)
{
    struct fx *f = *state;
    json_t *ids = generate(f, 150, "2023-12-01", "2023-12-31");
    /* the 75th order (page 2) fails for the whole first run */
    int64_t bad = json_integer_value(json_array_get(ids, 74));
    char fault[256];
    snprintf(fault, sizeof fault,
             "{\"match\":\"GET /admin/v2/orders/%lld\",\"mode\":\"error\",\"status\":500,"
             "\"count\":%d}",
             (long long)bad, PULL_MAX_TRIES);
    tt_faults(f->shop, fault);
    struct pull_progress p;
    struct th_err err = {0};
    assert_int_equal(pull(f, "2023-12-01", "2023-12-31", 0, 0, &p, &err), TH_ETEMP);
    assert_non_null(strstr(err.msg, "run the same pull again"));
    assert_non_null(strstr(err.msg, "74 of 150"));
    assert_int_equal(p.phase, PULL_FETCHING);
    assert_int_equal(p.total, 150);
    assert_int_equal(p.pulled, 74);
    assert_int_equal(p.added, 74);
    assert_int_equal(map_of(f, "2023-12-01..2023-12-31:page"), 1);
    assert_int_equal(map_of(f, "2023-12-01..2023-12-31:seen"), 60);
    assert_int_equal(map_of(f, "2023-12-01..2023-12-31:done"), -1);
    assert_int_equal(xfer_of(f, bad), -1);
    char path[64];
    snprintf(path, sizeof path, "/admin/v2/orders/%lld", (long long)bad);
    assert_int_equal(tt_count_requests(f->shop, "GET", path, 500), PULL_MAX_TRIES);

    must(pull(f, "2023-12-01", "2023-12-31", 0, 0, &p, &err), &err);
    assert_int_equal(p.phase, PULL_DONE);
    assert_int_equal(p.resumed, 1);
    assert_int_equal(p.total, 150);
    assert_int_equal(p.pulled, 150);
    assert_int_equal(p.known, 14); /* page 2's orders before the failing one */
    assert_int_equal(p.added, 76);
    all_known(f, ids, 1);
    /* 150 orders, 150 successful fetches: none twice */
    assert_int_equal(fetches(f, 200), 150);
    assert_int_equal(jobs(f), 0);
    json_decref(ids);
}

/* A listing that fails for the whole run records nothing and says so; the
 * next run pulls everything. */
static void test_failing_listing_then_resume(void **state)
{
    struct fx *f = *state;
    json_t *ids = generate(f, 20, "2023-12-01", "2023-12-05");
    tt_faults(f->shop, "{\"match\":\"GET /admin/v2/orders\",\"mode\":\"error\",\"status\":500,"
                       "\"count\":5}");
    struct pull_progress p;
    struct th_err err = {0};
    assert_int_equal(pull(f, "2023-12-01", "2023-12-05", 0, 0, &p, &err), TH_ETEMP);
    assert_non_null(strstr(err.msg, "listing stopped at page 1"));
    assert_int_equal(p.phase, PULL_LISTING);
    assert_int_equal(p.total, -1);
    assert_int_equal(fetches(f, -2), 0);
    all_known(f, ids, 0);
    must(pull(f, "2023-12-01", "2023-12-05", 0, 0, &p, &err), &err);
    assert_int_equal(p.phase, PULL_DONE);
    assert_int_equal(p.added, 20);
    all_known(f, ids, 1);
    json_decref(ids);
}

/* A 429 is not a failure: the pull waits Retry-After and goes on. */
static void test_rate_limit_waits_retry_after(void **state)
{
    struct fx *f = *state;
    json_t *ids = generate(f, 4, "2023-12-01", "2023-12-02");
    tt_faults(f->shop, "{\"match\":\"GET /admin/v2/orders/*\",\"mode\":\"rate_limit\","
                       "\"retry_after\":1,\"count\":2}");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct pull_progress p;
    struct th_err err;
    must(pull(f, "2023-12-01", "2023-12-02", 0, 0, &p, &err), &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    if (ms < 1900) fail_msg("two 429s with Retry-After 1 took %ld ms, want >= 2000", ms);
    assert_int_equal(f->max_wait_s, 1);
    assert_int_equal(p.phase, PULL_DONE);
    assert_int_equal(p.added, 4);
    assert_int_equal(fetches(f, 429), 2);
    assert_int_equal(fetches(f, 200), 4);
    all_known(f, ids, 1);
    json_decref(ids);
}

/* Zid (100 a page, dates in UTC) with a page limit: three runs of one page
 * each pull everything once; orders outside the range are left alone. */
static void test_zid_pull_by_pages(void **state)
{
    struct fx *f = *state;
    json_t *before = generate(f, 20, "2023-10-01", "2023-10-20");
    /* 2023-11-01 00:00 UTC is 03:00 in Riyadh; 2024-01-31 23:59:59 UTC is
     * 02-01 02:59:59 in Riyadh: all inside 2023-11-01..2024-02-01 */
    json_t *inside = generate(f, 250, "2023-11-01", "2024-01-31");
    json_t *after = generate(f, 20, "2024-03-01", "2024-03-20");
    /* the edges of the range in Riyadh: the last second before it and its
     * first second, and its last second and the first after it (UTC) */
    json_t *edge_out = generate(f, 1, "2023-10-31 20:59:59", "2023-10-31 20:59:59");
    json_t *edge_in = generate(f, 1, "2023-10-31 21:00:00", "2023-10-31 21:00:00");
    json_t *edge_in2 = generate(f, 1, "2024-02-01 20:59:59", "2024-02-01 20:59:59");
    json_t *edge_out2 = generate(f, 1, "2024-02-01 21:00:00", "2024-02-01 21:00:00");
    struct pull_progress p;
    struct th_err err;
    int64_t added = 0;
    for (int run = 1; run <= 3; run++) {
        must(pull(f, "2023-11-01", "2024-02-01", 0, 1, &p, &err), &err);
        assert_int_equal(p.resumed, run > 1);
        assert_int_equal(p.total, 252);
        assert_int_equal(p.pulled, run < 3 ? 100 * run : 252);
        assert_int_equal(p.phase, run < 3 ? PULL_FETCHING : PULL_DONE);
        added += p.added;
        assert_int_equal(p.known, 0);
    }
    assert_int_equal(added, 252);
    all_known(f, inside, 1);
    all_known(f, edge_in, 1);
    all_known(f, edge_in2, 1);
    all_known(f, before, 0);
    all_known(f, after, 0);
    all_known(f, edge_out, 0);
    all_known(f, edge_out2, 0);
    json_decref(edge_in);
    json_decref(edge_in2);
    json_decref(edge_out);
    json_decref(edge_out2);
    assert_int_equal(fetches(f, 200), 252);
    assert_int_equal(fetches(f, -2), 252);
    assert_int_equal(jobs(f), 0);
    must(pull(f, "2023-11-01", "2024-02-01", 0, 1, &p, &err), &err);
    assert_int_equal(p.finished_before, 1);
    json_decref(before);
    json_decref(inside);
    json_decref(after);
}

static void drain(struct fx *f)
{
    struct worker_config wc = {.store = f->store, .backoff_base_ms = 5, .qoyod_rpm = -1};
    struct th_err err;
    for (int i = 0; i < 500; i++) {
        must(worker_drain(&wc, worker_now_ms() + 20000, &err), &err);
        if (jobs(f) == 0) return;
        tt_sleep_ms(10);
    }
    fail_msg("jobs did not finish");
}

/* Transferring a range: the not-transferred and failed orders created in
 * it, cancelled ones left out; the worker then makes exactly one invoice
 * per order it can send (every 7th generated order has an item without
 * SKU and fails, saying so). */
static void test_transfer_a_range(void **state)
{
    struct fx *f = *state;
    json_t *inside = generate(f, 20, "2023-11-01", "2023-11-30");
    json_t *outside = generate(f, 5, "2023-12-02", "2023-12-05");
    struct pull_progress p;
    struct th_err err;
    must(pull(f, "2023-11-01", "2023-12-05", 0, 0, &p, &err), &err);
    assert_int_equal(p.added, 25);
    /* one order in the range was cancelled in the store before the pull
     * (tarheel records the status it saw) */
    int64_t cancelled = json_integer_value(json_array_get(inside, 3));
    struct store_order so;
    must(store_order_get(f->store, f->conn.id, cancelled, &so, &err), &err);
    so.status = MODEL_STATUS_CANCELLED;
    must(store_order_put(f->store, &so, &err), &err);
    store_order_release(&so);

    struct pull_range r;
    must(pull_range_parse("2023-11-01", "2023-11-30", &r, &err), &err);
    int64_t *ids;
    size_t n, left;
    must(pull_range_orders(f->store, f->conn.id, &r, &ids, &n, &left, &err), &err);
    assert_int_equal(n, 19);
    assert_int_equal(left, 1);
    assert_int_equal(jobs(f), 0);
    size_t queued = 0;
    must(pull_range_transfer(f->store, f->conn.id, ids, n, "test", &queued, &err), &err);
    assert_int_equal(queued, 19);
    assert_int_equal(jobs(f), 19);
    free(ids);
    drain(f);
    /* generated orders 6 and 13 have an item without SKU */
    assert_int_equal(tt_count_requests(f->qoyod, "POST", "/2.0/invoices", 201), 17);
    assert_int_equal(xfer_of(f, json_integer_value(json_array_get(inside, 6))), STORE_XFER_FAILED);
    assert_int_equal(xfer_of(f, json_integer_value(json_array_get(inside, 13))), STORE_XFER_FAILED);
    assert_int_equal(xfer_of(f, json_integer_value(json_array_get(inside, 0))),
                     STORE_XFER_TRANSFERRED);
    assert_int_equal(xfer_of(f, cancelled), STORE_XFER_NOT_TRANSFERRED);
    all_known(f, outside, 1); /* pulled, not sent */
    /* the range again: the two failed ones only */
    must(pull_range_orders(f->store, f->conn.id, &r, &ids, &n, &left, &err), &err);
    assert_int_equal(n, 2);
    free(ids);
    /* a pull after the transfer never downgrades a transferred order */
    must(pull(f, "2023-11-01", "2023-12-05", 1, 0, &p, &err), &err);
    assert_int_equal(p.known, 25);
    assert_int_equal(xfer_of(f, json_integer_value(json_array_get(inside, 0))),
                     STORE_XFER_TRANSFERRED);
    json_decref(inside);
    json_decref(outside);
}

/* Background pulls: progress until done; the same range twice while it
 * runs is one pull; unknown ids and connections are refused. */
static void test_background_pulls(void **state)
{
    struct fx *f = *state;
    json_t *ids = generate(f, 70, "2023-11-01", "2023-11-10");
    /* slow listing, so the second start finds the first still running */
    tt_faults(f->shop, "{\"match\":\"GET /admin/v2/orders\",\"mode\":\"latency\","
                       "\"latency_ms\":300,\"count\":1}");
    struct pull_runs *runs = pull_runs_new(f->store);
    struct pull_range r;
    struct th_err err;
    must(pull_range_parse("2023-11-01", "2023-11-10", &r, &err), &err);
    int64_t id = 0, id2 = 0;
    int running = -1;
    must(pull_runs_start(runs, f->conn.id, &r, 0, &id, &running, &err), &err);
    assert_int_equal(running, 0);
    must(pull_runs_start(runs, f->conn.id, &r, 0, &id2, &running, &err), &err);
    assert_int_equal(running, 1);
    assert_int_equal(id2, id);
    struct pull_status st;
    for (int i = 0; i < 300; i++) {
        must(pull_runs_get(runs, id, &st, &err), &err);
        if (st.state != PULL_RUNNING) break;
        tt_sleep_ms(20);
    }
    if (st.state != PULL_FINISHED) fail_msg("pull ended %d: %s", st.state, st.error);
    assert_string_equal(pull_state_name(st.state), "done");
    assert_int_equal(st.progress.total, 70);
    assert_int_equal(st.progress.pulled, 70);
    assert_int_equal(st.progress.added, 70);
    assert_true(st.finished_at >= st.started_at);
    assert_string_equal(st.range.text, "2023-11-01..2023-11-10");
    all_known(f, ids, 1);
    assert_int_equal(jobs(f), 0);
    assert_int_equal(pull_runs_get(runs, id + 1, &st, &err), TH_ENOTFOUND);
    assert_int_equal(pull_runs_start(runs, 999, &r, 0, &id2, NULL, &err), TH_ENOTFOUND);
    /* a new start of the finished range: a new pull that says done at once */
    must(pull_runs_start(runs, f->conn.id, &r, 0, &id2, &running, &err), &err);
    assert_int_equal(running, 0);
    assert_true(id2 > id);
    for (int i = 0; i < 300; i++) {
        must(pull_runs_get(runs, id2, &st, &err), &err);
        if (st.state != PULL_RUNNING) break;
        tt_sleep_ms(20);
    }
    assert_int_equal(st.state, PULL_FINISHED);
    assert_int_equal(st.progress.finished_before, 1);
    assert_int_equal(st.progress.total, 70);
    pull_runs_free(runs);
    json_decref(ids);
}

/* Freeing the set stops a running pull (resumable) without waiting for it
 * to finish. */
static void test_background_pull_stops_on_free(void **state)
{
    struct fx *f = *state;
    json_t *ids = generate(f, 10, "2023-11-01", "2023-11-10");
    tt_faults(f->shop, "{\"match\":\"GET /admin/v2/orders/*\",\"mode\":\"rate_limit\","
                       "\"retry_after\":60}");
    struct pull_runs *runs = pull_runs_new(f->store);
    struct pull_range r;
    struct th_err err;
    must(pull_range_parse("2023-11-01", "2023-11-10", &r, &err), &err);
    int64_t id = 0;
    must(pull_runs_start(runs, f->conn.id, &r, 0, &id, NULL, &err), &err);
    struct pull_status st = {0};
    for (int i = 0; i < 300 && st.progress.wait_s == 0; i++) {
        must(pull_runs_get(runs, id, &st, &err), &err);
        tt_sleep_ms(10);
    }
    assert_int_equal(st.progress.wait_s, 60);
    assert_int_equal(st.state, PULL_RUNNING);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pull_runs_free(runs);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true(t1.tv_sec - t0.tv_sec < 5);
    json_decref(ids);
}

int main(void)
{
    log_set_level(LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_range_parse),
        cmocka_unit_test_setup_teardown(test_salla_pull_records_exactly_the_range, setup_salla,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_salla_interrupted_pull_resumes, setup_salla, teardown),
        cmocka_unit_test_setup_teardown(test_failing_listing_then_resume, setup_salla, teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit_waits_retry_after, setup_salla, teardown),
        cmocka_unit_test_setup_teardown(test_zid_pull_by_pages, setup_zid, teardown),
        cmocka_unit_test_setup_teardown(test_transfer_a_range, setup_salla, teardown),
        cmocka_unit_test_setup_teardown(test_background_pulls, setup_salla, teardown),
        cmocka_unit_test_setup_teardown(test_background_pull_stops_on_free, setup_salla, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
