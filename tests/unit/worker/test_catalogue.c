/*
 * Tests for worker/catalogue against the Qoyod, Salla and Zid emulators: a
 * Salla store's set-up creates "Salla sales" (a Revenue account) and "Salla
 * cost of goods sold" (Expense) and finds Qoyod's own opening-balance
 * account; the store's four categories become Qoyod categories with the
 * child under its parent; a second run creates nothing; a category the
 * merchant already has in Qoyod is used, not duplicated; a product tarheel
 * then creates for an order carries the store's accounts, and its opening
 * balance is booked against the opening-balance account; Zid's nested,
 * bilingual categories arrive by their Arabic names; a store whose
 * categories cannot be read still gets its accounts; with a patience (as
 * `tarheel connect` sets) Qoyod's 429s are waited out, and past the
 * patience the set-up gives up saying how long.
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
#include "worker/catalogue.h"
#include "worker/worker.h"

#define KEY "qk"

struct fx {
    char dir[64];
    struct store *store;
    struct sim *qoyod, *shop;
    struct httpc *hc;
    struct store_conn conn;
};

static const char *const QH[] = {"API-KEY: " KEY, "Content-Type: application/json", NULL};

static json_t *qoyod_get(struct fx *f, const char *path)
{
    struct tt_resp r;
    tt_http("GET", tt_url(f->qoyod, "%s", path), QH, NULL, &r);
    json_t *j = r.status == 200 ? json_incref(r.json) : json_array();
    tt_resp_release(&r);
    return j;
}

static void start(struct fx *f, const struct sim_ops *ops, const char *const *opts)
{
    snprintf(f->dir, sizeof f->dir, "/tmp/th_catXXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char *url = xasprintf("sqlite:%s/t.db", f->dir);
    struct th_err err;
    if (store_open(&f->store, url, &err) != 0) fail_msg("store: %s", err.msg);
    free(url);
    f->qoyod = tt_sim_start(&qoyod_sim_ops, (const char *[]){"api-key", KEY, NULL});
    f->shop = tt_sim_start(ops, opts);
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

static struct catalogue_report setup(struct fx *f)
{
    struct catalogue_report r;
    struct th_err err;
    if (catalogue_setup(f->store, f->hc, NULL, NULL, &f->conn, &r, &err) != 0)
        fail_msg("catalogue: %s", err.msg);
    return r;
}

/* The Qoyod account with this English name, or NULL. */
static json_t *account_named(json_t *accounts, const char *en)
{
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(accounts, "accounts"), i, a)
    {
        const char *n = json_string_value(json_object_get(a, "name_en"));
        if (n && strcmp(n, en) == 0) return a;
    }
    return NULL;
}

static json_t *category_named(json_t *cats, const char *name)
{
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(cats, "categories"), i, c)
    {
        const char *n = json_string_value(json_object_get(c, "name"));
        if (n && strcmp(n, name) == 0) return c;
    }
    return NULL;
}

static size_t count(json_t *j, const char *key)
{
    return json_array_size(json_object_get(j, key));
}

/* ---------------------------------------------------------------------- */

static void test_salla_accounts_and_categories(void **state)
{
    struct fx *f = *state;
    json_t *acc0 = qoyod_get(f, "/2.0/accounts");
    size_t accounts_before = count(acc0, "accounts");
    json_decref(acc0);

    struct catalogue_report r = setup(f);
    assert_int_equal(r.accounts_created, 2);
    assert_int_equal(r.accounts_found, 1); /* Qoyod's own opening balances (44, code 3201) */
    assert_int_equal(r.opening, 44);
    assert_int_equal(r.categories_failed, 0);
    assert_int_equal(r.categories, 4);
    assert_int_equal(r.categories_created, 4);

    json_t *acc = qoyod_get(f, "/2.0/accounts");
    assert_int_equal(count(acc, "accounts"), accounts_before + 2);
    json_t *sales = account_named(acc, "Salla sales");
    json_t *cost = account_named(acc, "Salla cost of goods sold");
    assert_non_null(sales);
    assert_non_null(cost);
    assert_string_equal(json_string_value(json_object_get(sales, "name_ar")), "مبيعات سلة");
    assert_string_equal(json_string_value(json_object_get(sales, "type")), "Revenue");
    assert_string_equal(json_string_value(json_object_get(sales, "type_of_account")), "Sale");
    assert_string_equal(json_string_value(json_object_get(cost, "type")), "Expense");
    assert_string_equal(json_string_value(json_object_get(cost, "type_of_account")), "DirectCost");
    assert_string_equal(json_string_value(json_object_get(cost, "branch_kind")), "Cost of sales");
    assert_int_equal(json_integer_value(json_object_get(sales, "id")), r.sales);
    assert_int_equal(json_integer_value(json_object_get(cost, "id")), r.cost);
    json_decref(acc);

    json_t *cats = qoyod_get(f, "/2.0/categories");
    json_t *clothes = category_named(cats, "الملابس"), *tees = category_named(cats, "تي شيرتات");
    assert_non_null(clothes);
    assert_non_null(tees);
    assert_non_null(category_named(cats, "العطور"));
    assert_non_null(category_named(cats, "القهوة والتمور"));
    assert_int_equal(json_integer_value(json_object_get(tees, "parent_id")),
                     json_integer_value(json_object_get(clothes, "id")));
    size_t ncats = count(cats, "categories");
    json_decref(cats);
    int64_t mapped = 0;
    struct th_err err;
    assert_int_equal(store_map_get(f->store, f->conn.id, "category", "256950452", &mapped, &err),
                     0);
    assert_true(mapped > 0);

    /* Again: everything is found, nothing is created. */
    r = setup(f);
    assert_int_equal(r.accounts_created, 0);
    assert_int_equal(r.accounts_found, 3);
    assert_int_equal(r.categories_created, 0);
    assert_int_equal(r.categories_found, 4);
    cats = qoyod_get(f, "/2.0/categories");
    assert_int_equal(count(cats, "categories"), ncats);
    json_decref(cats);
}

static void test_existing_category_used(void **state)
{
    struct fx *f = *state;
    struct tt_resp r;
    tt_http("POST", tt_url(f->qoyod, "/2.0/categories"), QH, "{\"category\":{\"name\":\"العطور\"}}",
            &r);
    assert_int_equal(r.status, 201);
    int64_t mine = json_integer_value(json_object_get(json_object_get(r.json, "category"), "id"));
    tt_resp_release(&r);
    struct catalogue_report rep = setup(f);
    assert_int_equal(rep.categories_found, 1);
    assert_int_equal(rep.categories_created, 3);
    int64_t mapped = 0;
    struct th_err err;
    assert_int_equal(store_map_get(f->store, f->conn.id, "category", "256950460", &mapped, &err),
                     0);
    assert_int_equal(mapped, mine);
}

static void test_transfer_uses_accounts(void **state)
{
    struct fx *f = *state;
    struct catalogue_report rep = setup(f);
    struct tt_resp r;
    tt_http("POST", tt_url(f->shop, "/_sim/salla/generate"), NULL,
            "{\"store_id\":4242,\"count\":2}", &r);
    assert_int_equal(r.status, 201);
    struct th_err err;
    size_t i;
    json_t *id;
    json_array_foreach(json_object_get(r.json, "orders"), i, id)
        assert_int_equal(store_job_enqueue(f->store, f->conn.id, json_integer_value(id), &err), 0);
    tt_resp_release(&r);
    struct worker_config wc = {.store = f->store, .backoff_base_ms = 5, .qoyod_rpm = -1};
    assert_int_equal(worker_drain(&wc, worker_now_ms() + 20000, &err), 0);
    json_t *prods = qoyod_get(f, "/2.0/products?per_page=100");
    size_t tracked = 0;
    json_t *p;
    assert_true(count(prods, "products") > 0);
    json_array_foreach(json_object_get(prods, "products"), i, p)
    {
        assert_int_equal(json_integer_value(json_object_get(p, "sales_account_id")), rep.sales);
        if (json_is_true(json_object_get(p, "track_quantity"))) {
            tracked++;
            assert_int_equal(json_integer_value(json_object_get(p, "expense_account_id")),
                             rep.cost);
        }
    }
    json_decref(prods);
    /* The opening balances: counts against the opening-balance account. */
    tt_http("GET", tt_url(f->qoyod, "/_sim/requests?since=0"), NULL, NULL, &r);
    size_t adjustments = 0;
    json_t *q;
    json_array_foreach(json_object_get(r.json, "requests"), i, q)
    {
        if (strcmp(json_string_value(json_object_get(q, "path")), "/2.0/inventory_adjustments"))
            continue;
        json_t *b = json_loads(json_string_value(json_object_get(q, "body")), 0, NULL);
        json_t *adj = json_object_get(b, "inventory_adjustment");
        assert_int_equal(json_integer_value(json_object_get(adj, "revenue_account_id")), 44);
        assert_int_equal(json_integer_value(json_object_get(adj, "expense_account_id")), rep.cost);
        json_decref(b);
        adjustments++;
    }
    tt_resp_release(&r);
    assert_true(tracked > 0);
    assert_int_equal(adjustments, tracked);
}

static void test_categories_unreadable(void **state)
{
    struct fx *f = *state;
    tt_faults(f->shop, "{\"match\":\"GET /admin/v2/categories\",\"mode\":\"error\",\"status\":500,"
                       "\"count\":1}");
    struct catalogue_report r = setup(f);
    assert_int_equal(r.categories_failed, 1);
    assert_int_equal(r.accounts_created, 2);
    r = setup(f);
    assert_int_equal(r.categories_failed, 0);
    assert_int_equal(r.categories_created, 4);
}

static void test_zid_categories(void **state)
{
    struct fx *f = *state;
    struct catalogue_report r = setup(f);
    assert_int_equal(r.accounts_created, 2);
    assert_int_equal(r.categories, 3);
    assert_int_equal(r.categories_created, 3);
    json_t *acc = qoyod_get(f, "/2.0/accounts");
    assert_non_null(account_named(acc, "Zid sales"));
    assert_non_null(account_named(acc, "Zid cost of goods sold"));
    json_decref(acc);
    json_t *cats = qoyod_get(f, "/2.0/categories");
    json_t *fashion = category_named(cats, "أزياء وعطور"), *abayas = category_named(cats, "عبايات");
    assert_non_null(fashion);
    assert_non_null(abayas);
    assert_non_null(category_named(cats, "مواد غذائية"));
    assert_int_equal(json_integer_value(json_object_get(abayas, "parent_id")),
                     json_integer_value(json_object_get(fashion, "id")));
    json_decref(cats);
}

/* Counts the waits instead of sleeping (no test depends on the clock). */
struct waits {
    int n;
    long ms;
    long asked_s[8];
};

static void fake_sleep(void *arg, long ms)
{
    struct waits *w = arg;
    w->ms += ms;
    w->n++;
}

static void noted(void *arg, long wait_s, const char *what)
{
    struct waits *w = arg;
    assert_non_null(what);
    if (w->n < 8) w->asked_s[w->n] = wait_s;
}

/* `tarheel connect` meets Qoyod's rate limit (another app, or a serve on the
 * same key, used the minute's calls): the set-up waits what Qoyod asks,
 * each time, and goes on to the same result as without the 429s. The
 * requests refused are sent again; nothing is created twice. Without a
 * patience (the old behaviour, and the background pass's) the first 429
 * failed the set-up. */
static void test_rate_limit_waited_out(void **state)
{
    struct fx *f = *state;
    tt_faults(f->qoyod, "{\"faults\":["
                        "{\"match\":\"GET /2.0/accounts*\",\"mode\":\"rate_limit\","
                        "\"retry_after\":7,\"count\":2},"
                        "{\"match\":\"POST /2.0/accounts*\",\"mode\":\"rate_limit\","
                        "\"retry_after\":30,\"count\":1},"
                        "{\"match\":\"POST /2.0/categories*\",\"mode\":\"rate_limit\","
                        "\"retry_after\":0,\"count\":1}]}");
    struct waits w = {0};
    struct qoyod_patience pat = {
        .max_ms = QOYOD_PATIENCE_MS, .sleep_ms = fake_sleep, .notify = noted, .arg = &w};
    struct catalogue_report r;
    struct th_err err;
    if (catalogue_setup(f->store, f->hc, NULL, &pat, &f->conn, &r, &err) != 0)
        fail_msg("catalogue: %s: %s", th_err_name(err.code), err.msg);
    assert_int_equal(w.n, 4);
    assert_int_equal(w.asked_s[0], 7);
    assert_int_equal(w.asked_s[1], 7);
    assert_int_equal(w.asked_s[2], 30);
    assert_int_equal(w.asked_s[3], 1); /* Retry-After: 0 still waits a second */
    assert_int_equal(w.ms, (7 + 7 + 30 + 1) * 1000);
    assert_int_equal(pat.waited_ms, w.ms);
    assert_int_equal(r.accounts_created, 2);
    assert_int_equal(r.accounts_found, 1);
    assert_int_equal(r.categories_failed, 0);
    assert_int_equal(r.categories_created, 4);
    assert_int_equal(tt_count_requests(f->qoyod, "GET", "/2.0/accounts*", 429), 2);
    assert_int_equal(tt_count_requests(f->qoyod, "POST", "/2.0/accounts*", 201), 2);
    json_t *acc = qoyod_get(f, "/2.0/accounts");
    assert_non_null(account_named(acc, "Salla sales"));
    assert_non_null(account_named(acc, "Salla cost of goods sold"));
    json_decref(acc);
}

/* Qoyod keeps answering 429: the set-up waits while the total stays within
 * the patience (two waits of 50 s), then gives up with TH_ERATE, naming the
 * wait Qoyod asked for, what was waited and the limit; nothing was
 * created. Without a patience a 429 fails at once, with no wait (the
 * worker's way: it pauses the account instead). */
static void test_rate_limit_gives_up_after_patience(void **state)
{
    struct fx *f = *state;
    tt_faults(f->qoyod, "{\"match\":\"GET /2.0/accounts*\",\"mode\":\"rate_limit\","
                        "\"retry_after\":50}");
    struct catalogue_report r;
    struct th_err err;
    assert_int_equal(catalogue_setup(f->store, f->hc, NULL, NULL, &f->conn, &r, &err), TH_ETEMP);
    assert_int_equal(tt_count_requests(f->qoyod, "GET", "/2.0/accounts*", 429), 1);

    struct waits w = {0};
    struct qoyod_patience pat = {
        .max_ms = QOYOD_PATIENCE_MS, .sleep_ms = fake_sleep, .notify = noted, .arg = &w};
    assert_int_equal(catalogue_setup(f->store, f->hc, NULL, &pat, &f->conn, &r, &err), TH_ERATE);
    assert_int_equal(w.n, 2);
    assert_int_equal(w.ms, 100000);
    assert_int_equal(tt_count_requests(f->qoyod, "GET", "/2.0/accounts*", 429), 1 + 3);
    assert_non_null(strstr(err.msg, "429"));
    assert_non_null(strstr(err.msg, "asked to wait 50 s"));
    assert_non_null(strstr(err.msg, "already waited 100 s"));
    assert_non_null(strstr(err.msg, "at most 120 s"));
    assert_non_null(strstr(err.msg, "run the command again"));
    assert_int_equal(tt_count_requests(f->qoyod, "POST", "/2.0/accounts*", -2), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_salla_accounts_and_categories, setup_salla, teardown),
        cmocka_unit_test_setup_teardown(test_existing_category_used, setup_salla, teardown),
        cmocka_unit_test_setup_teardown(test_transfer_uses_accounts, setup_salla, teardown),
        cmocka_unit_test_setup_teardown(test_categories_unreadable, setup_salla, teardown),
        cmocka_unit_test_setup_teardown(test_zid_categories, setup_zid, teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit_waited_out, setup_salla, teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit_gives_up_after_patience, setup_salla,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
