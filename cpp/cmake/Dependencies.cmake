# The ONNX Runtime headers (or library), and OpenCV for the C++ example program only.

# --- OpenCV: the core does not use it (its resize is its own, src/resize.cpp); the C++ example
# reads image files with it. Its CMake package where there is one (JetPack, source builds), else
# the bare Debian -dev packages, which ship headers and .so but no CMake/pkg-config files.
set(_cv_components)
if(CHEXMASK_RT_BUILD_EXAMPLES)
  set(_cv_components core imgproc imgcodecs)
  find_package(OpenCV QUIET COMPONENTS ${_cv_components})
endif()
foreach(_c IN LISTS _cv_components)
  if(TARGET OpenCV::${_c})
    continue()
  endif()
  if(OpenCV_FOUND)
    add_library(OpenCV::${_c} INTERFACE IMPORTED)
    target_include_directories(OpenCV::${_c} INTERFACE ${OpenCV_INCLUDE_DIRS})
    target_link_libraries(OpenCV::${_c} INTERFACE opencv_${_c})
    continue()
  endif()
  find_path(OPENCV_INCLUDE_DIR opencv2/core.hpp PATH_SUFFIXES opencv4)
  find_library(OPENCV_${_c}_LIBRARY NAMES opencv_${_c})
  if(NOT OPENCV_INCLUDE_DIR OR NOT OPENCV_${_c}_LIBRARY)
    message(FATAL_ERROR "OpenCV ${_c} not found: install libopencv-${_c}-dev (Debian/Ubuntu) "
                        "or point OpenCV_DIR at an OpenCV build")
  endif()
  add_library(OpenCV::${_c} UNKNOWN IMPORTED)
  set_target_properties(OpenCV::${_c} PROPERTIES
    IMPORTED_LOCATION ${OPENCV_${_c}_LIBRARY}
    INTERFACE_INCLUDE_DIRECTORIES ${OPENCV_INCLUDE_DIR})
endforeach()

# --- ONNX Runtime. With ONNXRUNTIME_ROOT (a release archive's layout: include/, lib/) the build is
# offline and links that library normally, as a device maker shipping its own libonnxruntime wants.
# Otherwise only the headers are needed (the library is dlopen'ed at run time): the system's, else
# Debian's, fetched at configure time.
if(ONNXRUNTIME_ROOT)
  # the folder as given, also when cross-compiling (not re-rooted under CMAKE_FIND_ROOT_PATH)
  find_path(_ort_root_include onnxruntime_cxx_api.h PATHS ${ONNXRUNTIME_ROOT}/include
            PATH_SUFFIXES onnxruntime onnxruntime/core/session NO_DEFAULT_PATH NO_CMAKE_FIND_ROOT_PATH)
  find_library(ONNXRUNTIME_LIBRARY NAMES onnxruntime PATHS ${ONNXRUNTIME_ROOT}/lib ${ONNXRUNTIME_ROOT}/lib64
               NO_DEFAULT_PATH NO_CMAKE_FIND_ROOT_PATH)
  if(NOT _ort_root_include OR NOT ONNXRUNTIME_LIBRARY)
    set(_ort_dangling "")
    if(IS_SYMLINK ${ONNXRUNTIME_ROOT}/lib/libonnxruntime.so AND NOT EXISTS ${ONNXRUNTIME_ROOT}/lib/libonnxruntime.so)
      set(_ort_dangling " (lib/libonnxruntime.so is a link to nothing: a relative link's target is read "
                        "from the link's own folder)")
    endif()
    message(FATAL_ERROR "ONNXRUNTIME_ROOT=${ONNXRUNTIME_ROOT} is not an ONNX Runtime release folder: it needs "
                        "include/onnxruntime_cxx_api.h and lib/libonnxruntime.so${_ort_dangling}")
  endif()
  set(ONNXRUNTIME_INCLUDE_DIR ${_ort_root_include})
  add_library(chexmask_rt::onnxruntime SHARED IMPORTED)
  set_target_properties(chexmask_rt::onnxruntime PROPERTIES
    IMPORTED_LOCATION ${ONNXRUNTIME_LIBRARY}
    INTERFACE_INCLUDE_DIRECTORIES ${ONNXRUNTIME_INCLUDE_DIR})
  message(STATUS "ONNX Runtime library (linked): ${ONNXRUNTIME_LIBRARY}")
elseif(NOT ONNXRUNTIME_INCLUDE_DIR)
  find_path(_ort_system_include onnxruntime_cxx_api.h PATH_SUFFIXES onnxruntime onnxruntime/core/session)
  if(_ort_system_include)
    set(ONNXRUNTIME_INCLUDE_DIR ${_ort_system_include})
  else()
    set(_ort_fetched ${CMAKE_BINARY_DIR}/_deps/onnxruntime-headers)
    if(NOT EXISTS ${_ort_fetched}/include/onnxruntime_cxx_api.h)
      message(STATUS "Fetching ONNX Runtime headers (Debian trixie libonnxruntime-dev) into ${_ort_fetched}; "
                     "offline, pass -DONNXRUNTIME_ROOT=<ONNX Runtime release folder with include/ and lib/>")
      execute_process(
        COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/fetch_onnxruntime_headers.sh ${_ort_fetched}
        RESULT_VARIABLE _ort_rc)
      if(NOT _ort_rc EQUAL 0)
        message(FATAL_ERROR "Could not fetch the ONNX Runtime headers from Debian (the lines above say why: "
                            "no apt, no network, no Debian keyring). Pass -DONNXRUNTIME_INCLUDE_DIR=<dir with "
                            "onnxruntime_cxx_api.h> to load the library at run time, or -DONNXRUNTIME_ROOT=<ONNX "
                            "Runtime release folder with include/ and lib/> to link it; to pip (a source "
                            "install), pass them as CMAKE_ARGS=\"-DONNXRUNTIME_INCLUDE_DIR=...\"")
      endif()
    endif()
    set(ONNXRUNTIME_INCLUDE_DIR ${_ort_fetched}/include)
  endif()
endif()
message(STATUS "ONNX Runtime headers: ${ONNXRUNTIME_INCLUDE_DIR}")
add_library(chexmask_rt::onnxruntime_headers INTERFACE IMPORTED)
target_include_directories(chexmask_rt::onnxruntime_headers INTERFACE ${ONNXRUNTIME_INCLUDE_DIR})
