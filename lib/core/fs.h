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
 * file beside it (same folder: created with O_EXCL, the replaced file's mode and, where we may,
 * its owner), flushed to disk and renamed over path only when everything was written and
 * closed. On any failure the new file is removed and path is left as it was. A file mapped from
 * path stays readable while it is replaced (converting a checkpoint onto itself), since the old
 * file lives on until unmapped. Symbolic links are followed (the target replaced or, dangling,
 * created; the link kept); a device, FIFO or anything under /dev or /proc (/dev/null,
 * /dev/stdout, /dev/fd/N) is written directly; a folder is an error; an existing file we may not
 * write is refused as fopen would. in_place_ok: where no file can be made beside path (a folder
 * that takes no new files, a name too long for the suffix) or renamed over it (a bind-mounted
 * file), path is written directly instead — not for a writer whose input may be mapped from
 * path. Errors name path. */
ngpt_status nx_write_replace(const char *path, bool in_place_ok, bool (*write)(FILE *f, void *user), void *user);

#endif
