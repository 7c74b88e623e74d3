"""SegFormer-B0: a small transformer encoder (MiT-B0) and an all-MLP decoder, for pet segmentation.

The encoder, a Mix Transformer, has four stages. Each stage starts with an *overlapping*
patch embedding, a strided convolution whose kernel is larger than its stride (7x7 stride 4
for the first stage, 3x3 stride 2 after), so neighbouring patches share pixels. Then come
transformer blocks, and a LayerNorm. Stage i works at H/4, H/8, H/16 and H/32 with 32, 64,
160 and 256 channels (the B0 sizes); every stage has 2 blocks, with 1, 2, 5 and 8 heads.

A block is the usual pre-norm transformer block with two changes:

1. Efficient self-attention: the keys and values come from a map shrunk R times in each
   direction by an RxR convolution of stride R (R = 8, 4, 2, 1 by stage), so attention at
   H/4 costs R^2 = 64 times less than over every pixel. The queries keep every position.
2. Mix-FFN: between the two linear layers of the MLP (4 times wider inside), a depthwise 3x3
   convolution mixes each position with its neighbours. It tells the block where a token is,
   so SegFormer needs no position embedding and takes any image size.

The decoder is all MLP: one linear layer brings each stage to 256 channels, the four maps are
upsampled to H/4 and concatenated, a 1x1 convolution with BatchNorm and ReLU fuses them, and a
last 1x1 convolution gives ``out_channels`` logits at H/4, enlarged bilinearly to the input.

Changes compared to the paper's B0: no stochastic depth (drop path) and no dropout inside the
encoder, which matter for long ImageNet trainings, not for a few epochs; the decoder keeps its
dropout of 0.1. Parameter and layer counts equal those of Hugging Face's
``SegformerForSemanticSegmentation`` with the B0 settings (tests/test_segformer.py checks it).

Attention can be looked at: ``attention_map(images, y, x)`` gives, for the pixel (y, x) of
each image, the attention weights of the last block of stage 4 over that stage's grid.

Input: float images in [0, 1] of shape (N, 3, H, W), H, W >= 32. Output: logits of shape
(N, out_channels, H, W). ``model.config`` rebuilds the architecture (no weights to download).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["EfficientSelfAttention", "MixFFN", "OverlapPatchEmbed", "SegFormer_B0",
           "TransformerBlock"]

# MiT-B0, stage by stage.
HIDDEN_SIZES = (32, 64, 160, 256)
DEPTHS = (2, 2, 2, 2)
HEADS = (1, 2, 5, 8)
REDUCTION_RATIOS = (8, 4, 2, 1)
PATCH_SIZES = (7, 3, 3, 3)
STRIDES = (4, 2, 2, 2)
MLP_RATIO = 4
DECODER_WIDTH = 256


def tokens_to_map(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(N, H*W, C) tokens as a (N, C, H, W) map."""
    return tokens.transpose(1, 2).reshape(tokens.shape[0], -1, height, width)


class OverlapPatchEmbed(nn.Module):
    """A strided convolution larger than its stride, then LayerNorm: a map into tokens."""

    def __init__(self, in_channels: int, embed_dim: int, patch_size: int, stride: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, embed_dim, kernel_size=patch_size, stride=stride,
                              padding=patch_size // 2)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        x = self.proj(x)  # (N, C, H/s, W/s)
        height, width = x.shape[-2:]
        tokens = x.flatten(2).transpose(1, 2)  # (N, H/s * W/s, C)
        return self.norm(tokens), height, width


class EfficientSelfAttention(nn.Module):
    """Multi-head self-attention whose keys and values come from a map shrunk by REDUCTION.

    With ``keep_weights = True`` the last forward pass's attention weights stay in
    ``weights`` (N, heads, queries, keys), the sizes of the two maps in ``grids``.
    """

    def __init__(self, dim: int, num_heads: int, reduction: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"{num_heads} heads do not divide {dim} channels")
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.reduction = reduction
        if reduction > 1:
            self.sr = nn.Conv2d(dim, dim, kernel_size=reduction, stride=reduction)
            self.norm = nn.LayerNorm(dim)
        self.keep_weights = False
        self.weights: torch.Tensor | None = None
        self.grids: tuple[tuple[int, int], tuple[int, int]] | None = None  # queries', keys'

    def split_heads(self, tokens: torch.Tensor) -> torch.Tensor:
        """(N, L, C) as (N, heads, L, C / heads)."""
        n, length, _ = tokens.shape
        return tokens.reshape(n, length, self.num_heads, -1).transpose(1, 2)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        n, length, dim = x.shape  # length = height * width
        context, grid = x, (height, width)
        if self.reduction > 1:
            reduced = self.sr(tokens_to_map(x, height, width))  # (N, C, h/R, w/R)
            grid = tuple(reduced.shape[-2:])
            context = self.norm(reduced.flatten(2).transpose(1, 2))  # (N, h/R * w/R, C)
        q = self.split_heads(self.query(x))  # (N, heads, L, C/heads)
        k = self.split_heads(self.key(context))  # (N, heads, L', C/heads)
        v = self.split_heads(self.value(context))  # (N, heads, L', C/heads)
        attention = (q @ k.transpose(-2, -1) * self.scale).softmax(dim=-1)  # (N, heads, L, L')
        if self.keep_weights:
            self.weights, self.grids = attention.detach(), ((height, width), grid)
        out = (attention @ v).transpose(1, 2).reshape(n, length, dim)  # (N, L, C)
        return self.proj(out)


class MixFFN(nn.Module):
    """Linear, depthwise 3x3 convolution, GELU, linear: an MLP that sees its neighbours."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, kernel_size=3, padding=1, groups=hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        x = self.fc1(x)  # (N, L, 4C)
        x = self.dwconv(tokens_to_map(x, height, width))  # (N, 4C, h, w)
        x = x.flatten(2).transpose(1, 2)  # (N, L, 4C)
        return self.fc2(self.act(x))  # (N, L, C)


class TransformerBlock(nn.Module):
    """x + attention(norm(x)), then x + Mix-FFN(norm(x))."""

    def __init__(self, dim: int, num_heads: int, reduction: int, mlp_ratio: int = MLP_RATIO):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = EfficientSelfAttention(dim, num_heads, reduction)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MixFFN(dim, dim * mlp_ratio)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), height, width)
        return x + self.mlp(self.norm2(x), height, width)


class MiTStage(nn.Module):
    """Overlapping patch embedding, transformer blocks, LayerNorm; returns a (N, C, h, w) map."""

    def __init__(self, in_channels: int, dim: int, patch_size: int, stride: int, depth: int,
                 num_heads: int, reduction: int):
        super().__init__()
        self.patch_embed = OverlapPatchEmbed(in_channels, dim, patch_size, stride)
        self.blocks = nn.ModuleList(TransformerBlock(dim, num_heads, reduction)
                                    for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens, height, width = self.patch_embed(x)  # (N, h * w, C)
        for block in self.blocks:
            tokens = block(tokens, height, width)
        return tokens_to_map(self.norm(tokens), height, width)  # (N, C, h, w)


class MixTransformerB0(nn.Module):
    """The MiT-B0 encoder: four stages at H/4, H/8, H/16 and H/32."""

    def __init__(self, in_channels: int = 3):
        super().__init__()
        widths = (in_channels, *HIDDEN_SIZES)
        stages = [MiTStage(widths[i], widths[i + 1], PATCH_SIZES[i], STRIDES[i], DEPTHS[i],
                           HEADS[i], REDUCTION_RATIOS[i]) for i in range(4)]
        self.stage1, self.stage2, self.stage3, self.stage4 = stages

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        c1 = self.stage1(x)  # (N, 32, H/4, W/4)
        c2 = self.stage2(c1)  # (N, 64, H/8, W/8)
        c3 = self.stage3(c2)  # (N, 160, H/16, W/16)
        c4 = self.stage4(c3)  # (N, 256, H/32, W/32)
        return [c1, c2, c3, c4]


class AllMLPDecoder(nn.Module):
    """Each stage to WIDTH channels, all upsampled to H/4, fused by a 1x1 convolution."""

    def __init__(self, out_channels: int, width: int = DECODER_WIDTH, dropout: float = 0.1):
        super().__init__()
        self.linear_c1, self.linear_c2, self.linear_c3, self.linear_c4 = (
            nn.Linear(channels, width) for channels in HIDDEN_SIZES)
        self.linear_fuse = nn.Conv2d(4 * width, width, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)
        self.linear_pred = nn.Conv2d(width, out_channels, kernel_size=1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        size = features[0].shape[-2:]  # (H/4, W/4)
        linears = (self.linear_c1, self.linear_c2, self.linear_c3, self.linear_c4)
        maps = []
        for c, linear in zip(features, linears, strict=True):
            x = linear(c.flatten(2).transpose(1, 2))  # (N, h * w, 256)
            x = tokens_to_map(x, *c.shape[-2:])  # (N, 256, h, w)
            maps.append(F.interpolate(x, size=size, mode="bilinear", align_corners=False))
        x = torch.cat(maps[::-1], dim=1)  # (N, 1024, H/4, W/4): stage 4 first, as in SegFormer
        x = self.dropout(self.relu(self.bn(self.linear_fuse(x))))  # (N, 256, H/4, W/4)
        return self.linear_pred(x)  # (N, out_channels, H/4, W/4)


class SegFormer_B0(nn.Module):
    """SegFormer-B0 (MiT-B0 encoder + all-MLP decoder); outputs logits of the input's size."""

    def __init__(self, in_channels: int = 3, out_channels: int = 1):
        super().__init__()
        # Everything needed to rebuild the architecture (there are no weights to download).
        self.config = {"in_channels": in_channels, "out_channels": out_channels}
        self.encoder = MixTransformerB0(in_channels)
        self.decoder = AllMLPDecoder(out_channels)
        self.apply(init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]  # (H, W)
        logits = self.decoder(self.encoder(x))  # (N, out_channels, H/4, W/4)
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)

    @torch.no_grad()
    def attention_map(self, images: torch.Tensor, y: int, x: int) -> torch.Tensor:
        """Stage 4's last attention from pixel (Y, X) of each image: (N, heads, H/32, W/32)."""
        attention = self.encoder.stage4.blocks[-1].attn
        attention.keep_weights = True
        try:
            self.encoder(images)
        finally:
            attention.keep_weights = False
        weights, (queries, keys) = attention.weights, attention.grids  # (N, heads, L, L')
        attention.weights = None
        height, width = images.shape[-2:]
        row, col = y * queries[0] // height, x * queries[1] // width  # the query's token
        return weights[:, :, row * queries[1] + col].reshape(*weights.shape[:2], *keys)


def init_weights(module: nn.Module) -> None:
    """SegFormer's initialisation: small normal linear weights, He-scaled convolutions."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
    elif isinstance(module, nn.Conv2d):
        fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
        nn.init.normal_(module.weight, std=math.sqrt(2.0 / (fan_out // module.groups)))
    elif isinstance(module, nn.LayerNorm | nn.BatchNorm2d):
        nn.init.ones_(module.weight)
    if getattr(module, "bias", None) is not None:
        nn.init.zeros_(module.bias)
