/* fuzz_salla_webhook — Salla deliveries: peek, signature check, parse (fuzz_webhook.h). */
#include "fuzz/fuzz_webhook.h"
#include "platform/salla.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fw_run(&salla_platform_ops, (size & 1) ? "token" : "signature", data, size);
    return 0;
}
