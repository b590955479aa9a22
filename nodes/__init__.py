"""The pack's nodes and their registration tables."""

from .batch_companion_loader import BatchCompanionLoader
from .batch_image_loader import BatchImageLoader
from .batch_image_saver import BatchImageSaver
from .batch_text_saver import BatchTextSaver

NODE_CLASS_MAPPINGS = {
    "BatchImageLoader": BatchImageLoader,
    "BatchImageSaver": BatchImageSaver,
    "BatchCompanionLoader": BatchCompanionLoader,
    "BatchTextSaver": BatchTextSaver,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "BatchImageLoader": "Batch Image Loader",
    "BatchImageSaver": "Batch Image Saver",
    "BatchCompanionLoader": "Batch Companion Loader",
    "BatchTextSaver": "Batch Text Saver",
}
