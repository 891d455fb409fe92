/* util — helpers shared by the fuzz targets (fuzz.h). */
#include "fuzz/fuzz.h"

#include <string.h>

#include "core/xmalloc.h"

char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = xmalloc(size + 1);
    if (size) memcpy(s, data, size);
    s[size] = '\0';
    return s;
}
