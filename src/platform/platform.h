/*
 * platform — what every store-platform adapter (spoke) provides.
 *
 * Owns the contract between the hub and the spokes: an adapter turns its
 * platform's webhooks and orders into tarheel's terms (an event with a dedupe
 * key and an order id; a canonical struct model_order) and nothing else. It
 * never touches the store or Qoyod. Adding Shopify means writing
 * platform/shopify_*.c with one `const struct platform_ops` and listing it in
 * platform.c; no other module changes.
 */
#ifndef TH_PLATFORM_PLATFORM_H
#define TH_PLATFORM_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "model/order.h"
#include "net/httpc.h"

/* What a webhook delivery means to tarheel, once verified and parsed. */
struct platform_event {
    char name[64];             /* the platform's event name: "order.created" */
    int64_t store_id;          /* the platform's merchant id */
    int64_t order_id;          /* 0 when the event is not about an order */
    char dedupe_key[72];       /* stable per delivery content: redelivery → same key */
    int kind;                  /* PLATFORM_EV_* */
    /* For PLATFORM_EV_AUTHORIZE (Easy Mode tokens); secrets, never logged. */
    char access_token[1024];
    char refresh_token[1024];
    int64_t expires_at;        /* unix seconds */
};

enum {
    PLATFORM_EV_OTHER = 0,     /* accepted and stored, no action */
    PLATFORM_EV_ORDER = 1,     /* something happened to an order: fetch it and act */
    PLATFORM_EV_AUTHORIZE = 2, /* tokens for a store (install / update) */
    PLATFORM_EV_UNINSTALL = 3, /* the app was removed: disconnect */
};

/* Credentials the intake checks a delivery against (per connection). */
struct platform_auth {
    const char *strategy;      /* "signature" | "token" | "basic" */
    const char *secret;
};

/* How to reach one store's API (all borrowed; secrets never logged). */
struct platform_conn {
    int64_t store_id;
    const char *api_base;      /* "https://api.salla.dev/admin/v2" */
    const char *access_token;  /* Bearer token */
    const char *manager_token; /* Zid's second token; NULL elsewhere */
};

/* Which orders to list (the catch-up poll and back-fill). */
struct platform_query {
    int64_t from, to;          /* unix seconds, inclusive; 0 = open */
    int by_updated;            /* 1: the range is on updated_at (when the platform can) */
    int page;                  /* 1-based */
};

/* An order as a list shows it: enough to decide whether to fetch it. */
struct platform_order_ref {
    int64_t id;
    int64_t created_at, updated_at; /* unix seconds; updated_at 0 when the list omits it */
    int status;                /* enum model_status, or -1 when the list omits it */
};

struct platform_page {
    struct platform_order_ref *orders; /* owned; platform_page_release */
    size_t n;
    int more;                  /* 1: ask for page + 1 */
};
void platform_page_release(struct platform_page *p);

/* A store category (categories_list); ids as text (Zid's may be strings). */
struct platform_category {
    char id[64];
    char parent_id[64];        /* "" at the top */
    char name[256];            /* the merchant's name for it (Arabic when it has both) */
};

/* One SKU's stock to write to the store (stock_push). */
struct platform_stock {
    const char *sku;           /* borrowed */
    int64_t delta;             /* stock_absolute == 0: units to add (negative: to take) */
    int64_t quantity;          /* stock_absolute == 1: the new count (>= 0) */
    int result;                /* set by stock_push: PLATFORM_STOCK_* */
};

enum {
    PLATFORM_STOCK_SENT = 0,      /* written (or queued by the platform to be written) */
    PLATFORM_STOCK_NOT_FOUND = 1, /* the store has no product with this SKU */
    PLATFORM_STOCK_UNTRACKED = 2, /* the store does not count it (unlimited, infinite) */
};

/* The product fields tarheel can keep in step with Qoyod (worker/fields.c),
 * as bits of a mask (product_put). */
enum {
    PLATFORM_FIELD_NAME = 1,
    PLATFORM_FIELD_PRICE = 2,
    PLATFORM_FIELD_COST = 4,
};

/* A product as the field sync reads and writes it. Money in halalas. */
struct platform_product {
    char id[64];               /* the platform's product id, as text (Zid's are UUIDs) */
    char sku[128];             /* "" when it has none (never matched) */
    char name[256];            /* the store's name for it (Zid: Arabic, else English) */
    int64_t price;             /* selling price as the store shows it (price_vat_inclusive) */
    int64_t cost;              /* cost price; 0 when the store has none */
    int64_t updated_at;        /* unix seconds; 0 when the platform does not say */
};

struct platform_product_page {
    struct platform_product *items; /* new; platform_product_page_release */
    size_t n;
    size_t skipped;            /* products left out: variants, parents (not by SKU here) */
    int more;                  /* 1: ask for page + 1 */
};
void platform_product_page_release(struct platform_product_page *p);

/* The app's OAuth client, for token refresh (borrowed; secrets). */
struct platform_app {
    const char *client_id;
    const char *client_secret;
    const char *token_url;     /* "https://accounts.salla.sa/oauth2/token" */
    const char *redirect_uri;  /* the app's callback; some platforms want it on refresh */
    const char *auth_url;      /* "https://accounts.salla.sa/oauth2/auth" (custom mode) */
    const char *userinfo_url;  /* "https://accounts.salla.sa/oauth2/user/info" */
};

/* A store's new tokens after a refresh (secrets, never logged). */
struct platform_tokens {
    char access_token[1024];
    char refresh_token[1024];
    char manager_token[1024];  /* Zid's second token; "" elsewhere */
    int64_t expires_at;        /* unix seconds */
};

/* The request headers an adapter may need, by name (borrowed). */
typedef const char *(*platform_header_fn)(void *arg, const char *name);

struct platform_ops {
    /* Required. "salla", "zid". */
    const char *name;
    enum model_platform platform;
    /* Where the platform lives, so the hub names no host or path of its
     * own: the OAuth host and its paths (userinfo may be NULL), the API
     * base, and the webhook strategy a new connection starts with. */
    const char *oauth_base;    /* "https://accounts.salla.sa" */
    const char *auth_path, *token_path, *userinfo_path; /* "/oauth2/auth", ... */
    const char *oauth_base_option; /* the CLI option that overrides oauth_base */
    const char *api_base;      /* "https://api.salla.dev/admin/v2" */
    const char *webhook_strategy; /* "signature", "basic" */
    /* Required. Reads only the store id from an unverified body, so the
     * intake can find the connection whose secret verifies it. Returns 0,
     * TH_EPARSE (malformed: answer 400) or TH_ENOTFOUND (no store id). */
    int (*peek_store)(const char *body, size_t len, int64_t *store_id, struct th_err *err);
    /* Required. Verifies a delivery with the strategy configured for the
     * store (never the one the request claims). Constant-time. Returns 0 or
     * TH_EAUTH (answer 401). */
    int (*verify)(const struct platform_auth *auth, platform_header_fn header, void *arg,
                  const char *body, size_t len, struct th_err *err);
    /* Required. Parses a verified delivery. Returns 0 or TH_EPARSE. */
    int (*parse_event)(const char *body, size_t len, struct platform_event *out,
                       struct th_err *err);
    /* Required. Maps the platform's order JSON (as its order API returns
     * it, envelope or bare) into a new canonical order. Returns 0 or
     * TH_EPARSE / TH_EMONEY / TH_ETOOBIG with err naming the field. An item
     * without SKU is NOT an error here (the worker fails the order with a
     * reason in plain words). */
    int (*order_map)(const char *json, size_t len, int64_t store_id, struct model_order **out,
                     struct th_err *err);
    /* Required. Fetches the authoritative order from the platform and maps
     * it (order_map). Failures keep httpc's classification (TH_ETEMP,
     * TH_EUNKNOWN cannot happen for a GET, TH_EAUTH when the token is
     * refused, TH_ENOTFOUND when the order does not exist). */
    int (*order_fetch)(struct httpc *hc, const struct platform_conn *c, int64_t order_id,
                       struct model_order **out, struct th_err *err);
    /* Optional. The store's current stock of the product behind an order
     * line (product id, and the line's SKU to pick a variant): *tracked is 0
     * when the platform does not count it (unlimited), else *qty is the
     * quantity on hand now, after the store deducted its own orders. Used to
     * book the opening balance when tarheel creates the product in Qoyod. */
    int (*product_stock)(struct httpc *hc, const struct platform_conn *c,
                         const struct model_line *line, int64_t *qty, int *tracked,
                         int64_t *cost, struct th_err *err);
    /* Optional. Trades a refresh token for new tokens. Returns 0; TH_EAUTH
     * when the platform says the grant is gone (invalid_grant: the store
     * must reinstall the app); TH_ECONFIG when it refuses the app's client
     * credentials; else httpc's class. A refresh token may be single use:
     * the caller persists the new pair before anything uses it, and after
     * TH_EUNKNOWN it must assume the old one is spent. */
    int (*token_refresh)(struct httpc *hc, const struct platform_app *app,
                         const char *refresh_token, struct platform_tokens *out,
                         struct th_err *err);
    /* Optional: the OAuth authorization-code flow ("custom mode"). The URL
     * the merchant opens; the code for tokens; the store the tokens belong
     * to (its id and name). Errors as token_refresh. */
    int (*authorize_url)(const struct platform_app *app, const char *state, char *out, size_t n,
                         struct th_err *err);
    int (*oauth_exchange)(struct httpc *hc, const struct platform_app *app, const char *code,
                          struct platform_tokens *out, struct th_err *err);
    int (*whoami)(struct httpc *hc, const struct platform_app *app, const char *api_base,
                  const struct platform_tokens *tok, int64_t *store_id, char *name, size_t n,
                  struct th_err *err);
    /* Optional: subscribes the store's order events to url (deliveries then
     * carry Basic credentials user:pass), replacing tarheel's earlier
     * subscriptions. For platforms whose webhooks are set per store through
     * their API (Zid); Salla's come from the app's settings. */
    int (*webhooks_register)(struct httpc *hc, const struct platform_conn *c, const char *url,
                             const char *basic, struct th_err *err);
    /* Optional: the health of the store's subscriptions as the platform
     * tracks it (*health: 0 healthy, 1 degraded, 2 broken), recovering
     * broken ones when recover is set (Zid suspends a failing endpoint and
     * discards its events until then). */
    int (*webhooks_health)(struct httpc *hc, const struct platform_conn *c, int recover,
                           int *health, struct th_err *err);
    /* Optional: one page of the store's orders in a date range. A platform
     * that cannot filter on updated_at lists by creation date whatever
     * q->by_updated says, and sets lists_by_updated = 0. Errors as
     * order_fetch. */
    int (*orders_page)(struct httpc *hc, const struct platform_conn *c,
                       const struct platform_query *q, struct platform_page *out,
                       struct th_err *err);
    int lists_by_updated;
    /* Optional: every category of the store, parents before their
     * children. *out is new (free()). Errors as order_fetch. */
    int (*categories_list)(struct httpc *hc, const struct platform_conn *c,
                           struct platform_category **out, size_t *n, struct th_err *err);
    /* Optional: writes the stock of n (<= stock_batch) SKUs to the store in
     * one call where the platform allows it (a platform that reports
     * unknown SKUs by refusing the whole call may make one more without
     * them). Sets each item's result; adds the calls made to *calls.
     * Returns 0, or the failure as httpc classified it (TH_ETEMP: nothing
     * was written, try again later; TH_EUNKNOWN: it may have been written;
     * TH_EAUTH: the token was refused). */
    int (*stock_push)(struct httpc *hc, const struct platform_conn *c,
                      struct platform_stock *items, size_t n, int *calls, struct th_err *err);
    int stock_absolute;        /* 1: the platform takes counts only (items carry quantity);
                                * 0: it adds and takes (items carry delta) */
    int stock_batch;           /* SKUs per stock_push call */
    int stock_rpm;             /* store calls a minute the stock push may make (its share
                                * of the platform's rate limit) */
    /* Optional (the field sync, docs/FIELDS.md): one page (1-based) of the
     * store's products. since > 0 on a platform with products_by_updated:
     * newest update first, and the listing may stop at the first product
     * updated before since (the page's more is 0 then); elsewhere every
     * product is listed whatever since says. Errors as order_fetch. */
    int (*products_page)(struct httpc *hc, const struct platform_conn *c, int page,
                         int64_t since, struct platform_product_page *out,
                         struct th_err *err);
    int products_by_updated;
    /* Optional: one product by SKU (TH_ENOTFOUND when none; TH_ECONFIG when
     * the platform cannot look a SKU up). Errors as order_fetch. */
    int (*product_get)(struct httpc *hc, const struct platform_conn *c, const char *sku,
                       struct platform_product *out, struct th_err *err);
    /* Optional: writes the fields named in mask (PLATFORM_FIELD_*) of p
     * (p->id names the product; the other fields are left alone). On
     * success *out (may be NULL) is the product as the platform now shows
     * it. Errors as stock_push. */
    int (*product_put)(struct httpc *hc, const struct platform_conn *c,
                       const struct platform_product *p, unsigned mask,
                       struct platform_product *out, struct th_err *err);
    int price_vat_inclusive;   /* 1: the store's prices include VAT (15 %) */
    int products_rpm;          /* store calls a minute the field sync may make */
    /* 1: deliveries are unsigned, so each store's webhook URL carries
     * platform_url_token (/webhooks/<name>/<token>), checked before the
     * credentials (Zid). */
    int needs_url_token;
};

/* The adapter for a platform name or enum; NULL when unknown. */
const struct platform_ops *platform_by_name(const char *name);
const struct platform_ops *platform_by_id(enum model_platform p);

/* The unguessable token in a store's webhook URL (/webhooks/zid/<token>):
 * hex HMAC-SHA256 of the store id under the store's webhook secret, 32
 * characters, so nothing more needs storing and a leaked URL of one store
 * says nothing about another. */
void platform_url_token(const char *secret, int64_t store_id, char out[33]);

/* Constant-time string equality (lengths may leak, contents do not). */
int platform_secure_eq(const char *a, const char *b);

#endif
