"""Rate limits, login lockouts and the shared store (see README "Rate limits").

`base` (types, store protocol), `gcra` and `lockout` (the maths), `memory` and `redis_store`
(state), `scripts` (the Lua copy of the maths), `breaker`, `limiter` (`on_failure`), `keys` (what a
limit is keyed by), `revocations` (the deny-list in Redis), `setup` (built from config). No aiohttp:
the checks that use this are in `proxy/checks/ratelimit.py` and `proxy/checks/login.py`.
"""
