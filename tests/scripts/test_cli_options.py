"""The options added for one CLI grammar: checked before anything is written or started.

`up --mqtt-port`, `faults run --base-port`, `watch` that never connects, `submit` after
another client used the same key (fake node: real contract runtime, real nonces).
"""

from __future__ import annotations

import argparse
import json
import socket
from pathlib import Path
from typing import Iterator

import pytest

from ipchain.cluster import broker
from ipchain.cluster.procs import find_free_base_port
from ipchain.render import Progress
from ipchain.sdk import client
from scripts import cli


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- up --mqtt-port -------------------------------------------------------------------------
def test_mqtt_port_sets_the_embedded_brokers_address() -> None:
    port = free_port()
    args = argparse.Namespace(mqtt=True, mqtt_url=None, mqtt_port=port)
    assert broker.new_cluster_url(args) == f"mqtt://127.0.0.1:{port}"
    parsed = cli.build_parser().parse_args(["up", "--mqtt", "--mqtt-port", str(port)])
    assert parsed.mqtt and parsed.mqtt_port == port


@pytest.mark.parametrize("extra, message", [
    ([], "add --mqtt"),
    (["--mqtt"], "in use by another process"),
    (["--mqtt", "--mqtt-port", "NODE"], "one of the nodes' ports"),
    (["--mqtt", "--mqtt-port", "0"], "is not a TCP port"),
])
def test_up_refuses_a_bad_mqtt_port_before_writing_anything(
        tmp_path: Path, busy_port: int, extra: list[str], message: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    base = find_free_base_port(4)
    data_dir = tmp_path / "new"
    argv = ["up", "--data-dir", str(data_dir), "--base-port", str(base)]
    if "--mqtt-port" not in extra:
        extra = [*extra, "--mqtt-port", str(busy_port)]
    argv += [str(base + 1) if a == "NODE" else a for a in extra]
    assert cli.main(argv) == cli.EXIT_FAIL
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not data_dir.exists()


# -- faults run --base-port -------------------------------------------------------------------
def test_faults_run_refuses_a_busy_base_port_before_writing_anything(
        tmp_path: Path, busy_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code = cli.main(["faults", "run", "primary-crash", "--base-port", str(busy_port - 1),
                     "--out", str(out)])
    assert code == 1
    err = capsys.readouterr().err
    assert f"[{busy_port}]" in err and "choose another --base-port" in err
    assert not out.exists()


def test_faults_run_takes_base_port_json_and_log_level() -> None:
    from scripts.faults import build_parser
    args = build_parser().parse_args(["run", "primary-crash", "--base-port", "31000",
                                      "--json", "--log-level", "info"])
    assert (args.base_port, args.json, args.log_level) == (31000, True, "info")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "primary-crash", "--log-level", "loud"])


# -- progress ---------------------------------------------------------------------------------
def test_progress_on_a_pipe_is_plain_lines_on_its_stream(tmp_path: Path) -> None:
    path = tmp_path / "err.txt"
    with open(path, "w") as stream:
        with Progress("demo transactions", total=3, stream=stream, every_s=3600) as bar:
            bar.update(advance=1, note="funding")  # the first update prints a line
            bar.update(advance=1, note="licensing")  # within every_s: quiet
            bar.log("a narrative line")
            bar.update(advance=1, note="deal")
    assert path.read_text().splitlines() == [
        "demo transactions: 1/3 | funding", "a narrative line", "demo transactions: 3/3 | deal"]


# -- watch that never connects ---------------------------------------------------------------
def test_watch_exits_1_in_one_sentence_when_no_node_answers(
        capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert cli.main(["watch", "--node", url, "--connect-timeout", "1"]) == cli.EXIT_FAIL
    err = capsys.readouterr().err
    assert err == (f"ipchain watch: error: no node answered within 1s ({url}; not "
                   f"answering); is the cluster up? try `ipchain status`\n")


def test_watch_mqtt_exits_1_in_one_sentence_when_the_broker_never_accepts(
        capsys: pytest.CaptureFixture[str]) -> None:
    url = f"mqtt://127.0.0.1:{free_port()}"
    code = cli.main(["watch", "--mqtt", "--mqtt-url", url, "--connect-timeout", "1"])
    assert code == cli.EXIT_FAIL
    err = capsys.readouterr().err
    assert err.startswith(f"ipchain watch: error: the MQTT broker at {url} did not accept a "
                          f"connection within 1s") and err.count("\n") == 1, err


def test_watch_topic_needs_mqtt(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["watch", "--topic", "ipchain/#"]) == cli.EXIT_FAIL
    assert "add --mqtt" in capsys.readouterr().err


# -- submit after another client used the key -------------------------------------------------
def test_submit_recovers_once_when_another_client_used_the_nonce(
        make_fake_cluster, capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    cluster = make_fake_cluster(n=1, clients=1)
    cluster.start()
    cluster.wait_ready(30.0)
    org = cluster.org_ids("admin")[0]
    key = cluster.client_key(org)
    sender = client.sender_hex(key)
    first_free = cluster.nonces.peek(sender)

    async def other_client() -> None:  # the same key, nonces of its own choosing
        async with client.open_session() as session:
            for nonce in range(first_free, first_free + 3):
                tx = client.sign(key, cluster.chain_id, nonce, "token.transfer",
                                 {"to": "client-000", "amount": 1})
                answer = await client.submit(session, cluster.urls[0], tx, wait=True)
                assert answer["status"] == "committed", answer
    asyncio.run(other_client())

    where = ["--data-dir", str(cluster.data_dir), "--org", org, "--wait"]
    transfer = ["submit", "token.transfer", "--args", '{"to": "client-000", "amount": 2}']
    assert cli.main([*transfer, *where]) == cli.EXIT_OK
    out, err = capsys.readouterr()
    answer = json.loads(out)
    assert answer["status"] == "committed" and answer["receipt"]["code"] == "ok"
    assert f"retrying once with the account's next nonce {first_free + 3}" in err
    assert cluster.nonces.peek(sender) == first_free + 4  # the counter moved past them

    assert cli.main([*transfer, *where]) == cli.EXIT_OK  # no collision any more
    assert "retrying" not in capsys.readouterr().err

    assert cli.main([*transfer, *where, "--nonce", str(first_free)]) == cli.EXIT_FAIL
    refused = json.loads(capsys.readouterr().out)
    assert refused["error"]["code"] == "NonceUsed"  # an explicit nonce is not replaced
