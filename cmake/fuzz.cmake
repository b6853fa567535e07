# libFuzzer targets: every tests/fuzz/fuzz_<name>.c (defining LLVMFuzzerTestOneInput) is built against libadept
# with -fsanitize=fuzzer and registered as the ctest test fuzz/<name> (label fuzz), which fuzzes for
# ADEPT_FUZZ_SECONDS from the seeds in tests/fuzz/corpus/<name>/, with tests/fuzz/fuzz_<name>.dict when present.
# New inputs go to build*/fuzz/<name>/corpus (kept between runs), crashes to build*/fuzz/<name>/artifacts.
if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "ADEPT_FUZZ needs clang: configure with -DCMAKE_C_COMPILER=clang")
endif()
if(NOT ADEPT_SANITIZE)
  # the coverage callbacks in libadept are provided by the sanitizer runtime every executable links
  message(FATAL_ERROR "ADEPT_FUZZ needs ADEPT_SANITIZE=ON (make fuzz and make test-asan set both)")
endif()
set(ADEPT_FUZZ_SECONDS 15 CACHE STRING "Seconds each fuzz test runs")

# Coverage feedback from inside the library, where the parsers are, not only from the entry points.
target_compile_options(adept PRIVATE -fsanitize=fuzzer-no-link)

file(GLOB fuzz_sources CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_*.c)
foreach(src IN LISTS fuzz_sources)
  get_filename_component(target ${src} NAME_WE)
  string(REGEX REPLACE "^fuzz_" "" name ${target})
  add_executable(${target} ${src})
  target_include_directories(${target} PRIVATE ${CMAKE_SOURCE_DIR}/engine)
  target_compile_options(${target} PRIVATE -fsanitize=fuzzer)
  target_link_options(${target} PRIVATE -fsanitize=fuzzer)
  target_link_libraries(${target} PRIVATE adept)
  if(NOT ADEPT_TESTS)
    continue()
  endif()
  set(work ${CMAKE_BINARY_DIR}/fuzz/${name})
  file(MAKE_DIRECTORY ${work}/corpus ${work}/artifacts)
  set(args -max_total_time=${ADEPT_FUZZ_SECONDS} -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
      -artifact_prefix=${work}/artifacts/)
  set(dict ${CMAKE_SOURCE_DIR}/tests/fuzz/${target}.dict)
  if(EXISTS ${dict})
    list(APPEND args -dict=${dict})
  endif()
  set(dirs ${work}/corpus)
  set(seeds ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/${name})
  if(IS_DIRECTORY ${seeds})
    list(APPEND dirs ${seeds}) # read-only seeds: libFuzzer writes only to the first directory
  endif()
  add_test(NAME fuzz/${name} COMMAND ${target} ${args} ${dirs} WORKING_DIRECTORY ${work})
  # the kept corpus and the findings of long runs (scripts/fuzz_long.sh), replayed once each: a fixed bug stays fixed
  set(replay ${seeds})
  set(regress ${CMAKE_SOURCE_DIR}/tests/fuzz/regressions/${name})
  if(IS_DIRECTORY ${regress})
    list(APPEND replay ${regress})
  endif()
  if(IS_DIRECTORY ${seeds})
    add_test(NAME fuzz/${name}/regress COMMAND ${target} -runs=0 -rss_limit_mb=2048 -timeout=30 ${replay}
             WORKING_DIRECTORY ${work})
    set_tests_properties(fuzz/${name}/regress PROPERTIES LABELS fuzz TIMEOUT 600
                         ENVIRONMENT "ASAN_OPTIONS=detect_leaks=1;UBSAN_OPTIONS=print_stacktrace=1")
  endif()
  math(EXPR limit "${ADEPT_FUZZ_SECONDS} + 120")
  set_tests_properties(fuzz/${name} PROPERTIES LABELS fuzz TIMEOUT ${limit}
                       ENVIRONMENT "ASAN_OPTIONS=detect_leaks=1;UBSAN_OPTIONS=print_stacktrace=1")
endforeach()
