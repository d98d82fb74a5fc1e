"""The REPA projector: an MLP from the AR's hidden size to a teacher's feature size."""
from torch import Tensor, nn


class Projector(nn.Module):
    """``Linear(in, hidden) - SiLU - Linear(hidden, hidden) - SiLU - Linear(hidden, out)``.

    Applied per token: (..., in_dim) -> (..., out_dim). Trainable (it is stepped with the AR in
    GEAR's prior phase; the tokenizer phase freezes it from outside).

    Args:
        in_dim (int): the AR hidden size (``dim`` of the backbone).
        out_dim (int): the teacher's feature size.
        hidden_dim (int): the MLP width, 2048 in GEAR / REPA.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int = 2048):
        super().__init__()
        self.in_dim, self.out_dim, self.hidden_dim = in_dim, out_dim, hidden_dim
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, hidden_dim), nn.SiLU(),
            nn.Linear(hidden_dim, hidden_dim), nn.SiLU(),
            nn.Linear(hidden_dim, out_dim))

    def forward(self, x: Tensor) -> Tensor:
        """(B, N, in_dim) -> (B, N, out_dim)."""
        return self.mlp(x)
