/*
 * jv — JSON value helpers on jansson that tolerate the platforms' quirks.
 *
 * The platforms disagree with themselves (the files in ../shared/api/): ids arrive as
 * numbers or numeric strings and exceed int32; amounts arrive as numbers,
 * strings ("1000.00") or Salla money objects ({"amount": 39.46, "currency":
 * "SAR"}); flags as true/false, 1/0, "1"/"0", "true"/"false". These getters
 * accept every observed form and return exact integers. jansson calls stay in
 * modules that parse or build JSON (STYLE C5): jv is for those modules; a
 * json_t never crosses into the canonical model.
 *
 * Getter convention: obj may be NULL or a non-object (treated as missing).
 * Return 0 on success; TH_ENOTFOUND when the key is absent or JSON null (out
 * untouched); TH_EPARSE when present but of an unusable type or text. err may
 * be NULL; when given it names the key.
 */
#ifndef TH_CORE_JV_H
#define TH_CORE_JV_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* Default nesting limit for untrusted documents: platform payloads seen are
 * at most ~8 deep; 32 leaves room for growth and stops stack-depth abuse. */
#define JV_MAX_DEPTH 32

/*
 * Parses len bytes of untrusted JSON (an object or array at the top). Rejects
 * documents nested deeper than max_depth (TH_EDEPTH) before jansson sees them,
 * and malformed JSON (TH_EPARSE, err names line and column). Returns a new
 * reference (json_decref) or NULL with err filled.
 */
json_t *jv_parse(const char *buf, size_t len, int max_depth, struct th_err *err);

/* Serialises v compactly with 15 significant digits for reals (so an amount
 * built from "39.46" prints as 39.46). Returns new text (free()). */
char *jv_dump(const json_t *v);

/* Integer id: JSON integer, or a string of optional '-' and digits, fitting
 * int64. Reals with a zero fraction (3155923424.0) are accepted too. */
int jv_get_id(const json_t *obj, const char *key, int64_t *out, struct th_err *err) TH_MUST_CHECK;

/* Decimal at `scale` (see money_parse_dec): JSON number, numeric string, or an
 * object with an "amount" member (Salla's money object). */
int jv_get_dec(const json_t *obj, const char *key, int scale, int64_t *out,
               struct th_err *err) TH_MUST_CHECK;

/* jv_get_dec at scale 2: halalas. */
int jv_get_money(const json_t *obj, const char *key, int64_t *halalas,
                 struct th_err *err) TH_MUST_CHECK;

/* Same conversions applied to a value rather than an object member. */
int jv_to_id(const json_t *v, int64_t *out, struct th_err *err) TH_MUST_CHECK;
int jv_to_dec(const json_t *v, int scale, int64_t *out, struct th_err *err) TH_MUST_CHECK;

/* Boolean: true/false, integers 0/1, strings "0"/"1"/"true"/"false". */
int jv_get_bool(const json_t *obj, const char *key, int *out, struct th_err *err) TH_MUST_CHECK;

/* String member (borrowed from obj), or NULL when absent, null or not a
 * string. Numbers are not converted; use jv_get_id for ids. */
const char *jv_get_str(const json_t *obj, const char *key);

/* Like jv_get_str but converts integers to text too (ids, phone numbers):
 * writes into out (size n) and returns out, or NULL when absent. */
const char *jv_get_text(const json_t *obj, const char *key, char *out, size_t n);

/* Walks a dotted path of object keys ("data.customer.mobile"); array indexes
 * are written as numbers ("data.items.0.sku"). Returns borrowed or NULL. */
json_t *jv_path(const json_t *root, const char *path);

/* Builders for the wire forms the emulators and clients must produce. */
json_t *jv_money_number(int64_t halalas);        /* 39.46 as a JSON number */
json_t *jv_money_string(int64_t halalas);        /* "39.46" */
json_t *jv_dec_string(int64_t v, int scale, int min_frac); /* "850.0", "3.375" */

#endif
