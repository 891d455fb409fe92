/*
 * fuzz_webhook — what the Salla and Zid webhook targets share: the intake's
 * view of one delivery, from an unverified body to a parsed event.
 *
 * Input: the first line is the value of the header the platform's strategy
 * reads (X-Salla-Signature / Authorization), the rest is the body. Must
 * hold: parsing is deterministic (a redelivery gets the same dedupe key, the
 * fact exactly-once intake rests on), a parsed event's strings are
 * terminated, its kind is known, an order event names an order.
 */
#ifndef TH_FUZZ_WEBHOOK_H
#define TH_FUZZ_WEBHOOK_H

#include <string.h>

#include "core/err.h"
#include "fuzz/fuzz.h"
#include "platform/platform.h"

struct fw_headers {
    const char *value;
};

static const char *fw_header(void *arg, const char *name)
{
    (void)name;
    return ((const struct fw_headers *)arg)->value;
}

static void fw_run(const struct platform_ops *p, const char *strategy, const uint8_t *data,
                   size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t hlen = nl ? (size_t)(nl - data) : 0;
    char *hval = fuzz_cstr(data, hlen);
    const char *body = (const char *)(nl ? nl + 1 : data);
    size_t blen = nl ? size - hlen - 1 : size;

    struct th_err err = {0};
    int64_t store_id = 0;
    (void)p->peek_store(body, blen, &store_id, &err);

    struct fw_headers h = {hval};
    struct platform_auth auth = {.strategy = strategy, .secret = "fuzz-secret-0123456789"};
    (void)p->verify(&auth, fw_header, &h, body, blen, &err);

    struct platform_event a, b;
    memset(&a, 0x5a, sizeof a);
    memset(&b, 0xa5, sizeof b);
    struct th_err ea = {0}, eb = {0};
    int ra = p->parse_event(body, blen, &a, &ea);
    int rb = p->parse_event(body, blen, &b, &eb);
    FUZZ_ASSERT(ra == rb);
    if (ra == 0) {
        FUZZ_ASSERT(memchr(a.name, '\0', sizeof a.name) != NULL);
        FUZZ_ASSERT(memchr(a.dedupe_key, '\0', sizeof a.dedupe_key) != NULL);
        FUZZ_ASSERT(strcmp(a.name, b.name) == 0);
        FUZZ_ASSERT(strcmp(a.dedupe_key, b.dedupe_key) == 0);
        FUZZ_ASSERT(a.order_id == b.order_id && a.store_id == b.store_id);
        FUZZ_ASSERT(a.kind >= PLATFORM_EV_OTHER && a.kind <= PLATFORM_EV_UNINSTALL);
        if (a.kind == PLATFORM_EV_ORDER) FUZZ_ASSERT(a.order_id != 0 && a.dedupe_key[0]);
    } else {
        FUZZ_ASSERT(ea.code != 0);
    }
    free(hval);
}

#endif
