/*
 * api — the REST API under /api/v1 (JSON): the CLI's operations for the
 * dashboard and for scripts. Connections and their settings, orders with
 * their transfer state and history, queuing orders by hand and retrying the
 * failed ones. docs/openapi.yaml describes every route.
 *
 * Owns the API's routes, its bearer-token check and the JSON it reads and
 * writes (one error shape: {"error":{"code","message","remedy"}} with codes
 * from core/err.h; money as integer halalas plus a decimal string, never
 * floating point). It decides nothing about orders: what a request by hand
 * means is worker/manage.c's, shared with the CLI, and the store does the
 * rest. It never returns or logs a secret (platform tokens, webhook
 * secrets, Qoyod API keys, API tokens).
 *
 * Who may call it: scripts with an `Authorization: Bearer` token, and the
 * dashboard with a session (POST /api/v1/login with a user's name and
 * password, `tarheel user add`; the answer sets the HttpOnly, SameSite=Lax
 * cookie th_session and gives a CSRF token, which every request other than
 * GET must send back in X-CSRF-Token). A request with neither gets 401 (with
 * WWW-Authenticate); with no token configured and no session, 403 with how
 * to configure one. Logins are limited per peer address and per user name
 * (http/session.h) and answered 429 with Retry-After past the limit. Tokens are compared as SHA-256
 * digests with CRYPTO_memcmp, against every configured token, so the time
 * taken says nothing about how much of a token matched.
 */
#ifndef TH_HTTP_API_H
#define TH_HTTP_API_H

#include <stddef.h>

#include "core/err.h"
#include "http/connect.h"
#include "net/httpd.h"
#include "store/store.h"

/* Requests whose path starts with this belong to the API. */
#define API_PREFIX "/api/"
/* Tokens configured at once: one per dashboard user or script is a handful;
 * 64 bounds the (constant-time, all-tokens) comparison per request. */
#define API_MAX_TOKENS 64
/* Token length: 16 characters (e.g. `openssl rand -hex 8`) is the shortest
 * that is not guessable online; 512 is far above any generated token. */
#define API_MIN_TOKEN_LEN 16
#define API_MAX_TOKEN_LEN 512
/* Orders per page of GET /api/v1/orders: the default fits one dashboard
 * screen; the maximum keeps one answer under ~1 MiB. */
#define API_PAGE_DEFAULT 50
#define API_PAGE_MAX 500

struct api_config {
    struct store *store;    /* borrowed; must outlive the api */
    const char *token_file; /* one token per line ('#' comments, blank lines ok); NULL: none */
    const char *token;      /* one more token (from $TARHEEL_API_TOKEN); NULL or "": none */
    /* Where a Qoyod API key is checked when it is not yet a connection's
     * (the dashboard's Connect page); NULL: QOYOD_BASE_DEFAULT. */
    const char *qoyod_base;
    /* Connecting stores from the dashboard (http/connect.h; borrowed, may be
     * NULL: POST /connect/{platform} then says how to turn it on). */
    struct connect *connect;
};

struct api;

/*
 * Reads the tokens and prepares the API. Returns 0 with *out set (api_close
 * is mandatory), or TH_ECONFIG / TH_EIO / TH_ELIMIT naming the file, line
 * and what is wrong (too short, a character outside the bearer-token set
 * A-Z a-z 0-9 - . _ ~ + / =, too many tokens). No tokens at all is not an
 * error: the API then answers 403 (see above).
 */
int api_open(struct api **out, const struct api_config *cfg, struct th_err *err) TH_MUST_CHECK;
/* Frees the API (and wipes the token digests). NULL is a no-op. */
void api_close(struct api *a);

/* How many tokens are configured (0: the API answers 403). */
size_t api_token_count(const struct api *a);

/*
 * Answers one request whose path starts with API_PREFIX. a may be NULL (no
 * API configured: 403 as for no tokens). Called on the HTTP server's
 * threads, possibly concurrently; the api is read-only after api_open but
 * for its background pulls of old orders (POST /pulls), which have their own
 * lock and are stopped by api_close (each keeps its progress).
 */
void api_handle(struct api *a, const struct httpd_req *req, struct httpd_resp *resp);

/* The route table (POST /login, handled before it, aside): how many routes,
 * and route i's method and pattern (path segments after /api/v1/, "*" for
 * one segment). For tests that must cover every route (tenant isolation);
 * -1 past the end. */
size_t api_route_count(void);
int api_route_at(size_t i, const char **method, const char **pattern);

#endif
