/* apiserver_volumes.h: named volumes: a directory each under <state_dir>/volumes/<namespace>/<name>, made on first use and kept until deleted. */
#pragma once

#include "services/apiserver/apiserver_store.h"

/* Where named volumes live: <state_dir>/volumes (at start; /var/lib/husk/volumes until then). */
int apiserver_volumes_set_dir(const char *state_dir);
/* The directory of volume name in namespace_ (both DNS labels, else -EINVAL). */
int apiserver_volume_path(const char *namespace_, const char *name, char **ret);
/* Make the named volumes a deployment's spec uses (after an apply: "created on first use"). */
int apiserver_volumes_ensure(const char *namespace_, const char *spec_text);
