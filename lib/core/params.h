/* params.h — the versioned params structs of the ABI (struct_size first, fields only appended).
 *
 * Every `ngpt_*_params_default(p, struct_size)` and every function that takes such a struct goes
 * through these two, so that the rules are the same everywhere:
 *  - _default writes the library's defaults into the first min(struct_size, sizeof ours) bytes
 *    and sets struct_size to the caller's value (an older caller's shorter struct is never
 *    written past its end);
 *  - reading takes the defaults, then overlays the caller's first min(struct_size, sizeof ours)
 *    bytes, so fields an older caller does not know keep their defaults. */
#ifndef NX_PARAMS_H
#define NX_PARAMS_H

#include "error.h"

/* `fn` names the public function in messages. */
ngpt_status nx_params_default(void *p, size_t caller_size, const void *defaults, size_t full_size, const char *fn);
/* dst (full_size bytes) = defaults overlaid with the caller's struct; caller may be NULL. */
ngpt_status nx_params_read(void *dst, const void *caller, const void *defaults, size_t full_size, const char *fn);

#endif
