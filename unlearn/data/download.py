"""Downloads of public data sets (dataset.download=true) that fail in one line naming the data set and its URL."""
from __future__ import annotations

from typing import Callable

from unlearn.data.store import MissingDataError


def fetch(name: str, url: str, root, get: Callable[[], object]) -> None:
    """`get()` (torchvision's download), or a MissingDataError naming `name`, `url` and `root` when the network
    fails (no internet on this machine, a proxy, a rate limit), instead of a raw URLError and its traceback."""
    try:
        get()
    except (OSError, RuntimeError) as e:  # URLError, socket errors and HTTP errors are OSErrors; gdown's are RuntimeErrors
        reason = getattr(e, "reason", None) or (str(e).splitlines() or [type(e).__name__])[0]
        raise MissingDataError(f"dataset {name}: the download from {url} failed ({reason}); without internet here, "
                               f"fetch it on a machine that has it and copy it into root={root}") from None
