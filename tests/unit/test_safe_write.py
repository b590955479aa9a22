from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from batch_image_processing.utils.saving.safe_write import write_atomically


def writer(data: bytes):
    return lambda fh: fh.write(data)


def alternatives(path: Path):
    return (str(path.with_name(f"{path.stem}_{i}{path.suffix}")) for i in range(1, 100))


def test_add_number_picks_the_next_free_name(tmp_path: Path) -> None:
    target = tmp_path / "a.png"
    assert write_atomically(str(target), writer(b"1"), "Add number", alternatives(target)) == (str(target), True)
    (tmp_path / "a_1.png").write_bytes(b"taken")
    path, written = write_atomically(str(target), writer(b"2"), "Add number", alternatives(target))
    assert (path, written) == (str(tmp_path / "a_2.png"), True)
    assert target.read_bytes() == b"1" and (tmp_path / "a_1.png").read_bytes() == b"taken"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "a_1.png", "a_2.png"]


def test_skip_existing_leaves_the_file_byte_for_byte(tmp_path: Path) -> None:
    target = tmp_path / "a.png"
    target.write_bytes(b"original")
    before = target.stat()
    encoded = []
    path, written = write_atomically(str(target), lambda fh: encoded.append(1), "Skip existing")
    assert (path, written) == (str(target), False)
    assert target.read_bytes() == b"original" and target.stat().st_mtime_ns == before.st_mtime_ns
    assert encoded == [], "nothing is encoded for a file that is kept"


def test_overwrite_replaces_and_creates_folders(tmp_path: Path) -> None:
    target = tmp_path / "new" / "deep" / "a.png"
    assert write_atomically(str(target), writer(b"1"), "Overwrite")[1]
    assert write_atomically(str(target), writer(b"2"), "Overwrite")[1]
    assert target.read_bytes() == b"2"


def test_a_crash_while_encoding_leaves_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "a.png"
    target.write_bytes(b"old")

    def crash(fh):
        fh.write(b"half an ima")
        raise RuntimeError("killed")

    for mode in ("Overwrite", "Add number"):
        with pytest.raises(RuntimeError):
            write_atomically(str(target), crash, mode, alternatives(target))
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"] and target.read_bytes() == b"old"


def test_unknown_mode_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="overwrite_mode 'Replace' is not one of"):
        write_atomically(str(tmp_path / "x"), writer(b""), "Replace")


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
@pytest.mark.parametrize("mode", ["Add number", "Skip existing", "Overwrite"])
def test_results_get_the_umask_permissions_not_0600(tmp_path: Path, umask: int, mode: str) -> None:
    """Issue 11 #2: results were 0600 (a temporary file's mode) whatever the umask."""
    old = os.umask(umask)
    try:
        path, written = write_atomically(str(tmp_path / "r.png"), writer(b"1"), mode, alternatives(tmp_path / "r.png"))
        plain = tmp_path / "plain"
        plain.write_bytes(b"")  # what open() gives, as ComfyUI's own Save Image does
    finally:
        os.umask(old)
    assert written
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~umask == stat.S_IMODE(plain.stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain", "r.png"]


@pytest.mark.parametrize("mode", ["Skip existing", "Overwrite"])
def test_a_folder_with_the_results_name_is_never_kept_or_replaced(tmp_path: Path, mode: str) -> None:
    (tmp_path / "r.png").mkdir()
    (tmp_path / "r.png" / "inside.txt").write_text("user data")
    with pytest.raises(IsADirectoryError):
        write_atomically(str(tmp_path / "r.png"), writer(b"1"), mode)
    assert (tmp_path / "r.png" / "inside.txt").read_text() == "user data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.png"], "no temporary file left behind"
    target = tmp_path / "r.png"
    path, written = write_atomically(str(target), writer(b"1"), "Add number", alternatives(target))
    assert (path, written) == (str(tmp_path / "r_1.png"), True)
