/* fuzz_oci_spec.c: libFuzzer target for husk-oci's config.json and process.json parser on any bytes: either refused with a message and nothing kept, or every field it promises is within its bounds. The first byte picks config.json or process.json. */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/oci/oci_spec.h"

static void check_process(const oci_process_t *p) {
        size_t n = 0;

        assert(p->args && p->args[0] && p->env && p->cwd && p->cwd[0] == '/');
        while (p->args[n])
                assert(strlen(p->args[n++]) <= OCI_STR_MAX);
        assert(n >= 1 && n <= OCI_ARGS_MAX);
        for (n = 0; p->env[n]; n++)
                assert(strchr(p->env[n], '=') && p->env[n][0] != '=');
        assert(n <= OCI_ARGS_MAX);
        assert(p->n_rlimits <= OCI_RLIMITS_MAX && p->n_additional_gids <= OCI_GIDS_MAX);
        for (size_t k = 0; k < p->n_rlimits; k++)
                assert(strncmp(p->rlimits[k].type, "RLIMIT_", 7) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *error = NULL;
        int r;

        if (size == 0)
                return 0;
        if (data[0] & 1) {
                oci_process_t p;

                r = oci_process_parse_text((const char *)data + 1, size - 1, &p, &error);
                if (r < 0) {
                        assert(r == -ENOMEM || (r == -EINVAL && error));
                        assert(!p.args);
                } else {
                        assert(!error);
                        check_process(&p);
                        oci_process_done(&p);
                }
        } else {
                oci_spec_t s;

                r = oci_spec_parse((const char *)data + 1, size - 1, &s, &error);
                if (r < 0) {
                        assert(r == -ENOMEM || (r == -EINVAL && error));
                        assert(!s.root_path && !s.mounts);
                } else {
                        uint32_t cpus, mib;

                        assert(!error);
                        assert(s.root_path && s.root_path[0] && !strchr(s.root_path, ','));
                        check_process(&s.process);
                        assert(!s.hostname || strlen(s.hostname) <= OCI_HOSTNAME_MAX);
                        for (size_t k = 0; k < s.n_mounts; k++)
                                assert(s.mounts[k].destination[0] == '/' &&
                                       (!s.mounts[k].bind || s.mounts[k].source[0] == '/'));
                        oci_spec_vm_size(&s, 1, 256, &cpus, &mib);
                        assert(cpus >= 1 && cpus <= 64 && mib >= OCI_MEMORY_MIN_MIB && mib <= OCI_MEMORY_MAX_MIB);
                        oci_spec_done(&s);
                }
        }
        free(error);
        return 0;
}
