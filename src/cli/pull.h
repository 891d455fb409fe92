/*
 * cli/pull — `tarheel orders pull` (old orders of a date range, recorded as
 * not transferred, with a progress bar on a terminal) and `tarheel orders
 * transfer --from D --to D` (every order of a range that is waiting, after
 * a confirmation that states the count).
 *
 * Owns the wording of these commands: progress, confirmation, summaries.
 * What a pull does and which orders a range covers are worker/pull.c's;
 * queuing is worker/manage.c's. cli.c's command table reaches this module
 * through the two functions below, with the options it parsed.
 */
#ifndef TH_CLI_PULL_H
#define TH_CLI_PULL_H

#include "store/store.h"

/* The commands' options, as given (NULL / 0 when absent; all borrowed). */
struct cli_pull_opts {
    const char *db;            /* the database URL (--db, $TARHEEL_DB or the default); required */
    const char *store;         /* --store: the platform's store id; required */
    const char *platform;      /* --platform: salla (default) or zid */
    const char *from, *to;     /* --from, --to: YYYY-MM-DD, Riyadh days, both included */
    const char *max_pages;     /* pull --max-pages N: stop (resumable) after N pages */
    const char *retry_base_ms; /* pull --retry-base-ms N: first backoff (default 1000) */
    int again;                 /* pull --again: pull a finished range again */
    int yes;                   /* transfer --yes: do not ask */
    int queue_only;            /* transfer --queue-only: queue, do not send now */
    /* transfer: sends what is queued, as `orders transfer ID` does (may be
     * NULL: queue only). Returns a CLI_* code. */
    int (*drain)(void *arg, struct store *s);
    void *drain_arg;
};

/*
 * tarheel orders pull. Progress goes to stdout: a bar redrawn in place when
 * stdout is a terminal, plain lines otherwise; messages to stderr. SIGINT
 * stops the pull after the current order (resumable). Returns CLI_OK when
 * the range is complete (or was already) or stopped at --max-pages,
 * CLI_USAGE for a missing or malformed option, CLI_FAIL otherwise
 * (interrupted, or the platform or the database failed: the message says
 * how far it got and that the same command continues).
 */
int cli_orders_pull(const struct cli_pull_opts *o);

/*
 * tarheel orders transfer --from D --to D: states the count and asks
 * "Transfer N orders created D..D to Qoyod? [y/N]" on the terminal (--yes
 * skips it; without --yes a stdin that is not a terminal is refused with
 * CLI_USAGE), queues them by hand and, unless --queue-only, sends them now
 * through o->drain and says how each ended. Returns CLI_OK (also when the
 * answer is no, or nothing is waiting), CLI_USAGE or CLI_FAIL.
 */
int cli_orders_transfer_range(const struct cli_pull_opts *o);

#endif
