/*
 * pull — old orders: fetches every order a store created in a date range
 * and records each one as "not transferred", for the merchant to send by
 * hand (the seeds' "Pull Orders", then "Transfer" by selection or by date).
 *
 * Owns the progress of each pull, kept in the store (mapping kind "pull",
 * per connection and range), so an interrupted pull continues where it
 * stopped, and the choice of which orders a transfer of a range covers.
 * It records orders through store_order_add only, so an order tarheel
 * already knows keeps its state (a transferred order is never downgraded).
 * It queues no job and writes no transfer state: transferring is asked for
 * separately and goes through worker/manage.c like every request by hand.
 * Its remote calls are the platform adapter's orders_page and order_fetch.
 */
#ifndef TH_WORKER_PULL_H
#define TH_WORKER_PULL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "net/httpc.h"
#include "store/store.h"

/* Orders held in memory for one run (a listing entry is 32 bytes, so 6.4 MB):
 * two years of a busy store's orders. A larger range is pulled as several
 * shorter ones. */
#define PULL_MAX_ORDERS 200000
/* Listing pages one run asks for: bounds a platform that keeps answering
 * "more" (Salla's 60 a page times this is far above PULL_MAX_ORDERS). */
#define PULL_MAX_PAGES 10000
/* Attempts of one request that fails temporarily (unreachable, 5xx) before
 * the run stops (resumable): with the 1 s first backoff, doubling, about
 * 15 s of a service that does not answer. */
#define PULL_MAX_TRIES 5
/* 429 answers in a row for one request before the run stops: Salla's budget
 * is a one-minute window, so this is half an hour of being told to wait. */
#define PULL_MAX_RATE_WAITS 30
/* The longest Retry-After honoured in one wait: above Salla's one-minute
 * window; a longer answer is waited in several turns, each counted above. */
#define PULL_MAX_WAIT_S 120
/* Background pulls (the REST API's): at most this many run at once (each
 * holds an HTTP connection to a platform that rate-limits per store), and
 * the last PULL_MAX_KEPT are remembered for their progress. */
#define PULL_MAX_RUNNING 4
#define PULL_MAX_KEPT 64

/*
 * A range of creation dates: whole days in Riyadh time (UTC+3, as the
 * merchant's dashboard shows them), both ends included.
 */
struct pull_range {
    int64_t from, to; /* unix seconds: from-day 00:00:00 and to-day 23:59:59, Riyadh */
    char text[24];    /* "2023-11-01..2024-02-01": the key of its progress */
};

/* Parses two dates "YYYY-MM-DD" into *out. Returns 0, or TH_EINVAL naming
 * which (from / to) when a date is missing or not a calendar date, or when
 * from is after to. */
int pull_range_parse(const char *from, const char *to, struct pull_range *out,
                     struct th_err *err) TH_MUST_CHECK;

enum pull_phase {
    PULL_LISTING = 0,  /* counting the range's orders, page by page */
    PULL_FETCHING = 1, /* fetching and recording them */
    PULL_DONE = 2,     /* every order of the range is recorded */
};

/* Where a pull is; passed to the progress callback and returned. */
struct pull_progress {
    enum pull_phase phase;
    int64_t total;       /* orders created in the range; -1 until the listing is complete */
    int64_t pulled;      /* of those, recorded now or by an earlier run of the same range */
    int64_t listed;      /* while listing: orders found so far */
    int page;            /* listing page being read or fetched (1-based) */
    int64_t added;       /* this run: recorded as not transferred */
    int64_t known;       /* this run: already known to tarheel, kept as they were */
    int64_t gone;        /* this run: listed, then deleted in the store before fetched */
    int64_t wait_s;      /* > 0 while waiting that long for a rate limit */
    int resumed;         /* 1: continued after pages an earlier run finished */
    int finished_before; /* 1: the range was complete already; nothing was asked */
};

struct pull_config {
    struct store *store; /* borrowed */
    struct httpc *http;  /* borrowed; used by this call only (one thread) */
    int64_t conn_id;
    struct pull_range range;
    int again;          /* 1: pull a range that is complete again, from its start */
    int max_pages;      /* > 0: stop (resumable) after fetching this many pages */
    long retry_base_ms; /* first backoff after a temporary failure; 0 = 1000 */
    /* Called after every order and page (may be NULL); p is borrowed for
     * the call. */
    void (*progress)(void *arg, const struct pull_progress *p);
    void *arg;
    /* May be NULL. When *stop becomes non-zero the run stops within about
     * a tenth of a second (also during a rate-limit wait), resumable. */
    const atomic_int *stop;
};

/*
 * Pulls cfg->range of connection cfg->conn_id: lists the range's orders by
 * creation date (orders_page, by_updated = 0), then, page by page, fetches
 * each order tarheel does not know yet (order_fetch) and records it as not
 * transferred with its number, status, total and creation time. A page is
 * noted as done in the store once every order on it is recorded; a run
 * continues after the last page done, and a range done is noted as such
 * (the next run says so and asks nothing, unless cfg->again).
 *
 * Temporary failures are retried (PULL_MAX_TRIES, doubling backoff); a 429
 * waits its Retry-After (PULL_MAX_RATE_WAITS, PULL_MAX_WAIT_S). An order
 * deleted between listing and fetch is counted as gone; one that cannot be
 * mapped is recorded from the listing with the reason (its transfer will
 * fail saying so).
 *
 * Returns 0 when the range is complete (out->phase == PULL_DONE) or when
 * the run stopped as asked (cfg->stop, cfg->max_pages: out->phase says
 * where). Otherwise the failure's code (TH_ETEMP, TH_EAUTH, TH_ECONFIG,
 * TH_ELIMIT, a store error, ...) with a message that says how far the pull
 * got and that running it again continues. *out (may be NULL) is filled in
 * every case. TH_ENOTFOUND when the connection does not exist; TH_ECONFIG
 * when its platform cannot list orders.
 */
int pull_run(const struct pull_config *cfg, struct pull_progress *out,
             struct th_err *err) TH_MUST_CHECK;

/*
 * The orders of connection conn_id created in r that a transfer of the
 * range sends: those not transferred and those failed, by creation time,
 * leaving out cancelled and refunded ones (a transfer would only mark them
 * skipped). *ids is new (free()), NULL when *n is 0; *left_out (may be NULL)
 * counts the cancelled and refunded ones. Returns 0 or a store error.
 */
int pull_range_orders(struct store *s, int64_t conn_id, const struct pull_range *r, int64_t **ids,
                      size_t *n, size_t *left_out, struct th_err *err) TH_MUST_CHECK;

/*
 * Queues a manual job for each of the n ids through manage_transfer
 * (MANAGE_MAX_ORDERS at a time), noting `who` in each order's history.
 * Returns 0 or the first failure; *queued (may be NULL) says how many were
 * queued in every case.
 */
int pull_range_transfer(struct store *s, int64_t conn_id, const int64_t *ids, size_t n,
                        const char *who, size_t *queued, struct th_err *err) TH_MUST_CHECK;

/* ---------------------------------------------------------------------- */
/* Background pulls (the REST API): each runs pull_run on its own thread.   */

enum pull_state {
    PULL_RUNNING = 0,
    PULL_FINISHED = 1, /* the range is complete */
    PULL_FAILED = 2,   /* stopped by a failure (code and error say which); resumable */
};

struct pull_status {
    int64_t id;
    int64_t conn_id;
    struct pull_range range;
    enum pull_state state;
    struct pull_progress progress;
    int code; /* the failure's TH_E* code, 0 unless PULL_FAILED */
    char error[TH_ERR_MSG_MAX];
    int64_t started_at, finished_at; /* unix seconds; finished_at 0 while running */
};

struct pull_runs;

/* A set of background pulls on store s (borrowed; must outlive it). Returns
 * new (pull_runs_free). */
struct pull_runs *pull_runs_new(struct store *s);
/* Asks every running pull to stop (each keeps its progress: a new pull of
 * the same range continues), waits for them and frees the set. NULL ok. */
void pull_runs_free(struct pull_runs *p);

/*
 * Starts pulling range r of connection conn_id in the background and sets
 * *id. When a pull of the same connection and range is running already,
 * sets *id to that one and *running to 1 instead (*running may be NULL).
 * Returns 0; TH_ENOTFOUND when the connection does not exist; TH_ECONFIG
 * when its platform cannot list orders; TH_ELIMIT when PULL_MAX_RUNNING
 * pulls are running. Thread-safe.
 */
int pull_runs_start(struct pull_runs *p, int64_t conn_id, const struct pull_range *r, int again,
                    int64_t *id, int *running, struct th_err *err) TH_MUST_CHECK;

/* Fills *out with pull id's status. Returns 0, or TH_ENOTFOUND (not started
 * by this process, or forgotten after PULL_MAX_KEPT newer ones). Thread-safe. */
int pull_runs_get(struct pull_runs *p, int64_t id, struct pull_status *out,
                  struct th_err *err) TH_MUST_CHECK;

/* Stable names: "running", "done", "failed" (the REST API's). */
const char *pull_state_name(enum pull_state s);

#endif
