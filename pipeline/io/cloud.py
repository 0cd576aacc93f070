"""Object stores (S3 and S3-compatible): endpoint variables, credentials to forward, listing.

GDAL's /vsis3/ reads its own settings (``AWS_S3_ENDPOINT``, ``AWS_HTTPS``,
``AWS_VIRTUAL_HOSTING``) and credentials (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/
``AWS_SESSION_TOKEN``, ``AWS_PROFILE`` with ``~/.aws/credentials`` and ``~/.aws/config``,
``AWS_NO_SIGN_REQUEST``). Users of S3-compatible stores usually set boto3's
``AWS_ENDPOINT_URL`` instead: `endpoint_settings` translates it for GDAL unless GDAL's own
variables are set. Listing a prefix (`list_objects`) needs boto3 (``raster-pipeline[s3]``).

Credential values are never printed or logged: only variable names are.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from pipeline import config
from pipeline.errors import ConfigError, RasterInputError

#: boto3's endpoint variables, the service-specific one first (it wins, as in boto3).
ENDPOINT_VARS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")

#: Variables a remote cluster gets with ``--forward-credentials`` (values never printed).
FORWARDED_VARS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_NO_SIGN_REQUEST",
    "AWS_REQUEST_PAYER",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_S3_ENDPOINT",
    "AWS_HTTPS",
    "AWS_VIRTUAL_HOSTING",
)

_TRUE = ("1", "yes", "true", "on")
_lock = threading.Lock()
_applied: dict[str, str] = {}


def is_true(value: str | None) -> bool:
    """GDAL's and boto3's reading of a boolean variable (``YES``, ``TRUE``, ``ON``, ``1``)."""
    return (value or "").strip().lower() in _TRUE


def endpoint_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """GDAL's S3 endpoint settings for boto3's ``AWS_ENDPOINT_URL`` in ``environ``.

    Parameters
    ----------
    environ : mapping
        Environment variables (``os.environ``, or that plus ``pipeline.gdal-env``).

    Returns
    -------
    dict
        ``AWS_S3_ENDPOINT`` (host, port and path of the URL), ``AWS_HTTPS`` (``YES`` for an
        ``https`` URL, else ``NO``) and ``AWS_VIRTUAL_HOSTING=FALSE`` (custom endpoints serve
        path-style URLs), each only when ``environ`` does not set it; empty when
        ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL`` is unset or ``AWS_S3_ENDPOINT`` is set.

    Raises
    ------
    ConfigError
        The endpoint variable is not an ``http(s)://host[:port]`` URL.
    """
    name = next((n for n in ENDPOINT_VARS if environ.get(n)), None)
    if name is None or environ.get("AWS_S3_ENDPOINT"):
        return {}
    url = environ[name].strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"{name}={url!r} is not an endpoint URL; expected http(s)://host[:port], "
            "e.g. http://127.0.0.1:9000"
        )
    host = parts.netloc.rpartition("@")[2]  # never carry user:password into GDAL's settings
    out = {"AWS_S3_ENDPOINT": host + parts.path.rstrip("/")}
    if not environ.get("AWS_HTTPS"):
        out["AWS_HTTPS"] = "YES" if parts.scheme == "https" else "NO"
    if not environ.get("AWS_VIRTUAL_HOSTING"):
        out["AWS_VIRTUAL_HOSTING"] = "FALSE"
    return out


def apply_endpoint_settings() -> dict[str, str]:
    """Put `endpoint_settings` of this process's environment into it, for GDAL; return them.

    Called before GDAL opens a remote path (in this process and on workers). Settings the
    user set are never replaced; those set by an earlier call follow a changed
    ``AWS_ENDPOINT_URL`` (and are removed with it).
    """
    global _applied
    with _lock:
        user = {k: v for k, v in os.environ.items() if _applied.get(k) != v}
        configured = {str(k): str(v) for k, v in (config.get("gdal-env") or {}).items()}
        wanted = endpoint_settings({**configured, **user})
        for name, value in _applied.items():
            if os.environ.get(name) == value and name not in wanted:
                del os.environ[name]
        os.environ.update(wanted)
        _applied = wanted
        return dict(wanted)


def forwarded_credentials(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The AWS variables a remote cluster's workers get with ``--forward-credentials``.

    The ``AWS_*`` variables of `FORWARDED_VARS` set in ``environ`` (default ``os.environ``)
    plus the GDAL endpoint settings derived from ``AWS_ENDPOINT_URL``. Without keys in the
    environment, a profile (``AWS_PROFILE``, ``~/.aws/credentials``) is resolved to its keys
    with boto3 when boto3 is installed: workers on other machines do not have this
    machine's profile files. Never print the values.
    """
    env = dict(os.environ if environ is None else environ)
    out = {k: env[k] for k in FORWARDED_VARS if env.get(k)}
    out.update(endpoint_settings(env))
    if "AWS_SECRET_ACCESS_KEY" not in out and not is_true(env.get("AWS_NO_SIGN_REQUEST")):
        out.update(_profile_keys(env))
    return out


def _profile_keys(env: Mapping[str, str]) -> dict[str, str]:
    """Keys (and region) of the boto3 profile ``env`` selects; empty without boto3 or keys."""
    try:
        import boto3
    except ImportError:
        return {}
    try:
        session = boto3.Session(profile_name=env.get("AWS_PROFILE") or None)
        creds = session.get_credentials()
    except Exception:  # botocore's profile errors: the workers then report missing credentials
        return {}
    if creds is None:
        return {}
    frozen = creds.get_frozen_credentials()
    out = {"AWS_ACCESS_KEY_ID": frozen.access_key, "AWS_SECRET_ACCESS_KEY": frozen.secret_key}
    if frozen.token:
        out["AWS_SESSION_TOKEN"] = frozen.token
    if session.region_name:
        out["AWS_REGION"] = session.region_name
    return out


def split_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix/`` -> ``("bucket", "some/prefix/")``."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise RasterInputError(f"{url}: not an s3://bucket/key URL")
    return parts.netloc, parts.path.lstrip("/")


def s3_client(environ: Mapping[str, str] | None = None) -> Any:
    """A boto3 S3 client configured as GDAL is: endpoint, profile, ``AWS_NO_SIGN_REQUEST``.

    Raises
    ------
    RasterInputError
        boto3 is not installed (``pip install 'raster-pipeline[s3]'``).
    """
    env = os.environ if environ is None else environ
    try:
        import boto3
        import botocore
        from botocore.config import Config
    except ImportError as err:
        raise RasterInputError(
            "listing s3:// prefixes needs boto3: pip install 'raster-pipeline[s3]' "
            "(single s3:// objects and --from-list files of them work without it)"
        ) from err
    kwargs: dict[str, Any] = {}
    if is_true(env.get("AWS_NO_SIGN_REQUEST")):
        kwargs["config"] = Config(signature_version=botocore.UNSIGNED)
    endpoint = next((env[n] for n in ENDPOINT_VARS if env.get(n)), None)
    if endpoint is None and env.get("AWS_S3_ENDPOINT"):  # GDAL's own variable
        scheme = (
            "http" if env.get("AWS_HTTPS", "YES").upper() in ("NO", "FALSE", "OFF") else "https"
        )
        endpoint = f"{scheme}://{env['AWS_S3_ENDPOINT']}"
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    session = boto3.Session(profile_name=env.get("AWS_PROFILE") or None)
    return session.client("s3", **kwargs)


def list_objects(url: str, *, client: Any = None) -> Iterator[str]:
    """``s3://`` URLs of every object under the prefix ``url`` names, in key order.

    Lists recursively (S3 has no folders: every key that starts with the prefix). Raises
    `RasterInputError` with one line naming the URL when the bucket cannot be listed
    (missing bucket, access denied, endpoint down); credentials are never part of it.
    """
    bucket, prefix = split_s3_url(url)
    s3 = client if client is not None else s3_client()
    try:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            for obj in page.get("Contents", ()):
                yield f"s3://{bucket}/{obj['Key']}"
    except Exception as err:
        raise RasterInputError(f"{url}: cannot list ({_listing_cause(err)})") from err


def _listing_cause(err: BaseException) -> str:
    """Words for a boto3 listing error: its error code, or the kind of connection error."""
    response = getattr(err, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", ""))
        if code in ("NoSuchBucket", "404"):
            return "no such bucket"
        if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return f"access denied: check credentials ({code})"
        return code or type(err).__name__
    name = type(err).__name__
    if "EndpointConnectionError" in name or "ConnectionError" in name:
        return "connection refused: is the endpoint up?"
    if "NoCredentials" in name:
        return (
            "no credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or "
            "AWS_NO_SIGN_REQUEST=YES"
        )
    return name


__all__ = [
    "ENDPOINT_VARS",
    "FORWARDED_VARS",
    "apply_endpoint_settings",
    "endpoint_settings",
    "forwarded_credentials",
    "is_true",
    "list_objects",
    "s3_client",
    "split_s3_url",
]
