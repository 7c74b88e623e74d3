"""The figures room under its first name: every name of figures.py, so old imports keep working.

The design report draws with `utils.visualize_comparison` and `utils.plot_training_metrics`,
and the notebooks import their figures from here; the package itself imports figures.py.
"""

from .evaluation.figures import (  # noqa: F401  (names kept importable from utils)
    TRIMAP_COLOURS,
    deepest_pixel,
    markdown_grid,
    models_side_by_side,
    overlay_mask,
    plot_curves,
    plot_lr_finder,
    plot_scores,
    plot_training_metrics,
    prediction_gallery,
    save_figure,
    show_attention,
    show_augmentations,
    show_class_predictions,
    show_images,
    show_samples,
    show_trimap,
    squeeze_mask,
    to_image_array,
    to_mask_array,
    visualize_comparison,
)
