"""Inference: rendering a score with the three trained models.

Two halves, imported by their modules (this package imports nothing):

* :mod:`pipeline.inference.runtime`, which imports no torch: rendering in windows the size the models
  were trained on (:mod:`~pipeline.inference.runtime.render`, on numpy arrays), the array faces it
  calls (:mod:`~pipeline.inference.runtime.networks`), performers and levels
  (:mod:`~pipeline.inference.runtime.bundle`, :mod:`~pipeline.inference.runtime.blend`) and the ONNX
  export's graphs on onnxruntime (:mod:`~pipeline.inference.runtime.onnx_models`): what `performer
  render` runs on an export;
* the torch side: the three torch models as a bundle (:mod:`pipeline.inference.models`), behind the
  same faces (:mod:`pipeline.inference.torch_networks`), and their export to ONNX
  (:mod:`pipeline.inference.onnx_export`, the ``export_onnx`` stage).
"""
