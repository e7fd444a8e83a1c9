/* apiserver_store_webhooks.h: webhooks (secret sealed at rest) and their durable delivery queue
 * in apiserver's store (apiserver_store_webhooks.c). Thread-safe as the rest of the store. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "services/apiserver/apiserver_store.h"
#include "services/apiserver/apiserver_webhook.h"

/* Finished deliveries (delivered or dead) kept per webhook, newest first; older ones go. */
#define STORE_DELIVERIES_KEPT 1000
#define STORE_DELIVERIES_LIST_MAX 1000

typedef struct store_webhook {
        char id[STORE_UUID_LEN + 1];
        char name[MANIFEST_NAME_MAX + 1]; /* "": none */
        char *url;
        webhook_filter_t filter;
        uint64_t created_at; /* unix ms */
} store_webhook_t;

void store_webhook_clear(store_webhook_t *w);
void store_webhook_array_free(store_webhook_t *a, size_t n);
/* Seal secret (n bytes) under the secrets key, bound to the new row, and keep the webhook.
 * -EEXIST when name (not "") is taken, -ENOKEY without a secrets key. */
int store_webhook_create(apiserver_store_t *s, const char *name, const char *url, const webhook_filter_t *f,
                         const char *secret, size_t n, store_webhook_t *ret);
/* The webhook whose id or, failing that, name is key. -ENOENT otherwise. */
int store_webhook_get(apiserver_store_t *s, const char *key, store_webhook_t *ret);
/* Every webhook, oldest first. */
int store_webhook_list(apiserver_store_t *s, store_webhook_t **ret, size_t *ret_n);
/* With its deliveries. -ENOENT when unknown. */
int store_webhook_delete(apiserver_store_t *s, const char *id);

typedef enum store_delivery_state {
        STORE_DELIVERY_PENDING,
        STORE_DELIVERY_DELIVERED,
        STORE_DELIVERY_DEAD,
        _STORE_DELIVERY_STATE_MAX,
} store_delivery_state_t;

const char *store_delivery_state_name(store_delivery_state_t s);

/* One attempt to deliver. */
typedef struct store_attempt {
        uint32_t attempt;     /* 1-based */
        uint64_t at;          /* unix ms, when it was sent */
        uint64_t duration_ms; /* until the answer, the failure or the timeout */
        int status;           /* the receiver's HTTP status; 0: no answer */
        char *error;          /* "": it was delivered */
} store_attempt_t;

typedef struct store_delivery {
        uint64_t id;
        char webhook_id[STORE_UUID_LEN + 1];
        uint64_t event_id;
        char reason[EVENT_REASON_MAX + 1];
        store_delivery_state_t state;
        uint32_t attempts;        /* made so far */
        uint64_t next_attempt_at; /* unix ms; meaningful while pending */
        int last_status;
        char *last_error;
        char *body;          /* JSON text, as sent */
        uint64_t created_at; /* unix ms: when the event was queued */
        uint64_t updated_at;
        store_attempt_t *history; /* oldest first (store_delivery_list only) */
        size_t n_history;
} store_delivery_t;

void store_delivery_clear(store_delivery_t *d);
void store_delivery_array_free(store_delivery_t *a, size_t n);

/* Queue e (just stored, with the lock held and inside the caller's transaction) for every
 * webhook whose filter takes it: >= 0, how many were queued. */
int store_webhooks_queue_locked(apiserver_store_t *s, const event_t *e);

/* The newest `limit` deliveries of webhook_id, newest first, each with its attempts. */
int store_delivery_list(apiserver_store_t *s, const char *webhook_id, size_t limit, store_delivery_t **ret,
                        size_t *ret_n);

/* For the delivery worker: per webhook with pending deliveries, the one due first. */
typedef struct store_delivery_due {
        uint64_t id;
        char webhook_id[STORE_UUID_LEN + 1];
        uint64_t next_attempt_at;
} store_delivery_due_t;
int store_delivery_due(apiserver_store_t *s, store_delivery_due_t **ret, size_t *ret_n);

/* A pending delivery with what sending it takes: its webhook's URL and secret (free the secret
 * with secrets_free()). -ENOENT when it is no longer pending (delivered, or its webhook deleted). */
int store_delivery_load(apiserver_store_t *s, uint64_t id, store_delivery_t *ret, char **ret_url, char **ret_secret,
                        size_t *ret_secret_n);

/* Record attempt a of delivery id, which leaves it in state (pending: retried at
 * next_attempt_at). Finished ones beyond STORE_DELIVERIES_KEPT of the webhook are dropped.
 * -ENOENT when the delivery is gone (its webhook was deleted meanwhile). */
int store_delivery_finish(apiserver_store_t *s, uint64_t id, const store_attempt_t *a, store_delivery_state_t state,
                          uint64_t next_attempt_at);

/* Deliveries in each state, over every webhook. */
int store_delivery_counts(apiserver_store_t *s, uint64_t ret[static _STORE_DELIVERY_STATE_MAX]);
