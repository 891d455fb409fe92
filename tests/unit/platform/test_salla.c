/* Tests for src/platform/salla.c: verification, event parsing, order mapping
 * on the payloads Salla documents (tests/data/salla/). */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "core/xmalloc.h"
#include "platform/salla.h"

static char *slurp(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/tests/data/salla/%s", TH_SOURCE_DIR, name);
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *b = xmalloc((size_t)n + 1);
    if (fread(b, 1, (size_t)n, f) != (size_t)n) fail_msg("short read %s", path);
    b[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return b;
}

struct hdrs {
    const char *names[4];
    const char *values[4];
};

static const char *get_header(void *arg, const char *name)
{
    struct hdrs *h = arg;
    for (int i = 0; i < 4 && h->names[i]; i++)
        if (strcasecmp(h->names[i], name) == 0) return h->values[i];
    return NULL;
}

static void hmac_hex(const char *key, const char *body, size_t len, char out[65])
{
    unsigned char md[32];
    unsigned int n = 0;
    HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)body, len, md, &n);
    for (unsigned i = 0; i < n; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void test_verify(void **state)
{
    const struct platform_ops *p = &salla_platform_ops;
    const char *body = "{\"event\":\"order.created\",\"merchant\":1}";
    char good[65], upper[65];
    hmac_hex("s3cret", body, strlen(body), good);
    for (int i = 0; i < 65; i++) upper[i] = (char)(good[i] >= 'a' && good[i] <= 'f' ? good[i] - 32 : good[i]);
    char bad[65];
    memcpy(bad, good, sizeof bad);
    bad[10] = bad[10] == '0' ? '1' : '0';
    struct {
        const char *strategy, *secret, *hname, *hval;
        int want;
    } cases[] = {
        {"signature", "s3cret", "X-Salla-Signature", good, 0},
        {"signature", "s3cret", "x-salla-signature", upper, 0},
        {"signature", "s3cret", "X-Salla-Signature", bad, TH_EAUTH},
        {"signature", "other", "X-Salla-Signature", good, TH_EAUTH},
        {"signature", "s3cret", NULL, NULL, TH_EAUTH},
        /* the store is configured for signatures: a token claim does not help */
        {"signature", "s3cret", "Authorization", "s3cret", TH_EAUTH},
        {"token", "s3cret", "Authorization", "s3cret", 0},
        {"token", "s3cret", "Authorization", "Bearer s3cret", 0},
        {"token", "s3cret", "Authorization", "s3cre", TH_EAUTH},
        {"token", "s3cret", "X-Salla-Signature", good, TH_EAUTH},
        {"signature", "", "X-Salla-Signature", good, TH_EAUTH},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct hdrs h = {{cases[i].hname}, {cases[i].hval}};
        struct platform_auth auth = {cases[i].strategy, cases[i].secret};
        struct th_err err = {0};
        int rc = p->verify(&auth, get_header, &h, body, strlen(body), &err);
        if (rc != cases[i].want) fail_msg("case %zu: want %d got %d (%s)", i, cases[i].want, rc, err.msg);
    }
}

static void test_parse_events(void **state)
{
    const struct platform_ops *p = &salla_platform_ops;
    size_t len;
    char *b = slurp("order_created.json", &len);
    struct platform_event ev;
    struct th_err err;
    assert_int_equal(p->parse_event(b, len, &ev, &err), 0);
    assert_string_equal(ev.name, "order.created");
    assert_int_equal(ev.store_id, 1305146709);
    assert_int_equal(ev.order_id, 2116149737);
    assert_int_equal(ev.kind, PLATFORM_EV_ORDER);
    assert_int_equal(strlen(ev.dedupe_key), 64);
    char first[72];
    memcpy(first, ev.dedupe_key, sizeof first);
    int64_t sid = 0;
    assert_int_equal(p->peek_store(b, len, &sid, &err), 0);
    assert_int_equal(sid, 1305146709);
    free(b);

    /* the nested shape: the order id is data.order.id, not data.id */
    b = slurp("order_status_updated.json", &len);
    assert_int_equal(p->parse_event(b, len, &ev, &err), 0);
    assert_int_equal(ev.order_id, 629263027);
    assert_string_not_equal(ev.dedupe_key, first);
    free(b);

    const char *auth = "{\"event\":\"app.store.authorize\",\"merchant\":77,\"data\":{"
                       "\"access_token\":\"AT\",\"refresh_token\":\"RT\",\"expires\":1634819484}}";
    assert_int_equal(p->parse_event(auth, strlen(auth), &ev, &err), 0);
    assert_int_equal(ev.kind, PLATFORM_EV_AUTHORIZE);
    assert_string_equal(ev.access_token, "AT");
    assert_string_equal(ev.refresh_token, "RT");
    assert_int_equal(ev.expires_at, 1634819484);

    static const struct {
        const char *body;
        int want;
    } bad[] = {
        {"{not json", TH_EPARSE},
        {"{\"merchant\":1}", TH_EPARSE},
        {"{\"event\":\"order.created\"}", TH_EPARSE},
        {"{\"event\":\"order.created\",\"merchant\":1,\"data\":{}}", TH_EPARSE},
        {"{\"event\":\"app.store.authorize\",\"merchant\":1,\"data\":{}}", TH_EPARSE},
        {"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]", TH_EDEPTH},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = p->parse_event(bad[i].body, strlen(bad[i].body), &ev, &err);
        if (rc != bad[i].want) fail_msg("bad case %zu: want %d got %d", i, bad[i].want, rc);
    }
}

static void test_map_order_created(void **state)
{
    size_t len;
    char *b = slurp("order_created.json", &len);
    struct model_order *o = NULL;
    struct th_err err;
    assert_int_equal(salla_platform_ops.order_map(b, len, 1305146709, &o, &err), 0);
    free(b);
    assert_int_equal(o->order_id, 2116149737);
    assert_string_equal(o->number, "41027662");
    assert_int_equal(o->status, MODEL_STATUS_NEW);
    assert_string_equal(o->status_raw, "under_review");
    assert_int_equal(o->created_at, 1656235305); /* 2022-06-26 12:21:45 +03:00 */
    assert_string_equal(o->customer.name, "Mohammed Ali");
    assert_string_equal(o->customer.phone, "+966501806978");
    assert_int_equal(o->customer.platform_id, 225167971);
    assert_int_equal(o->nlines, 1);
    assert_string_equal(o->lines[0].sku, "54534534");
    assert_int_equal(o->lines[0].unit_price, 18600);
    assert_int_equal(o->lines[0].discount, 500);
    assert_int_equal(o->lines[0].kind, MODEL_ITEM_PRODUCT);
    assert_int_equal(o->shipping, 1500);
    assert_int_equal(o->order_discount, 0); /* the 5.00 is the item's, not counted twice */
    assert_int_equal(o->total, 19600);
    assert_int_equal(model_order_check(o, &err), 0);
    model_order_free(o);
}

static void test_map_status_updated(void **state)
{
    size_t len;
    char *b = slurp("order_status_updated.json", &len);
    struct model_order *o = NULL;
    struct th_err err;
    assert_int_equal(salla_platform_ops.order_map(b, len, 193718979, &o, &err), 0);
    free(b);
    assert_int_equal(o->order_id, 629263027);
    assert_int_equal(o->status, MODEL_STATUS_COMPLETED);
    assert_string_equal(o->customer.phone, "+96652318526");
    assert_null(o->lines[0].sku); /* "" → none: the worker fails it with a reason */
    assert_int_equal(o->lines[0].quantity, 2);
    assert_int_equal(o->lines[0].platform_product_id, 2047473815);
    assert_int_equal(o->lines[0].kind, MODEL_ITEM_UNKNOWN);
    assert_int_equal(o->cod_fee, 100);
    assert_int_equal(o->order_discount, 12600);
    assert_int_equal(model_order_check(o, &err), 0);
    model_order_free(o);
}

static void test_status_and_kind_maps(void **state)
{
    static const struct {
        const char *slug;
        enum model_status st;
    } s[] = {{"payment_pending", MODEL_STATUS_OTHER}, {"under_review", MODEL_STATUS_NEW},
             {"in_progress", MODEL_STATUS_READY},     {"delivering", MODEL_STATUS_IN_TRANSIT},
             {"shipped", MODEL_STATUS_IN_TRANSIT},    {"completed", MODEL_STATUS_COMPLETED},
             {"delivered", MODEL_STATUS_COMPLETED},   {"canceled", MODEL_STATUS_CANCELLED},
             {"restored", MODEL_STATUS_REFUNDED},     {"restoring", MODEL_STATUS_OTHER},
             {"nonsense", MODEL_STATUS_OTHER},        {NULL, MODEL_STATUS_OTHER}};
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
        assert_int_equal(salla_status_map(s[i].slug), s[i].st);
    assert_int_equal(salla_kind_map("product"), MODEL_ITEM_PRODUCT);
    assert_int_equal(salla_kind_map("digital"), MODEL_ITEM_SERVICE);
    assert_int_equal(salla_kind_map("group_products"), MODEL_ITEM_BUNDLE);
    assert_int_equal(salla_kind_map("spaceship"), MODEL_ITEM_UNKNOWN);
}

static void test_map_rejects_broken_orders(void **state)
{
    static const struct {
        const char *json;
        int want;
    } cases[] = {
        {"{\"data\":{\"reference_id\":1,\"items\":[]}}", TH_EPARSE},             /* no id */
        {"{\"data\":{\"id\":1,\"items\":[]}}", TH_EPARSE},                       /* no items */
        {"{\"data\":{\"id\":1,\"items\":[{\"name\":\"x\",\"quantity\":1}]}}", TH_EPARSE},
        {"{\"data\":{\"id\":1,\"items\":[{\"name\":\"x\",\"quantity\":1,\"amounts\":{"
         "\"price_without_tax\":{\"amount\":\"abc\"}}}]}}", TH_EPARSE},
        {"{\"data\":{\"id\":1,\"items\":[{\"name\":\"x\",\"quantity\":1,\"amounts\":{"
         "\"price_without_tax\":{\"amount\":1}}}]}}", TH_EPARSE},                 /* no total */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct model_order *o = NULL;
        struct th_err err = {0};
        int rc = salla_platform_ops.order_map(cases[i].json, strlen(cases[i].json), 1, &o, &err);
        if (rc != cases[i].want) fail_msg("case %zu: want %d got %d (%s)", i, cases[i].want, rc, err.msg);
        assert_null(o);
        assert_true(err.msg[0] != '\0');
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verify),
        cmocka_unit_test(test_parse_events),
        cmocka_unit_test(test_map_order_created),
        cmocka_unit_test(test_map_status_updated),
        cmocka_unit_test(test_status_and_kind_maps),
        cmocka_unit_test(test_map_rejects_broken_orders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
