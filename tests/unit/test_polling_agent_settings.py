"""Polling agent settings from ArmoniK's `Section__Key` variables."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from armonik_core.config import ConfigurationError
from armonik_core.polling_agent.settings import AgentSettings, ChannelSettings, SocketType, parse_duration


def test_defaults_are_upstreams() -> None:
    settings = AgentSettings.from_env({})
    assert settings.partition_id == "default"
    assert settings.shared_cache_folder == Path("/cache/shared")
    assert settings.agent_id == f"{socket.gethostname()}-{os.getpid()}"
    assert settings.hostname == socket.gethostname()
    assert settings.heartbeat_seconds == 2
    assert settings.grace_delay == 5
    assert settings.worker_channel == ChannelSettings("/cache/armonik_worker.sock", SocketType.UNIX)
    assert settings.worker_channel.target == "unix:///cache/armonik_worker.sock"
    assert settings.agent_channel.target == "unix:///cache/armonik_agent.sock"
    assert (settings.worker_check_retries, settings.worker_check_delay) == (10, 0.5)
    assert settings.control_plane_endpoint == "127.0.0.1:5001"
    assert settings.objects_directory == Path("generated/data/objects")
    assert settings.data_chunk_max_size > 0


def test_every_variable_is_read_case_insensitively() -> None:
    settings = AgentSettings.from_env(
        {
            "Pollster__PartitionId": "gpu",
            "POLLSTER__SHAREDCACHEFOLDER": "/tmp/shared",
            "pollster__agentid": "agent-7",
            "Pollster__GraceDelay": "00:00:15",
            "Pollster__HeartbeatSeconds": "0.5",
            "Pollster__AcquireWait": "1",
            "Pollster__StagingParallelism": "3",
            "ComputePlane__WorkerChannel__Address": "localhost:10667",
            "ComputePlane__WorkerChannel__SocketType": "TCP",
            "ComputePlane__AgentChannel__Address": "http://0.0.0.0:10666",
            "ComputePlane__AgentChannel__SocketType": "tcp",
            "InitWorker__WorkerCheckRetries": "4",
            "InitWorker__WorkerCheckDelay": "00:00:10",
            "InitWorker__WorkerCheckTimeout": "3",
            "InitWorker__WorkerCheckValidity": "0",
            "ControlPlane__Endpoint": "10.0.0.1:5001",
            "Embedded__DataDirectory": "/var/lib/armonik",
            "Submitter__PreferredMessageSize": "84000",
            "Serilog__MinimumLevel": "Warning",
        }
    )
    assert settings.partition_id == "gpu"
    assert settings.shared_cache_folder == Path("/tmp/shared")
    assert settings.agent_id == "agent-7"
    assert settings.grace_delay == 15
    assert settings.heartbeat_seconds == 0.5
    assert settings.acquire_wait == 1
    assert settings.staging_parallelism == 3
    assert settings.worker_channel.socket_type is SocketType.TCP
    assert settings.worker_channel.target == "localhost:10667"
    assert settings.worker_channel.socket_path is None
    assert settings.agent_channel.target == "0.0.0.0:10666"
    assert settings.worker_check_retries == 4
    assert settings.worker_check_delay == 10
    assert settings.worker_check_timeout == 3
    assert settings.worker_check_validity == 0
    assert settings.control_plane_endpoint == "10.0.0.1:5001"
    assert settings.objects_directory == Path("/var/lib/armonik/objects")
    assert settings.data_chunk_max_size == 84000
    assert settings.log_level == "WARNING"


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("2", 2.0),
        ("0.25", 0.25),
        ("00:00:05", 5.0),
        ("00:01:30.5", 90.5),
        ("1.02:00:00", 93600.0),
        ("00:10", 600.0),
    ],
)
def test_durations_are_seconds_or_timespans(raw: str, seconds: float) -> None:
    assert parse_duration("X", raw) == seconds


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("Pollster__GraceDelay", "soon"),
        ("Pollster__GraceDelay", "-1"),
        ("Pollster__HeartbeatSeconds", "0"),
        ("ComputePlane__WorkerChannel__SocketType", "pipe"),
        ("ComputePlane__AgentChannel__Address", ""),
        ("InitWorker__WorkerCheckRetries", "many"),
        ("InitWorker__WorkerCheckRetries", "0"),
        ("Pollster__PartitionId", " "),
        ("Submitter__PreferredMessageSize", "0"),
    ],
)
def test_unusable_values_name_their_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=variable.split("__")[0]):
        AgentSettings.from_env({variable: value})


def test_a_tcp_address_needs_a_port() -> None:
    with pytest.raises(ConfigurationError, match="host:port"):
        AgentSettings.from_env(
            {
                "ComputePlane__WorkerChannel__SocketType": "Tcp",
                "ComputePlane__WorkerChannel__Address": "worker",
            }
        )


def test_a_relative_socket_path_is_made_absolute() -> None:
    channel = ChannelSettings("sockets/agent.sock")
    assert channel.socket_path == Path.cwd() / "sockets/agent.sock"
    assert channel.target == f"unix://{Path.cwd()}/sockets/agent.sock"


def test_an_in_process_worker_is_named_by_worker_module() -> None:
    assert AgentSettings.from_env({}).worker_module == ""
    settings = AgentSettings.from_env({"worker__module": " my_package.tasks:processor "})
    assert settings.worker_module == "my_package.tasks:processor"
