"""The drawing code behind the offline sample dataset: toy pet photos and their trimaps.

This subpackage only generates the synthetic pictures of `petseg_lib.data.sample`; it is not part
of the course, and a learner need not read it to follow the course. `make_sample_image(rng,
breed)` returns one photo and its trimap; `shapes` draws the pet's outline, `fur` paints its
coat and face, `scenes` the background and clutter, `paint` holds the tools they share, and
`picture` puts a photo together.
"""

from .picture import make_sample_image

__all__ = ["make_sample_image"]
