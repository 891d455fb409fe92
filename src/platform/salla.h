/*
 * salla — the Salla spoke: webhook verification and parsing, order mapping,
 * order fetching (../shared/api/salla.md).
 *
 * Owns Salla's wire quirks (money objects, ids beyond int32, two shapes of
 * order webhook, Riyadh-local dates, mobile as number + code) and the
 * mapping of Salla status slugs and product types into the canonical model.
 * Must not touch the store or Qoyod.
 *
 * Status mapping (slug → canonical; the merchant's trigger is a canonical
 * status):
 *   under_review                 → new       (placed; bank transfers await review here)
 *   payment_pending              → other     (unpaid: never transferred)
 *   in_progress                  → ready
 *   delivering, shipped          → in_transit
 *   completed, delivered         → completed
 *   canceled                     → cancelled
 *   restored                     → refunded
 *   restoring and anything else  → other
 * Product type mapping (Salla product.type → canonical kind → Qoyod type):
 *   product, food                → product (Qoyod "Product", stock tracked)
 *   service, digital, codes, booking, donating → service (Qoyod "Service")
 *   group_products               → bundle (Qoyod "Recipe")
 *   anything else                → unknown (the order fails with the type named)
 */
#ifndef TH_PLATFORM_SALLA_H
#define TH_PLATFORM_SALLA_H

#include "platform/platform.h"

extern const struct platform_ops salla_platform_ops;

/* SKUs per bulk quantities call: Salla documents no maximum (salla.md §5.3
 * open question 5); 100 is the batch its notes assume [I]. */
#define SALLA_STOCK_BATCH 100

/* Maps a Salla status slug (exposed for tests and docs). */
enum model_status salla_status_map(const char *slug);
/* Maps a Salla product type. */
enum model_item_kind salla_kind_map(const char *type);

#endif
