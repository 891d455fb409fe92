/*
 * cli/report — `tarheel report`: a store's monthly report as an aligned
 * table (money with two decimals, a totals row) or, with --json, the JSON
 * that GET /api/v1/reports/monthly answers.
 *
 * Owns the wording and layout of the report on a terminal. The figures and
 * their rules are worker/report.c's; this module only finds the connection,
 * checks the options and prints. cli.c's command table reaches it through
 * cli_report.
 */
#ifndef TH_CLI_REPORT_H
#define TH_CLI_REPORT_H

#include <stdio.h>

/* The command's options, as given (NULL when absent; all borrowed). */
struct cli_report_opts {
    const char *db;       /* the database URL (--db, $TARHEEL_DB or the default); required */
    const char *store;    /* --store: the platform's store id; required */
    const char *platform; /* --platform: salla (default) or zid */
    const char *from;     /* --from YYYY-MM: first month; default the first month with orders */
    const char *to;       /* --to YYYY-MM: last month, inclusive; default the last with orders */
    int json;             /* --json: print JSON instead of the table */
};

/*
 * Prints the report of the store named by o to out; messages go to stderr.
 * Returns CLI_OK, CLI_USAGE (a missing or malformed option, from after to,
 * a range over REPORT_MAX_MONTHS) or CLI_FAIL (the store is not connected,
 * the database cannot be read).
 */
int cli_report(const struct cli_report_opts *o, FILE *out);

#endif
