/* Shared main() for Check unit tests: runs the suites and reports TAP on stdout, so that the
 * automake TAP driver counts every test case. */
#ifndef ML_MLCHECK_H
#define ML_MLCHECK_H

#include <check.h>
#include <stdlib.h>

/* Defines main() running the NULL-terminated list of suite constructors. */
#define ML_CHECK_MAIN(...)                                                                         \
    int main(void)                                                                                 \
    {                                                                                              \
        Suite *(*ctors[])(void) = {__VA_ARGS__, NULL};                                             \
        SRunner *sr = srunner_create(ctors[0]());                                                  \
        for (int i_ = 1; ctors[i_]; i_++)                                                          \
            srunner_add_suite(sr, ctors[i_]());                                                    \
        srunner_set_tap(sr, "-");                                                                  \
        srunner_run_all(sr, CK_SILENT);                                                            \
        int failed_ = srunner_ntests_failed(sr);                                                   \
        srunner_free(sr);                                                                          \
        return failed_ ? EXIT_FAILURE : EXIT_SUCCESS;                                              \
    }

#endif
