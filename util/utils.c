/* utils.c: checked wrappers, PCG32 RNG and small helpers (see utils.h). */
#define _POSIX_C_SOURCE 200809L
#include "util/utils.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void die(int code, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    /* The process ends here, and the system takes back all of its memory: leave
     * by _exit, after flushing every stream, so that LeakSanitizer (make sanitize)
     * checks the programs' normal exits, where everything must be freed, and not
     * buffers a fatal error left in use. */
    fflush(NULL);
    _exit(code);
}

int errorf(char* err, size_t errlen, const char* fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

void* xmalloc(size_t bytes, const char* what) {
    void* p = malloc(bytes ? bytes : 1);
    if (!p) die(EXIT_IO_FAILURE, "out of memory allocating %zu bytes for %s", bytes, what);
    return p;
}

void* xcalloc(size_t count, size_t size, const char* what) {
    void* p = calloc(count ? count : 1, size ? size : 1);
    if (!p) die(EXIT_IO_FAILURE, "out of memory allocating %zu x %zu bytes for %s", count, size, what);
    return p;
}

FILE* xfopen(const char* path, const char* mode) {
    FILE* f = fopen(path, mode);
    if (!f) die(mode[0] == 'r' ? EXIT_BAD_INPUT : EXIT_IO_FAILURE,
                "cannot open %s for %s: %s", path, mode[0] == 'r' ? "reading" : "writing", strerror(errno));
    return f;
}

void xfread(void* buf, size_t size, size_t count, FILE* f, const char* path) {
    if (fread(buf, size, count, f) != count)
        die(EXIT_BAD_INPUT, "%s: %s while reading %zu bytes", path,
            ferror(f) ? strerror(errno) : "unexpected end of file", size * count);
}

void xfwrite(const void* buf, size_t size, size_t count, FILE* f, const char* path) {
    if (fwrite(buf, size, count, f) != count)
        die(EXIT_IO_FAILURE, "%s: write of %zu bytes failed: %s", path, size * count, strerror(errno));
}

void xfclose_synced(FILE* f, const char* path) {
    /* ferror: an earlier write into the buffer may have failed already */
    if (fflush(f) != 0 || ferror(f)) die(EXIT_IO_FAILURE, "%s: write failed: %s", path, strerror(errno));
    if (fsync(fileno(f)) != 0) die(EXIT_IO_FAILURE, "%s: fsync failed: %s", path, strerror(errno));
    if (fclose(f) != 0) die(EXIT_IO_FAILURE, "%s: close failed: %s", path, strerror(errno));
}

unsigned char* read_file(const char* path, size_t* len) {
    FILE* f = xfopen(path, "rb");
    struct stat st;
    if (fstat(fileno(f), &st) != 0) die(EXIT_BAD_INPUT, "cannot stat %s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) die(EXIT_BAD_INPUT, "%s is a directory, expected a file", path);
    size_t n = (size_t)st.st_size;
    unsigned char* buf = xmalloc(n + 1, path);
    xfread(buf, 1, n, f, path);
    buf[n] = 0;
    fclose(f);
    *len = n;
    return buf;
}

void fsync_parent_dir(const char* path) {
    char dir[4096];
    const char* slash = strrchr(path, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path) + (slash == path), path);
    int fd = open(dir, O_RDONLY);
    if (fd < 0) return;
    fsync(fd);  /* EINVAL on some file systems: nothing more can be done there */
    close(fd);
}

FILE* create_temp_beside(const char* path, char* tmp, size_t cap) {
    long pid = (long)getpid();
    /* a name is taken only by a leftover of a killed process that had this pid, or
     * by another host's process writing into a shared directory: take the next */
    for (int n = 0; n < 1000; n++) {
        int len = n ? snprintf(tmp, cap, "%s.%ld-%d.tmp", path, pid, n) : snprintf(tmp, cap, "%s.%ld.tmp", path, pid);
        if (len < 0 || (size_t)len >= cap) {
            errno = ENAMETOOLONG;
            return NULL;
        }
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0) {
            if (errno == EEXIST) continue;
            return NULL;
        }
        FILE* f = fdopen(fd, "wb");
        if (!f) {
            int saved = errno;
            close(fd);
            unlink(tmp);
            errno = saved;
        }
        return f;
    }
    errno = EEXIST;
    return NULL;
}

int write_file_checked(const char* path, const void* data, size_t len, char* err, size_t errlen) {
    char tmp[4096];
    FILE* f = create_temp_beside(path, tmp, sizeof tmp);
    if (!f) return snprintf(err, errlen, "cannot create a temporary file beside %s: %s", path, strerror(errno)), -1;
    int ok = fwrite(data, 1, len, f) == len;
    ok = ok && fflush(f) == 0;
    ok = ok && fsync(fileno(f)) == 0;
    int saved = errno;
    ok = (fclose(f) == 0) && ok;
    if (ok && rename(tmp, path) == 0) {
        fsync_parent_dir(path);
        return 0;
    }
    if (!ok && saved) errno = saved;
    snprintf(err, errlen, "cannot write %s: %s", ok ? path : tmp, strerror(errno));
    remove(tmp);
    return -1;
}

void write_file_atomic(const char* path, const void* data, size_t len) {
    char err[4096 + 256];
    if (write_file_checked(path, data, len, err, sizeof err) != 0) die(EXIT_IO_FAILURE, "%s", err);
}

int make_dirs_checked(const char* path, char* err, size_t errlen) {
    char p[4096];
    size_t n = strlen(path);
    if (n >= sizeof p) return snprintf(err, errlen, "path too long: %s", path), -1;
    memcpy(p, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != 0) continue;
        char saved = p[i];
        p[i] = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            return snprintf(err, errlen, "cannot create directory %s: %s", p, strerror(errno)), -1;
        p[i] = saved;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return snprintf(err, errlen, "%s exists and is not a directory", path), -1;
    return 0;
}

void make_dirs(const char* path) {
    char err[4096 + 256];
    if (make_dirs_checked(path, err, sizeof err) != 0) die(EXIT_IO_FAILURE, "%s", err);
}

int file_exists(const char* path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int remove_tree(const char* path, char* err, size_t errlen) {
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT) return 0;
        return errorf(err, errlen, "cannot stat %s: %s", path, strerror(errno));
    }
    if (!S_ISDIR(st.st_mode)) {
        if (unlink(path) != 0) return errorf(err, errlen, "cannot remove %s: %s", path, strerror(errno));
        return 0;
    }
    DIR* d = opendir(path);
    if (!d) return errorf(err, errlen, "cannot open directory %s: %s", path, strerror(errno));
    int rc = 0;
    struct dirent* entry;
    while (rc == 0 && (entry = readdir(d)) != NULL) {
        if (!strcmp(entry->d_name, ".") || !strcmp(entry->d_name, "..")) continue;
        char child[4096];
        if ((size_t)snprintf(child, sizeof child, "%s/%s", path, entry->d_name) >= sizeof child)
            rc = errorf(err, errlen, "path too long: %s/%s", path, entry->d_name);
        else rc = remove_tree(child, err, errlen);
    }
    closedir(d);
    if (rc == 0 && rmdir(path) != 0) rc = errorf(err, errlen, "cannot remove directory %s: %s", path, strerror(errno));
    return rc;
}

void xsnprintf(char* out, size_t cap, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap) die(EXIT_BAD_INPUT, "path or text too long (%d bytes, limit %zu): %.80s...", n, cap, out);
}

uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* PCG32 XSH-RR: 64-bit LCG state, 32-bit permuted output.
 * State and increment are both hashed from (seed, stream). Seeding every stream
 * with the same state and increments 1, 3, 5... (PCG's textbook seeding) makes
 * their LCG states an affine family, s_n = A_n + inc * B_n: the streams that
 * draw init, training batches and eval batches would not be independent. */
void rng_seed(Rng* r, uint64_t seed, uint64_t stream) {
    uint64_t key = mix64(seed ^ mix64(stream + 0x9E3779B97F4A7C15ULL));
    r->state = mix64(key);
    r->inc = (mix64(key + 0x9E3779B97F4A7C15ULL) << 1u) | 1u;
    rng_u32(r);
}

uint32_t rng_u32(Rng* r) {
    uint64_t old = r->state;
    r->state = old * 6364136223846793005ULL + r->inc;
    uint32_t xorshifted = (uint32_t)(((old >> 18u) ^ old) >> 27u);
    uint32_t rot = (uint32_t)(old >> 59u);
    return (xorshifted >> rot) | (xorshifted << ((-rot) & 31));
}

uint32_t rng_below(Rng* r, uint32_t bound) {
    /* reject the low values that would make some residues more likely */
    uint32_t threshold = (-bound) % bound;
    for (;;) {
        uint32_t x = rng_u32(r);
        if (x >= threshold) return x % bound;
    }
}

float rng_uniform(Rng* r) { return (rng_u32(r) >> 8) * (1.0f / 16777216.0f); }

float rng_normal(Rng* r) {
    /* Box-Muller; u1 in (0, 1] so the log is finite */
    double u1 = ((rng_u32(r) >> 8) + 1.0) / 16777216.0;
    double u2 = (rng_u32(r) >> 8) / 16777216.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * 3.14159265358979323846 * u2));
}

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

double memory_limit_bytes(const char** what) {
    double limit = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGE_SIZE);
    *what = "physical memory";
    FILE* f = fopen("/sys/fs/cgroup/memory.max", "r");  /* cgroup v2; "max" when unlimited */
    double cgroup;
    if (f) {
        if (fscanf(f, "%lf", &cgroup) == 1 && cgroup > 0 && cgroup < limit) { limit = cgroup; *what = "cgroup memory.max"; }
        fclose(f);
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && (double)rl.rlim_cur < limit) {
        limit = (double)rl.rlim_cur;
        *what = "address-space limit (ulimit -v)";
    }
    return limit;
}

uint64_t fnv1a64_update(uint64_t h, const void* data, size_t len) {
    const unsigned char* p = data;
    for (size_t i = 0; i < len; i++) { h ^= p[i]; h *= 1099511628211ULL; }
    return h;
}

uint64_t fnv1a64(const void* data, size_t len) { return fnv1a64_update(FNV1A64_BASIS, data, len); }
