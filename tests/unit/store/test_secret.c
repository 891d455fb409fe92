/* Tests for store/secret.c: sealing secrets at rest with AES-256-GCM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/xmalloc.h"
#include "store/secret.h"

#define KEY_A "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define KEY_B "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"

static void ring_from_env(struct secret_ring *r, const char *key, const char *old)
{
    setenv("TARHEEL_SECRET_KEY", key, 1);
    if (old) setenv("TARHEEL_SECRET_KEY_OLD", old, 1);
    else unsetenv("TARHEEL_SECRET_KEY_OLD");
    struct th_err err;
    if (secret_ring_load(r, NULL, &err) != 0) fail_msg("%s", err.msg);
    unsetenv("TARHEEL_SECRET_KEY");
    unsetenv("TARHEEL_SECRET_KEY_OLD");
}

static void test_round_trip_and_format(void **state)
{
    (void)state;
    struct secret_ring r;
    ring_from_env(&r, KEY_A, NULL);
    assert_string_equal(r.source, "TARHEEL_SECRET_KEY");
    struct th_err err;
    char *sealed = NULL, *plain = NULL, *again = NULL;
    assert_int_equal(secret_seal(&r, "access_token", "ory_at_abc", &sealed, &err), 0);
    assert_true(secret_is_sealed(sealed));
    assert_null(strstr(sealed, "ory_at_abc"));
    char want[16];
    snprintf(want, sizeof want, "enc1:%s:", r.kid[0]);
    assert_memory_equal(sealed, want, strlen(want));
    /* a synthetic nonce: the same secret in the same field seals the same
     * (the backends group one Qoyod account's connections by it), another
     * field or another secret does not */
    assert_int_equal(secret_seal(&r, "access_token", "ory_at_abc", &again, &err), 0);
    assert_string_equal(sealed, again);
    free(again);
    assert_int_equal(secret_seal(&r, "refresh_token", "ory_at_abc", &again, &err), 0);
    assert_string_not_equal(sealed, again);
    assert_memory_not_equal(sealed + 14, again + 14, 16); /* the nonce differs too */
    free(again);
    assert_int_equal(secret_seal(&r, "access_token", "ory_at_abd", &again, &err), 0);
    assert_memory_not_equal(sealed + 14, again + 14, 16);
    assert_int_equal(secret_open(&r, "access_token", sealed, &plain, &err), 0);
    assert_string_equal(plain, "ory_at_abc");
    free(plain);
    /* NULL stays NULL; the empty string survives */
    assert_int_equal(secret_seal(&r, "access_token", NULL, &plain, &err), 0);
    assert_null(plain);
    free(again);
    assert_int_equal(secret_seal(&r, "access_token", "", &again, &err), 0);
    assert_int_equal(secret_open(&r, "access_token", again, &plain, &err), 0);
    assert_string_equal(plain, "");
    free(plain);
    /* a plaintext from an older tarheel reads as itself */
    assert_int_equal(secret_open(&r, "access_token", "legacy-token", &plain, &err), 0);
    assert_string_equal(plain, "legacy-token");
    free(plain);
    free(sealed);
    free(again);
    secret_ring_wipe(&r);
}

static void test_refusals(void **state)
{
    (void)state;
    struct secret_ring a, b;
    ring_from_env(&a, KEY_A, NULL);
    ring_from_env(&b, KEY_B, NULL);
    struct th_err err;
    char *sealed = NULL, *plain = NULL;
    assert_int_equal(secret_seal(&a, "qoyod_api_key", "qk-secret", &sealed, &err), 0);
    /* moved to another field: the additional data differs */
    assert_int_equal(secret_open(&a, "access_token", sealed, &plain, &err), TH_ECONFIG);
    assert_null(plain);
    /* another key: named in the message, with what to do */
    assert_int_equal(secret_open(&b, "qoyod_api_key", sealed, &plain, &err), TH_ECONFIG);
    assert_non_null(strstr(err.msg, a.kid[0]));
    assert_non_null(strstr(err.msg, "TARHEEL_SECRET_KEY_FILE"));
    /* one flipped character of the ciphertext */
    size_t n = strlen(sealed);
    sealed[n - 5] = sealed[n - 5] == 'A' ? 'B' : 'A';
    assert_int_equal(secret_open(&a, "qoyod_api_key", sealed, &plain, &err), TH_ECONFIG);
    assert_null(plain);
    free(sealed);
    /* a ring with the old key as well opens both */
    struct secret_ring both;
    ring_from_env(&both, KEY_B, KEY_A);
    assert_int_equal(both.nkeys, 2);
    assert_int_equal(secret_seal(&a, "webhook_secret", "whs", &sealed, &err), 0);
    assert_int_equal(secret_open(&both, "webhook_secret", sealed, &plain, &err), 0);
    assert_string_equal(plain, "whs");
    free(plain);
    free(sealed);
    /* malformed keys */
    setenv("TARHEEL_SECRET_KEY", "too-short", 1);
    struct secret_ring bad;
    assert_int_equal(secret_ring_load(&bad, NULL, &err), TH_ECONFIG);
    assert_non_null(strstr(err.msg, "openssl rand -hex 32"));
    unsetenv("TARHEEL_SECRET_KEY");
    secret_ring_wipe(&a);
    secret_ring_wipe(&b);
    secret_ring_wipe(&both);
}

/* The default key file next to a SQLite database: created 0600 on first
 * use, the same key on the next open, refused when others can read it. */
static void test_key_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/th_secretXXXXXX";
    assert_non_null(mkdtemp(dir));
    char *db = xasprintf("%s/t.db", dir), *key = xasprintf("%s/t.db.key", dir);
    unsetenv("TARHEEL_SECRET_KEY");
    unsetenv("TARHEEL_SECRET_KEY_FILE");
    struct secret_ring r1, r2;
    struct th_err err;
    assert_int_equal(secret_ring_load(&r1, db, &err), 0);
    assert_string_equal(r1.file, key);
    struct stat st;
    assert_int_equal(stat(key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(secret_ring_load(&r2, db, &err), 0);
    assert_string_equal(r1.kid[0], r2.kid[0]);
    /* a rotation under way: the .next key opens too */
    char *next = xasprintf("%s.next", key);
    assert_int_equal(secret_key_create(next, &err), 0);
    assert_int_equal(secret_key_create(next, &err), TH_ECONFLICT);
    secret_ring_wipe(&r2);
    assert_int_equal(secret_ring_load(&r2, db, &err), 0);
    assert_int_equal(r2.nkeys, 2);
    assert_string_equal(r2.kid[0], r1.kid[0]);
    unlink(next);
    /* readable by others: refused, with the command that fixes it */
    assert_int_equal(chmod(key, 0644), 0);
    assert_int_equal(secret_ring_load(&r2, db, &err), TH_ECONFIG);
    assert_non_null(strstr(err.msg, "chmod 600"));
    /* a named file that does not exist is not created behind the user's back */
    setenv("TARHEEL_SECRET_KEY_FILE", "/nonexistent/dir/k", 1);
    assert_int_equal(secret_ring_load(&r2, db, &err), TH_ENOTFOUND);
    unsetenv("TARHEEL_SECRET_KEY_FILE");
    unlink(key);
    assert_int_equal(rmdir(dir), 0);
    secret_ring_wipe(&r1);
    secret_ring_wipe(&r2);
    free(db);
    free(key);
    free(next);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_and_format),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_key_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
