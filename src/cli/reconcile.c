/*
 * cli/reconcile — `tarheel reconcile` (see reconcile.h).
 *
 * The output leads with the verdict and the totals an accountant compares
 * (the store's sales against Qoyod's invoices, what was cancelled or
 * returned against the credit notes), then one line per difference, then
 * the orders tarheel failed (not differences: tarheel already says why).
 */
#include "cli/reconcile.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/err.h"
#include "core/money.h"
#include "net/httpc.h"
#include "platform/platform.h"
#include "store/store.h"
#include "worker/reconcile.h"

static int fail(const struct th_err *err, int rc)
{
    fprintf(stderr, "tarheel: %s\n  what to do: %s\n", err->msg, th_err_todo(err->code));
    return rc;
}

static void print_report(FILE *out, const struct reconcile_report *r, const char *pname,
                         int64_t store_id)
{
    char a[MONEY_FMT_MAX], b[MONEY_FMT_MAX], c[MONEY_FMT_MAX], d[MONEY_FMT_MAX];
    fprintf(out, "Reconciliation of %s store %lld (connection %lld), orders created %s to %s "
                 "(Riyadh days); money in SAR\n\n",
            pname, (long long)store_id, (long long)r->conn_id, r->from, r->to);
    fprintf(out, "  store orders             %zu, of which %zu should be in Qoyod: %s\n",
            r->orders, r->expected, money_format(r->store_total, a, sizeof a));
    fprintf(out, "  Qoyod invoices           %zu: %s\n", r->invoices,
            money_format(r->invoiced_total, b, sizeof b));
    fprintf(out, "  cancelled or returned    %s\n", money_format(r->store_credits, c, sizeof c));
    fprintf(out, "  Qoyod credit notes       %zu: %s\n\n", r->credit_notes,
            money_format(r->credited_total, d, sizeof d));
    size_t failed = r->n - r->differences;
    if (r->differences == 0)
        fprintf(out, "No differences.\n");
    else
        fprintf(out, "%zu difference%s:\n", r->differences, r->differences == 1 ? "" : "s");
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1 && failed)
            fprintf(out, "\n%zu order%s failed in tarheel (not in Qoyod; fix, then `tarheel "
                         "orders retry --failed`):\n",
                    failed, failed == 1 ? "" : "s");
        for (size_t i = 0; i < r->n; i++) {
            const struct reconcile_item *it = &r->items[i];
            if ((it->kind == RECONCILE_FAILED) != pass) continue;
            fprintf(out, "  %-10s order %-12s invoice %-22s store %10s  qoyod %10s  %s\n",
                    reconcile_kind_name(it->kind), it->number[0] ? it->number : "-",
                    it->reference[0] ? it->reference : "-",
                    money_format(it->store_amount, a, sizeof a),
                    money_format(it->qoyod_amount, b, sizeof b), it->detail);
        }
    }
}

int cli_reconcile(const struct cli_reconcile_opts *o, FILE *out)
{
    int64_t store_id = 0;
    char *end = NULL;
    if (o->store) {
        errno = 0;
        store_id = strtoll(o->store, &end, 10);
    }
    if (!o->store || !*o->store || *end || errno || store_id <= 0) {
        fprintf(stderr, "tarheel: --store STORE_ID is required (the platform's store id, as in "
                        "`tarheel settings`)\n");
        return CLI_USAGE;
    }
    if (!o->from || !o->to) {
        fprintf(stderr, "tarheel: --from YYYY-MM-DD and --to YYYY-MM-DD are required (days of "
                        "the orders' creation, Riyadh time, both included)\n");
        return CLI_USAGE;
    }
    const char *pname = o->platform ? o->platform : "salla";
    const struct platform_ops *p = platform_by_name(pname);
    if (!p) {
        fprintf(stderr, "tarheel: unknown platform '%s' (salla or zid)\n", pname);
        return CLI_USAGE;
    }
    struct store *s;
    struct th_err err;
    if (store_open(&s, o->db, &err) != 0) {
        fprintf(stderr, "tarheel: cannot open the database %s: %s\n  %s\n", o->db, err.msg,
                th_err_todo(err.code));
        return CLI_FAIL;
    }
    struct store_conn c = {0};
    if (store_conn_find(s, p->platform, store_id, &c, &err) != 0) {
        if (err.code == TH_ENOTFOUND)
            fprintf(stderr, "tarheel: %s store %lld is not connected (see `tarheel connect %s`)\n",
                    pname, (long long)store_id, pname);
        else
            fail(&err, CLI_FAIL);
        store_close(s);
        return CLI_FAIL;
    }
    struct reconcile_env env = {.store = s, .platform_http = httpc_new(NULL)};
    struct reconcile_report r;
    int rc = reconcile_run(&env, c.id, o->from, o->to, &r, &err);
    httpc_free(env.platform_http);
    store_conn_release(&c);
    store_close(s);
    if (rc) return fail(&err, rc == TH_EINVAL || rc == TH_ELIMIT ? CLI_USAGE : CLI_FAIL);
    if (o->json) {
        char *text = reconcile_json(&r);
        fprintf(out, "%s\n", text);
        free(text);
    } else {
        print_report(out, &r, pname, store_id);
    }
    rc = r.differences ? CLI_FAIL : CLI_OK;
    reconcile_report_release(&r);
    return rc;
}
