/* tt_salla_stub — scripted Salla order API (see tt_salla_stub.h). */
#include "tt_salla_stub.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/xmalloc.h"



static void token_endpoint(struct tt_salla_stub *st, const struct httpd_req *req,
                           struct httpd_resp *resp)
{
    size_t len = 0;
    const char *body = httpd_req_body(req, &len);
    const char *rt = strstr(body, "refresh_token=");
    char given[64] = "";
    if (rt) snprintf(given, sizeof given, "%.*s", (int)strcspn(rt + 14, "&"), rt + 14);
    pthread_mutex_lock(&st->lock);
    st->refresh_attempts++;
    long delay = st->refresh_delay_ms;
    pthread_mutex_unlock(&st->lock);
    if (delay) {
        struct timespec ts = {delay / 1000, (delay % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    pthread_mutex_lock(&st->lock);
    if (!strstr(body, "grant_type=refresh_token") || !strstr(body, "client_secret=cs") ||
        strcmp(given, st->refresh) != 0) {
        pthread_mutex_unlock(&st->lock);
        const char *e = "{\"error\":\"invalid_grant\",\"error_description\":\"The refresh "
                        "token is invalid.\"}";
        httpd_resp_set(resp, 400, "application/json", e, strlen(e));
        return;
    }
    st->generation++;
    st->refreshes++;
    snprintf(st->token, sizeof st->token, "tok-%d", st->generation);
    snprintf(st->refresh, sizeof st->refresh, "rt-%d", st->generation);
    char *ans = xasprintf("{\"access_token\":\"%s\",\"refresh_token\":\"%s\","
                          "\"expires_in\":1209600,\"token_type\":\"bearer\"}",
                          st->token, st->refresh);
    pthread_mutex_unlock(&st->lock);
    httpd_resp_set(resp, 200, "application/json", ans, strlen(ans));
    free(ans);
}

static void stub_handler(void *arg, const struct httpd_req *req, struct httpd_resp *resp)
{
    struct tt_salla_stub *st = arg;
    if (!strcmp(httpd_req_path(req), "/oauth2/token")) {
        token_endpoint(st, req, resp);
        return;
    }
    const char *auth = httpd_req_header(req, "Authorization");
    pthread_mutex_lock(&st->lock);
    int ok = auth && !strncmp(auth, "Bearer ", 7) && !strcmp(auth + 7, st->token);
    pthread_mutex_unlock(&st->lock);
    if (!ok) {
        static const char e401[] = "{\"status\":401,\"success\":false,\"error\":{\"code\":"
                                   "\"Unauthorized\",\"message\":\"The access token is invalid\"}}";
        httpd_resp_set(resp, 401, "application/json", e401, sizeof e401 - 1);
        return;
    }
    long long id = 0;
    if (sscanf(httpd_req_path(req), "/admin/v2/products/%lld", &id) == 1) {
        if (st->product_json)
            httpd_resp_set(resp, 200, "application/json", st->product_json,
                           strlen(st->product_json));
        else
            httpd_resp_text(resp, 404, "no product");
        return;
    }
    if (sscanf(httpd_req_path(req), "/admin/v2/orders/%lld", &id) != 1) {
        httpd_resp_text(resp, 404, "no route");
        return;
    }
    pthread_mutex_lock(&st->lock);
    if (st->hold_id && id == st->hold_id && !st->released) {
        st->holding++;
        pthread_cond_broadcast(&st->cv);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 30;
        while (!st->released)
            if (pthread_cond_timedwait(&st->cv, &st->lock, &until) != 0) break;
        st->holding--;
    }
    st->gets++;
    for (int i = 0; i < st->n; i++)
        if (st->ids[i] == id) {
            httpd_resp_set(resp, 200, "application/json", st->json[i], strlen(st->json[i]));
            if (st->expire_after_order) {
                st->expire_after_order = 0;
                snprintf(st->token, sizeof st->token, "expired");
            }
            pthread_mutex_unlock(&st->lock);
            return;
        }
    pthread_mutex_unlock(&st->lock);
    static const char e404[] =
        "{\"success\":false,\"status\":404,\"error\":{\"code\":404,\"message\":\"gone\"}}";
    httpd_resp_set(resp, 404, "application/json", e404, sizeof e404 - 1);
}


static char *dec(int64_t h)
{
    return xasprintf("%s%lld.%02lld", h < 0 ? "-" : "", (long long)(h < 0 ? -h : h) / 100,
                     (long long)(h < 0 ? -h : h) % 100);
}

/* round(v * bp / 10000), half away from zero, v >= 0 */
static int64_t vat(int64_t v, int bp)
{
    return (v * bp + 5000) / 10000;
}

char *tt_salla_order_json(const struct tt_order_spec *o)
{
    int64_t net = o->qty * o->price - o->discount;
    int64_t tax = vat(net, o->tax_bp) + vat(o->shipping, o->tax_bp) + vat(o->cod, o->tax_bp);
    int64_t total = net + o->shipping + o->cod + tax;
    char *p = dec(o->price), *d = dec(o->discount), *sh = dec(o->shipping), *cd = dec(o->cod),
         *tx = dec(tax), *tt = dec(total), *lt = dec(vat(net, o->tax_bp)), *sub = dec(o->qty * o->price);
    char *j = xasprintf(
        "{\"status\":200,\"success\":true,\"data\":{\"id\":%lld,\"reference_id\":\"%s\","
        "\"date\":{\"date\":\"%s.000000\",\"timezone_type\":3,"
        "\"timezone\":\"Asia/Riyadh\"},\"status\":{\"id\":1,\"name\":\"x\",\"slug\":\"%s\"},"
        "\"payment_method\":\"%s\",\"currency\":\"SAR\",\"amounts\":{\"sub_total\":{\"amount\":%s,"
        "\"currency\":\"SAR\"},\"shipping_cost\":{\"amount\":%s,\"currency\":\"SAR\"},"
        "\"cash_on_delivery\":{\"amount\":%s,\"currency\":\"SAR\"},\"tax\":{\"percent\":\"%d.%02d\","
        "\"amount\":{\"amount\":%s,\"currency\":\"SAR\"}},\"discounts\":[%s%s%s],"
        "\"total\":{\"amount\":%s,\"currency\":\"SAR\"}},\"customer\":{\"id\":%lld,"
        "\"first_name\":\"سارة\",\"last_name\":\"Ali\",\"mobile\":\"%s\",\"mobile_code\":\"+966\","
        "\"email\":\"c%lld@example.com\"},\"items\":[{\"id\":1,\"name\":\"قميص أزرق\","
        "\"sku\":\"%s\",\"quantity\":%d,\"amounts\":{\"price_without_tax\":{\"amount\":%s},"
        "\"total_discount\":{\"amount\":%s},\"tax\":{\"percent\":\"%d.%02d\",\"amount\":{"
        "\"amount\":%s}},\"total\":{\"amount\":%s}},\"product\":{\"id\":77,\"type\":\"product\"}}]}}",
        (long long)o->id, o->number, o->date ? o->date : "2026-11-20 10:00:00", o->slug, o->cod ? "cod" : "mada", sub, sh, cd, o->tax_bp / 100,
        o->tax_bp % 100, tx, o->discount ? "{\"title\":\"c\",\"discount\":\"" : "",
        o->discount ? d : "", o->discount ? "\"}" : "", tt, (long long)o->customer_id, o->phone,
        (long long)o->customer_id, o->sku, o->qty, p, d, o->tax_bp / 100, o->tax_bp % 100, lt, sub);
    free(p), free(d), free(sh), free(cd), free(tx), free(tt), free(lt), free(sub);
    return j;
}

void tt_salla_stub_put(struct tt_salla_stub *st, const struct tt_order_spec *o)
{
    char *j = tt_salla_order_json(o);
    pthread_mutex_lock(&st->lock);
    for (int i = 0; i < st->n; i++)
        if (st->ids[i] == o->id) {
            free(st->json[i]);
            st->json[i] = j;
            pthread_mutex_unlock(&st->lock);
            return;
        }
    assert_true(st->n < TT_SALLA_MAX_ORDERS);
    st->ids[st->n] = o->id;
    st->json[st->n++] = j;
    pthread_mutex_unlock(&st->lock);
}


void tt_salla_stub_start(struct tt_salla_stub *st)
{
    memset(st, 0, sizeof *st);
    pthread_mutex_init(&st->lock, NULL);
    pthread_cond_init(&st->cv, NULL);
    struct httpd_config hc = {.listen = "127.0.0.1:0", .handler = stub_handler, .arg = st};
    struct th_err err;
    if (httpd_open(&st->d, &hc, &err) != 0) fail_msg("salla stub: %s", err.msg);
    snprintf(st->base, sizeof st->base, "http://127.0.0.1:%u/admin/v2", httpd_port(st->d));
    snprintf(st->token_url, sizeof st->token_url, "http://127.0.0.1:%u/oauth2/token",
             httpd_port(st->d));
    snprintf(st->token, sizeof st->token, "%s", TT_SALLA_TOKEN);
    snprintf(st->refresh, sizeof st->refresh, "rt-0");
}

void tt_salla_stub_hold(struct tt_salla_stub *st, int64_t id)
{
    pthread_mutex_lock(&st->lock);
    st->hold_id = id;
    st->released = 0;
    pthread_mutex_unlock(&st->lock);
}

int tt_salla_stub_wait_held(struct tt_salla_stub *st, long ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
    pthread_mutex_lock(&st->lock);
    while (!st->holding)
        if (pthread_cond_timedwait(&st->cv, &st->lock, &until) != 0) break;
    int held = st->holding > 0;
    pthread_mutex_unlock(&st->lock);
    return held;
}

void tt_salla_stub_release(struct tt_salla_stub *st)
{
    pthread_mutex_lock(&st->lock);
    st->released = 1;
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->lock);
}

void tt_salla_stub_stop(struct tt_salla_stub *st)
{
    tt_salla_stub_release(st);
    httpd_close(st->d);
    for (int i = 0; i < st->n; i++) free(st->json[i]);
    pthread_cond_destroy(&st->cv);
    pthread_mutex_destroy(&st->lock);
}
