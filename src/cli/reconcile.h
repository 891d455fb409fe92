/*
 * cli/reconcile — `tarheel reconcile`: a store's orders against the Qoyod
 * invoices and credit notes tarheel made, over a range of creation dates,
 * printed as a list of differences with totals, or with --json what
 * GET /api/v1/reconcile answers.
 *
 * Owns the wording and layout on a terminal; the rules are
 * worker/reconcile.c's. Read-only, like the worker module: it writes
 * nothing to the database, the store or Qoyod.
 */
#ifndef TH_CLI_RECONCILE_H
#define TH_CLI_RECONCILE_H

#include <stdio.h>

/* The command's options, as given (NULL when absent; all borrowed). */
struct cli_reconcile_opts {
    const char *db;       /* the database URL; required */
    const char *store;    /* --store: the platform's store id; required */
    const char *platform; /* --platform: salla (default) or zid */
    const char *from;     /* --from YYYY-MM-DD, required */
    const char *to;       /* --to YYYY-MM-DD, required */
    int json;             /* --json */
};

/*
 * Prints the reconciliation to out. Returns CLI_OK when there is no
 * difference (orders tarheel failed are listed but are not differences),
 * CLI_FAIL when there are differences or the run failed (message on
 * stderr), CLI_USAGE for a bad option.
 */
int cli_reconcile(const struct cli_reconcile_opts *o, FILE *out);

#endif
