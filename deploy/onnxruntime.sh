#!/usr/bin/env bash
# deploy/onnxruntime.sh — installs the ONNX Runtime shared library that `visrec embed` and the
# embed package's tests load (through github.com/yalue/onnxruntime_go), and prints its path.
#
#   deploy/onnxruntime.sh          install if missing (idempotent), print the library's path
#   deploy/onnxruntime.sh --force  reinstall
#
# Result: .cache/onnxruntime/lib/libonnxruntime.so (git-ignored), ONNX Runtime $VERSION for
# linux/x64 (or linux/arm64). The library comes from the npm package onnxruntime-node, installed
# with --ignore-scripts (its postinstall downloads from a host that is not reachable here); the
# .so ships inside the package under bin/napi-v*/linux/<arch>/. If npm fails, the PyPI wheel
# onnxruntime==$VERSION is fetched with `pip download --no-deps` and the .so taken from it.
#
# When the library is already installed (its version stamp matches) the script only prints the
# path: it costs a few milliseconds. If VISREC_ONNXRUNTIME_LIB names an existing file, that file
# is used as it is and nothing is installed. Concurrent runs serialise on a lock file.
set -euo pipefail

VERSION=1.30.0
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEST=$ROOT/.cache/onnxruntime
LIBDIR=$DEST/lib
LIB=$LIBDIR/libonnxruntime.so
STAMP=$LIBDIR/VERSION

log() { echo "onnxruntime.sh: $*" >&2; }

if [[ -n "${VISREC_ONNXRUNTIME_LIB:-}" && -f "${VISREC_ONNXRUNTIME_LIB}" ]]; then
	echo "$VISREC_ONNXRUNTIME_LIB"
	exit 0
fi

force=0
[[ "${1:-}" == "--force" ]] && force=1

installed() { [[ -s "$LIB" && -f "$STAMP" && "$(cat "$STAMP")" == "$VERSION" ]]; }

if [[ $force == 0 ]] && installed; then
	echo "$LIB"
	exit 0
fi

case "$(uname -s)/$(uname -m)" in
Linux/x86_64) NPM_ARCH=x64 WHEEL_PLAT=manylinux_2_27_x86_64 ;;
Linux/aarch64) NPM_ARCH=arm64 WHEEL_PLAT=manylinux_2_27_aarch64 ;;
*)
	log "unsupported platform $(uname -s)/$(uname -m): want Linux x86_64 or aarch64"
	exit 1
	;;
esac

mkdir -p "$LIBDIR"
exec 9>"$DEST/.lock"
if command -v flock >/dev/null; then
	flock 9
fi
# Another run may have finished the install while this one waited for the lock.
if [[ $force == 0 ]] && installed; then
	echo "$LIB"
	exit 0
fi

# place SRC: copies the library next to its final name, then renames it into place, so that a
# reader never sees a half-written file.
place() {
	cp -f "$1" "$LIB.tmp.$$"
	chmod 0644 "$LIB.tmp.$$"
	mv -f "$LIB.tmp.$$" "$LIB"
	echo "$VERSION" >"$STAMP"
	log "installed ONNX Runtime $VERSION from $2"
}

from_npm() {
	command -v npm >/dev/null || { log "npm not found"; return 1; }
	local prefix=$DEST/npm
	local pkg=$prefix/node_modules/onnxruntime-node
	if [[ ! -f "$pkg/package.json" ]] || ! grep -q "\"version\": \"$VERSION\"" "$pkg/package.json"; then
		log "npm install --ignore-scripts onnxruntime-node@$VERSION"
		npm install --ignore-scripts --no-audit --no-fund --loglevel=error \
			--prefix "$prefix" "onnxruntime-node@$VERSION" >&2 || return 1
	fi
	local so
	so=$(find "$pkg"/bin/napi-v*/linux/"$NPM_ARCH" -maxdepth 1 -name 'libonnxruntime.so.1*' -type f 2>/dev/null | sort -V | tail -n 1)
	if [[ -z "$so" ]]; then
		log "no libonnxruntime.so.1* under $pkg/bin/napi-v*/linux/$NPM_ARCH"
		return 1
	fi
	place "$so" "npm onnxruntime-node@$VERSION ($so)"
}

from_pypi() {
	local pip
	pip=$(command -v pip3 || command -v pip || true)
	[[ -n "$pip" ]] || { log "pip not found"; return 1; }
	local dir=$DEST/wheel
	rm -rf "$dir"
	mkdir -p "$dir"
	log "pip download --no-deps onnxruntime==$VERSION"
	"$pip" download --quiet --no-deps --only-binary=:all: --dest "$dir" "onnxruntime==$VERSION" >&2 ||
		"$pip" download --quiet --no-deps --only-binary=:all: --platform "$WHEEL_PLAT" \
			--python-version 3.12 --implementation cp --dest "$dir" "onnxruntime==$VERSION" >&2 ||
		return 1
	local whl
	whl=$(find "$dir" -maxdepth 1 -name "onnxruntime-$VERSION-*.whl" | head -n 1)
	[[ -n "$whl" ]] || { log "no wheel in $dir"; return 1; }
	python3 - "$whl" "$dir/so" <<'PY' || return 1
import re, sys, zipfile
whl, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    names = [n for n in z.namelist() if re.search(r"/libonnxruntime\.so\.1[0-9.]*$", n)]
    if not names:
        sys.exit("no libonnxruntime.so.1* in " + whl)
    with z.open(sorted(names)[-1]) as src, open(out, "wb") as dst:
        dst.write(src.read())
PY
	place "$dir/so" "PyPI onnxruntime==$VERSION ($(basename "$whl"))"
	rm -rf "$dir"
}

if ! from_npm; then
	log "npm route failed; trying the PyPI wheel"
	from_pypi || { log "could not install ONNX Runtime $VERSION"; exit 1; }
fi
echo "$LIB"
