/* fuzz_cli_manifest.c: libFuzzer target for what `husk apply -f` reads: YAML to JSON (core-schema typing, anchors, merge keys, ${VAR}) and the manifest's documents, on any bytes. Either it is refused with a "FILE:LINE..." message and adds nothing, or every entry is a JSON object within the nesting bound. The first byte picks whether variables are expanded. */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_manifest.h"
#include "lib/nesting.h"

static char *names[] = { "APP", "EMPTY", "SPACES", NULL };
static char *values[] = { "web", "", "a b $c \"d\"", NULL };
static const cli_vars_t vars = { .names = names, .values = values, .n = 3 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        cli_manifest_t m = { 0 };
        char *error = NULL;
        int r;

        if (size == 0)
                return 0;
        r = cli_manifest_parse(&m, "fuzz.yaml", (const char *)data + 1, size - 1, data[0] & 1 ? &vars : NULL, &error);
        if (r < 0) {
                /* Refused: says where, and adds nothing. */
                assert(r == -ENOMEM || (error && strncmp(error, "fuzz.yaml", 9) == 0));
                assert(m.n_entries == 0 && m.n_warnings == 0);
        } else {
                assert(!error);
                for (size_t i = 0; i < m.n_entries; i++) {
                        char *text;

                        assert(m.entries[i].key && json_is_object(m.entries[i].deployment));
                        /* What apply sends, apiserver's own bound accepts. */
                        text = json_dumps(m.entries[i].deployment, JSON_COMPACT);
                        assert(text && json_nesting_check(text, strlen(text), NULL, 0) == 0);
                        free(text);
                }
        }
        free(error);
        cli_manifest_clear(&m);
        return 0;
}
