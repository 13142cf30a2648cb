"""The torch-free render runtime: every module here imports no torch, at any depth (``.importlinter``'s
contract, and ``tests/test_onnx_render.py`` in a fresh process), so `performer render` of an ONNX export
waits for numpy and onnxruntime only.

Torch models take part through the array faces of :mod:`.networks`: a torch model handed to
:func:`~pipeline.inference.runtime.render.render_score` is wrapped by
:mod:`pipeline.inference.torch_networks`, imported only then (torch is loaded already where a torch
model exists)."""
