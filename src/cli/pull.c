/*
 * cli/pull — `tarheel orders pull` and `tarheel orders transfer --from --to`
 * (see pull.h).
 *
 * The bar is redrawn in place ("\r" and erase-to-end-of-line) at most every
 * tenth of a second, and always at a change of phase and at the end, so a
 * fast pull does not spend its time writing to the terminal. Without a
 * terminal (a log, a pipe, cron) there is one line per 50 orders and one per
 * rate-limit wait, which reads well in a log file.
 */
#include "cli/pull.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/err.h"
#include "core/xmalloc.h"
#include "net/httpc.h"
#include "platform/platform.h"
#include "worker/pull.h"

/* Cells of the progress bar. */
#define BAR_WIDTH 24
/* Without a terminal: one progress line per this many orders. */
#define PLAIN_EVERY 50

static int fail(const struct th_err *err, int code)
{
    fprintf(stderr, "tarheel: %s\n  what to do: %s\n", err->msg, th_err_todo(err->code));
    return code;
}

static int parse_num(const char *s, int64_t *out)
{
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end || errno) return -1;
    *out = v;
    return 0;
}

/* The store, the connection and the range the options name. Returns
 * CLI_OK with *s open and *c filled, or a CLI code after saying why. */
static int open_conn(const struct cli_pull_opts *o, const char *cmd, struct store **s,
                     struct store_conn *c, struct pull_range *r)
{
    struct th_err err = {0};
    int64_t store_id;
    if (parse_num(o->store, &store_id) || store_id <= 0) {
        fprintf(stderr,
                "usage: tarheel %s --store STORE_ID [--platform salla|zid] --from "
                "YYYY-MM-DD --to YYYY-MM-DD\n",
                cmd);
        return CLI_USAGE;
    }
    if (pull_range_parse(o->from, o->to, r, &err) != 0) {
        fprintf(stderr, "tarheel: --%s (--from and --to are days in Riyadh time, both included)\n",
                err.msg);
        return CLI_USAGE;
    }
    const char *pn = o->platform ? o->platform : "salla";
    const struct platform_ops *p = platform_by_name(pn);
    if (!p) {
        fprintf(stderr, "tarheel: unknown platform '%s' (salla or zid)\n", pn);
        return CLI_USAGE;
    }
    if (store_open(s, o->db, &err) != 0) {
        fprintf(stderr, "tarheel: cannot open the database %s: %s\n  %s\n", o->db, err.msg,
                th_err_todo(err.code));
        return CLI_FAIL;
    }
    int rc = store_conn_find(*s, p->platform, store_id, c, &err);
    if (rc) {
        if (rc == TH_ENOTFOUND)
            fprintf(stderr, "tarheel: %s store %lld is not connected (see `tarheel connect %s`)\n",
                    pn, (long long)store_id, pn);
        else
            fail(&err, CLI_FAIL);
        rc = rc == TH_ENOTFOUND ? CLI_NOTFOUND : cli_exit_code(err.code);
        store_close(*s);
        *s = NULL;
        return rc;
    }
    return CLI_OK;
}

/* ---------------------------------------------------------------------- */
/* orders pull                                                              */

static atomic_int interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    atomic_store(&interrupted, 1);
}

struct view {
    int tty;
    int drawn;       /* a bar is on the line (tty) */
    int64_t last_ms; /* last redraw */
    enum pull_phase phase;
    int64_t plain_next;    /* next "pulled" count to print a line at (plain) */
    int plain_listed_page; /* last listing page printed (plain) */
    int64_t plain_wait;    /* the wait last printed (plain) */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "pulled 340/1200 ▕█████░░░░▏" or "pulled 340" when the total is unknown. */
static void progress_text(const struct pull_progress *p, char *out, size_t n)
{
    if (p->phase == PULL_LISTING) {
        snprintf(out, n, "listing orders: %lld found (page %d)", (long long)p->listed, p->page);
    } else if (p->total >= 0) {
        char bar[BAR_WIDTH * 3 + 8];
        size_t o = 0;
        int full = p->total ? (int)(p->pulled * BAR_WIDTH / p->total) : BAR_WIDTH;
        o += (size_t)snprintf(bar + o, sizeof bar - o, "\u2595");
        for (int i = 0; i < BAR_WIDTH; i++)
            o += (size_t)snprintf(bar + o, sizeof bar - o, "%s", i < full ? "\u2588" : "\u2591");
        snprintf(bar + o, sizeof bar - o, "\u258f");
        snprintf(out, n, "pulled %lld/%lld %s", (long long)p->pulled, (long long)p->total, bar);
    } else {
        snprintf(out, n, "pulled %lld", (long long)p->pulled);
    }
    if (p->wait_s > 0) {
        size_t l = strlen(out);
        snprintf(out + l, n - l, " (the platform asked to wait %lld s)", (long long)p->wait_s);
    }
}

static void on_progress(void *arg, const struct pull_progress *p)
{
    struct view *v = arg;
    char line[256];
    if (v->tty) {
        int64_t t = now_ms();
        if (p->phase == v->phase && !p->wait_s && t - v->last_ms < 100 && p->pulled != p->total)
            return;
        v->phase = p->phase;
        v->last_ms = t;
        progress_text(p, line, sizeof line);
        printf("\r%s\033[K", line);
        fflush(stdout);
        v->drawn = 1;
        return;
    }
    if (p->phase == PULL_LISTING) {
        if (p->page != v->plain_listed_page && !p->wait_s) {
            v->plain_listed_page = p->page;
            printf("listing orders: page %d, %lld found\n", p->page, (long long)p->listed);
        }
    } else if (p->phase == PULL_FETCHING && v->phase != PULL_FETCHING) {
        if (p->pulled)
            printf("%lld orders in the range, %lld of them pulled by an earlier run\n",
                   (long long)p->total, (long long)p->pulled);
        else
            printf("%lld orders in the range\n", (long long)p->total);
        v->plain_next = (p->pulled / PLAIN_EVERY + 1) * PLAIN_EVERY;
    } else if ((p->phase == PULL_FETCHING && p->pulled >= v->plain_next) ||
               (p->phase == PULL_DONE && v->phase == PULL_FETCHING &&
                p->pulled != v->plain_next - PLAIN_EVERY)) {
        printf("pulled %lld/%lld\n", (long long)p->pulled, (long long)p->total);
        v->plain_next = (p->pulled / PLAIN_EVERY + 1) * PLAIN_EVERY;
    }
    if (p->wait_s && p->wait_s != v->plain_wait)
        printf("the platform asked to wait %lld s (rate limit); waiting\n", (long long)p->wait_s);
    v->plain_wait = p->wait_s;
    v->phase = p->phase;
    fflush(stdout);
}

int cli_orders_pull(const struct cli_pull_opts *o)
{
    int64_t max_pages = 0, base_ms = 0;
    if ((o->max_pages && (parse_num(o->max_pages, &max_pages) || max_pages < 1)) ||
        (o->retry_base_ms && (parse_num(o->retry_base_ms, &base_ms) || base_ms < 1))) {
        fprintf(stderr, "tarheel: --max-pages and --retry-base-ms take positive numbers\n");
        return CLI_USAGE;
    }
    struct store *s = NULL;
    struct store_conn c = {0};
    struct pull_range r;
    int rc = open_conn(o, "orders pull", &s, &c, &r);
    if (rc) return rc;
    const char *pname = model_platform_name(c.platform);
    struct view v = {.tty = isatty(STDOUT_FILENO), .phase = PULL_LISTING};
    struct httpc *hc = httpc_new(NULL);
    atomic_store(&interrupted, 0);
    struct sigaction sa = {.sa_handler = on_sigint}, old_int, old_term;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    struct pull_config cfg = {.store = s,
                              .http = hc,
                              .conn_id = c.id,
                              .range = r,
                              .again = o->again,
                              .max_pages = (int)max_pages,
                              .retry_base_ms = (long)base_ms,
                              .progress = on_progress,
                              .arg = &v,
                              .stop = &interrupted};
    struct pull_progress p;
    struct th_err err = {0};
    int prc = pull_run(&cfg, &p, &err);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    httpc_free(hc);
    if (v.drawn) printf("\n"); /* the bar stays, as it was last drawn */
    char again[160];
    snprintf(again, sizeof again,
             "tarheel orders pull --store %lld --platform %s --from %.10s "
             "--to %.10s",
             (long long)c.store_id, pname, r.text, r.text + 12);
    if (prc) {
        rc = fail(&err, CLI_FAIL);
        fprintf(stderr, "  to continue: %s\n", again);
    } else if (p.finished_before) {
        printf("Orders created %s in %s store %lld were pulled already (%lld orders); see "
               "`tarheel orders list`. To look for orders again: %s --again\n",
               r.text, pname, (long long)c.store_id, (long long)p.total, again);
    } else if (p.phase == PULL_DONE) {
        printf("Pulled %lld orders created %s from %s store %lld: %lld new, listed as not "
               "transferred",
               (long long)p.total, r.text, pname, (long long)c.store_id, (long long)p.added);
        if (p.known) printf("; %lld known already, kept as they were", (long long)p.known);
        if (p.gone) printf("; %lld deleted in the store meanwhile", (long long)p.gone);
        if (p.resumed) printf(" (continued from an earlier run)");
        printf(".\nNothing was sent to Qoyod. To send them: tarheel orders transfer --store %lld "
               "--platform %s --from %.10s --to %.10s\n",
               (long long)c.store_id, pname, r.text, r.text + 12);
    } else {
        /* stopped as asked: --max-pages, or Ctrl-C */
        int sig = atomic_load(&interrupted);
        if (p.total >= 0)
            printf("Stopped%s after pulling %lld of %lld orders created %s. Run the same command "
                   "again to continue: %s\n",
                   sig ? " (interrupted)" : " at --max-pages", (long long)p.pulled,
                   (long long)p.total, r.text, again);
        else
            printf("Stopped%s while listing the orders created %s; nothing was pulled. Run the "
                   "same command again: %s\n",
                   sig ? " (interrupted)" : "", r.text, again);
        rc = sig ? CLI_FAIL : CLI_OK;
    }
    store_conn_release(&c);
    store_close(s);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* orders transfer --from --to                                              */

/* 1 when the answer on stdin is yes. */
static int ask_yes(void)
{
    char line[32];
    if (!fgets(line, sizeof line, stdin)) return 0;
    line[strcspn(line, "\r\n")] = '\0';
    return !strcasecmp(line, "y") || !strcasecmp(line, "yes");
}

int cli_orders_transfer_range(const struct cli_pull_opts *o)
{
    struct store *s = NULL;
    struct store_conn c = {0};
    struct pull_range r;
    int rc = open_conn(o, "orders transfer", &s, &c, &r);
    if (rc) return rc;
    struct th_err err = {0};
    int64_t *ids = NULL;
    size_t n = 0, left = 0, queued = 0;
    if (pull_range_orders(s, c.id, &r, &ids, &n, &left, &err) != 0) {
        rc = fail(&err, CLI_FAIL);
        goto out;
    }
    const char *what = n == 1 ? "order" : "orders";
    if (left)
        printf("%zu cancelled or refunded order%s created %s %s left out.\n", left,
               left == 1 ? "" : "s", r.text, left == 1 ? "is" : "are");
    if (n == 0) {
        printf("No order created %s in %s store %lld is waiting to be transferred (not "
               "transferred or failed). Pull old orders first: tarheel orders pull --store %lld "
               "--platform %s --from %.10s --to %.10s\n",
               r.text, model_platform_name(c.platform), (long long)c.store_id,
               (long long)c.store_id, model_platform_name(c.platform), r.text, r.text + 12);
        goto out;
    }
    if (!o->yes) {
        if (!isatty(STDIN_FILENO)) {
            fprintf(stderr,
                    "tarheel: this would transfer %zu %s created %s to Qoyod, and stdin "
                    "is not a terminal to confirm it: add --yes to transfer them\n",
                    n, what, r.text);
            rc = CLI_USAGE;
            goto out;
        }
        printf("Transfer %zu %s created %s to Qoyod? [y/N] ", n, what, r.text);
        fflush(stdout);
        if (!ask_yes()) {
            printf("Nothing was transferred.\n");
            goto out;
        }
    }
    if (pull_range_transfer(s, c.id, ids, n, "transfer of a date range from the command line",
                            &queued, &err) != 0) {
        rc = fail(&err, CLI_FAIL);
        if (!queued) goto out;
    }
    printf("queued %zu %s created %s\n", queued, queued == 1 ? "order" : "orders", r.text);
    fflush(stdout);
    if (o->queue_only || !o->drain) goto out;
    int drc = o->drain(o->drain_arg, s);
    if (rc == CLI_OK) rc = drc;
    size_t sent = 0, failed = 0, waiting = 0;
    for (size_t i = 0; i < queued; i++) {
        struct store_order so;
        if (store_order_get(s, c.id, ids[i], &so, &err) != 0) {
            waiting++;
            continue;
        }
        if (so.xfer == STORE_XFER_TRANSFERRED)
            sent++;
        else if (so.xfer == STORE_XFER_FAILED)
            failed++;
        else
            waiting++;
        store_order_release(&so);
    }
    printf("transferred %zu, failed %zu", sent, failed);
    if (waiting)
        printf(", still queued or skipped %zu (`tarheel serve` sends what is queued)", waiting);
    printf("\n");
    if (failed)
        printf("see why with `tarheel orders list --failed`; after fixing: tarheel orders "
               "retry --failed\n");
out:
    free(ids);
    store_conn_release(&c);
    store_close(s);
    return rc;
}
