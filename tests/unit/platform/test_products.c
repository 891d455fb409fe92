/*
 * The product-field operations of each adapter (products_page, product_get,
 * product_put) and of the Qoyod client (qoyod_product_page, _get_sku,
 * _update), against the emulators: every page of a catalogue is read with
 * name, price and cost in halalas, products without SKU are left out of
 * matching, a write changes only the fields asked and is read back, Zid's
 * newest-first listing stops at `since`, and a Qoyod update bumps the
 * product's updated_at so a cursor listing shows it alone.
 */
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

#include "core/jv.h"
#include "core/xmalloc.h"
#include "platform/platform.h"
#include "qoyod/qoyod.h"
#include "sim/qoyod_sim.h"
#include "sim/salla_sim.h"
#include "sim/zid_sim.h"
#include "th_test.h"

struct fx {
    struct sim *shop;
    struct httpc *hc;
    const struct platform_ops *p;
    struct platform_conn pc;
    char *api_base, *access, *manager;
};

static int setup_salla(void **state)
{
    struct fx *f = xcalloc(1, sizeof *f);
    f->shop = tt_sim_start(&salla_sim_ops, (const char *[]){"rate-limit-plan", "off", NULL});
    struct tt_resp r;
    tt_http("POST", tt_url(f->shop, "/_sim/salla/install"), NULL, "{\"store_id\":4242}", &r);
    assert_int_equal(r.status, 200);
    f->access = xstrdup(json_string_value(json_object_get(r.json, "access_token")));
    tt_resp_release(&r);
    f->api_base = xasprintf("%s/admin/v2", sim_base_url(f->shop));
    f->p = platform_by_name("salla");
    f->pc = (struct platform_conn){.store_id = 4242, .api_base = f->api_base, .access_token = f->access};
    f->hc = httpc_new(NULL);
    *state = f;
    return 0;
}

static int setup_zid(void **state)
{
    struct fx *f = xcalloc(1, sizeof *f);
    f->shop = tt_sim_start(&zid_sim_ops, (const char *[]){"rate-limit", "0", NULL});
    struct tt_resp r;
    tt_http("POST", tt_url(f->shop, "/_sim/zid/install"), NULL, "{\"store_id\":251073}", &r);
    assert_int_equal(r.status, 200);
    f->access = xstrdup(json_string_value(json_object_get(r.json, "authorization")));
    f->manager = xstrdup(json_string_value(json_object_get(r.json, "access_token")));
    tt_resp_release(&r);
    f->api_base = xasprintf("%s/v1", sim_base_url(f->shop));
    f->p = platform_by_name("zid");
    f->pc = (struct platform_conn){.store_id = 251073,
                                   .api_base = f->api_base,
                                   .access_token = f->access,
                                   .manager_token = f->manager};
    f->hc = httpc_new(NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    httpc_free(f->hc);
    tt_sim_stop(f->shop);
    free(f->api_base);
    free(f->access);
    free(f->manager);
    free(f);
    return 0;
}

/* Every product of the store, all pages; *skipped counts the left out. */
static struct platform_product *all(struct fx *f, int64_t since, size_t *n, size_t *skipped)
{
    struct platform_product *v = NULL;
    *n = 0;
    *skipped = 0;
    for (int page = 1; page < 50; page++) {
        struct platform_product_page pg;
        struct th_err err;
        if (f->p->products_page(f->hc, &f->pc, page, since, &pg, &err) != 0)
            fail_msg("products_page %d: %s", page, err.msg);
        v = xrealloc(v, (*n + pg.n + 1) * sizeof *v);
        memcpy(v + *n, pg.items, pg.n * sizeof *v);
        *n += pg.n;
        *skipped += pg.skipped;
        int more = pg.more;
        platform_product_page_release(&pg);
        if (!more) break;
    }
    return v;
}

static const struct platform_product *by_sku(const struct platform_product *v, size_t n,
                                             const char *sku)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].sku, sku) == 0) return &v[i];
    return NULL;
}

/* Adds products to the store through the emulator's control API so the
 * listing takes more than one page. */
static void more_products(struct fx *f, int count)
{
    for (int i = 0; i < count; i++) {
        struct tt_resp r;
        char *body;
        if (f->p->platform == MODEL_PLATFORM_SALLA)
            body = xasprintf("{\"store_id\":4242,\"data\":{\"id\":%d,\"sku\":\"EXTRA-%03d\","
                             "\"name\":\"extra %d\",\"price\":{\"amount\":%d.5,\"currency\":"
                             "\"SAR\"},\"cost_price\":\"%d\",\"quantity\":1,\"skus\":[]}}",
                             900000 + i, i, i, 10 + i, 3 + i);
        else
            body = xasprintf("{\"store_id\":251073,\"product\":{\"sku\":\"EXTRA-%03d\",\"name\":"
                             "{\"ar\":\"extra %d\",\"en\":\"x\"},\"price\":%d.5,\"cost\":%d,"
                             "\"quantity\":1}}",
                             i, i, 10 + i, 3 + i);
        tt_http("POST",
                tt_url(f->shop, f->p->platform == MODEL_PLATFORM_SALLA ? "/_sim/salla/products"
                                                                         : "/_sim/zid/products"),
                NULL, body, &r);
        free(body);
        if (r.status != 200 && r.status != 201) fail_msg("seed product: %d %s", r.status, r.body);
        tt_resp_release(&r);
    }
}

static void test_list_put_read_back(void **state)
{
    struct fx *f = *state;
    more_products(f, 70);
    size_t n, skipped;
    struct platform_product *v = all(f, 0, &n, &skipped);
    /* The catalogue (7 with one SKU-less) plus 70: every SKU read once. */
    const struct platform_product *x = by_sku(v, n, "EXTRA-069");
    assert_non_null(x);
    assert_string_equal(x->name, "extra 69");
    assert_int_equal(x->price, 7950);
    assert_int_equal(x->cost, 7200);
    const struct platform_product *first = by_sku(v, n, "EXTRA-000");
    assert_non_null(first);
    size_t with_sku = 0;
    for (size_t i = 0; i < n; i++) {
        with_sku += v[i].sku[0] != 0;
        for (size_t k = i + 1; k < n; k++)
            if (v[i].sku[0] && strcmp(v[i].sku, v[k].sku) == 0) fail_msg("SKU %s twice", v[i].sku);
    }
    assert_int_equal(with_sku, 76);

    /* Write the price only; name and cost stay. */
    struct platform_product w = *x, got;
    w.price = 12345;
    w.cost = 1;
    snprintf(w.name, sizeof w.name, "ignored");
    struct th_err err;
    if (f->p->product_put(f->hc, &f->pc, &w, PLATFORM_FIELD_PRICE, &got, &err) != 0)
        fail_msg("product_put: %s", err.msg);
    assert_int_equal(got.price, 12345);
    assert_int_equal(got.cost, 7200);
    assert_string_equal(got.name, "extra 69");
    /* Then name and cost. */
    snprintf(w.name, sizeof w.name, "اسم جديد");
    w.cost = 4321;
    if (f->p->product_put(f->hc, &f->pc, &w, PLATFORM_FIELD_NAME | PLATFORM_FIELD_COST, &got,
                          &err) != 0)
        fail_msg("product_put: %s", err.msg);
    free(v);
    v = all(f, 0, &n, &skipped);
    x = by_sku(v, n, "EXTRA-069");
    assert_non_null(x);
    assert_string_equal(x->name, "اسم جديد");
    assert_int_equal(x->price, 12345);
    assert_int_equal(x->cost, 4321);
    free(v);
    if (f->p->platform == MODEL_PLATFORM_ZID) {
        /* The English name was kept. */
        struct tt_resp r;
        char *auth = xasprintf("Authorization: Bearer %s", f->access);
        char *acc = xasprintf("Access-Token: %s", f->manager);
        const char *h[] = {auth, acc, "Store-Id: 251073", "Role: Manager", NULL};
        tt_http("GET", tt_url(f->shop, "/v1/products/%s/", w.id), h, NULL, &r);
        free(auth);
        free(acc);
        assert_int_equal(r.status, 200);
        assert_string_equal(jv_get_str(json_object_get(r.json, "name"), "en"), "x");
        tt_resp_release(&r);
    }
}

static void test_get_and_since(void **state)
{
    struct fx *f = *state;
    struct platform_product one;
    struct th_err err;
    int rc = f->p->product_get(f->hc, &f->pc, "MUG-001", &one, &err);
    if (f->p->platform == MODEL_PLATFORM_SALLA) {
        assert_int_equal(rc, 0);
        assert_int_equal(one.price, 3500);
        assert_int_equal(one.cost, 1200);
        assert_int_equal(f->p->product_get(f->hc, &f->pc, "NOPE-1", &one, &err), TH_ENOTFOUND);
        return;
    }
    assert_int_equal(rc, TH_ECONFIG); /* Zid cannot look a SKU up */
    /* Zid lists newest first: after a write, a listing since a moment
     * before shows the written product and stops there. */
    size_t n, skipped;
    struct platform_product *v = all(f, 0, &n, &skipped);
    const struct platform_product *x = by_sku(v, n, "ZD-OUD-012");
    assert_non_null(x);
    assert_int_equal(x->price, 17400 + 17400 * 15 / 100); /* VAT-inclusive */
    sleep(1);
    int64_t since = (int64_t)time(NULL);
    struct platform_product w = *x;
    w.cost = 999;
    assert_int_equal(f->p->product_put(f->hc, &f->pc, &w, PLATFORM_FIELD_COST, NULL, &err), 0);
    free(v);
    v = all(f, since, &n, &skipped);
    assert_int_equal(n, 1);
    assert_string_equal(v[0].sku, "ZD-OUD-012");
    assert_int_equal(v[0].cost, 999);
    free(v);
}

static void test_qoyod(void **state)
{
    (void)state;
    struct sim *qs = tt_sim_start(&qoyod_sim_ops, (const char *[]){"api-key", "qk", NULL});
    char *base = xasprintf("%s/2.0", sim_base_url(qs));
    struct qoyod *q = qoyod_new(base, "qk", NULL);
    struct th_err err;
    for (int i = 0; i < 3; i++) {
        char sku[16];
        snprintf(sku, sizeof sku, "Q-%d", i);
        struct qoyod_product_spec sp = {.sku = sku, .name_ar = "اسم", .name_en = "اسم",
                                        .type = "Product", .selling_price = 1000 + i,
                                        .buying_price = 500};
        int64_t id;
        if (qoyod_product_create(q, &sp, &id, &err) != 0) fail_msg("create: %s", err.msg);
    }
    struct qoyod_product_fields was;
    assert_int_equal(qoyod_product_get_sku(q, "Q-1", &was, &err), 0);
    assert_int_equal(was.selling_price, 1001);
    assert_int_equal(was.buying_price, 500);
    assert_int_equal(was.price_inclusive, 0);
    assert_int_equal(qoyod_product_get_sku(q, "Q-9", &was, &err), TH_ENOTFOUND);
    assert_int_equal(qoyod_product_get_sku(q, "Q-1", &was, &err), 0);
    sleep(1);
    int64_t since = (int64_t)time(NULL) * 1000;
    struct qoyod_product_fields want = was, got;
    snprintf(want.name_ar, sizeof want.name_ar, "جديد");
    want.selling_price = 2300;
    want.price_inclusive = 1;
    want.buying_price = 777;
    if (qoyod_product_update(q, &was, &want, QOYOD_FIELD_NAME | QOYOD_FIELD_PRICE, &got, &err) !=
        0)
        fail_msg("update: %s", err.msg);
    assert_string_equal(got.name_ar, "جديد");
    assert_string_equal(got.name_en, "جديد"); /* it equalled name_ar */
    assert_int_equal(got.selling_price, 2300);
    assert_int_equal(got.price_inclusive, 1);
    assert_int_equal(got.buying_price, 500); /* not asked */
    assert_true(got.updated_ms >= since);
    struct qoyod_product_page pg;
    assert_int_equal(qoyod_product_page(q, since, 1, &pg, &err), 0);
    assert_int_equal(pg.n, 1);
    assert_string_equal(pg.items[0].sku, "Q-1");
    qoyod_product_page_release(&pg);
    assert_int_equal(qoyod_product_page(q, 0, 1, &pg, &err), 0);
    assert_int_equal(pg.n, 3);
    qoyod_product_page_release(&pg);
    qoyod_free(q);
    free(base);
    tt_sim_stop(qs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_list_put_read_back, setup_salla, teardown),
        cmocka_unit_test_setup_teardown(test_list_put_read_back, setup_zid, teardown),
        cmocka_unit_test_setup_teardown(test_get_and_since, setup_salla, teardown),
        cmocka_unit_test_setup_teardown(test_get_and_since, setup_zid, teardown),
        cmocka_unit_test(test_qoyod),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
