# Test registration. Every file that follows the naming convention becomes a ctest test:
#   tests/unit/test_*.c       C unit tests (label unit; test_cuda_*.c also cuda)
#   tests/lua/*_spec.lua      busted specs under Lua 5.4 loading build/adept.so (label lua)
#   tests/parity/test_*.py    references in Debian's python3-torch / node (label parity); exit 77 = skipped
#   tests/recipes/*.lua       recipe-level tests run by build/adeptlua (label recipe)
# A test needing ../shared skips (exit 77) with a message when it is absent.
set(ADEPT_SHARED_DIR ${CMAKE_SOURCE_DIR}/../shared CACHE PATH "Shared models, corpora and tokenizers")
set(ADEPT_TEST_ENV
  "ADEPTLUA=$<TARGET_FILE:adeptlua>"
  "ADEPT_SHARED=${ADEPT_SHARED_DIR}"
  "ADEPT_SOURCE=${CMAKE_SOURCE_DIR}"
  "ADEPT_BUILD=${CMAKE_BINARY_DIR}"
  "ASAN_OPTIONS=detect_leaks=0"
  "OMP_NUM_THREADS=2")

file(GLOB unit_tests CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/unit/test_*.c)
foreach(src IN LISTS unit_tests)
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/tests/unit ${CMAKE_SOURCE_DIR}/engine)
  target_link_libraries(${name} PRIVATE adept)
  add_test(NAME unit/${name} COMMAND ${name} WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
  # test_cuda_*: the CUDA backend against the CPU one; they skip (77) without a device, and tests/device/run
  # selects them on a GPU machine with -L cuda
  set(labels unit)
  if(name MATCHES "^test_cuda_")
    set(labels unit cuda)
  endif()
  set_tests_properties(unit/${name} PROPERTIES LABELS "${labels}" SKIP_RETURN_CODE 77 ENVIRONMENT "${ADEPT_TEST_ENV}")
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
endif()

find_program(LUA54 lua5.4)
find_program(BUSTED busted)
file(GLOB lua_specs CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/lua/*_spec.lua)
if(LUA54 AND BUSTED)
  foreach(spec IN LISTS lua_specs)
    get_filename_component(name ${spec} NAME_WE)
    add_test(NAME lua/${name} COMMAND ${LUA54} ${BUSTED} --output=utfTerminal
             --lpath=${CMAKE_SOURCE_DIR}/tests/lua/?.lua --cpath=${CMAKE_BINARY_DIR}/?.so ${spec}
             WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
    set_tests_properties(lua/${name} PROPERTIES LABELS lua ENVIRONMENT "${ADEPT_LUA_TEST_ENV}")
  endforeach()
else()
  message(WARNING "lua5.4 or busted not found: the Lua specs are not registered (make deps installs them)")
endif()

file(GLOB parity_tests CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/parity/test_*.py)
foreach(script IN LISTS parity_tests)
  get_filename_component(name ${script} NAME_WE)
  # Debian's interpreter on purpose: python3-torch and python3-numpy live there, not in a pyenv.
  add_test(NAME parity/${name} COMMAND /usr/bin/python3 ${script} WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
  set_tests_properties(parity/${name} PROPERTIES LABELS parity SKIP_RETURN_CODE 77
                       ENVIRONMENT "${ADEPT_TEST_ENV};PYTHONUNBUFFERED=1")
endforeach()

file(GLOB recipe_tests CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/recipes/*.lua)
foreach(recipe IN LISTS recipe_tests)
  get_filename_component(name ${recipe} NAME_WE)
  add_test(NAME recipe/${name} COMMAND adeptlua ${recipe} WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
  set_tests_properties(recipe/${name} PROPERTIES LABELS recipe SKIP_RETURN_CODE 77 ENVIRONMENT "${ADEPT_TEST_ENV}")
endforeach()
