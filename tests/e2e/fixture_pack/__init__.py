"""Test-only nodes the end-to-end tests and benchmarks put into a real ComfyUI: a node that fails
on chosen file names (downstream failures), one that waits (time to press Cancel or Stop), and a
"free" image source (the benchmarks' lower bound for any loader)."""

import os
import sys
import threading
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


_POOL_FILLS = [0]
_POOL_FILLS_LOCK = threading.Lock()


def _count_pool_fills() -> None:
    """Wrap the pack's RunBatch.fill (once) to count the slices its decoding pool threads wrote: a
    test can then tell that a run really came from the pool path (utils/images/run_batch.py)."""
    for name, module in list(sys.modules.items()):
        if not name.endswith(".utils.images.run_batch"):
            continue
        cls = getattr(module, "RunBatch", None)
        if not isinstance(cls, type) or getattr(cls, "_bip_counted", False):
            continue
        inner = cls.fill

        def fill(self, index, decoded, _inner=inner):
            ok = _inner(self, index, decoded)
            if ok and threading.current_thread().name.startswith("batch-run-decode"):
                with _POOL_FILLS_LOCK:
                    _POOL_FILLS[0] += 1
            return ok

        cls.fill = fill
        cls._bip_counted = True


class BIPTestDumpRun:
    """Writes the IMAGE and MASK it gets, row by row, as .npy files named after the run's inputs
    (RUN_FILES, one per line; '/' as '__'; a name met again gets '.dupN'), so tests compare exact
    float32 values. keep: also holds on to every IMAGE/MASK it was given (as a downstream node that
    caches its input would) and fails when one of them changed since, or when a new one shares
    memory with one held. Passes IMAGE on; its ui output counts the slices the pack's decoding pool wrote so far."""

    CATEGORY = "testing"
    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"
    OUTPUT_NODE = True
    _held: typing.ClassVar[dict] = {}  # node id -> [(tensor given, its copy, "IMAGE"|"MASK")]

    @classmethod
    def INPUT_TYPES(cls):
        _count_pool_fills()  # at validation, before the loader of the prompt runs
        return {"required": {"images": ("IMAGE",), "mask": ("MASK",), "run_files": ("STRING", {"default": ""}),
                             "out_dir": ("STRING", {"default": ""}), "keep": ("BOOLEAN", {"default": False})},
                "hidden": {"unique_id": "UNIQUE_ID"}}

    def run(self, images, mask, run_files, out_dir, keep, unique_id=None):
        import numpy as np

        names = run_files.split("\n")
        if len(names) != images.shape[0] or mask.shape[0] != images.shape[0]:
            raise ValueError(f"{len(names)} names, IMAGE {list(images.shape)}, MASK {list(mask.shape)}")
        os.makedirs(out_dir, exist_ok=True)
        for i, name in enumerate(names):
            stem = os.path.join(out_dir, name.replace("/", "__"))
            n = 0
            while os.path.exists(stem + (f".dup{n}" if n else "") + ".image.npy"):
                n += 1
            stem += f".dup{n}" if n else ""
            np.save(stem + ".image.npy", images[i].numpy())
            np.save(stem + ".mask.npy", mask[i].numpy())
        if keep:
            self._check_held(self._held.setdefault(str(unique_id), []), images, mask)
        with _POOL_FILLS_LOCK:
            fills = _POOL_FILLS[0]
        return {"ui": {"pool_fills": [fills], "shape": [list(images.shape)]}, "result": (images,)}

    @staticmethod
    def _check_held(held, images, mask):
        def span(t):
            start = t.data_ptr()
            return t.untyped_storage().data_ptr(), start, start + t.numel() * t.element_size()

        for old, copy, what in held:
            if not old.equal(copy):
                raise ValueError(f"a {what} handed out by an earlier run changed afterwards")
            base, start, end = span(old)
            for new in (images, mask):
                nbase, nstart, nend = span(new)
                if nbase == base and nstart < end and start < nend:
                    raise ValueError(f"this run's tensor shares memory with a {what} of an earlier run")
        held += [(images, images.clone(), "IMAGE"), (mask, mask.clone(), "MASK")]
        del held[:-16]


def _replace_decoding(wrap):
    """The pack's decode_image (as the prefetch calls it) becomes wrap(the real one), and the
    decode worker processes are not used, so the change holds for every image; wrap None puts
    the real decoding and the workers back."""
    for name, module in list(sys.modules.items()):
        if name.endswith("utils.images.prefetch") and hasattr(module, "decode_image"):
            real = getattr(module, "_bip_real_decode_image", module.decode_image)
            module._bip_real_decode_image = real
            module.decode_image = real if wrap is None else wrap(real)
        if name.endswith("utils.images.decode_processes") and hasattr(module, "DecodeProcesses"):
            processes = module.DecodeProcesses
            real_available = getattr(processes, "_bip_real_available", processes.available)
            processes._bip_real_available = real_available
            processes.available = real_available if wrap is None else (lambda self: False)


class BIPTestBreakLoading:
    """Makes the pack's image loading fail with an error nobody foresaw (not an unreadable file)
    for file names containing `marker`; an empty marker puts the real loading back."""

    CATEGORY = "testing"
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"marker": ("STRING", {"default": ""})}}

    @classmethod
    def IS_CHANGED(cls, **kwargs):
        return float("nan")

    def run(self, marker):
        def broken(real):
            def decode_image(path, *args, **kwargs):
                if marker in os.path.basename(path):
                    raise RuntimeError(f"injected failure reading {os.path.basename(path)}")
                return real(path, *args, **kwargs)
            return decode_image

        _replace_decoding(broken if marker else None)
        return {}


class BIPTestFreeDecoding:
    """The benchmarks' bound for the pack's own work: with `enabled`, each image the pack decodes
    is remembered and its pixels handed out again on the next read of that file, so decoding costs
    nothing (the files must not change meanwhile; the decode processes are not used meanwhile);
    disabled, the real decoding is back."""

    CATEGORY = "testing"
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"enabled": ("BOOLEAN", {"default": False})}}

    @classmethod
    def IS_CHANGED(cls, **kwargs):
        return float("nan")

    def run(self, enabled):
        def free(real):
            remembered = {}

            def decode_image(path, *args):
                if (path, *args) not in remembered:
                    remembered[(path, *args)] = real(path, *args)
                return remembered[(path, *args)]
            return decode_image

        _replace_decoding(free if enabled else None)
        return {}


NODE_CLASS_MAPPINGS = {"BIPTestFailOn": BIPTestFailOn, "BIPTestBreakLoading": BIPTestBreakLoading,
                       "BIPTestFreeDecoding": BIPTestFreeDecoding,
                       "BIPTestSleep": BIPTestSleep, "BIPTestSleepOn": BIPTestSleepOn,
                       "BIPTestNoiseImage": BIPTestNoiseImage, "BIPTestNullSink": BIPTestNullSink,
                       "BIPTestCancelAtEnd": BIPTestCancelAtEnd, "BIPTestClearHistoryAfter": BIPTestClearHistoryAfter,
                       "BIPTestDumpRun": BIPTestDumpRun}
