"""JWT verification: strict parsing, key selection per issuer, claim checks, JWKS and caches.

Nothing here imports aiohttp: the JWKS cache gets an injected `fetch` coroutine.
"""
