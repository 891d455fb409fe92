/*
 * Tests for core/buf: growth, the hard cap (TH_ETOOBIG leaves the buffer
 * unchanged), NUL termination, printf growth past the first guess, reset,
 * detach and release.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"

static void test_append_grows_and_terminates(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 0);
    assert_string_equal(buf_cstr(&b), "");
    for (int i = 0; i < 1000; i++) assert_int_equal(buf_puts(&b, "abc"), 0);
    assert_int_equal(b.len, 3000);
    assert_int_equal(b.data[3000], '\0');
    assert_int_equal(memcmp(b.data + 2997, "abc", 3), 0);
    assert_int_equal(buf_append(&b, "\0z", 2), 0); /* binary-safe */
    assert_int_equal(b.len, 3002);
    assert_int_equal(b.data[3001], 'z');
    buf_release(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(buf_cstr(&b), "");
}

static void test_cap_refuses_and_keeps_contents(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 10);
    assert_int_equal(buf_puts(&b, "12345678"), 0);
    assert_int_equal(buf_puts(&b, "abc"), TH_ETOOBIG);
    assert_string_equal(buf_cstr(&b), "12345678");
    assert_int_equal(buf_puts(&b, "ab"), 0); /* exactly at the cap */
    assert_int_equal(b.len, 10);
    assert_int_equal(buf_printf(&b, "%d", 1), TH_ETOOBIG);
    assert_string_equal(buf_cstr(&b), "12345678ab");
    buf_release(&b);
}

static void test_printf_longer_than_first_guess(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 0);
    char big[5000];
    memset(big, 'q', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(buf_printf(&b, "<%s|%d>", big, 42), 0);
    assert_int_equal(b.len, 4999 + 5);
    assert_int_equal(strcmp(b.data + b.len - 4, "|42>"), 0);
    buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(buf_cstr(&b), "");
    assert_int_equal(buf_printf(&b, "%s", "again"), 0);
    size_t n = 0;
    char *d = buf_detach(&b, &n);
    assert_int_equal(n, 5);
    assert_string_equal(d, "again");
    free(d);
    assert_int_equal(b.len, 0);
    assert_string_equal(buf_cstr(&b), "");
    buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_grows_and_terminates),
        cmocka_unit_test(test_cap_refuses_and_keeps_contents),
        cmocka_unit_test(test_printf_longer_than_first_guess),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
