# Cross-compiling the core for aarch64 (Jetson) with Debian's g++-aarch64-linux-gnu:
#   cmake -S cpp -B B -DCMAKE_TOOLCHAIN_FILE=cpp/cmake/aarch64-linux-gnu.cmake -DCHEXMASK_RT_SYSROOT=DIR ...
# DIR holds the target's libraries unpacked from Debian arm64 packages (scripts/cross_aarch64.sh
# makes it); the C library comes with the cross compiler (/usr/aarch64-linux-gnu).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

set(CHEXMASK_RT_SYSROOT "" CACHE PATH "aarch64 libraries (Debian arm64 packages unpacked)")
set(CMAKE_FIND_ROOT_PATH ${CHEXMASK_RT_SYSROOT} /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# Debian picks BLAS/LAPACK through alternatives that dpkg -x does not create: let the linker find
# the libraries OpenCV needs in their own folders.
set(_lib ${CHEXMASK_RT_SYSROOT}/usr/lib/aarch64-linux-gnu)
set(_rpath_link "-Wl,-rpath-link,${_lib}:${_lib}/blas:${_lib}/lapack:${CHEXMASK_RT_SYSROOT}/lib/aarch64-linux-gnu")
set(CMAKE_EXE_LINKER_FLAGS_INIT ${_rpath_link})
set(CMAKE_SHARED_LINKER_FLAGS_INIT ${_rpath_link})
set(CMAKE_MODULE_LINKER_FLAGS_INIT ${_rpath_link})
