# Warnings (and sanitizers) for saga's own targets; never forced on consumers.
function(saga_set_warnings target)
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wconversion
                                             -Wno-sign-conversion)
    if(SAGA_WERROR)
      target_compile_options(${target} PRIVATE -Werror)
    endif()
  endif()
  if(SAGA_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=${SAGA_SANITIZE} -fno-omit-frame-pointer)
    target_link_options(${target} PRIVATE -fsanitize=${SAGA_SANITIZE})
  endif()
endfunction()
