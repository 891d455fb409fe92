/*
 * zid — the Zid spoke: webhook verification and parsing, order mapping,
 * order fetching and token refresh (../shared/api/zid.md).
 *
 * Owns Zid's wire quirks: bare order bodies in webhooks (no event name, no
 * signature: HTTP Basic credentials only), two tokens per store, money as
 * decimal strings with 14 fraction digits and float noise, tax rates as
 * fractions, totals in an invoice block of coded lines, ids and mobiles
 * typed differently in webhooks and in the REST API. Must not touch the
 * store or Qoyod.
 *
 * Status mapping (order_status.code, case-insensitive → canonical; the
 * merchant's trigger is a canonical status):
 *   new                          → new
 *   preparing, ready             → ready      (being prepared / prepared)
 *   indelivery (inDelivery)      → in_transit
 *   delivered                    → completed
 *   cancelled, canceled          → cancelled
 *   reversed, partially_reversed → refunded   (a return: the credit-note path)
 *   reverse_in_progress and anything else → other (not final: nothing is done)
 * Product kind mapping (products[].product_class → canonical kind):
 *   null or ""                   → product (Qoyod "Product", stock tracked)
 *   voucher                      → service (Qoyod "Service")
 *   anything else                → unknown (the order fails with the class named)
 */
#ifndef TH_PLATFORM_ZID_H
#define TH_PLATFORM_ZID_H

#include <stddef.h>

#include "platform/platform.h"

/* Items per bulk product PATCH (zid.md §5.3: at most 50). */
#define ZID_STOCK_BATCH 50

extern const struct platform_ops zid_platform_ops;

/* Maps a Zid order_status.code (exposed for tests and docs). */
enum model_status zid_status_map(const char *code);
/* Maps a Zid product_class (NULL or "" for an ordinary product). */
enum model_item_kind zid_kind_map(const char *product_class);

/*
 * A Zid mobile in one form: the REST API writes "966501234567", webhooks
 * "+966501234567"; both become "+966501234567" (model_phone_normalize's
 * rules). Masked numbers of marketplace orders ("***00") count as none.
 * Writes into out (size n); returns 0, or -1 with out "" when there is no
 * usable number.
 */
int zid_phone_normalize(const char *mobile, char *out, size_t n);

#endif
