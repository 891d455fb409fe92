/* Tests for src/core/jv.c on the quirks the platforms really send. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/jv.h"
#include "core/xmalloc.h"

static json_t *parse(const char *s)
{
    struct th_err err;
    json_t *v = jv_parse(s, strlen(s), JV_MAX_DEPTH, &err);
    if (!v) fail_msg("parse '%s': %s", s, err.msg);
    return v;
}

static void test_ids(void **state)
{
    json_t *o = parse("{\"a\":3155923424,\"b\":\"2107468057\",\"c\":3155923424.0,\"d\":\"12x\","
                      "\"e\":null,\"f\":true,\"g\":1.5,\"h\":\"-7\",\"i\":\"99999999999999999999\"}");
    int64_t v;
    struct th_err err;
    assert_int_equal(jv_get_id(o, "a", &v, &err), 0);
    assert_int_equal(v, 3155923424LL);
    assert_int_equal(jv_get_id(o, "b", &v, &err), 0);
    assert_int_equal(v, 2107468057LL);
    assert_int_equal(jv_get_id(o, "c", &v, &err), 0);
    assert_int_equal(v, 3155923424LL);
    assert_int_equal(jv_get_id(o, "h", &v, &err), 0);
    assert_int_equal(v, -7);
    assert_int_equal(jv_get_id(o, "d", &v, &err), TH_EPARSE);
    assert_non_null(strstr(err.msg, "\"d\""));
    assert_int_equal(jv_get_id(o, "e", &v, &err), TH_ENOTFOUND);
    assert_int_equal(jv_get_id(o, "missing", &v, &err), TH_ENOTFOUND);
    assert_int_equal(jv_get_id(o, "f", &v, &err), TH_EPARSE);
    assert_int_equal(jv_get_id(o, "g", &v, &err), TH_EPARSE);
    assert_int_equal(jv_get_id(o, "i", &v, &err), TH_EPARSE);
    assert_int_equal(jv_get_id(NULL, "a", &v, &err), TH_ENOTFOUND);
    json_decref(o);
}

static void test_money_forms(void **state)
{
    static const struct {
        const char *json;
        int scale;
        int64_t want;
        int rc;
    } cases[] = {
        {"{\"v\":39.46}", 2, 3946, 0},
        {"{\"v\":302.5}", 2, 30250, 0},
        {"{\"v\":0}", 2, 0, 0},
        {"{\"v\":186}", 2, 18600, 0},
        {"{\"v\":\"1000.00\"}", 2, 100000, 0},
        {"{\"v\":\"5.00\"}", 2, 500, 0},
        {"{\"v\":{\"amount\":39.46,\"currency\":\"SAR\"}}", 2, 3946, 0},
        {"{\"v\":{\"amount\":\"127.00\"}}", 2, 12700, 0},
        {"{\"v\":\"3.375\"}", 3, 3375, 0},
        {"{\"v\":0.1}", 2, 10, 0},
        {"{\"v\":1135.34}", 2, 113534, 0},
        {"{\"v\":0.07}", 2, 7, 0},
        {"{\"v\":\"abc\"}", 2, 0, TH_EPARSE},
        {"{\"v\":[1]}", 2, 0, TH_EPARSE},
        {"{\"v\":{\"currency\":\"SAR\"}}", 2, 0, TH_ENOTFOUND},
        {"{\"v\":null}", 2, 0, TH_ENOTFOUND},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *o = parse(cases[i].json);
        int64_t v = -1;
        int rc = jv_get_dec(o, "v", cases[i].scale, &v, NULL);
        if (rc != cases[i].rc || (rc == 0 && v != cases[i].want))
            fail_msg("%s: want %d/%lld got %d/%lld", cases[i].json, cases[i].rc,
                     (long long)cases[i].want, rc, (long long)v);
        json_decref(o);
    }
    /* Every amount with two decimals up to 10 000.00 survives the double. */
    for (int64_t h = 0; h <= 1000000; h += 7) {
        json_t *n = jv_money_number(h);
        int64_t back;
        assert_int_equal(jv_to_dec(n, 2, &back, NULL), 0);
        assert_int_equal(back, h);
        json_decref(n);
    }
}

static void test_bools_and_text(void **state)
{
    json_t *o = parse("{\"a\":true,\"b\":0,\"c\":\"1\",\"d\":\"false\",\"e\":\"yes\",\"m\":501806978,"
                      "\"s\":\"+966\"}");
    int b;
    assert_int_equal(jv_get_bool(o, "a", &b, NULL), 0);
    assert_int_equal(b, 1);
    assert_int_equal(jv_get_bool(o, "b", &b, NULL), 0);
    assert_int_equal(b, 0);
    assert_int_equal(jv_get_bool(o, "c", &b, NULL), 0);
    assert_int_equal(b, 1);
    assert_int_equal(jv_get_bool(o, "d", &b, NULL), 0);
    assert_int_equal(b, 0);
    assert_int_equal(jv_get_bool(o, "e", &b, NULL), TH_EPARSE);
    char buf[32];
    assert_string_equal(jv_get_text(o, "m", buf, sizeof buf), "501806978");
    assert_string_equal(jv_get_text(o, "s", buf, sizeof buf), "+966");
    assert_null(jv_get_text(o, "a", buf, sizeof buf));
    assert_null(jv_get_str(o, "m"));
    json_decref(o);
}

static void test_path(void **state)
{
    json_t *o = parse("{\"data\":{\"items\":[{\"sku\":\"A\"},{\"sku\":\"B\"}],\"c\":{\"n\":1}}}");
    assert_string_equal(json_string_value(jv_path(o, "data.items.1.sku")), "B");
    assert_int_equal(json_integer_value(jv_path(o, "data.c.n")), 1);
    assert_null(jv_path(o, "data.items.5.sku"));
    assert_null(jv_path(o, "data.nope.x"));
    json_decref(o);
}

static void test_depth_limit(void **state)
{
    /* limit - 1, limit, limit + 1; brackets inside strings do not count */
    for (int depth = JV_MAX_DEPTH - 1; depth <= JV_MAX_DEPTH + 1; depth++) {
        char *s = xmalloc((size_t)depth * 2 + 16);
        int n = 0;
        for (int i = 0; i < depth; i++) s[n++] = '[';
        for (int i = 0; i < depth; i++) s[n++] = ']';
        s[n] = '\0';
        struct th_err err;
        json_t *v = jv_parse(s, (size_t)n, JV_MAX_DEPTH, &err);
        if (depth <= JV_MAX_DEPTH) assert_non_null(v);
        else {
            assert_null(v);
            assert_int_equal(err.code, TH_EDEPTH);
        }
        json_decref(v);
        free(s);
    }
    const char *in_str = "{\"s\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"[[[\"}";
    json_t *v = jv_parse(in_str, strlen(in_str), 2, NULL);
    assert_non_null(v);
    json_decref(v);
    struct th_err err;
    assert_null(jv_parse("{\"a\":", 5, JV_MAX_DEPTH, &err));
    assert_int_equal(err.code, TH_EPARSE);
    assert_non_null(strstr(err.msg, "line 1"));
}

static void test_builders(void **state)
{
    json_t *a = json_pack("{s:o,s:o,s:o,s:o}", "n", jv_money_number(3946), "w",
                          jv_money_number(18600), "s", jv_money_string(-5), "d",
                          jv_dec_string(85000, 2, 1));
    char *t = jv_dump(a);
    assert_string_equal(t, "{\"n\":39.46,\"w\":186,\"s\":\"-0.05\",\"d\":\"850.0\"}");
    free(t);
    json_decref(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids),         cmocka_unit_test(test_money_forms),
        cmocka_unit_test(test_bools_and_text), cmocka_unit_test(test_path),
        cmocka_unit_test(test_depth_limit), cmocka_unit_test(test_builders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
