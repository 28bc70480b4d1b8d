"""The tasks of issue 16's plan benchmark (`bench/plan_methods.py`): data, float models, and the
same models built from compiler.train's quantized modules.

Three tasks, each a fixed data split, a float model and its training settings:

* ``jet``: the jet tagger's toy jets (examples/jet_tagger; the held-out 1000 jets are its
  committed ``data.npz``), the 16-32-16-5 ReLU MLP of examples/small_tagger.py, its input format
  ``fixed<12,5,RND_CONV,SAT>`` and its training settings (25 epochs float, 10 quantized), so the
  uniform 6-bit row is comparable with the precision-scheme examples (bench/RESULTS.md, issue 6);
* ``digits_mlp``: sklearn's bundled 8x8 digits (1,797 images, 10 classes; pixels 0..16 divided by
  16, exact in ``ufixed<5,1>``), 80/20 stratified split with a fixed seed, a 64-32-16-10 MLP;
* ``digits_cnn``: the same data as 1x8x8 images, Conv2d(1,4,3) ReLU MaxPool2d(2) Flatten
  Linear(36,10): 1,296 + 360 constant products in the fully parallel RTL.

Every float model is an ``nn.Sequential`` of Linear / Conv2d / ReLU / MaxPool2d / Flatten;
`quantized` builds the same sequence from QuantInput, QuantLinear, QuantConv2d and QuantReLU with
the float weights copied in, given the weight quantizers per layer. What every method shares
comes from the float model by `base_formats`: biases ``fixed<10,I>`` per layer (I from the
largest |b|), each ReLU output ``ufixed<8,I>`` (I from its training-set maximum, plus one bit of
margin), layer outputs exact; the input format is the task's. So methods differ only in their
weights (and whatever else a method chooses to learn).
"""

from __future__ import annotations

import copy
import hashlib
import sys
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "examples"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from compiler.errors import UserError  # noqa: E402
from compiler.train import QuantConv2d, QuantInput, QuantLinear, QuantReLU  # noqa: E402
from plan_tools import Format, signed_int_bits, unsigned_int_bits  # noqa: E402

BIAS_WIDTH, ACTIVATION_WIDTH = 10, 8  # as examples/small_tagger.py's base plan
DIGITS_SPLIT_SEED, DIGITS_TEST_SHARE = 0, 0.2
LAYER_TYPES = (nn.Linear, nn.Conv2d)


@dataclass
class Task:
    """A benchmark task: the data split, the float model's shape and the training settings."""

    name: str
    description: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    input_format: str  # QuantInput's format: holds every input of the data exactly (or as the example does)
    build: Callable[[], nn.Sequential]  # () -> a fresh float nn.Sequential (initialised from torch's current seed)
    pretrain_epochs: int
    fine_tune_epochs: int
    lr: float = 3e-3
    fine_tune_lr: float = 1e-3
    batch_size: int = 256
    options: dict = field(default_factory=dict)  # what `load_task` was given
    cache_dir: Path | None = None  # where `pretrain` keeps the float models it trains (None: nowhere)

    def example_input(self) -> torch.Tensor:
        """One test input, the batch `export` traces and checks."""
        return torch.from_numpy(self.x_test[:1])


def _jet_data():
    import small_tagger  # imports examples/jet_tagger/train.py and checks its data.npz

    return small_tagger.jet_data()


def _mlp(widths: tuple[int, ...]) -> nn.Sequential:
    modules = OrderedDict()
    for index in range(1, len(widths)):
        modules[f"fc{index}"] = nn.Linear(widths[index - 1], widths[index])
        if index < len(widths) - 1:
            modules[f"relu{index}"] = nn.ReLU()
    return nn.Sequential(modules)


def _digits_cnn(channels: int) -> nn.Sequential:
    return nn.Sequential(OrderedDict(
        conv1=nn.Conv2d(1, channels, 3), relu1=nn.ReLU(), pool1=nn.MaxPool2d(2), flatten=nn.Flatten(),
        fc1=nn.Linear(channels * 3 * 3, 10)))


def _digits(images: bool):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)  # pixels 0..16: multiples of 1/16 in [0, 1]
    x = x[:, None] if images else x.reshape(len(x), -1)
    y = data.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=DIGITS_TEST_SHARE, stratify=y,
                                                        random_state=DIGITS_SPLIT_SEED)
    return x_train, y_train, x_test, y_test


def _hidden(options: dict, default: tuple[int, ...]) -> tuple[int, ...]:
    hidden = tuple(options.get("hidden", default))
    if not hidden or min(hidden) < 1:
        raise UserError(f"hidden: expected positive layer widths such as (32, 16), got {hidden!r}")
    return hidden


def load_task(name: str, **options) -> Task:
    """The task ``name`` (one of `TASKS`). ``options``: ``hidden`` (the MLPs' hidden widths) and
    ``channels`` (the CNN's), for smaller settings in tests; the benchmark uses the defaults."""
    if name not in TASKS:
        raise UserError(f"task: unknown task {name!r}; choose from {', '.join(TASKS)}")
    return TASKS[name](options)


def _jet_task(options: dict) -> Task:
    import small_tagger

    hidden = _hidden(options, small_tagger.HIDDEN)
    x_train, y_train, x_test, y_test = _jet_data()
    widths = (x_train.shape[1], *hidden, 5)
    return Task("jet", f"jet tagger toy jets, {'-'.join(map(str, widths))} MLP", x_train, y_train, x_test, y_test,
                small_tagger.INPUT_FORMAT, lambda: _mlp(widths), small_tagger.PRETRAIN_EPOCHS,
                small_tagger.FINE_TUNE_EPOCHS, fine_tune_lr=small_tagger.FINE_TUNE_LR, options=options)


def _digits_mlp_task(options: dict) -> Task:
    hidden = _hidden(options, (32, 16))
    widths = (64, *hidden, 10)
    return Task("digits_mlp", f"sklearn digits, {'-'.join(map(str, widths))} MLP", *_digits(images=False),
                "ufixed<5,1,RND_CONV,SAT>", lambda: _mlp(widths), 60, 30, batch_size=64, options=options)


def _digits_cnn_task(options: dict) -> Task:
    channels = int(options.get("channels", 4))
    return Task("digits_cnn", f"sklearn digits, Conv2d(1,{channels},3) ReLU MaxPool2d(2) Linear({9 * channels},10)",
                *_digits(images=True), "ufixed<5,1,RND_CONV,SAT>", lambda: _digits_cnn(channels), 60, 30,
                batch_size=64, options=options)


TASKS = {"jet": _jet_task, "digits_mlp": _digits_mlp_task, "digits_cnn": _digits_cnn_task}


# --- training --------------------------------------------------------------------------------


def train(model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int, lr: float, seed: int, batch_size: int = 256,
          penalty=None) -> nn.Module:
    """Adam with a cosine schedule on the cross-entropy (+ ``penalty()`` each step when given),
    batches drawn from a generator seeded with ``seed``: examples/jet_tagger/train.py's loop."""
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(epochs, 1))
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(xt), generator=generator).split(batch_size):
            optimiser.zero_grad()
            loss = nn.functional.cross_entropy(model(xt[batch]), yt[batch])
            if penalty is not None:
                loss = loss + penalty()
            loss.backward()
            optimiser.step()
        schedule.step()
    return model.eval()


def _cache_key(task: Task, seed: int, epochs: int) -> str:
    h = hashlib.sha256()
    h.update(repr((task.name, str(task.build()), seed, epochs, task.lr, task.batch_size)).encode())
    for array in (task.x_train, task.y_train):
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()[:20]


def pretrain(task: Task, seed: int, epochs: int | None = None) -> nn.Sequential:
    """The float model every method starts from: initialised and trained from ``seed``
    (one thread), cached in the task's ``cache_dir`` by the task, its data, the model's shape and the
    settings (so a method that trains more float models, as an ensemble of teachers, finds them there too)."""
    torch.set_num_threads(1)
    epochs = task.pretrain_epochs if epochs is None else epochs
    path = None if task.cache_dir is None else Path(task.cache_dir) / f"{task.name}-{_cache_key(task, seed, epochs)}.pt"
    torch.manual_seed(seed)
    model = task.build()
    if path is not None and path.is_file():
        model.load_state_dict(torch.load(path))
        return model.eval()
    train(model, task.x_train, task.y_train, epochs, task.lr, seed, task.batch_size)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(model.state_dict(), tmp)
        tmp.replace(path)
    return model.eval()


def fine_tune(task: Task, model: nn.Module, seed: int, epochs: int | None = None, penalty=None) -> nn.Module:
    """Quantization-aware training of ``model`` (quantized modules) at the task's fine-tuning settings."""
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    epochs = task.fine_tune_epochs if epochs is None else epochs
    return train(model, task.x_train, task.y_train, epochs, task.fine_tune_lr, seed, task.batch_size, penalty)


# --- formats and the quantized model -------------------------------------------------------------


def layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The layers with weights, in order: (name, Linear/Conv2d or their quantized forms)."""
    return [(name, m) for name, m in model.named_children() if isinstance(m, LAYER_TYPES)]


def signed_format(max_abs: float, width: int) -> str:
    """``fixed<width,I,RND_CONV,SAT>`` with the fewest I that holds +-``max_abs`` (none saturate)."""
    return str(Format(width, signed_int_bits(max_abs, width), True))


@dataclass(frozen=True)
class BaseFormats:
    """The formats every method shares: the input's, each layer's bias, each ReLU's output."""

    input: str
    biases: tuple[str, ...]
    activations: tuple[str, ...]


def base_formats(task: Task, model: nn.Sequential) -> BaseFormats:
    """Biases ``fixed<10,I>`` from each layer's largest |b|; ReLU outputs ``ufixed<8,I>`` from their
    training-set maximum in the float model, plus one bit of margin (examples/small_tagger.py's rules)."""
    biases = tuple(signed_format(m.bias.detach().abs().max().item(), BIAS_WIDTH) for _, m in layers(model))
    activations = []
    with torch.no_grad():
        x = torch.from_numpy(task.x_train)
        for module in model:
            x = module(x)
            if isinstance(module, nn.ReLU):
                int_bits = unsigned_int_bits(x.max().item(), ACTIVATION_WIDTH, margin_bits=1)
                activations.append(str(Format(ACTIVATION_WIDTH, int_bits, False)))
    return BaseFormats(task.input_format, biases, tuple(activations))


def quantized(model: nn.Sequential, formats: BaseFormats, weight_quants: list, bias_quants: list | None = None,
              activation_quants: list | None = None) -> nn.Sequential:
    """``model`` rebuilt from compiler.train modules with its weights copied: QuantInput(formats.input)
    first, each layer's ``weight_quants[i]`` (a format string or a compiler.train quantizer), biases
    and ReLU outputs from ``formats`` unless ``bias_quants`` / ``activation_quants`` are given."""
    bias_quants = list(formats.biases if bias_quants is None else bias_quants)
    activation_quants = list(formats.activations if activation_quants is None else activation_quants)
    count = len(layers(model))
    relus = sum(isinstance(m, nn.ReLU) for m in model)
    if (len(weight_quants), len(bias_quants), len(activation_quants)) != (count, count, relus):
        raise UserError(f"quantized: {len(weight_quants)} weight, {len(bias_quants)} bias and {len(activation_quants)} "
                         f"activation quantizers for a model of {count} layers and {relus} ReLUs")
    modules = OrderedDict(input=QuantInput(formats.input))
    layer_index = relu_index = 0
    for name, module in model.named_children():
        if isinstance(module, nn.Linear):
            q = QuantLinear(module.in_features, module.out_features, weight_quant=weight_quants[layer_index],
                            bias_quant=bias_quants[layer_index])
        elif isinstance(module, nn.Conv2d):
            q = QuantConv2d(module.in_channels, module.out_channels, module.kernel_size, module.stride,
                            module.padding, module.dilation, module.groups,
                            weight_quant=weight_quants[layer_index], bias_quant=bias_quants[layer_index])
        elif isinstance(module, nn.ReLU):
            modules[name] = QuantReLU(output_quant=activation_quants[relu_index])
            relu_index += 1
            continue
        else:
            modules[name] = copy.deepcopy(module)
            continue
        with torch.no_grad():
            q.weight.copy_(module.weight)
            q.bias.copy_(module.bias)
        modules[name] = q
        layer_index += 1
    return nn.Sequential(modules)


def float_accuracy(task: Task, model: nn.Module) -> float:
    """Test accuracy of a float model in torch (the quantized ones are measured on the emulator)."""
    with torch.no_grad():
        return float((model(torch.from_numpy(task.x_test)).argmax(1).numpy() == task.y_test).mean())


def smaller(task: Task, **changes) -> Task:
    """``task`` with fields changed (fewer epochs, say), for quick runs."""
    return replace(task, **changes)
