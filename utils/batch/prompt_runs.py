"""What one ComfyUI prompt means to the batches: which images its loaders took, and how it ended."""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import log
from ..comfy.queue_control import PromptTemplate
from ..file_listing import ImageEntry
from ..images.prefetch import PreparedImage
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

    @property
    def is_last(self) -> bool:
        return self.index >= self.total - 1


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


@dataclass
class LoaderRun:
    """One loader's image within one prompt."""

    batch: Batch
    index: int
    rel_path: str
    error_policy: str
    icc_profile: bytes | None = None  # of the decoded image (see RunInput)
    exif: bytes | None = None
    skip_reason: str = ""  # another node of the prompt asked to skip this image (Skip on error)

    def inputs(self) -> list[RunInput]:
        """The run's input images, in the order of the IMAGE batch the loader output."""
        stem = self.batch.output_stem(self.rel_path)  # first call: ~0.3 s at 100k files
        return [RunInput(self.rel_path, self.batch.full_path(self.index), stem or "", self.index,
                         self.icc_profile, self.exif, self.batch.key)]


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
                batch.record_success(lr.index)
            elif outcome in ("success", "error") and not self.ends_chain and lr.error_policy == SKIP_ON_ERROR:
                reason = lr.skip_reason if outcome == "success" else message
                log.warning("node %s: skipping %s: %s", batch.settings.node_id, lr.rel_path, reason)
                batch.record_skip(lr.index, lr.rel_path, reason)
            else:
                go_on = False
                if outcome == "interrupted":
                    batch.request_stop(STOP_CANCEL)
                else:
                    errors[batch.key] = f"{lr.rel_path}: {message}"
                batch.give_back(lr.index, errors.get(batch.key, ""), lr.rel_path)
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
