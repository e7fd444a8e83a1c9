/* agent_stats.c: the guest's own view for the host's sampler: memory from /proc/meminfo, load from /proc/loadavg. */
#include "services/agent/agent.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/mp.h"

/* "Key:   123 kB" lines: the number, in bytes. */
static int meminfo_bytes(const char *text, const char *key, uint64_t *ret) {
        size_t len = strlen(key);

        for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
                char *end;
                unsigned long long v;

                if (strncmp(p, key, len) != 0 || p[len] != ':')
                        continue;
                errno = 0;
                v = strtoull(p + len + 1, &end, 10);
                if (errno || end == p + len + 1)
                        return -EBADMSG;
                *ret = (uint64_t)v * 1024;
                return 0;
        }
        return -ENOENT;
}

int agent_stats_parse(const char *meminfo, const char *loadavg, agent_stats_t *ret) {
        agent_stats_t s = {};

        if (meminfo_bytes(meminfo, "MemTotal", &s.mem_total) < 0 ||
            meminfo_bytes(meminfo, "MemAvailable", &s.mem_available) < 0)
                return -EBADMSG;
        if (s.mem_available > s.mem_total)
                return -EBADMSG;
        if (sscanf(loadavg, "%lf %lf %lf", &s.load[0], &s.load[1], &s.load[2]) != 3)
                return -EBADMSG;
        *ret = s;
        return 0;
}

static int read_small(const char *path, char *buf, size_t size) {
        FILE *f = fopen(path, "re");
        size_t n;

        if (!f)
                return -errno;
        n = fread(buf, 1, size - 1, f);
        fclose(f);
        buf[n] = '\0';
        return 0;
}

void agent_stats_answer(uint64_t id, msgpack_packer *pk) {
        char meminfo[8192], loadavg[256];
        agent_stats_t s;

        if (read_small("/proc/meminfo", meminfo, sizeof(meminfo)) < 0 ||
            read_small("/proc/loadavg", loadavg, sizeof(loadavg)) < 0 || agent_stats_parse(meminfo, loadavg, &s) < 0) {
                agent_pack_error(pk, &id, "failed", "cannot read /proc/meminfo or /proc/loadavg");
                return;
        }
        msgpack_pack_map(pk, 9);
        mp_pack_kv_str(pk, "type", "stats");
        mp_pack_kv_u64(pk, "id", id);
        mp_pack_kv_u64(pk, "mem_total_bytes", s.mem_total);
        mp_pack_kv_u64(pk, "mem_available_bytes", s.mem_available);
        mp_pack_kv_u64(pk, "mem_used_bytes", s.mem_total - s.mem_available);
        mp_pack_kv_f64(pk, "load1", s.load[0]);
        mp_pack_kv_f64(pk, "load5", s.load[1]);
        mp_pack_kv_f64(pk, "load15", s.load[2]);
        mp_pack_kv_u64(pk, "uptime_ms", agent_uptime_ms());
}
