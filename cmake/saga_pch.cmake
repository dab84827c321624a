# Unity builds for saga's own targets: the sources of a target are compiled in batches of 8, one
# translation unit per batch, so that the templates they share (nlohmann/json, Asio, Catch2, the
# definition builder) are instantiated and optimised once per batch, not once per file: about a
# quarter of the CPU time of compiling them one by one (docs/testing.md, "Build time").
# SAGA_UNITY=OFF compiles file by file. The header check (tests/headers) is never a unity build.
option(SAGA_UNITY "Compile saga's own sources in unity batches" ${SAGA_TOP_LEVEL})
if(SAGA_UNITY)
  set(CMAKE_UNITY_BUILD ON)
  set(CMAKE_UNITY_BUILD_BATCH_SIZE 8)
endif()

# Precompiled headers for saga's own targets (never for a consumer's). Nearly every translation
# unit parses nlohmann/json, part of Asio and, in the tests, Catch2 and the public headers: 4 to 7
# s of a 7 to 30 s compile (docs/testing.md, "Build time"). With a precompiled header each target
# parses them once. SAGA_PCH=OFF builds without (the header check in tests/headers never uses one,
# so every public header still has to include what it uses).
option(SAGA_PCH "Precompile the headers most of saga's own translation units use" ${SAGA_TOP_LEVEL})

# saga_precompile(target header...): `target` precompiles the given headers.
function(saga_precompile target)
  if(SAGA_PCH)
    target_precompile_headers(${target} PRIVATE ${ARGN})
  endif()
endfunction()

# saga_precompile_reuse(target holder): `target` uses the precompiled header of `holder`, whose
# compile options must be the same (-Winvalid-pch with -Werror turns a mismatch into an error).
function(saga_precompile_reuse target holder)
  if(SAGA_PCH)
    target_precompile_headers(${target} REUSE_FROM ${holder})
  endif()
endfunction()
