/*
 * store_pg — the PostgreSQL backend (see store_pg.h and store_int.h).
 *
 * Design notes.
 *
 * A pool of server connections. Each call borrows one connection for its
 * whole length (a transaction never spans two calls) and gives it back; at
 * most STORE_PG_POOL are open, further callers wait for one. A connection
 * that broke (server restart, network) is closed when it is given back, and
 * the next call opens a fresh one, so a restarted server costs the calls
 * that were running, not the process.
 *
 * Durability. PostgreSQL's default synchronous_commit=on: COMMIT returns
 * after the WAL is flushed, so a write that returned 0 survives a crash of
 * the server (store.h). An operator who turns synchronous_commit off, or
 * runs a replica without synchronous replication, weakens "accepted means
 * on disk"; docs/SCALING.md says so.
 *
 * Statements are one round trip where SQL allows: an ingest is ONE
 * statement (the event insert and the job upsert in data-modifying CTEs),
 * so it is atomic without BEGIN/COMMIT round trips, and the server's own
 * group commit (concurrent transactions share a WAL flush) replaces the
 * SQLite backend's committer thread.
 *
 * Jobs: the same rules as SQLite (one pending job per order by a UNIQUE
 * index, rerun flag, lease). A claim picks the oldest due free job with
 * FOR UPDATE SKIP LOCKED, so processes claiming at the same time never
 * wait on each other's candidate rows and never take the same job.
 *
 * Schema. Numbered migrations in `migrations[]`; tarheel_schema.version is
 * the number applied. Opening takes a transaction-scoped advisory lock
 * first, so processes starting together migrate once. PostgreSQL's DDL is
 * transactional: a failed migration leaves the database as it was. Never
 * edit an applied migration: add the next one.
 *
 * Ids. BIGSERIAL ids may have gaps (an upsert that updates still takes a
 * sequence value), so this backend lists connections with conn_list rather
 * than store.c's walk from id 1.
 */
#include "store/store_pg.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"

/* ---------------------------------------------------------------------- */
/* Schema */

static const char *const migrations[] = {
    /* 1: the schema of SQLite's migrations 1-5, in PostgreSQL types. */
    "CREATE TABLE connections ("
    "  id BIGSERIAL PRIMARY KEY,"
    "  platform INTEGER NOT NULL,"
    "  store_id BIGINT NOT NULL,"
    "  name TEXT,"
    "  access_token TEXT,"
    "  refresh_token TEXT,"
    "  manager_token TEXT,"
    "  token_expires_at BIGINT NOT NULL DEFAULT 0,"
    "  webhook_secret TEXT,"
    "  webhook_strategy TEXT,"
    "  api_base TEXT,"
    "  status TEXT,"
    "  connected_at BIGINT NOT NULL DEFAULT 0,"
    "  qoyod_base TEXT,"
    "  qoyod_api_key TEXT,"
    "  inventory_id BIGINT NOT NULL DEFAULT 0,"
    "  payment_account_id BIGINT NOT NULL DEFAULT 0,"
    "  trigger_status INTEGER NOT NULL DEFAULT 1,"
    "  customer_per_invoice INTEGER NOT NULL DEFAULT 0,"
    "  number_by_order INTEGER NOT NULL DEFAULT 0,"
    "  financial_invoice INTEGER NOT NULL DEFAULT 0,"
    "  UNIQUE (platform, store_id)"
    ");"
    "CREATE TABLE events ("
    "  id BIGSERIAL PRIMARY KEY,"
    "  conn_id BIGINT NOT NULL REFERENCES connections(id),"
    "  dedupe_key TEXT NOT NULL,"
    "  event TEXT NOT NULL,"
    "  order_id BIGINT NOT NULL DEFAULT 0,"
    "  received_at_ms BIGINT NOT NULL,"
    "  format INTEGER NOT NULL DEFAULT 1,"
    "  body BYTEA NOT NULL"
    ");"
    "CREATE UNIQUE INDEX events_dedupe ON events (conn_id, order_id, dedupe_key);"
    "CREATE TABLE jobs ("
    "  id BIGSERIAL PRIMARY KEY,"
    "  conn_id BIGINT NOT NULL REFERENCES connections(id),"
    "  order_id BIGINT NOT NULL,"
    "  run_after_ms BIGINT NOT NULL,"
    "  lease_owner TEXT,"
    "  lease_until_ms BIGINT NOT NULL DEFAULT 0,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  rerun INTEGER NOT NULL DEFAULT 0,"
    "  manual INTEGER NOT NULL DEFAULT 0,"
    "  last_error TEXT,"
    "  created_at_ms BIGINT NOT NULL"
    ");"
    "CREATE UNIQUE INDEX jobs_one_per_order ON jobs (conn_id, order_id);"
    "CREATE INDEX jobs_due ON jobs (run_after_ms, id);"
    "CREATE TABLE orders ("
    "  conn_id BIGINT NOT NULL REFERENCES connections(id),"
    "  order_id BIGINT NOT NULL,"
    "  number TEXT,"
    "  status INTEGER NOT NULL DEFAULT 0,"
    "  xfer INTEGER NOT NULL DEFAULT 0,"
    "  reason_code INTEGER NOT NULL DEFAULT 0,"
    "  reason TEXT,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  total BIGINT NOT NULL DEFAULT 0,"
    "  tax BIGINT NOT NULL DEFAULT 0,"
    "  qoyod_total BIGINT NOT NULL DEFAULT 0,"
    "  qoyod_invoice_id BIGINT NOT NULL DEFAULT 0,"
    "  qoyod_reference TEXT,"
    "  qoyod_payment_id BIGINT NOT NULL DEFAULT 0,"
    "  created_at BIGINT NOT NULL DEFAULT 0,"
    "  updated_at BIGINT NOT NULL DEFAULT 0,"
    "  transferred_at BIGINT NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (conn_id, order_id)"
    ");"
    "CREATE INDEX orders_by_created ON orders (created_at, order_id);"
    "CREATE INDEX orders_by_xfer ON orders (xfer, created_at, order_id);"
    "CREATE TABLE order_history ("
    "  id BIGSERIAL PRIMARY KEY,"
    "  conn_id BIGINT NOT NULL REFERENCES connections(id),"
    "  order_id BIGINT NOT NULL,"
    "  ts_ms BIGINT NOT NULL,"
    "  what TEXT NOT NULL,"
    "  detail TEXT"
    ");"
    "CREATE INDEX order_history_by_order ON order_history (conn_id, order_id, id);"
    "CREATE FUNCTION tarheel_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    "  $$BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END$$;"
    "CREATE TRIGGER order_history_append_only BEFORE UPDATE OR DELETE ON order_history"
    "  FOR EACH ROW EXECUTE FUNCTION tarheel_append_only();"
    "CREATE TABLE mappings ("
    "  id BIGSERIAL PRIMARY KEY,"
    "  conn_id BIGINT NOT NULL REFERENCES connections(id),"
    "  kind TEXT NOT NULL,"
    "  key TEXT NOT NULL,"
    "  qoyod_id BIGINT NOT NULL,"
    "  updated_at_ms BIGINT NOT NULL,"
    "  UNIQUE (conn_id, kind, key)"
    ");",
    /* 2: SQLite's 6, stock sync (worker/stock.c). */
    "ALTER TABLE connections ADD COLUMN stock_sync INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE connections ADD COLUMN stock_interval_s BIGINT NOT NULL DEFAULT 0;"
    "CREATE TABLE stock ("
    "  conn_id BIGINT NOT NULL REFERENCES connections(id),"
    "  sku TEXT NOT NULL,"
    "  qoyod_product_id BIGINT NOT NULL DEFAULT 0,"
    "  qoyod_qty BIGINT NOT NULL DEFAULT 0,"
    "  has_qty INTEGER NOT NULL DEFAULT 0,"
    "  store_untracked INTEGER NOT NULL DEFAULT 0,"
    "  pushed_at_ms BIGINT NOT NULL DEFAULT 0,"
    "  read_ms BIGINT NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (conn_id, sku)"
    ");"
    "CREATE TABLE stock_own ("
    "  conn_id BIGINT NOT NULL REFERENCES connections(id),"
    "  ref TEXT NOT NULL,"
    "  sku TEXT NOT NULL,"
    "  delta BIGINT NOT NULL,"
    "  origin_ms BIGINT NOT NULL,"
    "  begun_ms BIGINT NOT NULL,"
    "  settled_ms BIGINT NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (conn_id, ref, sku)"
    ");"
    "CREATE INDEX stock_own_by_sku ON stock_own (conn_id, sku);",
    /* 3: SQLite's 7, the orders' credit-note state. */
    "ALTER TABLE orders ADD COLUMN credit INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE orders ADD COLUMN credited BIGINT NOT NULL DEFAULT 0;",
    /* 4: SQLite's 8, dashboard users (name -> scrypt hash, core/passwd.h). */
    "CREATE TABLE users ("
    "  name TEXT PRIMARY KEY,"
    "  hash TEXT NOT NULL,"
    "  updated_at_ms BIGINT NOT NULL"
    ");",
    /* 5: limits and leases shared by every worker (SQLite's migration 9):
     * a Qoyod account's pause and call budget, named leases, and an index
     * on the leased jobs a limited claim counts. */
    "CREATE TABLE accounts ("
    "  qoyod_base TEXT NOT NULL,"
    "  qoyod_api_key TEXT NOT NULL,"
    "  paused_until_ms BIGINT NOT NULL DEFAULT 0,"
    "  milli_tokens BIGINT NOT NULL DEFAULT 0,"
    "  refilled_ms BIGINT NOT NULL DEFAULT -1,"
    "  PRIMARY KEY (qoyod_base, qoyod_api_key)"
    ");"
    "CREATE TABLE leases ("
    "  name TEXT PRIMARY KEY,"
    "  owner TEXT NOT NULL,"
    "  until_ms BIGINT NOT NULL"
    ");"
    "CREATE INDEX jobs_leased ON jobs (conn_id) WHERE lease_owner IS NOT NULL;",
    /* 6: SQLite's 10, reference prefixes (store.h, struct
     * store_conn.ref_prefix), with the same assignment to connections
     * already sharing a Qoyod account. */
    "ALTER TABLE connections ADD COLUMN ref_prefix TEXT NOT NULL DEFAULT '';"
    "UPDATE connections c SET ref_prefix = (CASE platform WHEN 2 THEN 'Z' ELSE 'S' END) || id "
    "WHERE COALESCE(qoyod_api_key, '') <> '' AND NOT EXISTS (SELECT 1 FROM orders WHERE "
    "conn_id = c.id AND (xfer IN (1, 2) OR qoyod_reference IS NOT NULL)) AND EXISTS ("
    "SELECT 1 FROM connections o WHERE o.id <> c.id AND COALESCE(o.qoyod_base, '') = "
    "COALESCE(c.qoyod_base, '') AND o.qoyod_api_key = c.qoyod_api_key AND "
    "(o.id < c.id OR EXISTS (SELECT 1 FROM orders WHERE conn_id = o.id AND (xfer IN "
    "(1, 2) OR qoyod_reference IS NOT NULL))));",
    /* 7: tenants (SQLite's migration 11): connections and dashboard users
     * belong to one, the existing rows to the default tenant (id 1);
     * tenants' API tokens as SHA-256 digests only. */
    "CREATE TABLE tenants ("
    "  id BIGSERIAL PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  created_at_ms BIGINT NOT NULL"
    ");"
    "INSERT INTO tenants (id, name, created_at_ms) VALUES (1, 'default', "
    "  (extract(epoch FROM now()) * 1000)::bigint);"
    "SELECT setval(pg_get_serial_sequence('tenants', 'id'), 1);"
    "ALTER TABLE connections ADD COLUMN tenant_id BIGINT NOT NULL DEFAULT 1 REFERENCES tenants(id);"
    "ALTER TABLE users ADD COLUMN tenant_id BIGINT NOT NULL DEFAULT 1 REFERENCES tenants(id);"
    "CREATE TABLE api_tokens ("
    "  id BIGSERIAL PRIMARY KEY,"
    "  tenant_id BIGINT NOT NULL REFERENCES tenants(id),"
    "  digest TEXT NOT NULL UNIQUE,"
    "  label TEXT NOT NULL DEFAULT '',"
    "  created_at_ms BIGINT NOT NULL"
    ");",
    /* 8: SQLite's 12, product fields both sides change (worker/fields.c). */
    "CREATE TABLE field_settings ("
    "  conn_id BIGINT PRIMARY KEY REFERENCES connections(id),"
    "  sync INTEGER NOT NULL DEFAULT 0,"
    "  sources INTEGER NOT NULL DEFAULT 0"
    ");"
    "CREATE TABLE fields ("
    "  conn_id BIGINT NOT NULL REFERENCES connections(id),"
    "  sku TEXT NOT NULL,"
    "  field INTEGER NOT NULL,"
    "  store_value TEXT NOT NULL,"
    "  qoyod_value TEXT NOT NULL,"
    "  store_ref TEXT NOT NULL,"
    "  qoyod_id BIGINT NOT NULL,"
    "  synced_ms BIGINT NOT NULL,"
    "  PRIMARY KEY (conn_id, sku, field)"
    ");"
    "CREATE TABLE conflicts ("
    "  id BIGSERIAL PRIMARY KEY,"
    "  conn_id BIGINT NOT NULL REFERENCES connections(id),"
    "  sku TEXT NOT NULL,"
    "  field INTEGER NOT NULL,"
    "  store_value TEXT NOT NULL,"
    "  qoyod_value TEXT NOT NULL,"
    "  last_store TEXT NOT NULL,"
    "  last_qoyod TEXT NOT NULL,"
    "  winner INTEGER NOT NULL,"
    "  at_ms BIGINT NOT NULL,"
    "  resolved_ms BIGINT NOT NULL DEFAULT 0,"
    "  resolution TEXT NOT NULL DEFAULT ''"
    ");"
    "CREATE INDEX conflicts_by_conn ON conflicts (conn_id, resolved_ms);",
    /* 9: SQLite's 13, order lines against a product's opening balance
     * (store.h, struct store_stock_line; docs/STOCK.md). */
    "CREATE TABLE stock_lines ("
    "  conn_id BIGINT NOT NULL REFERENCES connections(id),"
    "  sku TEXT NOT NULL,"
    "  order_id BIGINT NOT NULL,"
    "  units BIGINT NOT NULL,"
    "  created_ms BIGINT NOT NULL,"
    "  mark INTEGER NOT NULL DEFAULT 0,"
    "  fix_from BIGINT NOT NULL DEFAULT 0,"
    "  fix_to BIGINT NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (conn_id, sku, order_id)"
    ");"
    "CREATE INDEX stock_lines_by_order ON stock_lines (conn_id, order_id);",
};

_Static_assert(sizeof migrations / sizeof migrations[0] == STORE_PG_SCHEMA_VERSION,
               "STORE_PG_SCHEMA_VERSION must equal the number of migrations");

/* The advisory lock key that serialises migrations ("tarheel" in ASCII). */
#define MIGRATE_LOCK "7461726865656c"

/* ---------------------------------------------------------------------- */
/* SQL */

#define CONN_COLS                                                                                  \
    "platform, store_id, name, access_token, refresh_token, token_expires_at, webhook_secret, "    \
    "webhook_strategy, api_base, status, connected_at, qoyod_base, qoyod_api_key, inventory_id, "  \
    "payment_account_id, trigger_status, customer_per_invoice, number_by_order, "                  \
    "financial_invoice, manager_token, stock_sync, stock_interval_s"

#define ORDER_COLS                                                                                 \
    "conn_id, order_id, number, status, xfer, reason_code, reason, attempts, total, qoyod_total, " \
    "qoyod_invoice_id, qoyod_reference, qoyod_payment_id, created_at, updated_at, transferred_at, " \
    "tax, credit, credited"

/* What a job upsert does on conflict (ingest and enqueue): a pending job
 * only becomes due sooner; a leased one is marked for a rerun. */
#define JOB_ON_CONFLICT                                                                            \
    " ON CONFLICT (conn_id, order_id) DO UPDATE SET "                                              \
    "  run_after_ms = LEAST(j.run_after_ms, excluded.run_after_ms),"                               \
    "  rerun = CASE WHEN j.lease_owner IS NOT NULL AND j.lease_until_ms >= excluded.run_after_ms " \
    "          THEN 1 ELSE j.rerun END"

static const char SQL_CONN_UPSERT[] =
    "INSERT INTO connections (" CONN_COLS ", tenant_id) VALUES "
    "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, "
    "$21, $22, CASE WHEN $23::bigint = 0 THEN 1 ELSE $23::bigint END) "
    "ON CONFLICT (platform, store_id) DO UPDATE SET name = excluded.name, access_token = "
    "excluded.access_token, refresh_token = excluded.refresh_token, token_expires_at = "
    "excluded.token_expires_at, webhook_secret = excluded.webhook_secret, webhook_strategy = "
    "excluded.webhook_strategy, api_base = excluded.api_base, status = excluded.status, "
    "connected_at = excluded.connected_at, qoyod_base = excluded.qoyod_base, qoyod_api_key = "
    "excluded.qoyod_api_key, inventory_id = excluded.inventory_id, payment_account_id = "
    "excluded.payment_account_id, trigger_status = excluded.trigger_status, "
    "customer_per_invoice = excluded.customer_per_invoice, number_by_order = "
    "excluded.number_by_order, financial_invoice = excluded.financial_invoice, "
    "manager_token = excluded.manager_token, stock_sync = excluded.stock_sync, "
    "stock_interval_s = excluded.stock_interval_s, tenant_id = CASE WHEN $23::bigint = 0 THEN "
    "connections.tenant_id ELSE $23::bigint END RETURNING id";

static const char SQL_CONN_UPDATE[] =
    "UPDATE connections SET platform = $1, store_id = $2, name = $3, access_token = $4, "
    "refresh_token = $5, token_expires_at = $6, webhook_secret = $7, webhook_strategy = $8, "
    "api_base = $9, status = $10, connected_at = $11, qoyod_base = $12, qoyod_api_key = $13, "
    "inventory_id = $14, payment_account_id = $15, trigger_status = $16, "
    "customer_per_invoice = $17, number_by_order = $18, financial_invoice = $19, "
    "manager_token = $20, stock_sync = $21, stock_interval_s = $22, tenant_id = CASE WHEN "
    "$24::bigint = 0 THEN tenant_id ELSE $24::bigint END WHERE id = $23";

static const char SQL_CONN_TOKENS[] =
    "UPDATE connections SET access_token = $2, refresh_token = $3, manager_token = $4, "
    "token_expires_at = $5, status = $6 WHERE id = $1";

static const char SQL_CONN_SETTINGS[] =
    "UPDATE connections SET name = $2, qoyod_base = $3, qoyod_api_key = $4, inventory_id = $5, "
    "payment_account_id = $6, trigger_status = $7, customer_per_invoice = $8, "
    "number_by_order = $9, financial_invoice = $10, webhook_secret = $11, "
    "webhook_strategy = $12, api_base = $13, stock_sync = $14, stock_interval_s = $15 "
    "WHERE id = $1";

/* $1 conn, $2 key, $3 event, $4 order, $5 now, $6 body (binary). One
 * statement: the event, and the job when the event is new and names an
 * order. Returns (events inserted, jobs touched). */
static const char SQL_INGEST[] =
    "WITH e AS (INSERT INTO events (conn_id, dedupe_key, event, order_id, received_at_ms, "
    "  format, body) VALUES ($1, $2, $3, $4, $5, 1, $6) "
    "  ON CONFLICT (conn_id, order_id, dedupe_key) DO NOTHING RETURNING order_id), "
    "q AS (INSERT INTO jobs AS j (conn_id, order_id, run_after_ms, created_at_ms) "
    "  SELECT $1, order_id, $5, $5 FROM e WHERE order_id <> 0" JOB_ON_CONFLICT " RETURNING 1) "
    "SELECT (SELECT count(*) FROM e), (SELECT count(*) FROM q)";

/* $1 conn, $2 order, $3 now. */
static const char SQL_ENQUEUE[] =
    "INSERT INTO jobs AS j (conn_id, order_id, run_after_ms, created_at_ms, manual) "
    "VALUES ($1, $2, $3, $3, 1)" JOB_ON_CONFLICT ", manual = 1";

/* Whether job j of connection c may start now under the limits: $2 now,
 * $3 per store, $4 per account (<= 0: no limit); a paused account never. */
#define LIMITS_OK                                                                                  \
    "($3 <= 0 OR (SELECT count(*) FROM jobs r WHERE r.conn_id = j.conn_id AND "                    \
    "  r.lease_owner IS NOT NULL AND r.lease_until_ms >= $2) < $3) AND "                           \
    "($4 <= 0 OR (SELECT count(*) FROM jobs r JOIN connections rc ON rc.id = r.conn_id "           \
    "  WHERE r.lease_owner IS NOT NULL AND r.lease_until_ms >= $2 AND "                            \
    "  COALESCE(rc.qoyod_base, '') = COALESCE(c.qoyod_base, '') AND "                              \
    "  COALESCE(rc.qoyod_api_key, '') = COALESCE(c.qoyod_api_key, '')) < $4) AND "                 \
    "NOT EXISTS (SELECT 1 FROM accounts a WHERE a.qoyod_base = COALESCE(c.qoyod_base, '') AND "    \
    "  a.qoyod_api_key = COALESCE(c.qoyod_api_key, '') AND a.paused_until_ms > $2)"

/* The oldest due free job within the limits (as a pre-filter: see
 * pg_job_claim), row-locked, skipping rows other claims hold. $1 connections
 * to skip (bigint[]), $2 now, $3 per store, $4 per account. Also returns
 * the advisory lock key of the job's Qoyod account. */
static const char SQL_CLAIM_PICK[] =
    "SELECT j.id, hashtextextended(COALESCE(c.qoyod_base, '') || chr(10) || "
    "  COALESCE(c.qoyod_api_key, ''), 0) FROM jobs j JOIN connections c ON c.id = j.conn_id "
    "WHERE j.run_after_ms <= $2 AND (j.lease_owner IS NULL OR j.lease_until_ms < $2) AND "
    "  NOT (j.conn_id = ANY ($1::bigint[])) AND " LIMITS_OK " "
    "ORDER BY j.run_after_ms, j.id LIMIT 1 FOR UPDATE OF j SKIP LOCKED";

/* The same limits for job $1, counted again under the account's lock. */
static const char SQL_CLAIM_RECHECK[] =
    "SELECT j.conn_id, (" LIMITS_OK ") FROM jobs j JOIN connections c ON c.id = j.conn_id "
    "WHERE j.id = $1";

/* $1 job, $2 worker, $3 lease_until. */
static const char SQL_CLAIM_TAKE[] =
    "UPDATE jobs SET lease_owner = $2, lease_until_ms = $3, attempts = attempts + 1, rerun = 0 "
    "WHERE id = $1 RETURNING id, conn_id, order_id, attempts, run_after_ms, manual";

static const char SQL_ORDER_PUT[] =
    "INSERT INTO orders (" ORDER_COLS ") VALUES "
    "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) "
    "ON CONFLICT (conn_id, order_id) DO UPDATE SET number = excluded.number, status = "
    "excluded.status, xfer = excluded.xfer, reason_code = excluded.reason_code, reason = "
    "excluded.reason, attempts = excluded.attempts, total = excluded.total, qoyod_total = "
    "excluded.qoyod_total, qoyod_invoice_id = excluded.qoyod_invoice_id, qoyod_reference = "
    "excluded.qoyod_reference, qoyod_payment_id = excluded.qoyod_payment_id, created_at = "
    "excluded.created_at, updated_at = excluded.updated_at, transferred_at = "
    "excluded.transferred_at, tax = excluded.tax, credit = excluded.credit, credited = "
    "excluded.credited";

static const char SQL_ORDER_ADD[] =
    "INSERT INTO orders (" ORDER_COLS ") VALUES "
    "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) "
    "ON CONFLICT (conn_id, order_id) DO NOTHING";

/* ---------------------------------------------------------------------- */
/* The handle and its pool */

struct pgs {
    struct store base; /* first: store.c sees only this */
    char *url;         /* as given (may hold a password: never printed) */
    char *shown;       /* the URL with any password replaced by "***", for messages */
    pthread_mutex_t mu;
    pthread_cond_t cv;  /* a connection was given back, or a slot freed */
    PGconn *idle[STORE_PG_POOL];
    int nidle, nopen;
};

static struct pgs *pg_of(struct store *s)
{
    return (struct pgs *)s;
}

/* The URL without its password: "postgres://u:secret@h/db" → "postgres://u:***@h/db". */
static char *url_shown(const char *url)
{
    const char *scheme = strstr(url, "://");
    const char *at = scheme ? strchr(scheme + 3, '@') : NULL;
    const char *colon = scheme ? strchr(scheme + 3, ':') : NULL;
    if (!at || !colon || colon > at) return xstrdup(url);
    return xasprintf("%.*s:***%s", (int)(colon - url), url, at);
}

/* Opens a server connection; NULL with err filled when it cannot. */
static PGconn *pg_connect(struct pgs *q, struct th_err *err)
{
    /* Defaults before dbname, so the URL's own settings win. */
    const char *const keys[] = {"application_name", "connect_timeout", "dbname", NULL};
    const char *const vals[] = {"tarheel", "10", q->url, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", c ? PQerrorMessage(c) : "out of memory");
        msg[strcspn(msg, "\n")] = '\0';
        th_err_set(err, TH_EDB,
                   "cannot connect to PostgreSQL at %s: %s (is the server running, and do the "
                   "URL's host, port, user and database exist?)",
                   q->shown, msg);
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* Borrows a connection (opening one when none is idle and the pool has
 * room, else waiting). Returns NULL with err filled when it cannot connect. */
static PGconn *conn_get(struct pgs *q, struct th_err *err)
{
    pthread_mutex_lock(&q->mu);
    for (;;) {
        if (q->nidle > 0) {
            PGconn *c = q->idle[--q->nidle];
            pthread_mutex_unlock(&q->mu);
            return c;
        }
        if (q->nopen < STORE_PG_POOL) break;
        pthread_cond_wait(&q->cv, &q->mu);
    }
    q->nopen++;
    pthread_mutex_unlock(&q->mu);
    PGconn *c = pg_connect(q, err);
    if (!c) {
        pthread_mutex_lock(&q->mu);
        q->nopen--;
        pthread_cond_signal(&q->cv);
        pthread_mutex_unlock(&q->mu);
    }
    return c;
}

/* Gives a connection back; a broken one (or one left inside a transaction)
 * is closed instead. */
static void conn_put(struct pgs *q, PGconn *c)
{
    int bad = PQstatus(c) != CONNECTION_OK || PQtransactionStatus(c) != PQTRANS_IDLE;
    if (bad) PQfinish(c);
    pthread_mutex_lock(&q->mu);
    if (bad)
        q->nopen--;
    else
        q->idle[q->nidle++] = c;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

/* ---------------------------------------------------------------------- */
/* Parameters and results */

#define MAX_PARAMS 24

/* A statement's parameters, as text (binary for bytea). */
struct pp {
    int n;
    const char *v[MAX_PARAMS];
    int len[MAX_PARAMS];
    int fmt[MAX_PARAMS];
    char num[MAX_PARAMS][24];
};

static void p_i64(struct pp *p, int64_t v)
{
    snprintf(p->num[p->n], sizeof p->num[p->n], "%lld", (long long)v);
    p->v[p->n] = p->num[p->n];
    p->len[p->n] = 0;
    p->fmt[p->n] = 0;
    p->n++;
}

/* NULL binds SQL NULL. The string must outlive the statement. */
static void p_str(struct pp *p, const char *s)
{
    p->v[p->n] = s;
    p->len[p->n] = 0;
    p->fmt[p->n] = 0;
    p->n++;
}

static void p_bin(struct pp *p, const char *b, size_t len)
{
    p->v[p->n] = b;
    p->len[p->n] = (int)len;
    p->fmt[p->n] = 1;
    p->n++;
}

/* Maps a failed result (or a connection failure, res NULL) of the operation
 * described by fmt to a TH_E* code and fills err. */
static int fail(struct pgs *q, PGconn *c, const PGresult *res, struct th_err *err, const char *fmt,
                ...) TH_PRINTF(5, 6);
static int fail(struct pgs *q, PGconn *c, const PGresult *res, struct th_err *err, const char *fmt,
                ...)
{
    char op[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(op, sizeof op, fmt, ap);
    va_end(ap);
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    char msg[300];
    snprintf(msg, sizeof msg, "%s", res ? PQresultErrorMessage(res) : PQerrorMessage(c));
    msg[strcspn(msg, "\n")] = '\0';
    if (!state || PQstatus(c) != CONNECTION_OK || strncmp(state, "08", 2) == 0 ||
        strncmp(state, "57P", 3) == 0)
        return th_err_set(err, TH_EDB,
                          "%s: lost the connection to PostgreSQL at %s: %s (tarheel reconnects "
                          "on the next call)",
                          op, q->shown, msg);
    if (strcmp(state, "23503") == 0) return th_err_set(err, TH_ENOTFOUND, "%s: no such connection", op);
    if (strcmp(state, "23505") == 0)
        return th_err_set(err, TH_ECONFLICT, "%s: the record already exists (%s)", op, msg);
    if (strcmp(state, "53100") == 0)
        return th_err_set(err, TH_EDISKFULL,
                          "%s: the disk of the PostgreSQL server at %s is full", op, q->shown);
    return th_err_set(err, TH_EDB, "%s: %s (SQLSTATE %s, database %s)", op, msg, state, q->shown);
}

/* Runs sql with p's parameters; returns the result when it succeeded, else
 * NULL with err filled (what names the operation). */
static PGresult *run(struct pgs *q, PGconn *c, const char *sql, const struct pp *p,
                     struct th_err *err, const char *what)
{
    /* Without parameters through the simple protocol: a migration is
     * several statements in one string. */
    PGresult *res = p ? PQexecParams(c, sql, p->n, NULL, p->v, p->len, p->fmt, 0) : PQexec(c, sql);
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return res;
    fail(q, c, res, err, "%s", what);
    PQclear(res);
    return NULL;
}

/* A plain statement without parameters or rows (BEGIN, COMMIT, ...). */
static int plain(struct pgs *q, PGconn *c, const char *sql, struct th_err *err, const char *what)
{
    PGresult *res = run(q, c, sql, NULL, err, what);
    if (!res) return err && err->code ? err->code : TH_EDB;
    PQclear(res);
    return 0;
}

static void rollback(PGconn *c)
{
    if (PQtransactionStatus(c) != PQTRANS_IDLE) PQclear(PQexec(c, "ROLLBACK"));
}

/* Ends the transaction begun on c: ROLLBACK when rc is a failure, else
 * COMMIT (whose own failure is returned). Returns the outcome. */
static int end_tx(struct pgs *q, PGconn *c, int rc, struct th_err *err, const char *what)
{
    if (rc) {
        rollback(c);
        return rc;
    }
    return plain(q, c, "COMMIT", err, what);
}

static int64_t col_i64(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static char *col_str(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : xstrdup(PQgetvalue(r, row, col));
}

static int64_t affected(const PGresult *r)
{
    const char *t = PQcmdTuples((PGresult *)r);
    return t && *t ? strtoll(t, NULL, 10) : 0;
}

/* The error code err carries after a failed run() (never 0). */
static int code_of(const struct th_err *err)
{
    return err && err->code ? err->code : TH_EDB;
}

/* ---------------------------------------------------------------------- */
/* Open and close */

static void pg_free(struct pgs *q)
{
    for (int i = 0; i < q->nidle; i++) PQfinish(q->idle[i]);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    free(q->url);
    free(q->shown);
    free(q);
}

/* Applies the migrations the database lacks, in one transaction under an
 * advisory lock. */
static int migrate(struct pgs *q, PGconn *c, struct th_err *err)
{
    int rc = plain(q, c, "BEGIN", err, "migrate: begin");
    if (rc) return rc;
    PGresult *r = NULL;
    if ((rc = plain(q, c, "SET LOCAL client_min_messages = warning", err, "migrate")) ||
        (rc = plain(q, c, "SELECT pg_advisory_xact_lock(x'" MIGRATE_LOCK "'::bigint)", err,
                    "migrate: lock")) ||
        (rc = plain(q, c, "CREATE TABLE IF NOT EXISTS tarheel_schema (version INTEGER NOT NULL)",
                    err, "migrate: version table")))
        goto out;
    if (!(r = run(q, c, "SELECT version FROM tarheel_schema", NULL, err, "migrate: read version"))) {
        rc = code_of(err);
        goto out;
    }
    int64_t v = PQntuples(r) ? col_i64(r, 0, 0) : 0;
    int fresh = PQntuples(r) == 0;
    PQclear(r);
    if (v > STORE_PG_SCHEMA_VERSION || v < 0) {
        rc = th_err_set(err, TH_ECONFIG,
                        "the database %s has schema version %lld but this tarheel knows only up "
                        "to %d; run a newer tarheel",
                        q->shown, (long long)v, STORE_PG_SCHEMA_VERSION);
        goto out;
    }
    if (v == STORE_PG_SCHEMA_VERSION) goto out;
    for (; v < STORE_PG_SCHEMA_VERSION; v++) {
        char what[48];
        snprintf(what, sizeof what, "schema migration %lld", (long long)v + 1);
        if ((rc = plain(q, c, migrations[v], err, what)) != 0) goto out;
    }
    struct pp p = {0};
    p_i64(&p, STORE_PG_SCHEMA_VERSION);
    r = run(q, c,
            fresh ? "INSERT INTO tarheel_schema (version) VALUES ($1)"
                  : "UPDATE tarheel_schema SET version = $1",
            &p, err, "migrate: write version");
    if (!r) {
        rc = code_of(err);
        goto out;
    }
    PQclear(r);
out:
    rc = end_tx(q, c, rc, err, "migrate: commit");
    return rc;
}

static int pg_open(struct store **out, const char *location, struct th_err *err)
{
    struct pgs *q = xcalloc(1, sizeof *q);
    q->url = xstrdup(location);
    q->shown = url_shown(location);
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    PGconn *c = conn_get(q, err);
    if (!c) {
        pg_free(q);
        return TH_EDB;
    }
    int rc = migrate(q, c, err);
    conn_put(q, c);
    if (rc) {
        pg_free(q);
        return rc;
    }
    *out = &q->base;
    return 0;
}

static void pg_close(struct store *s)
{
    pg_free(pg_of(s));
}

/* ---------------------------------------------------------------------- */
/* The shape of most calls: borrow a connection, run one statement, give it
 * back. Returns the result or NULL (err filled). */
static PGresult *one(struct pgs *q, const char *sql, const struct pp *p, struct th_err *err,
                     const char *what)
{
    PGconn *c = conn_get(q, err);
    if (!c) return NULL;
    PGresult *r = run(q, c, sql, p, err, what);
    conn_put(q, c);
    return r;
}

/* ---------------------------------------------------------------------- */
/* Connections */

static void bind_conn(struct pp *p, const struct store_conn *c)
{
    p_i64(p, c->platform);
    p_i64(p, c->store_id);
    p_str(p, c->name);
    p_str(p, c->access_token);
    p_str(p, c->refresh_token);
    p_i64(p, c->token_expires_at);
    p_str(p, c->webhook_secret);
    p_str(p, c->webhook_strategy);
    p_str(p, c->api_base);
    p_str(p, c->status);
    p_i64(p, c->connected_at);
    p_str(p, c->qoyod_base);
    p_str(p, c->qoyod_api_key);
    p_i64(p, c->inventory_id);
    p_i64(p, c->payment_account_id);
    p_i64(p, c->trigger);
    p_i64(p, c->customer_per_invoice);
    p_i64(p, c->number_by_order);
    p_i64(p, c->financial_invoice);
    p_str(p, c->manager_token);
    p_i64(p, c->stock_sync);
    p_i64(p, c->stock_interval_s);
}

/* Reads "id, CONN_COLS, ref_prefix, tenant_id" from row i. */
static void read_conn(const PGresult *r, int i, struct store_conn *c)
{
    c->id = col_i64(r, i, 0);
    c->platform = (enum model_platform)col_i64(r, i, 1);
    c->store_id = col_i64(r, i, 2);
    c->name = col_str(r, i, 3);
    c->access_token = col_str(r, i, 4);
    c->refresh_token = col_str(r, i, 5);
    c->token_expires_at = col_i64(r, i, 6);
    c->webhook_secret = col_str(r, i, 7);
    c->webhook_strategy = col_str(r, i, 8);
    c->api_base = col_str(r, i, 9);
    c->status = col_str(r, i, 10);
    c->connected_at = col_i64(r, i, 11);
    c->qoyod_base = col_str(r, i, 12);
    c->qoyod_api_key = col_str(r, i, 13);
    c->inventory_id = col_i64(r, i, 14);
    c->payment_account_id = col_i64(r, i, 15);
    c->trigger = (enum model_status)col_i64(r, i, 16);
    c->customer_per_invoice = (int)col_i64(r, i, 17);
    c->number_by_order = (int)col_i64(r, i, 18);
    c->financial_invoice = (int)col_i64(r, i, 19);
    c->manager_token = col_str(r, i, 20);
    c->stock_sync = (int)col_i64(r, i, 21);
    c->stock_interval_s = col_i64(r, i, 22);
    c->ref_prefix = col_str(r, i, 23);
    c->tenant_id = col_i64(r, i, 24);
}

static int pg_conn_put(struct store *s, struct store_conn *c, struct th_err *err)
{
    struct pgs *q = pg_of(s);
    struct pp p = {0};
    bind_conn(&p, c);
    char what[96];
    if (c->id == 0) {
        snprintf(what, sizeof what, "save connection for %s store %lld",
                 model_platform_name(c->platform), (long long)c->store_id);
        p_i64(&p, c->tenant_id);
        PGresult *r = one(q, SQL_CONN_UPSERT, &p, err, what);
        if (!r) return code_of(err);
        int64_t id = PQntuples(r) ? col_i64(r, 0, 0) : 0;
        PQclear(r);
        if (!id) return th_err_set(err, TH_EDB, "%s: no id came back", what);
        c->id = id;
        return 0;
    }
    p_i64(&p, c->id);
    p_i64(&p, c->tenant_id);
    snprintf(what, sizeof what, "update connection %lld (%s store %lld)", (long long)c->id,
             model_platform_name(c->platform), (long long)c->store_id);
    PGresult *r = one(q, SQL_CONN_UPDATE, &p, err, what);
    if (!r) return code_of(err);
    int64_t n = affected(r);
    PQclear(r);
    return n ? 0 : th_err_set(err, TH_ENOTFOUND, "connection %lld does not exist", (long long)c->id);
}

static int conn_update(struct pgs *q, const char *sql, const struct pp *p,
                       const struct store_conn *c, struct th_err *err, const char *what)
{
    char op[96];
    snprintf(op, sizeof op, "save the %s of connection %lld", what, (long long)c->id);
    PGresult *r = one(q, sql, p, err, op);
    if (!r) return code_of(err);
    int64_t n = affected(r);
    PQclear(r);
    return n ? 0 : th_err_set(err, TH_ENOTFOUND, "connection %lld does not exist", (long long)c->id);
}

static int pg_conn_put_tokens(struct store *s, const struct store_conn *c, struct th_err *err)
{
    struct pp p = {0};
    p_i64(&p, c->id);
    p_str(&p, c->access_token);
    p_str(&p, c->refresh_token);
    p_str(&p, c->manager_token);
    p_i64(&p, c->token_expires_at);
    p_str(&p, c->status);
    return conn_update(pg_of(s), SQL_CONN_TOKENS, &p, c, err, "tokens");
}

static int pg_conn_put_settings(struct store *s, const struct store_conn *c, struct th_err *err)
{
    struct pp p = {0};
    p_i64(&p, c->id);
    p_str(&p, c->name);
    p_str(&p, c->qoyod_base);
    p_str(&p, c->qoyod_api_key);
    p_i64(&p, c->inventory_id);
    p_i64(&p, c->payment_account_id);
    p_i64(&p, c->trigger);
    p_i64(&p, c->customer_per_invoice);
    p_i64(&p, c->number_by_order);
    p_i64(&p, c->financial_invoice);
    p_str(&p, c->webhook_secret);
    p_str(&p, c->webhook_strategy);
    p_str(&p, c->api_base);
    p_i64(&p, c->stock_sync);
    p_i64(&p, c->stock_interval_s);
    return conn_update(pg_of(s), SQL_CONN_SETTINGS, &p, c, err, "settings");
}

static int conn_query(struct pgs *q, const char *sql, const struct pp *p, struct store_conn *out,
                      struct th_err *err, const char *what)
{
    char op[96];
    snprintf(op, sizeof op, "read %s", what);
    PGresult *r = one(q, sql, p, err, op);
    if (!r) return code_of(err);
    int code = 0;
    if (PQntuples(r))
        read_conn(r, 0, out);
    else
        code = th_err_set(err, TH_ENOTFOUND, "%s is not connected to tarheel", what);
    PQclear(r);
    return code;
}

static int pg_conn_get(struct store *s, int64_t id, struct store_conn *out, struct th_err *err)
{
    char what[64];
    snprintf(what, sizeof what, "connection %lld", (long long)id);
    struct pp p = {0};
    p_i64(&p, id);
    return conn_query(pg_of(s), "SELECT id, " CONN_COLS ", ref_prefix, tenant_id FROM connections WHERE id = $1", &p, out,
                      err, what);
}

static int pg_conn_find(struct store *s, enum model_platform pl, int64_t store_id,
                        struct store_conn *out, struct th_err *err)
{
    char what[64];
    snprintf(what, sizeof what, "%s store %lld", model_platform_name(pl), (long long)store_id);
    struct pp p = {0};
    p_i64(&p, pl);
    p_i64(&p, store_id);
    return conn_query(pg_of(s),
                      "SELECT id, " CONN_COLS ", ref_prefix, tenant_id FROM connections WHERE platform = $1 AND "
                      "store_id = $2",
                      &p, out, err, what);
}

/* Rows are copied out and the connection given back before fn runs, so fn
 * may call the store. */
static int pg_conn_list(struct store *s, void (*fn)(void *arg, const struct store_conn *c),
                        void *arg, struct th_err *err)
{
    PGresult *r = one(pg_of(s), "SELECT id, " CONN_COLS ", ref_prefix, tenant_id FROM connections ORDER BY id", NULL, err,
                      "list connections");
    if (!r) return code_of(err);
    int n = PQntuples(r);
    struct store_conn *rows = xcalloc((size_t)n + 1, sizeof *rows);
    for (int i = 0; i < n; i++) read_conn(r, i, &rows[i]);
    PQclear(r);
    for (int i = 0; i < n; i++) {
        fn(arg, &rows[i]);
        store_conn_release(&rows[i]);
    }
    free(rows);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Intake */

static int pg_event_ingest(struct store *s, int64_t conn_id, const char *dedupe_key,
                           const char *event, int64_t order_id, const char *body, size_t len,
                           int *duplicate, struct th_err *err)
{
    struct pp p = {0};
    p_i64(&p, conn_id);
    p_str(&p, dedupe_key);
    p_str(&p, event);
    p_i64(&p, order_id);
    p_i64(&p, store_now_ms(s));
    p_bin(&p, body, len);
    char what[160];
    snprintf(what, sizeof what, "store event %.64s for connection %lld (order %lld)", dedupe_key,
             (long long)conn_id, (long long)order_id);
    PGresult *r = one(pg_of(s), SQL_INGEST, &p, err, what);
    if (!r) return code_of(err);
    *duplicate = col_i64(r, 0, 0) == 0;
    PQclear(r);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Jobs */

/* The connections to skip as a PostgreSQL array literal ("{1,2}"). */
static void except_array(const int64_t *except, size_t n, char *buf, size_t cap)
{
    size_t k = 0;
    buf[k++] = '{';
    for (size_t i = 0; i < n && k + 24 < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? "," : "", (long long)except[i]);
    buf[k++] = '}';
    buf[k] = '\0';
}

static void read_job(const PGresult *r, struct store_job *out)
{
    out->id = col_i64(r, 0, 0);
    out->conn_id = col_i64(r, 0, 1);
    out->order_id = col_i64(r, 0, 2);
    out->attempts = (int)col_i64(r, 0, 3);
    out->run_after = col_i64(r, 0, 4);
    out->manual = (int)col_i64(r, 0, 5);
}

/*
 * A claim is one transaction: pick the oldest due free job that looks
 * within the limits (FOR UPDATE SKIP LOCKED: claims running at the same
 * time in other processes pick other rows, without waiting), take the
 * advisory lock of its Qoyod account, count the leases again under that
 * lock, and lease the job. The lock is what makes the limits exact: two
 * processes' claims for one account are serialised from the recount to the
 * commit (the lock is released after the commit is visible), while claims
 * for other accounts run in parallel. Store limits are counted under the
 * same lock, as a store belongs to one account. When the recount says no,
 * the transaction is rolled back and the next pick skips that connection.
 */
#define CLAIM_TRIES 8

static int pg_job_claim(struct store *s, const char *worker, int64_t lease_ms,
                        const struct store_claim_limits *lim, const int64_t *except,
                        size_t nexcept, struct store_job *out, struct th_err *err)
{
    struct pgs *q = pg_of(s);
    int64_t skip_ids[STORE_MAX_CLAIM_EXCEPT + CLAIM_TRIES];
    size_t nskip = nexcept;
    if (nexcept) memcpy(skip_ids, except, nexcept * sizeof *except);
    int64_t now = store_now_ms(s);
    char what[96];
    snprintf(what, sizeof what, "claim a job for worker %.48s", worker);
    PGconn *c = conn_get(q, err);
    if (!c) return TH_EDB;
    int rc = 0, found = 0;
    for (int attempt = 0; attempt < CLAIM_TRIES && !found && !rc; attempt++) {
        char skip[(STORE_MAX_CLAIM_EXCEPT + CLAIM_TRIES) * 21 + 3];
        except_array(skip_ids, nskip, skip, sizeof skip);
        if ((rc = plain(q, c, "BEGIN", err, what)) != 0) break;
        struct pp p = {0};
        p_str(&p, skip);
        p_i64(&p, now);
        p_i64(&p, lim ? lim->per_store : 0);
        p_i64(&p, lim ? lim->per_account : 0);
        PGresult *r = run(q, c, SQL_CLAIM_PICK, &p, err, what);
        if (!r) {
            rc = code_of(err);
            break;
        }
        if (PQntuples(r) == 0) {
            PQclear(r);
            break; /* nothing due: commit the empty transaction below */
        }
        int64_t job = col_i64(r, 0, 0);
        int64_t account = col_i64(r, 0, 1);
        PQclear(r);
        int ok = 1;
        if (lim && (lim->per_store > 0 || lim->per_account > 0)) {
            struct pp l = {0};
            p_i64(&l, account);
            if (!(r = run(q, c, "SELECT pg_advisory_xact_lock($1)", &l, err, what))) {
                rc = code_of(err);
                break;
            }
            PQclear(r);
            p.v[0] = p.num[0]; /* $1 is now the job */
            snprintf(p.num[0], sizeof p.num[0], "%lld", (long long)job);
            if (!(r = run(q, c, SQL_CLAIM_RECHECK, &p, err, what))) {
                rc = code_of(err);
                break;
            }
            ok = PQntuples(r) > 0 && strcmp(PQgetvalue(r, 0, 1), "t") == 0;
            if (!ok && PQntuples(r) > 0) skip_ids[nskip++] = col_i64(r, 0, 0);
            PQclear(r);
            if (!ok) {
                rollback(c);
                continue;
            }
        }
        struct pp t = {0};
        p_i64(&t, job);
        p_str(&t, worker);
        p_i64(&t, now + lease_ms);
        if (!(r = run(q, c, SQL_CLAIM_TAKE, &t, err, what))) {
            rc = code_of(err);
            break;
        }
        found = PQntuples(r) > 0;
        if (found) read_job(r, out);
        PQclear(r);
        if (!found) rollback(c);
    }
    if (rc) {
        rollback(c);
        memset(out, 0, sizeof *out);
    } else if (PQtransactionStatus(c) != PQTRANS_IDLE &&
               (rc = plain(q, c, "COMMIT", err, what)) != 0) {
        memset(out, 0, sizeof *out);
    }
    conn_put(q, c);
    if (!rc && !found) rc = th_err_set(err, TH_ENOTFOUND, "no job is due");
    return rc;
}

/* After a fenced write changed nothing: TH_ECONFLICT when the job exists
 * (another worker holds it now), TH_ENOTFOUND when it does not. */
static int job_missing(struct pgs *q, PGconn *c, int64_t job_id, const char *owner,
                       struct th_err *err)
{
    struct pp p = {0};
    p_i64(&p, job_id);
    PGresult *r = run(q, c, "SELECT count(*) FROM jobs WHERE id = $1", &p, err, "look up a job");
    if (!r) return code_of(err);
    int64_t n = col_i64(r, 0, 0);
    PQclear(r);
    if (n && owner)
        return th_err_set(err, TH_ECONFLICT,
                          "job %lld was taken over by another worker (the lease of %s ran out)",
                          (long long)job_id, owner);
    return th_err_set(err, TH_ENOTFOUND, "job %lld does not exist", (long long)job_id);
}

static int pg_job_done(struct store *s, int64_t job_id, const char *owner, struct th_err *err)
{
    struct pgs *q = pg_of(s);
    int64_t now = store_now_ms(s);
    PGconn *c = conn_get(q, err);
    if (!c) return TH_EDB;
    char what[64];
    snprintf(what, sizeof what, "finish job %lld", (long long)job_id);
    int rc = plain(q, c, "BEGIN", err, what);
    if (rc) goto out;
    struct pp p = {0};
    p_i64(&p, job_id);
    p_str(&p, owner);
    PGresult *r = run(q, c,
                      "DELETE FROM jobs WHERE id = $1 AND rerun = 0 AND "
                      "($2::text IS NULL OR lease_owner = $2)",
                      &p, err, what);
    if (!r) {
        rc = code_of(err);
        goto out;
    }
    int64_t n = affected(r);
    PQclear(r);
    if (n == 0) {
        /* Not deleted: an event arrived while it ran, another worker holds
         * it, or no job. */
        p_i64(&p, now);
        r = run(q, c,
                "UPDATE jobs SET lease_owner = NULL, lease_until_ms = 0, rerun = 0, attempts = 0, "
                "last_error = NULL, run_after_ms = $3 WHERE id = $1 AND "
                "($2::text IS NULL OR lease_owner = $2)",
                &p, err, what);
        if (!r) {
            rc = code_of(err);
            goto out;
        }
        n = affected(r);
        PQclear(r);
        if (n == 0) rc = job_missing(q, c, job_id, owner, err);
    }
out:
    rc = end_tx(q, c, rc, err, what);
    conn_put(q, c);
    return rc;
}

/* A fenced single-row write on a job: its result, or the reason it wrote
 * nothing (job_missing). */
static int job_write(struct pgs *q, const char *sql, const struct pp *p, int64_t job_id,
                     const char *owner, struct th_err *err, const char *what)
{
    PGconn *c = conn_get(q, err);
    if (!c) return TH_EDB;
    int rc = 0;
    PGresult *r = run(q, c, sql, p, err, what);
    if (!r) {
        rc = code_of(err);
    } else {
        int64_t n = affected(r);
        PQclear(r);
        if (n == 0) rc = job_missing(q, c, job_id, owner, err);
    }
    conn_put(q, c);
    return rc;
}

static int pg_job_retry(struct store *s, int64_t job_id, const char *owner, int64_t run_after,
                        const char *error, int uncount, struct th_err *err)
{
    struct pp p = {0};
    p_i64(&p, job_id);
    p_i64(&p, run_after);
    p_str(&p, error);
    p_str(&p, owner);
    p_i64(&p, uncount ? 1 : 0);
    char what[64];
    snprintf(what, sizeof what, "reschedule job %lld", (long long)job_id);
    return job_write(pg_of(s),
                     "UPDATE jobs SET lease_owner = NULL, lease_until_ms = 0, rerun = 0, "
                     "run_after_ms = $2, last_error = $3, attempts = GREATEST(attempts - $5, 0) "
                     "WHERE id = $1 AND ($4::text IS NULL OR lease_owner = $4)",
                     &p, job_id, owner, err, what);
}

static int pg_job_renew(struct store *s, int64_t job_id, const char *owner, int64_t lease_ms,
                        struct th_err *err)
{
    struct pp p = {0};
    p_i64(&p, job_id);
    p_str(&p, owner);
    p_i64(&p, store_now_ms(s) + lease_ms);
    char what[64];
    snprintf(what, sizeof what, "renew the lease of job %lld", (long long)job_id);
    return job_write(pg_of(s),
                     "UPDATE jobs SET lease_until_ms = $3 WHERE id = $1 AND lease_owner = $2", &p,
                     job_id, owner, err, what);
}

static int pg_job_enqueue(struct store *s, int64_t conn_id, int64_t order_id, struct th_err *err)
{
    struct pp p = {0};
    p_i64(&p, conn_id);
    p_i64(&p, order_id);
    p_i64(&p, store_now_ms(s));
    char what[96];
    snprintf(what, sizeof what, "queue order %lld of connection %lld", (long long)order_id,
             (long long)conn_id);
    PGresult *r = one(pg_of(s), SQL_ENQUEUE, &p, err, what);
    if (!r) return code_of(err);
    PQclear(r);
    return 0;
}

static int in_tx(struct pgs *q, struct th_err *err, const char *what,
                 int (*fn)(struct pgs *q, PGconn *c, void *arg, struct th_err *err), void *arg);

struct enqueue_args {
    int64_t conn_id, now;
    const int64_t *ids;
    size_t n;
    const char *what, *detail;
};

static int enqueue_tx(struct pgs *q, PGconn *c, void *arg, struct th_err *err)
{
    struct enqueue_args *a = arg;
    for (size_t i = 0; i < a->n; i++) {
        char op[96];
        snprintf(op, sizeof op, "queue order %lld of connection %lld", (long long)a->ids[i],
                 (long long)a->conn_id);
        struct pp p = {0};
        p_i64(&p, a->conn_id);
        p_i64(&p, a->ids[i]);
        p_i64(&p, a->now);
        PGresult *r = run(q, c, SQL_ENQUEUE, &p, err, op);
        if (!r) return code_of(err);
        PQclear(r);
        if (!a->what) continue;
        p_str(&p, a->what);
        p_str(&p, a->detail ? a->detail : "");
        r = run(q, c,
                "INSERT INTO order_history (conn_id, order_id, ts_ms, what, detail) "
                "VALUES ($1, $2, $3, $4, $5)",
                &p, err, op);
        if (!r) return code_of(err);
        PQclear(r);
    }
    return 0;
}

static int pg_job_enqueue_many(struct store *s, int64_t conn_id, const int64_t *order_ids,
                               size_t n, const char *what, const char *detail,
                               struct th_err *err)
{
    struct enqueue_args a = {conn_id, store_now_ms(s), order_ids, n, what, detail};
    return in_tx(pg_of(s), err, "queue orders", enqueue_tx, &a);
}

static int pg_job_count(struct store *s, int64_t *n, struct th_err *err)
{
    PGresult *r = one(pg_of(s), "SELECT count(*) FROM jobs", NULL, err, "count jobs");
    if (!r) return code_of(err);
    *n = col_i64(r, 0, 0);
    PQclear(r);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Account limits and leases */

static int pg_account_pause(struct store *s, int64_t conn_id, int64_t until_ms,
                            struct th_err *err)
{
    struct pp p = {0};
    p_i64(&p, conn_id);
    p_i64(&p, until_ms);
    char what[80];
    snprintf(what, sizeof what, "pause the Qoyod account of connection %lld", (long long)conn_id);
    PGresult *r = one(pg_of(s),
                      "INSERT INTO accounts AS a (qoyod_base, qoyod_api_key, paused_until_ms) "
                      "SELECT COALESCE(qoyod_base, ''), COALESCE(qoyod_api_key, ''), $2 FROM "
                      "connections WHERE id = $1 ON CONFLICT (qoyod_base, qoyod_api_key) DO "
                      "UPDATE SET paused_until_ms = GREATEST(a.paused_until_ms, "
                      "excluded.paused_until_ms)",
                      &p, err, what);
    if (!r) return code_of(err);
    int64_t n = affected(r);
    PQclear(r);
    return n ? 0 : th_err_set(err, TH_ENOTFOUND, "connection %lld does not exist", (long long)conn_id);
}

/* The account's row is made on first use, then locked (FOR UPDATE) for the
 * read-compute-write, so processes taking calls at once queue on it. */
static int pg_account_take(struct store *s, int64_t conn_id, int per_min, int burst,
                           int64_t *wait_ms, struct th_err *err)
{
    struct pgs *q = pg_of(s);
    int64_t now = store_now_ms(s);
    char what[80];
    snprintf(what, sizeof what, "take a Qoyod call for connection %lld", (long long)conn_id);
    PGconn *c = conn_get(q, err);
    if (!c) return TH_EDB;
    int rc = plain(q, c, "BEGIN", err, what);
    PGresult *r = NULL;
    struct pp p = {0};
    p_i64(&p, conn_id);
    if (rc) goto out;
    if (!(r = run(q, c,
                  "INSERT INTO accounts (qoyod_base, qoyod_api_key) SELECT "
                  "COALESCE(qoyod_base, ''), COALESCE(qoyod_api_key, '') FROM connections "
                  "WHERE id = $1 ON CONFLICT DO NOTHING",
                  &p, err, what))) {
        rc = code_of(err);
        goto out;
    }
    PQclear(r);
    if (!(r = run(q, c,
                  "SELECT a.milli_tokens, a.refilled_ms, a.paused_until_ms FROM accounts a "
                  "JOIN connections c ON a.qoyod_base = COALESCE(c.qoyod_base, '') AND "
                  "a.qoyod_api_key = COALESCE(c.qoyod_api_key, '') WHERE c.id = $1 "
                  "FOR UPDATE OF a",
                  &p, err, what))) {
        rc = code_of(err);
        goto out;
    }
    if (PQntuples(r) == 0) {
        PQclear(r);
        rc = th_err_set(err, TH_ENOTFOUND, "connection %lld does not exist", (long long)conn_id);
        goto out;
    }
    int64_t tokens = col_i64(r, 0, 0), refilled = col_i64(r, 0, 1), paused = col_i64(r, 0, 2);
    PQclear(r);
    *wait_ms = store_bucket_take(&tokens, &refilled, paused, per_min, burst, now);
    p_i64(&p, tokens);
    p_i64(&p, refilled);
    if (!(r = run(q, c,
                  "UPDATE accounts SET milli_tokens = $2, refilled_ms = $3 WHERE (qoyod_base, "
                  "qoyod_api_key) = (SELECT COALESCE(qoyod_base, ''), COALESCE(qoyod_api_key, '') "
                  "FROM connections WHERE id = $1)",
                  &p, err, what))) {
        rc = code_of(err);
        goto out;
    }
    PQclear(r);
out:
    if (rc) *wait_ms = 0;
    rc = end_tx(q, c, rc, err, what);
    conn_put(q, c);
    return rc;
}

static int pg_lease_take(struct store *s, const char *name, const char *owner, int64_t ttl_ms,
                         int *held, struct th_err *err)
{
    int64_t now = store_now_ms(s);
    struct pp p = {0};
    p_str(&p, name);
    p_str(&p, owner);
    p_i64(&p, now + ttl_ms);
    p_i64(&p, now);
    char what[160];
    snprintf(what, sizeof what, "take lease %.64s for %.64s", name, owner);
    PGresult *r = one(pg_of(s),
                      "INSERT INTO leases AS l (name, owner, until_ms) VALUES ($1, $2, $3) "
                      "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until_ms = "
                      "excluded.until_ms WHERE l.owner = excluded.owner OR l.until_ms < $4 "
                      "RETURNING owner",
                      &p, err, what);
    if (!r) return code_of(err);
    *held = PQntuples(r) > 0;
    PQclear(r);
    return 0;
}

static int pg_lease_drop(struct store *s, const char *name, const char *owner, struct th_err *err)
{
    struct pp p = {0};
    p_str(&p, name);
    p_str(&p, owner);
    char what[160];
    snprintf(what, sizeof what, "drop lease %.64s of %.64s", name, owner);
    PGresult *r = one(pg_of(s), "DELETE FROM leases WHERE name = $1 AND owner = $2", &p, err, what);
    if (!r) return code_of(err);
    PQclear(r);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Orders and history */

static void read_order(const PGresult *r, int i, struct store_order *o)
{
    o->conn_id = col_i64(r, i, 0);
    o->order_id = col_i64(r, i, 1);
    o->number = col_str(r, i, 2);
    o->status = (enum model_status)col_i64(r, i, 3);
    o->xfer = (enum store_xfer)col_i64(r, i, 4);
    o->reason_code = (int)col_i64(r, i, 5);
    o->reason = col_str(r, i, 6);
    o->attempts = (int)col_i64(r, i, 7);
    o->total = col_i64(r, i, 8);
    o->qoyod_total = col_i64(r, i, 9);
    o->qoyod_invoice_id = col_i64(r, i, 10);
    o->qoyod_reference = col_str(r, i, 11);
    o->qoyod_payment_id = col_i64(r, i, 12);
    o->created_at = col_i64(r, i, 13);
    o->updated_at = col_i64(r, i, 14);
    o->transferred_at = col_i64(r, i, 15);
    o->tax = col_i64(r, i, 16);
    o->credit = (enum store_credit)col_i64(r, i, 17);
    o->credited = col_i64(r, i, 18);
}

static void bind_order(struct pp *p, const struct store_order *o)
{
    p_i64(p, o->conn_id);
    p_i64(p, o->order_id);
    p_str(p, o->number);
    p_i64(p, o->status);
    p_i64(p, o->xfer);
    p_i64(p, o->reason_code);
    p_str(p, o->reason);
    p_i64(p, o->attempts);
    p_i64(p, o->total);
    p_i64(p, o->qoyod_total);
    p_i64(p, o->qoyod_invoice_id);
    p_str(p, o->qoyod_reference);
    p_i64(p, o->qoyod_payment_id);
    p_i64(p, o->created_at);
    p_i64(p, o->updated_at);
    p_i64(p, o->transferred_at);
    p_i64(p, o->tax);
    p_i64(p, o->credit);
    p_i64(p, o->credited);
}

static int pg_order_get(struct store *s, int64_t conn_id, int64_t order_id, struct store_order *out,
                        struct th_err *err)
{
    struct pp p = {0};
    p_i64(&p, conn_id);
    p_i64(&p, order_id);
    char what[96];
    snprintf(what, sizeof what, "read order %lld of connection %lld", (long long)order_id,
             (long long)conn_id);
    PGresult *r = one(pg_of(s),
                      "SELECT " ORDER_COLS " FROM orders WHERE conn_id = $1 AND order_id = $2", &p,
                      err, what);
    if (!r) return code_of(err);
    int code = 0;
    if (PQntuples(r))
        read_order(r, 0, out);
    else
        code = th_err_set(err, TH_ENOTFOUND, "order %lld of connection %lld is not known",
                          (long long)order_id, (long long)conn_id);
    PQclear(r);
    return code;
}

static int pg_order_put(struct store *s, const struct store_order *o, int64_t job_id,
                        const char *owner, struct th_err *err)
{
    struct pgs *q = pg_of(s);
    struct pp p = {0};
    bind_order(&p, o);
    char what[96];
    snprintf(what, sizeof what, "save order %lld of connection %lld", (long long)o->order_id,
             (long long)o->conn_id);
    if (!owner) {
        PGresult *r = one(q, SQL_ORDER_PUT, &p, err, what);
        if (!r) return code_of(err);
        PQclear(r);
        return 0;
    }
    /* Fenced: the job row stays locked FOR SHARE until the write commits,
     * so a claim of the job (an UPDATE of that row) waits for it, and a
     * claim that committed first makes the SELECT find no row (READ
     * COMMITTED re-reads a row updated meanwhile before locking it). */
    PGconn *c = conn_get(q, err);
    if (!c) return TH_EDB;
    int rc = plain(q, c, "BEGIN", err, what);
    if (rc) goto out;
    struct pp f = {0};
    p_i64(&f, job_id);
    p_str(&f, owner);
    PGresult *r = run(q, c, "SELECT 1 FROM jobs WHERE id = $1 AND lease_owner = $2 FOR SHARE", &f,
                      err, what);
    if (!r) {
        rc = code_of(err);
        goto out;
    }
    int held = PQntuples(r) > 0;
    PQclear(r);
    if (!held) {
        rc = store_stale_writer(err, o, job_id, owner, job_missing(q, c, job_id, owner, err));
        goto out;
    }
    r = run(q, c, SQL_ORDER_PUT, &p, err, what);
    if (!r) {
        rc = code_of(err);
        goto out;
    }
    PQclear(r);
out:
    rc = end_tx(q, c, rc, err, what);
    conn_put(q, c);
    return rc;
}

static int pg_order_add(struct store *s, const struct store_order *o, int *added,
                        struct th_err *err)
{
    struct pp p = {0};
    bind_order(&p, o);
    char what[96];
    snprintf(what, sizeof what, "add order %lld of connection %lld", (long long)o->order_id,
             (long long)o->conn_id);
    PGresult *r = one(pg_of(s), SQL_ORDER_ADD, &p, err, what);
    if (!r) return code_of(err);
    *added = affected(r) > 0;
    PQclear(r);
    return 0;
}

static int pg_order_note(struct store *s, int64_t conn_id, int64_t order_id, const char *what,
                         const char *detail, struct th_err *err)
{
    struct pp p = {0};
    p_i64(&p, conn_id);
    p_i64(&p, order_id);
    p_i64(&p, store_now_ms(s));
    p_str(&p, what);
    p_str(&p, detail);
    char op[96];
    snprintf(op, sizeof op, "note history of order %lld of connection %lld", (long long)order_id,
             (long long)conn_id);
    PGresult *r = one(pg_of(s),
                      "INSERT INTO order_history (conn_id, order_id, ts_ms, what, detail) "
                      "VALUES ($1, $2, $3, $4, $5)",
                      &p, err, op);
    if (!r) return code_of(err);
    PQclear(r);
    return 0;
}

/* Parameters as the SQLite backend's S_ORDER_LIST; $11 NULL: no limit. */
#define ORDER_WHERE                                                                                \
    " FROM orders WHERE ($1 = 0 OR conn_id = $1) AND ($2 < 0 OR xfer = $2) AND ($3::bigint = 0 "   \
    "OR conn_id IN (SELECT id FROM connections WHERE tenant_id = $3::bigint)) AND created_at "     \
    "BETWEEN $4::bigint AND $5::bigint AND ($6::text IS NULL OR strpos(order_id::text, $6::text) " \
    "> 0 OR strpos(lower(COALESCE(number, '')), lower($6::text)) > 0) AND ($7::int = 0 OR "        \
    "(created_at, order_id, conn_id) "
static const char SQL_ORDER_LIST[] = "SELECT " ORDER_COLS ORDER_WHERE
    "> ($8::bigint, $9::bigint, $10::bigint)) ORDER BY created_at, order_id, conn_id "
    "LIMIT $11::bigint";
static const char SQL_ORDER_LIST_DESC[] = "SELECT " ORDER_COLS ORDER_WHERE
    "< ($8::bigint, $9::bigint, $10::bigint)) ORDER BY created_at DESC, order_id DESC, "
    "conn_id DESC LIMIT $11::bigint";
#undef ORDER_WHERE

static int pg_order_list(struct store *s, const struct store_order_query *q,
                         void (*fn)(void *arg, const struct store_order *o), void *arg,
                         struct th_err *err)
{
    int64_t lo, hi;
    store_order_bounds(q, &lo, &hi);
    struct pp p = {0};
    p_i64(&p, q->conn_id);
    p_i64(&p, q->xfer < 0 ? -1 : q->xfer);
    p_i64(&p, q->tenant);
    p_i64(&p, lo);
    p_i64(&p, hi);
    p_str(&p, q->text && *q->text ? q->text : NULL);
    p_i64(&p, q->has_after);
    p_i64(&p, q->after.created_at);
    p_i64(&p, q->after.order_id);
    p_i64(&p, q->after.conn_id);
    if (q->limit > 0)
        p_i64(&p, q->limit);
    else
        p_str(&p, NULL);
    PGresult *r = one(pg_of(s), q->newest ? SQL_ORDER_LIST_DESC : SQL_ORDER_LIST, &p, err,
                      "list orders");
    if (!r) return code_of(err);
    int n = PQntuples(r);
    struct store_order *rows = xcalloc((size_t)n + 1, sizeof *rows);
    for (int i = 0; i < n; i++) read_order(r, i, &rows[i]);
    PQclear(r);
    for (int i = 0; i < n; i++) {
        fn(arg, &rows[i]);
        store_order_release(&rows[i]);
    }
    free(rows);
    return 0;
}

static int pg_order_history(struct store *s, int64_t conn_id, int64_t order_id,
                            void (*fn)(void *arg, int64_t ts_ms, const char *what,
                                       const char *detail),
                            void *arg, struct th_err *err)
{
    struct pp p = {0};
    p_i64(&p, conn_id);
    p_i64(&p, order_id);
    char op[96];
    snprintf(op, sizeof op, "read history of order %lld of connection %lld", (long long)order_id,
             (long long)conn_id);
    PGresult *r = one(pg_of(s),
                      "SELECT ts_ms, what, detail FROM order_history WHERE conn_id = $1 AND "
                      "order_id = $2 ORDER BY id",
                      &p, err, op);
    if (!r) return code_of(err);
    /* The result is ours alone: fn may call the store meanwhile. */
    for (int i = 0; i < PQntuples(r); i++)
        fn(arg, col_i64(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
    PQclear(r);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Mappings */

static int pg_map_get(struct store *s, int64_t conn_id, const char *kind, const char *key,
                      int64_t *qoyod_id, struct th_err *err)
{
    struct pp p = {0};
    p_i64(&p, conn_id);
    p_str(&p, kind);
    p_str(&p, key);
    char op[160];
    snprintf(op, sizeof op, "read %.32s mapping '%.64s' of connection %lld", kind, key,
             (long long)conn_id);
    PGresult *r = one(pg_of(s),
                      "SELECT qoyod_id FROM mappings WHERE conn_id = $1 AND kind = $2 AND key = $3",
                      &p, err, op);
    if (!r) return code_of(err);
    int code = 0;
    if (PQntuples(r))
        *qoyod_id = col_i64(r, 0, 0);
    else
        code = th_err_set(err, TH_ENOTFOUND, "no Qoyod %s is mapped to '%s' (connection %lld)",
                          kind, key, (long long)conn_id);
    PQclear(r);
    return code;
}

static int pg_map_put(struct store *s, int64_t conn_id, const char *kind, const char *key,
                      int64_t qoyod_id, struct th_err *err)
{
    struct pp p = {0};
    p_i64(&p, conn_id);
    p_str(&p, kind);
    p_str(&p, key);
    p_i64(&p, qoyod_id);
    p_i64(&p, store_now_ms(s));
    char op[160];
    snprintf(op, sizeof op, "save %.32s mapping '%.64s' of connection %lld", kind, key,
             (long long)conn_id);
    PGresult *r = one(pg_of(s),
                      "INSERT INTO mappings (conn_id, kind, key, qoyod_id, updated_at_ms) "
                      "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (conn_id, kind, key) DO UPDATE SET "
                      "qoyod_id = excluded.qoyod_id, updated_at_ms = excluded.updated_at_ms",
                      &p, err, op);
    if (!r) return code_of(err);
    PQclear(r);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Dashboard users */

static int pg_user_put(struct store *s, const char *name, const char *hash, int64_t tenant,
                       struct th_err *err)
{
    struct pp p = {0};
    p_str(&p, name);
    p_str(&p, hash);
    p_i64(&p, store_now_ms(s));
    p_i64(&p, tenant);
    char op[128];
    snprintf(op, sizeof op, "save dashboard user '%.64s'", name);
    PGresult *r = one(pg_of(s),
                      "INSERT INTO users (name, hash, updated_at_ms, tenant_id) VALUES ($1, $2, "
                      "$3, CASE WHEN $4::bigint = 0 THEN 1 ELSE $4::bigint END) "
                      "ON CONFLICT (name) DO UPDATE SET hash = excluded.hash, "
                      "updated_at_ms = excluded.updated_at_ms, tenant_id = CASE WHEN "
                      "$4::bigint = 0 THEN users.tenant_id ELSE $4::bigint END",
                      &p, err, op);
    if (!r) return code_of(err);
    PQclear(r);
    return 0;
}

static int pg_user_get(struct store *s, const char *name, char **hash, int64_t *tenant,
                       struct th_err *err)
{
    struct pp p = {0};
    p_str(&p, name);
    char op[128];
    snprintf(op, sizeof op, "read dashboard user '%.64s'", name);
    PGresult *r =
        one(pg_of(s), "SELECT hash, tenant_id FROM users WHERE name = $1", &p, err, op);
    if (!r) return code_of(err);
    int code = 0;
    if (PQntuples(r)) {
        *hash = xstrdup(PQgetvalue(r, 0, 0));
        *tenant = col_i64(r, 0, 1);
    } else {
        code = th_err_set(err, TH_ENOTFOUND, "no dashboard user '%s'", name);
    }
    PQclear(r);
    return code;
}

static int pg_user_count(struct store *s, int64_t *n, struct th_err *err)
{
    struct pp p = {0};
    PGresult *r = one(pg_of(s), "SELECT COUNT(*) FROM users", &p, err, "count dashboard users");
    if (!r) return code_of(err);
    *n = col_i64(r, 0, 0);
    PQclear(r);
    return 0;
}

static int pg_user_list(struct store *s, int64_t tenant,
                        void (*fn)(void *arg, const char *name, int64_t tenant, int64_t set_ms),
                        void *arg, struct th_err *err)
{
    struct pp p = {0};
    p_i64(&p, tenant);
    PGresult *r = one(pg_of(s),
                      "SELECT name, tenant_id, updated_at_ms FROM users WHERE $1::bigint = 0 OR "
                      "tenant_id = $1::bigint ORDER BY name",
                      &p, err, "list dashboard users");
    if (!r) return code_of(err);
    int n = PQntuples(r);
    char **names = xcalloc((size_t)n + 1, sizeof *names);
    int64_t *t = xcalloc((size_t)n + 1, sizeof *t), *ms = xcalloc((size_t)n + 1, sizeof *ms);
    for (int i = 0; i < n; i++) {
        names[i] = col_str(r, i, 0);
        t[i] = col_i64(r, i, 1);
        ms[i] = col_i64(r, i, 2);
    }
    PQclear(r);
    for (int i = 0; i < n; i++) {
        fn(arg, names[i], t[i], ms[i]);
        free(names[i]);
    }
    free(names);
    free(t);
    free(ms);
    return 0;
}

static int pg_user_delete(struct store *s, const char *name, struct th_err *err)
{
    struct pp p = {0};
    p_str(&p, name);
    char op[128];
    snprintf(op, sizeof op, "remove dashboard user '%.64s'", name);
    PGresult *r = one(pg_of(s), "DELETE FROM users WHERE name = $1", &p, err, op);
    if (!r) return code_of(err);
    int64_t n = affected(r);
    PQclear(r);
    if (n == 0) return th_err_set(err, TH_ENOTFOUND, "no dashboard user '%s'", name);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Tenants and their API tokens (SQL as store_sqlite.c's) */

static int pg_tenant_add(struct store *s, const char *name, int64_t *id, struct th_err *err)
{
    struct pp p = {0};
    p_str(&p, name);
    p_i64(&p, store_now_ms(s));
    char op[128];
    snprintf(op, sizeof op, "add tenant '%.64s'", name);
    PGresult *r = one(pg_of(s),
                      "INSERT INTO tenants (name, created_at_ms) VALUES ($1, $2) RETURNING id", &p,
                      err, op);
    if (!r) {
        if (err && err->code == TH_ECONFLICT)
            return th_err_set(err, TH_ECONFLICT, "a tenant named '%s' exists already", name);
        return code_of(err);
    }
    *id = col_i64(r, 0, 0);
    PQclear(r);
    return 0;
}

static void read_tenant(const PGresult *r, int i, struct store_tenant *t)
{
    t->id = col_i64(r, i, 0);
    snprintf(t->name, sizeof t->name, "%s", PQgetvalue(r, i, 1));
    t->created_ms = col_i64(r, i, 2);
}

static int pg_tenant_get(struct store *s, int64_t id, const char *name, struct store_tenant *out,
                         struct th_err *err)
{
    struct pp p = {0};
    p_i64(&p, id);
    p_str(&p, name);
    PGresult *r = one(pg_of(s),
                      "SELECT id, name, created_at_ms FROM tenants WHERE ($2::text IS NULL AND "
                      "id = $1::bigint) OR name = $2::text",
                      &p, err, "read tenant");
    if (!r) return code_of(err);
    int code = 0;
    if (PQntuples(r))
        read_tenant(r, 0, out);
    else if (name)
        code = th_err_set(err, TH_ENOTFOUND, "no tenant named '%s'", name);
    else
        code = th_err_set(err, TH_ENOTFOUND, "no tenant %lld", (long long)id);
    PQclear(r);
    return code;
}

static int pg_tenant_list(struct store *s, void (*fn)(void *arg, const struct store_tenant *t),
                          void *arg, struct th_err *err)
{
    PGresult *r = one(pg_of(s), "SELECT id, name, created_at_ms FROM tenants ORDER BY id", NULL,
                      err, "list tenants");
    if (!r) return code_of(err);
    int n = PQntuples(r);
    struct store_tenant *rows = xcalloc((size_t)n + 1, sizeof *rows);
    for (int i = 0; i < n; i++) read_tenant(r, i, &rows[i]);
    PQclear(r);
    for (int i = 0; i < n; i++) fn(arg, &rows[i]);
    free(rows);
    return 0;
}

static int pg_token_add(struct store *s, int64_t tenant, const char *digest_hex, const char *label,
                        int64_t *id, struct th_err *err)
{
    struct pp p = {0};
    p_i64(&p, tenant);
    p_str(&p, digest_hex);
    p_str(&p, label);
    p_i64(&p, store_now_ms(s));
    char op[96];
    snprintf(op, sizeof op, "add an API token of tenant %lld", (long long)tenant);
    PGresult *r = one(pg_of(s),
                      "INSERT INTO api_tokens (tenant_id, digest, label, created_at_ms) VALUES "
                      "($1, $2, $3, $4) RETURNING id",
                      &p, err, op);
    if (!r) return code_of(err);
    *id = col_i64(r, 0, 0);
    PQclear(r);
    return 0;
}

static void read_token(const PGresult *r, int i, struct store_token *t)
{
    t->id = col_i64(r, i, 0);
    t->tenant_id = col_i64(r, i, 1);
    snprintf(t->label, sizeof t->label, "%s", PQgetvalue(r, i, 2));
    t->created_ms = col_i64(r, i, 3);
}

static int pg_token_find(struct store *s, const char *digest_hex, struct store_token *out,
                         struct th_err *err)
{
    struct pp p = {0};
    p_str(&p, digest_hex);
    PGresult *r = one(pg_of(s),
                      "SELECT id, tenant_id, label, created_at_ms FROM api_tokens WHERE digest = $1",
                      &p, err, "look an API token up");
    if (!r) return code_of(err);
    int code = 0;
    if (PQntuples(r))
        read_token(r, 0, out);
    else
        code = th_err_set(err, TH_ENOTFOUND, "no such API token");
    PQclear(r);
    return code;
}

static int pg_token_list(struct store *s, int64_t tenant,
                         void (*fn)(void *arg, const struct store_token *t), void *arg,
                         struct th_err *err)
{
    struct pp p = {0};
    p_i64(&p, tenant);
    PGresult *r = one(pg_of(s),
                      "SELECT id, tenant_id, label, created_at_ms FROM api_tokens WHERE "
                      "$1::bigint = 0 OR tenant_id = $1::bigint ORDER BY id",
                      &p, err, "list API tokens");
    if (!r) return code_of(err);
    int n = PQntuples(r);
    struct store_token *rows = xcalloc((size_t)n + 1, sizeof *rows);
    for (int i = 0; i < n; i++) read_token(r, i, &rows[i]);
    PQclear(r);
    for (int i = 0; i < n; i++) fn(arg, &rows[i]);
    free(rows);
    return 0;
}

static int pg_token_revoke(struct store *s, int64_t id, struct th_err *err)
{
    struct pp p = {0};
    p_i64(&p, id);
    char op[64];
    snprintf(op, sizeof op, "revoke API token %lld", (long long)id);
    PGresult *r = one(pg_of(s), "DELETE FROM api_tokens WHERE id = $1", &p, err, op);
    if (!r) return code_of(err);
    int64_t n = affected(r);
    PQclear(r);
    return n ? 0 : th_err_set(err, TH_ENOTFOUND, "no API token %lld", (long long)id);
}

static int pg_token_count(struct store *s, int64_t *n, struct th_err *err)
{
    PGresult *r =
        one(pg_of(s), "SELECT COUNT(*) FROM api_tokens", NULL, err, "count API tokens");
    if (!r) return code_of(err);
    *n = col_i64(r, 0, 0);
    PQclear(r);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Product fields (SQL as store_sqlite.c's) */

static int in_tx(struct pgs *q, struct th_err *err, const char *what,
                 int (*fn)(struct pgs *q, PGconn *c, void *arg, struct th_err *err), void *arg);

static void text_into(const PGresult *r, int row, int col, char *out, size_t n)
{
    snprintf(out, n, "%s", PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col));
}

static int pg_fields_cfg_get(struct store *s, int64_t conn_id, int *sync, int *sources,
                             struct th_err *err)
{
    *sync = *sources = 0;
    struct pp p = {0};
    p_i64(&p, conn_id);
    PGresult *r = one(pg_of(s), "SELECT sync, sources FROM field_settings WHERE conn_id = $1", &p,
                      err, "read field settings");
    if (!r) return code_of(err);
    if (PQntuples(r)) {
        *sync = (int)col_i64(r, 0, 0);
        *sources = (int)col_i64(r, 0, 1);
    }
    PQclear(r);
    return 0;
}

static int pg_fields_cfg_put(struct store *s, int64_t conn_id, int sync, int sources,
                             struct th_err *err)
{
    struct pp p = {0};
    p_i64(&p, conn_id);
    p_i64(&p, sync);
    p_i64(&p, sources);
    PGresult *r = one(pg_of(s),
                      "INSERT INTO field_settings (conn_id, sync, sources) VALUES ($1, $2, $3) "
                      "ON CONFLICT (conn_id) DO UPDATE SET sync = excluded.sync, sources = "
                      "excluded.sources",
                      &p, err, "save field settings");
    if (!r) return code_of(err);
    PQclear(r);
    return 0;
}

static int pg_fields_load(struct store *s, int64_t conn_id, struct store_field_state *rows,
                          size_t n, struct th_err *err)
{
    struct pgs *q = pg_of(s);
    PGconn *c = conn_get(q, err);
    if (!c) return code_of(err);
    int code = 0;
    for (size_t i = 0; i < n && !code; i++) {
        struct store_field_state *r = &rows[i];
        struct pp p = {0};
        p_i64(&p, conn_id);
        p_str(&p, r->sku);
        p_i64(&p, r->field);
        PGresult *res = run(q, c,
                            "SELECT store_value, qoyod_value, synced_ms, store_ref, qoyod_id FROM "
                            "fields WHERE conn_id = $1 AND sku = $2 AND field = $3",
                            &p, err, "read fields");
        if (!res) {
            code = code_of(err);
            break;
        }
        if (PQntuples(res)) {
            r->known = 1;
            text_into(res, 0, 0, r->store_value, sizeof r->store_value);
            text_into(res, 0, 1, r->qoyod_value, sizeof r->qoyod_value);
            r->synced_ms = col_i64(res, 0, 2);
            text_into(res, 0, 3, r->store_ref, sizeof r->store_ref);
            r->qoyod_id = col_i64(res, 0, 4);
        }
        PQclear(res);
    }
    conn_put(q, c);
    return code;
}

struct fields_args {
    int64_t conn_id;
    const struct store_field_state *rows;
    size_t n;
};

static int fields_tx(struct pgs *q, PGconn *c, void *arg, struct th_err *err)
{
    struct fields_args *a = arg;
    for (size_t i = 0; i < a->n; i++) {
        const struct store_field_state *r = &a->rows[i];
        struct pp p = {0};
        p_i64(&p, a->conn_id);
        p_str(&p, r->sku);
        p_i64(&p, r->field);
        p_str(&p, r->store_value);
        p_str(&p, r->qoyod_value);
        p_i64(&p, r->synced_ms);
        p_str(&p, r->store_ref);
        p_i64(&p, r->qoyod_id);
        PGresult *res = run(q, c,
                            "INSERT INTO fields (conn_id, sku, field, store_value, qoyod_value, "
                            "synced_ms, store_ref, qoyod_id) VALUES ($1, $2, $3, $4, $5, $6, $7, "
                            "$8) ON CONFLICT (conn_id, sku, field) DO UPDATE SET store_value = "
                            "excluded.store_value, qoyod_value = excluded.qoyod_value, synced_ms "
                            "= excluded.synced_ms, store_ref = excluded.store_ref, qoyod_id = "
                            "excluded.qoyod_id",
                            &p, err, "save fields");
        if (!res) return code_of(err);
        PQclear(res);
    }
    return 0;
}

static int pg_fields_save(struct store *s, int64_t conn_id, const struct store_field_state *rows,
                          size_t n, struct th_err *err)
{
    struct fields_args a = {conn_id, rows, n};
    return in_tx(pg_of(s), err, "save fields", fields_tx, &a);
}

#define CONFLICT_COLS                                                                              \
    "id, conn_id, sku, field, store_value, qoyod_value, last_store, last_qoyod, winner, at_ms, "   \
    "resolved_ms, resolution"

static void read_conflict(const PGresult *r, int row, struct store_conflict *c)
{
    memset(c, 0, sizeof *c);
    c->id = col_i64(r, row, 0);
    c->conn_id = col_i64(r, row, 1);
    text_into(r, row, 2, c->sku, sizeof c->sku);
    c->field = (int)col_i64(r, row, 3);
    text_into(r, row, 4, c->store_value, sizeof c->store_value);
    text_into(r, row, 5, c->qoyod_value, sizeof c->qoyod_value);
    text_into(r, row, 6, c->last_store, sizeof c->last_store);
    text_into(r, row, 7, c->last_qoyod, sizeof c->last_qoyod);
    c->winner = (int)col_i64(r, row, 8);
    c->at_ms = col_i64(r, row, 9);
    c->resolved_ms = col_i64(r, row, 10);
    text_into(r, row, 11, c->resolution, sizeof c->resolution);
}

static int pg_conflict_add(struct store *s, struct store_conflict *c, struct th_err *err)
{
    struct pp p = {0};
    p_i64(&p, c->conn_id);
    p_str(&p, c->sku);
    p_i64(&p, c->field);
    p_str(&p, c->store_value);
    p_str(&p, c->qoyod_value);
    p_str(&p, c->last_store);
    p_str(&p, c->last_qoyod);
    p_i64(&p, c->winner);
    p_i64(&p, c->at_ms);
    PGresult *r = one(pg_of(s),
                      "INSERT INTO conflicts (conn_id, sku, field, store_value, qoyod_value, "
                      "last_store, last_qoyod, winner, at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, "
                      "$8, $9) RETURNING id",
                      &p, err, "record a conflict");
    if (!r) return code_of(err);
    c->id = col_i64(r, 0, 0);
    PQclear(r);
    return 0;
}

static int pg_conflict_get(struct store *s, int64_t id, struct store_conflict *out,
                           struct th_err *err)
{
    struct pp p = {0};
    p_i64(&p, id);
    PGresult *r = one(pg_of(s), "SELECT " CONFLICT_COLS " FROM conflicts WHERE id = $1", &p, err,
                      "read a conflict");
    if (!r) return code_of(err);
    int code = 0;
    if (PQntuples(r))
        read_conflict(r, 0, out);
    else
        code = th_err_set(err, TH_ENOTFOUND, "there is no conflict %lld", (long long)id);
    PQclear(r);
    return code;
}

static int pg_conflict_list(struct store *s, int64_t conn_id, int open_only, int limit,
                            void (*fn)(void *arg, const struct store_conflict *c), void *arg,
                            struct th_err *err)
{
    struct pp p = {0};
    p_i64(&p, conn_id);
    p_i64(&p, open_only != 0);
    p_i64(&p, limit > 0 ? limit : INT64_MAX);
    PGresult *r = one(pg_of(s),
                      "SELECT " CONFLICT_COLS " FROM conflicts WHERE ($1 = 0 OR conn_id = $1) AND "
                      "($2 = 0 OR resolved_ms = 0) ORDER BY id DESC LIMIT $3",
                      &p, err, "list conflicts");
    if (!r) return code_of(err);
    int n = PQntuples(r);
    struct store_conflict *v = xcalloc(n ? (size_t)n : 1, sizeof *v);
    for (int i = 0; i < n; i++)
        read_conflict(r, i, &v[i]);
    PQclear(r);
    for (int i = 0; i < n; i++)
        fn(arg, &v[i]);
    free(v);
    return 0;
}

static int pg_conflict_resolve(struct store *s, int64_t id, const char *resolution,
                               struct th_err *err)
{
    int64_t now = store_now_ms(s);
    struct pp p = {0};
    p_i64(&p, id);
    p_i64(&p, now > 0 ? now : 1);
    p_str(&p, resolution);
    PGresult *r = one(pg_of(s),
                      "UPDATE conflicts SET resolved_ms = $2, resolution = $3 WHERE id = $1 AND "
                      "resolved_ms = 0",
                      &p, err, "resolve a conflict");
    if (!r) return code_of(err);
    int64_t n = affected(r);
    PQclear(r);
    if (n > 0) return 0;
    struct store_conflict c;
    int rc = pg_conflict_get(s, id, &c, err);
    if (rc) return rc;
    return th_err_set(err, TH_ECONFLICT, "conflict %lld was resolved already (%s)", (long long)id,
                      c.resolution);
}

/* ---------------------------------------------------------------------- */
/* Stock (SQL as store_sqlite.c's) */

static int pg_stock_load(struct store *s, int64_t conn_id, struct store_stock *rows, size_t n,
                         int64_t before_ms, struct th_err *err)
{
    struct pgs *q = pg_of(s);
    PGconn *c = conn_get(q, err);
    if (!c) return code_of(err);
    int code = 0;
    for (size_t i = 0; i < n && !code; i++) {
        struct store_stock *r = &rows[i];
        char op[200];
        snprintf(op, sizeof op, "read the stock of SKU %.128s (connection %lld)", r->sku,
                 (long long)conn_id);
        struct pp p = {0};
        p_i64(&p, conn_id);
        p_str(&p, r->sku);
        PGresult *res = run(q, c,
                            "SELECT qoyod_product_id, qoyod_qty, has_qty, store_untracked, "
                            "pushed_at_ms, read_ms FROM stock WHERE conn_id = $1 AND sku = $2",
                            &p, err, op);
        if (!res) {
            code = code_of(err);
            break;
        }
        if (PQntuples(res)) {
            r->known = 1;
            r->qoyod_product_id = col_i64(res, 0, 0);
            r->qoyod_qty = col_i64(res, 0, 1);
            r->has_qty = (int)col_i64(res, 0, 2);
            r->store_untracked = (int)col_i64(res, 0, 3);
            r->pushed_at_ms = col_i64(res, 0, 4);
            r->read_ms = col_i64(res, 0, 5);
        }
        PQclear(res);
        p_i64(&p, before_ms);
        p_i64(&p, r->pushed_at_ms);
        p_i64(&p, before_ms - STORE_STOCK_PENDING_MAX_MS);
        res = run(q, c,
                  "SELECT COALESCE(SUM(CASE WHEN settled_ms > 0 AND settled_ms < $3 THEN delta "
                  "END), 0), COALESCE(SUM(CASE WHEN settled_ms > 0 AND settled_ms < $3 AND "
                  "origin_ms < $4 THEN delta END), 0), COALESCE(SUM(CASE WHEN (settled_ms = 0 AND "
                  "begun_ms >= $5) OR settled_ms >= $3 THEN 1 END), 0) FROM stock_own WHERE "
                  "conn_id = $1 AND sku = $2",
                  &p, err, op);
        if (!res) {
            code = code_of(err);
            break;
        }
        r->own = col_i64(res, 0, 0);
        r->own_before_push = col_i64(res, 0, 1);
        r->busy = col_i64(res, 0, 2) > 0;
        PQclear(res);
    }
    conn_put(q, c);
    return code;
}

/* Runs fn inside BEGIN ... COMMIT on one pooled connection. */
static int in_tx(struct pgs *q, struct th_err *err, const char *what,
                 int (*fn)(struct pgs *q, PGconn *c, void *arg, struct th_err *err), void *arg)
{
    PGconn *c = conn_get(q, err);
    if (!c) return code_of(err);
    int code = plain(q, c, "BEGIN", err, what);
    if (code)
        rollback(c);
    else
        code = end_tx(q, c, fn(q, c, arg, err), err, what);
    conn_put(q, c);
    return code;
}

struct save_args {
    int64_t conn_id;
    const struct store_stock *rows;
    size_t n;
};

static int save_tx(struct pgs *q, PGconn *c, void *arg, struct th_err *err)
{
    struct save_args *a = arg;
    for (size_t i = 0; i < a->n; i++) {
        const struct store_stock *r = &a->rows[i];
        char op[200];
        snprintf(op, sizeof op, "save the stock of SKU %.128s (connection %lld)", r->sku,
                 (long long)a->conn_id);
        struct pp p = {0};
        p_i64(&p, a->conn_id);
        p_str(&p, r->sku);
        p_i64(&p, r->qoyod_product_id);
        p_i64(&p, r->qoyod_qty);
        p_i64(&p, r->has_qty != 0);
        p_i64(&p, r->store_untracked != 0);
        p_i64(&p, r->pushed_at_ms);
        p_i64(&p, r->read_ms);
        PGresult *res = run(
            q, c,
            "INSERT INTO stock (conn_id, sku, qoyod_product_id, qoyod_qty, has_qty, "
            "store_untracked, pushed_at_ms, read_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
            "ON CONFLICT (conn_id, sku) DO UPDATE SET qoyod_product_id = "
            "excluded.qoyod_product_id, qoyod_qty = excluded.qoyod_qty, has_qty = "
            "excluded.has_qty, store_untracked = excluded.store_untracked, pushed_at_ms = "
            "excluded.pushed_at_ms, read_ms = excluded.read_ms",
            &p, err, op);
        if (!res) return code_of(err);
        PQclear(res);
        struct pp d = {0};
        p_i64(&d, a->conn_id);
        p_str(&d, r->sku);
        p_i64(&d, r->read_ms);
        res = run(q, c,
                  "DELETE FROM stock_own WHERE conn_id = $1 AND sku = $2 AND settled_ms > 0 AND "
                  "settled_ms < $3",
                  &d, err, op);
        if (!res) return code_of(err);
        PQclear(res);
    }
    return 0;
}

static int pg_stock_save(struct store *s, int64_t conn_id, const struct store_stock *rows,
                         size_t n, struct th_err *err)
{
    struct save_args a = {conn_id, rows, n};
    return in_tx(pg_of(s), err, "save stock", save_tx, &a);
}

static int pg_stock_untracked(struct store *s, int64_t conn_id, const char *sku, int untracked,
                              struct th_err *err)
{
    struct pp p = {0};
    p_i64(&p, conn_id);
    p_str(&p, sku);
    p_i64(&p, untracked);
    char op[200];
    snprintf(op, sizeof op, "mark SKU %.128s of connection %lld as %s in the store", sku,
             (long long)conn_id, untracked ? "untracked" : "tracked");
    PGresult *r = one(pg_of(s),
                      "INSERT INTO stock (conn_id, sku, store_untracked) VALUES ($1, $2, $3) "
                      "ON CONFLICT (conn_id, sku) DO UPDATE SET store_untracked = "
                      "excluded.store_untracked",
                      &p, err, op);
    if (!r) return code_of(err);
    PQclear(r);
    return 0;
}

struct own_args {
    int64_t conn_id, origin_s, now;
    const char *ref;
    const char *const *skus;
    const int64_t *deltas;
    size_t n;
};

static int own_tx(struct pgs *q, PGconn *c, void *arg, struct th_err *err)
{
    struct own_args *a = arg;
    char op[200];
    snprintf(op, sizeof op, "record the own stock movements of %.128s (connection %lld)", a->ref,
             (long long)a->conn_id);
    struct pp p = {0};
    p_i64(&p, a->conn_id);
    p_str(&p, a->ref);
    PGresult *r = run(q, c, "DELETE FROM stock_own WHERE conn_id = $1 AND ref = $2", &p, err, op);
    if (!r) return code_of(err);
    PQclear(r);
    for (size_t i = 0; i < a->n; i++) {
        struct pp v = {0};
        p_i64(&v, a->conn_id);
        p_str(&v, a->ref);
        p_str(&v, a->skus[i]);
        p_i64(&v, a->deltas[i]);
        p_i64(&v, a->origin_s * 1000);
        p_i64(&v, a->now);
        r = run(q, c,
                "INSERT INTO stock_own AS o (conn_id, ref, sku, delta, origin_ms, begun_ms) "
                "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (conn_id, ref, sku) DO UPDATE SET "
                "delta = o.delta + excluded.delta",
                &v, err, op);
        if (!r) return code_of(err);
        PQclear(r);
    }
    return 0;
}

static int pg_stock_own_begin(struct store *s, int64_t conn_id, const char *ref,
                              const char *const *skus, const int64_t *deltas, size_t n,
                              int64_t origin_s, struct th_err *err)
{
    struct own_args a = {conn_id, origin_s, store_now_ms(s), ref, skus, deltas, n};
    return in_tx(pg_of(s), err, "record own stock movements", own_tx, &a);
}

static int pg_stock_own_settle(struct store *s, int64_t conn_id, const char *ref, int applied,
                               struct th_err *err)
{
    struct pp p = {0};
    p_i64(&p, conn_id);
    p_str(&p, ref);
    if (applied) p_i64(&p, store_now_ms(s));
    char op[200];
    snprintf(op, sizeof op, "settle the own stock movements of %.128s (connection %lld)", ref,
             (long long)conn_id);
    PGresult *r = one(pg_of(s),
                      applied ? "UPDATE stock_own SET settled_ms = $3 WHERE conn_id = $1 AND "
                                "ref = $2 AND settled_ms = 0"
                              : "DELETE FROM stock_own WHERE conn_id = $1 AND ref = $2 AND "
                                "settled_ms = 0",
                      &p, err, op);
    if (!r) return code_of(err);
    PQclear(r);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Order lines against an opening balance */

struct lines_args {
    int64_t conn_id, order_id, created_s, before_ms;
    const char *sku;
    const char *const *skus;
    const int64_t *units;
    size_t n;
    int64_t sum;
};

static int lines_note_tx(struct pgs *q, PGconn *c, void *arg, struct th_err *err)
{
    struct lines_args *a = arg;
    char op[160];
    snprintf(op, sizeof op, "record the lines of order %lld (connection %lld)",
             (long long)a->order_id, (long long)a->conn_id);
    for (size_t i = 0; i < a->n; i++) {
        struct pp p = {0};
        p_i64(&p, a->conn_id);
        p_str(&p, a->skus[i]);
        p_i64(&p, a->order_id);
        p_i64(&p, a->units[i]);
        p_i64(&p, a->created_s * 1000);
        PGresult *r = run(q, c,
                          "INSERT INTO stock_lines (conn_id, sku, order_id, units, created_ms) "
                          "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (conn_id, sku, order_id) DO "
                          "UPDATE SET units = excluded.units, created_ms = excluded.created_ms",
                          &p, err, op);
        if (!r) return code_of(err);
        PQclear(r);
    }
    return 0;
}

static int pg_stock_lines_note(struct store *s, int64_t conn_id, int64_t order_id,
                               int64_t created_s, const char *const *skus, const int64_t *units,
                               size_t n, struct th_err *err)
{
    struct lines_args a = {.conn_id = conn_id, .order_id = order_id, .created_s = created_s,
                           .skus = skus, .units = units, .n = n};
    return in_tx(pg_of(s), err, "record order lines", lines_note_tx, &a);
}

static int lines_open_tx(struct pgs *q, PGconn *c, void *arg, struct th_err *err)
{
    struct lines_args *a = arg;
    char op[200];
    snprintf(op, sizeof op, "count the order lines of SKU %.128s (connection %lld)", a->sku,
             (long long)a->conn_id);
    struct pp p = {0};
    p_i64(&p, a->conn_id);
    p_str(&p, a->sku);
    p_i64(&p, a->before_ms);
    /* The lines are locked for the count and the marks alike. */
    PGresult *r = run(q, c,
                      "UPDATE stock_lines SET mark = CASE WHEN created_ms < $3 THEN 1 ELSE 0 END "
                      "WHERE conn_id = $1 AND sku = $2 RETURNING units, created_ms < $3",
                      &p, err, op);
    if (!r) return code_of(err);
    a->sum = 0;
    for (int i = 0; i < PQntuples(r); i++)
        if (PQgetvalue(r, i, 1)[0] == 't') a->sum += col_i64(r, i, 0);
    PQclear(r);
    return 0;
}

static int pg_stock_lines_open(struct store *s, int64_t conn_id, const char *sku,
                               int64_t before_ms, int64_t *units, struct th_err *err)
{
    struct lines_args a = {.conn_id = conn_id, .sku = sku, .before_ms = before_ms};
    int rc = in_tx(pg_of(s), err, "count the order lines of an opening balance", lines_open_tx,
                   &a);
    if (!rc) *units = a.sum;
    return rc;
}

static int pg_stock_line_get(struct store *s, int64_t conn_id, int64_t order_id, const char *sku,
                             struct store_stock_line *out, struct th_err *err)
{
    struct pp p = {0};
    p_i64(&p, conn_id);
    p_str(&p, sku);
    p_i64(&p, order_id);
    char op[200];
    snprintf(op, sizeof op, "read the line of SKU %.128s in order %lld (connection %lld)", sku,
             (long long)order_id, (long long)conn_id);
    PGresult *r = one(pg_of(s),
                      "SELECT units, created_ms, mark, fix_from, fix_to FROM stock_lines WHERE "
                      "conn_id = $1 AND sku = $2 AND order_id = $3",
                      &p, err, op);
    if (!r) return code_of(err);
    int code = 0;
    if (PQntuples(r)) {
        out->units = col_i64(r, 0, 0);
        out->created_ms = col_i64(r, 0, 1);
        out->mark = (int)col_i64(r, 0, 2);
        out->fix_from = col_i64(r, 0, 3);
        out->fix_to = col_i64(r, 0, 4);
    } else {
        code = th_err_set(err, TH_ENOTFOUND, "no line of SKU %s in order %lld (connection %lld)",
                          sku, (long long)order_id, (long long)conn_id);
    }
    PQclear(r);
    return code;
}

static int pg_stock_line_put(struct store *s, int64_t conn_id, const struct store_stock_line *l,
                             struct th_err *err)
{
    struct pp p = {0};
    p_i64(&p, conn_id);
    p_str(&p, l->sku);
    p_i64(&p, l->order_id);
    p_i64(&p, l->units);
    p_i64(&p, l->created_ms);
    p_i64(&p, l->mark);
    p_i64(&p, l->fix_from);
    p_i64(&p, l->fix_to);
    char op[200];
    snprintf(op, sizeof op, "save the line of SKU %.128s in order %lld (connection %lld)", l->sku,
             (long long)l->order_id, (long long)conn_id);
    PGresult *r = one(pg_of(s),
                      "INSERT INTO stock_lines (conn_id, sku, order_id, units, created_ms, mark, "
                      "fix_from, fix_to) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT "
                      "(conn_id, sku, order_id) DO UPDATE SET units = excluded.units, "
                      "created_ms = excluded.created_ms, mark = excluded.mark, fix_from = "
                      "excluded.fix_from, fix_to = excluded.fix_to",
                      &p, err, op);
    if (!r) return code_of(err);
    PQclear(r);
    return 0;
}

static int pg_stock_lines_forget(struct store *s, int64_t conn_id, int64_t order_id,
                                 struct th_err *err)
{
    struct pp p = {0};
    p_i64(&p, conn_id);
    p_i64(&p, order_id);
    char op[120];
    snprintf(op, sizeof op, "forget the lines of order %lld (connection %lld)",
             (long long)order_id, (long long)conn_id);
    PGresult *r = one(pg_of(s), "DELETE FROM stock_lines WHERE conn_id = $1 AND order_id = $2",
                      &p, err, op);
    if (!r) return code_of(err);
    PQclear(r);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Reference prefixes (store_int.h conn_prefix_assign, conn_prefix_set) */

static int pg_conn_prefix_assign(struct store *s, int64_t id, char **prefix, struct th_err *err)
{
    struct pp p = {0};
    p_i64(&p, id);
    char op[96];
    snprintf(op, sizeof op, "give connection %lld its reference prefix", (long long)id);
    /* One statement: the UPDATE sees every connection committed before it
     * started (see store_int.h for why that is enough). */
    PGresult *r = one(pg_of(s),
                      "WITH upd AS (UPDATE connections c SET ref_prefix = (CASE c.platform WHEN 2 "
                      "THEN 'Z' ELSE 'S' END) || c.id WHERE c.id = $1 AND c.ref_prefix = '' AND "
                      "COALESCE(c.qoyod_api_key, '') <> '' AND EXISTS (SELECT 1 FROM connections "
                      "o WHERE o.id <> c.id AND o.ref_prefix = '' AND COALESCE(o.qoyod_base, '') "
                      "= COALESCE(c.qoyod_base, '') AND o.qoyod_api_key = c.qoyod_api_key) "
                      "RETURNING c.ref_prefix) "
                      "SELECT COALESCE((SELECT ref_prefix FROM upd), ref_prefix) FROM connections "
                      "WHERE id = $1",
                      &p, err, op);
    if (!r) return code_of(err);
    int code = 0;
    if (PQntuples(r))
        *prefix = col_str(r, 0, 0);
    else
        code = th_err_set(err, TH_ENOTFOUND, "connection %lld does not exist", (long long)id);
    PQclear(r);
    return code;
}

struct prefix_args {
    int64_t id;
    const char *from, *to;
    int64_t *sent, *other;
};

static int prefix_tx(struct pgs *q, PGconn *c, void *arg, struct th_err *err)
{
    struct prefix_args *a = arg;
    char op[96];
    snprintf(op, sizeof op, "change the reference prefix of connection %lld", (long long)a->id);
    struct pp p = {0};
    p_i64(&p, a->id);
    PGresult *r = run(q, c, "SELECT ref_prefix FROM connections WHERE id = $1 FOR UPDATE", &p,
                      err, op);
    if (!r) return code_of(err);
    int code = 0;
    if (!PQntuples(r))
        code = th_err_set(err, TH_ENOTFOUND, "connection %lld does not exist", (long long)a->id);
    else if (strcmp(PQgetvalue(r, 0, 0), a->from) != 0)
        code = th_err_set(err, TH_ECONFLICT,
                          "%s: it was changed meanwhile (read the settings again)", op);
    PQclear(r);
    if (code) return code;
    r = run(q, c,
            "SELECT COUNT(*) FROM orders WHERE conn_id = $1 AND (xfer IN (1, 2) OR "
            "qoyod_reference IS NOT NULL)",
            &p, err, op);
    if (!r) return code_of(err);
    *a->sent = col_i64(r, 0, 0);
    PQclear(r);
    struct pp p2 = {0};
    p_i64(&p2, a->id);
    p_str(&p2, a->to);
    r = run(q, c,
            "SELECT o.id FROM connections o JOIN connections me ON me.id = $1 WHERE o.id <> me.id "
            "AND o.ref_prefix = $2 AND COALESCE(o.qoyod_base, '') = COALESCE(me.qoyod_base, '') "
            "AND COALESCE(o.qoyod_api_key, '') = COALESCE(me.qoyod_api_key, '') ORDER BY o.id "
            "LIMIT 1",
            &p2, err, op);
    if (!r) return code_of(err);
    *a->other = PQntuples(r) ? col_i64(r, 0, 0) : 0;
    PQclear(r);
    if (*a->sent || *a->other) return 0;
    r = run(q, c, "UPDATE connections SET ref_prefix = $2 WHERE id = $1", &p2, err, op);
    if (!r) return code_of(err);
    PQclear(r);
    return 0;
}

static int pg_conn_prefix_set(struct store *s, int64_t id, const char *from, const char *to,
                              int64_t *sent, int64_t *other, struct th_err *err)
{
    *sent = *other = 0;
    struct prefix_args a = {id, from, to, sent, other};
    return in_tx(pg_of(s), err, "change a reference prefix", prefix_tx, &a);
}

const struct store_ops store_pg_ops = {
    .fields_cfg_get = pg_fields_cfg_get,
    .fields_cfg_put = pg_fields_cfg_put,
    .fields_load = pg_fields_load,
    .fields_save = pg_fields_save,
    .conflict_add = pg_conflict_add,
    .conflict_get = pg_conflict_get,
    .conflict_list = pg_conflict_list,
    .conflict_resolve = pg_conflict_resolve,
    .name = "postgres",
    .shared = 1,
    .open = pg_open,
    .close = pg_close,
    .conn_put = pg_conn_put,
    .conn_put_tokens = pg_conn_put_tokens,
    .conn_put_settings = pg_conn_put_settings,
    .conn_get = pg_conn_get,
    .conn_find = pg_conn_find,
    .conn_prefix_assign = pg_conn_prefix_assign,
    .conn_prefix_set = pg_conn_prefix_set,
    .conn_list = pg_conn_list,
    .event_ingest = pg_event_ingest,
    .job_claim = pg_job_claim,
    .job_done = pg_job_done,
    .job_retry = pg_job_retry,
    .job_renew = pg_job_renew,
    .job_enqueue = pg_job_enqueue,
    .job_enqueue_many = pg_job_enqueue_many,
    .job_count = pg_job_count,
    .order_get = pg_order_get,
    .order_put = pg_order_put,
    .order_add = pg_order_add,
    .order_note = pg_order_note,
    .order_list = pg_order_list,
    .order_history = pg_order_history,
    .map_get = pg_map_get,
    .map_put = pg_map_put,
    .stock_load = pg_stock_load,
    .stock_save = pg_stock_save,
    .stock_untracked = pg_stock_untracked,
    .stock_own_begin = pg_stock_own_begin,
    .stock_own_settle = pg_stock_own_settle,
    .stock_lines_note = pg_stock_lines_note,
    .stock_lines_open = pg_stock_lines_open,
    .stock_line_get = pg_stock_line_get,
    .stock_line_put = pg_stock_line_put,
    .stock_lines_forget = pg_stock_lines_forget,
    .user_put = pg_user_put,
    .user_get = pg_user_get,
    .user_count = pg_user_count,
    .user_list = pg_user_list,
    .user_delete = pg_user_delete,
    .tenant_add = pg_tenant_add,
    .tenant_get = pg_tenant_get,
    .tenant_list = pg_tenant_list,
    .token_add = pg_token_add,
    .token_find = pg_token_find,
    .token_list = pg_token_list,
    .token_revoke = pg_token_revoke,
    .token_count = pg_token_count,
    .account_pause = pg_account_pause,
    .account_take = pg_account_take,
    .lease_take = pg_lease_take,
    .lease_drop = pg_lease_drop,
};
