/* Shared by the fuzz harnesses that lay the input out as files: write n bytes of p to path.
   0, or -1 when the file cannot be opened (the input is then skipped). */
#ifndef FUZZ_PUT_H
#define FUZZ_PUT_H
#include <stdio.h>
#include <stdint.h>
static int put(const char *path, const uint8_t *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    if (n) fwrite(p, 1, n, f);
    fclose(f);
    return 0;
}
#endif
