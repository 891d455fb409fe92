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
#include "qoyod/plan.h"
#include "qoyod/qoyod.h"
#include "store/store.h"
#include "worker/limit.h"

/* What the worker should do with the job after transfer_run. */
enum transfer_verdict {
    TRANSFER_DONE = 0,  /* finished (transferred, failed for good, skipped, or waiting for
                           a later status): remove the job */
    TRANSFER_RETRY = 1, /* a temporary failure: run again after `retry_after_ms` */
};

/* Why a job runs again: the worker picks the delay by it
 * (worker_retry_delay_ms) and counts only failures in the job's attempts,
 * which its backoff grows with. */
enum transfer_cause {
    TRANSFER_CAUSE_FAILURE = 0, /* unknown outcome, 5xx, network error, the store failed:
                                   exponential backoff, capped; counted */
    TRANSFER_CAUSE_RATE = 1,    /* a 429: wait retry_after_ms, what the service said
                                   (Retry-After); not counted */
    TRANSFER_CAUSE_AT_ONCE = 2, /* the cause is gone (a token was refreshed, the job's lease
                                   was lost): run again now; not counted */
    TRANSFER_CAUSE_WAIT = 3,    /* waiting on the merchant or another process (the store needs
                                   a reinstall, its tokens are being renewed): check again
                                   after retry_after_ms; not counted */
};

struct transfer_result {
    enum transfer_verdict verdict;
    enum transfer_cause cause; /* with TRANSFER_RETRY: why */
    int64_t retry_after_ms;    /* RATE and WAIT: how long (ms); 0 otherwise */
    enum store_xfer xfer;      /* the order's state afterwards */
    int64_t pause_account_ms;  /* Qoyod rate-limited the account: pause all its jobs */
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
    /* The job being run, set by the worker (job_id 0: none, as for a
     * transfer run by hand): before each Qoyod call whose time comes more
     * than lease_ms / 3 after the last renewal, the job's lease is renewed
     * (store_job_renew as job_owner), so a long transfer keeps its lease and
     * no other worker, in this process or another, starts the same order. */
    int64_t job_id;
    const char *job_owner;
    int64_t lease_ms;
    int64_t renewed_ms;
    /* Set by a transfer when the store refused its token on a call after
     * the order's read (a product's stock): the token expired meanwhile. */
    int platform_refused;
    /* Set when renewing the job's lease found it taken over by another
     * worker (that one runs the order now). */
    int lease_lost;
};

/* Refresh a token when it expires within this many seconds. */
#define TRANSFER_REFRESH_MARGIN_S (24 * 3600)

/*
 * Makes sure c (a connection as read from the store; its access, refresh
 * and manager tokens, expiry and status must be filled) carries a usable
 * access token: when it expires within the margin, or force is set (the
 * platform refused it), the tokens are refreshed under the store's lock
 * and both new tokens are persisted before anything uses them. This is the
 * only code that spends a refresh token: transfers and the catch-up poll
 * (poller.c) both call it, with env->store, env->platform_http and
 * env->apps set (the rest of env may be zero). Refresh tokens are single
 * use, so a caller whose copy is stale (another thread or process
 * refreshed meanwhile) gets the stored tokens instead of a second refresh.
 * Returns 0 (c up to date); TH_EAUTH when the grant is gone, after marking
 * the connection "needs_reinstall" (no call is made for it until the
 * merchant reinstalls), err saying so; or another code to retry later.
 */
int transfer_token_ensure(struct transfer_env *env, struct store_conn *c, int force,
                          struct th_err *err) TH_MUST_CHECK;

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
 * connection numbers invoices by order number, else "TH-<platform>-<id>";
 * with the connection's reference prefix P (store_conn.ref_prefix, set only
 * when another store shares the Qoyod account) "P-" in front. Writes into
 * out (size n). An order keeps the reference it was first sent with
 * (store_order.qoyod_reference, recorded before the first remote call),
 * whatever its connection's settings become later. */
void transfer_reference(const struct store_conn *c, const struct model_order *o, char *out,
                        size_t n);

/* Texts a spec built below points into. */
struct transfer_texts {
    char ref[160];
    char desc[160];
    char date[32];
};

/* The invoice tarheel asks Qoyod for: order o of connection c, customer
 * contact_id, lines (borrowed). Its reference is transfer_reference, its
 * date the order's day in Riyadh, its text "<platform> order <number>"
 * ("<platform> order P-<number>" with a reference prefix P, so the stores
 * sharing an account tell their invoices apart by text too). */
void transfer_invoice_spec(const struct store_conn *c, const struct model_order *o,
                           int64_t contact_id, const struct qoyod_line_spec *lines, size_t n,
                           struct transfer_texts *t, struct qoyod_invoice_spec *out);

/* The Qoyod lines of plan pl, pids[i] being plan line i's Qoyod product;
 * out has pl->n entries (descriptions borrowed from the plan). */
void transfer_plan_lines(const struct plan *pl, const int64_t *pids, struct qoyod_line_spec *out);

/* ---- credit notes (after transfer; rules in transfer.c) ---- */

/* What an order has had credited so far. */
struct transfer_credited {
    size_t n;
    char **keys;          /* the credited returns' keys ("full", "rest", the store's ids) */
    int full;             /* 1: the whole invoice is credited */
    int64_t *qty;         /* units credited per order line */
    size_t nlines;
    int64_t total;        /* halalas credited */
};

/* One credit note to issue. */
struct transfer_credit {
    char key[96];         /* "full", "rest", or the store's return id */
    char reason[160];     /* why, in plain words (the store's reason when it gives one) */
    struct plan plan;     /* its lines and total */
    int64_t *qty;         /* units it returns per order line */
    size_t nlines;
};

struct transfer_credit_plan {
    size_t n;
    struct transfer_credit *notes; /* owned: transfer_credit_plan_release */
};

/* Whether order o calls for credit notes (cancelled, returned, or returns
 * listed). */
int transfer_credit_needed(const struct model_order *o);

/*
 * The credit notes order o calls for now, given its invoice plan inv (which
 * must come to `invoiced`, the invoice's total in Qoyod, else TH_ECONFLICT:
 * the order changed after transfer) and what is credited already (done):
 * one per listed return not yet credited (its units, the store's refund
 * amount), then for a cancelled or fully returned order the whole invoice
 * ("full"), or what remains of it after the returns ("rest"). Returns 0 with
 * *out filled (maybe empty; release it), or TH_EMONEY / TH_EINVAL with both
 * figures when a return does not fit the invoice.
 */
int transfer_credits(const struct model_order *o, const struct plan *inv, int64_t invoiced,
                     const struct transfer_credited *done, struct transfer_credit_plan *out,
                     struct th_err *err) TH_MUST_CHECK;
void transfer_credit_plan_release(struct transfer_credit_plan *p);
/* Records credit note cn (its key, units and total) in d. */
void transfer_credited_add(struct transfer_credited *d, const struct transfer_credit *cn);
void transfer_credited_release(struct transfer_credited *d);

/* The credit note's reference: "CN-<invoice ref>" for the whole or the
 * rest of the invoice, "CN-<invoice ref>-<key>" for a listed return. */
void transfer_credit_reference(const char *invoice_ref, const char *key, char *out, size_t n);

/* The credit note tarheel asks Qoyod for (texts in *t, lines borrowed). */
void transfer_credit_spec(const struct store_conn *c, const struct model_order *o,
                          const char *invoice_ref, int64_t invoice_id, int64_t contact_id,
                          const struct transfer_credit *cn, const struct qoyod_line_spec *lines,
                          size_t n, struct transfer_texts *t, struct qoyod_credit_spec *out);

/* Whether status `st` has reached the merchant's trigger (new < ready <
 * in transit < completed). */
int transfer_triggered(enum model_status trigger, enum model_status st);

/* Whether a state change is an edge of the diagram above (for the one
 * function that performs transitions, and for tests). */
int transfer_edge_ok(enum store_xfer from, enum store_xfer to);

#endif
