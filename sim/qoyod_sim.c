/* qoyod_sim — placeholder until the emulator lands. */
#include "sim/qoyod_sim.h"

#include <stdlib.h>

static void *create(struct sim *s)
{
    return calloc(1, 1);
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

const struct sim_ops qoyod_sim_ops = {
    .name = "qoyod", .create = create, .destroy = destroy, .reset = reset, .handle = handle};
