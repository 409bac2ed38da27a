"""Layers whose packed weight takes another form on a GPU (QuantLinear, SparseLinear): the
canonical format on the CPU and on disk, the CUDA kernels' form on a GPU. The moves, state_dict
and load_state_dict are shared here; each layer says what its forms are."""

from __future__ import annotations

import torch
from torch import nn


def holds_device_form(device: torch.device) -> bool:
    """Whether a layer on ``device`` keeps its weight in the device form (CUDA)."""
    return device.type == "cuda"


class DeviceLayoutModule(nn.Module):
    """Subclasses set ``_weight_name`` (the weight buffer) and give ``_is_device_form(t)``,
    ``_device_form(w, scales)`` (canonical → device form, read with the scales it is stored
    beside; on w's device) and ``_canonical_form(w)`` (the inverse, on w's device)."""

    _weight_name: str

    def _is_device_form(self, t: torch.Tensor) -> bool:
        raise NotImplementedError

    def _device_form(self, w: torch.Tensor, scales: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def _canonical_form(self, w: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _device_layout(self) -> bool:
        return self._is_device_form(self._buffers[self._weight_name])

    def canonical_weight(self) -> torch.Tensor:
        """The weight buffer in the canonical format, on the layer's device (a repacked copy when
        the layer is on a GPU)."""
        w = self._buffers[self._weight_name]
        return self._canonical_form(w) if self._is_device_form(w) else w

    def _apply(self, fn, recurse=True):
        # Packed buffers follow the device only: model.to(torch.bfloat16) or .half() must not
        # round the float32 scales and bias (the kernels read them as stored), nor a 16-bit
        # weight's form. The weight changes form when it moves onto or off a GPU.
        for name, t in self._buffers.items():
            if t is None:
                continue
            new = fn(t)
            if new.dtype != t.dtype:
                new = t.to(new.device)
            if name == self._weight_name:
                on_device = holds_device_form(new.device)
                if on_device != self._is_device_form(new):
                    new = (self._device_form(new, self._buffers.get("scales")) if on_device
                           else self._canonical_form(new))
            self._buffers[name] = new
        return self

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if self._device_layout():
            destination[prefix + self._weight_name] = self.canonical_weight()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        key = prefix + self._weight_name
        if (self._device_layout() and key in state_dict
                and not self._is_device_form(state_dict[key])):
            w = state_dict[key].to(self._buffers[self._weight_name].device)
            # read with the scales loaded beside it
            state_dict[key] = self._device_form(
                w, state_dict.get(prefix + "scales", self._buffers.get("scales")))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
