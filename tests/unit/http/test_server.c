/*
 * Tests for src/http/server.c: webhook intake answers and what it commits.
 * Real HTTP on loopback, real SQLite store in a temp directory.
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "http/server.h"
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

int main(void)
{
    log_set_level(LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_accepted_then_duplicate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_easy_mode_authorize_and_uninstall, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
