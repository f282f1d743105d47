#ifndef SFT_DIST_COPENBLAS_SHIM_H
#define SFT_DIST_COPENBLAS_SHIM_H
#include <cblas.h>
/* OpenBLAS extensions: cblas.h declares them, but name them here so the Swift side
   sees one stable spelling across OpenBLAS versions. */
static inline void sftblas_set_num_threads(int n) { openblas_set_num_threads(n); }
static inline int sftblas_get_num_threads(void) { return openblas_get_num_threads(); }
static inline const char *sftblas_get_config(void) { return openblas_get_config(); }
static inline const char *sftblas_get_corename(void) { return openblas_get_corename(); }
#endif
