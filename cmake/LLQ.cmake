# Helpers shared by the llq build.
#
# Everything that uses MLIR links the one shared libMLIR (and libLLVM) that
# Debian ships: linking the static MLIR archives into several tools costs
# minutes per link on a two-core machine, and mixing the two kinds would
# register MLIR's command-line options twice.

set(LLQ_MLIR_LIBS MLIR)

# llq_add_mlir_library(name src... [DEPENDS tgt...] [LINK_LIBS lib...])
# A compiler library: built against MLIR's headers, linked to libMLIR.
function(llq_add_mlir_library name)
  cmake_parse_arguments(ARG "" "" "DEPENDS;LINK_LIBS" ${ARGN})
  add_library(${name} STATIC ${ARG_UNPARSED_ARGUMENTS})
  # Match libMLIR's -fno-rtti / -fno-exceptions so its classes can be derived.
  llvm_update_compile_flags(${name})
  if(ARG_DEPENDS)
    add_dependencies(${name} ${ARG_DEPENDS})
  endif()
  target_link_libraries(${name} PUBLIC ${ARG_LINK_LIBS} ${LLQ_MLIR_LIBS})
endfunction()

# add_llq_unittest(name src...): a gtest program registered with ctest.
function(add_llq_unittest name)
  find_package(GTest REQUIRED)
  add_executable(${name} ${ARGN})
  target_link_libraries(${name} PRIVATE GTest::gtest GTest::gtest_main)
  set_target_properties(${name} PROPERTIES
    RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/unittests)
  # One ctest test per gtest case, so failures and counts are per case.
  include(GoogleTest)
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60)
  set_property(GLOBAL APPEND PROPERTY LLQ_UNITTESTS ${name})
endfunction()

# OpenBLAS (CBLAS and LAPACK), as one interface target.
set(BLA_VENDOR OpenBLAS)
find_package(BLAS REQUIRED)
find_path(LLQ_CBLAS_INCLUDE_DIR cblas.h
  PATHS /usr/include/x86_64-linux-gnu/openblas-pthread /usr/include/openblas
  NO_DEFAULT_PATH)
if(NOT LLQ_CBLAS_INCLUDE_DIR)
  find_path(LLQ_CBLAS_INCLUDE_DIR cblas.h REQUIRED)
endif()
add_library(llq_blas INTERFACE)
target_include_directories(llq_blas SYSTEM INTERFACE ${LLQ_CBLAS_INCLUDE_DIR})
target_link_libraries(llq_blas INTERFACE ${BLAS_LIBRARIES})
