/*
 * stock — the stock poller: moves stock changes made in Qoyod (a purchase,
 * a count, a transfer) to the store, one direction only (seeds 001, 002:
 * "when quantities are purchased in Qoyod it is reflected in Salla").
 *
 * Owns, per connection with stock sync on, the stock cursor and progress
 * (mappings of kind "stock": "cursor" and "polled_at" in unix ms, "full_at",
 * "full_page", "full_start") and the per-SKU rows of store_stock_*. Qoyod
 * never pushes, so each round lists the products Qoyod updated since the
 * cursor (q[updated_at_gteq]) at the store's chosen location, and a full
 * scan a day, a few pages a round, catches what the cursor cannot see
 * (whether a stock movement bumps updated_at is not documented, qoyod.md
 * §2.9). Only SKUs whose count changed for a reason other than tarheel's
 * own documents are written to the store, in the platform's bulk call.
 * It never writes to Qoyod and never touches orders.
 *
 * The no-bounce rule (docs/STOCK.md): tarheel's own invoices and opening
 * balances are recorded (store_stock_own_begin/settle, by worker/transfer.c)
 * before they are sent; a change of Qoyod's count is first explained by
 * them, and only the rest is pushed. A platform that adds and takes
 * (Salla) gets that rest as an increment or decrement; a platform that
 * takes counts only (Zid) gets Qoyod's count, and then an invoice of an
 * order the store took before that count was written is pushed too (the
 * count had undone the store's own deduction).
 */
#ifndef TH_WORKER_STOCK_H
#define TH_WORKER_STOCK_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "net/httpc.h"
#include "store/store.h"

#define STOCK_OVERLAP_S 120           /* the cursor re-lists two minutes: late commits in Qoyod */
#define STOCK_FULL_SCAN_S (24 * 3600) /* a full scan a day, the backstop for the cursor */
#define STOCK_MAX_PAGES 200           /* cursor pages per store per round (20 000 products) */
#define STOCK_FULL_PAGES 20           /* full-scan pages per store per round */
/* Qoyod calls a minute the stock poller makes per account: with the
 * worker's 240 that stays under Qoyod's 300 (qoyod.md §2.7). */
#define STOCK_QOYOD_RPM 40
#define STOCK_TICK_MS 2000 /* how often the thread looks for stores due */

struct stock_config {
    int64_t now_ms;   /* the round's clock; 0 = the real one */
    int platform_rpm; /* store calls a minute; 0 = the platform's stock_rpm, < 0 = no pacing */
    int qoyod_rpm;    /* 0 = STOCK_QOYOD_RPM, < 0 = no pacing */
    int force;        /* 1: poll every store with stock sync on now, whatever its interval */
    int overlap_s;    /* the cursor's overlap; 0 = STOCK_OVERLAP_S, < 0 = none (bench) */
    struct httpc_config qoyod_http;
};

struct stock_stats {
    size_t stores;      /* connections polled */
    size_t listed;      /* products read from Qoyod */
    size_t changed;     /* SKUs whose count changed for a reason not tarheel's */
    size_t pushed;      /* SKUs written to the store */
    size_t not_found;   /* of those, unknown to the store */
    size_t untracked;   /* SKUs the store does not count (left alone) */
    size_t busy;        /* SKUs held back: one of tarheel's own documents is in flight */
    size_t qoyod_calls; /* remote calls made, by side */
    size_t store_calls;
    size_t failed; /* stores whose round stopped on a remote failure (retried) */
};

/* One round over every active connection with stock sync on that is due
 * (its interval passed since its last poll), or every one when cfg->force.
 * Remote failures are logged and counted, not returned: the next round
 * starts where this one stopped. Returns 0, or a store error. */
int stock_round(struct store *s, struct httpc *hc, const struct stock_config *cfg,
                struct stock_stats *st, struct th_err *err) TH_MUST_CHECK;

struct stock_poller;
/* A thread running stock_round every STOCK_TICK_MS (each store at its own
 * interval), fields_round (worker/fields.h: name, price and cost, each store
 * every FIELDS_INTERVAL_S) and catalogue_round (stores connected without the
 * CLI get their accounts and categories). cfg may be NULL (defaults). */
int stock_poller_start(struct stock_poller **out, struct store *s, const struct stock_config *cfg,
                       struct th_err *err) TH_MUST_CHECK;
void stock_poller_stop(struct stock_poller *p);

#endif
