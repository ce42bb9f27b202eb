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


@pytest.mark.parametrize("name", ["", "Upper", "has space", "x" * 65, "../etc", "acme\n", "acme\r\n", "\nacme"])
async def test_bad_team_names_are_refused(gate, name):
    with pytest.raises(InvalidTeamName):
        await KeyStore(gate.client).create(name)


async def test_key_ids_are_64_bits_and_never_overwrite_an_existing_id(gate, monkeypatch):
    from serve.tenancy import keys as keys_module

    store = KeyStore(gate.client)
    _, first = await store.create("ids")
    assert len(first.key_id) == 16  # 8 random bytes, hex
    # Force the next draw to collide with the existing id: the store must draw again.
    draws = iter([first.key_id, "00000000000000aa"])
    monkeypatch.setattr(keys_module.secrets, "token_hex", lambda _n: next(draws))
    key, second = await store.create("ids")
    assert second.key_id == "00000000000000aa"
    assert (await store.lookup(key)).key_id == "00000000000000aa"
    listed = {info.key_id: info for info in await store.list("ids")}
    assert listed[first.key_id].sha256 == first.sha256  # the first key's record is intact


async def test_endless_collisions_are_an_error_not_an_overwrite(gate, monkeypatch):
    from serve.tenancy import keys as keys_module

    store = KeyStore(gate.client)
    _, first = await store.create("ids-stuck")
    monkeypatch.setattr(keys_module.secrets, "token_hex", lambda _n: first.key_id)
    with pytest.raises(keys_module.KeyIdCollision):
        await store.create("ids-stuck")


async def test_unknown_policies_are_refused_at_creation(gate):
    from serve.tenancy.keys import UnknownPolicy

    store = KeyStore(gate.client, policies=["default", "strict"])
    with pytest.raises(UnknownPolicy):
        await store.create("policy-typo", policy="strictt")
    with pytest.raises(UnknownPolicy):
        await store.set_team("policy-typo", policy="nope")
    assert "policy-typo" not in await store.teams()
    _, info = await store.create("policy-ok", policy="strict")
    assert info.team == "policy-ok"


async def test_a_key_whose_team_record_is_missing_fails_closed(gate):
    from serve.tenancy.keys import MissingTeam

    store = KeyStore(gate.client)
    key, _ = await store.create("vanishing")
    await gate.client.delete("ms:team:vanishing")
    with pytest.raises(MissingTeam):
        await store.lookup(key)
