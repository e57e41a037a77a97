"""`sqe-cli`, the Flight SQL command-line client, against a real server."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from sqe_harness import base_env, free_ports, scalar, unique


def cli(binary: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            [str(binary), *args],
            check=False,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=base_env(),
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise AssertionError(f"`sqe-cli {' '.join(args)}` did not finish within {timeout:.0f}s") from None


def test_execute_prints_a_table(server, sqe_cli_bin):
    p = cli(sqe_cli_bin, "--port", str(server.flight_port), "-e", "SELECT 1 AS x")
    assert p.returncode == 0, p.stderr
    assert re.search(r"\bx\b", p.stdout), p.stdout
    assert re.search(r"\b1\b", p.stdout), p.stdout


def test_csv_format(server, sqe_cli_bin):
    p = cli(sqe_cli_bin, "--port", str(server.flight_port), "--format", "csv", "-e", "SELECT 1 AS x")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines() == ["x", "1"]


def test_bad_statement_fails_with_the_server_error(server, sqe_cli_bin):
    p = cli(sqe_cli_bin, "--port", str(server.flight_port), "-e", "SELEC 1")
    assert p.returncode != 0
    assert "syntax error" in p.stderr.lower(), p.stderr
    assert "Line: 1, Column:" in p.stderr, p.stderr


def test_unknown_table_fails(server, sqe_cli_bin):
    missing = unique("nowhere")
    p = cli(sqe_cli_bin, "--port", str(server.flight_port), "-e", f"SELECT * FROM {missing}")
    assert p.returncode != 0
    assert missing in p.stderr, p.stderr


def test_file_with_several_statements(server, sqe_cli_bin, tmp_path):
    t = unique("cli_t")
    script = tmp_path / "script.sql"
    script.write_text(
        f"-- made by the e2e suite\n"
        f"CREATE TABLE {t} (id INT, name VARCHAR);\n"
        f"INSERT INTO {t} VALUES (1, 'a'), (2, 'b');\n"
        f"SELECT count(*) AS n FROM {t};\n"
    )
    p = cli(sqe_cli_bin, "--port", str(server.flight_port), "--format", "csv", "-f", str(script))
    assert p.returncode == 0, p.stderr
    lines = [line.strip() for line in p.stdout.splitlines()]
    assert "n" in lines and lines.index("n") + 1 < len(lines) and lines[lines.index("n") + 1] == "2", p.stdout
    conn = server.connect()
    try:
        assert scalar(conn, f"SELECT count(*) FROM {t}") == 2
    finally:
        conn.close()


def test_no_server_fails_quickly(sqe_cli_bin):
    (port,) = free_ports(1)
    p = cli(sqe_cli_bin, "--port", str(port), "-e", "SELECT 1", timeout=60)
    assert p.returncode != 0
    assert p.stderr.strip(), "no error message on stderr"


def test_json_format_is_one_object_per_row(server, sqe_cli_bin):
    p = cli(
        sqe_cli_bin, "--port", str(server.flight_port), "--format", "json",
        "-e", "SELECT value AS v, 'x' AS s FROM generate_series(1, 2) ORDER BY value",
    )
    assert p.returncode == 0, p.stderr
    import json

    assert [json.loads(line) for line in p.stdout.splitlines() if line.strip()] == [
        {"v": 1, "s": "x"},
        {"v": 2, "s": "x"},
    ]


def test_stops_at_the_first_error(server, sqe_cli_bin):
    t = unique("cli_stop")
    p = cli(
        sqe_cli_bin, "--port", str(server.flight_port),
        "-e", f"CREATE TABLE {t} (x INT); SELEC 1; INSERT INTO {t} VALUES (1)",
    )
    assert p.returncode != 0
    assert "InvalidArgument" in p.stderr, p.stderr
    conn = server.connect()
    try:
        assert scalar(conn, f"SELECT count(*) FROM {t}") == 0
    finally:
        conn.close()


def test_reads_statements_from_stdin(server, sqe_cli_bin):
    p = subprocess.run(
        [str(sqe_cli_bin), "--port", str(server.flight_port), "--format", "csv"],
        input="SELECT 40 + 2 AS answer;\n",
        capture_output=True, text=True, env=base_env(), timeout=60, check=False,
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines() == ["answer", "42"]


def test_user_and_password(auth_server, auth_users, sqe_cli_bin):
    user, password = "alice", auth_users["alice"]
    ok = cli(
        sqe_cli_bin, "--port", str(auth_server.flight_port), "--user", user, "--password", password,
        "--format", "csv", "-e", "SELECT 1 AS one",
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip().splitlines() == ["one", "1"]
    bad = cli(
        sqe_cli_bin, "--port", str(auth_server.flight_port), "--user", user, "--password", "wrong",
        "-e", "SELECT 1",
    )
    assert bad.returncode != 0
    assert "Unauthenticated" in bad.stderr, bad.stderr
    anonymous = cli(sqe_cli_bin, "--port", str(auth_server.flight_port), "-e", "SELECT 1")
    assert anonymous.returncode != 0
    assert "Unauthenticated" in anonymous.stderr, anonymous.stderr
