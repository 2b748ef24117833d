"""Object stores that fail: each fault is produced for real on a real server, and the adapter must raise a
named error (`ObjectStorageError`, or `ObjectStorageUnavailable` when the server could not be reached) that
says which backend at which address failed doing what to which key, and lose nothing already stored.

The faults of each backend have their modules (`test_s3_faults`, `test_redis_faults`, and
`test_object_storage_tls` for certificates); this one holds the settings each names the variable of when
they cannot be used.
"""

from __future__ import annotations

import pytest

from armonik_core.adapters.objects.redis import RedisSettings
from armonik_core.adapters.objects.s3 import S3Settings
from armonik_core.config import ConfigurationError, Environment


@pytest.mark.parametrize(
    ("settings", "variables", "named"),
    [
        (S3Settings, {"S3__EndpointUrl": "ftp://127.0.0.1:9000"}, "S3__EndpointUrl"),
        (S3Settings, {"S3__EndpointUrl": "http://127.0.0.1:9000/bucket"}, "S3__EndpointUrl"),
        (S3Settings, {"S3__CaPath": "/nonexistent/ca.pem"}, "S3__CaPath"),
        (S3Settings, {"S3__MustForcePathStyle": "maybe"}, "S3__MustForcePathStyle"),
        (S3Settings, {"S3__DegreeOfParallelism": "0"}, "S3__DegreeOfParallelism"),
        (RedisSettings, {"Redis__EndpointUrl": "127.0.0.1:port"}, "Redis__EndpointUrl"),
        (RedisSettings, {"Redis__EndpointUrl": "http://127.0.0.1:6379"}, "Redis__EndpointUrl"),
        (RedisSettings, {"Redis__Timeout": "30s"}, "Redis__Timeout"),
        (RedisSettings, {"Redis__CaPath": "/nonexistent/chain.pem"}, "Redis__CaPath"),
        (RedisSettings, {"Redis__Ssl": "yes please"}, "Redis__Ssl"),
    ],
)
def test_bad_settings_name_the_variable(
    settings: type[S3Settings] | type[RedisSettings], variables: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigurationError, match=named):
        settings.from_env(Environment(variables))


def test_settings_use_upstream_names_case_insensitively() -> None:
    s3 = S3Settings.from_env(
        Environment(
            {
                "S3__ENDPOINTURL": "https://minio:9000",
                "s3__bucketname": "results",
                "S3__Login": "user",
                "S3__Password": "secret",
                "S3__Region": "eu-west-3",
                "S3__MustForcePathStyle": "false",
            }
        )
    )
    redis = RedisSettings.from_env(
        Environment(
            {"Redis__EndpointUrl": "rediss://cache:6380", "REDIS__INSTANCENAME": "Prod", "Redis__User": "u"}
        )
    )

    assert (s3.endpoint_url, s3.bucket_name, s3.login, s3.password) == (
        "https://minio:9000",
        "results",
        "user",
        "secret",
    )
    assert (s3.region, s3.must_force_path_style) == ("eu-west-3", False)
    assert redis.address() == ("cache", 6380, True)
    assert (redis.instance_name, redis.user, redis.timeout_ms) == ("Prod", "u", 30_000)
    assert S3Settings.from_env(Environment({})).endpoint_url == "http://127.0.0.1:9000"
    assert RedisSettings.from_env(Environment({})).address() == ("127.0.0.1", 6379, False)
