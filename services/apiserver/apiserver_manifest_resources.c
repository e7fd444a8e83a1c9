/* apiserver_manifest_resources.c: resources.limits and .requests: CPU quantities to whole vCPUs, sizes to MiB. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "services/apiserver/apiserver_manifest_private.h"

#define MIB (1024ull * 1024ull)

/* "2", 2, "500m", 0.5, "1.5" -> millicores. -EINVAL on syntax, -ERANGE when absurdly large,
 * -EDOM when not positive. */
static int cpu_millis(const json_t *v, uint64_t *ret) {
        const uint64_t max_units = 1000000; /* far beyond MANIFEST_CPUS_MAX; keeps the math in range */
        const char *s = json_string_value(v);
        char digits[24];
        uint64_t units, frac = 0;
        size_t n, scale = 100;
        int r;

        if (json_is_integer(v)) {
                json_int_t i = json_integer_value(v);
                if (i <= 0)
                        return -EDOM;
                if ((uint64_t)i > max_units)
                        return -ERANGE;
                *ret = (uint64_t)i * 1000;
                return 0;
        }
        if (json_is_real(v)) {
                double d = json_real_value(v);
                if (!(d > 0))
                        return -EDOM;
                if (d > (double)max_units)
                        return -ERANGE;
                *ret = (uint64_t)(d * 1000.0);
                if (*ret == 0) /* a sliver of a CPU still gets one vCPU */
                        *ret = 1;
                return 0;
        }
        if (!s)
                return -EINVAL;

        n = strspn(s, "0123456789");
        if (n == 0 || n >= sizeof(digits))
                return n == 0 ? -EINVAL : -ERANGE;
        memcpy(digits, s, n);
        digits[n] = '\0';
        r = parse_u64(digits, &units);
        if (r < 0)
                return r;
        if (streq(s + n, "m")) { /* millicores */
                if (units == 0)
                        return -EDOM;
                if (units > max_units * 1000)
                        return -ERANGE;
                *ret = units;
                return 0;
        }
        if (s[n] == '.') {
                const char *f = s + n + 1;
                size_t nf = strspn(f, "0123456789");

                if (nf == 0 || f[nf] != '\0')
                        return -EINVAL;
                for (size_t i = 0; i < nf && i < 3; i++, scale /= 10)
                        frac += (uint64_t)(f[i] - '0') * scale;
                if (frac == 0 && strspn(f, "0") != nf)
                        frac = 1; /* "0.0001" is positive: it rounds up to 1 vCPU below */
        } else if (s[n] != '\0')
                return -EINVAL;
        if (units > max_units)
                return -ERANGE;
        if (units == 0 && frac == 0)
                return -EDOM;
        *ret = units * 1000 + frac;
        return 0;
}

static void parse_cpu(parse_ctx_t *c, const char *field, const json_t *v, bool limits) {
        uint64_t millis = 0, vcpus;
        char q[96];
        int r;

        if (!json_is_string(v) && !json_is_number(v))
                return manifest_wrong_type(c, field, "a CPU quantity such as \"2\", 2, 0.5 or \"500m\"", v);
        r = cpu_millis(v, &millis);
        if (r == -EINVAL)
                return manifest_violation(
                        c, field,
                        "%s is not a CPU quantity: use a number of vCPUs (\"2\", 2, 0.5) or millicores (\"500m\")",
                        manifest_show(v, q, sizeof(q)));
        if (r == -EDOM)
                return manifest_violation(c, field, "%s must be greater than zero", manifest_show(v, q, sizeof(q)));
        vcpus = r == -ERANGE ? UINT64_MAX : millis / 1000;
        if (vcpus > MANIFEST_CPUS_MAX)
                return manifest_violation(c, field, "%s is more than the maximum of %d vCPUs",
                                          manifest_show(v, q, sizeof(q)), MANIFEST_CPUS_MAX);
        if (limits) /* an allocation, not a cap: whole vCPUs rounded down, at least one */
                c->m.cpus = vcpus < 1 ? 1 : (uint32_t)vcpus;
}

static void parse_memory(parse_ctx_t *c, const char *field, const json_t *v, bool limits) {
        uint64_t bytes;
        char q[96];
        int r;

        if (json_is_integer(v)) {
                r = json_integer_value(v) < 0 ? -EINVAL : 0;
                bytes = (uint64_t)json_integer_value(v);
        } else if (json_is_string(v))
                r = parse_size_bytes(json_string_value(v), &bytes);
        else
                return manifest_wrong_type(c, field, "a memory size such as \"512Mi\" or a number of bytes", v);
        if (r == -ERANGE)
                bytes = UINT64_MAX;
        else if (r < 0)
                return manifest_violation(
                        c, field, "%s is not a memory size: use \"512Mi\", \"1Gi\", \"128M\" or a number of bytes",
                        manifest_show(v, q, sizeof(q)));
        if (!limits) /* requests are accepted for Ring compatibility but size nothing */
                return;
        if (bytes < MANIFEST_MEMORY_MIN_MIB * MIB)
                return manifest_violation(
                        c, field, "%s is below the minimum of %dMi: a microVM needs at least %d MiB of RAM",
                        manifest_show(v, q, sizeof(q)), MANIFEST_MEMORY_MIN_MIB, MANIFEST_MEMORY_MIN_MIB);
        if (bytes / MIB > MANIFEST_MEMORY_MAX_MIB)
                return manifest_violation(c, field, "%s is more than the maximum of 1Ti",
                                          manifest_show(v, q, sizeof(q)));
        c->m.memory_mib = (uint32_t)(bytes / MIB);
}

static void parse_resource_set(parse_ctx_t *c, const char *prefix, const json_t *v, bool limits) {
        const char *k;
        json_t *value;

        if (!json_is_object(v))
                return manifest_wrong_type(c, prefix, "a map with cpu and memory", v);
        json_object_foreach((json_t *)v, k, value) {
                char field[160];

                manifest_field_path(field, sizeof(field), prefix, k);
                if (json_is_null(value))
                        continue;
                if (streq(k, "cpu"))
                        parse_cpu(c, field, value, limits);
                else if (streq(k, "memory"))
                        parse_memory(c, field, value, limits);
                else
                        manifest_violation(c, field, "unknown field: %s has cpu and memory", prefix);
        }
}

void manifest_parse_resources(parse_ctx_t *c, const char *key, const json_t *v) {
        const char *k;
        json_t *value;

        if (!json_is_object(v))
                return manifest_wrong_type(c, key, "a map with limits and requests", v);
        json_object_foreach((json_t *)v, k, value) {
                char field[160];

                manifest_field_path(field, sizeof(field), key, k);
                if (json_is_null(value))
                        continue;
                if (streq(k, "limits"))
                        parse_resource_set(c, field, value, true);
                else if (streq(k, "requests")) {
                        parse_resource_set(c, field, value, false);
                        json_decref(c->requests);
                        c->requests = json_deep_copy(value);
                } else
                        manifest_violation(c, field, "unknown field: resources has limits and requests");
        }
}

json_t *manifest_resources_json(const parse_ctx_t *c) {
        char memory[32];

        snprintf(memory, sizeof(memory), "%" PRIu32 "Mi", c->m.memory_mib);
        return json_pack("{s:{s:I, s:s}, s:O*}", "limits", "cpu", (json_int_t)c->m.cpus, "memory", memory, "requests",
                         c->requests);
}
