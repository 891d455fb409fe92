/*
 * cli/report — `tarheel report` (see report.h).
 *
 * The table is laid out in two passes: every cell is formatted first, then
 * each column is as wide as its widest cell, so the columns stay aligned
 * whatever the amounts (a store with a million riyals a month included).
 * Numbers are right-aligned, the month left-aligned.
 */
#include "cli/report.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/err.h"
#include "core/money.h"
#include "core/xmalloc.h"
#include "platform/platform.h"
#include "store/store.h"
#include "worker/report.h"

#define NCOLS 11
#define CELL_MAX MONEY_FMT_MAX

static const char *const headers[NCOLS] = {
    "MONTH", "ORDERS", "TRANSFERRED",  "FAILED",   "SKIPPED",  "NOT TRANSFERRED",
    "SALES", "VAT",    "CREDIT NOTES", "CREDITED", "NET SALES"};

static void row_cells(const struct report_row *r, const char *label, char cells[NCOLS][CELL_MAX])
{
    snprintf(cells[0], CELL_MAX, "%s", label);
    snprintf(cells[1], CELL_MAX, "%lld", (long long)r->orders);
    snprintf(cells[2], CELL_MAX, "%lld", (long long)r->transferred);
    snprintf(cells[3], CELL_MAX, "%lld", (long long)r->failed);
    snprintf(cells[4], CELL_MAX, "%lld", (long long)r->skipped);
    snprintf(cells[5], CELL_MAX, "%lld", (long long)r->not_transferred);
    money_format(r->sales, cells[6], CELL_MAX);
    money_format(r->vat, cells[7], CELL_MAX);
    snprintf(cells[8], CELL_MAX, "%lld", (long long)r->credit_notes);
    money_format(r->credit_notes_total, cells[9], CELL_MAX);
    money_format(r->net_sales, cells[10], CELL_MAX);
}

static void print_cells(FILE *out, char cells[NCOLS][CELL_MAX], const int *width)
{
    for (int c = 0; c < NCOLS; c++)
        fprintf(out, c == 0 ? "%-*s" : "  %*s", width[c], cells[c]);
    fputc('\n', out);
}

static void print_table(FILE *out, const struct report *r)
{
    size_t nlines = r->nrows + 2; /* header, months, total */
    char(*cells)[NCOLS][CELL_MAX] = xcalloc(nlines, sizeof *cells);
    for (int c = 0; c < NCOLS; c++)
        snprintf(cells[0][c], CELL_MAX, "%s", headers[c]);
    for (size_t i = 0; i < r->nrows; i++) {
        char m[REPORT_MONTH_LEN];
        row_cells(&r->rows[i], report_month_format(r->rows[i].month, m), cells[i + 1]);
    }
    row_cells(&r->total, "TOTAL", cells[nlines - 1]);
    int width[NCOLS] = {0};
    for (size_t l = 0; l < nlines; l++)
        for (int c = 0; c < NCOLS; c++) {
            int w = (int)strlen(cells[l][c]);
            if (w > width[c]) width[c] = w;
        }

    char from[REPORT_MONTH_LEN], to[REPORT_MONTH_LEN];
    fprintf(out, "Monthly report of %s store %lld%s%s%s (connection %lld)",
            model_platform_name(r->platform), (long long)r->store_id, r->name ? " \"" : "",
            r->name ? r->name : "", r->name ? "\"" : "", (long long)r->conn_id);
    if (r->nrows)
        fprintf(out, ", %s to %s", report_month_format(r->from, from),
                report_month_format(r->to, to));
    fprintf(out, "\nMonths in Riyadh time (UTC+3), orders by creation date; money in SAR.\n\n");
    for (size_t l = 0; l < nlines; l++)
        print_cells(out, cells[l], width);
    free(cells);
    fputc('\n', out);
    if (!r->nrows) fprintf(out, "No orders in this range.\n");
    fprintf(out, "Sales and VAT leave out orders cancelled or refunded before they reached "
                 "Qoyod.\n");
    fprintf(out, "Credit notes reverse orders cancelled, refunded or returned after their "
                 "transfer; they count in the month of the order, and net sales = sales - "
                 "credited.\n");
    const struct report_row *t = &r->total;
    if (t->credit_pending || t->credit_failed || t->credit_review)
        fprintf(out, "Still to credit: %lld order%s with a credit note due, %lld refused by "
                     "Qoyod, %lld to review (`tarheel orders list`); not in CREDITED.\n",
                (long long)t->credit_pending, t->credit_pending == 1 ? "" : "s",
                (long long)t->credit_failed, (long long)t->credit_review);
    if (r->undated)
        fprintf(out, "%lld order%s not fetched from the platform yet ha%s no date and %s in no "
                     "month.\n",
                (long long)r->undated, r->undated == 1 ? "" : "s", r->undated == 1 ? "s" : "ve",
                r->undated == 1 ? "is" : "are");
}

static int month_opt(const char *name, const char *text, int *m)
{
    *m = REPORT_MONTH_NONE;
    if (!text) return 0;
    if (report_month_parse(text, m) == 0) return 0;
    fprintf(stderr, "tarheel: --%s must be a month as YYYY-MM (2024-01), not '%s'\n", name, text);
    return CLI_USAGE;
}

static int fail(const struct th_err *err, int rc)
{
    fprintf(stderr, "tarheel: %s\n  what to do: %s\n", err->msg, th_err_todo(err->code));
    return rc;
}

int cli_report(const struct cli_report_opts *o, FILE *out)
{
    int64_t store_id = 0;
    char *end = NULL;
    if (o->store) {
        errno = 0;
        store_id = strtoll(o->store, &end, 10);
    }
    if (!o->store || !*o->store || *end || errno || store_id <= 0) {
        fprintf(stderr, "tarheel: --store STORE_ID is required (the platform's store id, as in "
                        "`tarheel settings`)\n");
        return CLI_USAGE;
    }
    const char *pname = o->platform ? o->platform : "salla";
    const struct platform_ops *p = platform_by_name(pname);
    if (!p) {
        fprintf(stderr, "tarheel: unknown platform '%s' (salla or zid)\n", pname);
        return CLI_USAGE;
    }
    int from, to;
    int rc = month_opt("from", o->from, &from);
    if (!rc) rc = month_opt("to", o->to, &to);
    if (rc) return rc;

    struct store *s;
    struct th_err err;
    if (store_open(&s, o->db, &err) != 0) {
        fprintf(stderr, "tarheel: cannot open the database %s: %s\n  %s\n", o->db, err.msg,
                th_err_todo(err.code));
        return CLI_FAIL;
    }
    struct store_conn c = {0};
    if (store_conn_find(s, p->platform, store_id, &c, &err) != 0) {
        if (err.code == TH_ENOTFOUND)
            fprintf(stderr, "tarheel: %s store %lld is not connected (see `tarheel connect %s`)\n",
                    pname, (long long)store_id, pname);
        else
            fail(&err, CLI_FAIL);
        rc = err.code == TH_ENOTFOUND ? CLI_NOTFOUND : cli_exit_code(err.code);
        store_close(s);
        return rc;
    }
    struct report r;
    rc = report_monthly(s, c.id, from, to, &r, &err);
    store_conn_release(&c);
    store_close(s);
    if (rc) return fail(&err, rc == TH_EINVAL || rc == TH_ELIMIT ? CLI_USAGE : CLI_FAIL);
    if (o->json) {
        char *text = report_json(&r);
        fprintf(out, "%s\n", text);
        free(text);
    } else {
        print_table(out, &r);
    }
    report_release(&r);
    return CLI_OK;
}
