# Fails when a test case name of the Catch2 binary BINARY contains ';': catch_discover_tests
# would split it (CMake's list separator) into ctest entries that each match no test case.
#   cmake -DBINARY=<Catch2 test executable> -P check_test_names.cmake
execute_process(COMMAND "${BINARY}" --list-test-names-only
                OUTPUT_VARIABLE names RESULT_VARIABLE rc)
# Catch2 2 exits with the number of test cases it lists; anything else is a crash or no binary
if(NOT rc MATCHES "^[0-9]+$")
  message(FATAL_ERROR "${BINARY} --list-test-names-only failed: ${rc}")
endif()
if(rc EQUAL 0)
  message(FATAL_ERROR "${BINARY} has no test cases")
endif()
string(REGEX MATCHALL "[^\n]*;[^\n]*" bad "${names}")
if(bad)
  # `bad` is a list of lines that contain the separator itself: print it as text, one a line
  string(REGEX MATCHALL "[^\n]*;[^\n]*\n" lines "${names}")
  string(REPLACE "\n;" "\n  " text "  ${lines}")
  message(FATAL_ERROR "test case names with ';' in ${BINARY} (rename them; ctest would split "
                      "each into entries that run nothing):\n${text}")
endif()
message(STATUS "${rc} test case names, none with ';'")
