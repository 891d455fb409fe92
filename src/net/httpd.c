/*
 * httpd — libmicrohttpd wrapper (see httpd.h).
 *
 * Design notes. MHD calls the access handler several times per request: once
 * with the headers, then with body chunks, then once more with no data. We
 * keep a per-connection `struct httpd_req` (allocated on the first call,
 * freed in the request-completed callback) that collects the body under the
 * cap. The user handler runs on the last call, so it always sees the whole
 * body. A body over the cap is answered 413 without calling the handler.
 * `drop` is implemented by returning MHD_NO, which makes MHD close the
 * connection without writing anything: to the client this is "empty reply"
 * or a reset, exactly the lost-answer fault the emulators need.
 * Suspension uses MHD_suspend_connection from inside the handler: MHD stops
 * polling the connection, MHD_resume_connection (safe from any thread, at
 * any time after the suspend) puts it back, and MHD then calls on_request
 * again with no data, which calls the handler again.
 */
#include "net/httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/err.h"
#include "core/xmalloc.h"

struct httpd {
    struct MHD_Daemon *mhd;
    int can_suspend;
    httpd_handler_fn handler;
    void *arg;
    size_t max_body;
    uint16_t port;
};

struct httpd_req {
    struct MHD_Connection *conn;
    const char *method;
    char *path;
    struct buf body;
    int too_big;
    size_t nargs;
    const char *keys[HTTPD_MAX_ARGS];
    const char *vals[HTTPD_MAX_ARGS];
    char peer[INET6_ADDRSTRLEN];
    int can_suspend; /* the daemon's */
    int args_read;   /* the query arguments were collected (first call) */
    int suspended;   /* set by httpd_req_suspend during the current call */
    void *ctx;       /* the handler's, between calls */
    void (*ctx_free)(void *);
};

/* ---------------------------------------------------------------------- */
/* Request accessors                                                        */

const char *httpd_req_method(const struct httpd_req *r)
{
    return r->method;
}

const char *httpd_req_path(const struct httpd_req *r)
{
    return r->path;
}

const char *httpd_req_header(const struct httpd_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *httpd_req_arg(const struct httpd_req *r, const char *key)
{
    for (size_t i = 0; i < r->nargs; i++)
        if (strcmp(r->keys[i], key) == 0) return r->vals[i];
    return NULL;
}

size_t httpd_req_nargs(const struct httpd_req *r)
{
    return r->nargs;
}

void httpd_req_arg_at(const struct httpd_req *r, size_t i, const char **key, const char **val)
{
    *key = i < r->nargs ? r->keys[i] : NULL;
    *val = i < r->nargs ? r->vals[i] : NULL;
}

const char *httpd_req_body(const struct httpd_req *r, size_t *len)
{
    if (len) *len = r->body.len;
    return buf_cstr(&r->body);
}

const char *httpd_req_peer(const struct httpd_req *r)
{
    return r->peer;
}

/* The accessors take the handler's const pointer; the request is ours. */
int httpd_req_suspend(const struct httpd_req *cr)
{
    struct httpd_req *r = (struct httpd_req *)cr;
    if (!r->can_suspend) return -1;
    r->suspended = 1;
    MHD_suspend_connection(r->conn);
    return 0;
}

void httpd_req_resume(const struct httpd_req *r)
{
    MHD_resume_connection(r->conn);
}

void httpd_req_set_ctx(const struct httpd_req *cr, void *ctx, void (*free_fn)(void *))
{
    struct httpd_req *r = (struct httpd_req *)cr;
    r->ctx = ctx;
    r->ctx_free = free_fn;
}

void *httpd_req_ctx(const struct httpd_req *r)
{
    return r->ctx;
}

/* ---------------------------------------------------------------------- */
/* Response helpers                                                         */

static void resp_init(struct httpd_resp *resp)
{
    memset(resp, 0, sizeof *resp);
    resp->status = 200;
    buf_init(&resp->body, 0);
    snprintf(resp->content_type, sizeof resp->content_type, "application/json");
}

static void resp_release(struct httpd_resp *resp)
{
    buf_release(&resp->body);
    for (int i = 0; i < resp->nheaders; i++) {
        free(resp->headers[i][0]);
        free(resp->headers[i][1]);
    }
    resp->nheaders = 0;
}

void httpd_resp_set(struct httpd_resp *resp, int status, const char *content_type,
                    const char *body, size_t len)
{
    resp->status = status;
    if (content_type)
        snprintf(resp->content_type, sizeof resp->content_type, "%s", content_type);
    buf_reset(&resp->body);
    if (body && buf_append(&resp->body, body, len) != 0) TH_BUG("uncapped buffer refused data");
}

void httpd_resp_text(struct httpd_resp *resp, int status, const char *text)
{
    httpd_resp_set(resp, status, "text/plain; charset=utf-8", text, strlen(text));
}

void httpd_resp_header(struct httpd_resp *resp, const char *name, const char *value)
{
    if (resp->nheaders >= HTTPD_MAX_RESP_HEADERS) return;
    resp->headers[resp->nheaders][0] = xstrdup(name);
    resp->headers[resp->nheaders][1] = xstrdup(value);
    resp->nheaders++;
}

/* ---------------------------------------------------------------------- */
/* MHD callbacks                                                            */

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    struct httpd_req *r = cls;
    if (r->nargs >= HTTPD_MAX_ARGS) return MHD_NO; /* stop iterating; extra args ignored */
    r->keys[r->nargs] = key;
    r->vals[r->nargs] = value ? value : "";
    r->nargs++;
    return MHD_YES;
}

static enum MHD_Result send_resp(struct MHD_Connection *conn, struct httpd_resp *resp)
{
    struct MHD_Response *m = MHD_create_response_from_buffer(resp->body.len, resp->body.data,
                                                             MHD_RESPMEM_MUST_COPY);
    if (!m) return MHD_NO;
    MHD_add_response_header(m, MHD_HTTP_HEADER_CONTENT_TYPE, resp->content_type);
    for (int i = 0; i < resp->nheaders; i++)
        MHD_add_response_header(m, resp->headers[i][0], resp->headers[i][1]);
    enum MHD_Result rc = MHD_queue_response(conn, (unsigned)resp->status, m);
    MHD_destroy_response(m);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls)
{
    struct httpd *d = cls;
    struct httpd_req *r = *con_cls;

    if (!r) {
        r = xcalloc(1, sizeof *r);
        r->conn = conn;
        r->method = method;
        r->path = xstrdup(url);
        r->can_suspend = d->can_suspend;
        buf_init(&r->body, d->max_body);
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (ci && ci->client_addr) {
            const struct sockaddr *sa = ci->client_addr;
            if (sa->sa_family == AF_INET)
                inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, r->peer,
                          sizeof r->peer);
            else if (sa->sa_family == AF_INET6)
                inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, r->peer,
                          sizeof r->peer);
        }
        /* Refuse early when the declared length is already over the cap. */
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > d->max_body) r->too_big = 1;
        *con_cls = r;
        return MHD_YES;
    }

    if (*upload_size) {
        if (!r->too_big && buf_append(&r->body, upload_data, *upload_size) != 0) r->too_big = 1;
        *upload_size = 0; /* consumed (or discarded when too big) */
        return MHD_YES;
    }

    struct httpd_resp resp;
    resp_init(&resp);
    enum MHD_Result rc;
    if (r->too_big) {
        /* Both answer shapes in one: the webhook routes' {"ok","code",
         * "message"} and the REST API's {"error":{code,message,remedy}}, as
         * the body was refused before either could be chosen. */
        char what[160], msg[640];
        snprintf(what, sizeof what,
                 "the request body is larger than %zu bytes, the limit of one webhook delivery "
                 "or API request", d->max_body);
        snprintf(msg, sizeof msg,
                 "{\"ok\":false,\"code\":\"%s\",\"message\":\"%s\",\"limit_bytes\":%zu,"
                 "\"error\":{\"code\":\"%s\",\"message\":\"%s\",\"remedy\":\"%s\"}}",
                 th_err_name(TH_ETOOBIG), what, d->max_body, th_err_name(TH_ETOOBIG), what,
                 th_err_todo(TH_ETOOBIG));
        httpd_resp_set(&resp, 413, "application/json", msg, strlen(msg));
        rc = send_resp(conn, &resp);
    } else {
        if (!r->args_read) MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_arg, r);
        r->args_read = 1;
        d->handler(d->arg, r, &resp);
        if (r->suspended) {
            /* Answered by a later call, after httpd_req_resume. */
            r->suspended = 0;
            rc = MHD_YES;
        } else {
            rc = resp.drop ? MHD_NO : send_resp(conn, &resp);
        }
    }
    resp_release(&resp);
    return rc;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct httpd_req *r = *con_cls;
    if (!r) return;
    if (r->ctx && r->ctx_free) r->ctx_free(r->ctx);
    buf_release(&r->body);
    free(r->path);
    free(r);
    *con_cls = NULL;
}

/* Silences MHD's own stderr chatter for expected events (closed sockets). */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
}

/* ---------------------------------------------------------------------- */

static int parse_listen(const char *listen, struct sockaddr_in *sa, struct th_err *err)
{
    char host[64];
    const char *colon = listen ? strrchr(listen, ':') : NULL;
    if (!colon || (size_t)(colon - listen) >= sizeof host)
        return th_err_set(err, TH_EINVAL, "listen address '%s' is not HOST:PORT (for example "
                          "127.0.0.1:8080)", listen ? listen : "");
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535)
        return th_err_set(err, TH_EINVAL, "listen port in '%s' must be 0..65535", listen);
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (strcmp(host, "localhost") == 0) snprintf(host, sizeof host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
        return th_err_set(err, TH_EINVAL, "listen address '%s': '%s' is not an IPv4 address",
                          listen, host);
    return 0;
}

int httpd_open(struct httpd **out, const struct httpd_config *cfg, struct th_err *err)
{
    struct sockaddr_in sa;
    int rc = parse_listen(cfg->listen, &sa, err);
    if (rc) return rc;

    struct httpd *d = xcalloc(1, sizeof *d);
    d->handler = cfg->handler;
    d->arg = cfg->arg;
    d->max_body = cfg->max_body ? cfg->max_body : HTTPD_MAX_BODY_DEFAULT;

    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    /* MHD cannot suspend a connection that has a thread of its own. */
    if (cfg->threads == 0)
        flags |= MHD_USE_THREAD_PER_CONNECTION;
    else
        flags |= MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME;
    d->can_suspend = cfg->threads != 0;
    unsigned timeout = cfg->conn_timeout_s ? cfg->conn_timeout_s : 30;

    if (cfg->threads > 1)
        d->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, d, MHD_OPTION_SOCK_ADDR, &sa,
                                  MHD_OPTION_NOTIFY_COMPLETED, on_completed, d,
                                  MHD_OPTION_CONNECTION_TIMEOUT, timeout,
                                  MHD_OPTION_THREAD_POOL_SIZE, cfg->threads,
                                  MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
    else
        d->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, d, MHD_OPTION_SOCK_ADDR, &sa,
                                  MHD_OPTION_NOTIFY_COMPLETED, on_completed, d,
                                  MHD_OPTION_CONNECTION_TIMEOUT, timeout,
                                  MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
    if (!d->mhd) {
        /* MHD keeps no reason: ask the socket layer why, with a bind of our
         * own (nobody listens on a port a failed start left). */
        int why = 0, fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd >= 0) {
            int one = 1;
            (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            if (bind(fd, (const struct sockaddr *)&sa, sizeof sa) != 0) why = errno;
            close(fd);
        }
        free(d);
        unsigned port = ntohs(sa.sin_port);
        if (why == EADDRINUSE)
            return th_err_set(err, TH_ELISTEN,
                              "cannot listen on %s: port %u is already in use by another process "
                              "(another tarheel, or another program)",
                              cfg->listen, port);
        if (why == EACCES || why == EPERM)
            return th_err_set(err, TH_ELISTEN,
                              "cannot listen on %s: port %u is not permitted to this user (ports "
                              "below 1024 need privileges)",
                              cfg->listen, port);
        if (why == EADDRNOTAVAIL)
            return th_err_set(err, TH_ELISTEN,
                              "cannot listen on %s: no network interface of this machine has that "
                              "address (use 127.0.0.1 or 0.0.0.0)",
                              cfg->listen);
        return th_err_set(err, TH_ELISTEN,
                          "cannot listen on %s (port %u in use, or not permitted)", cfg->listen,
                          port);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d->mhd, MHD_DAEMON_INFO_BIND_PORT);
    d->port = info ? info->port : ntohs(sa.sin_port);
    *out = d;
    return 0;
}

void httpd_close(struct httpd *d)
{
    if (!d) return;
    MHD_stop_daemon(d->mhd);
    free(d);
}

uint16_t httpd_port(const struct httpd *d)
{
    return d->port;
}
