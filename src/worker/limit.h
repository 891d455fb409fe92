/*
 * limit — per-store and per-Qoyod-account concurrency, and per-account
 * pauses after a 429, shared by one process's worker threads.
 *
 * Owns the counts of running jobs by connection and by Qoyod account (an
 * account is a Qoyod base URL plus API key, kept only as a 64-bit hash), and
 * each account's "paused until". The worker asks which connections must not
 * start a job now and claims around them, so one busy store cannot take
 * every worker thread and one 429 does not become a storm of them.
 *
 * When the store is shared by several processes (PostgreSQL: store_shared),
 * limit_share hands the limits to the database instead, so they hold for
 * the whole cluster: the worker claims with store_job_claim_limited (leases
 * counted in the database), pauses and call budgets live in the store's
 * accounts table. One process alone (SQLite) keeps the in-memory fast path.
 */
#ifndef TH_WORKER_LIMIT_H
#define TH_WORKER_LIMIT_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

#define LIMIT_PER_STORE_DEFAULT 2
#define LIMIT_PER_ACCOUNT_DEFAULT 4
/* Qoyod allows 300 requests a minute per key (qoyod.md §2.7, fixed window
 * [I]). A bucket of 40 refilled at 240 a minute never exceeds 280 in any
 * minute, leaving room for a human using the same key. */
#define LIMIT_ACCOUNT_RPM_DEFAULT 240
#define LIMIT_ACCOUNT_BURST 40

struct limit;

/* per_store / per_account: running jobs allowed at once (0 = defaults);
 * account_rpm: Qoyod calls a minute per account (0 = the default, < 0 =
 * unlimited). */
struct limit *limit_new(int per_store, int per_account, int account_rpm);
void limit_free(struct limit *l);

/* The limiter is used as lock; busy; claim; learn/enter; unlock, so that
 * two threads cannot both take a connection's last slot. */
void limit_lock(struct limit *l);
void limit_unlock(struct limit *l);

/* Writes into out (at most max) the connections that must not start a job
 * at now_ms: at their store limit, or whose account is at its limit or
 * paused. Returns how many. Lock held. */
size_t limit_busy(struct limit *l, int64_t now_ms, int64_t *out, size_t max);

/* Whether conn's account is known; records it (a connection may change its
 * Qoyod key: learning again replaces it). Lock held. */
int limit_knows(struct limit *l, int64_t conn);
void limit_learn(struct limit *l, int64_t conn, uint64_t account);

/* A job of conn starts / ends. enter needs the lock; leave takes it. */
void limit_enter(struct limit *l, int64_t conn);
void limit_leave(struct limit *l, int64_t conn);

/* Pauses every job of conn's account until until_ms (takes the lock; in
 * shared mode writes the pause to the store, for every process). */
void limit_pause(struct limit *l, int64_t conn, int64_t until_ms);

/* Takes one Qoyod call from the account's bucket: returns 0 when the call
 * may go now, else the ms to wait before asking again (takes the lock). */
int64_t limit_call(struct limit *l, uint64_t account, int64_t now_ms);

/* Shares the limits through s (borrowed; must outlive l) when s is shared
 * by several processes; does nothing for a store one process owns. Call
 * before any other use of l. Returns whether the limits are now shared. */
int limit_share(struct limit *l, struct store *s);
/* The store the limits live in (NULL: in this process). */
struct store *limit_shared(const struct limit *l);
/* The limits as a claim needs them (shared mode). */
struct store_claim_limits limit_claim_limits(const struct limit *l);
/* limit_call for connection conn of that account: in shared mode it takes
 * the call from the account's bucket in the store (a store failure lets the
 * call go: Qoyod's own 429 and the pause still protect the account). */
int64_t limit_call_for(struct limit *l, int64_t conn, uint64_t account, int64_t now_ms);

/* The account key of a Qoyod base URL and API key (FNV-1a 64). */
uint64_t limit_account_key(const char *base, const char *api_key);

#endif
