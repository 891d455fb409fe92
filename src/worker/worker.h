/*
 * worker — the scheduler: threads that claim jobs from the store, run the
 * transfer state machine on each, and decide when to retry.
 *
 * Owns retry timing (backoff with jitter, capped; Retry-After honoured) and
 * the worker threads' lifecycle. Jobs are claimed with a lease, so a worker
 * that dies leaves its job to be claimed again after the lease expires; the
 * transfer's reference lookup makes that re-run safe. It must not make
 * remote calls itself (transfer.c does) nor write order state.
 */
#ifndef TH_WORKER_WORKER_H
#define TH_WORKER_WORKER_H

#include <stdint.h>

#include "core/err.h"
#include "net/httpc.h"
#include "platform/platform.h"
#include "store/store.h"
#include "worker/transfer.h"

/* Backoff after a failure (an unknown outcome, a 5xx, a network error):
 * first retry after WORKER_BACKOFF_BASE_MS, doubling with every failure,
 * capped at WORKER_BACKOFF_MAX_MS, with ±25 % jitter so stores do not
 * retry in step. Why 60 s: an order then reaches Qoyod within about a
 * minute of an outage ending, as a merchant watching it expects (the old
 * ten minutes left orders waiting 2–6 minutes after a few transient faults
 * in the fault matrix); the retries of a long outage cannot flood Qoyod
 * anyway, because every call goes through the account's call budget (240 a
 * minute, worker/limit.c) and a 429 pauses the whole account; and 60 s is
 * Qoyod's own rate window (300 calls a minute), the longest wait a
 * temporary refusal of Qoyod's normally calls for. Only failures count:
 * rate limits, refreshed tokens and waits for a limit's turn reschedule
 * the job without counting (store_job_defer_as), so their retries wait
 * what they need and never grow the backoff. */
#define WORKER_BACKOFF_BASE_MS 1000
#define WORKER_BACKOFF_MAX_MS (60 * 1000)
/* A service's Retry-After is honoured up to this (a bogus HTTP date far
 * ahead must not park a job for days); Qoyod and the stores ask for less
 * than a minute. */
#define WORKER_RATE_WAIT_MAX_MS (10 * 60 * 1000)
/* A job waiting on the merchant (reinstall) or another process, when the
 * transfer named no time: look again after this. */
#define WORKER_WAIT_DEFAULT_MS (60 * 1000)
/* Threads per process: remote calls dominate, so a few threads per core. */
#define WORKER_MAX_THREADS 64

struct worker_config {
    struct store *store;     /* borrowed; must outlive the worker */
    unsigned threads;        /* 0 = 4 */
    int64_t lease_ms;        /* 0 = 120000 */
    long idle_poll_ms;       /* sleep when no job is due; 0 = 200 */
    long backoff_base_ms;    /* 0 = WORKER_BACKOFF_BASE_MS (tests use small values) */
    struct httpc_config http;
    const char *name;        /* lease owner prefix; NULL = "worker" */
    int per_store;           /* jobs of one store at once; 0 = LIMIT_PER_STORE_DEFAULT (2) */
    int per_account;         /* jobs of one Qoyod account at once; 0 = 4 */
    int qoyod_rpm;           /* Qoyod calls a minute per account; 0 = 240, < 0 = no limit */
    /* OAuth clients for token refresh, by enum model_platform (borrowed;
     * unset entries: that platform's tokens are not refreshed). */
    struct platform_app apps[4];
};

struct worker;

/* Starts the threads. On success worker_stop is mandatory. */
int worker_start(struct worker **out, const struct worker_config *cfg,
                 struct th_err *err) TH_MUST_CHECK;
/* Asks the threads to finish their current job and joins them. NULL ok. */
void worker_stop(struct worker *w);

/* Runs due jobs on the calling thread until none is due or deadline (unix
 * ms) passes. Returns 0, or a store error. For the CLI and tests. */
int worker_drain(const struct worker_config *cfg, int64_t deadline_ms,
                 struct th_err *err) TH_MUST_CHECK;

/* The delay before retry number `attempts` (1-based) after failures, given
 * a random value; pure, for tests. base_ms 0 = WORKER_BACKOFF_BASE_MS. */
int64_t worker_backoff_ms(int attempts, uint64_t rnd, long base_ms);

/* The retry policy, pure (for tests): the delay before a job runs again,
 * by why: FAILURE backs off with the job's counted attempts
 * (worker_backoff_ms); RATE waits hint_ms, what the service said (1 s when
 * it said nothing, at most WORKER_RATE_WAIT_MAX_MS); AT_ONCE is 0; WAIT
 * waits hint_ms (WORKER_WAIT_DEFAULT_MS when 0). */
int64_t worker_retry_delay_ms(enum transfer_cause cause, int64_t hint_ms, int attempts,
                              uint64_t rnd, long base_ms);
/* Whether a retry for this cause counts as a failure in the job's attempts
 * (store_job_retry_as) or not (store_job_defer_as): only FAILURE does. */
int worker_retry_counts(enum transfer_cause cause);

/* Unix time in ms (the store's clock for run_after and leases). */
int64_t worker_now_ms(void);

#endif
