"""Stage `export_onnx`: the three trained models as ONNX graphs, which `performer render` runs on
onnxruntime without importing torch (pipeline/inference/onnx_export.py says what each graph takes).

Writes the export folder: timing.onnx, mel.onnx, vocoder.onnx and render.json (the hparams, the mel
recipe and the SHA-256 of each model.pt it came from: a model trained again is not rendered through a
stale export).
"""

from __future__ import annotations

from pathlib import Path

from pipeline.config import Params
from pipeline.inference.models import load_folder
from pipeline.inference.onnx_export import export_onnx
from stages._common import stage_main


def run(params: Params, models: Path, out: Path) -> None:
    export_onnx(models, out, load_folder(models, params.mel))
    sizes = ", ".join(f"{p.name} {p.stat().st_size / 1e6:.1f} MB" for p in sorted(out.glob("*.onnx")))
    print(f"export_onnx: {sizes} in {out}")


if __name__ == "__main__":
    stage_main(
        run,
        __doc__,
        {
            "models": "input: the training stages' models folder (alignment/, synthesis/, hifigan/ with model.pt)",
            "out": "output: the export folder (performer render looks for <models>/onnx)",
        },
    )
