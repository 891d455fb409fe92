/*
 * crash — named crash points for the crash rehearsals (docs/RELIABILITY.md).
 *
 * Owns one switch: when the environment variable TARHEEL_CRASH_AT is
 * "<point>" or "<point>:<n>", the n-th time (default 1st) this process
 * reaches that point it writes "crash point <point> reached" to stderr and
 * kills itself with SIGKILL: no atexit handler, no flush, no unwinding, the
 * same as a power cut or the OOM killer at that line. Unset (always, in
 * production), a point costs one predictable branch.
 *
 * The points, in pipeline order (scripts/crash-rehearsal.sh kills at each):
 *   intake.committed   an event and its job are committed, 200 not yet sent
 *   job.claimed        a worker leased a job, nothing done for it yet
 *   invoice.sending    "transferring" recorded, the invoice request about to go
 *   invoice.answered   Qoyod created the invoice, the outcome not recorded
 *   payment.answered   Qoyod recorded the payment, the outcome not recorded
 *   order.transferred  "transferred" recorded, the job not yet finished
 *   token.refreshed    the platform issued a new token pair, not yet saved
 *   opening.booked     a new product's opening balance counted in Qoyod, the
 *                      product's mapping not yet saved (it is booked again)
 *   opening.fixed      a correction of an opening balance counted in Qoyod,
 *                      its outcome not yet recorded (docs/STOCK.md)
 */
#ifndef TH_CORE_CRASH_H
#define TH_CORE_CRASH_H

void th_crash_point(const char *name);
/* Arms the switch as TARHEEL_CRASH_AT=spec would, whatever the environment
 * said ("" disarms). For tests that fork a child to crash in. */
void th_crash_arm(const char *spec);

#endif
