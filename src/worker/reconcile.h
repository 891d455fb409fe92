/*
 * reconcile — compares a store's orders with the Qoyod invoices and credit
 * notes tarheel made for them, over a range of creation dates.
 *
 * Owns the rules for what counts as a difference (docs/MONEY.md,
 * "Reconciliation"): an order that should have an invoice and has none, an
 * invoice tarheel made with no order, two invoices for one order, an
 * invoice whose total is not the order's, credit notes that do not add up
 * to what was cancelled or returned. It is read-only: it lists the store's
 * orders through the platform adapter, reads Qoyod's lists and tarheel's
 * own records, and writes nothing anywhere (not even a refreshed token), so
 * it is safe to run at any time. `tarheel reconcile` and
 * GET /api/v1/reconcile print what reconcile_json returns.
 */
#ifndef TH_WORKER_RECONCILE_H
#define TH_WORKER_RECONCILE_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "net/httpc.h"
#include "store/store.h"

/* Orders a reconciliation reads at most (each is one platform request): a
 * month of a busy store; a longer range is refused with TH_ELIMIT. */
#define RECONCILE_MAX_ORDERS 20000
/* Days a range may span (the Qoyod lists are read for the whole range). */
#define RECONCILE_MAX_DAYS 366

enum reconcile_kind {
    RECONCILE_NO_INVOICE = 0, /* the order should be in Qoyod and is not */
    RECONCILE_NO_ORDER = 1,   /* an invoice tarheel made matches no order of the range */
    RECONCILE_DUPLICATE = 2,  /* more than one invoice for one order */
    RECONCILE_AMOUNT = 3,     /* the invoice's total is not the order's */
    RECONCILE_CREDIT = 4,     /* the credit notes are not what was cancelled or returned */
    RECONCILE_FAILED = 5,     /* not in Qoyod because tarheel failed it: known, with its reason */
};

struct reconcile_item {
    enum reconcile_kind kind;
    int64_t order_id;          /* 0 for an invoice with no order */
    char number[64];           /* the order number ("" when none) */
    char reference[128];       /* the invoice reference */
    int64_t invoice_id;        /* Qoyod's id, 0 when none */
    int64_t store_amount;      /* halalas: the order's total, or what should be credited */
    int64_t qoyod_amount;      /* halalas: what Qoyod has */
    char detail[320];          /* in plain words */
};

struct reconcile_report {
    int64_t conn_id;
    char from[11], to[11];
    size_t orders;             /* store orders created in the range */
    size_t expected;           /* of which should have an invoice */
    size_t invoices;           /* tarheel's invoices in Qoyod issued in the range */
    size_t credit_notes;       /* tarheel's credit notes against them */
    int64_t store_total;       /* Σ totals of the orders that should have an invoice */
    int64_t invoiced_total;    /* Σ totals of tarheel's invoices of the range */
    int64_t store_credits;     /* Σ of what was cancelled or returned after invoicing */
    int64_t credited_total;    /* Σ of the credit notes */
    size_t differences;        /* items that are not RECONCILE_FAILED */
    size_t n;
    struct reconcile_item *items; /* owned: reconcile_report_release */
};

/* What reconcile_run needs (borrowed). */
struct reconcile_env {
    struct store *store;
    struct httpc *platform_http;
    struct httpc_config qoyod_cfg;
};

/*
 * Reconciles connection conn_id over orders created from `from` to `to`
 * ("YYYY-MM-DD", Riyadh days, both included). Returns 0 with *out filled
 * (release it), or TH_EINVAL (dates), TH_ENOTFOUND (connection), TH_ELIMIT,
 * or the platform's / Qoyod's failure (err says which call).
 */
int reconcile_run(const struct reconcile_env *env, int64_t conn_id, const char *from,
                  const char *to, struct reconcile_report *out, struct th_err *err) TH_MUST_CHECK;
void reconcile_report_release(struct reconcile_report *r);

/* "no_invoice", "no_order", "duplicate", "amount", "credit", "failed". */
const char *reconcile_kind_name(enum reconcile_kind k);

/* The report as the API's JSON (new text; free()). */
char *reconcile_json(const struct reconcile_report *r);

#endif
