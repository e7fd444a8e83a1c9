/* bench_disk_create.c: vmm_disk_create as a small command for bench_disk.py, built without
 * sanitizers (an ASan binary's start-up alone is seconds on a loaded machine). Prints the method
 * and the call's own time in microseconds. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "services/vmm-driver/vmm_disk.h"

int main(int argc, char **argv) {
        struct timespec a, b;
        char *error = NULL;
        vmm_disk_t disk;

        if (argc != 3) {
                fprintf(stderr, "usage: %s DIR BASE\n", argv[0]);
                return 2;
        }
        clock_gettime(CLOCK_MONOTONIC, &a);
        if (vmm_disk_create(argv[1], argv[2], &disk, &error) < 0) {
                fprintf(stderr, "%s\n", error ? error : "vmm_disk_create failed");
                return 1;
        }
        clock_gettime(CLOCK_MONOTONIC, &b);
        printf("%s %.1f\n", vmm_disk_method_name(disk.method),
               (double)(b.tv_sec - a.tv_sec) * 1e6 + (double)(b.tv_nsec - a.tv_nsec) / 1e3);
        free(error);
        return 0;
}
