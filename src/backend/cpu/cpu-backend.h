/* SPDX-License-Identifier: Apache-2.0 */
/* The built-in CPU backend: the first implementation of include/exo/backend.h. */
#ifndef EXO_BACKEND_CPU_BACKEND_H
#define EXO_BACKEND_CPU_BACKEND_H

#include "exo/backend.h"

/* A CPU backend computing with params->n_threads threads (<= 0: the physical cores). *ret is
 * owned by the caller and released with (*ret)->iface->free(*ret). */
int exo_cpu_backend_create(const struct exo_backend_params *params, struct exo_backend **ret);

#endif
