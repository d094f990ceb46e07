#!/usr/bin/env bash
# Installs everything tlsgate builds and tests with, from Debian 12's registry only, in one list.
# Does nothing when all of it is present already.
set -euo pipefail

PACKAGES=(
  # build
  build-essential cmake ninja-build pkg-config clang clang-format libclang-rt-14-dev
  # libraries
  libssl-dev libasio-dev libnghttp2-dev libsqlite3-dev libcli11-dev libtomlplusplus-dev
  libspdlog-dev libfmt-dev nlohmann-json3-dev libgtest-dev libgmock-dev libbenchmark-dev
  # at run time, for a CA key in a PKCS#11 token (loaded on demand)
  libengine-pkcs11-openssl
  # real peers and tools for the tests
  openssl ca-certificates curl nginx-light haproxy python3 python3-cryptography iproute2 iptables
  procps tshark tcpdump python3-websockets chromium sslscan
  python3-aiosmtpd dovecot-imapd dovecot-pop3d vsftpd softhsm2 opensc
)

missing=()
for package in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
else
  SUDO=
fi
echo "tlsgate: installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Packages whose postinst starts a daemon (nginx) must not start it: tests run their own.
policy_rc=/usr/sbin/policy-rc.d
created_policy=no
if [ ! -e "$policy_rc" ] && [ -z "$SUDO" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy_rc" && chmod +x "$policy_rc" && created_policy=yes
fi
$SUDO apt-get update -q || true
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
[ "$created_policy" = yes ] && rm -f "$policy_rc"
exit 0
