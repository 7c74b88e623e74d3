"""Looking inside a model: its parameter count, and the shape of a tensor after each layer."""

import torch
from torch import nn


def count_parameters(model: nn.Module) -> int:
    """Return the number of trainable parameters of `model`."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def layer_shapes(model: nn.Module, x, names: list[str]) -> list[tuple[str, tuple[int, ...]]]:
    """Output shape of each named submodule of `model` in one forward pass of `x` (eval mode)."""
    modules = dict(model.named_modules())
    unknown = [name for name in names if name not in modules]
    if unknown:
        raise ValueError(f"{model.__class__.__name__} has no submodule named {unknown}")
    shapes = {}

    def remember(name):
        def hook(module, inputs, output):
            shapes[name] = tuple(output.shape)
        return hook

    handles = [modules[name].register_forward_hook(remember(name)) for name in names]
    was_training = model.training
    model.eval()  # BatchNorm must not update its running statistics here
    try:
        with torch.no_grad():
            model(x)
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return [(name, shapes[name]) for name in names]
