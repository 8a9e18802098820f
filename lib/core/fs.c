/* fs.c — see fs.h. */
#include "fs.h"

#include "alloc.h"
#include "error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bool nx_is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

bool nx_is_file(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* write(f, user), then fclose(f): true when both succeeded; else *err says why. */
static bool write_close(FILE *f, bool (*write)(FILE *f, void *user), void *user, int *err)
{
    errno = 0;
    bool ok = write(f, user) && !ferror(f);
    *err = errno ? errno : EIO;
    if (fclose(f) != 0 && ok) {
        ok = false;
        *err = errno;
    }
    return ok;
}

/* Writes straight into path (a device, a FIFO): nothing to rename over. */
static ngpt_status write_direct(const char *path, bool (*write)(FILE *f, void *user), void *user)
{
    FILE *f = fopen(path, "wb");
    if (!f) return nx_err(NGPT_ERR_IO, "%s: cannot open for writing: %s", path, strerror(errno));
    int err = 0;
    return write_close(f, write, user, &err) ? NGPT_OK
                                             : nx_err(NGPT_ERR_IO, "%s: write failed: %s", path, strerror(err));
}

ngpt_status nx_write_replace(const char *path, bool (*write)(FILE *f, void *user), void *user)
{
    /* a link is followed: its target is replaced, the link kept */
    char *real = realpath(path, NULL);
    const char *target = real ? real : path;
    struct stat sb;
    if (stat(target, &sb) == 0 && !S_ISREG(sb.st_mode)) {
        ngpt_status s = S_ISDIR(sb.st_mode) ? nx_err(NGPT_ERR_IO, "%s: is a folder, not a file to write", path)
                                            : write_direct(path, write, user);
        free(real);
        return s;
    }
    size_t cap = strlen(target) + 48;
    char *tmp = nx_malloc(cap);
    if (!tmp) {
        free(real);
        return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    }
    static unsigned counter; /* distinct names for the calls of one process; O_EXCL for others */
    int fd = -1, err = 0;
    for (int attempt = 0; fd < 0 && attempt < 100; attempt++) {
        unsigned k = __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
        snprintf(tmp, cap, "%s.tmp-%ld-%u", target, (long)getpid(), k);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        err = errno;
        if (fd < 0 && err != EEXIST) break;
    }
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    if (!f) {
        if (fd >= 0) {
            err = errno;
            close(fd);
            unlink(tmp);
        }
        nx_free(tmp);
        free(real);
        return nx_err(NGPT_ERR_IO, "%s: cannot create: %s", path, strerror(err));
    }
    bool ok = write_close(f, write, user, &err);
    if (ok && rename(tmp, target) != 0) {
        ok = false;
        err = errno;
    }
    if (!ok) unlink(tmp);
    nx_free(tmp);
    free(real);
    return ok ? NGPT_OK : nx_err(NGPT_ERR_IO, "%s: write failed: %s", path, strerror(err));
}
