/*
 * server — routes and webhook intake (see server.h).
 *
 * Intake steps, in this order (crash tests kill the daemon between them):
 *   1. find the platform from the path; parse the event (not trusted yet:
 *      only its store id is used before step 2);
 *   2. verify with the store's configured strategy and secret (the app's
 *      when the store is not connected yet) — never the strategy the request
 *      claims;
 *   3. answer 400 if the event did not parse;
 *   4. for an Easy Mode authorize, store the tokens (creating the connection);
 *      for an uninstall, mark the connection disconnected;
 *   5. commit raw body + dedupe key + job in one transaction: queued for the
 *      store's group commit with the request set aside (httpd_req_suspend),
 *      so the HTTP thread serves other deliveries while the fsync runs;
 *   6. once the commit is over, the request is resumed and answered 200 (or
 *      503 when step 4 or 5 could not commit).
 * Parsing once, before verifying, costs nothing extra for a bad delivery
 * (its store id had to be read anyway) and saves a second JSON parse for
 * every good one; a body whose event does not parse still gets 401 before
 * 400, as before.
 */
#include "http/server.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/crash.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "http/connect.h"
#include "http/web.h"
#include "net/httpd.h"
#include "platform/platform.h"

/* Connections seen recently, so that verifying a delivery does not wait for
 * the database while a group commit holds it. An entry lives CACHE_TTL_S
 * seconds: a changed webhook secret takes effect within that time. Entries
 * are replaced on authorize/uninstall, which write the connection. */
#define CACHE_SLOTS 256
#define CACHE_TTL_S 5

struct cached_conn {
    enum model_platform platform;
    int64_t store_id;
    int64_t conn_id;
    time_t loaded;
    char strategy[16];
    char secret[256];
};

struct server {
    struct server_config cfg;
    struct httpd *httpd;
    pthread_mutex_t cache_lock;
    struct cached_conn cache[CACHE_SLOTS];
    atomic_long pending; /* deliveries set aside for a commit; server_close waits for 0 */
    atomic_int closing;  /* server_close started: set nothing aside any more */
};

/* A delivery set aside while its commit runs (the request's httpd ctx,
 * freed by httpd when the request ends). */
struct pending {
    struct server *s;
    const struct httpd_req *req;
    const char *platform; /* platform_ops.name (static) */
    int64_t store_id, order_id;
    char event[64];
    char key[72];
    int loud; /* log the acceptance at info (slow path) rather than debug */
    int rc, duplicate;
    struct th_err err;
    char body[]; /* a redacted copy of the body, when one is stored instead */
};

/* Copies body into out (len + 1 bytes) with every occurrence of each
 * non-empty secret replaced by 'x's of the same length, so the stored event
 * keeps its shape and no token. Returns out. */
static char *redact(const char *body, size_t len, const char *const *secrets, size_t n, char *out)
{
    memcpy(out, body, len);
    out[len] = '\0';
    for (size_t i = 0; i < n; i++) {
        size_t sl = secrets[i] ? strlen(secrets[i]) : 0;
        if (sl < 8) continue; /* nothing that short is a token */
        for (char *at = out; (at = memmem(at, len - (size_t)(at - out), secrets[i], sl)) != NULL;
             at += sl)
            memset(at, 'x', sl);
    }
    return out;
}

static struct cached_conn *slot(struct server *s, enum model_platform p, int64_t store_id)
{
    uint64_t h = (uint64_t)store_id * 0x9e3779b97f4a7c15ULL + (uint64_t)p;
    return &s->cache[(h >> 32) % CACHE_SLOTS];
}

/* Copies a fresh cache entry into *out; returns 1 on a hit. */
static int cache_get(struct server *s, enum model_platform p, int64_t store_id,
                     struct cached_conn *out)
{
    pthread_mutex_lock(&s->cache_lock);
    struct cached_conn *e = slot(s, p, store_id);
    int hit = e->conn_id && e->platform == p && e->store_id == store_id &&
              time(NULL) - e->loaded < CACHE_TTL_S;
    if (hit) *out = *e;
    pthread_mutex_unlock(&s->cache_lock);
    return hit;
}

static void cache_put(struct server *s, const struct store_conn *c)
{
    pthread_mutex_lock(&s->cache_lock);
    struct cached_conn *e = slot(s, c->platform, c->store_id);
    memset(e, 0, sizeof *e);
    /* Secrets too long for the slot are simply not cached. */
    if (c->webhook_secret && strlen(c->webhook_secret) < sizeof e->secret &&
        (!c->webhook_strategy || strlen(c->webhook_strategy) < sizeof e->strategy) && c->status &&
        strcmp(c->status, "active") == 0) {
        e->platform = c->platform;
        e->store_id = c->store_id;
        e->conn_id = c->id;
        e->loaded = time(NULL);
        snprintf(e->strategy, sizeof e->strategy, "%s",
                 c->webhook_strategy ? c->webhook_strategy : "signature");
        snprintf(e->secret, sizeof e->secret, "%s", c->webhook_secret);
    }
    pthread_mutex_unlock(&s->cache_lock);
}

static void reply(struct httpd_resp *resp, int status, const char *code, const char *msg)
{
    struct buf b;
    buf_init(&b, 0);
    /* msg comes from our own error text; quote characters are escaped. */
    if (buf_printf(&b, "{\"ok\":%s,\"code\":\"%s\",\"message\":\"", status < 300 ? "true" : "false",
                   code))
        TH_BUG("uncapped buffer");
    for (const char *p = msg; p && *p; p++) {
        int rc = (*p == '"' || *p == '\\') ? buf_printf(&b, "\\%c", *p)
                 : ((unsigned char)*p < 0x20) ? buf_puts(&b, " ")
                                              : buf_append(&b, p, 1);
        if (rc) TH_BUG("uncapped buffer");
    }
    if (buf_puts(&b, "\"}")) TH_BUG("uncapped buffer");
    httpd_resp_set(resp, status, "application/json", b.data, b.len);
    buf_release(&b);
}

/* The 503 for a delivery the store could not commit. Its body is read by the
 * platform's retry logic and by whoever looks at the platform's webhook log,
 * so it says that nothing was kept and that the same delivery must come
 * again (the operator's details, with the database path, go to our log). */
static void reply_unstored(struct httpd_resp *resp, int rc, const char *what)
{
    char msg[256];
    snprintf(msg, sizeof msg,
             "tarheel could not store %s because %s, so nothing was kept: deliver it again "
             "later (it is accepted as soon as %s)",
             what, rc == TH_EDISKFULL ? "its disk is full" : "its database is unavailable",
             rc == TH_EDISKFULL ? "space is freed" : "the database is back");
    reply(resp, 503, th_err_name(rc), msg);
}

static const char *req_header(void *arg, const char *name)
{
    return httpd_req_header(arg, name);
}

static const struct server_app *app_for(const struct server *s, enum model_platform p)
{
    return p == MODEL_PLATFORM_ZID ? &s->cfg.zid : &s->cfg.salla;
}

/* For platforms that do not sign deliveries: the store's URL token, in
 * constant time. 1 when it matches. */
static int url_token_ok(const char *secret, int64_t store_id, const char *token)
{
    char want[33];
    platform_url_token(secret, store_id, want);
    return token && platform_secure_eq(token, want);
}

/* Step 6: the answer once the commit is over. */
static void answer(const struct pending *pd, struct httpd_resp *resp)
{
    if (pd->rc) {
        log_error("intake_commit_failed", "platform=%s store=%lld code=%s msg=\"%s\"", pd->platform,
                  (long long)pd->store_id, th_err_name(pd->rc), pd->err.msg);
        reply_unstored(resp, pd->rc, "this event");
        return;
    }
    if (pd->loud)
        log_info("intake_accepted", "platform=%s store=%lld event=%s order=%lld duplicate=%d",
                 pd->platform, (long long)pd->store_id, pd->event, (long long)pd->order_id,
                 pd->duplicate);
    else
        log_debug("intake_accepted", "platform=%s store=%lld event=%s order=%lld duplicate=%d",
                  pd->platform, (long long)pd->store_id, pd->event, (long long)pd->order_id,
                  pd->duplicate);
    reply(resp, 200, pd->duplicate ? "duplicate" : "accepted", "");
}

/* The store's callback (on its committer thread): note the outcome and put
 * the request back; httpd then calls route() again, which answers. */
static void committed(void *arg, int rc, int duplicate, const struct th_err *err)
{
    struct pending *pd = arg;
    if (rc == 0 && !duplicate) th_crash_point("intake.committed");
    pd->rc = rc;
    pd->duplicate = duplicate;
    if (rc && err) pd->err = *err;
    struct server *s = pd->s; /* pd may be freed as soon as the request resumes */
    httpd_req_resume(pd->req);
    atomic_fetch_sub(&s->pending, 1);
}

/* Step 5: commits the event for connection conn_id, and answers (or has the
 * request answered after the commit, see committed()). */
static void commit_event(struct server *s, const struct platform_ops *p,
                         const struct httpd_req *req, int64_t conn_id, int64_t store_id,
                         const struct platform_event *ev, int loud, struct httpd_resp *resp)
{
    size_t len;
    const char *body = httpd_req_body(req, &len);
    int64_t order_id = ev->kind == PLATFORM_EV_ORDER ? ev->order_id : 0;
    /* An authorization carries the store's tokens: the raw event is kept
     * for the record, but the tokens only sealed, in the connection. */
    int secret = ev->kind == PLATFORM_EV_AUTHORIZE;
    struct pending *pd = xcalloc(1, sizeof *pd + (secret ? len + 1 : 0));
    if (secret) {
        const char *const tokens[] = {ev->access_token, ev->refresh_token};
        body = redact(body, len, tokens, 2, pd->body);
    }
    pd->s = s;
    pd->req = req;
    pd->platform = p->name;
    pd->store_id = store_id;
    pd->order_id = ev->order_id;
    pd->loud = loud;
    snprintf(pd->event, sizeof pd->event, "%s", ev->name);
    snprintf(pd->key, sizeof pd->key, "%s", ev->dedupe_key);
    httpd_req_set_ctx(req, pd, free);
    /* Counted before closing is read, and server_close sets closing before
     * it reads the count (both sequentially consistent): either this sees
     * closing, or server_close waits for this request. */
    atomic_fetch_add(&s->pending, 1);
    if (!atomic_load(&s->closing) && httpd_req_suspend(req) == 0) {
        int rc = store_event_ingest_async(s->cfg.store, conn_id, pd->key, pd->event, order_id, body,
                                          len, committed, pd, &pd->err);
        if (rc) committed(pd, rc, 0, NULL); /* refused: answered at once, as a failed commit */
        return;
    }
    atomic_fetch_sub(&s->pending, 1);
    /* This server cannot set requests aside (or is closing): wait here. */
    pd->rc = store_event_ingest(s->cfg.store, conn_id, pd->key, pd->event, order_id, body, len,
                                &pd->duplicate, &pd->err);
    answer(pd, resp);
}

/* The same steps as intake() for a cached connection, without reading the
 * connection. Returns 0 when the event needs the slow path (authorize,
 * uninstall), else 1 with resp filled (or the request set aside). prc and
 * perr are what parsing the event gave. */
static int fast_intake(struct server *s, const struct platform_ops *p, const struct httpd_req *req,
                       const struct cached_conn *cc, const char *token, int prc,
                       const struct platform_event *ev, const struct th_err *perr,
                       struct httpd_resp *resp)
{
    size_t len;
    const char *body = httpd_req_body(req, &len);
    struct th_err err = {0};
    if (p->needs_url_token && !url_token_ok(cc->secret, cc->store_id, token)) {
        log_warn("intake_rejected", "platform=%s store=%lld reason=url_token", p->name,
                 (long long)cc->store_id);
        reply(resp, 401, "TH_EAUTH", "this webhook URL is not the one registered for the store: "
                                     "register the webhooks again (tarheel connect)");
        return 1;
    }
    struct platform_auth auth = {.strategy = cc->strategy, .secret = cc->secret};
    int rc = p->verify(&auth, req_header, (void *)req, body, len, &err);
    if (rc) {
        log_warn("intake_rejected", "platform=%s store=%lld reason=auth", p->name,
                 (long long)cc->store_id);
        reply(resp, 401, th_err_name(rc), err.msg);
        return 1;
    }
    if (prc) {
        reply(resp, 400, th_err_name(prc), perr->msg);
        return 1;
    }
    if (ev->kind == PLATFORM_EV_AUTHORIZE || ev->kind == PLATFORM_EV_UNINSTALL) return 0;
    commit_event(s, p, req, cc->conn_id, cc->store_id, ev, 0, resp);
    return 1;
}

/* App events of a platform without signatures (Zid's install/uninstall)
 * come to /webhooks/<name>/<the app's own token>: an uninstall disconnects
 * the store; anything else is acknowledged and kept nowhere. */
static void app_event(struct server *s, const struct platform_ops *p, const char *body,
                      size_t len, struct httpd_resp *resp)
{
    struct platform_event ev;
    struct th_err err = {0};
    int rc = p->parse_event(body, len, &ev, &err);
    if (rc) {
        reply(resp, 400, th_err_name(rc), err.msg);
        return;
    }
    if (ev.kind == PLATFORM_EV_UNINSTALL) {
        struct store_conn c = {0};
        if (store_conn_find(s->cfg.store, p->platform, ev.store_id, &c, &err) == 0) {
            free(c.status);
            c.status = xstrdup("disconnected");
            rc = store_conn_put_tokens(s->cfg.store, &c, &err);
            if (rc) {
                reply_unstored(resp, rc, "this uninstall");
                store_conn_release(&c);
                return;
            }
            cache_put(s, &c);
            log_info("store_uninstalled", "platform=%s store=%lld conn=%lld", p->name,
                     (long long)ev.store_id, (long long)c.id);
        }
        store_conn_release(&c);
    }
    reply(resp, 200, "accepted", "");
}

static void intake(struct server *s, const struct platform_ops *p, const struct httpd_req *req,
                   const char *token, struct httpd_resp *resp)
{
    struct pending *pd = httpd_req_ctx(req);
    if (pd) {
        answer(pd, resp); /* resumed after its commit */
        return;
    }
    size_t len;
    const char *body = httpd_req_body(req, &len);
    struct th_err err = {0};
    const struct server_app *app0 = app_for(s, p->platform);
    if (p->needs_url_token && token && app0->webhook_secret && *app0->webhook_secret &&
        platform_secure_eq(token, app0->webhook_secret)) {
        app_event(s, p, body, len, resp);
        return;
    }
    struct th_err perr = {0};
    struct platform_event ev;
    int prc = p->parse_event(body, len, &ev, &perr);
    /* Both read the same field; peek_store also says why a body that does
     * not parse as an event has no store id. */
    int64_t store_id = prc == 0 ? ev.store_id : 0;
    int rc = store_id ? 0 : p->peek_store(body, len, &store_id, &err);
    if (rc) {
        reply(resp, 400, th_err_name(rc), err.msg);
        return;
    }
    struct cached_conn cc;
    if (cache_get(s, p->platform, store_id, &cc) &&
        fast_intake(s, p, req, &cc, token, prc, &ev, &perr, resp))
        return;
    struct store_conn c = {0};
    int known = 0;
    rc = store_conn_find(s->cfg.store, p->platform, store_id, &c, &err);
    if (rc == 0) cache_put(s, &c);
    if (rc == 0) known = 1;
    else if (rc != TH_ENOTFOUND) {
        reply_unstored(resp, rc, "this event");
        log_error("intake_store_failed", "platform=%s store=%lld msg=\"%s\"", p->name,
                  (long long)store_id, err.msg);
        return;
    }
    const struct server_app *app = app0;
    if (p->needs_url_token && (!known || !url_token_ok(c.webhook_secret, store_id, token))) {
        log_warn("intake_rejected", "platform=%s store=%lld reason=url_token", p->name,
                 (long long)store_id);
        reply(resp, 401, "TH_EAUTH", "this webhook URL is not the one registered for the store: "
                                     "register the webhooks again (tarheel connect)");
        goto out;
    }
    struct platform_auth auth = {
        .strategy = known && c.webhook_strategy ? c.webhook_strategy : app->webhook_strategy,
        .secret = known && c.webhook_secret ? c.webhook_secret : app->webhook_secret};
    rc = p->verify(&auth, req_header, (void *)req, body, len, &err);
    if (rc) {
        log_warn("intake_rejected", "platform=%s store=%lld reason=auth", p->name,
                 (long long)store_id);
        reply(resp, 401, th_err_name(rc), err.msg);
        goto out;
    }
    if (prc) {
        reply(resp, 400, th_err_name(prc), perr.msg);
        goto out;
    }

    if (ev.kind == PLATFORM_EV_AUTHORIZE || (ev.kind == PLATFORM_EV_UNINSTALL && known)) {
        if (!known) {
            c.platform = p->platform;
            c.store_id = store_id;
            c.connected_at = time(NULL);
            c.trigger = MODEL_STATUS_NEW;
            c.customer_per_invoice = 1;
            c.number_by_order = 1;
            c.financial_invoice = 1;
            c.api_base = xstrdup(app->api_base);
            c.qoyod_base = xstrdup(s->cfg.qoyod_base);
            c.qoyod_api_key = xstrdup(s->cfg.qoyod_api_key);
            c.inventory_id = s->cfg.inventory_id;
            c.webhook_secret = xstrdup(app->webhook_secret);
            c.webhook_strategy = xstrdup(app->webhook_strategy ? app->webhook_strategy
                                                                : "signature");
        }
        free(c.status);
        if (ev.kind == PLATFORM_EV_AUTHORIZE) {
            free(c.access_token);
            free(c.refresh_token);
            c.access_token = xstrdup(ev.access_token);
            c.refresh_token = xstrdup(ev.refresh_token);
            c.token_expires_at = ev.expires_at;
            c.status = xstrdup("active");
        } else {
            c.status = xstrdup("disconnected");
        }
        /* A known store: only its tokens and status, never its settings. */
        rc = known ? store_conn_put_tokens(s->cfg.store, &c, &err)
                   : store_conn_put(s->cfg.store, &c, &err);
        if (rc) {
            log_error("intake_commit_failed", "platform=%s store=%lld code=%s msg=\"%s\"",
                      p->name, (long long)store_id, th_err_name(rc), err.msg);
            reply_unstored(resp, rc, "this store's tokens");
            goto out;
        }
        known = 1;
        cache_put(s, &c);
        log_info(ev.kind == PLATFORM_EV_AUTHORIZE ? "store_authorized" : "store_uninstalled",
                 "platform=%s store=%lld conn=%lld", p->name, (long long)store_id,
                 (long long)c.id);
    }
    if (!known) {
        /* A verified event from a store that never installed the app: keep
         * nothing, but do not make the platform retry forever. */
        reply(resp, 202, "TH_ENOTFOUND", "store not connected to tarheel; event ignored");
        goto out;
    }

    commit_event(s, p, req, c.id, store_id, &ev, 1, resp);
out:
    store_conn_release(&c);
}

static void route(void *arg, const struct httpd_req *req, struct httpd_resp *resp)
{
    struct server *s = arg;
    const char *path = httpd_req_path(req);
    const char *method = httpd_req_method(req);
    if (strncmp(path, "/webhooks/", 10) == 0) {
        /* /webhooks/<platform>[/<token>] */
        char name[32];
        const char *slash = strchr(path + 10, '/');
        size_t nl = slash ? (size_t)(slash - (path + 10)) : strlen(path + 10);
        snprintf(name, sizeof name, "%.*s", (int)(nl < sizeof name ? nl : sizeof name - 1),
                 path + 10);
        const char *token = slash && slash[1] ? slash + 1 : NULL;
        const struct platform_ops *p = platform_by_name(name);
        if (!p) {
            reply(resp, 404, "TH_ENOTFOUND", "unknown platform in the webhook URL");
        } else if (strcmp(method, "POST") != 0) {
            reply(resp, 405, "TH_EINVAL", "webhooks are delivered with POST");
        } else {
            intake(s, p, req, token, resp);
        }
        return;
    }
    if (strcmp(path, "/healthz") == 0) {
        reply(resp, 200, "ok", "");
        return;
    }
    if (strncmp(path, API_PREFIX, strlen(API_PREFIX)) == 0) {
        api_handle(s->cfg.api, req, resp);
        return;
    }
    if (connect_is_route(path)) {
        connect_callback(s->cfg.connect, req, resp);
        return;
    }
    if (web_is_route(path)) {
        web_handle(req, resp);
        return;
    }
    reply(resp, 404, "TH_ENOTFOUND", "no such endpoint");
}

int server_open(struct server **out, const struct server_config *cfg, struct th_err *err)
{
    struct server *s = xcalloc(1, sizeof *s);
    s->cfg = *cfg;
    pthread_mutex_init(&s->cache_lock, NULL);
    struct httpd_config hc = {.listen = cfg->listen,
                              .max_body = SERVER_MAX_BODY,
                              .threads = cfg->threads ? cfg->threads : SERVER_THREADS_DEFAULT,
                              .conn_timeout_s = cfg->conn_timeout_s,
                              .handler = route,
                              .arg = s};
    int rc = httpd_open(&s->httpd, &hc, err);
    if (rc) {
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void server_close(struct server *s)
{
    if (!s) return;
    /* httpd may not stop while a request is set aside; the store (still
     * open) finishes every queued commit, so this ends. */
    atomic_store(&s->closing, 1);
    while (atomic_load(&s->pending) > 0) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    httpd_close(s->httpd);
    pthread_mutex_destroy(&s->cache_lock);
    free(s);
}

uint16_t server_port(const struct server *s)
{
    return httpd_port(s->httpd);
}
