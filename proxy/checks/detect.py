"""Attack detection: the rule's `detect:` block (or the global `detect:` of the config) applied to
the query, path, cookies, user-text headers and, for JSON and form bodies, every value and key.

Runs last, after authorisation and validation, so only authorised callers make Bastion read and
scan a body, and a body that validation already parsed is scanned without parsing it again. In
`block` mode the first finding answers 403; in `detect` mode every finding is logged and the
request goes on (the way to roll detection out on real traffic first). The engine lives in
proxy/detect/ (pure functions, no aiohttp).
"""

from __future__ import annotations

from proxy.body import BodyLimits, is_json, media_type, parse
from proxy.context import RequestContext
from proxy.decision import Denial, Reason
from proxy.detect import DetectSpec, FieldLimitError, FieldLimits, cookie_pairs, request_fields

_TEXT_HEADERS = ("User-Agent", "Referer", "X-Forwarded-Host")
_INSPECTED = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})

MAX_LOGGED = 10


class Detect:
    name = "detect"

    def __init__(self, default: DetectSpec | None, body_cap: int) -> None:
        self.default = default
        self.body_cap = body_cap
        self.limits = FieldLimits()

    def spec(self, rule: object) -> DetectSpec | None:
        """The rule's own detection, else the global one (None: off under this rule)."""
        return getattr(rule, "detect", None) or self.default

    def applies(self, rule: object) -> bool:
        return self.spec(rule) is not None

    async def __call__(self, ctx: RequestContext) -> None:
        spec = self.spec(ctx.rule)
        if spec is None:
            return
        parsed = ctx.parsed_body
        if parsed is None and (ctx.content_length or ctx.chunked):
            mt = media_type(ctx.headers.get("Content-Type"))
            if is_json(mt) or mt in _INSPECTED:
                data = await ctx.read_body(self.body_cap)
                parsed = ctx.parsed_body = parse(ctx.headers.get("Content-Type"), data, BodyLimits())
        try:
            fields = request_fields(
                path=ctx.path,
                query=ctx.query,
                headers=[(h, v) for h in _TEXT_HEADERS for v in ctx.headers.getall(h, ())],
                cookies=cookie_pairs(ctx.headers.get("Cookie", "")),
                json=parsed.value if parsed is not None and parsed.kind == "json" else None,
                form=parsed.fields if parsed is not None and parsed.kind in ("form", "multipart") else None,
                limits=self.limits,
            )
        except FieldLimitError as exc:
            raise Denial(400, Reason.BAD_REQUEST, detail=f"too many fields to inspect: {exc}") from None
        findings = spec.engine.scan(fields, first_only=spec.blocking)
        if not findings:
            return
        # SECURITY: at most 10 findings a request reach the log (each becomes a security event): one
        # request full of payloads must not flood the collector and push other records out
        ctx.log["bastion.detections"] = [
            {"class": f.cls, "detector": f.detector_id, "field": f.field_name, "snippet": f.snippet}
            for f in findings[:MAX_LOGGED]
        ]
        if len(findings) > MAX_LOGGED:
            ctx.log["bastion.detections_total"] = len(findings)
        if spec.blocking:
            first = findings[0]
            # the client learns the class (issue 5: "naming the class, not the payload"); the field,
            # detector and snippet are for the log only
            raise Denial(
                403,
                Reason.INJECTION_SUSPECTED,
                detail=f"{first.cls} in {first.field_name} ({first.detector_id})",
                extra={"attack-class": first.cls},
            )
        ctx.log["bastion.decision"] = "detected"
