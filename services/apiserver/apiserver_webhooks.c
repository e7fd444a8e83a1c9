/* apiserver_webhooks.c: the delivery worker thread: due deliveries out, at most one per webhook
 * and apiserver.webhooks.concurrency in all, each signed, timed out, retried with back-off. */
#include "services/apiserver/apiserver_webhooks.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "lib/util.h"
#include "services/apiserver/apiserver_secrets.h"
#include "services/apiserver/apiserver_store_webhooks.h"

/* The longest the worker sleeps without looking at the queue: a safety net only (a queued
 * delivery kicks it, a finished attempt wakes it, and it wakes for the next due time). */
#define IDLE_POLL_MS 1000
#define TIMEOUT_MIN_MS 100

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }
static uint64_t max_u64(uint64_t a, uint64_t b) { return a > b ? a : b; }

typedef struct transfer {
        CURL *easy;
        uint64_t delivery_id;
        char webhook_id[STORE_UUID_LEN + 1];
        uint32_t attempt; /* this one, 1-based */
        uint64_t started_at;
        uint64_t started_mono;
        char *body;
        struct curl_slist *headers;
        char error[CURL_ERROR_SIZE];
} transfer_t;

struct apiserver_webhooks {
        apiserver_store_t *store;
        uint32_t max_attempts;
        uint64_t timeout_ms;
        uint64_t backoff_initial_ms;
        uint64_t backoff_max_ms;
        uint32_t concurrency;
        CURLM *multi;
        pthread_t thread;
        bool started;
        bool stopping;                               /* atomic */
        bool rescan;                                 /* atomic: look at the queue at the next turn */
        transfer_t **slots;                          /* concurrency of them; NULL: free */
        uint64_t delivered, failed, dead, in_flight; /* atomic */
};

static void transfer_free(apiserver_webhooks_t *w, transfer_t *t) {
        if (!t)
                return;
        if (t->easy) {
                curl_multi_remove_handle(w->multi, t->easy);
                curl_easy_cleanup(t->easy);
        }
        curl_slist_free_all(t->headers);
        free(t->body);
        free(t);
        __atomic_sub_fetch(&w->in_flight, 1, __ATOMIC_RELAXED);
}

static size_t discard(char *p, size_t size, size_t n, void *userdata) { return size * n; }

static bool webhook_busy(apiserver_webhooks_t *w, const char *webhook_id) {
        for (uint32_t i = 0; i < w->concurrency; i++)
                if (w->slots[i] && streq(w->slots[i]->webhook_id, webhook_id))
                        return true;
        return false;
}

static int free_slot(apiserver_webhooks_t *w) {
        for (uint32_t i = 0; i < w->concurrency; i++)
                if (!w->slots[i])
                        return (int)i;
        return -1;
}

/* Record the outcome of attempt `attempt` and count it. */
static void finish(apiserver_webhooks_t *w, uint64_t id, const char *webhook_id, uint32_t attempt, uint64_t at,
                   uint64_t duration_ms, int status, const char *error) {
        store_attempt_t a = { .attempt = attempt, .at = at, .duration_ms = duration_ms, .status = status };
        store_delivery_state_t state = STORE_DELIVERY_DELIVERED;
        uint64_t next = 0;
        int r;

        a.error = (char *)(error ?: "");
        if (error) {
                state = attempt >= w->max_attempts ? STORE_DELIVERY_DEAD : STORE_DELIVERY_PENDING;
                if (state == STORE_DELIVERY_PENDING)
                        next = now_realtime_ms() + webhook_backoff_ms(w->backoff_initial_ms, w->backoff_max_ms, attempt,
                                                                      randombytes_random());
        }
        r = store_delivery_finish(w->store, id, &a, state, next);
        if (r == -ENOENT)
                return; /* its webhook was deleted meanwhile */
        if (r < 0)
                log_warning_errno(r,
                                  "Webhook %s: cannot record delivery %" PRIu64 "'s attempt %" PRIu32 ": %m, ignoring",
                                  webhook_id, id, attempt);
        if (!error) {
                __atomic_add_fetch(&w->delivered, 1, __ATOMIC_RELAXED);
                log_debug("Webhook %s: delivery %" PRIu64 " delivered at attempt %" PRIu32, webhook_id, id, attempt);
                return;
        }
        __atomic_add_fetch(&w->failed, 1, __ATOMIC_RELAXED);
        if (state == STORE_DELIVERY_DEAD) {
                __atomic_add_fetch(&w->dead, 1, __ATOMIC_RELAXED);
                log_warning("Webhook %s: delivery %" PRIu64 " given up after %" PRIu32 " attempts: %s", webhook_id, id,
                            attempt, error);
        } else
                log_info("Webhook %s: delivery %" PRIu64 " attempt %" PRIu32 " failed (%s), retried in %" PRIu64 " ms",
                         webhook_id, id, attempt, error, next - now_realtime_ms());
}

/* Start delivery id into slot: 0, or a negative errno when it was not started (then it was
 * finished, or is no longer pending). */
static int start(apiserver_webhooks_t *w, uint64_t id, int slot) {
        _cleanup_free_ char *url = NULL;
        char *secret = NULL, sig[WEBHOOK_SIGNATURE_LEN], line[256];
        store_delivery_t d = {};
        size_t secret_n = 0;
        transfer_t *t;
        int r;

        r = store_delivery_load(w->store, id, &d, &url, &secret, &secret_n);
        if (r == -ENOENT)
                return r;
        if (r == -EKEYREJECTED) {
                /* It never will open: dead at once, and said why. */
                finish(w, id, "?", w->max_attempts, now_realtime_ms(), 0, 0,
                       "the webhook's secret does not open under the secrets key");
                return r;
        }
        if (r < 0)
                return log_warning_errno(r, "Webhook delivery %" PRIu64 ": cannot load it: %m, retrying later", id);
        webhook_sign(secret, secret_n, d.body, strlen(d.body), sig);
        secrets_free(secret, secret_n);

        t = calloc(1, sizeof(*t));
        if (!t) {
                store_delivery_clear(&d);
                return -ENOMEM;
        }
        __atomic_add_fetch(&w->in_flight, 1, __ATOMIC_RELAXED);
        t->delivery_id = id;
        snprintf(t->webhook_id, sizeof(t->webhook_id), "%s", d.webhook_id);
        t->attempt = d.attempts + 1;
        t->started_at = now_realtime_ms();
        t->started_mono = now_monotonic_ms();
        t->body = TAKE_PTR(d.body);
#define HEADER(...)                                        \
        do {                                               \
                struct curl_slist *l_;                     \
                snprintf(line, sizeof(line), __VA_ARGS__); \
                l_ = curl_slist_append(t->headers, line);  \
                if (!l_)                                   \
                        r = -ENOMEM;                       \
                else                                       \
                        t->headers = l_;                   \
        } while (0)
        r = 0;
        HEADER("Content-Type: application/json");
        HEADER(WEBHOOK_HEADER_SIGNATURE ": %s", sig);
        HEADER(WEBHOOK_HEADER_EVENT_ID ": %" PRIu64, d.event_id);
        HEADER(WEBHOOK_HEADER_EVENT ": %s", d.reason);
        HEADER(WEBHOOK_HEADER_DELIVERY ": %" PRIu64, id);
        HEADER(WEBHOOK_HEADER_TIMESTAMP ": %" PRIu64, t->started_at / 1000);
        HEADER("Expect:"); /* no 100-continue round trip */
#undef HEADER
        store_delivery_clear(&d);
        t->easy = r < 0 ? NULL : curl_easy_init();
        if (!t->easy) {
                transfer_free(w, t);
                return -ENOMEM;
        }
        curl_easy_setopt(t->easy, CURLOPT_URL, url);
        curl_easy_setopt(t->easy, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(t->easy, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(t->easy, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(t->easy, CURLOPT_POST, 1L);
        curl_easy_setopt(t->easy, CURLOPT_POSTFIELDS, t->body);
        curl_easy_setopt(t->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(t->body));
        curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, t->headers);
        curl_easy_setopt(t->easy, CURLOPT_USERAGENT, "husk-webhooks/" HUSK_VERSION);
        curl_easy_setopt(t->easy, CURLOPT_TIMEOUT_MS, (long)w->timeout_ms);
        curl_easy_setopt(t->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)w->timeout_ms);
        curl_easy_setopt(t->easy, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(t->easy, CURLOPT_ERRORBUFFER, t->error);
        curl_easy_setopt(t->easy, CURLOPT_PRIVATE, t);
        if (curl_multi_add_handle(w->multi, t->easy) != CURLM_OK) {
                transfer_free(w, t);
                return -ENOMEM;
        }
        w->slots[slot] = t;
        return 0;
}

/* Start every due delivery there is room for; the unix ms time the worker should look again
 * (UINT64_MAX: when something happens). */
static uint64_t fill(apiserver_webhooks_t *w, uint64_t now) {
        store_delivery_due_t *due = NULL;
        uint64_t next = UINT64_MAX;
        size_t n = 0;
        int r;

        r = store_delivery_due(w->store, &due, &n);
        if (r < 0) {
                log_warning_errno(r, "Webhooks: cannot read the delivery queue: %m, retrying in a second");
                return now + IDLE_POLL_MS;
        }
        for (size_t i = 0; i < n; i++) {
                int slot;

                if (webhook_busy(w, due[i].webhook_id))
                        continue; /* its attempt's end wakes the worker */
                if (due[i].next_attempt_at > now) {
                        next = min_u64(next, due[i].next_attempt_at);
                        continue;
                }
                slot = free_slot(w);
                if (slot < 0)
                        break; /* a slot freed wakes the worker */
                r = start(w, due[i].id, slot);
                if (r < 0 && r != -ENOENT && r != -EKEYREJECTED)
                        next = min_u64(next, now + IDLE_POLL_MS);
        }
        free(due);
        return next;
}

static void reap(apiserver_webhooks_t *w) {
        CURLMsg *m;
        int left;

        while ((m = curl_multi_info_read(w->multi, &left))) {
                transfer_t *t = NULL;
                long status = 0;
                char error[CURL_ERROR_SIZE + 32];
                const char *why = NULL;

                if (m->msg != CURLMSG_DONE)
                        continue;
                curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&t);
                curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
                if (m->data.result != CURLE_OK) {
                        snprintf(error, sizeof(error), "%s",
                                 t->error[0] ? t->error : curl_easy_strerror(m->data.result));
                        why = error;
                } else if (status < 200 || status > 299) {
                        snprintf(error, sizeof(error), "the receiver answered HTTP %ld", status);
                        why = error;
                }
                finish(w, t->delivery_id, t->webhook_id, t->attempt, t->started_at,
                       now_monotonic_ms() - t->started_mono, (int)status, why);
                for (uint32_t i = 0; i < w->concurrency; i++)
                        if (w->slots[i] == t)
                                w->slots[i] = NULL;
                transfer_free(w, t);
                __atomic_store_n(&w->rescan, true, __ATOMIC_RELEASE);
        }
}

static void *run(void *userdata) {
        apiserver_webhooks_t *w = userdata;
        uint64_t next = 0;

        while (!__atomic_load_n(&w->stopping, __ATOMIC_ACQUIRE)) {
                uint64_t now = now_realtime_ms();
                int running = 0, timeout;

                if (__atomic_exchange_n(&w->rescan, false, __ATOMIC_ACQ_REL) || now >= next)
                        next = fill(w, now);
                curl_multi_perform(w->multi, &running);
                reap(w);
                now = now_realtime_ms();
                if (__atomic_load_n(&w->rescan, __ATOMIC_ACQUIRE))
                        timeout = 0;
                else
                        timeout = next <= now ? 0 : (int)min_u64(next - now, IDLE_POLL_MS);
                curl_multi_poll(w->multi, NULL, 0, timeout, NULL);
        }
        return NULL;
}

int apiserver_webhooks_start(apiserver_store_t *store, const husk_config_t *config, apiserver_webhooks_t **ret) {
        apiserver_webhooks_t *w;
        int r;

        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                return -EIO;
        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->store = store;
        w->max_attempts = (uint32_t)max_u64(config->apiserver.webhooks.max_attempts, 1);
        w->timeout_ms = max_u64(config->apiserver.webhooks.timeout_ms, TIMEOUT_MIN_MS);
        w->backoff_initial_ms = config->apiserver.webhooks.backoff_initial_ms;
        w->backoff_max_ms = max_u64(config->apiserver.webhooks.backoff_max_ms, w->backoff_initial_ms);
        w->concurrency = (uint32_t)max_u64(config->apiserver.webhooks.concurrency, 1);
        w->slots = calloc(w->concurrency, sizeof(*w->slots));
        w->multi = curl_multi_init();
        if (!w->slots || !w->multi) {
                apiserver_webhooks_stop(&w);
                return -ENOMEM;
        }
        r = -pthread_create(&w->thread, NULL, run, w);
        if (r < 0) {
                apiserver_webhooks_stop(&w);
                return r;
        }
        w->started = true;
        *ret = w;
        return 0;
}

void apiserver_webhooks_stop(apiserver_webhooks_t **wp) {
        apiserver_webhooks_t *w = *wp;

        if (!w)
                return;
        if (w->started) {
                __atomic_store_n(&w->stopping, true, __ATOMIC_RELEASE);
                curl_multi_wakeup(w->multi);
                pthread_join(w->thread, NULL);
        }
        for (uint32_t i = 0; w->slots && i < w->concurrency; i++)
                transfer_free(w, w->slots[i]);
        free(w->slots);
        if (w->multi)
                curl_multi_cleanup(w->multi);
        free(w);
        *wp = NULL;
}

void apiserver_webhooks_kick(apiserver_webhooks_t *w) {
        if (!w)
                return;
        __atomic_store_n(&w->rescan, true, __ATOMIC_RELEASE);
        curl_multi_wakeup(w->multi);
}

int apiserver_webhooks_stats(apiserver_webhooks_t *w, apiserver_store_t *store, webhook_stats_t *ret) {
        uint64_t counts[_STORE_DELIVERY_STATE_MAX];
        int r;

        *ret = (webhook_stats_t){};
        if (w) {
                ret->delivered_total = __atomic_load_n(&w->delivered, __ATOMIC_RELAXED);
                ret->failed_total = __atomic_load_n(&w->failed, __ATOMIC_RELAXED);
                ret->dead_total = __atomic_load_n(&w->dead, __ATOMIC_RELAXED);
                ret->in_flight = __atomic_load_n(&w->in_flight, __ATOMIC_RELAXED);
        }
        r = store_delivery_counts(store, counts);
        if (r < 0)
                return r;
        ret->pending = counts[STORE_DELIVERY_PENDING];
        return 0;
}
