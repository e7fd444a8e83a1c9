/* host.h: facts about this host that GET /node and husk doctor report: memory, disk, kernel. */
#pragma once

#include <stdint.h>

typedef struct host_memory {
        uint64_t total_bytes;     /* MemTotal */
        uint64_t available_bytes; /* MemAvailable (MemFree on kernels without it) */
} host_memory_t;

/* Parse /proc/meminfo's text. -EBADMSG when MemTotal is missing. */
int host_meminfo_parse(const char *text, host_memory_t *ret);
/* Read /proc/meminfo. */
int host_memory(host_memory_t *ret);

typedef struct host_disk {
        uint64_t total_bytes;
        uint64_t available_bytes; /* to unprivileged users (f_bavail) */
} host_disk_t;

/* The file system holding path, or its nearest existing parent (a state dir not made yet). */
int host_disk(const char *path, host_disk_t *ret);
