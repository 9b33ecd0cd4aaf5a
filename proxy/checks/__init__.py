"""Pipeline checks. None of them imports aiohttp: they see a RequestContext and raise Denial."""
