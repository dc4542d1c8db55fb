"""Packing of solver states: a tensor or a (nested) tuple of tensors <-> one flat ``[B, N]`` tensor.

Every solver in :mod:`idplan.solvers` works on a single batched matrix ``[B, N]``; a state such as an
LSTM's ``(h, c)`` pair is packed into it and unpacked for the user's callable. All tensors of a state
share the leading batch axis ``B``, one floating dtype and one device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

State = torch.Tensor | tuple | list
"""A solver state: a tensor ``[B, ...]`` or a (nested) tuple or list of such tensors."""


@dataclass(frozen=True)
class StateSpec:
    """How a state is laid out: its nesting, the shape of each leaf, its batch size, dtype and device."""

    structure: Any  # None for a leaf, else a tuple of child structures (with the container type)
    shapes: tuple[torch.Size, ...]
    batch: int
    dtype: torch.dtype
    device: torch.device

    def rows(self, count: int) -> StateSpec:
        """The layout of ``count`` of this state's samples (a sub-batch)."""
        shapes = tuple(torch.Size((count, *shape[1:])) for shape in self.shapes)
        return StateSpec(self.structure, shapes, count, self.dtype, self.device)


def _leaves(state: State, name: str) -> tuple[list[torch.Tensor], Any]:
    if isinstance(state, torch.Tensor):
        return [state], None
    if isinstance(state, (tuple, list)) and len(state) > 0:
        leaves: list[torch.Tensor] = []
        children = []
        for item in state:
            sub, structure = _leaves(item, name)
            leaves.extend(sub)
            children.append(structure)
        return leaves, (type(state), tuple(children))
    raise ValueError(f"{name} must be a tensor or a non-empty tuple/list of tensors, got {type(state).__name__}")


def state_spec(state: State, name: str = "z0") -> StateSpec:
    """Describe ``state`` and check that it is a valid batched solver state.

    Raises:
        ValueError: if a leaf is not a floating tensor with a leading batch axis, or the leaves
            disagree on batch size, dtype or device.
    """
    leaves, structure = _leaves(state, name)
    first = leaves[0]
    for leaf in leaves:
        if leaf.dim() < 1:
            raise ValueError(f"{name}: every tensor needs a leading batch axis, got a 0-d tensor")
        if leaf.shape[0] == 0:
            raise ValueError(f"{name}: empty batch (leading axis of size 0) in a tensor of shape {tuple(leaf.shape)}")
        if not leaf.is_floating_point():
            raise ValueError(f"{name}: solver states must be floating point, got dtype {leaf.dtype}")
        if leaf.shape[0] != first.shape[0]:
            raise ValueError(f"{name}: all tensors must share the batch size; got {first.shape[0]} and {leaf.shape[0]}")
        if leaf.dtype != first.dtype or leaf.device != first.device:
            raise ValueError(
                f"{name}: all tensors must share dtype and device; got {first.dtype}/{first.device} "
                f"and {leaf.dtype}/{leaf.device}"
            )
    return StateSpec(
        structure=structure,
        shapes=tuple(leaf.shape for leaf in leaves),
        batch=int(first.shape[0]),
        dtype=first.dtype,
        device=first.device,
    )


def pack(state: State, spec: StateSpec, name: str = "state") -> torch.Tensor:
    """Flatten ``state`` (laid out as ``spec``) into a ``[B, N]`` tensor.

    Raises:
        ValueError: if ``state`` does not have the structure and shapes that ``spec`` describes.
    """
    leaves, structure = _leaves(state, name)
    if structure != spec.structure or len(leaves) != len(spec.shapes):
        raise ValueError(
            f"{name} has a different structure from z0: got {_describe(leaves, structure)}, "
            f"expected {_describe_spec(spec)}; the function must return a state shaped like z0"
        )
    for leaf, shape in zip(leaves, spec.shapes):
        if leaf.shape != shape:
            raise ValueError(
                f"{name} has shape {tuple(leaf.shape)} where z0 has {tuple(shape)}; "
                "the function must return a state shaped like z0"
            )
    if len(leaves) == 1:
        return leaves[0].reshape(spec.batch, -1)
    return torch.cat([leaf.reshape(spec.batch, -1) for leaf in leaves], dim=1)


def unpack(flat: torch.Tensor, spec: StateSpec) -> State:
    """Inverse of :func:`pack`: split a ``[B, N]`` tensor into the structure of ``spec``."""
    sizes = [int(torch.Size(shape[1:]).numel()) for shape in spec.shapes]
    pieces = (
        [flat.reshape(spec.shapes[0])]
        if len(sizes) == 1
        else [part.reshape(shape) for part, shape in zip(torch.split(flat, sizes, dim=1), spec.shapes)]
    )
    iterator = iter(pieces)
    return _rebuild(spec.structure, iterator)


def select_rows(tree: Any, rows: torch.Tensor, batch: int) -> Any:
    """``tree`` (``args``: tensors, tuples, lists, dicts of them, anything else) with every tensor whose
    leading axis has the batch size ``batch`` cut to the samples ``rows`` (``[b]`` indices)."""
    if isinstance(tree, torch.Tensor):
        return tree[rows] if tree.dim() >= 1 and tree.shape[0] == batch else tree
    if isinstance(tree, tuple) and hasattr(tree, "_fields"):  # a namedtuple
        return type(tree)(*(select_rows(item, rows, batch) for item in tree))
    if isinstance(tree, (tuple, list)):
        return type(tree)(select_rows(item, rows, batch) for item in tree)
    if isinstance(tree, dict):
        return {key: select_rows(value, rows, batch) for key, value in tree.items()}
    return tree


def _rebuild(structure: Any, pieces) -> State:
    if structure is None:
        return next(pieces)
    container, children = structure
    return container(_rebuild(child, pieces) for child in children)


def _describe(leaves: list[torch.Tensor], structure: Any) -> str:
    if structure is None:
        return f"a tensor of shape {tuple(leaves[0].shape)}"
    return f"a {structure[0].__name__} of {len(leaves)} tensors"


def _describe_spec(spec: StateSpec) -> str:
    if spec.structure is None:
        return f"a tensor of shape {tuple(spec.shapes[0])}"
    return f"a {spec.structure[0].__name__} of {len(spec.shapes)} tensors"
