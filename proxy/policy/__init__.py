"""The access-rule engine: compiles the top-level `rules/` YAML into an immutable PolicySet.

Named `policy` so the two "rules" (the YAML files and the checks) never get confused. The proxy
uses three things from here: `compile_files()` at start and on reload, `PolicyHolder` to swap sets
atomically, and `PolicySet.match()` through `proxy.checks.rules`. `lint`, `testing` and `explain`
serve the `bastion check`, `bastion test` and `bastion explain` commands.
"""

from __future__ import annotations

from proxy.policy.compiler import PolicyError, PolicySet, TestCase, compile_documents, compile_files, rule_files
from proxy.policy.conditions import Decision, RoleGraph
from proxy.policy.holder import PolicyHolder
from proxy.policy.lint import Finding, lint
from proxy.policy.matcher import Match, Probe, RequestLike
from proxy.policy.rule import PathPattern, Rule

__all__ = [
    "Decision",
    "Finding",
    "Match",
    "PathPattern",
    "PolicyError",
    "PolicyHolder",
    "PolicySet",
    "Probe",
    "RequestLike",
    "RoleGraph",
    "Rule",
    "TestCase",
    "compile_documents",
    "compile_files",
    "lint",
    "rule_files",
]
