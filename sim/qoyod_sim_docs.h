/*
 * qoyod_sim_docs — the Qoyod emulator's documents: invoices, invoice payments
 * (receipts), credit notes, allocations, inventory adjustments and transfers.
 *
 * Owns the invoice line arithmetic (reference §4.8), the invoice and credit
 * note status machines, and every stock movement a document causes. All
 * amounts are int64 fixed-point computed with money_muldiv; no floating point.
 * It is called by qoyod_sim.c's router with the state lock held, and must not
 * route, authenticate or touch another tenant.
 */
#ifndef TH_SIM_QOYOD_SIM_DOCS_H
#define TH_SIM_QOYOD_SIM_DOCS_H

#include <stdint.h>

#include "sim/qoyod_sim_int.h"

/* One line's inputs: quantity (thousandths), unit price (halalas), the
 * discount (percent at scale 4, or an amount in halalas when disc_is_amount),
 * tax percent (scale 4) and whether unit_price includes VAT. */
struct qy_line_in {
    int64_t qty3, price2, disc;
    int disc_is_amount;
    int64_t tax4;
    int inclusive;
};

/* What Qoyod prints for the line: discount as percent (scale 4) and amount
 * (halalas), unrounded VAT (thousandths), line total incl. VAT (halalas),
 * the net unit price (halalas; differs from the input only when inclusive). */
struct qy_line_out {
    int64_t disc_pct4, disc2, vat3, total2, net_price2, vat6;
};

/*
 * Computes a line exactly (§4.8): discount_amount = q*p*d/100 (or the amount),
 * unrounded_vat_value = (q*p - discount) * t/100, line_total =
 * round2((q*p - discount) * (1 + t/100)); inclusive lines take VAT out of the
 * price first ([I] net = gross / (1 + t)). Returns 0, TH_EINVAL (discount
 * above 100% or above the line amount) or TH_EMONEY (overflow).
 */
int qy_line_compute(const struct qy_line_in *in, struct qy_line_out *out) TH_MUST_CHECK;

/* Route handlers; each fills resp. id is the record id from the path. */
void qy_invoice_create(struct qy *q, struct qy_tenant *t, const struct sim_req *req,
                       struct httpd_resp *resp);
void qy_invoice_delete(struct qy *q, struct qy_tenant *t, int64_t id, struct httpd_resp *resp);
void qy_invoice_allocate(struct qy *q, struct qy_tenant *t, int64_t id, const struct sim_req *req,
                         struct httpd_resp *resp);
void qy_invoice_pdf(struct qy *q, struct qy_tenant *t, int64_t id, struct httpd_resp *resp);
void qy_payment_create(struct qy *q, struct qy_tenant *t, const struct sim_req *req,
                       struct httpd_resp *resp);
void qy_credit_note_create(struct qy *q, struct qy_tenant *t, const struct sim_req *req,
                           struct httpd_resp *resp);
void qy_credit_note_delete(struct qy *q, struct qy_tenant *t, int64_t id, struct httpd_resp *resp);
void qy_adjustment_create(struct qy *q, struct qy_tenant *t, const struct sim_req *req,
                          struct httpd_resp *resp);
/* POST /bills: a purchase bill (§4.12); an Approved bill adds its lines to
 * the stock of tracked products at its inventory. */
void qy_bill_create(struct qy *q, struct qy_tenant *t, const struct sim_req *req,
                    struct httpd_resp *resp);
void qy_transfer_create(struct qy *q, struct qy_tenant *t, const struct sim_req *req,
                        struct httpd_resp *resp);

#endif
