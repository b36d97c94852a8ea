"""S3, SQS and SNS calls against the AWS endpoint AWS_ENDPOINT_URL names (moto's server in
the tests), inside one span of the caller's: a bucket written and read, a missing key (an
error answer), a queue sent to and received from, a topic published to with the message
delivered to a subscribed queue. Prints the published message's attributes as delivered."""

import json
import os

import boto3
from botocore.exceptions import ClientError
from opentelemetry import trace

endpoint = os.environ["AWS_ENDPOINT_URL"]
session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
s3, sqs, sns = (session.client(s, endpoint_url=endpoint) for s in ("s3", "sqs", "sns"))

with trace.get_tracer("client").start_as_current_span("client"):
    s3.create_bucket(Bucket="bucket")
    s3.put_object(Bucket="bucket", Key="key", Body=b"value")
    assert s3.get_object(Bucket="bucket", Key="key")["Body"].read() == b"value"
    try:
        s3.get_object(Bucket="bucket", Key="missing")
    except ClientError as error:
        assert error.response["Error"]["Code"] == "NoSuchKey"
    queue = sqs.create_queue(QueueName="queue")["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody="hello")
    assert sqs.receive_message(QueueUrl=queue)["Messages"][0]["Body"] == "hello"
    topic = sns.create_topic(Name="topic")["TopicArn"]
    notified = sqs.create_queue(QueueName="notified")["QueueUrl"]
    notified_arn = sqs.get_queue_attributes(QueueUrl=notified, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=notified_arn)
    sns.publish(TopicArn=topic, Message="news")
    (delivered,) = sqs.receive_message(QueueUrl=notified)["Messages"]
print(json.dumps(json.loads(delivered["Body"]).get("MessageAttributes", {})))
