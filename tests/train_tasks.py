"""A tiny classification task and model of compiler.train modules, shared by the plan-method
tests (test_train_ilp, test_train_hessian, test_train_gmm): seeded, 512 samples, 8 inputs."""

from __future__ import annotations

import torch

from compiler.train import QuantInput, QuantLinear, QuantReLU


def tiny_task(hidden: int = 12, classes: int = 4, weight_format: str = "fixed<8,1,RND_CONV,SAT>"):
    """(model 8-hidden-classes, loader of 8 batches of 64, inputs x, labels y); the labels are
    the argmax of a random linear map of x, so a small model learns them well."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 8, generator=g, dtype=torch.float64)
    y = (x @ torch.randn(8, classes, generator=g, dtype=torch.float64)).argmax(1)
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        QuantInput("fixed<8,3,RND_CONV,SAT>"),
        QuantLinear(8, hidden, weight_quant=weight_format, bias_quant="fixed<10,4,RND_CONV,SAT>"),
        QuantReLU(output_quant="ufixed<6,3,RND_CONV,SAT>"),
        QuantLinear(hidden, classes, weight_quant=weight_format, bias_quant="fixed<10,4,RND_CONV,SAT>"))
    return model, [(x[i:i + 64], y[i:i + 64]) for i in range(0, 512, 64)], x, y
