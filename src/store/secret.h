/*
 * secret — secrets sealed at rest: AES-256-GCM with a key the database never
 * holds.
 *
 * Owns the key ring and the sealed format. store.c seals a connection's
 * secrets (platform access / refresh / manager tokens, webhook secret, Qoyod
 * API key) before a backend writes them and opens them after it reads, so
 * no backend, SQL dump, backup or replica ever sees them in clear.
 *
 * Sealed text: "enc1:<kid>:<base64(nonce[12] ‖ ciphertext ‖ tag[16])>" where
 * kid is 8 hex digits naming the key (a digest of it, not the key), and the
 * GCM additional data is "tarheel-secret:v1:<field>", so a value moved to
 * another field does not open. The nonce is synthetic (an HMAC of field and
 * plaintext under the key), so equal secrets seal equal: the backends group
 * a Qoyod account's connections by the sealed key. A value without the "enc1:" prefix is a
 * plaintext left by an older tarheel: it reads as itself, and is sealed on
 * its next write or by `tarheel secrets rotate`.
 *
 * Where the key comes from, first match wins:
 *   TARHEEL_SECRET_KEY        64 hex digits (32 bytes), in the environment
 *   TARHEEL_SECRET_KEY_FILE   a file holding 64 hex digits, mode 0600 or stricter
 *   the default file          SQLite: "<database file>.key" next to the database;
 *                             PostgreSQL: "$HOME/.config/tarheel/secret.key";
 *                             created (0600, random) when missing
 * Decrypt-only keys (rotation): "<key file>.next" when it exists, and
 * TARHEEL_SECRET_KEY_OLD (64 hex digits).
 */
#ifndef TH_STORE_SECRET_H
#define TH_STORE_SECRET_H

#include <stddef.h>

#include "core/err.h"

#define SECRET_KEY_LEN 32
#define SECRET_MAX_KEYS 4

struct secret_ring {
    unsigned char key[SECRET_MAX_KEYS][SECRET_KEY_LEN]; /* [0] seals; all open */
    char kid[SECRET_MAX_KEYS][9];
    int nkeys;
    char file[512];   /* the primary key's file; "" when from the environment */
    const char *source; /* "TARHEEL_SECRET_KEY", "TARHEEL_SECRET_KEY_FILE", "default file" */
};

/* Loads the ring for a database: `sqlite_path` is the SQLite file (NULL for
 * PostgreSQL). Returns 0, or TH_ECONFIG (a malformed key, a key file others
 * can read: says what to fix) / TH_EIO. */
int secret_ring_load(struct secret_ring *r, const char *sqlite_path,
                     struct th_err *err) TH_MUST_CHECK;
/* Zeroes the keys. */
void secret_ring_wipe(struct secret_ring *r);

/* 1 when v is sealed text. */
int secret_is_sealed(const char *v);
/* Seals plain (NULL → *out NULL) with the primary key; *out is new. */
int secret_seal(const struct secret_ring *r, const char *field, const char *plain, char **out,
                struct th_err *err) TH_MUST_CHECK;
/* Opens sealed (NULL → *out NULL; plaintext → a copy); *out is new. Returns
 * TH_ECONFIG when no key of the ring sealed it or it does not authenticate,
 * naming the key id it needs. */
int secret_open(const struct secret_ring *r, const char *field, const char *sealed, char **out,
                struct th_err *err) TH_MUST_CHECK;

/* Writes a new random key to path (0600, created exclusively; TH_ECONFLICT
 * when it exists). */
int secret_key_create(const char *path, struct th_err *err) TH_MUST_CHECK;
/* Reads a key file (mode checked) into key. */
int secret_key_read(const char *path, unsigned char key[SECRET_KEY_LEN],
                    struct th_err *err) TH_MUST_CHECK;
/* The key id of key, 8 hex digits + NUL. */
void secret_kid(const unsigned char key[SECRET_KEY_LEN], char out[9]);

#endif
