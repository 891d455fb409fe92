/*
 * cli — the `tarheel` command line: one table maps each command to its
 * handler (STYLE C1), and every failure is a clean exit code with a message
 * that says what to do, never a signal.
 *
 * Owns argument parsing and the wording of command output. Commands reach
 * the rest of tarheel through its public module interfaces only.
 */
#ifndef TH_CLI_CLI_H
#define TH_CLI_CLI_H

/* Exit codes (the same list is in every command's --help and the man
 * page). Scripts may rely on them: they are never renumbered. */
#define CLI_OK 0
#define CLI_FAIL 1     /* the command ran and failed (message on stderr) */
#define CLI_USAGE 2    /* the command line is wrong */
#define CLI_NOTFOUND 3 /* no such store, order or user */
#define CLI_AUTH 4     /* a credential was refused (API key, token, password) */
#define CLI_TEMP 5     /* a service or the database is unavailable now: run it again later */

/* The exit code for a failure with error code th_code (core/err.h):
 * TH_ENOTFOUND → CLI_NOTFOUND, TH_EAUTH → CLI_AUTH, temporary failures
 * (TH_ETEMP, TH_ERATE, TH_EUNKNOWN, TH_EDB, TH_EIO, TH_EDISKFULL) → CLI_TEMP,
 * TH_EINVAL → CLI_USAGE, anything else CLI_FAIL. */
int cli_exit_code(int th_code);

/* Runs `tarheel argv[1] ...`. Returns the process exit code. */
int cli_main(int argc, char **argv);

#endif
