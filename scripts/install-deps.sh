#!/usr/bin/env bash
# Installs what zhudai's tests need on a Debian machine: headless Chromium and its
# WebDriver (browser tests), a CJK font (PDF contracts, screenshots), pdftotext (to read
# generated contracts back), and the Python
# reference implementations the maths tests compare against.
# Idempotent: does nothing that is already done.
set -euo pipefail

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_apt+=(chromium-driver)
[ -e /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ] || need_apt+=(fonts-noto-cjk)
# A second CJK font with TrueType outlines: `bench origination --contract-font` compares
# the contract PDF's cost with it (docs/benchmarks.md, session 13).
[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || need_apt+=(fonts-wqy-microhei)
# Contracts (issue #6): tests read the generated PDFs' text back with pdftotext.
command -v pdftotext >/dev/null 2>&1 || need_apt+=(poppler-utils)

if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "install-deps: installing ${need_apt[*]} from Debian packages" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

py_missing=0
python3 - <<'PY' 2>/dev/null || py_missing=1
import numpy_financial, stdnum, openapi_spec_validator, scorecardpy, optbinning, duckdb  # noqa: F401
PY
if [ "$py_missing" -eq 1 ]; then
  echo "install-deps: installing Python reference implementations (numpy-financial, python-stdnum, openapi-spec-validator, scorecardpy, optbinning, duckdb)" >&2
  # duckdb: the independent five-tier classification of the daily close (issue #8).
  python3 -m pip install --quiet --disable-pip-version-check numpy-financial python-stdnum openapi-spec-validator scorecardpy optbinning duckdb
fi
