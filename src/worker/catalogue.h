/*
 * catalogue — what connecting a store sets up in Qoyod (seed 002: "all your
 * store's categories on Salla will be transferred to Qoyod, in addition to
 * creating default accounts for Salla (Sales Account, Expense Account,
 * ..)"): the store's default accounts found or created in Qoyod's chart of
 * accounts, and the store's categories as Qoyod product categories.
 *
 * Owns the mappings of kind "account" (keys "sales", "cost", "opening": the
 * Qoyod account ids products and opening balances use) and "category" (key:
 * the store's category id). Safe to run again: it finds what exists (by the
 * stored mapping, then by name) before creating anything, so a second run
 * creates nothing. It never touches orders or stock. docs/CATALOGUE.md.
 */
#ifndef TH_WORKER_CATALOGUE_H
#define TH_WORKER_CATALOGUE_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "net/httpc.h"
#include "qoyod/qoyod.h"
#include "store/store.h"

struct catalogue_report {
    int64_t sales, cost, opening; /* the account ids in use */
    size_t accounts_found, accounts_created;
    size_t categories, categories_found, categories_created;
    int categories_failed; /* 1: the store's categories could not be read (reason logged) */
};

/*
 * Sets up connection c (saved: c->id set) in its Qoyod account: the three
 * default accounts, then the store's categories. A failure to read the
 * store's categories is reported (categories_failed) but does not fail the
 * accounts. patience (NULL: none) waits out Qoyod's 429s, for a command a
 * person waits on (qoyod_set_patience; `tarheel connect`); without it a
 * 429 fails the setup, which the background pass tries again later.
 * Returns 0, or the first failure (Qoyod's, classified, or the store's);
 * what was done before it stays done and mapped.
 */
int catalogue_setup(struct store *s, struct httpc *platform_http,
                    const struct httpc_config *qoyod_cfg, struct qoyod_patience *patience,
                    const struct store_conn *c, struct catalogue_report *out,
                    struct th_err *err) TH_MUST_CHECK;

/* A connection made without the CLI (Easy Mode: the app's install reaches
 * `tarheel serve`) is set up in the background: one pass over the active
 * connections not set up yet, each tried at most every
 * CATALOGUE_RETRY_S (mapping "catalogue"/"tried_at"). For the stock poller's
 * thread. Returns 0 or a store error; remote failures are logged. */
#define CATALOGUE_RETRY_S 600
int catalogue_round(struct store *s, struct httpc *platform_http, int64_t now_s,
                    struct th_err *err) TH_MUST_CHECK;

/* The default account ids of connection conn_id (0 when not set up). */
void catalogue_accounts(struct store *s, int64_t conn_id, int64_t *sales, int64_t *cost,
                        int64_t *opening);

#endif
