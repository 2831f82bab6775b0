/* SPDX-License-Identifier: Apache-2.0 */
/* Monotonic and wall clocks in the units the rest of the code uses. */
#ifndef EXO_CORE_CLOCK_H
#define EXO_CORE_CLOCK_H

#include <stdint.h>

/* Monotonic nanoseconds since an arbitrary start; for durations and timeouts. */
uint64_t exo_clock_ns(void);

/* Wall-clock milliseconds since the Unix epoch; for timestamps shown to people or sent to peers. */
uint64_t exo_clock_wall_ms(void);

#endif
