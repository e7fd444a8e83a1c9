/* oci_create.c: create, start, run and exec (the VM holder comes in the next step). */
#include "cli/oci/oci.h"

int oci_verb_create(oci_ctx_t *ctx, int argc, char **argv) { return oci_error("create: not implemented yet"); }
int oci_verb_start(oci_ctx_t *ctx, int argc, char **argv) { return oci_error("start: not implemented yet"); }
int oci_verb_run(oci_ctx_t *ctx, int argc, char **argv) { return oci_error("run: not implemented yet"); }
int oci_verb_exec(oci_ctx_t *ctx, int argc, char **argv) { return oci_error("exec: not implemented yet"); }
