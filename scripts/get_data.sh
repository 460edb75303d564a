#!/usr/bin/env bash
# get_data.sh [PATH]: put Tiny Shakespeare at data/tinyshakespeare.txt.
# Source, first that exists: PATH, $TINYSHAKESPEARE, ../shared/data/tinyshakespeare.txt,
# else a download from its public home (char-rnn's repository). The file is checked
# against its known md5 and never committed (see .gitignore).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=data/tinyshakespeare.txt
md5=6fb458f1232090904fb40fe944165e91
url=https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt
mkdir -p data
tmp=$(mktemp data/.download.XXXXXX)
trap 'rm -f "$tmp"' EXIT

src=""
for c in "${1:-}" "${TINYSHAKESPEARE:-}" ../shared/data/tinyshakespeare.txt; do
    if [ -n "$c" ] && [ -f "$c" ]; then src=$c; break; fi
    if [ -n "$c" ] && [ "$c" = "${1:-}" ]; then echo "error: $c: no such file" >&2; exit 2; fi
done
if [ -n "$src" ]; then
    cp "$src" "$tmp"
    echo "copied $src"
elif command -v curl > /dev/null; then
    curl -fsSL "$url" -o "$tmp" || { echo "error: download of $url failed; pass a local copy: $0 PATH" >&2; exit 1; }
elif command -v wget > /dev/null; then
    wget -q "$url" -O "$tmp" || { echo "error: download of $url failed; pass a local copy: $0 PATH" >&2; exit 1; }
else
    echo "error: no local copy and neither curl nor wget to download $url; pass a path: $0 PATH" >&2
    exit 1
fi
got=$(md5sum "$tmp" | cut -d' ' -f1)
if [ "$got" != "$md5" ]; then
    echo "error: ${src:-$url} has md5 $got, expected $md5 (not Tiny Shakespeare as nanoGPT uses it)" >&2
    exit 2
fi
mv "$tmp" "$dest"
trap - EXIT
echo "$dest: $(wc -c < "$dest") bytes, md5 ok"
