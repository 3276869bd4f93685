"""Train the example model and save its state_dict to checkpoints/digits_mlp.pt (seconds on CPU).

Run from this folder: ``python train.py``.
"""

from pathlib import Path

import torch
from mynet import DigitsMLP

import robustbench_lite as rbl


def main() -> None:
    torch.manual_seed(0)
    x, y = rbl.load_data("digits", split="train")
    net = DigitsMLP()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(60):
        for idx in torch.randperm(len(y)).split(64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
    x_te, y_te = rbl.load_data("digits", split="test")
    with torch.no_grad():
        acc = (net(x_te).argmax(1) == y_te).float().mean().item()
    out = Path(__file__).parent / "checkpoints" / "digits_mlp.pt"
    out.parent.mkdir(exist_ok=True)
    torch.save(net.state_dict(), out)
    print(f"test accuracy {acc:.4f}; saved {out}")


if __name__ == "__main__":
    main()
