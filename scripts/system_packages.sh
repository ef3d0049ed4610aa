#!/usr/bin/env bash
# Debian packages the native core builds with: cmake and g++ (it needs no OpenCV). Installs only
# what is missing. --test adds what the test suite builds and runs besides: OpenCV's core/imgproc/
# imgcodecs and libjpeg for the C++ example program, and dicom3tools (dciodvfy checks the DICOM SEG/SR).
set -euo pipefail
PACKAGES=(cmake g++)
[ "${1:-}" = "--test" ] && PACKAGES+=(libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev libjpeg-dev dicom3tools)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
