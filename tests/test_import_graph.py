"""No import circles in ``mma/``: every ``import`` statement counts, those inside functions too.

A lazy import that closes a loop still ties the modules together (neither can be read, tested or
reused without the other) and breaks as soon as someone moves it to the top of the file. The graph
is read from the source with :mod:`ast` (nothing is imported): an edge ``a -> b`` for every module
``b`` that ``a`` imports, relative imports resolved, ``from pkg import name`` followed to the
submodule ``name`` or, for a name a package's ``__init__`` re-exports, to the module defining it.
Importing ``pkg.sub.mod`` also runs ``pkg/sub/__init__.py``: that is an edge to the package too,
except to a package that contains the importing module (Python has initialised it already) and to
``mma`` itself, the root every import goes through first.
"""
import ast
import os
from typing import Dict, List, Optional, Set

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def module_files(root: str, top: str = 'mma') -> Dict[str, str]:
    """``{dotted module name: file}`` of every module under ``root/top``; a package is named by
    its ``__init__.py``."""
    out = {}
    for folder, _, files in os.walk(os.path.join(root, top)):
        for f in files:
            if f.endswith('.py'):
                path = os.path.join(folder, f)
                name = os.path.relpath(path, root)[:-3].replace(os.sep, '.')
                out[name[:-len('.__init__')] if name.endswith('.__init__') else name] = path
    return out


def _imports(tree: ast.AST, module: str, is_package: bool) -> List[tuple]:
    """``(imported module, names)`` of every import statement, relative ones resolved."""
    package = module if is_package else module.rpartition('.')[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, ()) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:
                parts = package.split('.')
                parts = parts[:len(parts) - node.level + 1]
                base = '.'.join(parts + ([base] if base else []))
            out.append((base, tuple(a.name for a in node.names)))
    return out


def import_graph(root: str = ROOT, top: str = 'mma') -> Dict[str, Set[str]]:
    """``{module: modules it imports}`` over the modules of ``top`` (packages included)."""
    files = module_files(root, top)
    parsed = {}
    for mod, path in files.items():
        with open(path, encoding='utf-8') as f:
            parsed[mod] = _imports(ast.parse(f.read(), path), mod, path.endswith('__init__.py'))
    # a name a package re-exports (``from .hooks import trainable_keys``) -> its module
    exported: Dict[str, str] = {}
    for mod, imports in parsed.items():
        if files[mod].endswith('__init__.py'):
            for base, names in imports:
                for n in names:
                    if base in files and f'{base}.{n}' not in files:
                        exported[f'{mod}.{n}'] = base

    def target(name: str) -> Optional[str]:
        if name in files:
            return name
        return exported.get(name)

    graph = {}
    for mod, imports in parsed.items():
        deps = set()
        for base, names in imports:
            for dotted in [base] + [f'{base}.{n}' for n in names]:
                t = target(dotted)
                if t is None:
                    continue
                deps.add(t)
                parts = t.split('.')  # the packages that importing t initialises
                deps |= {'.'.join(parts[:i]) for i in range(2, len(parts))}
        # a module's own packages are initialised before it; ``mma`` is the root of everything
        own = {'.'.join(mod.split('.')[:i]) for i in range(1, mod.count('.') + 2)}
        graph[mod] = {d for d in deps if d not in own and d != top}
    return graph


def find_cycle(graph: Dict[str, Set[str]]) -> Optional[List[str]]:
    """One import circle as ``[a, b, ..., a]``, or None."""
    state: Dict[str, int] = {}  # 1: on the current path, 2: done
    path: List[str] = []

    def visit(node: str) -> Optional[List[str]]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_circle():
    cycle = find_cycle(import_graph())
    assert cycle is None, 'import circle in mma/: ' + ' -> '.join(cycle)


def test_detector_finds_circles(tmp_path):
    """The detector sees a circle closed by a lazy import, by a relative import and through a
    package's re-export; a module importing its own package is no circle."""
    pkg = tmp_path / 'pkg'
    (pkg / 'sub').mkdir(parents=True)
    (pkg / '__init__.py').write_text('from .a import f\n')
    (pkg / 'a.py').write_text('import pkg\nfrom pkg import sub\n\ndef f():\n'
                              '    from .sub.b import g\n')
    (pkg / 'sub' / '__init__.py').write_text('from .b import g\n')
    (pkg / 'sub' / 'b.py').write_text('from pkg.sub import c\n')
    (pkg / 'sub' / 'c.py').write_text('x = 1\n')
    assert find_cycle(import_graph(str(tmp_path), 'pkg')) is None
    (pkg / 'sub' / 'c.py').write_text('def h():\n    from ..a import f\n')
    assert find_cycle(import_graph(str(tmp_path), 'pkg')) == ['pkg.a', 'pkg.sub', 'pkg.sub.b',
                                                              'pkg.sub.c', 'pkg.a']
    (pkg / 'sub' / 'c.py').write_text('from pkg import f\n')  # re-exported by pkg/__init__
    assert find_cycle(import_graph(str(tmp_path), 'pkg')) is not None
