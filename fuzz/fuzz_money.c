/*
 * fuzz_money — the money parser and formatter (core/money.h).
 *
 * Input: byte 0 picks the scale (0..6), the rest is the decimal text. What
 * must hold on every input: a parse either fails with an error or gives a
 * value that formats back to text parsing to the same value; rescaling to a
 * larger scale and back is exact; muldiv agrees with 128-bit arithmetic.
 */
#include <string.h>

#include "core/err.h"
#include "core/money.h"
#include "fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int scale = data[0] % 7;
    char *text = fuzz_cstr(data + 1, size - 1);
    struct th_err err = {0};
    int64_t v = 0;
    int rc = money_parse_dec(text, scale, &v, &err);
    if (rc == 0) {
        char out[MONEY_FMT_MAX];
        money_format_dec(v, scale, 0, out, sizeof out);
        int64_t back = 0;
        struct th_err err2 = {0};
        FUZZ_ASSERT(money_parse_dec(out, scale, &back, &err2) == 0);
        FUZZ_ASSERT(back == v);
        int64_t up = 0, down = 0;
        if (money_rescale(v, scale, scale + 2, &up) == 0) {
            FUZZ_ASSERT(money_rescale(up, scale + 2, scale, &down) == 0);
            FUZZ_ASSERT(down == v);
        }
        /* round(v * 3 / 7) half away from zero, against __int128. */
        int64_t q = 0;
        __int128 num = (__int128)v * 3;
        __int128 ref = num / 7, rem = num % 7;
        if (rem * 2 >= 7) ref++;
        if (rem * 2 <= -7) ref--;
        if (money_muldiv(v, 3, 7, &q) == 0) FUZZ_ASSERT((__int128)q == ref);
    } else {
        FUZZ_ASSERT(err.code != 0);
    }
    free(text);
    return 0;
}
