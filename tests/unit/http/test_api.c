/*
 * Tests for src/http/api.c: the REST API under /api/v1, driven over real
 * HTTP on loopback (libcurl, so response headers can be checked) against a
 * real server and a SQLite store in a temp directory, seeded through
 * store.h. Every assertion names an exact status and exact JSON fields.
 */
#include <ctype.h>
#include <curl/curl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cmocka.h>

#include <jansson.h>

#include "core/log.h"
#include "core/passwd.h"
#include "core/xmalloc.h"
#include "http/api.h"
#include "http/server.h"
#include "sim/salla_sim.h"
#include "th_test.h"
#include "worker/pull.h"
#include "worker/manage.h"
#include "worker/report.h"

#define TOKEN "test-token-0123456789abcdef"
#define TOKEN2 "second-token-ABCDEFGHIJKLMNOP"
/* Secrets seeded into the connections: none may appear in any answer. */
static const char *const SECRETS[] = {"AT-secret-access", "RT-secret-refresh", "WH-secret-hook",
                                      "QK-secret-qoyod", NULL};

struct fx {
    char dir[64];
    struct store *store;
    struct api *api;
    struct server *srv;
    char base[96];  /* http://127.0.0.1:PORT */
    int64_t c1, c2; /* connection ids */
};

struct resp {
    long status;
    char *body;
    json_t *json;
    char www_auth[256];
    char allow[128];
    char set_cookie[256];
    char retry_after[32];
};

/* ---------------------------------------------------------------------- */
/* Helpers                                                                  */

static void must(int rc, const struct th_err *err)
{
    if (rc != 0) fail_msg("call failed: %s: %s", th_err_name(rc), err->msg);
}

static size_t on_body(char *p, size_t sz, size_t n, void *arg)
{
    struct buf *b = arg;
    if (buf_append(b, p, sz * n)) return 0;
    return sz * n;
}

static size_t on_header(char *p, size_t sz, size_t n, void *arg)
{
    struct resp *r = arg;
    size_t len = sz * n;
    struct {
        const char *name;
        char *dst;
        size_t cap;
    } want[] = {{"WWW-Authenticate:", r->www_auth, sizeof r->www_auth},
                {"Allow:", r->allow, sizeof r->allow},
                {"Set-Cookie:", r->set_cookie, sizeof r->set_cookie},
                {"Retry-After:", r->retry_after, sizeof r->retry_after}};
    for (size_t i = 0; i < 4; i++) {
        size_t nl = strlen(want[i].name);
        if (len > nl && strncasecmp(p, want[i].name, nl) == 0) {
            const char *v = p + nl;
            size_t vl = len - nl;
            while (vl && (*v == ' '))
                v++, vl--;
            while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n'))
                vl--;
            snprintf(want[i].dst, want[i].cap, "%.*s", (int)vl, v);
        }
    }
    return len;
}

/* One request with exactly the header lines given (NULL-terminated). */
static void call_hdrs(struct fx *f, const char *method, const char *path,
                      const char *const *hdrs, const char *body, struct resp *r)
{
    memset(r, 0, sizeof *r);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    char url[512];
    snprintf(url, sizeof url, "%s%s", f->base, path);
    struct buf b;
    buf_init(&b, 0);
    struct curl_slist *h = NULL;
    for (size_t i = 0; hdrs && hdrs[i]; i++)
        h = curl_slist_append(h, hdrs[i]);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    CURLcode cc = curl_easy_perform(c);
    if (cc != CURLE_OK) fail_msg("%s %s: %s", method, url, curl_easy_strerror(cc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    r->body = xstrdup(buf_cstr(&b));
    buf_release(&b);
    r->json = json_loads(r->body, 0, NULL);
    for (size_t i = 0; SECRETS[i]; i++)
        if (strstr(r->body, SECRETS[i]))
            fail_msg("%s %s leaked a secret: %s", method, path, r->body);
    if (strstr(r->body, TOKEN) || strstr(r->body, TOKEN2))
        fail_msg("%s %s echoed the API token", method, path);
}

/* One request. token NULL: no Authorization header; auth overrides the
 * whole header value when not NULL. */
static void call_auth(struct fx *f, const char *method, const char *path, const char *auth,
                      const char *body, struct resp *r)
{
    char ah[256];
    snprintf(ah, sizeof ah, "Authorization: %s", auth ? auth : "");
    const char *h[] = {"Content-Type: application/json", auth ? ah : NULL, NULL};
    call_hdrs(f, method, path, h, body, r);
}

static void call(struct fx *f, const char *method, const char *path, const char *body,
                 struct resp *r)
{
    call_auth(f, method, path, "Bearer " TOKEN, body, r);
}

static void resp_release(struct resp *r)
{
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

/* Asserts the status, printing the body when it differs. */
static void want_status(const struct resp *r, long status)
{
    if (r->status != status) fail_msg("want HTTP %ld, got %ld: %s", status, r->status, r->body);
}

/* The value at a dotted path ("error.fields.0.field"; numbers index arrays). */
static json_t *jp(const json_t *root, const char *path)
{
    const json_t *v = root;
    const char *p = path;
    char key[64];
    while (v && *p) {
        size_t len = strcspn(p, ".");
        snprintf(key, sizeof key, "%.*s", (int)len, p);
        if (json_is_array(v))
            v = json_array_get(v, (size_t)strtoul(key, NULL, 10));
        else
            v = json_object_get(v, key);
        p += len;
        if (*p == '.') p++;
    }
    return (json_t *)v;
}

static void want_str(const struct resp *r, const char *path, const char *want)
{
    const char *got = json_string_value(jp(r->json, path));
    if (!got || strcmp(got, want) != 0)
        fail_msg("%s: want \"%s\", got \"%s\" in %s", path, want, got ? got : "(none)", r->body);
}

static void want_int(const struct resp *r, const char *path, long long want)
{
    json_t *v = jp(r->json, path);
    if (!json_is_integer(v) || json_integer_value(v) != want)
        fail_msg("%s: want %lld in %s", path, want, r->body);
}

static void want_bool(const struct resp *r, const char *path, int want)
{
    json_t *v = jp(r->json, path);
    if (!json_is_boolean(v) || json_is_true(v) != !!want)
        fail_msg("%s: want %s in %s", path, want ? "true" : "false", r->body);
}

static void want_null(const struct resp *r, const char *path)
{
    json_t *v = jp(r->json, path);
    if (!json_is_null(v)) fail_msg("%s: want null in %s", path, r->body);
}

static void want_contains(const struct resp *r, const char *path, const char *part)
{
    const char *got = json_string_value(jp(r->json, path));
    if (!got || !strstr(got, part))
        fail_msg("%s: want text containing \"%s\", got \"%s\"", path, part, got ? got : "(none)");
}

/* The one error shape, with its code. */
static void want_error(const struct resp *r, long status, const char *code)
{
    want_status(r, status);
    want_str(r, "error.code", code);
    if (!json_string_value(jp(r->json, "error.message")) ||
        !*json_string_value(jp(r->json, "error.message")))
        fail_msg("error without a message: %s", r->body);
    if (!json_string_value(jp(r->json, "error.remedy")) ||
        !*json_string_value(jp(r->json, "error.remedy")))
        fail_msg("error without a remedy: %s", r->body);
}

static int64_t jobs(struct fx *f)
{
    int64_t n = -1;
    struct th_err err;
    must(store_job_count(f->store, &n, &err), &err);
    return n;
}

/* ---------------------------------------------------------------------- */
/* Fixture                                                                  */

static int64_t add_conn(struct fx *f, int64_t store_id, const char *name)
{
    struct store_conn c = {.platform = MODEL_PLATFORM_SALLA,
                           .store_id = store_id,
                           .trigger = MODEL_STATUS_NEW,
                           .customer_per_invoice = 1,
                           .number_by_order = 1,
                           .financial_invoice = 0,
                           .inventory_id = 3,
                           .payment_account_id = 9,
                           .connected_at = 1767225600, /* 2026-01-01 */
                           .token_expires_at = 1893456000};
    c.name = xstrdup(name);
    c.access_token = xstrdup(SECRETS[0]);
    c.refresh_token = xstrdup(SECRETS[1]);
    c.webhook_secret = xstrdup(SECRETS[2]);
    c.webhook_strategy = xstrdup("signature");
    c.qoyod_api_key = xstrdup(SECRETS[3]);
    c.qoyod_base = xstrdup("http://127.0.0.1:1/2.0");
    c.api_base = xstrdup("http://127.0.0.1:1/admin/v2");
    c.status = xstrdup("active");
    struct th_err err;
    must(store_conn_put(f->store, &c, &err), &err);
    int64_t id = c.id;
    store_conn_release(&c);
    return id;
}

static void add_order(struct fx *f, int64_t conn, int64_t id, enum store_xfer x, int64_t created,
                      int64_t total)
{
    struct store_order o = {.conn_id = conn,
                            .order_id = id,
                            .status = MODEL_STATUS_NEW,
                            .xfer = x,
                            .total = total,
                            .created_at = created,
                            .updated_at = created};
    o.number = xasprintf("N%lld", (long long)id);
    if (x == STORE_XFER_FAILED) {
        o.reason_code = TH_EPERM;
        o.reason = xstrdup("item \"Shirt\" has no SKU in Salla");
        o.attempts = 2;
    }
    if (x == STORE_XFER_TRANSFERRED) {
        o.qoyod_invoice_id = 77;
        o.qoyod_reference = xasprintf("N%lld", (long long)id);
        o.qoyod_payment_id = 88;
        o.qoyod_total = total;
        o.transferred_at = created + 60;
        o.attempts = 1;
    }
    struct th_err err;
    must(store_order_put(f->store, &o, &err), &err);
    store_order_release(&o);
}

/* Days after 2026-01-01, in unix seconds. */
#define DAY(n) (1767225600 + (int64_t)(n)*86400)

static void start_server(struct fx *f, struct api *api)
{
    struct server_config sc = {
        .listen = "127.0.0.1:0", .store = f->store, .api = api, .threads = 4};
    struct th_err err;
    must(server_open(&f->srv, &sc, &err), &err);
    snprintf(f->base, sizeof f->base, "http://127.0.0.1:%u", server_port(f->srv));
}

static char *write_file(struct fx *f, const char *name, const char *text)
{
    char *path = xasprintf("%s/%s", f->dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    return path;
}

static int setup(void **state)
{
    struct fx *f = xcalloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/th_apiXXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char *db = xasprintf("sqlite:%s/a.db", f->dir);
    struct th_err err;
    must(store_open(&f->store, db, &err), &err);
    free(db);
    f->c1 = add_conn(f, 100, "Shop One");
    f->c2 = add_conn(f, 200, "Shop Two");
    /* conn 1: five orders over five days; conn 2: two */
    add_order(f, f->c1, 5001, STORE_XFER_TRANSFERRED, DAY(1), 11500);
    add_order(f, f->c1, 5002, STORE_XFER_FAILED, DAY(2), 2999);
    add_order(f, f->c1, 5003, STORE_XFER_NOT_TRANSFERRED, DAY(3), 100);
    add_order(f, f->c1, 5004, STORE_XFER_FAILED, DAY(4), 5);
    add_order(f, f->c1, 5005, STORE_XFER_SKIPPED, DAY(5), 0);
    add_order(f, f->c2, 6001, STORE_XFER_FAILED, DAY(2), 4000);
    add_order(f, f->c2, 6002, STORE_XFER_TRANSFERRING, DAY(6), 123456789);
    must(store_order_note(f->store, f->c1, 5001, "transferring", "attempt 1", &err), &err);
    must(store_order_note(f->store, f->c1, 5001, "transferred", NULL, &err), &err);
    char *tokens = write_file(f, "tokens", "# dashboard\n\n  " TOKEN "  \r\n");
    struct api_config ac = {.store = f->store, .token_file = tokens, .token = TOKEN2};
    must(api_open(&f->api, &ac, &err), &err);
    free(tokens);
    assert_int_equal(api_token_count(f->api), 2);
    start_server(f, f->api);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    server_close(f->srv);
    api_close(f->api);
    store_close(f->store);
    char *cmd = xasprintf("rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(f);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Auth                                                                     */

static void test_no_token_configured(void **state)
{
    struct fx *f = *state;
    server_close(f->srv);
    api_close(f->api);
    /* no file, empty environment value: the API is off */
    struct api_config ac = {.store = f->store, .token = ""};
    struct th_err err;
    must(api_open(&f->api, &ac, &err), &err);
    assert_int_equal(api_token_count(f->api), 0);
    start_server(f, f->api);
    struct resp r;
    call(f, "GET", "/api/v1/connections", NULL, &r);
    want_error(&r, 403, "TH_ECONFIG");
    want_contains(&r, "error.remedy", "--api-token-file");
    want_contains(&r, "error.remedy", "TARHEEL_API_TOKEN");
    resp_release(&r);
    /* a server given no api at all answers the same */
    server_close(f->srv);
    start_server(f, NULL);
    call_auth(f, "POST", "/api/v1/orders/retry", NULL, "{}", &r);
    want_error(&r, 403, "TH_ECONFIG");
    resp_release(&r);
    assert_int_equal(jobs(f), 0);
    /* webhooks and health are not behind the API's token */
    call_auth(f, "GET", "/healthz", NULL, NULL, &r);
    want_status(&r, 200);
    resp_release(&r);
}

static void test_auth(void **state)
{
    struct fx *f = *state;
    struct resp r;
    call_auth(f, "GET", "/api/v1/connections", NULL, NULL, &r);
    want_error(&r, 401, "TH_EAUTH");
    assert_string_equal(r.www_auth, "Bearer realm=\"tarheel\"");
    resp_release(&r);

    const char *bad[] = {"Bearer wrong-token-0123456789abcdef",
                         "Bearer " TOKEN "x",
                         "Bearer test-token-0123456789abcde",
                         "Basic " TOKEN,
                         "Bearer",
                         TOKEN,
                         "Bearer  "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        call_auth(f, "GET", "/api/v1/connections", bad[i], NULL, &r);
        if (r.status != 401) fail_msg("Authorization: %s: want 401, got %ld", bad[i], r.status);
        want_str(&r, "error.code", "TH_EAUTH");
        if (strncmp(r.www_auth, "Bearer realm=\"tarheel\"", 22) != 0)
            fail_msg("Authorization: %s: WWW-Authenticate is \"%s\"", bad[i], r.www_auth);
        resp_release(&r);
    }
    call_auth(f, "GET", "/api/v1/connections", "Bearer wrong-token-0123456789abcdef", NULL, &r);
    assert_string_equal(r.www_auth, "Bearer realm=\"tarheel\", error=\"invalid_token\"");
    resp_release(&r);

    /* unknown routes are not revealed before the token is checked */
    call_auth(f, "GET", "/api/v1/nothing-here", NULL, NULL, &r);
    want_status(&r, 401);
    resp_release(&r);
    /* a write with a wrong token does nothing */
    call_auth(f, "POST", "/api/v1/orders/retry", "Bearer wrong-token-0123456789abcdef", "{}", &r);
    want_status(&r, 401);
    resp_release(&r);
    assert_int_equal(jobs(f), 0);

    /* both configured tokens work; the scheme is case-insensitive */
    const char *good[] = {"Bearer " TOKEN, "Bearer " TOKEN2, "bearer " TOKEN};
    for (size_t i = 0; i < 3; i++) {
        call_auth(f, "GET", "/api/v1/connections", good[i], NULL, &r);
        if (r.status != 200) fail_msg("Authorization: %s: want 200, got %ld", good[i], r.status);
        resp_release(&r);
    }
}

static void test_token_config_errors(void **state)
{
    struct fx *f = *state;
    struct api *a = NULL;
    struct th_err err;
    struct {
        const char *file_text; /* NULL: no file */
        const char *env;
        int want;
        const char *in_msg;
    } cases[] = {
        {"short\n", NULL, TH_ECONFIG, "line 1"},
        {"# ok\n" TOKEN "\nhas space in it 0123456789\n", NULL, TH_ECONFIG, "line 3"},
        {NULL, "0123456789abcde", TH_ECONFIG, "TARHEEL_API_TOKEN"}, /* 15: one short */
        {NULL, "0123456789abcdef", 0, NULL},                        /* 16: the minimum */
        {"abc=def0123456789abc\n", NULL, TH_ECONFIG, "line 1"},     /* '=' only at the end */
        {"abcdef0123456789abc==\n", NULL, 0, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *path = cases[i].file_text ? write_file(f, "t", cases[i].file_text) : NULL;
        struct api_config ac = {.store = f->store, .token_file = path, .token = cases[i].env};
        memset(&err, 0, sizeof err);
        int rc = api_open(&a, &ac, &err);
        if (rc != cases[i].want)
            fail_msg("case %zu: want %d got %d (%s)", i, cases[i].want, rc, err.msg);
        if (cases[i].in_msg && !strstr(err.msg, cases[i].in_msg))
            fail_msg("case %zu: message \"%s\" does not name %s", i, err.msg, cases[i].in_msg);
        if (rc == 0)
            api_close(a);
        else
            assert_null(a);
        free(path);
    }
    /* too many tokens */
    struct buf b;
    buf_init(&b, 0);
    for (int i = 0; i <= API_MAX_TOKENS; i++)
        assert_int_equal(buf_printf(&b, "token-number-%04d-abcdef\n", i), 0);
    char *path = write_file(f, "many", buf_cstr(&b));
    buf_release(&b);
    struct api_config ac = {.store = f->store, .token_file = path};
    assert_int_equal(api_open(&a, &ac, &err), TH_ELIMIT);
    free(path);
    /* a missing file names the file */
    char *missing = xasprintf("%s/none", f->dir);
    ac.token_file = missing;
    assert_int_equal(api_open(&a, &ac, &err), TH_EIO);
    assert_non_null(strstr(err.msg, missing));
    free(missing);
}

/* ---------------------------------------------------------------------- */
/* Routes and shape                                                         */

static void test_routes(void **state)
{
    struct fx *f = *state;
    struct resp r;
    struct {
        const char *method, *path;
        long status;
        const char *allow;
    } cases[] = {
        {"GET", "/api/v1/nothing", 404, ""},
        {"GET", "/api/v2/connections", 404, ""},
        {"GET", "/api/v1/", 404, ""},
        {"GET", "/api/v1/connections/", 404, ""},
        {"GET", "/api/v1/orders/1", 404, ""},
        {"GET", "/api/v1/orders/1/5001/extra", 404, ""},
        {"DELETE", "/api/v1/connections", 405, "GET"},
        {"POST", "/api/v1/connections/1", 405, "GET"},
        {"PUT", "/api/v1/connections/1/settings", 405, "GET, PATCH"},
        {"GET", "/api/v1/orders/transfer", 405, "POST"},
        {"GET", "/api/v1/orders/retry", 405, "POST"},
        {"POST", "/api/v1/orders", 405, "GET"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        call(f, cases[i].method, cases[i].path, NULL, &r);
        if (r.status != cases[i].status)
            fail_msg("%s %s: want %ld got %ld", cases[i].method, cases[i].path, cases[i].status,
                     r.status);
        want_error(&r, cases[i].status, cases[i].status == 404 ? "TH_ENOTFOUND" : "TH_EINVAL");
        if (strcmp(r.allow, cases[i].allow) != 0)
            fail_msg("%s %s: Allow \"%s\", want \"%s\"", cases[i].method, cases[i].path, r.allow,
                     cases[i].allow);
        resp_release(&r);
    }
}

static void test_connections(void **state)
{
    struct fx *f = *state;
    struct resp r;
    call(f, "GET", "/api/v1/connections", NULL, &r);
    want_status(&r, 200);
    assert_int_equal(json_array_size(jp(r.json, "connections")), 2);
    want_int(&r, "connections.0.id", f->c1);
    want_str(&r, "connections.0.platform", "salla");
    want_int(&r, "connections.0.store_id", 100);
    want_str(&r, "connections.0.name", "Shop One");
    want_str(&r, "connections.0.state", "active");
    want_str(&r, "connections.0.connected_at", "2026-01-01T00:00:00Z");
    want_int(&r, "connections.0.settings.inventory_id", 3);
    want_str(&r, "connections.0.settings.trigger", "new");
    want_bool(&r, "connections.0.settings.financial_invoice", 0);
    want_bool(&r, "connections.0.credentials.access_token", 1);
    want_bool(&r, "connections.0.credentials.qoyod_api_key", 1);
    want_str(&r, "connections.0.credentials.token_expires_at", "2030-01-01T00:00:00Z");
    want_int(&r, "connections.1.store_id", 200);
    resp_release(&r);

    /* one, by id or by platform:store_id */
    call(f, "GET", "/api/v1/connections/salla:200", NULL, &r);
    want_status(&r, 200);
    want_int(&r, "id", f->c2);
    want_str(&r, "name", "Shop Two");
    resp_release(&r);
    call(f, "GET", "/api/v1/connections/99", NULL, &r);
    want_error(&r, 404, "TH_ENOTFOUND");
    resp_release(&r);
    call(f, "GET", "/api/v1/connections/salla:999", NULL, &r);
    want_error(&r, 404, "TH_ENOTFOUND");
    resp_release(&r);
    call(f, "GET", "/api/v1/connections/shopify:1", NULL, &r);
    want_error(&r, 400, "TH_EINVAL");
    want_contains(&r, "error.message", "no platform \"shopify\"");
    resp_release(&r);
    const char *bad[] = {"abc", "0", "-1", "salla:", "salla:x", "salla:0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char path[128];
        snprintf(path, sizeof path, "/api/v1/connections/%s", bad[i]);
        call(f, "GET", path, NULL, &r);
        want_error(&r, 400, "TH_EINVAL");
        want_contains(&r, "error.message", "platform:store_id");
        resp_release(&r);
    }
}

/* ---------------------------------------------------------------------- */
/* Orders                                                                   */

static void want_order_ids(struct fx *f, const char *query, const int64_t *ids, size_t n, int more)
{
    struct resp r;
    char path[512];
    snprintf(path, sizeof path, "/api/v1/orders%s", query);
    call(f, "GET", path, NULL, &r);
    want_status(&r, 200);
    json_t *a = jp(r.json, "orders");
    if (json_array_size(a) != n) fail_msg("%s: want %zu orders: %s", path, n, r.body);
    for (size_t i = 0; i < n; i++)
        if (json_integer_value(json_object_get(json_array_get(a, i), "order_id")) != ids[i])
            fail_msg("%s: order %zu should be %lld: %s", path, i, (long long)ids[i], r.body);
    if (more != json_is_string(jp(r.json, "next_cursor")))
        fail_msg("%s: next_cursor should be %s: %s", path, more ? "set" : "null", r.body);
    resp_release(&r);
}

static void test_orders_list(void **state)
{
    struct fx *f = *state;
    struct resp r;
    call(f, "GET", "/api/v1/orders", NULL, &r);
    want_status(&r, 200);
    assert_int_equal(json_array_size(jp(r.json, "orders")), 7);
    want_null(&r, "next_cursor");
    /* sorted by creation time: 5001 (day 1) first */
    want_int(&r, "orders.0.order_id", 5001);
    want_int(&r, "orders.0.connection", f->c1);
    want_str(&r, "orders.0.state", "transferred");
    want_str(&r, "orders.0.number", "N5001");
    want_int(&r, "orders.0.total.halalas", 11500);
    want_str(&r, "orders.0.total.decimal", "115.00");
    want_int(&r, "orders.0.qoyod.invoice_id", 77);
    want_str(&r, "orders.0.qoyod.invoice_reference", "N5001");
    want_int(&r, "orders.0.qoyod.payment_id", 88);
    want_int(&r, "orders.0.qoyod.total.halalas", 11500);
    want_str(&r, "orders.0.created_at", "2026-01-02T00:00:00Z");
    want_str(&r, "orders.0.transferred_at", "2026-01-02T00:01:00Z");
    want_null(&r, "orders.0.reason");
    resp_release(&r);

    int64_t all1[] = {5001, 5002, 5003, 5004, 5005};
    want_order_ids(f, "?connection=1", all1, 5, 0);
    want_order_ids(f, "?connection=salla:100", all1, 5, 0);
    int64_t failed[] = {5002, 6001, 5004};
    want_order_ids(f, "?state=failed", failed, 3, 0);
    int64_t failed2[] = {6001};
    want_order_ids(f, "?state=failed&connection=2", failed2, 1, 0);
    int64_t nt[] = {5003};
    want_order_ids(f, "?state=not_transferred", nt, 1, 0);
    int64_t tr[] = {6002};
    want_order_ids(f, "?state=transferring", tr, 1, 0);
    int64_t sk[] = {5005};
    want_order_ids(f, "?state=skipped", sk, 1, 0);
    /* from inclusive, to exclusive: days 2 and 3 */
    int64_t d23[] = {5002, 6001, 5003};
    want_order_ids(f, "?from=2026-01-03&to=2026-01-05", d23, 3, 0);
    want_order_ids(f, "?from=2026-01-03T00:00:00Z&to=2026-01-04T23:59:59Z", d23, 3, 0);
    char q[128];
    snprintf(q, sizeof q, "?from=%lld&to=%lld", (long long)DAY(2), (long long)DAY(4));
    want_order_ids(f, q, d23, 3, 0);
    want_order_ids(f, "?from=2026-02-01", NULL, 0, 0);

    /* failed orders carry their reason, with code and remedy */
    call(f, "GET", "/api/v1/orders?state=failed&connection=1&limit=1", NULL, &r);
    want_status(&r, 200);
    want_int(&r, "orders.0.order_id", 5002);
    want_str(&r, "orders.0.reason.code", "TH_EPERM");
    want_str(&r, "orders.0.reason.message", "item \"Shirt\" has no SKU in Salla");
    want_contains(&r, "orders.0.reason.remedy", "retry");
    want_int(&r, "orders.0.attempts", 2);
    want_int(&r, "orders.0.total.halalas", 2999);
    want_str(&r, "orders.0.total.decimal", "29.99");
    want_null(&r, "orders.0.qoyod");
    resp_release(&r);
}

static void test_orders_pages(void **state)
{
    struct fx *f = *state;
    /* walk every page of 2: each order exactly once, in order */
    int64_t want[] = {5001, 5002, 6001, 5003, 5004, 5005, 6002};
    size_t seen = 0;
    char cursor[256] = "";
    int pages = 0;
    while (1) {
        char path[512];
        snprintf(path, sizeof path, "/api/v1/orders?limit=2%s%s", cursor[0] ? "&cursor=" : "",
                 cursor);
        struct resp r;
        call(f, "GET", path, NULL, &r);
        want_status(&r, 200);
        json_t *a = jp(r.json, "orders");
        assert_true(json_array_size(a) <= 2);
        for (size_t i = 0; i < json_array_size(a); i++, seen++) {
            assert_true(seen < 7);
            assert_int_equal(json_integer_value(json_object_get(json_array_get(a, i), "order_id")),
                             want[seen]);
        }
        pages++;
        const char *next = json_string_value(jp(r.json, "next_cursor"));
        if (!next) {
            resp_release(&r);
            break;
        }
        snprintf(cursor, sizeof cursor, "%s", next);
        resp_release(&r);
        assert_true(pages < 10);
    }
    assert_int_equal(seen, 7);
    assert_int_equal(pages, 4);
    /* exactly a page's worth: no next page */
    int64_t all1[] = {5001, 5002, 5003, 5004, 5005};
    want_order_ids(f, "?connection=1&limit=5", all1, 5, 0);
    int64_t first5[] = {5001, 5002, 6001, 5003, 5004};
    want_order_ids(f, "?limit=5", first5, 5, 1);
}

static void test_orders_bad_queries(void **state)
{
    struct fx *f = *state;
    struct {
        const char *query;
        long status;
        const char *code, *names;
    } cases[] = {
        {"?state=done", 400, "TH_EINVAL", "state must be not_transferred"},
        {"?state=", 400, "TH_EINVAL", "state"},
        {"?limit=0", 400, "TH_EINVAL", "limit must be"},
        {"?limit=501", 400, "TH_EINVAL", "limit must be"},
        {"?limit=ten", 400, "TH_EINVAL", "limit"},
        {"?from=yesterday", 400, "TH_EINVAL", "from must be"},
        {"?to=2026-02-30", 400, "TH_EINVAL", "to must be"},
        {"?to=2026-01-01T25:00:00Z", 400, "TH_EINVAL", "to must be"},
        {"?to=2026-01-01T01:-1:00Z", 400, "TH_EINVAL", "to must be"},
        {"?from=2026-1-1", 400, "TH_EINVAL", "from must be"},
        {"?from=-5", 400, "TH_EINVAL", "from must be"},
        {"?cursor=zz", 400, "TH_EINVAL", "cursor"},
        {"?cursor=31", 400, "TH_EINVAL", "cursor"},
        {"?status=failed", 400, "TH_EINVAL", "status: unknown query parameter"},
        {"?connection=9", 404, "TH_ENOTFOUND", "connection"},
        {"?connection=x", 400, "TH_EINVAL", "connection must be"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, "/api/v1/orders%s", cases[i].query);
        struct resp r;
        call(f, "GET", path, NULL, &r);
        if (r.status != cases[i].status)
            fail_msg("%s: want %ld got %ld: %s", path, cases[i].status, r.status, r.body);
        want_error(&r, cases[i].status, cases[i].code);
        want_contains(&r, "error.message", cases[i].names);
        resp_release(&r);
    }
    /* the limit's edge: 500 is fine */
    struct resp r;
    call(f, "GET", "/api/v1/orders?limit=500", NULL, &r);
    want_status(&r, 200);
    resp_release(&r);
}

static void test_order_detail(void **state)
{
    struct fx *f = *state;
    struct resp r;
    call(f, "GET", "/api/v1/orders/1/5001", NULL, &r);
    want_status(&r, 200);
    want_int(&r, "order_id", 5001);
    want_int(&r, "connection", f->c1);
    want_str(&r, "state", "transferred");
    want_str(&r, "status", "new");
    want_int(&r, "qoyod.invoice_id", 77);
    want_str(&r, "qoyod.invoice_reference", "N5001");
    want_str(&r, "total.decimal", "115.00");
    assert_int_equal(json_array_size(jp(r.json, "history")), 2);
    want_str(&r, "history.0.what", "transferring");
    want_str(&r, "history.0.detail", "attempt 1");
    want_str(&r, "history.1.what", "transferred");
    want_str(&r, "history.1.detail", "");
    const char *at = json_string_value(jp(r.json, "history.0.at"));
    assert_non_null(at);
    assert_int_equal(strlen(at), strlen("2026-01-01T00:00:00.000Z"));
    resp_release(&r);

    call(f, "GET", "/api/v1/orders/salla:200/6002", NULL, &r);
    want_status(&r, 200);
    want_str(&r, "state", "transferring");
    want_int(&r, "total.halalas", 123456789);
    want_str(&r, "total.decimal", "1234567.89");
    assert_int_equal(json_array_size(jp(r.json, "history")), 0);
    resp_release(&r);

    call(f, "GET", "/api/v1/orders/1/6001", NULL, &r); /* an order of the other connection */
    want_error(&r, 404, "TH_ENOTFOUND");
    resp_release(&r);
    call(f, "GET", "/api/v1/orders/9/5001", NULL, &r);
    want_error(&r, 404, "TH_ENOTFOUND");
    resp_release(&r);
    call(f, "GET", "/api/v1/orders/1/abc", NULL, &r);
    want_error(&r, 400, "TH_EINVAL");
    want_contains(&r, "error.message", "order_id");
    resp_release(&r);
    call(f, "GET", "/api/v1/orders/1/-5", NULL, &r);
    want_error(&r, 400, "TH_EINVAL");
    resp_release(&r);
}

/* ---------------------------------------------------------------------- */
/* Transfer and retry                                                       */

static int history_has(struct fx *f, int64_t conn, int64_t order, const char *what)
{
    struct resp r;
    char path[128];
    snprintf(path, sizeof path, "/api/v1/orders/%lld/%lld", (long long)conn, (long long)order);
    call(f, "GET", path, NULL, &r);
    int n = 0;
    size_t i;
    json_t *e;
    json_array_foreach(jp(r.json, "history"), i, e)
    {
        const char *w = json_string_value(json_object_get(e, "what"));
        n += w && strcmp(w, what) == 0;
    }
    resp_release(&r);
    return n;
}

static void test_transfer(void **state)
{
    struct fx *f = *state;
    struct resp r;
    assert_int_equal(jobs(f), 0);
    call(f, "POST", "/api/v1/orders/transfer",
         "{\"connection\":1,\"orders\":[5002,\"5003\",9999999999]}", &r);
    want_status(&r, 202);
    want_int(&r, "connection", f->c1);
    want_int(&r, "count", 3);
    want_int(&r, "queued.0", 5002);
    want_int(&r, "queued.1", 5003);
    want_int(&r, "queued.2", 9999999999LL);
    resp_release(&r);
    assert_int_equal(jobs(f), 3);
    assert_int_equal(history_has(f, f->c1, 5002, "queued by hand"), 1);
    /* the same orders again: still one job per order */
    call(f, "POST", "/api/v1/orders/transfer", "{\"connection\":\"salla:100\",\"orders\":[5002]}",
         &r);
    want_status(&r, 202);
    resp_release(&r);
    assert_int_equal(jobs(f), 3);
    assert_int_equal(history_has(f, f->c1, 5002, "queued by hand"), 2);

    /* nothing is queued for a request that is wrong anywhere */
    struct {
        const char *body;
        long status;
        const char *code, *names;
    } cases[] = {
        {"{\"connection\":1,\"orders\":[6001,", 400, "TH_EPARSE", "malformed JSON"},
        {"", 400, "TH_EPARSE", "JSON body"},
        {"[1,2]", 400, "TH_EPARSE", "object"},
        {"{\"connection\":1}", 400, "TH_EINVAL", "orders must be"},
        {"{\"connection\":1,\"orders\":[]}", 400, "TH_EINVAL", "orders must be"},
        {"{\"connection\":1,\"orders\":5002}", 400, "TH_EINVAL", "orders must be"},
        {"{\"connection\":1,\"orders\":[6001,\"x\"]}", 400, "TH_EINVAL", "orders[1]"},
        {"{\"connection\":1,\"orders\":[6001,0]}", 400, "TH_EINVAL", "orders[1]"},
        {"{\"connection\":1,\"orders\":[6001,1.5]}", 400, "TH_EINVAL", "orders[1]"},
        {"{\"orders\":[6001]}", 400, "TH_EINVAL", "connection"},
        {"{\"connection\":true,\"orders\":[6001]}", 400, "TH_EINVAL", "connection"},
        {"{\"connection\":42,\"orders\":[6001]}", 404, "TH_ENOTFOUND", "connection"},
        {"{\"connection\":1,\"orders\":[6001],\"force\":true}", 400, "TH_EINVAL", "force"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        call(f, "POST", "/api/v1/orders/transfer", cases[i].body, &r);
        if (r.status != cases[i].status)
            fail_msg("%s: want %ld got %ld: %s", cases[i].body, cases[i].status, r.status, r.body);
        want_error(&r, cases[i].status, cases[i].code);
        want_contains(&r, "error.message", cases[i].names);
        resp_release(&r);
    }
    assert_int_equal(jobs(f), 3);

    /* the limit: MANAGE_MAX_ORDERS is fine, one more is refused */
    for (int extra = 0; extra <= 1; extra++) {
        struct buf b;
        buf_init(&b, 0);
        assert_int_equal(buf_puts(&b, "{\"connection\":2,\"orders\":["), 0);
        for (int i = 0; i < MANAGE_MAX_ORDERS + extra; i++)
            assert_int_equal(buf_printf(&b, "%s%d", i ? "," : "", 700000 + i), 0);
        assert_int_equal(buf_puts(&b, "]}"), 0);
        call(f, "POST", "/api/v1/orders/transfer", buf_cstr(&b), &r);
        buf_release(&b);
        if (extra) {
            want_error(&r, 400, "TH_ELIMIT");
        } else {
            want_status(&r, 202);
            want_int(&r, "count", MANAGE_MAX_ORDERS);
        }
        resp_release(&r);
    }
    assert_int_equal(jobs(f), 3 + MANAGE_MAX_ORDERS);
}

/* ---------------------------------------------------------------------- */
/* Pulls and range transfers                                                */

/* POST /orders/transfer with a date range: the waiting orders created in it
 * (Riyadh days), counted by dry_run, queued otherwise; refusals. */
static void test_transfer_range(void **state)
{
    struct fx *f = *state;
    struct resp r;
    /* 5002 (failed) 01-03, 5003 (not transferred) 01-04, 5004 (failed)
     * 01-05 in Riyadh; 5001 transferred and 5005 skipped are never sent */
    call(f, "POST", "/api/v1/orders/transfer",
         "{\"connection\":1,\"from\":\"2026-01-01\",\"to\":\"2026-01-31\",\"dry_run\":true}", &r);
    want_status(&r, 200);
    want_int(&r, "count", 3);
    want_int(&r, "orders.0", 5002);
    want_int(&r, "orders.2", 5004);
    want_int(&r, "left_out", 0);
    want_str(&r, "from", "2026-01-01");
    want_str(&r, "to", "2026-01-31");
    resp_release(&r);
    assert_int_equal(jobs(f), 0);
    call(f, "POST", "/api/v1/orders/transfer",
         "{\"connection\":\"salla:100\",\"from\":\"2026-01-04\",\"to\":\"2026-01-04\"}", &r);
    want_status(&r, 202);
    want_int(&r, "connection", f->c1);
    want_int(&r, "count", 1);
    want_int(&r, "queued.0", 5003);
    resp_release(&r);
    assert_int_equal(jobs(f), 1);
    assert_int_equal(history_has(f, f->c1, 5003, "queued by hand"), 1);
    call(f, "POST", "/api/v1/orders/transfer",
         "{\"connection\":1,\"from\":\"2026-01-01\",\"to\":\"2026-01-31\"}", &r);
    want_status(&r, 202);
    want_int(&r, "count", 3);
    resp_release(&r);
    assert_int_equal(jobs(f), 3);
    call(f, "POST", "/api/v1/orders/transfer",
         "{\"connection\":1,\"from\":\"2025-01-01\",\"to\":\"2025-12-31\"}", &r);
    want_status(&r, 202);
    want_int(&r, "count", 0);
    resp_release(&r);

    struct {
        const char *body;
        long status;
        const char *code, *names;
    } cases[] = {
        {"{\"connection\":1,\"from\":\"2026-01-01\"}", 400, "TH_EINVAL", "to"},
        {"{\"connection\":1,\"to\":\"2026-01-01\"}", 400, "TH_EINVAL", "from"},
        {"{\"connection\":1,\"from\":\"2026-01-05\",\"to\":\"2026-01-01\"}", 400, "TH_EINVAL",
         "after"},
        {"{\"connection\":1,\"from\":\"2026-02-30\",\"to\":\"2026-03-01\"}", 400, "TH_EINVAL",
         "2026-02-30"},
        {"{\"connection\":1,\"from\":20260101,\"to\":\"2026-03-01\"}", 400, "TH_EINVAL", "string"},
        {"{\"connection\":1,\"from\":\"2026-01-01\",\"to\":\"2026-01-31\",\"orders\":[5002]}", 400,
         "TH_EINVAL", "not both"},
        {"{\"connection\":1,\"from\":\"2026-01-01\",\"to\":\"2026-01-31\",\"dry_run\":1}", 400,
         "TH_EINVAL", "dry_run"},
        {"{\"connection\":1,\"from\":\"2026-01-01\",\"to\":\"2026-01-31\",\"all\":true}", 400,
         "TH_EINVAL", "all"},
        {"{\"connection\":42,\"from\":\"2026-01-01\",\"to\":\"2026-01-31\"}", 404, "TH_ENOTFOUND",
         "connection"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        call(f, "POST", "/api/v1/orders/transfer", cases[i].body, &r);
        if (r.status != cases[i].status)
            fail_msg("%s: want %ld got %ld: %s", cases[i].body, cases[i].status, r.status, r.body);
        want_error(&r, cases[i].status, cases[i].code);
        want_contains(&r, "error.message", cases[i].names);
        resp_release(&r);
    }
    assert_int_equal(jobs(f), 3);
}

/* POST /pulls against the Salla emulator: 202 with an id, progress until
 * done with the exact count, nothing queued; the range's orders can then be
 * counted and queued; refusals. */
static void test_pulls(void **state)
{
    struct fx *f = *state;
    struct sim *shop =
        tt_sim_start(&salla_sim_ops, (const char *[]){"rate-limit-plan", "off", NULL});
    struct tt_resp tr;
    tt_http("POST", tt_url(shop, "/_sim/salla/install"), NULL, "{\"store_id\":300}", &tr);
    assert_int_equal(tr.status, 200);
    struct store_conn c = {.platform = MODEL_PLATFORM_SALLA,
                           .store_id = 300,
                           .trigger = MODEL_STATUS_NEW,
                           .inventory_id = 1};
    c.access_token = xstrdup(json_string_value(json_object_get(tr.json, "access_token")));
    tt_resp_release(&tr);
    c.api_base = xasprintf("%s/admin/v2", sim_base_url(shop));
    c.webhook_secret = xstrdup(SECRETS[2]);
    c.status = xstrdup("active");
    struct th_err err;
    must(store_conn_put(f->store, &c, &err), &err);
    int64_t c3 = c.id;
    store_conn_release(&c);
    tt_http("POST", tt_url(shop, "/_sim/salla/generate"), NULL,
            "{\"store_id\":300,\"count\":70,\"from\":\"2023-11-01\",\"to\":\"2023-11-10\"}", &tr);
    assert_int_equal(tr.status, 201);
    tt_resp_release(&tr);
    tt_http("POST", tt_url(shop, "/_sim/salla/generate"), NULL,
            "{\"store_id\":300,\"count\":9,\"from\":\"2023-11-11\",\"to\":\"2023-11-20\"}", &tr);
    assert_int_equal(tr.status, 201);
    tt_resp_release(&tr);

    struct resp r;
    char body[160], path[64];
    snprintf(body, sizeof body,
             "{\"connection\":%lld,\"from\":\"2023-11-01\",\"to\":\"2023-11-10\"}", (long long)c3);
    call(f, "POST", "/api/v1/pulls", body, &r);
    want_status(&r, 202);
    int64_t id = json_integer_value(jp(r.json, "id"));
    assert_true(id > 0);
    want_int(&r, "connection", c3);
    want_str(&r, "from", "2023-11-01");
    want_str(&r, "to", "2023-11-10");
    resp_release(&r);
    snprintf(path, sizeof path, "/api/v1/pulls/%lld", (long long)id);
    const char *state_name = "running";
    for (int i = 0; i < 500 && !strcmp(state_name, "running"); i++) {
        if (i) tt_sleep_ms(20);
        resp_release(&r);
        call(f, "GET", path, NULL, &r);
        want_status(&r, 200);
        state_name = json_string_value(jp(r.json, "state"));
        assert_non_null(state_name);
    }
    want_str(&r, "state", "done");
    want_str(&r, "phase", "done");
    want_int(&r, "pulled", 70);
    want_int(&r, "total", 70);
    want_int(&r, "added", 70);
    want_int(&r, "known", 0);
    want_null(&r, "error");
    want_bool(&r, "finished_before", 0);
    resp_release(&r);
    assert_int_equal(jobs(f), 0);

    /* the same range again: a new pull that is done at once, saying so */
    call(f, "POST", "/api/v1/pulls", body, &r);
    want_status(&r, 202);
    int64_t id2 = json_integer_value(jp(r.json, "id"));
    assert_true(id2 > id);
    resp_release(&r);
    snprintf(path, sizeof path, "/api/v1/pulls/%lld", (long long)id2);
    state_name = "running";
    for (int i = 0; i < 500 && !strcmp(state_name, "running"); i++) {
        if (i) tt_sleep_ms(20);
        resp_release(&r);
        call(f, "GET", path, NULL, &r);
        state_name = json_string_value(jp(r.json, "state"));
    }
    want_str(&r, "state", "done");
    want_bool(&r, "finished_before", 1);
    want_int(&r, "total", 70);
    resp_release(&r);

    /* what the range transfer would send, then sending it */
    snprintf(body, sizeof body,
             "{\"connection\":%lld,\"from\":\"2023-11-01\",\"to\":\"2023-11-30\",\"dry_run\":true}",
             (long long)c3);
    call(f, "POST", "/api/v1/orders/transfer", body, &r);
    want_status(&r, 200);
    want_int(&r, "count", 70);
    resp_release(&r);
    snprintf(body, sizeof body,
             "{\"connection\":\"salla:300\",\"from\":\"2023-11-01\",\"to\":\"2023-11-10\"}");
    call(f, "POST", "/api/v1/orders/transfer", body, &r);
    want_status(&r, 202);
    want_int(&r, "count", 70);
    resp_release(&r);
    assert_int_equal(jobs(f), 70);

    struct {
        const char *method, *path, *body;
        long status;
        const char *code, *names;
    } cases[] = {
        {"POST", "/api/v1/pulls",
         "{\"connection\":3,\"from\":\"2023-11-10\",\"to\":\"2023-11-01\"}", 400, "TH_EINVAL",
         "after"},
        {"POST", "/api/v1/pulls", "{\"connection\":3,\"from\":\"2023-11-10\"}", 400, "TH_EINVAL",
         "to"},
        {"POST", "/api/v1/pulls",
         "{\"connection\":3,\"from\":\"2023-11-01\",\"to\":\"2023-11-10\",\"again\":\"yes\"}", 400,
         "TH_EINVAL", "again"},
        {"POST", "/api/v1/pulls",
         "{\"connection\":3,\"from\":\"2023-11-01\",\"to\":\"2023-11-10\",\"x\":1}", 400,
         "TH_EINVAL", "x"},
        {"POST", "/api/v1/pulls",
         "{\"connection\":42,\"from\":\"2023-11-01\",\"to\":\"2023-11-10\"}", 404, "TH_ENOTFOUND",
         "connection"},
        {"POST", "/api/v1/pulls", "", 400, "TH_EPARSE", "JSON body"},
        {"GET", "/api/v1/pulls/999", NULL, 404, "TH_ENOTFOUND", "999"},
        {"GET", "/api/v1/pulls/abc", NULL, 400, "TH_EINVAL", "abc"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        call(f, cases[i].method, cases[i].path, cases[i].body, &r);
        if (r.status != cases[i].status)
            fail_msg("%s %s %s: want %ld got %ld: %s", cases[i].method, cases[i].path,
                     cases[i].body ? cases[i].body : "", cases[i].status, r.status, r.body);
        want_error(&r, cases[i].status, cases[i].code);
        want_contains(&r, "error.message", cases[i].names);
        resp_release(&r);
    }
    tt_sim_stop(shop);
}

static void test_retry(void **state)
{
    struct fx *f = *state;
    struct resp r;
    call(f, "POST", "/api/v1/orders/retry", "{\"connection\":1}", &r);
    want_status(&r, 202);
    want_int(&r, "connection", f->c1);
    want_int(&r, "count", 2);
    want_int(&r, "queued.0.order_id", 5002);
    want_int(&r, "queued.1.order_id", 5004);
    want_int(&r, "queued.1.connection", f->c1);
    resp_release(&r);
    assert_int_equal(jobs(f), 2);
    assert_int_equal(history_has(f, f->c1, 5004, "queued by hand"), 1);
    assert_int_equal(history_has(f, f->c1, 5003, "queued by hand"), 0);

    /* no body: every connection's failed orders (6001 is new; 5002, 5004
     * already have their job) */
    call(f, "POST", "/api/v1/orders/retry", NULL, &r);
    want_status(&r, 202);
    want_null(&r, "connection");
    want_int(&r, "count", 3);
    resp_release(&r);
    assert_int_equal(jobs(f), 3);

    call(f, "POST", "/api/v1/orders/retry", "{\"connection\":\"salla:999\"}", &r);
    want_error(&r, 404, "TH_ENOTFOUND");
    resp_release(&r);
    call(f, "POST", "/api/v1/orders/retry", "{\"connection\":1,\"all\":true}", &r);
    want_error(&r, 400, "TH_EINVAL");
    want_contains(&r, "error.message", "all");
    resp_release(&r);
    call(f, "POST", "/api/v1/orders/retry", "{nope", &r);
    want_error(&r, 400, "TH_EPARSE");
    resp_release(&r);
    assert_int_equal(jobs(f), 3);
}

/* ---------------------------------------------------------------------- */
/* Settings                                                                 */

static void test_settings(void **state)
{
    struct fx *f = *state;
    struct resp r;
    call(f, "GET", "/api/v1/connections/1/settings", NULL, &r);
    want_status(&r, 200);
    want_str(&r, "trigger", "new");
    want_bool(&r, "customer_per_invoice", 1);
    want_bool(&r, "number_by_order", 1);
    want_bool(&r, "financial_invoice", 0);
    want_int(&r, "inventory_id", 3);
    want_int(&r, "payment_account_id", 9);
    want_str(&r, "reference_prefix", ""); /* the first store on its Qoyod account */
    resp_release(&r);
    /* Shop Two shares Shop One's Qoyod account: it was given a prefix, and
     * as one of its orders was sent, the prefix stays (409). */
    char path[64], want[16];
    snprintf(path, sizeof path, "/api/v1/connections/%lld/settings", (long long)f->c2);
    snprintf(want, sizeof want, "S%lld", (long long)f->c2);
    call(f, "GET", path, NULL, &r);
    want_str(&r, "reference_prefix", want);
    resp_release(&r);
    call(f, "PATCH", path, "{\"reference_prefix\":\"two\"}", &r);
    want_error(&r, 409, "TH_ECONFLICT");
    want_contains(&r, "error.message", "already sent to Qoyod");
    resp_release(&r);
    call(f, "PATCH", path, "{\"reference_prefix\":\"PAY\"}", &r);
    want_error(&r, 400, "TH_EINVAL");
    resp_release(&r);

    call(f, "PATCH", "/api/v1/connections/1/settings",
         "{\"trigger\":\"completed\",\"financial_invoice\":true,\"customer_per_invoice\":false,"
         "\"inventory_id\":12}",
         &r);
    want_status(&r, 200);
    want_str(&r, "trigger", "completed");
    want_bool(&r, "financial_invoice", 1);
    want_bool(&r, "customer_per_invoice", 0);
    want_bool(&r, "number_by_order", 1);
    want_int(&r, "inventory_id", 12);
    resp_release(&r);
    /* saved, and the secrets and other fields are untouched */
    struct store_conn c = {0};
    struct th_err err;
    must(store_conn_get(f->store, f->c1, &c, &err), &err);
    assert_int_equal(c.trigger, MODEL_STATUS_COMPLETED);
    assert_int_equal(c.financial_invoice, 1);
    assert_int_equal(c.customer_per_invoice, 0);
    assert_int_equal(c.inventory_id, 12);
    assert_string_equal(c.access_token, SECRETS[0]);
    assert_string_equal(c.qoyod_api_key, SECRETS[3]);
    assert_string_equal(c.name, "Shop One");
    store_conn_release(&c);

    /* every bad field is named, and nothing is saved */
    call(f, "PATCH", "/api/v1/connections/1/settings",
         "{\"trigger\":\"shipped\",\"number_by_order\":\"maybe\",\"inventory_id\":0,"
         "\"payment_account_id\":null,\"colour\":\"red\",\"financial_invoice\":false}",
         &r);
    want_error(&r, 400, "TH_EINVAL");
    assert_int_equal(json_array_size(jp(r.json, "error.fields")), 5);
    want_str(&r, "error.fields.0.field", "trigger");
    want_contains(&r, "error.fields.0.message", "new, ready, in_transit or completed");
    want_contains(&r, "error.message", "trigger must be");
    want_str(&r, "error.fields.1.field", "number_by_order");
    want_contains(&r, "error.fields.1.message", "on or off");
    want_str(&r, "error.fields.2.field", "inventory_id");
    want_contains(&r, "error.fields.2.message", "positive integer");
    want_str(&r, "error.fields.3.field", "payment_account_id");
    want_contains(&r, "error.fields.3.message", "null");
    want_str(&r, "error.fields.4.field", "colour");
    want_contains(&r, "error.fields.4.message", "not a setting");
    resp_release(&r);
    must(store_conn_get(f->store, f->c1, &c, &err), &err);
    assert_int_equal(c.trigger, MODEL_STATUS_COMPLETED);
    assert_int_equal(c.financial_invoice, 1); /* the valid field was not applied either */
    assert_int_equal(c.inventory_id, 12);
    store_conn_release(&c);

    /* the trigger takes only the four statuses */
    const char *bad_triggers[] = {"\"cancelled\"", "\"other\"", "1", "true"};
    for (size_t i = 0; i < 4; i++) {
        char body[64];
        snprintf(body, sizeof body, "{\"trigger\":%s}", bad_triggers[i]);
        call(f, "PATCH", "/api/v1/connections/2/settings", body, &r);
        if (r.status != 400) fail_msg("%s: want 400 got %ld", body, r.status);
        resp_release(&r);
    }
    call(f, "PATCH", "/api/v1/connections/salla:200/settings", "{\"trigger\":\"ready\"}", &r);
    want_status(&r, 200);
    want_str(&r, "trigger", "ready");
    resp_release(&r);

    call(f, "PATCH", "/api/v1/connections/1/settings", "{\"trigger\":", &r);
    want_error(&r, 400, "TH_EPARSE");
    resp_release(&r);
    call(f, "PATCH", "/api/v1/connections/1/settings", "\"ready\"", &r);
    want_error(&r, 400, "TH_EPARSE");
    resp_release(&r);
    call(f, "PATCH", "/api/v1/connections/7/settings", "{\"trigger\":\"ready\"}", &r);
    want_error(&r, 404, "TH_ENOTFOUND");
    resp_release(&r);
    call(f, "GET", "/api/v1/connections/7/settings", NULL, &r);
    want_error(&r, 404, "TH_ENOTFOUND");
    resp_release(&r);
}

/* ---------------------------------------------------------------------- */
/* docs/openapi.yaml                                                        */

/* Every operation docs/openapi.yaml documents is routed (not 404 "no such
 * endpoint", not 405), and it documents as many as the route table has. */
/* ---------------------------------------------------------------------- */
/* Reports                                                                  */

static void add_report_order(struct fx *f, int64_t conn, int64_t id, enum store_xfer x,
                             enum model_status st, int64_t created, int64_t total, int64_t tax)
{
    struct store_order o = {.conn_id = conn, .order_id = id, .status = st, .xfer = x,
                            .total = total, .tax = tax, .created_at = created};
    struct th_err err;
    must(store_order_put(f->store, &o, &err), &err);
}

/* GET /reports/monthly: exact figures per Riyadh month (UTC+3), the same
 * text as `tarheel report --json`, and every refusal. */
static void test_report_monthly(void **state)
{
    struct fx *f = *state;
    struct resp r;
    /* store 200 has 6001 (failed, 40.00) and 6002 (transferring,
     * 1234567.89) on Jan 3 and 7; add one on each side of the Jan/Feb
     * boundary in Riyadh (Jan 31 21:00 UTC) and a cancelled one in Feb */
    add_report_order(f, f->c2, 6003, STORE_XFER_TRANSFERRED, MODEL_STATUS_COMPLETED,
                     DAY(30) + 22 * 3600 + 1800, 34500, 4500); /* Jan 31 22:30 UTC: February */
    add_report_order(f, f->c2, 6004, STORE_XFER_SKIPPED, MODEL_STATUS_CANCELLED, DAY(40), 9999,
                     1304); /* no sale */
    add_report_order(f, f->c2, 6005, STORE_XFER_TRANSFERRED, MODEL_STATUS_COMPLETED,
                     DAY(30) + 20 * 3600 + 3599, 1150, 150); /* Jan 31 20:59:59 UTC: January */
    call(f, "GET", "/api/v1/reports/monthly?connection=salla:200", NULL, &r);
    want_status(&r, 200);
    want_int(&r, "connection.id", f->c2);
    want_str(&r, "connection.platform", "salla");
    want_int(&r, "connection.store_id", 200);
    want_str(&r, "connection.name", "Shop Two");
    want_str(&r, "timezone", "Asia/Riyadh");
    want_str(&r, "from", "2026-01");
    want_str(&r, "to", "2026-02");
    assert_int_equal(json_array_size(jp(r.json, "months")), 2);
    want_str(&r, "months.0.month", "2026-01");
    want_int(&r, "months.0.orders", 3);
    want_int(&r, "months.0.transferred", 1);
    want_int(&r, "months.0.failed", 1);
    want_int(&r, "months.0.skipped", 0);
    want_int(&r, "months.0.not_transferred", 1);
    want_int(&r, "months.0.sales.halalas", 123461939);
    want_str(&r, "months.0.sales.decimal", "1234619.39");
    want_int(&r, "months.0.vat.halalas", 150);
    want_str(&r, "months.0.vat.decimal", "1.50");
    want_int(&r, "months.0.credit_notes.count", 0);
    want_int(&r, "months.0.credit_notes.total.halalas", 0);
    want_str(&r, "months.1.month", "2026-02");
    want_int(&r, "months.1.orders", 2);
    want_int(&r, "months.1.transferred", 1);
    want_int(&r, "months.1.skipped", 1);
    want_int(&r, "months.1.not_transferred", 0);
    want_str(&r, "months.1.sales.decimal", "345.00");
    want_str(&r, "months.1.vat.decimal", "45.00");
    want_int(&r, "total.orders", 5);
    want_int(&r, "total.sales.halalas", 123496439);
    want_str(&r, "total.sales.decimal", "1234964.39");
    want_int(&r, "total.vat.halalas", 4650);
    want_int(&r, "undated_orders", 0);
    want_bool(&r, "credit_notes_tracked", 1);
    /* the very text the CLI's --json prints */
    struct report rep;
    struct th_err err;
    must(report_monthly(f->store, f->c2, REPORT_MONTH_NONE, REPORT_MONTH_NONE, &rep, &err), &err);
    char *text = report_json(&rep);
    report_release(&rep);
    if (strcmp(text, r.body) != 0) fail_msg("API:\n%s\nreport_json:\n%s", r.body, text);
    free(text);
    resp_release(&r);

    call(f, "GET", "/api/v1/reports/monthly?connection=2&from=2026-02", NULL, &r);
    want_status(&r, 200);
    assert_int_equal(json_array_size(jp(r.json, "months")), 1);
    want_str(&r, "from", "2026-02");
    want_str(&r, "to", "2026-02");
    want_int(&r, "total.orders", 2);
    resp_release(&r);
    /* store 100: five January orders, the skipped one no sale */
    call(f, "GET", "/api/v1/reports/monthly?connection=1&from=2025-12&to=2026-02", NULL, &r);
    want_status(&r, 200);
    assert_int_equal(json_array_size(jp(r.json, "months")), 3);
    want_str(&r, "months.0.month", "2025-12");
    want_int(&r, "months.0.orders", 0);
    want_int(&r, "months.1.orders", 5);
    want_int(&r, "months.1.transferred", 1);
    want_int(&r, "months.1.failed", 2);
    want_int(&r, "months.1.skipped", 1);
    want_int(&r, "months.1.not_transferred", 1);
    want_str(&r, "months.1.sales.decimal", "146.04");
    want_int(&r, "months.2.orders", 0);
    want_str(&r, "total.sales.decimal", "146.04");
    resp_release(&r);

    struct {
        const char *path;
        long status;
        const char *code, *msg;
    } bad[] = {
        {"", 400, "TH_EINVAL", "connection is required"},
        {"?connection=99", 404, "TH_ENOTFOUND", "no connection 99"},
        {"?connection=shopify:1", 400, "TH_EINVAL", "no platform"},
        {"?connection=1&from=2026-1", 400, "TH_EINVAL", "from must be a month as YYYY-MM"},
        {"?connection=1&to=2026-13", 400, "TH_EINVAL", "to must be a month as YYYY-MM"},
        {"?connection=1&from=2026-03&to=2026-01", 400, "TH_EINVAL", "is after to (2026-01)"},
        {"?connection=1&from=2000-01&to=2026-01", 400, "TH_ELIMIT", "at most 240"},
        {"?connection=1&month=2026-01", 400, "TH_EINVAL", "month: unknown query parameter"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char path[160];
        snprintf(path, sizeof path, "/api/v1/reports/monthly%s", bad[i].path);
        call(f, "GET", path, NULL, &r);
        want_error(&r, bad[i].status, bad[i].code);
        want_contains(&r, "error.message", bad[i].msg);
        resp_release(&r);
    }
    call(f, "POST", "/api/v1/reports/monthly?connection=1", "{}", &r);
    want_error(&r, 405, "TH_EINVAL");
    assert_string_equal(r.allow, "GET");
    resp_release(&r);
}

/* GET /reconcile refuses what it cannot run before it reads anything (the
 * runs themselves: tests/unit/worker/test_reconcile.c). */
static void test_reconcile_refusals(void **state)
{
    struct fx *f = *state;
    struct resp r;
    struct {
        const char *path;
        long status;
        const char *code, *msg;
    } bad[] = {
        {"", 400, "TH_EINVAL", "connection, from and to are required"},
        {"?connection=1&from=2026-01-01", 400, "TH_EINVAL", "connection, from and to are required"},
        {"?connection=99&from=2026-01-01&to=2026-01-02", 404, "TH_ENOTFOUND", "no connection 99"},
        {"?connection=1&from=2026-01-05&to=2026-01-01", 400, "TH_EINVAL", "after"},
        {"?connection=1&from=2024-01-01&to=2026-01-01", 400, "TH_ELIMIT", "at most 366 days"},
        {"?connection=1&from=2026-01-01&to=2026-01-02&x=1", 400, "TH_EINVAL",
         "x: unknown query parameter"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char path[160];
        snprintf(path, sizeof path, "/api/v1/reconcile%s", bad[i].path);
        call(f, "GET", path, NULL, &r);
        want_error(&r, bad[i].status, bad[i].code);
        want_contains(&r, "error.message", bad[i].msg);
        resp_release(&r);
    }
    call(f, "POST", "/api/v1/reconcile?connection=1", "{}", &r);
    want_error(&r, 405, "TH_EINVAL");
    resp_release(&r);
}

/* GET /conflicts, GET /conflicts/{id}, POST /conflicts/{id}/resolve: a
 * token is required; the JSON names the store, SKU, field, both values and
 * the last agreed ones, money in halalas; a conflict is resolved once. */
static void test_conflicts(void **state)
{
    struct fx *f = *state;
    struct th_err err;
    struct store_conflict k = {.conn_id = f->c1, .sku = "MUG-001", .field = STORE_FIELD_PRICE,
                               .store_value = "3900", .qoyod_value = "4100",
                               .last_store = "3500", .last_qoyod = "3500",
                               .winner = STORE_SRC_STORE};
    must(store_conflict_add(f->store, &k, &err), &err);
    int64_t price_id = k.id;
    struct store_conflict n = {.conn_id = f->c2, .sku = "TSH-1", .field = STORE_FIELD_NAME,
                               .store_value = "تي شيرت", .qoyod_value = "T-shirt",
                               .last_store = "قميص", .last_qoyod = "قميص",
                               .winner = STORE_SRC_QOYOD};
    must(store_conflict_add(f->store, &n, &err), &err);

    struct resp r;
    call_auth(f, "GET", "/api/v1/conflicts", NULL, NULL, &r);
    want_error(&r, 401, "TH_EAUTH");
    resp_release(&r);
    call_auth(f, "POST", "/api/v1/conflicts/1/resolve", NULL, "{}", &r);
    want_error(&r, 401, "TH_EAUTH");
    resp_release(&r);

    call(f, "GET", "/api/v1/conflicts", NULL, &r);
    want_status(&r, 200);
    want_int(&r, "count", 2);
    want_int(&r, "conflicts.0.id", n.id); /* newest first */
    want_str(&r, "conflicts.0.field", "name");
    want_str(&r, "conflicts.0.unit", "text");
    want_str(&r, "conflicts.0.store_value", "تي شيرت");
    want_str(&r, "conflicts.0.winner", "qoyod");
    want_int(&r, "conflicts.1.connection", f->c1);
    want_str(&r, "conflicts.1.platform", "salla");
    want_int(&r, "conflicts.1.store_id", 100);
    want_str(&r, "conflicts.1.sku", "MUG-001");
    want_str(&r, "conflicts.1.field", "price");
    want_str(&r, "conflicts.1.unit", "halalas");
    want_int(&r, "conflicts.1.store_value", 3900);
    want_int(&r, "conflicts.1.qoyod_value", 4100);
    want_int(&r, "conflicts.1.last_store_value", 3500);
    want_int(&r, "conflicts.1.last_qoyod_value", 3500);
    want_str(&r, "conflicts.1.winner", "store");
    want_bool(&r, "conflicts.1.resolved", 0);
    want_null(&r, "conflicts.1.resolution");
    assert_non_null(json_string_value(jp(r.json, "conflicts.1.at")));
    resp_release(&r);

    call(f, "GET", "/api/v1/conflicts?connection=salla:200", NULL, &r);
    want_status(&r, 200);
    want_int(&r, "count", 1);
    want_str(&r, "conflicts.0.sku", "TSH-1");
    resp_release(&r);
    call(f, "GET", "/api/v1/conflicts?limit=1", NULL, &r);
    want_int(&r, "count", 1);
    resp_release(&r);
    call(f, "GET", "/api/v1/conflicts?x=1", NULL, &r);
    want_error(&r, 400, "TH_EINVAL");
    resp_release(&r);
    call(f, "GET", "/api/v1/conflicts?connection=99", NULL, &r);
    want_error(&r, 404, "TH_ENOTFOUND");
    resp_release(&r);

    char path[96];
    snprintf(path, sizeof path, "/api/v1/conflicts/%lld", (long long)price_id);
    call(f, "GET", path, NULL, &r);
    want_status(&r, 200);
    want_str(&r, "sku", "MUG-001");
    resp_release(&r);
    call(f, "GET", "/api/v1/conflicts/424242", NULL, &r);
    want_error(&r, 404, "TH_ENOTFOUND");
    resp_release(&r);

    snprintf(path, sizeof path, "/api/v1/conflicts/%lld/resolve", (long long)price_id);
    call(f, "POST", path, "{\"keep\":\"both\"}", &r);
    want_error(&r, 400, "TH_EINVAL");
    resp_release(&r);
    call(f, "POST", path, "{\"why\":1}", &r);
    want_error(&r, 400, "TH_EINVAL");
    resp_release(&r);
    call(f, "POST", path, "{}", &r);
    want_status(&r, 200);
    want_bool(&r, "resolved", 1);
    want_str(&r, "resolution", "reviewed");
    resp_release(&r);
    call(f, "POST", path, "{}", &r);
    want_error(&r, 409, "TH_ECONFLICT");
    resp_release(&r);

    call(f, "GET", "/api/v1/conflicts", NULL, &r);
    want_int(&r, "count", 1); /* open ones only */
    resp_release(&r);
    call(f, "GET", "/api/v1/conflicts?all=true", NULL, &r);
    want_int(&r, "count", 2);
    resp_release(&r);

    /* The field-sync settings: off and the defaults, then set. */
    call(f, "GET", "/api/v1/connections/1/settings", NULL, &r);
    want_bool(&r, "fields_sync", 0);
    want_str(&r, "name_source", "store");
    want_str(&r, "price_source", "store");
    want_str(&r, "cost_source", "qoyod");
    resp_release(&r);
    call(f, "PATCH", "/api/v1/connections/1/settings", "{\"name_source\":\"nobody\"}", &r);
    want_error(&r, 400, "TH_EINVAL");
    want_contains(&r, "error.message", "store or qoyod");
    resp_release(&r);
    call(f, "PATCH", "/api/v1/connections/1/settings",
         "{\"fields_sync\":true,\"cost_source\":\"store\",\"price_source\":\"qoyod\"}", &r);
    want_status(&r, 200);
    want_bool(&r, "fields_sync", 1);
    want_str(&r, "cost_source", "store");
    want_str(&r, "price_source", "qoyod");
    resp_release(&r);
    struct store_conn c;
    must(store_conn_get(f->store, 1, &c, &err), &err);
    assert_int_equal(c.fields_sync, 1);
    assert_int_equal(store_field_source(&c, STORE_FIELD_COST), STORE_SRC_STORE);
    store_conn_release(&c);
}

static void test_openapi_matches_routes(void **state)
{
    struct fx *f = *state;
    FILE *fp = fopen(TH_SOURCE_DIR "/docs/openapi.yaml", "r");
    assert_non_null(fp);
    char line[512], path[256] = "";
    int ops = 0, in_paths = 0;
    while (fgets(line, sizeof line, fp)) {
        line[strcspn(line, "\n")] = '\0';
        if (!strcmp(line, "paths:"))
            in_paths = 1;
        else if (line[0] && line[0] != ' ')
            in_paths = 0;
        if (!in_paths) continue;
        char p[256], m[16];
        if (sscanf(line, "  %255[^:]:", p) == 1 && line[2] == '/' && line[3] != ' ') {
            /* "{connection}" → 1, "{order_id}" → 5001 */
            path[0] = '\0';
            for (char *t = p; *t;) {
                size_t o = strlen(path);
                if (!strncmp(t, "{connection}", 12)) {
                    snprintf(path + o, sizeof path - o, "1");
                    t += 12;
                } else if (!strncmp(t, "{order_id}", 10)) {
                    snprintf(path + o, sizeof path - o, "5001");
                    t += 10;
                } else if (!strncmp(t, "{id}", 4)) {
                    snprintf(path + o, sizeof path - o, "1");
                    t += 4;
                } else {
                    snprintf(path + o, sizeof path - o, "%c", *t++);
                }
            }
            continue;
        }
        if (sscanf(line, "    %15[a-z]:", m) == 1 && line[4] != ' ' && path[0] &&
            (!strcmp(m, "get") || !strcmp(m, "post") || !strcmp(m, "patch") || !strcmp(m, "put") ||
             !strcmp(m, "delete"))) {
            char method[16], url[300];
            for (size_t i = 0; i <= strlen(m); i++)
                method[i] = (char)toupper((unsigned char)m[i]);
            snprintf(url, sizeof url, "/api/v1%s", path);
            struct resp r;
            call(f, method, url, strcmp(method, "GET") ? "{}" : NULL, &r);
            const char *msg = json_string_value(jp(r.json, "error.message"));
            if (r.status == 405 ||
                (r.status == 404 && msg && !strncmp(msg, "no such endpoint", 16)))
                fail_msg("documented %s %s is not routed: %ld %s", method, url, r.status, r.body);
            resp_release(&r);
            ops++;
        }
    }
    fclose(fp);
    assert_int_equal(ops, 22); /* the routes in src/http/api.c, login included */
}

/* ---------------------------------------------------------------------- */
/* Dashboard sessions                                                       */

#define PW "correct horse battery"

static void add_user(struct fx *f, const char *name)
{
    char h[PASSWD_HASH_MAX];
    struct th_err err = {0};
    must(passwd_hash(PW, 10, h, sizeof h, &err), &err);
    must(store_user_put(f->store, name, h, &err), &err);
}

/* Logs in; fills cookie ("Cookie: th_session=...") and csrf
 * ("X-CSRF-Token: ..."). */
static void login(struct fx *f, const char *user, char cookie[128], char csrf[128])
{
    struct resp r;
    char body[256];
    snprintf(body, sizeof body, "{\"user\":\"%s\",\"password\":\"%s\"}", user, PW);
    const char *h[] = {"Content-Type: application/json", NULL};
    call_hdrs(f, "POST", "/api/v1/login", h, body, &r);
    want_status(&r, 200);
    want_str(&r, "user", user);
    const char *tok = json_string_value(jp(r.json, "csrf_token"));
    assert_non_null(tok);
    assert_int_equal(strlen(tok), 64);
    snprintf(csrf, 128, "X-CSRF-Token: %s", tok);
    /* th_session=<64 hex>; Path=/; HttpOnly; SameSite=Lax; Max-Age=... */
    assert_true(strncmp(r.set_cookie, "th_session=", 11) == 0);
    assert_non_null(strstr(r.set_cookie, "; HttpOnly"));
    assert_non_null(strstr(r.set_cookie, "; SameSite=Lax"));
    assert_non_null(strstr(r.set_cookie, "; Path=/"));
    assert_int_equal(strcspn(r.set_cookie + 11, ";"), 64);
    snprintf(cookie, 128, "Cookie: %.75s", r.set_cookie);
    resp_release(&r);
}

static void test_session_login_csrf_logout(void **state)
{
    struct fx *f = *state;
    add_user(f, "admin");
    struct resp r;
    const char *json[] = {"Content-Type: application/json", NULL};
    /* wrong password, unknown user, not JSON: refused, no cookie */
    call_hdrs(f, "POST", "/api/v1/login", json, "{\"user\":\"admin\",\"password\":\"nope\"}", &r);
    want_error(&r, 401, "TH_EAUTH");
    want_contains(&r, "error.message", "wrong user name or password");
    assert_string_equal(r.set_cookie, "");
    resp_release(&r);
    call_hdrs(f, "POST", "/api/v1/login", json, "{\"user\":\"eve\",\"password\":\"" PW "\"}", &r);
    want_error(&r, 401, "TH_EAUTH");
    resp_release(&r);
    const char *form[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    call_hdrs(f, "POST", "/api/v1/login", form, "{\"user\":\"admin\",\"password\":\"" PW "\"}", &r);
    want_error(&r, 415, "TH_EINVAL");
    assert_string_equal(r.set_cookie, "");
    resp_release(&r);
    call_hdrs(f, "GET", "/api/v1/login", json, NULL, &r);
    want_status(&r, 405);
    resp_release(&r);

    char cookie[128], csrf[128], bad_csrf[128];
    login(f, "admin", cookie, csrf);
    /* reads need the cookie only */
    const char *c_only[] = {cookie, json[0], NULL};
    call_hdrs(f, "GET", "/api/v1/connections", c_only, NULL, &r);
    want_status(&r, 200);
    resp_release(&r);
    call_hdrs(f, "GET", "/api/v1/session", c_only, NULL, &r);
    want_str(&r, "user", "admin");
    want_str(&r, "csrf_token", csrf + 14);
    resp_release(&r);
    /* a write without the CSRF token, or with another, is refused; nothing queued */
    add_order(f, f->c1, 7001, STORE_XFER_FAILED, 1700000000, 100);
    call_hdrs(f, "POST", "/api/v1/orders/retry", c_only, "{}", &r);
    want_error(&r, 403, "TH_EAUTH");
    want_contains(&r, "error.message", "CSRF");
    resp_release(&r);
    snprintf(bad_csrf, sizeof bad_csrf, "X-CSRF-Token: %064d", 7);
    const char *c_bad[] = {cookie, bad_csrf, json[0], NULL};
    call_hdrs(f, "POST", "/api/v1/orders/retry", c_bad, "{}", &r);
    want_error(&r, 403, "TH_EAUTH");
    resp_release(&r);
    assert_int_equal(jobs(f), 0);
    const char *c_ok[] = {cookie, csrf, json[0], NULL};
    call_hdrs(f, "POST", "/api/v1/orders/retry", c_ok, "{}", &r);
    want_status(&r, 202);
    resp_release(&r);
    assert_int_equal(jobs(f), 4); /* the fixture's 3 failed orders and 7001 */
    /* a bearer header wins over the cookie: a wrong token is refused */
    const char *c_bearer[] = {cookie, "Authorization: Bearer wrong-token-0123456789", NULL};
    call_hdrs(f, "GET", "/api/v1/connections", c_bearer, NULL, &r);
    want_error(&r, 401, "TH_EAUTH");
    resp_release(&r);
    /* a forged cookie is not a session */
    const char *forged[] = {"Cookie: th_session=00000000000000000000000000000000000000000000000000"
                            "00000000000000",
                            NULL};
    call_hdrs(f, "GET", "/api/v1/connections", forged, NULL, &r);
    want_error(&r, 401, "TH_EAUTH");
    resp_release(&r);
    /* logout needs the CSRF token too, ends the session and clears the cookie */
    call_hdrs(f, "POST", "/api/v1/logout", c_only, "{}", &r);
    want_status(&r, 403);
    resp_release(&r);
    call_hdrs(f, "POST", "/api/v1/logout", c_ok, "{}", &r);
    want_status(&r, 200);
    assert_non_null(strstr(r.set_cookie, "th_session=;"));
    assert_non_null(strstr(r.set_cookie, "Max-Age=0"));
    resp_release(&r);
    call_hdrs(f, "GET", "/api/v1/connections", c_only, NULL, &r);
    want_error(&r, 401, "TH_EAUTH");
    want_contains(&r, "error.remedy", "log in");
    resp_release(&r);
}

/* A new password ends the sessions begun under the old one (a lost laptop:
 * the admin sets a new password and the thief's session is over), and a
 * removed user's sessions end; both at the next request, as the CLI that
 * does it is another process. Other users' sessions go on. */
static void test_session_ends_with_new_password_or_removal(void **state)
{
    struct fx *f = *state;
    add_user(f, "admin");
    add_user(f, "sara");
    char lost[128], lost_csrf[128], other[128], other_csrf[128], sara[128], sara_csrf[128];
    login(f, "admin", lost, lost_csrf);
    login(f, "admin", other, other_csrf);
    login(f, "sara", sara, sara_csrf);
    struct resp r;
    const char *h_lost[] = {lost, NULL}, *h_other[] = {other, NULL}, *h_sara[] = {sara, NULL};
    call_hdrs(f, "GET", "/api/v1/connections", h_lost, NULL, &r);
    want_status(&r, 200);
    resp_release(&r);
    /* the same password set again is a new hash (a new salt): sessions end */
    add_user(f, "admin");
    for (int i = 0; i < 2; i++) {
        call_hdrs(f, "GET", "/api/v1/connections", i ? h_other : h_lost, NULL, &r);
        want_error(&r, 401, "TH_EAUTH");
        want_contains(&r, "error.message", "password was changed");
        want_contains(&r, "error.remedy", "log in");
        assert_non_null(strstr(r.set_cookie, "Max-Age=0"));
        resp_release(&r);
    }
    /* ended for good, not only refused: still refused once more */
    call_hdrs(f, "GET", "/api/v1/session", h_lost, NULL, &r);
    want_error(&r, 401, "TH_EAUTH");
    want_contains(&r, "error.message", "session has ended");
    resp_release(&r);
    /* a new login with the new password works */
    char again[128], again_csrf[128];
    login(f, "admin", again, again_csrf);
    const char *h_again[] = {again, NULL};
    call_hdrs(f, "GET", "/api/v1/connections", h_again, NULL, &r);
    want_status(&r, 200);
    resp_release(&r);
    /* sara's session went on; removing sara ends it */
    call_hdrs(f, "GET", "/api/v1/connections", h_sara, NULL, &r);
    want_status(&r, 200);
    resp_release(&r);
    struct th_err err = {0};
    must(store_user_delete(f->store, "sara", &err), &err);
    call_hdrs(f, "GET", "/api/v1/connections", h_sara, NULL, &r);
    want_error(&r, 401, "TH_EAUTH");
    want_contains(&r, "error.message", "user is gone");
    resp_release(&r);
    call_hdrs(f, "GET", "/api/v1/connections", h_again, NULL, &r);
    want_status(&r, 200);
    resp_release(&r);
}

static void test_session_login_limit(void **state)
{
    struct fx *f = *state;
    add_user(f, "admin");
    struct resp r;
    const char *json[] = {"Content-Type: application/json", NULL};
    for (int i = 0; i < 5; i++) {
        call_hdrs(f, "POST", "/api/v1/login", json,
                  "{\"user\":\"admin\",\"password\":\"guess-guess-guess\"}", &r);
        want_error(&r, 401, "TH_EAUTH");
        resp_release(&r);
    }
    /* the sixth is refused before the password is looked at: even the right one */
    call_hdrs(f, "POST", "/api/v1/login", json, "{\"user\":\"admin\",\"password\":\"" PW "\"}", &r);
    want_error(&r, 429, "TH_ERATE");
    assert_string_equal(r.set_cookie, "");
    long ra = strtol(r.retry_after, NULL, 10);
    assert_true(ra > 800 && ra <= 900);
    want_contains(&r, "error.message", "15 minute");
    /* the advice is one that works: the counts live in the process */
    want_contains(&r, "error.remedy", "restarting `tarheel serve`");
    resp_release(&r);
    /* the limit is per peer too: another user name from the same address waits */
    add_user(f, "sara");
    call_hdrs(f, "POST", "/api/v1/login", json, "{\"user\":\"sara\",\"password\":\"" PW "\"}", &r);
    want_error(&r, 429, "TH_ERATE");
    resp_release(&r);
}

static void test_connect_routes_without_an_app(void **state)
{
    struct fx *f = *state;
    struct resp r;
    /* this server has no connect: nothing can be connected, and it says how */
    call(f, "GET", "/api/v1/connect", NULL, &r);
    want_status(&r, 200);
    want_bool(&r, "salla", 0);
    want_bool(&r, "zid", 0);
    resp_release(&r);
    call(f, "POST", "/api/v1/connect/zid", "{}", &r);
    want_error(&r, 409, "TH_ECONFIG");
    resp_release(&r);
    call(f, "POST", "/api/v1/connect/shopify", "{}", &r);
    want_error(&r, 404, "TH_ENOTFOUND");
    resp_release(&r);
    call(f, "POST", "/api/v1/connect/zid", "{\"inventory_id\":-1}", &r);
    want_error(&r, 400, "TH_EINVAL");
    resp_release(&r);
    /* with an app configured (a connect without client secret is not one) */
    server_close(f->srv);
    api_close(f->api);
    struct connect_config kc = {.store = f->store,
                                .public_url = "http://127.0.0.1:1",
                                .zid = {.client_id = "cid", .client_secret = "csecret",
                                        .oauth_base = "http://127.0.0.1:2"},
                                .salla = {.client_id = "cid"}};
    struct connect *k = connect_new(&kc);
    struct api_config ac = {.store = f->store, .token = TOKEN, .connect = k};
    struct th_err err;
    must(api_open(&f->api, &ac, &err), &err);
    start_server(f, f->api);
    call(f, "GET", "/api/v1/connect", NULL, &r);
    want_bool(&r, "salla", 0);
    want_bool(&r, "zid", 1);
    resp_release(&r);
    call(f, "POST", "/api/v1/connect/zid", "{\"api_key\":\"k\",\"inventory_id\":2}", &r);
    want_status(&r, 200);
    want_contains(&r, "authorize_url", "http://127.0.0.1:2/oauth/authorize?");
    want_contains(&r, "authorize_url", "client_id=cid");
    want_contains(&r, "authorize_url", "state=");
    want_contains(&r, "authorize_url", "127.0.0.1%3A1%2Foauth%2Fzid%2Fcallback");
    if (strstr(r.body, "csecret")) fail_msg("the client secret leaked: %s", r.body);
    resp_release(&r);
    server_close(f->srv);
    f->srv = NULL;
    api_close(f->api);
    f->api = NULL;
    connect_free(k);
}

static void test_qoyod_routes_refuse_bad_input(void **state)
{
    struct fx *f = *state;
    struct resp r;
    call(f, "POST", "/api/v1/qoyod/check", "{}", &r);
    want_error(&r, 400, "TH_EINVAL");
    want_contains(&r, "error.message", "api_key is required");
    resp_release(&r);
    call(f, "POST", "/api/v1/qoyod/check", "{\"api_key\":\"k\",\"url\":\"http://x\"}", &r);
    want_error(&r, 400, "TH_EINVAL");
    resp_release(&r);
    call(f, "PUT", "/api/v1/connections/1/qoyod", "{\"inventory_id\":0}", &r);
    want_error(&r, 400, "TH_EINVAL");
    want_contains(&r, "error.message", "inventory_id");
    resp_release(&r);
    call(f, "PUT", "/api/v1/connections/99/qoyod", "{\"inventory_id\":1}", &r);
    want_error(&r, 404, "TH_ENOTFOUND");
    resp_release(&r);
}

int main(void)
{
    log_set_level(LOG_ERROR);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_token_configured, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_config_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_orders_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_orders_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_orders_bad_queries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_order_detail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transfer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transfer_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pulls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_report_monthly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconcile_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conflicts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_openapi_matches_routes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_login_csrf_logout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_ends_with_new_password_or_removal, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_session_login_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_qoyod_routes_refuse_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_routes_without_an_app, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
