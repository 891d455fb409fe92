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
 * Across processes (PostgreSQL, issue 9) these limits are per process.
 */
#ifndef TH_WORKER_LIMIT_H
#define TH_WORKER_LIMIT_H

#include <stddef.h>
#include <stdint.h>

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

/* Pauses every job of conn's account until until_ms (takes the lock). */
void limit_pause(struct limit *l, int64_t conn, int64_t until_ms);

/* Takes one Qoyod call from the account's bucket: returns 0 when the call
 * may go now, else the ms to wait before asking again (takes the lock). */
int64_t limit_call(struct limit *l, uint64_t account, int64_t now_ms);

/* The account key of a Qoyod base URL and API key (FNV-1a 64). */
uint64_t limit_account_key(const char *base, const char *api_key);

#endif
