"""Pixel-CR: stage 1 of IDF-CR (coarse cloud removal in pixel space).

The network follows the paper (Section III-A) and the decisions in
shared/docs/METHOD.md:

    shallow conv3x3 (C_in -> dim)
    N submodules, each:  H = conv3x3(SwinBlocks(F)) + F          (H_ST)
                         A = CloudyAttention(H)                   (sigmoid map)
                         F = relu(H * A + H)      (submodules 1..N-1)
                         F = conv3x3(H) * A + H   (submodule N)
    reconstruction: conv3x3 + LeakyReLU, conv3x3 (dim -> C_in), linear output

Window attention is computed on windows anchored at the input's top-left
corner, so H and W must be multiples of the window. The Rust runtime puts
tile origins on a global grid that is a multiple of the window, which makes a
tiled result equal to the whole-image result away from the tile margins.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from idfcr_train.checkpoint import load_state
from idfcr_train.models.context import ContextBranch


@dataclass
class PixelCRConfig:
    """All architecture knobs. `paper()` is the published size; `cpu()` is
    the lighter one we can train on two CPU cores."""

    in_bands: int = 3
    dim: int = 96
    submodules: int = 3
    blocks_per_submodule: int = 1
    heads: int = 6
    window: int = 16
    mlp_ratio: float = 4.0
    shifted_windows: bool = False
    cloudy_attention: bool = True
    # One attention module for all submodules (as the official code) or one each.
    shared_attention: bool = False
    # False: "side head". One attention module reads the last submodule's
    # features and is trained as a cloud detector (its map is the blend's p),
    # but nothing is multiplied by it: the restoration path is the plain
    # residual body, which won the equal-budget ablation (model card,
    # "Ablation: cloudy attention"), and the detector comes free.
    attention_gates: bool = True
    # Output = input + reconstruction. Not in the paper or the official code:
    # clear pixels then pass through from the first step and the network
    # only learns the correction under clouds (see the model card).
    global_residual: bool = True
    # Per-band standardisation inside the network: x_n = (x - mean) / std,
    # output = output_n * std + mean. For bands of very different ranges
    # (Sentinel-2's cirrus band is 100x darker than the visible), so that the
    # network's corrections scale with each band. None: no standardisation.
    band_mean: list[float] | None = None
    band_std: list[float] | None = None
    # A coarse context branch (models/context.py) after the last submodule:
    # its channels (0: none), the factor it averages down by and its
    # dilations. Its convolutions reach far beyond the windows.
    context_ch: int = 0
    context_factor: int = 4
    context_dilations: tuple[int, ...] = (1, 2, 4, 8)

    @staticmethod
    def paper(in_bands: int = 3) -> "PixelCRConfig":
        return PixelCRConfig(in_bands=in_bands)

    @staticmethod
    def cpu(in_bands: int = 3) -> "PixelCRConfig":
        return PixelCRConfig(in_bands=in_bands, dim=48, heads=3)

    @staticmethod
    def tiny(in_bands: int = 3) -> "PixelCRConfig":
        return PixelCRConfig(in_bands=in_bands, dim=16, heads=2, window=8, submodules=2)

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "PixelCRConfig":
        # Checkpoints from before the option existed had no global residual.
        return PixelCRConfig(**{"global_residual": False, **d})


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * nW, window*window, C)."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, c)


def window_reverse(win: torch.Tensor, window: int, b: int, h: int, w: int) -> torch.Tensor:
    """Inverse of window_partition."""
    c = win.shape[-1]
    x = win.view(b, h // window, w // window, window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside non-overlapping windows, with the Swin
    relative position bias."""

    def __init__(self, dim: int, heads: int, window: int):
        super().__init__()
        assert dim % heads == 0, f"dim {dim} must be divisible by heads {heads}"
        self.heads = heads
        self.window = window
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.rel_bias = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.rel_bias, std=0.02)
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij"))
        coords = coords.flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
        index = rel[..., 0] * (2 * window - 1) + rel[..., 1]
        self.register_buffer("rel_index", index.flatten(), persistent=False)

    # Export sets this: attention is computed one head at a time, with that
    # head's q, k and v projected straight from x, so one head's
    # (windows, n, n) scores are alive instead of all heads' at once, and
    # the full qkv tensor and its permuted copy never exist (a 512 px tile
    # has 1024 windows of 256 pixels: 268 MB of scores per head and per
    # intermediate). The same arithmetic, head by head.
    per_head: bool = False

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        bw, n, c = x.shape
        d = c // self.heads
        bias = self.rel_bias[self.rel_index].view(n, n, self.heads).permute(2, 0, 1)
        if self.per_head:
            w, b = self.qkv.weight, self.qkv.bias
            outs = []
            for h in range(self.heads):
                proj = [F.linear(x, w[j * c + h * d: j * c + (h + 1) * d], b[j * c + h * d: j * c + (h + 1) * d])
                        for j in range(3)]
                a = (proj[0] * self.scale) @ proj[1].transpose(-2, -1)
                if mask is None:
                    a = a + bias[h].unsqueeze(0)
                else:
                    # Bias and shift mask summed first (nw, n, n): one add
                    # over the big scores, not two.
                    nw = mask.shape[0]
                    a = (a.view(bw // nw, nw, n, n) + (mask + bias[h].unsqueeze(0)).unsqueeze(0)).view(bw, n, n)
                outs.append(a.softmax(dim=-1) @ proj[2])
            return self.proj(torch.cat(outs, -1))
        qkv = self.qkv(x).reshape(bw, n, 3, self.heads, d).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q * self.scale) @ k.transpose(-2, -1)
        attn = attn + bias.unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(bw // nw, nw, self.heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(bw, self.heads, n, n)
        attn = attn.softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(bw, n, c)
        return self.proj(out)


class SwinBlock(nn.Module):
    """LayerNorm -> (shifted) window attention -> residual -> LayerNorm -> MLP -> residual."""

    def __init__(self, dim: int, heads: int, window: int, mlp_ratio: float, shift: int):
        super().__init__()
        self.window = window
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, heads, window)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def _shift_mask(self, h, w, device) -> torch.Tensor:
        # Label the three bands of rows (and of columns) that a cyclic shift
        # brings together, so attention never mixes pixels that were not
        # neighbours before the roll. Built from aranges (not slicing
        # assignments) so that an ONNX export keeps H and W dynamic.
        ws, s = self.window, self.shift
        rows = torch.arange(h, device=device)
        cols = torch.arange(w, device=device)
        label_r = (rows >= h - ws).long() + (rows >= h - s).long()
        label_c = (cols >= w - ws).long() + (cols >= w - s).long()
        img = (label_r[:, None] * 3 + label_c[None, :]).to(torch.float32)[None, :, :, None]
        win = window_partition(img, ws).squeeze(-1)
        diff = win.unsqueeze(1) - win.unsqueeze(2)
        return torch.where(diff != 0, torch.full_like(diff, -100.0), torch.zeros_like(diff))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C, H, W)
        b, c, h, w = x.shape
        t = x.permute(0, 2, 3, 1)
        shortcut = t
        t = self.norm1(t)
        mask = None
        if self.shift:
            t = torch.roll(t, shifts=(-self.shift, -self.shift), dims=(1, 2))
            mask = self._shift_mask(h, w, x.device)
        win = window_partition(t, self.window)
        win = self.attn(win, mask)
        t = window_reverse(win, self.window, b, h, w)
        if self.shift:
            t = torch.roll(t, shifts=(self.shift, self.shift), dims=(1, 2))
        t = shortcut + t
        t = t + self.mlp(self.norm2(t))
        return t.permute(0, 3, 1, 2)


class CloudyAttention(nn.Module):
    """Convolutional spatial attention: where are the clouds in these features?

    In the spirit of SpA-GAN's spatial attention module (1x1 convs around
    directional context), but with plain 3x3 convs for the context so the
    receptive field stays small and local (tiling stays exact).
    Output: (B, 1, H, W) in [0, 1].
    """

    def __init__(self, dim: int):
        super().__init__()
        mid = max(dim // 2, 4)
        self.body = nn.Sequential(
            nn.Conv2d(dim, mid, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.body(x))


class Submodule(nn.Module):
    """H_ST: Swin block(s) + conv3x3 + residual."""

    def __init__(self, cfg: PixelCRConfig):
        super().__init__()
        blocks = []
        for j in range(cfg.blocks_per_submodule):
            shift = cfg.window // 2 if (cfg.shifted_windows and j % 2 == 1) else 0
            blocks.append(SwinBlock(cfg.dim, cfg.heads, cfg.window, cfg.mlp_ratio, shift))
        self.blocks = nn.Sequential(*blocks)
        self.conv = nn.Conv2d(cfg.dim, cfg.dim, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.blocks(x)) + x


class PixelCR(nn.Module):
    """Returns (clear, attention): clear has the input's shape, attention is
    (B, 1, H, W). With cloudy attention switched off (ablation), attention is
    all zeros and the combination degenerates to the plain residual body."""

    def __init__(self, cfg: PixelCRConfig):
        super().__init__()
        self.cfg = cfg
        self.shallow = nn.Conv2d(cfg.in_bands, cfg.dim, 3, padding=1)
        subs = []
        for i in range(cfg.submodules):
            sub = Submodule(cfg)
            # With one block per submodule, shifting alternates between submodules.
            if cfg.shifted_windows and cfg.blocks_per_submodule == 1 and i % 2 == 1:
                sub.blocks[0].shift = cfg.window // 2
            subs.append(sub)
        self.subs = nn.ModuleList(subs)
        self.tail_conv = nn.Conv2d(cfg.dim, cfg.dim, 3, padding=1)
        if not cfg.cloudy_attention:
            n_att = 0
        elif cfg.shared_attention or not cfg.attention_gates:
            n_att = 1
        else:
            n_att = cfg.submodules
        self.attn = nn.ModuleList([CloudyAttention(cfg.dim) for _ in range(n_att)])
        if cfg.context_ch > 0:
            # Tiles start on the window grid: the branch's pooling grid must
            # divide it, or a tile would pool other blocks than the whole image.
            assert cfg.window % cfg.context_factor == 0, (
                f"the context branch's factor {cfg.context_factor} must divide the window {cfg.window}")
            self.context = ContextBranch(dim=cfg.dim, ch=cfg.context_ch, factor=cfg.context_factor,
                                         dilations=list(cfg.context_dilations))
        else:
            self.context = None
        self.recon = nn.Sequential(
            nn.Conv2d(cfg.dim, cfg.dim, 3, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(cfg.dim, cfg.in_bands, 3, padding=1),
        )
        # Not in the state dict: the config carries them.
        mean = torch.tensor(cfg.band_mean or [0.0] * cfg.in_bands, dtype=torch.float32)
        std = torch.tensor(cfg.band_std or [1.0] * cfg.in_bands, dtype=torch.float32)
        assert mean.numel() == cfg.in_bands and std.numel() == cfg.in_bands and bool((std > 0).all())
        self.register_buffer("band_mean", mean.view(1, -1, 1, 1), persistent=False)
        self.register_buffer("band_std", std.view(1, -1, 1, 1), persistent=False)

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Clear image and every submodule's attention map (for the loss)."""
        w = self.cfg.window
        assert x.shape[-2] % w == 0 and x.shape[-1] % w == 0, (
            f"height and width must be multiples of the window ({w}); got {tuple(x.shape[-2:])}: pad the input"
        )
        standardise = self.cfg.band_mean is not None or self.cfg.band_std is not None
        if standardise:
            x = (x - self.band_mean) / self.band_std
        f = self.shallow(x)
        maps = []
        last = len(self.subs) - 1
        for i, sub in enumerate(self.subs):
            h = sub(f)
            if self.attn and not self.cfg.attention_gates:
                if i == last:
                    maps.append(self.attn[0](h))
                f = self.tail_conv(h) + h if i == last else F.relu(h)
            elif self.attn:
                a = self.attn[0 if self.cfg.shared_attention else i](h)
                maps.append(a)
                f = self.tail_conv(h) * a + h if i == last else F.relu(h * a + h)
            else:
                f = self.tail_conv(h) + h if i == last else F.relu(h)
        if self.context is not None:
            f = f + self.context(f)
        out = self.recon(f)
        out = out + x if self.cfg.global_residual else out
        if standardise:
            out = out * self.band_std + self.band_mean
        return out, maps

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        clear, maps = self.forward_all(x)
        att = maps[-1] if maps else torch.zeros_like(clear[:, :1])
        return clear, att


def attention_target(cloudy: torch.Tensor, clear: torch.Tensor, threshold: float) -> torch.Tensor:
    """M of the paper: 1 where the per-pixel mean absolute difference between
    the label and the cloudy input (in model units, 0..1 for 8-bit RGB)
    exceeds `threshold`, else 0. Shape (B, 1, H, W)."""
    return ((clear - cloudy).abs().mean(dim=1, keepdim=True) > threshold).float()


def pixel_cr_loss(
    pred: torch.Tensor,
    maps: list[torch.Tensor],
    cloudy: torch.Tensor,
    clear: torch.Tensor,
    *,
    l1_weight: float = 100.0,
    attn_weight: float = 1.0,
    threshold: float = 0.08,
    band_balanced: bool = False,
    band_weight: torch.Tensor | None = None,
    attn_target: torch.Tensor | None = None,
    pixel_weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict]:
    """100 * L1(pred, clear) + MSE(attention, M), averaged over every
    submodule's attention map. Returns the loss and its parts.

    `band_balanced`: the L1 term is the geometric mean over bands of the
    per-band L1 instead of the plain mean. Bands whose values (and errors)
    are small, such as Sentinel-2's cirrus band, then weigh as much as the
    others in relative terms, which is what per-band PSNR measures.
    `band_weight` (B, C): per-sample band weights for the L1 term (0 where
    a label band is unusable); None: all ones.
    `attn_target` (B, 1, H, W): the attention target where known (synthetic
    opacity, 0 for identity samples); NaN where M applies.
    `pixel_weight` (B, 1, H, W): per-pixel weights of the L1 term (each
    sample's L1 is then its weighted mean, see `thick_cloud_weight`)."""
    diff = (pred - clear).abs()
    if pixel_weight is None:
        err = diff.mean(dim=(2, 3))  # (B, C)
    else:
        pw = pixel_weight.to(diff)
        err = (diff * pw).sum(dim=(2, 3)) / pw.sum(dim=(2, 3)).clamp(min=1e-8)
    w = torch.ones_like(err) if band_weight is None else band_weight.to(err)
    per_band = (err * w).sum(dim=0) / w.sum(dim=0).clamp(min=1e-8)  # (C,)
    used = w.sum(dim=0) > 0
    if band_balanced:
        l1 = torch.exp(torch.log(per_band[used] + 1e-5).mean())
    else:
        l1 = per_band[used].mean()
    if maps:
        m = attention_target(cloudy, clear, threshold)
        if attn_target is not None:
            t = attn_target.to(m)
            m = torch.where(torch.isnan(t), m, t)
        la = sum(F.mse_loss(a, m) for a in maps) / len(maps)
    else:
        la = torch.zeros((), device=pred.device)
    total = l1_weight * l1 + attn_weight * la
    return total, {"l1": float(l1.detach()), "attn": float(la.detach()), "total": float(total.detach())}


def thick_cloud_weight(cloudy: torch.Tensor, clear: torch.Tensor, weight: float,
                       threshold: float = 0.15) -> torch.Tensor:
    """Per-pixel L1 weights (B, 1, H, W): 1 + `weight` where the mean over
    bands of |cloudy - clear| is above `threshold` (thick cloud, in model
    units), 1 elsewhere. The default output shows the network only where
    its calibrated cloud probability is up, mostly thick cloud and its
    margins; elsewhere the input comes back. Weighting those pixels puts the
    training's effort where the output shows it. Identity samples
    (clear in, clear out) have no such pixel and keep plain L1."""
    thick = ((cloudy - clear).abs().mean(dim=1, keepdim=True) > threshold).to(cloudy.dtype)
    return 1.0 + weight * thick


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def load_checkpoint(path: str, *, ema: bool = True) -> tuple[PixelCR, dict]:
    """The one Pixel-CR checkpoint loader: (model in eval mode, raw state).

    A checkpoint trained with `--ema` holds both the raw weights ("model",
    what training resumes from) and their exponential moving average ("ema",
    what ships: smoother and better on validation). `ema=False` picks the raw
    weights, for comparisons."""
    state = load_state(path)
    model = PixelCR(PixelCRConfig.from_dict(state["config"]))
    model.load_state_dict(state["ema"] if ema and state.get("ema") else state["model"])
    model.eval()
    return model, state
