/* fs.h — the file-system questions the loaders ask of a path (a folder or a file), and the one
 * way the library writes a file. */
#ifndef NX_FS_H
#define NX_FS_H

#include "nextgpt.h"

#include <stdbool.h>
#include <stdio.h>

/* True when path exists and is a directory / a regular file (symlinks followed). */
bool nx_is_dir(const char *path);
bool nx_is_file(const char *path);

/* Write path's new contents through `write` (false = a write failed; errno says why) into a new
 * file beside it (same folder: created with O_EXCL, mode 0666 less the umask), renamed over path
 * only when everything was written and closed. On any failure the new file is removed and path
 * is left as it was. A file mapped from path stays readable while it is replaced (converting a
 * checkpoint onto itself), since the old file lives on until unmapped. A symbolic link is
 * followed (its target replaced, the link kept); a device or FIFO (/dev/null, /dev/stdout) is
 * written directly; a folder is an error. Errors name path. */
ngpt_status nx_write_replace(const char *path, bool (*write)(FILE *f, void *user), void *user);

#endif
