"""API keys: creation, lookup, revocation; only hashes are stored."""

from __future__ import annotations

import pytest

from serve.tenancy.keys import InvalidTeamName, KeyStore, hash_key


async def test_created_key_resolves_to_its_team(gate):
    store = KeyStore(gate.client)
    key, info = await store.create("alpha", rpm=7, tpm=700, policy="strict", models=("m1",))
    principal = await store.lookup(key)
    assert (principal.key_id, principal.team.name, principal.team.rpm, principal.team.tpm) == (info.key_id, "alpha", 7, 700)
    assert principal.team.policy == "strict" and principal.models == ("m1",)
    assert principal.may_use("m1") and not principal.may_use("m2")
    assert await store.lookup(key + "x") is None


async def test_only_the_hash_is_stored(gate):
    key, _ = await KeyStore(gate.client).create("hashes")
    dump = []
    async for name in gate.client.scan_iter("ms:*"):
        dump.append(name)
        kind = await gate.client.type(name)
        if kind == "hash":
            dump.extend(str(v) for v in (await gate.client.hgetall(name)).values())
    assert not any(key in entry for entry in dump)
    assert any(hash_key(key) in entry for entry in dump)


async def test_revoked_key_no_longer_resolves_and_is_listed_as_revoked(gate):
    store = KeyStore(gate.client)
    key, info = await store.create("revokers")
    assert (await store.revoke(info.key_id)).revoked is not None
    assert await store.lookup(key) is None
    listed = {i.key_id: i for i in await store.list("revokers")}
    assert listed[info.key_id].revoked is not None
    assert await store.revoke("nope") is None


async def test_team_settings_merge_and_salt_is_stable(gate):
    store = KeyStore(gate.client)
    first = await store.set_team("merge", rpm=5)
    second = await store.set_team("merge", tpm=50)
    assert (second.rpm, second.tpm) == (5, 50) and first.salt == second.salt and len(first.salt) == 32
    other = await store.set_team("merge-other")
    assert other.salt != first.salt


@pytest.mark.parametrize("name", ["", "Upper", "has space", "x" * 65, "../etc"])
async def test_bad_team_names_are_refused(gate, name):
    with pytest.raises(InvalidTeamName):
        await KeyStore(gate.client).create(name)
