/*
 * fuzz — the entry point every fuzz target defines (libFuzzer's), and the
 * helpers they share. Each fuzz_<name>.c is built twice: with clang's
 * libFuzzer by scripts/fuzz.sh (the search), and with replay.c as its main
 * by the normal CMake build, where ctest replays the committed corpus
 * fuzz/corpus/<name>/ under ASan+UBSan (the regression check).
 *
 * A target must never crash, leak or trip a sanitizer on any input, and
 * checks what must hold on every input (a round trip, an invariant) with
 * FUZZ_ASSERT, which aborts so that libFuzzer keeps the input.
 */
#ifndef TH_FUZZ_FUZZ_H
#define TH_FUZZ_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(cond)                                                            \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                 \
        }                                                                            \
    } while (0)

/* A NUL-terminated copy of the input (xmalloc'd; free it). */
char *fuzz_cstr(const uint8_t *data, size_t size);

#endif
