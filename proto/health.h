/* health.h: a deployment's health checks (deployment field `health_checks`, see proto/SCHEMA.md). */
#pragma once

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HEALTH_CHECKS_MAX 8
#define HEALTH_URL_MAX 1024

/* Ring's defaults. */
#define HEALTH_DEFAULT_INTERVAL_MS 10000
#define HEALTH_DEFAULT_TIMEOUT_MS 5000
#define HEALTH_DEFAULT_THRESHOLD 3
#define HEALTH_DEFAULT_MIN_HEALTHY_MS 10000

typedef struct health_check {
        char *type;     /* "tcp", "http", "command" */
        uint32_t port;  /* tcp: guest port */
        char *url;      /* http: "http://<any host>:<port>/<path>"; the guest's address is used */
        char **command; /* command: argv run through the agent */
        uint64_t interval_ms;
        uint64_t timeout_ms;
        uint32_t threshold;       /* consecutive failures before on_failure */
        char *on_failure;         /* "restart", "stop", "alert" */
        bool readiness;           /* gates running (and a rolling update's drain) */
        uint64_t start_period_ms; /* failures in this time after the start do not count */
        uint64_t min_healthy_ms;  /* healthy this long resets the restart count */
} health_check_t;

void health_check_clear(health_check_t *h);
void health_checks_free(health_check_t *a, size_t n);
void health_checks_pack(msgpack_packer *pk, const health_check_t *a, size_t n);
/* The optional `health_checks` key of map o (absent: none). Bounded: HEALTH_CHECKS_MAX entries,
 * known types and on_failure values, each type with its target. -EBADMSG otherwise. */
int health_checks_get(const msgpack_object *map, health_check_t **ret, size_t *ret_n);

/* Split an http check's url into port (default 80) and path (default "/"); -EINVAL when it
 * is not http://host[:port][/path]. */
int health_url_split(const char *url, uint16_t *ret_port, const char **ret_path);
