/*
 * Tests for the Zid emulator (sim/zid_sim.c) over HTTP: OAuth with its two
 * tokens and single-use refresh tokens, the auth headers of each API family,
 * orders (filters, payload types, paging by short page, status changes in
 * JSON, form and multipart), money that adds up to the halala, webhooks
 * (Basic auth, bare order bodies, conditions, CRUD, the circuit breaker and
 * recovery), products (paging, bulk PATCH limits), rate limits, uninstall,
 * and framework faults against this emulator.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "core/jv.h"
#include "core/money.h"
#include "core/xmalloc.h"
#include "sim/zid_sim.h"
#include "th_test.h"

#define STORE "251073"

struct fx {
    struct sim *s;
    struct tt_receiver *rc;
    char bearer[160], manager[160], access[160];
    const char *mh[4]; /* managers headers */
    const char *ch[6]; /* catalog headers */
};

static const char *hdr_names[] = {"Authorization", "Content-Type", NULL};

static void use_tokens(struct fx *f, const json_t *tok)
{
    snprintf(f->bearer, sizeof f->bearer, "Authorization: Bearer %s",
             json_string_value(json_object_get(tok, "authorization")));
    snprintf(f->manager, sizeof f->manager, "X-Manager-Token: %s",
             json_string_value(json_object_get(tok, "access_token")));
    snprintf(f->access, sizeof f->access, "Access-Token: %s",
             json_string_value(json_object_get(tok, "access_token")));
    f->mh[0] = f->bearer, f->mh[1] = f->manager, f->mh[2] = NULL;
    f->ch[0] = f->bearer, f->ch[1] = f->access, f->ch[2] = "Store-Id: " STORE;
    f->ch[3] = "Role: Manager", f->ch[4] = NULL;
}

static int setup(void **state)
{
    struct fx *f = xcalloc(1, sizeof *f);
    f->rc = tt_receiver_start(200, 0, hdr_names);
    char *app = xasprintf("%s/app-events", tt_receiver_url(f->rc));
    f->s = tt_sim_start(&zid_sim_ops, (const char *[]){"app-webhook-url", app, "webhook-retry-ms",
                                                       "20", "rate-limit", "0", NULL});
    free(app);
    struct tt_resp r;
    tt_http("POST", tt_url(f->s, "/_sim/zid/install"), NULL, "{\"store_id\":" STORE "}", &r);
    assert_int_equal(r.status, 200);
    use_tokens(f, r.json);
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

/* Subscribes the receiver to event at /hook/<slug>; returns the id. */
static void subscribe(struct fx *f, const char *event, const char *slug, const char *extra,
                      char id[64])
{
    char body[1024];
    snprintf(body, sizeof body,
             "{\"event\":\"%s\",\"target_url\":\"%s/hook/%s?sid=" STORE "\",\"original_id\":77,"
             "\"subscriber\":\"tarheel\",\"username\":\"tarheel\",\"password\":\"s3cret\"%s}",
             event, tt_receiver_url(f->rc), slug, extra ? extra : "");
    struct tt_resp r;
    tt_http("POST", tt_url(f->s, "/v1/managers/webhooks"), f->mh, body, &r);
    assert_int_equal(r.status, 201);
    assert_string_equal(json_string_value(json_object_get(r.json, "original_id")), "77");
    assert_string_equal(json_string_value(json_object_get(r.json, "health_status")), "healthy");
    assert_null(json_object_get(r.json, "password")); /* never echoed */
    snprintf(id, 64, "%s", json_string_value(json_object_get(r.json, "id")));
    tt_resp_release(&r);
}

static long long generate(struct fx *f, const char *body, json_t **ids)
{
    struct tt_resp r;
    tt_http("POST", tt_url(f->s, "/_sim/zid/generate"), NULL, body, &r);
    assert_int_equal(r.status, 201);
    long long first = json_integer_value(json_array_get(json_object_get(r.json, "orders"), 0));
    if (ids) *ids = json_incref(json_object_get(r.json, "orders"));
    tt_resp_release(&r);
    return first;
}

/* Deliveries to the receiver whose path starts with prefix, from index i. */
static size_t count_path(struct fx *f, const char *prefix)
{
    size_t n = 0;
    for (size_t i = 0; i < tt_receiver_count(f->rc); i++) {
        struct tt_received x;
        tt_receiver_get(f->rc, i, &x);
        n += strncmp(x.path, prefix, strlen(prefix)) == 0;
        tt_received_release(&x);
    }
    return n;
}

/* The Location header of a 302 (tt_http does not expose headers). */
static char *location_of(const char *url)
{
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOBODY, 0L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, fwrite);
    FILE *devnull = fopen("/dev/null", "w");
    curl_easy_setopt(c, CURLOPT_WRITEDATA, devnull);
    long code = 0;
    char *loc = NULL, *out = NULL;
    if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &loc);
        if (code == 302 && loc) out = xstrdup(loc);
    }
    fclose(devnull);
    curl_easy_cleanup(c);
    return out;
}

/* ---------------------------------------------------------------------- */

static void test_oauth_code_exchange_form_and_json(void **state)
{
    struct fx *f = *state;
    char *loc = location_of(tt_url(f->s, "/oauth/authorize?client_id=demo-client&redirect_uri="
                                         "http%%3A%%2F%%2Fapp%%2Fcb&response_type=code&state=xyz"));
    assert_non_null(loc);
    assert_true(strncmp(loc, "http://app/cb?code=", 19) == 0);
    assert_non_null(strstr(loc, "&state=xyz"));
    char code[128];
    snprintf(code, sizeof code, "%.*s", (int)strcspn(loc + 19, "&"), loc + 19);
    free(loc);

    struct tt_resp r;
    char body[512];
    /* a different redirect_uri than the authorize call: refused (exact match) */
    snprintf(body, sizeof body,
             "{\"grant_type\":\"authorization_code\",\"client_id\":\"demo-client\","
             "\"client_secret\":\"demo-secret\",\"redirect_uri\":\"http://evil/cb\",\"code\":\"%s\"}",
             code);
    tt_http("POST", tt_url(f->s, "/oauth/token"), (const char *[]){"Content-Type: application/json", NULL},
            body, &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(json_string_value(json_object_get(r.json, "error")), "invalid_grant");
    tt_resp_release(&r);
    /* wrong secret */
    snprintf(body, sizeof body,
             "grant_type=authorization_code&client_id=demo-client&client_secret=nope&"
             "redirect_uri=http%%3A%%2F%%2Fapp%%2Fcb&code=%s", code);
    tt_http("POST", tt_url(f->s, "/oauth/token"), NULL, body, &r);
    assert_int_equal(r.status, 401);
    assert_string_equal(json_string_value(json_object_get(r.json, "error")), "invalid_client");
    tt_resp_release(&r);
    /* the form exchange (as the docs and SDK send it) */
    snprintf(body, sizeof body,
             "grant_type=authorization_code&client_id=demo-client&client_secret=demo-secret&"
             "redirect_uri=http%%3A%%2F%%2Fapp%%2Fcb&code=%s", code);
    tt_http("POST", tt_url(f->s, "/oauth/token"),
            (const char *[]){"Content-Type: application/x-www-form-urlencoded", NULL}, body, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(jv_get_str(r.json, "authorization")); /* lower case (X3) */
    assert_non_null(jv_get_str(r.json, "access_token"));
    assert_non_null(jv_get_str(r.json, "refresh_token"));
    assert_int_equal(json_integer_value(json_object_get(r.json, "expires_in")), 31536000);
    struct fx g = *f;
    use_tokens(&g, r.json);
    tt_resp_release(&r);
    tt_http("GET", tt_url(f->s, "/v1/managers/account/profile"), g.mh, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "status")), "object");
    assert_int_equal(json_integer_value(jv_path(r.json, "user.store.id")), 251073);
    assert_false(json_is_true(jv_path(r.json, "user.store.has_multi_product_inventory")));
    tt_resp_release(&r);
    /* codes are single use */
    tt_http("POST", tt_url(f->s, "/oauth/token"), NULL, body, &r);
    assert_int_equal(r.status, 400);
    tt_resp_release(&r);
}

static void test_refresh_is_single_use_and_revokes_old_tokens(void **state)
{
    struct fx *f = *state;
    struct tt_resp r;
    tt_http("POST", tt_url(f->s, "/_sim/zid/install"), NULL, "{\"store_id\":" STORE "}", &r);
    char rt[128];
    snprintf(rt, sizeof rt, "%s", jv_get_str(r.json, "refresh_token"));
    struct fx old = *f;
    use_tokens(&old, r.json);
    tt_resp_release(&r);
    char body[512];
    snprintf(body, sizeof body,
             "grant_type=refresh_token&refresh_token=%s&client_id=demo-client&client_secret="
             "demo-secret&redirect_uri=http%%3A%%2F%%2Fapp%%2Fcb", rt);
    tt_http("POST", tt_url(f->s, "/oauth/token"), NULL, body, &r);
    assert_int_equal(r.status, 200);
    struct fx neu = *f;
    use_tokens(&neu, r.json);
    tt_resp_release(&r);
    tt_http("GET", tt_url(f->s, "/v1/managers/store/orders"), neu.mh, NULL, &r);
    assert_int_equal(r.status, 200);
    tt_resp_release(&r);
    tt_http("GET", tt_url(f->s, "/v1/managers/store/orders"), old.mh, NULL, &r);
    assert_int_equal(r.status, 401);
    tt_resp_release(&r);
    /* the used refresh token no longer works */
    tt_http("POST", tt_url(f->s, "/oauth/token"), NULL, body, &r);
    assert_int_equal(r.status, 401);
    assert_non_null(strstr(jv_get_str(r.json, "message"), "refresh token is invalid"));
    tt_resp_release(&r);
}

static void test_auth_headers_per_family(void **state)
{
    struct fx *f = *state;
    struct tt_resp r;
    /* managers: Bearer alone is not enough */
    tt_http("GET", tt_url(f->s, "/v1/managers/store/orders"), (const char *[]){f->bearer, NULL},
            NULL, &r);
    assert_int_equal(r.status, 401);
    assert_string_equal(json_string_value(jv_path(r.json, "message.code")), "unauthorized");
    tt_resp_release(&r);
    /* catalog: Store-Id must match the token's store, Role must be Manager */
    tt_http("GET", tt_url(f->s, "/v1/products/"),
            (const char *[]){f->bearer, f->access, "Role: Manager", NULL}, NULL, &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(jv_get_str(r.json, "detail"), "Store-Id"));
    tt_resp_release(&r);
    tt_http("GET", tt_url(f->s, "/v1/products/"),
            (const char *[]){f->bearer, f->access, "Store-Id: 999", "Role: Manager", NULL}, NULL, &r);
    assert_int_equal(r.status, 400);
    tt_resp_release(&r);
    tt_http("GET", tt_url(f->s, "/v1/products/"),
            (const char *[]){f->bearer, f->access, "Store-Id: " STORE, NULL}, NULL, &r);
    assert_int_equal(r.status, 403);
    tt_resp_release(&r);
    /* the SDK's X-Manager-Token is accepted in place of Access-Token */
    tt_http("GET", tt_url(f->s, "/v1/products/"),
            (const char *[]){f->bearer, f->manager, "Store-Id: " STORE, "Role: Manager", NULL},
            NULL, &r);
    assert_int_equal(r.status, 200);
    tt_resp_release(&r);
    /* an Accept the server cannot satisfy */
    tt_http("GET", tt_url(f->s, "/v1/managers/store/orders"),
            (const char *[]){f->bearer, f->manager, "Accept: text/html", NULL}, NULL, &r);
    assert_int_equal(r.status, 406);
    tt_resp_release(&r);
}

static size_t list_count(struct fx *f, const char *query)
{
    struct tt_resp r;
    tt_http("GET", tt_url(f->s, "/v1/managers/store/orders?%s", query), f->mh, NULL, &r);
    assert_int_equal(r.status, 200);
    size_t n = json_array_size(json_object_get(r.json, "orders"));
    tt_resp_release(&r);
    return n;
}

static void test_orders_filters_payloads_and_paging(void **state)
{
    struct fx *f = *state;
    json_t *ids;
    generate(f, "{\"store_id\":" STORE ",\"count\":25,\"from\":\"2023-11-01\",\"to\":\"2024-02-01\"}",
             &ids);
    struct tt_resp r;
    /* paging: no pagination block; a short page ends the walk */
    size_t seen = 0, pages = 0;
    for (int page = 1;; page++) {
        tt_http("GET", tt_url(f->s, "/v1/managers/store/orders?per_page=10&page=%d", page), f->mh,
                NULL, &r);
        assert_int_equal(r.status, 200);
        assert_null(json_object_get(r.json, "pagination"));
        size_t n = json_array_size(json_object_get(r.json, "orders"));
        seen += n, pages++;
        tt_resp_release(&r);
        if (n < 10) break;
    }
    assert_int_equal(seen, 25);
    assert_int_equal(pages, 3);
    assert_int_equal(list_count(f, "per_page=100"), 25);
    /* created_at is spread over the range: first on 2023-11-01, last on 2024-02-01 */
    assert_int_equal(list_count(f, "per_page=100&date_from=2023-11-01&date_to=2023-11-01"), 1);
    assert_int_equal(list_count(f, "per_page=100&date_from=2024-02-01"), 1);
    /* the documented ISO form with an offset, same as the date-only form */
    assert_int_equal(
        list_count(f, "per_page=100&date_from=2024-02-01T00:00:00.000%2B0000"), 1);
    assert_int_equal(list_count(f, "per_page=100&date_to=2023-10-31"), 0);
    tt_http("GET", tt_url(f->s, "/v1/managers/store/orders?per_page=101&date_from=yesterday"),
            f->mh, NULL, &r);
    assert_int_equal(r.status, 422);
    assert_non_null(jv_path(r.json, "errors.per_page"));
    assert_non_null(jv_path(r.json, "errors.date_from"));
    tt_resp_release(&r);

    /* payload types: simple has no products, default has them, tiny is flat */
    tt_http("GET", tt_url(f->s, "/v1/managers/store/orders?per_page=1"), f->mh, NULL, &r);
    assert_null(jv_path(r.json, "orders.0.products"));
    assert_non_null(jv_path(r.json, "orders.0.order_total"));
    tt_resp_release(&r);
    tt_http("GET", tt_url(f->s, "/v1/managers/store/orders?per_page=1&payload_type=default"),
            f->mh, NULL, &r);
    assert_true(json_array_size(jv_path(r.json, "orders.0.products")) >= 1);
    tt_resp_release(&r);
    tt_http("GET", tt_url(f->s, "/v1/managers/store/orders?per_page=1&payload_type=tiny"), f->mh,
            NULL, &r);
    assert_string_equal(json_string_value(jv_path(r.json, "orders.0.status")), "new");
    assert_non_null(jv_path(r.json, "orders.0.total"));
    tt_resp_release(&r);

    /* status filter takes both spellings of cancelled (X1) */
    long long id = json_integer_value(json_array_get(ids, 3));
    tt_http("POST", tt_url(f->s, "/v1/managers/store/orders/%lld/change-order-status", id), f->mh,
            "{\"order_status\":\"canceled\"}", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(jv_path(r.json, "order.order_status.code")), "cancelled");
    tt_resp_release(&r);
    assert_int_equal(list_count(f, "per_page=100&order_status=cancelled"), 1);
    assert_int_equal(list_count(f, "per_page=100&order_status=canceled"), 1);
    assert_int_equal(list_count(f, "per_page=100&order_status=new"), 24);
    /* updated_at moved today: only the cancelled order is in today's updated window */
    assert_int_equal(list_count(f, "per_page=100&date_attribute=updated_at&date_from=2025-01-01"), 1);
    /* asc puts the oldest first */
    tt_http("GET", tt_url(f->s, "/v1/managers/store/orders?per_page=1&sort_by=asc"), f->mh, NULL, &r);
    assert_int_equal(json_integer_value(jv_path(r.json, "orders.0.id")),
                     json_integer_value(json_array_get(ids, 0)));
    tt_resp_release(&r);
    /* Arabic names on request */
    tt_http("GET", tt_url(f->s, "/v1/managers/store/orders/%lld/view", id),
            (const char *[]){f->bearer, f->manager, "Accept-Language: ar", NULL}, NULL, &r);
    assert_string_equal(json_string_value(jv_path(r.json, "order.order_status.name")), "تم الإلغاء");
    assert_int_equal(json_integer_value(jv_path(r.json, "order.display_status.id")), 7);
    tt_resp_release(&r);
    json_decref(ids);
}

static int64_t inv(const json_t *o, const char *code)
{
    size_t i;
    json_t *l;
    json_array_foreach(jv_path(o, "payment.invoice"), i, l) {
        if (!strcmp(jv_get_str(l, "code"), code)) {
            int64_t v = 0;
            assert_int_equal(jv_get_money(l, "value", &v, NULL), 0);
            return v;
        }
    }
    return 0;
}

static void test_generated_orders_add_up_to_the_halala(void **state)
{
    struct fx *f = *state;
    json_t *ids;
    generate(f, "{\"store_id\":" STORE ",\"count\":40}", &ids);
    size_t i;
    json_t *idv;
    int coupons = 0, cods = 0, noisy = 0, nosku = 0;
    json_array_foreach(ids, i, idv) {
        struct tt_resp r;
        tt_http("GET", tt_url(f->s, "/v1/managers/store/orders/%lld/view", json_integer_value(idv)),
                f->mh, NULL, &r);
        assert_int_equal(r.status, 200);
        json_t *o = json_object_get(r.json, "order");
        int64_t total = 0, sub = 0;
        assert_int_equal(jv_get_money(o, "order_total", &total, NULL), 0);
        /* money strings carry 14 fraction digits, sometimes float noise */
        const char *ts = jv_get_str(o, "order_total");
        assert_int_equal(strlen(strchr(ts, '.') + 1), 14);
        noisy += strcmp(strchr(ts, '.') + 3, "000000000000") != 0;
        size_t j;
        json_t *p;
        json_array_foreach(json_object_get(o, "products"), j, p) {
            int64_t net, q;
            assert_int_equal(jv_get_money(p, "net_price", &net, NULL), 0);
            assert_int_equal(jv_get_id(p, "quantity", &q, NULL), 0);
            sub += net * q;
            nosku += !strcmp(jv_get_str(p, "sku"), "");
        }
        int64_t coupon = inv(o, "coupon"), ship = inv(o, "shipping"),
                cod = inv(o, "cash_on_delivery");
        coupons += coupon != 0, cods += cod != 0;
        assert_true(coupon <= 0);
        assert_int_equal(inv(o, "sub_totals_before_vat"), sub);
        assert_int_equal(inv(o, "taxable_amount"), sub + coupon + ship + cod);
        assert_int_equal(inv(o, "vat"), inv(o, "taxable_amount") * 15 / 100);
        assert_int_equal(inv(o, "total"), inv(o, "taxable_amount") + inv(o, "vat"));
        assert_int_equal(inv(o, "total"), total);
        assert_true(json_is_array(json_object_get(o, "inventory_address"))); /* [] quirk */
        tt_resp_release(&r);
    }
    /* the sample exercises coupons, COD fees, noise and the item without SKU */
    assert_true(coupons > 0 && cods > 0 && noisy > 0 && nosku > 0);
    json_decref(ids);
}

static int basic_ok(const struct tt_received *x)
{
    char *b64 = sim_base64("tarheel:s3cret", 14);
    char *want = xasprintf("Basic %s", b64);
    int ok = x->headers[0] && !strcmp(x->headers[0], want);
    free(b64);
    free(want);
    return ok;
}

static void test_status_changes_in_every_body_form_fire_webhooks(void **state)
{
    struct fx *f = *state;
    char sid[64];
    subscribe(f, "order.status.update", "status", NULL, sid);
    long long id = generate(f, "{\"store_id\":" STORE ",\"count\":1}", NULL);
    struct tt_resp r;
    tt_http("POST", tt_url(f->s, "/v1/managers/store/orders/%lld/change-order-status", id), f->mh,
            "{\"order_status\":\"preparing\"}", &r);
    assert_int_equal(r.status, 200);
    tt_resp_release(&r);
    const char *form[] = {f->bearer, f->manager, "Content-Type: application/x-www-form-urlencoded", NULL};
    tt_http("POST", tt_url(f->s, "/v1/managers/store/orders/%lld/change-order-status", id), form,
            "order_status=ready", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(jv_path(r.json, "order.order_status.code")), "ready");
    tt_resp_release(&r);
    const char *mp[] = {f->bearer, f->manager, "Content-Type: multipart/form-data; boundary=XyZ", NULL};
    tt_http("POST", tt_url(f->s, "/v1/managers/store/orders/%lld/change-order-status", id), mp,
            "--XyZ\r\nContent-Disposition: form-data; name=\"order_status\"\r\n\r\nindelivery\r\n"
            "--XyZ--\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(json_string_value(jv_path(r.json, "order.order_status.code")), "indelivery");
    tt_resp_release(&r);
    tt_http("POST", tt_url(f->s, "/v1/managers/store/orders/%lld/change-order-status", id), f->mh,
            "{\"order_status\":\"shipped\"}", &r);
    assert_int_equal(r.status, 422);
    assert_non_null(jv_path(r.json, "errors.order_status"));
    tt_resp_release(&r);
    tt_http("POST", tt_url(f->s, "/v1/managers/store/orders/999/change-order-status"), f->mh,
            "{\"order_status\":\"new\"}", &r);
    assert_int_equal(r.status, 404);
    tt_resp_release(&r);

    assert_int_equal(tt_webhooks_drain(f->s, 5000), 0);
    assert_int_equal(count_path(f, "/hook/status"), 3);
    static const char *const want[] = {"preparing", "ready", "indelivery"};
    size_t k = 0;
    for (size_t i = 0; i < tt_receiver_count(f->rc); i++) {
        struct tt_received x;
        tt_receiver_get(f->rc, i, &x);
        if (!strncmp(x.path, "/hook/status", 12)) {
            assert_true(basic_ok(&x));
            json_t *b = json_loads(x.body, 0, NULL);
            /* the bare order, typed as the webhook schema types it (X6) */
            assert_int_equal(json_integer_value(json_object_get(b, "id")), id);
            assert_string_equal(json_string_value(jv_path(b, "order_status.code")), want[k++]);
            assert_true(json_is_string(jv_path(b, "customer.id")));
            assert_int_equal(json_string_value(jv_path(b, "customer.mobile"))[0], '+');
            assert_null(json_object_get(b, "event"));
            json_decref(b);
        }
        tt_received_release(&x);
    }
    assert_int_equal(k, 3);
}

static void test_conditions_filter_deliveries(void **state)
{
    struct fx *f = *state;
    char sid[64];
    subscribe(f, "order.status.update", "delivered", ",\"conditions\":{\"status\":\"delivered\"}", sid);
    long long id = generate(f, "{\"store_id\":" STORE ",\"count\":1}", NULL);
    static const char *const steps[] = {"preparing", "ready", "indelivery", "delivered"};
    for (size_t i = 0; i < 4; i++) {
        struct tt_resp r;
        char body[64];
        snprintf(body, sizeof body, "{\"status\":\"%s\"}", steps[i]);
        tt_http("POST", tt_url(f->s, "/_sim/zid/orders/%lld/status", id), NULL, body, &r);
        assert_int_equal(r.status, 200);
        tt_resp_release(&r);
    }
    assert_int_equal(tt_webhooks_drain(f->s, 5000), 0);
    assert_int_equal(count_path(f, "/hook/delivered"), 1);
}

static void test_webhook_subscription_crud(void **state)
{
    struct fx *f = *state;
    char a[64], b[64];
    subscribe(f, "order.create", "create", NULL, a);
    subscribe(f, "order.status.update", "status", NULL, b);
    struct tt_resp r;
    char body[512];
    snprintf(body, sizeof body, "{\"event\":\"order.create\",\"target_url\":\"%s/hook/create?sid=" STORE "\"}",
             tt_receiver_url(f->rc));
    tt_http("POST", tt_url(f->s, "/v1/managers/webhooks"), f->mh, body, &r);
    assert_int_equal(r.status, 422); /* duplicate */
    tt_resp_release(&r);
    tt_http("POST", tt_url(f->s, "/v1/managers/webhooks"), f->mh,
            "{\"event\":\"order.created\",\"target_url\":\"ftp://x\"}", &r);
    assert_int_equal(r.status, 422);
    assert_non_null(jv_path(r.json, "errors.event"));      /* Salla's spelling is not Zid's */
    assert_non_null(jv_path(r.json, "errors.target_url"));
    tt_resp_release(&r);
    tt_http("GET", tt_url(f->s, "/v1/managers/webhooks"), f->mh, NULL, &r);
    assert_int_equal(json_array_size(json_object_get(r.json, "data")), 2);
    tt_resp_release(&r);
    tt_http("DELETE", tt_url(f->s, "/v1/managers/webhooks?original_id=77"), f->mh, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "deleted")), 2);
    tt_resp_release(&r);
    tt_http("DELETE", tt_url(f->s, "/v1/managers/webhooks?original_id=77"), f->mh, NULL, &r);
    assert_int_equal(r.status, 404);
    tt_resp_release(&r);
    generate(f, "{\"store_id\":" STORE ",\"count\":2}", NULL);
    assert_int_equal(tt_webhooks_drain(f->s, 5000), 0);
    assert_int_equal(count_path(f, "/hook/"), 0);
}

static const char *health_of(struct fx *f)
{
    static char out[32];
    struct tt_resp r;
    tt_http("GET", tt_url(f->s, "/v1/managers/webhooks"), f->mh, NULL, &r);
    snprintf(out, sizeof out, "%s", json_string_value(jv_path(r.json, "data.0.health_status")));
    tt_resp_release(&r);
    return out;
}

/* n real status changes (new <-> preparing), each firing one delivery. */
static void status_flip(struct fx *f, long long id, int n)
{
    static int flips;
    for (int i = 0; i < n; i++) {
        struct tt_resp r;
        tt_http("POST", tt_url(f->s, "/_sim/zid/orders/%lld/status", id), NULL,
                flips++ % 2 ? "{\"status\":\"new\"}" : "{\"status\":\"preparing\"}", &r);
        assert_int_equal(r.status, 200);
        tt_resp_release(&r);
    }
    assert_int_equal(tt_webhooks_drain(f->s, 10000), 0);
}

static void test_circuit_breaker_degrades_breaks_discards_and_recovers(void **state)
{
    struct fx *f = *state;
    struct tt_resp r;
    tt_http("POST", tt_url(f->s, "/_sim/zid/app"), NULL, "{\"max_attempts\":1}", &r);
    tt_resp_release(&r);
    char sid[64];
    subscribe(f, "order.status.update", "status", NULL, sid);
    long long id = generate(f, "{\"store_id\":" STORE ",\"count\":1}", NULL);

    /* 429 from the receiver is push-back, not failure */
    tt_receiver_set(f->rc, 429, 0);
    status_flip(f, id, 12);
    assert_string_equal(health_of(f), "healthy");
    /* failures: 10 → degraded (still delivered), 30 → broken */
    tt_receiver_set(f->rc, 500, 0);
    status_flip(f, id, 10);
    assert_string_equal(health_of(f), "degraded");
    size_t before = count_path(f, "/hook/status");
    status_flip(f, id, 20);
    assert_string_equal(health_of(f), "broken");
    assert_int_equal(count_path(f, "/hook/status"), before + 20);
    tt_http("GET", tt_url(f->s, "/v1/managers/webhooks/broken"), f->mh, NULL, &r);
    assert_int_equal(json_array_size(json_object_get(r.json, "data")), 1);
    assert_non_null(jv_get_str(jv_path(r.json, "data.0"), "broken_at"));
    tt_resp_release(&r);
    /* broken: nothing more is sent, even once the receiver is fine again */
    tt_receiver_set(f->rc, 200, 0);
    size_t at_break = count_path(f, "/hook/status");
    status_flip(f, id, 3);
    assert_int_equal(count_path(f, "/hook/status"), at_break);
    /* recovered through the API: deliveries resume; the lost ones stay lost */
    tt_http("POST", tt_url(f->s, "/v1/managers/webhooks/recover"), f->mh, "{}", &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(json_object_get(r.json, "data")), 1);
    tt_resp_release(&r);
    assert_string_equal(health_of(f), "healthy");
    status_flip(f, id, 2);
    assert_int_equal(count_path(f, "/hook/status"), at_break + 2);
    tt_http("GET", tt_url(f->s, "/v1/managers/webhooks/health"), f->mh, NULL, &r);
    assert_int_equal(json_integer_value(jv_path(r.json, "data.healthy")), 1);
    assert_int_equal(json_integer_value(jv_path(r.json, "data.broken")), 0);
    tt_resp_release(&r);
}

static void test_products_paging_and_bulk_patch(void **state)
{
    struct fx *f = *state;
    struct tt_resp r;
    /* 60 more products: page_size is capped at 50, next is absolute */
    for (int i = 0; i < 60; i++) {
        char body[256];
        snprintf(body, sizeof body,
                 "{\"store_id\":" STORE ",\"sku\":\"BULK-%02d\",\"name\":{\"ar\":\"منتج %d\"},"
                 "\"price\":10,\"quantity\":1}", i, i);
        tt_http("POST", tt_url(f->s, "/_sim/zid/products"), NULL, body, &r);
        assert_int_equal(r.status, 201);
        tt_resp_release(&r);
    }
    tt_http("GET", tt_url(f->s, "/v1/products/?page_size=100"), f->ch, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "count")), 67);
    assert_int_equal(json_array_size(json_object_get(r.json, "results")), 50);
    const char *next = jv_get_str(r.json, "next");
    assert_non_null(next);
    assert_true(strncmp(next, "http://127.0.0.1:", 17) == 0);
    char nexturl[256];
    snprintf(nexturl, sizeof nexturl, "%s", next);
    char pid[64];
    snprintf(pid, sizeof pid, "%s", jv_get_str(jv_path(r.json, "results.0"), "id"));
    tt_resp_release(&r);
    tt_http("GET", nexturl, f->ch, NULL, &r);
    assert_int_equal(json_array_size(json_object_get(r.json, "results")), 17);
    assert_true(json_is_null(json_object_get(r.json, "next")));
    tt_resp_release(&r);

    /* bulk: more than 50 items refused */
    char *big = xstrdup("[");
    for (int i = 0; i < 51; i++) {
        char *n = xasprintf("%s%s{\"sku\":\"BULK-%02d\",\"quantity\":5}", big, i ? "," : "", i % 60);
        free(big);
        big = n;
    }
    char *b2 = xasprintf("%s]", big);
    free(big);
    tt_http("PATCH", tt_url(f->s, "/v1/products/"), f->ch, b2, &r);
    assert_int_equal(r.status, 400);
    tt_resp_release(&r);
    free(b2);
    /* one unknown SKU: the whole batch is refused, nothing applied */
    tt_http("PATCH", tt_url(f->s, "/v1/products/"), f->ch,
            "[{\"sku\":\"ZD-ABY-001\",\"quantity\":3},{\"sku\":\"NOPE\",\"quantity\":1}]", &r);
    assert_int_equal(r.status, 400);
    assert_non_null(jv_path(r.json, "1.sku"));
    tt_resp_release(&r);
    char body[256];
    snprintf(body, sizeof body,
             "[{\"sku\":\"ZD-ABY-001\",\"quantity\":3},{\"id\":\"%s\",\"quantity\":0,"
             "\"is_infinite\":false}]", pid);
    tt_http("PATCH", tt_url(f->s, "/v1/products/"), f->ch, body, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(r.json), 2);
    assert_int_equal(json_integer_value(jv_path(r.json, "0.quantity")), 3);
    tt_resp_release(&r);
    tt_http("GET", tt_url(f->s, "/v1/products/%s/", pid), f->ch, NULL, &r);
    assert_int_equal(json_integer_value(json_object_get(r.json, "quantity")), 0);
    tt_resp_release(&r);
    /* a store without multi-inventory: no locations, per-location stock refused */
    tt_http("GET", tt_url(f->s, "/v1/locations/"), f->ch, NULL, &r);
    assert_int_equal(json_integer_value(json_object_get(r.json, "count")), 0);
    tt_resp_release(&r);
    tt_http("PATCH", tt_url(f->s, "/v1/products/%s/stocks/", pid), f->ch, "[]", &r);
    assert_int_equal(r.status, 403);
    tt_resp_release(&r);
    tt_http("GET", tt_url(f->s, "/v1/products/00000000-0000-4000-8000-000000000000/"), f->ch, NULL, &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(jv_get_str(r.json, "detail"), "Not found.");
    tt_resp_release(&r);
}

static void test_rate_limit_per_store(void **state)
{
    struct fx *f = *state;
    struct tt_resp r;
    tt_http("POST", tt_url(f->s, "/_sim/zid/app"), NULL, "{\"rate_limit\":5}", &r);
    tt_resp_release(&r);
    for (int i = 0; i < 5; i++) {
        tt_http("GET", tt_url(f->s, "/v1/managers/store/orders"), f->mh, NULL, &r);
        assert_int_equal(r.status, 200);
        tt_resp_release(&r);
    }
    tt_http("GET", tt_url(f->s, "/v1/managers/store/orders"), f->mh, NULL, &r);
    assert_int_equal(r.status, 429);
    assert_true(r.retry_after_s > 0 && r.retry_after_s <= 60);
    assert_string_equal(json_string_value(jv_path(r.json, "message.code")), "too_many_requests");
    tt_resp_release(&r);
    tt_http("GET", tt_url(f->s, "/v1/products/"), f->ch, NULL, &r);
    assert_int_equal(r.status, 429);
    assert_non_null(strstr(jv_get_str(r.json, "detail"), "throttled"));
    tt_resp_release(&r);
}

static void test_uninstall_revokes_and_sends_app_event(void **state)
{
    struct fx *f = *state;
    char sid[64];
    subscribe(f, "order.create", "create", NULL, sid);
    struct tt_resp r;
    tt_http("POST", tt_url(f->s, "/_sim/zid/uninstall"), NULL, "{\"store_id\":" STORE "}", &r);
    assert_int_equal(r.status, 200);
    tt_resp_release(&r);
    tt_http("GET", tt_url(f->s, "/v1/managers/store/orders"), f->mh, NULL, &r);
    assert_int_equal(r.status, 401);
    tt_resp_release(&r);
    assert_int_equal(tt_webhooks_drain(f->s, 5000), 0);
    /* install (2 events at setup) + uninstall, flat bodies naming the event */
    assert_int_equal(count_path(f, "/app-events"), 3);
    int found = 0;
    for (size_t i = 0; i < tt_receiver_count(f->rc); i++) {
        struct tt_received x;
        tt_receiver_get(f->rc, i, &x);
        found += strstr(x.body, "\"event_name\":\"app.market.application.uninstall\"") != NULL;
        tt_received_release(&x);
    }
    assert_int_equal(found, 1);
    /* the subscription went with the app */
    generate(f, "{\"store_id\":" STORE ",\"count\":1}", NULL);
    assert_int_equal(tt_webhooks_drain(f->s, 5000), 0);
    assert_int_equal(count_path(f, "/hook/"), 0);
}

static void test_faults_commit_then_drop_and_duplicate_delivery(void **state)
{
    struct fx *f = *state;
    char sid[64];
    subscribe(f, "order.status.update", "status", NULL, sid);
    long long id = generate(f, "{\"store_id\":" STORE ",\"count\":1}", NULL);
    tt_faults(f->s, "{\"faults\":[{\"match\":\"POST /v1/managers/store/orders/*/change-order-status\","
                    "\"mode\":\"commit_then_drop\",\"count\":1},{\"match\":\"webhook "
                    "order.status.update\",\"mode\":\"duplicate\",\"count\":1}]}");
    struct tt_resp r;
    int rc = tt_http("POST", tt_url(f->s, "/v1/managers/store/orders/%lld/change-order-status", id),
                     f->mh, "{\"order_status\":\"delivered\"}", &r);
    assert_int_not_equal(rc, 0);
    assert_int_equal(r.status, 0); /* no answer */
    tt_resp_release(&r);
    /* ...but the change was applied */
    tt_http("GET", tt_url(f->s, "/v1/managers/store/orders/%lld/view", id), f->mh, NULL, &r);
    assert_string_equal(json_string_value(jv_path(r.json, "order.order_status.code")), "delivered");
    tt_resp_release(&r);
    assert_int_equal(tt_webhooks_drain(f->s, 5000), 0);
    assert_int_equal(count_path(f, "/hook/status"), 2); /* delivered twice */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_oauth_code_exchange_form_and_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refresh_is_single_use_and_revokes_old_tokens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_headers_per_family, setup, teardown),
        cmocka_unit_test_setup_teardown(test_orders_filters_payloads_and_paging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_generated_orders_add_up_to_the_halala, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_changes_in_every_body_form_fire_webhooks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conditions_filter_deliveries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_webhook_subscription_crud, setup, teardown),
        cmocka_unit_test_setup_teardown(test_circuit_breaker_degrades_breaks_discards_and_recovers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_products_paging_and_bulk_patch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_limit_per_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_uninstall_revokes_and_sends_app_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_faults_commit_then_drop_and_duplicate_delivery, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
