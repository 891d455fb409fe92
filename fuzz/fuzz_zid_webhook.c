/* fuzz_zid_webhook — Zid deliveries: peek, Basic credential check, parse (fuzz_webhook.h). */
#include "fuzz/fuzz_webhook.h"
#include "platform/zid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fw_run(&zid_platform_ops, "basic", data, size);
    return 0;
}
