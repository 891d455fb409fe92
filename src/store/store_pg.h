/*
 * store_pg — the PostgreSQL backend of the store (struct store_ops), for
 * deployments where many `tarheel serve` processes on many hosts share one
 * database ("postgres://user@host/db").
 *
 * Owns the connection pool to the server (libpq), the numbered schema
 * migrations of a PostgreSQL database (table tarheel_schema) and every
 * statement run on it. Reached only through store.c's dispatch. It makes no
 * policy decisions (that is the worker's job).
 */
#ifndef TH_STORE_STORE_PG_H
#define TH_STORE_STORE_PG_H

#include "store/store_int.h"

/* The schema version this build writes (tarheel_schema.version). A database
 * with a higher version was written by a newer tarheel and is refused. */
#define STORE_PG_SCHEMA_VERSION 9

/* Server connections one process keeps at most (calls beyond wait for a
 * free one). Worker threads, intake threads and the poller share them. */
#define STORE_PG_POOL 12

extern const struct store_ops store_pg_ops;

#endif
