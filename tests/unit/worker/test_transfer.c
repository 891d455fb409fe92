/*
 * Tests for src/worker/transfer.c (and worker.c's drain): orders from a
 * scripted Salla order API go through the real store (SQLite, temp file) to
 * the Qoyod emulator, with the emulator's faults on. Every case asserts the
 * exact number of invoices in Qoyod and the order's final state.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <signal.h>
#include <sys/wait.h>

#include <sqlite3.h>

#include "core/crash.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "net/httpd.h"
#include "sim/qoyod_sim.h"
#include "store/store.h"
#include "th_test.h"
#include "tt_salla_stub.h"
#include "worker/report.h"
#include "worker/stock.h"
#include "worker/transfer.h"
#include "worker/worker.h"

#define KEY "k1"
#define STORE 5550001
#define TOKEN TT_SALLA_TOKEN

/* ---------------------------------------------------------------------- */
/* Fixture                                                                  */

struct fx {
    char dir[64];
    struct store *store;
    struct sim *qoyod;
    struct tt_salla_stub salla;
    struct store_conn conn;
    int64_t product_id;
};

static void qoyod_post(struct fx *f, const char *path, const char *body, int64_t *id)
{
    const char *h[] = {"API-KEY: " KEY, "Content-Type: application/json", NULL};
    struct tt_resp r;
    tt_http("POST", tt_url(f->qoyod, "/2.0%s", path), h, body, &r);
    if (r.status != 201 && r.status != 200) fail_msg("POST %s: %ld %s", path, r.status, r.body);
    if (id) {
        json_t *obj = json_object_iter_value(json_object_iter(r.json));
        *id = json_integer_value(json_object_get(obj, "id"));
    }
    tt_resp_release(&r);
}

/* A product with SKU-1 and 50 in stock at inventory 1. */
static void seed_qoyod(struct fx *f)
{
    qoyod_post(f, "/products",
               "{\"product\":{\"sku\":\"SKU-1\",\"name_ar\":\"قميص\",\"name_en\":\"Shirt\","
               "\"type\":\"Product\",\"product_unit_type_id\":6,\"category_id\":1,\"tax_id\":1,"
               "\"track_quantity\":\"1\",\"sale_item\":\"1\",\"selling_price\":\"100.0\","
               "\"sales_account_id\":17,\"purchase_item\":\"1\",\"buying_price\":\"60.0\","
               "\"expense_account_id\":12}}",
               &f->product_id);
    char *adj = xasprintf("{\"inventory_adjustment\":{\"inventory_id\":1,\"revenue_account_id\":18,"
                          "\"expense_account_id\":12,\"date\":\"2026-11-01\",\"line_items\":[{"
                          "\"product_id\":%lld,\"actual_quantity\":50,\"rate\":60}]}}",
                          (long long)f->product_id);
    qoyod_post(f, "/inventory_adjustments", adj, NULL);
    free(adj);
}

static int setup(void **state)
{
    struct fx *f = xcalloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/th_transferXXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char *url = xasprintf("sqlite:%s/t.db", f->dir);
    struct th_err err;
    if (store_open(&f->store, url, &err) != 0) fail_msg("store: %s", err.msg);
    free(url);
    f->qoyod = tt_sim_start(&qoyod_sim_ops, (const char *[]){"api-key", KEY, NULL});
    tt_salla_stub_start(&f->salla);
    seed_qoyod(f);

    struct store_conn *c = &f->conn;
    c->platform = MODEL_PLATFORM_SALLA;
    c->store_id = STORE;
    c->access_token = xstrdup(TOKEN);
    c->webhook_secret = xstrdup("s");
    c->webhook_strategy = xstrdup("signature");
    c->api_base = xstrdup(f->salla.base);
    c->status = xstrdup("active");
    c->qoyod_base = xasprintf("%s/2.0", sim_base_url(f->qoyod));
    c->qoyod_api_key = xstrdup(KEY);
    c->inventory_id = 1;
    c->trigger = MODEL_STATUS_NEW;
    c->customer_per_invoice = 1;
    c->number_by_order = 1;
    c->financial_invoice = 1;
    assert_int_equal(store_conn_put(f->store, c, &err), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    tt_salla_stub_stop(&f->salla);
    tt_sim_stop(f->qoyod);
    store_conn_release(&f->conn);
    store_close(f->store);
    char *cmd = xasprintf("rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(f);
    return 0;
}

static void save_conn(struct fx *f)
{
    struct th_err err;
    assert_int_equal(store_conn_put(f->store, &f->conn, &err), 0);
}

/* Ingests an order event (dedupe key given) and runs jobs until none is left
 * or 20 s pass. */
static void event(struct fx *f, int64_t order_id, const char *key)
{
    int dup = 0;
    struct th_err err;
    assert_int_equal(store_event_ingest(f->store, f->conn.id, key, "order.updated", order_id, "{}",
                                        2, &dup, &err),
                     0);
}

static struct worker_config wconfig(struct fx *f)
{
    struct worker_config wc = {.store = f->store, .backoff_base_ms = 5};
    wc.apps[MODEL_PLATFORM_SALLA] = (struct platform_app){
        .client_id = "cid", .client_secret = "cs", .token_url = f->salla.token_url};
    return wc;
}

static void drain(struct fx *f)
{
    struct worker_config wc = wconfig(f);
    struct th_err err;
    for (int i = 0; i < 2000; i++) {
        assert_int_equal(worker_drain(&wc, worker_now_ms() + 20000, &err), 0);
        int64_t n = 0;
        assert_int_equal(store_job_count(f->store, &n, &err), 0);
        if (n == 0) return;
        tt_sleep_ms(10);
    }
    fail_msg("jobs did not finish");
}

static struct store_order get_order(struct fx *f, int64_t id)
{
    struct store_order o;
    struct th_err err;
    if (store_order_get(f->store, f->conn.id, id, &o, &err) != 0)
        fail_msg("order %lld not in the store: %s", (long long)id, err.msg);
    return o;
}

/* Invoices in Qoyod with this reference (0 when the index is empty). */
static int invoices_with_ref(struct fx *f, const char *ref)
{
    const char *h[] = {"API-KEY: " KEY, NULL};
    struct tt_resp r;
    tt_http("GET", tt_url(f->qoyod, "/2.0/invoices?q%%5Breference_eq%%5D=%s", ref), h, NULL, &r);
    int n = r.status == 200 ? (int)json_array_size(json_object_get(r.json, "invoices")) : 0;
    if (r.status != 200 && r.status != 404) fail_msg("invoice lookup: %ld %s", r.status, r.body);
    tt_resp_release(&r);
    return n;
}

static json_t *the_invoice(struct fx *f, const char *ref)
{
    const char *h[] = {"API-KEY: " KEY, NULL};
    struct tt_resp r;
    tt_http("GET", tt_url(f->qoyod, "/2.0/invoices?q%%5Breference_eq%%5D=%s", ref), h, NULL, &r);
    json_t *inv = json_incref(json_array_get(json_object_get(r.json, "invoices"), 0));
    tt_resp_release(&r);
    assert_non_null(inv);
    return inv;
}

static const struct tt_order_spec base = {.id = 9001,
                                       .number = "1001",
                                       .slug = "under_review",
                                       .sku = "SKU-1",
                                       .qty = 2,
                                       .price = 10000,
                                       .tax_bp = 1500,
                                       .shipping = 2000,
                                       .customer_id = 71,
                                       .phone = "501112233"};

/* ---------------------------------------------------------------------- */

static void test_happy_path_paid_invoice(void **state)
{
    struct fx *f = *state;
    tt_salla_stub_put(&f->salla, &base);
    event(f, base.id, "k1");
    drain(f);
    struct store_order o = get_order(f, base.id);
    assert_int_equal(o.xfer, STORE_XFER_TRANSFERRED);
    assert_string_equal(o.qoyod_reference, "1001");
    /* 2 × 100 + 20 shipping, 15 % VAT = 253.00 */
    assert_int_equal(o.total, 25300);
    assert_int_equal(o.tax, 3300); /* kept for the monthly report's VAT */
    assert_int_equal(o.qoyod_total, 25300);
    assert_true(o.qoyod_payment_id > 0);
    store_order_release(&o);
    assert_int_equal(invoices_with_ref(f, "1001"), 1);
    json_t *inv = the_invoice(f, "1001");
    assert_string_equal(json_string_value(json_object_get(inv, "status")), "Paid");
    assert_string_equal(json_string_value(json_object_get(inv, "total")), "253.0");
    json_decref(inv);
}

static void test_duplicates_and_manual_resend_make_one_invoice(void **state)
{
    struct fx *f = *state;
    tt_salla_stub_put(&f->salla, &base);
    event(f, base.id, "same");
    event(f, base.id, "same");
    event(f, base.id, "other-delivery");
    drain(f);
    struct th_err err;
    assert_int_equal(store_job_enqueue(f->store, f->conn.id, base.id, &err), 0);
    drain(f);
    assert_int_equal(invoices_with_ref(f, "1001"), 1);
    assert_int_equal(tt_count_requests(f->qoyod, "POST", "/2.0/invoices", -2), 1);
}

/* Each fault on invoice creation still ends with exactly one invoice. */
static void test_faults_on_invoice_create(void **state)
{
    struct fx *f = *state;
    static const char *faults[] = {
        "{\"match\":\"POST /2.0/invoices\",\"mode\":\"commit_then_drop\",\"count\":1}",
        "{\"match\":\"POST /2.0/invoices\",\"mode\":\"reset\",\"count\":1}",
        "{\"match\":\"POST /2.0/invoices\",\"mode\":\"error\",\"status\":503,\"count\":2}",
        "{\"match\":\"POST /2.0/invoices\",\"mode\":\"error\",\"status\":500,\"count\":1}",
        "{\"match\":\"POST /2.0/invoices\",\"mode\":\"rate_limit\",\"retry_after\":0,\"count\":2}",
        "{\"match\":\"* /2.0/*\",\"mode\":\"latency\",\"latency_ms\":20,\"count\":5}",
        "{\"match\":\"POST /2.0/invoice_payments\",\"mode\":\"commit_then_drop\",\"count\":1}",
        /* the answer is lost, and the lookup that settles it fails once too */
        "{\"faults\":[{\"match\":\"POST /2.0/invoices\",\"mode\":\"commit_then_drop\","
        "\"count\":1},{\"match\":\"GET /2.0/invoices\",\"mode\":\"error\",\"status\":503,"
        "\"count\":1}]}",
    };
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++) {
        struct tt_order_spec o = base;
        char num[16];
        snprintf(num, sizeof num, "F%zu", i);
        o.id = 7000 + (int64_t)i;
        o.number = num;
        tt_salla_stub_put(&f->salla, &o);
        tt_faults(f->qoyod, faults[i]);
        event(f, o.id, num);
        drain(f);
        struct store_order so = get_order(f, o.id);
        if (so.xfer != STORE_XFER_TRANSFERRED)
            fail_msg("fault %s: state %d reason %s", faults[i], so.xfer, so.reason);
        store_order_release(&so);
        int n = invoices_with_ref(f, num);
        if (n != 1) fail_msg("fault %s: %d invoices", faults[i], n);
        json_t *inv = the_invoice(f, num);
        assert_string_equal(json_string_value(json_object_get(inv, "status")), "Paid");
        json_decref(inv);
        struct tt_resp r;
        tt_http("DELETE", tt_url(f->qoyod, "/_sim/faults"), NULL, NULL, &r);
        tt_resp_release(&r);
    }
}

static void test_missing_sku_fails_with_reason(void **state)
{
    struct fx *f = *state;
    struct tt_order_spec o = base;
    o.sku = "";
    tt_salla_stub_put(&f->salla, &o);
    event(f, o.id, "x");
    drain(f);
    struct store_order so = get_order(f, o.id);
    assert_int_equal(so.xfer, STORE_XFER_FAILED);
    assert_non_null(strstr(so.reason, "item 'قميص أزرق' has no SKU in Salla"));
    store_order_release(&so);
    assert_int_equal(tt_count_requests(f->qoyod, "POST", "/2.0/invoices", -2), 0);
}

static void test_trigger_waits_for_status(void **state)
{
    struct fx *f = *state;
    f->conn.trigger = MODEL_STATUS_COMPLETED;
    save_conn(f);
    tt_salla_stub_put(&f->salla, &base);
    event(f, base.id, "a");
    drain(f);
    struct store_order so = get_order(f, base.id);
    assert_int_equal(so.xfer, STORE_XFER_NOT_TRANSFERRED);
    assert_int_equal(so.status, MODEL_STATUS_NEW);
    store_order_release(&so);
    assert_int_equal(invoices_with_ref(f, "1001"), 0);

    struct tt_order_spec done = base;
    done.slug = "completed";
    tt_salla_stub_put(&f->salla, &done);
    event(f, base.id, "b");
    drain(f);
    so = get_order(f, base.id);
    assert_int_equal(so.xfer, STORE_XFER_TRANSFERRED);
    store_order_release(&so);
    assert_int_equal(invoices_with_ref(f, "1001"), 1);
}

/* Orders created before the connection date wait for the merchant; sending
 * one by hand transfers it. The stub's orders are dated 2026-11-20 10:00
 * Riyadh time (07:00 UTC). */
static void test_orders_before_connection_only_by_hand(void **state)
{
    struct fx *f = *state;
    f->conn.connected_at = 1795158000 + 86400; /* 2026-11-21 07:00 UTC: after the order */
    save_conn(f);
    tt_salla_stub_put(&f->salla, &base);
    event(f, base.id, "a");
    drain(f);
    struct store_order so = get_order(f, base.id);
    assert_int_equal(so.xfer, STORE_XFER_NOT_TRANSFERRED);
    assert_non_null(strstr(so.reason, "before the store was connected"));
    store_order_release(&so);
    assert_int_equal(invoices_with_ref(f, "1001"), 0);
    event(f, base.id, "b"); /* later webhooks do not change that */
    drain(f);
    assert_int_equal(invoices_with_ref(f, "1001"), 0);

    struct th_err err;
    assert_int_equal(store_job_enqueue(f->store, f->conn.id, base.id, &err), 0);
    drain(f);
    so = get_order(f, base.id);
    assert_int_equal(so.xfer, STORE_XFER_TRANSFERRED);
    assert_null(so.reason);
    store_order_release(&so);
    assert_int_equal(invoices_with_ref(f, "1001"), 1);

    /* a connection made before the order: automatic */
    struct tt_order_spec next = base;
    next.id = 9002, next.number = "1002";
    f->conn.connected_at = 1795158000 - 86400; /* 2026-11-19 07:00 UTC */
    save_conn(f);
    tt_salla_stub_put(&f->salla, &next);
    event(f, next.id, "c");
    drain(f);
    assert_int_equal(invoices_with_ref(f, "1002"), 1);
}

/* Sending by hand does not wait for the trigger status. */
static void test_manual_send_ignores_trigger(void **state)
{
    struct fx *f = *state;
    f->conn.trigger = MODEL_STATUS_COMPLETED;
    save_conn(f);
    tt_salla_stub_put(&f->salla, &base); /* under_review */
    struct th_err err;
    assert_int_equal(store_job_enqueue(f->store, f->conn.id, base.id, &err), 0);
    drain(f);
    struct store_order so = get_order(f, base.id);
    assert_int_equal(so.xfer, STORE_XFER_TRANSFERRED);
    store_order_release(&so);
    assert_int_equal(invoices_with_ref(f, "1001"), 1);
    /* but a cancelled order is still skipped, by hand or not */
    struct tt_order_spec c = base;
    c.id = 9003, c.number = "1003", c.slug = "canceled";
    tt_salla_stub_put(&f->salla, &c);
    assert_int_equal(store_job_enqueue(f->store, f->conn.id, c.id, &err), 0);
    drain(f);
    so = get_order(f, c.id);
    assert_int_equal(so.xfer, STORE_XFER_SKIPPED);
    store_order_release(&so);
    assert_int_equal(invoices_with_ref(f, "1003"), 0);
}

/* Tokens about to expire are refreshed once, under the store's lock, even
 * with several workers on the store's orders at once; both new tokens are
 * saved before use. */
static void test_token_refreshed_once_before_expiry(void **state)
{
    struct fx *f = *state;
    free(f->conn.refresh_token);
    f->conn.refresh_token = xstrdup("rt-0");
    f->conn.token_expires_at = time(NULL) + 3600; /* inside the refresh margin */
    save_conn(f);
    f->salla.refresh_delay_ms = 200; /* so the other workers queue on the lock */
    for (int i = 0; i < 8; i++) {
        struct tt_order_spec o = base;
        char num[16], key[16];
        snprintf(num, sizeof num, "%d", 2000 + i);
        snprintf(key, sizeof key, "e%d", i);
        o.id = 9100 + i, o.number = num;
        tt_salla_stub_put(&f->salla, &o);
        event(f, o.id, key);
    }
    struct worker_config wc = wconfig(f);
    wc.threads = 4;
    struct worker *w;
    struct th_err err;
    assert_int_equal(worker_start(&w, &wc, &err), 0);
    for (int i = 0; i < 1000; i++) {
        int64_t n = 1;
        assert_int_equal(store_job_count(f->store, &n, &err), 0);
        if (n == 0) break;
        tt_sleep_ms(10);
    }
    worker_stop(w);
    assert_int_equal(f->salla.refresh_attempts, 1);
    assert_int_equal(f->salla.refreshes, 1);
    struct store_conn c;
    assert_int_equal(store_conn_get(f->store, f->conn.id, &c, &err), 0);
    assert_string_equal(c.access_token, "tok-1");
    assert_string_equal(c.refresh_token, "rt-1");
    assert_true(c.token_expires_at > time(NULL) + 13 * 24 * 3600);
    assert_string_equal(c.status, "active");
    store_conn_release(&c);
    for (int i = 0; i < 8; i++) {
        char num[16];
        snprintf(num, sizeof num, "%d", 2000 + i);
        assert_int_equal(invoices_with_ref(f, num), 1);
    }
}

/* A token refused before its expiry (rotated elsewhere) is refreshed once
 * and the order goes through. */
static void test_refused_token_forces_one_refresh(void **state)
{
    struct fx *f = *state;
    free(f->conn.refresh_token);
    f->conn.refresh_token = xstrdup("rt-0");
    f->conn.token_expires_at = time(NULL) + 10 * 24 * 3600;
    save_conn(f);
    snprintf(f->salla.token, sizeof f->salla.token, "revoked-elsewhere");
    tt_salla_stub_put(&f->salla, &base);
    event(f, base.id, "a");
    drain(f);
    assert_int_equal(f->salla.refreshes, 1);
    assert_int_equal(invoices_with_ref(f, "1001"), 1);
}

/* The token expires between the order's read and the read of a new
 * product's stock (the fault matrix found it): the store refuses the second
 * call; the token is refreshed and the order transferred, never failed. */
static void test_token_expired_mid_transfer_is_refreshed(void **state)
{
    struct fx *f = *state;
    free(f->conn.refresh_token);
    f->conn.refresh_token = xstrdup("rt-0");
    f->conn.token_expires_at = time(NULL) + 10 * 24 * 3600;
    save_conn(f);
    f->salla.product_json = "{\"status\":200,\"success\":true,\"data\":{\"id\":78,"
                            "\"sku\":\"NEW-3\",\"type\":\"product\",\"quantity\":5,"
                            "\"unlimited_quantity\":false,\"cost_price\":\"35\"}}";
    f->salla.expire_after_order = 1;
    struct tt_order_spec o = base;
    o.sku = "NEW-3";
    tt_salla_stub_put(&f->salla, &o);
    event(f, o.id, "x");
    drain(f);
    struct store_order so = get_order(f, o.id);
    if (so.xfer != STORE_XFER_TRANSFERRED) fail_msg("state %d: %s", so.xfer, so.reason);
    store_order_release(&so);
    assert_int_equal(f->salla.refreshes, 1);
    assert_int_equal(invoices_with_ref(f, "1001"), 1);
}

/* invalid_grant: the connection needs a reinstall, no more calls are made
 * for it, the order says why; a reinstall (new tokens) resumes it. */
static void test_revoked_grant_needs_reinstall(void **state)
{
    struct fx *f = *state;
    free(f->conn.refresh_token);
    f->conn.refresh_token = xstrdup("rt-already-used");
    f->conn.token_expires_at = time(NULL) + 60;
    save_conn(f);
    tt_salla_stub_put(&f->salla, &base);
    event(f, base.id, "a");
    struct worker_config wc = wconfig(f);
    struct th_err err;
    assert_int_equal(worker_drain(&wc, worker_now_ms() + 2000, &err), 0);
    struct store_conn c;
    assert_int_equal(store_conn_get(f->store, f->conn.id, &c, &err), 0);
    assert_string_equal(c.status, "needs_reinstall");
    store_conn_release(&c);
    struct store_order so = get_order(f, base.id);
    assert_int_equal(so.xfer, STORE_XFER_NOT_TRANSFERRED);
    assert_non_null(strstr(so.reason, "reinstall"));
    store_order_release(&so);
    assert_int_equal(f->salla.gets, 0); /* no order call with a dead grant */
    int attempts = f->salla.refresh_attempts;
    event(f, base.id, "b"); /* more webhooks: still no calls */
    assert_int_equal(worker_drain(&wc, worker_now_ms() + 1000, &err), 0);
    assert_int_equal(f->salla.refresh_attempts, attempts);
    assert_int_equal(f->salla.gets, 0);

    /* the merchant reinstalls: Easy Mode brings fresh tokens */
    free(f->conn.access_token);
    free(f->conn.refresh_token);
    free(f->conn.status);
    f->conn.access_token = xstrdup(TT_SALLA_TOKEN);
    f->conn.refresh_token = xstrdup("rt-0");
    f->conn.status = xstrdup("active");
    f->conn.token_expires_at = time(NULL) + 14 * 24 * 3600;
    save_conn(f);
    event(f, base.id, "c");
    drain(f);
    assert_int_equal(invoices_with_ref(f, "1001"), 1);
}

/* A 429 from Qoyod pauses every store on that Qoyod account for
 * Retry-After, never fails the order, and still makes one invoice each. */
static void test_rate_limit_pauses_the_qoyod_account(void **state)
{
    struct fx *f = *state;
    struct store_conn other = {0};
    other = f->conn;
    other.id = 0;
    other.store_id = STORE + 1; /* another store, same Qoyod account */
    struct th_err err;
    assert_int_equal(store_conn_put(f->store, &other, &err), 0);
    tt_faults(f->qoyod, "{\"match\":\"POST /2.0/invoices\",\"mode\":\"rate_limit\","
                        "\"retry_after\":2,\"count\":1}");
    tt_salla_stub_put(&f->salla, &base);
    struct tt_order_spec b = base;
    b.id = 9500, b.number = "B-1";
    tt_salla_stub_put(&f->salla, &b);

    struct worker_config wc = wconfig(f);
    wc.threads = 2;
    struct worker *w;
    assert_int_equal(worker_start(&w, &wc, &err), 0);
    event(f, base.id, "a");
    for (int i = 0; i < 500 && tt_count_requests(f->qoyod, "POST", "/2.0/invoices", 429) == 0; i++)
        tt_sleep_ms(10);
    assert_int_equal(tt_count_requests(f->qoyod, "POST", "/2.0/invoices", 429), 1);
    /* the other store's order arrives during the pause: it waits too */
    int dup = 0;
    assert_int_equal(store_event_ingest(f->store, other.id, "b", "order.updated", b.id, "{}", 2,
                                        &dup, &err),
                     0);
    tt_sleep_ms(800);
    assert_int_equal(tt_count_requests(f->qoyod, "POST", "/2.0/invoices", -2), 1);
    for (int i = 0; i < 1000; i++) {
        int64_t n = 1;
        assert_int_equal(store_job_count(f->store, &n, &err), 0);
        if (n == 0) break;
        tt_sleep_ms(10);
    }
    worker_stop(w);
    assert_int_equal(invoices_with_ref(f, "1001"), 1);
    /* the second store on the account has a reference prefix */
    char bref[32];
    snprintf(bref, sizeof bref, "S%lld-B-1", (long long)other.id);
    assert_int_equal(invoices_with_ref(f, bref), 1);
    struct store_order so = get_order(f, base.id);
    assert_int_equal(so.xfer, STORE_XFER_TRANSFERRED);
    store_order_release(&so);
}

/* The job row of the only job (SQLite fixture), read behind the store's back
 * to see what the worker scheduled. */
static int64_t job_col(struct fx *f, const char *col)
{
    char path[96], sql[96];
    snprintf(path, sizeof path, "%s/t.db", f->dir);
    snprintf(sql, sizeof sql, "SELECT %s FROM jobs", col);
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* Makes the job due now (instead of waiting for it). */
static void job_due(struct fx *f)
{
    char path[96];
    snprintf(path, sizeof path, "%s/t.db", f->dir);
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    assert_int_equal(sqlite3_exec(db, "UPDATE jobs SET run_after_ms = 0", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
}

/* One worker_drain: runs the job once (a retry is not due again within it);
 * *before and *after bracket it on the worker's clock. */
static void drain_once(struct fx *f, const struct worker_config *wc, int64_t *before,
                       int64_t *after)
{
    struct th_err err;
    *before = worker_now_ms();
    assert_int_equal(worker_drain(wc, *before + 20000, &err), 0);
    *after = worker_now_ms();
}

/* The worker's delay follows the cause (issue 8): three 429s from Qoyod
 * (Retry-After: 30) each wait exactly what Qoyod said, and neither count in
 * the job's attempts nor use up the order's; the 503 that follows is the
 * first failure, so it waits the first step of the backoff (base ±25 %),
 * not a step grown by the 429s before it. On the old code the job's
 * attempts counted every claim (1, 2, 3, then 4 for the 503, which waited
 * 8 × base) and the order's attempts were used up by rate limits. No
 * assertion depends on the machine's speed: the scheduled times are
 * checked against the worker's clock read around each run. */
static void test_retry_delay_follows_cause(void **state)
{
    struct fx *f = *state;
    tt_faults(f->qoyod, "{\"faults\":["
                        "{\"match\":\"POST /2.0/invoices\",\"mode\":\"rate_limit\","
                        "\"retry_after\":30,\"count\":3},"
                        "{\"match\":\"POST /2.0/invoices\",\"mode\":\"error\","
                        "\"status\":503,\"count\":1}]}");
    tt_salla_stub_put(&f->salla, &base);
    event(f, base.id, "a");
    struct worker_config wc = wconfig(f);
    wc.backoff_base_ms = 10000;
    int64_t t0, t1;
    for (int i = 1; i <= 3; i++) {
        drain_once(f, &wc, &t0, &t1);
        assert_int_equal(tt_count_requests(f->qoyod, "POST", "/2.0/invoices", 429), i);
        assert_int_equal(job_col(f, "attempts"), 0); /* the claim was not counted */
        int64_t at = job_col(f, "run_after_ms");
        if (at < t0 + 30000 || at > t1 + 30000)
            fail_msg("429 #%d: run after %lld ms, want Retry-After's 30000", i,
                     (long long)(at - t0));
        struct store_order so = get_order(f, base.id);
        assert_int_equal(so.xfer, STORE_XFER_TRANSFERRING);
        assert_int_equal(so.attempts, 1); /* only the first try (it may have sent something) */
        assert_int_equal(so.reason_code, TH_ERATE);
        store_order_release(&so);
        job_due(f);
    }
    drain_once(f, &wc, &t0, &t1);
    assert_int_equal(tt_count_requests(f->qoyod, "POST", "/2.0/invoices", 503), 1);
    assert_int_equal(job_col(f, "attempts"), 1); /* the first failure */
    int64_t at = job_col(f, "run_after_ms");
    if (at < t0 + 7500 || at > t1 + 12500)
        fail_msg("503 after three 429s: run after %lld ms, want 7500..12500", (long long)(at - t0));
    job_due(f);
    drain_once(f, &wc, &t0, &t1);
    struct th_err err;
    int64_t n = 1;
    assert_int_equal(store_job_count(f->store, &n, &err), 0);
    assert_int_equal(n, 0);
    struct store_order so = get_order(f, base.id);
    if (so.xfer != STORE_XFER_TRANSFERRED) fail_msg("state %d: %s", so.xfer, so.reason);
    assert_int_equal(so.attempts, 3); /* first try, the 503's, the last: not the 429s */
    store_order_release(&so);
    assert_int_equal(invoices_with_ref(f, "1001"), 1);
}

/* The retry policy as a pure function: the delay by cause, and which
 * causes count as failures. */
static void test_retry_policy(void **unused)
{
    (void)unused;
    for (int n = 1; n < 40; n++) {
        uint64_t rnd = (uint64_t)n * 7919;
        int64_t d = worker_retry_delay_ms(TRANSFER_CAUSE_FAILURE, 0, n, rnd, 1000);
        assert_int_equal(d, worker_backoff_ms(n, rnd, 1000));
        assert_true(d >= 750 && d <= 75000); /* capped at 60 s, ±25 % */
        /* a hint does not shorten a failure's backoff */
        assert_int_equal(worker_retry_delay_ms(TRANSFER_CAUSE_FAILURE, 5, n, rnd, 1000), d);
        /* a rate limit waits what the service said, whatever came before */
        assert_int_equal(worker_retry_delay_ms(TRANSFER_CAUSE_RATE, 7000, n, rnd, 1000), 7000);
        assert_int_equal(worker_retry_delay_ms(TRANSFER_CAUSE_RATE, 0, n, rnd, 1000), 1000);
        assert_int_equal(worker_retry_delay_ms(TRANSFER_CAUSE_AT_ONCE, 0, n, rnd, 1000), 0);
        assert_int_equal(worker_retry_delay_ms(TRANSFER_CAUSE_AT_ONCE, 9000, n, rnd, 1000), 0);
        assert_int_equal(worker_retry_delay_ms(TRANSFER_CAUSE_WAIT, 60000, n, rnd, 1000), 60000);
        assert_int_equal(worker_retry_delay_ms(TRANSFER_CAUSE_WAIT, 0, n, rnd, 1000),
                         WORKER_WAIT_DEFAULT_MS);
    }
    /* the ceiling: doubling 1, 2, 4 .. 32 s, then 60 s (±25 %) */
    assert_int_equal(WORKER_BACKOFF_MAX_MS, 60000);
    assert_int_equal(worker_backoff_ms(6, 0, 1000), 32000 - 8000);
    assert_int_equal(worker_backoff_ms(7, 0, 1000), 60000 - 15000);
    assert_int_equal(worker_backoff_ms(7, 30000, 1000), 60000 + 15000);
    assert_int_equal(worker_backoff_ms(30, 0, 1000), 45000);
    /* a far-off Retry-After (an HTTP date years ahead) is capped */
    assert_int_equal(worker_retry_delay_ms(TRANSFER_CAUSE_RATE, (int64_t)1 << 40, 1, 0, 1000),
                     WORKER_RATE_WAIT_MAX_MS);
    assert_true(worker_retry_counts(TRANSFER_CAUSE_FAILURE));
    assert_false(worker_retry_counts(TRANSFER_CAUSE_RATE));
    assert_false(worker_retry_counts(TRANSFER_CAUSE_AT_ONCE));
    assert_false(worker_retry_counts(TRANSFER_CAUSE_WAIT));
}

/* One busy store cannot take every worker: with a per-store limit of 1, a
 * second store's order goes through while the first store's backlog runs.
 * Deterministic: the first store's first order is held at its fetch (its
 * job stays leased), so none of its other eleven may start; the second
 * store's order must be transferred meanwhile, and its invoice is the first
 * one Qoyod sees. */
static void test_busy_store_does_not_starve_others(void **state)
{
    struct fx *f = *state;
    struct store_conn other = f->conn;
    other.id = 0;
    other.store_id = STORE + 2;
    struct th_err err;
    assert_int_equal(store_conn_put(f->store, &other, &err), 0);
    tt_faults(f->qoyod, "{\"match\":\"POST /2.0/invoices\",\"mode\":\"latency\","
                        "\"latency_ms\":40}");
    for (int i = 0; i < 12; i++) {
        struct tt_order_spec o = base;
        char num[16], key[16];
        snprintf(num, sizeof num, "A-%02d", i);
        snprintf(key, sizeof key, "a%d", i);
        o.id = 9600 + i, o.number = num;
        tt_salla_stub_put(&f->salla, &o);
        event(f, o.id, key);
    }
    struct tt_order_spec b = base;
    b.id = 9700, b.number = "B-1";
    tt_salla_stub_put(&f->salla, &b);
    int dup = 0;
    assert_int_equal(store_event_ingest(f->store, other.id, "b", "order.updated", b.id, "{}", 2,
                                        &dup, &err),
                     0);
    tt_salla_stub_hold(&f->salla, 9600); /* the oldest job: claimed first */
    struct worker_config wc = wconfig(f);
    wc.threads = 4;
    wc.per_store = 1;
    struct worker *w;
    assert_int_equal(worker_start(&w, &wc, &err), 0);
    assert_true(tt_salla_stub_wait_held(&f->salla, 20000));
    /* A is stuck at one job; B goes through anyway */
    int b_done = 0;
    for (int i = 0; i < 2000 && !b_done; i++) {
        struct store_order so;
        if (store_order_get(f->store, other.id, b.id, &so, &err) == 0) {
            b_done = so.xfer == STORE_XFER_TRANSFERRED;
            store_order_release(&so);
        }
        if (!b_done) tt_sleep_ms(10);
    }
    assert_true(b_done);
    assert_int_equal(tt_count_requests(f->qoyod, "POST", "/2.0/invoices", -2), 1);
    tt_salla_stub_release(&f->salla);
    for (int i = 0; i < 2000; i++) {
        int64_t n = 1;
        assert_int_equal(store_job_count(f->store, &n, &err), 0);
        if (n == 0) break;
        tt_sleep_ms(10);
    }
    worker_stop(w);
    /* B's invoice (its store, the second on the account, has a reference
     * prefix) was the first created, before any of A's twelve */
    char bref[40];
    snprintf(bref, sizeof bref, "\"S%lld-B-1\"", (long long)other.id);
    struct tt_resp r;
    tt_http("GET", tt_url(f->qoyod, "/_sim/requests"), NULL, NULL, &r);
    int pos = 0, b_at = -1;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(r.json, "requests"), i, e) {
        if (strcmp(json_string_value(json_object_get(e, "method")), "POST") != 0 ||
            strcmp(json_string_value(json_object_get(e, "path")), "/2.0/invoices") != 0)
            continue;
        if (strstr(json_string_value(json_object_get(e, "body")), bref)) b_at = pos;
        pos++;
    }
    tt_resp_release(&r);
    assert_int_equal(pos, 13);
    assert_int_equal(b_at, 0);
}

static void test_settings_financial_off_and_own_numbering(void **state)
{
    struct fx *f = *state;
    f->conn.financial_invoice = 0;
    f->conn.number_by_order = 0;
    save_conn(f);
    tt_salla_stub_put(&f->salla, &base);
    event(f, base.id, "a");
    drain(f);
    char ref[64];
    snprintf(ref, sizeof ref, "TH-salla-%lld", (long long)base.id);
    assert_int_equal(invoices_with_ref(f, ref), 1);
    json_t *inv = the_invoice(f, ref);
    assert_string_equal(json_string_value(json_object_get(inv, "status")), "Approved");
    json_decref(inv);
    assert_int_equal(tt_count_requests(f->qoyod, "POST", "/2.0/invoice_payments", -2), 0);
}

static void test_cancelled_before_transfer_is_skipped(void **state)
{
    struct fx *f = *state;
    struct tt_order_spec o = base;
    o.slug = "canceled";
    tt_salla_stub_put(&f->salla, &o);
    event(f, o.id, "c");
    drain(f);
    struct store_order so = get_order(f, o.id);
    assert_int_equal(so.xfer, STORE_XFER_SKIPPED);
    store_order_release(&so);
    assert_int_equal(invoices_with_ref(f, "1001"), 0);
}

/* Credit notes in Qoyod with this reference. */
static int credit_notes_with_ref(struct fx *f, const char *ref)
{
    const char *h[] = {"API-KEY: " KEY, NULL};
    struct tt_resp r;
    tt_http("GET", tt_url(f->qoyod, "/2.0/credit_notes?q%%5Breference_eq%%5D=%s", ref), h, NULL,
            &r);
    int n = r.status == 200 ? (int)json_array_size(json_object_get(r.json, "credit_notes")) : 0;
    if (r.status != 200 && r.status != 404) fail_msg("credit note lookup: %ld %s", r.status, r.body);
    tt_resp_release(&r);
    return n;
}

static json_t *the_credit_note(struct fx *f, const char *ref)
{
    const char *h[] = {"API-KEY: " KEY, NULL};
    struct tt_resp r;
    tt_http("GET", tt_url(f->qoyod, "/2.0/credit_notes?q%%5Breference_eq%%5D=%s", ref), h, NULL,
            &r);
    json_t *cn = json_incref(json_array_get(json_object_get(r.json, "credit_notes"), 0));
    tt_resp_release(&r);
    assert_non_null(cn);
    return cn;
}

struct hist {
    char text[4096];
};

static void hist_add(void *arg, int64_t ts, const char *what, const char *detail)
{
    (void)ts;
    struct hist *h = arg;
    size_t n = strlen(h->text);
    snprintf(h->text + n, sizeof h->text - n, "%s: %s\n", what, detail);
}

static void history(struct fx *f, int64_t id, struct hist *h)
{
    struct th_err err;
    h->text[0] = '\0';
    assert_int_equal(store_order_history(f->store, f->conn.id, id, hist_add, h, &err), 0);
}

/* Transferred, then cancelled: one credit note for the whole invoice, even
 * when Qoyod's answer is lost, the create fails first, or the order's
 * events come again; the order keeps its invoice and says "credited". */
static void test_cancel_after_transfer_one_credit_note(void **state)
{
    struct fx *f = *state;
    static const char *faults[] = {
        "{\"match\":\"POST /2.0/credit_notes\",\"mode\":\"commit_then_drop\",\"count\":1}",
        "{\"match\":\"POST /2.0/credit_notes\",\"mode\":\"error\",\"status\":503,\"count\":2}",
        "{\"match\":\"POST /2.0/credit_notes\",\"mode\":\"reset\",\"count\":1}",
        /* created, answer lost, and the lookup that would settle it fails:
         * only looking before the next create keeps it to one note */
        "{\"faults\":[{\"match\":\"POST /2.0/credit_notes\",\"mode\":\"commit_then_drop\","
        "\"count\":1},{\"match\":\"GET /2.0/credit_notes\",\"mode\":\"error\",\"status\":503,"
        "\"count\":1,\"skip\":1}]}",
        /* the same with the first lookup failing instead */
        "{\"faults\":[{\"match\":\"POST /2.0/credit_notes\",\"mode\":\"commit_then_drop\","
        "\"count\":1},{\"match\":\"GET /2.0/credit_notes\",\"mode\":\"error\",\"status\":503,"
        "\"count\":1}]}",
        NULL,
    };
    for (size_t i = 0; i < sizeof faults / sizeof faults[0]; i++) {
        struct tt_order_spec o = base;
        char num[16], key[32], ref[32];
        snprintf(num, sizeof num, "C%zu", i);
        o.id = 8100 + (int64_t)i;
        o.number = num;
        o.slug = "completed";
        tt_salla_stub_put(&f->salla, &o);
        event(f, o.id, num);
        drain(f);
        o.slug = "canceled";
        tt_salla_stub_put(&f->salla, &o);
        if (faults[i]) tt_faults(f->qoyod, faults[i]);
        snprintf(key, sizeof key, "%s-cancel", num);
        event(f, o.id, key);
        drain(f);
        snprintf(key, sizeof key, "%s-again", num);
        event(f, o.id, key); /* a late duplicate of the cancellation */
        drain(f);
        struct tt_resp r;
        tt_http("DELETE", tt_url(f->qoyod, "/_sim/faults"), NULL, NULL, &r);
        tt_resp_release(&r);
        struct store_order so = get_order(f, o.id);
        assert_int_equal(so.xfer, STORE_XFER_TRANSFERRED);
        if (so.credit != STORE_CREDIT_DONE)
            fail_msg("fault %s: credit state %d reason %s", faults[i] ? faults[i] : "none",
                     so.credit, so.reason);
        assert_int_equal(so.credited, 25300);
        assert_int_equal(so.status, MODEL_STATUS_CANCELLED);
        store_order_release(&so);
        snprintf(ref, sizeof ref, "CN-%s", num);
        int n = credit_notes_with_ref(f, ref);
        if (n != 1) fail_msg("fault %s: %d credit notes", faults[i] ? faults[i] : "none", n);
        json_t *cn = the_credit_note(f, ref);
        assert_string_equal(json_string_value(json_object_get(cn, "total_amount")), "253.0");
        json_t *inv = the_invoice(f, num);
        assert_int_equal(json_integer_value(json_object_get(cn, "parent_id")),
                         json_integer_value(json_object_get(inv, "id")));
        /* the invoice was paid (financial invoice on): the note stays to refund */
        assert_string_equal(json_string_value(json_object_get(cn, "status")), "Unused");
        json_decref(inv);
        json_decref(cn);
        struct hist h;
        history(f, o.id, &h);
        assert_non_null(strstr(h.text, "credit note due: full: 253.00 SAR (cancelled in the store)"));
        assert_non_null(strstr(h.text, "credit note issued: CN-"));
    }
    /* The monthly report counts each note once, faults or not, and nets
     * the cancelled sales out (worker/report.c reads these histories). */
    size_t n = sizeof faults / sizeof faults[0];
    struct report rep;
    struct th_err err;
    assert_int_equal(report_monthly(f->store, f->conn.id, REPORT_MONTH_NONE, REPORT_MONTH_NONE,
                                    &rep, &err),
                     0);
    assert_int_equal(rep.total.transferred, (int64_t)n);
    assert_int_equal(rep.total.credit_notes, (int64_t)n);
    assert_int_equal(rep.total.credit_notes_total, 25300 * (int64_t)n);
    assert_int_equal(rep.total.sales, 25300 * (int64_t)n);
    assert_int_equal(rep.total.net_sales, 0);
    report_release(&rep);
}

/* Financial invoice off: the invoice is left open, so the credit note is
 * allocated to it and the invoice is settled by the return. */
static void test_refund_allocates_to_open_invoice(void **state)
{
    struct fx *f = *state;
    f->conn.financial_invoice = 0;
    save_conn(f);
    struct tt_order_spec o = base;
    o.slug = "completed";
    tt_salla_stub_put(&f->salla, &o);
    event(f, o.id, "a");
    drain(f);
    o.slug = "restored";
    tt_salla_stub_put(&f->salla, &o);
    event(f, o.id, "b");
    drain(f);
    json_t *cn = the_credit_note(f, "CN-1001");
    assert_string_equal(json_string_value(json_object_get(cn, "status")), "Used");
    assert_string_equal(json_string_value(json_object_get(cn, "remaining_amount")), "0.0");
    json_decref(cn);
    json_t *inv = the_invoice(f, "1001");
    assert_string_equal(json_string_value(json_object_get(inv, "due_amount")), "0.0");
    json_decref(inv);
    assert_int_equal(tt_count_requests(f->qoyod, "POST", "/2.0/credit_notes", -2), 1);
}

/* Edited after transfer (a total that changed, no cancellation): flagged
 * for review, nothing posted. */
static void test_edit_after_transfer_needs_review(void **state)
{
    struct fx *f = *state;
    struct tt_order_spec o = base;
    tt_salla_stub_put(&f->salla, &o);
    event(f, o.id, "a");
    drain(f);
    o.qty = 3;
    tt_salla_stub_put(&f->salla, &o);
    event(f, o.id, "b");
    drain(f);
    struct store_order so = get_order(f, o.id);
    assert_int_equal(so.xfer, STORE_XFER_TRANSFERRED);
    assert_int_equal(so.credit, STORE_CREDIT_REVIEW);
    assert_non_null(strstr(so.reason, "the order's total is now 368.00 but its Qoyod invoice 1001 "
                                      "is 253.00"));
    store_order_release(&so);
    assert_int_equal(invoices_with_ref(f, "1001"), 1);
    assert_int_equal(tt_count_requests(f->qoyod, "POST", "/2.0/credit_notes", -2), 0);
    assert_int_equal(tt_count_requests(f->qoyod, "POST", "/2.0/invoices", -2), 1);
}

static void test_wrong_qoyod_key_fails_plainly(void **state)
{
    struct fx *f = *state;
    free(f->conn.qoyod_api_key);
    f->conn.qoyod_api_key = xstrdup("wrong");
    save_conn(f);
    tt_salla_stub_put(&f->salla, &base);
    event(f, base.id, "a");
    drain(f);
    struct store_order so = get_order(f, base.id);
    assert_int_equal(so.xfer, STORE_XFER_FAILED);
    assert_int_equal(so.reason_code, TH_EAUTH);
    assert_null(strstr(so.reason, "wrong")); /* the key itself is never shown */
    store_order_release(&so);
}

/* Once customer and product are known, an order costs one invoice create
 * plus one payment: no lookups. */
static void test_known_customer_and_product_cost_two_calls(void **state)
{
    struct fx *f = *state;
    tt_salla_stub_put(&f->salla, &base);
    event(f, base.id, "a");
    drain(f);
    struct tt_order_spec o2 = base;
    o2.id = 9002;
    o2.number = "1002";
    tt_salla_stub_put(&f->salla, &o2);
    struct tt_resp r;
    tt_http("DELETE", tt_url(f->qoyod, "/_sim/requests"), NULL, NULL, &r);
    tt_resp_release(&r);
    event(f, o2.id, "b");
    drain(f);
    assert_int_equal(tt_count_requests(f->qoyod, NULL, NULL, -2), 2);
    assert_int_equal(tt_count_requests(f->qoyod, "POST", "/2.0/invoices", 201), 1);
    assert_int_equal(tt_count_requests(f->qoyod, "POST", "/2.0/invoice_payments", 201), 1);
}

/* A SKU Qoyod does not have: the product is created (type Product, tracked)
 * and its opening stock booked so that, after the invoice, Qoyod holds what
 * the store holds (store 8 after selling 2 → opening 10 → 8). */
static void test_new_product_gets_opening_stock(void **state)
{
    struct fx *f = *state;
    f->salla.product_json = "{\"status\":200,\"success\":true,\"data\":{\"id\":77,"
                            "\"sku\":\"NEW-1\",\"type\":\"product\",\"quantity\":8,"
                            "\"unlimited_quantity\":false,\"cost_price\":\"35\"}}";
    struct tt_order_spec o = base;
    o.sku = "NEW-1";
    tt_salla_stub_put(&f->salla, &o);
    event(f, o.id, "n");
    drain(f);
    struct store_order so = get_order(f, o.id);
    if (so.xfer != STORE_XFER_TRANSFERRED) fail_msg("state %d: %s", so.xfer, so.reason);
    store_order_release(&so);
    const char *h[] = {"API-KEY: " KEY, NULL};
    struct tt_resp r;
    tt_http("GET", tt_url(f->qoyod, "/2.0/products?q%%5Bsku_eq%%5D=NEW-1"), h, NULL, &r);
    assert_int_equal(r.status, 200);
    json_t *p = json_array_get(json_object_get(r.json, "products"), 0);
    assert_string_equal(json_string_value(json_object_get(p, "type")), "Product");
    assert_true(json_is_true(json_object_get(p, "track_quantity")));
    json_t *inv = json_array_get(json_object_get(p, "inventories"), 0);
    assert_string_equal(json_string_value(json_object_get(inv, "stock")), "8.0");
    tt_resp_release(&r);
    assert_int_equal(tt_count_requests(f->qoyod, "POST", "/2.0/inventory_adjustments", 201), 2);
}

/* The product create's answer is lost (commit-then-drop; a crash at the
 * same moment is the same story): the retry finds the product by SKU and
 * must still book its opening stock, or Qoyod refuses the invoice for want
 * of stock. The crash rehearsal found this gap (job.claimed, a second worker
 * thread killed mid-create). */
static void test_lost_product_create_still_books_opening(void **state)
{
    struct fx *f = *state;
    f->salla.product_json = "{\"status\":200,\"success\":true,\"data\":{\"id\":78,"
                            "\"sku\":\"NEW-2\",\"type\":\"product\",\"quantity\":8,"
                            "\"unlimited_quantity\":false,\"cost_price\":\"35\"}}";
    struct tt_order_spec o = base;
    o.sku = "NEW-2";
    tt_salla_stub_put(&f->salla, &o);
    tt_faults(f->qoyod, "{\"match\":\"POST /2.0/products\",\"mode\":\"commit_then_drop\","
                        "\"count\":1}");
    event(f, o.id, "n2");
    drain(f);
    struct store_order so = get_order(f, o.id);
    if (so.xfer != STORE_XFER_TRANSFERRED) fail_msg("state %d: %s", so.xfer, so.reason);
    store_order_release(&so);
    const char *h[] = {"API-KEY: " KEY, NULL};
    struct tt_resp r;
    tt_http("GET", tt_url(f->qoyod, "/2.0/products?q%%5Bsku_eq%%5D=NEW-2"), h, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "products")), 1);
    json_t *p = json_array_get(json_object_get(r.json, "products"), 0);
    json_t *inv = json_array_get(json_object_get(p, "inventories"), 0);
    assert_string_equal(json_string_value(json_object_get(inv, "stock")), "8.0");
    tt_resp_release(&r);
}

/* Qoyod's stock of the product with this SKU at inventory 1. */
static int64_t qoyod_stock_of(struct fx *f, const char *sku)
{
    const char *h[] = {"API-KEY: " KEY, NULL};
    struct tt_resp r;
    tt_http("GET", tt_url(f->qoyod, "/2.0/products?q%%5Bsku_eq%%5D=%s", sku), h, NULL, &r);
    if (r.status != 200) fail_msg("product %s: %ld %s", sku, r.status, r.body);
    json_t *p = json_array_get(json_object_get(r.json, "products"), 0);
    json_t *inv = json_array_get(json_object_get(p, "inventories"), 0);
    const char *st = json_string_value(json_object_get(inv, "stock"));
    if (!st) fail_msg("product %s has no stock: %s", sku, r.body);
    int64_t n = strtoll(st, NULL, 10);
    tt_resp_release(&r);
    return n;
}

/* Requests Qoyod answered with `status` whose body contains text. */
static int count_bodies(struct fx *f, const char *method, const char *path, int status,
                        const char *text)
{
    struct tt_resp r;
    tt_http("GET", tt_url(f->qoyod, "/_sim/requests"), NULL, NULL, &r);
    int n = 0;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(r.json, "requests"), i, e) {
        const char *m = json_string_value(json_object_get(e, "method"));
        const char *pa = json_string_value(json_object_get(e, "path"));
        const char *b = json_string_value(json_object_get(e, "body"));
        if (!m || strcmp(m, method) || !pa || strcmp(pa, path)) continue;
        if ((int)json_integer_value(json_object_get(e, "status")) != status) continue;
        if (b && strstr(b, text)) n++;
    }
    tt_resp_release(&r);
    return n;
}

static void riyadh_text(time_t t, char out[32])
{
    t += 3 * 3600;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%d %H:%M:%S", &tm);
}

static void expect_transferred(struct fx *f, int64_t id)
{
    struct store_order so = get_order(f, id);
    if (so.xfer != STORE_XFER_TRANSFERRED)
        fail_msg("order %lld: state %d: %s", (long long)id, so.xfer, so.reason ? so.reason : "");
    store_order_release(&so);
}

/*
 * One round of a burst at a new product's first transfer. The store holds
 * 10 and takes four orders: A (3), B (2, waiting for its trigger status,
 * so tarheel fetched it), C (4, not yet known to tarheel), all before A's
 * transfer reads the store (10 - 9 = 1); D (1) after it. Then B, C and D
 * are transferred in the order `perm` gives (fault, if any, set just
 * before C). At the end the store holds 0 and so must Qoyod, with one
 * opening balance and one correction (C's) per round. Stock is tight: with
 * the opening as "store now + this order" (4), C's invoice would be refused.
 */
static void burst_round(struct fx *f, int round, const int perm[3], const char *fault)
{
    char sku[16], pj[320], num[4][16], future[32];
    snprintf(sku, sizeof sku, "BURST-%d", round);
    riyadh_text(time(NULL) + 3600, future);
    static const int qty[4] = {3, 2, 4, 1};
    struct tt_order_spec o[4];
    for (int k = 0; k < 4; k++) {
        o[k] = base;
        snprintf(num[k], sizeof num[k], "R%d-%c", round, 'A' + k);
        o[k].id = 9600 + round * 10 + k;
        o[k].number = num[k];
        o[k].sku = sku;
        o[k].qty = qty[k];
        o[k].customer_id = 4242;
        o[k].phone = "0555000111";
    }
    o[1].slug = "payment_pending"; /* not yet at the trigger status */
    o[3].date = future;            /* taken after the opening's read */
    int ev = 0;
    char key[32];
#define EVENT(k)                                                                                       do {                                                                                                   snprintf(key, sizeof key, "b%d-%d-%d", round, (k), ev++);                                         event(f, o[(k)].id, key);                                                                          drain(f);                                                                                      } while (0)
    tt_salla_stub_put(&f->salla, &o[1]);
    EVENT(1);
    struct store_order so = get_order(f, o[1].id);
    assert_int_equal(so.xfer, STORE_XFER_NOT_TRANSFERRED); /* fetched, waiting */
    store_order_release(&so);

    tt_salla_stub_put(&f->salla, &o[0]);
    tt_salla_stub_put(&f->salla, &o[2]);
    snprintf(pj, sizeof pj, "{\"status\":200,\"success\":true,\"data\":{\"id\":77,\"sku\":\"%s\","
             "\"type\":\"product\",\"quantity\":1,\"unlimited_quantity\":false,"
             "\"cost_price\":\"35\"}}", sku);
    f->salla.product_json = pj;
    EVENT(0);
    expect_transferred(f, o[0].id);

    tt_salla_stub_put(&f->salla, &o[3]);
    o[1].slug = "under_review";
    tt_salla_stub_put(&f->salla, &o[1]);
    for (int i = 0; i < 3; i++) {
        int k = perm[i] + 1;
        if (k == 2 && fault) tt_faults(f->qoyod, fault);
        EVENT(k);
    }
#undef EVENT
    f->salla.product_json = NULL;
    for (int k = 0; k < 4; k++) expect_transferred(f, o[k].id);
    assert_int_equal(qoyod_stock_of(f, sku), 0);
    assert_int_equal(count_bodies(f, "POST", "/2.0/inventory_adjustments", 201,
                                  "Opening balance (tarheel, first transfer)"),
                     round + 1);
    assert_int_equal(count_bodies(f, "POST", "/2.0/inventory_adjustments", 201,
                                  "Opening balance correction"),
                     round + 1);
    char want[96];
    snprintf(want, sizeof want, "Opening balance correction (tarheel): R%d-C", round);
    assert_int_equal(count_bodies(f, "POST", "/2.0/inventory_adjustments", 201, want), 1);
}

/* Orders of a new product the store took before tarheel's first transfer
 * of it, transferred in three orders: Qoyod ends holding what the store
 * holds, to the unit. The correction's answer is lost once (settled by
 * reading Qoyod's count, not booked twice), and in another round the
 * invoice after a correction fails once (the retry does not correct again). */
static void test_orders_before_opening_are_counted(void **state)
{
    struct fx *f = *state;
    static const int perms[3][3] = {{1, 0, 2}, {2, 1, 0}, {0, 2, 1}}; /* B=0, C=1, D=2 */
    burst_round(f, 0, perms[0],
                "{\"match\":\"POST /2.0/inventory_adjustments\",\"mode\":\"commit_then_drop\","
                "\"count\":1}");
    burst_round(f, 1, perms[1],
                "{\"match\":\"POST /2.0/invoices\",\"mode\":\"error\",\"status\":500,"
                "\"count\":1}");
    burst_round(f, 2, perms[2], NULL);
}

/* Runs jobs with a short lease (a dead process's job is taken over after
 * it) until none is left. */
static void drain_short_lease(struct fx *f, struct store *s)
{
    struct worker_config wc = wconfig(f);
    wc.store = s;
    wc.lease_ms = 300;
    struct th_err err;
    for (int i = 0; i < 2000; i++) {
        assert_int_equal(worker_drain(&wc, worker_now_ms() + 20000, &err), 0);
        int64_t n = 0;
        assert_int_equal(store_job_count(s, &n, &err), 0);
        if (n == 0) return;
        tt_sleep_ms(20);
    }
    fail_msg("jobs did not finish");
}

/* One stock round now; returns the SKUs whose change was not tarheel's. */
static size_t stock_changes(struct fx *f)
{
    tt_sleep_ms(5); /* own movements settle strictly before the round's reads */
    struct httpc *hc = httpc_new(NULL);
    struct stock_config cfg = {.force = 1, .qoyod_rpm = -1, .platform_rpm = -1};
    struct stock_stats st;
    struct th_err err;
    if (stock_round(f->store, hc, &cfg, &st, &err) != 0) fail_msg("stock round: %s", err.msg);
    httpc_free(hc);
    return st.changed;
}

/*
 * The XXX of docs/STOCK.md: a process dies after a new product's opening
 * balance is counted in Qoyod but before the product's mapping is saved;
 * the stock poller meanwhile reads Qoyod and matches the count; the retry
 * books the count again. That second booking changes nothing in Qoyod, so
 * it must explain nothing either: the poller must find no change to push
 * (it used to take the whole count as tarheel's own once more and tell the
 * store -10).
 */
static void test_opening_booked_again_after_crash_not_pushed(void **state)
{
    struct fx *f = *state;
    f->conn.stock_sync = 1;
    save_conn(f);
    f->salla.product_json = "{\"status\":200,\"success\":true,\"data\":{\"id\":79,"
                            "\"sku\":\"XXX-1\",\"type\":\"product\",\"quantity\":8,"
                            "\"unlimited_quantity\":false,\"cost_price\":\"35\"}}";
    struct tt_order_spec o = base;
    o.sku = "XXX-1";
    tt_salla_stub_put(&f->salla, &o);
    assert_int_equal(stock_changes(f), 0); /* the first round reads the baselines */
    event(f, o.id, "x1");

    char *url = xasprintf("sqlite:%s/t.db", f->dir);
    fflush(NULL);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        struct store *s2;
        struct th_err err;
        if (store_open(&s2, url, &err) != 0) _exit(2);
        th_crash_arm("opening.booked");
        drain_short_lease(f, s2);
        _exit(3); /* the crash point was not reached */
    }
    free(url);
    int status = 0;
    assert_int_equal(waitpid(child, &status, 0), child);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
        fail_msg("the child did not die at opening.booked (status %d)", status);
    assert_int_equal(qoyod_stock_of(f, "XXX-1"), 10); /* counted: 8 + this order's 2 */
    assert_int_equal(invoices_with_ref(f, "1001"), 0);

    assert_int_equal(stock_changes(f), 0); /* the poller matches the count */
    drain_short_lease(f, f->store);        /* books it again, then the invoice */
    expect_transferred(f, o.id);
    assert_int_equal(invoices_with_ref(f, "1001"), 1);
    assert_int_equal(qoyod_stock_of(f, "XXX-1"), 8);
    assert_int_equal(count_bodies(f, "POST", "/2.0/inventory_adjustments", 201,
                                  "Opening balance (tarheel, first transfer)"),
                     2);
    assert_int_equal(stock_changes(f), 0); /* nothing to tell the store */
    f->salla.product_json = NULL;
}

/*
 * A process dies right after Qoyod booked a correction (crash point
 * opening.fixed): the store holds 10, A (3) and C (4) are placed, A's
 * transfer books the opening (3 + 3), C is learnt of later and corrected
 * (3 -> 7) when the process dies. Next comes E (1, placed after the read),
 * or A's cancellation (a credit note bringing its 3 back). Whoever takes the
 * SKU next settles C's correction by reading Qoyod (7: it was booked) before
 * moving the product, so it is never booked twice nor guessed: Qoyod ends
 * at the store's count.
 */
static void crash_after_correction(struct fx *f, int cancel_a)
{
    f->salla.product_json = "{\"status\":200,\"success\":true,\"data\":{\"id\":80,"
                            "\"sku\":\"FIXC-1\",\"type\":\"product\",\"quantity\":3,"
                            "\"unlimited_quantity\":false,\"cost_price\":\"35\"}}";
    char future[32];
    riyadh_text(time(NULL) + 3600, future);
    struct tt_order_spec a = base, c = base, e = base;
    a.id = 9701, a.number = "F-A", a.sku = "FIXC-1", a.qty = 3;
    c.id = 9702, c.number = "F-C", c.sku = "FIXC-1", c.qty = 4;
    e.id = 9703, e.number = "F-E", e.sku = "FIXC-1", e.qty = 1, e.date = future;
    tt_salla_stub_put(&f->salla, &a);
    tt_salla_stub_put(&f->salla, &c);
    event(f, a.id, "fa");
    drain(f);
    expect_transferred(f, a.id);
    assert_int_equal(qoyod_stock_of(f, "FIXC-1"), 3);

    event(f, c.id, "fc");
    char *url = xasprintf("sqlite:%s/t.db", f->dir);
    fflush(NULL);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        struct store *s2;
        struct th_err err;
        if (store_open(&s2, url, &err) != 0) _exit(2);
        th_crash_arm("opening.fixed");
        drain_short_lease(f, s2);
        _exit(3);
    }
    free(url);
    int status = 0;
    assert_int_equal(waitpid(child, &status, 0), child);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
        fail_msg("the child did not die at opening.fixed (status %d)", status);
    assert_int_equal(qoyod_stock_of(f, "FIXC-1"), 7);

    if (cancel_a) {
        /* A's credit note (its 3 come back) must first settle C's count. */
        a.slug = "canceled";
        tt_salla_stub_put(&f->salla, &a);
        event(f, a.id, "fa2");
    } else {
        tt_salla_stub_put(&f->salla, &e);
        event(f, e.id, "fe");
    }
    drain_short_lease(f, f->store);
    expect_transferred(f, c.id);
    expect_transferred(f, cancel_a ? a.id : e.id);
    assert_int_equal(count_bodies(f, "POST", "/2.0/inventory_adjustments", 201,
                                  "Opening balance correction"),
                     1);
    /* the store: 10 - 3 - 4 (+ 3 when A is cancelled, else - 1) */
    assert_int_equal(qoyod_stock_of(f, "FIXC-1"), cancel_a ? 6 : 2);
    if (cancel_a) assert_int_equal(tt_count_requests(f->qoyod, "POST", "/2.0/credit_notes", 201), 1);
    /* settled by reading the count, not by a guess */
    struct hist h;
    history(f, c.id, &h);
    if (strstr(h.text, "stock check needed")) fail_msg("C's history:\n%s", h.text);
    assert_non_null(strstr(h.text, "opening stock corrected"));
    f->salla.product_json = NULL;
}

static void test_crash_after_correction_not_counted_twice(void **state)
{
    crash_after_correction(*state, 0);
}

static void test_crash_after_correction_then_credit_note(void **state)
{
    crash_after_correction(*state, 1);
}

/* A customer typed into Qoyod by hand as 0501112233 is the Salla customer
 * +966 501112233: found, not created again. */
static void test_customer_found_by_local_phone(void **state)
{
    struct fx *f = *state;
    int64_t seeded = 0;
    qoyod_post(f, "/customers", "{\"contact\":{\"name\":\"سارة علي\",\"phone_number\":\"0501112233\"}}",
               &seeded);
    tt_salla_stub_put(&f->salla, &base);
    event(f, base.id, "a");
    drain(f);
    assert_int_equal(invoices_with_ref(f, "1001"), 1);
    assert_int_equal(tt_count_requests(f->qoyod, "POST", "/2.0/customers", -2), 1); /* the seed */
    json_t *inv = the_invoice(f, "1001");
    assert_int_equal(json_integer_value(json_object_get(inv, "contact_id")), seeded);
    json_decref(inv);
}

/* The first orders of a new customer and a new product, run at once by
 * several workers: one contact, one product, one opening balance. */
static void test_concurrent_first_orders_create_once(void **state)
{
    struct fx *f = *state;
    f->salla.product_json = "{\"status\":200,\"success\":true,\"data\":{\"id\":78,"
                            "\"sku\":\"NEW-2\",\"type\":\"product\",\"quantity\":30,"
                            "\"unlimited_quantity\":false,\"cost_price\":\"35\"}}";
    for (int i = 0; i < 6; i++) {
        struct tt_order_spec o = base;
        char num[16], key[16];
        snprintf(num, sizeof num, "C-%d", i);
        snprintf(key, sizeof key, "c%d", i);
        o.id = 9800 + i, o.number = num, o.sku = "NEW-2", o.customer_id = 4242,
        o.phone = "0555000111";
        tt_salla_stub_put(&f->salla, &o);
        event(f, o.id, key);
    }
    struct worker_config wc = wconfig(f);
    wc.threads = 4;
    wc.per_store = 4;
    struct worker *w;
    struct th_err err;
    assert_int_equal(worker_start(&w, &wc, &err), 0);
    for (int i = 0; i < 1000; i++) {
        int64_t n = 1;
        assert_int_equal(store_job_count(f->store, &n, &err), 0);
        if (n == 0) break;
        tt_sleep_ms(10);
    }
    worker_stop(w);
    for (int i = 0; i < 6; i++) {
        char num[16];
        snprintf(num, sizeof num, "C-%d", i);
        assert_int_equal(invoices_with_ref(f, num), 1);
    }
    assert_int_equal(tt_count_requests(f->qoyod, "POST", "/2.0/customers", 201), 1);
    /* the seed, NEW-2 and the shipping service line's product, once each */
    assert_int_equal(tt_count_requests(f->qoyod, "POST", "/2.0/products", 201), 3);
    static const char *const skus[] = {"NEW-2", "SHIPPING"};
    for (size_t i = 0; i < 2; i++) {
        const char *h[] = {"API-KEY: " KEY, NULL};
        struct tt_resp r;
        tt_http("GET", tt_url(f->qoyod, "/2.0/products?q%%5Bsku_eq%%5D=%s", skus[i]), h, NULL, &r);
        assert_int_equal(json_array_size(json_object_get(r.json, "products")), 1);
        tt_resp_release(&r);
    }
    /* One opening balance; the orders the workers had not fetched when it
     * read the store (30, after all six) are corrected before their
     * invoices, one count each, so Qoyod ends at the store's 30. */
    assert_int_equal(count_bodies(f, "POST", "/2.0/inventory_adjustments", 201,
                                  "Opening balance (tarheel, first transfer)"),
                     1);
    int fixes = count_bodies(f, "POST", "/2.0/inventory_adjustments", 201,
                             "Opening balance correction");
    assert_int_equal(tt_count_requests(f->qoyod, "POST", "/2.0/inventory_adjustments", 201),
                     2 + fixes);
    assert_true(fixes <= 5);
    assert_int_equal(qoyod_stock_of(f, "NEW-2"), 30);
}

/* "Create a customer for each invoice" off: every order, whoever bought it,
 * goes to one shared cash customer, created once. */
static void test_shared_cash_customer(void **state)
{
    struct fx *f = *state;
    f->conn.customer_per_invoice = 0;
    save_conn(f);
    for (int i = 0; i < 3; i++) {
        struct tt_order_spec o = base;
        char num[16], key[16], phone[16];
        snprintf(num, sizeof num, "K-%d", i);
        snprintf(key, sizeof key, "k%d", i);
        snprintf(phone, sizeof phone, "50000000%d", i);
        o.id = 9900 + i, o.number = num, o.customer_id = 500 + i, o.phone = phone;
        tt_salla_stub_put(&f->salla, &o);
        event(f, o.id, key);
    }
    drain(f);
    assert_int_equal(tt_count_requests(f->qoyod, "POST", "/2.0/customers", 201), 1);
    int64_t contact = -1;
    for (int i = 0; i < 3; i++) {
        char num[16];
        snprintf(num, sizeof num, "K-%d", i);
        json_t *inv = the_invoice(f, num);
        int64_t c = json_integer_value(json_object_get(inv, "contact_id"));
        if (contact < 0) contact = c;
        assert_int_equal(c, contact);
        json_decref(inv);
    }
    const char *h[] = {"API-KEY: " KEY, NULL};
    struct tt_resp r;
    tt_http("GET", tt_url(f->qoyod, "/2.0/customers/%lld", (long long)contact), h, NULL, &r);
    assert_non_null(strstr(r.body, "Cash customer"));
    tt_resp_release(&r);
}

/* A store product with unlimited quantity becomes an untracked product. */
static void test_untracked_store_product(void **state)
{
    struct fx *f = *state;
    f->salla.product_json = "{\"data\":{\"id\":77,\"quantity\":0,\"unlimited_quantity\":true}}";
    struct tt_order_spec o = base;
    o.sku = "UNL-1";
    tt_salla_stub_put(&f->salla, &o);
    event(f, o.id, "u");
    drain(f);
    struct store_order so = get_order(f, o.id);
    if (so.xfer != STORE_XFER_TRANSFERRED) fail_msg("state %d: %s", so.xfer, so.reason);
    store_order_release(&so);
    /* only the fixture's own seeding adjustment */
    assert_int_equal(tt_count_requests(f->qoyod, "POST", "/2.0/inventory_adjustments", 201), 1);
}

static void test_rules(void **state)
{
    assert_true(transfer_triggered(MODEL_STATUS_NEW, MODEL_STATUS_COMPLETED));
    assert_true(transfer_triggered(MODEL_STATUS_READY, MODEL_STATUS_READY));
    assert_false(transfer_triggered(MODEL_STATUS_READY, MODEL_STATUS_NEW));
    assert_false(transfer_triggered(MODEL_STATUS_NEW, MODEL_STATUS_OTHER));
    assert_false(transfer_triggered(MODEL_STATUS_NEW, MODEL_STATUS_CANCELLED));
    /* Every edge not in the diagram is refused. */
    static const int allowed[5][5] = {
        {1, 1, 0, 1, 1}, {0, 1, 1, 1, 0}, {0, 0, 1, 0, 0}, {0, 1, 0, 1, 1}, {0, 1, 0, 0, 1}};
    for (int a = 0; a < 5; a++)
        for (int b = 0; b < 5; b++)
            assert_int_equal(transfer_edge_ok(a, b), allowed[a][b]);
    assert_int_equal(worker_backoff_ms(1, 0, 1000), 750);
    for (int n = 1; n < 40; n++) {
        int64_t d = worker_backoff_ms(n, (uint64_t)n * 7919, 1000);
        assert_true(d >= 750 && d <= WORKER_BACKOFF_MAX_MS + WORKER_BACKOFF_MAX_MS / 4);
    }
}

/* A worker that stalled past its job's lease while another took the order
 * over writes nothing and sends nothing: its first write of the order is
 * fenced by the lease (store_order_put_as), whether the holder still runs
 * the order or has finished it. (helper-21 saw the unfenced write leave a
 * finished order "transferring" with no job.) */
static void test_stale_worker_writes_nothing(void **state)
{
    struct fx *f = *state;
    struct th_err err = {0};
    tt_salla_stub_put(&f->salla, &base);
    event(f, base.id, "k1");
    struct store_job stale;
    assert_int_equal(store_job_claim(f->store, "stale", 60000, &stale, &err), 0);
    /* its lease is gone: "holder" has the job now (as after an expiry) */
    assert_int_equal(store_job_retry_as(f->store, stale.id, "stale", 0, "x", &err), 0);
    struct store_job held;
    assert_int_equal(store_job_claim(f->store, "holder", 60000, &held, &err), 0);
    assert_int_equal(held.id, stale.id);

    struct httpc_config hc = {0};
    struct transfer_env env = {.store = f->store, .platform_http = httpc_new(&hc),
                               .job_id = stale.id, .job_owner = "stale", .lease_ms = 60000};
    struct transfer_result res;
    assert_int_equal(transfer_run(&env, f->conn.id, base.id, 0, &res, &err), TH_ECONFLICT);
    assert_non_null(strstr(err.msg, "taken over"));
    struct store_order so;
    assert_int_equal(store_order_get(f->store, f->conn.id, base.id, &so, &err), TH_ENOTFOUND);
    assert_int_equal(tt_count_requests(f->qoyod, "POST", "/2.0/invoices", -2), 0);

    /* the holder finishes the order (a plain drain gives the job back first) */
    assert_int_equal(store_job_retry_as(f->store, held.id, "holder", 0, "x", &err), 0);
    drain(f);
    so = get_order(f, base.id);
    assert_int_equal(so.xfer, STORE_XFER_TRANSFERRED);
    store_order_release(&so);
    /* the stale worker comes back: the job is gone, nothing changes */
    memset(&err, 0, sizeof err);
    assert_int_equal(transfer_run(&env, f->conn.id, base.id, 0, &res, &err), TH_ECONFLICT);
    assert_non_null(strstr(err.msg, "finished by another worker"));
    so = get_order(f, base.id);
    assert_int_equal(so.xfer, STORE_XFER_TRANSFERRED);
    assert_int_equal(so.attempts, 1);
    store_order_release(&so);
    assert_int_equal(invoices_with_ref(f, "1001"), 1);
    assert_int_equal(tt_count_requests(f->qoyod, "POST", "/2.0/invoices", -2), 1);
    httpc_free(env.platform_http);
}

int main(void)
{
    log_set_level(LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rules),
        cmocka_unit_test_setup_teardown(test_happy_path_paid_invoice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_worker_writes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicates_and_manual_resend_make_one_invoice, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_faults_on_invoice_create, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_sku_fails_with_reason, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trigger_waits_for_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_orders_before_connection_only_by_hand, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_manual_send_ignores_trigger, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_refreshed_once_before_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_token_forces_one_refresh, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoked_grant_needs_reinstall, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit_pauses_the_qoyod_account, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_delay_follows_cause, setup, teardown),
        cmocka_unit_test(test_retry_policy),
        cmocka_unit_test_setup_teardown(test_busy_store_does_not_starve_others, setup, teardown),
        cmocka_unit_test_setup_teardown(test_settings_financial_off_and_own_numbering, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cancelled_before_transfer_is_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_qoyod_key_fails_plainly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_after_transfer_one_credit_note, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_refund_allocates_to_open_invoice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_edit_after_transfer_needs_review, setup, teardown),
        cmocka_unit_test_setup_teardown(test_known_customer_and_product_cost_two_calls, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_new_product_gets_opening_stock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lost_product_create_still_books_opening, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_untracked_store_product, setup, teardown),
        cmocka_unit_test_setup_teardown(test_orders_before_opening_are_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_opening_booked_again_after_crash_not_pushed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_crash_after_correction_not_counted_twice, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_crash_after_correction_then_credit_note, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_token_expired_mid_transfer_is_refreshed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_customer_found_by_local_phone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_cash_customer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_first_orders_create_once, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
