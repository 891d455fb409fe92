/*
 * Tests for worker/poller: with no webhook at all, the catch-up poll finds
 * every order of a Salla and of a Zid store (against their emulators) and
 * the worker transfers each exactly once; a second round queues nothing;
 * a status change made without any webhook is found and acted on; the
 * cursor is kept; a failing list is retried next round.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include <cmocka.h>

#include "core/jv.h"
#include "core/xmalloc.h"
#include "sim/qoyod_sim.h"
#include "sim/salla_sim.h"
#include "sim/zid_sim.h"
#include "th_test.h"
#include "worker/poller.h"
#include "worker/worker.h"

#define KEY "qk"

struct fx {
    char dir[64];
    struct store *store;
    struct sim *qoyod, *shop;
    struct httpc *hc;
    struct store_conn conn;
    /* the emulator's OAuth client, for token refreshes */
    char token_url[160];
    struct platform_app app;
    const struct platform_app *apps[4];
};

static void start(struct fx *f, const struct sim_ops *shop_ops, const char *const *opts)
{
    snprintf(f->dir, sizeof f->dir, "/tmp/th_pollerXXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char *url = xasprintf("sqlite:%s/t.db", f->dir);
    struct th_err err;
    if (store_open(&f->store, url, &err) != 0) fail_msg("store: %s", err.msg);
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
    c->connected_at = time(NULL) - 60;
    f->app = (struct platform_app){
        .client_id = "demo-client", .client_secret = "demo-secret", .token_url = f->token_url};
}

static int setup_salla(void **state)
{
    struct fx *f = xcalloc(1, sizeof *f);
    start(f, &salla_sim_ops, (const char *[]){"rate-limit-plan", "off", NULL});
    struct tt_resp r;
    tt_http("POST", tt_url(f->shop, "/_sim/salla/install"), NULL, "{\"store_id\":4242}", &r);
    assert_int_equal(r.status, 200);
    f->conn.platform = MODEL_PLATFORM_SALLA;
    f->conn.store_id = 4242;
    f->conn.access_token = xstrdup(json_string_value(json_object_get(r.json, "access_token")));
    f->conn.refresh_token = xstrdup(json_string_value(json_object_get(r.json, "refresh_token")));
    f->conn.token_expires_at = time(NULL) + 14 * 86400;
    f->conn.api_base = xasprintf("%s/admin/v2", sim_base_url(f->shop));
    snprintf(f->token_url, sizeof f->token_url, "%s/oauth2/token", sim_base_url(f->shop));
    f->apps[MODEL_PLATFORM_SALLA] = &f->app;
    tt_resp_release(&r);
    struct th_err err;
    assert_int_equal(store_conn_put(f->store, &f->conn, &err), 0);
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
    f->conn.store_id = 251073;
    f->conn.access_token = xstrdup(json_string_value(json_object_get(r.json, "authorization")));
    f->conn.manager_token = xstrdup(json_string_value(json_object_get(r.json, "access_token")));
    f->conn.refresh_token = xstrdup(json_string_value(json_object_get(r.json, "refresh_token")));
    f->conn.token_expires_at = time(NULL) + 365 * 86400;
    f->conn.api_base = xasprintf("%s/v1", sim_base_url(f->shop));
    snprintf(f->token_url, sizeof f->token_url, "%s/oauth/token", sim_base_url(f->shop));
    f->apps[MODEL_PLATFORM_ZID] = &f->app;
    f->conn.webhook_strategy = xstrdup("basic");
    tt_resp_release(&r);
    struct th_err err;
    assert_int_equal(store_conn_put(f->store, &f->conn, &err), 0);
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

static size_t round_queued(struct fx *f)
{
    struct poller_stats st;
    struct th_err err;
    if (poller_round(f->store, f->hc, f->apps, time(NULL), &st, &err) != 0)
        fail_msg("poll: %s", err.msg);
    assert_int_equal(st.failed, 0);
    assert_int_equal(st.stores, 1);
    return st.queued;
}

static void drain(struct fx *f)
{
    struct worker_config wc = {.store = f->store, .backoff_base_ms = 5, .qoyod_rpm = -1};
    struct th_err err;
    for (int i = 0; i < 500; i++) {
        assert_int_equal(worker_drain(&wc, worker_now_ms() + 20000, &err), 0);
        int64_t n = 0;
        assert_int_equal(store_job_count(f->store, &n, &err), 0);
        if (n == 0) return;
        tt_sleep_ms(10);
    }
    fail_msg("jobs did not finish");
}

static json_t *generate(struct fx *f, const char *path, const char *body)
{
    struct tt_resp r;
    tt_http("POST", tt_url(f->shop, "%s", path), NULL, body, &r);
    assert_int_equal(r.status, 201);
    json_t *ids = json_incref(json_object_get(r.json, "orders"));
    tt_resp_release(&r);
    return ids;
}

static enum store_xfer xfer_of(struct fx *f, int64_t id)
{
    struct store_order so;
    struct th_err err;
    if (store_order_get(f->store, f->conn.id, id, &so, &err) != 0)
        fail_msg("order %lld unknown: %s", (long long)id, err.msg);
    enum store_xfer x = so.xfer;
    store_order_release(&so);
    return x;
}

/* Fails the test with each order's reason when an order did not end as
 * transferred (so a failure says why). */
static void all_transferred(struct fx *f, const json_t *ids)
{
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v) {
        struct store_order so;
        struct th_err err;
        if (store_order_get(f->store, f->conn.id, json_integer_value(v), &so, &err) != 0)
            fail_msg("order %lld unknown", (long long)json_integer_value(v));
        if (so.xfer != STORE_XFER_TRANSFERRED)
            fail_msg("order %lld: state %d: %s", (long long)so.order_id, so.xfer, so.reason);
        store_order_release(&so);
    }
}

static int invoices(struct fx *f)
{
    return tt_count_requests(f->qoyod, "POST", "/2.0/invoices", 201);
}

static void test_salla_orders_found_without_webhooks(void **state)
{
    struct fx *f = *state;
    json_t *ids = generate(f, "/_sim/salla/generate", "{\"store_id\":4242,\"count\":5}");
    assert_int_equal(round_queued(f), 5);
    drain(f);
    assert_int_equal(invoices(f), 5);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(xfer_of(f, json_integer_value(json_array_get(ids, i))),
                         STORE_XFER_TRANSFERRED);
    json_decref(ids);
    /* nothing new: nothing queued, nothing sent */
    assert_int_equal(round_queued(f), 0);
    drain(f);
    assert_int_equal(invoices(f), 5);

    /* orders waiting for their trigger status; one reaches it, no webhook */
    f->conn.trigger = MODEL_STATUS_COMPLETED;
    struct th_err err;
    assert_int_equal(store_conn_put_settings(f->store, &f->conn, &err), 0);
    ids = generate(f, "/_sim/salla/generate", "{\"store_id\":4242,\"count\":2}");
    assert_int_equal(round_queued(f), 2);
    drain(f);
    int64_t a = json_integer_value(json_array_get(ids, 0));
    int64_t b = json_integer_value(json_array_get(ids, 1));
    assert_int_equal(xfer_of(f, a), STORE_XFER_NOT_TRANSFERRED);
    assert_int_equal(round_queued(f), 0);
    struct tt_resp r;
    tt_http("POST", tt_url(f->shop, "/_sim/salla/orders/%lld/status", (long long)a), NULL,
            "{\"slug\":\"completed\"}", &r);
    assert_int_equal(r.status, 200);
    tt_resp_release(&r);
    assert_int_equal(round_queued(f), 1);
    drain(f);
    assert_int_equal(xfer_of(f, a), STORE_XFER_TRANSFERRED);
    assert_int_equal(xfer_of(f, b), STORE_XFER_NOT_TRANSFERRED);
    assert_int_equal(invoices(f), 6);
    json_decref(ids);
}

/* Processes sharing a store poll each store once: the round of the process
 * holding the store's lease polls it, the others skip it until the lease
 * runs out (its holder died), then one of them takes it over. */
static void test_rounds_share_stores_by_lease(void **state)
{
    struct fx *f = *state;
    json_t *ids = generate(f, "/_sim/salla/generate", "{\"store_id\":4242,\"count\":3}");
    json_decref(ids);
    struct poller_stats st;
    struct th_err err;
    assert_int_equal(
        poller_round_as(f->store, f->hc, f->apps, time(NULL), "host-a", 60000, &st, &err), 0);
    assert_int_equal(st.stores, 1);
    assert_int_equal(st.queued, 3);
    assert_int_equal(
        poller_round_as(f->store, f->hc, f->apps, time(NULL), "host-b", 60000, &st, &err), 0);
    assert_int_equal(st.stores, 0); /* host-a polls it */
    assert_int_equal(st.elsewhere, 1);
    assert_int_equal(st.listed, 0);
    assert_int_equal(poller_round_as(f->store, f->hc, f->apps, time(NULL), "host-a", 1, &st, &err),
                     0);
    assert_int_equal(st.stores, 1); /* its holder renews it (for 1 ms now) */
    usleep(20000);                  /* host-a "died": its lease ran out */
    assert_int_equal(
        poller_round_as(f->store, f->hc, f->apps, time(NULL), "host-b", 60000, &st, &err), 0);
    assert_int_equal(st.stores, 1);
    assert_int_equal(st.elsewhere, 0);
    assert_int_equal(st.listed, 3);
    assert_int_equal(st.queued, 0); /* the same orders: already queued */
    assert_int_equal(
        poller_round_as(f->store, f->hc, f->apps, time(NULL), "host-a", 60000, &st, &err), 0);
    assert_int_equal(st.elsewhere, 1);
}

static void test_a_failing_list_is_retried_next_round(void **state)
{
    struct fx *f = *state;
    json_t *ids = generate(f, "/_sim/salla/generate", "{\"store_id\":4242,\"count\":3}");
    json_decref(ids);
    tt_faults(f->shop, "{\"match\":\"GET /admin/v2/orders\",\"mode\":\"error\",\"status\":503,"
                       "\"count\":1}");
    struct poller_stats st;
    struct th_err err;
    assert_int_equal(poller_round(f->store, f->hc, f->apps, time(NULL), &st, &err), 0);
    assert_int_equal(st.failed, 1);
    assert_int_equal(st.queued, 0);
    assert_int_equal(round_queued(f), 3);
}

/* The store's tokens as saved. */
static struct store_conn stored(struct fx *f)
{
    struct store_conn c;
    struct th_err err;
    if (store_conn_get(f->store, f->conn.id, &c, &err) != 0) fail_msg("conn: %s", err.msg);
    return c;
}

static void expire_tokens(struct fx *f, const char *platform, long long store_id)
{
    struct tt_resp r;
    char body[64];
    snprintf(body, sizeof body, "{\"store_id\":%lld}", store_id);
    tt_http("POST", tt_url(f->shop, "/_sim/%s/tokens/expire", platform), NULL, body, &r);
    assert_int_equal(r.status, 200);
    assert_true(json_integer_value(json_object_get(r.json, "expired")) >= 1);
    tt_resp_release(&r);
}

/* The store ends its access token early (the fault matrix's MATRIX_EXPIRE_S)
 * and no order moves, so no transfer refreshes it: the poll itself refreshes
 * the token (saving the new pair) and still lists and queues every order,
 * round after round. On the old code the listing failed with TH_EAUTH every
 * round and queued nothing. */
static void expired_token_still_polled(struct fx *f, const char *platform, long long store_id,
                                       const char *gen)
{
    char body[64];
    snprintf(body, sizeof body, "{\"store_id\":%lld,\"count\":3}", store_id);
    json_t *ids = generate(f, gen, body);
    size_t n = json_array_size(ids);
    assert_true(n > 0);
    expire_tokens(f, platform, store_id);
    assert_int_equal(round_queued(f), n);
    struct store_conn c = stored(f);
    assert_string_equal(c.status, "active");
    assert_string_not_equal(c.access_token, f->conn.access_token);
    assert_string_not_equal(c.refresh_token, f->conn.refresh_token);
    assert_true(c.token_expires_at > time(NULL));
    drain(f); /* the worker uses the saved token: no refresh needed there */
    all_transferred(f, ids);
    assert_int_equal(invoices(f), (int)n);
    json_decref(ids);
    /* expired again: the new refresh token is used, not the spent one */
    ids = generate(f, gen, body);
    expire_tokens(f, platform, store_id);
    assert_int_equal(round_queued(f), json_array_size(ids));
    struct store_conn c2 = stored(f);
    assert_string_equal(c2.status, "active");
    assert_string_not_equal(c2.refresh_token, c.refresh_token);
    store_conn_release(&c2);
    store_conn_release(&c);
    json_decref(ids);
}

static void test_salla_expired_token_refreshed_by_poll(void **state)
{
    expired_token_still_polled(*state, "salla", 4242, "/_sim/salla/generate");
}

static void test_zid_expired_token_refreshed_by_poll(void **state)
{
    expired_token_still_polled(*state, "zid", 251073, "/_sim/zid/generate");
}

struct poll_thread {
    struct fx *f;
    struct poller_stats st;
    int rc;
};

static void *poll_main(void *arg)
{
    struct poll_thread *pt = arg;
    struct th_err err;
    pt->rc = poller_round(pt->f->store, pt->f->hc, pt->f->apps, time(NULL), &pt->st, &err);
    return NULL;
}

/* A poll round and the worker meet the same expired token at once (the
 * token answer is slowed so that one refresh is still under way when the
 * other side needs one): Salla's refresh token is single use and a reuse
 * revokes the grant, so both must go through the one refresh path. One
 * refresh is made, the connection stays active, every order is queued and
 * transferred. With a copy of the refresh code under its own lock, the
 * second refresh spends the same token and the store needs a reinstall. */
static void test_poll_and_transfer_refresh_once(void **state)
{
    struct fx *f = *state;
    json_t *first = generate(f, "/_sim/salla/generate", "{\"store_id\":4242,\"count\":3}");
    assert_int_equal(round_queued(f), 3);
    expire_tokens(f, "salla", 4242);
    json_t *later = generate(f, "/_sim/salla/generate", "{\"store_id\":4242,\"count\":2}");
    tt_faults(f->shop, "{\"match\":\"POST /oauth2/token\",\"mode\":\"latency\","
                       "\"latency_ms\":400}");
    struct poll_thread pt = {.f = f};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, poll_main, &pt), 0);
    struct worker_config wc = {.store = f->store, .backoff_base_ms = 5, .qoyod_rpm = -1};
    wc.apps[MODEL_PLATFORM_SALLA] = f->app;
    struct th_err err;
    assert_int_equal(worker_drain(&wc, worker_now_ms() + 20000, &err), 0);
    pthread_join(th, NULL);
    assert_int_equal(pt.rc, 0);
    assert_int_equal(pt.st.failed, 0);
    assert_int_equal(pt.st.reinstall, 0);
    assert_int_equal(pt.st.listed, 5);
    assert_int_equal(tt_count_requests(f->shop, "POST", "/oauth2/token", -2), 1);
    struct store_conn c = stored(f);
    assert_string_equal(c.status, "active");
    store_conn_release(&c);
    for (int i = 0; i < 500; i++) {
        assert_int_equal(worker_drain(&wc, worker_now_ms() + 20000, &err), 0);
        int64_t n = 0;
        assert_int_equal(store_job_count(f->store, &n, &err), 0);
        if (n == 0) break;
        tt_sleep_ms(10);
    }
    all_transferred(f, first);
    all_transferred(f, later);
    assert_int_equal(invoices(f), 5);
    json_decref(first);
    json_decref(later);
}

/* The refresh token was spent elsewhere (Salla revokes the whole chain on
 * reuse): the poll says the grant is gone as a transfer does (the
 * connection "needs_reinstall", the reason names the reinstall), and later
 * rounds leave the store alone until the merchant reinstalls. */
static void test_poll_gone_grant_needs_reinstall(void **state)
{
    struct fx *f = *state;
    json_decref(generate(f, "/_sim/salla/generate", "{\"store_id\":4242,\"count\":2}"));
    struct tt_resp r;
    char *form = xasprintf("grant_type=refresh_token&refresh_token=%s&client_id=demo-client&"
                           "client_secret=demo-secret",
                           f->conn.refresh_token);
    const char *h[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    tt_http("POST", tt_url(f->shop, "/oauth2/token"), h, form, &r);
    assert_int_equal(r.status, 200); /* spent by someone else; tarheel's copy is now stale */
    tt_resp_release(&r);
    free(form);
    expire_tokens(f, "salla", 4242);
    struct poller_stats st;
    struct th_err err;
    assert_int_equal(poller_round(f->store, f->hc, f->apps, time(NULL), &st, &err), 0);
    assert_int_equal(st.reinstall, 1);
    assert_int_equal(st.queued, 0);
    struct store_conn c = stored(f);
    assert_string_equal(c.status, "needs_reinstall");
    store_conn_release(&c);
    int refreshes = tt_count_requests(f->shop, "POST", "/oauth2/token", -2);
    assert_int_equal(poller_round(f->store, f->hc, f->apps, time(NULL), &st, &err), 0);
    assert_int_equal(st.stores, 0);
    assert_int_equal(tt_count_requests(f->shop, "POST", "/oauth2/token", -2), refreshes);
}

static void test_zid_orders_found_by_update_time(void **state)
{
    struct fx *f = *state;
    json_t *ids = generate(f, "/_sim/zid/generate", "{\"store_id\":251073,\"count\":4}");
    assert_int_equal(round_queued(f), 4);
    drain(f);
    all_transferred(f, ids);
    assert_int_equal(invoices(f), 4);
    assert_int_equal(round_queued(f), 0);
    int64_t cursor = 0;
    struct th_err err;
    assert_int_equal(store_map_get(f->store, f->conn.id, "poll", "cursor", &cursor, &err), 0);
    assert_true(cursor >= time(NULL) - 120 && cursor <= time(NULL));
    /* a status change with no webhook (no subscription): found by updated_at */
    int64_t a = json_integer_value(json_array_get(ids, 0));
    struct tt_resp r;
    tt_http("POST", tt_url(f->shop, "/_sim/zid/orders/%lld/status", (long long)a), NULL,
            "{\"status\":\"delivered\"}", &r);
    assert_int_equal(r.status, 200);
    tt_resp_release(&r);
    assert_int_equal(round_queued(f), 1);
    drain(f);
    assert_int_equal(invoices(f), 4); /* already transferred: no second invoice */
    json_decref(ids);
}

/* Zid suspends an endpoint after 30 failures in an hour and drops its
 * events: the poll sees it broken, recovers it, and records the health. */
static void test_zid_broken_webhooks_recovered(void **state)
{
    struct fx *f = *state;
    struct tt_resp r;
    tt_http("POST", tt_url(f->shop, "/_sim/zid/app"), NULL, "{\"max_attempts\":1}", &r);
    tt_resp_release(&r);
    char *bearer = xasprintf("Authorization: Bearer %s", f->conn.access_token);
    char *mgr = xasprintf("X-Manager-Token: %s", f->conn.manager_token);
    const char *h[] = {bearer, mgr, NULL};
    tt_http("POST", tt_url(f->shop, "/v1/managers/webhooks"), h,
            "{\"event\":\"order.create\",\"target_url\":\"http://127.0.0.1:1/dead\","
            "\"original_id\":\"tarheel\"}",
            &r);
    assert_int_equal(r.status, 201);
    tt_resp_release(&r);
    json_decref(generate(f, "/_sim/zid/generate", "{\"store_id\":251073,\"count\":30}"));
    assert_int_equal(tt_webhooks_drain(f->shop, 10000), 0);
    tt_http("GET", tt_url(f->shop, "/v1/managers/webhooks"), h, NULL, &r);
    assert_string_equal(json_string_value(jv_path(r.json, "data.0.health_status")), "broken");
    tt_resp_release(&r);
    assert_int_equal(round_queued(f), 30); /* the poll brings what the webhooks lost */
    tt_http("GET", tt_url(f->shop, "/v1/managers/webhooks"), h, NULL, &r);
    assert_string_equal(json_string_value(jv_path(r.json, "data.0.health_status")), "healthy");
    tt_resp_release(&r);
    int64_t health = -1, recovered = 0;
    struct th_err err;
    assert_int_equal(store_map_get(f->store, f->conn.id, "health", "webhooks", &health, &err), 0);
    assert_int_equal(health, 2);
    assert_int_equal(store_map_get(f->store, f->conn.id, "health", "recovered_at", &recovered, &err),
                     0);
    assert_true(recovered > 0);
    free(bearer);
    free(mgr);
}

/* A Zid store at each trigger setting: five orders at new, preparing, ready,
 * indelivery and delivered give exactly 5, 3, 2 and 1 invoices
 * (docs/SETTINGS.md). */
static void test_zid_each_trigger_exact_invoices(void **unused)
{
    (void)unused;
    static const struct {
        enum model_status trigger;
        int want;
    } cases[] = {{MODEL_STATUS_NEW, 5},
                 {MODEL_STATUS_READY, 3},
                 {MODEL_STATUS_IN_TRANSIT, 2},
                 {MODEL_STATUS_COMPLETED, 1}};
    static const char *const statuses[] = {"new", "preparing", "ready", "indelivery",
                                           "delivered"};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        void *st = NULL;
        assert_int_equal(setup_zid(&st), 0);
        struct fx *f = st;
        f->conn.trigger = cases[c].trigger;
        struct th_err err;
        assert_int_equal(store_conn_put_settings(f->store, &f->conn, &err), 0);
        json_t *ids = generate(f, "/_sim/zid/generate", "{\"store_id\":251073,\"count\":5}");
        for (size_t i = 0; i < 5; i++) {
            struct tt_resp r;
            char body[64];
            snprintf(body, sizeof body, "{\"status\":\"%s\"}", statuses[i]);
            tt_http("POST",
                    tt_url(f->shop, "/_sim/zid/orders/%lld/status",
                           (long long)json_integer_value(json_array_get(ids, i))),
                    NULL, body, &r);
            assert_int_equal(r.status, 200);
            tt_resp_release(&r);
        }
        assert_int_equal(round_queued(f), 5);
        drain(f);
        if (invoices(f) != cases[c].want)
            fail_msg("trigger %s: %d invoices, want %d", model_status_name(cases[c].trigger),
                     invoices(f), cases[c].want);
        json_decref(ids);
        teardown(&st);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_salla_orders_found_without_webhooks, setup_salla,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rounds_share_stores_by_lease, setup_salla, teardown),
        cmocka_unit_test_setup_teardown(test_a_failing_list_is_retried_next_round, setup_salla,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_zid_orders_found_by_update_time, setup_zid, teardown),
        cmocka_unit_test_setup_teardown(test_salla_expired_token_refreshed_by_poll, setup_salla,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_zid_expired_token_refreshed_by_poll, setup_zid,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_poll_gone_grant_needs_reinstall, setup_salla,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_poll_and_transfer_refresh_once, setup_salla, teardown),
        cmocka_unit_test(test_zid_each_trigger_exact_invoices),
        cmocka_unit_test_setup_teardown(test_zid_broken_webhooks_recovered, setup_zid, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
