/* The NCCL communicator (engine/dist/nccl/nccl_comm.c), built with the CUDA backend (ADEPT_HAVE_NCCL). */
#ifndef ADEPT_DIST_NCCL_COMM_H
#define ADEPT_DIST_NCCL_COMM_H

#include "adept/dist.h"

#ifdef ADEPT_HAVE_NCCL
/* A communicator that reduces CUDA-resident slabs with NCCL and sends everything else to `host` (which it does
   not own and which must outlive it); NCCL itself starts at the first device reduction. */
adept_status adept_comm_nccl_wrap(adept_comm *host, adept_comm **out);
/* NCCL's version code (opens the library). */
adept_status adept_nccl_version(int *version);
#endif

#endif
