/* vmm_job.c: blocking work on a thread of its own, its end handed back to the loop through an eventfd: how vmm-driver waits for something slow (a template's boot, a clone's restore, a seed written) while the loop goes on seeing exits, QMP and agents. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "services/vmm-driver/vmm_job.h"

struct vmm_job {
        zloop_t *loop;
        pthread_t thread;
        int efd;
        vmm_job_work_fn work;
        vmm_job_done_fn done;
        void *userdata;
};

static void *job_thread(void *arg) {
        vmm_job_t *j = arg;

        j->work(j->userdata);
        (void)eventfd_write(j->efd, 1);
        return NULL;
}

/* The thread has ended or is about to: stop polling, join, free. */
static void job_end(vmm_job_t *j) {
        zloop_poller_end(j->loop, &(zmq_pollitem_t){ .fd = j->efd });
        (void)pthread_join(j->thread, NULL);
        close(j->efd);
        free(j);
}

static int on_job_done(zloop_t *loop, zmq_pollitem_t *item, void *arg) {
        vmm_job_t *j = arg;
        vmm_job_done_fn done = j->done;
        void *userdata = j->userdata;

        job_end(j);
        done(userdata);
        return 0;
}

int vmm_job_start(zloop_t *loop, vmm_job_work_fn work, vmm_job_done_fn done, void *userdata, vmm_job_t **ret) {
        zmq_pollitem_t item = { .events = ZMQ_POLLIN };
        vmm_job_t *j = calloc(1, sizeof(*j));
        int r;

        if (!j)
                return -ENOMEM;
        *j = (vmm_job_t){ .loop = loop, .work = work, .done = done, .userdata = userdata };
        j->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (j->efd < 0) {
                r = -errno;
                free(j);
                return r;
        }
        item.fd = j->efd;
        if (zloop_poller(loop, &item, on_job_done, j) < 0) {
                close(j->efd);
                free(j);
                return -ENOMEM;
        }
        r = -pthread_create(&j->thread, NULL, job_thread, j);
        if (r < 0) {
                zloop_poller_end(loop, &item);
                close(j->efd);
                free(j);
                return r;
        }
        *ret = j;
        return 0;
}

void vmm_job_wait(vmm_job_t **p) {
        vmm_job_t *j = *p;

        if (!j)
                return;
        *p = NULL;
        job_end(j);
}
