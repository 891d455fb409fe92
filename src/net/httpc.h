/*
 * httpc — the HTTP client every outbound call goes through (libcurl).
 *
 * Owns the classification of remote failures (STYLE C7): each call ends in
 * success (2xx), TH_ETEMP (safe to retry: nothing was processed), TH_EPERM
 * (the service refused; retrying the same request is pointless) or
 * TH_EUNKNOWN (the request may have been applied: timeout or lost answer after
 * sending a write). It never retries by itself; the scheduler decides. One
 * struct httpc is one keep-alive connection cache and must be used by one
 * thread at a time. Redirects are never followed (a 3xx is returned as is).
 *
 * Classification, in order:
 *   no connection made (DNS, refused, connect timeout)   -> TH_ETEMP
 *   transport failure after the request was sent:
 *       idempotent method (GET, HEAD, PUT, DELETE)         -> TH_ETEMP
 *       otherwise (POST, PATCH)                            -> TH_EUNKNOWN
 *   2xx                                                    -> 0
 *   408, 425, 429, 503                                     -> TH_ETEMP
 *   other 5xx: idempotent -> TH_ETEMP, otherwise          -> TH_EUNKNOWN
 *   401, 403                                               -> TH_EAUTH
 *   other 3xx, 4xx                                         -> TH_EPERM
 */
#ifndef TH_NET_HTTPC_H
#define TH_NET_HTTPC_H

#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"

/* Response bodies larger than this are refused (TH_ETOOBIG): the largest
 * legitimate answer is a 100-item page of products, well under 4 MiB. */
#define HTTPC_MAX_BODY (16u * 1024 * 1024)

struct httpc_config {
    long connect_timeout_ms; /* 0 = 5000 */
    long timeout_ms;         /* whole request; 0 = 30000 */
};

struct httpc_resp {
    long status;        /* HTTP status, 0 when no response arrived */
    struct buf body;    /* response body (capped at HTTPC_MAX_BODY) */
    long retry_after_s; /* Retry-After in seconds (delta or HTTP date), -1 if absent */
    char content_type[128];
    /* A few headers callers need, verbatim ("" when absent). */
    char ratelimit_limit[32];     /* X-RateLimit-Limit */
    char ratelimit_remaining[32]; /* X-RateLimit-Remaining */
    char ratelimit_reset[32];     /* X-RateLimit-Reset */
    int sent;           /* 1 when the request was (at least partly) sent */
};

struct httpc;

/* Creates a client. cfg may be NULL for defaults. Returns new; httpc_free. */
struct httpc *httpc_new(const struct httpc_config *cfg);
void httpc_free(struct httpc *c);

/* Initialises / releases a response (embedded in the caller's memory). */
void httpc_resp_init(struct httpc_resp *r);
void httpc_resp_release(struct httpc_resp *r);

/*
 * Performs one request. headers is a NULL-terminated array of "Name: value"
 * strings (borrowed; may be NULL). body may be NULL (len 0). The response is
 * stored in resp (reset first). Returns 0 on 2xx, otherwise the class above
 * with err describing method, URL, status and the start of the body.
 */
int httpc_do(struct httpc *c, const char *method, const char *url, const char *const *headers,
             const char *body, size_t len, struct httpc_resp *resp, struct th_err *err) TH_MUST_CHECK;

/* The HTTP status (0 when no answer arrived) and Retry-After (seconds, -1
 * when absent) of the last request c performed, kept after the caller has
 * released its response. For callers that reach HTTP through an adapter
 * which returns only a code: a 429 is TH_ETEMP like a 503, and this says how
 * long the service asked to wait. Both 0 / -1 before the first request. */
void httpc_last_answer(const struct httpc *c, long *status, long *retry_after_s);

/* The classification of an HTTP status for a method (pure; see above). */
int httpc_classify_status(const char *method, long status);

/* Parses a Retry-After value (seconds, or an HTTP date relative to now).
 * Returns seconds >= 0, or -1 when unparseable. */
long httpc_parse_retry_after(const char *v);

/* Percent-encodes s for use in a URL query (RFC 3986 unreserved kept).
 * Returns new text (free()). */
char *httpc_escape(const char *s);

#endif
