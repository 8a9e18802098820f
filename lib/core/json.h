/* json.h — JSON through Debian's libjansson (see docs/architecture.md for why jansson),
 * with errors that name the file, line and column, and typed getters for config files. */
#ifndef NX_JSON_H
#define NX_JSON_H

#include "error.h"

#include <jansson.h>
#include <stdbool.h>

/* Parse a file / a buffer. NGPT_ERR_NOT_FOUND or NGPT_ERR_IO when the file can't be read,
 * NGPT_ERR_BAD_FORMAT "<file>:<line>:<col>: <jansson message>" when it isn't JSON.
 * Free with json_decref. `what` names the buffer in messages. */
ngpt_status nx_json_load_file(json_t **out, const char *path);
ngpt_status nx_json_load_buf(json_t **out, const char *buf, size_t len, const char *what);

/* Typed config getters. `file` names the source in messages. A missing key returns `def`
 * (the *_opt forms) or NGPT_ERR_NOT_FOUND (the required forms); a key of the wrong type is
 * NGPT_ERR_BAD_FORMAT ("config.json: 'hidden_size' is a string, expected an integer"). */
ngpt_status nx_json_int(const json_t *obj, const char *key, const char *file, int64_t *out);
ngpt_status nx_json_int_opt(const json_t *obj, const char *key, const char *file, int64_t def, int64_t *out);
ngpt_status nx_json_num(const json_t *obj, const char *key, const char *file, double *out);
ngpt_status nx_json_num_opt(const json_t *obj, const char *key, const char *file, double def, double *out);
ngpt_status nx_json_bool_opt(const json_t *obj, const char *key, const char *file, bool def, bool *out);
/* Borrowed string (valid while obj lives); *_opt gives def when absent. */
ngpt_status nx_json_str(const json_t *obj, const char *key, const char *file, const char **out);
ngpt_status nx_json_str_opt(const json_t *obj, const char *key, const char *file, const char *def, const char **out);
/* An integer array of up to cap entries; *n receives the count (error if more than cap). */
ngpt_status nx_json_int_array(const json_t *obj, const char *key, const char *file, int64_t *vals,
                              size_t cap, size_t *n);

#endif
