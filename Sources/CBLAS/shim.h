// One small BLAS shim: OpenBLAS on Linux, Accelerate on macOS.
#ifndef KVDUEL_CBLAS_SHIM_H
#define KVDUEL_CBLAS_SHIM_H
#if defined(__APPLE__)
#define ACCELERATE_NEW_LAPACK 1
#include <Accelerate/Accelerate.h>
static inline void kvduel_blas_set_threads(int n) { (void)n; }
#else
#include <cblas.h>
// OpenBLAS (pthread build): we keep BLAS single-threaded and split work across our own workers.
static inline void kvduel_blas_set_threads(int n) { openblas_set_num_threads(n); }
#endif
#endif
