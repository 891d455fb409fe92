/*
 * money — exact decimal ↔ fixed-point conversion (see money.h).
 *
 * Parsing walks the digits once and keeps every significant digit (up to
 * 63), then rounds at the requested scale by the first dropped digit: that
 * is exactly half-away-from-zero, since later digits cannot change it.
 * An exponent shifts the point before rounding. All arithmetic is in int64
 * with explicit overflow checks; products use __int128.
 */
#include "core/money.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static const int64_t pow10_tab[] = {1,          10,          100,          1000,
                                    10000,      100000,      1000000,      10000000,
                                    100000000,  1000000000,  10000000000LL, 100000000000LL};

int money_parse_dec(const char *text, int scale, int64_t *out, struct th_err *err)
{
    if (scale < 0 || scale > MONEY_MAX_SCALE)
        return th_err_set(err, TH_EINVAL, "scale %d out of range", scale);
    const char *p = text ? text : "";
    while (isspace((unsigned char)*p)) p++;
    int neg = 0;
    if (*p == '+' || *p == '-') neg = *p++ == '-';

    /* Collect up to 40 significant digits of the mantissa and where the
     * point is; beyond that the number is out of range anyway. */
    char digits[64];
    int nd = 0, point = -1, seen = 0;
    for (;; p++) {
        if (isdigit((unsigned char)*p)) {
            seen = 1;
            if (nd == 0 && *p == '0' && point < 0) continue; /* leading zeros */
            if (nd < (int)sizeof digits - 1) digits[nd++] = *p;
            else if (point < 0)
                return th_err_set(err, TH_EMONEY, "amount '%s' is out of range", text);
        } else if (*p == '.' && point < 0) {
            point = nd;
        } else {
            break;
        }
    }
    if (point < 0) point = nd;
    if (!seen) return th_err_set(err, TH_EPARSE, "'%s' is not a decimal number", text ? text : "");
    long exp = 0;
    if (*p == 'e' || *p == 'E') {
        p++;
        int eneg = 0;
        if (*p == '+' || *p == '-') eneg = *p++ == '-';
        if (!isdigit((unsigned char)*p))
            return th_err_set(err, TH_EPARSE, "'%s' has a malformed exponent", text);
        while (isdigit((unsigned char)*p)) {
            if (exp < 1000) exp = exp * 10 + (*p - '0');
            p++;
        }
        if (eneg) exp = -exp;
    }
    while (isspace((unsigned char)*p)) p++;
    if (*p) return th_err_set(err, TH_EPARSE, "'%s' is not a decimal number", text);

    /* Value = 0.d1d2...dn × 10^(point + exp). We need round(value × 10^scale). */
    long int_digits = (long)point + exp + scale; /* digits that land left of the unit */
    if (int_digits > 19) {
        for (int i = 0; i < nd; i++)
            if (digits[i] != '0') return th_err_set(err, TH_EMONEY, "amount '%s' is out of range", text);
    }
    int64_t v = 0;
    for (long i = 0; i < int_digits; i++) {
        int d = i < nd ? digits[i] - '0' : 0;
        if (v > (MONEY_MAX_ABS - d) / 10)
            return th_err_set(err, TH_EMONEY, "amount '%s' is out of range", text);
        v = v * 10 + d;
    }
    /* The first dropped digit decides (half away from zero). */
    long r = int_digits < 0 ? -1 : int_digits;
    if (r >= 0 && r < nd && digits[r] >= '5') v++;
    if (v > MONEY_MAX_ABS) return th_err_set(err, TH_EMONEY, "amount '%s' is out of range", text);
    *out = neg ? -v : v;
    return 0;
}

int money_parse(const char *text, int64_t *halalas, struct th_err *err)
{
    return money_parse_dec(text, 2, halalas, err);
}

char *money_format_dec(int64_t v, int scale, int min_frac, char *out, size_t n)
{
    if (scale < 0) scale = 0;
    if (scale > MONEY_MAX_SCALE) scale = MONEY_MAX_SCALE;
    if (min_frac > scale) min_frac = scale;
    if (min_frac < 0) min_frac = 0;
    uint64_t a = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    uint64_t unit = (uint64_t)pow10_tab[scale];
    uint64_t ip = a / unit, fp = a % unit;
    char frac[16];
    int nf = scale;
    for (int i = scale - 1; i >= 0; i--) {
        frac[i] = (char)('0' + fp % 10);
        fp /= 10;
    }
    while (nf > min_frac && frac[nf - 1] == '0') nf--;
    frac[nf] = '\0';
    snprintf(out, n, "%s%llu%s%s", v < 0 ? "-" : "", (unsigned long long)ip, nf ? "." : "", frac);
    return out;
}

char *money_format(int64_t halalas, char *out, size_t n)
{
    return money_format_dec(halalas, 2, 2, out, n);
}

int money_rescale(int64_t v, int from, int to, int64_t *out)
{
    if (from < 0 || to < 0 || from > MONEY_MAX_SCALE || to > MONEY_MAX_SCALE) return TH_EINVAL;
    if (to >= from) {
        __int128 r = (__int128)v * pow10_tab[to - from];
        if (r > INT64_MAX || r < INT64_MIN) return TH_EMONEY;
        *out = (int64_t)r;
        return 0;
    }
    return money_muldiv(v, 1, pow10_tab[from - to], out);
}

int money_muldiv(int64_t a, int64_t b, int64_t d, int64_t *out)
{
    if (d == 0) return TH_EINVAL;
    __int128 num = (__int128)a * b;
    int neg = (num < 0) != (d < 0);
    __int128 an = num < 0 ? -num : num;
    __int128 ad = d < 0 ? -(__int128)d : d;
    __int128 q = an / ad, rem = an % ad;
    if (rem * 2 >= ad) q++;
    if (neg) q = -q;
    if (q > INT64_MAX || q < INT64_MIN) return TH_EMONEY;
    *out = (int64_t)q;
    return 0;
}
