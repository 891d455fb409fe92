/*
 * store_sqlite — the SQLite backend (see store_sqlite.h and store_int.h).
 *
 * Design notes.
 *
 * One connection, one mutex. Every call takes db_mu for its whole length, so
 * calls are atomic with respect to each other and SQLite itself runs in
 * single-thread mode (SQLITE_OPEN_NOMUTEX). A connection pool would let
 * readers run beside the writer, but SQLite has one writer anyway and the
 * hot paths (ingest, claim) all write; correctness first. Other processes
 * (the CLI beside `tarheel serve`) are handled by busy_timeout.
 *
 * Durability. WAL with synchronous=FULL: a COMMIT returns after the WAL is
 * fsynced, so a write function that returned 0 survives a crash or power
 * loss (store.h). Multi-statement writes run in BEGIN IMMEDIATE, which takes
 * the write lock up front, so they cannot fail half-way on a lock upgrade.
 *
 * Group commit (ingest only). store_event_ingest callers append a request to
 * a queue under q_mu and sleep on a semaphore of their own;
 * store_event_ingest_async callers (the HTTP intake) leave a callback
 * instead and return at once. One committer thread (started by the first
 * ingest, stopped by close) takes up to STORE_MAX_BATCH queued requests,
 * runs them in ONE transaction, COMMITs once (one fsync) and then posts each
 * of those callers or calls its callback. While it commits, new
 * callers queue up, and its next batch takes them all: under load one fsync
 * covers many webhooks. Every caller is told only after the COMMIT holding
 * its event succeeded (or with the error that made it fail), so "on disk
 * before acknowledged" holds per request.
 * Why a thread: before it, whichever caller found no leader ran the batch
 * and woke all waiters with one broadcast. That cost about five futex calls
 * per webhook (every waiter woke for every batch), and each next batch
 * waited until a woken caller was scheduled to lead it. The committer goes
 * from one commit straight to the next and wakes exactly the callers it
 * served; a lone caller pays one thread hand-off each way, small beside the
 * fsync.
 * What cannot overlap: SQLite has one writer, so batch N+1's statements
 * cannot run during batch N's fsync (a second connection would only wait for
 * the write lock). What does overlap it is the callers' own work: HTTP,
 * signature check, parsing, queueing. So throughput is about (callers
 * waiting) / (statement time + commit time of a batch), and commit time
 * grows with the pages a batch dirties (hence migration 3). Telling the
 * callers from a second thread, so that it overlaps the next batch, measured
 * no better on the 2-core VM: it moves CPU time, it saves none.
 * Failure. When a request's statements fail (unknown connection, disk full)
 * the whole transaction is rolled back: SQLite may have undone only the
 * failing statement (say the job upsert on SQLITE_FULL), and committing the
 * rest would keep an event without its job, whose redelivery would then be
 * a "duplicate". Then each request of that batch runs again in a
 * transaction of its own, so the others are not failed with it and each
 * error names its own event. (A SAVEPOINT per request gave the same without
 * the second pass, but at two more statements per request on the hot path,
 * and failures are rare.)
 *
 * Jobs. A UNIQUE index on jobs(conn_id, order_id) makes "one pending job per
 * order" a fact of the schema; claim therefore can never hand out two jobs
 * of one order. A job is free when lease_owner IS NULL or its lease_until
 * passed (the worker died). An event for an order whose job is leased right
 * now sets jobs.rerun: store_job_done then makes the job due again instead
 * of deleting it, because the running worker may have fetched the order
 * before that change.
 *
 *     (none) --ingest/enqueue--> pending --claim--> leased --done--> (deleted)
 *                                   ^                 |  \--done, rerun=1--+
 *                                   +----retry--------+  (lease expires:   |
 *                                   +------------------  claimable again)--+
 *
 * Schema. Numbered migrations in `migrations[]`, applied in order; PRAGMA
 * user_version is the number applied. Never edit an applied migration: add
 * the next one. Times ending in _ms are unix ms, others unix seconds (as in
 * the structs of store.h).
 */
#include "store/store_sqlite.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xmalloc.h"

/* ---------------------------------------------------------------------- */
/* Schema */

static const char *const migrations[] = {
    /* 1: the initial schema. */
    "CREATE TABLE connections ("
    "  id INTEGER PRIMARY KEY,"
    "  platform INTEGER NOT NULL,"
    "  store_id INTEGER NOT NULL,"
    "  name TEXT,"
    "  access_token TEXT,"
    "  refresh_token TEXT,"
    "  token_expires_at INTEGER NOT NULL DEFAULT 0,"
    "  webhook_secret TEXT,"
    "  webhook_strategy TEXT,"
    "  api_base TEXT,"
    "  status TEXT,"
    "  connected_at INTEGER NOT NULL DEFAULT 0,"
    "  qoyod_base TEXT,"
    "  qoyod_api_key TEXT,"
    "  inventory_id INTEGER NOT NULL DEFAULT 0,"
    "  payment_account_id INTEGER NOT NULL DEFAULT 0,"
    "  trigger_status INTEGER NOT NULL DEFAULT 1,"
    "  customer_per_invoice INTEGER NOT NULL DEFAULT 0,"
    "  number_by_order INTEGER NOT NULL DEFAULT 0,"
    "  financial_invoice INTEGER NOT NULL DEFAULT 0,"
    "  UNIQUE (platform, store_id)"
    ");"
    "CREATE TABLE events ("
    "  id INTEGER PRIMARY KEY,"
    "  conn_id INTEGER NOT NULL REFERENCES connections(id),"
    "  dedupe_key TEXT NOT NULL,"
    "  event TEXT NOT NULL,"
    "  order_id INTEGER NOT NULL DEFAULT 0,"
    "  received_at_ms INTEGER NOT NULL,"
    "  format INTEGER NOT NULL DEFAULT 1,"
    "  body BLOB NOT NULL,"
    "  UNIQUE (conn_id, dedupe_key)"
    ");"
    "CREATE TABLE jobs ("
    "  id INTEGER PRIMARY KEY,"
    "  conn_id INTEGER NOT NULL REFERENCES connections(id),"
    "  order_id INTEGER NOT NULL,"
    "  run_after_ms INTEGER NOT NULL,"
    "  lease_owner TEXT,"
    "  lease_until_ms INTEGER NOT NULL DEFAULT 0,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  rerun INTEGER NOT NULL DEFAULT 0,"
    "  last_error TEXT,"
    "  created_at_ms INTEGER NOT NULL"
    ");"
    "CREATE UNIQUE INDEX jobs_one_per_order ON jobs (conn_id, order_id);"
    "CREATE INDEX jobs_due ON jobs (run_after_ms, id);"
    "CREATE TABLE orders ("
    "  conn_id INTEGER NOT NULL REFERENCES connections(id),"
    "  order_id INTEGER NOT NULL,"
    "  number TEXT,"
    "  status INTEGER NOT NULL DEFAULT 0,"
    "  xfer INTEGER NOT NULL DEFAULT 0,"
    "  reason_code INTEGER NOT NULL DEFAULT 0,"
    "  reason TEXT,"
    "  attempts INTEGER NOT NULL DEFAULT 0,"
    "  total INTEGER NOT NULL DEFAULT 0,"
    "  qoyod_total INTEGER NOT NULL DEFAULT 0,"
    "  qoyod_invoice_id INTEGER NOT NULL DEFAULT 0,"
    "  qoyod_reference TEXT,"
    "  qoyod_payment_id INTEGER NOT NULL DEFAULT 0,"
    "  created_at INTEGER NOT NULL DEFAULT 0,"
    "  updated_at INTEGER NOT NULL DEFAULT 0,"
    "  transferred_at INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (conn_id, order_id)"
    ");"
    "CREATE INDEX orders_by_created ON orders (created_at, order_id);"
    "CREATE INDEX orders_by_xfer ON orders (xfer, created_at, order_id);"
    "CREATE TABLE order_history ("
    "  id INTEGER PRIMARY KEY,"
    "  conn_id INTEGER NOT NULL REFERENCES connections(id),"
    "  order_id INTEGER NOT NULL,"
    "  ts_ms INTEGER NOT NULL,"
    "  what TEXT NOT NULL,"
    "  detail TEXT"
    ");"
    "CREATE INDEX order_history_by_order ON order_history (conn_id, order_id, id);"
    "CREATE TRIGGER order_history_no_update BEFORE UPDATE ON order_history"
    "  BEGIN SELECT RAISE(ABORT, 'order_history is append-only'); END;"
    "CREATE TRIGGER order_history_no_delete BEFORE DELETE ON order_history"
    "  BEGIN SELECT RAISE(ABORT, 'order_history is append-only'); END;"
    "CREATE TABLE mappings ("
    "  id INTEGER PRIMARY KEY,"
    "  conn_id INTEGER NOT NULL REFERENCES connections(id),"
    "  kind TEXT NOT NULL,"
    "  key TEXT NOT NULL,"
    "  qoyod_id INTEGER NOT NULL,"
    "  updated_at_ms INTEGER NOT NULL,"
    "  UNIQUE (conn_id, kind, key)"
    ");",
    /* 2: jobs queued by hand ("send to Qoyod") may transfer orders the
     * automatic rules would hold back (created before the connection, not
     * yet at the trigger status). */
    "ALTER TABLE jobs ADD COLUMN manual INTEGER NOT NULL DEFAULT 0;",
    /* 3: the dedupe index leads with the order id. A dedupe key is a digest
     * (random), so an index on (conn_id, dedupe_key) put every new event on
     * a different leaf page: two thirds of the pages each ingest commit
     * wrote and fsynced were that index. Order ids grow over time, so new
     * events now land on the last leaf pages. Adapters derive the order id
     * and the key from the same delivery, so a redelivery still collides.
     * A UNIQUE in CREATE TABLE cannot be dropped, hence the copy. */
    "CREATE TABLE events_v3 ("
    "  id INTEGER PRIMARY KEY,"
    "  conn_id INTEGER NOT NULL REFERENCES connections(id),"
    "  dedupe_key TEXT NOT NULL,"
    "  event TEXT NOT NULL,"
    "  order_id INTEGER NOT NULL DEFAULT 0,"
    "  received_at_ms INTEGER NOT NULL,"
    "  format INTEGER NOT NULL DEFAULT 1,"
    "  body BLOB NOT NULL"
    ");"
    "INSERT INTO events_v3 (id, conn_id, dedupe_key, event, order_id, received_at_ms, format, body)"
    "  SELECT id, conn_id, dedupe_key, event, order_id, received_at_ms, format, body FROM events;"
    "DROP TABLE events;"
    "ALTER TABLE events_v3 RENAME TO events;"
    "CREATE UNIQUE INDEX events_dedupe ON events (conn_id, order_id, dedupe_key);",
    /* 4: Zid's second token (the manager token, sent as X-Manager-Token). */
    "ALTER TABLE connections ADD COLUMN manager_token TEXT;",
    /* 5: the order's VAT in halalas as the platform reports it, for the
     * monthly report's VAT total. Orders saved before read 0 until the
     * worker next fetches them. */
    "ALTER TABLE orders ADD COLUMN tax INTEGER NOT NULL DEFAULT 0;",
    /* 6: stock sync Qoyod -> store (worker/stock.c): the per-store switch
     * and cadence; what Qoyod last showed per SKU; tarheel's own stock
     * movements (invoices, opening balances), pending until their document
     * exists, kept until a read of Qoyod reflects them. */
    "ALTER TABLE connections ADD COLUMN stock_sync INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE connections ADD COLUMN stock_interval_s INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE stock ("
    "  conn_id INTEGER NOT NULL REFERENCES connections(id),"
    "  sku TEXT NOT NULL,"
    "  qoyod_product_id INTEGER NOT NULL DEFAULT 0,"
    "  qoyod_qty INTEGER NOT NULL DEFAULT 0,"
    "  has_qty INTEGER NOT NULL DEFAULT 0,"
    "  store_untracked INTEGER NOT NULL DEFAULT 0,"
    "  pushed_at_ms INTEGER NOT NULL DEFAULT 0,"
    "  read_ms INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (conn_id, sku)"
    ");"
    "CREATE TABLE stock_own ("
    "  conn_id INTEGER NOT NULL REFERENCES connections(id),"
    "  ref TEXT NOT NULL,"
    "  sku TEXT NOT NULL,"
    "  delta INTEGER NOT NULL,"
    "  origin_ms INTEGER NOT NULL,"
    "  begun_ms INTEGER NOT NULL,"
    "  settled_ms INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (conn_id, ref, sku)"
    ");"
    "CREATE INDEX stock_own_by_sku ON stock_own (conn_id, sku);",
    /* 7: what happened to a transferred order after its invoice: the state
     * of its credit notes (enum store_credit) and the halalas credited. */
    "ALTER TABLE orders ADD COLUMN credit INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE orders ADD COLUMN credited INTEGER NOT NULL DEFAULT 0;",
    /* 8: dashboard users: a login name and its scrypt hash (core/passwd.h). */
    "CREATE TABLE IF NOT EXISTS users ("
    "  name TEXT PRIMARY KEY,"
    "  hash TEXT NOT NULL,"
    "  updated_at_ms INTEGER NOT NULL"
    ");",
    /* 9: limits and leases shared by every worker (store_job_claim_limited,
     * store_account_*, store_lease_*): a Qoyod account's pause and call
     * budget, named leases, and an index on the leased jobs a limited claim
     * counts. */
    "CREATE TABLE accounts ("
    "  qoyod_base TEXT NOT NULL,"
    "  qoyod_api_key TEXT NOT NULL,"
    "  paused_until_ms INTEGER NOT NULL DEFAULT 0,"
    "  milli_tokens INTEGER NOT NULL DEFAULT 0,"
    "  refilled_ms INTEGER NOT NULL DEFAULT -1,"
    "  PRIMARY KEY (qoyod_base, qoyod_api_key)"
    ");"
    "CREATE TABLE leases ("
    "  name TEXT PRIMARY KEY,"
    "  owner TEXT NOT NULL,"
    "  until_ms INTEGER NOT NULL"
    ");"
    "CREATE INDEX jobs_leased ON jobs (conn_id) WHERE lease_owner IS NOT NULL;",
    /* 10: reference prefixes (store.h, struct store_conn.ref_prefix). Of the
     * connections already sharing a Qoyod account, each that has sent no
     * order gets its default prefix when another one has sent orders or is
     * older, so at most the one whose references Qoyod already holds keeps
     * none. Two that both sent orders are left as they were (their
     * references may already collide; docs/SETTINGS.md). */
    "ALTER TABLE connections ADD COLUMN ref_prefix TEXT NOT NULL DEFAULT '';"
    "UPDATE connections SET ref_prefix = (CASE platform WHEN 2 THEN 'Z' ELSE 'S' END) || id "
    "WHERE COALESCE(qoyod_api_key, '') <> '' AND NOT EXISTS (SELECT 1 FROM orders WHERE "
    "conn_id = connections.id AND (xfer IN (1, 2) OR qoyod_reference IS NOT NULL)) AND EXISTS ("
    "SELECT 1 FROM connections o WHERE o.id <> connections.id AND COALESCE(o.qoyod_base, '') = "
    "COALESCE(connections.qoyod_base, '') AND o.qoyod_api_key = connections.qoyod_api_key AND "
    "(o.id < connections.id OR EXISTS (SELECT 1 FROM orders WHERE conn_id = o.id AND (xfer IN "
    "(1, 2) OR qoyod_reference IS NOT NULL))));",
    /* 11: tenants (store.h): every connection and dashboard user belongs to
     * one, the rows made before to the default tenant (id 1), so an
     * existing install works as before; tenants' API tokens, as SHA-256
     * digests only. No REFERENCES on the added columns: SQLite cannot add
     * one with a non-NULL default; store.c checks the tenant exists. */
    "CREATE TABLE tenants ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  created_at_ms INTEGER NOT NULL"
    ");"
    "INSERT INTO tenants (id, name, created_at_ms) VALUES (1, 'default', "
    "  CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));"
    "ALTER TABLE connections ADD COLUMN tenant_id INTEGER NOT NULL DEFAULT 1;"
    "ALTER TABLE users ADD COLUMN tenant_id INTEGER NOT NULL DEFAULT 1;"
    "CREATE TABLE api_tokens ("
    "  id INTEGER PRIMARY KEY,"
    "  tenant_id INTEGER NOT NULL REFERENCES tenants(id),"
    "  digest TEXT NOT NULL UNIQUE,"
    "  label TEXT NOT NULL DEFAULT '',"
    "  created_at_ms INTEGER NOT NULL"
    ");",
    /* 12: product fields both sides change (worker/fields.c): a
     * connection's field-sync settings (beside its row, so the connection
     * columns stay as they are), what each side showed after the last sync
     * per SKU and field, and the conflicts for review. */
    "CREATE TABLE field_settings ("
    "  conn_id INTEGER PRIMARY KEY REFERENCES connections(id),"
    "  sync INTEGER NOT NULL DEFAULT 0,"
    "  sources INTEGER NOT NULL DEFAULT 0"
    ");"
    "CREATE TABLE fields ("
    "  conn_id INTEGER NOT NULL REFERENCES connections(id),"
    "  sku TEXT NOT NULL,"
    "  field INTEGER NOT NULL,"
    "  store_value TEXT NOT NULL,"
    "  qoyod_value TEXT NOT NULL,"
    "  store_ref TEXT NOT NULL,"
    "  qoyod_id INTEGER NOT NULL,"
    "  synced_ms INTEGER NOT NULL,"
    "  PRIMARY KEY (conn_id, sku, field)"
    ");"
    "CREATE TABLE conflicts ("
    "  id INTEGER PRIMARY KEY,"
    "  conn_id INTEGER NOT NULL REFERENCES connections(id),"
    "  sku TEXT NOT NULL,"
    "  field INTEGER NOT NULL,"
    "  store_value TEXT NOT NULL,"
    "  qoyod_value TEXT NOT NULL,"
    "  last_store TEXT NOT NULL,"
    "  last_qoyod TEXT NOT NULL,"
    "  winner INTEGER NOT NULL,"
    "  at_ms INTEGER NOT NULL,"
    "  resolved_ms INTEGER NOT NULL DEFAULT 0,"
    "  resolution TEXT NOT NULL DEFAULT ''"
    ");"
    "CREATE INDEX conflicts_by_conn ON conflicts (conn_id, resolved_ms);",
    /* 13: order lines against a product's opening balance (store.h, struct
     * store_stock_line; docs/STOCK.md): the units of orders tarheel knows
     * of a product it may create, so the opening counts them, and the
     * corrections booked for orders it learnt of too late. */
    "CREATE TABLE stock_lines ("
    "  conn_id INTEGER NOT NULL REFERENCES connections(id),"
    "  sku TEXT NOT NULL,"
    "  order_id INTEGER NOT NULL,"
    "  units INTEGER NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  mark INTEGER NOT NULL DEFAULT 0,"
    "  fix_from INTEGER NOT NULL DEFAULT 0,"
    "  fix_to INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (conn_id, sku, order_id)"
    ");"
    "CREATE INDEX stock_lines_by_order ON stock_lines (conn_id, order_id);",
};

_Static_assert(sizeof migrations / sizeof migrations[0] == STORE_SQLITE_SCHEMA_VERSION,
               "STORE_SQLITE_SCHEMA_VERSION must equal the number of migrations");

/* ---------------------------------------------------------------------- */
/* Statements, prepared once at open */

#define CONN_COLS                                                                                  \
    "platform, store_id, name, access_token, refresh_token, token_expires_at, webhook_secret, "    \
    "webhook_strategy, api_base, status, connected_at, qoyod_base, qoyod_api_key, inventory_id, "  \
    "payment_account_id, trigger_status, customer_per_invoice, number_by_order, "                  \
    "financial_invoice, manager_token, stock_sync, stock_interval_s"

#define ORDER_COLS                                                                                 \
    "conn_id, order_id, number, status, xfer, reason_code, reason, attempts, total, qoyod_total, " \
    "qoyod_invoice_id, qoyod_reference, qoyod_payment_id, created_at, updated_at, transferred_at, " \
    "tax, credit, credited"

/* The job upsert shared by ingest and enqueue: ?1 conn, ?2 order, ?3 now.
 * A pending job only becomes due now; a leased one is marked for a rerun. */
#define JOB_UPSERT_SQL                                                                             \
    "INSERT INTO jobs (conn_id, order_id, run_after_ms, created_at_ms) VALUES (?1, ?2, ?3, ?3) "   \
    "ON CONFLICT (conn_id, order_id) DO UPDATE SET "                                               \
    "  run_after_ms = MIN(run_after_ms, excluded.run_after_ms),"                                   \
    "  rerun = CASE WHEN lease_owner IS NOT NULL AND lease_until_ms >= excluded.run_after_ms "     \
    "          THEN 1 ELSE rerun END"

enum stmt {
    S_BEGIN,
    S_COMMIT,
    S_ROLLBACK,
    S_CONN_UPSERT,
    S_CONN_UPDATE,
    S_CONN_TOKENS,
    S_CONN_SETTINGS,
    S_CONN_BY_ID,
    S_CONN_BY_KEY,
    S_PREFIX_ASSIGN,
    S_PREFIX_GET,
    S_PREFIX_SENT,
    S_PREFIX_OTHER,
    S_PREFIX_SET,
    S_EVENT_INSERT,
    S_JOB_UPSERT,
    S_JOB_CLAIM,
    S_JOB_MANUAL,
    S_JOB_DELETE,
    S_JOB_RERUN,
    S_JOB_RETRY,
    S_JOB_RENEW,
    S_JOB_EXISTS,
    S_JOB_COUNT,
    S_ORDER_GET,
    S_ORDER_PUT,
    S_ORDER_PUT_AS,
    S_ORDER_ADD,
    S_ORDER_LIST,
    S_ORDER_LIST_DESC,
    S_NOTE,
    S_HISTORY,
    S_MAP_GET,
    S_MAP_PUT,
    S_USER_PUT,
    S_USER_GET,
    S_USER_COUNT,
    S_USER_LIST,
    S_USER_DELETE,
    S_TENANT_ADD,
    S_TENANT_GET,
    S_TENANT_LIST,
    S_TOKEN_ADD,
    S_TOKEN_FIND,
    S_TOKEN_LIST,
    S_TOKEN_REVOKE,
    S_TOKEN_COUNT,
    S_STOCK_GET,
    S_STOCK_OWN_SUM,
    S_STOCK_PUT,
    S_STOCK_CONSUME,
    S_STOCK_UNTRACKED,
    S_OWN_CLEAR,
    S_OWN_ADD,
    S_OWN_APPLY,
    S_OWN_DROP,
    S_LINE_NOTE,
    S_LINE_SUM,
    S_LINE_MARK,
    S_LINE_GET,
    S_LINE_PUT,
    S_LINE_FORGET,
    S_ACCT_ENSURE,
    S_ACCT_GET,
    S_ACCT_SET,
    S_ACCT_PAUSE,
    S_LEASE_TAKE,
    S_LEASE_DROP,
    S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_CONN_UPSERT] =
        "INSERT INTO connections (" CONN_COLS ", tenant_id) VALUES "
        "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, "
        "?20, ?21, ?22, CASE WHEN ?24 = 0 THEN 1 ELSE ?24 END) "
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
        "stock_interval_s = excluded.stock_interval_s, tenant_id = CASE WHEN ?24 = 0 THEN "
        "connections.tenant_id ELSE ?24 END RETURNING id",
    [S_CONN_UPDATE] =
        "UPDATE connections SET platform = ?1, store_id = ?2, name = ?3, access_token = ?4, "
        "refresh_token = ?5, token_expires_at = ?6, webhook_secret = ?7, webhook_strategy = ?8, "
        "api_base = ?9, status = ?10, connected_at = ?11, qoyod_base = ?12, qoyod_api_key = ?13, "
        "inventory_id = ?14, payment_account_id = ?15, trigger_status = ?16, "
        "customer_per_invoice = ?17, number_by_order = ?18, financial_invoice = ?19, "
        "manager_token = ?20, stock_sync = ?21, stock_interval_s = ?22, tenant_id = CASE WHEN "
        "?24 = 0 THEN tenant_id ELSE ?24 END WHERE id = ?23",
    /* Tokens only, so a settings change and a refresh never undo each other. */
    [S_CONN_TOKENS] =
        "UPDATE connections SET access_token = ?2, refresh_token = ?3, manager_token = ?4, "
        "token_expires_at = ?5, status = ?6 WHERE id = ?1",
    /* Settings only (everything a merchant or operator changes by hand). */
    [S_CONN_SETTINGS] =
        "UPDATE connections SET name = ?2, qoyod_base = ?3, qoyod_api_key = ?4, inventory_id = ?5, "
        "payment_account_id = ?6, trigger_status = ?7, customer_per_invoice = ?8, "
        "number_by_order = ?9, financial_invoice = ?10, webhook_secret = ?11, "
        "webhook_strategy = ?12, api_base = ?13, stock_sync = ?14, stock_interval_s = ?15 "
        "WHERE id = ?1",
    [S_CONN_BY_ID] = "SELECT id, " CONN_COLS ", ref_prefix, tenant_id FROM connections WHERE id = ?1",
    [S_CONN_BY_KEY] = "SELECT id, " CONN_COLS ", ref_prefix, tenant_id FROM connections WHERE platform = ?1 "
                      "AND store_id = ?2",
    /* Reference prefixes (store_int.h conn_prefix_assign, conn_prefix_set).
     * "The same account": the same qoyod_base and sealed qoyod_api_key
     * (equal keys seal equal, store/secret.h). */
    [S_PREFIX_ASSIGN] =
        "UPDATE connections SET ref_prefix = (CASE platform WHEN 2 THEN 'Z' ELSE 'S' END) || id "
        "WHERE id = ?1 AND ref_prefix = '' AND COALESCE(qoyod_api_key, '') <> '' AND EXISTS ("
        "SELECT 1 FROM connections o WHERE o.id <> connections.id AND o.ref_prefix = '' AND "
        "COALESCE(o.qoyod_base, '') = COALESCE(connections.qoyod_base, '') AND "
        "o.qoyod_api_key = connections.qoyod_api_key)",
    [S_PREFIX_GET] = "SELECT ref_prefix FROM connections WHERE id = ?1",
    [S_PREFIX_SENT] = "SELECT COUNT(*) FROM orders WHERE conn_id = ?1 AND (xfer IN (1, 2) OR "
                      "qoyod_reference IS NOT NULL)",
    [S_PREFIX_OTHER] =
        "SELECT o.id FROM connections o JOIN connections me ON me.id = ?1 WHERE o.id <> me.id "
        "AND o.ref_prefix = ?2 AND COALESCE(o.qoyod_base, '') = COALESCE(me.qoyod_base, '') AND "
        "COALESCE(o.qoyod_api_key, '') = COALESCE(me.qoyod_api_key, '') ORDER BY o.id LIMIT 1",
    [S_PREFIX_SET] = "UPDATE connections SET ref_prefix = ?2 WHERE id = ?1",
    /* ON CONFLICT on the dedupe index only, rather than INSERT OR IGNORE:
     * OR IGNORE would also swallow a NOT NULL violation and report it as a
     * duplicate. changes() == 0 means the key was seen before. */
    [S_EVENT_INSERT] =
        "INSERT INTO events (conn_id, dedupe_key, event, order_id, received_at_ms, format, body) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (conn_id, order_id, dedupe_key) DO NOTHING",
    [S_JOB_UPSERT] = JOB_UPSERT_SQL,
    /* ?1 worker, ?2 now, ?3 lease_until, ?4 connections to skip (JSON),
     * ?5 per store, ?6 per account (<= 0: no limit). The counts run inside
     * the claim's write transaction, so they cannot go stale before it. */
    [S_JOB_CLAIM] =
        "UPDATE jobs SET lease_owner = ?1, lease_until_ms = ?3, attempts = attempts + 1, "
        "rerun = 0 WHERE id = (SELECT j.id FROM jobs j JOIN connections c ON c.id = j.conn_id "
        "WHERE j.run_after_ms <= ?2 AND (j.lease_owner IS NULL OR j.lease_until_ms < ?2) AND "
        "(?4 IS NULL OR j.conn_id NOT IN (SELECT value FROM json_each(?4))) AND "
        "(?5 <= 0 OR (SELECT COUNT(*) FROM jobs r WHERE r.conn_id = j.conn_id AND "
        "  r.lease_owner IS NOT NULL AND r.lease_until_ms >= ?2) < ?5) AND "
        "(?6 <= 0 OR (SELECT COUNT(*) FROM jobs r JOIN connections rc ON rc.id = r.conn_id "
        "  WHERE r.lease_owner IS NOT NULL AND r.lease_until_ms >= ?2 AND "
        "  COALESCE(rc.qoyod_base, '') = COALESCE(c.qoyod_base, '') AND "
        "  COALESCE(rc.qoyod_api_key, '') = COALESCE(c.qoyod_api_key, '')) < ?6) AND "
        "NOT EXISTS (SELECT 1 FROM accounts a WHERE a.qoyod_base = COALESCE(c.qoyod_base, '') "
        "  AND a.qoyod_api_key = COALESCE(c.qoyod_api_key, '') AND a.paused_until_ms > ?2) "
        "ORDER BY j.run_after_ms, j.id LIMIT 1) "
        "RETURNING id, conn_id, order_id, attempts, run_after_ms, manual",
    /* The account row of connection ?1 (made on first use). */
    [S_ACCT_ENSURE] =
        "INSERT INTO accounts (qoyod_base, qoyod_api_key) SELECT COALESCE(qoyod_base, ''), "
        "COALESCE(qoyod_api_key, '') FROM connections WHERE id = ?1 ON CONFLICT DO NOTHING",
    [S_ACCT_GET] =
        "SELECT a.milli_tokens, a.refilled_ms, a.paused_until_ms FROM accounts a JOIN "
        "connections c ON a.qoyod_base = COALESCE(c.qoyod_base, '') AND "
        "a.qoyod_api_key = COALESCE(c.qoyod_api_key, '') WHERE c.id = ?1",
    [S_ACCT_SET] =
        "UPDATE accounts SET milli_tokens = ?2, refilled_ms = ?3 WHERE (qoyod_base, "
        "qoyod_api_key) = (SELECT COALESCE(qoyod_base, ''), COALESCE(qoyod_api_key, '') FROM "
        "connections WHERE id = ?1)",
    [S_ACCT_PAUSE] =
        "INSERT INTO accounts (qoyod_base, qoyod_api_key, paused_until_ms) SELECT "
        "COALESCE(qoyod_base, ''), COALESCE(qoyod_api_key, ''), ?2 FROM connections WHERE id = ?1 "
        "ON CONFLICT (qoyod_base, qoyod_api_key) DO UPDATE SET paused_until_ms = "
        "MAX(paused_until_ms, excluded.paused_until_ms)",
    /* ?1 name, ?2 owner, ?3 until, ?4 now: a row comes back when owner holds it. */
    [S_LEASE_TAKE] =
        "INSERT INTO leases (name, owner, until_ms) VALUES (?1, ?2, ?3) ON CONFLICT (name) DO "
        "UPDATE SET owner = excluded.owner, until_ms = excluded.until_ms WHERE "
        "leases.owner = excluded.owner OR leases.until_ms < ?4 RETURNING owner",
    [S_LEASE_DROP] = "DELETE FROM leases WHERE name = ?1 AND owner = ?2",
    /* ?3 / ?4 / ?2: the lease owner the write is fenced by (NULL: any). */
    [S_JOB_DELETE] = "DELETE FROM jobs WHERE id = ?1 AND rerun = 0 AND "
                     "(?3 IS NULL OR lease_owner = ?3)",
    [S_JOB_RERUN] = "UPDATE jobs SET lease_owner = NULL, lease_until_ms = 0, rerun = 0, "
                    "attempts = 0, last_error = NULL, run_after_ms = ?2 WHERE id = ?1 AND "
                    "(?3 IS NULL OR lease_owner = ?3)",
    [S_JOB_RETRY] = "UPDATE jobs SET lease_owner = NULL, lease_until_ms = 0, rerun = 0, "
                    "run_after_ms = ?2, last_error = ?3, attempts = MAX(attempts - ?5, 0) "
                    "WHERE id = ?1 AND (?4 IS NULL OR lease_owner = ?4)",
    [S_JOB_RENEW] = "UPDATE jobs SET lease_until_ms = ?3 WHERE id = ?1 AND lease_owner = ?2",
    [S_JOB_EXISTS] = "SELECT COUNT(*) FROM jobs WHERE id = ?1",
    [S_JOB_COUNT] = "SELECT COUNT(*) FROM jobs",
    [S_JOB_MANUAL] = "UPDATE jobs SET manual = 1 WHERE conn_id = ?1 AND order_id = ?2",
    [S_ORDER_GET] = "SELECT " ORDER_COLS " FROM orders WHERE conn_id = ?1 AND order_id = ?2",
    [S_ORDER_PUT] =
        "INSERT INTO orders (" ORDER_COLS ") VALUES "
        "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19) "
        "ON CONFLICT (conn_id, order_id) DO UPDATE SET number = excluded.number, status = "
        "excluded.status, xfer = excluded.xfer, reason_code = excluded.reason_code, reason = "
        "excluded.reason, attempts = excluded.attempts, total = excluded.total, qoyod_total = "
        "excluded.qoyod_total, qoyod_invoice_id = excluded.qoyod_invoice_id, qoyod_reference = "
        "excluded.qoyod_reference, qoyod_payment_id = excluded.qoyod_payment_id, created_at = "
        "excluded.created_at, updated_at = excluded.updated_at, transferred_at = "
        "excluded.transferred_at, tax = excluded.tax, credit = excluded.credit, credited = "
        "excluded.credited",
    /* S_ORDER_PUT fenced by the lease of job ?20 (owner ?21): one statement,
     * so the check and the write are one step under SQLite's write lock.
     * (The WHERE also keeps the upsert's ON CONFLICT from parsing as a join.) */
    [S_ORDER_PUT_AS] =
        "INSERT INTO orders (" ORDER_COLS ") SELECT "
        "?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19 "
        "WHERE EXISTS (SELECT 1 FROM jobs WHERE id = ?20 AND lease_owner = ?21) "
        "ON CONFLICT (conn_id, order_id) DO UPDATE SET number = excluded.number, status = "
        "excluded.status, xfer = excluded.xfer, reason_code = excluded.reason_code, reason = "
        "excluded.reason, attempts = excluded.attempts, total = excluded.total, qoyod_total = "
        "excluded.qoyod_total, qoyod_invoice_id = excluded.qoyod_invoice_id, qoyod_reference = "
        "excluded.qoyod_reference, qoyod_payment_id = excluded.qoyod_payment_id, created_at = "
        "excluded.created_at, updated_at = excluded.updated_at, transferred_at = "
        "excluded.transferred_at, tax = excluded.tax, credit = excluded.credit, credited = "
        "excluded.credited",
    [S_ORDER_ADD] = "INSERT INTO orders (" ORDER_COLS ") VALUES "
                    "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, "
                    "?17, ?18, ?19) ON CONFLICT (conn_id, order_id) DO NOTHING",
    /* ?1 conn, ?2 xfer, ?3 tenant, ?4..?5 created_at range (store_order_bounds:
     * the index orders_by_created is read from the page's start), ?6 text,
     * ?7 past a key (?8, ?9, ?10), ?11 limit (-1: none). */
#define ORDER_WHERE                                                                                \
    " FROM orders WHERE (?1 = 0 OR conn_id = ?1) AND (?2 < 0 OR xfer = ?2) AND (?3 = 0 OR "        \
    "conn_id IN (SELECT id FROM connections WHERE tenant_id = ?3)) AND created_at BETWEEN ?4 AND " \
    "?5 AND (?6 IS NULL OR instr(CAST(order_id AS TEXT), ?6) > 0 OR "                            \
    "instr(lower(COALESCE(number, '')), lower(?6)) > 0) AND (?7 = 0 OR (created_at, order_id, "   \
    "conn_id) "
    [S_ORDER_LIST] = "SELECT " ORDER_COLS ORDER_WHERE "> (?8, ?9, ?10)) "
                     "ORDER BY created_at, order_id, conn_id LIMIT ?11",
    [S_ORDER_LIST_DESC] = "SELECT " ORDER_COLS ORDER_WHERE "< (?8, ?9, ?10)) "
                          "ORDER BY created_at DESC, order_id DESC, conn_id DESC LIMIT ?11",
#undef ORDER_WHERE
    [S_NOTE] = "INSERT INTO order_history (conn_id, order_id, ts_ms, what, detail) "
               "VALUES (?1, ?2, ?3, ?4, ?5)",
    [S_HISTORY] = "SELECT ts_ms, what, detail FROM order_history WHERE conn_id = ?1 AND "
                  "order_id = ?2 ORDER BY id",
    [S_USER_PUT] = "INSERT INTO users (name, hash, updated_at_ms, tenant_id) VALUES (?1, ?2, ?3, "
                   "CASE WHEN ?4 = 0 THEN 1 ELSE ?4 END) "
                   "ON CONFLICT (name) DO UPDATE SET hash = excluded.hash, "
                   "updated_at_ms = excluded.updated_at_ms, tenant_id = CASE WHEN ?4 = 0 THEN "
                   "users.tenant_id ELSE ?4 END",
    [S_USER_GET] = "SELECT hash, tenant_id FROM users WHERE name = ?1",
    [S_TENANT_ADD] = "INSERT INTO tenants (name, created_at_ms) VALUES (?1, ?2) RETURNING id",
    [S_TENANT_GET] = "SELECT id, name, created_at_ms FROM tenants WHERE (?2 IS NULL AND id = ?1) "
                     "OR name = ?2",
    [S_TENANT_LIST] = "SELECT id, name, created_at_ms FROM tenants ORDER BY id",
    [S_TOKEN_ADD] = "INSERT INTO api_tokens (tenant_id, digest, label, created_at_ms) VALUES "
                    "(?1, ?2, ?3, ?4) RETURNING id",
    [S_TOKEN_FIND] = "SELECT id, tenant_id, label, created_at_ms FROM api_tokens WHERE digest = ?1",
    [S_TOKEN_LIST] = "SELECT id, tenant_id, label, created_at_ms FROM api_tokens WHERE ?1 = 0 OR "
                     "tenant_id = ?1 ORDER BY id",
    [S_TOKEN_REVOKE] = "DELETE FROM api_tokens WHERE id = ?1",
    [S_TOKEN_COUNT] = "SELECT COUNT(*) FROM api_tokens",
    [S_USER_COUNT] = "SELECT COUNT(*) FROM users",
    [S_USER_LIST] = "SELECT name, tenant_id, updated_at_ms FROM users WHERE ?1 = 0 OR "
                    "tenant_id = ?1 ORDER BY name",
    [S_USER_DELETE] = "DELETE FROM users WHERE name = ?1",
    [S_MAP_GET] = "SELECT qoyod_id FROM mappings WHERE conn_id = ?1 AND kind = ?2 AND key = ?3",
    [S_MAP_PUT] = "INSERT INTO mappings (conn_id, kind, key, qoyod_id, updated_at_ms) "
                  "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (conn_id, kind, key) DO UPDATE SET "
                  "qoyod_id = excluded.qoyod_id, updated_at_ms = excluded.updated_at_ms",
    [S_STOCK_GET] = "SELECT qoyod_product_id, qoyod_qty, has_qty, store_untracked, pushed_at_ms, "
                    "read_ms FROM stock WHERE conn_id = ?1 AND sku = ?2",
    /* ?3 before_ms, ?4 pushed_at_ms, ?5 pending movements begun before this
     * are abandoned (never settled) and hold nothing back. */
    [S_STOCK_OWN_SUM] =
        "SELECT COALESCE(SUM(CASE WHEN settled_ms > 0 AND settled_ms < ?3 THEN delta END), 0), "
        "COALESCE(SUM(CASE WHEN settled_ms > 0 AND settled_ms < ?3 AND origin_ms < ?4 "
        "THEN delta END), 0), "
        "COALESCE(SUM(CASE WHEN (settled_ms = 0 AND begun_ms >= ?5) OR settled_ms >= ?3 "
        "THEN 1 END), 0) FROM stock_own WHERE conn_id = ?1 AND sku = ?2",
    [S_STOCK_PUT] =
        "INSERT INTO stock (conn_id, sku, qoyod_product_id, qoyod_qty, has_qty, store_untracked, "
        "pushed_at_ms, read_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (conn_id, sku) "
        "DO UPDATE SET qoyod_product_id = excluded.qoyod_product_id, qoyod_qty = "
        "excluded.qoyod_qty, has_qty = excluded.has_qty, store_untracked = "
        "excluded.store_untracked, pushed_at_ms = excluded.pushed_at_ms, read_ms = "
        "excluded.read_ms",
    [S_STOCK_CONSUME] = "DELETE FROM stock_own WHERE conn_id = ?1 AND sku = ?2 AND "
                        "settled_ms > 0 AND settled_ms < ?3",
    [S_STOCK_UNTRACKED] =
        "INSERT INTO stock (conn_id, sku, store_untracked) VALUES (?1, ?2, ?3) "
        "ON CONFLICT (conn_id, sku) DO UPDATE SET store_untracked = excluded.store_untracked",
    [S_OWN_CLEAR] = "DELETE FROM stock_own WHERE conn_id = ?1 AND ref = ?2",
    [S_OWN_ADD] = "INSERT INTO stock_own (conn_id, ref, sku, delta, origin_ms, begun_ms) "
                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (conn_id, ref, sku) DO UPDATE "
                  "SET delta = delta + excluded.delta",
    [S_OWN_APPLY] = "UPDATE stock_own SET settled_ms = ?3 WHERE conn_id = ?1 AND ref = ?2 AND "
                    "settled_ms = 0",
    [S_OWN_DROP] = "DELETE FROM stock_own WHERE conn_id = ?1 AND ref = ?2 AND settled_ms = 0",
    [S_LINE_NOTE] = "INSERT INTO stock_lines (conn_id, sku, order_id, units, created_ms) "
                    "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (conn_id, sku, order_id) DO UPDATE "
                    "SET units = excluded.units, created_ms = excluded.created_ms",
    [S_LINE_SUM] = "SELECT COALESCE(SUM(units), 0) FROM stock_lines WHERE conn_id = ?1 AND "
                   "sku = ?2 AND created_ms < ?3",
    [S_LINE_MARK] = "UPDATE stock_lines SET mark = CASE WHEN created_ms < ?3 THEN 1 ELSE 0 END "
                    "WHERE conn_id = ?1 AND sku = ?2",
    [S_LINE_GET] = "SELECT units, created_ms, mark, fix_from, fix_to FROM stock_lines WHERE "
                   "conn_id = ?1 AND sku = ?2 AND order_id = ?3",
    [S_LINE_PUT] = "INSERT INTO stock_lines (conn_id, sku, order_id, units, created_ms, mark, "
                   "fix_from, fix_to) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT "
                   "(conn_id, sku, order_id) DO UPDATE SET units = excluded.units, created_ms = "
                   "excluded.created_ms, mark = excluded.mark, fix_from = excluded.fix_from, "
                   "fix_to = excluded.fix_to",
    [S_LINE_FORGET] = "DELETE FROM stock_lines WHERE conn_id = ?1 AND order_id = ?2",
};

/* ---------------------------------------------------------------------- */
/* The handle */

/* One queued ingest: a store_event_ingest call (on its caller's stack) or a
 * store_event_ingest_async one (allocated, freed after its callback). */
struct ingest_req {
    int64_t conn_id;
    const char *key, *event;
    int64_t order_id;
    const char *body;
    size_t len;
    int64_t now_ms;
    struct th_err *err; /* the caller's, or own_err; written by the committer */
    int duplicate;
    int rc;
    sem_t done; /* sync: posted by the committer once rc, duplicate and err are set */
    store_ingest_done_fn done_fn; /* async: called instead */
    void *done_arg;
    struct th_err own_err;
    struct ingest_req *next;
};

struct sq {
    struct store base; /* first: store.c sees only this */
    char *path;
    sqlite3 *db;
    sqlite3_stmt *st[S_COUNT];
    pthread_mutex_t db_mu; /* the connection and every statement */
    /* group commit: the queue and its committer thread, all under q_mu */
    pthread_mutex_t q_mu;
    pthread_cond_t q_cv; /* signalled when the queue gets work, or on close */
    struct ingest_req *q_head, **q_tail;
    int committer_on; /* the thread was started (on the first ingest) */
    int committer_idle; /* it waits on q_cv */
    int closing;
    pthread_t committer;
};

static struct sq *sq_of(struct store *s)
{
    return (struct sq *)s;
}

/* ---------------------------------------------------------------------- */
/* Errors */

/* Maps SQLite result code src of the operation described by fmt to a TH_E*
 * code and fills err. Call with db_mu held, before anything else runs on the
 * connection (sqlite3_errmsg describes the most recent call). */
static int fail(struct sq *q, int src, struct th_err *err, const char *fmt, ...) TH_PRINTF(4, 5);
static int fail(struct sq *q, int src, struct th_err *err, const char *fmt, ...)
{
    char op[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(op, sizeof op, fmt, ap);
    va_end(ap);
    switch (src & 0xff) {
    case SQLITE_FULL:
        return th_err_set(err, TH_EDISKFULL, "%s: the disk holding the database %s is full", op,
                          q->path);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return th_err_set(err, TH_EDB,
                          "%s: the database %s is busy (another process held it locked for %d "
                          "ms); retry",
                          op, q->path, STORE_SQLITE_BUSY_MS);
    case SQLITE_CONSTRAINT:
        if (src == SQLITE_CONSTRAINT_FOREIGNKEY)
            return th_err_set(err, TH_ENOTFOUND, "%s: no such connection", op);
        if (src == SQLITE_CONSTRAINT_UNIQUE || src == SQLITE_CONSTRAINT_PRIMARYKEY)
            return th_err_set(err, TH_ECONFLICT, "%s: the record already exists (%s)", op,
                              sqlite3_errmsg(q->db));
        break;
    default:
        break;
    }
    return th_err_set(err, TH_EDB, "%s: %s (database %s)", op, sqlite3_errmsg(q->db), q->path);
}

/* ---------------------------------------------------------------------- */
/* Statement helpers (db_mu held) */

/* Clears a cached statement for its next use. */
static void done_with(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Steps st to completion (no rows expected). Returns the SQLite code. */
static int run(sqlite3_stmt *st)
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
    }
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Runs one of the statements that take no parameters (BEGIN, COMMIT, ...). */
static int plain(struct sq *q, enum stmt which)
{
    int rc = run(q->st[which]);
    sqlite3_reset(q->st[which]);
    return rc;
}

/* Rolls back the open transaction, if SQLite has not already done so. */
static void rollback(struct sq *q)
{
    if (!sqlite3_get_autocommit(q->db)) (void)plain(q, S_ROLLBACK);
}

/* Binds a string, NULL as SQL NULL. The string must outlive the step. */
static void bind_str(sqlite3_stmt *st, int i, const char *v)
{
    sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
}

/* A new copy of a text column, NULL for SQL NULL. */
static char *col_str(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? xstrdup((const char *)t) : NULL;
}

/* Starts a write transaction; on failure err is filled. */
static int begin(struct sq *q, struct th_err *err, const char *op)
{
    int rc = plain(q, S_BEGIN);
    return rc ? fail(q, rc, err, "%s: begin", op) : 0;
}

/* Commits; on failure rolls back and fills err. */
static int commit(struct sq *q, struct th_err *err, const char *op)
{
    int rc = plain(q, S_COMMIT);
    if (rc == SQLITE_OK) return 0;
    int code = fail(q, rc, err, "%s: commit", op);
    rollback(q);
    return code;
}

/* ---------------------------------------------------------------------- */
/* Open and close */

static void sq_free(struct sq *q)
{
    pthread_mutex_lock(&q->q_mu);
    int joined = q->committer_on;
    q->closing = 1;
    pthread_cond_signal(&q->q_cv);
    pthread_mutex_unlock(&q->q_mu);
    if (joined) pthread_join(q->committer, NULL);
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(q->st[i]);
    if (q->db) sqlite3_close_v2(q->db);
    pthread_mutex_destroy(&q->db_mu);
    pthread_mutex_destroy(&q->q_mu);
    pthread_cond_destroy(&q->q_cv);
    free(q->path);
    free(q);
}

/* Errors while the file is being opened or set up mean the path is wrong or
 * unusable (missing directory, read-only place, not a database): say so. */
static int open_fail(struct sq *q, int src, struct th_err *err, const char *what)
{
    const char *msg = q->db ? sqlite3_errmsg(q->db) : sqlite3_errstr(src);
    switch (src & 0xff) {
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_READONLY:
    case SQLITE_IOERR:
    case SQLITE_AUTH:
        return th_err_set(err, TH_EIO,
                          "cannot %s the database %s: %s (does the directory exist, and may "
                          "tarheel write there?)",
                          what, q->path, msg);
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
        return th_err_set(err, TH_EDB, "cannot %s the database %s: %s (is it a tarheel database?)",
                          what, q->path, msg);
    default:
        return fail(q, src, err, "cannot %s the database", what);
    }
}

/* Runs one PRAGMA (or other SQL without results that matter). */
static int pragma(struct sq *q, const char *sql, struct th_err *err)
{
    int rc = sqlite3_exec(q->db, sql, NULL, NULL, NULL);
    return rc ? open_fail(q, rc, err, "set up") : 0;
}

/* Reads an integer-valued PRAGMA into *v. */
static int pragma_int(struct sq *q, const char *sql, int64_t *v, struct th_err *err)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(q->db, sql, -1, &st, NULL);
    if (rc) return open_fail(q, rc, err, "read");
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *v = sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    }
    int code = rc == SQLITE_OK || rc == SQLITE_DONE ? 0 : open_fail(q, rc, err, "read");
    sqlite3_finalize(st);
    return code;
}

/* Turns on WAL and checks it stuck (it cannot on some file systems). */
static int set_wal(struct sq *q, struct th_err *err)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(q->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
    if (rc) return open_fail(q, rc, err, "set up");
    rc = sqlite3_step(st);
    int code = 0;
    if (rc != SQLITE_ROW) {
        code = open_fail(q, rc, err, "set up");
    } else {
        const unsigned char *mode = sqlite3_column_text(st, 0);
        if (!mode || strcmp((const char *)mode, "wal") != 0)
            code = th_err_set(err, TH_EDB,
                              "the database %s cannot use write-ahead logging (journal mode "
                              "stayed '%s'); put it on a local file system",
                              q->path, mode ? (const char *)mode : "?");
    }
    sqlite3_finalize(st);
    return code;
}

/* Applies the migrations the file lacks, all in one transaction. */
static int migrate(struct sq *q, struct th_err *err)
{
    int64_t v = 0;
    int rc = pragma_int(q, "PRAGMA user_version", &v, err);
    if (rc) return rc;
    if (v == STORE_SQLITE_SCHEMA_VERSION) return 0;
    if (v > STORE_SQLITE_SCHEMA_VERSION || v < 0)
        return th_err_set(err, TH_ECONFIG,
                          "the database %s has schema version %lld but this tarheel knows only "
                          "up to %d; run a newer tarheel",
                          q->path, (long long)v, STORE_SQLITE_SCHEMA_VERSION);
    if ((rc = sqlite3_exec(q->db, "BEGIN IMMEDIATE", NULL, NULL, NULL)) != SQLITE_OK)
        return open_fail(q, rc, err, "migrate");
    /* Another process may have migrated between our read and our lock. */
    if ((rc = pragma_int(q, "PRAGMA user_version", &v, err)) != 0) goto out;
    for (; v < STORE_SQLITE_SCHEMA_VERSION; v++) {
        int src = sqlite3_exec(q->db, migrations[v], NULL, NULL, NULL);
        if (src) {
            rc = fail(q, src, err, "schema migration %lld", (long long)v + 1);
            goto out;
        }
    }
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", STORE_SQLITE_SCHEMA_VERSION);
    int src = sqlite3_exec(q->db, sql, NULL, NULL, NULL);
    if (!src) src = sqlite3_exec(q->db, "COMMIT", NULL, NULL, NULL);
    if (src) rc = fail(q, src, err, "schema migration: commit");
out:
    if (rc && !sqlite3_get_autocommit(q->db)) sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* Test builds only: TH_TEST_STORE_MAX_PAGES caps the file's size in pages,
 * so tests can make the "disk" fill up (STYLE C15). */
static int test_knobs(struct sq *q, struct th_err *err)
{
#ifdef TH_TEST_BUILD
    const char *v = getenv("TH_TEST_STORE_MAX_PAGES");
    if (v && *v) {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA max_page_count = %ld", strtol(v, NULL, 10));
        return pragma(q, sql, err);
    }
#endif
    return 0;
}

int store_test_max_pages(struct store *s, int64_t pages, int64_t *cap, struct th_err *err)
{
    if (!s || s->ops != &store_sqlite_ops)
        return th_err_set(err, TH_ECONFIG, "store_test_max_pages: not an SQLite store");
    struct sq *q = sq_of(s);
    /* 4294967294 is SQLite's largest page number (SQLITE_MAX_PAGE_COUNT). */
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA max_page_count = %lld",
             pages > 0 ? (long long)pages : 4294967294LL);
    pthread_mutex_lock(&q->db_mu);
    int64_t v = 0;
    int rc = pragma_int(q, sql, &v, err);
    pthread_mutex_unlock(&q->db_mu);
    if (!rc && cap) *cap = v;
    return rc;
}

static int sq_open(struct store **out, const char *location, struct th_err *err)
{
    struct sq *q = xcalloc(1, sizeof *q);
    q->path = xstrdup(location);
    pthread_mutex_init(&q->db_mu, NULL);
    pthread_mutex_init(&q->q_mu, NULL);
    pthread_cond_init(&q->q_cv, NULL);
    q->q_tail = &q->q_head;

    int rc = sqlite3_open_v2(
        location, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc) {
        rc = open_fail(q, rc, err, "open");
        goto fail;
    }
    sqlite3_extended_result_codes(q->db, 1);
    sqlite3_busy_timeout(q->db, STORE_SQLITE_BUSY_MS);
    if ((rc = set_wal(q, err)) || (rc = pragma(q, "PRAGMA synchronous=FULL", err)) ||
        (rc = pragma(q, "PRAGMA foreign_keys=ON", err)) || (rc = test_knobs(q, err)) ||
        (rc = migrate(q, err)))
        goto fail;
    for (int i = 0; i < S_COUNT; i++) {
        int src =
            sqlite3_prepare_v3(q->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &q->st[i], NULL);
        if (src) {
            rc = fail(q, src, err, "prepare statement %d", i);
            goto fail;
        }
    }
    *out = &q->base;
    return 0;
fail:
    sq_free(q);
    return rc;
}

static void sq_close(struct store *s)
{
    sq_free(sq_of(s));
}

/* ---------------------------------------------------------------------- */
/* Connections */

static void bind_conn(sqlite3_stmt *st, const struct store_conn *c)
{
    sqlite3_bind_int(st, 1, (int)c->platform);
    sqlite3_bind_int64(st, 2, c->store_id);
    bind_str(st, 3, c->name);
    bind_str(st, 4, c->access_token);
    bind_str(st, 5, c->refresh_token);
    sqlite3_bind_int64(st, 6, c->token_expires_at);
    bind_str(st, 7, c->webhook_secret);
    bind_str(st, 8, c->webhook_strategy);
    bind_str(st, 9, c->api_base);
    bind_str(st, 10, c->status);
    sqlite3_bind_int64(st, 11, c->connected_at);
    bind_str(st, 12, c->qoyod_base);
    bind_str(st, 13, c->qoyod_api_key);
    sqlite3_bind_int64(st, 14, c->inventory_id);
    sqlite3_bind_int64(st, 15, c->payment_account_id);
    sqlite3_bind_int(st, 16, (int)c->trigger);
    sqlite3_bind_int(st, 17, c->customer_per_invoice);
    sqlite3_bind_int(st, 18, c->number_by_order);
    sqlite3_bind_int(st, 19, c->financial_invoice);
    bind_str(st, 20, c->manager_token);
    sqlite3_bind_int(st, 21, c->stock_sync);
    sqlite3_bind_int64(st, 22, c->stock_interval_s);
    sqlite3_bind_int64(st, 24, c->tenant_id);
}

/* Reads "id, CONN_COLS, ref_prefix, tenant_id" from the current row. */
static void read_conn(sqlite3_stmt *st, struct store_conn *c)
{
    c->id = sqlite3_column_int64(st, 0);
    c->platform = (enum model_platform)sqlite3_column_int(st, 1);
    c->store_id = sqlite3_column_int64(st, 2);
    c->name = col_str(st, 3);
    c->access_token = col_str(st, 4);
    c->refresh_token = col_str(st, 5);
    c->token_expires_at = sqlite3_column_int64(st, 6);
    c->webhook_secret = col_str(st, 7);
    c->webhook_strategy = col_str(st, 8);
    c->api_base = col_str(st, 9);
    c->status = col_str(st, 10);
    c->connected_at = sqlite3_column_int64(st, 11);
    c->qoyod_base = col_str(st, 12);
    c->qoyod_api_key = col_str(st, 13);
    c->inventory_id = sqlite3_column_int64(st, 14);
    c->payment_account_id = sqlite3_column_int64(st, 15);
    c->trigger = (enum model_status)sqlite3_column_int(st, 16);
    c->customer_per_invoice = sqlite3_column_int(st, 17);
    c->number_by_order = sqlite3_column_int(st, 18);
    c->financial_invoice = sqlite3_column_int(st, 19);
    c->manager_token = col_str(st, 20);
    c->stock_sync = sqlite3_column_int(st, 21);
    c->stock_interval_s = sqlite3_column_int64(st, 22);
    c->ref_prefix = col_str(st, 23);
    c->tenant_id = sqlite3_column_int64(st, 24);
}

static int sq_conn_put(struct store *s, struct store_conn *c, struct th_err *err)
{
    struct sq *q = sq_of(s);
    int code = 0;
    pthread_mutex_lock(&q->db_mu);
    if (c->id == 0) {
        sqlite3_stmt *st = q->st[S_CONN_UPSERT];
        bind_conn(st, c);
        int rc = sqlite3_step(st);
        int64_t id = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
        if (rc == SQLITE_ROW)
            rc = run(st);
        else if (rc == SQLITE_DONE)
            rc = SQLITE_INTERNAL; /* RETURNING always gives a row */
        if (rc)
            code = fail(q, rc, err, "save connection for %s store %lld",
                        model_platform_name(c->platform), (long long)c->store_id);
        else
            c->id = id;
        done_with(st);
    } else {
        sqlite3_stmt *st = q->st[S_CONN_UPDATE];
        bind_conn(st, c);
        sqlite3_bind_int64(st, 23, c->id);
        int rc = run(st);
        if (rc)
            code = fail(q, rc, err, "update connection %lld (%s store %lld)", (long long)c->id,
                        model_platform_name(c->platform), (long long)c->store_id);
        else if (sqlite3_changes(q->db) == 0)
            code =
                th_err_set(err, TH_ENOTFOUND, "connection %lld does not exist", (long long)c->id);
        done_with(st);
    }
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

static int conn_update(struct sq *q, sqlite3_stmt *st, const struct store_conn *c,
                       struct th_err *err, const char *what)
{
    int rc = run(st);
    int code = 0;
    if (rc)
        code = fail(q, rc, err, "save the %s of connection %lld", what, (long long)c->id);
    else if (sqlite3_changes(q->db) == 0)
        code = th_err_set(err, TH_ENOTFOUND, "connection %lld does not exist", (long long)c->id);
    done_with(st);
    return code;
}

static int sq_conn_put_tokens(struct store *s, const struct store_conn *c, struct th_err *err)
{
    struct sq *q = sq_of(s);
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = q->st[S_CONN_TOKENS];
    sqlite3_bind_int64(st, 1, c->id);
    bind_str(st, 2, c->access_token);
    bind_str(st, 3, c->refresh_token);
    bind_str(st, 4, c->manager_token);
    sqlite3_bind_int64(st, 5, c->token_expires_at);
    bind_str(st, 6, c->status);
    int code = conn_update(q, st, c, err, "tokens");
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

static int sq_conn_put_settings(struct store *s, const struct store_conn *c, struct th_err *err)
{
    struct sq *q = sq_of(s);
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = q->st[S_CONN_SETTINGS];
    sqlite3_bind_int64(st, 1, c->id);
    bind_str(st, 2, c->name);
    bind_str(st, 3, c->qoyod_base);
    bind_str(st, 4, c->qoyod_api_key);
    sqlite3_bind_int64(st, 5, c->inventory_id);
    sqlite3_bind_int64(st, 6, c->payment_account_id);
    sqlite3_bind_int(st, 7, (int)c->trigger);
    sqlite3_bind_int(st, 8, c->customer_per_invoice);
    sqlite3_bind_int(st, 9, c->number_by_order);
    sqlite3_bind_int(st, 10, c->financial_invoice);
    bind_str(st, 11, c->webhook_secret);
    bind_str(st, 12, c->webhook_strategy);
    bind_str(st, 13, c->api_base);
    sqlite3_bind_int(st, 14, c->stock_sync);
    sqlite3_bind_int64(st, 15, c->stock_interval_s);
    int code = conn_update(q, st, c, err, "settings");
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

/* One int64 column of a one-row query (0 when no row); *v set. */
static int step_i64(sqlite3_stmt *st, int64_t *v)
{
    int rc = sqlite3_step(st);
    *v = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int sq_conn_prefix_assign(struct store *s, int64_t id, char **prefix, struct th_err *err)
{
    struct sq *q = sq_of(s);
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = q->st[S_PREFIX_ASSIGN];
    sqlite3_bind_int64(st, 1, id);
    int rc = run(st);
    int code = rc ? fail(q, rc, err, "give connection %lld its reference prefix", (long long)id)
                  : 0;
    done_with(st);
    if (!code) {
        st = q->st[S_PREFIX_GET];
        sqlite3_bind_int64(st, 1, id);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            *prefix = col_str(st, 0);
        else if (rc == SQLITE_DONE)
            code = th_err_set(err, TH_ENOTFOUND, "connection %lld does not exist", (long long)id);
        else
            code = fail(q, rc, err, "read the reference prefix of connection %lld", (long long)id);
        done_with(st);
    }
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

static int sq_conn_prefix_set(struct store *s, int64_t id, const char *from, const char *to,
                              int64_t *sent, int64_t *other, struct th_err *err)
{
    struct sq *q = sq_of(s);
    char op[96];
    snprintf(op, sizeof op, "change the reference prefix of connection %lld", (long long)id);
    *sent = *other = 0;
    pthread_mutex_lock(&q->db_mu);
    int code = begin(q, err, op);
    if (code) goto out;
    sqlite3_stmt *st = q->st[S_PREFIX_GET];
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        code = th_err_set(err, TH_ENOTFOUND, "connection %lld does not exist", (long long)id);
    else if (rc != SQLITE_ROW)
        code = fail(q, rc, err, "%s", op);
    else if (strcmp((const char *)sqlite3_column_text(st, 0), from) != 0)
        code = th_err_set(err, TH_ECONFLICT,
                          "%s: it was changed meanwhile (read the settings again)", op);
    done_with(st);
    if (!code) {
        st = q->st[S_PREFIX_SENT];
        sqlite3_bind_int64(st, 1, id);
        if ((rc = step_i64(st, sent)) != 0) code = fail(q, rc, err, "%s", op);
        done_with(st);
    }
    if (!code) {
        st = q->st[S_PREFIX_OTHER];
        sqlite3_bind_int64(st, 1, id);
        bind_str(st, 2, to);
        if ((rc = step_i64(st, other)) != 0) code = fail(q, rc, err, "%s", op);
        done_with(st);
    }
    if (!code && !*sent && !*other) {
        st = q->st[S_PREFIX_SET];
        sqlite3_bind_int64(st, 1, id);
        bind_str(st, 2, to);
        if ((rc = run(st)) != 0) code = fail(q, rc, err, "%s", op);
        done_with(st);
    }
    if (code)
        rollback(q);
    else
        code = commit(q, err, op);
out:
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

/* Runs a bound connection query and fills out from its one row. */
static int conn_query(struct sq *q, sqlite3_stmt *st, struct store_conn *out, struct th_err *err,
                      const char *what)
{
    int rc = sqlite3_step(st);
    int code = 0;
    if (rc == SQLITE_ROW)
        read_conn(st, out);
    else if (rc == SQLITE_DONE)
        code = th_err_set(err, TH_ENOTFOUND, "%s is not connected to tarheel", what);
    else
        code = fail(q, rc, err, "read %s", what);
    done_with(st);
    return code;
}

static int sq_conn_get(struct store *s, int64_t id, struct store_conn *out, struct th_err *err)
{
    struct sq *q = sq_of(s);
    char what[64];
    snprintf(what, sizeof what, "connection %lld", (long long)id);
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = q->st[S_CONN_BY_ID];
    sqlite3_bind_int64(st, 1, id);
    int code = conn_query(q, st, out, err, what);
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

static int sq_conn_find(struct store *s, enum model_platform p, int64_t store_id,
                        struct store_conn *out, struct th_err *err)
{
    struct sq *q = sq_of(s);
    char what[64];
    snprintf(what, sizeof what, "%s store %lld", model_platform_name(p), (long long)store_id);
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = q->st[S_CONN_BY_KEY];
    sqlite3_bind_int(st, 1, (int)p);
    sqlite3_bind_int64(st, 2, store_id);
    int code = conn_query(q, st, out, err, what);
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

/* ---------------------------------------------------------------------- */
/* Intake, with group commit (design notes at the top) */

/* Queues (or refreshes) the job for an order, at run_after = now_ms. */
static int job_upsert(struct sq *q, int64_t conn_id, int64_t order_id, int64_t now_ms)
{
    sqlite3_stmt *st = q->st[S_JOB_UPSERT];
    sqlite3_bind_int64(st, 1, conn_id);
    sqlite3_bind_int64(st, 2, order_id);
    sqlite3_bind_int64(st, 3, now_ms);
    int rc = run(st);
    done_with(st);
    return rc;
}

/* Writes one request's event and job inside the open transaction. Returns
 * the SQLite code; *dup is set when the dedupe key was seen before. */
static int ingest_one(struct sq *q, const struct ingest_req *r, int *dup)
{
    sqlite3_stmt *st = q->st[S_EVENT_INSERT];
    sqlite3_bind_int64(st, 1, r->conn_id);
    bind_str(st, 2, r->key);
    bind_str(st, 3, r->event);
    sqlite3_bind_int64(st, 4, r->order_id);
    sqlite3_bind_int64(st, 5, r->now_ms);
    sqlite3_bind_int(st, 6, STORE_SQLITE_EVENT_FORMAT);
    sqlite3_bind_blob64(st, 7, r->body, r->len, SQLITE_STATIC);
    int rc = run(st);
    done_with(st);
    if (rc) return rc;
    if (sqlite3_changes(q->db) == 0) {
        *dup = 1;
        return SQLITE_OK;
    }
    return r->order_id != 0 ? job_upsert(q, r->conn_id, r->order_id, r->now_ms) : SQLITE_OK;
}

/* Gives every request of a batch the failure in e. */
static void fail_all(struct ingest_req *batch, const struct th_err *e)
{
    for (struct ingest_req *r = batch; r; r = r->next) {
        r->duplicate = 0;
        r->rc = th_err_set(r->err, e->code, "%s", e->msg);
    }
}

/* Runs a batch of requests (linked by next, NULL-terminated) in one
 * transaction, setting each one's rc, err and duplicate. Returns 0 when the
 * batch committed or failed as a whole (every request has its answer), or 1
 * when one request's statements failed: then nothing was written and the
 * caller runs each request alone, so the others do not share its fate and
 * its error names it. db_mu held. */
static int run_batch(struct sq *q, struct ingest_req *batch)
{
    struct th_err e = {0};
    if (begin(q, &e, "store event") != 0) {
        fail_all(batch, &e);
        return 0;
    }
    for (struct ingest_req *r = batch; r; r = r->next) {
        int dup = 0;
        int rc = ingest_one(q, r, &dup);
        if (rc != SQLITE_OK) {
            fail(q, rc, &e, "store event %s for connection %lld (order %lld)", r->key,
                 (long long)r->conn_id, (long long)r->order_id);
            /* SQLite may have undone only the failing statement (say the
             * job upsert on SQLITE_FULL); committing the rest would keep an
             * event without its job, so the whole transaction goes. */
            rollback(q);
            if (!batch->next) {
                fail_all(batch, &e);
                return 0;
            }
            return 1;
        }
        r->rc = 0;
        r->duplicate = dup;
    }
    if (commit(q, &e, "store event") != 0) fail_all(batch, &e);
    return 0;
}

/* The committer: takes up to STORE_MAX_BATCH queued requests at a time,
 * commits them together, and wakes each caller. Runs until sq_free. */
static void *committer_main(void *arg)
{
    struct sq *q = arg;
    pthread_mutex_lock(&q->q_mu);
    for (;;) {
        if (!q->q_head) {
            if (q->closing) break;
            q->committer_idle = 1;
            pthread_cond_wait(&q->q_cv, &q->q_mu);
            q->committer_idle = 0;
            continue;
        }
        struct ingest_req *batch = q->q_head, *last = batch;
        for (int n = 1; n < STORE_MAX_BATCH && last->next; n++)
            last = last->next;
        q->q_head = last->next;
        if (!q->q_head) q->q_tail = &q->q_head;
        last->next = NULL;
        pthread_mutex_unlock(&q->q_mu);

        pthread_mutex_lock(&q->db_mu);
        if (run_batch(q, batch)) {
            /* One request failed: give each its own transaction. */
            for (struct ingest_req *r = batch, *next; r; r = next) {
                next = r->next;
                r->next = NULL;
                (void)run_batch(q, r);
                r->next = next;
            }
        }
        pthread_mutex_unlock(&q->db_mu);

        /* Read next before posting: a caller returns (and its stack frame
         * goes) as soon as its request is posted. */
        for (struct ingest_req *r = batch, *next; r; r = next) {
            next = r->next;
            if (r->done_fn) {
                r->done_fn(r->done_arg, r->rc, r->duplicate, r->err);
                free(r);
            } else {
                sem_post(&r->done);
            }
        }
        pthread_mutex_lock(&q->q_mu);
    }
    pthread_mutex_unlock(&q->q_mu);
    return NULL;
}

/* Queues r for the committer, starting it on first use. */
static int enqueue(struct sq *q, struct ingest_req *r, struct th_err *err)
{
    pthread_mutex_lock(&q->q_mu);
    if (!q->committer_on) {
        if (pthread_create(&q->committer, NULL, committer_main, q) != 0) {
            pthread_mutex_unlock(&q->q_mu);
            return th_err_set(err, TH_EINTERNAL,
                              "store event %s: cannot start the committer thread", r->key);
        }
        q->committer_on = 1;
    }
    r->next = NULL;
    *q->q_tail = r;
    q->q_tail = &r->next;
    if (q->committer_idle) pthread_cond_signal(&q->q_cv);
    pthread_mutex_unlock(&q->q_mu);
    return 0;
}

static int sq_event_ingest(struct store *s, int64_t conn_id, const char *dedupe_key,
                           const char *event, int64_t order_id, const char *body, size_t len,
                           int *duplicate, struct th_err *err)
{
    struct sq *q = sq_of(s);
    struct ingest_req me = {.conn_id = conn_id,
                            .key = dedupe_key,
                            .event = event,
                            .order_id = order_id,
                            .body = body,
                            .len = len,
                            .now_ms = store_now_ms(s),
                            .err = err};
    if (sem_init(&me.done, 0, 0) != 0)
        return th_err_set(err, TH_EINTERNAL, "store event %s: sem_init failed", dedupe_key);
    int rc = enqueue(q, &me, err);
    if (rc == 0) {
        while (sem_wait(&me.done) != 0 && errno == EINTR) {
        }
        rc = me.rc;
    }
    sem_destroy(&me.done);
    *duplicate = me.duplicate;
    return rc;
}

static int sq_event_ingest_async(struct store *s, int64_t conn_id, const char *dedupe_key,
                                 const char *event, int64_t order_id, const char *body, size_t len,
                                 store_ingest_done_fn done, void *arg, struct th_err *err)
{
    struct sq *q = sq_of(s);
    struct ingest_req *r = xcalloc(1, sizeof *r);
    *r = (struct ingest_req){.conn_id = conn_id,
                             .key = dedupe_key,
                             .event = event,
                             .order_id = order_id,
                             .body = body,
                             .len = len,
                             .now_ms = store_now_ms(s),
                             .done_fn = done,
                             .done_arg = arg};
    r->err = &r->own_err;
    int rc = enqueue(q, r, err);
    if (rc) free(r);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Jobs */

static int sq_job_claim(struct store *s, const char *worker, int64_t lease_ms,
                        const struct store_claim_limits *lim, const int64_t *except,
                        size_t nexcept, struct store_job *out, struct th_err *err)
{
    /* The connections to skip, as a JSON array for json_each(?4). */
    char skip[STORE_MAX_CLAIM_EXCEPT * 21 + 3];
    size_t n = 0;
    skip[n++] = '[';
    for (size_t i = 0; i < nexcept; i++)
        n += (size_t)snprintf(skip + n, sizeof skip - n, "%s%lld", i ? "," : "",
                              (long long)except[i]);
    skip[n++] = ']';
    skip[n] = '\0';
    struct sq *q = sq_of(s);
    int64_t now = store_now_ms(s);
    pthread_mutex_lock(&q->db_mu);
    int code = begin(q, err, "claim a job");
    if (code) goto out;
    sqlite3_stmt *st = q->st[S_JOB_CLAIM];
    bind_str(st, 1, worker);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_int64(st, 3, now + lease_ms);
    if (nexcept) bind_str(st, 4, skip);
    else sqlite3_bind_null(st, 4);
    sqlite3_bind_int(st, 5, lim ? lim->per_store : 0);
    sqlite3_bind_int(st, 6, lim ? lim->per_account : 0);
    int rc = sqlite3_step(st);
    int found = rc == SQLITE_ROW;
    if (found) {
        out->id = sqlite3_column_int64(st, 0);
        out->conn_id = sqlite3_column_int64(st, 1);
        out->order_id = sqlite3_column_int64(st, 2);
        out->attempts = sqlite3_column_int(st, 3);
        out->run_after = sqlite3_column_int64(st, 4);
        out->manual = sqlite3_column_int(st, 5);
        rc = run(st);
    } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    }
    if (rc) code = fail(q, rc, err, "claim a job for worker %s", worker);
    done_with(st);
    if (code) {
        rollback(q);
        memset(out, 0, sizeof *out);
        goto out;
    }
    if ((code = commit(q, err, "claim a job")) != 0) {
        memset(out, 0, sizeof *out);
        goto out;
    }
    if (!found) code = th_err_set(err, TH_ENOTFOUND, "no job is due");
out:
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

/* After a fenced write changed nothing: TH_ECONFLICT when the job exists
 * (another worker holds it now), TH_ENOTFOUND when it does not. db_mu held. */
static int job_missing(struct sq *q, int64_t job_id, const char *owner, struct th_err *err)
{
    sqlite3_stmt *st = q->st[S_JOB_EXISTS];
    sqlite3_bind_int64(st, 1, job_id);
    int rc = sqlite3_step(st);
    int64_t n = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    done_with(st);
    if (rc != SQLITE_ROW) return fail(q, rc, err, "look up job %lld", (long long)job_id);
    if (n && owner)
        return th_err_set(err, TH_ECONFLICT,
                          "job %lld was taken over by another worker (the lease of %s ran out)",
                          (long long)job_id, owner);
    return th_err_set(err, TH_ENOTFOUND, "job %lld does not exist", (long long)job_id);
}

static int sq_job_done(struct store *s, int64_t job_id, const char *owner, struct th_err *err)
{
    struct sq *q = sq_of(s);
    int64_t now = store_now_ms(s);
    pthread_mutex_lock(&q->db_mu);
    int code = begin(q, err, "finish a job");
    if (code) goto out;
    sqlite3_stmt *st = q->st[S_JOB_DELETE];
    sqlite3_bind_int64(st, 1, job_id);
    bind_str(st, 3, owner);
    int rc = run(st);
    done_with(st);
    if (rc == SQLITE_OK && sqlite3_changes(q->db) == 0) {
        /* Not deleted: an event arrived while it ran, another worker holds
         * it, or no job. */
        st = q->st[S_JOB_RERUN];
        sqlite3_bind_int64(st, 1, job_id);
        sqlite3_bind_int64(st, 2, now);
        bind_str(st, 3, owner);
        rc = run(st);
        done_with(st);
        if (rc == SQLITE_OK && sqlite3_changes(q->db) == 0) code = job_missing(q, job_id, owner, err);
    }
    if (rc) code = fail(q, rc, err, "finish job %lld", (long long)job_id);
    if (code)
        rollback(q);
    else
        code = commit(q, err, "finish a job");
out:
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

static int sq_job_retry(struct store *s, int64_t job_id, const char *owner, int64_t run_after,
                        const char *error, int uncount, struct th_err *err)
{
    struct sq *q = sq_of(s);
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = q->st[S_JOB_RETRY];
    sqlite3_bind_int64(st, 1, job_id);
    sqlite3_bind_int64(st, 2, run_after);
    bind_str(st, 3, error);
    bind_str(st, 4, owner);
    sqlite3_bind_int(st, 5, uncount ? 1 : 0);
    int rc = run(st);
    int changed = rc == SQLITE_OK ? sqlite3_changes(q->db) : 0;
    done_with(st);
    int code = 0;
    if (rc)
        code = fail(q, rc, err, "reschedule job %lld", (long long)job_id);
    else if (changed == 0)
        code = job_missing(q, job_id, owner, err);
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

static int sq_job_renew(struct store *s, int64_t job_id, const char *owner, int64_t lease_ms,
                        struct th_err *err)
{
    struct sq *q = sq_of(s);
    int64_t now = store_now_ms(s);
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = q->st[S_JOB_RENEW];
    sqlite3_bind_int64(st, 1, job_id);
    bind_str(st, 2, owner);
    sqlite3_bind_int64(st, 3, now + lease_ms);
    int rc = run(st);
    int changed = rc == SQLITE_OK ? sqlite3_changes(q->db) : 0;
    done_with(st);
    int code = 0;
    if (rc)
        code = fail(q, rc, err, "renew the lease of job %lld", (long long)job_id);
    else if (changed == 0)
        code = job_missing(q, job_id, owner, err);
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

static int sq_job_enqueue(struct store *s, int64_t conn_id, int64_t order_id, struct th_err *err)
{
    struct sq *q = sq_of(s);
    int64_t now = store_now_ms(s);
    pthread_mutex_lock(&q->db_mu);
    int code = begin(q, err, "queue an order");
    if (code) goto out;
    int rc = job_upsert(q, conn_id, order_id, now);
    if (rc == SQLITE_OK) {
        sqlite3_stmt *st = q->st[S_JOB_MANUAL];
        sqlite3_bind_int64(st, 1, conn_id);
        sqlite3_bind_int64(st, 2, order_id);
        rc = run(st);
        done_with(st);
    }
    if (rc) {
        code = fail(q, rc, err, "queue order %lld of connection %lld", (long long)order_id,
                    (long long)conn_id);
        rollback(q);
    } else {
        code = commit(q, err, "queue an order");
    }
out:
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

static int sq_job_enqueue_many(struct store *s, int64_t conn_id, const int64_t *order_ids,
                               size_t n, const char *what, const char *detail,
                               struct th_err *err)
{
    struct sq *q = sq_of(s);
    int64_t now = store_now_ms(s);
    pthread_mutex_lock(&q->db_mu);
    int code = begin(q, err, "queue orders");
    if (code) goto out;
    int rc = SQLITE_OK;
    size_t i;
    for (i = 0; i < n && rc == SQLITE_OK; i++) {
        rc = job_upsert(q, conn_id, order_ids[i], now);
        if (rc == SQLITE_OK) {
            sqlite3_stmt *st = q->st[S_JOB_MANUAL];
            sqlite3_bind_int64(st, 1, conn_id);
            sqlite3_bind_int64(st, 2, order_ids[i]);
            rc = run(st);
            done_with(st);
        }
        if (rc == SQLITE_OK && what) {
            sqlite3_stmt *st = q->st[S_NOTE];
            sqlite3_bind_int64(st, 1, conn_id);
            sqlite3_bind_int64(st, 2, order_ids[i]);
            sqlite3_bind_int64(st, 3, now);
            bind_str(st, 4, what);
            bind_str(st, 5, detail ? detail : "");
            rc = run(st);
            done_with(st);
        }
    }
    if (rc) {
        code = fail(q, rc, err, "queue order %lld of connection %lld", (long long)order_ids[i - 1],
                    (long long)conn_id);
        rollback(q);
    } else {
        code = commit(q, err, "queue orders");
    }
out:
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

static int sq_job_count(struct store *s, int64_t *n, struct th_err *err)
{
    struct sq *q = sq_of(s);
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = q->st[S_JOB_COUNT];
    int rc = sqlite3_step(st);
    int code = 0;
    if (rc == SQLITE_ROW)
        *n = sqlite3_column_int64(st, 0);
    else
        code = fail(q, rc, err, "count jobs");
    done_with(st);
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

/* ---------------------------------------------------------------------- */
/* Account limits and leases */

static int sq_account_pause(struct store *s, int64_t conn_id, int64_t until_ms,
                            struct th_err *err)
{
    struct sq *q = sq_of(s);
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = q->st[S_ACCT_PAUSE];
    sqlite3_bind_int64(st, 1, conn_id);
    sqlite3_bind_int64(st, 2, until_ms);
    int rc = run(st);
    int code = 0;
    if (rc)
        code = fail(q, rc, err, "pause the Qoyod account of connection %lld", (long long)conn_id);
    else if (sqlite3_changes(q->db) == 0)
        code = th_err_set(err, TH_ENOTFOUND, "connection %lld does not exist", (long long)conn_id);
    done_with(st);
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

static int sq_account_take(struct store *s, int64_t conn_id, int per_min, int burst,
                           int64_t *wait_ms, struct th_err *err)
{
    struct sq *q = sq_of(s);
    int64_t now = store_now_ms(s);
    char op[80];
    snprintf(op, sizeof op, "take a Qoyod call for connection %lld", (long long)conn_id);
    pthread_mutex_lock(&q->db_mu);
    int code = begin(q, err, op);
    if (code) goto out;
    sqlite3_stmt *st = q->st[S_ACCT_ENSURE];
    sqlite3_bind_int64(st, 1, conn_id);
    int rc = run(st);
    done_with(st);
    int64_t tokens = 0, refilled = -1, paused = 0;
    int found = 0;
    if (rc == SQLITE_OK) {
        st = q->st[S_ACCT_GET];
        sqlite3_bind_int64(st, 1, conn_id);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            found = 1;
            tokens = sqlite3_column_int64(st, 0);
            refilled = sqlite3_column_int64(st, 1);
            paused = sqlite3_column_int64(st, 2);
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            rc = SQLITE_OK;
        }
        done_with(st);
    }
    if (rc == SQLITE_OK && found) {
        *wait_ms = store_bucket_take(&tokens, &refilled, paused, per_min, burst, now);
        st = q->st[S_ACCT_SET];
        sqlite3_bind_int64(st, 1, conn_id);
        sqlite3_bind_int64(st, 2, tokens);
        sqlite3_bind_int64(st, 3, refilled);
        rc = run(st);
        done_with(st);
    }
    if (rc) code = fail(q, rc, err, "%s", op);
    else if (!found)
        code = th_err_set(err, TH_ENOTFOUND, "connection %lld does not exist", (long long)conn_id);
    if (code) {
        *wait_ms = 0;
        rollback(q);
    } else {
        code = commit(q, err, op);
    }
out:
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

static int sq_lease_take(struct store *s, const char *name, const char *owner, int64_t ttl_ms,
                         int *held, struct th_err *err)
{
    struct sq *q = sq_of(s);
    int64_t now = store_now_ms(s);
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = q->st[S_LEASE_TAKE];
    bind_str(st, 1, name);
    bind_str(st, 2, owner);
    sqlite3_bind_int64(st, 3, now + ttl_ms);
    sqlite3_bind_int64(st, 4, now);
    int rc = sqlite3_step(st);
    *held = rc == SQLITE_ROW;
    if (rc == SQLITE_ROW) rc = run(st);
    else if (rc == SQLITE_DONE) rc = SQLITE_OK;
    int code = rc ? fail(q, rc, err, "take lease %s for %s", name, owner) : 0;
    if (code) *held = 0;
    done_with(st);
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

static int sq_lease_drop(struct store *s, const char *name, const char *owner, struct th_err *err)
{
    struct sq *q = sq_of(s);
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = q->st[S_LEASE_DROP];
    bind_str(st, 1, name);
    bind_str(st, 2, owner);
    int rc = run(st);
    int code = rc ? fail(q, rc, err, "drop lease %s of %s", name, owner) : 0;
    done_with(st);
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

/* ---------------------------------------------------------------------- */
/* Orders and history */

/* Reads ORDER_COLS from the current row. */
static void read_order(sqlite3_stmt *st, struct store_order *o)
{
    o->conn_id = sqlite3_column_int64(st, 0);
    o->order_id = sqlite3_column_int64(st, 1);
    o->number = col_str(st, 2);
    o->status = (enum model_status)sqlite3_column_int(st, 3);
    o->xfer = (enum store_xfer)sqlite3_column_int(st, 4);
    o->reason_code = sqlite3_column_int(st, 5);
    o->reason = col_str(st, 6);
    o->attempts = sqlite3_column_int(st, 7);
    o->total = sqlite3_column_int64(st, 8);
    o->qoyod_total = sqlite3_column_int64(st, 9);
    o->qoyod_invoice_id = sqlite3_column_int64(st, 10);
    o->qoyod_reference = col_str(st, 11);
    o->qoyod_payment_id = sqlite3_column_int64(st, 12);
    o->created_at = sqlite3_column_int64(st, 13);
    o->updated_at = sqlite3_column_int64(st, 14);
    o->transferred_at = sqlite3_column_int64(st, 15);
    o->tax = sqlite3_column_int64(st, 16);
    o->credit = (enum store_credit)sqlite3_column_int(st, 17);
    o->credited = sqlite3_column_int64(st, 18);
}

static int sq_order_get(struct store *s, int64_t conn_id, int64_t order_id, struct store_order *out,
                        struct th_err *err)
{
    struct sq *q = sq_of(s);
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = q->st[S_ORDER_GET];
    sqlite3_bind_int64(st, 1, conn_id);
    sqlite3_bind_int64(st, 2, order_id);
    int rc = sqlite3_step(st);
    int code = 0;
    if (rc == SQLITE_ROW)
        read_order(st, out);
    else if (rc == SQLITE_DONE)
        code = th_err_set(err, TH_ENOTFOUND, "order %lld of connection %lld is not known",
                          (long long)order_id, (long long)conn_id);
    else
        code = fail(q, rc, err, "read order %lld of connection %lld", (long long)order_id,
                    (long long)conn_id);
    done_with(st);
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

/* Binds the 19 ORDER_COLS of o to st (S_ORDER_PUT and S_ORDER_ADD). */
static void bind_order(sqlite3_stmt *st, const struct store_order *o)
{
    sqlite3_bind_int64(st, 1, o->conn_id);
    sqlite3_bind_int64(st, 2, o->order_id);
    bind_str(st, 3, o->number);
    sqlite3_bind_int(st, 4, (int)o->status);
    sqlite3_bind_int(st, 5, (int)o->xfer);
    sqlite3_bind_int(st, 6, o->reason_code);
    bind_str(st, 7, o->reason);
    sqlite3_bind_int(st, 8, o->attempts);
    sqlite3_bind_int64(st, 9, o->total);
    sqlite3_bind_int64(st, 10, o->qoyod_total);
    sqlite3_bind_int64(st, 11, o->qoyod_invoice_id);
    bind_str(st, 12, o->qoyod_reference);
    sqlite3_bind_int64(st, 13, o->qoyod_payment_id);
    sqlite3_bind_int64(st, 14, o->created_at);
    sqlite3_bind_int64(st, 15, o->updated_at);
    sqlite3_bind_int64(st, 16, o->transferred_at);
    sqlite3_bind_int64(st, 17, o->tax);
    sqlite3_bind_int(st, 18, (int)o->credit);
    sqlite3_bind_int64(st, 19, o->credited);
}

static int sq_order_put(struct store *s, const struct store_order *o, int64_t job_id,
                        const char *owner, struct th_err *err)
{
    struct sq *q = sq_of(s);
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = q->st[owner ? S_ORDER_PUT_AS : S_ORDER_PUT];
    bind_order(st, o);
    if (owner) {
        sqlite3_bind_int64(st, 20, job_id);
        bind_str(st, 21, owner);
    }
    int rc = run(st);
    int code = rc ? fail(q, rc, err, "save order %lld of connection %lld", (long long)o->order_id,
                         (long long)o->conn_id)
                  : 0;
    done_with(st);
    if (!code && owner && sqlite3_changes(q->db) == 0)
        code = store_stale_writer(err, o, job_id, owner, job_missing(q, job_id, owner, err));
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

/* One statement: the insert either happens or leaves the existing row as
 * it was, so a transfer running meanwhile is never undone. */
static int sq_order_add(struct store *s, const struct store_order *o, int *added,
                        struct th_err *err)
{
    struct sq *q = sq_of(s);
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = q->st[S_ORDER_ADD];
    bind_order(st, o);
    int rc = run(st);
    int code = rc ? fail(q, rc, err, "add order %lld of connection %lld", (long long)o->order_id,
                         (long long)o->conn_id)
                  : 0;
    if (!code) *added = sqlite3_changes(q->db) > 0;
    done_with(st);
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

static int sq_order_note(struct store *s, int64_t conn_id, int64_t order_id, const char *what,
                         const char *detail, struct th_err *err)
{
    struct sq *q = sq_of(s);
    int64_t now = store_now_ms(s);
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = q->st[S_NOTE];
    sqlite3_bind_int64(st, 1, conn_id);
    sqlite3_bind_int64(st, 2, order_id);
    sqlite3_bind_int64(st, 3, now);
    bind_str(st, 4, what);
    bind_str(st, 5, detail);
    int rc = run(st);
    int code = rc ? fail(q, rc, err, "note history of order %lld of connection %lld",
                         (long long)order_id, (long long)conn_id)
                  : 0;
    done_with(st);
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

/*
 * Lists copy the rows out under db_mu and call fn after releasing it, so fn
 * may call the store (see store_ops.order_list). A whole listing (the CLI's,
 * the report's) is held in memory; the API asks for pages.
 */
static int sq_order_list(struct store *s, const struct store_order_query *oq,
                         void (*fn)(void *arg, const struct store_order *o), void *arg,
                         struct th_err *err)
{
    struct sq *q = sq_of(s);
    struct store_order *rows = NULL;
    size_t n = 0, cap = 0;
    int64_t lo, hi;
    store_order_bounds(oq, &lo, &hi);
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = q->st[oq->newest ? S_ORDER_LIST_DESC : S_ORDER_LIST];
    sqlite3_bind_int64(st, 1, oq->conn_id);
    sqlite3_bind_int(st, 2, oq->xfer < 0 ? -1 : oq->xfer);
    sqlite3_bind_int64(st, 3, oq->tenant);
    sqlite3_bind_int64(st, 4, lo);
    sqlite3_bind_int64(st, 5, hi);
    bind_str(st, 6, oq->text && *oq->text ? oq->text : NULL);
    sqlite3_bind_int(st, 7, oq->has_after);
    sqlite3_bind_int64(st, 8, oq->after.created_at);
    sqlite3_bind_int64(st, 9, oq->after.order_id);
    sqlite3_bind_int64(st, 10, oq->after.conn_id);
    sqlite3_bind_int64(st, 11, oq->limit > 0 ? oq->limit : -1);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            rows = xrealloc(rows, cap * sizeof *rows);
        }
        memset(&rows[n], 0, sizeof rows[n]);
        read_order(st, &rows[n++]);
    }
    int code = rc == SQLITE_DONE ? 0 : fail(q, rc, err, "list orders");
    done_with(st);
    pthread_mutex_unlock(&q->db_mu);
    for (size_t i = 0; i < n; i++) {
        if (!code) fn(arg, &rows[i]);
        store_order_release(&rows[i]);
    }
    free(rows);
    return code;
}

struct note_row {
    int64_t ts_ms;
    char *what, *detail;
};

static int sq_order_history(struct store *s, int64_t conn_id, int64_t order_id,
                            void (*fn)(void *arg, int64_t ts_ms, const char *what,
                                       const char *detail),
                            void *arg, struct th_err *err)
{
    struct sq *q = sq_of(s);
    struct note_row *rows = NULL;
    size_t n = 0, cap = 0;
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = q->st[S_HISTORY];
    sqlite3_bind_int64(st, 1, conn_id);
    sqlite3_bind_int64(st, 2, order_id);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            rows = xrealloc(rows, cap * sizeof *rows);
        }
        rows[n].ts_ms = sqlite3_column_int64(st, 0);
        rows[n].what = col_str(st, 1);
        rows[n].detail = col_str(st, 2);
        n++;
    }
    int code = rc == SQLITE_DONE ? 0
                                 : fail(q, rc, err, "read history of order %lld of connection %lld",
                                        (long long)order_id, (long long)conn_id);
    done_with(st);
    pthread_mutex_unlock(&q->db_mu);
    for (size_t i = 0; i < n; i++) {
        if (!code)
            fn(arg, rows[i].ts_ms, rows[i].what ? rows[i].what : "",
               rows[i].detail ? rows[i].detail : "");
        free(rows[i].what);
        free(rows[i].detail);
    }
    free(rows);
    return code;
}

/* ---------------------------------------------------------------------- */
/* Mappings */

static int sq_map_get(struct store *s, int64_t conn_id, const char *kind, const char *key,
                      int64_t *qoyod_id, struct th_err *err)
{
    struct sq *q = sq_of(s);
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = q->st[S_MAP_GET];
    sqlite3_bind_int64(st, 1, conn_id);
    bind_str(st, 2, kind);
    bind_str(st, 3, key);
    int rc = sqlite3_step(st);
    int code = 0;
    if (rc == SQLITE_ROW)
        *qoyod_id = sqlite3_column_int64(st, 0);
    else if (rc == SQLITE_DONE)
        code = th_err_set(err, TH_ENOTFOUND, "no Qoyod %s is mapped to '%s' (connection %lld)",
                          kind, key, (long long)conn_id);
    else
        code = fail(q, rc, err, "read %s mapping '%s' of connection %lld", kind, key,
                    (long long)conn_id);
    done_with(st);
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

static int sq_map_put(struct store *s, int64_t conn_id, const char *kind, const char *key,
                      int64_t qoyod_id, struct th_err *err)
{
    struct sq *q = sq_of(s);
    int64_t now = store_now_ms(s);
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = q->st[S_MAP_PUT];
    sqlite3_bind_int64(st, 1, conn_id);
    bind_str(st, 2, kind);
    bind_str(st, 3, key);
    sqlite3_bind_int64(st, 4, qoyod_id);
    sqlite3_bind_int64(st, 5, now);
    int rc = run(st);
    int code = rc ? fail(q, rc, err, "save %s mapping '%s' of connection %lld", kind, key,
                         (long long)conn_id)
                  : 0;
    done_with(st);
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

/* ---------------------------------------------------------------------- */
/* Stock */

static int sq_stock_load(struct store *s, int64_t conn_id, struct store_stock *rows, size_t n,
                         int64_t before_ms, struct th_err *err)
{
    struct sq *q = sq_of(s);
    int code = 0;
    pthread_mutex_lock(&q->db_mu);
    for (size_t i = 0; i < n && !code; i++) {
        struct store_stock *r = &rows[i];
        sqlite3_stmt *st = q->st[S_STOCK_GET];
        sqlite3_bind_int64(st, 1, conn_id);
        bind_str(st, 2, r->sku);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            r->known = 1;
            r->qoyod_product_id = sqlite3_column_int64(st, 0);
            r->qoyod_qty = sqlite3_column_int64(st, 1);
            r->has_qty = sqlite3_column_int(st, 2);
            r->store_untracked = sqlite3_column_int(st, 3);
            r->pushed_at_ms = sqlite3_column_int64(st, 4);
            r->read_ms = sqlite3_column_int64(st, 5);
        } else if (rc != SQLITE_DONE) {
            code = fail(q, rc, err, "read the stock of SKU %s (connection %lld)", r->sku,
                        (long long)conn_id);
        }
        done_with(st);
        if (code) break;
        st = q->st[S_STOCK_OWN_SUM];
        sqlite3_bind_int64(st, 1, conn_id);
        bind_str(st, 2, r->sku);
        sqlite3_bind_int64(st, 3, before_ms);
        sqlite3_bind_int64(st, 4, r->pushed_at_ms);
        sqlite3_bind_int64(st, 5, before_ms - STORE_STOCK_PENDING_MAX_MS);
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            r->own = sqlite3_column_int64(st, 0);
            r->own_before_push = sqlite3_column_int64(st, 1);
            r->busy = sqlite3_column_int64(st, 2) > 0;
        } else {
            code = fail(q, rc, err, "read own stock movements of SKU %s (connection %lld)",
                        r->sku, (long long)conn_id);
        }
        done_with(st);
    }
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

static int sq_stock_save(struct store *s, int64_t conn_id, const struct store_stock *rows,
                         size_t n, struct th_err *err)
{
    struct sq *q = sq_of(s);
    pthread_mutex_lock(&q->db_mu);
    int code = begin(q, err, "save stock");
    for (size_t i = 0; i < n && !code; i++) {
        const struct store_stock *r = &rows[i];
        sqlite3_stmt *st = q->st[S_STOCK_PUT];
        sqlite3_bind_int64(st, 1, conn_id);
        bind_str(st, 2, r->sku);
        sqlite3_bind_int64(st, 3, r->qoyod_product_id);
        sqlite3_bind_int64(st, 4, r->qoyod_qty);
        sqlite3_bind_int(st, 5, r->has_qty != 0);
        sqlite3_bind_int(st, 6, r->store_untracked != 0);
        sqlite3_bind_int64(st, 7, r->pushed_at_ms);
        sqlite3_bind_int64(st, 8, r->read_ms);
        int rc = run(st);
        done_with(st);
        if (!rc) {
            st = q->st[S_STOCK_CONSUME];
            sqlite3_bind_int64(st, 1, conn_id);
            bind_str(st, 2, r->sku);
            sqlite3_bind_int64(st, 3, r->read_ms);
            rc = run(st);
            done_with(st);
        }
        if (rc)
            code = fail(q, rc, err, "save the stock of SKU %s (connection %lld)", r->sku,
                        (long long)conn_id);
    }
    if (!code)
        code = commit(q, err, "save stock");
    else
        rollback(q);
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

static int sq_stock_untracked(struct store *s, int64_t conn_id, const char *sku, int untracked,
                              struct th_err *err)
{
    struct sq *q = sq_of(s);
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = q->st[S_STOCK_UNTRACKED];
    sqlite3_bind_int64(st, 1, conn_id);
    bind_str(st, 2, sku);
    sqlite3_bind_int(st, 3, untracked);
    int rc = run(st);
    int code = rc ? fail(q, rc, err, "mark SKU %s of connection %lld as %s in the store", sku,
                         (long long)conn_id, untracked ? "untracked" : "tracked")
                  : 0;
    done_with(st);
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

static int sq_stock_own_begin(struct store *s, int64_t conn_id, const char *ref,
                              const char *const *skus, const int64_t *deltas, size_t n,
                              int64_t origin_s, struct th_err *err)
{
    struct sq *q = sq_of(s);
    int64_t now = store_now_ms(s);
    pthread_mutex_lock(&q->db_mu);
    int code = begin(q, err, "record own stock movements");
    if (!code) {
        sqlite3_stmt *st = q->st[S_OWN_CLEAR];
        sqlite3_bind_int64(st, 1, conn_id);
        bind_str(st, 2, ref);
        int rc = run(st);
        done_with(st);
        if (rc) code = fail(q, rc, err, "clear own stock movements of %s", ref);
    }
    for (size_t i = 0; i < n && !code; i++) {
        sqlite3_stmt *st = q->st[S_OWN_ADD];
        sqlite3_bind_int64(st, 1, conn_id);
        bind_str(st, 2, ref);
        bind_str(st, 3, skus[i]);
        sqlite3_bind_int64(st, 4, deltas[i]);
        sqlite3_bind_int64(st, 5, origin_s * 1000);
        sqlite3_bind_int64(st, 6, now);
        int rc = run(st);
        done_with(st);
        if (rc)
            code = fail(q, rc, err, "record the own stock movement of SKU %s by %s (connection "
                        "%lld)", skus[i], ref, (long long)conn_id);
    }
    if (!code)
        code = commit(q, err, "record own stock movements");
    else
        rollback(q);
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

static int sq_stock_own_settle(struct store *s, int64_t conn_id, const char *ref, int applied,
                               struct th_err *err)
{
    struct sq *q = sq_of(s);
    int64_t now = store_now_ms(s);
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = q->st[applied ? S_OWN_APPLY : S_OWN_DROP];
    sqlite3_bind_int64(st, 1, conn_id);
    bind_str(st, 2, ref);
    if (applied) sqlite3_bind_int64(st, 3, now);
    int rc = run(st);
    int code = rc ? fail(q, rc, err, "settle the own stock movements of %s (connection %lld)", ref,
                         (long long)conn_id)
                  : 0;
    done_with(st);
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

/* ---------------------------------------------------------------------- */
/* Order lines against an opening balance */

static int sq_stock_lines_note(struct store *s, int64_t conn_id, int64_t order_id,
                               int64_t created_s, const char *const *skus, const int64_t *units,
                               size_t n, struct th_err *err)
{
    struct sq *q = sq_of(s);
    pthread_mutex_lock(&q->db_mu);
    int code = begin(q, err, "record order lines");
    for (size_t i = 0; i < n && !code; i++) {
        sqlite3_stmt *st = q->st[S_LINE_NOTE];
        sqlite3_bind_int64(st, 1, conn_id);
        bind_str(st, 2, skus[i]);
        sqlite3_bind_int64(st, 3, order_id);
        sqlite3_bind_int64(st, 4, units[i]);
        sqlite3_bind_int64(st, 5, created_s * 1000);
        int rc = run(st);
        done_with(st);
        if (rc)
            code = fail(q, rc, err, "record the line of SKU %s in order %lld (connection %lld)",
                        skus[i], (long long)order_id, (long long)conn_id);
    }
    if (!code)
        code = commit(q, err, "record order lines");
    else
        rollback(q);
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

static int sq_stock_lines_open(struct store *s, int64_t conn_id, const char *sku,
                               int64_t before_ms, int64_t *units, struct th_err *err)
{
    struct sq *q = sq_of(s);
    pthread_mutex_lock(&q->db_mu);
    int code = begin(q, err, "count the order lines of an opening balance");
    if (!code) {
        sqlite3_stmt *st = q->st[S_LINE_SUM];
        sqlite3_bind_int64(st, 1, conn_id);
        bind_str(st, 2, sku);
        sqlite3_bind_int64(st, 3, before_ms);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) *units = sqlite3_column_int64(st, 0);
        else code = fail(q, rc, err, "sum the order lines of SKU %s (connection %lld)", sku,
                         (long long)conn_id);
        done_with(st);
    }
    if (!code) {
        sqlite3_stmt *st = q->st[S_LINE_MARK];
        sqlite3_bind_int64(st, 1, conn_id);
        bind_str(st, 2, sku);
        sqlite3_bind_int64(st, 3, before_ms);
        int rc = run(st);
        done_with(st);
        if (rc)
            code = fail(q, rc, err, "mark the order lines of SKU %s (connection %lld)", sku,
                        (long long)conn_id);
    }
    if (!code)
        code = commit(q, err, "count the order lines of an opening balance");
    else
        rollback(q);
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

static int sq_stock_line_get(struct store *s, int64_t conn_id, int64_t order_id, const char *sku,
                             struct store_stock_line *out, struct th_err *err)
{
    struct sq *q = sq_of(s);
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = q->st[S_LINE_GET];
    sqlite3_bind_int64(st, 1, conn_id);
    bind_str(st, 2, sku);
    sqlite3_bind_int64(st, 3, order_id);
    int rc = sqlite3_step(st);
    int code = 0;
    if (rc == SQLITE_ROW) {
        out->units = sqlite3_column_int64(st, 0);
        out->created_ms = sqlite3_column_int64(st, 1);
        out->mark = sqlite3_column_int(st, 2);
        out->fix_from = sqlite3_column_int64(st, 3);
        out->fix_to = sqlite3_column_int64(st, 4);
    } else if (rc == SQLITE_DONE) {
        code = th_err_set(err, TH_ENOTFOUND, "no line of SKU %s in order %lld (connection %lld)",
                          sku, (long long)order_id, (long long)conn_id);
    } else {
        code = fail(q, rc, err, "read the line of SKU %s in order %lld (connection %lld)", sku,
                    (long long)order_id, (long long)conn_id);
    }
    done_with(st);
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

static int sq_stock_line_put(struct store *s, int64_t conn_id, const struct store_stock_line *l,
                             struct th_err *err)
{
    struct sq *q = sq_of(s);
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = q->st[S_LINE_PUT];
    sqlite3_bind_int64(st, 1, conn_id);
    bind_str(st, 2, l->sku);
    sqlite3_bind_int64(st, 3, l->order_id);
    sqlite3_bind_int64(st, 4, l->units);
    sqlite3_bind_int64(st, 5, l->created_ms);
    sqlite3_bind_int(st, 6, l->mark);
    sqlite3_bind_int64(st, 7, l->fix_from);
    sqlite3_bind_int64(st, 8, l->fix_to);
    int rc = run(st);
    int code = rc ? fail(q, rc, err, "save the line of SKU %s in order %lld (connection %lld)",
                         l->sku, (long long)l->order_id, (long long)conn_id)
                  : 0;
    done_with(st);
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

static int sq_stock_lines_forget(struct store *s, int64_t conn_id, int64_t order_id,
                                 struct th_err *err)
{
    struct sq *q = sq_of(s);
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = q->st[S_LINE_FORGET];
    sqlite3_bind_int64(st, 1, conn_id);
    sqlite3_bind_int64(st, 2, order_id);
    int rc = run(st);
    int code = rc ? fail(q, rc, err, "forget the lines of order %lld (connection %lld)",
                         (long long)order_id, (long long)conn_id)
                  : 0;
    done_with(st);
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

/* ---------------------------------------------------------------------- */
/* Dashboard users */

static int sq_user_put(struct store *s, const char *name, const char *hash, int64_t tenant,
                       struct th_err *err)
{
    struct sq *q = sq_of(s);
    int64_t now = store_now_ms(s);
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = q->st[S_USER_PUT];
    bind_str(st, 1, name);
    bind_str(st, 2, hash);
    sqlite3_bind_int64(st, 3, now);
    sqlite3_bind_int64(st, 4, tenant);
    int rc = run(st);
    int code = rc ? fail(q, rc, err, "save dashboard user '%s'", name) : 0;
    done_with(st);
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

static int sq_user_get(struct store *s, const char *name, char **hash, int64_t *tenant,
                       struct th_err *err)
{
    struct sq *q = sq_of(s);
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = q->st[S_USER_GET];
    bind_str(st, 1, name);
    int rc = sqlite3_step(st);
    int code = 0;
    if (rc == SQLITE_ROW) {
        *hash = xstrdup((const char *)sqlite3_column_text(st, 0));
        *tenant = sqlite3_column_int64(st, 1);
    } else if (rc == SQLITE_DONE) {
        code = th_err_set(err, TH_ENOTFOUND, "no dashboard user '%s'", name);
    } else {
        code = fail(q, rc, err, "read dashboard user '%s'", name);
    }
    done_with(st);
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

static int sq_user_count(struct store *s, int64_t *n, struct th_err *err)
{
    struct sq *q = sq_of(s);
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = q->st[S_USER_COUNT];
    int rc = sqlite3_step(st);
    int code = 0;
    if (rc == SQLITE_ROW)
        *n = sqlite3_column_int64(st, 0);
    else
        code = fail(q, rc, err, "count dashboard users");
    done_with(st);
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

struct user_row {
    char *name;
    int64_t tenant, set_ms;
};

static int sq_user_list(struct store *s, int64_t tenant,
                        void (*fn)(void *arg, const char *name, int64_t tenant, int64_t set_ms),
                        void *arg, struct th_err *err)
{
    struct sq *q = sq_of(s);
    struct user_row *rows = NULL;
    size_t n = 0, cap = 0;
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = q->st[S_USER_LIST];
    sqlite3_bind_int64(st, 1, tenant);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            rows = xrealloc(rows, cap * sizeof *rows);
        }
        rows[n++] = (struct user_row){xstrdup((const char *)sqlite3_column_text(st, 0)),
                                      sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 2)};
    }
    int code = rc == SQLITE_DONE ? 0 : fail(q, rc, err, "list dashboard users");
    done_with(st);
    pthread_mutex_unlock(&q->db_mu);
    for (size_t i = 0; i < n; i++) {
        if (!code) fn(arg, rows[i].name, rows[i].tenant, rows[i].set_ms);
        free(rows[i].name);
    }
    free(rows);
    return code;
}

static int sq_user_delete(struct store *s, const char *name, struct th_err *err)
{
    struct sq *q = sq_of(s);
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = q->st[S_USER_DELETE];
    bind_str(st, 1, name);
    int rc = run(st);
    int code = rc ? fail(q, rc, err, "remove dashboard user '%s'", name) : 0;
    if (!code && sqlite3_changes(q->db) == 0)
        code = th_err_set(err, TH_ENOTFOUND, "no dashboard user '%s'", name);
    done_with(st);
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

/* ---------------------------------------------------------------------- */
/* Tenants and their API tokens */

static int sq_tenant_add(struct store *s, const char *name, int64_t *id, struct th_err *err)
{
    struct sq *q = sq_of(s);
    int64_t now = store_now_ms(s);
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = q->st[S_TENANT_ADD];
    bind_str(st, 1, name);
    sqlite3_bind_int64(st, 2, now);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *id = sqlite3_column_int64(st, 0);
    if (rc == SQLITE_ROW) rc = run(st);
    int code = 0;
    if ((rc & 0xff) == SQLITE_CONSTRAINT)
        code = th_err_set(err, TH_ECONFLICT, "a tenant named '%s' exists already", name);
    else if (rc)
        code = fail(q, rc, err, "add tenant '%s'", name);
    done_with(st);
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

static void read_tenant(sqlite3_stmt *st, struct store_tenant *t)
{
    t->id = sqlite3_column_int64(st, 0);
    const unsigned char *n = sqlite3_column_text(st, 1);
    snprintf(t->name, sizeof t->name, "%s", n ? (const char *)n : "");
    t->created_ms = sqlite3_column_int64(st, 2);
}

static int sq_tenant_get(struct store *s, int64_t id, const char *name, struct store_tenant *out,
                         struct th_err *err)
{
    struct sq *q = sq_of(s);
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = q->st[S_TENANT_GET];
    sqlite3_bind_int64(st, 1, id);
    if (name) bind_str(st, 2, name);
    int rc = sqlite3_step(st);
    int code = 0;
    if (rc == SQLITE_ROW)
        read_tenant(st, out);
    else if (rc == SQLITE_DONE && name)
        code = th_err_set(err, TH_ENOTFOUND, "no tenant named '%s'", name);
    else if (rc == SQLITE_DONE)
        code = th_err_set(err, TH_ENOTFOUND, "no tenant %lld", (long long)id);
    else
        code = fail(q, rc, err, "read tenant");
    done_with(st);
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

static int sq_tenant_list(struct store *s, void (*fn)(void *arg, const struct store_tenant *t),
                          void *arg, struct th_err *err)
{
    struct sq *q = sq_of(s);
    struct store_tenant *rows = NULL;
    size_t n = 0, cap = 0;
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = q->st[S_TENANT_LIST];
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            rows = xrealloc(rows, cap * sizeof *rows);
        }
        read_tenant(st, &rows[n++]);
    }
    int code = rc == SQLITE_DONE ? 0 : fail(q, rc, err, "list tenants");
    done_with(st);
    pthread_mutex_unlock(&q->db_mu);
    for (size_t i = 0; !code && i < n; i++)
        fn(arg, &rows[i]);
    free(rows);
    return code;
}

static int sq_token_add(struct store *s, int64_t tenant, const char *digest_hex, const char *label,
                        int64_t *id, struct th_err *err)
{
    struct sq *q = sq_of(s);
    int64_t now = store_now_ms(s);
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = q->st[S_TOKEN_ADD];
    sqlite3_bind_int64(st, 1, tenant);
    bind_str(st, 2, digest_hex);
    bind_str(st, 3, label);
    sqlite3_bind_int64(st, 4, now);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *id = sqlite3_column_int64(st, 0);
    if (rc == SQLITE_ROW) rc = run(st);
    int code = rc ? fail(q, rc, err, "add an API token of tenant %lld", (long long)tenant) : 0;
    done_with(st);
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

static void read_token(sqlite3_stmt *st, struct store_token *t)
{
    t->id = sqlite3_column_int64(st, 0);
    t->tenant_id = sqlite3_column_int64(st, 1);
    const unsigned char *l = sqlite3_column_text(st, 2);
    snprintf(t->label, sizeof t->label, "%s", l ? (const char *)l : "");
    t->created_ms = sqlite3_column_int64(st, 3);
}

static int sq_token_find(struct store *s, const char *digest_hex, struct store_token *out,
                         struct th_err *err)
{
    struct sq *q = sq_of(s);
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = q->st[S_TOKEN_FIND];
    bind_str(st, 1, digest_hex);
    int rc = sqlite3_step(st);
    int code = 0;
    if (rc == SQLITE_ROW)
        read_token(st, out);
    else if (rc == SQLITE_DONE)
        code = th_err_set(err, TH_ENOTFOUND, "no such API token");
    else
        code = fail(q, rc, err, "look an API token up");
    done_with(st);
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

static int sq_token_list(struct store *s, int64_t tenant,
                         void (*fn)(void *arg, const struct store_token *t), void *arg,
                         struct th_err *err)
{
    struct sq *q = sq_of(s);
    struct store_token *rows = NULL;
    size_t n = 0, cap = 0;
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = q->st[S_TOKEN_LIST];
    sqlite3_bind_int64(st, 1, tenant);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            rows = xrealloc(rows, cap * sizeof *rows);
        }
        read_token(st, &rows[n++]);
    }
    int code = rc == SQLITE_DONE ? 0 : fail(q, rc, err, "list API tokens");
    done_with(st);
    pthread_mutex_unlock(&q->db_mu);
    for (size_t i = 0; !code && i < n; i++)
        fn(arg, &rows[i]);
    free(rows);
    return code;
}

static int sq_token_revoke(struct store *s, int64_t id, struct th_err *err)
{
    struct sq *q = sq_of(s);
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = q->st[S_TOKEN_REVOKE];
    sqlite3_bind_int64(st, 1, id);
    int rc = run(st);
    int code = 0;
    if (rc)
        code = fail(q, rc, err, "revoke API token %lld", (long long)id);
    else if (sqlite3_changes(q->db) == 0)
        code = th_err_set(err, TH_ENOTFOUND, "no API token %lld", (long long)id);
    done_with(st);
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

static int sq_token_count(struct store *s, int64_t *n, struct th_err *err)
{
    struct sq *q = sq_of(s);
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = q->st[S_TOKEN_COUNT];
    int rc = sqlite3_step(st);
    int code = 0;
    if (rc == SQLITE_ROW)
        *n = sqlite3_column_int64(st, 0);
    else
        code = fail(q, rc, err, "count API tokens");
    done_with(st);
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

/* ---------------------------------------------------------------------- */
/* Product fields (prepared per call: these run a few times a sync round)   */

static int prep(struct sq *q, const char *sql, sqlite3_stmt **st, struct th_err *err,
                const char *op)
{
    int rc = sqlite3_prepare_v2(q->db, sql, -1, st, NULL);
    return rc ? fail(q, rc, err, "%s: prepare", op) : 0;
}

static void text_col(sqlite3_stmt *st, int i, char *out, size_t n)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    snprintf(out, n, "%s", t ? (const char *)t : "");
}

static int sq_fields_cfg_get(struct store *s, int64_t conn_id, int *sync, int *sources,
                             struct th_err *err)
{
    struct sq *q = sq_of(s);
    *sync = *sources = 0;
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = NULL;
    int code = prep(q, "SELECT sync, sources FROM field_settings WHERE conn_id = ?1", &st, err,
                    "read field settings");
    if (!code) {
        sqlite3_bind_int64(st, 1, conn_id);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *sync = sqlite3_column_int(st, 0);
            *sources = sqlite3_column_int(st, 1);
        } else if (rc != SQLITE_DONE) {
            code = fail(q, rc, err, "read the field settings of connection %lld",
                        (long long)conn_id);
        }
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

static int sq_fields_cfg_put(struct store *s, int64_t conn_id, int sync, int sources,
                             struct th_err *err)
{
    struct sq *q = sq_of(s);
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = NULL;
    int code = prep(q,
                    "INSERT INTO field_settings (conn_id, sync, sources) SELECT ?1, ?2, ?3 "
                    "WHERE EXISTS (SELECT 1 FROM connections WHERE id = ?1) "
                    "ON CONFLICT (conn_id) DO UPDATE SET sync = excluded.sync, "
                    "sources = excluded.sources",
                    &st, err, "save field settings");
    if (!code) {
        sqlite3_bind_int64(st, 1, conn_id);
        sqlite3_bind_int(st, 2, sync);
        sqlite3_bind_int(st, 3, sources);
        int rc = run(st);
        if (rc)
            code = fail(q, rc, err, "save the field settings of connection %lld",
                        (long long)conn_id);
        else if (sqlite3_changes(q->db) == 0)
            code = th_err_set(err, TH_ENOTFOUND, "connection %lld does not exist",
                              (long long)conn_id);
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

static int sq_fields_load(struct store *s, int64_t conn_id, struct store_field_state *rows,
                          size_t n, struct th_err *err)
{
    struct sq *q = sq_of(s);
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = NULL;
    int code = prep(q,
                    "SELECT store_value, qoyod_value, synced_ms, store_ref, qoyod_id FROM fields "
                    "WHERE conn_id = ?1 AND sku = ?2 AND field = ?3",
                    &st, err, "read fields");
    for (size_t i = 0; i < n && !code; i++) {
        struct store_field_state *r = &rows[i];
        sqlite3_bind_int64(st, 1, conn_id);
        bind_str(st, 2, r->sku);
        sqlite3_bind_int(st, 3, r->field);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            r->known = 1;
            text_col(st, 0, r->store_value, sizeof r->store_value);
            text_col(st, 1, r->qoyod_value, sizeof r->qoyod_value);
            r->synced_ms = sqlite3_column_int64(st, 2);
            text_col(st, 3, r->store_ref, sizeof r->store_ref);
            r->qoyod_id = sqlite3_column_int64(st, 4);
        } else if (rc != SQLITE_DONE) {
            code = fail(q, rc, err, "read the fields of SKU %s (connection %lld)", r->sku,
                        (long long)conn_id);
        }
        done_with(st);
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

static int sq_fields_save(struct store *s, int64_t conn_id, const struct store_field_state *rows,
                          size_t n, struct th_err *err)
{
    struct sq *q = sq_of(s);
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = NULL;
    int code = begin(q, err, "save fields");
    if (!code)
        code = prep(q,
                    "INSERT INTO fields (conn_id, sku, field, store_value, qoyod_value, "
                    "synced_ms, store_ref, qoyod_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
                    "ON CONFLICT (conn_id, sku, field) DO UPDATE SET store_value = "
                    "excluded.store_value, qoyod_value = excluded.qoyod_value, synced_ms = "
                    "excluded.synced_ms, store_ref = excluded.store_ref, qoyod_id = "
                    "excluded.qoyod_id",
                    &st, err, "save fields");
    for (size_t i = 0; i < n && !code; i++) {
        const struct store_field_state *r = &rows[i];
        sqlite3_bind_int64(st, 1, conn_id);
        bind_str(st, 2, r->sku);
        sqlite3_bind_int(st, 3, r->field);
        bind_str(st, 4, r->store_value);
        bind_str(st, 5, r->qoyod_value);
        sqlite3_bind_int64(st, 6, r->synced_ms);
        bind_str(st, 7, r->store_ref);
        sqlite3_bind_int64(st, 8, r->qoyod_id);
        int rc = run(st);
        done_with(st);
        if (rc)
            code = fail(q, rc, err, "save the fields of SKU %s (connection %lld)", r->sku,
                        (long long)conn_id);
    }
    sqlite3_finalize(st);
    if (!code)
        code = commit(q, err, "save fields");
    else
        rollback(q);
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

#define CONFLICT_COLS                                                                              \
    "id, conn_id, sku, field, store_value, qoyod_value, last_store, last_qoyod, winner, at_ms, "   \
    "resolved_ms, resolution"

static void read_conflict(sqlite3_stmt *st, struct store_conflict *c)
{
    memset(c, 0, sizeof *c);
    c->id = sqlite3_column_int64(st, 0);
    c->conn_id = sqlite3_column_int64(st, 1);
    text_col(st, 2, c->sku, sizeof c->sku);
    c->field = sqlite3_column_int(st, 3);
    text_col(st, 4, c->store_value, sizeof c->store_value);
    text_col(st, 5, c->qoyod_value, sizeof c->qoyod_value);
    text_col(st, 6, c->last_store, sizeof c->last_store);
    text_col(st, 7, c->last_qoyod, sizeof c->last_qoyod);
    c->winner = sqlite3_column_int(st, 8);
    c->at_ms = sqlite3_column_int64(st, 9);
    c->resolved_ms = sqlite3_column_int64(st, 10);
    text_col(st, 11, c->resolution, sizeof c->resolution);
}

static int sq_conflict_add(struct store *s, struct store_conflict *c, struct th_err *err)
{
    struct sq *q = sq_of(s);
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = NULL;
    int code = prep(q,
                    "INSERT INTO conflicts (conn_id, sku, field, store_value, qoyod_value, "
                    "last_store, last_qoyod, winner, at_ms) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, "
                    "?8, ?9 WHERE EXISTS (SELECT 1 FROM connections WHERE id = ?1) RETURNING id",
                    &st, err, "record a conflict");
    if (!code) {
        sqlite3_bind_int64(st, 1, c->conn_id);
        bind_str(st, 2, c->sku);
        sqlite3_bind_int(st, 3, c->field);
        bind_str(st, 4, c->store_value);
        bind_str(st, 5, c->qoyod_value);
        bind_str(st, 6, c->last_store);
        bind_str(st, 7, c->last_qoyod);
        sqlite3_bind_int(st, 8, c->winner);
        sqlite3_bind_int64(st, 9, c->at_ms);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            c->id = sqlite3_column_int64(st, 0);
            rc = run(st);
            if (rc) code = fail(q, rc, err, "record a conflict of SKU %s", c->sku);
        } else if (rc == SQLITE_DONE) {
            code = th_err_set(err, TH_ENOTFOUND, "connection %lld does not exist",
                              (long long)c->conn_id);
        } else {
            code = fail(q, rc, err, "record a conflict of SKU %s", c->sku);
        }
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

static int sq_conflict_get(struct store *s, int64_t id, struct store_conflict *out,
                           struct th_err *err)
{
    struct sq *q = sq_of(s);
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = NULL;
    int code = prep(q, "SELECT " CONFLICT_COLS " FROM conflicts WHERE id = ?1", &st, err,
                    "read a conflict");
    if (!code) {
        sqlite3_bind_int64(st, 1, id);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            read_conflict(st, out);
        else if (rc == SQLITE_DONE)
            code = th_err_set(err, TH_ENOTFOUND, "there is no conflict %lld", (long long)id);
        else
            code = fail(q, rc, err, "read conflict %lld", (long long)id);
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

static int sq_conflict_list(struct store *s, int64_t conn_id, int open_only, int limit,
                            void (*fn)(void *arg, const struct store_conflict *c), void *arg,
                            struct th_err *err)
{
    struct sq *q = sq_of(s);
    struct store_conflict *v = NULL;
    size_t n = 0, cap = 0;
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = NULL;
    int code = prep(q,
                    "SELECT " CONFLICT_COLS " FROM conflicts WHERE (?1 = 0 OR conn_id = ?1) "
                    "AND (?2 = 0 OR resolved_ms = 0) ORDER BY id DESC LIMIT ?3",
                    &st, err, "list conflicts");
    if (!code) {
        sqlite3_bind_int64(st, 1, conn_id);
        sqlite3_bind_int(st, 2, open_only != 0);
        sqlite3_bind_int64(st, 3, limit > 0 ? limit : -1);
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            if (n == cap) v = xrealloc(v, (cap = cap ? cap * 2 : 16) * sizeof *v);
            read_conflict(st, &v[n++]);
        }
        if (rc != SQLITE_DONE) code = fail(q, rc, err, "list conflicts");
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&q->db_mu);
    for (size_t i = 0; i < n && !code; i++)
        fn(arg, &v[i]);
    free(v);
    return code;
}

static int sq_conflict_resolve(struct store *s, int64_t id, const char *resolution,
                               struct th_err *err)
{
    struct sq *q = sq_of(s);
    int64_t now = store_now_ms(s);
    pthread_mutex_lock(&q->db_mu);
    sqlite3_stmt *st = NULL;
    int code = prep(q,
                    "UPDATE conflicts SET resolved_ms = ?2, resolution = ?3 "
                    "WHERE id = ?1 AND resolved_ms = 0",
                    &st, err, "resolve a conflict");
    if (!code) {
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_int64(st, 2, now > 0 ? now : 1);
        bind_str(st, 3, resolution);
        int rc = run(st);
        if (rc) code = fail(q, rc, err, "resolve conflict %lld", (long long)id);
        else if (sqlite3_changes(q->db) == 0) code = 1;
    }
    sqlite3_finalize(st);
    if (code == 1) {
        /* Absent, or resolved already: say which. */
        code = prep(q, "SELECT resolution FROM conflicts WHERE id = ?1", &st, err,
                    "resolve a conflict");
        if (!code) {
            sqlite3_bind_int64(st, 1, id);
            int rc = sqlite3_step(st);
            if (rc == SQLITE_ROW)
                code = th_err_set(err, TH_ECONFLICT, "conflict %lld was resolved already (%s)",
                                  (long long)id, (const char *)sqlite3_column_text(st, 0));
            else
                code = th_err_set(err, TH_ENOTFOUND, "there is no conflict %lld", (long long)id);
        }
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&q->db_mu);
    return code;
}

/* ---------------------------------------------------------------------- */

const struct store_ops store_sqlite_ops = {
    .fields_cfg_get = sq_fields_cfg_get,
    .fields_cfg_put = sq_fields_cfg_put,
    .fields_load = sq_fields_load,
    .fields_save = sq_fields_save,
    .conflict_add = sq_conflict_add,
    .conflict_get = sq_conflict_get,
    .conflict_list = sq_conflict_list,
    .conflict_resolve = sq_conflict_resolve,
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .conn_put = sq_conn_put,
    .conn_get = sq_conn_get,
    .conn_find = sq_conn_find,
    .conn_prefix_assign = sq_conn_prefix_assign,
    .conn_prefix_set = sq_conn_prefix_set,
    .event_ingest = sq_event_ingest,
    .event_ingest_async = sq_event_ingest_async,
    .job_claim = sq_job_claim,
    .job_done = sq_job_done,
    .job_retry = sq_job_retry,
    .job_renew = sq_job_renew,
    .job_enqueue = sq_job_enqueue,
    .job_enqueue_many = sq_job_enqueue_many,
    .conn_put_tokens = sq_conn_put_tokens,
    .conn_put_settings = sq_conn_put_settings,
    .job_count = sq_job_count,
    .order_get = sq_order_get,
    .order_put = sq_order_put,
    .order_add = sq_order_add,
    .order_note = sq_order_note,
    .order_list = sq_order_list,
    .order_history = sq_order_history,
    .map_get = sq_map_get,
    .map_put = sq_map_put,
    .user_put = sq_user_put,
    .user_get = sq_user_get,
    .user_count = sq_user_count,
    .user_list = sq_user_list,
    .user_delete = sq_user_delete,
    .tenant_add = sq_tenant_add,
    .tenant_get = sq_tenant_get,
    .tenant_list = sq_tenant_list,
    .token_add = sq_token_add,
    .token_find = sq_token_find,
    .token_list = sq_token_list,
    .token_revoke = sq_token_revoke,
    .token_count = sq_token_count,
    .stock_load = sq_stock_load,
    .stock_save = sq_stock_save,
    .stock_untracked = sq_stock_untracked,
    .stock_own_begin = sq_stock_own_begin,
    .stock_own_settle = sq_stock_own_settle,
    .stock_lines_note = sq_stock_lines_note,
    .stock_lines_open = sq_stock_lines_open,
    .stock_line_get = sq_stock_line_get,
    .stock_line_put = sq_stock_line_put,
    .stock_lines_forget = sq_stock_lines_forget,
    .account_pause = sq_account_pause,
    .account_take = sq_account_take,
    .lease_take = sq_lease_take,
    .lease_drop = sq_lease_drop,
};
