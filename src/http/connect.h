/*
 * connect — connecting a Salla or Zid store from the dashboard: the OAuth
 * authorization-code flow run by `tarheel serve` itself, instead of the
 * terminal's `tarheel connect <platform> --oauth`.
 *
 * Owns the pending authorizations (a random state per attempt, kept in
 * memory for CONNECT_STATE_TTL_S, used once) and the callback route
 * /oauth/<platform>/callback. On the callback it trades the code for the
 * store's tokens, asks the platform which store they belong to, saves the
 * connection (a known store keeps its settings; only its tokens, name and
 * the Qoyod key and location given at the start change), registers the
 * store's order webhooks where the platform wants that (Zid), and sends the
 * browser back to the dashboard's Connect page with the outcome. It never
 * logs or shows a token or secret.
 */
#ifndef TH_HTTP_CONNECT_H
#define TH_HTTP_CONNECT_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "model/order.h"
#include "net/httpd.h"
#include "store/store.h"

/* An authorization must come back within 15 minutes (the platforms' own
 * codes live 10). At most CONNECT_PENDING_MAX are pending at once; past
 * that the oldest is forgotten. */
#define CONNECT_STATE_TTL_S (15 * 60)
#define CONNECT_PENDING_MAX 64

/* One platform's app, as `serve` was given it (borrowed strings). */
struct connect_app {
    const char *client_id, *client_secret; /* NULL: this platform cannot be connected here */
    const char *oauth_base;                /* NULL: the adapter's */
    const char *api_base;                  /* NULL: the adapter's */
    const char *webhook_secret;            /* the app's (Salla signs with it); NULL for Zid */
};

struct connect_config {
    struct store *store;    /* borrowed */
    const char *public_url; /* where browsers and platforms reach serve: "https://host" */
    const char *qoyod_base; /* a new store's Qoyod, when the start names none */
    struct connect_app salla, zid;
};

struct connect;

/* Returns new (connect_free). Strings are borrowed: they must outlive it. */
struct connect *connect_new(const struct connect_config *cfg);
void connect_free(struct connect *k);

/* 1 when platform p can be connected here (its app's client id and secret
 * were given to serve). */
int connect_ready(const struct connect *k, enum model_platform p);

/*
 * Starts connecting a store of platform p: remembers the Qoyod key and
 * inventory location the new store's invoices go to (key may be NULL: the
 * store keeps its own, or gets none yet; inventory 0: 1) and writes into url
 * the platform's authorize address for the merchant to open. Returns 0,
 * TH_ECONFIG when serve has no app for p (the message names the options), or
 * the adapter's error.
 */
int connect_start(struct connect *k, enum model_platform p, const char *qoyod_key,
                  int64_t inventory, char *url, size_t n, struct th_err *err) TH_MUST_CHECK;
/* The same for a caller of one tenant (store.h, Tenants): the store is
 * saved in that tenant; a store already connected under another tenant is
 * refused at the callback (nothing of it changes). tenant 0 (the operator):
 * a known store keeps its tenant, a new one goes to the default tenant. */
int connect_start_in(struct connect *k, int64_t tenant, enum model_platform p,
                     const char *qoyod_key, int64_t inventory, char *url, size_t n,
                     struct th_err *err) TH_MUST_CHECK;

/* 1 when path is a callback route ("/oauth/zid/callback"). */
int connect_is_route(const char *path);

/* Answers the platform's redirect: a 303 to "/#/connect/done/<platform>/
 * <store id>" or "/#/connect/failed/<reason>" (the reason percent-encoded).
 * Called on the HTTP server's threads; makes remote calls (a few seconds at
 * most, httpc's timeouts). */
void connect_callback(struct connect *k, const struct httpd_req *req, struct httpd_resp *resp);

#endif
