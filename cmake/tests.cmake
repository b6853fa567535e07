# Test registration. Every file that follows the naming convention becomes a ctest test:
#   tests/unit/test_*.c       C unit tests (label unit; test_cuda_*.c also cuda)
#   tests/lua/*_spec.lua      busted specs under Lua 5.4 loading build/adept.so (label lua)
#   tests/parity/test_*.py    references in Debian's python3-torch / node (label parity); exit 77 = skipped
#   tests/recipes/*.lua       recipe-level tests run by build/adeptlua (label recipe)
# A test needing ../shared skips (exit 77) with a message when it is absent.
# The numerically sensitive tests (ADEPT_KERNEL_TESTS) run a second and third time under other OpenBLAS kernels
# (label kernels), so that a tolerance tuned to one machine's kernel fails here rather than on a user's machine.
set(ADEPT_SHARED_DIR ${CMAKE_SOURCE_DIR}/../shared CACHE PATH "Shared models, corpora and tokenizers")
set(ADEPT_TEST_ENV
  "ADEPTLUA=$<TARGET_FILE:adeptlua>"
  "ADEPT_SHARED=${ADEPT_SHARED_DIR}"
  "ADEPT_SOURCE=${CMAKE_SOURCE_DIR}"
  "ADEPT_BUILD=${CMAKE_BINARY_DIR}"
  "ASAN_OPTIONS=detect_leaks=1"
  "LSAN_OPTIONS=suppressions=${CMAKE_SOURCE_DIR}/tests/lsan.supp:print_suppressions=0"
  "OMP_NUM_THREADS=2")

# The tests whose results go through BLAS kernels (the model's GEMMs in engine/model, forward and backward, and
# what is computed from them: losses, gradients, optimizer steps, importance and eval scores). The elementwise
# ops, reductions and the f64 layer kernels do not call BLAS and run once.
# Each also runs as kernels/<core>/<name> with OPENBLAS_CORETYPE=<core>: Haswell (AVX2; skipped with the reason
# on a CPU without it) and SkylakeX (AVX-512; tests/with_coretype.sh skips it on a CPU without avx512f,
# where OpenBLAS would die of an illegal instruction). They sum in other orders and blockings than the default
# kernel, which is what a tolerance derived from the arithmetic must survive.
set(ADEPT_KERNEL_TESTS
  unit/test_model unit/test_hf_model unit/test_eval unit/test_adapt
  lua/model_spec lua/train_spec lua/optim_spec lua/eval_spec lua/importance_spec lua/model_io_spec
  lua/adept_stage2_spec lua/lora_spec
  parity/test_model_parity parity/test_adamw_parity parity/test_expand_hf parity/test_hf_dir_format
  parity/test_eval_kernels parity/test_stories260k parity/test_attention_xent
  recipe/adept_smoke recipe/train_resume_dataset)
set(ADEPT_KERNEL_CORES Haswell SkylakeX)

# Registers the kernel variants of test <name> when it is in ADEPT_KERNEL_TESTS (not under sanitizers: the
# ASan pass checks memory, not numbers); the arguments after workdir are the test's command.
function(adept_kernel_variants name env workdir)
  if(NOT name IN_LIST ADEPT_KERNEL_TESTS OR ADEPT_SANITIZE)
    return()
  endif()
  foreach(core IN LISTS ADEPT_KERNEL_CORES)
    add_test(NAME kernels/${core}/${name} COMMAND ${CMAKE_SOURCE_DIR}/tests/with_coretype.sh ${core} ${ARGN}
             WORKING_DIRECTORY ${workdir})
    set_tests_properties(kernels/${core}/${name} PROPERTIES LABELS kernels SKIP_RETURN_CODE 77
                         ENVIRONMENT "${env}")
  endforeach()
endfunction()

file(GLOB unit_tests CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/unit/test_*.c)
foreach(src IN LISTS unit_tests)
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/tests/unit ${CMAKE_SOURCE_DIR}/tests/support
                             ${CMAKE_SOURCE_DIR}/engine)
  if(name MATCHES "^test_(device_backend|grad_sync_device|device_oom)$")
    target_sources(${name} PRIVATE ${CMAKE_SOURCE_DIR}/tests/support/fake_device.c)
  endif()
  target_link_libraries(${name} PRIVATE adept)
  add_test(NAME unit/${name} COMMAND ${name} WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
  # test_cuda_*: the CUDA backend against the CPU one; they skip (77) without a device, and tests/device/run
  # selects them on a GPU machine with -L cuda
  set(labels unit)
  if(name MATCHES "^test_cuda_")
    set(labels unit cuda)
  endif()
  set_tests_properties(unit/${name} PROPERTIES LABELS "${labels}" SKIP_RETURN_CODE 77 ENVIRONMENT "${ADEPT_TEST_ENV}")
  adept_kernel_variants(unit/${name} "${ADEPT_TEST_ENV}" ${CMAKE_BINARY_DIR} $<TARGET_FILE:${name}>)
endforeach()

# Under sanitizers the Lua specs load build-asan/adept.so into Debian's uninstrumented lua5.4, which must
# preload the ASan runtime. The adeptlua host the specs spawn inherits LD_PRELOAD, so with clang (whose
# default is a static runtime, incompatible with a preloaded one) it links the shared runtime as well.
set(ADEPT_LUA_TEST_ENV ${ADEPT_TEST_ENV})
if(ADEPT_SANITIZE)
  if(CMAKE_C_COMPILER_ID MATCHES "Clang")
    set(asan_rt_name libclang_rt.asan-${CMAKE_SYSTEM_PROCESSOR}.so)
  else()
    set(asan_rt_name libasan.so) # gcc links it dynamically already
  endif()
  execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=${asan_rt_name}
                  OUTPUT_VARIABLE ADEPT_ASAN_RUNTIME OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT IS_ABSOLUTE "${ADEPT_ASAN_RUNTIME}" OR NOT EXISTS "${ADEPT_ASAN_RUNTIME}")
    message(FATAL_ERROR "ADEPT_SANITIZE: cannot find the ASan runtime ${asan_rt_name} (got '${ADEPT_ASAN_RUNTIME}')")
  endif()
  if(CMAKE_C_COMPILER_ID MATCHES "Clang")
    get_filename_component(asan_rt_dir ${ADEPT_ASAN_RUNTIME} DIRECTORY)
    target_link_options(adeptlua PRIVATE -shared-libasan "LINKER:-rpath,${asan_rt_dir}")
  endif()
  list(APPEND ADEPT_LUA_TEST_ENV "LD_PRELOAD=${ADEPT_ASAN_RUNTIME}")
  # With the runtime preloaded into an uninstrumented host, LSan's record of dynamic TLS blocks (those of the
  # dlopen'ed adept.so and its OpenBLAS/OpenMP threads) holds garbage ranges and its stop-the-world tracer
  # dies reading them (LLVM 14, glibc >= 2.34). use_tls=0 skips TLS as a source of roots: stricter, not
  # weaker (memory reachable only from TLS would show as a leak), and no such allocation exists in our code.
  list(TRANSFORM ADEPT_LUA_TEST_ENV REPLACE "^LSAN_OPTIONS=(.*)$" "LSAN_OPTIONS=\\1:use_tls=0")
endif()

find_program(LUA54 lua5.4)
find_program(BUSTED busted)
file(GLOB lua_specs CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/lua/*_spec.lua)
if(LUA54 AND BUSTED)
  foreach(spec IN LISTS lua_specs)
    get_filename_component(name ${spec} NAME_WE)
    set(cmd ${LUA54} ${BUSTED} --output=utfTerminal
            --lpath=${CMAKE_SOURCE_DIR}/tests/lua/?.lua --cpath=${CMAKE_BINARY_DIR}/?.so ${spec})
    add_test(NAME lua/${name} COMMAND ${cmd} WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
    set_tests_properties(lua/${name} PROPERTIES LABELS lua ENVIRONMENT "${ADEPT_LUA_TEST_ENV}")
    adept_kernel_variants(lua/${name} "${ADEPT_LUA_TEST_ENV}" ${CMAKE_SOURCE_DIR} ${cmd})
  endforeach()
else()
  message(WARNING "lua5.4 or busted not found: the Lua specs are not registered (make deps installs them)")
endif()

# The engine side of the kernel parity tests (tests/parity/test_attention_xent.py finds it in ADEPT_BUILD)
add_executable(parity_kernel_driver ${CMAKE_SOURCE_DIR}/tests/parity/kernel_driver.c)
target_include_directories(parity_kernel_driver PRIVATE ${CMAKE_SOURCE_DIR}/engine)
target_link_libraries(parity_kernel_driver PRIVATE adept)

file(GLOB parity_tests CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/parity/test_*.py)
foreach(script IN LISTS parity_tests)
  get_filename_component(name ${script} NAME_WE)
  # Debian's interpreter on purpose: python3-torch and python3-numpy live there, not in a pyenv.
  add_test(NAME parity/${name} COMMAND /usr/bin/python3 ${script} WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
  set_tests_properties(parity/${name} PROPERTIES LABELS parity SKIP_RETURN_CODE 77
                       ENVIRONMENT "${ADEPT_TEST_ENV};PYTHONUNBUFFERED=1")
  adept_kernel_variants(parity/${name} "${ADEPT_TEST_ENV};PYTHONUNBUFFERED=1" ${CMAKE_BINARY_DIR}
                        /usr/bin/python3 ${script})
endforeach()

file(GLOB recipe_tests CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/recipes/*.lua)
foreach(recipe IN LISTS recipe_tests)
  get_filename_component(name ${recipe} NAME_WE)
  add_test(NAME recipe/${name} COMMAND adeptlua ${recipe} WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
  set_tests_properties(recipe/${name} PROPERTIES LABELS recipe SKIP_RETURN_CODE 77 ENVIRONMENT "${ADEPT_TEST_ENV}")
  adept_kernel_variants(recipe/${name} "${ADEPT_TEST_ENV}" ${CMAKE_BINARY_DIR} $<TARGET_FILE:adeptlua> ${recipe})
endforeach()

# The engine's side of the GPU benchmark (not a test: tests/device/run runs it beside tests/device/bench.py)
add_executable(bench_cuda_step ${CMAKE_SOURCE_DIR}/tests/bench/cuda_step/bench_cuda_step.c)
target_include_directories(bench_cuda_step PRIVATE ${CMAKE_SOURCE_DIR}/engine)
target_link_libraries(bench_cuda_step PRIVATE adept)

# ---- the device path of the Lua API without a GPU (docs/cuda.md, "Testing without a GPU") ----------------------
# build/tests/adeptlua-fakecuda: the adeptlua host with the protected-memory fake device of tests/support
# registered as the "cuda" backend at start-up. Test-only: build/adeptlua and build/adept.so never contain it.
add_executable(adeptlua_fakecuda ${CMAKE_SOURCE_DIR}/lua/adeptlua.c ${CMAKE_SOURCE_DIR}/tests/support/fake_device.c
               ${CMAKE_SOURCE_DIR}/tests/support/fake_cuda_host.c)
target_include_directories(adeptlua_fakecuda PRIVATE ${CMAKE_SOURCE_DIR}/lua ${CMAKE_SOURCE_DIR}/tests/support)
target_link_libraries(adeptlua_fakecuda PRIVATE adept_bindings adept PkgConfig::LUA)
set_target_properties(adeptlua_fakecuda PROPERTIES OUTPUT_NAME adeptlua-fakecuda ENABLE_EXPORTS ON
                      RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
if(ADEPT_SANITIZE AND CMAKE_C_COMPILER_ID MATCHES "Clang")
  target_link_options(adeptlua_fakecuda PRIVATE -shared-libasan "LINKER:-rpath,${asan_rt_dir}")
endif()

# tests/device/device_spec.lua, one script for two backends:
#   lua/device_fake  on the fake device: every result BITWISE the CPU's (the same kernels); a host touch of
#                    device memory kills it (labels lua and unit, so the ASan pass runs it too)
#   cuda/device_spec on a real GPU (label cuda: tests/device/run runs it): results within derived tolerances;
#                    exits 77 (skipped) without a CUDA device
set(device_spec ${CMAKE_SOURCE_DIR}/tests/device/device_spec.lua)
add_test(NAME lua/device_fake COMMAND adeptlua_fakecuda ${device_spec} WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
set_tests_properties(lua/device_fake PROPERTIES LABELS "lua;unit" SKIP_RETURN_CODE 77
                     ENVIRONMENT "${ADEPT_TEST_ENV}")
add_test(NAME cuda/device_spec COMMAND adeptlua ${device_spec} WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
set_tests_properties(cuda/device_spec PROPERTIES LABELS cuda SKIP_RETURN_CODE 77 ENVIRONMENT "${ADEPT_TEST_ENV}")
# a shipped recipe end to end with `--device cuda` on the fake device (tests/recipes/adept_smoke.lua runs
# recipes/adept.lua on stories260K with its checks; 77 without ../shared)
add_test(NAME lua/device_fake_recipe COMMAND adeptlua_fakecuda --device cuda
         ${CMAKE_SOURCE_DIR}/tests/recipes/adept_smoke.lua WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
set_tests_properties(lua/device_fake_recipe PROPERTIES LABELS "lua;recipe" SKIP_RETURN_CODE 77
                     ENVIRONMENT "${ADEPT_TEST_ENV}")

# more recipe tests with `--device cuda` on the fake device: the baselines and ablations and TASL in the device's
# default precision (bf16); pt_lora's merge and grad_accum's equal losses are bounded by fp32 rounding, so they run
# with --precision f32 (in bf16 a product's rounding of tiny fp32 differences exceeds those bounds by design)
foreach(spec IN ITEMS "baselines_ablations;bf16" "tasl_smoke;bf16" "pt_lora_smoke;f32" "cpt_grad_accum;f32")
  list(GET spec 0 name)
  list(GET spec 1 prec)
  add_test(NAME recipe/device_fake_${name} COMMAND adeptlua_fakecuda --device cuda --precision ${prec}
           ${CMAKE_SOURCE_DIR}/tests/recipes/${name}.lua WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
  set_tests_properties(recipe/device_fake_${name} PROPERTIES LABELS recipe SKIP_RETURN_CODE 77
                       ENVIRONMENT "${ADEPT_TEST_ENV}")
endforeach()

# tests/device/hf_check.py (tests/device/run runs it on a GPU with transformers): train on the device, save the
# HF directory, compare its logits by an independent reader; here on the fake device, so the script stays working
add_test(NAME parity/hf_check_fake COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/device/hf_check.py
         --adeptlua $<TARGET_FILE:adeptlua_fakecuda> --device cuda WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
set_tests_properties(parity/hf_check_fake PROPERTIES LABELS parity SKIP_RETURN_CODE 77 ENVIRONMENT "${ADEPT_TEST_ENV}")

# Data parallelism over MPI (tests/dist/*.sh): mpirun with 2 processes against 1; skip (77) without MPI
file(GLOB dist_tests CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/dist/*.sh)
foreach(script IN LISTS dist_tests)
  get_filename_component(name ${script} NAME_WE)
  add_test(NAME dist/${name} COMMAND ${script} WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
  set_tests_properties(dist/${name} PROPERTIES LABELS dist SKIP_RETURN_CODE 77
                       ENVIRONMENT "${ADEPT_TEST_ENV};ADEPTLUA=$<TARGET_FILE:adeptlua>")
endforeach()
