"""The training contract between compressed students and the trainer: give the optimizer
``trainable_parameters(model)`` and call ``after_step(model)`` after every optimizer step.

Constraints live on the modules they constrain (attribute ``_student_constraints``), so they
travel with the module through swaps and deep copies, and ``after_step`` finds them by walking
``model.modules()``; on a model without any it walks and does nothing else.
"""

from __future__ import annotations

import weakref

import torch
from torch import nn

_CONSTRAINTS = "_student_constraints"


def after_step(model: nn.Module) -> None:
    """Re-imposes every constraint registered on ``model``'s modules; call it after each
    optimizer step. A no-op (one walk over the modules) for a model without constraints."""
    for m in model.modules():
        for c in m.__dict__.get(_CONSTRAINTS, ()):
            c.apply(m)


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters the optimizer should train: every parameter with requires_grad, once each
    (tied weights are one parameter).

    Fake-quant scales and zero points are buffers, never among them: they are fixed at
    construction because pack_fake_quant must pack the codes on the very grid the student
    trained with. Pruned weights are included; their masks keep the zeros in place. Also
    (re)attaches the masks' gradient hooks, which a deep copy of a student does not carry.
    """
    for m in model.modules():
        for c in m.__dict__.get(_CONSTRAINTS, ()):
            c.attach(m)
    return [p for p in model.parameters() if p.requires_grad]


def add_constraint(module: nn.Module, constraint: "FixedMask") -> None:
    """Registers ``constraint`` on ``module``, replacing one of the same kind."""
    others = []
    for c in module.__dict__.get(_CONSTRAINTS, ()):
        if type(c) is type(constraint):
            c.detach()
        else:
            others.append(c)
    module.__dict__[_CONSTRAINTS] = [*others, constraint]
    constraint.attach(module)


class FixedMask:
    """Keeps the pruned weights (``keep`` False) of a module's ``weight`` at exactly zero.

    Twice: a gradient hook zeroes their gradient, so the optimizer's moments never see them
    and AdamW leaves an exact zero exactly zero (its decay of 0 is 0); and ``apply`` (from
    after_step) zeroes them again, for whatever the hook did not cover — moments gathered
    before it was attached, another optimizer's update, a trainer that writes weights.
    """

    def __init__(self, keep: torch.Tensor):
        self.keep = keep
        self._pruned = ~keep
        self._hooked = None  # weakref to the tensor carrying our hook
        self._handle = None

    def attach(self, module: nn.Module) -> None:
        """Puts the gradient hook on module.weight unless it is already there (a deep copy or a
        replaced parameter has a weight without it)."""
        w = module.weight
        if self._hooked is not None and self._hooked() is w:
            return
        self.detach()
        self._handle = w.register_hook(self._mask_grad)
        self._hooked = weakref.ref(w)

    def detach(self) -> None:
        """Removes the gradient hook."""
        if self._handle is not None:
            self._handle.remove()
        self._handle = self._hooked = None

    def apply(self, module: nn.Module) -> None:
        self.attach(module)
        with torch.no_grad():
            # masked_fill, not a multiply: a pruned weight that became inf or NaN is reset too.
            module.weight.masked_fill_(self._pruned_on(module.weight.device), 0)

    def _mask_grad(self, grad: torch.Tensor) -> torch.Tensor:
        return grad.masked_fill(self._pruned_on(grad.device), 0)

    def _pruned_on(self, device: torch.device) -> torch.Tensor:
        if self._pruned.device != device:  # the model moved after the mask was made
            self.keep, self._pruned = self.keep.to(device), self._pruned.to(device)
        return self._pruned

    # Copies and pickles carry the mask only: hook handles and weak references belong to the
    # original's tensors, and attach() hooks the copy's own weight.
    def __getstate__(self):
        return {"keep": self.keep}

    def __setstate__(self, state):
        self.__init__(state["keep"])


def constraints_of(module: nn.Module) -> tuple:
    """The constraints registered on ``module`` (not its children)."""
    return tuple(module.__dict__.get(_CONSTRAINTS, ()))

