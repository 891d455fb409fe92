/*
 * Tests for src/http/session.c: session ids and CSRF tokens, idle and
 * absolute expiry, logout, eviction when full, and the failed-login limit,
 * all on a clock the test drives.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/session.h"

#define T0 1700000000

static void test_start_check_end(void **state)
{
    struct sessions *t = sessions_new();
    char id[SESSION_TOKEN_LEN], csrf[SESSION_TOKEN_LEN], id2[SESSION_TOKEN_LEN],
        csrf2[SESSION_TOKEN_LEN];
    char user[SESSION_USER_MAX], got[SESSION_TOKEN_LEN];
    sessions_start(t, "admin", T0, id, csrf);
    sessions_start(t, "sara", T0, id2, csrf2);
    assert_int_equal(strlen(id), 64);
    assert_int_equal(strspn(id, "0123456789abcdef"), 64);
    assert_string_not_equal(id, id2);
    assert_string_not_equal(id, csrf);
    assert_int_equal(sessions_check(t, id, T0 + 1, user, got), 1);
    assert_string_equal(user, "admin");
    assert_string_equal(got, csrf);
    assert_int_equal(sessions_check(t, id2, T0 + 1, user, NULL), 1);
    assert_string_equal(user, "sara");
    /* one character off, too short, NULL: no session */
    char bad[SESSION_TOKEN_LEN];
    memcpy(bad, id, sizeof bad);
    bad[10] = bad[10] == 'a' ? 'b' : 'a';
    assert_int_equal(sessions_check(t, bad, T0 + 1, user, NULL), 0);
    assert_int_equal(sessions_check(t, "abc", T0 + 1, user, NULL), 0);
    assert_int_equal(sessions_check(t, NULL, T0 + 1, user, NULL), 0);
    assert_int_equal(sessions_count(t, T0 + 1), 2);
    sessions_end(t, id);
    assert_int_equal(sessions_check(t, id, T0 + 2, NULL, NULL), 0);
    assert_int_equal(sessions_check(t, id2, T0 + 2, NULL, NULL), 1);
    assert_int_equal(sessions_count(t, T0 + 2), 1);
    sessions_free(t);
}

static void test_expiry(void **state)
{
    struct sessions *t = sessions_new();
    char id[SESSION_TOKEN_LEN], csrf[SESSION_TOKEN_LEN];
    /* idle: each request restarts the idle time */
    sessions_start(t, "admin", T0, id, csrf);
    assert_int_equal(sessions_check(t, id, T0 + SESSION_IDLE_S - 1, NULL, NULL), 1);
    assert_int_equal(sessions_check(t, id, T0 + 2 * SESSION_IDLE_S - 2, NULL, NULL), 1);
    assert_int_equal(sessions_check(t, id, T0 + 3 * SESSION_IDLE_S - 2, NULL, NULL), 0);
    assert_int_equal(sessions_check(t, id, T0 + 2 * SESSION_IDLE_S - 2, NULL, NULL), 0); /* gone */
    /* absolute: busy or not, it ends SESSION_MAX_S after the login */
    sessions_start(t, "admin", T0, id, csrf);
    int64_t now = T0;
    while (now + SESSION_IDLE_S / 2 < T0 + SESSION_MAX_S) {
        now += SESSION_IDLE_S / 2;
        assert_int_equal(sessions_check(t, id, now, NULL, NULL), 1);
    }
    assert_int_equal(sessions_check(t, id, T0 + SESSION_MAX_S, NULL, NULL), 0);
    sessions_free(t);
}

static void test_full_table_ends_the_least_recently_used(void **state)
{
    struct sessions *t = sessions_new();
    char first[SESSION_TOKEN_LEN], id[SESSION_TOKEN_LEN], csrf[SESSION_TOKEN_LEN];
    sessions_start(t, "u0", T0, first, csrf);
    char second[SESSION_TOKEN_LEN];
    sessions_start(t, "u1", T0 + 1, second, csrf);
    assert_int_equal(sessions_check(t, first, T0 + 2, NULL, NULL), 1); /* first used again */
    for (int i = 2; i < SESSION_MAX; i++)
        sessions_start(t, "u", T0 + 3, id, csrf);
    assert_int_equal(sessions_count(t, T0 + 3), SESSION_MAX);
    sessions_start(t, "late", T0 + 4, id, csrf);
    assert_int_equal(sessions_count(t, T0 + 4), SESSION_MAX);
    assert_int_equal(sessions_check(t, second, T0 + 4, NULL, NULL), 0); /* least recently used */
    assert_int_equal(sessions_check(t, first, T0 + 4, NULL, NULL), 1);
    assert_int_equal(sessions_check(t, id, T0 + 4, NULL, NULL), 1);
    sessions_free(t);
}

static void test_login_limit(void **state)
{
    struct sessions *t = sessions_new();
    for (int i = 0; i < SESSION_FAIL_MAX; i++) {
        assert_int_equal(sessions_login_wait(t, "peer:1.2.3.4", T0 + i), 0);
        sessions_login_failed(t, "peer:1.2.3.4", T0 + i);
    }
    assert_int_equal(sessions_login_wait(t, "peer:1.2.3.4", T0 + 10), SESSION_FAIL_WINDOW_S - 10);
    assert_int_equal(sessions_login_wait(t, "peer:5.6.7.8", T0 + 10), 0); /* per key */
    assert_int_equal(sessions_login_wait(t, "peer:1.2.3.4", T0 + SESSION_FAIL_WINDOW_S), 0);
    /* the window restarted: 4 failures are allowed, a success forgets them */
    for (int i = 0; i < SESSION_FAIL_MAX - 1; i++)
        sessions_login_failed(t, "user:admin", T0);
    assert_int_equal(sessions_login_wait(t, "user:admin", T0 + 1), 0);
    sessions_login_ok(t, "user:admin");
    sessions_login_failed(t, "user:admin", T0 + 2);
    assert_int_equal(sessions_login_wait(t, "user:admin", T0 + 3), 0);
    sessions_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_start_check_end),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_full_table_ends_the_least_recently_used),
        cmocka_unit_test(test_login_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
