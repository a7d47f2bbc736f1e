"""recast/warmstart.py and the kinds' warm starts: a student begins from the teacher."""

import torch
from torch import nn

from blocks.weights import conv_bn_pairs
from recast.plan import make_plan
from recast.walker import walk
from recast.warmstart import can_warm_start, warm_student


def _plan(teacher, target="conv", width=0.5):
    return make_plan(walk(teacher, (1, 3, 32, 32)), target, width)


def _first_conv(block: nn.Module) -> nn.Conv2d:
    """A target block, or a target block followed by the teacher's tail (pooling)."""
    return next(m for m in block.modules() if isinstance(m, nn.Conv2d))


def test_warm_student_slices_the_teachers_channels(vgg_teacher) -> None:
    plan = _plan(vgg_teacher)
    blocks, kept = warm_student(plan)
    for step, block, keep in zip(plan.steps, blocks, kept):
        if step.recast:
            assert len(keep) == step.out_channels
    first_teacher, _ = conv_bn_pairs(plan.steps[0].block.module)[0]
    assert torch.equal(_first_conv(blocks[0]).weight, first_teacher.weight[kept[0]])
    second_teacher, _ = conv_bn_pairs(plan.steps[1].block.module)[0]
    assert torch.equal(_first_conv(blocks[1]).weight, second_teacher.weight[kept[1]][:, kept[0]])
    student = nn.Sequential(*blocks).eval()
    assert student(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_warm_student_at_full_width_is_the_teacher(vgg_teacher) -> None:
    blocks, _ = warm_student(_plan(vgg_teacher, width=1.0))
    x = torch.randn(4, 3, 32, 32)
    assert torch.allclose(nn.Sequential(*blocks).eval()(x), vgg_teacher(x), atol=1e-4)


def test_basic_to_conv_warm_start_is_the_shortcut_path(resnet_teacher) -> None:
    """Each conv starts as relu(shortcut(x)): the basic block minus its residual branch."""
    plan = _plan(resnet_teacher, width=1.0)
    blocks, _ = warm_student(plan)
    assert can_warm_start("basic", "conv")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        for step, student in zip(plan.steps, blocks):
            if step.block.kind == "basic":
                layers = dict(step.block.module.named_modules())
                side = [layers[k] for k in layers if "downsample" in k and
                        isinstance(layers[k], (nn.Conv2d, nn.BatchNorm2d))]
                expected = torch.relu(side[1](side[0](x)) if side else x)
                assert torch.allclose(student.eval()(x), expected, atol=1e-4)
            x = step.block.module(x)
