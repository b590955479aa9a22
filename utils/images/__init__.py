"""Images in and out: decoding files into ComfyUI's IMAGE/MASK tensors and encoding results.

Entry points: decode.py (a file to pixels, 16-bit and EXIF orientation included), tensors.py
(pixels to tensors on ComfyUI's device), prefetch.py (the next image decoded ahead; with
run_batch.py, a run's batch written by the threads that decode it) and
encode.py (a result to PNG/JPEG/WebP/TIFF bytes with its metadata).
"""
