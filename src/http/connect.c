/*
 * connect — the dashboard's OAuth flow (see connect.h).
 *
 * Order of a connection, as `tarheel connect --oauth` does it from the
 * terminal (cli.c), so both leave the same connection behind:
 *   1. POST /api/v1/connect/<platform> (logged in): a state is made and
 *      remembered with the Qoyod key and location; the answer is the
 *      platform's authorize URL, with redirect_uri <public_url>/oauth/
 *      <platform>/callback;
 *   2. the merchant approves; the platform redirects the browser to the
 *      callback with code and state;
 *   3. the state is looked up and forgotten (used once; unknown or expired:
 *      refused), the code traded for tokens, the store asked for its id;
 *   4. the connection is saved (Zid: a fresh Basic credential for its
 *      webhooks), then the webhooks registered (Zid);
 *   5. the browser goes back to the dashboard, which says what happened.
 * The callback needs no session: the state, 128 random bits made in step 1
 * for a logged-in user, is what ties the redirect to that request.
 */
#include "http/connect.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/xmalloc.h"
#include "net/httpc.h"
#include "platform/platform.h"

struct pending {
    char state[33];
    enum model_platform platform;
    char *qoyod_key;
    int64_t inventory;
    int64_t tenant; /* where the store goes; 0: the operator's call */
    time_t at;
};

struct connect {
    struct connect_config cfg;
    pthread_mutex_t mu;
    struct pending p[CONNECT_PENDING_MAX];
};

struct connect *connect_new(const struct connect_config *cfg)
{
    struct connect *k = xcalloc(1, sizeof *k);
    k->cfg = *cfg;
    pthread_mutex_init(&k->mu, NULL);
    return k;
}

static void pending_clear(struct pending *p)
{
    free(p->qoyod_key);
    memset(p, 0, sizeof *p);
}

void connect_free(struct connect *k)
{
    if (!k) return;
    for (size_t i = 0; i < CONNECT_PENDING_MAX; i++)
        pending_clear(&k->p[i]);
    pthread_mutex_destroy(&k->mu);
    free(k);
}

static const struct connect_app *app_of(const struct connect *k, enum model_platform p)
{
    return p == MODEL_PLATFORM_ZID ? &k->cfg.zid : p == MODEL_PLATFORM_SALLA ? &k->cfg.salla : NULL;
}

int connect_ready(const struct connect *k, enum model_platform p)
{
    const struct connect_app *a = k ? app_of(k, p) : NULL;
    return a && a->client_id && *a->client_id && a->client_secret && *a->client_secret &&
           k->cfg.public_url && *k->cfg.public_url;
}

/* The adapter's app description with serve's client and URLs. The strings
 * live in bufs (4 x 512). */
static void platform_app_of(const struct connect *k, const struct platform_ops *ops,
                            struct platform_app *app, char bufs[4][512])
{
    const struct connect_app *a = app_of(k, ops->platform);
    const char *base = a->oauth_base && *a->oauth_base ? a->oauth_base : ops->oauth_base;
    snprintf(bufs[0], 512, "%s%s", base, ops->auth_path);
    snprintf(bufs[1], 512, "%s%s", base, ops->token_path);
    snprintf(bufs[2], 512, "%s%s", base, ops->userinfo_path ? ops->userinfo_path : "");
    snprintf(bufs[3], 512, "%s/oauth/%s/callback", k->cfg.public_url, ops->name);
    *app = (struct platform_app){.client_id = a->client_id,
                                 .client_secret = a->client_secret,
                                 .auth_url = bufs[0],
                                 .token_url = bufs[1],
                                 .userinfo_url = ops->userinfo_path ? bufs[2] : NULL,
                                 .redirect_uri = bufs[3]};
}

static void random_hex(char *out, size_t bytes)
{
    unsigned char b[32];
    if (bytes > sizeof b || RAND_bytes(b, (int)bytes) != 1) TH_BUG("RAND_bytes failed");
    for (size_t i = 0; i < bytes; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

int connect_start(struct connect *k, enum model_platform p, const char *qoyod_key,
                  int64_t inventory, char *url, size_t n, struct th_err *err)
{
    return connect_start_in(k, 0, p, qoyod_key, inventory, url, n, err);
}

int connect_start_in(struct connect *k, int64_t tenant, enum model_platform p,
                     const char *qoyod_key, int64_t inventory, char *url, size_t n,
                     struct th_err *err)
{
    const struct platform_ops *ops = platform_by_id(p);
    if (!ops || !ops->authorize_url || !ops->oauth_exchange || !ops->whoami)
        return th_err_set(err, TH_ECONFIG, "%s stores cannot be connected by OAuth here",
                          ops ? ops->name : "these");
    if (!connect_ready(k, p))
        return th_err_set(err, TH_ECONFIG,
                          "this tarheel has no %s app to connect with: start `tarheel serve` with "
                          "--%s-client-id ID --%s-client-secret S and --public-url URL (the "
                          "address %s and the browser reach it at)",
                          ops->name, ops->name, ops->name, ops->name);
    struct platform_app app;
    char bufs[4][512];
    platform_app_of(k, ops, &app, bufs);
    char state[33];
    random_hex(state, 16);
    int rc = ops->authorize_url(&app, state, url, n, err);
    if (rc) return rc;
    pthread_mutex_lock(&k->mu);
    struct pending *slot = &k->p[0];
    time_t now = time(NULL);
    for (size_t i = 0; i < CONNECT_PENDING_MAX; i++) {
        struct pending *q = &k->p[i];
        if (!q->state[0] || now - q->at >= CONNECT_STATE_TTL_S) {
            slot = q;
            break;
        }
        if (q->at < slot->at) slot = q;
    }
    pending_clear(slot);
    memcpy(slot->state, state, sizeof slot->state);
    slot->platform = p;
    slot->qoyod_key = qoyod_key && *qoyod_key ? xstrdup(qoyod_key) : NULL;
    slot->inventory = inventory > 0 ? inventory : 0;
    slot->tenant = tenant > 0 ? tenant : 0;
    slot->at = now;
    pthread_mutex_unlock(&k->mu);
    log_info("connect_started", "platform=%s", ops->name);
    return 0;
}

int connect_is_route(const char *path)
{
    return strncmp(path, "/oauth/", 7) == 0;
}

/* Takes the pending authorization of state for platform p into *out (the
 * caller frees out->qoyod_key). Returns 1, or 0 when unknown or expired. */
static int take(struct connect *k, enum model_platform p, const char *state, struct pending *out)
{
    int found = 0;
    time_t now = time(NULL);
    pthread_mutex_lock(&k->mu);
    for (size_t i = 0; i < CONNECT_PENDING_MAX && !found; i++) {
        struct pending *q = &k->p[i];
        if (!q->state[0] || !platform_secure_eq(q->state, state)) continue;
        if (q->platform == p && now - q->at < CONNECT_STATE_TTL_S) {
            *out = *q;
            q->qoyod_key = NULL;
            found = 1;
        }
        pending_clear(q); /* used once, whatever happens next */
    }
    pthread_mutex_unlock(&k->mu);
    return found;
}

static void go(struct httpd_resp *resp, const char *fragment_fmt, const char *a, long long b)
{
    char loc[600];
    snprintf(loc, sizeof loc, fragment_fmt, a, b);
    httpd_resp_text(resp, 303, "back to the dashboard\n");
    httpd_resp_header(resp, "Location", loc);
    httpd_resp_header(resp, "Cache-Control", "no-store");
    httpd_resp_header(resp, "Referrer-Policy", "no-referrer");
}

/* "/#/connect/failed/<reason>", the reason percent-encoded. */
static void go_failed(struct httpd_resp *resp, const char *reason)
{
    char enc[400];
    size_t o = 0;
    for (const unsigned char *c = (const unsigned char *)reason; *c && o + 4 < sizeof enc; c++) {
        if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
            strchr("-._~", *c))
            enc[o++] = (char)*c;
        else
            o += (size_t)snprintf(enc + o, 4, "%%%02X", *c);
    }
    enc[o] = '\0';
    go(resp, "/#/connect/failed/%s%.0lld", enc, 0);
}

/* Step 4: the connection, new or updated. */
static int save(struct connect *k, const struct platform_ops *ops, const struct pending *pd,
                int64_t store_id, const char *name, const struct platform_tokens *tok,
                struct store_conn *c, struct th_err *err)
{
    const struct connect_app *a = app_of(k, ops->platform);
    int known = store_conn_find(k->cfg.store, ops->platform, store_id, c, err) == 0;
    if (known && pd->tenant && c->tenant_id != pd->tenant)
        /* The merchant just proved the store is theirs, so saying it is
         * connected elsewhere tells them nothing new; moving it is the
         * operator's decision (`tarheel connect ... --tenant`). */
        return th_err_set(err, TH_ECONFLICT,
                          "this %s store is connected to this tarheel under another account; "
                          "ask the operator to move it",
                          ops->name);
    if (!known) {
        *c = (struct store_conn){.platform = ops->platform,
                                 .store_id = store_id,
                                 .trigger = MODEL_STATUS_NEW,
                                 .customer_per_invoice = 1,
                                 .number_by_order = 1,
                                 .financial_invoice = 1,
                                 .inventory_id = 1,
                                 .connected_at = time(NULL)};
        c->qoyod_base = xstrdup(k->cfg.qoyod_base ? k->cfg.qoyod_base : "");
    }
#define SET(field, value)                                                                          \
    do {                                                                                           \
        free(c->field);                                                                            \
        c->field = xstrdup(value);                                                                 \
    } while (0)
    if (name && *name) SET(name, name);
    SET(access_token, tok->access_token);
    SET(refresh_token, tok->refresh_token);
    if (tok->manager_token[0]) SET(manager_token, tok->manager_token);
    c->token_expires_at = tok->expires_at;
    if (!c->webhook_secret) {
        if (ops->needs_url_token) {
            char hex[33];
            random_hex(hex, 16);
            c->webhook_secret = xasprintf("tarheel:%s", hex);
        } else if (a->webhook_secret) {
            c->webhook_secret = xstrdup(a->webhook_secret);
        }
    }
    if (!c->webhook_strategy) c->webhook_strategy = xstrdup(ops->webhook_strategy);
    if (!c->api_base) c->api_base = xstrdup(a->api_base && *a->api_base ? a->api_base : ops->api_base);
    if (pd->qoyod_key) SET(qoyod_api_key, pd->qoyod_key);
    if (pd->inventory) c->inventory_id = pd->inventory;
    SET(status, "active");
#undef SET
    c->tenant_id = pd->tenant; /* 0: a known store keeps its tenant, a new one gets the default */
    if (!c->webhook_secret)
        return th_err_set(err, TH_ECONFIG,
                          "no webhook secret for this %s store: start serve with "
                          "--%s-webhook-secret",
                          ops->name, ops->name);
    return store_conn_put(k->cfg.store, c, err);
}

void connect_callback(struct connect *k, const struct httpd_req *req, struct httpd_resp *resp)
{
    /* /oauth/<platform>/callback */
    const char *path = httpd_req_path(req);
    char pname[32] = "";
    const char *slash = strchr(path + 7, '/');
    if (slash && strcmp(slash, "/callback") == 0 && (size_t)(slash - (path + 7)) < sizeof pname)
        snprintf(pname, sizeof pname, "%.*s", (int)(slash - (path + 7)), path + 7);
    const struct platform_ops *ops = pname[0] ? platform_by_name(pname) : NULL;
    if (!k || !ops || strcmp(httpd_req_method(req), "GET") != 0) {
        httpd_resp_text(resp, 404, "no such OAuth callback\n");
        return;
    }
    const char *code = httpd_req_arg(req, "code"), *state = httpd_req_arg(req, "state");
    const char *denied = httpd_req_arg(req, "error");
    struct pending pd = {0};
    if (!state || !take(k, ops->platform, state, &pd)) {
        log_warn("connect_refused", "platform=%s reason=state", ops->name);
        go_failed(resp, "this link is stale or was not made by this tarheel: start again");
        return;
    }
    if (denied || !code || !*code) {
        log_info("connect_denied", "platform=%s", ops->name);
        go_failed(resp, denied ? "the store did not authorize the app" : "no code came back");
        free(pd.qoyod_key);
        return;
    }
    struct platform_app app;
    char bufs[4][512];
    platform_app_of(k, ops, &app, bufs);
    const struct connect_app *a = app_of(k, ops->platform);
    struct httpc *hc = httpc_new(NULL);
    struct platform_tokens tok;
    struct th_err err = {0};
    struct store_conn c = {0};
    int64_t store_id = 0;
    char name[256] = "";
    int rc = ops->oauth_exchange(hc, &app, code, &tok, &err);
    if (!rc)
        rc = ops->whoami(hc, &app, a->api_base && *a->api_base ? a->api_base : ops->api_base,
                         &tok, &store_id, name, sizeof name, &err);
    if (!rc) rc = save(k, ops, &pd, store_id, name, &tok, &c, &err);
    int hooks = 0;
    if (!rc && ops->webhooks_register) {
        char token[33];
        platform_url_token(c.webhook_secret, c.store_id, token);
        char *url = xasprintf("%s/webhooks/%s/%s", k->cfg.public_url, ops->name, token);
        struct platform_conn pc = {.store_id = c.store_id,
                                   .api_base = c.api_base,
                                   .access_token = c.access_token,
                                   .manager_token = c.manager_token};
        rc = ops->webhooks_register(hc, &pc, url, c.webhook_secret, &err);
        hooks = rc == 0;
        free(url);
    }
    httpc_free(hc);
    OPENSSL_cleanse(&tok, sizeof tok);
    free(pd.qoyod_key);
    if (rc) {
        log_warn("connect_failed", "platform=%s store=%lld code=%s msg=\"%s\"", ops->name,
                 (long long)store_id, th_err_name(rc), err.msg);
        go_failed(resp, err.msg);
    } else {
        log_info("connect_done", "platform=%s store=%lld conn=%lld webhooks=%d", ops->name,
                 (long long)store_id, (long long)c.id, hooks);
        go(resp, "/#/connect/done/%s/%lld", ops->name, (long long)store_id);
    }
    store_conn_release(&c);
}
