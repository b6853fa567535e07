/* A fake device for tests: the CPU backend's kernels over separate, protected "device" memory. Its arena is
   PROT_NONE except while one of its entries runs, so any host read or write of device memory outside the
   backend (engine, bindings, Lua) faults and the process dies with a message naming the cause. Results are
   bitwise the CPU backend's: the same kernels run on the same inputs. Test code only: never linked into
   libadept, build/adeptlua or build/adept.so (docs/cuda.md, "Testing without a GPU"). */
#ifndef ADEPT_TESTS_FAKE_DEVICE_H
#define ADEPT_TESTS_FAKE_DEVICE_H

#include <stddef.h>

#include "adept/backend.h"

/* The table ("test-device", device ADEPT_CUDA); the first call reserves the arena and installs the fault
   reporter (SIGSEGV). NULL when the arena cannot be reserved (a message is printed). */
const adept_backend *adept_fake_device(void);
/* Registers the table as the ADEPT_CUDA backend (what the fake hosts do at start-up). */
void adept_fake_device_install(void);
/* The device's memory in bytes (0: unlimited, the default), as a GPU's is fixed: allocations past it fail with
   ADEPT_ENOMEM and memory_info reports it. ADEPT_FAKE_DEVICE_MIB sets it at the first adept_fake_device(). */
void adept_fake_device_set_capacity(size_t bytes);
/* 1 when p lies in the arena (any address below its high-water mark). */
int adept_fake_device_owns(const void *p);

typedef struct adept_fake_device_stats {
    long kernel_calls;  /* kernel entries run */
    long foreign_ptrs;  /* host pointers passed where a device pointer belongs (must stay 0) */
    long frees;         /* blocks freed */
    long live_blocks;   /* blocks allocated and not freed */
    size_t live_bytes;  /* their bytes (page-rounded) */
    size_t high_water;  /* bytes of the arena ever used */
} adept_fake_device_stats;
adept_fake_device_stats adept_fake_device_stats_now(void);

#endif
