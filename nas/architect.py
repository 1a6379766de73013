"""The DARTS architect: updates architecture parameters on validation data.

First order treats the current weights as optimal: ``grad_alpha L_val(w, alpha)``.  Second
order (DARTS' unrolled step) looks one SGD step ahead, ``w' = w - xi grad_w L_train(w)``, and
corrects the gradient with a finite-difference Hessian-vector product:
``grad_alpha L_val(w', alpha) - xi (grad_alpha L_train(w+) - grad_alpha L_train(w-)) / 2 eps``
with ``w+- = w +- eps grad_w' L_val``.

The architecture loss is ``arch_loss(val_loss, expected_energy())``: the penalty sees the
real validation cross-entropy, so forms that multiply it (FBNet's ``CE * a * log(E) ** b``)
work as well as additive ones.  Without ``arch_loss`` it is the validation loss alone.

The first-order step differentiates with the network's weights frozen (``requires_grad``
off for the forward and backward): DARTS discards the weight gradients of this step anyway,
and not computing them is most of its backward (the alpha gradients are bit-identical).
A loss function may return ``(loss, logits)``; the step then keeps the validation logits
(:attr:`Architect.val_logits`), so the search can report validation accuracy without a second
forward that would feed the validation batch to BatchNorm and the quantizers again.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from core.errors import HwcostError

#: ``loss_fn(model, x, y)`` -> the loss, or ``(loss, logits)``
LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor],
                  torch.Tensor | tuple[torch.Tensor, torch.Tensor]]
#: ``arch_loss(val_loss, expected_energy)`` -> the loss the architecture step minimises
ArchLoss = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]


class Architect:
    def __init__(self, model: nn.Module, loss_fn: LossFn, arch_optimizer: torch.optim.Optimizer,
                 order: str = "first", w_momentum: float = 0.9, w_weight_decay: float = 3e-4,
                 arch_loss: ArchLoss | None = None,
                 expected_energy: Callable[[], torch.Tensor] | None = None):
        if order not in ("first", "second"):
            raise HwcostError(f"unknown architect order {order!r}; expected first or second")
        self.model = model
        self.loss_fn = loss_fn
        self.optimizer = arch_optimizer
        self.order = order
        self.w_momentum = w_momentum
        self.w_weight_decay = w_weight_decay
        self.arch_loss = arch_loss
        self.expected_energy = expected_energy
        self._virtual = copy.deepcopy(model) if order == "second" else None
        #: the logits of the last validation forward (when the loss function gives them)
        self.val_logits: torch.Tensor | None = None

    def _loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
              validation: bool = False) -> torch.Tensor:
        out = self.loss_fn(model, x, y)
        if isinstance(out, tuple):
            out, logits = out
            if validation:
                self.val_logits = logits.detach()
        return out

    def _penalised(self, loss: torch.Tensor) -> torch.Tensor:
        if self.arch_loss is None:
            return loss
        energy = self.expected_energy() if self.expected_energy is not None else None
        return self.arch_loss(loss, energy)

    def step(self, x_train, y_train, x_val, y_val, lr: float,
             w_optimizer: torch.optim.Optimizer) -> torch.Tensor:
        """One architecture update; returns the validation loss (without the penalty)."""
        self.optimizer.zero_grad()
        self.val_logits = None
        if self.order == "first":
            with frozen(self.model.weights()):
                val_loss = self._loss(self.model, x_val, y_val, validation=True)
                if not torch.isfinite(val_loss):
                    raise FloatingPointError("validation loss is not finite")
                self._penalised(val_loss).backward()
        else:
            val_loss = self._unrolled_backward(x_train, y_train, x_val, y_val, lr, w_optimizer)
            if not torch.isfinite(val_loss):
                raise FloatingPointError("validation loss is not finite")
        self.optimizer.step()
        return val_loss.detach()

    # ------------------------------------------------------------------ second order
    def _virtual_step(self, x, y, lr: float, w_optimizer: torch.optim.Optimizer) -> None:
        loss = self._loss(self.model, x, y)
        weights = list(self.model.weights())
        grads = torch.autograd.grad(loss, weights, allow_unused=True)
        with torch.no_grad():
            for w, vw, g in zip(weights, self._virtual.weights(), grads, strict=True):
                g = torch.zeros_like(w) if g is None else g
                buf = w_optimizer.state.get(w, {}).get("momentum_buffer")
                m = buf * self.w_momentum if buf is not None else torch.zeros_like(w)
                vw.copy_(w - lr * (m + g + self.w_weight_decay * w))
            for a, va in zip(self.model.alphas(), self._virtual.alphas(), strict=True):
                va.copy_(a)

    def _unrolled_backward(self, x_train, y_train, x_val, y_val, lr, w_optimizer):
        self._virtual_step(x_train, y_train, lr, w_optimizer)
        val_loss = self._loss(self._virtual, x_val, y_val, validation=True)
        v_alphas = list(self._virtual.alphas())
        v_weights = list(self._virtual.weights())
        grads = torch.autograd.grad(self._penalised(val_loss), v_alphas + v_weights,
                                    allow_unused=True)
        d_alpha = [torch.zeros_like(a) if g is None else g
                   for a, g in zip(v_alphas, grads[:len(v_alphas)], strict=True)]
        d_w = [torch.zeros_like(w) if g is None else g
               for w, g in zip(v_weights, grads[len(v_alphas):], strict=True)]
        hessian = self._hessian_vector(d_w, x_train, y_train)
        with torch.no_grad():
            for a, da, h in zip(self.model.alphas(), d_alpha, hessian, strict=True):
                a.grad = da - lr * h
        return val_loss

    def _hessian_vector(self, d_w, x, y):
        norm = torch.cat([g.reshape(-1) for g in d_w]).norm()
        eps = 0.01 / max(float(norm), 1e-12)
        weights = list(self.model.weights())
        alphas = list(self.model.alphas())

        def alpha_grads(sign: float):
            with torch.no_grad():
                for w, g in zip(weights, d_w, strict=True):
                    w.add_(g, alpha=sign * eps)
            loss = self._loss(self.model, x, y)
            return [torch.zeros_like(a) if g is None else g
                    for a, g in zip(alphas, torch.autograd.grad(loss, alphas,
                                                                allow_unused=True),
                                    strict=True)]

        plus = alpha_grads(+1.0)
        minus = alpha_grads(-2.0)
        with torch.no_grad():
            for w, g in zip(weights, d_w, strict=True):
                w.add_(g, alpha=eps)       # back to w
        return [(p - m) / (2 * eps) for p, m in zip(plus, minus, strict=True)]


@contextmanager
def frozen(params) -> Iterator[None]:
    """``requires_grad`` off for ``params`` inside the block (restored after, also on error),
    so a backward through them computes no gradient for them."""
    params = [p for p in params if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)
