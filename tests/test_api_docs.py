"""Every public name has a docstring and a place in the API reference (``docs/api``).

The public names are those in ``__all__`` of ``idplan.solvers``, ``idplan.envs``, ``idplan.agents``
and of each of their subpackages, read from the imported packages. Docstrings are read from the
source by griffe, as the docs build reads them: a constant has one only if a string literal follows
its assignment, and nothing is inherited (``dict.__doc__`` for a dict constant, a dataclass's
generated signature, a base class's docstring do not count).

A name is in the reference when a ``::: identifier`` directive of a ``docs/api`` page renders its
object: the identifier names it (at any path that leads to it, e.g. the package re-export), or names
a module whose rendered members (all its public ones, or its ``members:`` option) include it.
Objects are compared by griffe's canonical path (where they are defined). No object may be rendered
twice: autorefs needs one anchor per object.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import textwrap
from pathlib import Path

import pytest
import yaml

griffe = pytest.importorskip("griffe", reason="the docs extra (mkdocstrings[python]) provides griffe")

ROOT = Path(__file__).resolve().parents[1]
API_PAGES = sorted((ROOT / "docs" / "api").rglob("*.md"))
DIRECTIVE = re.compile(r"^::: *(?P<identifier>\S+)[ \t]*\n(?P<options>(?:[ \t]+\S.*\n?)*)", re.MULTILINE)
TOP_PACKAGES = ("idplan.solvers", "idplan.envs", "idplan.agents")


def public_packages() -> list[str]:
    packages = []
    for name in TOP_PACKAGES:
        module = importlib.import_module(name)
        packages.append(name)
        packages += [f"{name}.{sub.name}" for sub in pkgutil.iter_modules(module.__path__) if sub.ispkg]
    return packages


PACKAGES = public_packages()
PUBLIC = [(package, name) for package in PACKAGES for name in importlib.import_module(package).__all__]


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """The ``idplan`` package as griffe sees it, laid out as the docs hook lays it out (the three
    top-level folders as ``idplan.*``)."""
    source = tmp_path_factory.mktemp("api-src")
    (source / "idplan").mkdir()
    (source / "idplan" / "__init__.py").write_text('"""idplan."""\n')
    for name in ("envs", "agents", "solvers"):
        (source / "idplan" / name).symlink_to(ROOT / name, target_is_directory=True)
    loader = griffe.GriffeLoader(search_paths=[str(source)], docstring_parser="google")
    package = loader.load("idplan")
    loader.resolve_aliases(external=False)
    return package


def lookup(api, path: str):
    obj = api[path.removeprefix("idplan.")]
    return obj.final_target if obj.is_alias else obj


def rendered(api) -> list[tuple[str, str]]:
    """``(page:identifier, canonical path)`` of every object the ``docs/api`` directives render at
    the top of their block, and of the members a module directive renders."""
    objects = []
    for page in API_PAGES:
        for match in DIRECTIVE.finditer(page.read_text(encoding="utf-8")):
            identifier = match.group("identifier")
            where = f"{page.relative_to(ROOT)}:{identifier}"
            obj = lookup(api, identifier)
            objects.append((where, obj.canonical_path))
            if obj.is_module:
                options = yaml.safe_load(textwrap.dedent(match.group("options"))) or {}
                members = options.get("options", {}).get("members")
                if members is None:  # mkdocstrings' default: the public objects defined in the module
                    members = [n for n, m in obj.members.items() if not n.startswith("_") and not m.is_alias]
                objects += [(f"{where}.{name}", lookup(api, f"{identifier}.{name}").canonical_path) for name in members]
    return objects


def test_every_package_has_all():
    assert len(PACKAGES) == 3 + 12, PACKAGES  # solvers: 3 subpackages, envs: 4, agents: 5
    assert len(PUBLIC) > 200


@pytest.mark.parametrize(("package", "name"), PUBLIC, ids=[f"{p}.{n}" for p, n in PUBLIC])
def test_public_name_has_docstring(api, package, name):
    obj = lookup(api, f"{package}.{name}")
    assert obj.docstring is not None and obj.docstring.value.strip(), (
        f"{package}.{name} ({obj.canonical_path}) has no docstring of its own"
    )


def test_every_public_name_is_in_the_api_reference(api):
    documented = {canonical for _, canonical in rendered(api)}
    missing = [
        f"{package}.{name} ({lookup(api, f'{package}.{name}').canonical_path})"
        for package, name in PUBLIC
        if lookup(api, f"{package}.{name}").canonical_path not in documented
    ]
    assert not missing, f"public names not rendered by any docs/api page: {missing}"


def test_no_object_is_rendered_twice(api):
    seen: dict[str, str] = {}
    twice = []
    for where, canonical in rendered(api):
        if canonical in seen:
            twice.append(f"{canonical}: {seen[canonical]} and {where}")
        seen.setdefault(canonical, where)
    assert not twice, twice
