/* ===================================================================================== */
/* PUBLIC API: platform (linkage, allocator, errors, RNG, time, files)                    */
/* ===================================================================================== */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifndef DISTILL_API
#ifdef DISTILL_STATIC
#if defined(__GNUC__) || defined(__clang__)
#define DISTILL_API static __attribute__((unused))
#else
#define DISTILL_API static
#endif
#else
#define DISTILL_API extern
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Errors live in the object that failed or in a distill_error the caller passes (may be NULL).
   Functions that can fail return 0 on success and -1 on error, with a message that names the
   file, line and field where there is one, e.g. "data.jsonl:17: field 'messages': expected array". */
typedef struct distill_error {
    char msg[512];
} distill_error;

/* RNG: xoshiro256** seeded through splitmix64. Deterministic on every platform; the state is
   plain data so checkpoints can save and restore it exactly. */
typedef struct distill_rng {
    uint64_t s[4];
} distill_rng;

DISTILL_API void     distill_rng_seed(distill_rng *r, uint64_t seed);
DISTILL_API uint64_t distill_rng_u64(distill_rng *r);
DISTILL_API double   distill_rng_uniform(distill_rng *r);          /* [0, 1), 53 bits */
DISTILL_API double   distill_rng_normal(distill_rng *r);           /* N(0, 1), Box-Muller */
DISTILL_API uint64_t distill_rng_below(distill_rng *r, uint64_t n); /* uniform in [0, n), unbiased */

/* Monotonic wall clock in seconds. */
DISTILL_API double distill_time_seconds(void);

/* Allocation through DISTILL_MALLOC with the given alignment (power of two, <= 4096). The memory
   is zeroed. Free with distill_free_aligned. Returns NULL on overflow or failure. */
DISTILL_API void *distill_alloc_aligned(size_t size, size_t align);
DISTILL_API void  distill_free_aligned(void *p);

/* Read a whole file into memory (NUL-terminated for convenience; *size excludes the NUL).
   Free with distill_free. */
DISTILL_API void *distill_read_file(const char *path, size_t *size, distill_error *err);
DISTILL_API void  distill_free(void *p);

/* Crash-safe writing: data goes to "<path>.tmp.<pid>", is fsync'ed, then renamed over <path>
   (and the directory is fsync'ed), so a reader sees the old file or the new one, never half. */
typedef struct distill_atomic_file {
    FILE *f;
    char *path, *tmp_path;
} distill_atomic_file;

DISTILL_API int  distill_atomic_open(distill_atomic_file *af, const char *path, distill_error *err);
DISTILL_API int  distill_atomic_commit(distill_atomic_file *af, distill_error *err); /* closes */
DISTILL_API void distill_atomic_abort(distill_atomic_file *af);  /* closes, removes the temp */
DISTILL_API int  distill_write_file_atomic(const char *path, const void *data, size_t size,
                                           distill_error *err);
