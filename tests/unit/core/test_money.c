/* Tests for src/core/money.c: decimal text ↔ fixed point, exact rounding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/money.h"

static void test_parse_table(void **state)
{
    static const struct {
        const char *in;
        int scale;
        int64_t want;
        int rc;
    } cases[] = {
        {"39.46", 2, 3946, 0},
        {"1000.00", 2, 100000, 0},
        {"5.00", 2, 500, 0},
        {"302.5", 2, 30250, 0},
        {"0", 2, 0, 0},
        {"-0.05", 2, -5, 0},
        {"+12", 2, 1200, 0},
        {"  7.1 ", 2, 710, 0},
        {".5", 2, 50, 0},
        {"3.375", 2, 338, 0},    /* half away from zero */
        {"-3.375", 2, -338, 0},
        {"3.374999", 2, 337, 0},
        {"3.375", 3, 3375, 0},
        {"0.005", 2, 1, 0},
        {"0.0049", 2, 0, 0},
        {"1e2", 2, 10000, 0},
        {"1.5E-1", 2, 15, 0},
        {"5e-3", 2, 1, 0},
        {"1e-5", 2, 0, 0},
        {"2.0", 0, 2, 0},
        {"000123.4500", 2, 12345, 0},
        {"15.00", 2, 1500, 0},
        {"9999999999999999.99", 2, 999999999999999999LL, 0},
        {"10000000000000000.01", 2, 0, TH_EMONEY},
        {"1e30", 2, 0, TH_EMONEY},
        {"", 2, 0, TH_EPARSE},
        {"abc", 2, 0, TH_EPARSE},
        {"1.2.3", 2, 0, TH_EPARSE},
        {"--1", 2, 0, TH_EPARSE},
        {"1e", 2, 0, TH_EPARSE},
        {"12SAR", 2, 0, TH_EPARSE},
        {".", 2, 0, TH_EPARSE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t v = -777;
        struct th_err err = {0};
        int rc = money_parse_dec(cases[i].in, cases[i].scale, &v, &err);
        if (rc != cases[i].rc || (rc == 0 && v != cases[i].want))
            fail_msg("'%s' at scale %d: want rc %d value %lld, got rc %d value %lld (%s)",
                     cases[i].in, cases[i].scale, cases[i].rc, (long long)cases[i].want, rc,
                     (long long)v, err.msg);
        if (rc) assert_non_null(strstr(err.msg, cases[i].in));
    }
    int64_t v;
    assert_int_equal(money_parse(NULL, &v, NULL), TH_EPARSE);
    assert_int_equal(money_parse_dec("1", 7, &v, NULL), TH_EINVAL);
}

static void test_format_table(void **state)
{
    static const struct {
        int64_t v;
        int scale, min;
        const char *want;
    } cases[] = {
        {3946, 2, 2, "39.46"}, {85000, 2, 1, "850.0"}, {3375, 3, 1, "3.375"},
        {-5, 2, 2, "-0.05"},   {0, 2, 1, "0.0"},       {100, 2, 0, "1"},
        {123450, 2, 1, "1234.5"}, {7, 0, 0, "7"},      {INT64_C(999999999999999999), 2, 2, "9999999999999999.99"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[MONEY_FMT_MAX];
        assert_string_equal(money_format_dec(cases[i].v, cases[i].scale, cases[i].min, out,
                                             sizeof out),
                            cases[i].want);
    }
    char out[MONEY_FMT_MAX];
    assert_string_equal(money_format(19600, out, sizeof out), "196.00");
}

static void test_round_trip(void **state)
{
    for (int64_t v = -100000; v <= 100000; v += 37) {
        char out[MONEY_FMT_MAX];
        int64_t back;
        money_format(v, out, sizeof out);
        assert_int_equal(money_parse(out, &back, NULL), 0);
        assert_int_equal(back, v);
    }
}

static void test_muldiv_and_rescale(void **state)
{
    static const struct {
        int64_t a, b, d, want;
    } cases[] = {
        {20000, 1500, 10000, 3000},  /* 15 % of 200.00 */
        {3333, 1500, 10000, 500},    /* 499.95 → 500 */
        {3332, 1500, 10000, 500},    /* 499.8 → 500 */
        {3330, 1500, 10000, 500},    /* 499.5 → 500 (half up) */
        {-3330, 1500, 10000, -500},  /* half away from zero */
        {1, 1, 3, 0},
        {2, 1, 3, 1},
        {INT64_C(4000000000000000000), 2, 4, INT64_C(2000000000000000000)}, /* 128-bit product */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t v;
        assert_int_equal(money_muldiv(cases[i].a, cases[i].b, cases[i].d, &v), 0);
        assert_int_equal(v, cases[i].want);
    }
    int64_t v;
    assert_int_equal(money_muldiv(1, 1, 0, &v), TH_EINVAL);
    assert_int_equal(money_muldiv(INT64_MAX, 4, 1, &v), TH_EMONEY);
    assert_int_equal(money_rescale(3375, 3, 2, &v), 0);
    assert_int_equal(v, 338);
    assert_int_equal(money_rescale(338, 2, 3, &v), 0);
    assert_int_equal(v, 3380);
    assert_int_equal(money_rescale(INT64_MAX / 5, 0, 1, &v), TH_EMONEY);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table),
        cmocka_unit_test(test_format_table),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_muldiv_and_rescale),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
