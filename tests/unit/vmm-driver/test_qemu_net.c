/* test_qemu_net.c: the instance's network on the qemu command line: virtio-net on netd's TAP and the agent's boot parameters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "services/vmm-driver/vmm_qemu.h"

static const vmm_net_t net = {
        .attached = true,
        .tap = "hk0a1b2c3d4e5f",
        .mac = "02:53:f7:65:84:75",
        .host_ip = "10.42.17.213",
        .guest_ip = "10.42.17.214",
        .prefix = 30,
};

static vmm_qemu_params_t params(const vmm_net_t *n) {
        return (vmm_qemu_params_t){ .binary = "/usr/bin/qemu-system-x86_64",
                                    .accel = "tcg",
                                    .kernel = "/kit/vmlinux",
                                    .initrd = "/kit/initrd.gz",
                                    .instance_id = "0a1b2c3d4e5f",
                                    .cpus = 1,
                                    .memory_mib = 256,
                                    .net = n };
}

static const char *after(char **v, const char *opt) {
        for (size_t k = 0; v[k]; k++)
                if (streq(v[k], opt))
                        return v[k + 1];
        return NULL;
}

static void test_with_net(void **state) {
        vmm_qemu_params_t p = params(&net);
        char **v = NULL;

        assert_int_equal(vmm_qemu_argv(&p, &v), 0);
        assert_string_equal(after(v, "-netdev"), "tap,id=n0,ifname=hk0a1b2c3d4e5f,script=no,downscript=no");
        assert_string_equal(after(v, "-device") ? "ok" : "", "ok");
        bool found = false;
        for (size_t k = 0; v[k]; k++)
                found |= streq(v[k], "virtio-net-device,netdev=n0,mac=02:53:f7:65:84:75");
        assert_true(found);
        assert_non_null(strstr(after(v, "-append"), " husk.ip=10.42.17.214/30 husk.gw=10.42.17.213"));
        vmm_strv_free(v);
}

static void test_without_net(void **state) {
        vmm_qemu_params_t p = params(NULL);
        char **v = NULL;

        assert_int_equal(vmm_qemu_argv(&p, &v), 0);
        assert_null(after(v, "-netdev"));
        assert_null(strstr(after(v, "-append"), "husk.ip"));
        vmm_strv_free(v);
}

/* husk-oci on a network namespace without a default route: the address, no gateway. */
static void test_net_without_gateway(void **state) {
        vmm_net_t no_gw = net;
        vmm_qemu_params_t p;
        char **v = NULL;

        no_gw.host_ip[0] = '\0';
        p = params(&no_gw);
        assert_int_equal(vmm_qemu_argv(&p, &v), 0);
        assert_non_null(strstr(after(v, "-append"), " husk.ip=10.42.17.214/30"));
        assert_null(strstr(after(v, "-append"), "husk.gw"));
        vmm_strv_free(v);
}

static void test_incomplete_net_refused(void **state) {
        vmm_net_t broken = net;
        vmm_qemu_params_t p;
        char **v = NULL;

        broken.tap[0] = '\0';
        p = params(&broken);
        assert_int_equal(vmm_qemu_argv(&p, &v), -EINVAL);
        assert_null(v);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_with_net),
                cmocka_unit_test(test_without_net),
                cmocka_unit_test(test_net_without_gateway),
                cmocka_unit_test(test_incomplete_net_refused),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
