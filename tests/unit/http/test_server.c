/*
 * Tests for src/http/server.c: webhook intake answers and what it commits.
 * Real HTTP on loopback, real SQLite store in a temp directory.
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "core/jv.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "http/server.h"
#include "store/store_int.h"
#include "th_test.h"

#define SECRET "whsec"
#define APP_SECRET "app-secret"

struct fx {
    char dir[64];
    struct store *store;
    struct server *srv;
    char url[128];
    int64_t conn_id;
};

static int setup(void **state)
{
    struct fx *f = xcalloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/th_serverXXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char *db = xasprintf("sqlite:%s/s.db", f->dir);
    struct th_err err;
    assert_int_equal(store_open(&f->store, db, &err), 0);
    free(db);
    struct store_conn c = {.platform = MODEL_PLATFORM_SALLA, .store_id = 100, .trigger = 1};
    c.webhook_secret = xstrdup(SECRET);
    c.webhook_strategy = xstrdup("signature");
    c.status = xstrdup("active");
    assert_int_equal(store_conn_put(f->store, &c, &err), 0);
    f->conn_id = c.id;
    store_conn_release(&c);
    struct server_config sc = {.listen = "127.0.0.1:0",
                               .store = f->store,
                               .salla = {.webhook_secret = APP_SECRET,
                                         .webhook_strategy = "signature",
                                         .api_base = "http://127.0.0.1:1/admin/v2"},
                               .qoyod_base = "http://127.0.0.1:1/2.0",
                               .qoyod_api_key = "qk",
                               .inventory_id = 1};
    assert_int_equal(server_open(&f->srv, &sc, &err), 0);
    snprintf(f->url, sizeof f->url, "http://127.0.0.1:%u/webhooks/salla", server_port(f->srv));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    server_close(f->srv);
    store_close(f->store);
    char *cmd = xasprintf("chmod -R u+w %s; rm -rf %s", f->dir, f->dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(f);
    return 0;
}

static long post(struct fx *f, const char *body, const char *secret, struct tt_resp *out)
{
    unsigned char md[32];
    unsigned int n = 0;
    HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)body, strlen(body), md,
         &n);
    char sig[128] = "X-Salla-Signature: ";
    size_t o = strlen(sig);
    for (unsigned i = 0; i < n; i++) o += (size_t)snprintf(sig + o, 3, "%02x", md[i]);
    const char *h[] = {sig, "Content-Type: application/json", NULL};
    struct tt_resp r;
    tt_http("POST", f->url, h, body, out ? out : &r);
    long st = (out ? out : &r)->status;
    if (!out) tt_resp_release(&r);
    return st;
}

static int64_t jobs(struct fx *f)
{
    int64_t n = -1;
    struct th_err err;
    assert_int_equal(store_job_count(f->store, &n, &err), 0);
    return n;
}

static const char *ORDER =
    "{\"event\":\"order.created\",\"merchant\":100,\"data\":{\"id\":5001,\"reference_id\":1}}";

static void test_accepted_then_duplicate(void **state)
{
    struct fx *f = *state;
    struct tt_resp r;
    assert_int_equal(post(f, ORDER, SECRET, &r), 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "code")), "accepted");
    tt_resp_release(&r);
    assert_int_equal(jobs(f), 1);
    assert_int_equal(post(f, ORDER, SECRET, &r), 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "code")), "duplicate");
    tt_resp_release(&r);
    assert_int_equal(jobs(f), 1);
}

static void test_rejections(void **state)
{
    struct fx *f = *state;
    /* signed with the wrong secret → 401, nothing stored */
    assert_int_equal(post(f, ORDER, "nope", NULL), 401);
    /* the app secret is not the store's secret */
    assert_int_equal(post(f, ORDER, APP_SECRET, NULL), 401);
    /* unsigned */
    struct tt_resp r;
    tt_http("POST", f->url, NULL, ORDER, &r);
    assert_int_equal(r.status, 401);
    tt_resp_release(&r);
    /* malformed JSON → 400 */
    assert_int_equal(post(f, "{\"event\":", SECRET, NULL), 400);
    /* no merchant → 400 */
    assert_int_equal(post(f, "{\"event\":\"order.created\",\"data\":{}}", SECRET, NULL), 400);
    /* an order event without an order id → 400 */
    assert_int_equal(post(f, "{\"event\":\"order.created\",\"merchant\":100,\"data\":{}}", SECRET,
                          NULL),
                     400);
    /* GET on the webhook route → 405, unknown platform → 404 */
    tt_http("GET", f->url, NULL, NULL, &r);
    assert_int_equal(r.status, 405);
    tt_resp_release(&r);
    char other[160];
    snprintf(other, sizeof other, "http://127.0.0.1:%u/webhooks/shopify", server_port(f->srv));
    tt_http("POST", other, NULL, ORDER, &r);
    assert_int_equal(r.status, 404);
    tt_resp_release(&r);
    assert_int_equal(jobs(f), 0);
}

static void test_body_limit(void **state)
{
    struct fx *f = *state;
    size_t sizes[] = {SERVER_MAX_BODY - 1, SERVER_MAX_BODY, SERVER_MAX_BODY + 1};
    long want[] = {401, 401, 413}; /* under the cap the (bogus) signature is checked */
    for (int i = 0; i < 3; i++) {
        char *b = xmalloc(sizes[i] + 1);
        memset(b, ' ', sizes[i]);
        memcpy(b, "{\"merchant\":100}", 16);
        b[sizes[i]] = '\0';
        const char *h[] = {"X-Salla-Signature: 00", NULL};
        struct tt_resp r;
        tt_http("POST", f->url, h, b, &r);
        if (r.status != want[i]) fail_msg("body of %zu: want %ld got %ld", sizes[i], want[i], r.status);
        if (r.status == 413) {
            /* its own error, in the webhook routes' shape and the API's */
            assert_non_null(r.json);
            assert_string_equal(json_string_value(json_object_get(r.json, "code")), "TH_ETOOBIG");
            assert_string_equal(json_string_value(jv_path(r.json, "error.code")), "TH_ETOOBIG");
            assert_non_null(strstr(json_string_value(json_object_get(r.json, "message")),
                                   "larger than 1048576 bytes"));
            assert_int_equal(json_integer_value(json_object_get(r.json, "limit_bytes")),
                             SERVER_MAX_BODY);
        }
        tt_resp_release(&r);
        free(b);
    }
}

static void test_easy_mode_authorize_and_uninstall(void **state)
{
    struct fx *f = *state;
    const char *auth = "{\"event\":\"app.store.authorize\",\"merchant\":200,\"created_at\":\"x\","
                       "\"data\":{\"access_token\":\"AT1\",\"refresh_token\":\"RT1\","
                       "\"expires\":1900000000,\"scope\":\"orders.read offline_access\"}}";
    /* an unknown store is verified with the app's secret */
    assert_int_equal(post(f, auth, SECRET, NULL), 401);
    assert_int_equal(post(f, auth, APP_SECRET, NULL), 200);
    struct store_conn c = {0};
    struct th_err err;
    assert_int_equal(store_conn_find(f->store, MODEL_PLATFORM_SALLA, 200, &c, &err), 0);
    assert_string_equal(c.access_token, "AT1");
    assert_string_equal(c.refresh_token, "RT1");
    assert_int_equal(c.token_expires_at, 1900000000);
    assert_string_equal(c.status, "active");
    assert_string_equal(c.qoyod_api_key, "qk");
    store_conn_release(&c);
    const char *un = "{\"event\":\"app.uninstalled\",\"merchant\":200,\"data\":{}}";
    assert_int_equal(post(f, un, APP_SECRET, NULL), 200);
    assert_int_equal(store_conn_find(f->store, MODEL_PLATFORM_SALLA, 200, &c, &err), 0);
    assert_string_equal(c.status, "disconnected");
    store_conn_release(&c);
    /* events from a store that never installed are not stored */
    const char *stranger = "{\"event\":\"order.created\",\"merchant\":300,\"data\":{\"id\":1}}";
    assert_int_equal(post(f, stranger, APP_SECRET, NULL), 202);
    assert_int_equal(jobs(f), 0);
}

/* ---------------------------------------------------------------------- */
/* The store cannot commit (disk full): 503, nothing kept, recovery */

/* One integer from the database file, read over a connection of our own
 * (WAL lets it read beside the server's). sql may have one ?1 text
 * parameter, bound to arg. */
static int64_t db_int(struct fx *f, const char *sql, const char *arg)
{
    char *path = xasprintf("%s/s.db", f->dir);
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    free(path);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    if (arg) sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static int64_t events_of(struct fx *f, int64_t order_id)
{
    char id[32];
    snprintf(id, sizeof id, "%lld", (long long)order_id);
    return db_int(f, "SELECT COUNT(*) FROM events WHERE order_id = CAST(?1 AS INTEGER)", id);
}

static int64_t jobs_of(struct fx *f, int64_t order_id)
{
    char id[32];
    snprintf(id, sizeof id, "%lld", (long long)order_id);
    return db_int(f, "SELECT COUNT(*) FROM jobs WHERE order_id = CAST(?1 AS INTEGER)", id);
}

static void integrity_ok(struct fx *f)
{
    char *path = xasprintf("%s/s.db", f->dir);
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    free(path);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* A signed order.created for order_id whose body carries `pad` bytes of
 * note: 16 KiB needs overflow pages, so it cannot fit into free space left
 * in pages the database already has. */
static char *big_order(int64_t order_id, size_t pad)
{
    char *note = xmalloc(pad + 1);
    memset(note, 'n', pad);
    note[pad] = '\0';
    char *b = xasprintf("{\"event\":\"order.created\",\"merchant\":100,\"data\":{\"id\":%lld,"
                        "\"reference_id\":%lld,\"note\":\"%s\"}}",
                        (long long)order_id, (long long)order_id, note);
    free(note);
    return b;
}

static void full(struct fx *f, int on)
{
    struct th_err err = {0};
    int64_t cap = 0;
    int rc = store_test_max_pages(f->store, on ? 1 : 0, &cap, &err);
    if (rc) fail_msg("store_test_max_pages: %s", err.msg);
}

/* Asserts a 503 whose body names the failure and says what to do. */
static void assert_unstored(struct fx *f, const char *body)
{
    struct tt_resp r;
    long st = post(f, body, SECRET, &r);
    if (st != 503) fail_msg("while the disk is full: want 503, got %ld: %s", st, r.body);
    assert_string_equal(json_string_value(json_object_get(r.json, "code")), "TH_EDISKFULL");
    assert_false(json_is_true(json_object_get(r.json, "ok")));
    const char *msg = json_string_value(json_object_get(r.json, "message"));
    assert_non_null(msg);
    if (!strstr(msg, "nothing was kept") || !strstr(msg, "deliver it again"))
        fail_msg("the 503 does not say what to do: %s", msg);
    /* the operator's details (the database path) stay in our log */
    assert_null(strstr(msg, f->dir));
    tt_resp_release(&r);
}

static void assert_code(struct fx *f, const char *body, const char *code)
{
    struct tt_resp r;
    long st = post(f, body, SECRET, &r);
    if (st != 200) fail_msg("want 200 %s, got %ld: %s", code, st, r.body);
    assert_string_equal(json_string_value(json_object_get(r.json, "code")), code);
    tt_resp_release(&r);
}

static void test_disk_full_503_then_recovers(void **state)
{
    struct fx *f = *state;
    assert_code(f, ORDER, "accepted"); /* order 5001; the connection is now cached too */
    int64_t before = db_int(f, "SELECT COUNT(*) FROM events", NULL);
    assert_int_equal(before, 1);

    full(f, 1);
    char *b7 = big_order(7001, 16384);
    assert_unstored(f, b7);
    assert_unstored(f, b7); /* a platform retry while still full: the same answer */
    /* nothing half-written: no event, no job, the file is sound */
    assert_int_equal(events_of(f, 7001), 0);
    assert_int_equal(jobs_of(f, 7001), 0);
    assert_int_equal(db_int(f, "SELECT COUNT(*) FROM events", NULL), before);
    assert_int_equal(jobs(f), 1);
    integrity_ok(f);

    full(f, 0); /* space returns; the server was not restarted */
    char *b8 = big_order(8001, 16384);
    assert_code(f, b8, "accepted");
    assert_int_equal(events_of(f, 8001), 1);
    assert_int_equal(jobs_of(f, 8001), 1);
    /* the platform's retry of the rejected delivery is taken, once */
    assert_code(f, b7, "accepted");
    assert_code(f, b7, "duplicate");
    assert_int_equal(events_of(f, 7001), 1);
    assert_int_equal(jobs_of(f, 7001), 1);
    assert_int_equal(jobs(f), 3);
    integrity_ok(f);
    free(b7);
    free(b8);
}

/* The same under concurrency, so the rejected deliveries share group
 * commits: every one is refused while full, none leaves a trace, and all are
 * taken exactly once afterwards. */
#define FULL_CLIENTS 12

struct full_client {
    struct fx *f;
    const char *body;
    long status;
    char code[32];
};

static void *full_client_run(void *p)
{
    struct full_client *c = p;
    struct tt_resp r;
    c->status = post(c->f, c->body, SECRET, &r);
    const char *code = json_string_value(json_object_get(r.json, "code"));
    snprintf(c->code, sizeof c->code, "%s", code ? code : "");
    tt_resp_release(&r);
    return NULL;
}

static void post_all(struct fx *f, char **bodies, struct full_client *c)
{
    pthread_t t[FULL_CLIENTS];
    for (int i = 0; i < FULL_CLIENTS; i++) {
        c[i] = (struct full_client){.f = f, .body = bodies[i]};
        assert_int_equal(pthread_create(&t[i], NULL, full_client_run, &c[i]), 0);
    }
    for (int i = 0; i < FULL_CLIENTS; i++)
        pthread_join(t[i], NULL);
}

static void test_disk_full_concurrent(void **state)
{
    struct fx *f = *state;
    assert_code(f, ORDER, "accepted");
    char *bodies[FULL_CLIENTS];
    for (int i = 0; i < FULL_CLIENTS; i++)
        bodies[i] = big_order(9000 + i, 16384);
    struct full_client c[FULL_CLIENTS];

    full(f, 1);
    post_all(f, bodies, c);
    for (int i = 0; i < FULL_CLIENTS; i++)
        if (c[i].status != 503 || strcmp(c[i].code, "TH_EDISKFULL") != 0)
            fail_msg("client %d while full: want 503 TH_EDISKFULL, got %ld %s", i, c[i].status,
                     c[i].code);
    assert_int_equal(db_int(f, "SELECT COUNT(*) FROM events", NULL), 1);
    assert_int_equal(jobs(f), 1);
    integrity_ok(f);

    full(f, 0);
    post_all(f, bodies, c);
    for (int i = 0; i < FULL_CLIENTS; i++)
        if (c[i].status != 200 || strcmp(c[i].code, "accepted") != 0)
            fail_msg("client %d after space returned: want 200 accepted, got %ld %s", i,
                     c[i].status, c[i].code);
    post_all(f, bodies, c);
    for (int i = 0; i < FULL_CLIENTS; i++)
        if (c[i].status != 200 || strcmp(c[i].code, "duplicate") != 0)
            fail_msg("client %d redelivered: want 200 duplicate, got %ld %s", i, c[i].status,
                     c[i].code);
    for (int i = 0; i < FULL_CLIENTS; i++) {
        assert_int_equal(events_of(f, 9000 + i), 1);
        assert_int_equal(jobs_of(f, 9000 + i), 1);
        free(bodies[i]);
    }
    assert_int_equal(jobs(f), 1 + FULL_CLIENTS);
    integrity_ok(f);
}

int main(void)
{
    log_set_level(LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_accepted_then_duplicate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_easy_mode_authorize_and_uninstall, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_full_503_then_recovers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_full_concurrent, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
