"""Rule files -> one immutable PolicySet, or a PolicyError listing every problem as `file:line: key: message`.

Like oauth2-proxy's `Validate()`, all files are read and every problem is collected before failing,
so one run of `bastion check` shows them all. Three stages, each stopping the load if it finds
errors: shape (yamlsource + pydantic, per file), structure (pattern grammar, role graph across
files), then meaning (`lint`: precedence ties, unknown roles, patterns that cannot match a canonical
path, duplicate ids). Warnings from the last stage (shadowed rules) do not stop the load; they are
kept on `PolicySet.findings` for `bastion check` to print.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from proxy import yamlsource
from proxy.config import pydantic_messages
from proxy.detect import DetectConfigError, parse_detect
from proxy.policy import lint as _lint
from proxy.policy.conditions import Condition, RoleGraph
from proxy.policy.matcher import NO_RULE_DECISION, Match, Matcher, RequestLike
from proxy.policy.model import MatchSpec, RegexPath, RuleFile, RuleSpec, TestSpec
from proxy.policy.rule import PathPattern, Rule, parse_glob, regex_pattern
from proxy.policy.validation import compile_validation
from proxy.yamlsource import Document


class PolicyError(Exception):
    """Every problem found in the rule files, one `file:line: key.path: message` per entry."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("\n".join(messages))
        self.messages = messages


@dataclass(frozen=True, slots=True)
class TestCase:
    __test__ = False  # not a pytest class

    spec: TestSpec
    doc: Document
    index: int

    @property
    def file(self) -> str:
        return str(self.doc.path)

    @property
    def line(self) -> int:
        return self.doc.line_of(("tests", self.index))


class PolicySet:
    """Everything the rule files say, compiled. Immutable once built; hot reload swaps whole sets."""

    def __init__(self, rules: Sequence[Rule], tests: Sequence[TestCase], roles: RoleGraph, files: Sequence[Path]):
        self.rules = tuple(rules)
        self.tests = tuple(tests)
        self.roles = roles
        self.files = tuple(files)
        self.by_id: dict[str, Rule] = {}
        for rule in self.rules:
            self.by_id.setdefault(rule.id, rule)
        self.findings: tuple[_lint.Finding, ...] = ()
        self._matcher = Matcher(self.rules)
        self.no_rule = _no_rule()

    def match(self, req: RequestLike, *, explain: bool = False) -> Match:
        """The rule that decides `req` (`Match.rule` None when none does). `explain` also lists the losers."""
        return self._matcher.match(req, explain=explain)


class _Nobody:
    """The condition of `PolicySet.no_rule`: no token needed, and the answer is always 404."""

    anonymous = True

    def decide(self, principal: object, headers: object) -> object:
        return NO_RULE_DECISION


def _no_rule() -> Rule:
    # Global shadow mode needs a rule on ctx even when none matched, so later checks run unchanged.
    # Built unvalidated so that its id, "(no rule)", is one no rule file can declare.
    match = MatchSpec(path="/**")
    spec = RuleSpec.model_construct(id="(no rule)", match=match, allow="anonymous", mode="shadow", description=None)
    return Rule(spec, (parse_glob("/**"),), _Nobody(), Document(Path("<none>"), {}, {(): 0}), 0)  # type: ignore[arg-type]


def rule_files(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given; directories expand to their `*.yaml`/`*.yml` files (recursively, sorted)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.suffix in (".yaml", ".yml") and f.is_file()))
        else:
            out.append(p)
    return out


def compile_files(paths: Sequence[str | Path], *, strict: bool = True) -> PolicySet:
    """Load and compile rule files (directories expand to their YAML files).

    With `strict` (the default, and what the proxy uses) lint errors stop the load too; `strict=False`
    returns whatever compiles, for `lint()` and its tests to inspect.
    """
    docs: list[Document] = []
    errors: list[str] = []
    for path in rule_files(paths):
        try:
            docs.append(yamlsource.load(path))
        except yamlsource.SourceError as exc:
            errors.extend(exc.messages)
    return compile_documents(docs, strict=strict, errors=errors)


def compile_documents(docs: Sequence[Document], *, strict: bool = True, errors: list[str] | None = None) -> PolicySet:
    errors = list(errors or [])
    files: list[tuple[Document, RuleFile]] = []
    for doc in docs:
        if not isinstance(doc.data, dict):
            errors.append(doc.error((), "the top level must be a mapping (roles, rules, tests)"))
            continue
        try:
            files.append((doc, RuleFile.model_validate(doc.data)))
        except ValidationError as exc:
            errors.extend(m.replace("a valid tuple", "a list") for m in pydantic_messages(doc, exc))
    roles = _role_graph(files, errors)
    rules: list[Rule] = []
    for doc, rf in files:
        for i, spec in enumerate(rf.rules):
            patterns = _patterns(spec, doc, i, errors)
            rule = Rule(spec, patterns, Condition(spec.allow, roles), doc, i)
            rule.validation = compile_validation(spec, doc, i, errors)
            if spec.detect is not None:
                try:
                    rule.detect = parse_detect(spec.detect)
                except DetectConfigError as exc:
                    errors.extend(doc.error(("rules", i, "detect"), e.removeprefix("detect").lstrip(".: ") or e)
                                  for e in exc.errors)
            rules.append(rule)
    if errors:
        raise PolicyError(errors)
    tests = [TestCase(spec, doc, i) for doc, rf in files for i, spec in enumerate(rf.tests)]
    policy = PolicySet(rules, tests, roles, [doc.path for doc in docs])
    if strict:
        findings = _lint.lint(policy)
        bad = [str(f) for f in findings if f.level == "error"]
        if bad:
            raise PolicyError(bad)
        policy.findings = tuple(findings)
    return policy


def _patterns(spec: RuleSpec, doc: Document, index: int, errors: list[str]) -> tuple[PathPattern, ...]:
    path = spec.match.path
    if isinstance(path, RegexPath):
        return (regex_pattern(path.regex),)
    texts = [(path, ())] if isinstance(path, str) else [(t, (j,)) for j, t in enumerate(path)]
    out: list[PathPattern] = []
    for text, sub in texts:
        try:
            out.append(parse_glob(text))
        except ValueError as exc:
            errors.append(doc.error(("rules", index, "match", "path", *sub), str(exc)))
    return tuple(out)


def _role_graph(files: list[tuple[Document, RuleFile]], errors: list[str]) -> RoleGraph:
    """Union of every file's `roles:`; a role given different parents in two places is an error."""
    parents: dict[str, tuple[str, ...]] = {}
    where: dict[str, str] = {}
    for doc, rf in files:
        for role, ps in rf.roles.items():
            here = f"{doc.path}:{doc.line_of(('roles', role))}"
            if role in parents and frozenset(parents[role]) != frozenset(ps):
                errors.append(
                    doc.error(
                        ("roles", role),
                        f"role {role!r} defined with parents {sorted(ps)} here "
                        f"and {sorted(parents[role])} at {where[role]}",
                    )
                )
                continue
            parents.setdefault(role, tuple(ps))
            where.setdefault(role, here)
    for cycle in _cycles(parents):
        errors.append(f"{where[cycle[0]]}: roles.{cycle[0]}: role cycle: {' -> '.join(cycle)}")
    return RoleGraph(parents)


def _cycles(parents: dict[str, tuple[str, ...]]) -> list[list[str]]:
    """Each inheritance cycle once, as [a, b, ..., a], starting at its first role in file order."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    found: list[list[str]] = []

    def visit(role: str, stack: list[str]) -> None:
        state[role] = 1
        stack.append(role)
        for parent in parents.get(role, ()):
            if state.get(parent) == 1:
                found.append([*stack[stack.index(parent) :], parent])
            elif parent not in state:
                visit(parent, stack)
        stack.pop()
        state[role] = 2

    for role in parents:
        if role not in state:
            visit(role, [])
    return found
