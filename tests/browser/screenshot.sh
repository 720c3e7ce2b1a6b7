#!/usr/bin/env bash
# `make docs-screenshot`: runs the browser test (tests/browser/run.sh) and, when it
# passes, writes its screenshot to docs/swagger-ui.png, reduced to a 256-colour palette
# (Swagger UI's flat colours survive it; the file shrinks about 2.5×) with Pillow from
# the project's .venv. docs/swagger-ui.png is only replaced by a passing run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
RAW="$ROOT/.local/browser/docs-screenshot.png"
OUT="${1:-$ROOT/docs/swagger-ui.png}"

rm -f "$RAW"
RUSHCART_SCREENSHOT="$RAW" "$ROOT/tests/browser/run.sh"
if ! .venv/bin/python -c 'import PIL' 2>/dev/null; then
  echo "[docs-screenshot] pip install pillow into .venv" >&2
  .venv/bin/pip install --quiet --disable-pip-version-check "pillow>=10,<14"
fi
.venv/bin/python - "$RAW" "$OUT" <<'PY'
import os, sys
from PIL import Image
raw, out = sys.argv[1], sys.argv[2]
image = Image.open(raw).convert("RGB")
image.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(out, optimize=True)
print(f"[docs-screenshot] {out}: {image.width}×{image.height}, {os.path.getsize(out) // 1024} KiB "
      f"(from {os.path.getsize(raw) // 1024} KiB)", file=sys.stderr)
PY
