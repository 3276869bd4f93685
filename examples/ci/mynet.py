"""The user's model: a small MLP for 8x8 digits (inputs (N, 1, 8, 8) in [0, 1], 10 classes)."""

from torch import nn


class DigitsMLP(nn.Module):
    """64-48-10 ReLU network."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 10))

    def forward(self, x):  # noqa: ANN001, ANN201 - a user's plain model
        return self.layers(x)
