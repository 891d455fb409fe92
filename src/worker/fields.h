/*
 * fields — the field sync: keeps a product's name, price and cost the same
 * in the store and in Qoyod, both of which a person may change (issue 5).
 *
 * Owns, per connection with field sync on, the per-SKU, per-field rows of
 * store_fields_* (what each side showed after the last sync), the conflicts
 * (store_conflict_*), the cursors (mappings of kind "fields":
 * "qoyod_cursor" unix ms, "store_cursor" unix s, "polled_at", "full_at")
 * and the SKUs found on one side only (kind "fields_unmatched", unix ms).
 * Each field has a source of truth per store (settings: name and price the
 * store, cost Qoyod by default). A pass compares each side with its last
 * synced value: only one side changed → that value is written to the other
 * side; both changed to different values → a conflict is recorded, the
 * source of truth wins and is written to the other side; both changed to
 * the same value or neither changed → nothing is written. The table of
 * every case is in docs/FIELDS.md. It never creates or deletes products
 * (transfer.c creates them in Qoyod) and never touches stock.
 */
#ifndef TH_WORKER_FIELDS_H
#define TH_WORKER_FIELDS_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "net/httpc.h"
#include "store/store.h"

#define FIELDS_INTERVAL_S 900         /* a store's pass every 15 minutes */
#define FIELDS_FULL_SCAN_S (24 * 3600) /* both catalogues read whole once a day */
#define FIELDS_OVERLAP_S 120          /* cursors re-list two minutes: late commits */
#define FIELDS_MAX_PAGES 2000         /* pages per side per pass (200 000 products) */
/* Qoyod calls a minute the field sync makes per account: with the
 * workers' 240 and the stock poller's 40, still under Qoyod's 300. */
#define FIELDS_QOYOD_RPM 20
/* Saudi VAT, to compare a price Qoyod holds VAT-inclusive with a store's
 * VAT-exclusive one or the other way round (tax_id 1, qoyod.md §4.2).
 * XXX a zero-rated product's price is converted as if it carried VAT. */
#define FIELDS_VAT_BP 1500

struct fields_config {
    int64_t now_ms;    /* the pass's clock; 0 = the real one */
    int force;         /* 1: run every store with field sync on now, whatever its interval */
    int full;          /* 1: read both catalogues whole (as the daily scan does) */
    int64_t conn_id;   /* 0: every connection; else only this one (sync on or not) */
    int platform_rpm;  /* store calls a minute; 0 = the platform's products_rpm, < 0 none */
    int qoyod_rpm;     /* 0 = FIELDS_QOYOD_RPM, < 0 = no pacing */
    int overlap_s;     /* the cursors' overlap; 0 = FIELDS_OVERLAP_S, < 0 = none (bench) */
    struct httpc_config qoyod_http;
};

struct fields_stats {
    size_t stores;      /* connections passed over */
    size_t read;        /* products read, both sides */
    size_t no_sku;      /* of them without a SKU: never matched, never guessed */
    size_t unmatched;   /* SKUs found on one side only */
    size_t compared;    /* SKUs whose fields were compared */
    size_t first;       /* fields seen for the first time (baseline taken) */
    size_t to_store;    /* fields written to the store */
    size_t to_qoyod;    /* fields written to Qoyod */
    size_t same;        /* fields both sides changed to the same value */
    size_t conflicts;   /* fields both sides changed differently: recorded */
    size_t qoyod_calls; /* remote calls made, by side */
    size_t store_calls;
    size_t failed;      /* stores whose pass stopped on a remote failure */
};

/* One pass over every active connection with field sync on that is due
 * (cfg->force: all of them; cfg->conn_id: that one only). Remote failures
 * are logged and counted, not returned: the next pass starts where this one
 * stopped. Returns 0, TH_ENOTFOUND for an unknown cfg->conn_id, or a store
 * error. */
int fields_round(struct store *s, struct httpc *hc, const struct fields_config *cfg,
                 struct fields_stats *st, struct th_err *err) TH_MUST_CHECK;

/*
 * A person's review of conflict id: marks it reviewed. keep (STORE_SRC_STORE
 * or STORE_SRC_QOYOD; 0 = just reviewed) first writes that side's value, as
 * the conflict recorded it, to both sides (the policy wrote the winner over
 * one of them), and records it as synced.
 * TH_ENOTFOUND, TH_ECONFLICT (reviewed already), or the remote failure.
 */
int fields_conflict_resolve(struct store *s, struct httpc *hc, int64_t id, int keep,
                            const struct httpc_config *qoyod_http,
                            struct th_err *err) TH_MUST_CHECK;

/*
 * The conflicts of connection conn_id (0: every connection that allow
 * accepts; allow NULL: all), newest first, open_only: not yet reviewed, at
 * most limit (<= 0: all), as the JSON `tarheel conflicts --json` and
 * GET /api/v1/conflicts print: {"conflicts": [...], "count": N}. *out is new
 * text (free()). Money values are halalas (numbers), names text.
 */
int fields_conflicts_json(struct store *s, int64_t conn_id, int open_only, int limit,
                          int (*allow)(void *arg, int64_t conn_id), void *arg, char **out,
                          struct th_err *err) TH_MUST_CHECK;
/* One conflict as that list shows it (new text; free()). */
int fields_conflict_json(struct store *s, int64_t id, char **out,
                         struct th_err *err) TH_MUST_CHECK;

/* Field values as text, as the rows and conflicts keep them: money as
 * halalas in decimal. out holds STORE_FIELD_VALUE_MAX. */
void fields_money_text(int64_t halalas, char *out);

#endif
