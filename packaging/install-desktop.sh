#!/usr/bin/env bash
# Add the unpacked bundle to the desktop menu of the current user (Linux).
# Usage: packaging/install-desktop.sh /opt/inspector      (the folder holding the `inspector` executable)
set -euo pipefail
bundle=$(cd "${1:?usage: install-desktop.sh BUNDLE_DIR}" && pwd)
[ -x "$bundle/inspector" ] || { echo "no inspector executable in $bundle" >&2; exit 2; }
template="$bundle/_internal/resources/inspector.desktop"
target="${XDG_DATA_HOME:-$HOME/.local/share}/applications/inspector.desktop"
mkdir -p "$(dirname "$target")"
sed "s#@BUNDLE@#$bundle#g" "$template" > "$target"
echo "installed $target"
