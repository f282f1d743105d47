/*
 * CMPI: the part of mpi.h that Swift cannot import.
 *
 * Open MPI spells MPI_COMM_WORLD, MPI_IN_PLACE, the datatypes and the reduction ops as
 * macros over incomplete extern structs; the Swift importer rejects every one of them
 * ("structure not supported"). These static inline functions take and return only plain C
 * types, so the Swift side never names an MPI handle. Everything works on MPI_COMM_WORLD:
 * sft-dist is pure data parallelism, one communicator is all it needs.
 */
#ifndef SFT_DIST_CMPI_SHIM_H
#define SFT_DIST_CMPI_SHIM_H
#include <mpi.h>
#include <stdint.h>

/* Reduction ops the Swift side may ask for. */
enum { CMPI_SUM = 0, CMPI_MAX = 1, CMPI_MIN = 2 };

static inline MPI_Op cmpi_op(int op) {
    switch (op) {
    case CMPI_MAX: return MPI_MAX;
    case CMPI_MIN: return MPI_MIN;
    default: return MPI_SUM;
    }
}

/* Returns the MPI error code; *provided receives the granted thread level. */
static inline int cmpi_init_thread(int required, int *provided) {
    return MPI_Init_thread(NULL, NULL, required, provided);
}
static inline int cmpi_initialized(void) { int f = 0; MPI_Initialized(&f); return f; }
static inline int cmpi_finalized(void) { int f = 0; MPI_Finalized(&f); return f; }
static inline int cmpi_finalize(void) { return MPI_Finalize(); }
static inline int cmpi_thread_multiple(void) { return MPI_THREAD_MULTIPLE; }
static inline int cmpi_thread_funneled(void) { return MPI_THREAD_FUNNELED; }

static inline int cmpi_rank(void) { int r = 0; MPI_Comm_rank(MPI_COMM_WORLD, &r); return r; }
static inline int cmpi_size(void) { int s = 1; MPI_Comm_size(MPI_COMM_WORLD, &s); return s; }
static inline double cmpi_wtime(void) { return MPI_Wtime(); }

/* Failing calls return their error code instead of aborting inside MPI, so the caller can
   name the call and end the job with its own exit code. */
static inline int cmpi_errors_return(void) { return MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN); }

static inline int cmpi_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }
static inline void cmpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

/* In-place allreduce: every rank passes its buffer, every rank gets the reduction. */
static inline int cmpi_allreduce_f32(float *buf, int count, int op) {
    return MPI_Allreduce(MPI_IN_PLACE, buf, count, MPI_FLOAT, cmpi_op(op), MPI_COMM_WORLD);
}
static inline int cmpi_allreduce_f64(double *buf, int count, int op) {
    return MPI_Allreduce(MPI_IN_PLACE, buf, count, MPI_DOUBLE, cmpi_op(op), MPI_COMM_WORLD);
}
static inline int cmpi_allreduce_i64(int64_t *buf, int count, int op) {
    return MPI_Allreduce(MPI_IN_PLACE, buf, count, MPI_INT64_T, cmpi_op(op), MPI_COMM_WORLD);
}

/* Non-blocking in-place float sum, for overlapping gradient buckets with the backward
   pass. The request is returned as an opaque handle index into a small table. */
#define CMPI_MAX_REQUESTS 256
/* A function-local table: a file-scope static in a header is not emitted for Swift. */
static inline MPI_Request *cmpi_request_table(void) {
    static MPI_Request table[CMPI_MAX_REQUESTS];
    return table;
}
#define cmpi_requests (cmpi_request_table())
static inline int cmpi_iallreduce_sum_f32(float *buf, int count, int slot) {
    if (slot < 0 || slot >= CMPI_MAX_REQUESTS) return -1;
    return MPI_Iallreduce(MPI_IN_PLACE, buf, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                          &cmpi_requests[slot]);
}
/* 1 when complete, 0 when still running; drives progress inside Open MPI. */
static inline int cmpi_test(int slot) {
    int done = 0;
    MPI_Test(&cmpi_requests[slot], &done, MPI_STATUS_IGNORE);
    return done;
}
static inline int cmpi_wait(int slot) {
    return MPI_Wait(&cmpi_requests[slot], MPI_STATUS_IGNORE);
}

static inline int cmpi_bcast_bytes(void *buf, int count, int root) {
    return MPI_Bcast(buf, count, MPI_BYTE, root, MPI_COMM_WORLD);
}
static inline int cmpi_bcast_f32(float *buf, int count, int root) {
    return MPI_Bcast(buf, count, MPI_FLOAT, root, MPI_COMM_WORLD);
}
/* Fixed-size gather: rank i's `count` bytes land at recv + i*count on root. */
static inline int cmpi_gather_bytes(const void *send, int count, void *recv, int root) {
    return MPI_Gather(send, count, MPI_BYTE, recv, count, MPI_BYTE, root, MPI_COMM_WORLD);
}
static inline int cmpi_allgather_bytes(const void *send, int count, void *recv) {
    return MPI_Allgather(send, count, MPI_BYTE, recv, count, MPI_BYTE, MPI_COMM_WORLD);
}
/* Variable-size versions: counts/displs are per rank, in bytes. */
static inline int cmpi_gatherv_bytes(const void *send, int count, void *recv,
                                     const int *counts, const int *displs, int root) {
    return MPI_Gatherv(send, count, MPI_BYTE, recv, counts, displs, MPI_BYTE, root,
                       MPI_COMM_WORLD);
}
static inline int cmpi_allgatherv_bytes(const void *send, int count, void *recv,
                                        const int *counts, const int *displs) {
    return MPI_Allgatherv(send, count, MPI_BYTE, recv, counts, displs, MPI_BYTE,
                          MPI_COMM_WORLD);
}

/* ZeRO (arXiv 1910.02054, sec. 5): the summed gradient split over ranks, and the updated
   parameter shards gathered back. The non-blocking reduce-scatter shares the request table
   with the sums above; `counts` must stay valid until the request completes. */
static inline int cmpi_ireduce_scatter_sum_f32(const float *send, float *recv, const int *counts, int slot) {
    if (slot < 0 || slot >= CMPI_MAX_REQUESTS) return -1;
    return MPI_Ireduce_scatter(send, recv, counts, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                               &cmpi_requests[slot]);
}
/* In place: rank i's counts[i] floats at buf + displs[i] reach every rank. */
static inline int cmpi_allgatherv_inplace_f32(float *buf, const int *counts, const int *displs) {
    return MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_FLOAT, buf, counts, displs, MPI_FLOAT, MPI_COMM_WORLD);
}
#endif
