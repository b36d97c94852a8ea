"""botocore instrumented programmatically with upstream's hooks (the automatic instrumentation
disabled): one S3 call whose span the hooks annotate."""

import os

import boto3

from ferrotel.instrumentation.botocore import BotocoreInstrumentor


def request_hook(span, service, operation, params):
    span.set_attribute("hook.request", f"{service}.{operation} {sorted(params)}")


def response_hook(span, service, operation, result):
    span.set_attribute("hook.response", result["ResponseMetadata"]["HTTPStatusCode"])


BotocoreInstrumentor().instrument(request_hook=request_hook, response_hook=response_hook)
session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
session.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).create_bucket(Bucket="hooked")
