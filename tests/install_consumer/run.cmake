# Installs the build tree into a scratch prefix, then builds and runs the host application in project/ against it
# with find_package(picospec) (invoked by ctest, see tests/CMakeLists.txt):
#  1. every built component: consumer, host_app (text over loopback and ZeroMQ; MODEL when that file exists, else
#     a random model), host_conformance (the installed conformance suites on the app's own plug-ins);
#  2. COMPONENTS loopback only, with Eigen, xtensor and cppzmq hidden (CMAKE_DISABLE_FIND_PACKAGE_*): the package
#     must still be found and the loopback parts must build and run.
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BINARY_DIR} --prefix ${WORK_DIR}/prefix
                RESULT_VARIABLE rc OUTPUT_QUIET)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cmake --install failed (${rc})")
endif()

function(run_step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message(STATUS "${what}:\n${out}${err}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${rc})")
  endif()
endfunction()

# 1. Everything that was built.
string(REPLACE ";" "," comps "${COMPONENTS}")
run_step("configure (components ${comps})"
  ${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/install_consumer/project -B ${WORK_DIR}/full
  -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix -DCMAKE_BUILD_TYPE=Release "-DCONSUMER_COMPONENTS=${comps}")
run_step("build" ${CMAKE_COMMAND} --build ${WORK_DIR}/full)
run_step("consumer" ${WORK_DIR}/full/consumer)
if(EXISTS ${WORK_DIR}/full/host_app)
  if(MODEL AND EXISTS ${MODEL})
    run_step("host_app ${MODEL}" ${WORK_DIR}/full/host_app ${MODEL})
  else()
    message(STATUS "SKIPPED the real-model text run: ${MODEL} is absent (the random-model run follows)")
  endif()
  run_step("host_app (random model)" ${WORK_DIR}/full/host_app)
elseif("llama" IN_LIST COMPONENTS AND "loopback" IN_LIST COMPONENTS)
  message(FATAL_ERROR "host_app was not built although llama and loopback are")
endif()
if(EXISTS ${WORK_DIR}/full/host_conformance)
  run_step("host_conformance" ${WORK_DIR}/full/host_conformance)
else()
  message(FATAL_ERROR "host_conformance was not built (Catch2 v2 not found?)")
endif()

# 2. Only `loopback`, on a "machine" without Eigen, xtensor or cppzmq.
run_step("configure (components loopback; Eigen3, xtensor, cppzmq hidden)"
  ${CMAKE_COMMAND} -S ${SOURCE_DIR}/tests/install_consumer/project -B ${WORK_DIR}/loopback_only
  -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix -DCMAKE_BUILD_TYPE=Release -DCONSUMER_COMPONENTS=loopback
  -DCMAKE_DISABLE_FIND_PACKAGE_Eigen3=ON -DCMAKE_DISABLE_FIND_PACKAGE_xtensor=ON
  -DCMAKE_DISABLE_FIND_PACKAGE_xtl=ON -DCMAKE_DISABLE_FIND_PACKAGE_cppzmq=ON -DCMAKE_DISABLE_FIND_PACKAGE_ZeroMQ=ON)
run_step("build (loopback only)" ${CMAKE_COMMAND} --build ${WORK_DIR}/loopback_only --target consumer)
run_step("consumer (loopback only)" ${WORK_DIR}/loopback_only/consumer)
