/*
 * synced_lengths: an LD_PRELOAD shim for tests/crash.rs. Our own code.
 *
 * It records what a power loss would keep. After every successful fsync or
 * fdatasync of a file under $SYNCED_LENGTHS_UNDER it appends one line,
 * "<path>\t<size>\n", to $SYNCED_LENGTHS_LOG: the file's path and the size it
 * had when the sync was called. Bytes written before the call are on disk
 * once it returns; bytes appended while it runs may not be, so the size is
 * taken before the call, never after. The test then truncates every file to
 * its last recorded size (a file never synced to 0): an append-only log as a
 * power loss would leave it.
 *
 * sync_file_range is deliberately not intercepted: it starts writeback and
 * promises nothing (no metadata, no disk cache flush), so it must never count
 * as durable. Nor does anything else: only fsync and fdatasync record.
 *
 * Without both variables set the shim passes every call through untouched.
 *
 *   cc -shared -fPIC -O2 -o synced_lengths.so synced_lengths.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The prefix whose files are recorded, and the side file (-1: recording off). */
static const char *under;
static size_t under_len;
static int side = -1;

/* The real functions the names would resolve to without the shim. */
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);

static void *real(const char *name)
{
    void *f = dlsym(RTLD_NEXT, name);
    if (f == NULL)
        abort();
    return f;
}

/* Runs at load, before the program starts threads (or might setenv). */
__attribute__((constructor)) static void synced_lengths_init(void)
{
    real_fsync = (int (*)(int))real("fsync");
    real_fdatasync = (int (*)(int))real("fdatasync");
    const char *prefix = getenv("SYNCED_LENGTHS_UNDER");
    const char *log = getenv("SYNCED_LENGTHS_LOG");
    if (prefix == NULL || log == NULL || prefix[0] != '/')
        return;
    under = prefix;
    under_len = strlen(prefix);
    /* O_APPEND: each line lands whole at the end, whichever thread writes it.
     * O_CLOEXEC: no child inherits the descriptor. */
    side = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

/* What one sync is about to make durable: the file's path and size now. */
struct pending {
    char path[4096];
    long long size;
    int wanted;
};

static void before_sync(int fd, struct pending *p)
{
    char link[64];
    struct stat st;
    ssize_t n;

    p->wanted = 0;
    if (side < 0)
        return;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    n = readlink(link, p->path, sizeof p->path - 1);
    if (n <= 0)
        return;
    p->path[n] = '\0';
    /* Only the prefix itself or what is below it ("/a/b" is not under "/a/bc"). */
    if (strncmp(p->path, under, under_len) != 0 ||
        (p->path[under_len] != '/' && p->path[under_len] != '\0'))
        return;
    if (fstat(fd, &st) != 0)
        return;
    p->size = (long long)st.st_size;
    p->wanted = 1;
}

/* Records the sync once it has succeeded; errno is left as the sync set it. */
static void after_sync(int result, const struct pending *p)
{
    char line[4200];
    int len;
    int saved = errno;

    if (result == 0 && p->wanted) {
        len = snprintf(line, sizeof line, "%s\t%lld\n", p->path, p->size);
        /* One write() per line, so lines from several threads never interleave. */
        if (len > 0 && (size_t)len < sizeof line && write(side, line, (size_t)len) < 0) {
            /* Nothing to do: a lost record only makes the test stricter. */
        }
    }
    errno = saved;
}

int fsync(int fd)
{
    struct pending p;
    int result;

    before_sync(fd, &p);
    result = real_fsync(fd);
    after_sync(result, &p);
    return result;
}

int fdatasync(int fd)
{
    struct pending p;
    int result;

    before_sync(fd, &p);
    result = real_fdatasync(fd);
    after_sync(result, &p);
    return result;
}
