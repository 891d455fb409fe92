/* Tests for src/core/log.c: line format, level filter, quoting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/log.h"

static char *capture(enum log_level min, void (*emit)(void))
{
    static char out[4096];
    FILE *f = tmpfile();
    assert_non_null(f);
    log_set_stream(f);
    log_set_level(min);
    emit();
    log_set_stream(NULL);
    rewind(f);
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = '\0';
    fclose(f);
    return out;
}

static void emit_two(void)
{
    log_info("webhook_accepted", "store=%d order=%s", 42, "1001");
    log_debug("noise", "x=1");
}

static void test_format(void **state)
{
    char *s = capture(LOG_INFO, emit_two);
    /* one line, the debug line filtered out */
    assert_int_equal(strchr(s, '\n') - s + 1, (long)strlen(s));
    assert_memory_equal(s, "ts=", 3);
    assert_non_null(strstr(s, "Z level=info event=webhook_accepted store=42 order=1001\n"));
    assert_null(strstr(s, "noise"));
}

static void test_level_debug_shows_all(void **state)
{
    char *s = capture(LOG_DEBUG, emit_two);
    assert_non_null(strstr(s, "event=noise x=1"));
    s = capture(LOG_OFF, emit_two);
    assert_string_equal(s, "");
}

static void emit_long(void)
{
    char big[5000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    log_error("big", "v=%s", big);
}

static void test_long_line_truncated_not_split(void **state)
{
    char *s = capture(LOG_INFO, emit_long);
    assert_int_equal(strchr(s, '\n') - s + 1, (long)strlen(s));
    assert_true(strlen(s) <= 2048);
}

static void test_quote(void **state)
{
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"plain", "plain"},
        {"two words", "\"two words\""},
        {"say \"hi\"", "\"say \\\"hi\\\"\""},
        {"a=b", "\"a=b\""},
        {"", "\"\""},
        {"line\nbreak", "\"line break\""},
        {"بيتزا", "بيتزا"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[64];
        assert_string_equal(log_quote(cases[i].in, out, sizeof out), cases[i].want);
    }
    char tiny[6];
    log_quote("a long value with spaces", tiny, sizeof tiny);
    assert_true(strlen(tiny) < sizeof tiny);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_level_debug_shows_all),
        cmocka_unit_test(test_long_line_truncated_not_split),
        cmocka_unit_test(test_quote),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
