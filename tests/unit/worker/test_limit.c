/*
 * Tests for worker/limit: per-store and per-account caps, pauses, an
 * account change moving its running jobs, and the account key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "worker/limit.h"

static int busy_has(struct limit *l, int64_t now, int64_t conn)
{
    int64_t out[16];
    limit_lock(l);
    size_t n = limit_busy(l, now, out, 16);
    limit_unlock(l);
    for (size_t i = 0; i < n; i++)
        if (out[i] == conn) return 1;
    return 0;
}

static void enter(struct limit *l, int64_t conn)
{
    limit_lock(l);
    limit_enter(l, conn);
    limit_unlock(l);
}

static void test_per_store_cap(void **state)
{
    (void)state;
    struct limit *l = limit_new(2, 10, -1);
    limit_lock(l);
    limit_learn(l, 1, 111);
    limit_unlock(l);
    enter(l, 1);
    assert_false(busy_has(l, 0, 1));
    enter(l, 1);
    assert_true(busy_has(l, 0, 1));
    limit_leave(l, 1);
    assert_false(busy_has(l, 0, 1));
    limit_leave(l, 1);
    limit_leave(l, 1); /* one too many: harmless */
    enter(l, 1);
    assert_false(busy_has(l, 0, 1));
    limit_free(l);
}

static void test_per_account_cap_spans_stores(void **state)
{
    (void)state;
    struct limit *l = limit_new(5, 3, -1);
    limit_lock(l);
    limit_learn(l, 1, 7);
    limit_learn(l, 2, 7);
    limit_learn(l, 3, 8);
    limit_unlock(l);
    enter(l, 1);
    enter(l, 1);
    enter(l, 2);
    /* account 7 is full: both its stores wait, store 3 does not */
    assert_true(busy_has(l, 0, 1));
    assert_true(busy_has(l, 0, 2));
    assert_false(busy_has(l, 0, 3));
    /* store 2 moves to account 8: its running job moves too */
    limit_lock(l);
    limit_learn(l, 2, 8);
    limit_unlock(l);
    assert_false(busy_has(l, 0, 1));
    limit_free(l);
}

static void test_pause_blocks_the_account_until_then(void **state)
{
    (void)state;
    struct limit *l = limit_new(0, 0, 0);
    limit_lock(l);
    limit_learn(l, 1, 7);
    limit_learn(l, 2, 7);
    limit_learn(l, 3, 9);
    limit_unlock(l);
    limit_pause(l, 1, 5000);
    assert_true(busy_has(l, 4999, 1));
    assert_true(busy_has(l, 4999, 2));
    assert_false(busy_has(l, 4999, 3));
    assert_false(busy_has(l, 5000, 2));
    limit_pause(l, 2, 3000); /* an earlier end does not shorten the pause */
    assert_true(busy_has(l, 4000, 1));
    limit_free(l);
}

static void test_call_budget_bursts_then_paces(void **state)
{
    (void)state;
    struct limit *l = limit_new(0, 0, 240); /* 4 a second: one per 250 ms */
    for (int i = 0; i < LIMIT_ACCOUNT_BURST; i++) assert_int_equal(limit_call(l, 7, 1000), 0);
    assert_int_equal(limit_call(l, 7, 1000), 250);
    assert_int_equal(limit_call(l, 8, 1000), 0); /* another account has its own bucket */
    assert_int_equal(limit_call(l, 7, 1250), 0);
    assert_int_equal(limit_call(l, 7, 1250), 250);
    assert_int_equal(limit_call(l, 7, 1400), 100);
    /* idle for a long time: back to a full burst, never more */
    for (int i = 0; i < LIMIT_ACCOUNT_BURST; i++) assert_int_equal(limit_call(l, 7, 900000), 0);
    assert_true(limit_call(l, 7, 900000) > 0);
    /* a pause holds calls too */
    limit_lock(l);
    limit_learn(l, 1, 8);
    limit_unlock(l);
    limit_pause(l, 1, 5000);
    assert_int_equal(limit_call(l, 8, 4000), 1000);
    limit_free(l);
    /* unlimited */
    l = limit_new(0, 0, -1);
    for (int i = 0; i < 1000; i++) assert_int_equal(limit_call(l, 7, 0), 0);
    limit_free(l);
}

static void test_account_key(void **state)
{
    (void)state;
    uint64_t a = limit_account_key("https://api.qoyod.com/2.0", "k1");
    assert_int_equal(a, limit_account_key("https://api.qoyod.com/2.0", "k1"));
    assert_int_not_equal(a, limit_account_key("https://api.qoyod.com/2.0", "k2"));
    assert_int_not_equal(limit_account_key("ab", "c"), limit_account_key("a", "bc"));
    assert_int_not_equal(limit_account_key(NULL, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_per_store_cap),
        cmocka_unit_test(test_per_account_cap_spans_stores),
        cmocka_unit_test(test_pause_blocks_the_account_until_then),
        cmocka_unit_test(test_call_budget_bursts_then_paces),
        cmocka_unit_test(test_account_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
