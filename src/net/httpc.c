/*
 * httpc — libcurl client with failure classification (see httpc.h).
 *
 * One easy handle per struct httpc keeps its connection cache across
 * requests (keep-alive). Options are set afresh for every request after
 * curl_easy_reset, which keeps live connections. Whether the request left
 * this process before a transport failure is read from
 * CURLINFO_REQUEST_SIZE: bytes sent means the server may have acted on it.
 */
#include "net/httpc.h"

#include <ctype.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/xmalloc.h"

struct httpc {
    CURL *h;
    struct httpc_config cfg;
};

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct httpc *httpc_new(const struct httpc_config *cfg)
{
    pthread_once(&once, global_init);
    struct httpc *c = xcalloc(1, sizeof *c);
    if (cfg) c->cfg = *cfg;
    if (c->cfg.connect_timeout_ms <= 0) c->cfg.connect_timeout_ms = 5000;
    if (c->cfg.timeout_ms <= 0) c->cfg.timeout_ms = 30000;
    c->h = curl_easy_init();
    if (!c->h) TH_BUG("curl_easy_init failed");
    return c;
}

void httpc_free(struct httpc *c)
{
    if (!c) return;
    curl_easy_cleanup(c->h);
    free(c);
}

void httpc_resp_init(struct httpc_resp *r)
{
    memset(r, 0, sizeof *r);
    buf_init(&r->body, HTTPC_MAX_BODY);
    r->retry_after_s = -1;
}

void httpc_resp_release(struct httpc_resp *r)
{
    buf_release(&r->body);
}

static int idempotent(const char *method)
{
    return !strcasecmp(method, "GET") || !strcasecmp(method, "HEAD") ||
           !strcasecmp(method, "PUT") || !strcasecmp(method, "DELETE") ||
           !strcasecmp(method, "OPTIONS");
}

int httpc_classify_status(const char *method, long status)
{
    if (status >= 200 && status < 300) return 0;
    if (status == 408 || status == 425 || status == 429 || status == 503) return TH_ETEMP;
    if (status >= 500) return idempotent(method) ? TH_ETEMP : TH_EUNKNOWN;
    if (status == 401 || status == 403) return TH_EAUTH;
    return TH_EPERM;
}

long httpc_parse_retry_after(const char *v)
{
    if (!v) return -1;
    while (isspace((unsigned char)*v)) v++;
    if (!*v) return -1;
    if (isdigit((unsigned char)*v)) {
        char *end;
        long s = strtol(v, &end, 10);
        while (isspace((unsigned char)*end)) end++;
        return *end ? -1 : s;
    }
    time_t t = curl_getdate(v, NULL);
    if (t < 0) return -1;
    long d = (long)(t - time(NULL));
    return d < 0 ? 0 : d;
}

char *httpc_escape(const char *s)
{
    pthread_once(&once, global_init);
    char *e = curl_easy_escape(NULL, s, 0);
    if (!e) TH_BUG("curl_easy_escape failed");
    char *copy = xstrdup(e);
    curl_free(e);
    return copy;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct httpc_resp *r = arg;
    if (buf_append(&r->body, p, size * n) != 0) return 0; /* over the cap: abort */
    return size * n;
}

static void copy_value(char *dst, size_t dn, const char *v, size_t len)
{
    while (len && isspace((unsigned char)*v)) v++, len--;
    while (len && isspace((unsigned char)v[len - 1])) len--;
    if (len >= dn) len = dn - 1;
    memcpy(dst, v, len);
    dst[len] = '\0';
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct httpc_resp *r = arg;
    size_t len = size * n;
    const char *colon = memchr(p, ':', len);
    if (!colon) {
        if (len > 5 && !strncmp(p, "HTTP/", 5)) { /* a new response (after 100): reset */
            r->content_type[0] = r->ratelimit_limit[0] = '\0';
            r->ratelimit_remaining[0] = r->ratelimit_reset[0] = '\0';
            r->retry_after_s = -1;
        }
        return len;
    }
    size_t nl = (size_t)(colon - p);
    const char *v = colon + 1;
    size_t vl = len - nl - 1;
#define IS(name) (nl == strlen(name) && !strncasecmp(p, name, nl))
    if (IS("Content-Type")) {
        copy_value(r->content_type, sizeof r->content_type, v, vl);
    } else if (IS("X-RateLimit-Limit")) {
        copy_value(r->ratelimit_limit, sizeof r->ratelimit_limit, v, vl);
    } else if (IS("X-RateLimit-Remaining")) {
        copy_value(r->ratelimit_remaining, sizeof r->ratelimit_remaining, v, vl);
    } else if (IS("X-RateLimit-Reset")) {
        copy_value(r->ratelimit_reset, sizeof r->ratelimit_reset, v, vl);
    } else if (IS("Retry-After")) {
        char tmp[128];
        copy_value(tmp, sizeof tmp, v, vl);
        r->retry_after_s = httpc_parse_retry_after(tmp);
    }
#undef IS
    return len;
}

/* The start of a body for an error message: one line, at most ~200 bytes. */
static void snippet(const struct buf *b, char *out, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < b->len && k + 4 < n && i < 200; i++) {
        unsigned char c = (unsigned char)b->data[i];
        out[k++] = c < 0x20 ? ' ' : (char)c;
    }
    if (b->len > 200 && k + 4 < n) out[k++] = '.', out[k++] = '.', out[k++] = '.';
    out[k] = '\0';
}

int httpc_do(struct httpc *c, const char *method, const char *url, const char *const *headers,
             const char *body, size_t len, struct httpc_resp *resp, struct th_err *err)
{
    buf_reset(&resp->body);
    resp->status = 0;
    resp->sent = 0;
    resp->retry_after_s = -1;
    resp->content_type[0] = resp->ratelimit_limit[0] = '\0';
    resp->ratelimit_remaining[0] = resp->ratelimit_reset[0] = '\0';

    CURL *h = c->h;
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->cfg.connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->cfg.timeout_ms);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, resp);
    if (!strcasecmp(method, "GET")) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else if (!strcasecmp(method, "HEAD")) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? len : 0));
    }
    struct curl_slist *hl = curl_slist_append(NULL, "Expect:");
    for (size_t i = 0; headers && headers[i]; i++) hl = curl_slist_append(hl, headers[i]);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);

    CURLcode cc = curl_easy_perform(h);
    curl_slist_free_all(hl);
    long reqsize = 0;
    curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &reqsize);
    resp->sent = reqsize > 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);

    if (cc == CURLE_WRITE_ERROR && resp->body.len >= HTTPC_MAX_BODY - 65536)
        return th_err_set(err, TH_ETOOBIG, "%s %s: the answer is larger than %u bytes", method,
                          url, HTTPC_MAX_BODY);
    if (cc != CURLE_OK) {
        resp->status = 0;
        int connected = cc != CURLE_COULDNT_CONNECT && cc != CURLE_COULDNT_RESOLVE_HOST &&
                        cc != CURLE_COULDNT_RESOLVE_PROXY;
        if (!connected || !resp->sent)
            return th_err_set(err, TH_ETEMP, "%s %s: could not reach the service (%s)", method,
                              url, curl_easy_strerror(cc));
        if (idempotent(method))
            return th_err_set(err, TH_ETEMP, "%s %s: no answer (%s)", method, url,
                              curl_easy_strerror(cc));
        return th_err_set(err, TH_EUNKNOWN,
                          "%s %s: no answer after the request was sent (%s): it may have been "
                          "applied",
                          method, url, curl_easy_strerror(cc));
    }
    int cls = httpc_classify_status(method, resp->status);
    if (cls) {
        char snip[256];
        snippet(&resp->body, snip, sizeof snip);
        th_err_set(err, cls, "%s %s: HTTP %ld%s%s", method, url, resp->status, snip[0] ? ": " : "",
                   snip);
    }
    return cls;
}
