/*
 * store_sqlite — the SQLite backend of the store (struct store_ops).
 *
 * Owns the SQLite file: its pragmas (WAL, synchronous=FULL, foreign keys),
 * its numbered schema migrations and every statement run on it. Reached
 * only through store.c's dispatch; nothing else may open the file or call
 * sqlite3_* on it. It makes no policy decisions (that is the worker's job).
 */
#ifndef TH_STORE_STORE_SQLITE_H
#define TH_STORE_STORE_SQLITE_H

#include "store/store_int.h"

/* How long a statement waits for another process's write lock (the CLI
 * while `tarheel serve` runs) before the call fails with TH_EDB "busy". */
#define STORE_SQLITE_BUSY_MS 5000

/* The schema version this build writes (PRAGMA user_version). A database
 * with a higher version was written by a newer tarheel and is refused. */
#define STORE_SQLITE_SCHEMA_VERSION 13

/* Format version written with every raw event (events.format). */
#define STORE_SQLITE_EVENT_FORMAT 1

extern const struct store_ops store_sqlite_ops;

#endif
