"""TransGAN networks (Jiang, Chang, Wang; NeurIPS 2021), kept small enough to train on a CPU.

Generator: z → a linear map to an 8×8 grid of tokens + positional embedding → transformer
blocks → stages that double the grid (a linear map to 4× the channels + pixel shuffle, as
TransGAN's later stages) and halve the token width → a linear map of each token to an r×r
block of pixels, Tanh. Above 16×16 tokens the blocks attend within 8×8 windows (TransGAN's
grid self-attention); the grid stops at 32×32 tokens (r = image_size / 32 beyond), which keeps
a CPU step affordable at 64–256 px. Discriminator: a ViT over 8×8 patches with a class token.
An encoder (``components.dcgan.LatentEncoder``) predicts z from an image, to start the latent search.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


BASE_GRID = 8  # tokens per side of the generator's first stage and of the discriminator
FULL_ATTENTION_MAX = 16  # grids up to 16×16 tokens attend globally, larger ones in windows
WINDOW = 8  # attention window (tokens per side) on the larger grids
MAX_GRID = 32  # the last stage has at most 32×32 tokens; each token then paints an r×r pixel block


class Attention(nn.Module):
    """Multi-head self-attention written out (plain ops, so any order of gradient works)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1)) * (c // self.heads) ** -0.5
        out = attn.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    """Pre-norm transformer block; ``window`` > 0 restricts attention to window × window tiles."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 4, window: int = 0) -> None:
        super().__init__()
        self.window = window
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, dim * mlp_ratio)
        self.dw = nn.Conv2d(dim * mlp_ratio, dim * mlp_ratio, 3, 1, 1, groups=dim * mlp_ratio)
        self.fc2 = nn.Linear(dim * mlp_ratio, dim)

    def forward(self, x: Tensor, side: int = 0) -> Tensor:
        h = self.norm1(x)
        if self.window:
            h = self._windowed(h, side)
        else:
            h = self.attn(h)
        x = x + h
        h = self.fc1(self.norm2(x))
        if side:
            b, n, c = h.shape
            h = h + self.dw(h.transpose(1, 2).reshape(b, c, side, side)).flatten(2).transpose(1, 2)
        return x + self.fc2(F.gelu(h))

    def _windowed(self, h: Tensor, side: int) -> Tensor:
        b, _, c = h.shape
        w, n = self.window, side // self.window
        tiles = h.view(b, n, w, n, w, c).permute(0, 1, 3, 2, 4, 5).reshape(b * n * n, w * w, c)
        tiles = self.attn(tiles)
        return tiles.view(b, n, n, w, w, c).permute(0, 1, 3, 2, 4, 5).reshape(b, side * side, c)


def _heads(dim: int) -> int:
    return max(1, dim // 16)


class Generator(nn.Module):
    """Latent (nz,) → image (C, S, S) in [-1, 1]."""

    def __init__(self, image_size: int, channels: int, nz: int, dim: int, depth: int) -> None:
        super().__init__()
        self.dim = dim
        self.stem = nn.Linear(nz, BASE_GRID * BASE_GRID * dim)
        self.pos = nn.ParameterList()
        self.stages = nn.ModuleList()
        self.upsample = nn.ModuleList()  # token → 2×2 tokens of the next stage (linear + pixel shuffle)
        side, d = BASE_GRID, dim
        while True:
            self.pos.append(nn.Parameter(torch.randn(1, side * side, d) * 0.02))
            blocks = depth if side == BASE_GRID else 1
            window = WINDOW if side > FULL_ATTENTION_MAX else 0
            self.stages.append(nn.ModuleList(Block(d, _heads(d), window=window) for _ in range(blocks)))
            if side >= min(image_size, MAX_GRID):
                break
            d_next = max(d // 2, 16)
            self.upsample.append(nn.Linear(d, 4 * d_next))
            side, d = side * 2, d_next
        self.pixels_per_token = image_size // side
        self.to_pixels = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, channels * self.pixels_per_token**2))

    def forward(self, z: Tensor) -> Tensor:
        b = z.shape[0]
        x = self.stem(z).view(b, BASE_GRID * BASE_GRID, self.dim)
        side = BASE_GRID
        for i, blocks in enumerate(self.stages):
            x = x + self.pos[i]
            for block in blocks:
                x = block(x, side)
            if i < len(self.upsample):
                x, side = _pixel_shuffle(self.upsample[i](x), side, 2), side * 2
        image = _pixel_shuffle(self.to_pixels(x), side, self.pixels_per_token)
        return torch.tanh(image.transpose(1, 2).reshape(b, -1, side * self.pixels_per_token, side * self.pixels_per_token))


def _pixel_shuffle(tokens: Tensor, side: int, r: int) -> Tensor:
    """(B, side², C·r²) tokens → (B, (side·r)², C): each token becomes an r×r block of tokens."""
    b = tokens.shape[0]
    grid = tokens.transpose(1, 2).reshape(b, -1, side, side)
    return F.pixel_shuffle(grid, r).flatten(2).transpose(1, 2)


class Discriminator(nn.Module):
    """ViT: 8×8 grid of patches + class token → blocks → (logit (B,), token features (B, 65, dim))."""

    def __init__(self, image_size: int, channels: int, dim: int, depth: int) -> None:
        super().__init__()
        patch = image_size // BASE_GRID
        self.patches = nn.Conv2d(channels, dim, patch, patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, BASE_GRID * BASE_GRID + 1, dim) * 0.02)
        self.blocks = nn.ModuleList(Block(dim, _heads(dim)) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        tokens = self.patches(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(tokens.shape[0], -1, -1), tokens], dim=1) + self.pos
        for block in self.blocks:
            x = block(x)
        features = self.norm(x)
        return self.head(features[:, 0]).squeeze(1), features
