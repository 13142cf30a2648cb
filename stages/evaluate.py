"""Stage `evaluate`: every row of the table (pipeline/evaluation/rows.py) on the same test clips (unseen
pieces); the paper's Table 2 on our data.

Outputs: the metrics (system -> metric, for `dvc metrics show`), the table as CSV and markdown (rows =
systems), the plots' CSVs, the listening report, and an MLflow run holding all of them.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.config import Params
from pipeline.evaluation.run import evaluate
from pipeline.evaluation.tables import TableOutputs
from stages._common import stage_main


def run(params: Params, features: Path, audio: Path, models: Path, report: Path, **outputs: Path) -> None:
    evaluate(params, features, audio, models, TableOutputs(**outputs), report)


if __name__ == "__main__":
    stage_main(
        run,
        __doc__,
        {
            "features": "input: the mel stage's folder (the test split's clips)",
            "audio": "input: the resample stage's 16 kHz audio folder",
            "models": "input: the folder holding every trained model (<models>/<name>/model.pt)",
            "report": "output: the listening report folder (index.html, audio, pictures)",
            "metrics": "output: system -> metric (JSON)",
            "table-csv": "output: the table, rows = systems (CSV)",
            "table-md": "output: the table, by-material means and paired differences (markdown)",
            "mse-plot": "output: audio log-mel MSE per system (CSV)",
            "timing-plot": "output: timing errors per system (CSV)",
        },
    )
