/*
 * tt_salla_stub — a scripted Salla Admin API for tests and benchmarks that
 * need orders exactly as a test writes them: GET /admin/v2/orders/<id> and
 * GET /admin/v2/products/<id>, Bearer TT_SALLA_TOKEN required. Orders are
 * built by tt_salla_order_json so their arithmetic matches Qoyod's per-line
 * rounding (VAT per line, half away from zero).
 */
#ifndef TT_SALLA_STUB_H
#define TT_SALLA_STUB_H

#include <pthread.h>
#include <stdint.h>

#include "net/httpd.h"

#define TT_SALLA_TOKEN "salla-token"
#define TT_SALLA_MAX_ORDERS 4096

struct tt_salla_stub {
    struct httpd *d;
    char base[96]; /* ".../admin/v2" */
    pthread_mutex_t lock;
    int64_t ids[TT_SALLA_MAX_ORDERS];
    char *json[TT_SALLA_MAX_ORDERS];
    int n;
    int gets;
    const char *product_json; /* answer to GET /admin/v2/products/<id>, or NULL (404) */
    /* OAuth: POST /oauth2/token with grant_type=refresh_token rotates both
     * tokens when given the current refresh token ("rt-<gen>" -> "tok-<gen+1>",
     * "rt-<gen+1>"), else 400 invalid_grant (single use, as Salla). */
    char token_url[96];
    char token[64];           /* the access token the API accepts (TT_SALLA_TOKEN) */
    char refresh[64];         /* the refresh token that works ("rt-0") */
    int generation;
    int refreshes;            /* successful refreshes */
    int refresh_attempts;     /* every POST /oauth2/token */
    long refresh_delay_ms;    /* sleep before answering a refresh */
    /* A gate for ordering tests: GET /orders/<hold_id> waits until
     * tt_salla_stub_release (or 30 s). */
    int64_t hold_id;
    int holding;              /* requests waiting at the gate now */
    int released;
    pthread_cond_t cv;
    int expire_after_order;   /* 1: the token expires once an order was read (once) */
};

struct tt_order_spec {
    int64_t id;
    const char *number;
    const char *slug;
    const char *sku;      /* "" for none */
    int qty;
    int64_t price;        /* halalas, tax-exclusive */
    int64_t discount;     /* item discount, halalas */
    int tax_bp;
    int64_t shipping;
    int64_t cod;
    int64_t customer_id;
    const char *phone;
    const char *date;     /* creation, Riyadh "YYYY-MM-DD HH:MM:SS"; NULL: 2026-11-20 10:00:00 */
};

/* Starts the stub on a free loopback port (fails the test on error). */
void tt_salla_stub_start(struct tt_salla_stub *st);
void tt_salla_stub_stop(struct tt_salla_stub *st);
/* Holds every fetch of order id until tt_salla_stub_release. */
void tt_salla_stub_hold(struct tt_salla_stub *st, int64_t id);
/* Waits (up to ms) until a fetch of the held order is waiting; 1 if so. */
int tt_salla_stub_wait_held(struct tt_salla_stub *st, long ms);
/* Lets the held fetches (and later ones) through. */
void tt_salla_stub_release(struct tt_salla_stub *st);
/* Adds or replaces an order. */
void tt_salla_stub_put(struct tt_salla_stub *st, const struct tt_order_spec *o);
/* The GET /orders/<id> answer for o (new, free()). */
char *tt_salla_order_json(const struct tt_order_spec *o);

#endif
