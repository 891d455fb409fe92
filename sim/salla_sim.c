/*
 * salla_sim — the Salla emulator (../shared/api/salla.md; sim/salla.md).
 *
 * One process serves both Salla hosts: the OAuth paths (/oauth2/...) and the
 * Admin API (/admin/v2/...). State is a handful of jansson objects: stores,
 * tokens, orders (kept exactly in the shape GET /orders/{id} returns), products
 * and webhook subscriptions. Money inside orders is JSON numbers built from
 * int64 halalas (jv_money_number) so the arithmetic of generated orders is
 * exact; the emulator itself never adds doubles.
 *
 * Webhooks go to the app's webhook URL (app events, and store events as a
 * Partner-Portal subscription would) and to every URL subscribed through the
 * webhook API, through the framework's sender (signed, retried, faultable).
 */
#include "sim/salla_sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/jv.h"
#include "core/money.h"
#include "core/xmalloc.h"

/* Access tokens live 14 days, refresh tokens a month (salla.md §2.3). */
#define ACCESS_TTL_S (14 * 24 * 3600 - 1)
#define REFRESH_TTL_S (30 * 24 * 3600)
/* per_page cap (§8.2). */
#define SALLA_MAX_PER_PAGE 60

struct salla {
    struct sim *s;
    json_t *st; /* {stores, tokens, refresh, codes, orders, products, subs, next} */
    const char *client_id, *client_secret;
    char *webhook_url, *webhook_secret, *strategy;
    long retry_ms;
    long plan_limit; /* requests per minute per store; 0 = off */
    json_t *pending_qty; /* bulk quantity updates not applied yet (asynchronous) */
};

/* Built-in statuses (§4.4): slug, id, Arabic name. */
static const struct {
    const char *slug;
    long long id;
    const char *name;
} statuses[] = {
    {"payment_pending", 1473353380, "بإنتظار الدفع"}, {"under_review", 566146469, "بإنتظار المراجعة"},
    {"in_progress", 1939592358, "قيد التنفيذ"},       {"completed", 1298199463, "تم التنفيذ"},
    {"delivering", 349994915, "جاري التوصيل"},        {"delivered", 1723506348, "تم التوصيل"},
    {"shipped", 814202285, "تم الشحن"},               {"canceled", 525144736, "ملغي"},
    {"restored", 989286562, "مسترجع"},                {"restoring", 1548352431, "قيد الإسترجاع"},
};
#define NSTATUSES (sizeof statuses / sizeof statuses[0])

static int status_index(const char *slug)
{
    for (size_t i = 0; slug && i < NSTATUSES; i++)
        if (strcmp(statuses[i].slug, slug) == 0) return (int)i;
    return -1;
}

/* ---------------------------------------------------------------------- */
/* Small helpers                                                            */

static json_t *bucket(struct salla *e, const char *name)
{
    return json_object_get(e->st, name);
}

static long long next_id(struct salla *e, const char *kind, long long base)
{
    return sim_next_id(e->s, bucket(e, "next"), kind, base, 97);
}

static char *key_of(long long id)
{
    return xasprintf("%lld", id);
}

static void envelope(struct httpd_resp *resp, int status, json_t *data)
{
    sim_json(resp, status, json_pack("{s:i,s:b,s:o}", "status", status, "success", 1, "data", data));
}

static void message(struct httpd_resp *resp, int status, const char *msg)
{
    envelope(resp, status, json_pack("{s:s,s:i}", "message", msg, "code", status));
}

/* Salla's error envelope (§8.1). code is a string or (for 404) a number. */
static void error(struct httpd_resp *resp, int status, const char *code, const char *msg,
                  json_t *fields)
{
    json_t *err = json_pack("{s:s,s:s}", "code", code, "message", msg);
    if (status == 404) json_object_set_new(err, "code", json_integer(404));
    if (fields) json_object_set_new(err, "fields", fields);
    sim_json(resp, status, json_pack("{s:b,s:i,s:o}", "success", 0, "status", status, "error", err));
}

static json_t *money(int64_t halalas)
{
    return json_pack("{s:o,s:s}", "amount", jv_money_number(halalas), "currency", "SAR");
}

static json_t *riyadh_date(time_t t)
{
    char buf[64];
    t += 3 * 3600;
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d.000000", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return json_pack("{s:s,s:i,s:s}", "date", buf, "timezone_type", 3, "timezone", "Asia/Riyadh");
}

/* "YYYY-MM-DD" (the day's start, or its last second when end is set) or
 * "YYYY-MM-DD HH:MM:SS", Riyadh time, into unix seconds. Returns 0 or -1. */
static int riyadh_parse(const char *in, int end, time_t *out)
{
    int y, mo, d, h = 0, mi = 0, sec = 0, n = 0, m = 0;
    if (sscanf(in, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10) return -1;
    if (in[n] == '\0') {
        if (end) h = 23, mi = 59, sec = 59;
    } else if (sscanf(in + n, " %2d:%2d:%2d%n", &h, &mi, &sec, &m) != 3 || in[n + m]) {
        return -1;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 59) return -1;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
                    .tm_min = mi, .tm_sec = sec};
    time_t t = timegm(&tm);
    if (t == (time_t)-1) return -1;
    *out = t - 3 * 3600;
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Webhooks                                                                 */

static void send_event(struct salla *e, long long store_id, const char *event, json_t *data)
{
    /* `created_at` in the JS Date.toString() form most examples use (§3.3). */
    time_t t = time(NULL) + 3 * 3600;
    struct tm tm;
    gmtime_r(&t, &tm);
    char when[64];
    strftime(when, sizeof when, "%a %b %d %Y %H:%M:%S GMT+0300", &tm);
    json_t *env = json_pack("{s:s,s:I,s:s,s:o}", "event", event, "merchant", (json_int_t)store_id,
                            "created_at", when, "data", data);
    char *body = jv_dump(env);
    json_decref(env);
    int token_strategy = e->strategy && strcasecmp(e->strategy, "token") == 0;
    char *auth = token_strategy ? xasprintf("Authorization: %s", e->webhook_secret) : NULL;
    const char *hdrs[] = {token_strategy ? "X-Salla-Security-Strategy: Token"
                                         : "X-Salla-Security-Strategy: Signature",
                          NULL};
    struct sim_webhook w = {.event = event,
                            .body = body,
                            .headers = hdrs,
                            .sign_header = token_strategy ? NULL : "X-Salla-Signature",
                            .sign_key = e->webhook_secret,
                            .auth_header = auth,
                            .max_attempts = 4,
                            .retry_delay_ms = e->retry_ms,
                            .timeout_ms = 30000};
    int app_event = strncmp(event, "app.", 4) == 0;
    if (e->webhook_url && *e->webhook_url) {
        w.url = e->webhook_url;
        sim_webhook_send(e->s, &w);
    }
    if (!app_event) {
        size_t i;
        json_t *sub;
        json_array_foreach(bucket(e, "subs"), i, sub) {
            if (json_integer_value(json_object_get(sub, "store_id")) != store_id) continue;
            const char *ev = jv_get_str(sub, "event");
            if (!ev || strcmp(ev, event) != 0) continue;
            w.url = jv_get_str(sub, "url");
            sim_webhook_send(e->s, &w);
        }
    }
    free(auth);
    free(body);
}

/* ---------------------------------------------------------------------- */
/* Stores and tokens                                                        */

static json_t *store_new(struct salla *e, long long id, const char *name)
{
    char *k = key_of(id);
    json_t *st = json_object_get(bucket(e, "stores"), k);
    if (!st) {
        st = json_pack("{s:I,s:s,s:s,s:s}", "id", (json_int_t)id, "name", name ? name : "متجر تجريبي",
                       "username", "demo_store", "plan", "pro");
        json_object_set_new(bucket(e, "stores"), k, st);
    }
    free(k);
    return st;
}

/* Mints an access + refresh token pair for a store in `chain` (a new chain
 * when chain is NULL). Returns the token answer (new reference). */
static json_t *mint(struct salla *e, long long store_id, const char *chain_in)
{
    char *at = sim_token(e->s, "ory_at_"), *rt = sim_token(e->s, "ory_rt_");
    char *chain = chain_in ? xstrdup(chain_in) : sim_token(e->s, "chain_");
    time_t now = time(NULL);
    json_object_set_new(bucket(e, "tokens"), at,
                        json_pack("{s:I,s:I,s:s,s:b}", "store_id", (json_int_t)store_id, "exp",
                                  (json_int_t)(now + ACCESS_TTL_S), "chain", chain, "revoked", 0));
    json_object_set_new(bucket(e, "refresh"), rt,
                        json_pack("{s:I,s:I,s:s,s:b}", "store_id", (json_int_t)store_id, "exp",
                                  (json_int_t)(now + REFRESH_TTL_S), "chain", chain, "used", 0));
    /* Docs give `expires` on the code exchange and `expires_in` on refresh
     * (§2.2 [X]); both are returned, as durations. */
    json_t *ans = json_pack("{s:s,s:I,s:I,s:s,s:s,s:s}", "access_token", at, "expires",
                            (json_int_t)ACCESS_TTL_S, "expires_in", (json_int_t)ACCESS_TTL_S,
                            "refresh_token", rt, "scope",
                            "settings.read orders.read_write products.read_write "
                            "customers.read webhooks.read_write offline_access",
                            "token_type", "bearer");
    free(at);
    free(rt);
    free(chain);
    return ans;
}

static void revoke_chain(struct salla *e, const char *chain)
{
    const char *k;
    json_t *v;
    json_object_foreach(bucket(e, "tokens"), k, v) {
        if (strcmp(jv_get_str(v, "chain"), chain) == 0) json_object_set_new(v, "revoked", json_true());
    }
    json_object_foreach(bucket(e, "refresh"), k, v) {
        if (strcmp(jv_get_str(v, "chain"), chain) == 0) json_object_set_new(v, "used", json_true());
    }
}

/* The store a Bearer token grants, or 0 (answering 401 in resp). */
static long long authorize(struct salla *e, const struct sim_req *req, struct httpd_resp *resp)
{
    const char *h = httpd_req_header(req->http, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) {
        error(resp, 401, "Unauthorized", "The access token is invalid", NULL);
        return 0;
    }
    json_t *t = json_object_get(bucket(e, "tokens"), h + 7);
    if (!t || json_is_true(json_object_get(t, "revoked")) ||
        json_integer_value(json_object_get(t, "exp")) < time(NULL)) {
        error(resp, 401, "Unauthorized", "The access token is invalid", NULL);
        return 0;
    }
    return json_integer_value(json_object_get(t, "store_id"));
}

static void oauth_error(struct httpd_resp *resp, int status, const char *err, const char *desc)
{
    sim_json(resp, status, json_pack("{s:s,s:s}", "error", err, "error_description", desc));
}

static void oauth_token(struct salla *e, const struct sim_req *req, struct httpd_resp *resp)
{
    char gt[64], id[128], secret[128], code[128], rt[256];
    const char *body = req->raw_body;
    if (!sim_form_field(body, "grant_type", gt, sizeof gt)) {
        oauth_error(resp, 400, "invalid_request", "grant_type is required");
        return;
    }
    if (!sim_form_field(body, "client_id", id, sizeof id) || !sim_form_field(body, "client_secret", secret, sizeof secret) ||
        strcmp(id, e->client_id) != 0 || strcmp(secret, e->client_secret) != 0) {
        oauth_error(resp, 401, "invalid_client", "Client authentication failed.");
        return;
    }
    if (strcmp(gt, "authorization_code") == 0) {
        json_t *c = sim_form_field(body, "code", code, sizeof code) ? json_object_get(bucket(e, "codes"), code)
                                                          : NULL;
        if (!c || json_is_true(json_object_get(c, "used"))) {
            oauth_error(resp, 400, "invalid_grant", "The provided authorization grant is invalid, "
                                                    "expired, revoked or was already used.");
            return;
        }
        json_object_set_new(c, "used", json_true()); /* single use (§2.1) */
        sim_json(resp, 200, mint(e, json_integer_value(json_object_get(c, "store_id")), NULL));
    } else if (strcmp(gt, "refresh_token") == 0) {
        json_t *r = sim_form_field(body, "refresh_token", rt, sizeof rt)
                        ? json_object_get(bucket(e, "refresh"), rt)
                        : NULL;
        if (!r || json_integer_value(json_object_get(r, "exp")) < time(NULL)) {
            oauth_error(resp, 400, "invalid_grant", "The provided refresh token is invalid or "
                                                    "expired.");
            return;
        }
        char *chain = xstrdup(jv_get_str(r, "chain"));
        if (json_is_true(json_object_get(r, "used"))) {
            /* Reuse: the whole chain is revoked (§2.3). */
            revoke_chain(e, chain);
            free(chain);
            oauth_error(resp, 400, "invalid_grant",
                        "The provided authorization grant (e.g., authorization code, resource owner "
                        "credentials) or refresh token is invalid, expired, revoked, does not match "
                        "the redirection URI used in the authorization request, or was issued to "
                        "another client.");
            return;
        }
        json_object_set_new(r, "used", json_true());
        /* the old access tokens of the chain stop working once refreshed [I] */
        sim_json(resp, 200, mint(e, json_integer_value(json_object_get(r, "store_id")), chain));
        free(chain);
    } else {
        oauth_error(resp, 400, "unsupported_grant_type", "grant_type is not supported");
    }
}

/* GET /oauth2/auth: the merchant approves at once (emulator) and is sent to
 * redirect_uri with a single-use code. ?store_id= picks the store [I]. */
static void oauth_auth(struct salla *e, const struct sim_req *req, struct httpd_resp *resp)
{
    const char *cid = httpd_req_arg(req->http, "client_id");
    const char *redirect = httpd_req_arg(req->http, "redirect_uri");
    const char *state = httpd_req_arg(req->http, "state");
    if (!cid || strcmp(cid, e->client_id) != 0 || !redirect) {
        oauth_error(resp, 400, "invalid_request", "client_id and redirect_uri are required");
        return;
    }
    const char *sid = httpd_req_arg(req->http, "store_id");
    long long store_id = sid ? strtoll(sid, NULL, 10) : 0;
    if (!store_id) {
        const char *k;
        json_t *v;
        json_object_foreach(bucket(e, "stores"), k, v) {
            store_id = json_integer_value(json_object_get(v, "id"));
            break;
        }
    }
    if (!store_id) store_id = json_integer_value(json_object_get(store_new(e, 1305146709, NULL), "id"));
    char *code = sim_token(e->s, "ory_ac_");
    json_object_set_new(bucket(e, "codes"), code,
                        json_pack("{s:I,s:b}", "store_id", (json_int_t)store_id, "used", 0));
    char *loc = xasprintf("%s%scode=%s&scope=offline_access&state=%s", redirect,
                          strchr(redirect, '?') ? "&" : "?", code, state ? state : "");
    httpd_resp_header(resp, "Location", loc);
    httpd_resp_text(resp, 302, "");
    free(loc);
    free(code);
}

static void user_info(struct salla *e, const struct sim_req *req, struct httpd_resp *resp)
{
    long long sid = authorize(e, req, resp);
    if (!sid) return;
    char *k = key_of(sid);
    json_t *st = json_object_get(bucket(e, "stores"), k);
    free(k);
    envelope(resp, 200,
             json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:{s:I,s:s,s:s,s:s,s:s,s:s}}", "id",
                       (json_int_t)(sid + 7), "name", "Demo Merchant", "email",
                       "merchant@example.com", "mobile", "+966500000000", "role", "user",
                       "created_at", "2024-01-01 10:00:00", "merchant", "id", (json_int_t)sid,
                       "username", jv_get_str(st, "username"), "name", jv_get_str(st, "name"),
                       "plan", jv_get_str(st, "plan"), "status", "active", "created_at",
                       "2024-01-01 10:00:00"));
}

/* ---------------------------------------------------------------------- */
/* Orders                                                                   */

static json_t *find_order(struct salla *e, long long store_id, long long id)
{
    char *k = key_of(id);
    json_t *o = json_object_get(bucket(e, "orders"), k);
    free(k);
    if (!o || json_integer_value(json_object_get(o, "_store")) != store_id) return NULL;
    return o;
}

/* The order as the API shows it: without the emulator's private keys. */
static json_t *public_order(const json_t *o, int light)
{
    json_t *c = json_deep_copy(o);
    json_object_del(c, "_store");
    if (light) {
        json_object_del(c, "items");
        json_object_del(c, "shipments");
    }
    return c;
}

static json_t *status_obj(int i)
{
    return json_pack("{s:I,s:s,s:s,s:n}", "id", (json_int_t)statuses[i].id, "name",
                     statuses[i].name, "slug", statuses[i].slug, "customized");
}

/* Stores an order given in Salla's own GET shape; fills id, reference_id,
 * dates and status when missing, and fires order.created. Returns borrowed. */
static json_t *put_order(struct salla *e, long long store_id, json_t *o)
{
    int64_t id = 0;
    if (jv_get_id(o, "id", &id, NULL) != 0 || id <= 0) {
        id = next_id(e, "order", 3155923424LL);
        json_object_set_new(o, "id", json_integer(id));
    }
    if (!json_object_get(o, "reference_id"))
        json_object_set_new(o, "reference_id", json_integer(next_id(e, "reference", 41027662LL)));
    if (!json_object_get(o, "date")) json_object_set_new(o, "date", riyadh_date(time(NULL)));
    json_object_set_new(o, "updated_at", riyadh_date(time(NULL)));
    json_t *st = json_object_get(o, "status");
    int si = status_index(json_is_object(st) ? jv_get_str(st, "slug") : NULL);
    if (si < 0) json_object_set_new(o, "status", status_obj(1)); /* under_review */
    if (!json_object_get(o, "currency")) json_object_set_new(o, "currency", json_string("SAR"));
    json_object_set_new(o, "_store", json_integer(store_id));
    char *k = key_of(id);
    json_object_set(bucket(e, "orders"), k, o);
    free(k);
    send_event(e, store_id, "order.created", public_order(o, 0));
    return o;
}

static void restock_order(struct salla *e, json_t *o);

static int change_status(struct salla *e, json_t *o, const char *slug, const char *note)
{
    int i = status_index(slug);
    if (i < 0) return -1;
    const char *was = jv_get_str(json_object_get(o, "status"), "slug");
    int gone = was && (!strcmp(was, "canceled") || !strcmp(was, "restored"));
    if (!gone && (!strcmp(slug, "canceled") || !strcmp(slug, "restored"))) restock_order(e, o);
    json_object_set_new(o, "status", status_obj(i));
    json_object_set_new(o, "updated_at", riyadh_date(time(NULL)));
    long long store_id = json_integer_value(json_object_get(o, "_store"));
    /* order.status.updated carries a history entry with the order nested
     * (§3.5, the shape its docs show); order.updated the full order. */
    json_t *nested = public_order(o, 0);
    json_t *hist = json_pack("{s:I,s:s,s:n,s:s,s:o,s:o}", "id",
                             (json_int_t)next_id(e, "history", 198290473LL), "status",
                             statuses[i].name, "customized", "note", note ? note : "",
                             "created_at", riyadh_date(time(NULL)), "order", nested);
    send_event(e, store_id, "order.status.updated", hist);
    send_event(e, store_id, "order.updated", public_order(o, 0));
    if (!strcmp(slug, "canceled")) send_event(e, store_id, "order.cancelled", public_order(o, 0));
    if (!strcmp(slug, "restored")) send_event(e, store_id, "order.refunded", public_order(o, 0));
    return 0;
}

static int arg_int(const struct sim_req *req, const char *name, long def)
{
    const char *v = httpd_req_arg(req->http, name);
    if (!v || !*v) return (int)def;
    return (int)strtol(v, NULL, 10);
}

static void list_orders(struct salla *e, long long sid, const struct sim_req *req,
                        struct httpd_resp *resp)
{
    int page = arg_int(req, "page", 1), per = arg_int(req, "per_page", 15);
    if (page < 1) page = 1;
    if (per < 1) per = 15;
    if (per > SALLA_MAX_PER_PAGE) per = SALLA_MAX_PER_PAGE;
    const char *from = httpd_req_arg(req->http, "from_date");
    const char *to = httpd_req_arg(req->http, "to_date");
    const char *ref = httpd_req_arg(req->http, "reference_id");
    /* status[]=<id> (repeatable) */
    long long want[16];
    int nwant = 0;
    for (size_t i = 0; i < httpd_req_nargs(req->http) && nwant < 16; i++) {
        const char *k, *v;
        httpd_req_arg_at(req->http, i, &k, &v);
        if (!strcmp(k, "status[]") || !strcmp(k, "status")) want[nwant++] = strtoll(v, NULL, 10);
    }
    const char *sort = httpd_req_arg(req->http, "sort_by");
    int asc = sort && strstr(sort, "-asc");
    json_t *all = json_array();
    const char *k;
    json_t *o;
    json_object_foreach(bucket(e, "orders"), k, o) {
        if (json_integer_value(json_object_get(o, "_store")) != sid) continue;
        /* from_date/to_date are dates, inclusive, on the created date [I] */
        char day[16];
        const char *d = jv_get_str(json_object_get(o, "date"), "date");
        snprintf(day, sizeof day, "%.10s", d ? d : "");
        if (from && strcmp(day, from) < 0) continue;
        if (to && strcmp(day, to) > 0) continue;
        char rbuf[32];
        const char *rv = jv_get_text(o, "reference_id", rbuf, sizeof rbuf);
        if (ref && (!rv || strcmp(ref, rv) != 0)) continue;
        if (nwant) {
            long long sidv = json_integer_value(json_object_get(json_object_get(o, "status"), "id"));
            int ok = 0;
            for (int i = 0; i < nwant; i++) ok |= want[i] == sidv;
            if (!ok) continue;
        }
        json_array_append(all, o);
    }
    /* newest first by default (created_at-desc) [I] */
    size_t n = json_array_size(all);
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0; j--) {
            long long a = json_integer_value(json_object_get(json_array_get(all, j - 1), "id"));
            long long b = json_integer_value(json_object_get(json_array_get(all, j), "id"));
            if (asc ? a > b : a < b) {
                json_t *x = json_incref(json_array_get(all, j - 1));
                json_array_set(all, j - 1, json_array_get(all, j));
                json_array_set_new(all, j, x);
            } else break;
        }
    json_t *data = json_array();
    for (size_t i = (size_t)(page - 1) * (size_t)per; i < n && i < (size_t)page * (size_t)per; i++) {
        json_t *src = json_array_get(all, i);
        json_t *light = json_pack("{s:O,s:O?,s:O?,s:O?,s:O?,s:O?,s:O?}", "id", json_object_get(src, "id"),
                                  "reference_id", json_object_get(src, "reference_id"), "total",
                                  json_object_get(json_object_get(src, "amounts"), "total"), "date",
                                  json_object_get(src, "date"), "status",
                                  json_object_get(src, "status"), "payment_method",
                                  json_object_get(src, "payment_method"), "customer",
                                  json_object_get(src, "customer"));
        json_array_append_new(data, light);
    }
    long total_pages = n ? (long)((n + (size_t)per - 1) / (size_t)per) : 0;
    sim_json(resp, 200,
             json_pack("{s:i,s:b,s:o,s:{s:I,s:I,s:i,s:i,s:I,s:[]}}", "status", 200, "success", 1,
                       "data", data, "pagination", "count", (json_int_t)json_array_size(data),
                       "total", (json_int_t)n, "perPage", per, "currentPage", n ? page : 0,
                       "totalPages", (json_int_t)total_pages, "links"));
    json_decref(all);
}

/* ---------------------------------------------------------------------- */
/* Products                                                                 */

static json_t *find_product(struct salla *e, long long sid, long long id, const char *sku)
{
    const char *k;
    json_t *p;
    json_object_foreach(bucket(e, "products"), k, p) {
        if (json_integer_value(json_object_get(p, "_store")) != sid) continue;
        if (id && json_integer_value(json_object_get(p, "id")) == id) return p;
        if (sku && *sku && jv_get_str(p, "sku") && !strcmp(jv_get_str(p, "sku"), sku)) return p;
    }
    return NULL;
}

static json_t *public_product(const json_t *p)
{
    json_t *c = json_deep_copy(p);
    json_object_del(c, "_store");
    return c;
}

/* Sorts an array of products by id (the listing's order). */
static int cmp_id(const void *a, const void *b)
{
    json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "id"));
    json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "id"));
    return (x > y) - (x < y);
}

static void json_array_sort_by_id(json_t *a)
{
    size_t n = json_array_size(a);
    if (n < 2) return;
    json_t **v = xmalloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = json_incref(json_array_get(a, i));
    qsort(v, n, sizeof *v, cmp_id);
    json_array_clear(a);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, v[i]);
    free(v);
}

/* PUT /products/{id} (§5.1, D-PROD-UPD): a partial update of name, price,
 * cost_price, sku, quantity [I: name and cost_price beside the documented
 * "quantity, price, sku, …"]; 201 with the product (Salla answers 201 for
 * updates). Money as a number, a numeric string or {amount}. The product's
 * updated_at becomes now ("YYYY-MM-DD HH:MM:SS", Riyadh) and
 * product.updated is sent. */
static void update_product(struct salla *e, long long sid, json_t *p, const struct sim_req *req,
                           struct httpd_resp *resp)
{
    json_t *b = req->body;
    if (!json_is_object(b)) {
        error(resp, 422, "validation_failed", "alert.invalid_fields",
              json_pack("{s:[s]}", "name", "حقل الاسم مطلوب."));
        return;
    }
    json_t *fields = json_object();
    int64_t price = 0, cost = 0, qty = 0;
    int has_price = json_object_get(b, "price") != NULL, has_cost = json_object_get(b, "cost_price") != NULL;
    int has_qty = json_object_get(b, "quantity") != NULL;
    if (has_price && (jv_get_money(b, "price", &price, NULL) != 0 || price < 0))
        json_object_set_new(fields, "price", json_pack("[s]", "السعر يجب أن يكون رقماً."));
    if (has_cost && (jv_get_money(b, "cost_price", &cost, NULL) != 0 || cost < 0))
        json_object_set_new(fields, "cost_price", json_pack("[s]", "سعر التكلفة يجب أن يكون رقماً."));
    if (has_qty && (jv_get_dec(b, "quantity", 0, &qty, NULL) != 0 || qty < 0))
        json_object_set_new(fields, "quantity", json_pack("[s]", "حقل الكمية يجب أن يكون رقماً."));
    json_t *nm = json_object_get(b, "name");
    if (nm && (!json_is_string(nm) || !*json_string_value(nm)))
        json_object_set_new(fields, "name", json_pack("[s]", "حقل الاسم مطلوب."));
    if (json_object_size(fields)) {
        error(resp, 422, "validation_failed", "alert.invalid_fields", fields);
        return;
    }
    json_decref(fields);
    if (nm) json_object_set(p, "name", nm);
    if (has_price) json_object_set_new(p, "price", money(price));
    if (has_cost) json_object_set_new(p, "cost_price", jv_money_string(cost));
    if (has_qty) json_object_set_new(p, "quantity", json_integer((json_int_t)qty));
    const char *sku = jv_get_str(b, "sku");
    if (sku) json_object_set_new(p, "sku", json_string(sku));
    char now[48];
    json_object_set_new(p, "updated_at", json_string(sim_now_riyadh_plain(now, sizeof now)));
    envelope(resp, 201, public_product(p));
    send_event(e, sid, "product.updated", public_product(p));
}

/* Applies queued bulk quantity updates: Salla processes them asynchronously
 * (§5.3); the emulator applies them at the next request after the one that
 * queued them [I], so a read straight after the POST may show old stock. */
static void apply_pending(struct salla *e)
{
    size_t i;
    json_t *u;
    json_array_foreach(e->pending_qty, i, u) {
        long long sid = json_integer_value(json_object_get(u, "store_id"));
        const char *type = jv_get_str(u, "identifer_type");
        char idtext[64];
        const char *ident = jv_get_text(u, "identifer", idtext, sizeof idtext);
        json_t *p = type && !strcmp(type, "sku") ? find_product(e, sid, 0, ident)
                                                 : find_product(e, sid, ident ? strtoll(ident, NULL, 10) : 0, NULL);
        if (!p) continue;
        int64_t q = 0, cur = json_integer_value(json_object_get(p, "quantity"));
        if (jv_get_dec(u, "quantity", 0, &q, NULL) != 0) continue;
        const char *mode = jv_get_str(u, "mode");
        if (mode && !strcmp(mode, "increment")) q = cur + q;
        else if (mode && !strcmp(mode, "decrement")) q = cur - q;
        json_object_set_new(p, "quantity", json_integer(q));
        json_object_set_new(p, "status", json_string(q > 0 ? "sale" : "out"));
        send_event(e, sid, "product.updated", public_product(p));
    }
    json_array_clear(e->pending_qty);
}

static void bulk_quantities(struct salla *e, long long sid, const struct sim_req *req,
                            struct httpd_resp *resp)
{
    json_t *list = json_object_get(req->body, "products");
    if (!json_is_array(list) || json_array_size(list) == 0) {
        error(resp, 422, "validation_failed", "alert.invalid_fields",
              json_pack("{s:[s]}", "products", "حقل المنتجات مطلوب."));
        return;
    }
    size_t i;
    json_t *u;
    json_array_foreach(list, i, u) {
        int64_t q;
        if (jv_get_dec(u, "quantity", 0, &q, NULL) != 0 || !jv_get_str(u, "identifer_type")) {
            char key[48];
            snprintf(key, sizeof key, "products.%zu.quantity", i);
            json_t *f = json_object();
            json_object_set_new(f, key, json_pack("[s]", "حقل الكمية مطلوب."));
            error(resp, 422, "validation_failed", "alert.invalid_fields", f);
            return;
        }
    }
    json_array_foreach(list, i, u) {
        json_t *c = json_deep_copy(u);
        json_object_set_new(c, "store_id", json_integer(sid));
        json_array_append_new(e->pending_qty, c);
    }
    message(resp, 201,
            "The details has been queued to update, it may take several minutes to finish the "
            "process");
}

/* ---------------------------------------------------------------------- */
/* Sample data                                                              */

static const struct {
    const char *sku, *name, *type;
    int64_t price, cost;
    int qty;
} catalogue[] = {
    {"TSH-BLK-M", "تي شيرت أسود", "product", 7900, 3000, 120},
    {"TSH-WHT-L", "تي شيرت أبيض", "product", 7900, 3000, 80},
    {"MUG-001", "كوب قهوة", "product", 3500, 1200, 200},
    {"PERF-50", "عطر عود ٥٠ مل", "product", 24900, 9000, 40},
    {"DATES-1KG", "تمر سكري ١ كجم", "food", 4500, 2000, 300},
    {"GIFT-100", "بطاقة هدية ١٠٠ ريال", "codes", 10000, 0, 0},
    {"", "منتج بدون رمز", "product", 2500, 1000, 50}, /* no SKU: reported, never guessed */
};
#define NCATALOGUE (sizeof catalogue / sizeof catalogue[0])

/* The store's product for catalogue entry c (the one without SKU too). */
static json_t *catalogue_product(struct salla *e, long long sid, size_t c)
{
    json_t *p = find_product(e, sid, 0, catalogue[c].sku);
    if (!p && !catalogue[c].sku[0]) {
        const char *k;
        json_t *v;
        json_object_foreach(bucket(e, "products"), k, v) {
            if (json_integer_value(json_object_get(v, "_store")) == sid &&
                !strcmp(jv_get_str(v, "sku"), "")) {
                p = v;
                break;
            }
        }
    }
    return p;
}

static void seed_catalogue(struct salla *e, long long sid)
{
    for (size_t i = 0; i < NCATALOGUE; i++) {
        /* (the product without SKU once too: every generate seeds) */
        if (catalogue_product(e, sid, i)) continue;
        long long id = next_id(e, "product", 1672908878LL);
        json_t *p = json_pack(
            "{s:I,s:s,s:s,s:s,s:o,s:o,s:s,s:i,s:b,s:s,s:[],s:I}", "id", (json_int_t)id, "sku",
            catalogue[i].sku, "type", catalogue[i].type, "name", catalogue[i].name, "price",
            money(catalogue[i].price), "cost_price", jv_money_string(catalogue[i].cost),
            "currency", "SAR", "quantity", catalogue[i].qty, "unlimited_quantity",
            !strcmp(catalogue[i].type, "codes"), "status", "sale", "skus", "_store",
            (json_int_t)sid);
        char now[48];
        json_object_set_new(p, "updated_at", json_string(sim_now_riyadh_plain(now, sizeof now)));
        char *k = key_of(id);
        json_object_set_new(bucket(e, "products"), k, p);
        free(k);
    }
}

static int64_t vat(int64_t net, int bp)
{
    int64_t v = 0;
    if (money_muldiv(net, bp, 10000, &v) != 0) v = 0;
    return v;
}

/* A realistic order whose arithmetic is exact to the halala. VAT is
 * computed per line and on each fee, rounded half away from zero, which is
 * how Qoyod computes its invoice lines [I: Salla's own rounding point is not
 * documented; per line keeps both sides equal]. */
/* Takes up to want units of a product from the store's stock, as the store
 * does when an order is placed: all of them for an untracked product
 * (unlimited_quantity), else what is left. Returns the units taken. */
static int take_stock(json_t *p, int want)
{
    if (!p || json_is_true(json_object_get(p, "unlimited_quantity"))) return want;
    json_int_t have = json_integer_value(json_object_get(p, "quantity"));
    if (have <= 0) return 0;
    int got = have < want ? (int)have : want;
    json_object_set_new(p, "quantity", json_integer(have - got));
    if (have == got) json_object_set_new(p, "status", json_string("out"));
    return got;
}

/* A cancelled or refunded order's tracked units go back on the shelf [I:
 * Salla restores the quantities of a cancelled order; for a refund it is a
 * store setting, on here]. */
static void restock_order(struct salla *e, json_t *o)
{
    long long sid = json_integer_value(json_object_get(o, "_store"));
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(o, "items"), i, it) {
        json_t *p = find_product(e, sid,
                                 json_integer_value(json_object_get(json_object_get(it, "product"), "id")),
                                 NULL);
        if (!p || json_is_true(json_object_get(p, "unlimited_quantity"))) continue;
        json_int_t q = json_integer_value(json_object_get(p, "quantity")) +
                       json_integer_value(json_object_get(it, "quantity"));
        json_object_set_new(p, "quantity", json_integer(q));
        if (q > 0) json_object_set_new(p, "status", json_string("sale"));
    }
}

/* NULL when nothing the order would hold is in stock (the store would not
 * take it). */
static json_t *sample_order(struct salla *e, long long sid, int n)
{
    uint64_t r = sim_rand(e->s);
    int nitems = 1 + (int)(r % 3);
    json_t *items = json_array();
    int64_t sub = 0, net_items = 0, tax = 0, disc_total = 0;
    int coupon = (r >> 8) % 4 == 0;
    for (int i = 0; i < nitems; i++) {
        /* the item without SKU appears in every 7th order only */
        size_t c = (size_t)((r >> (12 + 4 * i)) % (NCATALOGUE - 1)), c0 = c;
        if (n % 7 == 6 && i == 0) c = NCATALOGUE - 1;
        json_t *p = catalogue_product(e, sid, c);
        int qty = take_stock(p, 1 + (int)((r >> (20 + 3 * i)) % 3));
        /* Sold out: the customer picks the next product that is in stock
         * (a product with a SKU), or buys one item fewer. */
        for (size_t k = 1; qty == 0 && k < NCATALOGUE - 1; k++) {
            c = (c0 + k) % (NCATALOGUE - 1);
            p = catalogue_product(e, sid, c);
            qty = take_stock(p, 1);
        }
        if (qty == 0) continue;
        int64_t price = catalogue[c].price;
        int64_t line = price * qty;
        int64_t disc = coupon ? line / 10 : 0; /* 10 % coupon on every item */
        int64_t ltax = vat(line - disc, 1500);
        sub += line;
        net_items += line - disc;
        disc_total += disc;
        tax += ltax;
        json_array_append_new(
            items,
            json_pack("{s:I,s:s,s:s,s:i,s:s,s:{s:o,s:o,s:{s:s,s:o},s:o},s:{s:I,s:s,s:s,s:s}}",
                      "id", (json_int_t)next_id(e, "item", 70815337LL), "name", catalogue[c].name,
                      "sku", catalogue[c].sku, "quantity", qty, "currency", "SAR", "amounts",
                      "price_without_tax", money(price), "total_discount", money(disc), "tax",
                      "percent", "15.00", "amount", money(ltax), "total", money(line), "product",
                      "id", (json_int_t)json_integer_value(json_object_get(p, "id")), "type",
                      catalogue[c].type, "sku", catalogue[c].sku, "name", catalogue[c].name));
    }
    if (json_array_size(items) == 0) {
        json_decref(items);
        return NULL;
    }
    int cod = (r >> 40) % 3 == 0;
    int64_t shipping = (r >> 44) % 4 == 0 ? 0 : ((r >> 46) % 2 ? 1500 : 2500); /* free sometimes */
    int64_t codfee = cod ? 1000 : 0;
    tax += vat(shipping, 1500) + vat(codfee, 1500);
    int64_t total = net_items + shipping + codfee + tax;
    static const char *const first[] = {"محمد", "سارة", "عبدالله", "نورة", "فهد", "ريم"};
    static const char *const last[] = {"العتيبي", "القحطاني", "الشهري", "الدوسري"};
    static const char *const cities[] = {"الرياض", "جدة", "الدمام", "مكة"};
    long long cust = 225167971LL + (long long)((r >> 50) % 12);
    char email[64];
    snprintf(email, sizeof email, "c%lld@example.com", cust);
    json_t *discounts = json_array();
    if (coupon)
        json_array_append_new(discounts,
                              json_pack("{s:s,s:s,s:s,s:o,s:i}", "title", "خصم ١٠٪", "type",
                                        "normal", "code", "SAVE10", "discount",
                                        jv_money_string(disc_total), "discounted_shipping", 0));
    return json_pack(
        "{s:o,s:s,s:s,s:{s:o,s:o,s:o,s:{s:s,s:o},s:o,s:o},s:{s:I,s:s,s:s,s:I,s:s,s:s,s:s,s:s,s:s},"
        "s:o}",
        "status", status_obj(1), "payment_method", cod ? "cod" : ((r >> 5) % 2 ? "mada" : "bank"),
        "currency", "SAR", "amounts", "sub_total", money(sub), "shipping_cost", money(shipping),
        "cash_on_delivery", money(codfee), "tax", "percent", "15.00", "amount", money(tax),
        "discounts", discounts, "total", money(total), "customer", "id", (json_int_t)cust,
        "first_name", first[cust % 6], "last_name", last[cust % 4], "mobile",
        (json_int_t)(500000000LL + cust % 100000000LL), "mobile_code", "+966", "email",
        email, "city", cities[cust % 4], "country", "السعودية", "country_code",
        "SA", "items", items);
}

/* ---------------------------------------------------------------------- */
/* Admin API                                                                */

static void admin(struct salla *e, const struct sim_req *req, struct httpd_resp *resp)
{
    long long sid = authorize(e, req, resp);
    if (!sid) return;
    /* Rate limit per store (§7): headers on every answer, 429 past the budget. */
    char key[48], v[32];
    snprintf(key, sizeof key, "store:%lld", sid);
    long remaining = 0, reset = 0;
    long wait = sim_rate_take(e->s, key, e->plan_limit, 60, &remaining, &reset);
    if (e->plan_limit > 0) {
        snprintf(v, sizeof v, "%ld", e->plan_limit);
        httpd_resp_header(resp, "X-RateLimit-Limit", v);
        snprintf(v, sizeof v, "%ld", remaining < 0 ? 0 : remaining);
        httpd_resp_header(resp, "X-RateLimit-Remaining", v);
        snprintf(v, sizeof v, "%lld", (long long)(time(NULL) + reset));
        httpd_resp_header(resp, "X-RateLimit-Reset", v);
    }
    if (wait > 0) {
        snprintf(v, sizeof v, "%ld", wait);
        httpd_resp_header(resp, "Retry-After", v);
        error(resp, 429, "too_many_requests", "Too Many Requests", NULL);
        return;
    }
    apply_pending(e);

    const char *path = req->path + strlen("/admin/v2");
    int get = !strcmp(req->method, "GET"), post = !strcmp(req->method, "POST");
    int put = !strcmp(req->method, "PUT");
    long long id = 0;
    char tail[64] = "";
    if (req->body_invalid) {
        error(resp, 400, "bad_request", "Invalid JSON", NULL);
        return;
    }
    if (get && !strcmp(path, "/orders")) {
        list_orders(e, sid, req, resp);
    } else if (get && !strcmp(path, "/orders/statuses")) {
        json_t *a = json_array();
        for (size_t i = 0; i < NSTATUSES; i++)
            json_array_append_new(a, json_pack("{s:I,s:s,s:s,s:s}", "id", (json_int_t)statuses[i].id,
                                               "name", statuses[i].name, "type", "original", "slug",
                                               statuses[i].slug));
        envelope(resp, 200, a);
    } else if (get && !strcmp(path, "/orders/items")) {
        const char *oid = httpd_req_arg(req->http, "order_id");
        json_t *o = oid ? find_order(e, sid, strtoll(oid, NULL, 10)) : NULL;
        if (!o) error(resp, 404, "error", "The content you are trying to access is no longer available", NULL);
        else envelope(resp, 200, json_deep_copy(json_object_get(o, "items")));
    } else if (sscanf(path, "/orders/%lld%63s", &id, tail) >= 1) {
        json_t *o = find_order(e, sid, id);
        if (!o) {
            error(resp, 404, "error", "The content you are trying to access is no longer available",
                  NULL);
        } else if (get && !tail[0]) {
            const char *fmt = httpd_req_arg(req->http, "format");
            envelope(resp, 200, public_order(o, fmt && !strcmp(fmt, "light")));
        } else if (post && !strcmp(tail, "/status")) {
            const char *slug = jv_get_str(req->body, "slug");
            int64_t status_id = 0;
            if (!slug && jv_get_id(req->body, "status_id", &status_id, NULL) == 0)
                for (size_t i = 0; i < NSTATUSES; i++)
                    if (statuses[i].id == status_id) slug = statuses[i].slug;
            if (!slug || change_status(e, o, slug, jv_get_str(req->body, "note")) != 0)
                error(resp, 422, "validation_failed", "alert.invalid_fields",
                      json_pack("{s:[s]}", "slug", "الحالة غير صحيحة"));
            else
                message(resp, 201, "The entity has been updated successfully");
        } else {
            error(resp, 405, "method_not_allowed", "Method Not Allowed", NULL);
        }
    } else if (get && !strcmp(path, "/products")) {
        /* §5.1, §8.2: paged by page/per_page (15 by default [I]; 65 at
         * most [I]), in id order; `keyword` matches name or SKU. */
        int page = arg_int(req, "page", 1), per = arg_int(req, "per_page", 15);
        if (per < 1) per = 15;
        if (per > 65) per = 65;
        if (page < 1) page = 1;
        const char *kw = httpd_req_arg(req->http, "keyword");
        json_t *all = json_array();
        const char *k;
        json_t *p;
        json_object_foreach(bucket(e, "products"), k, p) {
            if (json_integer_value(json_object_get(p, "_store")) != sid) continue;
            const char *nm = jv_get_str(p, "name"), *sku = jv_get_str(p, "sku");
            if (kw && *kw && !(nm && strstr(nm, kw)) && !(sku && strstr(sku, kw))) continue;
            json_array_append(all, p);
        }
        json_array_sort_by_id(all);
        size_t n = json_array_size(all), first = (size_t)(page - 1) * (size_t)per;
        json_t *a = json_array();
        for (size_t i = first; i < n && i < first + (size_t)per; i++)
            json_array_append_new(a, public_product(json_array_get(all, i)));
        json_decref(all);
        size_t pages = (n + (size_t)per - 1) / (size_t)per;
        sim_json(resp, 200, json_pack("{s:i,s:b,s:o,s:{s:I,s:I,s:i,s:i,s:I,s:[]}}", "status", 200,
                                      "success", 1, "data", a, "pagination", "count",
                                      (json_int_t)json_array_size(a), "total", (json_int_t)n,
                                      "perPage", per, "currentPage", page, "totalPages",
                                      (json_int_t)pages, "links"));
    } else if (put && sscanf(path, "/products/%lld%63s", &id, tail) == 1) {
        json_t *p = find_product(e, sid, id, NULL);
        if (!p) {
            error(resp, 404, "error", "The content you are trying to access is no longer available", NULL);
        } else {
            update_product(e, sid, p, req, resp);
        }
    } else if (get && !strcmp(path, "/categories")) {
        /* D-CAT: the store's categories, children nested in `items` [I]. */
        json_t *a = json_pack(
            "[{s:I,s:s,s:i,s:s,s:i,s:[{s:I,s:s,s:I,s:s,s:i,s:[]}]},{s:I,s:s,s:i,s:s,s:i,s:[]},"
            "{s:I,s:s,s:i,s:s,s:i,s:[]}]",
            "id", (json_int_t)256950451, "name", "الملابس", "parent_id", 0, "status", "active",
            "sort_order", 1, "items", "id", (json_int_t)256950452, "name", "تي شيرتات",
            "parent_id", (json_int_t)256950451, "status", "active", "sort_order", 1, "items", "id",
            (json_int_t)256950460, "name", "العطور", "parent_id", 0, "status", "active",
            "sort_order", 2, "items", "id", (json_int_t)256950470, "name", "القهوة والتمور",
            "parent_id", 0, "status", "active", "sort_order", 3, "items");
        sim_json(resp, 200, json_pack("{s:i,s:b,s:o,s:{s:i,s:i,s:i,s:i,s:i}}", "status", 200,
                                      "success", 1, "data", a, "pagination", "count", 3, "total",
                                      3, "perPage", 15, "currentPage", 1, "totalPages", 1));
    } else if (post && !strcmp(path, "/products/quantities/bulk")) {
        bulk_quantities(e, sid, req, resp);
    } else if (get && !strcmp(path, "/products/quantities")) {
        json_t *a = json_array();
        const char *k;
        json_t *p;
        json_object_foreach(bucket(e, "products"), k, p) {
            if (json_integer_value(json_object_get(p, "_store")) != sid) continue;
            json_array_append_new(a, json_pack("{s:O,s:O?,s:n,s:O?,s:O?,s:O?}", "id",
                                               json_object_get(p, "id"), "name",
                                               json_object_get(p, "name"), "sku_id", "sku",
                                               json_object_get(p, "sku"), "quantity",
                                               json_object_get(p, "quantity"), "unlimited_quantity",
                                               json_object_get(p, "unlimited_quantity")));
        }
        envelope(resp, 200, a);
    } else if (get && !strncmp(path, "/products/sku/", 14)) {
        json_t *p = find_product(e, sid, 0, path + 14);
        if (p) envelope(resp, 200, public_product(p));
        else error(resp, 404, "error", "The content you are trying to access is no longer available", NULL);
    } else if (get && sscanf(path, "/products/%lld%63s", &id, tail) == 1) {
        json_t *p = find_product(e, sid, id, NULL);
        if (p) envelope(resp, 200, public_product(p));
        else error(resp, 404, "error", "The content you are trying to access is no longer available", NULL);
    } else if (get && !strcmp(path, "/webhooks")) {
        json_t *a = json_array();
        size_t i;
        json_t *sub;
        json_array_foreach(bucket(e, "subs"), i, sub) {
            if (json_integer_value(json_object_get(sub, "store_id")) == sid)
                json_array_append(a, sub);
        }
        envelope(resp, 200, a);
    } else if (get && !strcmp(path, "/webhooks/events")) {
        envelope(resp, 200,
                 json_pack("[{s:I,s:s,s:s},{s:I,s:s,s:s},{s:I,s:s,s:s},{s:I,s:s,s:s}]", "id",
                           (json_int_t)1473353380, "label", "تم إنشاء طلب", "event",
                           "order.created", "id", (json_int_t)1473353381, "label", "تم تحديث طلب",
                           "event", "order.updated", "id", (json_int_t)1473353382, "label",
                           "تم تحديث حالة الطلب", "event", "order.status.updated", "id",
                           (json_int_t)1473353383, "label", "تم إلغاء طلب", "event",
                           "order.cancelled"));
    } else if (post && !strcmp(path, "/webhooks/subscribe")) {
        const char *url = jv_get_str(req->body, "url"), *event = jv_get_str(req->body, "event");
        json_t *fields = json_object();
        if (!url || strncmp(url, "http", 4) != 0)
            json_object_set_new(fields, "url", json_pack("[s]", "رابط غير صحيح"));
        if (!event) json_object_set_new(fields, "event", json_pack("[s]", "الحدث مطلوب"));
        if (json_object_size(fields)) {
            error(resp, 422, "validation_failed", "alert.invalid_fields", fields);
            return;
        }
        json_decref(fields);
        /* Re-subscribing the same URL and event updates instead of duplicating. */
        size_t i;
        json_t *sub, *found = NULL;
        json_array_foreach(bucket(e, "subs"), i, sub) {
            if (json_integer_value(json_object_get(sub, "store_id")) == sid &&
                !strcmp(jv_get_str(sub, "url"), url) && !strcmp(jv_get_str(sub, "event"), event))
                found = sub;
        }
        if (!found) {
            found = json_pack("{s:I,s:s,s:s,s:s,s:s,s:i,s:I}", "id",
                              (json_int_t)next_id(e, "webhook", 1001LL), "name",
                              jv_get_str(req->body, "name") ? jv_get_str(req->body, "name") : event,
                              "event", event, "type", "manual", "url", url, "version", 2,
                              "store_id", (json_int_t)sid);
            json_array_append_new(bucket(e, "subs"), found);
        }
        envelope(resp, 200, json_deep_copy(found));
    } else if (!strcmp(req->method, "DELETE") && !strcmp(path, "/webhooks/unsubscribe")) {
        const char *wid = httpd_req_arg(req->http, "id"), *url = httpd_req_arg(req->http, "url");
        json_t *subs = bucket(e, "subs");
        int removed = 0;
        for (size_t i = json_array_size(subs); i-- > 0;) {
            json_t *sub = json_array_get(subs, i);
            if (json_integer_value(json_object_get(sub, "store_id")) != sid) continue;
            if ((wid && json_integer_value(json_object_get(sub, "id")) == strtoll(wid, NULL, 10)) ||
                (url && !strcmp(jv_get_str(sub, "url"), url))) {
                json_array_remove(subs, i);
                removed++;
            }
        }
        if (removed) message(resp, 202, "The Object has been removed successfully");
        else error(resp, 404, "error", "The content you are trying to access is no longer available", NULL);
    } else {
        error(resp, 404, "error", "The content you are trying to access is no longer available",
              NULL);
    }
}

static void handle(void *stv, const struct sim_req *req, struct httpd_resp *resp)
{
    struct salla *e = stv;
    if (!strcmp(req->path, "/oauth2/token") && !strcmp(req->method, "POST"))
        oauth_token(e, req, resp);
    else if (!strcmp(req->path, "/oauth2/auth") && !strcmp(req->method, "GET"))
        oauth_auth(e, req, resp);
    else if (!strcmp(req->path, "/oauth2/user/info") && !strcmp(req->method, "GET"))
        user_info(e, req, resp);
    else if (!strncmp(req->path, "/admin/v2/", 10))
        admin(e, req, resp);
    else
        error(resp, 404, "error", "The content you are trying to access is no longer available",
              NULL);
}

/* ---------------------------------------------------------------------- */
/* Control API: /_sim/salla/...                                             */

static long long store_arg(struct salla *e, const struct sim_req *req)
{
    int64_t sid = 0;
    if (jv_get_id(req->body, "store_id", &sid, NULL) != 0) {
        const char *q = httpd_req_arg(req->http, "store_id");
        sid = q ? strtoll(q, NULL, 10) : 0;
    }
    return sid;
}

static void set_app(struct salla *e, const json_t *b)
{
    const char *v;
    if ((v = jv_get_str(b, "webhook_url"))) free(e->webhook_url), e->webhook_url = xstrdup(v);
    if ((v = jv_get_str(b, "webhook_secret"))) free(e->webhook_secret), e->webhook_secret = xstrdup(v);
    if ((v = jv_get_str(b, "webhook_strategy"))) free(e->strategy), e->strategy = xstrdup(v);
    int64_t ms;
    if (jv_get_id(b, "retry_ms", &ms, NULL) == 0 && ms > 0) e->retry_ms = ms;
    if (jv_get_id(b, "rate_limit", &ms, NULL) == 0) e->plan_limit = ms;
}

static int control(void *stv, const char *sub, const struct sim_req *req, struct httpd_resp *resp)
{
    struct salla *e = stv;
    if (strncmp(sub, "salla/", 6) != 0) return TH_ENOTFOUND;
    sub += 6;
    int post = !strcmp(req->method, "POST");
    long long id = 0;
    char tail[32] = "";
    if (post && !strcmp(sub, "app")) {
        set_app(e, req->body);
        sim_json(resp, 200, json_pack("{s:s?,s:s?,s:I}", "webhook_url", e->webhook_url,
                                      "webhook_strategy", e->strategy, "rate_limit",
                                      (json_int_t)e->plan_limit));
    } else if (post && !strcmp(sub, "stores")) {
        int64_t sid = 0;
        if (jv_get_id(req->body, "id", &sid, NULL) != 0) sid = next_id(e, "store", 1305146709LL);
        json_t *st = store_new(e, sid, jv_get_str(req->body, "name"));
        seed_catalogue(e, sid);
        sim_json(resp, 201, json_deep_copy(st));
    } else if (post && (!strcmp(sub, "install") || !strcmp(sub, "uninstall"))) {
        long long sid = store_arg(e, req);
        if (!sid) {
            sim_json(resp, 400, json_pack("{s:s}", "error", "store_id is required"));
            return 0;
        }
        store_new(e, sid, NULL);
        if (!strcmp(sub, "uninstall")) {
            const char *k;
            json_t *v;
            json_object_foreach(bucket(e, "tokens"), k, v) {
                if (json_integer_value(json_object_get(v, "store_id")) == sid)
                    json_object_set_new(v, "revoked", json_true());
            }
            send_event(e, sid, "app.uninstalled", json_object());
            sim_json(resp, 200, json_pack("{s:b}", "uninstalled", 1));
            return 0;
        }
        seed_catalogue(e, sid);
        json_t *tok = mint(e, sid, NULL);
        /* Easy Mode (§2.4): tokens arrive by webhook; `expires` is absolute. */
        json_t *data = json_pack("{s:O,s:I,s:O,s:O,s:s}", "access_token",
                                 json_object_get(tok, "access_token"), "expires",
                                 (json_int_t)(time(NULL) + ACCESS_TTL_S), "refresh_token",
                                 json_object_get(tok, "refresh_token"), "scope",
                                 json_object_get(tok, "scope"), "token_type", "bearer");
        send_event(e, sid, "app.installed", json_pack("{s:I,s:s}", "id", (json_int_t)1911645512,
                                                      "app_name", "tarheel"));
        send_event(e, sid, "app.store.authorize", data);
        sim_json(resp, 200, tok);
    } else if (post && !strcmp(sub, "orders")) {
        long long sid = store_arg(e, req);
        json_t *o = json_object_get(req->body, "data");
        if (!json_is_object(o)) o = req->body;
        if (!sid || !json_is_object(o) || !json_is_array(json_object_get(o, "items"))) {
            sim_json(resp, 400, json_pack("{s:s}", "error",
                                          "POST an order as GET /orders/{id} returns it, with "
                                          "?store_id= or \"store_id\""));
            return 0;
        }
        store_new(e, sid, NULL);
        json_t *copy = json_deep_copy(o);
        json_object_del(copy, "store_id");
        put_order(e, sid, copy);
        sim_json(resp, 201, json_pack("{s:o}", "data", public_order(copy, 0)));
        json_decref(copy);
    } else if (post && sscanf(sub, "orders/%lld%31s", &id, tail) == 2 && !strcmp(tail, "/status")) {
        char *k = key_of(id);
        json_t *o = json_object_get(bucket(e, "orders"), k);
        free(k);
        const char *slug = jv_get_str(req->body, "slug");
        if (!o) sim_json(resp, 404, json_pack("{s:s}", "error", "no such order"));
        else if (!slug || change_status(e, o, slug, jv_get_str(req->body, "note")) != 0)
            sim_json(resp, 422, json_pack("{s:s}", "error", "unknown slug (see GET /orders/statuses)"));
        else sim_json(resp, 200, json_pack("{s:o}", "data", public_order(o, 0)));
    } else if (post && !strcmp(sub, "products")) {
        long long sid = store_arg(e, req);
        json_t *p = json_object_get(req->body, "data");
        if (!json_is_object(p)) p = req->body;
        if (!sid || !json_is_object(p)) {
            sim_json(resp, 400, json_pack("{s:s}", "error", "POST a product with store_id"));
            return 0;
        }
        json_t *copy = json_deep_copy(p);
        json_object_del(copy, "store_id");
        int64_t pid = 0;
        if (jv_get_id(copy, "id", &pid, NULL) != 0 || pid <= 0) {
            pid = next_id(e, "product", 1672908878LL);
            json_object_set_new(copy, "id", json_integer(pid));
        }
        json_object_set_new(copy, "_store", json_integer(sid));
        char *k = key_of(pid);
        json_object_set(bucket(e, "products"), k, copy);
        free(k);
        sim_json(resp, 201, json_pack("{s:o}", "data", public_product(copy)));
        json_decref(copy);
    } else if (post && !strcmp(sub, "generate")) {
        long long sid = store_arg(e, req);
        int64_t count = 10;
        if (jv_get_id(req->body, "count", &count, NULL) != 0) count = 10;
        const char *f = jv_get_str(req->body, "from"), *t = jv_get_str(req->body, "to");
        time_t t0 = time(NULL), t1 = t0;
        if (!sid || count < 1 || count > 1000 || (f && riyadh_parse(f, 0, &t0) != 0) ||
            (t && riyadh_parse(t, 1, &t1) != 0) || (f && t && t1 < t0)) {
            sim_json(resp, 400, json_pack("{s:s}", "error",
                                          "store_id, 1 <= count <= 1000, optional from <= to "
                                          "(YYYY-MM-DD or YYYY-MM-DD HH:MM:SS, Riyadh time)"));
            return 0;
        }
        if (f && !t) t1 = time(NULL);
        if (t && !f) t0 = t1;
        store_new(e, sid, NULL);
        seed_catalogue(e, sid);
        json_t *ids = json_array();
        int sold_out = 0;
        for (int i = 0; i < count; i++) {
            json_t *o = sample_order(e, sid, i);
            if (!o) { /* nothing left to sell: the store takes no order */
                sold_out++;
                continue;
            }
            /* Dates spread evenly over [from, to] (for back-fill tests). */
            if (f || t) {
                time_t when = count > 1 ? t0 + (time_t)((t1 - t0) * i / (count - 1)) : t0;
                json_object_set_new(o, "date", riyadh_date(when));
            }
            put_order(e, sid, o);
            json_array_append(ids, json_object_get(o, "id"));
            json_decref(o);
        }
        json_t *ans = json_pack("{s:o}", "orders", ids);
        if (sold_out) json_object_set_new(ans, "sold_out", json_integer(sold_out));
        sim_json(resp, 201, ans);
    } else if (post && !strcmp(sub, "stock")) {
        /* A stock count in the store: every tracked product of the store, or
         * the one named by sku (or product_id), gets quantity. */
        long long sid = store_arg(e, req);
        int64_t qty = -1, pid = 0;
        const char *sku = jv_get_str(req->body, "sku");
        if (jv_get_id(req->body, "product_id", &pid, NULL) != 0) pid = 0;
        if (!sid || jv_get_id(req->body, "quantity", &qty, NULL) != 0 || qty < 0) {
            sim_json(resp, 400, json_pack("{s:s}", "error",
                                          "store_id and quantity >= 0, optional sku or product_id"));
            return 0;
        }
        store_new(e, sid, NULL);
        seed_catalogue(e, sid);
        json_t *set = json_array();
        const char *k;
        json_t *p;
        json_object_foreach(bucket(e, "products"), k, p) {
            if (json_integer_value(json_object_get(p, "_store")) != sid ||
                json_is_true(json_object_get(p, "unlimited_quantity")))
                continue;
            if (sku && strcmp(jv_get_str(p, "sku") ? jv_get_str(p, "sku") : "", sku) != 0) continue;
            if (pid && json_integer_value(json_object_get(p, "id")) != pid) continue;
            json_object_set_new(p, "quantity", json_integer(qty));
            json_object_set_new(p, "status", json_string(qty > 0 ? "sale" : "out"));
            json_array_append_new(set, public_product(p));
        }
        sim_json(resp, json_array_size(set) ? 200 : 404, json_pack("{s:o}", "products", set));
    } else if (post && !strcmp(sub, "tokens/expire")) {
        /* The store's access tokens expire now (as when Salla ends them
         * early): the next API call with one answers 401 and the app must
         * use its refresh token. Refresh tokens are untouched. */
        long long sid = store_arg(e, req);
        int n = 0;
        const char *k;
        json_t *t;
        json_object_foreach(bucket(e, "tokens"), k, t) {
            if (sid && json_integer_value(json_object_get(t, "store_id")) != sid) continue;
            if (json_integer_value(json_object_get(t, "exp")) < time(NULL)) continue;
            json_object_set_new(t, "exp", json_integer((json_int_t)time(NULL) - 1));
            n++;
        }
        sim_json(resp, 200, json_pack("{s:i}", "expired", n));
    } else if (!strcmp(req->method, "GET") && !strcmp(sub, "orders")) {
        json_t *a = json_array();
        const char *k;
        json_t *o;
        json_object_foreach(bucket(e, "orders"), k, o) json_array_append_new(a, public_order(o, 0));
        sim_json(resp, 200, json_pack("{s:o}", "orders", a));
    } else {
        return TH_ENOTFOUND;
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Lifecycle and state                                                      */

static json_t *empty_state(void)
{
    return json_pack("{s:{},s:{},s:{},s:{},s:{},s:{},s:[],s:{}}", "stores", "tokens", "refresh",
                     "codes", "orders", "products", "subs", "next");
}

static void *create(struct sim *s)
{
    struct salla *e = xcalloc(1, sizeof *e);
    e->s = s;
    e->client_id = sim_opt(s, "client-id") ? sim_opt(s, "client-id") : "demo-client";
    e->client_secret = sim_opt(s, "client-secret") ? sim_opt(s, "client-secret") : "demo-secret";
    e->webhook_url = xstrdup(sim_opt(s, "webhook-url"));
    e->webhook_secret = xstrdup(sim_opt(s, "webhook-secret") ? sim_opt(s, "webhook-secret")
                                                              : "demo-webhook-secret");
    e->strategy = xstrdup(sim_opt(s, "webhook-strategy") ? sim_opt(s, "webhook-strategy")
                                                          : "signature");
    const char *ms = sim_opt(s, "webhook-retry-ms");
    e->retry_ms = ms ? strtol(ms, NULL, 10) : 300000;
    const char *plan = sim_opt(s, "rate-limit-plan");
    e->plan_limit = !plan || !strcmp(plan, "pro") ? 360
                    : !strcmp(plan, "plus")       ? 120
                    : !strcmp(plan, "special")    ? 720
                                                  : 0;
    e->st = empty_state();
    e->pending_qty = json_array();
    return e;
}

static void destroy(void *stv)
{
    struct salla *e = stv;
    json_decref(e->st);
    json_decref(e->pending_qty);
    free(e->webhook_url);
    free(e->webhook_secret);
    free(e->strategy);
    free(e);
}

static void reset(void *stv)
{
    struct salla *e = stv;
    json_decref(e->st);
    e->st = empty_state();
    json_array_clear(e->pending_qty);
}

static json_t *save(void *stv)
{
    return json_deep_copy(((struct salla *)stv)->st);
}

static int load(void *stv, const json_t *saved, struct th_err *err)
{
    struct salla *e = stv;
    if (!json_is_object(saved) || !json_is_object(json_object_get(saved, "orders")))
        return th_err_set(err, TH_EPARSE, "not a Salla emulator state");
    json_decref(e->st);
    e->st = json_deep_copy(saved);
    return 0;
}

const struct sim_ops salla_sim_ops = {
    .name = "salla",
    .create = create,
    .destroy = destroy,
    .reset = reset,
    .handle = handle,
    .control = control,
    .save = save,
    .load = load,
    .usage = "  --client-id ID          OAuth client id (default demo-client)\n"
             "  --client-secret S       OAuth client secret (default demo-secret)\n"
             "  --webhook-url URL       the app's webhook URL (app and store events)\n"
             "  --webhook-secret S      signs deliveries (default demo-webhook-secret)\n"
             "  --webhook-strategy S    signature (default) or token\n"
             "  --webhook-retry-ms N    delay between delivery retries (default 300000)\n"
             "  --rate-limit-plan P     plus (120/min), pro (360, default), special (720), off\n",
};
