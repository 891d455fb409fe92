/*
 * server — tarheel's HTTP front: webhook intake, health, and the route to the
 * REST API (api.h) and the dashboard's files (web.h).
 *
 * Owns the route table and the intake rules (STYLE C9): a delivery is
 * verified with the strategy configured for its store (or the app's own
 * secret for a store not yet connected), its raw body, dedupe key and the
 * job it causes are committed in one transaction, and only then is it
 * answered 200. Bad signature → 401, malformed → 400, oversized → 413
 * (httpd), store cannot commit → 503 so the platform retries. It never calls
 * a platform or Qoyod: the worker does.
 */
#ifndef TH_HTTP_SERVER_H
#define TH_HTTP_SERVER_H

#include <stdint.h>

#include "core/err.h"
#include "http/api.h"
#include "store/store.h"

/* Webhook bodies larger than this are refused with 413: the largest order
 * payload seen is ~200 KiB; 1 MiB bounds memory per connection. */
#define SERVER_MAX_BODY (1024u * 1024)
/* HTTP threads. The intake sets a delivery aside while its commit runs, so
 * no thread waits for an fsync: threads do CPU work (parse, verify, answer)
 * and the few calls that still block, for at most one commit (a few ms):
 * the REST API's store reads and a store's first delivery after its cache
 * entry expired. A few threads suffice; on the 2-core VM bench/ingest
 * measured 4, 8 and 64 within noise of each other, 4 with the least CPU per
 * request and the narrowest spread (docs/BENCHMARKS.md). `serve --threads`
 * overrides it. */
#define SERVER_THREADS_DEFAULT 4

/* App-level settings per platform: what a delivery from a store that is not
 * connected yet (Easy Mode install) is verified with, and where its API is. */
struct server_app {
    const char *webhook_secret;   /* the app's webhook secret (secret) */
    const char *webhook_strategy; /* "signature" (default) | "token" */
    const char *api_base;         /* "https://api.salla.dev/admin/v2" */
};

struct server_config {
    const char *listen;           /* "127.0.0.1:8080" */
    struct store *store;          /* borrowed */
    unsigned threads;             /* HTTP threads; 0 = SERVER_THREADS_DEFAULT */
    /* Seconds a connection may stay idle (or half-sent) before it is
     * closed; 0 = httpd's 30. libmicrohttpd keeps a connection whose
     * request is incomplete until then, even after the client shut its
     * side, so this bounds what a slow or broken client can hold. */
    unsigned conn_timeout_s;
    struct server_app salla;
    struct server_app zid;
    /* Defaults given to a connection created by an Easy Mode install. */
    const char *qoyod_base;
    const char *qoyod_api_key;
    int64_t inventory_id;
    /* The REST API under /api/ (api.h; borrowed, must outlive the server).
     * NULL: /api/ answers 403 as when no API token is configured. */
    struct api *api;
    /* Stores connected from the dashboard: /oauth/<platform>/callback
     * (connect.h; borrowed, NULL: that route answers 404). */
    struct connect *connect;
};

struct server;

int server_open(struct server **out, const struct server_config *cfg,
                struct th_err *err) TH_MUST_CHECK;
void server_close(struct server *s);
uint16_t server_port(const struct server *s);

#endif
