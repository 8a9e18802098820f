/* bundle.h — what the pipeline and the memory estimate both check of a bundle's bundle.json. */
#ifndef NX_API_BUNDLE_H
#define NX_API_BUNDLE_H

#include "nextgpt.h"

#include <jansson.h>

/* The manifest's version this library reads. */
#define NX_BUNDLE_VERSION 1

/* `format`, when present, must be "nextgpt-bundle", and `version`, when present, an integer
 * 1..NX_BUNDLE_VERSION: a newer layout is NGPT_ERR_UNSUPPORTED, not read as if it were this one.
 * (pipeline.c) */
ngpt_status nx_bundle_check_manifest(const json_t *j, const char *manifest);

#endif
