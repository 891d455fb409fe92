/*
 * store — tarheel's durable state behind one interface (STYLE C10).
 *
 * Owns every table: connections (a store linked to a Qoyod account, with its
 * tokens and settings), raw webhook events, jobs, per-order transfer state and
 * history, and the store-id → Qoyod-id mappings. It is the only code that
 * writes them. It makes no remote calls and no policy decisions: the worker
 * decides, the store records. Backends are `struct store_ops` tables chosen by
 * the database URL ("sqlite:/path/file.db", a bare path, or
 * "postgres://user@host:port/db" for many processes sharing one database);
 * every backend must pass tests/unit/store/test_store.c.
 *
 * Durability contract (STYLE C9): when a write function returns 0, the data
 * is committed (SQLite: WAL with synchronous=FULL; PostgreSQL: COMMIT with
 * synchronous_commit on). store_event_ingest stores
 * the raw event, its dedupe key and the job it causes in ONE transaction, so
 * a webhook is answered 200 only after all three are on disk.
 *
 * Threads: a struct store may be used from several threads at once; each
 * call is atomic. All strings in result structs are copies owned by the
 * struct (release with the matching _release function).
 */
#ifndef TH_STORE_STORE_H
#define TH_STORE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "model/order.h"

/* Longest raw event body stored (matches the intake's body cap). */
#define STORE_MAX_EVENT_BODY (1024u * 1024)

/* ---------------------------------------------------------------------- */
/* Transfer state of an order: one enum, persisted (never renumber). The
 * transitions and who performs them live in worker/transfer.c. */
enum store_xfer {
    STORE_XFER_NOT_TRANSFERRED = 0, /* known, not (yet) sent to Qoyod */
    STORE_XFER_TRANSFERRING = 1,    /* a worker holds it; remote calls may be in flight */
    STORE_XFER_TRANSFERRED = 2,     /* exactly one invoice exists in Qoyod; ids recorded */
    STORE_XFER_FAILED = 3,          /* permanent failure; reason says what to fix */
    STORE_XFER_SKIPPED = 4,         /* deliberately not transferred (before connection date, ...) */
};

/* What became of a transferred order's reversals (cancellation, refund,
 * return): persisted, never renumber. The transitions live in
 * worker/transfer.c (credit notes). */
enum store_credit {
    STORE_CREDIT_NONE = 0,    /* nothing to credit (no cancellation or return seen) */
    STORE_CREDIT_PENDING = 1, /* a credit note is due or in flight: looked up before any create */
    STORE_CREDIT_DONE = 2,    /* every credit note the store's reversals call for exists */
    STORE_CREDIT_FAILED = 3,  /* a credit note was refused; reason says what to fix */
    STORE_CREDIT_REVIEW = 4,  /* changed after transfer in a way no credit note settles */
};

/* A store connected to a Qoyod account, with the merchant's settings. */
struct store_conn {
    int64_t id;                   /* tarheel's id; 0 before the first put */
    int64_t tenant_id;            /* the tenant it belongs to (see Tenants below); on a put,
                                   * 0 keeps the stored one (a new row: STORE_TENANT_DEFAULT) */
    enum model_platform platform;
    int64_t store_id;             /* the platform's merchant id */
    char *name;
    /* platform credentials (secrets: never logged) */
    char *access_token;
    char *refresh_token;
    char *manager_token;          /* Zid's second token (X-Manager-Token); NULL elsewhere */
    int64_t token_expires_at;     /* unix seconds; 0 unknown */
    char *webhook_secret;
    char *webhook_strategy;       /* "signature" | "token" | "basic" */
    char *api_base;               /* platform API base URL ("https://api.salla.dev/admin/v2") */
    char *status;                 /* "active" | "needs_reinstall" | "disconnected" */
    int64_t connected_at;         /* unix seconds; orders created before are not auto-sent */
    /* Qoyod side */
    char *qoyod_base;             /* "https://api.qoyod.com/2.0" */
    char *qoyod_api_key;          /* secret */
    int64_t inventory_id;         /* the chosen Qoyod inventory location */
    int64_t payment_account_id;   /* Qoyod cash/bank account for payments */
    /* settings */
    enum model_status trigger;    /* NEW (default), READY, IN_TRANSIT or COMPLETED */
    int customer_per_invoice;     /* 1: a Qoyod contact per customer; 0: one cash customer */
    int number_by_order;          /* 1: invoice reference = order number */
    int financial_invoice;        /* 1: invoice + payment (Paid); 0: Approved only */
    int stock_sync;               /* 1: Qoyod stock changes are pushed to the store (off by default) */
    int64_t stock_interval_s;     /* seconds between stock polls; 0 = STORE_STOCK_INTERVAL_DEFAULT */
    /* What sets this store's Qoyod references apart from those of the other
     * stores on the same Qoyod account: "" (or NULL) for none, else up to
     * STORE_REF_PREFIX_MAX capital letters and digits; an invoice reference
     * is then "<prefix>-<order number>" (worker/transfer.c). The first store
     * on an account has none; store_conn_put and store_conn_put_settings
     * give a store that joins an account already used by another store
     * without a prefix the prefix "S<id>" (Salla) or "Z<id>" (Zid). A
     * merchant may change it (store_conn_put_settings) only while none of
     * the store's orders was sent to Qoyod, and never to one another store
     * on the account uses. */
    char *ref_prefix;
    int fields_sync;              /* 1: name, price and cost kept in step with Qoyod (off by default) */
    int field_source[3];          /* per enum store_field: STORE_SRC_*; 0 = the field's default */
};

/* Longest reference prefix: short, since it goes in front of every invoice
 * number the merchant reads. */
#define STORE_REF_PREFIX_MAX 8

/* How often a store's stock is polled unless its settings say otherwise,
 * and the bounds a setting may take (ten seconds: a quiet poll is one
 * Qoyod call, and the stock poller's own call budget paces many stores; a
 * day is the longest a merchant would wait). */
#define STORE_STOCK_INTERVAL_DEFAULT 300
#define STORE_STOCK_INTERVAL_MIN 10
#define STORE_STOCK_INTERVAL_MAX 86400

/* An order as tarheel tracks it. */
struct store_order {
    int64_t conn_id;
    int64_t order_id;             /* platform order id */
    char *number;                 /* merchant-visible number */
    enum model_status status;     /* last known platform status */
    enum store_xfer xfer;
    int reason_code;              /* TH_E* of the last failure, 0 if none */
    char *reason;                 /* plain words, for the merchant */
    int attempts;
    int64_t total;                /* store total, halalas */
    int64_t tax;                  /* VAT in that total, halalas, as the platform reports it */
    int64_t qoyod_total;          /* invoice total in Qoyod, halalas (after transfer) */
    int64_t qoyod_invoice_id;
    char *qoyod_reference;
    int64_t qoyod_payment_id;
    int64_t created_at, updated_at, transferred_at; /* unix seconds */
    enum store_credit credit;     /* credit notes after transfer */
    int64_t credited;             /* halalas credited in Qoyod (Σ credit notes) */
};

struct store_job {
    int64_t id;
    int64_t conn_id;
    int64_t order_id;
    int attempts;                 /* claims so far, including this one */
    int64_t run_after;            /* unix ms */
    int manual;                   /* queued by hand: store_job_enqueue */
};

struct store;

/* Opens (creating and migrating when needed) the database named by url.
 * On success *out must be closed with store_close. */
int store_open(struct store **out, const char *url, struct th_err *err) TH_MUST_CHECK;
void store_close(struct store *s);

/* ---- connections ---- */
/* Inserts or updates by (platform, store_id); sets c->id. c->tenant_id != 0
 * puts the row in that tenant (moving an existing one: the operator's CLI
 * does that on purpose; TH_ENOTFOUND when no such tenant); 0 leaves an
 * existing row's tenant alone and puts a new one in the default tenant. */
int store_conn_put(struct store *s, struct store_conn *c, struct th_err *err) TH_MUST_CHECK;
/* TH_ENOTFOUND when absent. out is filled with copies (store_conn_release). */
/* Writes only the tokens (access, refresh, manager, expiry) and status of
 * connection c->id, so a token refresh never undoes a settings change made
 * meanwhile, and the other way round with store_conn_put_settings (name,
 * Qoyod key and location, payment account, trigger, customer, numbering,
 * financial invoice, webhook secret and strategy, API base, stock sync and
 * its interval, reference prefix).
 *
 * Reference prefix (struct store_conn.ref_prefix). store_conn_put never
 * changes a stored prefix (c->ref_prefix is ignored); after it, and after
 * store_conn_put_settings, a connection without a prefix that shares its
 * Qoyod account (base URL and key) with another connection without one is
 * given its default prefix, so two stores on one account never share a
 * reference (store_conn_get shows it; c is not changed).
 * store_conn_put_settings with c->ref_prefix NULL leaves the prefix alone;
 * a different value is written first, and refused with TH_ECONFLICT (and
 * nothing written) when an order of the connection was already sent to
 * Qoyod (transferring, transferred, or a reference recorded) or another
 * connection on the account has that prefix (also "": only one store of
 * an account goes without). The value's form is the caller's to check
 * (worker/manage.c). */
int store_conn_put_tokens(struct store *s, const struct store_conn *c,
                          struct th_err *err) TH_MUST_CHECK;
int store_conn_put_settings(struct store *s, const struct store_conn *c,
                            struct th_err *err) TH_MUST_CHECK;
int store_conn_get(struct store *s, int64_t id, struct store_conn *out,
                   struct th_err *err) TH_MUST_CHECK;
int store_conn_find(struct store *s, enum model_platform p, int64_t store_id,
                    struct store_conn *out, struct th_err *err) TH_MUST_CHECK;
/* Calls fn for every connection, by id (c is borrowed for the call; fn may
 * call the store). Either fails without calling fn, or returns 0 after
 * calling it for every connection. */
int store_conn_list(struct store *s, void (*fn)(void *arg, const struct store_conn *c), void *arg,
                    struct th_err *err) TH_MUST_CHECK;
/* store_conn_list limited to one tenant's connections (tenant 0: all). */
int store_conn_list_in(struct store *s, int64_t tenant,
                       void (*fn)(void *arg, const struct store_conn *c), void *arg,
                       struct th_err *err) TH_MUST_CHECK;
void store_conn_release(struct store_conn *c);

/* ---- secrets at rest (store/secret.h: AES-256-GCM, key outside the database) ---- */
/* Where this store's secret key came from and its id, for `tarheel secrets
 * status`: source ("default file", "TARHEEL_SECRET_KEY_FILE", ...), file
 * ("" when from the environment), kid (8 hex digits). Borrowed. */
void store_secrets_info(const struct store *s, const char **source, const char **file,
                        const char **kid);
/*
 * Re-seals every connection's secrets under a new key. new_key_file NULL:
 * the key must come from a file F; a new key is made in F.next (kept if a
 * rotation stopped half way), every connection is re-sealed with it, then
 * F.next replaces F. A crash in between leaves every secret readable (a
 * store opened while F.next exists reads with both keys); run it again.
 * new_key_file given: re-seals with that key and leaves the key files
 * alone (the operator then points TARHEEL_SECRET_KEY_FILE at it). Plain
 * values left by an older tarheel are sealed too. Stop the daemons sharing
 * the database first: they hold the old key. *count = connections done.
 */
int store_secrets_rotate(struct store *s, const char *new_key_file, size_t *count,
                         struct th_err *err) TH_MUST_CHECK;

/* ---- intake ---- */
/*
 * In one transaction: records the raw event under dedupe_key and, when
 * order_id != 0, makes sure a runnable job exists for that order (one
 * pending job per order: a new event for an order whose job is pending only
 * makes it due now). *duplicate is set to 1 (and nothing is written) when
 * the connection already has an event with this dedupe_key and order_id
 * (adapters derive both from the delivery, so a redelivery carries the same
 * pair). Returns TH_EDB / TH_EDISKFULL when the commit failed (the caller
 * answers 503).
 */
int store_event_ingest(struct store *s, int64_t conn_id, const char *dedupe_key,
                       const char *event, int64_t order_id, const char *body, size_t len,
                       int *duplicate, struct th_err *err) TH_MUST_CHECK;
/* What store_event_ingest_async calls once the ingest is over: rc,
 * duplicate and err (borrowed for the call) as store_event_ingest would have
 * returned them. */
typedef void (*store_ingest_done_fn)(void *arg, int rc, int duplicate, const struct th_err *err);
/*
 * store_event_ingest without the wait, for a caller that must not hold a
 * thread while the commit runs (the HTTP intake). Returns 0 once the event
 * is queued; done is then called exactly once, on a store thread, after the
 * transaction holding the event committed (or failed). done must be quick
 * and must not wait: the next batch waits for it. dedupe_key, event and body
 * must stay valid until done is called. Returns an error without calling
 * done when the arguments are refused (as store_event_ingest would) or the
 * event cannot be queued.
 */
int store_event_ingest_async(struct store *s, int64_t conn_id, const char *dedupe_key,
                             const char *event, int64_t order_id, const char *body, size_t len,
                             store_ingest_done_fn done, void *arg,
                             struct th_err *err) TH_MUST_CHECK;

/* ---- jobs ---- */
/* Claims the oldest due job whose lease is free, leasing it to `worker` for
 * lease_ms; a job whose lease expired (its worker died) is claimable again.
 * Never hands out two jobs of the same order at once. Returns 0 with *out
 * filled, or TH_ENOTFOUND when nothing is due. */
int store_job_claim(struct store *s, const char *worker, int64_t lease_ms,
                    struct store_job *out, struct th_err *err) TH_MUST_CHECK;
/* The same, skipping jobs of the given connections (those at their
 * concurrency limit or paused by a rate limit), at most
 * STORE_MAX_CLAIM_EXCEPT of them. */
#define STORE_MAX_CLAIM_EXCEPT 256
int store_job_claim_except(struct store *s, const char *worker, int64_t lease_ms,
                           const int64_t *except, size_t nexcept, struct store_job *out,
                           struct th_err *err) TH_MUST_CHECK;
/* Limits a claim applies across every process sharing the database. A
 * connection's Qoyod account is its (qoyod_base, qoyod_api_key). */
struct store_claim_limits {
    int per_store;   /* jobs of one connection leased at once; <= 0: no limit */
    int per_account; /* jobs of one Qoyod account leased at once; <= 0: no limit */
};
/* store_job_claim_except that also skips, atomically with the claim, jobs of
 * connections already holding lim->per_store unexpired leases, of accounts
 * holding lim->per_account, and of accounts paused (store_account_pause).
 * Counting leases in the database is what makes the limits hold for every
 * process at once: two processes claiming together cannot both take a
 * store's last slot. */
int store_job_claim_limited(struct store *s, const char *worker, int64_t lease_ms,
                            const struct store_claim_limits *lim, const int64_t *except,
                            size_t nexcept, struct store_job *out,
                            struct th_err *err) TH_MUST_CHECK;
/* Finishes a job (deletes it). */
int store_job_done(struct store *s, int64_t job_id, struct th_err *err) TH_MUST_CHECK;
/* Releases a job to run again at run_after (unix ms), noting the error. */
int store_job_retry(struct store *s, int64_t job_id, int64_t run_after, const char *error,
                    struct th_err *err) TH_MUST_CHECK;
/* The same, fenced by the lease: they act only while `worker` still holds
 * the job's lease (it may have expired, as long as nobody claimed the job
 * since). When another worker took the job over, nothing is written and
 * TH_ECONFLICT returned: the new holder finishes it. This is what keeps a
 * worker that stalled past its lease from deleting or rescheduling the job
 * under the worker now running it. */
int store_job_done_as(struct store *s, int64_t job_id, const char *worker,
                      struct th_err *err) TH_MUST_CHECK;
int store_job_retry_as(struct store *s, int64_t job_id, const char *worker, int64_t run_after,
                       const char *error, struct th_err *err) TH_MUST_CHECK;
/* store_job_retry_as for a wait that is no failure (a rate limit's
 * Retry-After, the Qoyod account's turn, a token just refreshed): the claim
 * it ends is not counted in the job's attempts, so the worker's backoff,
 * which grows with attempts, grows only with failures. */
int store_job_defer_as(struct store *s, int64_t job_id, const char *worker, int64_t run_after,
                       const char *error, struct th_err *err) TH_MUST_CHECK;
/* Extends the lease `worker` holds on a job to now + lease_ms, for a job
 * that runs long. TH_ECONFLICT when the worker no longer holds it. */
int store_job_renew(struct store *s, int64_t job_id, const char *worker, int64_t lease_ms,
                    struct th_err *err) TH_MUST_CHECK;
/* Queues a job for an order now, marked manual ("send to Qoyod", retry
 * failed): the worker then transfers it whatever its date or status. */
int store_job_enqueue(struct store *s, int64_t conn_id, int64_t order_id,
                      struct th_err *err) TH_MUST_CHECK;
/* Orders one store_job_enqueue_many call takes: they share one transaction
 * (one fsync), and 250 small upserts and notes keep it to a few ms, so the
 * intake's commits never wait long behind it. */
#define STORE_MAX_ENQUEUE 250
/* store_job_enqueue for each of the n order ids of connection conn_id and,
 * when what is not NULL, store_order_note(what, detail) for each, in ONE
 * transaction: either every order is queued and noted, or none is. For
 * queuing by hand many orders at once (a range, a selection): one commit
 * per batch instead of two per order. 1 <= n <= STORE_MAX_ENQUEUE, ids > 0
 * (TH_EINVAL otherwise); TH_ENOTFOUND for an unknown connection. */
int store_job_enqueue_many(struct store *s, int64_t conn_id, const int64_t *order_ids, size_t n,
                           const char *what, const char *detail,
                           struct th_err *err) TH_MUST_CHECK;
/* Number of jobs not finished (for tests, the demo and health). */
int store_job_count(struct store *s, int64_t *n, struct th_err *err) TH_MUST_CHECK;

/* ---- shared by every process (limits, leases) ---- */
/* 1 when other processes may use this database as workers at the same time
 * (PostgreSQL), so per-process limits and locks are not enough; 0 for a
 * backend one process owns (SQLite). */
int store_shared(struct store *s);
/* Pauses the Qoyod account of connection conn_id until until_ms (unix ms;
 * a later pause already set is kept): claims with limits skip its jobs and
 * store_account_take makes its callers wait. TH_ENOTFOUND for an unknown
 * connection. */
int store_account_pause(struct store *s, int64_t conn_id, int64_t until_ms,
                        struct th_err *err) TH_MUST_CHECK;
/* Takes one call from the budget of connection conn_id's Qoyod account, a
 * token bucket of `burst` calls refilled at `per_min` a minute, shared by
 * every process: *wait_ms = 0 when the call may go now, else how long to
 * wait before asking again (also while the account is paused). */
int store_account_take(struct store *s, int64_t conn_id, int per_min, int burst, int64_t *wait_ms,
                       struct th_err *err) TH_MUST_CHECK;
/* A named lease for work that must run in one place at a time across the
 * cluster (polling a store, refreshing its tokens). Takes or renews `name`
 * for `owner` until now + ttl_ms: *held = 1 when owner holds it now, 0 when
 * another owner's lease has not expired. */
int store_lease_take(struct store *s, const char *name, const char *owner, int64_t ttl_ms,
                     int *held, struct th_err *err) TH_MUST_CHECK;
/* Gives the lease back early (nothing when owner does not hold it). */
int store_lease_drop(struct store *s, const char *name, const char *owner,
                     struct th_err *err) TH_MUST_CHECK;

/* ---- orders ---- */
/* TH_ENOTFOUND when tarheel does not know the order. */
int store_order_get(struct store *s, int64_t conn_id, int64_t order_id, struct store_order *out,
                    struct th_err *err) TH_MUST_CHECK;
/* Inserts or replaces the whole row (the worker owns the state logic). */
int store_order_put(struct store *s, const struct store_order *o,
                    struct th_err *err) TH_MUST_CHECK;
/* The same, fenced by the lease of the job that runs the order: the row is
 * written only while `worker` still holds job `job_id` (its lease may have
 * run out, as long as nobody claimed the job since). Otherwise nothing is
 * written and the answer is TH_ECONFLICT: another worker took the job over
 * (it runs the order now) or already finished it (the job is gone). So a
 * worker that stalled past its lease (a slow Qoyod call, a long Retry-After)
 * cannot write its stale row over the one the new holder wrote. The check
 * and the write are one atomic step (PostgreSQL: the job row is locked
 * FOR SHARE until the write commits, so a claim waits for it). */
int store_order_put_as(struct store *s, const struct store_order *o, int64_t job_id,
                       const char *worker, struct th_err *err) TH_MUST_CHECK;
/* Inserts o only when tarheel does not know the order yet, atomically, so
 * an order a worker is transferring (or has transferred) meanwhile keeps
 * its state: *added is 1 when o was inserted, 0 when a row already existed
 * (left exactly as it was). For orders learnt outside the worker: the pull
 * of old orders records them as not transferred. */
int store_order_add(struct store *s, const struct store_order *o, int *added,
                    struct th_err *err) TH_MUST_CHECK;
/* Appends to the order's history: what happened, in plain words. */
int store_order_note(struct store *s, int64_t conn_id, int64_t order_id, const char *what,
                     const char *detail, struct th_err *err) TH_MUST_CHECK;
/* Lists orders of a connection (0 = all) ordered by created_at, id; calls fn
 * for each (borrowed for the call). xfer < 0 means any state. */
int store_order_list(struct store *s, int64_t conn_id, int xfer,
                     void (*fn)(void *arg, const struct store_order *o), void *arg,
                     struct th_err *err) TH_MUST_CHECK;
/* The same limited to the orders of one tenant's connections (tenant 0:
 * every tenant's, as store_order_list): the filter runs in the query, so a
 * tenant's listing never reads another's rows. */
int store_order_list_in(struct store *s, int64_t tenant, int64_t conn_id, int xfer,
                        void (*fn)(void *arg, const struct store_order *o), void *arg,
                        struct th_err *err) TH_MUST_CHECK;
/* A page of orders, as GET /api/v1/orders and the dashboard ask for them:
 * every filter runs in the query and the page starts at its key (keyset
 * paging), so a page costs about the same at any depth of any store. */
#define STORE_ORDER_PAGE_MAX 1000
/* The listing's sort key: created_at, then order_id, then conn_id. */
struct store_order_key {
    int64_t created_at, order_id, conn_id;
};
struct store_order_query {
    int64_t tenant;   /* 0: every tenant's connections */
    int64_t conn_id;  /* 0: every connection */
    int xfer;         /* < 0: any state */
    int64_t from, to; /* created_at (unix s) in [from, to); to 0: no upper bound */
    /* part of the order id or of its number, ASCII letters in any case
     * (PostgreSQL folds other letters too); NULL or "": any order */
    const char *text;
    int newest;       /* newest first (the key descending); else oldest first */
    int has_after;    /* only orders after `after` in the listing's direction */
    struct store_order_key after;
    int limit;        /* 1 to STORE_ORDER_PAGE_MAX orders */
};
/* Calls fn for each order of the page, in the listing's order (rules of
 * store_order_list). TH_EINVAL for a limit out of range. */
int store_order_page(struct store *s, const struct store_order_query *q,
                     void (*fn)(void *arg, const struct store_order *o), void *arg,
                     struct th_err *err) TH_MUST_CHECK;
/* Lists an order's history, oldest first: fn gets each entry's time (unix
 * ms), what happened and its detail ("" when none), borrowed for the call;
 * fn may call the store. An order without history gives no calls and 0.
 * TH_ECONFIG when the backend keeps no history. */
int store_order_history(struct store *s, int64_t conn_id, int64_t order_id,
                        void (*fn)(void *arg, int64_t ts_ms, const char *what, const char *detail),
                        void *arg, struct th_err *err) TH_MUST_CHECK;
void store_order_release(struct store_order *o);

/* Stable snake_case names of transfer states, as the REST API shows them
 * ("not_transferred", "failed"); "?" for a value outside the enum. */
const char *store_xfer_name(enum store_xfer x);
/* Parses a name back; returns -1 when unknown. */
int store_xfer_from_name(const char *name);
/* "none", "pending", "credited", "failed", "review"; "?" outside the enum. */
const char *store_credit_name(enum store_credit c);

/* ---- mappings: platform key -> Qoyod id, per connection ---- */
/* kind: "product" (key = SKU), "contact" (key = platform customer id or
 * "cash"), "category", ... TH_ENOTFOUND when absent. */
int store_map_get(struct store *s, int64_t conn_id, const char *kind, const char *key,
                  int64_t *qoyod_id, struct th_err *err) TH_MUST_CHECK;
int store_map_put(struct store *s, int64_t conn_id, const char *kind, const char *key,
                  int64_t qoyod_id, struct th_err *err) TH_MUST_CHECK;


/* ---- stock: Qoyod -> store (worker/stock.c) ---- */
/* Longest SKU kept (Salla and Zid SKUs are far shorter). */
#define STORE_MAX_SKU 128

/*
 * One product's stock as the stock poller knows it, per connection and SKU.
 * The stored part is what Qoyod showed at the chosen location when it was
 * last read and what was done about it; the rest is filled by
 * store_stock_load from tarheel's own stock movements (invoices, opening
 * balances) not yet matched with a read.
 */
struct store_stock {
    char sku[STORE_MAX_SKU];
    /* stored */
    int64_t qoyod_product_id;
    int64_t qoyod_qty;            /* whole units at the location when last read */
    int has_qty;                  /* 0: no read yet (qoyod_qty means nothing) */
    int store_untracked;          /* 1: the store does not count it: never pushed */
    int64_t pushed_at_ms;         /* last absolute quantity written to the store; 0 never */
    int64_t read_ms;              /* store_stock_save: own movements settled before this
                                   * instant are reflected in qoyod_qty and are dropped */
    /* filled by store_stock_load */
    int known;                    /* a row exists */
    int64_t own;                  /* sum of own movements settled before before_ms */
    int64_t own_before_push;      /* the part of own whose origin is before pushed_at_ms */
    int busy;                     /* an own movement is pending, or settled at or after before_ms */
};

/* A pending own movement older than this (its document was never settled:
 * the process died and the order was never retried) no longer holds its SKU
 * back: a day is far beyond any transfer's retries. */
#define STORE_STOCK_PENDING_MAX_MS (24LL * 3600 * 1000)

/* Fills rows[i] (sku set by the caller, the rest zeroed first) for n SKUs of
 * conn_id, from the stored row and the own movements. n <= STORE_STOCK_MAX_BATCH. */
#define STORE_STOCK_MAX_BATCH 500
int store_stock_load(struct store *s, int64_t conn_id, struct store_stock *rows, size_t n,
                     int64_t before_ms, struct th_err *err) TH_MUST_CHECK;
/* In one transaction: writes each row's stored part, and deletes the own
 * movements of its SKU settled before its read_ms (they are in qoyod_qty). */
int store_stock_save(struct store *s, int64_t conn_id, const struct store_stock *rows, size_t n,
                     struct th_err *err) TH_MUST_CHECK;
/* Sets or clears store_untracked of one SKU (creating the row without a read). */
int store_stock_untracked(struct store *s, int64_t conn_id, const char *sku, int untracked,
                          struct th_err *err) TH_MUST_CHECK;
/*
 * Own stock movements: what one of tarheel's own Qoyod documents (ref: the
 * invoice reference, "OPEN-<sku>" for an opening balance) does to each SKU's
 * Qoyod stock, recorded BEFORE the document is sent (pending), settled after
 * (applied: the document exists; or dropped: it was not created). begin
 * replaces the movements of (conn_id, ref), so a retried transfer records
 * them once. origin_s is when the store itself took the stock (the order's
 * creation, unix seconds). */
int store_stock_own_begin(struct store *s, int64_t conn_id, const char *ref,
                          const char *const *skus, const int64_t *deltas, size_t n,
                          int64_t origin_s, struct th_err *err) TH_MUST_CHECK;
int store_stock_own_settle(struct store *s, int64_t conn_id, const char *ref, int applied,
                           struct th_err *err) TH_MUST_CHECK;

/* ---- order lines against a product's opening balance (worker/transfer.c) ---- */
/*
 * When tarheel creates a product in Qoyod it books its opening stock as the
 * store's count at one read plus the units of the orders the store took
 * before that read and tarheel invoices after it (docs/STOCK.md). These rows
 * are the order lines tarheel knows of such products: per connection, SKU
 * and order, the units, when the store took them, and how they stand
 * against the opening. A line is kept until its order is transferred or
 * skipped (store_stock_lines_forget).
 */
enum store_open_mark {
    STORE_OPEN_NONE = 0,    /* not in the opening (seen after it, or placed after its read) */
    STORE_OPEN_COUNTED = 1, /* in the opening's count, or corrected for since */
    STORE_OPEN_FIXING = 2,  /* a correction count (fix_from -> fix_to) was sent, its outcome
                             * not recorded (persisted: never renumber) */
};

struct store_stock_line {
    int64_t order_id;
    char sku[STORE_MAX_SKU];
    int64_t units;      /* whole units of sku in the order */
    int64_t created_ms; /* when the store took the order (the platform's creation time) */
    int mark;           /* enum store_open_mark */
    int64_t fix_from;   /* STORE_OPEN_FIXING: Qoyod's count read before the correction */
    int64_t fix_to;     /* and the count sent */
};

/* Records the order's units of each SKU (one entry a SKU; n <=
 * STORE_STOCK_MAX_BATCH) and its creation (unix seconds), keeping the mark of
 * a line already known. */
int store_stock_lines_note(struct store *s, int64_t conn_id, int64_t order_id, int64_t created_s,
                           const char *const *skus, const int64_t *units, size_t n,
                           struct th_err *err) TH_MUST_CHECK;
/* In one transaction: *units = the units of every known line of sku whose
 * order was created before before_ms; those lines are marked
 * STORE_OPEN_COUNTED, the others STORE_OPEN_NONE. */
int store_stock_lines_open(struct store *s, int64_t conn_id, const char *sku, int64_t before_ms,
                           int64_t *units, struct th_err *err) TH_MUST_CHECK;
/* One line (out->sku and the rest filled), or TH_ENOTFOUND. */
int store_stock_line_get(struct store *s, int64_t conn_id, int64_t order_id, const char *sku,
                         struct store_stock_line *out, struct th_err *err) TH_MUST_CHECK;
/* Inserts or replaces one line, mark and correction included. */
int store_stock_line_put(struct store *s, int64_t conn_id, const struct store_stock_line *l,
                         struct th_err *err) TH_MUST_CHECK;
/* Deletes every line of the order. */
int store_stock_lines_forget(struct store *s, int64_t conn_id, int64_t order_id,
                             struct th_err *err) TH_MUST_CHECK;

/* ---- product fields both sides change (worker/fields.c, docs/FIELDS.md) ---- */
enum store_field {
    STORE_FIELD_NAME = 0,
    STORE_FIELD_PRICE = 1,
    STORE_FIELD_COST = 2,
};
#define STORE_NFIELDS 3
/* A field's source of truth (persisted in field_source, never renumber). */
enum store_src {
    STORE_SRC_DEFAULT = 0, /* name and price: the store; cost: Qoyod */
    STORE_SRC_STORE = 1,
    STORE_SRC_QOYOD = 2,
};
/* "name", "price", "cost"; "?" outside the enum. */
const char *store_field_name(int field);
/* The field's index for a name, -1 when unknown. */
int store_field_from_name(const char *name);
/* "store" / "qoyod" (the default resolved); "?" outside the enum. */
const char *store_src_name(int src);
/* STORE_SRC_STORE or STORE_SRC_QOYOD for a name ("store", "qoyod"), -1 otherwise. */
int store_src_from_name(const char *name);
/* The source of truth of field for connection c, the default resolved. */
int store_field_source(const struct store_conn *c, int field);

/* Longest value kept: a name (256 bytes) or halalas as decimal text. */
#define STORE_FIELD_VALUE_MAX 260
/* Rows per store_fields_load / _save call. */
#define STORE_FIELDS_MAX_BATCH 500

/*
 * What the field sync last agreed on for one SKU's field: each side's value
 * as that side showed it after the last sync (text: a name, or money as
 * halalas in decimal). A side whose value differs from its last one changed.
 */
struct store_field_state {
    char sku[STORE_MAX_SKU];
    int field;                                  /* enum store_field */
    /* stored */
    char store_value[STORE_FIELD_VALUE_MAX];
    char qoyod_value[STORE_FIELD_VALUE_MAX];
    char store_ref[64];                         /* the platform's product id (text) */
    int64_t qoyod_id;                           /* Qoyod's product id */
    int64_t synced_ms;
    /* filled by store_fields_load */
    int known;                                  /* a row exists */
};
/* Fills each row's stored part (sku and field set by the caller; known = 0
 * and values "" when there is none). n <= STORE_FIELDS_MAX_BATCH. */
int store_fields_load(struct store *s, int64_t conn_id, struct store_field_state *rows, size_t n,
                      struct th_err *err) TH_MUST_CHECK;
/* Writes the rows' stored part, in one transaction. */
int store_fields_save(struct store *s, int64_t conn_id, const struct store_field_state *rows,
                      size_t n, struct th_err *err) TH_MUST_CHECK;

/* A field both sides changed to different values since the last sync:
 * recorded, the policy applied (winner written to the other side), and
 * listed for a person to review. */
struct store_conflict {
    int64_t id;                                 /* set by store_conflict_add */
    int64_t conn_id;
    char sku[STORE_MAX_SKU];
    int field;                                  /* enum store_field */
    char store_value[STORE_FIELD_VALUE_MAX];    /* what each side showed */
    char qoyod_value[STORE_FIELD_VALUE_MAX];
    char last_store[STORE_FIELD_VALUE_MAX];     /* what they agreed on before */
    char last_qoyod[STORE_FIELD_VALUE_MAX];
    int winner;                                 /* STORE_SRC_STORE / _QOYOD: the policy applied */
    int64_t at_ms;
    int64_t resolved_ms;                        /* 0 while waiting for review */
    char resolution[64];                        /* "reviewed", "kept store", "kept qoyod" */
};
/* Records c (at_ms, resolved_ms and resolution are set by the store: now,
 * 0, ""); sets c->id. TH_ENOTFOUND for an unknown connection. */
int store_conflict_add(struct store *s, struct store_conflict *c,
                       struct th_err *err) TH_MUST_CHECK;
/* TH_ENOTFOUND when there is no conflict with that id. */
int store_conflict_get(struct store *s, int64_t id, struct store_conflict *out,
                       struct th_err *err) TH_MUST_CHECK;
/* Conflicts of connection conn_id (0: all), newest first; open_only: only
 * those not yet reviewed. fn gets each (borrowed for the call; it may call
 * the store). At most limit (<= 0: all). */
int store_conflict_list(struct store *s, int64_t conn_id, int open_only, int limit,
                        void (*fn)(void *arg, const struct store_conflict *c), void *arg,
                        struct th_err *err) TH_MUST_CHECK;
/* Marks a conflict reviewed with resolution (non-empty): TH_ENOTFOUND when
 * absent, TH_ECONFLICT when it was resolved already (nothing written). */
int store_conflict_resolve(struct store *s, int64_t id, const char *resolution,
                           struct th_err *err) TH_MUST_CHECK;

/* ---- dashboard users (login name -> password hash, core/passwd.h) ---- */
/* Names are 1 to STORE_USER_NAME_MAX characters of A-Z a-z 0-9 . _ @ -
 * (TH_EINVAL otherwise). user_put inserts or replaces (a new password);
 * user_get sets *hash (new, free()) or returns TH_ENOTFOUND. The store keeps
 * the hash only, never a password. */
#define STORE_USER_NAME_MAX 64
int store_user_put(struct store *s, const char *name, const char *hash,
                   struct th_err *err) TH_MUST_CHECK;
int store_user_get(struct store *s, const char *name, char **hash,
                   struct th_err *err) TH_MUST_CHECK;
int store_user_count(struct store *s, int64_t *n, struct th_err *err) TH_MUST_CHECK;
/* The same with the user's tenant: put_in with tenant 0 keeps an existing
 * user's tenant (a new user: the default tenant), else moves the user there
 * (TH_ENOTFOUND: no such tenant); get_in also sets *tenant. */
int store_user_put_in(struct store *s, const char *name, const char *hash, int64_t tenant,
                      struct th_err *err) TH_MUST_CHECK;
int store_user_get_in(struct store *s, const char *name, char **hash, int64_t *tenant,
                      struct th_err *err) TH_MUST_CHECK;
/* Calls fn for each dashboard user of tenant (0: every tenant's) by name,
 * with its tenant and when its password was last set (unix ms); never the
 * hash. */
int store_user_list(struct store *s, int64_t tenant,
                    void (*fn)(void *arg, const char *name, int64_t tenant, int64_t set_ms),
                    void *arg, struct th_err *err) TH_MUST_CHECK;
/* Removes a dashboard user (its sessions end at their next request).
 * TH_ENOTFOUND when there is none of that name. */
int store_user_delete(struct store *s, const char *name, struct th_err *err) TH_MUST_CHECK;

/* ---- tenants ---- */
/*
 * A tenant owns connections, dashboard users and API tokens (docs/
 * RELIABILITY.md, Tenants): the REST API shows a tenant's users and tokens
 * only its own connections and their orders. Tenants are never deleted.
 * Every row made before tenants existed belongs to the default tenant
 * (id STORE_TENANT_DEFAULT, named "default"). Names follow the user-name
 * rule (1 to STORE_TENANT_NAME_MAX of A-Z a-z 0-9 . _ @ -; TH_EINVAL).
 */
#define STORE_TENANT_DEFAULT 1
#define STORE_TENANT_NAME_MAX 64
struct store_tenant {
    int64_t id;
    char name[STORE_TENANT_NAME_MAX + 1];
    int64_t created_ms;
};
/* Adds a tenant; sets *id. TH_ECONFLICT when the name is taken. */
int store_tenant_add(struct store *s, const char *name, int64_t *id,
                     struct th_err *err) TH_MUST_CHECK;
/* By name or by id; TH_ENOTFOUND when absent. */
int store_tenant_find(struct store *s, const char *name, struct store_tenant *out,
                      struct th_err *err) TH_MUST_CHECK;
int store_tenant_get(struct store *s, int64_t id, struct store_tenant *out,
                     struct th_err *err) TH_MUST_CHECK;
/* Calls fn for every tenant, by id (t borrowed; fn may call the store). */
int store_tenant_list(struct store *s, void (*fn)(void *arg, const struct store_tenant *t),
                      void *arg, struct th_err *err) TH_MUST_CHECK;

/* ---- API tokens of tenants ---- */
/*
 * A tenant's REST API tokens, kept as the hex SHA-256 digest only (the
 * token is shown once, when made: `tarheel token add`). The operator's
 * tokens (serve --api-token-file, $TARHEEL_API_TOKEN) are not here: they
 * see every tenant. A label is 0 to STORE_TOKEN_LABEL_MAX printable ASCII
 * characters, to tell tokens apart in `token list`.
 */
#define STORE_TOKEN_DIGEST_HEX 64
#define STORE_TOKEN_LABEL_MAX 64
struct store_token {
    int64_t id;
    int64_t tenant_id;
    char label[STORE_TOKEN_LABEL_MAX + 1];
    int64_t created_ms;
};
/* Adds a token of tenant (TH_ENOTFOUND: no such tenant; TH_EINVAL: the
 * digest is not 64 lower-case hex digits or the label is bad; TH_ECONFLICT:
 * that digest is stored already). Sets *id. */
int store_token_add(struct store *s, int64_t tenant, const char *digest_hex, const char *label,
                    int64_t *id, struct th_err *err) TH_MUST_CHECK;
/* The token whose digest this is; TH_ENOTFOUND when none (or revoked). */
int store_token_find(struct store *s, const char *digest_hex, struct store_token *out,
                     struct th_err *err) TH_MUST_CHECK;
/* Calls fn for every token of tenant (0: of every tenant), by id. */
int store_token_list(struct store *s, int64_t tenant,
                     void (*fn)(void *arg, const struct store_token *t), void *arg,
                     struct th_err *err) TH_MUST_CHECK;
/* Deletes token id: it stops working at once. TH_ENOTFOUND when absent. */
int store_token_revoke(struct store *s, int64_t id, struct th_err *err) TH_MUST_CHECK;
/* Number of stored tokens (the API is on when there is one). */
int store_token_count(struct store *s, int64_t *n, struct th_err *err) TH_MUST_CHECK;

#endif
