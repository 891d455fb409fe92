/*
 * Tests for src/cli/report.c: `tarheel report` run through cli_main (so
 * the command table and its options are part of the test) against a SQLite
 * store in a temp directory; stdout and stderr are captured and compared
 * with the exact text expected.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <jansson.h>

#include "cli/cli.h"
#include "core/xmalloc.h"
#include "store/store.h"
#include "th_test.h"

struct fx {
    char dir[64];
    char db[96];
};

struct run {
    int rc;
    char *out, *err;
};

static void must(int rc, const struct th_err *err)
{
    if (rc != 0) fail_msg("call failed: %s: %s", th_err_name(rc), err->msg);
}

static int64_t utc(int y, int mo, int d, int h, int mi, int s)
{
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
                    .tm_hour = h, .tm_min = mi, .tm_sec = s};
    return (int64_t)timegm(&tm);
}

static void order(struct store *s, int64_t conn_id, int64_t id, int64_t created,
                  enum store_xfer x, enum model_status st, int64_t total, int64_t tax)
{
    struct store_order o = {.conn_id = conn_id, .order_id = id, .status = st, .xfer = x,
                            .total = total, .tax = tax, .created_at = created};
    struct th_err err;
    must(store_order_put(s, &o, &err), &err);
}

/* The same orders as tests/unit/worker/test_report.c (see there, month by
 * month), in a Salla store, and a Zid store with one big order. */
static int setup(void **state)
{
    struct fx *f = xcalloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/th_clireportXXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->db, sizeof f->db, "%s/c.db", f->dir);
    struct store *s;
    struct th_err err;
    must(store_open(&s, f->db, &err), &err);
    struct store_conn c = {.platform = MODEL_PLATFORM_SALLA, .store_id = 1305146709};
    c.name = xstrdup("Shop One");
    must(store_conn_put(s, &c, &err), &err);
    int64_t c1 = c.id;
    store_conn_release(&c);
    c = (struct store_conn){.platform = MODEL_PLATFORM_ZID, .store_id = 251073};
    must(store_conn_put(s, &c, &err), &err);
    int64_t c2 = c.id;
    const enum model_status DONE = MODEL_STATUS_COMPLETED, CANC = MODEL_STATUS_CANCELLED;
    order(s, c1, 1, utc(2023, 12, 31, 20, 59, 59), STORE_XFER_TRANSFERRED, DONE, 1000, 130);
    order(s, c1, 2, utc(2023, 12, 31, 21, 0, 0), STORE_XFER_TRANSFERRED, DONE, 2000, 260);
    order(s, c1, 3, utc(2024, 1, 5, 10, 0, 0), STORE_XFER_TRANSFERRED, DONE, 11500, 1500);
    order(s, c1, 4, utc(2024, 1, 20, 12, 0, 0), STORE_XFER_FAILED, DONE, 23000, 3000);
    order(s, c1, 5, utc(2024, 1, 31, 20, 59, 59), STORE_XFER_NOT_TRANSFERRED, MODEL_STATUS_NEW,
          5750, 750);
    order(s, c1, 6, utc(2024, 1, 31, 21, 0, 0), STORE_XFER_TRANSFERRED, DONE, 34500, 4500);
    order(s, c1, 7, utc(2024, 1, 31, 22, 30, 0), STORE_XFER_SKIPPED, CANC, 9999, 1304);
    order(s, c1, 8, utc(2024, 2, 14, 9, 0, 0), STORE_XFER_TRANSFERRING, MODEL_STATUS_READY, 1150,
          150);
    order(s, c1, 9, utc(2024, 2, 20, 0, 0, 0), STORE_XFER_NOT_TRANSFERRED, CANC, 2300, 300);
    order(s, c1, 10, utc(2024, 4, 2, 12, 0, 0), STORE_XFER_TRANSFERRED, CANC, 46000, 6000);
    order(s, c1, 11, 0, STORE_XFER_NOT_TRANSFERRED, MODEL_STATUS_OTHER, 0, 0);
    order(s, c2, 12, utc(2024, 3, 10, 0, 0, 0), STORE_XFER_TRANSFERRED, DONE, 123456789, 16102912);
    /* April's cancelled order was credited in full; a February order has a
     * credit note due */
    struct store_order o;
    must(store_order_get(s, c1, 10, &o, &err), &err);
    o.credit = STORE_CREDIT_DONE;
    o.credited = 46000;
    must(store_order_put(s, &o, &err), &err);
    store_order_release(&o);
    must(store_order_note(s, c1, 10, "credit note issued", "CN-10: 460.00 SAR", &err), &err);
    must(store_order_get(s, c1, 6, &o, &err), &err);
    o.credit = STORE_CREDIT_PENDING;
    must(store_order_put(s, &o, &err), &err);
    store_order_release(&o);
    store_close(s);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char *cmd = xasprintf("rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(f);
    return 0;
}

/* Runs `tarheel report --db DB <args...>` (NULL-terminated), capturing
 * stdout and stderr. */
static void run(struct fx *f, struct run *r, ...)
{
    char *argv[32] = {"tarheel", "report", "--db", f->db};
    int argc = 4;
    va_list ap;
    va_start(ap, r);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && argc < 31)
        argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    r->rc = tt_cli_run(f->dir, argc, argv, &r->out, &r->err);
}

static void run_release(struct run *r)
{
    free(r->out);
    free(r->err);
}

static void want_text(const char *got, const char *want)
{
    if (strcmp(got, want) != 0) fail_msg("want:\n%s\ngot:\n%s", want, got);
}

/* ---------------------------------------------------------------------- */

static void test_table(void **state)
{
    struct fx *f = *state;
    struct run r;
    run(f, &r, "--store", "1305146709", NULL);
    if (r.rc != CLI_OK) fail_msg("exit %d: %s", r.rc, r.err);
    want_text(r.out,
              "Monthly report of salla store 1305146709 \"Shop One\" (connection 1), 2023-12 to "
              "2024-04\n"
              "Months in Riyadh time (UTC+3), orders by creation date; money in SAR.\n"
              "\n"
              "MONTH    ORDERS  TRANSFERRED  FAILED  SKIPPED  NOT TRANSFERRED    SALES     VAT  "
              "CREDIT NOTES  CREDITED  NET SALES\n"
              "2023-12       1            1       0        0                0    10.00    1.30  "
              "           0      0.00      10.00\n"
              "2024-01       4            2       1        0                1   422.50   55.10  "
              "           0      0.00     422.50\n"
              "2024-02       4            1       0        1                2   356.50   46.50  "
              "           0      0.00     356.50\n"
              "2024-03       0            0       0        0                0     0.00    0.00  "
              "           0      0.00       0.00\n"
              "2024-04       1            1       0        0                0   460.00   60.00  "
              "           1    460.00       0.00\n"
              "TOTAL        10            5       1        1                3  1249.00  162.90  "
              "           1    460.00     789.00\n"
              "\n"
              "Sales and VAT leave out orders cancelled or refunded before they reached Qoyod.\n"
              "Credit notes reverse orders cancelled, refunded or returned after their transfer; "
              "they count in the month of the order, and net sales = sales - credited.\n"
              "Still to credit: 1 order with a credit note due, 0 refused by Qoyod, 0 to review "
              "(`tarheel orders list`); not in CREDITED.\n"
              "1 order not fetched from the platform yet has no date and is in no month.\n");
    want_text(r.err, "");
    run_release(&r);

    /* a range, and columns that widen for big amounts (the Zid store) */
    run(f, &r, "--store", "1305146709", "--platform", "salla", "--from", "2024-02", "--to",
        "2024-03", NULL);
    assert_int_equal(r.rc, CLI_OK);
    assert_non_null(strstr(r.out, ", 2024-02 to 2024-03\n"));
    assert_non_null(strstr(r.out, "\nTOTAL         4            1       0        1                "
                                  "2  356.50  46.50             0      0.00     356.50\n"));
    run_release(&r);
    run(f, &r, "--store", "251073", "--platform", "zid", NULL);
    assert_int_equal(r.rc, CLI_OK);
    want_text(strstr(r.out, "MONTH"),
              "MONTH    ORDERS  TRANSFERRED  FAILED  SKIPPED  NOT TRANSFERRED       SALES        "
              "VAT  CREDIT NOTES  CREDITED   NET SALES\n"
              "2024-03       1            1       0        0                0  1234567.89  "
              "161029.12             0      0.00  1234567.89\n"
              "TOTAL         1            1       0        0                0  1234567.89  "
              "161029.12             0      0.00  1234567.89\n"
              "\n"
              "Sales and VAT leave out orders cancelled or refunded before they reached Qoyod.\n"
              "Credit notes reverse orders cancelled, refunded or returned after their transfer; "
              "they count in the month of the order, and net sales = sales - credited.\n");
    assert_non_null(strstr(r.out, "Monthly report of zid store 251073 (connection 2), "));
    run_release(&r);
    /* a range without orders */
    run(f, &r, "--store", "251073", "--platform", "zid", "--from", "2025-01", NULL);
    assert_int_equal(r.rc, CLI_OK);
    assert_non_null(strstr(r.out, "\n2025-01       0"));
    run_release(&r);
}

static void test_json(void **state)
{
    struct fx *f = *state;
    struct run r;
    run(f, &r, "--json", "--store", "1305146709", "--from", "2024-01", "--to", "2024-02", NULL);
    if (r.rc != CLI_OK) fail_msg("exit %d: %s", r.rc, r.err);
    json_t *j = json_loads(r.out, 0, NULL);
    if (!j) fail_msg("not JSON: %s", r.out);
    json_t *months = json_object_get(j, "months");
    assert_int_equal(json_array_size(months), 2);
    json_t *feb = json_array_get(months, 1);
    assert_string_equal(json_string_value(json_object_get(feb, "month")), "2024-02");
    assert_int_equal(json_integer_value(json_object_get(feb, "orders")), 4);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(feb, "sales"), "halalas")), 35650);
    json_t *total = json_object_get(j, "total");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(total, "vat"), "decimal")), "101.60");
    assert_int_equal(json_integer_value(json_object_get(j, "undated_orders")), 1);
    json_decref(j);
    run_release(&r);
}

static void test_usage_and_failures(void **state)
{
    struct fx *f = *state;
    struct {
        const char *args[8];
        int rc;
        const char *err; /* part of stderr */
    } cases[] = {
        {{NULL}, CLI_USAGE, "--store STORE_ID is required"},
        {{"--store", "abc", NULL}, CLI_USAGE, "--store STORE_ID is required"},
        {{"--store", "1305146709", "--from", "2024-13", NULL}, CLI_USAGE,
         "--from must be a month as YYYY-MM (2024-01), not '2024-13'"},
        {{"--store", "1305146709", "--to", "2024-02-01", NULL}, CLI_USAGE,
         "--to must be a month as YYYY-MM"},
        {{"--store", "1305146709", "--from", "2024-03", "--to", "2024-02", NULL}, CLI_USAGE,
         "from (2024-03) is after to (2024-02)"},
        {{"--store", "1305146709", "--from", "2000-01", "--to", "2024-02", NULL}, CLI_USAGE,
         "at most 240"},
        {{"--store", "1305146709", "--platform", "shopify", NULL}, CLI_USAGE,
         "unknown platform 'shopify'"},
        {{"--store", "1305146709", "--platform", "zid", NULL}, CLI_NOTFOUND,
         "zid store 1305146709 is not connected"},
        {{"--store", "42", NULL}, CLI_NOTFOUND, "salla store 42 is not connected"},
        {{"--store", "1305146709", "--from", NULL}, CLI_USAGE, "--from needs a value"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct run r;
        const char *const *a = cases[i].args;
        run(f, &r, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]);
        if (r.rc != cases[i].rc || !strstr(r.err, cases[i].err))
            fail_msg("case %zu: want exit %d and \"%s\", got exit %d: %s", i, cases[i].rc,
                     cases[i].err, r.rc, r.err);
        want_text(r.out, "");
        run_release(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_and_failures, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
