/*
 * Tests for core/err: the code table (unique, negative, named, with an
 * operator remedy), th_err_set's return value and truncation, NULL safety.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/err.h"

static void test_table_is_complete_and_unique(void **state)
{
    (void)state;
    size_t n = th_err_count();
    assert_int_equal(n, 19);
    for (size_t i = 0; i < n; i++) {
        int c = th_err_at(i);
        assert_true(c < 0);
        assert_int_equal(c, -(int)(i + 1)); /* numbers are stable: 1..n in order */
        const char *name = th_err_name(c);
        assert_true(strncmp(name, "TH_E", 4) == 0);
        assert_true(strlen(th_err_what(c)) > 10);
        assert_true(strlen(th_err_todo(c)) > 10);
        for (size_t j = 0; j < i; j++) {
            assert_int_not_equal(th_err_at(j), c);
            assert_string_not_equal(th_err_name(th_err_at(j)), name);
        }
    }
    assert_string_equal(th_err_name(TH_EPARSE), "TH_EPARSE");
    assert_string_equal(th_err_name(TH_EDISKFULL), "TH_EDISKFULL");
    assert_string_equal(th_err_name(TH_ELISTEN), "TH_ELISTEN");
}

static void test_unknown_codes_never_null(void **state)
{
    (void)state;
    assert_string_equal(th_err_name(-999), "TH_E?");
    assert_non_null(th_err_what(12345));
    assert_non_null(th_err_todo(0));
}

static void test_set_returns_code_and_formats(void **state)
{
    (void)state;
    struct th_err e;
    assert_int_equal(th_err_set(&e, TH_ENOTFOUND, "order %d of %s", 7, "store"), TH_ENOTFOUND);
    assert_int_equal(e.code, TH_ENOTFOUND);
    assert_string_equal(e.msg, "order 7 of store");
    assert_int_equal(th_err_set(NULL, TH_EIO, "ignored %s", "x"), TH_EIO);
    th_err_clear(&e);
    assert_int_equal(e.code, 0);
    assert_string_equal(e.msg, "");
    th_err_clear(NULL);
}

static void test_long_messages_are_truncated_safely(void **state)
{
    (void)state;
    char big[2000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    struct th_err e;
    th_err_set(&e, TH_ETOOBIG, "%s", big);
    assert_int_equal(strlen(e.msg), TH_ERR_MSG_MAX - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_is_complete_and_unique),
        cmocka_unit_test(test_unknown_codes_never_null),
        cmocka_unit_test(test_set_returns_code_and_formats),
        cmocka_unit_test(test_long_messages_are_truncated_safely),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
