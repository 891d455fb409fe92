/*
 * report — the monthly report of one store: for each calendar month in
 * Riyadh time (orders by their creation date), how many orders tarheel
 * knows and in which transfer state, their sales and VAT totals, and the
 * credit notes.
 *
 * Owns those figures, the rules behind them (below) and their JSON form:
 * `tarheel report --json` and GET /api/v1/reports/monthly print the same
 * text from report_json, so the two cannot disagree. It reads the store
 * (store_conn_get, store_order_list) and writes nothing; it makes no remote
 * calls.
 *
 * The rules, to the halala:
 *  - A month is a calendar month in Riyadh time, UTC+3 all year (Saudi
 *    Arabia keeps no daylight saving time): 2024-01-31 22:30 UTC is
 *    2024-02-01 01:30 in Riyadh, so that order is February's.
 *  - orders = transferred + failed + skipped + not_transferred; an order
 *    being sent right now counts as not transferred (it is not in Qoyod
 *    yet).
 *  - sales and vat sum the orders' totals (VAT included) and their VAT as
 *    the platform reports it, over every order of the month except those
 *    cancelled or refunded before Qoyod had an invoice of them (skipped, or
 *    a cancelled / refunded status without a transfer): they never were a
 *    sale. A transferred order always counts: if it is cancelled later, a
 *    credit note (issue 6) reverses it, not the report.
 *  - credit notes: the Qoyod credit notes tarheel issued against the
 *    month's orders (a cancellation, refund or return after transfer;
 *    worker/transfer.c), in the month of the order they reverse, like
 *    everything else here: a month's net_sales is what its orders still
 *    bring in. count is the notes issued ("credit note issued" in the
 *    order's history), total their sum (store_order.credited, VAT
 *    included). pending, failed and review count the orders whose credit
 *    state is so (a note due or in flight; refused; changed in a way no
 *    note settles): what is still to credit is not in total.
 *  - net_sales = sales - credit notes total. VAT is the orders' VAT: a
 *    credit note's VAT part is not kept apart, so vat is not reduced.
 *  - An order whose platform data was never fetched has no creation date:
 *    it is in no month, and is counted in `undated` instead.
 *  - Orders saved before store schema 5 have a VAT of 0 until the worker
 *    saves them again.
 */
#ifndef TH_WORKER_REPORT_H
#define TH_WORKER_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "store/store.h"

/* Riyadh is UTC+3 all year. */
#define REPORT_UTC_OFFSET_S (3 * 3600)
#define REPORT_TIMEZONE "Asia/Riyadh"
/* Most months in one report: twenty years, beyond the history of any store
 * on Salla or Zid (both opened in 2016-2017); it bounds the answer to about
 * 100 KB of JSON. A longer range is refused with TH_ELIMIT. */
#define REPORT_MAX_MONTHS 240
/* 1: the credit-note figures are real (tarheel issues credit notes since
 * issue 6); 0 in versions before it, where they were always 0. */
#define REPORT_CREDIT_NOTES_TRACKED 1
/* "2024-01" and its terminating NUL. */
#define REPORT_MONTH_LEN 8
/* A month bound that is not given (report_monthly's from / to). */
#define REPORT_MONTH_NONE 0

/*
 * Months are numbered year * 12 + (month - 1): 2024-01 is 24288. Every
 * valid month (years 1970 to 9999) is above REPORT_MONTH_NONE.
 */

/* One month's figures (or the totals over the months). */
struct report_row {
    int month;                  /* the month number; REPORT_MONTH_NONE in the totals */
    int64_t orders;             /* orders created in the month */
    int64_t transferred;        /* in Qoyod, one invoice each */
    int64_t failed;             /* stopped with a reason to fix */
    int64_t skipped;            /* deliberately not sent (cancelled before transfer) */
    int64_t not_transferred;    /* not sent (yet), including those being sent right now */
    int64_t sales;              /* halalas: totals of the orders that are sales (see above) */
    int64_t vat;                /* halalas: VAT of the same orders */
    int64_t credit_notes;       /* credit notes issued against the month's orders */
    int64_t credit_notes_total; /* halalas: their sum, VAT included */
    int64_t credit_pending;     /* orders with a credit note due or in flight */
    int64_t credit_failed;      /* orders whose credit note Qoyod refused */
    int64_t credit_review;      /* orders changed after transfer, for a person to settle */
    int64_t net_sales;          /* halalas: sales - credit_notes_total */
};

struct report {
    /* the store */
    int64_t conn_id;
    enum model_platform platform;
    int64_t store_id;
    char *name;                 /* the store's name, NULL when unknown */
    /* the months covered, inclusive; both REPORT_MONTH_NONE when none */
    int from, to;
    size_t nrows;
    struct report_row *rows;    /* one per month from..to, oldest first, empty months included */
    struct report_row total;    /* the sum of rows */
    int64_t undated;            /* orders without a creation date: in no month */
};

/*
 * Computes the report of connection conn_id over the months from..to
 * (inclusive month numbers). A bound given as REPORT_MONTH_NONE is the
 * month of the first (from) or last (to) dated order, and never beyond the
 * other bound; with neither given and no dated order the report has no
 * rows. Orders outside the range are not counted (the undated are, in
 * `undated`).
 * Returns 0 with *out filled (new: report_release), or TH_ENOTFOUND (no
 * such connection), TH_EINVAL (from after to, or a month outside 1970-9999),
 * TH_ELIMIT (more than REPORT_MAX_MONTHS months), TH_EMONEY (a sum that does
 * not fit int64) or the store's error; *out is then zeroed. Any thread.
 */
int report_monthly(struct store *s, int64_t conn_id, int from, int to, struct report *out,
                   struct th_err *err) TH_MUST_CHECK;
/* Frees what the report owns and zeroes it. NULL is a no-op. */
void report_release(struct report *r);

/*
 * The report as JSON (new: free), the shape docs/openapi.yaml calls
 * MonthlyReport: the store, the time zone, from / to ("2024-01" or null),
 * one object per month with the counts, money as {"halalas", "decimal"},
 * credit_notes {"count", "total", "pending", "failed", "review"} and
 * "net_sales", the same for "total", and "undated_orders" and
 * "credit_notes_tracked".
 */
char *report_json(const struct report *r);

/* The month of a unix time in Riyadh; REPORT_MONTH_NONE when unix_s <= 0
 * (no date). */
int report_month_of(int64_t unix_s);
/* The first second of month m in Riyadh, in unix seconds. */
int64_t report_month_start(int m);
/* Parses "YYYY-MM" (exactly that: 2024-01, years 1970 to 9999) into *m.
 * Returns 0, or -1 when text is anything else. */
int report_month_parse(const char *text, int *m);
/* Writes month m as "2024-01" into out (REPORT_MONTH_LEN bytes); "" for
 * REPORT_MONTH_NONE. Returns out. */
char *report_month_format(int m, char *out);

#endif
