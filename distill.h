/* distill.h - knowledge distillation for small language models, on the CPU, in one header.
   No dependencies beyond libc, libm and pthreads. MIT or public domain: see the end of the file.

   WHAT IT IS
       A whole training stack for distilling a teacher's reasoning into a small student: a
       byte-level BPE tokenizer, a JSON/JSONL loader for real distillation datasets with chat
       templates and loss masks, a Llama/Qwen2-style transformer with a hand-written backward
       pass, AdamW, logit distillation (KL/JSD, top-k teacher caches), checkpoints that resume
       bit-exactly, safetensors and llama2.c interop, KV-cached generation, and the evaluation
       metrics of reasoning distillation (pass@k, completion rate, think-tag rates). It is built
       to run the experiment design of "The Valley of Code Reasoning" (arXiv 2510.06101) on a
       laptop, and to be read: every op's gradient formula sits above the code computing it.

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

       Fine-tuning a student on teacher traces (the paper's method), in full:

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

       (every call can fail: check each NULL / -1 and print err.msg, as examples/sft.c does).
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
       DISTILL_HEAD_CHUNK      positions per LM-head chunk (memory vs speed of the fused loss)
   ENVIRONMENT
       DISTILL_THREADS=n       worker threads (default: one per core)
       DISTILL_SIMD=scalar|avx2|avx512|neon   force a kernel set (tests, benchmarks)

   CONVENTIONS
       Errors: functions that can fail return 0 / a pointer on success and -1 / NULL on error,
       filling the caller's distill_error (may be NULL) with a message naming the file, line and
       field ("data.jsonl:17:5: field 'messages': expected array"). There is no global error
       state. The only mutable global is the thread pool; call the library from one user thread
       at a time, or give each thread its own objects (tokenizer encoding is thread-safe).
       Files the library writes are written to a temporary file, fsync'ed and renamed.
       Sizes are size_t, file offsets int64_t, token ids int32_t; losses accumulate in double.
       Results are bit-identical for 1 and N threads.

   SHAPE LETTERS (used in every comment)
       B batch, T time (sequence), C channels (dim), V vocabulary, NH query heads,
       NKV key/value heads, HS head size (C/NH), F feed-forward width, L layers.

   TABLE OF CONTENTS (the implementation follows the data: read it top to bottom)
       1. Platform        errors, RNG (xoshiro256**), aligned memory, crash-safe files
       2. Kernels         thread pool, vector macros, packed matmul, flash attention, OpenBLAS
       3. JSON            strict RFC 8259 parser, JSONL line reader
       4. Tokenizer       byte-level BPE: pre-tokenizers, training, encoding, file formats
       5. Data            schema adapters, chat template, loss weights, subsets, loader, packing
       6. Model           config, size table, every op forward next to its backward, fused
                          LM head + cross-entropy, the activation-memory formula, AdamW
       7. Trainer         logit distillation, top-k teacher cache, checkpoints, safetensors,
                          llama2.c, the training loop
       8. Generation      KV cache, sampling, evaluation metrics, pass@k
       9. Reports         results tables, SVG plots
      10. License
*/
#if defined(DISTILL_IMPLEMENTATION) && !defined(_POSIX_C_SOURCE) && !defined(_WIN32)
#define _POSIX_C_SOURCE 200809L
#endif

#ifndef DISTILL_H
#define DISTILL_H

#include "parts/00_platform_api.h"
#include "parts/10_kernels_api.h"
#include "parts/20_json_api.h"
#include "parts/30_tokenizer_api.h"
#include "parts/40_data_api.h"
#include "parts/50_model_api.h"
#include "parts/60_trainer_api.h"
#include "parts/70_generate_api.h"
#include "parts/80_report_api.h"

#ifdef __cplusplus
}
#endif
#endif /* DISTILL_H */

/* ===================================================================================== */
/*                                   IMPLEMENTATION                                      */
/* ===================================================================================== */
#if defined(DISTILL_IMPLEMENTATION) && !defined(DISTILL_IMPLEMENTATION_DONE)
#define DISTILL_IMPLEMENTATION_DONE

#include "parts/00_platform_impl.h"
#include "parts/10_kernels_impl.h"
#include "parts/20_json_impl.h"
#include "parts/30_tokenizer_impl.h"
#include "parts/40_data_impl.h"
#include "parts/50_model_impl.h"
#include "parts/60_trainer_impl.h"
#include "parts/70_generate_impl.h"
#include "parts/80_report_impl.h"

#endif /* DISTILL_IMPLEMENTATION */

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
