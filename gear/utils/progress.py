"""Progress bars of the long evaluation loops (sampling, reference statistics, tokenizer
evaluation, the Inception pass over samples): tqdm on stderr, on rank 0 only, counting images,
with the rate in images/s and the ETA.

    with progress_bar(len(labels), 'sample') as bar:
        for batch in batches:
            bar.update(len(batch))

stdout stays for the tools' own lines (tests and scripts parse them).
"""
import sys
from typing import Optional

import torch.distributed as dist
from tqdm import tqdm


def is_rank_zero() -> bool:
    """True in a single process, and on rank 0 of a process group."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def progress_bar(total: Optional[int], desc: str, enabled: bool = True) -> tqdm:
    """A tqdm bar of ``total`` images (None: a count without ETA), shown when ``enabled`` on
    rank 0; elsewhere a disabled bar (``update`` does nothing)."""
    return tqdm(total=total, desc=desc, unit=' images', file=sys.stderr, dynamic_ncols=True,
                disable=not (enabled and is_rank_zero()))
