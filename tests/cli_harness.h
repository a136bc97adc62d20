/* Helpers of the tests that drive the ./distill tool (include after harness.h). */
#ifndef DISTILL_TEST_CLI_HARNESS_H
#define DISTILL_TEST_CLI_HARNESS_H
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

/* 1 if ./distill has been built (make builds it before the tests) */
static int have_cli(void) {
    FILE *f = fopen("distill", "rb");
    if (!f) return 0;
    fclose(f);
    return 1;
}

/* Run a shell command; its exit status, or -1 if it could not run or died of a signal. */
static int sh(const char *cmd) {
    int st;
    fflush(stdout);
    st = system(cmd);
    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
#endif
