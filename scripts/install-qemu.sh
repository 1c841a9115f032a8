#!/usr/bin/env bash
# install-qemu.sh -- make qemu-system-x86_64 available on Debian 12 (bookworm) for the
# dromaius console tests, WITHOUT removing the qemu-utils 10.x from bookworm-backports
# that the image ships.
#
# Plain `apt-get install qemu-system-x86` would pick bookworm's 7.2 and remove/downgrade
# qemu-utils 10.x (the two must be the same upstream version). So: install it from
# bookworm-backports, adding that suite to apt's sources if no source provides it.
#
# Idempotent: a second run only checks and exits. Run as root. Fails loudly.
set -euo pipefail

die() { echo "install-qemu.sh: error: $*" >&2; exit 1; }
log() { echo "install-qemu.sh: $*" >&2; }

[[ $(id -u) -eq 0 ]] || die "must be run as root"

# shellcheck disable=SC1091
. /etc/os-release
[[ ${VERSION_CODENAME:-} == bookworm ]] \
  || die "expected Debian 12 (bookworm), found '${PRETTY_NAME:-unknown}'"

BPO=bookworm-backports
SOURCES_FILE=/etc/apt/sources.list.d/bookworm-backports.sources
export DEBIAN_FRONTEND=noninteractive

qemu_ok() {
  command -v qemu-system-x86_64 >/dev/null 2>&1 \
    && qemu-system-x86_64 --version >/dev/null 2>&1
}

# Version of an installed package, or empty.
installed_version() {
  dpkg-query -W -f='${db:Status-Status} ${Version}\n' "$1" 2>/dev/null \
    | awk '$1 == "installed" { print $2 }'
}

utils_before=$(installed_version qemu-utils)

# SPICE displays (tests/graphics.rs) need QEMU's spice module, of the same version.
PACKAGES=(qemu-system-x86 qemu-system-modules-spice)

if qemu_ok && [[ -n $(installed_version qemu-system-x86) ]] \
  && [[ -n $(installed_version qemu-system-modules-spice) ]]; then
  log "already installed: $(qemu-system-x86_64 --version | head -n1), with SPICE"
  exit 0
fi

# 1. Make sure some apt source provides the bookworm-backports suite.
has_backports_source() {
  local f files=()
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
           /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] && files+=("$f")
  done
  ((${#files[@]})) || return 1
  # one-line "deb URI bookworm-backports main" or deb822 "Suites: ... bookworm-backports"
  grep -hqE '^[^#]*[[:space:]]bookworm-backports([[:space:]]|$)' "${files[@]}"
}
if ! has_backports_source; then
  log "adding $BPO to apt sources ($SOURCES_FILE)"
  cat >"$SOURCES_FILE" <<SRC
Types: deb
URIs: http://deb.debian.org/debian
Suites: $BPO
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  chmod 0644 "$SOURCES_FILE"
fi

# 2. Refresh indexes and check backports really offers the package.
log "apt-get update"
apt-get update -q >&2 || die "apt-get update failed"
# (capture first: `apt-cache ... | grep -q` trips pipefail when grep exits early)
policy=$(apt-cache policy qemu-system-x86) || die "apt-cache policy failed"
if ! grep -q " $BPO/" <<<"$policy"; then
  die "qemu-system-x86 is not offered by $BPO after apt-get update (check $SOURCES_FILE / network)"
fi

# 3. Install from backports. Simulate first: refuse anything that would remove packages
#    (in particular qemu-utils).
log "simulating: apt-get install -t $BPO --no-install-recommends ${PACKAGES[*]}"
sim=$(apt-get install -s -y -t "$BPO" --no-install-recommends "${PACKAGES[@]}") \
  || die "apt-get simulation failed:"$'\n'"$sim"
if grep -q '^Remv ' <<<"$sim"; then
  grep '^Remv ' <<<"$sim" >&2
  die "installing qemu-system-x86 from $BPO would remove the packages above; refusing"
fi

log "installing ${PACKAGES[*]} from $BPO"
apt-get install -y -q -t "$BPO" --no-install-recommends "${PACKAGES[@]}" >&2 \
  || die "apt-get install -t $BPO ${PACKAGES[*]} failed"

# 4. Verify.
qemu_ok || die "qemu-system-x86_64 still not runnable after install"
[[ -n $(installed_version qemu-system-modules-spice) ]] \
  || die "qemu-system-modules-spice is still missing after install"
if [[ -n $utils_before ]]; then
  utils_after=$(installed_version qemu-utils)
  [[ -n $utils_after ]] || die "qemu-utils ($utils_before) was removed"
  [[ $utils_after == "$utils_before" ]] \
    || log "warning: qemu-utils changed $utils_before -> $utils_after"
fi
log "ok: $(qemu-system-x86_64 --version | head -n1)"
