/* ===================================================================================== */
/* PLATFORM                                                                               */
/* ===================================================================================== */
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <math.h>
#include <errno.h>
#include <limits.h>
#include <float.h>
#include <time.h>
#if !defined(_WIN32)
#include <unistd.h>
#include <fcntl.h>
#endif

#if defined(DISTILL_MALLOC) && defined(DISTILL_FREE) && defined(DISTILL_REALLOC)
/* ok: the user supplied all three */
#elif !defined(DISTILL_MALLOC) && !defined(DISTILL_FREE) && !defined(DISTILL_REALLOC)
#define DISTILL_MALLOC(sz) malloc(sz)
#define DISTILL_REALLOC(p, sz) realloc(p, sz)
#define DISTILL_FREE(p) free(p)
#else
#error "distill.h: define all of DISTILL_MALLOC, DISTILL_REALLOC and DISTILL_FREE, or none"
#endif

#ifndef DISTILL_ASSERT
#include <assert.h>
#define DISTILL_ASSERT(x) assert(x)
#endif

#if defined(__GNUC__) || defined(__clang__)
#define DISTILL__PRINTF(a, b) __attribute__((format(printf, a, b)))
#define DISTILL__UNUSED __attribute__((unused))
#else
#define DISTILL__PRINTF(a, b)
#define DISTILL__UNUSED
#endif

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* Format an error message into err (if non-NULL). Always returns -1 so callers can write
   `return distill__err(err, "...", ...);`. */
static int distill__err(distill_error *err, const char *fmt, ...) DISTILL__PRINTF(2, 3);
static int distill__err(distill_error *err, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Overflow-checked size arithmetic: return 0 and leave *out alone on overflow. */
DISTILL__UNUSED static int distill__mul_size(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}
DISTILL__UNUSED static int distill__add_size(size_t a, size_t b, size_t *out) {
    if (b > SIZE_MAX - a) return 0;
    *out = a + b;
    return 1;
}

DISTILL__UNUSED static char *distill__strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = (char *)DISTILL_MALLOC(n);
    if (p) memcpy(p, s, n);
    return p;
}

DISTILL_API void distill_free(void *p) { DISTILL_FREE(p); }

/* ---- RNG: splitmix64 to seed, xoshiro256** to draw ---------------------------------- */
static uint64_t distill__splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

DISTILL_API void distill_rng_seed(distill_rng *r, uint64_t seed) {
    int i;
    for (i = 0; i < 4; i++) r->s[i] = distill__splitmix64(&seed);
}

static uint64_t distill__rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

DISTILL_API uint64_t distill_rng_u64(distill_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = distill__rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = distill__rotl(s[3], 45);
    return result;
}

DISTILL_API double distill_rng_uniform(distill_rng *r) {
    return (double)(distill_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

DISTILL_API double distill_rng_normal(distill_rng *r) {
    /* Box-Muller; u1 in (0, 1] so log() is finite */
    double u1 = 1.0 - distill_rng_uniform(r), u2 = distill_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

DISTILL_API uint64_t distill_rng_below(distill_rng *r, uint64_t n) {
    /* rejection sampling removes the modulo bias */
    uint64_t lim, x;
    if (n == 0) return 0;
    lim = UINT64_MAX - UINT64_MAX % n;
    do x = distill_rng_u64(r); while (x >= lim);
    return x % n;
}

/* ---- time ----------------------------------------------------------------------------- */
DISTILL_API double distill_time_seconds(void) {
#if defined(CLOCK_MONOTONIC)
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
#else
    return (double)clock() / CLOCKS_PER_SEC;
#endif
}

/* ---- aligned allocation on top of DISTILL_MALLOC --------------------------------------- */
/* Layout: [padding][original pointer][aligned block...]; the original pointer sits just before
   the aligned address so free can find it whatever allocator the user plugged in. */
DISTILL_API void *distill_alloc_aligned(size_t size, size_t align) {
    size_t total;
    unsigned char *raw;
    uintptr_t a;
    if (align < sizeof(void *)) align = sizeof(void *);
    if ((align & (align - 1)) != 0 || align > 4096) return NULL;
    if (!distill__add_size(size, align + sizeof(void *), &total)) return NULL;
    raw = (unsigned char *)DISTILL_MALLOC(total);
    if (!raw) return NULL;
    a = ((uintptr_t)(raw + sizeof(void *)) + (align - 1)) & ~(uintptr_t)(align - 1);
    memcpy((unsigned char *)a - sizeof(void *), &raw, sizeof(void *));
    memset((void *)a, 0, size);
    return (void *)a;
}

DISTILL_API void distill_free_aligned(void *p) {
    void *raw;
    if (!p) return;
    memcpy(&raw, (unsigned char *)p - sizeof(void *), sizeof(void *));
    DISTILL_FREE(raw);
}

/* ---- files -------------------------------------------------------------------------------- */
DISTILL_API void *distill_read_file(const char *path, size_t *size, distill_error *err) {
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t cap = 0, len = 0;
    if (size) *size = 0;
    if (!f) {
        distill__err(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    /* grow geometrically rather than trusting fseek/ftell: works on pipes and /dev/stdin too */
    for (;;) {
        size_t n;
        if (cap - len < 65536) {
            size_t ncap = cap ? cap * 2 : 65536 + 1;
            char *nb;
            if (ncap < cap) { distill__err(err, "%s: file too large", path); goto fail; }
            nb = (char *)DISTILL_REALLOC(buf, ncap);
            if (!nb) { distill__err(err, "%s: out of memory reading %zu bytes", path, ncap); goto fail; }
            buf = nb;
            cap = ncap;
        }
        n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0) break;
    }
    if (ferror(f)) { distill__err(err, "%s: read error: %s", path, strerror(errno)); goto fail; }
    fclose(f);
    buf[len] = 0;
    if (size) *size = len;
    return buf;
fail:
    fclose(f);
    DISTILL_FREE(buf);
    return NULL;
}

DISTILL_API int distill_atomic_open(distill_atomic_file *af, const char *path, distill_error *err) {
    size_t n = strlen(path);
    memset(af, 0, sizeof *af);
    af->path = distill__strdup(path);
    af->tmp_path = (char *)DISTILL_MALLOC(n + 32);
    if (!af->path || !af->tmp_path) {
        DISTILL_FREE(af->path);
        DISTILL_FREE(af->tmp_path);
        af->path = af->tmp_path = NULL;
        return distill__err(err, "%s: out of memory", path);
    }
#if !defined(_WIN32)
    snprintf(af->tmp_path, n + 32, "%s.tmp.%ld", path, (long)getpid());
#else
    snprintf(af->tmp_path, n + 32, "%s.tmp", path);
#endif
    af->f = fopen(af->tmp_path, "wb");
    if (!af->f) {
        distill__err(err, "%s: cannot create temporary file %s: %s", path, af->tmp_path, strerror(errno));
        DISTILL_FREE(af->path);
        DISTILL_FREE(af->tmp_path);
        af->path = af->tmp_path = NULL;
        return -1;
    }
    return 0;
}

static void distill__atomic_release(distill_atomic_file *af) {
    DISTILL_FREE(af->path);
    DISTILL_FREE(af->tmp_path);
    af->path = af->tmp_path = NULL;
    af->f = NULL;
}

DISTILL_API void distill_atomic_abort(distill_atomic_file *af) {
    if (af->f) fclose(af->f);
    if (af->tmp_path) remove(af->tmp_path);
    distill__atomic_release(af);
}

DISTILL_API int distill_atomic_commit(distill_atomic_file *af, distill_error *err) {
    int bad = 0;
    if (!af->f) return distill__err(err, "distill_atomic_commit: file is not open");
    if (fflush(af->f) != 0 || ferror(af->f)) bad = 1;
#if !defined(_WIN32)
    if (!bad && fsync(fileno(af->f)) != 0) bad = 1;
#endif
    if (fclose(af->f) != 0) bad = 1;
    af->f = NULL;
    if (bad) {
        distill__err(err, "%s: write failed: %s", af->path, strerror(errno));
        distill_atomic_abort(af);
        return -1;
    }
    if (rename(af->tmp_path, af->path) != 0) {
        distill__err(err, "%s: cannot rename %s into place: %s", af->path, af->tmp_path, strerror(errno));
        distill_atomic_abort(af);
        return -1;
    }
#if !defined(_WIN32)
    { /* fsync the directory so the rename itself survives a power cut */
        char *dir = distill__strdup(af->path), *slash;
        if (dir) {
            int fd;
            slash = strrchr(dir, '/');
            if (slash == dir) slash[1] = 0;
            else if (slash) *slash = 0;
            else { dir[0] = '.'; dir[1] = 0; }
            fd = open(dir, O_RDONLY);
            if (fd >= 0) { fsync(fd); close(fd); }
            DISTILL_FREE(dir);
        }
    }
#endif
    distill__atomic_release(af);
    return 0;
}

DISTILL_API int distill_write_file_atomic(const char *path, const void *data, size_t size,
                                          distill_error *err) {
    distill_atomic_file af;
    if (distill_atomic_open(&af, path, err) != 0) return -1;
    if (size && fwrite(data, 1, size, af.f) != size) {
        distill__err(err, "%s: write failed: %s", path, strerror(errno));
        distill_atomic_abort(&af);
        return -1;
    }
    return distill_atomic_commit(&af, err);
}
