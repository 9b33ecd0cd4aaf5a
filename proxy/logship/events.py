"""Security events derived from access records, so the audit stream is complete by construction.

The request path records what happened once, in the access record (`ctx.log`); the log writer
thread derives the security events from it (authentication failures, access denials, blocked or
detected attacks, rate-limit hits, login failures and lockouts). Doing it there keeps the event
loop's cost at zero and means no check can forget to emit its event. Process-level events (rule
reloads, JWKS fetch failures, store breaker transitions) come through `logging` with an
`event.action` and are tagged `bastion.security` by `logs.py`.

Field names follow ECS: `event.kind: alert` for attacks, `event` otherwise; `event.category` from
ECS's allowed values; `event.action` is Bastion's stable event name (README "Logs").
"""

from __future__ import annotations

from typing import Any

from proxy.decision import AUTHENTICATION_REASONS, Reason

AUTHORIZATION = frozenset({Reason.FORBIDDEN, Reason.NO_RULE, Reason.AMBIGUOUS_RULE})

# copied from the access record into each of its events, for correlation without a join
_CONTEXT = (
    "@timestamp",
    "http.request.id",
    "trace.id",
    "span.id",
    "client.ip",
    "http.request.method",
    "url.path",
    "user.id",
    "bastion.rule",
    "http.response.status_code",
)


def _event(access: dict[str, Any], action: str, category: str, level: str, kind: str = "event") -> dict[str, Any]:
    ev: dict[str, Any] = {"log.level": level, "event.dataset": "bastion.security"}
    for key in _CONTEXT:
        if key in access:
            ev[key] = access[key]
    ev["event.kind"] = kind
    ev["event.category"] = category
    ev["event.action"] = action
    ev["event.outcome"] = "failure"
    return ev


def security_events(access: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    reason = access.get("bastion.reason")
    if reason in AUTHENTICATION_REASONS:
        ev = _event(access, "authentication_failed", "authentication", "warning")
        ev["bastion.reason"] = reason
        out.append(ev)
    elif reason in AUTHORIZATION or (reason and access.get("bastion.decision") == "would_deny"):
        ev = _event(access, "access_denied", "iam", "warning")
        ev["bastion.reason"] = reason
        if access.get("bastion.decision") == "would_deny":
            ev["event.outcome"] = "success"  # shadow mode: it was let through
            ev["event.action"] = "access_would_deny"
        out.append(ev)
    elif reason == Reason.RATE_LIMITED:
        ev = _event(access, "rate_limited", "network", "warning")
        ev["bastion.ratelimit.policy"] = access.get("bastion.policies")
        out.append(ev)
    if ignored := access.get("bastion.auth_ignored"):
        ev = _event(access, "authentication_failed", "authentication", "info")
        ev["bastion.reason"] = ignored
        ev["event.outcome"] = "unknown"  # an anonymous route let the request through without the token
        out.append(ev)
    login = access.get("bastion.login")
    if login == "locked" or reason == Reason.LOGIN_LOCKED:
        ev = _event(access, "login_locked", "authentication", "warning")
        ev["bastion.ratelimit.policy"] = access.get("bastion.policies")
        out.append(ev)
    elif login == "failure":
        out.append(_event(access, "login_failed", "authentication", "info"))
    detections = access.get("bastion.detections")
    if detections:
        blocked = reason == Reason.INJECTION_SUSPECTED
        for d in detections:  # at most 10: checks/detect.py caps what it logs
            ev = _event(access, "attack_blocked" if blocked else "attack_detected", "intrusion_detection",
                        "warning", kind="alert")  # fmt: skip
            ev["event.outcome"] = "failure" if blocked else "success"
            ev["bastion.attack"] = d
            out.append(ev)
    return out
