"""What one ComfyUI prompt means to the batches: which images its loaders took, and how it ended."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from .. import log
from ..comfy.queue_control import PromptTemplate
from ..file_listing import ImageEntry
from ..images import run_batch
from ..images.prefetch import PreparedImage
from ..images.tensors import to_batch_tensors
from ..saving.naming import NamingError
from .batch import RUNNING, STOP_CANCEL, Batch

STOP_ON_ERROR, SKIP_ON_ERROR = "Stop on error", "Skip on error"
CONTINUE, RESET = "Continue", "Reset"


@dataclass
class LoadedImage:
    """What a loader outputs for one image of its batch."""

    entry: ImageEntry
    full_path: str
    index: int
    total: int
    image: PreparedImage
    more: list[LoadedImage] = field(default_factory=list)  # images_per_run > 1: the run's other images
    unreadable: list[tuple[int, str, str]] = field(default_factory=list)  # skipped while filling the run

    @property
    def members(self) -> list[LoadedImage]:
        """Every image of the run, in the order of the IMAGE batch."""
        return [self, *self.more]

    @property
    def is_last(self) -> bool:
        """The run holds the batch's last file (read, or skipped as unreadable while filling it)."""
        return max([self.members[-1].index, *(u[0] for u in self.unreadable)]) >= self.total - 1

    @property
    def run_files(self) -> str:
        return "\n".join(m.entry.rel_path for m in self.members)

    def tensors(self, device: Any, dtype: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """IMAGE and MASK of the image, or of the whole run as one batch [k, H, W, ...]."""
        written = list(dict.fromkeys(m.image.run_batch for m in self.members if m.image.run_batch is not None))
        for m in self.members:  # the batches live on in the tensors handed out, not in the images
            m.image.run_batch = None
        if not self.more:
            return self.image.tensors(device, dtype)
        if run_batch.wanted(device, dtype):
            pixels = [(m.index, m.image.decoded) for m in self.members]
            for candidate in written:
                batch = candidate.tensors(pixels)
                if batch is not None:
                    return batch
        return to_batch_tensors([m.image.decoded for m in self.members], device if device is not None else "cpu",
                                dtype or torch.float32)


@dataclass(frozen=True)
class RunInput:
    """One input image of a loader's run, as the nodes downstream see it (the saver names its
    result after it)."""

    rel_path: str  # relative to the batch folder, "/" separators
    full_path: str
    stem: str  # the name to save its result under, unique within the batch
    index: int  # position in the batch
    icc_profile: bytes | None = None  # the colour profile its result carries (sRGB when converted)
    exif: bytes | None = None  # the input's EXIF as decoded (utils/images/exif.py makes the result's)
    batch_key: str = ""  # the loader's batch (the saver's fence asks it whether to write)


def result_inputs(inputs: list[RunInput], count: int, noun: str, hint: str) -> list[RunInput | None]:
    """The input each of count results belongs to: a run's k inputs in order (count must be k:
    a result is never saved under another input's name, NamingError otherwise, ending in hint),
    else the one input (None: not from a loader) for every result."""
    if len(inputs) <= 1:
        return [inputs[0] if inputs else None] * count
    if count != len(inputs):
        names = ", ".join(i.rel_path for i in inputs)
        raise NamingError(f"{count} {noun}(s) came for a run of {len(inputs)} inputs ({names}){hint}")
    return list(inputs)


@dataclass(frozen=True)
class RunImage:
    """One more image of a loader's run (images_per_run > 1)."""

    index: int
    rel_path: str
    icc_profile: bytes | None = None
    exif: bytes | None = None


@dataclass
class LoaderRun:
    """One loader's image (or run of images) within one prompt."""

    batch: Batch
    index: int
    rel_path: str
    error_policy: str
    icc_profile: bytes | None = None  # of the decoded image (see RunInput)
    exif: bytes | None = None
    more: list[RunImage] = field(default_factory=list)  # the run's other images, in IMAGE order
    unreadable: list[tuple[int, str, str]] = field(default_factory=list)  # (index, file, why): recorded with the run
    skip_reason: str = ""  # another node of the prompt asked to skip this run (Skip on error)

    @classmethod
    def of(cls, batch: Batch, loaded: LoadedImage, error_policy: str) -> LoaderRun:
        first = loaded.image.decoded
        more = [RunImage(m.index, m.entry.rel_path, m.image.decoded.icc_profile, m.image.decoded.exif)
                for m in loaded.more]
        return cls(batch, loaded.index, loaded.entry.rel_path, error_policy, first.icc_profile, first.exif, more,
                   list(loaded.unreadable))

    @property
    def images(self) -> list[RunImage]:
        return [RunImage(self.index, self.rel_path, self.icc_profile, self.exif), *self.more]

    def inputs(self) -> list[RunInput]:
        """The run's input images, in the order of the IMAGE batch the loader output."""
        return [RunInput(i.rel_path, self.batch.full_path(i.index),
                         self.batch.output_stem(i.rel_path) or "",  # first call: ~0.3 s at 100k files
                         i.index, i.icc_profile, i.exif, self.batch.key) for i in self.images]

    def record_finished(self, reason: str | None) -> None:
        """The run finished: each image done (reason None) or skipped for reason, the unreadable
        ones skipped for theirs, in the batch's order (the position ends after the last)."""
        self.batch.run_images = 0  # until the next run is picked
        records = [(i.index, i.rel_path, reason) for i in self.images] + list(self.unreadable)
        for index, rel_path, why in sorted(records):
            if why is None:
                self.batch.record_success(index)
            else:
                self.batch.record_skip(index, rel_path, why)

    def give_back(self, error: str) -> None:
        """The run did not finish: a shared batch gives every claim back (and stops on an error)."""
        for n, image in enumerate(self.images):
            self.batch.give_back(image.index, error if n == 0 else "", image.rel_path)

    @property
    def files(self) -> str:
        return ", ".join(i.rel_path for i in self.images)


@dataclass
class PromptRun:
    """A prompt the batches care about: a continuation the pack queued (continues: the batches it
    carries on) or a prompt whose loaders took images (loaders)."""

    prompt_id: str
    template: PromptTemplate | None = None
    continues: list[Batch] = field(default_factory=list)
    loaders: list[LoaderRun] = field(default_factory=list)
    ends_chain: bool = False  # a loader ended its batch inside this prompt (error, nothing left)

    def continues_key(self, key: str) -> Batch | None:
        return next((b for b in self.continues if b.key == key), None)

    def record(self, outcome: str, message: str) -> tuple[bool, dict[str, str]]:
        """Record the finished prompt in each loader's batch: (queue the next image?, errors by key)."""
        go_on = bool(self.loaders) and not self.ends_chain and self.template is not None
        errors: dict[str, str] = {}
        for lr in self.loaders:
            batch = lr.batch
            if outcome == "success" and not lr.skip_reason:
                lr.record_finished(None)
            elif outcome in ("success", "error") and not self.ends_chain and lr.error_policy == SKIP_ON_ERROR:
                reason = lr.skip_reason if outcome == "success" else message
                log.warning("node %s: skipping %s: %s", batch.settings.node_id, lr.files, reason)
                lr.record_finished(reason)
            else:
                go_on = False
                if outcome == "interrupted":
                    batch.request_stop(STOP_CANCEL)
                else:
                    errors[batch.key] = f"{lr.files}: {message}"
                lr.give_back(errors.get(batch.key, ""))
            finished = batch.finished_all
            if batch.failure:  # the claims folder failed: stop, naming it (a saved result stays pending)
                go_on = False
                errors.setdefault(batch.key, batch.failure)
            if finished or batch.stop_reason is not None or batch.detached or batch.phase != RUNNING:
                go_on = False
        return go_on, errors


def classify_outcome(status: object) -> tuple[str, str]:
    """("success"|"interrupted"|"error"|"lost", message) from a history status dict."""
    if status is None or not isinstance(status, dict):
        return "lost", "the prompt disappeared from ComfyUI's history"
    if status.get("status_str") == "success":
        return "success", ""
    for event, _ in status.get("messages") or []:
        if event == "execution_interrupted":
            return "interrupted", "cancelled"
    for event, data in status.get("messages") or []:
        if event == "execution_error" and isinstance(data, dict):
            node = f"node {data.get('node_id', '?')} ({data.get('node_type', '?')})"
            return "error", f"{node} failed: {data.get('exception_message', '').strip()}"
    return "error", "the prompt failed"
