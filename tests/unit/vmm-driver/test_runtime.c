/* test_runtime.c: the runtime table's one lookup: unknown, unimplemented and disabled runtimes, in the words instance.create answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/config.h"
#include "lib/mp.h"
#include "lib/util.h"
#include "proto/names.h"
#include "services/vmm-driver/vmm.h"

static int lookup(const husk_config_t *c, const char *name, const vmm_runtime_t **rt, char **error) {
        free(*error);
        *error = NULL;
        return vmm_runtime_lookup(c, name, rt, error);
}

static void test_lookup(void **state) {
        _cleanup_(husk_config_freep) husk_config_t *c = NULL;
        _cleanup_free_ char *error = NULL;
        const vmm_runtime_t *rt = NULL;

        assert_int_equal(husk_config_new_default(&c), 0);

        /* The default config runs qemu. */
        assert_int_equal(lookup(c, "qemu", &rt, &error), 0);
        assert_non_null(rt);
        assert_string_equal(rt->name, "qemu");
        assert_null(error);

        /* Not a runtime at all: the message lists every name the table has. */
        assert_int_equal(lookup(c, "docker", &rt, &error), -EINVAL);
        assert_null(rt);
        assert_string_equal(error, "runtime: must be qemu or cloud-hypervisor");
        assert_int_equal(lookup(c, "QEMU", &rt, &error), -EINVAL);
        assert_int_equal(lookup(c, NULL, &rt, &error), -EINVAL);
        assert_string_equal(error, "runtime: missing");

        /* cloud-hypervisor is a row too, off unless enabled (as in Ring, runtimes are opt-in). */
        assert_int_equal(lookup(c, "cloud-hypervisor", &rt, &error), -EPERM);
        assert_non_null(rt);
        assert_string_equal(rt->name, "cloud-hypervisor");
        assert_string_equal(error, "runtime cloud-hypervisor is not enabled on this host");
        c->cloud_hypervisor.enabled = true;
        assert_int_equal(lookup(c, "cloud-hypervisor", &rt, &error), 0);
        assert_string_equal(rt->name, "cloud-hypervisor");
        assert_null(error);

        /* Implemented but disabled: refused for creates, yet the row is handed out (adoption
         * still watches that runtime's VMMs). */
        c->qemu.enabled = false;
        assert_int_equal(lookup(c, "qemu", &rt, &error), -EPERM);
        assert_non_null(rt);
        assert_string_equal(rt->name, "qemu");
        assert_string_equal(error, "runtime qemu is not enabled on this host");

        /* A caller that does not want the words need not take them. */
        assert_int_equal(vmm_runtime_lookup(c, "docker", &rt, NULL), -EINVAL);
}

/* Every implemented row fills in every entry: vmm-driver calls them without checking. */
static void test_rows_complete(void **state) {
        static const char *const names[] = { "qemu", "cloud-hypervisor" };
        _cleanup_(husk_config_freep) husk_config_t *c = NULL;
        const vmm_runtime_t *rt = NULL;

        assert_int_equal(husk_config_new_default(&c), 0);
        c->cloud_hypervisor.enabled = true;
        for (size_t k = 0; k < ELEMENTSOF(names); k++) {
                assert_int_equal(vmm_runtime_lookup(c, names[k], &rt, NULL), 0);
                assert_non_null(rt->console_file);
                assert_non_null(rt->output_file);
                assert_non_null(rt->agent_transport);
                assert_non_null(rt->agent_socket);
                /* A handshake line without the answer that accepts it (or the reverse) is half a handshake. */
                assert_true(!rt->agent_handshake == !rt->agent_handshake_ok);
                assert_true(rt->setup && rt->free_state && rt->check && rt->prepare && rt->spawn && rt->connect &&
                            rt->adopt && rt->drain && rt->disconnect && rt->release && rt->shutdown &&
                            rt->agent_connect && rt->probe);
        }
}

/* Every runtime the API accepts (proto/schema.yaml) is a row: never "must be one of". */
static void test_every_accepted_runtime_has_a_row(void **state) {
        static const char *const accepted[] = { PROTO_RUNTIMES };
        _cleanup_(husk_config_freep) husk_config_t *c = NULL;
        _cleanup_free_ char *error = NULL;
        const vmm_runtime_t *rt = NULL;

        assert_int_equal(husk_config_new_default(&c), 0);
        for (size_t k = 0; k < ELEMENTSOF(accepted); k++) {
                int r = lookup(c, accepted[k], &rt, &error);

                assert_true(r != -EINVAL);
                assert_false(error && strstr(error, "must be"));
        }
        assert_string_equal(accepted[0], PROTO_RUNTIME_DEFAULT);
}

/* runtime.list: one row each, what the config asks and what setup found, and why not when it cannot run. */
static void test_runtime_list(void **state) {
        _cleanup_(husk_config_freep) husk_config_t *c = NULL;
        _cleanup_free_ char *double_path = realpath("tests/ch_double/cloud-hypervisor", NULL);
        const msgpack_object *rows;
        msgpack_sbuffer buf;
        msgpack_packer pk;
        msgpack_unpacked u;
        vmm_t d = {};

        assert_non_null(double_path);
        assert_int_equal(husk_config_new_default(&c), 0);
        free(c->qemu.binary_path);
        c->qemu.binary_path = strdup("/nonexistent/qemu-system-x86_64");
        free(c->qemu.firmware_path);
        c->qemu.firmware_path = strdup("/nonexistent/OVMF_CODE.fd");
        c->cloud_hypervisor.enabled = true;
        free(c->cloud_hypervisor.binary_path);
        c->cloud_hypervisor.binary_path = strdup(double_path);
        free(c->cloud_hypervisor.firmware_path);
        c->cloud_hypervisor.firmware_path = strdup("/nonexistent/CLOUDHV.fd");
        assert_int_equal(vmm_runtime_setup_all(&d, c), 0);

        msgpack_sbuffer_init(&buf);
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        vmm_runtime_pack_list(&d, c, &pk);
        msgpack_unpacked_init(&u);
        assert_int_equal(msgpack_unpack_next(&u, buf.data, buf.size, NULL), MSGPACK_UNPACK_SUCCESS);
        rows = &u.data;
        assert_int_equal(rows->type, MSGPACK_OBJECT_ARRAY);
        assert_int_equal(rows->via.array.size, 2);
        for (uint32_t k = 0; k < 2; k++) {
                const msgpack_object *row = &rows->via.array.ptr[k];
                _cleanup_free_ char *name = NULL, *problem = NULL, *binary = NULL, *version = NULL;
                bool enabled = false, firmware_ok = true;

                assert_int_equal(mp_get_str(row, "name", 64, &name), 0);
                assert_int_equal(mp_get_bool(row, "enabled", &enabled), 0);
                assert_true(enabled);
                assert_int_equal(mp_get_bool(row, "firmware_ok", &firmware_ok), 0);
                assert_false(firmware_ok);
                (void)mp_get_str(row, "problem", 512, &problem);
                (void)mp_get_str(row, "binary", 4096, &binary);
                (void)mp_get_str(row, "version", 1024, &version);
                if (streq(name, "qemu")) {
                        assert_null(binary);
                        assert_string_equal(problem, "binary /nonexistent/qemu-system-x86_64 not found");
                } else {
                        assert_string_equal(name, "cloud-hypervisor");
                        assert_string_equal(binary, double_path);
                        assert_non_null(version); /* the double answers --version as CH does */
                        assert_null(problem);
                }
        }
        msgpack_unpacked_destroy(&u);
        msgpack_sbuffer_destroy(&buf);

        /* Not enabled: said so, whatever else is true. */
        c->cloud_hypervisor.enabled = false;
        msgpack_sbuffer_init(&buf);
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        vmm_runtime_pack_list(&d, c, &pk);
        msgpack_unpacked_init(&u);
        assert_int_equal(msgpack_unpack_next(&u, buf.data, buf.size, NULL), MSGPACK_UNPACK_SUCCESS);
        {
                _cleanup_free_ char *problem = NULL;
                assert_int_equal(mp_get_str(&u.data.via.array.ptr[1], "problem", 512, &problem), 0);
                assert_string_equal(problem, "not enabled in the config");
        }
        msgpack_unpacked_destroy(&u);
        msgpack_sbuffer_destroy(&buf);
        vmm_runtime_free_all(&d);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_lookup),
                cmocka_unit_test(test_every_accepted_runtime_has_a_row),
                cmocka_unit_test(test_rows_complete),
                cmocka_unit_test(test_runtime_list),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
