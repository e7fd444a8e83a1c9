/* apiserver_node.h: what GET /node needs from the config, copied at start (workers never read the config). */
#pragma once

#include "lib/config.h"

/* Copies the state dir and every daemon's request endpoint; 0 or -ENOMEM. */
int apiserver_node_init(const husk_config_t *config);
void apiserver_node_done(void);
