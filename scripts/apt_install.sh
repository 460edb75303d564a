#!/usr/bin/env bash
# apt_install.sh LABEL PACKAGE...: install the Debian packages that are not installed
# yet (apt-get, as root or through sudo); with all of them there, touch nothing.
# install_deps.sh and install_cross_deps.sh list what they need and call this.
set -euo pipefail
label=$1; shift
missing=()
for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then echo "$label: all installed"; exit 0; fi
echo "$label: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo=sudo
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
