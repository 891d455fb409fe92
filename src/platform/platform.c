/* platform — the registry of store-platform adapters (see platform.h). */
#include "platform/platform.h"

#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "platform/salla.h"
#include "platform/zid.h"

static const struct platform_ops *const adapters[] = {&salla_platform_ops, &zid_platform_ops};

const struct platform_ops *platform_by_name(const char *name)
{
    for (size_t i = 0; name && i < sizeof adapters / sizeof adapters[0]; i++)
        if (strcmp(adapters[i]->name, name) == 0) return adapters[i];
    return NULL;
}

const struct platform_ops *platform_by_id(enum model_platform p)
{
    for (size_t i = 0; i < sizeof adapters / sizeof adapters[0]; i++)
        if (adapters[i]->platform == p) return adapters[i];
    return NULL;
}

void platform_page_release(struct platform_page *p)
{
    if (!p) return;
    free(p->orders);
    p->orders = NULL;
    p->n = 0;
    p->more = 0;
}

void platform_product_page_release(struct platform_product_page *p)
{
    if (!p) return;
    free(p->items);
    p->items = NULL;
    p->n = 0;
    p->skipped = 0;
    p->more = 0;
}

void platform_url_token(const char *secret, int64_t store_id, char out[33])
{
    char msg[64];
    int n = snprintf(msg, sizeof msg, "tarheel-webhook-url:%lld", (long long)store_id);
    unsigned char md[32];
    unsigned int len = 0;
    const char *key = secret ? secret : "";
    HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)msg, (size_t)n, md, &len);
    for (int i = 0; i < 16; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
}
