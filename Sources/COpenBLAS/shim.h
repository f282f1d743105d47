#ifndef SFT_DIST_COPENBLAS_SHIM_H
#define SFT_DIST_COPENBLAS_SHIM_H
#include <stddef.h>
#include <cblas.h>
/* OpenBLAS extensions: cblas.h declares them, but name them here so the Swift side
   sees one stable spelling across OpenBLAS versions. */
static inline void sftblas_set_num_threads(int n) { openblas_set_num_threads(n); }
static inline int sftblas_get_num_threads(void) { return openblas_get_num_threads(); }
static inline const char *sftblas_get_config(void) { return openblas_get_config(); }
static inline const char *sftblas_get_corename(void) { return openblas_get_corename(); }
/* A software prefetch into every cache level; it never faults. The decode kernels
   (DecodeGEMM, DecodeHeadGEMM) read weights in pieces too short or too far apart for the
   hardware prefetchers (rows 4.6 KB apart, one page each). */
static inline void sftblas_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }
/* LAPACK's symmetric eigenvalue driver, which libopenblas carries (no LAPACKE header on
   Debian): Fortran calling convention, with the hidden lengths of the two character
   arguments that gfortran passes last. */
extern void dsyev_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w,
                   double *work, const int *lwork, int *info, size_t jobz_len, size_t uplo_len);
/* Eigenvalues only of the column-major lower triangle of a (destroyed). */
static inline int sftblas_dsyev_values(int n, double *a, double *w, double *work, int lwork) {
    int info = 0;
    dsyev_("N", "L", &n, a, &n, w, work, &lwork, &info, 1, 1);
    return info;
}
/* Eigenvalues (ascending) and eigenvectors (the columns of the column-major a) of the
   column-major lower triangle of a. */
static inline int sftblas_dsyev_vectors(int n, double *a, double *w, double *work, int lwork) {
    int info = 0;
    dsyev_("V", "L", &n, a, &n, w, work, &lwork, &info, 1, 1);
    return info;
}
#endif
