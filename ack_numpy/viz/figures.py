"""Pictures of the dynamic kernels. Each `plot_*` takes a `LayerView` (kernels.py: the
layer, its input, its kernels and outputs for a batch of images, computed once by
`layer_view(model, images, layer, channel)`) and returns (Figure, arrays): the matplotlib
Figure and a dict of exactly the arrays it drew (so a test can compare them with
`F.adaptive_kernels`).

    view = layer_view(model, images, layer=0, channel=3)
    fig, drawn = plot_kernel_field(view, which=0)    # images[0]

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
from pathlib import Path

import numpy as np
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..files import atomic_write
from .kernels import (LayerView, check_location, distance_to_mean_kernel, patch_origin, patches_at, q_filters,
                      sampled_locations)

DPI = 100
KERNEL_CMAP = "RdBu_r"  # diverging: 0 is white
IMAGE_CMAP = "gray_r"   # ink is dark


# ----------------------------------------------------------------------------- helpers
def new_figure(width: float, height: float) -> Figure:
    """A figure of width x height inches at DPI: the PNG is round(width*DPI) x round(height*DPI) pixels."""
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def save(fig: Figure, path, dpi: float = DPI, description: str | None = None) -> None:
    """Write the figure in the format its file name says (files.atomic_write: never half a PNG).
    description: written into a PNG as its Description text (what the figure was drawn from)."""
    kind = Path(path).suffix.lstrip(".") or None
    metadata = {"Description": description} if description and (kind or "").lower() == "png" else None
    with atomic_write(path) as f:  # no bbox_inches="tight": the pixel size stays figsize * dpi
        fig.savefig(f, format=kind, dpi=dpi, metadata=metadata)


def limit(a: np.ndarray) -> float:
    """Symmetric colour limit: the largest |value| (never 0, so a blank array still draws)."""
    return float(np.abs(a).max()) or 1e-12


def centred(*arrays: np.ndarray) -> Normalize:
    """One diverging colour scale -lim..lim, 0 in the middle (white), shared by every image
    drawn with it; its colour bar then speaks for all of them."""
    lim = max(limit(a) for a in arrays)
    return Normalize(-lim, lim)


def cell_label(v: float, norm: Normalize, fmt: str = "{:.2f}", dark_above: bool = False) -> tuple[str, str]:
    """The text and colour a cell of value v is labelled with: white on strong colours, black on
    pale ones, and never "-0.00" (a value that rounds to zero gets no sign).
    dark_above: the map is dark for large values (gray_r) rather than for large |values|."""
    strong = norm(v) > 0.6 if dark_above else abs(norm(v) - 0.5) > 0.3
    text = fmt.format(v)
    text = text[1:] if text.startswith("-") and float(text) == 0 else text
    return text, "white" if strong else "black"


def write_values(ax, a: np.ndarray, norm: Normalize, fmt: str = "{:.2f}", dark_above: bool = False) -> None:
    """Write each cell's value in it, as `cell_label` says."""
    for (r, c), v in np.ndenumerate(a):
        text, color = cell_label(v, norm, fmt, dark_above)
        ax.text(c, r, text, ha="center", va="center", fontsize=6.5, color=color)


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


def describe(view: LayerView, channel: bool = True) -> str:
    m, module = view.module.kernel_size, view.module
    text = f"adaptive layer {view.layer} ({m}x{m}, {module.in_channels} in, {module.out_channels} out)"
    return f"{text}, output channel {view.channel}" if channel else text


# ----------------------------------------------------------------------------- 1. kernel field
def plot_kernel_field(view: LayerView, which: int = 0, name: str = "the input",
                      location: tuple[int, int] | None = None) -> tuple[Figure, dict]:
    """The dynamic kernel at a grid of output locations, each drawn over the patch it is applied to.

    which: the image of the view. location: output (row, col) the grid passes through and
    outlines (default the centre, the location `plot_digit_kernels` uses by default).
    Returns arrays: kernels (Ho, Wo, C, m, m), every location of this channel; rows, cols:
    the sampled output locations; tiles (rows, cols, m, m), as drawn; location."""
    module, x, kernels = view.module, view.x[which], view.kernels[which]   # (C, H, W), (Ho, Wo, C, m, m)
    out_h, out_w = kernels.shape[:2]
    i, j = check_location((out_h // 2, out_w // 2) if location is None else location, out_h, out_w)
    rows = sampled_locations(out_h, module, through=i)
    cols = sampled_locations(out_w, module, through=j)
    tiles = channel_view(kernels[np.ix_(rows, cols)])             # (rows, cols, m, m)
    background, m, c = x.mean(axis=0), module.kernel_size, module.in_channels

    fig = new_figure(9.5, 4.9)
    left, right = fig.subplots(1, 2)
    # Two lines, as the right panel's title: matplotlib 3.6-3.9 lay the suptitle over the
    # taller of two titles of unequal height.
    show_image(left, background, f"what the layer sees:\n{name}" + channel_note(c))
    step = int(rows[1] - rows[0]) if len(rows) > 1 else 1
    every = "every location" if step == 1 else f"every {step}th location (row and column)"
    show_image(right, background, f"kernel at {every},\n"
               "each drawn over the patch it is applied to" + channel_note(c, " "), alpha=0.3)
    norm = centred(tiles)
    for a, r in enumerate(rows):
        for b, q in enumerate(cols):
            r0, c0 = patch_origin(r, module), patch_origin(q, module)
            art = right.imshow(tiles[a, b], cmap=KERNEL_CMAP, norm=norm, interpolation="nearest",
                               extent=(c0 - 0.5, c0 + m - 0.5, r0 + m - 0.5, r0 - 0.5))
    outline(right, background)
    r0, c0 = patch_origin(i, module), patch_origin(j, module)
    for ax in (left, right):
        ax.add_patch(Rectangle((c0 - 0.5, r0 - 0.5), m, m, fill=False, edgecolor="tab:green", lw=2))
    right.set_xlim(-0.5, background.shape[1] - 0.5)
    right.set_ylim(background.shape[0] - 0.5, -0.5)
    fig.colorbar(art, ax=right, shrink=0.85, label="kernel value k(i, j) = Q p + w")
    fig.suptitle(f"Dynamic kernels of {describe(view)} for {name}", fontsize=11)
    fig.supxlabel(f"green box: the patch of location ({i}, {j}) (the grid passes through it);  "
                  "black line: outline of the input;\ngrey between the tiles is the input itself, "
                  "drawn faded, showing through the one-pixel gaps", fontsize=9)
    return fig, {"kernels": kernels, "rows": rows, "cols": cols, "tiles": tiles, "location": (i, j)}


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


def plot_q_filters(view: LayerView) -> tuple[Figure, dict]:
    """Output channel o's m x m Q filters, block (u, v) being Q_o[e, :] for element e = (u, v),
    and the static kernel w_o beside them: k_o[u, v] = <filter (u, v), patch> + w_o[u, v].

    Returns arrays: filters (C, m, m, C, m, m) (see `kernels.q_filters`), w (C, m, m),
    shown (m, m, m, m): the blocks drawn (for C > 1: kernel channel 0, patch channel 0)."""
    module = view.module
    filters, w = q_filters(module, view.channel), view.w
    m, c = module.kernel_size, module.in_channels
    shown = filters[0, :, :, 0]                                    # (m, m, m, m)
    note = "" if c == 1 else f"\n(kernel channel 0, patch channel 0; C = {c})"

    fig = new_figure(9.5, 5.0)
    left, right = fig.subplots(1, 2, width_ratios=[1.6, 1])
    art = left.imshow(filter_mosaic(shown), cmap=KERNEL_CMAP, norm=centred(shown), interpolation="nearest")
    centres = np.arange(m) * (m + 1) + (m - 1) / 2
    left.set_xticks(centres, [f"v={v}" for v in range(m)])
    left.set_yticks(centres, [f"u={u}" for u in range(m)])
    left.set_xlabel("kernel element column v")
    left.set_ylabel("kernel element row u")
    # inside each block: which patch pixel each filter weight multiplies
    pixels = (np.arange(m)[:, None] * (m + 1) + np.arange(m)[None, :]).ravel()
    inner = [str(t) for t in range(m)] * m
    top, side = left.secondary_xaxis("top"), left.secondary_yaxis("right")
    top.set_xticks(pixels, inner, fontsize=6)
    side.set_yticks(pixels, inner, fontsize=6)
    top.set_xlabel("patch column (inside each block)", fontsize=8)
    side.set_ylabel("patch row (inside each block)", fontsize=8)
    left.set_title(f"Q filters: block (u, v) is the {m}x{m} filter\nthat computes kernel element (u, v)" + note,
                   fontsize=10)
    fig.colorbar(art, ax=left, shrink=0.85, label="Q value")
    w_shown = w[0]
    norm_w = centred(w_shown)
    art = right.imshow(w_shown, cmap=KERNEL_CMAP, norm=norm_w, interpolation="nearest")
    if m <= 4:
        write_values(right, w_shown, norm_w)
    right.set_xticks(range(m))
    right.set_yticks(range(m))
    right.set_xlabel("column v")
    right.set_ylabel("row u")
    right.set_title("static kernel w\n(the kernel when Q = 0)" + ("" if c == 1 else ", channel 0"), fontsize=10)
    fig.colorbar(art, ax=right, shrink=0.6, label="w value (own scale)")
    fig.suptitle(f"Q filter bank of {describe(view)}:  k[u, v] = <Q filter (u, v), patch> + w[u, v]",
                 fontsize=11)
    return fig, {"filters": filters, "w": w, "shown": shown}


# ----------------------------------------------------------------------------- 3. same place, other inputs
def plot_digit_kernels(view: LayerView, labels: np.ndarray, location: tuple[int, int] | None = None,
                       names: list[str] | None = None, chosen: int | None = None) -> tuple[Figure, dict]:
    """The kernel one location applies, for each image given (typically the chosen test
    image and one example of every other digit), taken apart as k = w + Q p:

        row 1  the image, a green box where the patch is
        row 2  the patch p itself, values in the cells (blank patch: Q p = 0, so k = w exactly)
        row 3  Q p = k - w, the part that adapts to the input
        row 4  k = w + Q p, the kernel applied
        right  w (the same for every input), and the mean and std of k over these inputs

    view: of K images (typically ten), labels: (K,). location: output (row, col), default the centre.
    names: column titles (default "digit d"); chosen: which column to mark as the chosen image.
    Values are written in the cells for kernels up to 4x4. Returns arrays: kernels (K, C, m, m)
    at that location, patches (K, C, m, m), w (C, m, m), qp = kernels - w (K, C, m, m),
    blank (K,) bool, mean and std (C, m, m), location."""
    module, x, all_kernels = view.module, view.x, view.kernels     # (K, C, H', W'), (K, Ho, Wo, C, m, m)
    out_h, out_w = all_kernels.shape[1:3]
    i, j = check_location((out_h // 2, out_w // 2) if location is None else location, out_h, out_w)
    kernels = all_kernels[:, i, j]                                 # (K, C, m, m)
    patches = patches_at(x, module, i, j)                          # (K, C, m, m)
    w, qp = view.w, view.qp[:, i, j]                               # (C, m, m), Q p = k - w (K, C, m, m)
    blank = ~np.any(patches != 0, axis=(1, 2, 3))
    mean, std = kernels.mean(axis=0), kernels.std(axis=0)
    m, c, k = module.kernel_size, module.in_channels, len(x)
    names = [f"digit {d}" for d in labels] if names is None else names
    on_image = view.on_image                                       # patch coordinates are image pixels
    values = m <= 4

    fig = new_figure(1.05 * k + 1.9, 6.9)
    grid = fig.add_gridspec(4, k + 1, width_ratios=[1] * k + [1.25])
    axes = np.array([[fig.add_subplot(grid[r, n]) for n in range(k)] for r in range(4)])
    norm = centred(channel_view(kernels), channel_view(qp), channel_view(w))
    shown_patches = channel_view(patches)
    lo = min(0.0, float(shown_patches.min()))
    patch_norm = Normalize(lo, max(float(shown_patches.max()), lo + 1e-12))
    r0, c0 = patch_origin(i, module), patch_origin(j, module)
    for n in range(k):
        axes[0, n].imshow(channel_view(x[n]), cmap=IMAGE_CMAP, interpolation="nearest")
        axes[0, n].add_patch(Rectangle((c0 - 0.5, r0 - 0.5), m, m, fill=False, edgecolor="tab:green", lw=1.5))
        title = names[n] + ("\n(chosen)" if n == chosen else "")
        axes[0, n].set_title(title, fontsize=9, fontweight="bold" if n == chosen else "normal")
        patch_art = axes[1, n].imshow(shown_patches[n], cmap=IMAGE_CMAP, norm=patch_norm, interpolation="nearest")
        axes[1, n].set_title("blank: k = w" if blank[n] else "touches ink" if on_image else "non-zero",
                             fontsize=8, color="tab:red" if blank[n] else "black")
        for row, a in ((2, qp[n]), (3, kernels[n])):
            art = axes[row, n].imshow(channel_view(a), cmap=KERNEL_CMAP, norm=norm, interpolation="nearest")
            if values:
                write_values(axes[row, n], channel_view(a), norm)
        if values:
            write_values(axes[1, n], shown_patches[n], patch_norm, dark_above=True)
        for ax in axes[:, n]:
            ax.set_xticks([])
            ax.set_yticks([])
        if n == chosen:
            for spine in axes[0, n].spines.values():
                spine.set_edgecolor("tab:green")
                spine.set_linewidth(3)
    axes[0, 0].set_ylabel("input", fontsize=9)
    axes[1, 0].set_ylabel("patch p", fontsize=9)
    axes[2, 0].set_ylabel("Q p = k - w", fontsize=9)
    axes[3, 0].set_ylabel(f"k at ({i}, {j})", fontsize=9)
    fig.colorbar(art, ax=axes[2:, :], location="bottom", shrink=0.4, aspect=40,
                 label="kernel value (one scale for w, Q p and k, centred on 0)")

    w_ax, mean_ax, std_ax = (fig.add_subplot(grid[r, k]) for r in (1, 2, 3))
    corner = fig.add_subplot(grid[0, k])                           # the patch colour bar sits here
    corner.set_axis_off()
    fig.colorbar(patch_art, cax=corner.inset_axes([0.05, 0.45, 0.9, 0.14]), orientation="horizontal",
                 label="patch value")
    w_ax.imshow(channel_view(w), cmap=KERNEL_CMAP, norm=norm, interpolation="nearest")
    w_ax.set_title("w: the same\nfor every input", fontsize=9)
    mean_ax.imshow(channel_view(mean), cmap=KERNEL_CMAP, norm=norm, interpolation="nearest")
    mean_ax.set_title(f"mean k over the {k}", fontsize=9)
    std_art = std_ax.imshow(channel_view(std), cmap="viridis", vmin=0, interpolation="nearest")
    std_ax.set_title(f"std of k over the {k}:\nhow much it adapts", fontsize=9)
    fig.colorbar(std_art, ax=std_ax, shrink=0.9)
    if values:
        write_values(w_ax, channel_view(w), norm)
        write_values(mean_ax, channel_view(mean), norm)
    for ax in (w_ax, mean_ax, std_ax):
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"Same place, different inputs: {describe(view)}, "
                 f"location ({i}, {j}){channel_note(c, ' ')}\n"
                 f"k = w + Q p: where the patch is blank, Q p = 0 and k = w exactly", fontsize=11)
    return fig, {"kernels": kernels, "patches": patches, "w": w, "qp": qp, "blank": blank,
                 "mean": mean, "std": std, "location": (i, j)}


# ----------------------------------------------------------------------------- 4. how much it adapts
def plot_adaptation(view: LayerView, which: int = 0, name: str = "the input") -> tuple[Figure, dict]:
    """Heat map over locations of || k(i, j) - mean kernel ||_2, the mean taken over all
    locations for this input; drawn in the input's coordinates with its outline on top.

    Returns arrays: kernels (Ho, Wo, C, m, m), mean_kernel (C, m, m), distance (Ho, Wo)."""
    module, x, kernels = view.module, view.x[which], view.kernels[which]   # (C, H, W), (Ho, Wo, C, m, m)
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
    norm = centred(channel_view(mean))
    art = ax_mean.imshow(channel_view(mean), cmap=KERNEL_CMAP, norm=norm, interpolation="nearest")
    if m <= 4:
        write_values(ax_mean, channel_view(mean), norm)
    ax_mean.set_xticks(range(m))
    ax_mean.set_yticks(range(m))
    ax_mean.set_title(f"mean kernel over the\n{out_h}x{out_w} locations", fontsize=10)
    fig.colorbar(art, ax=ax_mean, shrink=0.6)
    fig.suptitle(f"How much the kernel adapts: {describe(view)}, {name}", fontsize=11)
    return fig, {"kernels": kernels, "mean_kernel": mean, "distance": distance}


# ----------------------------------------------------------------------------- 5. feature maps
def plot_feature_maps(view: LayerView, which: int = 0, name: str = "the input") -> tuple[Figure, dict]:
    """Every output channel y_o = tanh(sigma_o) of the layer for one image (before pooling);
    sigma_o itself for a layer built with activation="none".

    Returns arrays: outputs (O, Ho, Wo), as computed by calling the layer."""
    module, image, outputs = view.module, view.images[which], view.outputs[which]   # (1, H, W), (O, Ho, Wo)
    what = "tanh(sigma)" if module.activation == "tanh" else "sigma"
    norm = Normalize(-1.0, 1.0) if module.activation == "tanh" else centred(outputs)
    o = len(outputs)
    rows = max(1, round(math.sqrt(o / 2)))
    cols = math.ceil(o / rows)

    fig = new_figure(2.6 + 1.7 * cols, 0.9 + 1.75 * rows)
    left, right = fig.subfigures(1, 2, width_ratios=[2.6, 1.7 * cols])
    show_image(left.subplots(), image[0], name)
    axes = np.atleast_2d(right.subplots(rows, cols))
    for n, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if n >= o:
            ax.set_axis_off()
            continue
        art = ax.imshow(outputs[n], cmap=KERNEL_CMAP, norm=norm, interpolation="nearest")
        ax.set_title(f"channel {n}", fontsize=9)
    right.colorbar(art, ax=axes, shrink=0.8, label=what)
    fig.suptitle(f"Feature maps of {describe(view, channel=False)} for {name}: y = {what}, before pooling",
                 fontsize=11)
    return fig, {"outputs": outputs}
