"""Griffe extension: the Sphinx roles of the docstrings (``:class:`Solution```, ``:func:`~.loop.fit```,
``:mod:`.contraction```, ...) rendered as code, linked to the API reference where the object is in it;
and reST's ``text::`` before an indented block shown as ``text:`` (the block is a Markdown code block).

The docstrings keep the roles (they read well in ``help()`` and in the source); mkdocstrings does not
understand them and would print ``:class:`` before each name. Each role's target is resolved from the
scope of the object whose docstring holds it (imports included, as Python resolves the name): a
leading ``.`` is relative to the module's package, ``~`` shows only the last component. The link is
an optional autoref: a target the reference does not render (a private helper, a module) is shown as
code without a link, never as a broken reference.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|exc|obj|const):`(?P<tilde>~?)(?P<target>[^`<>\s]+)`")
LITERAL_MARKER = re.compile(r"(?<=\S)::$", re.MULTILINE)  # reST's "text::" before an indented block


def _lookup(package: griffe.Module, path: str) -> Any:
    """The object at an absolute dotted ``path`` in ``package``'s tree, or ``None``."""
    head, _, rest = path.partition(".")
    if head != package.name:
        return None
    try:
        return package[rest] if rest else package
    except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None


def _canonical(obj: Any) -> str:
    try:
        return obj.final_target.path if obj.is_alias else obj.path
    except (griffe.AliasResolutionError, griffe.CyclicAliasError):
        return obj.path


def resolve(package: griffe.Module, scope: Any, target: str) -> str | None:
    """The canonical path of ``target`` as written in the docstring of ``scope``, or ``None``."""
    candidates = []
    if target.startswith("."):
        module = scope.module
        base = module if module.is_package or module.is_init_module else module.parent
        candidates.append(f"{base.path}{target}")
        candidates.append(f"{module.path}{target}")
    elif target.startswith(f"{package.name}."):
        candidates.append(target)
    else:
        first, _, rest = target.partition(".")
        obj = scope
        while obj is not None:  # the docstring's scope, then its parents (a method, its class, the module)
            if obj.is_class and first in obj.all_members:  # inherited members too
                member = obj.all_members[first]
                candidates.append(f"{member.path}.{rest}" if rest else member.path)
                break
            try:
                found = obj.resolve(first)
            except griffe.NameResolutionError:
                obj = obj.parent
                continue
            candidates.append(f"{found}.{rest}" if rest else found)
            break
    for path in candidates:
        obj = _lookup(package, path)
        if obj is not None:
            return _canonical(obj)
    return None


class SphinxRoles(griffe.Extension):
    """Rewrite the roles of every docstring of the package as (optionally linked) code."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self._visit(pkg, pkg)

    def _visit(self, package: griffe.Module, obj: Any) -> None:
        if obj.docstring is not None and ":" in obj.docstring.value:
            value = ROLE.sub(lambda match: self._replace(package, obj, match), obj.docstring.value)
            obj.docstring.value = LITERAL_MARKER.sub(":", value)  # the block is Markdown's code block already
        for member in obj.members.values():
            if not member.is_alias:
                self._visit(package, member)

    @staticmethod
    def _replace(package: griffe.Module, scope: Any, match: re.Match[str]) -> str:
        target = match.group("target")
        shown = target.lstrip(".").rsplit(".", 1)[-1] if match.group("tilde") else target
        path = resolve(package, scope, target)
        if path is None:
            return f"`{shown}`"
        return f'<autoref identifier="{path}" optional><code>{shown}</code></autoref>'
