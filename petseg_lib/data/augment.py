"""Data augmentation: the random changes that turn one training photo into many.

The report's set, applied jointly to an image and its trimap so both get the same geometry:
crop-and-zoom, a horizontal flip, greyscale and brightness. The trimap travels as a
`tv_tensors.Mask`, so it is resized with nearest neighbours and keeps its values {1, 2, 3};
only the image is recoloured. `model_sample` then turns the pair into what a model is fed.

The "strong" level (the report's discussion) adds a small rotation and Cutout (`ImageCutout`,
a black patch in the image only), and, in the dataset, CutMix (`cut_mix`): a rectangle of a
second training image pasted in together with its labels. The "mixup" level keeps the report's
set and adds, in the dataset, Mixup (`mix_up`): a second image blended into the whole of the
first, and its mask into the mask, which is then soft (values between 0 and 1).
"""

from __future__ import annotations

import math

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from .masks import BACKGROUND

AUGMENT_LEVELS = ("report", "strong", "mixup")  # the report's set; made harder; + Mixup
MIXUP_ALPHA = 0.4  # Mixup's weight is drawn from Beta(alpha, alpha): mostly near 0 or 1


class ImageCutout(v2.RandomErasing):
    """Cutout: RandomErasing on the image only; the trimap keeps its labels under the patch.

    The pet is still there under the black patch, so its label must stay: the model learns to
    find a pet from the parts it can see. (torchvision 0.29 passes Masks through RandomErasing
    with a warning that this may change; here Masks are left alone on purpose.)
    """

    def transform(self, inpt, params: dict):
        """Erase the patch of PARAMS from images; return masks unchanged."""
        if isinstance(inpt, tv_tensors.Mask):
            return inpt
        return super().transform(inpt, params)


def resize(inpt: torch.Tensor, size: list[int]) -> torch.Tensor:
    """An Image resized to SIZE (bilinear, antialiased), or a Mask (nearest pixel centres).

    torchvision's "nearest" mode takes each output pixel from the source pixel under its
    top-left corner, which shifts a trimap by up to half an output pixel against its photo
    (by 3 % Dice at 64 px, the other way after a flip); "nearest-exact" takes the source pixel
    under the output pixel's centre, where the bilinear photo takes its colour from.
    """
    if isinstance(inpt, tv_tensors.Mask):
        return v2.functional.resize(inpt, size, interpolation=v2.InterpolationMode.NEAREST_EXACT)
    return v2.functional.resize(inpt, size, antialias=True)


class SquareResize(v2.Transform):
    """Resize an Image and its Mask together to SIZE x SIZE, as `resize` does."""

    def __init__(self, size: int):
        super().__init__()
        self.size = [size, size]

    def extra_repr(self) -> str:
        """The setting, as printing the pipeline shows it."""
        return f"size={self.size}"

    def transform(self, inpt, params: dict):
        """INPT resized; anything else a transform may carry passes through."""
        return resize(inpt, self.size) if isinstance(inpt, torch.Tensor) else inpt


class CropAndZoom(SquareResize):
    """Cut a random region of SCALE of the photo's area and resize it to SIZE x SIZE.

    The region has the photo's own proportions, stretched by at most STRETCH either way, so
    a pet is squeezed into the square as much as it is when a whole photo is resized for
    scoring: a 4:3 photo gives 4:3 regions, not square ones that would show the pets wider
    than they ever are at test time.
    """

    def __init__(self, size: int, scale: tuple[float, float] = (0.5, 1.0),
                 stretch: tuple[float, float] = (3 / 4, 4 / 3)):
        super().__init__(size)
        self.scale, self.stretch = scale, stretch

    def extra_repr(self) -> str:
        """The settings, as printing the pipeline shows them."""
        return f"size={self.size}, scale={self.scale}, stretch={self.stretch}"

    def make_params(self, flat_inputs: list) -> dict:
        """The region: top, left, height and width, drawn for the photo among FLAT_INPUTS."""
        height, width = v2.functional.get_size(flat_inputs[0])  # the image comes first
        area = torch.empty(1).uniform_(*self.scale).item()
        stretch = math.exp(torch.empty(1).uniform_(*map(math.log, self.stretch)).item())
        h = min(height, max(1, round(height * math.sqrt(area / stretch))))
        w = min(width, max(1, round(width * math.sqrt(area * stretch))))
        top = int(torch.randint(height - h + 1, (1,)))
        left = int(torch.randint(width - w + 1, (1,)))
        return {"top": top, "left": left, "height": h, "width": w}

    def transform(self, inpt, params: dict):
        """INPT cropped to the region, then resized."""
        return super().transform(v2.functional.crop(inpt, **params), params)


def augmentations(image_size: int, level: str = "report") -> v2.Compose:
    """The training augmentations of LEVEL, applied jointly to an Image and its Mask.

    "report" is the design report's set. "strong" adds, after it, a rotation of up to 15
    degrees (the corners it brings in are black in the image and background in the trimap)
    and Cutout. CutMix needs a second image, so the dataset applies it (`cut_mix`), as it
    applies Mixup (`mix_up`) at the "mixup" level, whose transforms are the report's.
    """
    if level not in AUGMENT_LEVELS:
        raise ValueError(f"augment level must be one of {', '.join(AUGMENT_LEVELS)}, "
                         f"not {level!r}")
    transforms = [
        CropAndZoom(image_size, scale=(0.5, 1.0)),  # 50-100 % of the photo, its proportions
        v2.RandomHorizontalFlip(p=0.5),
        v2.RandomGrayscale(p=0.2),
        v2.ColorJitter(brightness=0.3),  # multiplies brightness by a factor in [0.7, 1.3]
    ]
    if level == "strong":
        transforms += [
            v2.RandomRotation(degrees=15, fill={tv_tensors.Image: 0, tv_tensors.Mask: BACKGROUND}),
            ImageCutout(p=0.5, scale=(0.02, 0.15), value=0),  # 2-15 % of the image goes black
        ]
    return v2.Compose(transforms)


def cut_mix(image: torch.Tensor, trimap: torch.Tensor, other_image: torch.Tensor,
            other_trimap: torch.Tensor, generator: torch.Generator | None = None,
            p: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """CutMix: with probability P, paste a rectangle of OTHER's image and trimap into this pair.

    The rectangle covers 10-40 % of the image (up to rounding to whole pixels), has the
    image's proportions and lies anywhere inside it, uniformly. The same rectangle is cut
    from the image and the trimap, so every pixel keeps its own label. Images are (3, S, S),
    trimaps (1, S, S), all of one size; the results are new tensors of the inputs' types.
    Random numbers come from GENERATOR (torch's global one when None).
    """
    if torch.rand(1, generator=generator).item() >= p:
        return image, trimap
    height, width = image.shape[-2:]
    side = torch.empty(1).uniform_(0.1, 0.4, generator=generator).sqrt().item()  # of each side
    box_h, box_w = max(1, round(side * height)), max(1, round(side * width))
    top = torch.randint(height - box_h + 1, (1,), generator=generator).item()
    left = torch.randint(width - box_w + 1, (1,), generator=generator).item()
    box = (..., slice(top, top + box_h), slice(left, left + box_w))
    image, trimap = image.clone(), trimap.clone()
    image[box], trimap[box] = other_image[box], other_trimap[box]
    return image, trimap


def mix_up(sample: dict, other: dict, alpha: float = MIXUP_ALPHA) -> dict:
    """Mixup: SAMPLE's image and mask blended with OTHER's, with a Beta(ALPHA, ALPHA) weight.

    With lam drawn from Beta(alpha, alpha) and kept at least 1/2 (the sample stays mostly
    itself), image = lam * image + (1 - lam) * other's, and the same for the masks, which
    become soft targets: a pixel's label is how much of it is pet. The trimap and the name
    stay SAMPLE's. Both are model_sample dicts of one size; the draw uses torch's global
    random numbers, which the DataLoader seeds.
    """
    lam = torch.distributions.Beta(alpha, alpha).sample().item()
    lam = max(lam, 1.0 - lam)
    mixed = dict(sample)
    for key in ("image", "mask"):
        mixed[key] = lam * sample[key] + (1.0 - lam) * other[key]
    return mixed


def to_tv_tensors(sample: dict) -> tuple[tv_tensors.Image, tv_tensors.Mask | None]:
    """An OxfordPetDataset sample's image (3, H, W) and trimap (1, H, W) as tv_tensors.

    The trimap travels with the image as a Mask, so transforms give both the same geometry
    and nearest-neighbour resizing keeps its values in {1, 2, 3}.
    """
    image = tv_tensors.Image(torch.from_numpy(sample["image"]).permute(2, 0, 1))
    if sample["trimap"] is None:
        return image, None
    return image, tv_tensors.Mask(torch.from_numpy(sample["trimap"])[None])


def model_sample(image: tv_tensors.Image, trimap: tv_tensors.Mask | None, name: str) -> dict:
    """The dict a model is fed: float image in [0, 1], binary mask and trimap (or None)."""
    image = v2.functional.to_dtype(image, torch.float32, scale=True).as_subclass(torch.Tensor)
    if trimap is None:
        return {"image": image, "mask": None, "trimap": None, "name": name}
    return {
        "image": image,  # (3, S, S) float32 in [0, 1]
        "mask": (trimap != BACKGROUND).float().as_subclass(torch.Tensor),  # (1, S, S)
        "trimap": trimap.as_subclass(torch.Tensor),  # (1, S, S) uint8
        "name": name,
    }


def augmentation_steps(image_size: int) -> dict:
    """Each training augmentation on its own, by name; the random flip and greyscale always act."""
    crop, flip, greyscale, brightness = augmentations(image_size).transforms
    flip.p = 1.0  # in training: p = 0.5
    greyscale.p = 1.0  # in training: p = 0.2
    return {"crop and zoom": crop, "horizontal flip": flip, "greyscale": greyscale,
            "brightness": brightness}


def augment_sample(sample: dict, transform=None, image_size: int = 256) -> dict:
    """Apply TRANSFORM jointly to an original-size sample's image and trimap, then resize.

    SAMPLE comes from OxfordPetDataset; the result is shaped like a SimpleOxfordPetDataset sample.
    """
    image, trimap = to_tv_tensors(sample)  # (3, H, W), (1, H, W)
    if transform is not None:
        image, trimap = transform(image, trimap)  # same geometry for both
    image, trimap = SquareResize(image_size)(image, trimap)
    return model_sample(image, trimap, sample["name"])
