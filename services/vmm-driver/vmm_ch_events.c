/* vmm_ch_events.c: cloud-hypervisor's --event-monitor file, followed with inotify from the loop: boots, shutdowns, reboots, guest panics as CH reports them. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "lib/log.h"
#include "services/vmm-driver/vmm_ch.h"

#define EVENT_RECORD_MAX 4096 /* one pretty-printed record is ~150 bytes */

struct vmm_ch_events {
        vmm_instance_t *i;
        void (*fn)(vmm_instance_t *i, const vmm_ch_event_t *e);
        int inotify_fd;
        int fd; /* the file, read from where the last complete record ended */
        char buf[2 * EVENT_RECORD_MAX];
        size_t len;
};

static int parse_record(const char *text, size_t len, vmm_ch_event_t *ret) {
        json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
        const char *source, *event;
        int r = -EBADMSG;

        if (!o || !json_is_object(o))
                goto malformed;
        source = json_string_value(json_object_get(o, "source"));
        event = json_string_value(json_object_get(o, "event"));
        if (!source || !event || strlen(source) >= sizeof(ret->source) || strlen(event) >= sizeof(ret->event))
                goto malformed;
        snprintf(ret->source, sizeof(ret->source), "%s", source);
        snprintf(ret->event, sizeof(ret->event), "%s", event);
        r = 0;
malformed:
        json_decref(o);
        return r;
}

size_t vmm_ch_events_parse(const char *buf, size_t len, void (*fn)(const vmm_ch_event_t *e, void *userdata),
                           void *userdata, unsigned *ret_bad) {
        size_t used = 0;
        unsigned bad = 0;

        /* serde_json's pretty printer never writes an empty line inside a record: "\n\n" ends one. */
        for (;;) {
                const char *end = memmem(buf + used, len - used, "\n\n", 2);
                vmm_ch_event_t e;

                if (!end)
                        break;
                if (parse_record(buf + used, (size_t)(end - (buf + used)), &e) < 0)
                        bad++;
                else
                        fn(&e, userdata);
                used = (size_t)(end - buf) + 2;
        }
        if (ret_bad)
                *ret_bad = bad;
        return used;
}

static void deliver(const vmm_ch_event_t *e, void *userdata) {
        vmm_ch_events_t *ev = userdata;

        ev->fn(ev->i, e);
}

static void events_read(vmm_ch_events_t *ev) {
        const char *id = ev->i->rec.inst.spec.instance_id;

        for (;;) {
                ssize_t n = read(ev->fd, ev->buf + ev->len, sizeof(ev->buf) - ev->len);
                unsigned bad = 0;
                size_t used;

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return;
                ev->len += (size_t)n;
                used = vmm_ch_events_parse(ev->buf, ev->len, deliver, ev, &bad);
                if (bad)
                        log_warning("Instance %s: %u malformed cloud-hypervisor event record(s), ignoring", id, bad);
                memmove(ev->buf, ev->buf + used, ev->len - used);
                ev->len -= used;
                if (ev->len == sizeof(ev->buf)) {
                        log_warning("Instance %s: cloud-hypervisor event record too long, skipping it", id);
                        ev->len = 0;
                }
        }
}

void vmm_ch_events_drain(vmm_ch_events_t *ev) {
        if (ev && ev->fd >= 0)
                events_read(ev);
}

static int on_inotify(zloop_t *loop, zmq_pollitem_t *item, void *arg) {
        vmm_ch_events_t *ev = arg;
        char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

        /* zloop may still call a poller ended earlier in this iteration. */
        if (ev->inotify_fd < 0)
                return 0;
        /* The events only say the file grew: read them away, then the file. */
        while (read(ev->inotify_fd, buf, sizeof(buf)) > 0)
                ;
        events_read(ev);
        return 0;
}

int vmm_ch_events_start(vmm_instance_t *i, void (*fn)(vmm_instance_t *i, const vmm_ch_event_t *e),
                        vmm_ch_events_t **ret) {
        vmm_ch_events_t *ev;
        zmq_pollitem_t item;
        char path[PATH_MAX];
        int r;

        if (snprintf(path, sizeof(path), "%s/" VMM_CH_EVENTS, i->dir) >= (int)sizeof(path))
                return -ENAMETOOLONG;
        ev = calloc(1, sizeof(*ev));
        if (!ev)
                return -ENOMEM;
        ev->i = i;
        ev->fn = fn;
        ev->inotify_fd = -1;
        /* Made before the spawn (see prepare), so there is always a file to watch; CH opens it
         * with O_TRUNC, which keeps the inode. */
        ev->fd = open(path, O_RDONLY | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0600);
        if (ev->fd < 0) {
                r = -errno;
                goto fail;
        }
        ev->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (ev->inotify_fd < 0 || inotify_add_watch(ev->inotify_fd, path, IN_MODIFY) < 0) {
                r = -errno;
                goto fail;
        }
        item = (zmq_pollitem_t){ .fd = ev->inotify_fd, .events = ZMQ_POLLIN };
        if (zloop_poller(i->vmm->loop, &item, on_inotify, ev) < 0) {
                r = -ENOMEM;
                goto fail;
        }
        zloop_poller_set_tolerant(i->vmm->loop, &item);
        /* What was written before we watched (an adopted VMM's boot). */
        events_read(ev);
        *ret = ev;
        return 0;
fail:
        if (ev->inotify_fd >= 0)
                close(ev->inotify_fd);
        if (ev->fd >= 0)
                close(ev->fd);
        free(ev);
        return r;
}

void vmm_ch_events_close(vmm_ch_events_t *ev) {
        if (!ev)
                return;
        if (ev->inotify_fd >= 0) {
                zloop_poller_end(ev->i->vmm->loop, &(zmq_pollitem_t){ .fd = ev->inotify_fd });
                close(ev->inotify_fd);
                ev->inotify_fd = -1;
        }
        if (ev->fd >= 0)
                close(ev->fd);
        ev->fd = -1;
}

void vmm_ch_events_free(vmm_ch_events_t **evp) {
        if (!*evp)
                return;
        vmm_ch_events_close(*evp);
        free(*evp);
        *evp = NULL;
}
