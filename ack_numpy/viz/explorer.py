"""Ask the kernels questions: one matplotlib window that recomputes them as you point and draw.

    Explorer(model, images, labels)   the window: input, kernel field, k = w + Q p at one
                                      location and the arithmetic of its output, the
                                      model's class probabilities; space plays the sweep
    write_sweep_gif(...)              an animation of the kernel sweeping over the image
    explore(checkpoint, ...)          `python -m ack_numpy explore`: the window, or the two files

For the adaptive layer and output channel o shown, at output location l = (i, j):

    p         the patch under l                         (C, m, m)
    k_o(l)    = w_o + Q_o p, the kernel applied there    (C, m, m)  adaptive_kernels(x, Q, w)
    Q_o p     what the patch adds to the kernel          (C, m, m)  k_o(l) - w_o
    k_e p_e   the D products of kernel and patch         (C, m, m)  k * p, their sum is k . p
    sigma     = k_o(l) . p + b_o,  y = tanh(sigma)       ()         adaptive_conv2d(x, Q, w, b)

Every number drawn comes from `kernels.layer_view` (the layer's input, kernels and sigma,
computed there with those functions of `ack_numpy.functional`) and from the model's
forward (the probabilities are exp(log_softmax) of its output). The products k_e p_e are
the one thing multiplied here, to show the sum the layer computes: their sum plus b is the
engine's sigma (the tests check it). A blank patch (p = 0) gives Q_o p = 0, so k = w exactly.
For C > 1 input channels the (C, m, m) arrays are drawn as their mean over the channels,
except k * p: at each of the m x m positions it is summed over the channels, so that its
cells still add up to k . p.

The window is driven by matplotlib events; the handlers `on_key`, `on_press`, `on_motion`,
`on_release` and `set_location` also work without a screen (the tests send them synthetic
events on the Agg backend), and `shown()` returns the arrays last drawn.
"""
from __future__ import annotations

import numpy as np
from matplotlib import pyplot as plt
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.patches import Rectangle

from .. import functional as F
from ..autograd import Tensor, no_grad
from ..files import atomic_write, check_output_file
from ..models import adaptive_layers
from ..nn import Module
from .figures import DPI, IMAGE_CMAP, KERNEL_CMAP, cell_label, channel_view, limit, save as save_figure
from .kernels import (check_channel, check_location, layer_view, patch_origin, patches_at, sampled_locations,
                      select_adaptive_layer, select_image)

HELP = ("keys: arrows move the location   n / p next / previous image   0-9 first image of that digit   "
        "[ ] channel   l next adaptive layer   c clear   space play / pause the sweep   h more help\n"
        "mouse: move over the input or the field to pick a location; left button paints, right button erases")
MORE_HELP = ("k = w + Q p: w is the layer's fixed kernel, Q p the part the patch adds. Paint a stroke next "
             "to the outlined patch and watch Q p, k and the probabilities change; erase it and k returns to w.\n"
             "k * p: the products the layer adds up, sigma = sum of k * p + b, y = tanh(sigma).")
SWEEP_STEP = 2        # the sweep (space, and --gif) visits every 2nd row and column
SWEEP_INTERVAL = 125  # ms between the sweep's locations in the window: at most 8 a second, as the GIF;
                      # fewer where one drawing of the window takes longer (0.5 s seen on a loaded 2-core machine)


def products(k: np.ndarray, p: np.ndarray) -> np.ndarray:
    """k * p element by element, (C, m, m): the D terms of k . p. (+ 0.0 turns the -0.0 of a
    negative k_e times a blank p_e into 0.0, which is what it is.)"""
    return k * p + 0.0


def position_sums(products: np.ndarray) -> np.ndarray:
    """k * p (C, m, m) summed over the C input channels: (m, m), one term per kernel position,
    whose m*m values add up to k . p as the D products do (for C = 1: the products themselves)."""
    return products.sum(axis=0)


def arithmetic(products: np.ndarray, b: float, sigma: float, terms: int = 9) -> str:
    """The sum the layer computes at one location, written out:

        k . p = sum of the D products k * p = t_1 + ... + t_{m*m} = <sum>
        sigma = k . p + b = <sum> + (<b>) = <sigma>     y = tanh(sigma) = <y>

    products: k * p (C, m, m). The terms t are `position_sums(products)`, the cells of the
    k * p panel: the D products themselves for C = 1; for C > 1 each is the sum over the C
    channels at one position, which a line of its own says (three lines, not two). At most
    `terms` of them are listed. sigma: the engine's (adaptive_conv2d), which the sum plus b
    equals up to rounding."""
    c, d = products.shape[0], products.size
    flat = position_sums(products).reshape(-1)
    listed = " ".join(f"{v:+.3f}" for v in flat[:terms]) + ("" if flat.size <= terms else f" ... ({flat.size} terms)")
    dot = float(products.sum())
    per_position = ("" if c == 1 else
                    f"sum over the {flat.size} positions of (k * p summed over the {c} channels)\n      = ")
    return (f"k . p = sum of the {d} products k * p = {per_position}{listed} = {dot:+.4f}\n"
            f"sigma = k . p + b = {dot:+.4f} + ({b:+.4f}) = {sigma:+.4f}      y = tanh(sigma) = {np.tanh(sigma):+.4f}")


class Explorer:
    """One figure that shows, for the current input, the kernels of one adaptive layer and channel.

    images: (N, 1, H, W) test images in [0, 1], labels: (N,). The input starts as
    images[index] and can be painted on; `location` is an output location (row, col) of the
    layer (default its centre, or if the patch there is blank the nearest one that is not;
    `start_note` then says so). scale: None draws the bottom row on a colour scale that fits
    the current location; a number fixes it at -scale..scale, so that two pictures compare."""

    def __init__(self, model: Module, images: np.ndarray, labels: np.ndarray, layer: int = 0,
                 channel: int = 0, index: int = 0, location: tuple[int, int] | None = None,
                 scale: float | None = None):
        self.model, self.images, self.labels = model, images, labels
        self.module = select_adaptive_layer(model, layer)
        check_channel(self.module, channel)
        self.layer, self.channel = layer, channel
        self.index = select_image(labels, index=index)
        self.image = images[self.index, 0].astype(np.float32).copy()   # (H, W), what the mouse paints on
        self.drawn = False            # True once the mouse has changed the image
        self.painting = 0             # 0, or the mouse button held down on the input (1 paint, 3 erase)
        self.last_painted = None      # the pixel (row, col) the stroke being painted reached last
        if scale is not None and not (np.isfinite(scale) and scale > 0):
            raise ValueError(f"the colour scale must be a positive number, got {scale!r}")
        self.scale = scale
        self.status = ""
        self.long_help = False
        self.timer = None             # the sweep's timer while it plays (space)
        self._compute()
        self.start_note = ""
        if location is None:
            self.location = self._starting_location()
            centre = (self.sigma.shape[0] // 2, self.sigma.shape[1] // 2)
            if self.location != centre:
                self.start_note = (f"the patch at the centre {centre} is blank (there k = w); "
                                   f"starting at {self.location}, the nearest location with ink")
        else:
            self.location = check_location(location, *self.sigma.shape)
        self.status = self.start_note
        self._build_figure()
        self._redraw()

    # ------------------------------------------------------------------------- the numbers
    def _compute(self) -> None:
        """Everything that depends on the input, layer and channel (not on the location): the
        layer's view of the one image shown (`layer_view`, K = 1) and the class probabilities."""
        view = layer_view(self.model, self.image[None, None], self.layer, self.channel)
        self.x, self.sigma = view.x[0], view.sigma[0]                   # (C, H', W'), (Ho, Wo)
        self.kernels, self.qp = view.kernels[0], view.qp[0]             # (Ho, Wo, C, m, m) each
        self.w, self.b = view.w, view.b                                 # (C, m, m), b_o
        with no_grad():
            logits = self.model(Tensor(self.image[None, None])).data[0]               # (10,)
        self.probabilities = np.exp(F.log_softmax(logits.astype(np.float64)).data)  # (10,)

    def patch(self, i: int, j: int) -> np.ndarray:
        """The patch p under output location (i, j): (C, m, m), zeros where it hangs over the padding."""
        return patches_at(self.x[None], self.module, i, j)[0]

    def _starting_location(self) -> tuple[int, int]:
        """The centre of the output grid, unless its patch is blank (there k is only the
        static w, the least interesting kernel to start on): then the nearest location
        whose patch is not, ties going to the upper-left one. An empty input: the centre."""
        ho, wo = self.sigma.shape
        centre = (ho // 2, wo // 2)
        if self.patch(*centre).any():
            return centre
        inked = [(i, j) for i in range(ho) for j in range(wo) if self.patch(i, j).any()]
        distance = lambda ij: (ij[0] - centre[0]) ** 2 + (ij[1] - centre[1]) ** 2
        return min(inked, key=lambda ij: (distance(ij), ij)) if inked else centre

    def shown(self) -> dict:
        """The arrays drawn for the current location: k, w, Qp, patch, products = k * p
        (C, m, m), b, sigma, y, probabilities (10,), and location, layer, channel, image (H, W)."""
        i, j = self.location
        patch = self.patch(i, j)
        return {"k": self.kernels[i, j], "w": self.w, "Qp": self.qp[i, j], "patch": patch,
                "products": products(self.kernels[i, j], patch), "b": self.b,
                "sigma": float(self.sigma[i, j]), "y": float(np.tanh(self.sigma[i, j])),
                "probabilities": self.probabilities, "location": self.location,
                "layer": self.layer, "channel": self.channel, "image": self.image}

    # ------------------------------------------------------------------------- the figure
    def _build_figure(self) -> None:
        self.fig = plt.figure(figsize=(13, 8.25), dpi=100)  # 1300 x 825 pixels: whole in binary, so every matplotlib rounds them alike
        gs = self.fig.add_gridspec(2, 12, height_ratios=[4.3, 2.4], left=0.04, right=0.97, top=0.88,
                                   bottom=0.25, hspace=0.45, wspace=0.6)
        self.ax_input = self.fig.add_subplot(gs[0, 0:4])
        self.ax_field = self.fig.add_subplot(gs[0, 4:8])
        self.ax_probs = self.fig.add_subplot(gs[0, 9:12])
        self.ax_small = [self.fig.add_subplot(gs[1, 2 * n : 2 * n + 2]) for n in range(5)]
        self.small_size = None  # the kernel size the bottom row was built for (_build_small_panels)
        self.ax_cbar = self.fig.add_subplot(gs[1, 10])

        self.input_art = self.ax_input.imshow(self.image, cmap=IMAGE_CMAP, vmin=0, vmax=1, interpolation="nearest")
        self.input_box = self.ax_input.add_patch(Rectangle((0, 0), 1, 1, fill=False, color="tab:red", lw=2))
        self.ax_input.set_xlabel("column")
        self.ax_input.set_ylabel("row")

        self.field_background = self.ax_field.imshow(self.x.mean(axis=0), cmap=IMAGE_CMAP, alpha=0.3,
                                                     interpolation="nearest")
        self.field_art = self.ax_field.imshow(self._field_mosaic(), cmap=KERNEL_CMAP, interpolation="nearest")
        self.field_box = self.ax_field.add_patch(Rectangle((0, 0), 1, 1, fill=False, color="tab:red", lw=2))
        self.fig.colorbar(self.field_art, cax=self.ax_field.inset_axes([1.04, 0, 0.05, 1]), label="kernel value")
        self.cells_norm = ScalarMappable(Normalize(-1, 1), KERNEL_CMAP)
        self.cells_bar = self.fig.colorbar(self.cells_norm, cax=self.ax_cbar)
        self.ax_cbar.set_box_aspect(6)

        self.bars = self.ax_probs.bar(range(10), self.probabilities, color="tab:gray")
        self.ax_probs.set_xticks(range(10))
        self.ax_probs.set_ylim(0, 1)
        self.ax_probs.set_xlabel("digit")
        self.ax_probs.set_ylabel("probability")

        self.info_text = self.fig.text(0.04, 0.115, "", fontsize=10, family="monospace")
        self.help_text = self.fig.text(0.04, 0.015, "", fontsize=9, color="dimgray")
        for name, handler in (("key_press_event", self.on_key), ("button_press_event", self.on_press),
                              ("motion_notify_event", self.on_motion), ("button_release_event", self.on_release)):
            self.fig.canvas.mpl_connect(name, handler)

    def _build_small_panels(self, m: int) -> None:
        """The bottom row's five m x m panels: an image and m*m value texts each, made once
        and then updated in place by _redraw (clearing and redrawing axes at every location
        made the sweep several times slower)."""
        self.small_images, self.small_texts = [], []
        for ax in self.ax_small:
            ax.clear()
            self.small_images.append(ax.imshow(np.zeros((m, m)), cmap=KERNEL_CMAP, interpolation="nearest"))
            texts = np.empty((m, m), dtype=object)
            for u in range(m):
                for v in range(m):
                    texts[u, v] = ax.text(v, u, "", ha="center", va="center", fontsize=9 if m <= 3 else 7)
            self.small_texts.append(texts)
            ax.set_xticks([])
            ax.set_yticks([])
        self.small_size = m

    def _field_mosaic(self) -> np.ndarray:
        """The kernel of every sampled location (and of the chosen one) laid over its patch:
        (H', W') with NaN (drawn blank) between the tiles. For C > 1, the mean over input channels."""
        module, m = self.module, self.module.kernel_size
        h, w = self.x.shape[1:]
        mosaic = np.full((h, w), np.nan)
        rows, cols = sampled_locations(self.sigma.shape[0], module), sampled_locations(self.sigma.shape[1], module)
        spots = [(i, j) for i in rows for j in cols] + [self.location]  # the chosen one last, on top
        for i, j in spots:
            r0, c0 = patch_origin(i, module), patch_origin(j, module)
            tile = channel_view(self.kernels[i, j])
            for u in range(m):
                for v in range(m):
                    if 0 <= r0 + u < h and 0 <= c0 + v < w:
                        mosaic[r0 + u, c0 + v] = tile[u, v]
        return mosaic

    def _redraw(self) -> None:
        """Bring every panel up to date with the input, layer, channel and location."""
        module, m, (i, j) = self.module, self.module.kernel_size, self.location
        c, (h, w) = module.in_channels, self.x.shape[1:]
        shown = self.shown()
        mean_note = "" if c == 1 else f" (mean over {c} input channels)"

        # the input, with the patch outlined (for a deeper layer: the region its patch covers)
        self.input_art.set_data(self.image)
        rows, cols = self.image.shape[0] / h, self.image.shape[1] / w    # input pixels per layer-input pixel
        r0, c0 = patch_origin(i, module) * rows, patch_origin(j, module) * cols
        self.input_box.set_bounds(c0 - 0.5, r0 - 0.5, m * cols, m * rows)
        source = "drawn with the mouse" if self.drawn else f"test image {self.index} (digit {self.labels[self.index]})"
        self.ax_input.set_title(f"input: {source}", fontsize=10)

        # the kernel field over what the layer sees
        extent = (-0.5, w - 0.5, h - 0.5, -0.5)
        self.field_background.set_data(self.x.mean(axis=0))
        self.field_background.set_extent(extent)
        self.field_background.set_clim(float(self.x.min()), float(self.x.max()) or 1.0)
        self.field_art.set_data(self._field_mosaic())
        self.field_art.set_extent(extent)
        lim = limit(self.kernels)
        self.field_art.set_clim(-lim, lim)
        r0, c0 = patch_origin(i, module), patch_origin(j, module)
        self.field_box.set_bounds(c0 - 0.5, r0 - 0.5, m, m)
        self.ax_field.set_title(f"kernel field of adaptive layer {self.layer}, channel {self.channel}{mean_note}\n"
                                f"location ({i}, {j}) of {self.sigma.shape[0]}x{self.sigma.shape[1]} outlined",
                                fontsize=10)
        self.ax_field.set_xlim(-0.5, w - 0.5)
        self.ax_field.set_ylim(h - 0.5, -0.5)

        # patch, w, Q p, k and the products k * p on one colour scale centred on 0, values in the
        # cells (m, m); for C > 1 the mean over channels, but the sum for k * p, whose cells add up to k . p
        mean = "" if c == 1 else "\n(mean over channels)"
        panels = [("patch p" + mean, channel_view(shown["patch"])), ("w (fixed)" + mean, channel_view(shown["w"])),
                  ("Q p (from the patch)" + mean, channel_view(shown["Qp"])),
                  ("k = w + Q p" + mean, channel_view(shown["k"])),
                  ("k * p (their sum is k . p)" if c == 1 else "k * p summed over channels\n(their sum is k . p)",
                   position_sums(shown["products"]))]
        lim = max(limit(cells) for _, cells in panels) if self.scale is None else self.scale
        self.cells_norm.set_clim(-lim, lim)
        self.cells_bar.set_label("value, one scale for all five\n" +
                                 ("fitted to this location" if self.scale is None else f"fixed: -{lim:g} to {lim:g}"))
        if self.small_size != m:  # first drawing, or a layer with another kernel size
            self._build_small_panels(m)
        for ax, image, texts, (title, cells) in zip(self.ax_small, self.small_images, self.small_texts, panels):
            image.set_data(cells)
            image.set_clim(-lim, lim)
            for (u, v), text in np.ndenumerate(texts):
                label, color = cell_label(cells[u, v], self.cells_norm.norm)
                text.set_text(label)
                text.set_color(color)
            ax.set_title(title, fontsize=10)

        # the probabilities from the model's forward
        best = int(np.argmax(self.probabilities))
        for d, bar in enumerate(self.bars):
            bar.set_height(self.probabilities[d])
            bar.set_color("tab:blue" if d == best else "tab:gray")
        self.ax_probs.set_title(f"class probabilities (softmax of the model's output)\n"
                                f"predicts {best} with p = {self.probabilities[best]:.3f}", fontsize=10)

        blank = "blank patch: k = w exactly" if not np.any(shown["patch"]) else "patch not blank: k = w + Q p"
        self.info_text.set_text(f"location ({i}, {j}), {blank}\n"
                                + arithmetic(shown["products"], shown["b"], shown["sigma"]))
        self.help_text.set_text((self.status + "\n" if self.status else "") + HELP
                                + ("\n" + MORE_HELP if self.long_help else ""))
        self.fig.suptitle("What kernel does this input produce?  k = w + Q p, recomputed as you point and draw",
                          fontsize=12)
        self.fig.canvas.draw_idle()

    # ------------------------------------------------------------------------- changing the state
    def set_location(self, i: int, j: int) -> None:
        """Show output location (i, j), clipped to the layer's output grid."""
        ho, wo = self.sigma.shape
        self.location = (int(np.clip(i, 0, ho - 1)), int(np.clip(j, 0, wo - 1)))
        self._redraw()

    def show_image(self, index: int) -> None:
        self.index = index % len(self.labels)
        self.image = self.images[self.index, 0].astype(np.float32).copy()
        self.drawn = False
        self._compute()
        self._redraw()

    def set_layer_channel(self, layer: int, channel: int) -> None:
        self.module = select_adaptive_layer(self.model, layer)
        self.layer, self.channel = layer, channel % self.module.out_channels
        self._compute()
        self.set_location(*self.location)

    def sweep_locations(self) -> list[tuple[int, int]]:
        """The locations the sweep visits, row by row: every SWEEP_STEP-th row and column."""
        ho, wo = self.sigma.shape
        return [(i, j) for i in range(0, ho, SWEEP_STEP) for j in range(0, wo, SWEEP_STEP)]

    def sweep_step(self) -> None:
        """Move to the sweep's next location after the current one (after the last: the first)."""
        spots = self.sweep_locations()
        self.set_location(*next((spot for spot in spots if spot > self.location), spots[0]))

    def toggle_play(self) -> None:
        """Start the sweep in the window (a timer calls sweep_step), or pause it."""
        if self.timer is None:
            self.timer = self.fig.canvas.new_timer(interval=SWEEP_INTERVAL)
            self.timer.add_callback(self.sweep_step)
            self.timer.start()
            self.status = "playing the sweep: space pauses"
        else:
            self.timer.stop()
            self.timer = None
            self.status = "sweep paused: space plays on"
        self._redraw()

    def paint(self, row: int, col: int, erase: bool = False, start: tuple[int, int] | None = None) -> None:
        """A round 3-pixel brush: ink 1 at (row, col), 0.5 at its four neighbours (erase: 0 all five).

        start: where the stroke was painted last; the brush then goes over every pixel of the
        straight line from there (`line_pixels`), since a fast drag sends its motion events
        several pixels apart and would otherwise leave separate dots."""
        h, w = self.image.shape
        for r0, c0 in line_pixels(start or (row, col), (row, col)):
            for dr, dc, ink in ((0, 0, 1.0), (-1, 0, 0.5), (1, 0, 0.5), (0, -1, 0.5), (0, 1, 0.5)):
                r, c = r0 + dr, c0 + dc
                if 0 <= r < h and 0 <= c < w:
                    self.image[r, c] = 0.0 if erase else max(self.image[r, c], ink)
        self.last_painted = (row, col)
        self.drawn = True
        self._compute()     # once per event, not per pixel of the line: this is the slow part
        self._redraw()

    def _location_under(self, event) -> tuple[int, int] | None:
        """The output location whose patch is centred nearest the mouse (None if not over an image)."""
        if event.inaxes not in (self.ax_input, self.ax_field) or event.xdata is None:
            return None
        # input pixels -> layer-input pixels (the field is drawn in layer-input pixels already)
        on_input = event.inaxes is self.ax_input
        rows = self.x.shape[1] / self.image.shape[0] if on_input else 1.0
        cols = self.x.shape[2] / self.image.shape[1] if on_input else 1.0
        centre = (self.module.kernel_size - 1) / 2

        def to_index(z: float) -> int:  # the patch of output index i starts at i*stride - padding
            return int(round((z - centre + self.module.padding) / self.module.stride))

        return to_index(event.ydata * rows), to_index(event.xdata * cols)

    # ------------------------------------------------------------------------- event handlers
    def on_key(self, event) -> None:
        key, (i, j) = event.key, self.location
        self.status = "" if self.timer is None else "playing the sweep: space pauses"
        moves = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}
        if key in moves:
            self.set_location(i + moves[key][0], j + moves[key][1])
        elif key in ("n", "p"):
            self.show_image(self.index + (1 if key == "n" else -1))
        elif key is not None and key.isdigit() and len(key) == 1:
            try:
                self.show_image(select_image(self.labels, digit=int(key)))
            except ValueError as err:
                self.status = str(err)
                self._redraw()
        elif key in ("[", "]"):
            self.set_layer_channel(self.layer, self.channel + (1 if key == "]" else -1))
        elif key == "l":
            count = len(adaptive_layers(self.model))
            if count == 1:
                self.status = "this model has one adaptive layer"
            self.set_layer_channel((self.layer + 1) % count, self.channel)
        elif key == "c":
            self.image[:] = 0.0
            self.drawn = True
            self._compute()
            self._redraw()
        elif key == " ":
            self.toggle_play()
        elif key == "h":
            self.long_help = not self.long_help
            self._redraw()

    def on_press(self, event) -> None:
        if event.inaxes is self.ax_input and event.xdata is not None and event.button in (1, 3):
            self.painting = int(event.button)
            self.paint(int(round(event.ydata)), int(round(event.xdata)), erase=self.painting == 3)

    def on_motion(self, event) -> None:
        if self.painting and event.inaxes is self.ax_input and event.xdata is not None:
            self.paint(int(round(event.ydata)), int(round(event.xdata)), erase=self.painting == 3,
                       start=self.last_painted)
        elif self.painting:
            self.last_painted = None   # the drag left the input: where it comes back, a new line starts
        spot = self._location_under(event)
        if spot is None:
            return
        # the start note says where the window started; once the mouse picks a location it is out of date
        clear_note = bool(self.start_note) and self.status == self.start_note
        if clear_note:
            self.status = ""
        if spot != self.location:
            self.set_location(*spot)
        elif clear_note:
            self._redraw()

    def on_release(self, event) -> None:
        self.painting = 0
        self.last_painted = None


def line_pixels(start: tuple[int, int], end: tuple[int, int]) -> list[tuple[int, int]]:
    """The pixels (row, col) of the straight line from start to end, both included: one per
    step along the longer of the two directions, so each touches the one before."""
    (r0, c0), (r1, c1) = start, end
    steps = max(abs(r1 - r0), abs(c1 - c0))
    rows = np.rint(np.linspace(r0, r1, steps + 1)).astype(int)
    cols = np.rint(np.linspace(c0, c1, steps + 1)).astype(int)
    return list(zip(rows.tolist(), cols.tolist()))


def free_keys() -> None:
    """Take the explorer's keys away from matplotlib's own shortcuts (l = log scale, p = pan, ...)."""
    ours = {"left", "right", "up", "down", "n", "p", "[", "]", "l", "c", "h", " ", *"0123456789"}
    for name in [k for k in plt.rcParams if k.startswith("keymap.")]:
        plt.rcParams[name] = [key for key in plt.rcParams[name] if key not in ours]


# ----------------------------------------------------------------------------- the sweep animation
def write_sweep_gif(model: Module, image: np.ndarray, path, layer: int = 0, channel: int = 0,
                    step: int = SWEEP_STEP, name: str = "the input", fps: int = 8) -> int:
    """An animated GIF of the kernel sweeping over the image, one frame per visited location
    (every `step`-th row and column): the patch outlined on the input, the kernel k = w + Q p
    used there and the products k * p (values in the cells), the sum they make (the
    explorer's `arithmetic`), and the output y = tanh(sigma) filled in so far (each frame
    reveals the step x step block of outputs it stands for).

    image: (1, H, W). One colour scale for every frame's kernel and products. Returns the
    number of frames."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from PIL import Image

    view = layer_view(model, np.asarray(image, dtype=np.float32)[None], layer, channel)        # K = 1 image
    module, x, kernels, qp, sigma = view.module, view.x, view.kernels[0], view.qp[0], view.sigma[0]
    y = np.tanh(sigma)                                                        # x (1, C, H', W'), sigma (Ho, Wo)
    ho, wo, m, c = y.shape[0], y.shape[1], module.kernel_size, module.in_channels
    spots = [(i, j) for i in range(0, ho, step) for j in range(0, wo, step)]
    terms = {spot: products(kernels[spot], patches_at(x, module, *spot)[0]) for spot in spots}   # k * p (C, m, m)
    # the panels draw (m, m): the kernel's mean over channels, the products' sum (see `arithmetic`)
    lim = max(limit(channel_view(kernels)), max(limit(position_sums(a)) for a in terms.values()))

    fig = Figure(figsize=(11, 3.6), dpi=DPI)  # 1100 x 360 pixels: the 9-point arithmetic is 12-13 pixels high
    left, middle, product_ax, right = fig.subplots(1, 4)
    fig.subplots_adjust(left=0.02, right=0.95, top=0.78, bottom=0.2, wspace=0.35)
    left.imshow(x[0].mean(axis=0), cmap=IMAGE_CMAP, interpolation="nearest")
    box = left.add_patch(Rectangle((0, 0), m, m, fill=False, color="tab:red", lw=2))
    kernel_art = middle.imshow(channel_view(kernels[0, 0]), cmap=KERNEL_CMAP, vmin=-lim, vmax=lim,
                               interpolation="nearest")
    product_art = product_ax.imshow(channel_view(kernels[0, 0]), cmap=KERNEL_CMAP, vmin=-lim, vmax=lim,
                                    interpolation="nearest")
    cells = [[ax.text(v, u, "", ha="center", va="center", fontsize=8) for v in range(m) for u in range(m)]
             for ax in (middle, product_ax)]
    filled = np.full((ho, wo), np.nan)
    out_art = right.imshow(filled, cmap=KERNEL_CMAP, vmin=-1, vmax=1, interpolation="nearest")
    fig.colorbar(product_art, ax=product_ax, fraction=0.046, pad=0.03)
    fig.colorbar(out_art, ax=right, fraction=0.046, pad=0.03)
    for ax in (left, middle, product_ax, right):
        ax.set_xticks([])
        ax.set_yticks([])
    left.set_title(f"{name}: patch p", fontsize=10)
    right.set_title("y = tanh(k . p + b) so far", fontsize=10)
    sums = fig.text(0.02, 0.03, "", fontsize=9, family="monospace")
    fig.suptitle(f"adaptive layer {layer}, channel {channel}: every location gets its own kernel k = w + Q p",
                 fontsize=11)

    def frame(n: int):
        i, j = spots[n]
        shown = {"k": channel_view(kernels[i, j]), "k * p": position_sums(terms[i, j])}
        box.set_xy((patch_origin(j, module) - 0.5, patch_origin(i, module) - 0.5))
        for art, texts, a in zip((kernel_art, product_art), cells, shown.values()):
            art.set_data(a)
            for text, (u, v) in zip(texts, [(u, v) for v in range(m) for u in range(m)]):
                label, color = cell_label(a[u, v], art.norm)
                text.set_text(label)
                text.set_color(color)
        filled[i : i + step, j : j + step] = y[i : i + step, j : j + step]
        out_art.set_data(filled)
        largest = np.abs(qp[i, j]).max()
        change = "blank patch: k = w" if largest == 0 else f"largest |Q p| = {largest:.2f}"
        middle.set_title(f"kernel k at ({i}, {j}){'' if c == 1 else ', mean over channels'}\n{change}", fontsize=10)
        product_ax.set_title("k * p: the products\nthat add up to k . p" if c == 1 else
                             "k * p summed over channels:\nthey add up to k . p", fontsize=10)
        sums.set_text(arithmetic(terms[i, j], view.b, float(sigma[i, j])))

    # Each frame drawn into pixels, then all of them written as one GIF by Pillow (which
    # matplotlib depends on), through atomic_write: a stopped run leaves no half a GIF.
    # All frames share the 256 colours of the first (its colour bars hold every colour of the
    # kernel map, its input every grey). With a palette of its own per frame (Pillow's default)
    # a colour gets another index in each frame, and the GIF, which stores what changed since
    # the frame before, is about 2.5 times larger.
    canvas = FigureCanvasAgg(fig)
    pictures = []
    for n in range(len(spots)):
        frame(n)
        canvas.draw()
        picture = Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3])
        if n == 0:
            palette = picture.quantize(256)   # an image whose 256 colours every frame is then drawn in
        pictures.append(picture.quantize(palette=palette, dither=0))  # 0: no dithering (Image.Dither.NONE from Pillow 9.1 on)
    with atomic_write(path) as f:
        pictures[0].save(f, format="GIF", save_all=True, append_images=pictures[1:], duration=1000 // fps, loop=0)
    return len(spots)


def check_output_files(save: str | None, gif: str | None) -> None:
    """--save / --gif: each file name says its format, and they are two different files
    (checked before anything is computed, so a mistake costs nothing)."""
    from pathlib import Path

    from matplotlib.figure import Figure

    # the same file twice first: it is the mistake, whichever formats this matplotlib can write
    if save is not None and gif is not None and Path(save).resolve() == Path(gif).resolve():
        raise ValueError(f"--save and --gif name the same file {save}: the animation would overwrite "
                         f"the picture; give two different files")
    formats = Figure().canvas.get_supported_filetypes()   # {"png": ..., "pdf": ..., "svg": ...}
    if save is not None and Path(save).suffix[1:].lower() not in formats:
        raise ValueError(f"--save {save}: the file name must end in the picture's format, one of "
                         f"{', '.join('.' + f for f in sorted(formats))} (e.g. explorer.png)")
    if gif is not None and Path(gif).suffix.lower() != ".gif":
        raise ValueError(f"--gif {gif}: the file name must end in .gif (e.g. sweep.gif)")
    for option, path in (("--save", save), ("--gif", gif)):
        if path is not None:
            check_output_file(path, f"the {option} file")


def explore(checkpoint, data_dir: str | None = None, index: int | None = None, digit: int | None = None,
            layer: int = 0, channel: int = 0, location: tuple[int, int] | None = None, scale: float | None = None,
            save: str | None = None, gif: str | None = None, every: int = SWEEP_STEP, log=print) -> None:
    """`python -m ack_numpy explore`: the window on test image `index` (or the first `digit`),
    or, with `save` / `gif`, its picture and the sweep's animation written to those files
    (the caller has chosen a matplotlib backend that suits: a screen's, or Agg for files)."""
    from ..data import load_mnist
    from .kernels import check_image_choice, load_adaptive_model

    check_image_choice(index, digit)
    check_output_files(save, gif)
    model = load_adaptive_model(checkpoint)
    images, labels = load_mnist("test", data_dir)
    index = select_image(labels, index=index, digit=digit)
    free_keys()
    explorer = Explorer(model, images, labels, layer=layer, channel=channel, index=index,
                        location=location, scale=scale)
    if explorer.start_note:
        log(f"explore: {explorer.start_note}")
    if save is not None:
        save_figure(explorer.fig, save, dpi=explorer.fig.dpi)
        log(f"wrote {save}")
    if gif is not None:
        frames = write_sweep_gif(model, images[index], gif, layer=layer, channel=channel, step=every,
                                 name=f"test image {index} (digit {labels[index]})")
        log(f"wrote {gif} ({frames} frames)")
    if save is None and gif is None:
        plt.show()
