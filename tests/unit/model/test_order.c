/* Tests for src/model/order.c: the arithmetic every canonical order obeys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/xmalloc.h"
#include "model/order.h"

/* Builds an order: two lines (2 × 100.00 with 10.00 off; 1 × 33.33 at 0 %),
 * shipping 20.00, COD 5.00, coupon 15.00, VAT 15 % on the taxable part. */
static struct model_order *sample(void)
{
    struct model_order *o = model_order_new();
    o->platform = MODEL_PLATFORM_SALLA;
    o->number = xstrdup("1001");
    struct model_line *l = model_order_add_line(o);
    l->name = xstrdup("قميص");
    l->sku = xstrdup("SKU-1");
    l->quantity = 2;
    l->unit_price = 10000;
    l->discount = 1000;
    l->tax_rate_bp = 1500;
    l->tax = 2850;
    l = model_order_add_line(o);
    l->name = xstrdup("كتاب");
    l->quantity = 1;
    l->unit_price = 3333;
    o->shipping = 2000;
    o->cod_fee = 500;
    o->order_discount = 1500;
    o->tax = 2850 + 300 + 75 - 225; /* lines + shipping + cod − coupon share, at 15 % */
    o->total = 19000 + 3333 + 2000 + 500 - 1500 + o->tax;
    return o;
}

static void test_consistent_order_passes(void **state)
{
    struct model_order *o = sample();
    struct th_err err;
    assert_int_equal(model_order_check(o, &err), 0);
    assert_int_equal(model_order_lines_net(o), 19000 + 3333);
    model_order_free(o);
}

/* Each case breaks one thing; the error names both figures where relevant. */
static void test_inconsistent_orders_fail(void **state)
{
    static const struct {
        const char *what;
        int field; /* which mutation */
        int64_t delta;
        int want;
        const char *in_msg;
    } cases[] = {
        {"total one halala high", 0, 1, TH_EMONEY, "difference 0.01"},
        {"total one halala low", 0, -1, TH_EMONEY, "difference -0.01"},
        {"tax off", 1, 5, TH_EMONEY, "add up to"},
        {"zero quantity", 2, -2, TH_EPARSE, "quantity 0"},
        {"discount above price", 3, 20000, TH_EMONEY, "exceeds its price"},
        {"negative shipping", 4, -5000, TH_EMONEY, "negative"},
        {"coupon above order", 5, 100000, TH_EMONEY, "exceeds the order"},
        {"tax rate above 100 %", 6, 9000, TH_EPARSE, "tax rate"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct model_order *o = sample();
        switch (cases[i].field) {
        case 0: o->total += cases[i].delta; break;
        case 1: o->tax += cases[i].delta; break;
        case 2: o->lines[0].quantity += cases[i].delta; break;
        case 3: o->lines[0].discount += cases[i].delta; break;
        case 4: o->shipping += cases[i].delta; break;
        case 5: o->order_discount += cases[i].delta; break;
        case 6: o->lines[0].tax_rate_bp += (int32_t)cases[i].delta; break;
        }
        struct th_err err = {0};
        int rc = model_order_check(o, &err);
        if (rc != cases[i].want || !strstr(err.msg, cases[i].in_msg))
            fail_msg("%s: want %d with '%s', got %d '%s'", cases[i].what, cases[i].want,
                     cases[i].in_msg, rc, err.msg);
        model_order_free(o);
    }
}

static void test_no_lines_fails(void **state)
{
    struct model_order *o = model_order_new();
    struct th_err err;
    assert_int_equal(model_order_check(o, &err), TH_EPARSE);
    assert_non_null(strstr(err.msg, "no items"));
    model_order_free(o);
}

static void test_line_limit(void **state)
{
    struct model_order *o = model_order_new();
    for (int i = 0; i < MODEL_MAX_LINES - 1; i++) assert_non_null(model_order_add_line(o));
    assert_non_null(model_order_add_line(o));  /* the limit itself */
    assert_null(model_order_add_line(o));      /* limit + 1 */
    assert_int_equal(o->nlines, MODEL_MAX_LINES);
    model_order_free(o);
    model_order_free(NULL);
}

static void test_names_round_trip(void **state)
{
    for (int s = MODEL_STATUS_OTHER; s <= MODEL_STATUS_REFUNDED; s++)
        assert_int_equal(model_status_from_name(model_status_name(s)), s);
    assert_int_equal(model_status_from_name("shipped"), -1);
    assert_string_equal(model_platform_name(MODEL_PLATFORM_ZID), "zid");
    assert_string_equal(model_platform_name(99), "unknown");
}

static void test_phone_forms(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want, *local;
    } cases[] = {
        {"0501234567", "+966501234567", "0501234567"},
        {"501234567", "+966501234567", "0501234567"},
        {"966501234567", "+966501234567", "0501234567"},
        {"+966501234567", "+966501234567", "0501234567"},
        {"00966 50 123 4567", "+966501234567", "0501234567"},
        {"+966-50-123-4567", "+966501234567", "0501234567"},
        {"+966 0501234567", "+966501234567", "0501234567"},
        {"+971501234567", "+971501234567", ""},   /* UAE: kept */
        {"0112345678", "0112345678", ""},         /* a landline: kept as given */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[32], local[32];
        assert_int_equal(model_phone_normalize(cases[i].in, out, sizeof out), 0);
        assert_string_equal(out, cases[i].want);
        model_phone_local_sa(out, local, sizeof local);
        assert_string_equal(local, cases[i].local);
    }
    char out[32] = "x";
    assert_int_equal(model_phone_normalize("n/a", out, sizeof out), -1);
    assert_string_equal(out, "");
    assert_int_equal(model_phone_normalize(NULL, out, sizeof out), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_consistent_order_passes),
        cmocka_unit_test(test_phone_forms),
        cmocka_unit_test(test_inconsistent_orders_fail),
        cmocka_unit_test(test_no_lines_fails),
        cmocka_unit_test(test_line_limit),
        cmocka_unit_test(test_names_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
