/*
 * manage — what an operator asks of tarheel by hand, shared by the CLI and
 * the REST API so both behave the same: queue orders for transfer, retry the
 * failed ones, change a connection's settings.
 *
 * Owns the rules for those requests (which ids and setting values are
 * valid, what a "by hand" job is, what the order's history says about it)
 * and their wording. It only queues jobs and edits settings in memory: it
 * makes no remote call and never changes an order's transfer state (the
 * worker runs the jobs; transfer.c owns the state).
 */
#ifndef TH_WORKER_MANAGE_H
#define TH_WORKER_MANAGE_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "store/store.h"

/* Orders one request may queue: a page of the dashboard's order list is at
 * most a few hundred; 1000 bounds the work one HTTP request does in one go
 * (bulk backfills are issue 4's job, not this one's). */
#define MANAGE_MAX_ORDERS 1000

/*
 * Queues a job marked manual (store_job_enqueue) for each of the n order ids
 * of connection conn_id, in order, and notes "queued by hand" in each
 * order's history with `who` as the detail ("from the API"). An order
 * tarheel has not seen yet may be queued: the worker fetches it from the
 * platform. A manual job transfers any order that is not cancelled and
 * never makes a second invoice (an order already transferred stays as is).
 *
 * Checks everything before queuing anything: TH_ENOTFOUND when the
 * connection does not exist, TH_EINVAL for n == 0 or an id <= 0 (the message
 * names it), TH_ELIMIT past MANAGE_MAX_ORDERS. The orders are queued in
 * batches of STORE_MAX_ENQUEUE, each one transaction with its notes
 * (store_job_enqueue_many). A store failure part-way returns its code;
 * *queued (may be NULL) always says how many were queued (whole batches).
 */
int manage_transfer(struct store *s, int64_t conn_id, const int64_t *order_ids, size_t n,
                    const char *who, size_t *queued, struct th_err *err) TH_MUST_CHECK;

/*
 * Queues a manual job (as manage_transfer) for every order in the failed
 * state, of connection conn_id or of every connection when conn_id is 0,
 * calling fn (may be NULL) for each order queued. Returns 0 when all were
 * queued; TH_ENOTFOUND when conn_id is not 0 and does not exist; otherwise
 * the first store failure, after trying every order. *queued (may be NULL)
 * says how many were queued.
 */
int manage_retry_failed(struct store *s, int64_t conn_id, const char *who,
                        void (*fn)(void *arg, int64_t conn_id, int64_t order_id), void *arg,
                        size_t *queued, struct th_err *err) TH_MUST_CHECK;
/* The same for the orders of tenant's connections only (tenant 0: every
 * tenant's, as manage_retry_failed); conn_id of another tenant is
 * TH_ENOTFOUND. */
int manage_retry_failed_in(struct store *s, int64_t tenant, int64_t conn_id, const char *who,
                           void (*fn)(void *arg, int64_t conn_id, int64_t order_id), void *arg,
                           size_t *queued, struct th_err *err) TH_MUST_CHECK;

/*
 * Sets one setting of c (in memory; the caller saves it with
 * store_conn_put) from its text form. Names, with '-' and '_' alike:
 *   trigger              new | ready | in_transit | completed
 *   customer_per_invoice on | off (also true/false, yes/no, 1/0)
 *   number_by_order      on | off
 *   financial_invoice    on | off
 *   inventory_id         a Qoyod inventory location id, > 0 (alias inventory)
 *   payment_account_id   a Qoyod account id, > 0 (alias payment_account)
 *   stock_sync           on | off: push Qoyod's stock changes to the store
 *   stock_interval       seconds between stock polls, STORE_STOCK_INTERVAL_MIN to _MAX
 *                        (alias stock_interval_s)
 *   reference_prefix     none, or 1 to STORE_REF_PREFIX_MAX letters and digits (kept in
 *                        capitals; alias ref_prefix): what sets this store's Qoyod
 *                        references apart on a shared account. Saving it is refused once
 *                        an order was sent (store_conn_put_settings).
 * Returns 0, or TH_EINVAL (c unchanged) with a message that starts with the
 * name as given and says what is allowed.
 */
int manage_setting_set(struct store_conn *c, const char *name, const char *value,
                       struct th_err *err) TH_MUST_CHECK;

#endif
