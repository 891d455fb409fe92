/*
 * Tests for src/store/: the store.h contract, which every backend must pass
 * identically (the `conformance` list in main), plus checks of each
 * backend's own database (the `sqlite_only` and `pg_only` lists).
 *
 *   unit_store_test_store           runs the suite on SQLite: each test gets
 *                                   a fresh file in a fresh temp directory;
 *   unit_store_test_store pg        runs it on PostgreSQL at $TH_TEST_PG_URL
 *                                   (ctest's pg fixture starts a throwaway
 *                                   server, tests/pg/pgtmp.sh): the run
 *                                   creates its own database, each test a
 *                                   fresh schema in it; both dropped after.
 *                                   Without a reachable server it FAILS.
 *
 * Time is driven through the store's clock seam.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <libpq-fe.h>
#include <pthread.h>
#include <sqlite3.h>
#include <unistd.h>

#include "core/xmalloc.h"
#include "store/secret.h"
#include "store/store.h"
#include "store/store_int.h"
#include "store/store_pg.h"
#include "store/store_sqlite.h"

/* PostgreSQL runs: the URL of this run's database ("" on SQLite runs). */
static char pg_db_url[512];
static int pg_schema_seq;

struct fx {
    char dir[64];
    char path[128];   /* SQLite: the file */
    char schema[32];  /* PostgreSQL: this test's schema */
    char url[640];    /* what store_open gets */
    int pg;
    struct store *s;
    int64_t now; /* the store's clock, unix ms */
    struct store_conn conn;
};

static int64_t fake_clock(void *arg)
{
    return ((struct fx *)arg)->now;
}

static void must(int rc, const struct th_err *err)
{
    if (rc != 0) fail_msg("store call failed: %d %s: %s", rc, th_err_name(rc), err->msg);
}

/* SQL that takes a database back from schema 6 to 5 (the stock tables and
 * the connection's stock settings), for the migration tests. */
#define UNDO_6                                                                                     \
    UNDO_7 "DROP TABLE stock_own; DROP TABLE stock; ALTER TABLE connections DROP COLUMN "          \
           "stock_sync; ALTER TABLE connections DROP COLUMN stock_interval_s; "
/* ... and from 7 to 6 (the orders' credit-note state). */
#define UNDO_7 UNDO_9 "ALTER TABLE orders DROP COLUMN credit; ALTER TABLE orders DROP COLUMN credited; "
/* ... and from 9 to 8 (shared limits and leases; 8's users table is made
 * IF NOT EXISTS, so it may stay). */
#define UNDO_9 UNDO_10 "DROP TABLE accounts; DROP TABLE leases; DROP INDEX jobs_leased; "
/* ... and from 10 to 9 (the connections' reference prefixes). */
#define UNDO_10 UNDO_11 "ALTER TABLE connections DROP COLUMN ref_prefix; "
/* ... and from 11 to 10 (tenants and their API tokens). */
#define UNDO_11                                                                                    \
    UNDO_12 "DROP TABLE api_tokens; DROP TABLE tenants; ALTER TABLE connections DROP COLUMN "     \
            "tenant_id; ALTER TABLE users DROP COLUMN tenant_id; "
/* ... and from 12 to 11 (product fields and conflicts). */
#define UNDO_12 UNDO_13 "DROP TABLE conflicts; DROP TABLE fields; DROP TABLE field_settings; "
/* ... and from 13 to 12 (order lines against an opening balance). */
#define UNDO_13 "DROP TABLE stock_lines; "

static void open_store(struct fx *f)
{
    struct th_err err = {0};
    must(store_open(&f->s, f->url, &err), &err);
    store_clock_set(f->s, fake_clock, f);
}

static void reopen(struct fx *f)
{
    store_close(f->s);
    f->s = NULL;
    open_store(f);
}

static void conn_fill(struct store_conn *c, int64_t store_id)
{
    memset(c, 0, sizeof *c);
    c->platform = MODEL_PLATFORM_SALLA;
    c->store_id = store_id;
    c->name = xasprintf("Store %lld", (long long)store_id);
    c->access_token = xstrdup("at-1");
    c->refresh_token = xstrdup("rt-1");
    c->token_expires_at = 1700000000;
    c->webhook_secret = xstrdup("whsec");
    c->webhook_strategy = xstrdup("signature");
    c->api_base = xstrdup("https://api.salla.dev/admin/v2");
    c->status = xstrdup("active");
    c->connected_at = 1690000000;
    c->qoyod_base = xstrdup("https://api.qoyod.com/2.0");
    c->qoyod_api_key = xstrdup("qk-1");
    c->inventory_id = 7;
    c->payment_account_id = 8;
    c->trigger = MODEL_STATUS_COMPLETED;
    c->customer_per_invoice = 1;
    c->number_by_order = 1;
    c->financial_invoice = 0;
}

/* One statement on a PostgreSQL database through its own connection;
 * returns the first column of the first row as an integer (0 if none). */
static int64_t pg_sql(const char *url, const char *sql)
{
    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK) fail_msg("PostgreSQL at %s: %s", url, PQerrorMessage(c));
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    int64_t v = st == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0)
                    ? strtoll(PQgetvalue(r, 0, 0), NULL, 10)
                    : 0;
    PQclear(r);
    PQfinish(c);
    return v;
}

static int setup(void **state)
{
    struct fx *f = xcalloc(1, sizeof *f);
    if (pg_db_url[0]) {
        f->pg = 1;
        snprintf(f->schema, sizeof f->schema, "t%d", ++pg_schema_seq);
        char *sql = xasprintf("CREATE SCHEMA %s", f->schema);
        pg_sql(pg_db_url, sql);
        free(sql);
        snprintf(f->url, sizeof f->url, "%s?options=-csearch_path%%3D%s", pg_db_url, f->schema);
    } else {
        snprintf(f->dir, sizeof f->dir, "/tmp/th_storeXXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->path, sizeof f->path, "%s/t.db", f->dir);
        snprintf(f->url, sizeof f->url, "%s", f->path);
    }
    f->now = 1000000;
    open_store(f);
    conn_fill(&f->conn, 1001);
    struct th_err err = {0};
    must(store_conn_put(f->s, &f->conn, &err), &err);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    store_conn_release(&f->conn);
    store_close(f->s);
    if (f->pg) {
        char *sql = xasprintf("SET client_min_messages = warning; DROP SCHEMA %s CASCADE",
                              f->schema);
        pg_sql(pg_db_url, sql);
        free(sql);
        free(f);
        return 0;
    }
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal", ".key"};
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        char p[160];
        snprintf(p, sizeof p, "%s%s", f->path, suffixes[i]);
        unlink(p);
    }
    assert_int_equal(rmdir(f->dir), 0);
    free(f);
    return 0;
}

/* sql with the word BODY_TEXT replaced by the backend's way to read an
 * event body as text. New string. */
static char *portable(const struct fx *f, const char *sql)
{
    const char *w = strstr(sql, "BODY_TEXT");
    if (!w) return xstrdup(sql);
    char *head = xasprintf("%.*s%s", (int)(w - sql), sql,
                           f->pg ? "convert_from(body, 'UTF8')" : "CAST(body AS TEXT)");
    char *rest = portable(f, w + strlen("BODY_TEXT"));
    char *all = xasprintf("%s%s", head, rest);
    free(head);
    free(rest);
    return all;
}

/* One integer from a query on the database, through a separate connection. */
static int64_t raw_int(const struct fx *f, const char *query)
{
    char *sql = portable(f, query);
    if (f->pg) {
        char *full = xasprintf("SET search_path = %s; %s", f->schema, sql);
        int64_t v = pg_sql(pg_db_url, full);
        free(full);
        free(sql);
        return v;
    }
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    free(sql);
    return v;
}

static void raw_exec(const struct fx *f, const char *sql)
{
    if (f->pg) {
        char *full = xasprintf("SET search_path = %s; %s", f->schema, sql);
        pg_sql(pg_db_url, full);
        free(full);
        return;
    }
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) fail_msg("%s: %s", sql, msg);
    sqlite3_close(db);
}

static int64_t job_count(struct fx *f)
{
    int64_t n = -1;
    struct th_err err = {0};
    must(store_job_count(f->s, &n, &err), &err);
    return n;
}

/* Ingests an event for order_id under key; returns *duplicate. */
static int ingest(struct fx *f, const char *key, int64_t order_id)
{
    char body[128];
    int len = snprintf(body, sizeof body, "{\"event\":\"order.updated\",\"id\":%lld}",
                       (long long)order_id);
    int dup = -1;
    struct th_err err = {0};
    must(store_event_ingest(f->s, f->conn.id, key, "order.updated", order_id, body, (size_t)len,
                            &dup, &err),
         &err);
    return dup;
}

static struct store_job claim(struct fx *f, const char *worker, int64_t lease_ms)
{
    struct store_job j;
    struct th_err err = {0};
    must(store_job_claim(f->s, worker, lease_ms, &j, &err), &err);
    return j;
}

static void claim_none(struct fx *f)
{
    struct store_job j;
    struct th_err err = {0};
    int rc = store_job_claim(f->s, "w", 1000, &j, &err);
    if (rc != TH_ENOTFOUND)
        fail_msg("expected no due job, got rc=%d job=%lld order=%lld", rc, (long long)j.id,
                 (long long)j.order_id);
    assert_int_equal(j.id, 0);
}

static void assert_conn_equal(const struct store_conn *a, const struct store_conn *b)
{
    assert_int_equal(a->id, b->id);
    assert_int_equal(a->platform, b->platform);
    assert_int_equal(a->store_id, b->store_id);
    assert_string_equal(a->name, b->name);
    assert_string_equal(a->access_token, b->access_token);
    assert_string_equal(a->refresh_token, b->refresh_token);
    assert_int_equal(a->token_expires_at, b->token_expires_at);
    assert_string_equal(a->webhook_secret, b->webhook_secret);
    assert_string_equal(a->webhook_strategy, b->webhook_strategy);
    assert_string_equal(a->api_base, b->api_base);
    assert_string_equal(a->status, b->status);
    assert_int_equal(a->connected_at, b->connected_at);
    assert_string_equal(a->qoyod_base, b->qoyod_base);
    assert_string_equal(a->qoyod_api_key, b->qoyod_api_key);
    assert_int_equal(a->inventory_id, b->inventory_id);
    assert_int_equal(a->payment_account_id, b->payment_account_id);
    assert_int_equal(a->trigger, b->trigger);
    assert_int_equal(a->customer_per_invoice, b->customer_per_invoice);
    assert_int_equal(a->number_by_order, b->number_by_order);
    assert_int_equal(a->financial_invoice, b->financial_invoice);
}

/* ---------------------------------------------------------------------- */
/* Connections */

/* count(*) of the backend's own connections rows matching `where`, read
 * around the store (what a dump, a backup or a replica would show). */
static int64_t raw_conn_count(struct fx *f, const char *where)
{
    if (f->pg) {
        char *sql = xasprintf("SELECT count(*) FROM %s.connections WHERE %s", f->schema, where);
        int64_t n = pg_sql(pg_db_url, sql);
        free(sql);
        return n;
    }
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    char *sql = xasprintf("SELECT count(*) FROM connections WHERE %s", where);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    free(sql);
    return n;
}

/* Secrets at rest (store/secret.h): the backend only ever holds sealed
 * text for the tokens, the webhook secret and the Qoyod key; the store
 * hands them back in clear; a rotation re-seals them under a new key. */
static void test_conn_secrets_sealed_at_rest(void **state)
{
    struct fx *f = *state;
    struct th_err err = {0};
    assert_int_equal(raw_conn_count(f, "access_token LIKE 'enc1:%' AND refresh_token LIKE "
                                       "'enc1:%' AND webhook_secret LIKE 'enc1:%' AND "
                                       "qoyod_api_key LIKE 'enc1:%'"),
                     1);
    assert_int_equal(raw_conn_count(f, "access_token = 'at-1' OR refresh_token = 'rt-1' OR "
                                       "webhook_secret = 'whsec' OR qoyod_api_key = 'qk-1'"),
                     0);
    /* settings and token writes seal too */
    free(f->conn.access_token);
    f->conn.access_token = xstrdup("at-2");
    must(store_conn_put_tokens(f->s, &f->conn, &err), &err);
    free(f->conn.qoyod_api_key);
    f->conn.qoyod_api_key = xstrdup("qk-2");
    must(store_conn_put_settings(f->s, &f->conn, &err), &err);
    assert_int_equal(raw_conn_count(f, "access_token = 'at-2' OR qoyod_api_key = 'qk-2'"), 0);
    struct store_conn got;
    must(store_conn_get(f->s, f->conn.id, &got, &err), &err);
    assert_conn_equal(&got, &f->conn);
    store_conn_release(&got);

    const char *source, *file, *kid;
    store_secrets_info(f->s, &source, &file, &kid);
    char before[9];
    snprintf(before, sizeof before, "%s", kid);
    char *like = xasprintf("access_token LIKE 'enc1:%s:%%'", before);
    assert_int_equal(raw_conn_count(f, like), 1);
    free(like);
    size_t n = 0;
    if (file[0]) { /* a key from a file: rotate in place */
        must(store_secrets_rotate(f->s, NULL, &n, &err), &err);
        assert_int_equal(n, 1);
        store_secrets_info(f->s, &source, &file, &kid);
        assert_string_not_equal(kid, before);
        like = xasprintf("access_token LIKE 'enc1:%s:%%' AND qoyod_api_key LIKE 'enc1:%s:%%'",
                         kid, kid);
        assert_int_equal(raw_conn_count(f, like), 1);
        free(like);
        char *next = xasprintf("%s.next", file);
        assert_int_equal(access(next, F_OK), -1); /* the new key replaced the old file */
        free(next);
        must(store_conn_get(f->s, f->conn.id, &got, &err), &err);
        assert_conn_equal(&got, &f->conn);
        store_conn_release(&got);
    }
}

static void test_conn_put_get_find(void **state)
{
    struct fx *f = *state;
    struct th_err err = {0};
    assert_true(f->conn.id > 0);

    struct store_conn got;
    must(store_conn_get(f->s, f->conn.id, &got, &err), &err);
    assert_conn_equal(&got, &f->conn);
    store_conn_release(&got);
    /* release frees and zeroes */
    assert_null(got.name);
    assert_int_equal(got.id, 0);

    must(store_conn_find(f->s, MODEL_PLATFORM_SALLA, 1001, &got, &err), &err);
    assert_conn_equal(&got, &f->conn);
    store_conn_release(&got);

    /* NULL strings stay NULL */
    struct store_conn bare = {.platform = MODEL_PLATFORM_ZID, .store_id = 5};
    must(store_conn_put(f->s, &bare, &err), &err);
    must(store_conn_get(f->s, bare.id, &got, &err), &err);
    assert_null(got.name);
    assert_null(got.access_token);
    assert_int_equal(got.platform, MODEL_PLATFORM_ZID);
    store_conn_release(&got);

    assert_int_equal(store_conn_get(f->s, 424242, &got, &err), TH_ENOTFOUND);
    assert_non_null(strstr(err.msg, "424242"));
    assert_null(got.name);
    assert_int_equal(store_conn_find(f->s, MODEL_PLATFORM_ZID, 1001, &got, &err), TH_ENOTFOUND);
    assert_int_equal(store_conn_find(f->s, MODEL_PLATFORM_SALLA, 1002, &got, &err), TH_ENOTFOUND);
}

static void test_conn_update_and_unique(void **state)
{
    struct fx *f = *state;
    struct th_err err = {0};
    int64_t id = f->conn.id;

    /* update through the id */
    free(f->conn.access_token);
    f->conn.access_token = xstrdup("at-2");
    f->conn.financial_invoice = 1;
    must(store_conn_put(f->s, &f->conn, &err), &err);
    assert_int_equal(f->conn.id, id);
    struct store_conn got;
    must(store_conn_get(f->s, id, &got, &err), &err);
    assert_string_equal(got.access_token, "at-2");
    assert_int_equal(got.financial_invoice, 1);
    store_conn_release(&got);

    /* a put without id for the same (platform, store_id) updates that row */
    struct store_conn again;
    conn_fill(&again, 1001);
    free(again.status);
    again.status = xstrdup("needs_reinstall");
    must(store_conn_put(f->s, &again, &err), &err);
    assert_int_equal(again.id, id);
    must(store_conn_get(f->s, id, &got, &err), &err);
    assert_string_equal(got.status, "needs_reinstall");
    store_conn_release(&got);
    store_conn_release(&again);

    /* the same merchant id on the other platform is another connection */
    struct store_conn zid;
    conn_fill(&zid, 1001);
    zid.platform = MODEL_PLATFORM_ZID;
    must(store_conn_put(f->s, &zid, &err), &err);
    assert_true(zid.id > 0);
    assert_true(zid.id != id);

    /* moving a connection onto another's (platform, store_id) conflicts */
    zid.platform = MODEL_PLATFORM_SALLA;
    assert_int_equal(store_conn_put(f->s, &zid, &err), TH_ECONFLICT);
    must(store_conn_get(f->s, zid.id, &got, &err), &err);
    assert_int_equal(got.platform, MODEL_PLATFORM_ZID);
    store_conn_release(&got);
    store_conn_release(&zid);

    /* an id that does not exist */
    struct store_conn ghost;
    conn_fill(&ghost, 77);
    ghost.id = 9999;
    assert_int_equal(store_conn_put(f->s, &ghost, &err), TH_ENOTFOUND);
    assert_non_null(strstr(err.msg, "9999"));
    store_conn_release(&ghost);

    /* an unknown platform is refused before the database */
    struct store_conn badp = {.platform = (enum model_platform)9, .store_id = 1};
    assert_int_equal(store_conn_put(f->s, &badp, &err), TH_EINVAL);

    assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM connections"), 2);
}

/* ---------------------------------------------------------------------- */
/* Intake */

static void test_ingest_creates_job(void **state)
{
    struct fx *f = *state;
    assert_int_equal(job_count(f), 0);
    assert_int_equal(ingest(f, "evt-1", 5001), 0);
    assert_int_equal(job_count(f), 1);
    struct store_job j = claim(f, "w1", 60000);
    assert_true(j.id > 0);
    assert_int_equal(j.conn_id, f->conn.id);
    assert_int_equal(j.order_id, 5001);
    assert_int_equal(j.attempts, 1);
    assert_int_equal(j.run_after, f->now);

    /* an event about no order stores the event but queues nothing */
    assert_int_equal(ingest(f, "app-installed-1", 0), 0);
    assert_int_equal(job_count(f), 1);
    assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM events"), 2);
}

static void test_ingest_duplicate(void **state)
{
    struct fx *f = *state;
    assert_int_equal(ingest(f, "evt-1", 5001), 0);
    assert_int_equal(ingest(f, "evt-1", 5001), 1);
    assert_int_equal(job_count(f), 1);
    assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM events"), 1);

    /* after the job finished, a redelivery still creates nothing */
    struct th_err err = {0};
    struct store_job j = claim(f, "w1", 60000);
    must(store_job_done(f->s, j.id, &err), &err);
    assert_int_equal(job_count(f), 0);
    assert_int_equal(ingest(f, "evt-1", 5001), 1);
    assert_int_equal(job_count(f), 0);

    /* dedupe keys are per connection */
    struct store_conn other;
    conn_fill(&other, 2002);
    must(store_conn_put(f->s, &other, &err), &err);
    int dup = -1;
    must(store_event_ingest(f->s, other.id, "evt-1", "order.created", 5001, "{}", 2, &dup, &err),
         &err);
    assert_int_equal(dup, 0);
    assert_int_equal(job_count(f), 1);
    store_conn_release(&other);
    assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM events"), 2);
}

static void test_two_events_one_job(void **state)
{
    struct fx *f = *state;
    assert_int_equal(ingest(f, "evt-a", 5001), 0);
    f->now += 10;
    assert_int_equal(ingest(f, "evt-b", 5001), 0);
    assert_int_equal(job_count(f), 1);
    assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM events"), 2);
    /* the job kept its first due time */
    struct store_job j = claim(f, "w1", 60000);
    assert_int_equal(j.run_after, f->now - 10);
    claim_none(f);
}

static void test_ingest_rejects(void **state)
{
    struct fx *f = *state;
    struct th_err err = {0};
    int dup = -1;
    /* unknown connection: nothing written */
    assert_int_equal(store_event_ingest(f->s, 4242, "k", "order.created", 1, "{}", 2, &dup, &err),
                     TH_ENOTFOUND);
    assert_int_equal(dup, 0);
    assert_int_equal(job_count(f), 0);
    assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM events"), 0);

    assert_int_equal(
        store_event_ingest(f->s, f->conn.id, "", "order.created", 1, "{}", 2, &dup, &err),
        TH_EINVAL);
    assert_int_equal(
        store_event_ingest(f->s, f->conn.id, NULL, "order.created", 1, "{}", 2, &dup, &err),
        TH_EINVAL);
    assert_int_equal(store_event_ingest(f->s, f->conn.id, "k", NULL, 1, "{}", 2, &dup, &err),
                     TH_EINVAL);

    /* body size: limit - 1 and limit are kept, limit + 1 is refused */
    size_t cap = STORE_MAX_EVENT_BODY;
    char *big = xmalloc(cap + 1);
    memset(big, 'x', cap + 1);
    must(
        store_event_ingest(f->s, f->conn.id, "big-1", "order.created", 1, big, cap - 1, &dup, &err),
        &err);
    must(store_event_ingest(f->s, f->conn.id, "big-2", "order.created", 2, big, cap, &dup, &err),
         &err);
    assert_int_equal(
        store_event_ingest(f->s, f->conn.id, "big-3", "order.created", 3, big, cap + 1, &dup, &err),
        TH_ETOOBIG);
    free(big);
    assert_int_equal(job_count(f), 2);
    assert_int_equal(raw_int(f, "SELECT length(body) FROM events WHERE dedupe_key = 'big-2'"),
                     (int64_t)cap);
}

/* ---------------------------------------------------------------------- */
/* Jobs */

static void test_claim_oldest_first_and_run_after(void **state)
{
    struct fx *f = *state;
    struct th_err err = {0};
    int64_t t0 = f->now;
    assert_int_equal(ingest(f, "e3", 3), 0);
    f->now += 100;
    assert_int_equal(ingest(f, "e1", 1), 0);
    f->now += 100;
    assert_int_equal(ingest(f, "e2", 2), 0);

    struct store_job a = claim(f, "w1", 60000);
    struct store_job b = claim(f, "w1", 60000);
    struct store_job c = claim(f, "w2", 60000);
    assert_int_equal(a.order_id, 3);
    assert_int_equal(a.run_after, t0);
    assert_int_equal(b.order_id, 1);
    assert_int_equal(c.order_id, 2);
    claim_none(f);

    /* retry later: not due before run_after, due exactly at it */
    must(store_job_retry(f->s, b.id, f->now + 5000, "qoyod answered 503", &err), &err);
    must(store_job_done(f->s, a.id, &err), &err);
    must(store_job_done(f->s, c.id, &err), &err);
    assert_int_equal(job_count(f), 1);
    f->now += 4999;
    claim_none(f);
    f->now += 1;
    struct store_job b2 = claim(f, "w3", 60000);
    assert_int_equal(b2.id, b.id);
    assert_int_equal(b2.order_id, 1);
    assert_int_equal(b2.attempts, 2);
    assert_int_equal(b2.run_after, f->now);
    must(store_job_done(f->s, b2.id, &err), &err);
    assert_int_equal(job_count(f), 0);
    claim_none(f);

    /* unknown job ids */
    assert_int_equal(store_job_done(f->s, b2.id, &err), TH_ENOTFOUND);
    assert_int_equal(store_job_retry(f->s, 777, f->now, "x", &err), TH_ENOTFOUND);
    assert_non_null(strstr(err.msg, "777"));

    /* argument checks */
    struct store_job j;
    assert_int_equal(store_job_claim(f->s, "", 1000, &j, &err), TH_EINVAL);
    assert_int_equal(store_job_claim(f->s, "w", 0, &j, &err), TH_EINVAL);
}

static void test_claim_one_per_order_and_rerun(void **state)
{
    struct fx *f = *state;
    struct th_err err = {0};
    assert_int_equal(ingest(f, "e1", 42), 0);
    struct store_job j = claim(f, "w1", 60000);
    assert_int_equal(j.order_id, 42);

    /* a new event while the job runs: still one job, not claimable */
    f->now += 10;
    assert_int_equal(ingest(f, "e2", 42), 0);
    assert_int_equal(job_count(f), 1);
    claim_none(f);
    must(store_job_enqueue(f->s, f->conn.id, 42, &err), &err);
    assert_int_equal(job_count(f), 1);
    claim_none(f);

    /* finishing it keeps the job for the event that came in meanwhile */
    must(store_job_done(f->s, j.id, &err), &err);
    assert_int_equal(job_count(f), 1);
    struct store_job again = claim(f, "w2", 60000);
    assert_int_equal(again.id, j.id);
    assert_int_equal(again.order_id, 42);
    assert_int_equal(again.attempts, 1);
    must(store_job_done(f->s, again.id, &err), &err);
    assert_int_equal(job_count(f), 0);
}

static void test_expired_lease_reclaimed(void **state)
{
    struct fx *f = *state;
    struct th_err err = {0};
    assert_int_equal(ingest(f, "e1", 9), 0);
    struct store_job j = claim(f, "dead-worker", 500);
    assert_int_equal(j.attempts, 1);
    f->now += 500; /* lease_until = now: still held */
    claim_none(f);
    f->now += 1;
    struct store_job k = claim(f, "w2", 500);
    assert_int_equal(k.id, j.id);
    assert_int_equal(k.order_id, 9);
    assert_int_equal(k.attempts, 2);
    assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM jobs WHERE lease_owner = 'w2'"), 1);
    must(store_job_done(f->s, k.id, &err), &err);
    assert_int_equal(job_count(f), 0);
}

static void test_enqueue(void **state)
{
    struct fx *f = *state;
    struct th_err err = {0};
    must(store_job_enqueue(f->s, f->conn.id, 77, &err), &err);
    must(store_job_enqueue(f->s, f->conn.id, 77, &err), &err);
    assert_int_equal(job_count(f), 1);
    /* enqueue makes a job that waits on backoff due now */
    struct store_job j = claim(f, "w1", 60000);
    must(store_job_retry(f->s, j.id, f->now + 3600000, "later", &err), &err);
    claim_none(f);
    must(store_job_enqueue(f->s, f->conn.id, 77, &err), &err);
    struct store_job k = claim(f, "w1", 60000);
    assert_int_equal(k.id, j.id);
    assert_int_equal(k.attempts, 2);
    assert_int_equal(k.run_after, f->now);
    assert_int_equal(store_job_enqueue(f->s, 31337, 1, &err), TH_ENOTFOUND);
    assert_int_equal(job_count(f), 1);
}

/* ---------------------------------------------------------------------- */
/* Orders and history */

static struct store_order order_make(int64_t conn_id, int64_t id, int64_t created,
                                     enum store_xfer x)
{
    struct store_order o = {.conn_id = conn_id,
                            .order_id = id,
                            .status = MODEL_STATUS_COMPLETED,
                            .xfer = x,
                            .attempts = 2,
                            .total = 11500,
                            .tax = 1500,
                            .qoyod_total = 11500,
                            .qoyod_invoice_id = 900 + id,
                            .qoyod_payment_id = 800 + id,
                            .created_at = created,
                            .updated_at = created + 5,
                            .transferred_at = created + 9,
                            .credit = x == STORE_XFER_TRANSFERRED ? STORE_CREDIT_DONE
                                                                   : STORE_CREDIT_NONE,
                            .credited = x == STORE_XFER_TRANSFERRED ? 2875 : 0};
    o.number = xasprintf("N-%lld", (long long)id);
    o.qoyod_reference = xasprintf("REF-%lld", (long long)id);
    if (x == STORE_XFER_FAILED) {
        o.reason_code = TH_EPERM;
        o.reason = xstrdup("SKU 'A-1' is missing in Qoyod");
    }
    return o;
}

static void assert_order_equal(const struct store_order *a, const struct store_order *b)
{
    assert_int_equal(a->conn_id, b->conn_id);
    assert_int_equal(a->order_id, b->order_id);
    assert_string_equal(a->number, b->number);
    assert_int_equal(a->status, b->status);
    assert_int_equal(a->xfer, b->xfer);
    assert_int_equal(a->reason_code, b->reason_code);
    if (b->reason)
        assert_string_equal(a->reason, b->reason);
    else
        assert_null(a->reason);
    assert_int_equal(a->attempts, b->attempts);
    assert_int_equal(a->total, b->total);
    assert_int_equal(a->tax, b->tax);
    assert_int_equal(a->credit, b->credit);
    assert_int_equal(a->credited, b->credited);
    assert_int_equal(a->qoyod_total, b->qoyod_total);
    assert_int_equal(a->qoyod_invoice_id, b->qoyod_invoice_id);
    assert_string_equal(a->qoyod_reference, b->qoyod_reference);
    assert_int_equal(a->qoyod_payment_id, b->qoyod_payment_id);
    assert_int_equal(a->created_at, b->created_at);
    assert_int_equal(a->updated_at, b->updated_at);
    assert_int_equal(a->transferred_at, b->transferred_at);
}

struct listed {
    int n;
    int64_t ids[16];
    struct store *s; /* set: the callback re-enters the store */
};

static void collect(void *arg, const struct store_order *o)
{
    struct listed *l = arg;
    if (l->n < 16) l->ids[l->n] = o->order_id;
    l->n++;
    if (l->s) {
        struct th_err err = {0};
        must(store_job_enqueue(l->s, o->conn_id, o->order_id, &err), &err);
    }
}

static void test_orders(void **state)
{
    struct fx *f = *state;
    struct th_err err = {0};
    struct store_order o1 = order_make(f->conn.id, 11, 300, STORE_XFER_TRANSFERRED);
    struct store_order o2 = order_make(f->conn.id, 12, 100, STORE_XFER_FAILED);
    struct store_order o3 = order_make(f->conn.id, 13, 200, STORE_XFER_FAILED);
    must(store_order_put(f->s, &o1, &err), &err);
    must(store_order_put(f->s, &o2, &err), &err);
    must(store_order_put(f->s, &o3, &err), &err);

    struct store_order got;
    must(store_order_get(f->s, f->conn.id, 12, &got, &err), &err);
    assert_order_equal(&got, &o2);
    store_order_release(&got);
    assert_null(got.number);
    assert_int_equal(got.order_id, 0);

    /* put replaces the whole row */
    store_order_release(&o2);
    o2 = order_make(f->conn.id, 12, 100, STORE_XFER_NOT_TRANSFERRED);
    o2.attempts = 5;
    must(store_order_put(f->s, &o2, &err), &err);
    must(store_order_get(f->s, f->conn.id, 12, &got, &err), &err);
    assert_order_equal(&got, &o2);
    assert_null(got.reason);
    store_order_release(&got);

    assert_int_equal(store_order_get(f->s, f->conn.id, 99, &got, &err), TH_ENOTFOUND);
    assert_non_null(strstr(err.msg, "99"));
    assert_int_equal(store_order_get(f->s, f->conn.id + 1, 11, &got, &err), TH_ENOTFOUND);

    /* list: all, ordered by created_at */
    struct listed l = {0};
    must(store_order_list(f->s, 0, -1, collect, &l, &err), &err);
    assert_int_equal(l.n, 3);
    assert_int_equal(l.ids[0], 12);
    assert_int_equal(l.ids[1], 13);
    assert_int_equal(l.ids[2], 11);
    /* by state */
    memset(&l, 0, sizeof l);
    must(store_order_list(f->s, f->conn.id, STORE_XFER_FAILED, collect, &l, &err), &err);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.ids[0], 13);
    memset(&l, 0, sizeof l);
    must(store_order_list(f->s, f->conn.id, STORE_XFER_SKIPPED, collect, &l, &err), &err);
    assert_int_equal(l.n, 0);
    /* by connection */
    memset(&l, 0, sizeof l);
    must(store_order_list(f->s, f->conn.id + 1, -1, collect, &l, &err), &err);
    assert_int_equal(l.n, 0);
    /* a callback may call the store (the CLI's "retry failed" does) */
    memset(&l, 0, sizeof l);
    l.s = f->s;
    must(store_order_list(f->s, 0, -1, collect, &l, &err), &err);
    assert_int_equal(l.n, 3);
    assert_int_equal(job_count(f), 3);

    /* an order of an unknown connection */
    struct store_order ghost = order_make(5555, 1, 1, STORE_XFER_NOT_TRANSFERRED);
    assert_int_equal(store_order_put(f->s, &ghost, &err), TH_ENOTFOUND);
    store_order_release(&ghost);

    store_order_release(&o1);
    store_order_release(&o2);
    store_order_release(&o3);
}

/* store_order_add inserts only what is new and never touches a known row
 * (the pull of old orders must not undo a transfer). */
static void test_order_add(void **state)
{
    struct fx *f = *state;
    struct th_err err = {0};
    struct store_order done = order_make(f->conn.id, 21, 100, STORE_XFER_TRANSFERRED);
    must(store_order_put(f->s, &done, &err), &err);
    int added = -1;
    /* a known, transferred order: left exactly as it was */
    struct store_order pulled = order_make(f->conn.id, 21, 100, STORE_XFER_NOT_TRANSFERRED);
    pulled.qoyod_invoice_id = 0;
    must(store_order_add(f->s, &pulled, &added, &err), &err);
    assert_int_equal(added, 0);
    struct store_order got;
    must(store_order_get(f->s, f->conn.id, 21, &got, &err), &err);
    assert_order_equal(&got, &done);
    store_order_release(&got);
    /* a new one: inserted whole */
    struct store_order fresh = order_make(f->conn.id, 22, 150, STORE_XFER_NOT_TRANSFERRED);
    must(store_order_add(f->s, &fresh, &added, &err), &err);
    assert_int_equal(added, 1);
    must(store_order_get(f->s, f->conn.id, 22, &got, &err), &err);
    assert_order_equal(&got, &fresh);
    store_order_release(&got);
    /* adding it again changes nothing */
    fresh.total = 1;
    must(store_order_add(f->s, &fresh, &added, &err), &err);
    assert_int_equal(added, 0);
    must(store_order_get(f->s, f->conn.id, 22, &got, &err), &err);
    assert_int_equal(got.total, 11500);
    store_order_release(&got);
    /* an unknown connection */
    struct store_order ghost = order_make(5555, 1, 1, STORE_XFER_NOT_TRANSFERRED);
    assert_int_equal(store_order_add(f->s, &ghost, &added, &err), TH_ENOTFOUND);
    assert_int_equal(added, 0);
    store_order_release(&ghost);
    store_order_release(&fresh);
    store_order_release(&pulled);
    store_order_release(&done);
}

struct notes {
    int n;
    int64_t ts[8];
    char what[8][64], detail[8][64];
};

static void note_cb(void *arg, int64_t ts_ms, const char *what, const char *detail)
{
    struct notes *ns = arg;
    if (ns->n < 8) {
        ns->ts[ns->n] = ts_ms;
        snprintf(ns->what[ns->n], sizeof ns->what[0], "%s", what);
        snprintf(ns->detail[ns->n], sizeof ns->detail[0], "%s", detail);
    }
    ns->n++;
}

static void test_history(void **state)
{
    struct fx *f = *state;
    struct th_err err = {0};
    int64_t t0 = f->now;
    must(store_order_note(f->s, f->conn.id, 11, "transferring", "attempt 1", &err), &err);
    f->now += 250;
    must(store_order_note(f->s, f->conn.id, 11, "transferred", NULL, &err), &err);
    must(store_order_note(f->s, f->conn.id, 12, "failed", "no SKU", &err), &err);
    assert_int_equal(store_order_note(f->s, f->conn.id, 11, "", "x", &err), TH_EINVAL);
    assert_int_equal(store_order_note(f->s, 6060, 11, "x", "y", &err), TH_ENOTFOUND);

    struct notes ns = {0};
    must(store_order_history(f->s, f->conn.id, 11, note_cb, &ns, &err), &err);
    assert_int_equal(ns.n, 2);
    assert_int_equal(ns.ts[0], t0);
    assert_string_equal(ns.what[0], "transferring");
    assert_string_equal(ns.detail[0], "attempt 1");
    assert_int_equal(ns.ts[1], t0 + 250);
    assert_string_equal(ns.what[1], "transferred");
    assert_string_equal(ns.detail[1], "");
    memset(&ns, 0, sizeof ns);
    must(store_order_history(f->s, f->conn.id, 13, note_cb, &ns, &err), &err);
    assert_int_equal(ns.n, 0);
}

/* Many orders queued by hand in one transaction: each gets one manual job
 * (an existing job is made manual and due, not doubled) and its note; the
 * bounds are 1 and STORE_MAX_ENQUEUE; an unknown connection queues nothing. */
static void test_enqueue_many(void **state)
{
    struct fx *f = *state;
    struct th_err err = {0};
    int dup = 0;
    /* 501 has a job from a webhook already, waiting on backoff */
    must(store_event_ingest(f->s, f->conn.id, "e1", "order.created", 501, "{}", 2, &dup, &err),
         &err);
    struct store_job j = claim(f, "w1", 60000);
    must(store_job_retry(f->s, j.id, f->now + 3600000, "later", &err), &err);
    int64_t ids[3] = {500, 501, 502};
    must(store_job_enqueue_many(f->s, f->conn.id, ids, 3, "queued by hand", "from a test", &err),
         &err);
    assert_int_equal(job_count(f), 3);
    int64_t seen = 0;
    for (int i = 0; i < 3; i++) {
        struct store_job k = claim(f, "w1", 60000);
        assert_int_equal(k.manual, 1);
        assert_true(k.order_id >= 500 && k.order_id <= 502);
        seen |= 1 << (k.order_id - 500);
        must(store_job_done(f->s, k.id, &err), &err);
    }
    assert_int_equal(seen, 7);
    for (int i = 0; i < 3; i++) {
        struct notes ns = {0};
        must(store_order_history(f->s, f->conn.id, ids[i], note_cb, &ns, &err), &err);
        assert_int_equal(ns.n, 1);
        assert_string_equal(ns.what[0], "queued by hand");
        assert_string_equal(ns.detail[0], "from a test");
    }
    /* no note asked for: none written */
    int64_t one = 503;
    must(store_job_enqueue_many(f->s, f->conn.id, &one, 1, NULL, NULL, &err), &err);
    struct notes ns = {0};
    must(store_order_history(f->s, f->conn.id, 503, note_cb, &ns, &err), &err);
    assert_int_equal(ns.n, 0);
    assert_int_equal(job_count(f), 1);

    /* the bounds */
    int64_t *many = xcalloc(STORE_MAX_ENQUEUE + 1, sizeof *many);
    for (int i = 0; i <= STORE_MAX_ENQUEUE; i++) many[i] = 10000 + i;
    assert_int_equal(store_job_enqueue_many(f->s, f->conn.id, many, 0, NULL, NULL, &err),
                     TH_EINVAL);
    assert_int_equal(
        store_job_enqueue_many(f->s, f->conn.id, many, STORE_MAX_ENQUEUE + 1, NULL, NULL, &err),
        TH_EINVAL);
    many[3] = 0;
    assert_int_equal(store_job_enqueue_many(f->s, f->conn.id, many, 5, NULL, NULL, &err),
                     TH_EINVAL);
    assert_int_equal(job_count(f), 1);
    many[3] = 10003;
    must(store_job_enqueue_many(f->s, f->conn.id, many, STORE_MAX_ENQUEUE, "q", NULL, &err),
         &err);
    assert_int_equal(job_count(f), 1 + STORE_MAX_ENQUEUE);
    /* an unknown connection: nothing */
    assert_int_equal(store_job_enqueue_many(f->s, 31337, many, 4, "q", "x", &err), TH_ENOTFOUND);
    assert_int_equal(job_count(f), 1 + STORE_MAX_ENQUEUE);
    free(many);
}

/* ---------------------------------------------------------------------- */
/* Mappings */

static void test_mappings(void **state)
{
    struct fx *f = *state;
    struct th_err err = {0};
    int64_t id = -1;
    assert_int_equal(store_map_get(f->s, f->conn.id, "product", "SKU-1", &id, &err), TH_ENOTFOUND);
    assert_non_null(strstr(err.msg, "SKU-1"));
    assert_int_equal(id, 0);
    must(store_map_put(f->s, f->conn.id, "product", "SKU-1", 501, &err), &err);
    must(store_map_put(f->s, f->conn.id, "contact", "SKU-1", 601, &err), &err);
    must(store_map_get(f->s, f->conn.id, "product", "SKU-1", &id, &err), &err);
    assert_int_equal(id, 501);
    must(store_map_get(f->s, f->conn.id, "contact", "SKU-1", &id, &err), &err);
    assert_int_equal(id, 601);
    /* update */
    must(store_map_put(f->s, f->conn.id, "product", "SKU-1", 502, &err), &err);
    must(store_map_get(f->s, f->conn.id, "product", "SKU-1", &id, &err), &err);
    assert_int_equal(id, 502);
    assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM mappings"), 2);
    /* per connection */
    assert_int_equal(store_map_get(f->s, f->conn.id + 1, "product", "SKU-1", &id, &err),
                     TH_ENOTFOUND);
    assert_int_equal(store_map_put(f->s, 8080, "product", "SKU-1", 1, &err), TH_ENOTFOUND);
    assert_int_equal(store_map_put(f->s, f->conn.id, "", "SKU-1", 1, &err), TH_EINVAL);
    assert_int_equal(store_map_get(f->s, f->conn.id, "product", NULL, &id, &err), TH_EINVAL);
}

/* "name/tenant " for each user, with "@ms" after the tenant for users whose
 * password was set after the fixture's starting time (1 000 000 ms) */
static void user_seen(void *arg, const char *name, int64_t tenant, int64_t set_ms)
{
    char *out = arg;
    size_t len = strlen(out);
    if (set_ms > 1000000)
        snprintf(out + len, 256 - len, "%s/%lld@%lld ", name, (long long)tenant, (long long)set_ms);
    else
        snprintf(out + len, 256 - len, "%s/%lld ", name, (long long)tenant);
}

static void test_users(void **state)
{
    struct fx *f = *state;
    struct th_err err = {0};
    char *h = (char *)"untouched";
    int64_t n = -1;
    must(store_user_count(f->s, &n, &err), &err);
    assert_int_equal(n, 0);
    assert_int_equal(store_user_get(f->s, "admin", &h, &err), TH_ENOTFOUND);
    assert_null(h);
    assert_non_null(strstr(err.msg, "admin"));
    must(store_user_put(f->s, "admin", "$scrypt$one", &err), &err);
    must(store_user_put(f->s, "sara@shop.sa", "$scrypt$two", &err), &err);
    must(store_user_get(f->s, "admin", &h, &err), &err);
    assert_string_equal(h, "$scrypt$one");
    free(h);
    /* a new password replaces the old hash; names are exact (case too) */
    must(store_user_put(f->s, "admin", "$scrypt$three", &err), &err);
    must(store_user_get(f->s, "admin", &h, &err), &err);
    assert_string_equal(h, "$scrypt$three");
    free(h);
    assert_int_equal(store_user_get(f->s, "Admin", &h, &err), TH_ENOTFOUND);
    must(store_user_count(f->s, &n, &err), &err);
    assert_int_equal(n, 2);
    /* refused names and hashes */
    assert_int_equal(store_user_put(f->s, "", "$scrypt$x", &err), TH_EINVAL);
    assert_int_equal(store_user_put(f->s, "a b", "$scrypt$x", &err), TH_EINVAL);
    assert_int_equal(store_user_put(f->s, "x'--", "$scrypt$x", &err), TH_EINVAL);
    assert_int_equal(store_user_put(f->s, "bob", "", &err), TH_EINVAL);
    assert_int_equal(store_user_get(f->s, NULL, &h, &err), TH_EINVAL);
    /* kept across a reopen */
    reopen(f);
    must(store_user_get(f->s, "sara@shop.sa", &h, &err), &err);
    assert_string_equal(h, "$scrypt$two");
    free(h);

    /* listed by name, per tenant, with when the password was set; removed */
    int64_t acme = 0;
    must(store_tenant_add(f->s, "acme", &acme, &err), &err);
    f->now += 5000;
    must(store_user_put_in(f->s, "bob", "$scrypt$four", acme, &err), &err);
    char seen[256] = "";
    must(store_user_list(f->s, 0, user_seen, seen, &err), &err);
    char want[256];
    /* by name: "admin" < "bob" < "sara@shop.sa" */
    snprintf(want, sizeof want, "admin/%d bob/%lld@%lld sara@shop.sa/%d ", STORE_TENANT_DEFAULT,
             (long long)acme, (long long)f->now, STORE_TENANT_DEFAULT);
    assert_string_equal(seen, want);
    seen[0] = '\0';
    must(store_user_list(f->s, acme, user_seen, seen, &err), &err);
    snprintf(want, sizeof want, "bob/%lld@%lld ", (long long)acme, (long long)f->now);
    assert_string_equal(seen, want);
    must(store_user_delete(f->s, "sara@shop.sa", &err), &err);
    assert_int_equal(store_user_get(f->s, "sara@shop.sa", &h, &err), TH_ENOTFOUND);
    assert_int_equal(store_user_delete(f->s, "sara@shop.sa", &err), TH_ENOTFOUND);
    assert_non_null(strstr(err.msg, "sara@shop.sa"));
    must(store_user_count(f->s, &n, &err), &err);
    assert_int_equal(n, 2);
}

/* ---------------------------------------------------------------------- */
/* Tenants */

static void add_tenant_name(void *arg, const struct store_tenant *t)
{
    char *names = arg;
    size_t o = strlen(names);
    snprintf(names + o, 256 - o, "%s%lld:%s", o ? "," : "", (long long)t->id, t->name);
}

static void add_token_id(void *arg, const struct store_token *t)
{
    char *ids = arg;
    size_t o = strlen(ids);
    snprintf(ids + o, 256 - o, "%s%lld/%lld:%s", o ? "," : "", (long long)t->id,
             (long long)t->tenant_id, t->label);
}

#define DIGEST_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define DIGEST_B "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* The default tenant exists from the start and owns what was made without
 * one; tenants are added once by name; tokens are kept as digests, found,
 * listed per tenant and revoked. */
static void test_tenants_and_tokens(void **state)
{
    struct fx *f = *state;
    struct th_err err = {0};
    struct store_tenant t;
    must(store_tenant_get(f->s, STORE_TENANT_DEFAULT, &t, &err), &err);
    assert_string_equal(t.name, "default");
    assert_int_equal(f->conn.tenant_id, 0); /* as the caller left it */
    struct store_conn c;
    must(store_conn_get(f->s, f->conn.id, &c, &err), &err);
    assert_int_equal(c.tenant_id, STORE_TENANT_DEFAULT);
    store_conn_release(&c);
    int64_t acme = 0, beta = 0, id = -1;
    must(store_tenant_add(f->s, "acme", &acme, &err), &err);
    must(store_tenant_add(f->s, "beta.shops", &beta, &err), &err);
    assert_true(acme > STORE_TENANT_DEFAULT && beta > acme);
    assert_int_equal(store_tenant_add(f->s, "acme", &id, &err), TH_ECONFLICT);
    assert_non_null(strstr(err.msg, "acme"));
    assert_int_equal(store_tenant_add(f->s, "a b", &id, &err), TH_EINVAL);
    assert_int_equal(store_tenant_add(f->s, "", &id, &err), TH_EINVAL);
    must(store_tenant_find(f->s, "beta.shops", &t, &err), &err);
    assert_int_equal(t.id, beta);
    assert_int_equal(store_tenant_find(f->s, "nobody", &t, &err), TH_ENOTFOUND);
    assert_int_equal(store_tenant_get(f->s, 999, &t, &err), TH_ENOTFOUND);
    char names[256] = "";
    must(store_tenant_list(f->s, add_tenant_name, names, &err), &err);
    char want[256];
    snprintf(want, sizeof want, "1:default,%lld:acme,%lld:beta.shops", (long long)acme,
             (long long)beta);
    assert_string_equal(names, want);

    int64_t n = -1, ta = 0, tb = 0;
    must(store_token_count(f->s, &n, &err), &err);
    assert_int_equal(n, 0);
    must(store_token_add(f->s, acme, DIGEST_A, "ci deploys", &ta, &err), &err);
    must(store_token_add(f->s, beta, DIGEST_B, "", &tb, &err), &err);
    assert_true(ta > 0 && tb > ta);
    assert_int_equal(store_token_add(f->s, beta, DIGEST_A, "again", &id, &err), TH_ECONFLICT);
    assert_int_equal(store_token_add(f->s, 999, DIGEST_B "0", "", &id, &err), TH_EINVAL);
    assert_int_equal(store_token_add(f->s, 999,
                                     "AAAAaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                                     "", &id, &err), TH_EINVAL);
    assert_int_equal(store_token_add(f->s, 999,
                                     "1111111111111111111111111111111111111111111111111111111111111111",
                                     "", &id, &err),
                     TH_ENOTFOUND);
    assert_int_equal(store_token_add(f->s, acme,
                                     "2222222222222222222222222222222222222222222222222222222222222222",
                                     "tab\there", &id, &err),
                     TH_EINVAL);
    struct store_token tok;
    must(store_token_find(f->s, DIGEST_A, &tok, &err), &err);
    assert_int_equal(tok.id, ta);
    assert_int_equal(tok.tenant_id, acme);
    assert_string_equal(tok.label, "ci deploys");
    assert_int_equal(tok.created_ms, f->now);
    assert_int_equal(store_token_find(f->s,
                                      "3333333333333333333333333333333333333333333333333333333333333333",
                                      &tok, &err),
                     TH_ENOTFOUND);
    char ids[256] = "";
    must(store_token_list(f->s, 0, add_token_id, ids, &err), &err);
    snprintf(want, sizeof want, "%lld/%lld:ci deploys,%lld/%lld:", (long long)ta, (long long)acme,
             (long long)tb, (long long)beta);
    assert_string_equal(ids, want);
    ids[0] = '\0';
    must(store_token_list(f->s, beta, add_token_id, ids, &err), &err);
    snprintf(want, sizeof want, "%lld/%lld:", (long long)tb, (long long)beta);
    assert_string_equal(ids, want);
    /* revoked: gone at once; a second revoke finds nothing */
    must(store_token_revoke(f->s, ta, &err), &err);
    assert_int_equal(store_token_find(f->s, DIGEST_A, &tok, &err), TH_ENOTFOUND);
    assert_int_equal(store_token_revoke(f->s, ta, &err), TH_ENOTFOUND);
    must(store_token_count(f->s, &n, &err), &err);
    assert_int_equal(n, 1);
    reopen(f);
    must(store_token_find(f->s, DIGEST_B, &tok, &err), &err);
    assert_int_equal(tok.tenant_id, beta);
    must(store_tenant_find(f->s, "acme", &t, &err), &err);
    assert_int_equal(t.id, acme);
}

static void add_order_key(void *arg, const struct store_order *o)
{
    char *keys = arg;
    size_t o2 = strlen(keys);
    snprintf(keys + o2, 256 - o2, "%s%lld", o2 ? "," : "", (long long)o->order_id);
}

static void add_conn_store(void *arg, const struct store_conn *c)
{
    char *keys = arg;
    size_t o = strlen(keys);
    snprintf(keys + o, 256 - o, "%s%lld", o ? "," : "", (long long)c->store_id);
}

/* Connections and users carry their tenant; a put without one keeps it;
 * the listings limited to a tenant show its rows only. */
static void test_tenant_rows(void **state)
{
    struct fx *f = *state;
    struct th_err err = {0};
    int64_t acme = 0;
    must(store_tenant_add(f->s, "acme", &acme, &err), &err);
    struct store_conn a;
    conn_fill(&a, 2002);
    a.tenant_id = acme;
    must(store_conn_put(f->s, &a, &err), &err);
    struct store_conn bad;
    conn_fill(&bad, 3003);
    bad.tenant_id = 777;
    assert_int_equal(store_conn_put(f->s, &bad, &err), TH_ENOTFOUND);
    store_conn_release(&bad);
    assert_int_equal(raw_conn_count(f, "store_id = 3003"), 0);
    /* a put that names no tenant (a token refresh, the worker) keeps it */
    struct store_conn got;
    must(store_conn_get(f->s, a.id, &got, &err), &err);
    assert_int_equal(got.tenant_id, acme);
    got.tenant_id = 0;
    free(got.name);
    got.name = xstrdup("Renamed");
    must(store_conn_put(f->s, &got, &err), &err);
    store_conn_release(&got);
    struct store_conn up;
    conn_fill(&up, 2002); /* by (platform, store_id), id 0, no tenant */
    must(store_conn_put(f->s, &up, &err), &err);
    assert_int_equal(up.id, a.id);
    store_conn_release(&up);
    must(store_conn_find(f->s, MODEL_PLATFORM_SALLA, 2002, &got, &err), &err);
    assert_int_equal(got.tenant_id, acme);
    store_conn_release(&got);
    /* the operator moves a store by naming another tenant */
    struct store_conn mv;
    conn_fill(&mv, 1001);
    mv.tenant_id = acme;
    must(store_conn_put(f->s, &mv, &err), &err);
    must(store_conn_get(f->s, f->conn.id, &got, &err), &err);
    assert_int_equal(got.tenant_id, acme);
    store_conn_release(&got);
    mv.tenant_id = STORE_TENANT_DEFAULT;
    must(store_conn_put(f->s, &mv, &err), &err); /* by id now: back to default */
    store_conn_release(&mv);
    must(store_conn_get(f->s, f->conn.id, &got, &err), &err);
    assert_int_equal(got.tenant_id, STORE_TENANT_DEFAULT);
    store_conn_release(&got);

    char keys[256] = "";
    must(store_conn_list_in(f->s, acme, add_conn_store, keys, &err), &err);
    assert_string_equal(keys, "2002");
    keys[0] = '\0';
    must(store_conn_list_in(f->s, STORE_TENANT_DEFAULT, add_conn_store, keys, &err), &err);
    assert_string_equal(keys, "1001");
    keys[0] = '\0';
    must(store_conn_list_in(f->s, 0, add_conn_store, keys, &err), &err);
    assert_string_equal(keys, "1001,2002");

    struct store_order o1 = order_make(f->conn.id, 11, 100, STORE_XFER_FAILED);
    struct store_order o2 = order_make(a.id, 22, 200, STORE_XFER_FAILED);
    struct store_order o3 = order_make(a.id, 33, 300, STORE_XFER_TRANSFERRED);
    must(store_order_put(f->s, &o1, &err), &err);
    must(store_order_put(f->s, &o2, &err), &err);
    must(store_order_put(f->s, &o3, &err), &err);
    store_order_release(&o1);
    store_order_release(&o2);
    store_order_release(&o3);
    keys[0] = '\0';
    must(store_order_list_in(f->s, acme, 0, -1, add_order_key, keys, &err), &err);
    assert_string_equal(keys, "22,33");
    keys[0] = '\0';
    must(store_order_list_in(f->s, acme, 0, STORE_XFER_FAILED, add_order_key, keys, &err), &err);
    assert_string_equal(keys, "22");
    keys[0] = '\0'; /* another tenant's connection named: nothing */
    must(store_order_list_in(f->s, STORE_TENANT_DEFAULT, a.id, -1, add_order_key, keys, &err),
         &err);
    assert_string_equal(keys, "");
    keys[0] = '\0';
    must(store_order_list_in(f->s, 0, 0, -1, add_order_key, keys, &err), &err);
    assert_string_equal(keys, "11,22,33");
    keys[0] = '\0';
    must(store_order_list(f->s, 0, -1, add_order_key, keys, &err), &err);
    assert_string_equal(keys, "11,22,33");
    store_conn_release(&a);

    /* users: a new one lands in the default tenant unless told; a new
     * password without a tenant keeps the user's */
    int64_t tenant = -1;
    char *h = NULL;
    must(store_user_put(f->s, "admin", "$scrypt$one", &err), &err);
    must(store_user_put_in(f->s, "sara", "$scrypt$two", acme, &err), &err);
    must(store_user_get_in(f->s, "admin", &h, &tenant, &err), &err);
    assert_int_equal(tenant, STORE_TENANT_DEFAULT);
    free(h);
    must(store_user_put(f->s, "sara", "$scrypt$three", &err), &err);
    must(store_user_get_in(f->s, "sara", &h, &tenant, &err), &err);
    assert_int_equal(tenant, acme);
    assert_string_equal(h, "$scrypt$three");
    free(h);
    assert_int_equal(store_user_put_in(f->s, "sara", "$scrypt$x", 999, &err), TH_ENOTFOUND);
    must(store_user_put_in(f->s, "sara", "$scrypt$four", STORE_TENANT_DEFAULT, &err), &err);
    must(store_user_get_in(f->s, "sara", &h, &tenant, &err), &err);
    assert_int_equal(tenant, STORE_TENANT_DEFAULT);
    assert_string_equal(h, "$scrypt$four");
    free(h);
}

/* ---------------------------------------------------------------------- */
/* Durability and opening */

static void test_reopen_keeps_everything(void **state)
{
    struct fx *f = *state;
    struct th_err err = {0};
    assert_int_equal(ingest(f, "e1", 31), 0);
    assert_int_equal(ingest(f, "e2", 32), 0);
    struct store_job j = claim(f, "w1", 60000);
    must(store_job_retry(f->s, j.id, f->now + 1000, "boom", &err), &err);
    struct store_order o = order_make(f->conn.id, 31, 10, STORE_XFER_FAILED);
    must(store_order_put(f->s, &o, &err), &err);
    must(store_order_note(f->s, f->conn.id, 31, "failed", "boom", &err), &err);
    must(store_map_put(f->s, f->conn.id, "product", "S", 5, &err), &err);

    reopen(f);

    struct store_conn c;
    must(store_conn_get(f->s, f->conn.id, &c, &err), &err);
    assert_conn_equal(&c, &f->conn);
    store_conn_release(&c);
    assert_int_equal(job_count(f), 2);
    assert_int_equal(ingest(f, "e1", 31), 1); /* the dedupe key survived */
    struct store_job k = claim(f, "w1", 60000);
    assert_int_equal(k.order_id, 32);
    claim_none(f); /* order 31 still waits for its retry time */
    f->now += 1000;
    k = claim(f, "w1", 60000);
    assert_int_equal(k.order_id, 31);
    assert_int_equal(k.attempts, 2);
    struct store_order got;
    must(store_order_get(f->s, f->conn.id, 31, &got, &err), &err);
    assert_order_equal(&got, &o);
    store_order_release(&got);
    store_order_release(&o);
    struct notes ns = {0};
    must(store_order_history(f->s, f->conn.id, 31, note_cb, &ns, &err), &err);
    assert_int_equal(ns.n, 1);
    assert_string_equal(ns.detail[0], "boom");
    int64_t id = 0;
    must(store_map_get(f->s, f->conn.id, "product", "S", &id, &err), &err);
    assert_int_equal(id, 5);
}

static void test_open_twice_and_urls(void **state)
{
    struct fx *f = *state;
    struct th_err err = {0};
    /* a second handle on the same file (as the CLI beside the daemon) */
    struct store *s2;
    char *url = xasprintf("sqlite:%s", f->path);
    must(store_open(&s2, url, &err), &err);
    struct store_conn c;
    must(store_conn_find(s2, MODEL_PLATFORM_SALLA, 1001, &c, &err), &err);
    assert_int_equal(c.id, f->conn.id);
    store_conn_release(&c);
    store_close(s2);
    free(url);
    url = xasprintf("sqlite://%s", f->path);
    must(store_open(&s2, url, &err), &err);
    store_close(s2);
    free(url);
    reopen(f);
    reopen(f);
    assert_int_equal(raw_int(f, "PRAGMA user_version"), STORE_SQLITE_SCHEMA_VERSION);
    assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'"),
                     17); /* 11, 11's tenants and api_tokens, 12's field_settings, fields,
                           * conflicts, 13's stock_lines */
    assert_int_equal(store_shared(f->s), 0); /* one process owns the file */
    assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM connections"), 1);

    struct store *bad = (struct store *)&err; /* must be overwritten with NULL */
    /* a PostgreSQL URL goes to that backend: nothing listens on port 1 */
    assert_int_equal(store_open(&bad, "postgres://th:sekret@127.0.0.1:1/tarheel", &err), TH_EDB);
    assert_non_null(strstr(err.msg, "cannot connect to PostgreSQL at postgres://th:***@127.0.0.1:1"));
    assert_null(strstr(err.msg, "sekret")); /* a password is never shown */
    assert_null(bad);
    assert_int_equal(store_open(&bad, "", &err), TH_ECONFIG);
    assert_int_equal(store_open(&bad, "sqlite:", &err), TH_ECONFIG);
    assert_int_equal(store_open(&bad, "mysql://x/y", &err), TH_ECONFIG);
}

static void test_bad_paths(void **state)
{
    struct th_err err = {0};
    struct store *s = NULL;
    static const char *const paths[] = {
        "/nonexistent-th-dir/sub/t.db",        /* no such directory */
        "sqlite:/nonexistent-th-dir/sub/t.db", /* same, as a URL */
        "/proc/th-store-test.db",              /* read-only (even for root) */
    };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        memset(&err, 0, sizeof err);
        int rc = store_open(&s, paths[i], &err);
        if (rc != TH_EIO) fail_msg("%s: want TH_EIO, got %d (%s)", paths[i], rc, err.msg);
        assert_null(s);
        const char *p = strchr(paths[i], '/');
        if (!strstr(err.msg, p)) fail_msg("message lacks the path %s: %s", p, err.msg);
    }
}

static void test_newer_schema_refused(void **state)
{
    struct fx *f = *state;
    store_close(f->s);
    f->s = NULL;
    raw_exec(f, f->pg ? "UPDATE tarheel_schema SET version = 99" : "PRAGMA user_version = 99");
    struct th_err err = {0};
    struct store *s = NULL;
    assert_int_equal(store_open(&s, f->url, &err), TH_ECONFIG);
    assert_non_null(strstr(err.msg, "99"));
    assert_non_null(strstr(err.msg, "run a newer tarheel"));
    assert_null(s);
    char sql[64];
    if (f->pg)
        snprintf(sql, sizeof sql, "UPDATE tarheel_schema SET version = %d", STORE_PG_SCHEMA_VERSION);
    else
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", STORE_SQLITE_SCHEMA_VERSION);
    raw_exec(f, sql);
    open_store(f);
}

/* store_conn_list sees every connection once, by id, even when ids have
 * gaps (a PostgreSQL sequence skips a value on every upsert that updates). */
struct conn_seen {
    int n;
    int64_t id[8], store_id[8];
};

static void conn_seen_cb(void *arg, const struct store_conn *c)
{
    struct conn_seen *cs = arg;
    if (cs->n < 8) {
        cs->id[cs->n] = c->id;
        cs->store_id[cs->n] = c->store_id;
    }
    cs->n++;
}

static void test_conn_list(void **state)
{
    struct fx *f = *state;
    struct th_err err = {0};
    struct store_conn again, b, c;
    conn_fill(&again, 1001); /* the fixture's store again: an update */
    must(store_conn_put(f->s, &again, &err), &err);
    assert_int_equal(again.id, f->conn.id);
    conn_fill(&b, 2002);
    must(store_conn_put(f->s, &b, &err), &err);
    must(store_conn_put(f->s, &again, &err), &err);
    conn_fill(&c, 3003);
    c.platform = MODEL_PLATFORM_ZID;
    must(store_conn_put(f->s, &c, &err), &err);
    struct conn_seen cs = {0};
    must(store_conn_list(f->s, conn_seen_cb, &cs, &err), &err);
    assert_int_equal(cs.n, 3);
    assert_int_equal(cs.id[0], f->conn.id);
    assert_int_equal(cs.store_id[0], 1001);
    assert_int_equal(cs.id[1], b.id);
    assert_int_equal(cs.store_id[1], 2002);
    assert_int_equal(cs.id[2], c.id);
    assert_int_equal(cs.store_id[2], 3003);
    assert_true(cs.id[0] < cs.id[1] && cs.id[1] < cs.id[2]);
    store_conn_release(&again);
    store_conn_release(&b);
    store_conn_release(&c);
}

/* A database written by schema 1 (jobs without `manual`) is migrated in
 * place: its pending job survives as automatic, and jobs queued by hand
 * afterwards are marked manual. */
/* Schema 4 adds connections.manager_token (Zid's second token); a
 * connection saved before keeps everything and can take one. */
/* Stock rows and own movements: settings round trip; a row's stored part;
 * a pending movement makes its SKU busy; one settled before the read counts
 * (and, for a count-only platform, the part whose order came before the
 * last push); save drops the movements the read reflects and keeps later
 * ones; begin replaces a document's movements; a dropped one vanishes; the
 * limits on SKUs and batch sizes. */
static void test_stock_rows(void **state)
{
    struct fx *f = *state;
    struct th_err err = {0};
    struct store_conn c;
    must(store_conn_get(f->s, f->conn.id, &c, &err), &err);
    assert_int_equal(c.stock_sync, 0);
    assert_int_equal(c.stock_interval_s, 0);
    c.stock_sync = 1;
    c.stock_interval_s = 120;
    must(store_conn_put_settings(f->s, &c, &err), &err);
    store_conn_release(&c);
    must(store_conn_get(f->s, f->conn.id, &c, &err), &err);
    assert_int_equal(c.stock_sync, 1);
    assert_int_equal(c.stock_interval_s, 120);
    store_conn_release(&c);

    int64_t id = f->conn.id;
    struct store_stock r[2] = {{.sku = "A"}, {.sku = "B"}};
    must(store_stock_load(f->s, id, r, 2, f->now, &err), &err);
    assert_int_equal(r[0].known, 0);
    assert_int_equal(r[0].busy, 0);
    r[0] = (struct store_stock){.sku = "A", .qoyod_product_id = 7, .qoyod_qty = 50, .has_qty = 1,
                                .pushed_at_ms = 1000, .read_ms = f->now};
    must(store_stock_save(f->s, id, r, 1, &err), &err);

    const char *sku = "A";
    int64_t d = -3;
    f->now += 10;
    must(store_stock_own_begin(f->s, id, "INV-1", &sku, &d, 1, 0, &err), &err); /* origin 0 s */
    struct store_stock l = {.sku = "A"};
    must(store_stock_load(f->s, id, &l, 1, f->now, &err), &err);
    assert_int_equal(l.known, 1);
    assert_int_equal(l.qoyod_product_id, 7);
    assert_int_equal(l.qoyod_qty, 50);
    assert_int_equal(l.pushed_at_ms, 1000);
    assert_int_equal(l.busy, 1); /* pending */
    assert_int_equal(l.own, 0);
    f->now += 10;
    must(store_stock_own_settle(f->s, id, "INV-1", 1, &err), &err);
    must(store_stock_load(f->s, id, &l, 1, f->now, &err), &err);
    assert_int_equal(l.busy, 1); /* settled at the read's instant: the read may not show it */
    must(store_stock_load(f->s, id, &l, 1, f->now + 1, &err), &err);
    assert_int_equal(l.busy, 0);
    assert_int_equal(l.own, -3);
    assert_int_equal(l.own_before_push, -3); /* its order (0 s) came before the push (1 s) */

    /* begin again replaces; two lines of one SKU add up */
    const char *two[] = {"A", "A"};
    int64_t dd[] = {-1, -2};
    f->now += 10;
    must(store_stock_own_begin(f->s, id, "INV-2", two, dd, 2, 5, &err), &err);
    must(store_stock_own_begin(f->s, id, "INV-2", two, dd, 2, 5, &err), &err);
    must(store_stock_own_settle(f->s, id, "INV-2", 1, &err), &err);
    int64_t settled2 = f->now;
    f->now += 10;
    must(store_stock_load(f->s, id, &l, 1, f->now, &err), &err);
    assert_int_equal(l.own, -6);
    assert_int_equal(l.own_before_push, -3); /* INV-2's order (5 s) came after the push */

    /* a read between the two settles: save drops only INV-1's */
    l.qoyod_qty = 47;
    l.read_ms = settled2;
    must(store_stock_save(f->s, id, &l, 1, &err), &err);
    must(store_stock_load(f->s, id, &l, 1, f->now, &err), &err);
    assert_int_equal(l.qoyod_qty, 47);
    assert_int_equal(l.own, -3);

    /* a dropped document vanishes; an applied one is not dropped */
    must(store_stock_own_begin(f->s, id, "INV-3", &sku, &d, 1, 5, &err), &err);
    must(store_stock_own_settle(f->s, id, "INV-3", 0, &err), &err);
    must(store_stock_own_settle(f->s, id, "INV-2", 0, &err), &err);
    f->now += 10;
    must(store_stock_load(f->s, id, &l, 1, f->now, &err), &err);
    assert_int_equal(l.busy, 0);
    assert_int_equal(l.own, -3);

    must(store_stock_untracked(f->s, id, "B", 1, &err), &err);
    struct store_stock b = {.sku = "B"};
    must(store_stock_load(f->s, id, &b, 1, f->now, &err), &err);
    assert_int_equal(b.known, 1);
    assert_int_equal(b.store_untracked, 1);
    assert_int_equal(b.has_qty, 0);

    /* limits */
    struct store_stock bad = {.sku = ""};
    assert_int_equal(store_stock_load(f->s, id, &bad, 1, f->now, &err), TH_EINVAL);
    assert_int_equal(store_stock_load(f->s, id, &bad, STORE_STOCK_MAX_BATCH + 1, f->now, &err),
                     TH_ELIMIT);
    assert_int_equal(store_stock_own_begin(f->s, id, "", &sku, &d, 1, 0, &err), TH_EINVAL);
    char longsku[STORE_MAX_SKU + 1];
    memset(longsku, 'x', sizeof longsku - 1);
    longsku[STORE_MAX_SKU] = '\0';
    const char *ls = longsku;
    assert_int_equal(store_stock_own_begin(f->s, id, "R", &ls, &d, 1, 0, &err), TH_EINVAL);
    longsku[STORE_MAX_SKU - 1] = '\0'; /* the longest kept */
    must(store_stock_untracked(f->s, id, longsku, 0, &err), &err);
}

/* Order lines against an opening balance: noted lines keep their mark, the
 * opening counts (and marks) only those created before its read, a
 * correction's mark and counts round-trip, forget drops an order's lines. */
static void test_stock_lines(void **state)
{
    struct fx *f = *state;
    struct th_err err = {0};
    int64_t id = f->conn.id;
    const char *skus[] = {"A", "B"};
    int64_t units[] = {3, 1};
    must(store_stock_lines_note(f->s, id, 101, 1000, skus, units, 2, &err), &err); /* 1000 s */
    int64_t two = 2;
    must(store_stock_lines_note(f->s, id, 102, 1001, skus, &two, 1, &err), &err);
    int64_t five = 5;
    must(store_stock_lines_note(f->s, id, 103, 1003, skus, &five, 1, &err), &err);

    int64_t n = -1;
    must(store_stock_lines_open(f->s, id, "A", 1002000, &n, &err), &err); /* before 1002 s */
    assert_int_equal(n, 5);
    struct store_stock_line l;
    must(store_stock_line_get(f->s, id, 101, "A", &l, &err), &err);
    assert_int_equal(l.units, 3);
    assert_int_equal(l.created_ms, 1000000);
    assert_int_equal(l.mark, STORE_OPEN_COUNTED);
    assert_string_equal(l.sku, "A");
    must(store_stock_line_get(f->s, id, 103, "A", &l, &err), &err);
    assert_int_equal(l.mark, STORE_OPEN_NONE);
    must(store_stock_line_get(f->s, id, 101, "B", &l, &err), &err);
    assert_int_equal(l.units, 1);
    assert_int_equal(l.mark, STORE_OPEN_NONE); /* another SKU's opening */
    assert_int_equal(store_stock_line_get(f->s, id, 104, "A", &l, &err), TH_ENOTFOUND);

    /* noting again updates the units and keeps the mark */
    int64_t four = 4;
    must(store_stock_lines_note(f->s, id, 101, 1000, skus, &four, 1, &err), &err);
    must(store_stock_line_get(f->s, id, 101, "A", &l, &err), &err);
    assert_int_equal(l.units, 4);
    assert_int_equal(l.mark, STORE_OPEN_COUNTED);

    /* a correction in flight, then settled */
    struct store_stock_line fix = {.order_id = 104, .sku = "A", .units = 2,
                                   .created_ms = 999000, .mark = STORE_OPEN_FIXING,
                                   .fix_from = 7, .fix_to = 9};
    must(store_stock_line_put(f->s, id, &fix, &err), &err);
    must(store_stock_line_get(f->s, id, 104, "A", &l, &err), &err);
    assert_int_equal(l.mark, STORE_OPEN_FIXING);
    assert_int_equal(l.fix_from, 7);
    assert_int_equal(l.fix_to, 9);
    assert_int_equal(l.created_ms, 999000);
    fix.mark = STORE_OPEN_COUNTED;
    must(store_stock_line_put(f->s, id, &fix, &err), &err);
    must(store_stock_line_get(f->s, id, 104, "A", &l, &err), &err);
    assert_int_equal(l.mark, STORE_OPEN_COUNTED);

    /* a later opening (booked again) counts from its own read */
    must(store_stock_lines_open(f->s, id, "A", 1004000, &n, &err), &err);
    assert_int_equal(n, 4 + 2 + 5 + 2);

    must(store_stock_lines_forget(f->s, id, 101, &err), &err);
    assert_int_equal(store_stock_line_get(f->s, id, 101, "A", &l, &err), TH_ENOTFOUND);
    assert_int_equal(store_stock_line_get(f->s, id, 101, "B", &l, &err), TH_ENOTFOUND);
    must(store_stock_line_get(f->s, id, 102, "A", &l, &err), &err);

    /* limits */
    const char *empty = "";
    assert_int_equal(store_stock_lines_note(f->s, id, 1, 1, &empty, &two, 1, &err), TH_EINVAL);
    assert_int_equal(store_stock_lines_note(f->s, id, 1, 1, skus, &two, STORE_STOCK_MAX_BATCH + 1,
                                            &err),
                     TH_ELIMIT);
    fix.mark = 3;
    assert_int_equal(store_stock_line_put(f->s, id, &fix, &err), TH_EINVAL);
}

/* Collects conflicts listed. */
struct clist {
    struct store_conflict v[8];
    size_t n;
};

static void clist_add(void *arg, const struct store_conflict *c)
{
    struct clist *l = arg;
    if (l->n < 8) l->v[l->n++] = *c;
}

static void test_fields_and_conflicts(void **state)
{
    struct fx *f = *state;
    struct th_err err = {0};
    int64_t id = f->conn.id;
    /* Settings: off, and the defaults (name, price: store; cost: Qoyod). */
    struct store_conn c;
    must(store_conn_get(f->s, id, &c, &err), &err);
    assert_int_equal(c.fields_sync, 0);
    assert_int_equal(store_field_source(&c, STORE_FIELD_NAME), STORE_SRC_STORE);
    assert_int_equal(store_field_source(&c, STORE_FIELD_PRICE), STORE_SRC_STORE);
    assert_int_equal(store_field_source(&c, STORE_FIELD_COST), STORE_SRC_QOYOD);
    c.fields_sync = 1;
    c.field_source[STORE_FIELD_NAME] = STORE_SRC_QOYOD;
    c.field_source[STORE_FIELD_COST] = STORE_SRC_STORE;
    must(store_conn_put_settings(f->s, &c, &err), &err);
    store_conn_release(&c);
    must(store_conn_find(f->s, MODEL_PLATFORM_SALLA, f->conn.store_id, &c, &err), &err);
    assert_int_equal(c.fields_sync, 1);
    assert_int_equal(store_field_source(&c, STORE_FIELD_NAME), STORE_SRC_QOYOD);
    assert_int_equal(store_field_source(&c, STORE_FIELD_PRICE), STORE_SRC_STORE);
    assert_int_equal(store_field_source(&c, STORE_FIELD_COST), STORE_SRC_STORE);
    store_conn_release(&c);
    /* A token refresh leaves them alone. */
    must(store_conn_get(f->s, id, &c, &err), &err);
    must(store_conn_put_tokens(f->s, &c, &err), &err);
    store_conn_release(&c);
    must(store_conn_get(f->s, id, &c, &err), &err);
    assert_int_equal(c.fields_sync, 1);
    store_conn_release(&c);

    /* Rows: absent, saved, replaced. */
    struct store_field_state r[2] = {{.sku = "SKU-1", .field = STORE_FIELD_NAME},
                                     {.sku = "SKU-1", .field = STORE_FIELD_PRICE}};
    must(store_fields_load(f->s, id, r, 2, &err), &err);
    assert_int_equal(r[0].known, 0);
    snprintf(r[0].store_value, sizeof r[0].store_value, "كوب قهوة");
    snprintf(r[0].qoyod_value, sizeof r[0].qoyod_value, "Coffee mug");
    r[0].synced_ms = 5;
    snprintf(r[1].store_value, sizeof r[1].store_value, "3500");
    snprintf(r[1].qoyod_value, sizeof r[1].qoyod_value, "3500");
    r[1].synced_ms = 6;
    snprintf(r[1].store_ref, sizeof r[1].store_ref, "a1477bb2-72ea");
    r[1].qoyod_id = 77;
    must(store_fields_save(f->s, id, r, 2, &err), &err);
    snprintf(r[1].qoyod_value, sizeof r[1].qoyod_value, "4000");
    must(store_fields_save(f->s, id, r + 1, 1, &err), &err);
    struct store_field_state l[3] = {{.sku = "SKU-1", .field = STORE_FIELD_PRICE},
                                     {.sku = "SKU-1", .field = STORE_FIELD_NAME},
                                     {.sku = "SKU-1", .field = STORE_FIELD_COST}};
    must(store_fields_load(f->s, id, l, 3, &err), &err);
    assert_int_equal(l[0].known, 1);
    assert_string_equal(l[0].store_value, "3500");
    assert_string_equal(l[0].qoyod_value, "4000");
    assert_int_equal(l[0].synced_ms, 6);
    assert_string_equal(l[0].store_ref, "a1477bb2-72ea");
    assert_int_equal(l[0].qoyod_id, 77);
    assert_int_equal(l[1].known, 1);
    assert_string_equal(l[1].store_value, "كوب قهوة");
    assert_string_equal(l[1].qoyod_value, "Coffee mug");
    assert_int_equal(l[2].known, 0);
    struct store_field_state bad = {.sku = "", .field = 0};
    assert_int_equal(store_fields_save(f->s, id, &bad, 1, &err), TH_EINVAL);

    /* Conflicts: recorded, listed newest first, resolved once. */
    struct store_conflict k = {.conn_id = id, .sku = "SKU-1", .field = STORE_FIELD_PRICE,
                               .store_value = "3900", .qoyod_value = "4100",
                               .last_store = "3500", .last_qoyod = "3500",
                               .winner = STORE_SRC_STORE};
    must(store_conflict_add(f->s, &k, &err), &err);
    assert_true(k.id > 0);
    int64_t first = k.id;
    k.field = STORE_FIELD_NAME;
    snprintf(k.store_value, sizeof k.store_value, "أ");
    must(store_conflict_add(f->s, &k, &err), &err);
    assert_true(k.id > first);
    struct store_conflict none = {.conn_id = 999999, .sku = "X", .winner = STORE_SRC_QOYOD};
    assert_int_equal(store_conflict_add(f->s, &none, &err), TH_ENOTFOUND);
    struct store_conflict g;
    must(store_conflict_get(f->s, first, &g, &err), &err);
    assert_string_equal(g.sku, "SKU-1");
    assert_int_equal(g.field, STORE_FIELD_PRICE);
    assert_string_equal(g.store_value, "3900");
    assert_string_equal(g.qoyod_value, "4100");
    assert_string_equal(g.last_store, "3500");
    assert_string_equal(g.last_qoyod, "3500");
    assert_int_equal(g.winner, STORE_SRC_STORE);
    assert_int_equal(g.at_ms, f->now);
    assert_int_equal(g.resolved_ms, 0);
    struct clist cl = {0};
    must(store_conflict_list(f->s, id, 1, 0, clist_add, &cl, &err), &err);
    assert_int_equal(cl.n, 2);
    assert_int_equal(cl.v[0].id, k.id); /* newest first */
    assert_string_equal(cl.v[0].store_value, "أ");
    f->now += 1000;
    must(store_conflict_resolve(f->s, first, "kept qoyod", &err), &err);
    assert_int_equal(store_conflict_resolve(f->s, first, "reviewed", &err), TH_ECONFLICT);
    assert_int_equal(store_conflict_resolve(f->s, 424242, "reviewed", &err), TH_ENOTFOUND);
    must(store_conflict_get(f->s, first, &g, &err), &err);
    assert_int_equal(g.resolved_ms, f->now);
    assert_string_equal(g.resolution, "kept qoyod");
    cl.n = 0;
    must(store_conflict_list(f->s, id, 1, 0, clist_add, &cl, &err), &err);
    assert_int_equal(cl.n, 1);
    cl.n = 0;
    must(store_conflict_list(f->s, 0, 0, 1, clist_add, &cl, &err), &err);
    assert_int_equal(cl.n, 1); /* the limit */
    cl.n = 0;
    must(store_conflict_list(f->s, id + 1000, 0, 0, clist_add, &cl, &err), &err);
    assert_int_equal(cl.n, 0);
}

static void test_manager_token_round_trip(void **state)
{
    struct fx *f = *state;
    struct th_err err = {0};
    struct store_conn c;
    must(store_conn_get(f->s, f->conn.id, &c, &err), &err);
    assert_null(c.manager_token);
    free(c.manager_token);
    c.manager_token = strdup("mgr-1");
    free(c.access_token);
    c.access_token = strdup("auth-2");
    c.token_expires_at = 42;
    /* a settings change made meanwhile survives a token write, and back */
    struct store_conn s2;
    must(store_conn_get(f->s, f->conn.id, &s2, &err), &err);
    s2.trigger = MODEL_STATUS_COMPLETED;
    s2.financial_invoice = 0;
    free(s2.access_token);
    s2.access_token = strdup("stale-token-in-a-settings-copy");
    must(store_conn_put_settings(f->s, &s2, &err), &err);
    must(store_conn_put_tokens(f->s, &c, &err), &err);
    store_conn_release(&s2);
    store_conn_release(&c);
    must(store_conn_get(f->s, f->conn.id, &c, &err), &err);
    assert_string_equal(c.manager_token, "mgr-1");
    assert_string_equal(c.access_token, "auth-2");
    assert_int_equal(c.token_expires_at, 42);
    assert_int_equal(c.trigger, MODEL_STATUS_COMPLETED);
    assert_int_equal(c.financial_invoice, 0);
    store_conn_release(&c);
    struct store_conn none = {.id = 9999, .platform = MODEL_PLATFORM_ZID};
    assert_int_equal(store_conn_put_tokens(f->s, &none, &err), TH_ENOTFOUND);
    assert_int_equal(store_conn_put_settings(f->s, &none, &err), TH_ENOTFOUND);
}

static void test_migration_1_to_2_keeps_jobs(void **state)
{
    struct fx *f = *state;
    int dup = 0;
    struct th_err err = {0};
    must(store_event_ingest(f->s, f->conn.id, "evt-m", "order.created", 7001, "{}", 2, &dup, &err),
         &err);
    store_close(f->s);
    f->s = NULL;
    /* schema 1: no jobs.manual (2), the old events index (3: harmless to
     * redo), no connections.manager_token (4), no orders.tax (5), nor
     * what 6-9 add (UNDO_6) */
    raw_exec(f, "ALTER TABLE jobs DROP COLUMN manual; "
                      "ALTER TABLE connections DROP COLUMN manager_token; "
                      UNDO_6 "ALTER TABLE orders DROP COLUMN tax; PRAGMA user_version = 1");
    open_store(f);
    struct store_job j;
    must(store_job_claim(f->s, "w1", 60000, &j, &err), &err);
    assert_int_equal(j.order_id, 7001);
    assert_int_equal(j.manual, 0);
    must(store_job_done(f->s, j.id, &err), &err);
    must(store_job_enqueue(f->s, f->conn.id, 7001, &err), &err);
    must(store_job_claim(f->s, "w1", 60000, &j, &err), &err);
    assert_int_equal(j.manual, 1);
    /* an event for the order while it runs keeps the rerun manual */
    must(store_event_ingest(f->s, f->conn.id, "evt-m2", "order.updated", 7001, "{}", 2, &dup, &err),
         &err);
    must(store_job_done(f->s, j.id, &err), &err);
    must(store_job_claim(f->s, "w1", 60000, &j, &err), &err);
    assert_int_equal(j.order_id, 7001);
    assert_int_equal(j.manual, 1);
}

/* A database written by schema 2 (events unique on (conn_id, dedupe_key))
 * is migrated in place: every event keeps its id and body, the dedupe index
 * now leads with the order id, and a redelivery of an old event is still a
 * duplicate. */
static void test_migration_2_to_3_keeps_events(void **state)
{
    struct fx *f = *state;
    assert_int_equal(ingest(f, "evt-a", 5001), 0);
    assert_int_equal(ingest(f, "evt-b", 5002), 0);
    assert_int_equal(ingest(f, "app-1", 0), 0);
    int64_t ids = raw_int(f, "SELECT SUM(id * 7 + order_id) FROM events");
    store_close(f->s);
    f->s = NULL;
    raw_exec(f,
             "CREATE TABLE ev2 (id INTEGER PRIMARY KEY,"
             "  conn_id INTEGER NOT NULL REFERENCES connections(id), dedupe_key TEXT NOT NULL,"
             "  event TEXT NOT NULL, order_id INTEGER NOT NULL DEFAULT 0,"
             "  received_at_ms INTEGER NOT NULL, format INTEGER NOT NULL DEFAULT 1,"
             "  body BLOB NOT NULL, UNIQUE (conn_id, dedupe_key));"
             "INSERT INTO ev2 SELECT id, conn_id, dedupe_key, event, order_id, received_at_ms,"
             "  format, body FROM events;"
             "DROP TABLE events; ALTER TABLE ev2 RENAME TO events;"
             "ALTER TABLE connections DROP COLUMN manager_token;"
             UNDO_6 "ALTER TABLE orders DROP COLUMN tax; PRAGMA user_version = 2");
    assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' "
                                      "AND tbl_name = 'events' AND name LIKE 'sqlite_autoindex%'"),
                     1);
    open_store(f);
    assert_int_equal(raw_int(f, "PRAGMA user_version"), STORE_SQLITE_SCHEMA_VERSION);
    assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM events"), 3);
    assert_int_equal(raw_int(f, "SELECT SUM(id * 7 + order_id) FROM events"), ids);
    assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM events WHERE BODY_TEXT = "
                                      "'{\"event\":\"order.updated\",\"id\":5002}'"),
                     1);
    assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' "
                                      "AND tbl_name = 'events' AND name LIKE 'sqlite_autoindex%'"),
                     0);
    assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' "
                                      "AND name = 'events_dedupe' AND sql LIKE "
                                      "'%(conn_id, order_id, dedupe_key)%'"),
                     1);
    assert_int_equal(raw_int(f, "SELECT integrity_check = 'ok' FROM pragma_integrity_check"),
                     1);
    /* redeliveries of events stored before the migration are duplicates */
    assert_int_equal(ingest(f, "evt-a", 5001), 1);
    assert_int_equal(ingest(f, "app-1", 0), 1);
    assert_int_equal(ingest(f, "evt-c", 5003), 0);
    assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM events"), 4);
    assert_int_equal(job_count(f), 3);
}

/* A database written by schema 4 (orders without `tax`) is migrated in
 * place: its orders keep every field and read a VAT of 0 until the worker
 * saves them again, which then keeps the VAT. */
static void test_migration_4_to_5_adds_order_tax(void **state)
{
    struct fx *f = *state;
    struct th_err err = {0};
    struct store_order o = order_make(f->conn.id, 31, 1706700000, STORE_XFER_TRANSFERRED);
    must(store_order_put(f->s, &o, &err), &err);
    store_close(f->s);
    f->s = NULL;
    raw_exec(f, UNDO_6 "ALTER TABLE orders DROP COLUMN tax; PRAGMA user_version = 4");
    open_store(f);
    assert_int_equal(raw_int(f, "PRAGMA user_version"), STORE_SQLITE_SCHEMA_VERSION);
    struct store_order got;
    must(store_order_get(f->s, f->conn.id, 31, &got, &err), &err);
    assert_int_equal(got.tax, 0);
    assert_int_equal(got.credit, STORE_CREDIT_NONE);
    got.tax = o.tax;
    got.credit = o.credit;
    got.credited = o.credited;
    assert_order_equal(&got, &o);
    got.tax = 2345;
    must(store_order_put(f->s, &got, &err), &err);
    store_order_release(&got);
    must(store_order_get(f->s, f->conn.id, 31, &got, &err), &err);
    assert_int_equal(got.tax, 2345);
    assert_int_equal(got.total, 11500);
    store_order_release(&got);
    store_order_release(&o);
}

/* A database written by schema 6 (orders without credit notes) is migrated
 * in place: its orders read "no credit" until saved with one, then keep it. */
static void test_migration_6_to_7_adds_order_credit(void **state)
{
    struct fx *f = *state;
    struct th_err err = {0};
    struct store_order o = order_make(f->conn.id, 32, 1706700000, STORE_XFER_TRANSFERRED);
    must(store_order_put(f->s, &o, &err), &err);
    store_close(f->s);
    f->s = NULL;
    raw_exec(f, UNDO_7 "PRAGMA user_version = 6");
    open_store(f);
    assert_int_equal(raw_int(f, "PRAGMA user_version"), STORE_SQLITE_SCHEMA_VERSION);
    struct store_order got;
    must(store_order_get(f->s, f->conn.id, 32, &got, &err), &err);
    assert_int_equal(got.credit, STORE_CREDIT_NONE);
    assert_int_equal(got.credited, 0);
    got.credit = STORE_CREDIT_FAILED;
    got.credited = 1150;
    must(store_order_put(f->s, &got, &err), &err);
    store_order_release(&got);
    must(store_order_get(f->s, f->conn.id, 32, &got, &err), &err);
    assert_int_equal(got.credit, STORE_CREDIT_FAILED);
    assert_int_equal(got.credited, 1150);
    assert_int_equal(got.tax, 1500);
    assert_string_equal(store_credit_name(got.credit), "failed");
    store_order_release(&got);
    store_order_release(&o);
}

/* A database written by schema 10 (no tenants) is migrated in place: its
 * connections and dashboard users belong to the default tenant, so an
 * existing install sees and does exactly what it did before. */
static void test_migration_10_to_11_adds_tenants(void **state)
{
    struct fx *f = *state;
    struct th_err err = {0};
    must(store_user_put(f->s, "admin", "$scrypt$old", &err), &err);
    store_close(f->s);
    f->s = NULL;
    raw_exec(f, UNDO_11 "PRAGMA user_version = 10");
    assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'tenants'"), 0);
    open_store(f);
    assert_int_equal(raw_int(f, "PRAGMA user_version"), STORE_SQLITE_SCHEMA_VERSION);
    struct store_conn c;
    must(store_conn_get(f->s, f->conn.id, &c, &err), &err);
    assert_int_equal(c.tenant_id, STORE_TENANT_DEFAULT);
    assert_string_equal(c.access_token, "at-1");
    store_conn_release(&c);
    char *h = NULL;
    int64_t tenant = 0;
    must(store_user_get_in(f->s, "admin", &h, &tenant, &err), &err);
    assert_string_equal(h, "$scrypt$old");
    assert_int_equal(tenant, STORE_TENANT_DEFAULT);
    free(h);
    struct store_tenant t;
    must(store_tenant_find(f->s, "default", &t, &err), &err);
    assert_int_equal(t.id, STORE_TENANT_DEFAULT);
    int64_t id = 0;
    must(store_tenant_add(f->s, "acme", &id, &err), &err);
    assert_int_equal(id, 2);
}

/* ---------------------------------------------------------------------- */
/* Concurrency */

#define NTHREADS 4
#define PER_THREAD 200

struct worker_arg {
    struct fx *f;
    int index;
    int dups, fails, notfound;
};

static void *ingest_thread(void *p)
{
    struct worker_arg *a = p;
    for (int i = 0; i <= PER_THREAD + 1; i++) {
        char key[64];
        /* i == PER_THREAD repeats an earlier key; i == PER_THREAD + 1 names
         * an unknown connection (must fail alone, not its batch mates) */
        int k = i == PER_THREAD ? PER_THREAD / 2 : i;
        snprintf(key, sizeof key, "t%d-e%d", a->index, k);
        int64_t order = (int64_t)a->index * 100000 + k;
        int64_t conn = i == PER_THREAD + 1 ? 987654 : a->f->conn.id;
        int dup = -1;
        struct th_err err = {0};
        int rc = store_event_ingest(a->f->s, conn, key, "order.created", order, key, strlen(key),
                                    &dup, &err);
        if (rc == TH_ENOTFOUND)
            a->notfound++;
        else if (rc)
            a->fails++;
        else if (dup)
            a->dups++;
    }
    return NULL;
}

static void test_concurrent_ingest(void **state)
{
    struct fx *f = *state;
    pthread_t t[NTHREADS];
    struct worker_arg args[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        args[i] = (struct worker_arg){.f = f, .index = i + 1};
        assert_int_equal(pthread_create(&t[i], NULL, ingest_thread, &args[i]), 0);
    }
    int dups = 0, fails = 0, notfound = 0;
    for (int i = 0; i < NTHREADS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        dups += args[i].dups;
        fails += args[i].fails;
        notfound += args[i].notfound;
    }
    assert_int_equal(fails, 0);
    assert_int_equal(dups, NTHREADS);
    assert_int_equal(notfound, NTHREADS);
    assert_int_equal(job_count(f), NTHREADS * PER_THREAD);
    assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM events"), NTHREADS * PER_THREAD);
    assert_int_equal(raw_int(f, "SELECT COUNT(DISTINCT order_id) FROM jobs"),
                     NTHREADS * PER_THREAD);
    /* every event body is the one sent with its key */
    assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM events WHERE BODY_TEXT = "
                                      "dedupe_key"),
                     NTHREADS * PER_THREAD);
}

/* store_event_ingest_async: the same outcomes as the waiting call, told
 * through the callback once the commit is over; arguments it refuses are
 * refused at once, without a callback. */
struct async_result {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls;
    int rc[8], dup[8];
    char msg[8][TH_ERR_MSG_MAX];
};

struct async_one {
    struct async_result *res;
    int i;
};

static void async_done(void *arg, int rc, int duplicate, const struct th_err *err)
{
    struct async_one *a = arg;
    struct async_result *res = a->res;
    pthread_mutex_lock(&res->mu);
    res->rc[a->i] = rc;
    res->dup[a->i] = duplicate;
    snprintf(res->msg[a->i], sizeof res->msg[a->i], "%s", rc && err ? err->msg : "");
    res->calls++;
    pthread_cond_broadcast(&res->cv);
    pthread_mutex_unlock(&res->mu);
}

static void test_ingest_async(void **state)
{
    struct fx *f = *state;
    struct async_result res = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    struct async_one one[8];
    static const struct {
        const char *key;
        int64_t order, conn; /* conn 0: the fixture's */
        int rc, dup;
    } cases[] = {
        {"a-1", 8001, 0, 0, 0},
        {"a-2", 8002, 0, 0, 0},
        {"a-1", 8001, 0, 0, 1},                 /* the same delivery again: a duplicate */
        {"a-3", 8003, 987654, TH_ENOTFOUND, 0}, /* no such connection: fails alone */
        {"a-4", 8004, 0, 0, 0},
    };
    size_t n = sizeof cases / sizeof cases[0];
    struct th_err err = {0};
    for (size_t i = 0; i < n; i++) {
        one[i] = (struct async_one){.res = &res, .i = (int)i};
        must(store_event_ingest_async(f->s, cases[i].conn ? cases[i].conn : f->conn.id,
                                      cases[i].key, "order.created", cases[i].order, "{}", 2,
                                      async_done, &one[i], &err),
             &err);
    }
    pthread_mutex_lock(&res.mu);
    while (res.calls < (int)n)
        pthread_cond_wait(&res.cv, &res.mu);
    pthread_mutex_unlock(&res.mu);
    for (size_t i = 0; i < n; i++)
        if (res.rc[i] != cases[i].rc || res.dup[i] != cases[i].dup)
            fail_msg("case %zu (%s): want rc %d dup %d, got rc %d dup %d (%s)", i, cases[i].key,
                     cases[i].rc, cases[i].dup, res.rc[i], res.dup[i], res.msg[i]);
    assert_non_null(strstr(res.msg[3], "a-3")); /* the error names its own event */
    assert_int_equal(job_count(f), 3);
    assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM events"), 3);

    /* refused before queueing: an error now, no callback ever */
    assert_int_equal(store_event_ingest_async(f->s, f->conn.id, "", "order.created", 1, "{}", 2,
                                              async_done, &one[5], &err),
                     TH_EINVAL);
    assert_int_equal(store_event_ingest_async(f->s, f->conn.id, "k", "order.created", 1, "{}", 2,
                                              NULL, NULL, &err),
                     TH_EINVAL);
    store_close(f->s); /* the committer has nothing left to call */
    f->s = NULL;
    assert_int_equal(res.calls, (int)n);
    open_store(f);
}

/* ---------------------------------------------------------------------- */
/* SQLite backend: the file itself */

static void test_sqlite_file(void **state)
{
    struct fx *f = *state;
    assert_int_equal(ingest(f, "evt-x", 5), 0);
    assert_int_equal(raw_int(f, "SELECT journal_mode = 'wal' FROM pragma_journal_mode"), 1);
    assert_int_equal(raw_int(f, "SELECT format FROM events WHERE dedupe_key = 'evt-x'"),
                     STORE_SQLITE_EVENT_FORMAT);
    assert_int_equal(raw_int(f, "SELECT received_at_ms FROM events"), f->now);
    assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM events WHERE BODY_TEXT = "
                                      "'{\"event\":\"order.updated\",\"id\":5}'"),
                     1);
    /* history is append-only */
    struct th_err err = {0};
    must(store_order_note(f->s, f->conn.id, 5, "seen", NULL, &err), &err);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_not_equal(sqlite3_exec(db, "DELETE FROM order_history", NULL, NULL, NULL),
                         SQLITE_OK);
    assert_int_not_equal(sqlite3_exec(db, "UPDATE order_history SET what = 'x'", NULL, NULL, NULL),
                         SQLITE_OK);
    /* the unique index enforces one job per order even behind our back */
    char *sql = xasprintf("INSERT INTO jobs (conn_id, order_id, run_after_ms, created_at_ms) "
                          "VALUES (%lld, 5, 0, 0)",
                          (long long)f->conn.id);
    assert_int_not_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    free(sql);
    sqlite3_close(db);
}

static void test_sqlite_disk_full(void **state)
{
#ifndef TH_TEST_BUILD
    skip();
#else
    struct fx *f = *state;
    store_close(f->s);
    f->s = NULL;
    setenv("TH_TEST_STORE_MAX_PAGES", "64", 1); /* 64 pages of 4 KiB */
    open_store(f);
    unsetenv("TH_TEST_STORE_MAX_PAGES");
    char *body = xmalloc(16384);
    memset(body, 'b', 16384);
    int ok = 0, rc = 0;
    struct th_err err = {0};
    for (int i = 0; i < 100 && rc == 0; i++) {
        char key[32];
        snprintf(key, sizeof key, "full-%d", i);
        int dup = 0;
        rc = store_event_ingest(f->s, f->conn.id, key, "order.created", 100 + i, body, 16384, &dup,
                                &err);
        if (rc == 0) ok++;
    }
    free(body);
    if (rc != TH_EDISKFULL) fail_msg("want TH_EDISKFULL, got %d: %s", rc, err.msg);
    assert_non_null(strstr(err.msg, f->path));
    assert_true(ok > 0);
    /* the failed event left nothing behind, and the store still works */
    assert_int_equal(job_count(f), ok);
    assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM events"), ok);
    reopen(f);
    assert_int_equal(job_count(f), ok);
#endif
}

/* Two handles on one database (two processes sharing it), two threads
 * each, claim and finish jobs until none is left: every order is handed
 * out exactly once, whatever the interleaving. */
#define RACE_ORDERS 120

struct racer {
    struct store *s;
    int claimed[RACE_ORDERS + 1];
    int fails;
    char name[16];
};

static void *race_thread(void *p)
{
    struct racer *r = p;
    for (;;) {
        struct store_job j;
        struct th_err err = {0};
        int rc = store_job_claim(r->s, r->name, 60000, &j, &err);
        if (rc == TH_ENOTFOUND) break;
        if (rc) {
            r->fails++;
            continue;
        }
        if (j.order_id >= 1 && j.order_id <= RACE_ORDERS) r->claimed[j.order_id]++;
        if (store_job_done(r->s, j.id, &err) != 0) r->fails++;
    }
    return NULL;
}

static void test_claim_two_handles(void **state)
{
    struct fx *f = *state;
    for (int i = 1; i <= RACE_ORDERS; i++) {
        char key[16];
        snprintf(key, sizeof key, "r%d", i);
        assert_int_equal(ingest(f, key, i), 0);
    }
    struct store *s2;
    struct th_err err = {0};
    must(store_open(&s2, f->url, &err), &err);
    store_clock_set(s2, fake_clock, f);
    static struct racer r[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        memset(&r[i], 0, sizeof r[i]);
        r[i].s = i % 2 ? s2 : f->s;
        snprintf(r[i].name, sizeof r[i].name, "w%d", i);
        assert_int_equal(pthread_create(&t[i], NULL, race_thread, &r[i]), 0);
    }
    for (int i = 0; i < 4; i++) assert_int_equal(pthread_join(t[i], NULL), 0);
    store_close(s2);
    int per_handle[2] = {0, 0};
    for (int o = 1; o <= RACE_ORDERS; o++) {
        int n = 0;
        for (int i = 0; i < 4; i++) {
            n += r[i].claimed[o];
            per_handle[i % 2] += r[i].claimed[o];
        }
        if (n != 1) fail_msg("order %d was claimed %d times", o, n);
    }
    for (int i = 0; i < 4; i++) assert_int_equal(r[i].fails, 0);
    assert_int_equal(per_handle[0] + per_handle[1], RACE_ORDERS);
    assert_int_equal(job_count(f), 0);
}

/* A worker that stalled past its lease cannot finish or reschedule the job
 * under the worker that took it over; the holder renews its lease. */
static void test_job_fenced_by_lease(void **state)
{
    struct fx *f = *state;
    struct th_err err = {0};
    assert_int_equal(ingest(f, "e1", 41), 0);
    struct store_job a = claim(f, "slow", 1000);
    /* the holder renews: another claim a second later finds nothing */
    f->now += 900;
    must(store_job_renew(f->s, a.id, "slow", 1000, &err), &err);
    f->now += 900;
    claim_none(f);
    assert_int_equal(store_job_renew(f->s, a.id, "other", 1000, &err), TH_ECONFLICT);
    /* it stalls: the lease runs out and "fast" takes the job over */
    f->now += 1001;
    struct store_job b = claim(f, "fast", 1000);
    assert_int_equal(b.id, a.id);
    assert_int_equal(b.attempts, 2);
    assert_int_equal(store_job_done_as(f->s, a.id, "slow", &err), TH_ECONFLICT);
    assert_non_null(strstr(err.msg, "taken over"));
    assert_int_equal(store_job_retry_as(f->s, a.id, "slow", f->now, "x", &err), TH_ECONFLICT);
    assert_int_equal(store_job_renew(f->s, a.id, "slow", 1000, &err), TH_ECONFLICT);
    assert_int_equal(job_count(f), 1); /* still there, still leased to fast */
    claim_none(f);
    /* the holder's own writes work: retry, then (claimed again) done */
    must(store_job_retry_as(f->s, b.id, "fast", f->now, "again", &err), &err);
    b = claim(f, "fast", 1000);
    /* an event while it runs: done_as keeps the job for a rerun */
    assert_int_equal(ingest(f, "e2", 41), 0);
    must(store_job_done_as(f->s, b.id, "fast", &err), &err);
    assert_int_equal(job_count(f), 1);
    struct store_job c = claim(f, "fast", 1000);
    must(store_job_done_as(f->s, c.id, "fast", &err), &err);
    assert_int_equal(job_count(f), 0);
    assert_int_equal(store_job_done_as(f->s, c.id, "fast", &err), TH_ENOTFOUND);
    assert_int_equal(store_job_renew(f->s, c.id, "fast", 1000, &err), TH_ENOTFOUND);
    /* a lease that ran out but was not taken over is still its owner's */
    assert_int_equal(ingest(f, "e3", 42), 0);
    struct store_job d = claim(f, "late", 1000);
    f->now += 5000;
    must(store_job_done_as(f->s, d.id, "late", &err), &err);
    assert_int_equal(job_count(f), 0);
}

/* Keyset pages (store_order_page) give exactly the orders the whole listing
 * gives, filtered the same way, in the same order (oldest or newest first),
 * with no order twice or missing across pages, for every page size; ties in
 * created_at are common (a pull stores many orders of one second). */
struct pg_rows {
    struct store_order_key k[256];
    int n;
};

static void pg_collect(void *arg, const struct store_order *o)
{
    struct pg_rows *r = arg;
    if (r->n < 256) r->k[r->n] = (struct store_order_key){o->created_at, o->order_id, o->conn_id};
    r->n++;
}

struct pg_filter {
    const struct store_order_query *q;
    struct pg_rows *want;
    int64_t tenant_conns[4];
};

static void pg_filter_row(void *arg, const struct store_order *o)
{
    struct pg_filter *f = arg;
    const struct store_order_query *q = f->q;
    if (q->conn_id && o->conn_id != q->conn_id) return;
    if (q->xfer >= 0 && (int)o->xfer != q->xfer) return;
    if (o->created_at < q->from || (q->to && o->created_at >= q->to)) return;
    if (q->tenant) {
        int in = 0;
        for (int i = 0; i < 4; i++) in |= f->tenant_conns[i] == o->conn_id;
        if (!in) return;
    }
    if (q->text && *q->text) {
        char id[32];
        snprintf(id, sizeof id, "%lld", (long long)o->order_id);
        if (!strstr(id, q->text) && !(o->number && strcasestr(o->number, q->text))) return;
    }
    pg_collect(f->want, o);
}

static void check_pages(struct fx *f, struct store_order_query q, int64_t tenant_conn)
{
    struct th_err err = {0};
    struct pg_rows want = {0};
    struct pg_filter pf = {.q = &q, .want = &want, .tenant_conns = {tenant_conn}};
    must(store_order_list(f->s, 0, -1, pg_filter_row, &pf, &err), &err);
    if (q.newest)
        for (int i = 0; i < want.n / 2; i++) {
            struct store_order_key t = want.k[i];
            want.k[i] = want.k[want.n - 1 - i];
            want.k[want.n - 1 - i] = t;
        }
    static const int sizes[] = {1, 7, 1000};
    for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++) {
        struct pg_rows got = {0};
        q.has_after = 0;
        q.limit = sizes[z];
        for (int pages = 0; pages < 300; pages++) {
            struct pg_rows page = {0};
            must(store_order_page(f->s, &q, pg_collect, &page, &err), &err);
            assert_true(page.n <= q.limit);
            if (got.n + page.n > want.n)
                fail_msg("limit %d, newest %d: pages give more than the listing's %d orders",
                         q.limit, q.newest, want.n);
            for (int i = 0; i < page.n; i++) got.k[got.n++] = page.k[i];
            if (page.n < q.limit) break;
            q.has_after = 1;
            q.after = page.k[page.n - 1];
        }
        if (got.n != want.n)
            fail_msg("limit %d, text %s, newest %d: %d orders in pages, %d in the listing",
                     q.limit, q.text ? q.text : "-", q.newest, got.n, want.n);
        for (int i = 0; i < want.n; i++)
            if (memcmp(&got.k[i], &want.k[i], sizeof want.k[i]))
                fail_msg("limit %d, newest %d: row %d is order %lld, the listing has %lld",
                         q.limit, q.newest, i, (long long)got.k[i].order_id,
                         (long long)want.k[i].order_id);
    }
}

static void test_order_pages(void **state)
{
    struct fx *f = *state;
    struct th_err err = {0};
    int64_t acme = 0;
    must(store_tenant_add(f->s, "acme", &acme, &err), &err);
    struct store_conn other;
    conn_fill(&other, 9091);
    other.tenant_id = acme;
    must(store_conn_put(f->s, &other, &err), &err);
    /* 90 orders on two connections, five to a second, numbers in both cases */
    for (int i = 0; i < 90; i++) {
        int64_t conn = i % 3 == 0 ? other.id : f->conn.id;
        struct store_order o = order_make(conn, 1000 + (i * 37) % 90, 1700000000 + i / 5,
                                          (enum store_xfer)(i % 4));
        free(o.number);
        o.number = xasprintf(i % 2 ? "Ab-%d" : "aB-%d", 500 + i);
        must(store_order_put(f->s, &o, &err), &err);
        store_order_release(&o);
    }
    /* an order without a creation date (its data never fetched) */
    struct store_order undated = order_make(f->conn.id, 7, 0, STORE_XFER_NOT_TRANSFERRED);
    undated.created_at = 0;
    must(store_order_put(f->s, &undated, &err), &err);
    store_order_release(&undated);

    for (int newest = 0; newest < 2; newest++) {
        check_pages(f, (struct store_order_query){.xfer = -1, .newest = newest}, 0);
        check_pages(f, (struct store_order_query){.xfer = 2, .newest = newest}, 0);
        check_pages(f, (struct store_order_query){.xfer = -1, .conn_id = other.id,
                                                  .newest = newest}, 0);
        check_pages(f, (struct store_order_query){.xfer = -1, .tenant = acme, .newest = newest},
                    other.id);
        check_pages(f, (struct store_order_query){.xfer = -1, .text = "ab-5", .newest = newest},
                    0);
        check_pages(f, (struct store_order_query){.xfer = -1, .text = "104", .newest = newest},
                    0);
        check_pages(f, (struct store_order_query){.xfer = -1, .text = "%", .newest = newest}, 0);
        check_pages(f, (struct store_order_query){.xfer = -1, .from = 1700000003,
                                                  .to = 1700000011, .newest = newest}, 0);
        check_pages(f, (struct store_order_query){.xfer = 1, .from = 1700000002, .text = "B-5",
                                                  .conn_id = f->conn.id, .newest = newest}, 0);
    }
    /* the first page of everything, newest first, starts at the last second */
    struct pg_rows page = {0};
    must(store_order_page(f->s, &(struct store_order_query){.xfer = -1, .newest = 1, .limit = 3},
                          pg_collect, &page, &err),
         &err);
    assert_int_equal(page.n, 3);
    assert_int_equal(page.k[0].created_at, 1700000017);
    assert_int_equal(store_order_page(f->s, &(struct store_order_query){.xfer = -1, .limit = 0},
                                      pg_collect, &page, &err),
                     TH_EINVAL);
    store_conn_release(&other);
}

/* The order's row is fenced by the job's lease like the job itself: the
 * worker that stalled past its lease writes nothing once another took the
 * job over or finished it, and its error says so (the case helper-21 saw:
 * a stale "transferring" row written over a finished order). */
static void test_order_put_fenced_by_lease(void **state)
{
    struct fx *f = *state;
    struct th_err err = {0};
    struct store_order got;
    assert_int_equal(ingest(f, "e1", 51), 0);
    struct store_job a = claim(f, "slow", 1000);
    struct store_order mine = order_make(f->conn.id, 51, 700, STORE_XFER_TRANSFERRING);
    mine.attempts = 1;
    must(store_order_put_as(f->s, &mine, a.id, "slow", &err), &err);
    /* a lease that ran out but was not taken over still lets it write */
    f->now += 1500;
    mine.attempts = 2;
    must(store_order_put_as(f->s, &mine, a.id, "slow", &err), &err);
    must(store_order_get(f->s, f->conn.id, 51, &got, &err), &err);
    assert_int_equal(got.attempts, 2);
    store_order_release(&got);
    /* another worker's claim is refused, in any case */
    assert_int_equal(store_order_put_as(f->s, &mine, a.id, "other", &err), TH_ECONFLICT);

    /* "fast" takes the job over and finishes the order */
    struct store_job b = claim(f, "fast", 1000);
    assert_int_equal(b.id, a.id);
    struct store_order theirs = order_make(f->conn.id, 51, 700, STORE_XFER_TRANSFERRED);
    theirs.attempts = 3;
    must(store_order_put_as(f->s, &theirs, b.id, "fast", &err), &err);
    /* the stale worker's write changes nothing while fast holds the job... */
    memset(&err, 0, sizeof err);
    assert_int_equal(store_order_put_as(f->s, &mine, a.id, "slow", &err), TH_ECONFLICT);
    assert_non_null(strstr(err.msg, "taken over"));
    assert_non_null(strstr(err.msg, "order 51"));
    must(store_order_get(f->s, f->conn.id, 51, &got, &err), &err);
    assert_order_equal(&got, &theirs);
    store_order_release(&got);
    /* ...nor once fast finished it and the job is gone */
    must(store_job_done_as(f->s, b.id, "fast", &err), &err);
    assert_int_equal(job_count(f), 0);
    memset(&err, 0, sizeof err);
    assert_int_equal(store_order_put_as(f->s, &mine, a.id, "slow", &err), TH_ECONFLICT);
    assert_non_null(strstr(err.msg, "finished by another worker"));
    must(store_order_get(f->s, f->conn.id, 51, &got, &err), &err);
    assert_order_equal(&got, &theirs);
    store_order_release(&got);
    /* an order the job never wrote is not created by a stale writer either */
    struct store_order ghost = order_make(f->conn.id, 52, 100, STORE_XFER_TRANSFERRING);
    assert_int_equal(store_order_put_as(f->s, &ghost, a.id, "slow", &err), TH_ECONFLICT);
    assert_int_equal(store_order_get(f->s, f->conn.id, 52, &got, &err), TH_ENOTFOUND);
    /* the plain write (a transfer run by hand) is not fenced */
    must(store_order_put(f->s, &mine, &err), &err);
    must(store_order_get(f->s, f->conn.id, 51, &got, &err), &err);
    assert_int_equal(got.xfer, STORE_XFER_TRANSFERRING);
    store_order_release(&got);
    assert_int_equal(store_order_put_as(f->s, &mine, a.id, "", &err), TH_EINVAL);
    store_order_release(&mine);
    store_order_release(&theirs);
    store_order_release(&ghost);
}

/* A deferred job (a wait that was no failure: a rate limit, the account's
 * turn, a refreshed token) runs again at its time without its claim counted
 * in attempts, so the worker's backoff grows with failures only; a retry
 * counts it. The defer is fenced by the lease like the retry. */
static void test_job_defer_not_counted(void **state)
{
    struct fx *f = *state;
    struct th_err err = {0};
    assert_int_equal(ingest(f, "e1", 51), 0);
    struct store_job a = claim(f, "w1", 1000);
    assert_int_equal(a.attempts, 1);
    must(store_job_defer_as(f->s, a.id, "w1", f->now + 500, "rate limited", &err), &err);
    claim_none(f); /* not before its time */
    f->now += 500;
    a = claim(f, "w1", 1000);
    assert_int_equal(a.attempts, 1);
    for (int i = 0; i < 5; i++) {
        must(store_job_defer_as(f->s, a.id, "w1", f->now, "the account's turn", &err), &err);
        a = claim(f, "w1", 1000);
    }
    assert_int_equal(a.attempts, 1);
    must(store_job_retry_as(f->s, a.id, "w1", f->now, "503", &err), &err);
    a = claim(f, "w1", 1000);
    assert_int_equal(a.attempts, 2);
    must(store_job_defer_as(f->s, a.id, "w1", f->now, "token refreshed", &err), &err);
    a = claim(f, "w1", 1000);
    assert_int_equal(a.attempts, 2);
    /* fenced: a worker whose lease was taken over changes nothing */
    f->now += 1001;
    struct store_job b = claim(f, "w2", 1000);
    assert_int_equal(b.attempts, 3);
    assert_int_equal(store_job_defer_as(f->s, a.id, "w1", f->now, "x", &err), TH_ECONFLICT);
    assert_int_equal(store_job_defer_as(f->s, a.id, "", f->now, "x", &err), TH_EINVAL);
    must(store_job_defer_as(f->s, b.id, "w2", f->now, "y", &err), &err);
    b = claim(f, "w2", 1000);
    assert_int_equal(b.attempts, 3);
    must(store_job_done_as(f->s, b.id, "w2", &err), &err);
    assert_int_equal(job_count(f), 0);
    assert_int_equal(store_job_defer_as(f->s, b.id, "w2", f->now, "z", &err), TH_ENOTFOUND);
}

/* ---------------------------------------------------------------------- */
/* Limits and leases shared by every process */

/* A connection on Qoyod account `key` (the fixture's is "qk-1"). */
static int64_t conn_on(struct fx *f, int64_t store_id, const char *key)
{
    struct store_conn c;
    conn_fill(&c, store_id);
    free(c.qoyod_api_key);
    c.qoyod_api_key = xstrdup(key);
    struct th_err err = {0};
    must(store_conn_put(f->s, &c, &err), &err);
    int64_t id = c.id;
    store_conn_release(&c);
    return id;
}

static void ingest_for(struct fx *f, int64_t conn, const char *key, int64_t order)
{
    int dup = -1;
    struct th_err err = {0};
    must(store_event_ingest(f->s, conn, key, "order.created", order, "{}", 2, &dup, &err), &err);
    assert_int_equal(dup, 0);
    f->now += 1; /* claims go oldest first: keep the order of ingestion */
}

/* Claims with limits through s; returns the order id, 0 when none is due. */
static int64_t claim_lim(struct fx *f, struct store *s, int per_store, int per_account,
                         int64_t *job_id)
{
    struct store_claim_limits lim = {.per_store = per_store, .per_account = per_account};
    struct store_job j;
    struct th_err err = {0};
    int rc = store_job_claim_limited(s, "w", 60000, &lim, NULL, 0, &j, &err);
    if (rc == TH_ENOTFOUND) return 0;
    must(rc, &err);
    if (job_id) *job_id = j.id;
    return j.order_id;
}

/* Per-store and per-account limits hold across two handles (two processes),
 * counted from the leases in the database; a paused account is skipped by
 * every claim, limited or not, until the pause ends. */
static void test_claim_limited(void **state)
{
    struct fx *f = *state;
    struct th_err err = {0};
    int64_t a = f->conn.id;            /* account qk-1 */
    int64_t b = conn_on(f, 2002, "qk-1"); /* the same Qoyod account */
    int64_t c = conn_on(f, 3003, "qk-2"); /* another one */
    ingest_for(f, a, "a1", 101);
    ingest_for(f, a, "a2", 102);
    ingest_for(f, a, "a3", 103);
    ingest_for(f, b, "b1", 201);
    ingest_for(f, b, "b2", 202);
    ingest_for(f, c, "c1", 301);
    ingest_for(f, c, "c2", 302);
    ingest_for(f, c, "c3", 303);
    struct store *s2;
    must(store_open(&s2, f->url, &err), &err);
    store_clock_set(s2, fake_clock, f);
    int64_t a1_job = 0;
    assert_int_equal(claim_lim(f, f->s, 2, 3, &a1_job), 101);
    assert_int_equal(claim_lim(f, s2, 2, 3, NULL), 102);   /* the other process */
    assert_int_equal(claim_lim(f, f->s, 2, 3, NULL), 201); /* store a is full: 103 waits */
    assert_int_equal(claim_lim(f, s2, 2, 3, NULL), 301);   /* account qk-1 is full: 202 waits */
    assert_int_equal(claim_lim(f, f->s, 2, 3, NULL), 302);
    assert_int_equal(claim_lim(f, s2, 2, 3, NULL), 0);     /* store c is full too */
    /* finishing a job of store a frees a slot of store a and of qk-1 */
    must(store_job_done(s2, a1_job, &err), &err);
    assert_int_equal(claim_lim(f, s2, 2, 3, NULL), 103);
    assert_int_equal(claim_lim(f, f->s, 2, 3, NULL), 0);
    /* leases that expired (their worker died) no longer count */
    f->now += 60001;
    assert_int_equal(claim_lim(f, f->s, 1, 1, NULL), 102); /* its lease expired: claimable again */
    assert_int_equal(claim_lim(f, f->s, 1, 1, NULL), 301);
    assert_int_equal(claim_lim(f, s2, 1, 1, NULL), 0);
    f->now += 60001;
    /* a pause of account qk-1 (set through store b) holds stores a and b */
    must(store_account_pause(s2, b, f->now + 5000, &err), &err);
    must(store_account_pause(f->s, a, f->now + 10, &err), &err); /* an earlier end is ignored */
    assert_int_equal(claim_lim(f, f->s, 0, 0, NULL), 301);
    assert_int_equal(claim_lim(f, f->s, 0, 0, NULL), 302);
    assert_int_equal(claim_lim(f, s2, 0, 0, NULL), 303);
    claim_none(f); /* the plain claim honours the pause too */
    f->now += 5001;
    assert_int_equal(claim_lim(f, s2, 0, 0, NULL), 102);
    assert_int_equal(store_account_pause(f->s, 9999, f->now, &err), TH_ENOTFOUND);
    store_close(s2);
}

/* The per-account call budget is one token bucket per Qoyod account, shared
 * by its connections and by every process. */
static void test_account_budget(void **state)
{
    struct fx *f = *state;
    struct th_err err = {0};
    int64_t a = f->conn.id;
    int64_t b = conn_on(f, 2002, "qk-1");
    int64_t c = conn_on(f, 3003, "qk-2");
    struct store *s2;
    must(store_open(&s2, f->url, &err), &err);
    store_clock_set(s2, fake_clock, f);
    int64_t w = -1;
    /* 60 a minute (one a second), burst 3: three now, from any handle */
    must(store_account_take(f->s, a, 60, 3, &w, &err), &err);
    assert_int_equal(w, 0);
    must(store_account_take(s2, b, 60, 3, &w, &err), &err);
    assert_int_equal(w, 0);
    must(store_account_take(s2, a, 60, 3, &w, &err), &err);
    assert_int_equal(w, 0);
    must(store_account_take(f->s, b, 60, 3, &w, &err), &err);
    assert_int_equal(w, 1000); /* the fourth waits a whole token */
    must(store_account_take(f->s, c, 60, 3, &w, &err), &err);
    assert_int_equal(w, 0); /* another account has its own bucket */
    f->now += 500;
    must(store_account_take(s2, a, 60, 3, &w, &err), &err);
    assert_int_equal(w, 500);
    f->now += 500;
    must(store_account_take(s2, a, 60, 3, &w, &err), &err);
    assert_int_equal(w, 0);
    f->now += 60000; /* refilled, but never beyond the burst */
    for (int i = 0; i < 3; i++) {
        must(store_account_take(f->s, b, 60, 3, &w, &err), &err);
        assert_int_equal(w, 0);
    }
    must(store_account_take(f->s, b, 60, 3, &w, &err), &err);
    assert_int_equal(w, 1000);
    /* a pause makes every caller of the account wait until it ends */
    f->now += 60000;
    must(store_account_pause(f->s, a, f->now + 7000, &err), &err);
    must(store_account_take(s2, b, 60, 3, &w, &err), &err);
    assert_int_equal(w, 7000);
    f->now += 7000;
    must(store_account_take(s2, b, 60, 3, &w, &err), &err);
    assert_int_equal(w, 0);
    assert_int_equal(store_account_take(f->s, 9999, 60, 3, &w, &err), TH_ENOTFOUND);
    assert_int_equal(store_account_take(f->s, a, 0, 3, &w, &err), TH_EINVAL);
    store_close(s2);
}

/* A named lease is held by one owner at a time, across handles, until it
 * expires or is dropped; its owner renews it. */
static void test_leases(void **state)
{
    struct fx *f = *state;
    struct th_err err = {0};
    struct store *s2;
    must(store_open(&s2, f->url, &err), &err);
    store_clock_set(s2, fake_clock, f);
    int held = -1;
    must(store_lease_take(f->s, "poll:1", "host-a:1", 1000, &held, &err), &err);
    assert_int_equal(held, 1);
    must(store_lease_take(s2, "poll:1", "host-b:7", 1000, &held, &err), &err);
    assert_int_equal(held, 0);
    must(store_lease_take(s2, "poll:2", "host-b:7", 1000, &held, &err), &err);
    assert_int_equal(held, 1); /* another name is another lease */
    f->now += 900;
    must(store_lease_take(f->s, "poll:1", "host-a:1", 1000, &held, &err), &err);
    assert_int_equal(held, 1); /* renewed until now + 1000 */
    f->now += 900;
    must(store_lease_take(s2, "poll:1", "host-b:7", 1000, &held, &err), &err);
    assert_int_equal(held, 0); /* the renewal still holds */
    f->now += 101;
    must(store_lease_take(s2, "poll:1", "host-b:7", 1000, &held, &err), &err);
    assert_int_equal(held, 1); /* expired: taken over */
    must(store_lease_take(f->s, "poll:1", "host-a:1", 1000, &held, &err), &err);
    assert_int_equal(held, 0);
    must(store_lease_drop(f->s, "poll:1", "host-a:1", &err), &err); /* not its own: nothing */
    must(store_lease_take(f->s, "poll:1", "host-a:1", 1000, &held, &err), &err);
    assert_int_equal(held, 0);
    must(store_lease_drop(s2, "poll:1", "host-b:7", &err), &err);
    must(store_lease_take(f->s, "poll:1", "host-a:1", 1000, &held, &err), &err);
    assert_int_equal(held, 1);
    assert_int_equal(store_lease_take(f->s, "", "x", 1000, &held, &err), TH_EINVAL);
    assert_int_equal(store_lease_take(f->s, "n", "x", 0, &held, &err), TH_EINVAL);
    store_close(s2);
}

/* Many claimers on two handles, one store, a limit of 2: at no moment do
 * more than 2 of its jobs run, however the claims interleave. */
#define LIM_JOBS 60
#define LIM_THREADS 6

struct lim_race {
    struct fx *f;
    struct store *s;
    pthread_mutex_t *mu;
    int *running, *max_running, *done;
    int fails;
};

static void *lim_thread(void *p)
{
    struct lim_race *r = p;
    for (int spins = 0; spins < 200000; spins++) {
        pthread_mutex_lock(r->mu);
        int finished = *r->done >= LIM_JOBS;
        pthread_mutex_unlock(r->mu);
        if (finished) break;
        struct store_claim_limits lim = {.per_store = 2, .per_account = 0};
        struct store_job j;
        struct th_err err = {0};
        int rc = store_job_claim_limited(r->s, "w", 60000, &lim, NULL, 0, &j, &err);
        if (rc == TH_ENOTFOUND) {
            usleep(200);
            continue;
        }
        if (rc) {
            r->fails++;
            continue;
        }
        pthread_mutex_lock(r->mu);
        if (++*r->running > *r->max_running) *r->max_running = *r->running;
        pthread_mutex_unlock(r->mu);
        usleep(3000);
        pthread_mutex_lock(r->mu);
        --*r->running;
        ++*r->done;
        pthread_mutex_unlock(r->mu);
        if (store_job_done(r->s, j.id, &err) != 0) r->fails++;
    }
    return NULL;
}

static void test_claim_limited_race(void **state)
{
    struct fx *f = *state;
    for (int i = 1; i <= LIM_JOBS; i++) {
        char key[16];
        snprintf(key, sizeof key, "l%d", i);
        assert_int_equal(ingest(f, key, i), 0);
    }
    struct store *s2;
    struct th_err err = {0};
    must(store_open(&s2, f->url, &err), &err);
    store_clock_set(s2, fake_clock, f);
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    int running = 0, max_running = 0, done = 0;
    struct lim_race r[LIM_THREADS];
    pthread_t t[LIM_THREADS];
    for (int i = 0; i < LIM_THREADS; i++) {
        r[i] = (struct lim_race){.f = f, .s = i % 2 ? s2 : f->s, .mu = &mu, .running = &running,
                                 .max_running = &max_running, .done = &done};
        assert_int_equal(pthread_create(&t[i], NULL, lim_thread, &r[i]), 0);
    }
    for (int i = 0; i < LIM_THREADS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(r[i].fails, 0);
    }
    store_close(s2);
    assert_int_equal(done, LIM_JOBS);
    assert_int_equal(job_count(f), 0);
    /* (how close it came to 2 depends on the scheduler; more is a bug) */
    if (max_running > 2) fail_msg("at most 2 jobs at once were allowed; %d ran", max_running);
}

/* ---------------------------------------------------------------------- */
/* PostgreSQL backend: the database itself */

static void test_pg_database(void **state)
{
    struct fx *f = *state;
    struct th_err err = {0};
    assert_int_equal(raw_int(f, "SELECT version FROM tarheel_schema"), STORE_PG_SCHEMA_VERSION);
    assert_int_equal(raw_int(f, "SELECT count(*) FROM tarheel_schema"), 1);
    assert_int_equal(store_shared(f->s), 1); /* many processes may share it */
    assert_int_equal(ingest(f, "evt-x", 5), 0);
    assert_int_equal(raw_int(f, "SELECT format FROM events WHERE dedupe_key = 'evt-x'"), 1);
    assert_int_equal(raw_int(f, "SELECT received_at_ms FROM events"), f->now);
    assert_int_equal(raw_int(f, "SELECT COUNT(*) FROM events WHERE BODY_TEXT = "
                                "'{\"event\":\"order.updated\",\"id\":5}'"),
                     1);
    /* a body that is not text (bytea keeps every byte) */
    int dup = -1;
    must(store_event_ingest(f->s, f->conn.id, "bin", "order.created", 6, "a\0b\xff", 4, &dup,
                            &err),
         &err);
    assert_int_equal(raw_int(f, "SELECT length(body) FROM events WHERE dedupe_key = 'bin'"), 4);
    assert_int_equal(raw_int(f, "SELECT get_byte(body, 3) FROM events WHERE dedupe_key = 'bin'"),
                     255);
    /* history is append-only, and the unique index holds behind our back */
    must(store_order_note(f->s, f->conn.id, 5, "seen", NULL, &err), &err);
    char *sql = xasprintf("SET search_path = %s; DELETE FROM order_history", f->schema);
    PGconn *c = PQconnectdb(pg_db_url);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, sql);
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_non_null(strstr(PQresultErrorMessage(r), "append-only"));
    PQclear(r);
    free(sql);
    sql = xasprintf("SET search_path = %s; INSERT INTO jobs (conn_id, order_id, run_after_ms, "
                    "created_at_ms) VALUES (%lld, 5, 0, 0)",
                    f->schema, (long long)f->conn.id);
    r = PQexec(c, sql);
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    PQclear(r);
    free(sql);
    PQfinish(c);
    assert_int_equal(raw_int(f, "SELECT count(*) FROM order_history"), 1);
    /* a second handle, spelled postgresql://, migrates nothing twice */
    char *url2 = xasprintf("postgresql://%s", strstr(f->url, "://") + 3);
    struct store *s2;
    must(store_open(&s2, url2, &err), &err);
    struct store_conn got;
    must(store_conn_find(s2, MODEL_PLATFORM_SALLA, 1001, &got, &err), &err);
    assert_int_equal(got.id, f->conn.id);
    store_conn_release(&got);
    store_close(s2);
    free(url2);
    assert_int_equal(raw_int(f, "SELECT count(*) FROM tarheel_schema"), 1);
}

/* Creates this run's database on the server at TH_TEST_PG_URL and points
 * pg_db_url at it. Returns 0, or 1 after saying why it could not. */
static int pg_run_begin(void)
{
    const char *server = getenv("TH_TEST_PG_URL");
    if (!server || !*server) {
        fprintf(stderr, "test_store pg: TH_TEST_PG_URL is empty: the pg fixture "
                        "(tests/pg/pgtmp.sh start) did not start PostgreSQL; see its output\n");
        return 1;
    }
    PGconn *c = PQconnectdb(server);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "test_store pg: cannot reach %s: %s", server, PQerrorMessage(c));
        PQfinish(c);
        return 1;
    }
    char name[64];
    snprintf(name, sizeof name, "th_store_%d", (int)getpid());
    char *sql = xasprintf("DROP DATABASE IF EXISTS %s", name);
    PQclear(PQexec(c, sql));
    free(sql);
    sql = xasprintf("CREATE DATABASE %s", name);
    PGresult *r = PQexec(c, sql);
    free(sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) fprintf(stderr, "test_store pg: %s", PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
    if (!ok) return 1;
    /* the server URL with its database replaced by ours */
    const char *slash = strrchr(server, '/');
    const char *q = strchr(server, '?');
    if (!slash || slash < strstr(server, "://") + 3) slash = server + strlen(server);
    snprintf(pg_db_url, sizeof pg_db_url, "%.*s/%s%s", (int)(slash - server), server, name,
             q ? q : "");
    return 0;
}

static void pg_run_end(void)
{
    const char *server = getenv("TH_TEST_PG_URL");
    const char *name = strrchr(pg_db_url, '/') + 1;
    char *sql = xasprintf("DROP DATABASE IF EXISTS %.*s WITH (FORCE)", (int)strcspn(name, "?"),
                          name);
    pg_sql(server, sql);
    free(sql);
}

/* The reference prefix connection id has now. */
static char *prefix_of(struct fx *f, int64_t id)
{
    struct store_conn c = {0};
    struct th_err err = {0};
    must(store_conn_get(f->s, id, &c, &err), &err);
    assert_non_null(c.ref_prefix);
    char *p = xstrdup(c.ref_prefix);
    store_conn_release(&c);
    return p;
}

static void assert_prefix(struct fx *f, int64_t id, const char *want)
{
    char *p = prefix_of(f, id);
    if (strcmp(p, want) != 0)
        fail_msg("connection %lld: reference prefix \"%s\", expected \"%s\"", (long long)id, p,
                 want);
    free(p);
}

/* store_conn_put_settings with one change: the prefix given (NULL: none
 * given) and the trigger. */
static int set_prefix(struct fx *f, int64_t id, const char *prefix, enum model_status trigger,
                      struct th_err *err)
{
    struct store_conn c = {0};
    must(store_conn_get(f->s, id, &c, err), err);
    free(c.ref_prefix);
    c.ref_prefix = prefix ? xstrdup(prefix) : NULL;
    c.trigger = trigger;
    int rc = store_conn_put_settings(f->s, &c, err);
    store_conn_release(&c);
    return rc;
}

/* Two stores on one Qoyod account never share references: the first keeps
 * none (its references stay the order numbers), a store that joins the
 * account gets "S<id>"/"Z<id>", by connecting or by a settings change of
 * its key; a merchant's prefix is unique on the account and changes only
 * before any order was sent, and a refused change writes nothing. */
static void test_ref_prefix(void **state)
{
    struct fx *f = *state;
    struct th_err err = {0};
    char want[32];
    assert_prefix(f, f->conn.id, ""); /* alone on its account */

    struct store_conn b, z, other;
    conn_fill(&b, 2002); /* same key as f->conn */
    must(store_conn_put(f->s, &b, &err), &err);
    assert_null(b.ref_prefix); /* c is not changed */
    snprintf(want, sizeof want, "S%lld", (long long)b.id);
    assert_prefix(f, b.id, want);
    assert_prefix(f, f->conn.id, "");
    conn_fill(&z, 3003);
    z.platform = MODEL_PLATFORM_ZID;
    must(store_conn_put(f->s, &z, &err), &err);
    snprintf(want, sizeof want, "Z%lld", (long long)z.id);
    assert_prefix(f, z.id, want);
    conn_fill(&other, 4004);
    free(other.qoyod_api_key);
    other.qoyod_api_key = xstrdup("qk-other-account");
    must(store_conn_put(f->s, &other, &err), &err);
    assert_prefix(f, other.id, "");

    /* the merchant's own prefix */
    must(set_prefix(f, b.id, "SHOP2", MODEL_STATUS_READY, &err), &err);
    assert_prefix(f, b.id, "SHOP2");
    must(set_prefix(f, other.id, "SHOP2", MODEL_STATUS_NEW, &err), &err); /* another account */
    assert_prefix(f, other.id, "SHOP2");
    assert_int_equal(set_prefix(f, z.id, "SHOP2", MODEL_STATUS_READY, &err), TH_ECONFLICT);
    assert_non_null(strstr(err.msg, "already uses the reference prefix \"SHOP2\""));
    assert_int_equal(set_prefix(f, b.id, "", MODEL_STATUS_READY, &err), TH_ECONFLICT);
    assert_non_null(strstr(err.msg, "only one store of an account goes without"));
    /* none given: unchanged, the rest saved */
    must(set_prefix(f, f->conn.id, NULL, MODEL_STATUS_IN_TRANSIT, &err), &err);
    assert_prefix(f, f->conn.id, "");

    /* a reconnect (store_conn_put of a fresh struct) keeps the prefix */
    struct store_conn again;
    conn_fill(&again, 2002);
    must(store_conn_put(f->s, &again, &err), &err);
    assert_int_equal(again.id, b.id);
    assert_prefix(f, b.id, "SHOP2");

    /* once an order was sent, the prefix stays, and nothing else is saved */
    struct store_order o = order_make(b.id, 77, 1706700000, STORE_XFER_TRANSFERRING);
    must(store_order_put(f->s, &o, &err), &err);
    store_order_release(&o);
    assert_int_equal(set_prefix(f, b.id, "SHOP3", MODEL_STATUS_NEW, &err), TH_ECONFLICT);
    assert_non_null(strstr(err.msg, "1 of its orders were already sent"));
    assert_prefix(f, b.id, "SHOP2");
    struct store_conn got = {0};
    must(store_conn_get(f->s, b.id, &got, &err), &err);
    assert_int_equal(got.trigger, MODEL_STATUS_COMPLETED); /* the reconnect's */
    store_conn_release(&got);
    /* a failed order that was never sent does not count */
    o = order_make(z.id, 78, 1706700000, STORE_XFER_FAILED);
    free(o.qoyod_reference);
    o.qoyod_reference = NULL;
    must(store_order_put(f->s, &o, &err), &err);
    store_order_release(&o);
    must(set_prefix(f, z.id, "ZID", MODEL_STATUS_NEW, &err), &err);
    assert_prefix(f, z.id, "ZID");

    /* joining the account by a settings change of the key */
    must(store_conn_get(f->s, other.id, &got, &err), &err);
    free(got.qoyod_api_key);
    got.qoyod_api_key = xstrdup("qk-1");
    free(got.ref_prefix);
    got.ref_prefix = xstrdup(""); /* SHOP2 is taken there: give it up */
    must(store_conn_put_settings(f->s, &got, &err), &err);
    store_conn_release(&got);
    snprintf(want, sizeof want, "S%lld", (long long)other.id);
    assert_prefix(f, other.id, want);
    assert_prefix(f, f->conn.id, "");

    store_conn_release(&b);
    store_conn_release(&z);
    store_conn_release(&other);
    store_conn_release(&again);
}

/* A database of schema 9 with stores already sharing a Qoyod account: each
 * that sent nothing gets its default prefix, the one whose references
 * Qoyod holds keeps none. */
static void test_migration_9_to_10_prefixes_shared_accounts(void **state)
{
    struct fx *f = *state;
    struct th_err err = {0};
    struct store_conn b, c, d;
    conn_fill(&b, 2002); /* f->conn's account */
    conn_fill(&c, 3003);
    conn_fill(&d, 4004);
    free(d.qoyod_api_key);
    d.qoyod_api_key = xstrdup("qk-alone");
    must(store_conn_put(f->s, &b, &err), &err);
    must(store_conn_put(f->s, &c, &err), &err);
    must(store_conn_put(f->s, &d, &err), &err);
    /* b has sent an order, f->conn (older) and c have not */
    struct store_order o = order_make(b.id, 90, 1706700000, STORE_XFER_TRANSFERRED);
    must(store_order_put(f->s, &o, &err), &err);
    store_order_release(&o);
    store_close(f->s);
    f->s = NULL;
    raw_exec(f, UNDO_10 "PRAGMA user_version = 9");
    open_store(f);
    assert_int_equal(raw_int(f, "PRAGMA user_version"), STORE_SQLITE_SCHEMA_VERSION);
    char want[32];
    snprintf(want, sizeof want, "S%lld", (long long)f->conn.id);
    assert_prefix(f, f->conn.id, want);
    assert_prefix(f, b.id, "");
    snprintf(want, sizeof want, "S%lld", (long long)c.id);
    assert_prefix(f, c.id, want);
    assert_prefix(f, d.id, "");
    store_conn_release(&b);
    store_conn_release(&c);
    store_conn_release(&d);
}

int main(int argc, char **argv)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    /* The contract: every backend passes these, identically. */
    const struct CMUnitTest conformance[] = {
        T(test_conn_secrets_sealed_at_rest),
        T(test_conn_put_get_find),
        T(test_conn_update_and_unique),
        T(test_conn_list),
        T(test_ref_prefix),
        T(test_ingest_creates_job),
        T(test_ingest_duplicate),
        T(test_two_events_one_job),
        T(test_ingest_rejects),
        T(test_claim_oldest_first_and_run_after),
        T(test_claim_one_per_order_and_rerun),
        T(test_expired_lease_reclaimed),
        T(test_claim_two_handles),
        T(test_job_fenced_by_lease),
        T(test_order_put_fenced_by_lease),
        T(test_order_pages),
        T(test_job_defer_not_counted),
        T(test_claim_limited),
        T(test_claim_limited_race),
        T(test_account_budget),
        T(test_leases),
        T(test_enqueue),
        T(test_orders),
        T(test_order_add),
        T(test_history),
        T(test_enqueue_many),
        T(test_mappings),
        T(test_users),
        T(test_tenants_and_tokens),
        T(test_tenant_rows),
        T(test_reopen_keeps_everything),
        T(test_newer_schema_refused),
        T(test_manager_token_round_trip),
        T(test_stock_rows),
        T(test_stock_lines),
        T(test_fields_and_conflicts),
        T(test_concurrent_ingest),
        T(test_ingest_async),
    };
    const struct CMUnitTest sqlite_only[] = {
        T(test_open_twice_and_urls),
        cmocka_unit_test(test_bad_paths),
        T(test_migration_1_to_2_keeps_jobs),
        T(test_migration_2_to_3_keeps_events),
        T(test_migration_4_to_5_adds_order_tax),
        T(test_migration_6_to_7_adds_order_credit),
        T(test_migration_9_to_10_prefixes_shared_accounts),
        T(test_migration_10_to_11_adds_tenants),
        T(test_sqlite_file),
        T(test_sqlite_disk_full),
    };
    const struct CMUnitTest pg_only[] = {
        T(test_pg_database),
    };
#undef T
    if (argc > 1 && strcmp(argv[1], "pg") == 0) {
        /* A PostgreSQL store's default key is $HOME/.config/tarheel/secret.key:
         * never the tests' to create or rotate. A key of their own. */
        char keydir[] = "/tmp/th_pgkeyXXXXXX";
        if (!mkdtemp(keydir)) return 1;
        char *key = xasprintf("%s/secret.key", keydir);
        struct th_err kerr;
        if (secret_key_create(key, &kerr) != 0) {
            fprintf(stderr, "%s\n", kerr.msg);
            return 1;
        }
        setenv("TARHEEL_SECRET_KEY_FILE", key, 1);
        if (pg_run_begin() != 0) return 1;
        int failed = cmocka_run_group_tests_name("store_pg_conformance", conformance, NULL, NULL);
        failed += cmocka_run_group_tests_name("store_pg_only", pg_only, NULL, NULL);
        pg_run_end();
        unlink(key);
        rmdir(keydir);
        free(key);
        return failed;
    }
    if (argc > 1 && strcmp(argv[1], "sqlite") != 0) {
        fprintf(stderr, "usage: %s [sqlite|pg]\n", argv[0]);
        return 2;
    }
    int failed = cmocka_run_group_tests_name("store_sqlite_conformance", conformance, NULL, NULL);
    failed += cmocka_run_group_tests_name("store_sqlite_only", sqlite_only, NULL, NULL);
    return failed;
}
