/* th_test — shared test helpers (see th_test.h). */
#include "th_test.h"

#include <fnmatch.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <fcntl.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/jv.h"
#include "core/xmalloc.h"
#include "net/httpd.h"

void tt_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Option arrays must outlive the sim they configure: remember them here and
 * free them in tt_sim_stop. */
static struct {
    struct sim *s;
    const char **nm, **vl;
} reg[32];
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;

struct sim *tt_sim_start(const struct sim_ops *ops, const char *const *opts)
{
    size_t n = 0;
    const char **nm = xcalloc(64, sizeof *nm), **vl = xcalloc(64, sizeof *vl);
    for (size_t i = 0; opts && opts[i] && opts[i + 1] && n < 64; i += 2) {
        nm[n] = opts[i];
        vl[n] = opts[i + 1];
        n++;
    }
    struct sim_config cfg = {
        .listen = "127.0.0.1:0", .seed = 42, .nopts = n, .opt_names = nm, .opt_values = vl};
    struct sim *s = NULL;
    struct th_err err;
    if (sim_open(&s, ops, &cfg, &err) != 0) {
        free(nm);
        free(vl);
        fail_msg("cannot start %s emulator: %s", ops->name, err.msg);
        return NULL;
    }
    pthread_mutex_lock(&reg_lock);
    for (int i = 0; i < 32; i++)
        if (!reg[i].s) {
            reg[i].s = s;
            reg[i].nm = nm;
            reg[i].vl = vl;
            pthread_mutex_unlock(&reg_lock);
            return s;
        }
    pthread_mutex_unlock(&reg_lock);
    fail_msg("too many emulators open at once in one test");
    return NULL;
}

void tt_sim_stop(struct sim *s)
{
    if (!s) return;
    sim_close(s);
    pthread_mutex_lock(&reg_lock);
    for (int i = 0; i < 32; i++)
        if (reg[i].s == s) {
            free(reg[i].nm);
            free(reg[i].vl);
            reg[i].s = NULL;
        }
    pthread_mutex_unlock(&reg_lock);
}

int tt_http_timeout(const char *method, const char *url, const char *const *headers,
                    const char *body, long timeout_ms, struct tt_resp *out)
{
    memset(out, 0, sizeof *out);
    struct httpc_config cfg = {.connect_timeout_ms = 2000, .timeout_ms = timeout_ms};
    struct httpc *c = httpc_new(&cfg);
    struct httpc_resp r;
    httpc_resp_init(&r);
    struct th_err err;
    out->rc = httpc_do(c, method, url, headers, body, body ? strlen(body) : 0, &r, &err);
    out->status = r.status;
    out->body = xstrdup(buf_cstr(&r.body));
    out->retry_after_s = r.retry_after_s;
    snprintf(out->ratelimit_remaining, sizeof out->ratelimit_remaining, "%s",
             r.ratelimit_remaining);
    if (r.body.len) out->json = json_loads(out->body, JSON_DECODE_ANY, NULL);
    httpc_resp_release(&r);
    httpc_free(c);
    return out->rc;
}

int tt_http(const char *method, const char *url, const char *const *headers, const char *body,
            struct tt_resp *out)
{
    return tt_http_timeout(method, url, headers, body, 10000, out);
}

void tt_resp_release(struct tt_resp *r)
{
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

const char *tt_url(const struct sim *s, const char *fmt, ...)
{
    static __thread char out[2048];
    int n = snprintf(out, sizeof out, "%s", sim_base_url(s));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out + n, sizeof out - (size_t)n, fmt, ap);
    va_end(ap);
    return out;
}

int tt_count_requests(struct sim *s, const char *method, const char *path_glob, int status)
{
    struct tt_resp r;
    tt_http("GET", tt_url(s, "/_sim/requests"), NULL, NULL, &r);
    if (r.status != 200) fail_msg("GET /_sim/requests answered %ld", r.status);
    int n = 0;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(r.json, "requests"), i, e) {
        const char *m = json_string_value(json_object_get(e, "method"));
        const char *p = json_string_value(json_object_get(e, "path"));
        int st = (int)json_integer_value(json_object_get(e, "status"));
        if (method && (!m || strcmp(m, method) != 0)) continue;
        if (path_glob && (!p || fnmatch(path_glob, p, 0) != 0)) continue;
        if (status != -2 && st != status) continue;
        n++;
    }
    tt_resp_release(&r);
    return n;
}

void tt_faults(struct sim *s, const char *json)
{
    struct tt_resp r;
    tt_http("POST", tt_url(s, "/_sim/faults"), NULL, json, &r);
    if (r.status != 201) fail_msg("POST /_sim/faults answered %ld: %s", r.status, r.body);
    tt_resp_release(&r);
}

size_t tt_webhooks_drain(struct sim *s, long timeout_ms)
{
    size_t n = 0;
    for (long waited = 0; waited <= timeout_ms; waited += 10) {
        n = sim_webhook_pending(s);
        if (n == 0) return 0;
        tt_sleep_ms(10);
    }
    return n;
}

/* ---------------------------------------------------------------------- */
/* Receiver                                                                 */

struct tt_receiver {
    struct httpd *d;
    char url[64];
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int status;
    long delay_ms;
    const char *names[8];
    size_t n, cap;
    struct tt_received *items;
};

static void on_recv(void *arg, const struct httpd_req *req, struct httpd_resp *resp)
{
    struct tt_receiver *r = arg;
    struct tt_received x = {0};
    size_t len;
    const char *body = httpd_req_body(req, &len);
    x.method = xstrdup(httpd_req_method(req));
    x.path = xstrdup(httpd_req_path(req));
    x.body = xstrndup(body, len);
    x.body_len = len;
    for (int i = 0; i < 8 && r->names[i]; i++) x.headers[i] = xstrdup(httpd_req_header(req, r->names[i]));
    pthread_mutex_lock(&r->lock);
    int status = r->status;
    long delay = r->delay_ms;
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->items = xrealloc(r->items, r->cap * sizeof *r->items);
    }
    r->items[r->n++] = x;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    if (delay > 0) tt_sleep_ms(delay);
    sim_json(resp, status, json_pack("{s:b}", "ok", status < 300));
}

struct tt_receiver *tt_receiver_start(int status, long delay_ms, const char *const *header_names)
{
    struct tt_receiver *r = xcalloc(1, sizeof *r);
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->cond, NULL);
    r->status = status;
    r->delay_ms = delay_ms;
    for (int i = 0; i < 7 && header_names && header_names[i]; i++) r->names[i] = header_names[i];
    struct httpd_config cfg = {.listen = "127.0.0.1:0", .handler = on_recv, .arg = r};
    struct th_err err;
    if (httpd_open(&r->d, &cfg, &err) != 0) fail_msg("receiver: %s", err.msg);
    snprintf(r->url, sizeof r->url, "http://127.0.0.1:%u", httpd_port(r->d));
    return r;
}

void tt_received_release(struct tt_received *x)
{
    free(x->method);
    free(x->path);
    free(x->body);
    for (int i = 0; i < 8; i++) free(x->headers[i]);
    memset(x, 0, sizeof *x);
}

void tt_receiver_stop(struct tt_receiver *r)
{
    if (!r) return;
    httpd_close(r->d);
    for (size_t i = 0; i < r->n; i++) tt_received_release(&r->items[i]);
    free(r->items);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
    free(r);
}

const char *tt_receiver_url(const struct tt_receiver *r)
{
    return r->url;
}

void tt_receiver_set(struct tt_receiver *r, int status, long delay_ms)
{
    pthread_mutex_lock(&r->lock);
    r->status = status;
    r->delay_ms = delay_ms;
    pthread_mutex_unlock(&r->lock);
}

size_t tt_receiver_count(struct tt_receiver *r)
{
    pthread_mutex_lock(&r->lock);
    size_t n = r->n;
    pthread_mutex_unlock(&r->lock);
    return n;
}

int tt_receiver_get(struct tt_receiver *r, size_t i, struct tt_received *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&r->lock);
    if (i >= r->n) {
        pthread_mutex_unlock(&r->lock);
        return -1;
    }
    struct tt_received *x = &r->items[i];
    out->method = xstrdup(x->method);
    out->path = xstrdup(x->path);
    out->body = xstrndup(x->body, x->body_len);
    out->body_len = x->body_len;
    for (int k = 0; k < 8; k++) out->headers[k] = xstrdup(x->headers[k]);
    pthread_mutex_unlock(&r->lock);
    return 0;
}

size_t tt_receiver_wait(struct tt_receiver *r, size_t n, long timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
    pthread_mutex_lock(&r->lock);
    while (r->n < n)
        if (pthread_cond_timedwait(&r->cond, &r->lock, &ts) != 0) break;
    size_t got = r->n;
    pthread_mutex_unlock(&r->lock);
    return got;
}

/* ---------------------------------------------------------------------- */
/* The CLI in this process                                                   */

static char *slurp_file(const char *path)
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    char *text = xcalloc(1, 65536);
    size_t n = fread(text, 1, 65535, fp);
    text[n] = '\0';
    fclose(fp);
    return text;
}

int tt_cli_run(const char *dir, int argc, char **argv, char **out, char **err)
{
    char *po = xasprintf("%s/cli.out", dir), *pe = xasprintf("%s/cli.err", dir);
    fflush(stdout);
    fflush(stderr);
    int o = dup(1), e = dup(2);
    int fo = open(po, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int fe = open(pe, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(o >= 0 && e >= 0 && fo >= 0 && fe >= 0);
    dup2(fo, 1);
    dup2(fe, 2);
    int rc = cli_main(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(o, 1);
    dup2(e, 2);
    close(o);
    close(e);
    close(fo);
    close(fe);
    *out = slurp_file(po);
    *err = slurp_file(pe);
    free(po);
    free(pe);
    return rc;
}
