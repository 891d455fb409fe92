/*
 * qoyod_sim_int — declarations shared by the Qoyod emulator's files only.
 *
 * Owns the shape of the emulator's state: tenants (one per API key), each a
 * jansson document of collections whose records keep money and quantities as
 * int64 fixed-point integers (see qoyod_sim_query.h for the scales) and are
 * turned into wire form only by qy_render. Nothing outside sim/qoyod_sim*.c
 * may include this header; the state lock is held by every caller.
 */
#ifndef TH_SIM_QOYOD_SIM_INT_H
#define TH_SIM_QOYOD_SIM_INT_H

#include <jansson.h>
#include <stdint.h>

#include "core/err.h"
#include "sim/sim.h"

/* Tenants (API keys) one emulator holds: a demo uses one or two. */
#define QY_MAX_TENANTS 64
/* Default requests per minute per API key ([C] QB-RATE: 300/min). */
#define QY_RATE_LIMIT_DEFAULT 300
/* Default and largest page size ([C] QB-PAG: default 25, max 100). */
#define QY_PER_PAGE_MAX_DEFAULT 100

/* One company: its API key and its data. d is
 * {"counters": {coll: last id}, coll: [records in id order], ...}. */
struct qy_tenant {
    char *key;
    json_t *d;
};

struct qy {
    struct sim *s;
    struct qy_tenant tenants[QY_MAX_TENANTS];
    size_t ntenants;
    long rate_limit;   /* --rate-limit N per minute per key; 0 = off */
    long max_per_page; /* --max-per-page */
    int unique_sku;    /* --unique-sku 1: duplicate SKU -> 422 */
    int stock_bumps;   /* --stock-bumps-updated-at 0 disables the [I] bump */
};

/* Collections (borrowed arrays, created on first use) and records. */
json_t *qy_coll(struct qy_tenant *t, const char *coll);
json_t *qy_find(struct qy_tenant *t, const char *coll, int64_t id);
/* Next id of coll (per tenant, from 1) and appends rec (takes) with it set,
 * plus created_at/updated_at. Returns rec (borrowed). */
json_t *qy_insert(struct qy_tenant *t, const char *coll, json_t *rec);
/* Sets rec's updated_at to now. */
void qy_touch(json_t *rec);
/* Wire form of a record (new): fixed-point fields as decimal strings,
 * bookkeeping members dropped, product stock expanded per inventory. */
json_t *qy_render(struct qy_tenant *t, const char *coll, const json_t *rec);

/* Stock of a product at an inventory, in thousandths. */
int64_t qy_stock_get(const json_t *product, int64_t inventory_id);
/* Sets it and (unless disabled) bumps the product's updated_at. */
void qy_stock_set(struct qy *q, json_t *product, int64_t inventory_id, int64_t qty);
/* 1 when the product's stock is tracked. */
int qy_tracked(const json_t *product);

/* Input readers. Each returns 0, TH_ENOTFOUND (absent, null or ""), or
 * TH_EPARSE (unusable). */
int qy_in_id(const json_t *o, const char *key, int64_t *out);
int qy_in_dec(const json_t *o, const char *key, int scale, int64_t *out);
/* Boolean with a default for absent values; bad text counts as absent. */
int qy_in_bool(const json_t *o, const char *key, int dflt);
/* Text (strings, or integers as text) copied into out; NULL when absent or "". */
const char *qy_in_text(const json_t *o, const char *key, char *out, size_t n);
/* 1 when text is a valid YYYY-MM-DD date. */
int qy_valid_date(const char *text);

/* Validation errors: {"field": ["message", ...]} built up in *errs. */
void qy_err(json_t **errs, const char *field, const char *fmt, ...) TH_PRINTF(3, 4);
/* Answers 422 {"errors": errs} (takes errs). */
void qy_reply_errors(struct httpd_resp *resp, json_t *errs);
/* Answers 404 {"message":"Invalid  ID. Please provide a valid  ID."}. */
void qy_reply_not_found(struct httpd_resp *resp);
/* The request's envelope object (borrowed) or NULL after answering 422. */
json_t *qy_envelope(const struct sim_req *req, const char *key, struct httpd_resp *resp);

#endif
