"""The pack's nodes and their registration tables."""

from .batch_image_loader import BatchImageLoader
from .batch_image_saver import BatchImageSaver

NODE_CLASS_MAPPINGS = {
    "BatchImageLoader": BatchImageLoader,
    "BatchImageSaver": BatchImageSaver,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "BatchImageLoader": "Batch Image Loader",
    "BatchImageSaver": "Batch Image Saver",
}
