/*
 * poller — the catch-up poll: finds every order a lost webhook would have
 * brought, so webhooks are a speed-up and never the only way in.
 *
 * Owns, per connection, a cursor kept in the store (mapping kind "poll",
 * key "cursor", unix seconds). Each round lists the store's orders changed
 * since the cursor (less an overlap), and for every order tarheel does not
 * know, or whose status or update time moved, queues an automatic job
 * through the same intake path as a webhook (dedupe key "poll:id:status:
 * updated"), so a webhook and the poll for the same change are one job. A
 * platform that cannot list by update time (Salla) is listed by creation
 * over a sliding window instead; the status in the list still shows what
 * changed.
 *
 * One poller per process; across processes (issue 9) it needs a per-store
 * lease so that a store is polled once per round.
 */
#ifndef TH_WORKER_POLLER_H
#define TH_WORKER_POLLER_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "net/httpc.h"
#include "store/store.h"

#define POLLER_OVERLAP_S 600          /* re-list the last ten minutes each round */
#define POLLER_WINDOW_S (7 * 86400)   /* creation window when the platform has no updated filter */
#define POLLER_MAX_PAGES 50           /* per store per round; the cursor resumes the rest */

struct poller_stats {
    size_t stores;                    /* connections polled */
    size_t listed;                    /* orders seen in the lists */
    size_t queued;                    /* jobs queued (new or changed orders) */
    size_t failed;                    /* stores whose listing failed (retried next round) */
};

/* One round over every active connection at `now` (unix seconds). Listing
 * failures are logged and counted, not returned: the next round retries.
 * Returns 0, or a store error. */
int poller_round(struct store *s, struct httpc *hc, int64_t now, struct poller_stats *st,
                 struct th_err *err) TH_MUST_CHECK;

struct poller;
/* A thread running poller_round every interval_s (> 0). */
int poller_start(struct poller **out, struct store *s, long interval_s,
                 struct th_err *err) TH_MUST_CHECK;
void poller_stop(struct poller *p);

#endif
