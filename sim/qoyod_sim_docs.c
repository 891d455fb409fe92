/*
 * qoyod_sim_docs — invoices, payments, credit notes and stock movements.
 *
 * Invoice status machine ([R] XLSX, [C] MCP-CAP):
 *
 *   create(status=Draft) ----> Draft ----> (DELETE) gone
 *   create(status=Approved) -> Approved --pay/allocate--> Partially Paid --> Paid
 *                                     \-----------pay/allocate in full-----/
 *
 * The API cannot approve a draft or edit an invoice. Approving (at creation)
 * takes stock of tracked products from the invoice's inventory; short stock
 * fails with 422 unless draft_if_out_of_stock, which saves a Draft instead.
 * Invariant kept on every write: total = paid_amount + due_amount.
 *
 * Credit notes ([R] XLSX): Draft, or once approved Unused -> Partially Used
 * -> Used as remaining_amount is allocated to invoices. Approving returns
 * stock ([I]). Amounts are halalas, quantities thousandths, percents scale 4,
 * unrounded VAT thousandths; see qoyod_sim_query.h.
 */
#include "sim/qoyod_sim_docs.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/money.h"
#include "core/xmalloc.h"
#include "sim/qoyod_sim_query.h"

/* Lines in one document: Salla/Zid orders carry at most ~100 items. */
#define QY_MAX_LINES 500

static const int64_t E4 = 10000, E6 = 1000000;

int qy_line_compute(const struct qy_line_in *in, struct qy_line_out *out)
{
    memset(out, 0, sizeof *out);
    int64_t base6, disc6, net6, vat6, tot6;
    /* q (scale 3) * p (scale 2) is scale 5; *10 makes scale 6, exactly. */
    if (money_muldiv(in->qty3, in->price2, 1, &base6) || money_muldiv(base6, 10, 1, &base6))
        return TH_EMONEY;
    if (in->disc < 0) return TH_EINVAL;
    if (in->disc_is_amount) {
        out->disc2 = in->disc;
        if (money_muldiv(out->disc2, E4, 1, &disc6)) return TH_EMONEY;
        if (disc6 > base6) return TH_EINVAL;
        /* percent = disc / base * 100, kept at scale 4 */
        if (base6 > 0 && money_muldiv(disc6, E6, base6, &out->disc_pct4)) return TH_EMONEY;
    } else {
        if (in->disc > 100 * E4) return TH_EINVAL;
        out->disc_pct4 = in->disc;
        /* discount_amount is shown at 2 dp; the net uses the shown amount so
         * the printed numbers add up ([I]). */
        if (money_muldiv(base6, in->disc, 100 * E4, &disc6) ||
            money_rescale(disc6, 6, 2, &out->disc2) || money_muldiv(out->disc2, E4, 1, &disc6))
            return TH_EMONEY;
    }
    net6 = base6 - disc6;
    out->net_price2 = in->price2;
    if (in->inclusive) {
        /* [I] inclusive: the discounted gross includes VAT; net = gross/(1+t). */
        int64_t gross6 = net6;
        if (money_muldiv(gross6, 100 * E4, 100 * E4 + in->tax4, &net6) ||
            money_muldiv(in->price2, 100 * E4, 100 * E4 + in->tax4, &out->net_price2))
            return TH_EMONEY;
        vat6 = gross6 - net6;
        tot6 = gross6;
    } else {
        if (money_muldiv(net6, in->tax4, 100 * E4, &vat6)) return TH_EMONEY;
        tot6 = net6 + vat6;
    }
    out->vat6 = vat6;
    if (money_rescale(vat6, 6, 3, &out->vat3) || money_rescale(tot6, 6, 2, &out->total2))
        return TH_EMONEY;
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Helpers                                                                  */

static void today(char out[11])
{
    char now[40];
    sim_now_riyadh_plain(now, sizeof now);
    memcpy(out, now, 10);
    out[10] = '\0';
}

static void reply(struct qy_tenant *t, struct httpd_resp *resp, int status, const char *key,
                  const char *coll, const json_t *rec)
{
    sim_json(resp, status, json_pack("{s:o}", key, qy_render(t, coll, rec)));
}

static int64_t geti(const json_t *o, const char *key)
{
    return (int64_t)json_integer_value(json_object_get(o, key));
}

static void seti(json_t *o, const char *key, int64_t v)
{
    json_object_set_new(o, key, json_integer((json_int_t)v));
}

static json_t *str_or_null(const json_t *o, const char *key)
{
    char buf[1024];
    const char *v = qy_in_text(o, key, buf, sizeof buf);
    return v ? json_string(v) : json_null();
}

static int reference_taken(struct qy_tenant *t, const char *coll, const char *ref)
{
    size_t i;
    json_t *r;
    json_array_foreach(qy_coll(t, coll), i, r)
    {
        const char *x = json_string_value(json_object_get(r, "reference"));
        if (x && strcmp(x, ref) == 0) return 1;
    }
    return 0;
}

/* A free auto reference PREFIX<n>, n from the id the record will get. */
static json_t *auto_reference(struct qy_tenant *t, const char *coll, const char *prefix)
{
    int64_t n = geti(json_object_get(t->d, "counters"), coll) + 1;
    char ref[64];
    for (;; n++) {
        snprintf(ref, sizeof ref, "%s%lld", prefix, (long long)n);
        if (!reference_taken(t, coll, ref)) break;
    }
    return json_string(ref);
}

static const char *contact_error(struct qy_tenant *t, const json_t *in, json_t **errs,
                                 int64_t *contact_id, char *inactive, size_t n)
{
    int rc = qy_in_id(in, "contact_id", contact_id);
    if (rc == TH_ENOTFOUND)
        qy_err(errs, "contact", "can't be blank");
    else if (rc || !qy_find(t, "contacts", *contact_id))
        qy_err(errs, "contact", "must exist");
    else {
        const char *st =
            json_string_value(json_object_get(qy_find(t, "contacts", *contact_id), "status"));
        if (st && strcmp(st, "Active") != 0) {
            /* [C] MCP-CAP: the array form of errors, with this sentence. */
            snprintf(inactive, n, "this contact %lld is not active", (long long)*contact_id);
            return inactive;
        }
    }
    return NULL;
}

static void required_date(const json_t *in, const char *key, json_t **errs, char out[11])
{
    char buf[64];
    const char *v = qy_in_text(in, key, buf, sizeof buf);
    out[0] = '\0';
    if (!v)
        qy_err(errs, key, "can't be blank");
    else if (!qy_valid_date(v))
        qy_err(errs, key, "is not a valid date");
    else
        snprintf(out, 11, "%s", v);
}

static int64_t tax_percent_of(struct qy_tenant *t, const json_t *product)
{
    const json_t *tax = qy_find(t, "taxes", geti(product, "tax_id"));
    return tax ? geti(tax, "percentage") : 15 * E4;
}

/* ZATCA QR payload (TLV, base64) of an approved document ([C] KB-INV1):
 * seller name, VAT number, timestamp, total with VAT, VAT. */
static json_t *zatca_qr(const char *ts, int64_t total2, int64_t vat2)
{
    char tot[MONEY_FMT_MAX], vat[MONEY_FMT_MAX];
    money_format(total2, tot, sizeof tot);
    money_format(vat2, vat, sizeof vat);
    const char *vals[5] = {"Tarheel Demo Company", "300000000000003", ts, tot, vat};
    unsigned char tlv[512];
    size_t n = 0;
    for (int i = 0; i < 5; i++) {
        size_t l = strlen(vals[i]);
        if (l > 200) l = 200;
        tlv[n++] = (unsigned char)(i + 1);
        tlv[n++] = (unsigned char)l;
        memcpy(tlv + n, vals[i], l);
        n += l;
    }
    unsigned char b64[800];
    EVP_EncodeBlock(b64, tlv, (int)n);
    return json_string((const char *)b64);
}

/*
 * Parses line_items into internal line records (appended to lines) and
 * sums the document's total and VAT. credit selects the credit-note names
 * (price/total instead of unit_price/line_total). Errors go to *errs.
 */
static void parse_lines(struct qy_tenant *t, const json_t *items, int64_t root_inv, int credit,
                        json_t **errs, json_t *lines, int64_t *sum2, int64_t *vat6sum)
{
    *sum2 = 0;
    *vat6sum = 0;
    if (!json_is_array(items) || json_array_size(items) == 0) {
        qy_err(errs, "line_items", "can't be blank");
        return;
    }
    if (json_array_size(items) > QY_MAX_LINES) {
        qy_err(errs, "line_items", "too many lines (at most %d)", QY_MAX_LINES);
        return;
    }
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        int64_t pid, inv = root_inv;
        json_t *product = NULL;
        int rc = qy_in_id(it, "product_id", &pid);
        if (rc == TH_ENOTFOUND)
            qy_err(errs, "line_items.product", "can't be blank");
        else if (rc || !(product = qy_find(t, "products", pid)))
            qy_err(errs, "line_items.product", "must exist");
        int64_t line_inv;
        if (qy_in_id(it, "inventory_id", &line_inv) == 0) {
            if (!qy_find(t, "inventories", line_inv))
                qy_err(errs, "line_items.inventory", "must exist");
            else
                inv = line_inv;
        }
        struct qy_line_in li = {0};
        rc = qy_in_dec(it, "quantity", QYQ_QTY, &li.qty3);
        if (rc == TH_ENOTFOUND)
            qy_err(errs, "line_items.quantity", "can't be blank");
        else if (rc || li.qty3 <= 0)
            qy_err(errs, "line_items.quantity", "must be greater than 0");
        rc = qy_in_dec(it, "unit_price", QYQ_MONEY, &li.price2);
        if (rc == TH_ENOTFOUND) rc = qy_in_dec(it, "price", QYQ_MONEY, &li.price2);
        if (rc == TH_ENOTFOUND)
            qy_err(errs, "line_items.unit_price", "can't be blank");
        else if (rc || li.price2 < 0)
            qy_err(errs, "line_items.unit_price", "must be greater than or equal to 0");
        char dt[32];
        const char *dtype = qy_in_text(it, "discount_type", dt, sizeof dt);
        if (dtype && strcmp(dtype, "percentage") != 0 && strcmp(dtype, "amount") != 0)
            qy_err(errs, "line_items.discount_type", "is not included in the list");
        li.disc_is_amount = dtype && strcmp(dtype, "amount") == 0;
        rc = qy_in_dec(it, "discount", li.disc_is_amount ? QYQ_MONEY : QYQ_PCT, &li.disc);
        if (rc == TH_ENOTFOUND && !li.disc_is_amount)
            rc = qy_in_dec(it, "discount_percent", QYQ_PCT, &li.disc);
        if (rc == TH_ENOTFOUND)
            li.disc = 0;
        else if (rc)
            qy_err(errs, "line_items.discount", "is not a number");
        rc = qy_in_dec(it, "tax_percent", QYQ_PCT, &li.tax4);
        if (rc == TH_ENOTFOUND)
            li.tax4 = product ? tax_percent_of(t, product) : 0; /* [I] */
        else if (rc || li.tax4 < 0 || li.tax4 > 100 * E4)
            qy_err(errs, "line_items.tax_percent", "must be between 0 and 100");
        li.inclusive = qy_in_bool(it, "is_inclusive", 0);
        if (*errs || !product) continue;

        struct qy_line_out lo;
        rc = qy_line_compute(&li, &lo);
        if (rc == TH_EINVAL) {
            qy_err(errs, "line_items.discount", "can't exceed the line amount");
            continue;
        }
        if (rc) {
            qy_err(errs, "line_items", "amount out of range");
            continue;
        }
        *sum2 += lo.total2;
        *vat6sum += lo.vat6;
        const json_t *unit = qy_find(t, "product_unit_types", geti(product, "unit_type"));
        char desc[1024];
        const char *d = qy_in_text(it, "description", desc, sizeof desc);
        json_t *l = json_object();
        seti(l, "product_id", pid);
        json_object_set(l, "product_name", json_object_get(product, "name_en"));
        json_object_set_new(l, "description", d ? json_string(d) : json_null());
        if (credit) {
            seti(l, "price", lo.net_price2);
            seti(l, "quantity", li.qty3);
            json_object_set_new(l, "project_id", json_null());
        } else {
            seti(l, "quantity", li.qty3);
            seti(l, "unit_price", lo.net_price2);
        }
        int64_t ut;
        seti(l, "unit_type", qy_in_id(it, "unit_type", &ut) == 0 ? ut : geti(product, "unit_type"));
        if (!credit)
            json_object_set(l, "unit", unit ? json_object_get(unit, "unit_name") : json_null());
        if (credit) seti(l, "tax_percent", li.tax4);
        seti(l, "discount_percent", lo.disc_pct4);
        seti(l, "discount_amount", lo.disc2);
        if (!credit) seti(l, "tax_percent", li.tax4);
        seti(l, credit ? "total" : "line_total", lo.total2);
        seti(l, "inventory_id", inv);
        json_object_set_new(l, "is_inclusive", json_boolean(li.inclusive));
        json_object_set_new(l, "inclusive_unit_price",
                            li.inclusive ? json_integer((json_int_t)li.price2) : json_null());
        seti(l, "unrounded_vat_value", lo.vat3);
        json_array_append_new(lines, l);
    }
}

/* Sums quantities per (product, inventory) of tracked products in lines and
 * checks stock. Returns the first shortage message into msg, or NULL. */
static const char *stock_short(struct qy_tenant *t, const json_t *lines, char *msg, size_t n)
{
    size_t i, j;
    json_t *l, *m;
    json_array_foreach(lines, i, l)
    {
        const json_t *p = qy_find(t, "products", geti(l, "product_id"));
        if (!qy_tracked(p)) continue;
        int64_t need = 0;
        json_array_foreach(lines, j, m)
        {
            if (geti(m, "product_id") == geti(l, "product_id") &&
                geti(m, "inventory_id") == geti(l, "inventory_id"))
                need += geti(m, "quantity");
        }
        int64_t have = qy_stock_get(p, geti(l, "inventory_id"));
        if (need > have) {
            char a[MONEY_FMT_MAX], b[MONEY_FMT_MAX];
            /* [I] the real message is not captured (§10.4). */
            snprintf(msg, n,
                     "%s (%s) quantity is not available in the inventory: available %s, "
                     "requested %s",
                     json_string_value(json_object_get(p, "name_en")),
                     json_string_value(json_object_get(p, "sku")),
                     money_format_dec(have, QYQ_QTY, 1, a, sizeof a),
                     money_format_dec(need, QYQ_QTY, 1, b, sizeof b));
            return msg;
        }
    }
    return NULL;
}

/* Moves the lines' quantities of tracked products: sign -1 takes stock
 * (invoice), +1 returns it (credit note). */
static void move_stock(struct qy *q, struct qy_tenant *t, const json_t *lines, int sign)
{
    size_t i;
    json_t *l;
    json_array_foreach(lines, i, l)
    {
        json_t *p = qy_find(t, "products", geti(l, "product_id"));
        if (!qy_tracked(p)) continue;
        int64_t inv = geti(l, "inventory_id");
        qy_stock_set(q, p, inv, qy_stock_get(p, inv) + sign * geti(l, "quantity"));
    }
}

static int64_t vat2_of(int64_t vat6)
{
    int64_t v = 0;
    if (money_rescale(vat6, 6, 2, &v)) v = 0;
    return v;
}

/* ---------------------------------------------------------------------- */
/* Invoices                                                                 */

void qy_invoice_create(struct qy *q, struct qy_tenant *t, const struct sim_req *req,
                       struct httpd_resp *resp)
{
    json_t *in = qy_envelope(req, "invoice", resp);
    if (!in) return;
    json_t *errs = NULL;
    char inactive[96], buf[256];
    int64_t contact_id = 0, inv = 0;
    const char *bad_contact = contact_error(t, in, &errs, &contact_id, inactive, sizeof inactive);
    if (bad_contact) {
        json_decref(errs);
        qy_reply_errors(resp, json_pack("[s]", bad_contact));
        return;
    }
    const char *status = qy_in_text(in, "status", buf, sizeof buf);
    char st[16] = "";
    if (!status)
        qy_err(&errs, "status", "can't be blank");
    else if (strcmp(status, "Draft") != 0 && strcmp(status, "Approved") != 0)
        qy_err(&errs, "status", "is not included in the list");
    else
        snprintf(st, sizeof st, "%s", status);
    char issue[11], due[11];
    required_date(in, "issue_date", &errs, issue);
    required_date(in, "due_date", &errs, due);
    int rc = qy_in_id(in, "inventory_id", &inv);
    if (rc == TH_ENOTFOUND)
        qy_err(&errs, "inventory", "can't be blank");
    else if (rc || !qy_find(t, "inventories", inv))
        qy_err(&errs, "inventory", "must exist");
    char ref[256];
    const char *reference = qy_in_text(in, "reference", ref, sizeof ref);
    if (reference && reference_taken(t, "invoices", reference))
        qy_err(&errs, "reference", "has already been taken");
    int64_t cd = 0;
    rc = qy_in_dec(in, "inclusive_cd_discount", QYQ_MONEY, &cd);
    if (rc == TH_EPARSE || cd < 0) qy_err(&errs, "inclusive_cd_discount", "is not a number");

    json_t *lines = json_array();
    int64_t sum2 = 0, vat6 = 0;
    parse_lines(t, json_object_get(in, "line_items"), inv, 0, &errs, lines, &sum2, &vat6);
    if (!errs && cd > sum2) qy_err(&errs, "inclusive_cd_discount", "can't exceed the total");
    if (errs) {
        json_decref(lines);
        qy_reply_errors(resp, errs);
        return;
    }
    if (strcmp(st, "Approved") == 0) {
        char msg[512];
        if (stock_short(t, lines, msg, sizeof msg)) {
            if (!qy_in_bool(in, "draft_if_out_of_stock", 0)) {
                json_decref(lines);
                qy_reply_errors(resp, json_pack("{s:[s]}", "line_items", msg));
                return;
            }
            snprintf(st, sizeof st, "Draft");
        }
    }
    int64_t total = sum2 - cd; /* [I] the document discount is taken off the VAT-incl. sum */
    char now[40];
    sim_now_riyadh_iso(now, sizeof now);
    json_t *rec = json_object();
    seti(rec, "id", 0);
    json_object_set_new(rec, "description", str_or_null(in, "description"));
    json_object_set_new(rec, "issue_date", json_string(issue));
    json_object_set_new(rec, "due_date", json_string(due));
    seti(rec, "due_amount", total);
    seti(rec, "paid_amount", 0);
    seti(rec, "total", total);
    seti(rec, "contact_id", contact_id);
    json_object_set_new(rec, "status", json_string(st));
    json_object_set_new(rec, "reference",
                        reference ? json_string(reference) : auto_reference(t, "invoices", "INV"));
    json_object_set_new(rec, "notes", str_or_null(in, "notes"));
    json_t *terms = str_or_null(in, "terms_conditions");
    if (json_is_null(terms)) {
        json_decref(terms);
        terms = str_or_null(in, "term_conditions");
    }
    json_object_set_new(rec, "terms_conditions", terms);
    json_object_set_new(rec, "qrcode_string",
                        strcmp(st, "Approved") == 0 ? zatca_qr(now, total, vat2_of(vat6))
                                                    : json_null());
    json_object_set_new(rec, "payment_method", str_or_null(in, "payment_method"));
    json_object_set_new(rec, "created_at", json_string(now));
    json_object_set_new(rec, "updated_at", json_string(now));
    json_object_set_new(rec, "created_by", json_string("API"));
    seti(rec, "inventory_id", inv);
    json_t *cf = json_object_get(in, "custom_fields");
    json_object_set_new(rec, "custom_fields",
                        json_is_object(cf) ? json_deep_copy(cf) : json_object());
    if (cd) seti(rec, "inclusive_cd_discount", cd);
    json_object_set_new(rec, "line_items", lines);
    json_object_set_new(rec, "payments", json_array());
    rec = qy_insert(t, "invoices", rec);
    if (strcmp(st, "Approved") == 0) move_stock(q, t, lines, -1);
    reply(t, resp, 201, "invoice", "invoices", rec);
}

void qy_invoice_delete(struct qy *q, struct qy_tenant *t, int64_t id, struct httpd_resp *resp)
{
    json_t *arr = qy_coll(t, "invoices");
    size_t i;
    json_t *r;
    json_array_foreach(arr, i, r)
    {
        if (geti(r, "id") != id) continue;
        if (strcmp(json_string_value(json_object_get(r, "status")), "Draft") != 0) {
            /* [I] Qoyod decides; only drafts are deletable ([C] MCP). */
            qy_reply_errors(resp, json_pack("[s]", "Only draft invoices can be deleted"));
            return;
        }
        json_array_remove(arr, i);
        sim_json(resp, 200, json_pack("{s:s}", "message", "Invoice destroyed successfully"));
        return;
    }
    qy_reply_not_found(resp);
}

void qy_invoice_pdf(struct qy *q, struct qy_tenant *t, int64_t id, struct httpd_resp *resp)
{
    if (!qy_find(t, "invoices", id)) {
        qy_reply_not_found(resp);
        return;
    }
    char url[128];
    snprintf(url, sizeof url, "https://qoyod.invalid/tmp/invoices/%lld.pdf", (long long)id);
    sim_json(resp, 200, json_pack("{s:s}", "pdf_file", url));
}

static void set_invoice_paid(json_t *inv, int64_t add)
{
    int64_t paid = geti(inv, "paid_amount") + add, total = geti(inv, "total");
    seti(inv, "paid_amount", paid);
    seti(inv, "due_amount", total - paid);
    json_object_set_new(inv, "status", json_string(total - paid == 0 ? "Paid" : "Partially Paid"));
    qy_touch(inv);
}

static json_t *allocation_row(struct qy_tenant *t, int64_t amount, const char *date,
                              int64_t source_id, const char *source_type, int64_t invoice_id)
{
    json_t *counters = json_object_get(t->d, "counters");
    int64_t id = geti(counters, "allocations") + 1;
    seti(counters, "allocations", id);
    char now[40];
    sim_now_riyadh_iso(now, sizeof now);
    return json_pack("{s:I,s:I,s:s,s:I,s:s,s:I,s:s,s:s,s:s}", "id", (json_int_t)id, "amount",
                     (json_int_t)amount, "date", date, "source_id", (json_int_t)source_id,
                     "source_type", source_type, "allocatee_id", (json_int_t)invoice_id,
                     "allocatee_type", "Invoice", "created_at", now, "updated_at", now);
}

static void set_note_remaining(json_t *note, int64_t remaining)
{
    seti(note, "remaining_amount", remaining);
    int64_t total = geti(note, "total_amount");
    json_object_set_new(note, "status",
                        json_string(remaining == 0       ? "Used"
                                    : remaining == total ? "Unused"
                                                         : "Partially Used"));
    qy_touch(note);
}

static int payable(const json_t *inv)
{
    const char *st = json_string_value(json_object_get(inv, "status"));
    return st && (strcmp(st, "Approved") == 0 || strcmp(st, "Partially Paid") == 0);
}

void qy_invoice_allocate(struct qy *q, struct qy_tenant *t, int64_t id, const struct sim_req *req,
                         struct httpd_resp *resp)
{
    json_t *inv = qy_find(t, "invoices", id);
    if (!inv) {
        qy_reply_not_found(resp);
        return;
    }
    json_t *list = NULL;
    if (json_is_object(req->body) && json_is_object(json_object_get(req->body, "allocation")))
        list = json_pack("[O]", json_object_get(req->body, "allocation")); /* [I] single form */
    if (!list) {
        json_t *in = qy_envelope(req, "invoice", resp);
        if (!in) return;
        list = json_incref(json_object_get(in, "allocations_attributes"));
    }
    json_t *errs = NULL;
    if (!json_is_array(list) || json_array_size(list) == 0)
        qy_err(&errs, "allocations", "can't be blank");
    else if (!payable(inv))
        qy_err(&errs, "allocations", "the invoice is not approved or is already paid");
    /* Validate every row first: all or nothing. */
    int64_t due = geti(inv, "due_amount");
    size_t i;
    json_t *a;
    json_array_foreach(list, i, a)
    {
        if (errs) break;
        char ty[32];
        const char *type = qy_in_text(a, "source_type", ty, sizeof ty);
        int64_t sid, amount;
        if (!type || (strcmp(type, "CreditNote") != 0 && strcmp(type, "Receipt") != 0)) {
            qy_err(&errs, "allocations.source_type", "is not included in the list");
            break;
        }
        json_t *src =
            qy_in_id(a, "source_id", &sid) == 0
                ? qy_find(t, strcmp(type, "CreditNote") == 0 ? "credit_notes" : "receipts", sid)
                : NULL;
        if (!src) {
            qy_err(&errs, "allocations.source", "must exist");
            break;
        }
        if (qy_in_dec(a, "amount", QYQ_MONEY, &amount) != 0 || amount <= 0) {
            qy_err(&errs, "allocations.amount", "must be greater than 0");
            break;
        }
        if (geti(src, "contact_id") != geti(inv, "contact_id")) {
            qy_err(&errs, "allocations.source", "belongs to another contact"); /* [I] */
            break;
        }
        const char *sst = json_string_value(json_object_get(src, "status"));
        int64_t left = strcmp(type, "CreditNote") == 0 ? geti(src, "remaining_amount")
                                                       : geti(src, "outstanding_amount");
        if (sst && strcmp(sst, "Draft") == 0) {
            qy_err(&errs, "allocations.source", "is not approved");
            break;
        }
        if (amount > left) {
            qy_err(&errs, "allocations.amount", "is greater than the source's remaining amount");
            break;
        }
        if (amount > due) {
            qy_err(&errs, "allocations.amount", "is greater than the invoice's due amount");
            break;
        }
        due -= amount;
    }
    if (errs) {
        json_decref(list);
        qy_reply_errors(resp, errs);
        return;
    }
    char day[11];
    today(day);
    json_array_foreach(list, i, a)
    {
        char ty[32], dt[32];
        const char *type = qy_in_text(a, "source_type", ty, sizeof ty);
        const char *date = qy_in_text(a, "date", dt, sizeof dt);
        int64_t sid = 0, amount = 0;
        if (qy_in_id(a, "source_id", &sid) || qy_in_dec(a, "amount", QYQ_MONEY, &amount))
            continue; /* validated above */
        int note = strcmp(type, "CreditNote") == 0;
        json_t *src = qy_find(t, note ? "credit_notes" : "receipts", sid);
        json_t *row =
            allocation_row(t, amount, date && qy_valid_date(date) ? date : day, sid, type, id);
        json_array_append(json_object_get(inv, "payments"), row);
        if (note) {
            set_note_remaining(src, geti(src, "remaining_amount") - amount);
        } else {
            seti(src, "outstanding_amount", geti(src, "outstanding_amount") - amount);
            json_array_append(json_object_get(src, "allocations"), row);
            qy_touch(src);
        }
        json_decref(row);
        set_invoice_paid(inv, amount);
    }
    json_decref(list);
    reply(t, resp, 201, "invoice", "invoices", inv);
}

/* ---------------------------------------------------------------------- */
/* Invoice payments                                                         */

void qy_payment_create(struct qy *q, struct qy_tenant *t, const struct sim_req *req,
                       struct httpd_resp *resp)
{
    json_t *in = qy_envelope(req, "invoice_payment", resp);
    if (!in) return;
    json_t *errs = NULL;
    char ref[256], date[11];
    const char *reference = qy_in_text(in, "reference", ref, sizeof ref);
    if (!reference)
        qy_err(&errs, "reference", "can't be blank");
    else if (reference_taken(t, "receipts", reference))
        qy_err(&errs, "reference", "has already been taken");
    int64_t iid, aid, amount = 0;
    json_t *inv = NULL;
    int rc = qy_in_id(in, "invoice_id", &iid);
    if (rc == TH_ENOTFOUND)
        qy_err(&errs, "invoice", "can't be blank");
    else if (rc || !(inv = qy_find(t, "invoices", iid)))
        qy_err(&errs, "invoice", "must exist");
    rc = qy_in_id(in, "account_id", &aid);
    if (rc == TH_ENOTFOUND)
        qy_err(&errs, "account", "can't be blank");
    else if (rc || !qy_find(t, "accounts", aid))
        qy_err(&errs, "account", "must exist");
    required_date(in, "date", &errs, date);
    rc = qy_in_dec(in, "amount", QYQ_MONEY, &amount);
    if (rc == TH_ENOTFOUND)
        qy_err(&errs, "amount", "can't be blank");
    else if (rc || amount <= 0)
        qy_err(&errs, "amount", "must be greater than 0");
    if (!errs && !payable(inv))
        qy_err(&errs, "invoice",
               strcmp(json_string_value(json_object_get(inv, "status")), "Paid") == 0
                   ? "is already paid"
                   : "is not approved");
    if (!errs && amount > geti(inv, "due_amount")) /* [I] overpayment refused */
        qy_err(&errs, "amount", "is greater than the invoice's due amount");
    if (errs) {
        qy_reply_errors(resp, errs);
        return;
    }
    char now[40];
    sim_now_riyadh_iso(now, sizeof now);
    json_t *rec = json_object();
    seti(rec, "id", 0);
    json_object_set_new(rec, "reference", json_string(reference));
    json_object_set_new(rec, "description", str_or_null(in, "description"));
    json_object_set_new(rec, "date", json_string(date));
    seti(rec, "amount", amount);
    json_object_set_new(rec, "kind", json_string("received"));
    seti(rec, "contact_id", geti(inv, "contact_id"));
    seti(rec, "account_id", aid);
    json_object_set_new(rec, "payment_method", str_or_null(in, "payment_method"));
    seti(rec, "outstanding_amount", 0);
    json_object_set_new(rec, "created_at", json_string(now));
    json_object_set_new(rec, "updated_at", json_string(now));
    json_object_set_new(rec, "allocations", json_array());
    rec = qy_insert(t, "receipts", rec);
    json_t *row = allocation_row(t, amount, date, geti(rec, "id"), "Receipt", iid);
    json_array_append(json_object_get(rec, "allocations"), row);
    json_array_append_new(json_object_get(inv, "payments"), row);
    set_invoice_paid(inv, amount);
    reply(t, resp, 201, "invoice_payment", "receipts", rec);
}

/* ---------------------------------------------------------------------- */
/* Credit notes                                                             */

void qy_credit_note_create(struct qy *q, struct qy_tenant *t, const struct sim_req *req,
                           struct httpd_resp *resp)
{
    json_t *in = qy_envelope(req, "credit_note", resp);
    if (!in) return;
    json_t *errs = NULL;
    char inactive[96], buf[64], issue[11], ref[256];
    int64_t contact_id = 0, inv = 0, parent = 0;
    const char *bad_contact = contact_error(t, in, &errs, &contact_id, inactive, sizeof inactive);
    if (bad_contact) {
        json_decref(errs);
        qy_reply_errors(resp, json_pack("[s]", bad_contact));
        return;
    }
    const char *status = qy_in_text(in, "status", buf, sizeof buf);
    if (!status)
        qy_err(&errs, "status", "can't be blank");
    else if (strcmp(status, "Draft") != 0 && strcmp(status, "Approved") != 0)
        qy_err(&errs, "status", "is not included in the list");
    int approved = status && strcmp(status, "Approved") == 0;
    required_date(in, "issue_date", &errs, issue);
    int rc = qy_in_id(in, "inventory_id", &inv);
    if (rc == TH_ENOTFOUND)
        qy_err(&errs, "inventory", "can't be blank");
    else if (rc || !qy_find(t, "inventories", inv))
        qy_err(&errs, "inventory", "must exist");
    /* [I] §10.7: how to link the credited invoice is undocumented; both
     * parent_id and invoice_id are accepted and stored as parent_id. */
    rc = qy_in_id(in, "parent_id", &parent);
    if (rc == TH_ENOTFOUND) rc = qy_in_id(in, "invoice_id", &parent);
    if (rc == 0 && !qy_find(t, "invoices", parent)) qy_err(&errs, "parent", "must exist");
    int has_parent = rc == 0;
    const char *reference = qy_in_text(in, "reference", ref, sizeof ref);
    if (reference && reference_taken(t, "credit_notes", reference))
        qy_err(&errs, "reference", "has already been taken");
    json_t *lines = json_array();
    int64_t sum2 = 0, vat6 = 0;
    parse_lines(t, json_object_get(in, "line_items"), inv, 1, &errs, lines, &sum2, &vat6);
    if (errs) {
        json_decref(lines);
        qy_reply_errors(resp, errs);
        return;
    }
    char now[40];
    sim_now_riyadh_iso(now, sizeof now);
    json_t *rec = json_object();
    seti(rec, "id", 0);
    json_object_set_new(rec, "reference",
                        reference ? json_string(reference)
                                  : auto_reference(t, "credit_notes", "CRN"));
    json_object_set_new(rec, "issuance_reason", str_or_null(in, "issuance_reason"));
    seti(rec, "contact_id", contact_id);
    json_object_set_new(rec, "status", json_string(approved ? "Unused" : "Draft"));
    json_object_set_new(rec, "issue_date", json_string(issue));
    seti(rec, "total_amount", sum2);
    seti(rec, "remaining_amount", sum2);
    json_object_set_new(rec, "notes", str_or_null(in, "notes"));
    json_object_set_new(rec, "terms_conditions", str_or_null(in, "terms_conditions"));
    json_object_set_new(rec, "qrcode_string",
                        approved ? zatca_qr(now, sum2, vat2_of(vat6)) : json_null());
    json_object_set_new(rec, "payment_method", str_or_null(in, "payment_method"));
    json_object_set_new(rec, "created_at", json_string(now));
    json_object_set_new(rec, "updated_at", json_string(now));
    json_object_set_new(rec, "created_by", json_string("API"));
    json_object_set_new(rec, "parent_id",
                        has_parent ? json_integer((json_int_t)parent) : json_null());
    seti(rec, "inventory_id", inv);
    json_object_set_new(rec, "line_items", lines);
    rec = qy_insert(t, "credit_notes", rec);
    if (approved) move_stock(q, t, lines, +1); /* [I] an approved return puts stock back */
    reply(t, resp, 201, "credit_note", "credit_notes", rec); /* [I] create envelope (§4.11) */
}

void qy_credit_note_delete(struct qy *q, struct qy_tenant *t, int64_t id, struct httpd_resp *resp)
{
    json_t *arr = qy_coll(t, "credit_notes");
    size_t i;
    json_t *r;
    json_array_foreach(arr, i, r)
    {
        if (geti(r, "id") != id) continue;
        if (strcmp(json_string_value(json_object_get(r, "status")), "Draft") != 0) {
            qy_reply_errors(resp, json_pack("[s]", "Only draft credit notes can be deleted"));
            return;
        }
        json_array_remove(arr, i);
        sim_json(resp, 200, json_pack("{s:s}", "message", "Credit note destroyed successfully"));
        return;
    }
    qy_reply_not_found(resp);
}

/* ---------------------------------------------------------------------- */
/* Stock movements                                                          */

void qy_adjustment_create(struct qy *q, struct qy_tenant *t, const struct sim_req *req,
                          struct httpd_resp *resp)
{
    json_t *in = qy_envelope(req, "inventory_adjustment", resp);
    if (!in) return;
    json_t *errs = NULL;
    int64_t inv = 0, v;
    char date[11];
    int rc = qy_in_id(in, "inventory_id", &inv);
    if (rc == TH_ENOTFOUND)
        qy_err(&errs, "inventory", "can't be blank");
    else if (rc || !qy_find(t, "inventories", inv))
        qy_err(&errs, "inventory", "must exist");
    required_date(in, "date", &errs, date);
    static const char *const accts[] = {"revenue_account_id", "expense_account_id"};
    for (int k = 0; k < 2; k++)
        if (qy_in_id(in, accts[k], &v) == 0 && !qy_find(t, "accounts", v))
            qy_err(&errs, k ? "expense_account" : "revenue_account", "must exist");
    json_t *items = json_object_get(in, "line_items");
    if (!json_is_array(items) || json_array_size(items) == 0)
        qy_err(&errs, "line_items", "can't be blank");
    else if (json_array_size(items) > QY_MAX_LINES)
        qy_err(&errs, "line_items", "too many lines (at most %d)", QY_MAX_LINES);
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        int64_t pid, qty;
        json_t *p = NULL;
        rc = qy_in_id(it, "product_id", &pid);
        if (rc == TH_ENOTFOUND)
            qy_err(&errs, "line_items.product", "can't be blank");
        else if (rc || !(p = qy_find(t, "products", pid)))
            qy_err(&errs, "line_items.product", "must exist");
        else if (!qy_tracked(p)) /* [I] only inventory products carry stock */
            qy_err(&errs, "line_items.product", "is not an inventory (tracked) product");
        rc = qy_in_dec(it, "actual_quantity", QYQ_QTY, &qty);
        if (rc == TH_ENOTFOUND)
            qy_err(&errs, "line_items.actual_quantity", "can't be blank");
        else if (rc || qty < 0)
            qy_err(&errs, "line_items.actual_quantity", "must be greater than or equal to 0");
        if (qy_in_dec(it, "rate", QYQ_PCT, &v) == TH_EPARSE)
            qy_err(&errs, "line_items.rate", "is not a number");
    }
    if (errs) {
        qy_reply_errors(resp, errs);
        return;
    }
    json_t *rec = json_object();
    seti(rec, "id", 0);
    json_object_set_new(rec, "reference", str_or_null(in, "reference"));
    seti(rec, "inventory_id", inv);
    json_object_set_new(rec, "date", json_string(date));
    json_object_set_new(rec, "description", str_or_null(in, "description"));
    json_object_set_new(rec, "revenue_account_id",
                        qy_in_id(in, "revenue_account_id", &v) == 0 ? json_integer(v)
                                                                    : json_null());
    json_object_set_new(rec, "expense_account_id",
                        qy_in_id(in, "expense_account_id", &v) == 0 ? json_integer(v)
                                                                    : json_null());
    json_t *lines = json_array();
    json_array_foreach(items, i, it)
    {
        int64_t pid = 0, qty = 0, rate = 0;
        if (qy_in_id(it, "product_id", &pid) || qy_in_dec(it, "actual_quantity", QYQ_QTY, &qty))
            continue; /* validated above */
        json_t *p = qy_find(t, "products", pid);
        int64_t before = qy_stock_get(p, inv);
        json_t *l = json_pack("{s:I,s:I,s:I}", "product_id", (json_int_t)pid, "previous_quantity",
                              (json_int_t)before, "actual_quantity", (json_int_t)qty);
        json_object_set_new(l, "rate",
                            qy_in_dec(it, "rate", QYQ_PCT, &rate) == 0
                                ? json_integer((json_int_t)rate)
                                : json_null());
        json_array_append_new(lines, l);
        qy_stock_set(q, p, inv, qty);
    }
    json_object_set_new(rec, "line_items", lines);
    json_object_set_new(rec, "created_at", json_string(""));
    json_object_set_new(rec, "updated_at", json_string(""));
    rec = qy_insert(t, "inventory_adjustments", rec);
    reply(t, resp, 201, "inventory_adjustment", "inventory_adjustments", rec);
}

void qy_transfer_create(struct qy *q, struct qy_tenant *t, const struct sim_req *req,
                        struct httpd_resp *resp)
{
    json_t *in = qy_envelope(req, "inventory_transfer", resp);
    if (!in) return;
    json_t *errs = NULL;
    int64_t from = 0, to = 0;
    char date[11];
    static const char *const ends[] = {"from_location", "to_location"};
    for (int k = 0; k < 2; k++) {
        int64_t *dst = k ? &to : &from;
        int rc = qy_in_id(in, ends[k], dst);
        if (rc == TH_ENOTFOUND)
            qy_err(&errs, ends[k], "can't be blank");
        else if (rc || !qy_find(t, "inventories", *dst))
            qy_err(&errs, ends[k], "must exist");
    }
    if (!errs && from == to) qy_err(&errs, "to_location", "must differ from from_location");
    required_date(in, "date", &errs, date);
    json_t *items = json_object_get(in, "line_items");
    if (!json_is_array(items) || json_array_size(items) == 0)
        qy_err(&errs, "line_items", "can't be blank");
    else if (json_array_size(items) > QY_MAX_LINES)
        qy_err(&errs, "line_items", "too many lines (at most %d)", QY_MAX_LINES);
    size_t i, j;
    json_t *it, *jt;
    json_array_foreach(items, i, it)
    {
        int64_t pid, qty;
        json_t *p = NULL;
        int rc = qy_in_id(it, "product_id", &pid);
        if (rc || !(p = qy_find(t, "products", pid))) {
            qy_err(&errs, "line_items.product",
                   rc == TH_ENOTFOUND ? "can't be blank" : "must exist");
            continue;
        }
        if (!qy_tracked(p)) {
            qy_err(&errs, "line_items.product", "is not an inventory (tracked) product");
            continue;
        }
        if (qy_in_dec(it, "quantity", QYQ_QTY, &qty) != 0 || qty <= 0) {
            qy_err(&errs, "line_items.quantity", "must be greater than 0");
            continue;
        }
        if (errs) continue;
        int64_t need = 0, x, y;
        json_array_foreach(items, j, jt)
        {
            if (qy_in_id(jt, "product_id", &x) == 0 && x == pid &&
                qy_in_dec(jt, "quantity", QYQ_QTY, &y) == 0)
                need += y;
        }
        if (need > qy_stock_get(p, from))
            qy_err(&errs, "line_items.quantity", "is not available in the source inventory");
    }
    if (errs) {
        qy_reply_errors(resp, errs);
        return;
    }
    json_t *rec = json_object();
    seti(rec, "id", 0);
    json_object_set_new(rec, "reference", str_or_null(in, "reference"));
    seti(rec, "from_location", from);
    seti(rec, "to_location", to);
    json_object_set_new(rec, "date", json_string(date));
    json_object_set_new(rec, "description", str_or_null(in, "description"));
    json_t *lines = json_array();
    json_array_foreach(items, i, it)
    {
        int64_t pid = 0, qty = 0;
        if (qy_in_id(it, "product_id", &pid) || qy_in_dec(it, "quantity", QYQ_QTY, &qty)) continue;
        json_t *p = qy_find(t, "products", pid);
        qy_stock_set(q, p, from, qy_stock_get(p, from) - qty);
        qy_stock_set(q, p, to, qy_stock_get(p, to) + qty);
        json_array_append_new(lines, json_pack("{s:I,s:I}", "product_id", (json_int_t)pid,
                                               "quantity", (json_int_t)qty));
    }
    json_object_set_new(rec, "line_items", lines);
    json_object_set_new(rec, "created_at", json_string(""));
    json_object_set_new(rec, "updated_at", json_string(""));
    rec = qy_insert(t, "inventory_transfers", rec);
    reply(t, resp, 201, "inventory_transfer", "inventory_transfers", rec);
}

/* ---------------------------------------------------------------------- */
/* Purchase bills (§4.12)                                                   */

/*
 * POST /bills {"bill": {contact_id, status, issue_date, due_date,
 * inventory_id, reference, line_items[{product_id, quantity, unit_price}]}}.
 * §4.12 summarises bills in one paragraph; the emulator keeps what matters
 * to tarheel, the stock a purchase brings: an Approved bill adds each line's
 * quantity to its product's stock at the bill's inventory (tracked products
 * only) [I]. Vendors are not emulated: contact_id must name any existing
 * contact [I]. Totals are not computed (no line arithmetic on bills) [I].
 */
void qy_bill_create(struct qy *q, struct qy_tenant *t, const struct sim_req *req,
                    struct httpd_resp *resp)
{
    json_t *in = qy_envelope(req, "bill", resp);
    if (!in) return;
    json_t *errs = NULL;
    int64_t contact = 0, inv = 0;
    char issue[11], due[11];
    int rc = qy_in_id(in, "contact_id", &contact);
    if (rc == TH_ENOTFOUND)
        qy_err(&errs, "contact", "can't be blank");
    else if (rc || !qy_find(t, "contacts", contact))
        qy_err(&errs, "contact", "must exist");
    const char *status = json_string_value(json_object_get(in, "status"));
    if (!status || (strcmp(status, "Draft") != 0 && strcmp(status, "Approved") != 0))
        qy_err(&errs, "status", "is not included in the list");
    required_date(in, "issue_date", &errs, issue);
    required_date(in, "due_date", &errs, due);
    rc = qy_in_id(in, "inventory_id", &inv);
    if (rc == TH_ENOTFOUND)
        qy_err(&errs, "inventory", "can't be blank");
    else if (rc || !qy_find(t, "inventories", inv))
        qy_err(&errs, "inventory", "must exist");
    const char *ref = json_string_value(json_object_get(in, "reference"));
    size_t i;
    json_t *it;
    if (ref && *ref) {
        json_array_foreach(qy_coll(t, "bills"), i, it)
        {
            const char *r = json_string_value(json_object_get(it, "reference"));
            if (r && strcmp(r, ref) == 0) qy_err(&errs, "reference", "has already been taken");
        }
    }
    json_t *items = json_object_get(in, "line_items");
    if (!json_is_array(items) || json_array_size(items) == 0)
        qy_err(&errs, "line_items", "can't be blank");
    else if (json_array_size(items) > QY_MAX_LINES)
        qy_err(&errs, "line_items", "too many lines (at most %d)", QY_MAX_LINES);
    json_array_foreach(items, i, it)
    {
        int64_t pid, qty, price;
        rc = qy_in_id(it, "product_id", &pid);
        if (rc || !qy_find(t, "products", pid))
            qy_err(&errs, "line_items.product",
                   rc == TH_ENOTFOUND ? "can't be blank" : "must exist");
        if (qy_in_dec(it, "quantity", QYQ_QTY, &qty) != 0 || qty <= 0)
            qy_err(&errs, "line_items.quantity", "must be greater than 0");
        if (qy_in_dec(it, "unit_price", QYQ_MONEY, &price) != 0 || price < 0)
            qy_err(&errs, "line_items.unit_price", "must be greater than or equal to 0");
    }
    if (errs) {
        qy_reply_errors(resp, errs);
        return;
    }
    int approved = strcmp(status, "Approved") == 0;
    json_t *rec = json_object();
    seti(rec, "id", 0);
    int64_t next = (int64_t)json_array_size(qy_coll(t, "bills")) + 1;
    char autoref[32];
    snprintf(autoref, sizeof autoref, "BILL%lld", (long long)next);
    json_object_set_new(rec, "reference", json_string(ref && *ref ? ref : autoref));
    seti(rec, "contact_id", contact);
    json_object_set_new(rec, "status", json_string(status));
    json_object_set_new(rec, "issue_date", json_string(issue));
    json_object_set_new(rec, "due_date", json_string(due));
    seti(rec, "inventory_id", inv);
    json_t *lines = json_array();
    json_array_foreach(items, i, it)
    {
        int64_t pid = 0, qty = 0, price = 0;
        if (qy_in_id(it, "product_id", &pid) || qy_in_dec(it, "quantity", QYQ_QTY, &qty) ||
            qy_in_dec(it, "unit_price", QYQ_MONEY, &price))
            continue; /* validated above */
        json_t *p = qy_find(t, "products", pid);
        json_array_append_new(lines, json_pack("{s:I,s:I,s:I}", "product_id", (json_int_t)pid,
                                               "quantity", (json_int_t)qty, "unit_price",
                                               (json_int_t)price));
        if (approved && qy_tracked(p)) qy_stock_set(q, p, inv, qy_stock_get(p, inv) + qty);
    }
    json_object_set_new(rec, "line_items", lines);
    json_object_set_new(rec, "created_at", json_string(""));
    json_object_set_new(rec, "updated_at", json_string(""));
    rec = qy_insert(t, "bills", rec);
    sim_json(resp, 201, json_pack("{s:O}", "bill", rec));
}
