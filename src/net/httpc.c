/* httpc — outbound HTTP over libcurl, with failure classification (see httpc.h). */
#include "net/httpc.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "core/xmalloc.h"

/* How much of a refused request's answer goes into err: enough to show a
 * service's validation message, short enough to leave room for the URL in
 * TH_ERR_MSG_MAX. */
#define HTTPC_ERR_BODY_MAX 200

/* Longest Retry-After value worth parsing: an IMF-fixdate is 29 bytes. */
#define HTTPC_RETRY_AFTER_MAX 64

/* Default timeouts (httpc_config fields left 0). */
#define HTTPC_CONNECT_TIMEOUT_MS 5000L
#define HTTPC_TIMEOUT_MS 30000L

struct httpc {
    CURL *h; /* one easy handle: its connection cache is the keep-alive pool */
    long connect_timeout_ms;
    long timeout_ms;
    char errbuf[CURL_ERROR_SIZE];

    /* State of the request in progress (valid during httpc_do only). */
    struct httpc_resp *resp;
    int idempotent;
    int too_big;   /* the body hit HTTPC_MAX_BODY */
    int prereqs;   /* connections the request was about to be sent on */
    int no_resend; /* we stopped libcurl from resending a write (see on_prereq) */

    /* The last answer, for httpc_last_answer. */
    long last_status;
    long last_retry_after_s;
};

#define SETOPT(h, opt, val)                                                                        \
    do {                                                                                           \
        CURLcode sc_ = curl_easy_setopt((h), (opt), (val));                                        \
        if (sc_ != CURLE_OK) TH_BUG("curl_easy_setopt(%s): %s", #opt, curl_easy_strerror(sc_));    \
    } while (0)

static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void global_init(void)
{
    CURLcode cc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (cc != CURLE_OK) TH_BUG("curl_global_init: %s", curl_easy_strerror(cc));
}

static int is_idempotent(const char *method)
{
    static const char *const safe[] = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"};
    for (size_t i = 0; i < sizeof safe / sizeof safe[0]; i++)
        if (strcmp(method, safe[i]) == 0) return 1;
    return 0;
}

struct httpc *httpc_new(const struct httpc_config *cfg)
{
    pthread_once(&global_once, global_init);
    struct httpc *c = xcalloc(1, sizeof *c);
    c->h = curl_easy_init();
    if (!c->h) TH_BUG("curl_easy_init failed (out of memory?)");
    c->connect_timeout_ms =
        cfg && cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : HTTPC_CONNECT_TIMEOUT_MS;
    c->timeout_ms = cfg && cfg->timeout_ms > 0 ? cfg->timeout_ms : HTTPC_TIMEOUT_MS;
    c->last_retry_after_s = -1;
    return c;
}

void httpc_free(struct httpc *c)
{
    if (!c) return;
    curl_easy_cleanup(c->h);
    free(c);
}

static void resp_clear_headers(struct httpc_resp *r)
{
    r->retry_after_s = -1;
    r->content_type[0] = '\0';
    r->ratelimit_limit[0] = '\0';
    r->ratelimit_remaining[0] = '\0';
    r->ratelimit_reset[0] = '\0';
}

void httpc_resp_init(struct httpc_resp *r)
{
    r->status = 0;
    buf_init(&r->body, HTTPC_MAX_BODY);
    resp_clear_headers(r);
    r->sent = 0;
}

void httpc_resp_release(struct httpc_resp *r)
{
    buf_release(&r->body);
    httpc_resp_init(r);
}

void httpc_last_answer(const struct httpc *c, long *status, long *retry_after_s)
{
    if (status) *status = c->last_status;
    if (retry_after_s) *retry_after_s = c->last_retry_after_s;
}

int httpc_classify_status(const char *method, long status)
{
    if (status >= 200 && status <= 299) return 0;
    switch (status) {
    case 408: /* Request Timeout: the server gave up before processing */
    case 425: /* Too Early */
    case 429: /* Too Many Requests */
    case 503: /* Service Unavailable: refused before processing */
        return TH_ETEMP;
    case 401:
    case 403:
        return TH_EAUTH;
    }
    /* 5xx, and statuses no server should send as a final answer (1xx, 600+):
     * the request may have been half-processed, which is harmless to repeat
     * only for an idempotent method. */
    if (status >= 500 || status < 300) return is_idempotent(method) ? TH_ETEMP : TH_EUNKNOWN;
    return TH_EPERM;
}

long httpc_parse_retry_after(const char *v)
{
    if (!v) return -1;
    while (*v == ' ' || *v == '\t')
        v++;
    size_t n = strlen(v);
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r' || v[n - 1] == '\n'))
        n--;
    if (n == 0 || n >= HTTPC_RETRY_AFTER_MAX) return -1;
    char s[HTTPC_RETRY_AFTER_MAX];
    memcpy(s, v, n);
    s[n] = '\0';

    /* delta-seconds = 1*DIGIT */
    size_t digits = strspn(s, "0123456789");
    if (digits == n) {
        errno = 0;
        long long secs = strtoll(s, NULL, 10);
        if (errno == ERANGE || secs > LONG_MAX) return LONG_MAX; /* the scheduler caps it */
        return (long)secs;
    }
    if (digits) return -1; /* "120s", "1.5": neither form */

    /* HTTP-date. curl_getdate also takes obsolete forms (RFC 850, asctime),
     * which RFC 9110 asks recipients to accept. */
    time_t when = curl_getdate(s, NULL);
    if (when == -1) return -1;
    time_t now = time(NULL);
    if (when <= now) return 0;
    time_t d = when - now;
    return d > LONG_MAX ? LONG_MAX : (long)d;
}

char *httpc_escape(const char *s)
{
    /* Since 7.82 curl_easy_escape needs no handle. */
    char *e = curl_easy_escape(NULL, s, (int)strlen(s));
    if (!e) TH_BUG("curl_easy_escape failed (out of memory?)");
    char *copy = xstrdup(e);
    curl_free(e);
    return copy;
}

/* Copies a header value (not NUL-terminated, n bytes) into a fixed field. */
static void copy_value(char *dst, size_t cap, const char *v, size_t n)
{
    snprintf(dst, cap, "%.*s", (int)(n < cap ? n : cap - 1), v);
}

static size_t on_header(char *p, size_t size, size_t nitems, void *arg)
{
    struct httpc *c = arg;
    size_t len = size * nitems;
    /* A status line starts a new response (a 1xx, or the answer to a request
     * curl resent): drop what the previous one said. */
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        resp_clear_headers(c->resp);
        return len;
    }
    const char *colon = memchr(p, ':', len);
    if (!colon) return len;
    size_t nlen = (size_t)(colon - p);
    const char *v = colon + 1;
    const char *end = p + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t vlen = (size_t)(end - v);

#define NAME_IS(lit) (nlen == sizeof(lit) - 1 && strncasecmp(p, lit, nlen) == 0)
    struct httpc_resp *r = c->resp;
    if (NAME_IS("Retry-After")) {
        char tmp[HTTPC_RETRY_AFTER_MAX];
        if (vlen < sizeof tmp) {
            memcpy(tmp, v, vlen);
            tmp[vlen] = '\0';
            r->retry_after_s = httpc_parse_retry_after(tmp);
        } else {
            r->retry_after_s = -1;
        }
    } else if (NAME_IS("Content-Type")) {
        copy_value(r->content_type, sizeof r->content_type, v, vlen);
    } else if (NAME_IS("X-RateLimit-Limit")) {
        copy_value(r->ratelimit_limit, sizeof r->ratelimit_limit, v, vlen);
    } else if (NAME_IS("X-RateLimit-Remaining")) {
        copy_value(r->ratelimit_remaining, sizeof r->ratelimit_remaining, v, vlen);
    } else if (NAME_IS("X-RateLimit-Reset")) {
        copy_value(r->ratelimit_reset, sizeof r->ratelimit_reset, v, vlen);
    }
#undef NAME_IS
    return len;
}

static size_t on_body(char *p, size_t size, size_t nitems, void *arg)
{
    struct httpc *c = arg;
    size_t len = size * nitems;
    if (buf_append(&c->resp->body, p, len) != 0) {
        c->too_big = 1;
        return 0; /* CURLE_WRITE_ERROR */
    }
    return len;
}

/*
 * Called once a connection is ready, just before the request goes out on it.
 * libcurl silently resends a request when a *reused* connection closes
 * without any answer (Curl_retry_request: meant for the server closing an
 * idle keep-alive connection), whatever the method. For a POST that the
 * server processed before dying, that is a duplicate invoice. So a write gets
 * one connection per attempt; a second one means libcurl is about to resend,
 * and we stop it: the outcome of the first send is unknown.
 */
static int on_prereq(void *arg, char *primary_ip, char *local_ip, int primary_port, int local_port)
{
    struct httpc *c = arg;
    c->prereqs++;
    if (c->prereqs > 1 && !c->idempotent) {
        c->no_resend = 1;
        return CURL_PREREQFUNC_ABORT;
    }
    return CURL_PREREQFUNC_OK;
}

/* Method names are tokens; anything else would corrupt the request line. */
static int valid_method(const char *m)
{
    size_t n = strlen(m);
    if (n == 0 || n > 16) return 0;
    for (size_t i = 0; i < n; i++)
        if (m[i] < 'A' || m[i] > 'Z') return 0;
    return 1;
}

/* Writes the start of the answer's body into out, printable and cut on a
 * UTF-8 boundary (service messages are often Arabic). */
static void body_snippet(const struct buf *body, char *out, size_t cap)
{
    size_t n = body->len;
    int cut = 0;
    if (n > HTTPC_ERR_BODY_MAX) {
        n = HTTPC_ERR_BODY_MAX;
        while (n > 0 && ((unsigned char)body->data[n] & 0xC0) == 0x80)
            n--;
        cut = 1;
    }
    if (n + 4 > cap) n = cap - 4;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)body->data[i];
        out[i] = ch < 0x20 || ch == 0x7f ? ' ' : (char)ch;
    }
    if (cut)
        memcpy(out + n, "...", 4);
    else
        out[n] = '\0';
}

static int status_error(const char *method, const char *url, int rc, const struct httpc_resp *r,
                        struct th_err *err)
{
    char snippet[HTTPC_ERR_BODY_MAX + 4] = "";
    char wait[48] = "";
    if (r->body.len) body_snippet(&r->body, snippet, sizeof snippet);
    if (r->retry_after_s >= 0)
        snprintf(wait, sizeof wait, " (retry after %ld s)", r->retry_after_s);
    return th_err_set(err, rc, "%s %s: HTTP %ld%s%s%s", method, url, r->status, wait,
                      snippet[0] ? ": " : "", snippet);
}

static int transport_error(struct httpc *c, const char *method, const char *url, CURLcode cc,
                           struct httpc_resp *r, struct th_err *err)
{
    const char *why = c->errbuf[0] ? c->errbuf : curl_easy_strerror(cc);
    switch (cc) {
    case CURLE_OUT_OF_MEMORY:
        TH_BUG("%s %s: libcurl ran out of memory", method, url);
    case CURLE_WRITE_ERROR:
    case CURLE_FILESIZE_EXCEEDED:
        if (cc == CURLE_FILESIZE_EXCEEDED || c->too_big)
            return th_err_set(err, TH_ETOOBIG,
                              "%s %s: HTTP %ld answer larger than %u bytes (HTTPC_MAX_BODY; the "
                              "largest legitimate answer is well under 4 MiB)",
                              method, url, r->status, HTTPC_MAX_BODY);
        break;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_FAILED_INIT:
        /* Nothing was sent and retrying cannot help: a bad URL in the
         * configuration or a bug. */
        return th_err_set(err, TH_EINVAL, "%s %s: cannot make this request (%s)", method, url, why);
    default:
        break;
    }
    if (c->no_resend)
        return th_err_set(err, TH_EUNKNOWN,
                          "%s %s: the connection closed after the request was sent, without an "
                          "answer: it may have been applied",
                          method, url);
    if (!r->sent)
        return th_err_set(err, TH_ETEMP, "%s %s: could not connect (%s)", method, url, why);
    if (c->idempotent)
        return th_err_set(err, TH_ETEMP, "%s %s: no answer after the request was sent (%s)", method,
                          url, why);
    return th_err_set(err, TH_EUNKNOWN,
                      "%s %s: no answer after the request was sent (%s): it may have been applied",
                      method, url, why);
}

int httpc_do(struct httpc *c, const char *method, const char *url, const char *const *headers,
             const char *body, size_t len, struct httpc_resp *resp, struct th_err *err)
{
    resp->status = 0;
    buf_reset(&resp->body);
    resp->body.max = HTTPC_MAX_BODY;
    resp_clear_headers(resp);
    resp->sent = 0;
    th_err_clear(err);
    if (!body && len) TH_BUG("httpc_do: %zu body bytes but no body", len);

    if (!valid_method(method))
        return th_err_set(err, TH_EINVAL, "HTTP method \"%.16s\" is not an upper-case token",
                          method);
    struct curl_slist *hl = NULL;
    for (size_t i = 0; headers && headers[i]; i++) {
        /* A CR or LF would let a value inject headers. Values are secrets
         * (keys, tokens), so the message names the position only. */
        if (strpbrk(headers[i], "\r\n")) {
            curl_slist_free_all(hl);
            return th_err_set(err, TH_EINVAL, "%s %s: request header %zu contains a line break",
                              method, url, i + 1);
        }
        struct curl_slist *n = curl_slist_append(hl, headers[i]);
        if (!n) TH_BUG("curl_slist_append failed (out of memory?)");
        hl = n;
    }
    /* No "Expect: 100-continue" round trip: our bodies are small. */
    struct curl_slist *n = curl_slist_append(hl, "Expect:");
    if (!n) TH_BUG("curl_slist_append failed (out of memory?)");
    hl = n;

    c->resp = resp;
    c->idempotent = is_idempotent(method);
    c->too_big = 0;
    c->prereqs = 0;
    c->no_resend = 0;
    c->errbuf[0] = '\0';

    /* curl_easy_reset keeps live connections, so keep-alive survives it, and
     * nothing from the previous request (a POST body) leaks into this one. */
    CURL *h = c->h;
    curl_easy_reset(h);
    SETOPT(h, CURLOPT_URL, url);
    SETOPT(h, CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(h, CURLOPT_NOSIGNAL, 1L);
    SETOPT(h, CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
    SETOPT(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
    SETOPT(h, CURLOPT_ERRORBUFFER, c->errbuf);
    SETOPT(h, CURLOPT_USERAGENT, "tarheel");
    SETOPT(h, CURLOPT_HTTPHEADER, hl);
    SETOPT(h, CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(h, CURLOPT_HEADERDATA, c);
    SETOPT(h, CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(h, CURLOPT_WRITEDATA, c);
    SETOPT(h, CURLOPT_PREREQFUNCTION, on_prereq);
    SETOPT(h, CURLOPT_PREREQDATA, c);
    /* Refuses early when Content-Length already says too much; the write
     * callback catches bodies of unannounced length. */
    SETOPT(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)HTTPC_MAX_BODY);

    if (strcmp(method, "HEAD") == 0) {
        SETOPT(h, CURLOPT_NOBODY, 1L);
    } else if (len > 0 || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
               strcmp(method, "PATCH") == 0) {
        /* Always send a body (maybe empty) with these, so Content-Length is
         * present: some servers answer 411 otherwise. */
        SETOPT(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        SETOPT(h, CURLOPT_POSTFIELDS, body ? body : "");
        if (strcmp(method, "POST") != 0) SETOPT(h, CURLOPT_CUSTOMREQUEST, method);
    } else if (strcmp(method, "GET") != 0) {
        SETOPT(h, CURLOPT_CUSTOMREQUEST, method);
    }

    CURLcode cc = curl_easy_perform(h);
    curl_slist_free_all(hl);
    c->resp = NULL;

    long status = 0, reqsize = 0, hdrsize = 0;
    curl_off_t up = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &reqsize);
    curl_easy_getinfo(h, CURLINFO_HEADER_SIZE, &hdrsize);
    curl_easy_getinfo(h, CURLINFO_SIZE_UPLOAD_T, &up);
    resp->status = status;
    resp->sent = reqsize > 0 || up > 0 || hdrsize > 0 || status > 0 || c->no_resend;
    /* Callers may treat the body as a C string even when it is empty. */
    if (!resp->body.data && buf_append(&resp->body, "", 0) != 0) TH_BUG("empty append failed");
    c->last_status = status;
    c->last_retry_after_s = resp->retry_after_s;

    if (cc != CURLE_OK) return transport_error(c, method, url, cc, resp, err);
    int rc = httpc_classify_status(method, status);
    if (rc) return status_error(method, url, rc, resp, err);
    return 0;
}
