/*
 * api — the REST API (see api.h; docs/openapi.yaml is the reference).
 *
 * A request goes through, in order:
 *   1. no token configured → 403 (whatever the path: the answer says how to
 *      turn the API on);
 *   2. token check → 401 with WWW-Authenticate (before routing, so an
 *      unauthenticated caller learns nothing about which routes exist);
 *   3. the route table → 404 for no route, 405 with Allow for a route that
 *      exists under another method;
 *   4. the handler: query and body validation → 400 naming the field, then
 *      the store or worker/manage.c.
 *
 * Connections are named in paths and bodies by tarheel's connection id
 * (1) or by platform and store id ("salla:1305146709").
 *
 * GET /orders reads one page from the store (store_order_page: filters in
 * the query, the page found by its key), so a page costs the same at any
 * depth; bench/orders measures it.
 */
#include "http/api.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/jv.h"
#include "core/log.h"
#include "core/money.h"
#include "core/passwd.h"
#include "core/xmalloc.h"
#include "http/session.h"
#include "platform/platform.h"
#include "qoyod/qoyod.h"
#include "worker/manage.h"
#include "worker/pull.h"
#include "worker/fields.h"
#include "worker/reconcile.h"
#include "worker/report.h"

#define DIGEST_LEN 32 /* SHA-256 */

struct api {
    struct store *store;
    struct pull_runs *pulls; /* background pulls of old orders (thread-safe) */
    struct sessions *sessions; /* dashboard logins (thread-safe) */
    char *qoyod_base;
    struct connect *connect; /* borrowed; may be NULL */
    size_t ntokens;
    unsigned char digest[API_MAX_TOKENS][DIGEST_LEN];
};

/* ---------------------------------------------------------------------- */
/* Tokens                                                                   */

static void digest(const char *s, size_t len, unsigned char out[DIGEST_LEN])
{
    unsigned int n = 0;
    if (!EVP_Digest(s, len, out, &n, EVP_sha256(), NULL) || n != DIGEST_LEN)
        TH_BUG("SHA-256 failed");
}

/* RFC 6750 b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=" */
static int token_chars_ok(const char *t)
{
    size_t i = 0;
    for (; t[i]; i++) {
        char c = t[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              strchr("-._~+/", c)))
            break;
    }
    if (i == 0) return 0;
    while (t[i] == '=')
        i++;
    return t[i] == '\0';
}

/* Adds one token; where says where it came from, for messages. */
static int add_token(struct api *a, const char *t, const char *where, struct th_err *err)
{
    size_t len = strlen(t);
    if (len < API_MIN_TOKEN_LEN || len > API_MAX_TOKEN_LEN)
        return th_err_set(err, TH_ECONFIG,
                          "the API token %s is %zu characters; use %d to %d (for example "
                          "`openssl rand -hex 32`)",
                          where, len, API_MIN_TOKEN_LEN, API_MAX_TOKEN_LEN);
    if (!token_chars_ok(t))
        return th_err_set(err, TH_ECONFIG,
                          "the API token %s has a character a bearer token cannot carry; use "
                          "only A-Z a-z 0-9 - . _ ~ + / (and = at the end)",
                          where);
    if (a->ntokens == API_MAX_TOKENS)
        return th_err_set(err, TH_ELIMIT,
                          "more than %d API tokens (the next is %s); remove unused ones",
                          API_MAX_TOKENS, where);
    digest(t, len, a->digest[a->ntokens++]);
    return 0;
}

static int read_token_file(struct api *a, const char *path, struct th_err *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return th_err_set(err, TH_EIO, "cannot read the API token file %s: %s", path,
                          strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0, lineno = 0;
    while (!rc && (n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (n > 0 && strchr(" \t\r\n", line[n - 1]))
            line[--n] = '\0';
        char *t = line + strspn(line, " \t");
        if (!*t || *t == '#') continue;
        char where[64 + 4096];
        snprintf(where, sizeof where, "on line %d of %s", lineno, path);
        rc = add_token(a, t, where, err);
    }
    if (!rc && ferror(f)) rc = th_err_set(err, TH_EIO, "cannot read the API token file %s", path);
    if (line) OPENSSL_cleanse(line, cap);
    free(line);
    fclose(f);
    return rc;
}

int api_open(struct api **out, const struct api_config *cfg, struct th_err *err)
{
    if (!out || !cfg || !cfg->store)
        return th_err_set(err, TH_EINVAL, "api_open: no place for the handle, or no store");
    *out = NULL;
    struct api *a = xcalloc(1, sizeof *a);
    a->store = cfg->store;
    a->pulls = pull_runs_new(cfg->store);
    a->sessions = sessions_new();
    a->connect = cfg->connect;
    a->qoyod_base = xstrdup(cfg->qoyod_base && *cfg->qoyod_base ? cfg->qoyod_base
                                                                 : QOYOD_BASE_DEFAULT);
    int rc = 0;
    if (cfg->token_file && *cfg->token_file) rc = read_token_file(a, cfg->token_file, err);
    if (!rc && cfg->token && *cfg->token)
        rc = add_token(a, cfg->token, "in TARHEEL_API_TOKEN", err);
    if (rc) {
        api_close(a);
        return rc;
    }
    *out = a;
    return 0;
}

void api_close(struct api *a)
{
    if (!a) return;
    pull_runs_free(a->pulls); /* stops running pulls; each keeps its progress */
    sessions_free(a->sessions);
    free(a->qoyod_base);
    OPENSSL_cleanse(a->digest, sizeof a->digest);
    free(a);
}

size_t api_token_count(const struct api *a)
{
    return a ? a->ntokens : 0;
}

/* 1 when the presented token is one of the configured ones. Every digest is
 * compared, whatever matched, so timing tells nothing. */
static int token_ok(const struct api *a, const char *t, size_t len)
{
    unsigned char d[DIGEST_LEN];
    digest(t, len, d);
    int ok = 0;
    for (size_t i = 0; i < a->ntokens; i++)
        ok |= CRYPTO_memcmp(d, a->digest[i], DIGEST_LEN) == 0;
    return ok;
}

/* ---------------------------------------------------------------------- */
/* Answers                                                                  */

/* A JSON string for text from the store or the request: invalid UTF-8
 * bytes become '?' rather than dropping the member. NULL → null. */
static json_t *jstr(const char *s)
{
    if (!s) return json_null();
    json_t *v = json_string(s);
    if (v) return v;
    char *c = xstrdup(s);
    for (unsigned char *p = (unsigned char *)c; *p; p++)
        if (*p >= 0x80 || *p < 0x20) *p = '?';
    v = json_string(c);
    free(c);
    return v ? v : json_null();
}

static void send_json(struct httpd_resp *resp, int status, json_t *v)
{
    char *text = jv_dump(v);
    httpd_resp_set(resp, status, "application/json", text, strlen(text));
    httpd_resp_header(resp, "Cache-Control", "no-store");
    free(text);
    json_decref(v);
}

/* {"error":{"code","message","remedy"[,"fields"]}}. remedy NULL: the error
 * table's; fields (taken, may be NULL): per-field validation messages. */
static void send_error_v(struct httpd_resp *resp, int status, int code, const char *remedy,
                         json_t *fields, const char *fmt, va_list ap)
{
    char msg[TH_ERR_MSG_MAX];
    vsnprintf(msg, sizeof msg, fmt, ap);
    json_t *e = json_object();
    json_object_set_new(e, "code", json_string(th_err_name(code)));
    json_object_set_new(e, "message", jstr(msg));
    json_object_set_new(e, "remedy", jstr(remedy ? remedy : th_err_todo(code)));
    if (fields) json_object_set_new(e, "fields", fields);
    json_t *root = json_object();
    json_object_set_new(root, "error", e);
    send_json(resp, status, root);
}

static void send_error(struct httpd_resp *resp, int status, int code, const char *remedy,
                       const char *fmt, ...) TH_PRINTF(5, 6);
static void send_error(struct httpd_resp *resp, int status, int code, const char *remedy,
                       const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    send_error_v(resp, status, code, remedy, NULL, fmt, ap);
    va_end(ap);
}

static void send_error_fields(struct httpd_resp *resp, int status, int code, const char *remedy,
                              json_t *fields, const char *fmt, ...) TH_PRINTF(6, 7);
static void send_error_fields(struct httpd_resp *resp, int status, int code, const char *remedy,
                              json_t *fields, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    send_error_v(resp, status, code, remedy, fields, fmt, ap);
    va_end(ap);
}

/* The HTTP status for a failure the store or manage.c returned. */
static int status_of(int code)
{
    switch (code) {
    case TH_EINVAL:
    case TH_EPARSE:
    case TH_EDEPTH:
    case TH_ELIMIT:
        return 400;
    case TH_ENOTFOUND:
        return 404;
    case TH_ECONFLICT:
        return 409;
    case TH_ETOOBIG:
        return 413;
    case TH_EDB:
    case TH_EIO:
    case TH_EDISKFULL:
    case TH_ETEMP:
        return 503;
    default:
        return 500;
    }
}

static void send_th_err(struct httpd_resp *resp, const struct th_err *e)
{
    int st = status_of(e->code);
    if (st >= 500)
        log_error("api_store_failed", "code=%s msg=\"%s\"", th_err_name(e->code), e->msg);
    send_error(resp, st, e->code, NULL, "%s", e->msg);
}

/* ---------------------------------------------------------------------- */
/* Values                                                                   */

static json_t *jtime(int64_t unix_s)
{
    if (unix_s <= 0) return json_null();
    time_t t = (time_t)unix_s;
    struct tm tm;
    char b[32];
    if (!gmtime_r(&t, &tm) || !strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%SZ", &tm)) return json_null();
    return json_string(b);
}

static json_t *jtime_ms(int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char b[32], out[40];
    if (ms < 0 || !gmtime_r(&t, &tm) || !strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm))
        return json_null();
    snprintf(out, sizeof out, "%s.%03dZ", b, (int)(ms % 1000));
    return json_string(out);
}

/* {"halalas": 11500, "decimal": "115.00"} */
static json_t *jmoney(int64_t halalas)
{
    char d[MONEY_FMT_MAX];
    return json_pack("{s:I,s:s}", "halalas", (json_int_t)halalas, "decimal",
                     money_format(halalas, d, sizeof d));
}

static int parse_i64(const char *s, int64_t *out)
{
    if (!s || !*s || *s == '+' || *s == ' ') return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end || errno) return -1;
    *out = v;
    return 0;
}

/*
 * A time for from/to: unix seconds, "YYYY-MM-DD" (midnight UTC) or
 * "YYYY-MM-DDTHH:MM:SSZ". Returns 0 or -1.
 */
static int parse_time(const char *s, int64_t *out)
{
    if (parse_i64(s, out) == 0) return *out >= 0 ? 0 : -1;
    int y, mo, d, h = 0, mi = 0, sec = 0, n = 0;
    if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10) return -1;
    if (s[n]) {
        int m = 0;
        if (sscanf(s + n, "T%2d:%2d:%2dZ%n", &h, &mi, &sec, &m) != 3 || m != 10 || s[n + m])
            return -1;
    }
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
        sec < 0 || sec > 60)
        return -1;
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = sec};
    time_t t = timegm(&tm);
    if (t == (time_t)-1) return -1;
    /* timegm normalises 31 February to March: refuse what was not a date. */
    struct tm back;
    if (!gmtime_r(&t, &back) || back.tm_mday != d || back.tm_mon != mo - 1) return -1;
    *out = (int64_t)t;
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Requests                                                                 */

#define MAX_SEGS 6

struct ctx {
    struct api *a;
    const struct httpd_req *req;
    struct httpd_resp *resp;
    int nseg;
    char *seg[MAX_SEGS]; /* path segments after /api/v1/ (point into segbuf) */
    char segbuf[1024];
    char user[SESSION_USER_MAX]; /* the dashboard user; "" for a bearer token */
    char csrf[SESSION_TOKEN_LEN];
    char stamp[SESSION_TOKEN_LEN]; /* the session's: a digest of the password hash at login */
    /* Whose data this request may see and change: the tenant of the
     * dashboard user or of the stored API token; 0 for an operator token
     * (--api-token-file, $TARHEEL_API_TOKEN: every tenant). Set once by
     * api_handle before any handler runs; see "Tenant scope" below. */
    int64_t tenant;
};

/* ---------------------------------------------------------------------- */
/* Tenant scope                                                             */

/*
 * The one place where a request's tenant limits what it reaches. Handlers
 * never name a connection themselves: they go through conn_lookup (every
 * path or body naming a connection, and so every order, pull, report,
 * reconcile and settings change under it) and list through the store's
 * tenant-limited listings (store_conn_list_in, store_order_list_in,
 * manage_retry_failed_in), all given x->tenant. Another tenant's
 * connection is answered exactly as one that does not exist (404, same
 * message), so a caller learns nothing about other tenants.
 * tests/unit/http/test_api_tenants.c walks the route table (api_route_at)
 * and fails for a route without a cross-tenant case.
 */
static int in_scope(const struct ctx *x, const struct store_conn *c)
{
    return !x->tenant || c->tenant_id == x->tenant;
}

/*
 * Finds the connection named by text (tarheel id, or "platform:store_id").
 * Returns 0 with *c filled (store_conn_release), or answers the request (400
 * / 404 / 503) and returns -1. field names the parameter, for messages.
 */
static int conn_lookup(struct ctx *x, const char *field, const char *text, struct store_conn *c)
{
    struct th_err err = {0};
    int64_t id;
    int rc;
    const char *colon = text ? strchr(text, ':') : NULL;
    if (text && parse_i64(text, &id) == 0 && id > 0) {
        rc = store_conn_get(x->a->store, id, c, &err);
    } else if (colon) {
        char pname[32];
        snprintf(pname, sizeof pname, "%.*s", (int)(colon - text) < 31 ? (int)(colon - text) : 31,
                 text);
        const struct platform_ops *p = platform_by_name(pname);
        if (!p) {
            send_error(x->resp, 400, TH_EINVAL, NULL,
                       "%s: this tarheel knows no platform \"%s\" (in \"%.64s\")", field, pname,
                       text);
            return -1;
        }
        if (parse_i64(colon + 1, &id) || id <= 0) goto bad;
        rc = store_conn_find(x->a->store, p->platform, id, c, &err);
    } else {
        goto bad;
    }
    if (!rc && !in_scope(x, c)) {
        store_conn_release(c);
        rc = TH_ENOTFOUND;
    }
    if (rc == TH_ENOTFOUND) {
        send_error(x->resp, 404, TH_ENOTFOUND,
                   "list the connections with GET /api/v1/connections (or `tarheel connect` a "
                   "store first)",
                   "%s: no connection %.64s", field, text);
        return -1;
    }
    if (rc) {
        send_th_err(x->resp, &err);
        return -1;
    }
    return 0;
bad:
    send_error(x->resp, 400, TH_EINVAL, NULL,
               "%s must be a connection id (1) or platform:store_id (salla:1305146709), not "
               "\"%.64s\"",
               field, text ? text : "");
    return -1;
}

/* The same for a JSON member (integer or string). */
static int conn_lookup_json(struct ctx *x, const char *field, const json_t *v, struct store_conn *c)
{
    char text[64];
    if (json_is_integer(v))
        snprintf(text, sizeof text, "%lld", (long long)json_integer_value(v));
    else if (json_is_string(v))
        snprintf(text, sizeof text, "%.63s", json_string_value(v));
    else
        snprintf(text, sizeof text, "%s", v ? "(not a number or string)" : "(missing)");
    return conn_lookup(x, field, text, c);
}

/*
 * Parses the request body as a JSON object. empty_ok: an empty body is {}.
 * Returns a new reference, or answers 400 and returns NULL.
 */
static json_t *body_object(struct ctx *x, int empty_ok)
{
    size_t len;
    const char *body = httpd_req_body(x->req, &len);
    size_t blank = 0;
    while (blank < len && strchr(" \t\r\n", body[blank]))
        blank++;
    if (blank == len) {
        if (empty_ok) return json_object();
        send_error(x->resp, 400, TH_EPARSE,
                   "send a JSON object with Content-Type: application/json",
                   "this request needs a JSON body");
        return NULL;
    }
    struct th_err err = {0};
    json_t *v = jv_parse(body, len, JV_MAX_DEPTH, &err);
    if (!v) {
        send_error(x->resp, 400, err.code ? err.code : TH_EPARSE,
                   "send a JSON object with Content-Type: application/json", "malformed JSON: %s",
                   err.msg);
        return NULL;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        send_error(x->resp, 400, TH_EPARSE, NULL, "the body must be a JSON object");
        return NULL;
    }
    return v;
}

/* Answers 400 and returns -1 when obj has a member not in allowed (NULL-
 * terminated). */
static int only_members(struct ctx *x, json_t *obj, const char *const *allowed, const char *list)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        int ok = 0;
        for (size_t i = 0; allowed[i]; i++)
            ok |= strcmp(k, allowed[i]) == 0;
        if (!ok) {
            send_error(x->resp, 400, TH_EINVAL, NULL, "%.64s: unknown member; allowed: %s", k,
                       list);
            return -1;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Connections                                                              */

static json_t *settings_json(const struct store_conn *c)
{
    return json_pack(
        "{s:s,s:b,s:b,s:b,s:I,s:I,s:b,s:I,s:s,s:b,s:s,s:s,s:s}", "trigger",
        model_status_name(c->trigger), "customer_per_invoice", c->customer_per_invoice,
        "number_by_order", c->number_by_order, "financial_invoice", c->financial_invoice,
        "inventory_id", (json_int_t)c->inventory_id, "payment_account_id",
        (json_int_t)c->payment_account_id, "stock_sync", c->stock_sync, "stock_interval",
        (json_int_t)(c->stock_interval_s ? c->stock_interval_s : STORE_STOCK_INTERVAL_DEFAULT),
        "reference_prefix", c->ref_prefix ? c->ref_prefix : "", "fields_sync", c->fields_sync,
        "name_source", store_src_name(store_field_source(c, STORE_FIELD_NAME)), "price_source",
        store_src_name(store_field_source(c, STORE_FIELD_PRICE)), "cost_source",
        store_src_name(store_field_source(c, STORE_FIELD_COST)));
}

static int set(const char *s)
{
    return s && *s;
}

/* A connection without its secrets: for those, only whether they are set. */
static json_t *conn_json(const struct store_conn *c)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(c->id));
    json_object_set_new(o, "platform", json_string(model_platform_name(c->platform)));
    json_object_set_new(o, "store_id", json_integer(c->store_id));
    json_object_set_new(o, "name", jstr(c->name));
    json_object_set_new(o, "state", jstr(c->status));
    json_object_set_new(o, "connected_at", jtime(c->connected_at));
    json_object_set_new(o, "qoyod_url", jstr(c->qoyod_base));
    json_object_set_new(o, "settings", settings_json(c));
    json_object_set_new(o, "credentials",
                        json_pack("{s:b,s:b,s:o,s:b,s:s?,s:b}", "access_token",
                                  set(c->access_token), "refresh_token", set(c->refresh_token),
                                  "token_expires_at", jtime(c->token_expires_at), "webhook_secret",
                                  set(c->webhook_secret), "webhook_strategy", c->webhook_strategy,
                                  "qoyod_api_key", set(c->qoyod_api_key)));
    return o;
}

static void list_conn(void *arg, const struct store_conn *c)
{
    json_array_append_new(arg, conn_json(c));
}

static void get_connections(struct ctx *x)
{
    json_t *arr = json_array();
    struct th_err err = {0};
    if (store_conn_list_in(x->a->store, x->tenant, list_conn, arr, &err) != 0) {
        json_decref(arr);
        send_th_err(x->resp, &err);
        return;
    }
    json_t *root = json_object();
    json_object_set_new(root, "connections", arr);
    send_json(x->resp, 200, root);
}

static void get_connection(struct ctx *x)
{
    struct store_conn c = {0};
    if (conn_lookup(x, "connection", x->seg[1], &c)) return;
    send_json(x->resp, 200, conn_json(&c));
    store_conn_release(&c);
}

static void get_settings(struct ctx *x)
{
    struct store_conn c = {0};
    if (conn_lookup(x, "connection", x->seg[1], &c)) return;
    send_json(x->resp, 200, settings_json(&c));
    store_conn_release(&c);
}

/* The text manage_setting_set parses, for a JSON value. */
static char *setting_text(const json_t *v)
{
    if (json_is_true(v)) return xstrdup("on");
    if (json_is_false(v)) return xstrdup("off");
    if (json_is_integer(v)) return xasprintf("%lld", (long long)json_integer_value(v));
    if (json_is_string(v)) return xstrdup(json_string_value(v));
    /* null, reals, arrays, objects: refused by every setting; the message
     * quotes what was sent. */
    char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    char *out = xstrdup(t ? t : "?");
    free(t);
    return out;
}

static void patch_settings(struct ctx *x)
{
    struct store_conn c = {0};
    if (conn_lookup(x, "connection", x->seg[1], &c)) return;
    json_t *body = body_object(x, 0);
    if (!body) {
        store_conn_release(&c);
        return;
    }
    /* Every field is checked before anything is saved; all the problems are
     * reported at once, the first one as the message. */
    json_t *fields = json_array();
    char first[TH_ERR_MSG_MAX] = "";
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v)
    {
        char *text = setting_text(v);
        struct th_err e = {0};
        if (manage_setting_set(&c, k, text, &e) != 0) {
            if (!first[0]) snprintf(first, sizeof first, "%s", e.msg);
            json_array_append_new(fields,
                                  json_pack("{s:o,s:o}", "field", jstr(k), "message", jstr(e.msg)));
        }
        free(text);
    }
    if (json_array_size(fields)) {
        send_error_fields(x->resp, 400, TH_EINVAL,
                          "correct the fields listed in error.fields; GET this URL shows the "
                          "current values",
                          fields, "%s", first);
        goto out;
    }
    json_decref(fields);
    struct th_err err = {0};
    if (store_conn_put_settings(x->a->store, &c, &err) != 0) {
        send_th_err(x->resp, &err);
        goto out;
    }
    char *changed = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
    log_info("api_settings_changed", "conn=%lld store=%lld set=%s", (long long)c.id,
             (long long)c.store_id, changed ? changed : "?");
    free(changed);
    send_json(x->resp, 200, settings_json(&c));
out:
    json_decref(body);
    store_conn_release(&c);
}

/* ---------------------------------------------------------------------- */
/* Orders                                                                   */

static json_t *order_json(const struct store_order *o)
{
    json_t *j = json_object();
    json_object_set_new(j, "connection", json_integer(o->conn_id));
    json_object_set_new(j, "order_id", json_integer(o->order_id));
    json_object_set_new(j, "number", jstr(o->number));
    json_object_set_new(j, "status", json_string(model_status_name(o->status)));
    json_object_set_new(j, "state", json_string(store_xfer_name(o->xfer)));
    json_t *reason = json_null();
    if ((o->reason && *o->reason) || o->reason_code)
        reason = json_pack("{s:s?,s:o,s:s?}", "code",
                           o->reason_code ? th_err_name(o->reason_code) : NULL, "message",
                           jstr(o->reason ? o->reason : ""), "remedy",
                           o->reason_code ? th_err_todo(o->reason_code) : NULL);
    json_object_set_new(j, "reason", reason);
    json_object_set_new(j, "attempts", json_integer(o->attempts));
    json_object_set_new(j, "total", jmoney(o->total));
    json_t *q = json_null();
    if (o->xfer == STORE_XFER_TRANSFERRED || o->qoyod_invoice_id)
        q = json_pack("{s:I,s:o,s:o,s:o,s:s,s:o}", "invoice_id", (json_int_t)o->qoyod_invoice_id,
                      "invoice_reference", jstr(o->qoyod_reference), "payment_id",
                      o->qoyod_payment_id ? json_integer(o->qoyod_payment_id) : json_null(),
                      "total", jmoney(o->qoyod_total), "credit", store_credit_name(o->credit),
                      "credited", jmoney(o->credited));
    json_object_set_new(j, "qoyod", q);
    json_object_set_new(j, "created_at", jtime(o->created_at));
    json_object_set_new(j, "updated_at", jtime(o->updated_at));
    json_object_set_new(j, "transferred_at", jtime(o->transferred_at));
    return j;
}

/* The cursor: the sort key of the last order of a page, (created_at,
 * order_id, conn_id) as the store orders them, as hex text so that clients
 * treat it as opaque. */
static void cursor_encode(const struct store_order_key *k, char *out, size_t n)
{
    char plain[96];
    int len = snprintf(plain, sizeof plain, "1.%lld.%lld.%lld", (long long)k->created_at,
                       (long long)k->order_id, (long long)k->conn_id);
    size_t o = 0;
    for (int i = 0; i < len && o + 3 <= n; i++)
        o += (size_t)snprintf(out + o, 3, "%02x", (unsigned char)plain[i]);
}

static int cursor_decode(const char *s, struct store_order_key *k)
{
    size_t len = strlen(s);
    char plain[96];
    if (len == 0 || len % 2 || len / 2 >= sizeof plain) return -1;
    for (size_t i = 0; i < len / 2; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1 || !strchr("0123456789abcdef", s[2 * i]) ||
            !strchr("0123456789abcdef", s[2 * i + 1]))
            return -1;
        plain[i] = (char)v;
    }
    plain[len / 2] = '\0';
    long long a, b, c;
    int n = 0;
    if (sscanf(plain, "1.%lld.%lld.%lld%n", &a, &b, &c, &n) != 3 || plain[n]) return -1;
    *k = (struct store_order_key){a, b, c};
    return 0;
}

/* A page being built: the store hands out limit + 1 rows, the last only
 * to tell that there are more. */
struct page {
    int limit;
    json_t *arr;
    int more;
    struct store_order_key last;
};

static void page_row(void *arg, const struct store_order *o)
{
    struct page *p = arg;
    if ((int)json_array_size(p->arr) >= p->limit) {
        p->more = 1;
        return;
    }
    json_array_append_new(p->arr, order_json(o));
    p->last = (struct store_order_key){o->created_at, o->order_id, o->conn_id};
}

/* 1 when every query parameter of the request is one of params (NULL-
 * terminated); else answers 400 naming the first stranger and the allowed
 * ones, and returns 0. */
static int only_params(struct ctx *x, const char *const *params)
{
    for (size_t i = 0; i < httpd_req_nargs(x->req); i++) {
        const char *k, *v;
        httpd_req_arg_at(x->req, i, &k, &v);
        int ok = 0;
        for (size_t j = 0; params[j]; j++)
            ok |= strcmp(k, params[j]) == 0;
        if (ok) continue;
        char allowed[256] = "";
        size_t len = 0;
        for (size_t j = 0; params[j] && len < sizeof allowed; j++)
            len += (size_t)snprintf(allowed + len, sizeof allowed - len, "%s%s", j ? ", " : "",
                                    params[j]);
        send_error(x->resp, 400, TH_EINVAL, NULL,
                   "%.64s: unknown query parameter; allowed: %s", k, allowed);
        return 0;
    }
    return 1;
}

static void get_orders(struct ctx *x)
{
    static const char *const params[] = {"connection", "state", "from", "to", "limit",
                                         "cursor",     "q",     "order", NULL};
    if (!only_params(x, params)) return;
    struct store_order_query q = {.tenant = x->tenant, .xfer = -1, .limit = API_PAGE_DEFAULT};
    const char *v;
    if ((v = httpd_req_arg(x->req, "state")) && (q.xfer = store_xfer_from_name(v)) < 0) {
        send_error(x->resp, 400, TH_EINVAL, NULL,
                   "state must be not_transferred, transferring, transferred, failed or skipped, "
                   "not \"%.64s\"",
                   v);
        return;
    }
    const char *tf[2] = {"from", "to"};
    int64_t *tv[2] = {&q.from, &q.to};
    for (int i = 0; i < 2; i++)
        if ((v = httpd_req_arg(x->req, tf[i])) && parse_time(v, tv[i])) {
            send_error(x->resp, 400, TH_EINVAL, NULL,
                       "%s must be a date (2026-01-15), a UTC time (2026-01-15T10:00:00Z) or "
                       "unix seconds, not \"%.64s\"",
                       tf[i], v);
            return;
        }
    int64_t lim;
    if ((v = httpd_req_arg(x->req, "limit")) &&
        (parse_i64(v, &lim) || lim < 1 || lim > API_PAGE_MAX)) {
        send_error(x->resp, 400, TH_EINVAL, NULL,
                   "limit must be a whole number from 1 to %d, not "
                   "\"%.64s\"",
                   API_PAGE_MAX, v);
        return;
    } else if (v) {
        q.limit = (int)lim;
    }
    q.text = httpd_req_arg(x->req, "q");
    if ((v = httpd_req_arg(x->req, "order"))) {
        if (strcmp(v, "newest") && strcmp(v, "oldest")) {
            send_error(x->resp, 400, TH_EINVAL, NULL,
                       "order must be oldest (the default) or newest, not \"%.64s\"", v);
            return;
        }
        q.newest = strcmp(v, "newest") == 0;
    }
    if ((v = httpd_req_arg(x->req, "cursor"))) {
        if (cursor_decode(v, &q.after)) {
            send_error(x->resp, 400, TH_EINVAL,
                       "pass next_cursor from the previous page unchanged, or leave cursor out "
                       "for the first page",
                       "cursor \"%.64s\" is not one this API gave out", v);
            return;
        }
        q.has_after = 1;
    }
    if ((v = httpd_req_arg(x->req, "connection"))) {
        struct store_conn c = {0};
        if (conn_lookup(x, "connection", v, &c)) return;
        q.conn_id = c.id;
        store_conn_release(&c);
    }
    /* one row more than the page tells whether there are more */
    struct page p = {.limit = q.limit, .arr = json_array()};
    q.limit++;
    struct th_err err = {0};
    if (store_order_page(x->a->store, &q, page_row, &p, &err) != 0) {
        json_decref(p.arr);
        send_th_err(x->resp, &err);
        return;
    }
    json_t *root = json_object();
    json_object_set_new(root, "orders", p.arr);
    json_t *next = json_null();
    if (p.more) {
        char cur[200];
        cursor_encode(&p.last, cur, sizeof cur);
        next = json_string(cur);
    }
    json_object_set_new(root, "next_cursor", next);
    send_json(x->resp, 200, root);
}

static void add_history(void *arg, int64_t ts_ms, const char *what, const char *detail)
{
    json_array_append_new(arg, json_pack("{s:o,s:o,s:o}", "at", jtime_ms(ts_ms), "what", jstr(what),
                                         "detail", jstr(detail)));
}

static void get_order(struct ctx *x)
{
    struct store_conn c = {0};
    if (conn_lookup(x, "connection", x->seg[1], &c)) return;
    int64_t conn_id = c.id, order_id;
    store_conn_release(&c);
    if (parse_i64(x->seg[2], &order_id) || order_id <= 0) {
        send_error(x->resp, 400, TH_EINVAL, NULL,
                   "order_id must be the platform's order id (a positive integer), not "
                   "\"%.64s\"",
                   x->seg[2]);
        return;
    }
    struct store_order o = {0};
    struct th_err err = {0};
    int rc = store_order_get(x->a->store, conn_id, order_id, &o, &err);
    if (rc == TH_ENOTFOUND) {
        send_error(x->resp, 404, TH_ENOTFOUND,
                   "tarheel knows an order once its webhook arrived or it was queued; queue it "
                   "with POST /api/v1/orders/transfer",
                   "connection %lld has no order %lld", (long long)conn_id, (long long)order_id);
        return;
    }
    if (rc) {
        send_th_err(x->resp, &err);
        return;
    }
    json_t *j = order_json(&o);
    store_order_release(&o);
    json_t *hist = json_array();
    if (store_order_history(x->a->store, conn_id, order_id, add_history, hist, &err) != 0) {
        json_decref(hist);
        json_decref(j);
        send_th_err(x->resp, &err);
        return;
    }
    json_object_set_new(j, "history", hist);
    send_json(x->resp, 200, j);
}

static void post_transfer_range(struct ctx *x, json_t *body);

static void post_transfer(struct ctx *x)
{
    json_t *body = body_object(x, 0);
    if (!body) return;
    static const char *const allowed[] = {"connection", "orders", NULL};
    struct store_conn c = {0};
    int64_t *ids = NULL;
    if (json_object_get(body, "from") || json_object_get(body, "to")) {
        post_transfer_range(x, body); /* every waiting order of a date range (Pulls, below) */
        goto out;
    }
    if (only_members(x, body, allowed, "connection, orders")) goto out;
    json_t *list = json_object_get(body, "orders");
    if (!json_is_array(list) || json_array_size(list) == 0) {
        send_error(x->resp, 400, TH_EINVAL, NULL,
                   "orders must be a non-empty array of platform order ids ([2116149737])");
        goto out;
    }
    size_t n = json_array_size(list);
    if (n > MANAGE_MAX_ORDERS) {
        send_error(x->resp, 400, TH_ELIMIT, NULL,
                   "orders lists %zu ids; at most %d per request (split the list)", n,
                   MANAGE_MAX_ORDERS);
        goto out;
    }
    ids = xcalloc(n, sizeof *ids);
    for (size_t i = 0; i < n; i++) {
        struct th_err e = {0};
        if (jv_to_id(json_array_get(list, i), &ids[i], &e) != 0 || ids[i] <= 0) {
            send_error(x->resp, 400, TH_EINVAL, NULL,
                       "orders[%zu] must be a platform order id (a positive integer)", i);
            goto out;
        }
    }
    if (conn_lookup_json(x, "connection", json_object_get(body, "connection"), &c)) goto out;
    size_t queued = 0;
    struct th_err err = {0};
    int rc = manage_transfer(x->a->store, c.id, ids, n, "from the API", &queued, &err);
    log_info("api_transfer_queued", "conn=%lld orders=%zu queued=%zu code=%s", (long long)c.id, n,
             queued, rc ? th_err_name(rc) : "ok");
    if (rc) {
        if (queued) {
            int st = status_of(rc);
            send_error(x->resp, st, rc, NULL, "%zu of %zu orders were queued before: %s", queued, n,
                       err.msg);
        } else {
            send_th_err(x->resp, &err);
        }
        goto out;
    }
    json_t *q = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(q, json_integer(ids[i]));
    json_t *root = json_pack("{s:I,s:o,s:I}", "connection", (json_int_t)c.id, "queued", q, "count",
                             (json_int_t)n);
    send_json(x->resp, 202, root);
out:
    free(ids);
    store_conn_release(&c);
    json_decref(body);
}

static void add_queued(void *arg, int64_t conn_id, int64_t order_id)
{
    json_array_append_new(arg, json_pack("{s:I,s:I}", "connection", (json_int_t)conn_id, "order_id",
                                         (json_int_t)order_id));
}

static void post_retry(struct ctx *x)
{
    json_t *body = body_object(x, 1);
    if (!body) return;
    static const char *const allowed[] = {"connection", NULL};
    int64_t conn_id = 0;
    if (only_members(x, body, allowed, "connection")) goto out;
    json_t *cv = json_object_get(body, "connection");
    if (cv) {
        struct store_conn c = {0};
        if (conn_lookup_json(x, "connection", cv, &c)) goto out;
        conn_id = c.id;
        store_conn_release(&c);
    }
    json_t *q = json_array();
    size_t queued = 0;
    struct th_err err = {0};
    int rc = manage_retry_failed_in(x->a->store, x->tenant, conn_id, "retry from the API",
                                    add_queued, q, &queued, &err);
    log_info("api_retry_queued", "conn=%lld queued=%zu code=%s", (long long)conn_id, queued,
             rc ? th_err_name(rc) : "ok");
    if (rc) {
        json_decref(q);
        send_th_err(x->resp, &err);
        goto out;
    }
    send_json(x->resp, 202,
              json_pack("{s:o,s:o,s:I}", "connection",
                        conn_id ? json_integer(conn_id) : json_null(), "queued", q, "count",
                        (json_int_t)queued));
out:
    json_decref(body);
}

/* ---------------------------------------------------------------------- */
/* Reconciliation                                                           */

/* GET /reconcile?connection=&from=&to=: worker/reconcile.c reads the store
 * and Qoyod (read-only) and writes the JSON, the same text `tarheel
 * reconcile --json` prints. It answers once every order of the range is
 * read (one platform request each), so a long range takes a while. */
static void get_reconcile(struct ctx *x)
{
    static const char *const params[] = {"connection", "from", "to", NULL};
    if (!only_params(x, params)) return;
    const char *cv = httpd_req_arg(x->req, "connection");
    const char *from = httpd_req_arg(x->req, "from"), *to = httpd_req_arg(x->req, "to");
    if (!cv || !from || !to) {
        send_error(x->resp, 400, TH_EINVAL,
                   "name the store and the days: connection=1 (or salla:1305146709), "
                   "from=YYYY-MM-DD, to=YYYY-MM-DD",
                   "connection, from and to are required");
        return;
    }
    struct store_conn c = {0};
    if (conn_lookup(x, "connection", cv, &c)) return;
    struct reconcile_env env = {.store = x->a->store, .platform_http = httpc_new(NULL)};
    struct reconcile_report r;
    struct th_err err = {0};
    int rc = reconcile_run(&env, c.id, from, to, &r, &err);
    httpc_free(env.platform_http);
    store_conn_release(&c);
    if (rc) {
        send_th_err(x->resp, &err);
        return;
    }
    char *text = reconcile_json(&r);
    reconcile_report_release(&r);
    httpd_resp_set(x->resp, 200, "application/json", text, strlen(text));
    httpd_resp_header(x->resp, "Cache-Control", "no-store");
    free(text);
}

/* ---------------------------------------------------------------------- */
/* Field conflicts (worker/fields.c, docs/FIELDS.md)                        */

static void send_text_json(struct httpd_resp *resp, int status, char *text)
{
    httpd_resp_set(resp, status, "application/json", text, strlen(text));
    httpd_resp_header(resp, "Cache-Control", "no-store");
    free(text);
}

/* Tenant scope of a conflict: its connection's. */
static int conflict_in_scope(void *arg, int64_t conn_id)
{
    struct ctx *x = arg;
    if (!x->tenant) return 1;
    struct store_conn c;
    struct th_err err;
    if (store_conn_get(x->a->store, conn_id, &c, &err) != 0) return 0;
    int ok = in_scope(x, &c);
    store_conn_release(&c);
    return ok;
}

/* GET /conflicts?connection=&all=true&limit=: open conflicts (all=true:
 * reviewed ones too), newest first, as `tarheel conflicts --json`. */
static void get_conflicts(struct ctx *x)
{
    static const char *const params[] = {"connection", "all", "limit", NULL};
    if (!only_params(x, params)) return;
    int64_t conn_id = 0;
    const char *cv = httpd_req_arg(x->req, "connection");
    if (cv) {
        struct store_conn c = {0};
        if (conn_lookup(x, "connection", cv, &c)) return;
        conn_id = c.id;
        store_conn_release(&c);
    }
    const char *all = httpd_req_arg(x->req, "all");
    if (all && strcmp(all, "true") && strcmp(all, "false") && strcmp(all, "1") &&
        strcmp(all, "0")) {
        send_error(x->resp, 400, TH_EINVAL, NULL, "all must be true or false, not \"%.32s\"", all);
        return;
    }
    int open_only = !all || !strcmp(all, "false") || !strcmp(all, "0");
    long limit = 0;
    const char *lv = httpd_req_arg(x->req, "limit");
    if (lv) {
        char *end;
        limit = strtol(lv, &end, 10);
        if (!*lv || *end || limit < 1 || limit > 10000) {
            send_error(x->resp, 400, TH_EINVAL, NULL, "limit must be 1 to 10000, not \"%.32s\"",
                       lv);
            return;
        }
    }
    char *text = NULL;
    struct th_err err = {0};
    if (fields_conflicts_json(x->a->store, conn_id, open_only, (int)limit,
                              x->tenant ? conflict_in_scope : NULL, x, &text, &err) != 0) {
        send_th_err(x->resp, &err);
        return;
    }
    send_text_json(x->resp, 200, text);
}

/* The conflict id of the path, when it exists and is in the caller's scope
 * (another tenant's is answered as one that does not exist); else answers
 * 404 (503 when the store failed) and returns -1. */
static int conflict_id(struct ctx *x, int64_t *id)
{
    char *end;
    long long v = strtoll(x->seg[1], &end, 10);
    struct store_conflict k;
    struct th_err err = {0};
    int rc = *end || v <= 0 ? TH_ENOTFOUND : store_conflict_get(x->a->store, v, &k, &err);
    if (rc == 0 && !conflict_in_scope(x, k.conn_id)) rc = TH_ENOTFOUND;
    if (rc == TH_ENOTFOUND) {
        send_error(x->resp, 404, TH_ENOTFOUND, "list them with GET /api/v1/conflicts",
                   "there is no conflict %.32s", x->seg[1]);
        return -1;
    }
    if (rc) {
        send_th_err(x->resp, &err);
        return -1;
    }
    *id = v;
    return 0;
}

static void get_conflict(struct ctx *x)
{
    int64_t id;
    if (conflict_id(x, &id)) return;
    char *text = NULL;
    struct th_err err = {0};
    if (fields_conflict_json(x->a->store, id, &text, &err) != 0) {
        send_th_err(x->resp, &err);
        return;
    }
    send_text_json(x->resp, 200, text);
}

/* POST /conflicts/{id}/resolve {"keep": "store"|"qoyod"} (keep optional):
 * marks it reviewed; keep writes that side's value to both sides first. */
static void post_conflict_resolve(struct ctx *x)
{
    int64_t id;
    if (conflict_id(x, &id)) return;
    json_t *body = body_object(x, 1);
    if (!body) return;
    static const char *const allowed[] = {"keep", NULL};
    int keep = 0;
    if (only_members(x, body, allowed, "keep")) goto out;
    json_t *kv = json_object_get(body, "keep");
    if (kv && !json_is_null(kv) &&
        (!json_is_string(kv) || (keep = store_src_from_name(json_string_value(kv))) < 0)) {
        send_error(x->resp, 400, TH_EINVAL, NULL, "keep must be \"store\" or \"qoyod\"");
        goto out;
    }
    struct th_err err = {0};
    struct httpc *hc = httpc_new(NULL);
    int rc = fields_conflict_resolve(x->a->store, hc, id, keep, NULL, &err);
    httpc_free(hc);
    if (rc) {
        send_th_err(x->resp, &err);
        goto out;
    }
    log_info("api_conflict_resolved", "conflict=%lld keep=%s", (long long)id,
             keep ? store_src_name(keep) : "none");
    char *text = NULL;
    if (fields_conflict_json(x->a->store, id, &text, &err) != 0)
        send_th_err(x->resp, &err);
    else
        send_text_json(x->resp, 200, text);
out:
    json_decref(body);
}

/* ---------------------------------------------------------------------- */
/* Reports                                                                  */

/* GET /reports/monthly?connection=&from=&to=: worker/report.c computes the
 * figures and writes the JSON, the same text `tarheel report --json` prints. */
static void get_report_monthly(struct ctx *x)
{
    static const char *const params[] = {"connection", "from", "to", NULL};
    if (!only_params(x, params)) return;
    const char *cv = httpd_req_arg(x->req, "connection");
    if (!cv) {
        send_error(x->resp, 400, TH_EINVAL,
                   "name the store: connection=1 or connection=salla:1305146709 (GET "
                   "/api/v1/connections lists them)",
                   "connection is required: a report is per store");
        return;
    }
    const char *tf[2] = {"from", "to"};
    int month[2] = {REPORT_MONTH_NONE, REPORT_MONTH_NONE};
    for (int i = 0; i < 2; i++) {
        const char *v = httpd_req_arg(x->req, tf[i]);
        if (v && report_month_parse(v, &month[i])) {
            send_error(x->resp, 400, TH_EINVAL, NULL,
                       "%s must be a month as YYYY-MM (2024-01), not \"%.64s\"", tf[i], v);
            return;
        }
    }
    struct store_conn c = {0};
    if (conn_lookup(x, "connection", cv, &c)) return;
    struct report r;
    struct th_err err = {0};
    int rc = report_monthly(x->a->store, c.id, month[0], month[1], &r, &err);
    store_conn_release(&c);
    if (rc) {
        send_th_err(x->resp, &err);
        return;
    }
    char *text = report_json(&r);
    report_release(&r);
    httpd_resp_set(x->resp, 200, "application/json", text, strlen(text));
    httpd_resp_header(x->resp, "Cache-Control", "no-store");
    free(text);
}

/* ---------------------------------------------------------------------- */
/* Pulls: old orders of a date range (worker/pull.c)                        */

/* Parses body's "from" and "to" (dates, Riyadh days) into *r. Returns 0, or
 * answers 400 and returns -1. */
static int range_of(struct ctx *x, json_t *body, struct pull_range *r)
{
    json_t *f = json_object_get(body, "from"), *t = json_object_get(body, "to");
    struct th_err err = {0};
    if ((f && !json_is_string(f)) || (t && !json_is_string(t)) ||
        pull_range_parse(json_string_value(f), json_string_value(t), r, &err) != 0) {
        send_error(x->resp, 400, TH_EINVAL,
                   "send \"from\" and \"to\" as dates YYYY-MM-DD (days in Riyadh time, both "
                   "included), from not after to",
                   "%s", err.code ? err.msg : "from and to must be strings");
        return -1;
    }
    return 0;
}

static json_t *pull_json(const struct pull_status *st)
{
    const struct pull_progress *p = &st->progress;
    static const char *const phases[] = {"listing", "fetching", "done"};
    json_t *j = json_object();
    json_object_set_new(j, "id", json_integer(st->id));
    json_object_set_new(j, "connection", json_integer(st->conn_id));
    json_object_set_new(j, "from", json_stringn(st->range.text, 10));
    json_object_set_new(j, "to", json_string(st->range.text + 12));
    json_object_set_new(j, "state", json_string(pull_state_name(st->state)));
    json_object_set_new(j, "phase", json_string(phases[p->phase <= PULL_DONE ? p->phase : 0]));
    json_object_set_new(j, "pulled", json_integer(p->pulled));
    json_object_set_new(j, "total", p->total >= 0 ? json_integer(p->total) : json_null());
    json_object_set_new(j, "listed", json_integer(p->listed));
    json_object_set_new(j, "added", json_integer(p->added));
    json_object_set_new(j, "known", json_integer(p->known));
    json_object_set_new(j, "gone", json_integer(p->gone));
    json_object_set_new(j, "waiting_s", json_integer(p->wait_s));
    json_object_set_new(j, "resumed", json_boolean(p->resumed));
    json_object_set_new(j, "finished_before", json_boolean(p->finished_before));
    json_object_set_new(j, "error",
                        st->state == PULL_FAILED
                            ? json_pack("{s:s,s:o,s:s}", "code", th_err_name(st->code), "message",
                                        jstr(st->error), "remedy", th_err_todo(st->code))
                            : json_null());
    json_object_set_new(j, "started_at", jtime(st->started_at));
    json_object_set_new(j, "finished_at", jtime(st->finished_at));
    return j;
}

/* POST /pulls {"connection","from","to"[,"again"]}: starts pulling in the
 * background; 202 with the pull (the same one when that range of that
 * store is being pulled already). */
static void post_pulls(struct ctx *x)
{
    json_t *body = body_object(x, 0);
    if (!body) return;
    static const char *const allowed[] = {"connection", "from", "to", "again", NULL};
    struct store_conn c = {0};
    struct pull_range r;
    json_t *again = json_object_get(body, "again");
    if (only_members(x, body, allowed, "connection, from, to, again")) goto out;
    if (again && !json_is_boolean(again)) {
        send_error(x->resp, 400, TH_EINVAL, NULL, "again must be true or false");
        goto out;
    }
    if (range_of(x, body, &r)) goto out;
    if (conn_lookup_json(x, "connection", json_object_get(body, "connection"), &c)) goto out;
    struct th_err err = {0};
    int64_t id = 0;
    int running = 0;
    int rc = pull_runs_start(x->a->pulls, c.id, &r, json_is_true(again), &id, &running, &err);
    if (rc == TH_ELIMIT) {
        send_error(x->resp, 429, rc,
                   "wait until GET /api/v1/pulls/{id} of a running pull says done, then start "
                   "this one",
                   "%s", err.msg);
        httpd_resp_header(x->resp, "Retry-After", "60");
        goto out;
    }
    if (rc == TH_EAUTH || rc == TH_ECONFIG) {
        send_error(x->resp, 409, rc, NULL, "%s", err.msg);
        goto out;
    }
    if (rc) {
        send_th_err(x->resp, &err);
        goto out;
    }
    struct pull_status st;
    /* Only 64 newer pulls started meanwhile could have made it forgotten. */
    int known = pull_runs_get(x->a->pulls, id, &st, &err) == 0;
    log_info("api_pull_started", "conn=%lld range=%s pull=%lld running=%d", (long long)c.id, r.text,
             (long long)id, running);
    char loc[64];
    snprintf(loc, sizeof loc, "/api/v1/pulls/%lld", (long long)id);
    send_json(x->resp, 202, known ? pull_json(&st) : json_pack("{s:I}", "id", (json_int_t)id));
    httpd_resp_header(x->resp, "Location", loc);
out:
    store_conn_release(&c);
    json_decref(body);
}

static void get_pull(struct ctx *x)
{
    int64_t id;
    struct pull_status st;
    struct th_err err = {0};
    if (parse_i64(x->seg[1], &id) || id <= 0) {
        send_error(x->resp, 400, TH_EINVAL, NULL,
                   "a pull id is the positive integer POST /api/v1/pulls answered, not \"%.64s\"",
                   x->seg[1]);
        return;
    }
    int rc = pull_runs_get(x->a->pulls, id, &st, &err);
    if (rc == 0 && x->tenant) {
        /* A pull is another tenant's when its connection is (in scope as
         * conn_lookup decides, with the same answer as an unknown pull). */
        struct store_conn c = {0};
        if (store_conn_get(x->a->store, st.conn_id, &c, &err) != 0 || !in_scope(x, &c))
            rc = th_err_set(&err, TH_ENOTFOUND,
                            "no pull %lld (pulls are remembered until tarheel restarts, the last "
                            "%d)",
                            (long long)id, PULL_MAX_KEPT);
        store_conn_release(&c);
    }
    if (rc != 0) {
        send_error(x->resp, 404, TH_ENOTFOUND,
                   "start the pull again with POST /api/v1/pulls: it continues where it stopped",
                   "%s", err.msg);
        return;
    }
    send_json(x->resp, 200, pull_json(&st));
}

/* POST /orders/transfer {"connection","from","to"[,"dry_run"]}: every order
 * created in the range that is not transferred or failed (cancelled ones
 * left out), queued by hand as a list of ids is; dry_run only counts them,
 * for a confirmation. */
static void post_transfer_range(struct ctx *x, json_t *body)
{
    static const char *const allowed[] = {"connection", "from", "to", "dry_run", NULL};
    struct store_conn c = {0};
    struct pull_range r;
    int64_t *ids = NULL;
    size_t n = 0, left = 0, queued = 0;
    json_t *dry = json_object_get(body, "dry_run");
    if (json_object_get(body, "orders")) {
        send_error(x->resp, 400, TH_EINVAL, NULL,
                   "give either orders (a list of ids) or from and to (a date range), not both");
        return;
    }
    if (only_members(x, body, allowed, "connection, from, to, dry_run")) return;
    if (dry && !json_is_boolean(dry)) {
        send_error(x->resp, 400, TH_EINVAL, NULL, "dry_run must be true or false");
        return;
    }
    if (range_of(x, body, &r)) return;
    if (conn_lookup_json(x, "connection", json_object_get(body, "connection"), &c)) return;
    struct th_err err = {0};
    int rc = pull_range_orders(x->a->store, c.id, &r, &ids, &n, &left, &err);
    if (!rc && !json_is_true(dry))
        rc = pull_range_transfer(x->a->store, c.id, ids, n, "transfer of a date range from the API",
                                 &queued, &err);
    log_info("api_transfer_range", "conn=%lld range=%s orders=%zu queued=%zu dry_run=%d code=%s",
             (long long)c.id, r.text, n, queued, json_is_true(dry), rc ? th_err_name(rc) : "ok");
    if (rc) {
        if (queued)
            send_error(x->resp, status_of(rc), rc, NULL, "%zu of %zu orders were queued before: %s",
                       queued, n, err.msg);
        else
            send_th_err(x->resp, &err);
        goto out;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_integer(ids[i]));
    json_t *root = json_object();
    json_object_set_new(root, "connection", json_integer(c.id));
    json_object_set_new(root, "from", json_stringn(r.text, 10));
    json_object_set_new(root, "to", json_string(r.text + 12));
    json_object_set_new(root, json_is_true(dry) ? "orders" : "queued", arr);
    json_object_set_new(root, "count", json_integer((json_int_t)n));
    json_object_set_new(root, "left_out", json_integer((json_int_t)left));
    send_json(x->resp, json_is_true(dry) ? 200 : 202, root);
out:
    free(ids);
    store_conn_release(&c);
}

/* ---------------------------------------------------------------------- */
/* Qoyod: checking a key, and a connection's key and inventory location     */

static json_t *inventories_json(const struct qoyod_inventory *inv, size_t n)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:I,s:o,s:o}", "id", (json_int_t)inv[i].id, "name",
                                             jstr(inv[i].name), "ar_name", jstr(inv[i].ar_name)));
    return arr;
}

/* Lists the inventory locations the key sees; on failure answers with
 * Qoyod's own words (a wrong key is 422 TH_EAUTH: the request was fine, the
 * key is not) and returns -1. *inv is new. */
static int qoyod_check(struct ctx *x, const char *base, const char *key,
                       struct qoyod_inventory **inv, size_t *n)
{
    struct qoyod *q = qoyod_new(base, key, NULL);
    struct th_err err = {0};
    int rc = qoyod_inventories(q, inv, n, &err);
    qoyod_free(q);
    if (rc == 0) return 0;
    log_info("api_qoyod_check_failed", "code=%s", th_err_name(rc));
    if (rc == TH_EAUTH)
        send_error(x->resp, 422, rc,
                   "copy the key again from Qoyod (Settings → General Settings → API key; "
                   "Generate New Key, then Save)",
                   "%s", err.msg);
    else
        send_error(x->resp, 502, rc, NULL, "Qoyod could not be asked: %s", err.msg);
    return -1;
}

static const char *json_text(json_t *body, const char *name)
{
    json_t *v = json_object_get(body, name);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* POST /qoyod/check {"api_key"}: whether the key works, with the inventory
 * locations to choose from. Nothing is saved. */
static void post_qoyod_check(struct ctx *x)
{
    json_t *body = body_object(x, 0);
    if (!body) return;
    static const char *const allowed[] = {"api_key", NULL};
    const char *key = json_text(body, "api_key");
    struct qoyod_inventory *inv = NULL;
    size_t n = 0;
    if (only_members(x, body, allowed, "api_key")) goto out;
    if (!key || !*key) {
        send_error(x->resp, 400, TH_EINVAL,
                   "Qoyod → Settings → General Settings → Generate New Key, then Save; paste it here",
                   "api_key is required");
        goto out;
    }
    if (qoyod_check(x, x->a->qoyod_base, key, &inv, &n)) goto out;
    send_json(x->resp, 200, json_pack("{s:b,s:o}", "ok", 1, "inventories", inventories_json(inv, n)));
out:
    free(inv);
    json_decref(body);
}

/* PUT /connections/{c}/qoyod {"api_key"?, "inventory_id"}: the Qoyod key
 * (kept when left out) and inventory location a store's invoices go to,
 * both checked against Qoyod before anything is saved. */
static void put_conn_qoyod(struct ctx *x)
{
    struct store_conn c = {0};
    if (conn_lookup(x, "connection", x->seg[1], &c)) return;
    json_t *body = body_object(x, 0);
    struct qoyod_inventory *inv = NULL;
    size_t n = 0;
    if (!body) goto out;
    static const char *const allowed[] = {"api_key", "inventory_id", NULL};
    if (only_members(x, body, allowed, "api_key, inventory_id")) goto out;
    const char *key = json_text(body, "api_key");
    json_t *iv = json_object_get(body, "inventory_id");
    if (!json_is_integer(iv) || json_integer_value(iv) <= 0) {
        send_error(x->resp, 400, TH_EINVAL,
                   "choose one of the inventory locations POST /api/v1/qoyod/check lists",
                   "inventory_id must be a Qoyod inventory location id (a positive integer)");
        goto out;
    }
    if (!key || !*key) key = c.qoyod_api_key;
    if (!key || !*key) {
        send_error(x->resp, 400, TH_EINVAL, NULL,
                   "this store has no Qoyod API key yet: send api_key too");
        goto out;
    }
    if (qoyod_check(x, c.qoyod_base && *c.qoyod_base ? c.qoyod_base : x->a->qoyod_base, key, &inv,
                    &n))
        goto out;
    int found = 0;
    for (size_t i = 0; i < n; i++)
        found |= inv[i].id == json_integer_value(iv);
    if (!found) {
        send_error(x->resp, 422, TH_ENOTFOUND,
                   "choose one of the inventory locations POST /api/v1/qoyod/check lists",
                   "Qoyod has no inventory location %lld for this key",
                   (long long)json_integer_value(iv));
        goto out;
    }
    if (key != c.qoyod_api_key) {
        free(c.qoyod_api_key);
        c.qoyod_api_key = xstrdup(key);
    }
    c.inventory_id = json_integer_value(iv);
    struct th_err err = {0};
    if (store_conn_put_settings(x->a->store, &c, &err) != 0) {
        send_th_err(x->resp, &err);
        goto out;
    }
    log_info("api_qoyod_set", "conn=%lld inventory=%lld", (long long)c.id,
             (long long)c.inventory_id);
    /* Read back: a key another store uses gives this one a reference prefix. */
    struct store_conn now = {0};
    if (store_conn_get(x->a->store, c.id, &now, &err) == 0) {
        free(c.ref_prefix);
        c.ref_prefix = now.ref_prefix;
        now.ref_prefix = NULL;
    }
    store_conn_release(&now);
    send_json(x->resp, 200, conn_json(&c));
out:
    free(inv);
    json_decref(body);
    store_conn_release(&c);
}

/* GET /connect: which platforms' stores this tarheel can connect by OAuth. */
static void get_connect(struct ctx *x)
{
    send_json(x->resp, 200,
              json_pack("{s:b,s:b}", "salla", connect_ready(x->a->connect, MODEL_PLATFORM_SALLA),
                        "zid", connect_ready(x->a->connect, MODEL_PLATFORM_ZID)));
}

/* POST /connect/{platform} {"api_key"?, "inventory_id"?}: starts the OAuth
 * flow (http/connect.c); the answer's authorize_url is for the browser to
 * open. */
static void post_connect(struct ctx *x)
{
    const struct platform_ops *ops = platform_by_name(x->seg[1]);
    if (!ops) {
        send_error(x->resp, 404, TH_ENOTFOUND, "connect salla or zid",
                   "this tarheel knows no platform \"%.32s\"", x->seg[1]);
        return;
    }
    json_t *body = body_object(x, 1);
    if (!body) return;
    static const char *const allowed[] = {"api_key", "inventory_id", NULL};
    json_t *iv = json_object_get(body, "inventory_id");
    if (only_members(x, body, allowed, "api_key, inventory_id")) goto out;
    if (iv && (!json_is_integer(iv) || json_integer_value(iv) <= 0)) {
        send_error(x->resp, 400, TH_EINVAL, NULL,
                   "inventory_id must be a Qoyod inventory location id (a positive integer)");
        goto out;
    }
    char url[4096];
    struct th_err err = {0};
    int rc = x->a->connect
                 ? connect_start_in(x->a->connect, x->tenant, ops->platform,
                                    json_text(body, "api_key"), iv ? json_integer_value(iv) : 0,
                                    url, sizeof url, &err)
                 : th_err_set(&err, TH_ECONFIG, "this tarheel cannot connect stores by OAuth");
    if (rc) {
        send_error(x->resp, rc == TH_ECONFIG ? 409 : status_of(rc), rc, NULL, "%s", err.msg);
        goto out;
    }
    send_json(x->resp, 200, json_pack("{s:s}", "authorize_url", url));
out:
    json_decref(body);
}

/* ---------------------------------------------------------------------- */
/* Dashboard sessions                                                       */

#define COOKIE "th_session"

/* The value of cookie COOKIE in the request, copied into out; 0 or -1. */
static int session_cookie(const struct httpd_req *req, char out[SESSION_TOKEN_LEN])
{
    const char *h = httpd_req_header(req, "Cookie");
    while (h && *h) {
        h += strspn(h, " \t;");
        size_t nl = strcspn(h, "=;");
        if (h[nl] == '=' && nl == strlen(COOKIE) && strncmp(h, COOKIE, nl) == 0) {
            const char *v = h + nl + 1;
            size_t vl = strcspn(v, "; \t");
            if (vl != SESSION_TOKEN_LEN - 1) return -1;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return 0;
        }
        h += strcspn(h, ";");
    }
    return -1;
}

static const char NO_SESSION_REMEDY[] = "log in again (POST /api/v1/login)";

/* POST /login {"user","password"}: starts a session. Limited per peer and
 * per user name; the answer never says which of name or password was
 * wrong. */
static void post_login(struct api *a, const struct httpd_req *req, struct httpd_resp *resp)
{
    struct ctx x = {.a = a, .req = req, .resp = resp};
    /* JSON only: a cross-site HTML form cannot send it without CORS, so no
     * other site can log a browser in under its own account. */
    const char *ct = httpd_req_header(req, "Content-Type");
    if (!ct || strncasecmp(ct, "application/json", 16) != 0) {
        send_error(resp, 415, TH_EINVAL, "send Content-Type: application/json",
                   "a login is a JSON object {\"user\",\"password\"}");
        return;
    }
    json_t *body = body_object(&x, 0);
    if (!body) return;
    const char *user = json_text(body, "user"), *pw = json_text(body, "password");
    int64_t now = (int64_t)time(NULL);
    char peer_key[80], user_key[80];
    snprintf(peer_key, sizeof peer_key, "peer:%.60s", httpd_req_peer(req));
    snprintf(user_key, sizeof user_key, "user:%.64s", user ? user : "");
    int64_t wait = sessions_login_wait(a->sessions, peer_key, now);
    int64_t w2 = sessions_login_wait(a->sessions, user_key, now);
    if (w2 > wait) wait = w2;
    if (wait > 0) {
        char ra[32];
        snprintf(ra, sizeof ra, "%lld", (long long)wait);
        log_warn("api_login_limited", "peer=%s", httpd_req_peer(req));
        /* The counts live in this process only: a restart clears them.
         * `user add` sets a password; it does not touch the counts. */
        send_error(resp, 429, TH_ERATE, "wait the time given, then try again; an administrator "
                                        "can clear the count at once by restarting `tarheel "
                                        "serve`, and resets a forgotten password with `tarheel "
                                        "user add NAME`",
                   "too many failed logins: try again in %lld minute(s)",
                   (long long)((wait + 59) / 60));
        httpd_resp_header(resp, "Retry-After", ra);
        json_decref(body);
        return;
    }
    char *hash = NULL;
    struct th_err err = {0};
    int ok = 0;
    int64_t tenant = 0;
    if (user && pw) {
        int rc = store_user_get_in(a->store, user, &hash, &tenant, &err);
        if (rc && rc != TH_ENOTFOUND && rc != TH_EINVAL) {
            send_th_err(resp, &err);
            json_decref(body);
            return;
        }
        /* An unknown user costs a hash too, so timing does not tell which
         * names exist. */
        ok = passwd_verify(pw, hash ? hash
                                    : "$scrypt$ln=15,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA==$"
                                      "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=") &&
             hash;
    }
    char stamp[SESSION_TOKEN_LEN] = "";
    if (ok) sessions_stamp(hash, stamp);
    free(hash);
    if (!ok) {
        sessions_login_failed(a->sessions, peer_key, now);
        sessions_login_failed(a->sessions, user_key, now);
        log_warn("api_login_failed", "peer=%s", httpd_req_peer(req));
        send_error(resp, 401, TH_EAUTH,
                   "check the user name and password (an admin sets them with `tarheel user add`)",
                   "wrong user name or password");
        json_decref(body);
        return;
    }
    sessions_login_ok(a->sessions, peer_key);
    sessions_login_ok(a->sessions, user_key);
    char id[SESSION_TOKEN_LEN], csrf[SESSION_TOKEN_LEN];
    sessions_start_as(a->sessions, user, stamp, now, id, csrf);
    log_info("api_login", "user=%s peer=%s", user, httpd_req_peer(req));
    struct store_tenant tn = {0};
    if (store_tenant_get(a->store, tenant, &tn, &err) != 0) snprintf(tn.name, sizeof tn.name, "?");
    send_json(resp, 200,
              json_pack("{s:s,s:s,s:s}", "user", user, "csrf_token", csrf, "tenant", tn.name));
    /* Lax rather than Strict: the browser comes back from a platform's OAuth
     * page (connect.c) still logged in. Every write needs X-CSRF-Token, which
     * no other site can read or send, so Lax loses nothing against CSRF. */
    char cookie[160];
    snprintf(cookie, sizeof cookie, COOKIE "=%s; Path=/; HttpOnly; SameSite=Lax; Max-Age=%d", id,
             SESSION_MAX_S);
    httpd_resp_header(resp, "Set-Cookie", cookie);
    OPENSSL_cleanse(id, sizeof id);
    json_decref(body);
}

/* GET /session: who is logged in, and the CSRF token (a reloaded page has
 * lost it). Bearer tokens get {"user":null}. */
static void get_session(struct ctx *x)
{
    /* The caller's tenant by name; null for an operator token. */
    struct store_tenant t = {0};
    struct th_err err = {0};
    if (x->tenant && store_tenant_get(x->a->store, x->tenant, &t, &err) != 0) {
        send_th_err(x->resp, &err);
        return;
    }
    json_t *tenant = x->tenant ? jstr(t.name) : json_null();
    if (!x->user[0]) {
        send_json(x->resp, 200, json_pack("{s:n,s:n,s:o}", "user", "csrf_token", "tenant", tenant));
        return;
    }
    send_json(x->resp, 200, json_pack("{s:s,s:s,s:o}", "user", x->user, "csrf_token", x->csrf,
                                      "tenant", tenant));
}

/* POST /logout: ends the session and clears the cookie. */
static void post_logout(struct ctx *x)
{
    char id[SESSION_TOKEN_LEN];
    if (session_cookie(x->req, id) == 0) sessions_end(x->a->sessions, id);
    log_info("api_logout", "user=%s", x->user[0] ? x->user : "-");
    send_json(x->resp, 200, json_pack("{s:b}", "ok", 1));
    httpd_resp_header(x->resp, "Set-Cookie",
                      COOKIE "=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0");
}

/* ---------------------------------------------------------------------- */
/* Routing                                                                  */

/* Patterns are path segments after /api/v1/; "*" matches any one segment. */
static const struct route {
    const char *method;
    const char *pattern;
    void (*fn)(struct ctx *x);
} routes[] = {
    {"GET", "connections", get_connections},
    {"GET", "connections/*", get_connection},
    {"GET", "connections/*/settings", get_settings},
    {"PATCH", "connections/*/settings", patch_settings},
    {"GET", "orders", get_orders},
    {"POST", "orders/transfer", post_transfer},
    {"POST", "orders/retry", post_retry},
    {"GET", "orders/*/*", get_order},
    {"POST", "pulls", post_pulls},
    {"GET", "pulls/*", get_pull},
    {"GET", "reports/monthly", get_report_monthly},
    {"PUT", "connections/*/qoyod", put_conn_qoyod},
    {"POST", "qoyod/check", post_qoyod_check},
    {"GET", "connect", get_connect},
    {"POST", "connect/*", post_connect},
    {"GET", "session", get_session},
    {"POST", "logout", post_logout},
    {"GET", "reconcile", get_reconcile},
    {"GET", "conflicts", get_conflicts},
    {"GET", "conflicts/*", get_conflict},
    {"POST", "conflicts/*/resolve", post_conflict_resolve},
};
#define NROUTES (sizeof routes / sizeof routes[0])

size_t api_route_count(void)
{
    return NROUTES;
}

int api_route_at(size_t i, const char **method, const char **pattern)
{
    if (i >= NROUTES) return -1;
    *method = routes[i].method;
    *pattern = routes[i].pattern;
    return 0;
}

static int matches(const char *pattern, const struct ctx *x)
{
    int i = 0;
    const char *p = pattern;
    while (*p) {
        size_t len = strcspn(p, "/");
        if (i >= x->nseg) return 0;
        if (!(len == 1 && *p == '*') &&
            (strlen(x->seg[i]) != len || strncmp(x->seg[i], p, len) != 0))
            return 0;
        i++;
        p += len;
        if (*p == '/') p++;
    }
    return i == x->nseg;
}

/* Splits the path after /api/v1/ into segments. Returns -1 when the path is
 * not under /api/v1/ or has empty or too many segments. */
static int split(struct ctx *x, const char *path)
{
    static const char v1[] = "/api/v1/";
    if (strncmp(path, v1, sizeof v1 - 1) != 0) return -1;
    const char *rest = path + sizeof v1 - 1;
    if (strlen(rest) >= sizeof x->segbuf) return -1;
    snprintf(x->segbuf, sizeof x->segbuf, "%s", rest);
    char *p = x->segbuf;
    while (1) {
        char *slash = strchr(p, '/');
        if (slash) *slash = '\0';
        if (!*p || x->nseg == MAX_SEGS) return -1;
        x->seg[x->nseg++] = p;
        if (!slash) return 0;
        p = slash + 1;
    }
}

static const char NO_TOKEN_REMEDY[] =
    "start `tarheel serve` with --api-token-file FILE (one token per line, at least 16 "
    "characters, e.g. from `openssl rand -hex 32`) or set TARHEEL_API_TOKEN, then send "
    "Authorization: Bearer <token>";
static const char BAD_TOKEN_REMEDY[] =
    "send Authorization: Bearer <token> with a token from the --api-token-file or "
    "TARHEEL_API_TOKEN that `tarheel serve` was started with, or one `tarheel token add` made";

/* The hex SHA-256 of a token, as the store keeps tenants' tokens. */
static void digest_hex(const char *t, size_t len, char out[STORE_TOKEN_DIGEST_HEX + 1])
{
    unsigned char d[DIGEST_LEN];
    digest(t, len, d);
    for (size_t i = 0; i < DIGEST_LEN; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* Returns 1 when the request carries an operator token (*tenant = 0) or a
 * tenant's stored token (*tenant = its tenant); else answers 401 (503 when
 * the store cannot be asked) and returns 0. */
static int authorized(struct api *a, const struct httpd_req *req, struct httpd_resp *resp,
                      int64_t *tenant)
{
    *tenant = 0;
    const char *h = httpd_req_header(req, "Authorization");
    const char *t = NULL;
    if (h && strncasecmp(h, "Bearer", 6) == 0 && (h[6] == ' ' || h[6] == '\t')) {
        t = h + 7;
        t += strspn(t, " \t");
    }
    if (!t || !*t) {
        send_error(resp, 401, TH_EAUTH, BAD_TOKEN_REMEDY,
                   "this request carries no API token (Authorization: Bearer)");
        httpd_resp_header(resp, "WWW-Authenticate", "Bearer realm=\"tarheel\"");
        return 0;
    }
    size_t len = strlen(t);
    while (len && (t[len - 1] == ' ' || t[len - 1] == '\t'))
        len--;
    if (token_ok(a, t, len)) return 1;
    /* Not an operator's: a tenant's, looked up by its digest (a random
     * token's digest says nothing an attacker could steer a lookup with). */
    char hex[STORE_TOKEN_DIGEST_HEX + 1];
    digest_hex(t, len, hex);
    struct store_token st;
    struct th_err err = {0};
    int rc = store_token_find(a->store, hex, &st, &err);
    OPENSSL_cleanse(hex, sizeof hex);
    if (rc == 0) {
        *tenant = st.tenant_id;
        return 1;
    }
    if (rc != TH_ENOTFOUND) {
        send_th_err(resp, &err);
        return 0;
    }
    log_warn("api_auth_failed", "peer=%s", httpd_req_peer(req));
    send_error(resp, 401, TH_EAUTH, BAD_TOKEN_REMEDY, "the API token is not accepted");
    httpd_resp_header(resp, "WWW-Authenticate", "Bearer realm=\"tarheel\", error=\"invalid_token\"");
    return 0;
}

/* For a request without Authorization that carries the session cookie:
 * 1 when the session is live and, for a state-changing method, the request
 * echoes its CSRF token; else answers 401 / 403 and returns 0. */
/* Refuses the request's session: 401 saying why, the cookie cleared, and
 * the session ended when id is given. Returns 0. */
static int session_refused(struct ctx *x, const char *id, const char *why)
{
    if (id) sessions_end(x->a->sessions, id);
    send_error(x->resp, 401, TH_EAUTH, NO_SESSION_REMEDY, "%s", why);
    httpd_resp_header(x->resp, "Set-Cookie", COOKIE "=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0");
    return 0;
}

/* The session's user, read for every request: moving a user (`tarheel user
 * add NAME --tenant T`), removing one (`tarheel user remove`) or setting a
 * new password (which ends the sessions started under the old one, e.g. on
 * a device that was lost) takes effect at once, also when done from another
 * process. Sets x->tenant; else answers and returns 0. */
static int session_user_ok(struct ctx *x, const char *id)
{
    char *hash = NULL;
    struct th_err uerr = {0};
    int rc = store_user_get_in(x->a->store, x->user, &hash, &x->tenant, &uerr);
    char now_stamp[SESSION_TOKEN_LEN] = "";
    if (!rc) sessions_stamp(hash, now_stamp);
    free(hash);
    if (rc == TH_ENOTFOUND) return session_refused(x, id, "this session's user is gone");
    if (rc) {
        send_th_err(x->resp, &uerr);
        return 0;
    }
    if (strcmp(now_stamp, x->stamp) != 0)
        return session_refused(x, id,
                               "this user's password was changed since this session began");
    return 1;
}

static int session_ok(struct ctx *x, const char *id)
{
    if (!sessions_check_as(x->a->sessions, id, (int64_t)time(NULL), x->user, x->csrf,
                           x->stamp))
        return session_refused(x, NULL,
                               "the session has ended (logged out, idle too long or tarheel "
                               "restarted)");
    const char *m = httpd_req_method(x->req);
    if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0) return session_user_ok(x, id);
    const char *t = httpd_req_header(x->req, "X-CSRF-Token");
    if (!t || strlen(t) != SESSION_TOKEN_LEN - 1 ||
        CRYPTO_memcmp(t, x->csrf, SESSION_TOKEN_LEN - 1) != 0) {
        log_warn("api_csrf_refused", "user=%s peer=%s", x->user, httpd_req_peer(x->req));
        send_error(x->resp, 403, TH_EAUTH,
                   "send the csrf_token of POST /api/v1/login or GET /api/v1/session in "
                   "X-CSRF-Token (reload the dashboard)",
                   "this request lacks the session's CSRF token");
        return 0;
    }
    return session_user_ok(x, id);
}

void api_handle(struct api *a, const struct httpd_req *req, struct httpd_resp *resp)
{
    const char *method = httpd_req_method(req);
    if (a && strcmp(httpd_req_path(req), "/api/v1/login") == 0) {
        if (strcmp(method, "POST") == 0) {
            post_login(a, req, resp);
        } else {
            send_error(resp, 405, TH_EINVAL, NULL, "log in with POST");
            httpd_resp_header(resp, "Allow", "POST");
        }
        return;
    }
    struct ctx x = {.a = a, .req = req, .resp = resp};
    char sid[SESSION_TOKEN_LEN];
    int by_session = a && !httpd_req_header(req, "Authorization") && session_cookie(req, sid) == 0;
    if (by_session) {
        int ok = session_ok(&x, sid);
        OPENSSL_cleanse(sid, sizeof sid);
        if (!ok) return;
    } else {
        int64_t users = 0, stored = 0;
        struct th_err uerr = {0};
        /* Tenants' tokens live in the store: the API is on when there is one. */
        if (a && a->ntokens == 0 && store_token_count(a->store, &stored, &uerr) != 0) {
            send_th_err(resp, &uerr);
            return;
        }
        int on = a && (a->ntokens > 0 || stored > 0);
        if (a && !on && !httpd_req_header(req, "Authorization") &&
            store_user_count(a->store, &users, &uerr) == 0 && users > 0) {
            /* The dashboard is on (there are users): log in. */
            send_error(resp, 401, TH_EAUTH, NO_SESSION_REMEDY,
                       "this request carries no session (log in) and no API token");
            return;
        }
        if (!on) {
            send_error(resp, 403, TH_ECONFIG, NO_TOKEN_REMEDY,
                       "the REST API is off: no API token is configured");
            return;
        }
        if (!authorized(a, req, resp, &x.tenant)) return;
    }
    if (split(&x, httpd_req_path(req)) == 0) {
        char allow[64] = "";
        for (size_t i = 0; i < NROUTES; i++) {
            if (!matches(routes[i].pattern, &x)) continue;
            if (strcmp(routes[i].method, method) == 0) {
                routes[i].fn(&x);
                return;
            }
            size_t o = strlen(allow);
            snprintf(allow + o, sizeof allow - o, "%s%s", o ? ", " : "", routes[i].method);
        }
        if (allow[0]) {
            send_error(resp, 405, TH_EINVAL, NULL, "%s is not allowed on %s; allowed: %s", method,
                       httpd_req_path(req), allow);
            httpd_resp_header(resp, "Allow", allow);
            return;
        }
    }
    send_error(resp, 404, TH_ENOTFOUND, "see docs/openapi.yaml for the routes under /api/v1",
               "no such endpoint: %s %.200s", method, httpd_req_path(req));
}
