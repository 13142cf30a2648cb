"""One thin script per DVC stage (dvc.yaml runs them as `python -m stages.NAME`)."""
