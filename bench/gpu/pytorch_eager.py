#!/usr/bin/env python3
"""PyTorch eager reference for `sweep bench gpu`: the training step of a double-descent network at
CIFAR size, timed the way the Rust side times it, so the two columns of the table compare one step.

The networks are those of agent/workloads/src/models/ (PyTorch's default initialisation):
- preact_resnet18 (preact_resnet.rs): PreAct blocks [2, 2, 2, 2] with k, 2k, 4k, 8k channels, 3x3
  stem without max-pool, BN-ReLU, global average pool, linear head;
- cnn5 (cnn5.rs): four 3x3 convolutions with biases of k, 2k, 4k, 8k channels, each followed by
  BatchNorm and ReLU, 2x2 max pooling after the second and third, global max pooling after the
  fourth, linear head;
- mlp (mlp.rs): one hidden layer of k units with ReLU, linear head.
The step: forward and cross-entropy under bf16 autocast on CUDA (f32 on the CPU), zero_grad,
backward, SGD with momentum 0.9 (not Nesterov), weight decay 5e-4, lr 0.1. Inputs are one static
random batch on the device, channels-last on CUDA for the convolutional networks, with
cudnn.benchmark on. Warmup steps run first; the timed steps sit between two synchronisations.

Prints one JSON object per width on stdout and nothing else; errors go to stderr. `sweep bench gpu`
pipes this file to the interpreter on stdin, so a shipped binary carries it; it also runs alone:

    python3 bench/gpu/pytorch_eager.py --arch preact_resnet18 --widths 1,2,4 --batch 128 --steps 50 \
        --warmup 10 --device cuda
"""

import argparse
import json
import sys
import time

IN_CHANNELS, IMAGE_SIZE, CLASSES = 3, 32, 10
LR, MOMENTUM, WEIGHT_DECAY = 0.1, 0.9, 5e-4
BLOCKS_PER_STAGE = (2, 2, 2, 2)
STAGE_WIDTHS = (1, 2, 4, 8)
STAGE_STRIDES = (1, 2, 2, 2)
ARCHS = ("preact_resnet18", "cnn5", "mlp")


def widths(text):
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected widths >= 1 separated by commas, got {text!r}")
    return values


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", choices=ARCHS, default="preact_resnet18")
    p.add_argument("--widths", type=widths, default=[1, 2, 4, 8, 16, 32, 64])
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    args = p.parse_args()
    if args.batch < 1 or args.steps < 1 or args.warmup < 0:
        p.error("expected --batch >= 1, --steps >= 1 and --warmup >= 0")
    return args


def build_model(torch, arch, width):
    return {"preact_resnet18": preact_resnet18, "cnn5": cnn5, "mlp": mlp}[arch](torch, width)


def cnn5(torch, k):
    nn = torch.nn
    layers, c_in = [], IN_CHANNELS
    for i, mult in enumerate(STAGE_WIDTHS):
        layers += [nn.Conv2d(c_in, mult * k, 3, padding=1), nn.BatchNorm2d(mult * k), nn.ReLU()]
        if i in (1, 2):
            layers.append(nn.MaxPool2d(2))
        c_in = mult * k
    layers += [nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(c_in, CLASSES)]
    return nn.Sequential(*layers)


def mlp(torch, k):
    nn = torch.nn
    inputs = IN_CHANNELS * IMAGE_SIZE * IMAGE_SIZE
    return nn.Sequential(nn.Flatten(), nn.Linear(inputs, k), nn.ReLU(), nn.Linear(k, CLASSES))


def preact_resnet18(torch, width):
    nn, F = torch.nn, torch.nn.functional

    class PreActBlock(nn.Module):
        def __init__(self, c_in, c_out, stride):
            super().__init__()
            self.bn1 = nn.BatchNorm2d(c_in)
            self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(c_out)
            self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
            self.shortcut = None
            if stride != 1 or c_in != c_out:
                self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False))

        def forward(self, x):
            pre = F.relu(self.bn1(x))
            # The projection reads the pre-activated input, as in the reference code.
            shortcut = self.shortcut(pre) if self.shortcut is not None else x
            return self.conv2(F.relu(self.bn2(self.conv1(pre)))) + shortcut

    class PreActResNet18(nn.Module):
        def __init__(self, k):
            super().__init__()
            self.conv1 = nn.Conv2d(IN_CHANNELS, k, 3, stride=1, padding=1, bias=False)
            c_in = k
            # layer1 .. layer4, named as the Rust network's variables are.
            for stage, (count, mult, stride) in enumerate(zip(BLOCKS_PER_STAGE, STAGE_WIDTHS, STAGE_STRIDES)):
                blocks = []
                for i in range(count):
                    blocks.append(PreActBlock(c_in, mult * k, stride if i == 0 else 1))
                    c_in = mult * k
                setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
            self.bn = nn.BatchNorm2d(c_in)
            self.linear = nn.Linear(c_in, CLASSES)

        def forward(self, x):
            h = self.conv1(x)
            for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
                h = layer(h)
            h = F.relu(self.bn(h))
            return self.linear(F.adaptive_avg_pool2d(h, 1).flatten(1))

    return PreActResNet18(width)


def measure(torch, width, args, device):
    cuda = device.type == "cuda"
    model = build_model(torch, args.arch, width).to(device)
    x = torch.randn(args.batch, IN_CHANNELS, IMAGE_SIZE, IMAGE_SIZE, device=device)
    y = torch.randint(0, CLASSES, (args.batch,), device=device)
    if cuda and args.arch != "mlp":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=LR, momentum=MOMENTUM, nesterov=False, weight_decay=WEIGHT_DECAY
    )
    model.train()

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def synchronize():
        if cuda:
            torch.cuda.synchronize(device)

    for _ in range(args.warmup):
        step()
    synchronize()
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    synchronize()
    seconds = time.perf_counter() - started
    return {
        "arch": args.arch,
        "width": width,
        "samples_per_second": args.batch * args.steps / max(seconds, 1e-9),
        "seconds": seconds,
        "parameters": sum(p.numel() for p in model.parameters()),
        "batch": args.batch,
        "steps": args.steps,
        "warmup": args.warmup,
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if cuda else "cpu",
        "precision": "bf16" if cuda else "fp32",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def main():
    args = parse_args()
    try:
        import torch
    except ImportError as e:
        print(f"torch is not importable by {sys.executable}: {e}", file=sys.stderr)
        return 2
    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"torch {torch.__version__} under {sys.executable} sees no CUDA device", file=sys.stderr)
        return 1
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda", 0) if use_cuda else torch.device("cpu")
    torch.backends.cudnn.benchmark = True
    for width in args.widths:
        try:
            row = measure(torch, width, args, device)
        except RuntimeError as e:  # CUDA out of memory among them: one width, not the whole run
            row = {"width": width, "error": str(e).strip().splitlines()[0] if str(e).strip() else repr(e)}
        print(json.dumps(row), flush=True)
        if use_cuda:
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
