/* distill.h - knowledge distillation for small language models, on the CPU, in one header.
   MIT or public domain (your choice); see the end of the file.

   (The manual at the top of this file is written by the core issue; the header is being
   assembled from parts/ during development and is inlined into this one file before release.)

   QUICK START
       Do this:
           #define DISTILL_IMPLEMENTATION
           #include "distill.h"
       in exactly ONE .c or .cpp file, never in a header. Every other file that uses the
       library includes "distill.h" without the define.

       Include distill.h first in that file (it defines _POSIX_C_SOURCE for clock_gettime,
       fsync and pthreads), or compile it with -D_POSIX_C_SOURCE=200809L.

       cc -std=c99 -O2 -mavx2 -mfma my_trainer.c -lm -lpthread

   CONFIGURATION MACROS (define before the #include)
       DISTILL_IMPLEMENTATION  emit the implementation in this translation unit
       DISTILL_STATIC          make every function static (private copy per translation unit)
       DISTILL_API             override the linkage of the public functions
       DISTILL_MALLOC(sz), DISTILL_REALLOC(p,sz), DISTILL_FREE(p)
                               replace the allocator: define all three or none
       DISTILL_ASSERT(x)       replace assert()
       DISTILL_OPENBLAS        use OpenBLAS sgemm for the large matrix products (-lopenblas)
       DISTILL_NO_THREADS      build without pthreads: everything runs on the calling thread
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
