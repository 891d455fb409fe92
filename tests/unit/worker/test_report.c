/*
 * Tests for src/worker/report.c: the monthly report over a real SQLite
 * store in a temp directory, seeded with store_order_put. Orders span five
 * months, with creation times on both sides of two month boundaries in
 * Riyadh time (UTC+3), and every month's figures are checked to the halala,
 * credit notes (counted from the orders' histories) and net sales included.
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

#include "core/xmalloc.h"
#include "worker/report.h"

struct fx {
    char dir[64];
    struct store *s;
    int64_t c1, c2, c3; /* the store under test, another with orders, one without */
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

/* The month number of year y, month mo (as report.h numbers them). */
#define MONTH(y, mo) ((y) * 12 + (mo) - 1)

static int64_t conn(struct fx *f, int64_t store_id, const char *name)
{
    struct store_conn c = {.platform = MODEL_PLATFORM_SALLA, .store_id = store_id, .trigger = 1};
    c.status = xstrdup("active");
    c.name = name ? xstrdup(name) : NULL;
    struct th_err err;
    must(store_conn_put(f->s, &c, &err), &err);
    int64_t id = c.id;
    store_conn_release(&c);
    return id;
}

static void order(struct fx *f, int64_t conn_id, int64_t id, int64_t created, enum store_xfer x,
                  enum model_status st, int64_t total, int64_t tax)
{
    struct store_order o = {.conn_id = conn_id,
                            .order_id = id,
                            .status = st,
                            .xfer = x,
                            .total = total,
                            .tax = tax,
                            .created_at = created,
                            .updated_at = created};
    struct th_err err;
    must(store_order_put(f->s, &o, &err), &err);
}

/* Order id's credit notes: its credit state, the halalas credited, and n
 * "credit note issued" entries in its history (with others around them
 * that are not issues). */
static void credit(struct fx *f, int64_t conn_id, int64_t id, enum store_credit cs,
                   int64_t credited, int n)
{
    struct store_order o;
    struct th_err err;
    must(store_order_get(f->s, conn_id, id, &o, &err), &err);
    o.credit = cs;
    o.credited = credited;
    must(store_order_put(f->s, &o, &err), &err);
    store_order_release(&o);
    must(store_order_note(f->s, conn_id, id, "credit note due", "full: 1.00 SAR", &err), &err);
    for (int i = 0; i < n; i++)
        must(store_order_note(f->s, conn_id, id, "credit note issued", "CN-x: 1.00 SAR", &err),
             &err);
    if (cs == STORE_CREDIT_FAILED)
        must(store_order_note(f->s, conn_id, id, "credit note failed", "refused", &err), &err);
}

/*
 * The seed, by Riyadh month (UTC times; Riyadh is 3 hours ahead):
 *   2023-12  P  Dec 31 20:59:59 UTC (23:59:59 Riyadh) transferred   10.00 / 1.30
 *   2024-01  Q  Dec 31 21:00:00 UTC (Jan 1 00:00 Riyadh) transferred 20.00 / 2.60
 *            A  Jan  5 10:00 transferred                          115.00 / 15.00
 *            B  Jan 20 12:00 failed                               230.00 / 30.00
 *            C  Jan 31 20:59:59 not transferred                    57.50 / 7.50
 *   2024-02  D  Jan 31 21:00:00 (Feb 1 00:00 Riyadh) transferred  345.00 / 45.00
 *            E  Jan 31 22:30 (Feb 1 01:30 Riyadh) skipped, cancelled  99.99 / 13.04: no sale
 *            F  Feb 14 09:00 transferring (counts as not transferred) 11.50 / 1.50
 *            G  Feb 20 00:00 not transferred but cancelled          23.00 / 3.00: no sale
 *   2024-03  (none)
 *   2024-04  H  Apr 2 12:00 transferred, cancelled afterwards     460.00 / 60.00: a sale
 *   (none)   U  never fetched: no date
 * and an order of another store in January, which must not count.
 * Credit notes (counted in the order's month):
 *   P  5.00 credited by a note issued before history was kept (counts 1),
 *      then a note refused: failed
 *   Q  changed after transfer: review
 *   A  two returns, 23.00 and 11.50: two notes, 34.50
 *   D  a note due: pending
 *   H  cancelled: one note of 460.00
 *   and the other store's order, credited in full (must not count).
 */
static int setup(void **state)
{
    struct fx *f = xcalloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/th_reportXXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char *db = xasprintf("%s/r.db", f->dir);
    struct th_err err;
    must(store_open(&f->s, db, &err), &err);
    free(db);
    f->c1 = conn(f, 1305146709, "Shop One");
    f->c2 = conn(f, 200, NULL);
    f->c3 = conn(f, 300, NULL);
    const enum model_status DONE = MODEL_STATUS_COMPLETED, CANC = MODEL_STATUS_CANCELLED;
    order(f, f->c1, 1, utc(2023, 12, 31, 20, 59, 59), STORE_XFER_TRANSFERRED, DONE, 1000, 130);
    order(f, f->c1, 2, utc(2023, 12, 31, 21, 0, 0), STORE_XFER_TRANSFERRED, DONE, 2000, 260);
    order(f, f->c1, 3, utc(2024, 1, 5, 10, 0, 0), STORE_XFER_TRANSFERRED, DONE, 11500, 1500);
    order(f, f->c1, 4, utc(2024, 1, 20, 12, 0, 0), STORE_XFER_FAILED, DONE, 23000, 3000);
    order(f, f->c1, 5, utc(2024, 1, 31, 20, 59, 59), STORE_XFER_NOT_TRANSFERRED,
          MODEL_STATUS_NEW, 5750, 750);
    order(f, f->c1, 6, utc(2024, 1, 31, 21, 0, 0), STORE_XFER_TRANSFERRED, DONE, 34500, 4500);
    order(f, f->c1, 7, utc(2024, 1, 31, 22, 30, 0), STORE_XFER_SKIPPED, CANC, 9999, 1304);
    order(f, f->c1, 8, utc(2024, 2, 14, 9, 0, 0), STORE_XFER_TRANSFERRING, MODEL_STATUS_READY,
          1150, 150);
    order(f, f->c1, 9, utc(2024, 2, 20, 0, 0, 0), STORE_XFER_NOT_TRANSFERRED, CANC, 2300, 300);
    order(f, f->c1, 10, utc(2024, 4, 2, 12, 0, 0), STORE_XFER_TRANSFERRED, CANC, 46000, 6000);
    order(f, f->c1, 11, 0, STORE_XFER_NOT_TRANSFERRED, MODEL_STATUS_OTHER, 0, 0);
    order(f, f->c2, 12, utc(2024, 1, 10, 0, 0, 0), STORE_XFER_TRANSFERRED, DONE, 777700, 101400);
    credit(f, f->c1, 1, STORE_CREDIT_FAILED, 500, 0);
    credit(f, f->c1, 2, STORE_CREDIT_REVIEW, 0, 0);
    credit(f, f->c1, 3, STORE_CREDIT_DONE, 3450, 2);
    credit(f, f->c1, 6, STORE_CREDIT_PENDING, 0, 0);
    credit(f, f->c1, 10, STORE_CREDIT_DONE, 46000, 1);
    credit(f, f->c2, 12, STORE_CREDIT_DONE, 777700, 1);
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

/* One row's expected figures (net sales: sales - cn_total). */
struct want {
    int month;
    int64_t orders, transferred, failed, skipped, not_transferred, sales, vat;
    int64_t cn, cn_total, pending, cfailed, review;
};

static void want_row(const struct report_row *got, const struct want *w)
{
    char m[REPORT_MONTH_LEN];
    report_month_format(w->month, m);
    if (got->month != w->month)
        fail_msg("row %s: got month %d, want %d", m, got->month, w->month);
    const int64_t g[] = {got->orders,         got->transferred,        got->failed,
                         got->skipped,        got->not_transferred,    got->sales,
                         got->vat,            got->credit_notes,       got->credit_notes_total,
                         got->credit_pending, got->credit_failed,      got->credit_review,
                         got->net_sales};
    const int64_t e[] = {w->orders,  w->transferred,     w->failed, w->skipped,
                         w->not_transferred, w->sales,   w->vat,    w->cn,
                         w->cn_total, w->pending,        w->cfailed, w->review,
                         w->sales - w->cn_total};
    static const char *const names[] = {
        "orders",         "transferred",         "failed",         "skipped",
        "not_transferred", "sales",              "vat",            "credit_notes",
        "credit_notes_total", "credit_pending",  "credit_failed",  "credit_review",
        "net_sales"};
    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++)
        if (g[i] != e[i])
            fail_msg("%s %s: got %lld, want %lld", m[0] ? m : "total", names[i], (long long)g[i],
                     (long long)e[i]);
}

static const struct want DEC = {MONTH(2023, 12), 1, 1, 0, 0, 0, 1000, 130, 1, 500, 0, 1, 0};
static const struct want JAN = {MONTH(2024, 1), 4, 2, 1, 0, 1, 42250, 5510, 2, 3450, 0, 0, 1};
static const struct want FEB = {MONTH(2024, 2), 4, 1, 0, 1, 2, 35650, 4650, 0, 0, 1, 0, 0};
static const struct want MAR = {MONTH(2024, 3), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
static const struct want APR = {MONTH(2024, 4), 1, 1, 0, 0, 0, 46000, 6000, 1, 46000, 0, 0, 0};

/* ---------------------------------------------------------------------- */

static void test_months_parse_format_and_riyadh_boundaries(void **state)
{
    int m = -1;
    assert_int_equal(report_month_parse("2024-01", &m), 0);
    assert_int_equal(m, 24288);
    assert_int_equal(report_month_parse("1970-01", &m), 0);
    assert_int_equal(report_month_parse("9999-12", &m), 0);
    static const char *const bad[] = {"2024-1",  "2024-13",    "2024-00", "1969-12", "24-01",
                                      "2024/01", "2024-01-01", "",        " 2024-01", "20a4-01",
                                      "2024-0x", "+202-01",    NULL};
    for (size_t i = 0; bad[i]; i++)
        if (report_month_parse(bad[i], &m) != -1) fail_msg("\"%s\" parsed as a month", bad[i]);
    assert_int_equal(report_month_parse(NULL, &m), -1);
    char t[REPORT_MONTH_LEN];
    assert_string_equal(report_month_format(MONTH(2024, 2), t), "2024-02");
    assert_string_equal(report_month_format(MONTH(1970, 1), t), "1970-01");
    assert_string_equal(report_month_format(REPORT_MONTH_NONE, t), "");
    /* the brief's example: 2024-01-31 22:30 UTC is February in Riyadh */
    assert_int_equal(report_month_of(utc(2024, 1, 31, 22, 30, 0)), MONTH(2024, 2));
    assert_int_equal(report_month_of(utc(2024, 1, 31, 20, 59, 59)), MONTH(2024, 1));
    assert_int_equal(report_month_of(utc(2024, 1, 31, 21, 0, 0)), MONTH(2024, 2));
    assert_int_equal(report_month_of(utc(2023, 12, 31, 21, 0, 0)), MONTH(2024, 1));
    assert_int_equal(report_month_of(utc(2024, 2, 29, 21, 0, 0)), MONTH(2024, 3)); /* leap */
    assert_int_equal(report_month_of(0), REPORT_MONTH_NONE);
    assert_int_equal(report_month_of(-5), REPORT_MONTH_NONE);
    assert_int_equal(report_month_start(MONTH(2024, 2)), utc(2024, 1, 31, 21, 0, 0));
    assert_int_equal(report_month_start(MONTH(2024, 1)), 1704056400);
}

static void test_every_month_exact(void **state)
{
    struct fx *f = *state;
    struct report r;
    struct th_err err = {0};
    must(report_monthly(f->s, f->c1, REPORT_MONTH_NONE, REPORT_MONTH_NONE, &r, &err), &err);
    assert_int_equal(r.conn_id, f->c1);
    assert_int_equal(r.platform, MODEL_PLATFORM_SALLA);
    assert_int_equal(r.store_id, 1305146709);
    assert_string_equal(r.name, "Shop One");
    assert_int_equal(r.from, MONTH(2023, 12));
    assert_int_equal(r.to, MONTH(2024, 4));
    assert_int_equal(r.nrows, 5);
    want_row(&r.rows[0], &DEC);
    want_row(&r.rows[1], &JAN);
    want_row(&r.rows[2], &FEB);
    want_row(&r.rows[3], &MAR); /* a month without orders is a row of zeros */
    want_row(&r.rows[4], &APR);
    struct want total = {REPORT_MONTH_NONE, 10, 5, 1, 1, 3, 124900, 16290, 4, 49950, 1, 1, 1};
    want_row(&r.total, &total);
    assert_int_equal(r.undated, 1);
    report_release(&r);
    assert_null(r.rows);
    report_release(NULL);
}

static void test_ranges(void **state)
{
    struct fx *f = *state;
    struct report r;
    struct th_err err = {0};
    /* January and February only: December's and April's orders are out */
    must(report_monthly(f->s, f->c1, MONTH(2024, 1), MONTH(2024, 2), &r, &err), &err);
    assert_int_equal(r.nrows, 2);
    want_row(&r.rows[0], &JAN);
    want_row(&r.rows[1], &FEB);
    struct want jf = {REPORT_MONTH_NONE, 8, 3, 1, 1, 3, 77900, 10160, 2, 3450, 1, 0, 1};
    want_row(&r.total, &jf);
    assert_int_equal(r.undated, 1);
    report_release(&r);
    /* from only: up to the last month with orders */
    must(report_monthly(f->s, f->c1, MONTH(2024, 2), REPORT_MONTH_NONE, &r, &err), &err);
    assert_int_equal(r.from, MONTH(2024, 2));
    assert_int_equal(r.to, MONTH(2024, 4));
    assert_int_equal(r.nrows, 3);
    want_row(&r.rows[0], &FEB);
    want_row(&r.rows[2], &APR);
    report_release(&r);
    /* to only: from the first month with orders */
    must(report_monthly(f->s, f->c1, REPORT_MONTH_NONE, MONTH(2023, 12), &r, &err), &err);
    assert_int_equal(r.nrows, 1);
    want_row(&r.rows[0], &DEC);
    want_row(&r.total, &(struct want){REPORT_MONTH_NONE, 1, 1, 0, 0, 0, 1000, 130, 1, 500, 0, 1, 0});
    report_release(&r);
    /* a range without orders: its months, all zero */
    must(report_monthly(f->s, f->c1, MONTH(2025, 1), MONTH(2025, 3), &r, &err), &err);
    assert_int_equal(r.nrows, 3);
    for (int i = 0; i < 3; i++)
        want_row(&r.rows[i], &(struct want){MONTH(2025, 1) + i, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
    report_release(&r);
    /* from after every order, no to: that one month */
    must(report_monthly(f->s, f->c1, MONTH(2025, 6), REPORT_MONTH_NONE, &r, &err), &err);
    assert_int_equal(r.nrows, 1);
    assert_int_equal(r.from, MONTH(2025, 6));
    assert_int_equal(r.to, MONTH(2025, 6));
    report_release(&r);
    /* a store without orders: no months at all */
    must(report_monthly(f->s, f->c3, REPORT_MONTH_NONE, REPORT_MONTH_NONE, &r, &err), &err);
    assert_int_equal(r.nrows, 0);
    assert_int_equal(r.from, REPORT_MONTH_NONE);
    assert_int_equal(r.to, REPORT_MONTH_NONE);
    assert_int_equal(r.total.orders, 0);
    assert_int_equal(r.undated, 0);
    report_release(&r);
    /* the other store sees only its own order */
    must(report_monthly(f->s, f->c2, REPORT_MONTH_NONE, REPORT_MONTH_NONE, &r, &err), &err);
    assert_int_equal(r.nrows, 1);
    want_row(&r.rows[0],
             &(struct want){MONTH(2024, 1), 1, 1, 0, 0, 0, 777700, 101400, 1, 777700, 0, 0, 0});
    report_release(&r);
}

static void test_refusals_and_limits(void **state)
{
    struct fx *f = *state;
    struct report r;
    struct th_err err = {0};
    assert_int_equal(report_monthly(f->s, f->c1, MONTH(2024, 3), MONTH(2024, 2), &r, &err),
                     TH_EINVAL);
    assert_non_null(strstr(err.msg, "from (2024-03) is after to (2024-02)"));
    assert_int_equal(r.nrows, 0);
    assert_int_equal(report_monthly(f->s, 999, REPORT_MONTH_NONE, REPORT_MONTH_NONE, &r, &err),
                     TH_ENOTFOUND);
    assert_int_equal(report_monthly(f->s, f->c1, 5, REPORT_MONTH_NONE, &r, &err), TH_EINVAL);
    /* REPORT_MAX_MONTHS - 1, REPORT_MAX_MONTHS, REPORT_MAX_MONTHS + 1 */
    int from = MONTH(2000, 1);
    must(report_monthly(f->s, f->c1, from, from + REPORT_MAX_MONTHS - 2, &r, &err), &err);
    assert_int_equal(r.nrows, REPORT_MAX_MONTHS - 1);
    report_release(&r);
    must(report_monthly(f->s, f->c1, from, from + REPORT_MAX_MONTHS - 1, &r, &err), &err);
    assert_int_equal(r.nrows, REPORT_MAX_MONTHS);
    assert_int_equal(r.total.orders, 0); /* 2000-01 .. 2019-12: every order is later */
    report_release(&r);
    assert_int_equal(report_monthly(f->s, f->c1, from, from + REPORT_MAX_MONTHS, &r, &err),
                     TH_ELIMIT);
    assert_non_null(strstr(err.msg, "241 months (2000-01 to 2020-01); at most 240"));
    /* the same limit when the orders themselves span too long */
    order(f, f->c3, 50, utc(1990, 5, 1, 0, 0, 0), STORE_XFER_TRANSFERRED, MODEL_STATUS_COMPLETED,
          100, 13);
    order(f, f->c3, 51, utc(2024, 5, 1, 0, 0, 0), STORE_XFER_TRANSFERRED, MODEL_STATUS_COMPLETED,
          100, 13);
    assert_int_equal(report_monthly(f->s, f->c3, REPORT_MONTH_NONE, REPORT_MONTH_NONE, &r, &err),
                     TH_ELIMIT);
    assert_non_null(strstr(err.msg, "1990-05 to 2024-05"));
    assert_null(r.rows);
}

/* Sums that do not fit int64 fail, naming the month, rather than wrap. */
static void test_overflow_is_an_error(void **state)
{
    struct fx *f = *state;
    order(f, f->c3, 60, utc(2024, 7, 1, 0, 0, 0), STORE_XFER_TRANSFERRED, MODEL_STATUS_COMPLETED,
          INT64_MAX - 10, 0);
    order(f, f->c3, 61, utc(2024, 7, 2, 0, 0, 0), STORE_XFER_TRANSFERRED, MODEL_STATUS_COMPLETED,
          100, 0);
    struct report r;
    struct th_err err = {0};
    assert_int_equal(report_monthly(f->s, f->c3, REPORT_MONTH_NONE, REPORT_MONTH_NONE, &r, &err),
                     TH_EMONEY);
    assert_non_null(strstr(err.msg, "sales of 2024-07"));
    assert_null(r.rows);
}

static json_t *jget(json_t *root, const char *path)
{
    json_t *v = root;
    char key[64];
    for (const char *p = path; v && *p;) {
        size_t len = strcspn(p, ".");
        snprintf(key, sizeof key, "%.*s", (int)len, p);
        v = json_is_array(v) ? json_array_get(v, strtoul(key, NULL, 10)) : json_object_get(v, key);
        p += len + (p[len] == '.');
    }
    return v;
}

static void want_jint(json_t *root, const char *path, long long want)
{
    json_t *v = jget(root, path);
    if (!json_is_integer(v) || json_integer_value(v) != want)
        fail_msg("%s: want %lld, got %s", path, want, v ? "another value" : "nothing");
}

static void want_jstr(json_t *root, const char *path, const char *want)
{
    const char *got = json_string_value(jget(root, path));
    if (!got || strcmp(got, want)) fail_msg("%s: want \"%s\", got \"%s\"", path, want, got);
}

static void test_json(void **state)
{
    struct fx *f = *state;
    struct report r;
    struct th_err err = {0};
    must(report_monthly(f->s, f->c1, REPORT_MONTH_NONE, REPORT_MONTH_NONE, &r, &err), &err);
    char *text = report_json(&r);
    report_release(&r);
    json_t *j = json_loads(text, 0, NULL);
    if (!j) fail_msg("not JSON: %s", text);
    want_jint(j, "connection.id", f->c1);
    want_jstr(j, "connection.platform", "salla");
    want_jint(j, "connection.store_id", 1305146709);
    want_jstr(j, "connection.name", "Shop One");
    want_jstr(j, "timezone", "Asia/Riyadh");
    want_jstr(j, "utc_offset", "+03:00");
    want_jstr(j, "from", "2023-12");
    want_jstr(j, "to", "2024-04");
    assert_int_equal(json_array_size(json_object_get(j, "months")), 5);
    want_jstr(j, "months.1.month", "2024-01");
    want_jint(j, "months.1.orders", 4);
    want_jint(j, "months.1.transferred", 2);
    want_jint(j, "months.1.failed", 1);
    want_jint(j, "months.1.skipped", 0);
    want_jint(j, "months.1.not_transferred", 1);
    want_jint(j, "months.1.sales.halalas", 42250);
    want_jstr(j, "months.1.sales.decimal", "422.50");
    want_jint(j, "months.1.vat.halalas", 5510);
    want_jstr(j, "months.1.vat.decimal", "55.10");
    want_jint(j, "months.1.credit_notes.count", 2);
    want_jstr(j, "months.1.credit_notes.total.decimal", "34.50");
    want_jint(j, "months.1.credit_notes.total.halalas", 3450);
    want_jint(j, "months.1.credit_notes.review", 1);
    want_jint(j, "months.1.credit_notes.pending", 0);
    want_jstr(j, "months.1.net_sales.decimal", "388.00");
    want_jint(j, "months.2.credit_notes.pending", 1);
    want_jint(j, "months.0.credit_notes.failed", 1);
    want_jstr(j, "months.4.net_sales.decimal", "0.00");
    want_jstr(j, "months.2.month", "2024-02");
    want_jint(j, "months.2.skipped", 1);
    want_jint(j, "months.2.not_transferred", 2);
    want_jstr(j, "months.2.sales.decimal", "356.50");
    want_jstr(j, "months.3.month", "2024-03");
    want_jint(j, "months.3.orders", 0);
    want_jstr(j, "months.3.sales.decimal", "0.00");
    want_jint(j, "total.orders", 10);
    want_jint(j, "total.sales.halalas", 124900);
    want_jstr(j, "total.sales.decimal", "1249.00");
    want_jstr(j, "total.vat.decimal", "162.90");
    want_jint(j, "total.credit_notes.count", 4);
    want_jstr(j, "total.credit_notes.total.decimal", "499.50");
    want_jstr(j, "total.net_sales.decimal", "749.50");
    assert_null(json_object_get(json_object_get(j, "total"), "month"));
    want_jint(j, "undated_orders", 1);
    assert_true(json_is_true(json_object_get(j, "credit_notes_tracked")));
    json_decref(j);
    free(text);
    /* no months: from and to are null */
    must(report_monthly(f->s, f->c3, REPORT_MONTH_NONE, REPORT_MONTH_NONE, &r, &err), &err);
    text = report_json(&r);
    report_release(&r);
    j = json_loads(text, 0, NULL);
    assert_true(json_is_null(json_object_get(j, "from")));
    assert_true(json_is_null(json_object_get(j, "to")));
    assert_true(json_is_null(jget(j, "connection.name")));
    assert_int_equal(json_array_size(json_object_get(j, "months")), 0);
    want_jint(j, "total.orders", 0);
    json_decref(j);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_months_parse_format_and_riyadh_boundaries),
        cmocka_unit_test_setup_teardown(test_every_month_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ranges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals_and_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overflow_is_an_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
