/*
 * Tenant isolation of the REST API (src/http/api.c, "Tenant scope"): two
 * tenants, each with a Salla store (on the Salla emulator), orders, a pull
 * of old orders, an API token and a dashboard user. For EVERY route of
 * api.c's route table (api_route_at) and four callers (each tenant's token
 * and each tenant's dashboard session, writes with the CSRF header), the
 * caller's requests naming the other tenant's connection, order or pull
 * get 404 and change nothing in the store, and its listings show only its
 * own rows; the same requests naming its own get the normal answer. A
 * route added to the table without a case here fails the test.
 */
#include <curl/curl.h>
#include <openssl/evp.h>
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

#include "core/buf.h"
#include "core/passwd.h"
#include "core/xmalloc.h"
#include "http/api.h"
#include "http/connect.h"
#include "http/server.h"
#include "sim/qoyod_sim.h"
#include "sim/salla_sim.h"
#include "th_test.h"

#define OP_TOKEN "operator-token-0123456789abcdef"
#define QKEY "qoyod-key-tenants"
#define PW "correct horse battery"

/* One tenant's side of the fixture. */
struct side {
    const char *name; /* tenant name */
    int64_t tenant;
    int64_t store_id; /* Salla merchant id */
    int64_t conn;
    int64_t failed_order, waiting_order;
    int64_t pull;
    int64_t conflict; /* an open field conflict of its store */
    char token[80];  /* its stored API token */
    char user[32];   /* its dashboard user */
    char cookie[128], csrf[128];
};

/* Who calls: a side, by its token or its session. */
struct caller {
    struct side *me, *them;
    int session;
};

struct fx {
    char dir[64];
    struct store *store;
    struct api *api;
    struct connect *connect;
    struct server *srv;
    struct sim *salla, *qoyod;
    char base[96];
    char public_url[96]; /* the connect's public URL: the server's, known after start */
    struct side a, b;
    int64_t inventory; /* a Qoyod inventory location the emulator has */
    int crossed, owned; /* requests checked */
};

struct resp {
    long status;
    char *body;
    json_t *json;
    char location[512];
    char cookie[128]; /* "th_session=..." of a Set-Cookie */
};

/* Appends text to b (the test's buffers have no cap). */
static void put(struct buf *b, const char *text)
{
    if (buf_append(b, text, strlen(text)) != 0) fail_msg("buffer full");
}

static void must(int rc, const struct th_err *err)
{
    if (rc != 0) fail_msg("call failed: %s: %s", th_err_name(rc), err->msg);
}

/* ---------------------------------------------------------------------- */
/* HTTP                                                                     */

static size_t on_body(char *p, size_t sz, size_t n, void *arg)
{
    return buf_append(arg, p, sz * n) ? 0 : sz * n;
}

static size_t on_header(char *p, size_t sz, size_t n, void *arg)
{
    struct resp *r = arg;
    size_t len = sz * n;
    if (len > 9 && strncasecmp(p, "Location:", 9) == 0) {
        const char *v = p + 9;
        size_t vl = len - 9;
        while (vl && *v == ' ')
            v++, vl--;
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n'))
            vl--;
        snprintf(r->location, sizeof r->location, "%.*s", (int)vl, v);
    }
    if (len > 12 && strncasecmp(p, "Set-Cookie: ", 12) == 0)
        snprintf(r->cookie, sizeof r->cookie, "%.*s", (int)strcspn(p + 12, ";\r\n"), p + 12);
    return len;
}

/* A request to url with the given header lines (NULL-terminated). */
static void http(const char *method, const char *url, const char *const *hdrs, const char *body,
                 struct resp *r)
{
    memset(r, 0, sizeof *r);
    CURL *c = curl_easy_init();
    assert_non_null(c);
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
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 20000L);
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
}

static void resp_release(struct resp *r)
{
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

/* A request to the API as caller c (token, or session cookie plus the
 * CSRF header on every method but GET). */
static void call(struct fx *f, const struct caller *c, const char *method, const char *path,
                 const char *body, struct resp *r)
{
    char url[600], auth[160];
    snprintf(url, sizeof url, "%s%s", f->base, path);
    const char *h[4] = {"Content-Type: application/json", NULL, NULL, NULL};
    if (c->session) {
        h[1] = c->me->cookie;
        if (strcmp(method, "GET") != 0) h[2] = c->me->csrf;
    } else {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", c->me->token);
        h[1] = auth;
    }
    http(method, url, h, body, r);
    if (strstr(r->body, c->me->token) || strstr(r->body, c->them->token))
        fail_msg("%s %s echoed an API token: %s", method, path, r->body);
}

/* The value at a dotted path ("error.code", "orders.0.connection"). */
static json_t *jp(const json_t *root, const char *path)
{
    const json_t *v = root;
    const char *p = path;
    char key[64];
    while (v && *p) {
        size_t len = strcspn(p, ".");
        snprintf(key, sizeof key, "%.*s", (int)len, p);
        v = json_is_array(v) ? json_array_get(v, (size_t)strtoul(key, NULL, 10))
                             : json_object_get(v, key);
        p += len;
        if (*p == '.') p++;
    }
    return (json_t *)v;
}

/* ---------------------------------------------------------------------- */
/* What the store holds: every connection's fields, every order's fields
 * and history, the job, token and user counts, as text to compare.        */

struct snap {
    struct store *s;
    struct buf b;
};

static void snap_hist(void *arg, int64_t ts, const char *what, const char *detail)
{
    char line[600];
    snprintf(line, sizeof line, "  h %lld %s %s\n", (long long)ts, what, detail);
    put(arg, line);
}

static void snap_order(void *arg, const struct store_order *o)
{
    struct snap *sn = arg;
    char line[1024];
    snprintf(line, sizeof line,
             "o %lld/%lld %s st=%d x=%d rc=%d %s att=%d tot=%lld tax=%lld q=%lld/%lld/%s/%lld "
             "t=%lld/%lld/%lld cr=%d/%lld\n",
             (long long)o->conn_id, (long long)o->order_id, o->number ? o->number : "-",
             o->status, o->xfer, o->reason_code, o->reason ? o->reason : "-", o->attempts,
             (long long)o->total, (long long)o->tax, (long long)o->qoyod_total,
             (long long)o->qoyod_invoice_id, o->qoyod_reference ? o->qoyod_reference : "-",
             (long long)o->qoyod_payment_id, (long long)o->created_at, (long long)o->updated_at,
             (long long)o->transferred_at, o->credit, (long long)o->credited);
    put(&sn->b, line);
    struct th_err err;
    must(store_order_history(sn->s, o->conn_id, o->order_id, snap_hist, &sn->b, &err), &err);
}

static void snap_conn(void *arg, const struct store_conn *c)
{
    struct buf *b = arg;
    char line[2048];
    snprintf(line, sizeof line,
             "c %lld t=%lld %d:%lld %s %s %s %s %lld %s %s %s %s %lld %s %s %lld %lld %d %d %d "
             "%d %d %lld\n",
             (long long)c->id, (long long)c->tenant_id, c->platform, (long long)c->store_id,
             c->name ? c->name : "-", c->access_token ? c->access_token : "-",
             c->refresh_token ? c->refresh_token : "-", c->manager_token ? c->manager_token : "-",
             (long long)c->token_expires_at, c->webhook_secret ? c->webhook_secret : "-",
             c->webhook_strategy ? c->webhook_strategy : "-", c->api_base ? c->api_base : "-",
             c->status ? c->status : "-", (long long)c->connected_at,
             c->qoyod_base ? c->qoyod_base : "-", c->qoyod_api_key ? c->qoyod_api_key : "-",
             (long long)c->inventory_id, (long long)c->payment_account_id, c->trigger,
             c->customer_per_invoice, c->number_by_order, c->financial_invoice, c->stock_sync,
             (long long)c->stock_interval_s);
    put(b, line);
}

/* The whole store as text (new; free()). */
static char *snapshot(struct fx *f)
{
    struct snap sn = {.s = f->store};
    buf_init(&sn.b, 0);
    struct th_err err;
    must(store_conn_list(f->store, snap_conn, &sn.b, &err), &err);
    must(store_order_list(f->store, 0, -1, snap_order, &sn, &err), &err);
    int64_t jobs = 0, tokens = 0, users = 0;
    must(store_job_count(f->store, &jobs, &err), &err);
    must(store_token_count(f->store, &tokens, &err), &err);
    must(store_user_count(f->store, &users, &err), &err);
    char line[96];
    snprintf(line, sizeof line, "jobs=%lld tokens=%lld users=%lld\n", (long long)jobs,
             (long long)tokens, (long long)users);
    put(&sn.b, line);
    char *out = xstrdup(buf_cstr(&sn.b));
    buf_release(&sn.b);
    return out;
}

/* ---------------------------------------------------------------------- */
/* The two checks every case is made of                                     */

/* c's request names the other tenant's data: 404 TH_ENOTFOUND, nothing in
 * the store changed. */
static void cross(struct fx *f, const struct caller *c, const char *method, const char *path,
                  const char *body)
{
    char *before = snapshot(f);
    struct resp r;
    call(f, c, method, path, body, &r);
    const char *code = json_string_value(jp(r.json, "error.code"));
    if (r.status != 404 || !code || strcmp(code, "TH_ENOTFOUND") != 0)
        fail_msg("tenant %s (%s) %s %s %s: want 404 TH_ENOTFOUND, got %ld %s", c->me->name,
                 c->session ? "session" : "token", method, path, body ? body : "", r.status,
                 r.body);
    /* the answer names nothing of the other tenant but what was asked */
    char them_name[64];
    snprintf(them_name, sizeof them_name, "Shop %s", c->them->name);
    if (strstr(r.body, them_name)) fail_msg("%s %s revealed %s: %s", method, path, them_name, r.body);
    resp_release(&r);
    char *after = snapshot(f);
    if (strcmp(before, after) != 0)
        fail_msg("tenant %s %s %s changed the store:\nbefore:\n%s\nafter:\n%s", c->me->name,
                 method, path, before, after);
    free(before);
    free(after);
    f->crossed++;
}

/* c's request names its own data: the normal answer (status), returned in
 * r for more checks (resp_release). */
static void own(struct fx *f, const struct caller *c, const char *method, const char *path,
                const char *body, long status, struct resp *r)
{
    call(f, c, method, path, body, r);
    if (r->status != status)
        fail_msg("tenant %s (%s) %s %s %s: want %ld, got %ld %s", c->me->name,
                 c->session ? "session" : "token", method, path, body ? body : "", status,
                 r->status, r->body);
    f->owned++;
}

static void own_ok(struct fx *f, const struct caller *c, const char *method, const char *path,
                   const char *body, long status)
{
    struct resp r;
    own(f, c, method, path, body, status, &r);
    resp_release(&r);
}

/* The tenant of connection id (from the store). */
static int64_t tenant_of(struct fx *f, int64_t conn)
{
    struct store_conn c;
    struct th_err err;
    must(store_conn_get(f->store, conn, &c, &err), &err);
    int64_t t = c.tenant_id;
    store_conn_release(&c);
    return t;
}

/* Waits until pull id is no longer running (as c sees it). */
static void pull_wait(struct fx *f, const struct caller *c, int64_t id)
{
    char path[64];
    snprintf(path, sizeof path, "/api/v1/pulls/%lld", (long long)id);
    for (int i = 0; i < 400; i++) {
        struct resp r;
        call(f, c, "GET", path, NULL, &r);
        assert_int_equal(r.status, 200);
        const char *st = json_string_value(jp(r.json, "state"));
        int running = st && strcmp(st, "running") == 0;
        resp_release(&r);
        if (!running) return;
        tt_sleep_ms(25);
    }
    fail_msg("pull %lld still running after 10 s", (long long)id);
}

/* ---------------------------------------------------------------------- */
/* One case per route: the other tenant's ids, then the caller's own        */

#define ME (c->me)
#define THEM (c->them)

static void case_list_connections(struct fx *f, const struct caller *c)
{
    struct resp r;
    own(f, c, "GET", "/api/v1/connections", NULL, 200, &r);
    json_t *arr = jp(r.json, "connections");
    size_t i;
    json_t *v;
    int mine = 0;
    json_array_foreach(arr, i, v)
    {
        int64_t id = json_integer_value(json_object_get(v, "id"));
        if (tenant_of(f, id) != ME->tenant)
            fail_msg("tenant %s sees connection %lld of another tenant: %s", ME->name,
                     (long long)id, r.body);
        mine += id == ME->conn;
    }
    assert_int_equal(mine, 1);
    resp_release(&r);
    f->crossed++; /* the listing is the cross check: no row of the other tenant */
}

/* GET/PATCH/PUT on /connections/{c}[/suffix]: the other's id and
 * platform:store_id are 404. */
static void conn_paths(struct fx *f, const struct caller *c, const char *method,
                       const char *suffix, const char *body, long own_status)
{
    char path[160];
    snprintf(path, sizeof path, "/api/v1/connections/%lld%s", (long long)THEM->conn, suffix);
    cross(f, c, method, path, body);
    snprintf(path, sizeof path, "/api/v1/connections/salla:%lld%s", (long long)THEM->store_id,
             suffix);
    cross(f, c, method, path, body);
    snprintf(path, sizeof path, "/api/v1/connections/%lld%s", (long long)ME->conn, suffix);
    own_ok(f, c, method, path, body, own_status);
    snprintf(path, sizeof path, "/api/v1/connections/salla:%lld%s", (long long)ME->store_id,
             suffix);
    own_ok(f, c, method, path, body, own_status);
}

static void case_get_connection(struct fx *f, const struct caller *c)
{
    conn_paths(f, c, "GET", "", NULL, 200);
}

static void case_get_settings(struct fx *f, const struct caller *c)
{
    conn_paths(f, c, "GET", "/settings", NULL, 200);
}

static void case_patch_settings(struct fx *f, const struct caller *c)
{
    conn_paths(f, c, "PATCH", "/settings", "{\"trigger\":\"completed\",\"stock_sync\":true}", 200);
    struct store_conn got;
    struct th_err err;
    must(store_conn_get(f->store, ME->conn, &got, &err), &err);
    assert_int_equal(got.trigger, MODEL_STATUS_COMPLETED);
    got.trigger = MODEL_STATUS_NEW; /* back, for the next caller's own check */
    got.stock_sync = 0;
    must(store_conn_put_settings(f->store, &got, &err), &err);
    store_conn_release(&got);
}

static void case_put_qoyod(struct fx *f, const struct caller *c)
{
    char body[96];
    snprintf(body, sizeof body, "{\"inventory_id\":%lld}", (long long)f->inventory);
    conn_paths(f, c, "PUT", "/qoyod", body, 200);
}

static void case_orders(struct fx *f, const struct caller *c)
{
    char path[160];
    snprintf(path, sizeof path, "/api/v1/orders?connection=%lld", (long long)THEM->conn);
    cross(f, c, "GET", path, NULL);
    snprintf(path, sizeof path, "/api/v1/orders?connection=salla:%lld&state=failed",
             (long long)THEM->store_id);
    cross(f, c, "GET", path, NULL);
    const char *lists[] = {"/api/v1/orders", "/api/v1/orders?state=failed",
                           "/api/v1/orders?order=newest&limit=1", "/api/v1/orders?q=6"};
    for (size_t k = 0; k < sizeof lists / sizeof lists[0]; k++) {
        struct resp r;
        own(f, c, "GET", lists[k], NULL, 200, &r);
        size_t i;
        json_t *v;
        json_array_foreach(jp(r.json, "orders"), i, v)
        {
            int64_t conn = json_integer_value(json_object_get(v, "connection"));
            if (tenant_of(f, conn) != ME->tenant)
                fail_msg("tenant %s GET %s lists an order of another tenant: %s", ME->name,
                         lists[k], r.body);
        }
        if (k == 0 && json_array_size(jp(r.json, "orders")) != 2)
            fail_msg("tenant %s GET /orders: want its 2 orders: %s", ME->name, r.body);
        resp_release(&r);
        f->crossed++;
    }
    snprintf(path, sizeof path, "/api/v1/orders?connection=%lld", (long long)ME->conn);
    own_ok(f, c, "GET", path, NULL, 200);
}

static void case_order(struct fx *f, const struct caller *c)
{
    char path[160];
    snprintf(path, sizeof path, "/api/v1/orders/%lld/%lld", (long long)THEM->conn,
             (long long)THEM->failed_order);
    cross(f, c, "GET", path, NULL);
    snprintf(path, sizeof path, "/api/v1/orders/salla:%lld/%lld", (long long)THEM->store_id,
             (long long)THEM->failed_order);
    cross(f, c, "GET", path, NULL);
    snprintf(path, sizeof path, "/api/v1/orders/%lld/%lld", (long long)ME->conn,
             (long long)THEM->failed_order);
    cross(f, c, "GET", path, NULL);
    snprintf(path, sizeof path, "/api/v1/orders/%lld/%lld", (long long)ME->conn,
             (long long)ME->failed_order);
    own_ok(f, c, "GET", path, NULL, 200);
}

static void case_transfer(struct fx *f, const struct caller *c)
{
    char body[200];
    snprintf(body, sizeof body, "{\"connection\":%lld,\"orders\":[%lld]}", (long long)THEM->conn,
             (long long)THEM->waiting_order);
    cross(f, c, "POST", "/api/v1/orders/transfer", body);
    snprintf(body, sizeof body, "{\"connection\":\"salla:%lld\",\"orders\":[%lld]}",
             (long long)THEM->store_id, (long long)THEM->waiting_order);
    cross(f, c, "POST", "/api/v1/orders/transfer", body);
    snprintf(body, sizeof body,
             "{\"connection\":%lld,\"from\":\"2026-01-01\",\"to\":\"2026-01-31\"}",
             (long long)THEM->conn);
    cross(f, c, "POST", "/api/v1/orders/transfer", body);
    snprintf(body, sizeof body,
             "{\"connection\":%lld,\"from\":\"2026-01-01\",\"to\":\"2026-01-31\","
             "\"dry_run\":true}",
             (long long)THEM->conn);
    cross(f, c, "POST", "/api/v1/orders/transfer", body);
    snprintf(body, sizeof body,
             "{\"connection\":%lld,\"from\":\"2026-01-01\",\"to\":\"2026-01-31\","
             "\"dry_run\":true}",
             (long long)ME->conn);
    own_ok(f, c, "POST", "/api/v1/orders/transfer", body, 200);
    snprintf(body, sizeof body, "{\"connection\":%lld,\"orders\":[%lld]}", (long long)ME->conn,
             (long long)ME->waiting_order);
    own_ok(f, c, "POST", "/api/v1/orders/transfer", body, 202);
}

static void case_retry(struct fx *f, const struct caller *c)
{
    char body[96];
    snprintf(body, sizeof body, "{\"connection\":%lld}", (long long)THEM->conn);
    cross(f, c, "POST", "/api/v1/orders/retry", body);
    snprintf(body, sizeof body, "{\"connection\":\"salla:%lld\"}", (long long)THEM->store_id);
    cross(f, c, "POST", "/api/v1/orders/retry", body);
    /* every failed order "of every connection": the caller's only */
    struct resp r;
    own(f, c, "POST", "/api/v1/orders/retry", "{}", 202, &r);
    json_t *q = jp(r.json, "queued");
    if (json_array_size(q) != 1 ||
        json_integer_value(jp(r.json, "queued.0.connection")) != ME->conn ||
        json_integer_value(jp(r.json, "queued.0.order_id")) != ME->failed_order)
        fail_msg("tenant %s retry {} queued other than its one failed order: %s", ME->name,
                 r.body);
    resp_release(&r);
    f->crossed++;
    snprintf(body, sizeof body, "{\"connection\":%lld}", (long long)ME->conn);
    own_ok(f, c, "POST", "/api/v1/orders/retry", body, 202);
}

static void case_post_pulls(struct fx *f, const struct caller *c)
{
    char body[160];
    snprintf(body, sizeof body, "{\"connection\":%lld,\"from\":\"2023-11-01\",\"to\":\"2023-11-02\"}",
             (long long)THEM->conn);
    cross(f, c, "POST", "/api/v1/pulls", body);
    snprintf(body, sizeof body,
             "{\"connection\":\"salla:%lld\",\"from\":\"2023-11-01\",\"to\":\"2023-11-02\","
             "\"again\":true}",
             (long long)THEM->store_id);
    cross(f, c, "POST", "/api/v1/pulls", body);
    snprintf(body, sizeof body,
             "{\"connection\":%lld,\"from\":\"2023-11-01\",\"to\":\"2023-11-02\",\"again\":true}",
             (long long)ME->conn);
    struct resp r;
    own(f, c, "POST", "/api/v1/pulls", body, 202, &r);
    int64_t id = json_integer_value(jp(r.json, "id"));
    resp_release(&r);
    pull_wait(f, c, id); /* nothing runs in the background during the next cross checks */
}

static void case_get_pull(struct fx *f, const struct caller *c)
{
    char path[64];
    snprintf(path, sizeof path, "/api/v1/pulls/%lld", (long long)THEM->pull);
    cross(f, c, "GET", path, NULL);
    snprintf(path, sizeof path, "/api/v1/pulls/%lld", (long long)ME->pull);
    struct resp r;
    own(f, c, "GET", path, NULL, 200, &r);
    assert_int_equal(json_integer_value(jp(r.json, "connection")), ME->conn);
    resp_release(&r);
}

static void case_report(struct fx *f, const struct caller *c)
{
    char path[160];
    snprintf(path, sizeof path, "/api/v1/reports/monthly?connection=%lld&from=2026-01&to=2026-02",
             (long long)THEM->conn);
    cross(f, c, "GET", path, NULL);
    snprintf(path, sizeof path, "/api/v1/reports/monthly?connection=salla:%lld",
             (long long)THEM->store_id);
    cross(f, c, "GET", path, NULL);
    snprintf(path, sizeof path, "/api/v1/reports/monthly?connection=%lld&from=2026-01&to=2026-02",
             (long long)ME->conn);
    own_ok(f, c, "GET", path, NULL, 200);
}

static void case_reconcile(struct fx *f, const struct caller *c)
{
    char path[160];
    snprintf(path, sizeof path, "/api/v1/reconcile?connection=%lld&from=2026-01-01&to=2026-01-02",
             (long long)THEM->conn);
    cross(f, c, "GET", path, NULL);
    snprintf(path, sizeof path,
             "/api/v1/reconcile?connection=salla:%lld&from=2026-01-01&to=2026-01-02",
             (long long)THEM->store_id);
    cross(f, c, "GET", path, NULL);
    snprintf(path, sizeof path, "/api/v1/reconcile?connection=%lld&from=2026-01-01&to=2026-01-02",
             (long long)ME->conn);
    own_ok(f, c, "GET", path, NULL, 200);
}

/* Routes that name no tenant's data: the same answer whoever asks, and
 * the store unchanged. */
static void same_for_all(struct fx *f, const struct caller *c, const char *method,
                         const char *path, const char *body, long status)
{
    char *before = snapshot(f);
    own_ok(f, c, method, path, body, status);
    char *after = snapshot(f);
    if (strcmp(before, after) != 0) fail_msg("%s %s changed the store", method, path);
    free(before);
    free(after);
    f->crossed++;
}

/* POST /qoyod/check checks the key in the body against Qoyod: nobody's. */
static void case_qoyod_check(struct fx *f, const struct caller *c)
{
    same_for_all(f, c, "POST", "/api/v1/qoyod/check", "{\"api_key\":\"" QKEY "\"}", 200);
}

/* GET /connect: which platforms this tarheel can connect: nobody's. */
static void case_get_connect(struct fx *f, const struct caller *c)
{
    same_for_all(f, c, "GET", "/api/v1/connect", NULL, 200);
}

/* Follows a started connect through the emulator's approval (for store
 * store_id) to tarheel's callback; returns the dashboard fragment it
 * redirects to. */
static void connect_flow(struct fx *f, const struct caller *c, int64_t store_id, char *fragment,
                         size_t n)
{
    struct resp r;
    own(f, c, "POST", "/api/v1/connect/salla", "{\"api_key\":\"" QKEY "\"}", 200, &r);
    char url[1200];
    snprintf(url, sizeof url, "%s&store_id=%lld", json_string_value(jp(r.json, "authorize_url")),
             (long long)store_id);
    resp_release(&r);
    http("GET", url, NULL, NULL, &r);
    assert_int_equal(r.status, 302);
    char back[600];
    snprintf(back, sizeof back, "%s", r.location);
    resp_release(&r);
    http("GET", back, NULL, NULL, &r);
    assert_int_equal(r.status, 303);
    snprintf(fragment, n, "%s", r.location);
    resp_release(&r);
}

/* POST /connect/{platform}: the store connected at the callback goes to the
 * caller's tenant; the other tenant's store is refused and left as it was. */
static void case_post_connect(struct fx *f, const struct caller *c)
{
    char frag[600];
    char *before = snapshot(f);
    connect_flow(f, c, THEM->store_id, frag, sizeof frag);
    if (!strstr(frag, "/#/connect/failed/") || !strstr(frag, "another%20account"))
        fail_msg("tenant %s connected tenant %s's store: %s", ME->name, THEM->name, frag);
    char *after = snapshot(f);
    if (strcmp(before, after) != 0)
        fail_msg("tenant %s's connect of another tenant's store changed the store:\n%s\n%s",
                 ME->name, before, after);
    free(before);
    free(after);
    f->crossed++;
    /* its own store again (tokens renewed, tenant kept), and a new one */
    connect_flow(f, c, ME->store_id, frag, sizeof frag);
    if (!strstr(frag, "/#/connect/done/salla/")) fail_msg("own reconnect: %s", frag);
    assert_int_equal(tenant_of(f, ME->conn), ME->tenant);
    int64_t fresh = ME->store_id + 1000 + c->session;
    struct resp r;
    char url[200];
    snprintf(url, sizeof url, "%s/_sim/salla/install", sim_base_url(f->salla));
    char body[64];
    snprintf(body, sizeof body, "{\"store_id\":%lld}", (long long)fresh);
    http("POST", url, (const char *[]){"Content-Type: application/json", NULL}, body, &r);
    assert_int_equal(r.status, 200);
    resp_release(&r);
    connect_flow(f, c, fresh, frag, sizeof frag);
    if (!strstr(frag, "/#/connect/done/salla/")) fail_msg("new store: %s", frag);
    struct store_conn got;
    struct th_err err;
    must(store_conn_find(f->store, MODEL_PLATFORM_SALLA, fresh, &got, &err), &err);
    assert_int_equal(got.tenant_id, ME->tenant);
    store_conn_release(&got);
    f->owned++;
}

/* GET /session: who the caller is, with its tenant's name. */
static void case_session(struct fx *f, const struct caller *c)
{
    struct resp r;
    own(f, c, "GET", "/api/v1/session", NULL, 200, &r);
    const char *t = json_string_value(jp(r.json, "tenant"));
    if (!t || strcmp(t, ME->name) != 0) fail_msg("tenant %s: session says %s", ME->name, r.body);
    const char *u = json_string_value(jp(r.json, "user"));
    if (c->session ? !u || strcmp(u, ME->user) != 0 : !json_is_null(jp(r.json, "user")))
        fail_msg("tenant %s: session says %s", ME->name, r.body);
    resp_release(&r);
    f->crossed++;
}

static void login(struct fx *f, struct side *s);

/* POST /logout ends the caller's own session only. */
static void case_logout(struct fx *f, const struct caller *c)
{
    own_ok(f, c, "POST", "/api/v1/logout", "{}", 200);
    /* the other tenant's session lives on */
    struct caller other = {.me = THEM, .them = ME, .session = 1};
    own_ok(f, &other, "GET", "/api/v1/session", NULL, 200);
    f->crossed++;
    if (c->session) {
        struct resp r;
        call(f, c, "GET", "/api/v1/session", NULL, &r);
        assert_int_equal(r.status, 401);
        resp_release(&r);
        login(f, ME);
    }
}

static int64_t add_conflict(struct fx *f, int64_t conn);

/* GET /conflicts: only the caller's own stores' conflicts; naming the
 * other's connection is 404. */
static void case_list_conflicts(struct fx *f, const struct caller *c)
{
    struct resp r;
    own(f, c, "GET", "/api/v1/conflicts?all=true", NULL, 200, &r);
    json_t *v;
    size_t i;
    int mine = 0;
    json_array_foreach(jp(r.json, "conflicts"), i, v)
    {
        int64_t conn = json_integer_value(json_object_get(v, "connection"));
        if (tenant_of(f, conn) != ME->tenant)
            fail_msg("tenant %s sees a conflict of another tenant: %s", ME->name, r.body);
        mine += json_integer_value(json_object_get(v, "id")) == ME->conflict;
    }
    assert_int_equal(mine, 1);
    resp_release(&r);
    /* a limit counts the caller's conflicts, not the other tenant's newer ones */
    own(f, c, "GET", "/api/v1/conflicts?all=true&limit=1", NULL, 200, &r);
    json_t *first = json_array_get(jp(r.json, "conflicts"), 0);
    if (json_array_size(jp(r.json, "conflicts")) != 1 ||
        tenant_of(f, json_integer_value(json_object_get(first, "connection"))) != ME->tenant)
        fail_msg("tenant %s, limit=1: want one of its own conflicts, got %s", ME->name, r.body);
    resp_release(&r);
    f->crossed++;
    char path[96];
    snprintf(path, sizeof path, "/api/v1/conflicts?connection=%lld", (long long)THEM->conn);
    cross(f, c, "GET", path, NULL);
    snprintf(path, sizeof path, "/api/v1/conflicts?connection=salla:%lld",
             (long long)THEM->store_id);
    cross(f, c, "GET", path, NULL);
    snprintf(path, sizeof path, "/api/v1/conflicts?connection=%lld", (long long)ME->conn);
    own_ok(f, c, "GET", path, NULL, 200);
}

static void case_get_conflict(struct fx *f, const struct caller *c)
{
    char path[96];
    snprintf(path, sizeof path, "/api/v1/conflicts/%lld", (long long)THEM->conflict);
    cross(f, c, "GET", path, NULL);
    snprintf(path, sizeof path, "/api/v1/conflicts/%lld", (long long)ME->conflict);
    own_ok(f, c, "GET", path, NULL, 200);
}

/* POST /conflicts/{id}/resolve: the other's is 404 and stays open; a new
 * one of the caller's own is resolved. */
static void case_resolve_conflict(struct fx *f, const struct caller *c)
{
    char path[96];
    snprintf(path, sizeof path, "/api/v1/conflicts/%lld/resolve", (long long)THEM->conflict);
    cross(f, c, "POST", path, "{}");
    struct store_conflict k;
    struct th_err err;
    must(store_conflict_get(f->store, THEM->conflict, &k, &err), &err);
    if (k.resolved_ms) fail_msg("tenant %s resolved tenant %s's conflict", ME->name, THEM->name);
    int64_t mine = add_conflict(f, ME->conn);
    snprintf(path, sizeof path, "/api/v1/conflicts/%lld/resolve", (long long)mine);
    own_ok(f, c, "POST", path, "{}", 200);
}

/* Every route of api.c's table, by method and pattern, and its case. */
static const struct route_case {
    const char *method, *pattern;
    void (*run)(struct fx *f, const struct caller *c);
} cases[] = {
    {"GET", "connections", case_list_connections},
    {"GET", "connections/*", case_get_connection},
    {"GET", "connections/*/settings", case_get_settings},
    {"PATCH", "connections/*/settings", case_patch_settings},
    {"GET", "orders", case_orders},
    {"POST", "orders/transfer", case_transfer},
    {"POST", "orders/retry", case_retry},
    {"GET", "orders/*/*", case_order},
    {"POST", "pulls", case_post_pulls},
    {"GET", "pulls/*", case_get_pull},
    {"GET", "reports/monthly", case_report},
    {"PUT", "connections/*/qoyod", case_put_qoyod},
    {"POST", "qoyod/check", case_qoyod_check},
    {"GET", "connect", case_get_connect},
    {"POST", "connect/*", case_post_connect},
    {"GET", "session", case_session},
    {"POST", "logout", case_logout},
    {"GET", "reconcile", case_reconcile},
    {"GET", "conflicts", case_list_conflicts},
    {"GET", "conflicts/*", case_get_conflict},
    {"POST", "conflicts/*/resolve", case_resolve_conflict},
};
#define NCASES (sizeof cases / sizeof cases[0])

/* ---------------------------------------------------------------------- */
/* Fixture                                                                  */

static void digest_hex(const char *t, char out[65])
{
    unsigned char d[32];
    unsigned int n = 0;
    assert_true(EVP_Digest(t, strlen(t), d, &n, EVP_sha256(), NULL) && n == 32);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void login(struct fx *f, struct side *s)
{
    char url[200], body[160];
    snprintf(url, sizeof url, "%.120s/api/v1/login", f->base);
    snprintf(body, sizeof body, "{\"user\":\"%s\",\"password\":\"" PW "\"}", s->user);
    struct resp r;
    http("POST", url, (const char *[]){"Content-Type: application/json", NULL}, body, &r);
    assert_int_equal(r.status, 200);
    assert_true(strncmp(r.cookie, "th_session=", 11) == 0);
    if (!json_string_value(jp(r.json, "tenant")) ||
        strcmp(json_string_value(jp(r.json, "tenant")), s->name) != 0)
        fail_msg("login of %s: want tenant %s: %s", s->user, s->name, r.body);
    snprintf(s->cookie, sizeof s->cookie, "Cookie: %.110s", r.cookie);
    snprintf(s->csrf, sizeof s->csrf, "X-CSRF-Token: %s",
             json_string_value(jp(r.json, "csrf_token")));
    resp_release(&r);
}

static void add_order(struct fx *f, int64_t conn, int64_t id, enum store_xfer x, int64_t created)
{
    struct store_order o = {.conn_id = conn,
                            .order_id = id,
                            .status = MODEL_STATUS_NEW,
                            .xfer = x,
                            .total = 11500,
                            .created_at = created,
                            .updated_at = created};
    o.number = xasprintf("N%lld", (long long)id);
    if (x == STORE_XFER_FAILED) {
        o.reason_code = TH_EPERM;
        o.reason = xstrdup("item has no SKU");
    }
    struct th_err err;
    must(store_order_put(f->store, &o, &err), &err);
    must(store_order_note(f->store, conn, id, "received", "webhook", &err), &err);
    store_order_release(&o);
}

/* An open field conflict (worker/fields.c) of connection conn; its id. */
static int64_t add_conflict(struct fx *f, int64_t conn)
{
    struct store_conflict k = {.conn_id = conn, .sku = "MUG-001", .field = STORE_FIELD_PRICE,
                               .store_value = "3900", .qoyod_value = "4100",
                               .last_store = "3500", .last_qoyod = "3500",
                               .winner = STORE_SRC_STORE};
    struct th_err err;
    must(store_conflict_add(f->store, &k, &err), &err);
    return k.id;
}

/* A tenant with a store on the emulator, two orders, a conflict, a token
 * and a user. */
static void side_make(struct fx *f, struct side *s, const char *name, int64_t store_id,
                      int64_t first_order)
{
    struct th_err err;
    s->name = name;
    s->store_id = store_id;
    must(store_tenant_add(f->store, name, &s->tenant, &err), &err);
    char url[200], body[64];
    snprintf(url, sizeof url, "%s/_sim/salla/install", sim_base_url(f->salla));
    snprintf(body, sizeof body, "{\"store_id\":%lld}", (long long)store_id);
    struct resp r;
    http("POST", url, (const char *[]){"Content-Type: application/json", NULL}, body, &r);
    assert_int_equal(r.status, 200);
    struct store_conn c = {.platform = MODEL_PLATFORM_SALLA,
                           .store_id = store_id,
                           .tenant_id = s->tenant,
                           .trigger = MODEL_STATUS_NEW,
                           .customer_per_invoice = 1,
                           .number_by_order = 1,
                           .inventory_id = f->inventory,
                           .connected_at = 1767225600};
    c.name = xasprintf("Shop %s", name);
    c.access_token = xstrdup(json_string_value(jp(r.json, "access_token")));
    resp_release(&r);
    c.api_base = xasprintf("%s/admin/v2", sim_base_url(f->salla));
    c.qoyod_base = xasprintf("%s/2.0", sim_base_url(f->qoyod));
    c.qoyod_api_key = xstrdup(QKEY);
    c.webhook_secret = xstrdup("whsec-tenants");
    c.webhook_strategy = xstrdup("signature");
    c.status = xstrdup("active");
    must(store_conn_put(f->store, &c, &err), &err);
    s->conn = c.id;
    store_conn_release(&c);
    s->failed_order = first_order;
    s->waiting_order = first_order + 1;
    add_order(f, s->conn, s->failed_order, STORE_XFER_FAILED, 1767225600 + 86400);
    add_order(f, s->conn, s->waiting_order, STORE_XFER_NOT_TRANSFERRED, 1767225600 + 2 * 86400);
    s->conflict = add_conflict(f, s->conn);
    snprintf(s->token, sizeof s->token, "tht_%s_token_0123456789abcdef", name);
    char hex[65];
    digest_hex(s->token, hex);
    int64_t tid;
    must(store_token_add(f->store, s->tenant, hex, name, &tid, &err), &err);
    snprintf(s->user, sizeof s->user, "%s-admin", name);
    char h[PASSWD_HASH_MAX];
    must(passwd_hash(PW, 10, h, sizeof h, &err), &err);
    must(store_user_put_in(f->store, s->user, h, s->tenant, &err), &err);
}

static int setup(void **state)
{
    struct fx *f = xcalloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/th_tenantsXXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char *db = xasprintf("sqlite:%s/t.db", f->dir);
    struct th_err err;
    must(store_open(&f->store, db, &err), &err);
    free(db);
    f->salla = tt_sim_start(&salla_sim_ops, (const char *[]){"rate-limit-plan", "off", NULL});
    f->qoyod = tt_sim_start(&qoyod_sim_ops, (const char *[]){"api-key", QKEY, NULL});
    /* the first inventory location the Qoyod emulator has */
    struct tt_resp tr;
    tt_http("GET", tt_url(f->qoyod, "/2.0/inventories"),
            (const char *[]){"API-KEY: " QKEY, NULL}, NULL, &tr);
    assert_int_equal(tr.status, 200);
    f->inventory = json_integer_value(jp(tr.json, "inventories.0.id"));
    assert_true(f->inventory > 0);
    tt_resp_release(&tr);
    side_make(f, &f->a, "alpha", 100, 5001);
    side_make(f, &f->b, "beta", 200, 6001);

    char *qb = xasprintf("%s/2.0", sim_base_url(f->qoyod));
    char *tokens = xasprintf("%s/tokens", f->dir);
    FILE *fp = fopen(tokens, "w");
    assert_non_null(fp);
    fputs(OP_TOKEN "\n", fp);
    fclose(fp);
    static char oauth[96], api_base[128], qbase[128];
    snprintf(oauth, sizeof oauth, "%s", sim_base_url(f->salla));
    snprintf(api_base, sizeof api_base, "%s/admin/v2", sim_base_url(f->salla));
    snprintf(qbase, sizeof qbase, "%s", qb);
    struct connect_config kc = {.store = f->store,
                                .public_url = f->public_url,
                                .qoyod_base = qbase,
                                .salla = {.client_id = "demo-client",
                                          .client_secret = "demo-secret",
                                          .oauth_base = oauth,
                                          .api_base = api_base,
                                          .webhook_secret = "whsec-tenants"}};
    f->connect = connect_new(&kc);
    struct api_config ac = {
        .store = f->store, .token_file = tokens, .qoyod_base = qbase, .connect = f->connect};
    must(api_open(&f->api, &ac, &err), &err);
    free(tokens);
    free(qb);
    struct server_config sc = {.listen = "127.0.0.1:0",
                               .store = f->store,
                               .api = f->api,
                               .connect = f->connect,
                               .threads = 4};
    must(server_open(&f->srv, &sc, &err), &err);
    snprintf(f->base, sizeof f->base, "http://127.0.0.1:%u", server_port(f->srv));
    snprintf(f->public_url, sizeof f->public_url, "%s", f->base);
    login(f, &f->a);
    login(f, &f->b);
    /* a pull per tenant, each by its own token, finished before the checks */
    struct side *sides[2] = {&f->a, &f->b};
    for (int i = 0; i < 2; i++) {
        struct caller c = {.me = sides[i], .them = sides[1 - i]};
        char body[160];
        snprintf(body, sizeof body,
                 "{\"connection\":%lld,\"from\":\"2023-11-01\",\"to\":\"2023-11-02\"}",
                 (long long)sides[i]->conn);
        struct resp r;
        call(f, &c, "POST", "/api/v1/pulls", body, &r);
        assert_int_equal(r.status, 202);
        sides[i]->pull = json_integer_value(jp(r.json, "id"));
        resp_release(&r);
        pull_wait(f, &c, sides[i]->pull);
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    server_close(f->srv);
    api_close(f->api);
    connect_free(f->connect);
    tt_sim_stop(f->salla);
    tt_sim_stop(f->qoyod);
    store_close(f->store);
    char *cmd = xasprintf("rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(f);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Tests                                                                    */

/* Every route in the table has a case, and every case a route: a route
 * added without its cross-tenant case fails here. */
static void test_every_route_has_a_case(void **state)
{
    (void)state;
    size_t n = api_route_count();
    assert_true(n > 0);
    for (size_t i = 0; i < n; i++) {
        const char *m, *p;
        assert_int_equal(api_route_at(i, &m, &p), 0);
        int found = 0;
        for (size_t k = 0; k < NCASES; k++)
            found |= !strcmp(cases[k].method, m) && !strcmp(cases[k].pattern, p);
        if (!found)
            fail_msg("route %s /api/v1/%s has no tenant-isolation case in %s: add one (the "
                     "other tenant's ids must get 404 and change nothing)",
                     m, p, __FILE__);
    }
    for (size_t k = 0; k < NCASES; k++) {
        int found = 0;
        for (size_t i = 0; i < n; i++) {
            const char *m, *p;
            assert_int_equal(api_route_at(i, &m, &p), 0);
            found |= !strcmp(cases[k].method, m) && !strcmp(cases[k].pattern, p);
        }
        if (!found) fail_msg("case %s %s names no route", cases[k].method, cases[k].pattern);
    }
    const char *m, *p;
    assert_int_equal(api_route_at(n, &m, &p), -1);
}

/* Each tenant's token and session against every route. */
static void test_tenants_are_isolated(void **state)
{
    struct fx *f = *state;
    struct caller callers[] = {{&f->a, &f->b, 0}, {&f->a, &f->b, 1}, {&f->b, &f->a, 0},
                               {&f->b, &f->a, 1}};
    size_t n = api_route_count();
    for (size_t i = 0; i < n; i++) {
        const char *m, *p;
        assert_int_equal(api_route_at(i, &m, &p), 0);
        for (size_t k = 0; k < NCASES; k++)
            if (!strcmp(cases[k].method, m) && !strcmp(cases[k].pattern, p))
                for (size_t ci = 0; ci < sizeof callers / sizeof callers[0]; ci++)
                    cases[k].run(f, &callers[ci]);
    }
    printf("tenant isolation: %zu routes x 4 callers (2 tenants x token, session): %d requests "
           "with the other tenant's ids or listings checked, %d with their own\n",
           n, f->crossed, f->owned);
}

/* The operator's token (serve's --api-token-file) sees every tenant; an
 * unknown or revoked tenant token is refused. */
static void test_operator_and_revoked_tokens(void **state)
{
    struct fx *f = *state;
    struct side op = {.name = "operator"};
    snprintf(op.token, sizeof op.token, "%s", OP_TOKEN);
    struct caller c = {.me = &op, .them = &f->a};
    struct resp r;
    call(f, &c, "GET", "/api/v1/connections", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(jp(r.json, "connections")), 2);
    resp_release(&r);
    call(f, &c, "GET", "/api/v1/orders", NULL, &r);
    assert_int_equal(json_array_size(jp(r.json, "orders")), 4);
    resp_release(&r);
    call(f, &c, "GET", "/api/v1/session", NULL, &r);
    assert_true(json_is_null(jp(r.json, "tenant")));
    resp_release(&r);
    /* revoke alpha's token: refused at once, beta's still works */
    struct caller a = {.me = &f->a, .them = &f->b};
    struct th_err err;
    must(store_token_revoke(f->store, 1, &err), &err);
    call(f, &a, "GET", "/api/v1/connections", NULL, &r);
    assert_int_equal(r.status, 401);
    resp_release(&r);
    struct caller b = {.me = &f->b, .them = &f->a};
    call(f, &b, "GET", "/api/v1/connections", NULL, &r);
    assert_int_equal(r.status, 200);
    resp_release(&r);
    /* moving a user to another tenant takes effect on its next request
     * (with the same password hash: a new password would end the session,
     * test_api's test_session_ends_with_new_password_or_removal) */
    char *h = NULL;
    int64_t was = 0;
    must(store_user_get_in(f->store, f->a.user, &h, &was, &err), &err);
    assert_int_equal(was, f->a.tenant);
    must(store_user_put_in(f->store, f->a.user, h, f->b.tenant, &err), &err);
    free(h);
    struct caller as = {.me = &f->a, .them = &f->b, .session = 1};
    call(f, &as, "GET", "/api/v1/connections", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_integer_value(jp(r.json, "connections.0.id")), f->b.conn);
    assert_int_equal(json_array_size(jp(r.json, "connections")), 1);
    resp_release(&r);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_route_has_a_case),
        cmocka_unit_test_setup_teardown(test_tenants_are_isolated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_operator_and_revoked_tokens, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
