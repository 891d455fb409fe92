/*
 * Tests for worker/stock against the Qoyod, Salla and Zid emulators: the
 * first round only records Qoyod's counts; a purchase bill in Qoyod reaches
 * the store in the next round (Salla as an increment, Zid as a count), and
 * nothing else does; tarheel's own invoice never comes back as a change,
 * and an invoice in flight holds its SKU back until it is settled; a Zid
 * count written over an order the store took earlier is corrected when that
 * order's invoice lands, an order taken after it is not pushed again;
 * products the store does not count are left alone; a failed push is
 * retried next round; the calls made are a page and a push, not the
 * catalogue.
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

#include "core/jv.h"
#include "core/xmalloc.h"
#include "sim/qoyod_sim.h"
#include "sim/salla_sim.h"
#include "sim/zid_sim.h"
#include "th_test.h"
#include "worker/stock.h"

#define KEY "qk"

struct fx {
    char dir[64];
    struct store *store;
    struct sim *qoyod, *shop;
    struct httpc *hc;
    struct store_conn conn;
    int64_t vendor;
};

static const char *const QH[] = {"API-KEY: " KEY, "Content-Type: application/json", NULL};

static json_t *qoyod(struct fx *f, const char *method, const char *path, const char *body, int want)
{
    struct tt_resp r;
    tt_http(method, tt_url(f->qoyod, "%s", path), QH, body, &r);
    if (r.status != want)
        fail_msg("%s %s: %d, want %d: %s", method, path, r.status, want, r.body ? r.body : "");
    json_t *j = json_incref(r.json);
    tt_resp_release(&r);
    return j;
}

/* A tracked Qoyod product with `stock` at inventory 1; returns its id. */
static int64_t qoyod_product(struct fx *f, const char *sku, int stock)
{
    char *b = xasprintf("{\"product\":{\"sku\":\"%s\",\"name_ar\":\"%s\",\"name_en\":\"%s\","
                        "\"type\":\"Product\",\"product_unit_type_id\":6,\"category_id\":1,"
                        "\"tax_id\":1,\"track_quantity\":\"1\",\"sale_item\":\"1\","
                        "\"selling_price\":\"10.0\",\"sales_account_id\":17}}",
                        sku, sku, sku);
    json_t *j = qoyod(f, "POST", "/2.0/products", b, 201);
    free(b);
    int64_t id = json_integer_value(json_object_get(json_object_get(j, "product"), "id"));
    json_decref(j);
    b = xasprintf("{\"product_id\":%lld,\"stock\":%d}", (long long)id, stock);
    json_decref(qoyod(f, "POST", "/_sim/qoyod/stock", b, 200));
    free(b);
    return id;
}

/* A purchase: an Approved bill adding qty of product pid at inventory 1. */
static void bill(struct fx *f, int64_t pid, int qty)
{
    char *b = xasprintf("{\"bill\":{\"contact_id\":%lld,\"status\":\"Approved\",\"issue_date\":"
                        "\"2026-11-23\",\"due_date\":\"2026-11-23\",\"inventory_id\":1,"
                        "\"line_items\":[{\"product_id\":%lld,\"quantity\":%d,"
                        "\"unit_price\":5}]}}",
                        (long long)f->vendor, (long long)pid, qty);
    json_decref(qoyod(f, "POST", "/2.0/bills", b, 201));
    free(b);
}

/* Sets a product's Qoyod stock as an invoice by tarheel would, with its
 * own movement recorded around it (pending, then applied). */
static void own_sale(struct fx *f, const char *ref, int64_t pid, const char *sku, int now_stock,
                     int qty, int64_t origin_s)
{
    struct th_err err;
    int64_t d = -qty;
    assert_int_equal(store_stock_own_begin(f->store, f->conn.id, ref, &sku, &d, 1, origin_s, &err),
                     0);
    char *b = xasprintf("{\"product_id\":%lld,\"stock\":%d}", (long long)pid, now_stock - qty);
    json_decref(qoyod(f, "POST", "/_sim/qoyod/stock", b, 200));
    free(b);
    assert_int_equal(store_stock_own_settle(f->store, f->conn.id, ref, 1, &err), 0);
}

static void start(struct fx *f, const struct sim_ops *shop_ops, const char *const *opts)
{
    snprintf(f->dir, sizeof f->dir, "/tmp/th_stockXXXXXX");
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
    c->webhook_secret = xstrdup("unused");
    c->connected_at = time(NULL) - 60;
    c->stock_sync = 1;
    json_t *j = qoyod(f, "POST", "/2.0/customers", "{\"contact\":{\"name\":\"Supplier\"}}", 201);
    f->vendor = json_integer_value(json_object_get(json_object_get(j, "contact"), "id"));
    json_decref(j);
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
    f->conn.api_base = xasprintf("%s/admin/v2", sim_base_url(f->shop));
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
    f->conn.api_base = xasprintf("%s/v1", sim_base_url(f->shop));
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

static struct stock_stats round_of(struct fx *f)
{
    struct stock_config cfg = {.force = 1, .platform_rpm = -1, .qoyod_rpm = -1};
    struct stock_stats st;
    struct th_err err;
    if (stock_round(f->store, f->hc, &cfg, &st, &err) != 0) fail_msg("stock: %s", err.msg);
    assert_int_equal(st.stores, 1);
    return st;
}

static long salla_qty(struct fx *f, const char *sku)
{
    char *auth = xasprintf("Authorization: Bearer %s", f->conn.access_token);
    const char *h[] = {auth, NULL};
    struct tt_resp r;
    /* Salla applies bulk quantities asynchronously: the emulator at its
     * next request, so read twice. */
    for (int i = 0; i < 2; i++) {
        tt_http("GET", tt_url(f->shop, "/admin/v2/products/sku/%s", sku), h, NULL, &r);
        if (i == 0) tt_resp_release(&r);
    }
    free(auth);
    assert_int_equal(r.status, 200);
    long q = (long)json_integer_value(json_object_get(json_object_get(r.json, "data"), "quantity"));
    tt_resp_release(&r);
    return q;
}

static long zid_qty(struct fx *f, const char *sku)
{
    char *auth = xasprintf("Authorization: Bearer %s", f->conn.access_token);
    char *acc = xasprintf("Access-Token: %s", f->conn.manager_token);
    const char *h[] = {auth, acc, "Store-Id: 251073", "Role: Manager", NULL};
    struct tt_resp r;
    tt_http("GET", tt_url(f->shop, "/v1/products/?page_size=50"), h, NULL, &r);
    free(auth);
    free(acc);
    assert_int_equal(r.status, 200);
    long q = -1;
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(r.json, "results"), i, p)
    {
        const char *s = json_string_value(json_object_get(p, "sku"));
        if (s && strcmp(s, sku) == 0) q = (long)json_integer_value(json_object_get(p, "quantity"));
    }
    tt_resp_release(&r);
    return q;
}

/* ---------------------------------------------------------------------- */

static void test_salla_purchase_pushed_once(void **state)
{
    struct fx *f = *state;
    int64_t mug = qoyod_product(f, "MUG-001", 200);
    qoyod_product(f, "TSH-BLK-M", 120);
    struct stock_stats st = round_of(f); /* first sight: counts recorded, nothing pushed */
    assert_int_equal(st.pushed, 0);
    assert_int_equal(st.store_calls, 0);
    assert_int_equal(salla_qty(f, "MUG-001"), 200);

    bill(f, mug, 15);
    st = round_of(f);
    assert_int_equal(st.changed, 1);
    assert_int_equal(st.pushed, 1);
    assert_int_equal(st.store_calls, 1);
    assert_int_equal(st.qoyod_calls, 1); /* one page of what changed, not the catalogue */
    assert_int_equal(salla_qty(f, "MUG-001"), 215);
    assert_int_equal(salla_qty(f, "TSH-BLK-M"), 120);

    st = round_of(f); /* nothing new: the same change is not pushed twice */
    assert_int_equal(st.pushed, 0);
    assert_int_equal(st.store_calls, 0);
    assert_int_equal(salla_qty(f, "MUG-001"), 215);
}

static void test_salla_own_invoice_no_bounce(void **state)
{
    struct fx *f = *state;
    int64_t mug = qoyod_product(f, "MUG-001", 200);
    round_of(f);
    /* The store sold 3 (its count is now 197 by its own doing); tarheel's
     * invoice takes the 3 in Qoyod. */
    own_sale(f, "1001", mug, "MUG-001", 200, 3, time(NULL) - 5);
    struct stock_stats st = round_of(f);
    assert_int_equal(st.changed, 0);
    assert_int_equal(st.pushed, 0);
    assert_int_equal(st.store_calls, 0);

    /* An invoice and a purchase between two rounds: only the purchase. */
    own_sale(f, "1002", mug, "MUG-001", 197, 2, time(NULL) - 5);
    bill(f, mug, 10);
    long before = salla_qty(f, "MUG-001");
    st = round_of(f);
    assert_int_equal(st.pushed, 1);
    assert_int_equal(salla_qty(f, "MUG-001"), before + 10);
}

static void test_in_flight_invoice_holds_sku(void **state)
{
    struct fx *f = *state;
    int64_t mug = qoyod_product(f, "MUG-001", 200);
    round_of(f);
    struct th_err err;
    const char *sku = "MUG-001";
    int64_t d = -4;
    /* Sent, answer not back yet: Qoyod already shows it. */
    assert_int_equal(
        store_stock_own_begin(f->store, f->conn.id, "1003", &sku, &d, 1, time(NULL) - 5, &err), 0);
    json_decref(qoyod(f, "POST", "/_sim/qoyod/stock", "{\"sku\":\"MUG-001\",\"stock\":196}", 200));
    bill(f, mug, 7);
    struct stock_stats st = round_of(f);
    assert_int_equal(st.busy, 1);
    assert_int_equal(st.pushed, 0);
    assert_int_equal(salla_qty(f, "MUG-001"), 200);
    /* Settled: the next round pushes only the purchase. */
    assert_int_equal(store_stock_own_settle(f->store, f->conn.id, "1003", 1, &err), 0);
    st = round_of(f);
    assert_int_equal(st.busy, 0);
    assert_int_equal(st.pushed, 1);
    assert_int_equal(salla_qty(f, "MUG-001"), 207);
    /* A document that was not created: its pending movement is dropped. */
    assert_int_equal(
        store_stock_own_begin(f->store, f->conn.id, "1004", &sku, &d, 1, time(NULL) - 5, &err), 0);
    assert_int_equal(store_stock_own_settle(f->store, f->conn.id, "1004", 0, &err), 0);
    st = round_of(f);
    assert_int_equal(st.busy, 0);
    assert_int_equal(st.pushed, 0);
}

static void test_salla_untracked_left_alone(void **state)
{
    struct fx *f = *state;
    int64_t gift = qoyod_product(f, "GIFT-100", 5);
    struct th_err err;
    assert_int_equal(store_stock_untracked(f->store, f->conn.id, "GIFT-100", 1, &err), 0);
    round_of(f);
    bill(f, gift, 3);
    struct stock_stats st = round_of(f);
    assert_int_equal(st.changed, 1);
    assert_int_equal(st.untracked, 1);
    assert_int_equal(st.pushed, 0);
    assert_int_equal(st.store_calls, 0);
}

static void test_salla_push_failure_retried(void **state)
{
    struct fx *f = *state;
    int64_t mug = qoyod_product(f, "MUG-001", 200);
    round_of(f);
    bill(f, mug, 5);
    tt_faults(f->shop, "{\"match\":\"POST /admin/v2/products/quantities/bulk\",\"mode\":"
                       "\"error\",\"status\":503,\"count\":1}");
    struct stock_stats st = round_of(f);
    assert_int_equal(st.failed, 1);
    assert_int_equal(st.pushed, 0);
    st = round_of(f); /* the cursor did not pass it */
    assert_int_equal(st.failed, 0);
    assert_int_equal(st.pushed, 1);
    assert_int_equal(salla_qty(f, "MUG-001"), 205);
}

static void test_zid_counts(void **state)
{
    struct fx *f = *state;
    int64_t aby = qoyod_product(f, "ZD-ABY-001", 25);
    int64_t inc = qoyod_product(f, "ZD-INC-050", 80);
    qoyod_product(f, "Z.251073.1770805225810645", 0); /* the voucher: infinite in Zid */
    qoyod_product(f, "NOT-IN-ZID", 9);
    round_of(f);
    bill(f, aby, 5);
    bill(f, inc, 1);
    json_decref(qoyod(f, "POST", "/_sim/qoyod/stock",
                      "{\"sku\":\"Z.251073.1770805225810645\",\"stock\":4}", 200));
    json_decref(
        qoyod(f, "POST", "/_sim/qoyod/stock", "{\"sku\":\"NOT-IN-ZID\",\"stock\":12}", 200));
    struct stock_stats st = round_of(f);
    assert_int_equal(st.changed, 4);
    assert_int_equal(st.not_found, 1);
    assert_int_equal(st.untracked, 1);
    assert_int_equal(st.pushed, 2);
    assert_int_equal(st.store_calls, 2); /* one refused for the unknown SKU, one without it */
    assert_int_equal(zid_qty(f, "ZD-ABY-001"), 30);
    assert_int_equal(zid_qty(f, "ZD-INC-050"), 81);

    /* The voucher is now known untracked: a change there costs no call. */
    json_decref(qoyod(f, "POST", "/_sim/qoyod/stock",
                      "{\"sku\":\"Z.251073.1770805225810645\",\"stock\":6}", 200));
    st = round_of(f);
    assert_int_equal(st.store_calls, 0);

    /* An order the store took BEFORE tarheel wrote 30 (so the count undid
     * the store's deduction) is pushed when its invoice lands; one taken
     * after is the store's own and is not. */
    int64_t before_push = time(NULL) - 3600;
    own_sale(f, "Z-1", aby, "ZD-ABY-001", 30, 2, before_push);
    st = round_of(f);
    assert_int_equal(st.pushed, 1);
    assert_int_equal(zid_qty(f, "ZD-ABY-001"), 28);
    own_sale(f, "Z-2", aby, "ZD-ABY-001", 28, 1, time(NULL) + 60);
    st = round_of(f);
    assert_int_equal(st.pushed, 0);
    assert_int_equal(st.store_calls, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_salla_purchase_pushed_once, setup_salla, teardown),
        cmocka_unit_test_setup_teardown(test_salla_own_invoice_no_bounce, setup_salla, teardown),
        cmocka_unit_test_setup_teardown(test_in_flight_invoice_holds_sku, setup_salla, teardown),
        cmocka_unit_test_setup_teardown(test_salla_untracked_left_alone, setup_salla, teardown),
        cmocka_unit_test_setup_teardown(test_salla_push_failure_retried, setup_salla, teardown),
        cmocka_unit_test_setup_teardown(test_zid_counts, setup_zid, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
