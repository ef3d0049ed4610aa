# Sourced by fetch_onnxruntime_headers.sh and scripts/cross_aarch64.sh: apt against a private
# sources list, state and cache under ROOT, so the machine's apt configuration is never touched.
#
#   private_apt_init ROOT MIRROR SUITE ARCH   # writes $apt_conf and runs apt-get update
#   apt-get -c "$apt_conf" download PACKAGE...
#
# The settings are a configuration file, not -o words: a ROOT holding a space split those, and the
# build blamed apt, the network or the keyring.
#
# MIRROR "" means CHEXMASK_RT_DEBIAN_MIRROR, else the Debian archive this machine's apt sources use,
# else deb.debian.org (e.g. on Ubuntu, whose apt can fetch from Debian given debian-archive-keyring).

private_apt_machine_mirror() {
    { grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}'
      grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print $2}'
    } | grep -v -e security -e updates | grep '/debian/*$' | head -n 1 || true  # none: the caller says so
}

# The Debian release whose packages a cross build takes: CHEXMASK_RT_DEBIAN_SUITE, else this Debian
# host's own (its cross compiler's glibc). On another host (Ubuntu) asking Debian's archive for its
# codename failed with "jammy Release ... does not have a Release file": name the setting instead.
private_apt_debian_suite() {
    _release=${private_apt_os_release:-/etc/os-release}  # another file only in the tests
    if [ -n "${CHEXMASK_RT_DEBIAN_SUITE:-}" ]; then echo "$CHEXMASK_RT_DEBIAN_SUITE"; return; fi
    if (. "$_release" && [ "${ID:-}" = debian ] && [ -n "${VERSION_CODENAME:-}" ]); then
        (. "$_release" && echo "$VERSION_CODENAME")
        return
    fi
    echo "this host is not Debian: set CHEXMASK_RT_DEBIAN_SUITE to the Debian release whose arm64 packages match" \
        "its cross compiler's glibc (e.g. bookworm for glibc 2.36)" >&2
    return 1
}

private_apt_init() {
    _root=$1
    _mirror=${2:-${CHEXMASK_RT_DEBIAN_MIRROR:-$(private_apt_machine_mirror)}}
    _mirror=${_mirror:-http://deb.debian.org/debian}
    command -v apt-get >/dev/null || { echo "private_apt: apt-get not found" >&2; return 1; }
    _keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    [ -f "$_keyring" ] || { echo "private_apt: $_keyring is missing, so Debian's packages cannot be verified: apt-get install debian-archive-keyring (Ubuntu has it too)" >&2; return 1; }
    mkdir -p "$_root/etc/preferences.d" "$_root/etc/apt.conf.d" "$_root/state/lists/partial" \
             "$_root/cache/archives/partial"
    echo "deb [signed-by=$_keyring] $_mirror $3 main" > "$_root/etc/sources.list"
    : > "$_root/state/status"
    apt_conf="$_root/apt.conf"
    cat > "$apt_conf" <<EOF
Dir::Etc::SourceList "$_root/etc/sources.list";
Dir::Etc::SourceParts "$_root/etc/sources.list.d";
Dir::Etc::Preferences "$_root/etc/preferences";
Dir::Etc::PreferencesParts "$_root/etc/preferences.d";
Dir::State "$_root/state";
Dir::State::status "$_root/state/status";
Dir::Cache "$_root/cache";
Debug::NoLocking "1";
APT::Architecture "$4";
APT::Architectures { "$4"; };
EOF
    apt-get -c "$apt_conf" -qq update
}
