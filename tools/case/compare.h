/* compare.h — FORMAT.md's comparison of an output file with a case's expected.safetensors:
 * every expected tensor must be present with the same shape; floats pass when
 * |out - exp| <= atol + rtol * |exp| elementwise (NaN fails); integers and booleans must be
 * equal, and an integer expected tensor may not be answered with floats. Extra outputs are
 * ignored. */
#ifndef NGPT_CASE_COMPARE_H
#define NGPT_CASE_COMPARE_H

#include "core/weights.h"

#include <stdio.h>

/* Compare; one line per expected tensor goes to `report` (may be NULL). *passed is set.
 * Returns an error status only when the files cannot be compared at all. */
ngpt_status case_compare(const nx_weights *expected, const nx_weights *output, double atol, double rtol,
                         FILE *report, int *passed);

#endif
