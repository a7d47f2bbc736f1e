"""The README's custom-model example, run as written (on real CIFAR-10)."""

import torch
import torch.nn.functional as F
from torch import nn

import recast


class MyNet(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.relu(self.bn2(self.conv2(x)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def test_readme_custom_model_example(loaders) -> None:
    train_loader, test_loader = loaders
    teacher = MyNet()  # in real use: a trained model, e.g. loaded from a state dict
    result = recast.recast(teacher, target="conv", width=0.5,
                           train_loader=train_loader, test_loader=test_loader,
                           config=recast.RecastConfig(epochs_per_block=0.2,
                                                      finetune_epochs=0.5))
    student = result.student
    assert result.report["student"]["params"] < result.report["teacher"]["params"]
    assert student(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    assert [b["target"] for b in result.report["blocks"] if b["recast"]] == ["conv", "conv"]
