/*
 * Tests for src/worker/manage.c: queuing by hand, retrying failed orders and
 * settings from text, against a real SQLite store in a temp directory.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/xmalloc.h"
#include "worker/manage.h"

struct fx {
    char dir[64];
    struct store *s;
    int64_t c1, c2;
};

static void must(int rc, const struct th_err *err)
{
    if (rc != 0) fail_msg("call failed: %s: %s", th_err_name(rc), err->msg);
}

static int64_t conn(struct fx *f, int64_t store_id)
{
    struct store_conn c = {.platform = MODEL_PLATFORM_SALLA, .store_id = store_id, .trigger = 1};
    c.status = xstrdup("active");
    struct th_err err;
    must(store_conn_put(f->s, &c, &err), &err);
    int64_t id = c.id;
    store_conn_release(&c);
    return id;
}

static void order(struct fx *f, int64_t conn_id, int64_t id, enum store_xfer x)
{
    struct store_order o = {.conn_id = conn_id, .order_id = id, .xfer = x, .created_at = id};
    struct th_err err;
    must(store_order_put(f->s, &o, &err), &err);
}

static int64_t jobs(struct fx *f)
{
    int64_t n = -1;
    struct th_err err;
    must(store_job_count(f->s, &n, &err), &err);
    return n;
}

static void count_note(void *arg, int64_t ts, const char *what, const char *detail)
{
    if (strcmp(what, "queued by hand") == 0 && strcmp(detail, "by test") == 0) (*(int *)arg)++;
}

static int notes(struct fx *f, int64_t conn_id, int64_t order_id)
{
    int n = 0;
    struct th_err err;
    must(store_order_history(f->s, conn_id, order_id, count_note, &n, &err), &err);
    return n;
}

static int setup(void **state)
{
    struct fx *f = xcalloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/th_manageXXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char *db = xasprintf("%s/m.db", f->dir);
    struct th_err err;
    must(store_open(&f->s, db, &err), &err);
    free(db);
    f->c1 = conn(f, 100);
    f->c2 = conn(f, 200);
    order(f, f->c1, 1, STORE_XFER_FAILED);
    order(f, f->c1, 2, STORE_XFER_TRANSFERRED);
    order(f, f->c1, 3, STORE_XFER_FAILED);
    order(f, f->c2, 4, STORE_XFER_FAILED);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    store_close(f->s);
    char *cmd = xasprintf("rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(f);
    return 0;
}

static void test_transfer(void **state)
{
    struct fx *f = *state;
    struct th_err err;
    size_t q = 99;
    int64_t ids[] = {2, 3, 555};
    must(manage_transfer(f->s, f->c1, ids, 3, "by test", &q, &err), &err);
    assert_int_equal(q, 3);
    assert_int_equal(jobs(f), 3);
    assert_int_equal(notes(f, f->c1, 555), 1); /* an order not seen yet gets its note too */

    /* checked before anything is queued */
    int64_t bad[] = {7, 0};
    assert_int_equal(manage_transfer(f->s, f->c1, bad, 2, "by test", &q, &err), TH_EINVAL);
    assert_non_null(strstr(err.msg, "order id 0"));
    assert_int_equal(q, 0);
    assert_int_equal(manage_transfer(f->s, f->c1, ids, 0, "by test", &q, &err), TH_EINVAL);
    assert_int_equal(manage_transfer(f->s, 99, ids, 1, "by test", &q, &err), TH_ENOTFOUND);
    assert_int_equal(manage_transfer(f->s, f->c1, ids, MANAGE_MAX_ORDERS + 1, "by test", &q, &err),
                     TH_ELIMIT);
    assert_int_equal(jobs(f), 3);
    assert_int_equal(notes(f, f->c1, 7), 0);
}

struct seen {
    int n;
    int64_t pairs[8][2];
};

static void on_queued(void *arg, int64_t conn_id, int64_t order_id)
{
    struct seen *s = arg;
    if (s->n < 8) {
        s->pairs[s->n][0] = conn_id;
        s->pairs[s->n][1] = order_id;
    }
    s->n++;
}

static void test_retry_failed(void **state)
{
    struct fx *f = *state;
    struct th_err err;
    struct seen s = {0};
    size_t q = 0;
    must(manage_retry_failed(f->s, f->c1, "by test", on_queued, &s, &q, &err), &err);
    assert_int_equal(q, 2);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.pairs[0][1], 1);
    assert_int_equal(s.pairs[1][1], 3);
    assert_int_equal(s.pairs[1][0], f->c1);
    assert_int_equal(jobs(f), 2);
    assert_int_equal(notes(f, f->c1, 1), 1);
    assert_int_equal(notes(f, f->c1, 2), 0); /* transferred: left alone */
    /* every connection */
    must(manage_retry_failed(f->s, 0, "by test", NULL, NULL, &q, &err), &err);
    assert_int_equal(q, 3);
    assert_int_equal(jobs(f), 3);
    assert_int_equal(manage_retry_failed(f->s, 42, "by test", NULL, NULL, &q, &err), TH_ENOTFOUND);
    assert_int_equal(q, 0);
}

static void test_settings(void **state)
{
    (void)state;
    static const struct {
        const char *name, *value;
        int rc;
        const char *in_msg;
    } cases[] = {
        {"trigger", "ready", 0, NULL},
        {"trigger", "in_transit", 0, NULL},
        {"trigger", "completed", 0, NULL},
        {"trigger", "new", 0, NULL},
        {"trigger", "cancelled", TH_EINVAL, "trigger must be new, ready, in_transit or completed"},
        {"trigger", "other", TH_EINVAL, "trigger must be"},
        {"trigger", "", TH_EINVAL, "trigger must be"},
        {"customer-per-invoice", "off", 0, NULL},
        {"customer_per_invoice", "TRUE", 0, NULL},
        {"number_by_order", "no", 0, NULL},
        {"number-by-order", "maybe", TH_EINVAL, "number-by-order must be on or off"},
        {"financial_invoice", "0", 0, NULL},
        {"financial_invoice", "2", TH_EINVAL, "financial_invoice must be on or off"},
        {"inventory", "4", 0, NULL},
        {"inventory_id", "5", 0, NULL},
        {"inventory_id", "0", TH_EINVAL, "inventory_id takes a Qoyod inventory location id"},
        {"inventory", "-3", TH_EINVAL, "inventory takes"},
        {"inventory", "3x", TH_EINVAL, "inventory takes"},
        {"inventory", "99999999999999999999", TH_EINVAL, "inventory takes"},
        {"payment-account", "9", 0, NULL},
        {"payment_account_id", "", TH_EINVAL, "payment_account_id takes"},
        {"colour", "red", TH_EINVAL, "colour is not a setting"},
    };
    struct store_conn c = {0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct store_conn before = c;
        struct th_err err = {0};
        int rc = manage_setting_set(&c, cases[i].name, cases[i].value, &err);
        if (rc != cases[i].rc)
            fail_msg("%s=%s: want %d got %d (%s)", cases[i].name, cases[i].value, cases[i].rc, rc,
                     err.msg);
        if (cases[i].in_msg && strncmp(err.msg, cases[i].in_msg, strlen(cases[i].in_msg)) != 0)
            fail_msg("%s=%s: message \"%s\"", cases[i].name, cases[i].value, err.msg);
        if (rc && memcmp(&before, &c, sizeof c) != 0)
            fail_msg("%s=%s: failed but changed the connection", cases[i].name, cases[i].value);
    }
    assert_int_equal(c.trigger, MODEL_STATUS_NEW);
    assert_int_equal(c.customer_per_invoice, 1);
    assert_int_equal(c.number_by_order, 0);
    assert_int_equal(c.financial_invoice, 0);
    assert_int_equal(c.inventory_id, 5);
    assert_int_equal(c.payment_account_id, 9);
}

/* The reference prefix: capitals, none, the reserved starts, the defaults
 * of other stores, and what is not letters and digits. */
static void test_reference_prefix(void **state)
{
    (void)state;
    static const struct {
        const char *value, *want; /* want NULL: refused */
        const char *in_msg;
    } cases[] = {
        {"shop2", "SHOP2", NULL},
        {"none", "", NULL},
        {"", "", NULL},
        {"Z7", "Z7", NULL},      /* this store's own default */
        {"Zx7", "ZX7", NULL},
        {"ABCDEFGH", "ABCDEFGH", NULL},
        {"Z8", NULL, "reference_prefix Z8 is kept for the store tarheel numbers 8"},
        {"s7", NULL, "reference_prefix S7 is kept"},
        {"cn", NULL, "reference_prefix cannot be CN"},
        {"PAY", NULL, "reference_prefix cannot be PAY"},
        {"open", NULL, "reference_prefix cannot be OPEN"},
        {"9AB", NULL, "reference_prefix takes 1 to 8 letters and digits"},
        {"AB-1", NULL, "reference_prefix takes"},
        {"ABCDEFGHI", NULL, "reference_prefix takes"},
        {"\xd8\xb3\xd9\x84", NULL, "reference_prefix takes"},
    };
    struct store_conn c = {.id = 7, .platform = MODEL_PLATFORM_ZID};
    c.ref_prefix = xstrdup("OLD");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        free(c.ref_prefix);
        c.ref_prefix = xstrdup("OLD");
        struct th_err err = {0};
        int rc = manage_setting_set(&c, "reference_prefix", cases[i].value, &err);
        if (cases[i].want) {
            if (rc) fail_msg("%s: refused: %s", cases[i].value, err.msg);
            assert_string_equal(c.ref_prefix, cases[i].want);
        } else {
            if (rc != TH_EINVAL) fail_msg("%s: accepted as %s", cases[i].value, c.ref_prefix);
            if (strncmp(err.msg, cases[i].in_msg, strlen(cases[i].in_msg)) != 0)
                fail_msg("%s: message \"%s\"", cases[i].value, err.msg);
            assert_string_equal(c.ref_prefix, "OLD");
        }
    }
    struct th_err err = {0};
    assert_int_equal(manage_setting_set(&c, "ref-prefix", "b2", &err), 0); /* the alias */
    assert_string_equal(c.ref_prefix, "B2");
    free(c.ref_prefix);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_transfer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_failed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_settings, setup, teardown),
        cmocka_unit_test(test_reference_prefix),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
