"""All-or-nothing model edits: prune_ changes a model only through an UndoLog, and takes every
change back if the run fails or is interrupted (Ctrl-C), so a model is never left half pruned —
with some layers sparse, or a config that no longer matches its modules."""

from __future__ import annotations

from torch import nn

_ABSENT = object()  # the attribute did not exist: undo deletes it


class UndoLog:
    """Attribute assignments (modules, parameters, config fields) that can be taken back.

    It holds the replaced objects until the run ends: about one extra copy of the weights it
    touched, the price of being able to restore them.
    """

    def __init__(self):
        self._steps: list[tuple[object, str, object]] = []

    def set(self, obj: object, name: str, value: object) -> None:
        self._steps.append((obj, name, getattr(obj, name, _ABSENT)))
        setattr(obj, name, value)

    def swap(self, root: nn.Module, fqn: str, module: nn.Module) -> None:
        """Puts ``module`` at the qualified name ``fqn`` under ``root``."""
        parent, _, child = fqn.rpartition(".")
        self.set(root.get_submodule(parent) if parent else root, child, module)

    def undo(self) -> None:
        """Restores every assignment, latest first."""
        while self._steps:
            obj, name, old = self._steps.pop()
            if old is _ABSENT:
                delattr(obj, name)
            else:
                setattr(obj, name, old)
