/*
 * Tests for src/core/passwd.c: scrypt hashes verify only their own
 * password, carry their cost, use a fresh salt, and a malformed or
 * tampered hash never verifies.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/passwd.h"

/* A small cost keeps the test fast under the sanitizers; the default cost
 * is checked once. */
#define LN 10

static void test_round_trip(void **state)
{
    char h[PASSWD_HASH_MAX], h2[PASSWD_HASH_MAX];
    struct th_err err = {0};
    assert_int_equal(passwd_hash("correct horse battery", LN, h, sizeof h, &err), 0);
    assert_true(strncmp(h, "$scrypt$ln=10,r=8,p=1$", 22) == 0);
    assert_int_equal(passwd_verify("correct horse battery", h), 1);
    assert_int_equal(passwd_verify("correct horse batterY", h), 0);
    assert_int_equal(passwd_verify("", h), 0);
    /* a fresh salt each time: the same password hashes differently */
    assert_int_equal(passwd_hash("correct horse battery", LN, h2, sizeof h2, &err), 0);
    assert_string_not_equal(h, h2);
    assert_int_equal(passwd_verify("correct horse battery", h2), 1);
}

static void test_default_cost(void **state)
{
    char h[PASSWD_HASH_MAX];
    struct th_err err = {0};
    assert_int_equal(passwd_hash("a long enough password", 0, h, sizeof h, &err), 0);
    assert_true(strncmp(h, "$scrypt$ln=15,r=8,p=1$", 22) == 0);
    assert_int_equal(passwd_verify("a long enough password", h), 1);
}

static void test_refused_passwords(void **state)
{
    char h[PASSWD_HASH_MAX];
    struct th_err err = {0};
    assert_int_equal(passwd_hash("short", LN, h, sizeof h, &err), TH_EINVAL);
    assert_non_null(strstr(err.msg, "10 to 1024 characters"));
    assert_int_equal(passwd_hash(NULL, LN, h, sizeof h, &err), TH_EINVAL);
}

static void test_tampered_and_malformed(void **state)
{
    char h[PASSWD_HASH_MAX];
    struct th_err err = {0};
    assert_int_equal(passwd_hash("correct horse battery", LN, h, sizeof h, &err), 0);
    /* flip one character of the key */
    char t[PASSWD_HASH_MAX];
    snprintf(t, sizeof t, "%s", h);
    size_t n = strlen(t);
    t[n - 3] = t[n - 3] == 'A' ? 'B' : 'A';
    assert_int_equal(passwd_verify("correct horse battery", t), 0);
    /* a lower cost with the same salt and key does not verify */
    snprintf(t, sizeof t, "%s", h);
    t[11] = '9';
    assert_int_equal(passwd_verify("correct horse battery", t), 0);
    const char *bad[] = {"", "plain", "$scrypt$", "$scrypt$ln=10,r=8,p=1$", "$scrypt$ln=10,r=8,p=1$AAAA$",
                         "$scrypt$ln=40,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA==$AAAA",
                         "$scrypt$ln=10,r=8,p=1$!!!!$!!!!"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(passwd_verify("correct horse battery", bad[i]), 0);
    assert_int_equal(passwd_verify(NULL, h), 0);
    assert_int_equal(passwd_verify("correct horse battery", NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_default_cost),
        cmocka_unit_test(test_refused_passwords),
        cmocka_unit_test(test_tampered_and_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
