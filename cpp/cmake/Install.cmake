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
# Apache-2.0 section 4 asks for the licence and NOTICE (which also says how the shipped weights must be
# credited) to travel with every copy; the SDK held neither
set(_doc_dir ${CMAKE_INSTALL_DATADIR}/doc/chexmask_rt)
install(FILES ${CMAKE_CURRENT_SOURCE_DIR}/../LICENSE ${CMAKE_CURRENT_SOURCE_DIR}/../NOTICE DESTINATION ${_doc_dir})

# An ONNXRUNTIME_ROOT build links its libonnxruntime, which the installed libchexmask_rt.so finds in its
# own folder (RUNPATH $ORIGIN) by the name the link recorded, the library's soname (libonnxruntime.so.1):
# install the file under its own name plus a link of that name, and the archive's execution-provider
# libraries beside it, so that the prefix runs as installed and can be copied to a device whole. The
# soname is read from the file: a folder copied without its links (cp -rL, zip) holds plain files, and
# one named libonnxruntime.so installed alone left an SDK whose programs could not start.
if(TARGET chexmask_rt::onnxruntime)
  get_target_property(_ort_link chexmask_rt::onnxruntime IMPORTED_LOCATION)
  get_filename_component(_ort_lib_dir "${_ort_link}" DIRECTORY)
  get_filename_component(_ort_file "${_ort_link}" REALPATH)
  get_filename_component(_ort_name "${_ort_file}" NAME)
  install(FILES "${_ort_file}" DESTINATION ${CMAKE_INSTALL_LIBDIR})
  # its MIT licence and third-party notices go with the copy: from the release archive (ONNXRUNTIME_ROOT)
  # or the wheel the library came from
  get_filename_component(_ort_file_dir "${_ort_file}" DIRECTORY)
  foreach(_ort_notice LICENSE ThirdPartyNotices.txt)
    foreach(_ort_dir "${ONNXRUNTIME_ROOT}" "${_ort_lib_dir}/.." "${_ort_file_dir}/..")
      if(_ort_dir AND EXISTS "${_ort_dir}/${_ort_notice}")
        install(FILES "${_ort_dir}/${_ort_notice}" DESTINATION ${_doc_dir}/onnxruntime)
        break()
      endif()
    endforeach()
  endforeach()
  set(_ort_soname "")
  if(CMAKE_OBJDUMP)
    execute_process(COMMAND ${CMAKE_OBJDUMP} -p "${_ort_file}" OUTPUT_VARIABLE _ort_dump ERROR_QUIET)
    if(_ort_dump MATCHES "SONAME +([^ \n]+)")
      set(_ort_soname "${CMAKE_MATCH_1}")
    endif()
  endif()
  if(NOT _ort_soname AND _ort_name MATCHES "^(.+\\.so\\.[0-9]+)\\..+$")  # libonnxruntime.so.1.x.y
    set(_ort_soname "${CMAKE_MATCH_1}")
  elseif(NOT _ort_soname)
    set(_ort_soname "libonnxruntime.so.1")  # every 1.x release's
  endif()
  if(NOT _ort_soname STREQUAL _ort_name)  # a link made here and installed as one: the manifest lists it
    set(_ort_soname_link "${CMAKE_CURRENT_BINARY_DIR}/onnxruntime_soname/${_ort_soname}")
    file(MAKE_DIRECTORY "${CMAKE_CURRENT_BINARY_DIR}/onnxruntime_soname")
    file(CREATE_LINK "${_ort_name}" "${_ort_soname_link}" SYMBOLIC)
    install(FILES "${_ort_soname_link}" DESTINATION ${CMAKE_INSTALL_LIBDIR})
  endif()
  # beside the archive's library, or beside the file it links to (a folder of links into a wheel)
  file(GLOB _ort_providers "${_ort_lib_dir}/libonnxruntime_providers_*.so" "${_ort_file_dir}/libonnxruntime_providers_*.so")
  set(_ort_provider_names "")
  foreach(_provider IN LISTS _ort_providers)
    get_filename_component(_provider_name "${_provider}" NAME)
    if(_provider_name IN_LIST _ort_provider_names)
      continue()
    endif()
    list(APPEND _ort_provider_names "${_provider_name}")
    get_filename_component(_provider_file "${_provider}" REALPATH)
    install(FILES "${_provider_file}" DESTINATION ${CMAKE_INSTALL_LIBDIR} RENAME "${_provider_name}")
  endforeach()
endif()

# The static library's users link what it links. Each imported target it names is recreated by the
# package from the files this build used. The shared library's users link none of them, but their
# links find its libonnxruntime.so.1 through the recreated chexmask_rt::onnxruntime (-rpath-link).
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

# pkg-config, for builds without CMake (Makefiles, Yocto, Buildroot): the shared library and the headers.
# The prefix is found from the .pc file's own folder, so a prefix copied to a device whole still works.
# -rpath-link: the link resolves the library's libonnxruntime.so.1 where the install put it, beside it.
set(_pc_dir ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}" OR IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(CHEXMASK_RT_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  set(CHEXMASK_RT_PC_LIBDIR "${CMAKE_INSTALL_FULL_LIBDIR}")
  set(CHEXMASK_RT_PC_INCLUDEDIR "${CMAKE_INSTALL_FULL_INCLUDEDIR}")
else()
  string(REGEX REPLACE "[^/]+" ".." _pc_up "${_pc_dir}")
  set(CHEXMASK_RT_PC_PREFIX "\${pcfiledir}/${_pc_up}")
  set(CHEXMASK_RT_PC_LIBDIR "\${prefix}/${CMAKE_INSTALL_LIBDIR}")
  set(CHEXMASK_RT_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
configure_file(${CMAKE_CURRENT_LIST_DIR}/chexmask_rt.pc.in ${CMAKE_CURRENT_BINARY_DIR}/chexmask_rt.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/chexmask_rt.pc DESTINATION ${_pc_dir})
