# cmake --install: the public headers, libchexmask_rt.so and libchexmask_rt.a, and a CMake package
# (find_package(chexmask_rt CONFIG)) with chexmask_rt::chexmask_rt (shared) and
# chexmask_rt::chexmask_rt_static.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)
set(_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/chexmask_rt)

install(TARGETS chexmask_rt chexmask_rt_shared EXPORT chexmask_rtTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/include/chexmask_rt DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT chexmask_rtTargets NAMESPACE chexmask_rt:: DESTINATION ${_cmake_dir})

# The static library's users link what it links. Each imported target it names is recreated by the
# package from the files this build used. The shared library's users link none of them, but their
# links find its libonnxruntime.so.1 through the recreated onnxruntime::onnxruntime (-rpath-link).
# Read here, at the end of the configuration, so that it follows whatever the core links.
set(CHEXMASK_RT_STATIC_DEPENDENCIES "")
get_target_property(_links chexmask_rt LINK_LIBRARIES)
foreach(_dep IN LISTS _links)
  if(NOT TARGET ${_dep} OR _dep STREQUAL "Threads::Threads")
    continue()
  endif()
  get_target_property(_imported ${_dep} IMPORTED)
  if(NOT _imported)
    continue()
  endif()
  get_target_property(_type ${_dep} TYPE)
  if(_type STREQUAL "INTERFACE_LIBRARY")
    get_target_property(_files ${_dep} INTERFACE_LINK_LIBRARIES)
  else()
    get_target_property(_files ${_dep} IMPORTED_LOCATION)
  endif()
  if(NOT _files)
    set(_files "")
  endif()
  string(APPEND CHEXMASK_RT_STATIC_DEPENDENCIES "_chexmask_rt_dependency(${_dep} ${_type} \"${_files}\")\n")
endforeach()

configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/chexmask_rtConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/chexmask_rtConfig.cmake INSTALL_DESTINATION ${_cmake_dir})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/chexmask_rtConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/chexmask_rtConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/chexmask_rtConfigVersion.cmake
        DESTINATION ${_cmake_dir})
