"""Colours that stay apart for colour-blind readers: a simulation of colour-vision deficiency and a colour
difference, so that the palette of ``data.varieties`` (and the dialect-group colours of the figures) can be checked
rather than trusted.

- Simulation: Machado, Oliveira & Fernandes (2009), "A Physiologically-based Model for Simulation of Color Vision
  Deficiency", IEEE TVCG 15(6), the severity-1.0 matrices for protanopia, deuteranopia and tritanopia, applied to
  linear-light sRGB (the matrices from the authors' table, as used by e.g. colorspacious and DaltonLens).
- Difference: CIEDE2000 (Sharma, Wu & Dalal 2005, "The CIEDE2000 Color-Difference Formula: Implementation Notes")
  on CIELAB under D65. As a rule of thumb a ΔE00 above ~10 reads as a different colour at a glance.

No Streamlit here; ``tests/test_palette.py`` holds the palette to ``MIN_DELTA_E`` under every simulation.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence

import numpy as np

MACHADO_2009 = {
    "protanopia": np.array([[0.152286, 1.052583, -0.204868],
                            [0.114503, 0.786281, 0.099216],
                            [-0.003882, -0.048116, 1.051998]]),
    "deuteranopia": np.array([[0.367322, 0.860646, -0.227968],
                              [0.280085, 0.672501, 0.047413],
                              [-0.011820, 0.042940, 0.968881]]),
    "tritanopia": np.array([[1.255528, -0.076749, -0.178779],
                            [-0.078411, 0.930809, 0.147602],
                            [0.004733, 0.691367, 0.303900]]),
}
VISIONS = ("normal", *MACHADO_2009)
MIN_DELTA_E = 10.0   # the least CIEDE2000 difference we accept between two colours shown together


def hex_to_rgb(colour: str) -> np.ndarray:
    """'#d62728' -> array([0.839, 0.153, 0.157]) in [0, 1] (sRGB, gamma-encoded)."""
    c = colour.lstrip("#")
    if len(c) != 6:
        raise ValueError(f"expected a colour like '#1f77b4', got {colour!r}")
    return np.array([int(c[i:i + 2], 16) / 255 for i in (0, 2, 4)])


def _to_linear(rgb: np.ndarray) -> np.ndarray:
    return np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)


def _to_gamma(lin: np.ndarray) -> np.ndarray:
    lin = np.clip(lin, 0.0, 1.0)
    return np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)


def simulate(colour: str, vision: str) -> np.ndarray:
    """The sRGB colour (gamma-encoded, [0, 1]) a reader with ``vision`` sees for ``colour``."""
    rgb = hex_to_rgb(colour)
    if vision == "normal":
        return rgb
    return _to_gamma(MACHADO_2009[vision] @ _to_linear(rgb))


def to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of a gamma-encoded sRGB colour."""
    m = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                  [0.0193339, 0.1191920, 0.9503041]])
    xyz = m @ _to_linear(np.asarray(rgb, dtype=float)) / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def ciede2000(lab1: Sequence[float], lab2: Sequence[float]) -> float:
    """CIEDE2000 colour difference (kL = kC = kH = 1), after Sharma et al. (2005)."""
    L1, a1, b1 = map(float, lab1)
    L2, a2, b2 = map(float, lab2)
    c_bar = (math.hypot(a1, b1) + math.hypot(a2, b2)) / 2
    g = 0.5 * (1 - math.sqrt(c_bar ** 7 / (c_bar ** 7 + 25 ** 7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = math.hypot(a1p, b1), math.hypot(a2p, b2)
    h1p = math.degrees(math.atan2(b1, a1p)) % 360 if c1p else 0.0
    h2p = math.degrees(math.atan2(b2, a2p)) % 360 if c2p else 0.0
    dl, dc = L2 - L1, c2p - c1p
    if c1p * c2p == 0:
        dh = 0.0
    elif abs(h2p - h1p) <= 180:
        dh = h2p - h1p
    else:
        dh = h2p - h1p - 360 if h2p > h1p else h2p - h1p + 360
    dhh = 2 * math.sqrt(c1p * c2p) * math.sin(math.radians(dh / 2))
    l_bar, cp_bar = (L1 + L2) / 2, (c1p + c2p) / 2
    if c1p * c2p == 0:
        h_bar = h1p + h2p
    elif abs(h1p - h2p) <= 180:
        h_bar = (h1p + h2p) / 2
    else:
        h_bar = (h1p + h2p + 360) / 2 if h1p + h2p < 360 else (h1p + h2p - 360) / 2
    t = (1 - 0.17 * math.cos(math.radians(h_bar - 30)) + 0.24 * math.cos(math.radians(2 * h_bar))
         + 0.32 * math.cos(math.radians(3 * h_bar + 6)) - 0.20 * math.cos(math.radians(4 * h_bar - 63)))
    d_theta = 30 * math.exp(-(((h_bar - 275) / 25) ** 2))
    rc = 2 * math.sqrt(cp_bar ** 7 / (cp_bar ** 7 + 25 ** 7))
    sl = 1 + 0.015 * (l_bar - 50) ** 2 / math.sqrt(20 + (l_bar - 50) ** 2)
    sc = 1 + 0.045 * cp_bar
    sh = 1 + 0.015 * cp_bar * t
    rt = -math.sin(math.radians(2 * d_theta)) * rc
    return math.sqrt((dl / sl) ** 2 + (dc / sc) ** 2 + (dhh / sh) ** 2 + rt * (dc / sc) * (dhh / sh))


def delta_e(c1: str, c2: str, vision: str = "normal") -> float:
    """CIEDE2000 between two hex colours as a reader with ``vision`` sees them."""
    return ciede2000(to_lab(simulate(c1, vision)), to_lab(simulate(c2, vision)))


def closest_pair(colours: dict[str, str], visions: Iterable[str] = VISIONS) -> tuple[float, str, str, str]:
    """(ΔE00, name, name, vision) of the two colours that are hardest to tell apart under any of ``visions``."""
    worst = (math.inf, "", "", "")
    for vision in visions:
        for (n1, c1), (n2, c2) in itertools.combinations(colours.items(), 2):
            d = delta_e(c1, c2, vision)
            if d < worst[0]:
                worst = (d, n1, n2, vision)
    return worst
