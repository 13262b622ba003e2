"""Reading s3:// objects (images and manifests) with boto3: one client per process and endpoint, credentials from
the standard AWS chain only, botocore's adaptive retries for throttling."""

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
