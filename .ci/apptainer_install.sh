#!/usr/bin/env bash
# Install Apptainer under a prefix on a Debian 12 host, as root, without touching /etc/apt or the host's glibc.
# Used by the container test's fixture; safe to run again (a working install under the prefix is kept).
#   APPTAINER_PREFIX  where it goes; the binary ends up at $APPTAINER_PREFIX/usr/bin/apptainer (default /tmp/seam-apptainer)
#   DEBIAN_MIRROR     mirror for sid (default: the first Debian mirror in this host's apt sources)
# Why so roundabout (../shared/HPC_NOTES.md): bookworm packages no Apptainer; sid's build needs glibc >= 2.38, so
# sid's libc6 is unpacked beside it and the two ELF binaries are pointed at that loader with patchelf.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
PREFIX=${APPTAINER_PREFIX:-/tmp/seam-apptainer}
APPTAINER="$PREFIX/usr/bin/apptainer"
CONF="$PREFIX/usr/etc/apptainer/apptainer.conf"

[ "$(id -u)" = 0 ] || { echo "needs root (installs host packages, edits /etc/subuid)" >&2; exit 2; }

# --fakeroot builds (any definition with a %post) map root onto a subordinate id range; the image has none
for file in /etc/subuid /etc/subgid; do
  grep -qs '^root:' "$file" || echo 'root:100000:65536' >>"$file"
done

# Two test runs on a shared machine may both get here: the second waits, then finds the first's install
mkdir -p "$(dirname "$PREFIX")"
exec 9>"$PREFIX.lock"
flock 9

if [ -x "$APPTAINER" ] && "$APPTAINER" --version >/dev/null 2>&1; then
  echo "already installed: $("$APPTAINER" --version) in $PREFIX"; exit 0
fi

# patchelf for the relocation; uidmap (newuidmap) for --fakeroot; squashfs-tools to build SIF files
helpers=(patchelf uidmap squashfs-tools)
if ! dpkg -s "${helpers[@]}" >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${helpers[@]}" >/dev/null
fi

if [ -z "${DEBIAN_MIRROR:-}" ]; then
  DEBIAN_MIRROR=$(grep -hoE 'https?://[^ ]+/debian/?$' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
    /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1 || true)
fi
[ -n "$DEBIAN_MIRROR" ] || { echo "no Debian mirror found in the apt sources; set DEBIAN_MIRROR" >&2; exit 3; }

download=$(mktemp -d /tmp/seam-apptainer-dl.XXXXXX)
trap 'rm -rf "$download"' EXIT
# A private apt state that only knows sid: lists and cache live in $download, so the host's apt is unchanged
mkdir -p "$download/lists/partial" "$download/cache/archives/partial"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $DEBIAN_MIRROR sid main" \
  >"$download/sources.list"
private_apt=(
  -o Dir::Etc::SourceList="$download/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o Dir::State::Lists="$download/lists" -o Dir::Cache="$download/cache" -o APT::Sandbox::User=root
)
# libc6 from the same suite as apptainer, so its glibc requirement is met whatever sid holds today
if ! apt-get "${private_apt[@]}" update -qq ||
   ! (cd "$download" && apt-get "${private_apt[@]}" download -qq apptainer/sid libc6/sid); then
  echo "could not download apptainer and libc6 from Debian sid at $DEBIAN_MIRROR (sid unreachable or in flux)" >&2
  exit 4
fi

rm -rf "$PREFIX"
mkdir -p "$PREFIX/glibc"
dpkg-deb -x "$download"/apptainer_*.deb "$PREFIX"
dpkg-deb -x "$download"/libc6_*.deb "$download/libc6"
cp -a "$download/libc6/usr/lib/x86_64-linux-gnu/." "$PREFIX/glibc/"

# Relocated, apptainer reads its config from <prefix>/usr/etc; the starter, two levels down in
# usr/lib/<triplet>/apptainer, resolves etc and var against usr/lib, hence the two links
mv "$PREFIX/etc" "$PREFIX/usr/etc"
ln -s ../etc "$PREFIX/usr/lib/etc"
mkdir -p "$PREFIX/usr/var/lib/apptainer/mnt/session"
ln -s ../var "$PREFIX/usr/lib/var"

for binary in "$APPTAINER" "$PREFIX/usr/lib/x86_64-linux-gnu/apptainer/bin/starter"; do
  patchelf --set-interpreter "$PREFIX/glibc/ld-linux-x86-64.so.2" --force-rpath --set-rpath "$PREFIX/glibc" "$binary"
done

# Root here lacks CAP_SYS_RESOURCE; the default "full" asks for every capability and run/exec die on it
sed -i 's/^root default capabilities = .*/root default capabilities = no/' "$CONF"

if ! version=$("$APPTAINER" --version); then
  echo "apptainer was unpacked into $PREFIX but does not run" >&2; exit 5
fi
echo "installed: $version in $PREFIX"
