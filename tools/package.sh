#!/usr/bin/env bash
# `make package`: builds every function of template.yaml with `cargo lambda build
# --release` for arm64 (Graviton; ARCH=x86_64 for x86_64) into
# target/lambda/<function>/bootstrap.zip (cargo lambda zips them), and reports the
# sizes against the 5 MB target.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
"$ROOT/localstack/install-packaging.sh"
export PATH="$ROOT/.venv/bin:$PATH"
ARCH="${ARCH:-arm64}"
case "$ARCH" in
  arm64) flag=--arm64; dir=target/lambda ;;
  x86_64) flag=--x86-64; dir=target/lambda-x86_64 ;;
  *) echo "ARCH must be arm64 or x86_64" >&2; exit 2 ;;
esac
bins=$(grep -E '^\s+Binary: ' template.yaml | awk '{print $2}' | sort -u)
args=()
for bin in $bins; do args+=(--bin "$bin"); done
cargo lambda build --release "$flag" --lambda-dir "$dir" --output-format zip "${args[@]}"
over=0
printf '%-24s %10s %10s\n' function bootstrap zipped
for bin in $bins; do
  raw=$(python3 -c 'import sys, zipfile; print(zipfile.ZipFile(sys.argv[1]).getinfo("bootstrap").file_size)' "$dir/$bin/bootstrap.zip")
  zipped=$(stat -c %s "$dir/$bin/bootstrap.zip")
  python3 -c 'import sys; print(f"{sys.argv[1]:<24} {int(sys.argv[2])/2**20:9.2f}M {int(sys.argv[3])/2**20:9.2f}M")' "$bin" "$raw" "$zipped"
  [ "$zipped" -lt $((5 * 1024 * 1024)) ] || over=1
done
[ $over = 0 ] && echo "every package is under 5 MB zipped" || { echo "some package is over 5 MB zipped" >&2; exit 1; }
