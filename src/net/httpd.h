/*
 * httpd — the HTTP server wrapper (libmicrohttpd) used by the daemon and the
 * emulators.
 *
 * Owns the listening socket, request body collection with a cap (413 past
 * it), and the translation between MHD and a plain request/response pair. A
 * handler is called once per complete request, on one of the server's
 * threads, possibly concurrently; it fills the response or asks for the
 * connection to be dropped without an answer (used to emulate lost answers
 * and resets). It must not block forever. This module knows no routes.
 */
#ifndef TH_NET_HTTPD_H
#define TH_NET_HTTPD_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

/* Default request body cap: the largest platform webhook seen is an order
 * with ~100 items (~200 KiB); 1 MiB leaves room and bounds memory. */
#define HTTPD_MAX_BODY_DEFAULT (1024u * 1024)
/* Query arguments kept per request: a Ransack query uses a handful. */
#define HTTPD_MAX_ARGS 64
/* Response headers a handler may add. */
#define HTTPD_MAX_RESP_HEADERS 16

struct httpd;
struct httpd_req;

struct httpd_resp {
    int status;               /* default 200 */
    struct buf body;          /* the body (no cap: we generate it) */
    char content_type[64];    /* default "application/json" */
    int nheaders;
    char *headers[HTTPD_MAX_RESP_HEADERS][2]; /* owned name/value copies */
    int drop;                 /* 1: close the connection, send nothing */
};

/* Called once per request. arg is httpd_config.arg. */
typedef void (*httpd_handler_fn)(void *arg, const struct httpd_req *req, struct httpd_resp *resp);

struct httpd_config {
    const char *listen;       /* "127.0.0.1:8080"; port 0 picks a free port */
    size_t max_body;          /* 0 = HTTPD_MAX_BODY_DEFAULT */
    unsigned threads;         /* 0 = a thread per connection; N = a pool of N */
    unsigned conn_timeout_s;  /* idle connection timeout; 0 = 30 */
    httpd_handler_fn handler;
    void *arg;
};

/* Starts serving. On success *out is set and httpd_close is mandatory; on
 * failure nothing is left to undo. */
int httpd_open(struct httpd **out, const struct httpd_config *cfg, struct th_err *err) TH_MUST_CHECK;

/* Stops accepting, waits for handlers in flight, frees everything. NULL ok. */
void httpd_close(struct httpd *d);

/* The port actually bound (useful after asking for port 0). */
uint16_t httpd_port(const struct httpd *d);

/* Request accessors; all returned strings are borrowed until the handler
 * returns. */
const char *httpd_req_method(const struct httpd_req *r); /* "GET" */
const char *httpd_req_path(const struct httpd_req *r);   /* "/2.0/products", decoded */
const char *httpd_req_header(const struct httpd_req *r, const char *name); /* case-insensitive */
const char *httpd_req_arg(const struct httpd_req *r, const char *key);     /* first query value */
size_t httpd_req_nargs(const struct httpd_req *r);
void httpd_req_arg_at(const struct httpd_req *r, size_t i, const char **key, const char **val);
const char *httpd_req_body(const struct httpd_req *r, size_t *len); /* NUL-terminated */
const char *httpd_req_peer(const struct httpd_req *r);  /* "127.0.0.1" */

/*
 * Answering later. A handler that waits for something slow (the intake waits
 * for a group commit) need not hold its thread meanwhile: it calls
 * httpd_req_suspend, hands r to whoever does the work, and returns (resp is
 * then ignored). That one calls httpd_req_resume(r) once, from any thread,
 * even before the handler returned; httpd then calls the handler again for
 * the same request, on one of its threads, and that call answers as usual.
 * r and its body stay valid until then. A suspended connection is not
 * watched: a client that went away is noticed after the resume.
 * httpd_close must not be called while a request is suspended (resume it
 * first).
 * httpd_req_suspend returns 0, or -1 when this server cannot suspend (a
 * thread per connection, httpd_config.threads == 0): then the handler
 * answers now.
 * A handler tells its two calls apart by httpd_req_ctx: NULL until it sets
 * a pointer with httpd_req_set_ctx, which httpd frees with free_fn (may be
 * NULL) when the request ends, however it ends.
 */
int httpd_req_suspend(const struct httpd_req *r);
void httpd_req_resume(const struct httpd_req *r);
void httpd_req_set_ctx(const struct httpd_req *r, void *ctx, void (*free_fn)(void *));
void *httpd_req_ctx(const struct httpd_req *r);

/* Response helpers. Each replaces the body. */
void httpd_resp_set(struct httpd_resp *resp, int status, const char *content_type,
                    const char *body, size_t len);
void httpd_resp_text(struct httpd_resp *resp, int status, const char *text);
/* Adds a header (copied). Silently ignores more than HTTPD_MAX_RESP_HEADERS. */
void httpd_resp_header(struct httpd_resp *resp, const char *name, const char *value);

#endif
