/*
 * Tests for the Salla emulator (sim/salla_sim.c) over HTTP: OAuth codes and
 * rotating refresh tokens, Easy Mode install, orders, statuses and their
 * webhooks, products and asynchronous bulk quantities, rate limits, errors,
 * and webhook faults against a recording receiver.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/jv.h"
#include "core/xmalloc.h"
#include "sim/salla_sim.h"
#include "th_test.h"

#define STORE "1305146709"

struct fx {
    struct sim *s;
    struct tt_receiver *rc;
    char token[128];
};

static const char *hdr_names[] = {"X-Salla-Signature", "X-Salla-Security-Strategy", NULL};

static int setup(void **state)
{
    struct fx *f = xcalloc(1, sizeof *f);
    f->rc = tt_receiver_start(200, 0, hdr_names);
    char *url = xasprintf("%s/hook", tt_receiver_url(f->rc));
    f->s = tt_sim_start(&salla_sim_ops, (const char *[]){"webhook-url", url, "webhook-secret",
                                                         "whsec", "webhook-retry-ms", "30",
                                                         "rate-limit-plan", "plus", NULL});
    free(url);
    struct tt_resp r;
    tt_http("POST", tt_url(f->s, "/_sim/salla/install"), NULL, "{\"store_id\":" STORE "}", &r);
    assert_int_equal(r.status, 200);
    snprintf(f->token, sizeof f->token, "Authorization: Bearer %s",
             json_string_value(json_object_get(r.json, "access_token")));
    tt_resp_release(&r);
    assert_int_equal(tt_webhooks_drain(f->s, 3000), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    tt_sim_stop(f->s);
    tt_receiver_stop(f->rc);
    free(f);
    return 0;
}

static int sig_ok(const struct tt_received *x, const char *secret)
{
    char hex[65];
    sim_hmac_sha256_hex(secret, x->body, x->body_len, hex);
    return x->headers[0] && strcmp(x->headers[0], hex) == 0;
}

/* Index of the first received delivery whose body names event, from i. */
static int find_event(struct fx *f, const char *event, size_t from)
{
    char needle[96];
    snprintf(needle, sizeof needle, "\"event\":\"%s\"", event);
    for (size_t i = from; i < tt_receiver_count(f->rc); i++) {
        struct tt_received x;
        tt_receiver_get(f->rc, i, &x);
        int hit = strstr(x.body, needle) != NULL;
        tt_received_release(&x);
        if (hit) return (int)i;
    }
    return -1;
}

static void test_easy_mode_install_delivers_signed_tokens(void **state)
{
    struct fx *f = *state;
    int i = find_event(f, "app.store.authorize", 0);
    assert_true(i >= 0);
    struct tt_received x;
    tt_receiver_get(f->rc, (size_t)i, &x);
    assert_true(sig_ok(&x, "whsec"));
    assert_string_equal(x.headers[1], "Signature");
    json_t *b = json_loads(x.body, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(b, "merchant")), 1305146709);
    json_t *d = json_object_get(b, "data");
    assert_non_null(strstr(f->token, json_string_value(json_object_get(d, "access_token"))));
    assert_true(json_integer_value(json_object_get(d, "expires")) > 1000000000); /* absolute */
    json_decref(b);
    tt_received_release(&x);
}

static void form_token(struct fx *f, const char *body, struct tt_resp *r)
{
    const char *h[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    tt_http("POST", tt_url(f->s, "/oauth2/token"), h, body, r);
}

static void test_oauth_code_refresh_and_reuse(void **state)
{
    struct fx *f = *state;
    struct tt_resp r;
    tt_http("GET",
            tt_url(f->s, "/oauth2/auth?client_id=demo-client&response_type=code&redirect_uri="
                         "http%%3A%%2F%%2Fapp%%2Fcb&state=xyz&scope=offline_access&store_id=" STORE),
            NULL, NULL, &r);
    assert_int_equal(r.status, 302);
    tt_resp_release(&r);
    /* The code is in the Location header; the emulator's log keeps the request, so
     * mint one through the same endpoint and read it from /_sim state instead:
     * simpler, the code exchange is exercised with a wrong code first. */
    form_token(f, "grant_type=authorization_code&code=nope&client_id=demo-client&client_secret=demo-secret", &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(json_string_value(json_object_get(r.json, "error")), "invalid_grant");
    tt_resp_release(&r);
    form_token(f, "grant_type=authorization_code&code=x&client_id=demo-client&client_secret=bad", &r);
    assert_int_equal(r.status, 401);
    tt_resp_release(&r);

    /* refresh rotation: install gave us a refresh token */
    tt_http("POST", tt_url(f->s, "/_sim/salla/install"), NULL, "{\"store_id\":" STORE "}", &r);
    char rt[128], at[128];
    snprintf(rt, sizeof rt, "%s", json_string_value(json_object_get(r.json, "refresh_token")));
    snprintf(at, sizeof at, "%s", json_string_value(json_object_get(r.json, "access_token")));
    tt_resp_release(&r);
    char body[512];
    snprintf(body, sizeof body,
             "grant_type=refresh_token&refresh_token=%s&client_id=demo-client&client_secret=demo-secret",
             rt);
    form_token(f, body, &r);
    assert_int_equal(r.status, 200);
    char at2[160];
    snprintf(at2, sizeof at2, "Authorization: Bearer %s",
             json_string_value(json_object_get(r.json, "access_token")));
    assert_int_equal(json_integer_value(json_object_get(r.json, "expires_in")), 1209599);
    tt_resp_release(&r);
    const char *h2[] = {at2, NULL};
    tt_http("GET", tt_url(f->s, "/oauth2/user/info"), h2, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_integer_value(jv_path(r.json, "data.merchant.id")), 1305146709);
    tt_resp_release(&r);

    /* reusing the old refresh token: invalid_grant and the chain is revoked */
    form_token(f, body, &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(json_string_value(json_object_get(r.json, "error")), "invalid_grant");
    tt_resp_release(&r);
    tt_http("GET", tt_url(f->s, "/admin/v2/orders"), h2, NULL, &r);
    assert_int_equal(r.status, 401);
    assert_string_equal(json_string_value(jv_path(r.json, "error.message")),
                        "The access token is invalid");
    tt_resp_release(&r);
    (void)at;
}

static void test_orders_list_details_and_status_webhooks(void **state)
{
    struct fx *f = *state;
    const char *h[] = {f->token, NULL};
    struct tt_resp r;
    tt_http("POST", tt_url(f->s, "/_sim/salla/generate"), NULL,
            "{\"store_id\":" STORE ",\"count\":20}", &r);
    assert_int_equal(r.status, 201);
    long long first = json_integer_value(json_array_get(json_object_get(r.json, "orders"), 0));
    tt_resp_release(&r);
    assert_int_equal(tt_webhooks_drain(f->s, 5000), 0);
    int created = 0;
    for (int i = 0; (i = find_event(f, "order.created", (size_t)i)) >= 0; i++) created++;
    assert_int_equal(created, 20);

    tt_http("GET", tt_url(f->s, "/admin/v2/orders?per_page=15&page=2"), h, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "data")), 5);
    assert_int_equal(json_integer_value(jv_path(r.json, "pagination.total")), 20);
    assert_int_equal(json_integer_value(jv_path(r.json, "pagination.totalPages")), 2);
    assert_null(jv_path(r.json, "data.0.items")); /* list items are light */
    tt_resp_release(&r);

    /* details: int64 id beyond int32, money objects, items with SKUs; the
     * arithmetic adds up to the halala */
    tt_http("GET", tt_url(f->s, "/admin/v2/orders/%lld", first), h, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_true(json_integer_value(jv_path(r.json, "data.id")) > 2147483647LL);
    assert_string_equal(json_string_value(jv_path(r.json, "data.status.slug")), "under_review");
    assert_true(json_array_size(jv_path(r.json, "data.items")) >= 1);
    assert_non_null(jv_path(r.json, "data.amounts.total.amount"));
    tt_resp_release(&r);

    tt_http("POST", tt_url(f->s, "/admin/v2/orders/%lld/status", first), h,
            "{\"slug\":\"completed\"}", &r);
    assert_int_equal(r.status, 201);
    tt_resp_release(&r);
    assert_int_equal(tt_webhooks_drain(f->s, 3000), 0);
    int i = find_event(f, "order.status.updated", 0);
    assert_true(i >= 0);
    struct tt_received x;
    tt_receiver_get(f->rc, (size_t)i, &x);
    json_t *b = json_loads(x.body, 0, NULL);
    assert_string_equal(json_string_value(jv_path(b, "data.order.status.slug")), "completed");
    assert_string_equal(json_string_value(jv_path(b, "data.status")), "تم التنفيذ");
    json_decref(b);
    tt_received_release(&x);

    tt_http("POST", tt_url(f->s, "/admin/v2/orders/%lld/status", first), h,
            "{\"slug\":\"flying\"}", &r);
    assert_int_equal(r.status, 422);
    tt_resp_release(&r);
    tt_http("GET", tt_url(f->s, "/admin/v2/orders/1"), h, NULL, &r);
    assert_int_equal(r.status, 404);
    assert_int_equal(json_integer_value(jv_path(r.json, "error.code")), 404);
    tt_resp_release(&r);
}

/* Units of sku sold in every order the emulator holds (cancelled or
 * refunded ones not counted: their units went back). */
static long long sold(struct fx *f, const char *sku)
{
    struct tt_resp r;
    tt_http("GET", tt_url(f->s, "/_sim/salla/orders"), NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    long long n = 0;
    size_t i, k;
    json_t *o, *it;
    json_array_foreach(json_object_get(r.json, "orders"), i, o) {
        const char *slug = json_string_value(jv_path(o, "status.slug"));
        if (!strcmp(slug, "canceled") || !strcmp(slug, "restored")) continue;
        json_array_foreach(json_object_get(o, "items"), k, it) {
            if (!strcmp(json_string_value(json_object_get(it, "sku")), sku))
                n += json_integer_value(json_object_get(it, "quantity"));
        }
    }
    tt_resp_release(&r);
    return n;
}

static long long stock_of(struct fx *f, const char *sku)
{
    const char *h[] = {f->token, NULL};
    struct tt_resp r;
    tt_http("GET", tt_url(f->s, "/admin/v2/products/sku/%s", sku), h, NULL, &r);
    assert_int_equal(r.status, 200);
    long long q = json_integer_value(jv_path(r.json, "data.quantity"));
    tt_resp_release(&r);
    return q;
}

/* The store keeps stock: a stock count sets it, every generated order takes
 * its units, nothing sells below zero (a sold-out product is not sold), the
 * gift card (unlimited) never runs out, and a cancellation puts the units
 * back. */
static void test_orders_take_stock(void **state)
{
    struct fx *f = *state;
    struct tt_resp r;
    tt_http("POST", tt_url(f->s, "/_sim/salla/stock"), NULL,
            "{\"store_id\":" STORE ",\"quantity\":4}", &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "products")), 6); /* not the card */
    tt_resp_release(&r);
    tt_http("POST", tt_url(f->s, "/_sim/salla/generate"), NULL,
            "{\"store_id\":" STORE ",\"count\":40}", &r);
    assert_int_equal(r.status, 201);
    long long first = json_integer_value(json_array_get(json_object_get(r.json, "orders"), 0));
    assert_int_equal(json_array_size(json_object_get(r.json, "orders")), 40);
    tt_resp_release(&r);
    static const char *const skus[] = {"TSH-BLK-M", "TSH-WHT-L", "MUG-001", "PERF-50", "DATES-1KG"};
    for (size_t i = 0; i < 5; i++) {
        long long q = stock_of(f, skus[i]), n = sold(f, skus[i]);
        assert_true(q >= 0);
        assert_int_equal(q + n, 4);
    }
    assert_true(sold(f, "GIFT-100") > 0);
    /* 40 orders of 1-3 items cannot all fit in 20 tracked units */
    long long left = 0;
    for (size_t i = 0; i < 5; i++) left += stock_of(f, skus[i]);
    assert_int_equal(left, 0);

    tt_http("POST", tt_url(f->s, "/_sim/salla/orders/%lld/status", first), NULL,
            "{\"slug\":\"canceled\"}", &r);
    assert_int_equal(r.status, 200);
    tt_resp_release(&r);
    for (size_t i = 0; i < 5; i++) assert_int_equal(stock_of(f, skus[i]) + sold(f, skus[i]), 4);
    left = 0;
    for (size_t i = 0; i < 5; i++) left += stock_of(f, skus[i]);
    assert_true(left > 0 || sold(f, "GIFT-100") > 0);
}

/* tokens/expire: the store's access tokens answer 401 from now on; the
 * refresh token still gives a new pair. */
static void test_expired_tokens_answer_401(void **state)
{
    struct fx *f = *state;
    const char *h[] = {f->token, NULL};
    struct tt_resp r;
    tt_http("GET", tt_url(f->s, "/admin/v2/orders"), h, NULL, &r);
    assert_int_equal(r.status, 200);
    tt_resp_release(&r);
    tt_http("POST", tt_url(f->s, "/_sim/salla/tokens/expire"), NULL, "{\"store_id\":" STORE "}",
            &r);
    assert_int_equal(r.status, 200);
    assert_true(json_integer_value(json_object_get(r.json, "expired")) >= 1);
    tt_resp_release(&r);
    tt_http("GET", tt_url(f->s, "/admin/v2/orders"), h, NULL, &r);
    assert_int_equal(r.status, 401);
    tt_resp_release(&r);
}

/* generate with from/to dates the orders over the range (Riyadh days), and
 * the list's from_date/to_date select exactly the days asked for. */
static void test_generate_over_a_date_range(void **state)
{
    struct fx *f = *state;
    const char *h[] = {f->token, NULL};
    struct tt_resp r;
    tt_http("POST", tt_url(f->s, "/_sim/salla/generate"), NULL,
            "{\"store_id\":" STORE ",\"count\":5,\"from\":\"2023-11-01\",\"to\":\"2023-11-05\"}",
            &r);
    assert_int_equal(r.status, 201);
    tt_resp_release(&r);
    /* i/4 of the way from 11-01 00:00:00 to 11-05 23:59:59: one a day */
    static const char *const want[] = {"2023-11-01 00:00:00", "2023-11-02 05:59:59",
                                       "2023-11-03 11:59:59", "2023-11-04 17:59:59",
                                       "2023-11-05 23:59:59"};
    tt_http("GET", tt_url(f->s, "/admin/v2/orders?sort_by=created_at-asc"), h, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "data")), 5);
    for (size_t i = 0; i < 5; i++) {
        char path[32];
        snprintf(path, sizeof path, "data.%zu.date.date", i);
        const char *got = json_string_value(jv_path(r.json, path));
        if (!got || strncmp(got, want[i], 19) != 0)
            fail_msg("order %zu dated %s, want %s", i, got ? got : "(none)", want[i]);
    }
    tt_resp_release(&r);
    tt_http("GET", tt_url(f->s, "/admin/v2/orders?from_date=2023-11-02&to_date=2023-11-04"), h,
            NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_integer_value(jv_path(r.json, "pagination.total")), 3);
    tt_resp_release(&r);
    /* a time of day; from after to is refused */
    tt_http("POST", tt_url(f->s, "/_sim/salla/generate"), NULL,
            "{\"store_id\":" STORE ",\"count\":1,\"from\":\"2024-02-01 23:30:00\","
            "\"to\":\"2024-02-01 23:30:00\"}",
            &r);
    assert_int_equal(r.status, 201);
    long long id = json_integer_value(json_array_get(json_object_get(r.json, "orders"), 0));
    tt_resp_release(&r);
    tt_http("GET", tt_url(f->s, "/admin/v2/orders/%lld", id), h, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(jv_path(r.json, "data.date.date")),
                        "2024-02-01 23:30:00.000000");
    tt_resp_release(&r);
    tt_http("POST", tt_url(f->s, "/_sim/salla/generate"), NULL,
            "{\"store_id\":" STORE ",\"count\":2,\"from\":\"2024-02-02\",\"to\":\"2024-02-01\"}",
            &r);
    assert_int_equal(r.status, 400);
    tt_resp_release(&r);
    tt_http("POST", tt_url(f->s, "/_sim/salla/generate"), NULL,
            "{\"store_id\":" STORE ",\"count\":2,\"from\":\"2024-13-01\"}", &r);
    assert_int_equal(r.status, 400);
    tt_resp_release(&r);
}

static void test_seed_order_in_salla_shape(void **state)
{
    struct fx *f = *state;
    const char *order =
        "{\"store_id\":" STORE ",\"id\":3999999999,\"reference_id\":777,\"status\":{\"slug\":"
        "\"completed\"},\"amounts\":{\"total\":{\"amount\":115,\"currency\":\"SAR\"}},\"items\":[{"
        "\"name\":\"x\",\"sku\":\"S1\",\"quantity\":1,\"amounts\":{\"price_without_tax\":{"
        "\"amount\":100}}}]}";
    struct tt_resp r;
    tt_http("POST", tt_url(f->s, "/_sim/salla/orders"), NULL, order, &r);
    assert_int_equal(r.status, 201);
    tt_resp_release(&r);
    const char *h[] = {f->token, NULL};
    tt_http("GET", tt_url(f->s, "/admin/v2/orders/3999999999"), h, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_integer_value(jv_path(r.json, "data.reference_id")), 777);
    assert_null(jv_path(r.json, "data._store"));
    tt_resp_release(&r);
    tt_http("GET", tt_url(f->s, "/admin/v2/orders?reference_id=777"), h, NULL, &r);
    assert_int_equal(json_array_size(json_object_get(r.json, "data")), 1);
    tt_resp_release(&r);
}

static void test_products_and_async_bulk_quantities(void **state)
{
    struct fx *f = *state;
    const char *h[] = {f->token, "Content-Type: application/json", NULL};
    struct tt_resp r;
    tt_http("GET", tt_url(f->s, "/admin/v2/products/sku/MUG-001"), h, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_integer_value(jv_path(r.json, "data.quantity")), 200);
    tt_resp_release(&r);
    tt_http("POST", tt_url(f->s, "/admin/v2/products/quantities/bulk"), h,
            "{\"products\":[{\"identifer_type\":\"sku\",\"identifer\":\"MUG-001\",\"quantity\":7,"
            "\"mode\":\"overwrite\"}]}",
            &r);
    assert_int_equal(r.status, 201);
    tt_resp_release(&r);
    /* asynchronous: applied at the next request, which then sees it */
    tt_http("GET", tt_url(f->s, "/admin/v2/products/sku/MUG-001"), h, NULL, &r);
    assert_int_equal(json_integer_value(jv_path(r.json, "data.quantity")), 7);
    tt_resp_release(&r);
    tt_http("POST", tt_url(f->s, "/admin/v2/products/quantities/bulk"), h,
            "{\"products\":[{\"identifer_type\":\"sku\",\"identifer\":\"MUG-001\"}]}", &r);
    assert_int_equal(r.status, 422);
    assert_non_null(json_object_get(jv_path(r.json, "error.fields"), "products.0.quantity"));
    tt_resp_release(&r);
    tt_http("GET", tt_url(f->s, "/admin/v2/products/sku/NOPE"), h, NULL, &r);
    assert_int_equal(r.status, 404);
    tt_resp_release(&r);
}

static void test_rate_limit_and_auth(void **state)
{
    struct fx *f = *state;
    const char *h[] = {f->token, NULL};
    struct tt_resp r;
    tt_http("GET", tt_url(f->s, "/admin/v2/orders"), h, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.ratelimit_remaining, "119"); /* plus plan: 120 a minute */
    tt_resp_release(&r);
    for (int i = 0; i < 119; i++) {
        tt_http("GET", tt_url(f->s, "/admin/v2/orders/statuses"), h, NULL, &r);
        assert_int_equal(r.status, 200);
        tt_resp_release(&r);
    }
    tt_http("GET", tt_url(f->s, "/admin/v2/orders"), h, NULL, &r);
    assert_int_equal(r.status, 429);
    assert_true(r.retry_after_s >= 1);
    tt_resp_release(&r);
    const char *bad[] = {"Authorization: Bearer nope", NULL};
    tt_http("GET", tt_url(f->s, "/admin/v2/orders"), bad, NULL, &r);
    assert_int_equal(r.status, 401);
    tt_resp_release(&r);
}

static void test_webhook_faults(void **state)
{
    struct fx *f = *state;
    size_t before = tt_receiver_count(f->rc);
    tt_faults(f->s, "{\"faults\":[{\"match\":\"webhook order.created\",\"mode\":\"duplicate\","
                    "\"count\":1},{\"match\":\"webhook order.created\",\"mode\":\"bad_signature\","
                    "\"count\":1}]}");
    struct tt_resp r;
    tt_http("POST", tt_url(f->s, "/_sim/salla/generate"), NULL,
            "{\"store_id\":" STORE ",\"count\":1}", &r);
    tt_resp_release(&r);
    assert_int_equal(tt_webhooks_drain(f->s, 3000), 0);
    assert_int_equal(tt_receiver_count(f->rc) - before, 2); /* delivered twice */
    struct tt_received a, b;
    tt_receiver_get(f->rc, before, &a);
    tt_receiver_get(f->rc, before + 1, &b);
    assert_string_equal(a.body, b.body);
    assert_false(sig_ok(&a, "whsec")); /* bad_signature */
    tt_received_release(&a);
    tt_received_release(&b);

    /* the receiver fails twice, then accepts: Salla retries */
    tt_receiver_set(f->rc, 500, 0);
    before = tt_receiver_count(f->rc);
    tt_http("POST", tt_url(f->s, "/_sim/salla/generate"), NULL,
            "{\"store_id\":" STORE ",\"count\":1}", &r);
    tt_resp_release(&r);
    assert_true(tt_receiver_wait(f->rc, before + 2, 3000) >= before + 2);
    tt_receiver_set(f->rc, 200, 0);
    assert_int_equal(tt_webhooks_drain(f->s, 3000), 0);
    assert_int_equal(tt_receiver_count(f->rc) - before, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_easy_mode_install_delivers_signed_tokens, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_oauth_code_refresh_and_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_orders_list_details_and_status_webhooks, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_generate_over_a_date_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_orders_take_stock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired_tokens_answer_401, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seed_order_in_salla_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_products_and_async_bulk_quantities, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit_and_auth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_webhook_faults, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
