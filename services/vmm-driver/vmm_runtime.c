/* vmm_runtime.c: the table of runtimes: every name the API accepts, and the implementation of each this vmm-driver has. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <unistd.h>

#include "lib/log.h"
#include "lib/mp.h"
#include "services/vmm-driver/vmm.h"

extern const vmm_runtime_t vmm_qemu_runtime;
extern const vmm_runtime_t vmm_ch_runtime;

/* A row without an implementation is a name deployments may use (apiserver accepts it) that
 * this vmm-driver cannot run yet: it is refused with that said, not as an unknown name. */
static const struct {
        const char *name;
        const vmm_runtime_t *impl;
} rows[] = {
        { "qemu", &vmm_qemu_runtime },
        { "cloud-hypervisor", &vmm_ch_runtime },
};

_Static_assert(ELEMENTSOF(rows) <= VMM_RUNTIMES_MAX, "raise VMM_RUNTIMES_MAX");

/* Every row's name: "a or b", "a, b or c". */
static void names(char *buf, size_t size) {
        size_t n = 0;

        buf[0] = '\0';
        for (size_t k = 0; k < ELEMENTSOF(rows) && n < size; k++)
                n += (size_t)snprintf(buf + n, size - n, "%s%s",
                                      k == 0                      ? ""
                                      : k + 1 == ELEMENTSOF(rows) ? " or "
                                                                  : ", ",
                                      rows[k].name);
}

int vmm_runtime_lookup(const husk_config_t *c, const char *name, const vmm_runtime_t **ret, char **ret_error) {
        const husk_runtime_config_t *rc;
        char all[256];

        *ret = NULL;
        if (!name)
                return error_set(ret_error, -EINVAL, "runtime: missing");
        for (size_t k = 0; k < ELEMENTSOF(rows); k++) {
                if (!streq(name, rows[k].name))
                        continue;
                rc = husk_config_runtime(c, name);
                if (!rows[k].impl)
                        /* Even when configured: say so rather than half-work. */
                        return error_set(ret_error, -EOPNOTSUPP, "runtime %s is not enabled on this host%s", name,
                                         rc && rc->enabled ? " (configured, but not supported by this vmm-driver yet)"
                                                           : "");
                *ret = rows[k].impl;
                if (!rc || !rc->enabled)
                        return error_set(ret_error, -EPERM, "runtime %s is not enabled on this host", name);
                return 0;
        }
        names(all, sizeof(all));
        return error_set(ret_error, -EINVAL, "runtime: must be %s", all);
}

static int row_of(const vmm_runtime_t *rt) {
        for (size_t k = 0; k < ELEMENTSOF(rows); k++)
                if (rows[k].impl && rows[k].impl == rt)
                        return (int)k;
        return -1;
}

void *vmm_runtime_state(const vmm_t *d, const vmm_runtime_t *rt) {
        int k = row_of(rt);

        return k < 0 ? NULL : d->runtime_state[k];
}

int vmm_runtime_setup_all(vmm_t *d, const husk_config_t *c) {
        for (size_t k = 0; k < ELEMENTSOF(rows); k++) {
                const husk_runtime_config_t *rc = husk_config_runtime(c, rows[k].name);
                int r;

                if (!rows[k].impl || !rc)
                        continue;
                r = rows[k].impl->setup(rc, &d->runtime_state[k]);
                if (r < 0)
                        return r;
        }
        return 0;
}

void vmm_runtime_free_all(vmm_t *d) {
        for (size_t k = 0; k < ELEMENTSOF(rows); k++)
                if (rows[k].impl && d->runtime_state[k]) {
                        rows[k].impl->free_state(d->runtime_state[k]);
                        d->runtime_state[k] = NULL;
                }
}

/* Each row: {name, enabled, implemented, binary, version, accel, firmware, firmware_ok,
 * problem} (SCHEMA.md, runtime.list); problem says why it cannot start VMs, nil when it can. */
void vmm_runtime_pack_list(const vmm_t *d, const husk_config_t *c, msgpack_packer *pk) {
        msgpack_pack_array(pk, (uint32_t)ELEMENTSOF(rows));
        for (size_t k = 0; k < ELEMENTSOF(rows); k++) {
                const husk_runtime_config_t *rc = husk_config_runtime(c, rows[k].name);
                const vmm_runtime_t *rt = rows[k].impl;
                vmm_runtime_probe_t p = {};
                bool enabled = rc && rc->enabled;
                char problem[512] = "";

                if (rt && rt->probe)
                        rt->probe(d->runtime_state[k], &p);
                if (!rt)
                        snprintf(problem, sizeof(problem), "not supported by this vmm-driver");
                else if (!enabled)
                        snprintf(problem, sizeof(problem), "not enabled in the config");
                else if (!p.binary)
                        snprintf(problem, sizeof(problem), "binary %s not found", p.binary_name ?: rows[k].name);
                msgpack_pack_map(pk, 9);
                mp_pack_kv_str(pk, "name", rows[k].name);
                mp_pack_kv_bool(pk, "enabled", enabled);
                mp_pack_kv_bool(pk, "implemented", rt != NULL);
                mp_pack_kv_str(pk, "binary", p.binary);
                mp_pack_kv_str(pk, "version", p.version);
                mp_pack_kv_str(pk, "accel", p.accel);
                mp_pack_kv_str(pk, "firmware", p.firmware);
                mp_pack_kv_bool(pk, "firmware_ok", p.firmware && access(p.firmware, R_OK) == 0);
                mp_pack_kv_str(pk, "problem", problem[0] ? problem : NULL);
        }
}
