/* vmm_record.c: instance.json on disk, the one file from which a restarted vmm-driver re-adopts an
 * instance (its codec, shared with the daemons that read it, is proto/instance_record.c). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "lib/log.h"
#include "services/vmm-driver/vmm.h"

int vmm_record_save(const char *dir, const instance_record_t *r) {
        _cleanup_free_ char *text = NULL;
        char path[PATH_MAX];
        int q;

        if (snprintf(path, sizeof(path), "%s/" INSTANCE_RECORD_FILE, dir) >= (int)sizeof(path))
                return -ENAMETOOLONG;
        q = instance_record_to_json(r, &text);
        if (q < 0)
                return q;
        return write_file_atomic(path, text, strlen(text), 0600);
}

int vmm_record_load(const char *dir, instance_record_t *r) {
        _cleanup_free_ char *text = NULL;
        char path[PATH_MAX];
        int q;

        if (snprintf(path, sizeof(path), "%s/" INSTANCE_RECORD_FILE, dir) >= (int)sizeof(path))
                return -ENAMETOOLONG;
        q = read_file(path, INSTANCE_RECORD_MAX, &text, NULL);
        if (q < 0)
                return q;
        return instance_record_from_json(text, INSTANCE_RECORD_FULL, r);
}
