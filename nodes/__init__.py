"""The pack's nodes and their registration tables."""

from .batch_image_loader import BatchImageLoader

NODE_CLASS_MAPPINGS = {
    "BatchImageLoader": BatchImageLoader,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "BatchImageLoader": "Batch Image Loader",
}
