/* Tests for src/platform/zid.c: Basic-auth verification, event parsing and
 * dedupe keys, order mapping on Zid's shapes (tests/data/zid/: orders as the
 * emulator serves and delivers them, and zid.md §4.3's composite of captured
 * orders), and order_fetch / token_refresh against the Zid emulator. */
#include <openssl/evp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cmocka.h>

#include "core/jv.h"
#include "core/money.h"
#include "core/xmalloc.h"
#include "platform/zid.h"
#include "sim/zid_sim.h"
#include "th_test.h"

static const struct platform_ops *const P = &zid_platform_ops;

static char *slurp(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/tests/data/zid/%s", TH_SOURCE_DIR, name);
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

static struct model_order *map_file(const char *name, int64_t store_id)
{
    size_t len;
    char *b = slurp(name, &len);
    struct model_order *o = NULL;
    struct th_err err = {0};
    int rc = P->order_map(b, len, store_id, &o, &err);
    free(b);
    if (rc) fail_msg("%s: order_map gave %s: %s", name, th_err_name(rc), err.msg);
    rc = model_order_check(o, &err);
    if (rc) fail_msg("%s: model_order_check gave %s: %s", name, th_err_name(rc), err.msg);
    return o;
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

static void sha256_hex(const char *s, char out[65])
{
    unsigned char md[32];
    unsigned int n = 0;
    EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL);
    for (unsigned i = 0; i < n; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* ---------------------------------------------------------------------- */
/* Small functions                                                          */

static void test_phone_normalize(void **state)
{
    static const struct {
        const char *in, *want;
        int rc;
    } cases[] = {
        {"966501234567", "+966501234567", 0},   /* REST */
        {"+966501234567", "+966501234567", 0},  /* webhook */
        {"0501234567", "+966501234567", 0},     /* typed locally */
        {"00966501234567", "+966501234567", 0},
        {"+966 50 123 4567", "+966501234567", 0},
        {"+971501234567", "+971501234567", 0},  /* not Saudi: digits kept */
        {"***00", "", -1},                      /* marketplace mask */
        {"9665*****567", "", -1},
        {"", "", -1},
        {NULL, "", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[32] = "x";
        int rc = zid_phone_normalize(cases[i].in, out, sizeof out);
        if (rc != cases[i].rc || strcmp(out, cases[i].want) != 0)
            fail_msg("case %zu '%s': want %d '%s', got %d '%s'", i,
                     cases[i].in ? cases[i].in : "(null)", cases[i].rc, cases[i].want, rc, out);
    }
}

static void test_status_and_kind_maps(void **state)
{
    static const struct {
        const char *code;
        enum model_status st;
    } s[] = {
        {"new", MODEL_STATUS_NEW},
        {"preparing", MODEL_STATUS_NEW}, /* not yet "Ready": the ready trigger waits */
        {"ready", MODEL_STATUS_READY},
        {"indelivery", MODEL_STATUS_IN_TRANSIT},
        {"inDelivery", MODEL_STATUS_IN_TRANSIT},
        {"delivered", MODEL_STATUS_COMPLETED},
        {"Delivered", MODEL_STATUS_COMPLETED},
        {"cancelled", MODEL_STATUS_CANCELLED},
        {"canceled", MODEL_STATUS_CANCELLED},
        {"reversed", MODEL_STATUS_REFUNDED},
        {"partially_reversed", MODEL_STATUS_PARTIALLY_REFUNDED},
        {"reverse_in_progress", MODEL_STATUS_OTHER},
        {"processingReverse", MODEL_STATUS_OTHER},
        {"initial", MODEL_STATUS_OTHER},
        {"", MODEL_STATUS_OTHER},
        {NULL, MODEL_STATUS_OTHER},
    };
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
        if (zid_status_map(s[i].code) != s[i].st)
            fail_msg("status '%s': want %d got %d", s[i].code ? s[i].code : "(null)", s[i].st,
                     zid_status_map(s[i].code));
    assert_int_equal(zid_kind_map(NULL), MODEL_ITEM_PRODUCT);
    assert_int_equal(zid_kind_map(""), MODEL_ITEM_PRODUCT);
    assert_int_equal(zid_kind_map("voucher"), MODEL_ITEM_SERVICE);
    assert_int_equal(zid_kind_map("spaceship"), MODEL_ITEM_UNKNOWN);
}

static void test_registered(void **state)
{
    assert_ptr_equal(platform_by_name("zid"), P);
    assert_ptr_equal(platform_by_id(MODEL_PLATFORM_ZID), P);
    assert_non_null(P->product_stock); /* by the line's UUID (tests/unit/worker/test_poller.c) */
}

/* ---------------------------------------------------------------------- */
/* Webhooks                                                                 */

static void test_verify(void **state)
{
    const char *body = "{\"id\":1,\"store_id\":2}";
    /* base64("tarheel:s3cret") = dGFyaGVlbDpzM2NyZXQ= */
    struct {
        const char *strategy, *secret, *hname, *hval;
        int want;
    } cases[] = {
        {"basic", "tarheel:s3cret", "Authorization", "Basic dGFyaGVlbDpzM2NyZXQ=", 0},
        {"basic", "tarheel:s3cret", "authorization", "basic  dGFyaGVlbDpzM2NyZXQ= ", 0},
        {NULL, "tarheel:s3cret", "Authorization", "Basic dGFyaGVlbDpzM2NyZXQ=", 0},
        {"BASIC", "tarheel:s3cret", "Authorization", "Basic dGFyaGVlbDpzM2NyZXQ=", 0},
        {"basic", "tarheel:s3cret", "Authorization", "Basic dGFyaGVlbDpzM2NyZXQ", TH_EAUTH},
        {"basic", "tarheel:other", "Authorization", "Basic dGFyaGVlbDpzM2NyZXQ=", TH_EAUTH},
        {"basic", "tarheel:s3cret", "Authorization", "Bearer dGFyaGVlbDpzM2NyZXQ=", TH_EAUTH},
        {"basic", "tarheel:s3cret", "Authorization", "tarheel:s3cret", TH_EAUTH},
        {"basic", "tarheel:s3cret", "Authorization", "Basic ", TH_EAUTH},
        {"basic", "tarheel:s3cret", NULL, NULL, TH_EAUTH},
        {"basic", "", "Authorization", "Basic Og==", TH_EAUTH},
        {"basic", NULL, "Authorization", "Basic Og==", TH_EAUTH},
        /* the store is configured for Basic; other strategies do not exist here */
        {"signature", "tarheel:s3cret", "Authorization", "Basic dGFyaGVlbDpzM2NyZXQ=", TH_EAUTH},
        {"token", "tarheel:s3cret", "Authorization", "tarheel:s3cret", TH_EAUTH},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct hdrs h = {{cases[i].hname}, {cases[i].hval}};
        struct platform_auth auth = {cases[i].strategy, cases[i].secret};
        struct th_err err = {0};
        int rc = P->verify(&auth, get_header, &h, body, strlen(body), &err);
        if (rc != cases[i].want)
            fail_msg("case %zu: want %d got %d (%s)", i, cases[i].want, rc, err.msg);
        if (rc) assert_true(err.msg[0] != '\0');
    }
}

static void test_parse_order_event(void **state)
{
    size_t len;
    char *b = slurp("order_webhook_status_update.json", &len);
    struct platform_event ev;
    struct th_err err = {0};
    int64_t sid = 0;
    assert_int_equal(P->peek_store(b, len, &sid, &err), 0);
    assert_int_equal(sid, 251073);
    assert_int_equal(P->parse_event(b, len, &ev, &err), 0);
    assert_int_equal(ev.kind, PLATFORM_EV_ORDER);
    assert_string_equal(ev.name, "order");
    assert_int_equal(ev.store_id, 251073);
    assert_int_equal(ev.order_id, 39018498);
    char want[65];
    sha256_hex("251073\n39018498\nindelivery\npending\n2026-11-23 08:23:27", want);
    assert_string_equal(ev.dedupe_key, want);

    /* A redelivery of the same state, however formatted, is the same event. */
    json_t *j = jv_parse(b, len, JV_MAX_DEPTH, NULL);
    assert_non_null(j);
    free(b);
    char *compact = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    struct platform_event ev2;
    assert_int_equal(P->parse_event(compact, strlen(compact), &ev2, &err), 0);
    assert_string_equal(ev2.dedupe_key, ev.dedupe_key);
    free(compact);

    /* A real change of status, payment status or updated_at is not. */
    const char *const changes[][2] = {
        {"order_status", "{\"name\":\"Delivered\",\"code\":\"delivered\"}"},
        {"payment_status", "\"paid\""},
        {"updated_at", "\"2026-11-23 08:30:00\""},
    };
    for (size_t i = 0; i < 3; i++) {
        json_t *c = json_deep_copy(j);
        json_object_set_new(c, changes[i][0], json_loads(changes[i][1], JSON_DECODE_ANY, NULL));
        char *t = json_dumps(c, JSON_COMPACT);
        assert_int_equal(P->parse_event(t, strlen(t), &ev2, &err), 0);
        if (!strcmp(ev2.dedupe_key, ev.dedupe_key)) fail_msg("change %zu kept the key", i);
        assert_int_equal(strlen(ev2.dedupe_key), 64);
        free(t);
        json_decref(c);
    }
    /* order_status.code may be an integer; the id may be a numeric string */
    const char *odd = "{\"id\":\"77\",\"store_id\":\"5\",\"order_status\":{\"code\":3},"
                      "\"payment_status\":\"paid\",\"updated_at\":\"2026-01-01 00:00:00\"}";
    assert_int_equal(P->parse_event(odd, strlen(odd), &ev2, &err), 0);
    assert_int_equal(ev2.order_id, 77);
    assert_int_equal(ev2.store_id, 5);
    sha256_hex("5\n77\n3\npaid\n2026-01-01 00:00:00", want);
    assert_string_equal(ev2.dedupe_key, want);
    json_decref(j);
}

static void test_parse_app_events(void **state)
{
    size_t len;
    char *b = slurp("app_uninstall.json", &len);
    struct platform_event ev;
    struct th_err err = {0};
    assert_int_equal(P->parse_event(b, len, &ev, &err), 0);
    assert_int_equal(ev.kind, PLATFORM_EV_UNINSTALL);
    assert_string_equal(ev.name, "app.market.application.uninstall");
    assert_int_equal(ev.store_id, 507530);
    assert_int_equal(ev.order_id, 0);
    char first[72];
    memcpy(first, ev.dedupe_key, sizeof first);
    assert_int_equal(strlen(first), 64);
    free(b);
    b = slurp("app_authorized.json", &len);
    assert_int_equal(P->parse_event(b, len, &ev, &err), 0);
    assert_int_equal(ev.kind, PLATFORM_EV_OTHER);
    assert_string_equal(ev.name, "app.market.application.authorized");
    assert_string_not_equal(ev.dedupe_key, first);
    free(b);
}

static void test_parse_rejects(void **state)
{
    static const struct {
        const char *body;
        int peek, parse;
    } cases[] = {
        {"{not json", TH_EPARSE, TH_EPARSE},
        {"", TH_EPARSE, TH_EPARSE},
        {"{\"id\":1}", TH_ENOTFOUND, TH_EPARSE},                 /* no store */
        {"{\"id\":1,\"store_id\":null}", TH_ENOTFOUND, TH_EPARSE},
        {"{\"id\":1,\"store_id\":\"abc-uuid\"}", TH_EPARSE, TH_EPARSE},
        {"{\"store_id\":1,\"order_status\":{\"code\":\"new\"}}", 0, TH_EPARSE}, /* no id */
        {"{\"store_id\":1,\"id\":\"de410a62-31e5\"}", 0, TH_EPARSE}, /* a product */
        {"[1,2]", TH_ENOTFOUND, TH_EPARSE},
        {"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
         TH_EDEPTH, TH_EDEPTH},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct platform_event ev;
        struct th_err err = {0};
        int64_t sid = 0;
        int rc = P->peek_store(cases[i].body, strlen(cases[i].body), &sid, &err);
        if (rc != cases[i].peek) fail_msg("case %zu peek: want %d got %d", i, cases[i].peek, rc);
        rc = P->parse_event(cases[i].body, strlen(cases[i].body), &ev, &err);
        if (rc != cases[i].parse)
            fail_msg("case %zu parse: want %d got %d (%s)", i, cases[i].parse, rc, err.msg);
        assert_true(err.msg[0] != '\0');
    }
}

/* ---------------------------------------------------------------------- */
/* Order mapping                                                            */

struct want_line {
    const char *sku;
    int64_t qty, unit, tax;
    int32_t bp;
};

static void check_lines(const struct model_order *o, const struct want_line *w, size_t n)
{
    assert_int_equal(o->nlines, n);
    for (size_t i = 0; i < n; i++) {
        const struct model_line *l = &o->lines[i];
        if (strcmp(l->sku, w[i].sku) || l->quantity != w[i].qty || l->unit_price != w[i].unit ||
            l->tax != w[i].tax || l->tax_rate_bp != w[i].bp || l->discount != 0)
            fail_msg("line %zu: want %s %lld x %lld tax %lld @%d, got %s %lld x %lld tax %lld "
                     "@%d disc %lld", i, w[i].sku, (long long)w[i].qty, (long long)w[i].unit,
                     (long long)w[i].tax, w[i].bp, l->sku, (long long)l->quantity,
                     (long long)l->unit_price, (long long)l->tax, l->tax_rate_bp,
                     (long long)l->discount);
    }
}

static void test_map_view_coupon(void **state)
{
    struct model_order *o = map_file("order_view_coupon.json", 251073);
    assert_int_equal(o->platform, MODEL_PLATFORM_ZID);
    assert_int_equal(o->store_id, 251073);
    assert_int_equal(o->order_id, 39018292);
    assert_string_equal(o->number, "39018292");
    assert_int_equal(o->status, MODEL_STATUS_NEW);
    assert_string_equal(o->status_raw, "new");
    assert_int_equal(o->created_at, 1795422187); /* 2026-11-23 08:23:07 UTC */
    assert_int_equal(o->updated_at, 1795422187);
    assert_string_equal(o->currency, "SAR");
    assert_string_equal(o->payment_method, "zid_bank_transfer");
    assert_int_equal(o->customer.platform_id, 2083550);
    assert_string_equal(o->customer.name, "عبدالله الشهري");
    assert_string_equal(o->customer.email, "c2083550@example.com");
    assert_string_equal(o->customer.phone, "+966502083550");
    assert_string_equal(o->customer.city, "الرياض");
    assert_string_equal(o->customer.country, "السعودية");
    static const struct want_line w[] = {
        {"ZD-DATE-500", 2, 3000, 900, 1500},
        {"ZD-ABY-001", 2, 26000, 7800, 1500},
        {"Z.251073.1770805225810645", 2, 10000, 3000, 1500},
    };
    check_lines(o, w, 3);
    assert_string_equal(o->lines[0].name, "تمر خلاص ٥٠٠ جم");
    assert_int_equal(o->lines[0].kind, MODEL_ITEM_PRODUCT);
    assert_int_equal(o->lines[0].platform_product_id, 0);
    assert_int_equal(o->order_discount, 7800); /* the coupon line, pre-VAT */
    assert_int_equal(o->shipping, 2000);
    assert_int_equal(o->cod_fee, 0);
    assert_int_equal(o->fees_tax_rate_bp, 1500);
    assert_int_equal(o->tax, 10830);
    assert_int_equal(o->total, 83030);
    model_order_free(o);
}

static void test_map_view_cod(void **state)
{
    struct model_order *o = map_file("order_view_cod.json", 251073);
    assert_int_equal(o->order_id, 39018381);
    assert_string_equal(o->payment_method, "cod");
    static const struct want_line w[] = {
        {"ZD-INC-050", 2, 6000, 1800, 1500},
        {"ZD-OUD-012", 2, 17400, 5220, 1500},
        {"ZD-INC-050", 2, 6000, 1800, 1500},
    };
    check_lines(o, w, 3);
    assert_int_equal(o->shipping, 2600);
    assert_int_equal(o->cod_fee, 1000);
    assert_int_equal(o->order_discount, 0);
    assert_int_equal(o->tax, 9360);
    assert_int_equal(o->total, 71760);
    model_order_free(o);
}

/* The same order as a webhook delivers it: customer id as a string, mobile
 * with a plus, no envelope; COD and a coupon. */
static void test_map_webhook_body(void **state)
{
    struct model_order *o = map_file("order_webhook_status_update.json", 0);
    assert_int_equal(o->store_id, 251073); /* from the body when not given */
    assert_int_equal(o->order_id, 39018498);
    assert_int_equal(o->status, MODEL_STATUS_IN_TRANSIT);
    assert_string_equal(o->status_raw, "indelivery");
    assert_int_equal(o->updated_at, 1795422207);
    assert_int_equal(o->customer.platform_id, 2083547);
    assert_string_equal(o->customer.phone, "+966502083547");
    assert_string_equal(o->payment_method, "cod");
    static const struct want_line w[] = {
        {"ZD-INC-050", 3, 6000, 2700, 1500},
        {"ZD-ABY-001", 1, 26000, 3900, 1500},
    };
    check_lines(o, w, 2);
    assert_int_equal(o->order_discount, 4400);
    assert_int_equal(o->shipping, 2000);
    assert_int_equal(o->cod_fee, 1000);
    assert_int_equal(o->tax, 6390);
    assert_int_equal(o->total, 48990);
    model_order_free(o);
}

static void test_map_no_sku(void **state)
{
    struct model_order *o = map_file("order_view_no_sku.json", 251073);
    static const struct want_line w[] = {{"", 3, 2000, 900, 1500}};
    check_lines(o, w, 1); /* kept empty: the worker reports it */
    assert_string_equal(o->lines[0].name, "منتج بدون رمز");
    assert_int_equal(o->shipping, 0);
    assert_int_equal(o->total, 6900);
    model_order_free(o);
}

/* zid.md §4.3: the captured shape with a loyalty redemption, 24 % VAT, float
 * noise in numbers and strings, status preparing. */
static void test_map_captured_composite(void **state)
{
    struct model_order *o = map_file("order_view_loyalty_vat24.json", 1);
    assert_int_equal(o->order_id, 39018292);
    assert_int_equal(o->status, MODEL_STATUS_NEW); /* preparing */
    assert_int_equal(o->created_at, 1768986611);
    assert_int_equal(o->updated_at, 1768986720);
    assert_string_equal(o->customer.phone, "+966500000006");
    assert_string_equal(o->customer.city, "Riyadh");
    static const struct want_line w[] = {{"Z.17682096113168907", 1, 16129, 3871, 2400}};
    check_lines(o, w, 1);
    assert_int_equal(o->order_discount, 100);
    assert_int_equal(o->shipping, 2000);
    assert_int_equal(o->fees_tax_rate_bp, 2400);
    assert_int_equal(o->tax, 4327);
    assert_int_equal(o->total, 22356);
    model_order_free(o);
}

/* Smaller hand-made orders for the branches the fixtures do not reach. */
static void test_map_variants(void **state)
{
    struct th_err err = {0};
    struct model_order *o = NULL;
    /* No invoice block: order_total and line taxes; gross price only; a
     * localised name; a shipping discount; a zero-rated order with VAT on
     * shipping only (rate read off the invoice). */
    const char *a =
        "{\"id\":5,\"store_id\":9,\"order_status\":{\"code\":\"delivered\"},\"shipping\":{"
        "\"address\":{\"city\":\"Jeddah\",\"country\":{\"name\":\"Saudi Arabia\"}}},\"order_total\":"
        "\"115.00000000000000\",\"products\":[{\"name\":{\"en\":\"Tea\"},\"sku\":\"T-1\","
        "\"quantity\":\"2\",\"tax_percentage\":0.15,\"tax_amount\":\"15.00000000000000\","
        "\"gross_price\":57.5}]}";
    assert_int_equal(P->order_map(a, strlen(a), 9, &o, &err), 0);
    assert_int_equal(o->status, MODEL_STATUS_COMPLETED);
    assert_string_equal(o->lines[0].name, "Tea");
    assert_int_equal(o->lines[0].unit_price, 5000);
    assert_int_equal(o->lines[0].quantity, 2);
    assert_int_equal(o->tax, 1500);
    assert_int_equal(o->total, 11500);
    assert_null(o->payment_method);
    assert_null(o->customer.name);
    assert_string_equal(o->customer.city, "Jeddah");
    assert_string_equal(o->customer.country, "Saudi Arabia");
    assert_int_equal(model_order_check(o, &err), 0);
    model_order_free(o);

    const char *b =
        "{\"status\":\"object\",\"order\":{\"id\":6,\"order_status\":{\"code\":\"new\"},"
        "\"customer\":{\"id\":\"12\",\"name\":\"J*** D***\",\"email\":\"t***@.\",\"mobile\":"
        "\"***00\"},\"products\":[{\"name\":\"Gift card\",\"sku\":\"GC\",\"product_class\":"
        "\"voucher\",\"quantity\":1,\"is_taxable\":false,\"tax_percentage\":0,\"net_price\":100}],"
        "\"payment\":{\"invoice\":[{\"code\":\"sub_totals_before_vat\",\"value\":\"100.00\"},"
        "{\"code\":\"shipping\",\"value\":\"30.00000000000000\"},{\"code\":\"shipping_discount\","
        "\"value\":\"-10.00000000000000\"},{\"code\":\"taxable_amount\",\"value\":\"20.00\"},"
        "{\"code\":\"vat\",\"value\":\"3.00000000000000\"},{\"code\":\"gift_wrap_title\","
        "\"value\":\"0\"},{\"code\":\"total\",\"value\":\"123.00000000000000\"}]}}}";
    assert_int_equal(P->order_map(b, strlen(b), 9, &o, &err), 0);
    assert_int_equal(o->customer.platform_id, 12);
    assert_null(o->customer.email); /* masked */
    assert_null(o->customer.phone);
    assert_int_equal(o->lines[0].kind, MODEL_ITEM_SERVICE);
    assert_string_equal(o->lines[0].platform_type, "voucher");
    assert_int_equal(o->lines[0].tax_rate_bp, 0);
    assert_int_equal(o->shipping, 2000);
    assert_int_equal(o->order_discount, 0);
    assert_int_equal(o->fees_tax_rate_bp, 1500);
    assert_int_equal(o->tax, 300);
    assert_int_equal(o->total, 12300);
    assert_int_equal(model_order_check(o, &err), 0);
    model_order_free(o);
}

static void test_map_rejects(void **state)
{
    static const struct {
        const char *json, *needle;
        int want;
    } cases[] = {
        {"{\"status\":\"object\",\"order\":{\"store_id\":1,\"products\":[]}}", "id", TH_EPARSE},
        {"{\"id\":1,\"products\":[]}", "no products", TH_EPARSE},
        {"{\"id\":1}", "no products", TH_EPARSE},
        {"{\"id\":1,\"products\":[{\"name\":\"x\",\"sku\":\"a\",\"net_price\":1}]}", "quantity",
         TH_EPARSE},
        {"{\"id\":1,\"products\":[{\"name\":\"x\",\"sku\":\"a\",\"quantity\":1,"
         "\"net_price\":\"12.3.4\"}],\"order_total\":\"1\"}", "net_price", TH_EPARSE},
        {"{\"id\":1,\"products\":[{\"name\":\"x\",\"sku\":\"a\",\"quantity\":1}],"
         "\"order_total\":\"1\"}", "no net_price", TH_EPARSE},
        {"{\"id\":1,\"products\":[{\"name\":\"x\",\"sku\":\"a\",\"quantity\":1,"
         "\"net_price\":1,\"tax_percentage\":1.5}],\"order_total\":\"1\"}", "tax_percentage",
         TH_EPARSE},
        {"{\"id\":1,\"products\":[{\"name\":\"x\",\"sku\":\"a\",\"quantity\":1,\"net_price\":1}]}",
         "no total", TH_EPARSE},
        {"{\"id\":1,\"products\":[{\"name\":\"x\",\"sku\":\"a\",\"quantity\":1,\"net_price\":1}],"
         "\"payment\":{\"invoice\":[{\"code\":\"total\",\"value\":\"1.0.0\"}]}}", "'total'",
         TH_EPARSE},
        {"{\"id\":1,\"products\":[{\"name\":\"x\",\"sku\":\"a\",\"quantity\":1,\"net_price\":1}],"
         "\"order_total\":\"99999999999999999999\"}", "order_total", TH_EMONEY},
        {"{\"id\":1,\"currency_code\":\"BHD\",\"products\":[]}", "BHD", TH_EMONEY},
        {"[1]", "not a JSON object", TH_EPARSE},
        {"{\"id\":1,", "malformed", TH_EPARSE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct model_order *o = NULL;
        struct th_err err = {0};
        int rc = P->order_map(cases[i].json, strlen(cases[i].json), 1, &o, &err);
        if (rc != cases[i].want || !strstr(err.msg, cases[i].needle))
            fail_msg("case %zu: want %s with '%s', got %s: %s", i, th_err_name(cases[i].want),
                     cases[i].needle, th_err_name(rc), err.msg);
        assert_null(o);
    }

    /* KWD: three decimals cannot be held in halalas */
    size_t len;
    char *b = slurp("order_view_kwd.json", &len);
    struct model_order *o = NULL;
    struct th_err err = {0};
    assert_int_equal(P->order_map(b, len, 251073, &o, &err), TH_EMONEY);
    assert_non_null(strstr(err.msg, "39020117"));
    assert_non_null(strstr(err.msg, "KWD"));
    assert_null(o);
    free(b);
}

/* Maps ord (consumed) through the adapter; *o is NULL on failure. */
static int map_json(json_t *ord, struct model_order **o, struct th_err *err)
{
    char *t = json_dumps(ord, JSON_COMPACT);
    *o = NULL;
    memset(err, 0, sizeof *err);
    int rc = P->order_map(t, strlen(t), 1, o, err);
    free(t);
    json_decref(ord);
    return rc;
}

/* n bytes of c, terminated (free()). */
static char *text_of_len(size_t n, char c)
{
    char *s = xmalloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* Limits: MODEL_MAX_LINES products and MODEL_MAX_TEXT-long text. */
static void test_map_limits(void **state)
{
    struct model_order *o;
    struct th_err err;
    for (int n = MODEL_MAX_LINES; n <= MODEL_MAX_LINES + 1; n++) {
        json_t *prods = json_array();
        for (int i = 0; i < n; i++)
            json_array_append_new(prods, json_pack("{s:s,s:s,s:i,s:i}", "name", "x", "sku", "s",
                                                   "quantity", 1, "net_price", 1));
        int rc = map_json(json_pack("{s:i,s:o,s:i}", "id", 1, "products", prods, "order_total", n),
                          &o, &err);
        if (n == MODEL_MAX_LINES) {
            assert_int_equal(rc, 0);
            assert_int_equal(o->nlines, MODEL_MAX_LINES);
            assert_int_equal(model_order_check(o, &err), 0);
            model_order_free(o);
        } else {
            assert_int_equal(rc, TH_ELIMIT);
            assert_null(o);
        }
    }
    for (size_t n = MODEL_MAX_TEXT - 1; n <= MODEL_MAX_TEXT; n++) {
        char *name = text_of_len(n, 'a');
        int rc = map_json(json_pack("{s:i,s:[{s:s,s:s,s:i,s:i}],s:i}", "id", 1, "products",
                                    "name", name, "sku", "s", "quantity", 1, "net_price", 1,
                                    "order_total", 1),
                          &o, &err);
        if (n < MODEL_MAX_TEXT) {
            assert_int_equal(rc, 0);
            assert_int_equal(strlen(o->lines[0].name), n);
            model_order_free(o);
        } else {
            assert_int_equal(rc, TH_ETOOBIG);
            assert_null(o);
        }
        free(name);
    }
    /* A credit note's number is its identity (one credit note in Qoyod per
     * number), so it is never cut short either: two numbers that differ
     * only past the limit would otherwise become one return. */
    for (size_t n = MODEL_MAX_TEXT - 1; n <= MODEL_MAX_TEXT; n++) {
        char *num = text_of_len(n, '7');
        int rc = map_json(json_pack("{s:i,s:[{s:s,s:s,s:i,s:i}],s:i,s:[{s:s,s:s}]}", "id", 1,
                                    "products", "name", "x", "sku", "s", "quantity", 1,
                                    "net_price", 1, "order_total", 1, "credit_notes",
                                    "invoice_number", num, "order_total", "1.00"),
                          &o, &err);
        if (n < MODEL_MAX_TEXT) {
            assert_int_equal(rc, 0);
            assert_int_equal(o->nrefunds, 1);
            assert_int_equal(strlen(o->refunds[0].key), n);
            model_order_free(o);
        } else {
            assert_int_equal(rc, TH_ETOOBIG);
            assert_null(o);
            assert_non_null(strstr(err.msg, "credit note 1 number"));
        }
        free(num);
    }
}

/* ---------------------------------------------------------------------- */
/* Against the Zid emulator                                                 */

#define STORE 251073

struct emu {
    struct sim *s;
    char api[256], token_url[256];
    char bearer[256], manager[256], refresh[256];
};

static void emu_start(struct emu *e, const char *const *opts)
{
    memset(e, 0, sizeof *e);
    e->s = tt_sim_start(&zid_sim_ops, opts);
    snprintf(e->api, sizeof e->api, "%s", tt_url(e->s, "/v1"));
    snprintf(e->token_url, sizeof e->token_url, "%s", tt_url(e->s, "/oauth/token"));
    struct tt_resp r;
    tt_http("POST", tt_url(e->s, "/_sim/zid/install"), NULL, "{\"store_id\":251073}", &r);
    assert_int_equal(r.status, 200);
    snprintf(e->bearer, sizeof e->bearer, "%s", jv_get_str(r.json, "authorization"));
    snprintf(e->manager, sizeof e->manager, "%s", jv_get_str(r.json, "access_token"));
    snprintf(e->refresh, sizeof e->refresh, "%s", jv_get_str(r.json, "refresh_token"));
    tt_resp_release(&r);
}

static int fetch(struct httpc *hc, const struct emu *e, const char *bearer, const char *manager,
                 int64_t id, struct model_order **o, struct th_err *err)
{
    struct platform_conn c = {.store_id = STORE,
                              .api_base = e->api,
                              .access_token = bearer,
                              .manager_token = manager};
    *o = NULL;
    return P->order_fetch(hc, &c, id, o, err);
}

static void test_fetch_generated_orders(void **state)
{
    struct emu e;
    emu_start(&e, (const char *[]){"rate-limit", "0", "seed", "11", NULL});
    struct tt_resp r;
    tt_http("POST", tt_url(e.s, "/_sim/zid/generate"), NULL,
            "{\"store_id\":251073,\"count\":60}", &r);
    assert_int_equal(r.status, 201);
    tt_resp_release(&r);
    /* The emulator's own view of every order, for the invoice totals. */
    tt_http("GET", tt_url(e.s, "/_sim/zid/orders"), NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    json_t *orders = json_object_get(r.json, "orders");
    assert_int_equal(json_array_size(orders), 60);

    struct httpc *hc = httpc_new(NULL);
    size_t i;
    json_t *zo;
    int coupons = 0, cods = 0, nosku = 0, fees_and_coupon = 0;
    json_array_foreach(orders, i, zo) {
        int64_t id = 0, want_total = 0;
        assert_int_equal(jv_get_id(zo, "id", &id, NULL), 0);
        size_t k;
        json_t *line;
        json_array_foreach(jv_path(zo, "payment.invoice"), k, line) {
            if (!strcmp(jv_get_str(line, "code"), "total"))
                assert_int_equal(money_parse(jv_get_str(line, "value"), &want_total, NULL), 0);
        }
        assert_true(want_total > 0);
        struct model_order *o;
        struct th_err err = {0};
        int rc = fetch(hc, &e, e.bearer, e.manager, id, &o, &err);
        if (rc) fail_msg("order %lld: %s %s", (long long)id, th_err_name(rc), err.msg);
        rc = model_order_check(o, &err);
        if (rc) fail_msg("order %lld: %s", (long long)id, err.msg);
        if (o->total != want_total)
            fail_msg("order %lld: total %lld, invoice says %lld", (long long)id,
                     (long long)o->total, (long long)want_total);
        assert_int_equal(o->order_id, id);
        assert_int_equal(o->store_id, STORE);
        assert_int_equal(o->status, MODEL_STATUS_NEW);
        assert_non_null(o->customer.phone);
        assert_int_equal(strncmp(o->customer.phone, "+9665", 5), 0);
        coupons += o->order_discount > 0;
        cods += o->cod_fee > 0;
        fees_and_coupon += o->order_discount > 0 && o->cod_fee > 0;
        for (size_t l = 0; l < o->nlines; l++) nosku += o->lines[l].sku[0] == '\0';
        model_order_free(o);
    }
    /* the generator's variety reached the mapper (seed 11, 60 orders) */
    assert_true(coupons > 0);
    assert_true(cods > 0);
    assert_true(nosku > 0);
    assert_true(fees_and_coupon > 0);

    /* A status change is seen on the next fetch. */
    char path[128];
    int64_t first = 0;
    assert_int_equal(jv_get_id(json_array_get(orders, 0), "id", &first, NULL), 0);
    tt_resp_release(&r);
    snprintf(path, sizeof path, "/_sim/zid/orders/%lld/status", (long long)first);
    tt_http("POST", tt_url(e.s, "%s", path), NULL, "{\"status\":\"cancelled\"}", &r);
    assert_int_equal(r.status, 200);
    tt_resp_release(&r);
    struct model_order *o;
    struct th_err err = {0};
    assert_int_equal(fetch(hc, &e, e.bearer, e.manager, first, &o, &err), 0);
    assert_int_equal(o->status, MODEL_STATUS_CANCELLED);
    model_order_free(o);

    /* Not found; refused tokens; a missing manager token. */
    assert_int_equal(fetch(hc, &e, e.bearer, e.manager, 1, &o, &err), TH_ENOTFOUND);
    assert_non_null(strstr(err.msg, "no order 1 "));
    assert_int_equal(fetch(hc, &e, "nope", e.manager, first, &o, &err), TH_EAUTH);
    assert_non_null(strstr(err.msg, "HTTP 401"));
    assert_int_equal(fetch(hc, &e, e.bearer, "nope", first, &o, &err), TH_EAUTH);
    assert_int_equal(fetch(hc, &e, e.bearer, NULL, first, &o, &err), TH_ECONFIG);
    assert_non_null(strstr(err.msg, "manager"));
    struct platform_conn noapi = {.store_id = STORE, .access_token = "a", .manager_token = "m"};
    assert_int_equal(P->order_fetch(hc, &noapi, first, &o, &err), TH_ECONFIG);
    assert_null(o);
    httpc_free(hc);
    tt_sim_stop(e.s);
}

/* The exact request order_fetch sends, and httpc's classes kept for other
 * statuses: a receiver stands in for Zid. */
static void test_fetch_request_shape(void **state)
{
    static const char *names[] = {"Authorization", "X-Manager-Token", "Accept",
                                  "Accept-Language", NULL};
    struct tt_receiver *rcv = tt_receiver_start(404, 0, names);
    char api[256];
    snprintf(api, sizeof api, "%s/v1", tt_receiver_url(rcv));
    struct platform_conn c = {.store_id = STORE, .api_base = api, .access_token = "BEARER",
                              .manager_token = "MGR"};
    struct httpc *hc = httpc_new(NULL);
    struct model_order *o = NULL;
    struct th_err err = {0};
    assert_int_equal(P->order_fetch(hc, &c, 39018292, &o, &err), TH_ENOTFOUND);
    assert_int_equal(tt_receiver_count(rcv), 1);
    struct tt_received x;
    assert_int_equal(tt_receiver_get(rcv, 0, &x), 0);
    assert_string_equal(x.method, "GET");
    assert_string_equal(x.path, "/v1/managers/store/orders/39018292/view");
    assert_string_equal(x.headers[0], "Bearer BEARER");
    assert_string_equal(x.headers[1], "MGR");
    assert_string_equal(x.headers[2], "application/json");
    assert_string_equal(x.headers[3], "ar");
    tt_received_release(&x);
    static const struct {
        int status, want;
    } classes[] = {{401, TH_EAUTH}, {403, TH_EAUTH}, {503, TH_ETEMP}, {500, TH_ETEMP},
                   {422, TH_EPERM}, {429, TH_ETEMP}};
    for (size_t i = 0; i < sizeof classes / sizeof classes[0]; i++) {
        tt_receiver_set(rcv, classes[i].status, 0);
        int rc = P->order_fetch(hc, &c, 7, &o, &err);
        if (rc != classes[i].want)
            fail_msg("HTTP %d: want %s got %s", classes[i].status,
                     th_err_name(classes[i].want), th_err_name(rc));
    }
    httpc_free(hc);
    tt_receiver_stop(rcv);
}

static void test_token_refresh(void **state)
{
    struct emu e;
    emu_start(&e, (const char *[]){"rate-limit", "0", NULL});
    struct tt_resp r;
    tt_http("POST", tt_url(e.s, "/_sim/zid/generate"), NULL, "{\"store_id\":251073,\"count\":1}",
            &r);
    int64_t id = 0;
    assert_int_equal(jv_to_id(json_array_get(json_object_get(r.json, "orders"), 0), &id, NULL),
                     0);
    tt_resp_release(&r);

    struct platform_app app = {.client_id = "demo-client",
                               .client_secret = "demo-secret",
                               .token_url = e.token_url,
                               .redirect_uri = "https://tarheel.example/zid/callback"};
    struct httpc *hc = httpc_new(NULL);
    struct platform_tokens t;
    struct th_err err = {0};
    time_t before = time(NULL);
    int rc = P->token_refresh(hc, &app, e.refresh, &t, &err);
    if (rc) fail_msg("refresh: %s %s", th_err_name(rc), err.msg);
    assert_true(t.access_token[0] && t.manager_token[0] && t.refresh_token[0]);
    assert_string_not_equal(t.access_token, e.bearer);
    assert_string_not_equal(t.manager_token, e.manager);
    assert_string_not_equal(t.refresh_token, e.refresh);
    assert_true(t.expires_at >= before + 31536000 && t.expires_at <= time(NULL) + 31536000);

    /* The new pair works (Bearer = authorization, X-Manager-Token =
     * access_token); the old one was revoked by the refresh. */
    struct model_order *o;
    assert_int_equal(fetch(hc, &e, t.access_token, t.manager_token, id, &o, &err), 0);
    model_order_free(o);
    assert_int_equal(fetch(hc, &e, e.bearer, e.manager, id, &o, &err), TH_EAUTH);

    /* A refresh token is single use: reusing it means reinstalling. */
    struct platform_tokens t2;
    assert_int_equal(P->token_refresh(hc, &app, e.refresh, &t2, &err), TH_EAUTH);
    assert_non_null(strstr(err.msg, "reinstall"));
    assert_non_null(strstr(err.msg, "The refresh token is invalid."));
    assert_string_equal(t2.access_token, "");

    /* The new refresh token still works once. */
    assert_int_equal(P->token_refresh(hc, &app, t.refresh_token, &t2, &err), 0);

    /* The app's own credentials refused; nothing configured; no token. */
    struct platform_app bad = app;
    bad.client_secret = "wrong";
    assert_int_equal(P->token_refresh(hc, &bad, t2.refresh_token, &t, &err), TH_ECONFIG);
    assert_non_null(strstr(err.msg, "invalid_client"));
    bad = app;
    bad.client_id = NULL;
    assert_int_equal(P->token_refresh(hc, &bad, t2.refresh_token, &t, &err), TH_ECONFIG);
    assert_int_equal(P->token_refresh(hc, &app, "", &t, &err), TH_EAUTH);
    /* After all that, t2's refresh token was not spent by the refused calls. */
    assert_int_equal(P->token_refresh(hc, &app, t2.refresh_token, &t, &err), 0);
    httpc_free(hc);
    tt_sim_stop(e.s);
}

/* What Zid's emulator really delivers: verified with the store's Basic
 * credential, parsed, and mapped to the same order the API serves. */
static void test_emulator_delivery(void **state)
{
    static const char *names[] = {"Authorization", NULL};
    struct tt_receiver *rcv = tt_receiver_start(200, 0, names);
    struct emu e;
    emu_start(&e, (const char *[]){"rate-limit", "0", NULL});
    char *hdr_b = xasprintf("Authorization: Bearer %s", e.bearer);
    char *hdr_m = xasprintf("X-Manager-Token: %s", e.manager);
    const char *h[] = {hdr_b, hdr_m, "Content-Type: application/json", NULL};
    char *sub = xasprintf("{\"event\":\"order.create\",\"target_url\":\"%s/zid/order-create\","
                          "\"username\":\"tarheel\",\"password\":\"s3cret\"}",
                          tt_receiver_url(rcv));
    struct tt_resp r;
    tt_http("POST", tt_url(e.s, "/v1/managers/webhooks"), h, sub, &r);
    assert_int_equal(r.status, 201);
    tt_resp_release(&r);
    tt_http("POST", tt_url(e.s, "/_sim/zid/generate"), NULL, "{\"store_id\":251073,\"count\":1}",
            &r);
    int64_t id = 0;
    assert_int_equal(jv_to_id(json_array_get(json_object_get(r.json, "orders"), 0), &id, NULL),
                     0);
    tt_resp_release(&r);
    assert_int_equal(tt_receiver_wait(rcv, 1, 5000), 1);
    struct tt_received x;
    assert_int_equal(tt_receiver_get(rcv, 0, &x), 0);

    struct hdrs hd = {{"Authorization"}, {x.headers[0]}};
    struct platform_auth good = {"basic", "tarheel:s3cret"}, wrong = {"basic", "tarheel:other"};
    struct th_err err = {0};
    assert_int_equal(P->verify(&good, get_header, &hd, x.body, x.body_len, &err), 0);
    assert_int_equal(P->verify(&wrong, get_header, &hd, x.body, x.body_len, &err), TH_EAUTH);
    struct platform_event ev;
    assert_int_equal(P->parse_event(x.body, x.body_len, &ev, &err), 0);
    assert_int_equal(ev.kind, PLATFORM_EV_ORDER);
    assert_int_equal(ev.order_id, id);
    assert_int_equal(ev.store_id, STORE);
    struct model_order *hook = NULL, *api = NULL;
    assert_int_equal(P->order_map(x.body, x.body_len, STORE, &hook, &err), 0);
    struct httpc *hc = httpc_new(NULL);
    assert_int_equal(fetch(hc, &e, e.bearer, e.manager, id, &api, &err), 0);
    assert_int_equal(hook->total, api->total);
    assert_int_equal(hook->customer.platform_id, api->customer.platform_id);
    assert_string_equal(hook->customer.phone, api->customer.phone);
    assert_int_equal(hook->nlines, api->nlines);
    model_order_free(hook);
    model_order_free(api);
    httpc_free(hc);
    tt_received_release(&x);
    free(hdr_b);
    free(hdr_m);
    free(sub);
    tt_sim_stop(e.s);
    tt_receiver_stop(rcv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_phone_normalize),
        cmocka_unit_test(test_status_and_kind_maps),
        cmocka_unit_test(test_registered),
        cmocka_unit_test(test_verify),
        cmocka_unit_test(test_parse_order_event),
        cmocka_unit_test(test_parse_app_events),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_map_view_coupon),
        cmocka_unit_test(test_map_view_cod),
        cmocka_unit_test(test_map_webhook_body),
        cmocka_unit_test(test_map_no_sku),
        cmocka_unit_test(test_map_captured_composite),
        cmocka_unit_test(test_map_variants),
        cmocka_unit_test(test_map_rejects),
        cmocka_unit_test(test_map_limits),
        cmocka_unit_test(test_fetch_generated_orders),
        cmocka_unit_test(test_fetch_request_shape),
        cmocka_unit_test(test_token_refresh),
        cmocka_unit_test(test_emulator_delivery),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
