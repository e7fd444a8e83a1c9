/* cli_doctor.h: `husk doctor`'s checks: each one line, ok/warn/fail, and on failure the command that fixes it. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "lib/config.h"
#include "lib/util.h"

typedef enum doctor_status {
        DOCTOR_OK,
        DOCTOR_WARN, /* works, but not as well as it could, or an optional piece is missing */
        DOCTOR_FAIL, /* something required is missing: husk doctor exits 1 */
} doctor_status_t;

typedef struct doctor {
        json_t *checks; /* [{check, status: "ok"|"warn"|"fail", message, fix?}] in the order made */
        bool failed;    /* some check failed */
} doctor_t;

/* One check's line. fix: the exact command (or config change) that repairs it; NULL when none
 * is needed (ok) or none exists. */
void doctor_add(doctor_t *d, const char *check, doctor_status_t status, const char *fix, const char *fmt, ...)
        _printf_(5, 6);

/* A fix command, formatted; NULL on ENOMEM (the line then goes without one). */
char *doctor_fix(const char *fmt, ...) _printf_(1, 2);

/* ---- the host, from the config file (cli_doctor_host.c) ------------------------------------- */

/* VMM binaries and versions, /dev/kvm, the kit, OVMF, virtiofsd, nftables, cloud-hypervisor and
 * its firmware when enabled, directory permissions, free disk under the state dir. */
void doctor_check_host(doctor_t *d, const husk_config_t *c);

/* A bounded KVM measurement: open dev, make a VM with one vCPU that loops on an I/O port
 * write, and time KVM_RUN round trips for at most DOCTOR_KVM_BUDGET_MS (a timer interrupts a
 * KVM_RUN that never returns). -errno when dev cannot be opened or used. */
#define DOCTOR_KVM_BUDGET_MS 300
typedef struct doctor_kvm {
        uint64_t setup_us; /* open to the first KVM_RUN: VM, memory, vCPU */
        uint64_t exits;    /* KVM_RUN round trips completed */
        uint64_t run_us;   /* the time they took */
        bool interrupted;  /* a KVM_RUN did not come back within the budget */
} doctor_kvm_t;
int doctor_kvm_probe(const char *dev, doctor_kvm_t *ret);
/* ok, or warn for a KVM too slow to be worth it (nested virtualization without hardware help:
 * slower than TCG for a whole guest), with why in buf. */
doctor_status_t doctor_kvm_verdict(const doctor_kvm_t *k, char *buf, size_t size);

/* Free space under the state dir: fail below 1 GiB or 2 %, warn below 5 GiB or 10 %. */
doctor_status_t doctor_disk_verdict(uint64_t available, uint64_t total);

/* ---- the daemons (cli_doctor.c) -------------------------------------------------------------- */

/* Each daemon on the bus (daemon.info), vmm-driver's runtimes as it found them (runtime.list),
 * the API (GET /healthz). */
typedef struct cli_ctx cli_ctx_t;
void doctor_check_daemons(doctor_t *d, const cli_ctx_t *ctx, const husk_config_t *c);
