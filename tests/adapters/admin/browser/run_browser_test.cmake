# Runs the dashboard's browser test (ctest: admin_browser, label `browser`).
#   cmake -DNODE=node -DNPM=npm -DCHROMIUM=/usr/bin/chromium -DSERVER=<admin_test_server>
#         -DTEST_DIR=<this dir> -DOUT_DIR=<screenshots> -P run_browser_test.cmake
# Installs playwright-core (pinned in package-lock.json) with `npm ci` when node_modules is
# missing. scripts/install-deps.sh installs chromium; node and npm come with the image.
# Other browser tests share this directory's node_modules: -DSCRIPT=<file in this dir> (default
# dashboard.test.mjs) and -DNAME=<test name for messages> (default admin_browser).
if(NOT SCRIPT)
  set(SCRIPT dashboard.test.mjs)
endif()
if(NOT NAME)
  set(NAME admin_browser)
endif()
foreach(tool NODE NPM)
  find_program(${tool}_PATH ${${tool}})
  if(NOT ${tool}_PATH)
    message(FATAL_ERROR "${NAME}: '${${tool}}' is not installed; the browser test needs "
                        "Node.js 20+ and npm (apt-get install nodejs npm)")
  endif()
endforeach()
execute_process(COMMAND "${NODE_PATH}" --version OUTPUT_VARIABLE node_version
                OUTPUT_STRIP_TRAILING_WHITESPACE)
string(REGEX REPLACE "^v" "" node_version "${node_version}")
if(node_version VERSION_LESS 20)
  message(FATAL_ERROR "${NAME}: Node.js ${node_version} is too old; playwright-core needs 20+")
endif()
if(NOT EXISTS "${CHROMIUM}")
  message(FATAL_ERROR "${NAME}: ${CHROMIUM} is missing; run scripts/install-deps.sh "
                      "(it installs Debian's chromium package)")
endif()
# one `npm ci` at a time: the browser tests share node_modules and may run in parallel
file(LOCK "${TEST_DIR}/.npm-ci.lock" GUARD PROCESS TIMEOUT 600)
if(NOT EXISTS "${TEST_DIR}/node_modules/playwright-core/package.json")
  message(STATUS "${NAME}: npm ci in ${TEST_DIR}")
  execute_process(COMMAND "${NPM_PATH}" ci --no-audit --no-fund
                  WORKING_DIRECTORY "${TEST_DIR}" RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${NAME}: npm ci failed (${rc}); playwright-core is needed")
  endif()
endif()
file(LOCK "${TEST_DIR}/.npm-ci.lock" RELEASE)
execute_process(COMMAND "${NODE_PATH}" "${TEST_DIR}/${SCRIPT}"
                        --server "${SERVER}" --chromium "${CHROMIUM}" --out "${OUT_DIR}"
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${NAME}: ${SCRIPT} failed (${rc})")
endif()
