# TensorRT 10 (nvinfer) and the CUDA runtime, for CHEXMASK_RT_WITH_TENSORRT.
# JetPack puts TensorRT in /usr/include/aarch64-linux-gnu and /usr/lib/aarch64-linux-gnu;
# a tarball install is found with -DTensorRT_ROOT=/opt/TensorRT-10.x.
find_package(CUDAToolkit REQUIRED)
find_path(TENSORRT_INCLUDE_DIR NvInfer.h HINTS ${TensorRT_ROOT} PATH_SUFFIXES include)
find_library(TENSORRT_NVINFER_LIBRARY nvinfer HINTS ${TensorRT_ROOT} PATH_SUFFIXES lib lib64)
if(NOT TENSORRT_INCLUDE_DIR OR NOT TENSORRT_NVINFER_LIBRARY)
  message(FATAL_ERROR "TensorRT not found: set -DTensorRT_ROOT=<TensorRT 10 install> or install JetPack's TensorRT")
endif()
file(STRINGS ${TENSORRT_INCLUDE_DIR}/NvInferVersion.h _trt_major REGEX "#define NV_TENSORRT_MAJOR ")
if(NOT _trt_major MATCHES "NV_TENSORRT_MAJOR 1[0-9]")
  message(FATAL_ERROR "TensorRT 10 or newer is needed (found: ${_trt_major})")
endif()
add_library(TensorRT::nvinfer UNKNOWN IMPORTED)
set_target_properties(TensorRT::nvinfer PROPERTIES
  IMPORTED_LOCATION ${TENSORRT_NVINFER_LIBRARY}
  INTERFACE_INCLUDE_DIRECTORIES ${TENSORRT_INCLUDE_DIR})
