/* zid_sim — placeholder until the emulator lands. */
#include "sim/zid_sim.h"

#include <stdlib.h>

#include "core/xmalloc.h"

static void *create(struct sim *s)
{
    return xcalloc(1, 1);
}

static void destroy(void *st)
{
    free(st);
}

static void reset(void *st)
{
}

static void handle(void *st, const struct sim_req *req, struct httpd_resp *resp)
{
    httpd_resp_text(resp, 404, "not implemented");
}

const struct sim_ops zid_sim_ops = {
    .name = "zid", .create = create, .destroy = destroy, .reset = reset, .handle = handle};
