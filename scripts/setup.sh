#!/usr/bin/env bash
# Set up everything deep-performer needs on a fresh Debian/Ubuntu machine:
#   1. system packages: libfluidsynth3 and the SoundFonts (apt-get, only when missing)
#   2. a virtual environment in .venv with the project and its Python packages
# With --test (what `make test` runs) also the packages only the test suite needs: Chromium (headless,
# for the listening report's browser check in tests/test_report.py) and docker-compose (v1, Debian:
# tests/test_docker_kit.py validates docker/compose.yaml with it, no engine needed).
# Idempotent: a second run checks and returns in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[setup] %s\n' "$*"; }

tests=0
for arg in "$@"; do
  case "$arg" in
    --test) tests=1 ;;
    -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) say "error: unknown option $arg (usage: scripts/setup.sh [--test])" >&2; exit 2 ;;
  esac
done

# ---------------------------------------------------------------- system packages
missing=()
ldconfig -p 2>/dev/null | grep -q 'libfluidsynth\.so\.3' || missing+=(libfluidsynth3)
[ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || missing+=(fluid-soundfont-gm)
[ -f /usr/share/sounds/sf3/MuseScore_General.sf3 ] || missing+=(musescore-general-soundfont)
[ -f /usr/share/sounds/sf2/TimGM6mb.sf2 ] || missing+=(timgm6mb-soundfont)
if [ "$tests" -eq 1 ]; then
  command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing+=(chromium)
  command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    extra=""
    [ "$tests" -eq 1 ] && extra=", Chromium (chromium or chromium-browser on PATH) and docker-compose"
    say "error: missing system packages (${missing[*]}) and no apt-get here; install FluidSynth 2.x and the" \
        "FluidR3_GM, MuseScore_General and TimGM6mb SoundFonts (or set PERFORMER_SOUNDFONT_DIR)$extra" >&2
    exit 1
  fi
  if [ "$(id -u)" -eq 0 ]; then sudo=""; elif sudo -n true 2>/dev/null; then sudo="sudo"; else
    say "error: missing system packages: ${missing[*]}. Run: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  say "installing system packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || { say "error: apt-get could not install ${missing[*]}" >&2; exit 1; }
fi

# ---------------------------------------------------------------- python environment
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $($python --version)"
  "$python" -m venv .venv
fi
stamp=.venv/.setup-stamp
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing Python packages (first run takes a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  # torch first, pinned: these machines hold a local CPU wheel of 2.13.0
  .venv/bin/python -m pip install -q torch==2.13.0
  .venv/bin/python -m pip install -q -e ".[dev]"
  # the evaluation's transcriber: basic-pitch ships its model as an ONNX file inside the wheel, run
  # here on onnxruntime; its metadata demands TensorFlow, which nothing here uses, hence --no-deps
  .venv/bin/python -m pip install -q --no-deps basic-pitch==0.4.0
  echo "$want" > "$stamp"
fi
.venv/bin/python -c "import fluidsynth, torch, librosa, mido, music21, muspy, dvc, onnxruntime; from pipeline.evaluation.transcription import model_path; model_path()" \
  || { say "error: the Python environment is incomplete; delete .venv and re-run scripts/setup.sh" >&2; exit 1; }
say "ready (.venv: $(.venv/bin/python --version), torch $(.venv/bin/python -c 'import torch; print(torch.__version__)'))"
