/*
 * qoyod_sim_query — wire rendering and Ransack queries for the Qoyod emulator.
 *
 * Owns two pure transformations over jansson records: turning the emulator's
 * internal fixed-point integers into Qoyod's decimal strings ("850.0",
 * "3.375"), and applying a Ransack subset (q[field_pred], q[s]) plus
 * page/per_page to a list of rendered records. It holds no state and must not
 * know about tenants, routes or HTTP status codes.
 */
#ifndef TH_SIM_QOYOD_SIM_QUERY_H
#define TH_SIM_QOYOD_SIM_QUERY_H

#include <jansson.h>
#include <stdint.h>

#include "net/httpd.h"

/* Internal scales of fixed-point fields. Money is halalas; quantities and
 * unrounded VAT are thousandths (Qoyod prints "3.375"); percents are kept to
 * 4 digits so 33.3333% survives. */
#define QYQ_MONEY 2
#define QYQ_QTY 3
#define QYQ_VAT 3
#define QYQ_PCT 4

/*
 * The scale of a fixed-point field by its key ("total" -> 2, "quantity" ->
 * 3, "tax_percent" -> 4), or -1 when the key is not a decimal field. The same
 * key means the same kind of number in every Qoyod record.
 */
int qyq_scale_of(const char *key);

/* Replaces, recursively and in place, every integer member whose key has a
 * scale with its decimal string (at least one fraction digit), and removes
 * members whose key starts with '_' (emulator bookkeeping). */
void qyq_render_numbers(json_t *v);

/* Parses "YYYY-MM-DD", "YYYY-MM-DD[T ]HH:MM:SS[.fff][Z|+HH:MM|-HH:MM]" into
 * milliseconds since the epoch; no zone means Riyadh (+03:00). A space in
 * place of the zone's '+' (an unencoded '+' in a query) is accepted. Returns
 * 0 or -1. */
int qyq_parse_time(const char *text, int64_t *ms);

struct qyq_opts {
    int paged;                  /* honour page/per_page */
    long max_per_page;          /* cap; per_page above it is clamped */
    const char *const *ignored; /* fields whose conditions are ignored (NULL-terminated) */
    const char *nothing_prefix; /* conditions on fields starting with this match nothing */
    int kind_codes;             /* receipts: kind 0/1 means received/paid */
};

/*
 * Filters, sorts and pages rows (an array of rendered records; takes it)
 * by the request's q[...] / page / per_page arguments. Default order is id
 * asc; unknown fields and blank values are ignored, as Ransack does. Returns
 * a new array; when opts->paged, *total is the filtered count and *page,
 * *per_page the page used.
 */
json_t *qyq_apply(json_t *rows, const struct httpd_req *http, const struct qyq_opts *opts,
                  long *total, long *page, long *per_page);

#endif
