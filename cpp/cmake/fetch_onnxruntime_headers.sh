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

machine_mirror() {
    { grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}'
      grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print $2}'
    } | grep -v -e security -e updates | grep '/debian/*$' | head -n 1
}

dest=${1:?usage: $0 DEST [MIRROR]}
mirror=${2:-${CHEXMASK_RT_DEBIAN_MIRROR:-$(machine_mirror)}}
[ -n "$mirror" ] || { echo "fetch_onnxruntime_headers: no Debian archive in this machine's apt sources; set CHEXMASK_RT_DEBIAN_MIRROR" >&2; exit 1; }
suite=${CHEXMASK_RT_DEBIAN_SUITE:-trixie}

if [ -f "$dest/include/onnxruntime_cxx_api.h" ]; then
    exit 0
fi
command -v apt-get >/dev/null || { echo "fetch_onnxruntime_headers: apt-get not found; put the ONNX Runtime headers in $dest/include yourself (or pass -DONNXRUNTIME_ROOT=<ONNX Runtime release folder> or -DONNXRUNTIME_INCLUDE_DIR=...)" >&2; exit 1; }

apt_root="$dest/.apt"
mkdir -p "$apt_root/etc/preferences.d" "$apt_root/etc/apt.conf.d" "$apt_root/state/lists/partial" \
         "$apt_root/cache/archives/partial" "$apt_root/deb" "$dest/unpacked" "$dest/include"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main" > "$apt_root/etc/sources.list"
: > "$apt_root/state/status"

apt_opts="-o Dir::Etc::SourceList=$apt_root/etc/sources.list
 -o Dir::Etc::SourceParts=$apt_root/etc/sources.list.d
 -o Dir::Etc::Preferences=$apt_root/etc/preferences
 -o Dir::Etc::PreferencesParts=$apt_root/etc/preferences.d
 -o Dir::State=$apt_root/state
 -o Dir::State::status=$apt_root/state/status
 -o Dir::Cache=$apt_root/cache
 -o Debug::NoLocking=1
 -o APT::Architecture=amd64"
# The headers are architecture independent in content; fetch the host's arch anyway.
arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
apt_opts=$(echo "$apt_opts" | sed "s/APT::Architecture=amd64/APT::Architecture=$arch/")

# shellcheck disable=SC2086
apt-get $apt_opts -qq update
# shellcheck disable=SC2086
(cd "$apt_root/deb" && apt-get $apt_opts -qq download libonnxruntime-dev)
deb=$(ls "$apt_root"/deb/libonnxruntime-dev_*.deb | head -n 1)
dpkg -x "$deb" "$dest/unpacked"

hdr=$(dirname "$(find "$dest/unpacked" -name onnxruntime_cxx_api.h | head -n 1)")
[ -f "$hdr/onnxruntime_cxx_api.h" ] || { echo "fetch_onnxruntime_headers: onnxruntime_cxx_api.h not in $deb" >&2; exit 1; }
cp "$hdr"/*.h "$dest/include/"
basename "$deb" > "$dest/VERSION"
echo "fetch_onnxruntime_headers: headers from $(cat "$dest/VERSION") in $dest/include"
