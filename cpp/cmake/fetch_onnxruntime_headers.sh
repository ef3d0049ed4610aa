#!/bin/sh
# Fetch ONNX Runtime's C/C++ API headers from Debian's libonnxruntime-dev (trixie)
# into DEST without touching the machine's apt configuration: apt runs against a
# private sources list, state and cache under DEST/.apt. Only the headers are used;
# the library itself is dlopen'ed at run time (see cpp/README.md).
#
# usage: fetch_onnxruntime_headers.sh DEST [MIRROR]
#   DEST/include/onnxruntime_cxx_api.h exists afterwards.
#   MIRROR defaults to CHEXMASK_RT_DEBIAN_MIRROR, else the Debian archive this
#   machine's own apt sources already use (only the suite differs).
set -eu

dest=${1:?usage: $0 DEST [MIRROR]}
mirror=${2:-}
suite=${CHEXMASK_RT_DEBIAN_SUITE:-trixie}

if [ -f "$dest/include/onnxruntime_cxx_api.h" ]; then
    exit 0
fi
command -v apt-get >/dev/null || { echo "fetch_onnxruntime_headers: apt-get not found (they come from Debian's libonnxruntime-dev)" >&2; exit 1; }

apt_root="$dest/.apt"
mkdir -p "$apt_root/deb" "$dest/unpacked" "$dest/include"
# The headers are architecture independent in content; fetch the host's arch anyway.
# shellcheck source=private_apt.sh
. "$(dirname "$0")/private_apt.sh"
private_apt_init "$apt_root" "$mirror" "$suite" "$(dpkg --print-architecture 2>/dev/null || echo amd64)"
(cd "$apt_root/deb" && apt-get -c "$apt_conf" -qq download libonnxruntime-dev)
deb=$(ls "$apt_root"/deb/libonnxruntime-dev_*.deb | head -n 1)
dpkg -x "$deb" "$dest/unpacked"

hdr=$(dirname "$(find "$dest/unpacked" -name onnxruntime_cxx_api.h | head -n 1)")
[ -f "$hdr/onnxruntime_cxx_api.h" ] || { echo "fetch_onnxruntime_headers: onnxruntime_cxx_api.h not in $deb" >&2; exit 1; }
cp "$hdr"/*.h "$dest/include/"
basename "$deb" > "$dest/VERSION"
echo "fetch_onnxruntime_headers: headers from $(cat "$dest/VERSION") in $dest/include"
