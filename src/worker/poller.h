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
 * One poller per process. When several processes share the store
 * (store_shared), each store is polled by one of them per interval: before
 * polling a store a round takes the lease "poll:<conn id>" for an interval,
 * and skips the store while another process holds it. The holder renews it
 * every round; if it dies, the lease runs out and another process's next
 * round takes the store over (so a store waits at most two intervals).
 */
#ifndef TH_WORKER_POLLER_H
#define TH_WORKER_POLLER_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "net/httpc.h"
#include "platform/platform.h"
#include "store/store.h"

#define POLLER_OVERLAP_S 600          /* re-list the last ten minutes each round */
#define POLLER_WINDOW_S (7 * 86400)   /* creation window when the platform has no updated filter */
#define POLLER_MAX_PAGES 50           /* per store per round; the cursor resumes the rest */

struct poller_stats {
    size_t stores;                    /* connections polled */
    size_t listed;                    /* orders seen in the lists */
    size_t queued;                    /* jobs queued (new or changed orders) */
    size_t failed;                    /* stores whose listing failed (retried next round) */
    size_t elsewhere;                 /* stores another process polls (poller_round_as) */
    size_t reinstall;                 /* stores whose grant is gone: "needs_reinstall" */
};

/* One round over every active connection at `now` (unix seconds). Listing
 * failures are logged and counted, not returned: the next round retries.
 * A store's token refused by a listing (401: expired early or while no
 * order moved, rotated) is refreshed through transfer_token_ensure, the
 * one refresh path the transfers use (so the poll and a transfer never
 * both spend a single-use refresh token), and the page listed again once. A
 * grant that is gone makes the connection "needs_reinstall" (counted in
 * st->reinstall, logged `poll_needs_reinstall` saying to reinstall the
 * app). apps: the OAuth clients by enum model_platform (an array of 4; it
 * or an entry may be NULL: that platform's tokens are then not refreshed).
 * Returns 0, or a store error. */
int poller_round(struct store *s, struct httpc *hc, const struct platform_app *const *apps,
                 int64_t now, struct poller_stats *st, struct th_err *err) TH_MUST_CHECK;
/* poller_round as process `owner` of a shared store: a store whose lease
 * "poll:<conn id>" another owner holds is skipped (counted in st->leased
 * elsewhere); the others are leased to owner for lease_ms, then polled.
 * owner NULL: no leases (poller_round). */
int poller_round_as(struct store *s, struct httpc *hc, const struct platform_app *const *apps,
                    int64_t now, const char *owner, int64_t lease_ms, struct poller_stats *st,
                    struct th_err *err) TH_MUST_CHECK;

struct poller;
/* A thread running poller_round every interval_s (> 0). apps: NULL or an
 * array of 4 OAuth clients by enum model_platform (copied; the strings
 * they point to must outlive the poller; an entry without client_id: that
 * platform's tokens are not refreshed), as struct worker_config.apps. */
int poller_start(struct poller **out, struct store *s, long interval_s,
                 const struct platform_app *apps, struct th_err *err) TH_MUST_CHECK;
void poller_stop(struct poller *p);

#endif
