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

/* write(f, user), then (sync: fsync) fclose(f): true when all succeeded; else *err says why. */
static bool write_close(FILE *f, bool (*write)(FILE *f, void *user), void *user, bool sync, int *err)
{
    errno = 0;
    bool ok = write(f, user) && fflush(f) == 0 && !ferror(f);
    /* before the rename: after a crash the name holds the old file or the whole new one */
    if (ok && sync && fsync(fileno(f)) != 0) ok = false;
    *err = errno ? errno : EIO;
    if (fclose(f) != 0 && ok) {
        ok = false;
        *err = errno;
    }
    return ok;
}

/* Writes straight into path (a device, a FIFO, a file whose folder takes no new files). */
static ngpt_status write_direct(const char *path, bool (*write)(FILE *f, void *user), void *user)
{
    FILE *f = fopen(path, "wb");
    if (!f) return nx_err(NGPT_ERR_IO, "%s: cannot open for writing: %s", path, strerror(errno));
    int err = 0;
    return write_close(f, write, user, false, &err) ? NGPT_OK
                                                    : nx_err(NGPT_ERR_IO, "%s: write failed: %s", path, strerror(err));
}

static bool is_special(const char *p)
{
    return !strncmp(p, "/dev/", 5) || !strncmp(p, "/proc/", 6);
}

/* path with its symbolic links followed one by one, a dangling one too (its target is where the
 * file is made), as fopen would. *special: a hop is under /dev or /proc, where a name may stand
 * for an open file (/dev/stdout -> /proc/self/fd/1 -> the file stdout was redirected to):
 * replacing what realpath finds there would cut that file away from its writer. NULL: out of
 * memory. */
static char *follow_links(const char *path, bool *special)
{
    char *cur = strdup(path);
    *special = false;
    for (int hop = 0; cur && hop < 40; hop++) {
        if (is_special(cur)) {
            *special = true;
            break;
        }
        struct stat lsb;
        char link[4096];
        ssize_t n;
        if (lstat(cur, &lsb) != 0 || !S_ISLNK(lsb.st_mode) || (n = readlink(cur, link, sizeof link - 1)) <= 0)
            break;
        link[n] = '\0';
        const char *slash = strrchr(cur, '/');
        size_t dir = link[0] == '/' || !slash ? 0 : (size_t)(slash - cur) + 1; /* relative: from the link's folder */
        char *next = malloc(dir + (size_t)n + 1);
        if (next) {
            memcpy(next, cur, dir);
            memcpy(next + dir, link, (size_t)n + 1);
        }
        free(cur);
        cur = next;
    }
    return cur;
}

ngpt_status nx_write_replace(const char *path, bool in_place_ok, bool (*write)(FILE *f, void *user), void *user)
{
    bool special;
    char *target = follow_links(path, &special);
    if (!target) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    struct stat sb;
    const bool exists = stat(target, &sb) == 0;
    if (special || (exists && !S_ISREG(sb.st_mode))) {
        ngpt_status s = exists && S_ISDIR(sb.st_mode) ? nx_err(NGPT_ERR_IO, "%s: is a folder, not a file to write", path)
                                                      : write_direct(path, write, user);
        free(target);
        return s;
    }
    if (exists && access(target, W_OK) != 0) { /* fopen's answer: the folder's permission is not the file's */
        ngpt_status s = nx_err(NGPT_ERR_IO, "%s: cannot open for writing: %s", path, strerror(errno));
        free(target);
        return s;
    }
    size_t cap = strlen(target) + 48;
    char *tmp = nx_malloc(cap);
    if (!tmp) {
        free(target);
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
    if (fd >= 0 && exists) {
        /* the replaced file's mode and owner (a private checkpoint stays private); the owner only
         * where we may give it (root), else the writer's, as a new file's */
        if (fchmod(fd, sb.st_mode & 07777) != 0) { /* a file system without modes: as created */ }
        if (fchown(fd, sb.st_uid, sb.st_gid) != 0) { /* not ours to give */ }
    }
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    const bool created = f != NULL;
    bool ok = false, fallback = false;
    if (!f) {
        if (fd >= 0) {
            err = errno;
            close(fd);
            unlink(tmp);
        }
        /* no new file beside it (a folder that takes none, a name too long for the suffix) */
        fallback = err == EACCES || err == EPERM || err == EROFS || err == ENAMETOOLONG;
    } else {
        ok = write_close(f, write, user, true, &err);
        if (ok && rename(tmp, target) != 0) {
            ok = false;
            err = errno;
            fallback = err == EBUSY || err == EXDEV; /* a bind-mounted file: its name cannot be replaced */
        }
        if (!ok) unlink(tmp);
    }
    nx_free(tmp);
    free(target);
    if (ok) return NGPT_OK;
    if (fallback && in_place_ok) return write_direct(path, write, user);
    return nx_err(NGPT_ERR_IO, "%s: %s: %s", path, created ? "write failed" : "cannot create", strerror(err));
}
