/*
 * Tests for worker/reconcile, against the Salla, Zid and Qoyod emulators run
 * in process: orders generated in the store and transferred by the real
 * worker reconcile to zero differences, with the totals equal; then each
 * kind of difference is planted on purpose (a cancellation not yet
 * credited, an invoice typed by hand for no order, a second invoice for an
 * order, an invoice with a wrong amount, an order never transferred) and
 * each is reported, exactly, with its amounts; crediting the cancellation
 * removes its difference. A Zid store with a partial return reconciles to
 * zero once its credit note is issued. Nothing is written by a run.
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
#include "core/log.h"
#include "core/xmalloc.h"
#include "sim/qoyod_sim.h"
#include "sim/salla_sim.h"
#include "sim/zid_sim.h"
#include "th_test.h"
#include "worker/reconcile.h"
#include "worker/worker.h"

#define KEY "qk"
#define SALLA_STORE 4242
#define ZID_STORE 251073
#define FROM "2026-11-01"
#define TO "2026-11-05"

struct fx {
    char dir[64];
    struct store *store;
    struct sim *qoyod, *shop;
    struct store_conn conn;
};

static void must(int rc, const struct th_err *err)
{
    if (rc != 0) fail_msg("call failed: %s: %s", th_err_name(rc), err->msg);
}

static void start(struct fx *f, const struct sim_ops *shop_ops, const char *const *opts)
{
    snprintf(f->dir, sizeof f->dir, "/tmp/th_reconXXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char *url = xasprintf("sqlite:%s/t.db", f->dir);
    struct th_err err;
    must(store_open(&f->store, url, &err), &err);
    free(url);
    f->qoyod = tt_sim_start(&qoyod_sim_ops, (const char *[]){"api-key", KEY, NULL});
    f->shop = tt_sim_start(shop_ops, opts);
    struct store_conn *c = &f->conn;
    c->status = xstrdup("active");
    c->qoyod_base = xasprintf("%s/2.0", sim_base_url(f->qoyod));
    c->qoyod_api_key = xstrdup(KEY);
    c->inventory_id = 1;
    c->trigger = MODEL_STATUS_NEW;
    c->customer_per_invoice = 0;
    c->number_by_order = 1;
    c->financial_invoice = 0;
    c->webhook_secret = xstrdup("unused");
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

/* Generates count orders created in the range; returns their ids (new). */
static json_t *generate(struct fx *f, int count, const char *from, const char *to)
{
    int zid = f->conn.platform == MODEL_PLATFORM_ZID;
    char body[256];
    snprintf(body, sizeof body, "{\"store_id\":%d,\"count\":%d,\"from\":\"%s\",\"to\":\"%s\"}",
             zid ? ZID_STORE : SALLA_STORE, count, from, to);
    struct tt_resp r;
    tt_http("POST", tt_url(f->shop, zid ? "/_sim/zid/generate" : "/_sim/salla/generate"), NULL,
            body, &r);
    assert_true(r.status == 200 || r.status == 201);
    json_t *ids = json_incref(json_object_get(r.json, "ids"));
    if (!ids) ids = json_incref(json_object_get(r.json, "orders"));
    tt_resp_release(&r);
    assert_non_null(ids);
    return ids;
}

static int64_t id_at(const json_t *ids, size_t i)
{
    const json_t *v = json_array_get(ids, i);
    if (json_is_object(v)) v = json_object_get(v, "id");
    return json_integer_value(v);
}

static void drain(struct fx *f)
{
    struct worker_config wc = {.store = f->store, .backoff_base_ms = 5};
    struct th_err err;
    for (int i = 0; i < 2000; i++) {
        must(worker_drain(&wc, worker_now_ms() + 20000, &err), &err);
        int64_t n = 0;
        must(store_job_count(f->store, &n, &err), &err);
        if (n == 0) return;
        tt_sleep_ms(10);
    }
    fail_msg("jobs did not finish");
}

static void transfer(struct fx *f, int64_t id, const char *key)
{
    int dup = 0;
    struct th_err err;
    must(store_event_ingest(f->store, f->conn.id, key, "order.updated", id, "{}", 2, &dup, &err),
         &err);
}

static void reconcile(struct fx *f, struct reconcile_report *r)
{
    struct reconcile_env env = {.store = f->store, .platform_http = httpc_new(NULL)};
    struct th_err err;
    must(reconcile_run(&env, f->conn.id, FROM, TO, r, &err), &err);
    httpc_free(env.platform_http);
}

static const struct reconcile_item *find(const struct reconcile_report *r, enum reconcile_kind k)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->items[i].kind == k) return &r->items[i];
    return NULL;
}

static int count(const struct reconcile_report *r, enum reconcile_kind k)
{
    int n = 0;
    for (size_t i = 0; i < r->n; i++) n += r->items[i].kind == k;
    return n;
}

static void print(const struct reconcile_report *r)
{
    char *t = reconcile_json(r);
    print_message("%s\n", t);
    free(t);
}

static int64_t qoyod_post(struct fx *f, const char *path, const char *body)
{
    const char *h[] = {"API-KEY: " KEY, "Content-Type: application/json", NULL};
    struct tt_resp r;
    tt_http("POST", tt_url(f->qoyod, "/2.0%s", path), h, body, &r);
    if (r.status != 201) fail_msg("POST %s: %ld %s", path, r.status, r.body);
    json_t *obj = json_object_iter_value(json_object_iter(r.json));
    int64_t id = json_integer_value(json_object_get(obj, "id"));
    tt_resp_release(&r);
    return id;
}

/* An invoice typed by hand in Qoyod (a Service, so no stock is needed). */
static int64_t hand_invoice(struct fx *f, int64_t product, const char *ref, const char *desc,
                            const char *price)
{
    char *b = xasprintf("{\"invoice\":{\"contact_id\":1,\"reference\":\"%s\",\"description\":"
                        "\"%s\",\"issue_date\":\"2026-11-03\",\"due_date\":\"2026-11-03\","
                        "\"status\":\"Approved\",\"inventory_id\":1,\"line_items\":[{"
                        "\"product_id\":%lld,\"quantity\":1,\"unit_price\":\"%s\","
                        "\"tax_percent\":\"0\"}]}}",
                        ref, desc, (long long)product, price);
    int64_t id = qoyod_post(f, "/invoices", b);
    free(b);
    return id;
}

/* ---------------------------------------------------------------------- */

static void test_salla_zero_then_each_planted_difference(void **state)
{
    struct fx *f = *state;
    json_t *ids = generate(f, 6, FROM, TO);
    assert_int_equal(json_array_size(ids), 6);
    char key[32];
    for (size_t i = 0; i < 6; i++) {
        snprintf(key, sizeof key, "e%zu", i);
        transfer(f, id_at(ids, i), key);
    }
    drain(f);

    /* The store's API limits the rate and fails now and then: the run
     * waits and tries again rather than give up. */
    tt_faults(f->shop, "{\"faults\":[{\"match\":\"GET /admin/v2/orders/*\",\"mode\":"
                       "\"rate_limit\",\"retry_after\":1,\"count\":1},{\"match\":"
                       "\"GET /admin/v2/orders*\",\"mode\":\"error\",\"status\":503,"
                       "\"count\":2}]}");
    struct reconcile_report r;
    reconcile(f, &r);
    if (r.differences) print(&r);
    assert_int_equal(r.differences, 0);
    assert_int_equal(tt_count_requests(f->shop, "GET", "/admin/v2/orders*", 429), 1);
    assert_int_equal(tt_count_requests(f->shop, "GET", "/admin/v2/orders*", 503), 2);
    assert_int_equal(r.orders, 6);
    assert_int_equal(r.expected, 6);
    assert_int_equal(r.invoices, 6);
    assert_true(r.store_total > 0);
    assert_int_equal(r.invoiced_total, r.store_total);
    assert_int_equal(r.store_credits, 0);
    assert_int_equal(r.credited_total, 0);
    int64_t store_total = r.store_total;
    reconcile_report_release(&r);
    int qoyod_writes = tt_count_requests(f->qoyod, "POST", "*", -2);

    /* Plant one of each. */
    int64_t o1 = id_at(ids, 0), o2 = id_at(ids, 1);
    struct store_order so1, so2;
    struct th_err err;
    must(store_order_get(f->store, f->conn.id, o1, &so1, &err), &err);
    must(store_order_get(f->store, f->conn.id, o2, &so2, &err), &err);
    /* (1) cancelled in the store, the credit note not yet made */
    char body[128];
    snprintf(body, sizeof body, "{\"slug\":\"canceled\"}");
    struct tt_resp tr;
    tt_http("POST", tt_url(f->shop, "/_sim/salla/orders/%lld/status", (long long)o1), NULL, body,
            &tr);
    assert_true(tr.status == 200 || tr.status == 201);
    tt_resp_release(&tr);
    int64_t svc = qoyod_post(f, "/products",
                             "{\"product\":{\"sku\":\"HAND-1\",\"name_ar\":\"يدوي\",\"name_en\":"
                             "\"By hand\",\"type\":\"Service\",\"product_unit_type_id\":6,"
                             "\"category_id\":1,\"tax_id\":3,\"track_quantity\":\"0\","
                             "\"sale_item\":\"1\",\"selling_price\":\"10.0\"}}");
    /* (2) an invoice for an order that does not exist */
    hand_invoice(f, svc, "TH-salla-999999", "salla order 999999", "40.0");
    /* (3) a second invoice for order 2, typed by hand under another number */
    char desc[96];
    snprintf(desc, sizeof desc, "salla order %s", so2.number);
    hand_invoice(f, svc, "MANUAL-2", desc, "5.0");
    /* (4) and (5): two new orders in the range; one gets a wrong invoice by
     * hand, the other nothing */
    json_t *more = generate(f, 2, FROM, TO);
    int64_t o7 = id_at(more, 0);
    struct tt_resp orr;
    json_t *all = NULL;
    tt_http("GET", tt_url(f->shop, "/_sim/salla/orders"), NULL, NULL, &orr);
    all = json_incref(orr.json);
    tt_resp_release(&orr);
    char num7[32] = "";
    size_t i;
    json_t *o;
    json_t *list = json_is_array(all) ? all : json_object_get(all, "orders");
    json_array_foreach(list, i, o) if (json_integer_value(json_object_get(o, "id")) == o7)
        jv_get_text(o, "reference_id", num7, sizeof num7);
    json_decref(all);
    assert_true(num7[0]);
    snprintf(desc, sizeof desc, "salla order %s", num7);
    hand_invoice(f, svc, num7, desc, "1.0");

    reconcile(f, &r);
    print(&r);
    assert_int_equal(r.orders, 8);
    assert_int_equal(count(&r, RECONCILE_CREDIT), 1);
    assert_int_equal(count(&r, RECONCILE_NO_ORDER), 1);
    assert_int_equal(count(&r, RECONCILE_DUPLICATE), 1);
    assert_int_equal(count(&r, RECONCILE_AMOUNT), 1);
    assert_int_equal(count(&r, RECONCILE_NO_INVOICE), 1);
    assert_int_equal(r.differences, 5);
    const struct reconcile_item *it = find(&r, RECONCILE_CREDIT);
    assert_int_equal(it->order_id, o1);
    assert_int_equal(it->store_amount, so1.total);
    assert_int_equal(it->qoyod_amount, 0);
    it = find(&r, RECONCILE_NO_ORDER);
    assert_string_equal(it->reference, "TH-salla-999999");
    assert_int_equal(it->qoyod_amount, 4000);
    it = find(&r, RECONCILE_DUPLICATE);
    assert_int_equal(it->order_id, o2);
    assert_int_equal(it->qoyod_amount, so2.total + 500);
    it = find(&r, RECONCILE_AMOUNT);
    assert_int_equal(it->order_id, o7);
    assert_int_equal(it->qoyod_amount, 100);
    assert_true(it->store_amount > 100);
    it = find(&r, RECONCILE_NO_INVOICE);
    assert_int_equal(it->order_id, id_at(more, 1));
    assert_non_null(strstr(it->detail, "never heard of it"));
    assert_int_equal(r.store_credits, so1.total);
    /* the invoiced total counts every invoice tarheel's words name */
    assert_int_equal(r.invoiced_total, store_total + 4000 + 500 + 100);
    reconcile_report_release(&r);
    /* read-only: not one write reached Qoyod */
    assert_int_equal(tt_count_requests(f->qoyod, "POST", "*", -2), qoyod_writes + 4);

    /* The worker credits the cancellation: that difference is gone. */
    transfer(f, o1, "cancel");
    drain(f);
    reconcile(f, &r);
    assert_int_equal(count(&r, RECONCILE_CREDIT), 0);
    assert_int_equal(r.differences, 4);
    assert_int_equal(r.credited_total, so1.total);
    assert_int_equal(r.credit_notes, 1);
    reconcile_report_release(&r);
    store_order_release(&so1);
    store_order_release(&so2);
    json_decref(more);
    json_decref(ids);
}

/* A Zid order returned in part, then in full: credit notes for the part and
 * the rest; reconciliation finds nothing to say. */
static void test_zid_returns_reconcile(void **state)
{
    struct fx *f = *state;
    json_t *ids = generate(f, 4, FROM, TO);
    char key[32];
    for (size_t i = 0; i < 4; i++) {
        snprintf(key, sizeof key, "e%zu", i);
        transfer(f, id_at(ids, i), key);
    }
    drain(f);
    /* an order of more than one unit, so one unit back is a part */
    int64_t id = 0, opid = 0;
    struct tt_resp r0;
    tt_http("GET", tt_url(f->shop, "/_sim/zid/orders"), NULL, NULL, &r0);
    size_t i;
    json_t *o, *list = json_is_array(r0.json) ? r0.json : json_object_get(r0.json, "orders");
    json_array_foreach(list, i, o)
    {
        json_t *ps = json_object_get(o, "products");
        json_t *p0 = json_array_get(ps, 0);
        if (id || (json_array_size(ps) < 2 && json_integer_value(json_object_get(p0, "quantity")) < 2))
            continue;
        if (!json_object_get(p0, "sku") || !*json_string_value(json_object_get(p0, "sku"))) continue;
        id = json_integer_value(json_object_get(o, "id"));
        opid = json_integer_value(json_object_get(p0, "order_product_id"));
    }
    tt_resp_release(&r0);
    assert_true(id > 0 && opid > 0);
    char body[160];
    snprintf(body, sizeof body, "{\"items\":[{\"order_product_id\":%lld,\"quantity\":1}],"
             "\"reason\":\"damaged\"}", (long long)opid);
    tt_http("POST", tt_url(f->shop, "/_sim/zid/orders/%lld/reverse", (long long)id), NULL, body,
            &r0);
    assert_int_equal(r0.status, 200);
    tt_resp_release(&r0);
    transfer(f, id, "partial");
    drain(f);
    struct store_order so;
    struct th_err err;
    must(store_order_get(f->store, f->conn.id, id, &so, &err), &err);
    if (so.credit != STORE_CREDIT_DONE) fail_msg("credit %d: %s", so.credit, so.reason);
    assert_true(so.credited > 0 && so.credited < so.total);
    int64_t part = so.credited;
    store_order_release(&so);

    struct reconcile_report r;
    reconcile(f, &r);
    if (r.differences) print(&r);
    assert_int_equal(r.differences, 0);
    assert_int_equal(r.credited_total, part);
    assert_int_equal(r.credit_notes, 1);
    reconcile_report_release(&r);

    /* the rest comes back too */
    tt_http("POST", tt_url(f->shop, "/_sim/zid/orders/%lld/reverse", (long long)id), NULL, "{}",
            &r0);
    assert_int_equal(r0.status, 200);
    tt_resp_release(&r0);
    transfer(f, id, "rest");
    drain(f);
    must(store_order_get(f->store, f->conn.id, id, &so, &err), &err);
    assert_int_equal(so.credit, STORE_CREDIT_DONE);
    assert_int_equal(so.credited, so.total);
    assert_int_equal(so.status, MODEL_STATUS_REFUNDED);
    store_order_release(&so);
    reconcile(f, &r);
    if (r.differences) print(&r);
    assert_int_equal(r.differences, 0);
    assert_int_equal(r.credit_notes, 2);
    reconcile_report_release(&r);
    json_decref(ids);
}

/* ---------------------------------------------------------------------- */
/* Several stores on one Qoyod account (issue 8)                            */

#define SALLA_STORE_B 4343

/* The order numbers of the listed orders (ids in ids), as the store shows. */
static void salla_numbers(struct sim *shop, json_t **orders)
{
    struct tt_resp r;
    tt_http("GET", tt_url(shop, "/_sim/salla/orders"), NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    *orders = json_incref(json_object_get(r.json, "orders"));
    if (!*orders) *orders = json_incref(json_object_get(r.json, "data"));
    tt_resp_release(&r);
    assert_non_null(*orders);
}

/* Transfers every order of connection conn (ids) and runs the jobs. */
static void transfer_all(struct fx *f, int64_t conn, const int64_t *ids, size_t n,
                         const char *tag)
{
    struct th_err err;
    for (size_t i = 0; i < n; i++) {
        char key[48];
        int dup = 0;
        snprintf(key, sizeof key, "%s%zu", tag, i);
        must(store_event_ingest(f->store, conn, key, "order.updated", ids[i], "{}", 2, &dup, &err),
             &err);
    }
    drain(f);
}

static int qoyod_invoices_by_ref(struct fx *f, const char *ref)
{
    const char *h[] = {"API-KEY: " KEY, NULL};
    struct tt_resp r;
    tt_http("GET", tt_url(f->qoyod, "/2.0/invoices?q%%5Breference_eq%%5D=%s", ref), h, NULL, &r);
    int n = r.status == 200 ? (int)json_array_size(json_object_get(r.json, "invoices")) : 0;
    if (r.status != 200 && r.status != 404) fail_msg("invoice lookup: %ld %s", r.status, r.body);
    tt_resp_release(&r);
    return n;
}

static void reconcile_conn(struct fx *f, int64_t conn, struct reconcile_report *r)
{
    struct reconcile_env env = {.store = f->store, .platform_http = httpc_new(NULL)};
    struct th_err err;
    must(reconcile_run(&env, conn, FROM, TO, r, &err), &err);
    httpc_free(env.platform_http);
}

/*
 * Three stores on ONE Qoyod account whose orders carry the same numbers:
 * Salla store A (the first on the account), Salla store B (another Salla
 * store: the same numbers and the same "salla order N" text) and Zid store
 * C. "Invoice number = order number" is on for all three. Each order gets
 * exactly one invoice of its own, with lost answers, a reset, a 503 and a
 * resend by hand along the way; A's references stay the bare order numbers;
 * each store reconciles to zero (no invoice of another store taken for its
 * own, none reported as "no order").
 */
static void test_shared_account_colliding_numbers(void **state)
{
    struct fx *f = *state; /* Salla store A, connected first */
    enum { N = 4 };
    struct th_err err;
    json_t *ids = generate(f, N, FROM, TO);
    json_t *a_orders;
    salla_numbers(f->shop, &a_orders);
    assert_int_equal(json_array_size(a_orders), N);

    /* Salla store B: another store (own emulator) with the same orders,
     * numbers included. */
    struct sim *shop_b = tt_sim_start(&salla_sim_ops, (const char *[]){"rate-limit-plan", "off",
                                                                       NULL});
    struct tt_resp r;
    tt_http("POST", tt_url(shop_b, "/_sim/salla/install"), NULL, "{\"store_id\":4343}", &r);
    assert_int_equal(r.status, 200);
    struct store_conn b = {0};
    b.platform = MODEL_PLATFORM_SALLA;
    b.store_id = SALLA_STORE_B;
    b.access_token = xstrdup(json_string_value(json_object_get(r.json, "access_token")));
    b.api_base = xasprintf("%s/admin/v2", sim_base_url(shop_b));
    tt_resp_release(&r);
    int64_t a_ids[N], c_ids[2 * N];
    char numbers[N][32];
    size_t i;
    json_t *o;
    json_array_foreach(a_orders, i, o) {
        a_ids[i] = json_integer_value(json_object_get(o, "id"));
        json_t *rid = json_object_get(o, "reference_id");
        if (json_is_integer(rid))
            snprintf(numbers[i], sizeof numbers[i], "%lld", (long long)json_integer_value(rid));
        else
            snprintf(numbers[i], sizeof numbers[i], "%s", json_string_value(rid));
        char *body = json_dumps(o, JSON_COMPACT);
        tt_http("POST", tt_url(shop_b, "/_sim/salla/orders?store_id=4343"), NULL, body, &r);
        free(body);
        assert_int_equal(r.status, 201);
        tt_resp_release(&r);
    }

    /* Zid store C: orders renumbered to A's numbers, plus the generated
     * ones (numbers of their own). */
    struct sim *zid = tt_sim_start(&zid_sim_ops, (const char *[]){"rate-limit", "0", NULL});
    tt_http("POST", tt_url(zid, "/_sim/zid/install"), NULL, "{\"store_id\":251073}", &r);
    assert_int_equal(r.status, 200);
    struct store_conn c = {0};
    c.platform = MODEL_PLATFORM_ZID;
    c.store_id = ZID_STORE;
    c.access_token = xstrdup(json_string_value(json_object_get(r.json, "authorization")));
    c.manager_token = xstrdup(json_string_value(json_object_get(r.json, "access_token")));
    c.api_base = xasprintf("%s/v1", sim_base_url(zid));
    c.webhook_strategy = xstrdup("basic");
    tt_resp_release(&r);
    char gen[128];
    /* (Zid's times are UTC: a day short of TO keeps every order inside the
     * range's Riyadh days.) */
    snprintf(gen, sizeof gen, "{\"store_id\":%d,\"count\":%d,\"from\":\"%s\",\"to\":\"%s\"}",
             ZID_STORE, N, FROM, "2026-11-04");
    tt_http("POST", tt_url(zid, "/_sim/zid/generate"), NULL, gen, &r);
    assert_true(r.status == 200 || r.status == 201);
    tt_resp_release(&r);
    tt_http("GET", tt_url(zid, "/_sim/zid/orders"), NULL, NULL, &r);
    json_t *z_orders = json_incref(json_object_get(r.json, "orders"));
    tt_resp_release(&r);
    assert_int_equal(json_array_size(z_orders), N);
    json_array_foreach(z_orders, i, o) {
        c_ids[N + i] = json_integer_value(json_object_get(o, "id"));
        json_t *copy = json_deep_copy(o);
        c_ids[i] = strtoll(numbers[i], NULL, 10);
        json_object_set_new(copy, "id", json_integer(c_ids[i]));
        json_object_set_new(copy, "store_id", json_integer(ZID_STORE));
        char *body = json_dumps(copy, JSON_COMPACT);
        json_decref(copy);
        tt_http("POST", tt_url(zid, "/_sim/zid/orders"), NULL, body, &r);
        free(body);
        assert_int_equal(r.status, 201);
        tt_resp_release(&r);
    }

    /* B and C join A's Qoyod account, with A's settings. */
    struct store_conn *cs[2] = {&b, &c};
    for (int k = 0; k < 2; k++) {
        cs[k]->status = xstrdup("active");
        cs[k]->qoyod_base = xstrdup(f->conn.qoyod_base);
        cs[k]->qoyod_api_key = xstrdup(KEY);
        cs[k]->inventory_id = 1;
        cs[k]->trigger = MODEL_STATUS_NEW;
        cs[k]->number_by_order = 1;
        cs[k]->webhook_secret = xstrdup("unused");
        must(store_conn_put(f->store, cs[k], &err), &err);
    }
    struct store_conn got;
    char prefix[3][16];
    int64_t conns[3] = {f->conn.id, b.id, c.id};
    for (int k = 0; k < 3; k++) {
        must(store_conn_get(f->store, conns[k], &got, &err), &err);
        snprintf(prefix[k], sizeof prefix[k], "%s", got.ref_prefix ? got.ref_prefix : "");
        store_conn_release(&got);
    }
    assert_string_equal(prefix[0], ""); /* the first store's references are unchanged */
    assert_string_not_equal(prefix[1], "");
    assert_string_not_equal(prefix[2], "");
    assert_string_not_equal(prefix[1], prefix[2]);

    /* A, then B with lost answers on its invoices, then C with a reset and
     * a 503: every create that collides on today's references would be
     * refused as a duplicate or settled by another store's invoice. */
    transfer_all(f, f->conn.id, a_ids, N, "a");
    tt_faults(f->qoyod, "{\"match\":\"POST /2.0/invoices\",\"mode\":\"commit_then_drop\","
                        "\"count\":2}");
    transfer_all(f, b.id, a_ids, N, "b");
    tt_faults(f->qoyod, "{\"faults\":[{\"match\":\"POST /2.0/invoices\",\"mode\":\"reset\","
                        "\"count\":1},{\"match\":\"POST /2.0/invoices\",\"mode\":\"error\","
                        "\"status\":503,\"count\":1}]}");
    transfer_all(f, c.id, c_ids, 2 * N, "c");
    assert_true(tt_count_requests(f->qoyod, "POST", "/2.0/invoices", 503) == 1);
    /* and B's orders sent again by hand */
    int posts = tt_count_requests(f->qoyod, "POST", "/2.0/invoices", -2);
    for (i = 0; i < N; i++) must(store_job_enqueue(f->store, b.id, a_ids[i], &err), &err);
    drain(f);
    assert_int_equal(tt_count_requests(f->qoyod, "POST", "/2.0/invoices", -2), posts);

    /* Exactly one invoice per order, each its own. */
    for (i = 0; i < N; i++) {
        char ref[64];
        int64_t inv[3];
        for (int k = 0; k < 3; k++) {
            if (prefix[k][0])
                snprintf(ref, sizeof ref, "%s-%s", prefix[k], numbers[i]);
            else
                snprintf(ref, sizeof ref, "%s", numbers[i]);
            if (qoyod_invoices_by_ref(f, ref) != 1)
                fail_msg("%d invoices with reference %s", qoyod_invoices_by_ref(f, ref), ref);
            struct store_order so;
            must(store_order_get(f->store, conns[k], k == 2 ? c_ids[i] : a_ids[i], &so, &err),
                 &err);
            assert_int_equal(so.xfer, STORE_XFER_TRANSFERRED);
            assert_string_equal(so.qoyod_reference, ref);
            inv[k] = so.qoyod_invoice_id;
            store_order_release(&so);
        }
        assert_true(inv[0] != inv[1] && inv[1] != inv[2] && inv[0] != inv[2]);
    }
    /* Nothing else: A's N, B's N, C's 2N. */
    const char *h[] = {"API-KEY: " KEY, NULL};
    tt_http("GET", tt_url(f->qoyod, "/2.0/invoices?per_page=100"), h, NULL, &r);
    assert_int_equal(json_array_size(json_object_get(r.json, "invoices")), 4 * N);
    tt_resp_release(&r);

    /* Each store reconciles to zero, counting only its own invoices. */
    size_t want[3] = {N, N, 2 * N};
    for (int k = 0; k < 3; k++) {
        struct reconcile_report rr;
        reconcile_conn(f, conns[k], &rr);
        if (rr.differences || rr.orders != want[k]) print(&rr);
        assert_int_equal(rr.differences, 0);
        assert_int_equal(rr.orders, want[k]);
        assert_int_equal(rr.invoices, want[k]);
        assert_int_equal(rr.invoiced_total, rr.store_total);
        reconcile_report_release(&rr);
    }

    json_decref(ids);
    json_decref(a_orders);
    json_decref(z_orders);
    store_conn_release(&b);
    store_conn_release(&c);
    tt_sim_stop(zid);
    tt_sim_stop(shop_b);
}

/* Bad ranges are refused before anything is read. */
static void test_refusals(void **state)
{
    struct fx *f = *state;
    struct reconcile_env env = {.store = f->store, .platform_http = httpc_new(NULL)};
    struct reconcile_report r;
    struct th_err err;
    assert_int_equal(reconcile_run(&env, f->conn.id, "2026-11-05", "2026-11-01", &r, &err),
                     TH_EINVAL);
    assert_int_equal(reconcile_run(&env, f->conn.id, "2024-01-01", "2026-01-01", &r, &err),
                     TH_ELIMIT);
    assert_int_equal(reconcile_run(&env, 99, FROM, TO, &r, &err), TH_ENOTFOUND);
    httpc_free(env.platform_http);
    assert_int_equal(tt_count_requests(f->shop, "*", "*", -2), 0);
}

int main(void)
{
    log_set_level(LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_refusals, setup_salla, teardown),
        cmocka_unit_test_setup_teardown(test_salla_zero_then_each_planted_difference, setup_salla,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_zid_returns_reconcile, setup_zid, teardown),
        cmocka_unit_test_setup_teardown(test_shared_account_colliding_numbers, setup_salla,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
