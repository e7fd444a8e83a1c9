/* apiserver_webhook.h: what a webhook is (URL, event filter, secret) and the rules of its
 * deliveries: which events it takes, how a body is signed, when a failed attempt is retried.
 * Pure functions (apiserver_webhook.c); the store, the routes and the delivery worker use them. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/event.h"

#define WEBHOOK_URL_MAX 2048
#define WEBHOOK_SECRET_MIN 16
#define WEBHOOK_SECRET_MAX 1024
#define WEBHOOK_FILTER_MAX 32 /* reasons or namespaces in one filter */

/* The header names of a delivery (README "Webhooks"). Ring documents no webhook header, so
 * these are husk's own. */
#define WEBHOOK_HEADER_SIGNATURE "X-Husk-Signature" /* "sha256=" + hex HMAC-SHA256(secret, body) */
#define WEBHOOK_HEADER_EVENT_ID "X-Husk-Event-Id"   /* the event's id (GET /deployments/{id}/events) */
#define WEBHOOK_HEADER_EVENT "X-Husk-Event"         /* the event's reason */
#define WEBHOOK_HEADER_DELIVERY "X-Husk-Delivery"   /* the delivery's id: the same on every retry */
#define WEBHOOK_HEADER_TIMESTAMP "X-Husk-Timestamp" /* unix seconds when this attempt was sent */

/* "sha256=" + 64 hex digits + NUL */
#define WEBHOOK_SIGNATURE_LEN (7 + 64 + 1)

/* Which events a webhook takes. Empty lists match everything. */
typedef struct webhook_filter {
        char *reasons[WEBHOOK_FILTER_MAX]; /* CamelCase, exact */
        size_t n_reasons;
        char *namespaces[WEBHOOK_FILTER_MAX]; /* DNS labels */
        size_t n_namespaces;
        int min_level; /* event_level_rank(): 0 info (everything), 1 warning, 2 error */
} webhook_filter_t;

void webhook_filter_clear(webhook_filter_t *f);
/* Whether an event of level and reason about a deployment in namespace_ passes f. */
bool webhook_filter_matches(const webhook_filter_t *f, const char *namespace_, const char *level, const char *reason);
/* f as the API shows and the store keeps it: {"reasons": [...], "level": "info", "namespaces": [...]}. */
json_t *webhook_filter_to_json(const webhook_filter_t *f);
/* The inverse, checking each field: 0, else -EINVAL with a {field, reason} violation per problem
 * appended to violations (NULL: none wanted). NULL or JSON null: the empty filter. Fields are
 * named under prefix ("filter"). */
int webhook_filter_from_json(const json_t *j, const char *prefix, json_t *violations, webhook_filter_t *ret);

/* http or https, a host, at most WEBHOOK_URL_MAX bytes of printable ASCII without spaces: NULL
 * when url is one, else why not (a static string for a 422's reason). */
const char *webhook_url_problem(const char *url);

/* "sha256=<hex HMAC-SHA256 of body under secret>" into ret. */
void webhook_sign(const char *secret, size_t secret_n, const char *body, size_t body_n,
                  char ret[static WEBHOOK_SIGNATURE_LEN]);

/* The wait before the attempt after failed attempt number `failed` (1-based): initial_ms
 * doubled per failure, capped at max_ms, then "equal jitter": a uniform point of the upper half
 * ([d/2, d]) picked by random, so that receivers that failed together are not retried in
 * lockstep yet each wait is at least half the schedule's. */
uint64_t webhook_backoff_ms(uint64_t initial_ms, uint64_t max_ms, uint32_t failed, uint32_t random);

/* The body of a delivery: the event as GET /deployments/{id}/events shows it, plus the
 * deployment's namespace and name (they are not in the event). Compact JSON text, malloc'd. */
char *webhook_body(const event_t *e, const char *namespace_, const char *deployment_name);
