/* bus_pool.c: a pool of synchronous bus clients shared by threads (see bus_pool.h). */
#include "lib/bus_pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct bus_pool {
        char *endpoint;
        pthread_mutex_t lock; /* guards idle and n_idle only; never held during a call */
        size_t n_idle, max_idle;
        bus_client_t *idle[];
};

int bus_pool_new(const char *endpoint, size_t max_idle, bus_pool_t **ret) {
        bus_pool_t *p = calloc(1, sizeof(*p) + max_idle * sizeof(p->idle[0]));

        if (!p)
                return -ENOMEM;
        p->endpoint = strdup(endpoint);
        if (!p->endpoint) {
                free(p);
                return -ENOMEM;
        }
        p->max_idle = max_idle;
        pthread_mutex_init(&p->lock, NULL);
        *ret = p;
        return 0;
}

void bus_pool_destroy(bus_pool_t **self_p) {
        bus_pool_t *p = *self_p;

        if (!p)
                return;
        while (p->n_idle > 0)
                bus_client_destroy(&p->idle[--p->n_idle]);
        pthread_mutex_destroy(&p->lock);
        free(p->endpoint);
        free(p);
        *self_p = NULL;
}

static int take(bus_pool_t *p, bus_client_t **ret) {
        bus_client_t *c = NULL;

        pthread_mutex_lock(&p->lock);
        if (p->n_idle > 0)
                c = p->idle[--p->n_idle];
        pthread_mutex_unlock(&p->lock);
        if (c) {
                *ret = c;
                return 0;
        }
        return bus_client_new(p->endpoint, ret);
}

/* A client that timed out stays usable: bus_call drops the late reply by its id. */
static void give(bus_pool_t *p, bus_client_t **c) {
        pthread_mutex_lock(&p->lock);
        if (p->n_idle < p->max_idle) {
                p->idle[p->n_idle++] = *c;
                *c = NULL;
        }
        pthread_mutex_unlock(&p->lock);
        bus_client_destroy(c);
}

int bus_pool_call(bus_pool_t *self, const char *method, const msgpack_sbuffer *args, const bus_call_opts_t *opts,
                  bus_reply_t **ret) {
        bus_client_t *c = NULL;
        int r;

        r = take(self, &c);
        if (r < 0)
                return r;
        r = bus_call(c, method, args, opts, ret);
        give(self, &c);
        return r;
}
