"""The MLflow model registry: register the trained models as a candidate, promote it to champion if better.

Registered models (all in the tracking store of :func:`pipeline.tracking.tracking_uri`, or ``tracking_uri``):

* ``deep-performer-alignment``, ``deep-performer-synthesis``, ``deep-performer-hifigan``: the three
  torch modules the training stages logged (``models/<name>/mlflow.json``), as they are;
* ``deep-performer``: the composite, an MLflow pyfunc that bundles copies of the three models (it loads
  on its own, from its own artifacts). Input: a DataFrame with a ``score`` column (a path, or the base64
  of a MIDI/MusicXML/MXL file), optional ``performer`` (default: the first one the models know) and
  ``tempo`` (quarter notes per minute; default: the score's). Output, one row per input row: ``audio``
  (base64 of a 16 kHz mono float32 WAV file, see :func:`decode_audio`), ``sample_rate``, ``samples``.
  ``mlflow models serve -m models:/deep-performer@champion`` serves it; ``performer render --models
  models:/deep-performer@champion`` renders with it.

:func:`register_candidate` adds one new version to each of the four, tags each new version with the
evaluation metrics of ``metrics/evaluate.json`` (``deep_performer.audio_mel_mse``, ``deep_performer.mel_mse``,
... as tags named by their dotted key) and the git commit, and moves the alias ``candidate`` to them.
The composite's version also records its three component versions (tags ``component.<registered name>``).

Modules: ``common`` (names, aliases, the client), ``loading`` (models from a folder or MLflow URIs),
``serving`` (the composite pyfunc), ``promotion`` (register, promote, list). Importing this package
imports none of them: each side pulls in MLflow (seconds), which rendering from a folder never needs.

**Promotion rule** (:func:`promote_if_better`): the ``candidate`` and ``champion`` versions of
``deep-performer`` are compared on one metric tag, ``deep_performer.audio_mel_mse`` by default, where
lower is better. The candidate becomes champion when there is no champion yet, or when its value is
strictly lower than the champion's; then the alias ``champion`` moves to the candidate's versions of all
four registered models together (the composite and its three components), and the versions it replaced
keep the alias ``previous-champion`` (to roll back, move ``champion`` to them). A tie, a worse candidate,
or a candidate that already is the champion leaves everything as it is (returns False). A candidate
without the metric is an error, not a silent pass; a champion without it is replaced.
"""
