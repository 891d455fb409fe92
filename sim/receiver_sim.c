/*
 * receiver_sim — `tarheel-sim receiver`: the other end of a webhook, for a
 * newcomer with curl and for scripts. Every request to any path is answered
 * 200 (or whatever a fault says: the framework's faults apply, so a failing
 * or slow receiver is one POST /_sim/faults away), printed as one line on
 * stdout, and kept for GET /_sim/receiver/received.
 *
 * With --secret S it checks X-Salla-Signature = hex(HMAC-SHA256(S, body));
 * with --basic USER:PASS it checks Zid's Authorization: Basic credential.
 */
#include "sim/receiver_sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jv.h"
#include "core/xmalloc.h"

struct receiver {
    struct sim *s;
    json_t *got; /* array of {method, path, event, check, body} */
};

/* "ok", "bad" or "none" for the delivery's credential. */
static const char *check(struct receiver *r, const struct sim_req *req)
{
    const char *secret = sim_opt(r->s, "secret"), *basic = sim_opt(r->s, "basic");
    const char *sig = httpd_req_header(req->http, "X-Salla-Signature");
    const char *auth = httpd_req_header(req->http, "Authorization");
    if (secret && sig) {
        char hex[65];
        sim_hmac_sha256_hex(secret, req->raw_body, req->raw_len, hex);
        return strcmp(hex, sig) == 0 ? "signature ok" : "signature BAD";
    }
    if (basic && auth) {
        char *b64 = sim_base64(basic, strlen(basic));
        char *want = xasprintf("Basic %s", b64);
        int ok = strcmp(auth, want) == 0;
        free(b64);
        free(want);
        return ok ? "basic auth ok" : "basic auth BAD";
    }
    return sig ? "signed (no --secret to check)" : auth ? "credential (no --basic to check)"
                                                        : "unauthenticated";
}

static void handle(void *stv, const struct sim_req *req, struct httpd_resp *resp)
{
    struct receiver *r = stv;
    const char *verdict = check(r, req);
    /* The event: Salla's envelope names it; Zid's bare order does not. */
    const char *event = req->body ? jv_get_str(req->body, "event") : NULL;
    if (!event && req->body) event = jv_get_str(req->body, "event_name");
    json_array_append_new(r->got, json_pack("{s:s,s:s,s:s?,s:s,s:s}", "method", req->method,
                                            "path", req->path, "event", event, "check", verdict,
                                            "body", req->raw_body));
    printf("%s %s event=%s %s bytes=%zu\n", req->method, req->path, event ? event : "-", verdict,
           req->raw_len);
    fflush(stdout);
    sim_json(resp, 200, json_pack("{s:b}", "received", 1));
}

static int control(void *stv, const char *sub, const struct sim_req *req, struct httpd_resp *resp)
{
    struct receiver *r = stv;
    if (strcmp(sub, "receiver/received") != 0 || strcmp(req->method, "GET") != 0)
        return TH_ENOTFOUND;
    sim_json(resp, 200, json_pack("{s:O}", "received", r->got));
    return 0;
}

static void *create(struct sim *s)
{
    struct receiver *r = xcalloc(1, sizeof *r);
    r->s = s;
    r->got = json_array();
    return r;
}

static void destroy(void *stv)
{
    struct receiver *r = stv;
    json_decref(r->got);
    free(r);
}

static void reset(void *stv)
{
    json_array_clear(((struct receiver *)stv)->got);
}

const struct sim_ops receiver_sim_ops = {
    .name = "receiver",
    .create = create,
    .destroy = destroy,
    .reset = reset,
    .handle = handle,
    .control = control,
    .usage = "  --secret S              check X-Salla-Signature with this webhook secret\n"
             "  --basic USER:PASS       check Zid's Authorization: Basic credential\n"
             "  (prints one line per delivery; GET /_sim/receiver/received lists them)\n",
};
