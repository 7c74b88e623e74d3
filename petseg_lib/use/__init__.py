"""Using a trained model: your own photos, notebook sliders, an exported ONNX file.

`photos.py` segments any photo at its own size, `widgets.py` puts sliders around the
figures in a notebook, `onnx_segmenter.py` runs an exported model without PyTorch. The
commands that use them (`inference`, `app`, `export`) are one floor up, in `petseg_lib/`.
"""
