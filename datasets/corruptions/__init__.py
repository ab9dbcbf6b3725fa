"""The 20 corruptions of Corrupted CIFAR-10 types 1 and 2 (docs/protocol.md#corrupted-cifar-10), with the CIFAR-10-C
32x32 constants of Hendrycks & Dietterich, re-implemented on NumPy/SciPy/OpenCV/Pillow and
vectorised across a batch where the math allows.

Conventions
- Input and output: uint8 arrays (N, 32, 32, 3), HWC, RGB.
- Randomness: one `numpy.random.Generator` per image (see `image_rngs`), so an image's corruption
  depends only on (data seed, split, index), never on batching or on the number of workers.
- Float results in [0, 255] become uint8 by TRUNCATION (`astype(np.uint8)`), exactly as the
  reference does (`np.uint8` of a float array). JPEG and Pixelate are uint8 all the way (Pillow).
  Motion Blur is ROUNDED: the reference's result there is an 8-bit PNG written by ImageMagick.
- Severity is the CIFAR-10-C severity 1..5; the paper's difficulty k uses severity k + 1.

Where this differs from the reference (deliberately, and only in these ways)
- The random numbers come from a different generator (per-image PCG64 streams), so individual
  images differ from the reference's; the distributions are the same.
- Motion Blur (and Snow's motion-blurred layer) is ImageMagick's MotionBlurImage algorithm
  re-implemented as a line kernel (one-sided Gaussian weights over 2*radius+1 taps, offsets
  rounded along the angle, edge pixels repeated), instead of calling ImageMagick through Wand.
- Glass Blur reproduces what the reference's loop actually does: its tuple "swap" of two numpy
  views copies the neighbour into the pixel and leaves the neighbour unchanged, and the
  neighbour offsets are drawn from {-1, 0} (`randint(-1, 1)`); that makes one pass a gather,
  which is computed for all pixels at once.
- Frost loads and resizes each texture once per process instead of once per image.
- Brightness and Saturate use the closed form of scikit-image's rgb2hsv -> change -> hsv2rgb round
  trip (see their docstrings); it equals the round trip up to float rounding, which after
  truncation moves a small fraction of values by one level (measured: at most 1 level, <3%).
- Elastic samples with our own bilinear interpolation with scipy's "reflect" boundary (equal to
  map_coordinates(order=1, mode="reflect") up to float rounding).
- Spatter: if no pixel of an image's liquid layer survives the threshold, the reference divides
  0 by 0 (NaN); here that image is left unchanged. Liquid values above 1 are clipped before the
  uint8 conversion instead of wrapping around (neither happens at the constants used here in
  practice).

Layout: `constants` (the CIFAR-10-C constants), `arrays` (shared array helpers), one module per
family (`noise`, `blur`, `weather`, `digital`) and `registry` (names, types, random streams and
the entry points `corrupt` and `corrupt_chunk`). Its public names are importable from this package.
"""

from debiasbench.datasets.corruptions.arrays import _to_uint8  # noqa: F401  (tests check the reference's truncation)
from debiasbench.datasets.corruptions.blur import (
    defocus_blur,
    defocus_kernel,
    gaussian_blur,
    glass_blur,
    motion_blur,
    motion_blur_batch,
    zoom_blur,
)
from debiasbench.datasets.corruptions.constants import (
    BRIGHTNESS,
    CONTRAST,
    DEFOCUS_BLUR,
    ELASTIC,
    FOG,
    FROST,
    FROST_FILES,
    FROST_SCALE,
    GAUSSIAN_BLUR,
    GAUSSIAN_NOISE,
    GLASS_BLUR,
    IMPULSE_NOISE,
    JPEG_QUALITY,
    MOTION_BLUR,
    MUD_COLOR,
    PIXELATE,
    SATURATE,
    SEVERITIES,
    SHOT_NOISE,
    SIZE,
    SNOW,
    SPATTER,
    SPATTER_KERNEL,
    SPECKLE_NOISE,
    WATER_COLOR,
    ZOOM_BLUR_END,
)
from debiasbench.datasets.corruptions.digital import (
    bilinear_reflect,
    brightness,
    contrast,
    elastic,
    jpeg,
    pixelate,
    reflect_coordinates,
    saturate,
)
from debiasbench.datasets.corruptions.noise import gaussian_noise, impulse_noise, shot_noise, speckle_noise
from debiasbench.datasets.corruptions.registry import (
    CORRUPTION_TYPES,
    CORRUPTIONS,
    TYPE1,
    TYPE2,
    Corruption,
    check_severity,
    corrupt,
    corrupt_chunk,
    corruption_names,
    get_corruption,
    image_rngs,
    original,
    warm_up,
)
from debiasbench.datasets.corruptions.weather import (
    PLASMA_DRAWS,
    fog,
    frost,
    frost_directory,
    frost_textures,
    plasma_fractal,
    snow,
    spatter,
)

__all__ = [
    "BRIGHTNESS",
    "CONTRAST",
    "CORRUPTIONS",
    "CORRUPTION_TYPES",
    "Corruption",
    "DEFOCUS_BLUR",
    "ELASTIC",
    "FOG",
    "FROST",
    "FROST_FILES",
    "FROST_SCALE",
    "GAUSSIAN_BLUR",
    "GAUSSIAN_NOISE",
    "GLASS_BLUR",
    "IMPULSE_NOISE",
    "JPEG_QUALITY",
    "MOTION_BLUR",
    "MUD_COLOR",
    "PIXELATE",
    "PLASMA_DRAWS",
    "SATURATE",
    "SEVERITIES",
    "SHOT_NOISE",
    "SIZE",
    "SNOW",
    "SPATTER",
    "SPATTER_KERNEL",
    "SPECKLE_NOISE",
    "TYPE1",
    "TYPE2",
    "WATER_COLOR",
    "ZOOM_BLUR_END",
    "bilinear_reflect",
    "brightness",
    "check_severity",
    "contrast",
    "corrupt",
    "corrupt_chunk",
    "corruption_names",
    "defocus_blur",
    "defocus_kernel",
    "elastic",
    "fog",
    "frost",
    "frost_directory",
    "frost_textures",
    "gaussian_blur",
    "gaussian_noise",
    "get_corruption",
    "glass_blur",
    "image_rngs",
    "impulse_noise",
    "jpeg",
    "motion_blur",
    "motion_blur_batch",
    "original",
    "pixelate",
    "plasma_fractal",
    "reflect_coordinates",
    "saturate",
    "shot_noise",
    "snow",
    "spatter",
    "speckle_noise",
    "warm_up",
    "zoom_blur",
]
