/* vmm_clone.c: a clone of a template between its spawn and its ready: the restore of the template's state (on a thread), then its own identity through husk-agent. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/mp.h"
#include "proto/agent_identity.h"
#include "services/vmm-driver/vmm_job.h"
#include "services/vmm-driver/vmm_template.h"

#define RESTORE_TIMEOUT_MS 60000 /* QEMU starting and reading ~200 KiB of state: ms, seconds when loaded */
#define IDENTITY_TIMEOUT_MS 30000
#define ENTROPY_BYTES 64

static const char *id_of(const vmm_instance_t *i) { return i->rec.inst.spec.instance_id; }

/* ---- restore ----------------------------------------------------------------------------------- */

struct vmm_restore {
        vmm_job_t *job;
        pid_t pid;
        const vmm_template_ops_t *ops;
        char *dir, *template_dir;
        int error;
        char *why;
        vmm_restore_fn fn;
        void *userdata;
};

static void restore_work(void *userdata) {
        vmm_restore_t *r = userdata;

        r->error = r->ops->restore(r->dir, r->template_dir, true, RESTORE_TIMEOUT_MS, &r->why);
}

static void restore_free(vmm_restore_t *r) {
        free(r->dir);
        free(r->template_dir);
        free(r->why);
        free(r);
}

static void restore_done(void *userdata) {
        vmm_restore_t *r = userdata;
        _cleanup_free_ char *why = TAKE_PTR(r->why);
        vmm_restore_fn fn = r->fn;
        void *fn_userdata = r->userdata;
        int error = r->error;

        restore_free(r);
        fn(error, why, fn_userdata);
}

int vmm_restore_start(vmm_instance_t *i, const vmm_runtime_t *rt, const char *template_dir, pid_t pid,
                      vmm_restore_fn fn, void *userdata, vmm_restore_t **ret) {
        vmm_restore_t *r = calloc(1, sizeof(*r));
        int e;

        if (!r)
                return -ENOMEM;
        *r = (vmm_restore_t){ .pid = pid, .ops = rt->templates, .fn = fn, .userdata = userdata };
        r->dir = strdup(i->dir);
        r->template_dir = strdup(template_dir);
        if (!r->dir || !r->template_dir) {
                restore_free(r);
                return -ENOMEM;
        }
        e = vmm_job_start(i->vmm->loop, restore_work, restore_done, r, &r->job);
        if (e < 0) {
                restore_free(r);
                return e;
        }
        *ret = r;
        return 0;
}

void vmm_restore_cancel(vmm_restore_t **p) {
        vmm_restore_t *r = *p;

        if (!r)
                return;
        *p = NULL;
        /* Our unreaped child: its pid is still its. Its end ends the thread's QMP wait. */
        kill(r->pid, SIGKILL);
        vmm_job_wait(&r->job);
        (void)waitpid(r->pid, NULL, 0);
        restore_free(r);
}

/* ---- identity ---------------------------------------------------------------------------------- */

bool vmm_clone_identity_pending(const vmm_instance_t *i) { return i->rec.inst.template && !i->rec.identity_given; }

static void pack_identity(msgpack_packer *pk, void *userdata) { agent_identity_pack(pk, userdata); }

static void on_identity(vmm_instance_t *i, const msgpack_object *body, int error, void *userdata) {
        _cleanup_free_ char *message = NULL;
        char w[1024];

        if (error == -EREMOTEIO) {
                (void)mp_get_str(body, "message", 1024, &message);
                snprintf(w, sizeof(w), "clone of template %s refused its identity: %s; stopping it",
                         i->rec.inst.template, message ?: "no reason given");
                log_warning("Instance %s: %s", id_of(i), w);
                vmm_publish_warning(i, w);
                /* A clone that is not itself must not serve: it ends, and is replaced. */
                (void)vmm_instance_stop(i, false);
                return;
        }
        if (error < 0) {
                /* The connection went: the next hello asks again. */
                log_debug_errno(error, "Instance %s: identity not answered: %m", id_of(i));
                return;
        }
        i->rec.identity_given = true;
        vmm_instance_save(i);
        log_debug("Instance %s: identity taken (clone of %s)", id_of(i), i->rec.inst.template);
        vmm_instance_on_ready(i);
        vmm_workload_start(i);
        if (i->rec.pooled)
                vmm_template_pool_clone_ready(i->vmm);
}

void vmm_clone_give_identity(vmm_instance_t *i) {
        const vmm_net_t *n = &i->net;
        uint8_t entropy[ENTROPY_BYTES];
        agent_identity_t id = { .hostname = id_of(i),
                                .entropy = entropy,
                                .entropy_size = sizeof(entropy),
                                .time_ns = now_realtime_ns(),
                                .mac = n->attached ? n->mac : NULL,
                                .ip = n->guest_ip,
                                .prefix = n->prefix,
                                .gw = n->host_ip };
        int64_t r;

        /* Fresh for each request: two clones never share random state, nor one clone two seeds. */
        if (getrandom(entropy, sizeof(entropy), 0) != (ssize_t)sizeof(entropy)) {
                log_error_errno(errno, "Instance %s: no host entropy for its identity: %m", id_of(i));
                return;
        }
        if (!i->net.attached && i->rec.inst.address)
                /* Adopted before its identity was given: netd's full answer died with the old
                 * vmm-driver; without it the clone has no address to take. */
                log_warning("Instance %s: clone adopted before it took its identity: no network for it", id_of(i));
        r = vmm_agent_request(i, "identity", agent_identity_keys(&id), pack_identity, &id, IDENTITY_TIMEOUT_MS,
                              on_identity, NULL);
        explicit_bzero(entropy, sizeof(entropy));
        if (r < 0)
                log_debug_errno((int)r, "Instance %s: cannot send identity: %m", id_of(i));
}
