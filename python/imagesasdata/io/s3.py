"""s3:// objects with boto3: reading images and manifests, and writing a job's output (each object in one put, so
that it appears whole or not at all; conditional puts for claims, io/outputs.py). One client per process and
endpoint, credentials from the standard AWS chain only, botocore's adaptive retries for throttling."""

from __future__ import annotations

import threading

from ..errors import BadImageError, ImagesAsDataError


def is_uri(path) -> bool:
    return "://" in str(path)


_clients: dict = {}
_clients_lock = threading.Lock()


def s3_client(endpoint_url: str | None = None):
    """One boto3 S3 client per process and endpoint (clients are thread-safe). Credentials come from the standard
    chain (environment, ~/.aws, instance role); botocore's adaptive retries absorb throttling."""
    with _clients_lock:
        if endpoint_url not in _clients:
            try:
                import boto3
                from botocore.config import Config
            except ImportError:
                raise ImagesAsDataError("reading s3:// images needs boto3: pip install 'imagesasdata[aws]'", what="missing_extra", extra="aws") from None
            config = Config(retries={"mode": "adaptive", "max_attempts": 10}, max_pool_connections=32)
            _clients[endpoint_url] = boto3.session.Session().client("s3", endpoint_url=endpoint_url, config=config)
        return _clients[endpoint_url]


def read_s3_bytes(uri: str, endpoint_url: str | None = None) -> bytes:
    """The bytes of an s3:// object. A missing object or a refused one raises BadImageError (a row's error);
    missing credentials or an unreachable endpoint raise ImagesAsDataError (they would fail every image)."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    bucket, _, key = uri[len("s3://"):].partition("/")
    if not bucket or not key:
        raise BadImageError(uri, "not an s3://bucket/key address")
    try:
        return s3_client(endpoint_url).get_object(Bucket=bucket, Key=key)["Body"].read()
    except NoCredentialsError:
        raise ImagesAsDataError("no AWS credentials for reading s3:// images: set them the standard way (environment "
                                "variables, ~/.aws/credentials, AWS_PROFILE or an instance role)") from None
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "error")
        if code in ("NoSuchKey", "404", "NotFound"):
            raise BadImageError(uri, "not found in S3 (NoSuchKey); check the bucket and key") from None
        if code in ("NoSuchBucket", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"):
            raise ImagesAsDataError(f"{uri}: S3 refused the request ({code}); check the bucket name and credentials") from None
        raise BadImageError(uri, f"S3 refused the request ({code})") from None
    except BotoCoreError as error:  # endpoint unreachable after retries: stop; a rerun resumes
        raise ImagesAsDataError(f"{uri}: cannot reach S3 ({error})") from None


# ------------------------------------------------------------------------------------------ writing (job outputs)

class WriteConflict(Exception):
    """A conditional put that S3 refused: the object changed (If-Match) or already exists (If-None-Match)."""


def split_uri(uri: str) -> tuple[str, str]:
    """(bucket, key) of an s3://bucket/key address; the key may be empty (a whole bucket)."""
    if not str(uri).startswith("s3://"):
        raise ImagesAsDataError(f"{uri}: not an s3:// address (only s3://bucket/prefix URIs are supported)")
    bucket, _, key = str(uri)[len("s3://"):].partition("/")
    if not bucket:
        raise ImagesAsDataError(f"{uri}: no bucket; write s3://bucket/prefix")
    return bucket, key


def _output_error(uri: str, error) -> Exception:
    """The error for a failed request on a job's output: a conflict, or an ImagesAsDataError saying what to fix."""
    from botocore.exceptions import ClientError, NoCredentialsError

    if isinstance(error, NoCredentialsError):
        return ImagesAsDataError(f"{uri}: no AWS credentials for writing to S3: set them the standard way (environment "
                                 "variables, ~/.aws/credentials, AWS_PROFILE or an instance role)")
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "error")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412):
            return WriteConflict(code)
        if code in ("NotImplemented",) or status == 501:
            return ImagesAsDataError(f"{uri}: this S3 endpoint does not support conditional writes ({code}), which "
                                     "imagesasdata needs to keep two jobs from writing one output; use AWS S3, MinIO or "
                                     "another endpoint with If-None-Match/If-Match on PUT, or a shared folder")
        if code in ("AccessDenied", "AllAccessDisabled"):
            return ImagesAsDataError(f"{uri}: S3 refused the request ({code}); the credentials need s3:GetObject, "
                                     "s3:PutObject and s3:ListBucket on this bucket and prefix")
        return ImagesAsDataError(f"{uri}: S3 refused the request ({code}); check the bucket name and credentials")
    return ImagesAsDataError(f"{uri}: cannot reach S3 ({error})")


def write_s3_bytes(uri: str, data: bytes, endpoint_url: str | None = None, *, metadata: dict | None = None,
                   if_none_match: bool = False, if_match: str | None = None) -> str:
    """Put `data` at `uri` in one request (an S3 object appears whole or not at all). Returns its ETag.

    if_none_match: only if no object is there yet; if_match: only if the object there has this ETag. A refused
    condition raises WriteConflict; missing credentials, a refused request or an unreachable endpoint raise
    ImagesAsDataError."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = split_uri(uri)
    conditions = {"IfNoneMatch": "*"} if if_none_match else {}
    if if_match is not None:
        conditions["IfMatch"] = if_match
    try:
        return s3_client(endpoint_url).put_object(Bucket=bucket, Key=key, Body=data, Metadata=metadata or {},
                                                  **conditions)["ETag"]
    except (BotoCoreError, ClientError) as error:
        raise _output_error(uri, error) from None


def _object_request(uri: str, endpoint_url: str | None, operation: str) -> dict | None:
    """One request about the object at `uri` (get_object or head_object): boto3's answer, or None when there is no
    such object. Raises ImagesAsDataError for any other failure, as write_s3_bytes does."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = split_uri(uri)
    try:
        return getattr(s3_client(endpoint_url), operation)(Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
            return None
        raise _output_error(uri, error) from None
    except BotoCoreError as error:
        raise _output_error(uri, error) from None


def get_s3_object(uri: str, endpoint_url: str | None = None) -> dict | None:
    """{"data", "etag", "metadata", "age_s"} of the object at `uri`, or None when there is none. age_s: seconds since
    it was written, by S3's own clock (its Date header against the object's LastModified: no clock of ours is
    involved). Raises ImagesAsDataError as write_s3_bytes does."""
    import datetime as _dt
    from email.utils import parsedate_to_datetime

    answer = _object_request(uri, endpoint_url, "get_object")
    if answer is None:
        return None
    date = answer.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    try:
        now = parsedate_to_datetime(date) if date else _dt.datetime.now(_dt.timezone.utc)
    except (TypeError, ValueError):
        now = _dt.datetime.now(_dt.timezone.utc)
    return {"data": answer["Body"].read(), "etag": answer["ETag"], "metadata": answer.get("Metadata") or {},
            "age_s": max(0.0, (now - answer["LastModified"]).total_seconds())}


def head_s3_object(uri: str, endpoint_url: str | None = None) -> dict | None:
    """{"etag", "size", "metadata", "last_modified"} of the object at `uri`, or None when there is none."""
    answer = _object_request(uri, endpoint_url, "head_object")
    if answer is None:
        return None
    return {"etag": answer["ETag"], "size": answer["ContentLength"], "metadata": answer.get("Metadata") or {},
            "last_modified": answer["LastModified"]}


def list_s3_keys(uri_prefix: str, endpoint_url: str | None = None) -> list[str]:
    """The keys of every object whose key starts with the prefix of `uri_prefix` (s3://bucket/prefix), sorted."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = split_uri(uri_prefix)
    keys = []
    try:
        for page in s3_client(endpoint_url).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys += [item["Key"] for item in page.get("Contents", [])]
    except (BotoCoreError, ClientError) as error:
        raise _output_error(uri_prefix, error) from None
    return sorted(keys)
