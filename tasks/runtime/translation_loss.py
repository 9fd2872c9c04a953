"""Label-smoothed cross-entropy of the translation models (tasks 4a and 4b), as MLPerf GNMT's LabelSmoothing.

Per target token: (1 - smoothing) * (-log p(target)) + smoothing * mean over the vocabulary of (-log p).
It is computed in float32 from log_softmax whatever the logits' dtype, so half-precision runs do not lose
the small smoothing term, and padding targets add nothing. The sums (not means) are returned with the
token count so callers can average over all tokens of all ranks and batches.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from tasks.text_ids import PAD


def label_smoothed_loss(
    logits: Tensor, targets: Tensor, smoothing: float, padding_idx: int = PAD
) -> tuple[Tensor, Tensor, int]:
    """(smoothed loss sum, plain NLL sum, number of non-padding targets) over [N, V] logits and [N] targets."""
    if logits.dim() != 2 or targets.dim() != 1 or logits.shape[0] != targets.shape[0]:
        raise ValueError(
            f"label_smoothed_loss needs logits [N, V] and targets [N], got {tuple(logits.shape)} and "
            f"{tuple(targets.shape)}"
        )
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"label smoothing must be in [0, 1), got {smoothing}")
    keep = targets != padding_idx
    log_probs = F.log_softmax(logits[keep].float(), dim=-1)
    nll = -log_probs.gather(1, targets[keep].unsqueeze(1)).squeeze(1)
    uniform = -log_probs.mean(dim=-1)
    loss = (1.0 - smoothing) * nll + smoothing * uniform
    return loss.sum(), nll.sum(), int(keep.sum().item())
