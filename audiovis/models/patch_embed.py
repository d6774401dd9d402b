"""Overlapping patch embedding: timm's ``PatchEmbed`` with a convolution stride of its own.

timm's ``PatchEmbed`` always steps by the patch size. AST cuts 16 x 16 patches every 10 bins/frames,
so this subclass keeps timm's interface (``grid_size``, ``num_patches``, ``feat_ratio``,
``dynamic_feat_size``, ``set_input_size``) but counts patches as ``(size - patch) // stride + 1``.
"""

from __future__ import annotations

from typing import Callable

import torch
from timm.layers import PatchEmbed, to_2tuple
from timm.layers.format import Format, nchw_to
from torch import nn

from ..errors import ConfigError


class StridedPatchEmbed(PatchEmbed):
    """Conv patch embedding with ``kernel = patch_size`` and ``stride`` (defaults to the patch size)."""

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        patch_size: int | tuple[int, int] = 16,
        in_chans: int = 3,
        embed_dim: int = 768,
        norm_layer: Callable | None = None,
        flatten: bool = True,
        output_fmt: str | None = None,
        bias: bool = True,
        strict_img_size: bool = True,
        dynamic_img_pad: bool = False,
        stride: int | tuple[int, int] | None = None,
        device=None,
        dtype=None,
    ) -> None:
        if dynamic_img_pad:
            raise ConfigError("StridedPatchEmbed: dynamic_img_pad is not supported with overlapping patches")
        self.stride = to_2tuple(stride if stride is not None else patch_size)
        if any(int(s) <= 0 for s in self.stride):
            raise ConfigError(f"StridedPatchEmbed: stride must be positive, got {stride!r}")
        super().__init__(
            img_size=img_size, patch_size=patch_size, in_chans=in_chans, embed_dim=embed_dim,
            norm_layer=norm_layer, flatten=flatten, output_fmt=output_fmt, bias=bias,
            strict_img_size=strict_img_size, dynamic_img_pad=False, device=device, dtype=dtype,
        )
        self.proj = nn.Conv2d(
            in_chans, embed_dim, kernel_size=self.patch_size, stride=self.stride, bias=bias,
            device=device, dtype=dtype,
        )

    def _grid(self, img_size: tuple[int, int]) -> tuple[int, int]:
        for size, patch in zip(img_size, self.patch_size):
            if patch > size:
                raise ConfigError(f"StridedPatchEmbed: patch {tuple(self.patch_size)} is larger than the input {tuple(img_size)}")
        return tuple((s - p) // st + 1 for s, p, st in zip(img_size, self.patch_size, self.stride))  # type: ignore[return-value]

    def _init_img_size(self, img_size):
        if img_size is None:
            return None, None, None
        img_size = to_2tuple(img_size)
        grid_size = self._grid(img_size)
        return img_size, grid_size, grid_size[0] * grid_size[1]

    def set_input_size(self, img_size=None, patch_size=None, stride=None) -> None:
        """Change the input size, patch size (weights resampled by timm) and/or stride (weights kept)."""
        if stride is not None:
            self.stride = to_2tuple(stride)
        super().set_input_size(img_size=img_size, patch_size=patch_size)
        if tuple(self.proj.stride) != tuple(self.stride):
            self.proj.stride = tuple(self.stride)
        self.img_size, self.grid_size, self.num_patches = self._init_img_size(self.img_size)

    def feat_ratio(self, as_scalar: bool = True):
        """Input pixels per output token along each axis: the stride, not the patch size."""
        return max(self.stride) if as_scalar else self.stride

    def dynamic_feat_size(self, img_size: tuple[int, int]) -> tuple[int, int]:
        return self._grid(tuple(img_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, height, width = x.shape
        if self.img_size is not None and self.strict_img_size and (height, width) != tuple(self.img_size):
            raise ValueError(f"input of {height} x {width} does not match the model's {self.img_size[0]} x {self.img_size[1]}")
        x = self.proj(x)
        if self.flatten:
            x = x.flatten(2).transpose(1, 2)
        elif self.output_fmt != Format.NCHW:
            x = nchw_to(x, self.output_fmt)
        return self.norm(x)
