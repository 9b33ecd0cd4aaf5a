"""Key material is typed at load time: an issuer's algorithms decide which key can verify what,
never the token (RFC 8725 §3.1): the wrong curve, a short RSA key or the wrong key type is refused
at start-up, and an algorithm the key cannot serve finds no key."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives import hashes

from proxy.app import Bastion
from proxy.config import Auth
from proxy.jwt.setup import KeyConfigError, build_verifier
from proxy.logs import LogOutput
from tests.conftest import EchoUpstream, StartBastion, make_config
from tests.jwt.conftest import Keys, b64url, compact, public_pem, raw_ec_signature

ISS = "https://p384.example"


def issuer(tmp_path: Path, key: Any, algorithms: list[str]) -> dict[str, Any]:
    pem = tmp_path / "key.pem"
    pem.write_bytes(public_pem(key))
    return {"issuer": ISS, "algorithms": algorithms, "public_key_file": str(pem)}


@pytest.mark.parametrize(
    ("key", "algorithms"),
    [
        pytest.param(lambda k: k.p384, ["ES256"], id="p384-key-for-es256"),
        pytest.param(lambda k: k.p384, ["ES256", "RS256"], id="p384-key-for-es256-and-rs256"),
        pytest.param(lambda k: k.ec, ["ES384"], id="p256-key-for-es384"),
        pytest.param(lambda k: k.small_rsa, ["RS256"], id="rsa-1024"),
        pytest.param(lambda k: k.ec, ["RS256", "PS256"], id="ec-key-for-rsa-algorithms"),
        pytest.param(lambda k: k.rsa, ["ES256"], id="rsa-key-for-es256"),
        pytest.param(lambda k: k.rsa, ["EdDSA"], id="rsa-key-for-eddsa"),
    ],
)
def test_a_key_that_fits_none_of_the_algorithms_is_a_start_up_error(
    keys: Keys, tmp_path: Path, key: Callable[[Keys], Any], algorithms: list[str]
) -> None:
    auth = Auth.model_validate({"issuers": [issuer(tmp_path, key(keys), algorithms)]})
    with pytest.raises(KeyConfigError, match="fits none of the algorithms"):
        build_verifier(auth, fetch=None)  # type: ignore[arg-type]
    cfg = make_config("http://127.0.0.1:9", auth={"issuers": [issuer(tmp_path, key(keys), algorithms)]})
    with pytest.raises(KeyConfigError):
        Bastion(cfg, LogOutput(None))  # type: ignore[arg-type]


def es_token(key: Any, alg: str, hash_alg: hashes.HashAlgorithm) -> str:
    signing_input = compact(f'{{"alg":"{alg}","typ":"JWT"}}', f'{{"iss":"{ISS}","sub":"alice","exp":4000000000}}')
    return f"{signing_input}.{b64url(raw_ec_signature(key, signing_input.encode(), hash_alg))}"


@pytest.mark.parametrize(
    ("token", "status"),
    [
        pytest.param(lambda k: es_token(k.p384, "ES384", hashes.SHA384()), 200, id="es384-with-the-p384-key"),
        pytest.param(lambda k: es_token(k.p384, "ES256", hashes.SHA256()), 401, id="es256-signed-with-the-p384-key"),
        pytest.param(lambda k: es_token(k.p384, "ES256", hashes.SHA384()), 401, id="es256-label-sha384-p384"),
        pytest.param(lambda k: es_token(k.ec, "ES256", hashes.SHA256()), 401, id="es256-with-a-p256-key"),
    ],
)
async def test_es256_is_never_verified_with_a_p384_key(
    upstream: EchoUpstream,
    start_bastion: StartBastion,
    keys: Keys,
    tmp_path: Path,
    token: Callable[[Keys], str],
    status: int,
) -> None:
    cfg = make_config(upstream.url, auth={"issuers": [issuer(tmp_path, keys.p384, ["ES256", "ES384"])]})
    running = await start_bastion(cfg)
    async with (
        aiohttp.ClientSession() as s,
        s.get(running.url + "/", headers={"Authorization": f"Bearer {token(keys)}"}) as r,
    ):
        assert r.status == status
    [rec] = await running.access(1)
    if status == 401:
        assert rec["bastion.reason"] == "kid_unknown"  # the P-384 key serves ES384 only
        assert upstream.seen == []
    else:
        assert [s.header("X-User-Id") for s in upstream.seen] == ["alice"]
