#!/usr/bin/env bash
# Install deep-performer for a GPU node: the step that docker/Dockerfile.gpu RUNs, usable as a plain
# script on any Debian/Ubuntu GPU machine too.
#   1. system packages (apt-get): FluidSynth (libfluidsynth3) and the three SoundFonts, git, make
#   2. a virtual environment at $VENV with the CUDA build of torch $TORCH_VERSION installed FIRST,
#      then the project (pyproject pins torch==$TORCH_VERSION, so pip keeps the CUDA build)
#
# Usage: bash docker/install-gpu-image.sh            install
#        bash docker/install-gpu-image.sh --check    verify what it would do, change nothing
#                                                    (also --dry-run)
# Settings (environment):
#   VENV=/opt/venv               where the virtual environment goes
#   PYTHON=python3               the interpreter that creates it (>= 3.10)
#   TORCH_VERSION=2.13.0         must equal the torch pin in pyproject.toml (checked)
#   TORCH_INDEX_URL=             empty: PyPI, whose Linux x86_64 torch wheel is the CUDA build;
#                                or a PyTorch CUDA index, e.g. https://download.pytorch.org/whl/cu126
#                                to match an older driver
#   PROJECT_EXTRAS=              extras to install with the project, e.g. "dev" or "dev,s3"
#   EDITABLE=1                   pip install -e (a checkout mounted over the source is what runs)
#   REQUIRE_CUDA_TORCH=1         fail when the installed torch is a CPU build (set 0 to test on CPU)
set -euo pipefail
cd "$(dirname "$0")/.."

mode=install
case "${1:-}" in
  "") ;;
  --check|--dry-run) mode=check ;;
  -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
  *) echo "usage: $0 [--check|--dry-run]" >&2; exit 2 ;;
esac

VENV=${VENV:-/opt/venv}
PYTHON=${PYTHON:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
TORCH_INDEX_URL=${TORCH_INDEX_URL:-}
PROJECT_EXTRAS=${PROJECT_EXTRAS:-}
EDITABLE=${EDITABLE:-1}
REQUIRE_CUDA_TORCH=${REQUIRE_CUDA_TORCH:-1}
APT_PACKAGES=(libfluidsynth3 fluid-soundfont-gm musescore-general-soundfont timgm6mb-soundfont git make)

say() { printf '[install-gpu] %s\n' "$*"; }
fail() { printf '[install-gpu] error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- checks (both modes)
[ -f pyproject.toml ] || fail "pyproject.toml not found in $(pwd)"
pinned=$(sed -n 's/^[[:space:]]*"torch==\([^"]*\)".*/\1/p' pyproject.toml | head -n 1)
[ -n "$pinned" ] || fail "pyproject.toml has no \"torch==VERSION\" pin"
[ "$pinned" = "$TORCH_VERSION" ] \
  || fail "TORCH_VERSION=$TORCH_VERSION but pyproject.toml pins torch==$pinned (pip would replace the CUDA build)"

spec="."
[ "$EDITABLE" = 1 ] && spec="-e ."
[ -n "$PROJECT_EXTRAS" ] && spec="$spec[$PROJECT_EXTRAS]"
torch_args=("torch==$TORCH_VERSION")
[ -n "$TORCH_INDEX_URL" ] && torch_args+=(--index-url "$TORCH_INDEX_URL" --extra-index-url https://pypi.org/simple)

if [ "$mode" = check ]; then
  command -v "$PYTHON" >/dev/null 2>&1 || fail "no $PYTHON on PATH"
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || fail "$PYTHON is $("$PYTHON" --version 2>&1); deep-performer needs >= 3.10"
  "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null || fail "$PYTHON lacks venv/ensurepip (apt-get install python3-venv)"
  command -v apt-get >/dev/null 2>&1 || fail "no apt-get: this script is for Debian/Ubuntu images"
  for pkg in "${APT_PACKAGES[@]}"; do
    # installed, or available to apt-get (an apt-get update may be needed before the candidate shows)
    if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
      say "ok: $pkg installed"
    elif apt-cache policy "$pkg" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
      say "ok: $pkg available to apt-get"
    else
      fail "apt package $pkg is neither installed nor available (run apt-get update?)"
    fi
  done
  say "ok: torch pin $TORCH_VERSION matches pyproject.toml"
  say "plan:"
  say "  apt-get install -y --no-install-recommends ${APT_PACKAGES[*]}   (only the missing ones)"
  say "  $PYTHON -m venv $VENV"
  say "  $VENV/bin/python -m pip install ${torch_args[*]}"
  say "  $VENV/bin/python -m pip install -c <torch==installed version> $spec"
  say "  verify: torch $TORCH_VERSION kept, CUDA build (REQUIRE_CUDA_TORCH=$REQUIRE_CUDA_TORCH), fluidsynth imports, SoundFonts present"
  say "check passed (nothing changed)"
  exit 0
fi

# ---------------------------------------------------------------- 1. system packages
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  say "installing system packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ -n "${KEEP_APT_LISTS:-}" ] || $sudo rm -rf /var/lib/apt/lists/*
fi

# ---------------------------------------------------------------- 2. python environment
[ -x "$VENV/bin/python" ] || { say "creating $VENV with $($PYTHON --version)"; "$PYTHON" -m venv "$VENV"; }
pip=("$VENV/bin/python" -m pip install --no-cache-dir -q)
"${pip[@]}" --upgrade pip
say "installing ${torch_args[*]}"
"${pip[@]}" "${torch_args[@]}"
installed=$("$VENV/bin/python" -c 'import torch; print(torch.__version__)')
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
echo "torch==$installed" > "$constraints"   # the exact build, local label included: pip may not swap it
say "installing the project ($spec) with torch held at $installed"
# shellcheck disable=SC2086  # $spec is "-e .[extras]" on purpose
"${pip[@]}" -c "$constraints" $spec
# the evaluation's transcriber model (an ONNX file in the wheel; its TensorFlow pin is not needed)
"${pip[@]}" --no-deps basic-pitch==0.4.0

# ---------------------------------------------------------------- verify
"$VENV/bin/python" - "$installed" "$REQUIRE_CUDA_TORCH" <<'EOF'
import sys, torch, fluidsynth, librosa, mido, music21, muspy, dvc, mlflow, prefect  # noqa: F401
import pipeline
from pipeline.evaluation.transcription import model_path
from pathlib import Path
model_path()  # the transcriber's ONNX file is there
installed, require_cuda = sys.argv[1], sys.argv[2] == "1"
assert torch.__version__ == installed, f"torch changed during the project install: {installed} -> {torch.__version__}"
if require_cuda and torch.version.cuda is None:
    sys.exit(f"torch {torch.__version__} is a CPU build; set TORCH_INDEX_URL to a CUDA index")
fonts = ["/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/TimGM6mb.sf2"]
missing = [f for f in fonts if not Path(f).exists()]
if not list(Path("/usr/share/sounds/sf3").glob("MuseScore_General*.sf3")):
    missing.append("/usr/share/sounds/sf3/MuseScore_General*.sf3")
assert not missing, f"SoundFonts missing: {missing}"
print(f"[install-gpu] ready: torch {torch.__version__} (CUDA {torch.version.cuda}), "
      f"GPUs visible now: {torch.cuda.device_count()}")
EOF
