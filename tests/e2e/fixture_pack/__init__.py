"""Test-only nodes the end-to-end tests put into a real ComfyUI: a node that fails on chosen
file names (downstream failures) and one that waits (time to press Cancel or Stop)."""

import time


class BIPTestFailOn:
    CATEGORY = "testing"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",), "name": ("STRING", {"default": ""}),
                             "fail_if_contains": ("STRING", {"default": ""})}}

    def run(self, images, name, fail_if_contains):
        if fail_if_contains and fail_if_contains in name:
            raise ValueError(f"test failure on {name}")
        return (images,)


class BIPTestSleep:
    CATEGORY = "testing"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",), "seconds": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 60.0})}}

    def run(self, images, seconds):
        import comfy.model_management

        end = time.monotonic() + seconds
        while time.monotonic() < end:
            comfy.model_management.throw_exception_if_processing_interrupted()
            time.sleep(0.01)
        return (images,)


NODE_CLASS_MAPPINGS = {"BIPTestFailOn": BIPTestFailOn, "BIPTestSleep": BIPTestSleep}
