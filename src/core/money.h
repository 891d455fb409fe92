/*
 * money — exact decimal amounts as integers (halalas), never floating point.
 *
 * Owns every conversion between decimal text and fixed-point integers: money
 * is int64 halalas (scale 2); quantities and unrounded tax use other scales
 * (e.g. 3 for Qoyod's "3.375"). Parsing rounds half away from zero when the
 * text has more digits than the scale. No float or double is used in this
 * module's arithmetic (checksrc bans them here). JSON numbers arrive as
 * doubles from jansson; core/jv turns them into their shortest exact decimal
 * text first and parses that (see jv.h), so no arithmetic happens in binary.
 */
#ifndef TH_CORE_MONEY_H
#define TH_CORE_MONEY_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* Largest scale (digits after the point) supported. */
#define MONEY_MAX_SCALE 6
/* Largest accepted magnitude of any parsed amount: 10^15 units, i.e. one
 * trillion riyals in halalas at scale 2 is 10^14; well inside int64 at every
 * scale so sums of many lines cannot overflow. */
#define MONEY_MAX_ABS INT64_C(1000000000000000000)
/* Buffer size that fits any formatted value. */
#define MONEY_FMT_MAX 32

/*
 * Parses decimal text ("39.46", "-5", "1000.00", "+0.5", "3.375", " 12 ")
 * into an integer with `scale` digits after the point: money_parse_dec("3.375",
 * 2) gives 338 (half away from zero). Accepts an optional sign, digits, one
 * optional point, more digits, and an optional exponent ("1e2", "1.5E-1")
 * because JSON allows it. Leading/trailing blanks are ignored. Returns 0, or
 * TH_EMONEY (out of range) or TH_EPARSE (not a number), with err filled.
 */
int money_parse_dec(const char *text, int scale, int64_t *out, struct th_err *err) TH_MUST_CHECK;

/* money_parse_dec at scale 2: text to halalas. */
int money_parse(const char *text, int64_t *halalas, struct th_err *err) TH_MUST_CHECK;

/*
 * Formats v (at `scale`) as decimal text into out (size n, at least
 * MONEY_FMT_MAX) with at least min_frac and at most `scale` fraction digits,
 * trailing zeros beyond min_frac removed. Returns out.
 *   money_format_dec(3946, 2, 2, ..) -> "39.46"
 *   money_format_dec(85000, 2, 1, ..) -> "850.0"   (Qoyod's style)
 *   money_format_dec(3375, 3, 1, ..) -> "3.375"
 *   money_format_dec(-5, 2, 2, ..)    -> "-0.05"
 */
char *money_format_dec(int64_t v, int scale, int min_frac, char *out, size_t n);

/* Halalas as "39.46" (always two decimals). */
char *money_format(int64_t halalas, char *out, size_t n);

/* Rescales v from scale `from` to scale `to`, rounding half away from zero
 * when digits are dropped. Returns TH_EMONEY on overflow. */
int money_rescale(int64_t v, int from, int to, int64_t *out) TH_MUST_CHECK;

/* round(a * b / d), half away from zero, computed exactly in 128 bits.
 * d must not be 0. Returns TH_EMONEY if the result does not fit int64. */
int money_muldiv(int64_t a, int64_t b, int64_t d, int64_t *out) TH_MUST_CHECK;

#endif
