"""What a failed write means for the user, naming the file or folder in the way (shared by the savers)."""

from __future__ import annotations

import errno
import os

from ..log import printable
from ..paths import blocking_file


def describe_write_error(target: str, exc: OSError) -> str:
    folder = os.path.dirname(target)
    in_the_way = blocking_file(folder) if exc.errno in (errno.EEXIST, errno.ENOTDIR) else None
    if in_the_way:
        text = (f"cannot create the folder '{folder}': '{in_the_way}' is a file, not a folder. Move that file "
                "away, or change output_directory or relative_path.")
    elif exc.errno == errno.EISDIR:
        text = (f"cannot write '{target}': a folder has that name. Rename or move the folder, or use "
                "overwrite_mode Add number.")
    elif exc.errno == errno.ENAMETOOLONG:
        text = f"cannot write '{target}': the path is too long for this file system; choose a shorter output_directory."
    else:
        text = f"cannot write '{target}': {exc.strerror or exc}."
    return printable(text)
