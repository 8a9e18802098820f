/* fs.h — the file-system questions the loaders ask of a path (a folder or a file). */
#ifndef NX_FS_H
#define NX_FS_H

#include <stdbool.h>

/* True when path exists and is a directory / a regular file (symlinks followed). */
bool nx_is_dir(const char *path);
bool nx_is_file(const char *path);

#endif
