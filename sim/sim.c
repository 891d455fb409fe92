/*
 * sim — emulator framework (see sim.h for the request flow).
 *
 * Locks: `lock` guards the emulator's state and is held around handle() and
 * control(). `meta` guards the request log, faults, the random source and
 * rate buckets; it is never held while calling the emulator or sleeping.
 * `wq_lock` guards the webhook queue and its log; the sender thread holds it
 * only to pick or record a delivery, never during the HTTP call. Lock order
 * when nested: lock -> wq_lock (emulators enqueue while holding lock).
 */
#include "sim/sim.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/jv.h"
#include "core/log.h"
#include "core/xmalloc.h"
#include "net/httpc.h"

/* ---------------------------------------------------------------------- */
/* Types                                                                    */

struct logent {
    uint64_t seq;
    char ts[40];
    char method[12];
    char *path;
    char *query;
    char *body;
    int status; /* 0 = dropped */
    char fault[24];
};

enum fault_mode {
    F_LATENCY,
    F_ERROR,
    F_RATE_LIMIT,
    F_RESET,
    F_COMMIT_THEN_DROP,
    F_DUPLICATE,
    F_OUT_OF_ORDER,
    F_BAD_SIGNATURE,
    F_SLOW_RECEIVER,
    F_LOSE,
};

static const char *const mode_names[] = {
    [F_LATENCY] = "latency",
    [F_ERROR] = "error",
    [F_RATE_LIMIT] = "rate_limit",
    [F_RESET] = "reset",
    [F_COMMIT_THEN_DROP] = "commit_then_drop",
    [F_DUPLICATE] = "duplicate",
    [F_OUT_OF_ORDER] = "out_of_order",
    [F_BAD_SIGNATURE] = "bad_signature",
    [F_SLOW_RECEIVER] = "slow_receiver",
    [F_LOSE] = "lose",
};
#define NMODES ((int)(sizeof mode_names / sizeof mode_names[0]))

struct fault {
    char match[160];
    enum fault_mode mode;
    uint64_t threshold; /* fires when rand < threshold; UINT64_MAX = always */
    long count;         /* remaining firings; -1 = unlimited */
    long skip;          /* matching requests let through before the fault arms */
    long latency_ms;
    int status;
    long retry_after;
    char body[512];
    long hits;
};

struct bucket {
    struct bucket *next;
    char *key;
    time_t window_start;
    long used;
};

struct delivery {
    struct delivery *next;
    uint64_t id;
    char *url, *event, *body, *sign_header, *sign_key, *auth_header;
    size_t body_len;
    char **headers;
    int max_attempts, attempts;
    long retry_delay_ms, timeout_ms;
    uint64_t next_at_ms;
    int held;               /* out_of_order: waiting for the next delivery */
    uint64_t held_since_ms;
    int decided;            /* faults drawn (on the first attempt) */
    int dup, bad_sig, slow, lose;
    long slow_ms;
    uint64_t duplicate_of;
    json_t *logent;         /* entry in the webhook log (borrowed from wlog) */
    int (*on_result)(void *arg, const char *tag, int ok, long status);
    void *result_arg;
    char *tag;
};

struct sim {
    const struct sim_ops *ops;
    void *st;
    struct httpd *httpd;
    char base_url[64];
    struct sim_config cfg;
    char *state_file;

    pthread_mutex_t lock;
    pthread_mutex_t meta;
    uint64_t rng;

    struct logent log[SIM_MAX_LOG];
    uint64_t next_seq;

    struct fault faults[SIM_MAX_FAULTS];
    int nfaults;

    struct bucket *buckets;

    pthread_mutex_t wq_lock;
    pthread_cond_t wq_cond;
    pthread_t sender;
    int sender_started, stopping;
    struct delivery *queue;
    size_t queued;
    size_t inflight;
    uint64_t next_delivery_id;
    json_t *wlog; /* array of delivery records */
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    if (ms <= 0) return;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* ---------------------------------------------------------------------- */
/* Small public helpers                                                     */

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t sim_rand(struct sim *s)
{
    pthread_mutex_lock(&s->meta);
    uint64_t r = splitmix(&s->rng);
    pthread_mutex_unlock(&s->meta);
    return r;
}

void sim_json(struct httpd_resp *resp, int status, json_t *v)
{
    char *text = jv_dump(v);
    httpd_resp_set(resp, status, "application/json; charset=utf-8", text, strlen(text));
    free(text);
    json_decref(v);
}

static char *riyadh(char *out, size_t n, int iso)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    time_t t = ts.tv_sec + 3 * 3600; /* Asia/Riyadh is UTC+3 all year (no DST) */
    struct tm tm;
    gmtime_r(&t, &tm);
    if (iso)
        snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%03ld+03:00", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 ts.tv_nsec / 1000000);
    else
        snprintf(out, n, "%04d-%02d-%02d %02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return out;
}

char *sim_now_riyadh_iso(char *out, size_t n)
{
    return riyadh(out, n, 1);
}

char *sim_now_riyadh_plain(char *out, size_t n)
{
    return riyadh(out, n, 0);
}

void sim_hmac_sha256_hex(const char *key, const void *data, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    HMAC(EVP_sha256(), key, (int)strlen(key), data, len, md, &mdlen);
    for (unsigned i = 0; i < mdlen && i < 32; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
    out[64] = '\0';
}

const char *sim_opt_at(const struct sim *s, const char *name, size_t i)
{
    for (size_t k = 0; k < s->cfg.nopts; k++)
        if (strcmp(s->cfg.opt_names[k], name) == 0 && i-- == 0) return s->cfg.opt_values[k];
    return NULL;
}

const char *sim_opt(const struct sim *s, const char *name)
{
    const char *v = NULL;
    for (size_t k = 0; k < s->cfg.nopts; k++)
        if (strcmp(s->cfg.opt_names[k], name) == 0) v = s->cfg.opt_values[k];
    return v;
}

uint16_t sim_port(const struct sim *s)
{
    return httpd_port(s->httpd);
}

const char *sim_base_url(const struct sim *s)
{
    return s->base_url;
}

void *sim_state(struct sim *s)
{
    return s->st;
}

void sim_lock(struct sim *s)
{
    pthread_mutex_lock(&s->lock);
}

void sim_unlock(struct sim *s)
{
    pthread_mutex_unlock(&s->lock);
}

long sim_rate_take(struct sim *s, const char *key, long limit, long window_s, long *remaining,
                   long *reset_s)
{
    if (limit <= 0) {
        if (remaining) *remaining = -1;
        if (reset_s) *reset_s = 0;
        return 0;
    }
    if (window_s <= 0) window_s = 60;
    time_t now = time(NULL);
    pthread_mutex_lock(&s->meta);
    struct bucket *b;
    for (b = s->buckets; b; b = b->next)
        if (strcmp(b->key, key) == 0) break;
    if (!b) {
        b = xcalloc(1, sizeof *b);
        b->key = xstrdup(key);
        b->window_start = now;
        b->next = s->buckets;
        s->buckets = b;
    }
    if (now - b->window_start >= window_s) {
        b->window_start = now;
        b->used = 0;
    }
    long wait = 0;
    long left = window_s - (long)(now - b->window_start);
    if (b->used >= limit) wait = left > 0 ? left : 1;
    else b->used++;
    if (remaining) *remaining = limit - b->used;
    if (reset_s) *reset_s = left;
    pthread_mutex_unlock(&s->meta);
    return wait;
}

/* ---------------------------------------------------------------------- */
/* Request log                                                              */

static uint64_t log_request(struct sim *s, const struct httpd_req *r, const char *body,
                            size_t len)
{
    struct buf q;
    buf_init(&q, 0);
    for (size_t i = 0; i < httpd_req_nargs(r); i++) {
        const char *k, *v;
        httpd_req_arg_at(r, i, &k, &v);
        if (buf_printf(&q, "%s%s=%s", i ? "&" : "", k, v)) TH_BUG("uncapped buf");
    }
    pthread_mutex_lock(&s->meta);
    uint64_t seq = ++s->next_seq;
    struct logent *e = &s->log[seq % SIM_MAX_LOG];
    free(e->path);
    free(e->query);
    free(e->body);
    e->seq = seq;
    sim_now_riyadh_iso(e->ts, sizeof e->ts);
    snprintf(e->method, sizeof e->method, "%s", httpd_req_method(r));
    e->path = xstrdup(httpd_req_path(r));
    e->query = buf_detach(&q, NULL);
    e->body = xstrndup(body, len < SIM_MAX_LOG_BODY ? len : SIM_MAX_LOG_BODY);
    e->status = -1;
    e->fault[0] = '\0';
    pthread_mutex_unlock(&s->meta);
    return seq;
}

static void log_outcome(struct sim *s, uint64_t seq, int status, const char *fault)
{
    pthread_mutex_lock(&s->meta);
    struct logent *e = &s->log[seq % SIM_MAX_LOG];
    if (e->seq == seq) {
        e->status = status;
        if (fault) snprintf(e->fault, sizeof e->fault, "%s", fault);
    }
    pthread_mutex_unlock(&s->meta);
}

static json_t *log_json(struct sim *s, uint64_t since)
{
    json_t *arr = json_array();
    pthread_mutex_lock(&s->meta);
    uint64_t first = s->next_seq >= SIM_MAX_LOG ? s->next_seq - SIM_MAX_LOG + 1 : 1;
    if (since + 1 > first) first = since + 1;
    for (uint64_t seq = first; seq <= s->next_seq; seq++) {
        struct logent *e = &s->log[seq % SIM_MAX_LOG];
        if (e->seq != seq) continue;
        json_t *o = json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:i}", "seq", (json_int_t)e->seq, "ts",
                              e->ts, "method", e->method, "path", e->path, "query", e->query,
                              "body", e->body, "status", e->status);
        if (e->fault[0]) json_object_set_new(o, "fault", json_string(e->fault));
        json_array_append_new(arr, o);
    }
    pthread_mutex_unlock(&s->meta);
    return arr;
}

static void log_clear(struct sim *s)
{
    pthread_mutex_lock(&s->meta);
    for (int i = 0; i < SIM_MAX_LOG; i++) {
        free(s->log[i].path);
        free(s->log[i].query);
        free(s->log[i].body);
        memset(&s->log[i], 0, sizeof s->log[i]);
    }
    pthread_mutex_unlock(&s->meta);
}

/* ---------------------------------------------------------------------- */
/* Faults                                                                   */

static int fault_from_json(const json_t *o, struct fault *f, struct th_err *err)
{
    memset(f, 0, sizeof *f);
    const char *match = jv_get_str(o, "match");
    const char *mode = jv_get_str(o, "mode");
    if (!match || !mode)
        return th_err_set(err, TH_EPARSE, "a fault needs \"match\" (e.g. \"POST /2.0/invoices*\" "
                          "or \"webhook order.*\") and \"mode\"");
    snprintf(f->match, sizeof f->match, "%s", match);
    int m;
    for (m = 0; m < NMODES; m++)
        if (strcmp(mode, mode_names[m]) == 0) break;
    if (m == NMODES)
        return th_err_set(err, TH_EPARSE, "unknown fault mode '%s' (see sim/README.md)", mode);
    f->mode = (enum fault_mode)m;
    f->threshold = UINT64_MAX;
    json_t *p = json_object_get(o, "probability");
    if (p) {
        if (!json_is_number(p) || json_number_value(p) < 0 || json_number_value(p) > 1)
            return th_err_set(err, TH_EPARSE, "fault probability must be a number in [0,1]");
        /* Probabilities are test knobs, not money: floating point is fine. */
        double pr = json_number_value(p);
        f->threshold = pr >= 1.0 ? UINT64_MAX : (uint64_t)(pr * 18446744073709551615.0);
    }
    int64_t v;
    f->count = -1;
    if (jv_get_id(o, "count", &v, NULL) == 0) f->count = v;
    f->skip = jv_get_id(o, "skip", &v, NULL) == 0 && v > 0 ? v : 0;
    f->latency_ms = jv_get_id(o, "latency_ms", &v, NULL) == 0 ? v : 0;
    f->status = jv_get_id(o, "status", &v, NULL) == 0 ? (int)v : 0;
    f->retry_after = jv_get_id(o, "retry_after", &v, NULL) == 0 ? v : 1;
    const char *body = jv_get_str(o, "body");
    if (body) snprintf(f->body, sizeof f->body, "%s", body);
    if (f->mode == F_ERROR && f->status == 0) f->status = 500;
    if (f->mode == F_LATENCY && f->latency_ms <= 0)
        return th_err_set(err, TH_EPARSE, "a latency fault needs latency_ms > 0");
    return 0;
}

static json_t *faults_json(struct sim *s)
{
    json_t *arr = json_array();
    pthread_mutex_lock(&s->meta);
    for (int i = 0; i < s->nfaults; i++) {
        struct fault *f = &s->faults[i];
        json_array_append_new(
            arr, json_pack("{s:s,s:s,s:I,s:I,s:i,s:I,s:I}", "match", f->match, "mode",
                           mode_names[f->mode], "count", (json_int_t)f->count, "latency_ms",
                           (json_int_t)f->latency_ms, "status", f->status, "retry_after",
                           (json_int_t)f->retry_after, "hits", (json_int_t)f->hits));
    }
    pthread_mutex_unlock(&s->meta);
    return arr;
}

/*
 * Draws the faults that match `subject` ("POST /2.0/invoices" or "webhook
 * order.created"). Latency faults add to *latency_ms; the first terminal
 * fault that fires is copied to *out and returned as 1. Consumes counts.
 * mask limits which modes count as terminal for this subject.
 */
static int faults_draw(struct sim *s, const char *subject, long *latency_ms, struct fault *out,
                       unsigned mask)
{
    int fired = 0;
    pthread_mutex_lock(&s->meta);
    for (int i = 0; i < s->nfaults; i++) {
        struct fault *f = &s->faults[i];
        if (f->count == 0) continue;
        if (fnmatch(f->match, subject, 0) != 0) continue;
        if (f->mode != F_LATENCY && (fired || !(mask & (1u << f->mode)))) continue;
        if (f->threshold != UINT64_MAX && splitmix(&s->rng) >= f->threshold) continue;
        if (f->skip > 0) {
            f->skip--;
            continue;
        }
        if (f->count > 0) f->count--;
        f->hits++;
        if (f->mode == F_LATENCY) {
            *latency_ms += f->latency_ms;
        } else {
            *out = *f;
            fired = 1;
        }
    }
    pthread_mutex_unlock(&s->meta);
    return fired;
}

#define REQUEST_MODES                                                                              \
    ((1u << F_ERROR) | (1u << F_RATE_LIMIT) | (1u << F_RESET) | (1u << F_COMMIT_THEN_DROP))

/* ---------------------------------------------------------------------- */
/* State file                                                               */

static void save_state(struct sim *s)
{
    if (!s->state_file || !s->ops->save) return;
    json_t *st = s->ops->save(s->st);
    char *text = jv_dump(st);
    json_decref(st);
    char *tmp = xasprintf("%s.tmp", s->state_file);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int ok = fd >= 0;
    size_t len = strlen(text), off = 0;
    while (ok && off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) ok = 0;
        else off += (size_t)w;
    }
    if (ok && fsync(fd) != 0) ok = 0;
    if (fd >= 0) close(fd);
    if (ok && rename(tmp, s->state_file) != 0) ok = 0;
    if (!ok) {
        log_error("sim_state_save_failed", "file=%s errno=%d", s->state_file, errno);
        unlink(tmp);
    }
    free(tmp);
    free(text);
}

static int load_state(struct sim *s, struct th_err *err)
{
    if (!s->state_file || !s->ops->load) return 0;
    FILE *f = fopen(s->state_file, "rb");
    if (!f) return errno == ENOENT ? 0 : th_err_set(err, TH_EIO, "cannot read %s", s->state_file);
    json_error_t je;
    json_t *st = json_loadf(f, 0, &je);
    fclose(f);
    if (!st)
        return th_err_set(err, TH_EPARSE, "state file %s: %s (line %d)", s->state_file, je.text,
                          je.line);
    int rc = s->ops->load(s->st, st, err);
    json_decref(st);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Webhook sender                                                           */

static void delivery_free(struct delivery *d)
{
    free(d->url);
    free(d->event);
    free(d->body);
    free(d->sign_header);
    free(d->sign_key);
    free(d->auth_header);
    free(d->tag);
    if (d->headers)
        for (char **h = d->headers; *h; h++) free(*h);
    free(d->headers);
    free(d);
}

static struct delivery *delivery_copy(const struct sim_webhook *w)
{
    struct delivery *d = xcalloc(1, sizeof *d);
    d->url = xstrdup(w->url);
    d->event = xstrdup(w->event ? w->event : "");
    d->body_len = w->body_len ? w->body_len : strlen(w->body);
    d->body = xstrndup(w->body, d->body_len);
    d->sign_header = xstrdup(w->sign_header);
    d->sign_key = xstrdup(w->sign_key ? w->sign_key : "");
    d->auth_header = xstrdup(w->auth_header);
    size_t n = 0;
    while (w->headers && w->headers[n]) n++;
    d->headers = xcalloc(n + 1, sizeof *d->headers);
    for (size_t i = 0; i < n; i++) d->headers[i] = xstrdup(w->headers[i]);
    d->max_attempts = w->max_attempts > 0 ? w->max_attempts : 4;
    d->retry_delay_ms = w->retry_delay_ms > 0 ? w->retry_delay_ms : 300000;
    d->timeout_ms = w->timeout_ms > 0 ? w->timeout_ms : 30000;
    d->on_result = w->on_result;
    d->result_arg = w->result_arg;
    d->tag = xstrdup(w->tag);
    return d;
}

static struct delivery *delivery_clone(const struct delivery *o)
{
    struct sim_webhook w = {.url = o->url,
                            .event = o->event,
                            .body = o->body,
                            .body_len = o->body_len,
                            .headers = (const char *const *)o->headers,
                            .sign_header = o->sign_header,
                            .sign_key = o->sign_key,
                            .auth_header = o->auth_header,
                            .max_attempts = o->max_attempts,
                            .retry_delay_ms = o->retry_delay_ms,
                            .timeout_ms = o->timeout_ms,
                            .on_result = o->on_result,
                            .result_arg = o->result_arg,
                            .tag = o->tag};
    return delivery_copy(&w);
}

/* wq_lock held. */
static void enqueue(struct sim *s, struct delivery *d)
{
    d->id = ++s->next_delivery_id;
    d->next_at_ms = now_ms();
    d->logent = json_pack("{s:I,s:s,s:s,s:i,s:i,s:s,s:[]}", "id", (json_int_t)d->id, "event",
                          d->event, "url", d->url, "attempts", 0, "status", 0, "result",
                          "pending", "faults");
    if (d->duplicate_of)
        json_object_set_new(d->logent, "duplicate_of", json_integer((json_int_t)d->duplicate_of));
    json_array_append_new(s->wlog, d->logent);
    d->next = NULL;
    struct delivery **pp = &s->queue;
    while (*pp) pp = &(*pp)->next;
    *pp = d;
    s->queued++;
    pthread_cond_signal(&s->wq_cond);
}

void sim_webhook_send(struct sim *s, const struct sim_webhook *w)
{
    pthread_mutex_lock(&s->wq_lock);
    if (s->queued >= SIM_MAX_WEBHOOK_QUEUE) {
        pthread_mutex_unlock(&s->wq_lock);
        log_error("sim_webhook_queue_full", "event=%s limit=%d", w->event ? w->event : "",
                  SIM_MAX_WEBHOOK_QUEUE);
        return;
    }
    enqueue(s, delivery_copy(w));
    pthread_mutex_unlock(&s->wq_lock);
}

size_t sim_webhook_pending(struct sim *s)
{
    pthread_mutex_lock(&s->wq_lock);
    size_t n = s->queued + s->inflight;
    pthread_mutex_unlock(&s->wq_lock);
    return n;
}

static void note_fault(struct delivery *d, const char *name)
{
    json_array_append_new(json_object_get(d->logent, "faults"), json_string(name));
}

/* wq_lock held. Picks the next due delivery, or returns NULL and the ms to
 * wait. Held (out_of_order) deliveries wait for a later one, at most 2 s. */
static struct delivery *pick(struct sim *s, long *wait_ms)
{
    uint64_t now = now_ms();
    struct delivery **pp, *best = NULL, **bestp = NULL;
    long wait = 200;
    for (pp = &s->queue; *pp; pp = &(*pp)->next) {
        struct delivery *d = *pp;
        if (d->held && now - d->held_since_ms < 2000) continue;
        if (d->next_at_ms <= now) {
            best = d;
            bestp = pp;
            break;
        }
        long w = (long)(d->next_at_ms - now);
        if (w < wait) wait = w;
    }
    if (!best) {
        *wait_ms = wait;
        return NULL;
    }
    *bestp = best->next;
    s->queued--;
    s->inflight++;
    return best;
}

static void deliver(struct sim *s, struct httpc *hc, struct delivery *d)
{
    if (!d->decided) {
        d->decided = 1;
        char subject[200];
        snprintf(subject, sizeof subject, "webhook %s", d->event);
        /* Draw each delivery fault independently, so several can combine. */
        static const enum fault_mode modes[] = {F_LOSE, F_OUT_OF_ORDER, F_DUPLICATE,
                                                F_BAD_SIGNATURE, F_SLOW_RECEIVER};
        for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
            struct fault f;
            long lat = 0;
            if (!faults_draw(s, subject, &lat, &f, 1u << modes[i])) continue;
            pthread_mutex_lock(&s->wq_lock);
            note_fault(d, mode_names[modes[i]]);
            pthread_mutex_unlock(&s->wq_lock);
            switch (modes[i]) {
            case F_LOSE: d->lose = 1; break;
            case F_OUT_OF_ORDER:
                d->held = 1;
                d->held_since_ms = now_ms();
                break;
            case F_DUPLICATE: d->dup = 1; break;
            case F_BAD_SIGNATURE: d->bad_sig = 1; break;
            case F_SLOW_RECEIVER:
                d->slow = 1;
                d->slow_ms = f.latency_ms > 0 ? f.latency_ms : 50;
                break;
            default: break;
            }
        }
        if (d->lose) {
            pthread_mutex_lock(&s->wq_lock);
            json_object_set_new(d->logent, "result", json_string("lost"));
            s->inflight--;
            pthread_mutex_unlock(&s->wq_lock);
            delivery_free(d);
            return;
        }
        if (d->held) {
            pthread_mutex_lock(&s->wq_lock);
            s->inflight--;
            d->next = s->queue;
            s->queue = d;
            s->queued++;
            pthread_mutex_unlock(&s->wq_lock);
            return;
        }
    }

    /* Build headers. */
    size_t nh = 0;
    while (d->headers[nh]) nh++;
    const char **hdrs = xcalloc(nh + 4, sizeof *hdrs);
    size_t k = 0;
    for (size_t i = 0; i < nh; i++) hdrs[k++] = d->headers[i];
    hdrs[k++] = "Content-Type: application/json";
    char *sig = NULL, *auth = NULL;
    if (d->sign_header) {
        char hex[65];
        sim_hmac_sha256_hex(d->sign_key, d->body, d->body_len, hex);
        if (d->bad_sig) hex[0] = hex[0] == '0' ? '1' : '0', hex[63] = hex[63] == 'f' ? 'e' : 'f';
        sig = xasprintf("%s: %s", d->sign_header, hex);
        hdrs[k++] = sig;
    }
    if (d->auth_header) {
        auth = d->bad_sig && !d->sign_header ? xasprintf("%sX", d->auth_header)
                                             : xstrdup(d->auth_header);
        hdrs[k++] = auth;
    }
    hdrs[k] = NULL;

    /* Timeouts belong to a client, so a slow_receiver attempt (or a
     * delivery with its own timeout) uses a one-off client. */
    struct httpc_resp r;
    httpc_resp_init(&r);
    struct th_err err;
    struct httpc *one = NULL;
    if (d->slow || d->timeout_ms != 30000) {
        struct httpc_config cfg = {.connect_timeout_ms = 2000,
                                   .timeout_ms = d->slow ? d->slow_ms : d->timeout_ms};
        one = httpc_new(&cfg);
    }
    int rc = httpc_do(one ? one : hc, "POST", d->url, hdrs, d->body, d->body_len, &r, &err);
    httpc_free(one);
    d->attempts++;
    int stop = d->on_result ? d->on_result(d->result_arg, d->tag, rc == 0, r.status) : 0;

    pthread_mutex_lock(&s->wq_lock);
    s->inflight--;
    json_object_set_new(d->logent, "attempts", json_integer(d->attempts));
    json_object_set_new(d->logent, "status", json_integer(r.status));
    /* Any delivery that went out releases held (out_of_order) ones behind it. */
    for (struct delivery *q = s->queue; q; q = q->next)
        if (q->held) q->held = 0, q->next_at_ms = now_ms();
    d->slow = 0; /* slowness applies to the first attempt only */
    if (rc == 0) {
        json_object_set_new(d->logent, "result", json_string("delivered"));
        if (d->dup) {
            struct delivery *c = delivery_clone(d);
            c->decided = 1; /* the copy carries no further faults */
            c->duplicate_of = d->id;
            enqueue(s, c);
        }
        delivery_free(d);
    } else if (stop) {
        json_object_set_new(d->logent, "result", json_string("discarded"));
        json_object_set_new(d->logent, "error", json_string(err.msg));
        delivery_free(d);
    } else if (d->attempts >= d->max_attempts) {
        json_object_set_new(d->logent, "result", json_string("failed"));
        json_object_set_new(d->logent, "error", json_string(err.msg));
        delivery_free(d);
    } else {
        json_object_set_new(d->logent, "error", json_string(err.msg));
        d->next_at_ms = now_ms() + (uint64_t)d->retry_delay_ms;
        d->next = s->queue;
        s->queue = d;
        s->queued++;
    }
    pthread_mutex_unlock(&s->wq_lock);
    httpc_resp_release(&r);
    free(sig);
    free(auth);
    free(hdrs);
}

size_t sim_webhook_cancel(struct sim *s, const char *tag)
{
    size_t n = 0;
    pthread_mutex_lock(&s->wq_lock);
    for (struct delivery **pp = &s->queue; *pp;) {
        struct delivery *d = *pp;
        if (d->tag && tag && strcmp(d->tag, tag) == 0) {
            *pp = d->next;
            s->queued--;
            json_object_set_new(d->logent, "result", json_string("discarded"));
            delivery_free(d);
            n++;
        } else {
            pp = &d->next;
        }
    }
    pthread_mutex_unlock(&s->wq_lock);
    return n;
}

static void *sender_main(void *arg)
{
    struct sim *s = arg;
    struct httpc_config cfg = {.connect_timeout_ms = 2000, .timeout_ms = 30000};
    struct httpc *hc = httpc_new(&cfg);
    pthread_mutex_lock(&s->wq_lock);
    while (!s->stopping) {
        long wait = 0;
        struct delivery *d = pick(s, &wait);
        if (!d) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += (wait > 0 ? wait : 1) * 1000000L;
            ts.tv_sec += ts.tv_nsec / 1000000000L;
            ts.tv_nsec %= 1000000000L;
            pthread_cond_timedwait(&s->wq_cond, &s->wq_lock, &ts);
            continue;
        }
        pthread_mutex_unlock(&s->wq_lock);
        deliver(s, hc, d);
        pthread_mutex_lock(&s->wq_lock);
    }
    pthread_mutex_unlock(&s->wq_lock);
    httpc_free(hc);
    return NULL;
}

static void webhooks_clear(struct sim *s)
{
    pthread_mutex_lock(&s->wq_lock);
    while (s->queue) {
        struct delivery *d = s->queue;
        s->queue = d->next;
        delivery_free(d);
    }
    s->queued = 0;
    json_array_clear(s->wlog);
    pthread_mutex_unlock(&s->wq_lock);
}

/* ---------------------------------------------------------------------- */
/* Control API                                                              */

static void control(struct sim *s, const struct sim_req *req, struct httpd_resp *resp)
{
    const char *sub = req->path + strlen("/_sim/");
    int get = strcmp(req->method, "GET") == 0;
    int post = strcmp(req->method, "POST") == 0;
    int del = strcmp(req->method, "DELETE") == 0;
    struct th_err err;

    if (strcmp(sub, "health") == 0 && get) {
        sim_json(resp, 200, json_pack("{s:s,s:b}", "emulator", s->ops->name, "ok", 1));
    } else if (strcmp(sub, "reset") == 0 && post) {
        pthread_mutex_lock(&s->meta);
        s->nfaults = 0;
        s->rng = s->cfg.seed;
        for (struct bucket *b = s->buckets; b; b = b->next) b->used = 0;
        pthread_mutex_unlock(&s->meta);
        log_clear(s);
        webhooks_clear(s);
        pthread_mutex_lock(&s->lock);
        s->ops->reset(s->st);
        pthread_mutex_unlock(&s->lock);
        save_state(s);
        sim_json(resp, 200, json_pack("{s:b}", "reset", 1));
    } else if (strcmp(sub, "requests") == 0 && get) {
        const char *since = httpd_req_arg(req->http, "since");
        sim_json(resp, 200,
                 json_pack("{s:o}", "requests",
                           log_json(s, since ? strtoull(since, NULL, 10) : 0)));
    } else if (strcmp(sub, "requests") == 0 && del) {
        log_clear(s);
        sim_json(resp, 200, json_pack("{s:b}", "cleared", 1));
    } else if (strcmp(sub, "faults") == 0 && get) {
        sim_json(resp, 200, json_pack("{s:o}", "faults", faults_json(s)));
    } else if (strcmp(sub, "faults") == 0 && del) {
        pthread_mutex_lock(&s->meta);
        s->nfaults = 0;
        pthread_mutex_unlock(&s->meta);
        sim_json(resp, 200, json_pack("{s:b}", "cleared", 1));
    } else if (strcmp(sub, "faults") == 0 && post) {
        json_t *list = json_object_get(req->body, "faults");
        json_t *one = NULL;
        if (!list && json_is_object(req->body)) {
            one = json_array();
            json_array_append(one, req->body);
            list = one;
        }
        if (!json_is_array(list)) {
            json_decref(one);
            sim_json(resp, 400, json_pack("{s:s}", "error",
                                          "body must be a fault object or {\"faults\":[...]}"));
            return;
        }
        struct fault fs[SIM_MAX_FAULTS];
        size_t n = json_array_size(list), i;
        json_t *v;
        int bad = 0;
        json_array_foreach(list, i, v) {
            if (i >= SIM_MAX_FAULTS || fault_from_json(v, &fs[i], &err) != 0) {
                if (i >= SIM_MAX_FAULTS)
                    th_err_set(&err, TH_ELIMIT, "at most %d faults", SIM_MAX_FAULTS);
                bad = 1;
                break;
            }
        }
        json_decref(one);
        if (!bad) {
            pthread_mutex_lock(&s->meta);
            if ((size_t)s->nfaults + n > SIM_MAX_FAULTS) {
                bad = 1;
                th_err_set(&err, TH_ELIMIT, "at most %d faults", SIM_MAX_FAULTS);
            } else {
                for (i = 0; i < n; i++) s->faults[s->nfaults++] = fs[i];
            }
            pthread_mutex_unlock(&s->meta);
        }
        if (bad) sim_json(resp, 400, json_pack("{s:s}", "error", err.msg));
        else sim_json(resp, 201, json_pack("{s:o}", "faults", faults_json(s)));
    } else if (strcmp(sub, "webhooks") == 0 && get) {
        pthread_mutex_lock(&s->wq_lock);
        json_t *o = json_pack("{s:O,s:I}", "deliveries", s->wlog, "pending",
                              (json_int_t)(s->queued + s->inflight));
        pthread_mutex_unlock(&s->wq_lock);
        sim_json(resp, 200, o);
    } else {
        int rc = TH_ENOTFOUND;
        if (s->ops->control) {
            pthread_mutex_lock(&s->lock);
            rc = s->ops->control(s->st, sub, req, resp);
            pthread_mutex_unlock(&s->lock);
            if (rc == 0 && !get) save_state(s);
        }
        if (rc == TH_ENOTFOUND)
            sim_json(resp, 404, json_pack("{s:s,s:s}", "error", "no such control endpoint",
                                          "see", "sim/README.md"));
    }
}

/* ---------------------------------------------------------------------- */
/* Request entry point                                                      */

static void on_http(void *arg, const struct httpd_req *hr, struct httpd_resp *resp)
{
    struct sim *s = arg;
    size_t len;
    const char *body = httpd_req_body(hr, &len);
    struct sim_req req = {.method = httpd_req_method(hr),
                          .path = httpd_req_path(hr),
                          .http = hr,
                          .raw_body = body,
                          .raw_len = len};
    if (len) {
        req.body = jv_parse(body, len, 64, NULL);
        req.body_invalid = req.body == NULL;
    }

    if (strncmp(req.path, "/_sim/", 6) == 0) {
        control(s, &req, resp);
        json_decref(req.body);
        return;
    }

    uint64_t seq = log_request(s, hr, body, len);
    char subject[300];
    snprintf(subject, sizeof subject, "%s %s", req.method, req.path);
    struct fault f;
    long latency = 0;
    int fired = faults_draw(s, subject, &latency, &f, REQUEST_MODES);
    sleep_ms(latency);

    if (fired && f.mode == F_RESET) {
        resp->drop = 1;
        log_outcome(s, seq, 0, "reset");
    } else if (fired && (f.mode == F_ERROR || f.mode == F_RATE_LIMIT)) {
        int status = f.mode == F_RATE_LIMIT ? 429 : f.status;
        if (f.mode == F_RATE_LIMIT) {
            char ra[24];
            snprintf(ra, sizeof ra, "%ld", f.retry_after);
            httpd_resp_header(resp, "Retry-After", ra);
        }
        if (f.body[0])
            httpd_resp_set(resp, status, "application/json", f.body, strlen(f.body));
        else
            sim_json(resp, status,
                     json_pack("{s:s}", "error",
                               status == 429 ? "Too Many Requests" : "injected server error"));
        log_outcome(s, seq, status, mode_names[f.mode]);
    } else {
        pthread_mutex_lock(&s->lock);
        s->ops->handle(s->st, &req, resp);
        pthread_mutex_unlock(&s->lock);
        if (strcmp(req.method, "GET") != 0) save_state(s);
        if (fired && f.mode == F_COMMIT_THEN_DROP) {
            resp->drop = 1;
            log_outcome(s, seq, resp->status, "commit_then_drop");
        } else {
            log_outcome(s, seq, resp->status, latency ? "latency" : NULL);
        }
    }
    json_decref(req.body);
}

/* ---------------------------------------------------------------------- */
/* Lifecycle                                                                */

int sim_open(struct sim **out, const struct sim_ops *ops, const struct sim_config *cfg,
             struct th_err *err)
{
    struct sim *s = xcalloc(1, sizeof *s);
    s->ops = ops;
    s->cfg = *cfg;
    if (!s->cfg.seed) s->cfg.seed = 1;
    s->rng = s->cfg.seed;
    s->state_file = xstrdup(cfg->state_file);
    s->wlog = json_array();
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->meta, NULL);
    pthread_mutex_init(&s->wq_lock, NULL);
    pthread_cond_init(&s->wq_cond, NULL);

    s->st = ops->create(s);
    int rc = load_state(s, err);
    if (rc == 0) {
        struct httpd_config hc = {.listen = cfg->listen ? cfg->listen : "127.0.0.1:0",
                                  .threads = 0,
                                  .max_body = 4u * 1024 * 1024,
                                  .handler = on_http,
                                  .arg = s};
        rc = httpd_open(&s->httpd, &hc, err);
    }
    if (rc == 0 && pthread_create(&s->sender, NULL, sender_main, s) != 0) {
        rc = th_err_set(err, TH_EINTERNAL, "cannot start the webhook sender thread");
        httpd_close(s->httpd);
        s->httpd = NULL;
    }
    if (rc != 0) {
        ops->destroy(s->st);
        json_decref(s->wlog);
        free(s->state_file);
        free(s);
        return rc;
    }
    s->sender_started = 1;
    snprintf(s->base_url, sizeof s->base_url, "http://127.0.0.1:%u", httpd_port(s->httpd));
    *out = s;
    return 0;
}

void sim_close(struct sim *s)
{
    if (!s) return;
    httpd_close(s->httpd);
    pthread_mutex_lock(&s->wq_lock);
    s->stopping = 1;
    pthread_cond_signal(&s->wq_cond);
    pthread_mutex_unlock(&s->wq_lock);
    if (s->sender_started) pthread_join(s->sender, NULL);
    webhooks_clear(s);
    json_decref(s->wlog);
    log_clear(s);
    s->ops->destroy(s->st);
    while (s->buckets) {
        struct bucket *b = s->buckets;
        s->buckets = b->next;
        free(b->key);
        free(b);
    }
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->meta);
    pthread_mutex_destroy(&s->wq_lock);
    pthread_cond_destroy(&s->wq_cond);
    free(s->state_file);
    free(s);
}

const char *sim_form_field(const char *body, const char *name, char *out, size_t n)
{
    size_t nl = strlen(name);
    for (const char *p = body; p && *p;) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
            size_t o = 0;
            for (size_t i = nl + 1; i < len && o + 1 < n; i++) {
                if (p[i] == '+') {
                    out[o++] = ' ';
                } else if (p[i] == '%' && i + 2 < len) {
                    char hex[3] = {p[i + 1], p[i + 2], 0};
                    out[o++] = (char)strtol(hex, NULL, 16);
                    i += 2;
                } else {
                    out[o++] = p[i];
                }
            }
            out[o] = '\0';
            return out;
        }
        p = amp ? amp + 1 : NULL;
    }
    return NULL;
}

/* The value of part `name` in a multipart/form-data body: after the part's
 * blank line, up to the next "\r\n--" boundary. */
static const char *multipart_field(const char *body, size_t len, const char *name, char *out,
                                   size_t n)
{
    char needle[128];
    snprintf(needle, sizeof needle, "name=\"%s\"", name);
    const char *end = body + len;
    const char *p = body;
    while ((p = strstr(p, needle)) && p < end) {
        const char *v = strstr(p, "\r\n\r\n");
        if (!v) return NULL;
        v += 4;
        const char *stop = strstr(v, "\r\n--");
        size_t vl = stop ? (size_t)(stop - v) : strlen(v);
        if (vl >= n) vl = n - 1;
        memcpy(out, v, vl);
        out[vl] = '\0';
        return out;
    }
    return NULL;
}

const char *sim_body_field(const struct sim_req *req, const char *name, char *out, size_t n)
{
    if (json_is_object(req->body)) {
        const char *v = jv_get_text(req->body, name, out, n);
        return v ? out : NULL;
    }
    const char *ct = httpd_req_header(req->http, "Content-Type");
    if (ct && strstr(ct, "multipart/form-data"))
        return multipart_field(req->raw_body, req->raw_len, name, out, n);
    return sim_form_field(req->raw_body, name, out, n);
}

char *sim_base64(const void *data, size_t len)
{
    char *out = xmalloc(4 * ((len + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    return out;
}

long long sim_next_id(struct sim *s, json_t *next, const char *kind, long long base,
                      unsigned spread)
{
    json_t *v = json_object_get(next, kind);
    long long id = v ? json_integer_value(v) : base;
    long long step = 1 + (spread ? (long long)(sim_rand(s) % spread) : 0);
    json_object_set_new(next, kind, json_integer(id + step));
    return id;
}

char *sim_token(struct sim *s, const char *prefix)
{
    return xasprintf("%s%016llx%016llx", prefix, (unsigned long long)sim_rand(s),
                     (unsigned long long)sim_rand(s));
}
