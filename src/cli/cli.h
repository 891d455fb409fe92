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

/* Exit codes. */
#define CLI_OK 0
#define CLI_FAIL 1  /* the command ran and failed (message on stderr) */
#define CLI_USAGE 2 /* the command line is wrong */

/* Runs `tarheel argv[1] ...`. Returns the process exit code. */
int cli_main(int argc, char **argv);

#endif
