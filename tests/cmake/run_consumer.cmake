# Run by ctest (see CMakeLists.txt beside it) as
#   cmake -DSAGA_STEP=install|consumer|components -DSAGA_BUILD_DIR=... -P run_consumer.cmake
#   install     cmake --install SAGA_BUILD_DIR into SAGA_CONSUMER_WORK_DIR/prefix
#   consumer    configure, build and run consumer/ against that prefix
#   components  COMPONENTS inmemory configures; COMPONENTS nosuch fails with a clear message
cmake_minimum_required(VERSION 3.25)

foreach(var SAGA_STEP SAGA_BUILD_DIR SAGA_CONSUMER_SOURCE_DIR SAGA_CONSUMER_WORK_DIR)
  if(NOT ${var})
    message(FATAL_ERROR "run_consumer.cmake: ${var} is not set")
  endif()
endforeach()

set(prefix ${SAGA_CONSUMER_WORK_DIR}/prefix)

# run(<what> <command...>): runs a command, echoes its output, fails the test on a non-zero exit.
function(run what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  message("---- ${what}\n${out}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc}): ${ARGN}")
  endif()
endfunction()

# configure_consumer(<build dir> <comma-separated components> <result var> <output var>)
function(configure_consumer dir components rc_var out_var)
  file(REMOVE_RECURSE ${dir})
  set(args
    -S ${SAGA_CONSUMER_SOURCE_DIR} -B ${dir}
    -DCMAKE_PREFIX_PATH=${prefix}
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
    -DSAGA_EXPECTED_PREFIX=${prefix}
    "-DSAGA_COMPONENTS=${components}")
  if(SAGA_CONFIG)
    list(APPEND args -DCMAKE_BUILD_TYPE=${SAGA_CONFIG})
  endif()
  if(SAGA_CXX_COMPILER)
    list(APPEND args -DCMAKE_CXX_COMPILER=${SAGA_CXX_COMPILER})
  endif()
  if(SAGA_SANITIZE)
    # the installed libraries were compiled with the sanitizer: the consumer must link its
    # runtime (compiling main.cpp instrumented too would only cost time)
    list(APPEND args "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=${SAGA_SANITIZE}")
  endif()
  execute_process(COMMAND ${CMAKE_COMMAND} ${args} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                  ERROR_VARIABLE out)
  set(${rc_var} ${rc} PARENT_SCOPE)
  set(${out_var} "${out}" PARENT_SCOPE)
endfunction()

if(SAGA_STEP STREQUAL "install")
  file(REMOVE_RECURSE ${prefix})
  set(args --install ${SAGA_BUILD_DIR} --prefix ${prefix})
  if(SAGA_CONFIG)
    list(APPEND args --config ${SAGA_CONFIG})
  endif()
  run("install" ${CMAKE_COMMAND} ${args})
  foreach(f lib/cmake/saga/sagaConfig.cmake lib/cmake/saga/sagaConfigVersion.cmake
            include/saga/saga.hpp include/saga/inmemory/memory_store.hpp)
    if(NOT EXISTS ${prefix}/${f})
      message(FATAL_ERROR "the install has no ${f}")
    endif()
  endforeach()

elseif(SAGA_STEP STREQUAL "consumer")
  set(dir ${SAGA_CONSUMER_WORK_DIR}/consumer-build)
  configure_consumer(${dir} "" rc out)
  message("---- configure consumer\n${out}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "configuring the consumer failed (${rc})")
  endif()
  run("build consumer" ${CMAKE_COMMAND} --build ${dir})
  run("run consumer" ${dir}/consumer)

elseif(SAGA_STEP STREQUAL "components")
  configure_consumer(${SAGA_CONSUMER_WORK_DIR}/components-inmemory "inmemory" rc out)
  message("---- COMPONENTS inmemory\n${out}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "find_package(saga COMPONENTS inmemory) failed (${rc})")
  endif()

  configure_consumer(${SAGA_CONSUMER_WORK_DIR}/components-nosuch "inmemory,nosuch" rc out)
  message("---- COMPONENTS inmemory nosuch (must fail)\n${out}")
  if(rc EQUAL 0)
    message(FATAL_ERROR "find_package(saga COMPONENTS inmemory nosuch) succeeded; it must fail")
  endif()
  string(FIND "${out}" "saga component 'nosuch' is missing: it is not installed" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "the failure does not name the missing component 'nosuch'")
  endif()

else()
  message(FATAL_ERROR "run_consumer.cmake: unknown SAGA_STEP '${SAGA_STEP}'")
endif()
