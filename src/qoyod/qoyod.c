/*
 * qoyod — the Qoyod API client (see qoyod.h and ../shared/api/qoyod.md).
 *
 * Design notes.
 *
 * One door. Every request goes through qy_call(), which builds the URL, sends
 * the API-KEY header, records the HTTP status and turns the answer into a
 * TH_E* code with a message in plain words. httpc already classifies
 * transport failures and statuses (STYLE C7); qy_call() only refines the
 * cases where Qoyod's answer says more than its status:
 *
 *   2xx, body readable          -> 0 and the parsed object
 *   2xx, body unreadable        -> write: TH_EUNKNOWN (it was applied, but we
 *                                  cannot tell what it became: look it up);
 *                                  read: TH_ETEMP (an edge page, not Qoyod)
 *   401                         -> TH_EAUTH, "generate a new key" (the key
 *                                  itself is never written into a message)
 *   404 + JSON string body
 *       "... found nothing."    -> TH_ENOTFOUND on a lookup (Qoyod's empty
 *                                  list, §2.4); anything else -> TH_EPERM,
 *                                  because a wrong base URL must never read
 *                                  as "no such invoice" (that would create a
 *                                  duplicate)
 *   422                         -> TH_EPERM with Qoyod's validation messages
 *                                  flattened (all three shapes of §2.4);
 *                                  TH_ECONFLICT when a create names a
 *                                  reference that is already taken
 *   3xx on a write              -> TH_EUNKNOWN (§1.1: may have been saved;
 *                                  redirects are never followed)
 *   everything else             -> httpc's class, with Qoyod's message
 *
 * Lookups (SKU, reference, phone, email) go through qy_scan(): Ransack
 * filter, then every row is verified in the answer, because integrators
 * report filters being ignored (§4.2). If a page holds rows that do not
 * match, the filter was ignored and the scan reads further pages, stopping
 * as §8 says (totalPages, a short or overlong page, a repeated first id) or
 * at QY_MAX_SCAN_PAGES. Only verified rows count.
 *
 * Money goes out as decimal strings at scale 2 with at least one fraction
 * digit ("100.0", "39.46": Qoyod's own style, §2.2), tax as a percent string
 * from basis points ("15.0"), quantities as integers, ids as numbers (§1.4).
 *
 * The client never retries and never logs (STYLE C6): the worker decides.
 * The one exception is asked for by the caller: with a patience set
 * (qoyod_set_patience, for commands a person waits on) qy_call() waits out
 * a 429 through the caller's sleep function and sends the request again.
 */
#include "qoyod/qoyod.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

/* core */
#include "core/jv.h"
#include "core/money.h"
#include "core/xmalloc.h"

/* Rows asked for per page on a lookup: Qoyod's documented maximum (§2.6;
 * "per_page above 100 may fail"). */
#define QY_PER_PAGE 100
/* Pages a lookup reads when Qoyod ignores its filter (§4.2) before giving up
 * with TH_ELIMIT: 20 × 100 rows covers any realistic catalogue while bounding
 * the time one lookup can take (each page may take seconds). */
#define QY_MAX_SCAN_PAGES 20
/* Ids named in a "several records share this key" message. */
#define QY_MAX_IDS_SHOWN 5

struct qoyod {
    char *base;       /* without a trailing slash */
    char *key;        /* the API key, only ever sent in the header */
    char *key_header; /* "API-KEY: <key>" */
    struct httpc *http;
    long last_status; /* of the last answer; 0 when none */
    long last_retry_after; /* its Retry-After in seconds, -1 when none */
    void (*pace)(void *arg); /* called before every request (rate limits) */
    void *pace_arg;
    struct qoyod_patience *patience; /* borrowed; NULL: a 429 fails at once */
};

/* ---------------------------------------------------------------------- */
/* Lifecycle                                                                */

struct qoyod *qoyod_new(const char *base, const char *api_key, const struct httpc_config *cfg)
{
    struct qoyod *q = xcalloc(1, sizeof *q);
    q->last_retry_after = -1;
    q->base = xstrdup(base ? base : "");
    size_t n = strlen(q->base);
    while (n > 0 && q->base[n - 1] == '/')
        q->base[--n] = '\0';
    q->key = xstrdup(api_key ? api_key : "");
    q->key_header = xasprintf("API-KEY: %s", q->key);
    q->http = httpc_new(cfg);
    return q;
}

void qoyod_free(struct qoyod *q)
{
    if (!q) return;
    httpc_free(q->http);
    /* The key should not linger in freed memory. */
    memset(q->key, 0, strlen(q->key));
    memset(q->key_header, 0, strlen(q->key_header));
    free(q->key);
    free(q->key_header);
    free(q->base);
    free(q);
}

long qoyod_last_status(const struct qoyod *q)
{
    return q ? q->last_status : 0;
}

void qoyod_set_pace(struct qoyod *q, void (*pace)(void *arg), void *arg)
{
    q->pace = pace;
    q->pace_arg = arg;
}

long qoyod_last_retry_after(const struct qoyod *q)
{
    return q ? q->last_retry_after : -1;
}

void qoyod_set_patience(struct qoyod *q, struct qoyod_patience *p)
{
    q->patience = p;
}

/* For a 429 answer: 1 when the patience allows waiting it out (having
 * waited), 0 when there is no patience, or -1 with err set when the wait
 * would pass the patience's total. */
static int wait_out(struct qoyod *q, const char *what, long retry_after_s, struct th_err *err)
{
    struct qoyod_patience *p = q->patience;
    if (!p) return 0;
    long wait_s = retry_after_s > 0 ? retry_after_s : 1;
    if (p->waited_ms + wait_s * 1000 > p->max_ms) {
        th_err_set(err, TH_ERATE,
                          "Qoyod is limiting this API key's calls (HTTP 429, too many requests) "
                          "and asked to wait %ld s before it will %s; tarheel already waited %ld "
                          "s and waits at most %ld s in all: wait a few minutes, then run the "
                          "command again (another app, or a running `tarheel serve`, may be "
                          "using the key's 300 calls a minute)",
                          wait_s, what, p->waited_ms / 1000, p->max_ms / 1000);
        return -1;
    }
    if (p->notify) p->notify(p->arg, wait_s, what);
    if (p->sleep_ms) {
        p->sleep_ms(p->arg, wait_s * 1000);
    } else {
        struct timespec ts = {wait_s, 0};
        while (nanosleep(&ts, &ts) != 0) {}
    }
    p->waited_ms += wait_s * 1000;
    return 1;
}

/* ---------------------------------------------------------------------- */
/* Messages                                                                 */

/* A message being built into a fixed buffer; appends are truncated. */
struct msg {
    char s[TH_ERR_MSG_MAX];
    size_t len;
};

static void msg_add(struct msg *m, const char *fmt, ...) TH_PRINTF(2, 3);
static void msg_add(struct msg *m, const char *fmt, ...)
{
    if (m->len >= sizeof m->s - 1) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(m->s + m->len, sizeof m->s - m->len, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    m->len += (size_t)n;
    if (m->len > sizeof m->s - 1) m->len = sizeof m->s - 1;
}

/* Copies text into a fixed field, cutting at a UTF-8 character boundary
 * (names are often Arabic) rather than in the middle of a character. */
static void copy_text(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Replaces every occurrence of the API key in err->msg: Qoyod or a proxy
 * could echo the header back in an error body. Keys shorter than 4
 * characters are not real keys (they are test keys) and would only mangle
 * the text. */
static void scrub_key(const struct qoyod *q, struct th_err *err)
{
    size_t kl = strlen(q->key);
    if (!err || kl < 4) return;
    char *hit, *from = err->msg;
    while ((hit = strstr(from, q->key)) != NULL) {
        static const char mask[] = "[API key]";
        size_t tail = strlen(hit + kl);
        size_t room = sizeof err->msg - (size_t)(hit - err->msg) - 1;
        size_t ml = strlen(mask) < room ? strlen(mask) : room;
        if (tail > room - ml) tail = room - ml;
        memmove(hit + ml, hit + kl, tail);
        memcpy(hit, mask, ml);
        hit[ml + tail] = '\0';
        from = hit + ml; /* the mask itself may contain the key */
    }
}

/* Adds text from an answer, replacing control characters (an HTML page or a
 * hostile body must not inject line breaks into a log line). */
static void msg_add_clean(struct msg *m, const char *s, size_t max)
{
    char tmp[256];
    size_t n = 0;
    for (; s[n] && n < max && n < sizeof tmp - 1; n++)
        tmp[n] = (unsigned char)s[n] < 0x20 || s[n] == 0x7f ? ' ' : s[n];
    tmp[n] = '\0';
    msg_add(m, "%s%s", tmp, s[n] ? "..." : "");
}

static int json_text_add(struct msg *m, const json_t *v);

/* Flattens a {field: [messages]} map: "reference has already been taken;
 * contact can't be blank". Rails' "base" errors carry no field name. */
static void errors_map_add(struct msg *m, const json_t *obj, const char *prefix, int *count)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        char field[128];
        if (prefix && *prefix)
            snprintf(field, sizeof field, "%s.%s", prefix, k);
        else
            snprintf(field, sizeof field, "%s", strcmp(k, "base") == 0 ? "" : k);
        if (json_is_object(v)) {
            errors_map_add(m, v, field, count);
            continue;
        }
        size_t n = json_is_array(v) ? json_array_size(v) : 1;
        for (size_t i = 0; i < n; i++) {
            const json_t *one = json_is_array(v) ? json_array_get(v, i) : v;
            msg_add(m, "%s%s%s", (*count)++ ? "; " : "", field, field[0] ? " " : "");
            if (!json_text_add(m, one)) msg_add(m, "is invalid");
        }
    }
}

/* Adds a scalar or a list of scalars as text. Returns 0 when v had nothing
 * usable. */
static int json_text_add(struct msg *m, const json_t *v)
{
    if (json_is_string(v)) {
        msg_add_clean(m, json_string_value(v), 200);
        return 1;
    }
    if (json_is_integer(v) || json_is_real(v)) {
        char *d = jv_dump(v);
        msg_add(m, "%s", d);
        free(d);
        return 1;
    }
    if (json_is_array(v)) {
        int any = 0;
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (any) msg_add(m, "; ");
            any |= json_text_add(m, json_array_get(v, i));
        }
        return any;
    }
    return 0;
}

/*
 * Writes Qoyod's explanation found in an error body into m. Understands the
 * three validation shapes of §2.4 ({"errors":{field:[msgs]}}, {"errors":
 * [msgs]}, {field:[msgs]}), {"message":..} / {"error":..} (read in that
 * order, as other clients do), a bare JSON string, and otherwise shows the
 * start of the body. Returns 1 when something was added.
 */
static int explain_body(struct msg *m, const char *body, size_t len)
{
    if (len == 0) return 0;
    json_error_t je;
    json_t *v = json_loadb(body, len, JSON_DECODE_ANY, &je);
    int done = 0;
    if (json_is_object(v)) {
        json_t *e = json_object_get(v, "errors");
        json_t *mm = json_object_get(v, "message");
        json_t *er = json_object_get(v, "error");
        if (json_is_object(e)) {
            int count = 0;
            errors_map_add(m, e, NULL, &count);
            done = count > 0;
        } else if (e && json_text_add(m, e)) {
            done = 1;
        } else if (json_is_string(mm)) {
            done = json_text_add(m, mm);
        } else if (json_is_string(er)) {
            done = json_text_add(m, er);
        } else if (json_is_object(er) && json_is_string(json_object_get(er, "message"))) {
            done = json_text_add(m, json_object_get(er, "message"));
        } else {
            int count = 0;
            errors_map_add(m, v, NULL, &count);
            done = count > 0;
        }
    } else if (v) {
        done = json_text_add(m, v);
    }
    json_decref(v);
    if (!done) {
        msg_add_clean(m, body, 200);
        done = 1;
    }
    return done;
}

/* Is body Qoyod's "empty list" answer: a JSON string saying it found nothing
 * (§2.4: "We could not retrieve your Products, we found nothing.")? */
static int is_empty_list_body(const char *body, size_t len)
{
    json_error_t je;
    json_t *v = json_loadb(body, len, JSON_DECODE_ANY, &je);
    int yes = json_is_string(v) && strcasestr(json_string_value(v), "found nothing") != NULL;
    json_decref(v);
    return yes;
}

/* Does a flattened validation message say a reference is already in use?
 * Qoyod's wording for it is not captured (§10.4); Rails says "has already
 * been taken". */
static int says_reference_taken(const char *text)
{
    if (!strcasestr(text, "reference")) return 0;
    static const char *const words[] = {"taken", "already", "unique", "duplicate", "exists"};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strcasestr(text, words[i])) return 1;
    return 0;
}

/* ---------------------------------------------------------------------- */
/* The one door                                                             */

struct qy_req {
    const char *method;
    const char *path;   /* below the base, query already escaped: "/invoices?q%5B..." */
    const json_t *body; /* borrowed; NULL for none */
    const char *what;   /* what we were doing, for messages: "create the invoice X" */
    int lookup;         /* a 404 "found nothing" means an empty list */
    int conflict;       /* a 422 "reference has already been taken" is TH_ECONFLICT */
};

static int is_write(const char *method)
{
    return strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0;
}

/* Maps a finished exchange to a code (see the table at the top). */
static int classify(struct qoyod *q, const struct qy_req *rq, int rc, struct httpc_resp *resp,
                    const struct th_err *herr, json_t **out, struct th_err *err)
{
    const char *body = buf_cstr(&resp->body);
    size_t len = resp->body.len;
    long st = resp->status;
    struct msg m = {0};

    if (rc == 0) {
        struct th_err perr = {0};
        json_t *v = len ? jv_parse(body, len, JV_MAX_DEPTH, &perr) : NULL;
        if (json_is_object(v)) {
            *out = v;
            return 0;
        }
        json_decref(v);
        if (!perr.msg[0]) snprintf(perr.msg, sizeof perr.msg, "not a JSON object");
        if (is_write(rq->method))
            return th_err_set(err, TH_EUNKNOWN,
                              "Qoyod accepted the request to %s (HTTP %ld) but its answer could "
                              "not be read (%s): it may have been saved, so look it up before "
                              "trying again",
                              rq->what, st, perr.msg);
        return th_err_set(err, TH_ETEMP,
                          "Qoyod answered HTTP %ld when asked to %s with something that is not "
                          "its JSON (%s)",
                          st, rq->what, perr.msg);
    }
    if (st == 0 || rc == TH_ETOOBIG || rc == TH_EINVAL) {
        /* No (whole) answer, or a request that cannot be made: httpc has
         * classified it (TEMP before sending, UNKNOWN for a write after
         * sending, ETOOBIG for an answer past HTTPC_MAX_BODY) and says why. */
        return th_err_set(err, rc, "Qoyod could not be asked to %s: %s", rq->what, herr->msg);
    }
    if (st == 401)
        return th_err_set(err, TH_EAUTH,
                          "Qoyod refused the API key: generate a new key in Qoyod → Settings → "
                          "General Settings, press Save, and enter it again (HTTP 401 when asked "
                          "to %s)",
                          rq->what);
    if (st == 403) {
        msg_add(&m,
                "Qoyod refused access (HTTP 403) when asked to %s: check that the company's "
                "subscription includes API access and that the key belongs to this company",
                rq->what);
        if (len) {
            msg_add(&m, " (Qoyod says: ");
            explain_body(&m, body, len);
            msg_add(&m, ")");
        }
        return th_err_set(err, TH_EAUTH, "%s", m.s);
    }
    if (st == 404) {
        if (rq->lookup && is_empty_list_body(body, len))
            return th_err_set(err, TH_ENOTFOUND, "Qoyod found nothing when asked to %s", rq->what);
        msg_add(&m, "Qoyod answered HTTP 404 when asked to %s: ", rq->what);
        if (!explain_body(&m, body, len)) msg_add(&m, "no body");
        msg_add(&m, " (check the Qoyod address %s)", q->base);
        return th_err_set(err, TH_EPERM, "%s", m.s);
    }
    if (st == 422) {
        struct msg why = {0};
        if (!explain_body(&why, body, len)) msg_add(&why, "no reason given");
        int code = rq->conflict && says_reference_taken(why.s) ? TH_ECONFLICT : TH_EPERM;
        msg_add(&m, "Qoyod refused to %s: %s", rq->what, why.s);
        return th_err_set(err, code, "%s", m.s);
    }
    if (st >= 300 && st < 400 && is_write(rq->method))
        return th_err_set(err, TH_EUNKNOWN,
                          "Qoyod answered HTTP %ld (a redirect, not followed) when asked to %s: "
                          "it may have been saved; check the Qoyod address %s",
                          st, rq->what, q->base);
    /* 429, 5xx, other 4xx: httpc's class stands; say what Qoyod said. */
    msg_add(&m, "Qoyod answered HTTP %ld when asked to %s", st, rq->what);
    if (resp->retry_after_s >= 0) msg_add(&m, " (retry after %ld s)", resp->retry_after_s);
    if (len) {
        msg_add(&m, ": ");
        explain_body(&m, body, len);
    }
    if (rc == TH_EUNKNOWN) msg_add(&m, " (it may have been saved)");
    return th_err_set(err, rc, "%s", m.s);
}

/* Performs one request. On 0, *out is the answer object (new; json_decref).
 * Otherwise *out is NULL and err says what happened. */
static int qy_call(struct qoyod *q, const struct qy_req *rq, json_t **out, struct th_err *err)
{
    *out = NULL;
    char *url = xasprintf("%s%s", q->base, rq->path);
    char *body = rq->body ? jv_dump(rq->body) : NULL;
    const char *headers[] = {q->key_header, "Accept: application/json",
                             body ? "Content-Type: application/json" : NULL, NULL};
    struct httpc_resp resp;
    httpc_resp_init(&resp);
    struct th_err herr = {0};
    int rc;
    for (;;) {
        if (q->pace) q->pace(q->pace_arg);
        rc = httpc_do(q->http, rq->method, url, headers, body, body ? strlen(body) : 0, &resp,
                      &herr);
        q->last_status = resp.status;
        q->last_retry_after = resp.retry_after_s;
        if (resp.status != 429) break;
        int w = wait_out(q, rq->what, resp.retry_after_s, err);
        if (w == 0) break;
        if (w < 0) {
            httpc_resp_release(&resp);
            free(body);
            free(url);
            return TH_ERATE;
        }
        httpc_resp_release(&resp);
        httpc_resp_init(&resp);
        herr = (struct th_err){0};
    }
    rc = classify(q, rq, rc, &resp, &herr, out, err);
    scrub_key(q, err);
    httpc_resp_release(&resp);
    free(body);
    free(url);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Verified lookups                                                         */

/* Does obj[key] equal want exactly (case-insensitively when icase)? Numbers
 * are compared as their text (a SKU or phone may arrive as a number). */
static int field_equals(const json_t *obj, const char *key, const char *want, int icase)
{
    const json_t *v = json_object_get(obj, key);
    char num[64];
    const char *have = json_is_string(v)    ? json_string_value(v)
                       : json_is_integer(v) ? jv_get_text(obj, key, num, sizeof num)
                                            : NULL;
    if (!have) return 0;
    return icase ? strcasecmp(have, want) == 0 : strcmp(have, want) == 0;
}

/* A row filter: returns 1 when the row is one of those looked for. */
typedef int (*qy_match_fn)(const json_t *row, const void *ctx);

/*
 * Reads path?query (query escaped, without paging) and collects the rows of
 * list_key that match into *matches (new array; json_decref). Returns 0 (the
 * array may be empty), or the failure. See the design notes for when it
 * reads more than one page.
 */
static int qy_scan(struct qoyod *q, const char *path, const char *query, const char *list_key,
                   const char *what, qy_match_fn match, const void *ctx, json_t **matches,
                   struct th_err *err)
{
    json_t *found = json_array();
    int64_t prev_first = INT64_MIN;
    int rc = 0;
    for (int page = 1;; page++) {
        if (page > QY_MAX_SCAN_PAGES) {
            rc = th_err_set(err, TH_ELIMIT,
                            "Qoyod ignored the filter when asked to %s and tarheel stopped after "
                            "%d pages of %d (QY_MAX_SCAN_PAGES)",
                            what, QY_MAX_SCAN_PAGES, QY_PER_PAGE);
            break;
        }
        char *p = xasprintf("%s?%s&page=%d&per_page=%d", path, query, page, QY_PER_PAGE);
        struct qy_req rq = {.method = "GET", .path = p, .what = what, .lookup = 1};
        json_t *ans = NULL;
        rc = qy_call(q, &rq, &ans, err);
        free(p);
        if (rc == TH_ENOTFOUND) { /* an empty page: nothing more */
            rc = 0;
            th_err_clear(err);
            break;
        }
        if (rc) break;
        json_t *list = json_object_get(ans, list_key);
        if (!json_is_array(list)) {
            json_decref(ans);
            rc = th_err_set(err, TH_EPERM,
                            "Qoyod's answer when asked to %s has no \"%s\" list: its API may "
                            "have changed",
                            what, list_key);
            break;
        }
        size_t n = json_array_size(list);
        int64_t first = INT64_MIN;
        if (n && jv_get_id(json_array_get(list, 0), "id", &first, NULL) != 0) first = INT64_MIN;
        if (page > 1 && first != INT64_MIN && first == prev_first) {
            json_decref(ans); /* Qoyod ignored `page` and repeated page 1 */
            break;
        }
        prev_first = first;
        int all = 1;
        for (size_t i = 0; i < n; i++) {
            json_t *row = json_array_get(list, i);
            if (match(row, ctx))
                json_array_append(found, row);
            else
                all = 0;
        }
        int64_t total_pages = 0;
        int has_total =
            jv_get_id(json_object_get(ans, "pagination"), "totalPages", &total_pages, NULL) == 0;
        json_decref(ans);
        if (all) break; /* the filter was honoured: this page says it all */
        if (has_total ? page >= total_pages : n != QY_PER_PAGE) break;
    }
    if (rc) {
        json_decref(found);
        *matches = NULL;
        return rc;
    }
    *matches = found;
    return 0;
}

/* Gives an error another code, keeping its message and adding a note. */
static int reclass(struct th_err *err, int code, const char *note)
{
    if (!err) return code;
    char was[sizeof err->msg];
    memcpy(was, err->msg, sizeof was);
    return th_err_set(err, code, "%s%s", was, note);
}

/* "ids 3, 7, 9" for a message about several records sharing a key. */
static void ids_add(struct msg *m, const json_t *rows)
{
    size_t n = json_array_size(rows);
    for (size_t i = 0; i < n && i < QY_MAX_IDS_SHOWN; i++) {
        int64_t id = 0;
        if (jv_get_id(json_array_get(rows, i), "id", &id, NULL) != 0) id = 0;
        msg_add(m, "%s%lld", i ? ", " : "", (long long)id);
    }
    if (n > QY_MAX_IDS_SHOWN) msg_add(m, ", ...");
}

/* The escaped query "q%5B<field>_eq%5D=<value>" plus extra (already escaped,
 * may be NULL). Returns new text. */
static char *eq_query(const char *field, const char *value, const char *extra)
{
    char *k = xasprintf("q[%s_eq]", field);
    char *ek = httpc_escape(k);
    char *ev = httpc_escape(value);
    char *s = xasprintf("%s=%s%s%s", ek, ev, extra ? "&" : "", extra ? extra : "");
    free(k);
    free(ek);
    free(ev);
    return s;
}

/* The id of a row, as a 0 / TH_EPARSE result with a message. */
static int row_id(const json_t *row, const char *what, int64_t *id, struct th_err *err)
{
    struct th_err e = {0};
    if (jv_get_id(row, "id", id, &e) != 0)
        return th_err_set(err, TH_EPARSE, "Qoyod's answer when asked to %s has no usable id (%s)",
                          what, e.msg);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Inventories                                                              */

int qoyod_inventories(struct qoyod *q, struct qoyod_inventory **out, size_t *n, struct th_err *err)
{
    *out = NULL;
    *n = 0;
    /* Not paged (§2.6): one answer holds every inventory. */
    struct qy_req rq = {
        .method = "GET", .path = "/inventories", .what = "list the inventories", .lookup = 1};
    json_t *ans = NULL;
    int rc = qy_call(q, &rq, &ans, err);
    if (rc == TH_ENOTFOUND) {
        th_err_clear(err);
        return 0;
    }
    if (rc) return rc;
    json_t *list = json_object_get(ans, "inventories");
    if (!json_is_array(list)) {
        json_decref(ans);
        return th_err_set(err, TH_EPERM,
                          "Qoyod's list of inventories has no \"inventories\" list: its API may "
                          "have changed");
    }
    size_t cnt = json_array_size(list);
    struct qoyod_inventory *v = cnt ? xcalloc(cnt, sizeof *v) : NULL;
    for (size_t i = 0; i < cnt; i++) {
        json_t *row = json_array_get(list, i);
        if ((rc = row_id(row, "list the inventories", &v[i].id, err)) != 0) break;
        const char *name = jv_get_str(row, "name");
        const char *ar = jv_get_str(row, "ar_name");
        copy_text(v[i].name, sizeof v[i].name, name ? name : "");
        copy_text(v[i].ar_name, sizeof v[i].ar_name, ar ? ar : "");
    }
    json_decref(ans);
    if (rc) {
        free(v);
        return rc;
    }
    *out = v;
    *n = cnt;
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Contacts (customers)                                                     */

struct contact_key {
    const char *field; /* "phone_number" | "email" */
    const char *value;
    int icase;
};

static int is_active(const json_t *row)
{
    const char *st = jv_get_str(row, "status");
    return !st || strcmp(st, "Active") == 0; /* absent: Qoyod filtered it */
}

static int match_contact(const json_t *row, const void *ctx)
{
    const struct contact_key *k = ctx;
    return is_active(row) && field_equals(row, k->field, k->value, k->icase);
}

/* Looks one key up; the lowest id wins when several customers share it (a
 * merchant's duplicate customers are not worth stopping a transfer for). */
static int contact_find_by(struct qoyod *q, const struct contact_key *k, int64_t *id,
                           struct th_err *err)
{
    const char *label = strcmp(k->field, "email") == 0 ? "email" : "phone number";
    char what[256];
    snprintf(what, sizeof what, "find the active customer with %s %.160s", label, k->value);
    char *extra = httpc_escape("q[status_eq]");
    char *tail = xasprintf("%s=Active", extra);
    char *query = eq_query(k->field, k->value, tail);
    json_t *rows = NULL;
    int rc = qy_scan(q, "/customers", query, "customers", what, match_contact, k, &rows, err);
    free(extra);
    free(tail);
    free(query);
    if (rc) return rc;
    int64_t best = INT64_MAX;
    rc = TH_ENOTFOUND;
    for (size_t i = 0; i < json_array_size(rows); i++) {
        int64_t x;
        if (row_id(json_array_get(rows, i), what, &x, err) != 0) continue;
        if (x < best) best = x;
        rc = 0;
    }
    json_decref(rows);
    if (rc)
        return th_err_set(err, TH_ENOTFOUND, "Qoyod has no active customer with %s %.160s", label,
                          k->value);
    *id = best;
    return 0;
}

int qoyod_contact_find(struct qoyod *q, const char *phone, const char *email, int64_t *id,
                       struct th_err *err)
{
    int rc = TH_ENOTFOUND;
    if (phone && *phone) {
        struct contact_key k = {"phone_number", phone, 0};
        rc = contact_find_by(q, &k, id, err);
        if (rc != TH_ENOTFOUND) return rc;
    }
    if (email && *email) {
        /* Email addresses are compared without case, as mail systems do. */
        struct contact_key k = {"email", email, 1};
        rc = contact_find_by(q, &k, id, err);
    }
    if (rc == TH_ENOTFOUND)
        return th_err_set(err, TH_ENOTFOUND,
                          "Qoyod has no active customer with phone number %.160s or email %.160s",
                          phone && *phone ? phone : "(none)", email && *email ? email : "(none)");
    return rc;
}

static void set_text(json_t *obj, const char *key, const char *v)
{
    if (v && *v) json_object_set_new(obj, key, json_string(v));
}

int qoyod_contact_create(struct qoyod *q, const struct model_customer *c, int64_t *id,
                         struct th_err *err)
{
    if (!c->name || !*c->name)
        return th_err_set(err, TH_EINVAL, "a Qoyod customer needs a name (none given)");
    char what[256];
    snprintf(what, sizeof what, "create the customer %.200s", c->name);
    json_t *ct = json_object();
    set_text(ct, "name", c->name);
    set_text(ct, "phone_number", c->phone);
    set_text(ct, "email", c->email);
    json_object_set_new(ct, "status", json_string("Active"));
    if ((c->city && *c->city) || (c->country && *c->country)) {
        json_t *a = json_object();
        set_text(a, "billing_city", c->city);
        set_text(a, "billing_country", c->country);
        json_object_set_new(ct, "billing_address", a);
    }
    json_t *body = json_pack("{s:o}", "contact", ct);
    struct qy_req rq = {.method = "POST", .path = "/customers", .body = body, .what = what};
    json_t *ans = NULL;
    int rc = qy_call(q, &rq, &ans, err);
    json_decref(body);
    if (rc) return rc;
    json_t *rec = json_object_get(ans, "contact");
    if (!rec && json_is_array(json_object_get(ans, "contacts")))
        rec = json_array_get(json_object_get(ans, "contacts"), 0);
    rc = row_id(rec, what, id, err);
    json_decref(ans);
    /* Created, but we cannot tell its id: the caller must look it up. */
    return rc ? reclass(err, TH_EUNKNOWN, " (the customer was probably created)") : 0;
}

/* ---------------------------------------------------------------------- */
/* Products                                                                 */

static int match_sku(const json_t *row, const void *ctx)
{
    return field_equals(row, "sku", ctx, 0);
}

int qoyod_product_find_sku(struct qoyod *q, const char *sku, int64_t *id, struct th_err *err)
{
    if (!sku || !*sku) return th_err_set(err, TH_EINVAL, "no SKU to look up in Qoyod");
    char what[256];
    snprintf(what, sizeof what, "find the product with SKU %.200s", sku);
    char *query = eq_query("sku", sku, NULL);
    json_t *rows = NULL;
    int rc = qy_scan(q, "/products", query, "products", what, match_sku, sku, &rows, err);
    free(query);
    if (rc) return rc;
    size_t n = json_array_size(rows);
    if (n == 0)
        rc = th_err_set(err, TH_ENOTFOUND, "Qoyod has no product with SKU %.200s", sku);
    else if (n > 1) {
        struct msg m = {0};
        msg_add(&m, "%zu products in Qoyod have the SKU %.200s (ids ", n, sku);
        ids_add(&m, rows);
        msg_add(&m, "): give each product its own SKU in Qoyod, then retry");
        rc = th_err_set(err, TH_ECONFLICT, "%s", m.s);
    } else
        rc = row_id(json_array_get(rows, 0), what, id, err);
    json_decref(rows);
    return rc;
}

/* Decimal string at scale 2 with at least one fraction digit: Qoyod's
 * "100.0" (§2.2). Basis points at scale 2 are percent: 1500 -> "15.0". */
static json_t *dec(int64_t v)
{
    return jv_dec_string(v, 2, 1);
}

int qoyod_product_create(struct qoyod *q, const struct qoyod_product_spec *p, int64_t *id,
                         struct th_err *err)
{
    if (!p->sku || !*p->sku)
        return th_err_set(err, TH_EINVAL, "a Qoyod product needs a SKU (none given)");
    if (p->selling_price < 0 || p->buying_price < 0)
        return th_err_set(err, TH_EINVAL, "product %.200s: a price is negative", p->sku);
    char what[256];
    snprintf(what, sizeof what, "create the product with SKU %.200s", p->sku);
    const char *en = p->name_en && *p->name_en ? p->name_en : NULL;
    const char *ar = p->name_ar && *p->name_ar ? p->name_ar : NULL;
    json_t *pr = json_object();
    /* Qoyod requires both names (§4.2): one stands in for the other. */
    set_text(pr, "sku", p->sku);
    set_text(pr, "name_ar", ar ? ar : en ? en : p->sku);
    set_text(pr, "name_en", en ? en : ar ? ar : p->sku);
    set_text(pr, "type", p->type && *p->type ? p->type : "Product");
    json_object_set_new(pr, "product_unit_type_id",
                        json_integer(p->unit_type_id ? p->unit_type_id : 6));
    json_object_set_new(pr, "category_id", json_integer(p->category_id ? p->category_id : 1));
    json_object_set_new(pr, "tax_id", json_integer(p->tax_id ? p->tax_id : 1));
    /* Flags as "1"/"0" strings, as the working integrations send them (§2.2). */
    json_object_set_new(pr, "track_quantity", json_string(p->track_quantity ? "1" : "0"));
    json_object_set_new(pr, "sale_item", json_string("1"));
    json_object_set_new(pr, "selling_price", dec(p->selling_price));
    json_object_set_new(pr, "is_selling_price_inclusive", json_string("0"));
    /* Stocked goods are bought too; a service only when it has a cost. */
    int bought = p->track_quantity || p->buying_price > 0;
    json_object_set_new(pr, "purchase_item", json_string(bought ? "1" : "0"));
    if (bought) {
        json_object_set_new(pr, "buying_price", dec(p->buying_price));
        json_object_set_new(pr, "is_buying_price_inclusive", json_string("0"));
    }
    if (p->sales_account_id)
        json_object_set_new(pr, "sales_account_id", json_integer(p->sales_account_id));
    if (p->expense_account_id)
        json_object_set_new(pr, "expense_account_id", json_integer(p->expense_account_id));
    json_t *body = json_pack("{s:o}", "product", pr);
    struct qy_req rq = {.method = "POST", .path = "/products", .body = body, .what = what};
    json_t *ans = NULL;
    int rc = qy_call(q, &rq, &ans, err);
    json_decref(body);
    if (rc) return rc;
    json_t *rec = json_object_get(ans, "product");
    if (!rec && json_is_array(json_object_get(ans, "products")))
        rec = json_array_get(json_object_get(ans, "products"), 0);
    rc = row_id(rec, what, id, err);
    json_decref(ans);
    return rc ? reclass(err, TH_EUNKNOWN, " (the product was probably created)") : 0;
}

/* ---------------------------------------------------------------------- */
/* Invoices                                                                 */

/* Reads an invoice record into out. Returns 0 or TH_EPARSE naming the field. */
static int parse_invoice(const json_t *rec, const char *what, struct qoyod_invoice_info *out,
                         struct th_err *err)
{
    memset(out, 0, sizeof *out);
    struct th_err e = {0};
    int rc = row_id(rec, what, &out->id, err);
    if (rc) return rc;
    const char *ref = jv_get_str(rec, "reference");
    const char *st = jv_get_str(rec, "status");
    copy_text(out->reference, sizeof out->reference, ref ? ref : "");
    copy_text(out->status, sizeof out->status, st ? st : "");
    if ((rc = jv_get_money(rec, "total", &out->total, &e)) != 0)
        return th_err_set(err, TH_EPARSE, "Qoyod invoice %lld (asked to %s): total: %s",
                          (long long)out->id, what, e.msg);
    rc = jv_get_money(rec, "due_amount", &out->due, &e);
    if (rc == TH_ENOTFOUND) {
        /* §4.8: total = paid_amount + due_amount. */
        int64_t paid = 0;
        rc = jv_get_money(rec, "paid_amount", &paid, &e);
        if (rc == TH_ENOTFOUND) paid = 0, rc = 0;
        out->due = out->total - paid;
    }
    if (rc)
        return th_err_set(err, TH_EPARSE, "Qoyod invoice %lld (asked to %s): due amount: %s",
                          (long long)out->id, what, e.msg);
    return 0;
}

static int match_reference(const json_t *row, const void *ctx)
{
    return field_equals(row, "reference", ctx, 0);
}

int qoyod_invoice_find(struct qoyod *q, const char *reference, struct qoyod_invoice_info *out,
                       struct th_err *err)
{
    if (!reference || !*reference)
        return th_err_set(err, TH_EINVAL, "no invoice reference to look up in Qoyod");
    char what[256];
    snprintf(what, sizeof what, "find the invoice with reference %.200s", reference);
    char *query = eq_query("reference", reference, NULL);
    json_t *rows = NULL;
    int rc =
        qy_scan(q, "/invoices", query, "invoices", what, match_reference, reference, &rows, err);
    free(query);
    if (rc) return rc;
    size_t n = json_array_size(rows);
    if (n == 0)
        rc = th_err_set(err, TH_ENOTFOUND, "Qoyod has no invoice with reference %.200s", reference);
    else if (n > 1) {
        /* Qoyod keeps references unique (§2.8); if it did not, which one is
         * ours cannot be told, and a person must look. */
        struct msg m = {0};
        msg_add(&m, "%zu invoices in Qoyod have the reference %.200s (ids ", n, reference);
        ids_add(&m, rows);
        msg_add(&m, "): delete the extra ones in Qoyod, then retry");
        rc = th_err_set(err, TH_ECONFLICT, "%s", m.s);
    } else
        rc = parse_invoice(json_array_get(rows, 0), what, out, err);
    json_decref(rows);
    return rc;
}

static int valid_date(const char *d)
{
    if (!d || strlen(d) != 10 || d[4] != '-' || d[7] != '-') return 0;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (d[i] < '0' || d[i] > '9')) return 0;
    return 1;
}

/* Checks a spec before anything is sent: a bad spec is a bug or bad input
 * upstream, never something Qoyod should be asked about. */
static int invoice_spec_check(const struct qoyod_invoice_spec *s, struct th_err *err)
{
    if (!s->reference || !*s->reference)
        return th_err_set(err, TH_EINVAL, "a Qoyod invoice needs a reference (none given)");
    if (strlen(s->reference) >= sizeof((struct qoyod_invoice_info *)0)->reference)
        return th_err_set(err, TH_ETOOBIG, "invoice reference %.60s... is longer than %zu bytes",
                          s->reference, sizeof((struct qoyod_invoice_info *)0)->reference - 1);
    if (!valid_date(s->issue_date) || (s->due_date && !valid_date(s->due_date)))
        return th_err_set(err, TH_EINVAL, "invoice %.200s: dates must be YYYY-MM-DD", s->reference);
    if (s->contact_id <= 0 || s->inventory_id <= 0)
        return th_err_set(err, TH_EINVAL, "invoice %.200s: no customer or inventory id",
                          s->reference);
    if (s->nlines == 0 || !s->lines)
        return th_err_set(err, TH_EINVAL, "invoice %.200s has no lines", s->reference);
    if (s->nlines > QOYOD_MAX_LINES)
        return th_err_set(err, TH_ELIMIT, "invoice %.200s has %zu lines; at most %d are sent",
                          s->reference, s->nlines, QOYOD_MAX_LINES);
    for (size_t i = 0; i < s->nlines; i++) {
        const struct qoyod_line_spec *l = &s->lines[i];
        if (l->product_id <= 0 || l->quantity <= 0 || l->unit_price < 0 || l->discount < 0 ||
            l->tax_rate_bp < 0)
            return th_err_set(err, TH_EINVAL,
                              "invoice %.200s line %zu: needs a product, a quantity above 0 and "
                              "no negative price, discount or tax",
                              s->reference, i + 1);
    }
    return 0;
}

/* The line_items array both invoices and credit notes send. */
static json_t *lines_json(const struct qoyod_line_spec *lines, size_t n)
{
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++) {
        const struct qoyod_line_spec *l = &lines[i];
        json_t *li = json_object();
        json_object_set_new(li, "product_id", json_integer(l->product_id));
        set_text(li, "description", l->description);
        json_object_set_new(li, "quantity", json_integer(l->quantity));
        json_object_set_new(li, "unit_price", dec(l->unit_price));
        /* An amount, not Qoyod's default percentage: halalas stay exact. */
        json_object_set_new(li, "discount", dec(l->discount));
        json_object_set_new(li, "discount_type", json_string("amount"));
        json_object_set_new(li, "tax_percent", dec(l->tax_rate_bp));
        json_object_set_new(li, "is_inclusive", json_false());
        json_array_append_new(items, li);
    }
    return items;
}

static json_t *invoice_json(const struct qoyod_invoice_spec *s)
{
    json_t *inv = json_object();
    json_object_set_new(inv, "contact_id", json_integer(s->contact_id));
    set_text(inv, "reference", s->reference);
    set_text(inv, "description", s->description);
    set_text(inv, "issue_date", s->issue_date);
    set_text(inv, "due_date", s->due_date ? s->due_date : s->issue_date);
    set_text(inv, "status", s->approved ? "Approved" : "Draft");
    /* At the root, even for services (§4.8). */
    json_object_set_new(inv, "inventory_id", json_integer(s->inventory_id));
    set_text(inv, "payment_method", s->payment_method);
    json_object_set_new(inv, "line_items", lines_json(s->lines, s->nlines));
    return json_pack("{s:o}", "invoice", inv);
}

char *qoyod_invoice_body(const struct qoyod_invoice_spec *s)
{
    json_t *b = invoice_json(s);
    char *t = jv_dump(b);
    json_decref(b);
    return t;
}

int qoyod_invoice_create(struct qoyod *q, const struct qoyod_invoice_spec *s,
                         struct qoyod_invoice_info *out, struct th_err *err)
{
    int rc = invoice_spec_check(s, err);
    if (rc) return rc;
    char what[256];
    snprintf(what, sizeof what, "create the invoice %.200s", s->reference);
    json_t *body = invoice_json(s);
    struct qy_req rq = {
        .method = "POST", .path = "/invoices", .body = body, .what = what, .conflict = 1};
    json_t *ans = NULL;
    rc = qy_call(q, &rq, &ans, err);
    json_decref(body);
    if (rc) return rc;
    struct qoyod_invoice_info info;
    rc = parse_invoice(json_object_get(ans, "invoice"), what, &info, err);
    json_decref(ans);
    if (rc) return reclass(err, TH_EUNKNOWN, " (the invoice was probably created: look it up)");
    if (info.reference[0] && strcmp(info.reference, s->reference) != 0)
        /* Lookups by reference would never find it: the exactly-once key is
         * lost, so stop and have a person look rather than risk another. */
        return th_err_set(err, TH_EPERM,
                          "Qoyod created invoice %lld with the reference %s instead of %s: "
                          "check it in Qoyod before anything is retried",
                          (long long)info.id, info.reference, s->reference);
    if (!info.reference[0]) copy_text(info.reference, sizeof info.reference, s->reference);
    if (out) *out = info;
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Payments                                                                 */

int qoyod_payment_find(struct qoyod *q, const char *reference, int64_t *id, struct th_err *err)
{
    if (!reference || !*reference)
        return th_err_set(err, TH_EINVAL, "no payment reference to look up in Qoyod");
    char what[256];
    snprintf(what, sizeof what, "find the invoice payment with reference %.200s", reference);
    char *query = eq_query("reference", reference, NULL);
    json_t *rows = NULL;
    /* The list answers under "receipts" (§4.9). */
    int rc = qy_scan(q, "/invoice_payments", query, "receipts", what, match_reference, reference,
                     &rows, err);
    free(query);
    if (rc) return rc;
    size_t n = json_array_size(rows);
    if (n == 0)
        rc = th_err_set(err, TH_ENOTFOUND, "Qoyod has no invoice payment with reference %.200s",
                        reference);
    else if (n > 1) {
        struct msg m = {0};
        msg_add(&m, "%zu payments in Qoyod have the reference %.200s (ids ", n, reference);
        ids_add(&m, rows);
        msg_add(&m, "): delete the extra ones in Qoyod, then retry");
        rc = th_err_set(err, TH_ECONFLICT, "%s", m.s);
    } else
        rc = row_id(json_array_get(rows, 0), what, id, err);
    json_decref(rows);
    return rc;
}

int qoyod_payment_create(struct qoyod *q, int64_t invoice_id, int64_t account_id, int64_t amount,
                         const char *date, const char *reference, int64_t *id, struct th_err *err)
{
    if (!reference || !*reference)
        return th_err_set(err, TH_EINVAL, "a Qoyod payment needs a reference (none given)");
    if (invoice_id <= 0 || account_id <= 0 || amount <= 0 || !valid_date(date))
        return th_err_set(err, TH_EINVAL,
                          "payment %.200s: needs an invoice, an account, an amount above 0 and "
                          "a YYYY-MM-DD date",
                          reference);
    char what[256];
    snprintf(what, sizeof what, "record the payment %.200s on invoice %lld", reference,
             (long long)invoice_id);
    json_t *body = json_pack("{s:{s:s,s:I,s:I,s:s,s:o}}", "invoice_payment", "reference", reference,
                             "invoice_id", (json_int_t)invoice_id, "account_id",
                             (json_int_t)account_id, "date", date, "amount", dec(amount));
    /* A reference taken means this payment exists already: TH_ECONFLICT, so
     * the caller looks it up rather than failing. */
    struct qy_req rq = {
        .method = "POST", .path = "/invoice_payments", .body = body, .what = what, .conflict = 1};
    json_t *ans = NULL;
    int rc = qy_call(q, &rq, &ans, err);
    json_decref(body);
    if (rc) return rc;
    json_t *rec = json_object_get(ans, "invoice_payment");
    if (!rec) rec = json_object_get(ans, "receipt");
    rc = row_id(rec, what, id, err);
    json_decref(ans);
    return rc ? reclass(err, TH_EUNKNOWN, " (the payment was probably recorded: look it up)") : 0;
}

int qoyod_stock_set(struct qoyod *q, int64_t inventory_id, int64_t product_id, int64_t quantity,
                    int64_t unit_value, const char *date, struct th_err *err)
{
    return qoyod_stock_count(q, inventory_id, product_id, quantity, unit_value, date, 0, 0, err);
}

int qoyod_stock_count(struct qoyod *q, int64_t inventory_id, int64_t product_id, int64_t quantity,
                      int64_t unit_value, const char *date, int64_t increase_account,
                      int64_t decrease_account, struct th_err *err)
{
    return qoyod_stock_count_as(q, inventory_id, product_id, quantity, unit_value, date,
                                increase_account, decrease_account,
                                "Opening balance (tarheel, first transfer)", err);
}

int qoyod_stock_count_as(struct qoyod *q, int64_t inventory_id, int64_t product_id,
                         int64_t quantity, int64_t unit_value, const char *date,
                         int64_t increase_account, int64_t decrease_account,
                         const char *description, struct th_err *err)
{
    if (!description || !*description) description = "Stock count (tarheel)";
    if (inventory_id <= 0 || product_id <= 0 || quantity < 0 || unit_value < 0 || !valid_date(date))
        return th_err_set(err, TH_EINVAL, "a stock count needs an inventory, a product, a "
                          "quantity >= 0 and a YYYY-MM-DD date");
    char what[160];
    snprintf(what, sizeof what, "book the opening stock of product %lld at inventory %lld",
             (long long)product_id, (long long)inventory_id);
    /* §4.5: actual_quantity is the new absolute count; the revenue account
     * takes increases (the opening-balance account set up at connect; else
     * 18, other revenue, as the seeded chart has it), the expense account
     * decreases (cost of goods sold; else 12, cost of sales). */
    json_t *body = json_pack(
        "{s:{s:I,s:I,s:I,s:s,s:s,s:[{s:I,s:I,s:o}]}}", "inventory_adjustment", "inventory_id",
        (json_int_t)inventory_id, "revenue_account_id",
        (json_int_t)(increase_account > 0 ? increase_account : 18), "expense_account_id",
        (json_int_t)(decrease_account > 0 ? decrease_account : 12), "date", date, "description",
        description, "line_items", "product_id",
        (json_int_t)product_id, "actual_quantity", (json_int_t)quantity, "rate", dec(unit_value));
    struct qy_req rq = {.method = "POST", .path = "/inventory_adjustments", .body = body,
                        .what = what};
    json_t *ans = NULL;
    int rc = qy_call(q, &rq, &ans, err);
    json_decref(body);
    json_decref(ans);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Chart of accounts and categories                                         */

/* Reads an unpaged list (accounts, categories): 0 with *list (new) or an
 * empty array when Qoyod answers 404-empty. */
static int qy_list(struct qoyod *q, const char *path, const char *key, const char *what,
                   json_t **list, struct th_err *err)
{
    *list = NULL;
    struct qy_req rq = {.method = "GET", .path = path, .what = what, .lookup = 1};
    json_t *ans = NULL;
    int rc = qy_call(q, &rq, &ans, err);
    if (rc == TH_ENOTFOUND) {
        th_err_clear(err);
        *list = json_array();
        return 0;
    }
    if (rc) return rc;
    json_t *l = json_object_get(ans, key);
    if (!json_is_array(l)) {
        json_decref(ans);
        return th_err_set(err, TH_EPERM, "Qoyod's answer when asked to %s has no \"%s\" list: "
                          "its API may have changed", what, key);
    }
    *list = json_incref(l);
    json_decref(ans);
    return 0;
}

int qoyod_accounts(struct qoyod *q, struct qoyod_account **out, size_t *n, struct th_err *err)
{
    *out = NULL;
    *n = 0;
    json_t *list;
    int rc = qy_list(q, "/accounts", "accounts", "list the chart of accounts", &list, err);
    if (rc) return rc;
    size_t cnt = json_array_size(list), k = 0;
    struct qoyod_account *v = xcalloc(cnt ? cnt : 1, sizeof *v);
    for (size_t i = 0; i < cnt; i++) {
        json_t *row = json_array_get(list, i);
        if (jv_get_id(row, "id", &v[k].id, NULL) != 0) continue;
        const char *t;
        char num[40];
        copy_text(v[k].code, sizeof v[k].code, (t = jv_get_text(row, "code", num, sizeof num)) ? t : "");
        copy_text(v[k].name_en, sizeof v[k].name_en, (t = jv_get_str(row, "name_en")) ? t : "");
        copy_text(v[k].name_ar, sizeof v[k].name_ar, (t = jv_get_str(row, "name_ar")) ? t : "");
        copy_text(v[k].type, sizeof v[k].type, (t = jv_get_str(row, "type")) ? t : "");
        k++;
    }
    json_decref(list);
    *out = v;
    *n = k;
    return 0;
}

int qoyod_account_create(struct qoyod *q, const struct qoyod_account_spec *s, int64_t *id,
                         struct th_err *err)
{
    if (!s->name_en || !*s->name_en || !s->name_ar || !*s->name_ar || !s->type || !*s->type)
        return th_err_set(err, TH_EINVAL, "a Qoyod account needs both names and a type");
    char what[256];
    snprintf(what, sizeof what, "create the account \"%.160s\"", s->name_en);
    /* The reference's fields (§4.1) and the data-model seed's (003: en_name,
     * ar_name, account_kind, parent_kind, branch_kind), which disagree; both
     * are sent, as the MCP sends both spellings of the receive flag. */
    json_t *a = json_object();
    set_text(a, "name_en", s->name_en);
    set_text(a, "name_ar", s->name_ar);
    set_text(a, "en_name", s->name_en);
    set_text(a, "ar_name", s->name_ar);
    set_text(a, "type", s->type);
    set_text(a, "account_kind", s->type);
    if (s->parent_kind) set_text(a, "parent_kind", s->parent_kind);
    if (s->branch_kind) set_text(a, "branch_kind", s->branch_kind);
    set_text(a, "recieve_payments", "false");
    set_text(a, "receive_payments", "false");
    json_t *body = json_pack("{s:o}", "account", a);
    struct qy_req rq = {.method = "POST", .path = "/accounts", .body = body, .what = what};
    json_t *ans = NULL;
    int rc = qy_call(q, &rq, &ans, err);
    json_decref(body);
    if (rc) return rc;
    rc = row_id(json_object_get(ans, "account"), what, id, err);
    json_decref(ans);
    return rc ? reclass(err, TH_EUNKNOWN, " (the account was probably created)") : 0;
}

int qoyod_categories(struct qoyod *q, struct qoyod_category **out, size_t *n, struct th_err *err)
{
    *out = NULL;
    *n = 0;
    json_t *list;
    int rc = qy_list(q, "/categories", "categories", "list the product categories", &list, err);
    if (rc) return rc;
    size_t cnt = json_array_size(list), k = 0;
    struct qoyod_category *v = xcalloc(cnt ? cnt : 1, sizeof *v);
    for (size_t i = 0; i < cnt; i++) {
        json_t *row = json_array_get(list, i);
        if (jv_get_id(row, "id", &v[k].id, NULL) != 0) continue;
        const char *t = jv_get_str(row, "name");
        copy_text(v[k].name, sizeof v[k].name, t ? t : "");
        if (jv_get_id(row, "parent_id", &v[k].parent_id, NULL) != 0) v[k].parent_id = 0;
        k++;
    }
    json_decref(list);
    *out = v;
    *n = k;
    return 0;
}

int qoyod_category_create(struct qoyod *q, const char *name, int64_t parent_id, int64_t *id,
                          struct th_err *err)
{
    if (!name || !*name) return th_err_set(err, TH_EINVAL, "a Qoyod category needs a name");
    char what[320];
    snprintf(what, sizeof what, "create the product category \"%.256s\"", name);
    json_t *c = json_object();
    set_text(c, "name", name);
    if (parent_id > 0) json_object_set_new(c, "parent_id", json_integer(parent_id));
    json_t *body = json_pack("{s:o}", "category", c);
    struct qy_req rq = {.method = "POST", .path = "/categories", .body = body, .what = what};
    json_t *ans = NULL;
    int rc = qy_call(q, &rq, &ans, err);
    json_decref(body);
    if (rc) return rc;
    rc = row_id(json_object_get(ans, "category"), what, id, err);
    json_decref(ans);
    return rc ? reclass(err, TH_EUNKNOWN, " (the category was probably created)") : 0;
}

/* ---------------------------------------------------------------------- */
/* Stock reads                                                              */

static int two(const char *p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return -1;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 0;
}

int qoyod_time_parse(const char *text, int64_t *ms)
{
    int y, mo, d, h = 0, mi = 0, sec = 0, frac = 0;
    const char *p = text;
    if (!p || strlen(p) < 10 || two(p, 4, &y) || p[4] != '-' || two(p + 5, 2, &mo) ||
        p[7] != '-' || two(p + 8, 2, &d))
        return -1;
    p += 10;
    long zone_s = 3 * 3600; /* Riyadh when no zone is given */
    if (*p == 'T' || *p == ' ') {
        if (strlen(p) < 9 || two(p + 1, 2, &h) || p[3] != ':' || two(p + 4, 2, &mi) ||
            p[6] != ':' || two(p + 7, 2, &sec))
            return -1;
        p += 9;
        if (*p == '.') {
            int n = 0;
            for (p++; *p >= '0' && *p <= '9'; p++, n++)
                if (n < 3) frac = frac * 10 + (*p - '0');
            for (; n < 3; n++) frac *= 10;
        }
        if (*p == 'Z') {
            zone_s = 0;
            p++;
        } else if (*p == '+' || *p == '-') {
            int zh, zm, sign = *p == '-' ? -1 : 1;
            if (two(p + 1, 2, &zh)) return -1;
            p += 3;
            if (*p == ':') p++;
            if (two(p, 2, &zm)) return -1;
            p += 2;
            zone_s = sign * (zh * 3600L + zm * 60L);
        }
    }
    if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return -1;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
                    .tm_min = mi, .tm_sec = sec};
    *ms = ((int64_t)timegm(&tm) - zone_s) * 1000 + frac;
    return 0;
}

void qoyod_stock_page_release(struct qoyod_stock_page *p)
{
    if (!p) return;
    free(p->items);
    memset(p, 0, sizeof *p);
}

/* The stock of a product row at inventory_id, in whole units: Qoyod sends
 * "12.0" (a weighed product may have a fraction; a store counts whole
 * units, so it is cut toward zero). A tracked product not listed at the
 * location has 0 there. */
static int64_t row_stock(const json_t *row, int64_t inventory_id)
{
    json_t *invs = json_object_get(row, "inventories"), *inv;
    size_t i;
    json_array_foreach(invs, i, inv) {
        int64_t id = 0, milli = 0;
        if (jv_get_id(inv, "id", &id, NULL) != 0 || id != inventory_id) continue;
        if (jv_get_dec(inv, "stock", 3, &milli, NULL) != 0) return 0;
        return milli / 1000;
    }
    return 0;
}

int qoyod_product_stock(struct qoyod *q, int64_t inventory_id, int64_t product_id,
                        int64_t *qty, struct th_err *err)
{
    *qty = 0;
    if (inventory_id <= 0 || product_id <= 0)
        return th_err_set(err, TH_EINVAL, "reading a product's stock needs an inventory and a "
                                          "product");
    char path[64], what[128];
    snprintf(path, sizeof path, "/products/%lld", (long long)product_id);
    snprintf(what, sizeof what, "read the stock of product %lld at inventory %lld",
             (long long)product_id, (long long)inventory_id);
    struct qy_req rq = {.method = "GET", .path = path, .what = what};
    json_t *ans = NULL;
    int rc = qy_call(q, &rq, &ans, err);
    if (rc) return rc;
    json_t *row = json_object_get(ans, "product");
    if (!json_is_object(row)) {
        json_decref(ans);
        return th_err_set(err, TH_EPERM, "Qoyod's answer when asked to %s has no \"product\": "
                          "its API may have changed", what);
    }
    *qty = row_stock(row, inventory_id);
    json_decref(ans);
    return 0;
}

int qoyod_stock_page(struct qoyod *q, int64_t inventory_id, int64_t since_ms, int page,
                     struct qoyod_stock_page *out, struct th_err *err)
{
    memset(out, 0, sizeof *out);
    if (inventory_id <= 0 || page < 1)
        return th_err_set(err, TH_EINVAL, "a stock page needs an inventory location and a page");
    char *query;
    if (since_ms > 0) {
        /* Whole seconds, rounded down: _gteq then lists the same second again,
         * never less. UTC with Z needs no '+' in the URL. */
        time_t t = (time_t)(since_ms / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        char when[32];
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        char *ew = httpc_escape(when);
        query = xasprintf("q%%5Bupdated_at_gteq%%5D=%s&q%%5Bs%%5D=updated_at%%20asc", ew);
        free(ew);
    } else {
        query = xstrdup("q%5Bs%5D=id%20asc");
    }
    char *path = xasprintf("/products?%s&page=%d&per_page=%d", query, page, QOYOD_STOCK_PER_PAGE);
    free(query);
    char what[96];
    snprintf(what, sizeof what, "list products with their stock (page %d)", page);
    struct qy_req rq = {.method = "GET", .path = path, .what = what, .lookup = 1};
    json_t *ans = NULL;
    int rc = qy_call(q, &rq, &ans, err);
    free(path);
    if (rc == TH_ENOTFOUND) { /* an empty page */
        th_err_clear(err);
        return 0;
    }
    if (rc) return rc;
    json_t *list = json_object_get(ans, "products");
    if (!json_is_array(list)) {
        json_decref(ans);
        return th_err_set(err, TH_EPERM, "Qoyod's product list has no \"products\" list: its API "
                          "may have changed");
    }
    size_t n = json_array_size(list);
    out->items = xcalloc(n ? n : 1, sizeof *out->items);
    json_t *row;
    size_t i;
    json_array_foreach(list, i, row) {
        struct qoyod_stock_item *it = &out->items[out->n];
        if (jv_get_id(row, "id", &it->product_id, NULL) != 0) continue;
        char buf[160];
        const char *sku = jv_get_text(row, "sku", buf, sizeof buf);
        if (sku && strlen(sku) < sizeof it->sku) snprintf(it->sku, sizeof it->sku, "%s", sku);
        int tracked = 0;
        if (jv_get_bool(row, "track_quantity", &tracked, NULL) != 0) tracked = 0;
        it->tracked = tracked;
        it->qty = tracked ? row_stock(row, inventory_id) : 0;
        const char *up = jv_get_str(row, "updated_at");
        if (!up || qoyod_time_parse(up, &it->updated_ms) != 0) it->updated_ms = 0;
        out->n++;
    }
    int64_t total_pages = 0;
    if (jv_get_id(json_object_get(ans, "pagination"), "totalPages", &total_pages, NULL) == 0)
        out->more = page < total_pages;
    else
        out->more = n >= QOYOD_STOCK_PER_PAGE;
    json_decref(ans);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Product fields (the field sync)                                          */

void qoyod_product_page_release(struct qoyod_product_page *p)
{
    if (!p) return;
    free(p->items);
    p->items = NULL;
    p->n = 0;
    p->more = 0;
}

static int product_fields_read(const json_t *row, struct qoyod_product_fields *it)
{
    memset(it, 0, sizeof *it);
    if (jv_get_id(row, "id", &it->product_id, NULL) != 0) return -1;
    char buf[160];
    const char *sku = jv_get_text(row, "sku", buf, sizeof buf);
    if (sku && strlen(sku) < sizeof it->sku) snprintf(it->sku, sizeof it->sku, "%s", sku);
    const char *ar = jv_get_str(row, "name_ar"), *en = jv_get_str(row, "name_en");
    copy_text(it->name_ar, sizeof it->name_ar, ar ? ar : "");
    copy_text(it->name_en, sizeof it->name_en, en ? en : "");
    if (jv_get_money(row, "selling_price", &it->selling_price, NULL) != 0) it->selling_price = 0;
    if (jv_get_money(row, "buying_price", &it->buying_price, NULL) != 0) it->buying_price = 0;
    if (jv_get_bool(row, "is_selling_price_inclusive", &it->price_inclusive, NULL) != 0)
        it->price_inclusive = 0;
    const char *up = jv_get_str(row, "updated_at");
    if (!up || qoyod_time_parse(up, &it->updated_ms) != 0) it->updated_ms = 0;
    return 0;
}

int qoyod_product_page(struct qoyod *q, int64_t since_ms, int page,
                       struct qoyod_product_page *out, struct th_err *err)
{
    memset(out, 0, sizeof *out);
    if (page < 1) return th_err_set(err, TH_EINVAL, "a product page starts at 1");
    char *query;
    if (since_ms > 0) {
        time_t t = (time_t)(since_ms / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        char when[32];
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        char *ew = httpc_escape(when);
        query = xasprintf("q%%5Bupdated_at_gteq%%5D=%s&q%%5Bs%%5D=updated_at%%20asc", ew);
        free(ew);
    } else {
        query = xstrdup("q%5Bs%5D=id%20asc");
    }
    char *path = xasprintf("/products?%s&page=%d&per_page=%d", query, page, QOYOD_STOCK_PER_PAGE);
    free(query);
    char what[96];
    snprintf(what, sizeof what, "list products (page %d)", page);
    struct qy_req rq = {.method = "GET", .path = path, .what = what, .lookup = 1};
    json_t *ans = NULL;
    int rc = qy_call(q, &rq, &ans, err);
    free(path);
    if (rc == TH_ENOTFOUND) {
        th_err_clear(err);
        return 0;
    }
    if (rc) return rc;
    json_t *list = json_object_get(ans, "products");
    if (!json_is_array(list)) {
        json_decref(ans);
        return th_err_set(err, TH_EPERM, "Qoyod's product list has no \"products\" list: its API "
                          "may have changed");
    }
    size_t n = json_array_size(list), i;
    out->items = xcalloc(n ? n : 1, sizeof *out->items);
    json_t *row;
    json_array_foreach(list, i, row) {
        if (product_fields_read(row, &out->items[out->n]) == 0) out->n++;
    }
    int64_t total_pages = 0;
    if (jv_get_id(json_object_get(ans, "pagination"), "totalPages", &total_pages, NULL) == 0)
        out->more = page < total_pages;
    else
        out->more = n >= QOYOD_STOCK_PER_PAGE;
    json_decref(ans);
    return 0;
}

int qoyod_product_get_sku(struct qoyod *q, const char *sku, struct qoyod_product_fields *out,
                          struct th_err *err)
{
    if (!sku || !*sku) return th_err_set(err, TH_EINVAL, "no SKU to look up in Qoyod");
    char what[256];
    snprintf(what, sizeof what, "read the product with SKU %.200s", sku);
    char *query = eq_query("sku", sku, NULL);
    json_t *rows = NULL;
    int rc = qy_scan(q, "/products", query, "products", what, match_sku, sku, &rows, err);
    free(query);
    if (rc) return rc;
    size_t n = json_array_size(rows);
    if (n == 0)
        rc = th_err_set(err, TH_ENOTFOUND, "Qoyod has no product with SKU %.200s", sku);
    else if (n > 1)
        rc = th_err_set(err, TH_ECONFLICT,
                        "%zu products in Qoyod have the SKU %.200s: give each its own SKU", n, sku);
    else if (product_fields_read(json_array_get(rows, 0), out) != 0)
        rc = th_err_set(err, TH_EPARSE, "Qoyod's product with SKU %.200s has no id", sku);
    json_decref(rows);
    return rc;
}

int qoyod_product_update(struct qoyod *q, const struct qoyod_product_fields *was,
                         const struct qoyod_product_fields *want, unsigned mask,
                         struct qoyod_product_fields *out, struct th_err *err)
{
    if (was->product_id <= 0) return th_err_set(err, TH_EINVAL, "no Qoyod product to update");
    if (want->selling_price < 0 || want->buying_price < 0)
        return th_err_set(err, TH_EINVAL, "product %.200s: a price is negative", was->sku);
    json_t *pr = json_object();
    if (mask & QOYOD_FIELD_NAME) {
        /* Qoyod requires both names (§4.2): an empty one is not sent. */
        if (want->name_ar[0]) set_text(pr, "name_ar", want->name_ar);
        if (want->name_ar[0] && strcmp(was->name_en, was->name_ar) == 0)
            set_text(pr, "name_en", want->name_ar);
    }
    if (mask & QOYOD_FIELD_PRICE) {
        json_object_set_new(pr, "selling_price", dec(want->selling_price));
        json_object_set_new(pr, "is_selling_price_inclusive",
                            json_string(want->price_inclusive ? "1" : "0"));
    }
    if (mask & QOYOD_FIELD_COST) json_object_set_new(pr, "buying_price", dec(want->buying_price));
    char what[256], path[64];
    snprintf(what, sizeof what, "update product %lld (SKU %.200s)", (long long)was->product_id,
             was->sku);
    snprintf(path, sizeof path, "/products/%lld", (long long)was->product_id);
    json_t *body = json_pack("{s:o}", "product", pr);
    struct qy_req rq = {.method = "PUT", .path = path, .body = body, .what = what};
    json_t *ans = NULL;
    int rc = qy_call(q, &rq, &ans, err);
    json_decref(body);
    if (rc) return rc;
    if (out && product_fields_read(json_object_get(ans, "product"), out) != 0) {
        /* No product in the answer: what was asked is what it holds. */
        *out = *was;
        if (mask & QOYOD_FIELD_NAME) memcpy(out->name_ar, want->name_ar, sizeof out->name_ar);
        if (mask & QOYOD_FIELD_PRICE) {
            out->selling_price = want->selling_price;
            out->price_inclusive = want->price_inclusive;
        }
        if (mask & QOYOD_FIELD_COST) out->buying_price = want->buying_price;
    }
    json_decref(ans);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Credit notes (§4.11)                                                     */

/* Reads a credit note record. Returns 0 or TH_EPARSE naming the field. */
static int parse_credit(const json_t *rec, const char *what, struct qoyod_credit_info *out,
                        struct th_err *err)
{
    memset(out, 0, sizeof *out);
    struct th_err e = {0};
    int rc = row_id(rec, what, &out->id, err);
    if (rc) return rc;
    const char *ref = jv_get_str(rec, "reference");
    const char *st = jv_get_str(rec, "status");
    copy_text(out->reference, sizeof out->reference, ref ? ref : "");
    copy_text(out->status, sizeof out->status, st ? st : "");
    if (jv_get_id(rec, "parent_id", &out->parent_id, NULL) != 0) out->parent_id = 0;
    if ((rc = jv_get_money(rec, "total_amount", &out->total, &e)) != 0)
        return th_err_set(err, TH_EPARSE, "Qoyod credit note %lld (asked to %s): total_amount: %s",
                          (long long)out->id, what, e.msg);
    rc = jv_get_money(rec, "remaining_amount", &out->remaining, &e);
    if (rc == TH_ENOTFOUND) out->remaining = out->total, rc = 0;
    if (rc)
        return th_err_set(err, TH_EPARSE,
                          "Qoyod credit note %lld (asked to %s): remaining_amount: %s",
                          (long long)out->id, what, e.msg);
    return 0;
}

int qoyod_credit_note_find(struct qoyod *q, const char *reference, struct qoyod_credit_info *out,
                           struct th_err *err)
{
    if (!reference || !*reference)
        return th_err_set(err, TH_EINVAL, "no credit note reference to look up in Qoyod");
    char what[256];
    snprintf(what, sizeof what, "find the credit note with reference %.200s", reference);
    char *query = eq_query("reference", reference, NULL);
    json_t *rows = NULL;
    int rc = qy_scan(q, "/credit_notes", query, "credit_notes", what, match_reference, reference,
                     &rows, err);
    free(query);
    if (rc) return rc;
    size_t n = json_array_size(rows);
    if (n == 0)
        rc = th_err_set(err, TH_ENOTFOUND, "Qoyod has no credit note with reference %.200s",
                        reference);
    else if (n > 1) {
        struct msg m = {0};
        msg_add(&m, "%zu credit notes in Qoyod have the reference %.200s (ids ", n, reference);
        ids_add(&m, rows);
        msg_add(&m, "): delete the extra ones in Qoyod, then retry");
        rc = th_err_set(err, TH_ECONFLICT, "%s", m.s);
    } else
        rc = parse_credit(json_array_get(rows, 0), what, out, err);
    json_decref(rows);
    return rc;
}

static json_t *credit_json(const struct qoyod_credit_spec *s)
{
    json_t *cn = json_object();
    json_object_set_new(cn, "contact_id", json_integer(s->contact_id));
    set_text(cn, "reference", s->reference);
    set_text(cn, "issue_date", s->issue_date);
    json_object_set_new(cn, "status", json_string("Approved"));
    json_object_set_new(cn, "inventory_id", json_integer(s->inventory_id));
    /* [I] §4.11: how a credit note names its invoice is not documented;
     * parent_id is the field the records carry. */
    json_object_set_new(cn, "parent_id", json_integer(s->invoice_id));
    set_text(cn, "issuance_reason", s->reason);
    json_object_set_new(cn, "line_items", lines_json(s->lines, s->nlines));
    return json_pack("{s:o}", "credit_note", cn);
}

char *qoyod_credit_note_body(const struct qoyod_credit_spec *s)
{
    json_t *b = credit_json(s);
    char *t = jv_dump(b);
    json_decref(b);
    return t;
}

int qoyod_credit_note_create(struct qoyod *q, const struct qoyod_credit_spec *s,
                             struct qoyod_credit_info *out, struct th_err *err)
{
    if (!s->reference || !*s->reference || strlen(s->reference) >= sizeof out->reference)
        return th_err_set(err, TH_EINVAL, "a Qoyod credit note needs a reference of at most "
                          "%zu bytes", sizeof out->reference - 1);
    if (!valid_date(s->issue_date) || s->contact_id <= 0 || s->inventory_id <= 0 ||
        s->invoice_id <= 0 || s->nlines == 0 || s->nlines > QOYOD_MAX_LINES)
        return th_err_set(err, TH_EINVAL, "credit note %.200s: needs a date, a customer, an "
                          "inventory, the invoice and 1 to %d lines", s->reference,
                          QOYOD_MAX_LINES);
    char what[256];
    snprintf(what, sizeof what, "create the credit note %.200s", s->reference);
    json_t *body = credit_json(s);
    struct qy_req rq = {
        .method = "POST", .path = "/credit_notes", .body = body, .what = what, .conflict = 1};
    json_t *ans = NULL;
    int rc = qy_call(q, &rq, &ans, err);
    json_decref(body);
    if (rc) return rc;
    json_t *rec = json_object_get(ans, "credit_note");
    if (!rec) rec = json_object_get(ans, "note"); /* §4.11: either envelope [I] */
    struct qoyod_credit_info info;
    rc = parse_credit(rec, what, &info, err);
    json_decref(ans);
    if (rc) return reclass(err, TH_EUNKNOWN, " (the credit note was probably created: look it up)");
    if (!info.reference[0]) copy_text(info.reference, sizeof info.reference, s->reference);
    if (out) *out = info;
    return 0;
}

int qoyod_invoice_allocate(struct qoyod *q, int64_t invoice_id, int64_t credit_note_id,
                           int64_t amount, const char *date, struct th_err *err)
{
    if (invoice_id <= 0 || credit_note_id <= 0 || amount <= 0 || !valid_date(date))
        return th_err_set(err, TH_EINVAL, "an allocation needs an invoice, a credit note, an "
                          "amount above 0 and a YYYY-MM-DD date");
    char what[160], path[64];
    snprintf(what, sizeof what, "allocate credit note %lld to invoice %lld",
             (long long)credit_note_id, (long long)invoice_id);
    snprintf(path, sizeof path, "/invoices/%lld/allocations", (long long)invoice_id);
    json_t *body = json_pack("{s:{s:[{s:s,s:I,s:o,s:s}]}}", "invoice", "allocations_attributes",
                             "source_type", "CreditNote", "source_id", (json_int_t)credit_note_id,
                             "amount", dec(amount), "date", date);
    struct qy_req rq = {.method = "POST", .path = path, .body = body, .what = what};
    json_t *ans = NULL;
    int rc = qy_call(q, &rq, &ans, err);
    json_decref(body);
    json_decref(ans);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Lists for reconciliation                                                 */

/* Pages a list filtered on issue_date in [from, to]; every row into *out. */
static int list_dated(struct qoyod *q, const char *path, const char *key, int credit,
                      const char *from, const char *to, struct qoyod_doc **out, size_t *n,
                      struct th_err *err)
{
    *out = NULL;
    *n = 0;
    if (!valid_date(from) || !valid_date(to))
        return th_err_set(err, TH_EINVAL, "dates must be YYYY-MM-DD");
    char *k1 = httpc_escape("q[issue_date_gteq]"), *k2 = httpc_escape("q[issue_date_lteq]");
    char *k3 = httpc_escape("q[s]"), *v3 = httpc_escape("id asc");
    char what[160];
    snprintf(what, sizeof what, "list the %s issued %s to %s", credit ? "credit notes" : "invoices",
             from, to);
    size_t cap = 0;
    struct qoyod_doc *v = NULL;
    int rc = 0;
    int64_t prev_first = INT64_MIN;
    for (int page = 1;; page++) {
        if (page > QOYOD_MAX_LIST_PAGES) {
            rc = th_err_set(err, TH_ELIMIT, "more than %d pages of %d when asked to %s: use a "
                            "shorter range", QOYOD_MAX_LIST_PAGES, QY_PER_PAGE, what);
            break;
        }
        char *p = xasprintf("%s?%s=%s&%s=%s&%s=%s&page=%d&per_page=%d", path, k1, from, k2, to,
                            k3, v3, page, QY_PER_PAGE);
        struct qy_req rq = {.method = "GET", .path = p, .what = what, .lookup = 1};
        json_t *ans = NULL;
        rc = qy_call(q, &rq, &ans, err);
        free(p);
        if (rc == TH_ENOTFOUND) {
            rc = 0;
            th_err_clear(err);
            break;
        }
        if (rc) break;
        json_t *list = json_object_get(ans, key);
        size_t cnt = json_array_size(list);
        int64_t first = INT64_MIN;
        if (cnt && jv_get_id(json_array_get(list, 0), "id", &first, NULL) != 0) first = INT64_MIN;
        if (page > 1 && first != INT64_MIN && first == prev_first) {
            json_decref(ans);
            break;
        }
        prev_first = first;
        for (size_t i = 0; i < cnt && rc == 0; i++) {
            json_t *row = json_array_get(list, i);
            const char *d = jv_get_str(row, "issue_date");
            /* Verified here too: Qoyod is not trusted to have filtered. */
            if (!d || strlen(d) < 10 || strncmp(d, from, 10) < 0 || strncmp(d, to, 10) > 0)
                continue;
            if (*n == cap) {
                cap = cap ? cap * 2 : 64;
                v = xrealloc(v, cap * sizeof *v);
            }
            struct qoyod_doc *doc = &v[*n];
            memset(doc, 0, sizeof *doc);
            if ((rc = row_id(row, what, &doc->id, err)) != 0) break;
            const char *ref = jv_get_str(row, "reference"), *desc = jv_get_str(row, "description");
            const char *st = jv_get_str(row, "status");
            copy_text(doc->reference, sizeof doc->reference, ref ? ref : "");
            copy_text(doc->description, sizeof doc->description, desc ? desc : "");
            copy_text(doc->status, sizeof doc->status, st ? st : "");
            copy_text(doc->date, sizeof doc->date, d);
            struct th_err e = {0};
            if (jv_get_money(row, credit ? "total_amount" : "total", &doc->total, &e) != 0) {
                rc = th_err_set(err, TH_EPARSE, "Qoyod document %lld has no readable total: %s",
                                (long long)doc->id, e.msg);
                break;
            }
            if (credit && jv_get_id(row, "parent_id", &doc->parent_id, NULL) != 0)
                doc->parent_id = 0;
            (*n)++;
        }
        int64_t total_pages = 0;
        int has_total =
            jv_get_id(json_object_get(ans, "pagination"), "totalPages", &total_pages, NULL) == 0;
        json_decref(ans);
        if (rc) break;
        if (has_total ? page >= total_pages : cnt < QY_PER_PAGE) break;
    }
    free(k1);
    free(k2);
    free(k3);
    free(v3);
    if (rc) {
        free(v);
        *n = 0;
        return rc;
    }
    *out = v;
    return 0;
}

int qoyod_invoices_list(struct qoyod *q, const char *from, const char *to, struct qoyod_doc **out,
                        size_t *n, struct th_err *err)
{
    return list_dated(q, "/invoices", "invoices", 0, from, to, out, n, err);
}

int qoyod_credit_notes_list(struct qoyod *q, const char *from, const char *to,
                            struct qoyod_doc **out, size_t *n, struct th_err *err)
{
    return list_dated(q, "/credit_notes", "credit_notes", 1, from, to, out, n, err);
}
