"""Test-only nodes the end-to-end tests and benchmarks put into a real ComfyUI: a node that fails
on chosen file names (downstream failures), one that waits (time to press Cancel or Stop), and a
"free" image source (the benchmarks' lower bound for any loader)."""

import time
import typing


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


class BIPTestSleepOn(BIPTestSleep):
    """Waits longer on chosen file names: makes one image of a batch the slow one."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",), "name": ("STRING", {"default": ""}),
                             "seconds": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 60.0}),
                             "slow_if_contains": ("STRING", {"default": ""}),
                             "slow_seconds": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 600.0})}}

    def run(self, images, name, seconds, slow_if_contains, slow_seconds):
        slow = bool(slow_if_contains) and slow_if_contains in name
        return super().run(images, slow_seconds if slow else seconds)


class BIPTestNoiseImage:
    """A random-noise image made once and returned at no cost: what a loader that costs nothing gives."""

    CATEGORY = "testing"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"
    _cache: typing.ClassVar[dict] = {}

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"size": ("INT", {"default": 1024, "min": 8, "max": 8192}),
                             "index": ("INT", {"default": 0, "min": 0, "max": 1_000_000})}}

    def run(self, size, index):
        import torch

        if size not in self._cache:
            self._cache[size] = torch.rand(1, size, size, 3, generator=torch.Generator().manual_seed(0))
        return (self._cache[size],)


class BIPTestCancelAtEnd:
    """Presses Cancel as the last node of a prompt whose name matches: the race where Cancel lands
    after the last node's check, made deterministic. via "http": POST /interrupt to this server,
    as the browser's Cancel does; "process": nodes.interrupt_processing() in the process, as
    another extension could."""

    CATEGORY = "testing"
    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",), "name": ("STRING", {"default": ""}),
                             "cancel_if_contains": ("STRING", {"default": ""}),
                             "via": (["http", "process"], {"default": "http"})}}

    def run(self, images, name, cancel_if_contains, via="http"):
        if not (cancel_if_contains and cancel_if_contains in name):
            return {}
        if via == "process":
            import nodes

            nodes.interrupt_processing()
            return {}
        import urllib.request

        from server import PromptServer

        url = f"http://127.0.0.1:{PromptServer.instance.port}/interrupt"
        request = urllib.request.Request(url, data=b"{}", method="POST", headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=10).read()
        return {}


class BIPTestClearHistoryAfter:
    """Clears ComfyUI's whole history the moment this prompt has been written to it (right after the
    queue's task_done), as a Clear history landing at the worst instant would: anything that learns
    a prompt's end from /history never sees this one."""

    CATEGORY = "testing"
    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",), "name": ("STRING", {"default": ""}),
                             "clear_if_contains": ("STRING", {"default": ""})}}

    def run(self, images, name, clear_if_contains):
        if not (clear_if_contains and clear_if_contains in name):
            return {}
        from server import PromptServer

        queue = PromptServer.instance.prompt_queue
        inner = queue.task_done

        def task_done(*args, **kwargs):
            queue.task_done = inner  # once, for this prompt
            result = inner(*args, **kwargs)
            queue.wipe_history()
            return result

        queue.task_done = task_done
        return {}


class BIPTestNullSink:
    """An output node that only reads the IMAGE's shape (and where it lives): the benchmarks'
    null workflow, so a run costs the loader plus ComfyUI's own per-prompt work."""

    CATEGORY = "testing"
    RETURN_TYPES = ()
    FUNCTION = "run"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",)}, "optional": {"mask": ("MASK",)}}

    def run(self, images, mask=None):
        info = {"shape": [list(images.shape)], "device": [str(images.device)], "dtype": [str(images.dtype)]}
        if mask is not None:
            info.update(mask_shape=[list(mask.shape)], mask_device=[str(mask.device)], mask_dtype=[str(mask.dtype)])
        return {"ui": info}


NODE_CLASS_MAPPINGS = {"BIPTestFailOn": BIPTestFailOn, "BIPTestSleep": BIPTestSleep, "BIPTestSleepOn": BIPTestSleepOn,
                       "BIPTestNoiseImage": BIPTestNoiseImage, "BIPTestNullSink": BIPTestNullSink,
                       "BIPTestCancelAtEnd": BIPTestCancelAtEnd, "BIPTestClearHistoryAfter": BIPTestClearHistoryAfter}
