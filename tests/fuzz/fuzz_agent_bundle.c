/* fuzz_agent_bundle.c: libFuzzer target for husk-agent's reading of an OCI bundle's config.json (the image is the user's, the agent PID 1). */
#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The one file under test, built in: the fuzz rule links the library sources only. */
#include "services/agent/agent_bundle.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        agent_bundle_t b = {};
        char *text, *error = NULL;

        if (size > AGENT_BUNDLE_CONFIG_MAX)
                return 0;
        text = malloc(size + 1);
        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = '\0';
        if (agent_bundle_parse(text, &b, &error) == 0) {
                for (size_t k = 0; b.args && b.args[k]; k++)
                        assert(strlen(b.args[k]) <= MP_STRV_ITEM_MAX);
                assert(!b.cwd || b.cwd[0] == '/');
                assert(b.ignored);
        } else
                assert(!error || strlen(error) > 0);
        agent_bundle_clear(&b);
        free(error);
        free(text);
        return 0;
}
