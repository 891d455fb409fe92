/*
 * fuzz_order_map — the platform order mappers (platform_ops.order_map) and
 * the canonical order's arithmetic check behind them.
 *
 * Input: byte 0 picks the platform (even Salla, odd Zid), the rest is the
 * order JSON as the platform's order API would return it. Must hold: a map
 * either fails with an error and no order, or gives an order of that
 * platform and store whose lines are within the model's cap; mapping twice
 * gives the same figures; model_order_check never crashes on what a mapper
 * produced.
 */
#include <string.h>

#include "core/err.h"
#include "fuzz/fuzz.h"
#include "model/order.h"
#include "platform/salla.h"
#include "platform/zid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const struct platform_ops *p = (data[0] & 1) ? &zid_platform_ops : &salla_platform_ops;
    const char *json = (const char *)data + 1;
    size_t len = size - 1;
    struct model_order *a = NULL, *b = NULL;
    struct th_err ea = {0}, eb = {0};
    int ra = p->order_map(json, len, 77, &a, &ea);
    int rb = p->order_map(json, len, 77, &b, &eb);
    FUZZ_ASSERT(ra == rb);
    if (ra != 0) {
        FUZZ_ASSERT(a == NULL && ea.code != 0);
        return 0;
    }
    FUZZ_ASSERT(a && b);
    FUZZ_ASSERT(a->platform == p->platform);
    FUZZ_ASSERT(a->nlines <= MODEL_MAX_LINES);
    FUZZ_ASSERT(a->nlines == b->nlines && a->total == b->total && a->tax == b->tax);
    FUZZ_ASSERT(a->order_id == b->order_id);
    struct th_err ec = {0};
    if (model_order_check(a, &ec) != 0) FUZZ_ASSERT(ec.code != 0);
    (void)model_order_lines_net(a);
    model_order_free(a);
    model_order_free(b);
    return 0;
}
