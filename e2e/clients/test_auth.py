"""Authentication: password mode (Flight Handshake with Basic credentials -> Bearer token) and
the loopback-only no-auth mode."""

from __future__ import annotations

import adbc_driver_manager
import pytest
from pyarrow import flight

from sqe_harness import call_options, flight_sql_query, hash_password, scalar

Status = adbc_driver_manager.AdbcStatusCode


def _is_unauthenticated(e: BaseException) -> bool:
    status = getattr(e, "status_code", None)
    return status == Status.UNAUTHENTICATED or "UNAUTHENTICATED" in str(e).upper()


# --------------------------------------------------------------------------------------------
# ADBC


@pytest.mark.parametrize("user", ["alice", "bob"])
def test_adbc_with_username_and_password(auth_server, auth_users, user):
    conn = auth_server.connect(user, auth_users[user])
    try:
        assert scalar(conn, "SELECT 40 + 2") == 42
        # the session survives several statements on the token from the handshake
        assert scalar(conn, "SELECT count(*) FROM generate_series(1, 10)") == 10
    finally:
        conn.close()


@pytest.mark.parametrize(
    "user,password",
    [("alice", "wrong"), ("alice", ""), ("mallory", "alice-correct-horse-1"), ("bob", "bob pass")],
)
def test_adbc_wrong_credentials_are_unauthenticated(auth_server, user, password):
    with pytest.raises(adbc_driver_manager.Error) as e:
        conn = auth_server.connect(user, password)
        conn.close()
    assert _is_unauthenticated(e.value), f"{e.value!r} (status {getattr(e.value, 'status_code', None)!r})"


def test_adbc_without_credentials_is_refused(auth_server):
    with pytest.raises(adbc_driver_manager.Error) as e:
        conn = auth_server.connect()
        try:
            scalar(conn, "SELECT 1")
        finally:
            conn.close()
    assert _is_unauthenticated(e.value), repr(e.value)


# --------------------------------------------------------------------------------------------
# pyarrow.flight


def test_flight_basic_token_handshake(auth_server, auth_users):
    client = auth_server.flight_client()
    try:
        header = client.authenticate_basic_token("alice", auth_users["alice"])
        assert isinstance(header, tuple) and len(header) == 2
        key, value = header
        assert key.lower() == b"authorization"
        assert value.startswith(b"Bearer ") and len(value) > len(b"Bearer ")
        options = call_options([header])
        table = flight_sql_query(client, "SELECT 7 AS seven", options)
        assert table.to_pylist() == [{"seven": 7}]
    finally:
        client.close()


def test_flight_token_works_on_another_connection(auth_server, auth_users):
    first = auth_server.flight_client()
    try:
        header = first.authenticate_basic_token("bob", auth_users["bob"])
    finally:
        first.close()
    second = auth_server.flight_client()
    try:
        options = call_options([header])
        assert flight_sql_query(second, "SELECT 1 AS one", options).to_pylist() == [{"one": 1}]
    finally:
        second.close()


def test_flight_wrong_password(auth_server):
    client = auth_server.flight_client()
    try:
        with pytest.raises(flight.FlightUnauthenticatedError):
            client.authenticate_basic_token("alice", "nope")
    finally:
        client.close()


@pytest.mark.parametrize(
    "headers",
    [
        None,
        [(b"authorization", b"Bearer not-a-token")],
        [(b"authorization", b"Basic YWxpY2U6bm9wZQ==")],  # alice:nope, not a handshake token
    ],
    ids=["no-token", "bad-bearer", "basic-instead-of-token"],
)
def test_flight_call_without_valid_token(auth_server, headers):
    client = auth_server.flight_client()
    try:
        options = call_options(headers)
        with pytest.raises(flight.FlightUnauthenticatedError):
            flight_sql_query(client, "SELECT 1", options)
    finally:
        client.close()


def test_auth_server_health_endpoints_need_no_token(auth_server):
    assert auth_server.healthz() == 200
    assert auth_server.readyz() == 200


# --------------------------------------------------------------------------------------------
# No-auth mode (the default; loopback only)


def test_no_auth_mode_needs_no_credentials(server):
    conn = server.connect()
    try:
        assert scalar(conn, "SELECT 'open'") == "open"
    finally:
        conn.close()
    client = server.flight_client()
    try:
        assert flight_sql_query(client, "SELECT 5 AS five").to_pylist() == [{"five": 5}]
    finally:
        client.close()


def test_hash_password_is_salted_argon2():
    a, b = hash_password("same secret"), hash_password("same secret")
    assert a.startswith("$argon2") and b.startswith("$argon2")
    assert a != b
