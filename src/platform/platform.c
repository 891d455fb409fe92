/* platform — the registry of store-platform adapters (see platform.h). */
#include "platform/platform.h"

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
