# The CUDA backend (engine/ops/cuda/), selected by ADEPT_CUDA:
#   AUTO (default)  build it when nvcc and cuBLAS are found (nvcc on PATH, CUDACXX, or /usr/local/cuda/bin)
#   ON              build it or stop with the reason
#   OFF             never build it (adept_backend_for(ADEPT_CUDA) then says so)
# The backend links into libadept; at run time it registers itself only when a device is present, so a CPU-only
# run of a CUDA build behaves like a CPU build. ADEPT_CUDA_ARCHS picks the GPU targets: the default builds
# machine code for sm_80 (A100) and sm_90 (H100/H200) plus PTX for later GPUs; developers may set one target
# (e.g. -DADEPT_CUDA_ARCHS=90-real) to halve the compile time.
set(ADEPT_CUDA AUTO CACHE STRING "Build the CUDA backend: AUTO, ON or OFF")
set_property(CACHE ADEPT_CUDA PROPERTY STRINGS AUTO ON OFF)
set(ADEPT_CUDA_ARCHS "80-real;90-real;90-virtual" CACHE STRING "CUDA architectures of the backend")
string(TOUPPER "${ADEPT_CUDA}" ADEPT_CUDA)
if(NOT ADEPT_CUDA MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "ADEPT_CUDA must be AUTO, ON or OFF, got '${ADEPT_CUDA}'")
endif()

set(ADEPT_HAVE_CUDA OFF)
# Sanitizer and fuzz builds (clang, -fsanitize) would link nvcc's objects through the CUDA host linker with
# another compiler's sanitizer runtime; they test host code, so AUTO leaves CUDA out of them.
if(ADEPT_CUDA STREQUAL "AUTO" AND (ADEPT_SANITIZE OR ADEPT_FUZZ))
  message(STATUS "adeptlua: CUDA backend OFF in sanitizer/fuzz builds (ADEPT_CUDA=ON forces it)")
elseif(NOT ADEPT_CUDA STREQUAL "OFF")
  set(why "")
  # CMake looks for nvcc on PATH and in CUDACXX only; the toolkit's usual home is tried as well.
  if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX})
    find_program(ADEPT_NVCC nvcc HINTS /usr/local/cuda/bin /usr/local/cuda-13.0/bin /opt/cuda/bin)
    if(ADEPT_NVCC)
      set(CMAKE_CUDA_COMPILER ${ADEPT_NVCC} CACHE FILEPATH "CUDA compiler")
    endif()
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(NOT CMAKE_CUDA_COMPILER)
    set(why "nvcc was not found (PATH, CUDACXX, /usr/local/cuda/bin)")
  else()
    # the toolkit found next to the compiler, not another one on the system
    get_filename_component(ADEPT_CUDA_BIN "${CMAKE_CUDA_COMPILER}" DIRECTORY)
    set(CUDAToolkit_ROOT "${ADEPT_CUDA_BIN}/..")
    find_package(CUDAToolkit QUIET)
    if(NOT CUDAToolkit_FOUND OR NOT TARGET CUDA::cublas OR NOT TARGET CUDA::cudart_static)
      set(why "the CUDA toolkit next to ${CMAKE_CUDA_COMPILER} has no cuBLAS or static cudart")
    endif()
  endif()
  if(why STREQUAL "")
    set(CMAKE_CUDA_ARCHITECTURES ${ADEPT_CUDA_ARCHS})
    enable_language(CUDA)
    set(ADEPT_HAVE_CUDA ON)
    message(STATUS "adeptlua: CUDA backend ON (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, targets ${ADEPT_CUDA_ARCHS})")
  elseif(ADEPT_CUDA STREQUAL "ON")
    message(FATAL_ERROR "ADEPT_CUDA=ON but ${why}")
  else()
    message(STATUS "adeptlua: CUDA backend OFF: ${why}")
  endif()
endif()

if(ADEPT_HAVE_CUDA)
  file(GLOB ADEPT_CUDA_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/engine/ops/cuda/*.cu)
  add_library(adept_cuda OBJECT ${ADEPT_CUDA_SOURCES})
  set_target_properties(adept_cuda PROPERTIES POSITION_INDEPENDENT_CODE ON CUDA_RUNTIME_LIBRARY Static)
  target_include_directories(adept_cuda PRIVATE ${CMAKE_SOURCE_DIR}/engine/include ${CMAKE_SOURCE_DIR}/engine)
  # cuBLAS is opened with dlopen when the backend starts (runtime.cu says why): its directory and soname here
  get_target_property(cublas_lib CUDA::cublas IMPORTED_LOCATION)
  get_filename_component(cublas_dir "${cublas_lib}" REALPATH)
  get_filename_component(cublas_dir "${cublas_dir}" DIRECTORY)
  target_compile_definitions(adept_cuda PRIVATE ADEPT_CUBLAS_DIR="${cublas_dir}"
                             ADEPT_CUBLAS_SONAME="libcublas.so.${CUDAToolkit_VERSION_MAJOR}")
  # C++20 for designated initialisers (CMake 3.25 does not know nvcc 13's C++20 support, so it is passed here);
  # no --use_fast_math: expf, logf and division stay IEEE so the fp32 path matches the CPU engine to 1e-5
  target_compile_options(adept_cuda PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-std=c++20 -Xcompiler=-Wall>)
  target_sources(adept PRIVATE $<TARGET_OBJECTS:adept_cuda>)
  # libadept was created before CUDA was enabled: it compiles no CUDA itself, it only carries the objects.
  # The static runtime (small, no load-time cost; it opens the driver at the first CUDA call) and libdl.
  set_target_properties(adept PROPERTIES CUDA_ARCHITECTURES OFF CUDA_RUNTIME_LIBRARY Static)
  target_link_libraries(adept PUBLIC CUDA::cudart_static ${CMAKE_DL_LIBS})
  # NCCL for GPU ranks (engine/dist/nccl/), when the toolkit has it: opened with dlopen like cuBLAS
  find_path(ADEPT_NCCL_INCLUDE nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS})
  find_library(ADEPT_NCCL_LIB nccl HINTS ${CUDAToolkit_LIBRARY_DIR})
  if(ADEPT_NCCL_INCLUDE AND ADEPT_NCCL_LIB)
    get_filename_component(nccl_dir "${ADEPT_NCCL_LIB}" REALPATH)
    get_filename_component(nccl_dir "${nccl_dir}" DIRECTORY)
    set(nccl_src ${CMAKE_SOURCE_DIR}/engine/dist/nccl/nccl_comm.c)
    target_sources(adept PRIVATE ${nccl_src})
    set_source_files_properties(${nccl_src} PROPERTIES COMPILE_DEFINITIONS "ADEPT_HAVE_NCCL=1;ADEPT_NCCL_DIR=\"${nccl_dir}\""
                                INCLUDE_DIRECTORIES "${ADEPT_NCCL_INCLUDE};${CUDAToolkit_INCLUDE_DIRS}")
    target_compile_definitions(adept PRIVATE ADEPT_HAVE_NCCL=1)
    message(STATUS "adeptlua: NCCL communicator ON (${ADEPT_NCCL_LIB}, opened at run time)")
  else()
    message(STATUS "adeptlua: NCCL communicator OFF: no nccl.h / libnccl next to the CUDA toolkit")
  endif()
  # engine/ops/cuda/register.c (C, in libadept) calls into the CUDA sources only when they are built
  set_source_files_properties(${CMAKE_SOURCE_DIR}/engine/ops/cuda/register.c PROPERTIES COMPILE_DEFINITIONS
                              ADEPT_HAVE_CUDA=1)
endif()
