"""Handshake state machines, tested without sockets."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any

import pytest

from aioforest.wire import (
    HANDSHAKE_CONFIG,
    PREFIX_SIZE,
    PROTOCOL_VERSION,
    AuthenticationError,
    BadMagic,
    ClientHandshake,
    Encoder,
    FrameTooLarge,
    HandshakeError,
    Message,
    ProtocolError,
    ServerHandshake,
    VersionMismatch,
    load_token,
)

TOKEN = b"correct horse battery staple"
OTHER = b"wrong token entirely"


def frame(msg_type: str, **fields: Any) -> bytes:
    return b"".join(Encoder(HANDSHAKE_CONFIG).encode(Message(msg_type, fields)))


def mac(token: bytes, data: bytes) -> bytes:
    return hmac.new(token, data, hashlib.sha256).digest()


def decode_frames(data: bytes) -> list[Message]:
    from aioforest.wire import NEED_DATA, Decoder

    dec = Decoder(HANDSHAKE_CONFIG)
    dec.receive_data(data)
    out = []
    while (ev := dec.next_event()) is not NEED_DATA:
        assert isinstance(ev, Message)
        out.append(ev)
    return out


def run(server: ServerHandshake, client: ClientHandshake) -> None:
    client.receive_data(server.data_to_send())  # hello
    server.receive_data(client.data_to_send())  # auth
    client.receive_data(server.data_to_send())  # welcome


# ----------------------------------------------------------------------------- success


def test_mutual_authentication_succeeds() -> None:
    server, client = ServerHandshake(TOKEN), ClientHandshake(TOKEN)
    assert (server.complete, client.complete) == (False, False)
    run(server, client)
    assert (server.complete, client.complete) == (True, True)
    for result in (server.result, client.result):
        assert result.authenticated
        assert result.peer_version == PROTOCOL_VERSION
        assert result.session_key is not None and len(result.session_key) == 32
    assert server.result.session_key == client.result.session_key
    assert "session_key" not in repr(server.result)
    assert server.data_to_send() == b"" and client.data_to_send() == b""


def test_session_keys_differ_between_sessions() -> None:
    keys = set()
    for _ in range(3):
        server, client = ServerHandshake(TOKEN), ClientHandshake(TOKEN)
        run(server, client)
        keys.add(server.result.session_key)
    assert len(keys) == 3


def test_unauthenticated_mode_still_exchanges_versions() -> None:
    server, client = ServerHandshake(None), ClientHandshake(None)
    hello = decode_frames(server.data_to_send())[0]
    assert hello.fields["auth"] == "none" and hello.fields["version"] == PROTOCOL_VERSION
    client.receive_data(frame("hello", **hello.fields))
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    assert server.result.authenticated is False and client.result.authenticated is False
    assert server.result.session_key is None


def test_trailing_bytes_after_the_last_handshake_frame_are_kept() -> None:
    server, client = ServerHandshake(TOKEN), ClientHandshake(TOKEN)
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send() + b"first bytes of the connection")
    assert server.trailing_data == b"first bytes of the connection"
    client.receive_data(server.data_to_send() + b"AIOF more")
    assert client.complete
    assert client.trailing_data == b"AIOF more"
    with pytest.raises(RuntimeError, match="complete"):
        client.receive_data(b"x")


# ----------------------------------------------------------------------------- wrong token


def test_client_with_wrong_token_is_rejected_and_told_why() -> None:
    server, client = ServerHandshake(TOKEN), ClientHandshake(OTHER)
    client.receive_data(server.data_to_send())
    with pytest.raises(AuthenticationError) as info:
        server.receive_data(client.data_to_send())
    assert str(info.value) == "peer failed authentication: wrong token"
    assert info.value.with_peer("127.0.0.1:5555") is info.value
    assert str(info.value) == "peer 127.0.0.1:5555 failed authentication: wrong token"
    reject = server.data_to_send()
    assert [m.type for m in decode_frames(reject)] == ["reject"]
    assert b"proof" not in reject  # a failed client never obtains a server proof
    with pytest.raises(AuthenticationError) as info2:
        client.receive_data(reject)
    assert info2.value.rejected_by_peer
    assert str(info2.value) == "peer rejected our authentication: wrong token"
    with pytest.raises(ProtocolError, match="already failed"):
        server.receive_data(b"")


def test_server_with_wrong_token_is_detected_by_the_client() -> None:
    # An impostor server that does not know the token accepts anyone and answers
    # with a proof made from its own key.
    client = ClientHandshake(TOKEN)
    server_nonce = bytes(range(32))
    client.receive_data(
        frame(
            "hello", protocol="aioforest", version=1, auth="hmac-sha256", nonce=server_nonce.hex()
        )
    )
    auth = decode_frames(client.data_to_send())[0]
    client_nonce = bytes.fromhex(auth.fields["nonce"])
    fake = mac(OTHER, b"aioforest-v1 server" + client_nonce + server_nonce)
    with pytest.raises(AuthenticationError, match="server proof does not match"):
        client.receive_data(frame("welcome", proof=fake.hex()))
    assert not client.complete


def test_replayed_client_response_fails_against_a_fresh_server_nonce() -> None:
    server1, client1 = ServerHandshake(TOKEN), ClientHandshake(TOKEN)
    client1.receive_data(server1.data_to_send())
    recorded_auth = client1.data_to_send()
    server1.receive_data(recorded_auth)
    assert server1.complete

    server2 = ServerHandshake(TOKEN)
    server2.data_to_send()
    with pytest.raises(AuthenticationError, match="wrong token"):
        server2.receive_data(recorded_auth)


def test_replay_would_only_work_with_a_reused_nonce() -> None:
    # Control for the test above: the fresh nonce is what defeats the replay.
    nonce = b"\x07" * 32
    server1, client1 = ServerHandshake(TOKEN, nonce=nonce), ClientHandshake(TOKEN)
    client1.receive_data(server1.data_to_send())
    recorded_auth = client1.data_to_send()
    server2 = ServerHandshake(TOKEN, nonce=nonce)
    server2.receive_data(recorded_auth)
    assert server2.complete


def test_reflected_server_proof_is_not_a_valid_client_proof() -> None:
    # Session 1 gives the attacker a server proof P = MAC(server-label + Nc1 + Ns1).
    server1, client1 = ServerHandshake(TOKEN), ClientHandshake(TOKEN)
    run(server1, client1)
    # (peek at the nonces exchanged in session 1 through the frames of a re-run)
    s1 = ServerHandshake(TOKEN)
    c1 = ClientHandshake(TOKEN)
    hello = s1.data_to_send()
    ns1 = bytes.fromhex(decode_frames(hello)[0].fields["nonce"])
    c1.receive_data(hello)
    auth = c1.data_to_send()
    nc1 = bytes.fromhex(decode_frames(auth)[0].fields["nonce"])
    s1.receive_data(auth)
    proof = decode_frames(s1.data_to_send())[0].fields["proof"]
    # Session 2: a server whose nonce happens to be Nc1; the attacker claims nonce Ns1.
    # Without role labels the expected client proof MAC(Nc1 + Ns1) would equal P.
    server2 = ServerHandshake(TOKEN, nonce=nc1)
    server2.data_to_send()
    with pytest.raises(AuthenticationError, match="wrong token"):
        server2.receive_data(frame("auth", version=1, nonce=ns1.hex(), proof=proof))


def test_client_proof_reflected_as_server_proof_fails() -> None:
    client = ClientHandshake(TOKEN)
    client.receive_data(
        frame("hello", protocol="aioforest", version=1, auth="hmac-sha256", nonce=("ab" * 32))
    )
    own_proof = decode_frames(client.data_to_send())[0].fields["proof"]
    with pytest.raises(AuthenticationError, match="server proof does not match"):
        client.receive_data(frame("welcome", proof=own_proof))


def test_client_echoing_the_server_nonce_is_refused() -> None:
    server = ServerHandshake(TOKEN)
    ns = bytes.fromhex(decode_frames(server.data_to_send())[0].fields["nonce"])
    proof = mac(TOKEN, b"aioforest-v1 client" + ns + ns)
    with pytest.raises(HandshakeError, match="echoed the server nonce"):
        server.receive_data(frame("auth", version=1, nonce=ns.hex(), proof=proof.hex()))


# ----------------------------------------------------------------------------- token modes


def test_server_requires_token_client_has_none() -> None:
    server, client = ServerHandshake(TOKEN), ClientHandshake(None)
    with pytest.raises(AuthenticationError, match="none is configured on this client"):
        client.receive_data(server.data_to_send())
    with pytest.raises(AuthenticationError, match="this client has no token configured"):
        server.receive_data(client.data_to_send())


def test_client_with_token_refuses_unauthenticated_server() -> None:
    server, client = ServerHandshake(None), ClientHandshake(TOKEN)
    with pytest.raises(AuthenticationError, match="refusing to talk to an unauthenticated server"):
        client.receive_data(server.data_to_send())
    with pytest.raises(AuthenticationError, match="requires an authenticated server"):
        server.receive_data(client.data_to_send())


def test_server_without_token_refuses_a_proof_and_missing_proof_is_refused() -> None:
    server = ServerHandshake(None)
    server.data_to_send()
    with pytest.raises(AuthenticationError, match="this server has no token configured"):
        server.receive_data(frame("auth", version=1, nonce="cd" * 32, proof="ef" * 32))
    server = ServerHandshake(TOKEN)
    server.data_to_send()
    with pytest.raises(AuthenticationError, match="sent no token proof"):
        server.receive_data(frame("auth", version=1, nonce="cd" * 32, proof=None))


# ----------------------------------------------------------------------------- versions


def test_version_mismatch_detected_by_client_and_reported_to_server() -> None:
    server, client = ServerHandshake(TOKEN, version=2), ClientHandshake(TOKEN, version=1)
    with pytest.raises(VersionMismatch, match="peer speaks protocol version 2, this side speaks 1"):
        client.receive_data(server.data_to_send())
    with pytest.raises(VersionMismatch, match="peer rejected our protocol version 2"):
        server.receive_data(client.data_to_send())


def test_version_mismatch_detected_by_server() -> None:
    server = ServerHandshake(TOKEN)
    server.data_to_send()
    with pytest.raises(VersionMismatch, match="peer speaks protocol version 7"):
        server.receive_data(frame("auth", version=7, nonce="cd" * 32, proof="ef" * 32))
    assert [m.fields["code"] for m in decode_frames(server.data_to_send())] == ["version"]


# ----------------------------------------------------------------------------- malformed input


@pytest.mark.parametrize(
    ("message", "match"),
    [
        (Message("auth", {"nonce": "cd" * 32, "pad": "x" * 2000}), "exceeds max_header_size 1000"),
        (Message("auth", {"nonce": "cd" * 32}, [bytes(2000)]), "exceeds max_frame_size 1024"),
    ],
)
def test_oversized_handshake_frame_is_rejected_from_its_prefix(
    message: Message, match: str
) -> None:
    big = b"".join(Encoder().encode(message))
    server = ServerHandshake(TOKEN)
    server.data_to_send()
    with pytest.raises(FrameTooLarge, match=match):
        server.receive_data(big[:PREFIX_SIZE])


def test_garbage_before_the_handshake_is_refused_with_a_reject() -> None:
    server = ServerHandshake(TOKEN)
    server.data_to_send()
    with pytest.raises(BadMagic):
        server.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    (reject,) = decode_frames(server.data_to_send())
    assert reject.type == "reject" and reject.fields["code"] == "protocol"


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (frame("task", id=1), "expected a 'auth' handshake message, got 'task'"),
        (frame("auth", version="1", nonce="cd" * 32), "needs an int 'version'"),
        (frame("auth", version=1, nonce="xyz"), "'nonce' as 64 hex digits"),
        (frame("auth", version=1, nonce="zz" * 32), "'nonce' as 64 hex digits"),
        (frame("auth", version=1, nonce="cd" * 32, proof="ab"), "'proof' as 64 hex digits"),
        (frame("reject", code="protocol", reason="nope"), "peer rejected the handshake: nope"),
        (b"", "peer closed the connection during the handshake"),
    ],
)
def test_server_rejects_malformed_auth(data: bytes, match: str) -> None:
    server = ServerHandshake(TOKEN)
    server.data_to_send()
    with pytest.raises(HandshakeError, match=match):
        server.receive_data(data)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (
            frame("hello", protocol="http", version=1, auth="none", nonce="ab" * 32),
            "not an aioforest",
        ),
        (frame("hello", protocol="aioforest", version=1, auth="rot13", nonce="ab" * 32), "rot13"),
        (frame("welcome", proof=None), "expected a 'hello'"),
        (frame("hello", protocol="aioforest", version=1, auth="none"), "'nonce' as 64 hex"),
    ],
)
def test_client_rejects_malformed_hello(data: bytes, match: str) -> None:
    with pytest.raises(HandshakeError, match=match):
        ClientHandshake(None).receive_data(data)


def test_constructor_validation() -> None:
    with pytest.raises(TypeError, match="non-empty bytes"):
        ServerHandshake(b"")
    with pytest.raises(TypeError, match="non-empty bytes"):
        ClientHandshake("text")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="32 bytes"):
        ServerHandshake(TOKEN, nonce=b"short")
    with pytest.raises(RuntimeError, match="not complete"):
        _ = ClientHandshake(TOKEN).result


# ----------------------------------------------------------------------------- load_token


def test_load_token_from_file_strips_whitespace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIOFOREST_TOKEN", "from-env")
    path = tmp_path / "token"
    path.write_bytes(b"  s3cret\n")
    assert load_token(str(path)) == b"s3cret"  # the file wins over the environment
    assert load_token(path) == b"s3cret"


def test_load_token_empty_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_bytes(b" \n\t")
    with pytest.raises(ValueError, match="is empty"):
        load_token(path)
    with pytest.raises(FileNotFoundError):
        load_token(tmp_path / "missing")


def test_load_token_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIOFOREST_TOKEN", raising=False)
    assert load_token(None) is None
    monkeypatch.setenv("AIOFOREST_TOKEN", " tok \n")
    assert load_token(None) == b"tok"
    assert load_token(None, env=None) is None
    monkeypatch.setenv("MY_TOKEN", "   ")
    with pytest.raises(ValueError, match="MY_TOKEN is set but empty"):
        load_token(None, env="MY_TOKEN")
