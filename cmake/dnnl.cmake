# oneDNN (engine/ops/cpu/gemm16.c): bf16 x bf16 -> f32 matrix products for frozen bf16 weights, selected by ADEPT_DNNL:
#   AUTO (default)  use it when the header and library are found (Debian: libdnnl-dev)
#   ON              use it or stop with the reason
#   OFF             never: 16-bit weights are widened to fp32 block by block for OpenBLAS sgemm
# Debian's OpenBLAS 0.3.21 declares cblas_sbgemm but does not export it (built without BFLOAT16): DESIGN.md §1.
set(ADEPT_DNNL AUTO CACHE STRING "Use oneDNN for bf16 GEMMs: AUTO, ON or OFF")
set_property(CACHE ADEPT_DNNL PROPERTY STRINGS AUTO ON OFF)
string(TOUPPER "${ADEPT_DNNL}" ADEPT_DNNL)
set(ADEPT_HAVE_DNNL OFF)
if(NOT ADEPT_DNNL STREQUAL "OFF")
  find_path(DNNL_INCLUDE_DIR oneapi/dnnl/dnnl.h)
  find_library(DNNL_LIBRARY dnnl)
  if(DNNL_INCLUDE_DIR AND DNNL_LIBRARY)
    set(ADEPT_HAVE_DNNL ON)
    target_include_directories(adept PRIVATE ${DNNL_INCLUDE_DIR})
    target_compile_definitions(adept PRIVATE ADEPT_HAVE_DNNL=1)
    target_link_libraries(adept PUBLIC ${DNNL_LIBRARY})
    message(STATUS "adeptlua: oneDNN bf16 GEMMs ON (${DNNL_LIBRARY})")
  elseif(ADEPT_DNNL STREQUAL "ON")
    message(FATAL_ERROR "ADEPT_DNNL=ON but oneDNN was not found (install libdnnl-dev)")
  else()
    message(STATUS "adeptlua: oneDNN bf16 GEMMs OFF: not found (install libdnnl-dev); bf16 weights use sgemm")
  endif()
endif()
