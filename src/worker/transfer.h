/*
 * transfer — the per-order transfer state machine, and the delivery of one
 * order to Qoyod.
 *
 * Owns the only code that changes an order's transfer state (struct
 * store_order.xfer) and the rules for when an order becomes an invoice. It
 * fetches the authoritative order through the platform adapter, maps
 * customers and products to Qoyod ids (stored mappings first), creates the
 * invoice and, with "financial invoice" on, its payment. It classifies every
 * outcome into done / retry later / failed and leaves the when of retrying
 * to the worker (worker.c). It must not talk HTTP except through the
 * platform adapter and the qoyod client.
 */
#ifndef TH_WORKER_TRANSFER_H
#define TH_WORKER_TRANSFER_H

#include <stdint.h>

#include "core/err.h"
#include "model/order.h"
#include "net/httpc.h"
#include "platform/platform.h"
#include "store/store.h"
#include "worker/limit.h"

/* What the worker should do with the job after transfer_run. */
enum transfer_verdict {
    TRANSFER_DONE = 0,  /* finished (transferred, failed for good, skipped, or waiting for
                           a later status): remove the job */
    TRANSFER_RETRY = 1, /* a temporary failure: run again after `retry_after_ms` */
};

struct transfer_result {
    enum transfer_verdict verdict;
    int64_t retry_after_ms; /* hint from the remote (Retry-After), 0 = use backoff */
    enum store_xfer xfer;   /* the order's state afterwards */
    int64_t pause_account_ms; /* Qoyod rate-limited the account: pause all its jobs */
};

/* Per-thread resources a transfer uses (borrowed). */
struct transfer_env {
    struct store *store;
    struct httpc *platform_http;  /* for platform API calls */
    struct httpc_config qoyod_cfg;
    /* OAuth clients by enum model_platform, for token refresh (borrowed;
     * an entry may be NULL: that platform's tokens are then never refreshed). */
    const struct platform_app *apps[4];
    struct limit *limit;          /* per-account Qoyod call budget; NULL = none */
};

/* Refresh a token when it expires within this many seconds. */
#define TRANSFER_REFRESH_MARGIN_S (24 * 3600)

/*
 * Runs one job: brings order `order_id` of connection `conn_id` as far as its
 * status and the connection's settings allow. Automatic jobs (manual = 0)
 * leave alone orders created before the connection date and orders not yet
 * at the trigger status; a job queued by hand (manual = 1) transfers any
 * order that is not cancelled. Returns 0 with *res filled, or
 * a TH_E* code when the store itself failed (the job is retried).
 *
 * State diagram (enum store_xfer):
 *
 *     NOT_TRANSFERRED --(status reached trigger, or by hand)--> TRANSFERRING
 *     TRANSFERRING --(invoice [+payment] exists)--> TRANSFERRED
 *     TRANSFERRING --(temporary failure)----------> TRANSFERRING (job retried)
 *     TRANSFERRING --(permanent failure)----------> FAILED (reason)
 *     NOT_TRANSFERRED --(cancelled first)---------> SKIPPED
 *     FAILED --(retry by hand)--------------------> TRANSFERRING
 *
 * While TRANSFERRING an invoice may or may not exist in Qoyod; the next
 * attempt looks it up by its reference before creating anything, which is
 * why no path creates a second invoice.
 */
int transfer_run(struct transfer_env *env, int64_t conn_id, int64_t order_id, int manual,
                 struct transfer_result *res, struct th_err *err) TH_MUST_CHECK;

/* The Qoyod invoice reference for an order: the order number when the
 * connection numbers invoices by order number, else "TH-<platform>-<id>".
 * Writes into out (size n). */
void transfer_reference(const struct store_conn *c, const struct model_order *o, char *out,
                        size_t n);

/* Whether status `st` has reached the merchant's trigger (new < ready <
 * in transit < completed). */
int transfer_triggered(enum model_status trigger, enum model_status st);

/* Whether a state change is an edge of the diagram above (for the one
 * function that performs transitions, and for tests). */
int transfer_edge_ok(enum store_xfer from, enum store_xfer to);

#endif
