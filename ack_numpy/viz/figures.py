"""Pictures of the dynamic kernels. Each `plot_*` returns (Figure, arrays): the
matplotlib Figure and a dict of exactly the arrays it drew, all computed by `kernels.py`
from the model (so a test can compare them with `F.adaptive_kernels`).

    plot_kernel_field    the kernel applied at a grid of locations, drawn over its patch
    plot_q_filters       one output channel's Q filters (one per kernel element) and w
    plot_digit_kernels   the kernel at one location for one example of each digit
    plot_adaptation      per location, the distance to the channel's average kernel
    plot_feature_maps    the layer's outputs tanh(sigma), every channel

Figures are built with `matplotlib.figure.Figure` directly, not pyplot: no backend, no
window and no global list of open figures, so this runs headless and leaks nothing.
Colours: kernels use a diverging map centred on 0 (red > 0, blue < 0) with one scale per
figure; images are drawn dark-on-white. A layer with C > 1 input channels is shown as
the mean over channels, and the titles say so.
"""
from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..nn import AdaptiveConv2d, Module
from .kernels import (select_adaptive_layer, check_channel, distance_to_mean_kernel,
                      layer_input, layer_outputs, patch_origin, q_filters, sampled_locations,
                      static_kernel)

DPI = 100
KERNEL_CMAP = "RdBu_r"  # diverging: 0 is white
IMAGE_CMAP = "gray_r"   # ink is dark


# ----------------------------------------------------------------------------- helpers
def new_figure(width: float, height: float) -> Figure:
    """A figure of width x height inches at DPI: the PNG is round(width*DPI) x round(height*DPI) pixels."""
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def save(fig: Figure, path) -> None:
    fig.savefig(path, dpi=DPI)  # no bbox_inches="tight": the pixel size stays figsize * DPI


def limit(a: np.ndarray) -> float:
    """Symmetric colour limit: the largest |value| (never 0, so a blank array still draws)."""
    return float(np.abs(a).max()) or 1e-12


def channel_view(a: np.ndarray) -> np.ndarray:
    """(..., C, m, m) -> (..., m, m): channel 0 if C == 1, else the mean over the C channels."""
    return a.mean(axis=-3)


def channel_note(c: int, sep: str = "\n") -> str:
    """What a title adds when C > 1 input channels are averaged for display."""
    return "" if c == 1 else f"{sep}(mean over the {c} input channels)"


def show_image(ax, image: np.ndarray, title: str, **kwargs) -> None:
    ax.imshow(image, cmap=IMAGE_CMAP, interpolation="nearest", **kwargs)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("column")
    ax.set_ylabel("row")


def outline(ax, image: np.ndarray, color: str = "black") -> None:
    """The image's outline (contour half-way between its darkest and brightest value)."""
    lo, hi = float(image.min()), float(image.max())
    if hi > lo:
        ax.contour(image, levels=[(lo + hi) / 2], colors=color, linewidths=1.0)


def describe(layer: int, module: AdaptiveConv2d, channel: int | None = None) -> str:
    m = module.kernel_size
    text = f"adaptive layer {layer} ({m}x{m}, {module.in_channels} in, {module.out_channels} out)"
    return text if channel is None else f"{text}, output channel {channel}"


def input_frame(model: Module, image: np.ndarray, layer: int) -> np.ndarray:
    """image (1, H, W) -> the layer's input for it (C, H', W')."""
    return layer_input(model, np.asarray(image)[None], layer)[0]


# ----------------------------------------------------------------------------- 1. kernel field
def plot_kernel_field(model: Module, image: np.ndarray, layer: int = 0, channel: int = 0,
                      name: str = "the input") -> tuple[Figure, dict]:
    """The dynamic kernel at a grid of output locations, each drawn over the patch it is applied to.

    image: (1, H, W). Returns arrays: kernels (Ho, Wo, C, m, m), every location of this
    channel; rows, cols: the sampled output locations; tiles (rows, cols, m, m), as drawn."""
    module = select_adaptive_layer(model, layer)
    check_channel(module, channel)
    x = input_frame(model, image, layer)                           # (C, H, W)
    kernels = module.kernels(x[None])[0, channel]                  # (Ho, Wo, C, m, m)
    rows = sampled_locations(kernels.shape[0], module)
    cols = sampled_locations(kernels.shape[1], module)
    tiles = channel_view(kernels[np.ix_(rows, cols)])             # (rows, cols, m, m)
    background, m, c = x.mean(axis=0), module.kernel_size, module.in_channels

    fig = new_figure(9.5, 4.9)
    left, right = fig.subplots(1, 2)
    show_image(left, background, f"what the layer sees: {name}" + channel_note(c))
    step = int(rows[1] - rows[0]) if len(rows) > 1 else 1
    every = "every location" if step == 1 else f"every {step}th location (row and column)"
    show_image(right, background, f"kernel at {every},\n"
               "each drawn over the patch it is applied to" + channel_note(c, " "), alpha=0.3)
    lim = limit(tiles)
    for a, i in enumerate(rows):
        for b, j in enumerate(cols):
            r0, c0 = patch_origin(i, module), patch_origin(j, module)
            art = right.imshow(tiles[a, b], cmap=KERNEL_CMAP, vmin=-lim, vmax=lim, interpolation="nearest",
                               extent=(c0 - 0.5, c0 + m - 0.5, r0 + m - 0.5, r0 - 0.5))
    outline(right, background)
    right.set_xlim(-0.5, background.shape[1] - 0.5)
    right.set_ylim(background.shape[0] - 0.5, -0.5)
    fig.colorbar(art, ax=right, shrink=0.85, label="kernel value k(i, j) = Q p + w")
    fig.suptitle(f"Dynamic kernels of {describe(layer, module, channel)} for {name}", fontsize=11)
    return fig, {"kernels": kernels, "rows": rows, "cols": cols, "tiles": tiles}


# ----------------------------------------------------------------------------- 2. Q filter bank
def filter_mosaic(filters: np.ndarray) -> np.ndarray:
    """(m, m, m, m) filters[u, v] -> one (m*m + m - 1)^2 image, blocks separated by NaN (blank) lines."""
    m = filters.shape[0]
    size = m * m + m - 1
    mosaic = np.full((size, size), np.nan)
    for u in range(m):
        for v in range(m):
            mosaic[u * (m + 1) : u * (m + 1) + m, v * (m + 1) : v * (m + 1) + m] = filters[u, v]
    return mosaic


def plot_q_filters(model: Module, layer: int = 0, channel: int = 0) -> tuple[Figure, dict]:
    """Output channel o's m x m Q filters, block (u, v) being Q_o[e, :] for element e = (u, v),
    and the static kernel w_o beside them: k_o[u, v] = <filter (u, v), patch> + w_o[u, v].

    Returns arrays: filters (C, m, m, C, m, m) (see `kernels.q_filters`), w (C, m, m),
    shown (m, m, m, m): the blocks drawn (for C > 1: kernel channel 0, patch channel 0)."""
    module = select_adaptive_layer(model, layer)
    filters, w = q_filters(module, channel), static_kernel(module, channel)
    m, c = module.kernel_size, module.in_channels
    shown = filters[0, :, :, 0]                                    # (m, m, m, m)
    note = "" if c == 1 else f"\n(kernel channel 0, patch channel 0; C = {c})"

    fig = new_figure(9.5, 5.0)
    left, right = fig.subplots(1, 2, width_ratios=[1.6, 1])
    lim = limit(shown)
    art = left.imshow(filter_mosaic(shown), cmap=KERNEL_CMAP, vmin=-lim, vmax=lim, interpolation="nearest")
    centres = np.arange(m) * (m + 1) + (m - 1) / 2
    left.set_xticks(centres, [f"v={v}" for v in range(m)])
    left.set_yticks(centres, [f"u={u}" for u in range(m)])
    left.set_xlabel("kernel element column v")
    left.set_ylabel("kernel element row u")
    left.set_title(f"Q filters: block (u, v) is the {m}x{m} filter\nthat computes kernel element (u, v)" + note,
                   fontsize=10)
    fig.colorbar(art, ax=left, shrink=0.85, label="Q value")
    w_shown = w[0]
    lim_w = limit(w_shown)
    art = right.imshow(w_shown, cmap=KERNEL_CMAP, vmin=-lim_w, vmax=lim_w, interpolation="nearest")
    right.set_xticks(range(m))
    right.set_yticks(range(m))
    right.set_xlabel("column v")
    right.set_ylabel("row u")
    right.set_title("static kernel w\n(the kernel when Q = 0)" + ("" if c == 1 else ", channel 0"), fontsize=10)
    fig.colorbar(art, ax=right, shrink=0.6, label="w value (own scale)")
    fig.suptitle(f"Q filter bank of {describe(layer, module, channel)}:  k[u, v] = <Q filter (u, v), patch> + w[u, v]",
                 fontsize=11)
    return fig, {"filters": filters, "w": w, "shown": shown}


# ----------------------------------------------------------------------------- 3. same place, other inputs
def plot_digit_kernels(model: Module, images: np.ndarray, labels: np.ndarray, layer: int = 0,
                       channel: int = 0, location: tuple[int, int] | None = None) -> tuple[Figure, dict]:
    """The kernel one location applies, for each image given (typically one per digit 0-9),
    and its mean and spread (std over these inputs) per element.

    images: (K, 1, H, W), labels: (K,). location: output (row, col), default the centre.
    Returns arrays: kernels (K, C, m, m) at that location, mean and std (C, m, m), location."""
    module = select_adaptive_layer(model, layer)
    check_channel(module, channel)
    all_kernels = module.kernels(layer_input(model, images, layer))[:, channel]   # (K, Ho, Wo, C, m, m)
    out_h, out_w = all_kernels.shape[1:3]
    i, j = (out_h // 2, out_w // 2) if location is None else location
    if not (0 <= i < out_h and 0 <= j < out_w):
        raise ValueError(f"location ({i}, {j}) is outside the layer's {out_h}x{out_w} output locations")
    kernels = all_kernels[:, i, j]                                 # (K, C, m, m)
    mean, std = kernels.mean(axis=0), kernels.std(axis=0)
    m, c, k = module.kernel_size, module.in_channels, len(images)
    on_image = model.features[0] is module                         # patch coordinates are image pixels

    fig = new_figure(1.05 * k + 2.6, 4.6)
    grid = fig.add_gridspec(2, k + 1, width_ratios=[1] * k + [1.6])
    axes = np.array([[fig.add_subplot(grid[r, n]) for n in range(k)] for r in range(2)])
    lim = limit(channel_view(kernels))
    for n in range(k):
        axes[0, n].imshow(images[n, 0], cmap=IMAGE_CMAP, interpolation="nearest")
        axes[0, n].set_title(f"digit {labels[n]}", fontsize=10)
        if on_image:
            r0, c0 = patch_origin(i, module), patch_origin(j, module)
            axes[0, n].add_patch(Rectangle((c0 - 0.5, r0 - 0.5), m, m, fill=False, edgecolor="tab:orange", lw=1.5))
        art = axes[1, n].imshow(channel_view(kernels[n]), cmap=KERNEL_CMAP, vmin=-lim, vmax=lim,
                                interpolation="nearest")
        for ax in axes[:, n]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("input", fontsize=10)
    axes[1, 0].set_ylabel(f"kernel at ({i}, {j})", fontsize=10)
    fig.colorbar(art, ax=axes[1, :], location="bottom", shrink=0.4, aspect=40, label="kernel value")

    mean_ax, std_ax = fig.add_subplot(grid[0, k]), fig.add_subplot(grid[1, k])
    mean_ax.imshow(channel_view(mean), cmap=KERNEL_CMAP, vmin=-lim, vmax=lim, interpolation="nearest")
    mean_ax.set_title(f"mean over the {k}\n(same colours)", fontsize=10)
    art = std_ax.imshow(channel_view(std), cmap="viridis", vmin=0, interpolation="nearest")
    std_ax.set_title(f"std over the {k}:\nhow much each\nelement adapts", fontsize=10)
    fig.colorbar(art, ax=std_ax, shrink=0.9)
    for ax in (mean_ax, std_ax):
        ax.set_xticks([])
        ax.set_yticks([])
    box = "; orange box: the patch" if on_image else ""
    fig.suptitle(f"Same place, different inputs: {describe(layer, module, channel)}, "
                 f"location ({i}, {j}){channel_note(c, ' ')}{box}", fontsize=11)
    return fig, {"kernels": kernels, "mean": mean, "std": std, "location": (i, j)}


# ----------------------------------------------------------------------------- 4. how much it adapts
def plot_adaptation(model: Module, image: np.ndarray, layer: int = 0, channel: int = 0,
                    name: str = "the input") -> tuple[Figure, dict]:
    """Heat map over locations of || k(i, j) - mean kernel ||_2, the mean taken over all
    locations for this input; drawn in the input's coordinates with its outline on top.

    Returns arrays: kernels (Ho, Wo, C, m, m), mean_kernel (C, m, m), distance (Ho, Wo)."""
    module = select_adaptive_layer(model, layer)
    check_channel(module, channel)
    x = input_frame(model, image, layer)
    kernels = module.kernels(x[None])[0, channel]                  # (Ho, Wo, C, m, m)
    mean, distance = distance_to_mean_kernel(kernels)
    background, m, s, c = x.mean(axis=0), module.kernel_size, module.stride, module.in_channels
    out_h, out_w = distance.shape
    # output (i, j) is centred on input pixel patch_origin + (m-1)/2; each cell is s pixels wide
    edge = patch_origin(0, module) + (m - 1) / 2 - s / 2      # where the first cell starts

    fig = new_figure(10.5, 4.3)
    ax_img, ax_map, ax_mean = fig.subplots(1, 3, width_ratios=[1, 1.25, 0.8])
    show_image(ax_img, background, f"what the layer sees: {name}" + channel_note(c))
    art = ax_map.imshow(distance, cmap="magma", vmin=0, interpolation="nearest",
                        extent=(edge, edge + out_w * s, edge + out_h * s, edge))
    outline(ax_map, background, color="cyan")
    ax_map.set_xlim(-0.5, background.shape[1] - 0.5)
    ax_map.set_ylim(background.shape[0] - 0.5, -0.5)
    ax_map.set_xlabel("column")
    ax_map.set_ylabel("row")
    ax_map.set_title("distance ||k(i, j) - mean kernel||\u2082\n(cyan: outline of the input)", fontsize=10)
    fig.colorbar(art, ax=ax_map, shrink=0.85, label="L2 distance")
    lim = limit(channel_view(mean))
    art = ax_mean.imshow(channel_view(mean), cmap=KERNEL_CMAP, vmin=-lim, vmax=lim, interpolation="nearest")
    ax_mean.set_xticks(range(m))
    ax_mean.set_yticks(range(m))
    ax_mean.set_title(f"mean kernel over the\n{out_h}x{out_w} locations", fontsize=10)
    fig.colorbar(art, ax=ax_mean, shrink=0.6)
    fig.suptitle(f"How much the kernel adapts: {describe(layer, module, channel)}, {name}", fontsize=11)
    return fig, {"kernels": kernels, "mean_kernel": mean, "distance": distance}


# ----------------------------------------------------------------------------- 5. feature maps
def plot_feature_maps(model: Module, image: np.ndarray, layer: int = 0,
                      name: str = "the input") -> tuple[Figure, dict]:
    """Every output channel y_o = tanh(sigma_o) of the layer for one image (before pooling);
    sigma_o itself for a layer built with activation="none".

    Returns arrays: outputs (O, Ho, Wo), as computed by calling the layer."""
    module = select_adaptive_layer(model, layer)
    outputs = layer_outputs(model, np.asarray(image)[None], layer)[0]   # (O, Ho, Wo)
    what = "tanh(sigma)" if module.activation == "tanh" else "sigma"
    limit = 1.0 if module.activation == "tanh" else max(float(np.abs(outputs).max()), 1e-12)
    o = len(outputs)
    rows = max(1, round(math.sqrt(o / 2)))
    cols = math.ceil(o / rows)

    fig = new_figure(2.6 + 1.7 * cols, 0.9 + 1.75 * rows)
    left, right = fig.subfigures(1, 2, width_ratios=[2.6, 1.7 * cols])
    show_image(left.subplots(), np.asarray(image)[0], name)
    axes = np.atleast_2d(right.subplots(rows, cols))
    for n, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if n >= o:
            ax.set_axis_off()
            continue
        art = ax.imshow(outputs[n], cmap=KERNEL_CMAP, vmin=-limit, vmax=limit, interpolation="nearest")
        ax.set_title(f"channel {n}", fontsize=9)
    right.colorbar(art, ax=axes, shrink=0.8, label=what)
    fig.suptitle(f"Feature maps of {describe(layer, module)} for {name}: y = {what}, before pooling",
                 fontsize=11)
    return fig, {"outputs": outputs}
