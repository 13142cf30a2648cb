"""FastSpeech-style feed-forward transformer (FFT) blocks.

One block = multi-head self-attention (key padding mask) -> dropout -> residual -> LayerNorm,
then a position-wise feed-forward network of two 1-D convolutions (kernels ``(9, 1)`` in the
paper) -> dropout -> residual -> LayerNorm. Padding positions are zeroed after every sub-layer,
so a padded sequence gives the same outputs at its valid positions as the unpadded one (the
convolutions see zeros there, exactly like their own zero padding at the sequence edge).

Shapes: ``x`` (B, L, D), ``mask`` (B, L) bool, True where the position holds data.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def sinusoidal_encoding(
    length: int, dim: int, device: torch.device | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """(length, dim) table of the transformer's sine/cosine positional encoding.

    Even channels ``2i`` hold ``sin(pos / 10000^(2i/dim))``, odd channels the cosine.
    """
    position = torch.arange(length, device=device, dtype=torch.float64)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float64) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim, device=device, dtype=torch.float64)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq)[:, : dim // 2]
    return table.to(dtype)


class SinusoidalPositions(nn.Module):
    """Adds the sinusoidal encoding of the sequence index: (B, L, D) -> (B, L, D).

    ``max_len`` positions are precomputed (a non-persistent buffer, so not in checkpoints);
    longer sequences get a freshly computed table.
    """

    table: torch.Tensor  # buffer (register_buffer in __init__)

    def __init__(self, dim: int, max_len: int = 1000) -> None:
        super().__init__()
        self.dim = dim
        self.register_buffer("table", sinusoidal_encoding(max_len, dim), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        if length <= self.table.shape[0]:
            table = self.table[:length]
        else:
            table = sinusoidal_encoding(length, self.dim, device=x.device)
        return x + table.to(x.dtype)[None]


def attention_mask(mask: torch.Tensor) -> torch.Tensor:
    """(B, 1, 1, L) bool, True = may attend; a sequence with no valid position attends to all
    (its outputs are zeroed afterwards) so that the softmax never sees an all-masked row."""
    empty = ~mask.any(dim=1, keepdim=True)
    return (mask | empty)[:, None, None, :]


class MultiHeadSelfAttention(nn.Module):
    """Self-attention with ``heads`` heads sharing ``attention_dim`` hidden units in total.

    (B, L, dim) -> (B, L, dim); queries, keys and values are projected to ``attention_dim``
    (``attention_dim // heads`` per head), the concatenated heads back to ``dim``.
    """

    def __init__(self, dim: int = 128, heads: int = 2, attention_dim: int = 64) -> None:
        super().__init__()
        if attention_dim % heads:
            raise ValueError(f"attention_dim {attention_dim} is not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * attention_dim)
        self.out = nn.Linear(attention_dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask(mask))
        return self.out(y.transpose(1, 2).reshape(batch, length, -1))


class ConvFeedForward(nn.Module):
    """Position-wise FFN: Conv1d(dim -> hidden, k0) -> ReLU -> Conv1d(hidden -> dim, k1).

    (B, L, dim) -> (B, L, dim); 'same' zero padding, so odd kernels keep the length.
    """

    def __init__(self, dim: int = 128, hidden: int = 256, kernels: tuple[int, int] = (9, 1)) -> None:
        super().__init__()
        if any(k % 2 == 0 for k in kernels):
            raise ValueError(f"FFN kernels must be odd, got {tuple(kernels)}")
        self.conv1 = nn.Conv1d(dim, hidden, kernels[0], padding=kernels[0] // 2)
        self.conv2 = nn.Conv1d(hidden, dim, kernels[1], padding=kernels[1] // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(x.transpose(1, 2)))).transpose(1, 2)


class FFTBlock(nn.Module):
    """One feed-forward transformer block (post-norm, as in FastSpeech): (B, L, D) -> (B, L, D)."""

    def __init__(
        self,
        dim: int = 128,
        heads: int = 2,
        attention_dim: int = 64,
        ffn_dim: int = 256,
        kernels: tuple[int, int] = (9, 1),
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.attention = MultiHeadSelfAttention(dim, heads, attention_dim)
        self.norm1 = nn.LayerNorm(dim)
        self.ffn = ConvFeedForward(dim, ffn_dim, kernels)
        self.norm2 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        keep = mask[..., None]
        x = self.norm1(x + self.dropout(self.attention(x, mask))).masked_fill(~keep, 0.0)
        return self.norm2(x + self.dropout(self.ffn(x))).masked_fill(~keep, 0.0)


class FFTStack(nn.Module):
    """``layers`` FFT blocks; padding is zeroed on the way in. (B, L, D), (B, L) -> (B, L, D)."""

    def __init__(
        self,
        layers: int = 3,
        dim: int = 128,
        heads: int = 2,
        attention_dim: int = 64,
        ffn_dim: int = 256,
        kernels: tuple[int, int] = (9, 1),
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            FFTBlock(dim, heads, attention_dim, ffn_dim, kernels, dropout) for _ in range(layers)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x.masked_fill(~mask[..., None], 0.0)
        for block in self.blocks:
            x = block(x, mask)
        return x
