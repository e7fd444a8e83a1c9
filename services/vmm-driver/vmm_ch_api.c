/* vmm_ch_api.c: cloud-hypervisor's REST API over its unix socket, without blocking the loop: libcurl's multi interface driven by the instance's zloop pollers and one timer. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/log.h"
#include "services/vmm-driver/vmm_ch.h"

#define API_BODY_MAX (1u << 20) /* vm.info with its device tree is a few KiB */

typedef struct api_call api_call_t;

struct vmm_ch_api {
        vmm_instance_t *i;
        CURLM *multi;
        char socket_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
        int dir_fd; /* keeps /proc/self/fd/N valid for a long socket path; -1 when unused */
        int timer;  /* curl's timeout; 0 when none */
        api_call_t *calls;
        int done_timer; /* finished calls are completed from a timer of their own; 0 when none */
};

struct api_call {
        vmm_ch_api_t *api;
        CURL *easy;
        struct curl_slist *headers;
        char *body; /* request */
        char *in;   /* answer */
        size_t in_len;
        bool too_big;
        vmm_ch_api_fn fn;
        void *userdata;
        char path[64];
        api_call_t *next;
};

static void arm_done(vmm_ch_api_t *a);

static void call_free(api_call_t *c) {
        if (!c)
                return;
        if (c->easy) {
                curl_multi_remove_handle(c->api->multi, c->easy);
                curl_easy_cleanup(c->easy);
        }
        curl_slist_free_all(c->headers);
        free(c->body);
        free(c->in);
        free(c);
}

static void call_unlink(api_call_t *c) {
        for (api_call_t **p = &c->api->calls; *p; p = &(*p)->next)
                if (*p == c) {
                        *p = c->next;
                        return;
                }
}

/* Take what curl finished and call back: the callback may start calls or free the client
 * (the instance exited), so the list is re-read after each. */
static void check_done(vmm_ch_api_t *a) {
        CURLMsg *m;
        int left;

        while ((m = curl_multi_info_read(a->multi, &left))) {
                api_call_t *c = NULL;
                long status = 0;
                int error = 0;

                if (m->msg != CURLMSG_DONE)
                        continue;
                curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&c);
                if (!c)
                        continue;
                switch (m->data.result) {
                case CURLE_OK:
                        curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
                        error = c->too_big ? -EMSGSIZE : 0;
                        break;
                case CURLE_COULDNT_CONNECT:
                        error = -ECONNREFUSED;
                        break;
                case CURLE_OPERATION_TIMEDOUT:
                        error = -ETIMEDOUT;
                        break;
                default:
                        error = -EIO;
                        log_debug("Instance %s: cloud-hypervisor API %s: %s", a->i->rec.inst.spec.instance_id, c->path,
                                  curl_easy_strerror(m->data.result));
                }
                call_unlink(c);
                if (c->fn) {
                        vmm_ch_api_fn fn = c->fn;
                        void *userdata = c->userdata;
                        vmm_instance_t *i = a->i;
                        _cleanup_free_ char *in = TAKE_PTR(c->in);

                        call_free(c);
                        /* The callback may free a (the instance exited): the rest waits for the
                         * next turn, whose timer goes with a. */
                        arm_done(a);
                        fn(i, error, status, in ?: "", userdata);
                        return;
                }
                call_free(c);
        }
}

/* Completing calls from a timer rather than inside curl's callbacks keeps every callback out
 * of libcurl's own stack (curl forbids re-entering the multi handle from there). */
static int on_done(zloop_t *loop, int timer_id, void *arg) {
        vmm_ch_api_t *a = arg;

        if (timer_id != a->done_timer)
                return 0;
        a->done_timer = 0;
        check_done(a);
        return 0;
}

static void arm_done(vmm_ch_api_t *a) {
        if (a->done_timer)
                return;
        a->done_timer = zloop_timer(a->i->vmm->loop, 0, 1, on_done, a);
        if (a->done_timer < 0)
                a->done_timer = 0;
}

static void drive(vmm_ch_api_t *a, curl_socket_t fd, int events) {
        int running;

        curl_multi_socket_action(a->multi, fd, events, &running);
        arm_done(a);
}

static int on_socket(zloop_t *loop, zmq_pollitem_t *item, void *arg) {
        vmm_ch_api_t *a = arg;
        int events = 0;

        /* zloop may still call a poller ended earlier in this iteration. */
        if (!a->multi)
                return 0;
        if (item->revents & ZMQ_POLLIN)
                events |= CURL_CSELECT_IN;
        if (item->revents & ZMQ_POLLOUT)
                events |= CURL_CSELECT_OUT;
        if (item->revents & ZMQ_POLLERR)
                events |= CURL_CSELECT_ERR;
        drive(a, item->fd, events);
        return 0;
}

static int on_timeout(zloop_t *loop, int timer_id, void *arg) {
        vmm_ch_api_t *a = arg;

        if (timer_id != a->timer)
                return 0;
        a->timer = 0;
        drive(a, CURL_SOCKET_TIMEOUT, 0);
        return 0;
}

static int socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
        vmm_ch_api_t *a = userp;
        zmq_pollitem_t item = { .fd = fd };

        zloop_poller_end(a->i->vmm->loop, &item);
        if (what == CURL_POLL_REMOVE)
                return 0;
        item.events = (what & CURL_POLL_IN ? ZMQ_POLLIN : 0) | (what & CURL_POLL_OUT ? ZMQ_POLLOUT : 0);
        if (zloop_poller(a->i->vmm->loop, &item, on_socket, a) < 0)
                return -1;
        zloop_poller_set_tolerant(a->i->vmm->loop, &item);
        return 0;
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp) {
        vmm_ch_api_t *a = userp;

        if (a->timer) {
                zloop_timer_end(a->i->vmm->loop, a->timer);
                a->timer = 0;
        }
        if (timeout_ms < 0)
                return 0;
        a->timer = zloop_timer(a->i->vmm->loop, (size_t)timeout_ms, 1, on_timeout, a);
        if (a->timer < 0) {
                a->timer = 0;
                return -1;
        }
        return 0;
}

static size_t write_cb(char *data, size_t size, size_t n, void *userp) {
        api_call_t *c = userp;
        size_t len = size * n;
        char *p;

        if (c->in_len + len > API_BODY_MAX) {
                c->too_big = true;
                return 0;
        }
        p = realloc(c->in, c->in_len + len + 1);
        if (!p)
                return 0;
        memcpy(p + c->in_len, data, len);
        c->in = p;
        c->in_len += len;
        c->in[c->in_len] = '\0';
        return len;
}

int vmm_ch_api_new(vmm_instance_t *i, const char *socket_path, vmm_ch_api_t **ret) {
        vmm_ch_api_t *a = calloc(1, sizeof(*a));

        if (!a)
                return -ENOMEM;
        a->i = i;
        a->dir_fd = -1;
        if (snprintf(a->socket_path, sizeof(a->socket_path), "%s/%s", i->dir, socket_path) >=
            (int)sizeof(a->socket_path)) {
                /* sun_path holds 108 bytes: reach a deep directory through its fd instead. */
                a->dir_fd = open(i->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (a->dir_fd < 0) {
                        free(a);
                        return -errno;
                }
                snprintf(a->socket_path, sizeof(a->socket_path), "/proc/self/fd/%d/%s", a->dir_fd, socket_path);
        }
        a->multi = curl_multi_init();
        if (!a->multi) {
                if (a->dir_fd >= 0)
                        close(a->dir_fd);
                free(a);
                return -ENOMEM;
        }
        curl_multi_setopt(a->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
        curl_multi_setopt(a->multi, CURLMOPT_SOCKETDATA, a);
        curl_multi_setopt(a->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
        curl_multi_setopt(a->multi, CURLMOPT_TIMERDATA, a);
        *ret = a;
        return 0;
}

void vmm_ch_api_close(vmm_ch_api_t *a) {
        zloop_t *loop;

        if (!a || !a->multi)
                return;
        loop = a->i->vmm->loop;
        while (a->calls) {
                api_call_t *c = a->calls;

                a->calls = c->next;
                call_free(c); /* curl removes its sockets through socket_cb */
        }
        if (a->timer)
                zloop_timer_end(loop, a->timer);
        if (a->done_timer)
                zloop_timer_end(loop, a->done_timer);
        a->timer = a->done_timer = 0;
        curl_multi_cleanup(a->multi);
        a->multi = NULL;
        if (a->dir_fd >= 0)
                close(a->dir_fd);
        a->dir_fd = -1;
}

void vmm_ch_api_free(vmm_ch_api_t **ap) {
        if (!*ap)
                return;
        vmm_ch_api_close(*ap);
        free(*ap);
        *ap = NULL;
}

int vmm_ch_api_call(vmm_ch_api_t *a, const char *method, const char *path, const char *body, uint64_t timeout_ms,
                    vmm_ch_api_fn fn, void *userdata) {
        char url[128];
        api_call_t *c;

        if (!a->multi)
                return -ENOTCONN;
        if (snprintf(url, sizeof(url), "http://localhost/api/v1/%s", path) >= (int)sizeof(url))
                return -EINVAL;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->api = a;
        c->fn = fn;
        c->userdata = userdata;
        snprintf(c->path, sizeof(c->path), "%s", path);
        c->easy = curl_easy_init();
        if (!c->easy || (body && !(c->body = strdup(body)))) {
                call_free(c);
                return -ENOMEM;
        }
        /* No "Expect: 100-continue": CH answers a request at once, whole. */
        c->headers = curl_slist_append(NULL, "Expect:");
        if (c->headers && body)
                c->headers = curl_slist_append(c->headers, "Content-Type: application/json");
        if (!c->headers) {
                call_free(c);
                return -ENOMEM;
        }
        curl_easy_setopt(c->easy, CURLOPT_URL, url);
        curl_easy_setopt(c->easy, CURLOPT_UNIX_SOCKET_PATH, a->socket_path);
        curl_easy_setopt(c->easy, CURLOPT_PRIVATE, c);
        curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->headers);
        curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, write_cb);
        curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, c);
        curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c->easy, CURLOPT_PROTOCOLS_STR, "http");
        if (timeout_ms)
                curl_easy_setopt(c->easy, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
        if (streq(method, "GET"))
                curl_easy_setopt(c->easy, CURLOPT_HTTPGET, 1L);
        else {
                /* A PUT with its body in memory (an empty one for vm.boot: Content-Length: 0). */
                curl_easy_setopt(c->easy, CURLOPT_CUSTOMREQUEST, method);
                curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, c->body ?: "");
                curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE, (long)(c->body ? strlen(c->body) : 0));
        }
        if (curl_multi_add_handle(a->multi, c->easy) != CURLM_OK) {
                call_free(c);
                return -ENOMEM;
        }
        c->next = a->calls;
        a->calls = c;
        return 0;
}
