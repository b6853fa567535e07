/* Linked only into the test hosts build/tests/adeptlua-fakecuda and build/tests/fakecuda/adept.so: registers
   the protected-memory fake device as the "cuda" backend when the program (or the module) is loaded, so Lua
   recipes and specs run their device paths on a machine without a GPU (docs/cuda.md). */
#include "fake_device.h"

__attribute__((constructor)) static void install_fake_cuda(void) { adept_fake_device_install(); }
