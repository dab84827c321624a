# The allocator of saga's own executables (the campaign_publishing binary and the benchmarks):
# saga, a library, never chooses one for its users; an executable may. Measured on the
# campaign-shaped saga (bench/README.md, "Allocator"): with mimalloc the engine runs 23% fewer
# instructions per saga in memory than with glibc's malloc (jemalloc: 19%), and the durable
# throughput with 64 sagas in flight is about 20% higher. A user's service gets the same by
# linking mimalloc itself (docs/operations.md, "Allocator").
#
#   SAGA_ALLOCATOR=mimalloc (default)  link libmimalloc (Debian: libmimalloc-dev), which replaces
#                                      malloc and free for the whole process
#   SAGA_ALLOCATOR=jemalloc            the same with libjemalloc (libjemalloc-dev)
#   SAGA_ALLOCATOR=system              glibc's malloc
#
# Sanitizer and fuzz builds always use the system allocator (the sanitizers bring their own).
set(SAGA_ALLOCATOR "mimalloc" CACHE STRING "Allocator of saga's executables: mimalloc, jemalloc or system")
set_property(CACHE SAGA_ALLOCATOR PROPERTY STRINGS mimalloc jemalloc system)

set(saga_allocator_library "")
if(SAGA_SANITIZE OR SAGA_BUILD_FUZZ)
  set(saga_allocator_effective system)
else()
  set(saga_allocator_effective ${SAGA_ALLOCATOR})
endif()
if(saga_allocator_effective STREQUAL "mimalloc" OR saga_allocator_effective STREQUAL "jemalloc")
  find_library(saga_allocator_library_path NAMES ${saga_allocator_effective})
  if(saga_allocator_library_path)
    set(saga_allocator_library ${saga_allocator_library_path})
  else()
    message(WARNING "SAGA_ALLOCATOR=${saga_allocator_effective}: lib${saga_allocator_effective} "
                    "not found (Debian: lib${saga_allocator_effective}-dev, which "
                    "scripts/install-deps.sh installs); the executables use the system allocator")
    set(saga_allocator_effective system)
  endif()
elseif(NOT saga_allocator_effective STREQUAL "system")
  message(FATAL_ERROR "SAGA_ALLOCATOR must be mimalloc, jemalloc or system, not '${SAGA_ALLOCATOR}'")
endif()
message(STATUS "saga: executables use the ${saga_allocator_effective} allocator")

# Links the chosen allocator into executable `target`: the dynamic linker finds its malloc and
# free before libc's (libc comes last), so it serves the whole process.
function(saga_use_allocator target)
  if(saga_allocator_library)
    target_link_libraries(${target} PRIVATE ${saga_allocator_library})
    target_compile_definitions(${target} PRIVATE SAGA_ALLOCATOR_NAME="${saga_allocator_effective}")
  else()
    target_compile_definitions(${target} PRIVATE SAGA_ALLOCATOR_NAME="system")
  endif()
endfunction()
