#!/usr/bin/env bash
# Peers side by side: trains Cornac's and implicit's BPR, WMF/ALS and VBPR on a split
# directory written by visrec and writes their figures as CSV. A benchmark, not a test.
#
#   bench/peers/run.sh SPLIT_DIR [OUT_CSV] [peers.py options...]
#
# Creates (once) a virtualenv in .cache/peers-venv with the pinned requirements. Set
# PYTHON to choose the interpreter (default python3; the pins are for CPython 3.11).
set -euo pipefail

if [[ $# -lt 1 || $1 == -h || $1 == --help ]]; then
	echo "usage: $0 SPLIT_DIR [OUT_CSV] [peers.py options, e.g. --factors 64 --epochs 20 --seed 1]" >&2
	exit 2
fi
split_dir=$1
shift
out=peers.csv
if [[ $# -gt 0 && $1 != -* ]]; then
	out=$1
	shift
fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
venv=$root/.cache/peers-venv
reqs=$here/requirements.txt
stamp=$venv/.requirements.sha256

want=$(sha256sum "$reqs" | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
	echo "peers: installing $reqs into $venv (first run: a few minutes, ~5 GB)" >&2
	"${PYTHON:-python3}" -m venv "$venv"
	"$venv/bin/python" -m pip install --quiet --upgrade pip
	# One requirement at a time, so that one that fails to install leaves the others
	# usable (peers.py skips the models whose modules are missing).
	ok=1
	while read -r req; do
		[[ -z $req || $req == \#* ]] && continue
		if ! "$venv/bin/python" -m pip install --quiet "$req"; then
			echo "peers: WARNING: could not install $req; its models will be skipped" >&2
			ok=0
		fi
	done <"$reqs"
	if ((ok)); then
		echo "$want" >"$stamp"
	fi
fi

"$venv/bin/python" "$here/peers.py" --self-test
exec "$venv/bin/python" "$here/peers.py" "$split_dir" --out "$out" "$@"
