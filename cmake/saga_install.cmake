# Install rules: headers, libraries and an export set, so that an outside project can
#   find_package(saga CONFIG REQUIRED)
#   target_link_libraries(app PRIVATE saga::core saga::inmemory)
include(CMakePackageConfigHelpers)

install(DIRECTORY include/saga DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS saga_core saga_inmemory EXPORT sagaTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT sagaTargets NAMESPACE saga:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/saga)

configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/sagaConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/sagaConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/saga)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/sagaConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/sagaConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/sagaConfigVersion.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/saga)
