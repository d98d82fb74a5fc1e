"""Read-outs: pure functions of the quantizer distances ``d`` (B, L, K), lower = closer.

GEAR feeds the AR two views of one codebook assignment (REFERENCE.md, "The method"):

- ``HardReadout``: ``argmin d`` -> indices (B, L), long, no gradient. The AR's next-token
  branch (prior step) uses it; the NTP loss therefore never reaches the tokenizer.
- ``SoftReadout``: ``softmax(-d / tau)`` -> probabilities (B, L, K), differentiable through
  ``d`` into the encoder (and the codebook where one is learnt). The tokenizer step's alignment
  branch uses it; the AR embeds it as ``probs @ E``.
- ``StraightThroughReadout``: forward = the hard one-hot (B, L, K), backward = the soft
  read-out's gradient. An ablation only: end to end it collapses the codebook (gFID about 105).

Each read-out has ``returns_probs`` (and its alias ``is_soft``): False -> the caller gets
indices (B, L), True -> probabilities (B, L, K) in float32. Read-outs hold no parameters and do
not know which training phase they run in.
"""
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gear.registry import READOUTS


def _check_d(d: Tensor) -> None:
    if d.dim() != 3:
        raise ValueError(f'a read-out expects distances d of shape (B, L, K), got {tuple(d.shape)}')


def _soft(d: Tensor, tau: float) -> Tensor:
    """``softmax(-d / tau)`` over the codes, computed in float32 -> (B, L, K) float32."""
    return torch.softmax(-d.float() / tau, dim=-1)  # (B, L, K)


class _TemperatureReadout(nn.Module):
    """Shared ``tau`` handling of the soft and straight-through read-outs."""

    returns_probs = True
    is_soft = True

    def __init__(self, tau: float = 0.1):
        super().__init__()
        if not tau > 0:
            raise ValueError(f'tau must be > 0, got {tau}')
        self.tau = float(tau)

    def extra_repr(self) -> str:
        return f'tau={self.tau}'


@READOUTS.register_module()
class HardReadout(nn.Module):
    """Hard read-out: the index of the closest code, ``argmin_k d`` (no gradient).

    Takes no config keys.
    """

    returns_probs = False
    is_soft = False

    def forward(self, d: Tensor) -> Tensor:
        """(B, L, K) distances -> (B, L) long indices."""
        _check_d(d)
        return d.detach().argmin(dim=-1)  # (B, L)


@READOUTS.register_module()
class SoftReadout(_TemperatureReadout):
    """Soft read-out: ``softmax(-d / tau)``, differentiable through ``d``.

    The softmax is computed in float32 (with K = 16384 codes a bf16 softmax loses most of the
    small probabilities); the result stays float32, autocast handles the ``probs @ E`` matmul.

    Args:
        tau (float): temperature, > 0. GEAR's default 0.1 (ablated 0.1 / 0.05 / 0.01 / 0.005).
    """

    def forward(self, d: Tensor) -> Tensor:
        """(B, L, K) distances -> (B, L, K) float32 probabilities, rows summing to 1."""
        _check_d(d)
        return _soft(d, self.tau)  # (B, L, K)


@READOUTS.register_module()
class StraightThroughReadout(_TemperatureReadout):
    """Straight-through read-out (ablation): forward the hard one-hot, backward the soft one.

    The forward value is exactly the one-hot of ``argmin d`` (``hard + (soft - soft.detach())``
    adds an exact zero), the gradient is exactly that of ``SoftReadout(tau)``.

    Args:
        tau (float): temperature of the soft read-out whose gradient is used, > 0.
    """

    def forward(self, d: Tensor) -> Tensor:
        """(B, L, K) distances -> (B, L, K) float32 one-hot carrying the soft gradient."""
        _check_d(d)
        soft = _soft(d, self.tau)  # (B, L, K)
        hard = F.one_hot(d.detach().argmin(dim=-1), d.shape[-1]).to(soft.dtype)  # (B, L, K)
        return hard + (soft - soft.detach())  # (B, L, K)
