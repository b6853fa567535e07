/* The side queue of the gradient all-reduce (adept/backend.h, comm_queue): a second stream on which NCCL reduces
   the upper layers' gradients while the backward kernels for the layers below still run on the main (legacy
   default) stream. It is made non-blocking: a blocking stream would wait for the legacy stream's every kernel and
   make it wait in turn, which is exactly the overlap wanted gone. The two queues are ordered only by the events
   recorded here, without a host wait. */
#include "common.cuh"

namespace adept_cuda {

static cudaStream_t side;
static cudaEvent_t main_mark, side_mark;

static adept_status ensure_side(void) {
    if (side) return ADEPT_OK;
    ADEPT_TRY(take_pending());
    cudaStream_t s = nullptr;
    ADEPT_TRY(check("comm_queue (cudaStreamCreateWithFlags)", cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking)));
    /* timing off: these events only order the queues, and untimed ones are the cheap kind */
    adept_status st = check("comm_queue (cudaEventCreateWithFlags)",
                            cudaEventCreateWithFlags(&main_mark, cudaEventDisableTiming));
    if (st == ADEPT_OK)
        st = check("comm_queue (cudaEventCreateWithFlags)", cudaEventCreateWithFlags(&side_mark, cudaEventDisableTiming));
    if (st != ADEPT_OK) {
        if (main_mark) cudaEventDestroy(main_mark);
        cudaStreamDestroy(s);
        main_mark = side_mark = nullptr;
        return st;
    }
    side = s;
    return ADEPT_OK;
}

void *comm_queue(void) { return ensure_side() == ADEPT_OK ? (void *)side : nullptr; }

adept_status comm_queue_wait_main(void) {
    ADEPT_TRY(ensure_side());
    ADEPT_TRY(check("comm_queue_wait_main (cudaEventRecord)", cudaEventRecord(main_mark, 0)));
    return check("comm_queue_wait_main (cudaStreamWaitEvent)", cudaStreamWaitEvent(side, main_mark, 0));
}

adept_status main_wait_comm_queue(void) {
    ADEPT_TRY(ensure_side());
    ADEPT_TRY(check("main_wait_comm_queue (cudaEventRecord)", cudaEventRecord(side_mark, side)));
    return check("main_wait_comm_queue (cudaStreamWaitEvent)", cudaStreamWaitEvent(0, side_mark, 0));
}

} // namespace adept_cuda
