/* distill.h - knowledge distillation for small language models, on the CPU, in one header.
   No dependencies beyond libc, libm and pthreads. MIT or public domain: see the end of the file.

   WHAT IT IS
       A whole training stack for distilling a teacher's reasoning into a small student: a
       byte-level BPE tokenizer, a JSON/JSONL loader for real distillation datasets with chat
       templates and loss masks, a Llama/Qwen2/Qwen3-style transformer with a hand-written backward
       pass, AdamW, logit distillation (KL/JSD, top-k teacher caches), checkpoints that resume
       bit-exactly, safetensors and llama2.c interop (export writes a complete Hugging Face
       folder: weights, tokenizer.json, the chat template as Jinja), KV-cached generation, and
       the evaluation metrics of reasoning distillation (pass@k, completion rate, think-tag
       rates). It is built to run the experiment design of "The Valley of Code Reasoning" (arXiv
       2510.06101) on a laptop, and to be read: every op's gradient formula sits above the code
       computing it.

   QUICK START
       Do this:
           #define DISTILL_IMPLEMENTATION
           #include "distill.h"
       in exactly ONE .c or .cpp file, never in a header. Every other file that uses the library
       includes "distill.h" without the define. Include it first in that file (it defines
       _POSIX_C_SOURCE for clock_gettime, fsync and pthreads), or compile with
       -D_POSIX_C_SOURCE=200809L.

           cc -O2 my_trainer.c -lm -lpthread                  portable, fast: SIMD picked at run time
           cc -O2 -DDISTILL_OPENBLAS my_trainer.c -lopenblas -lm -lpthread

       No -march flag is needed: the kernels choose AVX-512, AVX2+FMA, NEON or scalar code once
       at run time, so the same binary runs on any x86-64. Never required: -Ofast.

       Fine-tuning a student on teacher traces (the paper's method), in full. Each object is
       made from the ones before it and freed in reverse order (a loader borrows its dataset, a
       trainer its model and batch source):

           distill_error err;
           distill_tokenizer *tok = distill_tokenizer_load("tokenizer.json", NULL, &err);
           distill_dataset *ds = distill_dataset_load("traces.jsonl", NULL, tok, &err);
           distill_loader_options lo = distill_loader_options_default();
           distill_loader *loader = distill_loader_create(ds, &lo, &err);
           distill_loader_source src;
           distill_config mc = distill_config_default();
           distill_train_config tc = distill_train_default();
           distill_model *student;
           distill_trainer *tr;
           distill_loader_source_init(&src, loader, ds);
           mc.vocab_size = distill_tokenizer_vocab_size(tok);
           student = distill_model_create(&mc, lo.batch_rows, 1024, 42, &err);
           tc.out_dir = "out";                       checkpoints + metrics.jsonl
           tr = distill_trainer_create(student, &src.src, NULL, &tc, &err);
           if (!tr || distill_trainer_run(tr, &err) != 0) fprintf(stderr, "%s\n", err.msg);
           distill_trainer_free(tr);
           distill_model_free(student);
           distill_loader_free(loader);
           distill_dataset_free(ds);
           distill_tokenizer_free(tok);

       (every call can fail: check each NULL / -1 and print err.msg, as examples/sft.c does).
       The API sections below explain each call in this order: 4 the tokenizer, 5 the dataset
       and its loader, 6 the model, 7 the trainer.

       On several processes (built with -DDISTILL_MPI, e.g. mpicc, started by mpirun -np P):
           distill_comm comm;
           distill_mpi_init(&argc, &argv, &comm, &err);      before anything else
           ... the same as above, every rank with the same data, seed and model ...
           distill_trainer_set_comm(tr, &comm, &err);         right after distill_trainer_create
           distill_trainer_run(tr, &err);                     each rank: B/P rows of every batch
           distill_mpi_finalize();
       Rank 0 writes the checkpoints and logs; docs/cluster.md has mpirun and Slurm recipes.
       examples/ has one short program per idea; examples/distill.c is the `distill` tool.

   CONFIGURATION MACROS (define before the #include)
       DISTILL_IMPLEMENTATION  emit the implementation in this translation unit
       DISTILL_STATIC          every function static: a private copy per translation unit
       DISTILL_API             override the linkage of the public functions
       DISTILL_MALLOC(sz), DISTILL_REALLOC(p,sz), DISTILL_FREE(p)
                               replace the allocator: define all three or none
       DISTILL_ASSERT(x)       replace assert()
       DISTILL_OPENBLAS        the large matrix products through cblas_sgemm (-lopenblas);
                               OpenBLAS then runs single-threaded inside our workers
       DISTILL_NO_THREADS      no pthreads: everything runs on the calling thread
       DISTILL_MPI             data-parallel training and distributed sweeps over MPI
                               (mpicc, or -lmpi); see distill_comm below
       DISTILL_HEAD_CHUNK      positions per LM-head chunk (memory vs speed of the fused loss)
       DISTILL_HEADER_NAME     this file's name if it was renamed (default "distill.h"): the
                               implementation includes the header again once per SIMD kernel set
       DISTILL_TEST_FAULTS     tests only: every file write asks distill_test_fault() (which the
                               program defines) whether to fail (tests/test_faults.c)
   ENVIRONMENT
       DISTILL_THREADS=n       worker threads (default: one per core)
       DISTILL_SIMD=scalar|avx2|avx512|neon   force a kernel set (tests, benchmarks)
       DISTILL_BF16=portable   BF16 models: the portable path even where vdpbf16ps exists
       DISTILL_BF16_ATTENTION=0   BF16 models: the attention's block products in FP32

   CONVENTIONS
       Errors: functions that can fail return 0 / a pointer on success and -1 / NULL on error,
       filling the caller's distill_error (may be NULL) with a message naming the file, line and
       field ("data.jsonl:17:5: field 'messages': expected array"). There is no global error
       state. The only mutable global is the thread pool; call the library from one user thread
       at a time, or give each thread its own objects (tokenizer encoding is thread-safe).
       Files the library writes are written to a temporary file, fsync'ed and renamed; a
       failed write, fsync or rename leaves the previous file as it was and names the file and
       the error. The two logs (metrics.jsonl, an evaluation's generations.jsonl.partial) are
       appended and flushed a whole line (a whole problem) at a time instead. The library installs
       no signal handler: a caller that wants Ctrl-C to save and stop sets a flag from its own
       handler (distill_train_config.stop_flag, distill_eval_model_options.stop_flag).
       Sizes are size_t, file offsets int64_t, token ids int32_t; losses accumulate in double.
       Results are bit-identical for 1 and N threads.

   SHAPE LETTERS (used in every comment)
       B batch, T time (sequence), C channels (dim), V vocabulary, NH query heads,
       NKV key/value heads, HS head size (C/NH), F feed-forward width, L layers.

   TABLE OF CONTENTS
       The public API and the implementation have the same sections in the same order, the
       order data flows through a run, so each section only uses what comes before it. The API
       headings read "API n. NAME", the implementation's "NAME"; read either top to bottom.
       0. Types and errors     linkage, distill_error, distill_batch (the API only)
       1. Platform             RNG (xoshiro256**), clock, aligned memory, whole files,
                               crash-safe writes, folder locks
       2. Threads and kernels  thread pool, SIMD kernel sets, op profile, packed matmul,
                               vector primitives, flash attention, OpenBLAS
       3. JSON                 strict RFC 8259 parser, JSONL line reader
       4. Tokenizer            byte-level BPE: loading, encoding, decoding, training, file formats
       5. Data                 conversations, schema adapters, filters, chat template, loss
                               weights, datasets, seeded subsets, the loader (batches, packing)
       6. Model                config, size table; Level 1 (one call per step), Level 2
                               (forward, backward, forward_backward, AdamW), Level 3 (every op,
                               forward next to backward); fused LM head + cross-entropy, the
                               activation-memory formula
       7. Trainer              checksums, logit distillation, top-k teacher cache, model files
                               (checkpoints, safetensors, llama2.c), the training loop,
                               communicators (one process, MPI) and data parallelism
       8. Generation and evaluation
                               evaluation metrics, pass@k, scoring generations files, KV
                               cache, sampling, generation, evaluating a model
       9. Reports              results tables, SVG plots
      10. License              (the end of the file)
*/
#if defined(DISTILL_IMPLEMENTATION) && !defined(_POSIX_C_SOURCE) && !defined(_WIN32)
#define _POSIX_C_SOURCE 200809L
#endif

#ifndef DISTILL_H
#define DISTILL_H

/* The header's version (major.minor.patch); `distill --version` prints it. */
#define DISTILL_VERSION "0.1.0"

/* ===================================================================================== */
/* API 0. TYPES AND ERRORS: linkage, distill_error, distill_batch                        */
/* ===================================================================================== */
/* What every section shares. DISTILL_API is the linkage of every public function (extern, or
   static under DISTILL_STATIC). distill_error is the last argument of everything that can fail;
   distill_batch is what the data section's loader produces and the model and the trainer
   consume, so it comes before all three. A batch by hand (one row of 4 tokens, each position
   trained to predict the next; the last has no target):

       int32_t tokens[4] = {1, 2, 3, 4}, targets[4] = {2, 3, 4, -1};
       distill_batch b = {1, 4, tokens, targets, NULL, NULL, NULL, NULL};          B 1, T 4
       distill_error err;
       if (distill_train_step(m, &b, &oc, 0, NULL, NULL, &err) != 0)
           fprintf(stderr, "%s\n", err.msg);                                                    */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <signal.h>     /* sig_atomic_t: the stop flags a caller's signal handler sets */
#ifdef DISTILL_MPI
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1      /* the C API only, also when compiled as C++ */
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>
#endif

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

/* A batch. tokens and targets are (B,T) row-major; a target < 0 is not supervised. weights
   (B,T) is the per-token loss weight (NULL: 1 where target >= 0). lengths (B) is the number of
   valid positions per row (NULL: all T); positions past it are ignored entirely. For packing,
   segments (B,T) gives a segment id per position (NULL: one segment per row): attention never
   crosses a segment boundary, and positions (B,T) (NULL: 0..T-1) feed RoPE. */
typedef struct distill_batch {
    int B, T;
    const int32_t *tokens;
    const int32_t *targets;
    const float *weights;
    const int *lengths;
    const int32_t *segments;
    const int32_t *positions;
} distill_batch;
/* ===================================================================================== */
/* API 1. PLATFORM: RNG, clock, aligned memory, whole files, crash-safe writes, locks    */
/* ===================================================================================== */
/* What the other sections stand on, and what a program around the library needs for its own
   files: a seeded RNG whose state is plain data (checkpoints save it), a monotonic clock,
   aligned memory, whole-file reads, writes that a crash cannot leave half done, and a lock so
   two processes never write into one folder.

       distill_atomic_file af;
       if (distill_atomic_open(&af, "out/results.csv", &err) != 0) return -1;
       fprintf(af.f, "run,loss\n");
       if (distill_atomic_commit(&af, &err) != 0) return -1;   (distill_atomic_abort: drop it) */

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

/* One writer per folder: an exclusive lock on DIR/distill.lock, taken with flock() so the
   operating system drops it when the process dies (kill -9 leaves no stale lock). The file holds
   the holder's pid, so a refused caller is told who holds it:
       "out: in use by another process (pid 1234, lock out/distill.lock)"
   Returns a handle >= 0, or -1 (with that message) when the folder is taken or the lock file
   cannot be made. The trainer locks its out_dir itself (distill_train_config.no_lock); a program
   that writes other files into a folder (an evaluation's --out, one sweep run's folder) holds
   this lock around that work, and then sets no_lock on trainers writing into the same folder.
   The lock belongs to the open file, so a second lock of one folder in the same process is
   refused too; it is not inherited by exec'd programs. */
DISTILL_API int  distill_dir_lock(const char *dir, distill_error *err);
DISTILL_API void distill_dir_unlock(int lock);   /* lock < 0: nothing */
/* ===================================================================================== */
/* API 2. THREADS AND KERNELS: thread pool, SIMD sets, op profile, matmul, vectors       */
/* ===================================================================================== */
/* The library parallelises itself: nothing here needs calling unless a program wants to fix
   the thread count or the kernel set, see where a step's time goes, or use the kernels
   directly (its own ops, tests). The model's ops (section 6, Level 3) are built on these.

       distill_set_threads(4);                            as DISTILL_THREADS=4 would
       distill_matmul_forward(out, inp, weight, NULL, BT, C, OC);        out = inp . weight^T */

/* Thread pool. The default is one worker per core (DISTILL_THREADS overrides); the caller is
   worker 0. Under DISTILL_NO_THREADS everything runs on the calling thread. The pool is created
   lazily on the first parallel job; distill_set_threads(n) (n <= 0: the default) stops the
   workers and takes effect at the next job. Call the library from one user thread at a time
   (the pool is shared by the whole process); a parallel_for called from inside a task runs
   serially on that worker instead of deadlocking. Results never depend on the thread count. */
DISTILL_API void distill_set_threads(int n);
DISTILL_API int  distill_get_threads(void);

/* SIMD kernel set: chosen once at run time from the CPU ("avx512", "avx2", "neon" or
   "scalar"); the environment variable DISTILL_SIMD or distill_set_simd(name) forces one
   (NULL or "" = the best available). distill_set_simd returns -1 if this build or CPU lacks
   it. Not thread-safe: call it between jobs. */
DISTILL_API int         distill_set_simd(const char *name);
DISTILL_API const char *distill_simd_name(void);

/* Op profile: where a step's time goes. distill_profile_start() resets and switches on
   timers in the library's ops (each matrix product by kind and shape, attention, norms,
   SwiGLU, RoPE, the LM head and loss, the optimizer, ...); distill_profile_print() then prints,
   per op, its calls, thread 0's time inside it and, per thread, the time spent running its
   tasks and the rest of the op's time (waiting in the pool for a job, the other threads, or
   thread 0's serial part). `wall` (seconds, e.g. the sum of the timed steps) sets the shares
   and the "outside the ops" line; `steps` divides the times. Off, the timers cost one branch
   per op; on, two clock reads per op and per thread and job.
       distill_profile_start();  ...steps...;  distill_profile_stop();
       distill_profile_print(stdout, wall_seconds, n_steps);                                  */
DISTILL_API void distill_profile_start(void);
DISTILL_API void distill_profile_stop(void);
DISTILL_API void distill_profile_print(FILE *f, double wall, int steps);

/* Run fn(ctx, begin, end, thread) over [0, n) in chunks of `chunk` items, on all workers.
   Returns when every chunk is done. */
typedef void (*distill_task_fn)(void *ctx, int64_t begin, int64_t end, int thread);
DISTILL_API void distill_parallel_for(int64_t n, int64_t chunk, distill_task_fn fn, void *ctx);

/* out (BT,OC) = inp (BT,C) . weight (OC,C)^T + bias (OC)      bias may be NULL */
DISTILL_API void distill_matmul_forward(float *out, const float *inp, const float *weight,
                                        const float *bias, int BT, int C, int OC);
/* Accumulating backward of the above (any of dinp, dweight, dbias may be NULL):
     dinp    (BT,C)  += dout . weight
     dweight (OC,C)  += dout^T . inp
     dbias   (OC)    += sum over BT of dout                                                  */
DISTILL_API void distill_matmul_backward(float *dinp, float *dweight, float *dbias,
                                         const float *dout, const float *inp,
                                         const float *weight, int BT, int C, int OC);
/* With DISTILL_OPENBLAS the three products go through cblas_sgemm, OpenBLAS single-threaded
   inside our workers (one thread pool on the cores, never two). distill_set_blas(0) switches
   back to the built-in kernels at run time (benchmarks, tests); returns -1 when asked for BLAS
   in a build without it. */
DISTILL_API int distill_set_blas(int on);
/* Scalar references of the two, always compiled, used by the tests. */
DISTILL_API void distill_matmul_forward_ref(float *out, const float *inp, const float *weight,
                                            const float *bias, int BT, int C, int OC);
DISTILL_API void distill_matmul_backward_ref(float *dinp, float *dweight, float *dbias,
                                             const float *dout, const float *inp,
                                             const float *weight, int BT, int C, int OC);

/* Vector primitives the model's ops are written with (SIMD; summation order is fixed, so results
   are deterministic, but they differ from a plain scalar loop in the last bits). */
DISTILL_API float distill_vec_dot(const float *a, const float *b, int n);          /* sum a[i]*b[i] */
DISTILL_API void  distill_vec_axpy(float *y, float a, const float *x, int n);      /* y += a*x */
DISTILL_API void  distill_vec_scale(float *y, float a, int n);                     /* y *= a */
DISTILL_API float distill_vec_max(const float *x, int n);                          /* -INFINITY if n == 0 */
/* SwiGLU on n floats, serial (for the model's per-chunk tasks):
     out = silu(gate) * up,  silu(g) = g * sigmoid(g)
     dgate = dout * up * s * (1 + g * (1 - s)),  dup = dout * g * s,  s = sigmoid(g)
   dup may alias dout. sigmoid uses the vectorised exp (relative error ~1e-7). */
DISTILL_API void  distill_vec_swiglu_forward(float *out, const float *gate, const float *up, int n);
DISTILL_API void  distill_vec_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                                              const float *up, int n);
/* y[i] = exp(x[i] - shift); returns the sum of the y[i] (y may equal x). exp is a polynomial
   approximation with max relative error < 2e-7 (measured 1.0e-7) for results >= FLT_MIN. */
DISTILL_API float distill_vec_exp_sum(float *y, const float *x, float shift, int n);

/* Blocked flash attention: the contract of distill_attention_forward/backward (section 6; causal
   grouped-query attention; q (B,T,NH,HS), k/v (B,T,NKV,HS), out (B,T,NH,HS), lse (B,NH,T);
   lengths (B) or NULL; kstart (B,T) or NULL = first key a query may see; dq/dk/dv overwritten),
   computed on 64x64 blocks with the matmul micro-kernel. */
DISTILL_API void distill_flash_attention_forward(float *out, float *lse, const float *q, const float *k,
                                                 const float *v, const int *lengths, const int *kstart,
                                                 int B, int T, int NH, int NKV, int HS);
DISTILL_API void distill_flash_attention_backward(float *dq, float *dk, float *dv, const float *dout,
                                                  const float *q, const float *k, const float *v,
                                                  const float *out, const float *lse, const int *lengths,
                                                  const int *kstart, int B, int T, int NH, int NKV, int HS);
/* ===================================================================================== */
/* API 3. JSON: strict RFC 8259 parser, JSONL line reader                                */
/* ===================================================================================== */
/* The data layer reads every dataset, tokenizer.json, config.json and checkpoint header with
   this parser; programs can use it for their own configuration and results files. A parse
   error names the file, line and column.

       distill_json *doc = distill_json_parse_file("config.json", &err);
       const distill_json *v = doc ? distill_json_path(doc, "meta.difficulty") : NULL;
       if (v && v->type == DISTILL_JSON_STRING) puts(v->str);
       distill_json_free(doc);                                                                */

/* A parsed JSON value. A document is a tree of these in one arena; everything in it lives until
   distill_json_free(root). Strings are decoded UTF-8 (escapes resolved, validated), always
   NUL-terminated, and carry their byte length because "\u0000" is legal JSON. */
typedef enum distill_json_type {
    DISTILL_JSON_NULL, DISTILL_JSON_FALSE, DISTILL_JSON_TRUE, DISTILL_JSON_NUMBER,
    DISTILL_JSON_STRING, DISTILL_JSON_ARRAY, DISTILL_JSON_OBJECT
} distill_json_type;

typedef struct distill_json distill_json;
struct distill_json {
    distill_json_type type;
    int line, col;          /* 1-based source position of the value, for error messages     */
    size_t len;             /* STRING: bytes; ARRAY: items; OBJECT: members                  */
    const char *str;        /* STRING: the decoded text                                      */
    double num;             /* NUMBER: the value as a double                                 */
    int64_t i64;            /* NUMBER: the exact value when is_int (no precision loss)       */
    int is_int;             /* NUMBER written without fraction/exponent and fits in int64   */
    distill_json *items;    /* ARRAY: the items; OBJECT: the member values                   */
    const char **keys;      /* OBJECT: the member names (decoded, NUL-terminated)           */
    size_t *key_lens;       /* OBJECT: their byte lengths                                    */
};

/* Parse one JSON document from text[0..len). `name` (a file name) and `first_line` (the line of
   the text within that file, 1 for a whole file) only label error messages, which look like
   "data.jsonl:17:5: expected ',' or '}' after object member". Returns NULL on error. */
DISTILL_API distill_json *distill_json_parse(const char *text, size_t len, const char *name,
                                             int first_line, distill_error *err);
DISTILL_API void distill_json_free(distill_json *root);
/* Read and parse a whole file (one JSON document, e.g. tokenizer.json or a .json array). */
DISTILL_API distill_json *distill_json_parse_file(const char *path, distill_error *err);

/* Member lookup: the value of key in an object, or NULL (missing key or v not an object). */
DISTILL_API const distill_json *distill_json_get(const distill_json *v, const char *key);
/* Dotted path lookup, e.g. "meta.difficulty" or "conversations.0.value". NULL if absent. */
DISTILL_API const distill_json *distill_json_path(const distill_json *v, const char *path);
/* Item i of an array (NULL when out of range or v is not an array). */
DISTILL_API const distill_json *distill_json_at(const distill_json *v, size_t i);
/* "null", "false", "true", "number", "string", "array", "object". */
DISTILL_API const char *distill_json_type_name(distill_json_type t);

/* Write s[0..len) as a JSON string literal (quotes and escapes) to f. */
DISTILL_API void distill_json_write_string(FILE *f, const char *s, size_t len);
/* Number of bytes the document's arena holds (tests, benchmarks). */
DISTILL_API size_t distill_json_arena_bytes(const distill_json *root);

/* ---- what the parser accepts -----------------------------------------------------

   Choices where RFC 8259 leaves room (the conformance tests in tests/test_json.c pin them):
   - strict RFC 8259: no comments, no trailing commas, no single quotes, no NaN/Infinity, no
     leading '+' or zeros, no unescaped control characters in strings, one value per document
     (anything but whitespace after it is an error);
   - the text must be valid UTF-8: overlong forms, UTF-8-encoded surrogates (ED A0..BF) and code
     points above U+10FFFF are rejected, also inside strings;
   - \u escapes: a surrogate pair becomes one 4-byte character; a LONE surrogate (\uD800 not
     followed by \uDC00..\uDFFF, or a stray \uDC00) is REJECTED, so every decoded string is
     valid UTF-8 and re-encodes losslessly. "\u0000" is accepted (hence the `len` fields);
   - numbers: integers that fit in int64 are exact in `i64` (is_int = 1); other numbers only
     in `num` (correctly rounded by strtod). A number whose magnitude overflows a double
     (1e400) is rejected; one that underflows (1e-400) becomes 0;
   - duplicate object keys are kept; distill_json_get returns the LAST one (as Python and jq);
   - a UTF-8 byte order mark at the very start of the text is skipped;
   - nesting deeper than DISTILL_JSON_MAX_DEPTH arrays/objects is an error;
   - error columns count bytes from 1. */
#ifndef DISTILL_JSON_MAX_DEPTH
#define DISTILL_JSON_MAX_DEPTH 512
#endif

/* Streaming line reader for JSONL: memory is one chunk plus the longest line, whatever the file
   size; lines may be of any length up to max_line bytes (0: 1 GiB). A trailing "\r" is removed.
   next() returns 1 with a line (valid until the next call, NUL-terminated), 0 at end of file,
   -1 on a read error or a line longer than max_line (err says which line).

       distill_line_reader *r = distill_line_reader_open("data.jsonl", 0, &err);
       const char *line; size_t len; int64_t no;
       while (r && distill_line_reader_next(r, &line, &len, &no, &err) == 1)
           ...distill_json_parse(line, len, "data.jsonl", (int)no, &err)...
       distill_line_reader_close(r);                                                          */
typedef struct distill_line_reader distill_line_reader;
DISTILL_API distill_line_reader *distill_line_reader_open(const char *path, size_t max_line,
                                                          distill_error *err);
DISTILL_API int  distill_line_reader_next(distill_line_reader *r, const char **line, size_t *len,
                                          int64_t *line_no, distill_error *err);
/* Byte offset in the file of the start of the next line (progress reports). */
DISTILL_API int64_t distill_line_reader_offset(const distill_line_reader *r);
DISTILL_API void distill_line_reader_close(distill_line_reader *r);
/* ===================================================================================== */
/* API 4. TOKENIZER: byte-level BPE: loading, encoding, decoding, training, files        */
/* ===================================================================================== */
/* Text to token ids and back. A tokenizer is loaded from any common file (Hugging Face
   tokenizer.json, GPT-2 vocab.json + merges.txt, llama2.c tokenizer.bin, the library's own
   format) or trained on texts; the dataset (section 5) encodes with it, generation (section 8)
   decodes with it. Ids are appended to a distill_ids array, which the caller frees.

       distill_ids ids = {0};
       distill_tokenizer *tok = distill_tokenizer_load("tokenizer.json", NULL, &err);
       if (tok && distill_tokenizer_encode(tok, "Hello", 5, 0, &ids, &err) == 0) {
           char *text = distill_tokenizer_decode(tok, ids.ids, ids.n, NULL);   "Hello" again
           distill_free(text);
       }
       distill_ids_free(&ids); distill_tokenizer_free(tok);                                  */

/* A growable array of token ids. Encoding appends to it. */
typedef struct distill_ids {
    int32_t *ids;
    size_t n, cap;
} distill_ids;
DISTILL_API int  distill_ids_push(distill_ids *a, int32_t id);   /* 0 ok, -1 out of memory */
DISTILL_API void distill_ids_free(distill_ids *a);

typedef struct distill_tokenizer distill_tokenizer;   /* opaque */

/* ---- loading, saving, queries ------------------------------------------------------ */

/* Load any supported file, format detected from the content: the library's own text format,
   Hugging Face tokenizer.json, GPT-2 vocab.json (merges_path = merges.txt, else NULL), or a
   llama2.c tokenizer.bin. */
DISTILL_API distill_tokenizer *distill_tokenizer_load(const char *path, const char *merges_path,
                                                      distill_error *err);
DISTILL_API int  distill_tokenizer_save(const distill_tokenizer *tok, const char *path,
                                        distill_error *err);   /* own format, atomic write */
DISTILL_API void distill_tokenizer_free(distill_tokenizer *tok);
/* Save as a Hugging Face tokenizer.json (atomic write) that Hugging Face tokenizers and
   distill_tokenizer_load read back to the same ids: byte-level BPE vocab and merges, the
   pre-tokenizer's regex, every special and added token with its "special" flag. Refused, with a
   message, for what the format cannot hold: llama2.c tokenizers, two tokens with the same bytes
   (its vocab maps text to one id), gaps in the ids, special tokens that are not UTF-8. */
DISTILL_API int  distill_tokenizer_save_hf(const distill_tokenizer *tok, const char *path,
                                           distill_error *err);

DISTILL_API int distill_tokenizer_vocab_size(const distill_tokenizer *tok);

/* Id of a token given by its text (special tokens such as "<|im_end|>", "<think>", or an
   ordinary token's bytes), or -1 when the vocabulary has no such single token. */
DISTILL_API int32_t distill_tokenizer_token_id(const distill_tokenizer *tok, const char *text);
/* Special tokens: add one (a new id at the end, or the existing id if the text already is a
   special token); query (0 for non-special added tokens). Adding is not thread-safe against
   concurrent encoding. */
DISTILL_API int32_t distill_tokenizer_add_special(distill_tokenizer *tok, const char *text,
                                                  distill_error *err);
DISTILL_API int distill_tokenizer_is_special(const distill_tokenizer *tok, int32_t id);
DISTILL_API int distill_tokenizer_pattern(const distill_tokenizer *tok);
DISTILL_API int distill_tokenizer_n_merges(const distill_tokenizer *tok);
/* Merge r as (left, right) -> result ids; 0 ok, -1 out of range. */
DISTILL_API int distill_tokenizer_merge(const distill_tokenizer *tok, int r, int32_t *left,
                                        int32_t *right, int32_t *result);
/* bos/eos ids: llama2.c tokenizers 1 and 2; BPE tokenizers: bos -1, eos "<|endoftext|>" or -1. */
DISTILL_API int32_t distill_tokenizer_bos_id(const distill_tokenizer *tok);
DISTILL_API int32_t distill_tokenizer_eos_id(const distill_tokenizer *tok);
/* 1 for a llama2.c tokenizer.bin (score-based merges, byte fallback), else 0. */
DISTILL_API int distill_tokenizer_is_llama(const distill_tokenizer *tok);

/* ---- encoding -------------------------------------------------------------------- */

/* Encode text[0..len) and append the ids to out. With allow_special != 0, special tokens written
   literally in the text ("<|im_end|>") become their ids; with 0 they are encoded as ordinary
   text. Added tokens that tokenizer.json marks "special": false ("<think>", "<tool_call>" in
   Qwen's) become their ids either way, as in Hugging Face tokenizers (whose
   split_special_tokens splits only the special ones). Safe to call from several threads on the
   same tokenizer. 0 ok, -1 error. */
DISTILL_API int distill_tokenizer_encode(const distill_tokenizer *tok, const char *text, size_t len,
                                         int allow_special, distill_ids *out, distill_error *err);
/* Encoding with flags: DISTILL_ENC_ALLOW_SPECIAL as above; DISTILL_ENC_BOS / DISTILL_ENC_EOS add
   the tokenizer's bos/eos ids (llama2.c tokenizers: 1 and 2, like run.c's encode(bos, eos)). */
enum { DISTILL_ENC_ALLOW_SPECIAL = 1, DISTILL_ENC_BOS = 2, DISTILL_ENC_EOS = 4 };
DISTILL_API int distill_tokenizer_encode_ex(const distill_tokenizer *tok, const char *text,
                                            size_t len, int flags, distill_ids *out,
                                            distill_error *err);
/* Encode n texts on the thread pool (distill_parallel_for); outs[i] gets text i's ids appended.
   lens may be NULL. Same ids as n calls of distill_tokenizer_encode. */
DISTILL_API int distill_tokenizer_encode_batch(const distill_tokenizer *tok,
                                               const char *const *texts, const size_t *lens,
                                               size_t n, int allow_special, distill_ids *outs,
                                               distill_error *err);

/* ---- decoding -------------------------------------------------------------------- */

/* The bytes of one token (not NUL-terminated), or NULL for an invalid id. */
DISTILL_API const char *distill_tokenizer_token_bytes(const distill_tokenizer *tok, int32_t id,
                                                      size_t *len);

/* Decode ids to a newly allocated NUL-terminated string (free with distill_free); *len (may be
   NULL) gets its byte length. Bytes are returned as they are, which may be invalid UTF-8 for
   arbitrary ids. */
DISTILL_API char *distill_tokenizer_decode(const distill_tokenizer *tok, const int32_t *ids,
                                           size_t n, size_t *len);

/* Streaming decoder for generation: push ids one at a time and get back only complete UTF-8
   characters (an incomplete sequence is held until its last byte arrives; bytes that can never
   form a valid character come out as U+FFFD). The returned pointer is valid until the next call.
   For valid UTF-8 the concatenated output equals distill_tokenizer_decode of all ids. */
typedef struct distill_decoder {
    const distill_tokenizer *tok;
    char *buf;
    size_t cap;
    unsigned char pend[4];
    int npend;
    int32_t prev;
} distill_decoder;
DISTILL_API void distill_decoder_init(distill_decoder *d, const distill_tokenizer *tok);
DISTILL_API const char *distill_decoder_push(distill_decoder *d, int32_t id, size_t *len);
DISTILL_API const char *distill_decoder_flush(distill_decoder *d, size_t *len);
DISTILL_API void distill_decoder_free(distill_decoder *d);

/* ---- training a BPE ----------------------------------------------------------------
   A tokenizer of your own from texts in memory, or streamed (distill_bpe_trainer):

       const char *texts[2] = {"def f(x):\n    return x\n", "print(f(1))\n"};
       int n_sp;
       const char *const *sp = distill_tokenizer_default_specials(&n_sp);
       distill_tokenizer *tok = distill_tokenizer_train(texts, NULL, 2, 300,
                                                        DISTILL_PATTERN_QWEN2, sp, n_sp, &err); */

/* Pre-tokenizer patterns: how text is cut into chunks before BPE (merges never cross a chunk).
   All are hand-written equivalents of the regexes, exact on all of Unicode:
     GPT2    's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
     CL100K  '(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*
             |\s*[\r\n]|\s+(?!\S)|\s+          (GPT-4's cl100k_base, Llama 3)
     QWEN2   as CL100K but single digits \p{N}  (Qwen2/2.5/3)
     NONE    the whole text is one chunk (llama2.c / SentencePiece style)                     */
enum { DISTILL_PATTERN_NONE = 0, DISTILL_PATTERN_GPT2 = 1, DISTILL_PATTERN_CL100K = 2,
       DISTILL_PATTERN_QWEN2 = 3 };
DISTILL_API const char *distill_pattern_name(int pattern);      /* "gpt2", ...; NULL if unknown */
DISTILL_API int distill_pattern_from_name(const char *name);    /* -1 if unknown */

/* The default chat special tokens: <|endoftext|> <|im_start|> <|im_end|> <think> </think>. */
DISTILL_API const char *const *distill_tokenizer_default_specials(int *n);

/* Train a byte-level BPE (minbpe semantics: ids 0..255 are the bytes, merge r creates id 256+r,
   then the special tokens get the next ids in the order given). vocab_size counts all three;
   training stops early if the text runs out of pairs. Ties between equally frequent pairs go to
   the smallest (left, right) pair, so the result depends only on the texts, never on the thread
   count. Occurrences of the special tokens in the texts are cut out, not learned from.
   lens may be NULL (NUL-terminated texts). Chunks are counted in parallel. */
DISTILL_API distill_tokenizer *distill_tokenizer_train(const char *const *texts, const size_t *lens,
                                                       size_t n_texts, int vocab_size, int pattern,
                                                       const char *const *specials, int n_specials,
                                                       distill_error *err);

/* The same from a stream: new, add texts one by one (e.g. JSONL fields), finish, free. */
typedef struct distill_bpe_trainer distill_bpe_trainer;
DISTILL_API distill_bpe_trainer *distill_bpe_trainer_new(int pattern, const char *const *specials,
                                                         int n_specials, distill_error *err);
DISTILL_API int distill_bpe_trainer_add(distill_bpe_trainer *tr, const char *text, size_t len,
                                        distill_error *err);
/* Add n texts at once, counted in parallel on the thread pool (lens may be NULL). */
DISTILL_API int distill_bpe_trainer_add_batch(distill_bpe_trainer *tr, const char *const *texts,
                                              const size_t *lens, size_t n, distill_error *err);
DISTILL_API distill_tokenizer *distill_bpe_trainer_finish(distill_bpe_trainer *tr, int vocab_size,
                                                          distill_error *err);
DISTILL_API void distill_bpe_trainer_free(distill_bpe_trainer *tr);
/* ===================================================================================== */
/* API 5. DATA: conversations, schema adapters, filters, chat template, loss weights,    */
/* datasets, seeded subsets, the loader                                                  */
/* ===================================================================================== */
/* A dataset file becomes training batches here. distill_dataset_load reads and tokenises the
   whole file once (with a distill_data_options that says the format, filters, loss mode and
   length policy; NULL: the defaults); distill_loader_create then serves it as batches, shuffled
   anew every epoch. The dataset needs the tokenizer only while loading; the loader borrows the
   dataset, so free the loader first.

       distill_dataset *ds = distill_dataset_load("traces.jsonl", NULL, tok, &err);
       distill_loader_options lo = distill_loader_options_default();        B 8, shuffled
       distill_loader *L = ds ? distill_loader_create(ds, &lo, &err) : NULL;
       distill_batch b;
       if (L && distill_loader_next(L, &b, &err) == 0) ...b.B rows of b.T tokens and targets...
       distill_loader_free(L); distill_dataset_free(ds);

   A trainer reads the loader through a distill_loader_source (section 7, the training loop).

   The path of a training row, in the order the code below follows it:

     file (.jsonl, or .json holding one array)          distill_dataset_load
       -> JSON record                                    distill_json_parse (section 3)
       -> filters ("difficulty in {EASY, MEDIUM}")       distill_data_options.filters
       -> conversation: system/user/assistant messages   distill_conv_from_json (schema adapters)
       -> tokens + per-token loss weights                distill_chat_encode (chat template)
       -> length policy (max_seq: drop or truncate)
       -> rows of a dataset; nested seeded subsets       distill_dataset_select
       -> batches (tokens, next-token targets, weights)  distill_loader_next

   One template function renders both a training row and a generation prompt, so training and
   inference cannot disagree: the prompt of a conversation is exactly the prefix of its
   training row that precedes the first supervised token of the final assistant turn. */

/* ---- conversations ---------------------------------------------------------------------- */
typedef enum distill_role {
    DISTILL_ROLE_SYSTEM, DISTILL_ROLE_USER, DISTILL_ROLE_ASSISTANT,
    DISTILL_ROLE_TEXT   /* plain text: no template around it, every token supervised */
} distill_role;

typedef struct distill_message {
    distill_role role;
    const char *content;    /* UTF-8, NUL-terminated */
    size_t len;
    float loss_weight;      /* from the data's "loss_weight"/"weight"; < 0: the default (1) */
} distill_message;

/* A conversation; the strings live in `owned` (copies it made) or in the JSON document it came
   from. */
typedef struct distill_conv {
    distill_message *msgs;
    int n, cap;
    char **owned;           /* strings this conversation allocated */
    int n_owned, cap_owned;
} distill_conv;
DISTILL_API int  distill_conv_add(distill_conv *c, distill_role role, const char *content, size_t len,
                                  float loss_weight);   /* copies content; 0 ok, -1 out of memory */
DISTILL_API void distill_conv_free(distill_conv *c);

/* ---- schema adapters ----------------------------------------------------------------------- */
typedef enum distill_data_format {
    DISTILL_FORMAT_AUTO,               /* detected from the first record                     */
    DISTILL_FORMAT_MESSAGES,           /* {"messages": [{"role", "content"}]}; content a string
                                          or a list of {"type": "text", "text"|"value": ...} parts;
                                          an assistant "reasoning_content"/"reasoning" field or
                                          {"type": "reasoning"|"thinking"} part is wrapped in
                                          <think>...</think> before the content                  */
    DISTILL_FORMAT_CONVERSATIONS,      /* {"conversations": [{"from", "value"}]}: human/user,
                                          gpt/assistant, system (ShareGPT, OpenThoughts). Either
                                          format takes either key pair (role/content, from/value),
                                          a top-level "system", and tool use: OpenAI "tool_calls"
                                          and "tool" turns, ShareGPT "function_call" and
                                          "observation" turns, a "tools" list (or a string of
                                          one), rendered as Qwen's ChatML templates do: tools in
                                          the system turn, <tool_call> blocks in the (supervised)
                                          assistant turn, results as an unsupervised user turn of
                                          <tool_response> blocks. Preference records
                                          (chosen/rejected) are refused with the --map to use   */
    DISTILL_FORMAT_PROMPT_COMPLETION,  /* {"prompt", "completion"} strings or message lists (TRL) */
    DISTILL_FORMAT_ALPACA,             /* {"instruction", "input", "output"[, "system"]}       */
    DISTILL_FORMAT_TEXT,               /* {"text"}: raw text, every token supervised           */
    DISTILL_FORMAT_MAPPED              /* fields named by --map (see distill_data_options.map) */
} distill_data_format;
/* "auto", "messages", "conversations", "prompt-completion", "alpaca", "text", "mapped". */
DISTILL_API const char *distill_data_format_name(distill_data_format f);
DISTILL_API int distill_data_format_parse(const char *name, distill_data_format *out);

typedef enum distill_loss_mode {
    DISTILL_LOSS_ASSISTANT,   /* every assistant turn (multi-turn), incl. its end-of-turn token */
    DISTILL_LOSS_LAST,        /* only the last assistant turn (completion-only)               */
    DISTILL_LOSS_ALL          /* every token (language modelling on the rendered text)        */
} distill_loss_mode;

typedef enum distill_data_policy {
    DISTILL_POLICY_STRICT,    /* the first bad row is an error (file:line:col and field)     */
    DISTILL_POLICY_SKIP       /* bad rows are counted and skipped; zero usable rows is an error */
} distill_data_policy;

/* ---- chat templates --------------------------------------------------------------------- */
/* A turn renders as  role_prefix[role] + content + end_of_turn + turn_sep.  For assistant turns
   the content and end_of_turn are supervised (so the student learns to stop); prefixes and
   separators never are. A generation prompt is the turns so far + role_prefix[ASSISTANT] +
   gen_prefill. All strings are encoded with special tokens allowed (as Hugging Face tokenizers
   do), each piece separately, so piece boundaries are token boundaries in training and at
   generation alike. The prompt for a question, as the model saw such prompts in training:

       const distill_chat_template *tmpl = distill_chat_template_get("chatml");
       distill_ids prompt = {0};
       if (distill_chat_prompt_ids(tmpl, tok, NULL, "Write fizzbuzz.", &prompt, &err) == 0)
           ...generate from prompt.ids; stop at distill_chat_eot_id(tmpl, tok)...           */
typedef struct distill_chat_template {
    const char *name;
    const char *bos;              /* once at the start of every row/prompt ("" for none) */
    const char *role_prefix[3];   /* SYSTEM, USER, ASSISTANT */
    const char *end_of_turn;      /* e.g. "<|im_end|>": generation stops at this token */
    const char *turn_sep;         /* e.g. "\n" */
    const char *default_system;   /* inserted when a conversation has no system turn (NULL: none) */
    const char *gen_prefill;      /* e.g. "<think>\n": ends every generation prompt; in training
                                     a leading copy is cut from assistant content and left
                                     unsupervised ("" or NULL: none) */
} distill_chat_template;

/* Built-in templates by name: "chatml" (the default: Qwen-style ChatML, the assistant writes
   "<think>\n...\n</think>\n\nanswer<|im_end|>"), "chatml-prefill" (the same with "<think>\n"
   pre-filled in prompts, DeepSeek-R1-distill style), "plain" ("User:\n...<|endoftext|>\n\nAssistant:\n...",
   end of turn "<|endoftext|>", for tokenizers without chat tokens). NULL if unknown. */
DISTILL_API const distill_chat_template *distill_chat_template_get(const char *name);
/* The template as a Jinja chat_template (Hugging Face's tokenizer_config.json) that renders
   exactly what distill_chat_render renders, for messages with roles system/user/assistant
   (another role raises an error) and add_generation_prompt. Every string is a Jinja literal,
   so the result does not depend on trim_blocks/lstrip_blocks. Free with distill_free; NULL on
   out of memory. */
DISTILL_API char *distill_chat_template_jinja(const distill_chat_template *tmpl);

/* Render a conversation as text (for display). add_generation_prompt != 0 appends the
   assistant prefix + gen_prefill: the text the model continues from. Returns a NUL-terminated
   string to free with distill_free (NULL on out of memory). */
DISTILL_API char *distill_chat_render(const distill_chat_template *tmpl, const distill_conv *conv,
                                      int add_generation_prompt, size_t *len);

/* Encode a conversation: ids (appended to `ids`) and one loss weight per id (appended to
   `weights`, may be NULL): weight[i] > 0 means "token i is a training target", i.e. the model
   is trained to predict token i from tokens 0..i-1. With add_generation_prompt the result is a
   prompt for generation (all weights 0); then the model must generate the assistant content
   and finally the end_of_turn token (stop there: distill_chat_eot_id). */
typedef struct distill_floats { float *v; size_t n, cap; } distill_floats;
DISTILL_API void distill_floats_free(distill_floats *a);
DISTILL_API int distill_chat_encode(const distill_chat_template *tmpl, const distill_tokenizer *tok,
                                    const distill_conv *conv, distill_loss_mode mode,
                                    int add_generation_prompt, distill_ids *ids,
                                    distill_floats *weights, distill_error *err);
/* The prompt for generation from a system text (may be NULL) and a user text: equal to
   distill_chat_encode on that two-turn conversation with add_generation_prompt = 1. */
DISTILL_API int distill_chat_prompt_ids(const distill_chat_template *tmpl, const distill_tokenizer *tok,
                                        const char *system, const char *user, distill_ids *ids,
                                        distill_error *err);
DISTILL_API char *distill_chat_render_prompt(const distill_chat_template *tmpl, const char *system,
                                             const char *user, size_t *len);
/* The end-of-turn token id (generation stops there), or -1 when end_of_turn is not a single
   token of this vocabulary (then it is encoded as several ordinary tokens). */
DISTILL_API int32_t distill_chat_eot_id(const distill_chat_template *tmpl, const distill_tokenizer *tok);

/* ---- loading ------------------------------------------------------------------------------ */
typedef struct distill_data_options {
    distill_data_format format;        /* AUTO */
    /* Field-path mapping "src=dst", dst one of prompt, response (= completion), think, system,
       messages, conversations, text. E.g. {"question=prompt", "r1_generation=response",
       "reasoning=think"}: the reasoning field is wrapped in <think>\n...\n</think>\n\n before
       the response. src is a dotted path ("meta.question", "turns.0"). Implies MAPPED. */
    const char *const *map;
    int n_map;
    /* Filters, all must hold: "FIELD OP VALUE", OP one of == != < <= > >= in, VALUE a JSON
       value or a bare word, for `in` a set {A, B} or [A, B]. E.g. "difficulty in {EASY, MEDIUM}",
       "pass_rate == 1", "judgement == \"right\"", "meta.len < 4000". A row whose field is missing
       does not match. Filtered rows are counted, not errors. Filters run while loading (the
       records are not kept); load again with other filters for another split. */
    const char *const *filters;
    int n_filters;
    int normalize_think;               /* 1: <|begin_of_thought|>..<|end_of_thought|> -> <think>..</think>,
                                          <|begin_of_solution|>/<|end_of_solution|> markers removed */
    distill_loss_mode loss;            /* ASSISTANT */
    distill_data_policy policy;        /* STRICT */
    int max_seq;                       /* max tokens per row; 0: no limit */
    int truncate;                      /* rows over max_seq: 0 drop (counted), 1 keep the first max_seq tokens */
    const distill_chat_template *tmpl; /* NULL: "chatml" */
    int64_t max_rows;                  /* stop after this many usable rows; 0: all */
    size_t max_line;                   /* longest JSONL line accepted; 0: 1 GiB */
} distill_data_options;
DISTILL_API distill_data_options distill_data_options_default(void);

/* Convert one record into a conversation with the options' format/map/normalisation. `name`
   (the file name) prefixes error messages, which give the line and column of the offending
   value and name the field, e.g.
   "d.jsonl:17:12: field 'messages.1.content': expected a string or a list of parts, got number".
   *format (may be NULL) gets the format used (AUTO resolves from the record). A conversation
   without an assistant turn is returned as it is (a prompt for evaluation); the dataset loader
   rejects it as a training row. */
DISTILL_API int distill_conv_from_json(const distill_json *row, const distill_data_options *opt,
                                       distill_data_format *format, const char *name,
                                       distill_conv *out, distill_error *err);
/* Does `row` satisfy the filter expression? 1 yes, 0 no, -1 malformed expression. */
DISTILL_API int distill_data_filter_match(const distill_json *row, const char *expr, distill_error *err);

/* Length histogram buckets: bucket b counts rows of [2^b, 2^(b+1)) tokens (bucket 0: 0-1). */
#define DISTILL_DATA_HIST 24
typedef struct distill_data_stats {
    distill_data_format format;
    int64_t records;            /* records read (lines or array items, blank lines excluded) */
    int64_t rows;               /* usable rows in the dataset */
    int64_t skipped;            /* bad rows skipped (policy skip), incl. rows with no supervised token */
    int64_t filtered;           /* rows the filters removed */
    int64_t dropped;            /* rows over max_seq removed (truncate = 0) */
    int64_t truncated;          /* rows cut to max_seq (truncate = 1) */
    int64_t lost_think;         /* truncated rows whose cut removed their "</think>" */
    int64_t tokens, supervised_tokens;
    int64_t think_rows;         /* rows whose assistant text has a <think> block */
    int64_t eot_rows;           /* rows whose supervised part ends with the end-of-turn token(s) */
    int64_t min_len, max_len;
    int64_t hist[DISTILL_DATA_HIST];
    double seconds, json_seconds; /* load time; the part spent reading + parsing JSON */
    int64_t bytes;              /* bytes of input read */
    char first_error[512];      /* the first skipped row's message ("" if none) */
} distill_data_stats;

/* A tokenised dataset. Rows are stored in file order; `id` is the 0-based index of the record
   in the file (lines for JSONL, blank lines not counted; items for a .json array), stable
   across filters and subsets and used by manifests. */
typedef struct distill_dataset distill_dataset;
enum { DISTILL_ROW_THINK = 1, DISTILL_ROW_TRUNCATED = 2, DISTILL_ROW_EOT = 4, DISTILL_ROW_LOST_THINK = 8 };
typedef struct distill_row {
    const int32_t *tokens;       /* n ids */
    const float *weights;        /* n loss weights (see distill_chat_encode) */
    int n, n_supervised;
    int64_t id, line;            /* record index; 1-based line in the file */
    int flags;                   /* DISTILL_ROW_* */
} distill_row;

/* Load and tokenise a .jsonl file or a .json array (detected by the first byte). tok may be
   NULL: records are then only parsed, validated and counted (rows have no tokens). opt NULL:
   defaults. Errors: "file:line:col: field 'x': ...". */
DISTILL_API distill_dataset *distill_dataset_load(const char *path, const distill_data_options *opt,
                                                  const distill_tokenizer *tok, distill_error *err);
DISTILL_API void distill_dataset_free(distill_dataset *ds);
DISTILL_API int64_t distill_dataset_size(const distill_dataset *ds);
DISTILL_API int  distill_dataset_row(const distill_dataset *ds, int64_t i, distill_row *row);
DISTILL_API const distill_data_stats *distill_dataset_stats(const distill_dataset *ds);
/* Write the stats as one JSON object (rows, skipped, format, tokens, ...) followed by "\n". */
DISTILL_API void distill_data_stats_write_json(FILE *f, const distill_data_stats *s, int with_tokens);

/* ---- selection for experiments -----------------------------------------------------------
   Seeded subsets of a loaded dataset, for runs on 1K, 10K, ... rows where each size contains the
   smaller ones, and disjoint pools (exclude); the manifest records which rows a run used.

       distill_select_options sel = {0};
       distill_dataset *sub;
       sel.seed = 7; sel.n = 1000; sel.manifest = "out/manifest.json";
       sub = distill_dataset_select(ds, &sel, &err);          free sub and ds, in any order */
typedef struct distill_select_options {
    uint64_t seed;        /* the permutation: the same seed gives NESTED subsets (the first 1K
                             of the permutation is inside the first 10K) */
    int64_t n;            /* rows to take (0: all); more than available is an error */
    int n_splits, split;  /* > 0: cut the permutation into n_splits equal parts (the remainder
                             is left out) and take part `split` (0-based) before applying n */
    const char *manifest; /* non-NULL: write {"seed", "n", "rows": [ids]} there, atomically */
    const int64_t *exclude; /* record ids (distill_row.id) left out before the permutation, e.g.
                             the rows other runs trained on: a disjoint pool */
    int64_t n_exclude;
} distill_select_options;
/* A new dataset holding the chosen rows (in file order; sharing the parent's tokens, so free
   both, in any order). */
DISTILL_API distill_dataset *distill_dataset_select(const distill_dataset *ds, const distill_select_options *sel,
                                                    distill_error *err);

/* ---- iteration ----------------------------------------------------------------------------- */
typedef struct distill_loader_options {
    int batch_rows;        /* B: sequences per batch (packing: packed sequences per batch) */
    int64_t token_budget;  /* > 0: batches hold at most this many B*T positions (B <= batch_rows
                              when batch_rows > 0); rows are never split */
    int seq_len;           /* T capacity; 0: the longest row. Rows longer than this are an error */
    int pack;              /* 1: several rows per sequence, segments/positions filled (T = seq_len) */
    int shuffle;           /* 1: seeded shuffle, a new permutation every epoch */
    uint64_t seed;
} distill_loader_options;
DISTILL_API distill_loader_options distill_loader_options_default(void); /* B 8, shuffle, seed 1 */

/* Where the loader is: saved in checkpoints, restored for an exact resume. The fingerprint
   identifies the dataset and options, so resuming on other data is an error. */
typedef struct distill_loader_cursor {
    int64_t epoch;         /* 0-based */
    int64_t pos;           /* rows of this epoch's permutation already served */
    uint64_t fingerprint;
} distill_loader_cursor;

typedef struct distill_loader distill_loader;
DISTILL_API distill_loader *distill_loader_create(const distill_dataset *ds, const distill_loader_options *o,
                                                  distill_error *err);
/* Fill *b with the next batch (arrays owned by the loader, valid until the next call). targets
   are next tokens: targets[t] = tokens[t+1] within a row, -1 where unsupervised, at the last
   position of a row and in padding; weights likewise (0 where target is -1). lengths[b] = valid
   positions; with packing, segments (0, 1, 2... per row in a sequence) and positions (restarting
   at 0 per row). When an epoch ends the next call starts the next one (reshuffled); the last
   batch of an epoch may be smaller. Sets B, T, tokens, targets, weights, lengths, segments and
   positions (NULL without packing); other fields of *b are left as they are. 0, or -1 with err. */
DISTILL_API int distill_loader_next(distill_loader *L, struct distill_batch *b, distill_error *err);
DISTILL_API distill_loader_cursor distill_loader_get_cursor(const distill_loader *L);
DISTILL_API int distill_loader_set_cursor(distill_loader *L, const distill_loader_cursor *c, distill_error *err);
/* Dataset rows (indices into the dataset) of the last batch, in order; *n gets the count. */
DISTILL_API const int64_t *distill_loader_last_rows(const distill_loader *L, int *n);
DISTILL_API void distill_loader_free(distill_loader *L);
/* ===================================================================================== */
/* API 6. MODEL: config, parameters; Level 1, Level 2, Level 3; losses, AdamW            */
/* ===================================================================================== */
/* A Llama / Qwen2 / Qwen3-style decoder with a hand-written backward pass, used at one of three
   levels; each is built from the next:
     Level 1  distill_train_step: one call per optimizer step (zero_grad, forward + backward,
              AdamW) on a batch; for a loop of your own with the plain cross-entropy loss.
     Level 2  forward, backward, forward_backward, zero_grad, adamw_step: the step in pieces,
              for gradient accumulation, custom losses (distill_head_loss), inference.
     Level 3  the ops on raw float* (embedding, RMSNorm, RoPE, attention, SwiGLU), each forward
              next to its backward: for building or checking a network of your own.
   Above Level 1 the trainer (section 7) runs the whole loop with evaluation, checkpoints,
   logs and distillation. A model is created here from a config, or loaded from a file with
   distill_model_load (section 7, model files).

       distill_config mc = distill_config_default();
       mc.vocab_size = distill_tokenizer_vocab_size(tok);
       mc.dim = 128; mc.n_layers = 4; mc.n_heads = 4; mc.n_kv_heads = 2; mc.hidden_dim = 352;
       distill_model *m = distill_model_create(&mc, 8, 1024, 42, &err);   B <= 8, T <= 1024
       ... Level 1, 2 or 3, or a trainer ...
       distill_model_free(m);                                                                 */

/* ---- the model: config, parameters, creation ----------------------------------------- */

/* Model hyper-parameters: a Llama / Qwen2 / Qwen3-style decoder. */
typedef struct distill_config {
    int vocab_size;        /* V */
    int dim;               /* C */
    int n_layers;          /* L */
    int n_heads;           /* NH; head size HS = C / NH unless head_dim says otherwise */
    int n_kv_heads;        /* grouped-query attention: divides n_heads */
    int hidden_dim;        /* SwiGLU FFN width */
    float rope_theta;      /* 10000 for Llama, 1e6 for Qwen2 */
    float norm_eps;        /* RMSNorm epsilon */
    int qkv_bias;          /* 1: q/k/v projections have a bias (Qwen2) */
    int tie_embeddings;    /* 1: the LM head is the token embedding */
    float init_std;        /* normal(0, init_std) initialisation, 0.02 by default */
    int scale_residual_init; /* 1: residual projections (o, down) get init_std/sqrt(2L) */
    /* Hugging Face architecture options (0 = off: the fields above alone describe Llama/Qwen2) */
    int head_dim;          /* HS decoupled from C / NH (Qwen3, some Llamas); 0: C / NH. q/k/v/o are
                              then (NH*HS,C) (NKV*HS,C) (NKV*HS,C) (C,NH*HS) */
    int qk_norm;           /* 1: per-head RMSNorm of q and k before RoPE, weights (HS) (Qwen3) */
    int rope_scaling;      /* DISTILL_ROPE_DEFAULT, _LINEAR (positions / factor), _LLAMA3 (Llama 3.1) */
    float rope_factor;                 /* LINEAR, LLAMA3 */
    float rope_low_freq_factor;        /* LLAMA3 */
    float rope_high_freq_factor;       /* LLAMA3 */
    int rope_original_max_pos;         /* LLAMA3: original_max_position_embeddings */
} distill_config;
enum { DISTILL_ROPE_DEFAULT = 0, DISTILL_ROPE_LINEAR = 1, DISTILL_ROPE_LLAMA3 = 2 };
/* HS of a config: head_dim, or C / NH when head_dim is 0. */
DISTILL_API int distill_config_head_dim(const distill_config *cfg);

DISTILL_API distill_config distill_config_default(void);
/* 0 if valid, else -1 with a message naming the field, e.g.
   "n_heads (6) must be divisible by n_kv_heads (4)". */
DISTILL_API int distill_config_validate(const distill_config *cfg, distill_error *err);

/* One parameter tensor of the size table. Every tensor is a slice of one aligned buffer; the
   gradients and the AdamW moments use the same layout (same offsets). */
typedef struct distill_tensor_info {
    char name[64];         /* Hugging Face Llama/Qwen2 name, e.g. "model.layers.0.self_attn.q_proj.weight" */
    int ndim;
    int shape[2];
    size_t offset, numel;  /* in floats, into params/grads/m/v */
    int decay;             /* 1: AdamW applies weight decay to this tensor */
} distill_tensor_info;

/* Views of one layer's tensors inside distill_model.params (NULL where absent, e.g. biases
   without qkv_bias). A top-level type (not nested in distill_model) so C++ can name it. */
typedef struct distill_layer_params {
    float *attn_norm;              /* (C) */
    float *wq, *wk, *wv, *wo;      /* (NH*HS,C) (NKV*HS,C) (NKV*HS,C) (C,NH*HS) */
    float *bq, *bk, *bv;           /* (NH*HS) (NKV*HS) (NKV*HS) */
    float *ffn_norm;               /* (C) */
    float *w_gate, *w_up, *w_down; /* (F,C) (F,C) (C,F) */
    float *q_norm, *k_norm;        /* (HS) (HS) with qk_norm (Qwen3), else NULL */
} distill_layer_params;

typedef struct distill_model distill_model;
struct distill_model {
    distill_config cfg;
    int max_batch, max_seq;            /* capacity given at creation */
    int n_tensors;
    distill_tensor_info *tensors;      /* the size table */
    size_t num_params;                 /* sum of numel over the table (the parameter count) */
    size_t num_floats;                 /* length of params/grads/m/v incl. 64-byte alignment padding
                                          between tensors (the padding stays zero) */
    float *params, *grads, *m, *v;     /* one layout; m/v allocated on the first optimizer step;
                                          grads NULL in a loaded model until a forward with targets
                                          (or zero_grad, an optimizer step, a trainer) needs them */
    float *tok_emb;                    /* (V,C) */
    float *lm_head;                    /* (V,C); == tok_emb when tied */
    float *final_norm;                 /* (C) */
    distill_layer_params *layers;      /* (L) */
    void *internal;                    /* activations and scratch: private to the implementation */
};

/* Create with explicit capacity: forward accepts any B <= max_batch, T <= max_seq. Parameters
   are initialised from `seed` (normal(0, init_std), residual projections scaled). */
DISTILL_API distill_model *distill_model_create(const distill_config *cfg, int max_batch,
                                                int max_seq, uint64_t seed, distill_error *err);
DISTILL_API void distill_model_free(distill_model *m);
DISTILL_API void distill_model_init_params(distill_model *m, uint64_t seed);
/* Bytes of activation memory a training step at capacity allocates (the header's formula). */
DISTILL_API size_t distill_model_activation_bytes(const distill_config *cfg, int B, int T);
/* Index of the tensor with this Hugging Face name in m->tensors, or -1. */
DISTILL_API int distill_model_find_tensor(const distill_model *m, const char *name);

/* ---- precision of the matrix products ------------------------------------------------
   FP32 (the default) everywhere; BF16: the inputs of the linear layers and the LM head
   (weights, activations and, in backward, output gradients) are rounded to BF16 and their
   products summed in FP32 (vdpbf16ps where the CPU has AVX512_BF16, else a portable path that
   says so once on stderr). Master weights, gradients, AdamW, norms, softmax, RoPE and the loss
   stay FP32; results stay bit-identical across thread counts. distill_bf16_path():
   "vdpbf16ps" or "portable" (what BF16 runs now).
       distill_model_set_precision(m, DISTILL_PRECISION_BF16);        or tc.precision, below */
enum { DISTILL_PRECISION_FP32 = 0, DISTILL_PRECISION_BF16 = 1 };
DISTILL_API int distill_model_set_precision(distill_model *m, int precision); /* 0, or -1 if unknown */
DISTILL_API int distill_model_precision(const distill_model *m);
DISTILL_API const char *distill_bf16_path(void);

/* ---- BF16 weights, for inference and teachers ----------------------------------------
   A model that only forwards (evaluates, generates, teaches) can hold its matrices (embedding,
   projections, LM head) in BF16: half the memory of FP32 weights, and half the bytes each
   decoded token streams, which is what batch-1 decoding is bound by. Norms and biases stay
   FP32. The weights are rounded once (nearest even); from then on the model computes, to the
   bit, what an FP32 model holding the rounded weights computes, in either precision (the
   kernels widen BF16 exactly; activations stay FP32 unless the precision is BF16). The FP32
   weights are released: training, checkpoints and llama2.c files then fail with a message;
   safetensors export works (BF16 writes the weights as held). A generator, teacher or KD head
   reads the weights at each call, so convert before or between uses, never during one.
       distill_model *t = distill_model_load_bf16("teacher/", 8, 2048, NULL, &err);
       or: m = distill_model_load(...); distill_model_to_bf16(m, &err);              the same */
DISTILL_API int distill_model_to_bf16(distill_model *m, distill_error *err);   /* 0, or -1 out of memory */
DISTILL_API int distill_model_is_bf16(const distill_model *m);                 /* 1 after distill_model_to_bf16 */

/* ---- what a step reports, and the optimizer's settings ------------------------------- */

/* What a forward pass reports over the supervised positions. */
typedef struct distill_stats {
    double loss;           /* sum(w * loss_token) / sum(w) */
    double weight_sum;     /* sum of loss weights = supervised tokens for 0/1 masks */
    double accuracy;       /* share of supervised tokens where argmax(logits) == target */
    double entropy;        /* mean predictive entropy (nats) over supervised tokens */
    int64_t tokens;        /* valid positions in the batch */
} distill_stats;

/* AdamW and learning-rate schedules. */
typedef enum distill_schedule { DISTILL_SCHED_CONSTANT, DISTILL_SCHED_LINEAR, DISTILL_SCHED_COSINE } distill_schedule;
typedef struct distill_optim_config {
    float lr, beta1, beta2, eps, weight_decay;
    int decay_embeddings;      /* 1: weight decay also on the token embedding */
    float grad_clip;           /* global-norm clipping threshold; <= 0 disables */
    distill_schedule schedule;
    int64_t warmup_steps;      /* or warmup_ratio of total_steps when warmup_steps < 0 */
    float warmup_ratio;
    int64_t total_steps;
    float min_lr_ratio;        /* the floor: lr never decays below lr * min_lr_ratio */
} distill_optim_config;
DISTILL_API distill_optim_config distill_optim_default(void);
DISTILL_API float distill_lr_at(const distill_optim_config *oc, int64_t step); /* step from 0 */
/* 0 if the optimizer config is usable, else -1 with a message naming the field. */
DISTILL_API int distill_optim_validate(const distill_optim_config *oc, distill_error *err);

/* ---- Level 1: one call per optimizer step -----------------------------------------------
   zero_grad, forward + backward with weighted cross-entropy, then AdamW at `step`; *stats and
   *grad_norm (either may be NULL) get the step's loss and the gradient norm before clipping.

       distill_optim_config oc = distill_optim_default();
       distill_stats st;
       oc.total_steps = 1000;                                     the schedule's length
       for (step = 0; step < 1000; step++) {
           if (distill_loader_next(L, &b, &err) != 0 ||
               distill_train_step(m, &b, &oc, step, &st, NULL, &err) != 0) break;
           printf("%lld %.4f\n", (long long)step, st.loss);
       }                                                                                   */
DISTILL_API int distill_train_step(distill_model *m, const distill_batch *batch,
                                   const distill_optim_config *oc, int64_t step,
                                   distill_stats *stats, double *grad_norm, distill_error *err);

/* ---- Level 2: forward, backward, forward_backward, the optimizer step --------------------
   forward: runs the model on the batch and, when batch->targets is non-NULL, the loss
   (head_loss NULL = weighted cross-entropy), filling *stats (may be NULL). grad_scale is
   1/(total loss weight of the accumulated batch); pass 0 to use this batch's own weight sum.
   backward: accumulates into m->grads the gradient of the last forward's loss.
   forward_backward: both in one call, cheaper (see below).
   Gradient accumulation = zero_grad once, then forward+backward (or forward_backward) per
   micro-batch with the same grad_scale, then one distill_adamw_step.

       distill_model_zero_grad(m);
       if (distill_model_forward_backward(m, &b, NULL, 0.0f, &st, &err) != 0) return -1;
       gnorm = distill_adamw_step(m, &oc, step);                                            */

/* The fused LM head processes positions in chunks: logits for `n` positions (n,V) are computed,
   handed to a loss, and the loss writes dlogits (n,V) in place before the chunk is discarded, so
   B*T*V is never resident. The default loss is weighted cross-entropy; the trainer plugs in
   logit distillation here. `pos` lists the flat indices (b*T+t) of the n positions. The loss
   adds its contributions (unnormalised sums) to *stats and scales dlogits by `grad_scale`
   (1/total weight of the whole accumulated batch). Called from worker threads: must only touch
   its own chunk and per-thread accumulators. */
typedef struct distill_head_loss {
    void (*fn)(void *ctx, const int64_t *pos, int n, float *logits_to_dlogits, int V,
               const int32_t *targets, const float *weights, float grad_scale,
               int compute_grad, distill_stats *stats_acc, int thread);
    void *ctx;
} distill_head_loss;

/* Positions per chunk of the fused LM head: the head holds (DISTILL_HEAD_CHUNK, V) logits at a
   time; a vocabulary under 4096 gets proportionally more positions (DISTILL_HEAD_CHUNK * 4096 / V:
   the same memory as V = 4096), so small models do not run their head as many tiny products.
   Define before including the implementation to trade memory for fewer, larger GEMMs. */
#ifndef DISTILL_HEAD_CHUNK
#define DISTILL_HEAD_CHUNK 128
#endif

DISTILL_API void distill_model_zero_grad(distill_model *m);
DISTILL_API int  distill_model_forward(distill_model *m, const distill_batch *batch,
                                       const distill_head_loss *head_loss, float grad_scale,
                                       distill_stats *stats, distill_error *err);
DISTILL_API void distill_model_backward(distill_model *m);
/* forward + backward in one call, accumulating into m->grads (the LM head's gradient is formed
   while the logits are in hand, so they are not recomputed: cheaper than the two calls).
   Use it for gradient accumulation: zero_grad once, then one call per micro-batch. */
DISTILL_API int distill_model_forward_backward(distill_model *m, const distill_batch *batch,
                                               const distill_head_loss *head_loss, float grad_scale,
                                               distill_stats *stats, distill_error *err);
/* One AdamW update of m->params from m->grads at `step` (0-based; bias correction uses step+1).
   Clips first when grad_clip > 0. Returns the global gradient norm before clipping. */
DISTILL_API double distill_adamw_step(distill_model *m, const distill_optim_config *oc, int64_t step);
/* Logits (T,V) of the positions of row b of the last forward, recomputed for the caller
   (inference, tests). out must hold T*V floats. */
DISTILL_API void distill_model_logits(distill_model *m, int b, float *out);
/* The default head loss (weighted cross-entropy) as a distill_head_loss callback, so custom
   losses can call it and add their own terms. ctx is unused. Per position i with target y,
   weight w, logits z, p = softmax(z):  loss += w * (logsumexp(z) - z[y]),
   dlogits = grad_scale * w * (p - onehot(y)); stats get w*loss, w, w*[argmax==y], w*entropy. */
DISTILL_API void distill_ce_head_loss(void *ctx, const int64_t *pos, int n, float *logits_to_dlogits,
                                      int V, const int32_t *targets, const float *weights,
                                      float grad_scale, int compute_grad, distill_stats *stats_acc,
                                      int thread);

/* Notes on the Level 2 contract:
   - The LM head (and so the head_loss callback) runs only on the positions that can carry
     loss: t < lengths[b], targets >= 0 and weight > 0. `pos` lists them in increasing order;
     the callback is invoked on blocks of 4 positions, each with its own zeroed stats slot, and
     the slots are summed in a fixed order (so 1 and N threads agree bit for bit). `thread` is
     in [0, distill_get_threads()).
   - stats: accuracy and entropy are weighted by the loss weights (for 0/1 masks: the share /
     mean over supervised tokens). With grad_scale > 0, loss = sum(w * loss_token) * grad_scale,
     i.e. this micro-batch's share of the accumulated mean.
   - backward reads the batch's arrays again (targets, weights for the recomputed head): keep
     them alive and unchanged between forward and backward.
   - A segment (packing) is a maximal run of equal segment ids within a row. */

/* ---- Level 3: the ops, forward next to backward -----------------------------------------
   On raw float*, in the implementation's order (embedding, RMSNorm, RoPE, attention, SwiGLU);
   shapes in comments at the definitions. The matrix product and the blocked flash attention
   are in section 2.

       distill_rmsnorm_forward(out, rstd, x, weight, N, C, 1e-5f);
       distill_rmsnorm_backward(dx, dweight, dout, x, weight, rstd, N, C);     dx, dweight += */
DISTILL_API void distill_embedding_forward(float *out, const int32_t *tokens, const float *table, int N, int C);
DISTILL_API void distill_embedding_backward(float *dtable, const float *dout, const int32_t *tokens, int N, int C);
DISTILL_API void distill_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N, int C, float eps);
DISTILL_API void distill_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight, const float *rstd, int N, int C);
DISTILL_API void distill_rope_forward(float *x, const int32_t *pos, int N, int nh, int hs, float theta);   /* in place */
DISTILL_API void distill_rope_backward(float *dx, const int32_t *pos, int N, int nh, int hs, float theta); /* in place */
/* RoPE with a config's frequencies (rope_theta, HS, rope_scaling): inv_freq gets HS/2 values
   as transformers computes them; the _freqs variants rotate with given frequencies. */
DISTILL_API void distill_rope_inv_freq(const distill_config *cfg, double *inv_freq);
DISTILL_API void distill_rope_forward_freqs(float *x, const int32_t *pos, int N, int nh, int hs, const double *inv_freq);
DISTILL_API void distill_rope_backward_freqs(float *dx, const int32_t *pos, int N, int nh, int hs, const double *inv_freq);
/* Causal grouped-query attention with online softmax. q (B,T,NH,HS), k/v (B,T,NKV,HS),
   out (B,T,NH,HS), lse (B,NH,T). lengths (B) or NULL; kstart (B,T) or NULL: the first key
   position a query may see (the start of its packed segment). */
DISTILL_API void distill_attention_forward(float *out, float *lse, const float *q, const float *k,
                                           const float *v, const int *lengths, const int *kstart,
                                           int B, int T, int NH, int NKV, int HS);
DISTILL_API void distill_attention_backward(float *dq, float *dk, float *dv, const float *dout,
                                            const float *q, const float *k, const float *v,
                                            const float *out, const float *lse, const int *lengths,
                                            const int *kstart, int B, int T, int NH, int NKV, int HS);
DISTILL_API void distill_swiglu_forward(float *out, const float *gate, const float *up, size_t n);
DISTILL_API void distill_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, size_t n);
/* ===================================================================================== */
/* API 7. TRAINER: checksums, logit distillation, top-k teacher cache, model files,      */
/* the training loop, data parallelism                                                   */
/* ===================================================================================== */
/* A trainer turns a model (section 6) and a batch source (the loader, section 5) into a run:
   steps to the end of max_steps or epochs, evaluation, checkpoints that resume bit-exactly,
   metrics.jsonl, and with a teacher (in process or as a top-k cache) logit distillation. The
   parts it is made of come first (checksums for the files, the distillation loss, the cache,
   the distillation head, model files); the training loop itself is at the end. The trainer
   borrows the model and the source: free it first.

       distill_train_config tc = distill_train_default();
       tc.epochs = 2; tc.optim.lr = 1e-3f; tc.out_dir = "out";
       tc.kd = teacher != NULL;                           logit distillation needs kd = 1
       distill_trainer *tr = distill_trainer_create(student, &src.src, NULL, &tc, &err);
       if (tr && teacher && distill_trainer_set_teacher(tr, teacher, &err) != 0) ...
       if (!tr || distill_trainer_run(tr, &err) != 0) fprintf(stderr, "%s\n", err.msg);
       distill_trainer_free(tr);                                                             */

/* ---- checksums ------------------------------------------------------------------------- */
/* CRC-32 (IEEE 802.3, the zlib/PNG one), incremental: crc = distill_crc32(0, p, n) then feed
   more with the returned value. SHA-256 (FIPS 180-4) for `distill info`. */
DISTILL_API uint32_t distill_crc32(uint32_t crc, const void *data, size_t n);
typedef struct distill_sha256 {
    uint32_t h[8];
    uint64_t len;          /* bytes hashed so far */
    unsigned char buf[64];
    size_t fill;
} distill_sha256;
DISTILL_API void distill_sha256_init(distill_sha256 *s);
DISTILL_API void distill_sha256_update(distill_sha256 *s, const void *data, size_t n);
DISTILL_API void distill_sha256_final(distill_sha256 *s, unsigned char out[32]);
/* out: 65 bytes, lowercase hex + NUL */
DISTILL_API void distill_sha256_hex(const void *data, size_t n, char out[65]);

/* ---- logit (token-level) distillation -----------------------------------------------------

   Per supervised position with student logits s (V) and teacher logits t (V), temperature tau:
       q = softmax(s / tau)   p = softmax(t / tau)
       D_beta(p, q) = KL(p || q)                                  beta = 0  (forward KL)
                    = KL(q || p)                                  beta = 1  (reverse KL)
                    = beta KL(p || m) + (1-beta) KL(q || m),      m = beta p + (1-beta) q
   the generalised Jensen-Shannon divergence of GKD (Agarwal et al. 2024) with TRL's convention
   (GKDTrainer: beta = 0 is forward KL, beta = 1 reverse KL, beta = 0.5 the symmetric JSD).
       loss = alpha * tau^2 * D_beta  +  (1 - alpha) * CE(softmax(s), target)
   tau^2 keeps the gradient scale of the soft term independent of tau (Hinton et al. 2015); the
   CE term always uses tau = 1. alpha = 1 is pure distillation, alpha = 0 plain SFT.

   From a top-k teacher cache the teacher is known only on k tokens plus the tail mass; the
   divergence is then taken between the two distributions collapsed onto k + 1 bins (the k
   tokens and "everything else"). At tau = 1 that is exact for the coarse-grained distributions;
   at tau != 1 the teacher's tail is treated as one pseudo-token of log-probability log(tail). */
typedef struct distill_kd_config {
    float alpha;          /* weight of the distillation term, in [0, 1] (default 1) */
    float beta;           /* 0 forward KL ... 1 reverse KL (default 0)             */
    float temperature;    /* tau > 0 (default 1)                                    */
} distill_kd_config;
DISTILL_API distill_kd_config distill_kd_default(void);
DISTILL_API int distill_kd_validate(const distill_kd_config *kc, distill_error *err);

/* What one position contributes (before its loss weight). */
typedef struct distill_kd_result {
    double loss;          /* alpha tau^2 D + (1-alpha) CE */
    double kd;            /* D_beta (without tau^2)       */
    double ce;            /* -log softmax(s)[target]      */
    double entropy;       /* entropy of softmax(s), nats  */
    int argmax;           /* argmax of s                  */
} distill_kd_result;

/* The loss of ONE position, in double, with its gradient d loss / d s written to grad (V
   doubles, may be NULL). The teacher is either full logits t (V) with topk_ids == NULL, or a
   top-k entry: topk_ids (k), topk_logp (k log-probabilities at tau = 1), tail_logp = log of the
   remaining mass (-INFINITY when none), k <= 4096. target < 0 drops the CE term. scratch is
   unused (kept for compatibility; may be NULL): the function allocates its work space.
   This is the reference the fused chunked head and the gradient checks build on. */
DISTILL_API distill_kd_result distill_kd_position(const double *s, int V, const double *t,
                                                  const int32_t *topk_ids, const float *topk_logp,
                                                  int k, float tail_logp, int32_t target,
                                                  const distill_kd_config *kc, double *grad,
                                                  double *scratch);

/* ---- top-k teacher cache --------------------------------------------------------------------
   A file of the teacher's k most likely tokens and their log-probabilities at every supervised
   position (target >= 0) of every row of a dataset, plus the tail mass, computed once and used by
   many student runs. Layout (little-endian):
       "DSTLTOPK" | u32 version (1) | u32 k | u32 vocab_size | u32 reserved
       | u64 n_rows | u64 n_positions
       | n_rows x { u64 first_position, u32 n_positions, u32 n_tokens, u64 row_hash }
       | n_positions x { i32 ids[k], f32 logp[k], f32 tail_logp }
       | u32 crc32 of everything before it
   row_hash is FNV-1a 64 over the row's tokens and targets, so a cache used with another dataset
   (or a reordered one) is refused row by row. Built once, used by every student run:

       distill_topk_cache_build(teacher, ds, 32, 8, "teacher.topk", &err);    k 32, 8 rows a pass
       distill_topk_cache *c = distill_topk_cache_open("teacher.topk", V, distill_dataset_size(ds),
                                                       &err);
       if (c) distill_trainer_set_cache(tr, c, &err);            a trainer made with tc.kd = 1 */
typedef struct distill_topk_writer distill_topk_writer;
typedef struct distill_topk_cache distill_topk_cache;

DISTILL_API distill_topk_writer *distill_topk_writer_open(const char *path, int k, int vocab_size,
                                                          distill_error *err);
/* Append one row: tokens/targets (T), the teacher's logits (T,V) for it (rows of unsupervised
   positions are ignored). Rows must come in dataset order. */
DISTILL_API int distill_topk_writer_add_row(distill_topk_writer *w, const int32_t *tokens,
                                            const int32_t *targets, int T, const float *logits,
                                            distill_error *err);
DISTILL_API int distill_topk_writer_close(distill_topk_writer *w, distill_error *err); /* commits atomically */
DISTILL_API void distill_topk_writer_abort(distill_topk_writer *w);

/* Open and validate a cache (sizes against the file size, checksum, vocab). expect_vocab and
   expect_rows are checked when > 0. */
DISTILL_API distill_topk_cache *distill_topk_cache_open(const char *path, int expect_vocab,
                                                        int64_t expect_rows, distill_error *err);
DISTILL_API void distill_topk_cache_free(distill_topk_cache *c);
DISTILL_API int  distill_topk_cache_k(const distill_topk_cache *c);
DISTILL_API int  distill_topk_cache_vocab(const distill_topk_cache *c);
DISTILL_API int64_t distill_topk_cache_rows(const distill_topk_cache *c);
/* Check row `row` against the tokens/targets the trainer is about to use; 0 ok, -1 with a
   message naming the row when the cache was made for different data. */
DISTILL_API int distill_topk_cache_check_row(const distill_topk_cache *c, int64_t row,
                                             const int32_t *tokens, const int32_t *targets, int T,
                                             distill_error *err);

/* ---- the distillation head loss -------------------------------------------------------------
   A distill_head_loss (section 6, Level 2) that computes the loss above chunk by chunk inside
   the student's fused LM head. The teacher signal for a batch is set before each forward:
   - in-process teacher: distill_kd_head_run_teacher() runs the teacher's layers on the batch
     and keeps its final hidden states at the supervised positions only (n_supervised * C_teacher
     floats); the teacher's logits are computed chunk by chunk inside the student's head, just
     before the loss needs them, so teacher logits for at most one head chunk (DISTILL_HEAD_CHUNK
     positions * V) exist at a time, never n_supervised * V;
   - cache: distill_kd_head_set_cache_rows() gives the dataset row of each batch row. */
typedef struct distill_kd_head distill_kd_head;
DISTILL_API distill_kd_head *distill_kd_head_create(const distill_kd_config *kc, int V,
                                                    distill_error *err);
DISTILL_API void distill_kd_head_free(distill_kd_head *h);
DISTILL_API distill_head_loss distill_kd_head_loss(distill_kd_head *h);
/* Fails with a clear message when the teacher's vocabulary differs from the student's. */
DISTILL_API int distill_kd_head_run_teacher(distill_kd_head *h, distill_model *teacher,
                                            const distill_batch *batch, distill_error *err);
DISTILL_API int distill_kd_head_set_cache_rows(distill_kd_head *h, const distill_topk_cache *c,
                                               const int64_t *rows, const distill_batch *batch,
                                               distill_error *err);

/* ---- model files: one loader for every format, then the writers ------------------------------
   Any checkpoint or export in, any format out, e.g. a Hugging Face folder for transformers:

       distill_tokenizer *tok;
       distill_model *m = distill_model_load("out/ckpt-1000.dstl", 1, 4096, &tok, &err);
       if (m && distill_safetensors_save_sharded(m, "hf", "BF16", (int64_t)5 << 30, &err) == 0
             && tok)                                                    hf/ is created if needed
           distill_hf_save_tokenizer(tok, distill_chat_template_get("chatml"), "hf", &err); */
/* Load any model file the library reads, format detected from the content: the library's own
   checkpoint, safetensors (+ config.json beside it), or a llama2.c .bin. A Hugging Face folder
   (model.safetensors.index.json or model.safetensors in it), an index file, or one shard
   ("model-00002-of-00004.safetensors") loads the whole sharded checkpoint: every tensor exactly
   once, each shard bounds-checked; config.json features the model lacks (MoE, sliding window,
   quantization, ...) are refused by field name. Llama, Qwen2, Qwen3 (q/k norm), any head_dim,
   rope_scaling linear or llama3. The model is created with the given capacity. If tok_out is
   non-NULL and the model carries a tokenizer (a distill checkpoint written from a model with
   distill_model_set_tokenizer) or one lies beside it (tokenizer.json / tokenizer.bin), it is
   loaded too, else *tok_out = NULL. The gradient buffer is not allocated (m->grads NULL) until
   training needs it, so a model loaded to generate, evaluate, export or teach takes half the
   memory of a created one. */
DISTILL_API distill_model *distill_model_load(const char *path, int max_batch, int max_seq,
                                              distill_tokenizer **tok_out, distill_error *err);
/* The same with the weights held in BF16 (distill_model_to_bf16, API 6), for inference and
   teachers. Safetensors (one file or a sharded folder) are read straight into BF16 (BF16 tensors
   as they are, F32/F16 rounded), so the FP32 weights never exist; the library's checkpoints and
   llama2.c files are read in FP32 and converted (peak: 1.5x the FP32 weights). */
DISTILL_API distill_model *distill_model_load_bf16(const char *path, int max_batch, int max_seq,
                                                   distill_tokenizer **tok_out, distill_error *err);

/* Own checkpoint format (".dstl"): "DSTLCKPT" | u32 version | u32 0 | u64 json_len | u64 data_len
   | u32 crc32(json + data) | u32 crc32(the 36 bytes before it) | json | data. The JSON holds the
   model config, the list of binary sections {name, offset, size} into data, and (for training
   checkpoints) the whole training state; sections hold the parameters ("params"), AdamW moments
   ("adam_m", "adam_v") and opaque blobs such as the data loader's cursor. */
typedef struct distill_ckpt_section {
    const char *name;
    const void *data;
    size_t size;
} distill_ckpt_section;

/* Write m (parameters; with_optimizer: also m->m and m->v when allocated), the JSON object text
   `train_json` (or NULL) stored under "train", and extra sections, atomically. */
DISTILL_API int distill_checkpoint_write(const char *path, const distill_model *m, int with_optimizer,
                                         const char *train_json, const distill_ckpt_section *extra,
                                         int n_extra, distill_error *err);

/* What a model's checkpoints carry besides the weights: its tokenizer (serialised, so a
   checkpoint is self-contained: distill_model_load gives it back through tok_out, before any
   tokenizer file beside the checkpoint) and the name of its chat template (NULL: none). Stored
   as the sections "tokenizer" and "chat_template" by every later distill_checkpoint_write of m;
   a model loaded from such a checkpoint keeps them. Checkpoints without them load as before. */
DISTILL_API int distill_model_set_tokenizer(distill_model *m, const distill_tokenizer *tok,
                                            const char *chat_template, distill_error *err);
/* The chat template name the model carries, or NULL. */
DISTILL_API const char *distill_model_chat_template(const distill_model *m);
/* 1 if the model carries a tokenizer. */
DISTILL_API int distill_model_has_tokenizer(const distill_model *m);

/* A checkpoint read back and verified (magic, version, sizes against the file size, checksums). */
typedef struct distill_checkpoint {
    char *path;
    unsigned char *file;
    size_t file_size;
    distill_json *json;                 /* the whole header document */
    const distill_json *train;          /* its "train" member or NULL */
    distill_config cfg;
    const unsigned char *data;
    size_t data_size;
} distill_checkpoint;
DISTILL_API distill_checkpoint *distill_checkpoint_read(const char *path, distill_error *err);
DISTILL_API void distill_checkpoint_free(distill_checkpoint *ck);
/* A section's bytes (NULL when absent). */
DISTILL_API const void *distill_checkpoint_section(const distill_checkpoint *ck, const char *name,
                                                   size_t *size);
/* Copy params (and with_optimizer: the AdamW moments, allocating m->m/m->v) into a model of the
   same config. */
DISTILL_API int distill_checkpoint_restore(const distill_checkpoint *ck, distill_model *m,
                                           int with_optimizer, distill_error *err);

/* Hugging Face safetensors: <path> gets the tensors (F32, HF Llama/Qwen2 names) and config.json
   is written beside it (LlamaForCausalLM, or Qwen2ForCausalLM when qkv_bias). Import reads
   F32/F16/BF16 and config.json from the same directory (through distill_model_load). */
DISTILL_API int distill_safetensors_save(const distill_model *m, const char *path, distill_error *err);
/* The same with the tensors stored as "F32", "F16" or "BF16" (rounded to nearest, ties to even;
   half the file size). F16 fails, naming the tensor, if a weight is beyond its range (65504). */
DISTILL_API int distill_safetensors_save_as(const distill_model *m, const char *path, const char *dtype,
                                            distill_error *err);
/* Hugging Face's sharded layout in folder `dir` (created if needed): model-0000i-of-0000N.safetensors
   of at most max_shard_bytes of tensor data each (a larger tensor gets its own shard),
   model.safetensors.index.json and config.json; a single shard is written as model.safetensors.
   What an earlier export into dir left in the other layout (an index, model.safetensors, shards
   of another count) is removed, so the folder loads what was written last. distill_model_load
   reads the folder, the index, or any one shard's path. */
DISTILL_API int distill_safetensors_save_sharded(const distill_model *m, const char *dir, const char *dtype,
                                                 int64_t max_shard_bytes, distill_error *err);
/* The tokenizer half of a Hugging Face folder, so AutoTokenizer.from_pretrained(dir) and
   apply_chat_template work: dir/tokenizer.json (distill_tokenizer_save_hf), dir/tokenizer_config.json
   (eos_token = the template's end of turn, pad_token, added_tokens_decoder, and chat_template =
   distill_chat_template_jinja(tmpl)) and dir/generation_config.json (eos_token_id: the end of turn
   and the tokenizer's eos). tmpl NULL: "chatml". Each file is written atomically. distill_model_load
   of such a folder reads the tokenizer back and, when chat_template is a built-in template's,
   that template's name (distill_model_chat_template). */
DISTILL_API int distill_hf_save_tokenizer(const distill_tokenizer *tok, const distill_chat_template *tmpl,
                                          const char *dir, distill_error *err);
/* llama2.c legacy .bin (7 x int32 header, weights in llama2.c order, RoPE rows permuted back to
   the interleaved-pairs convention). Needs rope_theta 10000, norm_eps 1e-5, no qkv bias. */
DISTILL_API int distill_llama2c_save(const distill_model *m, const char *path, distill_error *err);
/* "checkpoint", "safetensors", "llama2c" or NULL (with a message) for an unreadable file. */
DISTILL_API const char *distill_model_file_format(const char *path, distill_error *err);
/* SHA-256 (hex) of the parameter buffer as little-endian float32 in size-table order. */
DISTILL_API void distill_model_sha256(const distill_model *m, char out[65]);
/* Write cfg as a JSON object (no trailing newline). */
DISTILL_API void distill_config_write_json(FILE *f, const distill_config *cfg);

/* ---- the training loop ------------------------------------------------------------------------
   A batch source hands the trainer batches and can save/restore its position exactly (the data
   layer's loader is one; tests and custom pipelines write their own). */
typedef struct distill_batch_source {
    void *ctx;
    /* Next batch (arrays valid until the next call). *rows / *n_rows (may be left NULL/0): the
       dataset rows of the batch, for the top-k cache. 0 ok, -1 error. */
    int (*next)(void *ctx, distill_batch *b, const int64_t **rows, int *n_rows, distill_error *err);
    /* Position in the data as three integers (e.g. epoch, rows served, a data fingerprint). */
    void (*get_state)(void *ctx, int64_t state[3]);
    int  (*set_state)(void *ctx, const int64_t state[3], distill_error *err);
    /* Epochs completed so far, fractional (for epoch-based stopping and logs). */
    double (*epoch)(void *ctx);
    int64_t rows_per_epoch;          /* for estimating the number of steps of an epoch run */
    int64_t batches_per_epoch;       /* > 0: batches in one epoch (exact when packing puts several
                                        rows in a sequence; rows_per_epoch / batch_rows is not) */
} distill_batch_source;

typedef struct distill_train_config {
    int64_t max_steps;        /* > 0: optimizer steps to train; else `epochs` decides        */
    double epochs;            /* used when max_steps <= 0 (default 1)                         */
    int batch_rows;           /* rows per micro-batch, for the step estimate of epoch runs    */
    int grad_accum;           /* micro-batches per optimizer step (default 1); the loss is
                                 normalised over the supervised weight of all of them          */
    distill_optim_config optim; /* total_steps is set by the trainer                          */
    int64_t eval_every;       /* evaluate on the held-out source every N steps (0: never)     */
    int64_t eval_batches;     /* batches per evaluation (default 16)                         */
    const char *out_dir;      /* checkpoints ckpt-<step>.dstl and metrics.jsonl (NULL: none)  */
    int64_t save_every;       /* checkpoint period in steps (0: only at the end)              */
    double save_every_seconds;/* also a checkpoint when this long has passed since the last one
                                 (default 600: a crash loses at most ~10 minutes; 0: off)       */
    int no_lock;              /* 0 (default): the trainer holds distill_dir_lock(out_dir) from
                                 resume/run to free, so two trainers never share a folder; 1:
                                 the caller holds that lock itself (or wants none)              */
    volatile sig_atomic_t *stop_flag; /* optional, owned by the caller: when *stop_flag becomes
                                 nonzero (e.g. set by the caller's SIGINT/SIGTERM handler; the
                                 library installs no handler), distill_trainer_run finishes the
                                 current step, writes a checkpoint and returns 0 early, with
                                 distill_trainer_stopped() = 1. Under data parallelism the flag
                                 travels with the step's all-reduce: a flag raised on any rank
                                 stops every rank after the same step, and rank 0 saves.       */
    int keep_last;            /* checkpoints kept (default 3)                                 */
    const char *metrics_path; /* JSONL metrics (NULL: <out_dir>/metrics.jsonl if out_dir)     */
    int progress;             /* 1 (default): progress bar on a TTY, plain lines otherwise    */
    int64_t log_every;        /* plain-line period when stdout is not a TTY (default 10)      */
    int kd;                   /* 0: SFT (cross-entropy); 1: logit distillation                */
    distill_kd_config kdc;
    uint64_t seed;            /* the trainer's RNG (saved and restored with checkpoints)      */
    const char *config_json;  /* the whole run's configuration as a JSON object, stored in
                                 every checkpoint (NULL: none)                                 */
    const char *manifest_json;/* the subset manifest as JSON, stored in checkpoints           */
    int precision;            /* DISTILL_PRECISION_FP32 (default) or _BF16: the trainer sets
                                 the student's (distill_model_set_precision)                   */
    size_t comm_bucket_bytes; /* data parallel: gradient all-reduce bucket (0: 4 MiB)        */
    int comm_overlap;         /* 1: all-reduce bucket by bucket (MPI_Iallreduce) while the
                                 backward pass runs; 0 (default): one blocking all-reduce after
                                 it. Overlap only pays where the transport progresses on its own
                                 (a NIC, a progress thread); with every core computing it was
                                 slower (bench/RESULTS.md). The results are bit-identical.      */
} distill_train_config;
DISTILL_API distill_train_config distill_train_default(void);

/* What the per-step callback and the metrics log see. */
typedef struct distill_step_info {
    int64_t step, total_steps;      /* step counts completed optimizer steps (1-based here) */
    double epoch, loss, accuracy, entropy, grad_norm, lr;
    int64_t tokens_seen;            /* valid positions processed so far */
    double tokens_per_sec, elapsed, eta;
    double eval_loss;               /* NAN unless this step evaluated */
} distill_step_info;
/* Return nonzero to stop training after this step. */
typedef int (*distill_step_callback)(void *ctx, const distill_step_info *info);

/* A trainer for `student` on the batch source `train` (eval: the held-out source, or NULL for
   no evaluation). It keeps the model and the sources' ctx, which must outlive it; tc is copied.
   Set a teacher or cache, a callback, a communicator, or resume, before the first step. */
typedef struct distill_trainer distill_trainer;
DISTILL_API distill_trainer *distill_trainer_create(distill_model *student, const distill_batch_source *train,
                                                    const distill_batch_source *eval,
                                                    const distill_train_config *tc, distill_error *err);
DISTILL_API void distill_trainer_free(distill_trainer *t);
/* Logit distillation from a teacher in process, or from a top-k cache (one of the two); the
   trainer must have been created with tc.kd = 1. */
DISTILL_API int  distill_trainer_set_teacher(distill_trainer *t, distill_model *teacher, distill_error *err);
DISTILL_API int  distill_trainer_set_cache(distill_trainer *t, const distill_topk_cache *c, distill_error *err);
DISTILL_API void distill_trainer_set_callback(distill_trainer *t, distill_step_callback fn, void *ctx);
/* Restore from a checkpoint file, or from the newest checkpoint in a directory. A corrupt one
   is refused with a message naming it and the previous intact checkpoint, if any. */
DISTILL_API int  distill_trainer_resume(distill_trainer *t, const char *path, distill_error *err);
/* One optimizer step (grad_accum micro-batches). *info may be NULL. */
DISTILL_API int  distill_trainer_step(distill_trainer *t, distill_step_info *info, distill_error *err);
/* Train to the end (max_steps or epochs), with evaluation, checkpoints, logs and callback. */
DISTILL_API int  distill_trainer_run(distill_trainer *t, distill_error *err);
/* Mean cross-entropy over up to eval_batches batches of the eval source (from its start). */
DISTILL_API int  distill_trainer_evaluate(distill_trainer *t, distill_stats *out, distill_error *err);
/* Write a full training checkpoint (atomically) to path. */
DISTILL_API int  distill_trainer_save(distill_trainer *t, const char *path, distill_error *err);
DISTILL_API int64_t distill_trainer_steps_done(const distill_trainer *t);
DISTILL_API int64_t distill_trainer_total_steps(const distill_trainer *t);
/* 1 if the last distill_trainer_run ended early at a stop request (stop_flag on any rank, or
   the step callback) rather than at the last step. */
DISTILL_API int distill_trainer_stopped(const distill_trainer *t);
/* The path of the checkpoint this trainer wrote last ("" if none yet): what to resume from. */
DISTILL_API const char *distill_trainer_last_checkpoint(const distill_trainer *t);

/* The data layer's loader as a batch source (its cursor is the saved position; the dataset
   row indices of each batch feed the top-k cache). s must outlive the trainer. */
typedef struct distill_loader_source {
    distill_batch_source src;   /* pass &s.src to distill_trainer_create */
    distill_loader *loader;
    int64_t n_rows;
} distill_loader_source;
DISTILL_API void distill_loader_source_init(distill_loader_source *s, distill_loader *L,
                                            const distill_dataset *ds);
/* Batches (and, in *tokens if non-NULL, tokens) in one epoch of ds with loader options o, from
   a dry run of the loader: what an epoch- or token-budgeted schedule needs. 0 if ds is empty. */
DISTILL_API int64_t distill_loader_epoch_batches(const distill_dataset *ds, const distill_loader_options *o,
                                                 int64_t *tokens);

/* Compute a top-k teacher cache for every row of a dataset, in dataset order (rows as the loader
   builds them: targets are the next supervised tokens). batch_rows rows per teacher forward. */
DISTILL_API int distill_topk_cache_build(distill_model *teacher, const distill_dataset *ds, int k,
                                         int batch_rows, const char *path, distill_error *err);

/* ---- data parallelism and distributed runs ----------------------------------------------------
   A communicator is a small table of collectives the trainer calls; it knows nothing about how
   they are carried out. distill_comm_local() is the one-process communicator (rank 0 of 1).
   With DISTILL_MPI defined (and -lmpi, e.g. `make MPI=1` or mpicc), distill_comm_mpi() wraps an
   MPI communicator; users with another transport (NCCL, gloo, sockets) fill in the table.

   Data-parallel training (distill_trainer_set_comm): every rank reads the SAME global batch from
   its own batch source (same data, same seed), keeps rows [B*r/P, B*(r+1)/P) of each micro-batch,
   and runs forward/backward on them with grad_scale = 1/(supervised weight of the global batch),
   so the summed gradient is exactly the gradient of the global batch's mean loss. Gradients are
   summed with one allreduce after the backward pass, or (comm_overlap) in buckets started layer
   by layer while the backward pass is still running, then every rank clips and applies AdamW to
   identical gradients, so the weights stay identical without ever being broadcast. Rank 0 alone
   writes checkpoints, metrics and progress; resume reads the same checkpoint on every rank.
   The calls (the quick start at the top has them in place): distill_mpi_init before anything
   else, distill_trainer_set_comm right after distill_trainer_create, distill_mpi_finalize. */
typedef enum distill_dtype { DISTILL_F32 = 0, DISTILL_F64 = 1, DISTILL_I64 = 2 } distill_dtype;

typedef struct distill_comm distill_comm;
struct distill_comm {
    int rank, size;
    void *ctx;                 /* the transport's own state */
    const char *name;          /* "local", "mpi", ... for logs */
    /* Sum n elements of buf across ranks, in place, blocking. 0 ok, -1 error (message in err). */
    int (*allreduce)(const distill_comm *c, void *buf, size_t n, distill_dtype type, distill_error *err);
    /* Optional (may be NULL): start a non-blocking float sum in place; *req is waited on with
       wait(), and test() may be called meanwhile to let the transport make progress. */
    int (*iallreduce)(const distill_comm *c, float *buf, size_t n, void **req, distill_error *err);
    int (*test)(const distill_comm *c, void *req);
    int (*wait)(const distill_comm *c, void *req, distill_error *err);
    int (*barrier)(const distill_comm *c, distill_error *err);
    /* Copy `bytes` of buf from rank `root` to every rank. */
    int (*bcast)(const distill_comm *c, void *buf, size_t bytes, int root, distill_error *err);
    /* End the whole job (every rank) with exit status `code`: used after an unrecoverable error
       on one rank, so the others do not wait forever in a collective. */
    void (*abort)(const distill_comm *c, int code);
};
DISTILL_API const distill_comm *distill_comm_local(void);

/* Number of processes the environment says were launched together (OMPI_COMM_WORLD_SIZE,
   PMI_SIZE, MV2_COMM_WORLD_SIZE, or PMIX_RANK with SLURM_STEP_NUM_TASKS; 1 when none): lets a build without DISTILL_MPI refuse to run as N
   uncoordinated copies under mpirun. *rank gets this process's rank (may be NULL). */
DISTILL_API int distill_launcher_size(int *rank);

/* Train data-parallel over c (NULL or a size-1 communicator: one process). Call before the first
   step; c must outlive the trainer. */
DISTILL_API int distill_trainer_set_comm(distill_trainer *t, const distill_comm *c, distill_error *err);
/* Time spent in gradient all-reduce (seconds, total) and bytes reduced per optimizer step. */
DISTILL_API void distill_trainer_comm_stats(const distill_trainer *t, double *allreduce_seconds,
                                            double *wait_seconds, size_t *bytes_per_step);
/* distill_topk_cache_build over the ranks of c: rank r takes every P-th block of batch_rows rows
   and writes "<path>.part<r>of<P>"; rank 0 joins the parts in dataset order into path (the
   same bytes as a one-process build) and removes them. Collective: every rank calls it with the
   same arguments; every rank returns the same status. */
DISTILL_API int distill_topk_cache_build_comm(distill_model *teacher, const distill_dataset *ds, int k,
                                              int batch_rows, const char *path, const distill_comm *c,
                                              distill_error *err);

#ifdef DISTILL_MPI
/* Initialise MPI (MPI_Init_thread, FUNNELED: only the calling thread talks to MPI) unless it
   already is, and describe MPI_COMM_WORLD in *out. Sets the worker threads of each rank to
   cores / ranks-on-this-node unless DISTILL_THREADS is set. */
DISTILL_API int  distill_mpi_init(int *argc, char ***argv, distill_comm *out, distill_error *err);
/* Describe an existing MPI communicator (no initialisation). */
DISTILL_API int  distill_comm_mpi(distill_comm *out, MPI_Comm comm, distill_error *err);
DISTILL_API void distill_mpi_finalize(void);
#endif
/* ===================================================================================== */
/* API 8. GENERATION AND EVALUATION: metrics, pass@k, KV cache, sampling, evaluating     */
/* ===================================================================================== */
/* What a trained model is for: generating answers and measuring them. The metrics come first
   because they apply to any generations, also ones made elsewhere (vLLM, transformers) and
   read from a file; then the KV-cached generator, sampling, distill_generate, and
   distill_eval_model, which does it all for an eval set: prompts, samples, verification,
   scores.

       distill_eval_model_options eo = distill_eval_model_options_default();
       eo.n_samples = 4; eo.gen.temperature = 0.6f; eo.out_jsonl = "generations.jsonl";
       if (distill_eval_model(m, tok, "eval.jsonl", &eo, stdout, &err) != 0) ...
                                               results JSON on stdout, every sample in the file */

/* ---- Evaluation metrics -----------------------------------------------------------------

   The paper's questions are "did the model finish?", "did it think?", "is the code right?".
   Every metric below is defined on one generation (the text the model produced after the
   prompt) and then averaged; the same definitions serve generations made here and generations
   made elsewhere (vLLM, transformers) read from JSONL, so models can be compared fairly.

   Think markers recognised: <think> ... </think> and <|begin_of_thought|> ... <|end_of_thought|>.
   Some chat templates put the opening tag in the PROMPT ("<|im_start|>assistant\n<think>\n");
   the analysis therefore also looks at the prompt: an opening tag in the prompt that the prompt
   does not close counts as opened. Scoring a file of generations made elsewhere:

       distill_eval_file_options fo = {0};                     all defaults: the "text" field
       distill_eval_generations_file("vllm_samples.jsonl", &fo, stdout, &err);   results JSON */

/* Why a generation ended. STOP: end-of-turn, EOS or a stop string before the token cap.
   LENGTH: it hit the cap (max new tokens or the context). UNKNOWN: read from a file that did
   not say (such samples are left out of completion_rate's denominator). */
typedef enum distill_finish {
    DISTILL_FINISH_UNKNOWN = 0, DISTILL_FINISH_STOP = 1, DISTILL_FINISH_LENGTH = 2
} distill_finish;
DISTILL_API const char *distill_finish_name(distill_finish f);   /* "unknown" "stop" "length" */
/* "stop", "eos", "end_turn", "stop_sequence" -> STOP; "length", "max_tokens" -> LENGTH;
   anything else (or NULL) -> UNKNOWN. */
DISTILL_API distill_finish distill_finish_parse(const char *s);

/* Unbiased pass@k for one problem with n samples of which c pass (Chen et al. 2021):
       pass@k = 1 - C(n-c, k) / C(n, k) = 1 - prod_{i=n-c+1..n} (1 - k/i)
   The product form needs no big binomials. When n - c < k every k-subset holds a pass: 1.
   Returns NaN for invalid input (k < 1, k > n, c < 0, c > n). */
DISTILL_API double distill_pass_at_k(int64_t n, int64_t c, int64_t k);

/* The structure of one generation. Offsets are bytes into the generated text. */
typedef struct distill_gen_analysis {
    int think_open;         /* an opening marker in the text, or left open by the prompt      */
    int think_close;        /* a closing marker in the text                                   */
    int think_both;         /* an opening marker followed (later) by a closing marker         */
    int open_in_prompt;     /* the opening marker came from the prompt                        */
    size_t think_begin, think_end; /* the think span [begin,end): after the opening marker up
                               to the closing one, or to the end of the text when unclosed;
                               0,0 when think_open == 0                                     */
    int has_code;           /* a fenced code block was found (see distill_extract_code)       */
    int code_closed;        /* ...and it has its closing fence                               */
    size_t code_begin, code_end;   /* the block's content, fences and language tag excluded   */
    size_t lang_begin, lang_end;   /* the language tag after the opening fence ("python")     */
    int strict;             /* a closing think marker followed by a complete fenced block     */
} distill_gen_analysis;

/* Analyse text[0..len) generated after prompt[0..prompt_len) (prompt may be NULL). */
DISTILL_API void distill_analyze_generation(const char *prompt, size_t prompt_len,
                                            const char *text, size_t len,
                                            distill_gen_analysis *out);

/* Code extraction as LiveCodeBench does it for reasoning models: the LAST fenced block after the
   LAST closing think marker. Without any think marker the whole text is searched; with a think
   block that never closes there is no answer yet, so no code. A fence is a line starting with
   ``` (up to 3 spaces of indent); the rest of that line is the language tag; the block ends at
   the next line starting with ``` or at a ``` ending the last line. An unclosed final block
   (truncated output) yields its content to the end of the text with *closed = 0.
   Returns 1 and the content span [*begin, *end) if a block was found, else 0. */
DISTILL_API int distill_extract_code(const char *prompt, size_t prompt_len, const char *text,
                                     size_t len, size_t *begin, size_t *end, int *closed);

/* Length of a span in tokens: with a tokenizer, the number of ids text[0..len) encodes to
   (special tokens allowed); without one (tok == NULL) the fallback is the number of
   whitespace-separated words, and the results say "think_tokens_unit": "words". */
DISTILL_API int64_t distill_count_tokens(const distill_tokenizer *tok, const char *text, size_t len);

/* One scored sample, the input of the aggregate metrics. */
typedef struct distill_sample_result {
    int64_t problem;        /* index of the problem this sample answers (0-based)            */
    distill_finish finish;
    int think_open, think_close, think_both, strict;  /* from distill_gen_analysis           */
    double think_tokens;    /* length of the think span; < 0 when think_open == 0            */
    int pass;               /* 1 pass, 0 fail, -1 not verified                                */
} distill_sample_result;

/* Fill a sample result from an analysis (problem, finish, think_tokens, pass set by caller). */
DISTILL_API void distill_sample_result_from_analysis(distill_sample_result *r,
                                                     const distill_gen_analysis *a);

/* Aggregates over a set of samples. A rate whose denominator is 0 is NaN (written as null).
     completion_rate        STOP / (STOP + LENGTH)        (UNKNOWN samples left out)
     strict_completion_rate share of all samples not cut by the cap (finish != LENGTH) whose
                            text has a closing think marker followed by a complete fenced block
     think_open_rate        share with an opening marker (prompt or text)
     think_close_rate       share with a closing marker
     think_both_rate        share with an opening marker followed by a closing marker
     think_tokens_mean/median  over the samples with an opening marker: the tokens from the
                            opening marker to the closing one (or to the end when unclosed)
   With a verifier (every sample has pass >= 0):
     pass_at_1              mean over problems of c/n
     pass_at_k[j]           mean over problems with n >= k[j] of the unbiased pass@k[j]
     accuracy_completed     passes / samples with finish == STOP
     accuracy_truncated     passes / samples with finish == LENGTH                        */
#define DISTILL_EVAL_MAX_K 16
typedef struct distill_eval_metrics {
    int64_t n, n_problems, n_finish_known, n_completed, n_truncated, n_think;
    double completion_rate, strict_completion_rate;
    double think_open_rate, think_close_rate, think_both_rate;
    double think_tokens_mean, think_tokens_median;
    int verified;
    double pass_at_1;
    int nk;
    int k[DISTILL_EVAL_MAX_K];
    double pass_at_k[DISTILL_EVAL_MAX_K];
    int64_t pass_at_k_problems[DISTILL_EVAL_MAX_K];   /* problems with n >= k that entered it */
    double accuracy_completed, accuracy_truncated;
} distill_eval_metrics;

/* Compute the aggregates of samples s[0..n) (in any order; problem ids need not be dense).
   ks[0..nk) are the k of pass@k (nk <= DISTILL_EVAL_MAX_K). 0 ok, -1 on invalid input. */
DISTILL_API int distill_eval_compute(const distill_sample_result *s, size_t n, const int *ks,
                                     int nk, distill_eval_metrics *out, distill_error *err);

/* Write the results as ONE JSON object (then a newline):
     {"n":..,"n_problems":..,"completion_rate":..,"strict_completion_rate":..,
      "think_open_rate":..,"think_close_rate":..,"think_both_rate":..,
      "think_tokens_mean":..,"think_tokens_median":..,"think_tokens_unit":"tokens"|"words",
      "n_completed":..,"n_truncated":..,"n_finish_known":..,"n_think":..,
      [with a verifier] "pass_at_1":..,"pass_at_k":{"1":..,"5":..},"accuracy_completed":..,
                        "accuracy_truncated":..,
      [when difficulties are given] "per_difficulty":{"easy":{same keys},"hard":{...}}}
   difficulty[p] is the difficulty label of problem p (NULL entries / NULL array: none); p
   ranges over the problem indices used in s, which must then be < n_difficulty.
   0 ok, -1 error. */
DISTILL_API int distill_eval_write_json(FILE *f, const distill_sample_result *s, size_t n,
                                        const char *const *difficulty, size_t n_difficulty,
                                        const int *ks, int nk, const char *think_unit,
                                        distill_error *err);

/* A verifier decides whether a generation solves its problem. It receives the eval record (the
   JSONL object the prompt came from, carrying whatever the check needs: tests, answer, ...)
   and the generated text; it returns 1 pass, 0 fail, -1 could not run (counted as a fail with
   the reason), and may write a short reason (NUL-terminated, at most reason_cap bytes).
   distill_extract_code gives the code the way graders read it. Called from one thread. */
typedef struct distill_verifier {
    int (*fn)(void *ctx, const distill_json *record, const char *text, size_t len,
              char *reason, size_t reason_cap);
    void *ctx;
} distill_verifier;

/* One line of the generations JSONL (the fields LiveCodeBench-style graders read):
     {"question_id":..,"sample":..,"difficulty":..,"finish_reason":"stop"|"length"|"unknown",
      "pass":true|false|null,"reason":..,"code":..,"lang":..,"code_closed":..,
      "think_open":..,"think_close":..,"think_tokens":..,"output_tokens":..,"text":..}
   question_id, difficulty, reason may be NULL (null); output_tokens < 0 is written null. */
typedef struct distill_generation_record {
    const char *question_id;
    int64_t sample;
    const char *difficulty;
    const char *prompt; size_t prompt_len;   /* for think markers left open by the prompt */
    const char *text; size_t text_len;
    distill_finish finish;
    int pass;                                 /* -1: not verified */
    const char *reason;
    int64_t output_tokens;
    double think_tokens;                      /* < 0: none */
} distill_generation_record;
DISTILL_API void distill_write_generation_jsonl(FILE *f, const distill_generation_record *g);

/* Score generations made elsewhere (or earlier): a JSONL file, one object per sample, with the
   generated text in the field `field` (dotted path, default "text"). Read when present:
   "finish_reason" (see distill_finish_parse), "question_id" (or "id", "task_id": samples of
   one problem share it; without one every line is its own problem), "difficulty" (or
   "meta.difficulty"), "pass" (true/false, used when no verifier is given), and the prompt in
   `prompt_field` (default "prompt") for think markers the prompt opened. With a verifier each
   line (the whole object) is the record it receives. Writes the results JSON object to
   `results` and, if out_jsonl is non-NULL, the scored samples as generations JSONL. */
typedef struct distill_eval_file_options {
    const char *field;             /* NULL: "text" */
    const char *prompt_field;      /* NULL: "prompt" */
    int think_in_prompt;           /* 1: every prompt opened a think block (e.g. R1 templates) */
    const distill_tokenizer *tok;  /* think lengths in tokens; NULL: words */
    const int *ks; int nk;         /* pass@k values (NULL: k = 1) */
    const distill_verifier *verifier;   /* NULL: use the "pass" field when present */
    const char *out_jsonl;         /* NULL: no per-sample output */
} distill_eval_file_options;
DISTILL_API int distill_eval_generations_file(const char *path, const distill_eval_file_options *o,
                                              FILE *results, distill_error *err);

/* ---- Inference with a KV cache ------------------------------------------------------------

   Generation runs the same network as distill_model_forward, one new token per sequence per
   step, keeping every layer's keys and values so each step costs O(context) instead of
   O(context^2). The cache is grouped-query aware: it stores NKV heads, not NH.

       cache_k, cache_v   (L, B, S, NKV*HS)    B sequences of at most S positions

   A forward call takes rows (seq[i], token[i]): each row is appended to its sequence at the
   next free position; all rows' keys and values are written first, so rows of one sequence
   given together (a prompt) attend causally to each other exactly as in training. Most callers
   only create a generator and call distill_generate (below):

       distill_generator *g = distill_generator_create(m, 4, 2048, &err);
       distill_gen_options go = distill_gen_options_default();
       const int32_t *prompts[1] = {prompt.ids};
       int lens[1] = {(int)prompt.n};
       int32_t eot = distill_chat_eot_id(tmpl, tok);
       distill_gen_result res;
       go.stop_ids = &eot; go.n_stop_ids = 1;
       if (g && distill_generate(g, tok, prompts, lens, 1, &go, &res, &err) == 0) {
           puts(res.text); distill_gen_result_free(&res);
       }
       distill_generator_free(g);                                                            */
typedef struct distill_generator distill_generator;

/* A generator for model m (which must outlive it) with room for max_batch sequences of
   max_seq positions each. */
DISTILL_API distill_generator *distill_generator_create(const distill_model *m, int max_batch,
                                                        int max_seq, distill_error *err);
DISTILL_API void distill_generator_free(distill_generator *g);
/* Forget sequence b (its length becomes 0); b < 0 resets all. */
DISTILL_API void distill_generator_reset(distill_generator *g, int b);
DISTILL_API int  distill_generator_length(const distill_generator *g, int b);
/* Copy sequence src's cache into dst (dst takes src's length): n samples of one prompt share
   a single prefill. */
DISTILL_API void distill_generator_copy(distill_generator *g, int dst, int src);
/* Run n rows (seq[i], tokens[i]) through the model with the cache. With all_rows, logits (n,V)
   receives every row's next-token logits; with all_rows 0 only the last row's, logits (V)
   (a prefill). logits may be NULL. 0 ok, -1 (sequence full, bad id, ...) with err, and then
   the cache is unchanged. */
DISTILL_API int distill_generator_forward(distill_generator *g, const int *seq,
                                          const int32_t *tokens, int n, float *logits,
                                          int all_rows, distill_error *err);

/* ---- Sampling ---------------------------------------------------------------------------
   temperature <= 0: greedy (the arg max; ties go to the lowest id). Otherwise
       p_i = softmax(logits / temperature)
   restricted to the top_k largest (top_k > 0) and then to the smallest set of most likely tokens
   whose probability reaches top_p (0 < top_p < 1; nucleus sampling), renormalised, and one
   token drawn with rng. work must hold V floats and idx V ints. */
DISTILL_API int32_t distill_sample_token(const float *logits, int V, float temperature, int top_k,
                                         float top_p, distill_rng *rng, float *work, int32_t *idx);

typedef struct distill_gen_options {
    int max_new_tokens;          /* 256; generation also stops when the context is full */
    float temperature;           /* 0: greedy */
    int top_k;                   /* 0: off */
    float top_p;                 /* 1: off */
    uint64_t seed;               /* sample i draws from an RNG seeded with (seed, seeds[i] or i) */
    const uint64_t *seeds;       /* optional per-prompt stream ids (eval: problem, sample) */
    const int32_t *stop_ids;     /* tokens that end a sample (EOS, end-of-turn); not output */
    int n_stop_ids;
    const char *const *stop_strings;   /* texts that end a sample (need a tokenizer); the text
                                          is cut before the stop string */
    int n_stop_strings;
    /* streaming: called for every generated token (not for a stop token) with the text bytes
       that became final (complete UTF-8 characters, never part of a stop string; may be
       empty, as a tail that could still grow into a stop string is held back), and once at
       the end with id -1 for any held-back rest. From the calling thread. The concatenated
       pieces equal the result's text. */
    void (*on_token)(void *ctx, int sample, int32_t id, const char *piece, size_t len);
    void *on_token_ctx;
} distill_gen_options;
DISTILL_API distill_gen_options distill_gen_options_default(void);

typedef struct distill_gen_result {
    int32_t *ids;                /* the generated ids (stop token excluded) */
    size_t n;
    char *text;                  /* their text (NULL without a tokenizer), NUL-terminated */
    size_t len;
    distill_finish finish;       /* STOP (stop id or string) or LENGTH (max_new_tokens/context) */
    int32_t stop_id;             /* the stop token that ended it, or -1 */
    int prompt_tokens;
} distill_gen_result;
DISTILL_API void distill_gen_result_free(distill_gen_result *r);

/* Generate a continuation for each of n prompts (token ids; prompts[i] of prompt_lens[i] ids),
   g->max_batch at a time, sequences in a batch advancing together. Identical prompts in a batch
   are prefilled once. tok (may be NULL) turns ids into text and enables stop strings. out[i]
   receives sample i. 0 ok, -1 on error (out entries then freed). */
DISTILL_API int distill_generate(distill_generator *g, const distill_tokenizer *tok,
                                 const int32_t *const *prompts, const int *prompt_lens, int n,
                                 const distill_gen_options *o, distill_gen_result *out,
                                 distill_error *err);

/* ---- Evaluating a model on an eval set ----------------------------------------------------

   For every record of a JSONL eval set: build the prompt, generate n samples, verify each, and
   score them all with the metrics above. The prompt is, in this order:
     - the string field `prompt_field` if given, else the first string among "prompt",
       "question", "problem", "instruction": the user turn, rendered by the chat template
       (distill_chat_prompt_ids, the trainer's own rendering) or fed as is with `raw`;
     - else a conversation (messages / conversations / ...: distill_conv_from_json) whose
       trailing assistant turns are dropped and the rest rendered with add_generation_prompt,
       i.e. exactly the prefix of the training row that precedes the answer.
   Generation stops at the template's end-of-turn token and the tokenizer's EOS (raw: EOS and
   BOS). Sample j of problem p draws from the RNG stream p*n + j, so results do not depend on
   the batch size. Record fields read: "question_id"/"id"/"task_id", "difficulty_label" or
   "difficulty" (string or number) or "meta.difficulty". */
typedef struct distill_eval_model_options {
    const distill_chat_template *tmpl;  /* NULL: "chatml" */
    int raw;                            /* 1: no chat template */
    const char *prompt_field;           /* NULL: automatic (see above) */
    const char *system;                 /* system text for string prompts (NULL: none) */
    int n_samples;                      /* samples per problem (>= 1) */
    const int *ks; int nk;              /* pass@k (NULL: k = 1) */
    int batch;                          /* sequences generated together (>= 1) */
    distill_gen_options gen;            /* max_new_tokens, temperature, top_p, top_k, seed */
    const distill_verifier *verifier;   /* NULL: no pass metrics */
    const char *out_jsonl;              /* NULL: no per-sample output (see below) */
    int64_t max_problems;               /* 0: all */
    int progress;                       /* 1: a progress line per batch on stderr */
    distill_eval_metrics *metrics;      /* non-NULL: the aggregates are also stored here */
    int resume;                         /* 1: continue an interrupted evaluation (see below) */
    volatile sig_atomic_t *stop_flag;   /* optional, owned by the caller: nonzero stops the
                                           evaluation after the problems being generated */
} distill_eval_model_options;
/* Long evaluations survive interruption. The samples go to "<out_jsonl>.partial", appended and
   flushed problem by problem (all n samples of a problem together), and the file is renamed to
   out_jsonl at the end, so a previous out_jsonl stays whole until the new one is. With resume,
   the problems of the .partial file (or of a finished out_jsonl) whose samples are all there are
   read back instead of generated, a torn tail is dropped, and generation continues after them;
   their question ids must match the data's, in order. As sample j of problem p always draws
   from RNG stream p*n + j, the results equal those of an uninterrupted evaluation. When
   *stop_flag becomes nonzero, the problems being generated are finished and written, and
   distill_eval_model returns 1 without results (err says how many problems are saved where). */
DISTILL_API distill_eval_model_options distill_eval_model_options_default(void);
DISTILL_API int distill_eval_model(distill_model *m, const distill_tokenizer *tok,
                                   const char *data_path, const distill_eval_model_options *o,
                                   FILE *results, distill_error *err);   /* results may be NULL */
/* ===================================================================================== */
/* API 9. REPORTS: results tables and SVG plots                                          */
/* ===================================================================================== */
/* Experiments end in a table a person reads and a plot a person looks at. A table is a
   header plus rows of text cells, written as CSV (RFC 4180 quoting), Markdown (for READMEs)
   or JSON (an array of objects; cells that are JSON numbers stay numbers). A plot is one or
   more panels side by side, each with line series over a linear or log10 x axis, written as a
   self-contained SVG file (no fonts or scripts to fetch).

       distill_table t;
       const char *hdr[2] = {"run", "loss"}, *row[2] = {"a", "1.25"};
       if (distill_table_init(&t, hdr, 2) == 0 && distill_table_add_row(&t, row) == 0)
           distill_table_write_markdown(stdout, &t);
       distill_table_free(&t);                                                                */

typedef struct distill_table {
    int ncol, nrow, cap;
    char **cells;            /* (nrow + 1) * ncol strings, row 0 is the header */
} distill_table;

/* 0 ok, -1 out of memory (or ncol < 1). Cells are copied; a NULL cell is an empty string. */
DISTILL_API int  distill_table_init(distill_table *t, const char *const *header, int ncol);
DISTILL_API int  distill_table_add_row(distill_table *t, const char *const *cells);
DISTILL_API const char *distill_table_cell(const distill_table *t, int row, int col); /* row 0-based, excluding the header */
DISTILL_API void distill_table_free(distill_table *t);
DISTILL_API void distill_table_write_csv(FILE *f, const distill_table *t);
DISTILL_API void distill_table_write_markdown(FILE *f, const distill_table *t);
DISTILL_API void distill_table_write_json(FILE *f, const distill_table *t);

/* One line of a plot. Points are joined in the order given; a NaN y leaves a gap. */
typedef struct distill_plot_series {
    const char *label;       /* legend text (NULL: not in the legend) */
    const double *x, *y;     /* n points */
    const double *y_err;     /* NULL, or half-widths of vertical error bars */
    int n;
    const char *color;       /* "#1f77b4" etc.; NULL: the palette colour of the series index */
    double width;            /* stroke width in px; <= 0: 1.5 */
    int dashed;              /* 1: dashed line */
    int markers;             /* 1: a dot on every point */
    double opacity;          /* <= 0: 1 */
} distill_plot_series;

typedef struct distill_plot_panel {
    const char *title, *xlabel, *ylabel;
    int log_x;               /* 1: log10 x axis; points with x <= 0 are drawn at a separate
                                position marked "0" left of an axis break (the untrained model) */
    double y_min, y_max;     /* y_min >= y_max: fitted to the data */
    const distill_plot_series *series;
    int n_series;
    int legend_pos;          /* DISTILL_LEGEND_*: where the legend box goes inside the plot area */
} distill_plot_panel;
enum { DISTILL_LEGEND_TOP_RIGHT = 0, DISTILL_LEGEND_TOP_LEFT, DISTILL_LEGEND_TOP_CENTER,
       DISTILL_LEGEND_BOTTOM_RIGHT, DISTILL_LEGEND_BOTTOM_LEFT, DISTILL_LEGEND_BOTTOM_CENTER };

/* Write an SVG document: a title line over n_panels panels side by side, each panel_w x panel_h
   pixels. 0 ok, -1 on invalid input (err says which). */
DISTILL_API int distill_svg_write(FILE *f, const char *title, const distill_plot_panel *panels,
                                  int n_panels, int panel_w, int panel_h, distill_error *err);
/* The same to a file, written atomically. */
DISTILL_API int distill_svg_save(const char *path, const char *title, const distill_plot_panel *panels,
                                 int n_panels, int panel_w, int panel_h, distill_error *err);

/* The geometry distill_svg_write uses, exposed for tests and for callers placing annotations:
   the pixel x of data x in a panel of width panel_w whose axis spans [lo, hi] (log10 units when
   log_x), and the pixel y of data y in [lo, hi] for height panel_h. */
DISTILL_API double distill_plot_px_x(double x, double lo, double hi, int log_x, int panel_w);
DISTILL_API double distill_plot_px_y(double y, double lo, double hi, int panel_h);

#ifdef __cplusplus
}
#endif
#endif /* DISTILL_H */

/* ===================================================================================== */
/*                                   IMPLEMENTATION                                      */
/* ===================================================================================== */
#if defined(DISTILL_IMPLEMENTATION) && !defined(DISTILL_IMPLEMENTATION_DONE)
#define DISTILL_IMPLEMENTATION_DONE

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
#include <sys/file.h>
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
#define DISTILL__INLINE static inline __attribute__((always_inline))
#else
#define DISTILL__PRINTF(a, b)
#define DISTILL__UNUSED
#define DISTILL__INLINE static inline
#endif

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* Fault injection for the tests of every file writer (test builds only): with
   DISTILL_TEST_FAULTS defined, the program supplies distill_test_fault(), which returns an errno
   value to inject at operation op ("open", "write", "fsync", "rename") of the file `path`, or 0.
   An injected "write" fault sends the bytes to /dev/full, so stdio fails as on a full disk. */
#ifdef DISTILL_TEST_FAULTS
#ifdef __cplusplus
extern "C"
#endif
int distill_test_fault(const char *op, const char *path);
#define DISTILL__FAULT(op, path) distill_test_fault(op, path)
#else
#define DISTILL__FAULT(op, path) 0
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
    int fe;
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
    fe = DISTILL__FAULT("open", path);
    if (fe) errno = fe;
    af->f = fe ? NULL : fopen(af->tmp_path, "wb");
    if (!af->f) {
        distill__err(err, "%s: cannot create temporary file %s: %s", path, af->tmp_path, strerror(errno));
        DISTILL_FREE(af->path);
        DISTILL_FREE(af->tmp_path);
        af->path = af->tmp_path = NULL;
        return -1;
    }
    if (DISTILL__FAULT("write", path)) {   /* test builds: every write fails as on a full disk */
        fclose(af->f);
        af->f = fopen("/dev/full", "wb");
        if (!af->f) { distill_atomic_abort(af); return distill__err(err, "%s: test fault: no /dev/full", path); }
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

/* fsync the directory holding path, so a rename into it survives a power cut */
static void distill__fsync_dir(const char *path) {
#if !defined(_WIN32)
    char *dir = distill__strdup(path), *slash;
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
#else
    (void)path;
#endif
}

/* Flush, fsync and close f; 0, or the errno of the first failure (a full disk often shows only
   here, when stdio writes out its buffer). f is closed either way. */
static int distill__flush_close(FILE *f, const char *path) {
    int e = 0;
    (void)path;   /* only fault-injecting test builds look at it */
    errno = 0;
    if (fflush(f) != 0) e = errno ? errno : EIO;
    else if (ferror(f)) e = EIO;   /* an earlier write failed; its errno is gone */
#if !defined(_WIN32)
    if (!e && (e = DISTILL__FAULT("fsync", path)) == 0 && fsync(fileno(f)) != 0) e = errno;
#endif
    errno = 0;
    if (fclose(f) != 0 && !e) e = errno ? errno : EIO;
    return e;
}

DISTILL_API int distill_atomic_commit(distill_atomic_file *af, distill_error *err) {
    int e;
    if (!af->f) return distill__err(err, "distill_atomic_commit: file is not open");
    e = distill__flush_close(af->f, af->path);
    af->f = NULL;
    if (e) {
        distill__err(err, "%s: write failed: %s (the previous file, if any, is unchanged)", af->path, strerror(e));
        distill_atomic_abort(af);
        return -1;
    }
    if ((e = DISTILL__FAULT("rename", af->path)) != 0 || rename(af->tmp_path, af->path) != 0) {
        if (!e) e = errno;
        distill__err(err, "%s: cannot rename %s into place: %s (the previous file, if any, is unchanged)", af->path,
                     af->tmp_path, strerror(e));
        distill_atomic_abort(af);
        return -1;
    }
    distill__fsync_dir(af->path);
    distill__atomic_release(af);
    return 0;
}

/* A log opened for appending (metrics.jsonl, an evaluation's partial generations): lines are
   flushed one by one and checked, so a reader sees whole lines up to the last flush. */
static FILE *distill__open_append(const char *path) {
    int fe = DISTILL__FAULT("open", path);
    if (fe) { errno = fe; return NULL; }
    if (DISTILL__FAULT("write", path)) return fopen("/dev/full", "ab");   /* test builds */
    return fopen(path, "ab");
}

DISTILL_API int distill_dir_lock(const char *dir, distill_error *err) {
#if !defined(_WIN32)
    char path[4096], buf[32];
    int fd;
    ssize_t n;
    if (snprintf(path, sizeof path, "%s/distill.lock", dir) >= (int)sizeof path)
        return distill__err(err, "%.300s: path too long", dir);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);   /* programs we start (verifiers) must not keep it */
    if (fd < 0) return distill__err(err, "%s: cannot open the lock file: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        long pid = 0;
        n = pread(fd, buf, sizeof buf - 1, 0);
        buf[n > 0 ? n : 0] = 0;
        pid = strtol(buf, NULL, 10);
        close(fd);
        if (e != EWOULDBLOCK && e != EAGAIN) return distill__err(err, "%s: cannot lock: %s", path, strerror(e));
        if (pid == (long)getpid())   /* e.g. a trainer without no_lock in a folder its caller locked */
            return distill__err(err, "%s: already locked by this process (pid %ld, lock %s); one writer per folder", dir, pid, path);
        if (pid > 0)
            return distill__err(err, "%s: in use by another process (pid %ld, lock %s); one writer per folder", dir, pid, path);
        return distill__err(err, "%s: in use by another process (lock %s); one writer per folder", dir, path);
    }
    /* the holder's pid, for the message above (the lock itself is the flock, not this text) */
    n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)n, 0) != n) { /* the lock holds without it */ }
    return fd;
#else
    (void)dir; (void)err;
    return 0;
#endif
}

DISTILL_API void distill_dir_unlock(int lock) {
#if !defined(_WIN32)
    if (lock >= 0) close(lock);   /* closing the file releases the flock */
#else
    (void)lock;
#endif
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
/* ===================================================================================== */
/* THREADS AND KERNELS                                                                    */
/* ===================================================================================== */
/* Nearly all the FLOPs of training are three matrix products per linear layer (forward, dX,
   dW). This part makes them fast on an ordinary CPU:

     1. a thread pool (the only mutable global state of the library),
     2. the SIMD kernels, written once as plain functions over a small vector vocabulary and
        compiled once per instruction set (AVX-512, AVX2+FMA, NEON, scalar) by including the
        header's KERNEL BLOCK once per set,
     3. a blocked, packed matrix product with a register-blocked micro-kernel, threaded over
        output tiles so that every output element is computed by the same sequence of
        floating-point operations whatever the number of threads (bit-identical results),
     4. the vector primitives the model's ops are written with (dot, axpy, max, exp-sum),
     5. an optional OpenBLAS path (DISTILL_OPENBLAS).

   The instruction set is chosen once at run time (CPUID through __builtin_cpu_supports), so a
   binary built with plain -O2 uses AVX2/AVX-512 where the CPU has them and never executes an
   instruction the CPU lacks. The environment variable DISTILL_SIMD=scalar|avx2|avx512|neon
   forces a kernel set (for benchmarks and tests), as does distill_set_simd(). */

#if !defined(DISTILL_NO_THREADS)
#include <pthread.h>
#endif
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define DISTILL__X86 1
#include <immintrin.h>
#endif
/* BF16 dot products (vdpbf16ps, AVX512_BF16): the compiler must know the target attribute */
#if defined(DISTILL__X86) && !defined(DISTILL_NO_BF16) && \
    ((defined(__clang__) && __clang_major__ >= 9) || (!defined(__clang__) && __GNUC__ >= 10))
#define DISTILL__BF16_CC 1
#endif
#if defined(__aarch64__) && defined(__ARM_NEON)
#define DISTILL__NEON 1
#include <arm_neon.h>
#endif
#ifdef DISTILL_OPENBLAS
#include <cblas.h>
#endif

#define DISTILL__MAX_THREADS 64

/* ------------------------------------------------------------------------------------- */
/* Atomics. GCC and clang have __atomic builtins in every language mode (C99 -pedantic and  */
/* C++ included); other compilers get a mutex-protected fallback.                          */
/* ------------------------------------------------------------------------------------- */
#if !defined(DISTILL_NO_THREADS) && !(defined(__GNUC__) || defined(__clang__))
static pthread_mutex_t distill__atomic_mu = PTHREAD_MUTEX_INITIALIZER;
static int64_t distill__atomic_rmw(int64_t *p, int64_t add, int store, int64_t v) {
    int64_t old;
    pthread_mutex_lock(&distill__atomic_mu);
    old = *p;
    *p = store ? v : old + add;
    pthread_mutex_unlock(&distill__atomic_mu);
    return old;
}
#define DISTILL__LOAD(p) distill__atomic_rmw((p), 0, 0, 0)
#define DISTILL__STORE(p, v) ((void)distill__atomic_rmw((p), 0, 1, (v)))
#define DISTILL__FETCH_ADD(p, v) distill__atomic_rmw((p), (v), 0, 0)
#define DISTILL__PAUSE() ((void)0)
#else
#define DISTILL__LOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define DISTILL__STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define DISTILL__FETCH_ADD(p, v) __atomic_fetch_add((p), (v), __ATOMIC_ACQ_REL)
#if defined(DISTILL__X86)
#define DISTILL__PAUSE() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define DISTILL__PAUSE() __asm__ __volatile__("yield")
#else
#define DISTILL__PAUSE() ((void)0)
#endif
#endif

/* ------------------------------------------------------------------------------------- */
/* The pool.                                                                               */
/*                                                                                         */
/* Workers 1..n-1 are persistent threads; the calling thread is worker 0. A job is          */
/* published by bumping `gen`. Its chunks are split into one contiguous range per thread    */
/* (thread t owns [t*n/nth, (t+1)*n/nth)); each thread takes its own range's chunks in      */
/* order from its counter, then helps the others by taking from theirs, and decrements      */
/* `pending`. The fixed ranges keep data where it was made: the row-wise ops of a step give */
/* thread t the same rows, so what a matmul wrote into t's cache is what the next op on t   */
/* reads (reading lines the other core wrote costs 2-3x reading its own; with one shared    */
/* counter each op read about half its input from the other core). Waiting is a short spin  */
/* (consecutive jobs of a training step follow each other within microseconds) and then a   */
/* sleep on a condition variable, so an idle pool costs nothing.                            */
/*                                                                                          */
/* Thread safety: distill_parallel_for (and everything built on it: the matmuls, the model) */
/* may be called from one user thread at a time. A parallel_for issued from inside a task   */
/* (nested) runs serially on the worker that issued it, passing that worker's index, so it  */
/* never deadlocks and per-thread scratch stays private.                                    */
/* ------------------------------------------------------------------------------------- */
typedef struct distill__isa_ops distill__isa_ops;

#if defined(__GNUC__) || defined(__clang__)
#define DISTILL__ALIGN64 __attribute__((aligned(64)))
#else
#define DISTILL__ALIGN64
#endif

typedef struct distill__pool {
    int n_threads;                  /* resolved thread count, 0 = not yet resolved */
    int running;                    /* workers 1..running-1 exist */
    const distill__isa_ops *ops;    /* chosen kernel set, NULL = not yet chosen */
    int blas_init;
    int no_blas;                    /* 1: distill_set_blas(0), use our kernels */
    /* per-thread packing scratch of the matmul (each thread only touches its own slot) */
    float *scratch[DISTILL__MAX_THREADS];
    size_t scratch_floats[DISTILL__MAX_THREADS];
    int scratch_reserved;           /* slots 0..scratch_reserved-1 hold full-size scratch */
    float *shared_b;                /* the matmul's B block packed once for all threads (KC x NCS) */
    float *ksplit;                  /* the second K half's partial product (distill__gemm_run_ksplit, grown) */
    size_t ksplit_floats;
    uint32_t *bf16_b;               /* the BF16 product's B packed once for all row tasks (grown) */
    size_t bf16_b_words;
    /* BF16 settings read once (0: not yet; 1: no; 2: yes): DISTILL_BF16=portable,
       DISTILL_BF16_ATTENTION (not "0"), and whether the CPU has AVX512_BF16 */
    int bf16_portable, bf16_attention, bf16_cpu, bf16_told;
    struct distill__prof *prof;     /* the op profile while switched on, else NULL */
    struct distill__prof *prof_data;/* its storage (kept after distill_profile_stop for printing) */
#if !defined(DISTILL_NO_THREADS)
    pthread_t tid[DISTILL__MAX_THREADS];
    pthread_mutex_t mu;
    pthread_cond_t wake, done;
    /* the current job (written by worker 0 before `gen` is bumped) */
    distill_task_fn fn;
    void *ctx;
    int64_t n, chunk, n_chunks;
    int64_t start_gen;              /* gen when the workers were created */
    int atfork_registered;
    /* the counters the workers hammer, each on its own cache line. They must also be 8-byte
       aligned: on i386 an int64_t member may sit at 4 mod 8, and a 64-bit atomic that
       straddles a cache line is not atomic there (the -m32 build deadlocked). */
    int parties;                    /* threads taking part in the current job */
    char pad0[64];
    DISTILL__ALIGN64 int64_t next[DISTILL__MAX_THREADS * 8]; /* thread t's counter: next[8 t] (own line) */
    DISTILL__ALIGN64 int64_t pending;
    DISTILL__ALIGN64 int64_t gen;
    DISTILL__ALIGN64 int64_t busy;  /* 1 while a job runs: parallel_for calls now are nested */
    int64_t quit;
#endif
} distill__pool;

static distill__pool distill__the_pool;

static int distill__default_threads(void) {
    int n = 1;
    const char *env = getenv("DISTILL_THREADS");
    if (env && *env) {
        n = atoi(env);
    } else {
#if defined(_SC_NPROCESSORS_ONLN) && !defined(DISTILL_NO_THREADS)
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (int)(c < DISTILL__MAX_THREADS ? c : DISTILL__MAX_THREADS) : 1;
#endif
    }
    if (n < 1) n = 1;
    if (n > DISTILL__MAX_THREADS) n = DISTILL__MAX_THREADS;
    return n;
}

/* The op profile. Regions are named on thread 0 outside jobs (an op's entry point calls
   distill__prof_begin/end); time is exclusive: a nested region (a matmul inside the head)
   pauses its parent. A job run while a region is open adds each thread's time inside
   run_chunks to that region's busy[thread]; so for thread t, wall - busy[t] is the region's
   time not spent computing on t: pool hand-off and barrier waits, or thread 0's serial code. */
#define DISTILL__PROF_MAX 96
typedef struct distill__prof {
    int n, depth, stack[8], cur;    /* cur: the innermost open region, -1 none */
    double t0;                      /* start of the current exclusive segment */
    struct {
        char name[48];
        int64_t calls;
        double wall;                /* thread 0's exclusive time in the region */
        double busy[DISTILL__MAX_THREADS];
    } r[DISTILL__PROF_MAX];
} distill__prof;

static int distill__prof_begin(const char *name) {
    distill__prof *pr = distill__the_pool.prof;
    double now;
    int i;
    if (!pr || pr->depth >= 8) return 0;
#if !defined(DISTILL_NO_THREADS)
    if (DISTILL__LOAD(&distill__the_pool.busy)) return 0;   /* inside a task: not thread 0's op */
#endif
    for (i = 0; i < pr->n && strcmp(pr->r[i].name, name); i++) {}
    if (i == pr->n) {
        if (pr->n == DISTILL__PROF_MAX) i = DISTILL__PROF_MAX - 1;   /* the last slot collects the rest */
        else { pr->n++; snprintf(pr->r[i].name, sizeof pr->r[i].name, "%s", name); }
    }
    now = distill_time_seconds();
    if (pr->cur >= 0) pr->r[pr->cur].wall += now - pr->t0;
    pr->stack[pr->depth++] = pr->cur;
    pr->cur = i;
    pr->r[i].calls++;
    pr->t0 = now;
    return 1;
}

static void distill__prof_end(int opened) {
    distill__prof *pr = distill__the_pool.prof;
    double now;
    if (!opened || !pr) return;
    now = distill_time_seconds();
    pr->r[pr->cur].wall += now - pr->t0;
    pr->cur = pr->stack[--pr->depth];
    pr->t0 = now;
}

/* A region named by a format (shapes): formatted only while profiling. */
static int distill__prof_beginf(const char *fmt, ...) DISTILL__PRINTF(1, 2);
static int distill__prof_beginf(const char *fmt, ...) {
    char name[48];
    va_list ap;
    if (!distill__the_pool.prof) return 0;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return distill__prof_begin(name);
}

/* Where thread `thread` runs a job's chunks: the time goes to the open region. */
static void distill__prof_busy(int thread, double t0) {
    distill__prof *pr = distill__the_pool.prof;
    if (pr && pr->cur >= 0 && thread >= 0 && thread < DISTILL__MAX_THREADS)
        pr->r[pr->cur].busy[thread] += distill_time_seconds() - t0;
}

#if !defined(DISTILL_NO_THREADS)
#define DISTILL__SPIN 20000

/* Thread `thread`'s part of the job: its own range, then what is left of the others'. */
static void distill__run_chunks(distill__pool *P, int thread) {
    double t0 = P->prof ? distill_time_seconds() : 0.0;
    const int np = P->parties;
    int k;
    for (k = 0; k < np; k++) {
        const int o = (thread + k) % np;
        const int64_t hi = (int64_t)(o + 1) * P->n_chunks / np;
        for (;;) {
            int64_t i = DISTILL__FETCH_ADD(&P->next[8 * o], 1), b, e;
            if (i >= hi) break;
            b = i * P->chunk;
            e = b + P->chunk < P->n ? b + P->chunk : P->n;
            P->fn(P->ctx, b, e, thread);
        }
    }
    if (P->prof) distill__prof_busy(thread, t0);
}

static void *distill__worker(void *arg) {
    distill__pool *P = &distill__the_pool;
    int id = (int)(intptr_t)arg;
    int64_t seen = P->start_gen;
    for (;;) {
        int64_t g;
        int spins = 0;
        while ((g = DISTILL__LOAD(&P->gen)) == seen && spins < DISTILL__SPIN) {
            DISTILL__PAUSE();
            spins++;
        }
        if (g == seen) {
            pthread_mutex_lock(&P->mu);
            while ((g = DISTILL__LOAD(&P->gen)) == seen) pthread_cond_wait(&P->wake, &P->mu);
            pthread_mutex_unlock(&P->mu);
        }
        seen = g;
        if (DISTILL__LOAD(&P->quit)) break;
        distill__run_chunks(P, id);
        if (DISTILL__FETCH_ADD(&P->pending, -1) == 1) {
            pthread_mutex_lock(&P->mu);
            pthread_cond_signal(&P->done);
            pthread_mutex_unlock(&P->mu);
        }
    }
    return NULL;
}

/* Publish a job to the workers (call with the job fields set). */
static void distill__publish(distill__pool *P) {
    pthread_mutex_lock(&P->mu);
    DISTILL__STORE(&P->gen, DISTILL__LOAD(&P->gen) + 1);
    pthread_cond_broadcast(&P->wake);
    pthread_mutex_unlock(&P->mu);
}

static void distill__wait_workers(distill__pool *P) {
    int spins = 0;
    while (DISTILL__LOAD(&P->pending) != 0 && spins < DISTILL__SPIN) {
        DISTILL__PAUSE();
        spins++;
    }
    if (DISTILL__LOAD(&P->pending) != 0) {
        pthread_mutex_lock(&P->mu);
        while (DISTILL__LOAD(&P->pending) != 0) pthread_cond_wait(&P->done, &P->mu);
        pthread_mutex_unlock(&P->mu);
    }
}

static void distill__pool_stop(distill__pool *P) {
    int i;
    if (P->running <= 1) { P->running = 0; return; }
    DISTILL__STORE(&P->quit, 1);
    DISTILL__STORE(&P->pending, (int64_t)(P->running - 1));
    distill__publish(P);
    for (i = 1; i < P->running; i++) pthread_join(P->tid[i], NULL);
    DISTILL__STORE(&P->quit, 0);
    pthread_cond_destroy(&P->wake);
    pthread_cond_destroy(&P->done);
    pthread_mutex_destroy(&P->mu);
    P->running = 0;
}

/* A child created by fork() has only the thread that called fork: forget the parent's
   workers (without joining them) so the child's first parallel_for starts its own. */
static void distill__pool_atfork_child(void) {
    distill__pool *P = &distill__the_pool;
    P->running = 0;
    DISTILL__STORE(&P->busy, 0);
}

/* Start the workers; on failure the pool runs with as many as could be created. */
static void distill__pool_start(distill__pool *P) {
    int i;
    P->running = 1;
    if (P->n_threads <= 1) return;
    if (!P->atfork_registered) {
        pthread_atfork(NULL, NULL, distill__pool_atfork_child);
        P->atfork_registered = 1;
    }
    pthread_mutex_init(&P->mu, NULL);
    pthread_cond_init(&P->wake, NULL);
    pthread_cond_init(&P->done, NULL);
    P->start_gen = DISTILL__LOAD(&P->gen);
    for (i = 1; i < P->n_threads; i++) {
        if (pthread_create(&P->tid[i], NULL, distill__worker, (void *)(intptr_t)i) != 0) break;
        P->running = i + 1;
    }
}

/* Index of the calling thread in the pool (0 for the user thread). */
static int distill__self_index(distill__pool *P) {
    int i;
    pthread_t me = pthread_self();
    for (i = 1; i < P->running; i++)
        if (pthread_equal(P->tid[i], me)) return i;
    return 0;
}
#endif /* !DISTILL_NO_THREADS */

static void distill__blas_init(void);
static void distill__reserve_scratch(distill__pool *P);

DISTILL_API void distill_set_threads(int n) {
    distill__pool *P = &distill__the_pool;
#if !defined(DISTILL_NO_THREADS)
    if (P->running) distill__pool_stop(P);
#endif
    if (n <= 0) n = distill__default_threads();
#if defined(DISTILL_NO_THREADS)
    n = 1;
#endif
    P->n_threads = n > DISTILL__MAX_THREADS ? DISTILL__MAX_THREADS : n;
}

DISTILL_API int distill_get_threads(void) {
    distill__pool *P = &distill__the_pool;
    if (P->n_threads == 0) distill_set_threads(0);
    return P->n_threads;
}

DISTILL_API void distill_parallel_for(int64_t n, int64_t chunk, distill_task_fn fn, void *ctx) {
    distill__pool *P = &distill__the_pool;
    int64_t n_chunks, b;
    double t0;
#if !defined(DISTILL_NO_THREADS)
    int t;
#endif
    if (n <= 0) return;
    if (chunk < 1) chunk = 1;
    n_chunks = (n - 1) / chunk + 1;
    if (P->n_threads == 0) distill_set_threads(0);
    distill__blas_init();
#if !defined(DISTILL_NO_THREADS)
    if (!DISTILL__LOAD(&P->busy) && P->scratch_reserved < P->n_threads) distill__reserve_scratch(P);
    if (DISTILL__LOAD(&P->busy)) { /* nested: run serially on this worker */
        int self = distill__self_index(P);
        for (b = 0; b < n; b += chunk) fn(ctx, b, b + chunk < n ? b + chunk : n, self);
        return;
    }
    if (P->n_threads > 1 && n_chunks > 1) {
        if (!P->running) distill__pool_start(P);
        if (P->running > 1) {
            P->fn = fn;
            P->ctx = ctx;
            P->n = n;
            P->chunk = chunk;
            P->n_chunks = n_chunks;
            P->parties = P->running;
            for (t = 0; t < P->parties; t++) DISTILL__STORE(&P->next[8 * t], (int64_t)t * n_chunks / P->parties);
            DISTILL__STORE(&P->busy, 1);
            DISTILL__STORE(&P->pending, (int64_t)(P->running - 1));
            distill__publish(P);
            distill__run_chunks(P, 0);
            distill__wait_workers(P);
            DISTILL__STORE(&P->busy, 0);
            return;
        }
    }
    DISTILL__STORE(&P->busy, 1);
    t0 = P->prof ? distill_time_seconds() : 0.0;
    for (b = 0; b < n; b += chunk) fn(ctx, b, b + chunk < n ? b + chunk : n, 0);
    if (P->prof) distill__prof_busy(0, t0);
    DISTILL__STORE(&P->busy, 0);
#else
    (void)n_chunks;
    if (P->scratch_reserved < 1) distill__reserve_scratch(P);
    t0 = P->prof ? distill_time_seconds() : 0.0;
    for (b = 0; b < n; b += chunk) fn(ctx, b, b + chunk < n ? b + chunk : n, 0);
    if (P->prof) distill__prof_busy(0, t0);
#endif
}

DISTILL_API void distill_profile_start(void) {
    distill__pool *P = &distill__the_pool;
    if (!P->prof_data) P->prof_data = (distill__prof *)DISTILL_MALLOC(sizeof(distill__prof));
    if (!P->prof_data) return;
    memset(P->prof_data, 0, sizeof *P->prof_data);
    P->prof_data->cur = -1;
    P->prof = P->prof_data;
}

DISTILL_API void distill_profile_stop(void) { distill__the_pool.prof = NULL; }

/* One table row: calls, thread 0's ms, share of wall, then per thread busy ms and the rest. */
static void distill__prof_row(FILE *f, const char *name, double calls, double ms, double share,
                              const double *busy, int nth, double per) {
    int t;
    fprintf(f, "%-40s %7.1f %9.3f %6.1f%% |", name, calls, ms, 100.0 * share);
    for (t = 0; t < nth; t++) fprintf(f, " %8.3f", 1e3 * busy[t] / per);
    fprintf(f, " |");
    for (t = 0; t < nth; t++) fprintf(f, " %8.3f", ms - 1e3 * busy[t] / per);
    fprintf(f, "\n");
}

DISTILL_API void distill_profile_print(FILE *f, double wall, int steps) {
    const distill__prof *pr = distill__the_pool.prof_data;
    double per = steps > 0 ? (double)steps : 1.0, sum = 0.0, fb[DISTILL__MAX_THREADS], tb[DISTILL__MAX_THREADS];
    int nth = distill_get_threads(), i, j, t, order[DISTILL__PROF_MAX], done[DISTILL__PROF_MAX];
    if (!pr) { fprintf(f, "profile: not started\n"); return; }
    if (nth > 8) nth = 8;
    for (i = 0; i < pr->n; i++) { order[i] = i; done[i] = 0; sum += pr->r[i].wall; }
    for (i = 1; i < pr->n; i++)   /* by time, largest first */
        for (j = i; j > 0 && pr->r[order[j]].wall > pr->r[order[j - 1]].wall; j--) { t = order[j]; order[j] = order[j - 1]; order[j - 1] = t; }
    fprintf(f, "profile: %d step(s), %.3f ms per step, %d thread(s); per op and step: calls, ms on thread 0,\n"
               "share of the step | ms running its tasks per thread | ms not running them (waits, serial part)\n",
            steps, 1e3 * wall / per, distill_get_threads());
    fprintf(f, "%-40s %7s %9s %7s |", "op [shape: M x N x K of C = A.B]", "calls", "ms", "share");
    for (t = 0; t < nth; t++) fprintf(f, "  busy t%d", t);
    fprintf(f, " |");
    for (t = 0; t < nth; t++) fprintf(f, "  rest t%d", t);
    fprintf(f, "\n");
    for (i = 0; i < pr->n; i++) {
        const int r = order[i];
        distill__prof_row(f, pr->r[r].name, (double)pr->r[r].calls / per, 1e3 * pr->r[r].wall / per,
                          wall > 0 ? pr->r[r].wall / wall : 0.0, pr->r[r].busy, nth, per);
    }
    /* families: the name up to " [" (the shape) */
    fprintf(f, "-- by op family\n");
    memset(tb, 0, sizeof tb);
    for (i = 0; i < pr->n; i++) {
        const int r = order[i];
        const char *br = strstr(pr->r[r].name, " [");
        size_t len = br ? (size_t)(br - pr->r[r].name) : strlen(pr->r[r].name);
        double fw = 0.0, fc = 0.0;
        char fam[48];
        if (done[r]) continue;
        memset(fb, 0, sizeof fb);
        for (j = i; j < pr->n; j++) {
            const int q = order[j];
            if (done[q] || strncmp(pr->r[q].name, pr->r[r].name, len) || (pr->r[q].name[len] && pr->r[q].name[len] != ' ')) continue;
            done[q] = 1;
            fw += pr->r[q].wall;
            fc += (double)pr->r[q].calls;
            for (t = 0; t < nth; t++) fb[t] += pr->r[q].busy[t];
        }
        for (t = 0; t < nth; t++) tb[t] += fb[t];
        snprintf(fam, sizeof fam, "%.*s", (int)len, pr->r[r].name);
        distill__prof_row(f, fam, fc / per, 1e3 * fw / per, wall > 0 ? fw / wall : 0.0, fb, nth, per);
    }
    distill__prof_row(f, "all ops", 0.0, 1e3 * sum / per, wall > 0 ? sum / wall : 0.0, tb, nth, per);
    fprintf(f, "%-40s %7s %9.3f %6.1f%%\n", "outside the ops (step loop, batch)", "", 1e3 * (wall - sum) / per,
            wall > 0 ? 100.0 * (wall - sum) / wall : 0.0);
}

/* Per-thread scratch of at least `floats` floats (64-byte aligned), or NULL when out of
   memory. Only thread `thread` ever touches slot `thread`, so no locking is needed. */
static float *distill__thread_scratch(int thread, size_t floats) {
    distill__pool *P = &distill__the_pool;
    if (thread < 0 || thread >= DISTILL__MAX_THREADS) return NULL;
    if (P->scratch_floats[thread] < floats) {
        distill_free_aligned(P->scratch[thread]);
        P->scratch[thread] = (float *)distill_alloc_aligned(floats * sizeof(float), 64);
        P->scratch_floats[thread] = P->scratch[thread] ? floats : 0;
    }
    return P->scratch[thread];
}

/* ===================================================================================== */
/* The kernels: written once, compiled once per kernel set                                */
/* ===================================================================================== */
/* The SIMD kernels (micro-kernel, dot, axpy, scale, max, exp, SwiGLU, the RMSNorm rows,
   AdamW, the CE head's exp pass, attention's dS rows) are ordinary C
   functions written once against a small vector vocabulary (DV_ = "distill vector"):
     DV_T             the vector type, DV_W floats wide      DVI_T   a vector of int32
     DV_LOAD/STORE    unaligned load / store                 DV_SET1 broadcast, DV_ZERO()
     DV_FMA(a,b,c)    a*b + c (fused where the ISA has it)   DV_ADD, DV_SUB, DV_MUL, DV_MAX, DV_MIN
     DV_HSUM, DV_HMAX horizontal reductions to a float       DV_ROUND to nearest integer value
     DV_DIV, DV_SQRT  IEEE division and square root (correctly rounded, as the scalar / and sqrtf)
     DV_LOADH         DV_W BF16 values (uint16 bits) widened to floats, exactly (bits << 16)
     DV_CVTI, DVI_ADD, DVI_SUB, DVI_SET1, DVI_SRA1 (>> 1), DVI_SHL23 (<< 23), DV_CASTI (bits as float)
   The block below ("KERNEL BLOCK") is compiled once per kernel set: the implementation defines
   DISTILL__KERNEL_PASS (1 scalar, 2 AVX2, 3 AVX-512, 4 NEON) and includes this header again;
   on that pass everything else in the file is skipped (the API and both implementation parts
   are already done) and the block maps DV_ onto that ISA, appends the set's suffix to each
   name (DISTILL__K(distill__dot) is distill__dot_avx2), defines the set's table, and #undefs
   its vocabulary. A debugger and a compiler message point at the real lines of the block.

   How the header finds itself: `#include "distill.h"` with quotes searches first the
   directory of the file that contains the directive, i.e. this header's own directory, on
   GCC, clang and MSVC alike. So the re-inclusion works however the user's program reached the
   header (-I path, relative or absolute path); __FILE__ would not (it is the path as spelled
   by the includer, relative to the includer's directory, and breaks under -I). A renamed copy
   defines DISTILL_HEADER_NAME to its own file name; if the re-inclusion reaches another file
   (an older distill.h), the build stops with an #error below instead of mixing versions. */
#ifndef DISTILL_HEADER_NAME
#define DISTILL_HEADER_NAME "distill.h"
#endif
#define DISTILL__IMPLEMENTATION_CONTINUES
#endif /* DISTILL_IMPLEMENTATION, part 1: platform, pool */

/* ===================================================================================== */
/* KERNEL BLOCK (one kernel set per pass; see "The kernels" just above)                   */
/* ===================================================================================== */
#if defined(DISTILL__KERNEL_PASS)
#if DISTILL__KERNEL_PASS == 1
/* --- scalar: always compiled; the fallback on CPUs without SIMD, and for other compilers - */
#define DISTILL__K(name) name##_scalar
#define DISTILL__KATTR
#define DISTILL__KNAME "scalar"
static float distill__i2f(int32_t i) { float f; memcpy(&f, &i, sizeof f); return f; }
static int32_t distill__sra1(int32_t i) { return i >= 0 ? i / 2 : -((1 - i) / 2); } /* floor(i/2) */
static int32_t distill__f2i(float v) { return v == v ? (int32_t)v : 0; } /* NaN: any value will do */
static float distill__h2f(uint16_t h) { return distill__i2f((int32_t)((uint32_t)h << 16)); } /* BF16 -> float */
#define DV_T float
#define DVI_T int32_t
#define DV_W 1
#define DV_LOAD(p) (*(p))
#define DV_STORE(p, v) (*(p) = (v))
#define DV_SET1(x) (x)
#define DV_ZERO() 0.0f
#define DV_FMA(a, b, c) ((a) * (b) + (c))
#define DV_ADD(a, b) ((a) + (b))
#define DV_SUB(a, b) ((a) - (b))
#define DV_MUL(a, b) ((a) * (b))
#define DV_MAX(a, b) ((a) > (b) ? (a) : (b)) /* NaN in b propagates, as in SSE/AVX */
#define DV_MIN(a, b) ((a) < (b) ? (a) : (b))
#define DV_HSUM(v) (v)
#define DV_HMAX(v) (v)
#define DV_ROUND(v) rintf(v)
#define DV_CVTI(v) distill__f2i(v)
#define DVI_ADD(a, b) ((a) + (b))
#define DVI_SUB(a, b) ((a) - (b))
#define DVI_SET1(x) ((int32_t)(x))
#define DVI_SRA1(a) distill__sra1(a)
#define DVI_SHL23(a) ((int32_t)((uint32_t)(a) << 23))
#define DV_CASTI(i) distill__i2f(i)
#define DV_DIVONE(x) (1.0f / (x))
#define DV_DIV(a, b) ((a) / (b))
#define DV_SQRT(x) sqrtf(x)
#define DV_LOADH(p) distill__h2f(*(p))
#elif DISTILL__KERNEL_PASS == 2
/* --- AVX2 + FMA (x86-64-v3), compiled with a per-function target attribute ----------- */
#define DISTILL__K(name) name##_avx2
#define DISTILL__KATTR __attribute__((target("avx2,fma")))
#define DISTILL__KNAME "avx2"
/* gemv one row at a time (the dot kernel): with 256-bit loads that streams faster than four
   interleaved rows (Zen5: 1.35 vs 1.7 ms per 15M-model decode step, bench/RESULTS.md) */
#define DISTILL__GEMV_BY_ROW 1
static DISTILL__KATTR float distill__hsum_avx2(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}
static DISTILL__KATTR float distill__hmax_avx2(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}
#define DV_T __m256
#define DVI_T __m256i
#define DV_W 8
#define DV_LOAD(p) _mm256_loadu_ps(p)
#define DV_STORE(p, v) _mm256_storeu_ps((p), (v))
#define DV_SET1(x) _mm256_set1_ps(x)
#define DV_ZERO() _mm256_setzero_ps()
#define DV_FMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define DV_ADD(a, b) _mm256_add_ps((a), (b))
#define DV_SUB(a, b) _mm256_sub_ps((a), (b))
#define DV_MUL(a, b) _mm256_mul_ps((a), (b))
#define DV_MAX(a, b) _mm256_max_ps((a), (b))
#define DV_MIN(a, b) _mm256_min_ps((a), (b))
#define DV_HSUM(v) distill__hsum_avx2(v)
#define DV_HMAX(v) distill__hmax_avx2(v)
#define DV_ROUND(v) _mm256_round_ps((v), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define DV_CVTI(v) _mm256_cvtps_epi32(v)
#define DVI_ADD(a, b) _mm256_add_epi32((a), (b))
#define DVI_SUB(a, b) _mm256_sub_epi32((a), (b))
#define DVI_SET1(x) _mm256_set1_epi32(x)
#define DVI_SRA1(a) _mm256_srai_epi32((a), 1)
#define DVI_SHL23(a) _mm256_slli_epi32((a), 23)
#define DV_CASTI(i) _mm256_castsi256_ps(i)
#define DV_DIVONE(x) _mm256_div_ps(_mm256_set1_ps(1.0f), (x))
#define DV_DIV(a, b) _mm256_div_ps((a), (b))
#define DV_SQRT(x) _mm256_sqrt_ps(x)
#define DV_LOADH(p) _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)(p))), 16))
#elif DISTILL__KERNEL_PASS == 3
/* --- AVX-512F ------------------------------------------------------------------------ */
#define DISTILL__K(name) name##_avx512
#define DISTILL__KATTR __attribute__((target("avx512f")))
#define DISTILL__KNAME "avx512"
/* The masked forms with an all-ones mask below, and reductions through memory: GCC 12's
   unmasked AVX-512 intrinsics (max, min, roundscale, cvt, shifts, reduce) warn under
   -Wuninitialized in C++ (their _mm512_undefined_ps). Same instructions. */
#define DISTILL__K16 ((__mmask16)0xFFFF)
/* Reductions through memory: GCC 12's _mm512_reduce_add_ps and shuffles warn under
   -Wuninitialized in C++ (their _mm512_undefined_ps), and this runs once per call anyway. */
static DISTILL__KATTR float distill__hsum_avx512(__m512 v) {
    float t[16];
    int i;
    _mm512_storeu_ps(t, v);
    for (i = 0; i < 8; i++) t[i] += t[i + 8];
    for (i = 0; i < 4; i++) t[i] += t[i + 4];
    return (t[0] + t[2]) + (t[1] + t[3]);
}
static DISTILL__KATTR float distill__hmax_avx512(__m512 v) {
    float t[16], m;
    int i;
    _mm512_storeu_ps(t, v);
    m = t[0];
    for (i = 1; i < 16; i++) m = t[i] > m ? t[i] : m;
    return m;
}
#define DV_T __m512
#define DVI_T __m512i
#define DV_W 16
#define DV_LOAD(p) _mm512_loadu_ps(p)
#define DV_STORE(p, v) _mm512_storeu_ps((p), (v))
#define DV_SET1(x) _mm512_set1_ps(x)
#define DV_ZERO() _mm512_setzero_ps()
#define DV_FMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define DV_ADD(a, b) _mm512_add_ps((a), (b))
#define DV_SUB(a, b) _mm512_sub_ps((a), (b))
#define DV_MUL(a, b) _mm512_mul_ps((a), (b))
#define DV_MAX(a, b) _mm512_mask_max_ps((a), DISTILL__K16, (a), (b))
#define DV_MIN(a, b) _mm512_mask_min_ps((a), DISTILL__K16, (a), (b))
#define DV_HSUM(v) distill__hsum_avx512(v)
#define DV_HMAX(v) distill__hmax_avx512(v)
/* distill__hsum_avx512 of four vectors at once, the same tree per vector (so the same bits):
   halves of 8 added (lane i + lane i+8), then quarters (i + i+4), then (t0 + t2) + (t1 + t3),
   the four vectors side by side in the 128-bit quarters instead of through memory */
static DISTILL__KATTR void distill__hsum4_avx512(__m512 v0, __m512 v1, __m512 v2, __m512 v3, float *y) {
    const __mmask16 K = DISTILL__K16;
    __m512 s01 = _mm512_add_ps(_mm512_mask_shuffle_f32x4(v0, K, v0, v1, 0x44), _mm512_mask_shuffle_f32x4(v0, K, v0, v1, 0xEE));
    __m512 s23 = _mm512_add_ps(_mm512_mask_shuffle_f32x4(v2, K, v2, v3, 0x44), _mm512_mask_shuffle_f32x4(v2, K, v2, v3, 0xEE));
    __m512 w = _mm512_add_ps(_mm512_mask_shuffle_f32x4(s01, K, s01, s23, 0x88), _mm512_mask_shuffle_f32x4(s01, K, s01, s23, 0xDD));
    __m512 x = _mm512_add_ps(w, _mm512_mask_permute_ps(w, K, w, 0x4E));   /* t0 + t2, t1 + t3 */
    __m512 r = _mm512_add_ps(x, _mm512_mask_permute_ps(x, K, x, 0xB1));   /* (t0 + t2) + (t1 + t3) */
    r = _mm512_mask_permutexvar_ps(r, K, _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 8, 4, 0), r);
    _mm512_mask_storeu_ps(y, (__mmask16)0xF, r);   /* lanes 0..3 */
}
#define DV_HSUM4(v0, v1, v2, v3, y) distill__hsum4_avx512((v0), (v1), (v2), (v3), (y))
#define DV_ROUND(v) _mm512_mask_roundscale_ps((v), DISTILL__K16, (v), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define DV_CVTI(v) _mm512_mask_cvtps_epi32(_mm512_setzero_si512(), DISTILL__K16, (v))
#define DVI_ADD(a, b) _mm512_add_epi32((a), (b))
#define DVI_SUB(a, b) _mm512_sub_epi32((a), (b))
#define DVI_SET1(x) _mm512_set1_epi32(x)
#define DVI_SRA1(a) _mm512_mask_srai_epi32((a), DISTILL__K16, (a), 1)
#define DVI_SHL23(a) _mm512_mask_slli_epi32((a), DISTILL__K16, (a), 23)
#define DV_CASTI(i) _mm512_castsi512_ps(i)
#define DV_DIVONE(x) _mm512_div_ps(_mm512_set1_ps(1.0f), (x))
#define DV_DIV(a, b) _mm512_div_ps((a), (b))
#define DV_SQRT(x) _mm512_mask_sqrt_ps((x), DISTILL__K16, (x))
static DISTILL__KATTR __m512 distill__loadh_avx512(const uint16_t *p) {
    __m512i w = _mm512_maskz_cvtepu16_epi32(DISTILL__K16, _mm256_loadu_si256((const __m256i *)(const void *)p));
    return _mm512_castsi512_ps(_mm512_mask_slli_epi32(w, DISTILL__K16, w, 16));
}
#define DV_LOADH(p) distill__loadh_avx512(p)
#elif DISTILL__KERNEL_PASS == 4
/* --- NEON (aarch64: always present, no run-time check needed) ------------------------- */
#define DISTILL__K(name) name##_neon
#define DISTILL__KATTR
#define DISTILL__KNAME "neon"
#define DV_T float32x4_t
#define DVI_T int32x4_t
#define DV_W 4
#define DV_LOAD(p) vld1q_f32(p)
#define DV_STORE(p, v) vst1q_f32((p), (v))
#define DV_SET1(x) vdupq_n_f32(x)
#define DV_ZERO() vdupq_n_f32(0.0f)
#define DV_FMA(a, b, c) vfmaq_f32((c), (a), (b))
#define DV_ADD(a, b) vaddq_f32((a), (b))
#define DV_SUB(a, b) vsubq_f32((a), (b))
#define DV_MUL(a, b) vmulq_f32((a), (b))
#define DV_MAX(a, b) vmaxq_f32((a), (b))
#define DV_MIN(a, b) vminq_f32((a), (b))
#define DV_HSUM(v) vaddvq_f32(v)
#define DV_HMAX(v) vmaxvq_f32(v)
#define DV_ROUND(v) vrndnq_f32(v)
#define DV_CVTI(v) vcvtq_s32_f32(v)
#define DVI_ADD(a, b) vaddq_s32((a), (b))
#define DVI_SUB(a, b) vsubq_s32((a), (b))
#define DVI_SET1(x) vdupq_n_s32(x)
#define DVI_SRA1(a) vshrq_n_s32((a), 1)
#define DVI_SHL23(a) vshlq_n_s32((a), 23)
#define DV_CASTI(i) vreinterpretq_f32_s32(i)
#define DV_DIVONE(x) vdivq_f32(vdupq_n_f32(1.0f), (x))
#define DV_DIV(a, b) vdivq_f32((a), (b))
#define DV_SQRT(x) vsqrtq_f32(x)
#define DV_LOADH(p) vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16))
#endif

#if !defined(DV_HSUM4)   /* four horizontal sums (AVX-512 has a faster one with the same bits) */
#define DV_HSUM4(v0, v1, v2, v3, y) ((y)[0] = DV_HSUM(v0), (y)[1] = DV_HSUM(v1), (y)[2] = DV_HSUM(v2), (y)[3] = DV_HSUM(v3))
#endif

/* exp(x) for a vector (used by the softmax primitives):
     x = n ln2 + r, n = round(x / ln2), |r| <= ln2/2, r computed with ln2 split in a high part
     exact in float and a low part (Cody-Waite), so r carries no cancellation error;
     exp(r) by its Taylor polynomial of degree 7 (truncation error r^8/8! < 6e-9 relative);
     2^n built in the exponent field, in two halves 2^(n>>1) * 2^(n - (n>>1)) so that every
     n in [-150, 128] works (denormal results and overflow to +inf come out right).
   Inputs are clamped to [-104, 89] (exp is 0 resp. +inf beyond); NaN propagates.
   Max relative error vs exp() in double over [-87.3, 88.7]: 1.0e-7 measured (about 1.7 ulp),
   tested < 2e-7 in tests/test_kernels.c. */
DISTILL__UNUSED static DISTILL__KATTR DV_T DISTILL__K(distill__vexp)(DV_T x) {
    DV_T n, r, p;
    DVI_T ni, n1, n2;
    x = DV_MAX(DV_SET1(-104.0f), x);
    x = DV_MIN(DV_SET1(89.0f), x);
    n = DV_ROUND(DV_MUL(x, DV_SET1(1.44269504088896341f)));
    r = DV_FMA(n, DV_SET1(-0.693145751953125f), x);
    r = DV_FMA(n, DV_SET1(-1.428606765330187e-06f), r);
    p = DV_SET1(1.0f / 5040.0f);
    p = DV_FMA(p, r, DV_SET1(1.0f / 720.0f));
    p = DV_FMA(p, r, DV_SET1(1.0f / 120.0f));
    p = DV_FMA(p, r, DV_SET1(1.0f / 24.0f));
    p = DV_FMA(p, r, DV_SET1(1.0f / 6.0f));
    p = DV_FMA(p, r, DV_SET1(0.5f));
    p = DV_FMA(p, r, DV_SET1(1.0f));
    p = DV_FMA(p, r, DV_SET1(1.0f));
    ni = DV_CVTI(n);
    n1 = DVI_SRA1(ni);
    n2 = DVI_SUB(ni, n1);
    p = DV_MUL(p, DV_CASTI(DVI_SHL23(DVI_ADD(n1, DVI_SET1(127)))));
    return DV_MUL(p, DV_CASTI(DVI_SHL23(DVI_ADD(n2, DVI_SET1(127)))));
}

/* The micro-kernel: a 6 x (2 DV_W) tile of C in 12 vector registers.
     c (6, 2W) (+)= a (6, kc) . b (kc, 2W)
   b is a packed panel (for each p, the 2W values of row p); a(r, p) = a[r * rs + p * cs]: a
   packed panel (rs 1, cs 6: for each p, the 6 values of column p) or, in place, 6 rows of A
   contiguous along k (rs = A's row stride, cs 1: the forward's and dX's A, which then need no
   packing; for a product with few columns, N = 96, packing cost a float copied per 96
   multiply-adds). One body, always inlined into both, so both do the same FMAs in the same
   order: the same bits. Per step: 2 loads of b, 6 broadcasts of a, 12 FMAs. acc: 0 stores the
   product, 1 adds it to c. ldc is the row stride of c. */
DISTILL__INLINE DISTILL__KATTR void DISTILL__K(distill__ukernel_any)(int kc, const float *a, size_t rs, size_t cs,
                                                                    const float *b, float *c, size_t ldc, int acc) {
    const float *a0 = a, *a1 = a + rs, *a2 = a + 2 * rs, *a3 = a + 3 * rs, *a4 = a + 4 * rs, *a5 = a + 5 * rs;
    DV_T c00 = DV_ZERO(), c01 = DV_ZERO(), c10 = DV_ZERO(), c11 = DV_ZERO();
    DV_T c20 = DV_ZERO(), c21 = DV_ZERO(), c30 = DV_ZERO(), c31 = DV_ZERO();
    DV_T c40 = DV_ZERO(), c41 = DV_ZERO(), c50 = DV_ZERO(), c51 = DV_ZERO();
    DV_T b0, b1, av;
    size_t q;
    int p;
    for (p = 0, q = 0; p < kc; p++, q += cs) {
        b0 = DV_LOAD(b);
        b1 = DV_LOAD(b + DV_W);
        av = DV_SET1(a0[q]); c00 = DV_FMA(av, b0, c00); c01 = DV_FMA(av, b1, c01);
        av = DV_SET1(a1[q]); c10 = DV_FMA(av, b0, c10); c11 = DV_FMA(av, b1, c11);
        av = DV_SET1(a2[q]); c20 = DV_FMA(av, b0, c20); c21 = DV_FMA(av, b1, c21);
        av = DV_SET1(a3[q]); c30 = DV_FMA(av, b0, c30); c31 = DV_FMA(av, b1, c31);
        av = DV_SET1(a4[q]); c40 = DV_FMA(av, b0, c40); c41 = DV_FMA(av, b1, c41);
        av = DV_SET1(a5[q]); c50 = DV_FMA(av, b0, c50); c51 = DV_FMA(av, b1, c51);
        b += 2 * DV_W;
    }
    if (acc) {
        c00 = DV_ADD(c00, DV_LOAD(c + 0 * ldc)); c01 = DV_ADD(c01, DV_LOAD(c + 0 * ldc + DV_W));
        c10 = DV_ADD(c10, DV_LOAD(c + 1 * ldc)); c11 = DV_ADD(c11, DV_LOAD(c + 1 * ldc + DV_W));
        c20 = DV_ADD(c20, DV_LOAD(c + 2 * ldc)); c21 = DV_ADD(c21, DV_LOAD(c + 2 * ldc + DV_W));
        c30 = DV_ADD(c30, DV_LOAD(c + 3 * ldc)); c31 = DV_ADD(c31, DV_LOAD(c + 3 * ldc + DV_W));
        c40 = DV_ADD(c40, DV_LOAD(c + 4 * ldc)); c41 = DV_ADD(c41, DV_LOAD(c + 4 * ldc + DV_W));
        c50 = DV_ADD(c50, DV_LOAD(c + 5 * ldc)); c51 = DV_ADD(c51, DV_LOAD(c + 5 * ldc + DV_W));
    }
    DV_STORE(c + 0 * ldc, c00); DV_STORE(c + 0 * ldc + DV_W, c01);
    DV_STORE(c + 1 * ldc, c10); DV_STORE(c + 1 * ldc + DV_W, c11);
    DV_STORE(c + 2 * ldc, c20); DV_STORE(c + 2 * ldc + DV_W, c21);
    DV_STORE(c + 3 * ldc, c30); DV_STORE(c + 3 * ldc + DV_W, c31);
    DV_STORE(c + 4 * ldc, c40); DV_STORE(c + 4 * ldc + DV_W, c41);
    DV_STORE(c + 5 * ldc, c50); DV_STORE(c + 5 * ldc + DV_W, c51);
}
static DISTILL__KATTR void DISTILL__K(distill__ukernel)(int kc, const float *a, const float *b, float *c,
                                                       size_t ldc, int acc) {
    DISTILL__K(distill__ukernel_any)(kc, a, 1, 6, b, c, ldc, acc);
}
/* The micro-kernel reading A in place: row r of the 6 at a + r * rsa, contiguous along k. */
static DISTILL__KATTR void DISTILL__K(distill__ukernel_sa)(int kc, const float *a, size_t rsa, const float *b,
                                                          float *c, size_t ldc, int acc) {
    DISTILL__K(distill__ukernel_any)(kc, a, rsa, 1, b, c, ldc, acc);
}

/* The weight operand of dot and gemv: FP32 (b, w) or BF16 bits widened exactly (b16, w16; the
   other pointer NULL). Each kernel below is one body, always inlined into an FP32 and a BF16
   variant with the unused pointer a constant NULL, so the compiler keeps one branch: a BF16
   weight gives the bits the FP32 weight it widens to would give. */
#define DISTILL__WLOAD(w, w16, i) ((w16) ? DV_LOADH((w16) + (i)) : DV_LOAD((w) + (i)))
/* BF16 weight rows are prefetched 8 KB ahead of the loads: with twice the FMAs per byte of
   FP32, the hardware prefetcher alone kept a Zen5 core at ~60 % of the FP32 stream's rate
   (15M model, batch-1 decode: 600 -> 860 tokens/s, bench/RESULTS.md). FP32 rows gain nothing.
   The address is formed as an integer: it may lie past the weights (a prefetch never faults). */
#if (DISTILL__KERNEL_PASS == 2 || DISTILL__KERNEL_PASS == 3) && (defined(__GNUC__) || defined(__clang__))
#define DV_PREFETCH_AHEAD(p) __builtin_prefetch((const void *)((uintptr_t)(const void *)(p) + 8192))
#else
#define DV_PREFETCH_AHEAD(p) ((void)0)
#endif
#define DISTILL__WAT(w, w16, i) ((w16) ? distill__h2f((w16)[i]) : (w)[i])

/* sum a[i]*b[i]: four independent vector accumulators, combined in a fixed order. */
DISTILL__INLINE DISTILL__KATTR float DISTILL__K(distill__dotw)(const float *a, const float *b, const uint16_t *b16, int n) {
    DV_T s0 = DV_ZERO(), s1 = DV_ZERO(), s2 = DV_ZERO(), s3 = DV_ZERO();
    int i = 0;
    float s;
    for (; i + 4 * DV_W <= n; i += 4 * DV_W) {
        if (b16) DV_PREFETCH_AHEAD(b16 + i);
        s0 = DV_FMA(DV_LOAD(a + i), DISTILL__WLOAD(b, b16, i), s0);
        s1 = DV_FMA(DV_LOAD(a + i + DV_W), DISTILL__WLOAD(b, b16, i + DV_W), s1);
        s2 = DV_FMA(DV_LOAD(a + i + 2 * DV_W), DISTILL__WLOAD(b, b16, i + 2 * DV_W), s2);
        s3 = DV_FMA(DV_LOAD(a + i + 3 * DV_W), DISTILL__WLOAD(b, b16, i + 3 * DV_W), s3);
    }
    for (; i + DV_W <= n; i += DV_W) s0 = DV_FMA(DV_LOAD(a + i), DISTILL__WLOAD(b, b16, i), s0);
    s = DV_HSUM(DV_ADD(DV_ADD(s0, s1), DV_ADD(s2, s3)));
    for (; i < n; i++) s += a[i] * DISTILL__WAT(b, b16, i);
    return s;
}
static DISTILL__KATTR float DISTILL__K(distill__dot)(const float *a, const float *b, int n) {
    return DISTILL__K(distill__dotw)(a, b, NULL, n);
}

/* Matrix-vector product for decoding: y[o] = x . w[o] for rows o < rows of w (ldw floats
   apart), n terms each. The weights are streamed once, so this is memory-bound: four rows at a
   time share each load of x, with two accumulators per row (eight FMA chains) and one
   horizontal sum per row. A row's arithmetic is the same in a group of four and alone (the
   remainder loop repeats it), so how rows are grouped or split over threads never changes y.
   w16: the weights as BF16 (w NULL), half the bytes to stream. */
DISTILL__INLINE DISTILL__KATTR void DISTILL__K(distill__gemvw)(float *y, const float *x, const float *w,
                                                              const uint16_t *w16, size_t ldw, int rows, int n) {
    int o = 0, k;
#if defined(DISTILL__GEMV_BY_ROW)
    for (; o < rows; o++)
        y[o] = DISTILL__K(distill__dotw)(x, w16 ? NULL : w + (size_t)o * ldw, w16 ? w16 + (size_t)o * ldw : NULL, n);
    (void)k;
    return;
#endif
    for (; o + 4 <= rows; o += 4) {
        size_t r0 = (size_t)o * ldw, r1 = r0 + ldw, r2 = r1 + ldw, r3 = r2 + ldw;
        DV_T a0 = DV_ZERO(), a1 = DV_ZERO(), a2 = DV_ZERO(), a3 = DV_ZERO();
        DV_T b0 = DV_ZERO(), b1 = DV_ZERO(), b2 = DV_ZERO(), b3 = DV_ZERO(), x0, x1;
        float s0, s1, s2, s3, s4[4];
        for (k = 0; k + 2 * DV_W <= n; k += 2 * DV_W) {
            x0 = DV_LOAD(x + k);
            x1 = DV_LOAD(x + k + DV_W);
            if (w16) {
                DV_PREFETCH_AHEAD(w16 + r0 + k); DV_PREFETCH_AHEAD(w16 + r1 + k);
                DV_PREFETCH_AHEAD(w16 + r2 + k); DV_PREFETCH_AHEAD(w16 + r3 + k);
            }
            a0 = DV_FMA(x0, DISTILL__WLOAD(w, w16, r0 + k), a0); b0 = DV_FMA(x1, DISTILL__WLOAD(w, w16, r0 + k + DV_W), b0);
            a1 = DV_FMA(x0, DISTILL__WLOAD(w, w16, r1 + k), a1); b1 = DV_FMA(x1, DISTILL__WLOAD(w, w16, r1 + k + DV_W), b1);
            a2 = DV_FMA(x0, DISTILL__WLOAD(w, w16, r2 + k), a2); b2 = DV_FMA(x1, DISTILL__WLOAD(w, w16, r2 + k + DV_W), b2);
            a3 = DV_FMA(x0, DISTILL__WLOAD(w, w16, r3 + k), a3); b3 = DV_FMA(x1, DISTILL__WLOAD(w, w16, r3 + k + DV_W), b3);
        }
        if (k + DV_W <= n) {
            x0 = DV_LOAD(x + k);
            a0 = DV_FMA(x0, DISTILL__WLOAD(w, w16, r0 + k), a0); a1 = DV_FMA(x0, DISTILL__WLOAD(w, w16, r1 + k), a1);
            a2 = DV_FMA(x0, DISTILL__WLOAD(w, w16, r2 + k), a2); a3 = DV_FMA(x0, DISTILL__WLOAD(w, w16, r3 + k), a3);
            k += DV_W;
        }
        DV_HSUM4(DV_ADD(a0, b0), DV_ADD(a1, b1), DV_ADD(a2, b2), DV_ADD(a3, b3), s4);
        s0 = s4[0]; s1 = s4[1]; s2 = s4[2]; s3 = s4[3];
        for (; k < n; k++) {
            s0 += x[k] * DISTILL__WAT(w, w16, r0 + k); s1 += x[k] * DISTILL__WAT(w, w16, r1 + k);
            s2 += x[k] * DISTILL__WAT(w, w16, r2 + k); s3 += x[k] * DISTILL__WAT(w, w16, r3 + k);
        }
        y[o] = s0; y[o + 1] = s1; y[o + 2] = s2; y[o + 3] = s3;
    }
    for (; o < rows; o++) {   /* the same per-row arithmetic, one row */
        size_t r0 = (size_t)o * ldw;
        DV_T a0 = DV_ZERO(), b0 = DV_ZERO(), x0, x1;
        float s0;
        for (k = 0; k + 2 * DV_W <= n; k += 2 * DV_W) {
            x0 = DV_LOAD(x + k);
            x1 = DV_LOAD(x + k + DV_W);
            a0 = DV_FMA(x0, DISTILL__WLOAD(w, w16, r0 + k), a0); b0 = DV_FMA(x1, DISTILL__WLOAD(w, w16, r0 + k + DV_W), b0);
        }
        if (k + DV_W <= n) {
            x0 = DV_LOAD(x + k);
            a0 = DV_FMA(x0, DISTILL__WLOAD(w, w16, r0 + k), a0);
            k += DV_W;
        }
        s0 = DV_HSUM(DV_ADD(a0, b0));
        for (; k < n; k++) s0 += x[k] * DISTILL__WAT(w, w16, r0 + k);
        y[o] = s0;
    }
}
static DISTILL__KATTR void DISTILL__K(distill__gemv)(float *y, const float *x, const float *w, size_t ldw, int rows, int n) {
    DISTILL__K(distill__gemvw)(y, x, w, NULL, ldw, rows, n);
}
static DISTILL__KATTR void DISTILL__K(distill__gemv16)(float *y, const float *x, const uint16_t *w16, size_t ldw,
                                                      int rows, int n) {
    DISTILL__K(distill__gemvw)(y, x, NULL, w16, ldw, rows, n);
}

/* y += a*x */
static DISTILL__KATTR void DISTILL__K(distill__axpy)(float *y, float a, const float *x, int n) {
    DV_T av = DV_SET1(a);
    int i = 0;
    for (; i + DV_W <= n; i += DV_W) DV_STORE(y + i, DV_FMA(av, DV_LOAD(x + i), DV_LOAD(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

/* y *= a */
static DISTILL__KATTR void DISTILL__K(distill__scale)(float *y, float a, int n) {
    DV_T av = DV_SET1(a);
    int i = 0;
    for (; i + DV_W <= n; i += DV_W) DV_STORE(y + i, DV_MUL(av, DV_LOAD(y + i)));
    for (; i < n; i++) y[i] *= a;
}

/* max x[i] (-INFINITY for n == 0) */
static DISTILL__KATTR float DISTILL__K(distill__max)(const float *x, int n) {
    DV_T m = DV_SET1(-INFINITY);
    int i = 0;
    float s;
    for (; i + DV_W <= n; i += DV_W) m = DV_MAX(m, DV_LOAD(x + i));
    s = DV_HMAX(m);
    for (; i < n; i++) s = x[i] > s ? x[i] : s;
    return s;
}

/* y[i] = exp(x[i] - shift), returns sum y[i]. The tail goes through the same vector exp
   (via a small buffer), so every element gets the same approximation. */
static DISTILL__KATTR float DISTILL__K(distill__exp_sum)(float *y, const float *x, float shift, int n) {
    DV_T sh = DV_SET1(shift), acc = DV_ZERO(), e;
    float buf[DV_W], s;
    int i = 0, j;
    for (; i + DV_W <= n; i += DV_W) {
        e = DISTILL__K(distill__vexp)(DV_SUB(DV_LOAD(x + i), sh));
        DV_STORE(y + i, e);
        acc = DV_ADD(acc, e);
    }
    s = DV_HSUM(acc);
    if (i < n) {
        for (j = 0; j < DV_W; j++) buf[j] = i + j < n ? x[i + j] : shift;
        DV_STORE(buf, DISTILL__K(distill__vexp)(DV_SUB(DV_LOAD(buf), sh)));
        for (j = 0; i + j < n; j++) { y[i + j] = buf[j]; s += buf[j]; }
    }
    return s;
}

/* SwiGLU on n floats: out = silu(g) u, silu(g) = g sigmoid(g), sigmoid(g) = 1/(1 + exp(-g))
   backward: dg = d u s (1 + g (1 - s)), du = d g s   (du may alias d). Tails go through a
   small buffer so every element sees the same arithmetic. */
static DISTILL__KATTR void DISTILL__K(distill__swiglu_fwd)(float *out, const float *gate, const float *up, int n) {
    float bg[DV_W], bu[DV_W];
    int i = 0, j;
    for (;; i += DV_W) {
        const float *g = gate + i, *u = up + i;
        float *o = out + i;
        DV_T gv, s;
        int m = n - i < DV_W ? n - i : DV_W;
        if (m <= 0) break;
        if (m < DV_W) {
            for (j = 0; j < DV_W; j++) { bg[j] = j < m ? g[j] : 0.0f; bu[j] = j < m ? u[j] : 0.0f; }
            g = bg; u = bu; o = bg;
        }
        gv = DV_LOAD(g);
        s = DV_ADD(DV_SET1(1.0f), DISTILL__K(distill__vexp)(DV_SUB(DV_ZERO(), gv)));
        DV_STORE(o, DV_MUL(DV_MUL(gv, DV_LOAD(u)), DV_DIVONE(s)));
        if (m < DV_W) { for (j = 0; j < m; j++) out[i + j] = bg[j]; break; }
    }
}
static DISTILL__KATTR void DISTILL__K(distill__swiglu_bwd)(float *dgate, float *dup, const float *dout,
                                           const float *gate, const float *up, int n) {
    float bg[DV_W], bu[DV_W], bd[DV_W], bdg[DV_W];
    int i = 0, j;
    for (;; i += DV_W) {
        const float *g = gate + i, *u = up + i, *d = dout + i;
        float *dg = dgate + i, *du = dup + i;
        DV_T gv, uv, dv, s, one = DV_SET1(1.0f);
        int m = n - i < DV_W ? n - i : DV_W;
        if (m <= 0) break;
        if (m < DV_W) {
            for (j = 0; j < DV_W; j++) { bg[j] = j < m ? g[j] : 0.0f; bu[j] = j < m ? u[j] : 0.0f;
                                         bd[j] = j < m ? d[j] : 0.0f; }
            g = bg; u = bu; d = bd; dg = bdg; du = bd;
        }
        gv = DV_LOAD(g); uv = DV_LOAD(u); dv = DV_LOAD(d);
        s = DV_DIVONE(DV_ADD(one, DISTILL__K(distill__vexp)(DV_SUB(DV_ZERO(), gv))));
        DV_STORE(dg, DV_MUL(DV_MUL(DV_MUL(dv, uv), s), DV_FMA(gv, DV_SUB(one, s), one)));
        DV_STORE(du, DV_MUL(DV_MUL(dv, gv), s));
        if (m < DV_W) { for (j = 0; j < m; j++) { dgate[i + j] = bdg[j]; dup[i + j] = bd[j]; } break; }
    }
}

/* ---- the elementwise kernels of the training step ------------------------------------
   Each is the scalar formula of its op (RMSNorm, AdamW, the CE head's exp pass) run over
   vectors, with the tail through the same scalar expression. Where a kernel only maps
   elements (no reduction) it uses separate multiplies and adds in the scalar code's order, so
   every kernel set gives the same bits as the scalar one. */

/* RMSNorm forward of one row: out_i = (x_i * r) * w_i. */
static DISTILL__KATTR void DISTILL__K(distill__rms_row)(float *out, const float *x, const float *w, float r, int n) {
    DV_T rv = DV_SET1(r);
    int i = 0;
    for (; i + DV_W <= n; i += DV_W) DV_STORE(out + i, DV_MUL(DV_MUL(DV_LOAD(x + i), rv), DV_LOAD(w + i)));
    for (; i < n; i++) out[i] = x[i] * r * w[i];
}
/* RMSNorm backward of one row (see distill_rmsnorm_backward):
     gx = sum_i g_i w_i x_i,  k = r^3 gx / C,  dx_i += (r g_i) w_i - k x_i */
static DISTILL__KATTR void DISTILL__K(distill__rms_bwd_row)(float *dx, const float *g, const float *x, const float *w,
                                           float r, int n) {
    DV_T acc = DV_ZERO(), rv = DV_SET1(r), kv;
    float gx, k;
    int i = 0;
    for (; i + DV_W <= n; i += DV_W) acc = DV_FMA(DV_MUL(DV_LOAD(g + i), DV_LOAD(w + i)), DV_LOAD(x + i), acc);
    gx = DV_HSUM(acc);
    for (; i < n; i++) gx += g[i] * w[i] * x[i];
    k = r * r * r * gx / (float)n;
    kv = DV_SET1(k);
    for (i = 0; i + DV_W <= n; i += DV_W)
        DV_STORE(dx + i, DV_ADD(DV_LOAD(dx + i), DV_SUB(DV_MUL(DV_MUL(rv, DV_LOAD(g + i)), DV_LOAD(w + i)),
                                                        DV_MUL(kv, DV_LOAD(x + i)))));
    for (; i < n; i++) dx[i] += r * g[i] * w[i] - k * x[i];
}
/* dw_i += (g_i x_i) r over one row's columns [0, n). */
static DISTILL__KATTR void DISTILL__K(distill__rms_dw_row)(float *dw, const float *g, const float *x, float r, int n) {
    DV_T rv = DV_SET1(r);
    int i = 0;
    for (; i + DV_W <= n; i += DV_W)
        DV_STORE(dw + i, DV_ADD(DV_LOAD(dw + i), DV_MUL(DV_MUL(DV_LOAD(g + i), DV_LOAD(x + i)), rv)));
    for (; i < n; i++) dw[i] += g[i] * x[i] * r;
}
/* One AdamW update of n floats (the formula above distill__adam_task), in its exact order. */
static DISTILL__KATTR void DISTILL__K(distill__adamw)(float *p, const float *g, float *m, float *v, size_t n,
                                     const float *k) {
    /* k: clip, b1, b2, step_size, inv_sqrt_bc2, eps, decay_mul */
    DV_T clip = DV_SET1(k[0]), b1 = DV_SET1(k[1]), b2 = DV_SET1(k[2]), ss = DV_SET1(k[3]);
    DV_T ib = DV_SET1(k[4]), eps = DV_SET1(k[5]), dm = DV_SET1(k[6]);
    DV_T c1 = DV_SET1(1.0f - k[1]), c2 = DV_SET1(1.0f - k[2]);
    size_t i = 0;
    for (; i + DV_W <= n; i += DV_W) {
        DV_T gi = DV_MUL(DV_LOAD(g + i), clip);
        DV_T mi = DV_ADD(DV_MUL(b1, DV_LOAD(m + i)), DV_MUL(c1, gi));
        DV_T vi = DV_ADD(DV_MUL(b2, DV_LOAD(v + i)), DV_MUL(DV_MUL(c2, gi), gi));
        DV_STORE(m + i, mi);
        DV_STORE(v + i, vi);
        DV_STORE(p + i, DV_SUB(DV_MUL(DV_LOAD(p + i), dm),
                               DV_DIV(DV_MUL(ss, mi), DV_ADD(DV_MUL(DV_SQRT(vi), ib), eps))));
    }
    for (; i < n; i++) {
        float gi = g[i] * k[0];
        float mi = k[1] * m[i] + (1.0f - k[1]) * gi;
        float vi = k[2] * v[i] + (1.0f - k[2]) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] * k[6] - k[3] * mi / (sqrtf(vi) * k[4] + k[5]);
    }
}
/* Attention backward, one row of a block: d_j <- (p_j (d_j - D)) * scale (dS from dP). */
static DISTILL__KATTR void DISTILL__K(distill__ds_row)(float *d, const float *p, float D, float scale, int n) {
    DV_T dv = DV_SET1(D), sv = DV_SET1(scale);
    int i = 0;
    for (; i + DV_W <= n; i += DV_W)
        DV_STORE(d + i, DV_MUL(DV_MUL(DV_LOAD(p + i), DV_SUB(DV_LOAD(d + i), dv)), sv));
    for (; i < n; i++) d[i] = p[i] * (d[i] - D) * scale;
}
/* The CE head's pass over a block of one logits row: z_j <- e_j = exp(z_j - shift), returns
   sum_j e_j and sets *sz = sum_j e_j (z_j - shift) (both summed per lane, then across lanes). */
static DISTILL__KATTR float DISTILL__K(distill__exp_sum_sz)(float *z, float shift, int n, float *sz) {
    DV_T sh = DV_SET1(shift), acc = DV_ZERO(), accz = DV_ZERO(), d, e;
    float buf[DV_W], s, t;
    int i = 0, j;
    for (; i + DV_W <= n; i += DV_W) {
        d = DV_SUB(DV_LOAD(z + i), sh);
        e = DISTILL__K(distill__vexp)(d);
        DV_STORE(z + i, e);
        acc = DV_ADD(acc, e);
        accz = DV_FMA(e, d, accz);
    }
    s = DV_HSUM(acc);
    t = DV_HSUM(accz);
    if (i < n) {
        for (j = 0; j < DV_W; j++) buf[j] = i + j < n ? z[i + j] : shift;
        DV_STORE(buf, DISTILL__K(distill__vexp)(DV_SUB(DV_LOAD(buf), sh)));
        for (j = 0; i + j < n; j++) { s += buf[j]; t += buf[j] * (z[i + j] - shift); z[i + j] = buf[j]; }
    }
    *sz = t;
    return s;
}

#if DISTILL__KERNEL_PASS == 3 && defined(DISTILL__BF16_CC)
/* The BF16 micro-kernel (mixed precision, "BF16 matrix products" in part 2): an 8 x 32 tile of
   C in 16 registers, c (8,32) (+)= a (8,2kp) . b (2kp,32), the inputs already rounded to BF16
   and packed as pairs along k: a[p*8 + r] holds rows r's elements (2p, 2p+1) in one 32-bit
   word (low half 2p), b[p*32 + j] likewise for column j. vdpbf16ps adds per lane
   a(2p+1) b(2p+1) and then a(2p) b(2p) to the FP32 accumulator, each product exact, each sum
   rounded to nearest even, denormal inputs and outputs flushed to zero (whatever MXCSR says).
   Per pair: 2 loads of b, 8 broadcasts of a, 16 vdpbf16ps. acc: as the FP32 micro-kernel.
   a's layout is given by strides: word (p, r) at a[p*ap + r*ar]: ap = 8, ar = 1 as above, or
   ap = 1, ar = kp (row-major, packed from rows contiguous along k without a transpose). */
typedef __m512bh distill__v512bh;
#define DISTILL__DP(c, a, b) _mm512_dpbf16_ps((c), (distill__v512bh)(a), (distill__v512bh)(b))
static __attribute__((target("avx512f,avx512bw,avx512bf16"))) void
distill__ukernel_bf16_avx512(int kp, const uint32_t *a, size_t ap, size_t ar, const uint32_t *b, float *c,
                             size_t ldc, int acc) {
    __m512 c00 = _mm512_setzero_ps(), c01 = _mm512_setzero_ps(), c10 = _mm512_setzero_ps(), c11 = _mm512_setzero_ps();
    __m512 c20 = _mm512_setzero_ps(), c21 = _mm512_setzero_ps(), c30 = _mm512_setzero_ps(), c31 = _mm512_setzero_ps();
    __m512 c40 = _mm512_setzero_ps(), c41 = _mm512_setzero_ps(), c50 = _mm512_setzero_ps(), c51 = _mm512_setzero_ps();
    __m512 c60 = _mm512_setzero_ps(), c61 = _mm512_setzero_ps(), c70 = _mm512_setzero_ps(), c71 = _mm512_setzero_ps();
    __m512i b0, b1, av;
    const uint32_t *a0 = a, *a1 = a + ar, *a2 = a + 2 * ar, *a3 = a + 3 * ar;
    const uint32_t *a4 = a + 4 * ar, *a5 = a + 5 * ar, *a6 = a + 6 * ar, *a7 = a + 7 * ar;
    size_t q = 0;
    int p;
    for (p = 0; p < kp; p++, q += ap) {
        b0 = _mm512_loadu_si512((const void *)b);
        b1 = _mm512_loadu_si512((const void *)(b + 16));
        av = _mm512_set1_epi32((int)a0[q]); c00 = DISTILL__DP(c00, av, b0); c01 = DISTILL__DP(c01, av, b1);
        av = _mm512_set1_epi32((int)a1[q]); c10 = DISTILL__DP(c10, av, b0); c11 = DISTILL__DP(c11, av, b1);
        av = _mm512_set1_epi32((int)a2[q]); c20 = DISTILL__DP(c20, av, b0); c21 = DISTILL__DP(c21, av, b1);
        av = _mm512_set1_epi32((int)a3[q]); c30 = DISTILL__DP(c30, av, b0); c31 = DISTILL__DP(c31, av, b1);
        av = _mm512_set1_epi32((int)a4[q]); c40 = DISTILL__DP(c40, av, b0); c41 = DISTILL__DP(c41, av, b1);
        av = _mm512_set1_epi32((int)a5[q]); c50 = DISTILL__DP(c50, av, b0); c51 = DISTILL__DP(c51, av, b1);
        av = _mm512_set1_epi32((int)a6[q]); c60 = DISTILL__DP(c60, av, b0); c61 = DISTILL__DP(c61, av, b1);
        av = _mm512_set1_epi32((int)a7[q]); c70 = DISTILL__DP(c70, av, b0); c71 = DISTILL__DP(c71, av, b1);
        b += 32;
    }
#define DISTILL__ST(r, v0, v1) do { float *cr = c + (size_t)(r) * ldc;                              \
        if (acc) { v0 = _mm512_add_ps(v0, _mm512_loadu_ps(cr)); v1 = _mm512_add_ps(v1, _mm512_loadu_ps(cr + 16)); } \
        _mm512_storeu_ps(cr, v0); _mm512_storeu_ps(cr + 16, v1); } while (0)
    DISTILL__ST(0, c00, c01); DISTILL__ST(1, c10, c11); DISTILL__ST(2, c20, c21); DISTILL__ST(3, c30, c31);
    DISTILL__ST(4, c40, c41); DISTILL__ST(5, c50, c51); DISTILL__ST(6, c60, c61); DISTILL__ST(7, c70, c71);
#undef DISTILL__ST
}
#undef DISTILL__DP

/* BF16 bits of 16 floats, by the CPU's own conversion (vcvtneps2bf16, AVX512_BF16: these
   packers run only on the vdpbf16ps path): nearest even, denormal inputs to signed zero, NaN
   quieted, the bits of distill__bf16_bits for every input (tests/test_bf16.c compares the
   packed words on random bit patterns and the special values). One instruction for the dozen
   integer ones of the rounding written out (perf, M, 1 thread: the packers' time went from 0.31
   to 0.22 of the micro-kernel's).
   lo16: the 16 results zero-extended in 32-bit lanes; h16: packed in 256 bits. */
#define DISTILL__BF16_TGT "avx512f,avx512bw,avx512bf16"
static __attribute__((target(DISTILL__BF16_TGT))) __m256i distill__bf16_h16_avx512(__m512 x) {
    return (__m256i)_mm512_cvtneps_pbh(x);
}
static __attribute__((target(DISTILL__BF16_TGT))) __m512i distill__bf16_lo16_avx512(__m512 x) {
    return _mm512_maskz_cvtepu16_epi32((__mmask16)0xFFFF, distill__bf16_h16_avx512(x));   /* masked: see DISTILL__K16 */
}

/* distill__bf16_pack2 (part 2) for the full panels of the four products, vectorised; anything
   else (edge panels, other strides, the last odd k) goes to the scalar version. Same bits.
     rs == 1 (rows contiguous: B of dX and dW, A of dW): per pair, 16 rows from source rows
       2p and 2p+1: the BF16 of 2p+1 shifted up | the BF16 of 2p;
     cs == 1 (k contiguous: A and B of the forward, A of dX): per row, 16 k -> 8 pair words
       (16 BF16 values in a row), 8 rows x 8 pairs transposed in registers. */
static __attribute__((target(DISTILL__BF16_TGT ",avx2"))) void
distill__bf16_pack2_avx512(uint32_t *dst, const float *src, size_t rs, size_t cs, int h, int w, int kb) {
    const __mmask16 K8 = (__mmask16)0xFF;
    int p = 0, r, g, kp = (kb + 1) / 2;
    if (h == w && w == 8 && rs == 1 && cs >= 8) {   /* two pairs per vector: rows 2p|2p+2 and 2p+1|2p+3 */
        for (; 2 * p + 3 < kb; p += 2) {
            const float *s0 = src + (size_t)(2 * p) * cs;
            __m512 x0 = _mm512_mask_loadu_ps(_mm512_maskz_loadu_ps(K8, s0), (__mmask16)0xFF00, s0 + 2 * cs - 8);
            __m512 x1 = _mm512_mask_loadu_ps(_mm512_maskz_loadu_ps(K8, s0 + cs), (__mmask16)0xFF00, s0 + 3 * cs - 8);
            __m512i e = distill__bf16_lo16_avx512(x0), o = distill__bf16_lo16_avx512(x1);
            _mm512_storeu_si512((void *)(dst + (size_t)p * 8), _mm512_or_si512(_mm512_maskz_slli_epi32((__mmask16)0xFFFF, o, 16), e));
        }
    } else if (h == w && w == 32 && rs == 1) {
        for (; 2 * p + 1 < kb; p++) {
            const float *s0 = src + (size_t)(2 * p) * cs, *s1 = s0 + cs;
            uint32_t *d = dst + (size_t)p * w;
            for (r = 0; r < 32; r += 16) {
                __m512i e = distill__bf16_lo16_avx512(_mm512_loadu_ps(s0 + r));
                __m512i o = distill__bf16_lo16_avx512(_mm512_loadu_ps(s1 + r));
                _mm512_storeu_si512((void *)(d + r), _mm512_or_si512(_mm512_maskz_slli_epi32((__mmask16)0xFFFF, o, 16), e));
            }
        }
    } else if (h == w && (w == 8 || w == 32) && cs == 1) {
        for (; 2 * p + 16 <= kb; p += 8) {
            for (g = 0; g < w; g += 8) {
                __m256i v[8], t[8], u[8];
                const float *s = src + (size_t)g * rs + (size_t)(2 * p);
                uint32_t *d = dst + (size_t)p * w + g;
                for (r = 0; r < 8; r++) v[r] = distill__bf16_h16_avx512(_mm512_loadu_ps(s + (size_t)r * rs));
                t[0] = _mm256_unpacklo_epi32(v[0], v[1]); t[1] = _mm256_unpackhi_epi32(v[0], v[1]);
                t[2] = _mm256_unpacklo_epi32(v[2], v[3]); t[3] = _mm256_unpackhi_epi32(v[2], v[3]);
                t[4] = _mm256_unpacklo_epi32(v[4], v[5]); t[5] = _mm256_unpackhi_epi32(v[4], v[5]);
                t[6] = _mm256_unpacklo_epi32(v[6], v[7]); t[7] = _mm256_unpackhi_epi32(v[6], v[7]);
                u[0] = _mm256_unpacklo_epi64(t[0], t[2]); u[1] = _mm256_unpackhi_epi64(t[0], t[2]);
                u[2] = _mm256_unpacklo_epi64(t[1], t[3]); u[3] = _mm256_unpackhi_epi64(t[1], t[3]);
                u[4] = _mm256_unpacklo_epi64(t[4], t[6]); u[5] = _mm256_unpackhi_epi64(t[4], t[6]);
                u[6] = _mm256_unpacklo_epi64(t[5], t[7]); u[7] = _mm256_unpackhi_epi64(t[5], t[7]);
                for (r = 0; r < 4; r++) {
                    _mm256_storeu_si256((__m256i *)(void *)(d + (size_t)r * w), _mm256_permute2x128_si256(u[r], u[r + 4], 0x20));
                    _mm256_storeu_si256((__m256i *)(void *)(d + (size_t)(r + 4) * w), _mm256_permute2x128_si256(u[r], u[r + 4], 0x31));
                }
            }
        }
    }
    if (p < kp) distill__bf16_pack2(dst + (size_t)p * w, src + (size_t)(2 * p) * cs, rs, cs, h, w, kb - 2 * p);
}

/* A panel of w rows contiguous along k (src(r, k) = src[r*rs + k]) in the row-major layout of
   the micro-kernel (ap = 1, ar = kp): row r's pair words at dst[r*kp + p], rows h..w-1 zero. No
   transpose: 16 floats -> 8 words (16 BF16 values in a row). */
static __attribute__((target(DISTILL__BF16_TGT))) void
distill__bf16_pack_rows_avx512(uint32_t *dst, const float *src, size_t rs, int h, int w, int kb) {
    int kp = (kb + 1) / 2, r, k;
    for (r = 0; r < h; r++) {
        const float *s = src + (size_t)r * rs;
        uint32_t *d = dst + (size_t)r * kp;
        for (k = 0; k + 16 <= kb; k += 16)
            _mm256_storeu_si256((__m256i *)(void *)(d + k / 2), distill__bf16_h16_avx512(_mm512_loadu_ps(s + k)));
        if (k < kb) distill__bf16_pack2(d + k / 2, s + k, 0, 1, 1, 1, kb - k);
    }
    if (h < w) memset(dst + (size_t)h * kp, 0, sizeof(uint32_t) * (size_t)kp * (size_t)(w - h));
}
#endif

/* This set's table (the struct is declared before the passes, in part 2 below). */
static const distill__isa_ops DISTILL__K(distill__ops) = {
    DISTILL__KNAME, 6, 2 * DV_W, DISTILL__K(distill__ukernel), DISTILL__K(distill__dot),
    DISTILL__K(distill__axpy), DISTILL__K(distill__scale), DISTILL__K(distill__max),
    DISTILL__K(distill__exp_sum), DISTILL__K(distill__swiglu_fwd), DISTILL__K(distill__swiglu_bwd),
    DISTILL__K(distill__gemv), DISTILL__K(distill__rms_row), DISTILL__K(distill__rms_bwd_row),
    DISTILL__K(distill__rms_dw_row), DISTILL__K(distill__adamw), DISTILL__K(distill__exp_sum_sz),
    DISTILL__K(distill__ds_row), DISTILL__K(distill__ukernel_sa), DISTILL__K(distill__gemv16)
};
#undef DV_T
#undef DVI_T
#undef DV_W
#undef DV_LOAD
#undef DV_STORE
#undef DV_SET1
#undef DV_ZERO
#undef DV_FMA
#undef DV_ADD
#undef DV_SUB
#undef DV_MUL
#undef DV_MAX
#undef DV_MIN
#undef DV_HSUM
#undef DV_HMAX
#undef DV_ROUND
#undef DV_CVTI
#undef DVI_ADD
#undef DVI_SUB
#undef DVI_SET1
#undef DVI_SRA1
#undef DVI_SHL23
#undef DV_CASTI
#undef DV_DIVONE
#undef DV_DIV
#undef DV_SQRT
#undef DV_LOADH
#undef DV_HSUM4
#undef DISTILL__WLOAD
#undef DV_PREFETCH_AHEAD
#undef DISTILL__WAT
#undef DISTILL__K16
#undef DISTILL__GEMV_BY_ROW
#undef DISTILL__K
#undef DISTILL__KATTR
#undef DISTILL__KNAME
#undef DISTILL__KERNEL_PASS
#endif /* DISTILL__KERNEL_PASS */

/* ===================================================================================== */
/* IMPLEMENTATION, part 2: dispatch, matrix products, and everything after them          */
/* ===================================================================================== */
#if defined(DISTILL__IMPLEMENTATION_CONTINUES)
#undef DISTILL__IMPLEMENTATION_CONTINUES

/* The table of one kernel set. nr = 2 * DV_W columns per micro-tile, 6 rows. */
struct distill__isa_ops {
    const char *name;
    int mr, nr;
    void (*ukernel)(int kc, const float *a, const float *b, float *c, size_t ldc, int acc);
    float (*dot)(const float *a, const float *b, int n);
    void (*axpy)(float *y, float a, const float *x, int n);
    void (*scale)(float *y, float a, int n);
    float (*max)(const float *x, int n);
    float (*exp_sum)(float *y, const float *x, float shift, int n);
    void (*swiglu_fwd)(float *out, const float *gate, const float *up, int n);
    void (*swiglu_bwd)(float *dgate, float *dup, const float *dout, const float *gate, const float *up, int n);
    void (*gemv)(float *y, const float *x, const float *w, size_t ldw, int rows, int n);
    void (*rms_row)(float *out, const float *x, const float *w, float r, int n);
    void (*rms_bwd_row)(float *dx, const float *g, const float *x, const float *w, float r, int n);
    void (*rms_dw_row)(float *dw, const float *g, const float *x, float r, int n);
    void (*adamw)(float *p, const float *g, float *m, float *v, size_t n, const float *k);
    float (*exp_sum_sz)(float *z, float shift, int n, float *sz);
    void (*ds_row)(float *d, const float *p, float D, float scale, int n);
    void (*ukernel_sa)(int kc, const float *a, size_t rsa, const float *b, float *c, size_t ldc, int acc);
    void (*gemv16)(float *y, const float *x, const uint16_t *w16, size_t ldw, int rows, int n);
};

/* BF16 packing in scalar code ("BF16 matrix products" below); the vectorised one falls back to it */
static void distill__bf16_pack2(uint32_t *dst, const float *src, size_t rs, size_t cs, int h, int w, int kb);

/* The kernel sets: the KERNEL BLOCK above, once per ISA this compiler can target. */
#define DISTILL__KERNEL_PASS 1
#include DISTILL_HEADER_NAME
#if defined(DISTILL__KERNEL_PASS)
#error "distill.h: the header's re-inclusion of itself reached another file; define DISTILL_HEADER_NAME to this file's name (see 'The kernels')"
#endif
#if defined(DISTILL__X86)
#define DISTILL__KERNEL_PASS 2
#include DISTILL_HEADER_NAME
#define DISTILL__KERNEL_PASS 3
#include DISTILL_HEADER_NAME
#endif
#if defined(DISTILL__NEON)
#define DISTILL__KERNEL_PASS 4
#include DISTILL_HEADER_NAME
#endif

/* Kernel set by name if this build and this CPU support it, else NULL. */
static const distill__isa_ops *distill__ops_by_name(const char *name) {
    if (!strcmp(name, "scalar")) return &distill__ops_scalar;
#if defined(DISTILL__X86)
    __builtin_cpu_init();
    if (!strcmp(name, "avx2") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return &distill__ops_avx2;
    if (!strcmp(name, "avx512") && __builtin_cpu_supports("avx512f")) return &distill__ops_avx512;
#endif
#if defined(DISTILL__NEON)
    if (!strcmp(name, "neon")) return &distill__ops_neon;
#endif
    return NULL;
}

/* The best kernel set: DISTILL_SIMD if set and usable, else the widest the CPU has. */
static const distill__isa_ops *distill__ops_best(void) {
    static const char *const order[] = {"avx512", "avx2", "neon", "scalar"};
    const distill__isa_ops *o;
    const char *env = getenv("DISTILL_SIMD");
    size_t i;
    if (env && *env && (o = distill__ops_by_name(env)) != NULL) return o;
    for (i = 0; i < sizeof order / sizeof order[0]; i++)
        if ((o = distill__ops_by_name(order[i])) != NULL) return o;
    return &distill__ops_scalar;
}

static const distill__isa_ops *distill__ops(void) {
    const distill__isa_ops *o = distill__the_pool.ops;
    if (!o) distill__the_pool.ops = o = distill__ops_best();
    return o;
}

DISTILL_API int distill_set_simd(const char *name) {
    const distill__isa_ops *o = (name && *name) ? distill__ops_by_name(name) : distill__ops_best();
    if (!o) return -1;
    distill__the_pool.ops = o;
    return 0;
}

DISTILL_API const char *distill_simd_name(void) { return distill__ops()->name; }

/* ===================================================================================== */
/* Vector primitives                                                                      */
/* ===================================================================================== */
DISTILL_API float distill_vec_dot(const float *a, const float *b, int n) {
    return distill__ops()->dot(a, b, n);
}
DISTILL_API void distill_vec_axpy(float *y, float a, const float *x, int n) {
    distill__ops()->axpy(y, a, x, n);
}
DISTILL_API void distill_vec_scale(float *y, float a, int n) { distill__ops()->scale(y, a, n); }
DISTILL_API float distill_vec_max(const float *x, int n) { return distill__ops()->max(x, n); }
DISTILL_API float distill_vec_exp_sum(float *y, const float *x, float shift, int n) {
    return distill__ops()->exp_sum(y, x, shift, n);
}

/* SwiGLU on a range (call it from the model's tasks on their chunk), see the template. */
DISTILL_API void distill_vec_swiglu_forward(float *out, const float *gate, const float *up, int n) {
    distill__ops()->swiglu_fwd(out, gate, up, n);
}
DISTILL_API void distill_vec_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                                             const float *up, int n) {
    distill__ops()->swiglu_bwd(dgate, dup, dout, gate, up, n);
}

/* ===================================================================================== */
/* Matrix products                                                                        */
/* ===================================================================================== */
/* The scalar references: the definitions, written as plainly as possible. */
DISTILL_API void distill_matmul_forward_ref(float *out, const float *inp, const float *weight,
                                            const float *bias, int BT, int C, int OC) {
    int t, o, i;
    for (t = 0; t < BT; t++) {
        const float *x = inp + (size_t)t * C;
        for (o = 0; o < OC; o++) {
            const float *w = weight + (size_t)o * C;
            float s = bias ? bias[o] : 0.0f;
            for (i = 0; i < C; i++) s += x[i] * w[i];
            out[(size_t)t * OC + o] = s;
        }
    }
}

DISTILL_API void distill_matmul_backward_ref(float *dinp, float *dweight, float *dbias,
                                             const float *dout, const float *inp,
                                             const float *weight, int BT, int C, int OC) {
    int t, o, i;
    for (t = 0; t < BT; t++) {
        const float *g = dout + (size_t)t * OC;
        for (o = 0; o < OC; o++) {
            float d = g[o];
            if (dinp) { float *dx = dinp + (size_t)t * C; const float *w = weight + (size_t)o * C;
                        for (i = 0; i < C; i++) dx[i] += d * w[i]; }
            if (dweight) { float *dw = dweight + (size_t)o * C; const float *x = inp + (size_t)t * C;
                           for (i = 0; i < C; i++) dw[i] += d * x[i]; }
            if (dbias) dbias[o] += d;
        }
    }
}

/* One general product, the engine under all three:
     C (M,N) = A (M,K) . B (K,N)   [+ bias (N) on every row]     (accumulate = 0)
     C (M,N) += A (M,K) . B (K,N)                                (accumulate = 1)
   with element (i,k) of A at a[i*rsa + k*csa] and (k,j) of B at b[k*rsb + j*csb], so the
   transposes the three matmuls need are just strides:
     forward  out = inp . W^T:   M=BT N=OC K=C   A=inp (C,1)     B=W^T  (1,C)
     dX      dinp += dout . W:   M=BT N=C  K=OC  A=dout (OC,1)   B=W    (C,1)
     dW        dW += dout^T.inp: M=OC N=C  K=BT  A=dout^T (1,OC) B=inp  (C,1)

   Blocking (the classic Goto/BLIS scheme): the output is cut into tasks of mc x nc; a task
   walks K in blocks of KC, packs the B block (KC x nc) into nr-column panels once, then for
   each MC-row block packs A (MC x KC, stays in L2) into 6-row panels and runs the micro-kernel
   over all (6 x nr) tiles: one B panel (KC x nr) stays in L1 while the A panels stream past. Packing also handles the
   strides and zero-pads the edges, so the micro-kernel only ever sees full tiles. When A's
   rows are contiguous along k (forward, dX) a second micro-kernel reads them in place and
   only a last partial 6-row panel is packed.

   Determinism: the value of C(i,j) is fixed by the K blocking (KC, the same everywhere), the
   one cut of a long K (distill__gemm_run_ksplit, by shape) and the micro-kernel's order over
   k inside a block (the same in both micro-kernels); the tile sizes and which thread computes
   which tile do not change it. So results are bit-identical for any thread count. */
#define DISTILL__KC 256
#define DISTILL__MC 96   /* multiple of 6 */
#define DISTILL__NC 1024 /* multiple of every nr (2, 8, 16, 32); the B block (KC x NC, 1 MB) sits in L2/L3 */
#define DISTILL__NCS 4096 /* columns of the B block packed once and shared by all threads (4 MB);
                             the heuristic in distill__gemm_run only shares B for N < 3 NC, so
                             its column loop runs once today */
#ifndef DISTILL__SHARED_MIN
#define DISTILL__SHARED_MIN 16384 /* floats of one B block (KC x N) from which threads share it */
#endif

typedef struct distill__gemm {
    int M, N, K;
    const float *a; size_t rsa, csa;
    const float *b; size_t rsb, csb;
    const uint16_t *b16;   /* or B as BF16 bits (a model's BF16 weights; b NULL), widened when packed */
    float *c; size_t ldc;
    const float *bias;
    int accumulate;
    int mc, nc, tiles_n;
    const distill__isa_ops *ops;
} distill__gemm;

/* dst[k*w + r] = src[r*rs + k*cs] for r < h, and 0 for h <= r < w (the zero padding).
   Packing is pure data movement, but with the small K of attention blocks it costs about as
   much as the FMAs, so the common cases get loops the compiler turns into plain copies:
   writes always go sequentially through dst. */
static void distill__pack(float *dst, const float *src, size_t rs, size_t cs, int h, int w, int kb) {
    int r, k;
    if (cs == 1 && h == 6) {            /* 6 source rows, each contiguous along k (A panels) */
        const float *s0 = src, *s1 = src + rs, *s2 = src + 2 * rs, *s3 = src + 3 * rs;
        const float *s4 = src + 4 * rs, *s5 = src + 5 * rs;
        for (k = 0; k < kb; k++, dst += w) {
            dst[0] = s0[k]; dst[1] = s1[k]; dst[2] = s2[k]; dst[3] = s3[k]; dst[4] = s4[k]; dst[5] = s5[k];
            for (r = 6; r < w; r++) dst[r] = 0.0f;
        }
    } else if (cs == 1) {               /* a transpose: gather across rows, write sequentially */
        for (k = 0; k < kb; k++, dst += w) {
            for (r = 0; r < h; r++) dst[r] = src[(size_t)r * rs + k];
            for (; r < w; r++) dst[r] = 0.0f;
        }
    } else if (rs == 1 && h == 6 && w == 6) { /* 6 contiguous floats per k (A panels of dW) */
        for (k = 0; k < kb; k++, dst += 6) {
            const float *s = src + (size_t)k * cs;
            dst[0] = s[0]; dst[1] = s[1]; dst[2] = s[2]; dst[3] = s[3]; dst[4] = s[4]; dst[5] = s[5];
        }
    } else if (rs == 1 && h == w) {     /* contiguous rows of w floats: copies */
        for (k = 0; k < kb; k++, dst += w) memcpy(dst, src + (size_t)k * cs, sizeof(float) * (size_t)w);
    } else {
        for (k = 0; k < kb; k++, dst += w) {
            const float *s = src + (size_t)k * cs;
            for (r = 0; r < h; r++) dst[r] = s[(size_t)r * rs];
            for (; r < w; r++) dst[r] = 0.0f;
        }
    }
}

/* distill__pack from BF16 bits, widened exactly: the panels of the FP32 values they hold. */
static void distill__pack16(float *dst, const uint16_t *src, size_t rs, size_t cs, int h, int w, int kb) {
    int r, k;
    for (k = 0; k < kb; k++, dst += w) {
        const uint16_t *s = src + (size_t)k * cs;
        for (r = 0; r < h; r++) dst[r] = distill__h2f(s[(size_t)r * rs]);
        for (; r < w; r++) dst[r] = 0.0f;
    }
}

/* One NR-column panel of B (columns j.. j+h, K rows p0.. p0+kb), from FP32 or BF16. */
static void distill__gemm_pack_bpanel(const distill__gemm *g, float *dst, int p0, int j, int h, int kb) {
    size_t at = (size_t)p0 * g->rsb + (size_t)j * g->csb;
    if (g->b16) distill__pack16(dst, g->b16 + at, g->csb, g->rsb, h, g->ops->nr, kb);
    else distill__pack(dst, g->b + at, g->csb, g->rsb, h, g->ops->nr, kb);
}

/* The tile without packing (only if the scratch could not be allocated): same math, slower. */
static void distill__gemm_tile_naive(const distill__gemm *g, int i0, int j0, int mb, int nb) {
    int i, j, k;
    for (i = i0; i < i0 + mb; i++)
        for (j = j0; j < j0 + nb; j++) {
            float s = 0.0f, *c = g->c + (size_t)i * g->ldc + j;
            for (k = 0; k < g->K; k++) {
                size_t at = (size_t)k * g->rsb + (size_t)j * g->csb;
                s += g->a[i * g->rsa + k * g->csa] * (g->b16 ? distill__h2f(g->b16[at]) : g->b[at]);
            }
            *c = g->accumulate ? *c + s : s + (g->bias ? g->bias[j] : 0.0f);
        }
}

/* One K block of C rows [i0, i0 + mb) x columns [j0 + jr0, j0 + jr1): pa holds the packed A
   panels of those rows (MR rows each), pb the packed B panels of columns j0, j0 + NR, ...
   (column jr's panel at pb + jr * ps: ps = kb, or the full K when B was packed ahead). */
static void distill__gemm_block_ps(const distill__gemm *g, const float *pa, const float *ua, size_t rsa,
                                   const float *pb, size_t ps, int kb,
                                   int acc, int i0, int mb, int j0, int jr0, int jr1, float *tmp) {
    const int MR = g->ops->mr, NR = g->ops->nr;
    int ir, jr, i, j;
    for (jr = jr0; jr < jr1; jr += NR)
        for (ir = 0; ir < mb; ir += MR) {
            float *c = g->c + (size_t)(i0 + ir) * g->ldc + (j0 + jr);
            int h = mb - ir < MR ? mb - ir : MR, w = jr1 - jr < NR ? jr1 - jr : NR;
            if (ua && h == MR) {   /* A read in place (full panels only) */
                if (w == NR) {
                    g->ops->ukernel_sa(kb, ua + (size_t)ir * rsa, rsa, pb + (size_t)jr * ps, c, g->ldc, acc);
                    continue;
                }
                g->ops->ukernel_sa(kb, ua + (size_t)ir * rsa, rsa, pb + (size_t)jr * ps, tmp, (size_t)NR, 0);
            } else if (h == MR && w == NR) {
                g->ops->ukernel(kb, pa + (size_t)ir * kb, pb + (size_t)jr * ps, c, g->ldc, acc);
                continue;
            } else {
                g->ops->ukernel(kb, pa + (size_t)ir * kb, pb + (size_t)jr * ps, tmp, (size_t)NR, 0);
            }
            { /* edge: the full tile was computed aside, keep the valid part */
                for (i = 0; i < h; i++)
                    for (j = 0; j < w; j++)
                        c[(size_t)i * g->ldc + j] = acc ? tmp[i * NR + j] + c[(size_t)i * g->ldc + j]
                                                        : tmp[i * NR + j];
            }
        }
}

#define distill__gemm_block(g, pa, ua, pb, kb, acc, i0, mb, j0, jr0, jr1, tmp) \
    distill__gemm_block_ps((g), (pa), (ua), (g)->rsa, (pb), (size_t)(kb), (kb), (acc), (i0), (mb), (j0), (jr0), (jr1), (tmp))
/* A's rows are read in place when they are contiguous along k (csa 1): then only a last,
   partial panel is packed. NULL: every panel is packed. */
#define distill__gemm_ua(g, i0, p0) ((g)->csa == 1 ? (g)->a + (size_t)(i0) * (g)->rsa + (size_t)(p0) : NULL)

/* C rows [r0, r1) x columns [j0, j0 + nb): + bias, or the bias alone when K = 0 */
static void distill__add_bias(float *cm, size_t ldc, const float *bias, int K, int r0, int r1, int j0, int nb) {
    int i, j;
    for (i = r0; i < r1; i++)
        for (j = j0; j < j0 + nb; j++) {
            float *c = cm + (size_t)i * ldc + j;
            float bj = bias ? bias[j] : 0.0f;
            *c = K == 0 ? bj : *c + bj;
        }
}
#define distill__gemm_bias(g, r0, r1, j0, nb) distill__add_bias((g)->c, (g)->ldc, (g)->bias, (g)->K, (r0), (r1), (j0), (nb))

/* The split of C (M,N) into tasks of (mc rows) x (nc columns). One thread: one row task (mc a
   multiple of MC), column tasks of NC. Several: few big tasks (the B block is packed once per
   task) but ~3 per thread, mc a multiple of DISTILL__ROWQ so the tasks' rows come out nearly
   equal (the pool gives each thread a contiguous range of tasks; with whole MC blocks the last
   task of a 3,072-row product had a third of the others' rows and one thread did 56 %).
   With at most two row blocks (an LM-head chunk of 128 rows) the tasks take all rows and split
   only the columns, if that gives at least 2 per thread: a row split packs every B block once
   per row task. Returns the number of row tasks; tiles_n is the number of column tasks. */
#define DISTILL__ROWQ 24   /* a multiple of every micro-tile's rows (6; BF16 8); MC is a multiple */
static int distill__gemm_plan(int M, int N, int nth, int *mc, int *nc, int *tiles_n) {
    int blocks_m = (M + DISTILL__MC - 1) / DISTILL__MC, units = (M + DISTILL__ROWQ - 1) / DISTILL__ROWQ, rt;
    *nc = DISTILL__NC;
    if (nth == 1) {
        *tiles_n = (N + *nc - 1) / *nc;
        *mc = blocks_m * DISTILL__MC;
        return 1;
    }
    if (blocks_m <= 2) {
        while (*nc > 64 && (N + *nc - 1) / *nc < 3 * nth) *nc /= 2;
        *tiles_n = (N + *nc - 1) / *nc;
        if (*tiles_n >= 2 * nth) {
            *mc = blocks_m * DISTILL__MC;
            return 1;
        }
        *nc = DISTILL__NC;
    }
    while (*nc > 64 && blocks_m * ((N + *nc - 1) / *nc) < 3 * nth) *nc /= 2;
    *tiles_n = (N + *nc - 1) / *nc;
    rt = (3 * nth + *tiles_n - 1) / *tiles_n;   /* row tasks wanted */
    if (rt > units) rt = units;
    *mc = (units + rt - 1) / rt * DISTILL__ROWQ;
    return (M + *mc - 1) / *mc;
}

/* 1 inside a pool job (a nested product runs on its thread alone and must not use the pool's
   shared buffers) */
static int distill__pool_nested(void) {
#if !defined(DISTILL_NO_THREADS)
    return DISTILL__LOAD(&distill__the_pool.busy) != 0;
#else
    return 0;
#endif
}

static void distill__gemm_task(void *ctx, int64_t begin, int64_t end, int thread) {
    const distill__gemm *g = (const distill__gemm *)ctx;
    const int MR = g->ops->mr, NR = g->ops->nr, MC = DISTILL__MC;
    size_t a_floats = (size_t)MC * DISTILL__KC;
    size_t b_floats = (size_t)((g->nc + NR - 1) / NR * NR) * DISTILL__KC;
    float *pa = distill__thread_scratch(thread, a_floats + b_floats + (size_t)MR * NR);
    float *pb = pa + a_floats, *tmp = pb + b_floats;
    int64_t t;
    for (t = begin; t < end; t++) {
        /* task t: rows [r0, r1) x columns [j0, j0 + nb) of C */
        int r0 = (int)(t / g->tiles_n) * g->mc, j0 = (int)(t % g->tiles_n) * g->nc;
        int r1 = g->M - r0 < g->mc ? g->M : r0 + g->mc;
        int nb = g->N - j0 < g->nc ? g->N - j0 : g->nc;
        int p0, i0, ir, jr;
        if (!pa) { distill__gemm_tile_naive(g, r0, j0, r1 - r0, nb); continue; }
        for (p0 = 0; p0 < g->K; p0 += DISTILL__KC) {
            int kb = g->K - p0 < DISTILL__KC ? g->K - p0 : DISTILL__KC;
            int acc = g->accumulate || p0 > 0;
            /* the B block (kb x nb) once per task and K block, shared by all row blocks */
            for (jr = 0; jr < nb; jr += NR)
                distill__gemm_pack_bpanel(g, pb + (size_t)jr * kb, p0, j0 + jr, nb - jr < NR ? nb - jr : NR, kb);
            for (i0 = r0; i0 < r1; i0 += MC) {
                int mb = r1 - i0 < MC ? r1 - i0 : MC;
                const float *ua = distill__gemm_ua(g, i0, p0);
                for (ir = ua ? mb / MR * MR : 0; ir < mb; ir += MR)
                    distill__pack(pa + (size_t)ir * kb, g->a + (size_t)(i0 + ir) * g->rsa + (size_t)p0 * g->csa,
                                  g->rsa, g->csa, mb - ir < MR ? mb - ir : MR, MR, kb);
                distill__gemm_block(g, pa, ua, pb, kb, acc, i0, mb, j0, 0, nb, tmp);
            }
        }
        if (!g->accumulate && (g->bias || g->K == 0)) distill__gemm_bias(g, r0, r1, j0, nb);
    }
}

#if !defined(DISTILL_NO_THREADS)
/* With several threads, the B block is packed once into the pool's shared buffer (one job: its
   NR-column panels split across the threads) and then read by all (a second job: tasks of MC
   rows x a column range). Per task, packing B again for every row block would repeat the same
   copy once per task: for the forward's transposed gather it cost as much as a third of the
   FMAs on two threads. Every C tile still sees the same packed panels, K blocks and
   micro-kernel calls as on one thread, so the result is bit-identical. */
typedef struct {
    const distill__gemm *g;
    float *pb;
    int p0, kb, j0, nb, ncb, nct, mcb;   /* tasks: mcb rows (whole A panels) x ncb columns */
} distill__gemm_sh;

static void distill__gemm_pack_task(void *ctx, int64_t begin, int64_t end, int thread) {
    const distill__gemm_sh *sh = (const distill__gemm_sh *)ctx;
    const distill__gemm *g = sh->g;
    const int NR = g->ops->nr;
    int64_t t;
    (void)thread;
    for (t = begin; t < end; t++) {
        int jr = (int)t * NR;
        distill__gemm_pack_bpanel(g, sh->pb + (size_t)jr * sh->kb, sh->p0, sh->j0 + jr, sh->nb - jr < NR ? sh->nb - jr : NR, sh->kb);
    }
}

static void distill__gemm_shared_task(void *ctx, int64_t begin, int64_t end, int thread) {
    const distill__gemm_sh *sh = (const distill__gemm_sh *)ctx;
    const distill__gemm *g = sh->g;
    const int MR = g->ops->mr, NR = g->ops->nr, MC = DISTILL__MC, kb = sh->kb;
    float *pa = distill__thread_scratch(thread, (size_t)MC * DISTILL__KC + (size_t)DISTILL__NC * DISTILL__KC + (size_t)MR * NR);
    float *tmp = pa + (size_t)MC * DISTILL__KC;
    int acc = g->accumulate || sh->p0 > 0, last = sh->p0 + kb >= g->K;
    int64_t t;
    for (t = begin; t < end; t++) {
        int i0 = (int)(t / sh->nct) * sh->mcb, jb0 = (int)(t % sh->nct) * sh->ncb, ir;
        int mb = g->M - i0 < sh->mcb ? g->M - i0 : sh->mcb, jb1 = sh->nb - jb0 < sh->ncb ? sh->nb : jb0 + sh->ncb;
        const float *ua = distill__gemm_ua(g, i0, sh->p0);
        for (ir = ua ? mb / MR * MR : 0; ir < mb; ir += MR)
            distill__pack(pa + (size_t)ir * kb, g->a + (size_t)(i0 + ir) * g->rsa + (size_t)sh->p0 * g->csa,
                          g->rsa, g->csa, mb - ir < MR ? mb - ir : MR, MR, kb);
        distill__gemm_block(g, pa, ua, sh->pb, kb, acc, i0, mb, sh->j0, jb0, jb1, tmp);
        if (last && !g->accumulate && g->bias) distill__gemm_bias(g, i0, i0 + mb, sh->j0 + jb0, jb1 - jb0);
    }
}

/* 1 if threads 0..nth-1 all hold full-size packing scratch (reserved before the first job) */
static int distill__scratch_ready(int nth) {
    const distill__pool *P = &distill__the_pool;
    size_t need = (size_t)DISTILL__MC * DISTILL__KC + (size_t)DISTILL__NC * DISTILL__KC + 64 * 64;
    int t;
    if (P->scratch_reserved < nth) return 0;
    for (t = 0; t < nth && t < DISTILL__MAX_THREADS; t++)
        if (!P->scratch[t] || P->scratch_floats[t] < need) return 0;
    return 1;
}

static void distill__gemm_run_shared(distill__gemm *g, float *shared, int nth) {
    const int NR = g->ops->nr, MR = g->ops->mr, MC = DISTILL__MC;
    int per = (g->M + MR - 1) / MR / (4 * nth), blocks_m, j0, p0;
    distill__gemm_sh sh;
    sh.g = g;
    sh.pb = shared;
    /* rows per task: ~4 tasks per thread, whole A panels, at most MC. Columns are split only
       when there are too few rows for that: each column range packs its A rows again, and with
       a 32-column range the packing cost more than the range's FMAs (dW of a 96-wide layer). */
    if (per < 1) per = 1;
    if (per * MR > MC) per = MC / MR;
    sh.mcb = per * MR;
    blocks_m = (g->M + sh.mcb - 1) / sh.mcb;
    for (j0 = 0; j0 < g->N; j0 += DISTILL__NCS) {
        int nb = g->N - j0 < DISTILL__NCS ? g->N - j0 : DISTILL__NCS, panels = (nb + NR - 1) / NR;
        /* column ranges per task (whole panels): only if the row tasks are fewer than 2 per thread */
        int nct = blocks_m >= 2 * nth ? 1 : (2 * nth + blocks_m - 1) / blocks_m;
        if (nct > panels) nct = panels;
        if (nct < 1) nct = 1;
        sh.j0 = j0; sh.nb = nb;
        sh.ncb = (panels + nct - 1) / nct * NR;
        sh.nct = (nb + sh.ncb - 1) / sh.ncb;
        for (p0 = 0; p0 < g->K; p0 += DISTILL__KC) {
            sh.p0 = p0;
            sh.kb = g->K - p0 < DISTILL__KC ? g->K - p0 : DISTILL__KC;
            distill_parallel_for((int64_t)panels, 1, distill__gemm_pack_task, &sh);
            distill_parallel_for((int64_t)blocks_m * sh.nct, 1, distill__gemm_shared_task, &sh);
        }
    }
}
#endif

/* Every thread's packing scratch is sized once for the largest tile (an A panel MC x KC, a B
   block NC x KC, one MR x NR tile), on the calling thread before the first job, so no worker
   ever allocates inside a training step (which thread meets the largest tile first depends on
   scheduling, and the model promises no allocation after create + one warm-up step). */
static void distill__reserve_scratch(distill__pool *P) {
    size_t need = (size_t)DISTILL__MC * DISTILL__KC + (size_t)DISTILL__NC * DISTILL__KC + 64 * 64;
    int t;
    for (t = 0; t < P->n_threads && t < DISTILL__MAX_THREADS; t++) distill__thread_scratch(t, need);
    if (P->n_threads > 1 && !P->shared_b)
        P->shared_b = (float *)distill_alloc_aligned(sizeof(float) * DISTILL__KC * DISTILL__NCS, 64);
    P->scratch_reserved = P->n_threads;
}

/* Products whose K is longer than both sides of C (the weight gradients dW = dY^T X, K = the
   batch's tokens) are cut once along K, at the K block nearest the middle, whatever the thread
   count: C (+)= A[:, :K0] B[:K0, :] runs in place, P = A[:, K0:] B[K0:, :] into a buffer, then
   C += P. Each half is ordinary row tasks, so with two threads each thread reads only its own
   half of the tokens, the rows the forward and the previous backward ops left in its cache,
   and packs B once per K block with no hand-off in between (splitting C's few rows instead
   meant a job pair per K block and every thread reading every token). The cut depends on the
   shape alone (one thread makes it too), so the bits do not depend on the thread count; they
   differ from an uncut sum by the rounding of the one extra addition. */
#define DISTILL__KSPLIT_MAX ((size_t)1 << 22)   /* floats of P: larger products are not cut */
static int distill__ksplit_wanted(int M, int N, int K, const float *bias) {
    return !bias && K >= 4 * DISTILL__KC && K >= M && K >= N && (size_t)M * (size_t)N <= DISTILL__KSPLIT_MAX &&
           !distill__pool_nested();
}
static int distill__gemm_ksplit_wanted(const distill__gemm *g) { return distill__ksplit_wanted(g->M, g->N, g->K, g->bias); }
/* P (M,N) for the second half, in the pool's buffer (grown on the first step, on thread 0
   outside any job); NULL if it cannot grow */
static float *distill__ksplit_buffer(size_t need) {
    distill__pool *P = &distill__the_pool;
    if (P->ksplit_floats < need) {
        distill_free_aligned(P->ksplit);
        P->ksplit = (float *)distill_alloc_aligned(need * sizeof(float), 64);
        P->ksplit_floats = P->ksplit ? need : 0;
    }
    return P->ksplit;
}
typedef struct { distill__gemm h[2]; int per_half; } distill__gemm_ks;
/* One pool job for both halves of a cut product (FP32 or BF16): tasks [0, per_half) are the
   first half's, the rest the second's, each run by the product's own task function. */
typedef struct { void *half[2]; void (*task)(void *, int64_t, int64_t, int); int64_t per_half; } distill__ks_job;
static void distill__ks_task(void *ctx, int64_t begin, int64_t end, int thread) {
    const distill__ks_job *ks = (const distill__ks_job *)ctx;
    int64_t t;
    for (t = begin; t < end; t++) {
        int64_t u = t % ks->per_half;
        ks->task(ks->half[t / ks->per_half], u, u + 1, thread);
    }
}
static void distill__ks_run(void *h0, void *h1, void (*task)(void *, int64_t, int64_t, int), int64_t per_half) {
    distill__ks_job job;
    job.half[0] = h0; job.half[1] = h1; job.task = task; job.per_half = per_half;
    distill_parallel_for(2 * per_half, 1, distill__ks_task, &job);
}
typedef struct { float *c; const float *p; size_t ldc; int N; } distill__gemm_add_ctx;
static void distill__gemm_add_task(void *ctx, int64_t begin, int64_t end, int thread) {
    const distill__gemm_add_ctx *a = (const distill__gemm_add_ctx *)ctx;
    int64_t i;
    (void)thread;
    for (i = begin; i < end; i++) distill_vec_axpy(a->c + (size_t)i * a->ldc, 1.0f, a->p + (size_t)i * a->N, a->N);
}
/* 0 done, -1 no buffer (the caller runs the product uncut) */
static int distill__gemm_run_ksplit(distill__gemm *g, int nth) {
    distill__pool *P = &distill__the_pool;
    const int MR = g->ops->mr, nkb = (g->K + DISTILL__KC - 1) / DISTILL__KC, K0 = (nkb + 1) / 2 * DISTILL__KC;
    size_t need = (size_t)g->M * (size_t)g->N;
    int rt = nth / 2 < 1 ? 1 : nth / 2, pm = (g->M + MR - 1) / MR, h;
    distill__gemm_ks ks;
    distill__gemm_add_ctx ad;
    if (!distill__ksplit_buffer(need)) return -1;
    ks.h[0] = *g;
    ks.h[0].K = K0;
    ks.h[1] = *g;
    ks.h[1].K = g->K - K0;
    ks.h[1].a = g->a + (size_t)K0 * g->csa;
    if (g->b16) ks.h[1].b16 = g->b16 + (size_t)K0 * g->rsb;   /* BF16 weights */
    else ks.h[1].b = g->b + (size_t)K0 * g->rsb;
    ks.h[1].c = P->ksplit;
    ks.h[1].ldc = (size_t)g->N;
    ks.h[1].accumulate = 0;
    /* per half: rt row tasks (whole A panels) x the column tiles */
    for (h = 0; h < 2; h++) {
        ks.h[h].nc = DISTILL__NC;
        ks.h[h].tiles_n = (g->N + DISTILL__NC - 1) / DISTILL__NC;
        ks.h[h].mc = (pm + rt - 1) / rt * MR;
    }
    ks.per_half = (g->M + ks.h[0].mc - 1) / ks.h[0].mc * ks.h[0].tiles_n;
    distill__ks_run(&ks.h[0], &ks.h[1], distill__gemm_task, ks.per_half);
    ad.c = g->c; ad.p = P->ksplit; ad.ldc = g->ldc; ad.N = g->N;
    distill_parallel_for((int64_t)g->M, 1 + 4096 / g->N, distill__gemm_add_task, &ad);
    return 0;
}

/* The product on the pool: the plan's tasks, the K cut above or the shared-B path below. */
static void distill__gemm_run(distill__gemm *g) {
    int nth = distill_get_threads(), row_tasks;
    if (g->M <= 0 || g->N <= 0) return;
    if (g->K <= 0 && g->accumulate) return;
    g->ops = distill__ops();
    if (distill__gemm_ksplit_wanted(g) && distill__gemm_run_ksplit(g, nth) == 0) return;
    row_tasks = distill__gemm_plan(g->M, g->N, nth, &g->mc, &g->nc, &g->tiles_n);
#if !defined(DISTILL_NO_THREADS)
    /* B shared by the threads when these tasks would pack each B block more than once per
       thread, the block is big enough for that to matter, and each K block is enough work to
       pay for its two hand-offs (~2 M multiply-adds); never inside another job (the shared
       buffer is one for the whole pool) */
    if (nth > 1 && row_tasks > nth && g->K > 0 &&
        (size_t)g->N * (size_t)(g->K < DISTILL__KC ? g->K : DISTILL__KC) >= DISTILL__SHARED_MIN &&
        (double)g->M * g->N * (g->K < DISTILL__KC ? g->K : DISTILL__KC) >= 2e6 &&
        distill__the_pool.shared_b && !distill__pool_nested() && distill__scratch_ready(nth)) {
        distill__gemm_run_shared(g, distill__the_pool.shared_b, nth);
        return;
    }
#endif
    distill_parallel_for((int64_t)row_tasks * g->tiles_n, 1, distill__gemm_task, g);
}

/* The same product on the calling thread only (from inside a task; `thread` picks the
   scratch). Used by the attention kernels on their small blocks. */
static void distill__gemm_serial(int M, int N, int K, const float *a, size_t rsa, size_t csa,
                                 const float *b, size_t rsb, size_t csb, float *c, size_t ldc,
                                 int accumulate, int thread) {
    distill__gemm g;
    if (M <= 0 || N <= 0 || (K <= 0 && accumulate)) return;
    memset(&g, 0, sizeof g);
    g.M = M; g.N = N; g.K = K;
    g.a = a; g.rsa = rsa; g.csa = csa;
    g.b = b; g.rsb = rsb; g.csb = csb;
    g.c = c; g.ldc = ldc;
    g.accumulate = accumulate;
    g.ops = distill__ops();
    g.nc = DISTILL__NC;
    g.mc = (M + DISTILL__MC - 1) / DISTILL__MC * DISTILL__MC;
    g.tiles_n = (N + g.nc - 1) / g.nc;
    distill__gemm_task(&g, 0, (int64_t)g.tiles_n, thread);
}

/* The same product on the calling thread with B packed ahead by distill__pack_b (the
   attention kernels reuse one packed key/value block for many query blocks). pa and tmp: the
   thread's scratch (MC x KC and MR x NR floats); M <= MC. The K blocks, panels and micro-kernel
   calls are those of distill__gemm_serial, so the result is the same to the bit. */
static void distill__pack_b(float *pb, const float *b, size_t rsb, size_t csb, int K, int N, int NR) {
    int jr;
    for (jr = 0; jr < N; jr += NR)
        distill__pack(pb + (size_t)jr * K, b + (size_t)jr * csb, csb, rsb, N - jr < NR ? N - jr : NR, NR, K);
}
static void distill__gemm_prepacked(int M, int N, int K, const float *a, size_t rsa, size_t csa, const float *pb,
                                    float *c, size_t ldc, int accumulate, float *pa, float *tmp) {
    distill__gemm g;
    int p0, ir, MR;
    if (M <= 0 || N <= 0 || K <= 0) return;
    memset(&g, 0, sizeof g);
    g.M = M; g.N = N; g.K = K; g.c = c; g.ldc = ldc; g.accumulate = accumulate;
    g.ops = distill__ops();
    MR = g.ops->mr;
    for (p0 = 0; p0 < K; p0 += DISTILL__KC) {
        int kb = K - p0 < DISTILL__KC ? K - p0 : DISTILL__KC;
        const float *ua = csa == 1 ? a + p0 : NULL;   /* A read in place, as distill__gemm_ua */
        for (ir = ua ? M / MR * MR : 0; ir < M; ir += MR)
            distill__pack(pa + (size_t)ir * kb, a + (size_t)ir * rsa + (size_t)p0 * csa, rsa, csa,
                          M - ir < MR ? M - ir : MR, MR, kb);
        distill__gemm_block_ps(&g, pa, ua, rsa, pb + (size_t)p0 * g.ops->nr, (size_t)K, kb, accumulate || p0 > 0, 0, M, 0, 0, N, tmp);
    }
}

/* dbias (OC) += sum over BT of dout (BT,OC), columns split across threads, rows summed in
   order, so the result does not depend on the thread count. */
typedef struct { float *dbias; const float *dout; int BT, OC; } distill__dbias_ctx;
static void distill__dbias_task(void *ctx, int64_t begin, int64_t end, int thread) {
    const distill__dbias_ctx *d = (const distill__dbias_ctx *)ctx;
    int t, o;
    (void)thread;
    for (t = 0; t < d->BT; t++) {
        const float *g = d->dout + (size_t)t * d->OC;
        for (o = (int)begin; o < (int)end; o++) d->dbias[o] += g[o];
    }
}

#ifdef DISTILL_OPENBLAS
/* OpenBLAS path. OpenBLAS runs single-threaded (openblas_set_num_threads(1), set once before
   the first job) INSIDE our workers: each task multiplies one fixed block of rows, so there
   is exactly one pool on the cores and the blocks (hence the bits) do not depend on the
   thread count. */
typedef struct {
    int which; /* 0 forward, 1 dX, 2 dW */
    float *out; const float *inp, *weight, *bias, *dout;
    int BT, C, OC;
} distill__blas_ctx;
#define DISTILL__BLAS_ROWS 128
static void distill__blas_task(void *ctx, int64_t begin, int64_t end, int thread) {
    const distill__blas_ctx *b = (const distill__blas_ctx *)ctx;
    int64_t blk;
    (void)thread;
    for (blk = begin; blk < end; blk++) {
        int r0 = (int)blk * DISTILL__BLAS_ROWS, rows, r, o;
        if (b->which == 0) {
            rows = b->BT - r0 < DISTILL__BLAS_ROWS ? b->BT - r0 : DISTILL__BLAS_ROWS;
            if (b->bias)
                for (r = r0; r < r0 + rows; r++)
                    for (o = 0; o < b->OC; o++) b->out[(size_t)r * b->OC + o] = b->bias[o];
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, b->OC, b->C, 1.0f,
                        b->inp + (size_t)r0 * b->C, b->C, b->weight, b->C, b->bias ? 1.0f : 0.0f,
                        b->out + (size_t)r0 * b->OC, b->OC);
        } else if (b->which == 1) {
            rows = b->BT - r0 < DISTILL__BLAS_ROWS ? b->BT - r0 : DISTILL__BLAS_ROWS;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, b->C, b->OC, 1.0f,
                        b->dout + (size_t)r0 * b->OC, b->OC, b->weight, b->C, 1.0f,
                        b->out + (size_t)r0 * b->C, b->C);
        } else {
            rows = b->OC - r0 < DISTILL__BLAS_ROWS ? b->OC - r0 : DISTILL__BLAS_ROWS;
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, rows, b->C, b->BT, 1.0f,
                        b->dout + r0, b->OC, b->inp, b->C, 1.0f, b->out + (size_t)r0 * b->C, b->C);
        }
    }
}
static void distill__blas_run(distill__blas_ctx *b, int rows_total) {
    if (rows_total <= 0 || b->C <= 0 || b->OC <= 0) return;
    distill_parallel_for((int64_t)((rows_total + DISTILL__BLAS_ROWS - 1) / DISTILL__BLAS_ROWS), 1,
                         distill__blas_task, b);
}
static void distill__blas_init(void) {
    if (!distill__the_pool.blas_init) {
        openblas_set_num_threads(1);
        distill__the_pool.blas_init = 1;
    }
}
#else
static void distill__blas_init(void) {}
#endif

DISTILL_API int distill_set_blas(int on) {
#ifdef DISTILL_OPENBLAS
    distill__the_pool.no_blas = !on;
    return 0;
#else
    return on ? -1 : 0;
#endif
}

/* out (BT,OC) = inp (BT,C) . W^T + bias by the own kernels, W FP32 (weight) or BF16 bits (w16) */
static void distill__gemm_forward(float *out, const float *inp, const float *weight, const uint16_t *w16,
                                  const float *bias, int BT, int C, int OC) {
    distill__gemm g;
    memset(&g, 0, sizeof g);
    g.M = BT; g.N = OC; g.K = C;
    g.a = inp; g.rsa = (size_t)C; g.csa = 1;
    g.b = weight; g.b16 = w16; g.rsb = 1; g.csb = (size_t)C;
    g.c = out; g.ldc = (size_t)OC;
    g.bias = bias;
    distill__gemm_run(&g);
}

DISTILL_API void distill_matmul_forward(float *out, const float *inp, const float *weight,
                                        const float *bias, int BT, int C, int OC) {
    int pr_ = distill__prof_beginf("matmul fwd [%dx%dx%d]", BT, OC, C);
#ifdef DISTILL_OPENBLAS
    if (C > 0 && !distill__the_pool.no_blas) {
        distill__blas_ctx b;
        memset(&b, 0, sizeof b);
        b.which = 0; b.out = out; b.inp = inp; b.weight = weight; b.bias = bias;
        b.BT = BT; b.C = C; b.OC = OC;
        distill__blas_init();
        distill__blas_run(&b, BT);
        distill__prof_end(pr_);
        return;
    }
#endif
    distill__gemm_forward(out, inp, weight, NULL, bias, BT, C, OC);
    distill__prof_end(pr_);
}

/* distill_matmul_forward with the weight as BF16 bits (a model's BF16 weights), FP32 products:
   the same panels and bits as the FP32 weights they widen to (never BLAS: it cannot read BF16) */
static void distill__matmul_forward_w16(float *out, const float *inp, const uint16_t *w16,
                                        const float *bias, int BT, int C, int OC) {
    int pr_ = distill__prof_beginf("matmul fwd w16 [%dx%dx%d]", BT, OC, C);
    distill__gemm_forward(out, inp, NULL, w16, bias, BT, C, OC);
    distill__prof_end(pr_);
}

DISTILL_API void distill_matmul_backward(float *dinp, float *dweight, float *dbias,
                                         const float *dout, const float *inp,
                                         const float *weight, int BT, int C, int OC) {
    if (BT <= 0 || OC <= 0) return;
#ifdef DISTILL_OPENBLAS
    if (!distill__the_pool.no_blas) {
        distill__blas_ctx b;
        memset(&b, 0, sizeof b);
        b.inp = inp; b.weight = weight; b.dout = dout; b.BT = BT; b.C = C; b.OC = OC;
        distill__blas_init();
        if (dinp) { int pr_ = distill__prof_begin("matmul dX (BLAS)"); b.which = 1; b.out = dinp; distill__blas_run(&b, BT); distill__prof_end(pr_); }
        if (dweight) { int pr_ = distill__prof_begin("matmul dW (BLAS)"); b.which = 2; b.out = dweight; distill__blas_run(&b, OC); distill__prof_end(pr_); }
        dinp = dweight = NULL; /* done */
    }
#endif
    if (dinp) { /* dinp (BT,C) += dout (BT,OC) . W (OC,C) */
        distill__gemm g;
        int pr_ = distill__prof_beginf("matmul dX [%dx%dx%d]", BT, C, OC);
        memset(&g, 0, sizeof g);
        g.M = BT; g.N = C; g.K = OC;
        g.a = dout; g.rsa = (size_t)OC; g.csa = 1;
        g.b = weight; g.rsb = (size_t)C; g.csb = 1;
        g.c = dinp; g.ldc = (size_t)C;
        g.accumulate = 1;
        distill__gemm_run(&g);
        distill__prof_end(pr_);
    }
    if (dweight) { /* dW (OC,C) += dout^T (OC,BT) . inp (BT,C) */
        distill__gemm g;
        int pr_ = distill__prof_beginf("matmul dW [%dx%dx%d]", OC, C, BT);
        memset(&g, 0, sizeof g);
        g.M = OC; g.N = C; g.K = BT;
        g.a = dout; g.rsa = 1; g.csa = (size_t)OC;
        g.b = inp; g.rsb = (size_t)C; g.csb = 1;
        g.c = dweight; g.ldc = (size_t)C;
        g.accumulate = 1;
        distill__gemm_run(&g);
        distill__prof_end(pr_);
    }
    if (dbias) {
        distill__dbias_ctx d;
        int pr_ = distill__prof_begin("matmul dbias");
        d.dbias = dbias; d.dout = dout; d.BT = BT; d.OC = OC;
        distill_parallel_for((int64_t)OC, 256, distill__dbias_task, &d);
        distill__prof_end(pr_);
    }
}

/* ===================================================================================== */
/* BF16 matrix products (mixed precision)                                                 */
/* ===================================================================================== */
/* The same three products as above with the inputs rounded to BF16 (8 significant bits) and
   the products accumulated in FP32: what a model in DISTILL_PRECISION_BF16 runs its linear
   layers (and LM head) with. Master weights, gradients (dW is accumulated into the FP32
   gradient buffer), AdamW, norms, softmax, RoPE, attention and the loss stay FP32.

   Rounding (distill__bf16_bits): nearest, ties to even, on the float's bit pattern (add 0x7fff
   plus the lowest kept bit, truncate); denormal inputs become a signed zero (as vdpbf16ps
   treats them anyway), NaN stays NaN, overflow rounds to infinity. It happens while packing,
   so the FP32 operands are never copied as a whole.

   Two paths compute the same sums:
     vdpbf16ps   (AVX512_BF16; Zen4/5, Cooper Lake, Sapphire Rapids): the packed panels hold
                 pairs of BF16 along k in 32-bit words; distill__ukernel_bf16_avx512 does 16
                 products per instruction;
     portable    (any other CPU, or DISTILL_BF16=portable): the panels hold the rounded values
                 as floats, pairs swapped (k = 1, 0, 3, 2, ...), and the FP32 micro-kernel of
                 the current kernel set runs them. A product of two BF16 is exact in FP32, so
                 each FMA adds exactly the product the instruction adds, in the same order:
                 both paths give the same bits except where vdpbf16ps flushes a denormal
                 product or partial sum to zero (|x| < 2^-126; never in practice, tested equal
                 on random data in tests/test_bf16.c).
   Determinism: K is cut in blocks of DISTILL__KC (even, so pairs never straddle blocks), a
   block's sum runs over pairs in order and is added to C: the value of C(i,j) does not depend
   on the tiles or the thread count (bit-identical for any number of threads). */
#if defined(DISTILL__BF16_CC)
#include <cpuid.h>
#endif
#define DISTILL__BF16_MR 8   /* rows of the vdpbf16ps micro-tile (DISTILL__MC is a multiple) */
#define DISTILL__BF16_NR 32


/* BF16 models run the attention's block products in BF16 too, unless DISTILL_BF16_ATTENTION=0
   (for measurements: bench/RESULTS.md, issue 20). Softmax, masks and lse stay FP32. */
static int distill__bf16_attention(void) {
    distill__pool *P = &distill__the_pool;
    if (!P->bf16_attention) {
        const char *e = getenv("DISTILL_BF16_ATTENTION");
        P->bf16_attention = (e && !strcmp(e, "0")) ? 1 : 2;
    }
    return P->bf16_attention == 2;
}

/* 1 when this CPU (and OS) can run vdpbf16ps on zmm registers. CPUID leaf 7 sub-leaf 1, EAX
   bit 5 is AVX512_BF16; AMX (leaf 7.0 EDX bit 22 amx_bf16) is not used. */
static int distill__bf16_cpu(void) {
#if defined(DISTILL__BF16_CC)
    distill__pool *P = &distill__the_pool;
    if (!P->bf16_cpu) {
        unsigned int a = 0, b = 0, c = 0, d = 0;
        P->bf16_cpu = distill__ops_by_name("avx512") != NULL && __get_cpuid_count(7, 1, &a, &b, &c, &d) && ((a >> 5) & 1u) ? 2 : 1;
    }
    return P->bf16_cpu == 2;
#else
    return 0;
#endif
}

/* The path BF16 products take now: 1 vdpbf16ps, 0 portable. vdpbf16ps needs the AVX-512 kernel
   set chosen (DISTILL_SIMD=avx2 or scalar therefore tests the portable path too). */
static int distill__bf16_native(void) {
    distill__pool *P = &distill__the_pool;
    if (!P->bf16_portable) {
        const char *e = getenv("DISTILL_BF16");
        P->bf16_portable = (e && !strcmp(e, "portable")) ? 2 : 1;
    }
#if defined(DISTILL__BF16_CC)
    return P->bf16_portable == 1 && distill__ops() == &distill__ops_avx512 && distill__bf16_cpu();
#else
    return 0;
#endif
}

DISTILL_API const char *distill_bf16_path(void) {
    if (distill__bf16_native()) return "vdpbf16ps";
    return "portable";
}

/* float -> BF16 bits, see the rounding above */
static uint32_t distill__bf16_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7F800000u) == 0) return (u >> 16) & 0x8000u;
    if ((u & 0x7F800000u) == 0x7F800000u) return (u >> 16) | ((u & 0x7FFFFFu) ? 0x40u : 0u);
    return (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
}
/* BF16 bits -> float (exact) */
static float distill__bf16_float(uint32_t h) {
    uint32_t u = h << 16;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}
static float distill__bf16_round(float x) { return distill__bf16_float(distill__bf16_bits(x)); }

/* vdpbf16ps panels: dst[p*w + r] = bf16(src(r, 2p)) | bf16(src(r, 2p+1)) << 16 for r < h, 0 for
   h <= r < w; src(r, k) = src[r*rs + k*cs]; an odd kb's last pair has a zero high half. */
static void distill__bf16_pack2(uint32_t *dst, const float *src, size_t rs, size_t cs, int h, int w, int kb) {
    int kp = (kb + 1) / 2, p, r;
    for (p = 0; p < kp; p++, dst += w) {
        const float *s0 = src + (size_t)(2 * p) * cs;
        if (2 * p + 1 < kb) {
            const float *s1 = s0 + cs;
            for (r = 0; r < h; r++)
                dst[r] = distill__bf16_bits(s0[(size_t)r * rs]) | distill__bf16_bits(s1[(size_t)r * rs]) << 16;
        } else {
            for (r = 0; r < h; r++) dst[r] = distill__bf16_bits(s0[(size_t)r * rs]);
        }
        for (; r < w; r++) dst[r] = 0;
    }
}

/* portable panels: the FP32 layout of distill__pack, rounded values, k in the order
   1, 0, 3, 2, ... (vdpbf16ps's order), padded to an even count with zeros */
static void distill__bf16_packf(float *dst, const float *src, size_t rs, size_t cs, int h, int w, int kb) {
    int ke = (kb + 1) & ~1, q, r;
    for (q = 0; q < ke; q++, dst += w) {
        int k = q ^ 1;
        const float *s = src + (size_t)k * cs;
        r = 0;
        if (k < kb)
            for (; r < h; r++) dst[r] = distill__bf16_round(s[(size_t)r * rs]);
        for (; r < w; r++) dst[r] = 0.0f;
    }
}

#if defined(DISTILL__BF16_CC)
#define DISTILL__BF16_PACK2 distill__bf16_pack2_avx512
#else
#define DISTILL__BF16_PACK2 distill__bf16_pack2
#endif

/* The same two layouts from B already in BF16 (a model's BF16 weights). Each value goes through
   distill__bf16_bits like a float would, which keeps it (it is a BF16 value) except that a
   denormal becomes a signed zero: the words the float path packs for the widened weights. */
static uint32_t distill__bf16_rebits(uint16_t h) { return distill__bf16_bits(distill__h2f(h)); }
static void distill__bf16_pack2h(uint32_t *dst, const uint16_t *src, size_t rs, size_t cs, int h, int w, int kb) {
    int kp = (kb + 1) / 2, p, r;
    for (p = 0; p < kp; p++, dst += w) {
        const uint16_t *s0 = src + (size_t)(2 * p) * cs;
        for (r = 0; r < h; r++)
            dst[r] = distill__bf16_rebits(s0[(size_t)r * rs]) |
                     (2 * p + 1 < kb ? distill__bf16_rebits(s0[cs + (size_t)r * rs]) << 16 : 0u);
        for (; r < w; r++) dst[r] = 0;
    }
}
static void distill__bf16_packfh(float *dst, const uint16_t *src, size_t rs, size_t cs, int h, int w, int kb) {
    int ke = (kb + 1) & ~1, q, r;
    for (q = 0; q < ke; q++, dst += w) {
        int k = q ^ 1;
        r = 0;
        if (k < kb)
            for (; r < h; r++) dst[r] = distill__bf16_float(distill__bf16_rebits(src[(size_t)k * cs + (size_t)r * rs]));
        for (; r < w; r++) dst[r] = 0.0f;
    }
}

typedef struct distill__bgemm {
    int M, N, K;
    const float *a; size_t rsa, csa;
    const float *b; size_t rsb, csb;
    const uint16_t *b16;   /* or B already in BF16 (a model's BF16 weights; b NULL) */
    float *c; size_t ldc;
    const float *bias;
    int accumulate, native;
    int mr, nr, mc, nc, tiles_n;
    const distill__isa_ops *ops;
    uint32_t *bpre;        /* vdpbf16ps, several row tasks: all of B packed once (else NULL) */
    size_t bpre_block;     /* its words per K block: Npad * DISTILL__KC / 2 */
} distill__bgemm;


/* Without scratch: the same sums element by element (rounded inputs, pairs in the kernels'
   order, one partial sum per K block). */
static void distill__bgemm_tile_naive(const distill__bgemm *g, int i0, int j0, int mb, int nb) {
    int i, j, k, p0;
    for (i = i0; i < i0 + mb; i++)
        for (j = j0; j < j0 + nb; j++) {
            float *c = g->c + (size_t)i * g->ldc + j, t = g->accumulate ? *c : 0.0f;
            for (p0 = 0; p0 < g->K; p0 += DISTILL__KC) {
                int kb = g->K - p0 < DISTILL__KC ? g->K - p0 : DISTILL__KC, ke = (kb + 1) & ~1;
                float s = 0.0f;
                for (k = 0; k < ke; k++) {
                    int kk = p0 + (k ^ 1);
                    size_t at = (size_t)kk * g->rsb + (size_t)j * g->csb;
                    if ((k ^ 1) < kb)
                        s += distill__bf16_round(g->a[i * g->rsa + (size_t)kk * g->csa]) *
                             (g->b16 ? distill__bf16_float(distill__bf16_rebits(g->b16[at])) : distill__bf16_round(g->b[at]));
                }
                t = (g->accumulate || p0 > 0) ? t + s : s;
            }
            *c = g->accumulate ? t : t + (g->bias ? g->bias[j] : 0.0f);
        }
}

static void distill__bgemm_task(void *ctx, int64_t begin, int64_t end, int thread) {
    const distill__bgemm *g = (const distill__bgemm *)ctx;
    const int MR = g->mr, NR = g->nr, MC = DISTILL__MC;
    /* native: uint32 pairs (half the K rows); portable: floats. Sizes in 4-byte words. */
    size_t kw = g->native ? DISTILL__KC / 2 : DISTILL__KC;
    size_t a_words = (size_t)MC * kw, b_words = (size_t)((g->nc + NR - 1) / NR * NR) * kw;
    float *pa = distill__thread_scratch(thread, a_words + b_words + (size_t)MR * NR);
    float *pb = pa + a_words, *tmp = pb + b_words;
    int arow = g->csa == 1;   /* A rows contiguous along k: the row-major A panels (native path) */
    int64_t t;
    (void)arow;
    for (t = begin; t < end; t++) {
        int r0 = (int)(t / g->tiles_n) * g->mc, j0 = (int)(t % g->tiles_n) * g->nc;
        int r1 = g->M - r0 < g->mc ? g->M : r0 + g->mc;
        int nb = g->N - j0 < g->nc ? g->N - j0 : g->nc;
        int p0, i0, ir, jr, i, j;
        if (!pa) { distill__bgemm_tile_naive(g, r0, j0, r1 - r0, nb); continue; }
        for (p0 = 0; p0 < g->K; p0 += DISTILL__KC) {
            int kb = g->K - p0 < DISTILL__KC ? g->K - p0 : DISTILL__KC;
            int kk = g->native ? (kb + 1) / 2 : (kb + 1) & ~1;   /* packed rows per panel */
            int acc = g->accumulate || p0 > 0;
            const float *pbk = pb;
            if (g->bpre)   /* packed once for all tasks by distill__bgemm_run */
                pbk = (const float *)(g->bpre + (size_t)(p0 / DISTILL__KC) * g->bpre_block + (size_t)j0 * kk);
            else
                for (jr = 0; jr < nb; jr += NR) {
                    size_t at = (size_t)p0 * g->rsb + (size_t)(j0 + jr) * g->csb;
                    int w = nb - jr < NR ? nb - jr : NR;
                    if (g->b16 && g->native) distill__bf16_pack2h((uint32_t *)pb + (size_t)jr * kk, g->b16 + at, g->csb, g->rsb, w, NR, kb);
                    else if (g->b16) distill__bf16_packfh(pb + (size_t)jr * kk, g->b16 + at, g->csb, g->rsb, w, NR, kb);
                    else if (g->native) DISTILL__BF16_PACK2((uint32_t *)pb + (size_t)jr * kk, g->b + at, g->csb, g->rsb, w, NR, kb);
                    else distill__bf16_packf(pb + (size_t)jr * kk, g->b + at, g->csb, g->rsb, w, NR, kb);
                }
            for (i0 = r0; i0 < r1; i0 += MC) {
                int mb = r1 - i0 < MC ? r1 - i0 : MC;
                for (ir = 0; ir < mb; ir += MR) {
                    const float *src = g->a + (size_t)(i0 + ir) * g->rsa + (size_t)p0 * g->csa;
                    int h = mb - ir < MR ? mb - ir : MR;
#if defined(DISTILL__BF16_CC)
                    if (g->native && arow) distill__bf16_pack_rows_avx512((uint32_t *)pa + (size_t)ir * kk, src, g->rsa, h, MR, kb);
                    else
#endif
                    if (g->native) DISTILL__BF16_PACK2((uint32_t *)pa + (size_t)ir * kk, src, g->rsa, g->csa, h, MR, kb);
                    else distill__bf16_packf(pa + (size_t)ir * kk, src, g->rsa, g->csa, h, MR, kb);
                }
                for (jr = 0; jr < nb; jr += NR)
                    for (ir = 0; ir < mb; ir += MR) {
                        float *c = g->c + (size_t)(i0 + ir) * g->ldc + (j0 + jr);
                        int h = mb - ir < MR ? mb - ir : MR, w = nb - jr < NR ? nb - jr : NR;
                        int full = h == MR && w == NR;
                        float *dst = full ? c : tmp;
                        size_t ldd = full ? g->ldc : (size_t)NR;
#if defined(DISTILL__BF16_CC)
                        if (g->native)
                            distill__ukernel_bf16_avx512(kk, (const uint32_t *)pa + (size_t)ir * kk, arow ? 1 : (size_t)MR,
                                                         arow ? (size_t)kk : 1, (const uint32_t *)pbk + (size_t)jr * kk,
                                                         dst, ldd, full && acc);
                        else
#endif
                            g->ops->ukernel(kk, pa + (size_t)ir * kk, pbk + (size_t)jr * kk, dst, ldd, full && acc);
                        if (!full)   /* edge: the full tile was computed aside, keep the valid part */
                            for (i = 0; i < h; i++)
                                for (j = 0; j < w; j++)
                                    c[(size_t)i * g->ldc + j] = acc ? tmp[i * NR + j] + c[(size_t)i * g->ldc + j]
                                                                    : tmp[i * NR + j];
                    }
            }
        }
        if (!g->accumulate && (g->bias || g->K == 0)) distill__add_bias(g->c, g->ldc, g->bias, g->K, r0, r1, j0, nb);
    }
}

/* Pre-packing of B: task = (K block, NR-column panel), the same packer as inside the tasks. */
static void distill__bgemm_prepack_task(void *ctx, int64_t begin, int64_t end, int thread) {
    const distill__bgemm *g = (const distill__bgemm *)ctx;
    int64_t npan = (g->N + g->nr - 1) / g->nr, t;
    (void)thread;
    for (t = begin; t < end; t++) {
        int p0 = (int)(t / npan) * DISTILL__KC, j = (int)(t % npan) * g->nr;
        int kb = g->K - p0 < DISTILL__KC ? g->K - p0 : DISTILL__KC, kk = (kb + 1) / 2;
        int w = g->N - j < g->nr ? g->N - j : g->nr;
        size_t at = (size_t)p0 * g->rsb + (size_t)j * g->csb;
        uint32_t *dst = g->bpre + (size_t)(p0 / DISTILL__KC) * g->bpre_block + (size_t)j * kk;
        if (g->b16) distill__bf16_pack2h(dst, g->b16 + at, g->csb, g->rsb, w, g->nr, kb);
        else DISTILL__BF16_PACK2(dst, g->b + at, g->csb, g->rsb, w, g->nr, kb);
    }
}

/* The task split of distill__gemm_run, with this path's tile. When several tasks would each pack
   the same B block (more than one row task), the vdpbf16ps path packs B once up front instead,
   in parallel (the same words: no bit changes). */
/* The K cut of distill__gemm_run_ksplit (the weight gradients) for BF16 products: the same cut
   by shape, each half's row tasks packing their own B, one job for both halves, then C += P. */
typedef struct { distill__bgemm h[2]; int per_half; } distill__bgemm_ks;
static int distill__bgemm_run_ksplit(distill__bgemm *g, int nth) {
    const int nkb = (g->K + DISTILL__KC - 1) / DISTILL__KC, K0 = (nkb + 1) / 2 * DISTILL__KC;
    int rt = nth / 2 < 1 ? 1 : nth / 2, pm = (g->M + g->mr - 1) / g->mr, h;
    float *P = distill__ksplit_buffer((size_t)g->M * (size_t)g->N);
    distill__bgemm_ks ks;
    distill__gemm_add_ctx ad;
    if (!P) return -1;
    ks.h[0] = *g;
    ks.h[0].K = K0;
    ks.h[1] = *g;
    ks.h[1].K = g->K - K0;
    ks.h[1].a = g->a + (size_t)K0 * g->csa;
    if (g->b16) ks.h[1].b16 = g->b16 + (size_t)K0 * g->rsb;
    else ks.h[1].b = g->b + (size_t)K0 * g->rsb;
    ks.h[1].c = P;
    ks.h[1].ldc = (size_t)g->N;
    ks.h[1].accumulate = 0;
    for (h = 0; h < 2; h++) {   /* per half: rt row tasks (whole panels) x the column tiles */
        ks.h[h].bpre = NULL;
        ks.h[h].nc = DISTILL__NC;
        ks.h[h].tiles_n = (g->N + DISTILL__NC - 1) / DISTILL__NC;
        ks.h[h].mc = (pm + rt - 1) / rt * g->mr;
    }
    ks.per_half = (g->M + ks.h[0].mc - 1) / ks.h[0].mc * ks.h[0].tiles_n;
    distill__ks_run(&ks.h[0], &ks.h[1], distill__bgemm_task, ks.per_half);
    ad.c = g->c; ad.p = P; ad.ldc = g->ldc; ad.N = g->N;
    distill_parallel_for((int64_t)g->M, 1 + 4096 / g->N, distill__gemm_add_task, &ad);
    return 0;
}

static void distill__bgemm_run(distill__bgemm *g) {
    int nth = distill_get_threads(), row_tasks;
    if (g->M <= 0 || g->N <= 0) return;
    if (g->K <= 0 && g->accumulate) return;
    g->ops = distill__ops();
    g->native = distill__bf16_native();
    g->mr = g->native ? DISTILL__BF16_MR : g->ops->mr;
    g->nr = g->native ? DISTILL__BF16_NR : g->ops->nr;
    if (distill__ksplit_wanted(g->M, g->N, g->K, g->bias) && distill__bgemm_run_ksplit(g, nth) == 0) return;
    row_tasks = distill__gemm_plan(g->M, g->N, nth, &g->mc, &g->nc, &g->tiles_n);
    if (g->native && g->K > 0 && row_tasks > 1 && !distill__pool_nested()) {
        /* the pool's shared packed B (grown on first use, kept like the per-thread scratch;
           only the thread that issues the product touches the pointer) */
        distill__pool *P = &distill__the_pool;
        int64_t npan = (g->N + g->nr - 1) / g->nr, nkb = (g->K + DISTILL__KC - 1) / DISTILL__KC;
        size_t words;
        g->bpre_block = (size_t)npan * g->nr * (DISTILL__KC / 2);
        words = (size_t)nkb * g->bpre_block;
        if (P->bf16_b_words < words) {
            distill_free_aligned(P->bf16_b);
            P->bf16_b = (uint32_t *)distill_alloc_aligned(words * sizeof(uint32_t), 64);
            P->bf16_b_words = P->bf16_b ? words : 0;
        }
        g->bpre = P->bf16_b;
        if (g->bpre) {
            int units = (g->M + DISTILL__ROWQ - 1) / DISTILL__ROWQ, rt = (8 * nth + g->tiles_n - 1) / g->tiles_n;
            distill_parallel_for(nkb * npan, 1, distill__bgemm_prepack_task, g);
            /* B packed once: more, smaller row tasks cost no packing, and the threads finish
               together (~3 per thread left one thread ~10 % more rows); a task's rows do not
               change any sum, so the bits stay those of one thread */
            if (rt > units) rt = units;
            if (rt > row_tasks) {
                g->mc = (units + rt - 1) / rt * DISTILL__ROWQ;
                row_tasks = (g->M + g->mc - 1) / g->mc;
            }
        }
    }
    distill_parallel_for((int64_t)row_tasks * g->tiles_n, 1, distill__bgemm_task, g);
}

/* distill__gemm_serial with BF16 inputs: the attention blocks of a BF16 model. */
static void distill__bgemm_serial(int M, int N, int K, const float *a, size_t rsa, size_t csa,
                                  const float *b, size_t rsb, size_t csb, float *c, size_t ldc,
                                  int accumulate, int thread) {
    distill__bgemm g;
    if (M <= 0 || N <= 0 || (K <= 0 && accumulate)) return;
    memset(&g, 0, sizeof g);
    g.M = M; g.N = N; g.K = K;
    g.a = a; g.rsa = rsa; g.csa = csa;
    g.b = b; g.rsb = rsb; g.csb = csb;
    g.c = c; g.ldc = ldc;
    g.accumulate = accumulate;
    g.ops = distill__ops();
    g.native = distill__bf16_native();
    g.mr = g.native ? DISTILL__BF16_MR : g.ops->mr;
    g.nr = g.native ? DISTILL__BF16_NR : g.ops->nr;
    g.nc = DISTILL__NC;
    g.mc = (M + DISTILL__MC - 1) / DISTILL__MC * DISTILL__MC;
    g.tiles_n = (N + g.nc - 1) / g.nc;
    distill__bgemm_task(&g, 0, (int64_t)g.tiles_n, thread);
}

/* distill_matmul_forward / _backward with BF16 inputs (same shapes and contract). */
static void distill__matmul_forward_bf16(float *out, const float *inp, const float *weight, const uint16_t *w16,
                                         const float *bias, int BT, int C, int OC) {
    distill__bgemm g;
    int pr_ = distill__prof_beginf("matmul fwd bf16 [%dx%dx%d]", BT, OC, C);
    memset(&g, 0, sizeof g);
    g.M = BT; g.N = OC; g.K = C;
    g.a = inp; g.rsa = (size_t)C; g.csa = 1;
    g.b = weight; g.b16 = w16; g.rsb = 1; g.csb = (size_t)C;
    g.c = out; g.ldc = (size_t)OC;
    g.bias = bias;
    distill__bgemm_run(&g);
    distill__prof_end(pr_);
}

static void distill__matmul_backward_bf16(float *dinp, float *dweight, float *dbias, const float *dout,
                                          const float *inp, const float *weight, int BT, int C, int OC) {
    if (BT <= 0 || OC <= 0) return;
    if (dinp) {
        distill__bgemm g;
        int pr_ = distill__prof_beginf("matmul dX bf16 [%dx%dx%d]", BT, C, OC);
        memset(&g, 0, sizeof g);
        g.M = BT; g.N = C; g.K = OC;
        g.a = dout; g.rsa = (size_t)OC; g.csa = 1;
        g.b = weight; g.rsb = (size_t)C; g.csb = 1;
        g.c = dinp; g.ldc = (size_t)C;
        g.accumulate = 1;
        distill__bgemm_run(&g);
        distill__prof_end(pr_);
    }
    if (dweight) {
        distill__bgemm g;
        int pr_ = distill__prof_beginf("matmul dW bf16 [%dx%dx%d]", OC, C, BT);
        memset(&g, 0, sizeof g);
        g.M = OC; g.N = C; g.K = BT;
        g.a = dout; g.rsa = 1; g.csa = (size_t)OC;
        g.b = inp; g.rsb = (size_t)C; g.csb = 1;
        g.c = dweight; g.ldc = (size_t)C;
        g.accumulate = 1;
        distill__bgemm_run(&g);
        distill__prof_end(pr_);
    }
    if (dbias) distill_matmul_backward(NULL, NULL, dbias, dout, inp, weight, BT, C, OC);
}

/* The products of a model: FP32 or BF16 by the model's precision; w16: the weight held in
   BF16 (distill_model_to_bf16; weight NULL) */
static void distill__mm_forward(int bf16, float *out, const float *inp, const float *weight, const uint16_t *w16,
                                const float *bias, int BT, int C, int OC) {
    if (bf16) distill__matmul_forward_bf16(out, inp, weight, w16, bias, BT, C, OC);
    else if (w16) distill__matmul_forward_w16(out, inp, w16, bias, BT, C, OC);
    else distill_matmul_forward(out, inp, weight, bias, BT, C, OC);
}
static void distill__mm_backward(int bf16, float *dinp, float *dweight, float *dbias, const float *dout,
                                 const float *inp, const float *weight, int BT, int C, int OC) {
    if (bf16) distill__matmul_backward_bf16(dinp, dweight, dbias, dout, inp, weight, BT, C, OC);
    else distill_matmul_backward(dinp, dweight, dbias, dout, inp, weight, BT, C, OC);
}

/* ===================================================================================== */
/* Blocked flash attention                                                                */
/* ===================================================================================== */
/* Same contract as distill_attention_forward/backward in the model section (causal GQA, lengths,
   kstart for packed segments, lse saved, dq/dk/dv overwritten), but computed on blocks of 64
   queries x 64 keys with the matmul engine, so the FLOPs run in the FMA micro-kernel instead
   of one dot product per (query, key) pair:
     forward, per (b, h): for each key block (packed once), for each query block at or after it
         S = Q K^T * scale   (masked: j < kstart[t] or j > t  ->  -inf)
         online softmax per row: m' = max(m, rowmax S), O *= exp(m - m'), l = l exp(m - m') + sum P,
         P = exp(S - m'),  O += P V
       then O /= l, lse = m + log l (each row keeps m and l across the key blocks).
     backward, per (b, kv head g) (the task owns dk, dv of g and dq of g's query heads),
       D_t = dout_t . out_t, and for each key block (packed once), each query head of the group
       and each query block at or after the key block:
         P = exp(S - lse),  dP = dO V^T,  dS = P (dP - D) * scale
         dV += P^T dO,  dK += dS^T Q,  dQ += dS K
   Key blocks are the outer loop so that each is packed once (as B panels) for all the query
   blocks that see it; the sums per float keep the order of the query-block-outer loop.
   Every float is produced by one task in a fixed order: identical for any thread count. */
#define DISTILL__FA_Q 64
#define DISTILL__FA_K 64

typedef struct {
    float *out, *lse, *dq, *dk, *dv;
    const float *q, *k, *v, *dout, *cout, *clse;
    const int *lengths, *kstart;
    int B, T, NH, NKV, HS;
    int bf16;   /* the block products with BF16 inputs (a model in DISTILL_PRECISION_BF16) */
} distill__fa_ctx;

/* Scale row i of the S block, mask keys outside [kstart, t], return 0 if none is visible. */
static int distill__fa_mask_row(float *srow, int nk, int j0, int ks, int t, float scale) {
    int j, lo = ks - j0, hi = t - j0;
    if (lo < 0) lo = 0;
    if (hi > nk - 1) hi = nk - 1;
    if (lo > hi) return 0;
    for (j = 0; j < lo; j++) srow[j] = -INFINITY;
    distill__ops()->scale(srow + lo, scale, hi - lo + 1);
    for (j = hi + 1; j < nk; j++) srow[j] = -INFINITY;
    return 1;
}

/* Each thread's attention scratch sits after its matmul packing scratch: the packed key and
   value blocks (K^T as B panels, V as B panels) and the running max / sum of every query row. */
#define DISTILL__SCRATCH_GEMM ((size_t)DISTILL__MC * DISTILL__KC + (size_t)DISTILL__NC * DISTILL__KC + 64 * 64)
#define DISTILL__FA_QROWS (DISTILL__FA_Q + 8)   /* a query block's rows padded to whole A panels */
static size_t distill__fa_scratch(int T, int HS, int rep) {
    size_t hsp = (size_t)(HS + 63) / 64 * 64;    /* HS rounded up to a multiple of every NR */
    size_t nqb = (size_t)(T + DISTILL__FA_Q - 1) / DISTILL__FA_Q;
    return DISTILL__SCRATCH_GEMM + 6 * hsp * DISTILL__FA_K + (size_t)(rep + 2) * (size_t)T + 64
         + nqb * DISTILL__FA_QROWS * hsp;        /* the forward's packed query blocks */
}
/* A block already packed as A panels (MR rows each, K <= KC): C (M,N) (+)= A . B. */
static void distill__gemm_packed_ab(int M, int N, int K, const float *pa, const float *pb, float *c, size_t ldc,
                                    int accumulate, float *tmp) {
    distill__gemm g;
    if (M <= 0 || N <= 0 || K <= 0) return;
    memset(&g, 0, sizeof g);
    g.M = M; g.N = N; g.K = K; g.c = c; g.ldc = ldc; g.accumulate = accumulate;
    g.ops = distill__ops();
    distill__gemm_block_ps(&g, pa, NULL, 0, pb, (size_t)K, K, accumulate, 0, M, 0, 0, N, tmp);
}
/* Reserve it on the calling thread before the job (no worker allocates inside a step);
   -1 if out of memory (the caller then runs the readable version, which needs no scratch). */
static int distill__fa_reserve(int T, int HS, int rep) {
    int t, nth = distill_get_threads();
#if !defined(DISTILL_NO_THREADS)
    if (DISTILL__LOAD(&distill__the_pool.busy))   /* nested: the job runs on this thread alone */
        return distill__thread_scratch(distill__self_index(&distill__the_pool), distill__fa_scratch(T, HS, rep)) ? 0 : -1;
#endif
    for (t = 0; t < nth && t < DISTILL__MAX_THREADS; t++)
        if (!distill__thread_scratch(t, distill__fa_scratch(T, HS, rep))) return -1;
    return 0;
}

/* Task (b, h): the key blocks are the outer loop, so each key block is packed once (K^T and
   V as B panels) and then used by every query block at or after it; each query row keeps its
   running max and sum across key blocks. Blocks are aligned to multiples of DISTILL__FA_K
   (packed segments: keys before a row's kstart are masked). */
static void distill__fa_fwd_task(void *p, int64_t b0, int64_t e0, int th) {
    const distill__fa_ctx *c = (const distill__fa_ctx *)p;
    const int T = c->T, NH = c->NH, NKV = c->NKV, HS = c->HS, rep = NH / NKV, NR = distill__ops()->nr;
    const size_t qs = (size_t)NH * HS, ks = (size_t)NKV * HS, hsp = (size_t)(HS + 63) / 64 * 64;
    const float scale = 1.0f / sqrtf((float)HS);
    float *pa = distill__thread_scratch(th, distill__fa_scratch(T, HS, rep)), *tmp, *pk, *pv, *mrow, *lrow, *qp;
    float S[DISTILL__FA_Q * DISTILL__FA_K];   /* 16 KB of stack */
    const int MR = distill__ops()->mr, qpre = HS <= DISTILL__KC;   /* query blocks packed once per task */
    int64_t task;
    if (!pa) return;   /* not after distill__fa_reserve succeeded */
    tmp = pa + (size_t)DISTILL__MC * DISTILL__KC;
    pk = pa + DISTILL__SCRATCH_GEMM;
    pv = pk + 2 * hsp * DISTILL__FA_K;
    mrow = pv + 2 * hsp * DISTILL__FA_K;
    lrow = mrow + T;
    qp = lrow + T + 64;
    for (task = b0; task < e0; task++) {
        int b = (int)(task / NH), h = (int)(task % NH), g = h / rep;
        int len = c->lengths ? c->lengths[b] : T, nv = len < T ? len : T, t, i, j0, t0, ksmin = nv;
        const float *qh = c->q + (size_t)b * T * qs + (size_t)h * HS;
        float *oh = c->out + (size_t)b * T * qs + (size_t)h * HS;
        float *lse = c->lse + ((size_t)b * NH + h) * T;
        for (t = 0; t < T; t++) memset(oh + (size_t)t * qs, 0, sizeof(float) * (size_t)HS);
        for (t = nv > 0 ? nv : 0; t < T; t++) lse[t] = 0.0f;   /* past the length */
        if (nv <= 0) continue;
        for (t = 0; t < nv; t++) {
            int kst = c->kstart ? c->kstart[(size_t)b * T + t] : 0;
            if (kst < ksmin) ksmin = kst;
            mrow[t] = -INFINITY;
            lrow[t] = 0.0f;
        }
        if (qpre && !c->bf16)   /* every query block as A panels, as distill__gemm_prepacked would pack it */
            for (t0 = 0; t0 < nv; t0 += DISTILL__FA_Q) {
                int nq = nv - t0 < DISTILL__FA_Q ? nv - t0 : DISTILL__FA_Q, ir;
                float *dst = qp + (size_t)(t0 / DISTILL__FA_Q) * DISTILL__FA_QROWS * hsp;
                for (ir = 0; ir < nq; ir += MR)
                    distill__pack(dst + (size_t)ir * HS, qh + (size_t)(t0 + ir) * qs, qs, 1, nq - ir < MR ? nq - ir : MR, MR, HS);
            }
        for (j0 = ksmin / DISTILL__FA_K * DISTILL__FA_K; j0 < nv; j0 += DISTILL__FA_K) {
            int nk = nv - j0 < DISTILL__FA_K ? nv - j0 : DISTILL__FA_K;
            const float *kblk = c->k + ((size_t)b * T + j0) * ks + (size_t)g * HS;
            const float *vblk = c->v + ((size_t)b * T + j0) * ks + (size_t)g * HS;
            if (!c->bf16) {
                distill__pack_b(pk, kblk, 1, ks, HS, nk, NR);   /* B (HS, nk) = K^T */
                distill__pack_b(pv, vblk, ks, 1, nk, HS, NR);   /* B (nk, HS) = V */
            }
            for (t0 = j0 / DISTILL__FA_Q * DISTILL__FA_Q; t0 < nv; t0 += DISTILL__FA_Q) {
                int nq = nv - t0 < DISTILL__FA_Q ? nv - t0 : DISTILL__FA_Q, any = 0;
                const float *qblk = qh + (size_t)t0 * qs;
                float *oblk = oh + (size_t)t0 * qs;
                for (i = 0; i < nq && !any; i++)   /* skip a query block whose rows all start later */
                    any = (c->kstart ? c->kstart[(size_t)b * T + t0 + i] : 0) < j0 + nk;
                if (!any) continue;
                /* S (nq, nk) = Q (nq, HS) . K (nk, HS)^T (BF16 block products: packed per call) */
                if (c->bf16) distill__bgemm_serial(nq, nk, HS, qblk, qs, 1, kblk, 1, ks, S, DISTILL__FA_K, 0, th);
                else if (qpre) distill__gemm_packed_ab(nq, nk, HS, qp + (size_t)(t0 / DISTILL__FA_Q) * DISTILL__FA_QROWS * hsp, pk,
                                                  S, DISTILL__FA_K, 0, tmp);
                else distill__gemm_prepacked(nq, nk, HS, qblk, qs, 1, pk, S, DISTILL__FA_K, 0, pa, tmp);
                for (i = 0; i < nq; i++) {
                    float *srow = S + (size_t)i * DISTILL__FA_K, mb;
                    int tt = t0 + i, kst = c->kstart ? c->kstart[(size_t)b * T + tt] : 0;
                    if (!distill__fa_mask_row(srow, nk, j0, kst, tt, scale)) {
                        memset(srow, 0, sizeof(float) * (size_t)nk);
                        continue;
                    }
                    mb = distill_vec_max(srow, nk);
                    if (mb > mrow[tt]) { /* rescale what was accumulated under the old max */
                        float corr = expf(mrow[tt] - mb);
                        distill_vec_scale(oblk + (size_t)i * qs, corr, HS);
                        lrow[tt] *= corr;
                        mrow[tt] = mb;
                    }
                    lrow[tt] += distill_vec_exp_sum(srow, srow, mrow[tt], nk);
                }
                /* O (nq, HS) += P (nq, nk) . V (nk, HS) */
                if (c->bf16) distill__bgemm_serial(nq, HS, nk, S, DISTILL__FA_K, 1, vblk, ks, 1, oblk, qs, 1, th);
                else distill__gemm_prepacked(nq, HS, nk, S, DISTILL__FA_K, 1, pv, oblk, qs, 1, pa, tmp);
            }
        }
        for (t = 0; t < nv; t++) {
            distill_vec_scale(oh + (size_t)t * qs, 1.0f / lrow[t], HS);
            lse[t] = mrow[t] + logf(lrow[t]);
        }
    }
}

static void distill__flash_forward(int bf16, float *out, float *lse, const float *q, const float *k,
                                   const float *v, const int *lengths, const int *kstart,
                                   int B, int T, int NH, int NKV, int HS) {
    distill__fa_ctx c;
    int pr_;
    if (B <= 0 || T <= 0 || NH <= 0 || NKV <= 0 || HS <= 0 || NH % NKV) return;
    pr_ = distill__prof_begin(bf16 ? "attention fwd bf16" : "attention fwd");
    memset(&c, 0, sizeof c);
    c.bf16 = bf16;
    c.out = out; c.lse = lse; c.q = q; c.k = k; c.v = v; c.lengths = lengths; c.kstart = kstart;
    c.B = B; c.T = T; c.NH = NH; c.NKV = NKV; c.HS = HS;
    if (distill__fa_reserve(T, HS, NH / NKV) == 0) distill_parallel_for((int64_t)B * NH, 1, distill__fa_fwd_task, &c);
    else distill_attention_forward(out, lse, q, k, v, lengths, kstart, B, T, NH, NKV, HS);
    distill__prof_end(pr_);
}
DISTILL_API void distill_flash_attention_forward(float *out, float *lse, const float *q, const float *k,
                                                 const float *v, const int *lengths, const int *kstart,
                                                 int B, int T, int NH, int NKV, int HS) {
    distill__flash_forward(0, out, lse, q, k, v, lengths, kstart, B, T, NH, NKV, HS);
}

/* Task (b, kv head g): key blocks outer, as in the forward. Each key block is packed once as
   K^T (for S = Q K^T), V^T (for dP = dO V^T) and K (for dQ += dS K); then for every query head
   of the group and every query block at or after it the five products run. Per float, the
   order of the additions is the same as with query blocks outer: dK and dV of a key block
   take (head, query block) in order, dQ of a query block takes the key blocks in order. */
static void distill__fa_bwd_task(void *p, int64_t b0, int64_t e0, int th) {
    const distill__fa_ctx *c = (const distill__fa_ctx *)p;
    const int T = c->T, NH = c->NH, NKV = c->NKV, HS = c->HS, rep = NH / NKV, NR = distill__ops()->nr;
    const size_t qs = (size_t)NH * HS, ks = (size_t)NKV * HS, hsp = (size_t)(HS + 63) / 64 * 64;
    const float scale = 1.0f / sqrtf((float)HS);
    const distill__isa_ops *ops = distill__ops();
    float *pa = distill__thread_scratch(th, distill__fa_scratch(T, HS, rep)), *tmp, *pk, *pvt, *pkk, *D;
    float P[DISTILL__FA_Q * DISTILL__FA_K], dS[DISTILL__FA_Q * DISTILL__FA_K]; /* 32 KB of stack */
    int64_t task;
    if (!pa) return;   /* not after distill__fa_reserve succeeded */
    tmp = pa + (size_t)DISTILL__MC * DISTILL__KC;
    pk = pa + DISTILL__SCRATCH_GEMM;
    pvt = pk + 2 * hsp * DISTILL__FA_K;
    pkk = pvt + 2 * hsp * DISTILL__FA_K;
    D = pkk + 2 * hsp * DISTILL__FA_K;
    for (task = b0; task < e0; task++) {
        int b = (int)(task / NKV), g = (int)(task % NKV), h, t, t0, j0, i;
        int len = c->lengths ? c->lengths[b] : T, nv = len < T ? len : T, ksmin = nv;
        for (t = 0; t < T; t++) {
            size_t n = (size_t)b * T + t;
            memset(c->dk + n * ks + (size_t)g * HS, 0, sizeof(float) * (size_t)HS);
            memset(c->dv + n * ks + (size_t)g * HS, 0, sizeof(float) * (size_t)HS);
            for (h = g * rep; h < (g + 1) * rep; h++) memset(c->dq + n * qs + (size_t)h * HS, 0, sizeof(float) * (size_t)HS);
        }
        /* D_t = dout_t . out_t for every query head of the group */
        for (h = g * rep; h < (g + 1) * rep; h++)
            for (t = 0; t < nv; t++) {
                size_t off = ((size_t)b * T + t) * qs + (size_t)h * HS;
                D[(size_t)(h - g * rep) * T + t] = distill_vec_dot(c->dout + off, c->cout + off, HS);
            }
        for (t = 0; t < nv; t++) {
            int kst = c->kstart ? c->kstart[(size_t)b * T + t] : 0;
            if (kst < ksmin) ksmin = kst;
        }
        for (j0 = ksmin / DISTILL__FA_K * DISTILL__FA_K; j0 < nv; j0 += DISTILL__FA_K) {
            int nk = nv - j0 < DISTILL__FA_K ? nv - j0 : DISTILL__FA_K;
            size_t kvoff = ((size_t)b * T + j0) * ks + (size_t)g * HS;
            if (!c->bf16) {
                distill__pack_b(pk, c->k + kvoff, 1, ks, HS, nk, NR);    /* B (HS, nk) = K^T */
                distill__pack_b(pvt, c->v + kvoff, 1, ks, HS, nk, NR);   /* B (HS, nk) = V^T */
                distill__pack_b(pkk, c->k + kvoff, ks, 1, nk, HS, NR);   /* B (nk, HS) = K */
            }
            for (h = g * rep; h < (g + 1) * rep; h++) {
                const float *lse = c->clse + ((size_t)b * NH + h) * T, *Dh = D + (size_t)(h - g * rep) * T;
                for (t0 = j0 / DISTILL__FA_Q * DISTILL__FA_Q; t0 < nv; t0 += DISTILL__FA_Q) {
                    int nq = nv - t0 < DISTILL__FA_Q ? nv - t0 : DISTILL__FA_Q, any = 0;
                    size_t qoff = ((size_t)b * T + t0) * qs + (size_t)h * HS;
                    const float *qblk = c->q + qoff, *doblk = c->dout + qoff;
                    float *dqblk = c->dq + qoff;
                    for (i = 0; i < nq && !any; i++)   /* skip a query block whose rows all start later */
                        any = (c->kstart ? c->kstart[(size_t)b * T + t0 + i] : 0) < j0 + nk;
                    if (!any) continue;
                    /* P = exp(Q K^T * scale - lse), dP = dO V^T */
                    if (c->bf16) {   /* BF16 block products: packed per call by the BF16 path */
                        distill__bgemm_serial(nq, nk, HS, qblk, qs, 1, c->k + kvoff, 1, ks, P, DISTILL__FA_K, 0, th);
                        distill__bgemm_serial(nq, nk, HS, doblk, qs, 1, c->v + kvoff, 1, ks, dS, DISTILL__FA_K, 0, th);
                    } else {
                        distill__gemm_prepacked(nq, nk, HS, qblk, qs, 1, pk, P, DISTILL__FA_K, 0, pa, tmp);
                        distill__gemm_prepacked(nq, nk, HS, doblk, qs, 1, pvt, dS, DISTILL__FA_K, 0, pa, tmp);
                    }
                    for (i = 0; i < nq; i++) {
                        float *prow = P + (size_t)i * DISTILL__FA_K, *drow = dS + (size_t)i * DISTILL__FA_K;
                        int tt = t0 + i, kst = c->kstart ? c->kstart[(size_t)b * T + tt] : 0;
                        if (!distill__fa_mask_row(prow, nk, j0, kst, tt, scale)) {
                            memset(prow, 0, sizeof(float) * (size_t)nk);
                            memset(drow, 0, sizeof(float) * (size_t)nk);
                            continue;
                        }
                        ops->exp_sum(prow, prow, lse[tt], nk);
                        ops->ds_row(drow, prow, Dh[tt], scale, nk);   /* dS = P (dP - D) * scale; masked: P = 0 */
                    }
                    /* dV (nk, HS) += P^T dO;  dK (nk, HS) += dS^T Q;  dQ (nq, HS) += dS K */
                    if (c->bf16) {   /* BF16 block products: packed per call by the BF16 path */
                        distill__bgemm_serial(nk, HS, nq, P, 1, DISTILL__FA_K, doblk, qs, 1, c->dv + kvoff, ks, 1, th);
                        distill__bgemm_serial(nk, HS, nq, dS, 1, DISTILL__FA_K, qblk, qs, 1, c->dk + kvoff, ks, 1, th);
                        distill__bgemm_serial(nq, HS, nk, dS, DISTILL__FA_K, 1, c->k + kvoff, ks, 1, dqblk, qs, 1, th);
                    } else {
                        distill__gemm_serial(nk, HS, nq, P, 1, DISTILL__FA_K, doblk, qs, 1, c->dv + kvoff, ks, 1, th);
                        distill__gemm_serial(nk, HS, nq, dS, 1, DISTILL__FA_K, qblk, qs, 1, c->dk + kvoff, ks, 1, th);
                        distill__gemm_prepacked(nq, HS, nk, dS, DISTILL__FA_K, 1, pkk, dqblk, qs, 1, pa, tmp);
                    }
                }
            }
        }
    }
}

static void distill__flash_backward(int bf16, float *dq, float *dk, float *dv, const float *dout,
                                    const float *q, const float *k, const float *v,
                                    const float *out, const float *lse, const int *lengths,
                                    const int *kstart, int B, int T, int NH, int NKV, int HS) {
    distill__fa_ctx c;
    int pr_;
    if (B <= 0 || T <= 0 || NH <= 0 || NKV <= 0 || HS <= 0 || NH % NKV) return;
    pr_ = distill__prof_begin(bf16 ? "attention bwd bf16" : "attention bwd");
    memset(&c, 0, sizeof c);
    c.bf16 = bf16;
    c.dq = dq; c.dk = dk; c.dv = dv; c.dout = dout; c.q = q; c.k = k; c.v = v; c.cout = out; c.clse = lse;
    c.lengths = lengths; c.kstart = kstart; c.B = B; c.T = T; c.NH = NH; c.NKV = NKV; c.HS = HS;
    if (distill__fa_reserve(T, HS, NH / NKV) == 0) distill_parallel_for((int64_t)B * NKV, 1, distill__fa_bwd_task, &c);
    else distill_attention_backward(dq, dk, dv, dout, q, k, v, out, lse, lengths, kstart, B, T, NH, NKV, HS);
    distill__prof_end(pr_);
}
DISTILL_API void distill_flash_attention_backward(float *dq, float *dk, float *dv, const float *dout,
                                                  const float *q, const float *k, const float *v,
                                                  const float *out, const float *lse, const int *lengths,
                                                  const int *kstart, int B, int T, int NH, int NKV, int HS) {
    distill__flash_backward(0, dq, dk, dv, dout, q, k, v, out, lse, lengths, kstart, B, T, NH, NKV, HS);
}
/* ===================================================================================== */
/* JSON                                                                                   */
/* ===================================================================================== */
/* A strict RFC 8259 parser into an arena. Reading it top to bottom:
     1. the arena: every node, string and item array of one document lives in a chain of big
        blocks, so parsing is a few large allocations and freeing is a walk over the chain;
     2. UTF-8 validation (the whole text must be valid UTF-8, not only what we decode);
     3. the recursive-descent parser. Arrays and objects are built on a scratch stack and copied
        into the arena once their size is known, so items[] is one contiguous array;
     4. lookup helpers, the string writer and the streaming line reader for JSONL. */

/* ---- 1. the arena ----------------------------------------------------------------------- */
typedef struct distill__arena_block {
    struct distill__arena_block *next;
    size_t used, cap;          /* bytes of the payload that follows this header */
    double align_;             /* keeps the payload 8-byte aligned on every ABI */
} distill__arena_block;

/* The document header: the root node lives inside it, so distill_json_free(root) can find the
   arena from the root pointer alone. */
typedef struct distill__json_doc {
    distill__arena_block *blocks;
    size_t next_size, total;
    distill_json root;
} distill__json_doc;

static void *distill__arena_alloc(distill__json_doc *doc, size_t n) {
    distill__arena_block *b = doc->blocks;
    n = (n + 7) & ~(size_t)7;
    if (n == 0) n = 8;
    if (!b || b->cap - b->used < n) {
        size_t cap = doc->next_size, bytes;
        if (cap < n) cap = n;
        if (!distill__add_size(cap, sizeof(distill__arena_block), &bytes)) return NULL;
        b = (distill__arena_block *)DISTILL_MALLOC(bytes);
        if (!b) return NULL;
        b->next = doc->blocks;
        b->used = 0;
        b->cap = cap;
        doc->blocks = b;
        doc->total += cap;
        if (doc->next_size < ((size_t)1 << 26)) doc->next_size *= 2; /* geometric, capped at 64 MiB */
    }
    b->used += n;
    return (char *)(b + 1) + (b->used - n);
}

/* ---- 2. UTF-8 ------------------------------------------------------------------------- */
/* Length of the valid UTF-8 sequence at s[0..n), or 0 if it is invalid (overlong, surrogate,
   above U+10FFFF, truncated, stray continuation byte). Follows the table of RFC 3629 section 4. */
static size_t distill__utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    if (c < 0xC2) return 0;                               /* continuation byte or overlong C0/C1 */
    if (c < 0xE0) return (n >= 2 && (s[1] & 0xC0) == 0x80) ? 2 : 0;
    if (c < 0xF0) {
        unsigned lo = 0x80, hi = 0xBF;
        if (c == 0xE0) lo = 0xA0;                         /* overlong */
        if (c == 0xED) hi = 0x9F;                         /* U+D800..U+DFFF: surrogates */
        return (n >= 3 && s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80) ? 3 : 0;
    }
    if (c < 0xF5) {
        unsigned lo = 0x80, hi = 0xBF;
        if (c == 0xF0) lo = 0x90;                         /* overlong */
        if (c == 0xF4) hi = 0x8F;                         /* above U+10FFFF */
        return (n >= 4 && s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 &&
                (s[3] & 0xC0) == 0x80) ? 4 : 0;
    }
    return 0;
}

/* Offset of the first invalid byte in s[0..n), or n when all of it is valid UTF-8. */
DISTILL__UNUSED static size_t distill__utf8_check(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        size_t k;
        /* ASCII fast path, 8 bytes at a time */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= n) break;
        if (s[i] < 0x80) { i++; continue; }
        k = distill__utf8_seq(s + i, n - i);
        if (!k) return i;
        i += k;
    }
    return n;
}

static size_t distill__utf8_put(char *out, uint32_t cp) {
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) { o[0] = (unsigned char)(0xC0 | (cp >> 6)); o[1] = (unsigned char)(0x80 | (cp & 63)); return 2; }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 63));
        o[2] = (unsigned char)(0x80 | (cp & 63));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 63));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 63));
    o[3] = (unsigned char)(0x80 | (cp & 63));
    return 4;
}

/* ---- 3. the parser ---------------------------------------------------------------------- */
typedef struct distill__jp {
    const char *p, *end, *line_start;
    int line;
    const char *name;
    distill_error *err;
    distill__json_doc *doc;
    distill_json *stack;       /* scratch: items of the arrays/objects being built */
    size_t sn, scap;
    const char **kstack;       /* scratch: their keys */
    size_t *klstack, kn, kcap;
    int depth;
} distill__jp;

static int distill__jp_fail(distill__jp *jp, const char *at, const char *fmt, ...) DISTILL__PRINTF(3, 4);
static int distill__jp_fail(distill__jp *jp, const char *at, const char *fmt, ...) {
    if (jp->err) {
        char msg[320];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        distill__err(jp->err, "%s:%d:%ld: %s", jp->name ? jp->name : "<json>", jp->line,
                     (long)(at - jp->line_start) + 1, msg);
    }
    return -1;
}

static int distill__jp_oom(distill__jp *jp) { return distill__jp_fail(jp, jp->p, "out of memory"); }

/* JSON whitespace is space, tab, CR, LF; lines are counted here, the only place a raw newline
   may appear in valid JSON. */
static void distill__jp_ws(distill__jp *jp) {
    const char *p = jp->p, *end = jp->end;
    while (p < end) {
        char c = *p;
        if (c == ' ' || c == '\t' || c == '\r') p++;
        else if (c == '\n') { p++; jp->line++; jp->line_start = p; }
        else break;
    }
    jp->p = p;
}

/* Describe the byte at p for an error message: 'x', or \xNN when unprintable. */
static const char *distill__jp_describe(distill__jp *jp, const char *p, char *buf, size_t n) {
    unsigned char c;
    if (p >= jp->end) return "end of input";
    c = (unsigned char)*p;
    if (c >= 0x20 && c < 0x7F) snprintf(buf, n, "'%c'", c);
    else snprintf(buf, n, "byte 0x%02X", c);
    return buf;
}

static int distill__jp_hex4(const char *p, uint32_t *out) {
    uint32_t v = 0;
    int i;
    for (i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

/* A string literal at jp->p (on the opening quote). Two passes: find the closing quote (and
   reject raw control characters), then copy or decode into the arena. Escapes only shrink text
   (\u00e9 is 6 bytes in, 2 out; a surrogate pair 12 in, 4 out), so the raw length bounds the
   decoded one. */
static int distill__jp_string(distill__jp *jp, const char **out, size_t *out_len) {
    const char *start = jp->p + 1, *q = start, *end = jp->end;
    int has_esc = 0, has_hi = 0;
    char *dst;
    size_t rawlen, n = 0;
    while (q < end) {
        unsigned char c;
        /* 8 bytes at a time while none is '"', '\\', a control character or non-ASCII
           (SWAR: a byte b is zero iff (b - 1) & ~b has its high bit set) */
        while (end - q >= 8) {
            uint64_t w, quote, bslash, ctrl;
            memcpy(&w, q, 8);
            quote = w ^ 0x2222222222222222ull;
            bslash = w ^ 0x5C5C5C5C5C5C5C5Cull;
            quote = (quote - 0x0101010101010101ull) & ~quote;
            bslash = (bslash - 0x0101010101010101ull) & ~bslash;
            ctrl = (w - 0x2020202020202020ull) & ~w;
            if ((quote | bslash | ctrl | w) & 0x8080808080808080ull) break;
            q += 8;
        }
        if (q >= end) break;
        c = (unsigned char)*q;
        if (c == '"') break;
        if (c == '\\') {
            has_esc = 1;
            if (end - q < 2) { q = end; break; }
            q += 2;
            continue;
        }
        if (c < 0x20) {
            return distill__jp_fail(jp, q, "control character 0x%02X in string (write it as an escape)", c);
        }
        if (c >= 0x80) has_hi = 1;
        q++;
    }
    if (q >= end) return distill__jp_fail(jp, jp->p, "unterminated string");
    rawlen = (size_t)(q - start);
    dst = (char *)distill__arena_alloc(jp->doc, rawlen + 1);
    if (!dst) return distill__jp_oom(jp);
    if (!has_esc) {
        if (has_hi) {
            size_t bad = distill__utf8_check(start, rawlen);
            if (bad != rawlen) return distill__jp_fail(jp, start + bad, "invalid UTF-8 in string");
        }
        memcpy(dst, start, rawlen);
        n = rawlen;
    } else {
        const char *s = start;
        while (s < q) {
            unsigned char c = (unsigned char)*s;
            if (c != '\\') {
                /* a run up to the next escape: validate once, copy once */
                const char *bs = (const char *)memchr(s, '\\', (size_t)(q - s));
                size_t run = bs ? (size_t)(bs - s) : (size_t)(q - s);
                if (has_hi) {
                    size_t bad = distill__utf8_check(s, run);
                    if (bad != run) return distill__jp_fail(jp, s + bad, "invalid UTF-8 in string");
                }
                memcpy(dst + n, s, run);
                n += run;
                s += run;
                continue;
            }
            {
                char e = s[1];
                switch (e) {
                case '"': dst[n++] = '"'; s += 2; break;
                case '\\': dst[n++] = '\\'; s += 2; break;
                case '/': dst[n++] = '/'; s += 2; break;
                case 'b': dst[n++] = '\b'; s += 2; break;
                case 'f': dst[n++] = '\f'; s += 2; break;
                case 'n': dst[n++] = '\n'; s += 2; break;
                case 'r': dst[n++] = '\r'; s += 2; break;
                case 't': dst[n++] = '\t'; s += 2; break;
                case 'u': {
                    uint32_t cp, lo;
                    if (q - s < 6 || distill__jp_hex4(s + 2, &cp) != 0)
                        return distill__jp_fail(jp, s, "\\u must be followed by 4 hex digits");
                    if (cp >= 0xDC00 && cp <= 0xDFFF)
                        return distill__jp_fail(jp, s, "lone low surrogate \\u%04X", (unsigned)cp);
                    if (cp >= 0xD800 && cp <= 0xDBFF) {
                        /* a high surrogate must be followed by a low one: the pair is one character */
                        if (q - s < 12 || s[6] != '\\' || s[7] != 'u' || distill__jp_hex4(s + 8, &lo) != 0 ||
                            lo < 0xDC00 || lo > 0xDFFF)
                            return distill__jp_fail(jp, s, "lone high surrogate \\u%04X (not followed by a low surrogate)", (unsigned)cp);
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        s += 6;
                    }
                    n += distill__utf8_put(dst + n, cp);
                    s += 6;
                    break;
                }
                default: {
                    char b[16];
                    return distill__jp_fail(jp, s, "invalid escape \\%s in string",
                                            distill__jp_describe(jp, s + 1, b, sizeof b));
                }
                }
            }
        }
    }
    dst[n] = 0;
    *out = dst;
    *out_len = n;
    jp->p = q + 1;
    return 0;
}

/* number = [ '-' ] int [ frac ] [ exp ];  int = '0' / 1-9 *DIGIT. Integers that fit in int64 are
   kept exactly; the double comes from strtod on a NUL-terminated copy (the text may not be
   NUL-terminated, and strtod must see exactly the validated token). */
static int distill__jp_number(distill__jp *jp, distill_json *v) {
    const char *p = jp->p, *start = p, *end = jp->end;
    int neg = 0, is_int = 1, overflow = 0;
    uint64_t mag = 0;
    if (*p == '-') { neg = 1; p++; }
    if (p >= end || *p < '0' || *p > '9') return distill__jp_fail(jp, p, "expected a digit after '-'");
    if (*p == '0') {
        p++;
        if (p < end && *p >= '0' && *p <= '9') return distill__jp_fail(jp, start, "leading zeros are not allowed in numbers");
    } else {
        while (p < end && *p >= '0' && *p <= '9') {
            unsigned d = (unsigned)(*p - '0');
            if (mag > (UINT64_MAX - d) / 10) overflow = 1;
            else mag = mag * 10 + d;
            p++;
        }
    }
    if (p < end && *p == '.') {
        is_int = 0;
        p++;
        if (p >= end || *p < '0' || *p > '9') return distill__jp_fail(jp, p, "expected a digit after '.'");
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        is_int = 0;
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p >= end || *p < '0' || *p > '9') return distill__jp_fail(jp, p, "expected a digit in the exponent");
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    v->type = DISTILL_JSON_NUMBER;
    if (is_int && !overflow && (neg ? mag <= (uint64_t)INT64_MAX + 1 : mag <= (uint64_t)INT64_MAX)) {
        v->is_int = 1;
        v->i64 = neg ? (mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag) : (int64_t)mag;
        v->num = (double)v->i64;   /* int64 -> double rounds to nearest: correctly rounded */
    } else {
        char small[64], *buf = small, *e;
        size_t n = (size_t)(p - start);
        double d;
        if (n >= sizeof small) {
            buf = (char *)DISTILL_MALLOC(n + 1);
            if (!buf) return distill__jp_oom(jp);
        }
        memcpy(buf, start, n);
        buf[n] = 0;
        d = strtod(buf, &e);
        if (e != buf + n) {
            /* a program that called setlocale(LC_NUMERIC, ...) may use ',' as decimal point */
            char *dot = strchr(buf, '.');
            if (dot) {
                char alt[8];
                snprintf(alt, sizeof alt, "%.1f", 0.5);
                *dot = alt[1];
                d = strtod(buf, &e);
            }
        }
        if (buf != small) DISTILL_FREE(buf);
        if (d == HUGE_VAL || d == -HUGE_VAL)
            return distill__jp_fail(jp, start, "number out of range of a double");
        v->num = d;
        v->is_int = 0;
        v->i64 = (int64_t)0;
        if (d >= -9.2e18 && d <= 9.2e18) v->i64 = (int64_t)d;
    }
    jp->p = p;
    return 0;
}

static int distill__jp_value(distill__jp *jp, distill_json *v);

static int distill__jp_push(distill__jp *jp, const distill_json *v) {
    if (jp->sn == jp->scap) {
        size_t nc = jp->scap ? jp->scap * 2 : 64, bytes;
        distill_json *ns;
        if (!distill__mul_size(nc, sizeof *ns, &bytes)) return distill__jp_oom(jp);
        ns = (distill_json *)DISTILL_REALLOC(jp->stack, bytes);
        if (!ns) return distill__jp_oom(jp);
        jp->stack = ns;
        jp->scap = nc;
    }
    jp->stack[jp->sn++] = *v;
    return 0;
}

static int distill__jp_push_key(distill__jp *jp, const char *k, size_t kl) {
    if (jp->kn == jp->kcap) {
        size_t nc = jp->kcap ? jp->kcap * 2 : 64;
        const char **nk;
        size_t *nl;
        if (nc > SIZE_MAX / sizeof(size_t)) return distill__jp_oom(jp);
        nk = (const char **)DISTILL_REALLOC((void *)jp->kstack, nc * sizeof *nk);
        if (!nk) return distill__jp_oom(jp);
        jp->kstack = nk;
        nl = (size_t *)DISTILL_REALLOC(jp->klstack, nc * sizeof *nl);
        if (!nl) return distill__jp_oom(jp);
        jp->klstack = nl;
        jp->kcap = nc;
    }
    jp->kstack[jp->kn] = k;
    jp->klstack[jp->kn] = kl;
    jp->kn++;
    return 0;
}

/* Move the items pushed since `base` (and keys since `kbase` for objects) into the arena. */
static int distill__jp_collect(distill__jp *jp, distill_json *v, size_t base, size_t kbase, int object) {
    size_t n = jp->sn - base, bytes;
    v->len = n;
    if (n) {
        if (!distill__mul_size(n, sizeof(distill_json), &bytes)) return distill__jp_oom(jp);
        v->items = (distill_json *)distill__arena_alloc(jp->doc, bytes);
        if (!v->items) return distill__jp_oom(jp);
        memcpy(v->items, jp->stack + base, bytes);
        if (object) {
            v->keys = (const char **)distill__arena_alloc(jp->doc, n * sizeof(const char *));
            v->key_lens = (size_t *)distill__arena_alloc(jp->doc, n * sizeof(size_t));
            if (!v->keys || !v->key_lens) return distill__jp_oom(jp);
            memcpy((void *)v->keys, jp->kstack + kbase, n * sizeof(const char *));
            memcpy(v->key_lens, jp->klstack + kbase, n * sizeof(size_t));
        }
    }
    jp->sn = base;
    jp->kn = kbase;
    return 0;
}

static int distill__jp_array(distill__jp *jp, distill_json *v) {
    size_t base = jp->sn;
    char b[16];
    v->type = DISTILL_JSON_ARRAY;
    jp->p++;                                   /* '[' */
    distill__jp_ws(jp);
    if (jp->p < jp->end && *jp->p == ']') { jp->p++; return 0; }
    for (;;) {
        distill_json item;
        if (distill__jp_value(jp, &item) != 0) return -1;
        if (distill__jp_push(jp, &item) != 0) return -1;
        distill__jp_ws(jp);
        if (jp->p < jp->end && *jp->p == ',') {
            jp->p++;
            distill__jp_ws(jp);
            if (jp->p < jp->end && *jp->p == ']') return distill__jp_fail(jp, jp->p, "trailing comma before ']'");
            continue;
        }
        if (jp->p < jp->end && *jp->p == ']') { jp->p++; break; }
        return distill__jp_fail(jp, jp->p, "expected ',' or ']' after array item, found %s",
                                distill__jp_describe(jp, jp->p, b, sizeof b));
    }
    return distill__jp_collect(jp, v, base, jp->kn, 0);
}

static int distill__jp_object(distill__jp *jp, distill_json *v) {
    size_t base = jp->sn, kbase = jp->kn;
    char b[16];
    v->type = DISTILL_JSON_OBJECT;
    jp->p++;                                   /* '{' */
    distill__jp_ws(jp);
    if (jp->p < jp->end && *jp->p == '}') { jp->p++; return 0; }
    for (;;) {
        distill_json item;
        const char *k;
        size_t kl;
        if (jp->p >= jp->end || *jp->p != '"') {
            if (jp->p < jp->end && *jp->p == '}') return distill__jp_fail(jp, jp->p, "trailing comma before '}'");
            return distill__jp_fail(jp, jp->p, "expected a string key, found %s",
                                    distill__jp_describe(jp, jp->p, b, sizeof b));
        }
        if (distill__jp_string(jp, &k, &kl) != 0) return -1;
        distill__jp_ws(jp);
        if (jp->p >= jp->end || *jp->p != ':')
            return distill__jp_fail(jp, jp->p, "expected ':' after object key, found %s",
                                    distill__jp_describe(jp, jp->p, b, sizeof b));
        jp->p++;
        if (distill__jp_value(jp, &item) != 0) return -1;
        if (distill__jp_push(jp, &item) != 0 || distill__jp_push_key(jp, k, kl) != 0) return -1;
        distill__jp_ws(jp);
        if (jp->p < jp->end && *jp->p == ',') { jp->p++; distill__jp_ws(jp); continue; }
        if (jp->p < jp->end && *jp->p == '}') { jp->p++; break; }
        return distill__jp_fail(jp, jp->p, "expected ',' or '}' after object member, found %s",
                                distill__jp_describe(jp, jp->p, b, sizeof b));
    }
    return distill__jp_collect(jp, v, base, kbase, 1);
}

static int distill__jp_literal(distill__jp *jp, const char *word, distill_json_type t, distill_json *v) {
    size_t n = strlen(word);
    if ((size_t)(jp->end - jp->p) < n || memcmp(jp->p, word, n) != 0)
        return distill__jp_fail(jp, jp->p, "invalid literal (expected %s)", word);
    v->type = t;
    jp->p += n;
    return 0;
}

static int distill__jp_value(distill__jp *jp, distill_json *v) {
    char b[16];
    int rc;
    memset(v, 0, sizeof *v);
    distill__jp_ws(jp);
    if (jp->p >= jp->end) return distill__jp_fail(jp, jp->p, "unexpected end of input, expected a value");
    v->line = jp->line;
    v->col = (int)(jp->p - jp->line_start) + 1;
    switch (*jp->p) {
    case '{':
    case '[':
        if (jp->depth >= DISTILL_JSON_MAX_DEPTH)
            return distill__jp_fail(jp, jp->p, "nesting deeper than %d levels", DISTILL_JSON_MAX_DEPTH);
        jp->depth++;
        rc = *jp->p == '{' ? distill__jp_object(jp, v) : distill__jp_array(jp, v);
        jp->depth--;
        return rc;
    case '"':
        v->type = DISTILL_JSON_STRING;
        return distill__jp_string(jp, &v->str, &v->len);
    case 't': return distill__jp_literal(jp, "true", DISTILL_JSON_TRUE, v);
    case 'f': return distill__jp_literal(jp, "false", DISTILL_JSON_FALSE, v);
    case 'n': return distill__jp_literal(jp, "null", DISTILL_JSON_NULL, v);
    default:
        if (*jp->p == '-' || (*jp->p >= '0' && *jp->p <= '9')) return distill__jp_number(jp, v);
        return distill__jp_fail(jp, jp->p, "unexpected %s, expected a value",
                                distill__jp_describe(jp, jp->p, b, sizeof b));
    }
}

DISTILL_API void distill_json_free(distill_json *root) {
    distill__json_doc *doc;
    distill__arena_block *b;
    if (!root) return;
    doc = (distill__json_doc *)(void *)((char *)root - offsetof(distill__json_doc, root));
    b = doc->blocks;
    while (b) {
        distill__arena_block *next = b->next;
        DISTILL_FREE(b);
        b = next;
    }
    DISTILL_FREE(doc);
}

DISTILL_API distill_json *distill_json_parse(const char *text, size_t len, const char *name,
                                             int first_line, distill_error *err) {
    distill__jp jp;
    distill__json_doc *doc;
    char b[16];
    int rc;
    doc = (distill__json_doc *)DISTILL_MALLOC(sizeof *doc);
    if (!doc) { distill__err(err, "%s: out of memory", name ? name : "<json>"); return NULL; }
    memset(doc, 0, sizeof *doc);
    /* first block ~ input size: a document of strings needs about its length, a document of
       numbers more (a node per few bytes); later blocks double */
    doc->next_size = len < 4096 ? 4096 : (len > ((size_t)1 << 26) ? ((size_t)1 << 26) : len);
    memset(&jp, 0, sizeof jp);
    jp.p = text ? text : "";
    jp.end = jp.p + (text ? len : 0);
    jp.line_start = jp.p;
    jp.line = first_line > 0 ? first_line : 1;
    jp.name = name;
    jp.err = err;
    jp.doc = doc;
    /* an optional UTF-8 byte order mark at the very start */
    if (jp.end - jp.p >= 3 && memcmp(jp.p, "\xEF\xBB\xBF", 3) == 0) jp.p += 3;
    rc = distill__jp_value(&jp, &doc->root);
    if (rc == 0) {
        distill__jp_ws(&jp);
        if (jp.p < jp.end)
            rc = distill__jp_fail(&jp, jp.p, "unexpected %s after the JSON value",
                                  distill__jp_describe(&jp, jp.p, b, sizeof b));
    }
    DISTILL_FREE(jp.stack);
    DISTILL_FREE((void *)jp.kstack);
    DISTILL_FREE(jp.klstack);
    if (rc != 0) {
        distill_json_free(&doc->root);
        return NULL;
    }
    return &doc->root;
}

DISTILL_API distill_json *distill_json_parse_file(const char *path, distill_error *err) {
    size_t n;
    char *text = (char *)distill_read_file(path, &n, err);
    distill_json *root;
    if (!text) return NULL;
    root = distill_json_parse(text, n, path, 1, err);
    DISTILL_FREE(text);
    return root;
}

DISTILL_API size_t distill_json_arena_bytes(const distill_json *root) {
    const distill__json_doc *doc;
    if (!root) return 0;
    doc = (const distill__json_doc *)(const void *)((const char *)root - offsetof(distill__json_doc, root));
    return doc->total;
}

/* ---- 4. lookups, writer, line reader ----------------------------------------------------- */
static const distill_json *distill__json_get_n(const distill_json *v, const char *key, size_t kl) {
    size_t i;
    if (!v || v->type != DISTILL_JSON_OBJECT) return NULL;
    for (i = v->len; i-- > 0;)                 /* from the end: the last duplicate wins */
        if (v->key_lens[i] == kl && memcmp(v->keys[i], key, kl) == 0) return &v->items[i];
    return NULL;
}

DISTILL_API const distill_json *distill_json_get(const distill_json *v, const char *key) {
    return key ? distill__json_get_n(v, key, strlen(key)) : NULL;
}

DISTILL_API const distill_json *distill_json_at(const distill_json *v, size_t i) {
    if (!v || v->type != DISTILL_JSON_ARRAY || i >= v->len) return NULL;
    return &v->items[i];
}

DISTILL_API const distill_json *distill_json_path(const distill_json *v, const char *path) {
    const char *s = path;
    if (!path) return NULL;
    while (v) {
        const char *dot = strchr(s, '.');
        size_t n = dot ? (size_t)(dot - s) : strlen(s);
        if (v->type == DISTILL_JSON_ARRAY) {
            size_t idx = 0, i;
            if (n == 0 || n > 18) return NULL;
            for (i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9') return NULL;
                idx = idx * 10 + (size_t)(s[i] - '0');
            }
            v = distill_json_at(v, idx);
        } else {
            v = distill__json_get_n(v, s, n);
        }
        if (!dot) return v;
        s = dot + 1;
    }
    return NULL;
}

DISTILL_API const char *distill_json_type_name(distill_json_type t) {
    switch (t) {
    case DISTILL_JSON_NULL: return "null";
    case DISTILL_JSON_FALSE: return "false";
    case DISTILL_JSON_TRUE: return "true";
    case DISTILL_JSON_NUMBER: return "number";
    case DISTILL_JSON_STRING: return "string";
    case DISTILL_JSON_ARRAY: return "array";
    case DISTILL_JSON_OBJECT: return "object";
    }
    return "?";
}

/* Valid UTF-8 goes out as is; control characters, '"' and '\\' are escaped; an invalid byte
   (the caller's string need not be UTF-8) becomes U+FFFD so the output is always valid JSON. */
DISTILL_API void distill_json_write_string(FILE *f, const char *s, size_t len) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0;
    fputc('"', f);
    while (i < len) {
        unsigned c = u[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') { i++; run++; continue; }
        if (run) { fwrite(u + i - run, 1, run, f); run = 0; }
        if (c >= 0x80) {
            size_t k = distill__utf8_seq(u + i, len - i);
            if (k) fwrite(u + i, 1, k, f);
            else fputs("\\ufffd", f);
            i += k ? k : 1;
            continue;
        }
        switch (c) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        case '\b': fputs("\\b", f); break;
        case '\f': fputs("\\f", f); break;
        default: fprintf(f, "\\u%04x", c); break;
        }
        i++;
    }
    if (run) fwrite(u + i - run, 1, run, f);
    fputc('"', f);
}

struct distill_line_reader {
    FILE *f;
    char *path;
    char *buf;
    size_t cap, start, end, scan;   /* unread bytes are buf[start..end); no '\n' in [start..scan) */
    size_t max_line;
    int eof;
    int64_t line_no, offset;        /* lines returned so far; file offset of buf[start] */
};

DISTILL_API distill_line_reader *distill_line_reader_open(const char *path, size_t max_line,
                                                          distill_error *err) {
    distill_line_reader *r = (distill_line_reader *)DISTILL_MALLOC(sizeof *r);
    if (!r) { distill__err(err, "%s: out of memory", path); return NULL; }
    memset(r, 0, sizeof *r);
    r->max_line = max_line ? max_line : ((size_t)1 << 30);
    r->cap = (size_t)1 << 20;
    r->buf = (char *)DISTILL_MALLOC(r->cap);
    r->path = distill__strdup(path);
    if (!r->buf || !r->path) {
        distill__err(err, "%s: out of memory", path);
        distill_line_reader_close(r);
        return NULL;
    }
    r->f = fopen(path, "rb");
    if (!r->f) {
        distill__err(err, "%s: cannot open: %s", path, strerror(errno));
        distill_line_reader_close(r);
        return NULL;
    }
    return r;
}

DISTILL_API int distill_line_reader_next(distill_line_reader *r, const char **line, size_t *len,
                                         int64_t *line_no, distill_error *err) {
    for (;;) {
        char *nl = r->scan < r->end ? (char *)memchr(r->buf + r->scan, '\n', r->end - r->scan) : NULL;
        size_t ls = r->start, le;
        if (nl || (r->eof && r->start < r->end)) {
            if (nl) {
                le = (size_t)(nl - r->buf);
                r->start = le + 1;
            } else {                               /* the last line has no newline */
                le = r->end;
                r->start = r->end;
            }
            if (le - ls > r->max_line) {
                return distill__err(err, "%s:%lld: line longer than %zu bytes", r->path,
                                    (long long)r->line_no + 1, r->max_line);
            }
            r->scan = r->start;
            r->offset += (int64_t)(r->start - ls);
            r->line_no++;
            if (le > ls && r->buf[le - 1] == '\r') le--;
            r->buf[le] = 0;                        /* le < cap: see the growth rule below */
            *line = r->buf + ls;
            *len = le - ls;
            if (line_no) *line_no = r->line_no;
            return 1;
        }
        if (r->eof) return 0;
        r->scan = r->end;
        /* no newline in the buffer: move the partial line to the front, grow if it is full, read */
        if (r->start > 0) {
            memmove(r->buf, r->buf + r->start, r->end - r->start);
            r->end -= r->start;
            r->scan -= r->start;
            r->start = 0;
        }
        if (r->end > r->max_line) {
            return distill__err(err, "%s:%lld: line longer than %zu bytes", r->path,
                                (long long)r->line_no + 1, r->max_line);
        }
        if (r->cap - r->end < 65536 + 1) {        /* keep one spare byte for the NUL */
            size_t nc = r->cap * 2;
            char *nb;
            if (nc < r->cap) return distill__err(err, "%s: line too long", r->path);
            nb = (char *)DISTILL_REALLOC(r->buf, nc);
            if (!nb) return distill__err(err, "%s:%lld: out of memory for a line of %zu+ bytes", r->path,
                                         (long long)r->line_no + 1, r->end);
            r->buf = nb;
            r->cap = nc;
        }
        {
            size_t got = fread(r->buf + r->end, 1, r->cap - r->end - 1, r->f);
            if (got == 0) {
                if (ferror(r->f)) return distill__err(err, "%s: read error: %s", r->path, strerror(errno));
                r->eof = 1;
            }
            r->end += got;
        }
    }
}

DISTILL_API int64_t distill_line_reader_offset(const distill_line_reader *r) { return r->offset; }

DISTILL_API void distill_line_reader_close(distill_line_reader *r) {
    if (!r) return;
    if (r->f) fclose(r->f);
    DISTILL_FREE(r->buf);
    DISTILL_FREE(r->path);
    DISTILL_FREE(r);
}
/* ===================================================================================== */
/* TOKENIZER                                                                              */
/* ===================================================================================== */
/* Byte-level BPE, as in GPT-2 and minbpe. A tokenizer is
     - 256 byte tokens (every byte string can be encoded, nothing is ever "unknown"),
     - an ordered list of merges (left, right) -> result: the model; rank = position in the list,
     - special tokens, matched in text only when the caller allows it.
   Encoding cuts the text into chunks with a pre-tokenizer (the GPT-2 or cl100k regex, written
   out by hand below), maps each chunk's bytes to byte tokens and applies merges, always the
   lowest-ranked adjacent pair first (leftmost on ties), until none applies.
   llama2.c's tokenizer.bin is a different model on the same machinery: the pieces have scores,
   the highest-scoring adjacent pair whose concatenation is a piece merges first, and code points
   missing from the vocabulary fall back to byte tokens <0xXX>.
   In order below: Unicode classes and the pre-tokenizers; the tokenizer object; encoding;
   decoding (and the streaming decoder); training; files (own text format, llama2.c .bin,
   Hugging Face tokenizer.json, GPT-2 vocab.json + merges.txt). */

#include <ctype.h>
#if !defined(DISTILL_NO_THREADS) && !defined(_WIN32)
#include <pthread.h>
#define DISTILL__TOK_LOCKS 1
#endif

DISTILL_API int distill_ids_push(distill_ids *a, int32_t id) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64, bytes;
        int32_t *p;
        if (!distill__mul_size(cap, sizeof(int32_t), &bytes)) return -1;
        p = (int32_t *)DISTILL_REALLOC(a->ids, bytes);
        if (!p) return -1;
        a->ids = p;
        a->cap = cap;
    }
    a->ids[a->n++] = id;
    return 0;
}

DISTILL_API void distill_ids_free(distill_ids *a) {
    DISTILL_FREE(a->ids);
    a->ids = NULL;
    a->n = a->cap = 0;
}

/* ---- Unicode classes ------------------------------------------------------------------- */
/* The regexes need three classes of code points: letters \p{L}, numbers \p{N} and white space
   \s. Everything else (punctuation, symbols, controls, and bytes that are not valid UTF-8) is
   "other". ASCII is a table lookup; the rest a binary search in the generated ranges. */
enum { DISTILL__C_OTHER = 0, DISTILL__C_L = 1, DISTILL__C_N = 2, DISTILL__C_WS = 3 };

/* BEGIN GENERATED UNICODE TABLES (tests/gen_unicode_tables.py; do not edit by hand) */
/* Unicode 15.0.0: 796 ranges of letters (class 1, \p{L}) and numbers (class 2, \p{N}), sorted. */
static const uint32_t distill__tk_uni_ln[796][3] = {
    {0x30,0x39,2},{0x41,0x5A,1},{0x61,0x7A,1},{0xAA,0xAA,1},{0xB2,0xB3,2},
    {0xB5,0xB5,1},{0xB9,0xB9,2},{0xBA,0xBA,1},{0xBC,0xBE,2},{0xC0,0xD6,1},
    {0xD8,0xF6,1},{0xF8,0x2C1,1},{0x2C6,0x2D1,1},{0x2E0,0x2E4,1},{0x2EC,0x2EC,1},
    {0x2EE,0x2EE,1},{0x370,0x374,1},{0x376,0x377,1},{0x37A,0x37D,1},{0x37F,0x37F,1},
    {0x386,0x386,1},{0x388,0x38A,1},{0x38C,0x38C,1},{0x38E,0x3A1,1},{0x3A3,0x3F5,1},
    {0x3F7,0x481,1},{0x48A,0x52F,1},{0x531,0x556,1},{0x559,0x559,1},{0x560,0x588,1},
    {0x5D0,0x5EA,1},{0x5EF,0x5F2,1},{0x620,0x64A,1},{0x660,0x669,2},{0x66E,0x66F,1},
    {0x671,0x6D3,1},{0x6D5,0x6D5,1},{0x6E5,0x6E6,1},{0x6EE,0x6EF,1},{0x6F0,0x6F9,2},
    {0x6FA,0x6FC,1},{0x6FF,0x6FF,1},{0x710,0x710,1},{0x712,0x72F,1},{0x74D,0x7A5,1},
    {0x7B1,0x7B1,1},{0x7C0,0x7C9,2},{0x7CA,0x7EA,1},{0x7F4,0x7F5,1},{0x7FA,0x7FA,1},
    {0x800,0x815,1},{0x81A,0x81A,1},{0x824,0x824,1},{0x828,0x828,1},{0x840,0x858,1},
    {0x860,0x86A,1},{0x870,0x887,1},{0x889,0x88E,1},{0x8A0,0x8C9,1},{0x904,0x939,1},
    {0x93D,0x93D,1},{0x950,0x950,1},{0x958,0x961,1},{0x966,0x96F,2},{0x971,0x980,1},
    {0x985,0x98C,1},{0x98F,0x990,1},{0x993,0x9A8,1},{0x9AA,0x9B0,1},{0x9B2,0x9B2,1},
    {0x9B6,0x9B9,1},{0x9BD,0x9BD,1},{0x9CE,0x9CE,1},{0x9DC,0x9DD,1},{0x9DF,0x9E1,1},
    {0x9E6,0x9EF,2},{0x9F0,0x9F1,1},{0x9F4,0x9F9,2},{0x9FC,0x9FC,1},{0xA05,0xA0A,1},
    {0xA0F,0xA10,1},{0xA13,0xA28,1},{0xA2A,0xA30,1},{0xA32,0xA33,1},{0xA35,0xA36,1},
    {0xA38,0xA39,1},{0xA59,0xA5C,1},{0xA5E,0xA5E,1},{0xA66,0xA6F,2},{0xA72,0xA74,1},
    {0xA85,0xA8D,1},{0xA8F,0xA91,1},{0xA93,0xAA8,1},{0xAAA,0xAB0,1},{0xAB2,0xAB3,1},
    {0xAB5,0xAB9,1},{0xABD,0xABD,1},{0xAD0,0xAD0,1},{0xAE0,0xAE1,1},{0xAE6,0xAEF,2},
    {0xAF9,0xAF9,1},{0xB05,0xB0C,1},{0xB0F,0xB10,1},{0xB13,0xB28,1},{0xB2A,0xB30,1},
    {0xB32,0xB33,1},{0xB35,0xB39,1},{0xB3D,0xB3D,1},{0xB5C,0xB5D,1},{0xB5F,0xB61,1},
    {0xB66,0xB6F,2},{0xB71,0xB71,1},{0xB72,0xB77,2},{0xB83,0xB83,1},{0xB85,0xB8A,1},
    {0xB8E,0xB90,1},{0xB92,0xB95,1},{0xB99,0xB9A,1},{0xB9C,0xB9C,1},{0xB9E,0xB9F,1},
    {0xBA3,0xBA4,1},{0xBA8,0xBAA,1},{0xBAE,0xBB9,1},{0xBD0,0xBD0,1},{0xBE6,0xBF2,2},
    {0xC05,0xC0C,1},{0xC0E,0xC10,1},{0xC12,0xC28,1},{0xC2A,0xC39,1},{0xC3D,0xC3D,1},
    {0xC58,0xC5A,1},{0xC5D,0xC5D,1},{0xC60,0xC61,1},{0xC66,0xC6F,2},{0xC78,0xC7E,2},
    {0xC80,0xC80,1},{0xC85,0xC8C,1},{0xC8E,0xC90,1},{0xC92,0xCA8,1},{0xCAA,0xCB3,1},
    {0xCB5,0xCB9,1},{0xCBD,0xCBD,1},{0xCDD,0xCDE,1},{0xCE0,0xCE1,1},{0xCE6,0xCEF,2},
    {0xCF1,0xCF2,1},{0xD04,0xD0C,1},{0xD0E,0xD10,1},{0xD12,0xD3A,1},{0xD3D,0xD3D,1},
    {0xD4E,0xD4E,1},{0xD54,0xD56,1},{0xD58,0xD5E,2},{0xD5F,0xD61,1},{0xD66,0xD78,2},
    {0xD7A,0xD7F,1},{0xD85,0xD96,1},{0xD9A,0xDB1,1},{0xDB3,0xDBB,1},{0xDBD,0xDBD,1},
    {0xDC0,0xDC6,1},{0xDE6,0xDEF,2},{0xE01,0xE30,1},{0xE32,0xE33,1},{0xE40,0xE46,1},
    {0xE50,0xE59,2},{0xE81,0xE82,1},{0xE84,0xE84,1},{0xE86,0xE8A,1},{0xE8C,0xEA3,1},
    {0xEA5,0xEA5,1},{0xEA7,0xEB0,1},{0xEB2,0xEB3,1},{0xEBD,0xEBD,1},{0xEC0,0xEC4,1},
    {0xEC6,0xEC6,1},{0xED0,0xED9,2},{0xEDC,0xEDF,1},{0xF00,0xF00,1},{0xF20,0xF33,2},
    {0xF40,0xF47,1},{0xF49,0xF6C,1},{0xF88,0xF8C,1},{0x1000,0x102A,1},{0x103F,0x103F,1},
    {0x1040,0x1049,2},{0x1050,0x1055,1},{0x105A,0x105D,1},{0x1061,0x1061,1},{0x1065,0x1066,1},
    {0x106E,0x1070,1},{0x1075,0x1081,1},{0x108E,0x108E,1},{0x1090,0x1099,2},{0x10A0,0x10C5,1},
    {0x10C7,0x10C7,1},{0x10CD,0x10CD,1},{0x10D0,0x10FA,1},{0x10FC,0x1248,1},{0x124A,0x124D,1},
    {0x1250,0x1256,1},{0x1258,0x1258,1},{0x125A,0x125D,1},{0x1260,0x1288,1},{0x128A,0x128D,1},
    {0x1290,0x12B0,1},{0x12B2,0x12B5,1},{0x12B8,0x12BE,1},{0x12C0,0x12C0,1},{0x12C2,0x12C5,1},
    {0x12C8,0x12D6,1},{0x12D8,0x1310,1},{0x1312,0x1315,1},{0x1318,0x135A,1},{0x1369,0x137C,2},
    {0x1380,0x138F,1},{0x13A0,0x13F5,1},{0x13F8,0x13FD,1},{0x1401,0x166C,1},{0x166F,0x167F,1},
    {0x1681,0x169A,1},{0x16A0,0x16EA,1},{0x16EE,0x16F0,2},{0x16F1,0x16F8,1},{0x1700,0x1711,1},
    {0x171F,0x1731,1},{0x1740,0x1751,1},{0x1760,0x176C,1},{0x176E,0x1770,1},{0x1780,0x17B3,1},
    {0x17D7,0x17D7,1},{0x17DC,0x17DC,1},{0x17E0,0x17E9,2},{0x17F0,0x17F9,2},{0x1810,0x1819,2},
    {0x1820,0x1878,1},{0x1880,0x1884,1},{0x1887,0x18A8,1},{0x18AA,0x18AA,1},{0x18B0,0x18F5,1},
    {0x1900,0x191E,1},{0x1946,0x194F,2},{0x1950,0x196D,1},{0x1970,0x1974,1},{0x1980,0x19AB,1},
    {0x19B0,0x19C9,1},{0x19D0,0x19DA,2},{0x1A00,0x1A16,1},{0x1A20,0x1A54,1},{0x1A80,0x1A89,2},
    {0x1A90,0x1A99,2},{0x1AA7,0x1AA7,1},{0x1B05,0x1B33,1},{0x1B45,0x1B4C,1},{0x1B50,0x1B59,2},
    {0x1B83,0x1BA0,1},{0x1BAE,0x1BAF,1},{0x1BB0,0x1BB9,2},{0x1BBA,0x1BE5,1},{0x1C00,0x1C23,1},
    {0x1C40,0x1C49,2},{0x1C4D,0x1C4F,1},{0x1C50,0x1C59,2},{0x1C5A,0x1C7D,1},{0x1C80,0x1C88,1},
    {0x1C90,0x1CBA,1},{0x1CBD,0x1CBF,1},{0x1CE9,0x1CEC,1},{0x1CEE,0x1CF3,1},{0x1CF5,0x1CF6,1},
    {0x1CFA,0x1CFA,1},{0x1D00,0x1DBF,1},{0x1E00,0x1F15,1},{0x1F18,0x1F1D,1},{0x1F20,0x1F45,1},
    {0x1F48,0x1F4D,1},{0x1F50,0x1F57,1},{0x1F59,0x1F59,1},{0x1F5B,0x1F5B,1},{0x1F5D,0x1F5D,1},
    {0x1F5F,0x1F7D,1},{0x1F80,0x1FB4,1},{0x1FB6,0x1FBC,1},{0x1FBE,0x1FBE,1},{0x1FC2,0x1FC4,1},
    {0x1FC6,0x1FCC,1},{0x1FD0,0x1FD3,1},{0x1FD6,0x1FDB,1},{0x1FE0,0x1FEC,1},{0x1FF2,0x1FF4,1},
    {0x1FF6,0x1FFC,1},{0x2070,0x2070,2},{0x2071,0x2071,1},{0x2074,0x2079,2},{0x207F,0x207F,1},
    {0x2080,0x2089,2},{0x2090,0x209C,1},{0x2102,0x2102,1},{0x2107,0x2107,1},{0x210A,0x2113,1},
    {0x2115,0x2115,1},{0x2119,0x211D,1},{0x2124,0x2124,1},{0x2126,0x2126,1},{0x2128,0x2128,1},
    {0x212A,0x212D,1},{0x212F,0x2139,1},{0x213C,0x213F,1},{0x2145,0x2149,1},{0x214E,0x214E,1},
    {0x2150,0x2182,2},{0x2183,0x2184,1},{0x2185,0x2189,2},{0x2460,0x249B,2},{0x24EA,0x24FF,2},
    {0x2776,0x2793,2},{0x2C00,0x2CE4,1},{0x2CEB,0x2CEE,1},{0x2CF2,0x2CF3,1},{0x2CFD,0x2CFD,2},
    {0x2D00,0x2D25,1},{0x2D27,0x2D27,1},{0x2D2D,0x2D2D,1},{0x2D30,0x2D67,1},{0x2D6F,0x2D6F,1},
    {0x2D80,0x2D96,1},{0x2DA0,0x2DA6,1},{0x2DA8,0x2DAE,1},{0x2DB0,0x2DB6,1},{0x2DB8,0x2DBE,1},
    {0x2DC0,0x2DC6,1},{0x2DC8,0x2DCE,1},{0x2DD0,0x2DD6,1},{0x2DD8,0x2DDE,1},{0x2E2F,0x2E2F,1},
    {0x3005,0x3006,1},{0x3007,0x3007,2},{0x3021,0x3029,2},{0x3031,0x3035,1},{0x3038,0x303A,2},
    {0x303B,0x303C,1},{0x3041,0x3096,1},{0x309D,0x309F,1},{0x30A1,0x30FA,1},{0x30FC,0x30FF,1},
    {0x3105,0x312F,1},{0x3131,0x318E,1},{0x3192,0x3195,2},{0x31A0,0x31BF,1},{0x31F0,0x31FF,1},
    {0x3220,0x3229,2},{0x3248,0x324F,2},{0x3251,0x325F,2},{0x3280,0x3289,2},{0x32B1,0x32BF,2},
    {0x3400,0x4DBF,1},{0x4E00,0xA48C,1},{0xA4D0,0xA4FD,1},{0xA500,0xA60C,1},{0xA610,0xA61F,1},
    {0xA620,0xA629,2},{0xA62A,0xA62B,1},{0xA640,0xA66E,1},{0xA67F,0xA69D,1},{0xA6A0,0xA6E5,1},
    {0xA6E6,0xA6EF,2},{0xA717,0xA71F,1},{0xA722,0xA788,1},{0xA78B,0xA7CA,1},{0xA7D0,0xA7D1,1},
    {0xA7D3,0xA7D3,1},{0xA7D5,0xA7D9,1},{0xA7F2,0xA801,1},{0xA803,0xA805,1},{0xA807,0xA80A,1},
    {0xA80C,0xA822,1},{0xA830,0xA835,2},{0xA840,0xA873,1},{0xA882,0xA8B3,1},{0xA8D0,0xA8D9,2},
    {0xA8F2,0xA8F7,1},{0xA8FB,0xA8FB,1},{0xA8FD,0xA8FE,1},{0xA900,0xA909,2},{0xA90A,0xA925,1},
    {0xA930,0xA946,1},{0xA960,0xA97C,1},{0xA984,0xA9B2,1},{0xA9CF,0xA9CF,1},{0xA9D0,0xA9D9,2},
    {0xA9E0,0xA9E4,1},{0xA9E6,0xA9EF,1},{0xA9F0,0xA9F9,2},{0xA9FA,0xA9FE,1},{0xAA00,0xAA28,1},
    {0xAA40,0xAA42,1},{0xAA44,0xAA4B,1},{0xAA50,0xAA59,2},{0xAA60,0xAA76,1},{0xAA7A,0xAA7A,1},
    {0xAA7E,0xAAAF,1},{0xAAB1,0xAAB1,1},{0xAAB5,0xAAB6,1},{0xAAB9,0xAABD,1},{0xAAC0,0xAAC0,1},
    {0xAAC2,0xAAC2,1},{0xAADB,0xAADD,1},{0xAAE0,0xAAEA,1},{0xAAF2,0xAAF4,1},{0xAB01,0xAB06,1},
    {0xAB09,0xAB0E,1},{0xAB11,0xAB16,1},{0xAB20,0xAB26,1},{0xAB28,0xAB2E,1},{0xAB30,0xAB5A,1},
    {0xAB5C,0xAB69,1},{0xAB70,0xABE2,1},{0xABF0,0xABF9,2},{0xAC00,0xD7A3,1},{0xD7B0,0xD7C6,1},
    {0xD7CB,0xD7FB,1},{0xF900,0xFA6D,1},{0xFA70,0xFAD9,1},{0xFB00,0xFB06,1},{0xFB13,0xFB17,1},
    {0xFB1D,0xFB1D,1},{0xFB1F,0xFB28,1},{0xFB2A,0xFB36,1},{0xFB38,0xFB3C,1},{0xFB3E,0xFB3E,1},
    {0xFB40,0xFB41,1},{0xFB43,0xFB44,1},{0xFB46,0xFBB1,1},{0xFBD3,0xFD3D,1},{0xFD50,0xFD8F,1},
    {0xFD92,0xFDC7,1},{0xFDF0,0xFDFB,1},{0xFE70,0xFE74,1},{0xFE76,0xFEFC,1},{0xFF10,0xFF19,2},
    {0xFF21,0xFF3A,1},{0xFF41,0xFF5A,1},{0xFF66,0xFFBE,1},{0xFFC2,0xFFC7,1},{0xFFCA,0xFFCF,1},
    {0xFFD2,0xFFD7,1},{0xFFDA,0xFFDC,1},{0x10000,0x1000B,1},{0x1000D,0x10026,1},{0x10028,0x1003A,1},
    {0x1003C,0x1003D,1},{0x1003F,0x1004D,1},{0x10050,0x1005D,1},{0x10080,0x100FA,1},{0x10107,0x10133,2},
    {0x10140,0x10178,2},{0x1018A,0x1018B,2},{0x10280,0x1029C,1},{0x102A0,0x102D0,1},{0x102E1,0x102FB,2},
    {0x10300,0x1031F,1},{0x10320,0x10323,2},{0x1032D,0x10340,1},{0x10341,0x10341,2},{0x10342,0x10349,1},
    {0x1034A,0x1034A,2},{0x10350,0x10375,1},{0x10380,0x1039D,1},{0x103A0,0x103C3,1},{0x103C8,0x103CF,1},
    {0x103D1,0x103D5,2},{0x10400,0x1049D,1},{0x104A0,0x104A9,2},{0x104B0,0x104D3,1},{0x104D8,0x104FB,1},
    {0x10500,0x10527,1},{0x10530,0x10563,1},{0x10570,0x1057A,1},{0x1057C,0x1058A,1},{0x1058C,0x10592,1},
    {0x10594,0x10595,1},{0x10597,0x105A1,1},{0x105A3,0x105B1,1},{0x105B3,0x105B9,1},{0x105BB,0x105BC,1},
    {0x10600,0x10736,1},{0x10740,0x10755,1},{0x10760,0x10767,1},{0x10780,0x10785,1},{0x10787,0x107B0,1},
    {0x107B2,0x107BA,1},{0x10800,0x10805,1},{0x10808,0x10808,1},{0x1080A,0x10835,1},{0x10837,0x10838,1},
    {0x1083C,0x1083C,1},{0x1083F,0x10855,1},{0x10858,0x1085F,2},{0x10860,0x10876,1},{0x10879,0x1087F,2},
    {0x10880,0x1089E,1},{0x108A7,0x108AF,2},{0x108E0,0x108F2,1},{0x108F4,0x108F5,1},{0x108FB,0x108FF,2},
    {0x10900,0x10915,1},{0x10916,0x1091B,2},{0x10920,0x10939,1},{0x10980,0x109B7,1},{0x109BC,0x109BD,2},
    {0x109BE,0x109BF,1},{0x109C0,0x109CF,2},{0x109D2,0x109FF,2},{0x10A00,0x10A00,1},{0x10A10,0x10A13,1},
    {0x10A15,0x10A17,1},{0x10A19,0x10A35,1},{0x10A40,0x10A48,2},{0x10A60,0x10A7C,1},{0x10A7D,0x10A7E,2},
    {0x10A80,0x10A9C,1},{0x10A9D,0x10A9F,2},{0x10AC0,0x10AC7,1},{0x10AC9,0x10AE4,1},{0x10AEB,0x10AEF,2},
    {0x10B00,0x10B35,1},{0x10B40,0x10B55,1},{0x10B58,0x10B5F,2},{0x10B60,0x10B72,1},{0x10B78,0x10B7F,2},
    {0x10B80,0x10B91,1},{0x10BA9,0x10BAF,2},{0x10C00,0x10C48,1},{0x10C80,0x10CB2,1},{0x10CC0,0x10CF2,1},
    {0x10CFA,0x10CFF,2},{0x10D00,0x10D23,1},{0x10D30,0x10D39,2},{0x10E60,0x10E7E,2},{0x10E80,0x10EA9,1},
    {0x10EB0,0x10EB1,1},{0x10F00,0x10F1C,1},{0x10F1D,0x10F26,2},{0x10F27,0x10F27,1},{0x10F30,0x10F45,1},
    {0x10F51,0x10F54,2},{0x10F70,0x10F81,1},{0x10FB0,0x10FC4,1},{0x10FC5,0x10FCB,2},{0x10FE0,0x10FF6,1},
    {0x11003,0x11037,1},{0x11052,0x1106F,2},{0x11071,0x11072,1},{0x11075,0x11075,1},{0x11083,0x110AF,1},
    {0x110D0,0x110E8,1},{0x110F0,0x110F9,2},{0x11103,0x11126,1},{0x11136,0x1113F,2},{0x11144,0x11144,1},
    {0x11147,0x11147,1},{0x11150,0x11172,1},{0x11176,0x11176,1},{0x11183,0x111B2,1},{0x111C1,0x111C4,1},
    {0x111D0,0x111D9,2},{0x111DA,0x111DA,1},{0x111DC,0x111DC,1},{0x111E1,0x111F4,2},{0x11200,0x11211,1},
    {0x11213,0x1122B,1},{0x1123F,0x11240,1},{0x11280,0x11286,1},{0x11288,0x11288,1},{0x1128A,0x1128D,1},
    {0x1128F,0x1129D,1},{0x1129F,0x112A8,1},{0x112B0,0x112DE,1},{0x112F0,0x112F9,2},{0x11305,0x1130C,1},
    {0x1130F,0x11310,1},{0x11313,0x11328,1},{0x1132A,0x11330,1},{0x11332,0x11333,1},{0x11335,0x11339,1},
    {0x1133D,0x1133D,1},{0x11350,0x11350,1},{0x1135D,0x11361,1},{0x11400,0x11434,1},{0x11447,0x1144A,1},
    {0x11450,0x11459,2},{0x1145F,0x11461,1},{0x11480,0x114AF,1},{0x114C4,0x114C5,1},{0x114C7,0x114C7,1},
    {0x114D0,0x114D9,2},{0x11580,0x115AE,1},{0x115D8,0x115DB,1},{0x11600,0x1162F,1},{0x11644,0x11644,1},
    {0x11650,0x11659,2},{0x11680,0x116AA,1},{0x116B8,0x116B8,1},{0x116C0,0x116C9,2},{0x11700,0x1171A,1},
    {0x11730,0x1173B,2},{0x11740,0x11746,1},{0x11800,0x1182B,1},{0x118A0,0x118DF,1},{0x118E0,0x118F2,2},
    {0x118FF,0x11906,1},{0x11909,0x11909,1},{0x1190C,0x11913,1},{0x11915,0x11916,1},{0x11918,0x1192F,1},
    {0x1193F,0x1193F,1},{0x11941,0x11941,1},{0x11950,0x11959,2},{0x119A0,0x119A7,1},{0x119AA,0x119D0,1},
    {0x119E1,0x119E1,1},{0x119E3,0x119E3,1},{0x11A00,0x11A00,1},{0x11A0B,0x11A32,1},{0x11A3A,0x11A3A,1},
    {0x11A50,0x11A50,1},{0x11A5C,0x11A89,1},{0x11A9D,0x11A9D,1},{0x11AB0,0x11AF8,1},{0x11C00,0x11C08,1},
    {0x11C0A,0x11C2E,1},{0x11C40,0x11C40,1},{0x11C50,0x11C6C,2},{0x11C72,0x11C8F,1},{0x11D00,0x11D06,1},
    {0x11D08,0x11D09,1},{0x11D0B,0x11D30,1},{0x11D46,0x11D46,1},{0x11D50,0x11D59,2},{0x11D60,0x11D65,1},
    {0x11D67,0x11D68,1},{0x11D6A,0x11D89,1},{0x11D98,0x11D98,1},{0x11DA0,0x11DA9,2},{0x11EE0,0x11EF2,1},
    {0x11F02,0x11F02,1},{0x11F04,0x11F10,1},{0x11F12,0x11F33,1},{0x11F50,0x11F59,2},{0x11FB0,0x11FB0,1},
    {0x11FC0,0x11FD4,2},{0x12000,0x12399,1},{0x12400,0x1246E,2},{0x12480,0x12543,1},{0x12F90,0x12FF0,1},
    {0x13000,0x1342F,1},{0x13441,0x13446,1},{0x14400,0x14646,1},{0x16800,0x16A38,1},{0x16A40,0x16A5E,1},
    {0x16A60,0x16A69,2},{0x16A70,0x16ABE,1},{0x16AC0,0x16AC9,2},{0x16AD0,0x16AED,1},{0x16B00,0x16B2F,1},
    {0x16B40,0x16B43,1},{0x16B50,0x16B59,2},{0x16B5B,0x16B61,2},{0x16B63,0x16B77,1},{0x16B7D,0x16B8F,1},
    {0x16E40,0x16E7F,1},{0x16E80,0x16E96,2},{0x16F00,0x16F4A,1},{0x16F50,0x16F50,1},{0x16F93,0x16F9F,1},
    {0x16FE0,0x16FE1,1},{0x16FE3,0x16FE3,1},{0x17000,0x187F7,1},{0x18800,0x18CD5,1},{0x18D00,0x18D08,1},
    {0x1AFF0,0x1AFF3,1},{0x1AFF5,0x1AFFB,1},{0x1AFFD,0x1AFFE,1},{0x1B000,0x1B122,1},{0x1B132,0x1B132,1},
    {0x1B150,0x1B152,1},{0x1B155,0x1B155,1},{0x1B164,0x1B167,1},{0x1B170,0x1B2FB,1},{0x1BC00,0x1BC6A,1},
    {0x1BC70,0x1BC7C,1},{0x1BC80,0x1BC88,1},{0x1BC90,0x1BC99,1},{0x1D2C0,0x1D2D3,2},{0x1D2E0,0x1D2F3,2},
    {0x1D360,0x1D378,2},{0x1D400,0x1D454,1},{0x1D456,0x1D49C,1},{0x1D49E,0x1D49F,1},{0x1D4A2,0x1D4A2,1},
    {0x1D4A5,0x1D4A6,1},{0x1D4A9,0x1D4AC,1},{0x1D4AE,0x1D4B9,1},{0x1D4BB,0x1D4BB,1},{0x1D4BD,0x1D4C3,1},
    {0x1D4C5,0x1D505,1},{0x1D507,0x1D50A,1},{0x1D50D,0x1D514,1},{0x1D516,0x1D51C,1},{0x1D51E,0x1D539,1},
    {0x1D53B,0x1D53E,1},{0x1D540,0x1D544,1},{0x1D546,0x1D546,1},{0x1D54A,0x1D550,1},{0x1D552,0x1D6A5,1},
    {0x1D6A8,0x1D6C0,1},{0x1D6C2,0x1D6DA,1},{0x1D6DC,0x1D6FA,1},{0x1D6FC,0x1D714,1},{0x1D716,0x1D734,1},
    {0x1D736,0x1D74E,1},{0x1D750,0x1D76E,1},{0x1D770,0x1D788,1},{0x1D78A,0x1D7A8,1},{0x1D7AA,0x1D7C2,1},
    {0x1D7C4,0x1D7CB,1},{0x1D7CE,0x1D7FF,2},{0x1DF00,0x1DF1E,1},{0x1DF25,0x1DF2A,1},{0x1E030,0x1E06D,1},
    {0x1E100,0x1E12C,1},{0x1E137,0x1E13D,1},{0x1E140,0x1E149,2},{0x1E14E,0x1E14E,1},{0x1E290,0x1E2AD,1},
    {0x1E2C0,0x1E2EB,1},{0x1E2F0,0x1E2F9,2},{0x1E4D0,0x1E4EB,1},{0x1E4F0,0x1E4F9,2},{0x1E7E0,0x1E7E6,1},
    {0x1E7E8,0x1E7EB,1},{0x1E7ED,0x1E7EE,1},{0x1E7F0,0x1E7FE,1},{0x1E800,0x1E8C4,1},{0x1E8C7,0x1E8CF,2},
    {0x1E900,0x1E943,1},{0x1E94B,0x1E94B,1},{0x1E950,0x1E959,2},{0x1EC71,0x1ECAB,2},{0x1ECAD,0x1ECAF,2},
    {0x1ECB1,0x1ECB4,2},{0x1ED01,0x1ED2D,2},{0x1ED2F,0x1ED3D,2},{0x1EE00,0x1EE03,1},{0x1EE05,0x1EE1F,1},
    {0x1EE21,0x1EE22,1},{0x1EE24,0x1EE24,1},{0x1EE27,0x1EE27,1},{0x1EE29,0x1EE32,1},{0x1EE34,0x1EE37,1},
    {0x1EE39,0x1EE39,1},{0x1EE3B,0x1EE3B,1},{0x1EE42,0x1EE42,1},{0x1EE47,0x1EE47,1},{0x1EE49,0x1EE49,1},
    {0x1EE4B,0x1EE4B,1},{0x1EE4D,0x1EE4F,1},{0x1EE51,0x1EE52,1},{0x1EE54,0x1EE54,1},{0x1EE57,0x1EE57,1},
    {0x1EE59,0x1EE59,1},{0x1EE5B,0x1EE5B,1},{0x1EE5D,0x1EE5D,1},{0x1EE5F,0x1EE5F,1},{0x1EE61,0x1EE62,1},
    {0x1EE64,0x1EE64,1},{0x1EE67,0x1EE6A,1},{0x1EE6C,0x1EE72,1},{0x1EE74,0x1EE77,1},{0x1EE79,0x1EE7C,1},
    {0x1EE7E,0x1EE7E,1},{0x1EE80,0x1EE89,1},{0x1EE8B,0x1EE9B,1},{0x1EEA1,0x1EEA3,1},{0x1EEA5,0x1EEA9,1},
    {0x1EEAB,0x1EEBB,1},{0x1F100,0x1F10C,2},{0x1FBF0,0x1FBF9,2},{0x20000,0x2A6DF,1},{0x2A700,0x2B739,1},
    {0x2B740,0x2B81D,1},{0x2B820,0x2CEA1,1},{0x2CEB0,0x2EBE0,1},{0x2F800,0x2FA1D,1},{0x30000,0x3134A,1},
    {0x31350,0x323AF,1},
};
/* White_Space (PropList.txt): what \s matches in the reference regex engines. */
static const uint32_t distill__tk_uni_ws[11][2] = {
    {0x9,0xD},{0x20,0x20},{0x85,0x85},{0xA0,0xA0},{0x1680,0x1680},{0x2000,0x200A},{0x2028,0x2028},{0x2029,0x2029},{0x202F,0x202F},{0x205F,0x205F},{0x3000,0x3000},
};
/* NFC_Quick_Check = No or Maybe (DerivedNormalizationProps.txt): text without these is NFC. */
static const uint32_t distill__tk_uni_nfcqc[112][2] = {
    {0x300,0x304},{0x306,0x30C},{0x30F,0x30F},{0x311,0x311},{0x313,0x314},{0x31B,0x31B},
    {0x323,0x328},{0x32D,0x32E},{0x330,0x331},{0x338,0x338},{0x340,0x345},{0x374,0x374},
    {0x37E,0x37E},{0x387,0x387},{0x653,0x655},{0x93C,0x93C},{0x958,0x95F},{0x9BE,0x9BE},
    {0x9D7,0x9D7},{0x9DC,0x9DD},{0x9DF,0x9DF},{0xA33,0xA33},{0xA36,0xA36},{0xA59,0xA5B},
    {0xA5E,0xA5E},{0xB3E,0xB3E},{0xB56,0xB57},{0xB5C,0xB5D},{0xBBE,0xBBE},{0xBD7,0xBD7},
    {0xC56,0xC56},{0xCC2,0xCC2},{0xCD5,0xCD6},{0xD3E,0xD3E},{0xD57,0xD57},{0xDCA,0xDCA},
    {0xDCF,0xDCF},{0xDDF,0xDDF},{0xF43,0xF43},{0xF4D,0xF4D},{0xF52,0xF52},{0xF57,0xF57},
    {0xF5C,0xF5C},{0xF69,0xF69},{0xF73,0xF73},{0xF75,0xF76},{0xF78,0xF78},{0xF81,0xF81},
    {0xF93,0xF93},{0xF9D,0xF9D},{0xFA2,0xFA2},{0xFA7,0xFA7},{0xFAC,0xFAC},{0xFB9,0xFB9},
    {0x102E,0x102E},{0x1161,0x1175},{0x11A8,0x11C2},{0x1B35,0x1B35},{0x1F71,0x1F71},{0x1F73,0x1F73},
    {0x1F75,0x1F75},{0x1F77,0x1F77},{0x1F79,0x1F79},{0x1F7B,0x1F7B},{0x1F7D,0x1F7D},{0x1FBB,0x1FBB},
    {0x1FBE,0x1FBE},{0x1FC9,0x1FC9},{0x1FCB,0x1FCB},{0x1FD3,0x1FD3},{0x1FDB,0x1FDB},{0x1FE3,0x1FE3},
    {0x1FEB,0x1FEB},{0x1FEE,0x1FEF},{0x1FF9,0x1FF9},{0x1FFB,0x1FFB},{0x1FFD,0x1FFD},{0x2000,0x2001},
    {0x2126,0x2126},{0x212A,0x212B},{0x2329,0x232A},{0x2ADC,0x2ADC},{0x3099,0x309A},{0xF900,0xFA0D},
    {0xFA10,0xFA10},{0xFA12,0xFA12},{0xFA15,0xFA1E},{0xFA20,0xFA20},{0xFA22,0xFA22},{0xFA25,0xFA26},
    {0xFA2A,0xFA6D},{0xFA70,0xFAD9},{0xFB1D,0xFB1D},{0xFB1F,0xFB1F},{0xFB2A,0xFB36},{0xFB38,0xFB3C},
    {0xFB3E,0xFB3E},{0xFB40,0xFB41},{0xFB43,0xFB44},{0xFB46,0xFB4E},{0x110BA,0x110BA},{0x11127,0x11127},
    {0x1133E,0x1133E},{0x11357,0x11357},{0x114B0,0x114B0},{0x114BA,0x114BA},{0x114BD,0x114BD},{0x115AF,0x115AF},
    {0x11930,0x11930},{0x1D15E,0x1D164},{0x1D1BB,0x1D1C0},{0x2F800,0x2FA1D},
};
/* END GENERATED UNICODE TABLES */

static const unsigned char distill__tk_ascii_class[128] = {
    0,0,0,0,0,0,0,0,0,3,3,3,3,3,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    3,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, 2,2,2,2,2,2,2,2,2,2,0,0,0,0,0,0,
    0,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1,1,1,1,0,0,0,0,0,
    0,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, 1,1,1,1,1,1,1,1,1,1,1,0,0,0,0,0};

static int distill__tk_class_of(uint32_t cp) {
    size_t lo = 0, hi = sizeof distill__tk_uni_ln / sizeof distill__tk_uni_ln[0], i;
    if (cp < 128) return distill__tk_ascii_class[cp];
    for (i = 0; i < sizeof distill__tk_uni_ws / sizeof distill__tk_uni_ws[0]; i++)
        if (cp >= distill__tk_uni_ws[i][0] && cp <= distill__tk_uni_ws[i][1]) return DISTILL__C_WS;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < distill__tk_uni_ln[mid][0]) hi = mid;
        else if (cp > distill__tk_uni_ln[mid][1]) lo = mid + 1;
        else return (int)distill__tk_uni_ln[mid][2];
    }
    return DISTILL__C_OTHER;
}

/* Length of the UTF-8 character at s[0..n) (n >= 1) and its code point; an invalid or truncated
   sequence (overlong, surrogate, > U+10FFFF) counts as one byte with cp = 0xFFFFFFFF. */
static size_t distill__tk_utf8(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0];
    if (c < 0x80) { *cp = c; return 1; }
    if (c >= 0xC2 && c <= 0xDF && n >= 2 && (s[1] & 0xC0) == 0x80) {
        *cp = ((c & 0x1Fu) << 6) | (s[1] & 0x3Fu);
        return 2;
    }
    if (c >= 0xE0 && c <= 0xEF && n >= 3 && (s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80) {
        uint32_t v = ((c & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
        if (v >= 0x800 && (v < 0xD800 || v > 0xDFFF)) { *cp = v; return 3; }
    }
    if (c >= 0xF0 && c <= 0xF4 && n >= 4 && (s[1] & 0xC0) == 0x80 && (s[2] & 0xC0) == 0x80 &&
        (s[3] & 0xC0) == 0x80) {
        uint32_t v = ((c & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) |
                     (s[3] & 0x3Fu);
        if (v >= 0x10000 && v <= 0x10FFFF) { *cp = v; return 4; }
    }
    *cp = 0xFFFFFFFFu;
    return 1;
}

/* If s[0..n) is a proper prefix of some valid UTF-8 character, the length of that character;
   else 0. Used by the streaming decoder to hold back half characters. */
static size_t distill__tk_utf8_need(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t need, i;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) need = 2;
    else if (c >= 0xE0 && c <= 0xEF) { need = 3; if (c == 0xE0) lo = 0xA0; if (c == 0xED) hi = 0x9F; }
    else if (c >= 0xF0 && c <= 0xF4) { need = 4; if (c == 0xF0) lo = 0x90; if (c == 0xF4) hi = 0x8F; }
    else return 0;
    if (n >= need) return 0;
    for (i = 1; i < n; i++) {
        unsigned b = s[i];
        if (i == 1 ? (b < lo || b > hi) : (b & 0xC0) != 0x80) return 0;
    }
    return need;
}

/* The character at s[i] (i < n): its byte length, and its class in *cls. */
static size_t distill__tk_char(const unsigned char *s, size_t n, size_t i, int *cls) {
    uint32_t cp;
    size_t k;
    if (s[i] < 0x80) { *cls = distill__tk_ascii_class[s[i]]; return 1; }
    k = distill__tk_utf8(s + i, n - i, &cp);
    *cls = cp == 0xFFFFFFFFu ? DISTILL__C_OTHER : distill__tk_class_of(cp);
    return k;
}

/* End of the run of characters of class cls starting at i (at most max characters). */
static size_t distill__tk_run(const unsigned char *s, size_t n, size_t i, int cls, size_t max) {
    size_t count = 0;
    while (i < n && count < max) {
        int c;
        size_t k;
        if (s[i] < 0x80) {
            if (distill__tk_ascii_class[s[i]] != cls) break;
            i++;
        } else {
            k = distill__tk_char(s, n, i, &c);
            if (c != cls) break;
            i += k;
        }
        count++;
    }
    return i;
}

/* The white-space alternatives shared by both patterns, at i where a space character starts:
   \s+(?!\S) takes the run but leaves its last character to the next chunk when something
   follows (so " word" keeps its space), and \s+ takes a single space before a non-space. */
static size_t distill__tk_ws_chunk(const unsigned char *s, size_t n, size_t i) {
    size_t e = i, last = i;
    int c;
    while (e < n) {
        size_t k = distill__tk_char(s, n, e, &c);
        if (c != DISTILL__C_WS) break;
        last = e;
        e += k;
    }
    if (e == n || last == i) return e;
    return last;
}

/* GPT-2:  's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
   Returns the end of the chunk that starts at i. */
static size_t distill__tk_pretok_gpt2(const unsigned char *s, size_t n, size_t i) {
    int c;
    if (s[i] == '\'' && i + 1 < n) {
        unsigned c1 = s[i + 1], c2 = i + 2 < n ? s[i + 2] : 0;
        if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return i + 2;
        if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l'))
            return i + 3;
    }
    if (s[i] == ' ' && i + 1 < n) {              /* the optional leading space */
        distill__tk_char(s, n, i + 1, &c);
        if (c != DISTILL__C_WS) return distill__tk_run(s, n, i + 1, c, (size_t)-1);
        return distill__tk_ws_chunk(s, n, i);
    }
    distill__tk_char(s, n, i, &c);
    if (c == DISTILL__C_WS) return distill__tk_ws_chunk(s, n, i);
    return distill__tk_run(s, n, i, c, (size_t)-1);   /* letters, numbers or other */
}

/* The optional case-insensitive contraction of cl100k: '(?i:[sdmt]|ll|ve|re). Returns its end
   or 0. Case folding of s also admits U+017F LATIN SMALL LETTER LONG S. */
static size_t distill__tk_contraction_ci(const unsigned char *s, size_t n, size_t i) {
    unsigned c1, c2;
    if (i + 1 >= n) return 0;
    c1 = s[i + 1] | 0x20u;   /* ASCII lower case (only compared against letters) */
    c2 = i + 2 < n ? (s[i + 2] | 0x20u) : 0;
    if (c1 == 's' || c1 == 'd' || c1 == 'm' || c1 == 't') return i + 2;
    if (s[i + 1] == 0xC5 && i + 2 < n && s[i + 2] == 0xBF) return i + 3;   /* 'ſ */
    if ((c1 == 'l' && c2 == 'l') || (c1 == 'v' && c2 == 'e') || (c1 == 'r' && c2 == 'e'))
        return i + 3;
    return 0;
}

/* cl100k:  '(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*
            |\s*[\r\n]|\s+(?!\S)|\s+            (QWEN2: \p{N} one digit at a time) */
static size_t distill__tk_pretok_cl100k(const unsigned char *s, size_t n, size_t i, size_t max_digits) {
    int c, c2 = -1;
    size_t k, e;
    unsigned b = s[i];
    if (b == '\'' && (e = distill__tk_contraction_ci(s, n, i)) != 0) return e;
    k = distill__tk_char(s, n, i, &c);
    if (c == DISTILL__C_L) return distill__tk_run(s, n, i, DISTILL__C_L, (size_t)-1);
    if (i + k < n) distill__tk_char(s, n, i + k, &c2);
    /* one non-letter, non-number, non-newline character glued to the letters that follow */
    if (c != DISTILL__C_N && b != '\r' && b != '\n' && c2 == DISTILL__C_L)
        return distill__tk_run(s, n, i + k, DISTILL__C_L, (size_t)-1);
    if (c == DISTILL__C_N) return distill__tk_run(s, n, i, DISTILL__C_N, max_digits);
    if (c == DISTILL__C_OTHER || (b == ' ' && c2 == DISTILL__C_OTHER)) {
        e = distill__tk_run(s, n, c == DISTILL__C_OTHER ? i : i + 1, DISTILL__C_OTHER, (size_t)-1);
        while (e < n && (s[e] == '\r' || s[e] == '\n')) e++;
        return e;
    }
    /* white space: up to the last newline of the run if it has one */
    {
        size_t p = i, nl = 0;
        int have_nl = 0;
        while (p < n) {
            int cc;
            size_t kk = distill__tk_char(s, n, p, &cc);
            if (cc != DISTILL__C_WS) break;
            if (s[p] == '\r' || s[p] == '\n') { nl = p + 1; have_nl = 1; }
            p += kk;
        }
        if (have_nl) return nl;
    }
    return distill__tk_ws_chunk(s, n, i);
}

/* End of the chunk starting at i < n. */
static size_t distill__tk_pretok(int pattern, const unsigned char *s, size_t n, size_t i) {
    switch (pattern) {
    case DISTILL_PATTERN_GPT2: return distill__tk_pretok_gpt2(s, n, i);
    case DISTILL_PATTERN_CL100K: return distill__tk_pretok_cl100k(s, n, i, 3);
    case DISTILL_PATTERN_QWEN2: return distill__tk_pretok_cl100k(s, n, i, 1);
    default: return n;
    }
}

DISTILL_API const char *distill_pattern_name(int pattern) {
    switch (pattern) {
    case DISTILL_PATTERN_NONE: return "none";
    case DISTILL_PATTERN_GPT2: return "gpt2";
    case DISTILL_PATTERN_CL100K: return "cl100k";
    case DISTILL_PATTERN_QWEN2: return "qwen2";
    default: return NULL;
    }
}

DISTILL_API int distill_pattern_from_name(const char *name) {
    int p;
    for (p = 0; p <= DISTILL_PATTERN_QWEN2; p++)
        if (!strcmp(name, distill_pattern_name(p))) return p;
    return -1;
}

static const char *const distill__tk_default_specials[5] = {
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"};

DISTILL_API const char *const *distill_tokenizer_default_specials(int *n) {
    if (n) *n = 5;
    return distill__tk_default_specials;
}

/* ---- The tokenizer object --------------------------------------------------------------- */
enum { DISTILL__TK_NONE = 0, DISTILL__TK_BYTE = 1, DISTILL__TK_MERGE = 2, DISTILL__TK_SPECIAL = 3,
       DISTILL__TK_PLAIN = 4, DISTILL__TK_ADDED = 5 /* an added token that is not special */ };
enum { DISTILL__KIND_BPE = 0, DISTILL__KIND_LLAMA = 1 };

/* The chunk cache: real text repeats its words, so the ids of short chunks are remembered in a
   direct-mapped table. Slots are guarded by striped mutexes so that several threads can encode
   with one tokenizer: a slot is copied out under its lock, a miss computes outside any lock, and
   nobody ever waits (a busy stripe is just a miss), so contention costs no sleeping. */
#define DISTILL__CACHE_SLOTS 16384
#define DISTILL__CACHE_KEY 22
#define DISTILL__CACHE_IDS 10
#define DISTILL__CACHE_LOCKS 256
typedef struct distill__tk_cslot {
    uint32_t hash;
    unsigned char klen, nids;
    unsigned char key[DISTILL__CACHE_KEY];
    int32_t ids[DISTILL__CACHE_IDS];
} distill__tk_cslot;
typedef struct distill__tk_tcache {
    distill__tk_cslot *slots;
#ifdef DISTILL__TOK_LOCKS
    pthread_mutex_t locks[DISTILL__CACHE_LOCKS];
#endif
} distill__tk_tcache;

struct distill_tokenizer {
    int kind, pattern;
    int32_t n_vocab, cap;              /* ids are 0..n_vocab-1                                  */
    uint32_t *tok_off, *tok_len;       /* each token's bytes in pool                            */
    unsigned char *tok_flag;           /* DISTILL__TK_*                                         */
    char *pool;
    size_t pool_n, pool_cap;
    int32_t byte_id[256];              /* the token of each single byte, -1 if none             */
    int32_t n_merges, merges_cap;      /* merge r: (m_left[r], m_right[r]) -> m_id[r]            */
    int32_t *m_left, *m_right, *m_id;
    uint64_t *ph_key;                  /* hash (left, right) -> rank; ph_rank -1 = empty slot   */
    int32_t *ph_rank;
    size_t ph_cap, ph_n;
    int32_t *bh_id;                    /* hash token bytes -> id; -1 = empty slot               */
    size_t bh_cap;
    int32_t n_special, special_cap;   /* special_ids: special and (n_added of them) non-special added tokens */
    int32_t n_added;
    int32_t *special_ids;              /* sorted longest first, for longest-match             */
    unsigned char special_first[256];  /* which bytes can start a special token               */
    float *scores;                     /* llama2.c: piece scores                                */
    int16_t *byteval;                  /* llama2.c: the byte of a <0xXX> piece, else -1         */
    int32_t bos_id, eos_id, space_id;
    uint32_t max_piece;                /* longest token in bytes                                */
    int whole_first;                   /* HF ignore_merges: a chunk that is a token stays whole */
    int nfc;                           /* HF NFC normalizer: encode refuses text not proven NFC */
    distill__tk_tcache *cache;
};

static uint64_t distill__tk_hash_bytes(const unsigned char *p, size_t n) {
    uint64_t h = 1469598103934665603ull;   /* FNV-1a */
    size_t i;
    for (i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static size_t distill__tk_hash_pair(uint64_t key, size_t mask) {
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 17) & mask;
}

static distill_tokenizer *distill__tk_new(int kind, int pattern) {
    distill_tokenizer *t = (distill_tokenizer *)DISTILL_MALLOC(sizeof *t);
    int i;
    if (!t) return NULL;
    memset(t, 0, sizeof *t);
    t->kind = kind;
    t->pattern = pattern;
    for (i = 0; i < 256; i++) t->byte_id[i] = -1;
    t->bos_id = t->eos_id = t->space_id = -1;
    return t;
}

static void distill__tk_cache_free(distill__tk_tcache *c) {
#ifdef DISTILL__TOK_LOCKS
    int i;
#endif
    if (!c) return;
#ifdef DISTILL__TOK_LOCKS
    for (i = 0; i < DISTILL__CACHE_LOCKS; i++) pthread_mutex_destroy(&c->locks[i]);
#endif
    DISTILL_FREE(c->slots);
    DISTILL_FREE(c);
}

DISTILL_API void distill_tokenizer_free(distill_tokenizer *t) {
    if (!t) return;
    DISTILL_FREE(t->tok_off); DISTILL_FREE(t->tok_len); DISTILL_FREE(t->tok_flag);
    DISTILL_FREE(t->pool);
    DISTILL_FREE(t->m_left); DISTILL_FREE(t->m_right); DISTILL_FREE(t->m_id);
    DISTILL_FREE(t->ph_key); DISTILL_FREE(t->ph_rank); DISTILL_FREE(t->bh_id);
    DISTILL_FREE(t->special_ids); DISTILL_FREE(t->scores); DISTILL_FREE(t->byteval);
    distill__tk_cache_free(t->cache);
    DISTILL_FREE(t);
}

/* Grow an array of n_old items of `size` bytes to n_new items (zeroing the new part). */
static int distill__tk_grow(void **p, size_t n_old, size_t n_new, size_t size) {
    size_t bytes;
    void *q;
    if (!distill__mul_size(n_new, size, &bytes)) return -1;
    q = DISTILL_REALLOC(*p, bytes ? bytes : 1);
    if (!q) return -1;
    if (n_new > n_old) memset((char *)q + n_old * size, 0, (n_new - n_old) * size);
    *p = q;
    return 0;
}

/* Define token `id` as the given bytes (ids may come in any order; gaps stay undefined). */
static int distill__tk_set(distill_tokenizer *t, int32_t id, const void *bytes, size_t len,
                            int flag) {
    if (id < 0 || id >= (1 << 24)) return -1;     /* 16M tokens is far beyond any real vocab */
    if (len > 0xFFFFFFu) return -1;
    if (id >= t->cap) {
        int32_t cap = t->cap ? t->cap : 512;
        while (cap <= id) cap *= 2;
        if (distill__tk_grow((void **)&t->tok_off, (size_t)t->cap, (size_t)cap, sizeof(uint32_t)) ||
            distill__tk_grow((void **)&t->tok_len, (size_t)t->cap, (size_t)cap, sizeof(uint32_t)) ||
            distill__tk_grow((void **)&t->tok_flag, (size_t)t->cap, (size_t)cap, 1))
            return -1;
        t->cap = cap;
    }
    if (t->pool_n + len > t->pool_cap || !t->pool) {   /* never NULL, even for empty tokens */
        size_t cap = t->pool_cap ? t->pool_cap : 4096;
        while (cap < t->pool_n + len) cap *= 2;
        if (cap > 0xFFFFFFFFu) return -1;
        if (distill__tk_grow((void **)&t->pool, t->pool_cap, cap, 1)) return -1;
        t->pool_cap = cap;
    }
    if (len) memcpy(t->pool + t->pool_n, bytes, len);
    t->tok_off[id] = (uint32_t)t->pool_n;
    t->tok_len[id] = (uint32_t)len;
    t->tok_flag[id] = (unsigned char)flag;
    t->pool_n += len;
    if (id >= t->n_vocab) t->n_vocab = id + 1;
    if (len > t->max_piece) t->max_piece = (uint32_t)len;
    if (flag == DISTILL__TK_BYTE && len == 1 && t->byte_id[(unsigned char)*(const char *)bytes] < 0)
        t->byte_id[(unsigned char)*(const char *)bytes] = id;
    return 0;
}

static int32_t distill__tk_pair_rank(const distill_tokenizer *t, int32_t l, int32_t r) {
    uint64_t key = ((uint64_t)(uint32_t)l << 32) | (uint32_t)r;
    size_t mask = t->ph_cap - 1, h;
    if (!t->ph_cap) return -1;
    for (h = distill__tk_hash_pair(key, mask);; h = (h + 1) & mask) {
        int32_t rk = t->ph_rank[h];
        if (rk < 0) return -1;
        if (t->ph_key[h] == key) return rk;
    }
}

static int distill__tk_ph_insert(uint64_t *keys, int32_t *ranks, size_t cap, uint64_t key, int32_t rk) {
    size_t mask = cap - 1, h;
    for (h = distill__tk_hash_pair(key, mask);; h = (h + 1) & mask) {
        if (ranks[h] < 0) { keys[h] = key; ranks[h] = rk; return 0; }
        if (keys[h] == key) return -2;
    }
}

/* Append merge (l, r) -> id. Returns 0, -1 out of memory, -2 if the pair is already a merge. */
static int distill__tk_add_merge(distill_tokenizer *t, int32_t l, int32_t r, int32_t id) {
    int rc;
    if (t->n_merges == t->merges_cap) {
        int32_t cap = t->merges_cap ? t->merges_cap * 2 : 1024;
        if (distill__tk_grow((void **)&t->m_left, (size_t)t->merges_cap, (size_t)cap, 4) ||
            distill__tk_grow((void **)&t->m_right, (size_t)t->merges_cap, (size_t)cap, 4) ||
            distill__tk_grow((void **)&t->m_id, (size_t)t->merges_cap, (size_t)cap, 4))
            return -1;
        t->merges_cap = cap;
    }
    if ((t->ph_n + 1) * 2 > t->ph_cap) {   /* keep the pair table at most half full */
        size_t cap = t->ph_cap ? t->ph_cap * 2 : 2048, i;
        uint64_t *keys = (uint64_t *)DISTILL_MALLOC(cap * sizeof(uint64_t));
        int32_t *ranks = (int32_t *)DISTILL_MALLOC(cap * sizeof(int32_t));
        if (!keys || !ranks) { DISTILL_FREE(keys); DISTILL_FREE(ranks); return -1; }
        for (i = 0; i < cap; i++) ranks[i] = -1;
        for (i = 0; i < t->ph_cap; i++)
            if (t->ph_rank[i] >= 0) distill__tk_ph_insert(keys, ranks, cap, t->ph_key[i], t->ph_rank[i]);
        DISTILL_FREE(t->ph_key); DISTILL_FREE(t->ph_rank);
        t->ph_key = keys; t->ph_rank = ranks; t->ph_cap = cap;
    }
    rc = distill__tk_ph_insert(t->ph_key, t->ph_rank, t->ph_cap,
                            ((uint64_t)(uint32_t)l << 32) | (uint32_t)r, t->n_merges);
    if (rc) return rc;
    t->ph_n++;
    t->m_left[t->n_merges] = l;
    t->m_right[t->n_merges] = r;
    t->m_id[t->n_merges] = id;
    t->n_merges++;
    return 0;
}

/* Id of the token with exactly these bytes (llama2.c: this raw piece), or -1. */
static int32_t distill__tk_bytes_id(const distill_tokenizer *t, const void *p, size_t n) {
    size_t mask = t->bh_cap - 1, h;
    if (!t->bh_cap) return -1;
    for (h = (size_t)distill__tk_hash_bytes((const unsigned char *)p, n) & mask;; h = (h + 1) & mask) {
        int32_t id = t->bh_id[h];
        if (id < 0) return -1;
        if (t->tok_len[id] == n && !memcmp(t->pool + t->tok_off[id], p, n)) return id;
    }
}

/* After all tokens, merges and specials are in: build the lookup tables and the cache. The
   lowest id wins among tokens with equal bytes; special tokens are looked up separately. */
static int distill__tk_finalize(distill_tokenizer *t) {
    size_t cap = 1024, i;
    int32_t id, a, b;
    while (cap < (size_t)t->n_vocab * 2) cap *= 2;
    DISTILL_FREE(t->bh_id);
    t->bh_id = (int32_t *)DISTILL_MALLOC(cap * sizeof(int32_t));
    if (!t->bh_id) return -1;
    t->bh_cap = cap;
    for (i = 0; i < cap; i++) t->bh_id[i] = -1;
    for (id = 0; id < t->n_vocab; id++) {
        size_t h;
        if (t->tok_flag[id] == DISTILL__TK_NONE || t->tok_flag[id] == DISTILL__TK_SPECIAL || t->tok_flag[id] == DISTILL__TK_ADDED)
            continue;
        if (distill__tk_bytes_id(t, t->pool + t->tok_off[id], t->tok_len[id]) >= 0) continue;
        for (h = (size_t)distill__tk_hash_bytes((const unsigned char *)t->pool + t->tok_off[id],
                                             t->tok_len[id]) & (cap - 1);
             t->bh_id[h] >= 0; h = (h + 1) & (cap - 1)) {}
        t->bh_id[h] = id;
    }
    /* specials: longest first, so "<|im_start|>" wins over a hypothetical "<|im" */
    for (a = 1; a < t->n_special; a++) {
        int32_t x = t->special_ids[a];
        for (b = a; b > 0 && t->tok_len[t->special_ids[b - 1]] < t->tok_len[x]; b--)
            t->special_ids[b] = t->special_ids[b - 1];
        t->special_ids[b] = x;
    }
    memset(t->special_first, 0, sizeof t->special_first);
    for (a = 0; a < t->n_special; a++)
        if (t->tok_len[t->special_ids[a]])
            t->special_first[(unsigned char)t->pool[t->tok_off[t->special_ids[a]]]] = 1;
    if (t->kind == DISTILL__KIND_BPE) {
        t->eos_id = -1;
        for (a = 0; a < t->n_special; a++)
            if (t->tok_len[t->special_ids[a]] == 13 &&
                !memcmp(t->pool + t->tok_off[t->special_ids[a]], "<|endoftext|>", 13))
                t->eos_id = t->special_ids[a];
    }
    if (!t->cache) {
        distill__tk_tcache *c = (distill__tk_tcache *)DISTILL_MALLOC(sizeof *c);
        int k;
        if (!c) return -1;
        c->slots = (distill__tk_cslot *)DISTILL_MALLOC(DISTILL__CACHE_SLOTS * sizeof(distill__tk_cslot));
        if (!c->slots) { DISTILL_FREE(c); return -1; }
        memset(c->slots, 0, DISTILL__CACHE_SLOTS * sizeof(distill__tk_cslot));
#ifdef DISTILL__TOK_LOCKS
        for (k = 0; k < DISTILL__CACHE_LOCKS; k++) pthread_mutex_init(&c->locks[k], NULL);
#endif
        (void)k;
        t->cache = c;
    } else {
        memset(t->cache->slots, 0, DISTILL__CACHE_SLOTS * sizeof(distill__tk_cslot));
    }
    return 0;
}

/* flag: DISTILL__TK_SPECIAL, or DISTILL__TK_ADDED for an added token that is not special */
static int distill__tk_add_added_raw(distill_tokenizer *t, int32_t id, const char *s, size_t n, int flag) {
    if (distill__tk_set(t, id, s, n, (unsigned char)flag)) return -1;
    if (t->n_special == t->special_cap) {
        int32_t cap = t->special_cap ? t->special_cap * 2 : 16;
        if (distill__tk_grow((void **)&t->special_ids, (size_t)t->special_cap, (size_t)cap, 4)) return -1;
        t->special_cap = cap;
    }
    t->special_ids[t->n_special++] = id;
    if (flag == DISTILL__TK_ADDED) t->n_added++;
    return 0;
}
static int distill__tk_add_special_raw(distill_tokenizer *t, int32_t id, const char *s, size_t n) {
    return distill__tk_add_added_raw(t, id, s, n, DISTILL__TK_SPECIAL);
}

static int32_t distill__tk_special_id(const distill_tokenizer *t, const char *s, size_t n) {
    int32_t a;
    for (a = 0; a < t->n_special; a++) {
        int32_t id = t->special_ids[a];
        if (t->tok_len[id] == n && !memcmp(t->pool + t->tok_off[id], s, n)) return id;
    }
    return -1;
}

DISTILL_API int32_t distill_tokenizer_add_special(distill_tokenizer *t, const char *text,
                                                  distill_error *err) {
    size_t n = strlen(text);
    int32_t id = distill__tk_special_id(t, text, n);
    if (id >= 0) return id;
    if (n == 0) return distill__err(err, "tokenizer: a special token cannot be empty");
    id = t->n_vocab;
    if (distill__tk_add_special_raw(t, id, text, n) || distill__tk_finalize(t))
        return distill__err(err, "tokenizer: out of memory adding special token '%s'", text);
    return id;
}

DISTILL_API int distill_tokenizer_vocab_size(const distill_tokenizer *t) { return t->n_vocab; }
DISTILL_API int distill_tokenizer_pattern(const distill_tokenizer *t) { return t->pattern; }
DISTILL_API int distill_tokenizer_n_merges(const distill_tokenizer *t) { return t->n_merges; }
DISTILL_API int32_t distill_tokenizer_bos_id(const distill_tokenizer *t) { return t->bos_id; }
DISTILL_API int32_t distill_tokenizer_eos_id(const distill_tokenizer *t) { return t->eos_id; }
DISTILL_API int distill_tokenizer_is_llama(const distill_tokenizer *t) {
    return t->kind == DISTILL__KIND_LLAMA;
}
DISTILL_API int distill_tokenizer_is_special(const distill_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_vocab && t->tok_flag[id] == DISTILL__TK_SPECIAL;
}
DISTILL_API int distill_tokenizer_merge(const distill_tokenizer *t, int r, int32_t *left,
                                        int32_t *right, int32_t *result) {
    if (r < 0 || r >= t->n_merges) return -1;
    if (left) *left = t->m_left[r];
    if (right) *right = t->m_right[r];
    if (result) *result = t->m_id[r];
    return 0;
}

DISTILL_API int32_t distill_tokenizer_token_id(const distill_tokenizer *t, const char *text) {
    size_t n = strlen(text);
    int32_t id = distill__tk_special_id(t, text, n);
    return id >= 0 ? id : distill__tk_bytes_id(t, text, n);
}

static const unsigned char distill__tk_byte_values[256] = {
    0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,
    32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,
    62,63,64,65,66,67,68,69,70,71,72,73,74,75,76,77,78,79,80,81,82,83,84,85,86,87,88,89,90,91,
    92,93,94,95,96,97,98,99,100,101,102,103,104,105,106,107,108,109,110,111,112,113,114,115,
    116,117,118,119,120,121,122,123,124,125,126,127,128,129,130,131,132,133,134,135,136,137,
    138,139,140,141,142,143,144,145,146,147,148,149,150,151,152,153,154,155,156,157,158,159,
    160,161,162,163,164,165,166,167,168,169,170,171,172,173,174,175,176,177,178,179,180,181,
    182,183,184,185,186,187,188,189,190,191,192,193,194,195,196,197,198,199,200,201,202,203,
    204,205,206,207,208,209,210,211,212,213,214,215,216,217,218,219,220,221,222,223,224,225,
    226,227,228,229,230,231,232,233,234,235,236,237,238,239,240,241,242,243,244,245,246,247,
    248,249,250,251,252,253,254,255};

DISTILL_API const char *distill_tokenizer_token_bytes(const distill_tokenizer *t, int32_t id,
                                                      size_t *len) {
    if (id < 0 || id >= t->n_vocab || t->tok_flag[id] == DISTILL__TK_NONE) {
        if (len) *len = 0;
        return NULL;
    }
    if (t->byteval && t->byteval[id] >= 0) {     /* llama2.c <0xXX> piece: the raw byte */
        if (len) *len = 1;
        return (const char *)distill__tk_byte_values + t->byteval[id];
    }
    if (len) *len = t->tok_len[id];
    return t->pool + t->tok_off[id];
}

/* ---- Encoding ------------------------------------------------------------------------- */
/* Per-call scratch memory (so that encoding needs no locks except the cache's). */
typedef struct distill__tk_hent {
    uint64_t ord;                      /* priority << 32 | position: lowest pops first        */
    int32_t l, r, res;                 /* the pair it was made for, and the merged token      */
} distill__tk_hent;
typedef struct distill__tk_scratch {
    int32_t *ids, *prv, *nxt;
    uint64_t *key;
    distill__tk_hent *heap;
    size_t cap, hcap;
    char *cat;                         /* llama2.c: concatenation of two pieces               */
    size_t catcap;
} distill__tk_scratch;

static void distill__tk_scratch_free(distill__tk_scratch *s) {
    DISTILL_FREE(s->ids); DISTILL_FREE(s->prv); DISTILL_FREE(s->nxt); DISTILL_FREE(s->key);
    DISTILL_FREE(s->heap); DISTILL_FREE(s->cat);
    memset(s, 0, sizeof *s);
}

static int distill__tk_scratch_need(distill__tk_scratch *s, size_t n) {
    size_t cap = s->cap ? s->cap : 64;
    if (n <= s->cap) return 0;
    while (cap < n) cap *= 2;
    if (distill__tk_grow((void **)&s->ids, s->cap, cap, 4) || distill__tk_grow((void **)&s->prv, s->cap, cap, 4) ||
        distill__tk_grow((void **)&s->nxt, s->cap, cap, 4) || distill__tk_grow((void **)&s->key, s->cap, cap, 8))
        return -1;
    s->cap = cap;
    return 0;
}

#define DISTILL__NO_PAIR UINT64_MAX

/* Priority of merging tokens l and r (lower merges first), and the token it makes.
   BPE: the merge's rank. llama2.c: the score of the piece l+r, highest first (mapped to an
   unsigned key in reverse order). DISTILL__NO_PAIR when the pair does not merge. */
static uint64_t distill__tk_pair_key(const distill_tokenizer *t, distill__tk_scratch *s, int32_t l,
                                  int32_t r, int32_t *res) {
    if (t->kind == DISTILL__KIND_BPE) {
        int32_t rk = distill__tk_pair_rank(t, l, r);
        if (rk < 0) return DISTILL__NO_PAIR;
        *res = t->m_id[rk];
        return (uint64_t)rk;
    } else {
        size_t a = t->tok_len[l], b = t->tok_len[r];
        int32_t id;
        float sc;
        uint32_t u;
        if (a + b > s->catcap) {
            size_t cap = (a + b) * 2;
            if (distill__tk_grow((void **)&s->cat, s->catcap, cap, 1)) return DISTILL__NO_PAIR;
            s->catcap = cap;
        }
        memcpy(s->cat, t->pool + t->tok_off[l], a);
        memcpy(s->cat + a, t->pool + t->tok_off[r], b);
        id = distill__tk_bytes_id(t, s->cat, a + b);
        if (id < 0) return DISTILL__NO_PAIR;
        sc = t->scores[id];
        if (!(sc > -1e10f)) return DISTILL__NO_PAIR;   /* run.c's starting best score */
        memcpy(&u, &sc, 4);
        u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);   /* order-preserving float -> uint */
        *res = id;
        return (uint64_t)(uint32_t)~u;
    }
}

static void distill__tk_heap_push(distill__tk_hent *h, size_t *n, distill__tk_hent e) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p].ord <= e.ord) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

static distill__tk_hent distill__tk_heap_pop(distill__tk_hent *h, size_t *n) {
    distill__tk_hent top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && h[c + 1].ord < h[c].ord) c++;
        if (last.ord <= h[c].ord) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = last;
    return top;
}

/* Apply the merges to s->ids[0..n): the lowest-priority adjacent pair merges first, the leftmost
   one on ties, until no pair merges. Appends the result to out.
   Short sequences (nearly every chunk of real text) use a plain scan over an array of pair
   priorities: O(n) per merge but tiny n. Longer ones use a doubly linked list of tokens and a
   min-heap of candidate pairs with lazy deletion: a popped entry is used only if both of its
   tokens are still alive and unchanged, so the whole thing is O(n log n). */
static int distill__tk_bpe_merge(const distill_tokenizer *t, distill__tk_scratch *s, size_t n,
                              distill_ids *out) {
    int32_t *ids = s->ids;
    size_t i;
    if (n <= 24) {
        uint64_t *key = s->key;
        int32_t res[24];
        size_t m = n;
        for (i = 0; i + 1 < m; i++) key[i] = distill__tk_pair_key(t, s, ids[i], ids[i + 1], &res[i]);
        while (m > 1) {
            size_t best = 0;
            for (i = 1; i + 1 < m; i++)
                if (key[i] < key[best]) best = i;
            if (key[best] == DISTILL__NO_PAIR) break;
            ids[best] = res[best];
            for (i = best + 1; i + 1 < m; i++) ids[i] = ids[i + 1];
            for (i = best + 1; i + 2 < m; i++) { key[i] = key[i + 1]; res[i] = res[i + 1]; }
            m--;
            if (best > 0) key[best - 1] = distill__tk_pair_key(t, s, ids[best - 1], ids[best], &res[best - 1]);
            if (best + 1 < m) key[best] = distill__tk_pair_key(t, s, ids[best], ids[best + 1], &res[best]);
        }
        for (i = 0; i < m; i++)
            if (distill_ids_push(out, ids[i])) return -1;
        return 0;
    } else {
        int32_t *prv = s->prv, *nxt = s->nxt;
        size_t hn = 0;
        int32_t p;
        if (n > s->hcap) {
            if (distill__tk_grow((void **)&s->heap, s->hcap, n * 2, sizeof(distill__tk_hent))) return -1;
            s->hcap = n * 2;
        }
        for (i = 0; i < n; i++) { prv[i] = (int32_t)i - 1; nxt[i] = i + 1 < n ? (int32_t)(i + 1) : -1; }
        for (i = 0; i + 1 < n; i++) {
            distill__tk_hent e;
            uint64_t k = distill__tk_pair_key(t, s, ids[i], ids[i + 1], &e.res);
            if (k == DISTILL__NO_PAIR) continue;
            e.ord = (k << 32) | i; e.l = ids[i]; e.r = ids[i + 1];
            distill__tk_heap_push(s->heap, &hn, e);
        }
        while (hn) {
            distill__tk_hent e = distill__tk_heap_pop(s->heap, &hn);
            int32_t a = (int32_t)(e.ord & 0xFFFFFFFFu), b = nxt[a], side;
            if (ids[a] != e.l || b < 0 || ids[b] != e.r) continue;   /* stale entry */
            ids[a] = e.res;                                          /* merge b into a */
            ids[b] = -1;
            nxt[a] = nxt[b];
            if (nxt[b] >= 0) prv[nxt[b]] = a;
            /* the two new neighbour pairs; each merge adds at most two entries (<= 2n total) */
            for (side = 0; side < 2; side++) {
                int32_t x = side == 0 ? prv[a] : a, y = side == 0 ? a : nxt[a];
                distill__tk_hent f;
                uint64_t k;
                if (x < 0 || y < 0) continue;
                k = distill__tk_pair_key(t, s, ids[x], ids[y], &f.res);
                if (k == DISTILL__NO_PAIR) continue;
                f.ord = (k << 32) | (uint32_t)x; f.l = ids[x]; f.r = ids[y];
                if (hn == s->hcap) {
                    if (distill__tk_grow((void **)&s->heap, s->hcap, s->hcap * 2, sizeof(distill__tk_hent)))
                        return -1;
                    s->hcap *= 2;
                }
                distill__tk_heap_push(s->heap, &hn, f);
            }
        }
        for (p = 0; p >= 0; p = nxt[p])
            if (distill_ids_push(out, ids[p])) return -1;
        return 0;
    }
}

static int distill__tk_trylock(distill__tk_tcache *c, uint32_t h) {
#ifdef DISTILL__TOK_LOCKS
    return pthread_mutex_trylock(&c->locks[h % DISTILL__CACHE_LOCKS]) == 0;
#else
    (void)c; (void)h;
    return 1;
#endif
}
static void distill__tk_unlock(distill__tk_tcache *c, uint32_t h) {
#ifdef DISTILL__TOK_LOCKS
    pthread_mutex_unlock(&c->locks[h % DISTILL__CACHE_LOCKS]);
#else
    (void)c; (void)h;
#endif
}

/* One pre-tokenized chunk: through the cache, else bytes -> byte tokens -> merges. */
static int distill__tk_encode_chunk(const distill_tokenizer *t, distill__tk_scratch *s,
                                 const unsigned char *p, size_t n, distill_ids *out,
                                 distill_error *err) {
    size_t i, before = out->n;
    uint32_t h = 0;
    distill__tk_cslot *slot = NULL;
    if (n == 1 && t->byte_id[p[0]] >= 0) return distill_ids_push(out, t->byte_id[p[0]]);
    if (t->whole_first) {
        int32_t id = distill__tk_bytes_id(t, p, n);
        if (id >= 0) return distill_ids_push(out, id);
    }
    if (n <= DISTILL__CACHE_KEY && t->cache) {
        h = (uint32_t)distill__tk_hash_bytes(p, n);
        slot = &t->cache->slots[h & (DISTILL__CACHE_SLOTS - 1)];
        if (!distill__tk_trylock(t->cache, h)) slot = NULL;   /* busy: a miss, never a wait */
        else if (slot->klen == n && slot->hash == h && !memcmp(slot->key, p, n)) {
            int32_t tmp[DISTILL__CACHE_IDS];
            size_t k = slot->nids;
            memcpy(tmp, slot->ids, k * sizeof(int32_t));
            distill__tk_unlock(t->cache, h);
            for (i = 0; i < k; i++)
                if (distill_ids_push(out, tmp[i])) return distill__err(err, "tokenizer: out of memory");
            return 0;
        } else distill__tk_unlock(t->cache, h);
    }
    if (distill__tk_scratch_need(s, n)) return distill__err(err, "tokenizer: out of memory");
    for (i = 0; i < n; i++) {
        int32_t id = t->byte_id[p[i]];
        if (id < 0)
            return distill__err(err, "tokenizer: byte 0x%02X has no token in this vocabulary", p[i]);
        s->ids[i] = id;
    }
    if (distill__tk_bpe_merge(t, s, n, out)) return distill__err(err, "tokenizer: out of memory");
    if (slot && out->n - before <= DISTILL__CACHE_IDS && distill__tk_trylock(t->cache, h)) {
        slot->hash = h;
        slot->klen = (unsigned char)n;
        slot->nids = (unsigned char)(out->n - before);
        memcpy(slot->key, p, n);
        memcpy(slot->ids, out->ids + before, (out->n - before) * sizeof(int32_t));
        distill__tk_unlock(t->cache, h);
    }
    return 0;
}

/* llama2.c's encode (run.c), minus BOS/EOS: a " " dummy prefix when the text is not empty,
   then one token per UTF-8 character (a lead byte and up to 3 continuation bytes, as run.c
   groups them) or its bytes as <0xXX> tokens, then score-based merges over the whole text. */
static int distill__tk_encode_llama(const distill_tokenizer *t, distill__tk_scratch *s,
                                 const unsigned char *p, size_t n, int first, distill_ids *out,
                                 distill_error *err) {
    size_t i = 0, m = 0;
    if (distill__tk_scratch_need(s, n + 2)) return distill__err(err, "tokenizer: out of memory");
    if (n == 0) return 0;
    if (first) {
        if (t->space_id < 0) return distill__err(err, "tokenizer: vocabulary has no \" \" piece");
        s->ids[m++] = t->space_id;
    }
    while (i < n) {
        size_t k = 1;
        int32_t id;
        while (i + k < n && (p[i + k] & 0xC0) == 0x80 && k < 4) k++;
        id = distill__tk_bytes_id(t, p + i, k);
        if (id >= 0) s->ids[m++] = id;
        else {
            size_t j;
            for (j = 0; j < k; j++) {
                id = t->byte_id[p[i + j]];
                if (id < 0) id = 0;   /* no byte fallback piece: <unk> */
                s->ids[m++] = id;
            }
        }
        i += k;
    }
    if (distill__tk_bpe_merge(t, s, m, out)) return distill__err(err, "tokenizer: out of memory");
    return 0;
}

/* Where the next added token starts in p[from..n) (special ones only when allow_special):
   sets *start and returns its id, or returns -1. The longest token wins where several match. */
static int32_t distill__tk_find_special(const distill_tokenizer *t, const unsigned char *p, size_t n,
                                     size_t from, size_t *start, int allow_special) {
    size_t i;
    int32_t a;
    for (i = from; i < n; i++) {
        if (!t->special_first[p[i]]) continue;
        for (a = 0; a < t->n_special; a++) {
            int32_t id = t->special_ids[a];
            size_t len = t->tok_len[id];
            if (!allow_special && t->tok_flag[id] == DISTILL__TK_SPECIAL) continue;
            if (len && len <= n - i && !memcmp(p + i, t->pool + t->tok_off[id], len)) {
                *start = i;
                return id;
            }
        }
    }
    return -1;
}

static int distill__tk_encode_text(const distill_tokenizer *t, distill__tk_scratch *s,
                                const unsigned char *p, size_t n, int first, distill_ids *out,
                                distill_error *err) {
    size_t i = 0;
    if (t->kind == DISTILL__KIND_LLAMA) return distill__tk_encode_llama(t, s, p, n, first, out, err);
    while (i < n) {
        size_t e = distill__tk_pretok(t->pattern, p, n, i);
        if (distill__tk_encode_chunk(t, s, p + i, e - i, out, err)) return -1;
        i = e;
    }
    return 0;
}

/* Tokenizers with an NFC normalizer (Qwen2's tokenizer.json) expect normalized text. Instead of
   carrying composition tables, check that the text is already NFC: a text with no code point
   whose NFC_Quick_Check is No or Maybe is NFC. Such code points start at U+0300 (lead byte 0xCC),
   so ASCII and most text pass with one byte compare each. Returns the byte offset of the first
   suspicious code point, or (size_t)-1. */
static size_t distill__tk_not_nfc(const unsigned char *p, size_t n, uint32_t *cp_out) {
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t k, lo = 0, hi = sizeof distill__tk_uni_nfcqc / sizeof distill__tk_uni_nfcqc[0];
        if (p[i] < 0xCC) { i++; continue; }
        k = distill__tk_utf8(p + i, n - i, &cp);
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (cp < distill__tk_uni_nfcqc[mid][0]) hi = mid;
            else if (cp > distill__tk_uni_nfcqc[mid][1]) lo = mid + 1;
            else { *cp_out = cp; return i; }
        }
        i += k;
    }
    return (size_t)-1;
}

DISTILL_API int distill_tokenizer_encode_ex(const distill_tokenizer *t, const char *text,
                                            size_t len, int flags, distill_ids *out,
                                            distill_error *err) {
    const unsigned char *p = (const unsigned char *)text;
    distill__tk_scratch s;
    size_t pos = 0;
    int rc = 0;
    memset(&s, 0, sizeof s);
    if (!text && len) return distill__err(err, "tokenizer: encode: NULL text");
    if (len >= 0xFFFFFFFFu) return distill__err(err, "tokenizer: encode: text longer than 4 GB");
    if (t->nfc && len) {
        uint32_t cp = 0;
        size_t at = distill__tk_not_nfc(p, len, &cp);
        if (at != (size_t)-1)
            return distill__err(err, "tokenizer: encode: U+%04X at byte %zu may need NFC normalization, "
                                "which this tokenizer requires and distill.h does not implement: "
                                "normalize the text to NFC first", (unsigned)cp, at);
    }
    if ((flags & DISTILL_ENC_BOS) && t->bos_id >= 0 && distill_ids_push(out, t->bos_id))
        return distill__err(err, "tokenizer: out of memory");
    if (t->n_special && ((flags & DISTILL_ENC_ALLOW_SPECIAL) || t->n_added)) {
        while (pos < len && rc == 0) {
            size_t st = len;
            int32_t sid = distill__tk_find_special(t, p, len, pos, &st, (flags & DISTILL_ENC_ALLOW_SPECIAL) != 0);
            rc = distill__tk_encode_text(t, &s, p + pos, st - pos, pos == 0, out, err);
            if (sid < 0 || rc) break;
            if (distill_ids_push(out, sid)) rc = distill__err(err, "tokenizer: out of memory");
            pos = st + t->tok_len[sid];
        }
    } else {
        rc = distill__tk_encode_text(t, &s, p, len, 1, out, err);
    }
    distill__tk_scratch_free(&s);
    if (rc == 0 && (flags & DISTILL_ENC_EOS) && t->eos_id >= 0 && distill_ids_push(out, t->eos_id))
        rc = distill__err(err, "tokenizer: out of memory");
    return rc;
}

DISTILL_API int distill_tokenizer_encode(const distill_tokenizer *t, const char *text, size_t len,
                                         int allow_special, distill_ids *out, distill_error *err) {
    return distill_tokenizer_encode_ex(t, text, len, allow_special ? DISTILL_ENC_ALLOW_SPECIAL : 0,
                                       out, err);
}

typedef struct distill__tk_batch_ctx {
    const distill_tokenizer *tok;
    const char *const *texts;
    const size_t *lens;
    int flags;
    distill_ids *outs;
    int64_t *failed;                   /* per thread: 1 + index of a text that failed, or 0 */
} distill__tk_batch_ctx;

static void distill__tk_batch_task(void *ctx, int64_t b, int64_t e, int thread) {
    distill__tk_batch_ctx *c = (distill__tk_batch_ctx *)ctx;
    distill_error err;
    int64_t i;
    for (i = b; i < e; i++) {
        const char *s = c->texts[i];
        size_t n = c->lens ? c->lens[i] : strlen(s);
        if (distill_tokenizer_encode_ex(c->tok, s, n, c->flags, &c->outs[i], &err) && !c->failed[thread])
            c->failed[thread] = i + 1;
    }
}

DISTILL_API int distill_tokenizer_encode_batch(const distill_tokenizer *t,
                                               const char *const *texts, const size_t *lens,
                                               size_t n, int allow_special, distill_ids *outs,
                                               distill_error *err) {
    distill__tk_batch_ctx c;
    int nt = distill_get_threads(), k;
    if (nt < 1) nt = 1;
    c.tok = t; c.texts = texts; c.lens = lens; c.outs = outs;
    c.flags = allow_special ? DISTILL_ENC_ALLOW_SPECIAL : 0;
    c.failed = (int64_t *)DISTILL_MALLOC((size_t)nt * sizeof(int64_t));
    if (!c.failed) return distill__err(err, "tokenizer: out of memory");
    for (k = 0; k < nt; k++) c.failed[k] = 0;
    distill_parallel_for((int64_t)n, 1, distill__tk_batch_task, &c);
    for (k = 0; k < nt; k++)
        if (c.failed[k]) {
            /* encode once more on this thread, for the message */
            int64_t i = c.failed[k] - 1;
            distill_ids tmp = {NULL, 0, 0};
            distill_tokenizer_encode_ex(t, texts[i], lens ? lens[i] : strlen(texts[i]), c.flags, &tmp, err);
            distill_ids_free(&tmp);
            DISTILL_FREE(c.failed);
            return -1;
        }
    DISTILL_FREE(c.failed);
    return 0;
}

/* ---- Decoding --------------------------------------------------------------------------- */
/* The bytes one id contributes after `prev` (-1 at the start). llama2.c's run.c prints nothing
   for BOS/EOS and drops the leading space of the piece that follows BOS (the dummy prefix). */
static const char *distill__tk_piece(const distill_tokenizer *t, int32_t prev, int32_t id, size_t *len) {
    const char *p;
    if (t->kind == DISTILL__KIND_LLAMA && (id == t->bos_id || id == t->eos_id)) { *len = 0; return ""; }
    p = distill_tokenizer_token_bytes(t, id, len);
    if (!p) { *len = 0; return ""; }                  /* invalid ids decode to nothing */
    if (t->kind == DISTILL__KIND_LLAMA && prev == t->bos_id && prev >= 0 && *len && p[0] == ' ') {
        p++;
        (*len)--;
    }
    return p;
}

DISTILL_API char *distill_tokenizer_decode(const distill_tokenizer *t, const int32_t *ids, size_t n,
                                           size_t *len) {
    size_t total = 0, i, k;
    char *out;
    for (i = 0; i < n; i++) {
        distill__tk_piece(t, i ? ids[i - 1] : -1, ids[i], &k);
        if (!distill__add_size(total, k, &total)) return NULL;
    }
    out = (char *)DISTILL_MALLOC(total + 1);
    if (!out) return NULL;
    total = 0;
    for (i = 0; i < n; i++) {
        const char *p = distill__tk_piece(t, i ? ids[i - 1] : -1, ids[i], &k);
        memcpy(out + total, p, k);
        total += k;
    }
    out[total] = 0;
    if (len) *len = total;
    return out;
}

DISTILL_API void distill_decoder_init(distill_decoder *d, const distill_tokenizer *tok) {
    memset(d, 0, sizeof *d);
    d->tok = tok;
    d->prev = -1;
}

DISTILL_API void distill_decoder_free(distill_decoder *d) {
    DISTILL_FREE(d->buf);
    d->buf = NULL;
    d->cap = 0;
}

/* Append bytes to the pending ones and emit every complete character; a trailing proper prefix
   of a valid character stays pending, bytes that cannot start one become U+FFFD. */
static const char *distill__tk_decoder_emit(distill_decoder *d, const unsigned char *p, size_t n,
                                         int flush, size_t *len) {
    size_t need = (size_t)d->npend + n, i = 0, o = 0, total;
    unsigned char *in;
    /* worst case every byte becomes the 3-byte U+FFFD */
    if (!distill__mul_size(need, 3, &total) || !distill__add_size(total, 1, &total)) { *len = 0; return ""; }
    if (total + need > d->cap) {
        size_t cap = (total + need) * 2;
        char *b = (char *)DISTILL_REALLOC(d->buf, cap);
        if (!b) { *len = 0; return ""; }
        d->buf = b;
        d->cap = cap;
    }
    in = (unsigned char *)d->buf + total;          /* the input, behind the output area */
    memcpy(in, d->pend, (size_t)d->npend);
    if (n) memcpy(in + d->npend, p, n);
    d->npend = 0;
    while (i < need) {
        uint32_t cp;
        size_t k = distill__tk_utf8(in + i, need - i, &cp);
        if (cp != 0xFFFFFFFFu) {
            memcpy(d->buf + o, in + i, k);
            o += k;
            i += k;
            continue;
        }
        if (!flush && distill__tk_utf8_need(in + i, need - i)) {   /* half a character: wait */
            d->npend = (int)(need - i);
            memcpy(d->pend, in + i, need - i);
            break;
        }
        memcpy(d->buf + o, "\xEF\xBF\xBD", 3);
        o += 3;
        i += 1;
    }
    d->buf[o] = 0;
    *len = o;
    return d->buf;
}

DISTILL_API const char *distill_decoder_push(distill_decoder *d, int32_t id, size_t *len) {
    size_t k;
    const char *p = distill__tk_piece(d->tok, d->prev, id, &k);
    d->prev = id;
    return distill__tk_decoder_emit(d, (const unsigned char *)p, k, 0, len);
}

DISTILL_API const char *distill_decoder_flush(distill_decoder *d, size_t *len) {
    return distill__tk_decoder_emit(d, NULL, 0, 1, len);
}

/* ---- Training ------------------------------------------------------------------------- */
/* 1. Count chunks: cut every text into pre-tokenizer chunks and count each distinct chunk
      (a hash table of byte strings; one table per thread, summed at the end).
   2. Words: the distinct chunks, sorted by bytes, each a sequence of token ids with a count.
   3. Pairs: for every adjacent pair, its total count (sum of word counts) and the list of words
      it occurs in. A max-heap orders pairs by (count, then smallest pair).
   4. Repeat: pop the best pair, give it a new id, rewrite only the words on its list, and apply
      the difference to the pair counts: pairs of the old word lose the word's count, pairs of
      the new word gain it. Only pairs containing the new id can grow, so only those are pushed
      on the heap; entries whose count went stale are re-pushed with the true count when popped.
   Nothing is recounted from scratch, and every choice depends only on counts and ids. */

typedef struct distill__tk_wentry {
    uint64_t h;
    size_t off;
    uint32_t len;                      /* 0 = empty slot (chunks are never empty) */
    int64_t count;
} distill__tk_wentry;
typedef struct distill__tk_wtable {
    distill__tk_wentry *e;
    size_t cap, n;
    char *arena;
    size_t an, acap;
} distill__tk_wtable;

static void distill__tk_wtable_free(distill__tk_wtable *w) {
    DISTILL_FREE(w->e);
    DISTILL_FREE(w->arena);
    memset(w, 0, sizeof *w);
}

static int distill__tk_wtable_add(distill__tk_wtable *w, const unsigned char *p, size_t n, int64_t count) {
    uint64_t h;
    size_t i;
    if (n == 0) return 0;
    if (n > 0xFFFFFFFFu) return -1;
    if ((w->n + 1) * 2 > w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 4096, k;
        distill__tk_wentry *e = (distill__tk_wentry *)DISTILL_MALLOC(cap * sizeof *e);
        if (!e) return -1;
        memset(e, 0, cap * sizeof *e);
        for (k = 0; k < w->cap; k++) {
            if (!w->e[k].len) continue;
            for (i = (size_t)w->e[k].h & (cap - 1); e[i].len; i = (i + 1) & (cap - 1)) {}
            e[i] = w->e[k];
        }
        DISTILL_FREE(w->e);
        w->e = e;
        w->cap = cap;
    }
    h = distill__tk_hash_bytes(p, n);
    for (i = (size_t)h & (w->cap - 1); w->e[i].len; i = (i + 1) & (w->cap - 1)) {
        if (w->e[i].h == h && w->e[i].len == n && !memcmp(w->arena + w->e[i].off, p, n)) {
            w->e[i].count += count;
            return 0;
        }
    }
    if (w->an + n > w->acap) {
        size_t cap = w->acap ? w->acap : 65536;
        while (cap < w->an + n) cap *= 2;
        if (distill__tk_grow((void **)&w->arena, w->acap, cap, 1)) return -1;
        w->acap = cap;
    }
    memcpy(w->arena + w->an, p, n);
    w->e[i].h = h;
    w->e[i].off = w->an;
    w->e[i].len = (uint32_t)n;
    w->e[i].count = count;
    w->an += n;
    w->n++;
    return 0;
}

struct distill_bpe_trainer {
    int pattern;
    distill_tokenizer *specials;       /* only its special-token machinery is used */
    distill__tk_wtable *tables;
    int n_tables;
};

DISTILL_API void distill_bpe_trainer_free(distill_bpe_trainer *tr) {
    int i;
    if (!tr) return;
    for (i = 0; i < tr->n_tables; i++) distill__tk_wtable_free(&tr->tables[i]);
    DISTILL_FREE(tr->tables);
    distill_tokenizer_free(tr->specials);
    DISTILL_FREE(tr);
}

static distill_bpe_trainer *distill__tk_trainer_new(int pattern, const char *const *specials,
                                                 int n_specials, int n_tables, distill_error *err) {
    distill_bpe_trainer *tr;
    int i;
    if (!distill_pattern_name(pattern)) {
        distill__err(err, "tokenizer train: unknown pattern %d", pattern);
        return NULL;
    }
    if (n_specials < 0 || (n_specials > 0 && !specials)) {
        distill__err(err, "tokenizer train: bad special token list");
        return NULL;
    }
    tr = (distill_bpe_trainer *)DISTILL_MALLOC(sizeof *tr);
    if (!tr) { distill__err(err, "tokenizer train: out of memory"); return NULL; }
    memset(tr, 0, sizeof *tr);
    tr->pattern = pattern;
    tr->specials = distill__tk_new(DISTILL__KIND_BPE, pattern);
    tr->tables = (distill__tk_wtable *)DISTILL_MALLOC((size_t)n_tables * sizeof(distill__tk_wtable));
    if (!tr->specials || !tr->tables) goto oom;
    memset(tr->tables, 0, (size_t)n_tables * sizeof(distill__tk_wtable));
    tr->n_tables = n_tables;
    for (i = 0; i < n_specials; i++) {
        size_t n = specials[i] ? strlen(specials[i]) : 0;
        if (n == 0) {
            distill__err(err, "tokenizer train: special token %d is empty", i);
            distill_bpe_trainer_free(tr);
            return NULL;
        }
        if (distill__tk_special_id(tr->specials, specials[i], n) >= 0) {
            distill__err(err, "tokenizer train: special token '%s' given twice", specials[i]);
            distill_bpe_trainer_free(tr);
            return NULL;
        }
        if (distill__tk_add_special_raw(tr->specials, i, specials[i], n)) goto oom;
    }
    if (distill__tk_finalize(tr->specials)) goto oom;
    return tr;
oom:
    distill__err(err, "tokenizer train: out of memory");
    distill_bpe_trainer_free(tr);
    return NULL;
}

DISTILL_API distill_bpe_trainer *distill_bpe_trainer_new(int pattern, const char *const *specials,
                                                         int n_specials, distill_error *err) {
    int nt = distill_get_threads();
    return distill__tk_trainer_new(pattern, specials, n_specials, nt < 1 ? 1 : nt, err);
}

/* Count the chunks of one text into table w, skipping special tokens written in it. */
static int distill__tk_trainer_count(const distill_bpe_trainer *tr, distill__tk_wtable *w,
                                  const unsigned char *p, size_t n) {
    size_t pos = 0;
    while (pos < n) {
        size_t st = n, i;
        int32_t sid = tr->specials->n_special ? distill__tk_find_special(tr->specials, p, n, pos, &st, 1) : -1;
        for (i = pos; i < st;) {
            size_t e = distill__tk_pretok(tr->pattern, p, st, i);
            if (distill__tk_wtable_add(w, p + i, e - i, 1)) return -1;
            i = e;
        }
        if (sid < 0) break;
        pos = st + tr->specials->tok_len[sid];
    }
    return 0;
}

DISTILL_API int distill_bpe_trainer_add(distill_bpe_trainer *tr, const char *text, size_t len,
                                        distill_error *err) {
    if (distill__tk_trainer_count(tr, &tr->tables[0], (const unsigned char *)text, len))
        return distill__err(err, "tokenizer train: out of memory");
    return 0;
}

/* Training state over the distinct words. */
typedef struct distill__tk_pq { int64_t count; int32_t pair; } distill__tk_pq;
typedef struct distill__tk_plist { int32_t *w; int32_t n, cap; } distill__tk_plist;
typedef struct distill__tk_bpetrain {
    int32_t *tok;                      /* all words' tokens, word w at tok[woff[w]], wlen[w] long */
    size_t *woff;
    int32_t *wlen;
    int64_t *wcount;
    size_t n_words;
    int32_t *pa, *pb;                  /* pair index -> (a, b)                                */
    int64_t *pcount;
    distill__tk_plist *plist;
    size_t n_pairs, pcap;
    int32_t *pslot;                    /* hash (a, b) -> pair index, -1 empty                 */
    size_t scap;
    distill__tk_pq *heap;
    size_t hn, hcap;
    int32_t *newp;                     /* pairs created during the current merge              */
    int32_t n_newp, newp_cap;
} distill__tk_bpetrain;

static void distill__tk_bt_free(distill__tk_bpetrain *b) {
    size_t i;
    for (i = 0; i < b->n_pairs; i++) DISTILL_FREE(b->plist[i].w);
    DISTILL_FREE(b->tok); DISTILL_FREE(b->woff); DISTILL_FREE(b->wlen); DISTILL_FREE(b->wcount);
    DISTILL_FREE(b->pa); DISTILL_FREE(b->pb); DISTILL_FREE(b->pcount); DISTILL_FREE(b->plist);
    DISTILL_FREE(b->pslot); DISTILL_FREE(b->heap); DISTILL_FREE(b->newp);
}

/* The pair index of (a, b), created with count 0 if new; -1 out of memory. */
static int32_t distill__tk_bt_pair(distill__tk_bpetrain *b, int32_t x, int32_t y) {
    uint64_t key = ((uint64_t)(uint32_t)x << 32) | (uint32_t)y;
    size_t mask, h;
    if ((b->n_pairs + 1) * 2 > b->scap) {
        size_t cap = b->scap ? b->scap * 2 : 65536, i;
        int32_t *s = (int32_t *)DISTILL_MALLOC(cap * sizeof(int32_t));
        if (!s) return -1;
        for (i = 0; i < cap; i++) s[i] = -1;
        for (i = 0; i < b->n_pairs; i++) {
            uint64_t k = ((uint64_t)(uint32_t)b->pa[i] << 32) | (uint32_t)b->pb[i];
            for (h = distill__tk_hash_pair(k, cap - 1); s[h] >= 0; h = (h + 1) & (cap - 1)) {}
            s[h] = (int32_t)i;
        }
        DISTILL_FREE(b->pslot);
        b->pslot = s;
        b->scap = cap;
    }
    mask = b->scap - 1;
    for (h = distill__tk_hash_pair(key, mask); b->pslot[h] >= 0; h = (h + 1) & mask) {
        int32_t i = b->pslot[h];
        if (b->pa[i] == x && b->pb[i] == y) return i;
    }
    if (b->n_pairs == b->pcap) {
        size_t cap = b->pcap ? b->pcap * 2 : 65536;
        if (distill__tk_grow((void **)&b->pa, b->pcap, cap, 4) || distill__tk_grow((void **)&b->pb, b->pcap, cap, 4) ||
            distill__tk_grow((void **)&b->pcount, b->pcap, cap, 8) ||
            distill__tk_grow((void **)&b->plist, b->pcap, cap, sizeof(distill__tk_plist)))
            return -1;
        b->pcap = cap;
    }
    b->pa[b->n_pairs] = x;
    b->pb[b->n_pairs] = y;
    b->pcount[b->n_pairs] = 0;
    b->pslot[h] = (int32_t)b->n_pairs;
    return (int32_t)b->n_pairs++;
}

static int distill__tk_plist_add(distill__tk_plist *l, int32_t w) {
    if (l->n && l->w[l->n - 1] == w) return 0;       /* already listed for this word */
    if (l->n == l->cap) {
        int32_t cap = l->cap ? l->cap * 2 : 4;
        if (distill__tk_grow((void **)&l->w, (size_t)l->cap, (size_t)cap, 4)) return -1;
        l->cap = cap;
    }
    l->w[l->n++] = w;
    return 0;
}

/* Heap order: larger count first, then the smaller pair (a, then b). */
static int distill__tk_pq_before(const distill__tk_bpetrain *b, int64_t c1, int32_t p1, int64_t c2, int32_t p2) {
    if (c1 != c2) return c1 > c2;
    if (b->pa[p1] != b->pa[p2]) return b->pa[p1] < b->pa[p2];
    return b->pb[p1] < b->pb[p2];
}

static int distill__tk_pq_push(distill__tk_bpetrain *b, int32_t pair) {
    size_t i;
    int64_t c = b->pcount[pair];
    if (b->hn == b->hcap) {
        size_t cap = b->hcap ? b->hcap * 2 : 65536;
        if (distill__tk_grow((void **)&b->heap, b->hcap, cap, sizeof *b->heap)) return -1;
        b->hcap = cap;
    }
    i = b->hn++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!distill__tk_pq_before(b, c, pair, b->heap[p].count, b->heap[p].pair)) break;
        b->heap[i] = b->heap[p];
        i = p;
    }
    b->heap[i].count = c;
    b->heap[i].pair = pair;
    return 0;
}

static void distill__tk_pq_pop(distill__tk_bpetrain *b) {
    distill__tk_pq last = b->heap[--b->hn];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= b->hn) break;
        if (c + 1 < b->hn && distill__tk_pq_before(b, b->heap[c + 1].count, b->heap[c + 1].pair,
                                                b->heap[c].count, b->heap[c].pair))
            c++;
        if (!distill__tk_pq_before(b, b->heap[c].count, b->heap[c].pair, last.count, last.pair)) break;
        b->heap[i] = b->heap[c];
        i = c;
    }
    if (b->hn) b->heap[i] = last;
}

/* Add `delta` times word w's count to each of its adjacent pairs; register w with pairs that
   contain `fresh` (the id just created), pushing those pairs when they are first seen. */
static int distill__tk_bt_word_pairs(distill__tk_bpetrain *b, size_t w, int64_t delta, int32_t fresh) {
    const int32_t *t = b->tok + b->woff[w];
    int32_t i;
    for (i = 0; i + 1 < b->wlen[w]; i++) {
        int32_t p = distill__tk_bt_pair(b, t[i], t[i + 1]);
        if (p < 0) return -1;
        if (fresh >= 0 && b->pcount[p] == 0 && (t[i] == fresh || t[i + 1] == fresh)) {
            if (b->n_newp == b->newp_cap) {
                int32_t cap = b->newp_cap ? b->newp_cap * 2 : 1024;
                if (distill__tk_grow((void **)&b->newp, (size_t)b->newp_cap, (size_t)cap, 4)) return -1;
                b->newp_cap = cap;
            }
            b->newp[b->n_newp++] = p;
        }
        b->pcount[p] += delta * b->wcount[w];
        if (delta > 0 && (fresh < 0 || t[i] == fresh || t[i + 1] == fresh))
            if (distill__tk_plist_add(&b->plist[p], (int32_t)w)) return -1;
    }
    return 0;
}

typedef struct distill__tk_wref { const unsigned char *p; uint32_t len; int64_t count; } distill__tk_wref;
static int distill__tk_wref_cmp(const void *x, const void *y) {
    const distill__tk_wref *a = (const distill__tk_wref *)x, *b = (const distill__tk_wref *)y;
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->p, b->p, n);
    if (c) return c;
    return a->len < b->len ? -1 : a->len > b->len;
}

DISTILL_API distill_tokenizer *distill_bpe_trainer_finish(distill_bpe_trainer *tr, int vocab_size,
                                                          distill_error *err) {
    distill__tk_wtable *w0 = &tr->tables[0];
    distill__tk_wref *refs = NULL;
    distill__tk_bpetrain b;
    distill_tokenizer *tok = NULL;
    int32_t n_special = tr->specials->n_special, n_merges, r, k;
    size_t i, j, total = 0;
    memset(&b, 0, sizeof b);
    if (vocab_size < 256 + n_special || vocab_size > (1 << 24)) {
        distill__err(err, "tokenizer train: vocab_size %d out of range (256 bytes + %d special "
                     "tokens .. 16777216)", vocab_size, (int)n_special);
        return NULL;
    }
    n_merges = vocab_size - 256 - n_special;
    /* sum the per-thread tables into the first (in table order: sums do not depend on it) */
    for (k = 1; k < tr->n_tables; k++) {
        distill__tk_wtable *wk = &tr->tables[k];
        for (i = 0; i < wk->cap; i++)
            if (wk->e[i].len && distill__tk_wtable_add(w0, (const unsigned char *)wk->arena + wk->e[i].off,
                                                    wk->e[i].len, wk->e[i].count))
                goto oom;
        distill__tk_wtable_free(wk);
    }
    /* words in byte order, so that everything downstream is independent of hashing */
    refs = (distill__tk_wref *)DISTILL_MALLOC((w0->n ? w0->n : 1) * sizeof *refs);
    if (!refs) goto oom;
    for (i = 0, j = 0; i < w0->cap; i++)
        if (w0->e[i].len) {
            refs[j].p = (const unsigned char *)w0->arena + w0->e[i].off;
            refs[j].len = w0->e[i].len;
            refs[j].count = w0->e[i].count;
            total += w0->e[i].len;
            j++;
        }
    b.n_words = j;
    qsort(refs, b.n_words, sizeof *refs, distill__tk_wref_cmp);
    b.tok = (int32_t *)DISTILL_MALLOC((total ? total : 1) * sizeof(int32_t));
    b.woff = (size_t *)DISTILL_MALLOC((b.n_words ? b.n_words : 1) * sizeof(size_t));
    b.wlen = (int32_t *)DISTILL_MALLOC((b.n_words ? b.n_words : 1) * sizeof(int32_t));
    b.wcount = (int64_t *)DISTILL_MALLOC((b.n_words ? b.n_words : 1) * sizeof(int64_t));
    if (!b.tok || !b.woff || !b.wlen || !b.wcount) goto oom;
    for (i = 0, total = 0; i < b.n_words; i++) {
        b.woff[i] = total;
        b.wlen[i] = (int32_t)refs[i].len;
        b.wcount[i] = refs[i].count;
        for (j = 0; j < refs[i].len; j++) b.tok[total + j] = refs[i].p[j];
        total += refs[i].len;
    }
    DISTILL_FREE(refs);
    refs = NULL;
    for (i = 0; i < b.n_words; i++)
        if (distill__tk_bt_word_pairs(&b, i, 1, -1)) goto oom;
    for (i = 0; i < b.n_pairs; i++)
        if (distill__tk_pq_push(&b, (int32_t)i)) goto oom;

    tok = distill__tk_new(DISTILL__KIND_BPE, tr->pattern);
    if (!tok) goto oom;
    for (k = 0; k < 256; k++) {
        unsigned char c = (unsigned char)k;
        if (distill__tk_set(tok, k, &c, 1, DISTILL__TK_BYTE)) goto oom;
    }
    for (r = 0; r < n_merges && b.hn;) {
        int32_t p = b.heap[0].pair, a, c, fresh = 256 + r;
        int64_t cnt = b.heap[0].count;
        distill__tk_plist list;
        distill__tk_pq_pop(&b);
        if (cnt != b.pcount[p]) {            /* stale: re-queue with the true count */
            if (b.pcount[p] > 0 && cnt > b.pcount[p] && distill__tk_pq_push(&b, p)) goto oom;
            continue;
        }
        if (cnt <= 0) break;
        a = b.pa[p];
        c = b.pb[p];
        {   /* the new token's bytes: left's then right's */
            size_t la = tok->tok_len[a], lc = tok->tok_len[c];
            char *tmp = (char *)DISTILL_MALLOC(la + lc);
            int rc;
            if (!tmp) goto oom;
            memcpy(tmp, tok->pool + tok->tok_off[a], la);
            memcpy(tmp + la, tok->pool + tok->tok_off[c], lc);
            rc = distill__tk_set(tok, fresh, tmp, la + lc, DISTILL__TK_MERGE);
            DISTILL_FREE(tmp);
            if (rc || distill__tk_add_merge(tok, a, c, fresh)) goto oom;
        }
        list = b.plist[p];                   /* the pair's own list never grows during its merge */
        b.plist[p].w = NULL;
        b.plist[p].n = b.plist[p].cap = 0;
        for (k = 0; k < list.n; k++) {
            size_t wi = (size_t)list.w[k];
            int32_t *t = b.tok + b.woff[wi], n = b.wlen[wi], x, y, found = 0;
            for (x = 0; x + 1 < n; x++)
                if (t[x] == a && t[x + 1] == c) { found = 1; break; }
            if (!found) continue;            /* stale list entry */
            if (distill__tk_bt_word_pairs(&b, wi, -1, -1)) { DISTILL_FREE(list.w); goto oom; }
            for (x = 0, y = 0; x < n;) {
                if (x + 1 < n && t[x] == a && t[x + 1] == c) { t[y++] = fresh; x += 2; }
                else t[y++] = t[x++];
            }
            b.wlen[wi] = y;
            if (distill__tk_bt_word_pairs(&b, wi, 1, fresh)) { DISTILL_FREE(list.w); goto oom; }
        }
        DISTILL_FREE(list.w);
        /* the pairs that contain the new id are the only ones that grew: queue them */
        for (k = 0; k < b.n_newp; k++)
            if (b.pcount[b.newp[k]] > 0 && distill__tk_pq_push(&b, b.newp[k])) goto oom;
        b.n_newp = 0;
        r++;
    }
    /* the special tokens take the ids after the merges, in the order given */
    for (k = 0; k < n_special; k++)
        if (distill__tk_add_special_raw(tok, 256 + r + k, tr->specials->pool + tr->specials->tok_off[k],
                                         tr->specials->tok_len[k]))
            goto oom;
    if (distill__tk_finalize(tok)) goto oom;
    goto done;
oom:
    distill__err(err, "tokenizer train: out of memory");
    DISTILL_FREE(refs);
    distill__tk_bt_free(&b);
    distill_tokenizer_free(tok);
    return NULL;
done:
    distill__tk_bt_free(&b);
    return tok;
}

typedef struct distill__tk_count_ctx {
    distill_bpe_trainer *tr;
    const char *const *texts;
    const size_t *lens;
    int *failed;                       /* one flag per thread: no shared writes */
} distill__tk_count_ctx;

static void distill__tk_count_task(void *ctx, int64_t b, int64_t e, int thread) {
    distill__tk_count_ctx *c = (distill__tk_count_ctx *)ctx;
    int64_t i;
    for (i = b; i < e; i++) {
        const char *s = c->texts[i];
        size_t n = c->lens ? c->lens[i] : strlen(s);
        if (distill__tk_trainer_count(c->tr, &c->tr->tables[thread], (const unsigned char *)s, n))
            c->failed[thread] = 1;
    }
}

DISTILL_API int distill_bpe_trainer_add_batch(distill_bpe_trainer *tr, const char *const *texts,
                                              const size_t *lens, size_t n, distill_error *err) {
    int nt = distill_get_threads(), k, failed = 0;
    distill__tk_count_ctx c;
    if (nt < 1) nt = 1;
    if (nt > tr->n_tables) {   /* the pool grew since the trainer was made: one table per worker */
        if (distill__tk_grow((void **)&tr->tables, (size_t)tr->n_tables, (size_t)nt, sizeof(distill__tk_wtable)))
            return distill__err(err, "tokenizer train: out of memory");
        tr->n_tables = nt;
    }
    c.tr = tr; c.texts = texts; c.lens = lens;
    c.failed = (int *)DISTILL_MALLOC((size_t)nt * sizeof(int));
    if (!c.failed) return distill__err(err, "tokenizer train: out of memory");
    for (k = 0; k < nt; k++) c.failed[k] = 0;
    distill_parallel_for((int64_t)n, 16, distill__tk_count_task, &c);
    for (k = 0; k < nt; k++) failed |= c.failed[k];
    DISTILL_FREE(c.failed);
    if (failed) return distill__err(err, "tokenizer train: out of memory");
    return 0;
}

DISTILL_API distill_tokenizer *distill_tokenizer_train(const char *const *texts, const size_t *lens,
                                                       size_t n_texts, int vocab_size, int pattern,
                                                       const char *const *specials, int n_specials,
                                                       distill_error *err) {
    distill_bpe_trainer *tr = distill_bpe_trainer_new(pattern, specials, n_specials, err);
    distill_tokenizer *tok = NULL;
    if (!tr) return NULL;
    if (distill_bpe_trainer_add_batch(tr, texts, lens, n_texts, err) == 0)
        tok = distill_bpe_trainer_finish(tr, vocab_size, err);
    distill_bpe_trainer_free(tr);
    return tok;
}

/* ---- Files: the library's own text format ------------------------------------------------ */
/* A diffable text file; every line is one fact, so two tokenizers can be compared with diff:

       distill-tokenizer 1
       pattern gpt2                      pre-tokenizer: none | gpt2 | cl100k | qwen2
       vocab_size 50257
       bytes identity                    or "bytes N" then N lines "<id> <hex byte>"
       merges 50000                      then N lines "<left> <right> <id>  # "<text>"" in rank order
       specials 1                        then N lines "<id> <text>" (escaped)
       plain 0                           then N lines "<id> <text>": tokens that are neither bytes,
                                         merges nor specials (decodable, never produced by encode)
       end

   Text is escaped: backslash as \\, and bytes <= 0x20, 0x7F and '"' as \xHH; bytes >= 0x80 stay
   raw when the token is valid UTF-8 (so CJK reads as CJK), else \xHH. "ignore_merges 1" after
   the pattern line marks Hugging Face's ignore_merges behaviour, "normalizer nfc" after it a
   tokenizer that requires NFC text (encode checks it). */

static int distill__tk_valid_utf8(const unsigned char *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        i += distill__tk_utf8(p + i, n - i, &cp);
        if (cp == 0xFFFFFFFFu) return 0;
    }
    return 1;
}

static void distill__tk_write_escaped(FILE *f, const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    int raw_high = distill__tk_valid_utf8(p, n);
    size_t i;
    for (i = 0; i < n; i++) {
        unsigned c = p[i];
        if (c == '\\') fputs("\\\\", f);
        else if (c <= 0x20 || c == 0x7F || c == '"' || (c >= 0x80 && !raw_high)) fprintf(f, "\\x%02X", c);
        else fputc((int)c, f);
    }
}

static void distill__tk_write_own(const distill_tokenizer *t, FILE *f);

DISTILL_API int distill_tokenizer_save(const distill_tokenizer *t, const char *path,
                                       distill_error *err) {
    distill_atomic_file af;
    if (t->kind != DISTILL__KIND_BPE)
        return distill__err(err, "%s: llama2.c tokenizers are kept in their own .bin format, not "
                            "saved as text", path);
    if (distill_atomic_open(&af, path, err)) return -1;
    distill__tk_write_own(t, af.f);
    if (ferror(af.f)) {
        int e = errno;   /* of the failed write; abort's fclose and remove may change it */
        distill_atomic_abort(&af);
        return distill__err(err, "%s: write error: %s", path, strerror(e));
    }
    return distill_atomic_commit(&af, err);
}

static void distill__tk_write_own(const distill_tokenizer *t, FILE *f) {
    int32_t id, r, n_plain = 0, identity = 1, k;
    for (k = 0; k < 256; k++) if (t->byte_id[k] != k) identity = 0;
    for (id = 0; id < t->n_vocab; id++) if (t->tok_flag[id] == DISTILL__TK_PLAIN) n_plain++;
    fprintf(f, "distill-tokenizer 1\npattern %s\n", distill_pattern_name(t->pattern));
    if (t->whole_first) fprintf(f, "ignore_merges 1\n");
    if (t->nfc) fprintf(f, "normalizer nfc\n");
    fprintf(f, "vocab_size %d\n", (int)t->n_vocab);
    if (identity) fprintf(f, "bytes identity\n");
    else {
        int32_t nb = 0;
        for (k = 0; k < 256; k++) if (t->byte_id[k] >= 0) nb++;
        fprintf(f, "bytes %d\n", (int)nb);
        for (k = 0; k < 256; k++)
            if (t->byte_id[k] >= 0) fprintf(f, "%d %02X\n", (int)t->byte_id[k], (unsigned)k);
    }
    fprintf(f, "merges %d\n", (int)t->n_merges);
    for (r = 0; r < t->n_merges; r++) {
        int32_t m = t->m_id[r];
        fprintf(f, "%d %d %d  # \"", (int)t->m_left[r], (int)t->m_right[r], (int)m);
        distill__tk_write_escaped(f, t->pool + t->tok_off[m], t->tok_len[m]);
        fputs("\"\n", f);
    }
    fprintf(f, "specials %d\n", (int)(t->n_special - t->n_added));
    for (id = 0; id < t->n_vocab; id++)
        if (t->tok_flag[id] == DISTILL__TK_SPECIAL) {
            fprintf(f, "%d ", (int)id);
            distill__tk_write_escaped(f, t->pool + t->tok_off[id], t->tok_len[id]);
            fputc('\n', f);
        }
    fprintf(f, "plain %d\n", (int)n_plain);
    for (id = 0; id < t->n_vocab; id++)
        if (t->tok_flag[id] == DISTILL__TK_PLAIN) {
            fprintf(f, "%d ", (int)id);
            distill__tk_write_escaped(f, t->pool + t->tok_off[id], t->tok_len[id]);
            fputc('\n', f);
        }
    if (t->n_added) {   /* non-special added tokens (absent from files written before them) */
        fprintf(f, "added %d\n", (int)t->n_added);
        for (id = 0; id < t->n_vocab; id++)
            if (t->tok_flag[id] == DISTILL__TK_ADDED) {
                fprintf(f, "%d ", (int)id);
                distill__tk_write_escaped(f, t->pool + t->tok_off[id], t->tok_len[id]);
                fputc('\n', f);
            }
    }
    fprintf(f, "end\n");
}

/* The tokenizer as bytes a checkpoint can carry: the own text format, or llama2.c's
   tokenizer.bin (max_token_length, then score, length, bytes per token) for those.
   distill__tk_from_bytes reads either back. */
static unsigned char *distill__tk_to_bytes(const distill_tokenizer *t, size_t *size, distill_error *err) {
    FILE *f = tmpfile();
    unsigned char *b = NULL;
    long n;
    if (!f) { distill__err(err, "cannot create a temporary buffer for the tokenizer"); return NULL; }
    if (t->kind == DISTILL__KIND_BPE) {
        distill__tk_write_own(t, f);
    } else {
        int32_t id, maxlen = 1, k;
        unsigned char w[8];
        uint32_t u[2];
        for (id = 0; id < t->n_vocab; id++) if ((int32_t)t->tok_len[id] > maxlen) maxlen = (int32_t)t->tok_len[id];
        for (k = 0; k < 4; k++) w[k] = (unsigned char)((uint32_t)maxlen >> (8 * k));
        fwrite(w, 1, 4, f);
        for (id = 0; id < t->n_vocab; id++) {   /* little-endian, as llama2.c writes on x86 */
            memcpy(&u[0], &t->scores[id], 4);
            u[1] = (uint32_t)t->tok_len[id];
            for (k = 0; k < 8; k++) w[k] = (unsigned char)(u[k / 4] >> (8 * (k % 4)));
            fwrite(w, 1, 8, f);
            fwrite(t->pool + t->tok_off[id], 1, t->tok_len[id], f);
        }
    }
    n = ferror(f) ? -1 : ftell(f);
    if (n > 0 && (b = (unsigned char *)DISTILL_MALLOC((size_t)n + 1)) != NULL) {
        rewind(f);
        if (fread(b, 1, (size_t)n, f) != (size_t)n) { DISTILL_FREE(b); b = NULL; }
        else b[n] = 0;
    }
    fclose(f);
    if (!b) distill__err(err, "cannot serialise the tokenizer");
    *size = b ? (size_t)n : 0;
    return b;
}

/* A line cursor over a NUL-terminated buffer, for error messages with line numbers. */
typedef struct distill__tk_lines {
    const char *p, *end, *path;
    int line;
} distill__tk_lines;

/* The next line (without its newline) in [*s, *e); 0 at end of input. */
static int distill__tk_next_line(distill__tk_lines *L, const char **s, const char **e) {
    const char *q;
    if (L->p >= L->end) return 0;
    q = (const char *)memchr(L->p, '\n', (size_t)(L->end - L->p));
    *s = L->p;
    *e = q ? q : L->end;
    L->p = q ? q + 1 : L->end;
    if (*e > *s && (*e)[-1] == '\r') (*e)--;
    L->line++;
    return 1;
}

/* Parse a decimal integer in [lo, hi] at *s, advancing past it and following spaces. */
static int distill__tk_parse_int(const char **s, const char *e, long lo, long hi, long *out) {
    const char *p = *s;
    long v = 0;
    int neg = 0, digits = 0;
    if (p < e && *p == '-') { neg = 1; p++; }
    while (p < e && *p >= '0' && *p <= '9') {
        if (v > 100000000L) return -1;       /* far beyond any valid value: stop before overflow */
        v = v * 10 + (*p - '0');
        p++;
        digits++;
    }
    if (!digits) return -1;
    if (neg) v = -v;
    if (v < lo || v > hi) return -1;
    while (p < e && *p == ' ') p++;
    *s = p;
    *out = v;
    return 0;
}

/* Unescape text (\\ and \xHH) from [s, e) into buf (at least e - s bytes); returns the length or
   -1 on a bad escape. */
static long distill__tk_unescape(const char *s, const char *e, char *buf) {
    long n = 0;
    while (s < e) {
        if (*s != '\\') { buf[n++] = *s++; continue; }
        if (s + 1 < e && s[1] == '\\') { buf[n++] = '\\'; s += 2; continue; }
        if (s + 3 < e + 0 && s[1] == 'x') {
            int v = 0, i;
            for (i = 2; i < 4; i++) {
                char c = s[i];
                v <<= 4;
                if (c >= '0' && c <= '9') v |= c - '0';
                else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
                else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
                else return -1;
            }
            buf[n++] = (char)v;
            s += 4;
            continue;
        }
        return -1;
    }
    return n;
}

/* "keyword N" header line; returns N or -1 with an error. */
static long distill__tk_header(distill__tk_lines *L, const char *kw, long hi, distill_error *err) {
    const char *s, *e;
    size_t k = strlen(kw);
    long v;
    if (!distill__tk_next_line(L, &s, &e))
        return distill__err(err, "%s:%d: truncated: expected '%s N'", L->path, L->line, kw);
    if ((size_t)(e - s) <= k || memcmp(s, kw, k) || s[k] != ' ')
        return distill__err(err, "%s:%d: expected '%s N'", L->path, L->line, kw);
    s += k + 1;
    if (distill__tk_parse_int(&s, e, 0, hi, &v) || s != e)
        return distill__err(err, "%s:%d: '%s': count missing or out of range 0..%ld", L->path,
                            L->line, kw, hi);
    return v;
}

/* Give every merge result its bytes (left's then right's) and register the merges in rank
   order. A result may be needed before its own line (its parts defined further down), so each
   token is resolved depth-first with an explicit stack: linear time, cycles and undefined
   tokens are errors naming the merge's line. buf has room for the longest token. */
static int distill__tk_resolve_merges(distill_tokenizer *t, const char *path, const int32_t *m,
                                      const int *line, long n, int32_t vocab, char *buf,
                                      size_t file_size, distill_error *err) {
    size_t limit = file_size * 16 + (1u << 20);
    int32_t *of = NULL, *stack = NULL;           /* of[id] = the merge that makes id, or -1 */
    unsigned char *state = NULL;                 /* 0 new, 1 on the stack, 2 done */
    long i;
    int32_t id, sp;
    int rc = -1;
    if (n == 0) return 0;
    of = (int32_t *)DISTILL_MALLOC((size_t)vocab * sizeof(int32_t));
    stack = (int32_t *)DISTILL_MALLOC(((size_t)n + 1) * sizeof(int32_t));
    state = (unsigned char *)DISTILL_MALLOC((size_t)vocab);
    if (!of || !stack || !state) { distill__err(err, "%s: out of memory", path); goto done; }
    for (id = 0; id < vocab; id++) { of[id] = -1; state[id] = 0; }
    for (i = 0; i < n; i++) {
        id = m[3 * i + 2];
        if (of[id] >= 0 || (id < t->n_vocab && t->tok_flag[id])) {
            distill__err(err, "%s:%d: token id %d defined twice", path, line[i], (int)id);
            goto done;
        }
        of[id] = (int32_t)i;
    }
    for (i = 0; i < n; i++) {
        stack[0] = m[3 * i + 2];
        sp = 1;
        while (sp > 0) {
            int32_t top = stack[sp - 1], r = of[top], k, pending = -1;
            if (state[top] == 2) { sp--; continue; }
            state[top] = 1;
            for (k = 0; k < 2 && pending < 0; k++) {
                int32_t c = m[3 * r + k];
                if (c < t->n_vocab && t->tok_flag[c]) continue;          /* defined */
                if (of[c] < 0) {
                    distill__err(err, "%s:%d: merge uses token %d, which nothing defines", path, line[r], (int)c);
                    goto done;
                }
                if (state[c] == 1) {
                    distill__err(err, "%s:%d: merges form a cycle through token %d", path, line[r], (int)c);
                    goto done;
                }
                pending = c;
            }
            if (pending >= 0) { stack[sp++] = pending; continue; }
            {
                int32_t a = m[3 * r], b = m[3 * r + 1];
                size_t la = t->tok_len[a], lb = t->tok_len[b];
                /* doubling chains could otherwise grow exponentially from a small file */
                if (la + lb > 65536 || t->pool_n > limit) {
                    distill__err(err, "%s:%d: merged tokens too long (a token over 64 KB, or all "
                                 "together over 16x the file size)", path, line[r]);
                    goto done;
                }
                memcpy(buf, t->pool + t->tok_off[a], la);
                memcpy(buf + la, t->pool + t->tok_off[b], lb);
                if (distill__tk_set(t, top, buf, la + lb, DISTILL__TK_MERGE)) {
                    distill__err(err, "%s: out of memory", path);
                    goto done;
                }
            }
            state[top] = 2;
            sp--;
        }
    }
    for (i = 0; i < n; i++) {
        int r2 = distill__tk_add_merge(t, m[3 * i], m[3 * i + 1], m[3 * i + 2]);
        if (r2 == -2) {
            distill__err(err, "%s:%d: duplicate merge %d %d", path, line[i], (int)m[3 * i], (int)m[3 * i + 1]);
            goto done;
        }
        if (r2) { distill__err(err, "%s: out of memory", path); goto done; }
    }
    rc = 0;
done:
    DISTILL_FREE(of); DISTILL_FREE(stack); DISTILL_FREE(state);
    return rc;
}

static distill_tokenizer *distill__tk_load_own(const char *path, const char *data, size_t size,
                                               distill_error *err) {
    distill__tk_lines L;
    distill_tokenizer *t = NULL;
    const char *s = NULL, *e = NULL;   /* stay NULL (length 0, refused) when there is no first line */
    char *buf = NULL;
    long vocab, n, i, v, n_m = 0;
    int32_t *mtrip = NULL;
    int *mline = NULL;
    int pattern;
    L.p = data; L.end = data + size; L.path = path; L.line = 0;
    buf = (char *)DISTILL_MALLOC(size + 131072 + 1);   /* a line, or a merged token (<= 64 KB each) */
    if (!buf) { distill__err(err, "%s: out of memory", path); return NULL; }
    distill__tk_next_line(&L, &s, &e);
    if ((size_t)(e - s) != 19 || memcmp(s, "distill-tokenizer 1", 19)) {
        distill__err(err, "%s:1: unsupported version line (expected 'distill-tokenizer 1')", path);
        goto fail;
    }
    if (!distill__tk_next_line(&L, &s, &e) || e - s < 9 || memcmp(s, "pattern ", 8)) {
        distill__err(err, "%s:%d: expected 'pattern NAME'", path, L.line);
        goto fail;
    }
    memcpy(buf, s + 8, (size_t)(e - s - 8));
    buf[e - s - 8] = 0;
    pattern = distill_pattern_from_name(buf);
    if (pattern < 0) {
        distill__err(err, "%s:%d: unknown pattern '%s' (none, gpt2, cl100k, qwen2)", path, L.line, buf);
        goto fail;
    }
    t = distill__tk_new(DISTILL__KIND_BPE, pattern);
    if (!t) { distill__err(err, "%s: out of memory", path); goto fail; }
    if (L.p + 15 <= L.end && !memcmp(L.p, "ignore_merges 1", 15)) {
        distill__tk_next_line(&L, &s, &e);
        t->whole_first = 1;
    }
    if (L.p + 14 <= L.end && !memcmp(L.p, "normalizer nfc", 14)) {
        distill__tk_next_line(&L, &s, &e);
        t->nfc = 1;
    }
    if ((vocab = distill__tk_header(&L, "vocab_size", 1 << 24, err)) < 0) goto fail;
    {   /* every id but the 256 bytes takes a line: a bigger vocab_size cannot be honest */
        long lines = 0;
        const char *q;
        for (q = data; q < data + size; q++) lines += *q == '\n';
        if (vocab > lines + 256) {
            distill__err(err, "%s:%d: vocab_size %ld is more than the file's %ld lines can define", path,
                         L.line, vocab, lines);
            goto fail;
        }
    }
    if (!distill__tk_next_line(&L, &s, &e)) {
        distill__err(err, "%s:%d: truncated: expected 'bytes'", path, L.line);
        goto fail;
    }
    if ((size_t)(e - s) == 14 && !memcmp(s, "bytes identity", 14)) {
        if (vocab < 256) {
            distill__err(err, "%s:%d: 'bytes identity' needs vocab_size >= 256", path, L.line);
            goto fail;
        }
        for (i = 0; i < 256; i++) {
            char c = (char)i;
            if (distill__tk_set(t, (int32_t)i, &c, 1, DISTILL__TK_BYTE)) goto oom;
        }
    } else {
        L.p = s; L.line--;                  /* re-read it as "bytes N" */
        if ((n = distill__tk_header(&L, "bytes", 256, err)) < 0) goto fail;
        for (i = 0; i < n; i++) {
            long id, b;
            char c;
            if (!distill__tk_next_line(&L, &s, &e)) {
                distill__err(err, "%s:%d: truncated: expected %ld byte lines, got %ld", path, L.line, n, i);
                goto fail;
            }
            if (distill__tk_parse_int(&s, e, 0, vocab - 1, &id) || e - s != 2 ||
                (b = strtol(s, NULL, 16), !isxdigit((unsigned char)s[0]) || !isxdigit((unsigned char)s[1]))) {
                distill__err(err, "%s:%d: expected '<id> <hex byte>' with id < vocab_size %ld", path, L.line, vocab);
                goto fail;
            }
            c = (char)b;
            if (t->n_vocab > id && t->tok_flag[id] != DISTILL__TK_NONE) {
                distill__err(err, "%s:%d: token id %ld defined twice", path, L.line, id);
                goto fail;
            }
            if (t->byte_id[(unsigned char)c] >= 0) {
                distill__err(err, "%s:%d: byte %02lX listed twice", path, L.line, b);
                goto fail;
            }
            if (distill__tk_set(t, (int32_t)id, &c, 1, DISTILL__TK_BYTE)) goto oom;
        }
    }
    /* merges: read now, their tokens' bytes are resolved once every section is in (a merge may
       use a special or plain token, or, in files converted from elsewhere, a later merge) */
    if ((n = distill__tk_header(&L, "merges", 1 << 24, err)) < 0) goto fail;
    n_m = n;
    if (n_m) {
        mtrip = (int32_t *)DISTILL_MALLOC((size_t)n_m * 3 * sizeof(int32_t));
        mline = (int *)DISTILL_MALLOC((size_t)n_m * sizeof(int));
        if (!mtrip || !mline) goto oom;
    }
    for (i = 0; i < n; i++) {
        long a, b, id;
        if (!distill__tk_next_line(&L, &s, &e)) {
            distill__err(err, "%s:%d: truncated: expected %ld merges, got %ld", path, L.line, n, i);
            goto fail;
        }
        if (distill__tk_parse_int(&s, e, 0, vocab - 1, &a) || distill__tk_parse_int(&s, e, 0, vocab - 1, &b) ||
            distill__tk_parse_int(&s, e, 0, vocab - 1, &id) || (s != e && *s != '#')) {
            distill__err(err, "%s:%d: expected '<left> <right> <id>' with ids < vocab_size %ld", path, L.line, vocab);
            goto fail;
        }
        mtrip[3 * i] = (int32_t)a; mtrip[3 * i + 1] = (int32_t)b; mtrip[3 * i + 2] = (int32_t)id;
        mline[i] = L.line;
    }
    for (v = 0; v < 3; v++) {
        const char *kw = v == 0 ? "specials" : v == 1 ? "plain" : "added";
        if (v == 2) {   /* optional: "added N" before "end" */
            distill__tk_lines peek = L;
            if (!distill__tk_next_line(&peek, &s, &e) || e - s < 6 || memcmp(s, "added ", 6) != 0) break;
        }
        if ((n = distill__tk_header(&L, kw, 1 << 24, err)) < 0) goto fail;
        for (i = 0; i < n; i++) {
            long id, len;
            if (!distill__tk_next_line(&L, &s, &e)) {
                distill__err(err, "%s:%d: truncated: expected %ld %s lines, got %ld", path, L.line, n, kw, i);
                goto fail;
            }
            if (distill__tk_parse_int(&s, e, 0, vocab - 1, &id) || (len = distill__tk_unescape(s, e, buf)) <= 0) {
                distill__err(err, "%s:%d: expected '<id> <text>' with id < vocab_size %ld and valid escapes",
                             path, L.line, vocab);
                goto fail;
            }
            if (id < t->n_vocab && t->tok_flag[id]) {
                distill__err(err, "%s:%d: token id %ld defined twice", path, L.line, id);
                goto fail;
            }
            if (v != 1 ? distill__tk_add_added_raw(t, (int32_t)id, buf, (size_t)len, v == 0 ? DISTILL__TK_SPECIAL : DISTILL__TK_ADDED)
                       : distill__tk_set(t, (int32_t)id, buf, (size_t)len, DISTILL__TK_PLAIN))
                goto oom;
        }
    }
    if (!distill__tk_next_line(&L, &s, &e) || e - s != 3 || memcmp(s, "end", 3)) {
        distill__err(err, "%s:%d: expected 'end' (file truncated or counts wrong)", path, L.line);
        goto fail;
    }
    if (distill__tk_resolve_merges(t, path, mtrip, mline, n_m, (int32_t)vocab, buf, size, err)) goto fail;
    if (t->n_vocab != vocab) {
        distill__err(err, "%s: vocab_size says %ld but the file defines ids up to %d", path, vocab,
                     (int)t->n_vocab - 1);
        goto fail;
    }
    if (distill__tk_finalize(t)) goto oom;
    DISTILL_FREE(buf); DISTILL_FREE(mtrip); DISTILL_FREE(mline);
    return t;
oom:
    distill__err(err, "%s: out of memory", path);
fail:
    DISTILL_FREE(buf); DISTILL_FREE(mtrip); DISTILL_FREE(mline);
    distill_tokenizer_free(t);
    return NULL;
}

/* ---- Files: llama2.c tokenizer.bin ------------------------------------------------------ */
/* int32 max_token_length, then per token: float32 score, int32 length, the bytes. The vocab size
   is not stored (run.c takes it from the model); here it is the number of records. Pieces are
   SentencePiece's with U+2581 already turned into ' '; <0xXX> pieces are byte fallbacks, and
   ids 0, 1, 2 are <unk>, <s> (BOS), </s> (EOS). */
static distill_tokenizer *distill__tk_load_llama(const char *path, const unsigned char *d,
                                                 size_t size, distill_error *err) {
    distill_tokenizer *t;
    size_t off = 4, cap = 0;
    int32_t maxlen, n = 0;
    if (size < 4) {
        distill__err(err, "%s: not a tokenizer (%zu bytes: too short for any supported format)", path, size);
        return NULL;
    }
    memcpy(&maxlen, d, 4);
    if (maxlen <= 0 || maxlen > 65536) {
        distill__err(err, "%s: not a supported tokenizer: as llama2.c tokenizer.bin its "
                     "max_token_length would be %d", path, (int)maxlen);
        return NULL;
    }
    t = distill__tk_new(DISTILL__KIND_LLAMA, DISTILL_PATTERN_NONE);
    if (!t) { distill__err(err, "%s: out of memory", path); return NULL; }
    while (off < size) {
        float score;
        int32_t len;
        if (size - off < 8) {
            distill__err(err, "%s: byte offset %zu: truncated record header of token %d", path, off, (int)n);
            goto fail;
        }
        memcpy(&score, d + off, 4);
        memcpy(&len, d + off + 4, 4);
        off += 8;
        if (len < 0 || len > maxlen || (size_t)len > size - off) {
            distill__err(err, "%s: byte offset %zu: token %d has length %d (max_token_length %d, "
                         "%zu bytes left)", path, off - 4, (int)n, (int)len, (int)maxlen, size - off);
            goto fail;
        }
        if (score != score) {
            distill__err(err, "%s: byte offset %zu: token %d has a NaN score", path, off - 8, (int)n);
            goto fail;
        }
        if (n >= (1 << 24)) { distill__err(err, "%s: more than 16M tokens", path); goto fail; }
        if (distill__tk_set(t, n, d + off, (size_t)len, DISTILL__TK_PLAIN)) goto oom;
        if ((size_t)n >= cap) {
            size_t nc = cap ? cap * 2 : 1024;
            if (distill__tk_grow((void **)&t->scores, cap, nc, sizeof(float)) ||
                distill__tk_grow((void **)&t->byteval, cap, nc, sizeof(int16_t)))
                goto oom;
            cap = nc;
        }
        t->scores[n] = score;
        t->byteval[n] = -1;
        if (len == 6 && !memcmp(d + off, "<0x", 3) && d[off + 5] == '>' &&
            isxdigit(d[off + 3]) && isxdigit(d[off + 4])) {
            char hex[3];
            int b;
            hex[0] = (char)d[off + 3]; hex[1] = (char)d[off + 4]; hex[2] = 0;
            b = (int)strtol(hex, NULL, 16);
            t->byteval[n] = (int16_t)b;
            if (t->byte_id[b] < 0) t->byte_id[b] = n;
        }
        off += (size_t)len;
        n++;
    }
    if (n < 3) { distill__err(err, "%s: only %d tokens", path, (int)n); goto fail; }
    {   /* <unk> <s> </s> are control tokens: never produced from text unless allowed */
        int32_t i;
        for (i = 0; i < 3; i++)
            if (t->tok_len[i] >= 3 && t->pool[t->tok_off[i]] == '<' &&
                t->pool[t->tok_off[i] + t->tok_len[i] - 1] == '>') {
                t->tok_flag[i] = DISTILL__TK_SPECIAL;
                if (distill__tk_grow((void **)&t->special_ids, (size_t)t->n_special,
                                     (size_t)t->n_special + 1, 4))
                    goto oom;
                t->special_ids[t->n_special++] = i;
                t->special_cap = t->n_special;
            }
    }
    t->bos_id = 1;
    t->eos_id = 2;
    if (distill__tk_finalize(t)) goto oom;
    t->space_id = distill__tk_bytes_id(t, " ", 1);
    return t;
oom:
    distill__err(err, "%s: out of memory", path);
fail:
    distill_tokenizer_free(t);
    return NULL;
}

/* ---- Files: Hugging Face tokenizer.json, GPT-2 vocab.json + merges.txt --------------------- */
/* These store tokens as text through GPT-2's byte-to-unicode map: every byte becomes a printable
   character, the 188 printable ones ('!'..'~', '\xA1'..'\xAC', '\xAE'..'\xFF') as themselves,
   the other 68 (controls, space, DEL, NBSP, soft hyphen) as U+0100, U+0101, ... in byte order.
   So ' ' is 'Ġ' (U+0120) and '\n' is 'Ċ' (U+010A). Decoding a token string maps back. */
static int distill__tk_gpt2_printable(int b) {
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

/* Map a token string to bytes (out has room for len bytes); -1 if a character is outside the
   map. */
static long distill__tk_gpt2_decode(const char *s, size_t len, unsigned char *out) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    long n = 0;
    while (i < len) {
        uint32_t cp;
        size_t k = distill__tk_utf8(p + i, len - i, &cp);
        if (cp < 256 && distill__tk_gpt2_printable((int)cp)) out[n++] = (unsigned char)cp;
        else if (cp >= 256 && cp < 256 + 68) {
            int b, idx = 0;        /* the (cp - 256)-th non-printable byte */
            for (b = 0; b < 256; b++)
                if (!distill__tk_gpt2_printable(b) && idx++ == (int)(cp - 256)) break;
            out[n++] = (unsigned char)b;
        } else return -1;
        i += k;
    }
    return n;
}

/* Shared by both JSON forms: vocab object -> tokens; then merges (strings "a b" or pairs
   ["a", "b"]) in rank order. `where` names the merges' source for messages. */
static int distill__tk_json_vocab(distill_tokenizer *t, const char *path, const distill_json *vocab,
                                  unsigned char *buf, distill_error *err) {
    size_t i;
    if (!vocab || vocab->type != DISTILL_JSON_OBJECT)
        return distill__err(err, "%s: vocab: expected an object of token -> id", path);
    if (vocab->len > (1u << 24))
        return distill__err(err, "%s:%d: vocab: %zu tokens is more than 16M", path, vocab->line, vocab->len);
    for (i = 0; i < vocab->len; i++) {
        const distill_json *v = &vocab->items[i];
        long n;
        if (v->type != DISTILL_JSON_NUMBER || !v->is_int || v->i64 < 0 || v->i64 >= (int64_t)vocab->len)
            return distill__err(err, "%s:%d:%d: vocab: id of token '%s' is not an integer in 0..%zu "
                                "(ids must be contiguous)", path, v->line, v->col, vocab->keys[i], vocab->len - 1);
        if (v->i64 < t->n_vocab && t->tok_flag[v->i64])
            return distill__err(err, "%s:%d:%d: vocab: id %d used twice", path, v->line, v->col,
                                (int)v->i64);
        if (vocab->key_lens[i] == 0)
            return distill__err(err, "%s:%d:%d: vocab: empty token (id %d)", path, v->line, v->col, (int)v->i64);
        n = distill__tk_gpt2_decode(vocab->keys[i], vocab->key_lens[i], buf);
        if (n < 0)       /* not byte-level text: keep its UTF-8 bytes as they are */
            n = (long)vocab->key_lens[i], memcpy(buf, vocab->keys[i], (size_t)n);
        if (distill__tk_set(t, (int32_t)v->i64, buf, (size_t)n, n == 1 ? DISTILL__TK_BYTE : DISTILL__TK_PLAIN))
            return distill__err(err, "%s: out of memory", path);
    }
    return 0;
}

static int distill__tk_merge_strings(distill_tokenizer *t, const char *path, int line,
                                     const char *a, size_t la, const char *b, size_t lb,
                                     unsigned char *buf, distill_error *err) {
    long na = distill__tk_gpt2_decode(a, la, buf), nb;
    int32_t ia, ib, ir;
    int rc;
    if (na < 0) return distill__err(err, "%s:%d: merge: '%.*s' is not byte-level text", path, line, (int)la, a);
    ia = distill__tk_bytes_id(t, buf, (size_t)na);
    nb = distill__tk_gpt2_decode(b, lb, buf + na);
    if (nb < 0) return distill__err(err, "%s:%d: merge: '%.*s' is not byte-level text", path, line, (int)lb, b);
    ib = distill__tk_bytes_id(t, buf + na, (size_t)nb);
    ir = distill__tk_bytes_id(t, buf, (size_t)(na + nb));
    if (ia < 0 || ib < 0 || ir < 0)
        return distill__err(err, "%s:%d: merge '%.*s %.*s': %s is not in the vocabulary", path, line,
                            (int)la, a, (int)lb, b, ia < 0 ? "left token" : ib < 0 ? "right token" : "the merged token");
    rc = distill__tk_add_merge(t, ia, ib, ir);
    if (rc == -2) return distill__err(err, "%s:%d: duplicate merge '%.*s %.*s'", path, line, (int)la, a, (int)lb, b);
    if (rc) return distill__err(err, "%s: out of memory", path);
    if (t->tok_flag[ir] == DISTILL__TK_PLAIN) t->tok_flag[ir] = DISTILL__TK_MERGE;
    return 0;
}

/* After the merges: tokens that are neither single bytes nor made by a merge. */
static void distill__tk_mark_unreachable(distill_tokenizer *t, int flag) {
    int32_t id;
    for (id = 0; id < t->n_vocab; id++)
        if (t->tok_flag[id] == DISTILL__TK_PLAIN) t->tok_flag[id] = (unsigned char)flag;
}

static distill_tokenizer *distill__tk_load_vocab_merges(const char *path, const char *data,
                                                        size_t size, const char *merges_path,
                                                        distill_error *err) {
    distill_json *root = distill_json_parse(data, size, path, 1, err);
    distill_tokenizer *t = NULL;
    char *mtext = NULL;
    unsigned char *buf = NULL;
    size_t msize = 0, maxkey = 0, i;
    distill__tk_lines L;
    const char *s, *e;
    int32_t id;
    if (!root) return NULL;
    if (root->type != DISTILL_JSON_OBJECT) {
        distill__err(err, "%s: expected a JSON object (vocab.json) or a tokenizer.json", path);
        goto fail;
    }
    mtext = (char *)distill_read_file(merges_path, &msize, err);
    if (!mtext) goto fail;
    for (i = 0; i < root->len; i++) if (root->key_lens[i] > maxkey) maxkey = root->key_lens[i];
    buf = (unsigned char *)DISTILL_MALLOC(maxkey * 2 + msize + 16);
    t = distill__tk_new(DISTILL__KIND_BPE, DISTILL_PATTERN_GPT2);
    if (!buf || !t) { distill__err(err, "%s: out of memory", path); goto fail; }
    if (distill__tk_json_vocab(t, path, root, buf, err)) goto fail;
    if (distill__tk_finalize(t)) { distill__err(err, "%s: out of memory", path); goto fail; }
    L.p = mtext; L.end = mtext + msize; L.path = merges_path; L.line = 0;
    while (distill__tk_next_line(&L, &s, &e)) {
        const char *sp;
        if (s == e || (L.line == 1 && e - s >= 8 && !memcmp(s, "#version", 8))) continue;
        sp = (const char *)memchr(s, ' ', (size_t)(e - s));
        if (!sp || sp == s || sp + 1 == e || memchr(sp + 1, ' ', (size_t)(e - sp - 1))) {
            distill__err(err, "%s:%d: expected 'left right'", merges_path, L.line);
            goto fail;
        }
        if (distill__tk_merge_strings(t, merges_path, L.line, s, (size_t)(sp - s), sp + 1,
                                      (size_t)(e - sp - 1), buf, err))
            goto fail;
    }
    /* vocab.json has no notion of special tokens: the unreachable ones (GPT-2's <|endoftext|>)
       are the special ones */
    distill__tk_mark_unreachable(t, DISTILL__TK_PLAIN);
    for (id = 0; id < t->n_vocab; id++)
        if (t->tok_flag[id] == DISTILL__TK_PLAIN) {
            t->tok_flag[id] = DISTILL__TK_NONE;
            if (distill__tk_add_special_raw(t, id, t->pool + t->tok_off[id], t->tok_len[id])) {
                distill__err(err, "%s: out of memory", path);
                goto fail;
            }
        }
    for (id = 0; id < t->n_vocab; id++)
        if (!t->tok_flag[id]) {
            distill__err(err, "%s: ids are not contiguous: id %d is missing", path, (int)id);
            goto fail;
        }
    if (distill__tk_finalize(t)) { distill__err(err, "%s: out of memory", path); goto fail; }
    distill_json_free(root);
    DISTILL_FREE(mtext);
    DISTILL_FREE(buf);
    return t;
fail:
    distill_json_free(root);
    DISTILL_FREE(mtext);
    DISTILL_FREE(buf);
    distill_tokenizer_free(t);
    return NULL;
}

/* The Split regexes we can run, as tokenizer.json spells them (by pattern; GPT-2's is the
   ByteLevel pre-tokenizer's own, use_regex: true). */
static const char *const distill__tk_regex[4] = {
    NULL,
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"};

static int distill__tk_pattern_of_regex(const char *re) {
    int p;
    for (p = DISTILL_PATTERN_GPT2; p <= DISTILL_PATTERN_QWEN2; p++)
        if (!strcmp(re, distill__tk_regex[p])) return p;
    return -1;
}

static int distill__tk_json_true(const distill_json *v) { return v && v->type == DISTILL_JSON_TRUE; }

/* pre_tokenizer -> pattern, or -1 with an error naming what is not supported. */
static int distill__tk_json_pretok(const char *path, const distill_json *pt, distill_error *err) {
    const distill_json *type;
    if (!pt || pt->type == DISTILL_JSON_NULL) return DISTILL_PATTERN_NONE;
    type = distill_json_get(pt, "type");
    if (!type || type->type != DISTILL_JSON_STRING)
        return distill__err(err, "%s:%d: pre_tokenizer: missing 'type'", path, pt->line);
    if (!strcmp(type->str, "ByteLevel")) {
        if (distill__tk_json_true(distill_json_get(pt, "add_prefix_space")))
            return distill__err(err, "%s:%d: pre_tokenizer ByteLevel with add_prefix_space=true is "
                                "not supported", path, pt->line);
        return distill__tk_json_true(distill_json_get(pt, "use_regex")) || !distill_json_get(pt, "use_regex")
                   ? DISTILL_PATTERN_GPT2 : DISTILL_PATTERN_NONE;
    }
    if (!strcmp(type->str, "Split")) {
        const distill_json *re = distill_json_path(pt, "pattern.Regex");
        const distill_json *beh = distill_json_get(pt, "behavior");
        int p;
        if (!re || re->type != DISTILL_JSON_STRING)
            return distill__err(err, "%s:%d: pre_tokenizer Split: only 'pattern': {'Regex': ...} is "
                                "supported", path, pt->line);
        p = distill__tk_pattern_of_regex(re->str);
        if (p < 0)
            return distill__err(err, "%s:%d: pre_tokenizer Split: unsupported regex '%.200s' (supported: "
                                "the GPT-2, cl100k and Qwen2 patterns)", path, re->line, re->str);
        if (!beh || beh->type != DISTILL_JSON_STRING || strcmp(beh->str, "Isolated"))
            return distill__err(err, "%s:%d: pre_tokenizer Split: only behavior 'Isolated' is supported",
                                path, pt->line);
        return p;
    }
    if (!strcmp(type->str, "Sequence")) {
        const distill_json *list = distill_json_get(pt, "pretokenizers");
        int pattern = DISTILL_PATTERN_NONE;
        size_t i;
        if (!list || list->type != DISTILL_JSON_ARRAY)
            return distill__err(err, "%s:%d: pre_tokenizer Sequence: missing 'pretokenizers'", path, pt->line);
        for (i = 0; i < list->len; i++) {
            const distill_json *item = &list->items[i];
            const distill_json *ty = distill_json_get(item, "type");
            int p;
            /* a ByteLevel without regex only maps bytes: nothing to split */
            if (ty && ty->type == DISTILL_JSON_STRING && !strcmp(ty->str, "ByteLevel") &&
                !distill__tk_json_true(distill_json_get(item, "use_regex")) &&
                !distill__tk_json_true(distill_json_get(item, "add_prefix_space")))
                continue;
            p = distill__tk_json_pretok(path, item, err);
            if (p < 0) return -1;
            if (p != DISTILL_PATTERN_NONE && pattern != DISTILL_PATTERN_NONE)
                return distill__err(err, "%s:%d: pre_tokenizer Sequence: two splitting steps are not "
                                    "supported", path, item->line);
            if (p != DISTILL_PATTERN_NONE) pattern = p;
        }
        return pattern;
    }
    return distill__err(err, "%s:%d: pre_tokenizer type '%s' is not supported (ByteLevel, Split, "
                        "Sequence)", path, pt->line, type->str);
}

static distill_tokenizer *distill__tk_load_hf(const char *path, const distill_json *root,
                                              distill_error *err) {
    const distill_json *model = distill_json_get(root, "model"), *v, *merges, *added, *vocab;
    distill_tokenizer *t = NULL;
    unsigned char *buf = NULL;
    size_t i, maxkey = 0;
    int64_t max_id;
    int pattern, nfc = 0;
    int32_t id;
    if (!model || model->type != DISTILL_JSON_OBJECT) {
        distill__err(err, "%s: field 'model': expected an object", path);
        return NULL;
    }
    v = distill_json_get(model, "type");
    if (v && (v->type != DISTILL_JSON_STRING || strcmp(v->str, "BPE"))) {
        distill__err(err, "%s:%d: field 'model.type': '%s' is not supported (only BPE)", path, v->line,
                     v->type == DISTILL_JSON_STRING ? v->str : "?");
        return NULL;
    }
    if (distill__tk_json_true(distill_json_get(model, "byte_fallback"))) {
        distill__err(err, "%s: field 'model.byte_fallback': true is not supported (byte-level BPE only)", path);
        return NULL;
    }
    v = distill_json_get(model, "continuing_subword_prefix");
    if (v && v->type == DISTILL_JSON_STRING && v->len) {
        distill__err(err, "%s:%d: field 'model.continuing_subword_prefix' is not supported", path, v->line);
        return NULL;
    }
    v = distill_json_get(model, "end_of_word_suffix");
    if (v && v->type == DISTILL_JSON_STRING && v->len) {
        distill__err(err, "%s:%d: field 'model.end_of_word_suffix' is not supported", path, v->line);
        return NULL;
    }
    v = distill_json_get(root, "normalizer");
    if (v && v->type != DISTILL_JSON_NULL) {
        const distill_json *ty = distill_json_get(v, "type");
        if (!ty || ty->type != DISTILL_JSON_STRING || strcmp(ty->str, "NFC")) {
            distill__err(err, "%s:%d: field 'normalizer': '%s' is not supported (null, or NFC with text "
                         "that is already NFC)", path, v->line, ty && ty->type == DISTILL_JSON_STRING ? ty->str : "?");
            return NULL;
        }
        nfc = 1;
    }
    pattern = distill__tk_json_pretok(path, distill_json_get(root, "pre_tokenizer"), err);
    if (pattern < 0) return NULL;
    vocab = distill_json_get(model, "vocab");
    merges = distill_json_get(model, "merges");
    added = distill_json_get(root, "added_tokens");
    if (!vocab || vocab->type != DISTILL_JSON_OBJECT) {
        distill__err(err, "%s: field 'model.vocab': expected an object", path);
        return NULL;
    }
    if (!merges || merges->type != DISTILL_JSON_ARRAY) {
        distill__err(err, "%s: field 'model.merges': expected an array", path);
        return NULL;
    }
    if (added && added->type != DISTILL_JSON_ARRAY && added->type != DISTILL_JSON_NULL) {
        distill__err(err, "%s:%d: field 'added_tokens': expected an array", path, added->line);
        return NULL;
    }
    for (i = 0; i < vocab->len; i++) if (vocab->key_lens[i] > maxkey) maxkey = vocab->key_lens[i];
    for (i = 0; i < merges->len; i++)
        if (merges->items[i].type == DISTILL_JSON_STRING && merges->items[i].len > maxkey)
            maxkey = merges->items[i].len;
        else if (merges->items[i].type == DISTILL_JSON_ARRAY && merges->items[i].len == 2) {
            size_t la = merges->items[i].items[0].len + merges->items[i].items[1].len;
            if (la > maxkey) maxkey = la;
        }
    if (added && added->type == DISTILL_JSON_ARRAY)
        for (i = 0; i < added->len; i++) {
            const distill_json *c = distill_json_get(&added->items[i], "content");
            if (c && c->type == DISTILL_JSON_STRING && c->len > maxkey) maxkey = c->len;
        }
    /* ids must be contiguous, so none can reach the number of entries */
    max_id = (int64_t)vocab->len + (added && added->type == DISTILL_JSON_ARRAY ? (int64_t)added->len : 0);
    if (max_id > (1 << 24)) max_id = 1 << 24;
    buf = (unsigned char *)DISTILL_MALLOC(maxkey * 2 + 16);
    t = distill__tk_new(DISTILL__KIND_BPE, pattern);
    if (!buf || !t) { distill__err(err, "%s: out of memory", path); goto fail; }
    v = distill_json_get(model, "ignore_merges");
    t->whole_first = distill__tk_json_true(v);
    t->nfc = nfc;
    /* added tokens first, so their ids are taken before the vocab loader sees them */
    if (added && added->type == DISTILL_JSON_ARRAY)
        for (i = 0; i < added->len; i++) {
            const distill_json *a = &added->items[i];
            const distill_json *aid = distill_json_get(a, "id"), *c = distill_json_get(a, "content");
            if (!aid || aid->type != DISTILL_JSON_NUMBER || !aid->is_int || aid->i64 < 0 || aid->i64 >= max_id ||
                !c || c->type != DISTILL_JSON_STRING || c->len == 0) {
                distill__err(err, "%s:%d: added_tokens[%zu]: expected 'id' (integer) and 'content' "
                             "(non-empty string)", path, a->line, i);
                goto fail;
            }
            if (aid->i64 < t->n_vocab && t->tok_flag[aid->i64]) {
                distill__err(err, "%s:%d: added_tokens[%zu]: id %d used twice", path, a->line, i, (int)aid->i64);
                goto fail;
            }
            {   /* "special": false (Qwen's <think>, <tool_call>): matched in any text, not special */
                const distill_json *sp = distill_json_get(a, "special");
                int flag = sp && sp->type == DISTILL_JSON_FALSE ? DISTILL__TK_ADDED : DISTILL__TK_SPECIAL;
                if (distill__tk_add_added_raw(t, (int32_t)aid->i64, c->str, c->len, flag)) {
                    distill__err(err, "%s: out of memory", path);
                    goto fail;
                }
            }
        }
    /* the vocab repeats the added tokens: skip those entries */
    for (i = 0; i < vocab->len; i++) {
        const distill_json *x = &vocab->items[i];
        long n;
        if (x->type != DISTILL_JSON_NUMBER || !x->is_int || x->i64 < 0 || x->i64 >= max_id) {
            distill__err(err, "%s:%d:%d: field 'model.vocab': id of '%s' is not an integer in 0..%ld "
                         "(ids must be contiguous)", path, x->line, x->col, vocab->keys[i], (long)max_id - 1);
            goto fail;
        }
        if (x->i64 < t->n_vocab && (t->tok_flag[x->i64] == DISTILL__TK_SPECIAL || t->tok_flag[x->i64] == DISTILL__TK_ADDED)) continue;
        if (x->i64 < t->n_vocab && t->tok_flag[x->i64]) {
            distill__err(err, "%s:%d:%d: field 'model.vocab': id %d used twice", path, x->line, x->col,
                         (int)x->i64);
            goto fail;
        }
        n = distill__tk_gpt2_decode(vocab->keys[i], vocab->key_lens[i], buf);
        if (n == 0) {
            distill__err(err, "%s:%d:%d: field 'model.vocab': empty token (id %d)", path, x->line, x->col, (int)x->i64);
            goto fail;
        }
        if (n < 0) {
            distill__err(err, "%s:%d:%d: field 'model.vocab': token '%s' is not byte-level text", path,
                         x->line, x->col, vocab->keys[i]);
            goto fail;
        }
        if (distill__tk_set(t, (int32_t)x->i64, buf, (size_t)n, n == 1 ? DISTILL__TK_BYTE : DISTILL__TK_PLAIN)) {
            distill__err(err, "%s: out of memory", path);
            goto fail;
        }
    }
    if (distill__tk_finalize(t)) { distill__err(err, "%s: out of memory", path); goto fail; }
    for (i = 0; i < merges->len; i++) {
        const distill_json *m = &merges->items[i];
        if (m->type == DISTILL_JSON_STRING) {
            const char *sp = (const char *)memchr(m->str, ' ', m->len);
            if (!sp || sp == m->str || sp + 1 == m->str + m->len || memchr(sp + 1, ' ', m->len - (size_t)(sp + 1 - m->str))) {
                distill__err(err, "%s:%d:%d: model.merges[%zu]: expected 'left right'", path, m->line, m->col, i);
                goto fail;
            }
            if (distill__tk_merge_strings(t, path, m->line, m->str, (size_t)(sp - m->str), sp + 1,
                                          m->len - (size_t)(sp + 1 - m->str), buf, err))
                goto fail;
        } else if (m->type == DISTILL_JSON_ARRAY && m->len == 2 && m->items[0].type == DISTILL_JSON_STRING &&
                   m->items[1].type == DISTILL_JSON_STRING) {
            if (distill__tk_merge_strings(t, path, m->line, m->items[0].str, m->items[0].len, m->items[1].str,
                                          m->items[1].len, buf, err))
                goto fail;
        } else {
            distill__err(err, "%s:%d:%d: model.merges[%zu]: expected \"left right\" or [left, right]", path,
                         m->line, m->col, i);
            goto fail;
        }
    }
    for (id = 0; id < t->n_vocab; id++)
        if (!t->tok_flag[id]) {
            distill__err(err, "%s: ids are not contiguous: id %d is missing", path, (int)id);
            goto fail;
        }
    if (distill__tk_finalize(t)) { distill__err(err, "%s: out of memory", path); goto fail; }
    DISTILL_FREE(buf);
    return t;
fail:
    DISTILL_FREE(buf);
    distill_tokenizer_free(t);
    return NULL;
}

static distill_tokenizer *distill__tk_from_bytes(const char *name, const unsigned char *d, size_t size, distill_error *err) {
    char *copy;
    distill_tokenizer *t;
    if (size >= 17 && !memcmp(d, "distill-tokenizer", 17)) {
        copy = (char *)DISTILL_MALLOC(size + 1);   /* the text loader wants a NUL at the end */
        if (!copy) { distill__err(err, "%s: out of memory", name); return NULL; }
        memcpy(copy, d, size);
        copy[size] = 0;
        t = distill__tk_load_own(name, copy, size, err);
        DISTILL_FREE(copy);
        return t;
    }
    return distill__tk_load_llama(name, d, size, err);
}

DISTILL_API distill_tokenizer *distill_tokenizer_load(const char *path, const char *merges_path,
                                                      distill_error *err) {
    size_t size, i = 0;
    char *data = (char *)distill_read_file(path, &size, err);
    distill_tokenizer *t = NULL;
    if (!data) return NULL;
    while (i < size && (data[i] == ' ' || data[i] == '\n' || data[i] == '\r' || data[i] == '\t')) i++;
    if (size >= 17 && !memcmp(data, "distill-tokenizer", 17)) {
        if (merges_path) distill__err(err, "%s: own-format tokenizer: no merges file expected", path);
        else t = distill__tk_load_own(path, data, size, err);
    } else if (i < size && data[i] == '{') {
        if (merges_path) t = distill__tk_load_vocab_merges(path, data, size, merges_path, err);
        else {
            distill_json *root = distill_json_parse(data, size, path, 1, err);
            if (root) {
                if (root->type == DISTILL_JSON_OBJECT && distill_json_get(root, "model"))
                    t = distill__tk_load_hf(path, root, err);
                else
                    distill__err(err, "%s: a JSON file without 'model': if this is a GPT-2 vocab.json, "
                                 "give its merges.txt too", path);
                distill_json_free(root);
            }
        }
    } else if (merges_path) {
        distill__err(err, "%s: expected vocab.json (a JSON object) with merges file %s", path, merges_path);
    } else {
        t = distill__tk_load_llama(path, (const unsigned char *)data, size, err);
    }
    DISTILL_FREE(data);
    return t;
}
/* ---- Files: writing Hugging Face tokenizer.json ------------------------------------------ */
/* Token bytes as text through GPT-2's byte-to-unicode map (the inverse of
   distill__tk_gpt2_decode): printable bytes stay, the others become U+0100 + their rank. out
   has room for 2n bytes; returns the length written. */
static size_t distill__tk_gpt2_encode(const unsigned char *p, size_t n, unsigned char *out) {
    size_t i, o = 0;
    for (i = 0; i < n; i++) {
        int b = p[i], cp = b, k;
        if (!distill__tk_gpt2_printable(b))
            for (cp = 256, k = 0; k < b; k++) cp += !distill__tk_gpt2_printable(k);
        if (cp < 0x80) out[o++] = (unsigned char)cp;
        else { out[o++] = (unsigned char)(0xC0 | (cp >> 6)); out[o++] = (unsigned char)(0x80 | (cp & 0x3F)); }
    }
    return o;
}

/* What tokenizer.json cannot hold, or 0. Its vocab maps token text to one id, and the merges
   name their result by text: every vocab token must be the lowest id with its bytes. */
static int distill__tk_hf_check(const distill_tokenizer *t, const char *path, distill_error *err) {
    int32_t id;
    if (t->kind != DISTILL__KIND_BPE)
        return distill__err(err, "%s: a llama2.c tokenizer (SentencePiece pieces with scores) has no "
                            "byte-level tokenizer.json form", path);
    for (id = 0; id < t->n_vocab; id++) {
        int f = t->tok_flag[id];
        const unsigned char *p = (const unsigned char *)t->pool + t->tok_off[id];
        if (f == DISTILL__TK_NONE)
            return distill__err(err, "%s: token id %d is undefined: tokenizer.json needs contiguous ids", path, (int)id);
        if (t->tok_len[id] == 0 || t->tok_len[id] > 65536)
            return distill__err(err, "%s: token %d is %s", path, (int)id, t->tok_len[id] ? "over 64 KB" : "empty");
        if (f == DISTILL__TK_SPECIAL || f == DISTILL__TK_ADDED) {
            if (!distill__tk_valid_utf8(p, t->tok_len[id]))
                return distill__err(err, "%s: added token %d is not UTF-8 text", path, (int)id);
        } else if (distill__tk_bytes_id(t, p, t->tok_len[id]) != id) {
            return distill__err(err, "%s: tokens %d and %d have the same bytes: tokenizer.json maps a token's "
                                "text to one id", path, (int)distill__tk_bytes_id(t, p, t->tok_len[id]), (int)id);
        }
    }
    return 0;
}

/* buf: room for 4 * max_piece + 2 bytes (a merge's two sides, mapped) */
static void distill__tk_write_hf(const distill_tokenizer *t, FILE *f, unsigned char *buf) {
    static const char *const bl = "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": false, "
                                  "\"use_regex\": ";
    int32_t id, r;
    int first = 1;
    fputs("{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n  \"added_tokens\": [", f);
    for (id = 0; id < t->n_vocab; id++) {   /* in id order, as the format has them */
        int fl = t->tok_flag[id];
        if (fl != DISTILL__TK_SPECIAL && fl != DISTILL__TK_ADDED) continue;
        fprintf(f, "%s\n    {\"id\": %d, \"content\": ", first ? "" : ",", (int)id);
        distill_json_write_string(f, t->pool + t->tok_off[id], t->tok_len[id]);
        fprintf(f, ", \"single_word\": false, \"lstrip\": false, \"rstrip\": false, \"normalized\": false, "
                   "\"special\": %s}", fl == DISTILL__TK_SPECIAL ? "true" : "false");
        first = 0;
    }
    fprintf(f, "%s],\n  \"normalizer\": %s,\n  \"pre_tokenizer\": ", first ? "" : "\n  ",
            t->nfc ? "{\"type\": \"NFC\"}" : "null");
    /* GPT-2's split is ByteLevel's own regex; the others are a Split before a plain ByteLevel */
    if (t->pattern == DISTILL_PATTERN_NONE || t->pattern == DISTILL_PATTERN_GPT2)
        fprintf(f, "%s%s}", bl, t->pattern == DISTILL_PATTERN_GPT2 ? "true" : "false");
    else {
        fputs("{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": ", f);
        distill_json_write_string(f, distill__tk_regex[t->pattern], strlen(distill__tk_regex[t->pattern]));
        fprintf(f, "}, \"behavior\": \"Isolated\", \"invert\": false}, %sfalse}]}", bl);
    }
    fprintf(f, ",\n  \"post_processor\": null,\n  \"decoder\": %sfalse},\n  \"model\": {\"type\": \"BPE\", "
               "\"dropout\": null, \"unk_token\": null, \"continuing_subword_prefix\": null, \"end_of_word_suffix\": null, "
               "\"fuse_unk\": false, \"byte_fallback\": false, \"ignore_merges\": %s,\n    \"vocab\": {", bl,
            t->whole_first ? "true" : "false");
    first = 1;
    for (id = 0; id < t->n_vocab; id++) {   /* added tokens live in added_tokens only */
        int fl = t->tok_flag[id];
        if (fl == DISTILL__TK_SPECIAL || fl == DISTILL__TK_ADDED) continue;
        fputs(first ? "\n      " : ",\n      ", f);
        distill_json_write_string(f, (const char *)buf,
                                  distill__tk_gpt2_encode((const unsigned char *)t->pool + t->tok_off[id], t->tok_len[id], buf));
        fprintf(f, ": %d", (int)id);
        first = 0;
    }
    fputs("\n    },\n    \"merges\": [", f);
    for (r = 0; r < t->n_merges; r++) {   /* "left right" in rank order: mapped text has no space */
        int32_t a = t->m_left[r], b = t->m_right[r];
        size_t n = distill__tk_gpt2_encode((const unsigned char *)t->pool + t->tok_off[a], t->tok_len[a], buf);
        buf[n++] = ' ';
        n += distill__tk_gpt2_encode((const unsigned char *)t->pool + t->tok_off[b], t->tok_len[b], buf + n);
        fputs(r ? ",\n      " : "\n      ", f);
        distill_json_write_string(f, (const char *)buf, n);
    }
    fputs("\n    ]\n  }\n}\n", f);
}

DISTILL_API int distill_tokenizer_save_hf(const distill_tokenizer *t, const char *path, distill_error *err) {
    distill_atomic_file af;
    unsigned char *buf;
    if (distill__tk_hf_check(t, path, err)) return -1;
    if (!(buf = (unsigned char *)DISTILL_MALLOC(4 * (size_t)t->max_piece + 8)))
        return distill__err(err, "%s: out of memory", path);
    if (distill_atomic_open(&af, path, err)) { DISTILL_FREE(buf); return -1; }
    distill__tk_write_hf(t, af.f, buf);
    DISTILL_FREE(buf);
    if (ferror(af.f)) {
        int e = errno;   /* of the failed write; abort's fclose and remove may change it */
        distill_atomic_abort(&af);
        return distill__err(err, "%s: write error: %s", path, strerror(e));
    }
    return distill_atomic_commit(&af, err);
}
/* ===================================================================================== */
/* DATA: schema adapters, filters, chat template, loss weights,       */
/* datasets, selection, batches                                                           */
/* ===================================================================================== */

/* ---- a growable byte string for building message contents -------------------------- */
typedef struct distill__data_sb {
    char *s;
    size_t n, cap;
    int oom;
} distill__data_sb;

static void distill__data_sb_put(distill__data_sb *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->cap - b->n < n + 1) {
        size_t nc = b->cap ? b->cap : 256;
        char *ns;
        while (nc - b->n < n + 1) {
            if (nc > SIZE_MAX / 2) { b->oom = 1; return; }
            nc *= 2;
        }
        ns = (char *)DISTILL_REALLOC(b->s, nc);
        if (!ns) { b->oom = 1; return; }
        b->s = ns;
        b->cap = nc;
    }
    if (n) memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}
static void distill__data_sb_puts(distill__data_sb *b, const char *s) { if (s) distill__data_sb_put(b, s, strlen(s)); }

/* memmem is not C99 */
static const char *distill__data_find(const char *h, size_t hn, const char *needle) {
    size_t nn = strlen(needle), i;
    if (nn == 0 || hn < nn) return NULL;
    for (i = 0; i + nn <= hn; i++) {
        const char *p = (const char *)memchr(h + i, needle[0], hn - nn + 1 - i);
        if (!p) return NULL;
        if (memcmp(p, needle, nn) == 0) return p;
        i = (size_t)(p - h);
    }
    return NULL;
}
static const char *distill__data_find_last(const char *h, size_t hn, const char *needle) {
    const char *last = NULL, *p = h;
    size_t nn = strlen(needle);
    while ((p = distill__data_find(p, hn - (size_t)(p - h), needle)) != NULL) { last = p; p += nn; }
    return last;
}

/* ---- conversations ------------------------------------------------------------------------ */
static int distill__data_conv_push(distill_conv *c, distill_role role, const char *s, size_t n, float w) {
    if (c->n == c->cap) {
        int nc = c->cap ? c->cap * 2 : 8;
        distill_message *nm = (distill_message *)DISTILL_REALLOC(c->msgs, (size_t)nc * sizeof *nm);
        if (!nm) return -1;
        c->msgs = nm;
        c->cap = nc;
    }
    c->msgs[c->n].role = role;
    c->msgs[c->n].content = s;
    c->msgs[c->n].len = n;
    c->msgs[c->n].loss_weight = w;
    c->n++;
    return 0;
}

/* Take ownership of a malloc'ed string. */
static int distill__data_conv_own(distill_conv *c, char *s) {
    if (c->n_owned == c->cap_owned) {
        int nc = c->cap_owned ? c->cap_owned * 2 : 4;
        char **no = (char **)DISTILL_REALLOC(c->owned, (size_t)nc * sizeof *no);
        if (!no) return -1;
        c->owned = no;
        c->cap_owned = nc;
    }
    c->owned[c->n_owned++] = s;
    return 0;
}

DISTILL_API int distill_conv_add(distill_conv *c, distill_role role, const char *content, size_t len,
                                 float loss_weight) {
    char *s = (char *)DISTILL_MALLOC(len + 1);
    if (!s) return -1;
    if (len) memcpy(s, content, len);
    s[len] = 0;
    if (distill__data_conv_own(c, s) != 0) { DISTILL_FREE(s); return -1; }
    return distill__data_conv_push(c, role, s, len, loss_weight);
}

DISTILL_API void distill_conv_free(distill_conv *c) {
    int i;
    if (!c) return;
    for (i = 0; i < c->n_owned; i++) DISTILL_FREE(c->owned[i]);
    DISTILL_FREE(c->owned);
    DISTILL_FREE(c->msgs);
    memset(c, 0, sizeof *c);
}

/* ---- formats --------------------------------------------------------------------------------- */
static const char *const distill__data_format_names[] = {
    "auto", "messages", "conversations", "prompt-completion", "alpaca", "text", "mapped"
};

DISTILL_API const char *distill_data_format_name(distill_data_format f) {
    if ((int)f < 0 || (int)f > (int)DISTILL_FORMAT_MAPPED) return "?";
    return distill__data_format_names[f];
}

DISTILL_API int distill_data_format_parse(const char *name, distill_data_format *out) {
    int i;
    for (i = 0; i <= (int)DISTILL_FORMAT_MAPPED; i++)
        if (!strcmp(name, distill__data_format_names[i])) { *out = (distill_data_format)i; return 0; }
    return -1;
}

DISTILL_API distill_data_options distill_data_options_default(void) {
    distill_data_options o;
    memset(&o, 0, sizeof o);
    o.format = DISTILL_FORMAT_AUTO;
    o.loss = DISTILL_LOSS_ASSISTANT;
    o.policy = DISTILL_POLICY_STRICT;
    return o;
}

/* ---- schema adapters ------------------------------------------------------------------------ */
/* Errors point at a JSON value (its line and column) and name the field by its path. */
static int distill__data_field_err(distill_error *err, const char *name, const distill_json *at,
                              const char *field, const char *fmt, ...) DISTILL__PRINTF(5, 6);
static int distill__data_field_err(distill_error *err, const char *name, const distill_json *at,
                              const char *field, const char *fmt, ...) {
    if (err) {
        char msg[320];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        if (field)
            distill__err(err, "%s:%d:%d: field '%s': %s", name ? name : "<data>", at ? at->line : 0,
                         at ? at->col : 0, field, msg);
        else
            distill__err(err, "%s:%d:%d: %s", name ? name : "<data>", at ? at->line : 0, at ? at->col : 0, msg);
    }
    return -1;
}

typedef struct distill__data_adapt {
    const distill_data_options *opt;
    const char *name;
    const distill_json *row;
    distill_error *err;
    distill_conv *conv;
} distill__data_adapt;

/* The text of a content value: a string, or a list of parts concatenated: strings,
   {"type": "text", "text": ...} (OpenAI) or {"type": "text", "value": ...} (LLaMA-Factory).
   Reasoning parts ({"type": "reasoning"|"thinking", "reasoning"|"thinking"|"text"|"value": ...})
   go to *think (NULL: they are an error, e.g. outside assistant turns). Returns pointers into
   the JSON document, or strings the conversation owns. */
static int distill__data_content(distill__data_adapt *a, const distill_json *v, const char *field,
                            const char **out, size_t *out_len, const char **think, size_t *think_n) {
    static const char *const text_keys[] = {"text", "value"};
    static const char *const think_keys[] = {"reasoning", "thinking", "text", "value"};
    size_t i, k;
    distill__data_sb sb, tb;
    if (think) { *think = NULL; *think_n = 0; }
    if (!v) return distill__data_field_err(a->err, a->name, a->row, field, "missing");
    if (v->type == DISTILL_JSON_STRING) { *out = v->str; *out_len = v->len; return 0; }
    if (v->type != DISTILL_JSON_ARRAY)
        return distill__data_field_err(a->err, a->name, v, field, "expected a string or a list of parts, got %s",
                                  distill_json_type_name(v->type));
    memset(&sb, 0, sizeof sb);
    memset(&tb, 0, sizeof tb);
    distill__data_sb_put(&sb, "", 0);
    for (i = 0; i < v->len; i++) {
        const distill_json *p = &v->items[i], *t, *x = NULL;
        int is_think;
        if (p->type == DISTILL_JSON_STRING) { distill__data_sb_put(&sb, p->str, p->len); continue; }
        t = distill_json_get(p, "type");
        is_think = t && t->type == DISTILL_JSON_STRING && (!strcmp(t->str, "reasoning") || !strcmp(t->str, "thinking"));
        if (p->type != DISTILL_JSON_OBJECT || (t && !is_think && (t->type != DISTILL_JSON_STRING || strcmp(t->str, "text") != 0)) ||
            (is_think && !think)) {
            DISTILL_FREE(sb.s);
            DISTILL_FREE(tb.s);
            return distill__data_field_err(a->err, a->name, p, field, "part %zu: only text parts%s are supported (got %s%s%s)", i,
                                      think ? " and reasoning parts" : "",
                                      t && t->type == DISTILL_JSON_STRING ? "type '" : distill_json_type_name(p->type),
                                      t && t->type == DISTILL_JSON_STRING ? t->str : "",
                                      t && t->type == DISTILL_JSON_STRING ? "'" : "");
        }
        for (k = 0; k < (is_think ? 4u : 2u) && !x; k++) x = distill_json_get(p, is_think ? think_keys[k] : text_keys[k]);
        if (!x || x->type != DISTILL_JSON_STRING) {
            DISTILL_FREE(sb.s);
            DISTILL_FREE(tb.s);
            return distill__data_field_err(a->err, a->name, x ? x : p, field, "part %zu: %s must be a string", i,
                                      is_think ? "'reasoning'/'thinking'/'text'" : "'text' (or 'value')");
        }
        distill__data_sb_put(is_think ? &tb : &sb, x->str, x->len);
    }
    if (sb.oom || tb.oom || distill__data_conv_own(a->conv, sb.s) != 0) {
        DISTILL_FREE(sb.s);
        DISTILL_FREE(tb.s);
        return distill__data_field_err(a->err, a->name, v, field, "out of memory");
    }
    if (tb.s && distill__data_conv_own(a->conv, tb.s) != 0) {   /* sb.s is owned by now */
        DISTILL_FREE(tb.s);
        return distill__data_field_err(a->err, a->name, v, field, "out of memory");
    }
    *out = sb.s;
    *out_len = sb.n;
    if (think && tb.s && tb.n) { *think = tb.s; *think_n = tb.n; }
    return 0;
}

static int distill__data_string_field(distill__data_adapt *a, const distill_json *v, const char *field, int required,
                                 const char **out, size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    if (!v || (!required && v->type == DISTILL_JSON_NULL)) {
        if (required) return distill__data_field_err(a->err, a->name, a->row, field, "missing");
        return 0;
    }
    if (v->type != DISTILL_JSON_STRING)
        return distill__data_field_err(a->err, a->name, v, field, "expected a string, got %s", distill_json_type_name(v->type));
    *out = v->str;
    *out_len = v->len;
    return 0;
}

/* Add a turn. Assistant turns get their reasoning (if any) wrapped as
   "<think>\n" reasoning "\n</think>\n\n" before the answer, and, when asked, other reasoning
   markers rewritten to <think>...</think>. */
static int distill__data_add_turn(distill__data_adapt *a, distill_role role, const char *s, size_t n,
                             const char *think, size_t think_n, float w, const distill_json *at) {
    int need_norm = 0;
    distill__data_sb sb;
    if (role == DISTILL_ROLE_ASSISTANT && a->opt && a->opt->normalize_think &&
        (distill__data_find(s, n, "<|begin_of_thought|>") || distill__data_find(s, n, "<|end_of_thought|>") ||
         distill__data_find(s, n, "<|begin_of_solution|>") || distill__data_find(s, n, "<|end_of_solution|>")))
        need_norm = 1;
    if (!think && !need_norm) {
        if (distill__data_conv_push(a->conv, role, s, n, w) != 0)
            return distill__data_field_err(a->err, a->name, at, NULL, "out of memory");
        return 0;
    }
    memset(&sb, 0, sizeof sb);
    if (think) {
        distill__data_sb_puts(&sb, "<think>\n");
        distill__data_sb_put(&sb, think, think_n);
        distill__data_sb_puts(&sb, "\n</think>\n\n");
    }
    if (!need_norm) {
        distill__data_sb_put(&sb, s, n);
    } else {
        /* OpenThoughts / Bespoke style: <|begin_of_thought|> T <|end_of_thought|>
           <|begin_of_solution|> S <|end_of_solution|>  ->  <think> T </think> S. The solution
           markers go with the whitespace on their inner side. */
        size_t i = 0;
        while (i < n) {
            const char *rest = s + i;
            size_t rn = n - i;
            if (rn >= 20 && memcmp(rest, "<|begin_of_thought|>", 20) == 0) { distill__data_sb_puts(&sb, "<think>"); i += 20; }
            else if (rn >= 18 && memcmp(rest, "<|end_of_thought|>", 18) == 0) { distill__data_sb_puts(&sb, "</think>"); i += 18; }
            else if (rn >= 21 && memcmp(rest, "<|begin_of_solution|>", 21) == 0) {
                i += 21;
                while (i < n && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) i++;
            } else if (rn >= 19 && memcmp(rest, "<|end_of_solution|>", 19) == 0) {
                while (sb.n > 0 && (sb.s[sb.n - 1] == ' ' || sb.s[sb.n - 1] == '\n' || sb.s[sb.n - 1] == '\r' ||
                                    sb.s[sb.n - 1] == '\t'))
                    sb.s[--sb.n] = 0;
                i += 19;
            } else {
                distill__data_sb_put(&sb, rest, 1);
                i++;
            }
        }
    }
    if (sb.oom || !sb.s || distill__data_conv_own(a->conv, sb.s) != 0) {
        DISTILL_FREE(sb.s);
        return distill__data_field_err(a->err, a->name, at, NULL, "out of memory");
    }
    if (distill__data_conv_push(a->conv, role, sb.s, sb.n, w) != 0)
        return distill__data_field_err(a->err, a->name, at, NULL, "out of memory");
    return 0;
}

/* Roles beyond system/user/assistant: tool results ("tool" in OpenAI data, "observation" in
   LLaMA-Factory's ShareGPT, "function" in OpenAI's older form, "ipython" in Llama 3's) and
   ShareGPT's "function_call" turn, an assistant turn holding calls. */
enum { DISTILL__ROLE_TOOL_RESULT = 16, DISTILL__ROLE_CALL };

static int distill__data_role_parse(const char *r, int *out) {
    static const struct { const char *name; int role; } roles[] = {
        {"system", DISTILL_ROLE_SYSTEM}, {"developer", DISTILL_ROLE_SYSTEM},
        {"user", DISTILL_ROLE_USER}, {"human", DISTILL_ROLE_USER},
        {"assistant", DISTILL_ROLE_ASSISTANT}, {"gpt", DISTILL_ROLE_ASSISTANT},
        {"chatgpt", DISTILL_ROLE_ASSISTANT}, {"model", DISTILL_ROLE_ASSISTANT},
        {"tool", DISTILL__ROLE_TOOL_RESULT}, {"observation", DISTILL__ROLE_TOOL_RESULT},
        {"function", DISTILL__ROLE_TOOL_RESULT}, {"ipython", DISTILL__ROLE_TOOL_RESULT},
        {"function_call", DISTILL__ROLE_CALL},
    };
    size_t i;
    for (i = 0; i < sizeof roles / sizeof roles[0]; i++)
        if (!strcmp(r, roles[i].name)) { *out = roles[i].role; return 0; }
    return -1;
}

/* ---- tool use, rendered as Qwen's ChatML templates render it ---------------------------------
   Chat templates write tool schemas and call arguments with Jinja's `tojson`, which transformers
   defines as json.dumps(x, ensure_ascii=False): ", " and ": " separators, keys in file order,
   non-ASCII as it is, floats as Python's repr. */
static void distill__data_tojson_num(distill__data_sb *b, const distill_json *v) {
    char buf[64], dig[24];
    int p, e, nd = 0, i;
    const char *s;
    if (v->is_int) { snprintf(buf, sizeof buf, "%lld", (long long)v->i64); distill__data_sb_puts(b, buf); return; }
    /* the shortest digits that read back as the same double (Python's repr) */
    for (p = 0; p < 17; p++) { snprintf(buf, sizeof buf, "%.*e", p, v->num); if (strtod(buf, NULL) == v->num) break; }
    s = buf;
    if (*s == '-') { distill__data_sb_puts(b, "-"); s++; }
    for (; *s && *s != 'e'; s++) if (*s >= '0' && *s <= '9') dig[nd++] = *s;
    e = *s ? atoi(s + 1) : 0;
    while (nd > 1 && dig[nd - 1] == '0') nd--;
    if (e < -4 || e >= 16) {                  /* 1e-05, 1.5e+16 */
        distill__data_sb_put(b, dig, 1);
        if (nd > 1) { distill__data_sb_puts(b, "."); distill__data_sb_put(b, dig + 1, (size_t)nd - 1); }
        snprintf(buf, sizeof buf, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
        distill__data_sb_puts(b, buf);
    } else if (e < 0) {                       /* 0.00015 */
        distill__data_sb_puts(b, "0.");
        for (i = 0; i < -e - 1; i++) distill__data_sb_puts(b, "0");
        distill__data_sb_put(b, dig, (size_t)nd);
    } else {                                  /* 150.0, 1.5 */
        for (i = 0; i <= e; i++) distill__data_sb_put(b, i < nd ? dig + i : "0", 1);
        distill__data_sb_puts(b, ".");
        if (nd > e + 1) distill__data_sb_put(b, dig + e + 1, (size_t)(nd - e - 1));
        else distill__data_sb_puts(b, "0");
    }
}

static void distill__data_tojson_str(distill__data_sb *b, const char *s, size_t n) {
    size_t i;
    char u[8];
    distill__data_sb_puts(b, "\"");
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\n' ? "\\n" : c == '\r' ? "\\r" :
                          c == '\t' ? "\\t" : c == '\b' ? "\\b" : c == '\f' ? "\\f" : NULL;
        if (esc) distill__data_sb_puts(b, esc);
        else if (c < 0x20) { snprintf(u, sizeof u, "\\u%04x", c); distill__data_sb_puts(b, u); }
        else distill__data_sb_put(b, s + i, 1);
    }
    distill__data_sb_puts(b, "\"");
}

static void distill__data_tojson(distill__data_sb *b, const distill_json *v) {
    size_t i;
    switch (v->type) {
    case DISTILL_JSON_NULL: distill__data_sb_puts(b, "null"); break;
    case DISTILL_JSON_FALSE: distill__data_sb_puts(b, "false"); break;
    case DISTILL_JSON_TRUE: distill__data_sb_puts(b, "true"); break;
    case DISTILL_JSON_NUMBER: distill__data_tojson_num(b, v); break;
    case DISTILL_JSON_STRING: distill__data_tojson_str(b, v->str, v->len); break;
    case DISTILL_JSON_ARRAY:
        distill__data_sb_puts(b, "[");
        for (i = 0; i < v->len; i++) { if (i) distill__data_sb_puts(b, ", "); distill__data_tojson(b, &v->items[i]); }
        distill__data_sb_puts(b, "]");
        break;
    case DISTILL_JSON_OBJECT:
        distill__data_sb_puts(b, "{");
        for (i = 0; i < v->len; i++) {
            if (i) distill__data_sb_puts(b, ", ");
            distill__data_tojson_str(b, v->keys[i], v->key_lens[i]);
            distill__data_sb_puts(b, ": ");
            distill__data_tojson(b, &v->items[i]);
        }
        distill__data_sb_puts(b, "}");
        break;
    }
}

/* A JSON value that may arrive as a string holding JSON (LLaMA-Factory stores "tools" and a
   "function_call" turn's value that way). *doc gets the parsed document to free (or NULL). */
static const distill_json *distill__data_json_value(distill__data_adapt *a, const distill_json *v, const char *field,
                                                    distill_json **doc) {
    distill_error perr;
    *doc = NULL;
    if (v->type != DISTILL_JSON_STRING) return v;
    *doc = distill_json_parse(v->str, v->len, "", 1, &perr);
    if (!*doc) {
        distill__data_field_err(a->err, a->name, v, field, "a string that should hold JSON does not parse (%.200s)", perr.msg);
        return NULL;
    }
    return *doc;
}

/* Calls (one object or a list) appended as Qwen2.5/Qwen3 render an assistant's tool_calls:
       [\n]<tool_call>\n{"name": "NAME", "arguments": ARGS}\n</tool_call>
   one after another, a "\n" before each but a first one that opens the turn. A call is
   {"name", "arguments"} or OpenAI's {"type": "function", "function": {"name", "arguments"}};
   ARGS is written as it is when it is a string (OpenAI's JSON text), else with tojson. */
static int distill__data_calls(distill__data_adapt *a, distill__data_sb *b, const distill_json *calls, const char *field) {
    size_t i, n = calls->type == DISTILL_JSON_ARRAY ? calls->len : 1;
    if (calls->type != DISTILL_JSON_ARRAY && calls->type != DISTILL_JSON_OBJECT)
        return distill__data_field_err(a->err, a->name, calls, field, "expected a call object or a list of calls, got %s",
                                       distill_json_type_name(calls->type));
    if (n == 0) return distill__data_field_err(a->err, a->name, calls, field, "empty list of calls");
    for (i = 0; i < n; i++) {
        const distill_json *c = calls->type == DISTILL_JSON_ARRAY ? &calls->items[i] : calls, *f, *name, *args;
        f = distill_json_get(c, "function");
        if (f && f->type == DISTILL_JSON_OBJECT) c = f;
        name = distill_json_get(c, "name");
        args = distill_json_get(c, "arguments");
        if (c->type != DISTILL_JSON_OBJECT || !name || name->type != DISTILL_JSON_STRING || !args)
            return distill__data_field_err(a->err, a->name, c, field, "call %zu: expected {\"name\": string, \"arguments\": ...}", i);
        if (b->n > 0) distill__data_sb_puts(b, "\n");
        distill__data_sb_puts(b, "<tool_call>\n{\"name\": \"");
        distill__data_sb_put(b, name->str, name->len);
        distill__data_sb_puts(b, "\", \"arguments\": ");
        if (args->type == DISTILL_JSON_STRING) distill__data_sb_put(b, args->str, args->len);
        else distill__data_tojson(b, args);
        distill__data_sb_puts(b, "}\n</tool_call>");
    }
    return 0;
}

/* Hand a built string to the conversation as a turn. */
static int distill__data_push_sb(distill__data_adapt *a, distill__data_sb *sb, distill_role role, const char *think,
                                 size_t think_n, float w, const distill_json *at) {
    const char *s = sb->s;
    size_t n = sb->n;
    if (sb->oom || !s || distill__data_conv_own(a->conv, sb->s) != 0) {
        DISTILL_FREE(sb->s);
        memset(sb, 0, sizeof *sb);
        return distill__data_field_err(a->err, a->name, at, NULL, "out of memory");
    }
    memset(sb, 0, sizeof *sb);
    return distill__data_add_turn(a, role, s, n, think, think_n, w, at);
}

/* One turn's loss weight: "loss_weight" or "weight" (number >= 0 or bool); -1: the default. */
static int distill__data_turn_weight(distill__data_adapt *a, const distill_json *m, const char *field, size_t i, float *lw) {
    const distill_json *w = distill_json_get(m, "loss_weight");
    char path[160];
    *lw = -1.0f;
    if (!w) w = distill_json_get(m, "weight");
    if (!w || w->type == DISTILL_JSON_NULL) return 0;
    snprintf(path, sizeof path, "%s.%zu.%s", field, i, distill_json_get(m, "loss_weight") ? "loss_weight" : "weight");
    if (w->type == DISTILL_JSON_NUMBER && w->num >= 0 && w->num <= 1e6) *lw = (float)w->num;
    else if (w->type == DISTILL_JSON_TRUE) *lw = 1.0f;
    else if (w->type == DISTILL_JSON_FALSE) *lw = 0.0f;
    else return distill__data_field_err(a->err, a->name, w, path, "expected a number >= 0");
    return 0;
}

/* A list of turns: "messages" ({role, content}) or "conversations" ({from, value}); each turn
   may use either pair of keys. Tool results become one user turn per run of consecutive
   results, "<tool_response>\n" R "\n</tool_response>" each, joined by "\n" (Qwen's templates);
   so they are never supervised, while the assistant's calls are. */
static int distill__data_turns(distill__data_adapt *a, const distill_json *list, const char *field,
                          const char *role_key, const char *content_key) {
    const char *alt_role = !strcmp(role_key, "role") ? "from" : "role";
    const char *alt_content = !strcmp(content_key, "content") ? "value" : "content";
    size_t i;
    char path[160];
    distill__data_sb tools;   /* the pending run of tool results */
    if (!list) return distill__data_field_err(a->err, a->name, a->row, field, "missing");
    if (list->type != DISTILL_JSON_ARRAY)
        return distill__data_field_err(a->err, a->name, list, field, "expected an array of turns, got %s",
                                  distill_json_type_name(list->type));
    if (list->len == 0) return distill__data_field_err(a->err, a->name, list, field, "empty conversation");
    memset(&tools, 0, sizeof tools);
    for (i = 0; i < list->len; i++) {
        const distill_json *m = &list->items[i], *r, *c, *th = NULL, *calls;
        const char *text = "", *think = NULL, *rk = role_key, *ck = content_key;
        size_t text_n = 0, think_n = 0;
        int role;
        float lw;
        if (m->type != DISTILL_JSON_OBJECT) {
            snprintf(path, sizeof path, "%s.%zu", field, i);
            DISTILL_FREE(tools.s);
            return distill__data_field_err(a->err, a->name, m, path, "expected an object, got %s", distill_json_type_name(m->type));
        }
        r = distill_json_get(m, rk);
        if (!r && (r = distill_json_get(m, alt_role)) != NULL) rk = alt_role;
        snprintf(path, sizeof path, "%s.%zu.%s", field, i, rk);
        if (!r || r->type != DISTILL_JSON_STRING || distill__data_role_parse(r->str, &role) != 0) {
            DISTILL_FREE(tools.s);
            if (!r) return distill__data_field_err(a->err, a->name, m, path, "missing");
            if (r->type != DISTILL_JSON_STRING)
                return distill__data_field_err(a->err, a->name, r, path, "expected a string, got %s", distill_json_type_name(r->type));
            return distill__data_field_err(a->err, a->name, r, path,
                                           "unsupported role '%.40s' (use system, user/human, assistant/gpt, tool/observation, function_call)", r->str);
        }
        if (role != DISTILL__ROLE_TOOL_RESULT && tools.s && distill__data_push_sb(a, &tools, DISTILL_ROLE_USER, NULL, 0, -1.0f, m) != 0)
            return -1;
        c = distill_json_get(m, ck);
        if (!c && (c = distill_json_get(m, alt_content)) != NULL) ck = alt_content;
        snprintf(path, sizeof path, "%s.%zu.%s", field, i, ck);
        calls = role == DISTILL_ROLE_ASSISTANT ? distill_json_get(m, "tool_calls") : NULL;
        if (role == DISTILL_ROLE_ASSISTANT && (!calls || calls->type == DISTILL_JSON_NULL)) calls = distill_json_get(m, "function_call");
        if (calls && calls->type == DISTILL_JSON_NULL) calls = NULL;
        if (calls && (!c || c->type == DISTILL_JSON_NULL)) c = NULL;  /* OpenAI: content null beside tool_calls */
        else if (!c) { DISTILL_FREE(tools.s); return distill__data_field_err(a->err, a->name, m, path, "missing"); }
        if (c && role != DISTILL__ROLE_CALL &&
            distill__data_content(a, c, path, &text, &text_n, role == DISTILL_ROLE_ASSISTANT ? &think : NULL, &think_n) != 0) {
            DISTILL_FREE(tools.s);
            return -1;
        }
        if (distill__data_turn_weight(a, m, field, i, &lw) != 0) { DISTILL_FREE(tools.s); return -1; }
        if (role == DISTILL_ROLE_ASSISTANT) {
            th = distill_json_get(m, "reasoning_content");
            if (!th) th = distill_json_get(m, "reasoning");
            if (!th) th = distill_json_get(m, "thinking");
            if (th && th->type == DISTILL_JSON_STRING && th->len > 0) { think = th->str; think_n = th->len; }
            else if (th && th->type != DISTILL_JSON_NULL && th->type != DISTILL_JSON_STRING) {
                snprintf(path, sizeof path, "%s.%zu.reasoning", field, i);
                DISTILL_FREE(tools.s);
                return distill__data_field_err(a->err, a->name, th, path, "expected a string, got %s", distill_json_type_name(th->type));
            }
        }
        if (role == DISTILL__ROLE_TOOL_RESULT) {
            if (tools.s) distill__data_sb_puts(&tools, "\n");
            distill__data_sb_puts(&tools, "<tool_response>\n");
            distill__data_sb_put(&tools, text, text_n);
            distill__data_sb_puts(&tools, "\n</tool_response>");
        } else if (role == DISTILL__ROLE_CALL || calls) {
            /* an assistant turn with calls: content, then the calls (a ShareGPT function_call
               turn's value is the call, usually as a JSON string) */
            distill__data_sb sb;
            distill_json *doc = NULL;
            const distill_json *cv;
            int rc;
            memset(&sb, 0, sizeof sb);
            distill__data_sb_put(&sb, text, text_n);
            if (role == DISTILL__ROLE_CALL) cv = distill__data_json_value(a, c, path, &doc);
            else {
                snprintf(path, sizeof path, "%s.%zu.%s", field, i, distill_json_get(m, "tool_calls") ? "tool_calls" : "function_call");
                cv = calls;
            }
            rc = cv ? distill__data_calls(a, &sb, cv, path) : -1;
            distill_json_free(doc);
            if (rc != 0) { DISTILL_FREE(sb.s); return -1; }
            if (distill__data_push_sb(a, &sb, DISTILL_ROLE_ASSISTANT, think, think_n, lw, m) != 0) return -1;
        } else if (distill__data_add_turn(a, (distill_role)role, text, text_n, think, think_n, lw, m) != 0) {
            return -1;
        }
    }
    if (tools.s && distill__data_push_sb(a, &tools, DISTILL_ROLE_USER, NULL, 0, -1.0f, list) != 0) return -1;
    return 0;
}

/* Pairwise preference records (chosen/rejected: TRL, LLaMA-Factory, UltraFeedback) hold two
   answers; SFT and distillation train on one. The error says how to take "chosen". */
static int distill__data_preference_err(distill__data_adapt *a) {
    const distill_json *ch = distill_json_get(a->row, "chosen");
    const char *how;
    if (distill_json_get(a->row, "conversations")) how = "--map conversations=conversations --map chosen=response";
    else if (distill_json_get(a->row, "messages")) how = "--map messages=messages --map chosen=response";
    else if (distill_json_get(a->row, "instruction")) how = "--map instruction=prompt --map chosen=response";
    else if (distill_json_get(a->row, "prompt"))
        how = distill_json_get(a->row, "prompt")->type == DISTILL_JSON_ARRAY ? "--map prompt=messages --map chosen=response"
                                                                             : "--map prompt=prompt --map chosen=response";
    else how = ch && ch->type == DISTILL_JSON_ARRAY ? "--map chosen=messages" : "--map PROMPT_FIELD=prompt --map chosen=response";
    return distill__data_field_err(a->err, a->name, ch, NULL,
                                   "a pairwise preference record (fields 'chosen' and 'rejected'): this trainer learns from one "
                                   "answer per prompt; to train on the preferred answer use %s", how);
}

static distill_data_format distill__data_detect(const distill_json *row) {
    if (distill_json_get(row, "messages")) return DISTILL_FORMAT_MESSAGES;
    if (distill_json_get(row, "conversations")) return DISTILL_FORMAT_CONVERSATIONS;
    if (distill_json_get(row, "prompt") && distill_json_get(row, "completion")) return DISTILL_FORMAT_PROMPT_COMPLETION;
    if (distill_json_get(row, "instruction") && distill_json_get(row, "output")) return DISTILL_FORMAT_ALPACA;
    if (distill_json_get(row, "text")) return DISTILL_FORMAT_TEXT;
    return DISTILL_FORMAT_AUTO;
}

/* prompt or completion of TRL's format: a string, or a list of messages. */
static int distill__data_pc_side(distill__data_adapt *a, const char *field, distill_role role) {
    const distill_json *v = distill_json_get(a->row, field);
    const char *s;
    size_t n;
    if (v && v->type == DISTILL_JSON_ARRAY) return distill__data_turns(a, v, field, "role", "content");
    if (distill__data_string_field(a, v, field, 1, &s, &n) != 0) return -1;
    return distill__data_add_turn(a, role, s, n, NULL, 0, -1.0f, v);
}

static int distill__data_system_field(distill__data_adapt *a, const char *field) {
    const char *s;
    size_t n;
    if (distill__data_string_field(a, distill_json_get(a->row, field), field, 0, &s, &n) != 0) return -1;
    if (s && n) return distill__data_add_turn(a, DISTILL_ROLE_SYSTEM, s, n, NULL, 0, -1.0f, a->row);
    return 0;
}

static int distill__data_alpaca(distill__data_adapt *a) {
    const distill_json *h = distill_json_get(a->row, "history");
    const char *ins, *inp, *out;
    size_t ins_n, inp_n, out_n, i;
    if (distill__data_system_field(a, "system") != 0) return -1;
    /* LLaMA-Factory's optional history: [[user, assistant], ...] before the instruction */
    if (h && h->type == DISTILL_JSON_ARRAY) {
        for (i = 0; i < h->len; i++) {
            const distill_json *pair = &h->items[i];
            if (pair->type != DISTILL_JSON_ARRAY || pair->len != 2 || pair->items[0].type != DISTILL_JSON_STRING ||
                pair->items[1].type != DISTILL_JSON_STRING)
                return distill__data_field_err(a->err, a->name, pair, "history", "item %zu: expected [user, assistant] strings", i);
            if (distill__data_add_turn(a, DISTILL_ROLE_USER, pair->items[0].str, pair->items[0].len, NULL, 0, -1.0f, pair) != 0 ||
                distill__data_add_turn(a, DISTILL_ROLE_ASSISTANT, pair->items[1].str, pair->items[1].len, NULL, 0, -1.0f, pair) != 0)
                return -1;
        }
    } else if (h && h->type != DISTILL_JSON_NULL) {
        return distill__data_field_err(a->err, a->name, h, "history", "expected an array, got %s", distill_json_type_name(h->type));
    }
    if (distill__data_string_field(a, distill_json_get(a->row, "instruction"), "instruction", 1, &ins, &ins_n) != 0 ||
        distill__data_string_field(a, distill_json_get(a->row, "input"), "input", 0, &inp, &inp_n) != 0 ||
        distill__data_string_field(a, distill_json_get(a->row, "output"), "output", 1, &out, &out_n) != 0)
        return -1;
    if (inp && inp_n) {
        /* instruction + blank line + input, as in the Alpaca prompt */
        distill__data_sb sb;
        memset(&sb, 0, sizeof sb);
        distill__data_sb_put(&sb, ins, ins_n);
        distill__data_sb_puts(&sb, "\n\n");
        distill__data_sb_put(&sb, inp, inp_n);
        if (sb.oom || distill__data_conv_own(a->conv, sb.s) != 0) {
            DISTILL_FREE(sb.s);
            return distill__data_field_err(a->err, a->name, a->row, NULL, "out of memory");
        }
        if (distill__data_add_turn(a, DISTILL_ROLE_USER, sb.s, sb.n, NULL, 0, -1.0f, a->row) != 0) return -1;
    } else if (distill__data_add_turn(a, DISTILL_ROLE_USER, ins, ins_n, NULL, 0, -1.0f, a->row) != 0) {
        return -1;
    }
    return distill__data_add_turn(a, DISTILL_ROLE_ASSISTANT, out, out_n, NULL, 0, -1.0f, a->row);
}

/* --map src=dst: find the source path mapped to dst (the last one given wins). */
static const char *distill__data_mapped(const distill_data_options *o, const char *dst, size_t *src_len) {
    int i;
    const char *found = NULL;
    for (i = 0; o && i < o->n_map; i++) {
        const char *m = o->map[i], *eq = m ? strchr(m, '=') : NULL;
        if (eq && !strcmp(eq + 1, dst)) { found = m; *src_len = (size_t)(eq - m); }
    }
    return found;
}

static const distill_json *distill__data_mapped_value(distill__data_adapt *a, const char *dst, char *path, size_t cap) {
    size_t n = 0;
    const char *src = distill__data_mapped(a->opt, dst, &n);
    if (!src) return NULL;
    if (n >= cap) n = cap - 1;
    memcpy(path, src, n);
    path[n] = 0;
    return distill_json_path(a->row, path);
}

static int distill__data_map_check(const distill_data_options *o, distill_error *err) {
    static const char *const dsts[] = {"prompt", "response", "completion", "think", "system", "messages", "conversations", "text"};
    int i;
    size_t k;
    for (i = 0; o && i < o->n_map; i++) {
        const char *eq = o->map[i] ? strchr(o->map[i], '=') : NULL;
        int ok = 0;
        if (!eq || eq == o->map[i]) return distill__err(err, "--map '%s': expected SRC=DST", o->map[i] ? o->map[i] : "(null)");
        for (k = 0; k < sizeof dsts / sizeof dsts[0]; k++) if (!strcmp(eq + 1, dsts[k])) ok = 1;
        if (!ok)
            return distill__err(err, "--map '%s': unknown target '%s' (prompt, response, think, system, messages, conversations, text)",
                                o->map[i], eq + 1);
    }
    return 0;
}

/* A source value for target dst: the mapped path when there is one, else the field named
   `fallback` (NULL: none). `path` receives the field name for messages. */
static const distill_json *distill__data_source(distill__data_adapt *a, const char *dst, const char *fallback,
                                           char *path, size_t cap, int *mapped) {
    size_t n = 0;
    *mapped = distill__data_mapped(a->opt, dst, &n) != NULL;
    if (*mapped) return distill__data_mapped_value(a, dst, path, cap);
    snprintf(path, cap, "%s", fallback ? fallback : dst);
    return fallback ? distill_json_get(a->row, fallback) : NULL;
}

/* After mapped turns, a mapped response (e.g. a preference record's "chosen") is one more
   answer: a string, one turn object ({"from": "gpt", "value"}: LLaMA-Factory) or a list of turns
   (TRL). */
static int distill__data_mapped_answer(distill__data_adapt *a) {
    char path[128];
    const distill_json *v;
    int m;
    v = distill__data_source(a, "completion", NULL, path, sizeof path, &m);
    if (!m) v = distill__data_source(a, "response", NULL, path, sizeof path, &m);
    if (!m) return 0;
    if (!v) return distill__data_field_err(a->err, a->name, a->row, path, "missing");
    if (v->type == DISTILL_JSON_OBJECT) {
        distill_json one;
        memset(&one, 0, sizeof one);
        one.type = DISTILL_JSON_ARRAY;
        one.line = v->line;
        one.col = v->col;
        one.len = 1;
        one.items = (distill_json *)v;
        return distill__data_turns(a, &one, path, "role", "content");
    }
    if (v->type == DISTILL_JSON_ARRAY) return distill__data_turns(a, v, path, "role", "content");
    {
        const char *r;
        size_t rn;
        if (distill__data_string_field(a, v, path, 1, &r, &rn) != 0) return -1;
        return distill__data_add_turn(a, DISTILL_ROLE_ASSISTANT, r, rn, NULL, 0, -1.0f, v);
    }
}

static int distill__data_adapt_mapped(distill__data_adapt *a) {
    char path[128];
    const distill_json *v;
    const char *p, *r, *t = NULL;
    size_t pn, rn, tn = 0;
    int m;
    v = distill__data_source(a, "messages", NULL, path, sizeof path, &m);
    if (m) return distill__data_turns(a, v, path, "role", "content") != 0 ? -1 : distill__data_mapped_answer(a);
    v = distill__data_source(a, "conversations", NULL, path, sizeof path, &m);
    if (m) return distill__data_turns(a, v, path, "from", "value") != 0 ? -1 : distill__data_mapped_answer(a);
    v = distill__data_source(a, "text", NULL, path, sizeof path, &m);
    if (m) {
        if (distill__data_string_field(a, v, path, 1, &p, &pn) != 0) return -1;
        return distill__data_add_turn(a, DISTILL_ROLE_TEXT, p, pn, NULL, 0, -1.0f, v);
    }
    v = distill__data_source(a, "system", "system", path, sizeof path, &m);
    if (distill__data_string_field(a, v, path, 0, &p, &pn) != 0) return -1;
    if (p && pn && distill__data_add_turn(a, DISTILL_ROLE_SYSTEM, p, pn, NULL, 0, -1.0f, v) != 0) return -1;
    v = distill__data_source(a, "prompt", "prompt", path, sizeof path, &m);
    if (distill__data_content(a, v, path, &p, &pn, NULL, NULL) != 0) return -1;
    if (distill__data_add_turn(a, DISTILL_ROLE_USER, p, pn, NULL, 0, -1.0f, v) != 0) return -1;
    v = distill__data_source(a, "think", NULL, path, sizeof path, &m);
    if (m) {
        if (distill__data_string_field(a, v, path, 0, &t, &tn) != 0) return -1;
        if (t && tn == 0) t = NULL;
    }
    v = distill__data_source(a, "completion", NULL, path, sizeof path, &m);
    if (!m) v = distill__data_source(a, "response", "response", path, sizeof path, &m);
    if (distill__data_content(a, v, path, &r, &rn, NULL, NULL) != 0) return -1;
    return distill__data_add_turn(a, DISTILL_ROLE_ASSISTANT, r, rn, t, tn, -1.0f, v ? v : a->row);
}

static void distill__data_conv_last_to_front(distill_conv *c) {
    distill_message m = c->msgs[c->n - 1];
    memmove(c->msgs + 1, c->msgs, (size_t)(c->n - 1) * sizeof *c->msgs);
    c->msgs[0] = m;
}

/* A record's "tools" (a list of schemas, or a string holding one: LLaMA-Factory) and its
   top-level "system" (LLaMA-Factory's ShareGPT) go into the system turn, as Qwen3's template
   writes them (Qwen2.5's is the same but adds its default system text when there is none):
       SYSTEM "\n\n" "# Tools\n\n...<tools>" ("\n" tojson(tool))* "\n</tools>\n\n...</tool_call>" */
static int distill__data_system_tools(distill__data_adapt *a) {
    static const char head[] = "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
                               "You are provided with function signatures within <tools></tools> XML tags:\n<tools>";
    static const char tail[] = "\n</tools>\n\nFor each function call, return a json object with function name and arguments "
                               "within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, "
                               "\"arguments\": <args-json-object>}\n</tool_call>";
    const distill_json *sys, *tv = distill_json_get(a->row, "tools"), *tl;
    distill_conv *c = a->conv;
    char path[128];
    int mapped;
    int has_sys = c->n > 0 && c->msgs[0].role == DISTILL_ROLE_SYSTEM;
    distill_json *doc = NULL;
    distill__data_sb sb;
    size_t i;
    sys = distill__data_source(a, "system", "system", path, sizeof path, &mapped);
    if (!has_sys && sys && sys->type == DISTILL_JSON_STRING && sys->len > 0) {
        if (distill__data_add_turn(a, DISTILL_ROLE_SYSTEM, sys->str, sys->len, NULL, 0, -1.0f, sys) != 0) return -1;
        distill__data_conv_last_to_front(c);
        has_sys = 1;
    }
    if (!tv || tv->type == DISTILL_JSON_NULL || (tv->type == DISTILL_JSON_STRING && tv->len == 0)) return 0;
    tl = distill__data_json_value(a, tv, "tools", &doc);
    if (!tl) return -1;
    if (tl->type != DISTILL_JSON_ARRAY) {
        distill__data_field_err(a->err, a->name, tv, "tools", "expected a list of tool schemas, got %s", distill_json_type_name(tl->type));
        distill_json_free(doc);
        return -1;
    }
    if (tl->len == 0) { distill_json_free(doc); return 0; }
    memset(&sb, 0, sizeof sb);
    if (has_sys && c->msgs[0].len) {
        distill__data_sb_put(&sb, c->msgs[0].content, c->msgs[0].len);
        distill__data_sb_puts(&sb, "\n\n");
    }
    distill__data_sb_puts(&sb, head);
    for (i = 0; i < tl->len; i++) { distill__data_sb_puts(&sb, "\n"); distill__data_tojson(&sb, &tl->items[i]); }
    distill__data_sb_puts(&sb, tail);
    distill_json_free(doc);
    if (sb.oom || distill__data_conv_own(c, sb.s) != 0) {
        DISTILL_FREE(sb.s);
        return distill__data_field_err(a->err, a->name, tv, "tools", "out of memory");
    }
    if (has_sys) {
        c->msgs[0].content = sb.s;
        c->msgs[0].len = sb.n;
        return 0;
    }
    if (distill__data_conv_push(c, DISTILL_ROLE_SYSTEM, sb.s, sb.n, -1.0f) != 0)
        return distill__data_field_err(a->err, a->name, tv, "tools", "out of memory");
    distill__data_conv_last_to_front(c);
    return 0;
}

DISTILL_API int distill_conv_from_json(const distill_json *row, const distill_data_options *opt,
                                       distill_data_format *format, const char *name,
                                       distill_conv *out, distill_error *err) {
    distill__data_adapt a;
    distill_data_format f = opt ? opt->format : DISTILL_FORMAT_AUTO;
    int rc = -1;
    a.opt = opt;
    a.name = name;
    a.row = row;
    a.err = err;
    a.conv = out;
    if (!row || row->type != DISTILL_JSON_OBJECT)
        return distill__data_field_err(err, name, row, NULL, "expected a JSON object per record, got %s",
                                  row ? distill_json_type_name(row->type) : "nothing");
    if (opt && opt->n_map > 0) {
        if (distill__data_map_check(opt, err) != 0) return -1;
        if (f == DISTILL_FORMAT_AUTO) f = DISTILL_FORMAT_MAPPED;
    }
    if (f == DISTILL_FORMAT_AUTO && distill_json_get(row, "chosen") && distill_json_get(row, "rejected"))
        return distill__data_preference_err(&a);
    if (f == DISTILL_FORMAT_AUTO) {
        f = distill__data_detect(row);
        if (f == DISTILL_FORMAT_AUTO) {
            char keys[200];
            size_t k, used = 0;
            keys[0] = 0;
            for (k = 0; k < row->len && used + 40 < sizeof keys; k++)
                used += (size_t)snprintf(keys + used, sizeof keys - used, "%s'%.30s'", k ? ", " : "", row->keys[k]);
            return distill__data_field_err(err, name, row, NULL,
                                      "cannot detect the format from the keys (%s): expected messages, conversations, "
                                      "prompt+completion, instruction+output or text; use --format or --map", keys);
        }
    }
    if (format) *format = f;
    switch (f) {
    case DISTILL_FORMAT_MESSAGES: rc = distill__data_turns(&a, distill_json_get(row, "messages"), "messages", "role", "content"); break;
    case DISTILL_FORMAT_CONVERSATIONS: rc = distill__data_turns(&a, distill_json_get(row, "conversations"), "conversations", "from", "value"); break;
    case DISTILL_FORMAT_PROMPT_COMPLETION:
        rc = distill__data_system_field(&a, "system");
        if (rc == 0) rc = distill__data_pc_side(&a, "prompt", DISTILL_ROLE_USER);
        if (rc == 0) rc = distill__data_pc_side(&a, "completion", DISTILL_ROLE_ASSISTANT);
        break;
    case DISTILL_FORMAT_ALPACA: rc = distill__data_alpaca(&a); break;
    case DISTILL_FORMAT_TEXT: {
        const char *s;
        size_t n;
        rc = distill__data_string_field(&a, distill_json_get(row, "text"), "text", 1, &s, &n);
        if (rc == 0) rc = distill__data_add_turn(&a, DISTILL_ROLE_TEXT, s, n, NULL, 0, -1.0f, row);
        break;
    }
    case DISTILL_FORMAT_MAPPED: rc = distill__data_adapt_mapped(&a); break;
    default: rc = distill__err(err, "%s: unknown format %d", name ? name : "<data>", (int)f);
    }
    if (rc == 0 && (f == DISTILL_FORMAT_MESSAGES || f == DISTILL_FORMAT_CONVERSATIONS || f == DISTILL_FORMAT_PROMPT_COMPLETION ||
                    f == DISTILL_FORMAT_MAPPED))
        rc = distill__data_system_tools(&a);
    return rc != 0 ? -1 : 0;
}

/* ---- filters ------------------------------------------------------------------------------ */
/* "FIELD OP VALUE": compiled once into a path, an operator and a small JSON array of values. */
enum { DISTILL__OP_EQ, DISTILL__OP_NE, DISTILL__OP_LT, DISTILL__OP_LE, DISTILL__OP_GT, DISTILL__OP_GE, DISTILL__OP_IN };
typedef struct distill__data_filter {
    char *path;
    int op;
    distill_json *values;     /* an array; one item except for `in` */
} distill__data_filter;

static void distill__data_filter_free(distill__data_filter *f) {
    DISTILL_FREE(f->path);
    distill_json_free(f->values);
    f->path = NULL;
    f->values = NULL;
}

/* One element of a value: a JSON scalar as written, or a bare word taken as a string. */
static void distill__data_filter_elem(distill__data_sb *sb, const char *s, size_t n) {
    distill_json *j;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    while (n && (*s == ' ' || *s == '\t')) { s++; n--; }
    j = distill_json_parse(s, n, "filter", 1, NULL);
    if (j && j->type != DISTILL_JSON_ARRAY && j->type != DISTILL_JSON_OBJECT) {
        distill__data_sb_put(sb, s, n);
    } else {
        size_t i;
        distill__data_sb_puts(sb, "\"");
        for (i = 0; i < n; i++) {
            if (s[i] == '"' || s[i] == '\\') distill__data_sb_puts(sb, "\\");
            distill__data_sb_put(sb, s + i, 1);
        }
        distill__data_sb_puts(sb, "\"");
    }
    distill_json_free(j);
}

static int distill__data_filter_compile(const char *expr, distill__data_filter *f, distill_error *err) {
    static const char *const ops[] = {"==", "!=", "<=", ">=", "<", ">", " in "};
    static const int opv[] = {DISTILL__OP_EQ, DISTILL__OP_NE, DISTILL__OP_LE, DISTILL__OP_GE, DISTILL__OP_LT, DISTILL__OP_GT, DISTILL__OP_IN};
    const char *best = NULL, *val, *fe;
    size_t i, bl = 0, pn;
    distill__data_sb sb;
    distill_error jerr;
    memset(f, 0, sizeof *f);
    for (i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        const char *p = strstr(expr, ops[i]);
        if (p && (!best || p < best)) { best = p; bl = strlen(ops[i]); f->op = opv[i]; }
    }
    if (!best) return distill__err(err, "filter '%s': expected FIELD OP VALUE with OP one of == != < <= > >= in", expr);
    fe = best;
    while (fe > expr && (fe[-1] == ' ' || fe[-1] == '\t')) fe--;
    while (*expr == ' ' || *expr == '\t') expr++;
    if (fe <= expr) return distill__err(err, "filter '%s': missing field name", expr);
    pn = (size_t)(fe - expr);
    f->path = (char *)DISTILL_MALLOC(pn + 1);
    if (!f->path) return distill__err(err, "out of memory");
    memcpy(f->path, expr, pn);
    f->path[pn] = 0;
    val = best + bl;
    while (*val == ' ' || *val == '\t') val++;
    memset(&sb, 0, sizeof sb);
    distill__data_sb_puts(&sb, "[");
    if (f->op == DISTILL__OP_IN) {
        size_t vn = strlen(val);
        const char *s;
        while (vn && (val[vn - 1] == ' ' || val[vn - 1] == '\t')) vn--;
        if (vn < 2 || !((val[0] == '{' && val[vn - 1] == '}') || (val[0] == '[' && val[vn - 1] == ']'))) {
            DISTILL_FREE(sb.s);
            distill__data_filter_free(f);
            return distill__err(err, "filter '%s': 'in' takes a set {A, B} or [A, B]", expr);
        }
        s = val + 1;
        vn -= 2;
        /* split at commas outside quotes */
        while (vn > 0 || s == val + 1) {
            size_t k = 0;
            int q = 0;
            while (k < vn && (q || s[k] != ',')) {
                if (s[k] == '"' && (k == 0 || s[k - 1] != '\\')) q = !q;
                k++;
            }
            if (sb.n > 1) distill__data_sb_puts(&sb, ",");
            distill__data_filter_elem(&sb, s, k);
            if (k >= vn) break;
            s += k + 1;
            vn -= k + 1;
        }
    } else {
        distill__data_filter_elem(&sb, val, strlen(val));
    }
    distill__data_sb_puts(&sb, "]");
    if (sb.oom) { DISTILL_FREE(sb.s); distill__data_filter_free(f); return distill__err(err, "out of memory"); }
    f->values = distill_json_parse(sb.s, sb.n, "filter", 1, &jerr);
    DISTILL_FREE(sb.s);
    if (!f->values) { distill__data_filter_free(f); return distill__err(err, "filter '%s': bad value (%s)", expr, jerr.msg); }
    return 0;
}

/* -1, 0, 1 for ordered comparison, 2 when the values are not comparable. */
static int distill__data_json_cmp(const distill_json *a, const distill_json *b) {
    if (a->type == DISTILL_JSON_NUMBER && b->type == DISTILL_JSON_NUMBER) {
        if (a->is_int && b->is_int) return a->i64 < b->i64 ? -1 : a->i64 > b->i64;
        return a->num < b->num ? -1 : a->num > b->num ? 1 : a->num == b->num ? 0 : 2;
    }
    if (a->type == DISTILL_JSON_STRING && b->type == DISTILL_JSON_STRING) {
        size_t n = a->len < b->len ? a->len : b->len;
        int c = memcmp(a->str, b->str, n);
        if (c) return c < 0 ? -1 : 1;
        return a->len < b->len ? -1 : a->len > b->len;
    }
    if (a->type == b->type && (a->type == DISTILL_JSON_NULL || a->type == DISTILL_JSON_TRUE || a->type == DISTILL_JSON_FALSE))
        return 0;
    return 2;
}

static int distill__data_filter_match(const distill__data_filter *f, const distill_json *row) {
    const distill_json *v = distill_json_path(row, f->path);
    size_t i;
    int c;
    if (!v) return 0;
    if (f->op == DISTILL__OP_IN) {
        for (i = 0; i < f->values->len; i++)
            if (distill__data_json_cmp(v, &f->values->items[i]) == 0) return 1;
        return 0;
    }
    c = distill__data_json_cmp(v, &f->values->items[0]);
    switch (f->op) {
    case DISTILL__OP_EQ: return c == 0;
    case DISTILL__OP_NE: return c != 0;        /* incomparable types count as different */
    case DISTILL__OP_LT: return c == -1;
    case DISTILL__OP_LE: return c == -1 || c == 0;
    case DISTILL__OP_GT: return c == 1;
    case DISTILL__OP_GE: return c == 1 || c == 0;
    }
    return 0;
}

DISTILL_API int distill_data_filter_match(const distill_json *row, const char *expr, distill_error *err) {
    distill__data_filter f;
    int m;
    if (distill__data_filter_compile(expr, &f, err) != 0) return -1;
    m = distill__data_filter_match(&f, row);
    distill__data_filter_free(&f);
    return m;
}

/* ---- chat templates ----------------------------------------------------------------------- */
static const distill_chat_template distill__data_templates[] = {
    {"chatml", "", {"<|im_start|>system\n", "<|im_start|>user\n", "<|im_start|>assistant\n"},
     "<|im_end|>", "\n", NULL, ""},
    {"chatml-prefill", "", {"<|im_start|>system\n", "<|im_start|>user\n", "<|im_start|>assistant\n"},
     "<|im_end|>", "\n", NULL, "<think>\n"},
    {"plain", "", {"System:\n", "User:\n", "Assistant:\n"}, "<|endoftext|>", "\n\n", NULL, ""},
};

DISTILL_API const distill_chat_template *distill_chat_template_get(const char *name) {
    size_t i;
    if (!name) name = "chatml";
    for (i = 0; i < sizeof distill__data_templates / sizeof distill__data_templates[0]; i++)
        if (!strcmp(name, distill__data_templates[i].name)) return &distill__data_templates[i];
    return NULL;
}

/* The one walk over a conversation that both training rows and generation prompts come from.
   It emits pieces of text, each with the loss weight of its tokens:
       bos, [default system turn], for each turn: prefix(0) content(w) end_of_turn(w) sep(0),
       [generation prompt: assistant prefix(0) + gen_prefill(0)]
   where w is the turn's weight when it is supervised and 0 otherwise. */
typedef int (*distill__data_emit_fn)(void *ctx, const char *s, size_t n, float w, int is_content);

static int distill__data_walk(const distill_chat_template *t, const distill_conv *c, distill_loss_mode mode,
                              int add_gen, distill__data_emit_fn emit, void *ctx) {
    int i, last_asst = -1;
    float all = mode == DISTILL_LOSS_ALL ? 1.0f : 0.0f;   /* weight of template text */
    const char *prefill = t->gen_prefill ? t->gen_prefill : "";
    size_t pn = strlen(prefill);
    for (i = 0; i < c->n; i++) if (c->msgs[i].role == DISTILL_ROLE_ASSISTANT) last_asst = i;
    if (t->bos && t->bos[0] && emit(ctx, t->bos, strlen(t->bos), all, 0) != 0) return -1;
    if (t->default_system && (c->n == 0 || c->msgs[0].role != DISTILL_ROLE_SYSTEM)) {
        const char *p = t->role_prefix[DISTILL_ROLE_SYSTEM];
        if (emit(ctx, p, strlen(p), all, 0) || emit(ctx, t->default_system, strlen(t->default_system), all, 1) ||
            emit(ctx, t->end_of_turn, strlen(t->end_of_turn), all, 0) || emit(ctx, t->turn_sep, strlen(t->turn_sep), all, 0))
            return -1;
    }
    for (i = 0; i < c->n; i++) {
        const distill_message *m = &c->msgs[i];
        float lw = m->loss_weight < 0 ? 1.0f : m->loss_weight, w = all;
        const char *s = m->content;
        size_t n = m->len;
        if (m->role == DISTILL_ROLE_TEXT) {      /* raw text: no template, always supervised */
            if (emit(ctx, s, n, lw, 1) != 0) return -1;
            continue;
        }
        if (m->role == DISTILL_ROLE_ASSISTANT && (mode == DISTILL_LOSS_ASSISTANT || i == last_asst)) w = lw;
        if (mode == DISTILL_LOSS_ALL) w = lw;
        if (emit(ctx, t->role_prefix[m->role], strlen(t->role_prefix[m->role]), all, 0) != 0) return -1;
        if (m->role == DISTILL_ROLE_ASSISTANT && pn && n >= pn && memcmp(s, prefill, pn) == 0) {
            /* the pre-filled opening is part of the prompt at generation time: not a target */
            if (emit(ctx, prefill, pn, all, 0) != 0) return -1;
            s += pn;
            n -= pn;
        }
        if (emit(ctx, s, n, m->role == DISTILL_ROLE_ASSISTANT ? w : all, 1) != 0 ||
            emit(ctx, t->end_of_turn, strlen(t->end_of_turn), m->role == DISTILL_ROLE_ASSISTANT ? w : all, 0) != 0 ||
            emit(ctx, t->turn_sep, strlen(t->turn_sep), all, 0) != 0)
            return -1;
    }
    if (add_gen) {
        const char *p = t->role_prefix[DISTILL_ROLE_ASSISTANT];
        if (emit(ctx, p, strlen(p), 0, 0) != 0 || (pn && emit(ctx, prefill, pn, 0, 0) != 0)) return -1;
    }
    return 0;
}

static int distill__data_emit_text(void *ctx, const char *s, size_t n, float w, int is_content) {
    (void)w;
    (void)is_content;
    distill__data_sb_put((distill__data_sb *)ctx, s, n);
    return ((distill__data_sb *)ctx)->oom ? -1 : 0;
}

DISTILL_API char *distill_chat_render(const distill_chat_template *tmpl, const distill_conv *conv,
                                      int add_generation_prompt, size_t *len) {
    distill__data_sb sb;
    memset(&sb, 0, sizeof sb);
    if (!tmpl) tmpl = distill_chat_template_get(NULL);
    distill__data_sb_put(&sb, "", 0);
    if (distill__data_walk(tmpl, conv, DISTILL_LOSS_ASSISTANT, add_generation_prompt, distill__data_emit_text, &sb) != 0 ||
        sb.oom) {
        DISTILL_FREE(sb.s);
        return NULL;
    }
    if (len) *len = sb.n;
    return sb.s;
}

/* s as a single-quoted Jinja string literal: the escapes both Python's jinja2 and
   @huggingface/jinja read (\\ \' \n \r \t); other bytes as they are */
static void distill__data_jinja_lit(distill__data_sb *b, const char *s) {
    distill__data_sb_put(b, "'", 1);
    for (; s && *s; s++) {
        const char *e = *s == '\\' ? "\\\\" : *s == '\'' ? "\\'" : *s == '\n' ? "\\n" : *s == '\r' ? "\\r" : *s == '\t' ? "\\t" : NULL;
        if (e) distill__data_sb_puts(b, e);
        else distill__data_sb_put(b, s, 1);
    }
    distill__data_sb_put(b, "'", 1);
}

/* The walk of distill__data_walk as Jinja (every tag trims the template's own newlines):
       bos, [default system turn], per message: prefix[role] + content + end_of_turn + turn_sep,
       [add_generation_prompt: assistant prefix + gen_prefill] */
DISTILL_API char *distill_chat_template_jinja(const distill_chat_template *t) {
    static const char *const roles[3] = {"system", "user", "assistant"};
    distill__data_sb b;
    int r;
    if (!t) t = distill_chat_template_get(NULL);
    memset(&b, 0, sizeof b);
    distill__data_sb_put(&b, "", 0);
    if (t->bos && t->bos[0]) {
        distill__data_sb_puts(&b, "{{- ");
        distill__data_jinja_lit(&b, t->bos);
        distill__data_sb_puts(&b, " }}\n");
    }
    if (t->default_system) {
        distill__data_sb_puts(&b, "{%- if not messages or messages[0]['role'] != 'system' %}{{- ");
        distill__data_jinja_lit(&b, t->role_prefix[DISTILL_ROLE_SYSTEM]);
        distill__data_sb_puts(&b, " + ");
        distill__data_jinja_lit(&b, t->default_system);
        distill__data_sb_puts(&b, " + ");
        distill__data_jinja_lit(&b, t->end_of_turn);
        distill__data_sb_puts(&b, " + ");
        distill__data_jinja_lit(&b, t->turn_sep);
        distill__data_sb_puts(&b, " }}{%- endif %}\n");
    }
    distill__data_sb_puts(&b, "{%- for message in messages %}\n");
    for (r = 0; r < 3; r++) {
        distill__data_sb_puts(&b, r ? "{%- elif message['role'] == '" : "{%- if message['role'] == '");
        distill__data_sb_puts(&b, roles[r]);
        distill__data_sb_puts(&b, "' %}{{- ");
        distill__data_jinja_lit(&b, t->role_prefix[r]);
        distill__data_sb_puts(&b, " }}\n");
    }
    distill__data_sb_puts(&b, "{%- else %}{{- raise_exception('role ' + message['role'] + ' is not system, user or assistant') }}\n"
                              "{%- endif %}\n{{- message['content'] + ");
    distill__data_jinja_lit(&b, t->end_of_turn);
    distill__data_sb_puts(&b, " + ");
    distill__data_jinja_lit(&b, t->turn_sep);
    distill__data_sb_puts(&b, " }}\n{%- endfor %}\n{%- if add_generation_prompt %}{{- ");
    distill__data_jinja_lit(&b, t->role_prefix[DISTILL_ROLE_ASSISTANT]);
    if (t->gen_prefill && t->gen_prefill[0]) {
        distill__data_sb_puts(&b, " + ");
        distill__data_jinja_lit(&b, t->gen_prefill);
    }
    distill__data_sb_puts(&b, " }}{%- endif %}");
    if (b.oom) { DISTILL_FREE(b.s); return NULL; }
    return b.s;
}

DISTILL_API void distill_floats_free(distill_floats *a) {
    if (!a) return;
    DISTILL_FREE(a->v);
    a->v = NULL;
    a->n = a->cap = 0;
}

static int distill__data_floats_push(distill_floats *a, float x, size_t count) {
    if (a->cap - a->n < count) {
        size_t nc = a->cap ? a->cap : 256, bytes;
        float *nv;
        while (nc - a->n < count) { if (nc > SIZE_MAX / 4) return -1; nc *= 2; }
        if (!distill__mul_size(nc, sizeof(float), &bytes)) return -1;
        nv = (float *)DISTILL_REALLOC(a->v, bytes);
        if (!nv) return -1;
        a->v = nv;
        a->cap = nc;
    }
    while (count--) a->v[a->n++] = x;
    return 0;
}

typedef struct distill__data_enc {
    const distill_tokenizer *tok;
    distill_ids *ids;
    distill_floats *weights;
    distill_error *err;
    int64_t think_end;      /* tokens needed to include the last "</think>" of a target (-1: none) */
    int has_think;
} distill__data_enc;

static int distill__data_emit_ids(void *ctx, const char *s, size_t n, float w, int is_content) {
    distill__data_enc *e = (distill__data_enc *)ctx;
    size_t before = e->ids->n;
    if (n == 0) return 0;
    if (distill_tokenizer_encode(e->tok, s, n, 1, e->ids, e->err) != 0) return -1;
    if (e->weights && distill__data_floats_push(e->weights, w, e->ids->n - before) != 0)
        return distill__err(e->err, "out of memory");
    if (is_content && w > 0) {
        const char *open = distill__data_find(s, n, "<think>");
        const char *close = distill__data_find_last(s, n, "</think>");
        if (open) e->has_think = 1;
        if (close) {
            /* the token holding the last byte of "</think>": walk the token byte lengths */
            size_t target = (size_t)(close - s) + 8, acc = 0, i;
            for (i = before; i < e->ids->n; i++) {
                size_t bl = 0;
                distill_tokenizer_token_bytes(e->tok, e->ids->ids[i], &bl);
                acc += bl;
                if (acc >= target) break;
            }
            e->think_end = (int64_t)(i < e->ids->n ? i + 1 : e->ids->n);
        }
    }
    return 0;
}

DISTILL_API int distill_chat_encode(const distill_chat_template *tmpl, const distill_tokenizer *tok,
                                    const distill_conv *conv, distill_loss_mode mode,
                                    int add_generation_prompt, distill_ids *ids,
                                    distill_floats *weights, distill_error *err) {
    distill__data_enc e;
    if (!tmpl) tmpl = distill_chat_template_get(NULL);
    if (!tok) return distill__err(err, "distill_chat_encode: no tokenizer");
    memset(&e, 0, sizeof e);
    e.tok = tok;
    e.ids = ids;
    e.weights = weights;
    e.err = err;
    e.think_end = -1;
    return distill__data_walk(tmpl, conv, add_generation_prompt ? DISTILL_LOSS_ASSISTANT : mode, add_generation_prompt,
                              distill__data_emit_ids, &e);
}

static int distill__data_prompt_conv(distill_conv *c, const char *system, const char *user) {
    memset(c, 0, sizeof *c);
    if (system && distill__data_conv_push(c, DISTILL_ROLE_SYSTEM, system, strlen(system), -1.0f) != 0) return -1;
    return distill__data_conv_push(c, DISTILL_ROLE_USER, user ? user : "", user ? strlen(user) : 0, -1.0f);
}

DISTILL_API int distill_chat_prompt_ids(const distill_chat_template *tmpl, const distill_tokenizer *tok,
                                        const char *system, const char *user, distill_ids *ids,
                                        distill_error *err) {
    distill_conv c;
    int rc;
    if (distill__data_prompt_conv(&c, system, user) != 0) { distill_conv_free(&c); return distill__err(err, "out of memory"); }
    rc = distill_chat_encode(tmpl, tok, &c, DISTILL_LOSS_ASSISTANT, 1, ids, NULL, err);
    distill_conv_free(&c);
    return rc;
}

DISTILL_API char *distill_chat_render_prompt(const distill_chat_template *tmpl, const char *system,
                                             const char *user, size_t *len) {
    distill_conv c;
    char *s = NULL;
    if (distill__data_prompt_conv(&c, system, user) == 0) s = distill_chat_render(tmpl, &c, 1, len);
    distill_conv_free(&c);
    return s;
}

DISTILL_API int32_t distill_chat_eot_id(const distill_chat_template *tmpl, const distill_tokenizer *tok) {
    if (!tmpl) tmpl = distill_chat_template_get(NULL);
    return distill_tokenizer_token_id(tok, tmpl->end_of_turn);
}

/* ---- datasets ------------------------------------------------------------------------------ */
/* Rows point into one pool of token ids and weights; subsets made by distill_dataset_select
   share the pool (reference counted, not thread-safe: create and free datasets from one thread). */
typedef struct distill__data_pool {
    int refs;
    int32_t *tokens;
    float *weights;
    size_t n, cap;
} distill__data_pool;

typedef struct distill__data_row {
    size_t off;
    int32_t n, n_sup;
    int64_t id, line;
    int32_t flags;
} distill__data_row;

struct distill_dataset {
    distill__data_pool *pool;
    distill__data_row *rows;
    int64_t n_rows, cap_rows;
    distill_data_stats stats;
    int has_tokens;
};

static void distill__data_pool_release(distill__data_pool *p) {
    if (!p || --p->refs > 0) return;
    DISTILL_FREE(p->tokens);
    DISTILL_FREE(p->weights);
    DISTILL_FREE(p);
}

DISTILL_API void distill_dataset_free(distill_dataset *ds) {
    if (!ds) return;
    distill__data_pool_release(ds->pool);
    DISTILL_FREE(ds->rows);
    DISTILL_FREE(ds);
}

DISTILL_API int64_t distill_dataset_size(const distill_dataset *ds) { return ds ? ds->n_rows : 0; }

DISTILL_API int distill_dataset_row(const distill_dataset *ds, int64_t i, distill_row *row) {
    const distill__data_row *r;
    if (!ds || i < 0 || i >= ds->n_rows) return -1;
    r = &ds->rows[i];
    row->tokens = ds->pool->tokens ? ds->pool->tokens + r->off : NULL;
    row->weights = ds->pool->weights ? ds->pool->weights + r->off : NULL;
    row->n = r->n;
    row->n_supervised = r->n_sup;
    row->id = r->id;
    row->line = r->line;
    row->flags = r->flags;
    return 0;
}

DISTILL_API const distill_data_stats *distill_dataset_stats(const distill_dataset *ds) { return &ds->stats; }

static int distill__data_add_row(distill_dataset *ds, const distill__data_row *r) {
    if (ds->n_rows == ds->cap_rows) {
        int64_t nc = ds->cap_rows ? ds->cap_rows * 2 : 1024;
        size_t bytes;
        distill__data_row *nr;
        if (!distill__mul_size((size_t)nc, sizeof *nr, &bytes)) return -1;
        nr = (distill__data_row *)DISTILL_REALLOC(ds->rows, bytes);
        if (!nr) return -1;
        ds->rows = nr;
        ds->cap_rows = nc;
    }
    ds->rows[ds->n_rows++] = *r;
    return 0;
}

static int distill__data_pool_append(distill__data_pool *p, const int32_t *ids, const float *w, size_t n) {
    if (p->cap - p->n < n) {
        size_t nc = p->cap ? p->cap : ((size_t)1 << 16), bt, bw;
        int32_t *nt;
        float *nw;
        while (nc - p->n < n) { if (nc > SIZE_MAX / 8) return -1; nc *= 2; }
        if (!distill__mul_size(nc, sizeof(int32_t), &bt) || !distill__mul_size(nc, sizeof(float), &bw)) return -1;
        nt = (int32_t *)DISTILL_REALLOC(p->tokens, bt);
        if (!nt) return -1;
        p->tokens = nt;
        nw = (float *)DISTILL_REALLOC(p->weights, bw);
        if (!nw) return -1;
        p->weights = nw;
        p->cap = nc;
    }
    memcpy(p->tokens + p->n, ids, n * sizeof(int32_t));
    memcpy(p->weights + p->n, w, n * sizeof(float));
    p->n += n;
    return 0;
}

/* Load state shared by the JSONL and the .json-array paths. Records go through in batches:
     A. serially, in file order: parse, filters, schema adapter -> conversation;
     B. in parallel on the thread pool: chat template + tokenizer -> ids and weights (the
        tokenizer is the expensive part, and it is thread-safe);
     C. serially, in file order: length policy, checks, stats, append to the dataset.
   File order in A and C makes the result (and the first error under the strict policy)
   independent of the number of threads. */
#define DISTILL__DATA_BATCH 256
#define DISTILL__DATA_BATCH_BYTES ((size_t)32 << 20)

typedef struct distill__data_job {
    distill_json *doc;           /* owned (JSONL line) or NULL (item of a .json array) */
    const distill_json *rec;
    int64_t line;
    int status;                  /* 0 ok, 1 filtered, -1 error (err) */
    distill_conv conv;
    distill_ids ids;
    distill_floats w;
    int64_t think_end;
    int flags;
    distill_error err;
} distill__data_job;

typedef struct distill__data_load {
    distill_dataset *ds;
    distill_data_options opt;
    const distill_tokenizer *tok;
    const char *path;
    distill__data_filter *filters;
    distill_ids eot;
    distill_data_format format;      /* resolved on the first record */
    distill__data_job *jobs;
    int n_jobs;
    int stop;                        /* max_rows reached */
} distill__data_load;

/* A: one record into a job (the record is a parsed JSON value, or NULL with a parse error). */
static void distill__data_prepare(distill__data_load *L, distill__data_job *J) {
    distill_data_options o = L->opt;
    int i, has_target = 0;
    J->status = 0;
    J->flags = 0;
    J->think_end = -1;
    if (!J->rec) { J->status = -1; return; }
    for (i = 0; i < o.n_filters; i++)
        if (!distill__data_filter_match(&L->filters[i], J->rec)) { J->status = 1; return; }
    o.format = L->format;
    if (distill_conv_from_json(J->rec, &o, L->format == DISTILL_FORMAT_AUTO ? &L->format : NULL, L->path, &J->conv,
                               &J->err) != 0) {
        J->status = -1;
        return;
    }
    for (i = 0; i < J->conv.n; i++)
        if (J->conv.msgs[i].role == DISTILL_ROLE_ASSISTANT || J->conv.msgs[i].role == DISTILL_ROLE_TEXT) {
            has_target = 1;
            if (distill__data_find(J->conv.msgs[i].content, J->conv.msgs[i].len, "<think>")) J->flags |= DISTILL_ROW_THINK;
        }
    if (!has_target) {
        distill__data_field_err(&J->err, L->path, J->rec, NULL, "no assistant turn to learn from");
        J->status = -1;
    }
}

/* B: template + tokenizer, on worker threads. */
static void distill__data_encode_task(void *ctx, int64_t begin, int64_t end, int thread) {
    distill__data_load *L = (distill__data_load *)ctx;
    int64_t k;
    (void)thread;
    for (k = begin; k < end; k++) {
        distill__data_job *J = &L->jobs[k];
        distill__data_enc enc;
        if (J->status != 0) continue;
        memset(&enc, 0, sizeof enc);
        J->ids.n = 0;
        J->w.n = 0;
        enc.tok = L->tok;
        enc.ids = &J->ids;
        enc.weights = &J->w;
        enc.err = &J->err;
        enc.think_end = -1;
        if (distill__data_walk(L->opt.tmpl, &J->conv, L->opt.loss, 0, distill__data_emit_ids, &enc) != 0) J->status = -1;
        else if (J->ids.n > (size_t)INT32_MAX) J->status = distill__err(&J->err, "%s:%lld: row too long", L->path, (long long)J->line);
        J->think_end = enc.think_end;
    }
}

/* C: one encoded job into the dataset (or a counted skip/filter/drop). Returns 0 to go on,
   -1 to stop with err (strict policy, or out of memory). */
static int distill__data_finish(distill__data_load *L, distill__data_job *J, distill_error *err) {
    distill_data_stats *st = &L->ds->stats;
    distill_data_options o = L->opt;
    distill__data_row row;
    int64_t k;
    int rc = J->status;
    st->records++;
    if (rc == 1) { st->filtered++; return 0; }
    memset(&row, 0, sizeof row);
    row.id = st->records - 1;
    row.line = J->line;
    row.flags = J->flags;
    if (rc == 0 && L->tok) {
        size_t n = J->ids.n;
        if (o.max_seq > 0 && n > (size_t)o.max_seq) {
            if (!o.truncate) { st->dropped++; return 0; }
            row.flags |= DISTILL_ROW_TRUNCATED;
            if (J->think_end > o.max_seq) row.flags |= DISTILL_ROW_LOST_THINK;
            n = (size_t)o.max_seq;
        }
        {
            int64_t last_sup = -1;
            row.n = (int32_t)n;
            for (k = 1; k < (int64_t)n; k++)    /* token 0 is never a target */
                if (J->w.v[k] > 0) { row.n_sup++; last_sup = k; }
            if (row.n_sup == 0)
                rc = distill__err(&J->err, "%s:%lld: no supervised token in this row%s", L->path, (long long)J->line,
                                  row.flags & DISTILL_ROW_TRUNCATED ? " after truncation to max_seq" : " (no assistant turn?)");
            /* ends with the end-of-turn token(s): the supervised part's last tokens equal them */
            else if (L->eot.n > 0 && last_sup + 1 >= (int64_t)L->eot.n &&
                     memcmp(J->ids.ids + last_sup + 1 - (int64_t)L->eot.n, L->eot.ids, L->eot.n * sizeof(int32_t)) == 0)
                row.flags |= DISTILL_ROW_EOT;
        }
    }
    if (rc != 0) {
        if (o.policy == DISTILL_POLICY_STRICT) {
            if (err) *err = J->err;
            return -1;
        }
        if (!st->first_error[0]) memcpy(st->first_error, J->err.msg, sizeof st->first_error);
        st->skipped++;
        return 0;
    }
    if (L->tok) {
        int b = 0;
        row.off = L->ds->pool->n;
        if (distill__data_pool_append(L->ds->pool, J->ids.ids, J->w.v, (size_t)row.n) != 0)
            return distill__err(err, "%s: out of memory after %lld rows", L->path, (long long)L->ds->n_rows);
        st->tokens += row.n;
        st->supervised_tokens += row.n_sup;
        if (row.flags & DISTILL_ROW_TRUNCATED) st->truncated++;
        if (row.flags & DISTILL_ROW_LOST_THINK) st->lost_think++;
        if (row.flags & DISTILL_ROW_EOT) st->eot_rows++;
        if (st->rows == 0 || row.n < st->min_len) st->min_len = row.n;
        if (row.n > st->max_len) st->max_len = row.n;
        while (b + 1 < DISTILL_DATA_HIST && ((int64_t)1 << (b + 1)) <= row.n) b++;
        st->hist[b]++;
    }
    if (row.flags & DISTILL_ROW_THINK) st->think_rows++;
    if (distill__data_add_row(L->ds, &row) != 0) return distill__err(err, "%s: out of memory", L->path);
    st->rows++;
    if (L->opt.max_rows > 0 && st->rows >= L->opt.max_rows) L->stop = 1;
    return 0;
}

/* Run phases B and C over the n_jobs prepared jobs, then release their documents. */
static int distill__data_flush(distill__data_load *L, distill_error *err) {
    int i, rc = 0;
    if (L->tok && L->n_jobs > 0) distill_parallel_for(L->n_jobs, 1, distill__data_encode_task, L);
    for (i = 0; i < L->n_jobs; i++) {
        distill__data_job *J = &L->jobs[i];
        if (rc == 0 && !L->stop && distill__data_finish(L, J, err) != 0) rc = -1;
        distill_conv_free(&J->conv);
        distill_json_free(J->doc);
        J->doc = NULL;
        J->rec = NULL;
    }
    L->n_jobs = 0;
    return rc;
}

DISTILL_API distill_dataset *distill_dataset_load(const char *path, const distill_data_options *opt,
                                                  const distill_tokenizer *tok, distill_error *err) {
    distill__data_load L;
    distill_dataset *ds;
    distill_data_stats *st;
    int first = -1, i, ok = 0;
    double t0 = distill_time_seconds(), tj = 0;
    memset(&L, 0, sizeof L);
    L.opt = opt ? *opt : distill_data_options_default();
    L.tok = tok;
    L.path = path;
    if (L.opt.n_map > 0 && distill__data_map_check(&L.opt, err) != 0) return NULL;
    if (L.opt.max_seq < 0) { distill__err(err, "max_seq must be >= 0 (got %d)", L.opt.max_seq); return NULL; }
    if (L.opt.tmpl == NULL) L.opt.tmpl = distill_chat_template_get(NULL);
    L.format = L.opt.n_map > 0 && L.opt.format == DISTILL_FORMAT_AUTO ? DISTILL_FORMAT_MAPPED : L.opt.format;
    ds = (distill_dataset *)DISTILL_MALLOC(sizeof *ds);
    if (!ds) { distill__err(err, "%s: out of memory", path); return NULL; }
    memset(ds, 0, sizeof *ds);
    L.ds = ds;
    st = &ds->stats;
    ds->pool = (distill__data_pool *)DISTILL_MALLOC(sizeof *ds->pool);
    L.jobs = (distill__data_job *)DISTILL_MALLOC(DISTILL__DATA_BATCH * sizeof *L.jobs);
    if (!ds->pool || !L.jobs) { distill__err(err, "%s: out of memory", path); goto done; }
    memset(ds->pool, 0, sizeof *ds->pool);
    memset(L.jobs, 0, DISTILL__DATA_BATCH * sizeof *L.jobs);
    ds->pool->refs = 1;
    ds->has_tokens = tok != NULL;
    if (L.opt.n_filters > 0) {
        L.filters = (distill__data_filter *)DISTILL_MALLOC((size_t)L.opt.n_filters * sizeof *L.filters);
        if (!L.filters) { distill__err(err, "out of memory"); goto done; }
        memset(L.filters, 0, (size_t)L.opt.n_filters * sizeof *L.filters);
        for (i = 0; i < L.opt.n_filters; i++)
            if (distill__data_filter_compile(L.opt.filters[i], &L.filters[i], err) != 0) goto done;
    }
    if (tok && L.opt.tmpl->end_of_turn[0] &&
        distill_tokenizer_encode(tok, L.opt.tmpl->end_of_turn, strlen(L.opt.tmpl->end_of_turn), 1, &L.eot, err) != 0)
        goto done;
    {   /* .json array or JSONL: look at the first byte that is not whitespace (or a BOM) */
        FILE *f = fopen(path, "rb");
        int c;
        if (!f) { distill__err(err, "%s: cannot open: %s", path, strerror(errno)); goto done; }
        while ((c = fgetc(f)) != EOF && (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == 0xEF || c == 0xBB || c == 0xBF)) {}
        fclose(f);
        first = c;
    }
    if (first == EOF) { distill__err(err, "%s: empty file (no records)", path); goto done; }
    if (first == '[') {
        /* a top-level array (LLaMA-Factory's .json): parse it whole, then one record per item */
        double tp = distill_time_seconds();
        distill_json *doc = distill_json_parse_file(path, err);
        size_t k;
        tj += distill_time_seconds() - tp;
        if (!doc) goto done;
        for (k = 0; k < doc->len && !L.stop; k++) {
            distill__data_job *J = &L.jobs[L.n_jobs++];
            J->rec = &doc->items[k];
            J->line = doc->items[k].line;
            distill__data_prepare(&L, J);
            if (L.n_jobs == DISTILL__DATA_BATCH && distill__data_flush(&L, err) != 0) { distill_json_free(doc); goto done; }
        }
        if (distill__data_flush(&L, err) != 0) { distill_json_free(doc); goto done; }
        st->bytes = (int64_t)0;
        distill_json_free(doc);
    } else {
        distill_line_reader *r = distill_line_reader_open(path, L.opt.max_line, err);
        const char *line;
        size_t len, batch_bytes = 0;
        int64_t no;
        int rc;
        if (!r) goto done;
        for (;;) {
            double tp = distill_time_seconds();
            distill__data_job *J;
            size_t s = 0;
            rc = distill_line_reader_next(r, &line, &len, &no, err);
            if (rc <= 0) { tj += distill_time_seconds() - tp; break; }
            while (s < len && (line[s] == ' ' || line[s] == '\t')) s++;
            if (s == len) { tj += distill_time_seconds() - tp; continue; }     /* blank line */
            J = &L.jobs[L.n_jobs++];
            J->line = no;
            J->doc = distill_json_parse(line, len, path, no > INT_MAX ? INT_MAX : (int)no, &J->err);
            J->rec = J->doc;
            tj += distill_time_seconds() - tp;
            distill__data_prepare(&L, J);
            batch_bytes += len;
            if (L.n_jobs == DISTILL__DATA_BATCH || batch_bytes >= DISTILL__DATA_BATCH_BYTES) {
                batch_bytes = 0;
                if (distill__data_flush(&L, err) != 0) { rc = -1; break; }
                if (L.stop) break;
            }
        }
        if (rc >= 0 && distill__data_flush(&L, err) != 0) rc = -1;
        st->bytes = distill_line_reader_offset(r);
        distill_line_reader_close(r);
        if (rc < 0) goto done;
    }
    st->format = L.format;
    if (st->records == 0) { distill__err(err, "%s: no records (only blank lines)", path); goto done; }
    if (st->rows == 0) {
        distill__err(err, "%s: no usable rows: %lld records, %lld skipped, %lld filtered, %lld dropped (max_seq %d)%s%s",
                     path, (long long)st->records, (long long)st->skipped, (long long)st->filtered,
                     (long long)st->dropped, L.opt.max_seq, st->first_error[0] ? "; first error: " : "", st->first_error);
        goto done;
    }
    ok = 1;
done:
    if (L.jobs) {
        for (i = 0; i < L.n_jobs; i++) { distill_conv_free(&L.jobs[i].conv); distill_json_free(L.jobs[i].doc); }
        for (i = 0; i < DISTILL__DATA_BATCH; i++) { distill_ids_free(&L.jobs[i].ids); distill_floats_free(&L.jobs[i].w); }
        DISTILL_FREE(L.jobs);
    }
    for (i = 0; L.filters && i < L.opt.n_filters; i++) distill__data_filter_free(&L.filters[i]);
    DISTILL_FREE(L.filters);
    distill_ids_free(&L.eot);
    if (!ok) { distill_dataset_free(ds); return NULL; }
    st->seconds = distill_time_seconds() - t0;
    st->json_seconds = tj;
    return ds;
}

DISTILL_API void distill_data_stats_write_json(FILE *f, const distill_data_stats *s, int with_tokens) {
    int b, last = 0;
    fprintf(f, "{\"format\": \"%s\", \"records\": %lld, \"rows\": %lld, \"skipped\": %lld, \"filtered\": %lld, "
               "\"think_rows\": %lld",
            distill_data_format_name(s->format), (long long)s->records, (long long)s->rows, (long long)s->skipped,
            (long long)s->filtered, (long long)s->think_rows);
    if (with_tokens) {
        fprintf(f, ", \"tokens\": %lld, \"supervised_tokens\": %lld, \"dropped\": %lld, \"truncated\": %lld, "
                   "\"lost_think\": %lld, \"eot_rows\": %lld, \"think_share\": %.4f, \"eot_share\": %.4f, "
                   "\"min_len\": %lld, \"max_len\": %lld, \"mean_len\": %.1f, \"length_hist\": {",
                (long long)s->tokens, (long long)s->supervised_tokens, (long long)s->dropped, (long long)s->truncated,
                (long long)s->lost_think, (long long)s->eot_rows,
                s->rows ? (double)s->think_rows / (double)s->rows : 0.0, s->rows ? (double)s->eot_rows / (double)s->rows : 0.0,
                (long long)s->min_len, (long long)s->max_len, s->rows ? (double)s->tokens / (double)s->rows : 0.0);
        for (b = 0; b < DISTILL_DATA_HIST; b++) if (s->hist[b]) last = b;
        for (b = 0; b <= last; b++)   /* keys are the bucket's lower bound: [2^b, 2^(b+1)) tokens */
            fprintf(f, "%s\"%lld\": %lld", b ? ", " : "", b ? (long long)1 << b : 0LL, (long long)s->hist[b]);
        fprintf(f, "}");
    }
    fprintf(f, ", \"seconds\": %.3f, \"json_seconds\": %.3f", s->seconds, s->json_seconds);
    if (s->first_error[0]) {
        fprintf(f, ", \"first_error\": ");
        distill_json_write_string(f, s->first_error, strlen(s->first_error));
    }
    fprintf(f, "}\n");
}

/* ---- selection ---------------------------------------------------------------------------- */
/* Fisher-Yates driven by the seeded RNG: perm is a uniformly random permutation of 0..n-1 that
   depends only on (seed, n), so prefixes of it are nested subsets. */
static void distill__data_permute(int64_t *perm, int64_t n, uint64_t seed) {
    distill_rng r;
    int64_t i;
    distill_rng_seed(&r, seed);
    for (i = 0; i < n; i++) perm[i] = i;
    for (i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)distill_rng_below(&r, (uint64_t)i + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

static int distill__data_cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

DISTILL_API distill_dataset *distill_dataset_select(const distill_dataset *ds, const distill_select_options *sel,
                                                    distill_error *err) {
    int64_t n = ds->n_rows, from = 0, count, i;
    int64_t *perm, *keep = NULL, *ex = NULL;
    distill_dataset *out;
    if (sel->n_exclude < 0 || (sel->n_exclude > 0 && !sel->exclude)) { distill__err(err, "select: bad exclude list"); return NULL; }
    if (sel->n_exclude > 0) {
        /* the rows that stay: those whose id is not in the (sorted) exclude list */
        int64_t m = 0;
        ex = (int64_t *)DISTILL_MALLOC((size_t)sel->n_exclude * sizeof *ex);
        keep = (int64_t *)DISTILL_MALLOC((size_t)(n ? n : 1) * sizeof *keep);
        if (!ex || !keep) { DISTILL_FREE(ex); DISTILL_FREE(keep); distill__err(err, "select: out of memory"); return NULL; }
        memcpy(ex, sel->exclude, (size_t)sel->n_exclude * sizeof *ex);
        qsort(ex, (size_t)sel->n_exclude, sizeof *ex, distill__data_cmp_i64);
        for (i = 0; i < n; i++)
            if (!bsearch(&ds->rows[i].id, ex, (size_t)sel->n_exclude, sizeof *ex, distill__data_cmp_i64)) keep[m++] = i;
        DISTILL_FREE(ex);
        n = m;
    }
    count = n;
    if (sel->n_splits < 0 || (sel->n_splits > 0 && (sel->split < 0 || sel->split >= sel->n_splits))) {
        distill__err(err, "select: split %d of %d is out of range", sel->split, sel->n_splits);
        DISTILL_FREE(keep);
        return NULL;
    }
    if (sel->n_splits > 0) {
        count = n / sel->n_splits;
        from = count * sel->split;
    }
    if (sel->n < 0 || sel->n > count) {
        distill__err(err, "select: asked for %lld rows, only %lld available%s%s", (long long)sel->n, (long long)count,
                     sel->n_splits > 0 ? " in this split" : "", sel->n_exclude > 0 ? " after the excluded rows" : "");
        DISTILL_FREE(keep);
        return NULL;
    }
    if (sel->n > 0) count = sel->n;
    perm = (int64_t *)DISTILL_MALLOC((size_t)(n ? n : 1) * sizeof *perm);
    out = (distill_dataset *)DISTILL_MALLOC(sizeof *out);
    if (!perm || !out) {
        DISTILL_FREE(perm);
        DISTILL_FREE(out);
        DISTILL_FREE(keep);
        distill__err(err, "select: out of memory");
        return NULL;
    }
    distill__data_permute(perm, n, sel->seed);
    if (keep) { for (i = 0; i < n; i++) perm[i] = keep[perm[i]]; DISTILL_FREE(keep); }
    qsort(perm + from, (size_t)count, sizeof *perm, distill__data_cmp_i64);   /* back to file order */
    memset(out, 0, sizeof *out);
    out->pool = ds->pool;
    out->pool->refs++;
    out->has_tokens = ds->has_tokens;
    out->stats = ds->stats;
    out->rows = (distill__data_row *)DISTILL_MALLOC((size_t)(count ? count : 1) * sizeof *out->rows);
    if (!out->rows) { DISTILL_FREE(perm); distill_dataset_free(out); distill__err(err, "select: out of memory"); return NULL; }
    out->n_rows = out->cap_rows = count;
    /* recount what depends on the rows */
    out->stats.rows = count;
    out->stats.tokens = out->stats.supervised_tokens = out->stats.think_rows = out->stats.eot_rows = 0;
    out->stats.truncated = out->stats.lost_think = out->stats.min_len = out->stats.max_len = 0;
    memset(out->stats.hist, 0, sizeof out->stats.hist);
    for (i = 0; i < count; i++) {
        const distill__data_row *r = &ds->rows[perm[from + i]];
        int b = 0;
        out->rows[i] = *r;
        out->stats.tokens += r->n;
        out->stats.supervised_tokens += r->n_sup;
        if (r->flags & DISTILL_ROW_THINK) out->stats.think_rows++;
        if (r->flags & DISTILL_ROW_EOT) out->stats.eot_rows++;
        if (r->flags & DISTILL_ROW_TRUNCATED) out->stats.truncated++;
        if (r->flags & DISTILL_ROW_LOST_THINK) out->stats.lost_think++;
        if (i == 0 || r->n < out->stats.min_len) out->stats.min_len = r->n;
        if (r->n > out->stats.max_len) out->stats.max_len = r->n;
        while (b + 1 < DISTILL_DATA_HIST && ((int64_t)1 << (b + 1)) <= r->n) b++;
        out->stats.hist[b]++;
    }
    DISTILL_FREE(perm);
    if (sel->manifest) {
        distill_atomic_file af;
        if (distill_atomic_open(&af, sel->manifest, err) != 0) { distill_dataset_free(out); return NULL; }
        fprintf(af.f, "{\"seed\": %llu, \"n\": %lld, \"n_splits\": %d, \"split\": %d, \"of_rows\": %lld, \"rows\": [",
                (unsigned long long)sel->seed, (long long)count, sel->n_splits, sel->split, (long long)n);
        for (i = 0; i < count; i++) fprintf(af.f, "%s%lld", i ? ", " : "", (long long)out->rows[i].id);
        fprintf(af.f, "]}\n");
        if (distill_atomic_commit(&af, err) != 0) { distill_dataset_free(out); return NULL; }
    }
    return out;
}

/* ---- iteration ---------------------------------------------------------------------------- */
struct distill_loader {
    const distill_dataset *ds;
    distill_loader_options o;
    int64_t *perm;
    int64_t epoch, pos;
    uint64_t fingerprint;
    int T_cap;
    int32_t *tokens, *targets, *segments, *positions;
    float *weights;
    int *lengths;
    size_t cap;                 /* positions allocated in each (B,T) array */
    int cap_b;
    int64_t *rows;              /* dataset rows of the last batch */
    int n_rows, cap_rows;
};

DISTILL_API distill_loader_options distill_loader_options_default(void) {
    distill_loader_options o;
    memset(&o, 0, sizeof o);
    o.batch_rows = 8;
    o.shuffle = 1;
    o.seed = 1;
    return o;
}

static uint64_t distill__data_fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = (const unsigned char *)p;
    while (n--) { h ^= *b++; h *= 1099511628211ull; }
    return h;
}

static void distill__data_epoch_perm(distill_loader *L) {
    int64_t n = L->ds->n_rows, i;
    if (L->o.shuffle) distill__data_permute(L->perm, n, L->o.seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(L->epoch + 1)));
    else for (i = 0; i < n; i++) L->perm[i] = i;
}

DISTILL_API distill_loader *distill_loader_create(const distill_dataset *ds, const distill_loader_options *o,
                                                  distill_error *err) {
    distill_loader *L;
    int64_t i, longest = 0;
    uint64_t h = 14695981039346656037ull;
    distill_loader_options opt = o ? *o : distill_loader_options_default();
    if (!ds || ds->n_rows == 0) { distill__err(err, "loader: empty dataset"); return NULL; }
    if (!ds->has_tokens) { distill__err(err, "loader: the dataset was loaded without a tokenizer"); return NULL; }
    if (opt.batch_rows <= 0 && opt.token_budget <= 0) { distill__err(err, "loader: set batch_rows > 0 or token_budget > 0"); return NULL; }
    if (opt.seq_len < 0) { distill__err(err, "loader: seq_len must be >= 0"); return NULL; }
    for (i = 0; i < ds->n_rows; i++) if (ds->rows[i].n > longest) longest = ds->rows[i].n;
    if (opt.seq_len == 0) opt.seq_len = (int)longest;
    if (longest > opt.seq_len) {
        for (i = 0; i < ds->n_rows; i++) if (ds->rows[i].n > opt.seq_len) break;
        distill__err(err, "loader: row %lld (line %lld) has %d tokens > seq_len %d: load with max_seq <= seq_len",
                     (long long)ds->rows[i].id, (long long)ds->rows[i].line, ds->rows[i].n, opt.seq_len);
        return NULL;
    }
    if (opt.token_budget > 0 && opt.token_budget < (opt.pack ? opt.seq_len : longest)) {
        distill__err(err, "loader: token_budget %lld is smaller than one sequence (%lld tokens)", (long long)opt.token_budget,
                     (long long)(opt.pack ? opt.seq_len : longest));
        return NULL;
    }
    L = (distill_loader *)DISTILL_MALLOC(sizeof *L);
    if (!L) { distill__err(err, "loader: out of memory"); return NULL; }
    memset(L, 0, sizeof *L);
    L->ds = ds;
    L->o = opt;
    L->T_cap = opt.seq_len;
    L->perm = (int64_t *)DISTILL_MALLOC((size_t)ds->n_rows * sizeof *L->perm);
    if (!L->perm) { DISTILL_FREE(L); distill__err(err, "loader: out of memory"); return NULL; }
    distill__data_epoch_perm(L);
    /* the fingerprint: rows (ids and lengths) and the options that shape the batches */
    for (i = 0; i < ds->n_rows; i++) {
        h = distill__data_fnv(h, &ds->rows[i].id, sizeof ds->rows[i].id);
        h = distill__data_fnv(h, &ds->rows[i].n, sizeof ds->rows[i].n);
    }
    h = distill__data_fnv(h, &opt.batch_rows, sizeof opt.batch_rows);
    h = distill__data_fnv(h, &opt.token_budget, sizeof opt.token_budget);
    h = distill__data_fnv(h, &opt.seq_len, sizeof opt.seq_len);
    h = distill__data_fnv(h, &opt.pack, sizeof opt.pack);
    h = distill__data_fnv(h, &opt.shuffle, sizeof opt.shuffle);
    h = distill__data_fnv(h, &opt.seed, sizeof opt.seed);
    L->fingerprint = h;
    return L;
}

DISTILL_API void distill_loader_free(distill_loader *L) {
    if (!L) return;
    DISTILL_FREE(L->perm);
    DISTILL_FREE(L->tokens);
    DISTILL_FREE(L->targets);
    DISTILL_FREE(L->segments);
    DISTILL_FREE(L->positions);
    DISTILL_FREE(L->weights);
    DISTILL_FREE(L->lengths);
    DISTILL_FREE(L->rows);
    DISTILL_FREE(L);
}

static int distill__data_loader_reserve(distill_loader *L, int B, int T) {
    size_t need = (size_t)B * (size_t)T;
    if (need > L->cap) {
        void *p[6];
        int k;
        p[0] = DISTILL_REALLOC(L->tokens, need * sizeof(int32_t));
        if (p[0]) L->tokens = (int32_t *)p[0];
        p[1] = DISTILL_REALLOC(L->targets, need * sizeof(int32_t));
        if (p[1]) L->targets = (int32_t *)p[1];
        p[2] = DISTILL_REALLOC(L->segments, need * sizeof(int32_t));
        if (p[2]) L->segments = (int32_t *)p[2];
        p[3] = DISTILL_REALLOC(L->positions, need * sizeof(int32_t));
        if (p[3]) L->positions = (int32_t *)p[3];
        p[4] = DISTILL_REALLOC(L->weights, need * sizeof(float));
        if (p[4]) L->weights = (float *)p[4];
        p[5] = (void *)L;
        for (k = 0; k < 5; k++) if (!p[k]) return -1;
        L->cap = need;
    }
    if (B > L->cap_b) {
        int *nl = (int *)DISTILL_REALLOC(L->lengths, (size_t)B * sizeof(int));
        if (!nl) return -1;
        L->lengths = nl;
        L->cap_b = B;
    }
    return 0;
}

static int distill__data_push_row(distill_loader *L, int64_t r) {
    if (L->n_rows == L->cap_rows) {
        int nc = L->cap_rows ? L->cap_rows * 2 : 64;
        int64_t *nr = (int64_t *)DISTILL_REALLOC(L->rows, (size_t)nc * sizeof *nr);
        if (!nr) return -1;
        L->rows = nr;
        L->cap_rows = nc;
    }
    L->rows[L->n_rows++] = r;
    return 0;
}

/* Place row r at (b, off): inputs tokens[0..n), targets the next token where it is supervised.
   targets[t] = tokens[t+1] with weight w[t+1] when w[t+1] > 0, else -1; the last position of a
   row has no target inside the row, so it gets -1 (this is what keeps packed rows apart). */
static void distill__data_place(distill_loader *L, int T, int b, int off, int seg, const distill__data_row *r) {
    const int32_t *tok = L->ds->pool->tokens + r->off;
    const float *w = L->ds->pool->weights + r->off;
    size_t base = (size_t)b * (size_t)T + (size_t)off;
    int t;
    for (t = 0; t < r->n; t++) {
        L->tokens[base + t] = tok[t];
        if (t + 1 < r->n && w[t + 1] > 0) {
            L->targets[base + t] = tok[t + 1];
            L->weights[base + t] = w[t + 1];
        } else {
            L->targets[base + t] = -1;
            L->weights[base + t] = 0.0f;
        }
        L->segments[base + t] = seg;
        L->positions[base + t] = t;
    }
}

DISTILL_API int distill_loader_next(distill_loader *L, struct distill_batch *batch, distill_error *err) {
    const distill__data_row *rows = L->ds->rows;
    int64_t n = L->ds->n_rows;
    int B = 0, T = 0, b, max_b;
    int *fill = NULL;
    L->n_rows = 0;
    if (L->pos >= n) { L->epoch++; L->pos = 0; distill__data_epoch_perm(L); }
    if (!L->o.pack) {
        /* rows in permutation order until batch_rows or the token budget (B * longest) is hit */
        while (L->pos < n) {
            const distill__data_row *r = &rows[L->perm[L->pos]];
            int nt = r->n > T ? r->n : T;
            if (L->o.batch_rows > 0 && B == L->o.batch_rows) break;
            if (L->o.token_budget > 0 && B > 0 && (int64_t)(B + 1) * nt > L->o.token_budget) break;
            if (distill__data_push_row(L, L->perm[L->pos]) != 0) return distill__err(err, "loader: out of memory");
            B++;
            T = nt;
            L->pos++;
        }
        if (distill__data_loader_reserve(L, B, T) != 0) return distill__err(err, "loader: out of memory");
        for (b = 0; b < B; b++) {
            const distill__data_row *r = &rows[L->rows[b]];
            size_t k;
            distill__data_place(L, T, b, 0, 0, r);
            for (k = (size_t)b * T + r->n; k < (size_t)(b + 1) * T; k++) {
                L->tokens[k] = 0;
                L->targets[k] = -1;
                L->weights[k] = 0;
                L->segments[k] = -1;
                L->positions[k] = 0;
            }
            L->lengths[b] = r->n;
        }
        batch->segments = NULL;
        batch->positions = NULL;
    } else {
        /* packing: fill sequences of T_cap positions in permutation order (next-fit); a row that
           does not fit in the current sequence starts the next one */
        int cur = 0;
        max_b = L->o.batch_rows > 0 ? L->o.batch_rows : 1 << 30;
        if (L->o.token_budget > 0 && L->o.token_budget / L->T_cap < max_b) max_b = (int)(L->o.token_budget / L->T_cap);
        if (max_b < 1) max_b = 1;
        fill = (int *)DISTILL_MALLOC((size_t)(max_b < 4096 ? max_b : 4096) * sizeof(int));
        if (!fill) return distill__err(err, "loader: out of memory");
        B = 1;
        fill[0] = 0;
        while (L->pos < n) {
            const distill__data_row *r = &rows[L->perm[L->pos]];
            if (fill[cur] + r->n > L->T_cap) {
                if (B == max_b || B == 4096) break;
                cur = B++;
                fill[cur] = 0;
            }
            if (distill__data_push_row(L, L->perm[L->pos]) != 0) { DISTILL_FREE(fill); return distill__err(err, "loader: out of memory"); }
            fill[cur] += r->n;
            L->pos++;
        }
        for (b = 0; b < B; b++) if (fill[b] > T) T = fill[b];
        if (distill__data_loader_reserve(L, B, T) != 0) { DISTILL_FREE(fill); return distill__err(err, "loader: out of memory"); }
        {
            int i = 0, seg = 0, off = 0;
            size_t k;
            b = 0;
            for (k = 0; k < (size_t)B * T; k++) {
                L->tokens[k] = 0;
                L->targets[k] = -1;
                L->weights[k] = 0;
                L->segments[k] = -1;
                L->positions[k] = 0;
            }
            for (i = 0; i < L->n_rows; i++) {
                const distill__data_row *r = &rows[L->rows[i]];
                if (off + r->n > fill[b] || (off + r->n > L->T_cap)) { b++; seg = 0; off = 0; }
                distill__data_place(L, T, b, off, seg, r);
                off += r->n;
                seg++;
            }
        }
        for (b = 0; b < B; b++) L->lengths[b] = fill[b];
        DISTILL_FREE(fill);
        batch->segments = L->segments;
        batch->positions = L->positions;
    }
    batch->B = B;
    batch->T = T;
    batch->tokens = L->tokens;
    batch->targets = L->targets;
    batch->weights = L->weights;
    batch->lengths = L->lengths;
    return 0;
}

DISTILL_API distill_loader_cursor distill_loader_get_cursor(const distill_loader *L) {
    distill_loader_cursor c;
    c.epoch = L->epoch;
    c.pos = L->pos;
    c.fingerprint = L->fingerprint;
    return c;
}

DISTILL_API int distill_loader_set_cursor(distill_loader *L, const distill_loader_cursor *c, distill_error *err) {
    if (c->fingerprint != L->fingerprint)
        return distill__err(err, "loader: the cursor was saved for other data or other loader options "
                                 "(fingerprint %016llx, this loader %016llx)",
                            (unsigned long long)c->fingerprint, (unsigned long long)L->fingerprint);
    if (c->epoch < 0 || c->pos < 0 || c->pos > L->ds->n_rows)
        return distill__err(err, "loader: invalid cursor (epoch %lld, pos %lld)", (long long)c->epoch, (long long)c->pos);
    L->epoch = c->epoch;
    L->pos = c->pos;
    distill__data_epoch_perm(L);
    return 0;
}

DISTILL_API const int64_t *distill_loader_last_rows(const distill_loader *L, int *n) {
    if (n) *n = L->n_rows;
    return L->rows;
}
/* ===================================================================================== */
/* MODEL: a Llama / Qwen2-style decoder with a hand-written backward pass, AdamW           */
/* ===================================================================================== */
/*
   The network, for tokens (B,T):

       x_0      = tok_emb[tokens]                                   (B,T,C)
       for each layer l:
           a    = rmsnorm(x_l) * attn_norm
           q,k,v= a Wq^T (+bq), a Wk^T (+bk), a Wv^T (+bv)          (B,T,NH,HS) (B,T,NKV,HS)
           q,k  = rope(q), rope(k)                                   rotate_half convention
           o    = causal_gqa_attention(q, k, v)                      (B,T,NH,HS)
           h    = x_l + o Wo^T                                       (B,T,C)
           f    = rmsnorm(h) * ffn_norm
           x_l+1= h + (silu(f Wg^T) * (f Wu^T)) Wd^T                 (B,T,C)
       logits   = rmsnorm(x_L) * final_norm . lm_head^T              (B,T,V), never all resident

   RoPE follows Hugging Face's "rotate_half" convention (the one in modeling_llama.py and
   modeling_qwen2.py): in each head, dimension i < HS/2 is paired with dimension i + HS/2, with
   angle pos * theta^(-2i/HS). Weights exported by PyTorch/HF therefore load unpermuted.
   (Meta's original checkpoints and llama2.c pair interleaved dims 2i, 2i+1 instead; a loader of
   those must permute the rows of Wq and Wk.)

   ACTIVATION MEMORY of a training step, in bytes, with BT = B*T, KVD = NKV*HS,
   K = min(H, BT) positions per LM-head chunk, H = DISTILL_HEAD_CHUNK * max(1, 4096 / V):

       4 * [ L * (BT*(6C + 2*KVD + 2F + 2) + B*NH*T)      saved per layer: x, attn-norm out, q,
                                                          k, v, attention out, residual h,
                                                          ffn-norm out, gate, up (6C + 2KVD + 2F),
                                                          two rstd (2), the attention
                                                          log-sum-exp (NH per position)
           + BT*(2C + 1)                                  x_L, final-norm out, its rstd
           + BT*(2C + max(2F, C + 2*KVD))                 backward scratch: d(residual), one
                                                          (BT,C) buffer reused for dnorm/datt,
                                                          and dh/dgate/dup or dq/dk/dv
           + K*(V + 2C)                                   one chunk of logits/dlogits and its
                                                          gathered inputs and their gradient
           + BT*HS ]                                      RoPE: cos and sin of every position's
                                                          HS/2 angles, computed once per step
       + 20*BT + 4*B                                      RoPE positions, masked tokens, segment
                                                          starts (int32 each), the supervised
                                                          position list (int64); lengths (B)
       + 40*ceil(K/4)                                     loss-statistics slots (fixed order)

   No term is quadratic in T (the attention keeps only the per-row log-sum-exp and recomputes
   the probabilities in the backward pass) and none is B*T*V (the LM head runs in chunks).
   Everything is allocated once by distill_model_create at capacity (max_batch, max_seq);
   distill_model_activation_bytes() evaluates the formula and a test checks it against the
   bytes the implementation really allocates. The parameters, gradients and AdamW moments add
   4 * num_params bytes each.

   DETERMINISM. Every parallel loop writes disjoint outputs (rows, (batch, kv-head) pairs,
   columns), and every reduction over rows runs in a fixed order that does not depend on the
   number of threads, so 1 and N threads give bit-identical losses and gradients.
*/

/* ---- config ----------------------------------------------------------------------- */

DISTILL_API distill_config distill_config_default(void) {
    distill_config c;
    memset(&c, 0, sizeof c);
    c.vocab_size = 32000;
    c.dim = 512;
    c.n_layers = 8;
    c.n_heads = 8;
    c.n_kv_heads = 8;
    c.hidden_dim = 1408;
    c.rope_theta = 10000.0f;
    c.norm_eps = 1e-5f;
    c.qkv_bias = 0;
    c.tie_embeddings = 1;
    c.init_std = 0.02f;
    c.scale_residual_init = 1;
    return c;
}

/* Limits that keep every derived count well inside int and size_t. */
#define DISTILL__MAX_DIM (1 << 20)
#define DISTILL__MAX_VOCAB (1 << 26)
#define DISTILL__MAX_LAYERS 4096
#define DISTILL__MAX_HIDDEN (1 << 30)

DISTILL_API int distill_config_head_dim(const distill_config *c) {
    return c->head_dim > 0 ? c->head_dim : c->dim / (c->n_heads > 0 ? c->n_heads : 1);
}

/* The parameter count of a (valid-looking) config, 0 on size_t overflow. */
static size_t distill__count_params(const distill_config *c, size_t *padded) {
    size_t C = (size_t)c->dim, V = (size_t)c->vocab_size, F = (size_t)c->hidden_dim;
    size_t HS = (size_t)distill_config_head_dim(c), QD = HS * (size_t)c->n_heads, KVD = HS * (size_t)c->n_kv_heads;
    size_t per_layer = 0, total = 0, pad = 0, t = 0, parts[16];
    int n = 0, i;
    /* the per-layer tensors, in table order */
    if (QD != 0 && C > SIZE_MAX / QD) return 0;
    parts[n++] = C; parts[n++] = QD * C; parts[n++] = KVD * C; parts[n++] = KVD * C; parts[n++] = C * QD;
    if (c->qkv_bias) { parts[n++] = QD; parts[n++] = KVD; parts[n++] = KVD; }
    if (c->qk_norm) { parts[n++] = HS; parts[n++] = HS; }
    parts[n++] = C; parts[n++] = F * C; parts[n++] = F * C; parts[n++] = C * F;
    if (F != 0 && C > SIZE_MAX / F) return 0;
    if (C > SIZE_MAX / C) return 0;
    if (V != 0 && C > SIZE_MAX / V) return 0;
    for (i = 0; i < n; i++) {
        size_t r = (parts[i] + 15) / 16 * 16;
        if (!distill__add_size(per_layer, parts[i], &per_layer)) return 0;
        if (!distill__add_size(pad, r, &pad)) return 0;
    }
    if (!distill__mul_size(per_layer, (size_t)c->n_layers, &total)) return 0;
    if (!distill__mul_size(pad, (size_t)c->n_layers, &pad)) return 0;
    t = V * C + C + (c->tie_embeddings ? 0 : V * C);
    if (!distill__add_size(total, t, &total)) return 0;
    if (!distill__add_size(pad, (V * C + 15) / 16 * 16 + (C + 15) / 16 * 16, &pad)) return 0;
    if (!c->tie_embeddings && !distill__add_size(pad, (V * C + 15) / 16 * 16, &pad)) return 0;
    /* params, grads, m and v must all be addressable in bytes */
    if (pad > SIZE_MAX / 16) return 0;
    if (padded) *padded = pad;
    return total;
}

DISTILL_API int distill_config_validate(const distill_config *c, distill_error *err) {
    if (!c) return distill__err(err, "config: NULL");
    if (c->vocab_size < 1 || c->vocab_size > DISTILL__MAX_VOCAB)
        return distill__err(err, "config: vocab_size (%d) must be in [1, %d]", c->vocab_size, DISTILL__MAX_VOCAB);
    if (c->dim < 1 || c->dim > DISTILL__MAX_DIM)
        return distill__err(err, "config: dim (%d) must be in [1, %d]", c->dim, DISTILL__MAX_DIM);
    if (c->n_layers < 1 || c->n_layers > DISTILL__MAX_LAYERS)
        return distill__err(err, "config: n_layers (%d) must be in [1, %d]", c->n_layers, DISTILL__MAX_LAYERS);
    if (c->n_heads < 1 || c->n_heads > c->dim)
        return distill__err(err, "config: n_heads (%d) must be in [1, dim (%d)]", c->n_heads, c->dim);
    if (c->n_kv_heads < 1 || c->n_kv_heads > c->n_heads)
        return distill__err(err, "config: n_kv_heads (%d) must be in [1, n_heads (%d)]", c->n_kv_heads, c->n_heads);
    if (c->n_heads % c->n_kv_heads != 0)
        return distill__err(err, "config: n_heads (%d) must be divisible by n_kv_heads (%d)", c->n_heads, c->n_kv_heads);
    if (c->head_dim < 0 || c->head_dim > 65536 || c->head_dim % 2 != 0)
        return distill__err(err, "config: head_dim (%d) must be 0 (dim / n_heads) or an even number up to 65536", c->head_dim);
    if (c->head_dim == 0 && c->dim % c->n_heads != 0)
        return distill__err(err, "config: dim (%d) must be divisible by n_heads (%d)", c->dim, c->n_heads);
    if (c->head_dim == 0 && (c->dim / c->n_heads) % 2 != 0)
        return distill__err(err, "config: head size dim/n_heads (%d) must be even for rotary embeddings", c->dim / c->n_heads);
    if ((double)distill_config_head_dim(c) * c->n_heads > (double)DISTILL__MAX_DIM)
        return distill__err(err, "config: n_heads * head_dim (%d * %d) must be at most %d", c->n_heads, c->head_dim, DISTILL__MAX_DIM);
    if (c->qk_norm != 0 && c->qk_norm != 1) return distill__err(err, "config: qk_norm (%d) must be 0 or 1", c->qk_norm);
    if (c->rope_scaling < DISTILL_ROPE_DEFAULT || c->rope_scaling > DISTILL_ROPE_LLAMA3)
        return distill__err(err, "config: rope_scaling (%d) must be 0 (default), 1 (linear) or 2 (llama3)", c->rope_scaling);
    if (c->rope_scaling && !(c->rope_factor >= 1.0f && c->rope_factor <= 1e6f))
        return distill__err(err, "config: rope_factor (%g) must be in [1, 1e6]", (double)c->rope_factor);
    if (c->rope_scaling == DISTILL_ROPE_LLAMA3 &&
        (!(c->rope_low_freq_factor > 0.0f) || !(c->rope_high_freq_factor > c->rope_low_freq_factor) ||
         !(c->rope_high_freq_factor < 1e6f) || c->rope_original_max_pos < 1))
        return distill__err(err, "config: llama3 rope scaling needs 0 < low_freq_factor (%g) < high_freq_factor (%g) and "
                            "original_max_position_embeddings (%d) >= 1", (double)c->rope_low_freq_factor,
                            (double)c->rope_high_freq_factor, c->rope_original_max_pos);
    if (c->hidden_dim < 1 || c->hidden_dim > DISTILL__MAX_HIDDEN)
        return distill__err(err, "config: hidden_dim (%d) must be in [1, %d]", c->hidden_dim, DISTILL__MAX_HIDDEN);
    if (!(c->rope_theta > 1.0f) || !(c->rope_theta < FLT_MAX))
        return distill__err(err, "config: rope_theta (%g) must be a finite number > 1", (double)c->rope_theta);
    if (!(c->norm_eps > 0.0f) || !(c->norm_eps < 1.0f))
        return distill__err(err, "config: norm_eps (%g) must be in (0, 1)", (double)c->norm_eps);
    if (c->qkv_bias != 0 && c->qkv_bias != 1)
        return distill__err(err, "config: qkv_bias (%d) must be 0 or 1", c->qkv_bias);
    if (c->tie_embeddings != 0 && c->tie_embeddings != 1)
        return distill__err(err, "config: tie_embeddings (%d) must be 0 or 1", c->tie_embeddings);
    if (c->scale_residual_init != 0 && c->scale_residual_init != 1)
        return distill__err(err, "config: scale_residual_init (%d) must be 0 or 1", c->scale_residual_init);
    if (!(c->init_std >= 0.0f) || !(c->init_std <= 10.0f))
        return distill__err(err, "config: init_std (%g) must be in [0, 10]", (double)c->init_std);
    if (distill__count_params(c, NULL) == 0)
        return distill__err(err, "config: parameter count overflows (vocab_size %d, dim %d, n_layers %d, hidden_dim %d)",
                            c->vocab_size, c->dim, c->n_layers, c->hidden_dim);
    return 0;
}

/* ===================================================================================== */
/* Level 3: the ops, each forward next to its backward                                    */
/* ===================================================================================== */

/* ---- embedding ----------------------------------------------------------------------
   tokens (N), table (V,C), out (N,C):  out[n] = table[tokens[n]].  A token < 0 marks a
   position that is not part of the sequence (past its row's length): its row is zero.
   backward: dtable[tokens[n]] += dout[n]. Parallel over column blocks, each summing over n
   in order, so repeated tokens accumulate deterministically. */
typedef struct { float *out; const float *table, *dout; const uint16_t *table16; const int32_t *tok; int N, C; } distill__emb_ctx;

static void distill__emb_fwd_task(void *p, int64_t b, int64_t e, int th) {
    distill__emb_ctx *c = (distill__emb_ctx *)p;
    int64_t n;
    (void)th;
    for (n = b; n < e; n++) {
        float *o = c->out + (size_t)n * c->C;
        int j;
        if (c->tok[n] < 0) memset(o, 0, sizeof(float) * (size_t)c->C);
        else if (c->table16)   /* a BF16 table: widened exactly */
            for (j = 0; j < c->C; j++) o[j] = distill__h2f(c->table16[(size_t)c->tok[n] * c->C + j]);
        else memcpy(o, c->table + (size_t)c->tok[n] * c->C, sizeof(float) * (size_t)c->C);
    }
}
DISTILL_API void distill_embedding_forward(float *out, const int32_t *tokens, const float *table, int N, int C) {
    int pr_ = distill__prof_begin("embedding fwd");
    distill__emb_ctx c;
    memset(&c, 0, sizeof c);
    c.out = out; c.table = table; c.tok = tokens; c.N = N; c.C = C;
    distill_parallel_for(N, 64, distill__emb_fwd_task, &c);
    distill__prof_end(pr_);
}
/* The same from a BF16 table (a model after distill_model_to_bf16) */
static void distill__embedding_forward16(float *out, const int32_t *tokens, const uint16_t *table16, int N, int C) {
    distill__emb_ctx c;
    memset(&c, 0, sizeof c);
    c.out = out; c.table16 = table16; c.tok = tokens; c.N = N; c.C = C;
    distill_parallel_for(N, 64, distill__emb_fwd_task, &c);
}
static void distill__emb_bwd_task(void *p, int64_t b, int64_t e, int th) {
    distill__emb_ctx *c = (distill__emb_ctx *)p;
    int n;
    (void)th;
    for (n = 0; n < c->N; n++) {
        int64_t i;
        float *d;
        const float *g;
        if (c->tok[n] < 0) continue;
        d = c->out + (size_t)c->tok[n] * c->C;
        g = c->dout + (size_t)n * c->C;
        for (i = b; i < e; i++) d[i] += g[i];
    }
}
DISTILL_API void distill_embedding_backward(float *dtable, const float *dout, const int32_t *tokens, int N, int C) {
    int pr_ = distill__prof_begin("embedding bwd");
    distill__emb_ctx c;
    c.out = dtable; c.table = NULL; c.table16 = NULL; c.dout = dout; c.tok = tokens; c.N = N; c.C = C;
    distill_parallel_for(C, 32, distill__emb_bwd_task, &c);
    distill__prof_end(pr_);
}

/* ---- RMSNorm ------------------------------------------------------------------------
   inp (N,C), weight (C), out (N,C), rstd (N):
       rstd = 1 / sqrt(mean_i x_i^2 + eps),    out_i = x_i * rstd * w_i
   backward, with g_i = dout_i * w_i (accumulates into dinp and dweight):
       dx_i += rstd * g_i - x_i * rstd^3 * (sum_j g_j x_j) / C
       dw_i += sum over rows of dout_i * x_i * rstd
   dinp is split by rows, dweight by column blocks (each sums its rows in order). */
typedef struct {
    float *out, *rstd, *dinp, *dweight;
    const float *inp, *weight, *dout, *crstd;
    int C; float eps;
} distill__rms_ctx;

static void distill__rms_fwd_task(void *p, int64_t b, int64_t e, int th) {
    distill__rms_ctx *c = (distill__rms_ctx *)p;
    int64_t n;
    int C = c->C;
    (void)th;
    for (n = b; n < e; n++) {
        const float *x = c->inp + (size_t)n * C;
        float *o = c->out + (size_t)n * C;
        float r = 1.0f / sqrtf(distill_vec_dot(x, x, C) / (float)C + c->eps);
        distill__ops()->rms_row(o, x, c->weight, r, C);
        if (c->rstd) c->rstd[n] = r;
    }
}
DISTILL_API void distill_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N, int C, float eps) {
    int pr_ = distill__prof_begin("rmsnorm fwd");
    distill__rms_ctx c;
    memset(&c, 0, sizeof c);
    c.out = out; c.rstd = rstd; c.inp = inp; c.weight = weight; c.C = C; c.eps = eps;
    distill_parallel_for(N, 16, distill__rms_fwd_task, &c);
    distill__prof_end(pr_);
}
static void distill__rms_bwd_dx_task(void *p, int64_t b, int64_t e, int th) {
    distill__rms_ctx *c = (distill__rms_ctx *)p;
    const distill__isa_ops *ops = distill__ops();
    int64_t n;
    int C = c->C;
    (void)th;
    for (n = b; n < e; n++)
        ops->rms_bwd_row(c->dinp + (size_t)n * C, c->dout + (size_t)n * C, c->inp + (size_t)n * C, c->weight,
                         c->crstd[n], C);
}
typedef struct { const distill__rms_ctx *c; int N; } distill__rms_dw_ctx;
static void distill__rms_bwd_dw_task(void *p, int64_t b, int64_t e, int th) {
    const distill__rms_dw_ctx *d = (const distill__rms_dw_ctx *)p;
    const distill__rms_ctx *c = d->c;
    const distill__isa_ops *ops = distill__ops();
    int n;
    (void)th;
    for (n = 0; n < d->N; n++)
        ops->rms_dw_row(c->dweight + b, c->dout + (size_t)n * c->C + b, c->inp + (size_t)n * c->C + b, c->crstd[n],
                        (int)(e - b));
}
DISTILL_API void distill_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                                          const float *weight, const float *rstd, int N, int C) {
    int pr_ = distill__prof_begin("rmsnorm bwd");
    distill__rms_ctx c;
    distill__rms_dw_ctx d;
    memset(&c, 0, sizeof c);
    c.dinp = dinp; c.dweight = dweight; c.dout = dout; c.inp = inp; c.weight = weight; c.crstd = rstd; c.C = C;
    if (dinp) distill_parallel_for(N, 16, distill__rms_bwd_dx_task, &c);
    d.c = &c; d.N = N;
    /* dweight: one column range per thread (multiples of 16), each walking all rows once */
    if (dweight) {
        int nth = distill_get_threads(), chunk = (C + nth - 1) / nth;
        chunk = (chunk + 15) / 16 * 16;
        distill_parallel_for(C, chunk, distill__rms_bwd_dw_task, &d);
    }
    distill__prof_end(pr_);
}

/* ---- RoPE ---------------------------------------------------------------------------
   x (N,nh,hs) in place, pos (N) (NULL: n). For each head, i < hs/2 pairs with j = i + hs/2:
       a = pos * theta^(-2i/hs)
       y_i = x_i cos a - x_j sin a,     y_j = x_j cos a + x_i sin a
   A rotation, so the backward is the transposed rotation (angle -a):
       dx_i = dy_i cos a + dy_j sin a,  dx_j = dy_j cos a - dy_i sin a
   Angles are formed in double (positions up to millions stay accurate). The frequencies
   theta^(-2i/hs) are computed once per task chunk, sin/cos once per (position, i) into a small
   stack table, and the rotation then runs over every head as contiguous loops. Pairs are taken
   in blocks of DISTILL__ROPE_BLOCK so any head size works without allocating. */
#define DISTILL__ROPE_BLOCK 64
typedef struct { float *x; const int32_t *pos; int nh, hs; double theta; float sign; const double *inv; } distill__rope_ctx;

static void distill__rope_task(void *p, int64_t b, int64_t e, int th) {
    const distill__rope_ctx *c = (const distill__rope_ctx *)p;
    double freq[DISTILL__ROPE_BLOCK];
    float cs[DISTILL__ROPE_BLOCK], sn[DISTILL__ROPE_BLOCK];
    int half = c->hs / 2, h, i, i0, nb;
    int64_t n;
    (void)th;
    for (i0 = 0; i0 < half; i0 += nb) {
        nb = half - i0 < DISTILL__ROPE_BLOCK ? half - i0 : DISTILL__ROPE_BLOCK;
        for (i = 0; i < nb; i++) freq[i] = c->inv ? c->inv[i0 + i] : pow(c->theta, -2.0 * (double)(i0 + i) / (double)c->hs);
        for (n = b; n < e; n++) {
            double pos = c->pos ? (double)c->pos[n] : (double)n;
            for (i = 0; i < nb; i++) {
                double a = pos * freq[i];
                cs[i] = (float)cos(a);
                sn[i] = c->sign * (float)sin(a);
            }
            for (h = 0; h < c->nh; h++) {
                float *xi = c->x + ((size_t)n * c->nh + h) * c->hs + i0, *xj = xi + half;
                for (i = 0; i < nb; i++) {
                    float u = xi[i], v = xj[i];
                    xi[i] = u * cs[i] - v * sn[i];
                    xj[i] = v * cs[i] + u * sn[i];
                }
            }
        }
    }
}
DISTILL_API void distill_rope_forward(float *x, const int32_t *pos, int N, int nh, int hs, float theta) {
    distill__rope_ctx c;
    c.x = x; c.pos = pos; c.nh = nh; c.hs = hs; c.theta = theta; c.sign = 1.0f; c.inv = NULL;
    distill_parallel_for(N, 16, distill__rope_task, &c);
}
DISTILL_API void distill_rope_backward(float *dx, const int32_t *pos, int N, int nh, int hs, float theta) {
    distill__rope_ctx c;
    c.x = dx; c.pos = pos; c.nh = nh; c.hs = hs; c.theta = theta; c.sign = -1.0f; c.inv = NULL;
    distill_parallel_for(N, 16, distill__rope_task, &c);
}
DISTILL_API void distill_rope_forward_freqs(float *x, const int32_t *pos, int N, int nh, int hs, const double *inv_freq) {
    int pr_ = distill__prof_begin("rope fwd");
    distill__rope_ctx c;
    c.x = x; c.pos = pos; c.nh = nh; c.hs = hs; c.theta = 0; c.sign = 1.0f; c.inv = inv_freq;
    distill_parallel_for(N, 16, distill__rope_task, &c);
    distill__prof_end(pr_);
}
DISTILL_API void distill_rope_backward_freqs(float *dx, const int32_t *pos, int N, int nh, int hs, const double *inv_freq) {
    int pr_ = distill__prof_begin("rope bwd");
    distill__rope_ctx c;
    c.x = dx; c.pos = pos; c.nh = nh; c.hs = hs; c.theta = 0; c.sign = -1.0f; c.inv = inv_freq;
    distill_parallel_for(N, 16, distill__rope_task, &c);
    distill__prof_end(pr_);
}

/* The model's RoPE: the cos and sin of every position's angles are computed once per forward
   (the same float values distill__rope_task computes) into a (BT, HS/2) table, which every
   layer's q and k, forward and backward, then only read. */
typedef struct { float *cs, *sn; const int32_t *pos; const double *inv; int half; } distill__rope_tab_ctx;
static void distill__rope_tab_task(void *p, int64_t b, int64_t e, int th) {
    const distill__rope_tab_ctx *c = (const distill__rope_tab_ctx *)p;
    int64_t n;
    int i;
    (void)th;
    for (n = b; n < e; n++)
        for (i = 0; i < c->half; i++) {
            double a = (double)c->pos[n] * c->inv[i];
            c->cs[n * c->half + i] = (float)cos(a);
            c->sn[n * c->half + i] = (float)sin(a);
        }
}
static void distill__rope_table(float *cs, float *sn, const int32_t *pos, int N, int hs, const double *inv) {
    distill__rope_tab_ctx c;
    c.cs = cs; c.sn = sn; c.pos = pos; c.inv = inv; c.half = hs / 2;
    distill_parallel_for(N, 16, distill__rope_tab_task, &c);
}
typedef struct { float *x; const float *cs, *sn; int nh, hs; float sign; } distill__rope_apply_ctx;
static void distill__rope_apply_task(void *p, int64_t b, int64_t e, int th) {
    const distill__rope_apply_ctx *c = (const distill__rope_apply_ctx *)p;
    int half = c->hs / 2, h, i;
    int64_t n;
    (void)th;
    for (n = b; n < e; n++) {
        const float *cs = c->cs + n * half, *sn0 = c->sn + n * half;
        for (h = 0; h < c->nh; h++) {
            float *xi = c->x + ((size_t)n * c->nh + h) * c->hs, *xj = xi + half;
            for (i = 0; i < half; i++) {
                float u = xi[i], v = xj[i], sn = c->sign * sn0[i];
                xi[i] = u * cs[i] - v * sn;
                xj[i] = v * cs[i] + u * sn;
            }
        }
    }
}
/* x (N,nh,hs) rotated in place by the table's angles (sign -1: the backward's inverse rotation) */
static void distill__rope_apply(float *x, const float *cs, const float *sn, int N, int nh, int hs, float sign) {
    int pr_ = distill__prof_begin(sign > 0 ? "rope fwd" : "rope bwd");
    distill__rope_apply_ctx c;
    c.x = x; c.cs = cs; c.sn = sn; c.nh = nh; c.hs = hs; c.sign = sign;
    distill_parallel_for(N, 16, distill__rope_apply_task, &c);
    distill__prof_end(pr_);
}

/* The frequencies, as transformers' RoPE initialisation computes them:
       default  inv_i = theta^(-2i/HS)
       linear   inv_i / factor                                  (positions stretched by factor)
       llama3   with wavelength w_i = 2 pi / inv_i, Lo = orig / low_freq_factor, Hi = orig / high_freq_factor:
                w_i < Hi: inv_i;   w_i > Lo: inv_i / factor;   otherwise, with s = (orig / w_i - low) / (high - low):
                (1 - s) inv_i / factor + s inv_i
   (attention is not rescaled for these types). */
DISTILL_API void distill_rope_inv_freq(const distill_config *c, double *inv) {
    int hs = distill_config_head_dim(c), i;
    double f = c->rope_factor, lo = c->rope_low_freq_factor, hi = c->rope_high_freq_factor, orig = c->rope_original_max_pos;
    for (i = 0; i < hs / 2; i++) {
        double v = pow((double)c->rope_theta, -2.0 * (double)i / (double)hs), w = 2.0 * 3.14159265358979323846 / v;
        if (c->rope_scaling == DISTILL_ROPE_LINEAR) v /= f;
        else if (c->rope_scaling == DISTILL_ROPE_LLAMA3) {
            if (w > orig / lo) v /= f;
            else if (!(w < orig / hi)) {
                double s = (orig / w - lo) / (hi - lo);
                v = (1.0 - s) * v / f + s * v;
            }
        }
        inv[i] = v;
    }
}

/* ---- causal grouped-query attention, flash style ------------------------------------
   q (B,T,NH,HS), k,v (B,T,NKV,HS), out (B,T,NH,HS), lse (B,NH,T). Query head h reads kv
   head g = h / (NH/NKV) (Hugging Face's repeat_kv). Query t of row b sees keys j with
   kstart[b,t] <= j <= t (kstart: start of its packed segment, 0 without packing); positions
   t >= lengths[b] are outside the sequence and get out = 0.
       s_j = q . k_j / sqrt(HS),   p_j = exp(s_j - lse),   lse = log sum_j exp(s_j)
       out = sum_j p_j v_j
   The forward streams over blocks of keys with an online softmax (running max m, running sum
   l, rescaling the accumulator when m grows) and stores only lse: no (T,T) matrix exists.
   backward, with D = dout . out (= sum_j p_j dp_j), recomputing p_j from lse:
       dp_j = dout . v_j,   ds_j = p_j (dp_j - D)
       dq  = sum_j ds_j k_j / sqrt(HS),   dk_j += ds_j q / sqrt(HS),   dv_j += p_j dout
   dq, dk, dv are overwritten. Work is split by (b, kv head), which owns its dk/dv rows and the
   dq rows of its query heads: no two tasks write the same float. */
#define DISTILL__ATT_BLOCK 64
typedef struct {
    float *out, *lse, *dq, *dk, *dv;
    const float *q, *k, *v, *dout, *cout, *clse;
    const int *lengths, *kstart;
    int B, T, NH, NKV, HS;
} distill__att_ctx;

static void distill__att_fwd_task(void *p, int64_t b0, int64_t e0, int th) {
    const distill__att_ctx *c = (const distill__att_ctx *)p;
    int T = c->T, NH = c->NH, NKV = c->NKV, HS = c->HS, rep = NH / NKV;
    float scale = 1.0f / sqrtf((float)HS), s[DISTILL__ATT_BLOCK];
    int64_t task;
    (void)th;
    for (task = b0; task < e0; task++) {
        int b = (int)(task / NH), h = (int)(task % NH), g = h / rep, t, j0, jj;
        int len = c->lengths ? c->lengths[b] : T;
        for (t = 0; t < T; t++) {
            size_t n = (size_t)b * T + t;
            float *o = c->out + (n * NH + h) * HS;
            const float *qr = c->q + (n * NH + h) * HS;
            float m = -INFINITY, l = 0.0f;
            int ks = c->kstart ? c->kstart[n] : 0;
            memset(o, 0, sizeof(float) * (size_t)HS);
            if (t >= len) { c->lse[((size_t)b * NH + h) * T + t] = 0.0f; continue; }
            for (j0 = ks; j0 <= t; j0 += DISTILL__ATT_BLOCK) {
                int nb = t + 1 - j0 < DISTILL__ATT_BLOCK ? t + 1 - j0 : DISTILL__ATT_BLOCK;
                float mb;
                for (jj = 0; jj < nb; jj++)
                    s[jj] = scale * distill_vec_dot(qr, c->k + (((size_t)b * T + j0 + jj) * NKV + g) * HS, HS);
                mb = distill_vec_max(s, nb);
                if (mb > m) {  /* rescale what was accumulated under the old max */
                    float corr = expf(m - mb);
                    distill_vec_scale(o, corr, HS);
                    l *= corr;
                    m = mb;
                }
                l += distill_vec_exp_sum(s, s, m, nb);
                for (jj = 0; jj < nb; jj++)
                    distill_vec_axpy(o, s[jj], c->v + (((size_t)b * T + j0 + jj) * NKV + g) * HS, HS);
            }
            distill_vec_scale(o, 1.0f / l, HS);
            c->lse[((size_t)b * NH + h) * T + t] = m + logf(l);
        }
    }
}
DISTILL_API void distill_attention_forward(float *out, float *lse, const float *q, const float *k,
                                           const float *v, const int *lengths, const int *kstart,
                                           int B, int T, int NH, int NKV, int HS) {
    distill__att_ctx c;
    memset(&c, 0, sizeof c);
    c.out = out; c.lse = lse; c.q = q; c.k = k; c.v = v; c.lengths = lengths; c.kstart = kstart;
    c.B = B; c.T = T; c.NH = NH; c.NKV = NKV; c.HS = HS;
    distill_parallel_for((int64_t)B * NH, 1, distill__att_fwd_task, &c);
}

static void distill__att_bwd_task(void *p, int64_t b0, int64_t e0, int th) {
    const distill__att_ctx *c = (const distill__att_ctx *)p;
    int T = c->T, NH = c->NH, NKV = c->NKV, HS = c->HS, rep = NH / NKV;
    float scale = 1.0f / sqrtf((float)HS);
    int64_t task;
    (void)th;
    for (task = b0; task < e0; task++) {
        int b = (int)(task / NKV), g = (int)(task % NKV), h, t, j;
        int len = c->lengths ? c->lengths[b] : T;
        for (t = 0; t < T; t++) {
            size_t n = (size_t)b * T + t;
            memset(c->dk + (n * NKV + g) * HS, 0, sizeof(float) * (size_t)HS);
            memset(c->dv + (n * NKV + g) * HS, 0, sizeof(float) * (size_t)HS);
        }
        for (h = g * rep; h < (g + 1) * rep; h++) {
            for (t = 0; t < T; t++) {
                size_t n = (size_t)b * T + t;
                const float *qr = c->q + (n * NH + h) * HS, *go = c->dout + (n * NH + h) * HS;
                float *dq = c->dq + (n * NH + h) * HS;
                float lse, D;
                int ks = c->kstart ? c->kstart[n] : 0;
                memset(dq, 0, sizeof(float) * (size_t)HS);
                if (t >= len) continue;
                lse = c->clse[((size_t)b * NH + h) * T + t];
                D = distill_vec_dot(go, c->cout + (n * NH + h) * HS, HS);
                for (j = ks; j <= t; j++) {
                    size_t kv = (((size_t)b * T + j) * NKV + g) * HS;
                    float pj = expf(scale * distill_vec_dot(qr, c->k + kv, HS) - lse);
                    float ds = pj * (distill_vec_dot(go, c->v + kv, HS) - D) * scale;
                    distill_vec_axpy(c->dv + kv, pj, go, HS);
                    distill_vec_axpy(dq, ds, c->k + kv, HS);
                    distill_vec_axpy(c->dk + kv, ds, qr, HS);
                }
            }
        }
    }
}
DISTILL_API void distill_attention_backward(float *dq, float *dk, float *dv, const float *dout,
                                            const float *q, const float *k, const float *v,
                                            const float *out, const float *lse, const int *lengths,
                                            const int *kstart, int B, int T, int NH, int NKV, int HS) {
    distill__att_ctx c;
    memset(&c, 0, sizeof c);
    c.dq = dq; c.dk = dk; c.dv = dv; c.dout = dout; c.q = q; c.k = k; c.v = v; c.cout = out; c.clse = lse;
    c.lengths = lengths; c.kstart = kstart; c.B = B; c.T = T; c.NH = NH; c.NKV = NKV; c.HS = HS;
    distill_parallel_for((int64_t)B * NKV, 1, distill__att_bwd_task, &c);
}

/* ---- SwiGLU -------------------------------------------------------------------------
   gate, up, out (n):  out = silu(gate) * up,  silu(g) = g * sigmoid(g)
   backward (overwrites; dup may alias dout, dgate may not alias gate/up/dout):
       dgate = dout * up * sigmoid(g) * (1 + g * (1 - sigmoid(g)))
       dup   = dout * silu(g)
   Each task hands its chunk to the SIMD kernel (vectorised sigmoid, relative error ~1e-7);
   chunks are fixed by n alone, so the result does not depend on the thread count. */
typedef struct { float *out, *dgate, *dup; const float *gate, *up, *dout; } distill__swiglu_ctx;

static void distill__swiglu_fwd_task(void *p, int64_t b, int64_t e, int th) {
    const distill__swiglu_ctx *c = (const distill__swiglu_ctx *)p;
    (void)th;
    distill_vec_swiglu_forward(c->out + b, c->gate + b, c->up + b, (int)(e - b));
}
DISTILL_API void distill_swiglu_forward(float *out, const float *gate, const float *up, size_t n) {
    int pr_ = distill__prof_begin("swiglu fwd");
    distill__swiglu_ctx c;
    memset(&c, 0, sizeof c);
    c.out = out; c.gate = gate; c.up = up;
    distill_parallel_for((int64_t)n, 4096, distill__swiglu_fwd_task, &c);
    distill__prof_end(pr_);
}
static void distill__swiglu_bwd_task(void *p, int64_t b, int64_t e, int th) {
    const distill__swiglu_ctx *c = (const distill__swiglu_ctx *)p;
    (void)th;
    distill_vec_swiglu_backward(c->dgate + b, c->dup + b, c->dout + b, c->gate + b, c->up + b, (int)(e - b));
}
DISTILL_API void distill_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                                         const float *up, size_t n) {
    int pr_ = distill__prof_begin("swiglu bwd");
    distill__swiglu_ctx c;
    memset(&c, 0, sizeof c);
    c.dgate = dgate; c.dup = dup; c.dout = dout; c.gate = gate; c.up = up;
    distill_parallel_for((int64_t)n, 4096, distill__swiglu_bwd_task, &c);
    distill__prof_end(pr_);
}

/* ---- weighted cross-entropy, the default head loss ----------------------------------
   For each of the n positions (logits z (V), target y, weight w):
       lse = m + log sum_j exp(z_j - m)   (m = max z)
       loss = lse - z_y,   entropy = lse - sum_j p_j z_j,   p = softmax(z)
       dz_j = grad_scale * w * (p_j - [j == y])
   The logits row is overwritten by its gradient (or by exp(z - m) when no gradient is asked).
   exp is the vectorised one (relative error ~1e-7); the sums are accumulated per block of
   DISTILL__CE_EXP_BLOCK logits in float vector lanes, and across blocks in double. */
#define DISTILL__CE_EXP_BLOCK 256
DISTILL_API void distill_ce_head_loss(void *ctx, const int64_t *pos, int n, float *z, int V,
                                      const int32_t *targets, const float *weights, float grad_scale,
                                      int compute_grad, distill_stats *acc, int thread) {
    const distill__isa_ops *ops = distill__ops();
    int i, j, j0, nb;
    (void)ctx; (void)thread;
    for (i = 0; i < n; i++) {
        float *row = z + (size_t)i * V;
        int y = targets[pos[i]], am = 0;
        float w = weights ? weights[pos[i]] : 1.0f;
        float m = distill_vec_max(row, V), zy = row[y];
        double s = 0.0, sz = 0.0, lse;
        for (j = 0; j < V; j++) if (row[j] == m) { am = j; break; }
        /* exp(z - m) in place by the SIMD kernel, a block at a time; each block's two sums
           (per lane in float, then across lanes) are added up in double */
        for (j0 = 0; j0 < V; j0 += nb) {
            float bsz;
            nb = V - j0 < DISTILL__CE_EXP_BLOCK ? V - j0 : DISTILL__CE_EXP_BLOCK;
            s += ops->exp_sum_sz(row + j0, m, nb, &bsz);
            sz += bsz;
        }
        lse = (double)m + log(s);
        acc->loss += (double)w * (lse - zy);
        acc->weight_sum += w;
        acc->accuracy += am == y ? (double)w : 0.0;
        acc->entropy += (double)w * (log(s) - sz / s);
        if (compute_grad) {
            distill_vec_scale(row, (float)((double)grad_scale * w / s), V);
            row[y] -= grad_scale * w;
        }
    }
}

/* ===================================================================================== */
/* The model: size table, create/free, init                                               */
/* ===================================================================================== */

/* Private state: activations saved for the backward pass, scratch, and the last batch. */
/* A layer's matrices in BF16 (a model after distill_model_to_bf16), beside distill_layer_params */
typedef struct { const uint16_t *wq, *wk, *wv, *wo, *w_gate, *w_up, *w_down; } distill__layer16;

typedef struct distill__state {
    void *block;           /* the one activation allocation */
    size_t bytes;          /* its size (what distill_model_activation_bytes predicts) */
    size_t cap;            /* max_batch * max_seq */
    size_t head_k;         /* positions per head chunk */
    /* per layer (stride cap*width): */
    float *x, *ln1, *q, *k, *v, *att, *lse, *xmid, *ln2, *gate, *up, *rstd1, *rstd2;
    float *qr, *kr, *rstdq, *rstdk;  /* qk_norm: q and k before their norm, and its rstd */
    float *xL, *lnf, *rstdf;
    float *dres, *buf_a, *buf_w;     /* backward scratch; buf_a also holds dlnf */
    float *head_logits, *head_x, *head_dx;
    int32_t *pos, *tok;              /* RoPE positions; tokens with -1 past the length */
    int *kstart, *len;
    int64_t *sup;                    /* flat indices of the positions the loss sees */
    distill_stats *slots;            /* loss-statistics slots of one head chunk */
    double *norm_parts;              /* AdamW: per-block squared-norm partials */
    size_t n_norm_parts;
    /* the last forward */
    int B, T, have_fwd, have_loss, head_grads_done;
    int64_t n_sup;
    distill_batch batch;
    distill_head_loss hl;
    float grad_scale;
    /* data parallelism: called during backward each time a suffix [lo, num_floats) of the
       gradient buffer is final, so its all-reduce can start while lower layers still compute */
    void (*grad_ready)(void *ctx, size_t lo);
    void *grad_ready_ctx;
    /* what checkpoints of this model carry besides the weights (distill_model_set_tokenizer) */
    unsigned char *tok_bytes;        /* the tokenizer serialised (own text format or llama2.c .bin) */
    size_t tok_size;
    char tmpl_name[32];              /* chat template name ("" none) */
    double *inv_freq;                /* RoPE frequencies (HS/2) of the config (rope_scaling included) */
    float *rope_cs, *rope_sn;        /* cos and sin of each position's angles (BT, HS/2), per forward */
    int bf16;                        /* DISTILL_PRECISION_BF16: the linear layers' products in BF16 */
    /* BF16 weights (distill_model_to_bf16; NULL before): the matrices as BF16 bits in the params
       layout (w16 + a tensor's offset), per-layer views of them, and the FP32 vectors (norms,
       biases) moved to `vecs` (vec_at[tensor]: its offset there, or (size_t)-1 for a matrix) */
    uint16_t *w16;
    distill__layer16 *l16;
    const uint16_t *tok_emb16, *lm_head16;
    float *vecs;
    size_t *vec_at;
} distill__state;

/* The BF16 copy of a layer's matrix f (NULL in a model with FP32 weights) */
#define DISTILL__W16(s, l, f) ((s)->l16 ? (s)->l16[l].f : NULL)

#define DISTILL__CE_BLOCK 4          /* rows per loss-callback call (one statistics slot each) */
#define DISTILL__NORM_BLOCK 65536    /* floats per partial of the gradient norm */

/* Positions per LM-head chunk for a vocabulary of V (see DISTILL_HEAD_CHUNK) */
static size_t distill__head_chunk(int V) {
    size_t H = DISTILL_HEAD_CHUNK;
    return V > 0 && V < 4096 ? H * (4096 / (size_t)V) : H;
}

/* Carve `count` elements of `size` bytes, 64-byte aligned, from a running offset; with
   base == NULL only the offset advances (the sizing pass). */
static void *distill__carve(char *base, size_t *off, size_t count, size_t size) {
    void *p = base ? (void *)(base + *off) : NULL;
    *off += (count * size + 63) / 64 * 64;
    return p;
}

/* Lay out (or, with base NULL, measure) the activation block for capacity B*T. */
static size_t distill__layout(distill__state *s, char *base, const distill_config *c, int B, int T) {
    size_t off = 0, BT = (size_t)B * T, L = (size_t)c->n_layers, C = (size_t)c->dim, F = (size_t)c->hidden_dim;
    size_t HS = (size_t)distill_config_head_dim(c), QD = HS * (size_t)c->n_heads, KVD = HS * (size_t)c->n_kv_heads;
    size_t V = (size_t)c->vocab_size, H = distill__head_chunk(c->vocab_size), K = BT < H ? BT : H;
    /* backward scratch: the MLP's h and dh (2F), or dq, dk, dv (+ dq, dk before the q/k norm) */
    size_t WA = QD + 2 * KVD + (c->qk_norm ? QD + KVD : 0), W = 2 * F > WA ? 2 * F : WA, CA = C > QD ? C : QD;
    s->cap = BT;
    s->head_k = K;
    s->x = (float *)distill__carve(base, &off, L * BT * C, 4);
    s->ln1 = (float *)distill__carve(base, &off, L * BT * C, 4);
    s->q = (float *)distill__carve(base, &off, L * BT * QD, 4);
    s->k = (float *)distill__carve(base, &off, L * BT * KVD, 4);
    s->v = (float *)distill__carve(base, &off, L * BT * KVD, 4);
    s->att = (float *)distill__carve(base, &off, L * BT * QD, 4);
    if (c->qk_norm) {
        s->qr = (float *)distill__carve(base, &off, L * BT * QD, 4);
        s->kr = (float *)distill__carve(base, &off, L * BT * KVD, 4);
        s->rstdq = (float *)distill__carve(base, &off, L * BT * (size_t)c->n_heads, 4);
        s->rstdk = (float *)distill__carve(base, &off, L * BT * (size_t)c->n_kv_heads, 4);
    }
    s->lse = (float *)distill__carve(base, &off, L * BT * (size_t)c->n_heads, 4);
    s->xmid = (float *)distill__carve(base, &off, L * BT * C, 4);
    s->ln2 = (float *)distill__carve(base, &off, L * BT * C, 4);
    s->gate = (float *)distill__carve(base, &off, L * BT * F, 4);
    s->up = (float *)distill__carve(base, &off, L * BT * F, 4);
    s->rstd1 = (float *)distill__carve(base, &off, L * BT, 4);
    s->rstd2 = (float *)distill__carve(base, &off, L * BT, 4);
    s->xL = (float *)distill__carve(base, &off, BT * C, 4);
    s->lnf = (float *)distill__carve(base, &off, BT * C, 4);
    s->rstdf = (float *)distill__carve(base, &off, BT, 4);
    s->dres = (float *)distill__carve(base, &off, BT * C, 4);
    s->buf_a = (float *)distill__carve(base, &off, BT * CA, 4);
    s->buf_w = (float *)distill__carve(base, &off, BT * W, 4);
    s->head_logits = (float *)distill__carve(base, &off, K * V, 4);
    s->head_x = (float *)distill__carve(base, &off, K * C, 4);
    s->head_dx = (float *)distill__carve(base, &off, K * C, 4);
    s->rope_cs = (float *)distill__carve(base, &off, BT * (HS / 2) * 2, 4);
    s->rope_sn = s->rope_cs ? s->rope_cs + BT * (HS / 2) : NULL;
    s->pos = (int32_t *)distill__carve(base, &off, BT, 4);
    s->tok = (int32_t *)distill__carve(base, &off, BT, 4);
    s->kstart = (int *)distill__carve(base, &off, BT, sizeof(int));
    s->len = (int *)distill__carve(base, &off, (size_t)B, sizeof(int));
    s->sup = (int64_t *)distill__carve(base, &off, BT, 8);
    s->slots = (distill_stats *)distill__carve(base, &off, (K + DISTILL__CE_BLOCK - 1) / DISTILL__CE_BLOCK, sizeof(distill_stats));
    return off;
}

DISTILL_API size_t distill_model_activation_bytes(const distill_config *c, int B, int T) {
    double BT = (double)B * T, L = c->n_layers, C = c->dim, F = c->hidden_dim, V = c->vocab_size;
    double NH = c->n_heads, HS = distill_config_head_dim(c), QD = HS * NH, KVD = HS * c->n_kv_heads;
    double K = BT < (double)distill__head_chunk(c->vocab_size) ? BT : (double)distill__head_chunk(c->vocab_size);
    double WA = QD + 2 * KVD + (c->qk_norm ? QD + KVD : 0), W = 2 * F > WA ? 2 * F : WA, CA = C > QD ? C : QD;
    double QK = c->qk_norm ? BT * (QD + KVD + NH + c->n_kv_heads) : 0;   /* q, k before the norm; rstd */
    double floats = L * (BT * (4 * C + 2 * QD + 2 * KVD + 2 * F + 2) + B * NH * T + QK)
                  + BT * (2 * C + 1)
                  + BT * (C + CA + W)
                  + BT * 2 * floor(HS / 2)
                  + K * (V + 2 * C);
    double bytes = 4 * floats + 20 * BT + 4.0 * B + (double)sizeof(distill_stats) * ceil(K / DISTILL__CE_BLOCK);
    return bytes >= (double)SIZE_MAX ? SIZE_MAX : (size_t)bytes;
}

/* Fill the size table (names, shapes, offsets, decay flags) and the views into params. */
static int distill__build_table(distill_model *m, distill_error *err) {
    const distill_config *c = &m->cfg;
    int C = c->dim, V = c->vocab_size, F = c->hidden_dim, L = c->n_layers, l;
    int HS = distill_config_head_dim(c), QD = HS * c->n_heads, KVD = HS * c->n_kv_heads;
    int cap = 2 + L * (c->qkv_bias ? 12 : 9) + (c->qk_norm ? 2 * L : 0) + 1, n = 0;
    size_t off = 0;
    m->tensors = (distill_tensor_info *)DISTILL_MALLOC(sizeof(distill_tensor_info) * (size_t)cap);
    m->layers = (distill_layer_params *)DISTILL_MALLOC(sizeof(distill_layer_params) * (size_t)L);
    if (!m->tensors || !m->layers) return distill__err(err, "distill_model_create: out of memory for the size table");
    memset(m->layers, 0, sizeof(distill_layer_params) * (size_t)L);
#define DISTILL__T(nm_fmt, lay, d0, d1, dec)                                              \
    do {                                                                                   \
        distill_tensor_info *ti = &m->tensors[n++];                                       \
        memset(ti, 0, sizeof *ti);                                                         \
        snprintf(ti->name, sizeof ti->name, nm_fmt, lay);                                  \
        ti->ndim = (d1) > 0 ? 2 : 1;                                                       \
        ti->shape[0] = (d0); ti->shape[1] = (d1) > 0 ? (d1) : 0;                          \
        ti->numel = (size_t)(d0) * (size_t)((d1) > 0 ? (d1) : 1);                         \
        ti->offset = off; off += (ti->numel + 15) / 16 * 16;                              \
        ti->decay = (dec);                                                                 \
    } while (0)
    DISTILL__T("model.embed_tokens.weight%.0d", 0, V, C, 1);
    for (l = 0; l < L; l++) {
        DISTILL__T("model.layers.%d.input_layernorm.weight", l, C, 0, 0);
        DISTILL__T("model.layers.%d.self_attn.q_proj.weight", l, QD, C, 1);
        if (c->qkv_bias) DISTILL__T("model.layers.%d.self_attn.q_proj.bias", l, QD, 0, 0);
        DISTILL__T("model.layers.%d.self_attn.k_proj.weight", l, KVD, C, 1);
        if (c->qkv_bias) DISTILL__T("model.layers.%d.self_attn.k_proj.bias", l, KVD, 0, 0);
        DISTILL__T("model.layers.%d.self_attn.v_proj.weight", l, KVD, C, 1);
        if (c->qkv_bias) DISTILL__T("model.layers.%d.self_attn.v_proj.bias", l, KVD, 0, 0);
        DISTILL__T("model.layers.%d.self_attn.o_proj.weight", l, C, QD, 1);
        if (c->qk_norm) {
            DISTILL__T("model.layers.%d.self_attn.q_norm.weight", l, HS, 0, 0);
            DISTILL__T("model.layers.%d.self_attn.k_norm.weight", l, HS, 0, 0);
        }
        DISTILL__T("model.layers.%d.post_attention_layernorm.weight", l, C, 0, 0);
        DISTILL__T("model.layers.%d.mlp.gate_proj.weight", l, F, C, 1);
        DISTILL__T("model.layers.%d.mlp.up_proj.weight", l, F, C, 1);
        DISTILL__T("model.layers.%d.mlp.down_proj.weight", l, C, F, 1);
    }
    DISTILL__T("model.norm.weight%.0d", 0, C, 0, 0);
    if (!c->tie_embeddings) DISTILL__T("lm_head.weight%.0d", 0, V, C, 1);
#undef DISTILL__T
    m->n_tensors = n;
    m->num_floats = off;
    m->num_params = 0;
    for (l = 0; l < n; l++) m->num_params += m->tensors[l].numel;
    return 0;
}

/* Point tok_emb, layers[], final_norm, lm_head into params (by walking the table in order). */
/* The float view of tensor i: into params; in a model with BF16 weights, a vector's copy in
   vecs, and NULL for a matrix, whose view is BF16 (distill__view16). */
static float *distill__view(distill_model *m, int i) {
    const distill__state *s = (const distill__state *)m->internal;
    if (m->params) return m->params + m->tensors[i].offset;
    return s->vec_at && s->vec_at[i] != (size_t)-1 ? s->vecs + s->vec_at[i] : NULL;
}
static const uint16_t *distill__view16(distill_model *m, int i) {
    const distill__state *s = (const distill__state *)m->internal;
    return s->w16 && s->vec_at[i] == (size_t)-1 ? s->w16 + m->tensors[i].offset : NULL;
}

static void distill__bind_views(distill_model *m) {
    distill__state *s = (distill__state *)m->internal;
    const distill_config *c = &m->cfg;
    int i = 0, l;
    distill__layer16 none, *h;
    s->tok_emb16 = distill__view16(m, i);
    m->tok_emb = distill__view(m, i++);
    for (l = 0; l < c->n_layers; l++) {
        distill_layer_params *p = &m->layers[l];
        h = s->l16 ? &s->l16[l] : &none;
#define DISTILL__VEC(f) (p->f = distill__view(m, i++))
#define DISTILL__MAT(f) (h->f = distill__view16(m, i), p->f = distill__view(m, i++))
        DISTILL__VEC(attn_norm);
        DISTILL__MAT(wq);
        if (c->qkv_bias) DISTILL__VEC(bq);
        DISTILL__MAT(wk);
        if (c->qkv_bias) DISTILL__VEC(bk);
        DISTILL__MAT(wv);
        if (c->qkv_bias) DISTILL__VEC(bv);
        DISTILL__MAT(wo);
        if (c->qk_norm) {
            DISTILL__VEC(q_norm);
            DISTILL__VEC(k_norm);
        }
        DISTILL__VEC(ffn_norm);
        DISTILL__MAT(w_gate);
        DISTILL__MAT(w_up);
        DISTILL__MAT(w_down);
#undef DISTILL__VEC
#undef DISTILL__MAT
    }
    m->final_norm = distill__view(m, i++);
    if (c->tie_embeddings) {
        s->lm_head16 = s->tok_emb16;
        m->lm_head = m->tok_emb;
    } else {
        s->lm_head16 = distill__view16(m, i);
        m->lm_head = distill__view(m, i++);
    }
}

/* A model's BF16 weights (distill_model_to_bf16, or a loader filling them): vec_at, w16, vecs
   and the per-layer BF16 views, allocated and zeroed; the views are bound by distill__bind_views. */
static int distill__bf16_alloc(distill_model *m, distill_error *err) {
    distill__state *s = (distill__state *)m->internal;
    size_t nvec = 0;
    int i;
    s->vec_at = (size_t *)DISTILL_MALLOC((size_t)m->n_tensors * sizeof(size_t));
    if (s->vec_at)
        for (i = 0; i < m->n_tensors; i++) {
            s->vec_at[i] = m->tensors[i].ndim == 1 ? nvec : (size_t)-1;
            if (m->tensors[i].ndim == 1) nvec += (m->tensors[i].numel + 15) / 16 * 16;
        }
    s->w16 = (uint16_t *)distill_alloc_aligned(m->num_floats * sizeof(uint16_t), 64);
    s->vecs = (float *)distill_alloc_aligned((nvec ? nvec : 1) * sizeof(float), 64);
    s->l16 = (distill__layer16 *)DISTILL_MALLOC((size_t)m->cfg.n_layers * sizeof(distill__layer16));
    if (!s->w16 || !s->vecs || !s->vec_at || !s->l16) {
        distill_free_aligned(s->w16); distill_free_aligned(s->vecs);
        DISTILL_FREE(s->vec_at); DISTILL_FREE(s->l16);
        s->w16 = NULL; s->vecs = NULL; s->vec_at = NULL; s->l16 = NULL;
        return distill__err(err, "out of memory for %zu BF16 weights", m->num_params);
    }
    memset(s->w16, 0, m->num_floats * sizeof(uint16_t));
    memset(s->vecs, 0, (nvec ? nvec : 1) * sizeof(float));
    return 0;
}

DISTILL_API int distill_model_find_tensor(const distill_model *m, const char *name) {
    int i;
    for (i = 0; i < m->n_tensors; i++) if (strcmp(m->tensors[i].name, name) == 0) return i;
    return -1;
}

/* Initialisation: matrices ~ normal(0, init_std) drawn in table order from one xoshiro256**
   stream seeded with `seed`; o_proj and down_proj (the projections that write into the residual
   stream) use init_std / sqrt(2L) when scale_residual_init; norms are 1, biases 0. */
DISTILL_API void distill_model_init_params(distill_model *m, uint64_t seed) {
    distill_rng rng;
    int i;
    float rstd = m->cfg.init_std / sqrtf(2.0f * (float)m->cfg.n_layers);
    if (!m->params) return;   /* BF16 weights only (distill_model_to_bf16) */
    distill_rng_seed(&rng, seed);
    memset(m->params, 0, sizeof(float) * m->num_floats);
    for (i = 0; i < m->n_tensors; i++) {
        const distill_tensor_info *t = &m->tensors[i];
        float *p = m->params + t->offset, std = m->cfg.init_std;
        size_t j;
        if (t->ndim == 1) {
            if (strstr(t->name, "norm")) for (j = 0; j < t->numel; j++) p[j] = 1.0f;
            continue;
        }
        if (m->cfg.scale_residual_init && (strstr(t->name, "o_proj") || strstr(t->name, "down_proj"))) std = rstd;
        for (j = 0; j < t->numel; j++) p[j] = (float)(distill_rng_normal(&rng) * std);
    }
}

DISTILL_API void distill_model_free(distill_model *m) {
    distill__state *s;
    if (!m) return;
    s = (distill__state *)m->internal;
    if (s) {
        distill_free_aligned(s->block);
        distill_free_aligned(s->w16);
        distill_free_aligned(s->vecs);
        DISTILL_FREE(s->l16);
        DISTILL_FREE(s->vec_at);
        DISTILL_FREE(s->norm_parts);
        DISTILL_FREE(s->tok_bytes);
        DISTILL_FREE(s->inv_freq);
        DISTILL_FREE(s);
    }
    distill_free_aligned(m->params);
    distill_free_aligned(m->grads);
    distill_free_aligned(m->m);
    distill_free_aligned(m->v);
    DISTILL_FREE(m->tensors);
    DISTILL_FREE(m->layers);
    DISTILL_FREE(m);
}

DISTILL_API int distill_model_set_tokenizer(distill_model *m, const distill_tokenizer *tok,
                                            const char *chat_template, distill_error *err) {
    distill__state *s = (distill__state *)m->internal;
    unsigned char *b = NULL;
    size_t n = 0;
    if (chat_template && strlen(chat_template) >= sizeof s->tmpl_name)
        return distill__err(err, "chat template name '%.60s' is too long", chat_template);
    if (tok && !(b = distill__tk_to_bytes(tok, &n, err))) return -1;
    DISTILL_FREE(s->tok_bytes);
    s->tok_bytes = b;
    s->tok_size = n;
    snprintf(s->tmpl_name, sizeof s->tmpl_name, "%s", chat_template ? chat_template : "");
    return 0;
}

DISTILL_API const char *distill_model_chat_template(const distill_model *m) {
    const distill__state *s = (const distill__state *)m->internal;
    return s->tmpl_name[0] ? s->tmpl_name : NULL;
}

DISTILL_API int distill_model_has_tokenizer(const distill_model *m) {
    return ((const distill__state *)m->internal)->tok_bytes != NULL;
}

static distill_model *distill__model_new(const distill_config *cfg, int max_batch, int max_seq, uint64_t seed,
                                         int init, distill_error *err);

DISTILL_API distill_model *distill_model_create(const distill_config *cfg, int max_batch, int max_seq,
                                                uint64_t seed, distill_error *err) {
    return distill__model_new(cfg, max_batch, max_seq, seed, 1, err);
}

/* init 0: parameters left zero, for loaders that overwrite them all (drawing 500M normals
   would cost a minute of a 0.5B model's load time); 2: the same with BF16 weights (w16, vecs)
   instead of params, for the safetensors loaders of distill_model_load_bf16 */
static distill_model *distill__model_new(const distill_config *cfg, int max_batch, int max_seq, uint64_t seed,
                                         int init, distill_error *err) {
    distill_model *m;
    distill__state *s;
    size_t bytes, pbytes;
    if (distill_config_validate(cfg, err) != 0) return NULL;
    if (max_batch < 1 || max_seq < 1 || (size_t)max_batch * (size_t)max_seq > (size_t)INT_MAX / 2) {
        distill__err(err, "distill_model_create: max_batch (%d) and max_seq (%d) must be >= 1 with a product below 2^30",
                     max_batch, max_seq);
        return NULL;
    }
    m = (distill_model *)DISTILL_MALLOC(sizeof *m);
    if (!m) { distill__err(err, "distill_model_create: out of memory"); return NULL; }
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->max_batch = max_batch;
    m->max_seq = max_seq;
    s = (distill__state *)DISTILL_MALLOC(sizeof *s);
    if (!s) { distill__err(err, "distill_model_create: out of memory"); DISTILL_FREE(m); return NULL; }
    memset(s, 0, sizeof *s);
    m->internal = s;
    if (distill__build_table(m, err) != 0) { distill_model_free(m); return NULL; }
    pbytes = m->num_floats * sizeof(float);
    if (init == 2) {   /* a loader filling BF16 weights (distill_model_load_bf16): no FP32 buffer */
        if (distill__bf16_alloc(m, err) != 0) { distill_model_free(m); return NULL; }
    } else {
        m->params = (float *)distill_alloc_aligned(pbytes, 64);
    }
    /* loaded models (init 0) are mostly generated from, evaluated or exported: their gradient
       buffer, as large as the weights, waits until training needs it (distill__ensure_grads) */
    m->grads = init == 1 ? (float *)distill_alloc_aligned(pbytes, 64) : NULL;
    if ((init != 2 && !m->params) || (init == 1 && !m->grads)) {
        distill__err(err, "distill_model_create: out of memory for %zu parameters (%zu bytes each for params and grads)",
                     m->num_params, pbytes);
        distill_model_free(m);
        return NULL;
    }
    s->n_norm_parts = (m->num_floats + DISTILL__NORM_BLOCK - 1) / DISTILL__NORM_BLOCK;
    s->norm_parts = (double *)DISTILL_MALLOC(sizeof(double) * s->n_norm_parts);
    s->inv_freq = (double *)DISTILL_MALLOC(sizeof(double) * (size_t)(distill_config_head_dim(cfg) / 2 + 1));
    if (s->inv_freq) distill_rope_inv_freq(cfg, s->inv_freq);
    bytes = distill__layout(s, NULL, cfg, max_batch, max_seq);
    s->block = distill_alloc_aligned(bytes, 64);
    if (!s->block || !s->norm_parts || !s->inv_freq) {
        distill__err(err, "distill_model_create: out of memory for %zu bytes of activations (max_batch %d, max_seq %d)",
                     bytes, max_batch, max_seq);
        distill_model_free(m);
        return NULL;
    }
    s->bytes = bytes;
    distill__layout(s, (char *)s->block, cfg, max_batch, max_seq);
    distill__bind_views(m);
    if (init == 1) distill_model_init_params(m, seed);
    return m;
}

/* The gradient buffer, allocated (zeroed) on first need; 0 or -1 out of memory. */
static int distill__ensure_grads(distill_model *m) {
    if (!m->params) return -1;   /* BF16 weights only: nothing to train */
    if (!m->grads) m->grads = (float *)distill_alloc_aligned(m->num_floats * sizeof(float), 64);
    return m->grads ? 0 : -1;
}

DISTILL_API void distill_model_zero_grad(distill_model *m) {
    int pr_ = distill__prof_begin("zero grad");
    if (m->grads) memset(m->grads, 0, sizeof(float) * m->num_floats);
    else distill__ensure_grads(m);   /* a new buffer is zero; on failure the next forward says so */
    distill__prof_end(pr_);
}

/* The gradient buffer slice that mirrors a parameter view. */
static float *distill__grad_of(distill_model *m, const float *p) {
    return p ? m->grads + (p - m->params) : NULL;
}

/* ===================================================================================== */
/* Forward                                                                                */
/* ===================================================================================== */

/* x += y over n floats, in row blocks. */
typedef struct { float *x; const float *y; int C; } distill__add_ctx;
static void distill__add_task(void *p, int64_t b, int64_t e, int th) {
    const distill__add_ctx *c = (const distill__add_ctx *)p;
    (void)th;
    distill_vec_axpy(c->x + (size_t)b * c->C, 1.0f, c->y + (size_t)b * c->C, (int)(e - b) * c->C);
}
static void distill__residual_add(float *x, const float *y, int N, int C) {
    int pr_ = distill__prof_begin("residual add");
    distill__add_ctx c;
    c.x = x; c.y = y; c.C = C;
    distill_parallel_for(N, 16, distill__add_task, &c);
    distill__prof_end(pr_);
}

/* Check the batch against the model and derive lengths, RoPE positions, segment starts,
   masked tokens and the list of supervised positions. */
static int distill__prepare_batch(distill_model *m, const distill_batch *bt, distill_error *err) {
    distill__state *s = (distill__state *)m->internal;
    int B = bt->B, T = bt->T, b, t, V = m->cfg.vocab_size;
    if (B < 1 || B > m->max_batch) return distill__err(err, "batch: B (%d) must be in [1, max_batch (%d)]", B, m->max_batch);
    if (T < 1 || T > m->max_seq) return distill__err(err, "batch: T (%d) must be in [1, max_seq (%d)]", T, m->max_seq);
    if (!bt->tokens) return distill__err(err, "batch: tokens is NULL");
    s->n_sup = 0;
    for (b = 0; b < B; b++) {
        int len = bt->lengths ? bt->lengths[b] : T;
        if (len < 0 || len > T) return distill__err(err, "batch: lengths[%d] (%d) must be in [0, T (%d)]", b, len, T);
        s->len[b] = len;
        for (t = 0; t < T; t++) {
            size_t n = (size_t)b * T + t;
            if (t >= len) { s->tok[n] = -1; s->pos[n] = 0; s->kstart[n] = t; continue; }
            if (bt->tokens[n] < 0 || bt->tokens[n] >= V)
                return distill__err(err, "batch: tokens[%d][%d] (%d) is outside the vocabulary [0, %d)", b, t, (int)bt->tokens[n], V);
            s->tok[n] = bt->tokens[n];
            s->pos[n] = bt->positions ? bt->positions[n] : t;
            if (s->pos[n] < 0) return distill__err(err, "batch: positions[%d][%d] (%d) is negative", b, t, (int)s->pos[n]);
            /* a segment is a maximal run of equal ids: keys start where the run starts */
            s->kstart[n] = (bt->segments && t > 0 && bt->segments[n] == bt->segments[n - 1]) ? s->kstart[n - 1]
                         : (bt->segments ? t : 0);
            if (bt->targets) {
                int32_t y = bt->targets[n];
                float w = bt->weights ? bt->weights[n] : 1.0f;
                if (y >= V) return distill__err(err, "batch: targets[%d][%d] (%d) is outside the vocabulary [0, %d)", b, t, (int)y, V);
                if (!(w >= 0.0f && w < FLT_MAX)) return distill__err(err, "batch: weights[%d][%d] (%g) must be finite and >= 0", b, t, (double)w);
                if (y >= 0 && w > 0.0f) s->sup[s->n_sup++] = (int64_t)n;
            }
        }
    }
    return 0;
}

/* The fused LM head over the supervised positions, DISTILL_HEAD_CHUNK at a time:
   gather their final-norm outputs, logits = x W^T (K,V), hand them to the loss (which may turn
   them into dlogits), then dx = dlogits W (scattered into dlnf) and dW += dlogits^T x. */
typedef struct {
    const distill_head_loss *hl;
    const distill_batch *bt;
    const int64_t *pos;
    float *logits;
    distill_stats *slots;
    int n, V, compute_grad;
    float grad_scale;
} distill__head_ctx;

static void distill__head_task(void *p, int64_t b, int64_t e, int th) {
    const distill__head_ctx *c = (const distill__head_ctx *)p;
    int64_t blk;
    for (blk = b; blk < e; blk++) {
        int r0 = (int)blk * DISTILL__CE_BLOCK, nr = c->n - r0 < DISTILL__CE_BLOCK ? c->n - r0 : DISTILL__CE_BLOCK;
        memset(&c->slots[blk], 0, sizeof(distill_stats));
        c->hl->fn(c->hl->ctx, c->pos + r0, nr, c->logits + (size_t)r0 * c->V, c->V, c->bt->targets,
                  c->bt->weights, c->grad_scale, c->compute_grad, &c->slots[blk], th);
    }
}

/* Logit distillation (section 7) computes the teacher's logits for each head chunk just before
   the chunk's loss: the head calls it when the loss is the distillation head's. */
static void distill__kd_head_fn(void *ctx, const int64_t *pos, int n, float *lg, int V,
                                const int32_t *targets, const float *weights, float grad_scale,
                                int compute_grad, distill_stats *st, int thread);
static void distill__kd_prepare(void *ctx, const int64_t *pos, int n);

static void distill__head(distill_model *m, int compute_grad, distill_stats *acc) {
    int pr_ = distill__prof_begin("head + loss (gather, loss, scatter)");
    distill__state *s = (distill__state *)m->internal;
    int C = m->cfg.dim, V = m->cfg.vocab_size;
    int64_t c0;
    float *dW = compute_grad ? distill__grad_of(m, m->lm_head) : NULL;
    if (compute_grad) memset(s->buf_a, 0, sizeof(float) * (size_t)s->B * s->T * C);
    for (c0 = 0; c0 < s->n_sup; c0 += (int64_t)s->head_k) {
        distill__head_ctx hc;
        int n = s->n_sup - c0 < (int64_t)s->head_k ? (int)(s->n_sup - c0) : (int)s->head_k, i, nb;
        for (i = 0; i < n; i++)
            memcpy(s->head_x + (size_t)i * C, s->lnf + (size_t)s->sup[c0 + i] * C, sizeof(float) * (size_t)C);
        distill__mm_forward(s->bf16, s->head_logits, s->head_x, m->lm_head, s->lm_head16, NULL, n, C, V);
        if (s->hl.fn == distill__kd_head_fn) distill__kd_prepare(s->hl.ctx, s->sup + c0, n);   /* its teacher's logits */
        hc.hl = &s->hl; hc.bt = &s->batch; hc.pos = s->sup + c0; hc.logits = s->head_logits;
        hc.slots = s->slots; hc.n = n; hc.V = V; hc.compute_grad = compute_grad; hc.grad_scale = s->grad_scale;
        nb = (n + DISTILL__CE_BLOCK - 1) / DISTILL__CE_BLOCK;
        distill_parallel_for(nb, 1, distill__head_task, &hc);
        for (i = 0; i < nb; i++) {   /* fixed order: identical for any thread count */
            acc->loss += s->slots[i].loss;
            acc->weight_sum += s->slots[i].weight_sum;
            acc->accuracy += s->slots[i].accuracy;
            acc->entropy += s->slots[i].entropy;
        }
        if (compute_grad) {
            memset(s->head_dx, 0, sizeof(float) * (size_t)n * C);
            distill__mm_backward(s->bf16, s->head_dx, dW, NULL, s->head_logits, s->head_x, m->lm_head, n, C, V);
            for (i = 0; i < n; i++)
                memcpy(s->buf_a + (size_t)s->sup[c0 + i] * C, s->head_dx + (size_t)i * C, sizeof(float) * (size_t)C);
        }
    }
    distill__prof_end(pr_);
}

static int distill__forward(distill_model *m, const distill_batch *bt, const distill_head_loss *hl,
                            float grad_scale, int fuse_head_grad, distill_stats *stats, distill_error *err) {
    distill__state *s = (distill__state *)m->internal;
    const distill_config *c = &m->cfg;
    int B, T, C = c->dim, F = c->hidden_dim, NH = c->n_heads, NKV = c->n_kv_heads, HS = distill_config_head_dim(c);
    int QD = NH * HS, KVD = NKV * HS, l;
    size_t BT, cap = s->cap;
    int64_t ntok = 0;
    distill_stats acc;
    s->have_fwd = 0;
    s->have_loss = 0;
    if (!bt) return distill__err(err, "distill_model_forward: batch is NULL");
    if (fuse_head_grad && !m->params)
        return distill__err(err, "distill_model_forward_backward: the model keeps BF16 weights only "
                            "(distill_model_to_bf16): it can forward, generate and teach, not train");
    if ((bt->targets || fuse_head_grad) && m->params && distill__ensure_grads(m) != 0)   /* a backward may follow */
        return distill__err(err, "distill_model_forward: out of memory for the gradient (%zu floats)", m->num_floats);
    if (distill__prepare_batch(m, bt, err) != 0) return -1;
    B = bt->B; T = bt->T; BT = (size_t)B * T;
    s->B = B; s->T = T; s->batch = *bt;

    if (s->tok_emb16) distill__embedding_forward16(s->x, s->tok, s->tok_emb16, (int)BT, C);
    else distill_embedding_forward(s->x, s->tok, m->tok_emb, (int)BT, C);
    distill__rope_table(s->rope_cs, s->rope_sn, s->pos, (int)BT, HS, s->inv_freq);
    for (l = 0; l < c->n_layers; l++) {
        const distill_layer_params *p = &m->layers[l];
        float *x = s->x + l * cap * C, *ln1 = s->ln1 + l * cap * C, *q = s->q + l * cap * QD;
        float *k = s->k + l * cap * KVD, *v = s->v + l * cap * KVD, *att = s->att + l * cap * QD;
        float *lse = s->lse + l * cap * NH, *xmid = s->xmid + l * cap * C, *ln2 = s->ln2 + l * cap * C;
        float *gate = s->gate + l * cap * F, *up = s->up + l * cap * F;
        float *xout = l + 1 < c->n_layers ? s->x + (l + 1) * cap * C : s->xL;
        /* attention block; with qk_norm (Qwen3) q and k are RMS-normalised per head before RoPE */
        float *qp = c->qk_norm ? s->qr + l * cap * QD : q, *kp = c->qk_norm ? s->kr + l * cap * KVD : k;
        distill_rmsnorm_forward(ln1, s->rstd1 + l * cap, x, p->attn_norm, (int)BT, C, c->norm_eps);
        distill__mm_forward(s->bf16, qp, ln1, p->wq, DISTILL__W16(s, l, wq), p->bq, (int)BT, C, QD);
        distill__mm_forward(s->bf16, kp, ln1, p->wk, DISTILL__W16(s, l, wk), p->bk, (int)BT, C, KVD);
        distill__mm_forward(s->bf16, v, ln1, p->wv, DISTILL__W16(s, l, wv), p->bv, (int)BT, C, KVD);
        if (c->qk_norm) {
            distill_rmsnorm_forward(q, s->rstdq + l * cap * NH, qp, p->q_norm, (int)BT * NH, HS, c->norm_eps);
            distill_rmsnorm_forward(k, s->rstdk + l * cap * NKV, kp, p->k_norm, (int)BT * NKV, HS, c->norm_eps);
        }
        distill__rope_apply(q, s->rope_cs, s->rope_sn, (int)BT, NH, HS, 1.0f);
        distill__rope_apply(k, s->rope_cs, s->rope_sn, (int)BT, NKV, HS, 1.0f);
        /* the blocked kernel of the kernels section: same contract and math as distill_attention_forward
           above (the readable version, checked against finite differences in the tests) */
        distill__flash_forward(s->bf16 && distill__bf16_attention(), att, lse, q, k, v, s->len, s->kstart, B, T, NH, NKV, HS);
        distill__mm_forward(s->bf16, xmid, att, p->wo, DISTILL__W16(s, l, wo), NULL, (int)BT, QD, C);
        distill__residual_add(xmid, x, (int)BT, C);
        /* MLP block; h = silu(gate)*up lives in scratch (recomputed in the backward) */
        distill_rmsnorm_forward(ln2, s->rstd2 + l * cap, xmid, p->ffn_norm, (int)BT, C, c->norm_eps);
        distill__mm_forward(s->bf16, gate, ln2, p->w_gate, DISTILL__W16(s, l, w_gate), NULL, (int)BT, C, F);
        distill__mm_forward(s->bf16, up, ln2, p->w_up, DISTILL__W16(s, l, w_up), NULL, (int)BT, C, F);
        distill_swiglu_forward(s->buf_w, gate, up, BT * F);
        distill__mm_forward(s->bf16, xout, s->buf_w, p->w_down, DISTILL__W16(s, l, w_down), NULL, (int)BT, F, C);
        distill__residual_add(xout, xmid, (int)BT, C);
    }
    distill_rmsnorm_forward(s->lnf, s->rstdf, s->xL, m->final_norm, (int)BT, C, c->norm_eps);
    s->have_fwd = 1;

    memset(&acc, 0, sizeof acc);
    for (l = 0; l < B; l++) ntok += s->len[l];
    acc.tokens = ntok;
    s->head_grads_done = 0;
    if (bt->targets) {
        double wsum = 0.0;
        int64_t i;
        for (i = 0; i < s->n_sup; i++) wsum += bt->weights ? bt->weights[s->sup[i]] : 1.0;
        s->hl.fn = distill_ce_head_loss;
        s->hl.ctx = NULL;
        if (hl && hl->fn) s->hl = *hl;
        s->grad_scale = grad_scale > 0.0f ? grad_scale : (wsum > 0.0 ? (float)(1.0 / wsum) : 0.0f);
        distill__head(m, fuse_head_grad, &acc);
        s->head_grads_done = fuse_head_grad;
        s->have_loss = 1;
        if (acc.weight_sum > 0.0) {
            acc.accuracy /= acc.weight_sum;
            acc.entropy /= acc.weight_sum;
        }
        acc.loss *= (double)s->grad_scale;
    }
    if (stats) *stats = acc;
    return 0;
}

DISTILL_API int distill_model_forward(distill_model *m, const distill_batch *batch, const distill_head_loss *head_loss,
                                      float grad_scale, distill_stats *stats, distill_error *err) {
    return distill__forward(m, batch, head_loss, grad_scale, 0, stats, err);
}

DISTILL_API void distill_model_logits(distill_model *m, int b, float *out) {
    distill__state *s = (distill__state *)m->internal;
    if (!s->have_fwd || b < 0 || b >= s->B) {
        memset(out, 0, sizeof(float) * (size_t)(s->have_fwd ? s->T : 0) * m->cfg.vocab_size);
        return;
    }
    distill__mm_forward(s->bf16, out, s->lnf + (size_t)b * s->T * m->cfg.dim, m->lm_head, s->lm_head16, NULL, s->T, m->cfg.dim,
                           m->cfg.vocab_size);
}

DISTILL_API int distill_model_set_precision(distill_model *m, int precision) {
    if (precision != DISTILL_PRECISION_FP32 && precision != DISTILL_PRECISION_BF16) return -1;
    ((distill__state *)m->internal)->bf16 = precision == DISTILL_PRECISION_BF16;
    if (precision == DISTILL_PRECISION_BF16 && !distill__bf16_native() && !distill__the_pool.bf16_told) {
        distill__the_pool.bf16_told = 1;   /* once per process */
        fprintf(stderr, "distill: BF16 matmuls take the portable path (%s; BF16 rounding + the FP32 %s kernels)\n",
                distill__bf16_cpu() ? "forced" : "this CPU has no avx512_bf16", distill_simd_name());
    }
    return 0;
}
DISTILL_API int distill_model_precision(const distill_model *m) {
    return ((const distill__state *)m->internal)->bf16 ? DISTILL_PRECISION_BF16 : DISTILL_PRECISION_FP32;
}

/* BF16 weights: each matrix rounded once (distill__bf16_bits: nearest even) into w16 at its
   params offset, each vector copied to vecs, the views re-bound, then params (and any gradient
   and AdamW buffers) released. From here the products read BF16 weights: the gemv and the FP32
   packer widen them exactly, the BF16 packer takes the bits as they are, so the model computes
   what an FP32 model holding the rounded weights computes, to the bit. */
DISTILL_API int distill_model_to_bf16(distill_model *m, distill_error *err) {
    distill__state *s = (distill__state *)m->internal;
    size_t k;
    int i;
    if (s->w16) return 0;   /* already */
    if (distill__bf16_alloc(m, err) != 0) return -1;
    for (i = 0; i < m->n_tensors; i++) {
        const distill_tensor_info *t = &m->tensors[i];
        const float *src = m->params + t->offset;
        if (s->vec_at[i] != (size_t)-1) memcpy(s->vecs + s->vec_at[i], src, t->numel * sizeof(float));
        else for (k = 0; k < t->numel; k++) s->w16[t->offset + k] = (uint16_t)distill__bf16_bits(src[k]);
    }
    distill_free_aligned(m->params);
    distill_free_aligned(m->grads);
    distill_free_aligned(m->m);
    distill_free_aligned(m->v);
    m->params = m->grads = m->m = m->v = NULL;
    distill__bind_views(m);   /* matrices to w16 (their float views NULL), vectors to vecs */
    return 0;
}

DISTILL_API int distill_model_is_bf16(const distill_model *m) {
    return ((const distill__state *)m->internal)->w16 != NULL;
}

/* Elements [k0, k0 + n) of tensor ti as floats, from params or, in a model with BF16 weights,
   widened from w16 (matrices) or read from vecs (vectors). Returns a pointer into the model,
   or tmp (n floats) filled. */
static const float *distill__tensor_floats(const distill_model *m, int ti, size_t k0, size_t n, float *tmp) {
    const distill__state *s = (const distill__state *)m->internal;
    const distill_tensor_info *t = &m->tensors[ti];
    size_t k;
    if (m->params) return m->params + t->offset + k0;
    if (s->vec_at[ti] != (size_t)-1) return s->vecs + s->vec_at[ti] + k0;
    for (k = 0; k < n; k++) tmp[k] = distill__h2f(s->w16[t->offset + k0 + k]);
    return tmp;
}

/* The error of a function that needs the FP32 weights, for a model that has BF16 ones only */
static int distill__need_fp32(const distill_model *m, const char *what, distill_error *err) {
    if (m->params) return 0;
    return distill__err(err, "%s: the model keeps BF16 weights only (distill_model_to_bf16): "
                        "it can forward, generate, teach and export to safetensors, not %s", what,
                        "train, write a checkpoint or a llama2.c file");
}

/* ===================================================================================== */
/* Backward: the forward in reverse, accumulating into m->grads                           */
/* ===================================================================================== */

DISTILL_API void distill_model_backward(distill_model *m) {
    distill__state *s = (distill__state *)m->internal;
    const distill_config *c = &m->cfg;
    int C = c->dim, F = c->hidden_dim, NH = c->n_heads, NKV = c->n_kv_heads, HS = distill_config_head_dim(c);
    int QD = NH * HS, KVD = NKV * HS, l;
    int B = s->B, T = s->T;
    size_t BT = (size_t)B * T, cap = s->cap;
    float *dres = s->dres, *A = s->buf_a;
    if (!s->have_fwd || !s->have_loss || !m->grads) return;
    if (!s->head_grads_done) {   /* recompute the logits chunk by chunk, this time with dlogits */
        distill_stats dummy;
        memset(&dummy, 0, sizeof dummy);
        distill__head(m, 1, &dummy);
    }
    s->head_grads_done = 0;   /* a second backward would recompute rather than reuse */
    /* A holds dlnf (BT,C): rows of unsupervised positions are zero */
    memset(dres, 0, sizeof(float) * BT * C);
    distill_rmsnorm_backward(dres, distill__grad_of(m, m->final_norm), A, s->xL, m->final_norm, s->rstdf, (int)BT, C);
    /* the layout is embedding | layer 0 | ... | layer L-1 | final norm | lm_head, so the final
       part of the gradient grows from the end downwards, one contiguous suffix at a time */
    if (s->grad_ready) s->grad_ready(s->grad_ready_ctx, (size_t)(m->final_norm - m->params));
    for (l = c->n_layers - 1; l >= 0; l--) {
        const distill_layer_params *p = &m->layers[l];
        distill_layer_params g;
        float *x = s->x + l * cap * C, *ln1 = s->ln1 + l * cap * C, *q = s->q + l * cap * QD;
        float *k = s->k + l * cap * KVD, *v = s->v + l * cap * KVD, *att = s->att + l * cap * QD;
        float *lse = s->lse + l * cap * NH, *xmid = s->xmid + l * cap * C, *ln2 = s->ln2 + l * cap * C;
        float *gate = s->gate + l * cap * F, *up = s->up + l * cap * F;
        float *H = s->buf_w, *DH = s->buf_w + BT * F;
        float *DQ = s->buf_w, *DK = s->buf_w + BT * QD, *DV = DK + BT * KVD;
        float *DQR = DV + BT * KVD, *DKR = DQR + BT * QD;   /* qk_norm: d(q), d(k) before the norm */
        g.attn_norm = distill__grad_of(m, p->attn_norm); g.ffn_norm = distill__grad_of(m, p->ffn_norm);
        g.wq = distill__grad_of(m, p->wq); g.wk = distill__grad_of(m, p->wk); g.wv = distill__grad_of(m, p->wv);
        g.wo = distill__grad_of(m, p->wo); g.bq = distill__grad_of(m, p->bq); g.bk = distill__grad_of(m, p->bk);
        g.bv = distill__grad_of(m, p->bv); g.w_gate = distill__grad_of(m, p->w_gate);
        g.w_up = distill__grad_of(m, p->w_up); g.w_down = distill__grad_of(m, p->w_down);
        g.q_norm = distill__grad_of(m, p->q_norm); g.k_norm = distill__grad_of(m, p->k_norm);
        /* MLP: dres is d(x_l+1); x_l+1 = xmid + down(h) */
        distill_swiglu_forward(H, gate, up, BT * F);
        memset(DH, 0, sizeof(float) * BT * F);
        distill__mm_backward(s->bf16, DH, g.w_down, NULL, dres, H, p->w_down, (int)BT, F, C);
        distill_swiglu_backward(H, DH, DH, gate, up, BT * F);   /* H := dgate, DH := dup */
        memset(A, 0, sizeof(float) * BT * C);
        distill__mm_backward(s->bf16, A, g.w_gate, NULL, H, ln2, p->w_gate, (int)BT, C, F);
        distill__mm_backward(s->bf16, A, g.w_up, NULL, DH, ln2, p->w_up, (int)BT, C, F);
        distill_rmsnorm_backward(dres, g.ffn_norm, A, xmid, p->ffn_norm, s->rstd2 + l * cap, (int)BT, C);
        /* attention: dres is now d(xmid); xmid = x + o(att) */
        memset(A, 0, sizeof(float) * BT * QD);
        distill__mm_backward(s->bf16, A, g.wo, NULL, dres, att, p->wo, (int)BT, QD, C);
        distill__flash_backward(s->bf16 && distill__bf16_attention(), DQ, DK, DV, A, q, k, v, att, lse, s->len, s->kstart, B, T, NH, NKV, HS);
        distill__rope_apply(DQ, s->rope_cs, s->rope_sn, (int)BT, NH, HS, -1.0f);
        distill__rope_apply(DK, s->rope_cs, s->rope_sn, (int)BT, NKV, HS, -1.0f);
        if (c->qk_norm) {   /* through the per-head norms (RMSNorm backward with N = BT*heads rows of HS) */
            memset(DQR, 0, sizeof(float) * BT * (QD + KVD));
            distill_rmsnorm_backward(DQR, g.q_norm, DQ, s->qr + l * cap * QD, p->q_norm, s->rstdq + l * cap * NH, (int)BT * NH, HS);
            distill_rmsnorm_backward(DKR, g.k_norm, DK, s->kr + l * cap * KVD, p->k_norm, s->rstdk + l * cap * NKV, (int)BT * NKV, HS);
            DQ = DQR;
            DK = DKR;
        }
        memset(A, 0, sizeof(float) * BT * C);
        distill__mm_backward(s->bf16, A, g.wq, g.bq, DQ, ln1, p->wq, (int)BT, C, QD);
        distill__mm_backward(s->bf16, A, g.wk, g.bk, DK, ln1, p->wk, (int)BT, C, KVD);
        distill__mm_backward(s->bf16, A, g.wv, g.bv, DV, ln1, p->wv, (int)BT, C, KVD);
        distill_rmsnorm_backward(dres, g.attn_norm, A, x, p->attn_norm, s->rstd1 + l * cap, (int)BT, C);
        if (s->grad_ready) s->grad_ready(s->grad_ready_ctx, (size_t)(p->attn_norm - m->params));
    }
    distill_embedding_backward(distill__grad_of(m, m->tok_emb), dres, s->tok, (int)BT, C);
    if (s->grad_ready) s->grad_ready(s->grad_ready_ctx, 0);
}

DISTILL_API int distill_model_forward_backward(distill_model *m, const distill_batch *batch,
                                               const distill_head_loss *head_loss, float grad_scale,
                                               distill_stats *stats, distill_error *err) {
    if (distill__forward(m, batch, head_loss, grad_scale, 1, stats, err) != 0) return -1;
    distill_model_backward(m);
    return 0;
}

/* ===================================================================================== */
/* AdamW and learning-rate schedules                                                      */
/* ===================================================================================== */

DISTILL_API distill_optim_config distill_optim_default(void) {
    distill_optim_config o;
    memset(&o, 0, sizeof o);
    o.lr = 3e-4f;
    o.beta1 = 0.9f;
    o.beta2 = 0.95f;
    o.eps = 1e-8f;
    o.weight_decay = 0.1f;
    o.decay_embeddings = 1;
    o.grad_clip = 1.0f;
    o.schedule = DISTILL_SCHED_COSINE;
    o.warmup_steps = 0;
    o.warmup_ratio = 0.0f;
    o.total_steps = 0;      /* 0: no decay after warmup until the trainer sets the run length */
    o.min_lr_ratio = 0.1f;
    return o;
}

DISTILL_API int distill_optim_validate(const distill_optim_config *o, distill_error *err) {
    if (!o) return distill__err(err, "optimizer: NULL");
    if (!(o->lr >= 0.0f && o->lr < 1e3f)) return distill__err(err, "optimizer: lr (%g) must be in [0, 1000)", (double)o->lr);
    if (!(o->beta1 >= 0.0f && o->beta1 < 1.0f)) return distill__err(err, "optimizer: beta1 (%g) must be in [0, 1)", (double)o->beta1);
    if (!(o->beta2 >= 0.0f && o->beta2 < 1.0f)) return distill__err(err, "optimizer: beta2 (%g) must be in [0, 1)", (double)o->beta2);
    if (!(o->eps > 0.0f && o->eps < 1.0f)) return distill__err(err, "optimizer: eps (%g) must be in (0, 1)", (double)o->eps);
    if (!(o->weight_decay >= 0.0f && o->weight_decay < 1e3f))
        return distill__err(err, "optimizer: weight_decay (%g) must be in [0, 1000)", (double)o->weight_decay);
    if (o->decay_embeddings != 0 && o->decay_embeddings != 1)
        return distill__err(err, "optimizer: decay_embeddings (%d) must be 0 or 1", o->decay_embeddings);
    if (!(o->grad_clip == o->grad_clip) || o->grad_clip >= FLT_MAX)
        return distill__err(err, "optimizer: grad_clip (%g) must be finite (<= 0 disables)", (double)o->grad_clip);
    if (o->schedule != DISTILL_SCHED_CONSTANT && o->schedule != DISTILL_SCHED_LINEAR && o->schedule != DISTILL_SCHED_COSINE)
        return distill__err(err, "optimizer: schedule (%d) must be constant, linear or cosine", (int)o->schedule);
    if (o->warmup_steps < 0 && !(o->warmup_ratio >= 0.0f && o->warmup_ratio <= 1.0f))
        return distill__err(err, "optimizer: warmup_ratio (%g) must be in [0, 1]", (double)o->warmup_ratio);
    if (o->total_steps < 0) return distill__err(err, "optimizer: total_steps (%lld) must be >= 0", (long long)o->total_steps);
    if (!(o->min_lr_ratio >= 0.0f && o->min_lr_ratio <= 1.0f))
        return distill__err(err, "optimizer: min_lr_ratio (%g) must be in [0, 1]", (double)o->min_lr_ratio);
    return 0;
}

/* lr(step), step from 0. W warmup steps (warmup_steps, or warmup_ratio * total_steps when
   warmup_steps < 0): lr * (step+1)/W for step < W, so the first step already moves and step
   W-1 reaches the peak. After warmup, progress p = (step - W) / (total_steps - W) in [0, 1]
   and lr * (floor + (1 - floor) * d(p)) with d = 1 (constant), 1 - p (linear) or
   (1 + cos(pi p)) / 2 (cosine), floor = min_lr_ratio. total_steps 0: no decay. */
DISTILL_API float distill_lr_at(const distill_optim_config *o, int64_t step) {
    int64_t W = o->warmup_steps >= 0 ? o->warmup_steps : (int64_t)floor((double)o->warmup_ratio * (double)o->total_steps + 0.5);
    double d = 1.0, p, fl = o->min_lr_ratio;
    if (step < 0) step = 0;
    if (step < W) return (float)((double)o->lr * (double)(step + 1) / (double)W);
    if (o->total_steps <= 0 || o->schedule == DISTILL_SCHED_CONSTANT) return o->lr;
    p = o->total_steps > W ? (double)(step - W) / (double)(o->total_steps - W) : 1.0;
    if (p > 1.0) p = 1.0;
    if (o->schedule == DISTILL_SCHED_LINEAR) d = 1.0 - p;
    else d = 0.5 * (1.0 + cos(M_PI * p));
    return (float)((double)o->lr * (fl + (1.0 - fl) * d));
}

typedef struct { const float *g; double *parts; size_t n; } distill__norm_ctx;
static void distill__norm_task(void *p, int64_t b, int64_t e, int th) {
    const distill__norm_ctx *c = (const distill__norm_ctx *)p;
    int64_t blk;
    (void)th;
    for (blk = b; blk < e; blk++) {
        size_t i0 = (size_t)blk * DISTILL__NORM_BLOCK, i1 = i0 + DISTILL__NORM_BLOCK, i;
        double s = 0.0;
        if (i1 > c->n) i1 = c->n;
        for (i = i0; i < i1; i++) s += (double)c->g[i] * c->g[i];
        c->parts[blk] = s;
    }
}

/* AdamW (Loshchilov & Hutter), the PyTorch formulation:
       g = grad * clip,  m = b1 m + (1-b1) g,  v = b2 v + (1-b2) g^2
       p -= lr * wd * p                               (decoupled decay, flagged tensors only)
       p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps),   bc_i = 1 - b_i^(step+1)
   All tensors in one pool job (one hand-off per step rather than one per tensor, which on a
   small model cost more than the update): the job's items are chunks of DISTILL__ADAM_CHUNK
   floats of each tensor in table order, and a task finds its tensor by walking the table. */
#define DISTILL__ADAM_CHUNK 16384
typedef struct {
    const distill_model *model;
    float b1, b2, eps, step_size, decay_on, decay_off, clip, inv_sqrt_bc2;
    int decay_embeddings;
} distill__adam_ctx;
static void distill__adam_task(void *p, int64_t b, int64_t e, int th) {
    const distill__adam_ctx *c = (const distill__adam_ctx *)p;
    const distill_model *md = c->model;
    int64_t chunk, first = 0, n_chunks;   /* tensor t's chunks: [first, first + n_chunks) */
    int t = 0;
    (void)th;
    n_chunks = ((int64_t)md->tensors[0].numel + DISTILL__ADAM_CHUNK - 1) / DISTILL__ADAM_CHUNK;
    for (chunk = b; chunk < e; chunk++) {
        const distill_tensor_info *ti;
        size_t i0, i1;
        float k[7];
        while (chunk >= first + n_chunks) {
            first += n_chunks;
            t++;
            n_chunks = ((int64_t)md->tensors[t].numel + DISTILL__ADAM_CHUNK - 1) / DISTILL__ADAM_CHUNK;
        }
        ti = &md->tensors[t];
        k[0] = c->clip; k[1] = c->b1; k[2] = c->b2; k[3] = c->step_size; k[4] = c->inv_sqrt_bc2; k[5] = c->eps;
        k[6] = ti->decay && (t != 0 || c->decay_embeddings) ? c->decay_on : c->decay_off;   /* tensor 0: the embedding */
        i0 = (size_t)(chunk - first) * DISTILL__ADAM_CHUNK;
        i1 = i0 + DISTILL__ADAM_CHUNK < ti->numel ? i0 + DISTILL__ADAM_CHUNK : ti->numel;
        distill__ops()->adamw(md->params + ti->offset + i0, md->grads + ti->offset + i0, md->m + ti->offset + i0,
                              md->v + ti->offset + i0, i1 - i0, k);
    }
}

static double distill__adamw_step(distill_model *m, const distill_optim_config *o, int64_t step) {
    distill__state *s = (distill__state *)m->internal;
    distill__norm_ctx nc;
    distill__adam_ctx c;
    double norm2 = 0.0, norm, bc1, bc2, lr;
    float clip = 1.0f;
    size_t i;
    int64_t total = 0;
    int t;
    if (distill__ensure_grads(m) != 0) return -1.0;
    if (!m->m || !m->v) {
        if (!m->m) m->m = (float *)distill_alloc_aligned(sizeof(float) * m->num_floats, 64);
        if (!m->v) m->v = (float *)distill_alloc_aligned(sizeof(float) * m->num_floats, 64);
        if (!m->m || !m->v) return -1.0;
    }
    nc.g = m->grads; nc.parts = s->norm_parts; nc.n = m->num_floats;
    distill_parallel_for((int64_t)s->n_norm_parts, 1, distill__norm_task, &nc);
    for (i = 0; i < s->n_norm_parts; i++) norm2 += s->norm_parts[i];
    norm = sqrt(norm2);
    if (!(norm < HUGE_VAL)) return norm;   /* inf/nan gradient: skip the update, report it */
    if (o->grad_clip > 0.0f && norm > o->grad_clip) clip = (float)(o->grad_clip / (norm + 1e-6));
    if (step < 0) step = 0;
    bc1 = 1.0 - pow((double)o->beta1, (double)(step + 1));
    bc2 = 1.0 - pow((double)o->beta2, (double)(step + 1));
    lr = distill_lr_at(o, step);
    c.model = m;
    c.b1 = o->beta1; c.b2 = o->beta2; c.eps = o->eps; c.clip = clip;
    c.step_size = (float)(lr / bc1);
    c.inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2));
    c.decay_on = (float)(1.0 - lr * o->weight_decay);
    c.decay_off = 1.0f;
    c.decay_embeddings = o->decay_embeddings;
    for (t = 0; t < m->n_tensors; t++) total += ((int64_t)m->tensors[t].numel + DISTILL__ADAM_CHUNK - 1) / DISTILL__ADAM_CHUNK;
    distill_parallel_for(total, 1, distill__adam_task, &c);
    return norm;
}

DISTILL_API double distill_adamw_step(distill_model *m, const distill_optim_config *o, int64_t step) {
    int pr_ = distill__prof_begin("optimizer (grad norm + AdamW)");
    double norm = distill__adamw_step(m, o, step);
    distill__prof_end(pr_);
    return norm;
}

DISTILL_API int distill_train_step(distill_model *m, const distill_batch *batch, const distill_optim_config *oc,
                                   int64_t step, distill_stats *stats, double *grad_norm, distill_error *err) {
    double gn;
    if (distill_optim_validate(oc, err) != 0) return -1;
    if (!batch || !batch->targets) return distill__err(err, "distill_train_step: the batch has no targets");
    distill_model_zero_grad(m);
    if (distill_model_forward_backward(m, batch, NULL, 0.0f, stats, err) != 0) return -1;
    gn = distill_adamw_step(m, oc, step);
    if (grad_norm) *grad_norm = gn;
    if (gn < 0.0) return distill__err(err, "distill_train_step: out of memory for the AdamW moments");
    return 0;
}
/* ===================================================================================== */
/* TRAINER: checksums, logit distillation, top-k teacher cache, model files, checkpoints, */
/* the training loop                                                                      */
/* ===================================================================================== */

/* ---- CRC-32 ------------------------------------------------------------------------------
   The reflected IEEE polynomial 0xEDB88320, bitwise: 8 shifts per byte is slow next to a table,
   but checksums here run once per file, and no table means no global state. */
DISTILL_API uint32_t distill_crc32(uint32_t crc, const void *data, size_t n) {
    const unsigned char *p = (const unsigned char *)data;
    size_t i;
    int b;
    crc = ~crc;
    for (i = 0; i < n; i++) {
        crc ^= p[i];
        for (b = 0; b < 8; b++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

/* ---- SHA-256 (FIPS 180-4) ------------------------------------------------------------------ */
static const uint32_t distill__sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static uint32_t distill__ror32(uint32_t x, int k) { return (x >> k) | (x << (32 - k)); }

static void distill__sha256_block(distill_sha256 *s, const unsigned char *p) {
    uint32_t w[64], a, b, c, d, e, f, g, h, t1, t2;
    int i;
    for (i = 0; i < 16; i++)
        w[i] = ((uint32_t)p[4 * i] << 24) | ((uint32_t)p[4 * i + 1] << 16) |
               ((uint32_t)p[4 * i + 2] << 8) | (uint32_t)p[4 * i + 3];
    for (i = 16; i < 64; i++) {
        uint32_t s0 = distill__ror32(w[i - 15], 7) ^ distill__ror32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = distill__ror32(w[i - 2], 17) ^ distill__ror32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    a = s->h[0]; b = s->h[1]; c = s->h[2]; d = s->h[3];
    e = s->h[4]; f = s->h[5]; g = s->h[6]; h = s->h[7];
    for (i = 0; i < 64; i++) {
        t1 = h + (distill__ror32(e, 6) ^ distill__ror32(e, 11) ^ distill__ror32(e, 25)) +
             ((e & f) ^ (~e & g)) + distill__sha256_k[i] + w[i];
        t2 = (distill__ror32(a, 2) ^ distill__ror32(a, 13) ^ distill__ror32(a, 22)) +
             ((a & b) ^ (a & c) ^ (b & c));
        h = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    s->h[0] += a; s->h[1] += b; s->h[2] += c; s->h[3] += d;
    s->h[4] += e; s->h[5] += f; s->h[6] += g; s->h[7] += h;
}

DISTILL_API void distill_sha256_init(distill_sha256 *s) {
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, h0, sizeof h0);
    s->len = 0;
    s->fill = 0;
}

DISTILL_API void distill_sha256_update(distill_sha256 *s, const void *data, size_t n) {
    const unsigned char *p = (const unsigned char *)data;
    s->len += n;
    while (n > 0) {
        size_t take = 64 - s->fill;
        if (take > n) take = n;
        memcpy(s->buf + s->fill, p, take);
        s->fill += take; p += take; n -= take;
        if (s->fill == 64) { distill__sha256_block(s, s->buf); s->fill = 0; }
    }
}

DISTILL_API void distill_sha256_final(distill_sha256 *s, unsigned char out[32]) {
    /* pad: 0x80, zeros to 56 mod 64, then the bit length big-endian */
    uint64_t bits = s->len * 8;
    unsigned char pad = 0x80, zero = 0, lenb[8];
    int i;
    distill_sha256_update(s, &pad, 1);
    while (s->fill != 56) distill_sha256_update(s, &zero, 1);
    for (i = 0; i < 8; i++) lenb[i] = (unsigned char)(bits >> (56 - 8 * i));
    distill_sha256_update(s, lenb, 8);
    for (i = 0; i < 8; i++) {
        out[4 * i] = (unsigned char)(s->h[i] >> 24); out[4 * i + 1] = (unsigned char)(s->h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(s->h[i] >> 8); out[4 * i + 3] = (unsigned char)s->h[i];
    }
}

DISTILL_API void distill_sha256_hex(const void *data, size_t n, char out[65]) {
    distill_sha256 s;
    unsigned char d[32];
    int i;
    distill_sha256_init(&s);
    distill_sha256_update(&s, data, n);
    distill_sha256_final(&s, d);
    for (i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* ---- little-endian helpers for our file formats ----------------------------------------- */
DISTILL__UNUSED static void distill__put_u32(unsigned char *p, uint32_t x) {
    p[0] = (unsigned char)x; p[1] = (unsigned char)(x >> 8); p[2] = (unsigned char)(x >> 16); p[3] = (unsigned char)(x >> 24);
}
DISTILL__UNUSED static void distill__put_u64(unsigned char *p, uint64_t x) {
    distill__put_u32(p, (uint32_t)x); distill__put_u32(p + 4, (uint32_t)(x >> 32));
}
DISTILL__UNUSED static uint32_t distill__get_u32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
DISTILL__UNUSED static uint64_t distill__get_u64(const unsigned char *p) {
    return (uint64_t)distill__get_u32(p) | ((uint64_t)distill__get_u32(p + 4) << 32);
}
DISTILL__UNUSED static float distill__get_f32(const unsigned char *p) {
    uint32_t u = distill__get_u32(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}
DISTILL__UNUSED static void distill__put_f32(unsigned char *p, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    distill__put_u32(p, u);
}

/* FNV-1a 64 over a row's tokens and targets: identifies the row a cache entry was made for. */
DISTILL__UNUSED static uint64_t distill__row_hash(const int32_t *tokens, const int32_t *targets, int T) {
    uint64_t h = 0xcbf29ce484222325ull;
    int t, b;
    for (t = 0; t < T; t++) {
        uint32_t x = (uint32_t)tokens[t], y = (uint32_t)(targets ? targets[t] : -1);
        for (b = 0; b < 4; b++) { h ^= (x >> (8 * b)) & 0xff; h *= 0x100000001b3ull; }
        for (b = 0; b < 4; b++) { h ^= (y >> (8 * b)) & 0xff; h *= 0x100000001b3ull; }
    }
    return h;
}

/* ======================================================================================= */
/* LOGIT DISTILLATION                                                                       */
/* ======================================================================================= */

DISTILL_API distill_kd_config distill_kd_default(void) {
    distill_kd_config kc;
    kc.alpha = 1.0f;
    kc.beta = 0.0f;
    kc.temperature = 1.0f;
    return kc;
}

DISTILL_API int distill_kd_validate(const distill_kd_config *kc, distill_error *err) {
    if (!(kc->alpha >= 0.0f && kc->alpha <= 1.0f))
        return distill__err(err, "kd alpha (%g) must be in [0, 1]", (double)kc->alpha);
    if (!(kc->beta >= 0.0f && kc->beta <= 1.0f))
        return distill__err(err, "kd beta (%g) must be in [0, 1] (0 forward KL, 1 reverse KL)", (double)kc->beta);
    if (!(kc->temperature > 0.0f && kc->temperature <= 1000.0f))
        return distill__err(err, "kd temperature (%g) must be in (0, 1000]", (double)kc->temperature);
    return 0;
}

/* Softmax in log space with one exp per element: lp[j] = x[j]/tau - logsumexp(x/tau) and
   p[j] = exp(lp[j]) (p may be NULL). Returns the logsumexp. */
static double distill__log_softmax(const double *x, int n, double tau, double *lp, double *p) {
    double mx = -INFINITY, sum = 0.0, lse;
    int i;
    for (i = 0; i < n; i++) if (x[i] / tau > mx) mx = x[i] / tau;
    if (mx == -INFINITY || mx == INFINITY || mx != mx) mx = 0.0;
    for (i = 0; i < n; i++) {
        double e = exp(x[i] / tau - mx);
        if (p) p[i] = e;
        sum += e;
    }
    lse = mx + log(sum);
    for (i = 0; i < n; i++) {
        lp[i] = x[i] / tau - lse;
        if (p) p[i] /= sum;
    }
    return lse;
}

/* The divergence over nb bins given log q, q (student) and log p, p (teacher), and for each bin
   r_b = q_b * dD/dq_b, from which the logit gradient follows (see distill_kd_position):
     forward KL  D = sum p (log p - log q)                 r_b = -p_b
     reverse KL  D = sum q (log q - log p)                 r_b = q_b (log q_b - log p_b + 1)
     JSD_beta    D = beta sum p log(p/m) + (1-beta) sum q log(q/m),   m = beta p + (1-beta) q
                 dD/dq_b = (1-beta) log(q_b/m_b)  (the other terms cancel since sum m = 1)
                                                           r_b = (1-beta) q_b log(q_b/m_b)
   Terms with a zero probability contribute 0 (the limit of x log x), never 0 * log 0. */
static double distill__kd_bins(const double *lq, const double *q, const double *lp, const double *p,
                               int nb, double beta, double *r) {
    double D = 0.0;
    int b;
    if (beta <= 0.0) {
        for (b = 0; b < nb; b++) {
            D += p[b] > 0.0 ? p[b] * (lp[b] - lq[b]) : 0.0;
            r[b] = -p[b];
        }
    } else if (beta >= 1.0) {
        for (b = 0; b < nb; b++) {
            D += q[b] > 0.0 ? q[b] * (lq[b] - lp[b]) : 0.0;
            r[b] = q[b] > 0.0 ? q[b] * (lq[b] - lp[b] + 1.0) : 0.0;
        }
    } else {
        double lb = log(beta), l1b = log(1.0 - beta);
        for (b = 0; b < nb; b++) {
            double lm, m = beta * p[b] + (1.0 - beta) * q[b];
            if (m > 0.0 && m < INFINITY) lm = log(m);
            else {   /* both underflowed: log-space logaddexp */
                double x = lb + lp[b], y = l1b + lq[b], mx = x > y ? x : y;
                lm = mx == -INFINITY ? -INFINITY : mx + log(exp(x - mx) + exp(y - mx));
            }
            if (p[b] > 0.0) D += beta * p[b] * (lp[b] - lm);
            if (q[b] > 0.0) D += (1.0 - beta) * q[b] * (lq[b] - lm);
            r[b] = q[b] > 0.0 ? (1.0 - beta) * q[b] * (lq[b] - lm) : 0.0;
        }
    }
    return D;
}

static int distill__cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return x < y ? -1 : x > y;
}

/* Gradient with respect to the student logits. With z = s/tau, q_j = softmax(z)_j, and bins B
   (token j lies in bin b(j), q_B = sum of q_j over B):
       dq_B/dz_j = q_j (1[j in B] - q_B)
       dD/dz_j  = sum_B dD/dq_B dq_B/dz_j = (q_j / q_b(j)) r_b(j) - q_j R,    R = sum_B r_B
   and dD/ds_j = dD/dz_j / tau. With one token per bin q_j/q_b(j) = 1. The CE term adds
   (1-alpha)(softmax(s)_j - 1[j = target]). Cost: about three exp per vocabulary entry. */
static distill_kd_result distill__kd_position(const double *s, int V, const double *t,
                                             const int32_t *topk_ids, const float *topk_logp,
                                             int k, float tail_logp, int32_t target,
                                             const distill_kd_config *kc, double *grad,
                                             double *scratch /* 9*V */) {
    distill_kd_result res;
    double alpha = kc->alpha, beta = kc->beta, tau = kc->temperature;
    size_t Vz = (size_t)V;
    double *ls1 = scratch, *p1 = scratch + Vz;              /* log softmax(s), softmax(s) */
    double *lq = scratch + 2 * Vz, *q = scratch + 3 * Vz;    /* at temperature tau         */
    double *lp = scratch + 4 * Vz, *p = scratch + 5 * Vz;    /* teacher (or its k+1 bins)  */
    double *r = grad ? grad : scratch + 6 * Vz;              /* bins' r, reused as output  */
    double lse1, mx = -INFINITY, ent = 0.0;
    int j, b;

    /* CE, entropy and argmax of the untempered student distribution */
    res.argmax = 0;
    for (j = 0; j < V; j++) if (s[j] > mx) { mx = s[j]; res.argmax = j; }
    lse1 = distill__log_softmax(s, V, 1.0, ls1, p1);
    for (j = 0; j < V; j++) ent -= p1[j] > 0.0 ? p1[j] * ls1[j] : 0.0;
    (void)lse1;
    res.entropy = ent;
    res.ce = target >= 0 && target < V ? -ls1[target] : 0.0;
    res.kd = 0.0;

    if (alpha > 0.0) {
        double R = 0.0, D, c = alpha * tau; /* alpha tau^2 * (1/tau) */
        if (tau == 1.0) { lq = ls1; q = p1; }
        else distill__log_softmax(s, V, tau, lq, q);
        if (!topk_ids) {
            /* full teacher: one bin per token; r lives in the gradient array */
            distill__log_softmax(t, V, tau, lp, p);
            D = distill__kd_bins(lq, q, lp, p, V, beta, r);
            for (j = 0; j < V; j++) R += r[j];
            if (grad)
                for (j = 0; j < V; j++) grad[j] = c * (r[j] - q[j] * R);
        } else if (k < 1 || k > 4096 || k >= V) {
            D = NAN;   /* not a valid top-k entry */
        } else {
            /* top-k teacher: bins 0..k-1 are the listed tokens, bin k the tail */
            int32_t sorted[4096];
            double *blq = scratch + 6 * Vz, *bq_all = scratch + 7 * Vz, *rb = scratch + 8 * Vz, tail = 0.0, ltail;
            int si = 0;
            for (b = 0; b < k; b++) {
                sorted[b] = topk_ids[b];
                blq[b] = lq[topk_ids[b]];
                bq_all[b] = q[topk_ids[b]];
                lp[b] = (double)topk_logp[b] / tau;
            }
            lp[k] = (tail_logp > -87.0f ? (double)tail_logp : -87.0) / tau;
            distill__log_softmax(lp, k + 1, 1.0, lp, p);   /* renormalise the k+1 teacher bins */
            qsort(sorted, (size_t)k, sizeof *sorted, distill__cmp_i32);
            for (j = 0; j < V; j++) {
                if (si < k && sorted[si] == j) { si++; continue; }
                tail += q[j];
            }
            ltail = tail > 0.0 ? log(tail) : -700.0;
            blq[k] = ltail;
            bq_all[k] = tail;
            D = distill__kd_bins(blq, bq_all, lp, p, k + 1, beta, rb);
            for (b = 0; b <= k; b++) R += rb[b];
            if (grad) {
                /* r of the listed tokens lands on their ids; tail tokens share r_tail by q_j/q_tail */
                double share = tail > 0.0 ? rb[k] / tail : 0.0;
                si = 0;
                for (j = 0; j < V; j++) {
                    if (si < k && sorted[si] == j) { si++; grad[j] = -c * q[j] * R; continue; }
                    grad[j] = c * (q[j] * share - q[j] * R);
                }
                for (b = 0; b < k; b++) grad[topk_ids[b]] += c * rb[b];
            }
        }
        res.kd = D;
    } else if (grad) {
        for (j = 0; j < V; j++) grad[j] = 0.0;
    }
    if (grad && alpha < 1.0 && target >= 0 && target < V) {
        for (j = 0; j < V; j++) grad[j] += (1.0 - alpha) * p1[j];
        grad[target] -= 1.0 - alpha;
    }
    res.loss = alpha * tau * tau * res.kd + (1.0 - alpha) * res.ce;
    return res;
}

DISTILL_API distill_kd_result distill_kd_position(const double *s, int V, const double *t,
                                                  const int32_t *topk_ids, const float *topk_logp,
                                                  int k, float tail_logp, int32_t target,
                                                  const distill_kd_config *kc, double *grad,
                                                  double *scratch) {
    /* the reference entry point allocates its own 9*V work space (the fused head keeps one per
       thread); `scratch` is accepted for compatibility and not used */
    double *w = (double *)DISTILL_MALLOC(sizeof(double) * 9 * (size_t)(V > 0 ? V : 1));
    distill_kd_result res;
    (void)scratch;
    if (!w) {
        memset(&res, 0, sizeof res);
        res.loss = res.kd = NAN;
        return res;
    }
    res = distill__kd_position(s, V, t, topk_ids, topk_logp, k, tail_logp, target, kc, grad, w);
    DISTILL_FREE(w);
    return res;
}

/* ======================================================================================= */
/* TOP-K TEACHER CACHE                                                                      */
/* ======================================================================================= */
#define DISTILL__TOPK_MAGIC "DSTLTOPK"
#define DISTILL__TOPK_VERSION 1u
#define DISTILL__TOPK_HDR 40   /* magic 8, version, k, vocab, reserved, n_rows 8, n_positions 8 */
#define DISTILL__TOPK_ROW 24   /* first_position 8, n_positions 4, n_tokens 4, row_hash 8 */

struct distill_topk_writer {
    char *path;
    int k, V;
    unsigned char *rows, *entries;          /* the row table and the entries, little-endian */
    size_t rows_len, rows_cap, ent_len, ent_cap;
    uint64_t n_rows, n_positions;
    double *lp;                              /* scratch per thread: V log-probabilities */
    int32_t *ids;                            /* scratch per thread: k ids */
    int nthreads;                            /* threads the scratch is sized for */
    int32_t *pos;                            /* a row's supervised positions */
    unsigned char *bad;                      /* per position: 1 = non-finite logits */
    size_t pos_cap;
};

struct distill_topk_cache {
    unsigned char *data;                     /* the whole file */
    size_t size;
    int k, V;
    int64_t n_rows, n_positions;
    const unsigned char *rows, *entries;
    size_t entry_bytes;
};

static int distill__grow(unsigned char **buf, size_t *cap, size_t need) {
    size_t ncap = *cap ? *cap : 4096;
    unsigned char *nb;
    if (need <= *cap) return 0;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2) return -1;
        ncap *= 2;
    }
    nb = (unsigned char *)DISTILL_REALLOC(*buf, ncap);
    if (!nb) return -1;
    *buf = nb;
    *cap = ncap;
    return 0;
}

DISTILL_API distill_topk_writer *distill_topk_writer_open(const char *path, int k, int vocab_size,
                                                          distill_error *err) {
    distill_topk_writer *w;
    if (k < 1 || vocab_size < 2 || k >= vocab_size || k > 4096) {
        distill__err(err, "%s: top-k cache: k (%d) must be in [1, min(4096, vocab_size-1)] (vocab_size %d)", path, k, vocab_size);
        return NULL;
    }
    w = (distill_topk_writer *)DISTILL_MALLOC(sizeof *w);
    if (!w) { distill__err(err, "%s: out of memory", path); return NULL; }
    memset(w, 0, sizeof *w);
    w->path = distill__strdup(path);
    w->k = k;
    w->V = vocab_size;
    if (!w->path) {
        distill_topk_writer_abort(w);
        distill__err(err, "%s: out of memory", path);
        return NULL;
    }
    return w;
}

DISTILL_API void distill_topk_writer_abort(distill_topk_writer *w) {
    if (!w) return;
    DISTILL_FREE(w->path); DISTILL_FREE(w->rows); DISTILL_FREE(w->entries);
    DISTILL_FREE(w->lp); DISTILL_FREE(w->ids); DISTILL_FREE(w->pos); DISTILL_FREE(w->bad);
    DISTILL_FREE(w);
}

/* Top k of x (n) by a min-heap of the k best seen so far: O(n log k). Ties go to the lower id
   so the cache is deterministic. ids comes out sorted by decreasing value. */
static int distill__topk_better(const double *x, int32_t a, int32_t b) {
    return x[a] > x[b] || (x[a] == x[b] && a < b);
}
static void distill__topk_sift(const double *x, int32_t *h, int k, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < k && distill__topk_better(x, h[m], h[l])) m = l;
        if (r < k && distill__topk_better(x, h[m], h[r])) m = r;
        if (m == i) return;
        { int32_t t = h[i]; h[i] = h[m]; h[m] = t; }
        i = m;
    }
}
static void distill__topk_select(const double *x, int n, int k, int32_t *ids) {
    int i;
    for (i = 0; i < k; i++) ids[i] = i;
    for (i = k / 2 - 1; i >= 0; i--) distill__topk_sift(x, ids, k, i);
    for (i = k; i < n; i++)
        if (distill__topk_better(x, i, ids[0])) { ids[0] = i; distill__topk_sift(x, ids, k, 0); }
    /* heap sort: repeatedly move the worst to the end */
    for (i = k - 1; i > 0; i--) {
        int32_t t = ids[0]; ids[0] = ids[i]; ids[i] = t;
        distill__topk_sift(x, ids, i, 0);
    }
}

/* One supervised position's entry: log-softmax of the teacher's logits in double, the top k
   (ids, log-probabilities) and the log of the tail's total probability. Positions are
   independent, so a row's positions run in parallel, each writing its own entry slot. */
typedef struct {
    distill_topk_writer *w;
    const float *logits;
    unsigned char *out;       /* the row's first entry */
} distill__topk_row_ctx;

static void distill__topk_pos_task(void *p, int64_t b, int64_t e, int th) {
    const distill__topk_row_ctx *c = (const distill__topk_row_ctx *)p;
    distill_topk_writer *w = c->w;
    int V = w->V, k = w->k, j;
    size_t eb = (size_t)k * 8 + 4;
    double *lp = w->lp + (size_t)th * (size_t)V;
    int32_t *ids = w->ids + (size_t)th * (size_t)k;
    int64_t i;
    for (i = b; i < e; i++) {
        const float *x = c->logits + (size_t)w->pos[i] * V;
        unsigned char *en = c->out + (size_t)i * eb;
        double mx = -INFINITY, sum = 0.0, tail = 0.0, lim, ls;
        for (j = 0; j < V; j++) if ((double)x[j] > mx) mx = x[j];
        w->bad[i] = !(mx > -INFINITY && mx < INFINITY);
        if (w->bad[i]) continue;
        for (j = 0; j < V; j++) sum += exp((double)x[j] - mx);
        ls = log(sum);
        for (j = 0; j < V; j++) lp[j] = (double)x[j] - mx - ls;
        distill__topk_select(lp, V, k, ids);
        /* the tail summed directly (not 1 - top) so a tiny tail keeps its digits; tokens tied
           with the k-th but not selected also belong to it */
        lim = lp[ids[k - 1]];
        for (j = 0; j < V; j++) if (lp[j] < lim) tail += exp(lp[j]);
        for (j = 0; j < V; j++) if (lp[j] == lim) tail += exp(lp[j]);
        for (j = 0; j < k; j++) if (lp[ids[j]] == lim) tail -= exp(lim);
        if (tail < 0.0) tail = 0.0;
        for (j = 0; j < k; j++) distill__put_u32(en + 4 * (size_t)j, (uint32_t)ids[j]);
        for (j = 0; j < k; j++) distill__put_f32(en + 4 * (size_t)(k + j), (float)lp[ids[j]]);
        distill__put_f32(en + 8 * (size_t)k, tail > 0.0 ? (float)log(tail) : -INFINITY);
    }
}

DISTILL_API int distill_topk_writer_add_row(distill_topk_writer *w, const int32_t *tokens,
                                            const int32_t *targets, int T, const float *logits,
                                            distill_error *err) {
    int t, npos = 0, nt = distill_get_threads();
    size_t eb = (size_t)w->k * 8 + 4;
    unsigned char *rp;
    distill__topk_row_ctx c;
    if (nt < 1) nt = 1;
    if (nt > w->nthreads) {   /* per-thread scratch for as many workers as the pool has */
        DISTILL_FREE(w->lp); DISTILL_FREE(w->ids);
        w->lp = (double *)DISTILL_MALLOC(sizeof(double) * (size_t)nt * (size_t)w->V);
        w->ids = (int32_t *)DISTILL_MALLOC(sizeof(int32_t) * (size_t)nt * (size_t)w->k);
        w->nthreads = w->lp && w->ids ? nt : 0;
        if (!w->nthreads) return distill__err(err, "%s: out of memory", w->path);
    }
    if (T > 0 && (size_t)T > w->pos_cap) {
        DISTILL_FREE(w->pos); DISTILL_FREE(w->bad);
        w->pos = (int32_t *)DISTILL_MALLOC(sizeof(int32_t) * (size_t)T);
        w->bad = (unsigned char *)DISTILL_MALLOC((size_t)T);
        w->pos_cap = w->pos && w->bad ? (size_t)T : 0;
        if (!w->pos_cap) return distill__err(err, "%s: out of memory", w->path);
    }
    for (t = 0; t < T; t++) if (targets[t] >= 0) w->pos[npos++] = t;
    if (distill__grow(&w->entries, &w->ent_cap, w->ent_len + (size_t)npos * eb) != 0)
        return distill__err(err, "%s: out of memory", w->path);
    c.w = w;
    c.logits = logits;
    c.out = w->entries + w->ent_len;
    distill_parallel_for(npos, 1 + 16384 / w->V, distill__topk_pos_task, &c);
    for (t = 0; t < npos; t++)
        if (w->bad[t])
            return distill__err(err, "%s: row %llu position %d: teacher logits are not finite", w->path,
                                (unsigned long long)w->n_rows, (int)w->pos[t]);
    w->ent_len += (size_t)npos * eb;
    if (distill__grow(&w->rows, &w->rows_cap, w->rows_len + DISTILL__TOPK_ROW) != 0)
        return distill__err(err, "%s: out of memory", w->path);
    rp = w->rows + w->rows_len;
    distill__put_u64(rp, w->n_positions);
    distill__put_u32(rp + 8, (uint32_t)npos);
    distill__put_u32(rp + 12, (uint32_t)T);
    distill__put_u64(rp + 16, distill__row_hash(tokens, targets, T));
    w->rows_len += DISTILL__TOPK_ROW;
    w->n_rows++;
    w->n_positions += (uint64_t)npos;
    return 0;
}

DISTILL_API int distill_topk_writer_close(distill_topk_writer *w, distill_error *err) {
    distill_atomic_file af;
    unsigned char hdr[DISTILL__TOPK_HDR], tail[4];
    uint32_t crc;
    int rc = -1;
    memcpy(hdr, DISTILL__TOPK_MAGIC, 8);
    distill__put_u32(hdr + 8, DISTILL__TOPK_VERSION);
    distill__put_u32(hdr + 12, (uint32_t)w->k);
    distill__put_u32(hdr + 16, (uint32_t)w->V);
    distill__put_u32(hdr + 20, 0);
    distill__put_u64(hdr + 24, w->n_rows);
    distill__put_u64(hdr + 32, w->n_positions);
    crc = distill_crc32(0, hdr, sizeof hdr);
    crc = distill_crc32(crc, w->rows, w->rows_len);
    crc = distill_crc32(crc, w->entries, w->ent_len);
    distill__put_u32(tail, crc);
    if (distill_atomic_open(&af, w->path, err) == 0) {
        if (fwrite(hdr, 1, sizeof hdr, af.f) != sizeof hdr ||
            (w->rows_len && fwrite(w->rows, 1, w->rows_len, af.f) != w->rows_len) ||
            (w->ent_len && fwrite(w->entries, 1, w->ent_len, af.f) != w->ent_len) ||
            fwrite(tail, 1, 4, af.f) != 4) {
            distill__err(err, "%s: write failed: %s", w->path, strerror(errno));
            distill_atomic_abort(&af);
        } else rc = distill_atomic_commit(&af, err);
    }
    distill_topk_writer_abort(w);
    return rc;
}

DISTILL_API distill_topk_cache *distill_topk_cache_open(const char *path, int expect_vocab,
                                                        int64_t expect_rows, distill_error *err) {
    distill_topk_cache *c = (distill_topk_cache *)DISTILL_MALLOC(sizeof *c);
    uint64_t nr, np, i, expect_first = 0;
    size_t need, tmp;
    if (!c) { distill__err(err, "%s: out of memory", path); return NULL; }
    memset(c, 0, sizeof *c);
    c->data = (unsigned char *)distill_read_file(path, &c->size, err);
    if (!c->data) goto fail_quiet;
    if (c->size < DISTILL__TOPK_HDR + 4 || memcmp(c->data, DISTILL__TOPK_MAGIC, 8) != 0) {
        distill__err(err, "%s: not a distill top-k teacher cache (bad magic or too short)", path);
        goto fail_quiet;
    }
    if (distill__get_u32(c->data + 8) != DISTILL__TOPK_VERSION) {
        distill__err(err, "%s: top-k cache version %u is not supported (this build reads %u)", path,
                     distill__get_u32(c->data + 8), DISTILL__TOPK_VERSION);
        goto fail_quiet;
    }
    c->k = (int)distill__get_u32(c->data + 12);
    c->V = (int)distill__get_u32(c->data + 16);
    nr = distill__get_u64(c->data + 24);
    np = distill__get_u64(c->data + 32);
    if (c->k < 1 || c->k > 4096 || c->V < 2 || c->k >= c->V) {
        distill__err(err, "%s: field 'k' (%d) / 'vocab_size' (%d) out of range", path, c->k, c->V);
        goto fail_quiet;
    }
    c->entry_bytes = (size_t)c->k * 8 + 4;
    /* every count is checked against the file size before it is used */
    if (nr > (uint64_t)(c->size / DISTILL__TOPK_ROW) || np > (uint64_t)(c->size / c->entry_bytes)) {
        distill__err(err, "%s: header claims %llu rows and %llu positions, more than a %zu-byte file holds",
                     path, (unsigned long long)nr, (unsigned long long)np, c->size);
        goto fail_quiet;
    }
    need = DISTILL__TOPK_HDR + 4 + (size_t)nr * DISTILL__TOPK_ROW;
    if (!distill__mul_size((size_t)np, c->entry_bytes, &tmp) || !distill__add_size(need, tmp, &need) || need != c->size) {
        distill__err(err, "%s: file is %zu bytes but its header implies %zu (truncated or corrupt)", path, c->size, need);
        goto fail_quiet;
    }
    if (distill_crc32(0, c->data, c->size - 4) != distill__get_u32(c->data + c->size - 4)) {
        distill__err(err, "%s: checksum mismatch: the cache is corrupt; recompute it", path);
        goto fail_quiet;
    }
    c->n_rows = (int64_t)nr;
    c->n_positions = (int64_t)np;
    c->rows = c->data + DISTILL__TOPK_HDR;
    c->entries = c->rows + (size_t)nr * DISTILL__TOPK_ROW;
    for (i = 0; i < nr; i++) {
        const unsigned char *rp = c->rows + i * DISTILL__TOPK_ROW;
        if (distill__get_u64(rp) != expect_first || distill__get_u32(rp + 8) > distill__get_u32(rp + 12)) {
            distill__err(err, "%s: row %llu: inconsistent position table", path, (unsigned long long)i);
            goto fail_quiet;
        }
        expect_first += distill__get_u32(rp + 8);
    }
    if (expect_first != np) {
        distill__err(err, "%s: rows hold %llu positions but the header says %llu", path,
                     (unsigned long long)expect_first, (unsigned long long)np);
        goto fail_quiet;
    }
    for (i = 0; i < np; i++) {
        const unsigned char *e = c->entries + i * c->entry_bytes;
        int j;
        for (j = 0; j < c->k; j++) {
            uint32_t id = distill__get_u32(e + 4 * (size_t)j);
            float lp = distill__get_f32(e + 4 * (size_t)(c->k + j));
            if (id >= (uint32_t)c->V || !(lp <= 0.0f) || lp != lp) {
                distill__err(err, "%s: position %llu: entry %d (id %u, log-prob %g) is invalid", path,
                             (unsigned long long)i, j, id, (double)lp);
                goto fail_quiet;
            }
        }
        {
            /* the tail is a log-probability too (NaN or > 0 would make the loss NaN or wrong),
               and the k ids are distinct (a repeated id would count twice in the loss) */
            int32_t sorted[4096];   /* k <= 4096, checked above */
            float tl = distill__get_f32(e + 8 * (size_t)c->k);
            for (j = 0; j < c->k; j++) sorted[j] = (int32_t)distill__get_u32(e + 4 * (size_t)j);
            qsort(sorted, (size_t)c->k, sizeof sorted[0], distill__cmp_i32);
            for (j = 1; j < c->k && sorted[j] != sorted[j - 1]; j++) {}
            if (!(tl <= 0.0f) || j < c->k) {
                distill__err(err, "%s: position %llu: %s", path, (unsigned long long)i,
                             j < c->k ? "an id is listed twice in its top-k" : "the tail log-probability is not <= 0");
                goto fail_quiet;
            }
        }
    }
    if (expect_vocab > 0 && expect_vocab != c->V) {
        distill__err(err, "%s: the cache was made with a vocabulary of %d tokens, the student has %d: "
                     "teacher and student must share the tokenizer", path, c->V, expect_vocab);
        goto fail_quiet;
    }
    if (expect_rows > 0 && expect_rows != c->n_rows) {
        distill__err(err, "%s: the cache holds %lld rows, the dataset has %lld: it was made for other data",
                     path, (long long)c->n_rows, (long long)expect_rows);
        goto fail_quiet;
    }
    return c;
fail_quiet:
    distill_topk_cache_free(c);
    return NULL;
}

DISTILL_API void distill_topk_cache_free(distill_topk_cache *c) {
    if (!c) return;
    DISTILL_FREE(c->data);
    DISTILL_FREE(c);
}
DISTILL_API int distill_topk_cache_k(const distill_topk_cache *c) { return c->k; }
DISTILL_API int distill_topk_cache_vocab(const distill_topk_cache *c) { return c->V; }
DISTILL_API int64_t distill_topk_cache_rows(const distill_topk_cache *c) { return c->n_rows; }

DISTILL_API int distill_topk_cache_check_row(const distill_topk_cache *c, int64_t row,
                                             const int32_t *tokens, const int32_t *targets, int T,
                                             distill_error *err) {
    const unsigned char *rp;
    int t, n = 0;
    if (row < 0 || row >= c->n_rows)
        return distill__err(err, "top-k cache: row %lld out of range (the cache holds %lld rows)", (long long)row, (long long)c->n_rows);
    rp = c->rows + (size_t)row * DISTILL__TOPK_ROW;
    for (t = 0; t < T; t++) n += targets[t] >= 0;
    if ((int)distill__get_u32(rp + 12) != T || (int)distill__get_u32(rp + 8) != n ||
        distill__get_u64(rp + 16) != distill__row_hash(tokens, targets, T))
        return distill__err(err, "top-k cache: row %lld does not match the data (cache: %u tokens, %u supervised; "
                            "data: %d tokens, %d supervised, or different token ids): it was made for another dataset",
                            (long long)row, distill__get_u32(rp + 12), distill__get_u32(rp + 8), T, n);
    return 0;
}

/* ======================================================================================= */
/* THE DISTILLATION HEAD LOSS                                                               */
/* ======================================================================================= */
struct distill_kd_head {
    distill_kd_config kc;
    int V, nthreads;
    double *scratch;                /* per thread: s (V), t (V), grad (V), position scratch (9V) */
    const distill_model *tmodel;    /* in-process teacher (its lm_head), or NULL */
    float *teacher;                 /* its final hidden states (n_supervised, C_teacher) */
    size_t teacher_cap;             /* floats allocated */
    int64_t n_captured;
    float *tlogits, *tx;            /* one head chunk: teacher logits (n, V), gathered hidden (n, C) */
    size_t tlogits_cap, tx_cap;
    const int64_t *chunk_pos;       /* the positions of the chunk tlogits holds */
    const distill_topk_cache *cache;
    int64_t *entry;                 /* per flat position b*T+t: the row in `teacher` or the cache
                                       entry, -1 if unsupervised */
    size_t entry_cap;
};

static int distill__kd_head_threads(distill_kd_head *h) {
    int nt = distill_get_threads();
    if (nt < 1) nt = 1;
    if (nt > h->nthreads) {
        size_t n;
        double *s;
        if (!distill__mul_size((size_t)nt * 12, (size_t)h->V, &n)) return -1;
        s = (double *)distill_alloc_aligned(n * sizeof(double), 64);
        if (!s) return -1;
        distill_free_aligned(h->scratch);
        h->scratch = s;
        h->nthreads = nt;
    }
    return 0;
}

DISTILL_API distill_kd_head *distill_kd_head_create(const distill_kd_config *kc, int V,
                                                    distill_error *err) {
    distill_kd_head *h;
    if (distill_kd_validate(kc, err) != 0) return NULL;
    h = (distill_kd_head *)DISTILL_MALLOC(sizeof *h);
    if (!h) { distill__err(err, "out of memory"); return NULL; }
    memset(h, 0, sizeof *h);
    h->kc = *kc;
    h->V = V;
    if (distill__kd_head_threads(h) != 0) {
        distill_kd_head_free(h);
        distill__err(err, "out of memory for the distillation scratch (V = %d)", V);
        return NULL;
    }
    return h;
}

DISTILL_API void distill_kd_head_free(distill_kd_head *h) {
    if (!h) return;
    distill_free_aligned(h->scratch);
    distill_free_aligned(h->teacher);
    distill_free_aligned(h->tlogits);
    distill_free_aligned(h->tx);
    DISTILL_FREE(h->entry);
    DISTILL_FREE(h);
}

/* The head's fast path: the losses and gradient of distill__kd_position computed on the float
   logits with the SIMD kernels (vectorised exp, dot, axpy, scale) instead of libm exp in
   double: for the forward and reverse KL with a full teacher, and for every divergence with a
   top-k teacher (whose k+1 bins go through the double-precision distill__kd_bins). The JSD with
   a full teacher (a log per entry) keeps the double path. Sums over the vocabulary are float
   partial sums over blocks of DISTILL__KD_BLOCK entries, combined in double, so the rounding
   grows with the block, not with V. With E = exp(z - max z) and S = sum E per distribution
   (q = Eq/Sq the student at temperature tau, z = s/tau; p = Et/St the teacher; p1 = E1/S1 the
   untempered student), c = alpha tau (the alpha tau^2 of the loss times the 1/tau of dz/ds):
     forward KL  D = sum p (zt - zq) - (lse_t - lse_q)        dL/ds = c (q - p)
     reverse KL  D = sum q (zq - zt) - (lse_q - lse_t)        dL/ds = c q (zq - zt - (lse_q - lse_t) - D)
     top-k       bins as in distill__kd_position;             dL/ds = c q (share - R) + c (r_b - q share) on listed ids
   plus (1 - alpha)(p1 - [j = y]) from the CE term. tests/test_kd.c checks it against the
   double path: loss within 2e-5 relative (+1e-6), every gradient entry within 1e-6 of the
   largest. */
#define DISTILL__KD_BLOCK 512

/* E = exp(x scale - m) into e (x scale first goes into e: exp_sum takes a shift only);
   returns S = sum E. */
static double distill__kd_exps(float *e, const float *x, float scale, float m, int V) {
    double S = 0.0;
    int j0, nb;
    for (j0 = 0; j0 < V; j0 += nb) {
        nb = V - j0 < DISTILL__KD_BLOCK ? V - j0 : DISTILL__KD_BLOCK;
        if (scale != 1.0f) {
            memcpy(e + j0, x + j0, sizeof(float) * (size_t)nb);
            distill_vec_scale(e + j0, scale, nb);
            S += distill_vec_exp_sum(e + j0, e + j0, m, nb);
        } else {
            S += distill_vec_exp_sum(e + j0, x + j0, m, nb);
        }
    }
    return S;
}

/* sum a[j] b[j], or sum a[j] when b is NULL */
static double distill__kd_dot(const float *a, const float *b, int V) {
    float one[DISTILL__KD_BLOCK];
    double s = 0.0;
    int j0, nb;
    if (!b) for (j0 = 0; j0 < DISTILL__KD_BLOCK; j0++) one[j0] = 1.0f;
    for (j0 = 0; j0 < V; j0 += nb) {
        nb = V - j0 < DISTILL__KD_BLOCK ? V - j0 : DISTILL__KD_BLOCK;
        s += distill_vec_dot(a + j0, b ? b + j0 : one, nb);
    }
    return s;
}

/* sum e[j] (x[j] scale - y[j] - m), the difference formed per entry before the product (the
   two dots taken apart cancel: they are ~|x| S while the result can be ~0); y may be NULL. */
static double distill__kd_dot_diff(const float *e, const float *x, float scale, const float *y, float m, int V) {
    float one[DISTILL__KD_BLOCK], dif[DISTILL__KD_BLOCK];
    double s = 0.0;
    int j0, nb;
    for (j0 = 0; j0 < DISTILL__KD_BLOCK; j0++) one[j0] = 1.0f;
    for (j0 = 0; j0 < V; j0 += nb) {
        nb = V - j0 < DISTILL__KD_BLOCK ? V - j0 : DISTILL__KD_BLOCK;
        memcpy(dif, x + j0, sizeof(float) * (size_t)nb);
        if (scale != 1.0f) distill_vec_scale(dif, scale, nb);
        if (y) distill_vec_axpy(dif, -1.0f, y + j0, nb);
        if (m != 0.0f) distill_vec_axpy(dif, -m, one, nb);
        s += distill_vec_dot(e + j0, dif, nb);
    }
    return s;
}

/* 1 if the fast path covers this position (else the double path runs) */
static int distill__kd_fast_ok(const distill_kd_config *kc, int topk, int k, int V) {
    if (topk) return k >= 1 && k <= 4096 && k < V;
    return kc->alpha == 0.0f || kc->beta <= 0.0f || kc->beta >= 1.0f;
}

/* One position: s (V) the student's logits, overwritten with dL/ds when `grad`; t (V) the
   teacher's logits, or (t NULL) the top-k entry ids, logp, tail_logp. f: 4V floats of
   scratch, d: 5 (k + 1) doubles. Returns the fields of distill__kd_position. */
static distill_kd_result distill__kd_position_fast(float *s, int V, const float *t, const int32_t *ids,
                                                   const float *logp, int k, float tail_logp, int32_t target,
                                                   const distill_kd_config *kc, int grad, float *f, double *d) {
    distill_kd_result res;
    double alpha = kc->alpha, beta = kc->beta, tau = kc->temperature, c = alpha * tau;
    double S1, Sq = 0.0, lseq = 0.0, ce_w = 0.0;
    float itau = (float)(1.0 / tau), m1, mq;
    float *E1 = f, *Eq = f, *Zq = s, *Et = f + 2 * (size_t)V;
    int j, has_y = target >= 0 && target < V;

    /* the untempered student: argmax, CE, entropy = lse1 - sum p1 s */
    m1 = distill_vec_max(s, V);
    res.argmax = 0;
    for (j = 0; j < V; j++) if (s[j] == m1) { res.argmax = j; break; }
    S1 = distill__kd_exps(E1, s, 1.0f, m1, V);
    res.entropy = log(S1) - distill__kd_dot_diff(E1, s, 1.0f, NULL, m1, V) / S1;
    res.ce = has_y ? (double)m1 + log(S1) - s[target] : 0.0;
    res.kd = 0.0;
    if (has_y && alpha < 1.0) ce_w = 1.0 - alpha;   /* the CE gradient (1 - alpha)(p1 - [j = y]) */

    if (alpha > 0.0) {
        if (tau != 1.0) {   /* the tempered student: Zq = s / tau, Eq = exp(Zq - max) */
            Eq = f + (size_t)V;
            Zq = f + 3 * (size_t)V;
            memcpy(Zq, s, sizeof(float) * (size_t)V);
            distill_vec_scale(Zq, itau, V);
            mq = m1 * itau;
            Sq = distill__kd_exps(Eq, Zq, 1.0f, mq, V);
        } else {
            mq = m1;
            Sq = S1;
        }
        lseq = (double)mq + log(Sq);
    }
    if (alpha > 0.0 && t) {   /* full teacher: zt = t / tau */
        float mt = distill_vec_max(t, V) * itau;
        double St = distill__kd_exps(Et, t, itau, mt, V), lset = (double)mt + log(St);
        if (beta <= 0.0) {   /* forward KL */
            res.kd = distill__kd_dot_diff(Et, t, itau, Zq, 0.0f, V) / St - (lset - lseq);
            if (grad) {
                memcpy(s, Eq, sizeof(float) * (size_t)V);
                distill_vec_scale(s, (float)(c / Sq + (Eq == E1 ? ce_w / S1 : 0.0)), V);
                distill_vec_axpy(s, (float)(-c / St), Et, V);
                if (Eq != E1 && ce_w != 0.0) distill_vec_axpy(s, (float)(ce_w / S1), E1, V);
            }
        } else {             /* reverse KL */
            res.kd = -distill__kd_dot_diff(Eq, t, itau, Zq, 0.0f, V) / Sq - (lseq - lset);
            if (grad) {      /* Zq may be s itself (tau = 1): each entry is read before written.
                                The difference in double: zq, zt and K are ~|z| and nearly cancel */
                double a = c / Sq, K = lseq - lset + res.kd, it = 1.0 / tau;
                for (j = 0; j < V; j++) s[j] = (float)(a * Eq[j] * ((double)Zq[j] - t[j] * it - K));
                if (ce_w != 0.0) distill_vec_axpy(s, (float)(ce_w / S1), E1, V);
            }
        }
    } else if (alpha > 0.0) {
        /* top-k teacher: bins 0..k-1 the listed tokens, bin k the rest (the tail) */
        double *blq = d, *bq = d + (k + 1), *lp = d + 2 * (size_t)(k + 1), *p = d + 3 * (size_t)(k + 1);
        double *rb = d + 4 * (size_t)(k + 1), R = 0.0, tail, share;
        float *saved = Et;
        for (j = 0; j < k; j++) {
            saved[j] = Eq[ids[j]];
            blq[j] = (double)Zq[ids[j]] - lseq;
            bq[j] = (double)saved[j] / Sq;
            lp[j] = (double)logp[j] / tau;
        }
        lp[k] = (tail_logp > -87.0f ? (double)tail_logp : -87.0) / tau;
        /* the tail's mass summed directly (not 1 - the listed mass, which cancels when the
           listed tokens hold nearly all of it): zero the listed entries, sum, restore */
        for (j = 0; j < k; j++) Eq[ids[j]] = 0.0f;
        tail = distill__kd_dot(Eq, NULL, V) / Sq;
        for (j = k - 1; j >= 0; j--) Eq[ids[j]] = saved[j];
        blq[k] = tail > 0.0 ? log(tail) : -700.0;
        bq[k] = tail;
        distill__log_softmax(lp, k + 1, 1.0, lp, p);   /* renormalise the k+1 teacher bins */
        res.kd = distill__kd_bins(blq, bq, lp, p, k + 1, beta, rb);
        for (j = 0; j <= k; j++) R += rb[j];
        share = tail > 0.0 ? rb[k] / tail : 0.0;
        if (grad) {
            memcpy(s, Eq, sizeof(float) * (size_t)V);
            distill_vec_scale(s, (float)(c * (share - R) / Sq + (Eq == E1 ? ce_w / S1 : 0.0)), V);
            if (Eq != E1 && ce_w != 0.0) distill_vec_axpy(s, (float)(ce_w / S1), E1, V);
            for (j = 0; j < k; j++) s[ids[j]] += (float)(c * (rb[j] - bq[j] * share));
        }
    } else if (grad) {       /* alpha = 0: the CE gradient alone */
        memcpy(s, E1, sizeof(float) * (size_t)V);
        distill_vec_scale(s, (float)(ce_w / S1), V);
    }
    if (grad && ce_w != 0.0) s[target] -= (float)ce_w;
    res.loss = alpha * tau * tau * res.kd + (1.0 - alpha) * res.ce;
    return res;
}

/* The chunk callback: for each position of the chunk, the per-position loss of
   distill_kd_position (its float fast path above where it applies), weighted by w and
   written back as dlogits * w * grad_scale. */
static void distill__kd_head_fn(void *ctx, const int64_t *pos, int n, float *lg, int V,
                                const int32_t *targets, const float *weights, float grad_scale,
                                int compute_grad, distill_stats *st, int thread) {
    distill_kd_head *h = (distill_kd_head *)ctx;
    double *s = h->scratch + (size_t)thread * 12 * (size_t)V, *t = s + V, *g = t + V, *scr = g + V;
    int i, j, k = h->cache ? h->cache->k : 0;
    int fast = distill__kd_fast_ok(&h->kc, h->cache != NULL, k, V);
    for (i = 0; i < n; i++) {
        int64_t p = pos[i];
        float *row = lg + (size_t)i * V, tail = 0.0f;
        int32_t tgt = targets[p];
        double w = tgt < 0 ? 0.0 : weights ? (double)weights[p] : 1.0;
        const float *tl = NULL, *lp = NULL;
        const int32_t *ids = NULL;
        distill_kd_result res;
        if (w == 0.0) {
            if (compute_grad) memset(row, 0, sizeof(float) * (size_t)V);
            continue;
        }
        if (h->cache) {
            const unsigned char *e = h->cache->entries + (size_t)h->entry[p] * h->cache->entry_bytes;
            /* the entry is little-endian int32/float32: copy it out to aligned arrays (in t,
               unused by the double path with a cache; past the fast path's 2V + 5(k+1)) */
            int32_t *idw = (int32_t *)(void *)(fast ? s + 8 * (size_t)V : t);
            float *lpw = (float *)(void *)(idw + k);
            for (j = 0; j < k; j++) { idw[j] = (int32_t)distill__get_u32(e + 4 * (size_t)j); lpw[j] = distill__get_f32(e + 4 * (size_t)(k + j)); }
            ids = idw; lp = lpw; tail = distill__get_f32(e + 8 * (size_t)k);
        } else {   /* this position's row of the chunk distill__kd_prepare computed */
            tl = h->tlogits + (size_t)(pos + i - h->chunk_pos) * V;
        }
        if (fast) {
            res = distill__kd_position_fast(row, V, tl, ids, lp, k, tail, tgt, &h->kc, compute_grad,
                                            (float *)(void *)s, s + 2 * (size_t)V);
            if (compute_grad) distill_vec_scale(row, (float)(w * (double)grad_scale), V);
        } else {
            for (j = 0; j < V; j++) s[j] = row[j];
            if (tl) for (j = 0; j < V; j++) t[j] = tl[j];
            res = distill__kd_position(s, V, tl ? t : NULL, ids, lp, k, tail, tgt, &h->kc, compute_grad ? g : NULL, scr);
            if (compute_grad)
                for (j = 0; j < V; j++) row[j] = (float)(g[j] * w * (double)grad_scale);
        }
        st->loss += w * res.loss;
        st->weight_sum += w;
        st->accuracy += res.argmax == tgt ? w : 0.0;   /* weighted, as the core's CE head */
        st->entropy += w * res.entropy;
    }
}

DISTILL_API distill_head_loss distill_kd_head_loss(distill_kd_head *h) {
    distill_head_loss hl;
    hl.fn = distill__kd_head_fn;
    hl.ctx = h;
    return hl;
}

/* Called by the student's head (on the calling thread, before the chunk's parallel loss) with
   the chunk's n supervised positions: the teacher's logits of exactly these positions,
       tlogits (n,V) = hidden_teacher[positions] (n,C_t) . lm_head_teacher (V,C_t)^T,
   one parallel matmul, as the teacher's own fused head would compute them. */
/* Room for n positions of teacher logits (n,V) and gathered hidden states (n,Ct). */
static int distill__kd_reserve_chunk(distill_kd_head *h, size_t n, int Ct) {
    if (n * (size_t)h->V <= h->tlogits_cap && n * (size_t)Ct <= h->tx_cap) return 0;
    distill_free_aligned(h->tlogits);
    distill_free_aligned(h->tx);
    h->tlogits = (float *)distill_alloc_aligned(n * (size_t)h->V * sizeof(float), 64);
    h->tx = (float *)distill_alloc_aligned(n * (size_t)Ct * sizeof(float), 64);
    h->tlogits_cap = h->tlogits ? n * (size_t)h->V : 0;
    h->tx_cap = h->tx ? n * (size_t)Ct : 0;
    return h->tlogits && h->tx ? 0 : -1;
}

static void distill__kd_prepare(void *ctx, const int64_t *pos, int n) {
    distill_kd_head *h = (distill_kd_head *)ctx;
    int Ct, i, rc, pr_;
    if (!h->tmodel || n <= 0) return;
    pr_ = distill__prof_begin("kd: teacher logits of the chunk");
    Ct = h->tmodel->cfg.dim;
    rc = distill__kd_reserve_chunk(h, (size_t)n, Ct);
    /* distill_kd_head_run_teacher reserved the largest chunk: this cannot fail */
    DISTILL_ASSERT(rc == 0);
    (void)rc;
    for (i = 0; i < n; i++)
        memcpy(h->tx + (size_t)i * Ct, h->teacher + (size_t)h->entry[pos[i]] * Ct, sizeof(float) * (size_t)Ct);
    {
        const distill__state *ts = (const distill__state *)h->tmodel->internal;
        distill__mm_forward(ts->bf16, h->tlogits, h->tx, h->tmodel->lm_head, ts->lm_head16, NULL, n, Ct, h->V);
    }
    h->chunk_pos = pos;
    distill__prof_end(pr_);
}


DISTILL_API int distill_kd_head_set_cache_rows(distill_kd_head *h, const distill_topk_cache *c,
                                               const int64_t *rows, const distill_batch *batch,
                                               distill_error *err) {
    size_t BT = (size_t)batch->B * (size_t)batch->T;
    int b, t;
    if (c->V != h->V)
        return distill__err(err, "top-k cache vocabulary (%d) differs from the student's (%d)", c->V, h->V);
    if (c->k * 2 > 8 * h->V) return distill__err(err, "top-k cache: k too large");
    if (distill__kd_head_threads(h) != 0) return distill__err(err, "out of memory");
    if (BT > h->entry_cap) {
        int64_t *e = (int64_t *)DISTILL_REALLOC(h->entry, BT * sizeof(int64_t));
        if (!e) return distill__err(err, "out of memory");
        h->entry = e;
        h->entry_cap = BT;
    }
    for (b = 0; b < batch->B; b++) {
        int T = batch->lengths ? batch->lengths[b] : batch->T;
        const int32_t *tok = batch->tokens + (size_t)b * batch->T, *tg = batch->targets + (size_t)b * batch->T;
        uint64_t first;
        if (distill_topk_cache_check_row(c, rows[b], tok, tg, T, err) != 0) return -1;
        first = distill__get_u64(c->rows + (size_t)rows[b] * DISTILL__TOPK_ROW);
        for (t = 0; t < batch->T; t++) {
            size_t p = (size_t)b * batch->T + t;
            h->entry[p] = t < T && tg[t] >= 0 ? (int64_t)first++ : -1;
        }
    }
    h->cache = c;
    h->tmodel = NULL;
    return 0;
}

/* Entry map of a batch: supervised positions (target >= 0, weight > 0, inside the row's
   length) get consecutive indices in row-major order; returns their count or -1. */
static int64_t distill__kd_map(distill_kd_head *h, const distill_batch *batch) {
    size_t BT = (size_t)batch->B * (size_t)batch->T;
    int64_t n = 0;
    int b, t;
    if (BT > h->entry_cap) {
        int64_t *e = (int64_t *)DISTILL_REALLOC(h->entry, BT * sizeof(int64_t));
        if (!e) return -1;
        h->entry = e;
        h->entry_cap = BT;
    }
    for (b = 0; b < batch->B; b++) {
        int len = batch->lengths ? batch->lengths[b] : batch->T;
        for (t = 0; t < batch->T; t++) {
            size_t p = (size_t)b * batch->T + t;
            int sup = t < len && batch->targets[p] >= 0 && (!batch->weights || batch->weights[p] > 0.0f);
            h->entry[p] = sup ? n++ : -1;
        }
    }
    return n;
}

DISTILL_API int distill_kd_head_run_teacher(distill_kd_head *h, distill_model *teacher,
                                            const distill_batch *batch, distill_error *err) {
    distill_batch nb;
    distill__state *ts = (distill__state *)teacher->internal;
    size_t need, chunk, BT = (size_t)batch->B * (size_t)batch->T, p;
    int64_t n;
    int Ct = teacher->cfg.dim;
    if (teacher->cfg.vocab_size != h->V)
        return distill__err(err, "teacher vocabulary (%d tokens) differs from the student's (%d): logit "
                            "distillation needs a shared tokenizer (use sequence-level distillation, i.e. "
                            "SFT on the teacher's outputs, instead)", teacher->cfg.vocab_size, h->V);
    if (!batch->targets) return distill__err(err, "distill_kd_head_run_teacher: the batch has no targets");
    if (distill__kd_head_threads(h) != 0 || (n = distill__kd_map(h, batch)) < 0)
        return distill__err(err, "out of memory");
    if (!distill__mul_size((size_t)n, (size_t)Ct, &need)) return distill__err(err, "teacher hidden states: size overflow");
    if (need > h->teacher_cap) {
        float *t = (float *)distill_alloc_aligned(need * sizeof(float), 64);
        if (!t) return distill__err(err, "out of memory for the teacher's hidden states (%lld positions x %d); use smaller micro-batches",
                                    (long long)n, Ct);
        distill_free_aligned(h->teacher);
        h->teacher = t;
        h->teacher_cap = need;
    }
    /* one head chunk of teacher logits, reserved now so the head never allocates */
    chunk = distill__head_chunk(h->V);
    if ((int64_t)chunk > n) chunk = (size_t)n;
    if (chunk > 0 && distill__kd_reserve_chunk(h, chunk, Ct) != 0)
        return distill__err(err, "out of memory for a chunk of teacher logits (%zu x %d)", chunk, h->V);
    h->n_captured = n;
    h->cache = NULL;
    h->tmodel = teacher;
    /* the teacher's layers and final norm only (no targets: no head, no loss) */
    nb = *batch;
    nb.targets = NULL;
    nb.weights = NULL;
    if (distill_model_forward(teacher, &nb, NULL, 0.0f, NULL, err) != 0) return -1;
    for (p = 0; p < BT; p++)
        if (h->entry[p] >= 0)
            memcpy(h->teacher + (size_t)h->entry[p] * Ct, ts->lnf + p * (size_t)Ct, sizeof(float) * (size_t)Ct);
    return 0;
}

/* ======================================================================================= */
/* MODEL FILES: own checkpoints, safetensors, llama2.c                                      */
/* ======================================================================================= */
#define DISTILL__CKPT_MAGIC "DSTLCKPT"
#define DISTILL__CKPT_VERSION 1u
#define DISTILL__CKPT_HDR 40

DISTILL_API void distill_config_write_json(FILE *f, const distill_config *c) {
    fprintf(f, "{\"vocab_size\": %d, \"dim\": %d, \"n_layers\": %d, \"n_heads\": %d, \"n_kv_heads\": %d, "
               "\"hidden_dim\": %d, \"rope_theta\": %.9g, \"norm_eps\": %.9g, \"qkv_bias\": %d, "
               "\"tie_embeddings\": %d, \"init_std\": %.9g, \"scale_residual_init\": %d",
            c->vocab_size, c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->hidden_dim,
            (double)c->rope_theta, (double)c->norm_eps, c->qkv_bias, c->tie_embeddings,
            (double)c->init_std, c->scale_residual_init);
    if (c->head_dim || c->qk_norm || c->rope_scaling)   /* the HF options, only when used: other files stay as they were */
        fprintf(f, ", \"head_dim\": %d, \"qk_norm\": %d, \"rope_scaling\": %d, \"rope_factor\": %.9g, "
                   "\"rope_low_freq_factor\": %.9g, \"rope_high_freq_factor\": %.9g, \"rope_original_max_pos\": %d",
                c->head_dim, c->qk_norm, c->rope_scaling, (double)c->rope_factor, (double)c->rope_low_freq_factor,
                (double)c->rope_high_freq_factor, c->rope_original_max_pos);
    fprintf(f, "}");
}

/* Integer field of a JSON object, range-checked; a missing field keeps *out when optional. */
static int distill__json_int(const distill_json *o, const char *key, int *out, int optional,
                             int lo, int hi, const char *file, distill_error *err) {
    const distill_json *v = distill_json_get(o, key);
    if (!v) return optional ? 0 : distill__err(err, "%s: missing field '%s'", file, key);
    if (v->type == DISTILL_JSON_TRUE || v->type == DISTILL_JSON_FALSE) {
        *out = v->type == DISTILL_JSON_TRUE;
        return 0;
    }
    if (v->type != DISTILL_JSON_NUMBER || !v->is_int || v->i64 < lo || v->i64 > hi)
        return distill__err(err, "%s:%d: field '%s': expected an integer in [%d, %d]", file, v->line, key, lo, hi);
    *out = (int)v->i64;
    return 0;
}
static int distill__json_float(const distill_json *o, const char *key, float *out, int optional,
                               const char *file, distill_error *err) {
    const distill_json *v = distill_json_get(o, key);
    if (!v) return optional ? 0 : distill__err(err, "%s: missing field '%s'", file, key);
    if (v->type != DISTILL_JSON_NUMBER || !(fabs(v->num) < 1e30))
        return distill__err(err, "%s:%d: field '%s': expected a number", file, v->line, key);
    *out = (float)v->num;
    return 0;
}

static int distill__config_from_json(const distill_json *o, distill_config *c, const char *file,
                                     distill_error *err) {
    *c = distill_config_default();
    if (!o || o->type != DISTILL_JSON_OBJECT) return distill__err(err, "%s: field 'config': expected an object", file);
    if (distill__json_int(o, "vocab_size", &c->vocab_size, 0, 1, 1 << 24, file, err) ||
        distill__json_int(o, "dim", &c->dim, 0, 1, 1 << 16, file, err) ||
        distill__json_int(o, "n_layers", &c->n_layers, 0, 1, 1024, file, err) ||
        distill__json_int(o, "n_heads", &c->n_heads, 0, 1, 4096, file, err) ||
        distill__json_int(o, "n_kv_heads", &c->n_kv_heads, 0, 1, 4096, file, err) ||
        distill__json_int(o, "hidden_dim", &c->hidden_dim, 0, 1, 1 << 20, file, err) ||
        distill__json_float(o, "rope_theta", &c->rope_theta, 0, file, err) ||
        distill__json_float(o, "norm_eps", &c->norm_eps, 0, file, err) ||
        distill__json_int(o, "qkv_bias", &c->qkv_bias, 0, 0, 1, file, err) ||
        distill__json_int(o, "tie_embeddings", &c->tie_embeddings, 0, 0, 1, file, err) ||
        distill__json_float(o, "init_std", &c->init_std, 1, file, err) ||
        distill__json_int(o, "scale_residual_init", &c->scale_residual_init, 1, 0, 1, file, err) ||
        distill__json_int(o, "head_dim", &c->head_dim, 1, 0, 65536, file, err) ||
        distill__json_int(o, "qk_norm", &c->qk_norm, 1, 0, 1, file, err) ||
        distill__json_int(o, "rope_scaling", &c->rope_scaling, 1, 0, 2, file, err) ||
        distill__json_float(o, "rope_factor", &c->rope_factor, 1, file, err) ||
        distill__json_float(o, "rope_low_freq_factor", &c->rope_low_freq_factor, 1, file, err) ||
        distill__json_float(o, "rope_high_freq_factor", &c->rope_high_freq_factor, 1, file, err) ||
        distill__json_int(o, "rope_original_max_pos", &c->rope_original_max_pos, 1, 0, 1 << 30, file, err))
        return -1;
    if (distill_config_validate(c, err) != 0) {
        char tmp[sizeof err->msg];
        snprintf(tmp, sizeof tmp, "%.200s: %.300s", file, err->msg);
        memcpy(err->msg, tmp, sizeof tmp);
        return -1;
    }
    return 0;
}

static int distill__fwrite_all(FILE *f, const void *p, size_t n) { return n == 0 || fwrite(p, 1, n, f) == n ? 0 : -1; }

DISTILL_API int distill_checkpoint_write(const char *path, const distill_model *m, int with_optimizer,
                                         const char *train_json, const distill_ckpt_section *extra,
                                         int n_extra, distill_error *err) {
    /* The JSON header is built in memory first (its length goes in the fixed header), then the
       sections stream out in order while the CRC is updated. */
    distill_ckpt_section secs[66];   /* params, adam_m, adam_v, <= 60 extra, tokenizer, chat_template */
    int ns = 0, i;
    char *json = NULL;
    size_t json_len = 0, off = 0;
    FILE *mf;
    unsigned char hdr[DISTILL__CKPT_HDR];
    uint32_t crc;
    distill_atomic_file af;
    if (distill__need_fp32(m, path, err)) return -1;
    if (n_extra < 0 || n_extra > 60) return distill__err(err, "%s: too many checkpoint sections", path);
    secs[ns].name = "params"; secs[ns].data = m->params; secs[ns].size = m->num_floats * sizeof(float); ns++;
    if (with_optimizer && m->m && m->v) {
        secs[ns].name = "adam_m"; secs[ns].data = m->m; secs[ns].size = m->num_floats * sizeof(float); ns++;
        secs[ns].name = "adam_v"; secs[ns].data = m->v; secs[ns].size = m->num_floats * sizeof(float); ns++;
    }
    for (i = 0; i < n_extra; i++) secs[ns++] = extra[i];
    {   /* the tokenizer and chat template the model carries (distill_model_set_tokenizer) */
        const distill__state *st = (const distill__state *)m->internal;
        if (st->tok_bytes) { secs[ns].name = "tokenizer"; secs[ns].data = st->tok_bytes; secs[ns].size = st->tok_size; ns++; }
        if (st->tmpl_name[0]) { secs[ns].name = "chat_template"; secs[ns].data = st->tmpl_name; secs[ns].size = strlen(st->tmpl_name); ns++; }
    }
    mf = tmpfile();
    if (!mf) return distill__err(err, "%s: cannot create a temporary buffer: %s", path, strerror(errno));
    fprintf(mf, "{\"format\": \"distill-checkpoint\", \"version\": %u, \"config\": ", DISTILL__CKPT_VERSION);
    distill_config_write_json(mf, &m->cfg);
    fprintf(mf, ", \"num_params\": %llu, \"sections\": [", (unsigned long long)m->num_params);
    for (i = 0; i < ns; i++) {
        fprintf(mf, "%s{\"name\": ", i ? ", " : "");
        distill_json_write_string(mf, secs[i].name, strlen(secs[i].name));
        fprintf(mf, ", \"offset\": %llu, \"size\": %llu}", (unsigned long long)off, (unsigned long long)secs[i].size);
        off += secs[i].size;
    }
    fprintf(mf, "], \"train\": %s}\n", train_json ? train_json : "null");
    if (ferror(mf)) { fclose(mf); return distill__err(err, "%s: cannot format the header", path); }
    json_len = (size_t)ftell(mf);
    json = (char *)DISTILL_MALLOC(json_len + 1);
    rewind(mf);
    if (!json || fread(json, 1, json_len, mf) != json_len) {
        fclose(mf); DISTILL_FREE(json);
        return distill__err(err, "%s: out of memory for the header", path);
    }
    fclose(mf);
    crc = distill_crc32(0, json, json_len);
    for (i = 0; i < ns; i++) crc = distill_crc32(crc, secs[i].data, secs[i].size);
    memcpy(hdr, DISTILL__CKPT_MAGIC, 8);
    distill__put_u32(hdr + 8, DISTILL__CKPT_VERSION);
    distill__put_u32(hdr + 12, 0);
    distill__put_u64(hdr + 16, json_len);
    distill__put_u64(hdr + 24, off);
    distill__put_u32(hdr + 32, crc);
    distill__put_u32(hdr + 36, distill_crc32(0, hdr, 36));
    if (distill_atomic_open(&af, path, err) != 0) { DISTILL_FREE(json); return -1; }
    if (distill__fwrite_all(af.f, hdr, sizeof hdr) || distill__fwrite_all(af.f, json, json_len)) goto wfail;
    for (i = 0; i < ns; i++) if (distill__fwrite_all(af.f, secs[i].data, secs[i].size)) goto wfail;
    DISTILL_FREE(json);
    return distill_atomic_commit(&af, err);
wfail:
    distill__err(err, "%s: write failed: %s", path, strerror(errno));
    distill_atomic_abort(&af);
    DISTILL_FREE(json);
    return -1;
}

DISTILL_API void distill_checkpoint_free(distill_checkpoint *ck) {
    if (!ck) return;
    distill_json_free(ck->json);
    DISTILL_FREE(ck->file);
    DISTILL_FREE(ck->path);
    DISTILL_FREE(ck);
}

DISTILL_API distill_checkpoint *distill_checkpoint_read(const char *path, distill_error *err) {
    distill_checkpoint *ck = (distill_checkpoint *)DISTILL_MALLOC(sizeof *ck);
    uint64_t jl, dl;
    const distill_json *secs, *tr;
    size_t i;
    if (!ck) { distill__err(err, "%s: out of memory", path); return NULL; }
    memset(ck, 0, sizeof *ck);
    ck->path = distill__strdup(path);
    ck->file = (unsigned char *)distill_read_file(path, &ck->file_size, err);
    if (!ck->file || !ck->path) goto fail;
    if (ck->file_size < DISTILL__CKPT_HDR || memcmp(ck->file, DISTILL__CKPT_MAGIC, 8) != 0) {
        distill__err(err, "%s: not a distill checkpoint (bad magic or shorter than its header)", path);
        goto fail;
    }
    if (distill_crc32(0, ck->file, 36) != distill__get_u32(ck->file + 36)) {
        distill__err(err, "%s: header checksum mismatch: the checkpoint is corrupt", path);
        goto fail;
    }
    if (distill__get_u32(ck->file + 8) != DISTILL__CKPT_VERSION) {
        distill__err(err, "%s: checkpoint version %u is not supported (this build reads %u)", path,
                     distill__get_u32(ck->file + 8), DISTILL__CKPT_VERSION);
        goto fail;
    }
    jl = distill__get_u64(ck->file + 16);
    dl = distill__get_u64(ck->file + 24);
    if (jl > ck->file_size - DISTILL__CKPT_HDR || dl != ck->file_size - DISTILL__CKPT_HDR - jl) {
        distill__err(err, "%s: file is %zu bytes but its header says %llu + %llu (truncated?)", path,
                     ck->file_size, (unsigned long long)jl, (unsigned long long)dl);
        goto fail;
    }
    if (distill_crc32(0, ck->file + DISTILL__CKPT_HDR, ck->file_size - DISTILL__CKPT_HDR) != distill__get_u32(ck->file + 32)) {
        distill__err(err, "%s: checksum mismatch: the checkpoint is corrupt", path);
        goto fail;
    }
    ck->json = distill_json_parse((const char *)ck->file + DISTILL__CKPT_HDR, (size_t)jl, path, 1, err);
    if (!ck->json) goto fail;
    ck->data = ck->file + DISTILL__CKPT_HDR + jl;
    ck->data_size = (size_t)dl;
    if (distill__config_from_json(distill_json_get(ck->json, "config"), &ck->cfg, path, err) != 0) goto fail;
    secs = distill_json_get(ck->json, "sections");
    if (!secs || secs->type != DISTILL_JSON_ARRAY) { distill__err(err, "%s: field 'sections': expected an array", path); goto fail; }
    for (i = 0; i < secs->len; i++) {
        const distill_json *s = &secs->items[i], *o = distill_json_get(s, "offset"), *z = distill_json_get(s, "size"),
                           *n = distill_json_get(s, "name");
        if (!n || n->type != DISTILL_JSON_STRING || !o || !o->is_int || !z || !z->is_int || o->i64 < 0 || z->i64 < 0 ||
            (uint64_t)o->i64 > dl || (uint64_t)z->i64 > dl - (uint64_t)o->i64) {
            distill__err(err, "%s: section %zu: bad name, offset or size (data is %llu bytes)", path, i, (unsigned long long)dl);
            goto fail;
        }
    }
    tr = distill_json_get(ck->json, "train");
    ck->train = tr && tr->type == DISTILL_JSON_OBJECT ? tr : NULL;
    return ck;
fail:
    distill_checkpoint_free(ck);
    return NULL;
}

DISTILL_API const void *distill_checkpoint_section(const distill_checkpoint *ck, const char *name,
                                                   size_t *size) {
    const distill_json *secs = distill_json_get(ck->json, "sections");
    size_t i;
    for (i = 0; secs && i < secs->len; i++) {
        const distill_json *n = distill_json_get(&secs->items[i], "name");
        if (n && !strcmp(n->str, name)) {
            if (size) *size = (size_t)distill_json_get(&secs->items[i], "size")->i64;
            return ck->data + distill_json_get(&secs->items[i], "offset")->i64;
        }
    }
    if (size) *size = 0;
    return NULL;
}

static int distill__ensure_moments(distill_model *m) {
    if (!m->m) m->m = (float *)distill_alloc_aligned(m->num_floats * sizeof(float), 64);
    if (!m->v) m->v = (float *)distill_alloc_aligned(m->num_floats * sizeof(float), 64);
    return m->m && m->v ? 0 : -1;
}

DISTILL_API int distill_checkpoint_restore(const distill_checkpoint *ck, distill_model *m,
                                           int with_optimizer, distill_error *err) {
    size_t n, want = m->num_floats * sizeof(float);
    const void *p = distill_checkpoint_section(ck, "params", &n);
    if (distill__need_fp32(m, ck->path, err)) return -1;
    if (memcmp(&ck->cfg, &m->cfg, sizeof m->cfg) != 0 &&
        (ck->cfg.vocab_size != m->cfg.vocab_size || ck->cfg.dim != m->cfg.dim || ck->cfg.n_layers != m->cfg.n_layers ||
         ck->cfg.n_heads != m->cfg.n_heads || ck->cfg.n_kv_heads != m->cfg.n_kv_heads ||
         ck->cfg.hidden_dim != m->cfg.hidden_dim || ck->cfg.qkv_bias != m->cfg.qkv_bias ||
         ck->cfg.tie_embeddings != m->cfg.tie_embeddings))
        return distill__err(err, "%s: the checkpoint's model config differs from the model's", ck->path);
    if (!p || n != want)
        return distill__err(err, "%s: section 'params' is %zu bytes, the model needs %zu", ck->path, n, want);
    memcpy(m->params, p, want);
    if (with_optimizer) {
        const void *pm = distill_checkpoint_section(ck, "adam_m", &n);
        size_t nv;
        const void *pv = distill_checkpoint_section(ck, "adam_v", &nv);
        if (pm && pv) {
            if (n != want || nv != want) return distill__err(err, "%s: AdamW moment sections have the wrong size", ck->path);
            if (distill__ensure_moments(m) != 0) return distill__err(err, "out of memory for AdamW moments");
            memcpy(m->m, pm, want);
            memcpy(m->v, pv, want);
        }
    }
    return 0;
}

/* ---- safetensors --------------------------------------------------------------------------
   <u64 header length N> <N bytes of JSON: name -> {dtype, shape, data_offsets [begin, end)}>
   <data>. Offsets are relative to the start of data. */

/* path of a file next to `path` (same directory) */
static char *distill__sibling(const char *path, const char *name) {
    const char *slash = strrchr(path, '/');
    size_t d = slash ? (size_t)(slash - path) + 1 : 0, n = d + strlen(name) + 1;
    char *s = (char *)DISTILL_MALLOC(n);
    if (!s) return NULL;
    memcpy(s, path, d);
    memcpy(s + d, name, strlen(name) + 1);
    return s;
}

static int distill__write_hf_config(const distill_model *m, const char *path, const char *torch_dtype,
                                    distill_error *err) {
    const distill_config *c = &m->cfg;
    char *cp = distill__sibling(path, "config.json");
    distill_atomic_file af;
    int rc;
    if (!cp) return distill__err(err, "out of memory");
    if (distill_atomic_open(&af, cp, err) != 0) { DISTILL_FREE(cp); return -1; }
    fprintf(af.f,
            "{\n  \"architectures\": [\"%s\"],\n  \"model_type\": \"%s\",\n  \"hidden_size\": %d,\n"
            "  \"intermediate_size\": %d,\n  \"num_attention_heads\": %d,\n  \"num_hidden_layers\": %d,\n"
            "  \"num_key_value_heads\": %d,\n  \"head_dim\": %d,\n  \"vocab_size\": %d,\n  \"rms_norm_eps\": %.9g,\n"
            "  \"rope_theta\": %.9g,\n  \"tie_word_embeddings\": %s,\n  \"max_position_embeddings\": %d,\n",
            c->qk_norm ? "Qwen3ForCausalLM" : c->qkv_bias ? "Qwen2ForCausalLM" : "LlamaForCausalLM",
            c->qk_norm ? "qwen3" : c->qkv_bias ? "qwen2" : "llama",
            c->dim, c->hidden_dim, c->n_heads, c->n_layers, c->n_kv_heads, distill_config_head_dim(c),
            c->vocab_size, (double)c->norm_eps, (double)c->rope_theta,
            c->tie_embeddings ? "true" : "false", m->max_seq > 0 ? m->max_seq : 2048);
    if (c->rope_scaling == DISTILL_ROPE_LINEAR)
        fprintf(af.f, "  \"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": %.9g},\n", (double)c->rope_factor);
    else if (c->rope_scaling == DISTILL_ROPE_LLAMA3)
        fprintf(af.f, "  \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": %.9g, \"low_freq_factor\": %.9g, "
                      "\"high_freq_factor\": %.9g, \"original_max_position_embeddings\": %d},\n",
                (double)c->rope_factor, (double)c->rope_low_freq_factor, (double)c->rope_high_freq_factor, c->rope_original_max_pos);
    fprintf(af.f, "  \"hidden_act\": \"silu\",\n  \"attention_bias\": false,\n  \"torch_dtype\": \"%s\"\n}\n", torch_dtype);
    rc = distill_atomic_commit(&af, err);
    DISTILL_FREE(cp);
    return rc;
}

/* float -> bfloat16 and float -> float16, round to nearest with ties to even, on the bits:
     bf16 keeps the top 16 bits of the float; add 0x7fff + (bit 16) before truncating;
     f16 normal: exponent rebiased 127 -> 15, mantissa cut from 23 to 10 bits with the same
     rounding; below 2^-14, f16 is subnormal: m * 2^-24 with m = round(|x| * 2^24).  */
static uint16_t distill__float_to_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);   /* NaN stays a (quiet) NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static uint16_t distill__float_to_half(float x) {
    uint32_t u, a, sign, e, m, rem, h;
    memcpy(&u, &x, 4);
    sign = (u >> 16) & 0x8000u;
    a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);       /* NaN */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);      /* >= 65520: rounds to infinity */
    e = a >> 23;
    if (e < 113) {                                                /* |x| < 2^-14: subnormal or zero */
        int shift = 126 - (int)e;
        uint32_t full = (a & 0x7fffffu) | 0x800000u, half;
        if (e < 102) return (uint16_t)sign;                       /* < 2^-25: rounds to zero */
        m = full >> shift;
        rem = full & ((1u << shift) - 1u);
        half = 1u << (shift - 1);
        if (rem > half || (rem == half && (m & 1u))) m++;         /* may become the smallest normal */
        return (uint16_t)(sign | m);
    }
    h = ((e - 112) << 10) | ((a & 0x7fffffu) >> 13);
    rem = a & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;      /* a carry rounds up the exponent */
    return (uint16_t)(sign | h);
}

DISTILL_API int distill_safetensors_save(const distill_model *m, const char *path, distill_error *err) {
    return distill_safetensors_save_as(m, path, "F32", err);
}

static int distill__st_kind(const char *dtype) {   /* 0 F32, 1 F16, 2 BF16, -1 unknown */
    if (!dtype || !strcmp(dtype, "F32")) return 0;
    if (!strcmp(dtype, "F16")) return 1;
    if (!strcmp(dtype, "BF16")) return 2;
    return -1;
}

/* F16 cannot hold large weights: refuse before writing anything. */
static int distill__st_check_f16(const distill_model *m, const char *path, distill_error *err) {
    int i;
    float tmp[256];
    for (i = 0; i < m->n_tensors; i++) {
        const distill_tensor_info *t = &m->tensors[i];
        size_t k0, k;
        for (k0 = 0; k0 < t->numel; k0 += 256) {   /* 256 values at a time, in place or widened from BF16 */
            size_t n = t->numel - k0 < 256 ? t->numel - k0 : 256;
            const float *w = distill__tensor_floats(m, i, k0, n, tmp);
            for (k = 0; k < n; k++)
                if (w[k] == w[k] && (w[k] >= 65520.0f || w[k] <= -65520.0f))
                    return distill__err(err, "%s: tensor '%s' element %zu (%g) is beyond float16's range: export F32 or BF16",
                                        path, t->name, k0 + k, (double)w[k]);
        }
    }
    return 0;
}

/* One safetensors file holding tensors [t0, t1) of the size table. */
static int distill__st_write_file(const distill_model *m, const char *path, int kind, int t0, int t1, distill_error *err) {
    FILE *mf;
    char *hj;
    size_t hl, padded, off = 0, esz = kind ? 2 : 4;
    unsigned char n8[8];
    unsigned char *buf = NULL;
    distill_atomic_file af;
    int i;
    mf = tmpfile();
    if (!mf) return distill__err(err, "%s: cannot create a temporary buffer", path);
    fprintf(mf, "{\"__metadata__\": {\"format\": \"pt\"}");
    for (i = t0; i < t1; i++) {
        const distill_tensor_info *t = &m->tensors[i];
        fprintf(mf, ", \"%s\": {\"dtype\": \"%s\", \"shape\": [%d", t->name, kind == 0 ? "F32" : kind == 1 ? "F16" : "BF16",
                t->shape[0]);
        if (t->ndim == 2) fprintf(mf, ", %d", t->shape[1]);
        fprintf(mf, "], \"data_offsets\": [%llu, %llu]}", (unsigned long long)off,
                (unsigned long long)(off + t->numel * esz));
        off += t->numel * esz;
    }
    fprintf(mf, "}");
    hl = (size_t)ftell(mf);
    padded = (hl + 7) & ~(size_t)7;     /* data 8-byte aligned, padding with spaces as the spec allows */
    hj = (char *)DISTILL_MALLOC(padded);
    rewind(mf);
    if (!hj || fread(hj, 1, hl, mf) != hl) { fclose(mf); DISTILL_FREE(hj); return distill__err(err, "%s: out of memory", path); }
    fclose(mf);
    memset(hj + hl, ' ', padded - hl);
    distill__put_u64(n8, padded);
    if (distill_atomic_open(&af, path, err) != 0) { DISTILL_FREE(hj); return -1; }
    if (distill__fwrite_all(af.f, n8, 8) || distill__fwrite_all(af.f, hj, padded)) goto wfail;
    for (i = t0; i < t1; i++) {
        const distill_tensor_info *t = &m->tensors[i];
        size_t k;
        if (!buf) buf = (unsigned char *)DISTILL_MALLOC(8 * 65536);   /* bytes out, then 64K floats in */
        if (!buf) { distill__err(err, "%s: out of memory", path); distill_atomic_abort(&af); DISTILL_FREE(hj); return -1; }
        for (k = 0; k < t->numel; k += 65536) {   /* little-endian on any host, 64K elements at a time */
            size_t n = t->numel - k < 65536 ? t->numel - k : 65536, j;
            const float *w = distill__tensor_floats(m, i, k, n, (float *)(void *)(buf + 4 * 65536));
            for (j = 0; j < n; j++) {
                uint16_t h;
                if (kind == 0) { distill__put_f32(buf + 4 * j, w[j]); continue; }
                h = kind == 1 ? distill__float_to_half(w[j]) : distill__float_to_bf16(w[j]);
                buf[2 * j] = (unsigned char)(h & 0xff);
                buf[2 * j + 1] = (unsigned char)(h >> 8);
            }
            if (distill__fwrite_all(af.f, buf, esz * n)) goto wfail;
        }
    }
    DISTILL_FREE(hj);
    DISTILL_FREE(buf);
    return distill_atomic_commit(&af, err);
wfail:
    distill__err(err, "%s: write failed: %s", path, strerror(errno));
    distill_atomic_abort(&af);
    DISTILL_FREE(hj);
    DISTILL_FREE(buf);
    return -1;
}

static const char *distill__st_torch_dtype(int kind) { return kind == 0 ? "float32" : kind == 1 ? "float16" : "bfloat16"; }

DISTILL_API int distill_safetensors_save_as(const distill_model *m, const char *path, const char *dtype,
                                            distill_error *err) {
    int kind = distill__st_kind(dtype);
    if (kind < 0) return distill__err(err, "%s: dtype '%s' is not supported (F32, F16, BF16)", path, dtype);
    if (kind == 1 && distill__st_check_f16(m, path, err) != 0) return -1;
    if (distill__st_write_file(m, path, kind, 0, m->n_tensors, err) != 0) return -1;
    return distill__write_hf_config(m, path, distill__st_torch_dtype(kind), err);
}

#if !defined(_WIN32)
#include <sys/stat.h>
#include <dirent.h>
#endif
static char *distill__join(const char *dir, const char *name);

/* Shards of an earlier export into dir with another shard count ("model-0000i-of-0000M" with
   M != n): removed, as transformers' save_pretrained does, so the folder holds one model. */
static void distill__st_remove_stale_shards(const char *dir, int n) {
#if !defined(_WIN32)
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        int i, of, k, digits = 1;
        const char *s = e->d_name;
        if (strlen(s) != 32 || strncmp(s, "model-", 6) || strncmp(s + 11, "-of-", 4) || strcmp(s + 20, ".safetensors")) continue;
        for (k = 0; k < 5; k++) digits &= s[6 + k] >= '0' && s[6 + k] <= '9' && s[15 + k] >= '0' && s[15 + k] <= '9';
        if (!digits || sscanf(s + 6, "%5d", &i) != 1 || sscanf(s + 15, "%5d", &of) != 1 || (of == n && n > 1)) continue;
        {
            char *p = distill__join(dir, s);
            if (p) remove(p);
            DISTILL_FREE(p);
        }
    }
    if (d) closedir(d);
#else
    (void)dir; (void)n;
#endif
}

/* Hugging Face's sharded layout: dir/model-0000i-of-0000N.safetensors, each at most
   max_shard_bytes of tensor data (a larger tensor gets a shard of its own), tensors in the size
   table's order, dir/model.safetensors.index.json {"metadata": {"total_size"}, "weight_map":
   {tensor: shard}}, and dir/config.json. One shard is written as dir/model.safetensors with no
   index, as transformers does. */
DISTILL_API int distill_safetensors_save_sharded(const distill_model *m, const char *dir, const char *dtype,
                                                 int64_t max_shard_bytes, distill_error *err) {
    int kind = distill__st_kind(dtype), n_shards = 0, i, s, *shard_of = NULL, rc = -1;
    size_t esz = kind ? 2 : 4, dl = strlen(dir), total = 0, acc = 0;
    char *path = NULL, name[64];
    distill_atomic_file af;
    if (kind < 0) return distill__err(err, "%s: dtype '%s' is not supported (F32, F16, BF16)", dir, dtype);
    if (max_shard_bytes <= 0) return distill__err(err, "%s: max_shard_bytes must be > 0", dir);
#if !defined(_WIN32)
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return distill__err(err, "%s: cannot create the folder: %s", dir, strerror(errno));
#endif
    if (kind == 1 && distill__st_check_f16(m, dir, err) != 0) return -1;
    shard_of = (int *)DISTILL_MALLOC(sizeof(int) * (size_t)(m->n_tensors + 1));
    path = (char *)DISTILL_MALLOC(dl + 64);
    if (!shard_of || !path) { distill__err(err, "out of memory"); goto done; }
    for (i = 0; i < m->n_tensors; i++) {   /* greedy: a new shard when this tensor would overflow */
        size_t b = m->tensors[i].numel * esz;
        if (i == 0 || (acc > 0 && acc + b > (uint64_t)max_shard_bytes)) { n_shards++; acc = 0; }
        acc += b;
        total += b;
        shard_of[i] = n_shards - 1;
    }
    if (n_shards > 99999) { distill__err(err, "%s: %d shards: raise max_shard_bytes", dir, n_shards); goto done; }
    for (s = 0, i = 0; s < n_shards; s++) {
        int j = i;
        while (j < m->n_tensors && shard_of[j] == s) j++;
        if (n_shards == 1) snprintf(name, sizeof name, "model.safetensors");
        else snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", s + 1, n_shards);
        snprintf(path, dl + 64, "%s/%s", dir, name);
        if (distill__st_write_file(m, path, kind, i, j, err) != 0) goto done;
        i = j;
    }
    if (n_shards > 1) {
        snprintf(path, dl + 64, "%s/model.safetensors.index.json", dir);
        if (distill_atomic_open(&af, path, err) != 0) goto done;
        fprintf(af.f, "{\n  \"metadata\": {\"total_size\": %llu},\n  \"weight_map\": {", (unsigned long long)total);
        for (i = 0; i < m->n_tensors; i++)
            fprintf(af.f, "%s\n    \"%s\": \"model-%05d-of-%05d.safetensors\"", i ? "," : "", m->tensors[i].name, shard_of[i] + 1, n_shards);
        fprintf(af.f, "\n  }\n}\n");
        if (distill_atomic_commit(&af, err) != 0) goto done;
    }
    /* a layout left by an earlier export would win over this one when the folder is loaded
       (the index first): remove the other layout's entry point */
    snprintf(path, dl + 64, "%s/%s", dir, n_shards > 1 ? "model.safetensors" : "model.safetensors.index.json");
    if (remove(path) != 0 && errno != ENOENT) { distill__err(err, "%s: cannot remove: %s", path, strerror(errno)); goto done; }
    distill__st_remove_stale_shards(dir, n_shards);
    snprintf(path, dl + 64, "%s/model.safetensors", dir);
    rc = distill__write_hf_config(m, path, distill__st_torch_dtype(kind), err);
done:
    DISTILL_FREE(shard_of);
    DISTILL_FREE(path);
    return rc;
}

/* One added token as tokenizer_config.json's added_tokens_decoder has it. */
static void distill__hf_added_entry(FILE *f, const distill_tokenizer *tok, int32_t id) {
    size_t n;
    const char *p = distill_tokenizer_token_bytes(tok, id, &n);
    fprintf(f, "    \"%d\": {\"content\": ", (int)id);
    distill_json_write_string(f, p, n);
    fprintf(f, ", \"lstrip\": false, \"normalized\": false, \"rstrip\": false, \"single_word\": false, \"special\": %s}",
            distill_tokenizer_is_special(tok, id) ? "true" : "false");
}

/* The text of a token id as a JSON value, or null */
static void distill__hf_token_or_null(FILE *f, const distill_tokenizer *tok, int32_t id) {
    size_t n;
    const char *p = id >= 0 ? distill_tokenizer_token_bytes(tok, id, &n) : NULL;
    if (p) distill_json_write_string(f, p, n);
    else fputs("null", f);
}

DISTILL_API int distill_hf_save_tokenizer(const distill_tokenizer *tok, const distill_chat_template *tmpl,
                                          const char *dir, distill_error *err) {
    char *path = distill__join(dir, "tokenizer.json"), *jinja = NULL;
    distill_atomic_file af;
    int32_t eot, eos, bos, pad, id;
    int rc = -1, first = 1;
    if (!tmpl) tmpl = distill_chat_template_get(NULL);
    if (!path || !(jinja = distill_chat_template_jinja(tmpl))) { distill__err(err, "out of memory"); goto done; }
    if (distill_tokenizer_save_hf(tok, path, err) != 0) goto done;
    /* generation stops at the end of turn (as trained) or at the tokenizer's end of text */
    eot = distill_chat_eot_id(tmpl, tok);
    eos = distill_tokenizer_eos_id(tok);
    bos = tmpl->bos && tmpl->bos[0] ? distill_tokenizer_token_id(tok, tmpl->bos) : -1;
    pad = eos >= 0 ? eos : eot;
    DISTILL_FREE(path);
    if (!(path = distill__join(dir, "tokenizer_config.json"))) { distill__err(err, "out of memory"); goto done; }
    if (distill_atomic_open(&af, path, err) != 0) goto done;
    fputs("{\n  \"added_tokens_decoder\": {", af.f);
    for (id = 0; id < distill_tokenizer_vocab_size(tok); id++) {
        if (tok->tok_flag[id] != DISTILL__TK_SPECIAL && tok->tok_flag[id] != DISTILL__TK_ADDED) continue;
        fputs(first ? "\n" : ",\n", af.f);
        distill__hf_added_entry(af.f, tok, id);
        first = 0;
    }
    fputs("\n  },\n  \"bos_token\": ", af.f);
    distill__hf_token_or_null(af.f, tok, bos);
    fputs(",\n  \"eos_token\": ", af.f);
    distill__hf_token_or_null(af.f, tok, eot >= 0 ? eot : eos);
    fputs(",\n  \"pad_token\": ", af.f);
    distill__hf_token_or_null(af.f, tok, pad);
    fputs(",\n  \"unk_token\": null,\n  \"add_bos_token\": false,\n  \"add_eos_token\": false,\n"
          "  \"clean_up_tokenization_spaces\": false,\n  \"split_special_tokens\": false,\n"
          "  \"tokenizer_class\": \"PreTrainedTokenizerFast\",\n  \"chat_template\": ", af.f);
    distill_json_write_string(af.f, jinja, strlen(jinja));
    fputs("\n}\n", af.f);
    if (distill_atomic_commit(&af, err) != 0) goto done;
    DISTILL_FREE(path);
    if (!(path = distill__join(dir, "generation_config.json"))) { distill__err(err, "out of memory"); goto done; }
    if (distill_atomic_open(&af, path, err) != 0) goto done;
    fprintf(af.f, "{\n  \"bos_token_id\": %s", bos >= 0 ? "" : "null");
    if (bos >= 0) fprintf(af.f, "%d", (int)bos);
    if (eot >= 0 && eos >= 0 && eot != eos) fprintf(af.f, ",\n  \"eos_token_id\": [%d, %d]", (int)eot, (int)eos);
    else if (eot >= 0 || eos >= 0) fprintf(af.f, ",\n  \"eos_token_id\": %d", (int)(eot >= 0 ? eot : eos));
    else fputs(",\n  \"eos_token_id\": null", af.f);
    if (pad >= 0) fprintf(af.f, ",\n  \"pad_token_id\": %d\n}\n", (int)pad);
    else fputs(",\n  \"pad_token_id\": null\n}\n", af.f);
    rc = distill_atomic_commit(&af, err);
done:
    DISTILL_FREE(path);
    DISTILL_FREE(jinja);
    return rc;
}

/* config.json fields that switch on features this model does not have. Each is refused, by
   name, when its value turns the feature on (anything but absent, null, false, 0, "", [] or {};
   partial_rotary_factor: anything but 1; layer_types: any layer not "full_attention";
   rope_scaling: any type but "default"). Qwen2's sliding_window only counts with use_sliding_window. */
static int distill__hf_on(const distill_json *v) {
    if (!v || v->type == DISTILL_JSON_NULL || v->type == DISTILL_JSON_FALSE) return 0;
    if (v->type == DISTILL_JSON_NUMBER) return v->num != 0;
    if (v->type == DISTILL_JSON_STRING || v->type == DISTILL_JSON_ARRAY || v->type == DISTILL_JSON_OBJECT) return v->len > 0;
    return 1;
}

static int distill__hf_refuse(const distill_json *j, const char *path, distill_error *err) {
    static const struct { const char *field, *what; } refused[] = {
        {"num_local_experts", "mixture of experts"}, {"num_experts", "mixture of experts"},
        {"n_routed_experts", "mixture of experts"}, {"moe_intermediate_size", "mixture of experts"},
        {"num_experts_per_tok", "mixture of experts"}, {"use_sliding_window", "sliding-window attention"},
        {"mlp_bias", "biases in the MLP"}, {"quantization_config", "quantized weights"},
        {"attn_logit_softcapping", "logit soft-capping"}, {"final_logit_softcapping", "logit soft-capping"},
        {"embedding_multiplier", "scaled embeddings (Granite)"}, {"logits_scaling", "scaled logits (Granite)"},
        {"residual_multiplier", "scaled residuals (Granite)"}, {"attention_multiplier", "a custom attention scale"},
        {"use_qk_norm", "Llama 4's q/k norm"}, {"no_rope_layers", "layers without RoPE"},
        {"use_mrope", "multimodal RoPE"},
    };
    const distill_json *v;
    size_t i;
    for (i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        v = distill_json_get(j, refused[i].field);
        if (distill__hf_on(v))
            return distill__err(err, "%s:%d: field '%s': %s is not supported", path, v->line, refused[i].field, refused[i].what);
    }
    v = distill_json_get(j, "partial_rotary_factor");
    if (v && v->type != DISTILL_JSON_NULL && !(v->type == DISTILL_JSON_NUMBER && v->num == 1.0))
        return distill__err(err, "%s:%d: field 'partial_rotary_factor': RoPE on part of a head is not supported", path, v->line);
    v = distill_json_get(j, "layer_types");
    if (v && v->type == DISTILL_JSON_ARRAY)
        for (i = 0; i < v->len; i++)
            if (v->items[i].type != DISTILL_JSON_STRING || strcmp(v->items[i].str, "full_attention") != 0)
                return distill__err(err, "%s:%d: field 'layer_types.%zu': only full_attention layers are supported", path,
                                    v->items[i].line, i);
    return 0;
}

/* rope_scaling: null or {"rope_type" (or "type"): "default" | "linear" | "llama3", "factor", and
   for llama3 "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"}. */
static int distill__hf_rope_scaling(const distill_json *j, distill_config *c, const char *path, distill_error *err) {
    const distill_json *v = distill_json_get(j, "rope_scaling"), *t;
    char where[600];
    if (!distill__hf_on(v)) return 0;
    if (v->type != DISTILL_JSON_OBJECT)
        return distill__err(err, "%s:%d: field 'rope_scaling': expected an object or null", path, v->line);
    t = distill_json_get(v, "rope_type");
    if (!t) t = distill_json_get(v, "type");
    if (!t || t->type != DISTILL_JSON_STRING)
        return distill__err(err, "%s:%d: field 'rope_scaling.rope_type': expected a string", path, v->line);
    if (!strcmp(t->str, "default")) return 0;
    if (strcmp(t->str, "linear") != 0 && strcmp(t->str, "llama3") != 0)
        return distill__err(err, "%s:%d: field 'rope_scaling': type '%.40s' is not supported (linear, llama3)", path, v->line, t->str);
    snprintf(where, sizeof where, "%.500s: rope_scaling", path);
    c->rope_scaling = !strcmp(t->str, "linear") ? DISTILL_ROPE_LINEAR : DISTILL_ROPE_LLAMA3;
    if (distill__json_float(v, "factor", &c->rope_factor, 0, where, err)) return -1;
    if (c->rope_scaling == DISTILL_ROPE_LLAMA3 &&
        (distill__json_float(v, "low_freq_factor", &c->rope_low_freq_factor, 0, where, err) ||
         distill__json_float(v, "high_freq_factor", &c->rope_high_freq_factor, 0, where, err) ||
         distill__json_int(v, "original_max_position_embeddings", &c->rope_original_max_pos, 0, 1, 1 << 30, where, err)))
        return -1;
    return 0;
}

static int distill__hf_config(const char *path, distill_config *c, distill_error *err) {
    distill_json *j = distill_json_parse_file(path, err);
    const distill_json *mt, *hd;
    int bias = 0, head_dim = 0;
    if (!j) return -1;
    *c = distill_config_default();
    c->n_kv_heads = -1;
    c->tie_embeddings = 0;
    c->rope_theta = 10000.0f;
    if (distill__json_int(j, "vocab_size", &c->vocab_size, 0, 1, 1 << 24, path, err) ||
        distill__json_int(j, "hidden_size", &c->dim, 0, 1, 1 << 16, path, err) ||
        distill__json_int(j, "num_hidden_layers", &c->n_layers, 0, 1, 1024, path, err) ||
        distill__json_int(j, "num_attention_heads", &c->n_heads, 0, 1, 4096, path, err) ||
        distill__json_int(j, "num_key_value_heads", &c->n_kv_heads, 1, 1, 4096, path, err) ||
        distill__json_int(j, "intermediate_size", &c->hidden_dim, 0, 1, 1 << 20, path, err) ||
        distill__json_float(j, "rms_norm_eps", &c->norm_eps, 1, path, err) ||
        distill__json_float(j, "rope_theta", &c->rope_theta, 1, path, err) ||
        distill__json_int(j, "tie_word_embeddings", &c->tie_embeddings, 1, 0, 1, path, err) ||
        distill__json_int(j, "attention_bias", &bias, 1, 0, 1, path, err) ||
        distill__json_int(j, "head_dim", &head_dim, 1, 0, 1 << 16, path, err)) {
        distill_json_free(j);
        return -1;
    }
    if (c->n_kv_heads < 0) c->n_kv_heads = c->n_heads;
    mt = distill_json_get(j, "model_type");
    if (mt && mt->type == DISTILL_JSON_STRING && !strcmp(mt->str, "qwen2")) c->qkv_bias = 1;
    else if (mt && mt->type == DISTILL_JSON_STRING && !strcmp(mt->str, "qwen3")) c->qk_norm = 1;
    else if (mt && mt->type == DISTILL_JSON_STRING && strcmp(mt->str, "llama") != 0) {
        distill__err(err, "%s: model_type '%s' is not supported (llama, qwen2 or qwen3)", path, mt->str);
        distill_json_free(j);
        return -1;
    }
    if (distill__hf_refuse(j, path, err) != 0 || distill__hf_rope_scaling(j, c, path, err) != 0) { distill_json_free(j); return -1; }
    hd = distill_json_get(j, "hidden_act");
    if ((hd && hd->type == DISTILL_JSON_STRING && strcmp(hd->str, "silu") != 0) || bias) {
        distill__err(err, "%s: %s is not supported (only SiLU activations, no attention_bias on Llama or Qwen3)", path,
                     bias ? "attention_bias" : "hidden_act");
        distill_json_free(j);
        return -1;
    }
    distill_json_free(j);
    /* a head_dim other than hidden_size / num_attention_heads decouples the head size (Qwen3) */
    if (head_dim && (c->dim % c->n_heads != 0 || head_dim != c->dim / c->n_heads)) c->head_dim = head_dim;
    if (distill_config_validate(c, err) != 0) {
        char tmp[sizeof err->msg];
        snprintf(tmp, sizeof tmp, "%.200s: %.300s", path, err->msg);
        memcpy(err->msg, tmp, sizeof tmp);
        return -1;
    }
    return 0;
}

static float distill__half_to_float(uint16_t h) {
    uint32_t s = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1f, f = h & 0x3ff, u;
    float out;
    if (e == 0) { /* zero or subnormal: value f * 2^-24 */
        out = (float)f * 5.9604644775390625e-8f;
        return s ? -out : out;
    }
    if (e == 31) u = s | 0x7f800000u | (f << 13);
    else u = s | ((e + 112) << 23) | (f << 13);
    memcpy(&out, &u, 4);
    return out;
}

/* One safetensors file's header object and the data region after it. */
static distill_json *distill__st_header(const unsigned char *buf, size_t size, const char *path,
                                        const unsigned char **data, size_t *dsize, distill_error *err) {
    uint64_t hl;
    distill_json *h;
    if (size < 10) { distill__err(err, "%s: %zu bytes is too small for a safetensors file", path, size); return NULL; }
    hl = distill__get_u64(buf);
    if (hl > size - 8) { distill__err(err, "%s: header length %llu exceeds the file size %zu", path, (unsigned long long)hl, size); return NULL; }
    h = distill_json_parse((const char *)buf + 8, (size_t)hl, path, 1, err);
    if (!h) return NULL;
    if (h->type != DISTILL_JSON_OBJECT) { distill__err(err, "%s: safetensors header is not an object", path); distill_json_free(h); return NULL; }
    *data = buf + 8 + hl;
    *dsize = size - 8 - (size_t)hl;
    return h;
}

/* Entries a loader skips: the header's metadata, and the RoPE frequency buffers older
   transformers versions saved (recomputed from config.json). */
static int distill__st_skip(const char *name) {
    size_t n = strlen(name);
    return !strcmp(name, "__metadata__") || (n >= 20 && !strcmp(name + n - 20, ".rotary_emb.inv_freq"));
}

static int distill__st_unknown(const char *path, const char *name, distill_error *err) {
    return distill__err(err, "%s: tensor '%s' is not part of the model config.json describes%s", path, name,
                        strstr(name, "bias") ? " (a bias the architecture does not have)" : "");
}

/* Copy one file's tensors into m. Every entry must be a tensor of the model, seen once over
   all files (seen[], by size-table index), with the shape config.json implies and data_offsets
   inside the data; F32, F16 and BF16 are converted to float. `index_shard`: for a shard of an
   index, its file name as the index spells it, and wm the index's weight_map (the index and
   the shard must agree on where each tensor is). */
static int distill__st_copy(distill_model *m, const distill_json *h, const unsigned char *data, size_t dsize,
                            const char *path, unsigned char *seen, const distill_json *wm, const char *index_shard,
                            distill_error *err) {
    size_t e;
    for (e = 0; e < h->len; e++) {
        const char *name = h->keys[e];
        const distill_json *en = &h->items[e], *dt, *sh, *of, *where;
        const distill_tensor_info *t;
        int idx;
        int64_t b, end;
        size_t esz, k;
        float *dst;
        uint16_t *dst16 = NULL;
        if (distill__st_skip(name)) continue;
        idx = distill_model_find_tensor(m, name);
        if (idx < 0) return distill__st_unknown(path, name, err);
        if (seen[idx]) return distill__err(err, "%s: tensor '%s' appears more than once", path, name);
        seen[idx] = 1;
        if (wm && ((where = distill_json_get(wm, name)) == NULL || where->type != DISTILL_JSON_STRING ||
                   strcmp(where->str, index_shard) != 0))
            return distill__err(err, "%s: tensor '%s' is in this shard but the index puts it in '%.100s'", path, name,
                                where && where->type == DISTILL_JSON_STRING ? where->str : "no shard");
        t = &m->tensors[idx];
        dst = distill__view(m, idx);   /* FP32, or a vector of a model with BF16 weights */
        if (!dst) dst16 = ((distill__state *)m->internal)->w16 + t->offset;   /* a BF16 matrix */
        dt = distill_json_get(en, "dtype"); sh = distill_json_get(en, "shape"); of = distill_json_get(en, "data_offsets");
        if (!dt || dt->type != DISTILL_JSON_STRING || !sh || sh->type != DISTILL_JSON_ARRAY || !of ||
            of->type != DISTILL_JSON_ARRAY || of->len != 2 || !of->items[0].is_int || !of->items[1].is_int)
            return distill__err(err, "%s: tensor '%s': malformed entry (dtype, shape, data_offsets)", path, t->name);
        if ((int)sh->len != t->ndim || !sh->items[0].is_int || sh->items[0].i64 != t->shape[0] ||
            (t->ndim == 2 && (!sh->items[1].is_int || sh->items[1].i64 != t->shape[1])))
            return distill__err(err, "%s: tensor '%s' has the wrong shape for config.json (expected [%d%s%d])", path, t->name,
                                t->shape[0], t->ndim == 2 ? ", " : "", t->ndim == 2 ? t->shape[1] : 0);
        esz = !strcmp(dt->str, "F32") ? 4 : (!strcmp(dt->str, "F16") || !strcmp(dt->str, "BF16")) ? 2 : 0;
        if (!esz) return distill__err(err, "%s: tensor '%s': dtype %s is not supported (F32, F16, BF16)", path, t->name, dt->str);
        b = of->items[0].i64; end = of->items[1].i64;
        if (b < 0 || end < b || (uint64_t)end > dsize || (uint64_t)(end - b) != t->numel * esz)
            return distill__err(err, "%s: tensor '%s': data_offsets [%lld, %lld] do not fit the data (%zu bytes) or the shape",
                                path, t->name, (long long)b, (long long)end, dsize);
        if (dst16) {   /* BF16 kept as is; F32 and F16 rounded to BF16 as distill_model_to_bf16 does */
            for (k = 0; k < t->numel; k++) {
                const unsigned char *p = data + b + k * esz;
                if (esz == 4) dst16[k] = (uint16_t)distill__bf16_bits(distill__get_f32(p));
                else if (dt->str[0] == 'B') dst16[k] = (uint16_t)(p[0] | (p[1] << 8));
                else dst16[k] = (uint16_t)distill__bf16_bits(distill__half_to_float((uint16_t)(p[0] | (p[1] << 8))));
            }
            continue;
        }
        for (k = 0; k < t->numel; k++) {
            const unsigned char *p = data + b + k * esz;
            if (esz == 4) dst[k] = distill__get_f32(p);
            else if (dt->str[0] == 'B') { uint32_t u = (uint32_t)(p[0] | (p[1] << 8)) << 16; memcpy(&dst[k], &u, 4); }
            else dst[k] = distill__half_to_float((uint16_t)(p[0] | (p[1] << 8)));
        }
    }
    return 0;
}

/* Every tensor of the model was found. */
static int distill__st_all_seen(const distill_model *m, const unsigned char *seen, const char *path, distill_error *err) {
    int i;
    for (i = 0; i < m->n_tensors; i++)
        if (!seen[i]) return distill__err(err, "%s: tensor '%s' is missing", path, m->tensors[i].name);
    return 0;
}

/* config.json beside `path`, with the head tied when the checkpoint has no lm_head.weight
   (transformers omits it then); a file of dbytes bytes of tensor data must hold the
   parameters at 2 bytes each at least, checked before the model is allocated. */
static distill_model *distill__st_model(const char *path, int have_lm, uint64_t dbytes, int max_batch, int max_seq,
                                        int bf16, distill_error *err) {
    distill_config cfg;
    char *cp = distill__sibling(path, "config.json");
    if (!cp) { distill__err(err, "out of memory"); return NULL; }
    if (distill__hf_config(cp, &cfg, err) != 0) { DISTILL_FREE(cp); return NULL; }
    DISTILL_FREE(cp);
    cfg.tie_embeddings = !have_lm;
    if (dbytes / 2 < distill__count_params(&cfg, NULL)) {
        distill__err(err, "%s: %llu bytes of tensor data cannot hold the %zu parameters config.json describes",
                     path, (unsigned long long)dbytes, distill__count_params(&cfg, NULL));
        return NULL;
    }
    return distill__model_new(&cfg, max_batch, max_seq, 0, bf16 ? 2 : 0, err);   /* every tensor is read */
}

static distill_model *distill__load_safetensors(const unsigned char *buf, size_t size, const char *path,
                                                int max_batch, int max_seq, int bf16, distill_error *err) {
    const unsigned char *data;
    size_t dsize;
    distill_json *h = distill__st_header(buf, size, path, &data, &dsize, err);
    distill_model *m = NULL;
    unsigned char *seen = NULL;
    if (!h) return NULL;
    m = distill__st_model(path, distill_json_get(h, "lm_head.weight") != NULL, dsize, max_batch, max_seq, bf16, err);
    if (m && !(seen = (unsigned char *)DISTILL_MALLOC((size_t)m->n_tensors + 1))) distill__err(err, "out of memory");
    if (seen) memset(seen, 0, (size_t)m->n_tensors + 1);
    if (!seen || distill__st_copy(m, h, data, dsize, path, seen, NULL, NULL, err) != 0 ||
        distill__st_all_seen(m, seen, path, err) != 0) {
        distill_model_free(m);
        m = NULL;
    }
    DISTILL_FREE(seen);
    distill_json_free(h);
    return m;
}

static int64_t distill__file_size(const char *path) {
    FILE *f = fopen(path, "rb");
    long n;
    if (!f) return -1;
    n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    fclose(f);
    return n;
}

/* A sharded checkpoint through its model.safetensors.index.json: {"weight_map": {tensor: shard
   file}}. Shard names are plain file names in the index's folder (no '/', no leading '.').
   Shards are read one at a time; the model is allocated once the index, config.json and the
   shards' sizes agree. */
static distill_model *distill__load_sharded(const char *index_path, int max_batch, int max_seq, int bf16, distill_error *err) {
    distill_json *ix = distill_json_parse_file(index_path, err);
    const distill_json *wm;
    const char **shards = NULL;
    size_t n_shards = 0, i, k;
    uint64_t dbytes = 0;
    distill_model *m = NULL;
    unsigned char *seen = NULL;
    if (!ix) return NULL;
    wm = distill_json_get(ix, "weight_map");
    if (!wm || wm->type != DISTILL_JSON_OBJECT || wm->len == 0) {
        distill__err(err, "%s: field 'weight_map': expected a non-empty object {tensor: shard file}", index_path);
        goto fail;
    }
    shards = (const char **)DISTILL_MALLOC(sizeof(char *) * wm->len);
    if (!shards) { distill__err(err, "out of memory"); goto fail; }
    for (i = 0; i < wm->len; i++) {
        const distill_json *v = &wm->items[i];
        if (v->type != DISTILL_JSON_STRING || v->len == 0 || v->len > 255 || memchr(v->str, '/', v->len) ||
            memchr(v->str, '\\', v->len) || v->str[0] == '.' || strlen(v->str) != v->len) {
            distill__err(err, "%s:%d: field 'weight_map.%.100s': expected a shard file name in the index's folder", index_path,
                         v->line, wm->keys[i]);
            goto fail;
        }
        for (k = 0; k < n_shards && strcmp(shards[k], v->str) != 0; k++) {}
        if (k == n_shards) {
            char *sp = distill__sibling(index_path, v->str);
            int64_t sz = sp ? distill__file_size(sp) : -1;
            if (sz < 0) distill__err(err, "%s: shard '%s' named in the index cannot be opened", index_path, v->str);
            DISTILL_FREE(sp);
            if (sz < 0) goto fail;
            shards[n_shards++] = v->str;
            dbytes += (uint64_t)sz;
        }
    }
    m = distill__st_model(index_path, distill_json_get(wm, "lm_head.weight") != NULL, dbytes, max_batch, max_seq, bf16, err);
    if (!m) goto fail;
    for (i = 0; i < wm->len; i++)   /* the index names no tensor the model does not have */
        if (!distill__st_skip(wm->keys[i]) && distill_model_find_tensor(m, wm->keys[i]) < 0) {
            distill__st_unknown(index_path, wm->keys[i], err);
            goto fail;
        }
    seen = (unsigned char *)DISTILL_MALLOC((size_t)m->n_tensors + 1);
    if (!seen) { distill__err(err, "out of memory"); goto fail; }
    memset(seen, 0, (size_t)m->n_tensors + 1);
    for (k = 0; k < n_shards; k++) {
        char *sp = distill__sibling(index_path, shards[k]);
        size_t size = 0, dsize;
        unsigned char *buf = sp ? (unsigned char *)distill_read_file(sp, &size, err) : NULL;
        const unsigned char *data;
        distill_json *h = buf ? distill__st_header(buf, size, sp, &data, &dsize, err) : NULL;
        int rc = h ? distill__st_copy(m, h, data, dsize, sp, seen, wm, shards[k], err) : -1;
        if (!sp) distill__err(err, "out of memory");
        distill_json_free(h);
        DISTILL_FREE(buf);
        DISTILL_FREE(sp);
        if (rc != 0) goto fail;
    }
    if (distill__st_all_seen(m, seen, index_path, err) != 0) goto fail;
    DISTILL_FREE(seen);
    DISTILL_FREE(shards);
    distill_json_free(ix);
    return m;
fail:
    DISTILL_FREE(seen);
    DISTILL_FREE(shards);
    distill_json_free(ix);
    distill_model_free(m);
    return NULL;
}

/* ---- llama2.c ------------------------------------------------------------------------------
   Header: dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size (negative: separate
   classifier), seq_len as int32. Then float32: token_embedding (V,C), rms_att (L,C), wq (L,C,C),
   wk (L,KV,C), wv (L,KV,C), wo (L,C,C), rms_ffn (L,C), w1 (L,F,C), w2 (L,C,F), w3 (L,F,C),
   rms_final (C), freq_cis_real and _imag (seq_len, HS/2) (unused), wcls (V,C) if unshared.
   llama2.c rotates interleaved pairs (x[2i], x[2i+1]); HF Llama rotates halves (x[i], x[i+HS/2]).
   Row 2i+h of a head in llama2.c's wq/wk becomes row h*HS/2 + i here (as HF's conversion does),
   which makes q.k identical under the two conventions. */
static void distill__rope_permute(float *dst, const float *src, int n_heads, int hs, int C, int to_hf) {
    int h, i, half;
    for (h = 0; h < n_heads; h++)
        for (half = 0; half < 2; half++)
            for (i = 0; i < hs / 2; i++) {
                size_t hf = (size_t)h * hs + (size_t)half * (hs / 2) + i, il = (size_t)h * hs + 2 * (size_t)i + half;
                if (to_hf) memcpy(dst + hf * C, src + il * C, sizeof(float) * (size_t)C);
                else memcpy(dst + il * C, src + hf * C, sizeof(float) * (size_t)C);
            }
}

static distill_model *distill__load_llama2c(const unsigned char *buf, size_t size, const char *path,
                                            int max_batch, int max_seq, distill_error *err) {
    int hdr[7], i, l, shared;
    distill_config cfg;
    distill_model *m;
    size_t C, F, V, L, KV, HS, need = 0, seq, off = 28, per;
    const float *w;
    for (i = 0; i < 7; i++) hdr[i] = (int)distill__get_u32(buf + 4 * i);
    shared = hdr[5] > 0;
    cfg = distill_config_default();
    cfg.dim = hdr[0]; cfg.hidden_dim = hdr[1]; cfg.n_layers = hdr[2]; cfg.n_heads = hdr[3];
    cfg.n_kv_heads = hdr[4]; cfg.vocab_size = hdr[5] < -(1 << 24) ? 0 : hdr[5] < 0 ? -hdr[5] : hdr[5];   /* -INT_MIN overflows */
    cfg.rope_theta = 10000.0f; cfg.norm_eps = 1e-5f; cfg.qkv_bias = 0; cfg.tie_embeddings = shared;
    if (hdr[0] <= 0 || hdr[1] <= 0 || hdr[2] <= 0 || hdr[3] <= 0 || hdr[4] <= 0 || hdr[5] == 0 || hdr[6] <= 0 ||
        hdr[0] > 65536 || hdr[1] > (1 << 20) || hdr[2] > 1024 || hdr[3] > 4096 || hdr[5] < -(1 << 24) ||
        hdr[5] > (1 << 24) || hdr[6] > (1 << 24) || hdr[0] % hdr[3] != 0 || (hdr[0] / hdr[3]) % 2 != 0) {
        distill__err(err, "%s: unrecognised model file: not a distill checkpoint or safetensors, and not a llama2.c .bin either (implausible header: dim %d, hidden %d, layers %d, "
                     "heads %d, kv_heads %d, vocab %d, seq_len %d)", path, hdr[0], hdr[1], hdr[2], hdr[3], hdr[4], hdr[5], hdr[6]);
        return NULL;
    }
    if (distill_config_validate(&cfg, err) != 0) return NULL;
    C = (size_t)cfg.dim; F = (size_t)cfg.hidden_dim; V = (size_t)cfg.vocab_size; L = (size_t)cfg.n_layers;
    HS = C / (size_t)cfg.n_heads; KV = HS * (size_t)cfg.n_kv_heads; seq = (size_t)hdr[6];
    /* every size in double first so absurd headers cannot overflow the check */
    {
        double dn = (double)V * C + (double)L * (2.0 * C + 2.0 * C * C + 2.0 * KV * C + 3.0 * F * C) + C +
                    (double)seq * HS + (shared ? 0.0 : (double)V * C);
        if (dn * 4.0 != (double)(size - 28)) {
            distill__err(err, "%s: a llama2.c model with this header needs %.0f bytes of weights, the file has %zu "
                         "(truncated, or not a llama2.c .bin)", path, dn * 4.0, size - 28);
            return NULL;
        }
        need = (size_t)dn;
    }
    (void)need;
    m = distill__model_new(&cfg, max_batch, max_seq, 0, 0, err);   /* every tensor is read */
    if (!m) return NULL;
    w = (const float *)(const void *)(buf + off);   /* read through memcpy below: alignment */
    (void)w;
#define DISTILL__L2C_READ(dst, n) do { memcpy((dst), buf + off, sizeof(float) * (n)); off += sizeof(float) * (n); } while (0)
    DISTILL__L2C_READ(m->tok_emb, V * C);
    for (l = 0; l < (int)L; l++) DISTILL__L2C_READ(m->layers[l].attn_norm, C);
    per = C * C;
    {
        float *tmp = (float *)DISTILL_MALLOC(sizeof(float) * (per > F * C ? per : F * C));
        if (!tmp) { distill_model_free(m); distill__err(err, "out of memory"); return NULL; }
        for (l = 0; l < (int)L; l++) { DISTILL__L2C_READ(tmp, C * C); distill__rope_permute(m->layers[l].wq, tmp, cfg.n_heads, (int)HS, (int)C, 1); }
        for (l = 0; l < (int)L; l++) { DISTILL__L2C_READ(tmp, KV * C); distill__rope_permute(m->layers[l].wk, tmp, cfg.n_kv_heads, (int)HS, (int)C, 1); }
        DISTILL_FREE(tmp);
    }
    for (l = 0; l < (int)L; l++) DISTILL__L2C_READ(m->layers[l].wv, KV * C);
    for (l = 0; l < (int)L; l++) DISTILL__L2C_READ(m->layers[l].wo, C * C);
    for (l = 0; l < (int)L; l++) DISTILL__L2C_READ(m->layers[l].ffn_norm, C);
    for (l = 0; l < (int)L; l++) DISTILL__L2C_READ(m->layers[l].w_gate, F * C);
    for (l = 0; l < (int)L; l++) DISTILL__L2C_READ(m->layers[l].w_down, C * F);
    for (l = 0; l < (int)L; l++) DISTILL__L2C_READ(m->layers[l].w_up, F * C);
    DISTILL__L2C_READ(m->final_norm, C);
    off += 2 * sizeof(float) * seq * (HS / 2);   /* freq_cis: recomputed by the model */
    if (!shared) DISTILL__L2C_READ(m->lm_head, V * C);
#undef DISTILL__L2C_READ
    return m;
}

DISTILL_API int distill_llama2c_save(const distill_model *m, const char *path, distill_error *err) {
    const distill_config *c = &m->cfg;
    size_t C = (size_t)c->dim, F = (size_t)c->hidden_dim, V = (size_t)c->vocab_size, HS = C / (size_t)c->n_heads;
    size_t KV = HS * (size_t)c->n_kv_heads, seq = m->max_seq > 0 ? (size_t)m->max_seq : 256, p, i;
    int hdr[7], l;
    unsigned char hb[28];
    float *tmp;
    distill_atomic_file af;
    if (distill__need_fp32(m, path, err)) return -1;
    if (c->qkv_bias || c->rope_theta != 10000.0f || fabsf(c->norm_eps - 1e-5f) > 1e-9f || (HS * (size_t)c->n_heads) != C ||
        c->head_dim || c->qk_norm || c->rope_scaling)
        return distill__err(err, "%s: llama2.c format needs no qkv bias, rope_theta 10000, norm_eps 1e-5, head size "
                            "dim / n_heads, no q/k norm and no rope scaling (this model: qkv_bias %d, rope_theta %g, "
                            "norm_eps %g, head_dim %d, qk_norm %d, rope_scaling %d)", path, c->qkv_bias,
                            (double)c->rope_theta, (double)c->norm_eps, c->head_dim, c->qk_norm, c->rope_scaling);
    hdr[0] = c->dim; hdr[1] = c->hidden_dim; hdr[2] = c->n_layers; hdr[3] = c->n_heads; hdr[4] = c->n_kv_heads;
    hdr[5] = c->tie_embeddings ? c->vocab_size : -c->vocab_size; hdr[6] = (int)seq;
    for (i = 0; i < 7; i++) distill__put_u32(hb + 4 * i, (uint32_t)hdr[i]);
    tmp = (float *)DISTILL_MALLOC(sizeof(float) * (C * C > seq * HS ? C * C : seq * HS));
    if (!tmp) return distill__err(err, "out of memory");
    if (distill_atomic_open(&af, path, err) != 0) { DISTILL_FREE(tmp); return -1; }
#define DISTILL__L2C_W(src, n) do { if (distill__fwrite_all(af.f, (src), sizeof(float) * (n))) goto wfail; } while (0)
    if (distill__fwrite_all(af.f, hb, 28)) goto wfail;
    DISTILL__L2C_W(m->tok_emb, V * C);
    for (l = 0; l < c->n_layers; l++) DISTILL__L2C_W(m->layers[l].attn_norm, C);
    for (l = 0; l < c->n_layers; l++) { distill__rope_permute(tmp, m->layers[l].wq, c->n_heads, (int)HS, (int)C, 0); DISTILL__L2C_W(tmp, C * C); }
    for (l = 0; l < c->n_layers; l++) { distill__rope_permute(tmp, m->layers[l].wk, c->n_kv_heads, (int)HS, (int)C, 0); DISTILL__L2C_W(tmp, KV * C); }
    for (l = 0; l < c->n_layers; l++) DISTILL__L2C_W(m->layers[l].wv, KV * C);
    for (l = 0; l < c->n_layers; l++) DISTILL__L2C_W(m->layers[l].wo, C * C);
    for (l = 0; l < c->n_layers; l++) DISTILL__L2C_W(m->layers[l].ffn_norm, C);
    for (l = 0; l < c->n_layers; l++) DISTILL__L2C_W(m->layers[l].w_gate, F * C);
    for (l = 0; l < c->n_layers; l++) DISTILL__L2C_W(m->layers[l].w_down, C * F);
    for (l = 0; l < c->n_layers; l++) DISTILL__L2C_W(m->layers[l].w_up, F * C);
    DISTILL__L2C_W(m->final_norm, C);
    for (i = 0; i < 2; i++) {   /* freq_cis real, imag: cos/sin(pos * theta^(-2j/HS)) */
        for (p = 0; p < seq; p++) {
            size_t j;
            for (j = 0; j < HS / 2; j++) {
                double a = (double)p * pow(10000.0, -2.0 * (double)j / (double)HS);
                tmp[p * (HS / 2) + j] = (float)(i == 0 ? cos(a) : sin(a));
            }
        }
        DISTILL__L2C_W(tmp, seq * (HS / 2));
    }
    if (!c->tie_embeddings) DISTILL__L2C_W(m->lm_head, V * C);
#undef DISTILL__L2C_W
    DISTILL_FREE(tmp);
    return distill_atomic_commit(&af, err);
wfail:
    distill__err(err, "%s: write failed: %s", path, strerror(errno));
    distill_atomic_abort(&af);
    DISTILL_FREE(tmp);
    return -1;
}

/* ---- format detection and the one loader ---------------------------------------------------- */
static const char *distill__detect(const unsigned char *b, size_t n) {
    if (n >= DISTILL__CKPT_HDR && !memcmp(b, DISTILL__CKPT_MAGIC, 8)) return "checkpoint";
    if (n >= 10 && distill__get_u64(b) <= n - 8 && b[8] == '{') return "safetensors";
    if (n >= 28) return "llama2c";
    return NULL;
}

static char *distill__model_resolve(const char *path, int *sharded, distill_error *err);

DISTILL_API const char *distill_model_file_format(const char *path_in, distill_error *err) {
    unsigned char b[40];
    size_t n;
    int sharded;
    char *path = distill__model_resolve(path_in, &sharded, err);
    FILE *f = path && !sharded ? fopen(path, "rb") : NULL;
    const char *fmt;
    if (path && sharded) { DISTILL_FREE(path); return "safetensors-sharded"; }
    if (!f) {
        if (path) distill__err(err, "%s: cannot open: %s", path, strerror(errno));
        DISTILL_FREE(path);
        return NULL;
    }
    DISTILL_FREE(path);
    memset(b, 0, sizeof b);
    n = fread(b, 1, sizeof b, f);
    fseek(f, 0, SEEK_END);
    {
        long sz = ftell(f);
        fclose(f);
        fmt = distill__detect(b, sz > 0 ? (size_t)sz : n);
        if (fmt && !strcmp(fmt, "safetensors") && n < 9) fmt = NULL;
    }
    if (!fmt) distill__err(err, "%s: unrecognised model file (not a distill checkpoint, safetensors or llama2.c .bin)", path_in);
    return fmt;
}

/* The tokenizer and chat template a checkpoint carries: kept on the model, and the tokenizer
   handed to the caller when asked (tok_out). */
static int distill__ckpt_carried(const distill_checkpoint *ck, distill_model *m, distill_tokenizer **tok_out,
                                 distill_error *err) {
    distill__state *s = (distill__state *)m->internal;
    size_t tn = 0, cn = 0;
    const unsigned char *tb = (const unsigned char *)distill_checkpoint_section(ck, "tokenizer", &tn);
    const char *cb = (const char *)distill_checkpoint_section(ck, "chat_template", &cn);
    if (cb && cn > 0 && cn < sizeof s->tmpl_name) { memcpy(s->tmpl_name, cb, cn); s->tmpl_name[cn] = 0; }
    if (!tb || tn == 0) return 0;
    if (!(s->tok_bytes = (unsigned char *)DISTILL_MALLOC(tn + 1))) return distill__err(err, "%s: out of memory", ck->path);
    memcpy(s->tok_bytes, tb, tn);
    s->tok_bytes[tn] = 0;
    s->tok_size = tn;
    if (tok_out) {
        char name[600];
        snprintf(name, sizeof name, "%.500s (section 'tokenizer')", ck->path);
        if (!(*tok_out = distill__tk_from_bytes(name, tb, tn, err))) return -1;
    }
    return 0;
}

static int distill__file_exists(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

/* dir + "/" + name (malloc'ed) */
static char *distill__join(const char *dir, const char *name) {
    size_t dl = strlen(dir), n = dl + strlen(name) + 2;
    char *s = (char *)DISTILL_MALLOC(n);
    if (s) snprintf(s, n, "%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/", name);
    return s;
}

/* A model path as users give it, resolved to the file to read (malloc'ed): a folder holding
   model.safetensors.index.json or model.safetensors; an index (*.json); one shard
   ("...-00002-of-00004.safetensors", read through the model.safetensors.index.json beside it);
   or any other file as it is. *sharded = 1 when the result is an index. */
static char *distill__model_resolve(const char *path, int *sharded, distill_error *err) {
    static const char *const in_dir[] = {"model.safetensors.index.json", "model.safetensors"};
    size_t n = strlen(path), i;
    const char *base = strrchr(path, '/');
    char *s;
    *sharded = 0;
    base = base ? base + 1 : path;
    if (n >= 5 && !strcmp(path + n - 5, ".json")) *sharded = 1;
    else {
        for (i = 0; i < 2; i++) {
            s = distill__join(path, in_dir[i]);
            if (!s) { distill__err(err, "out of memory"); return NULL; }
            if (distill__file_exists(s)) { *sharded = i == 0; return s; }
            DISTILL_FREE(s);
        }
        n = strlen(base);
        if (strstr(base, "-of-") && n > 12 && !strcmp(base + n - 12, ".safetensors")) {
            s = distill__sibling(path, "model.safetensors.index.json");
            if (s && distill__file_exists(s)) { *sharded = 1; return s; }
            DISTILL_FREE(s);
            distill__err(err, "%s: one shard of a sharded checkpoint, but there is no model.safetensors.index.json beside it", path);
            return NULL;
        }
    }
    n = strlen(path);
    s = (char *)DISTILL_MALLOC(n + 1);
    if (!s) { distill__err(err, "out of memory"); return NULL; }
    memcpy(s, path, n + 1);
    return s;
}

/* An exported Hugging Face folder names no template: its tokenizer_config.json holds the Jinja
   text. When that is a built-in template's text, the model carries that template's name (so
   export -> load -> generate/export uses the same template). Anything else is left alone; a
   tokenizer_config.json that is not JSON is an error naming it. */
static int distill__hf_template_name(distill_model *m, const char *path, distill_error *err) {
    distill__state *s = (distill__state *)m->internal;
    char *cp;
    distill_json *root;
    const distill_json *ct;
    size_t i;
    if (s->tmpl_name[0]) return 0;
    if (!(cp = distill__sibling(path, "tokenizer_config.json"))) return distill__err(err, "out of memory");
    if (!distill__file_exists(cp)) { DISTILL_FREE(cp); return 0; }
    root = distill_json_parse_file(cp, err);
    DISTILL_FREE(cp);
    if (!root) return -1;
    ct = distill_json_get(root, "chat_template");
    for (i = 0; ct && ct->type == DISTILL_JSON_STRING && i < sizeof distill__data_templates / sizeof distill__data_templates[0]; i++) {
        char *j = distill_chat_template_jinja(&distill__data_templates[i]);
        int same = j && strlen(j) == ct->len && !memcmp(j, ct->str, ct->len);
        DISTILL_FREE(j);
        if (same) { snprintf(s->tmpl_name, sizeof s->tmpl_name, "%s", distill__data_templates[i].name); break; }
    }
    distill_json_free(root);
    return 0;
}

static distill_model *distill__model_load(const char *path_in, int max_batch, int max_seq,
                                          distill_tokenizer **tok_out, int bf16, distill_error *err) {
    size_t size;
    unsigned char *buf;
    const char *fmt;
    distill_model *m = NULL;
    int sharded;
    char *path;
    if (tok_out) *tok_out = NULL;
    path = distill__model_resolve(path_in, &sharded, err);
    if (!path) return NULL;
    if (sharded) {
        m = distill__load_sharded(path, max_batch, max_seq, bf16, err);
        buf = NULL;
        goto loaded;
    }
    buf = (unsigned char *)distill_read_file(path, &size, err);
    if (!buf) { DISTILL_FREE(path); return NULL; }
    fmt = distill__detect(buf, size);
    if (!fmt) {
        distill__err(err, "%s: unrecognised model file (%zu bytes; not a distill checkpoint, safetensors or llama2.c .bin)", path, size);
    } else if (!strcmp(fmt, "checkpoint")) {
        distill_checkpoint *ck;
        DISTILL_FREE(buf);
        buf = NULL;
        ck = distill_checkpoint_read(path, err);
        if (ck) {
            /* the params section must hold the config's parameters before the model is
               allocated: a small file claiming a huge model is refused without the allocation */
            size_t have = 0;
            if (!distill_checkpoint_section(ck, "params", &have) || have / sizeof(float) < distill__count_params(&ck->cfg, NULL))
                distill__err(err, "%s: section 'params' is %zu bytes, too small for the model in its config (%zu parameters)",
                             path, have, distill__count_params(&ck->cfg, NULL));
            else
                m = distill__model_new(&ck->cfg, max_batch, max_seq, 0, 0, err);
            if (m && (distill_checkpoint_restore(ck, m, 0, err) != 0 || distill__ckpt_carried(ck, m, tok_out, err) != 0)) {
                distill_model_free(m);
                m = NULL;
            }
            distill_checkpoint_free(ck);
        }
    } else if (!strcmp(fmt, "safetensors")) {
        m = distill__load_safetensors(buf, size, path, max_batch, max_seq, bf16, err);
    } else {
        m = distill__load_llama2c(buf, size, path, max_batch, max_seq, err);
    }
loaded:
    DISTILL_FREE(buf);
    /* the other formats load FP32 weights, converted here */
    if (m && bf16 && distill_model_to_bf16(m, err) != 0) {
        distill_model_free(m);
        m = NULL;
        if (tok_out && *tok_out) { distill_tokenizer_free(*tok_out); *tok_out = NULL; }
    }
    if (m && distill__hf_template_name(m, path, err) != 0) { distill_model_free(m); m = NULL; }
    if (m && tok_out && !*tok_out) {
        /* a tokenizer beside the model, by the names each ecosystem uses */
        static const char *names[] = {"tokenizer.json", "tokenizer.bin", "tokenizer.txt"};
        size_t i;
        for (i = 0; i < sizeof names / sizeof names[0] && !*tok_out; i++) {
            char *tp = distill__sibling(path, names[i]);
            FILE *f = tp ? fopen(tp, "rb") : NULL;
            if (f) {
                fclose(f);
                *tok_out = distill_tokenizer_load(tp, NULL, err);
                if (!*tok_out) { DISTILL_FREE(tp); DISTILL_FREE(path); distill_model_free(m); return NULL; }
            }
            DISTILL_FREE(tp);
        }
    }
    DISTILL_FREE(path);
    return m;
}

DISTILL_API distill_model *distill_model_load(const char *path, int max_batch, int max_seq,
                                              distill_tokenizer **tok_out, distill_error *err) {
    return distill__model_load(path, max_batch, max_seq, tok_out, 0, err);
}
DISTILL_API distill_model *distill_model_load_bf16(const char *path, int max_batch, int max_seq,
                                                   distill_tokenizer **tok_out, distill_error *err) {
    return distill__model_load(path, max_batch, max_seq, tok_out, 1, err);
}

DISTILL_API void distill_model_sha256(const distill_model *m, char out[65]) {
    distill_sha256 s;
    unsigned char d[32], le[4 * 256];
    float tmp[256];
    size_t i, j;
    int k;
    distill_sha256_init(&s);
    for (k = 0; k < m->n_tensors; k++) {
        size_t numel = m->tensors[k].numel;
        for (i = 0; i < numel; i += 256) {
            size_t n = numel - i < 256 ? numel - i : 256;
            const float *p = distill__tensor_floats(m, k, i, n, tmp);
            for (j = 0; j < n; j++) distill__put_f32(le + 4 * j, p[j]);
            distill_sha256_update(&s, le, 4 * n);
        }
    }
    distill_sha256_final(&s, d);
    for (k = 0; k < 32; k++) snprintf(out + 2 * k, 3, "%02x", d[k]);
}

/* ======================================================================================= */
/* THE TRAINING LOOP                                                                        */
/* ======================================================================================= */
#if !defined(_WIN32)
#include <sys/stat.h>
#include <dirent.h>
#endif

DISTILL_API distill_train_config distill_train_default(void) {
    distill_train_config tc;
    memset(&tc, 0, sizeof tc);
    tc.epochs = 1.0;
    tc.batch_rows = 8;
    tc.grad_accum = 1;
    tc.optim = distill_optim_default();
    tc.eval_batches = 16;
    tc.keep_last = 3;
    tc.progress = 1;
    tc.log_every = 10;
    tc.kdc = distill_kd_default();
    tc.seed = 1;
    tc.save_every_seconds = 600.0;
    return tc;
}

/* ---- communicators: one process, and MPI ------------------------------------------------------
   The trainer and the sweep talk to other processes only through a distill_comm. The one-process
   communicator makes every collective the identity, so the data-parallel code path is the same
   code with P = 1. */
static int distill__local_allreduce(const distill_comm *c, void *buf, size_t n, distill_dtype type, distill_error *err) {
    (void)c; (void)buf; (void)n; (void)type; (void)err;
    return 0;
}
static int distill__local_barrier(const distill_comm *c, distill_error *err) { (void)c; (void)err; return 0; }
static int distill__local_bcast(const distill_comm *c, void *buf, size_t bytes, int root, distill_error *err) {
    (void)c; (void)buf; (void)bytes; (void)root; (void)err;
    return 0;
}
static void distill__local_abort(const distill_comm *c, int code) { (void)c; exit(code); }
static const distill_comm distill__comm_one = {0, 1, NULL, "local", distill__local_allreduce, NULL, NULL, NULL,
                                               distill__local_barrier, distill__local_bcast, distill__local_abort};
DISTILL_API const distill_comm *distill_comm_local(void) { return &distill__comm_one; }

DISTILL_API int distill_launcher_size(int *rank) {
    /* Open MPI's mpirun, MPICH/Hydra and Slurm's PMI, MVAPICH */
    static const char *const size_vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE"};
    static const char *const rank_vars[] = {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "MV2_COMM_WORLD_RANK"};
    int i;
    if (rank) *rank = 0;
    for (i = 0; i < 4; i++) {
        /* srun --mpi=pmix gives PMIX_RANK but no size variable: the step's task count is Slurm's */
        const char *s = i < 3 ? getenv(size_vars[i]) : getenv("PMIX_RANK") ? getenv("SLURM_STEP_NUM_TASKS") : NULL;
        const char *r = i < 3 ? getenv(rank_vars[i]) : getenv("PMIX_RANK");
        long n = s ? strtol(s, NULL, 10) : 0;
        if (n >= 1 && n < (1L << 24)) {
            long k = r ? strtol(r, NULL, 10) : 0;
            if (rank) *rank = k >= 0 && k < n ? (int)k : 0;
            return (int)n;
        }
    }
    return 1;
}

#ifdef DISTILL_MPI
/* The MPI communicator travels in ctx as its Fortran handle (an integer), so describing one
   allocates nothing and there is nothing to free. Errors return to us (MPI_ERRORS_RETURN) and
   are reported with the rank and MPI's own message. */
static MPI_Comm distill__mpi_of(const distill_comm *c) { return MPI_Comm_f2c((MPI_Fint)(intptr_t)c->ctx); }

static int distill__mpi_err(const distill_comm *c, int rc, const char *what, distill_error *err) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (rc == MPI_SUCCESS) return 0;
    MPI_Error_string(rc, msg, &len);
    return distill__err(err, "rank %d of %d: %s failed: %.*s", c->rank, c->size, what, len, msg);
}

static int distill__mpi_allreduce(const distill_comm *c, void *buf, size_t n, distill_dtype type, distill_error *err) {
    MPI_Datatype dt = type == DISTILL_F32 ? MPI_FLOAT : type == DISTILL_F64 ? MPI_DOUBLE : MPI_INT64_T;
    size_t es = type == DISTILL_F32 ? 4 : 8, done = 0;
    while (done < n) {   /* MPI counts are int: large buffers go in pieces */
        size_t k = n - done < ((size_t)1 << 28) ? n - done : ((size_t)1 << 28);
        int rc = MPI_Allreduce(MPI_IN_PLACE, (char *)buf + done * es, (int)k, dt, MPI_SUM, distill__mpi_of(c));
        if (rc != MPI_SUCCESS) return distill__mpi_err(c, rc, "MPI_Allreduce", err);
        done += k;
    }
    return 0;
}

static int distill__mpi_iallreduce(const distill_comm *c, float *buf, size_t n, void **req, distill_error *err) {
    MPI_Request *r;
    int rc;
    *req = NULL;
    if (n > (size_t)INT_MAX) return distill__mpi_allreduce(c, buf, n, DISTILL_F32, err);
    r = (MPI_Request *)DISTILL_MALLOC(sizeof *r);
    if (!r) return distill__err(err, "out of memory");
    rc = MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, distill__mpi_of(c), r);
    if (rc != MPI_SUCCESS) { DISTILL_FREE(r); return distill__mpi_err(c, rc, "MPI_Iallreduce", err); }
    *req = r;
    return 0;
}
static int distill__mpi_test(const distill_comm *c, void *req) {
    int flag = 0;
    (void)c;
    if (req) MPI_Test((MPI_Request *)req, &flag, MPI_STATUS_IGNORE);
    return flag;
}
static int distill__mpi_wait(const distill_comm *c, void *req, distill_error *err) {
    int rc;
    if (!req) return 0;
    rc = MPI_Wait((MPI_Request *)req, MPI_STATUS_IGNORE);
    DISTILL_FREE(req);
    return distill__mpi_err(c, rc, "MPI_Wait (gradient all-reduce)", err);
}
static int distill__mpi_barrier(const distill_comm *c, distill_error *err) {
    return distill__mpi_err(c, MPI_Barrier(distill__mpi_of(c)), "MPI_Barrier", err);
}
static int distill__mpi_bcast(const distill_comm *c, void *buf, size_t bytes, int root, distill_error *err) {
    size_t done = 0;
    while (done < bytes) {
        size_t k = bytes - done < ((size_t)1 << 30) ? bytes - done : ((size_t)1 << 30);
        int rc = MPI_Bcast((char *)buf + done, (int)k, MPI_BYTE, root, distill__mpi_of(c));
        if (rc != MPI_SUCCESS) return distill__mpi_err(c, rc, "MPI_Bcast", err);
        done += k;
    }
    return 0;
}
static void distill__mpi_abort(const distill_comm *c, int code) { MPI_Abort(distill__mpi_of(c), code); }

DISTILL_API int distill_comm_mpi(distill_comm *out, MPI_Comm comm, distill_error *err) {
    int rank = 0, size = 1, rc;
    memset(out, 0, sizeof *out);
    if ((rc = MPI_Comm_rank(comm, &rank)) != MPI_SUCCESS || (rc = MPI_Comm_size(comm, &size)) != MPI_SUCCESS)
        return distill__err(err, "MPI_Comm_rank/size failed (error %d)", rc);
    MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
    out->rank = rank;
    out->size = size;
    out->ctx = (void *)(intptr_t)MPI_Comm_c2f(comm);
    out->name = "mpi";
    out->allreduce = distill__mpi_allreduce;
    out->iallreduce = distill__mpi_iallreduce;
    out->test = distill__mpi_test;
    out->wait = distill__mpi_wait;
    out->barrier = distill__mpi_barrier;
    out->bcast = distill__mpi_bcast;
    out->abort = distill__mpi_abort;
    return 0;
}

DISTILL_API int distill_mpi_init(int *argc, char ***argv, distill_comm *out, distill_error *err) {
    int inited = 0, provided = 0;
    MPI_Initialized(&inited);
    if (!inited && MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return distill__err(err, "MPI_Init_thread failed");
    if (distill_comm_mpi(out, MPI_COMM_WORLD, err) != 0) return -1;
    if (!getenv("DISTILL_THREADS")) {
        /* ranks sharing a node share its cores: P ranks x all cores each would oversubscribe */
        MPI_Comm node;
        int local = 1;
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
            MPI_Comm_size(node, &local);
            MPI_Comm_free(&node);
        }
        distill_set_threads(cores / local > 1 ? (int)(cores / local) : 1);
    }
    return 0;
}

DISTILL_API void distill_mpi_finalize(void) {
    int fin = 0, inited = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&fin);
    if (inited && !fin) MPI_Finalize();
}
#endif /* DISTILL_MPI */

/* One micro-batch copied out of the source (sources reuse their arrays between calls, and a
   whole accumulated step must be in hand before its first forward to know its total weight). */
typedef struct distill__mb {
    distill_batch b;
    int32_t *tokens, *targets, *segments, *positions;
    float *weights;
    int *lengths;
    int64_t *rows;
    int n_rows;
    size_t cap, rows_cap;
} distill__mb;

struct distill_trainer {
    distill_model *m, *teacher;
    const distill_topk_cache *cache;
    distill_batch_source train, eval;
    int has_eval;
    distill_train_config tc;
    distill_kd_head *kd;
    distill__mb *mbs;
    int64_t step, total, tokens_seen;
    double elapsed, t_start, elapsed_at_start;
    int64_t tokens_at_start, step_at_start;
    distill_rng rng;
    distill_step_callback cb;
    void *cb_ctx;
    FILE *metrics;
    char metrics_path[1024];
    int tty;
    double last_eval;
    int lock;                     /* distill_dir_lock on out_dir (rank 0), or -1 */
    int stop_all, stopped;        /* a stop flag seen on some rank this step; run ended early */
    double last_save_time;        /* for save_every_seconds */
    char last_ckpt[1024];
    /* data parallelism */
    const distill_comm *comm;     /* never NULL after create: the one-process communicator */
    int comm_checked;             /* ranks compared their weights since the last (re)start */
    size_t dp_sent;               /* gradient floats [dp_sent, end) handed to all-reduce */
    void *dp_reqs[64];            /* outstanding bucket requests */
    int dp_nreq, dp_failed;
    distill_error dp_err;
    double comm_seconds, comm_wait_seconds;
};

static int distill__mb_copy(distill__mb *d, const distill_batch *b, const int64_t *rows, int n_rows) {
    size_t n = (size_t)b->B * (size_t)b->T;
    if (n > d->cap) {
        DISTILL_FREE(d->tokens); DISTILL_FREE(d->targets); DISTILL_FREE(d->segments);
        DISTILL_FREE(d->positions); DISTILL_FREE(d->weights);
        d->tokens = (int32_t *)DISTILL_MALLOC(n * sizeof(int32_t));
        d->targets = (int32_t *)DISTILL_MALLOC(n * sizeof(int32_t));
        d->segments = (int32_t *)DISTILL_MALLOC(n * sizeof(int32_t));
        d->positions = (int32_t *)DISTILL_MALLOC(n * sizeof(int32_t));
        d->weights = (float *)DISTILL_MALLOC(n * sizeof(float));
        d->cap = n;
        if (!d->tokens || !d->targets || !d->segments || !d->positions || !d->weights) { d->cap = 0; return -1; }
    }
    if ((size_t)b->B > d->rows_cap || !d->lengths) {
        DISTILL_FREE(d->lengths); DISTILL_FREE(d->rows);
        d->rows_cap = (size_t)b->B;
        d->lengths = (int *)DISTILL_MALLOC(d->rows_cap * sizeof(int));
        d->rows = (int64_t *)DISTILL_MALLOC(d->rows_cap * sizeof(int64_t));
        if (!d->lengths || !d->rows) { d->rows_cap = 0; return -1; }
    }
    d->b = *b;
    memcpy(d->tokens, b->tokens, n * sizeof(int32_t));
    d->b.tokens = d->tokens;
    if (b->targets) { memcpy(d->targets, b->targets, n * sizeof(int32_t)); d->b.targets = d->targets; }
    if (b->weights) { memcpy(d->weights, b->weights, n * sizeof(float)); d->b.weights = d->weights; }
    if (b->segments) { memcpy(d->segments, b->segments, n * sizeof(int32_t)); d->b.segments = d->segments; }
    if (b->positions) { memcpy(d->positions, b->positions, n * sizeof(int32_t)); d->b.positions = d->positions; }
    if (b->lengths) { memcpy(d->lengths, b->lengths, (size_t)b->B * sizeof(int)); d->b.lengths = d->lengths; }
    d->n_rows = rows && n_rows > 0 ? (n_rows < b->B ? n_rows : b->B) : 0;
    if (d->n_rows) memcpy(d->rows, rows, (size_t)d->n_rows * sizeof(int64_t));
    return 0;
}

static void distill__mb_free(distill__mb *d) {
    DISTILL_FREE(d->tokens); DISTILL_FREE(d->targets); DISTILL_FREE(d->segments);
    DISTILL_FREE(d->positions); DISTILL_FREE(d->weights); DISTILL_FREE(d->lengths); DISTILL_FREE(d->rows);
}

/* Total loss weight of a micro-batch: what the model's head will sum (target >= 0, w > 0, inside
   the row's length). */
static double distill__mb_weight(const distill_batch *b) {
    double w = 0.0;
    int r, t;
    if (!b->targets) return 0.0;
    for (r = 0; r < b->B; r++) {
        int len = b->lengths ? b->lengths[r] : b->T;
        for (t = 0; t < len && t < b->T; t++) {
            size_t p = (size_t)r * b->T + t;
            float wt = b->weights ? b->weights[p] : 1.0f;
            if (b->targets[p] >= 0 && wt > 0.0f) w += wt;
        }
    }
    return w;
}

static int64_t distill__estimate_steps(const distill_trainer *t) {
    const distill_train_config *tc = &t->tc;
    double per, n;
    if (tc->max_steps > 0) return tc->max_steps;
    if (t->train.batches_per_epoch > 0)
        n = ceil(tc->epochs * (double)t->train.batches_per_epoch / (double)(tc->grad_accum > 0 ? tc->grad_accum : 1));
    else {
        per = (double)(tc->batch_rows > 0 ? tc->batch_rows : 1) * (double)(tc->grad_accum > 0 ? tc->grad_accum : 1);
        n = ceil(tc->epochs * (double)(t->train.rows_per_epoch > 0 ? t->train.rows_per_epoch : 1) / per);
    }
    return n < 1 ? 1 : (int64_t)n;
}

DISTILL_API distill_trainer *distill_trainer_create(distill_model *student, const distill_batch_source *train,
                                                    const distill_batch_source *eval,
                                                    const distill_train_config *tc, distill_error *err) {
    distill_trainer *t;
    if (!student || !train || !train->next || !tc) { distill__err(err, "distill_trainer_create: missing model, source or config"); return NULL; }
    if (tc->grad_accum < 1 || tc->grad_accum > 65536) { distill__err(err, "grad_accum (%d) must be in [1, 65536]", tc->grad_accum); return NULL; }
    if (tc->max_steps <= 0 && !(tc->epochs > 0.0 && tc->epochs < 1e6)) { distill__err(err, "give max_steps > 0 or epochs in (0, 1e6) (epochs %g)", tc->epochs); return NULL; }
    if (tc->kd && distill_kd_validate(&tc->kdc, err) != 0) return NULL;
    if (distill_model_set_precision(student, tc->precision) != 0) {
        distill__err(err, "precision (%d) must be DISTILL_PRECISION_FP32 (0) or DISTILL_PRECISION_BF16 (1)", tc->precision);
        return NULL;
    }
    if (distill__need_fp32(student, "distill_trainer_create", err)) return NULL;
    if (distill__ensure_grads(student) != 0) { distill__err(err, "out of memory for the gradient"); return NULL; }
    t = (distill_trainer *)DISTILL_MALLOC(sizeof *t);
    if (!t) { distill__err(err, "out of memory"); return NULL; }
    memset(t, 0, sizeof *t);
    t->lock = -1;
    t->m = student;
    t->train = *train;
    if (eval && eval->next) { t->eval = *eval; t->has_eval = 1; }
    t->tc = *tc;
    if (t->tc.keep_last < 1) t->tc.keep_last = 1;
    if (t->tc.log_every < 1) t->tc.log_every = 10;
    if (t->tc.eval_batches < 1) t->tc.eval_batches = 16;
    t->total = distill__estimate_steps(t);
    t->tc.optim.total_steps = t->total;
    if (distill_optim_validate(&t->tc.optim, err) != 0) { DISTILL_FREE(t); return NULL; }
    t->mbs = (distill__mb *)DISTILL_MALLOC(sizeof(distill__mb) * (size_t)tc->grad_accum);
    if (!t->mbs) { DISTILL_FREE(t); distill__err(err, "out of memory"); return NULL; }
    memset(t->mbs, 0, sizeof(distill__mb) * (size_t)tc->grad_accum);
    distill_rng_seed(&t->rng, tc->seed);
    t->comm = distill_comm_local();
    if (tc->kd) {
        t->kd = distill_kd_head_create(&tc->kdc, student->cfg.vocab_size, err);
        if (!t->kd) { distill_trainer_free(t); return NULL; }
    }
#if !defined(_WIN32)
    t->tty = isatty(fileno(stdout));
    if (tc->out_dir && mkdir(tc->out_dir, 0755) != 0 && errno != EEXIST) {
        distill__err(err, "%s: cannot create the output directory: %s", tc->out_dir, strerror(errno));
        distill_trainer_free(t);
        return NULL;
    }
#endif
    if (tc->metrics_path || tc->out_dir) {
        char buf[1024];
        const char *mp = tc->metrics_path;
        if (!mp) { snprintf(buf, sizeof buf, "%s/metrics.jsonl", tc->out_dir); mp = buf; }
        snprintf(t->metrics_path, sizeof t->metrics_path, "%s", mp);
        t->metrics = distill__open_append(mp);
        if (!t->metrics) {
            distill__err(err, "%s: cannot open the metrics log: %s", mp, strerror(errno));
            distill_trainer_free(t);
            return NULL;
        }
    }
    t->last_eval = NAN;
    return t;
}

/* The trainer's out_dir lock (rank 0 alone writes there), taken before its first write. */
static int distill__trainer_lock(distill_trainer *t, distill_error *err) {
    if (t->lock >= 0 || !t->tc.out_dir || t->tc.no_lock || t->comm->rank != 0) return 0;
    t->lock = distill_dir_lock(t->tc.out_dir, err);
    return t->lock >= 0 ? 0 : -1;
}

static int distill__stop_local(const distill_trainer *t) { return t->tc.stop_flag && *t->tc.stop_flag != 0; }

DISTILL_API void distill_trainer_free(distill_trainer *t) {
    int i;
    if (!t) return;
    if (t->mbs) for (i = 0; i < t->tc.grad_accum; i++) distill__mb_free(&t->mbs[i]);
    DISTILL_FREE(t->mbs);
    distill_kd_head_free(t->kd);
    if (t->metrics) fclose(t->metrics);
    distill_dir_unlock(t->lock);
    DISTILL_FREE(t);
}

DISTILL_API int distill_trainer_set_teacher(distill_trainer *t, distill_model *teacher, distill_error *err) {
    if (!t->kd) return distill__err(err, "set_teacher: the trainer was created without kd = 1");
    if (teacher->cfg.vocab_size != t->m->cfg.vocab_size)
        return distill__err(err, "teacher vocabulary (%d tokens) differs from the student's (%d): logit "
                            "distillation needs a shared tokenizer", teacher->cfg.vocab_size, t->m->cfg.vocab_size);
    t->teacher = teacher;
    t->cache = NULL;
    return 0;
}

DISTILL_API int distill_trainer_set_cache(distill_trainer *t, const distill_topk_cache *c, distill_error *err) {
    if (!t->kd) return distill__err(err, "set_cache: the trainer was created without kd = 1");
    if (c->V != t->m->cfg.vocab_size)
        return distill__err(err, "top-k cache vocabulary (%d) differs from the student's (%d)", c->V, t->m->cfg.vocab_size);
    t->cache = c;
    t->teacher = NULL;
    return 0;
}

DISTILL_API void distill_trainer_set_callback(distill_trainer *t, distill_step_callback fn, void *ctx) {
    t->cb = fn;
    t->cb_ctx = ctx;
}
DISTILL_API int64_t distill_trainer_steps_done(const distill_trainer *t) { return t->step; }
DISTILL_API int distill_trainer_stopped(const distill_trainer *t) { return t->stopped; }
DISTILL_API const char *distill_trainer_last_checkpoint(const distill_trainer *t) { return t->last_ckpt; }
DISTILL_API int64_t distill_trainer_total_steps(const distill_trainer *t) { return t->total; }

/* Global L2 norm of the gradient, in double, in a fixed order. */
static double distill__grad_norm(const distill_model *m) {
    double s = 0.0;
    size_t i;
    for (i = 0; i < m->num_floats; i++) s += (double)m->grads[i] * (double)m->grads[i];
    return sqrt(s);
}

/* ---- data parallelism -------------------------------------------------------------------------
   P ranks, one global micro-batch of B rows: rank r keeps rows [B*r/P, B*(r+1)/P). With
   W = the supervised weight of the whole accumulated global batch (every rank computes it from
   the full batch it read), each rank's loss is sum_{its tokens} w_i*l_i / W, so
       sum over ranks of grad(rank's loss) = grad( sum_all w_i*l_i / W ) = the global batch's gradient,
   and one all-reduce (sum) of the gradient buffer gives every rank the same gradient. */
static distill_batch distill__shard(const distill_batch *b, int lo, int hi) {
    distill_batch s = *b;
    size_t o = (size_t)lo * (size_t)b->T;
    s.B = hi - lo;
    s.tokens = b->tokens + o;
    if (b->targets) s.targets = b->targets + o;
    if (b->weights) s.weights = b->weights + o;
    if (b->segments) s.segments = b->segments + o;
    if (b->positions) s.positions = b->positions + o;
    if (b->lengths) s.lengths = b->lengths + lo;
    return s;
}

DISTILL_API int distill_trainer_set_comm(distill_trainer *t, const distill_comm *c, distill_error *err) {
    if (!c) c = distill_comm_local();
    if (c->size < 1 || c->rank < 0 || c->rank >= c->size || !c->allreduce)
        return distill__err(err, "set_comm: invalid communicator (rank %d of %d%s)", c->rank, c->size,
                            c->allreduce ? "" : ", no allreduce");
    if ((c->iallreduce != NULL) != (c->wait != NULL))
        return distill__err(err, "set_comm: iallreduce and wait must be given together");
    if (t->step > 0) return distill__err(err, "set_comm: call it before training starts (or before resume)");
    t->comm = c;
    t->comm_checked = 0;
    if (c->rank != 0 && t->metrics) {   /* rank 0 alone keeps the log */
        fclose(t->metrics);
        t->metrics = NULL;
        t->metrics_path[0] = 0;
    }
    return 0;
}

DISTILL_API void distill_trainer_comm_stats(const distill_trainer *t, double *allreduce_seconds, double *wait_seconds,
                                            size_t *bytes_per_step) {
    if (allreduce_seconds) *allreduce_seconds = t->comm_seconds;
    if (wait_seconds) *wait_seconds = t->comm_wait_seconds;
    if (bytes_per_step) *bytes_per_step = t->comm->size > 1 ? t->m->num_floats * sizeof(float) : 0;
}

/* Every rank must start from the same weights (same init seed or the same checkpoint): compare a
   CRC of the parameters and the step with rank 0's before the first update. */
static int distill__dp_check(distill_trainer *t, distill_error *err) {
    uint64_t mine[2], root[2];
    int64_t bad;
    mine[0] = (uint64_t)t->step;
    mine[1] = distill_crc32(0, t->m->params, t->m->num_floats * sizeof(float));
    memcpy(root, mine, sizeof root);
    if (t->comm->bcast(t->comm, root, sizeof root, 0, err) != 0) return -1;
    bad = memcmp(root, mine, sizeof root) != 0;
    if (t->comm->allreduce(t->comm, &bad, 1, DISTILL_I64, err) != 0) return -1;
    if (bad) {
        if (memcmp(root, mine, sizeof root) != 0)
            return distill__err(err, "rank %d: weights or step (%llu) differ from rank 0's (step %llu): every rank must "
                                "start from the same seed or checkpoint", t->comm->rank, (unsigned long long)mine[0],
                                (unsigned long long)root[0]);
        return distill__err(err, "rank %d: another rank's weights or step differ from rank 0's", t->comm->rank);
    }
    t->comm_checked = 1;
    return 0;
}

/* Backward hook: gradients [lo, end) are final. Hand them to the all-reduce once the pending part
   reaches a bucket (or at the end); between buckets, poll the requests so the transport progresses. */
static void distill__dp_ready(void *ctx, size_t lo) {
    distill_trainer *t = (distill_trainer *)ctx;
    const distill_comm *c = t->comm;
    size_t bucket = (t->tc.comm_bucket_bytes ? t->tc.comm_bucket_bytes : ((size_t)4 << 20)) / sizeof(float);
    int i;
    double t0;
    if (t->dp_failed) return;
    t0 = distill_time_seconds();
    if (t->dp_sent - lo >= bucket || (lo == 0 && t->dp_sent > 0)) {
        if (t->dp_nreq == 64) {   /* too many in flight: finish the oldest */
            if (c->wait(c, t->dp_reqs[0], &t->dp_err) != 0) t->dp_failed = 1;
            memmove(t->dp_reqs, t->dp_reqs + 1, sizeof(void *) * 63);
            t->dp_nreq--;
        }
        if (!t->dp_failed && c->iallreduce(c, t->m->grads + lo, t->dp_sent - lo, &t->dp_reqs[t->dp_nreq], &t->dp_err) != 0)
            t->dp_failed = 1;
        else if (!t->dp_failed) t->dp_nreq++;
        t->dp_sent = lo;
    } else if (c->test) {
        for (i = 0; i < t->dp_nreq; i++) c->test(c, t->dp_reqs[i]);
    }
    t->comm_seconds += distill_time_seconds() - t0;
}

/* After the last micro-batch: every bucket summed on every rank. */
static int distill__dp_finish(distill_trainer *t, distill_error *err) {
    const distill_comm *c = t->comm;
    double t0 = distill_time_seconds();
    int i, rc = 0;
    distill__state *s = (distill__state *)t->m->internal;
    s->grad_ready = NULL;
    for (i = 0; i < t->dp_nreq; i++)
        if (c->wait(c, t->dp_reqs[i], rc ? NULL : &t->dp_err) != 0) { rc = -1; t->dp_failed = 1; }
    t->dp_nreq = 0;
    if (!t->dp_failed && t->dp_sent > 0 && c->allreduce(c, t->m->grads, t->dp_sent, DISTILL_F32, &t->dp_err) != 0)
        t->dp_failed = 1;
    t->dp_sent = 0;
    t->comm_wait_seconds += distill_time_seconds() - t0;
    t->comm_seconds += distill_time_seconds() - t0;
    if (t->dp_failed) {
        t->dp_failed = 0;
        if (err) *err = t->dp_err;
        return -1;
    }
    return 0;
}

DISTILL_API int distill_trainer_step(distill_trainer *t, distill_step_info *info, distill_error *err) {
    double wsum = 0.0, loss = 0.0, acc = 0.0, ent = 0.0, w_seen = 0.0, gn;
    int64_t tokens = 0;
    float grad_scale;
    int a, P = t->comm->size;
    double t0 = distill_time_seconds();
    if (t->kd && !t->teacher && !t->cache)
        return distill__err(err, "kd = 1 but neither a teacher nor a top-k cache is set");
    /* 1. the whole accumulated batch, copied */
    for (a = 0; a < t->tc.grad_accum; a++) {
        distill_batch b;
        const int64_t *rows = NULL;
        int n_rows = 0;
        memset(&b, 0, sizeof b);
        if (t->train.next(t->train.ctx, &b, &rows, &n_rows, err) != 0) return -1;
        if (distill__mb_copy(&t->mbs[a], &b, rows, n_rows) != 0) return distill__err(err, "out of memory copying a batch");
        wsum += distill__mb_weight(&t->mbs[a].b);
    }
    /* 2. every micro-batch's loss is a sum scaled by 1/(total weight of the whole step), so the
          accumulated gradient is that of the mean over all supervised tokens, however the tokens
          fall into micro-batches (not a mean of per-micro-batch means) */
    grad_scale = wsum > 0.0 ? (float)(1.0 / wsum) : 0.0f;
    if (P > 1 && !t->comm_checked && distill__dp_check(t, err) != 0) return -1;
    distill_model_zero_grad(t->m);
    for (a = 0; a < t->tc.grad_accum && wsum > 0.0; a++) {
        distill__mb *mb = &t->mbs[a];
        distill_stats st;
        distill_head_loss hl;
        const distill_head_loss *hlp = NULL;
        /* this rank's rows of the global micro-batch (all of them when P = 1) */
        int lo = (int)((int64_t)mb->b.B * t->comm->rank / P), hi = (int)((int64_t)mb->b.B * (t->comm->rank + 1) / P);
        distill_batch sb = distill__shard(&mb->b, lo, hi);
        int last = a == t->tc.grad_accum - 1;
        if (P > 1 && last) {   /* the gradient is final during this backward: reduce as it appears */
            distill__state *ms = (distill__state *)t->m->internal;
            t->dp_sent = t->m->num_floats;
            t->dp_nreq = 0;
            if (t->comm->iallreduce && t->tc.comm_overlap) {
                ms->grad_ready = distill__dp_ready;
                ms->grad_ready_ctx = t;
            }
        }
        if (sb.B > 0) {
            if (t->kd) {
                if (t->teacher) {
                    if (distill_kd_head_run_teacher(t->kd, t->teacher, &sb, err) != 0) return -1;
                } else {
                    if (mb->n_rows != mb->b.B)
                        return distill__err(err, "top-k cache: the batch source does not report dataset rows (packing is not supported with a cache)");
                    if (distill_kd_head_set_cache_rows(t->kd, t->cache, mb->rows + lo, &sb, err) != 0) return -1;
                }
                hl = distill_kd_head_loss(t->kd);
                hlp = &hl;
            }
            if (distill_model_forward_backward(t->m, &sb, hlp, grad_scale, &st, err) != 0) return -1;
            loss += st.loss;
            acc += st.accuracy * st.weight_sum;
            ent += st.entropy * st.weight_sum;
            w_seen += st.weight_sum;
            tokens += st.tokens;
        }
        if (P > 1 && last && sb.B == 0 && ((distill__state *)t->m->internal)->grad_ready) {
            /* no rows here (a short last batch): issue the same buckets as the other ranks, in the
               same order, with this rank's zero gradient, or the collectives would not match */
            int l;
            distill__dp_ready(t, (size_t)(t->m->final_norm - t->m->params));
            for (l = t->m->cfg.n_layers - 1; l >= 0; l--) distill__dp_ready(t, (size_t)(t->m->layers[l].attn_norm - t->m->params));
            distill__dp_ready(t, 0);
        }
        if (P > 1 && last && distill__dp_finish(t, err) != 0) return -1;
    }
    if (wsum <= 0.0)
        for (a = 0; a < t->tc.grad_accum; a++) {
            const distill_batch *b = &t->mbs[a].b;
            int r;
            for (r = 0; r < b->B; r++) tokens += b->lengths ? b->lengths[r] : b->T;
        }
    if (P > 1) {   /* the step's statistics over the global batch, and any rank's stop flag */
        double v[6];
        v[0] = loss; v[1] = acc; v[2] = ent; v[3] = w_seen; v[4] = (double)tokens;
        v[5] = distill__stop_local(t) ? 1.0 : 0.0;
        if (t->comm->allreduce(t->comm, v, 6, DISTILL_F64, err) != 0) return -1;
        if (wsum > 0.0) { loss = v[0]; acc = v[1]; ent = v[2]; w_seen = v[3]; tokens = (int64_t)v[4]; }
        t->stop_all = v[5] > 0.0;   /* the same on every rank: all stop after this step */
    }
    /* 3. stop before a non-finite update reaches the weights */
    gn = distill__grad_norm(t->m);
    if (!(loss == loss && fabs(loss) < INFINITY) || !(gn == gn && gn < INFINITY)) {
        /* name the first tensor (in table order) whose weights, else whose gradient, is not finite */
        const distill_tensor_info *bad = NULL;
        int pass, ti;
        size_t k;
        for (pass = 0; pass < 2 && !bad; pass++)
            for (ti = 0; ti < t->m->n_tensors && !bad; ti++) {
                const float *x = (pass ? t->m->grads : t->m->params) + t->m->tensors[ti].offset;
                for (k = 0; k < t->m->tensors[ti].numel && !bad; k++)
                    if (!(fabsf(x[k]) < INFINITY)) bad = &t->m->tensors[ti];
            }
        return distill__err(err, "step %lld: %s is %s (first non-finite tensor: %s %s); training stopped before the update "
                            "(the weights are those after step %lld; lower the learning rate or check the data)", (long long)(t->step + 1),
                            !(loss == loss && fabs(loss) < INFINITY) ? "the loss" : "the gradient norm",
                            (loss != loss || gn != gn) ? "NaN" : "infinite", bad ? bad->name : "none",
                            !bad ? "" : pass == 1 ? "(weights)" : "(gradient)", (long long)t->step);
    }
    if (info) info->lr = distill_lr_at(&t->tc.optim, t->step);
    if (wsum > 0.0) distill_adamw_step(t->m, &t->tc.optim, t->step);
    t->step++;
    t->tokens_seen += tokens;
    t->elapsed += distill_time_seconds() - t0;
    if (info) {
        double rate;
        info->step = t->step;
        info->total_steps = t->total;
        info->epoch = t->train.epoch ? t->train.epoch(t->train.ctx) : 0.0;
        info->loss = loss;
        info->accuracy = w_seen > 0 ? acc / w_seen : 0.0;
        info->entropy = w_seen > 0 ? ent / w_seen : 0.0;
        info->grad_norm = gn;
        info->tokens_seen = t->tokens_seen;
        info->elapsed = t->elapsed;
        rate = t->elapsed - t->elapsed_at_start > 0 ? (double)(t->tokens_seen - t->tokens_at_start) / (t->elapsed - t->elapsed_at_start) : 0.0;
        info->tokens_per_sec = rate;
        info->eta = t->step > t->step_at_start && t->step < t->total
                        ? (t->elapsed - t->elapsed_at_start) / (double)(t->step - t->step_at_start) * (double)(t->total - t->step)
                        : 0.0;
        info->eval_loss = NAN;
    }
    return 0;
}

DISTILL_API int distill_trainer_evaluate(distill_trainer *t, distill_stats *out, distill_error *err) {
    int64_t saved[3], zero[3] = {0, 0, 0}, i;
    double lsum = 0.0, wsum = 0.0, acc = 0.0, ent = 0.0;
    int64_t tok = 0;
    if (!t->has_eval) return distill__err(err, "no evaluation data");
    /* always the same batches: from the source's start, its position restored afterwards */
    t->eval.get_state(t->eval.ctx, saved);
    zero[2] = saved[2];
    if (t->eval.set_state(t->eval.ctx, zero, err) != 0) return -1;
    for (i = 0; i < t->tc.eval_batches; i++) {
        distill_batch b;
        const int64_t *rows = NULL;
        int n_rows = 0;
        distill_stats st;
        memset(&b, 0, sizeof b);
        if (i > 0 && t->eval.epoch && t->eval.epoch(t->eval.ctx) >= 1.0) break;
        if (t->eval.next(t->eval.ctx, &b, &rows, &n_rows, err) != 0) return -1;
        {   /* each rank scores its rows of the batch; the sums are combined below */
            int P = t->comm->size, lo = (int)((int64_t)b.B * t->comm->rank / P);
            int hi = (int)((int64_t)b.B * (t->comm->rank + 1) / P);
            distill_batch sb = distill__shard(&b, lo, hi);
            if (sb.B == 0) continue;
            if (distill_model_forward(t->m, &sb, NULL, 0.0f, &st, err) != 0) return -1;
        }
        lsum += st.loss * st.weight_sum;   /* forward reports the mean over this batch */
        wsum += st.weight_sum;
        acc += st.accuracy * st.weight_sum;
        ent += st.entropy * st.weight_sum;
        tok += st.tokens;
    }
    if (t->eval.set_state(t->eval.ctx, saved, err) != 0) return -1;
    if (t->comm->size > 1) {
        double v[5];
        v[0] = lsum; v[1] = wsum; v[2] = acc; v[3] = ent; v[4] = (double)tok;
        if (t->comm->allreduce(t->comm, v, 5, DISTILL_F64, err) != 0) return -1;
        lsum = v[0]; wsum = v[1]; acc = v[2]; ent = v[3]; tok = (int64_t)v[4];
    }
    memset(out, 0, sizeof *out);
    out->loss = wsum > 0 ? lsum / wsum : 0.0;
    out->weight_sum = wsum;
    out->accuracy = wsum > 0 ? acc / wsum : 0.0;
    out->entropy = wsum > 0 ? ent / wsum : 0.0;
    out->tokens = tok;
    return 0;
}

/* ---- checkpoints of the whole training state ---------------------------------------------- */
static char *distill__train_json(const distill_trainer *t) {
    FILE *f = tmpfile();
    int64_t st[3] = {0, 0, 0}, es[3] = {0, 0, 0};
    const distill_optim_config *o = &t->tc.optim;
    char *s = NULL;
    long n;
    int i;
    if (!f) return NULL;
    t->train.get_state(t->train.ctx, st);
    if (t->has_eval) t->eval.get_state(t->eval.ctx, es);
    fprintf(f, "{\"step\": %lld, \"total_steps\": %lld, \"tokens_seen\": %lld, \"elapsed\": %.17g, "
               "\"source_state\": [%lld, %lld, %lld], \"eval_source_state\": [%lld, %lld, %lld], \"rng\": [",
            (long long)t->step, (long long)t->total, (long long)t->tokens_seen, t->elapsed,
            (long long)st[0], (long long)st[1], (long long)st[2], (long long)es[0], (long long)es[1], (long long)es[2]);
    for (i = 0; i < 4; i++) fprintf(f, "%s\"%016llx\"", i ? ", " : "", (unsigned long long)t->rng.s[i]);
    fprintf(f, "], \"optim\": {\"lr\": %.9g, \"beta1\": %.9g, \"beta2\": %.9g, \"eps\": %.9g, \"weight_decay\": %.9g, "
               "\"decay_embeddings\": %d, \"grad_clip\": %.9g, \"schedule\": %d, \"warmup_steps\": %lld, "
               "\"warmup_ratio\": %.9g, \"total_steps\": %lld, \"min_lr_ratio\": %.9g}, ",
            (double)o->lr, (double)o->beta1, (double)o->beta2, (double)o->eps, (double)o->weight_decay,
            o->decay_embeddings, (double)o->grad_clip, (int)o->schedule, (long long)o->warmup_steps,
            (double)o->warmup_ratio, (long long)o->total_steps, (double)o->min_lr_ratio);
    fprintf(f, "\"grad_accum\": %d, \"kd\": %d, \"kd_alpha\": %.9g, \"kd_beta\": %.9g, \"kd_temperature\": %.9g, "
               "\"seed\": %llu, \"config\": %s, \"manifest\": %s}",
            t->tc.grad_accum, t->tc.kd, (double)t->tc.kdc.alpha, (double)t->tc.kdc.beta, (double)t->tc.kdc.temperature,
            (unsigned long long)t->tc.seed, t->tc.config_json ? t->tc.config_json : "null",
            t->tc.manifest_json ? t->tc.manifest_json : "null");
    n = ftell(f);
    if (n > 0) {
        s = (char *)DISTILL_MALLOC((size_t)n + 1);
        rewind(f);
        if (s && fread(s, 1, (size_t)n, f) != (size_t)n) { DISTILL_FREE(s); s = NULL; }
        if (s) s[n] = 0;
    }
    fclose(f);
    return s;
}

DISTILL_API int distill_trainer_save(distill_trainer *t, const char *path, distill_error *err) {
    char *js = distill__train_json(t);
    int rc;
    if (!js) return distill__err(err, "%s: out of memory formatting the training state", path);
    rc = distill_checkpoint_write(path, t->m, 1, js, NULL, 0, err);
    DISTILL_FREE(js);
    return rc;
}

/* Checkpoints in a directory, newest first: ckpt-<step>.dstl. Returns the count (<= cap). */
static int distill__list_ckpts(const char *dir, int64_t *steps, int cap) {
    int n = 0;
#if !defined(_WIN32)
    DIR *d = opendir(dir);
    struct dirent *e;
    if (!d) return 0;
    while ((e = readdir(d)) != NULL) {
        long long s;
        char tail[8];
        if (sscanf(e->d_name, "ckpt-%lld.dst%1s", &s, tail) == 2 && tail[0] == 'l' && strlen(e->d_name) > 10 &&
            !strcmp(e->d_name + strlen(e->d_name) - 5, ".dstl")) {
            int i;
            /* keep the newest `cap` (a directory may hold more than cap checkpoints) */
            if (n < cap) steps[n++] = s;
            else if (s > steps[cap - 1]) steps[cap - 1] = s;
            else continue;
            for (i = n - 1; i > 0 && steps[i] > steps[i - 1]; i--) { int64_t x = steps[i]; steps[i] = steps[i - 1]; steps[i - 1] = x; }
        }
    }
    closedir(d);
#else
    (void)dir; (void)steps; (void)cap;
#endif
    return n;
}

static void distill__ckpt_name(char *buf, size_t cap, const char *dir, int64_t step) {
    snprintf(buf, cap, "%s/ckpt-%09lld.dstl", dir, (long long)step);
}

/* A process killed while saving (kill -9, a second Ctrl-C) leaves ckpt-<step>.dstl.tmp.<pid>,
   model.dstl.tmp.<pid> or metrics.jsonl.tmp.<pid>. One trainer writes to a directory at a time
   (the lock), so any such temp file not of this process is a leftover: remove it (at the start
   of a run and after every save). */
static void distill__clean_tmp(const char *dir) {
#if !defined(_WIN32)
    DIR *d = opendir(dir);
    struct dirent *e;
    char own[32], path[1024];
    snprintf(own, sizeof own, ".tmp.%ld", (long)getpid());
    while (d && (e = readdir(d)) != NULL) {
        const char *tmp = strstr(e->d_name, ".tmp.");
        int ours = !strncmp(e->d_name, "ckpt-", 5) || !strncmp(e->d_name, "model.dstl.", 11) ||
                   !strncmp(e->d_name, "metrics.jsonl.", 14);
        if (ours && tmp && strcmp(tmp, own) != 0) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            remove(path);
        }
    }
    if (d) closedir(d);
#else
    (void)dir;
#endif
}

static int distill__save_rotate(distill_trainer *t, distill_error *err) {
    char path[1024];
    int64_t steps[256];
    int n, i;
    distill__ckpt_name(path, sizeof path, t->tc.out_dir, t->step);
    if (distill_trainer_save(t, path, err) != 0) return -1;
    snprintf(t->last_ckpt, sizeof t->last_ckpt, "%s", path);
    t->last_save_time = distill_time_seconds();
    n = distill__list_ckpts(t->tc.out_dir, steps, 256);
    for (i = t->tc.keep_last; i < n; i++) {
        distill__ckpt_name(path, sizeof path, t->tc.out_dir, steps[i]);
        remove(path);
    }
    distill__clean_tmp(t->tc.out_dir);
    return 0;
}

static int distill__json_i64(const distill_json *o, const char *key, int64_t *out) {
    const distill_json *v = distill_json_get(o, key);
    if (!v || v->type != DISTILL_JSON_NUMBER || !v->is_int) return -1;
    *out = v->i64;
    return 0;
}

/* After a resume the log may hold steps past the checkpoint (written before the process died),
   and a torn last line (killed while writing it): drop them so the log reads as one run. */
static int distill__metrics_truncate(distill_trainer *t, distill_error *err) {
    size_t n;
    char *buf, *line, *out;
    size_t o = 0;
    int rc = 0;
    if (!t->metrics || !t->metrics_path[0]) return 0;
    fclose(t->metrics);
    t->metrics = NULL;
    buf = (char *)distill_read_file(t->metrics_path, &n, NULL);
    out = buf ? (char *)DISTILL_MALLOC(n + 1) : NULL;
    if (buf && out) {
        for (line = buf; line < buf + n;) {
            char *nl = strchr(line, '\n');
            size_t len = nl ? (size_t)(nl - line) + 1 : strlen(line);
            long long st = -1;
            if (nl && (sscanf(line, "{\"step\": %lld", &st) != 1 || st <= (long long)t->step)) {
                memcpy(out + o, line, len);
                o += len;
            }
            line += len;
        }
        if (o != n) rc = distill_write_file_atomic(t->metrics_path, out, o, err);
    }
    DISTILL_FREE(out);
    DISTILL_FREE(buf);
    t->metrics = distill__open_append(t->metrics_path);
    if (!t->metrics && rc == 0) rc = distill__err(err, "%s: cannot open the metrics log: %s", t->metrics_path, strerror(errno));
    return rc;
}

static int distill__resume_file(distill_trainer *t, const char *path, distill_error *err) {
    distill_checkpoint *ck = distill_checkpoint_read(path, err);
    const distill_json *tr, *ss, *rng, *el;
    int64_t st[3];
    int i;
    if (!ck) return -1;
    tr = ck->train;
    if (!tr) { distill_checkpoint_free(ck); return distill__err(err, "%s: a model checkpoint without training state: cannot resume (load it as initial weights instead)", path); }
    if (distill_checkpoint_restore(ck, t->m, 1, err) != 0) { distill_checkpoint_free(ck); return -1; }
    ss = distill_json_get(tr, "source_state");
    rng = distill_json_get(tr, "rng");
    if (distill__json_i64(tr, "step", &t->step) != 0 || distill__json_i64(tr, "tokens_seen", &t->tokens_seen) != 0 ||
        !ss || ss->type != DISTILL_JSON_ARRAY || ss->len != 3 || !rng || rng->type != DISTILL_JSON_ARRAY || rng->len != 4) {
        distill_checkpoint_free(ck);
        return distill__err(err, "%s: field 'train': malformed training state", path);
    }
    for (i = 0; i < 3; i++) {
        if (!ss->items[i].is_int) { distill_checkpoint_free(ck); return distill__err(err, "%s: field 'train.source_state': expected integers", path); }
        st[i] = ss->items[i].i64;
    }
    for (i = 0; i < 4; i++) {
        unsigned long long x;
        if (rng->items[i].type != DISTILL_JSON_STRING || sscanf(rng->items[i].str, "%llx", &x) != 1) {
            distill_checkpoint_free(ck);
            return distill__err(err, "%s: field 'train.rng': expected 4 hex strings", path);
        }
        t->rng.s[i] = (uint64_t)x;
    }
    el = distill_json_get(tr, "elapsed");
    t->elapsed = el && el->type == DISTILL_JSON_NUMBER ? el->num : 0.0;
    if (t->train.set_state(t->train.ctx, st, err) != 0) { distill_checkpoint_free(ck); return -1; }
    t->elapsed_at_start = t->elapsed;
    t->tokens_at_start = t->tokens_seen;
    t->step_at_start = t->step;
    t->comm_checked = 0;
    distill_checkpoint_free(ck);
    return distill__metrics_truncate(t, err);
}

DISTILL_API int distill_trainer_resume(distill_trainer *t, const char *path, distill_error *err) {
    struct stat sb;
    int64_t steps[256];
    int n, i;
    char p[1024];
    if (distill__trainer_lock(t, err) != 0) return -1;   /* resume rewrites the metrics log */
    if (stat(path, &sb) != 0) return distill__err(err, "%s: cannot resume: %s", path, strerror(errno));
    if (!S_ISDIR(sb.st_mode)) return distill__resume_file(t, path, err);
    n = distill__list_ckpts(path, steps, 256);
    if (n == 0) return distill__err(err, "%s: no checkpoint (ckpt-<step>.dstl) to resume from", path);
    distill__ckpt_name(p, sizeof p, path, steps[0]);
    if (distill__resume_file(t, p, err) == 0) return 0;
    /* the newest is unusable: name it and offer the newest intact one, without silently
       training from an older state */
    for (i = 1; i < n; i++) {
        char q[1024];
        distill_error e2;
        distill_checkpoint *ck;
        distill__ckpt_name(q, sizeof q, path, steps[i]);
        ck = distill_checkpoint_read(q, &e2);
        if (ck) {
            char msg[2048];
            distill_checkpoint_free(ck);
            snprintf(msg, sizeof msg, "%s; the previous checkpoint %s is intact: resume from it explicitly", err->msg, q);
            memcpy(err->msg, msg, sizeof err->msg - 1);
            err->msg[sizeof err->msg - 1] = 0;
            return -1;
        }
    }
    return -1;
}

/* ---- progress and metrics ------------------------------------------------------------------- */
static void distill__fmt_dur(char *b, size_t n, double s) {
    long x = (long)(s + 0.5);
    if (x >= 3600) snprintf(b, n, "%ldh%02ldm", x / 3600, (x / 60) % 60);
    else if (x >= 60) snprintf(b, n, "%ldm%02lds", x / 60, x % 60);
    else snprintf(b, n, "%lds", x);
}

static void distill__progress(distill_trainer *t, const distill_step_info *in, int last) {
    char eta[32], el[32];
    distill__fmt_dur(eta, sizeof eta, in->eta);
    distill__fmt_dur(el, sizeof el, in->elapsed);
    if (t->tty) {
        int w = 24, fill = (int)((double)w * (double)in->step / (double)(in->total_steps > 0 ? in->total_steps : 1)), i;
        char bar[32];
        if (fill > w) fill = w;
        for (i = 0; i < w; i++) bar[i] = i < fill ? '#' : '.';
        bar[w] = 0;
        printf("\rstep %lld/%lld [%s] loss %.4f lr %.2e %.0f tok/s ETA %s   ", (long long)in->step,
               (long long)in->total_steps, bar, in->loss, in->lr, in->tokens_per_sec, eta);
        if (last) printf("\n");
        fflush(stdout);
    } else if (last || in->step % t->tc.log_every == 0 || in->step == 1) {
        printf("step %lld/%lld epoch %.2f loss %.4f acc %.3f lr %.2e gnorm %.3f %.0f tok/s elapsed %s ETA %s\n",
               (long long)in->step, (long long)in->total_steps, in->epoch, in->loss, in->accuracy, in->lr,
               in->grad_norm, in->tokens_per_sec, el, eta);
        fflush(stdout);
    }
}

static int distill__metrics_line(distill_trainer *t, const distill_step_info *in, distill_error *err) {
    if (!t->metrics) return 0;
    fprintf(t->metrics, "{\"step\": %lld, \"epoch\": %.6g, \"loss\": %.9g, \"accuracy\": %.6g, \"entropy\": %.6g, "
                        "\"grad_norm\": %.6g, \"lr\": %.6g, \"tokens\": %lld, \"tokens_per_sec\": %.1f, \"elapsed\": %.3f",
            (long long)in->step, in->epoch, in->loss, in->accuracy, in->entropy, in->grad_norm, in->lr,
            (long long)in->tokens_seen, in->tokens_per_sec, in->elapsed);
    if (in->eval_loss == in->eval_loss) fprintf(t->metrics, ", \"eval_loss\": %.9g", in->eval_loss);
    fprintf(t->metrics, "}\n");
    errno = 0;
    if (fflush(t->metrics) != 0 || ferror(t->metrics))
        return distill__err(err, "%s: write failed: %s", t->metrics_path, strerror(errno ? errno : EIO));
    return 0;
}

/* Append "; the last checkpoint is <newest in out_dir>" to err: the state to resume from after
   fixing the cause (a bad batch, a full disk). */
static void distill__name_last_ckpt(distill_trainer *t, distill_error *err) {
    int64_t saved[256];
    if (err && t->tc.out_dir && distill__list_ckpts(t->tc.out_dir, saved, 256) > 0) {
        char p[1024], msg[sizeof err->msg + 1100];
        distill__ckpt_name(p, sizeof p, t->tc.out_dir, saved[0]);
        snprintf(msg, sizeof msg, "%s; the last checkpoint is %s", err->msg, p);
        memcpy(err->msg, msg, sizeof err->msg - 1);
        err->msg[sizeof err->msg - 1] = 0;
    }
}

DISTILL_API int distill_trainer_run(distill_trainer *t, distill_error *err) {
    distill_step_info in;
    int stop = 0, lead = t->comm->rank == 0;   /* rank 0 alone prints and writes checkpoints */
    if (distill__trainer_lock(t, err) != 0) return -1;
    if (lead && t->tc.out_dir) distill__clean_tmp(t->tc.out_dir);
    memset(&in, 0, sizeof in);
    t->elapsed_at_start = t->elapsed;
    t->tokens_at_start = t->tokens_seen;
    t->step_at_start = t->step;
    t->stopped = 0;
    t->last_save_time = distill_time_seconds();
    while (t->step < t->total && !stop) {
        int last, save;
        if (distill_trainer_step(t, &in, err) != 0) {
            if (lead && t->tc.progress && t->tty) printf("\n");
            distill__name_last_ckpt(t, err);
            return -1;
        }
        if (t->tc.max_steps <= 0 && t->train.epoch && t->train.epoch(t->train.ctx) >= t->tc.epochs - 1e-12) {
            t->total = t->step;   /* the epoch estimate was off: the data decides */
            in.total_steps = t->total;
        }
        last = t->step >= t->total;
        if (t->has_eval && t->tc.eval_every > 0 && (t->step % t->tc.eval_every == 0 || last)) {
            distill_stats es;
            if (distill_trainer_evaluate(t, &es, err) != 0) return -1;
            in.eval_loss = es.loss;
            if (lead && t->tc.progress) {
                if (t->tty) printf("\n");
                printf("eval at step %lld: loss %.4f accuracy %.3f (%.0f tokens)\n", (long long)t->step, es.loss,
                       es.accuracy, es.weight_sum);
            }
        }
        if (t->cb && t->cb(t->cb_ctx, &in) != 0) { stop = 1; last = 1; }
        if (t->comm->size > 1 && t->cb) {   /* one rank's callback stops every rank */
            int64_t any = stop;
            if (t->comm->allreduce(t->comm, &any, 1, DISTILL_I64, err) != 0) return -1;
            if (any) { stop = 1; last = 1; }
        }
        /* a stop flag: one process reads its own; ranks use the step's all-reduced flag, so they
           all stop after the same step */
        if (t->comm->size > 1 ? t->stop_all : distill__stop_local(t)) { stop = 1; last = 1; }
        if (stop && t->step < t->total) t->stopped = 1;
        if (lead && t->tc.progress) distill__progress(t, &in, last);
        if (distill__metrics_line(t, &in, err) != 0) { distill__name_last_ckpt(t, err); return -1; }
        save = last || (t->tc.save_every > 0 && t->step % t->tc.save_every == 0) ||
               (t->tc.save_every_seconds > 0 && distill_time_seconds() - t->last_save_time >= t->tc.save_every_seconds);
        if (lead && t->tc.out_dir && save && distill__save_rotate(t, err) != 0) {
            distill__name_last_ckpt(t, err);
            return -1;
        }
    }
    return 0;
}

/* ---- the data layer's loader as a batch source ---------------------------------------------- */
static int distill__ls_next(void *ctx, distill_batch *b, const int64_t **rows, int *n_rows, distill_error *err) {
    distill_loader_source *s = (distill_loader_source *)ctx;
    if (distill_loader_next(s->loader, b, err) != 0) return -1;
    *rows = distill_loader_last_rows(s->loader, n_rows);
    return 0;
}
static void distill__ls_get(void *ctx, int64_t st[3]) {
    distill_loader_source *s = (distill_loader_source *)ctx;
    distill_loader_cursor c = distill_loader_get_cursor(s->loader);
    st[0] = c.epoch;
    st[1] = c.pos;
    st[2] = (int64_t)c.fingerprint;
}
static int distill__ls_set(void *ctx, const int64_t st[3], distill_error *err) {
    distill_loader_source *s = (distill_loader_source *)ctx;
    distill_loader_cursor c;
    c.epoch = st[0];
    c.pos = st[1];
    c.fingerprint = (uint64_t)st[2];
    return distill_loader_set_cursor(s->loader, &c, err);
}
static double distill__ls_epoch(void *ctx) {
    distill_loader_source *s = (distill_loader_source *)ctx;
    distill_loader_cursor c = distill_loader_get_cursor(s->loader);
    return (double)c.epoch + (s->n_rows > 0 ? (double)c.pos / (double)s->n_rows : 0.0);
}

DISTILL_API void distill_loader_source_init(distill_loader_source *s, distill_loader *L,
                                            const distill_dataset *ds) {
    memset(s, 0, sizeof *s);
    s->loader = L;
    s->n_rows = distill_dataset_size(ds);
    s->src.ctx = s;
    s->src.next = distill__ls_next;
    s->src.get_state = distill__ls_get;
    s->src.set_state = distill__ls_set;
    s->src.epoch = distill__ls_epoch;
    s->src.rows_per_epoch = s->n_rows;
    s->src.batches_per_epoch = distill_loader_epoch_batches(ds, &L->o, NULL);
}

/* Batches in one epoch: a dry run of a second loader with the same options over the rows (no
   copying of tokens matters here: packing decides the count, and packed epochs differ by at most
   a few batches between shuffles). 0 when it cannot be counted. */
DISTILL_API int64_t distill_loader_epoch_batches(const distill_dataset *ds, const distill_loader_options *o,
                                                 int64_t *tokens) {
    distill_loader *L;
    distill_batch b;
    distill_error err;
    int64_t rows = 0, n_rows = distill_dataset_size(ds), batches = 0, tok = 0;
    if (tokens) *tokens = 0;
    if (n_rows <= 0 || !(L = distill_loader_create(ds, o, &err))) return 0;
    while (rows < n_rows) {
        int i, nb = 0;
        if (distill_loader_next(L, &b, &err) != 0) { batches = 0; break; }
        (void)distill_loader_last_rows(L, &nb);
        if (nb <= 0) { batches = 0; break; }
        rows += nb;
        batches++;
        for (i = 0; i < b.B; i++) tok += b.lengths ? b.lengths[i] : b.T;
    }
    distill_loader_free(L);
    if (tokens) *tokens = batches ? tok : 0;
    return batches;
}

/* The rows of blocks number part, part + parts, ... (blocks of batch_rows rows, 1 <= batch_rows
   <= the teacher's max_batch, as the callers clamp it) into path. */
static int distill__topk_build_part(distill_model *teacher, const distill_dataset *ds, int k, int batch_rows,
                                    const char *path, int part, int parts, distill_error *err) {
    int64_t n = distill_dataset_size(ds), r0;
    int V = teacher->cfg.vocab_size, Tm = teacher->max_seq;
    distill_topk_writer *w = distill_topk_writer_open(path, k, V, err);
    int32_t *tok = NULL, *tgt = NULL;
    int *len = NULL;
    float *lg = NULL;
    if (!w) return -1;
    tok = (int32_t *)DISTILL_MALLOC(sizeof(int32_t) * (size_t)batch_rows * Tm);
    tgt = (int32_t *)DISTILL_MALLOC(sizeof(int32_t) * (size_t)batch_rows * Tm);
    len = (int *)DISTILL_MALLOC(sizeof(int) * (size_t)batch_rows);
    lg = (float *)DISTILL_MALLOC(sizeof(float) * (size_t)Tm * V);
    if (!tok || !tgt || !len || !lg) { distill__err(err, "out of memory"); goto fail; }
    for (r0 = (int64_t)part * batch_rows; r0 < n; r0 += (int64_t)parts * batch_rows) {
        int B = (int)(n - r0 < batch_rows ? n - r0 : batch_rows), T = 1, b, t;
        distill_batch bt;
        for (b = 0; b < B; b++) {
            distill_row row;
            if (distill_dataset_row(ds, r0 + b, &row) != 0) { distill__err(err, "row %lld: not in the dataset", (long long)(r0 + b)); goto fail; }
            if (row.n > Tm) { distill__err(err, "row %lld has %d tokens, more than the teacher's capacity %d", (long long)(r0 + b), row.n, Tm); goto fail; }
            if (row.n > T) T = row.n;
        }
        for (b = 0; b < B; b++) {
            distill_row row;
            if (distill_dataset_row(ds, r0 + b, &row) != 0) { distill__err(err, "row %lld: not in the dataset", (long long)(r0 + b)); goto fail; }
            len[b] = row.n;
            /* as the loader places a row: target = next token where that token is supervised */
            for (t = 0; t < T; t++) {
                size_t p = (size_t)b * T + t;
                tok[p] = t < row.n ? row.tokens[t] : 0;
                tgt[p] = t + 1 < row.n && row.weights[t + 1] > 0 ? row.tokens[t + 1] : -1;
            }
        }
        memset(&bt, 0, sizeof bt);
        bt.B = B; bt.T = T; bt.tokens = tok; bt.lengths = len;
        if (distill_model_forward(teacher, &bt, NULL, 0.0f, NULL, err) != 0) goto fail;
        for (b = 0; b < B; b++) {
            distill_model_logits(teacher, b, lg);
            if (distill_topk_writer_add_row(w, tok + (size_t)b * T, tgt + (size_t)b * T, len[b], lg, err) != 0) goto fail;
        }
    }
    DISTILL_FREE(tok); DISTILL_FREE(tgt); DISTILL_FREE(len); DISTILL_FREE(lg);
    return distill_topk_writer_close(w, err);
fail:
    DISTILL_FREE(tok); DISTILL_FREE(tgt); DISTILL_FREE(len); DISTILL_FREE(lg);
    distill_topk_writer_abort(w);
    return -1;
}

DISTILL_API int distill_topk_cache_build(distill_model *teacher, const distill_dataset *ds, int k,
                                         int batch_rows, const char *path, distill_error *err) {
    if (batch_rows < 1) batch_rows = 1;
    if (batch_rows > teacher->max_batch) batch_rows = teacher->max_batch;
    return distill__topk_build_part(teacher, ds, k, batch_rows, path, 0, 1, err);
}

/* Append row `row` of cache c to w as it is (its entries and its row record, renumbered). */
static int distill__topk_copy_row(distill_topk_writer *w, const distill_topk_cache *c, int64_t row, distill_error *err) {
    const unsigned char *rp = c->rows + (size_t)row * DISTILL__TOPK_ROW;
    uint64_t first = distill__get_u64(rp);
    uint32_t npos = distill__get_u32(rp + 8);
    unsigned char *o;
    if (distill__grow(&w->entries, &w->ent_cap, w->ent_len + (size_t)npos * c->entry_bytes) != 0 ||
        distill__grow(&w->rows, &w->rows_cap, w->rows_len + DISTILL__TOPK_ROW) != 0)
        return distill__err(err, "%s: out of memory", w->path);
    memcpy(w->entries + w->ent_len, c->entries + (size_t)first * c->entry_bytes, (size_t)npos * c->entry_bytes);
    w->ent_len += (size_t)npos * c->entry_bytes;
    o = w->rows + w->rows_len;
    memcpy(o, rp, DISTILL__TOPK_ROW);
    distill__put_u64(o, w->n_positions);
    w->rows_len += DISTILL__TOPK_ROW;
    w->n_rows++;
    w->n_positions += npos;
    return 0;
}

DISTILL_API int distill_topk_cache_build_comm(distill_model *teacher, const distill_dataset *ds, int k,
                                              int batch_rows, const char *path, const distill_comm *c,
                                              distill_error *err) {
    int P, r, rc;
    int64_t failed, n = distill_dataset_size(ds), row;
    char part[1100];
    distill_error e2;
    if (!c) c = distill_comm_local();
    P = c->size;
    if (batch_rows < 1) batch_rows = 1;
    if (batch_rows > teacher->max_batch) batch_rows = teacher->max_batch;
    if (P == 1) return distill__topk_build_part(teacher, ds, k, batch_rows, path, 0, 1, err);
    snprintf(part, sizeof part, "%s.part%dof%d", path, c->rank, P);
    rc = distill__topk_build_part(teacher, ds, k, batch_rows, part, c->rank, P, err);
    failed = rc != 0;
    if (c->allreduce(c, &failed, 1, DISTILL_I64, rc ? &e2 : err) != 0) return -1;
    if (failed) {
        if (rc == 0) distill__err(err, "%s: another rank failed to build its part of the cache", path);
        remove(part);
        return -1;
    }
    rc = 0;
    if (c->rank == 0) {   /* join: row i is in part (i / batch_rows) % P, in order */
        distill_topk_cache **pc = (distill_topk_cache **)DISTILL_MALLOC(sizeof(*pc) * (size_t)P);
        int64_t *next = (int64_t *)DISTILL_MALLOC(sizeof(int64_t) * (size_t)P);
        distill_topk_writer *w = distill_topk_writer_open(path, k, teacher->cfg.vocab_size, err);
        if (!pc || !next || !w) { rc = -1; if (pc || next) distill__err(err, "out of memory"); }
        else {
            memset(pc, 0, sizeof(*pc) * (size_t)P);
            memset(next, 0, sizeof(int64_t) * (size_t)P);
            for (r = 0; r < P && rc == 0; r++) {
                snprintf(part, sizeof part, "%s.part%dof%d", path, r, P);
                if (!(pc[r] = distill_topk_cache_open(part, teacher->cfg.vocab_size, 0, err))) rc = -1;
            }
            for (row = 0; row < n && rc == 0; row++) {
                int q = (int)((row / batch_rows) % P);
                if (next[q] >= pc[q]->n_rows) rc = distill__err(err, "%s.part%dof%d: fewer rows than expected", path, q, P);
                else rc = distill__topk_copy_row(w, pc[q], next[q]++, err);
            }
            if (rc == 0) { rc = distill_topk_writer_close(w, err); w = NULL; }
        }
        if (w) distill_topk_writer_abort(w);
        for (r = 0; pc && r < P; r++) {
            distill_topk_cache_free(pc[r]);
            snprintf(part, sizeof part, "%s.part%dof%d", path, r, P);
            remove(part);
        }
        DISTILL_FREE(pc);
        DISTILL_FREE(next);
    }
    failed = rc != 0;
    if (c->allreduce(c, &failed, 1, DISTILL_I64, rc ? &e2 : err) != 0) return -1;
    if (failed && rc == 0) distill__err(err, "%s: rank 0 failed to join the parts of the cache", path);
    return failed ? -1 : 0;
}
/* ===================================================================================== */
/* GENERATION AND EVALUATION                                                              */
/* ===================================================================================== */

/* ---- Evaluation metrics ---------------------------------------------------------------- */

DISTILL_API const char *distill_finish_name(distill_finish f) {
    switch (f) {
    case DISTILL_FINISH_STOP: return "stop";
    case DISTILL_FINISH_LENGTH: return "length";
    default: return "unknown";
    }
}

DISTILL_API distill_finish distill_finish_parse(const char *s) {
    if (!s) return DISTILL_FINISH_UNKNOWN;
    if (!strcmp(s, "stop") || !strcmp(s, "eos") || !strcmp(s, "end_turn") ||
        !strcmp(s, "stop_sequence") || !strcmp(s, "eos_token"))
        return DISTILL_FINISH_STOP;
    if (!strcmp(s, "length") || !strcmp(s, "max_tokens") || !strcmp(s, "max_length"))
        return DISTILL_FINISH_LENGTH;
    return DISTILL_FINISH_UNKNOWN;
}

/* pass@k = 1 - C(n-c,k)/C(n,k). Writing both binomials as falling factorials and cancelling,
   C(n-c,k)/C(n,k) = prod_{i=n-c+1..n} (i-k)/i = prod (1 - k/i): c factors, each in (0,1],
   accumulated in double. No factorials, no overflow. */
DISTILL_API double distill_pass_at_k(int64_t n, int64_t c, int64_t k) {
    double prod = 1.0;
    int64_t i;
    if (k < 1 || k > n || c < 0 || c > n) return NAN;
    if (n - c < k) return 1.0;            /* every k-subset contains a passing sample */
    for (i = n - c + 1; i <= n; i++) prod *= 1.0 - (double)k / (double)i;
    return 1.0 - prod;
}

/* Find needle in hay[from..len); returns its offset or (size_t)-1. */
static size_t distill__find(const char *hay, size_t len, size_t from, const char *needle) {
    size_t nl = strlen(needle), i;
    if (nl == 0 || len < nl) return (size_t)-1;
    for (i = from; i + nl <= len; i++)
        if (hay[i] == needle[0] && !memcmp(hay + i, needle, nl)) return i;
    return (size_t)-1;
}

/* The two spellings of the think markers. */
static const char *const distill__think_open[2] = {"<think>", "<|begin_of_thought|>"};
static const char *const distill__think_close[2] = {"</think>", "<|end_of_thought|>"};

/* Earliest (last = 0) or latest (last = 1) occurrence of any of the two markers in
   s[from..len); sets *mlen to the marker's length. (size_t)-1 when none. */
static size_t distill__find_marker(const char *s, size_t len, size_t from,
                                   const char *const *markers, int last, size_t *mlen) {
    size_t best = (size_t)-1, at;
    int j;
    *mlen = 0;
    for (j = 0; j < 2; j++) {
        size_t pos = from;
        while ((at = distill__find(s, len, pos, markers[j])) != (size_t)-1) {
            if (best == (size_t)-1 || (last ? at > best : at < best)) {
                best = at;
                *mlen = strlen(markers[j]);
            }
            if (!last) break;
            pos = at + 1;
        }
    }
    return best;
}

/* Does the prompt leave a think block open? (its last opening marker is not closed after it) */
static int distill__prompt_opens_think(const char *prompt, size_t plen) {
    size_t ml, mo, mc;
    if (!prompt || plen == 0) return 0;
    mo = distill__find_marker(prompt, plen, 0, distill__think_open, 1, &ml);
    if (mo == (size_t)-1) return 0;
    mc = distill__find_marker(prompt, plen, 0, distill__think_close, 1, &ml);
    return mc == (size_t)-1 || mc < mo;
}

/* Is s[i..) at the start of a line a code fence (``` after at most 3 spaces)? Returns the offset
   just after the backticks, or (size_t)-1. */
static size_t distill__fence_at(const char *s, size_t len, size_t i) {
    int sp = 0;
    while (i < len && s[i] == ' ' && sp < 3) { i++; sp++; }
    if (i + 3 <= len && s[i] == '`' && s[i + 1] == '`' && s[i + 2] == '`') {
        i += 3;
        while (i < len && s[i] == '`') i++;
        return i;
    }
    return (size_t)-1;
}

/* Scan s[from..len) line by line for fenced blocks and report the LAST one. */
static int distill__last_fenced_block(const char *s, size_t len, size_t from, size_t *begin,
                                      size_t *end, int *closed, size_t *lang_b, size_t *lang_e) {
    size_t i = from, cb = 0, lb = 0, le = 0;
    int inside = 0, found = 0;
    /* `from` may be mid-line (just after "</think>"): a fence can start right there too. */
    while (i < len) {
        size_t eol = i, f;
        while (eol < len && s[eol] != '\n') eol++;
        f = distill__fence_at(s, eol, i);
        if (f != (size_t)-1) {
            if (!inside) {
                /* opening fence: the rest of the line is the language tag */
                size_t a = f, b = eol;
                while (a < b && (s[a] == ' ' || s[a] == '\t')) a++;
                while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t' || s[b - 1] == '\r')) b--;
                lb = a; le = b;
                cb = eol < len ? eol + 1 : len;
                inside = 1;
            } else {
                /* closing fence: the content ends before the newline that precedes it */
                size_t e = i > cb ? i - 1 : cb;
                if (e > cb && s[e - 1] == '\r') e--;
                *begin = cb; *end = e < cb ? cb : e; *closed = 1;
                *lang_b = lb; *lang_e = le;
                found = 1;
                inside = 0;
            }
        }
        i = eol < len ? eol + 1 : len;
    }
    if (inside) {
        /* no closing fence line: accept "code```" ending the last non-blank line, else the
           block is unclosed (truncated) and runs to the end of the text */
        size_t e = len;
        while (e > cb && (s[e - 1] == ' ' || s[e - 1] == '\n' || s[e - 1] == '\r' || s[e - 1] == '\t')) e--;
        *begin = cb; *lang_b = lb; *lang_e = le;
        if (e >= cb + 3 && s[e - 1] == '`' && s[e - 2] == '`' && s[e - 3] == '`') {
            e -= 3;
            while (e > cb && s[e - 1] == '`') e--;
            *end = e; *closed = 1;
        } else {
            *end = len; *closed = 0;
        }
        found = 1;
    }
    return found;
}

DISTILL_API void distill_analyze_generation(const char *prompt, size_t prompt_len,
                                            const char *text, size_t len,
                                            distill_gen_analysis *out) {
    size_t ml = 0, open_at, close_at, last_close, search_from = 0, cb = 0, ce = 0, lb = 0, le = 0;
    int closed = 0, code_allowed = 1;
    memset(out, 0, sizeof *out);
    if (!text) len = 0;
    out->open_in_prompt = distill__prompt_opens_think(prompt, prompt_len);
    if (out->open_in_prompt) {
        out->think_open = 1;
        out->think_begin = 0;
    } else if ((open_at = distill__find_marker(text, len, 0, distill__think_open, 0, &ml)) != (size_t)-1) {
        out->think_open = 1;
        out->think_begin = open_at + ml;
    }
    last_close = distill__find_marker(text, len, 0, distill__think_close, 1, &ml);
    out->think_close = last_close != (size_t)-1;
    if (out->think_open) {
        close_at = distill__find_marker(text, len, out->think_begin, distill__think_close, 0, &ml);
        out->think_both = close_at != (size_t)-1;
        out->think_end = out->think_both ? close_at : len;
    }
    /* where the answer may be: after the last closing marker; nowhere while a think block is
       still open; the whole text for a model that does not think */
    if (out->think_close) {
        distill__find_marker(text, len, last_close, distill__think_close, 0, &ml);
        search_from = last_close + ml;
    } else if (out->think_open) {
        code_allowed = 0;
    }
    if (code_allowed && distill__last_fenced_block(text, len, search_from, &cb, &ce, &closed, &lb, &le)) {
        out->has_code = 1;
        out->code_closed = closed;
        out->code_begin = cb; out->code_end = ce;
        out->lang_begin = lb; out->lang_end = le;
    }
    out->strict = out->think_close && out->has_code && out->code_closed;
}

DISTILL_API int distill_extract_code(const char *prompt, size_t prompt_len, const char *text,
                                     size_t len, size_t *begin, size_t *end, int *closed) {
    distill_gen_analysis a;
    distill_analyze_generation(prompt, prompt_len, text, len, &a);
    *begin = a.code_begin; *end = a.code_end;
    if (closed) *closed = a.code_closed;
    return a.has_code;
}

DISTILL_API int64_t distill_count_tokens(const distill_tokenizer *tok, const char *text, size_t len) {
    int64_t words = 0;
    size_t i;
    int in_word = 0;
    if (tok) {
        distill_ids ids;
        int64_t n;
        memset(&ids, 0, sizeof ids);
        if (distill_tokenizer_encode(tok, text, len, 1, &ids, NULL) == 0) {
            n = (int64_t)ids.n;
            distill_ids_free(&ids);
            return n;
        }
        distill_ids_free(&ids);   /* fall back to words on an encoding error */
    }
    for (i = 0; i < len; i++) {
        int ws = text[i] == ' ' || text[i] == '\n' || text[i] == '\t' || text[i] == '\r';
        if (!ws && !in_word) words++;
        in_word = !ws;
    }
    return words;
}

DISTILL_API void distill_sample_result_from_analysis(distill_sample_result *r,
                                                     const distill_gen_analysis *a) {
    r->think_open = a->think_open;
    r->think_close = a->think_close;
    r->think_both = a->think_both;
    r->strict = a->strict;
}

/* Score one sample: the sequence every evaluator runs (a model's generations here, generations
   read from a file, the sweep through distill_eval_model). Analyse the structure (think markers,
   code), count the think span's tokens, and ask the verifier when there is one (its 1 = pass).
   The caller sets s->problem and s->finish afterwards; reason gets the verifier's words or "". */
static void distill__score_sample(const char *prompt, size_t plen, const char *text, size_t len,
                                  const distill_tokenizer *tok, const distill_verifier *v,
                                  const distill_json *rec, distill_sample_result *s,
                                  char *reason, size_t reason_cap) {
    distill_gen_analysis a;
    memset(s, 0, sizeof *s);
    distill_analyze_generation(prompt, plen, text, len, &a);
    distill_sample_result_from_analysis(s, &a);
    s->think_tokens = a.think_open ? (double)distill_count_tokens(tok, text + a.think_begin, a.think_end - a.think_begin) : -1.0;
    s->pass = -1;
    reason[0] = 0;
    if (v && v->fn) {
        s->pass = v->fn(v->ctx, rec, text, len, reason, reason_cap) == 1;
        reason[reason_cap - 1] = 0;
    }
}

static int distill__cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}
static int distill__cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

static double distill__ratio(int64_t num, int64_t den) {
    return den > 0 ? (double)num / (double)den : NAN;
}

DISTILL_API int distill_eval_compute(const distill_sample_result *s, size_t n, const int *ks,
                                     int nk, distill_eval_metrics *out, distill_error *err) {
    int64_t stop = 0, length = 0, strict = 0, topen = 0, tclose = 0, tboth = 0;
    int64_t verified = 0, pass_c = 0, pass_t = 0;
    double *think = NULL;
    int64_t *order = NULL;
    size_t i, nthink = 0;
    int j;
    memset(out, 0, sizeof *out);
    if (nk < 0 || nk > DISTILL_EVAL_MAX_K)
        return distill__err(err, "eval: %d values of k (at most %d)", nk, DISTILL_EVAL_MAX_K);
    for (j = 0; j < nk; j++)
        if (ks[j] < 1) return distill__err(err, "eval: k must be >= 1 (got %d)", ks[j]);
    for (i = 0; i < n; i++) {
        if (s[i].problem < 0) return distill__err(err, "eval: sample %zu: negative problem index", i);
        if (s[i].pass >= 0) verified++;
    }
    if (verified != 0 && verified != (int64_t)n)
        return distill__err(err, "eval: %lld of %zu samples verified; verify all or none",
                            (long long)verified, n);
    out->n = (int64_t)n;
    out->nk = nk;
    for (j = 0; j < nk; j++) out->k[j] = ks[j];
    if (n > 0) {
        think = (double *)DISTILL_MALLOC(n * sizeof *think);
        order = (int64_t *)DISTILL_MALLOC(n * 2 * sizeof *order);
        if (!think || !order) {
            DISTILL_FREE(think); DISTILL_FREE(order);
            return distill__err(err, "eval: out of memory");
        }
    }
    for (i = 0; i < n; i++) {
        const distill_sample_result *r = &s[i];
        if (r->finish == DISTILL_FINISH_STOP) { stop++; if (r->pass > 0) pass_c++; }
        if (r->finish == DISTILL_FINISH_LENGTH) { length++; if (r->pass > 0) pass_t++; }
        if (r->finish != DISTILL_FINISH_LENGTH && r->strict) strict++;
        topen += r->think_open != 0;
        tclose += r->think_close != 0;
        tboth += r->think_both != 0;
        if (r->think_open && r->think_tokens >= 0) think[nthink++] = r->think_tokens;
        /* (problem, pass) pairs, sorted below to group the samples of each problem */
        order[2 * i] = r->problem;
        order[2 * i + 1] = r->pass > 0;
    }
    out->n_finish_known = stop + length;
    out->n_completed = stop;
    out->n_truncated = length;
    out->completion_rate = distill__ratio(stop, stop + length);
    out->strict_completion_rate = distill__ratio(strict, (int64_t)n);
    out->think_open_rate = distill__ratio(topen, (int64_t)n);
    out->think_close_rate = distill__ratio(tclose, (int64_t)n);
    out->think_both_rate = distill__ratio(tboth, (int64_t)n);
    out->n_think = (int64_t)nthink;
    out->think_tokens_mean = out->think_tokens_median = NAN;
    if (nthink > 0) {
        double sum = 0.0;
        for (i = 0; i < nthink; i++) sum += think[i];
        out->think_tokens_mean = sum / (double)nthink;
        qsort(think, nthink, sizeof *think, distill__cmp_double);
        out->think_tokens_median = nthink % 2 ? think[nthink / 2]
                                              : 0.5 * (think[nthink / 2 - 1] + think[nthink / 2]);
    }
    /* per-problem counts: sort the pairs by problem, then walk the runs */
    if (n > 0) qsort(order, n, 2 * sizeof *order, distill__cmp_i64);
    {
        int64_t problems = 0;
        double sum1 = 0.0, sumk[DISTILL_EVAL_MAX_K];
        int64_t cntk[DISTILL_EVAL_MAX_K];
        for (j = 0; j < nk; j++) { sumk[j] = 0.0; cntk[j] = 0; }
        i = 0;
        while (i < n) {
            size_t e = i;
            int64_t np = 0, cp = 0;
            while (e < n && order[2 * e] == order[2 * i]) { np++; cp += order[2 * e + 1]; e++; }
            problems++;
            sum1 += (double)cp / (double)np;
            for (j = 0; j < nk; j++)
                if (np >= ks[j]) { sumk[j] += distill_pass_at_k(np, cp, ks[j]); cntk[j]++; }
            i = e;
        }
        out->n_problems = problems;
        out->verified = verified > 0;
        out->pass_at_1 = problems > 0 ? sum1 / (double)problems : NAN;
        for (j = 0; j < nk; j++) {
            out->pass_at_k[j] = cntk[j] > 0 ? sumk[j] / (double)cntk[j] : NAN;
            out->pass_at_k_problems[j] = cntk[j];
        }
    }
    out->accuracy_completed = distill__ratio(pass_c, stop);
    out->accuracy_truncated = distill__ratio(pass_t, length);
    DISTILL_FREE(think);
    DISTILL_FREE(order);
    return 0;
}

/* A JSON number, or null for NaN/inf (JSON has neither). */
static void distill__json_num(FILE *f, double x) {
    if (x != x || x > DBL_MAX || x < -DBL_MAX) fputs("null", f);
    else if (x == floor(x) && fabs(x) < 1e15) fprintf(f, "%.0f", x);
    else fprintf(f, "%.10g", x);
}

static void distill__eval_write_members(FILE *f, const distill_eval_metrics *m,
                                        const char *think_unit) {
    int j;
    fprintf(f, "\"n\":%lld,\"n_problems\":%lld", (long long)m->n, (long long)m->n_problems);
    fputs(",\"completion_rate\":", f); distill__json_num(f, m->completion_rate);
    fputs(",\"strict_completion_rate\":", f); distill__json_num(f, m->strict_completion_rate);
    fputs(",\"think_open_rate\":", f); distill__json_num(f, m->think_open_rate);
    fputs(",\"think_close_rate\":", f); distill__json_num(f, m->think_close_rate);
    fputs(",\"think_both_rate\":", f); distill__json_num(f, m->think_both_rate);
    fputs(",\"think_tokens_mean\":", f); distill__json_num(f, m->think_tokens_mean);
    fputs(",\"think_tokens_median\":", f); distill__json_num(f, m->think_tokens_median);
    fprintf(f, ",\"think_tokens_unit\":\"%s\"", think_unit ? think_unit : "tokens");
    fprintf(f, ",\"n_completed\":%lld,\"n_truncated\":%lld,\"n_finish_known\":%lld,\"n_think\":%lld",
            (long long)m->n_completed, (long long)m->n_truncated, (long long)m->n_finish_known,
            (long long)m->n_think);
    if (m->verified) {
        fputs(",\"pass_at_1\":", f); distill__json_num(f, m->pass_at_1);
        fputs(",\"pass_at_k\":{", f);
        for (j = 0; j < m->nk; j++) {
            fprintf(f, "%s\"%d\":", j ? "," : "", m->k[j]);
            distill__json_num(f, m->pass_at_k[j]);
        }
        fputs("}", f);
        fputs(",\"accuracy_completed\":", f); distill__json_num(f, m->accuracy_completed);
        fputs(",\"accuracy_truncated\":", f); distill__json_num(f, m->accuracy_truncated);
    }
}

DISTILL_API int distill_eval_write_json(FILE *f, const distill_sample_result *s, size_t n,
                                        const char *const *difficulty, size_t n_difficulty,
                                        const int *ks, int nk, const char *think_unit,
                                        distill_error *err) {
    distill_eval_metrics m;
    distill_sample_result *sub = NULL;
    const char **labels = NULL;
    size_t i, nl = 0;
    int rc = 0;
    if (distill_eval_compute(s, n, ks, nk, &m, err)) return -1;
    fputc('{', f);
    distill__eval_write_members(f, &m, think_unit);
    if (difficulty) {
        /* distinct labels in order of first appearance among the samples */
        sub = n ? (distill_sample_result *)DISTILL_MALLOC(n * sizeof *sub) : NULL;
        labels = n ? (const char **)DISTILL_MALLOC(n * sizeof *labels) : NULL;
        if (n && (!sub || !labels)) { rc = distill__err(err, "eval: out of memory"); goto done; }
        for (i = 0; i < n; i++) {
            const char *d;
            size_t j;
            if ((size_t)s[i].problem >= n_difficulty) {
                rc = distill__err(err, "eval: sample %zu: problem %lld has no difficulty entry",
                                  i, (long long)s[i].problem);
                goto done;
            }
            d = difficulty[s[i].problem];
            if (!d) continue;
            for (j = 0; j < nl; j++) if (!strcmp(labels[j], d)) break;
            if (j == nl) labels[nl++] = d;
        }
        if (nl > 0) {
            fputs(",\"per_difficulty\":{", f);
            for (i = 0; i < nl; i++) {
                size_t j, ns = 0;
                distill_eval_metrics md;
                for (j = 0; j < n; j++) {
                    const char *d = difficulty[s[j].problem];
                    if (d && !strcmp(d, labels[i])) sub[ns++] = s[j];
                }
                if (distill_eval_compute(sub, ns, ks, nk, &md, err)) { rc = -1; goto done; }
                if (i) fputc(',', f);
                distill_json_write_string(f, labels[i], strlen(labels[i]));
                fputs(":{", f);
                distill__eval_write_members(f, &md, think_unit);
                fputc('}', f);
            }
            fputc('}', f);
        }
    }
    fputs("}\n", f);
done:
    DISTILL_FREE(sub);
    DISTILL_FREE(labels);
    return rc;
}

static void distill__json_str_or_null(FILE *f, const char *s) {
    if (s) distill_json_write_string(f, s, strlen(s));
    else fputs("null", f);
}

DISTILL_API void distill_write_generation_jsonl(FILE *f, const distill_generation_record *g) {
    distill_gen_analysis a;
    const char *text = g->text ? g->text : "";
    distill_analyze_generation(g->prompt, g->prompt_len, text, g->text ? g->text_len : 0, &a);
    fputs("{\"question_id\":", f); distill__json_str_or_null(f, g->question_id);
    fprintf(f, ",\"sample\":%lld", (long long)g->sample);
    fputs(",\"difficulty\":", f); distill__json_str_or_null(f, g->difficulty);
    fprintf(f, ",\"finish_reason\":\"%s\"", distill_finish_name(g->finish));
    fprintf(f, ",\"pass\":%s", g->pass < 0 ? "null" : g->pass ? "true" : "false");
    fputs(",\"reason\":", f); distill__json_str_or_null(f, g->reason);
    fputs(",\"code\":", f);
    if (a.has_code) distill_json_write_string(f, text + a.code_begin, a.code_end - a.code_begin);
    else fputs("null", f);
    fputs(",\"lang\":", f);
    if (a.has_code) distill_json_write_string(f, text + a.lang_begin, a.lang_end - a.lang_begin);
    else fputs("null", f);
    fprintf(f, ",\"code_closed\":%s,\"think_open\":%s,\"think_close\":%s,\"strict\":%s",
            a.has_code && a.code_closed ? "true" : "false", a.think_open ? "true" : "false",
            a.think_close ? "true" : "false", a.strict ? "true" : "false");
    fputs(",\"think_tokens\":", f);
    distill__json_num(f, g->think_tokens >= 0 ? g->think_tokens : NAN);
    fputs(",\"output_tokens\":", f);
    if (g->output_tokens >= 0) fprintf(f, "%lld", (long long)g->output_tokens);
    else fputs("null", f);
    fputs(",\"text\":", f);
    distill_json_write_string(f, text, g->text ? g->text_len : 0);
    fputs("}\n", f);
}

/* ---- Scoring a generations file ---------------------------------------------------------- */

/* A string -> index map (open addressing, FNV-1a) for question ids. */
typedef struct distill__strmap {
    char **keys;
    int64_t *vals;
    size_t n, cap;   /* cap: power of two slots */
} distill__strmap;

static uint64_t distill__fnv1a(const char *s, size_t len) {
    uint64_t h = 1469598103934665603ull;
    size_t i;
    for (i = 0; i < len; i++) { h ^= (unsigned char)s[i]; h *= 1099511628211ull; }
    return h;
}

static void distill__strmap_free(distill__strmap *m) {
    size_t i;
    for (i = 0; i < m->cap; i++) DISTILL_FREE(m->keys[i]);
    DISTILL_FREE(m->keys);
    DISTILL_FREE(m->vals);
    memset(m, 0, sizeof *m);
}

/* Look s up; if absent insert it with value `val_if_new`. Returns the value, -1 out of memory. */
static int64_t distill__strmap_get_or_add(distill__strmap *m, const char *s, int64_t val_if_new) {
    size_t len = strlen(s), i;
    if (2 * (m->n + 1) > m->cap) {   /* keep the load under one half */
        distill__strmap big;
        big.cap = m->cap ? 2 * m->cap : 64;
        big.n = 0;
        big.keys = (char **)DISTILL_MALLOC(big.cap * sizeof *big.keys);
        big.vals = (int64_t *)DISTILL_MALLOC(big.cap * sizeof *big.vals);
        if (!big.keys || !big.vals) { DISTILL_FREE(big.keys); DISTILL_FREE(big.vals); return -1; }
        memset(big.keys, 0, big.cap * sizeof *big.keys);
        for (i = 0; i < m->cap; i++) {
            if (m->keys[i]) {
                size_t j = (size_t)distill__fnv1a(m->keys[i], strlen(m->keys[i])) & (big.cap - 1);
                while (big.keys[j]) j = (j + 1) & (big.cap - 1);
                big.keys[j] = m->keys[i];
                big.vals[j] = m->vals[i];
                big.n++;
            }
        }
        DISTILL_FREE(m->keys);
        DISTILL_FREE(m->vals);
        *m = big;
    }
    i = (size_t)distill__fnv1a(s, len) & (m->cap - 1);
    while (m->keys[i]) {
        if (!strcmp(m->keys[i], s)) return m->vals[i];
        i = (i + 1) & (m->cap - 1);
    }
    m->keys[i] = distill__strdup(s);
    if (!m->keys[i]) return -1;
    m->vals[i] = val_if_new;
    m->n++;
    return val_if_new;
}

/* A string or integer JSON value as text in buf ("" when it is neither). */
static const char *distill__json_scalar_text(const distill_json *v, char *buf, size_t cap) {
    buf[0] = 0;
    if (!v) return NULL;
    if (v->type == DISTILL_JSON_STRING) return v->str;
    if (v->type == DISTILL_JSON_NUMBER) {
        if (v->is_int) snprintf(buf, cap, "%lld", (long long)v->i64);
        else snprintf(buf, cap, "%.17g", v->num);
        return buf;
    }
    return NULL;
}

/* The difficulty label of a record: "difficulty_label", "difficulty" (string, or a number
   written as text) or "meta.difficulty"; NULL when none. */
static const char *distill__record_difficulty(const distill_json *rec, char *buf, size_t cap) {
    const distill_json *v = distill_json_get(rec, "difficulty_label");
    if (!v || v->type != DISTILL_JSON_STRING) v = distill_json_get(rec, "difficulty");
    if (!v) v = distill_json_path(rec, "meta.difficulty");
    return distill__json_scalar_text(v, buf, cap);
}

/* The question id of a record, or NULL. */
static const char *distill__record_id(const distill_json *rec, char *buf, size_t cap) {
    const char *q = distill__json_scalar_text(distill_json_get(rec, "question_id"), buf, cap);
    if (!q) q = distill__json_scalar_text(distill_json_get(rec, "id"), buf, cap);
    if (!q) q = distill__json_scalar_text(distill_json_get(rec, "task_id"), buf, cap);
    return q;
}

DISTILL_API int distill_eval_generations_file(const char *path, const distill_eval_file_options *o,
                                              FILE *results, distill_error *err) {
    static const int k1 = 1;
    const char *field = o && o->field ? o->field : "text";
    const char *prompt_field = o && o->prompt_field ? o->prompt_field : "prompt";
    const int *ks = o && o->ks ? o->ks : &k1;
    int nk = o && o->ks ? o->nk : 1;
    distill_line_reader *lr = NULL;
    distill_sample_result *res = NULL;
    char **diff = NULL;          /* difficulty label per problem (owned) */
    int64_t *seen = NULL;        /* samples so far per problem */
    size_t nres = 0, capres = 0, ndiff = 0, capdiff = 0, i;
    int64_t nprob = 0, line_no = 0;
    distill__strmap ids;
    distill_atomic_file af;
    int have_af = 0, rc = -1;
    const char *line;
    size_t len;
    int r;

    memset(&ids, 0, sizeof ids);
    lr = distill_line_reader_open(path, 0, err);
    if (!lr) return -1;
    if (o && o->out_jsonl) {
        if (distill_atomic_open(&af, o->out_jsonl, err)) goto done;
        have_af = 1;
    }
    while ((r = distill_line_reader_next(lr, &line, &len, &line_no, err)) == 1) {
        distill_json *rec;
        const distill_json *t, *v;
        distill_sample_result *s;
        distill_generation_record g;
        char idbuf[64], diffbuf[64], reason[512];
        const char *qid, *d = NULL, *prompt = NULL;
        size_t plen = 0, k;
        int64_t prob;
        int blank = 1;
        for (k = 0; k < len; k++)
            if (line[k] != ' ' && line[k] != '\t' && line[k] != '\r') { blank = 0; break; }
        if (blank) continue;
        rec = distill_json_parse(line, len, path, (int)line_no, err);
        if (!rec) goto done;
        if (rec->type != DISTILL_JSON_OBJECT) {
            distill__err(err, "%s:%lld: expected a JSON object per line, got %s", path,
                         (long long)line_no, distill_json_type_name(rec->type));
            distill_json_free(rec);
            goto done;
        }
        t = distill_json_path(rec, field);
        if (!t || t->type != DISTILL_JSON_STRING) {
            distill__err(err, "%s:%lld: field '%s': %s", path, (long long)line_no, field,
                         t ? "expected a string" : "missing");
            distill_json_free(rec);
            goto done;
        }
        /* the problem this sample answers */
        qid = distill__record_id(rec, idbuf, sizeof idbuf);
        if (qid) {
            prob = distill__strmap_get_or_add(&ids, qid, nprob);
            if (prob < 0) { distill__err(err, "eval: out of memory"); distill_json_free(rec); goto done; }
        } else {
            prob = nprob;
        }
        d = distill__record_difficulty(rec, diffbuf, sizeof diffbuf);
        if (prob == nprob) {   /* a new problem: remember its difficulty */
            if (ndiff == capdiff) {
                size_t nc = capdiff ? 2 * capdiff : 64;
                char **nd = (char **)DISTILL_REALLOC(diff, nc * sizeof *nd);
                int64_t *ns;
                if (nd) diff = nd;
                ns = nd ? (int64_t *)DISTILL_REALLOC(seen, nc * sizeof *ns) : NULL;
                if (!ns) { distill__err(err, "eval: out of memory"); distill_json_free(rec); goto done; }
                seen = ns; capdiff = nc;
            }
            diff[ndiff] = d ? distill__strdup(d) : NULL;
            seen[ndiff] = 0;
            ndiff++;
            nprob++;
        }
        v = distill_json_path(rec, prompt_field);
        if (v && v->type == DISTILL_JSON_STRING) { prompt = v->str; plen = v->len; }
        if (o && o->think_in_prompt) { prompt = "<think>"; plen = 7; }

        if (nres == capres) {
            size_t nc = capres ? 2 * capres : 256;
            distill_sample_result *nr = (distill_sample_result *)DISTILL_REALLOC(res, nc * sizeof *nr);
            if (!nr) { distill__err(err, "eval: out of memory"); distill_json_free(rec); goto done; }
            res = nr; capres = nc;
        }
        s = &res[nres++];
        distill__score_sample(prompt, plen, t->str, t->len, o ? o->tok : NULL, o ? o->verifier : NULL, rec, s,
                              reason, sizeof reason);
        s->problem = prob;
        v = distill_json_get(rec, "finish_reason");
        s->finish = distill_finish_parse(v && v->type == DISTILL_JSON_STRING ? v->str : NULL);
        if (!(o && o->verifier && o->verifier->fn)) {
            v = distill_json_get(rec, "pass");
            if (v && (v->type == DISTILL_JSON_TRUE || v->type == DISTILL_JSON_FALSE))
                s->pass = v->type == DISTILL_JSON_TRUE;
        }
        if (have_af) {
            memset(&g, 0, sizeof g);
            g.question_id = qid;
            g.sample = seen[prob];
            g.difficulty = d;
            g.prompt = prompt; g.prompt_len = plen;
            g.text = t->str; g.text_len = t->len;
            g.finish = s->finish;
            g.pass = s->pass;
            g.reason = reason[0] ? reason : NULL;
            g.output_tokens = -1;
            g.think_tokens = s->think_tokens;
            distill_write_generation_jsonl(af.f, &g);
        }
        seen[prob]++;
        distill_json_free(rec);
    }
    if (r < 0) goto done;
    for (i = 0; i < nres; i++) {
        if ((res[i].pass >= 0) != (res[0].pass >= 0)) {
            distill__err(err, "%s: some lines have a boolean \"pass\" and others do not", path);
            goto done;
        }
    }
    if (distill_eval_write_json(results, res, nres, (const char *const *)diff, ndiff, ks, nk,
                                o && o->tok ? "tokens" : "words", err))
        goto done;
    if (have_af) { have_af = 0; if (distill_atomic_commit(&af, err)) goto done; }
    rc = 0;
done:
    if (have_af) distill_atomic_abort(&af);
    distill_line_reader_close(lr);
    for (i = 0; i < ndiff; i++) DISTILL_FREE(diff[i]);
    DISTILL_FREE(diff);
    DISTILL_FREE(seen);
    DISTILL_FREE(res);
    distill__strmap_free(&ids);
    return rc;
}

/* ---- Inference with a KV cache ----------------------------------------------------------- */

/* Rows per forward chunk: prompts are prefilled this many tokens at a time, which bounds the
   scratch memory whatever the prompt length. */
#define DISTILL__GEN_CHUNK 64

struct distill_generator {
    const distill_model *m;
    int B, S, R;               /* sequences, positions per sequence, rows per chunk */
    int *len;                  /* (B) cached positions per sequence */
    float *kc, *vc;            /* (L,B,S,KVD) */
    /* scratch for R rows */
    float *x, *xb, *q, *k, *v, *att, *gate, *up, *tmp, *rstd, *lg;
    int32_t *pos;
    int *rowseq;
};

DISTILL_API void distill_generator_free(distill_generator *g) {
    if (!g) return;
    distill_free_aligned(g->kc); distill_free_aligned(g->vc);
    distill_free_aligned(g->x); distill_free_aligned(g->xb); distill_free_aligned(g->q);
    distill_free_aligned(g->k); distill_free_aligned(g->v); distill_free_aligned(g->att);
    distill_free_aligned(g->gate); distill_free_aligned(g->up); distill_free_aligned(g->tmp);
    distill_free_aligned(g->rstd); distill_free_aligned(g->lg);
    DISTILL_FREE(g->pos); DISTILL_FREE(g->rowseq); DISTILL_FREE(g->len);
    DISTILL_FREE(g);
}

/* rows * cols floats, aligned, or NULL on overflow/failure */
static float *distill__gen_alloc(size_t rows, size_t cols) {
    size_t n, bytes;
    if (!distill__mul_size(rows, cols, &n) || !distill__mul_size(n, sizeof(float), &bytes)) return NULL;
    return (float *)distill_alloc_aligned(bytes ? bytes : sizeof(float), 64);
}

DISTILL_API distill_generator *distill_generator_create(const distill_model *m, int max_batch,
                                                        int max_seq, distill_error *err) {
    distill_generator *g;
    const distill_config *c;
    size_t kvd, cache;
    if (!m) { distill__err(err, "generator: model is NULL"); return NULL; }
    c = &m->cfg;
    if (distill_config_validate(c, err)) return NULL;
    if (max_batch < 1 || max_batch > (1 << 16)) { distill__err(err, "generator: max_batch (%d) must be in 1..65536", max_batch); return NULL; }
    if (max_seq < 1 || max_seq > (1 << 24)) { distill__err(err, "generator: max_seq (%d) must be in 1..16777216", max_seq); return NULL; }
    g = (distill_generator *)DISTILL_MALLOC(sizeof *g);
    if (!g) { distill__err(err, "generator: out of memory"); return NULL; }
    memset(g, 0, sizeof *g);
    g->m = m; g->B = max_batch; g->S = max_seq;
    g->R = max_batch > DISTILL__GEN_CHUNK ? max_batch : DISTILL__GEN_CHUNK;
    kvd = (size_t)c->n_kv_heads * (size_t)distill_config_head_dim(c);
    /* the cache: L * B * S * KVD floats, twice */
    if (!distill__mul_size((size_t)c->n_layers * (size_t)max_batch, (size_t)max_seq, &cache) ||
        !distill__mul_size(cache, kvd, &cache)) {
        distill__err(err, "generator: KV cache size overflows");
        distill_generator_free(g);
        return NULL;
    }
    g->kc = distill__gen_alloc(cache, 1);
    g->vc = distill__gen_alloc(cache, 1);
    g->x = distill__gen_alloc((size_t)g->R, (size_t)c->dim);
    g->xb = distill__gen_alloc((size_t)g->R, (size_t)c->dim);
    g->q = distill__gen_alloc((size_t)g->R, (size_t)c->n_heads * (size_t)distill_config_head_dim(c));
    g->k = distill__gen_alloc((size_t)g->R, kvd);
    g->v = distill__gen_alloc((size_t)g->R, kvd);
    g->att = distill__gen_alloc((size_t)g->R, (size_t)c->n_heads * (size_t)distill_config_head_dim(c));
    g->gate = distill__gen_alloc((size_t)g->R, (size_t)c->hidden_dim);
    g->up = distill__gen_alloc((size_t)g->R, (size_t)c->hidden_dim);
    g->tmp = distill__gen_alloc((size_t)g->R, (size_t)c->dim);
    g->rstd = distill__gen_alloc((size_t)g->R, (size_t)c->n_heads);   /* per row; per head for qk_norm */
    g->lg = distill__gen_alloc((size_t)g->R, (size_t)c->vocab_size);
    g->pos = (int32_t *)DISTILL_MALLOC((size_t)g->R * sizeof *g->pos);
    g->rowseq = (int *)DISTILL_MALLOC((size_t)g->R * sizeof *g->rowseq);
    g->len = (int *)DISTILL_MALLOC((size_t)max_batch * sizeof *g->len);
    if (!g->kc || !g->vc || !g->x || !g->xb || !g->q || !g->k || !g->v || !g->att || !g->gate ||
        !g->up || !g->tmp || !g->rstd || !g->lg || !g->pos || !g->rowseq || !g->len) {
        distill__err(err, "generator: out of memory (KV cache of %zu MiB)",
                     2 * cache * sizeof(float) >> 20);
        distill_generator_free(g);
        return NULL;
    }
    memset(g->len, 0, (size_t)max_batch * sizeof *g->len);
    return g;
}

DISTILL_API void distill_generator_reset(distill_generator *g, int b) {
    if (b < 0) memset(g->len, 0, (size_t)g->B * sizeof *g->len);
    else if (b < g->B) g->len[b] = 0;
}

DISTILL_API int distill_generator_length(const distill_generator *g, int b) {
    return b >= 0 && b < g->B ? g->len[b] : 0;
}

DISTILL_API void distill_generator_copy(distill_generator *g, int dst, int src) {
    const distill_config *c = &g->m->cfg;
    size_t kvd = (size_t)c->n_kv_heads * (size_t)distill_config_head_dim(c), l;
    if (dst < 0 || src < 0 || dst >= g->B || src >= g->B || dst == src) return;
    for (l = 0; l < (size_t)c->n_layers; l++) {
        size_t so = ((l * (size_t)g->B + (size_t)src) * (size_t)g->S) * kvd;
        size_t d0 = ((l * (size_t)g->B + (size_t)dst) * (size_t)g->S) * kvd;
        memcpy(g->kc + d0, g->kc + so, (size_t)g->len[src] * kvd * sizeof(float));
        memcpy(g->vc + d0, g->vc + so, (size_t)g->len[src] * kvd * sizeof(float));
    }
    g->len[dst] = g->len[src];
}

/* Attention of the chunk's rows over the cache, the same arithmetic as the model's
   distill_attention_forward (blocks of DISTILL__ATT_BLOCK keys with an online softmax), so the
   cached path reproduces the full forward:
       s_j = q . k_j / sqrt(HS) for j = 0..pos,   out = sum_j softmax(s)_j v_j
   q (R,NH,HS), out (R,NH,HS), cache (B,S,NKV,HS) of this layer. Query head h reads kv head
   h / (NH/NKV). One task per (row, head). */
#define DISTILL__GEN_ATT_BLOCK 64
typedef struct {
    float *out;
    const float *q, *kc, *vc;
    const int32_t *pos;
    const int *seq;
    int NH, NKV, HS, S;
} distill__gen_att_ctx;

static void distill__gen_att_task(void *p, int64_t b0, int64_t e0, int th) {
    const distill__gen_att_ctx *c = (const distill__gen_att_ctx *)p;
    const distill__isa_ops *ops = distill__ops();
    int NH = c->NH, NKV = c->NKV, HS = c->HS, rep = NH / NKV;
    float scale = 1.0f / sqrtf((float)HS), s[DISTILL__GEN_ATT_BLOCK];
    int64_t task;
    (void)th;
    for (task = b0; task < e0; task++) {
        int r = (int)(task / NH), h = (int)(task % NH), g = h / rep, t = c->pos[r], j0, jj;
        const float *qr = c->q + ((size_t)r * NH + h) * HS;
        const float *kb = c->kc + (size_t)c->seq[r] * c->S * NKV * HS;
        const float *vb = c->vc + (size_t)c->seq[r] * c->S * NKV * HS;
        float *o = c->out + ((size_t)r * NH + h) * HS;
        float m = -INFINITY, l = 0.0f;
        memset(o, 0, sizeof(float) * (size_t)HS);
        for (j0 = 0; j0 <= t; j0 += DISTILL__GEN_ATT_BLOCK) {
            int nb = t + 1 - j0 < DISTILL__GEN_ATT_BLOCK ? t + 1 - j0 : DISTILL__GEN_ATT_BLOCK;
            float mb;
            /* the block's scores as one matrix-vector product over its keys (rows NKV*HS apart) */
            ops->gemv(s, qr, kb + ((size_t)j0 * NKV + g) * HS, (size_t)NKV * HS, nb, HS);
            for (jj = 0; jj < nb; jj++) s[jj] *= scale;
            mb = distill_vec_max(s, nb);
            if (mb > m) {   /* rescale what was accumulated under the old max */
                float corr = expf(m - mb);
                distill_vec_scale(o, corr, HS);
                l *= corr;
                m = mb;
            }
            l += distill_vec_exp_sum(s, s, m, nb);
            for (jj = 0; jj < nb; jj++)
                distill_vec_axpy(o, s[jj], vb + ((size_t)(j0 + jj) * NKV + g) * HS, HS);
        }
        distill_vec_scale(o, 1.0f / l, HS);
    }
}

/* Matrix-vector products for decoding: out (r,OC) = inp (r,C) . weight (OC,C)^T + bias, for a
   few rows r, for up to three weights at once (q, k, v; gate, up) in one pool job. The
   general matmul packs the weight for its blocked kernel, which pays off for many rows but for
   one row per sequence costs more than the product itself; here each weight is streamed from
   memory once, in blocks of rows (~16 KB) that stay in L1 while all r inputs are dotted with
   them (distill__gemv), the blocks handed out to the threads. Each output is written by one
   thread with the same arithmetic, so the result does not depend on the thread count. One job
   per group of weights instead of one per weight saves pool hand-offs in every layer. */
#define DISTILL__GEN_GEMV_ROWS 16
typedef struct { float *out; const float *weight, *bias; const uint16_t *w16; int OC; } distill__gemv_seg;
typedef struct {
    const float *inp;
    int r, C, rows_per_block;
    distill__gemv_seg seg[3];
    int64_t first_block[4];       /* blocks of weight s: [first_block[s], first_block[s + 1]) */
    const distill__isa_ops *ops;
} distill__gemv_ctx;
static void distill__gemv_task(void *p, int64_t b, int64_t e, int th) {
    const distill__gemv_ctx *c = (const distill__gemv_ctx *)p;
    int64_t blk;
    int s = 0, i, j;
    (void)th;
    for (blk = b; blk < e; blk++) {
        const distill__gemv_seg *sg;
        int o0, rows;
        while (blk >= c->first_block[s + 1]) s++;
        sg = &c->seg[s];
        o0 = (int)(blk - c->first_block[s]) * c->rows_per_block;
        rows = sg->OC - o0 < c->rows_per_block ? sg->OC - o0 : c->rows_per_block;
        for (i = 0; i < c->r; i++) {
            float *y = sg->out + (size_t)i * sg->OC + o0;
            if (sg->w16) c->ops->gemv16(y, c->inp + (size_t)i * c->C, sg->w16 + (size_t)o0 * c->C, (size_t)c->C, rows, c->C);
            else c->ops->gemv(y, c->inp + (size_t)i * c->C, sg->weight + (size_t)o0 * c->C, (size_t)c->C, rows, c->C);
            if (sg->bias) for (j = 0; j < rows; j++) y[j] += sg->bias[o0 + j];
        }
    }
}
/* n_seg (1..3) products sharing the input: out_s (r,OC_s) = inp (r,C) . weight_s^T + bias_s;
   bf16: a model in DISTILL_PRECISION_BF16, whose prefill (the blocked matmul) runs in BF16.
   A weight held in BF16 (seg.w16, weight NULL) streams half the bytes: decoding is memory-bound. */
static void distill__gen_matmul_n(int bf16, const float *inp, int r, int C, int n_seg, const distill__gemv_seg *seg) {
    distill__gemv_ctx c;
    int s;
    int64_t chunk;
    if (r > DISTILL__GEN_GEMV_ROWS) {
        for (s = 0; s < n_seg; s++)
            distill__mm_forward(bf16, seg[s].out, inp, seg[s].weight, seg[s].w16, seg[s].bias, r, C, seg[s].OC);
        return;
    }
    c.inp = inp; c.r = r; c.C = C; c.ops = distill__ops();
    /* Rows per block, a multiple of 4: ~16 KB of weights, which stay in L1 while the r inputs
       are dotted with them. One input reads each weight once, and there blocks of ~128 KB
       (fewer, longer calls) streamed 1.4x faster on a Zen5 core (15M model, batch-1 FP32
       decode, 1 thread: 1.60 -> 1.15 ms per step), as long as every thread still gets ~4. */
    if (r == 1) {
        int64_t rows = 0, cap;
        for (s = 0; s < n_seg; s++) rows += seg[s].OC;
        cap = rows / (4 * (int64_t)distill_get_threads());
        c.rows_per_block = 32768 / (C > 0 ? C : 1);
        if (c.rows_per_block > cap) c.rows_per_block = (int)cap;
    } else {
        c.rows_per_block = 4096 / (C > 0 ? C : 1);
    }
    c.rows_per_block = c.rows_per_block / 4 * 4;
    if (c.rows_per_block < 4) c.rows_per_block = 4;
    c.first_block[0] = 0;
    for (s = 0; s < 3; s++) {
        if (s < n_seg) c.seg[s] = seg[s];
        c.first_block[s + 1] = c.first_block[s] + (s < n_seg ? (seg[s].OC + c.rows_per_block - 1) / c.rows_per_block : 0);
    }
    /* about 8 chunks per thread: whoever finishes early takes more */
    chunk = c.first_block[3] / (8 * (int64_t)distill_get_threads());
    distill_parallel_for(c.first_block[3], chunk < 1 ? 1 : chunk, distill__gemv_task, &c);
}
static void distill__gen_matmul(int bf16, float *out, const float *inp, const float *weight, const uint16_t *w16,
                                const float *bias, int r, int C, int OC) {
    distill__gemv_seg sg;
    sg.out = out; sg.weight = weight; sg.w16 = w16; sg.bias = bias; sg.OC = OC;
    distill__gen_matmul_n(bf16, inp, r, C, 1, &sg);
}

/* One chunk of r rows whose positions and sequences are in g->pos / g->rowseq and whose
   embeddings are in g->x. Leaves the final-norm output in g->xb. */
static void distill__gen_chunk(distill_generator *g, int r) {
    const distill_model *m = g->m;
    const distill_config *c = &m->cfg;
    int C = c->dim, F = c->hidden_dim, NH = c->n_heads, NKV = c->n_kv_heads, HS = distill_config_head_dim(c);
    int KVD = NKV * HS, l, i;
    const double *inv_freq = ((const distill__state *)m->internal)->inv_freq;
    const distill__state *s = (const distill__state *)m->internal;
    int bf16 = s->bf16;
    distill__gen_att_ctx ac;
    distill__gemv_seg seg[3];
    for (l = 0; l < c->n_layers; l++) {
        const struct distill_layer_params *p = &m->layers[l];
        float *kc = g->kc + (size_t)l * g->B * g->S * KVD, *vc = g->vc + (size_t)l * g->B * g->S * KVD;
        /* attention block: x += Wo . attention(rope(Wq a), rope(Wk a), Wv a),  a = rmsnorm(x) */
        distill_rmsnorm_forward(g->xb, g->rstd, g->x, p->attn_norm, r, C, c->norm_eps);
        seg[0].out = g->q; seg[0].weight = p->wq; seg[0].w16 = DISTILL__W16(s, l, wq); seg[0].bias = p->bq; seg[0].OC = NH * HS;
        seg[1].out = g->k; seg[1].weight = p->wk; seg[1].w16 = DISTILL__W16(s, l, wk); seg[1].bias = p->bk; seg[1].OC = KVD;
        seg[2].out = g->v; seg[2].weight = p->wv; seg[2].w16 = DISTILL__W16(s, l, wv); seg[2].bias = p->bv; seg[2].OC = KVD;
        distill__gen_matmul_n(bf16, g->xb, r, C, 3, seg);   /* q, k, v in one job */
        if (c->qk_norm) {   /* Qwen3: each head's q and k RMS-normalised, in place */
            distill_rmsnorm_forward(g->q, g->rstd, g->q, p->q_norm, r * NH, HS, c->norm_eps);
            distill_rmsnorm_forward(g->k, g->rstd, g->k, p->k_norm, r * NKV, HS, c->norm_eps);
        }
        distill_rope_forward_freqs(g->q, g->pos, r, NH, HS, inv_freq);
        distill_rope_forward_freqs(g->k, g->pos, r, NKV, HS, inv_freq);
        for (i = 0; i < r; i++) {   /* append this chunk's keys and values to the cache */
            size_t at = ((size_t)g->rowseq[i] * g->S + (size_t)g->pos[i]) * KVD;
            memcpy(kc + at, g->k + (size_t)i * KVD, sizeof(float) * (size_t)KVD);
            memcpy(vc + at, g->v + (size_t)i * KVD, sizeof(float) * (size_t)KVD);
        }
        ac.out = g->att; ac.q = g->q; ac.kc = kc; ac.vc = vc; ac.pos = g->pos; ac.seq = g->rowseq;
        ac.NH = NH; ac.NKV = NKV; ac.HS = HS; ac.S = g->S;
        distill_parallel_for((int64_t)r * NH, 1, distill__gen_att_task, &ac);
        distill__gen_matmul(bf16, g->tmp, g->att, p->wo, DISTILL__W16(s, l, wo), NULL, r, NH * HS, C);
        distill_vec_axpy(g->x, 1.0f, g->tmp, r * C);   /* x = o + x, the model's residual order */
        /* MLP block: x += Wd (silu(Wg f) * (Wu f)),  f = rmsnorm(x) */
        distill_rmsnorm_forward(g->xb, g->rstd, g->x, p->ffn_norm, r, C, c->norm_eps);
        seg[0].out = g->gate; seg[0].weight = p->w_gate; seg[0].w16 = DISTILL__W16(s, l, w_gate); seg[0].bias = NULL; seg[0].OC = F;
        seg[1].out = g->up; seg[1].weight = p->w_up; seg[1].w16 = DISTILL__W16(s, l, w_up); seg[1].bias = NULL; seg[1].OC = F;
        distill__gen_matmul_n(bf16, g->xb, r, C, 2, seg);   /* gate and up in one job */
        distill_swiglu_forward(g->gate, g->gate, g->up, (size_t)r * F);
        distill__gen_matmul(bf16, g->tmp, g->gate, p->w_down, DISTILL__W16(s, l, w_down), NULL, r, F, C);
        distill_vec_axpy(g->x, 1.0f, g->tmp, r * C);
    }
    distill_rmsnorm_forward(g->xb, g->rstd, g->x, m->final_norm, r, C, c->norm_eps);
}

DISTILL_API int distill_generator_forward(distill_generator *g, const int *seq,
                                          const int32_t *tokens, int n, float *logits,
                                          int all_rows, distill_error *err) {
    const distill_model *m = g->m;
    const distill__state *s = (const distill__state *)m->internal;
    int C = m->cfg.dim, V = m->cfg.vocab_size, i, i0, j;
    /* validate everything before touching the cache */
    for (i = 0; i < n; i++) {
        if (seq[i] < 0 || seq[i] >= g->B)
            return distill__err(err, "generator: row %d: sequence %d out of range 0..%d", i, seq[i], g->B - 1);
        if (tokens[i] < 0 || tokens[i] >= V)
            return distill__err(err, "generator: row %d: token id %d out of range 0..%d", i, (int)tokens[i], V - 1);
    }
    {
        /* capacity: count rows per sequence */
        int b;
        for (b = 0; b < g->B; b++) {
            int add = 0;
            for (i = 0; i < n; i++) add += seq[i] == b;
            if (add && g->len[b] + add > g->S)
                return distill__err(err, "generator: sequence %d: %d + %d positions exceed the context of %d",
                                    b, g->len[b], add, g->S);
        }
    }
    for (i0 = 0; i0 < n; i0 += g->R) {
        int r = n - i0 < g->R ? n - i0 : g->R;
        for (i = 0; i < r; i++) {
            int b = seq[i0 + i];
            g->rowseq[i] = b;
            g->pos[i] = g->len[b]++;
            if (s->tok_emb16)
                for (j = 0; j < C; j++) g->x[(size_t)i * C + j] = distill__h2f(s->tok_emb16[(size_t)tokens[i0 + i] * C + j]);
            else memcpy(g->x + (size_t)i * C, m->tok_emb + (size_t)tokens[i0 + i] * C, sizeof(float) * (size_t)C);
        }
        distill__gen_chunk(g, r);
        if (logits && all_rows) {
            distill__gen_matmul(s->bf16, logits + (size_t)i0 * V, g->xb, m->lm_head, s->lm_head16, NULL, r, C, V);
        } else if (logits && i0 + r == n) {
            distill__gen_matmul(s->bf16, logits, g->xb + (size_t)(r - 1) * C, m->lm_head, s->lm_head16, NULL, 1, C, V);
        }
    }
    return 0;
}

/* ---- Sampling ---------------------------------------------------------------------------- */

/* Order of candidates: higher probability first, ties to the lower id, so the result never
   depends on the sort's stability. worse(a, b): a comes after b. */
static int distill__worse(const float *w, int32_t a, int32_t b) {
    return w[a] < w[b] || (w[a] == w[b] && a > b);
}
/* Sift down in a heap whose root is the WORST element. */
static void distill__heap_sift(int32_t *idx, int n, int i, const float *w) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, c = i;
        if (l < n && distill__worse(w, idx[l], idx[c])) c = l;
        if (r < n && distill__worse(w, idx[r], idx[c])) c = r;
        if (c == i) return;
        { int32_t t = idx[i]; idx[i] = idx[c]; idx[c] = t; }
        i = c;
    }
}
/* Heapsort idx[0..n) best first. */
static void distill__sort_desc(int32_t *idx, int n, const float *w) {
    int i;
    for (i = n / 2 - 1; i >= 0; i--) distill__heap_sift(idx, n, i, w);
    for (i = n - 1; i > 0; i--) {
        int32_t t = idx[0]; idx[0] = idx[i]; idx[i] = t;
        distill__heap_sift(idx, i, 0, w);
    }
}

DISTILL_API int32_t distill_sample_token(const float *logits, int V, float temperature, int top_k,
                                         float top_p, distill_rng *rng, float *work, int32_t *idx) {
    float mx;
    double total = 0.0, u, cum = 0.0, mass;
    int i, n;
    if (V <= 0) return -1;
    if (!(temperature > 0.0f) || top_k == 1) {   /* greedy; NaN temperature too */
        /* the best value kept in a register: comparing against logits[best] made every step
           wait for a load whose address the previous step chose (131 us per 32k logits against
           22 us, ~6 % of a batch-1 decode step in perf). NaNs never win (a NaN at id 0 does). */
        int32_t best = 0;
        float bv = logits[0];
        for (i = 1; i < V; i++) {
            float v = logits[i];
            if (v > bv) { bv = v; best = i; }
        }
        return best;
    }
    /* p_i proportional to exp((z_i - max z) / temperature) */
    mx = distill_vec_max(logits, V);
    for (i = 0; i < V; i++) {
        work[i] = expf((logits[i] - mx) / temperature);
        total += work[i];
    }
    if (top_k > 0 && top_k < V) {
        /* keep the top_k best in a heap whose root is the worst kept */
        n = 0;
        for (i = 0; i < V; i++) {
            if (n < top_k) {
                int j = n++;
                idx[j] = i;
                while (j > 0 && distill__worse(work, idx[j], idx[(j - 1) / 2])) {   /* sift up */
                    int32_t t = idx[j]; idx[j] = idx[(j - 1) / 2]; idx[(j - 1) / 2] = t;
                    j = (j - 1) / 2;
                }
            } else if (distill__worse(work, idx[0], i)) {
                idx[0] = i;
                distill__heap_sift(idx, n, 0, work);
            }
        }
        distill__sort_desc(idx, n, work);
        total = 0.0;
        for (i = 0; i < n; i++) total += work[idx[i]];
    } else if (top_p > 0.0f && top_p < 1.0f) {
        /* A token with p < (1 - top_p) / (V - 1) cannot be in the nucleus: all such tokens
           together hold less than 1 - top_p. Dropping them first keeps the sort short. */
        double cutoff = V > 1 ? (1.0 - top_p) / (double)(V - 1) * total : 0.0;
        n = 0;
        for (i = 0; i < V; i++) if ((double)work[i] >= cutoff) idx[n++] = i;
        distill__sort_desc(idx, n, work);
    } else {
        /* plain sampling from all V: inverse CDF in id order */
        u = distill_rng_uniform(rng) * total;
        for (i = 0; i < V; i++) {
            cum += work[i];
            if (u < cum) return i;
        }
        for (i = V - 1; i > 0 && work[i] == 0.0f; i--) {}
        return i;   /* rounding at the very end */
    }
    /* nucleus: the shortest best-first prefix whose mass reaches top_p of the total */
    mass = total;
    if (top_p > 0.0f && top_p < 1.0f) {
        double target = (double)top_p * total;
        cum = 0.0;
        for (i = 0; i < n; i++) {
            cum += work[idx[i]];
            if (cum >= target) { n = i + 1; break; }
        }
        mass = cum;
    }
    u = distill_rng_uniform(rng) * mass;
    cum = 0.0;
    for (i = 0; i < n; i++) {
        cum += work[idx[i]];
        if (u < cum) return idx[i];
    }
    return idx[n - 1];
}

/* ---- The generation loop ------------------------------------------------------------------ */

DISTILL_API distill_gen_options distill_gen_options_default(void) {
    distill_gen_options o;
    memset(&o, 0, sizeof o);
    o.max_new_tokens = 256;
    o.temperature = 0.0f;
    o.top_k = 0;
    o.top_p = 1.0f;
    o.seed = 1;
    return o;
}

DISTILL_API void distill_gen_result_free(distill_gen_result *r) {
    if (!r) return;
    DISTILL_FREE(r->ids);
    DISTILL_FREE(r->text);
    memset(r, 0, sizeof *r);
    r->stop_id = -1;
}

/* Append bytes to a result's text (keeps it NUL-terminated). */
static int distill__gen_text_append(distill_gen_result *r, size_t *cap, const char *s, size_t n) {
    if (r->len + n + 1 > *cap) {
        size_t nc = *cap ? *cap : 256;
        char *p;
        while (nc < r->len + n + 1) nc *= 2;
        p = (char *)DISTILL_REALLOC(r->text, nc);
        if (!p) return -1;
        r->text = p;
        *cap = nc;
    }
    memcpy(r->text + r->len, s, n);
    r->len += n;
    r->text[r->len] = 0;
    return 0;
}

typedef struct distill__gen_slot {
    int sample;               /* index into the caller's prompts/out */
    int active;
    distill_rng rng;
    distill_decoder dec;
    size_t text_cap, ids_cap;
    size_t streamed;          /* bytes of text handed to on_token so far */
} distill__gen_slot;

/* Length of the longest suffix of text[0..len) that is a proper prefix of a stop string: those
   bytes are not streamed yet because the next token may complete the stop string. */
static size_t distill__stop_prefix_tail(const char *text, size_t len, const char *const *stops, int n) {
    size_t best = 0;
    int k;
    for (k = 0; k < n; k++) {
        size_t sl = strlen(stops[k]), t;
        for (t = sl > 0 ? sl - 1 : 0; t > best; t--)
            if (t <= len && !memcmp(text + len - t, stops[k], t)) { best = t; break; }
    }
    return best;
}

DISTILL_API int distill_generate(distill_generator *g, const distill_tokenizer *tok,
                                 const int32_t *const *prompts, const int *prompt_lens, int n,
                                 const distill_gen_options *opt, distill_gen_result *out,
                                 distill_error *err) {
    distill_gen_options o = opt ? *opt : distill_gen_options_default();
    int V = g->m->cfg.vocab_size, i, b0, rc = 0;
    distill__gen_slot *slot = NULL;
    float *work = NULL;
    int32_t *idx = NULL, *feed = NULL;
    int *feed_seq = NULL;
    for (i = 0; i < n; i++) {
        memset(&out[i], 0, sizeof out[i]);
        out[i].stop_id = -1;
    }
    if (o.max_new_tokens < 0) return distill__err(err, "generate: max_new_tokens (%d) < 0", o.max_new_tokens);
    if (o.top_k < 0) return distill__err(err, "generate: top_k (%d) < 0", o.top_k);
    if (!(o.temperature >= 0.0f) || o.temperature > 1e4f) return distill__err(err, "generate: temperature %g out of range", (double)o.temperature);
    if (!(o.top_p > 0.0f) || o.top_p > 1.0f) return distill__err(err, "generate: top_p %g must be in (0, 1]", (double)o.top_p);
    for (i = 0; i < n; i++) {
        if (prompt_lens[i] < 1) return distill__err(err, "generate: prompt %d is empty (give at least one token, e.g. BOS)", i);
        if (prompt_lens[i] >= g->S)
            return distill__err(err, "generate: prompt %d has %d tokens; the context holds %d", i, prompt_lens[i], g->S);
    }
    slot = (distill__gen_slot *)DISTILL_MALLOC((size_t)g->B * sizeof *slot);
    work = (float *)DISTILL_MALLOC((size_t)V * sizeof *work);
    idx = (int32_t *)DISTILL_MALLOC((size_t)V * sizeof *idx);
    feed = (int32_t *)DISTILL_MALLOC((size_t)g->B * sizeof *feed);
    feed_seq = (int *)DISTILL_MALLOC((size_t)g->B * sizeof *feed_seq);
    if (!slot || !work || !idx || !feed || !feed_seq) { rc = distill__err(err, "generate: out of memory"); goto done; }
    memset(slot, 0, (size_t)g->B * sizeof *slot);

    for (b0 = 0; b0 < n && rc == 0; b0 += g->B) {
        int nb = n - b0 < g->B ? n - b0 : g->B, b, nactive = 0, step;
        distill_generator_reset(g, -1);
        /* prefill: one forward per distinct prompt, copies for repeats (n samples per problem) */
        for (b = 0; b < nb; b++) {
            int s = b0 + b, j;
            distill__gen_slot *sl = &slot[b];
            memset(sl, 0, sizeof *sl);
            sl->sample = s;
            sl->active = 1;
            distill_rng_seed(&sl->rng, o.seed + 0x9E3779B97F4A7C15ull * ((o.seeds ? o.seeds[s] : (uint64_t)s) + 1));
            if (tok) distill_decoder_init(&sl->dec, tok);
            out[s].prompt_tokens = prompt_lens[s];
            for (j = 0; j < b; j++)
                if (prompt_lens[b0 + j] == prompt_lens[s] &&
                    !memcmp(prompts[b0 + j], prompts[s], (size_t)prompt_lens[s] * sizeof(int32_t)))
                    break;
            if (j < b) {
                distill_generator_copy(g, b, j);
                memcpy(g->lg + (size_t)b * V, g->lg + (size_t)j * V, sizeof(float) * (size_t)V);
            } else {
                int *sq = (int *)DISTILL_MALLOC((size_t)prompt_lens[s] * sizeof *sq), t;
                if (!sq) { rc = distill__err(err, "generate: out of memory"); goto done; }
                for (t = 0; t < prompt_lens[s]; t++) sq[t] = b;
                rc = distill_generator_forward(g, sq, prompts[s], prompt_lens[s], g->lg + (size_t)b * V, 0, err);
                DISTILL_FREE(sq);
                if (rc) goto done;
            }
            nactive++;
        }
        /* decode: every active sequence samples from its logits row, then all are fed at once */
        for (step = 0; nactive > 0; step++) {
            int nfeed = 0;
            for (b = 0; b < nb; b++) {
                distill__gen_slot *sl = &slot[b];
                distill_gen_result *r = &out[sl->sample];
                int32_t id;
                int k, stop = 0;
                if (!sl->active) continue;
                if ((int)r->n >= o.max_new_tokens) {   /* max_new_tokens == 0 */
                    r->finish = DISTILL_FINISH_LENGTH;
                    sl->active = 0; nactive--;
                    continue;
                }
                id = distill_sample_token(g->lg + (size_t)b * V, V, o.temperature, o.top_k, o.top_p,
                                          &sl->rng, work, idx);
                for (k = 0; k < o.n_stop_ids; k++) if (id == o.stop_ids[k]) stop = 1;
                if (stop) {
                    r->finish = DISTILL_FINISH_STOP;
                    r->stop_id = id;
                    sl->active = 0; nactive--;
                    continue;
                }
                if (r->n == sl->ids_cap) {
                    size_t nc = sl->ids_cap ? 2 * sl->ids_cap : 64;
                    int32_t *np = (int32_t *)DISTILL_REALLOC(r->ids, nc * sizeof *np);
                    if (!np) { rc = distill__err(err, "generate: out of memory"); goto done; }
                    r->ids = np; sl->ids_cap = nc;
                }
                r->ids[r->n++] = id;
                if (tok) {
                    size_t plen = 0, before = r->len, safe;
                    const char *piece = distill_decoder_push(&sl->dec, id, &plen);
                    if (plen && distill__gen_text_append(r, &sl->text_cap, piece, plen)) {
                        rc = distill__err(err, "generate: out of memory"); goto done;
                    }
                    /* a stop string may span tokens: look where it could end in the new bytes */
                    for (k = 0; k < o.n_stop_strings && !stop; k++) {
                        size_t sl_len = strlen(o.stop_strings[k]), from;
                        if (sl_len == 0 || r->len < sl_len) continue;
                        from = before + 1 > sl_len ? before + 1 - sl_len : 0;
                        from = distill__find(r->text, r->len, from, o.stop_strings[k]);
                        if (from != (size_t)-1) {
                            r->len = from;
                            r->text[from] = 0;
                            stop = 1;
                        }
                    }
                    /* stream what is final: hold back a tail that could still become a stop string */
                    safe = stop ? r->len : r->len - distill__stop_prefix_tail(r->text, r->len, o.stop_strings, o.n_stop_strings);
                    if (o.on_token) {
                        o.on_token(o.on_token_ctx, sl->sample, id, r->text ? r->text + sl->streamed : "",
                                   safe > sl->streamed ? safe - sl->streamed : 0);
                        if (safe > sl->streamed) sl->streamed = safe;
                    }
                } else if (o.on_token) {
                    o.on_token(o.on_token_ctx, sl->sample, id, "", 0);
                }
                if (stop) r->finish = DISTILL_FINISH_STOP;
                else if ((int)r->n >= o.max_new_tokens || g->len[b] >= g->S) r->finish = DISTILL_FINISH_LENGTH;
                else { feed[nfeed] = id; feed_seq[nfeed] = b; nfeed++; continue; }
                sl->active = 0; nactive--;
            }
            if (nfeed == 0) break;
            rc = distill_generator_forward(g, feed_seq, feed, nfeed, g->lg, 1, err);
            if (rc) goto done;
            /* logits came back in feed order: move row i to its sequence's row */
            for (i = nfeed - 1; i >= 0; i--)
                if (feed_seq[i] != i)
                    memcpy(g->lg + (size_t)feed_seq[i] * V, g->lg + (size_t)i * V, sizeof(float) * (size_t)V);
        }
        for (b = 0; b < nb; b++) {
            distill_gen_result *r = &out[slot[b].sample];
            if (tok) {
                size_t fl = 0;
                const char *tail = distill_decoder_flush(&slot[b].dec, &fl);
                if (fl && r->finish != DISTILL_FINISH_STOP) distill__gen_text_append(r, &slot[b].text_cap, tail, fl);
                if (o.on_token && r->len > slot[b].streamed)   /* the held-back tail, id -1 */
                    o.on_token(o.on_token_ctx, slot[b].sample, -1, r->text + slot[b].streamed, r->len - slot[b].streamed);
                distill_decoder_free(&slot[b].dec);
                memset(&slot[b].dec, 0, sizeof slot[b].dec);
                if (!r->text) distill__gen_text_append(r, &slot[b].text_cap, "", 0);
            }
        }
    }
done:
    if (rc) {
        for (i = 0; i < n; i++) distill_gen_result_free(&out[i]);
        /* decoders of an interrupted batch */
        if (slot && tok) for (i = 0; i < g->B && i < n; i++) if (slot[i].dec.tok) distill_decoder_free(&slot[i].dec);
    }
    DISTILL_FREE(slot); DISTILL_FREE(work); DISTILL_FREE(idx); DISTILL_FREE(feed); DISTILL_FREE(feed_seq);
    return rc;
}

/* ---- Evaluating a model on an eval set ---------------------------------------------------- */

DISTILL_API distill_eval_model_options distill_eval_model_options_default(void) {
    distill_eval_model_options o;
    memset(&o, 0, sizeof o);
    o.n_samples = 1;
    o.batch = 8;
    o.gen = distill_gen_options_default();
    o.gen.max_new_tokens = 512;
    return o;
}

typedef struct distill__eval_problem {
    distill_json *rec;
    char *qid, *diff;
    distill_ids ids;
    char *prompt_text;
    size_t prompt_len;
    int64_t index;
} distill__eval_problem;

static void distill__eval_problem_free(distill__eval_problem *p) {
    distill_json_free(p->rec);
    DISTILL_FREE(p->qid);
    DISTILL_FREE(p->diff);
    distill_ids_free(&p->ids);
    DISTILL_FREE(p->prompt_text);
    memset(p, 0, sizeof *p);
}

/* Build the prompt ids of one record (see distill_eval_model). */
static int distill__eval_prompt(const distill_json *rec, const distill_tokenizer *tok,
                                const distill_eval_model_options *o,
                                const distill_chat_template *tmpl, const char *where,
                                distill_ids *ids, distill_error *err) {
    static const char *const fields[4] = {"prompt", "question", "problem", "instruction"};
    const distill_json *v = NULL;
    int i;
    if (o->prompt_field) {
        v = distill_json_path(rec, o->prompt_field);
        if (!v || v->type != DISTILL_JSON_STRING)
            return distill__err(err, "%s: field '%s': %s", where, o->prompt_field, v ? "expected a string" : "missing");
    } else {
        for (i = 0; i < 4 && !(v && v->type == DISTILL_JSON_STRING); i++) v = distill_json_get(rec, fields[i]);
        if (v && v->type != DISTILL_JSON_STRING) v = NULL;
    }
    if (v && o->raw) {
        int flags = DISTILL_ENC_ALLOW_SPECIAL | (distill_tokenizer_bos_id(tok) >= 0 ? DISTILL_ENC_BOS : 0);
        if (distill_tokenizer_encode_ex(tok, v->str, v->len, flags, ids, err)) return -1;
    } else if (v) {
        if (distill_chat_prompt_ids(tmpl, tok, o->system, v->str, ids, err)) return -1;
    } else {
        /* a conversation: everything before the final assistant turn(s) */
        distill_data_options dopt = distill_data_options_default();
        distill_data_format fmt = DISTILL_FORMAT_AUTO;
        distill_conv conv;
        int rc;
        memset(&conv, 0, sizeof conv);
        dopt.tmpl = tmpl;
        if (distill_conv_from_json(rec, &dopt, &fmt, where, &conv, err)) {
            distill_conv_free(&conv);
            return -1;
        }
        while (conv.n > 0 && conv.msgs[conv.n - 1].role == DISTILL_ROLE_ASSISTANT) conv.n--;
        if (conv.n == 0) {
            distill_conv_free(&conv);
            return distill__err(err, "%s: no prompt: no \"prompt\"/\"question\" field and no user turn", where);
        }
        if (o->raw) {
            /* raw: the concatenated turn texts, as plain text */
            int flags = DISTILL_ENC_ALLOW_SPECIAL | (distill_tokenizer_bos_id(tok) >= 0 ? DISTILL_ENC_BOS : 0);
            rc = distill_tokenizer_encode_ex(tok, conv.msgs[conv.n - 1].content, conv.msgs[conv.n - 1].len, flags, ids, err);
        } else {
            rc = distill_chat_encode(tmpl, tok, &conv, DISTILL_LOSS_LAST, 1, ids, NULL, err);
        }
        distill_conv_free(&conv);
        if (rc) return -1;
    }
    if (ids->n == 0) return distill__err(err, "%s: the prompt encodes to no tokens", where);
    return 0;
}

/* Append a problem's difficulty label (owned; may be NULL) to the per-problem list. */
static int distill__push_diff(char ***a, size_t *n, size_t *cap, char *d) {
    if (*n == *cap) {
        size_t nc = *cap ? 2 * *cap : 64;
        char **nd = (char **)DISTILL_REALLOC(*a, nc * sizeof *nd);
        if (!nd) return -1;
        *a = nd; *cap = nc;
    }
    (*a)[(*n)++] = d;
    return 0;
}

/* Read back an interrupted evaluation's samples file: the longest prefix of whole lines that
   forms whole problems, n samples each (sample 0..n-1, one question id). Returns the number of
   such problems (their parsed records in *recs, n per problem; *prefix: their bytes in *text),
   0 when the file is absent, -1 on error (a sample index past n: another --n). */
static int64_t distill__eval_resume_read(const char *path, int n, char **text, size_t *prefix,
                                         distill_json ***recs, distill_error *err) {
    size_t size = 0, pos = 0, nrec = 0, cap = 0;
    int64_t done = 0;
    FILE *probe = fopen(path, "rb");
    *text = NULL; *prefix = 0; *recs = NULL;
    if (!probe) return 0;
    fclose(probe);
    *text = (char *)distill_read_file(path, &size, err);
    if (!*text) return -1;
    while (pos < size) {
        char *nl = (char *)memchr(*text + pos, '\n', size - pos);
        distill_json *rec;
        const distill_json *sv, *qv, *q0;
        int64_t k = (int64_t)nrec % n;
        if (!nl) break;   /* torn last line */
        rec = distill_json_parse(*text + pos, (size_t)(nl - (*text + pos)), path, 1, NULL);
        sv = rec ? distill_json_get(rec, "sample") : NULL;
        qv = rec ? distill_json_get(rec, "question_id") : NULL;
        q0 = k > 0 ? distill_json_get((*recs)[nrec - (size_t)k], "question_id") : qv;
        if (sv && sv->is_int && sv->i64 >= n) {
            distill_json_free(rec);
            while (nrec > 0) distill_json_free((*recs)[--nrec]);
            return distill__err(err, "%s: sample %lld of question '%s' but n_samples is %d: the file is from an "
                                "evaluation with another number of samples", path, (long long)sv->i64,
                                qv && qv->type == DISTILL_JSON_STRING ? qv->str : "?", n);
        }
        if (!sv || !sv->is_int || sv->i64 != k || !qv || qv->type != DISTILL_JSON_STRING ||
            !q0 || q0->type != DISTILL_JSON_STRING || strcmp(q0->str, qv->str) != 0) {
            distill_json_free(rec);
            break;   /* a torn or foreign line: keep what precedes it */
        }
        if (nrec == cap) {
            size_t nc = cap ? 2 * cap : 64;
            distill_json **nr = (distill_json **)DISTILL_REALLOC(*recs, nc * sizeof *nr);
            if (!nr) {
                distill_json_free(rec);
                while (nrec > 0) distill_json_free((*recs)[--nrec]);
                return distill__err(err, "eval: out of memory");
            }
            *recs = nr; cap = nc;
        }
        (*recs)[nrec++] = rec;
        pos = (size_t)(nl - *text) + 1;
        if (k == n - 1) { done++; *prefix = pos; }
    }
    while (nrec > (size_t)done * (size_t)n) distill_json_free((*recs)[--nrec]);   /* a partial problem */
    return done;
}

/* The sample result of a sample read back from a samples file: as when it was generated (the
   analysis of its text after the problem's prompt, its finish, pass and think length). */
static void distill__eval_replay(const distill_json *rec, const char *prompt, size_t prompt_len,
                                 int64_t problem, distill_sample_result *sr) {
    const distill_json *t = distill_json_get(rec, "text"), *v;
    distill_gen_analysis a;
    memset(sr, 0, sizeof *sr);
    distill_analyze_generation(prompt, prompt_len, t && t->type == DISTILL_JSON_STRING ? t->str : "",
                               t && t->type == DISTILL_JSON_STRING ? t->len : 0, &a);
    distill_sample_result_from_analysis(sr, &a);
    sr->problem = problem;
    v = distill_json_get(rec, "finish_reason");
    sr->finish = distill_finish_parse(v && v->type == DISTILL_JSON_STRING ? v->str : NULL);
    v = distill_json_get(rec, "pass");
    sr->pass = v && v->type == DISTILL_JSON_TRUE ? 1 : v && v->type == DISTILL_JSON_FALSE ? 0 : -1;
    v = distill_json_get(rec, "think_tokens");
    sr->think_tokens = v && v->type == DISTILL_JSON_NUMBER ? v->num : -1.0;
}

/* Grow-only array of sample results. */
static int distill__push_result(distill_sample_result **a, size_t *n, size_t *cap,
                                const distill_sample_result *r) {
    if (*n == *cap) {
        size_t nc = *cap ? 2 * *cap : 256;
        distill_sample_result *p = (distill_sample_result *)DISTILL_REALLOC(*a, nc * sizeof *p);
        if (!p) return -1;
        *a = p; *cap = nc;
    }
    (*a)[(*n)++] = *r;
    return 0;
}

DISTILL_API int distill_eval_model(distill_model *m, const distill_tokenizer *tok,
                                   const char *data_path, const distill_eval_model_options *opt,
                                   FILE *results, distill_error *err) {
    static const int k1 = 1;
    distill_eval_model_options o = opt ? *opt : distill_eval_model_options_default();
    const distill_chat_template *tmpl = o.tmpl ? o.tmpl : distill_chat_template_get("chatml");
    distill_line_reader *lr = NULL;
    distill__eval_problem *pend = NULL;
    distill_generator *g = NULL;
    distill_sample_result *res = NULL;
    char **diffs = NULL;
    const int32_t **prompts = NULL;
    int *lens = NULL;
    uint64_t *seeds = NULL;
    distill_gen_result *out = NULL;
    int32_t stop_ids[3];
    const char *stop_str[1];
    size_t nres = 0, capres = 0, ndiffs = 0, capdiffs = 0, i;
    int npend = 0, cap_pend, n = o.n_samples, g_seq = 0, at_eof = 0, rc = -1, r;
    int64_t nprob = 0, line_no = 0, gen_tokens = 0, n_done = 0;
    FILE *gf = NULL;                 /* the samples, appended to <out_jsonl>.partial */
    char *partial = NULL, *old_text = NULL;
    distill_json **old_recs = NULL;  /* resume: the samples of the n_done problems already done */
    double t0 = distill_time_seconds();

    if (!tok) return distill__err(err, "eval: a tokenizer is needed");
    if (!tmpl) return distill__err(err, "eval: no chat template");
    if (n < 1 || n > 100000) return distill__err(err, "eval: n_samples (%d) must be in 1..100000", n);
    if (o.batch < 1 || o.batch > 65536) return distill__err(err, "eval: batch (%d) must be in 1..65536", o.batch);
    if (!o.ks) { o.ks = &k1; o.nk = 1; }
    /* stop tokens: end of turn (a token, or its text) and EOS; raw prompts also BOS */
    o.gen.n_stop_ids = 0;
    o.gen.n_stop_strings = 0;
    if (!o.raw) {
        int32_t eot = distill_chat_eot_id(tmpl, tok);
        if (eot >= 0) stop_ids[o.gen.n_stop_ids++] = eot;
        else if (tmpl->end_of_turn && tmpl->end_of_turn[0]) stop_str[o.gen.n_stop_strings++] = tmpl->end_of_turn;
    } else if (distill_tokenizer_bos_id(tok) >= 0) {
        stop_ids[o.gen.n_stop_ids++] = distill_tokenizer_bos_id(tok);
    }
    if (distill_tokenizer_eos_id(tok) >= 0) stop_ids[o.gen.n_stop_ids++] = distill_tokenizer_eos_id(tok);
    o.gen.stop_ids = stop_ids;
    o.gen.stop_strings = stop_str;

    cap_pend = o.batch / n > 1 ? o.batch / n : 1;   /* problems per generation call */
    pend = (distill__eval_problem *)DISTILL_MALLOC((size_t)cap_pend * sizeof *pend);
    prompts = (const int32_t **)DISTILL_MALLOC((size_t)cap_pend * n * sizeof *prompts);
    lens = (int *)DISTILL_MALLOC((size_t)cap_pend * n * sizeof *lens);
    seeds = (uint64_t *)DISTILL_MALLOC((size_t)cap_pend * n * sizeof *seeds);
    out = (distill_gen_result *)DISTILL_MALLOC((size_t)cap_pend * n * sizeof *out);
    if (!pend || !prompts || !lens || !seeds || !out) { distill__err(err, "eval: out of memory"); goto done; }
    memset(pend, 0, (size_t)cap_pend * sizeof *pend);
    lr = distill_line_reader_open(data_path, 0, err);
    if (!lr) goto done;
    if (o.out_jsonl) {
        size_t plen = strlen(o.out_jsonl) + 9, prefix = 0;
        partial = (char *)DISTILL_MALLOC(plen);
        if (!partial) { distill__err(err, "eval: out of memory"); goto done; }
        snprintf(partial, plen, "%s.partial", o.out_jsonl);
        if (o.resume) {   /* the unfinished file, else a finished one (more problems may follow) */
            FILE *probe = fopen(partial, "rb");
            const char *from = probe ? partial : o.out_jsonl;
            if (probe) fclose(probe);
            n_done = distill__eval_resume_read(from, n, &old_text, &prefix, &old_recs, err);
            if (n_done < 0) goto done;
            /* the partial file becomes the complete problems alone, then grows from there */
            if (old_text && distill_write_file_atomic(partial, old_text, prefix, err) != 0) goto done;
            DISTILL_FREE(old_text);
            old_text = NULL;
        } else {
            remove(partial);
        }
        gf = distill__open_append(partial);
        if (!gf) { distill__err(err, "%s: cannot open: %s", partial, strerror(errno)); goto done; }
    }

    while (!at_eof) {
        const char *line;
        size_t len;
        int maxlen = 0, j, ns, werr = 0;
        /* gather up to cap_pend problems */
        while (npend < cap_pend && !(o.max_problems > 0 && nprob + npend >= o.max_problems)) {
            distill__eval_problem *p = &pend[npend];
            char where[512], buf[64];
            const char *s;
            size_t k;
            int blank = 1;
            r = distill_line_reader_next(lr, &line, &len, &line_no, err);
            if (r < 0) goto done;
            if (r == 0) break;
            for (k = 0; k < len && blank; k++) blank = line[k] == ' ' || line[k] == '\t' || line[k] == '\r';
            if (blank) continue;
            snprintf(where, sizeof where, "%s:%lld", data_path, (long long)line_no);
            memset(p, 0, sizeof *p);
            p->rec = distill_json_parse(line, len, data_path, (int)line_no, err);
            if (!p->rec) goto done;
            if (p->rec->type != DISTILL_JSON_OBJECT) {
                distill__err(err, "%s: expected a JSON object per line", where);
                distill__eval_problem_free(p);
                goto done;
            }
            if (distill__eval_prompt(p->rec, tok, &o, tmpl, where, &p->ids, err)) {
                distill__eval_problem_free(p);
                goto done;
            }
            s = distill__record_id(p->rec, buf, sizeof buf);
            if (s) p->qid = distill__strdup(s);
            else { snprintf(buf, sizeof buf, "line%lld", (long long)line_no); p->qid = distill__strdup(buf); }
            s = distill__record_difficulty(p->rec, buf, sizeof buf);
            p->diff = s ? distill__strdup(s) : NULL;
            p->prompt_text = distill_tokenizer_decode(tok, p->ids.ids, p->ids.n, &p->prompt_len);
            p->index = nprob + npend;
            if (!p->qid || !p->prompt_text || (s && !p->diff)) {
                distill__eval_problem_free(p);
                distill__err(err, "eval: out of memory");
                goto done;
            }
            if (p->ids.n > (size_t)(1 << 24)) {
                distill__eval_problem_free(p);
                distill__err(err, "%s: prompt too long (%zu tokens)", where, p->ids.n);
                goto done;
            }
            if (p->index < n_done) {   /* resume: done before; its samples are read back */
                const distill_json *q = distill_json_get(old_recs[p->index * n], "question_id");
                if (!q || q->type != DISTILL_JSON_STRING || strcmp(q->str, p->qid) != 0) {
                    distill__err(err, "%s: problem %lld is question '%s', but the data's problem %lld (%s) is '%s': the "
                                 "file is from another evaluation (remove it, or start without resume)", partial,
                                 (long long)p->index, q && q->type == DISTILL_JSON_STRING ? q->str : "?",
                                 (long long)p->index, where, p->qid);
                    distill__eval_problem_free(p);
                    goto done;
                }
                for (j = 0; j < n; j++) {
                    distill_sample_result sr;
                    distill__eval_replay(old_recs[p->index * n + j], p->prompt_text, p->prompt_len, p->index, &sr);
                    if (distill__push_result(&res, &nres, &capres, &sr)) { distill__err(err, "eval: out of memory"); distill__eval_problem_free(p); goto done; }
                }
                if (distill__push_diff(&diffs, &ndiffs, &capdiffs, p->diff)) { distill__err(err, "eval: out of memory"); distill__eval_problem_free(p); goto done; }
                p->diff = NULL;
                distill__eval_problem_free(p);
                nprob++;
                continue;
            }
            npend++;
        }
        if (npend < cap_pend) at_eof = 1;
        if (npend == 0) break;
        /* the generator: room for the longest prompt of this chunk + the new tokens */
        for (j = 0; j < npend; j++) if ((int)pend[j].ids.n > maxlen) maxlen = (int)pend[j].ids.n;
        if (!g || maxlen + o.gen.max_new_tokens + 1 > g_seq) {
            distill_generator_free(g);
            g_seq = maxlen + o.gen.max_new_tokens + 1;
            if (g_seq < 64) g_seq = 64;
            g = distill_generator_create(m, o.batch < npend * n ? o.batch : npend * n, g_seq, err);
            if (!g) goto done;
        }
        ns = npend * n;
        for (j = 0; j < ns; j++) {
            const distill__eval_problem *p = &pend[j / n];
            prompts[j] = p->ids.ids;
            lens[j] = (int)p->ids.n;
            seeds[j] = (uint64_t)p->index * (uint64_t)n + (uint64_t)(j % n);
        }
        o.gen.seeds = seeds;
        if (distill_generate(g, tok, prompts, lens, ns, &o.gen, out, err)) goto done;
        for (j = 0; j < ns; j++) {
            const distill__eval_problem *p = &pend[j / n];
            distill_gen_result *gr = &out[j];
            distill_sample_result sr;
            char reason[512];
            const char *text = gr->text ? gr->text : "";
            distill__score_sample(p->prompt_text, p->prompt_len, text, gr->len, tok, o.verifier, p->rec, &sr,
                                  reason, sizeof reason);
            sr.problem = p->index;
            sr.finish = gr->finish;
            gen_tokens += (int64_t)gr->n;
            if (distill__push_result(&res, &nres, &capres, &sr)) { distill__err(err, "eval: out of memory"); goto done; }
            if (gf && !werr) {
                distill_generation_record rec;
                memset(&rec, 0, sizeof rec);
                rec.question_id = p->qid;
                rec.sample = j % n;
                rec.difficulty = p->diff;
                rec.prompt = p->prompt_text; rec.prompt_len = p->prompt_len;
                rec.text = text; rec.text_len = gr->len;
                rec.finish = gr->finish;
                rec.pass = sr.pass;
                rec.reason = reason[0] ? reason : NULL;
                rec.output_tokens = (int64_t)gr->n;
                rec.think_tokens = sr.think_tokens;
                distill_write_generation_jsonl(gf, &rec);
                /* a problem's samples reach the file together: what resume reads back */
                errno = 0;
                if (j % n == n - 1 && (fflush(gf) != 0 || ferror(gf))) {
                    distill__err(err, "%s: write failed: %s", partial, strerror(errno ? errno : EIO));
                    werr = 1;   /* stop after freeing this chunk's results */
                }
            }
            distill_gen_result_free(gr);
        }
        if (werr) goto done;
        /* keep each problem's difficulty (indexed by problem) for the per-difficulty split */
        for (j = 0; j < npend; j++) {
            if (distill__push_diff(&diffs, &ndiffs, &capdiffs, pend[j].diff)) { distill__err(err, "eval: out of memory"); goto done; }
            pend[j].diff = NULL;
            distill__eval_problem_free(&pend[j]);
        }
        nprob += npend;
        npend = 0;
        if (o.progress) {
            double dt = distill_time_seconds() - t0;
            int64_t pass = 0;
            for (i = 0; i < nres; i++) pass += res[i].pass > 0;
            fprintf(stderr, "eval: %lld problems, %zu samples, %.1f s, %.1f tok/s%s",
                    (long long)nprob, nres, dt, dt > 0 ? (double)gen_tokens / dt : 0.0,
                    o.verifier ? "" : "\n");
            if (o.verifier) fprintf(stderr, ", %lld passed\n", (long long)pass);
        }
        if (o.max_problems > 0 && nprob >= o.max_problems) break;
        if (o.stop_flag && *o.stop_flag && !at_eof) {
            if (gf) distill__err(err, "stopped after %lld problems; their samples are in %s", (long long)nprob, partial);
            else distill__err(err, "stopped after %lld problems", (long long)nprob);
            rc = 1;
            goto done;
        }
    }
    if (nres == 0) { distill__err(err, "%s: no records", data_path); goto done; }
    if (results && distill_eval_write_json(results, res, nres, (const char *const *)diffs, ndiffs, o.ks, o.nk,
                                           "tokens", err))
        goto done;
    if (o.metrics && distill_eval_compute(res, nres, o.ks, o.nk, o.metrics, err)) goto done;
    if (gf) {   /* complete: the partial file becomes out_jsonl */
        int e = distill__flush_close(gf, partial);
        gf = NULL;
        if (e) { distill__err(err, "%s: write failed: %s", partial, strerror(e)); goto done; }
        if ((e = DISTILL__FAULT("rename", o.out_jsonl)) != 0 || rename(partial, o.out_jsonl) != 0) {
            distill__err(err, "%s: cannot rename %s into place: %s", o.out_jsonl, partial, strerror(e ? e : errno));
            goto done;
        }
        distill__fsync_dir(o.out_jsonl);
    }
    rc = 0;
done:
    if (gf) fclose(gf);   /* kept: the problems written so far are what resume continues from */
    if (old_recs && n_done > 0) for (i = 0; i < (size_t)n_done * (size_t)n; i++) distill_json_free(old_recs[i]);
    DISTILL_FREE(old_recs);
    DISTILL_FREE(old_text);
    DISTILL_FREE(partial);
    if (pend) for (r = 0; r < npend; r++) distill__eval_problem_free(&pend[r]);
    for (i = 0; i < ndiffs; i++) DISTILL_FREE(diffs[i]);
    DISTILL_FREE(diffs);
    DISTILL_FREE(pend); DISTILL_FREE(prompts); DISTILL_FREE(lens); DISTILL_FREE(seeds); DISTILL_FREE(out);
    DISTILL_FREE(res);
    distill_generator_free(g);
    if (lr) distill_line_reader_close(lr);
    return rc;
}
/* ===================================================================================== */
/* REPORTS: results tables and SVG plots                                                  */
/* ===================================================================================== */

/* ---- tables ----------------------------------------------------------------------------- */

DISTILL_API int distill_table_init(distill_table *t, const char *const *header, int ncol) {
    int j;
    memset(t, 0, sizeof *t);
    if (ncol < 1) return -1;
    t->ncol = ncol;
    t->cap = 16;
    t->cells = (char **)DISTILL_MALLOC(sizeof(char *) * (size_t)ncol * (size_t)(t->cap + 1));
    if (!t->cells) return -1;
    for (j = 0; j < ncol; j++) {
        t->cells[j] = distill__strdup(header && header[j] ? header[j] : "");
        if (!t->cells[j]) { t->nrow = -1; while (j-- > 0) DISTILL_FREE(t->cells[j]); DISTILL_FREE(t->cells); t->cells = NULL; return -1; }
    }
    return 0;
}

DISTILL_API int distill_table_add_row(distill_table *t, const char *const *cells) {
    int j;
    size_t base;
    if (!t->cells) return -1;
    if (t->nrow == t->cap) {
        size_t bytes;
        char **nc;
        if (!distill__mul_size(sizeof(char *) * (size_t)t->ncol, (size_t)t->cap * 2 + 1, &bytes)) return -1;
        nc = (char **)DISTILL_REALLOC(t->cells, bytes);
        if (!nc) return -1;
        t->cells = nc;
        t->cap *= 2;
    }
    base = (size_t)(t->nrow + 1) * (size_t)t->ncol;
    for (j = 0; j < t->ncol; j++) {
        t->cells[base + (size_t)j] = distill__strdup(cells && cells[j] ? cells[j] : "");
        if (!t->cells[base + (size_t)j]) {
            while (j-- > 0) DISTILL_FREE(t->cells[base + (size_t)j]);
            return -1;
        }
    }
    t->nrow++;
    return 0;
}

DISTILL_API const char *distill_table_cell(const distill_table *t, int row, int col) {
    if (!t->cells || row < 0 || row >= t->nrow || col < 0 || col >= t->ncol) return NULL;
    return t->cells[(size_t)(row + 1) * (size_t)t->ncol + (size_t)col];
}

DISTILL_API void distill_table_free(distill_table *t) {
    size_t i;
    if (t->cells)
        for (i = 0; i < (size_t)(t->nrow + 1) * (size_t)t->ncol; i++) DISTILL_FREE(t->cells[i]);
    DISTILL_FREE(t->cells);
    memset(t, 0, sizeof *t);
}

/* RFC 4180: a field holding a comma, quote, CR or LF is quoted, and quotes inside are doubled. */
static void distill__csv_field(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\r\n")) { fputs(s, f); return; }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

DISTILL_API void distill_table_write_csv(FILE *f, const distill_table *t) {
    int i, j;
    for (i = 0; i <= t->nrow; i++)
        for (j = 0; j < t->ncol; j++) {
            distill__csv_field(f, t->cells[(size_t)i * (size_t)t->ncol + (size_t)j]);
            fputs(j + 1 < t->ncol ? "," : "\n", f);
        }
}

/* Markdown cell text: '|' escaped, newlines become spaces. Returns the printed width. */
static size_t distill__md_width(const char *s) {
    size_t n = 0;
    for (; *s; s++) n += *s == '|' ? 2 : ((unsigned char)*s & 0xC0) == 0x80 ? 0 : 1;
    return n;
}
static void distill__md_cell(FILE *f, const char *s, size_t pad) {
    size_t w = distill__md_width(s);
    for (; *s; s++) {
        if (*s == '|') fputs("\\|", f);
        else if (*s == '\n' || *s == '\r') fputc(' ', f);
        else fputc(*s, f);
    }
    while (w++ < pad) fputc(' ', f);
}

/* A cell that reads as a number is right-aligned (the separator row says so with "--:"). */
static int distill__is_number(const char *s) {
    char *end;
    if (!*s) return 0;
    (void)strtod(s, &end);
    return *end == 0 && !strpbrk(s, "xXnNiI");   /* not hex, nan or inf */
}

DISTILL_API void distill_table_write_markdown(FILE *f, const distill_table *t) {
    int i, j;
    size_t *w = (size_t *)DISTILL_MALLOC(sizeof(size_t) * (size_t)t->ncol);
    int *num = (int *)DISTILL_MALLOC(sizeof(int) * (size_t)t->ncol);
    if (!w || !num) { DISTILL_FREE(w); DISTILL_FREE(num); return; }
    for (j = 0; j < t->ncol; j++) {
        w[j] = 3;
        num[j] = t->nrow > 0;
        for (i = 0; i <= t->nrow; i++) {
            const char *c = t->cells[(size_t)i * (size_t)t->ncol + (size_t)j];
            size_t cw = distill__md_width(c);
            if (cw > w[j]) w[j] = cw;
            if (i > 0 && *c && !distill__is_number(c)) num[j] = 0;
        }
    }
    for (i = 0; i <= t->nrow; i++) {
        fputs("|", f);
        for (j = 0; j < t->ncol; j++) {
            fputc(' ', f);
            distill__md_cell(f, t->cells[(size_t)i * (size_t)t->ncol + (size_t)j], w[j]);
            fputs(" |", f);
        }
        fputc('\n', f);
        if (i == 0) {
            fputs("|", f);
            for (j = 0; j < t->ncol; j++) {
                size_t k;
                fputc(' ', f);
                for (k = 0; k + 1 < w[j]; k++) fputc('-', f);
                fputc(num[j] ? ':' : '-', f);
                fputs(" |", f);
            }
            fputc('\n', f);
        }
    }
    DISTILL_FREE(w);
    DISTILL_FREE(num);
}

/* Is s exactly a JSON number (RFC 8259 grammar)? Then it is written unquoted. */
static int distill__json_number_text(const char *s) {
    if (*s == '-') s++;
    if (*s == '0') s++;
    else if (*s >= '1' && *s <= '9') while (*s >= '0' && *s <= '9') s++;
    else return 0;
    if (*s == '.') { s++; if (!(*s >= '0' && *s <= '9')) return 0; while (*s >= '0' && *s <= '9') s++; }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-') s++;
        if (!(*s >= '0' && *s <= '9')) return 0;
        while (*s >= '0' && *s <= '9') s++;
    }
    return *s == 0;
}

DISTILL_API void distill_table_write_json(FILE *f, const distill_table *t) {
    int i, j;
    fputs("[", f);
    for (i = 1; i <= t->nrow; i++) {
        fputs(i > 1 ? ",\n {" : "\n {", f);
        for (j = 0; j < t->ncol; j++) {
            const char *c = t->cells[(size_t)i * (size_t)t->ncol + (size_t)j];
            const char *h = t->cells[j];
            if (j) fputs(", ", f);
            distill_json_write_string(f, h, strlen(h));
            fputs(": ", f);
            if (distill__json_number_text(c)) fputs(c, f);
            else if (!*c || !strcmp(c, "null") || !strcmp(c, "nan") || !strcmp(c, "-nan") || !strcmp(c, "NaN"))
                fputs("null", f);   /* missing values, and NaN which JSON cannot hold */
            else distill_json_write_string(f, c, strlen(c));
        }
        fputs("}", f);
    }
    fputs(t->nrow ? "\n]\n" : "]\n", f);
}

/* ---- SVG plots -------------------------------------------------------------------------- */
/* Panel layout (pixels, panel-local): the plot area is [ML, w-MR] x [MT, h-MB]. With a log x
   axis, the first ZG pixels of it hold the x = 0 position and an axis break. */
#define DISTILL__PL_ML 62.0
#define DISTILL__PL_MR 16.0
#define DISTILL__PL_MT 34.0
#define DISTILL__PL_MB 46.0
#define DISTILL__PL_ZG 40.0

DISTILL_API double distill_plot_px_x(double x, double lo, double hi, int log_x, int panel_w) {
    double left = DISTILL__PL_ML, right = (double)panel_w - DISTILL__PL_MR;
    if (hi <= lo) hi = lo + 1;
    if (log_x) {
        if (x <= 0) return left + DISTILL__PL_ZG * 0.3;
        left += DISTILL__PL_ZG;
        x = log10(x);
    }
    return left + (x - lo) / (hi - lo) * (right - left);
}

DISTILL_API double distill_plot_px_y(double y, double lo, double hi, int panel_h) {
    double top = DISTILL__PL_MT, bottom = (double)panel_h - DISTILL__PL_MB;
    if (hi <= lo) hi = lo + 1;
    return top + (1.0 - (y - lo) / (hi - lo)) * (bottom - top);
}

static const char *distill__palette[10] = {
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
};

static void distill__xml_text(FILE *f, const char *s) {
    for (; s && *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else if (*s == '"') fputs("&quot;", f);
        else fputc(*s, f);
    }
}

/* A "nice" tick step (1, 2 or 5 times a power of ten) giving about `want` intervals. */
static double distill__nice_step(double range, int want) {
    double raw = range / (double)want, p = pow(10.0, floor(log10(raw))), m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

static void distill__fmt_num(char *buf, size_t cap, double v) {
    if (fabs(v) < 1e-12) v = 0;
    snprintf(buf, cap, "%g", v);
}

static void distill__panel(FILE *f, const distill_plot_panel *p, double ox, double oy, int w, int h) {
    double xlo = HUGE_VAL, xhi = -HUGE_VAL, ylo = HUGE_VAL, yhi = -HUGE_VAL, step, ystep, v;
    int s, i, any_zero = 0, legend_n = 0;
    char num[64];
    /* data ranges (x in log10 units on a log axis) */
    for (s = 0; s < p->n_series; s++) {
        const distill_plot_series *se = &p->series[s];
        for (i = 0; i < se->n; i++) {
            double x = se->x[i], y = se->y[i], e = se->y_err ? se->y_err[i] : 0;
            if (!(y == y) || !(x == x)) continue;
            if (p->log_x) { if (x <= 0) { any_zero = 1; } else { x = log10(x); if (x < xlo) xlo = x; if (x > xhi) xhi = x; } }
            else { if (x < xlo) xlo = x; if (x > xhi) xhi = x; }
            if (!(e == e)) e = 0;
            if (y - e < ylo) ylo = y - e;
            if (y + e > yhi) yhi = y + e;
        }
        if (se->label) legend_n++;
    }
    if (xlo > xhi) { xlo = 0; xhi = 1; }
    if (p->log_x) {   /* the data's span plus a small margin, in decades */
        double pad = xhi - xlo < 1 ? 0.1 : 0.06 * (xhi - xlo);
        xlo -= pad;
        xhi += pad;
    }
    else if (xhi <= xlo) { xlo -= 0.5; xhi += 0.5; }
    if (p->y_min < p->y_max) { ylo = p->y_min; yhi = p->y_max; ystep = distill__nice_step(yhi - ylo, 5); }
    else {
        if (ylo > yhi) { ylo = 0; yhi = 1; }
        if (yhi - ylo < 1e-9) { ylo -= 0.5; yhi += 0.5; }
        ystep = distill__nice_step(yhi - ylo, 5);
        ylo = floor(ylo / ystep + 1e-9) * ystep;
        yhi = ceil(yhi / ystep - 1e-9) * ystep;
    }
    fprintf(f, "<g transform=\"translate(%.1f,%.1f)\">\n", ox, oy);
    /* frame, title, axis labels */
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#444\"/>\n",
            DISTILL__PL_ML, DISTILL__PL_MT, (double)w - DISTILL__PL_ML - DISTILL__PL_MR, (double)h - DISTILL__PL_MT - DISTILL__PL_MB);
    fprintf(f, "<text x=\"%.1f\" y=\"20\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">", (double)w / 2);
    distill__xml_text(f, p->title);
    fprintf(f, "</text>\n<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"12\">",
            (DISTILL__PL_ML + (double)w - DISTILL__PL_MR) / 2, (double)h - 8);
    distill__xml_text(f, p->xlabel);
    fprintf(f, "</text>\n<text x=\"14\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"12\" transform=\"rotate(-90 14 %.1f)\">",
            (DISTILL__PL_MT + (double)h - DISTILL__PL_MB) / 2, (DISTILL__PL_MT + (double)h - DISTILL__PL_MB) / 2);
    distill__xml_text(f, p->ylabel);
    fputs("</text>\n", f);
    /* y grid and ticks */
    for (v = ceil(ylo / ystep - 1e-9) * ystep; v <= yhi + ystep * 1e-6; v += ystep) {
        double py = distill_plot_px_y(v, ylo, yhi, h);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n",
                DISTILL__PL_ML, py, (double)w - DISTILL__PL_MR, py);
        distill__fmt_num(num, sizeof num, v);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" font-size=\"11\">%s</text>\n", DISTILL__PL_ML - 4, py + 4, num);
    }
    /* x ticks: decades on a log axis (with 2 and 5 between when there are few), else nice steps */
    if (p->log_x) {
        double d;
        for (d = floor(xlo); d <= xhi + 1e-9; d += 1) {
            int mlt;
            for (mlt = 1; mlt <= 5; mlt += (mlt == 1 ? 1 : 3)) {
                double xv = pow(10.0, d) * mlt, px;
                if (log10(xv) > xhi + 1e-9) break;
                if (log10(xv) < xlo - 1e-9) continue;
                px = distill_plot_px_x(xv, xlo, xhi, 1, w);
                fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>\n", px, DISTILL__PL_MT,
                        px, (double)h - DISTILL__PL_MB, mlt == 1 ? "#ddd" : "#f0f0f0");
                if (mlt == 1 || xhi - xlo <= 2.6) {
                    distill__fmt_num(num, sizeof num, xv);
                    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"11\">%s</text>\n", px,
                            (double)h - DISTILL__PL_MB + 15, num);
                }
            }
        }
        if (any_zero) {
            double px = distill_plot_px_x(0, xlo, xhi, 1, w), bx = DISTILL__PL_ML + DISTILL__PL_ZG * 0.7,
                   by = (double)h - DISTILL__PL_MB;
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"11\">0</text>\n", px, by + 15);
            /* the axis break: two short slanted strokes */
            fprintf(f, "<path d=\"M%.1f %.1f l6 -8 M%.1f %.1f l6 -8\" stroke=\"#444\" fill=\"none\"/>\n", bx - 5, by + 4, bx, by + 4);
        }
    } else {
        step = distill__nice_step(xhi - xlo, 6);
        for (v = ceil(xlo / step - 1e-9) * step; v <= xhi + step * 1e-6; v += step) {
            double px = distill_plot_px_x(v, xlo, xhi, 0, w);
            distill__fmt_num(num, sizeof num, v);
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"11\">%s</text>\n", px,
                    (double)h - DISTILL__PL_MB + 15, num);
        }
    }
    /* series: error bars, line (split at NaN), markers */
    for (s = 0; s < p->n_series; s++) {
        const distill_plot_series *se = &p->series[s];
        const char *col = se->color ? se->color : distill__palette[s % 10];
        double sw = se->width > 0 ? se->width : 1.5, op = se->opacity > 0 ? se->opacity : 1;
        int open = 0;
        fprintf(f, "<g stroke=\"%s\" fill=\"%s\" opacity=\"%.2f\">\n", col, col, op);
        for (i = 0; i < se->n; i++) {
            double px, py;
            if (!(se->y[i] == se->y[i]) || !(se->x[i] == se->x[i])) {
                if (open) { fputs("\"/>\n", f); open = 0; }
                continue;
            }
            px = distill_plot_px_x(se->x[i], xlo, xhi, p->log_x, w);
            py = distill_plot_px_y(se->y[i], ylo, yhi, h);
            if (!open) {
                fprintf(f, "<polyline fill=\"none\" stroke-width=\"%.1f\"%s points=\"", sw,
                        se->dashed ? " stroke-dasharray=\"5,4\"" : "");
                open = 1;
            } else fputc(' ', f);
            fprintf(f, "%.1f,%.1f", px, py);
        }
        if (open) fputs("\"/>\n", f);
        for (i = 0; i < se->n; i++) {
            double px, py;
            if (!(se->y[i] == se->y[i]) || !(se->x[i] == se->x[i])) continue;
            px = distill_plot_px_x(se->x[i], xlo, xhi, p->log_x, w);
            py = distill_plot_px_y(se->y[i], ylo, yhi, h);
            if (se->y_err && se->y_err[i] == se->y_err[i] && se->y_err[i] > 0) {
                double y0 = distill_plot_px_y(se->y[i] - se->y_err[i], ylo, yhi, h);
                double y1 = distill_plot_px_y(se->y[i] + se->y_err[i], ylo, yhi, h);
                fprintf(f, "<path d=\"M%.1f %.1f V%.1f M%.1f %.1f h8 M%.1f %.1f h8\" stroke-width=\"1.2\" fill=\"none\"/>\n",
                        px, y0, y1, px - 4, y0, px - 4, y1);
            }
            if (se->markers) fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\" stroke=\"none\"/>\n", px, py, sw + 1.5);
        }
        fputs("</g>\n", f);
    }
    /* legend, top right inside the plot area */
    if (legend_n) {
        double boxh = 6 + 15 * legend_n, left = DISTILL__PL_ML + (p->log_x ? DISTILL__PL_ZG : 0);
        double lx = (double)w - DISTILL__PL_MR - 150, ly = DISTILL__PL_MT + 6;
        int k = 0, pos = p->legend_pos;
        if (pos == DISTILL_LEGEND_TOP_LEFT || pos == DISTILL_LEGEND_BOTTOM_LEFT) lx = left + 6;
        if (pos == DISTILL_LEGEND_TOP_CENTER || pos == DISTILL_LEGEND_BOTTOM_CENTER) lx = (left + (double)w - DISTILL__PL_MR) / 2 - 72;
        if (pos >= DISTILL_LEGEND_BOTTOM_RIGHT) ly = (double)h - DISTILL__PL_MB - 6 - boxh;
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"144\" height=\"%.0f\" fill=\"white\" fill-opacity=\"0.85\" stroke=\"#bbb\"/>\n",
                lx, ly, boxh);
        for (s = 0; s < p->n_series; s++) {
            const distill_plot_series *se = &p->series[s];
            const char *col = se->color ? se->color : distill__palette[s % 10];
            double y = ly + 13 + 15 * k;
            if (!se->label) continue;
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"%.1f\"%s/>\n",
                    lx + 6, y - 4, lx + 28, y - 4, col, se->width > 0 ? se->width : 1.5,
                    se->dashed ? " stroke-dasharray=\"5,4\"" : "");
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\">", lx + 34, y);
            distill__xml_text(f, se->label);
            fputs("</text>\n", f);
            k++;
        }
    }
    fputs("</g>\n", f);
}

DISTILL_API int distill_svg_write(FILE *f, const char *title, const distill_plot_panel *panels,
                                  int n_panels, int panel_w, int panel_h, distill_error *err) {
    int i, s, top = title && *title ? 30 : 0;
    if (n_panels < 1 || n_panels > 64 || panel_w < 200 || panel_h < 150 || panel_w > 10000 || panel_h > 10000)
        return distill__err(err, "svg: need 1..64 panels of at least 200x150 px (got %d of %dx%d)", n_panels, panel_w, panel_h);
    for (i = 0; i < n_panels; i++)
        for (s = 0; s < panels[i].n_series; s++) {
            const distill_plot_series *se = &panels[i].series[s];
            if (se->n < 0 || (se->n > 0 && (!se->x || !se->y)))
                return distill__err(err, "svg: panel %d series %d: missing x or y", i, s);
        }
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "font-family=\"DejaVu Sans, Arial, sans-serif\">\n", panel_w * n_panels, panel_h + top,
            panel_w * n_panels, panel_h + top);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    if (top) {
        fprintf(f, "<text x=\"%d\" y=\"21\" text-anchor=\"middle\" font-size=\"16\">", panel_w * n_panels / 2);
        distill__xml_text(f, title);
        fputs("</text>\n", f);
    }
    for (i = 0; i < n_panels; i++) distill__panel(f, &panels[i], (double)(i * panel_w), (double)top, panel_w, panel_h);
    fputs("</svg>\n", f);
    return ferror(f) ? distill__err(err, "svg: write error") : 0;
}

DISTILL_API int distill_svg_save(const char *path, const char *title, const distill_plot_panel *panels,
                                 int n_panels, int panel_w, int panel_h, distill_error *err) {
    distill_atomic_file af;
    if (distill_atomic_open(&af, path, err) != 0) return -1;
    if (distill_svg_write(af.f, title, panels, n_panels, panel_w, panel_h, err) != 0) {
        distill_atomic_abort(&af);
        return -1;
    }
    return distill_atomic_commit(&af, err);
}

#endif /* DISTILL_IMPLEMENTATION, part 2 (DISTILL__IMPLEMENTATION_CONTINUES) */

/*
------------------------------------------------------------------------------
This software is available under 2 licenses -- choose whichever you prefer.
------------------------------------------------------------------------------
ALTERNATIVE A - MIT License
Copyright (c) 2026 The distill.h authors
Permission is hereby granted, free of charge, to any person obtaining a copy of
this software and associated documentation files (the "Software"), to deal in
the Software without restriction, including without limitation the rights to
use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies
of the Software, and to permit persons to whom the Software is furnished to do
so, subject to the following conditions:
The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.
THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
------------------------------------------------------------------------------
ALTERNATIVE B - Public Domain (www.unlicense.org)
This is free and unencumbered software released into the public domain.
Anyone is free to copy, modify, publish, use, compile, sell, or distribute this
software, either in source code form or as a compiled binary, for any purpose,
commercial or non-commercial, and by any means.
In jurisdictions that recognize copyright laws, the author or authors of this
software dedicate any and all copyright interest in the software to the public
domain. We make this dedication for the benefit of the public at large and to
the detriment of our heirs and successors. We intend this dedication to be an
overt act of relinquishment in perpetuity of all present and future rights to
this software under copyright law.
THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN
ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION
WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
------------------------------------------------------------------------------
*/
