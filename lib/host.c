/* host.c: this host's memory (/proc/meminfo) and the disk under a path (statvfs). */
#include "lib/host.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "lib/util.h"

/* The value of "Key:   1234 kB" in bytes; false when the key is absent or not a number. */
static bool meminfo_field(const char *text, const char *key, uint64_t *ret) {
        size_t n = strlen(key);
        unsigned long long kib;
        char *end;

        for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
                if (strncmp(p, key, n) != 0 || p[n] != ':')
                        continue;
                errno = 0;
                kib = strtoull(p + n + 1, &end, 10);
                if (errno != 0 || end == p + n + 1 || kib > UINT64_MAX / 1024)
                        return false;
                *ret = (uint64_t)kib * 1024;
                return true;
        }
        return false;
}

int host_meminfo_parse(const char *text, host_memory_t *ret) {
        host_memory_t m = {};

        if (!meminfo_field(text, "MemTotal", &m.total_bytes))
                return -EBADMSG;
        if (!meminfo_field(text, "MemAvailable", &m.available_bytes) &&
            !meminfo_field(text, "MemFree", &m.available_bytes))
                return -EBADMSG;
        *ret = m;
        return 0;
}

int host_memory(host_memory_t *ret) {
        _cleanup_free_ char *text = NULL;
        int r;

        r = read_file("/proc/meminfo", 65536, &text, NULL);
        if (r < 0)
                return r;
        return host_meminfo_parse(text, ret);
}

int host_disk(const char *path, host_disk_t *ret) {
        char p[PATH_MAX];
        struct statvfs st;

        if (snprintf(p, sizeof(p), "%s", path) >= (int)sizeof(p))
                return -ENAMETOOLONG;
        while (statvfs(p, &st) < 0) {
                char *slash;

                if (errno != ENOENT || streq(p, "/") || !(slash = strrchr(p, '/')))
                        return -errno;
                if (slash == p)
                        slash[1] = '\0';
                else
                        slash[0] = '\0';
        }
        *ret = (host_disk_t){ .total_bytes = (uint64_t)st.f_blocks * st.f_frsize,
                              .available_bytes = (uint64_t)st.f_bavail * st.f_frsize };
        return 0;
}
