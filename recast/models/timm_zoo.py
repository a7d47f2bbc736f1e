"""timm's models by ``timm/NAME``, untrained (``pretrained=False``: nothing downloads).

timm is an optional extra (``pip install 'recast[timm]'``); without it a timm
name is one error line that says so. A user with trained weights loads them
into the model (``--teacher FILE``) as for any other zoo model.
"""

from torch import nn

from ..errors import RecastError

PREFIX = "timm/"


def is_timm_name(name: str) -> bool:
    return name.startswith(PREFIX)


def build_timm(name: str, *, num_classes: int, in_channels: int, width: float) -> nn.Module:
    """timm model ``timm/NAME`` with ``num_classes`` outputs and ``in_channels`` inputs."""
    try:
        import timm
    except ImportError:
        raise RecastError(f"{name} needs timm, an optional extra: pip install 'recast[timm]' "
                          f"(or pip install timm)") from None
    if width != 1.0:
        raise ValueError(f"--teacher-width applies to the CIFAR zoo only, not {name}; "
                         f"timm models come at their own widths (pick a smaller variant)")
    model_name = name[len(PREFIX):]
    if model_name not in timm.list_models():
        raise RecastError(f"timm has no model {model_name!r}; `python -c \"import timm; "
                          f"print(timm.list_models('{model_name[:4]}*'))\"` lists close ones")
    return timm.create_model(model_name, pretrained=False, num_classes=num_classes,
                             in_chans=in_channels)
