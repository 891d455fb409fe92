/*
 * report — the monthly report (see report.h for the rules).
 *
 * One pass over the connection's orders (store_order_list) adds each dated
 * order to its month's row; the rows found are kept sorted by month (the
 * store hands orders out by creation time, so the month is nearly always the
 * last row's or the next). Then the rows are laid out densely from `from` to
 * `to`, empty months included, so a dashboard draws a continuous axis.
 *
 * XXX store_order_list reads every order of the connection into memory for
 * one report: fine for the tens of thousands of orders a store has in a few
 * years, not for millions. A store operation that sums by month in SQL
 * (GROUP BY strftime('%Y-%m', created_at + 10800, 'unixepoch')) would read
 * nothing but the sums; it would also have to carry the sales rule
 * (is_sale), so it waits until the report's shape has settled.
 */
#include "worker/report.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/jv.h"
#include "core/money.h"
#include "core/xmalloc.h"

#define MONTH_MIN (1970 * 12)
#define MONTH_MAX (9999 * 12 + 11)

/* ---------------------------------------------------------------------- */
/* Months                                                                   */

int report_month_of(int64_t unix_s)
{
    if (unix_s <= 0) return REPORT_MONTH_NONE;
    time_t t = (time_t)(unix_s + REPORT_UTC_OFFSET_S);
    struct tm tm;
    if (!gmtime_r(&t, &tm)) return REPORT_MONTH_NONE;
    return (tm.tm_year + 1900) * 12 + tm.tm_mon;
}

int64_t report_month_start(int m)
{
    struct tm tm = {.tm_year = m / 12 - 1900, .tm_mon = m % 12, .tm_mday = 1};
    return (int64_t)timegm(&tm) - REPORT_UTC_OFFSET_S;
}

int report_month_parse(const char *text, int *m)
{
    if (!text || strlen(text) != 7 || text[4] != '-') return -1;
    int year = 0, mon = 0;
    for (int i = 0; i < 7; i++) {
        if (i == 4) continue;
        if (text[i] < '0' || text[i] > '9') return -1;
        if (i < 4)
            year = year * 10 + (text[i] - '0');
        else
            mon = mon * 10 + (text[i] - '0');
    }
    if (year < 1970 || mon < 1 || mon > 12) return -1;
    *m = year * 12 + mon - 1;
    return 0;
}

char *report_month_format(int m, char *out)
{
    if (m < MONTH_MIN || m > MONTH_MAX)
        out[0] = '\0';
    else
        snprintf(out, REPORT_MONTH_LEN, "%04d-%02d", m / 12, m % 12 + 1);
    return out;
}

/* ---------------------------------------------------------------------- */
/* Summing                                                                  */

struct collect {
    struct store *s;
    int from, to;             /* REPORT_MONTH_NONE: no bound */
    struct report_row *rows;  /* sorted by month, only months that have orders */
    size_t n, cap;
    int64_t undated;
    int code;                 /* the first failure (TH_EMONEY), 0 if none */
    struct th_err *err;
};

/* The row of month m, inserted in order when new. */
static struct report_row *row_for(struct collect *c, int m)
{
    size_t i = c->n;
    if (i && c->rows[i - 1].month == m) return &c->rows[i - 1];
    while (i && c->rows[i - 1].month > m)
        i--;
    if (i && c->rows[i - 1].month == m) return &c->rows[i - 1];
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 16;
        c->rows = xrealloc(c->rows, c->cap * sizeof *c->rows);
    }
    memmove(&c->rows[i + 1], &c->rows[i], (c->n - i) * sizeof *c->rows);
    c->n++;
    memset(&c->rows[i], 0, sizeof c->rows[i]);
    c->rows[i].month = m;
    return &c->rows[i];
}

/* An order is a sale unless it was cancelled or refunded before Qoyod had
 * an invoice of it (report.h). */
static int is_sale(const struct store_order *o)
{
    if (o->xfer == STORE_XFER_TRANSFERRED) return 1;
    if (o->xfer == STORE_XFER_SKIPPED) return 0;
    return o->status != MODEL_STATUS_CANCELLED && o->status != MODEL_STATUS_REFUNDED;
}

/* *sum += v, or TH_EMONEY naming what and the month when it does not fit. */
static int add_money(int64_t *sum, int64_t v, const char *what, int month, struct th_err *err)
{
    if (!__builtin_add_overflow(*sum, v, sum)) return 0;
    char m[REPORT_MONTH_LEN];
    return th_err_set(err, TH_EMONEY, "the %s of %s do not fit a 64-bit number of halalas", what,
                      month ? report_month_format(month, m) : "the report");
}

static int add_row(struct report_row *to, const struct report_row *r, struct th_err *err)
{
    to->orders += r->orders;
    to->transferred += r->transferred;
    to->failed += r->failed;
    to->skipped += r->skipped;
    to->not_transferred += r->not_transferred;
    to->credit_notes += r->credit_notes;
    to->credit_pending += r->credit_pending;
    to->credit_failed += r->credit_failed;
    to->credit_review += r->credit_review;
    int rc = add_money(&to->sales, r->sales, "sales", to->month, err);
    if (!rc) rc = add_money(&to->vat, r->vat, "VAT", to->month, err);
    if (!rc) rc = add_money(&to->credit_notes_total, r->credit_notes_total, "credit notes",
                            to->month, err);
    if (!rc) rc = add_money(&to->net_sales, r->net_sales, "net sales", to->month, err);
    return rc;
}

/* Counts the credit notes issued in an order's history. */
static void count_issued(void *arg, int64_t ts_ms, const char *what, const char *detail)
{
    (void)ts_ms;
    (void)detail;
    if (!strcmp(what, "credit note issued")) ++*(int64_t *)arg;
}

static void take(void *arg, const struct store_order *o)
{
    struct collect *c = arg;
    if (c->code) return;
    int m = report_month_of(o->created_at);
    if (m == REPORT_MONTH_NONE) {
        c->undated++;
        return;
    }
    if ((c->from != REPORT_MONTH_NONE && m < c->from) || (c->to != REPORT_MONTH_NONE && m > c->to))
        return;
    struct report_row one = {.month = m, .orders = 1};
    switch (o->xfer) {
    case STORE_XFER_TRANSFERRED:
        one.transferred = 1;
        break;
    case STORE_XFER_FAILED:
        one.failed = 1;
        break;
    case STORE_XFER_SKIPPED:
        one.skipped = 1;
        break;
    case STORE_XFER_NOT_TRANSFERRED:
    case STORE_XFER_TRANSFERRING:
    default:
        one.not_transferred = 1;
        break;
    }
    if (is_sale(o)) {
        one.sales = o->total;
        one.vat = o->tax;
    }
    /* Credit notes only follow a transfer (an invoice to reverse). */
    if (o->credit != STORE_CREDIT_NONE || o->credited) {
        one.credit_notes_total = o->credited;
        one.credit_pending = o->credit == STORE_CREDIT_PENDING;
        one.credit_failed = o->credit == STORE_CREDIT_FAILED;
        one.credit_review = o->credit == STORE_CREDIT_REVIEW;
        if (o->credited) {
            int64_t n = 0;
            int rc = store_order_history(c->s, o->conn_id, o->order_id, count_issued, &n, c->err);
            if (rc) {
                c->code = rc;
                return;
            }
            /* Notes issued before their history was kept still count. */
            one.credit_notes = n ? n : 1;
        }
    }
    if (__builtin_sub_overflow(one.sales, one.credit_notes_total, &one.net_sales)) {
        char mm[REPORT_MONTH_LEN];
        c->code = th_err_set(c->err, TH_EMONEY,
                             "the net sales of %s do not fit a 64-bit number of halalas",
                             report_month_format(m, mm));
        return;
    }
    c->code = add_row(row_for(c, m), &one, c->err);
}

static int valid_month(int m)
{
    return m == REPORT_MONTH_NONE || (m >= MONTH_MIN && m <= MONTH_MAX);
}

static int too_long(int from, int to, struct th_err *err)
{
    char a[REPORT_MONTH_LEN], b[REPORT_MONTH_LEN];
    return th_err_set(err, TH_ELIMIT,
                      "the report would cover %d months (%s to %s); at most %d: choose a "
                      "narrower range with from / to",
                      to - from + 1, report_month_format(from, a), report_month_format(to, b),
                      REPORT_MAX_MONTHS);
}

int report_monthly(struct store *s, int64_t conn_id, int from, int to, struct report *out,
                   struct th_err *err)
{
    if (!s || !out) return th_err_set(err, TH_EINVAL, "report_monthly: no store or result");
    memset(out, 0, sizeof *out);
    char a[REPORT_MONTH_LEN], b[REPORT_MONTH_LEN];
    if (!valid_month(from) || !valid_month(to))
        return th_err_set(err, TH_EINVAL, "a report month must be from 1970-01 to 9999-12");
    if (from != REPORT_MONTH_NONE && to != REPORT_MONTH_NONE) {
        if (from > to)
            return th_err_set(err, TH_EINVAL, "from (%s) is after to (%s)",
                              report_month_format(from, a), report_month_format(to, b));
        if (to - from + 1 > REPORT_MAX_MONTHS) return too_long(from, to, err);
    }
    struct store_conn c = {0};
    int rc = store_conn_get(s, conn_id, &c, err);
    if (rc) return rc;
    struct collect col = {.s = s, .from = from, .to = to, .err = err};
    rc = store_order_list(s, conn_id, -1, take, &col, err);
    if (!rc) rc = col.code;
    if (rc) goto out;

    /* Lay the months out densely. */
    if (col.n) {
        if (from == REPORT_MONTH_NONE) from = col.rows[0].month;
        if (to == REPORT_MONTH_NONE) to = col.rows[col.n - 1].month;
    } else if (from != REPORT_MONTH_NONE || to != REPORT_MONTH_NONE) {
        if (from == REPORT_MONTH_NONE) from = to;
        if (to == REPORT_MONTH_NONE) to = from;
    }
    if (from != REPORT_MONTH_NONE && to - from + 1 > REPORT_MAX_MONTHS) {
        rc = too_long(from, to, err);
        goto out;
    }
    out->conn_id = c.id;
    out->platform = c.platform;
    out->store_id = c.store_id;
    out->name = c.name ? xstrdup(c.name) : NULL;
    out->from = from;
    out->to = to;
    out->undated = col.undated;
    if (from != REPORT_MONTH_NONE) {
        out->nrows = (size_t)(to - from + 1);
        out->rows = xcalloc(out->nrows, sizeof *out->rows);
        for (size_t i = 0; i < out->nrows; i++)
            out->rows[i].month = from + (int)i;
        for (size_t i = 0; i < col.n; i++)
            out->rows[col.rows[i].month - from] = col.rows[i];
    }
    for (size_t i = 0; i < out->nrows && !rc; i++)
        rc = add_row(&out->total, &out->rows[i], err);
    if (rc) report_release(out);
out:
    free(col.rows);
    store_conn_release(&c);
    return rc;
}

void report_release(struct report *r)
{
    if (!r) return;
    free(r->name);
    free(r->rows);
    memset(r, 0, sizeof *r);
}

/* ---------------------------------------------------------------------- */
/* JSON                                                                     */

/* {"halalas": 34500, "decimal": "345.00"}, as everywhere in the API. */
static json_t *jmoney(int64_t halalas)
{
    char d[MONEY_FMT_MAX];
    return json_pack("{s:I,s:s}", "halalas", (json_int_t)halalas, "decimal",
                     money_format(halalas, d, sizeof d));
}

/* A JSON string, or null; a store name that is not valid UTF-8 keeps its
 * ASCII and shows '?' for the rest rather than vanishing. */
static json_t *jtext(const char *s)
{
    if (!s) return json_null();
    json_t *v = json_string(s);
    if (v) return v;
    char *c = xstrdup(s);
    for (unsigned char *p = (unsigned char *)c; *p; p++)
        if (*p >= 0x80 || *p < 0x20) *p = '?';
    v = json_string(c);
    free(c);
    return v ? v : json_null();
}

static json_t *jmonth(int m)
{
    char t[REPORT_MONTH_LEN];
    return m == REPORT_MONTH_NONE ? json_null() : json_string(report_month_format(m, t));
}

static json_t *row_json(const struct report_row *r, int with_month)
{
    json_t *j = json_object();
    if (with_month) json_object_set_new(j, "month", jmonth(r->month));
    json_object_set_new(j, "orders", json_integer(r->orders));
    json_object_set_new(j, "transferred", json_integer(r->transferred));
    json_object_set_new(j, "failed", json_integer(r->failed));
    json_object_set_new(j, "skipped", json_integer(r->skipped));
    json_object_set_new(j, "not_transferred", json_integer(r->not_transferred));
    json_object_set_new(j, "sales", jmoney(r->sales));
    json_object_set_new(j, "vat", jmoney(r->vat));
    json_object_set_new(j, "credit_notes",
                        json_pack("{s:I,s:o,s:I,s:I,s:I}", "count", (json_int_t)r->credit_notes,
                                  "total", jmoney(r->credit_notes_total), "pending",
                                  (json_int_t)r->credit_pending, "failed",
                                  (json_int_t)r->credit_failed, "review",
                                  (json_int_t)r->credit_review));
    json_object_set_new(j, "net_sales", jmoney(r->net_sales));
    return j;
}

char *report_json(const struct report *r)
{
    json_t *root = json_object();
    json_object_set_new(root, "connection",
                        json_pack("{s:I,s:s,s:I,s:o}", "id", (json_int_t)r->conn_id, "platform",
                                  model_platform_name(r->platform), "store_id",
                                  (json_int_t)r->store_id, "name", jtext(r->name)));
    json_object_set_new(root, "timezone", json_string(REPORT_TIMEZONE));
    json_object_set_new(root, "utc_offset", json_string("+03:00"));
    json_object_set_new(root, "from", jmonth(r->from));
    json_object_set_new(root, "to", jmonth(r->to));
    json_t *months = json_array();
    for (size_t i = 0; i < r->nrows; i++)
        json_array_append_new(months, row_json(&r->rows[i], 1));
    json_object_set_new(root, "months", months);
    json_object_set_new(root, "total", row_json(&r->total, 0));
    json_object_set_new(root, "undated_orders", json_integer(r->undated));
    json_object_set_new(root, "credit_notes_tracked",
                        json_boolean(REPORT_CREDIT_NOTES_TRACKED));
    char *text = jv_dump(root);
    json_decref(root);
    return text;
}
