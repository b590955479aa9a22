"""Helpers of the Batch Image Processing pack: pure logic first, ComfyUI access kept at the edges."""
