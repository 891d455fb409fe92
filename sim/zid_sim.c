/*
 * zid_sim — the Zid emulator (../shared/api/zid.md; sim/zid.md).
 *
 * One process serves both Zid hosts: OAuth (/oauth/...) and the Merchant
 * API (/v1/...). The API has two back-end families and the emulator keeps
 * them apart as Zid does (zid.md §1): the managers service (/v1/managers/...:
 * X-Manager-Token, {"status":"object",...,"message":{...}} envelopes, integer
 * ids, "YYYY-MM-DD HH:MM:SS" times, page/per_page) and the catalog service
 * (/v1/products/, /v1/locations/: Access-Token + Store-Id + Role, bare
 * DRF-style objects, {count,next,previous,results}, UUIDs, trailing
 * slashes).
 *
 * Orders are kept in the shape GET .../orders/{id}/view returns, with money
 * as Zid prints it: decimal strings with 14 fraction digits, sometimes with
 * float noise past the halala ("223.56000086523000"), tax rates as fractions.
 * The amounts of generated orders are exact to the halala; the noise never
 * reaches the second decimal, so rounding recovers them.
 *
 * Webhooks: Zid does not sign deliveries. A subscription made through
 * POST /v1/managers/webhooks gets the bare order JSON POSTed to its
 * target_url, with HTTP Basic credentials when it was created with
 * username/password. Zid's circuit breaker is emulated per subscription
 * (≥10 failures in an hour: degraded; ≥30: broken, pending deliveries
 * discarded, nothing sent until recovered through the API).
 */
#include "sim/zid_sim.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/jv.h"
#include "core/money.h"
#include "core/xmalloc.h"

/* Tokens live a year (zid.md §2.2: expires_in 31536000). */
#define TOKEN_TTL_S 31536000L
/* Authorization codes: single use, ten minutes [I]. */
#define CODE_TTL_S 600
#define MAX_PER_PAGE 100   /* orders (§4.2) */
#define MAX_PAGE_SIZE 50   /* products (§5.1) */
#define MAX_BULK 50        /* bulk product PATCH (§5.3) */
#define HEALTH_WINDOW_S 3600
#define DEGRADED_AT 10
#define BROKEN_AT 30

struct zid {
    struct sim *s;
    json_t *st; /* {stores, codes, tokens, refresh, orders, products, subs, next} */
    const char *client_id, *client_secret;
    char *app_webhook_url;
    long retry_ms;
    long max_attempts;
    long rate_limit; /* requests per minute per store; 0 = off */
    int refresh_reuse; /* 1: a used refresh token keeps working [I: switch, §2.2] */
};

/* Order statuses (§4.1): code, display id, colour, English, Arabic. */
static const struct {
    const char *code;
    int id;
    const char *color, *en, *ar;
} statuses[] = {
    {"new", 1, "#3498db", "New", "جديد"},
    {"preparing", 2, "#f39c12", "Preparing", "جاري التجهيز"},
    {"ready", 3, "#9b59b6", "Ready", "جاهز"},
    {"indelivery", 4, "#1abc9c", "In delivery", "جاري التوصيل"},
    {"delivered", 5, "#27ae60", "Delivered", "تم التوصيل"},
    {"cancelled", 7, "#e74c3c", "Cancelled", "تم الإلغاء"},
    {"reversed", 8, "#7f8c8d", "Reversed", "تم الاسترجاع"},
    {"reverse_in_progress", 9, "#95a5a6", "Reverse in progress", "جاري الاسترجاع"},
    {"partially_reversed", 10, "#95a5a6", "Partially reversed", "مسترجع جزئيا"},
};
#define NSTATUSES (sizeof statuses / sizeof statuses[0])
/* The codes change-order-status accepts (§4.4). */
#define NSETTABLE 6

/* Normalises the spellings Zid's own docs disagree on (§11 X1, X2):
 * canceled ≡ cancelled, inDelivery ≡ indelivery, case-insensitive. */
static int status_index(const char *code)
{
    if (!code) return -1;
    if (!strcasecmp(code, "canceled")) code = "cancelled";
    if (!strcasecmp(code, "processingReverse")) code = "reverse_in_progress";
    for (size_t i = 0; i < NSTATUSES; i++)
        if (!strcasecmp(statuses[i].code, code)) return (int)i;
    return -1;
}

static const char *const events[] = {
    "order.create",          "order.status.update",      "order.payment_status.update",
    "product.create",        "product.update",           "product.publish",
    "product.delete",        "abandoned_cart.created",   "abandoned_cart.completed",
    "customer.create",       "customer.update",          "customer.merchant.update",
    "customer.login",        "category.create",          "category.update",
    "category.delete",
};

/* ---------------------------------------------------------------------- */
/* Small helpers                                                            */

static json_t *bucket(struct zid *z, const char *name)
{
    return json_object_get(z->st, name);
}

static long long next_id(struct zid *z, const char *kind, long long base)
{
    return sim_next_id(z->s, bucket(z, "next"), kind, base, 53);
}

static char *key_of(long long id)
{
    return xasprintf("%lld", id);
}

static char *uuid(struct zid *z)
{
    uint64_t a = sim_rand(z->s), b = sim_rand(z->s);
    return xasprintf("%08llx-%04llx-4%03llx-%04llx-%012llx", (unsigned long long)(a >> 32),
                     (unsigned long long)((a >> 16) & 0xffff), (unsigned long long)(a & 0xfff),
                     (unsigned long long)(0x8000 | ((b >> 48) & 0x3fff)),
                     (unsigned long long)(b & 0xffffffffffffULL));
}

/* "YYYY-MM-DD HH:MM:SS" in UTC, as the managers service prints times [I:
 * no zone is given; three docs examples put issue_date at +3 h]. */
static void utc_plain(time_t t, char out[20])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 20, "%Y-%m-%d %H:%M:%S", &tm);
}

static json_t *utc_iso(time_t t)
{
    struct tm tm;
    char buf[40];
    gmtime_r(&t, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S.000000Z", &tm);
    return json_string(buf);
}

/* Money as the managers service prints it: 14 fraction digits, with float
 * noise after the halala when noise != 0 ("223.56000086523000"). */
static json_t *dec14(int64_t halalas, unsigned noise)
{
    char text[MONEY_FMT_MAX + 16];
    money_format_dec(halalas, 2, 2, text, MONEY_FMT_MAX);
    size_t n = strlen(text);
    if (halalas < 0 || noise == 0)
        snprintf(text + n, sizeof text - n, "000000000000");
    else
        snprintf(text + n, sizeof text - n, "%06u000000", noise % 1000u);
    return json_string(text);
}

static int lang_ar(const struct sim_req *req)
{
    const char *l = httpd_req_header(req->http, "Accept-Language");
    return l && !strncasecmp(l, "ar", 2);
}

static void strip_private(json_t *o)
{
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(o, tmp, k, v) {
        if (k[0] == '_') json_object_del(o, k);
    }
}

/* ---------------------------------------------------------------------- */
/* Envelopes and errors, per family (§8)                                    */

static json_t *msg_block(void)
{
    return json_pack("{s:s,s:n,s:n,s:n}", "type", "object", "code", "name", "description");
}

/* Managers legacy envelope: {"status":"object", key: v, "message":{...}}. */
static void managers_ok(struct httpd_resp *resp, int status, const char *key, json_t *v)
{
    json_t *o = json_pack("{s:s}", "status", "object");
    if (key) json_object_set_new(o, key, v);
    json_object_set_new(o, "message", msg_block());
    sim_json(resp, status, o);
}

/* Managers error [I: shape not captured; §8.2 emulator choice]. */
static void managers_error(struct httpd_resp *resp, int status, const char *code, const char *name,
                           const char *desc, json_t *fields)
{
    json_t *o = json_pack("{s:s,s:{s:s,s:s,s:s,s:s}}", "status", "error", "message", "type", "error",
                          "code", code, "name", name, "description", desc);
    if (fields) json_object_set_new(o, "errors", fields);
    sim_json(resp, status, o);
}

/* Catalog (DRF) error: {"detail": "..."} or {"field": ["..."]}. */
static void catalog_error(struct httpd_resp *resp, int status, const char *detail)
{
    sim_json(resp, status, json_pack("{s:s}", "detail", detail));
}

/* ---------------------------------------------------------------------- */
/* Stores and tokens                                                        */

static json_t *store_get(struct zid *z, long long id)
{
    char *k = key_of(id);
    json_t *st = json_object_get(bucket(z, "stores"), k);
    free(k);
    return st;
}

static json_t *store_new(struct zid *z, long long id, const char *title)
{
    json_t *st = store_get(z, id);
    if (st) return st;
    char *u = uuid(z);
    char *url = xasprintf("https://store%lld.zid.store/", id);
    char *user = xasprintf("store%lld", id);
    st = json_pack("{s:I,s:s,s:s,s:s,s:s,s:{s:i,s:s,s:s,s:s},s:s,s:b}", "id", (json_int_t)id,
                   "uuid", u, "title", title ? title : "متجر زد التجريبي", "url", url, "username",
                   user, "currency", "id", 4, "code", "SAR", "name", "Saudi Riyal", "symbol", "ر.س",
                   "timezone", "Asia/Riyadh", "has_multi_product_inventory", 0);
    char *k = key_of(id);
    json_object_set_new(bucket(z, "stores"), k, st);
    free(k);
    free(u);
    free(url);
    free(user);
    return st;
}

/* Mints the two tokens and a refresh token for a store (§2.2). Returns the
 * token answer (new reference). */
static json_t *mint(struct zid *z, long long store_id)
{
    char *auth = sim_token(z->s, "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.");
    char *manager = sim_token(z->s, "mgr_");
    char *rt = sim_token(z->s, "def50200");
    time_t now = time(NULL);
    json_object_set_new(bucket(z, "tokens"), auth,
                        json_pack("{s:I,s:s,s:I,s:b}", "store_id", (json_int_t)store_id, "manager",
                                  manager, "exp", (json_int_t)(now + TOKEN_TTL_S), "revoked", 0));
    json_object_set_new(bucket(z, "refresh"), rt,
                        json_pack("{s:I,s:s,s:b}", "store_id", (json_int_t)store_id, "auth", auth,
                                  "used", 0));
    json_t *ans = json_pack("{s:s,s:I,s:s,s:s,s:s}", "token_type", "Bearer", "expires_in",
                            (json_int_t)TOKEN_TTL_S, "access_token", manager, "authorization", auth,
                            "refresh_token", rt);
    free(auth);
    free(manager);
    free(rt);
    return ans;
}

static void revoke_store(struct zid *z, long long store_id)
{
    const char *k;
    json_t *v;
    json_object_foreach(bucket(z, "tokens"), k, v) {
        if (json_integer_value(json_object_get(v, "store_id")) == store_id)
            json_object_set_new(v, "revoked", json_true());
    }
    json_object_foreach(bucket(z, "refresh"), k, v) {
        if (json_integer_value(json_object_get(v, "store_id")) == store_id)
            json_object_set_new(v, "used", json_true());
    }
}

/*
 * The store the request's tokens grant, or 0 with the 401/403 answered.
 * Managers routes want Bearer + X-Manager-Token; catalog routes Bearer +
 * Access-Token (or X-Manager-Token, as the SDK sends on some calls) +
 * Store-Id + Role: Manager (zid.md §1, §9.2).
 */
static long long authorize(struct zid *z, const struct sim_req *req, struct httpd_resp *resp,
                           int catalog)
{
    const char *h = httpd_req_header(req->http, "Authorization");
    const char *mgr = httpd_req_header(req->http, catalog ? "Access-Token" : "X-Manager-Token");
    if (!mgr && catalog) mgr = httpd_req_header(req->http, "X-Manager-Token");
    json_t *t = h && !strncasecmp(h, "Bearer ", 7) ? json_object_get(bucket(z, "tokens"), h + 7)
                                                   : NULL;
    int ok = t && mgr && !json_is_true(json_object_get(t, "revoked")) &&
             json_integer_value(json_object_get(t, "exp")) >= time(NULL) &&
             !strcmp(jv_get_str(t, "manager"), mgr);
    if (!ok) {
        if (catalog)
            catalog_error(resp, 401, "Authentication credentials were not provided or are invalid.");
        else
            managers_error(resp, 401, "unauthorized", "Unauthorized",
                           "Unauthenticated: send Authorization: Bearer and X-Manager-Token.", NULL);
        return 0;
    }
    long long sid = json_integer_value(json_object_get(t, "store_id"));
    if (catalog) {
        const char *store = httpd_req_header(req->http, "Store-Id");
        const char *role = httpd_req_header(req->http, "Role");
        if (!store || strtoll(store, NULL, 10) != sid) {
            catalog_error(resp, 400, "The Store-Id header is required and must match the token's "
                                     "store.");
            return 0;
        }
        if (!role || strcasecmp(role, "Manager") != 0) {
            catalog_error(resp, 403, "You do not have permission to perform this action.");
            return 0;
        }
    }
    return sid;
}

/* Per (app, store) budget (§6): 429 + Retry-After in the family's error
 * shape [I: Zid documents a leaky bucket and no headers; a fixed window of
 * the same rate is close enough for clients that pace themselves]. */
static int throttled(struct zid *z, long long sid, int catalog, struct httpd_resp *resp)
{
    char key[48];
    snprintf(key, sizeof key, "store:%lld", sid);
    long wait = sim_rate_take(z->s, key, z->rate_limit, 60, NULL, NULL);
    if (wait <= 0) return 0;
    char v[32];
    snprintf(v, sizeof v, "%ld", wait);
    httpd_resp_header(resp, "Retry-After", v);
    if (catalog) {
        char *d = xasprintf("Request was throttled. Expected available in %ld seconds.", wait);
        catalog_error(resp, 429, d);
        free(d);
    } else {
        managers_error(resp, 429, "too_many_requests", "Too Many Requests",
                       "Too many requests: 60 requests per minute per store.", NULL);
    }
    return 1;
}

/* ---------------------------------------------------------------------- */
/* OAuth (§2)                                                               */

static void oauth_error(struct httpd_resp *resp, int status, const char *err, const char *desc)
{
    /* [I: Passport/league style] */
    sim_json(resp, status,
             json_pack("{s:s,s:s,s:s}", "error", err, "error_description", desc, "message", desc));
}

static void oauth_authorize(struct zid *z, const struct sim_req *req, struct httpd_resp *resp)
{
    const char *cid = httpd_req_arg(req->http, "client_id");
    const char *redirect = httpd_req_arg(req->http, "redirect_uri");
    const char *rtype = httpd_req_arg(req->http, "response_type");
    const char *state = httpd_req_arg(req->http, "state");
    if (!cid || strcmp(cid, z->client_id) != 0) {
        oauth_error(resp, 401, "invalid_client", "Client authentication failed");
        return;
    }
    if (!redirect || !rtype || strcmp(rtype, "code") != 0) {
        oauth_error(resp, 400, "invalid_request",
                    "redirect_uri and response_type=code are required");
        return;
    }
    const char *sid_arg = httpd_req_arg(req->http, "store_id"); /* emulator only */
    long long sid = sid_arg ? strtoll(sid_arg, NULL, 10) : 0;
    if (!sid) {
        const char *k;
        json_t *v;
        json_object_foreach(bucket(z, "stores"), k, v) {
            sid = json_integer_value(json_object_get(v, "id"));
            break;
        }
    }
    if (!sid) sid = 251073;
    store_new(z, sid, NULL);
    char *code = sim_token(z->s, "def50200c");
    json_object_set_new(bucket(z, "codes"), code,
                        json_pack("{s:I,s:s,s:I,s:b}", "store_id", (json_int_t)sid, "redirect_uri",
                                  redirect, "exp", (json_int_t)(time(NULL) + CODE_TTL_S), "used",
                                  0));
    char *loc = xasprintf("%s%scode=%s%s%s", redirect, strchr(redirect, '?') ? "&" : "?", code,
                          state ? "&state=" : "", state ? state : "");
    httpd_resp_header(resp, "Location", loc);
    httpd_resp_text(resp, 302, "");
    free(loc);
    free(code);
}

static void oauth_token(struct zid *z, const struct sim_req *req, struct httpd_resp *resp)
{
    char gt[64], id[128], secret[128], code[256], rt[256], redirect[512];
    if (!sim_body_field(req, "grant_type", gt, sizeof gt)) {
        oauth_error(resp, 400, "invalid_request", "The grant_type parameter is required.");
        return;
    }
    if (!sim_body_field(req, "client_id", id, sizeof id) ||
        !sim_body_field(req, "client_secret", secret, sizeof secret) ||
        strcmp(id, z->client_id) != 0 || strcmp(secret, z->client_secret) != 0) {
        oauth_error(resp, 401, "invalid_client", "Client authentication failed");
        return;
    }
    if (!strcmp(gt, "authorization_code")) {
        json_t *c = sim_body_field(req, "code", code, sizeof code)
                        ? json_object_get(bucket(z, "codes"), code)
                        : NULL;
        const char *want = c ? jv_get_str(c, "redirect_uri") : NULL;
        if (!c || json_is_true(json_object_get(c, "used")) ||
            json_integer_value(json_object_get(c, "exp")) < time(NULL) ||
            !sim_body_field(req, "redirect_uri", redirect, sizeof redirect) ||
            strcmp(redirect, want) != 0) {
            oauth_error(resp, 400, "invalid_grant",
                        "The provided authorization grant (e.g., authorization code, resource "
                        "owner credentials) or refresh token is invalid, expired, revoked, does "
                        "not match the redirection URI used in the authorization request, or was "
                        "issued to another client.");
            return;
        }
        json_object_set_new(c, "used", json_true());
        sim_json(resp, 200, mint(z, json_integer_value(json_object_get(c, "store_id"))));
    } else if (!strcmp(gt, "refresh_token")) {
        json_t *r = sim_body_field(req, "refresh_token", rt, sizeof rt)
                        ? json_object_get(bucket(z, "refresh"), rt)
                        : NULL;
        if (!r || (json_is_true(json_object_get(r, "used")) && !z->refresh_reuse)) {
            /* Passport answers a used or unknown refresh token with 401
             * invalid_request "The refresh token is invalid." [I, §2.2] */
            oauth_error(resp, 401, "invalid_request", "The refresh token is invalid.");
            return;
        }
        long long sid = json_integer_value(json_object_get(r, "store_id"));
        /* Passport revokes the old access token and refresh token [I]. */
        json_t *old = json_object_get(bucket(z, "tokens"), jv_get_str(r, "auth"));
        if (old && !z->refresh_reuse) json_object_set_new(old, "revoked", json_true());
        json_object_set_new(r, "used", json_true());
        sim_json(resp, 200, mint(z, sid));
    } else {
        oauth_error(resp, 400, "unsupported_grant_type",
                    "The authorization grant type is not supported by the authorization server.");
    }
}

/* ---------------------------------------------------------------------- */
/* Orders (§4)                                                              */

static json_t *find_order(struct zid *z, long long sid, long long id)
{
    char *k = key_of(id);
    json_t *o = json_object_get(bucket(z, "orders"), k);
    free(k);
    if (!o || (sid && json_integer_value(json_object_get(o, "_store")) != sid)) return NULL;
    return o;
}

/* Status objects rendered in the request's language (§1: Accept-Language
 * localises order_status.name and display_status.name). */
static void render_status(json_t *o, int ar)
{
    int i = status_index(jv_get_str(json_object_get(o, "order_status"), "code"));
    if (i < 0) i = 0;
    const char *name = ar ? statuses[i].ar : statuses[i].en;
    json_object_set_new(o, "order_status", json_pack("{s:s,s:s}", "name", name, "code",
                                                     statuses[i].code));
    json_object_set_new(o, "display_status",
                        json_pack("{s:i,s:s,s:s,s:s}", "id", statuses[i].id, "code",
                                  statuses[i].code, "color", statuses[i].color, "name", name));
}

enum payload { P_VIEW, P_DEFAULT, P_SIMPLE, P_TINY, P_WEBHOOK };

/* The order as the API shows it for a payload type (§4.2, §4.3). */
static json_t *public_order(const json_t *o, int ar, enum payload p)
{
    json_t *c = json_deep_copy(o);
    strip_private(c);
    render_status(c, ar);
    if (p == P_TINY) {
        json_t *t = json_pack(
            "{s:O,s:O,s:s,s:O?,s:O,s:s,s:O?,s:O?,s:O?,s:O?,s:n,s:O?,s:O?,s:O?}", "id",
            json_object_get(c, "id"), "invoice_number", json_object_get(c, "invoice_number"),
            "currency", "SAR", "customer", json_object_get(c, "customer"), "status",
            json_object_get(json_object_get(c, "order_status"), "code"), "source", "md",
            "shipping_method", json_object_get(json_object_get(c, "shipping"), "method"),
            "shipping_address", json_object_get(json_object_get(c, "shipping"), "address"),
            "payment", jv_path(c, "payment.method.code"), "payment_status",
            json_object_get(c, "payment_status"), "transaction_reference", "total",
            json_object_get(c, "order_total"), "created_at", json_object_get(c, "created_at"),
            "updated_at", json_object_get(c, "updated_at"));
        json_decref(c);
        return t;
    }
    if (p != P_VIEW) {
        json_object_del(c, "histories");
        json_object_del(c, "previous_order");
        json_object_del(c, "next_order");
        json_object_del(c, "invoice_settings");
    }
    if (p == P_SIMPLE) json_object_del(c, "products"); /* simple has no products (§4.2) */
    if (p == P_WEBHOOK) {
        /* The webhook schema types some fields differently (§1.1, X6):
         * customer.id and verified as strings, mobile with a plus. */
        json_t *cu = json_object_get(c, "customer");
        char buf[64];
        if (jv_get_text(cu, "id", buf, sizeof buf)) json_object_set_new(cu, "id", json_string(buf));
        if (jv_get_text(cu, "verified", buf, sizeof buf))
            json_object_set_new(cu, "verified", json_string(buf));
        const char *m = jv_get_str(cu, "mobile");
        if (m && *m && *m != '+') {
            char *pm = xasprintf("+%s", m);
            json_object_set_new(cu, "mobile", json_string(pm));
            free(pm);
        }
    }
    return c;
}

/* Basic auth header line for a subscription, or NULL. */
static char *basic_auth(const json_t *sub)
{
    const char *u = jv_get_str(sub, "_username"), *pw = jv_get_str(sub, "_password");
    if (!u || !pw) return NULL;
    char *plain = xasprintf("%s:%s", u, pw);
    char *b64 = sim_base64(plain, strlen(plain));
    char *h = xasprintf("Authorization: Basic %s", b64);
    free(plain);
    free(b64);
    return h;
}

/* Does an order satisfy a subscription's conditions (§3.1)? */
static int conditions_match(const json_t *sub, const json_t *o)
{
    json_t *c = json_object_get(sub, "conditions");
    if (!json_is_object(c)) return 1;
    const char *st = jv_get_str(c, "status");
    if (st && status_index(st) !=
                  status_index(jv_get_str(json_object_get(o, "order_status"), "code")))
        return 0;
    const char *pm = jv_get_str(c, "payment_method");
    const char *name = jv_get_str(jv_path(o, "payment.method"), "name");
    if (pm && (!name || strcasecmp(pm, name) != 0)) return 0;
    int64_t want = 0, have = 0;
    if (jv_get_id(c, "delivery_option_id", &want, NULL) == 0 &&
        (jv_get_id(jv_path(o, "shipping.method"), "id", &have, NULL) != 0 || want != have))
        return 0;
    return 1;
}

static json_t *find_sub(struct zid *z, const char *id)
{
    size_t i;
    json_t *sub;
    json_array_foreach(bucket(z, "subs"), i, sub) {
        if (id && !strcmp(jv_get_str(sub, "id"), id)) return sub;
    }
    return NULL;
}

/*
 * Zid's circuit breaker (§3.3, D-WH-HEALTH): failures counted per
 * subscription in a sliding hour, a 429 answer is not a failure, one success
 * resets to healthy; ≥10 degraded (still delivered), ≥30 broken: pending
 * deliveries are discarded and nothing is sent until recovered.
 */
static int on_result(void *arg, const char *tag, int ok, long status)
{
    struct zid *z = arg;
    int stop = 0;
    sim_lock(z->s);
    json_t *sub = find_sub(z, tag);
    if (sub) {
        json_t *fails = json_object_get(sub, "_failures");
        time_t now = time(NULL);
        if (ok) {
            json_array_clear(fails);
            json_object_set_new(sub, "health_status", json_string("healthy"));
        } else if (status != 429 && strcmp(jv_get_str(sub, "health_status"), "broken") != 0) {
            json_array_append_new(fails, json_integer(now));
            while (json_array_size(fails) &&
                   json_integer_value(json_array_get(fails, 0)) < now - HEALTH_WINDOW_S)
                json_array_remove(fails, 0);
            size_t n = json_array_size(fails);
            if (n >= BROKEN_AT) {
                json_object_set_new(sub, "health_status", json_string("broken"));
                json_object_set_new(sub, "broken_at", utc_iso(now));
                sim_webhook_cancel(z->s, tag);
            } else if (n >= DEGRADED_AT) {
                json_object_set_new(sub, "health_status", json_string("degraded"));
            }
        }
        stop = !strcmp(jv_get_str(sub, "health_status"), "broken");
    }
    sim_unlock(z->s);
    return stop;
}

/* Delivers an event about an order (or product) to every matching,
 * unbroken subscription of the store. Takes body. */
static void fire(struct zid *z, long long sid, const char *event, json_t *body, const json_t *order)
{
    char *text = jv_dump(body);
    json_decref(body);
    size_t i;
    json_t *sub;
    json_array_foreach(bucket(z, "subs"), i, sub) {
        if (json_integer_value(json_object_get(sub, "_store")) != sid) continue;
        if (strcmp(jv_get_str(sub, "event"), event) != 0) continue;
        if (!strcmp(jv_get_str(sub, "health_status"), "broken")) continue;
        if (order && !conditions_match(sub, order)) continue;
        char *auth = basic_auth(sub);
        struct sim_webhook w = {.url = jv_get_str(sub, "target_url"),
                                .event = event,
                                .body = text,
                                .auth_header = auth,
                                .max_attempts = (int)z->max_attempts,
                                .retry_delay_ms = z->retry_ms,
                                .timeout_ms = 15000, /* [I: undocumented] */
                                .on_result = on_result,
                                .result_arg = z,
                                .tag = jv_get_str(sub, "id")};
        sim_webhook_send(z->s, &w);
        free(auth);
    }
    free(text);
}

static void fire_order(struct zid *z, const json_t *o, const char *event)
{
    long long sid = json_integer_value(json_object_get(o, "_store"));
    fire(z, sid, event, public_order(o, 0, P_WEBHOOK), o);
}

static void add_history(json_t *o, int i, const char *comment)
{
    char now[20];
    utc_plain(time(NULL), now);
    json_t *h = json_object_get(o, "histories");
    if (!json_is_array(h)) {
        h = json_array();
        json_object_set_new(o, "histories", h);
    }
    json_array_append_new(h, json_pack("{s:i,s:s,s:s,s:s,s:s}", "order_status_id", statuses[i].id,
                                       "order_status_name", statuses[i].en, "changed_by_type",
                                       "Merchant", "comment", comment, "created_at", now));
}

/* Stores an order given in the view shape; fills what is missing (id,
 * code, times, status) and fires order.create. Takes o; returns borrowed. */
static json_t *put_order(struct zid *z, long long sid, json_t *o)
{
    int64_t id = 0;
    if (jv_get_id(o, "id", &id, NULL) != 0 || id <= 0) {
        id = next_id(z, "order", 39018292LL);
        json_object_set_new(o, "id", json_integer(id));
    }
    json_object_set_new(o, "invoice_number", json_integer(id));
    if (!jv_get_str(o, "code")) {
        static const char abc[] = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
        char code[11];
        for (int i = 0; i < 10; i++) code[i] = abc[sim_rand(z->s) % (sizeof abc - 1)];
        code[10] = '\0';
        json_object_set_new(o, "code", json_string(code));
    }
    char now[20];
    utc_plain(time(NULL), now);
    if (!jv_get_str(o, "created_at")) json_object_set_new(o, "created_at", json_string(now));
    if (!jv_get_str(o, "updated_at"))
        json_object_set_new(o, "updated_at", json_string(jv_get_str(o, "created_at")));
    int si = status_index(jv_get_str(json_object_get(o, "order_status"), "code"));
    if (si < 0) si = 0;
    json_object_set_new(o, "order_status", json_pack("{s:s}", "code", statuses[si].code));
    if (!json_object_get(o, "currency_code")) json_object_set_new(o, "currency_code", json_string("SAR"));
    if (!json_object_get(o, "payment_status"))
        json_object_set_new(o, "payment_status", json_string("pending"));
    json_object_set_new(o, "store_id", json_integer(sid));
    json_object_set_new(o, "_store", json_integer(sid));
    if (!json_is_array(json_object_get(o, "histories"))) add_history(o, si, "Order has been created.");
    char *k = key_of(id);
    json_object_set_new(bucket(z, "orders"), k, o);
    free(k);
    fire_order(z, o, "order.create");
    return o;
}

/* Moves an order to a status code (already validated), with webhooks. */
static void change_status(struct zid *z, json_t *o, int i)
{
    char now[20];
    utc_plain(time(NULL), now);
    json_object_set_new(o, "order_status", json_pack("{s:s}", "code", statuses[i].code));
    json_object_set_new(o, "updated_at", json_string(now));
    if (!strcmp(statuses[i].code, "delivered"))
        json_object_set_new(o, "delivered_at", json_string(now));
    add_history(o, i, "");
    /* Cash on delivery is collected at the door [I]. */
    const char *pm = jv_get_str(jv_path(o, "payment.method"), "code");
    int paid_now = !strcmp(statuses[i].code, "delivered") && pm && !strcmp(pm, "zid_cod") &&
                   !strcmp(jv_get_str(o, "payment_status"), "pending");
    if (paid_now) json_object_set_new(o, "payment_status", json_string("paid"));
    fire_order(z, o, "order.status.update");
    if (paid_now) fire_order(z, o, "order.payment_status.update");
}

/* "YYYY-MM-DD", "YYYY-MM-DD HH:MM:SS" or "YYYY-MM-DDTHH:MM:SS[.fff][Z|±HHMM|±HH:MM]"
 * into UTC "YYYY-MM-DD HH:MM:SS" (X7: the docs disagree on the format, so
 * all three are accepted). A bare date is the start of the day, or its end
 * when end != 0 (inclusive ranges [I]). Returns 0, or -1 when unreadable. */
static int norm_date(const char *in, int end, char out[20])
{
    struct tm tm = {0};
    int y, mo, d, h = 0, mi = 0, sec = 0, used = 0;
    if (!in || sscanf(in, "%4d-%2d-%2d%n", &y, &mo, &d, &used) != 3 || used != 10) return -1;
    const char *p = in + 10;
    long off = 0;
    if (*p == '\0') {
        if (end) h = 23, mi = 59, sec = 59;
    } else if ((*p == ' ' || *p == 'T') && sscanf(p + 1, "%2d:%2d:%2d%n", &h, &mi, &sec, &used) == 3) {
        p += 1 + used;
        if (*p == '.')
            for (p++; isdigit((unsigned char)*p); p++) {}
        if (*p == '+' || *p == '-') {
            int oh = 0, om = 0;
            if (sscanf(p + 1, "%2d:%2d", &oh, &om) != 2 && sscanf(p + 1, "%2d%2d", &oh, &om) != 2)
                return -1;
            off = (oh * 3600L + om * 60L) * (*p == '-' ? -1 : 1);
        } else if (*p && *p != 'Z') {
            return -1;
        }
    } else {
        return -1;
    }
    tm.tm_year = y - 1900, tm.tm_mon = mo - 1, tm.tm_mday = d;
    tm.tm_hour = h, tm.tm_min = mi, tm.tm_sec = sec;
    time_t t = timegm(&tm) - off;
    utc_plain(t, out);
    return 0;
}

static long arg_long(const struct sim_req *req, const char *name, long def)
{
    const char *v = httpd_req_arg(req->http, name);
    return v && *v ? strtol(v, NULL, 10) : def;
}

static int id_in_list(const char *list, long long id)
{
    char buf[32];
    for (const char *p = list; p && *p;) {
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        if (n < sizeof buf) {
            memcpy(buf, p, n);
            buf[n] = '\0';
            if (strtoll(buf, NULL, 10) == id) return 1;
        }
        p = c ? c + 1 : NULL;
    }
    return 0;
}

static int cmp_id_asc(const void *a, const void *b)
{
    long long x = json_integer_value(json_object_get(*(json_t *const *)a, "id"));
    long long y = json_integer_value(json_object_get(*(json_t *const *)b, "id"));
    return (x > y) - (x < y);
}

static void list_orders(struct zid *z, long long sid, const struct sim_req *req,
                        struct httpd_resp *resp)
{
    long page = arg_long(req, "page", 1), per = arg_long(req, "per_page", 10);
    json_t *fields = json_object();
    if (per > MAX_PER_PAGE)
        json_object_set_new(fields, "per_page",
                            json_pack("[s]", "The per page may not be greater than 100."));
    char from[20] = "", to[20] = "";
    const char *df = httpd_req_arg(req->http, "date_from"), *dt = httpd_req_arg(req->http, "date_to");
    if (df && norm_date(df, 0, from) != 0)
        json_object_set_new(fields, "date_from", json_pack("[s]", "The date from is not a valid date."));
    if (dt && norm_date(dt, 1, to) != 0)
        json_object_set_new(fields, "date_to", json_pack("[s]", "The date to is not a valid date."));
    const char *attr = httpd_req_arg(req->http, "date_attribute");
    if (!attr) attr = "created_at"; /* default [I] */
    if (strcmp(attr, "created_at") != 0 && strcmp(attr, "updated_at") != 0)
        json_object_set_new(fields, "date_attribute",
                            json_pack("[s]", "The selected date attribute is invalid."));
    const char *st = httpd_req_arg(req->http, "order_status");
    if (!st) st = httpd_req_arg(req->http, "status");
    int want = st ? status_index(st) : -1;
    if (st && want < 0)
        json_object_set_new(fields, "order_status",
                            json_pack("[s]", "The selected order status is invalid."));
    const char *ptype = httpd_req_arg(req->http, "payload_type");
    enum payload p = !ptype || !strcmp(ptype, "simple") ? P_SIMPLE
                     : !strcmp(ptype, "default")        ? P_DEFAULT
                     : !strcmp(ptype, "tiny")           ? P_TINY
                                                        : P_SIMPLE;
    if (json_object_size(fields)) {
        managers_error(resp, 422, "validation_failed", "Validation failed",
                       "The given data was invalid.", fields);
        return;
    }
    json_decref(fields);
    if (page < 1) page = 1;
    if (per < 1) per = 10;
    const char *pay = httpd_req_arg(req->http, "payment_status");
    const char *ids = httpd_req_arg(req->http, "order_id");
    const char *sort = httpd_req_arg(req->http, "sort_by");
    int asc = sort && !strcasecmp(sort, "asc");

    size_t n = 0, cap = 64;
    json_t **all = xmalloc(cap * sizeof *all);
    json_t *counts = json_object();
    for (size_t i = 0; i < NSTATUSES; i++) json_object_set_new(counts, statuses[i].code, json_integer(0));
    json_object_set_new(counts, "initial", json_integer(0));
    const char *k;
    json_t *o;
    json_object_foreach(bucket(z, "orders"), k, o) {
        if (json_integer_value(json_object_get(o, "_store")) != sid) continue;
        const char *code = jv_get_str(json_object_get(o, "order_status"), "code");
        json_object_set_new(counts, code,
                            json_integer(json_integer_value(json_object_get(counts, code)) + 1));
        const char *when = jv_get_str(o, attr);
        if (from[0] && (!when || strcmp(when, from) < 0)) continue;
        if (to[0] && (!when || strcmp(when, to) > 0)) continue;
        if (want >= 0 && status_index(code) != want) continue;
        if (pay && strcmp(pay, jv_get_str(o, "payment_status")) != 0) continue;
        if (ids && !id_in_list(ids, json_integer_value(json_object_get(o, "id")))) continue;
        if (n == cap) all = xrealloc(all, (cap *= 2) * sizeof *all);
        all[n++] = o;
    }
    qsort(all, n, sizeof *all, cmp_id_asc);
    json_t *orders = json_array();
    int ar = lang_ar(req);
    size_t first = (size_t)(page - 1) * (size_t)per;
    for (size_t i = first; i < n && i < first + (size_t)per; i++)
        json_array_append_new(orders, public_order(all[asc ? i : n - 1 - i], ar, p));
    free(all);
    /* No pagination block (§4.2): a client pages until a short page.
     * total_order_count honours the filters here [I: open question 5]. */
    json_t *ans = json_pack("{s:s,s:o,s:I,s:I,s:o,s:[]}", "status", "object", "orders", orders,
                            "grand_total", (json_int_t)n, "total_order_count", (json_int_t)n,
                            "total_order_count_per_status", counts, "tax_settings");
    json_object_set_new(ans, "message", msg_block());
    sim_json(resp, 200, ans);
}

static void order_route(struct zid *z, long long sid, const struct sim_req *req, const char *rest,
                        struct httpd_resp *resp)
{
    long long id = 0;
    char tail[64] = "";
    int get = !strcmp(req->method, "GET"), post = !strcmp(req->method, "POST");
    if (sscanf(rest, "%lld%63s", &id, tail) < 1) {
        managers_error(resp, 404, "not_found", "Not Found", "Route not found.", NULL);
        return;
    }
    json_t *o = find_order(z, sid, id);
    if (!o) {
        managers_error(resp, 404, "not_found", "Not Found", "Order not found.", NULL);
        return;
    }
    if (get && !strcmp(tail, "/view")) {
        managers_ok(resp, 200, "order", public_order(o, lang_ar(req), P_VIEW));
    } else if (post && !strcmp(tail, "/change-order-status")) {
        char code[64];
        int i = sim_body_field(req, "order_status", code, sizeof code) ? status_index(code) : -1;
        int cur = status_index(jv_get_str(json_object_get(o, "order_status"), "code"));
        const char *ship = jv_get_str(jv_path(o, "shipping.method"), "code");
        if (i < 0 || i >= NSETTABLE) {
            managers_error(resp, 422, "validation_failed", "Validation failed",
                           "The given data was invalid.",
                           json_pack("{s:[s]}", "order_status",
                                     "The selected order status is invalid (new, preparing, "
                                     "ready, indelivery, delivered, cancelled)."));
        } else if (cur == 2 && i == 0 && ship && !strcmp(ship, "zid_zidship")) {
            /* §4.4: an integrated-carrier order cannot go from ready back to new. */
            managers_error(resp, 422, "validation_failed", "Validation failed",
                           "An order shipped with an integrated carrier cannot go back from "
                           "ready to new.",
                           json_pack("{s:[s]}", "order_status", "Invalid status transition."));
        } else {
            if (i != cur) change_status(z, o, i);
            managers_ok(resp, 200, "order", public_order(o, lang_ar(req), P_VIEW));
        }
    } else if (post && !strcmp(tail, "/add-order-comment")) {
        char comment[512];
        json_t *h = json_object_get(o, "_comments");
        size_t nc = json_array_size(h);
        if (!sim_body_field(req, "comment", comment, sizeof comment) || !*comment ||
            strlen(comment) > 100 || nc >= 20) {
            managers_error(resp, 422, "validation_failed", "Validation failed",
                           nc >= 20 ? "An order can have at most 20 comments."
                                    : "The comment is required and may not be greater than 100 "
                                      "characters.",
                           json_pack("{s:[s]}", "comment", "invalid comment"));
            return;
        }
        if (!h) json_object_set_new(o, "_comments", h = json_array());
        json_array_append_new(h, json_string(comment));
        int cur2 = status_index(jv_get_str(json_object_get(o, "order_status"), "code"));
        add_history(o, cur2 < 0 ? 0 : cur2, comment);
        managers_ok(resp, 200, "order", public_order(o, lang_ar(req), P_VIEW));
    } else if (get && !strcmp(tail, "/credit-notes")) {
        /* The order's returns (control API: /_sim/zid/orders/{id}/reverse). */
        json_t *cn = json_object_get(o, "_credit_notes");
        sim_json(resp, 200,
                 json_pack("{s:s,s:n,s:{s:o,s:[]}}", "code", "SUCCESS_WITH_SINGLE_PAYLOAD_OBJECT",
                           "message", "payload", "credit_notes",
                           cn ? json_deep_copy(cn) : json_array(), "returned_items"));
    } else if (!tail[0] || !strcmp(tail, "/view") || !strcmp(tail, "/change-order-status")) {
        managers_error(resp, 405, "method_not_allowed", "Method Not Allowed",
                       "The method is not supported for this route.", NULL);
    } else {
        managers_error(resp, 404, "not_found", "Not Found", "Route not found.", NULL);
    }
}

/* ---------------------------------------------------------------------- */
/* Products (catalog service, §5)                                           */

static json_t *find_product(struct zid *z, long long sid, const char *id, const char *sku)
{
    if (id) {
        json_t *p = json_object_get(bucket(z, "products"), id);
        return p && json_integer_value(json_object_get(p, "_store")) == sid ? p : NULL;
    }
    const char *k;
    json_t *p;
    json_object_foreach(bucket(z, "products"), k, p) {
        const char *ps = jv_get_str(p, "sku");
        if (json_integer_value(json_object_get(p, "_store")) == sid && sku && *sku && ps &&
            !strcmp(ps, sku))
            return p;
    }
    return NULL;
}

static json_t *public_product(const json_t *p)
{
    json_t *c = json_deep_copy(p);
    strip_private(c);
    return c;
}

static void touch_product(json_t *p)
{
    json_object_set_new(p, "updated_at", utc_iso(time(NULL)));
}

/* Applies the writable fields of a PATCH to a product. Returns 0, or -1
 * with a DRF field error in *errs. */
static int patch_product(json_t *p, const json_t *body, json_t **errs)
{
    json_t *q = json_object_get(body, "quantity");
    if (q && !json_is_null(q) && !json_is_integer(q)) {
        *errs = json_pack("{s:[s]}", "quantity", "A valid integer is required.");
        return -1;
    }
    if (q && json_is_integer(q) && json_integer_value(q) < 0) {
        *errs = json_pack("{s:[s]}", "quantity", "Ensure this value is greater than or equal to 0.");
        return -1;
    }
    static const char *const fields[] = {"quantity", "is_infinite", "price",  "sale_price", "cost",
                                         "name",     "sku",         "barcode", "is_published"};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        json_t *v = json_object_get(body, fields[i]);
        if (v) json_object_set(p, fields[i], v);
    }
    touch_product(p);
    return 0;
}

static json_t *new_product(struct zid *z, long long sid, const json_t *src)
{
    json_t *p = json_deep_copy(src);
    if (!jv_get_str(p, "id")) {
        char *u = uuid(z);
        json_object_set_new(p, "id", json_string(u));
        free(u);
    }
    if (!jv_get_str(p, "sku")) {
        /* Zid generates a SKU when the merchant leaves it empty (§5.2). */
        char *sku = xasprintf("Z.%lld.%llu", sid,
                              (unsigned long long)(1770000000000000ULL + sim_rand(z->s) % 999999999ULL));
        json_object_set_new(p, "sku", json_string(sku));
        free(sku);
    }
    static const char *const defaults[] = {"parent_id", "product_class", "sale_price"};
    for (size_t i = 0; i < 3; i++)
        if (!json_object_get(p, defaults[i])) json_object_set_new(p, defaults[i], json_null());
    if (!json_object_get(p, "structure")) json_object_set_new(p, "structure", json_string("standalone"));
    if (!json_object_get(p, "barcode")) json_object_set_new(p, "barcode", json_string(""));
    if (!json_object_get(p, "cost")) json_object_set_new(p, "cost", json_integer(0));
    if (!json_object_get(p, "quantity")) json_object_set_new(p, "quantity", json_integer(0));
    if (!json_object_get(p, "is_infinite")) json_object_set_new(p, "is_infinite", json_false());
    if (!json_object_get(p, "is_taxable")) json_object_set_new(p, "is_taxable", json_true());
    if (!json_object_get(p, "requires_shipping"))
        json_object_set_new(p, "requires_shipping", json_true());
    if (!json_object_get(p, "is_published")) json_object_set_new(p, "is_published", json_true());
    if (!json_object_get(p, "categories")) json_object_set_new(p, "categories", json_array());
    json_object_set_new(p, "currency", json_string("SAR"));
    json_object_set_new(p, "stocks", json_array());
    json_object_set_new(p, "store_id", json_integer(sid));
    json_object_set_new(p, "created_at", utc_iso(time(NULL)));
    touch_product(p);
    json_object_set_new(p, "_store", json_integer(sid));
    json_object_set_new(p, "_seq", json_integer(next_id(z, "product_seq", 1)));
    json_object_set_new(bucket(z, "products"), jv_get_str(p, "id"), p);
    return p;
}

static int cmp_seq(const void *a, const void *b)
{
    long long x = json_integer_value(json_object_get(*(json_t *const *)a, "_seq"));
    long long y = json_integer_value(json_object_get(*(json_t *const *)b, "_seq"));
    return (x > y) - (x < y);
}

/* ordering=updated_at | -updated_at | created_at | -created_at (§5.1: the
 * two fields are documented; "-" for descending is Django REST's convention
 * [I]); ties keep the creation order. */
static _Thread_local const char *order_key;
static _Thread_local int order_desc;

static int cmp_ordering(const void *a, const void *b)
{
    const char *x = jv_get_str(*(json_t *const *)a, order_key);
    const char *y = jv_get_str(*(json_t *const *)b, order_key);
    int c = strcmp(x ? x : "", y ? y : "");
    if (c == 0) return cmp_seq(a, b);
    return order_desc ? -c : c;
}

static void list_products(struct zid *z, long long sid, const struct sim_req *req,
                          struct httpd_resp *resp)
{
    long page = arg_long(req, "page", 1), size = arg_long(req, "page_size", 10);
    if (size < 1) size = 10;
    if (size > MAX_PAGE_SIZE) size = MAX_PAGE_SIZE; /* capped silently (§5.1) */
    const char *search = httpd_req_arg(req->http, "search");
    size_t n = 0, cap = 64;
    json_t **all = xmalloc(cap * sizeof *all);
    const char *k;
    json_t *p;
    json_object_foreach(bucket(z, "products"), k, p) {
        if (json_integer_value(json_object_get(p, "_store")) != sid) continue;
        if (search && *search) {
            json_t *nm = json_object_get(p, "name");
            const char *ar = jv_get_str(nm, "ar"), *en = jv_get_str(nm, "en");
            if (!(ar && strstr(ar, search)) && !(en && strcasestr(en, search))) continue;
        }
        if (n == cap) all = xrealloc(all, (cap *= 2) * sizeof *all);
        all[n++] = p;
    }
    const char *ordering = httpd_req_arg(req->http, "ordering");
    if (ordering && *ordering == '-') {
        order_desc = 1;
        ordering++;
    } else {
        order_desc = 0;
    }
    if (ordering && (!strcmp(ordering, "updated_at") || !strcmp(ordering, "created_at"))) {
        order_key = ordering;
        qsort(all, n, sizeof *all, cmp_ordering);
    } else {
        qsort(all, n, sizeof *all, cmp_seq);
    }
    long pages = (long)((n + (size_t)size - 1) / (size_t)size);
    if (page < 1 || (page > pages && page > 1)) {
        free(all);
        catalog_error(resp, 404, "Invalid page.");
        return;
    }
    json_t *results = json_array();
    size_t first = (size_t)(page - 1) * (size_t)size;
    for (size_t i = first; i < n && i < first + (size_t)size; i++)
        json_array_append_new(results, public_product(all[i]));
    free(all);
    /* next/previous are absolute URLs (§5.2). */
    json_t *next = json_null(), *prev = json_null();
    if (page < pages) {
        char *u = xasprintf("%s/v1/products/?page=%ld&page_size=%ld", sim_base_url(z->s), page + 1, size);
        next = json_string(u);
        free(u);
    }
    if (page > 1) {
        char *u = xasprintf("%s/v1/products/?page=%ld&page_size=%ld", sim_base_url(z->s), page - 1, size);
        prev = json_string(u);
        free(u);
    }
    sim_json(resp, 200,
             json_pack("{s:I,s:o,s:o,s:o,s:I}", "count", (json_int_t)n, "next", next, "previous",
                       prev, "results", results, "total_products_count", (json_int_t)n));
}

/* PATCH /v1/products/: a JSON array of ≤50 updates, each naming the
 * product by id or sku (§5.3). All are checked before any is applied [I]. */
static void bulk_patch(struct zid *z, long long sid, const struct sim_req *req,
                       struct httpd_resp *resp)
{
    json_t *list = req->body;
    if (!json_is_array(list) || json_array_size(list) == 0) {
        catalog_error(resp, 400, "Expected a non-empty list of items.");
        return;
    }
    if (json_array_size(list) > MAX_BULK) {
        catalog_error(resp, 400, "Ensure this field has no more than 50 elements.");
        return;
    }
    json_t *errors = json_array();
    int bad = 0;
    size_t i;
    json_t *u;
    json_array_foreach(list, i, u) {
        json_t *p = find_product(z, sid, jv_get_str(u, "id"),
                                 jv_get_str(u, "id") ? NULL : jv_get_str(u, "sku"));
        json_t *e = json_object();
        if (!jv_get_str(u, "id") && !jv_get_str(u, "sku"))
            json_object_set_new(e, "non_field_errors", json_pack("[s]", "Either id or sku is required."));
        else if (!p)
            json_object_set_new(e, jv_get_str(u, "id") ? "id" : "sku",
                                json_pack("[s]", "Product not found."));
        json_t *q = json_object_get(u, "quantity");
        if (q && !json_is_null(q) && (!json_is_integer(q) || json_integer_value(q) < 0))
            json_object_set_new(e, "quantity", json_pack("[s]", "A valid integer is required."));
        bad |= json_object_size(e) > 0;
        json_array_append_new(errors, e);
    }
    if (bad) {
        sim_json(resp, 400, errors);
        return;
    }
    json_decref(errors);
    json_t *out = json_array();
    json_array_foreach(list, i, u) {
        json_t *p = find_product(z, sid, jv_get_str(u, "id"),
                                 jv_get_str(u, "id") ? NULL : jv_get_str(u, "sku"));
        json_t *errs = NULL;
        json_t *body = json_deep_copy(u);
        json_object_del(body, "id");
        json_object_del(body, "sku");
        if (patch_product(p, body, &errs) != 0) json_decref(errs);
        json_decref(body);
        json_array_append_new(out, public_product(p));
        fire(z, sid, "product.update", public_product(p), NULL);
    }
    sim_json(resp, 200, out);
}

static void catalog(struct zid *z, const struct sim_req *req, struct httpd_resp *resp)
{
    long long sid = authorize(z, req, resp, 1);
    if (!sid || throttled(z, sid, 1, resp)) return;
    if (req->body_invalid) {
        catalog_error(resp, 400, "JSON parse error.");
        return;
    }
    const char *path = req->path;
    int get = !strcmp(req->method, "GET"), patch = !strcmp(req->method, "PATCH");
    int post = !strcmp(req->method, "POST"), del = !strcmp(req->method, "DELETE");
    char id[64] = "", tail[64] = "";
    if (!strcmp(path, "/v1/products/")) {
        if (get) {
            list_products(z, sid, req, resp);
        } else if (patch) {
            bulk_patch(z, sid, req, resp);
        } else if (post) {
            json_t *b = req->body;
            json_t *errs = json_object();
            if (!json_is_object(b) || !json_object_get(b, "name"))
                json_object_set_new(errs, "name", json_pack("[s]", "This field is required."));
            if (!json_is_object(b) || !json_object_get(b, "price"))
                json_object_set_new(errs, "price", json_pack("[s]", "This field is required."));
            const char *sku = json_is_object(b) ? jv_get_str(b, "sku") : NULL;
            if (sku && find_product(z, sid, NULL, sku))
                json_object_set_new(errs, "sku",
                                    json_pack("[s]", "product with this sku already exists."));
            if (json_object_size(errs)) {
                sim_json(resp, 400, errs);
                return;
            }
            json_decref(errs);
            json_t *p = new_product(z, sid, b);
            sim_json(resp, 201, public_product(p));
            fire(z, sid, "product.create", public_product(p), NULL);
        } else {
            catalog_error(resp, 405, "Method not allowed.");
        }
    } else if (sscanf(path, "/v1/products/%63[^/]%63s", id, tail) >= 1) {
        json_t *p = find_product(z, sid, id, NULL);
        if (!p) {
            catalog_error(resp, 404, "Not found.");
        } else if (!strcmp(tail, "/")) {
            if (get) {
                sim_json(resp, 200, public_product(p));
            } else if (patch) {
                json_t *errs = NULL;
                if (!json_is_object(req->body) || patch_product(p, req->body, &errs) != 0) {
                    sim_json(resp, 400, errs ? errs : json_pack("{s:s}", "detail", "Expected an object."));
                    return;
                }
                sim_json(resp, 200, public_product(p));
                fire(z, sid, "product.update", public_product(p), NULL);
            } else if (del) {
                fire(z, sid, "product.delete", json_pack("{s:s,s:O?}", "id", id, "sku",
                                                         json_object_get(p, "sku")), NULL);
                json_object_del(bucket(z, "products"), id);
                httpd_resp_text(resp, 204, "");
            } else {
                catalog_error(resp, 405, "Method not allowed.");
            }
        } else if (!strncmp(tail, "/stocks/", 8)) {
            /* Per-location stock needs multi-inventory (Professional plans):
             * without it Zid answers 403 (§5.3, D-MULTI). */
            catalog_error(resp, 403, "Multi-inventory is not enabled for this store.");
        } else {
            catalog_error(resp, 404, "Not found.");
        }
    } else if (!strcmp(path, "/v1/locations/") && get) {
        sim_json(resp, 200, json_pack("{s:n,s:n,s:i,s:i,s:i,s:[]}", "next", "previous", "count", 0,
                                      "active_locations_limit", 0, "active_locations_count", 0,
                                      "results"));
    } else if (!strncmp(path, "/v1/locations/", 14)) {
        catalog_error(resp, 403, "Multi-inventory is not enabled for this store.");
    } else {
        catalog_error(resp, 404, "Not found.");
    }
}

/* ---------------------------------------------------------------------- */
/* Webhook subscriptions (§3.1) and their health (§3.3)                     */

static json_t *public_sub(const json_t *sub)
{
    json_t *c = json_deep_copy(sub);
    strip_private(c);
    return c;
}

static json_t *subs_where(struct zid *z, long long sid, const char *health)
{
    json_t *a = json_array();
    size_t i;
    json_t *sub;
    json_array_foreach(bucket(z, "subs"), i, sub) {
        if (json_integer_value(json_object_get(sub, "_store")) != sid) continue;
        if (health && strcmp(jv_get_str(sub, "health_status"), health) != 0) continue;
        json_array_append_new(a, public_sub(sub));
    }
    return a;
}

static int known_event(const char *ev)
{
    for (size_t i = 0; ev && i < sizeof events / sizeof events[0]; i++)
        if (!strcmp(events[i], ev)) return 1;
    return 0;
}

static void create_sub(struct zid *z, long long sid, const struct sim_req *req,
                       struct httpd_resp *resp)
{
    const json_t *b = req->body;
    const char *ev = jv_get_str(b, "event"), *url = jv_get_str(b, "target_url");
    json_t *fields = json_object();
    if (!known_event(ev))
        json_object_set_new(fields, "event", json_pack("[s]", "The selected event is invalid."));
    if (!url || (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0))
        json_object_set_new(fields, "target_url", json_pack("[s]", "The target url must be a valid URL."));
    json_t *cond = json_object_get(b, "conditions");
    if (cond && json_is_object(cond) && ev && strncmp(ev, "order.", 6) != 0)
        json_object_set_new(fields, "conditions",
                            json_pack("[s]", "Conditions apply to order.create and "
                                             "order.status.update only."));
    const char *cst = json_is_object(cond) ? jv_get_str(cond, "status") : NULL;
    if (cst && (status_index(cst) < 0 || status_index(cst) >= NSETTABLE))
        json_object_set_new(fields, "conditions.status",
                            json_pack("[s]", "The selected status is invalid."));
    if (json_object_size(fields)) {
        managers_error(resp, 422, "validation_failed", "Validation failed",
                       "The given data was invalid.", fields);
        return;
    }
    json_decref(fields);
    size_t i;
    json_t *sub;
    json_array_foreach(bucket(z, "subs"), i, sub) {
        if (json_integer_value(json_object_get(sub, "_store")) == sid &&
            !strcmp(jv_get_str(sub, "event"), ev) && !strcmp(jv_get_str(sub, "target_url"), url)) {
            /* [3P: 409 and 422 both seen; 422 chosen] */
            managers_error(resp, 422, "validation_failed", "Validation failed",
                           "A webhook for this event and target url already exists.",
                           json_pack("{s:[s]}", "target_url", "already subscribed"));
            return;
        }
    }
    char orig[128] = "";
    jv_get_text(b, "original_id", orig, sizeof orig); /* comes back as a string (§3.1) */
    char *id = uuid(z);
    json_t *store = store_get(z, sid);
    sub = json_pack("{s:s,s:s,s:s,s:O,s:O,s:s,s:O?,s:b,s:s,s:s,s:n,s:I,s:[]}", "id", id, "event",
                    ev, "target_url", url, "store_id", json_object_get(store, "uuid"),
                    "conditions", json_is_object(cond) ? cond : json_null(), "original_id", orig,
                    "subscriber", json_object_get(b, "subscriber"), "active", 1, "status", "ready",
                    "health_status", "healthy", "broken_at", "_store", (json_int_t)sid,
                    "_failures");
    if (jv_get_str(b, "username") && jv_get_str(b, "password")) {
        json_object_set(sub, "_username", json_object_get(b, "username"));
        json_object_set(sub, "_password", json_object_get(b, "password"));
    }
    json_array_append_new(bucket(z, "subs"), sub);
    free(id);
    /* The SDK parses the created object directly (§3.1) [I: bare, 201]. */
    sim_json(resp, 201, public_sub(sub));
}

static void webhooks(struct zid *z, long long sid, const struct sim_req *req, const char *rest,
                     struct httpd_resp *resp)
{
    int get = !strcmp(req->method, "GET"), post = !strcmp(req->method, "POST");
    json_t *subs = bucket(z, "subs");
    if (!*rest && post) {
        create_sub(z, sid, req, resp);
    } else if (!*rest && get) {
        sim_json(resp, 200, json_pack("{s:o}", "data", subs_where(z, sid, NULL)));
    } else if (!*rest && !strcmp(req->method, "DELETE")) {
        const char *orig = httpd_req_arg(req->http, "original_id");
        if (!orig) {
            managers_error(resp, 422, "validation_failed", "Validation failed",
                           "original_id is required.",
                           json_pack("{s:[s]}", "original_id", "The original id field is required."));
            return;
        }
        /* Deletes every subscription carrying that original_id (§3.1 [I]). */
        int n = 0;
        for (size_t i = json_array_size(subs); i-- > 0;) {
            json_t *sub = json_array_get(subs, i);
            if (json_integer_value(json_object_get(sub, "_store")) == sid &&
                !strcmp(jv_get_str(sub, "original_id"), orig)) {
                sim_webhook_cancel(z->s, jv_get_str(sub, "id"));
                json_array_remove(subs, i);
                n++;
            }
        }
        if (!n) managers_error(resp, 404, "not_found", "Not Found", "No webhook with that original_id.", NULL);
        else managers_ok(resp, 200, "deleted", json_integer(n));
    } else if (get && !strcmp(rest, "/health")) {
        /* Paths and bodies of the health endpoints are not readable offline
         * (§3.1 open question): the emulator's choice, kept small. */
        int counts[3] = {0, 0, 0};
        json_t *list = json_array();
        size_t i;
        json_t *sub;
        json_array_foreach(subs, i, sub) {
            if (json_integer_value(json_object_get(sub, "_store")) != sid) continue;
            const char *h = jv_get_str(sub, "health_status");
            counts[!strcmp(h, "degraded") ? 1 : !strcmp(h, "broken") ? 2 : 0]++;
            json_array_append_new(
                list, json_pack("{s:O,s:O,s:O,s:s,s:I,s:O}", "id", json_object_get(sub, "id"),
                                "event", json_object_get(sub, "event"), "target_url",
                                json_object_get(sub, "target_url"), "health_status", h,
                                "failures_last_hour",
                                (json_int_t)json_array_size(json_object_get(sub, "_failures")),
                                "broken_at", json_object_get(sub, "broken_at")));
        }
        sim_json(resp, 200, json_pack("{s:{s:i,s:i,s:i,s:o}}", "data", "healthy", counts[0],
                                      "degraded", counts[1], "broken", counts[2], "webhooks", list));
    } else if (get && !strcmp(rest, "/broken")) {
        sim_json(resp, 200, json_pack("{s:o}", "data", subs_where(z, sid, "broken")));
    } else if (post && !strcmp(rest, "/recover")) {
        /* Recovers the store's broken subscriptions, or those listed in
         * {"ids":[...]}. Events discarded while broken stay lost. */
        json_t *ids = json_object_get(req->body, "ids");
        json_t *out = json_array();
        size_t i, j;
        json_t *sub, *idv;
        json_array_foreach(subs, i, sub) {
            if (json_integer_value(json_object_get(sub, "_store")) != sid ||
                strcmp(jv_get_str(sub, "health_status"), "broken") != 0)
                continue;
            int listed = !json_is_array(ids);
            json_array_foreach(ids, j, idv) {
                if (json_is_string(idv) && !strcmp(json_string_value(idv), jv_get_str(sub, "id")))
                    listed = 1;
            }
            if (!listed) continue;
            json_object_set_new(sub, "health_status", json_string("healthy"));
            json_object_set_new(sub, "broken_at", json_null());
            json_array_clear(json_object_get(sub, "_failures"));
            json_array_append_new(out, public_sub(sub));
        }
        sim_json(resp, 200, json_pack("{s:o}", "data", out));
    } else {
        managers_error(resp, 404, "not_found", "Not Found", "Route not found.", NULL);
    }
}

static void managers(struct zid *z, const struct sim_req *req, struct httpd_resp *resp)
{
    long long sid = authorize(z, req, resp, 0);
    if (!sid || throttled(z, sid, 0, resp)) return;
    const char *ct = httpd_req_header(req->http, "Content-Type");
    if (req->body_invalid && (!ct || strstr(ct, "json"))) { /* forms are fine here */
        managers_error(resp, 400, "bad_request", "Bad Request", "The request body is not valid JSON.",
                       NULL);
        return;
    }
    const char *path = req->path + strlen("/v1/managers");
    int get = !strcmp(req->method, "GET");
    if (get && !strcmp(path, "/account/profile")) {
        json_t *store = json_deep_copy(store_get(z, sid));
        json_object_set_new(store, "subscription",
                            json_pack("{s:s,s:b,s:{s:b,s:b}}", "package_code", "growth",
                                      "is_expired", 0, "policies", "inventory_locations", 0, "vat", 1));
        managers_ok(resp, 200, "user",
                    json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:o}", "id", (json_int_t)(sid + 11), "uuid",
                              "6675a8a4-0000-4000-8000-000000000003", "name", "Demo Manager",
                              "email", "manager@example.com", "mobile", "966500000005",
                              "language_code", "ar", "store", store));
    } else if (get && !strcmp(path, "/store/categories")) {
        /* §5.1: the store's categories (the two its sample products name,
         * and a child of the first); names {ar, en} as on products, children
         * in `sub_categories` [I]. */
        json_t *cats = json_pack(
            "[{s:s,s:{s:s,s:s},s:s,s:[{s:s,s:{s:s,s:s},s:s,s:[]}]},"
            "{s:s,s:{s:s,s:s},s:s,s:[]}]",
            "id", "1473476", "name", "ar", "أزياء وعطور", "en", "Fashion & perfume", "slug",
            "fashion", "sub_categories", "id", "1473478", "name", "ar", "عبايات", "en", "Abayas",
            "slug", "abayas", "sub_categories", "id", "1473477", "name", "ar", "مواد غذائية", "en",
            "Groceries", "slug", "groceries", "sub_categories");
        json_t *o = json_pack("{s:s,s:o,s:[],s:i}", "status", "object", "categories", cats,
                              "minimal_categories", "products_count", 7);
        sim_json(resp, 200, o);
    } else if (get && !strcmp(path, "/store/orders")) {
        list_orders(z, sid, req, resp);
    } else if (!strncmp(path, "/store/orders/", 14)) {
        order_route(z, sid, req, path + 14, resp);
    } else if (!strncmp(path, "/webhooks", 9)) {
        webhooks(z, sid, req, path + 9, resp);
    } else {
        managers_error(resp, 404, "not_found", "Not Found", "Route not found.", NULL);
    }
}

static void handle(void *stv, const struct sim_req *req, struct httpd_resp *resp)
{
    struct zid *z = stv;
    const char *accept = httpd_req_header(req->http, "Accept");
    if (!strcmp(req->path, "/oauth/token") && !strcmp(req->method, "POST")) {
        oauth_token(z, req, resp);
    } else if (!strcmp(req->path, "/oauth/authorize") && !strcmp(req->method, "GET")) {
        oauth_authorize(z, req, resp);
    } else if (accept && !strstr(accept, "json") && !strstr(accept, "*/*")) {
        /* 406 not_acceptable (§8.2). */
        managers_error(resp, 406, "not_acceptable", "Not Acceptable",
                       "Send Accept: application/json.", NULL);
    } else if (!strncmp(req->path, "/v1/managers/", 13)) {
        managers(z, req, resp);
    } else if (!strncmp(req->path, "/v1/products", 12) || !strncmp(req->path, "/v1/locations", 13)) {
        catalog(z, req, resp);
    } else {
        managers_error(resp, 404, "not_found", "Not Found", "Route not found.", NULL);
    }
}

/* ---------------------------------------------------------------------- */
/* Sample data                                                              */

/* Net (VAT-exclusive) prices are multiples of 20 halalas so 15 % VAT is
 * exact on every line, fee and total; the store shows VAT-inclusive prices
 * (the common Saudi setting). */
static const struct {
    const char *sku, *ar, *en, *cls;
    int64_t net;
    int qty, infinite, shipping;
} catalogue[] = {
    {"ZD-ABY-001", "عباية سوداء", "Black abaya", NULL, 26000, 25, 0, 1},
    {"ZD-OUD-012", "دهن عود ١٢ مل", "Oud oil 12 ml", NULL, 17400, 40, 0, 1},
    {"ZD-DATE-500", "تمر خلاص ٥٠٠ جم", "Khalas dates 500 g", NULL, 3000, 300, 0, 1},
    {"ZD-COF-250", "قهوة سعودية ٢٥٠ جم", "Saudi coffee 250 g", NULL, 4000, 150, 0, 1},
    {"ZD-INC-050", "بخور ٥٠ جم", "Incense 50 g", NULL, 6000, 80, 0, 1},
    /* a Zid-generated SKU (§5.2) on a voucher: no stock, no shipping */
    {"Z.251073.1770805225810645", "قسيمة ١٠٠ ريال", "100 SAR voucher", "voucher", 10000, 0, 1, 0},
    /* no SKU: an old product from before Zid generated them [I]; orders
     * with it must be reported by tarheel, never guessed */
    {"", "منتج بدون رمز", "Product without SKU", NULL, 2000, 50, 0, 1},
};
#define NCATALOGUE (sizeof catalogue / sizeof catalogue[0])

static int64_t gross_of(int64_t net)
{
    return net + net * 15 / 100;
}

static json_t *catalogue_product(struct zid *z, long long sid, size_t i)
{
    const char *k;
    json_t *p;
    json_object_foreach(bucket(z, "products"), k, p) {
        if (json_integer_value(json_object_get(p, "_store")) == sid &&
            json_integer_value(json_object_get(p, "_cat")) == (json_int_t)i + 1)
            return p;
    }
    return NULL;
}

static void seed_catalogue(struct zid *z, long long sid)
{
    for (size_t i = 0; i < NCATALOGUE; i++) {
        if (catalogue_product(z, sid, i)) continue;
        json_t *src = json_pack(
            "{s:s,s:{s:s,s:s},s:o,s:o,s:s?,s:i,s:b,s:b,s:[{s:s,s:{s:s,s:s},s:s}]}", "sku",
            catalogue[i].sku, "name", "ar", catalogue[i].ar, "en", catalogue[i].en, "price",
            jv_money_number(gross_of(catalogue[i].net)), "cost",
            jv_money_number(catalogue[i].net / 2), "product_class", catalogue[i].cls, "quantity",
            catalogue[i].qty, "is_infinite", catalogue[i].infinite, "requires_shipping",
            catalogue[i].shipping, "categories", "id", i < 2 ? "1473476" : "1473477", "name", "ar",
            i < 2 ? "أزياء وعطور" : "مواد غذائية", "en", i < 2 ? "Fashion & perfume" : "Groceries",
            "slug", i < 2 ? "fashion" : "groceries");
        if (catalogue[i].infinite) json_object_set_new(src, "quantity", json_null());
        json_t *p = new_product(z, sid, src);
        json_object_set_new(p, "_cat", json_integer((json_int_t)i + 1));
        json_decref(src);
    }
}

static json_t *invoice_line(const char *code, int64_t v, const char *title, unsigned noise)
{
    char text[MONEY_FMT_MAX], vs[MONEY_FMT_MAX + 8];
    snprintf(vs, sizeof vs, "%s SAR", money_format(v, text, sizeof text));
    return json_pack("{s:s,s:o,s:s,s:s}", "code", code, "value", dec14(v, noise), "value_string",
                     vs, "title", title);
}

/* Takes up to want units of a product from the store's stock, as the store
 * does when an order is placed: all of them for an infinite product, else
 * what is left. Returns the units taken. */
static int take_stock(json_t *p, int want)
{
    if (!p || json_is_true(json_object_get(p, "is_infinite"))) return want;
    json_int_t have = json_integer_value(json_object_get(p, "quantity"));
    if (have <= 0) return 0;
    int got = have < want ? (int)have : want;
    json_object_set_new(p, "quantity", json_integer(have - got));
    return got;
}

/* A realistic order, exact to the halala: VAT is computed on the taxable
 * amount at order level, as Zid's invoice block shows (§4.3). NULL when
 * nothing it would hold is in stock (the store would not take it). */
static json_t *sample_order(struct zid *z, long long sid, int n, time_t created)
{
    uint64_t r = sim_rand(z->s);
    int nitems = 1 + (int)(r % 3);
    json_t *products = json_array();
    int64_t sub = 0, lines_net[3] = {0, 0, 0};
    json_t *lines[3] = {NULL, NULL, NULL};
    int nl = 0;
    for (int j = 0; j < nitems; j++) {
        size_t c = (size_t)((r >> (12 + 4 * j)) % (NCATALOGUE - 1)), c0 = c;
        if (n % 9 == 8 && j == 0) c = NCATALOGUE - 1;
        json_t *p = catalogue_product(z, sid, c);
        int qty = take_stock(p, 1 + (int)((r >> (24 + 2 * j)) % 3));
        /* Sold out: the customer picks the next product in stock, or buys
         * one item fewer. */
        for (size_t k = 1; qty == 0 && k < NCATALOGUE - 1; k++) {
            c = (c0 + k) % (NCATALOGUE - 1);
            p = catalogue_product(z, sid, c);
            qty = take_stock(p, 1);
        }
        if (qty == 0) continue;
        int i = nl++;
        int64_t net = catalogue[c].net, gross = gross_of(net);
        lines_net[i] = net * qty;
        sub += lines_net[i];
        lines[i] = json_pack(
            "{s:O,s:I,s:n,s:s,s:s,s:n,s:i,s:b,s:o,s:o,s:o,s:o,s:o,s:o,s:[],s:[],s:[],s:[]}", "id",
            json_object_get(p, "id"), "order_product_id",
            (json_int_t)next_id(z, "order_product", 62039LL), "parent_id", "name",
            catalogue[c].ar, "sku", catalogue[c].sku, "barcode", "quantity", qty, "is_taxable", 1,
            "tax_percentage", json_real(0.15), "tax_amount",
            dec14(lines_net[i] * 15 / 100, (unsigned)(r >> 33) % 900u), "net_price",
            jv_money_number(net), "gross_price", jv_money_number(gross), "price",
            jv_money_number(gross), "total", jv_money_number(gross * qty), "discounts",
            "options", "custom_fields", "inventory_allocations");
    }
    if (nl == 0) {
        json_decref(products);
        return NULL;
    }
    nitems = nl;
    int coupon = (r >> 8) % 4 == 0;
    int64_t disc = coupon ? sub / 10 / 20 * 20 : 0;
    for (int i = 0; i < nitems; i++) {
        int64_t share = 0;
        if (coupon && money_muldiv(disc, lines_net[i], sub, &share) != 0) share = 0;
        json_object_set_new(lines[i], "discounted_total",
                            jv_money_number(gross_of(lines_net[i] - share / 20 * 20)));
        json_array_append_new(products, lines[i]);
    }
    int cod = (r >> 40) % 3 == 0;
    int64_t shipping = (r >> 44) % 4 == 0 ? 0 : ((r >> 46) % 2 ? 2000 : 2600);
    int64_t codfee = cod ? 1000 : 0;
    int64_t taxable = sub - disc + shipping + codfee;
    int64_t vat = taxable * 15 / 100;
    int64_t total = taxable + vat;
    unsigned noise = (unsigned)(r >> 52) % 1000u;

    json_t *inv = json_array();
    json_array_append_new(inv, invoice_line("sub_totals_before_vat", sub, "Total without VAT", noise));
    if (coupon) {
        json_array_append_new(inv, invoice_line("coupon", -disc, "Coupon discount", 0));
        json_array_append_new(inv, invoice_line("sub_totals_after_coupon_discount", sub - disc,
                                                "Total after coupon", noise));
    }
    json_array_append_new(inv, invoice_line("shipping", shipping, "Shipping", 0));
    /* [I: the COD-fee line code is not in any capture (open question 7)] */
    if (cod) json_array_append_new(inv, invoice_line("cash_on_delivery", codfee, "Cash on delivery fee", 0));
    json_array_append_new(inv, invoice_line("taxable_amount", taxable, "Taxable amount", noise));
    json_array_append_new(inv, invoice_line("vat", vat, "VAT (%15)", noise));
    json_array_append_new(inv, invoice_line("sub_totals_after_vat", total, "Total with VAT", noise));
    json_array_append_new(inv, invoice_line("total", total, "Total", noise));

    static const char *const names[] = {"محمد العتيبي", "سارة القحطاني", "عبدالله الشهري",
                                        "نورة الدوسري", "فهد الحربي",    "ريم الزهراني"};
    long long cust = 2083543LL + (long long)((r >> 50) % 12);
    char email[64], mobile[32], created_s[20], total_s[MONEY_FMT_MAX + 8], tt[MONEY_FMT_MAX];
    snprintf(email, sizeof email, "c%lld@example.com", cust);
    snprintf(mobile, sizeof mobile, "9665%08lld", cust % 100000000LL);
    utc_plain(created, created_s);
    snprintf(total_s, sizeof total_s, "%s SAR", money_format(total, tt, sizeof tt));
    json_t *method = cod ? json_pack("{s:s,s:s,s:s,s:s}", "name", "Cash On Delivery", "code",
                                     "zid_cod", "type", "zid_cod", "transaction_status", "new")
                     : (r >> 5) % 2 ? json_pack("{s:s,s:s,s:s,s:s,s:s}", "name", "Credit Card", "code",
                                                "zidpay", "type", "cc", "payment_network", "Visa",
                                                "transaction_status", "paid")
                                    : json_pack("{s:s,s:s,s:s,s:s}", "name", "Bank Transfer", "code",
                                                "zid_bank_transfer", "type", "zid_bank_transfer",
                                                "transaction_status", "new");
    const char *pay_status = !cod && (r >> 5) % 2 ? "paid" : "pending";
    json_t *o = json_pack(
        "{s:s,s:{s:s},s:s,s:{s:I,s:s,s:s,s:s,s:s,s:i,s:s,s:n,s:n,s:n},s:i,s:o,s:s,s:o,s:b,s:s,"
        "s:s,s:s,s:b,s:{s:{s:i,s:s,s:s,s:{s:n,s:n,s:n}},s:{s:s,s:s,s:{s:i,s:s},s:{s:i,s:s,s:s}}},"
        "s:{s:o,s:o},s:o,s:i,s:s,s:[],s:n}",
        "currency_code", "SAR", "order_status", "code", "new", "created_at", created_s, "customer",
        "id", (json_int_t)cust, "name", names[cust % 6], "email", email, "mobile", mobile, "note",
        "", "verified", 1, "type", "individual", "business_name", "tax_number",
        "commercial_registration", "is_guest_customer", 0, "order_total", dec14(total, noise),
        "order_total_string", total_s, "transaction_amount", jv_money_number(total),
        "has_different_transaction_currency", 0, "payment_status", pay_status, "source", "Store",
        "source_code", "catalog", "requires_shipping", 1, "shipping", "method", "id", 5423,
        "name", "زد شب", "code", "zid_zidship", "tracking", "number", "status", "url", "address",
        "street", "طريق الملك فهد", "short_address", "RAWA2931", "city", "id", 1, "name", "الرياض",
        "country", "id", 184, "name", "السعودية", "code", "SA", "payment", "method", method,
        "invoice", inv, "products", products, "products_count", nitems, "language", "ar",
        "inventory_address", "delivered_at");
    json_object_set_new(o, "coupon", coupon ? json_pack("{s:s,s:s,s:o}", "code", "SAVE10",
                                                         "discount_type", "percentage", "discount",
                                                         dec14(1000, 0))
                                            : json_null());
    return o;
}

/*
 * A return, as Zid records one [I]: the units given back (by
 * order_product_id; none named: every unit not yet returned) become a credit
 * note on the order (GET .../credit-notes) whose order_total is their net
 * price less their share of the order's coupon (by value, per unit), plus
 * 15 % VAT, rounded once; the order becomes partially_reversed, or reversed
 * when nothing is left, and order.status.update fires. Returns NULL or what
 * is wrong with the request.
 */
static const char *reverse_order(struct zid *z, json_t *o, const json_t *body)
{
    json_t *products = json_object_get(o, "products");
    size_t n = json_array_size(products);
    if (!n || n > 64) return "the order has no products";
    json_t *notes = json_object_get(o, "_credit_notes");
    int64_t back[64] = {0}, left_total = 0, sub = 0, disc = 0;
    /* units returned already */
    size_t k, i;
    json_t *cn, *it, *p;
    json_array_foreach(notes, k, cn) json_array_foreach(json_object_get(cn, "items"), i, it)
    {
        int64_t opid = 0, q = 0;
        if (jv_get_id(it, "order_product_id", &opid, NULL) || jv_get_dec(it, "quantity", 0, &q, NULL))
            continue;
        json_array_foreach(products, k, p)
        {
            int64_t lo = 0;
            if (!jv_get_id(p, "order_product_id", &lo, NULL) && lo == opid) back[k] += q;
        }
    }
    json_array_foreach(products, k, p)
    {
        int64_t net = 0, q = 0;
        if (jv_get_money(p, "net_price", &net, NULL) || jv_get_dec(p, "quantity", 0, &q, NULL))
            return "a product has no net_price or quantity";
        sub += net * q;
    }
    json_t *line;
    json_array_foreach(jv_path(o, "payment.invoice"), k, line)
    {
        const char *code = jv_get_str(line, "code");
        int64_t v = 0;
        if (code && !strcmp(code, "coupon") && !jv_get_money(line, "value", &v, NULL))
            disc += v < 0 ? -v : v;
    }
    int64_t ret[64] = {0};
    const json_t *want = json_object_get(body, "items");
    if (json_array_size(want)) {
        json_array_foreach(want, i, it)
        {
            int64_t opid = 0, q = 0;
            if (jv_get_id(it, "order_product_id", &opid, NULL) ||
                jv_get_dec(it, "quantity", 0, &q, NULL) || q <= 0)
                return "items need order_product_id and quantity > 0";
            int hit = 0;
            json_array_foreach(products, k, p)
            {
                int64_t lo = 0, qty = 0;
                if (jv_get_id(p, "order_product_id", &lo, NULL) || lo != opid) continue;
                if (jv_get_dec(p, "quantity", 0, &qty, NULL) || back[k] + ret[k] + q > qty)
                    return "more units returned than were sold";
                ret[k] += q;
                hit = 1;
            }
            if (!hit) return "no such order_product_id in the order";
        }
    } else {
        json_array_foreach(products, k, p)
        {
            int64_t qty = 0;
            if (!jv_get_dec(p, "quantity", 0, &qty, NULL)) ret[k] = qty - back[k];
        }
    }
    int64_t net_back = 0, any = 0;
    json_t *items = json_array();
    json_array_foreach(products, k, p)
    {
        int64_t net = 0, qty = 0, share = 0, opid = 0;
        if (jv_get_money(p, "net_price", &net, NULL) || jv_get_dec(p, "quantity", 0, &qty, NULL) ||
            jv_get_id(p, "order_product_id", &opid, NULL))
            continue;
        left_total += qty - back[k] - ret[k];
        if (!ret[k]) continue;
        any = 1;
        if (disc && sub && money_muldiv(disc, net * ret[k], sub, &share) != 0) share = 0;
        net_back += net * ret[k] - share;
        json_array_append_new(items, json_pack("{s:I,s:O,s:I}", "order_product_id", (json_int_t)opid,
                                               "sku", json_object_get(p, "sku"), "quantity",
                                               (json_int_t)ret[k]));
    }
    if (!any) {
        json_decref(items);
        return "nothing left to return";
    }
    int64_t total = 0;
    if (money_muldiv(net_back, 115, 100, &total) != 0) total = 0;
    if (!notes) json_object_set_new(o, "_credit_notes", notes = json_array());
    long long num = next_id(z, "credit_note", 7780LL);
    char number[32], reason[256];
    snprintf(number, sizeof number, "CN-%lld", num);
    const char *why = jv_get_str(body, "reason");
    snprintf(reason, sizeof reason, "%s", why && *why ? why : "مرتجع");
    json_array_append_new(
        notes, json_pack("{s:I,s:s,s:s,s:O,s:s,s:o,s:o}", "id", (json_int_t)num, "invoice_type",
                         "credit_note", "invoice_number", number, "original_invoice_number",
                         json_object_get(o, "id"), "issue_reason", reason, "order_total",
                         dec14(total, 0), "items", items));
    int to = status_index(left_total > 0 ? "partially_reversed" : "reversed");
    if (to != status_index(jv_get_str(json_object_get(o, "order_status"), "code"))) {
        change_status(z, o, to);
    } else { /* a further partial return: the order changed all the same */
        char now[20];
        utc_plain(time(NULL), now);
        json_object_set_new(o, "updated_at", json_string(now));
        fire_order(z, o, "order.status.update");
    }
    return NULL;
}

/* ---------------------------------------------------------------------- */
/* App events (§3.7) and the control API: /_sim/zid/...                     */

static void app_event(struct zid *z, long long sid, const char *event, const char *status)
{
    if (!z->app_webhook_url || !*z->app_webhook_url) return;
    json_t *st = store_get(z, sid);
    json_t *b = json_pack("{s:i,s:I,s:O,s:O,s:s,s:s,s:s,s:s,s:n,s:s,s:s,s:s}", "app_id", 1292,
                          "store_id", (json_int_t)sid, "store_uuid", json_object_get(st, "uuid"),
                          "store_url", json_object_get(st, "url"), "plan_name", "النمو", "status",
                          status, "event_name", event, "plan_type", "Free", "old_plan_name",
                          "merchant_email", "merchant@example.com", "merchant_phone_no",
                          "966554349999", "start_date", "2026-01-01T00:00:00.000000Z");
    char *text = jv_dump(b);
    json_decref(b);
    /* Auth on app events is undocumented (open question 11): none sent. */
    struct sim_webhook w = {.url = z->app_webhook_url,
                            .event = event,
                            .body = text,
                            .max_attempts = (int)z->max_attempts,
                            .retry_delay_ms = z->retry_ms};
    sim_webhook_send(z->s, &w);
    free(text);
}

static long long store_arg(const struct sim_req *req)
{
    int64_t sid = 0;
    if (jv_get_id(req->body, "store_id", &sid, NULL) != 0) {
        const char *q = httpd_req_arg(req->http, "store_id");
        sid = q ? strtoll(q, NULL, 10) : 0;
    }
    return sid;
}

static void bad(struct httpd_resp *resp, const char *msg)
{
    sim_json(resp, 400, json_pack("{s:s}", "error", msg));
}

static void set_app(struct zid *z, const json_t *b)
{
    const char *v;
    if ((v = jv_get_str(b, "app_webhook_url")))
        free(z->app_webhook_url), z->app_webhook_url = xstrdup(v);
    int64_t n;
    if (jv_get_id(b, "retry_ms", &n, NULL) == 0 && n > 0) z->retry_ms = n;
    if (jv_get_id(b, "max_attempts", &n, NULL) == 0 && n > 0) z->max_attempts = n;
    if (jv_get_id(b, "rate_limit", &n, NULL) == 0 && n >= 0) z->rate_limit = n;
    int on;
    if (jv_get_bool(b, "refresh_reuse", &on, NULL) == 0) z->refresh_reuse = on;
}

static int control(void *stv, const char *sub, const struct sim_req *req, struct httpd_resp *resp)
{
    struct zid *z = stv;
    if (strncmp(sub, "zid/", 4) != 0) return TH_ENOTFOUND;
    sub += 4;
    int post = !strcmp(req->method, "POST"), get = !strcmp(req->method, "GET");
    long long id = 0;
    char tail[32] = "";
    if (post && !strcmp(sub, "app")) {
        set_app(z, req->body);
        sim_json(resp, 200, json_pack("{s:s?,s:I,s:I,s:I,s:b}", "app_webhook_url",
                                      z->app_webhook_url, "rate_limit", (json_int_t)z->rate_limit,
                                      "retry_ms", (json_int_t)z->retry_ms, "max_attempts",
                                      (json_int_t)z->max_attempts, "refresh_reuse",
                                      z->refresh_reuse));
    } else if (post && !strcmp(sub, "stores")) {
        int64_t sid = 0;
        if (jv_get_id(req->body, "id", &sid, NULL) != 0) sid = next_id(z, "store", 251073LL);
        json_t *st = store_new(z, sid, jv_get_str(req->body, "title"));
        seed_catalogue(z, sid);
        sim_json(resp, 201, json_deep_copy(st));
    } else if (post && (!strcmp(sub, "install") || !strcmp(sub, "uninstall"))) {
        long long sid = store_arg(req);
        if (!sid) {
            bad(resp, "store_id is required");
            return 0;
        }
        json_t *st = store_new(z, sid, NULL);
        if (!strcmp(sub, "uninstall")) {
            /* Uninstall invalidates every token at once (§2.3) and the app's
             * subscriptions go with it [I]. */
            revoke_store(z, sid);
            json_t *subs = bucket(z, "subs");
            for (size_t i = json_array_size(subs); i-- > 0;) {
                json_t *s = json_array_get(subs, i);
                if (json_integer_value(json_object_get(s, "_store")) == sid) {
                    sim_webhook_cancel(z->s, jv_get_str(s, "id"));
                    json_array_remove(subs, i);
                }
            }
            app_event(z, sid, "app.market.application.uninstall", "uninstalled");
            sim_json(resp, 200, json_pack("{s:b}", "uninstalled", 1));
            return 0;
        }
        seed_catalogue(z, sid);
        json_t *tok = mint(z, sid);
        json_object_set(tok, "store_id", json_object_get(st, "id"));
        json_object_set(tok, "store_uuid", json_object_get(st, "uuid"));
        app_event(z, sid, "app.market.application.install", "active");
        app_event(z, sid, "app.market.application.authorized", "authorized");
        sim_json(resp, 200, tok);
    } else if (post && !strcmp(sub, "orders")) {
        long long sid = store_arg(req);
        json_t *o = json_object_get(req->body, "order");
        if (!json_is_object(o)) o = req->body;
        if (!sid || !json_is_object(o) || !json_is_array(json_object_get(o, "products"))) {
            bad(resp, "POST an order as GET .../orders/{id}/view returns it (with \"products\"), "
                      "with ?store_id= or \"store_id\"");
            return 0;
        }
        store_new(z, sid, NULL);
        json_t *copy = json_deep_copy(o);
        put_order(z, sid, copy);
        managers_ok(resp, 201, "order", public_order(copy, 0, P_VIEW));
    } else if (post && sscanf(sub, "orders/%lld%31s", &id, tail) == 2 && !strcmp(tail, "/status")) {
        json_t *o = find_order(z, 0, id);
        char code[64];
        int i = sim_body_field(req, "status", code, sizeof code) ? status_index(code) : -1;
        if (!o) {
            sim_json(resp, 404, json_pack("{s:s}", "error", "no such order"));
        } else if (i < 0) {
            sim_json(resp, 422, json_pack("{s:s}", "error", "unknown status code"));
        } else {
            if (i != status_index(jv_get_str(json_object_get(o, "order_status"), "code")))
                change_status(z, o, i);
            managers_ok(resp, 200, "order", public_order(o, 0, P_VIEW));
        }
    } else if (post && sscanf(sub, "orders/%lld%31s", &id, tail) == 2 && !strcmp(tail, "/reverse")) {
        json_t *o = find_order(z, 0, id);
        if (!o) {
            sim_json(resp, 404, json_pack("{s:s}", "error", "no such order"));
            return 0;
        }
        const char *err = reverse_order(z, o, req->body);
        if (err)
            sim_json(resp, 422, json_pack("{s:s}", "error", err));
        else
            managers_ok(resp, 200, "order", public_order(o, 0, P_VIEW));
    } else if (post && !strcmp(sub, "products")) {
        long long sid = store_arg(req);
        json_t *p = json_object_get(req->body, "product");
        if (!json_is_object(p)) p = req->body;
        if (!sid || !json_is_object(p)) {
            bad(resp, "POST a product as GET /v1/products/{id}/ returns it, with store_id");
            return 0;
        }
        store_new(z, sid, NULL);
        json_t *copy = json_deep_copy(p);
        json_object_del(copy, "store_id");
        json_t *made = new_product(z, sid, copy);
        json_decref(copy);
        sim_json(resp, 201, public_product(made));
    } else if (post && !strcmp(sub, "generate")) {
        long long sid = store_arg(req);
        int64_t count = 10;
        if (jv_get_id(req->body, "count", &count, NULL) != 0) count = 10;
        char from[20], to[20];
        const char *f = jv_get_str(req->body, "from"), *t = jv_get_str(req->body, "to");
        if (!sid || count < 1 || count > 5000 || (f && norm_date(f, 0, from) != 0) ||
            (t && norm_date(t, 1, to) != 0)) {
            bad(resp, "store_id, 1 <= count <= 5000, optional from/to dates (YYYY-MM-DD)");
            return 0;
        }
        store_new(z, sid, NULL);
        seed_catalogue(z, sid);
        /* Orders spread evenly over [from, to] (for back-fill tests), or now. */
        struct tm a = {0}, b = {0};
        time_t t0 = time(NULL), t1 = t0;
        if (f && strptime(from, "%Y-%m-%d %H:%M:%S", &a)) t0 = timegm(&a);
        if (t && strptime(to, "%Y-%m-%d %H:%M:%S", &b)) t1 = timegm(&b);
        if (f && !t) t1 = time(NULL);
        json_t *ids = json_array();
        int sold_out = 0;
        for (int64_t i = 0; i < count; i++) {
            time_t when = count > 1 ? t0 + (time_t)((t1 - t0) * i / (count - 1)) : t0;
            json_t *o = sample_order(z, sid, (int)i, when);
            if (!o) { /* nothing left to sell: the store takes no order */
                sold_out++;
                continue;
            }
            put_order(z, sid, o);
            json_array_append(ids, json_object_get(o, "id"));
        }
        json_t *ans = json_pack("{s:o}", "orders", ids);
        if (sold_out) json_object_set_new(ans, "sold_out", json_integer(sold_out));
        sim_json(resp, 201, ans);
    } else if (post && !strcmp(sub, "stock")) {
        /* A stock count in the store: every counted product of the store, or
         * the one named by sku, gets quantity. */
        long long sid = store_arg(req);
        int64_t qty = -1;
        const char *sku = jv_get_str(req->body, "sku");
        if (!sid || jv_get_id(req->body, "quantity", &qty, NULL) != 0 || qty < 0) {
            bad(resp, "store_id and quantity >= 0, optional sku");
            return 0;
        }
        store_new(z, sid, NULL);
        seed_catalogue(z, sid);
        json_t *set = json_array();
        const char *k;
        json_t *p;
        json_object_foreach(bucket(z, "products"), k, p) {
            if (json_integer_value(json_object_get(p, "_store")) != sid ||
                json_is_true(json_object_get(p, "is_infinite")))
                continue;
            if (sku && strcmp(jv_get_str(p, "sku") ? jv_get_str(p, "sku") : "", sku) != 0) continue;
            json_object_set_new(p, "quantity", json_integer(qty));
            json_array_append_new(set, public_product(p));
        }
        sim_json(resp, json_array_size(set) ? 200 : 404, json_pack("{s:o}", "products", set));
    } else if (post && !strcmp(sub, "tokens/expire")) {
        /* The store's tokens expire now (as when Zid ends them early): the
         * next API call answers 401 and the app must use its refresh token. */
        long long sid = store_arg(req);
        int n = 0;
        const char *k;
        json_t *t;
        json_object_foreach(bucket(z, "tokens"), k, t) {
            if (sid && json_integer_value(json_object_get(t, "store_id")) != sid) continue;
            if (json_integer_value(json_object_get(t, "exp")) < time(NULL)) continue;
            json_object_set_new(t, "exp", json_integer((json_int_t)time(NULL) - 1));
            n++;
        }
        sim_json(resp, 200, json_pack("{s:i}", "expired", n));
    } else if (get && !strcmp(sub, "orders")) {
        json_t *a = json_array();
        const char *k;
        json_t *o;
        json_object_foreach(bucket(z, "orders"), k, o) json_array_append_new(a, public_order(o, 0, P_VIEW));
        sim_json(resp, 200, json_pack("{s:o}", "orders", a));
    } else if (get && !strcmp(sub, "webhooks")) {
        json_t *a = json_array();
        size_t i;
        json_t *s;
        json_array_foreach(bucket(z, "subs"), i, s) {
            json_t *c = public_sub(s);
            json_object_set_new(c, "failures_last_hour",
                                json_integer((json_int_t)json_array_size(json_object_get(s, "_failures"))));
            json_object_set(c, "username", json_object_get(s, "_username"));
            /* The control view only (a test plays Zid with it); the API
             * never echoes it. */
            json_object_set(c, "password", json_object_get(s, "_password"));
            json_array_append_new(a, c);
        }
        sim_json(resp, 200, json_pack("{s:o}", "webhooks", a));
    } else {
        return TH_ENOTFOUND;
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Lifecycle and state                                                      */

static json_t *empty_state(void)
{
    return json_pack("{s:{},s:{},s:{},s:{},s:{},s:{},s:[],s:{}}", "stores", "codes", "tokens",
                     "refresh", "orders", "products", "subs", "next");
}

static void *create(struct sim *s)
{
    struct zid *z = xcalloc(1, sizeof *z);
    z->s = s;
    z->client_id = sim_opt(s, "client-id") ? sim_opt(s, "client-id") : "demo-client";
    z->client_secret = sim_opt(s, "client-secret") ? sim_opt(s, "client-secret") : "demo-secret";
    z->app_webhook_url = xstrdup(sim_opt(s, "app-webhook-url"));
    const char *v = sim_opt(s, "webhook-retry-ms");
    z->retry_ms = v ? strtol(v, NULL, 10) : 60000; /* [I: no schedule documented] */
    v = sim_opt(s, "webhook-attempts");
    z->max_attempts = v ? strtol(v, NULL, 10) : 3;
    v = sim_opt(s, "rate-limit");
    z->rate_limit = v ? strtol(v, NULL, 10) : 60;
    v = sim_opt(s, "refresh-reuse");
    z->refresh_reuse = v && !strcmp(v, "on");
    z->st = empty_state();
    return z;
}

static void destroy(void *stv)
{
    struct zid *z = stv;
    json_decref(z->st);
    free(z->app_webhook_url);
    free(z);
}

static void reset(void *stv)
{
    struct zid *z = stv;
    json_decref(z->st);
    z->st = empty_state();
}

static json_t *save(void *stv)
{
    return json_deep_copy(((struct zid *)stv)->st);
}

static int load(void *stv, const json_t *saved, struct th_err *err)
{
    struct zid *z = stv;
    if (!json_is_object(saved) || !json_is_array(json_object_get(saved, "subs")))
        return th_err_set(err, TH_EPARSE, "not a Zid emulator state");
    json_decref(z->st);
    z->st = json_deep_copy(saved);
    return 0;
}

const struct sim_ops zid_sim_ops = {
    .name = "zid",
    .create = create,
    .destroy = destroy,
    .reset = reset,
    .handle = handle,
    .control = control,
    .save = save,
    .load = load,
    .usage = "  --client-id ID          OAuth client id (default demo-client)\n"
             "  --client-secret S       OAuth client secret (default demo-secret)\n"
             "  --app-webhook-url URL   where app events (install, uninstall) go\n"
             "  --webhook-retry-ms N    delay between delivery retries (default 60000)\n"
             "  --webhook-attempts N    attempts per delivery (default 3)\n"
             "  --rate-limit N          requests per minute per store (default 60, 0 = off)\n"
             "  --refresh-reuse on|off  used refresh tokens keep working (default off: single use)\n",
};
