/* vmm_job.h: blocking work on a thread of its own, its end handed back to the loop. */
#pragma once

#include <czmq.h>

typedef struct vmm_job vmm_job_t;
typedef void (*vmm_job_work_fn)(void *userdata); /* on the job's thread: touches only what is the job's */
typedef void (*vmm_job_done_fn)(void *userdata); /* from the loop, once work returned; the job is gone */

/* Run work(userdata) on a thread; done(userdata) then runs from loop. *ret is the caller's until
 * done runs (the job is freed just before) or vmm_job_wait. */
int vmm_job_start(zloop_t *loop, vmm_job_work_fn work, vmm_job_done_fn done, void *userdata, vmm_job_t **ret);
/* Wait for the thread (the caller made work end, say by killing the child it waits for) and free
 * the job; done never runs. NULL-safe; *job is NULL on return. */
void vmm_job_wait(vmm_job_t **job);
