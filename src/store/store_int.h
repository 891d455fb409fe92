/*
 * store_int — what a storage backend implements, and what store.c gives it.
 *
 * Private to src/store/ and to the store's tests: it defines struct store (the
 * part every backend shares), the backend vtable struct store_ops (STYLE
 * C10), and the clock seam. Callers outside src/store/ and tests/unit/store/
 * must include store/store.h only. Nothing here talks to a database.
 */
#ifndef TH_STORE_STORE_INT_H
#define TH_STORE_STORE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "store/store.h"

/* Jobs claimed from one store_job_claim call is always one; this bounds how
 * many concurrent store_event_ingest calls one group commit may join, so one
 * commit never holds the writer for more than a few ms (each item is one
 * small insert and one upsert; 64 is far above the intake's thread count). */
#define STORE_MAX_BATCH 64

/*
 * The shared head of every backend's handle. A backend allocates its own
 * struct whose FIRST member is a struct store, and returns a pointer to that
 * member from ops->open; store.c fills ops and the clock after open returns.
 */
struct secret_ring;
struct store {
    const struct store_ops *ops;  /* set by store.c */
    struct secret_ring *secrets;  /* set by store.c: seals connection secrets (secret.h) */
    int64_t (*now_ms)(void *arg); /* the clock, unix ms; never NULL after store_open */
    void *now_arg;                /* its argument */
};

/*
 * A storage backend. Every slot is REQUIRED (store.c calls them without a
 * NULL check) unless marked optional. Unless a slot says otherwise:
 *  - it is called only through the matching public store_* function, which
 *    has already checked that s and the out-pointers are not NULL;
 *  - it may be called from several threads at once on the same s, and must
 *    make each call atomic (store.h "Threads");
 *  - it returns 0 on success, or a negative TH_E* code with err filled in
 *    (err may be NULL); a write returns 0 only after it is durable
 *    (store.h "Durability contract");
 *  - on failure out-structs are left zeroed, so _release on them is safe;
 *  - strings it fills into result structs are new copies (xstrdup).
 * The meaning of each operation is the public function's, in store.h; the
 * notes below add only what a backend must know beyond that.
 */
struct store_ops {
    const char *name; /* "sqlite", "postgres", for messages */
    int shared;       /* store_shared: other processes may work on the same database */

    /* Called by store_open with the URL's location part (for SQLite a file
     * path, for PostgreSQL the whole URL; never NULL or empty). Creates and migrates the database when
     * needed. On success stores the backend's handle (its struct store
     * member) in *out and returns 0; on failure has freed everything it
     * built, and returns TH_EIO (cannot create or open the file: the message
     * names the path), TH_EDB or TH_ECONFIG (schema newer than this build). */
    int (*open)(struct store **out, const char *location, struct th_err *err);
    /* Called once by store_close, after every other call on s returned.
     * Frees everything; must not fail (there is nobody to tell). */
    void (*close)(struct store *s);

    /* c->platform and c->store_id are set. When c->id == 0 upserts by
     * (platform, store_id); when c->id != 0 updates that row (TH_ENOTFOUND
     * if absent, TH_ECONFLICT if another row has the same platform and
     * store_id). Sets c->id on success. c->tenant_id 0 keeps a row's
     * tenant (a new row: STORE_TENANT_DEFAULT); else the row gets that
     * tenant (store.c has checked that it exists). Reads fill tenant_id. */
    int (*conn_put)(struct store *s, struct store_conn *c, struct th_err *err);
    /* Only the token columns and status / only the settings columns of
     * connection c->id; TH_ENOTFOUND when it does not exist. */
    int (*conn_put_tokens)(struct store *s, const struct store_conn *c, struct th_err *err);
    int (*conn_put_settings)(struct store *s, const struct store_conn *c, struct th_err *err);
    /* Reference prefixes (store.h, struct store_conn.ref_prefix); conn_put
     * and conn_put_settings never write the ref_prefix column (a new row
     * gets ""), conn_get/conn_find/conn_list read it.
     * conn_prefix_assign: in one statement, gives connection id the prefix
     * "S<id>" (Salla) or "Z<id>" (Zid) when its prefix is "", it has a
     * Qoyod key, and another connection with the same qoyod_base and
     * (sealed) qoyod_api_key has prefix "" too; *prefix = the prefix now
     * (new string). One conditional statement keeps two connections joining
     * at once safe: each sees the other's committed row, so at worst both
     * get a prefix, never neither. TH_ENOTFOUND when absent.
     * conn_prefix_set: atomically, when connection id's prefix is `from`,
     * no order of it was sent (xfer transferring or transferred, or
     * qoyod_reference set) and no other connection on the same account has
     * prefix `to`, sets it to `to` and returns 0 with *sent = *other = 0;
     * else writes nothing and returns 0 with *sent = the orders sent and
     * *other = the id of a connection holding `to` (store.c words the
     * refusal), or TH_ECONFLICT when the prefix is no longer `from`,
     * TH_ENOTFOUND when there is no such connection. */
    int (*conn_prefix_assign)(struct store *s, int64_t id, char **prefix, struct th_err *err);
    int (*conn_prefix_set)(struct store *s, int64_t id, const char *from, const char *to,
                           int64_t *sent, int64_t *other, struct th_err *err);
    /* out was zeroed by store.c. TH_ENOTFOUND when absent. store_conn_list
     * walks ids upwards from 1 with this slot and stops at the first absent
     * one, so a backend must hand out connection ids from 1 without gaps and
     * never delete a connection (SQLite rowids do; uninstall only marks a
     * connection "disconnected"), unless it implements conn_list. */
    int (*conn_get)(struct store *s, int64_t id, struct store_conn *out, struct th_err *err);
    /* Optional (NULL: store.c walks ids from 1 with conn_get). For backends
     * whose ids may have gaps (PostgreSQL sequences skip on rollback and on
     * an upsert that updates). Calls fn for every connection by id, c
     * borrowed for the call, holding nothing fn could need (fn may call the
     * store); either fails without calling fn or calls it for every row. */
    int (*conn_list)(struct store *s, void (*fn)(void *arg, const struct store_conn *c), void *arg,
                     struct th_err *err);
    /* out was zeroed by store.c. TH_ENOTFOUND when absent. */
    int (*conn_find)(struct store *s, enum model_platform p, int64_t store_id,
                     struct store_conn *out, struct th_err *err);

    /* store.c has checked dedupe_key and event are non-NULL and non-empty,
     * body is non-NULL when len > 0, len <= STORE_MAX_EVENT_BODY, and has
     * set *duplicate = 0. The job's run_after is s->now_ms. An unknown
     * conn_id gives TH_ENOTFOUND. */
    int (*event_ingest)(struct store *s, int64_t conn_id, const char *dedupe_key, const char *event,
                        int64_t order_id, const char *body, size_t len, int *duplicate,
                        struct th_err *err);
    /* Optional (NULL: store.c runs event_ingest and calls done at once).
     * The same checks were made; the same work, but returns 0 as soon as the
     * request is queued and calls done(arg, rc, duplicate, err) exactly once
     * afterwards, from any thread, holding no lock of its own. Returns an
     * error (and never calls done) only when it could not queue. */
    int (*event_ingest_async)(struct store *s, int64_t conn_id, const char *dedupe_key,
                              const char *event, int64_t order_id, const char *body, size_t len,
                              store_ingest_done_fn done, void *arg, struct th_err *err);

    /* worker is non-NULL and non-empty, lease_ms > 0; "now" is s->now_ms;
     * jobs of the connections in except[0..nexcept) are not handed out, nor
     * (lim non-NULL) those store_job_claim_limited skips; lim NULL: no
     * limits, but a paused account is still skipped. Returns TH_ENOTFOUND
     * (out zeroed) when nothing is due. */
    int (*job_claim)(struct store *s, const char *worker, int64_t lease_ms,
                     const struct store_claim_limits *lim, const int64_t *except, size_t nexcept,
                     struct store_job *out, struct th_err *err);
    /* TH_ENOTFOUND when no job has that id. When an event for the order
     * arrived while the job was leased, the job is not deleted but made due
     * now (with attempts reset), so that event is not lost. owner NULL: any
     * holder; else only while lease_owner is owner (TH_ECONFLICT when the
     * job exists under another owner or none). */
    int (*job_done)(struct store *s, int64_t job_id, const char *owner, struct th_err *err);
    /* error may be NULL. Clears the lease. TH_ENOTFOUND when absent; owner
     * as for job_done. uncount: the claim being ended is taken back out of
     * the job's attempts (never below 0): a wait that was no failure. */
    int (*job_retry)(struct store *s, int64_t job_id, const char *owner, int64_t run_after,
                     const char *error, int uncount, struct th_err *err);
    /* owner is non-empty, lease_ms > 0: lease_until = now + lease_ms while
     * owner holds the lease; TH_ECONFLICT otherwise (TH_ENOTFOUND: no job). */
    int (*job_renew)(struct store *s, int64_t job_id, const char *owner, int64_t lease_ms,
                     struct th_err *err);
    /* Same job upsert as event_ingest, without an event. An unknown
     * conn_id gives TH_ENOTFOUND. */
    int (*job_enqueue)(struct store *s, int64_t conn_id, int64_t order_id, struct th_err *err);
    /* store.c has checked 1 <= n <= STORE_MAX_ENQUEUE and every id > 0.
     * The same job upsert for each order, and (what non-NULL) the same
     * history row as order_note, all in one transaction; on any failure
     * nothing is kept. */
    int (*job_enqueue_many)(struct store *s, int64_t conn_id, const int64_t *order_ids, size_t n,
                            const char *what, const char *detail, struct th_err *err);
    int (*job_count)(struct store *s, int64_t *n, struct th_err *err);

    /* out was zeroed by store.c. TH_ENOTFOUND when absent. */
    int (*order_get)(struct store *s, int64_t conn_id, int64_t order_id, struct store_order *out,
                     struct th_err *err);
    /* An unknown o->conn_id gives TH_ENOTFOUND. With owner non-NULL, the
     * write is fenced by job job_id's lease (store_order_put_as): nothing is
     * written and TH_ECONFLICT comes back unless owner holds that job. */
    int (*order_put)(struct store *s, const struct store_order *o, int64_t job_id,
                     const char *owner, struct th_err *err);
    /* store.c has set *added = 0. Inserts atomically only when (conn_id,
     * order_id) is absent; an existing row is left untouched. An unknown
     * o->conn_id gives TH_ENOTFOUND. */
    int (*order_add)(struct store *s, const struct store_order *o, int *added,
                     struct th_err *err);
    /* what is non-NULL; detail may be NULL. The timestamp is s->now_ms. */
    int (*order_note)(struct store *s, int64_t conn_id, int64_t order_id, const char *what,
                      const char *detail, struct th_err *err);
    /* fn is non-NULL. Must not hold any lock while calling fn: callbacks
     * may call back into the store (the CLI's "retry failed" enqueues from
     * its callback). Either fails without calling fn, or calls it for every
     * row and returns 0. */
    /* The orders q selects, in its order (store_order_query); q->limit 0:
     * no limit (store_order_list). */
    int (*order_list)(struct store *s, const struct store_order_query *q,
                      void (*fn)(void *arg, const struct store_order *o), void *arg,
                      struct th_err *err);
    /* Optional (NULL: store_order_history returns TH_ECONFIG). Calls fn for
     * each history entry of the order, oldest first, under the same rules
     * as order_list; strings are borrowed for the call (detail may be ""). */
    int (*order_history)(struct store *s, int64_t conn_id, int64_t order_id,
                         void (*fn)(void *arg, int64_t ts_ms, const char *what, const char *detail),
                         void *arg, struct th_err *err);

    /* Account limits: "now" is s->now_ms; per_min > 0 and burst > 0 were
     * checked. The token arithmetic is store_bucket_take's (below), run on
     * the account's row under a lock of the backend's choosing. */
    int (*account_pause)(struct store *s, int64_t conn_id, int64_t until_ms, struct th_err *err);
    int (*account_take)(struct store *s, int64_t conn_id, int per_min, int burst,
                        int64_t *wait_ms, struct th_err *err);
    /* name and owner are non-empty, ttl_ms > 0, *held was set to 0. */
    int (*lease_take)(struct store *s, const char *name, const char *owner, int64_t ttl_ms,
                      int *held, struct th_err *err);
    int (*lease_drop)(struct store *s, const char *name, const char *owner, struct th_err *err);

    /* kind and key are non-NULL and non-empty. TH_ENOTFOUND when absent. */
    int (*map_get)(struct store *s, int64_t conn_id, const char *kind, const char *key,
                   int64_t *qoyod_id, struct th_err *err);
    /* Inserts or replaces the id. An unknown conn_id gives TH_ENOTFOUND. */
    int (*map_put)(struct store *s, int64_t conn_id, const char *kind, const char *key,
                   int64_t qoyod_id, struct th_err *err);

    /* Stock (store.h). store.c has checked n <= STORE_STOCK_MAX_BATCH, every
     * sku non-empty, ref non-empty, and zeroed everything in load's rows but
     * the sku. A settle's time and a movement's pending time are
     * s->now_ms. An unknown conn_id gives TH_ENOTFOUND on writes. */
    int (*stock_load)(struct store *s, int64_t conn_id, struct store_stock *rows, size_t n,
                      int64_t before_ms, struct th_err *err);
    int (*stock_save)(struct store *s, int64_t conn_id, const struct store_stock *rows, size_t n,
                      struct th_err *err);
    int (*stock_untracked)(struct store *s, int64_t conn_id, const char *sku, int untracked,
                           struct th_err *err);
    int (*stock_own_begin)(struct store *s, int64_t conn_id, const char *ref,
                           const char *const *skus, const int64_t *deltas, size_t n,
                           int64_t origin_s, struct th_err *err);
    int (*stock_own_settle)(struct store *s, int64_t conn_id, const char *ref, int applied,
                            struct th_err *err);
    /* Order lines against an opening balance (store.h). store.c has
     * checked skus (non-empty, < STORE_MAX_SKU), n <= STORE_STOCK_MAX_BATCH
     * and the mark. */
    int (*stock_lines_note)(struct store *s, int64_t conn_id, int64_t order_id, int64_t created_s,
                            const char *const *skus, const int64_t *units, size_t n,
                            struct th_err *err);
    int (*stock_lines_open)(struct store *s, int64_t conn_id, const char *sku, int64_t before_ms,
                            int64_t *units, struct th_err *err);
    int (*stock_line_get)(struct store *s, int64_t conn_id, int64_t order_id, const char *sku,
                          struct store_stock_line *out, struct th_err *err);
    int (*stock_line_put)(struct store *s, int64_t conn_id, const struct store_stock_line *l,
                          struct th_err *err);
    int (*stock_lines_forget)(struct store *s, int64_t conn_id, int64_t order_id,
                              struct th_err *err);
    /* Dashboard users. name and hash are non-NULL and non-empty. user_put
     * inserts or replaces the user's hash; tenant 0 keeps an existing
     * user's tenant (new: STORE_TENANT_DEFAULT), else sets it (store.c has
     * checked that it exists). user_get sets *hash (new) and *tenant or
     * returns TH_ENOTFOUND. user_count counts users. */
    int (*user_put)(struct store *s, const char *name, const char *hash, int64_t tenant,
                    struct th_err *err);
    int (*user_get)(struct store *s, const char *name, char **hash, int64_t *tenant,
                    struct th_err *err);
    int (*user_count)(struct store *s, int64_t *n, struct th_err *err);
    /* Users of tenant (0: all) ordered by name, fn called with no lock held
     * (it may call the store); user_delete: TH_ENOTFOUND when absent. */
    int (*user_list)(struct store *s, int64_t tenant,
                     void (*fn)(void *arg, const char *name, int64_t tenant, int64_t set_ms),
                     void *arg, struct th_err *err);
    int (*user_delete)(struct store *s, const char *name, struct th_err *err);

    /* Tenants and their API tokens (store.h). store.c has checked names,
     * digests and labels, and that a token's tenant exists. tenant_get
     * looks up by id when name is NULL, else by name; TH_ENOTFOUND when
     * absent. tenant_add gives TH_ECONFLICT for a taken name, token_add
     * for a stored digest. Lists call fn holding nothing, by id. */
    int (*tenant_add)(struct store *s, const char *name, int64_t *id, struct th_err *err);
    int (*tenant_get)(struct store *s, int64_t id, const char *name, struct store_tenant *out,
                      struct th_err *err);
    int (*tenant_list)(struct store *s, void (*fn)(void *arg, const struct store_tenant *t),
                       void *arg, struct th_err *err);
    int (*token_add)(struct store *s, int64_t tenant, const char *digest_hex, const char *label,
                     int64_t *id, struct th_err *err);
    int (*token_find)(struct store *s, const char *digest_hex, struct store_token *out,
                      struct th_err *err);
    int (*token_list)(struct store *s, int64_t tenant,
                      void (*fn)(void *arg, const struct store_token *t), void *arg,
                      struct th_err *err);
    int (*token_revoke)(struct store *s, int64_t id, struct th_err *err);
    int (*token_count)(struct store *s, int64_t *n, struct th_err *err);
    /* Product fields (store_fields_*, store_conflict_*). fields_cfg_get
     * reads a connection's field-sync settings (sync, sources: the three
     * field_source values as sources[0] | sources[1] << 2 | sources[2] << 4),
     * 0 / 0 when none were saved; fields_cfg_put saves them (an unknown
     * conn_id gives TH_ENOTFOUND). store.c calls them around every
     * connection read and settings write, so the connection rows stay as
     * they are. conflict_add sets c->id and takes at_ms from s->now_ms. */
    int (*fields_cfg_get)(struct store *s, int64_t conn_id, int *sync, int *sources,
                          struct th_err *err);
    int (*fields_cfg_put)(struct store *s, int64_t conn_id, int sync, int sources,
                          struct th_err *err);
    int (*fields_load)(struct store *s, int64_t conn_id, struct store_field_state *rows, size_t n,
                       struct th_err *err);
    int (*fields_save)(struct store *s, int64_t conn_id, const struct store_field_state *rows,
                       size_t n, struct th_err *err);
    int (*conflict_add)(struct store *s, struct store_conflict *c, struct th_err *err);
    int (*conflict_get)(struct store *s, int64_t id, struct store_conflict *out,
                        struct th_err *err);
    int (*conflict_list)(struct store *s, int64_t conn_id, int open_only, int limit,
                         void (*fn)(void *arg, const struct store_conflict *c), void *arg,
                         struct th_err *err);
    int (*conflict_resolve)(struct store *s, int64_t id, const char *resolution,
                            struct th_err *err);
};

/* One call from an account's token bucket, the arithmetic every backend
 * shares: *milli_tokens (the budget x 1000) is refilled for the time since
 * *refilled_ms (-1: never; then it starts full) at per_min a minute, capped
 * at burst, and one call taken when there is one. Returns 0 when the call
 * may go, else the ms to wait; a pause (paused_until_ms > now_ms) waits
 * without touching the bucket. */
int64_t store_bucket_take(int64_t *milli_tokens, int64_t *refilled_ms, int64_t paused_until_ms,
                          int per_min, int burst, int64_t now_ms);

/* The default clock: CLOCK_REALTIME in ms (the worker's worker_now_ms uses
 * the same clock for run_after values it passes in). */
int64_t store_clock_real(void *arg);

/* Replaces s's clock (fn NULL restores the real one). For tests: must be
 * called before other threads use s. */
void store_clock_set(struct store *s, int64_t (*fn)(void *arg), void *arg);

/* Tests only (STYLE C15): caps the database of an open SQLite store at
 * `pages` pages (PRAGMA max_page_count), so a test can make the disk look
 * full and then free it again without reopening. SQLite never lowers the cap
 * below the pages in use, so pages = 1 means "no room to grow from now on";
 * pages <= 0 lifts the cap to SQLite's maximum. Stores the cap now in effect
 * in *cap (may be NULL). TH_ECONFIG when s is not an SQLite store. Safe to
 * call while other threads use s. */
int store_test_max_pages(struct store *s, int64_t pages, int64_t *cap,
                         struct th_err *err) TH_MUST_CHECK;

/* The created_at range [*lo, *hi] (inclusive) of q's rows: its from/to and,
 * past a cursor, the cursor's time, so the query reads the index from the
 * page's first row on (the key comparison then settles equal times). */
void store_order_bounds(const struct store_order_query *q, int64_t *lo, int64_t *hi);

/* For a fenced order write that wrote nothing: rc is the backend's
 * job_missing() answer (TH_ECONFLICT: another worker holds the job;
 * TH_ENOTFOUND: the job is gone, finished by another worker). Both become
 * TH_ECONFLICT, naming the order; any other code (the lookup failed) is
 * returned as it is. */
int store_stale_writer(struct th_err *err, const struct store_order *o, int64_t job_id,
                       const char *owner, int rc);

/* Now, by s's clock, in unix ms. */
static inline int64_t store_now_ms(struct store *s)
{
    return s->now_ms(s->now_arg);
}

#endif
